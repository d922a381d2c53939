/* Flood protection and connection slots of a luasip.Server (the logic is
 * csrc/transport/flood.c and conn.c; this is the binding): the `flood`
 * option of core.server, the methods flood_trust, flood_untrust, flood_blocked,
 * flood_unblock and keep_flow, the counters of srv:stats(), and the
 * on_block hook. */
#include <stdio.h>
#include <string.h>

#include "lserver.h"

/* registry[HOOKS][server userdata] = on_block function (weak keys) */
#define HOOKS "luasip.flood_hooks"

static const char *const kinds[] = {"", "invite", "other", "user"};

static void push_ip(lua_State *L, const struct sockaddr_storage *sa) {
  char a[64];
  sip_tp_addr_str(sa, a, sizeof(a));
  /* the address without its port (and brackets) */
  char *colon = strrchr(a, ':');
  if (colon)
    *colon = '\0';
  if (a[0] == '[') {
    size_t n = strlen(a);
    lua_pushlstring(L, a + 1, n >= 2 ? n - 2 : 0);
  } else {
    lua_pushstring(L, a);
  }
}

/* Runs inside the server's protected path: box, fn, args... ; the
 * hook's first result goes to box[1]. */
static int call_hook(lua_State *L) {
  int nargs = lua_gettop(L) - 2;
  lua_call(L, nargs, 1);
  lua_rawseti(L, 1, 1);
  return 0;
}

/* on_block(ip, kind, count, user) -> false to let the source go on. An
 * error goes through the server's one protected path (logged with its
 * traceback, counted in script_errors), and the block goes ahead. */
static int on_block(void *ud, const struct sockaddr_storage *src,
                    const char *user, size_t ulen, int kind, uint32_t count) {
  sip_lua_server *s = ud;
  lua_State *L = s->lp->L;
  if (!L || s->self_ref == LUA_NOREF || !lua_checkstack(L, 12))
    return 1;
  int top = lua_gettop(L);
  lua_rawgeti(L, LUA_REGISTRYINDEX, s->self_ref);
  int sidx = lua_gettop(L);
  if (lua_getfield(L, LUA_REGISTRYINDEX, HOOKS) != LUA_TTABLE) {
    lua_settop(L, top);
    return 1;
  }
  lua_pushvalue(L, sidx);
  if (lua_rawget(L, -2) != LUA_TFUNCTION) {
    lua_settop(L, top);
    return 1;
  }
  int fn = lua_gettop(L);
  lua_createtable(L, 1, 0); /* the box, kept below the call */
  int box = lua_gettop(L);
  lua_pushcfunction(L, call_hook);
  lua_pushvalue(L, box);
  lua_pushvalue(L, fn);
  push_ip(L, src);
  lua_pushstring(L, kinds[kind >= 1 && kind <= 3 ? kind : 0]);
  lua_pushinteger(L, (lua_Integer)count);
  if (user)
    lua_pushlstring(L, user, ulen);
  else
    lua_pushnil(L);
  int block = 1; /* call_hook(box, fn, ip, kind, count, user) */
  if (sip__lua_srv_pcall(L, sidx, 6) == LUA_OK) {
    lua_rawgeti(L, box, 1);
    block = !(lua_isboolean(L, -1) && !lua_toboolean(L, -1));
  }
  lua_settop(L, top);
  return block;
}

static lua_Integer field_int(lua_State *L, int t, const char *k,
                             lua_Integer def, lua_Integer lo, lua_Integer hi) {
  lua_Integer v = def;
  if (lua_getfield(L, t, k) != LUA_TNIL) {
    int isnum;
    v = lua_tointegerx(L, -1, &isnum);
    if (!isnum || v < lo || v > hi)
      luaL_error(L, "flood.%s: an integer in [%I, %I]", k, lo, hi);
  }
  lua_pop(L, 1);
  return v;
}

static sip_lua_server *check_open(lua_State *L);

/* The flood table at index t (nil or false: off) onto server s (its
 * userdata at sidx). Raises on a bad option. */
