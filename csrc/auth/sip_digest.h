/* Digest authentication primitives (RFC 3261 §22.4, RFC 7616, RFC 8760):
 * the hashes of MD5, SHA-256 and SHA-512-256 through OpenSSL EVP, HA1, the
 * request-digest for qop auth / auth-int / none (RFC 2069), constant-time
 * comparison, the stateless nonce (an HMAC over a timestamp) and the
 * bounded memory of the highest nonce-count seen per nonce.
 *
 * Policy (which realm, which algorithms, when to challenge) is the Lua
 * layer's (lua/luasip/auth.lua); nothing here allocates per request or
 * logs. Digests are lower-case hex, NUL-terminated, at most
 * SIP_DIGEST_HEX_MAX characters. */
#ifndef SIP_DIGEST_H
#define SIP_DIGEST_H

#include <stddef.h>
#include <stdint.h>

#include "sip_types.h"

enum sip_digest_alg {
  SIP_DIGEST_MD5,
  SIP_DIGEST_SHA256,
  SIP_DIGEST_SHA512_256,
  SIP_DIGEST_NALG
};

/* The longest hex digest (SHA-256, SHA-512-256) and the buffer it needs. */
#define SIP_DIGEST_HEX_MAX 64
#define SIP_DIGEST_HEX_BUF (SIP_DIGEST_HEX_MAX + 1)

/* "MD5", "SHA-256", "SHA-512-256", each optionally with "-sess",
 * case-insensitive. Returns the algorithm (>= 0) and sets *sess (when not
 * NULL), or SIP_EVALUE for any other name. */
int sip_digest_alg_lookup(const char *name, size_t len, int *sess);
/* The canonical name ("SHA-256"); NULL for a bad value. */
const char *sip_digest_alg_name(int alg);
/* Hex length of the algorithm's digest (32 or 64); 0 for a bad value. */
size_t sip_digest_hex_len(int alg);

/* H(parts[0] ":" parts[1] ":" ... parts[n-1]) in hex into out
 * (SIP_DIGEST_HEX_BUF bytes). Returns the hex length, SIP_EINVAL for a bad
 * algorithm, SIP_ENOMEM when OpenSSL fails. */
int sip_digest_hash(int alg, const sip_str *parts, size_t n, char *out);

/* HA1 = H(username ":" realm ":" password) (RFC 7616 §3.4.2). Returns the
 * hex length or a negative code, as sip_digest_hash. */
int sip_digest_ha1(int alg, sip_str user, sip_str realm, sip_str password,
                   char *out);

/* The hashed user name of RFC 7616 §3.4.4 (userhash=true):
 * H(username ":" realm), the user name in UTF-8 as for HA1. Returns the
 * hex length or a negative code, as sip_digest_hash. */
int sip_digest_userhash(int alg, sip_str user, sip_str realm, char *out);

/* Everything that makes a request-digest. qop absent (p == NULL): the RFC
 * 2069 form H(HA1:nonce:HA2), nc and cnonce unused. qop "auth-int": HA2
 * includes H(body) (an absent body hashes as empty). sess: the -sess
 * variant, HA1 becomes H(HA1:nonce:cnonce). */
typedef struct sip_digest_in {
  int alg;
  int sess;
  sip_str ha1; /* hex, as stored or from sip_digest_ha1 */
  sip_str nonce, nc, cnonce, qop;
  sip_str method, uri, body;
} sip_digest_in;

/* The request-digest ("response") into out. Returns the hex length,
 * SIP_EINVAL for a bad algorithm or a qop other than auth / auth-int,
 * SIP_ENOMEM when OpenSSL fails. */
int sip_digest_response(const sip_digest_in *in, char *out);

/* Compute the request-digest of in and compare it with response in
 * constant time (CRYPTO_memcmp; the hex is compared case-insensitively,
 * the lengths are not secret). Returns 1 when equal, 0 when not, or a
 * negative code from sip_digest_response. */
int sip_digest_verify(const sip_digest_in *in, sip_str response);

/* Constant-time equality of two byte strings of equal length (0 when the
 * lengths differ). */
