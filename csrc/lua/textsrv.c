/* The Lua binding of the text server (csrc/transport/sip_textsrv.h: a
 * small request/reply server on the luasip loop, for the metrics endpoint
 * and the control socket, and the blocking client of the control socket).
 *
 *   core.text_server(spec, opts, fn) -> handle | nil, err, name
 *     spec  "tcp:127.0.0.1:9090", "tcp:[::1]:0" or "unix:/run/luasip.ctl"
 *     opts  terminator ("\n"): the request ends with it
 *           max_request (8192 bytes): a longer one gets `too_large` (a
 *             string written before closing, default none) and is closed
 *           timeout (5000 ms): a connection lives that long at most
 *           max_conns (32): more connections at once are closed at once
 *           mode (0600): permissions of a Unix socket's file
 *           allow_uid (-1): a uid admitted besides root and our own
 *     fn(id, request, uid) runs when a request is complete (uid: the
 *       peer's, for a Unix socket; -1 for TCP); it answers, now or later,
 *       with handle:reply(id, bytes), after which the connection closes.
 *       A peer of a Unix socket that is neither root, nor our user, nor
 *       allow_uid is answered "error: permission denied\n" and closed
 *       before fn sees anything (counted: refused).
 *   handle:reply(id, bytes) -> true | nil, "gone"
 *   handle:port()    the bound TCP port (0 for a Unix socket)
 *   handle:stats()   { accepted, refused, too_large, timeouts, busy }
 *   handle:close()   stop listening, close every connection (idempotent;
 *                    a Unix socket's file is removed)
 *
 *   core.ctl_call(path, request[, timeout_ms]) -> reply | nil, err
 *     blocking (for the `luasip ctl` command, never inside a server):
 *     connect to a Unix socket, write request, read until EOF.
 *
 * Memory: the server's (sip_textsrv.h); the handle keeps a registry
 * reference to itself (and so to fn) while open. */
#include <stdlib.h>
#include <string.h>

#include "lsip.h"
#include "sip_error.h"
#include "sip_textsrv.h"

#define SIP_LUA_TEXTSRV "luasip.TextServer"

typedef struct tsrv_box {
  sip_textsrv *srv; /* NULL once closed */
  sip_lua_loop *lp;
  int self_ref, fn_ref;
} tsrv_box;

/* nil, "EADDRINUSE: what: address already in use", "EADDRINUSE" */
static int uv_fail(lua_State *L, int rc, const char *what) {
  lua_pushnil(L);
  lua_pushfstring(L, "%s: %s: %s", uv_err_name(rc), what, uv_strerror(rc));
  lua_pushstring(L, uv_err_name(rc));
  return 3;
}

/* A complete request: fn(id, request, uid), under the one protected call. */
static int on_request(void *ud, int64_t id, const char *req, size_t len,
                      int uid) {
  tsrv_box *box = ud;
  lua_State *L = box->lp->L;
  if (!L || !lua_checkstack(L, 6))
    return -1;
  lua_rawgeti(L, LUA_REGISTRYINDEX, box->fn_ref);
  lua_pushinteger(L, (lua_Integer)id);
  lua_pushlstring(L, req, len);
  lua_pushinteger(L, uid);
  sip__lua_call(L, 3, "a text server callback");
  return 0;
}

static void srv_close(lua_State *L, tsrv_box *box) {
  if (!box->srv)
    return;
  sip_textsrv_close(box->srv);
  box->srv = NULL;
  if (L) {
    luaL_unref(L, LUA_REGISTRYINDEX, box->fn_ref);
    luaL_unref(L, LUA_REGISTRYINDEX, box->self_ref);
  }
}

static sip_textsrv *check_srv(lua_State *L) {
  tsrv_box *box = luaL_checkudata(L, 1, SIP_LUA_TEXTSRV);
  if (!box->srv)
    luaL_error(L, "text server is closed");
  return box->srv;
}

static lua_Integer get_int(lua_State *L, int t, const char *k, lua_Integer def,
                           lua_Integer lo, lua_Integer hi) {
  lua_getfield(L, t, k);
  lua_Integer v = lua_isnil(L, -1) ? def : luaL_checkinteger(L, -1);
  lua_pop(L, 1);
  if (v < lo || v > hi)
    luaL_error(L, "text_server: %s out of range", k);
  return v;
}