static void apply(lua_State *L, int t, sip_lua_server *s, int sidx) {
  t = lua_absindex(L, t);
  sidx = lua_absindex(L, sidx);
  if (lua_isnoneornil(L, t) || (lua_isboolean(L, t) && !lua_toboolean(L, t))) {
    sip_tp_flood(s->tp, NULL);
    return;
  }
  luaL_argexpected(L, lua_istable(L, t), 1, "flood: a table");
  sip_flood_config c;
  sip_flood_config_init(&c);
  c.window_ms = (uint32_t)field_int(L, t, "window", c.window_ms, 1, 1 << 30);
  c.max_invite = (uint32_t)field_int(L, t, "invite", 0, 0, 1 << 30);
  c.max_other = (uint32_t)field_int(L, t, "other", 0, 0, 1 << 30);
  c.max_user = (uint32_t)field_int(L, t, "user", 0, 0, 1 << 30);
  c.block_ms = (uint32_t)field_int(L, t, "block", c.block_ms, 1, 1 << 30);
  c.max_entries =
      (uint32_t)field_int(L, t, "max_entries", c.max_entries, 16, 1 << 24);
  lua_getfield(L, t, "reply_503");
  c.reply_503 = lua_toboolean(L, -1);
  lua_pop(L, 1);
  int ty = lua_getfield(L, t, "on_block");
  if (ty != LUA_TNIL)
    luaL_argexpected(L, ty == LUA_TFUNCTION, 1, "flood.on_block: a function");
  if (lua_getfield(L, LUA_REGISTRYINDEX, HOOKS) != LUA_TTABLE) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_createtable(L, 0, 1);
    lua_pushliteral(L, "k");
    lua_setfield(L, -2, "__mode");
    lua_setmetatable(L, -2);
    lua_pushvalue(L, -1);
    lua_setfield(L, LUA_REGISTRYINDEX, HOOKS);
  }
  lua_pushvalue(L, sidx);
  lua_pushvalue(L, -3);
  lua_rawset(L, -3); /* hooks[srv] = on_block (nil clears it) */
  lua_pop(L, 2);
  if (ty != LUA_TNIL) {
    c.on_block = on_block;
    c.ud = s;
  }
  if (lua_getfield(L, t, "trusted") != LUA_TNIL)
    luaL_argexpected(L, lua_istable(L, -1), 1, "flood.trusted: a list");
  int rc = sip_tp_flood(s->tp, &c);
  if (rc < 0)
    luaL_error(L, "flood: %s", sip_tp_strerror(rc));
  sip_tp_flood_trust_clear(s->tp);
  if (lua_istable(L, -1)) {
    for (lua_Integer i = 1; lua_rawgeti(L, -1, i) != LUA_TNIL; i++) {
      const char *cidr = lua_tostring(L, -1);
      if (!cidr || sip_tp_flood_trust(s->tp, cidr) < 0)
        luaL_error(L, "flood.trusted: bad entry %I", i);
      lua_pop(L, 1);
    }
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
}

void sip__lua_flood_configure(lua_State *L, int opts, sip_lua_server *s,
                              int sidx) {
  lua_getfield(L, opts, "flood");
  apply(L, -1, s, sidx);
  lua_pop(L, 1);
}

/* srv:set_flood(t) -> server: flood protection on with the options of t
 * (as the flood option of core.server), or off (nil or false). The
 * table of sources (and their blocks) is kept while max_entries stays. */
static int srv_set_flood(lua_State *L) {
  sip_lua_server *s = check_open(L);
  lua_settop(L, 2);
  apply(L, 2, s, 1);
  lua_settop(L, 1);
  return 1;
}

static sip_lua_server *check_open(lua_State *L) {
  sip_lua_server *s = luaL_checkudata(L, 1, SIP_LUA_SERVER);
  if (!s->tp)
    luaL_error(L, "attempt to use a closed " SIP_LUA_SERVER);
  return s;
}

static int trust_op(lua_State *L, int (*op)(sip_tp *, const char *),
                    const char *what) {
  sip_lua_server *s = check_open(L);
  const char *cidr = luaL_checkstring(L, 2);
  int rc = op(s->tp, cidr);
  if (rc < 0)
    return sip__lua_fail(L, rc, "%s %s: %s", what, cidr,
                         rc == SIP_EINVAL ? "malformed, or flood protection off"
                                          : sip_tp_strerror(rc));
  lua_pushboolean(L, 1);
  return 1;
}

/* srv:flood_trust(cidr) -> true, or nil, err, name: never count or block
 * that address or network (for example a dispatcher's destinations).
 * Trusting one again counts a reference (srv:flood_untrust drops one). */
static int srv_flood_trust(lua_State *L) {
  return trust_op(L, sip_tp_flood_trust, "flood_trust");
}

/* srv:flood_untrust(cidr) -> true, or nil, err, name: drop one reference
 * to a trusted address or network (as given to flood_trust); it stops
 * being trusted with its last. */
static int srv_flood_untrust(lua_State *L) {
  return trust_op(L, sip_tp_flood_untrust, "flood_untrust");
}

static void blocked_cb(void *arg, const struct sockaddr_storage *addr,
                       const char *user, size_t ulen, uint64_t remaining) {
  lua_State *L = arg;
  lua_createtable(L, 0, 3);
  push_ip(L, addr);
  lua_setfield(L, -2, "addr");
  if (user) {
    lua_pushlstring(L, user, ulen);
    lua_setfield(L, -2, "user");
  }
  lua_pushinteger(L, (lua_Integer)remaining);
  lua_setfield(L, -2, "remaining");
  lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
}

