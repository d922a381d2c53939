/* The resolver (csrc/dns, RFC 3263) for Lua: one per Lua state, on the
 * state's loop, kept in the registry. Wrapped by lua/luasip/dns.lua.
 *
 *   core.dns_config(opts) -> true | nil, err, name
 *       a new resolver with these options (the old one is closed: its
 *       pending resolutions get nil, "ECANCELED: ...")
 *   core.dns_resolve(what, fn) -> targets | true | nil, err, name
 *       what: a sip/sips URI string, or { host =, port =, transport =,
 *       secure = } (a Via sent-by, RFC 3263 §5). The targets when they are
 *       known at once (numeric host, cache); true when pending: fn(targets)
 *       or fn(nil, err, name) runs later from the loop; nil, err, name for
 *       a URI that cannot be resolved (scheme, transport) or a failure
 *       known at once (a cached negative answer).
 *       targets: { { transport = "udp", host =, port =, addr =,
 *       dest = "udp:IP:PORT" }, ... } in the order to try.
 *   core.dns_avoid(transport, addr, port, seconds)
 *   core.dns_avoided(transport, addr, port) -> boolean
 *   core.dns_failover()        count one failover
 *   core.dns_should_failover(status, made_up) -> boolean (§4.3)
 *   core.dns_stats() -> table  core.dns_flush()
 *
 * The resolver is made with the defaults (servers of /etc/resolv.conf) on
 * first use when core.dns_config was not called. */
#include <stdlib.h>
#include <string.h>

#include "lsip.h"
#include "ltree.h"
#include "sip_dns.h"
#include "sip_error.h"
#include "sip_proxy.h"
#include "sip_tu.h"

#define SIP_LUA_DNS "luasip.Resolver"

typedef struct ldns {
  sip_dns *d;
  sip_lua_loop *lp;
} ldns;

typedef struct lreq {
  lua_State *L; /* in_call: the caller's thread, results pushed there */
  sip_lua_loop *lp;
  int fn_ref;
  int in_call; /* inside sip_dns_resolve: answer on the caller's stack */
  int nret;
} lreq;

static const char dns_key = 0;

static int dns_gc(lua_State *L) {
  ldns *x = luaL_checkudata(L, 1, SIP_LUA_DNS);
  sip_dns *d = x->d;
  x->d = NULL;
  sip_dns_close(d); /* pending callbacks see ECANCELED: no Lua runs */
  return 0;
}

static ldns *get_dns(lua_State *L, int create) {
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &dns_key) == LUA_TUSERDATA) {
    ldns *x = lua_touserdata(L, -1);
    lua_pop(L, 1);
    if (x->d || !create)
      return x;
  } else {
    lua_pop(L, 1);
    if (!create)
      return NULL;
  }
  sip_lua_loop *lp = sip__lua_loop(L);
  ldns *x = lua_newuserdatauv(L, sizeof(*x), 0);
  x->d = NULL;
  x->lp = lp;
  luaL_setmetatable(L, SIP_LUA_DNS);
  int rc = sip_dns_new(&lp->loop, NULL, &x->d);
  if (rc < 0)
    luaL_error(L, "cannot create the resolver: %s", uv_strerror(rc));
  lua_rawsetp(L, LUA_REGISTRYINDEX, &dns_key);
  return x;
}

static void push_targets(lua_State *L, const sip_dns_target *t, int n) {
  lua_createtable(L, n, 0);
  sip_tree_emitter e;
  sip__lua_tree_emitter(&e, L);
  sip_dns_emit_targets(t, n, &e);
}

/* nil, "NAME: why", "NAME" */
static int push_error(lua_State *L, int status) {
  lua_pushnil(L);
  lua_pushfstring(L, "%s: %s", uv_err_name(status), sip_dns_strerror(status));
  lua_pushstring(L, uv_err_name(status));
  return 3;
}

static void on_resolved(void *arg, int status, const sip_dns_target *t, int n) {
  lreq *r = arg;
  if (r->in_call) {
    lua_State *L = r->L;
    if (status < 0) {
      r->nret = push_error(L, status);
    } else {
      push_targets(L, t, n);
      r->nret = 1;
    }
    return; /* the caller frees r */
  }
  lua_State *L = r->lp->L;
  if (!L || status == UV_ECANCELED) {
    /* closing (or no loop running): no Lua; drop the function */
    if (L)
      luaL_unref(L, LUA_REGISTRYINDEX, r->fn_ref);
    free(r);
    return;
  }
  int top = lua_gettop(L);
  if (!lua_checkstack(L, 8)) {
    luaL_unref(L, LUA_REGISTRYINDEX, r->fn_ref);
    free(r);
    return;
  }
  lua_rawgeti(L, LUA_REGISTRYINDEX, r->fn_ref);
  luaL_unref(L, LUA_REGISTRYINDEX, r->fn_ref);
  free(r);
  int nargs;
  if (status < 0) {
    nargs = push_error(L, status);
  } else {
    push_targets(L, t, n);
    nargs = 1;
  }
  sip__lua_call(L, nargs, "a DNS answer");
  lua_settop(L, top);
}

