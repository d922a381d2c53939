/* Digest authentication primitives: hashes through OpenSSL EVP, HA1, the
 * request-digest, constant-time comparison, stateless nonces and the
 * nonce-count memory (see sip_digest.h for the contracts). */
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "sip_digest.h"

static const struct {
  const char *name;
  size_t hex;
} algs[SIP_DIGEST_NALG] = {
    [SIP_DIGEST_MD5] = {"MD5", 32},
    [SIP_DIGEST_SHA256] = {"SHA-256", 64},
    [SIP_DIGEST_SHA512_256] = {"SHA-512-256", 64},
};

static const EVP_MD *alg_md(int alg) {
  static EVP_MD *md[SIP_DIGEST_NALG];
  static const char *const fetch[SIP_DIGEST_NALG] = {
      [SIP_DIGEST_MD5] = "MD5",
      [SIP_DIGEST_SHA256] = "SHA2-256",
      [SIP_DIGEST_SHA512_256] = "SHA2-512/256",
  };
  if (alg < 0 || alg >= SIP_DIGEST_NALG)
    return NULL;
  if (!md[alg])
    md[alg] = EVP_MD_fetch(NULL, fetch[alg], NULL);
  return md[alg];
}

static int lower(int c) { return c >= 'A' && c <= 'Z' ? c | 0x20 : c; }

static int ieq(const char *p, size_t len, const char *s) {
  size_t n = strlen(s);
  if (len != n)
    return 0;
  for (size_t i = 0; i < n; i++)
    if (lower((unsigned char)p[i]) != lower((unsigned char)s[i]))
      return 0;
  return 1;
}

int sip_digest_alg_lookup(const char *name, size_t len, int *sess) {
  int s = 0;
  if (len > 5 && ieq(name + len - 5, 5, "-sess")) {
    s = 1;
    len -= 5;
  }
  for (int a = 0; a < SIP_DIGEST_NALG; a++) {
    if (ieq(name, len, algs[a].name)) {
      if (sess)
        *sess = s;
      return a;
    }
  }
  return SIP_EVALUE;
}

const char *sip_digest_alg_name(int alg) {
  return alg >= 0 && alg < SIP_DIGEST_NALG ? algs[alg].name : NULL;
}

size_t sip_digest_hex_len(int alg) {
  return alg >= 0 && alg < SIP_DIGEST_NALG ? algs[alg].hex : 0;
}

static void to_hex(const unsigned char *b, size_t n, char *out) {
  static const char digits[] = "0123456789abcdef";
  for (size_t i = 0; i < n; i++) {
    out[2 * i] = digits[b[i] >> 4];
    out[2 * i + 1] = digits[b[i] & 15];
  }
  out[2 * n] = '\0';
}

int sip_digest_hash(int alg, const sip_str *parts, size_t n, char *out) {
  const EVP_MD *md = alg_md(alg);
  if (!md)
    return SIP_EINVAL;
  EVP_MD_CTX *ctx = EVP_MD_CTX_new();
  if (!ctx)
    return SIP_ENOMEM;
  unsigned char d[EVP_MAX_MD_SIZE];
  unsigned int dlen = 0;
  int ok = EVP_DigestInit_ex(ctx, md, NULL);
  for (size_t i = 0; ok && i < n; i++) {
    if (i > 0)
      ok = EVP_DigestUpdate(ctx, ":", 1);
    if (ok && parts[i].len)
      ok = EVP_DigestUpdate(ctx, parts[i].p, parts[i].len);
  }
  if (ok)
    ok = EVP_DigestFinal_ex(ctx, d, &dlen);
  EVP_MD_CTX_free(ctx);
  if (!ok || dlen * 2 != algs[alg].hex)
    return SIP_ENOMEM;
  to_hex(d, dlen, out);
  return (int)(dlen * 2);
}

int sip_digest_ha1(int alg, sip_str user, sip_str realm, sip_str password,
                   char *out) {
  sip_str parts[3] = {user, realm, password};
  return sip_digest_hash(alg, parts, 3, out);
}

int sip_digest_userhash(int alg, sip_str user, sip_str realm, char *out) {
  sip_str parts[2] = {user, realm};
  return sip_digest_hash(alg, parts, 2, out);
}

