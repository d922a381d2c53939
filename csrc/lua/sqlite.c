/* luasip.SQLite: the binding of csrc/location/sip_sqlite.h (SQLite
 * statements run on libuv's worker threads), for the sqlite location
 * backend (lua/luasip/location/sqlite.lua).
 *
 *   local db = core.sqlite(path, setup_sql)
 *   db:exec(fn, sql, types, ...) -> true | nil, err
 *       types: one letter per parameter: t text, b blob, i integer,
 *       d double (nil binds NULL whatever the letter)
 *       fn(rows, changes) with rows = { {col, ...}, ... } (NULL as false),
 *       or fn(nil, err); always later, on the loop, never inside exec()
 *   db:close()
 *
 * Group commit, savepoints, the worker and the file's opening:
 * sip_sqlite.h. A callback runs under the one protected call. */
#include <stdlib.h>
#include <string.h>

#include "lsip.h"
#include "sip_error.h"
#include "sip_sqlite.h"

#define SIP_LUA_SQLITE "luasip.SQLite"

typedef struct ldb {
  sip_sqlite *c; /* NULL once closed */
} ldb;

/* A statement's outcome: fn(rows, changes) or fn(nil, err); tag is fn's
 * registry reference. */
static void on_done(void *ud, intptr_t tag, const sip_sql_result *r) {
  sip_lua_loop *lp = ud;
  lua_State *L = lp->L;
  if (!L)
    return;
  int top = lua_gettop(L);
  if (!lua_checkstack(L, 8))
    return;
  lua_rawgeti(L, LUA_REGISTRYINDEX, (lua_Integer)tag);
  if (r->err) {
    lua_pushnil(L);
    lua_pushstring(L, r->err);
  } else {
    int ncols = r->ncols > 0 ? r->ncols : 1;
    size_t nrows = r->ncols > 0 ? r->ncells / (size_t)ncols : 0;
    lua_createtable(L, (int)nrows, 0);
    for (size_t row = 0; row < nrows; row++) {
      lua_createtable(L, ncols, 0);
      for (int k = 0; k < ncols; k++) {
        const sip_sql_value *x = &r->cells[row * (size_t)ncols + (size_t)k];
        switch (x->type) {
        case SIP_SQL_INTEGER:
          lua_pushinteger(L, (lua_Integer)x->i);
          break;
        case SIP_SQL_FLOAT:
          lua_pushnumber(L, (lua_Number)x->d);
          break;
        case SIP_SQL_TEXT:
        case SIP_SQL_BLOB:
          lua_pushlstring(L, x->s, x->len);
          break;
        default:
          lua_pushboolean(L, 0);
        }
        lua_rawseti(L, -2, k + 1);
      }
      lua_rawseti(L, -2, (lua_Integer)row + 1);
    }
    lua_pushinteger(L, r->changes);
  }
  sip__lua_call(L, 2, "sqlite callback");
  lua_settop(L, top);
  luaL_unref(L, LUA_REGISTRYINDEX, (int)tag);
}

static sip_sqlite *check(lua_State *L) {
  ldb *d = luaL_checkudata(L, 1, SIP_LUA_SQLITE);
  if (!d->c)
    luaL_error(L, "sqlite: the database is closed");
  return d->c;
}

/* core.sqlite(path[, setup_sql]) -> db (the file is opened by the first
 * statement, on a worker) */
static int l_new(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  const char *setup = luaL_optstring(L, 2, NULL);
  sip_lua_loop *lp = sip__lua_loop(L);
  ldb *d = lua_newuserdatauv(L, sizeof(*d), 1);
  d->c = NULL;
  luaL_setmetatable(L, SIP_LUA_SQLITE);
  sip__lua_push_loop(L); /* the loop outlives this object */
  lua_setiuservalue(L, -2, 1);
  if (sip_sqlite_open(&lp->loop, path, setup, on_done, lp, &d->c) < 0)
    return luaL_error(L, "sqlite: out of memory");
  return 1;
}

/* db:exec(fn, sql, types, ...) -> true | nil, err */
static int l_exec(lua_State *L) {
  sip_sqlite *c = check(L);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  size_t ql, tl = 0;
  const char *sql = luaL_checklstring(L, 3, &ql);
  const char *types = luaL_optlstring(L, 4, "", &tl);
  int n = lua_gettop(L) - 4;
  if (n < 0)
    n = 0;
  luaL_argcheck(L, (size_t)n == tl, 4, "one type letter per parameter");
  /* the values point into the arguments, which stay on the stack */
  sip_sql_value *v = lua_newuserdatauv(L, (size_t)(n ? n : 1) * sizeof *v, 0);
  for (int i = 0; i < n; i++) {
    int idx = 5 + i;
    sip_sql_value *x = &v[i];
    memset(x, 0, sizeof *x);
    if (lua_isnil(L, idx))
      continue; /* SIP_SQL_NULL */
    switch (types[i]) {
    case 'i':
      if (!lua_isinteger(L, idx))
        return luaL_argerror(L, idx, "integer expected");
      x->type = SIP_SQL_INTEGER;
      x->i = (int64_t)lua_tointeger(L, idx);
      break;
    case 'd':
      if (lua_type(L, idx) != LUA_TNUMBER)
        return luaL_argerror(L, idx, "number expected");
      x->type = SIP_SQL_FLOAT;
      x->d = (double)lua_tonumber(L, idx);
      break;
    case 't':
    case 'b':
      if (lua_type(L, idx) != LUA_TSTRING)
        return luaL_argerror(L, idx, "string expected");
      x->type = types[i] == 't' ? SIP_SQL_TEXT : SIP_SQL_BLOB;
      x->s = lua_tolstring(L, idx, &x->len);
      break;
    default:
      return luaL_argerror(L, 4, "types are t, b, i, d");
    }
  }
  lua_pushvalue(L, 2);
  int ref = luaL_ref(L, LUA_REGISTRYINDEX);
  if (sip_sqlite_exec(c, sql, ql, v, n, (intptr_t)ref) < 0) {
    luaL_unref(L, LUA_REGISTRYINDEX, ref);
    return luaL_error(L, "sqlite: out of memory");
  }
  lua_pushboolean(L, 1);
  return 1;
}

static void drop_ref(void *ctx, intptr_t tag) {
  luaL_unref((lua_State *)ctx, LUA_REGISTRYINDEX, (int)tag);
}

/* db:close() (also __gc): statements not yet delivered are dropped without
 * their callbacks; the connection closes once the running job is done. */
static int l_close(lua_State *L) {
  ldb *d = luaL_checkudata(L, 1, SIP_LUA_SQLITE);
  if (!d->c)
    return 0;
  sip_sqlite_close(d->c, drop_ref, L);
  d->c = NULL;
  return 0;
}

/* db:busy() -> boolean (a job runs or waits) */
static int l_busy(lua_State *L) {
  lua_pushboolean(L, sip_sqlite_busy(check(L)));
  return 1;
}

void sip__lua_open_sqlite(lua_State *L) {
  static const luaL_Reg methods[] = {
      {"exec", l_exec}, {"close", l_close}, {"busy", l_busy}, {NULL, NULL}};
  luaL_newmetatable(L, SIP_LUA_SQLITE);
  luaL_newlib(L, methods);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, l_close);
  lua_setfield(L, -2, "__gc");
  lua_pop(L, 1);
  lua_pushcfunction(L, l_new);
  lua_setfield(L, -2, "sqlite");
}
