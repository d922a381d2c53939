/* Matching tables: chained hash tables with a per-layer random seed, and
 * the random source for branches, tags and seeds. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "txn_int.h"

/* ---- hashing
 * ---------------------------------------------------------------- */

/* FNV-1a over 64 bits started from a random seed, then a murmur3
 * finalizer. Branches are random, but RFC 2543 keys and hostile peers are
 * not: the seed keeps bucket positions unpredictable from outside. */
#define FNV_PRIME 0x100000001b3ull

static uint64_t mix_bytes(uint64_t h, const char *p, size_t n) {
  for (size_t i = 0; i < n; i++)
    h = (h ^ (unsigned char)p[i]) * FNV_PRIME;
  return (h ^ 0xff) * FNV_PRIME; /* a field separator */
}

static uint64_t mix_lower(uint64_t h, const char *p, size_t n) {
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)p[i];
    if (c >= 'A' && c <= 'Z')
      c = (unsigned char)(c + 32);
    h = (h ^ c) * FNV_PRIME;
  }
  return (h ^ 0xff) * FNV_PRIME;
}

static uint64_t mix_u32(uint64_t h, uint32_t v) {
  for (int i = 0; i < 4; i++, v >>= 8)
    h = (h ^ (v & 0xff)) * FNV_PRIME;
  return h;
}

static uint32_t fin(uint64_t h) {
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdull;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ull;
  h ^= h >> 33;
  return (uint32_t)h;
}

uint32_t sip__txn_hash_client(uint64_t seed, sip_str branch, sip_str method) {
  uint64_t h = mix_bytes(seed ^ 0x636c69656e74ull, branch.p, branch.len);
  return fin(mix_bytes(h, method.p, method.len));
}

uint32_t sip__txn_hash_server(uint64_t seed, sip_str branch, sip_str host,
                              uint16_t port, sip_str method) {
  uint64_t h = mix_bytes(seed ^ 0x736572766572ull, branch.p, branch.len);
  h = mix_lower(h, host.p, host.len);
  h = mix_u32(h, port);
  return fin(mix_bytes(h, method.p, method.len));
}

uint32_t sip__txn_hash_2543(uint64_t seed, sip_str callid, uint32_t cseq,
                            sip_str fromtag, sip_str ruri, sip_str via) {
  uint64_t h = mix_bytes(seed ^ 0x32353433ull, callid.p, callid.len);
  h = mix_u32(h, cseq);
  h = mix_bytes(h, fromtag.p, fromtag.len);
  h = mix_bytes(h, ruri.p, ruri.len);
  return fin(mix_lower(h, via.p, via.len));
}

/* ---- tables
 * ----------------------------------------------------------------- */

#define TABLE_MIN 64

int sip__txn_table_init(sip_txl *txl, sip__txn_table *tb) {
  tb->b = sip__txn_alloc(txl, TABLE_MIN * sizeof(sip_txn *), 0);
  if (!tb->b)
    return SIP_ENOMEM;
  memset(tb->b, 0, TABLE_MIN * sizeof(sip_txn *));
  tb->mask = TABLE_MIN - 1;
  tb->n = 0;
  return 0;
}

void sip__txn_table_free(sip_txl *txl, sip__txn_table *tb) {
  if (tb->b)
    sip__txn_free(txl, tb->b, ((size_t)tb->mask + 1) * sizeof(sip_txn *), 0);
  tb->b = NULL;
  tb->n = 0;
}

/* Double the buckets (load factor 1). A failed allocation keeps the table
 * as it is: longer chains, still correct. */
static void grow(sip_txl *txl, sip__txn_table *tb) {
  size_t old = (size_t)tb->mask + 1, nb = old * 2;
  if (nb > ((size_t)1 << 31))
    return;
  sip_txn **b = sip__txn_alloc(txl, nb * sizeof(sip_txn *), 0);
  if (!b)
    return;
  memset(b, 0, nb * sizeof(sip_txn *));
  uint32_t mask = (uint32_t)(nb - 1);
  for (size_t i = 0; i < old; i++) {
    sip_txn *t = tb->b[i];
    while (t) {
      sip_txn *next = t->hnext;
      t->hnext = b[t->hash & mask];
      b[t->hash & mask] = t;
      t = next;
    }
  }
  sip__txn_free(txl, tb->b, old * sizeof(sip_txn *), 0);
  tb->b = b;
  tb->mask = mask;
}

