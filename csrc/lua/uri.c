/* luasip.URI: a parsed URI (sip, sips, tel, or any other absolute URI kept
 * opaque). The userdata holds the sip_uri and its own small arena; the
 * source Lua string is user value 1 (the slices point into it), user value 2
 * caches the params / headers tables. */
#include <string.h>

#include "lsip.h"

typedef struct sip_lua_uri {
  sip_uri u;
  sip_arena a;
  uint8_t live;
  uint64_t inl[256 / 8]; /* first arena block: most URIs decode nothing */
} sip_lua_uri;

static sip_lua_uri *check_uri(lua_State *L, int idx) {
  sip_lua_uri *u = luaL_checkudata(L, idx, SIP_LUA_URI);
  if (!u->live)
    luaL_error(L, "attempt to use a closed " SIP_LUA_URI);
  return u;
}

int sip__lua_uri_new(lua_State *L, int idx) {
  size_t len;
  idx = lua_absindex(L, idx);
  const char *s = lua_tolstring(L, idx, &len);
  /* created closed and consistent before anything can fail */
  sip_lua_uri *u = lua_newuserdatauv(L, sizeof(*u), 2);
  memset(&u->u, 0, sizeof(u->u));
  sip_arena_init(&u->a, u->inl, sizeof(u->inl));
  u->live = 1;
  luaL_setmetatable(L, SIP_LUA_URI);
  lua_pushvalue(L, idx);
  lua_setiuservalue(L, -2, 1);
  int rc = sip_uri_parse(&u->a, s, len, &u->u);
  if (rc < 0) {
    sip_arena_free(&u->a);
    u->live = 0;
    lua_pop(L, 1);
    /* quote at most 64 bytes of the offending text */
    lua_pushlstring(L, s, len > 64 ? 64 : len);
    sip__lua_fail(L, rc, "PARSE: %s: \"%s%s\"", sip_strerror(rc),
                  lua_tostring(L, -1), len > 64 ? "..." : "");
    lua_remove(L, -4);
    return 3;
  }
  return 1;
}

/* core.uri(text) -> URI, or nil, "PARSE: ...", "URI" */
static int l_uri(lua_State *L) {
  luaL_checkstring(L, 1);
  return sip__lua_uri_new(L, 1);
}

static int uri_gc(lua_State *L) {
  sip_lua_uri *u = luaL_checkudata(L, 1, SIP_LUA_URI);
  if (u->live) {
    sip_arena_free(&u->a);
    u->live = 0;
  }
  return 0;
}

static int uri_tostring(lua_State *L) {
  sip_lua_uri *u = check_uri(L, 1);
  lua_pushlstring(L, u->u.raw.p, u->u.raw.len);
  return 1;
}

static int uri_eq(lua_State *L) {
  sip_lua_uri *a = luaL_testudata(L, 1, SIP_LUA_URI);
  sip_lua_uri *b = luaL_testudata(L, 2, SIP_LUA_URI);
  lua_pushboolean(L,
                  a && b && a->live && b->live && sip_uri_equal(&a->u, &b->u));
  return 1;
}

static const char *const kind_names[] = {"other", "sip", "sips", "tel"};
static const char *const host_type_names[] = {NULL, "name", "ipv4", "ipv6"};

/* params / headers tables are cached in user value 2 */
static int push_cached_params(lua_State *L, const char *key,
                              const sip_params *ps) {
  if (lua_getiuservalue(L, 1, 2) != LUA_TTABLE) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_setiuservalue(L, 1, 2);
  }
  if (lua_getfield(L, -1, key) == LUA_TNIL) {
    lua_pop(L, 1);
    sip__lua_push_params(L, ps);
    lua_pushvalue(L, -1);
    lua_setfield(L, -3, key);
  }
  return 1;
}

