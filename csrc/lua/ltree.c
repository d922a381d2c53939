/* Lua tables as sip_tree.h trees (see ltree.h). */
#include <lauxlib.h>

#include "ltree.h"

void sip__lua_tree_value(sip_lua_tree *t, sip_tree_val *v) {
  lua_State *L = t->L;
  v->kind = SIP_TREE_OTHER;
  switch (lua_type(L, -1)) {
  case LUA_TTABLE:
    v->kind = SIP_TREE_TABLE;
    v->len = lua_rawlen(L, -1);
    return; /* the current table until close */
  case LUA_TSTRING:
    v->kind = SIP_TREE_STR;
    v->s.p = lua_tolstring(L, -1, &v->s.len);
    lua_rawseti(L, t->anchor, (lua_Integer)lua_rawlen(L, t->anchor) + 1);
    return;
  case LUA_TNIL:
    v->kind = SIP_TREE_NIL;
    break;
  case LUA_TBOOLEAN:
    v->kind = lua_toboolean(L, -1) ? SIP_TREE_TRUE : SIP_TREE_FALSE;
    break;
  case LUA_TNUMBER:
    v->d = lua_tonumber(L, -1);
    v->kind = SIP_TREE_NUM;
    if (lua_isinteger(L, -1) && lua_tointeger(L, -1) >= 0) {
      v->kind = SIP_TREE_UINT;
      v->n = (uint64_t)lua_tointeger(L, -1);
    }
    break;
  default:
    break;
  }
  lua_pop(L, 1);
}

static void rd_get(void *ud, const char *k, size_t i, sip_tree_val *v) {
  sip_lua_tree *t = ud;
  if (k)
    lua_getfield(t->L, -1, k);
  else
    lua_rawgeti(t->L, -1, (lua_Integer)i);
  sip__lua_tree_value(t, v);
}

static void rd_close(void *ud) { lua_pop(((sip_lua_tree *)ud)->L, 1); }

static sip_str rd_keep(void *ud, const char *p, size_t len) {
  sip_lua_tree *t = ud;
  const char *s = lua_pushlstring(t->L, p, len);
  lua_rawseti(t->L, t->anchor, (lua_Integer)lua_rawlen(t->L, t->anchor) + 1);
  return (sip_str){s, len};
}

void sip__lua_tree_reader(sip_lua_tree *t, sip_tree_reader *rd, lua_State *L,
                          int anchor) {
  t->L = L;
  t->anchor = lua_absindex(L, anchor);
  *rd = (sip_tree_reader){t, rd_get, rd_close, rd_keep};
}

static void em_put(void *ud, const char *k, const sip_tree_val *v) {
  lua_State *L = ud;
  if (v->kind == SIP_TREE_TABLE)
    lua_newtable(L);
  else if (v->kind == SIP_TREE_UINT)
    lua_pushinteger(L, (lua_Integer)v->n);
  else if (v->kind == SIP_TREE_TRUE)
    lua_pushboolean(L, 1);
  else
    lua_pushlstring(L, v->s.p, v->s.len);
  if (v->kind == SIP_TREE_TABLE)
    lua_pushvalue(L, -1); /* it stays on the top: the current table */
  int t = v->kind == SIP_TREE_TABLE ? -3 : -2;
  if (k)
    lua_setfield(L, t, k);
  else
    lua_rawseti(L, t, (lua_Integer)lua_rawlen(L, t) + 1);
}

static void em_close(void *ud) { lua_pop((lua_State *)ud, 1); }

void sip__lua_tree_emitter(sip_tree_emitter *e, lua_State *L) {
  *e = (sip_tree_emitter){L, em_put, em_close};
}
