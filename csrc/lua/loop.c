/* The luasip loop: one libuv loop per Lua state, kept in the registry.
 *
 * Every server (and later every transaction layer and timer) of a Lua state
 * runs on it. core.run() runs it until core.stop() or until nothing is left
 * to do; core.step() runs one non-blocking iteration, so a host with its own
 * event loop can drive luasip by polling core.backend_fd() and calling step()
 * when it is readable or core.backend_timeout() has passed.
 *
 * While the loop runs, lp->L is the Lua thread that called run/step: libuv
 * callbacks call into Lua on that thread, which is the running one. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lsip.h"
#include "sip_mem.h"
#include "sip_tu.h"

static const char loop_key = 0;

/* ---- giving memory back ---------------------------------------------------
 *
 * Once a second an unref'd timer (it keeps no loop alive) runs the trim
 * policy of csrc/runtime (sip_mem.h): a full collection of an idle state
 * whose heap grew, and malloc_trim for an idle process whose C heap holds
 * much free memory. */

/* Calls from C into Lua (sip__lua_pcall), for telling an idle server. Per
 * thread, not per state: a thread with several busy states only looks
 * busier. */
static _Thread_local uint64_t calls_into_lua;

static int gc_full(lua_State *L) {
  lua_gc(L, LUA_GCCOLLECT);
  return 0;
}

static void trim_tick(uv_timer_t *t) {
  sip_lua_loop *lp = t->data;
  lua_State *L = lp->L;
  int have = L && lua_checkstack(L, 2);
  size_t kb = have ? (size_t)lua_gc(L, LUA_GCCOUNT, 0) : 0;
  int what = sip_mem_tick(&lp->mem, calls_into_lua, kb, have);
  if (what & SIP_MEM_FULL_GC) {
    lua_pushcfunction(L, gc_full);
    if (lua_pcall(L, 0, 0, 0) != LUA_OK)
      lua_pop(L, 1);
    sip_mem_gc_done(&lp->mem, kb, (size_t)lua_gc(L, LUA_GCCOUNT, 0));
  }
  if (what & SIP_MEM_IDLE)
    sip_mem_heap_step(&lp->mem);
}

static void walk_close(uv_handle_t *h, void *arg) {
  (void)arg;
  if (!uv_is_closing(h))
    uv_close(h, NULL);
}

/* __gc: the last object of the state to go (it was created before any
 * server, so it is finalized after them): finish the closes they started. */
static int loop_gc(lua_State *L) {
  sip_lua_loop *lp = luaL_checkudata(L, 1, SIP_LUA_LOOP);
  if (!lp->initialized)
    return 0;
  lp->L = NULL;
  uv_run(&lp->loop, UV_RUN_NOWAIT);
  uv_walk(&lp->loop, walk_close, NULL);
  uv_run(&lp->loop, UV_RUN_DEFAULT);
  if (uv_loop_close(&lp->loop) == 0)
    lp->initialized = 0;
  return 0;
}

sip_lua_loop *sip__lua_loop(lua_State *L) {
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &loop_key) == LUA_TUSERDATA) {
    sip_lua_loop *lp = lua_touserdata(L, -1);
    lua_pop(L, 1);
    return lp;
  }
  lua_pop(L, 1);
  sip_lua_loop *lp = lua_newuserdatauv(L, sizeof(*lp), 0);
  memset(lp, 0, sizeof(*lp));
  luaL_setmetatable(L, SIP_LUA_LOOP);
  int rc = uv_loop_init(&lp->loop);
  if (rc < 0)
    luaL_error(L, "cannot create the event loop: %s", uv_strerror(rc));
  lp->initialized = 1;
  if (uv_timer_init(&lp->loop, &lp->trim) == 0) {
    lp->trim.data = lp;
    uv_timer_start(&lp->trim, trim_tick, SIP_MEM_TICK_MS, SIP_MEM_TICK_MS);
    uv_unref((uv_handle_t *)&lp->trim);
  }
  lua_rawsetp(L, LUA_REGISTRYINDEX, &loop_key);
  return lp;
}

void sip__lua_push_loop(lua_State *L) {
  sip__lua_loop(L);
  lua_rawgetp(L, LUA_REGISTRYINDEX, &loop_key);
}

/* The one random generator: the transaction layer's (getrandom(2) through
 * a pool, sip_txn_random), for branches, tags and Call-IDs alike. */
void sip__lua_random_hex(char *out, size_t ndigits) {
  static const char hex[] = "0123456789abcdef";
  unsigned char r[32];
  size_t nbytes = (ndigits + 1) / 2;
  sip_txn_random(r, nbytes);
  for (size_t i = 0; i < ndigits; i++)
    out[i] = hex[(r[i / 2] >> (i % 2 ? 4 : 0)) & 15];
}

