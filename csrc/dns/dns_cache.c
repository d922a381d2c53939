/* The resolver's data: answers read from DNS messages, the TTL cache with
 * its LRU bound, the RFC 2782 SRV order. No libuv handles, no c-ares
 * channel: testable by itself (csrc/dns/tests/dns_test.c). */
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include <ares.h>

#include "dns_int.h"
#include "sip_error.h"

/* ---- answers ----------------------------------------------------------- */

sip__dns_answer *sip__dns_answer_status(int status) {
  sip__dns_answer *a = calloc(1, sizeof(*a));
  if (a) {
    a->refs = 1;
    a->status = status;
  }
  return a;
}

void sip__dns_answer_ref(sip__dns_answer *a) { a->refs++; }

void sip__dns_answer_unref(sip__dns_answer *a) {
  if (a && --a->refs == 0)
    free(a);
}

/* ---- the DNS message reader (RFC 1035 §4.1) ---------------------------- */

static unsigned get16(const unsigned char *p) {
  return (unsigned)p[0] << 8 | p[1];
}

static uint32_t get32(const unsigned char *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
         p[3];
}

/* The length of the (possibly compressed) name at p: ares_expand_name
 * checks every label and pointer against the message's bounds. */
static int name_len(const unsigned char *p, const unsigned char *buf,
                    size_t len, char **out) {
  char *s = NULL;
  long enc = 0;
  if (p >= buf + len ||
      ares_expand_name(p, buf, (int)len, &s, &enc) != ARES_SUCCESS)
    return -1;
  if (out)
    *out = s;
  else
    ares_free_string(s);
  return (int)enc;
}

/* A NAPTR service field: SIP+D2U, SIP+D2T, SIPS+D2T (RFC 3263 §4.1;
 * case-insensitive). */
static int naptr_service(const unsigned char *p, size_t n, uint8_t *secure) {
  static const struct {
    const char *s;
    int transport, secure;
  } known[] = {{"sip+d2u", SIP_TP_UDP, 0},
               {"sip+d2t", SIP_TP_TCP, 0},
               {"sips+d2t", SIP_TP_TLS, 1}};
  for (size_t i = 0; i < sizeof known / sizeof known[0]; i++) {
    size_t k = strlen(known[i].s);
    if (k != n)
      continue;
    size_t j = 0;
    while (j < n && (p[j] | 0x20) == (unsigned char)known[i].s[j])
      j++;
    if (j == n) {
      *secure = (uint8_t)known[i].secure;
      return known[i].transport;
    }
  }
  return 0;
}

/* One record's data into rr (names into names[]). 0, or -1 when
 * malformed. */
static int read_rdata(int type, const unsigned char *rd, unsigned rdlen,
                      const unsigned char *buf, size_t len, sip__dns_rr *rr,
                      char **name) {
  const unsigned char *end = rd + rdlen;
  switch (type) {
  case SIP__DNS_A:
    if (rdlen != 4)
      return -1;
    rr->family = AF_INET;
    memcpy(rr->addr, rd, 4);
    return 0;
  case SIP__DNS_AAAA:
    if (rdlen != 16)
      return -1;
    rr->family = AF_INET6;
    memcpy(rr->addr, rd, 16);
    return 0;
  case SIP__DNS_SRV:
    if (rdlen < 7)
      return -1;
    rr->order = (uint16_t)get16(rd);
    rr->pref = (uint16_t)get16(rd + 2);
    rr->port = (uint16_t)get16(rd + 4);
    return name_len(rd + 6, buf, len, name) < 0 ? -1 : 0;
  case SIP__DNS_NAPTR: {
    if (rdlen < 4 + 3 + 1)
      return -1;
    rr->order = (uint16_t)get16(rd);
    rr->pref = (uint16_t)get16(rd + 2);
    const unsigned char *p = rd + 4;
    const unsigned char *field[3];
    unsigned flen[3];
    for (int i = 0; i < 3; i++) { /* flags, service, regexp */
      if (p >= end || p + 1 + *p > end)
        return -1;
      flen[i] = *p;
      field[i] = p + 1;
      p += 1 + *p;
    }
    int s_flag = flen[0] == 1 && (field[0][0] | 0x20) == 's';
    int t = naptr_service(field[1], flen[1], &rr->secure);
    rr->transport = (uint8_t)(s_flag ? t : 0);
    if (p >= end)
      return -1;
    return name_len(p, buf, len, name) < 0 ? -1 : 0;
  }
  }
  return -1;
}