/* srv:flood_blocked() -> list of { addr =, user = (a per-user block),
 * remaining = ms }. */
static int srv_flood_blocked(lua_State *L) {
  sip_lua_server *s = check_open(L);
  lua_newtable(L);
  luaL_checkstack(L, 8, NULL);
  sip_tp_flood_blocked(s->tp, blocked_cb, L);
  return 1;
}

/* srv:flood_unblock(ip) -> number of entries unblocked. */
static int srv_flood_unblock(lua_State *L) {
  sip_lua_server *s = check_open(L);
  size_t n;
  const char *ip = luaL_checklstring(L, 2, &n);
  struct sockaddr_storage sa;
  if (sip_tp_addr(&sa, ip, n, 0) < 0)
    return luaL_argerror(L, 2, "a numeric IP address");
  lua_pushinteger(L, sip_tp_flood_unblock(s->tp, &sa));
  return 1;
}

/* srv:keep_flow(conn_id[, kept]) -> true, or nil, err, name: a registered
 * flow's connection is evicted last when the connection slots run out. */
static int srv_keep_flow(lua_State *L) {
  sip_lua_server *s = check_open(L);
  lua_Integer id = luaL_checkinteger(L, 2);
  int kept = lua_isnone(L, 3) ? 1 : lua_toboolean(L, 3);
  int rc = sip_tp_conn_keep(s->tp, (uint64_t)id, kept);
  if (rc < 0)
    return sip__lua_fail(L, rc, "keep_flow: %s", sip_tp_strerror(rc));
  lua_pushboolean(L, 1);
  return 1;
}

void sip__lua_flood_stats(lua_State *L, sip_lua_server *s) {
  sip_tp_counters c;
  sip_tp_stats(s->tp, &c);
  static const struct {
    const char *name;
    size_t off;
  } f[] = {
      {"conn_evicted", offsetof(sip_tp_counters, conn_evicted)},
      {"conn_refused_source", offsetof(sip_tp_counters, conn_refused_source)},
      {"flood_dropped", offsetof(sip_tp_counters, flood_dropped)},
      {"flood_blocks", offsetof(sip_tp_counters, flood_blocks)},
      {"flood_replied", offsetof(sip_tp_counters, flood_replied)},
      {"flood_vetoed", offsetof(sip_tp_counters, flood_vetoed)},
      {"flood_trusted", offsetof(sip_tp_counters, flood_trusted)},
      {"flood_evictions", offsetof(sip_tp_counters, flood_evictions)},
  };
  for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++) {
    uint64_t v;
    memcpy(&v, (const char *)&c + f[i].off, sizeof(v));
    lua_pushinteger(L, (lua_Integer)v);
    lua_setfield(L, -2, f[i].name);
  }
  lua_pushinteger(L, sip_tp_flood_blocked(s->tp, NULL, NULL));
  lua_setfield(L, -2, "flood_blocked");
}

/* req:keep_flow([kept]) -> true, or nil, err, name: the connection this
 * request came over is a registered flow (srv:keep_flow of its conn_id);
 * SIP_EINVAL for a request that came over UDP. */
static int req_keep_flow(lua_State *L) {
  sip_lua_rx *r = sip__lua_check_received(L, 1, "keep_flow");
  int kept = lua_isnone(L, 2) ? 1 : lua_toboolean(L, 2);
  int rc = !r->srv || !r->srv->tp ? SIP_ENOTFOUND
           : !r->src.conn_id
               ? SIP_EINVAL
               : sip_tp_conn_keep(r->srv->tp, r->src.conn_id, kept);
  if (rc < 0)
    return sip__lua_fail(L, rc, "keep_flow: %s", sip_tp_strerror(rc));
  lua_pushboolean(L, 1);
  return 1;
}

static const luaL_Reg flood_methods[] = {
    {"set_flood", srv_set_flood},
    {"flood_trust", srv_flood_trust},
    {"flood_untrust", srv_flood_untrust},
    {"flood_blocked", srv_flood_blocked},
    {"flood_unblock", srv_flood_unblock},
    {"keep_flow", srv_keep_flow},
    {NULL, NULL},
};

void sip__lua_open_flood(lua_State *L) {
  /* stack: core (core.Server exists) */
  lua_getfield(L, -1, "Server");
  luaL_setfuncs(L, flood_methods, 0);
  lua_pop(L, 1);
  lua_getfield(L, -1, "Request");
  lua_pushcfunction(L, req_keep_flow);
  lua_setfield(L, -2, "keep_flow");
  lua_pop(L, 1);
}
