/* The memory of a Lua state, the binding: core.set_memory_limit and the
 * handler budget over a wrapped allocator, core.memory, core.malloc_info.
 * The policy (what is admitted, when memory goes back) is csrc/runtime's
 * (sip_mem.h); the trim tick runs on the loop (loop.c). */
#include "lsip.h"
#include "sip_mem.h"

/* ---- the memory limit of the state ---------------------------------------
 *
 * A script must not take the whole machine: the state's allocator is
 * wrapped so that growth beyond the limit (or a handler's budget: see
 * sip_mem.h) fails. Lua then collects garbage and retries, and if that is
 * not enough raises "not enough memory" where the script allocated: inside
 * a handler that is a 500 for that request (every entry from C is
 * protected, see server.c), never a crash. The wrapper stays installed
 * until the state closes, so its bookkeeping lives in static storage, for
 * the first state that asks (one per process). A handler is a coroutine
 * resumed by luasip.server, between two waits: a runaway one fails within
 * a few tens of milliseconds instead of growing the process to the state's
 * limit while the loop waits. */
static struct {
  lua_State *owner;
  lua_Alloc orig;
  void *orig_ud;
  sip_mem_budget b;
} mem;

static void *limited_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  (void)ud;
  size_t old = ptr ? osize : 0;
  if (!sip_mem_admit(&mem.b, old, nsize))
    return NULL;
  void *p = mem.orig(mem.orig_ud, ptr, osize, nsize);
  sip_mem_account(&mem.b, old, nsize, p != NULL);
  return p;
}

/* The wrapper is code in this module, which lua_close unloads before it
 * frees the last objects: a sentinel finalized before that (it is created
 * after the package library's table of loaded modules) puts the original
 * allocator back. */
static int restore_alloc(lua_State *L) {
  if (mem.owner) {
    lua_setallocf(L, mem.orig, mem.orig_ud);
    mem.owner = NULL;
    mem.b.limit = 0;
    mem.b.budget = mem.b.ceiling = 0;
  }
  return 0;
}

static const char sentinel_key = 0;

static size_t state_bytes(lua_State *L) {
  return (size_t)lua_gc(L, LUA_GCCOUNT, 0) * 1024 +
         (size_t)lua_gc(L, LUA_GCCOUNTB, 0);
}

/* Install the counting allocator on L's state (once). 0, or nil + err
 * pushed (another state has it) and returns the number of results. */
static int install_alloc(lua_State *L, const char *what) {
  lua_State *main;
  lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
  main = lua_tothread(L, -1);
  lua_pop(L, 1);
  if (mem.owner && mem.owner != main)
    return sip__lua_fail(L, SIP_EINVAL, "%s: another Lua state has the limit",
                         what);
  if (!mem.owner) {
    mem.owner = main;
    mem.orig = lua_getallocf(L, &mem.orig_ud);
    mem.b.used = state_bytes(L);
    lua_newuserdatauv(L, 1, 0);
    lua_createtable(L, 0, 1);
    lua_pushcfunction(L, restore_alloc);
    lua_setfield(L, -2, "__gc");
    lua_setmetatable(L, -2);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &sentinel_key);
    lua_setallocf(L, limited_alloc, NULL);
  }
  return 0;
}

/* The argument of a setter what(bytes), checked (>= 0) into *n; then the
 * allocator is installed. Returns install_alloc's result. */
static int limit_arg(lua_State *L, const char *what, size_t *n) {
  lua_Integer b = luaL_checkinteger(L, 1);
  luaL_argcheck(L, b >= 0, 1, "bytes >= 0");
  *n = (size_t)b;
  return install_alloc(L, what);
}

/* core.set_memory_limit(bytes) -> true, or nil, err: 0 removes the limit.
 * A limit below what the state uses now is refused. */
static int l_set_memory_limit(lua_State *L) {
  size_t n;
  int nres = limit_arg(L, "set_memory_limit", &n);
  if (nres)
    return nres;
  if (sip_mem_set_limit(&mem.b, n) < 0)
    return sip__lua_fail(L, SIP_EINVAL,
                         "set_memory_limit: %I bytes are in use already",
                         (lua_Integer)mem.b.used);
  lua_pushboolean(L, 1);
  return 1;
}

/* core.set_handler_memory(bytes) -> true, or nil, err: the budget of a
 * handler between two waits (0: none). */
static int l_set_handler_memory(lua_State *L) {
  size_t n;
  int nres = limit_arg(L, "set_handler_memory", &n);
  if (nres)
    return nres;
  mem.b.budget = n;
  lua_pushboolean(L, 1);
  return 1;
}

/* core.handler_enter() -> mark, slack: a handler is resumed; its budget
 * starts from what the state uses now. The mark goes back to
 * handler_leave when the handler waits or ends. */
static int l_handler_enter(lua_State *L) {
  size_t mark;
  int slack;
  if (mem.owner)
    sip_mem_enter(&mem.b, &mark, &slack);
  else
    mark = mem.b.ceiling, slack = mem.b.slack_used;
  lua_pushinteger(L, (lua_Integer)mark);
  lua_pushboolean(L, slack);
  return 2;
}

/* core.handler_leave(mark, slack_used) */
static int l_handler_leave(lua_State *L) {
  sip_mem_leave(&mem.b, (size_t)luaL_checkinteger(L, 1), lua_toboolean(L, 2));
  return 0;
}

/* core.memory_refusals() -> allocations refused by handler budgets so far
 * (compare two readings to tell a budget's "not enough memory" from the
 * state limit's) */
static int l_memory_refusals(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)mem.b.ceiling_hits);
  return 1;
}

/* core.memory() -> bytes in use, limit (0: none), handler budget (0:
 * none) */
static int l_memory(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)(mem.owner ? mem.b.used : state_bytes(L)));
  lua_pushinteger(L, (lua_Integer)mem.b.limit);
  lua_pushinteger(L, (lua_Integer)mem.b.budget);
  return 3;
}

/* core.malloc_info() -> bytes in use and free in the C heap (-1 when the C
 * library does not tell), and the trims made so far */
static int l_malloc_info(lua_State *L) {
  sip_lua_loop *lp = sip__lua_loop(L);
  size_t used, mapped, avail;
  int known = sip_mem_heap_info(&used, &mapped, &avail) == 0;
  lua_pushinteger(L, known ? (lua_Integer)(used + mapped) : -1);
  lua_pushinteger(L, known ? (lua_Integer)avail : -1);
  lua_pushinteger(L, (lua_Integer)lp->mem.trims);
  return 3;
}

static const luaL_Reg memory_funcs[] = {
    {"set_memory_limit", l_set_memory_limit},
    {"set_handler_memory", l_set_handler_memory},
    {"handler_enter", l_handler_enter},
    {"handler_leave", l_handler_leave},
    {"memory_refusals", l_memory_refusals},
    {"memory", l_memory},
    {"malloc_info", l_malloc_info},
    {NULL, NULL},
};

void sip__lua_open_memory(lua_State *L) {
  /* stack: core */
  luaL_setfuncs(L, memory_funcs, 0);
}