sip__dns_answer *sip__dns_parse(const unsigned char *buf, size_t len,
                                int qtype) {
  if (!buf || len < 12 || len > 65535)
    return NULL;
  unsigned rcode = buf[3] & 0x0f;
  unsigned qd = get16(buf + 4), an = get16(buf + 6), ns = get16(buf + 8);
  const unsigned char *p = buf + 12, *end = buf + len;
  for (unsigned i = 0; i < qd; i++) {
    int n = name_len(p, buf, len, NULL);
    if (n < 0 || p + n + 4 > end)
      return NULL;
    p += n + 4;
  }
  sip__dns_rr rrs[SIP__DNS_MAX_RR];
  char *names[SIP__DNS_MAX_RR];
  int nrr = 0;
  size_t names_size = 0;
  uint32_t ttl = UINT32_MAX, neg_ttl = 0;
  int bad = 0;
  memset(names, 0, sizeof names);
  for (unsigned i = 0; i < an + ns && !bad; i++) {
    int n = name_len(p, buf, len, NULL);
    if (n < 0 || p + n + 10 > end) {
      bad = 1;
      break;
    }
    p += n;
    int type = (int)get16(p), klass = (int)get16(p + 2);
    uint32_t rttl = get32(p + 4);
    unsigned rdlen = get16(p + 8);
    p += 10;
    if (p + rdlen > end) {
      bad = 1;
      break;
    }
    if (rttl > 0x7fffffffu) /* RFC 2181 §8: treated as zero */
      rttl = 0;
    if (i < an) {
      if (rttl < ttl)
        ttl = rttl;
      if (type == qtype && klass == 1 && nrr < SIP__DNS_MAX_RR) {
        sip__dns_rr *rr = &rrs[nrr];
        memset(rr, 0, sizeof(*rr));
        names[nrr] = NULL;
        if (read_rdata(type, p, rdlen, buf, len, rr, &names[nrr]) < 0) {
          bad = 1;
          break;
        }
        if (names[nrr])
          names_size += strlen(names[nrr]) + 1;
        nrr++;
      }
    } else if (type == SIP__DNS_SOA && klass == 1) {
      /* RFC 2308 §5: min(SOA TTL, SOA MINIMUM) */
      int m = name_len(p, buf, len, NULL);
      int r = m < 0 ? -1 : name_len(p + m, buf, len, NULL);
      if (m < 0 || r < 0 || (unsigned)(m + r + 20) > rdlen) {
        bad = 1;
        break;
      }
      uint32_t minimum = get32(p + m + r + 16);
      neg_ttl = rttl < minimum ? rttl : minimum;
    }
    p += rdlen;
  }
  sip__dns_answer *a = NULL;
  if (!bad) {
    a = malloc(sizeof(*a) + (size_t)nrr * sizeof(sip__dns_rr) + names_size);
    if (a) {
      a->refs = 1;
      a->n = 0;
      if (rcode == 0 && nrr > 0) {
        a->status = 0;
        a->ttl = ttl == UINT32_MAX ? 0 : ttl;
        a->n = nrr;
        char *store = (char *)(a->rr + nrr);
        for (int i = 0; i < nrr; i++) {
          a->rr[i] = rrs[i];
          a->rr[i].name = NULL;
          if (names[i]) {
            size_t k = strlen(names[i]) + 1;
            memcpy(store, names[i], k);
            a->rr[i].name = store;
            store += k;
          }
        }
      } else if (rcode == 0 || rcode == 3) { /* NODATA, NXDOMAIN */
        a->status = rcode == 3 ? UV_EAI_NONAME : 0;
        a->ttl = neg_ttl;
      } else {
        a->status = UV_EAI_AGAIN;
        a->ttl = 0;
      }
    }
  }
  for (int i = 0; i < nrr; i++)
    if (names[i])
      ares_free_string(names[i]);
  return a;
}

