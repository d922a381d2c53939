/* The digest primitives of csrc/auth for lua/luasip/auth.lua (the policy:
 * realms, challenges, lookups). Thin: every computation is sip_digest_*.
 *
 *   core.digest_alg(name) -> canonical name, sess (boolean) | nil
 *   core.digest_ha1(alg, user, realm, password) -> hex
 *   core.digest_userhash(alg, user, realm) -> hex (RFC 7616 §3.4.4)
 *   core.digest_response(t) -> hex; t = { algorithm =, ha1 =, nonce =,
 *       nc =, cnonce =, qop =, method =, uri =, body = }
 *   core.digest_verify(t, response) -> boolean (constant-time compare)
 *   core.digest_equal(a, b) -> boolean (constant time)
 *   core.nonce_new(secret, realm[, now_us]) -> nonce
 *   core.nonce_check(secret, realm, nonce, lifetime[, now_us])
 *       -> issued_us, key | nil, err, "STALE" | "VALUE"
 *   core.nonce_cache(capacity) -> luasip.NonceCache:
 *       cache:use(key, issued_us, nc, lifetime[, now_us]) -> true
 *           | nil, err, "REPLAY" | "STALE"
 *       cache:count(), cache:bytes(), cache:close()
 *   core.random_bytes(n) -> string of n bytes (OpenSSL RAND_bytes)
 *   core.auth_redact(bytes) -> the message with credentials redacted, or
 *       the same string when it has none */
#include <string.h>
#include <sys/time.h>

#include <openssl/rand.h>

#include "lsip.h"
#include "sip_digest.h"

#define SIP_LUA_NONCE_CACHE "luasip.NonceCache"

static uint64_t now_us(lua_State *L, int idx) {
  if (!lua_isnoneornil(L, idx))
    return (uint64_t)luaL_checkinteger(L, idx);
  struct timeval tv;
  gettimeofday(&tv, NULL);
  return (uint64_t)tv.tv_sec * SIP_NONCE_SECOND + (uint64_t)tv.tv_usec;
}

static sip_str check_str(lua_State *L, int idx) {
  size_t n;
  const char *p = luaL_checklstring(L, idx, &n);
  return (sip_str){p, n};
}

/* field k of the table at idx: a slice, absent when nil */
static sip_str field_str(lua_State *L, int idx, const char *k) {
  sip_str s = SIP_STR_NULL;
  lua_getfield(L, idx, k);
  if (!lua_isnil(L, -1)) {
    if (lua_type(L, -1) != LUA_TSTRING)
      luaL_error(L, "digest field '%s' must be a string", k);
    s.p = lua_tolstring(L, -1, &s.len);
  }
  lua_pop(L, 1); /* the table keeps the string alive */
  return s;
}

static int check_alg(lua_State *L, int idx, int *sess) {
  size_t n;
  const char *name = luaL_checklstring(L, idx, &n);
  int alg = sip_digest_alg_lookup(name, n, sess);
  if (alg < 0)
    luaL_argerror(L, idx, "unknown digest algorithm");
  return alg;
}

static int l_digest_alg(lua_State *L) {
  size_t n;
  const char *name = luaL_checklstring(L, 1, &n);
  int sess = 0, alg = sip_digest_alg_lookup(name, n, &sess);
  if (alg < 0) {
    lua_pushnil(L);
    return 1;
  }
  lua_pushstring(L, sip_digest_alg_name(alg));
  lua_pushboolean(L, sess);
  return 2;
}

static int l_digest_ha1(lua_State *L) {
  int alg = check_alg(L, 1, NULL);
  char out[SIP_DIGEST_HEX_BUF];
  int rc = sip_digest_ha1(alg, check_str(L, 2), check_str(L, 3),
                          check_str(L, 4), out);
  if (rc < 0)
    return luaL_error(L, "digest_ha1: %s", sip_strerror(rc));
  lua_pushlstring(L, out, (size_t)rc);
  return 1;
}

static int l_digest_userhash(lua_State *L) {
  int alg = check_alg(L, 1, NULL);
  char out[SIP_DIGEST_HEX_BUF];
  int rc = sip_digest_userhash(alg, check_str(L, 2), check_str(L, 3), out);
  if (rc < 0)
    return luaL_error(L, "digest_userhash: %s", sip_strerror(rc));
  lua_pushlstring(L, out, (size_t)rc);
  return 1;
}

