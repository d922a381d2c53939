/* Named access to a parsed message: the fields a script reads by name
 * (msg.call_id, msg.from.tag, msg.via[1].branch), their ids, and where each
 * value is in the parsed structures. The Lua binding (csrc/lua/message.c)
 * turns a key into an id here, asks for the value, and only pushes it.
 *
 * Nothing here allocates or copies: a value is a slice, a number or a pointer
 * into the message (its input or its arena), valid as long as the message. */
#ifndef SIP_ACCESS_H
#define SIP_ACCESS_H

#include "sip_msg.h"

/* The message's fields: X(id, name) */
#define SIP_MSG_FIELDS(X)                                                      \
  X(METHOD, "method")                                                          \
  X(URI, "uri")                                                                \
  X(RURI, "ruri")                                                              \
  X(STATUS, "status")                                                          \
  X(REASON, "reason")                                                          \
  X(VERSION, "version")                                                        \
  X(IS_REQUEST, "is_request")                                                  \
  X(START_LINE, "start_line")                                                  \
  X(CALL_ID, "call_id")                                                        \
  X(CSEQ, "cseq")                                                              \
  X(CSEQ_METHOD, "cseq_method")                                                \
  X(FROM, "from")                                                              \
  X(TO, "to")                                                                  \
  X(VIA, "via")                                                                \
  X(CONTACTS, "contacts")                                                      \
  X(ROUTES, "routes")                                                          \
  X(RECORD_ROUTES, "record_routes")                                            \
  X(PATHS, "paths")                                                            \
  X(MAX_FORWARDS, "max_forwards")                                              \
  X(EXPIRES, "expires")                                                        \
  X(CONTENT_TYPE, "content_type")                                              \
  X(CTYPE, "ctype")                                                            \
  X(BODY, "body")                                                              \
  X(HAS_CONTENT_LENGTH, "has_content_length")

/* The fields of an address (sip_addr) and of a Via value (sip_via), one
 * numbering for both: X(id, name) */
#define SIP_ADDR_FIELDS(X)                                                     \
  X(DISPLAY, "display")                                                        \
  X(DISPLAY_RAW, "display_raw")                                                \
  X(URI, "uri")                                                                \
  X(TAG, "tag")                                                                \
  X(RAW, "raw")                                                                \
  X(PARAMS_RAW, "params_raw")                                                  \
  X(PARAMS, "params")                                                          \
  X(Q, "q")                                                                    \
  X(EXPIRES, "expires")                                                        \
  X(STAR, "star")
#define SIP_VIA_FIELDS(X)                                                      \
  X(RAW, "raw")                                                                \
  X(PROTOCOL, "protocol")                                                      \
  X(VERSION, "version")                                                        \
  X(TRANSPORT, "transport")                                                    \
  X(HOST, "host")                                                              \
  X(PORT, "port")                                                              \
  X(RPORT, "rport")                                                            \
  X(BRANCH, "branch")                                                          \
  X(RECEIVED, "received")                                                      \
  X(MADDR, "maddr")                                                            \
  X(TTL, "ttl")                                                                \
  X(PARAMS_RAW, "params_raw")                                                  \
  X(PARAMS, "params")

enum sip_msg_field {
  SIP_F__NONE = 0,
#define SIP__F_ENUM(id, name) SIP_F_##id,
  SIP_MSG_FIELDS(SIP__F_ENUM)
#undef SIP__F_ENUM
      SIP_F__COUNT
};

enum sip_view_field {
  SIP_VF__NONE = 0,
#define SIP__AF_ENUM(id, name) SIP_AF_##id,
#define SIP__VF_ENUM(id, name) SIP_VF_##id,
  SIP_ADDR_FIELDS(SIP__AF_ENUM) SIP_VIA_FIELDS(SIP__VF_ENUM)
#undef SIP__AF_ENUM
#undef SIP__VF_ENUM
      SIP_VF__COUNT
};

/* Name -> id (exact, case-sensitive), 0 when the name is not a field of
 * that kind. A switch on the length and compares of constant length: no
 * hashing, no table walk (every field read of a script comes here). */
int sip_msg_field_id(const char *name, size_t len);
int sip_addr_field_id(const char *name, size_t len);
int sip_via_field_id(const char *name, size_t len);
/* id -> name, NULL when out of range (sip_view_field_name: address and Via
 * ids) */
const char *sip_msg_field_name(int f);
const char *sip_view_field_name(int f);

/* A field's value. */
enum sip_value_type {
  SIP_V_NONE = 0, /* absent or not applicable (a response's method) */
  SIP_V_STR,      /* s: a slice (present) */
  SIP_V_INT,      /* i */
  SIP_V_BOOL,     /* i: 0 or 1 */
  SIP_V_Q,        /* i: a q-value in thousandths (0..1000) */
  SIP_V_PARAMS,   /* p: const sip_params * */
  SIP_V_URI,      /* p: const sip_uri * (the parsed Request-URI) */
  SIP_V_ADDR,     /* p: const sip_addr * */
  SIP_V_ADDRS,    /* p: the first const sip_addr * of a list (NULL: empty) */
  SIP_V_VIAS,     /* p: the top const sip_via * (NULL: no Via) */
  SIP_V_CTYPE,    /* p: const sip_ctype * */
};

typedef struct sip_value {
  int type; /* enum sip_value_type */
  sip_str s;
  int64_t i;
  const void *p;
} sip_value;

/* The value of message field f (SIP_F_*), parsing lazily what it needs
 * (m->err_what is cleared first, so that sip_msg_field_strerror can tell a
 * place the accessor recorded). Returns 0 and sets *out (SIP_V_NONE when
 * absent; a list field of no header is an empty list, not NONE), or the
 * parse error of the header (sip_msg_field_header names it). The body is a
 * string, empty when there is none; uri, the Request-URI as written. */
int sip_msg_field(sip_msg *m, int f, sip_value *out);
/* The header kind a message field comes from (SIP_H_OTHER for the start
 * line's: the Request-URI), and its name in error texts ("Request-URI" for
 * SIP_H_OTHER). */
int sip_msg_field_header(int f);
const char *sip_msg_field_what(int f);
/* The text of a failed read of message field f (sip_msg_field_strerror):
 * the place is the first line of its header, or the Request-URI. */
size_t sip_msg_field_error(const sip_msg *m, int f, int err, char *out,
                           size_t cap);

/* The value of address field f (SIP_AF_*) of a / Via field f (SIP_VF_*) of
 * v; SIP_V_NONE for an id of the other kind. display is the decoded display
 * name (display_raw as written); q, expires, port and rport are NONE when
 * absent; rport without a value is BOOL 1; star is BOOL 1 or NONE; ttl is
 * the text as written (1*3DIGIT when well-formed). */
void sip_addr_field(const sip_addr *a, int f, sip_value *out);
void sip_via_field(const sip_via *v, int f, sip_value *out);

#endif
