/* Proxy methods of received requests (the binding of csrc/proxy): the
 * response context lives in C (sip_proxy_ctx, one per relayed request);
 * the Lua coroutine that called proxy.relay() waits for the round's end
 * and is resumed through the function lua/luasip/proxy.lua registers with
 * core.set_proxy_resume(fn): fn(co, status, res). A branch that fails over
 * to its target's next destination (a target's `alt`, RFC 3263 §4.3) calls
 * the function of core.set_proxy_failover(fn): fn(dest, status, res) with
 * the dest spec that failed (res nil when made up).
 *
 * Methods (documented for users in lua/luasip/proxy.lua):
 *   req:is_initial()            no To tag
 *   req:record_route([params])  Record-Route on every branch of this request
 *   req:loose_route()           §16.4 preprocessing; true when Route values
 *                               were present
 *   req:_relay(targets, opts)   true (wait for the round), or the status it
 *                               ended with at once (answered: 483 482 420;
 *                               487 cancelled; 503 nothing sent), or
 *                               nil, err
 *   req:forward([target])       stateless (§16.11); true or nil, err
 *   req:finish()                forward the best response of the context;
 *                               true when something was sent */
#include <stdlib.h>
#include <string.h>

#include "lserver.h"
#include "ltree.h"

#define MAX_TARGETS 32

static char resume_key;   /* registry key of the resume function */
static char failover_key; /* registry key of the failover function */

typedef struct px_lua {
  lua_State *L; /* the main thread: for luaL_unref */
  sip_lua_server *s;
  int co_ref, prov_ref, final_ref;
} px_lua;

static void unref(lua_State *L, int *ref) {
  if (*ref != LUA_NOREF && *ref != LUA_REFNIL)
    luaL_unref(L, LUA_REGISTRYINDEX, *ref);
  *ref = LUA_NOREF;
}

typedef struct px_event {
  px_lua *pl;
  int ev, branch, status;
  sip_rxbuf *rx;
  const char *dest; /* SIP_PROXY_EV_FAILOVER: the dest that failed */
  int result;
} px_event;

/* Under lua_pcall: the event as argument 1. */
static int event_body(lua_State *L) {
  px_event *e = lua_touserdata(L, 1);
  px_lua *pl = e->pl;
  sip_lua_server *s = pl->s;
  lua_settop(L, 0);
  lua_rawgeti(L, LUA_REGISTRYINDEX, s->self_ref);
  int srvidx = lua_gettop(L);
  int fn;
  if (e->ev == SIP_PROXY_EV_DONE) {
    if (pl->co_ref == LUA_NOREF)
      return 0;
    lua_rawgetp(L, LUA_REGISTRYINDEX, &resume_key);
    lua_rawgeti(L, LUA_REGISTRYINDEX, pl->co_ref);
    unref(L, &pl->co_ref);
    unref(L, &pl->prov_ref);
    unref(L, &pl->final_ref);
    lua_pushinteger(L, e->status);
    if (e->rx)
      sip__lua_push_received(L, srvidx, s, e->rx, &e->rx->src, NULL);
    else
      lua_pushnil(L);
    sip__lua_srv_pcall(L, srvidx, 3);
    return 0;
  }
  if (e->ev == SIP_PROXY_EV_FAILOVER) {
    if (lua_rawgetp(L, LUA_REGISTRYINDEX, &failover_key) != LUA_TFUNCTION ||
        !e->dest)
      return 0;
    lua_pushstring(L, e->dest);
    lua_pushinteger(L, e->status);
    if (e->rx)
      sip__lua_push_received(L, srvidx, s, e->rx, &e->rx->src, NULL);
    else
      lua_pushnil(L);
    if (sip__lua_pcall(L, 3, 0, "proxy failover") != LUA_OK)
      s->st.script_errors++;
    return 0;
  }
  fn = e->ev == SIP_PROXY_EV_PROVISIONAL ? pl->prov_ref : pl->final_ref;
  if (fn == LUA_NOREF)
    return 0;
  lua_rawgeti(L, LUA_REGISTRYINDEX, fn);
  if (e->rx)
    sip__lua_push_received(L, srvidx, s, e->rx, &e->rx->src, NULL);
  else
    lua_pushnil(L);
  lua_pushinteger(L, e->branch + 1);
  lua_pushinteger(L, e->status);
  if (sip__lua_pcall(L, 3, 1, "proxy hook") != LUA_OK) {
    /* logged and counted like any script error; the response goes on */
    s->st.script_errors++;
    return 0;
  }
  e->result = lua_type(L, -1) == LUA_TBOOLEAN && !lua_toboolean(L, -1);
  return 0;
}