int sip_digest_equal(sip_str a, sip_str b);

/* ---- stateless nonces ---------------------------------------------------
 *
 * nonce = hex(time, 16) hex(salt, 16) hex(tag, 32), 64 characters, where
 * time is in microseconds (SIP_NONCE_SECOND per second: the nonce-count
 * memory below orders nonces by it), salt is 8 random bytes and tag the first
 * 16 bytes of HMAC-SHA256(secret, time-hex salt-hex ":" realm). A nonce is
 * bound to its realm; the server keeps nothing per nonce (but see the cache
 * below). */
#define SIP_NONCE_LEN 64
/* Times of nonces (now, issued) are microseconds since the epoch;
 * lifetimes are seconds. */
#define SIP_NONCE_SECOND 1000000u
/* The part of a nonce that tells one from another (the HMAC tag). */
#define SIP_NONCE_KEY_LEN 16

/* Write a new nonce for realm at time now (microseconds) into out (at least
 * SIP_NONCE_LEN + 1 bytes, NUL-terminated). Returns SIP_NONCE_LEN, or
 * SIP_ENOMEM when OpenSSL's random generator or HMAC fails, SIP_EINVAL for
 * an empty secret. */
int sip_nonce_make(sip_str secret, sip_str realm, uint64_t now, char *out);

/* Check a nonce received for realm: well formed and made with secret (HMAC
 * compared in constant time). Sets *issued to its time and copies its key
 * (SIP_NONCE_KEY_LEN bytes) into key when not NULL. Returns 0 when valid
 * and at most lifetime seconds old, SIP_ESTALE when valid but older (or
 * more than 60 s in the future: a clock step), SIP_EVALUE when it is not a
 * nonce of ours. */
int sip_nonce_check(sip_str secret, sip_str realm, sip_str nonce, uint64_t now,
                    uint32_t lifetime, uint64_t *issued, unsigned char *key);

/* ---- nonce-count memory ---------------------------------------------------
 *
 * The highest nc seen for each nonce in use, in a fixed table (capacity
 * entries of 32 bytes, open addressing, 8 probes). When the probes of a
 * new nonce find no free slot, the oldest entry among them goes, and every
 * nonce issued no later than the evicted one counts as stale from then on
 * when it is not in the table: memory stays bounded and a forgotten nonce
 * can never be replayed. */
typedef struct sip_nonce_cache sip_nonce_cache;

/* capacity is rounded up to a power of two (minimum 64). NULL when out of
 * memory. */
sip_nonce_cache *sip_nonce_cache_new(size_t capacity);
void sip_nonce_cache_free(sip_nonce_cache *c);

/* Record a use of the nonce with key (from sip_nonce_check), issued at
 * time issued (microseconds), with nonce-count nc, at time now. Entries
 * older than lifetime seconds are
 * free slots. Returns 0 when nc is above every nc seen for this nonce (it
 * is now the highest), SIP_EREPLAY when it is not, SIP_ESTALE when the
 * nonce may have been forgotten (see above). */
int sip_nonce_cache_use(sip_nonce_cache *c, const unsigned char *key,
                        uint64_t issued, uint32_t nc, uint64_t now,
                        uint32_t lifetime);

/* Entries in use (expired ones included until reused). */
size_t sip_nonce_cache_count(const sip_nonce_cache *c);
/* Table size in bytes. */
size_t sip_nonce_cache_bytes(const sip_nonce_cache *c);

/* ---- trace redaction ---------------------------------------------------- */

/* Copy a SIP message's bytes for a trace or a log with the values of its
 * Authorization and Proxy-Authorization header lines (folds included)
 * replaced: a Digest credential keeps username, realm, uri, algorithm, qop
 * and nc, every other parameter's value becomes "<redacted>"; any other
 * scheme keeps only its name. The body is copied as is. Writes at most
 * cap bytes into out and returns the length the whole copy needs (as
 * snprintf; no NUL is written), so a caller can size its buffer. Returns 0
 * when the message has no such header (then nothing needs redacting). */
size_t sip_auth_redact(const char *msg, size_t len, char *out, size_t cap);

#endif
