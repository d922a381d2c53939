/* The location binding codec for Lua: see lbinding.h. Conversion only:
 * the format is csrc/registrar/binding.c's. Misuse (a value that cannot be
 * stored, a corrupt record) raises. */
#include <math.h>
#include <stdint.h>
#include <string.h>
#include <sys/time.h>

#include "lbinding.h"
#include "sip_binding.h"

/* ---- the binding codec ---------------------------------------------- */

#define MAX_U16 0xffffu

/* The field at the top of the stack (value) under the name at -2: checks it
 * and adds its encoded size to *size. Raises for what cannot be stored. */
static void size_field(lua_State *L, int key_idx, size_t *size) {
  size_t nlen;
  const char *name = lua_tolstring(L, -2, &nlen);
  *size += sip_binding_field_id(name, nlen) == SIP_BF_OTHER ? 2 + nlen : 1;
  *size += 1; /* type */
  switch (lua_type(L, -1)) {
  case LUA_TSTRING: {
    size_t n;
    lua_tolstring(L, -1, &n);
    if (!strcmp(name, "contact") && lua_rawequal(L, -1, key_idx))
      break; /* KEY: nothing stored */
    *size += (n <= MAX_U16 ? 2 : 4) + n;
    break;
  }
  case LUA_TNUMBER:
    if (lua_isinteger(L, -1)) {
      lua_Integer i = lua_tointeger(L, -1);
      *size += i >= INT32_MIN && i <= INT32_MAX ? 4 : 8;
    } else {
      *size += 8;
    }
    break;
  case LUA_TBOOLEAN:
    break;
  case LUA_TTABLE: {
    lua_Integer m = luaL_len(L, -1);
    if (m < 0 || m > (lua_Integer)MAX_U16)
      luaL_error(L, "binding.%s: at most %d items", name, (int)MAX_U16);
    *size += 2;
    for (lua_Integer i = 1; i <= m; i++) {
      size_t n;
      if (lua_rawgeti(L, -1, i) != LUA_TSTRING)
        luaL_error(L, "binding.%s must be an array of strings", name);
      lua_tolstring(L, -1, &n);
      if (n > MAX_U16)
        luaL_error(L, "binding.%s: an item longer than %d bytes", name,
                   (int)MAX_U16);
      *size += 2 + n;
      lua_pop(L, 1);
    }
    break;
  }
  default:
    luaL_error(L, "binding.%s: unsupported value type %s", name,
               luaL_typename(L, -1));
  }
}

static void put_field(lua_State *L, int key_idx, sip_obuf *b) {
  size_t nlen;
  const char *name = lua_tolstring(L, -2, &nlen);
  int id = sip_binding_field_id(name, nlen);
  const char *other = id == SIP_BF_OTHER ? name : NULL;
  switch (lua_type(L, -1)) {
  case LUA_TSTRING: {
    size_t n;
    const char *s = lua_tolstring(L, -1, &n);
    if (id == SIP_BF_CONTACT && lua_rawequal(L, -1, key_idx))
      sip_binding_put_key(b, id, other);
    else
      sip_binding_put_str(b, id, other, (sip_str){s, n});
    break;
  }
  case LUA_TNUMBER:
    if (lua_isinteger(L, -1))
      sip_binding_put_int(b, id, other, (int64_t)lua_tointeger(L, -1));
    else
      sip_binding_put_double(b, id, other, (double)lua_tonumber(L, -1));
    break;
  case LUA_TBOOLEAN:
    sip_binding_put_bool(b, id, other, lua_toboolean(L, -1));
    break;
  case LUA_TTABLE: {
    lua_Integer m = luaL_len(L, -1);
    sip_binding_put_array(b, id, other, (size_t)m);
    for (lua_Integer i = 1; i <= m; i++) {
      size_t n;
      lua_rawgeti(L, -1, i);
      const char *s = lua_tolstring(L, -1, &n);
      sip_binding_put_item(b, (sip_str){s, n});
      lua_pop(L, 1);
    }
    break;
  }
  }
}

/* Is the key at -2 one of the fields the record header holds? */
static int header_field(lua_State *L) {
  size_t n;
  const char *k = lua_tolstring(L, -2, &n);
  return (n == 3 && !memcmp(k, "key", 3)) ||
         (n == 7 && !memcmp(k, "expires", 7));
}

/* core.binding_encode(b, saved) -> string: b.key (string), b.expires
 * (number) and any fields named by strings of at most 255 bytes whose
 * values are strings, numbers, booleans or arrays of strings. */