static int on_event(void *ud, sip_proxy_ctx *c, int ev, int branch, int status,
                    sip_msg *msg, sip_rxbuf *rx) {
  (void)msg;
  px_lua *pl = ud;
  if (ev == SIP_PROXY_EV_FREE) {
    unref(pl->L, &pl->co_ref);
    unref(pl->L, &pl->prov_ref);
    unref(pl->L, &pl->final_ref);
    free(pl);
    return 0;
  }
  sip_lua_server *s = pl->s;
  lua_State *L = s->lp->L;
  if (!L || !s->tp)
    return 0;
  px_event e = {pl, ev, branch, status, rx, NULL, 0};
  if (ev == SIP_PROXY_EV_FAILOVER)
    e.dest = sip_proxy_branch_dest(c, branch);
  int top = lua_gettop(L);
  if (!lua_checkstack(L, 8))
    return 0;
  lua_pushcfunction(L, event_body);
  lua_pushlightuserdata(L, &e);
  if (sip__lua_pcall(L, 1, 0, "proxy event") != LUA_OK)
    s->st.script_errors++;
  lua_settop(L, top);
  return e.result;
}

/* ---- helpers --------------------------------------------------------------
 */

static sip_lua_rx *check_request(lua_State *L, const char *what) {
  sip_lua_rx *r = sip__lua_check_received(L, 1, what);
  if (!r->base.m->is_request)
    luaL_error(L, "%s: needs a request", what);
  if (!r->srv->tp || !r->srv->px)
    luaL_error(L, "%s: the server is closed", what);
  return r;
}

static int is_method(const sip_msg *m, const char *name) {
  size_t n = strlen(name);
  return m->method.len == n && memcmp(m->method.p, name, n) == 0;
}

static int do_route(sip_lua_rx *r) {
  if (!r->routed) {
    int rc = sip_proxy_route_pre(r->base.m, sip_proxy_get_self(r->srv->px));
    r->routed = 1;
    r->route_flags = rc < 0 ? 0 : (uint8_t)rc;
  }
  return r->route_flags;
}

/* The target(s) at idx (sip_proxy_read_target(s): the shape is csrc/proxy's)
 * into t[]: the count (0: nil), or SIP_ENOTFOUND (an empty list); raises
 * for a bad value. Leaves one table on the stack that keeps the strings t
 * points to alive. */
static int read_targets(lua_State *L, int idx, sip_proxy_target *t, int one) {
  idx = lua_absindex(L, idx);
  lua_newtable(L);
  sip_lua_tree tr;
  sip_tree_reader rd;
  sip__lua_tree_reader(&tr, &rd, L, -1);
  lua_pushvalue(L, idx);
  sip_tree_val v;
  memset(&v, 0, sizeof v);
  sip__lua_tree_value(&tr, &v);
  int n = one ? sip_proxy_read_target(&rd, &v, t)
              : sip_proxy_read_targets(&rd, &v, t, MAX_TARGETS);
  if (n == SIP_EINVAL)
    luaL_error(L, "relay: a target must be a URI string or a table");
  if (n == SIP_ETOOMANY)
    luaL_error(L, "relay: at most %d targets", MAX_TARGETS);
  if (n == SIP_ENOMEM)
    luaL_error(L, "not enough memory");
  return one ? 1 : n;
}

static int opt_fn(lua_State *L, int t, const char *k) {
  if (lua_getfield(L, t, k) == LUA_TNIL) {
    lua_pop(L, 1);
    return LUA_NOREF;
  }
  luaL_checktype(L, -1, LUA_TFUNCTION);
  return luaL_ref(L, LUA_REGISTRYINDEX);
}

static px_lua *ensure_ctx(lua_State *L, sip_lua_rx *r) {
  if (r->px)
    return sip_proxy_ctx_udata(r->px);
  if (!r->txn)
    luaL_error(L, "relay: the request has no server transaction (a server "
                  "with transactions = false forwards with req:forward())");
  px_lua *pl = calloc(1, sizeof(*pl));
  if (!pl)
    luaL_error(L, "not enough memory");
  int rc = sip_proxy_ctx_new(r->srv->px, r->txn, r->rx, &r->src, &r->px);
  if (rc < 0) {
    free(pl);
    luaL_error(L, "relay: %s", sip_tp_strerror(rc));
  }
  lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
  pl->L = lua_tothread(L, -1);
  lua_pop(L, 1);
  pl->s = r->srv;
  pl->co_ref = pl->prov_ref = pl->final_ref = LUA_NOREF;
  sip_proxy_ctx_set_cb(r->px, on_event, pl, 0);
  return pl;
}

