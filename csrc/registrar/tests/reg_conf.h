/* The registrar configuration the registrar's C tests start from (each
 * test changes what it checks): expiry 60..7200 (3600 by default), Path,
 * outbound and GRUU on, contacts of at most 1024 bytes, max_contacts and
 * serves as given (serves NULL: every domain). */
#ifndef SIP_TEST_REG_CONF_H
#define SIP_TEST_REG_CONF_H

#include "sip_reg_plan.h"

static inline sip_reg_conf reg_test_conf(int max_contacts,
                                         int (*serves)(void *, sip_str)) {
  sip_reg_conf c = {0};
  c.default_expires = 3600;
  c.min_expires = 60;
  c.max_expires = 7200;
  c.max_contacts = max_contacts;
  c.max_contact_size = 1024;
  c.path = c.outbound = c.gruu = 1;
  c.serves = serves;
  return c;
}

#endif
