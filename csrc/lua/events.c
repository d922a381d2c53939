/* Timers, signals and file watches on the luasip loop.
 *
 *   core.timer(ms, repeat_ms, fn) -> handle   fn() after ms, then every
 *                                             repeat_ms (0: once)
 *   core.signal(name, fn) -> handle           fn(name) on "SIGHUP", "SIGINT",
 *                                             "SIGTERM", "SIGUSR1", "SIGUSR2"
 *   core.watch(path, fn) -> handle            fn(filename, "change"|"rename")
 *   handle:stop()      close it (idempotent); the callback is released
 *   handle:unref()     it no longer keeps core.run() alive
 *   handle:active()    true until stopped (a one-shot timer stops once fired)
 *
 * libuv needs the handle's memory until its close callback, after Lua may
 * have collected the userdata, so the uv handle is malloc'd and the
 * userdata points at it. An active handle keeps a registry reference to its
 * userdata (and so to its callback): dropping the Lua value of a running
 * timer does not stop it; stop() does.
 *
 * Callbacks run through sip__lua_call: an error is written to stderr
 * with its traceback and the loop goes on (luasip.server wraps the
 * callbacks it gives here in coroutines with its own error handling). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lsip.h"

#define SIP_LUA_EVENT "luasip.Event"

enum event_kind { EV_TIMER, EV_SIGNAL, EV_WATCH };

typedef struct event {
  union {
    uv_handle_t handle;
    uv_timer_t timer;
    uv_signal_t signal;
    uv_fs_event_t watch;
  } u;
  sip_lua_loop *lp;
  int kind;
  int self_ref; /* LUA_NOREF once stopped */
  int fn_ref;
  int signum;
} event;

typedef struct event_box {
  event *ev; /* NULL once stopped */
} event_box;

static void free_on_close(uv_handle_t *h) { free(h); }

static void event_stop(lua_State *L, event_box *box) {
  event *ev = box->ev;
  if (!ev)
    return;
  box->ev = NULL;
  luaL_unref(L, LUA_REGISTRYINDEX, ev->fn_ref);
  luaL_unref(L, LUA_REGISTRYINDEX, ev->self_ref);
  if (ev->lp->initialized)
    uv_close(&ev->u.handle, free_on_close);
  else
    free(ev);
}

/* Push the callback of an active event (0: nothing to call). */
static int push_callback(lua_State *L, event *ev) {
  if (!L || ev->self_ref == LUA_NOREF || !lua_checkstack(L, 6))
    return 0;
  lua_rawgeti(L, LUA_REGISTRYINDEX, ev->fn_ref);
  return 1;
}

/* A one-shot timer is stopped before its callback runs, so that the
 * callback may start a new one and handle:active() is false inside it. */
static void on_timer(uv_timer_t *t) {
  event *ev = (event *)t;
  lua_State *L = ev->lp->L;
  if (!push_callback(L, ev))
    return;
  if (uv_timer_get_repeat(t) == 0) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, ev->self_ref);
    event_box *box = lua_touserdata(L, -1);
    lua_pop(L, 1);
    /* the callback stays on the stack; stop() only drops the references */
    event_stop(L, box);
  }
  sip__lua_call(L, 0, "a timer callback");
}

static const struct {
  const char *name;
  int num;
} signals[] = {
    {"SIGHUP", SIGHUP},   {"SIGINT", SIGINT},   {"SIGTERM", SIGTERM},
    {"SIGUSR1", SIGUSR1}, {"SIGUSR2", SIGUSR2},
};

static void on_signal(uv_signal_t *s, int signum) {
  event *ev = (event *)s;
  lua_State *L = ev->lp->L;
  if (!push_callback(L, ev))
    return;
  const char *name = "?";
  for (size_t i = 0; i < sizeof signals / sizeof signals[0]; i++)
    if (signals[i].num == signum)
      name = signals[i].name;
  lua_pushstring(L, name);
  sip__lua_call(L, 1, "a signal callback");
}

static void on_watch(uv_fs_event_t *w, const char *filename, int events,
                     int status) {
  event *ev = (event *)w;
  lua_State *L = ev->lp->L;
  if (!push_callback(L, ev))
    return;
  if (status < 0) {
    lua_pushnil(L);
    lua_pushstring(L, uv_strerror(status));
  } else {
    lua_pushstring(L, filename ? filename : "");
    lua_pushstring(L, (events & UV_RENAME) ? "rename" : "change");
  }
  sip__lua_call(L, 2, "a file watch callback");
}

/* A new stopped event and its box at the top of the stack; fn at fnidx. */
static event *new_event(lua_State *L, int kind, int fnidx) {
  luaL_checktype(L, fnidx, LUA_TFUNCTION);
  sip_lua_loop *lp = sip__lua_loop(L);
  event_box *box = lua_newuserdatauv(L, sizeof *box, 0);
  box->ev = NULL;
  luaL_setmetatable(L, SIP_LUA_EVENT);
  event *ev = calloc(1, sizeof *ev);
  if (!ev)
    luaL_error(L, "not enough memory");
  ev->lp = lp;
  ev->kind = kind;
  ev->self_ref = LUA_NOREF;
  ev->fn_ref = LUA_NOREF;
  box->ev = ev;
  return ev;
}

