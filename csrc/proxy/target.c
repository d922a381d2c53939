/* The shapes of the Lua API (lua/luasip/proxy.lua) through sip_tree.h: the
 * targets of a relay or a forward, a relay's options, the counters; read
 * and made here so that the binding only moves values (see sip_proxy.h). */
#include <stdlib.h>
#include <string.h>

#include "sip_proxy.h"

/* Field k when it is a string, else absent. */
static sip_str str_field(const sip_tree_reader *r, const char *k) {
  sip_tree_val v;
  sip_tree_get(r, k, 0, &v);
  if (v.kind == SIP_TREE_TABLE)
    r->close(r->ud);
  return v.kind == SIP_TREE_STR ? v.s : SIP_STR_NULL;
}

/* The list path (Path values, RFC 3327) as one Route set: the values
 * joined with ", " (a value that is not a string counts as empty). */
static int path_route(const sip_tree_reader *r, sip_str *out) {
  sip_tree_val v;
  sip_tree_get(r, "path", 0, &v);
  if (v.kind != SIP_TREE_TABLE)
    return 0;
  char *buf;
  size_t n;
  int rc = sip_tree_join(r, v.len, ", ", 0, &buf, &n);
  r->close(r->ud);
  if (rc < 0)
    return rc;
  if (n)
    *out = r->keep(r->ud, buf, n);
  free(buf);
  return 0;
}

int sip_proxy_read_target(const sip_tree_reader *r, const sip_tree_val *v,
                          sip_proxy_target *t) {
  memset(t, 0, sizeof *t);
  t->q = -1;
  if (v->kind == SIP_TREE_STR) {
    t->uri = v->s;
    return 0;
  }
  if (v->kind != SIP_TREE_TABLE)
    return SIP_EINVAL;
  t->uri = str_field(r, "uri");
  if (!t->uri.p)
    t->uri = str_field(r, "contact");
  t->dest = str_field(r, "dest");
  if (!t->dest.p)
    t->dest = str_field(r, "received");
  t->route = str_field(r, "route");
  t->alt = str_field(r, "alt");
  t->tls_name = str_field(r, "tls_name");
  int rc = t->route.p ? 0 : path_route(r, &t->route);
  sip_tree_val q;
  sip_tree_get(r, "q", 0, &q);
  if (q.kind == SIP_TREE_TABLE)
    r->close(r->ud);
  if (q.kind == SIP_TREE_UINT || q.kind == SIP_TREE_NUM)
    t->q = q.d < 0 ? 0 : q.d > 1 ? 1000 : (int)(q.d * 1000 + 0.5);
  r->close(r->ud);
  return rc;
}

int sip_proxy_read_targets(const sip_tree_reader *r, const sip_tree_val *v,
                           sip_proxy_target *t, int max) {
  if (v->kind == SIP_TREE_NIL)
    return 0;
  int single = v->kind != SIP_TREE_TABLE || str_field(r, "contact").p ||
               str_field(r, "uri").p;
  if (single) {
    int rc = sip_proxy_read_target(r, v, &t[0]);
    return rc < 0 ? rc : 1;
  }
  int rc = v->len > (size_t)max ? SIP_ETOOMANY
           : v->len == 0        ? SIP_ENOTFOUND
                                : 0;
  for (size_t i = 1; rc == 0 && i <= v->len; i++) {
    sip_tree_val e;
    sip_tree_get(r, NULL, i, &e);
    rc = sip_proxy_read_target(r, &e, &t[i - 1]);
  }
  r->close(r->ud);
  return rc < 0 ? rc : (int)v->len;
}

/* A number option in seconds (a string of a number too) as ms; 0 when
 * absent. */
static int opt_ms(const sip_tree_reader *r, const char *k, uint32_t *ms) {
  sip_tree_val v;
  sip_tree_get(r, k, 0, &v);
  if (v.kind == SIP_TREE_TABLE)
    r->close(r->ud);
  if (v.kind == SIP_TREE_NIL) {
    *ms = 0;
    return 0;
  }
  double s;
  if (sip_tree_number(&v, &s) < 0)
    return SIP_EINVAL;
  if (!(s >= 0 && s <= 86400 * 7))
    return SIP_ERANGE;
  *ms = (uint32_t)(s * 1000 + 0.5);
  return 0;
}

int sip_proxy_read_opts(const sip_tree_reader *r, sip_proxy_opts *o,
                        uint16_t failover[17], const char **bad) {
  sip_tree_val v;
  sip_tree_get(r, "fork", 0, &v);
  if (v.kind == SIP_TREE_TABLE)
    r->close(r->ud);
  *bad = "fork";
  if (v.kind == SIP_TREE_STR) {
    if (v.s.len == 6 && !memcmp(v.s.p, "serial", 6))
      o->fork = SIP_PROXY_SERIAL;
    else if (v.s.len != 8 || memcmp(v.s.p, "parallel", 8))
      return SIP_EINVAL;
  }
  static const char *const ms_names[] = {"timeout", "branch_timeout",
                                         "timer_c"};
  uint32_t *ms[] = {&o->timeout_ms, &o->branch_timeout_ms, &o->timer_c_ms};
  for (int i = 0; i < 3; i++) {
    int rc = opt_ms(r, ms_names[i], ms[i]);
    *bad = ms_names[i];
    if (rc < 0)
      return rc;
  }
  sip_tree_get(r, "recurse", 0, &v);
  if (v.kind == SIP_TREE_TABLE)
    r->close(r->ud);
  o->recurse = v.kind != SIP_TREE_NIL && v.kind != SIP_TREE_FALSE;
  sip_tree_get(r, "failover", 0, &v);
  if (v.kind != SIP_TREE_TABLE)
    return 0;
  int rc = 0;
  memset(failover, 0, 17 * sizeof *failover);
  *bad = "failover";
  for (size_t i = 1; rc == 0 && i <= v.len && i <= 16; i++) {
    sip_tree_val e;
    sip_tree_get(r, NULL, i, &e);
    if (e.kind == SIP_TREE_TABLE)
      r->close(r->ud);
    if (e.kind == SIP_TREE_UINT || (e.kind == SIP_TREE_NUM && e.d > -1e9 &&
                                    e.d < 1e9 && e.d == (double)(long long)e.d))
      failover[i - 1] = (uint16_t)(long long)e.d;
    else
      rc = SIP_EINVAL;
  }
  r->close(r->ud);
  o->failover = failover;
  return rc;
}

void sip_proxy_emit_stats(const sip_proxy *p, const sip_tree_emitter *e) {
  sip_proxy_counters c;
  sip_proxy_stats(p, &c);
  const sip_tree_counter f[] = {
      {"proxy_relayed", c.relayed},
      {"proxy_branches", c.branches},
      {"proxy_forwarded_stateless", c.forwarded_stateless},
      {"proxy_responses_forwarded", c.responses_forwarded},
      {"proxy_strays_forwarded", c.strays_forwarded},
      {"proxy_cancels_sent", c.cancels_sent},
      {"proxy_loops", c.loops},
      {"proxy_too_many_hops", c.too_many_hops},
      {"proxy_timer_c", c.timer_c},
      {"proxy_live_ctx", c.live_ctx},
      {"proxy_ctx_bytes", c.ctx_bytes},
  };
  sip_tree_put_counters(e, f, sizeof f / sizeof f[0]);
}
