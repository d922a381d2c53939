/* luasip.core: the private C module wrapped by lua/luasip/init.lua.
 *
 * Exports: parse, uri (constructors, see message.c and uri.c), errname,
 * strerror, header_name, header_flags, split, Message / URI (method tables,
 * which the Lua layer extends), and the flag constants. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "lsip.h"
#include "sip_reply.h"

void sip__lua_push_str(lua_State *L, sip_str s) {
  if (s.p)
    lua_pushlstring(L, s.p, s.len);
  else
    lua_pushnil(L);
}

void sip__lua_set_str(lua_State *L, const char *k, sip_str s) {
  if (!s.p)
    return;
  lua_pushlstring(L, s.p, s.len);
  lua_setfield(L, -2, k);
}

/* Names are case-insensitive (RFC 3261 §7.3.1, §19.1.4), so the Lua table is
 * keyed by the lower-cased name: params.transport finds "Transport=tcp". */
void sip__lua_push_params(lua_State *L, const sip_params *ps) {
  lua_createtable(L, 0, (int)ps->n);
  for (uint32_t i = 0; i < ps->n; i++) {
    const sip_param *pa = &ps->v[i];
    luaL_Buffer b;
    char *d = luaL_buffinitsize(L, &b, pa->name.len);
    for (size_t j = 0; j < pa->name.len; j++)
      d[j] = sip__lua_lower(pa->name.p[j]);
    luaL_pushresultsize(&b, pa->name.len);
    lua_pushvalue(L, -1);
    if (lua_rawget(L, -3) != LUA_TNIL) { /* keep the first occurrence */
      lua_pop(L, 2);
      continue;
    }
    lua_pop(L, 1);
    if (pa->value.p) {
      sip_str v = pa->dec.p ? pa->dec : pa->value;
      lua_pushlstring(L, v.p, v.len);
    } else {
      lua_pushboolean(L, 1);
    }
    lua_rawset(L, -3);
  }
}

int sip__lua_fail(lua_State *L, int err, const char *fmt, ...) {
  va_list ap;
  lua_pushnil(L);
  va_start(ap, fmt);
  lua_pushvfstring(L, fmt, ap);
  va_end(ap);
  lua_pushstring(L, sip_errname(err));
  return 3;
}

/* core.errname(code) -> "NEEDMORE", ... */
static int l_errname(lua_State *L) {
  lua_pushstring(L, sip_errname((int)luaL_checkinteger(L, 1)));
  return 1;
}

/* core.strerror(code) -> message */
static int l_strerror(lua_State *L) {
  lua_pushstring(L, sip_strerror((int)luaL_checkinteger(L, 1)));
  return 1;
}

/* core.header_name(name) -> canonical long name, or nil when unknown */
static int l_header_name(lua_State *L) {
  size_t n;
  const char *s = luaL_checklstring(L, 1, &n);
  int id = sip_hdr_lookup(s, n);
  const char *c = id == SIP_H_OTHER ? NULL : sip_hdr_canonical(id);
  if (c)
    lua_pushstring(L, c);
  else
    lua_pushnil(L);
  return 1;
}

/* core.header_flags(name) -> integer (SIP_HF_* bits; 0 when unknown) */
static int l_header_flags(lua_State *L) {
  size_t n;
  const char *s = luaL_checklstring(L, 1, &n);
  int id = sip_hdr_lookup(s, n);
  lua_pushinteger(L, id == SIP_H_OTHER ? 0 : (lua_Integer)sip_hdr_flags(id));
  return 1;
}

/* core.split(value) -> list of the comma-separated items (outside quotes and
 * angle brackets), or nil, err, name */
static int l_split(lua_State *L) {
  size_t n;
  const char *s = luaL_checklstring(L, 1, &n);
  sip_str rest = {s, n}, item;
  int rc, i = 0;
  lua_newtable(L);
  while ((rc = sip_split_next(&rest, &item)) > 0) {
    if (item.len == 0)
      continue;
    lua_pushlstring(L, item.p, item.len);
    lua_rawseti(L, -2, ++i);
  }
  if (rc < 0)
    return sip__lua_fail(L, rc, "PARSE: %s", sip_strerror(rc));
  return 1;
}

/* core.reason_phrase(code) -> the default phrase (class phrase for an
 * unknown code of 100..699) */
static int l_reason_phrase(lua_State *L) {
  lua_pushstring(L, sip_reason_phrase((int)luaL_checkinteger(L, 1)));
  return 1;
}

static const luaL_Reg core_funcs[] = {
    {"reason_phrase", l_reason_phrase},
    {"errname", l_errname},
    {"strerror", l_strerror},
    {"header_name", l_header_name},
    {"header_flags", l_header_flags},
    {"split", l_split},
    {NULL, NULL},
};

int luaopen_luasip_core(lua_State *L) {
  luaL_newlib(L, core_funcs);
  sip__lua_open_uri(L);
  sip__lua_open_message(L);
  sip__lua_open_loop(L);
  sip__lua_open_events(L);
  sip__lua_open_server(L);
  sip__lua_open_registrar(L);
  sip__lua_open_memstore(L);
  sip__lua_open_redis(L);
  sip__lua_open_sqlite(L);
  sip__lua_open_dns(L);
  sip__lua_open_auth(L);
  sip__lua_open_sdp(L);
  sip__lua_open_textsrv(L);
  static const struct {
    const char *name;
    unsigned v;
  } flags[] = {{"HF_LIST", SIP_HF_LIST},
               {"HF_SINGLE", SIP_HF_SINGLE},
               {"HF_REQUIRED", SIP_HF_REQUIRED},
               {"HF_ADDR", SIP_HF_ADDR},
               {"HF_AUTH", SIP_HF_AUTH}};
  for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++) {
    lua_pushinteger(L, (lua_Integer)flags[i].v);
    lua_setfield(L, -2, flags[i].name);
  }
  /* error codes by name: core.E.NEEDMORE == SIP_ENEEDMORE */
  lua_newtable(L);
#define SIP__LUA_ERR(name, msg)                                                \
  lua_pushinteger(L, SIP_E##name);                                             \
  lua_setfield(L, -2, #name);
  SIP_ERRORS(SIP__LUA_ERR)
#undef SIP__LUA_ERR
  lua_setfield(L, -2, "E");
  return 1;
}