int sip_digest_response(const sip_digest_in *in, char *out) {
  int alg = in->alg;
  if (!alg_md(alg))
    return SIP_EINVAL;
  int auth_int = 0;
  if (in->qop.p) {
    if (ieq(in->qop.p, in->qop.len, "auth-int"))
      auth_int = 1;
    else if (!ieq(in->qop.p, in->qop.len, "auth"))
      return SIP_EINVAL;
  }
  char ha1[SIP_DIGEST_HEX_BUF], ha2[SIP_DIGEST_HEX_BUF],
      hbody[SIP_DIGEST_HEX_BUF];
  sip_str h1 = in->ha1;
  int rc;
  if (in->sess) { /* RFC 7616 §3.4.2 */
    sip_str p[3] = {in->ha1, in->nonce, in->cnonce};
    if ((rc = sip_digest_hash(alg, p, 3, ha1)) < 0)
      return rc;
    h1 = (sip_str){ha1, (size_t)rc};
  }
  if (auth_int) { /* RFC 7616 §3.4.3 */
    if ((rc = sip_digest_hash(alg, &in->body, 1, hbody)) < 0)
      return rc;
    sip_str p[3] = {in->method, in->uri, {hbody, (size_t)rc}};
    rc = sip_digest_hash(alg, p, 3, ha2);
  } else {
    sip_str p[2] = {in->method, in->uri};
    rc = sip_digest_hash(alg, p, 2, ha2);
  }
  if (rc < 0)
    return rc;
  sip_str h2 = {ha2, (size_t)rc};
  if (!in->qop.p) { /* RFC 2069 */
    sip_str p[3] = {h1, in->nonce, h2};
    return sip_digest_hash(alg, p, 3, out);
  }
  sip_str p[6] = {h1, in->nonce, in->nc, in->cnonce, in->qop, h2};
  return sip_digest_hash(alg, p, 6, out);
}

int sip_digest_equal(sip_str a, sip_str b) {
  if (a.len != b.len || !a.p || !b.p)
    return 0;
  return CRYPTO_memcmp(a.p, b.p, a.len) == 0;
}

int sip_digest_verify(const sip_digest_in *in, sip_str response) {
  char want[SIP_DIGEST_HEX_BUF], got[SIP_DIGEST_HEX_BUF];
  int rc = sip_digest_response(in, want);
  if (rc < 0)
    return rc;
  if (!response.p || response.len != (size_t)rc)
    return 0;
  /* hex digits are case-insensitive; lower-casing is branch-free per byte
   * on the value, not on the secret */
  for (size_t i = 0; i < response.len; i++)
    got[i] = (char)lower((unsigned char)response.p[i]);
  return sip_digest_equal((sip_str){want, (size_t)rc},
                          (sip_str){got, response.len});
}

/* ---- stateless nonces ---------------------------------------------------- */

/* The HMAC and the digests are fetched once: an implicit fetch on every
 * use costs more than hashing a SIP header (OpenSSL 3). The loop is single
 * threaded; the worst a race could do is fetch twice. */
static EVP_MAC *hmac_fetched(void) {
  static EVP_MAC *mac;
  if (!mac)
    mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
  return mac;
}

static int hmac_tag(sip_str secret, const char *stamp, size_t stamp_len,
                    sip_str realm, unsigned char *tag) {
  unsigned char d[EVP_MAX_MD_SIZE];
  EVP_MAC *mac = hmac_fetched();
  EVP_MAC_CTX *ctx = mac ? EVP_MAC_CTX_new(mac) : NULL;
  if (!ctx)
    return SIP_ENOMEM;
  char digest[] = "SHA256";
  OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string("digest", digest, 0),
                         OSSL_PARAM_END};
  size_t dlen = 0;
  int ok =
      EVP_MAC_init(ctx, (const unsigned char *)secret.p, secret.len, params) &&
      EVP_MAC_update(ctx, (const unsigned char *)stamp, stamp_len) &&
      EVP_MAC_update(ctx, (const unsigned char *)":", 1) &&
      (realm.len == 0 ||
       EVP_MAC_update(ctx, (const unsigned char *)realm.p, realm.len)) &&
      EVP_MAC_final(ctx, d, &dlen, sizeof d);
  EVP_MAC_CTX_free(ctx);
  if (!ok || dlen < SIP_NONCE_KEY_LEN)
    return SIP_ENOMEM;
  memcpy(tag, d, SIP_NONCE_KEY_LEN);
  return 0;
}

int sip_nonce_make(sip_str secret, sip_str realm, uint64_t now, char *out) {
  if (!secret.p || secret.len == 0)
    return SIP_EINVAL;
  unsigned char raw[16], tag[SIP_NONCE_KEY_LEN];
  for (int i = 0; i < 8; i++)
    raw[i] = (unsigned char)(now >> (56 - 8 * i));
  if (RAND_bytes(raw + 8, 8) != 1)
    return SIP_ENOMEM;
  to_hex(raw, 16, out);
  int rc = hmac_tag(secret, out, 32, realm, tag);
  if (rc < 0)
    return rc;
  to_hex(tag, SIP_NONCE_KEY_LEN, out + 32);
  return SIP_NONCE_LEN;
}

static int hexval(int c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  return -1; /* we write lower case only */
}