static void digest_in(lua_State *L, int t, sip_digest_in *in) {
  luaL_checktype(L, t, LUA_TTABLE);
  memset(in, 0, sizeof *in);
  lua_getfield(L, t, "algorithm");
  const char *name = lua_isnil(L, -1) ? "MD5" : lua_tostring(L, -1);
  in->alg = name ? sip_digest_alg_lookup(name, strlen(name), &in->sess) : -1;
  lua_pop(L, 1);
  if (in->alg < 0)
    luaL_error(L, "unknown digest algorithm");
  in->ha1 = field_str(L, t, "ha1");
  in->nonce = field_str(L, t, "nonce");
  in->nc = field_str(L, t, "nc");
  in->cnonce = field_str(L, t, "cnonce");
  in->qop = field_str(L, t, "qop");
  in->method = field_str(L, t, "method");
  in->uri = field_str(L, t, "uri");
  in->body = field_str(L, t, "body");
  if (!in->ha1.p || !in->nonce.p || !in->method.p || !in->uri.p)
    luaL_error(L, "digest: ha1, nonce, method and uri are required");
}

static int l_digest_response(lua_State *L) {
  sip_digest_in in;
  digest_in(L, 1, &in);
  char out[SIP_DIGEST_HEX_BUF];
  int rc = sip_digest_response(&in, out);
  if (rc < 0)
    return sip__lua_fail(L, rc, "digest: %s", sip_strerror(rc));
  lua_pushlstring(L, out, (size_t)rc);
  return 1;
}

static int l_digest_verify(lua_State *L) {
  sip_digest_in in;
  digest_in(L, 1, &in);
  int rc = sip_digest_verify(&in, check_str(L, 2));
  if (rc < 0)
    return sip__lua_fail(L, rc, "digest: %s", sip_strerror(rc));
  lua_pushboolean(L, rc == 1);
  return 1;
}

static int l_digest_equal(lua_State *L) {
  lua_pushboolean(L, sip_digest_equal(check_str(L, 1), check_str(L, 2)));
  return 1;
}

static int l_nonce_new(lua_State *L) {
  char out[SIP_NONCE_LEN + 1];
  int rc = sip_nonce_make(check_str(L, 1), check_str(L, 2), now_us(L, 3), out);
  if (rc < 0)
    return luaL_error(L, "nonce: %s", sip_strerror(rc));
  lua_pushlstring(L, out, (size_t)rc);
  return 1;
}

static int l_nonce_check(lua_State *L) {
  lua_Integer lifetime = luaL_checkinteger(L, 4);
  luaL_argcheck(L, lifetime >= 0 && lifetime <= 0x7fffffff, 4,
                "lifetime in seconds expected");
  uint64_t issued = 0;
  unsigned char key[SIP_NONCE_KEY_LEN];
  int rc = sip_nonce_check(check_str(L, 1), check_str(L, 2), check_str(L, 3),
                           now_us(L, 5), (uint32_t)lifetime, &issued, key);
  if (rc < 0)
    return sip__lua_fail(L, rc, "nonce: %s", sip_strerror(rc));
  lua_pushinteger(L, (lua_Integer)issued);
  lua_pushlstring(L, (const char *)key, sizeof key);
  return 2;
}

/* ---- luasip.NonceCache ----------------------------------------------------
 */

typedef struct lua_nonce_cache {
  sip_nonce_cache *c; /* NULL once closed */
} lua_nonce_cache;

static lua_nonce_cache *check_cache(lua_State *L) {
  lua_nonce_cache *u = luaL_checkudata(L, 1, SIP_LUA_NONCE_CACHE);
  if (!u->c)
    luaL_error(L, "nonce cache is closed");
  return u;
}

static int l_nonce_cache(lua_State *L) {
  lua_Integer cap = luaL_optinteger(L, 1, 65536);
  luaL_argcheck(L, cap > 0 && cap <= (1 << 28), 1, "capacity 1..2^28");
  lua_nonce_cache *u = lua_newuserdatauv(L, sizeof *u, 0);
  u->c = NULL; /* closed and consistent before anything can fail */
  luaL_setmetatable(L, SIP_LUA_NONCE_CACHE);
  u->c = sip_nonce_cache_new((size_t)cap);
  if (!u->c)
    return sip__lua_fail(L, SIP_ENOMEM, "nonce cache: %s",
                         sip_strerror(SIP_ENOMEM));
  return 1;
}