static int l_binding_encode(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  double saved = (double)luaL_checknumber(L, 2);
  lua_settop(L, 2);
  if (lua_getfield(L, 1, "key") != LUA_TSTRING) /* 3 */
    return luaL_error(L, "binding.key must be a string");
  size_t klen;
  const char *key = lua_tolstring(L, 3, &klen);
  if (klen > MAX_U16)
    return luaL_error(L, "binding.key: longer than %d bytes", (int)MAX_U16);
  if (lua_getfield(L, 1, "expires") != LUA_TNUMBER) /* 4 */
    return luaL_error(L, "binding.expires must be a number");
  double expires = (double)lua_tonumber(L, 4);
  size_t size = 18 + klen;
  lua_pushnil(L);
  while (lua_next(L, 1)) {
    if (lua_type(L, -2) != LUA_TSTRING || lua_rawlen(L, -2) > 255) {
      lua_pushvalue(L, -2);
      return luaL_error(L,
                        "binding field names must be strings of at most 255 "
                        "bytes, got %s",
                        luaL_tolstring(L, -1, NULL));
    }
    if (!header_field(L))
      size_field(L, 3, &size);
    lua_pop(L, 1);
  }
  luaL_Buffer lb;
  char *mem = luaL_buffinitsize(L, &lb, size);
  sip_obuf b;
  sip_obuf_init(&b, mem, size);
  sip_binding_begin(&b, expires, saved, (sip_str){key, klen});
  lua_pushnil(L);
  while (lua_next(L, 1)) {
    if (!header_field(L))
      put_field(L, 3, &b);
    lua_pop(L, 1);
  }
  if (b.overflow || b.len != size)
    return luaL_error(L, "binding_encode: size %d, wrote %d", (int)size,
                      (int)b.len);
  luaL_pushresultsize(&lb, b.len);
  return 1;
}

/* Push binding record p as a table; -1 when it is corrupt. */
int sip__lua_push_binding(lua_State *L, const char *p, size_t len) {
  sip_breader rd;
  if (sip_binding_open(&rd, p, len) < 0)
    return -1;
  lua_createtable(L, 0, 16);
  lua_pushlstring(L, rd.key.p, rd.key.len);
  lua_setfield(L, -2, "key");
  lua_Integer whole;
  if (rd.expires == floor(rd.expires) &&
      lua_numbertointeger(rd.expires, &whole))
    lua_pushinteger(L, whole);
  else
    lua_pushnumber(L, rd.expires);
  lua_setfield(L, -2, "expires");
  sip_bfield f;
  int rc;
  while ((rc = sip_binding_next(&rd, &f)) == 1) {
    if (f.id == SIP_BF_OTHER)
      lua_pushlstring(L, f.name.p, f.name.len);
    else
      lua_pushstring(L, sip_binding_field_name(f.id));
    switch (f.type) {
    case SIP_BT_STR:
    case SIP_BT_LSTR:
    case SIP_BT_KEY:
      lua_pushlstring(L, f.str.p, f.str.len);
      break;
    case SIP_BT_I32:
    case SIP_BT_I64:
      lua_pushinteger(L, (lua_Integer)f.i);
      break;
    case SIP_BT_DBL:
      lua_pushnumber(L, f.d);
      break;
    case SIP_BT_TRUE:
    case SIP_BT_FALSE:
      lua_pushboolean(L, f.type == SIP_BT_TRUE);
      break;
    case SIP_BT_ARRAY: {
      lua_createtable(L, (int)f.i, 0);
      sip_str rest = f.str, item;
      for (lua_Integer k = 1; k <= f.i; k++) {
        if (sip_binding_item(&rest, &item) < 0)
          return -1;
        lua_pushlstring(L, item.p, item.len);
        lua_rawseti(L, -2, k);
      }
      break;
    }
    }
    lua_rawset(L, -3);
  }
  if (rc < 0) {
    lua_pop(L, 1);
    return -1;
  }
  lua_pushnumber(L, rd.saved);
  return 0;
}

static sip_breader check_record(lua_State *L, int idx) {
  size_t len;
  const char *p = luaL_checklstring(L, idx, &len);
  sip_breader rd;
  if (sip_binding_open(&rd, p, len) < 0)
    luaL_error(L, "location: corrupt binding record");
  return rd;
}

/* core.binding_decode(s) -> binding, saved */
static int l_binding_decode(lua_State *L) {
  size_t len;
  const char *p = luaL_checklstring(L, 1, &len);
  if (sip__lua_push_binding(L, p, len) < 0)
    return luaL_error(L, "location: corrupt binding record");
  return 2;
}

/* core.binding_times(s) -> expires, saved (without decoding the rest) */
static int l_binding_times(lua_State *L) {
  sip_breader rd = check_record(L, 1);
  lua_pushnumber(L, rd.expires);
  lua_pushnumber(L, rd.saved);
  return 2;
}

/* core.binding_key(s) -> key */
static int l_binding_key(lua_State *L) {
  sip_breader rd = check_record(L, 1);
  lua_pushlstring(L, rd.key.p, rd.key.len);
  return 1;
}

/* core.location_clock() -> seconds since the epoch: the clock binding
 * expiry times are compared with */
static int l_clock(lua_State *L) {
  struct timeval tv;
  gettimeofday(&tv, NULL);
  lua_pushnumber(L, (lua_Number)tv.tv_sec + (lua_Number)tv.tv_usec / 1e6);
  return 1;
}

void sip__lua_open_binding(lua_State *L) {
  static const luaL_Reg fns[] = {
      {"binding_encode", l_binding_encode},
      {"binding_decode", l_binding_decode},
      {"binding_times", l_binding_times},
      {"binding_key", l_binding_key},
      {"location_clock", l_clock},
      {NULL, NULL},
  };
  luaL_setfuncs(L, fns, 0);
}