static int uri_index(lua_State *L) {
  luaL_checkudata(L, 1, SIP_LUA_URI);
  /* methods first: they stay reachable after close */
  lua_pushvalue(L, 2);
  if (lua_rawget(L, lua_upvalueindex(1)) != LUA_TNIL)
    return 1;
  lua_pop(L, 1);
  if (lua_type(L, 2) != LUA_TSTRING) {
    lua_pushnil(L);
    return 1;
  }
  sip_lua_uri *lu = check_uri(L, 1);
  const sip_uri *u = &lu->u;
  const char *k = lua_tostring(L, 2);
  if (!strcmp(k, "scheme")) {
    sip__lua_push_str(L, u->scheme);
  } else if (!strcmp(k, "user")) {
    sip__lua_push_str(L, u->user_dec.p ? u->user_dec : u->user);
  } else if (!strcmp(k, "user_raw")) {
    sip__lua_push_str(L, u->user);
  } else if (!strcmp(k, "password")) {
    sip__lua_push_str(L, u->password_dec.p ? u->password_dec : u->password);
  } else if (!strcmp(k, "password_raw")) {
    sip__lua_push_str(L, u->password);
  } else if (!strcmp(k, "host")) {
    sip__lua_push_str(L, u->host);
  } else if (!strcmp(k, "port")) {
    if (u->has_port)
      lua_pushinteger(L, u->port);
    else
      lua_pushnil(L);
  } else if (!strcmp(k, "params")) {
    return push_cached_params(L, "params", &u->params);
  } else if (!strcmp(k, "headers")) {
    return push_cached_params(L, "headers", &u->headers);
  } else if (!strcmp(k, "transport")) {
    sip__lua_push_str(L, u->transport);
  } else if (!strcmp(k, "maddr")) {
    sip__lua_push_str(L, u->maddr);
  } else if (!strcmp(k, "user_param")) {
    sip__lua_push_str(L, u->user_param);
  } else if (!strcmp(k, "method")) {
    sip__lua_push_str(L, u->method);
  } else if (!strcmp(k, "ttl")) {
    sip__lua_push_str(L, u->ttl);
  } else if (!strcmp(k, "lr")) {
    lua_pushboolean(L, u->lr);
  } else if (!strcmp(k, "kind")) {
    lua_pushstring(L, u->kind < 4 ? kind_names[u->kind] : "other");
  } else if (!strcmp(k, "host_type")) {
    lua_pushstring(L, u->host_type < 4 ? host_type_names[u->host_type] : NULL);
  } else if (!strcmp(k, "opaque")) {
    sip__lua_push_str(L, u->opaque);
  } else if (!strcmp(k, "raw")) {
    sip__lua_push_str(L, u->raw);
  } else if (!strcmp(k, "params_raw")) {
    sip__lua_push_str(L, u->params_raw);
  } else if (!strcmp(k, "headers_raw")) {
    sip__lua_push_str(L, u->headers_raw);
  } else {
    lua_pushnil(L);
  }
  return 1;
}

/* u:equal(other) -> boolean; other may be a URI or a string */
static int uri_equal(lua_State *L) {
  sip_lua_uri *a = check_uri(L, 1);
  if (lua_type(L, 2) == LUA_TSTRING) {
    if (sip__lua_uri_new(L, 2) != 1) {
      lua_pushboolean(L, 0);
      return 1;
    }
    lua_replace(L, 2);
  }
  sip_lua_uri *b = check_uri(L, 2);
  lua_pushboolean(L, sip_uri_equal(&a->u, &b->u));
  return 1;
}

static const luaL_Reg uri_methods[] = {
    {"equal", uri_equal},
    {"close", uri_gc},
    {NULL, NULL},
};

static const luaL_Reg uri_meta[] = {
    {"__gc", uri_gc}, {"__close", uri_gc}, {"__tostring", uri_tostring},
    {"__eq", uri_eq}, {NULL, NULL},
};

void sip__lua_open_uri(lua_State *L) {
  luaL_newmetatable(L, SIP_LUA_URI);
  luaL_setfuncs(L, uri_meta, 0);
  luaL_newlib(L, uri_methods);
  lua_pushvalue(L, -1);
  lua_setfield(L, -4, "URI"); /* core.URI = methods (extensible) */
  lua_pushcclosure(L, uri_index, 1);
  lua_setfield(L, -2, "__index");
  lua_pushliteral(L, SIP_LUA_URI);
  lua_setfield(L, -2, "__name");
  lua_pop(L, 1);
  lua_pushcfunction(L, l_uri);
  lua_setfield(L, -2, "uri");
}