/* ---- the cache --------------------------------------------------------- */

typedef struct centry {
  struct centry *hnext;         /* bucket chain */
  struct centry *lprev, *lnext; /* LRU list: head = most recent */
  uint64_t expires;             /* ms */
  uint32_t hash;
  int type;
  sip__dns_answer *ans;
  char name[];
} centry;

struct sip__dns_cache {
  unsigned max, count, mask;
  centry **buckets;
  centry lru; /* sentinel */
};

static char lower(char c) {
  return (c >= 'A' && c <= 'Z') ? (char)(c | 0x20) : c;
}

static uint32_t hash_of(const char *name, int type) {
  uint32_t h = 2166136261u ^ (uint32_t)type;
  for (const char *s = name; *s; s++)
    h = (h ^ (unsigned char)lower(*s)) * 16777619u;
  return h;
}

static int same_name(const char *a, const char *b) {
  while (*a && lower(*a) == lower(*b)) {
    a++;
    b++;
  }
  return *a == 0 && *b == 0;
}

sip__dns_cache *sip__dns_cache_new(unsigned max) {
  sip__dns_cache *c = calloc(1, sizeof(*c));
  if (!c)
    return NULL;
  unsigned nb = 16;
  while (nb < max && nb < (1u << 24))
    nb <<= 1;
  c->buckets = calloc(nb, sizeof(*c->buckets));
  if (!c->buckets) {
    free(c);
    return NULL;
  }
  c->mask = nb - 1;
  c->max = max;
  c->lru.lnext = c->lru.lprev = &c->lru;
  return c;
}

static void lru_unlink(centry *e) {
  e->lprev->lnext = e->lnext;
  e->lnext->lprev = e->lprev;
}

static void lru_front(sip__dns_cache *c, centry *e) {
  e->lnext = c->lru.lnext;
  e->lprev = &c->lru;
  c->lru.lnext->lprev = e;
  c->lru.lnext = e;
}

static void drop(sip__dns_cache *c, centry *e) {
  centry **pp = &c->buckets[e->hash & c->mask];
  while (*pp != e)
    pp = &(*pp)->hnext;
  *pp = e->hnext;
  lru_unlink(e);
  sip__dns_answer_unref(e->ans);
  free(e);
  c->count--;
}

static centry *find(sip__dns_cache *c, const char *name, int type, uint32_t h) {
  for (centry *e = c->buckets[h & c->mask]; e; e = e->hnext)
    if (e->hash == h && e->type == type && same_name(e->name, name))
      return e;
  return NULL;
}

sip__dns_answer *sip__dns_cache_get(sip__dns_cache *c, const char *name,
                                    int type, uint64_t now_ms) {
  if (!c)
    return NULL;
  uint32_t h = hash_of(name, type);
  centry *e = find(c, name, type, h);
  if (!e)
    return NULL;
  if (now_ms >= e->expires) {
    drop(c, e);
    return NULL;
  }
  lru_unlink(e);
  lru_front(c, e);
  sip__dns_answer_ref(e->ans);
  return e->ans;
}

