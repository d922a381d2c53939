/* luasip.Redis: the binding of csrc/location/sip_redis.h (an asynchronous
 * Redis client on the luasip loop: hiredis and its libuv adapter), for the
 * redis location backend (lua/luasip/location/redis.lua).
 *
 *   local rd = core.redis(host, port, db, connect_timeout_ms, timeout_ms)
 *   rd:command(fn, "HSET", key, field, value) -> true | nil, err
 *       fn(reply) or fn(nil, err) runs later, on the loop, never inside
 *       command(); replies: status and bulk strings as strings, integers,
 *       arrays as tables (a nil element as false), a nil bulk as false, an
 *       error reply as nil, "ERR ..."
 *   rd:connected() -> boolean;  rd:close()
 *
 * Connecting, reconnecting, timeouts: sip_redis.h. A reply callback runs
 * under the one protected call. */
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "lsip.h"
#include "sip_error.h"
#include "sip_redis.h"

#define SIP_LUA_REDIS "luasip.Redis"

typedef struct lredis {
  sip_redis *r; /* NULL once closed */
  sip_lua_loop *lp;
  int gc;            /* closing from __gc: callbacks do not run Lua */
  lua_State *closeL; /* the thread doing the close (for unref) */
  char err[160];     /* the last connection error, once closed */
} lredis;