int sip__txn_table_add(sip_txl *txl, sip__txn_table *tb, sip_txn *t) {
  if (tb->n >= tb->mask + 1)
    grow(txl, tb);
  sip_txn **head = &tb->b[t->hash & tb->mask];
  t->hnext = *head;
  *head = t;
  tb->n++;
  return 0;
}

void sip__txn_table_del(sip__txn_table *tb, sip_txn *t) {
  sip_txn **pp = &tb->b[t->hash & tb->mask];
  while (*pp && *pp != t)
    pp = &(*pp)->hnext;
  if (*pp) {
    *pp = t->hnext;
    tb->n--;
  }
  t->hnext = NULL;
}

/* ---- randomness
 * ------------------------------------------------------------- */

/* getrandom(2) refills a pool, so a branch costs no system call in the
 * common case. One pool per thread: loops in several threads each get
 * their own. */
static _Thread_local unsigned char pool[256];
static _Thread_local size_t pool_left;

static void refill(void) {
  size_t got = 0;
  while (got < sizeof(pool)) {
    ssize_t n = getrandom(pool + got, sizeof(pool) - got, 0);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      break;
    }
    got += (size_t)n;
  }
  if (got < sizeof(pool)) {
    /* no getrandom (ENOSYS in an old sandbox): splitmix64 over the clock.
     * Unique enough for branches; not for secrets. */
    static _Thread_local uint64_t x;
    x ^= uv_hrtime() ^ (uint64_t)(uintptr_t)&got;
    for (; got < sizeof(pool); got++) {
      uint64_t z = (x += 0x9e3779b97f4a7c15ull);
      z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
      z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
      pool[got] = (unsigned char)(z ^ (z >> 31));
    }
  }
  pool_left = sizeof(pool);
}

void sip__txn_random(void *out, size_t n) {
  unsigned char *o = out;
  while (n) {
    if (!pool_left)
      refill();
    size_t k = n < pool_left ? n : pool_left;
    unsigned char *src = pool + sizeof(pool) - pool_left;
    memcpy(o, src, k);
    memset(src, 0, k); /* used bytes never served twice */
    pool_left -= k;
    o += k;
    n -= k;
  }
}

static const char b64url[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* nchars base64url characters from random bytes (6 bits each). */
static void random_chars(char *out, size_t nchars) {
  unsigned char r[32];
  size_t nbytes = (nchars * 6 + 7) / 8;
  sip__txn_random(r, nbytes);
  uint32_t acc = 0;
  int bits = 0;
  size_t j = 0;
  for (size_t i = 0; i < nchars; i++) {
    if (bits < 6) {
      acc = (acc << 8) | r[j++];
      bits += 8;
    }
    out[i] = b64url[(acc >> (bits - 6)) & 63];
    bits -= 6;
  }
}

void sip_txn_random(void *out, size_t n) { sip__txn_random(out, n); }

size_t sip_txn_new_branch(char out[SIP_TXN_BRANCH_SIZE]) {
  memcpy(out, SIP_TXN_MAGIC, 7);
  random_chars(out + 7, SIP_TXN_BRANCH_SIZE - 8);
  out[SIP_TXN_BRANCH_SIZE - 1] = '\0';
  return SIP_TXN_BRANCH_SIZE - 1;
}

size_t sip_txn_new_tag(char out[SIP_TXN_TAG_SIZE]) {
  static const char hex[] = "0123456789abcdef";
  unsigned char r[(SIP_TXN_TAG_SIZE - 1) / 2];
  sip__txn_random(r, sizeof r);
  for (size_t i = 0; i < SIP_TXN_TAG_SIZE - 1; i++)
    out[i] = hex[(r[i / 2] >> (i % 2 ? 4 : 0)) & 15];
  out[SIP_TXN_TAG_SIZE - 1] = '\0';
  return SIP_TXN_TAG_SIZE - 1;
}