/* A reader of the table at idx (left on the stack, over the table that
 * keeps its strings): the reader state lives in a userdata there too. */
static sip_tree_reader *reader_of(lua_State *L, int idx) {
  idx = lua_absindex(L, idx);
  lua_newtable(L);
  struct {
    sip_lua_tree t;
    sip_tree_reader rd;
  } *x = lua_newuserdatauv(L, sizeof *x, 0);
  sip__lua_tree_reader(&x->t, &x->rd, L, -2);
  lua_pushvalue(L, idx);
  return &x->rd;
}

static int transport_of(lua_State *L, int idx, const char *s) {
  if (!s)
    return 0;
  sip_str tok = {s, strlen(s)};
  int t = sip_tp_transport_from(tok);
  if (!t)
    luaL_argerror(L, idx, "transport: udp, tcp or tls");
  return t;
}

/* core.dns_resolve(uri | {host=, port=, transport=, secure=}, fn) */
static int l_resolve(lua_State *L) {
  luaL_checktype(L, 2, LUA_TFUNCTION);
  ldns *x = get_dns(L, 1);
  sip_dns_query q;
  sip_msg m;
  int have_msg = 0, rc;
  memset(&q, 0, sizeof q);
  if (lua_istable(L, 1)) {
    const char *bad;
    if (sip_dns_read_query(reader_of(L, 1), &q, &bad) < 0)
      return luaL_argerror(L, 1, lua_pushfstring(L, "bad %s", bad));
  } else {
    size_t n;
    const char *s = luaL_tolstring(L, 1, &n);
    sip_msg_init(&m, NULL);
    have_msg = 1;
    sip_uri u;
    rc = sip_uri_parse(&m.arena, s, n, &u);
    if (rc == 0)
      rc = sip_dns_query_uri(&u, &q);
    if (rc < 0) {
      sip_msg_free(&m);
      return sip__lua_fail(L, rc, "resolve: %s: %s", s, sip_strerror(rc));
    }
  }
  lreq *r = calloc(1, sizeof(*r));
  if (!r) {
    if (have_msg)
      sip_msg_free(&m);
    return luaL_error(L, "not enough memory");
  }
  r->L = L;
  r->lp = x->lp;
  r->in_call = 1;
  r->fn_ref = LUA_NOREF;
  int top = lua_gettop(L);
  rc = sip_dns_resolve(x->d, &q, on_resolved, r);
  if (have_msg)
    sip_msg_free(&m);
  if (rc < 0) {
    free(r);
    return sip__lua_fail(L, rc, "resolve: bad query");
  }
  if (rc == 1) { /* answered: the results are on the stack */
    int nret = r->nret;
    free(r);
    (void)top;
    return nret;
  }
  r->in_call = 0;
  lua_pushvalue(L, 2);
  r->fn_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_pushboolean(L, 1);
  return 1;
}

/* core.dns_config{ servers =, timeout =, tries =, cache_size =, max_ttl =,
 * neg_ttl =, ipv6 = } */
static int l_config(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  sip_dns_config cfg;
  const char *bad;
  int rc = sip_dns_read_config(reader_of(L, 1), &cfg, &bad);
  if (rc == SIP_ENOMEM)
    return luaL_error(L, "not enough memory");
  if (rc < 0)
    return luaL_error(L, "dns option %s: %s", bad,
                      strcmp(bad, "servers") ? "a number >= 0 expected"
                                             : "a string or a list of strings");
  sip_lua_loop *lp = sip__lua_loop(L);
  sip_dns *d;
  rc = sip_dns_new(&lp->loop, &cfg, &d);
  if (rc < 0) {
    if (rc == SIP_EINVAL)
      return sip__lua_fail(L, rc, "dns: bad options (servers \"%s\")",
                           cfg.servers ? cfg.servers : "");
    return push_error(L, rc);
  }
  ldns *x = get_dns(L, 0);
  if (x) {
    sip_dns *old = x->d;
    x->d = d;
    sip_dns_close(old);
  } else {
    x = lua_newuserdatauv(L, sizeof(*x), 0);
    x->d = d;
    x->lp = lp;
    luaL_setmetatable(L, SIP_LUA_DNS);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &dns_key);
  }
  lua_pushboolean(L, 1);
  return 1;
}

static int check_addr(lua_State *L, struct sockaddr_storage *ss, int *tr) {
  size_t n;
  *tr = transport_of(L, 1, luaL_checkstring(L, 1));
  const char *ip = luaL_checklstring(L, 2, &n);
  lua_Integer port = luaL_checkinteger(L, 3);
  luaL_argcheck(L, port > 0 && port <= 65535, 3, "port 1..65535");
  if (sip_tp_addr(ss, ip, n, (int)port) < 0)
    return luaL_argerror(L, 2, "a numeric address");
  return 0;
}

