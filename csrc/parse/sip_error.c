/* Names and messages of the error codes, generated from SIP_ERRORS. */
#include "sip_error.h"

#define SIP__ERR_NAME(name, msg) #name,
static const char *const err_names[] = {SIP_ERRORS(SIP__ERR_NAME)};
#undef SIP__ERR_NAME

#define SIP__ERR_MSG(name, msg) msg,
static const char *const err_msgs[] = {SIP_ERRORS(SIP__ERR_MSG)};
#undef SIP__ERR_MSG

static int err_index(int err) {
  if (err <= SIP__EBASE || err >= SIP__ELIMIT)
    return -1;
  return err - SIP__EBASE - 1;
}

const char *sip_errname(int err) {
  int i = err_index(err);
  return i < 0 ? "UNKNOWN" : err_names[i];
}

const char *sip_strerror(int err) {
  int i = err_index(err);
  return i < 0 ? "unknown error" : err_msgs[i];
}
