/* luasip.LocationTimer: the one background timer a location store drives its
 * expiry with (the luasip.location.* modules), and the wall clock it compares
 * binding expiry times with.
 *
 *   local t = core.location_timer(fn)   -- fn() runs on the loop when due
 *   t:start(ms)                         -- one-shot; re-arming replaces it
 *   t:stop(); t:close()
 *   core.location_clock() -> seconds since the epoch (float, microseconds)
 *
 * The timer does not keep the loop alive (a store is not work to do: a
 * server or a pending request is). fn runs under lua_pcall on the thread
 * inside core.run/step; an error is printed to stderr, never propagated
 * into libuv. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/time.h>

#include "lsip.h"

#define SIP_LUA_LOCTIMER "luasip.LocationTimer"

typedef struct loctimer {
  uv_timer_t *h; /* malloc'd: it may outlive the userdata until its close */
  sip_lua_loop *lp;
  int fn_ref;
} loctimer;

static void on_closed(uv_handle_t *h) { free(h); }

static int msgh(lua_State *L) {
  const char *m = lua_tostring(L, 1);
  luaL_traceback(L, L, m ? m : "(error object is not a string)", 1);
  return 1;
}

static void fire(uv_timer_t *h) {
  loctimer *t = h->data;
  lua_State *L = t ? t->lp->L : NULL;
  if (!L || t->fn_ref == LUA_NOREF || !lua_checkstack(L, 4))
    return;
  int top = lua_gettop(L);
  lua_pushcfunction(L, msgh);
  lua_rawgeti(L, LUA_REGISTRYINDEX, t->fn_ref);
  if (lua_pcall(L, 0, 0, top + 1) != LUA_OK)
    fprintf(stderr, "luasip: error: location timer: %s\n",
            lua_tostring(L, -1) ? lua_tostring(L, -1) : "?");
  lua_settop(L, top);
}

static void release(lua_State *L, loctimer *t) {
  if (t->h) {
    t->h->data = NULL;
    if (t->lp->initialized)
      uv_close((uv_handle_t *)t->h, on_closed);
    t->h = NULL;
  }
  if (t->fn_ref != LUA_NOREF) {
    luaL_unref(L, LUA_REGISTRYINDEX, t->fn_ref);
    t->fn_ref = LUA_NOREF;
  }
}

/* core.location_timer(fn) -> timer */
static int l_new(lua_State *L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  sip_lua_loop *lp = sip__lua_loop(L);
  loctimer *t = lua_newuserdatauv(L, sizeof(*t), 1);
  t->h = NULL;
  t->lp = lp;
  t->fn_ref = LUA_NOREF;
  luaL_setmetatable(L, SIP_LUA_LOCTIMER);
  sip__lua_push_loop(L); /* the loop outlives the timer */
  lua_setiuservalue(L, -2, 1);
  t->h = malloc(sizeof(*t->h));
  if (!t->h)
    return luaL_error(L, "location_timer: out of memory");
  uv_timer_init(&lp->loop, t->h);
  uv_unref((uv_handle_t *)t->h);
  t->h->data = t;
  lua_pushvalue(L, 1);
  t->fn_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  return 1;
}

/* t:start(ms): fire once after ms milliseconds (replaces a pending start) */
static int l_start(lua_State *L) {
  loctimer *t = luaL_checkudata(L, 1, SIP_LUA_LOCTIMER);
  lua_Number ms = luaL_checknumber(L, 2);
  if (!t->h)
    return luaL_error(L, "location timer is closed");
  if (ms < 0)
    ms = 0;
  if (ms > 1e12)
    ms = 1e12;
  uv_timer_start(t->h, fire, (uint64_t)ms, 0);
  return 0;
}

/* t:stop() */
static int l_stop(lua_State *L) {
  loctimer *t = luaL_checkudata(L, 1, SIP_LUA_LOCTIMER);
  if (t->h)
    uv_timer_stop(t->h);
  return 0;
}

/* t:close() (also __gc) */
static int l_close(lua_State *L) {
  release(L, luaL_checkudata(L, 1, SIP_LUA_LOCTIMER));
  return 0;
}

/* core.location_clock() -> seconds since the epoch, microsecond precision */
static int l_clock(lua_State *L) {
  struct timeval tv;
  gettimeofday(&tv, NULL);
  lua_pushnumber(L, (lua_Number)tv.tv_sec + (lua_Number)tv.tv_usec / 1e6);
  return 1;
}

void sip__lua_open_loctimer(lua_State *L) {
  static const luaL_Reg methods[] = {
      {"start", l_start}, {"stop", l_stop}, {"close", l_close}, {NULL, NULL}};
  luaL_newmetatable(L, SIP_LUA_LOCTIMER);
  luaL_newlib(L, methods);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, l_close);
  lua_setfield(L, -2, "__gc");
  lua_pop(L, 1);
  lua_pushcfunction(L, l_new);
  lua_setfield(L, -2, "location_timer");
  lua_pushcfunction(L, l_clock);
  lua_setfield(L, -2, "location_clock");
}