/* core.dns_avoid(transport, addr, port, seconds) */
static int l_avoid(lua_State *L) {
  struct sockaddr_storage ss;
  int tr;
  check_addr(L, &ss, &tr);
  lua_Number s = luaL_checknumber(L, 4);
  luaL_argcheck(L, s >= 0 && s < 1e7, 4, "seconds 0..1e7");
  sip_dns_avoid(get_dns(L, 1)->d, tr, &ss, (uint64_t)(s * 1000));
  return 0;
}

/* core.dns_avoided(transport, addr, port) -> boolean */
static int l_avoided(lua_State *L) {
  struct sockaddr_storage ss;
  int tr;
  check_addr(L, &ss, &tr);
  lua_pushboolean(L, sip_dns_avoided(get_dns(L, 1)->d, tr, &ss));
  return 1;
}

/* core.dns_should_failover(status, made_up) -> boolean (§4.3) */
static int l_should_failover(lua_State *L) {
  lua_pushboolean(L, sip_proxy_failover_status((int)luaL_checkinteger(L, 1),
                                               lua_toboolean(L, 2)));
  return 1;
}

static int l_failover(lua_State *L) {
  sip_dns_count_failover(get_dns(L, 1)->d);
  return 0;
}

static int l_flush(lua_State *L) {
  sip_dns_flush(get_dns(L, 1)->d);
  return 0;
}

/* core.dns_stats() -> { lookups =, cache_hits =, ... } (zeros before the
 * resolver's first use) */
static int l_stats(lua_State *L) {
  ldns *x = get_dns(L, 0);
  lua_createtable(L, 0, 12);
  sip_tree_emitter e;
  sip__lua_tree_emitter(&e, L);
  sip_dns_emit_stats(x ? x->d : NULL, &e);
  return 1;
}

/* core.dns_next_hop(msg[, uri[, route]]) -> hop, host, numeric: the URI a
 * request (or a proxy branch with Request-URI uri and pushed Route values
 * route) goes to next (sip_tu_next_hop_uri: the one rule), its
 * host (maddr when given), and whether that host is numeric; or nil, err,
 * name. */
static int l_next_hop(lua_State *L) {
  sip_msg *m = sip__lua_message_check(L, 1)->m;
  size_t n = 0, rn = 0;
  const char *u = luaL_optlstring(L, 2, NULL, &n);
  const char *r = luaL_optlstring(L, 3, NULL, &rn);
  sip_str ruri = u ? (sip_str){u, n} : m->ruri;
  sip_str route = r ? (sip_str){r, rn} : (sip_str){NULL, 0};
  char mem[2048];
  sip_arena a;
  sip_arena_init(&a, mem, sizeof mem);
  sip_uri uu;
  const sip_uri *hop = NULL;
  int rc = sip_tu_next_hop_uri(m, ruri, route, &a, &uu, &hop);
  if (rc == 0 && hop->kind != SIP_URI_SIP && hop->kind != SIP_URI_SIPS)
    rc = SIP_EINVAL;
  if (rc < 0) {
    sip_arena_free(&a);
    return sip__lua_fail(L, rc, "next hop: %s", sip_strerror(rc));
  }
  sip_str host;
  int numeric = sip_dns_uri_target(hop, &host);
  lua_pushlstring(L, hop->raw.p, hop->raw.len);
  lua_pushlstring(L, host.p, host.len);
  lua_pushboolean(L, numeric);
  sip_arena_free(&a);
  return 3;
}

static const luaL_Reg funcs[] = {
    {"dns_config", l_config},     {"dns_resolve", l_resolve},
    {"dns_avoid", l_avoid},       {"dns_avoided", l_avoided},
    {"dns_failover", l_failover}, {"dns_should_failover", l_should_failover},
    {"dns_flush", l_flush},       {"dns_stats", l_stats},
    {"dns_next_hop", l_next_hop}, {NULL, NULL},
};

/* ---- responses to a Via host name (RFC 3263 §5: sip_dns_resolve_response) */

static int p_get_dns(lua_State *L) {
  lua_pushlightuserdata(L, get_dns(L, 1));
  return 1;
}

static int resolve_response(void *ud, sip_tp_resolving *r, int transport,
                            const char *host, int port) {
  sip_lua_loop *lp = ud;
  lua_State *L = lp->L;
  if (!L || !lua_checkstack(L, 4))
    return UV_EAI_NONAME; /* no loop running: as without a resolver */
  int top = lua_gettop(L);
  lua_pushcfunction(L, p_get_dns);
  int ok = lua_pcall(L, 0, 1, 0) == LUA_OK;
  ldns *x = ok ? lua_touserdata(L, -1) : NULL;
  lua_settop(L, top);
  if (!x || !x->d)
    return UV_EAI_AGAIN;
  return sip_dns_resolve_response(x->d, r, transport, host, port);
}

void sip__lua_dns_attach(sip_lua_loop *lp, sip_tp *tp) {
  sip_tp_set_resolver(tp, resolve_response, lp);
}

void sip__lua_open_dns(lua_State *L) {
  luaL_newmetatable(L, SIP_LUA_DNS);
  lua_pushcfunction(L, dns_gc);
  lua_setfield(L, -2, "__gc");
  lua_pop(L, 1);
  luaL_setfuncs(L, funcs, 0);
}