/* core.new_tag() -> a new tag (From / To), the one format: sip_tu_new_tag */
static int l_new_tag(lua_State *L) {
  char tag[SIP_TU_TAG_LEN];
  sip_str s = sip_tu_new_tag(tag);
  lua_pushlstring(L, s.p, s.len);
  return 1;
}

/* ---- the one protected call into Lua -------------------------------------
 *
 * Every callback from C into Lua (server entries, relay hooks, timers,
 * signals, DNS answers, Redis and SQLite completions) runs under
 * sip__lua_pcall: the traceback is added here, the error is counted here
 * and written here, through the log sink of core.set_log_handler (the
 * luasip.log module: text or JSON lines), standard error without one. */

static const char log_key = 0;

/* The error text on the top of L's stack (a string, or nil) followed by
 * the traceback of thread co from level (co may be L itself): the one
 * traceback of the code base. Pushes the result (the text stays). */
static void push_traceback(lua_State *L, lua_State *co, int level) {
  const char *msg = lua_tostring(L, -1);
  luaL_traceback(L, co, msg ? msg : "(no error message)", level);
}

/* The message handler: the error, whatever its type, with a traceback.
 * Also core.traceback, for a Lua-side xpcall around code that may wait
 * (a handler in its coroutine), whose error then goes to
 * core.script_error. */
static int traceback_handler(lua_State *L) {
  lua_settop(L, 1);
  if (!lua_isstring(L, 1) && !lua_isnil(L, 1)) {
    luaL_tolstring(L, 1, NULL);
    lua_replace(L, 1);
  }
  push_traceback(L, L, 1);
  return 1;
}

/* Under lua_pcall: 1 = level, 2 = prefix (light userdata, may be NULL),
 * 3 = the text. Calls the sink, or writes to stderr without one. */
static int log_body(lua_State *L) {
  const char *level = lua_touserdata(L, 1);
  const char *what = lua_touserdata(L, 2);
  const char *text =
      lua_islightuserdata(L, 3) ? lua_touserdata(L, 3) : lua_tostring(L, 3);
  if (!text)
    text = "(no error message)";
  if (what)
    text = lua_pushfstring(L, "%s: %s", what, text);
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &log_key) != LUA_TFUNCTION) {
    fprintf(stderr, "luasip: %s: %s\n", level, text);
    return 0;
  }
  lua_pushstring(L, level);
  lua_pushstring(L, text);
  lua_call(L, 2, 0);
  return 0;
}

/* The value at the top of the stack (popped) as a log line. */
static void log_top(lua_State *L, const char *level, const char *what) {
  if (!lua_checkstack(L, 4)) {
    fprintf(stderr, "luasip: %s: %s\n", level, lua_tostring(L, -1));
    lua_pop(L, 1);
    return;
  }
  lua_pushcfunction(L, log_body);
  lua_pushlightuserdata(L, (void *)level);
  lua_pushlightuserdata(L, (void *)what);
  lua_pushvalue(L, -4);
  if (lua_pcall(L, 3, 0, 0) != LUA_OK) {
    const char *text = lua_islightuserdata(L, -2) ? lua_touserdata(L, -2)
                                                  : lua_tostring(L, -2);
    const char *why = lua_tostring(L, -1);
    fprintf(stderr, "luasip: %s: %s%s%s (log handler failed: %s)\n", level,
            what ? what : "", what ? ": " : "", text ? text : "?",
            why ? why : "?");
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
}

void sip__lua_log(lua_State *L, const char *level, const char *text) {
  if (!lua_checkstack(L, 1)) {
    fprintf(stderr, "luasip: %s: %s\n", level, text);
    return;
  }
  lua_pushlightuserdata(L, (void *)text); /* allocates nothing */
  log_top(L, level, NULL);
}

int sip__lua_pcall(lua_State *L, int nargs, int nresults, const char *what) {
  int fn = lua_gettop(L) - nargs;
  calls_into_lua++;
  lua_pushcfunction(L, traceback_handler);
  lua_insert(L, fn);
  int rc = lua_pcall(L, nargs, nresults, fn);
  if (rc != LUA_OK) {
    sip_lua_loop *lp = sip__lua_loop(L);
    lp->script_errors++;
    log_top(L, "error", what);
  }
  lua_remove(L, fn); /* the handler */
  return rc;
}

/* core.script_error(err[, co[, what]]): an error a Lua-side protected call
 * caught (a handler coroutine that died, an xpcall with core.traceback)
 * goes the way of sip__lua_pcall's: with co, the traceback of that
 * (dead) coroutine is added here; without, err already has one. Counted
 * in the script errors, written through the log sink, prefixed "what: ".
 * What it means for a request is core.script_failed's (server.c). */
static int l_script_error(lua_State *L) {
  lua_State *co = lua_type(L, 2) == LUA_TTHREAD ? lua_tothread(L, 2) : NULL;
  const char *what = luaL_optstring(L, 3, NULL);
  lua_settop(L, 3);
  if (!lua_isstring(L, 1)) {
    luaL_tolstring(L, 1, NULL);
    lua_replace(L, 1);
  }
  lua_pushvalue(L, 1);
  if (co) {
    push_traceback(L, co, 0);
    lua_remove(L, -2);
  }
  sip__lua_loop(L)->script_errors++;
  log_top(L, "error", what);
  return 0;
}

int sip__lua_call(lua_State *L, int nargs, const char *what) {
  return sip__lua_pcall(L, nargs, 0, what);
}

/* core.set_log_handler(fn | nil) -> the previous one (or nil): fn(level,
 * text) gets every line the C side logs (script errors with their
 * tracebacks, warnings) */
static int l_set_log_handler(lua_State *L) {
  if (!lua_isnoneornil(L, 1))
    luaL_checktype(L, 1, LUA_TFUNCTION);
  lua_settop(L, 1);
  lua_rawgetp(L, LUA_REGISTRYINDEX, &log_key);
  lua_insert(L, 1);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &log_key);
  return 1;
}