void sip__dns_cache_put(sip__dns_cache *c, const char *name, int type,
                        sip__dns_answer *a, uint32_t ttl, uint64_t now_ms,
                        uint64_t *evictions) {
  if (!c || c->max == 0 || ttl == 0)
    return;
  uint32_t h = hash_of(name, type);
  centry *e = find(c, name, type, h);
  if (e)
    drop(c, e);
  while (c->count >= c->max) {
    centry *old = c->lru.lprev; /* the least recently used */
    if (old->expires > now_ms && evictions)
      (*evictions)++;
    drop(c, old);
  }
  size_t k = strlen(name) + 1;
  e = malloc(sizeof(*e) + k);
  if (!e)
    return;
  for (size_t i = 0; i < k; i++)
    e->name[i] = lower(name[i]);
  e->hash = h;
  e->type = type;
  e->expires = now_ms + (uint64_t)ttl * 1000;
  e->ans = a;
  sip__dns_answer_ref(a);
  e->hnext = c->buckets[h & c->mask];
  c->buckets[h & c->mask] = e;
  lru_front(c, e);
  c->count++;
}

unsigned sip__dns_cache_count(const sip__dns_cache *c) {
  return c ? c->count : 0;
}

void sip__dns_cache_clear(sip__dns_cache *c) {
  if (!c)
    return;
  while (c->lru.lnext != &c->lru)
    drop(c, c->lru.lnext);
}

void sip__dns_cache_free(sip__dns_cache *c) {
  if (!c)
    return;
  sip__dns_cache_clear(c);
  free(c->buckets);
  free(c);
}

/* ---- SRV order (RFC 2782) ---------------------------------------------- */

void sip__dns_srv_order(const sip__dns_rr **v, int n, uint64_t (*rnd)(void *),
                        void *rnd_arg) {
  /* by priority (insertion sort: stable, n <= SIP__DNS_MAX_RR) */
  for (int i = 1; i < n; i++) {
    const sip__dns_rr *x = v[i];
    int j = i;
    while (j > 0 && v[j - 1]->order > x->order) {
      v[j] = v[j - 1];
      j--;
    }
    v[j] = x;
  }
  for (int lo = 0; lo < n;) {
    int hi = lo;
    while (hi < n && v[hi]->order == v[lo]->order)
      hi++;
    /* weight 0 first among the unordered ones (RFC 2782) */
    for (int i = lo + 1; i < hi; i++) {
      const sip__dns_rr *x = v[i];
      int j = i;
      while (j > lo && x->pref == 0 && v[j - 1]->pref != 0) {
        v[j] = v[j - 1];
        j--;
      }
      v[j] = x;
    }
    /* draw each position: a number in [0, sum], the first whose running
     * sum reaches it */
    for (int pos = lo; pos < hi - 1; pos++) {
      uint64_t sum = 0;
      for (int i = pos; i < hi; i++)
        sum += v[i]->pref;
      uint64_t r = rnd(rnd_arg) % (sum + 1), run = 0;
      int pick = hi - 1;
      for (int i = pos; i < hi; i++) {
        run += v[i]->pref;
        if (run >= r) {
          pick = i;
          break;
        }
      }
      const sip__dns_rr *x = v[pick];
      memmove(&v[pos + 1], &v[pos], (size_t)(pick - pos) * sizeof(*v));
      v[pos] = x;
    }
    lo = hi;
  }
}

int sip__dns_numeric(const char *host, size_t len, int port,
                     struct sockaddr_storage *addr) {
  char buf[64];
  if (len >= 2 && host[0] == '[' && host[len - 1] == ']') {
    host++;
    len -= 2;
  }
  if (len == 0 || len >= sizeof buf)
    return 0;
  memcpy(buf, host, len);
  buf[len] = 0;
  memset(addr, 0, sizeof(*addr));
  struct sockaddr_in *a4 = (struct sockaddr_in *)addr;
  struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)addr;
  if (inet_pton(AF_INET, buf, &a4->sin_addr) == 1) {
    a4->sin_family = AF_INET;
    a4->sin_port = htons((uint16_t)port);
    return 1;
  }
  if (inet_pton(AF_INET6, buf, &a6->sin6_addr) == 1) {
    a6->sin6_family = AF_INET6;
    a6->sin6_port = htons((uint16_t)port);
    return 1;
  }
  return 0;
}
