/* Internal header of the resolver (csrc/dns): answers, the cache, the DNS
 * message reader, the SRV order. sip__dns_* symbols are shared by the
 * files of this folder and its test; nothing else may use them. */
#ifndef SIP_DNS_INT_H
#define SIP_DNS_INT_H

#include <stddef.h>
#include <stdint.h>

#include "sip_dns.h"

/* DNS record types this resolver asks for (RFC 1035, 2782, 3403, 3596) */
enum {
  SIP__DNS_A = 1,
  SIP__DNS_SOA = 6,
  SIP__DNS_AAAA = 28,
  SIP__DNS_SRV = 33,
  SIP__DNS_NAPTR = 35,
};

/* Records an answer keeps at most (more are ignored). */
#define SIP__DNS_MAX_RR 32

/* One record of an answer. NAPTR: order, pref, transport (0 when its flags
 * are not "s" or its service is not one this side supports; secure for
 * SIPS+D2T), name = replacement. SRV: order = priority, pref = weight,
 * port, name = target ("." stays "."). A/AAAA: family and addr. */
typedef struct sip__dns_rr {
  uint16_t order, pref, port;
  uint8_t transport, secure;
  int family;
  unsigned char addr[16];
  const char *name; /* into the answer's own storage; NULL for A/AAAA */
} sip__dns_rr;

/* A (name, type) outcome, shared by the cache and the resolutions that use
 * it (reference counted). status: 0 with n records (n == 0: NODATA),
 * UV_EAI_NONAME for NXDOMAIN, else a failure that is never cached
 * (UV_ETIMEDOUT, UV_EAI_AGAIN, UV_ECANCELED). ttl: seconds it may be
 * cached (0: not at all). */
typedef struct sip__dns_answer {
  int refs;
  int status;
  uint32_t ttl;
  int n;
  sip__dns_rr rr[];
} sip__dns_answer;

/* A new answer holding no record (refs 1), or NULL when out of memory. */
sip__dns_answer *sip__dns_answer_status(int status);
void sip__dns_answer_ref(sip__dns_answer *a);
void sip__dns_answer_unref(sip__dns_answer *a);

/* Read a DNS response (RFC 1035 §4.1) for a question of qtype: its records
 * of that type, the smallest TTL of the answer section, and for a negative
 * answer (NXDOMAIN, or NOERROR without records) the RFC 2308 §5 TTL (SOA
 * TTL and MINIMUM, the smaller; 0 without an SOA). Other response codes
 * give status UV_EAI_AGAIN. Returns the answer (refs 1), or NULL when the
 * message is malformed or memory runs out. Every read is bounds-checked. */
sip__dns_answer *sip__dns_parse(const unsigned char *buf, size_t len,
                                int qtype);

/* ---- the cache --------------------------------------------------------- */

typedef struct sip__dns_cache sip__dns_cache;

/* A cache of at most max entries (0: caches nothing). NULL: no memory. */
sip__dns_cache *sip__dns_cache_new(unsigned max);
void sip__dns_cache_free(sip__dns_cache *c);
/* The live answer for (name, type) at now_ms (a new reference), or NULL.
 * Names compare case-insensitively; an expired entry is dropped. */
sip__dns_answer *sip__dns_cache_get(sip__dns_cache *c, const char *name,
                                    int type, uint64_t now_ms);
/* Keep a for ttl seconds from now_ms (the cache takes its own reference),
 * replacing any entry of (name, type); ttl 0 stores nothing. When full,
 * the least recently used entry goes (counted in *evictions). */
void sip__dns_cache_put(sip__dns_cache *c, const char *name, int type,
                        sip__dns_answer *a, uint32_t ttl, uint64_t now_ms,
                        uint64_t *evictions);
unsigned sip__dns_cache_count(const sip__dns_cache *c);
void sip__dns_cache_clear(sip__dns_cache *c);

/* ---- SRV order (RFC 2782) ---------------------------------------------- */

/* Order v[0..n) by priority, and within each priority by the weighted
 * random draw of RFC 2782 (weight 0 records have a small chance to come
 * first; a record with weight w, among records of weights summing to S,
 * is drawn first with probability w/S). rnd returns uniform 64-bit
 * values. */
void sip__dns_srv_order(const sip__dns_rr **v, int n, uint64_t (*rnd)(void *),
                        void *rnd_arg);

/* Is the host (brackets allowed) a numeric IPv4 or IPv6 address? Fills
 * addr (with port) when it is. 1 or 0. */
int sip__dns_numeric(const char *host, size_t len, int port,
                     struct sockaddr_storage *addr);

#endif