/* ---- methods --------------------------------------------------------------
 */

/* req:is_initial() -> true when the To header has no tag */
static int m_is_initial(lua_State *L) {
  sip_lua_msg *u = sip__lua_message_check(L, 1);
  const sip_addr *to;
  lua_pushboolean(L, sip_msg_get_addr(u->m, SIP_H_TO, &to) == 0 && !to->tag.p);
  return 1;
}

/* req:record_route([params]) */
static int m_record_route(lua_State *L) {
  sip_lua_rx *r = check_request(L, "record_route");
  size_t n = 0;
  const char *p = luaL_optlstring(L, 2, NULL, &n);
  if (p && (n >= sizeof r->rr_params || (n && p[0] != ';')))
    luaL_argerror(L, 2, "\";name=value...\" of at most 47 bytes");
  r->rr = 1;
  if (p)
    memcpy(r->rr_params, p, n + 1);
  return 0;
}

/* req:loose_route() -> true when the request carried Route values (ours
 * are removed; a strict router's Request-URI is fixed) */
static int m_loose_route(lua_State *L) {
  sip_lua_rx *r = check_request(L, "loose_route");
  lua_pushboolean(L, do_route(r) != 0);
  return 1;
}

static int forward_stateless(lua_State *L, sip_lua_rx *r,
                             const sip_proxy_target *tg) {
  sip_msg *m = r->base.m;
  do_route(r);
  int rc = sip_proxy_forward(r->srv->px, m, &r->src, tg, r->rr,
                             (sip_str){r->rr_params, strlen(r->rr_params)});
  if (!is_method(m, "ACK")) {
    r->dropped = 1;
    if (r->txn && !r->final_status)
      sip_txn_abandon(r->txn);
  }
  if (rc == 483)
    return sip__lua_fail(L, SIP_ERANGE, "forward: Max-Forwards is 0");
  if (rc < 0)
    return sip__lua_fail(L, rc, "forward: %s", sip_tp_strerror(rc));
  lua_pushboolean(L, 1);
  return 1;
}

/* req:forward([target]) -> true or nil, err, name */
static int m_forward(lua_State *L) {
  sip_lua_rx *r = check_request(L, "forward");
  sip_proxy_target t[1];
  int n = lua_isnoneornil(L, 2) ? 0 : read_targets(L, 2, t, 1);
  return forward_stateless(L, r, n ? t : NULL);
}