/* core.script_errors() -> errors raised by Lua code that C called (handlers
 * entered from C, relay hooks, timers, database completions) */
static int l_script_errors(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)sip__lua_loop(L)->script_errors);
  return 1;
}

static int run_loop(lua_State *L, uv_run_mode mode) {
  sip_lua_loop *lp = sip__lua_loop(L);
  if (lp->L)
    return luaL_error(L, "the luasip loop is already running");
  lp->L = L;
  int alive = uv_run(&lp->loop, mode);
  lp->L = NULL;
  lua_pushboolean(L, alive != 0);
  return 1;
}

/* core.run() -> alive: runs until core.stop() or nothing is left to do. */
static int l_run(lua_State *L) { return run_loop(L, UV_RUN_DEFAULT); }

/* core.step() -> alive: one iteration that does not wait. */
static int l_step(lua_State *L) { return run_loop(L, UV_RUN_NOWAIT); }

/* core.stop(): the running core.run() returns after this iteration. */
static int l_stop(lua_State *L) {
  uv_stop(&sip__lua_loop(L)->loop);
  return 0;
}

/* core.now() -> the loop's clock in milliseconds (updated each iteration). */
static int l_now(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)uv_now(&sip__lua_loop(L)->loop));
  return 1;
}

/* core.backend_fd() -> a file descriptor that is readable when step() has
 * work, for hosts that embed luasip in their own loop. */
static int l_backend_fd(lua_State *L) {
  lua_pushinteger(L, uv_backend_fd(&sip__lua_loop(L)->loop));
  return 1;
}

/* core.backend_timeout() -> milliseconds until a timer is due (-1: none). */
static int l_backend_timeout(lua_State *L) {
  lua_pushinteger(L, uv_backend_timeout(&sip__lua_loop(L)->loop));
  return 1;
}

/* core.random_hex(n) -> n random lower-case hex digits (1..64) */
static int l_random_hex(lua_State *L) {
  lua_Integer n = luaL_checkinteger(L, 1);
  luaL_argcheck(L, n >= 1 && n <= 64, 1, "1..64 digits");
  char buf[64];
  sip__lua_random_hex(buf, (size_t)n);
  lua_pushlstring(L, buf, (size_t)n);
  return 1;
}

static const luaL_Reg loop_funcs[] = {
    {"run", l_run},
    {"step", l_step},
    {"stop", l_stop},
    {"now", l_now},
    {"backend_fd", l_backend_fd},
    {"backend_timeout", l_backend_timeout},
    {"random_hex", l_random_hex},
    {"new_tag", l_new_tag},
    {"set_log_handler", l_set_log_handler},
    {"script_errors", l_script_errors},
    {"script_error", l_script_error},
    {"traceback", traceback_handler},
    {NULL, NULL},
};

void sip__lua_open_loop(lua_State *L) {
  /* stack: core */
  luaL_newmetatable(L, SIP_LUA_LOOP);
  lua_pushcfunction(L, loop_gc);
  lua_setfield(L, -2, "__gc");
  lua_pop(L, 1);
  luaL_setfuncs(L, loop_funcs, 0);
  sip__lua_open_memory(L);
}
