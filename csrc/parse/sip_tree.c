/* Helpers over the sip_tree callbacks, shared by the C layers that read or
 * make a Lua API's table shape (dns, proxy, sdp). */
#include "sip_tree.h"

#include <stdlib.h>
#include <string.h>

#include "sip_error.h"

void sip_tree_get(const sip_tree_reader *r, const char *k, size_t i,
                  sip_tree_val *v) {
  memset(v, 0, sizeof *v);
  r->get(r->ud, k, i, v);
}

int sip_tree_number(const sip_tree_val *v, double *out) {
  if (v->kind == SIP_TREE_UINT || v->kind == SIP_TREE_NUM) {
    *out = v->d;
    return 0;
  }
  if (v->kind != SIP_TREE_STR)
    return SIP_EINVAL;
  char buf[64], *end;
  if (v->s.len == 0 || v->s.len >= sizeof buf)
    return SIP_EINVAL;
  memcpy(buf, v->s.p, v->s.len);
  buf[v->s.len] = 0;
  double d = strtod(buf, &end);
  if (*end)
    return SIP_EINVAL;
  *out = d;
  return 0;
}

/* Element i of the list: its string, or empty (*ok cleared) when it is
 * anything else; a table element is closed at once. */
static sip_str element(const sip_tree_reader *r, size_t i, int *ok) {
  sip_tree_val e;
  sip_tree_get(r, NULL, i, &e);
  if (e.kind == SIP_TREE_TABLE)
    r->close(r->ud);
  if (e.kind == SIP_TREE_STR)
    return e.s;
  *ok = 0;
  return (sip_str){"", 0};
}

int sip_tree_join(const sip_tree_reader *r, size_t len, const char *sep,
                  int strict, char **out, size_t *n) {
  size_t seplen = strlen(sep), total = 1;
  int ok = 1;
  *out = NULL;
  *n = 0;
  for (size_t i = 1; i <= len; i++)
    total += element(r, i, &ok).len + (i > 1 ? seplen : 0);
  if (strict && !ok)
    return SIP_EINVAL;
  char *buf = malloc(total);
  if (!buf)
    return SIP_ENOMEM;
  size_t m = 0;
  for (size_t i = 1; i <= len; i++) {
    sip_str s = element(r, i, &ok);
    if (i > 1) {
      memcpy(buf + m, sep, seplen);
      m += seplen;
    }
    memcpy(buf + m, s.p, s.len);
    m += s.len;
  }
  buf[m] = 0;
  *out = buf;
  *n = m;
  return 0;
}

void sip_tree_put_counters(const sip_tree_emitter *e, const sip_tree_counter *c,
                           size_t n) {
  for (size_t i = 0; i < n; i++) {
    sip_tree_val v = {.kind = SIP_TREE_UINT, .n = c[i].v};
    e->put(e->ud, c[i].name, &v);
  }
}
