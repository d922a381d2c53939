/* luasip.Redis: an asynchronous Redis client on the luasip loop (hiredis and
 * its libuv adapter), for the redis location backend
 * (lua/luasip/location/redis.lua).
 *
 *   local rd = core.redis(host, port, db, connect_timeout_ms, timeout_ms)
 *   rd:command(fn, "HSET", key, field, value) -> true | nil, err
 *       fn(reply) or fn(nil, err) runs later, on the loop, never inside
 *       command(); replies: status and bulk strings as strings, integers,
 *       arrays as tables (a nil element as false), a nil bulk as false, an
 *       error reply as nil, "ERR ..."
 *   rd:connected() -> boolean;  rd:close()
 *
 * The connection is made on the first command and made again by the first
 * command after it was lost, so a Redis that comes back is used again with
 * nothing to do. Failures are quick and never block: connecting runs on the
 * loop (give a numeric address: a host name is resolved by hiredis with a
 * blocking getaddrinfo), a connection not up after connect_timeout or a
 * command without a reply after timeout drops the connection, and every
 * pending command gets nil, "<why>".
 *
 * The connection does not keep the loop alive when idle; a pending command
 * does (its timeout timer runs). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/adapters/libuv.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "lsip.h"

#define SIP_LUA_REDIS "luasip.Redis"
#define TICK_MS 50

typedef struct rdreq {
  struct rdreq *next, *prev;
  struct lredis *r;
  int fn_ref;
  uint64_t deadline;
} rdreq;

typedef struct lredis {
  sip_lua_loop *lp;
  redisAsyncContext *ac; /* NULL: not connected (nor connecting) */
  int connected;         /* the connect callback said yes */
  uint64_t connect_deadline;
  uint64_t connect_timeout, command_timeout; /* ms */
  uv_timer_t *timer;                         /* malloc'd (outlives closes) */
  rdreq pending;                             /* circular list, oldest first */
  int npending;
  int closing;       /* inside close/__gc: callbacks do not run Lua */
  lua_State *closeL; /* the thread doing the close (for unref) */
  const char *why;   /* reason given to the replies of a dropped context */
  char err[160];     /* the last connection error */
  int port, db;
  char host[256];
} lredis;

static void on_timer_closed(uv_handle_t *h) { free(h); }

static uint64_t now_ms(lredis *r) { return uv_now(&r->lp->loop); }

