/* The memory location store (csrc/registrar/sip_memstore.h) for
 * lua/luasip/location/memory.lua. Records are the encoded bindings of
 * core.binding_encode; the store reads each record's key and expiry from
 * its header.
 *
 *   core.memstore_new() -> store         (a luasip.MemStore)
 *   store:save(aor, record) -> true | nil, why   insert or replace by key
 *   store:remove(aor, key) -> true
 *   store:remove_all(aor) -> true
 *   store:lookup(aor) -> { record, ... } the unexpired ones, store order
 *   store:count() -> the number of records (expired ones until the timer
 *                    drops them)
 *   store:on_expire(fn | nil)   fn(aor, record) for each expired record,
 *                               through sip__lua_pcall
 *   store:close()               drops everything; the store is closed
 *
 * A closed store raises. The timer is the store's own (unref'd: it keeps
 * no loop alive). */
#include <string.h>

#include "lsip.h"
#include "sip_error.h"
#include "sip_memstore.h"

#define SIP_LUA_MEMSTORE "luasip.MemStore"

typedef struct lstore {
  sip_memstore *s; /* NULL once closed */
  sip_lua_loop *lp;
} lstore;

/* registry[&stores_key]: a weak-valued table, light userdata -> store, so
 * the expiry callback finds the store's userdata (its callback is a user
 * value: a cycle through it can be collected) */
static const char stores_key = 0;

static lstore *check_open(lua_State *L) {
  lstore *b = luaL_checkudata(L, 1, SIP_LUA_MEMSTORE);
  if (!b->s)
    luaL_error(L, "location: the memory store is closed");
  return b;
}

sip_memstore *sip__lua_memstore_check(lua_State *L, int idx) {
  lstore *b = luaL_checkudata(L, idx, SIP_LUA_MEMSTORE);
  if (!b->s)
    luaL_error(L, "location: the memory store is closed");
  return b->s;
}

static sip_str check_str(lua_State *L, int idx) {
  size_t len;
  const char *p = luaL_checklstring(L, idx, &len);
  return (sip_str){p, len};
}

/* Under sip__lua_pcall: 1 = fn, 2 = &aor, 3 = &record (light userdata) */
static int call_expire(lua_State *L) {
  const sip_str *aor = lua_touserdata(L, 2);
  const sip_str *rec = lua_touserdata(L, 3);
  lua_settop(L, 1);
  lua_pushlstring(L, aor->p, aor->len);
  lua_pushlstring(L, rec->p, rec->len);
  lua_call(L, 2, 0);
  return 0;
}

static void on_expire(void *ud, sip_str aor, sip_str rec) {
  lstore *b = ud;
  lua_State *L = b->lp->L;
  if (!L || !lua_checkstack(L, 6))
    return; /* the loop is not running Lua (the state is closing) */
  int top = lua_gettop(L);
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &stores_key) != LUA_TTABLE ||
      lua_rawgetp(L, -1, b) != LUA_TUSERDATA ||
      lua_getiuservalue(L, -1, 1) != LUA_TFUNCTION) {
    lua_settop(L, top);
    return;
  }
  lua_pushcfunction(L, call_expire);
  lua_insert(L, -2);
  lua_pushlightuserdata(L, &aor);
  lua_pushlightuserdata(L, &rec);
  sip__lua_pcall(L, 3, 0, "location: on_expire");
  lua_settop(L, top);
}

/* core.memstore_new() -> store */
static int l_new(lua_State *L) {
  sip_lua_loop *lp = sip__lua_loop(L);
  lstore *b = lua_newuserdatauv(L, sizeof *b, 2);
  b->s = NULL;
  b->lp = lp;
  luaL_setmetatable(L, SIP_LUA_MEMSTORE);
  sip__lua_push_loop(L); /* finalized after the store */
  lua_setiuservalue(L, -2, 2);
  lua_rawgetp(L, LUA_REGISTRYINDEX, &stores_key);
  lua_pushvalue(L, -2);
  lua_rawsetp(L, -2, b);
  lua_pop(L, 1);
  int rc = sip_memstore_new(&lp->loop, &b->s);
  if (rc < 0)
    return luaL_error(L, "location: cannot create the memory store: %s",
                      rc == SIP_ENOMEM ? "out of memory" : uv_strerror(rc));
  return 1;
}