static int l_text_server(lua_State *L) {
  const char *spec = luaL_checkstring(L, 1);
  luaL_checktype(L, 2, LUA_TTABLE);
  luaL_checktype(L, 3, LUA_TFUNCTION);
  struct sockaddr_storage ss;
  const char *why;
  if (sip_textsrv_parse_spec(spec, &ss, &why) < 0)
    return luaL_argerror(L, 1, why);
  sip_textsrv_config cfg;
  sip_textsrv_config_init(&cfg);
  cfg.max_request = (size_t)get_int(L, 2, "max_request", 8192, 16, 1 << 20);
  cfg.timeout_ms = (uint64_t)get_int(L, 2, "timeout", 5000, 1, 3600000);
  cfg.max_conns = (int)get_int(L, 2, "max_conns", 32, 1, 4096);
  cfg.allow_uid = (int)get_int(L, 2, "allow_uid", -1, -1, 0x7fffffff);
  cfg.mode = (unsigned)get_int(L, 2, "mode", 0600, 0, 0777);
  lua_getfield(L, 2, "terminator");
  size_t tl = 1;
  const char *term = lua_isnil(L, -1) ? "\n" : luaL_checklstring(L, -1, &tl);
  if (tl == 0 || tl >= sizeof cfg.term)
    return luaL_error(L, "text_server: terminator of 1 to 7 bytes");
  memcpy(cfg.term, term, tl);
  cfg.term_len = tl;
  lua_pop(L, 1);
  lua_getfield(L, 2, "too_large"); /* stays on the stack while used */
  if (!lua_isnil(L, -1))
    cfg.too_large = luaL_checklstring(L, -1, &cfg.too_large_len);
  tsrv_box *box = lua_newuserdatauv(L, sizeof *box, 0);
  box->srv = NULL;
  box->lp = sip__lua_loop(L);
  box->self_ref = box->fn_ref = LUA_NOREF;
  luaL_setmetatable(L, SIP_LUA_TEXTSRV);
  int ud = lua_gettop(L);
  cfg.cb = on_request;
  cfg.ud = box;
  int rc = sip_textsrv_open(&box->lp->loop, spec, &cfg, &box->srv);
  if (rc < 0)
    return uv_fail(L, rc, spec);
  lua_pushvalue(L, 3);
  box->fn_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_pushvalue(L, ud);
  box->self_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  return 1;
}

static int ts_reply(lua_State *L) {
  sip_textsrv *s = check_srv(L);
  lua_Integer id = luaL_checkinteger(L, 2);
  size_t n;
  const char *p = luaL_checklstring(L, 3, &n);
  int rc = sip_textsrv_reply(s, (int64_t)id, p, n);
  if (rc == SIP_ENOTFOUND) {
    lua_pushnil(L);
    lua_pushliteral(L, "gone");
    return 2;
  }
  if (rc < 0)
    return uv_fail(L, rc, "reply");
  lua_pushboolean(L, 1);
  return 1;
}

static int ts_port(lua_State *L) {
  lua_pushinteger(L, sip_textsrv_port(check_srv(L)));
  return 1;
}

static int ts_stats(lua_State *L) {
  sip_textsrv_stats st;
  sip_textsrv_get_stats(check_srv(L), &st);
  lua_createtable(L, 0, 6);
#define SET(k, v)                                                              \
  lua_pushinteger(L, (lua_Integer)(v));                                        \
  lua_setfield(L, -2, k)
  SET("accepted", st.accepted);
  SET("refused", st.refused);
  SET("too_large", st.too_large);
  SET("timeouts", st.timeouts);
  SET("busy", st.busy);
  SET("open", st.open);
#undef SET
  return 1;
}

static int ts_close(lua_State *L) {
  srv_close(L, luaL_checkudata(L, 1, SIP_LUA_TEXTSRV));
  return 0;
}

/* Reached only once closed (an open server is referenced), or at
 * lua_close. */
static int ts_gc(lua_State *L) {
  tsrv_box *box = luaL_checkudata(L, 1, SIP_LUA_TEXTSRV);
  if (box->srv && box->lp->initialized)
    srv_close(NULL, box);
  return 0;
}

static int ts_tostring(lua_State *L) {
  tsrv_box *box = luaL_checkudata(L, 1, SIP_LUA_TEXTSRV);
  lua_pushfstring(L, "luasip.TextServer (%s)", box->srv ? "open" : "closed");
  return 1;
}

/* core.ctl_call(path, request[, timeout_ms]) -> reply | nil, err */
static int l_ctl_call(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  size_t n, len;
  const char *req = luaL_checklstring(L, 2, &n);
  lua_Integer timeout = luaL_optinteger(L, 3, 10000);
  char *out;
  int rc = sip_textsrv_call(path, req, n, (int)timeout, &out, &len);
  if (rc < 0) {
    lua_pushnil(L);
    lua_pushfstring(L, "%s: %s", path, strerror(-rc));
    return 2;
  }
  lua_pushlstring(L, out, len);
  free(out);
  return 1;
}

static const luaL_Reg ts_methods[] = {
    {"reply", ts_reply}, {"port", ts_port}, {"stats", ts_stats},
    {"close", ts_close}, {NULL, NULL},
};

void sip__lua_open_textsrv(lua_State *L) {
  luaL_newmetatable(L, SIP_LUA_TEXTSRV);
  luaL_newlib(L, ts_methods);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, ts_gc);
  lua_setfield(L, -2, "__gc");
  lua_pushcfunction(L, ts_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pop(L, 1);
  lua_pushcfunction(L, l_text_server);
  lua_setfield(L, -2, "text_server");
  lua_pushcfunction(L, l_ctl_call);
  lua_setfield(L, -2, "ctl_call");
}