static int cache_use(lua_State *L) {
  lua_nonce_cache *u = check_cache(L);
  sip_str key = check_str(L, 2);
  luaL_argcheck(L, key.len == SIP_NONCE_KEY_LEN, 2, "a key of nonce_check");
  lua_Integer issued = luaL_checkinteger(L, 3);
  lua_Integer nc = luaL_checkinteger(L, 4);
  lua_Integer lifetime = luaL_checkinteger(L, 5);
  luaL_argcheck(L, nc >= 0 && nc <= 0xffffffff, 4, "nc 0..2^32-1");
  luaL_argcheck(L, lifetime >= 0 && lifetime <= 0x7fffffff, 5,
                "lifetime in seconds expected");
  int rc =
      sip_nonce_cache_use(u->c, (const unsigned char *)key.p, (uint64_t)issued,
                          (uint32_t)nc, now_us(L, 6), (uint32_t)lifetime);
  if (rc < 0)
    return sip__lua_fail(L, rc, "nonce: %s", sip_strerror(rc));
  lua_pushboolean(L, 1);
  return 1;
}

static int cache_count(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)sip_nonce_cache_count(check_cache(L)->c));
  return 1;
}

static int cache_bytes(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)sip_nonce_cache_bytes(check_cache(L)->c));
  return 1;
}

/* __gc, __close and close(): safe twice */
static int cache_close(lua_State *L) {
  lua_nonce_cache *u = luaL_checkudata(L, 1, SIP_LUA_NONCE_CACHE);
  sip_nonce_cache_free(u->c);
  u->c = NULL;
  return 0;
}

static int cache_tostring(lua_State *L) {
  lua_nonce_cache *u = luaL_checkudata(L, 1, SIP_LUA_NONCE_CACHE);
  if (u->c)
    lua_pushfstring(L, "%s (%d in use): %p", SIP_LUA_NONCE_CACHE,
                    (int)sip_nonce_cache_count(u->c), (void *)u);
  else
    lua_pushfstring(L, "%s (closed): %p", SIP_LUA_NONCE_CACHE, (void *)u);
  return 1;
}

/* ---- misc ------------------------------------------------------------------
 */

static int l_random_bytes(lua_State *L) {
  lua_Integer n = luaL_checkinteger(L, 1);
  luaL_argcheck(L, n > 0 && n <= 1024, 1, "1..1024 bytes");
  unsigned char b[1024];
  if (RAND_bytes(b, (int)n) != 1)
    return luaL_error(L, "random_bytes: the random generator failed");
  lua_pushlstring(L, (const char *)b, (size_t)n);
  return 1;
}

static int l_auth_redact(lua_State *L) {
  sip_str m = check_str(L, 1);
  size_t need = sip_auth_redact(m.p, m.len, NULL, 0);
  if (need == 0) {
    lua_settop(L, 1);
    return 1;
  }
  luaL_Buffer b;
  char *out = luaL_buffinitsize(L, &b, need);
  sip_auth_redact(m.p, m.len, out, need);
  luaL_pushresultsize(&b, need);
  return 1;
}

void sip__lua_open_auth(lua_State *L) {
  static const luaL_Reg funcs[] = {
      {"digest_alg", l_digest_alg},
      {"digest_ha1", l_digest_ha1},
      {"digest_userhash", l_digest_userhash},
      {"digest_response", l_digest_response},
      {"digest_verify", l_digest_verify},
      {"digest_equal", l_digest_equal},
      {"nonce_new", l_nonce_new},
      {"nonce_check", l_nonce_check},
      {"nonce_cache", l_nonce_cache},
      {"random_bytes", l_random_bytes},
      {"auth_redact", l_auth_redact},
      {NULL, NULL},
  };
  static const luaL_Reg methods[] = {
      {"use", cache_use},     {"count", cache_count}, {"bytes", cache_bytes},
      {"close", cache_close}, {NULL, NULL},
  };
  luaL_setfuncs(L, funcs, 0);
  luaL_newmetatable(L, SIP_LUA_NONCE_CACHE);
  luaL_newlib(L, methods);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, cache_close);
  lua_setfield(L, -2, "__gc");
  lua_pushcfunction(L, cache_close);
  lua_setfield(L, -2, "__close");
  lua_pushcfunction(L, cache_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pop(L, 1);
}