static int from_hex(const char *p, size_t n, unsigned char *out) {
  for (size_t i = 0; i < n; i++) {
    int hi = hexval((unsigned char)p[2 * i]),
        lo = hexval((unsigned char)p[2 * i + 1]);
    if (hi < 0 || lo < 0)
      return -1;
    out[i] = (unsigned char)(hi << 4 | lo);
  }
  return 0;
}

int sip_nonce_check(sip_str secret, sip_str realm, sip_str nonce, uint64_t now,
                    uint32_t lifetime, uint64_t *issued, unsigned char *key) {
  unsigned char raw[16], got[SIP_NONCE_KEY_LEN], want[SIP_NONCE_KEY_LEN];
  if (!secret.p || secret.len == 0 || !nonce.p || nonce.len != SIP_NONCE_LEN ||
      from_hex(nonce.p, 16, raw) < 0 ||
      from_hex(nonce.p + 32, SIP_NONCE_KEY_LEN, got) < 0)
    return SIP_EVALUE;
  int rc = hmac_tag(secret, nonce.p, 32, realm, want);
  if (rc < 0)
    return rc;
  if (CRYPTO_memcmp(got, want, SIP_NONCE_KEY_LEN) != 0)
    return SIP_EVALUE;
  uint64_t t = 0;
  for (int i = 0; i < 8; i++)
    t = t << 8 | raw[i];
  if (issued)
    *issued = t;
  if (key)
    memcpy(key, got, SIP_NONCE_KEY_LEN);
  if (t > now + 60 * SIP_NONCE_SECOND ||
      now - (t > now ? now : t) > (uint64_t)lifetime * SIP_NONCE_SECOND)
    return SIP_ESTALE;
  return 0;
}

/* ---- nonce-count memory ----------------------------------------------------
 */

typedef struct nc_entry {
  unsigned char key[SIP_NONCE_KEY_LEN];
  uint64_t issued; /* 0: free */
  uint32_t nc;
  uint32_t pad;
} nc_entry;

struct sip_nonce_cache {
  nc_entry *v;
  size_t mask;
  size_t used;
  uint64_t floor; /* the newest issue time evicted so far */
};

#define NC_PROBES 8

sip_nonce_cache *sip_nonce_cache_new(size_t capacity) {
  size_t n = 64;
  while (n < capacity && n < ((size_t)1 << 40))
    n <<= 1;
  sip_nonce_cache *c = calloc(1, sizeof *c);
  if (!c)
    return NULL;
  c->v = calloc(n, sizeof *c->v);
  if (!c->v) {
    free(c);
    return NULL;
  }
  c->mask = n - 1;
  return c;
}

void sip_nonce_cache_free(sip_nonce_cache *c) {
  if (!c)
    return;
  free(c->v);
  free(c);
}

static size_t key_hash(const unsigned char *key) {
  uint64_t a, b; /* an HMAC output, but mix anyway: keys come from callers */
  memcpy(&a, key, 8);
  memcpy(&b, key + 8, 8);
  uint64_t h = (a ^ (b * 0x9e3779b97f4a7c15u)) * 0xbf58476d1ce4e5b9u;
  return (size_t)(h ^ h >> 31);
}

int sip_nonce_cache_use(sip_nonce_cache *c, const unsigned char *key,
                        uint64_t issued, uint32_t nc, uint64_t now,
                        uint32_t lifetime) {
  size_t h = key_hash(key);
  nc_entry *free_slot = NULL, *oldest = NULL;
  for (size_t i = 0; i < NC_PROBES; i++) {
    nc_entry *e = &c->v[(h + i) & c->mask];
    if (e->issued && memcmp(e->key, key, SIP_NONCE_KEY_LEN) == 0) {
      if (nc <= e->nc)
        return SIP_EREPLAY;
      e->nc = nc;
      return 0;
    }
    int expired =
        e->issued && e->issued + (uint64_t)lifetime * SIP_NONCE_SECOND < now;
    if (!e->issued || expired) {
      if (!free_slot)
        free_slot = e;
    } else if (!oldest || e->issued < oldest->issued) {
      oldest = e;
    }
  }
  if (issued <= c->floor)
    return SIP_ESTALE;
  nc_entry *e = free_slot;
  if (!e) {
    e = oldest;
    if (e->issued > c->floor)
      c->floor = e->issued;
  } else if (!e->issued) {
    c->used++;
  }
  memcpy(e->key, key, SIP_NONCE_KEY_LEN);
  e->issued = issued ? issued : 1;
  e->nc = nc;
  return 0;
}

size_t sip_nonce_cache_count(const sip_nonce_cache *c) { return c->used; }

size_t sip_nonce_cache_bytes(const sip_nonce_cache *c) {
  return (c->mask + 1) * sizeof *c->v;
}