static void push_reply(lua_State *L, const redisReply *rep, int depth) {
  switch (rep->type) {
  case REDIS_REPLY_STRING:
  case REDIS_REPLY_STATUS:
    lua_pushlstring(L, rep->str, rep->len);
    break;
  case REDIS_REPLY_INTEGER:
    lua_pushinteger(L, (lua_Integer)rep->integer);
    break;
  case REDIS_REPLY_ARRAY:
    if (depth > 8 || !lua_checkstack(L, 4)) {
      lua_pushboolean(L, 0);
      break;
    }
    lua_createtable(L, (int)rep->elements, 0);
    for (size_t i = 0; i < rep->elements; i++) {
      push_reply(L, rep->element[i], depth + 1);
      lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    break;
  default: /* REDIS_REPLY_NIL, errors inside arrays */
    if (rep->type == REDIS_REPLY_ERROR)
      lua_pushlstring(L, rep->str, rep->len);
    else
      lua_pushboolean(L, 0);
    break;
  }
}

/* A command's outcome: fn(reply) or fn(nil, err); tag is fn's registry
 * reference. */
static void on_reply(void *ud, intptr_t tag, const redisReply *rep,
                     const char *err) {
  lredis *d = ud;
  int ref = (int)tag;
  /* the loop's thread, or the one calling close() outside the loop */
  lua_State *L = d->gc ? NULL : d->lp->L ? d->lp->L : d->closeL;
  if (!L) {
    if (d->closeL)
      luaL_unref(d->closeL, LUA_REGISTRYINDEX, ref);
    return;
  }
  int top = lua_gettop(L);
  if (!lua_checkstack(L, 6)) {
    luaL_unref(L, LUA_REGISTRYINDEX, ref);
    return;
  }
  lua_rawgeti(L, LUA_REGISTRYINDEX, ref);
  luaL_unref(L, LUA_REGISTRYINDEX, ref);
  int nargs;
  if (!rep) {
    lua_pushnil(L);
    lua_pushstring(L, err);
    nargs = 2;
  } else if (rep->type == REDIS_REPLY_ERROR) {
    lua_pushnil(L);
    lua_pushlstring(L, rep->str, rep->len);
    nargs = 2;
  } else {
    push_reply(L, rep, 0);
    nargs = 1;
  }
  sip__lua_call(L, nargs, "redis reply callback");
  lua_settop(L, top);
}

static lredis *check(lua_State *L) {
  return luaL_checkudata(L, 1, SIP_LUA_REDIS);
}

/* core.redis(host, port, db, connect_timeout_ms, timeout_ms) -> rd */
static int l_new(lua_State *L) {
  size_t hl;
  const char *host = luaL_checklstring(L, 1, &hl);
  lua_Integer port = luaL_checkinteger(L, 2);
  lua_Integer db = luaL_optinteger(L, 3, 0);
  lua_Integer cto = luaL_optinteger(L, 4, 2000);
  lua_Integer to = luaL_optinteger(L, 5, 2000);
  luaL_argcheck(L, hl > 0 && hl < 256, 1, "bad host");
  luaL_argcheck(L, port > 0 && port < 65536, 2, "bad port");
  luaL_argcheck(L, db >= 0 && db < 1000000, 3, "bad database");
  luaL_argcheck(L, cto > 0, 4, "timeout must be > 0");
  luaL_argcheck(L, to > 0, 5, "timeout must be > 0");
  sip_lua_loop *lp = sip__lua_loop(L);
  lredis *d = lua_newuserdatauv(L, sizeof(*d), 1);
  memset(d, 0, sizeof(*d));
  d->lp = lp;
  luaL_setmetatable(L, SIP_LUA_REDIS);
  sip__lua_push_loop(L); /* the loop outlives this object */
  lua_setiuservalue(L, -2, 1);
  if (sip_redis_open(&lp->loop, host, (int)port, (int)db, (uint64_t)cto,
                     (uint64_t)to, on_reply, d, &d->r) < 0)
    return luaL_error(L, "redis: out of memory");
  return 1;
}

/* rd:command(fn, arg...) -> true | nil, err */
static int l_command(lua_State *L) {
  lredis *d = check(L);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  int argc = lua_gettop(L) - 2;
  luaL_argcheck(L, argc >= 1, 3, "a command expected");
  if (!d->r)
    return sip__lua_fail(L, SIP_EINVAL, "closed");
  const char *argvs[32];
  size_t lens[32];
  const char **argv = argvs;
  size_t *argl = lens;
  if (argc > 32) {
    argv = lua_newuserdatauv(L, (size_t)argc * sizeof(*argv), 0);
    argl = lua_newuserdatauv(L, (size_t)argc * sizeof(*argl), 0);
  }
  for (int i = 0; i < argc; i++) {
    int t = lua_type(L, 3 + i);
    luaL_argcheck(L, t == LUA_TSTRING || t == LUA_TNUMBER, 3 + i,
                  "string or number expected");
    argv[i] = lua_tolstring(L, 3 + i, &argl[i]);
  }
  lua_pushvalue(L, 2);
  int ref = luaL_ref(L, LUA_REGISTRYINDEX);
  int rc = sip_redis_command(d->r, argc, argv, argl, (intptr_t)ref);
  if (rc < 0) {
    luaL_unref(L, LUA_REGISTRYINDEX, ref);
    if (rc == SIP_ENOMEM)
      return luaL_error(L, "redis: out of memory");
    const char *e = sip_redis_last_error(d->r);
    return sip__lua_fail(L, SIP_EINVAL, "%s", e ? e : "cannot send");
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* rd:connected() -> boolean */
static int l_connected(lua_State *L) {
  lredis *d = check(L);
  lua_pushboolean(L, d->r && sip_redis_connected(d->r));
  return 1;
}

/* Close: every pending command gets nil, "closed" (from close(), not from
 * __gc: a finalizer resumes no coroutine). */
static int close_impl(lua_State *L, int gc) {
  lredis *d = check(L);
  if (!d->r)
    return 0;
  sip_redis *r = d->r;
  d->r = NULL;
  d->gc = gc;
  d->closeL = L;
  sip_redis_close(r, d->lp->initialized, d->err, sizeof d->err);
  d->closeL = NULL;
  return 0;
}

/* rd:close() */
static int l_close(lua_State *L) { return close_impl(L, 0); }

static int l_gc(lua_State *L) { return close_impl(L, 1); }

/* rd:last_error() -> the last connection error (or nil) */
static int l_last_error(lua_State *L) {
  lredis *d = check(L);
  const char *e = d->r ? sip_redis_last_error(d->r) : d->err[0] ? d->err : NULL;
  if (e)
    lua_pushstring(L, e);
  else
    lua_pushnil(L);
  return 1;
}

void sip__lua_open_redis(lua_State *L) {
  static const luaL_Reg methods[] = {{"command", l_command},
                                     {"connected", l_connected},
                                     {"last_error", l_last_error},
                                     {"close", l_close},
                                     {NULL, NULL}};
  luaL_newmetatable(L, SIP_LUA_REDIS);
  luaL_newlib(L, methods);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, l_gc);
  lua_setfield(L, -2, "__gc");
  lua_pop(L, 1);
  lua_pushcfunction(L, l_new);
  lua_setfield(L, -2, "redis");
}
