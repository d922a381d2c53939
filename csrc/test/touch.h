/* Read every byte of every slice of a parsed field, so a slice that points
 * outside the message (or past a guard page) is caught by ASan or a fault.
 * Shared by the vector test and the fuzz target. */
#ifndef SIP_TEST_TOUCH_H
#define SIP_TEST_TOUCH_H

#include "sip_msg.h"

static volatile unsigned touch_sum;

static inline void touch(sip_str s) {
  unsigned sum = 0;
  for (size_t i = 0; i < s.len; i++)
    sum += (unsigned char)s.p[i];
  touch_sum += sum;
}

static inline void touch_params(const sip_params *ps) {
  for (uint32_t i = 0; i < ps->n; i++) {
    touch(ps->v[i].name);
    touch(ps->v[i].value);
    touch(ps->v[i].dec);
  }
}

static inline void touch_uri(const sip_uri *u) {
  touch(u->raw);
  touch(u->scheme);
  touch(u->user);
  touch(u->user_dec);
  touch(u->password);
  touch(u->password_dec);
  touch(u->host);
  touch(u->params_raw);
  touch_params(&u->params);
  touch(u->headers_raw);
  touch_params(&u->headers);
  touch(u->opaque);
  touch(u->transport);
  touch(u->maddr);
  touch(u->user_param);
  touch(u->method);
  touch(u->ttl);
}

static inline void touch_addr(const sip_addr *a) {
  touch(a->raw);
  touch(a->display);
  touch(a->display_dec);
  touch_uri(&a->uri);
  touch(a->params_raw);
  touch_params(&a->params);
  touch(a->tag);
}

/* Touches every value of a list; returns how many there are. */
static inline int touch_addrs(const sip_addr *a) {
  int n = 0;
  for (; a; a = a->next, n++)
    touch_addr(a);
  return n;
}

#endif