static void push_reply(lua_State *L, redisReply *rep, int depth) {
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

static void drop(lredis *r, const char *why);

static void tick(uv_timer_t *h) {
  lredis *r = h->data;
  if (!r)
    return;
  uint64_t now = now_ms(r);
  if (r->ac && !r->connected && now >= r->connect_deadline) {
    drop(r, "connect timed out");
  } else if (r->npending > 0 && now >= r->pending.next->deadline) {
    drop(r, "timed out");
  }
  if (r->npending == 0 && !(r->ac && !r->connected))
    uv_timer_stop(h);
}

/* Start the tick while something waits. */
static void watch(lredis *r) {
  if (r->timer && !uv_is_active((uv_handle_t *)r->timer) &&
      (r->npending > 0 || (r->ac && !r->connected)))
    uv_timer_start(r->timer, tick, TICK_MS, TICK_MS);
}

/* Give up the connection: every pending command gets nil, why. */
static void drop(lredis *r, const char *why) {
  redisAsyncContext *ac = r->ac;
  if (!ac)
    return;
  r->ac = NULL;
  r->connected = 0;
  snprintf(r->err, sizeof r->err, "%s", why);
  r->why = why;
  redisAsyncFree(ac); /* runs the pending callbacks with a NULL reply */
  r->why = NULL;
}

static void on_connect(const redisAsyncContext *ac, int status) {
  lredis *r = ac->data;
  if (!r || r->ac != ac)
    return;
  if (status != REDIS_OK) {
    snprintf(r->err, sizeof r->err, "%s",
             ac->errstr[0] ? ac->errstr : "cannot connect");
    r->ac = NULL; /* hiredis frees it after this callback */
    r->connected = 0;
    return;
  }
  r->connected = 1;
}

static void on_disconnect(const redisAsyncContext *ac, int status) {
  (void)status;
  lredis *r = ac->data;
  if (!r || r->ac != ac)
    return;
  snprintf(r->err, sizeof r->err, "%s",
           ac->errstr[0] ? ac->errstr : "connection lost");
  r->ac = NULL;
  r->connected = 0;
}

static void on_reply(redisAsyncContext *ac, void *reply, void *priv) {
  rdreq *c = priv;
  lredis *r = c->r;
  c->prev->next = c->next;
  c->next->prev = c->prev;
  r->npending--;
  redisReply *rep = reply;
  char why[200];
  if (!rep) {
    /* only a context on its way out gives NULL replies */
    const char *w = r->why          ? r->why
                    : ac->errstr[0] ? ac->errstr
                    : r->err[0]     ? r->err
                                    : "connection lost";
    snprintf(why, sizeof why, "%s", w);
    if (r->ac == ac) {
      snprintf(r->err, sizeof r->err, "%s", w);
      r->ac = NULL;
      r->connected = 0;
    }
  }
  /* the loop's thread, or the one calling close() outside the loop */
  lua_State *L = r->closing ? NULL : r->lp->L ? r->lp->L : r->closeL;
  if (!L) {
    lua_State *UL = r->closeL;
    if (UL)
      luaL_unref(UL, LUA_REGISTRYINDEX, c->fn_ref);
    free(c);
    return;
  }
  int top = lua_gettop(L);
  if (!lua_checkstack(L, 6)) {
    luaL_unref(L, LUA_REGISTRYINDEX, c->fn_ref);
    free(c);
    return;
  }
  lua_rawgeti(L, LUA_REGISTRYINDEX, c->fn_ref);
  luaL_unref(L, LUA_REGISTRYINDEX, c->fn_ref);
  free(c);
  int nargs;
  if (!rep) {
    lua_pushnil(L);
    lua_pushstring(L, why);
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

static void on_select(redisAsyncContext *ac, void *reply, void *priv) {
  lredis *r = priv;
  redisReply *rep = reply;
  if (rep && rep->type == REDIS_REPLY_ERROR && r->ac == ac) {
    snprintf(r->err, sizeof r->err, "SELECT %d: %s", r->db, rep->str);
    redisAsyncDisconnect(ac);
  }
}

/* The adapter's poll callback ignores a poll error, and libuv stops the
 * handle on POLLERR (a refused connect, a reset): hiredis would never hear
 * of it and every command would wait for its timeout. These hooks replace
 * the adapter's (same struct, same cleanup) with a callback that lets
 * hiredis read/write on an error, so it finds the socket error at once. */
static void poll_cb(uv_poll_t *h, int status, int events) {
  redisLibuvEvents *p = h->data;
  if (status != 0)
    events = p->events;
  if (p->context && (events & UV_READABLE))
    redisAsyncHandleRead(p->context);
  if (p->context && (events & UV_WRITABLE))
    redisAsyncHandleWrite(p->context);
}

static void set_events(redisLibuvEvents *p, int events) {
  p->events = events;
  if (events)
    uv_poll_start(&p->handle, events, poll_cb);
  else
    uv_poll_stop(&p->handle);
}

static void add_read(void *d) {
  redisLibuvEvents *p = d;
  set_events(p, p->events | UV_READABLE);
}

static void del_read(void *d) {
  redisLibuvEvents *p = d;
  set_events(p, p->events & ~UV_READABLE);
}

static void add_write(void *d) {
  redisLibuvEvents *p = d;
  set_events(p, p->events | UV_WRITABLE);
}

static void del_write(void *d) {
  redisLibuvEvents *p = d;
  set_events(p, p->events & ~UV_WRITABLE);
}

static int connect_now(lredis *r) {
  redisAsyncContext *ac = redisAsyncConnect(r->host, r->port);
  if (!ac) {
    snprintf(r->err, sizeof r->err, "out of memory");
    return -1;
  }
  if (ac->err) {
    snprintf(r->err, sizeof r->err, "%s", ac->errstr);
    redisAsyncFree(ac);
    return -1;
  }
  if (redisLibuvAttach(ac, &r->lp->loop) != REDIS_OK) {
    snprintf(r->err, sizeof r->err, "cannot watch the connection");
    redisAsyncFree(ac);
    return -1;
  }
  /* an idle connection is not work for the loop */
  redisLibuvEvents *ev = ac->ev.data;
  uv_unref((uv_handle_t *)&ev->handle);
  ac->ev.addRead = add_read;
  ac->ev.delRead = del_read;
  ac->ev.addWrite = add_write;
  ac->ev.delWrite = del_write;
  ac->data = r;
  redisAsyncSetConnectCallback(ac, on_connect);
  redisAsyncSetDisconnectCallback(ac, on_disconnect);
  r->ac = ac;
  r->connected = 0;
  r->connect_deadline = now_ms(r) + r->connect_timeout;
  if (r->db != 0) {
    char db[16];
    snprintf(db, sizeof db, "%d", r->db);
    const char *argv[2] = {"SELECT", db};
    size_t lens[2] = {6, strlen(db)};
    redisAsyncCommandArgv(ac, on_select, r, 2, argv, lens);
  }
  watch(r);
  return 0;
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
  lredis *r = lua_newuserdatauv(L, sizeof(*r), 1);
  memset(r, 0, sizeof(*r));
  r->lp = lp;
  r->pending.next = r->pending.prev = &r->pending;
  memcpy(r->host, host, hl + 1);
  r->port = (int)port;
  r->db = (int)db;
  r->connect_timeout = (uint64_t)cto;
  r->command_timeout = (uint64_t)to;
  luaL_setmetatable(L, SIP_LUA_REDIS);
  sip__lua_push_loop(L); /* the loop outlives this object */
  lua_setiuservalue(L, -2, 1);
  r->timer = malloc(sizeof(*r->timer));
  if (!r->timer)
    return luaL_error(L, "redis: out of memory");
  uv_timer_init(&lp->loop, r->timer);
  r->timer->data = r;
  return 1;
}

/* rd:command(fn, arg...) -> true | nil, err */
static int l_command(lua_State *L) {
  lredis *r = check(L);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  int argc = lua_gettop(L) - 2;
  luaL_argcheck(L, argc >= 1, 3, "a command expected");
  if (r->closing || !r->timer)
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
  if (!r->ac && connect_now(r) < 0)
    return sip__lua_fail(L, SIP_EINVAL, "%s", r->err);
  rdreq *c = malloc(sizeof(*c));
  if (!c)
    return luaL_error(L, "redis: out of memory");
  c->r = r;
  c->deadline = now_ms(r) + r->command_timeout;
  if (redisAsyncCommandArgv(r->ac, on_reply, c, argc, argv, argl) != REDIS_OK) {
    free(c);
    drop(r, "connection lost");
    return sip__lua_fail(L, SIP_EINVAL, "%s", r->err);
  }
  lua_pushvalue(L, 2);
  c->fn_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  c->prev = r->pending.prev;
  c->next = &r->pending;
  r->pending.prev->next = c;
  r->pending.prev = c;
  r->npending++;
  watch(r);
  lua_pushboolean(L, 1);
  return 1;
}

/* rd:connected() -> boolean */
static int l_connected(lua_State *L) {
  lredis *r = check(L);
  lua_pushboolean(L, r->ac != NULL && r->connected);
  return 1;
}

/* Close: every pending command gets nil, "closed" (from close(), not from
 * __gc: a finalizer resumes no coroutine). */
static int close_impl(lua_State *L, int gc) {
  lredis *r = check(L);
  if (r->closing)
    return 0;
  r->closing = gc;
  r->closeL = L;
  drop(r, "closed");
  r->closing = 1;
  if (r->timer) {
    r->timer->data = NULL;
    if (r->lp->initialized)
      uv_close((uv_handle_t *)r->timer, on_timer_closed);
    else
      free(r->timer);
    r->timer = NULL;
  }
  r->closeL = NULL;
  return 0;
}

/* rd:close() */
static int l_close(lua_State *L) { return close_impl(L, 0); }

static int l_gc(lua_State *L) { return close_impl(L, 1); }

/* rd:last_error() -> the last connection error (or nil) */
static int l_last_error(lua_State *L) {
  lredis *r = check(L);
  if (r->err[0])
    lua_pushstring(L, r->err);
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