static int fail(lua_State *L, int rc) {
  lua_pushnil(L);
  lua_pushstring(L, rc == SIP_EVALUE ? "corrupt binding record"
                                     : sip_strerror(rc));
  return 2;
}

/* true, or nil and the error of rc. */
static int done(lua_State *L, int rc) {
  if (rc < 0)
    return fail(L, rc);
  lua_pushboolean(L, 1);
  return 1;
}

static int m_save(lua_State *L) {
  lstore *b = check_open(L);
  sip_str aor = check_str(L, 2), rec = check_str(L, 3);
  return done(L, sip_memstore_save(b->s, aor, rec));
}

static int m_remove(lua_State *L) {
  lstore *b = check_open(L);
  sip_str aor = check_str(L, 2), key = check_str(L, 3);
  return done(L, sip_memstore_remove(b->s, aor, key));
}

static int m_remove_all(lua_State *L) {
  lstore *b = check_open(L);
  sip_memstore_remove_all(b->s, check_str(L, 2));
  lua_pushboolean(L, 1);
  return 1;
}

static int m_lookup(lua_State *L) {
  lstore *b = check_open(L);
  sip_str aor = check_str(L, 2);
  double now = sip_memstore_now(b->s);
  sip_str inl[32], *out = inl;
  size_t n = sip_memstore_lookup(b->s, aor, now, out, 32);
  if (n > 32) {
    out = lua_newuserdatauv(L, n * sizeof *out, 0);
    n = sip_memstore_lookup(b->s, aor, now, out, n);
  }
  /* the slices stay valid: pushing strings runs no code of the store */
  lua_createtable(L, (int)n, 0);
  for (size_t i = 0; i < n; i++) {
    lua_pushlstring(L, out[i].p, out[i].len);
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  return 1;
}

static int m_count(lua_State *L) {
  lstore *b = check_open(L);
  lua_pushinteger(L, (lua_Integer)sip_memstore_count(b->s));
  return 1;
}

static int m_on_expire(lua_State *L) {
  lstore *b = check_open(L);
  int set = !lua_isnoneornil(L, 2);
  if (set)
    luaL_checktype(L, 2, LUA_TFUNCTION);
  lua_settop(L, 2);
  lua_setiuservalue(L, 1, 1);
  /* without a callback, expired records are freed at once */
  sip_memstore_on_expire(b->s, set ? on_expire : NULL, set ? b : NULL);
  return 0;
}

static int m_close(lua_State *L) {
  lstore *b = luaL_checkudata(L, 1, SIP_LUA_MEMSTORE);
  if (b->s) {
    sip_memstore_close(b->s);
    b->s = NULL;
  }
  return 0;
}

static int m_tostring(lua_State *L) {
  lstore *b = luaL_checkudata(L, 1, SIP_LUA_MEMSTORE);
  if (b->s)
    lua_pushfstring(L, "luasip.MemStore (%d bindings)",
                    (int)sip_memstore_count(b->s));
  else
    lua_pushliteral(L, "luasip.MemStore (closed)");
  return 1;
}

void sip__lua_open_memstore(lua_State *L) {
  static const luaL_Reg methods[] = {
      {"save", m_save},     {"remove", m_remove}, {"remove_all", m_remove_all},
      {"lookup", m_lookup}, {"count", m_count},   {"on_expire", m_on_expire},
      {"close", m_close},   {NULL, NULL},
  };
  luaL_newmetatable(L, SIP_LUA_MEMSTORE);
  luaL_newlib(L, methods);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, m_close);
  lua_setfield(L, -2, "__gc");
  lua_pushcfunction(L, m_close);
  lua_setfield(L, -2, "__close");
  lua_pushcfunction(L, m_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pop(L, 1);
  lua_newtable(L);
  lua_pushliteral(L, "v");
  lua_setfield(L, -2, "__mode");
  lua_pushvalue(L, -1);
  lua_setmetatable(L, -2);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &stores_key);
  lua_pushcfunction(L, l_new);
  lua_setfield(L, -2, "memstore_new");
}