/* After the uv handle was initialized and started: take the references. */
static void arm_event(lua_State *L, event *ev, int fnidx) {
  lua_pushvalue(L, fnidx);
  ev->fn_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_pushvalue(L, -1);
  ev->self_ref = luaL_ref(L, LUA_REGISTRYINDEX);
}

/* The uv call failed: nothing to close when init failed, a close when the
 * start did. Returns nil, message. */
static int event_failed(lua_State *L, event_box *box, int initialized, int rc,
                        const char *what) {
  event *ev = box->ev;
  box->ev = NULL;
  if (initialized)
    uv_close(&ev->u.handle, free_on_close);
  else
    free(ev);
  return sip__lua_fail(L, rc, "%s: %s", what, uv_strerror(rc));
}

static int l_timer(lua_State *L) {
  lua_Integer ms = luaL_checkinteger(L, 1);
  lua_Integer rep = luaL_optinteger(L, 2, 0);
  luaL_argcheck(L, ms >= 0, 1, "milliseconds >= 0");
  luaL_argcheck(L, rep >= 0, 2, "milliseconds >= 0");
  event *ev = new_event(L, EV_TIMER, 3);
  event_box *box = lua_touserdata(L, -1);
  int rc = uv_timer_init(&ev->lp->loop, &ev->u.timer);
  if (rc < 0)
    return event_failed(L, box, 0, rc, "timer");
  rc = uv_timer_start(&ev->u.timer, on_timer, (uint64_t)ms, (uint64_t)rep);
  if (rc < 0)
    return event_failed(L, box, 1, rc, "timer");
  arm_event(L, ev, 3);
  return 1;
}

static int l_signal(lua_State *L) {
  const char *name = luaL_checkstring(L, 1);
  int signum = 0;
  for (size_t i = 0; i < sizeof signals / sizeof signals[0]; i++)
    if (strcmp(signals[i].name, name) == 0)
      signum = signals[i].num;
  if (!signum)
    return luaL_argerror(L, 1, "SIGHUP, SIGINT, SIGTERM, SIGUSR1 or SIGUSR2");
  event *ev = new_event(L, EV_SIGNAL, 2);
  event_box *box = lua_touserdata(L, -1);
  ev->signum = signum;
  int rc = uv_signal_init(&ev->lp->loop, &ev->u.signal);
  if (rc < 0)
    return event_failed(L, box, 0, rc, name);
  rc = uv_signal_start(&ev->u.signal, on_signal, signum);
  if (rc < 0)
    return event_failed(L, box, 1, rc, name);
  arm_event(L, ev, 2);
  return 1;
}

static int l_watch(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  event *ev = new_event(L, EV_WATCH, 2);
  event_box *box = lua_touserdata(L, -1);
  int rc = uv_fs_event_init(&ev->lp->loop, &ev->u.watch);
  if (rc < 0)
    return event_failed(L, box, 0, rc, path);
  rc = uv_fs_event_start(&ev->u.watch, on_watch, path, 0);
  if (rc < 0)
    return event_failed(L, box, 1, rc, path);
  arm_event(L, ev, 2);
  return 1;
}

static int ev_stop(lua_State *L) {
  event_stop(L, luaL_checkudata(L, 1, SIP_LUA_EVENT));
  return 0;
}

static int ev_unref(lua_State *L) {
  event_box *box = luaL_checkudata(L, 1, SIP_LUA_EVENT);
  if (box->ev)
    uv_unref(&box->ev->u.handle);
  lua_settop(L, 1);
  return 1;
}

static int ev_active(lua_State *L) {
  event_box *box = luaL_checkudata(L, 1, SIP_LUA_EVENT);
  lua_pushboolean(L, box->ev != NULL);
  return 1;
}

/* Only reached for a stopped event (an active one is referenced), or at
 * lua_close, where the loop's own __gc closes what is left. */
static int ev_gc(lua_State *L) {
  event_box *box = luaL_checkudata(L, 1, SIP_LUA_EVENT);
  if (box->ev && box->ev->lp->initialized) {
    event *ev = box->ev;
    box->ev = NULL;
    uv_close(&ev->u.handle, free_on_close);
  }
  return 0;
}

static int ev_tostring(lua_State *L) {
  static const char *const kinds[] = {"timer", "signal", "watch"};
  event_box *box = luaL_checkudata(L, 1, SIP_LUA_EVENT);
  lua_pushfstring(L, "luasip.Event (%s, %s)",
                  box->ev ? kinds[box->ev->kind] : "-",
                  box->ev ? "active" : "stopped");
  return 1;
}

static const luaL_Reg event_methods[] = {
    {"stop", ev_stop},
    {"unref", ev_unref},
    {"active", ev_active},
    {NULL, NULL},
};

static const luaL_Reg event_funcs[] = {
    {"timer", l_timer},
    {"signal", l_signal},
    {"watch", l_watch},
    {NULL, NULL},
};

void sip__lua_open_events(lua_State *L) {
  /* stack: core */
  luaL_newmetatable(L, SIP_LUA_EVENT);
  luaL_newlib(L, event_methods);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, ev_gc);
  lua_setfield(L, -2, "__gc");
  lua_pushcfunction(L, ev_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pop(L, 1);
  luaL_setfuncs(L, event_funcs, 0);
}