/* req:_relay(targets, opts) */
static int m_relay(lua_State *L) {
  sip_lua_rx *r = check_request(L, "relay");
  sip_msg *m = r->base.m;
  lua_settop(L, 3);
  sip_proxy_target t[MAX_TARGETS];
  int n = read_targets(L, 2, t, 0);
  if (n < 0)
    return sip__lua_fail(L, SIP_EINVAL, "relay: no targets");
  if (is_method(m, "ACK"))
    return forward_stateless(L, r, n ? t : NULL);
  if (r->cancelled) {
    lua_pushinteger(L, 487);
    return 1;
  }
  sip_proxy_opts o;
  memset(&o, 0, sizeof o);
  o.record_route = r->rr;
  o.rr_params = (sip_str){r->rr_params, strlen(r->rr_params)};
  if (!r->rr_params[0])
    o.rr_params = (sip_str){NULL, 0};
  uint16_t failover[17] = {0};
  int prov = LUA_NOREF, fin = LUA_NOREF;
  if (lua_istable(L, 3)) {
    sip_lua_tree tr;
    sip_tree_reader rd;
    const char *bad;
    sip__lua_tree_reader(&tr, &rd, L, lua_gettop(L)); /* the targets' */
    lua_pushvalue(L, 3);
    int rc = sip_proxy_read_opts(&rd, &o, failover, &bad);
    lua_pop(L, 1);
    if (rc == SIP_EINVAL && !strcmp(bad, "fork"))
      luaL_error(L, "relay: fork must be \"parallel\" or \"serial\"");
    if (rc == SIP_EINVAL)
      luaL_error(L, "relay: option %s: a number expected", bad);
    if (rc < 0)
      luaL_error(L, "relay: option %s out of range", bad);
    prov = opt_fn(L, 3, "on_provisional");
    fin = opt_fn(L, 3, "on_response");
  }
  px_lua *pl = ensure_ctx(L, r);
  if (sip_proxy_busy(r->px)) {
    unref(L, &prov);
    unref(L, &fin);
    return luaL_error(L, "relay: a relay of this request is running");
  }
  o.routed = r->routed;
  do_route(r);
  o.routed = 1;
  int rc = sip_proxy_relay(r->px, t, n, &o);
  if (rc != 0) {
    unref(L, &prov);
    unref(L, &fin);
    if (rc < 0)
      return sip__lua_fail(L, rc, "relay: %s",
                           rc == SIP_EINVAL ? "not possible now (answered?)"
                                            : sip_tp_strerror(rc));
    lua_pushinteger(L, rc);
    return 1;
  }
  unref(L, &pl->prov_ref);
  unref(L, &pl->final_ref);
  pl->prov_ref = prov;
  pl->final_ref = fin;
  sip_proxy_ctx_set_cb(
      r->px, on_event, pl,
      (prov != LUA_NOREF ? 1u << SIP_PROXY_EV_PROVISIONAL : 0) |
          (fin != LUA_NOREF ? 1u << SIP_PROXY_EV_FINAL : 0) |
          1u << SIP_PROXY_EV_FAILOVER);
  unref(L, &pl->co_ref);
  if (lua_pushthread(L)) {
    lua_pop(L, 1); /* the main thread cannot wait: proxy.lua checks */
  } else {
    pl->co_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* req:finish() -> true when the best response of the context was sent */
static int m_finish(lua_State *L) {
  sip_lua_rx *r = sip__lua_check_received(L, 1, "finish");
  int rc = r->px ? sip_proxy_finish(r->px) : 0;
  lua_pushboolean(L, rc > 0);
  return 1;
}

/* core.set_proxy_resume(fn) */
static int l_set_resume(lua_State *L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  lua_settop(L, 1);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &resume_key);
  return 0;
}

/* core.set_proxy_failover(fn) */
static int l_set_failover(lua_State *L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  lua_settop(L, 1);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &failover_key);
  return 0;
}

/* server:add_alias(host): a name this proxy answers to (Route, R-URI) */
static int l_add_alias(lua_State *L) {
  sip_lua_server *s = luaL_checkudata(L, 1, SIP_LUA_SERVER);
  size_t n;
  const char *h = luaL_checklstring(L, 2, &n);
  if (!s->px)
    return luaL_error(L, "add_alias: the server is closed");
  int rc = sip_proxy_add_alias(s->px, h, n);
  if (rc < 0)
    return sip__lua_fail(L, rc, "add_alias: too many aliases");
  lua_pushboolean(L, 1);
  return 1;
}

/* server:set_timer_c(seconds) */
static int l_set_timer_c(lua_State *L) {
  sip_lua_server *s = luaL_checkudata(L, 1, SIP_LUA_SERVER);
  lua_Number v = luaL_checknumber(L, 2);
  luaL_argcheck(L, v >= 1 && v <= 86400, 2, "1..86400 seconds");
  if (s->px)
    sip_proxy_set_timer_c(s->px, (uint32_t)(v * 1000));
  return 0;
}

void sip__lua_proxy_stats(lua_State *L, sip_lua_server *s) {
  sip_tree_emitter e;
  sip__lua_tree_emitter(&e, L);
  sip_proxy_emit_stats(s->px, &e);
}

static const luaL_Reg methods[] = {
    {"is_initial", m_is_initial},
    {"record_route", m_record_route},
    {"loose_route", m_loose_route},
    {"_relay", m_relay},
    {"forward", m_forward},
    {"finish", m_finish},
    {NULL, NULL},
};

void sip__lua_open_proxy(lua_State *L) {
  /* stack: core, Request */
  luaL_setfuncs(L, methods, 0);
  lua_pushcfunction(L, l_set_resume);
  lua_setfield(L, -3, "set_proxy_resume");
  lua_pushcfunction(L, l_set_failover);
  lua_setfield(L, -3, "set_proxy_failover");
  lua_getfield(L, -2, "Server");
  lua_pushcfunction(L, l_add_alias);
  lua_setfield(L, -2, "add_alias");
  lua_pushcfunction(L, l_set_timer_c);
  lua_setfield(L, -2, "set_timer_c");
  lua_pop(L, 1);
}
