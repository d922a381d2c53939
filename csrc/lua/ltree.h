/* Lua tables as sip_tree.h trees, for the C layers that read or make a
 * table shape (csrc/sdp, csrc/proxy). */
#ifndef SIP_LUA_TREE_H
#define SIP_LUA_TREE_H

#include <lua.h>

#include "sip_tree.h"

typedef struct sip_lua_tree {
  lua_State *L;
  int anchor; /* absolute index of the table strings are kept in */
} sip_lua_tree;

/* A reader over the table at the top of the stack (its current table):
 * strings read and kept stay alive in the table at anchor (absolute
 * index) until the caller drops it. t must outlive rd. */
void sip__lua_tree_reader(sip_lua_tree *t, sip_tree_reader *rd, lua_State *L,
                          int anchor);

/* The value at the top of the stack as a sip_tree_val (popped, unless a
 * table: that stays as the current table, for sip_tree_reader's close). */
void sip__lua_tree_value(sip_lua_tree *t, sip_tree_val *v);

/* An emitter that makes tables from the one at the top of the stack. */
void sip__lua_tree_emitter(sip_tree_emitter *e, lua_State *L);

#endif
