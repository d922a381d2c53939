/* Locating SIP servers (RFC 3263) on the libuv loop, with c-ares.
 *
 * sip_dns_resolve() turns a next hop (a URI's maddr or host, its port and
 * transport, sips or not) into an ordered list of targets (transport,
 * address, port), the way RFC 3263 §4 says:
 *  - a numeric host: no DNS; the transport from the URI, else UDP (TLS for
 *    sips); the port from the URI, else 5060 (5061 for TLS);
 *  - a name with an explicit port: A/AAAA only; the transport from the URI,
 *    else UDP (TLS for sips);
 *  - a name with an explicit transport and no port: SRV for that transport
 *    (_sip._udp / _sip._tcp / _sips._tcp), else A/AAAA on the default port;
 *  - otherwise NAPTR (§4.1): records with flag "s" and a service this side
 *    supports (SIP+D2U, SIP+D2T, SIPS+D2T; for sips only SIPS+D2T), in
 *    order then preference, each giving an SRV name and its transport;
 *    without usable NAPTR records, SRV for each supported transport
 *    (_sip._udp, _sip._tcp then _sips._tcp for sip, §4.2: TLS for a sip
 *    URI uses "_sips"; _sips._tcp for sips); without SRV records, A/AAAA
 *    of the host with UDP (TLS for sips) on the default port.
 *  - SRV records: by priority, and within a priority in the weighted random
 *    order of RFC 2782, drawn again for every resolution; a target "."
 *    means no service. Each SRV target's addresses follow it: A first,
 *    then AAAA (queried when IPv6 is available, see sip_dns_config.ipv6).
 *  - targets marked with sip_dns_avoid() move to the end of the list (in
 *    their order), so they are tried last, not never.
 *
 * Answers are cached by (name, type) for their TTL (the smallest of the
 * answer's records, at most max_ttl); negative answers (NXDOMAIN, NODATA)
 * for the TTL RFC 2308 §5 gives them (the SOA record's TTL and MINIMUM,
 * the smaller, at most neg_ttl); a negative answer without an SOA is not
 * cached (RFC 2308 §5). The cache holds at most cache_size entries; the
 * least recently used goes first.
 *
 * Sockets and timers run on the loop (uv_poll for c-ares' sockets, a
 * uv_timer for its retransmissions): nothing blocks. A resolution that has
 * not finished timeout_ms after it started fails with UV_ETIMEDOUT.
 *
 * Errors (negative, libuv codes, named by uv_err_name / sip_tp_errname):
 *   UV_EAI_NONAME   no such domain (NXDOMAIN), no records, or SRV "."
 *   UV_ETIMEDOUT    no answer within timeout_ms
 *   UV_EAI_AGAIN    the servers failed (SERVFAIL, REFUSED, unreachable)
 *   UV_ECANCELED    the resolver closed before the answer
 *   UV_ENOMEM, SIP_EINVAL (bad query or configuration)
 *
 * Threading: the loop's thread only. */
#ifndef SIP_DNS_H
#define SIP_DNS_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "sip_transport.h"
#include "sip_tree.h"
#include "sip_uri.h"

/* At most this many targets come back from one resolution. */
#define SIP_DNS_MAX_TARGETS 32
#define SIP_DNS_NAME_MAX 256

typedef struct sip_dns sip_dns;

typedef struct sip_dns_config {
  /* "127.0.0.1:5353", "127.0.0.1:5353,[::1]:53" (comma-separated, port
   * optional); NULL or "": the servers of /etc/resolv.conf */
  const char *servers;
  unsigned timeout_ms; /* a whole resolution (default 5000) */
  unsigned tries;      /* sends of one query per server (default 2) */
  unsigned cache_size; /* entries (default 4096; 0: no cache) */
  unsigned max_ttl;    /* seconds a positive answer is kept at most (86400) */
  unsigned neg_ttl;    /* seconds a negative answer is kept at most (900) */
  /* AAAA queries: 1 always, 0 never, -1 (default) when this host has an
   * IPv6 address that is not link-local (::1 counts) */
  int ipv6;
} sip_dns_config;

void sip_dns_config_init(sip_dns_config *cfg);

/* A next hop to locate. host is the URI's maddr or host, as written (IPv6
 * references with brackets); port 0 when the URI has none; transport 0
 * when it names none, else SIP_TP_*; secure for a sips URI. */
typedef struct sip_dns_query {
  const char *host;
  size_t host_len;
  int port;
  int transport;
  int secure;
} sip_dns_query;

/* The query of a sip/sips URI (§4: maddr, else host; ";transport=", with
 * "tcp" in a sips URI meaning TLS). The query points into the URI.
 * Returns 0, or SIP_EINVAL for another scheme, an unknown transport, or
 * sips with transport=udp. */
int sip_dns_query_uri(const sip_uri *u, sip_dns_query *q);

/* One place to send to. host: the name the address belongs to (an SRV
 * target, or the URI's host; for TLS, the name to verify), NUL-terminated;
 * a numeric host is given without brackets. */
typedef struct sip_dns_target {
  int transport; /* SIP_TP_* */
  int port;
  struct sockaddr_storage addr; /* with the port */
  char host[SIP_DNS_NAME_MAX];
} sip_dns_target;

/* status 0: n >= 1 targets in order (valid during the call only);
 * status < 0: one of the codes above, n == 0. */
typedef void (*sip_dns_cb)(void *arg, int status, const sip_dns_target *t,
                           int n);

/* Create a resolver on loop. Returns 0 (*out set), SIP_EINVAL (bad
 * servers), UV_ENOMEM, or UV_EAI_FAIL (c-ares could not start). */
int sip_dns_new(uv_loop_t *loop, const sip_dns_config *cfg, sip_dns **out);

/* Close: every pending resolution's callback runs with UV_ECANCELED before
 * this returns; the memory goes when libuv has closed the handles (run the
 * loop). d may be NULL. */
void sip_dns_close(sip_dns *d);

/* Start a resolution. Returns 1 when it finished at once (a numeric host,
 * or every answer in the cache): cb has run before the return. Returns 0
 * when it is pending: cb runs later, from the loop, exactly once. Returns
 * SIP_EINVAL (cb not called) for an empty or over-long host. */
int sip_dns_resolve(sip_dns *d, const sip_dns_query *q, sip_dns_cb cb,
                    void *arg);

/* Failover (RFC 3263 §4.3): a target that failed is tried last by the
 * resolutions of the next `ms` milliseconds (transport and address with
 * port). A second call for the same target replaces its time. */
void sip_dns_avoid(sip_dns *d, int transport,
                   const struct sockaddr_storage *addr, uint64_t ms);
/* 1 while (transport, addr) is avoided, else 0. */
int sip_dns_avoided(sip_dns *d, int transport,
                    const struct sockaddr_storage *addr);
/* Count a failover (a request moved to its next target): kept with the
 * resolver's counters so that one place reports them. */
void sip_dns_count_failover(sip_dns *d);

/* Forget every cached answer (the counters stay). */
void sip_dns_flush(sip_dns *d);

typedef struct sip_dns_counters {
  uint64_t lookups;       /* sip_dns_resolve calls with a name to resolve */
  uint64_t numeric;       /* ... with a numeric host (no DNS) */
  uint64_t cache_hits;    /* (name, type) answered from the cache */
  uint64_t cache_misses;  /* ... sent to a server */
  uint64_t negative_hits; /* cache hits that were negative answers */
  uint64_t failures;      /* resolutions that ended with an error */
  uint64_t timeouts;      /* ... of which UV_ETIMEDOUT */
  uint64_t failovers;     /* sip_dns_count_failover */
  uint64_t avoided;       /* targets moved last because avoided */
  uint64_t cache_entries; /* now */
  uint64_t evictions;     /* entries dropped for room (not expiry) */
  uint64_t pending;       /* resolutions in progress now */
} sip_dns_counters;

void sip_dns_stats(const sip_dns *d, sip_dns_counters *out);

/* ---- for the bindings ---------------------------------------------------- */

/* What a resolution status means, for a message ("no such domain or no SIP
 * server for it"); libuv's text for other codes. Never NULL. */
const char *sip_dns_strerror(int status);

/* Room for a target's address as text (an IPv6 address, NUL). */
#define SIP_DNS_IP_MAX 64

/* t as text: its address (no brackets) into ip, and its destination spec
 * (sip_tp_parse_spec's form) "udp:IP:PORT", "tcp:[IPv6]:PORT" (transport
 * in lower case: udp, tcp, tls) into dest[0..cap). Returns the spec's
 * length, or SIP_ERANGE when cap is too small. */
int sip_dns_target_text(const sip_dns_target *t, char ip[SIP_DNS_IP_MAX],
                        char *dest, size_t cap);

/* A sip_tp_resolve_fn over d (RFC 3263 §5): locate host (a Via sent-by or
 * maddr; port 0 when it has none) for a response and answer r with the
 * first target (its host as the TLS name over TLS). Returns 0 (r answered
 * now or later) or a negative code (r not answered). */
int sip_dns_resolve_response(sip_dns *d, sip_tp_resolving *r, int transport,
                             const char *host, int port);

/* §4: the host a request to the sip/sips URI u is resolved from (its maddr
 * when present, else its host, as written) into *host; 1 when that host
 * is a numeric address (no DNS), 0 when it is a name. */
int sip_dns_uri_target(const sip_uri *u, sip_str *host);

/* The Lua API's tables (lua/luasip/dns.lua), read or made through
 * sip_tree.h. sip_dns_read_config: the current table's servers (a string,
 * or a list joined with commas), timeout (seconds), tries, cache_size,
 * max_ttl, neg_ttl (numbers >= 0) and ipv6 (a boolean) over the defaults.
 * sip_dns_read_query: its host (a string), port (0..65535), transport
 * (udp, tcp, tls...) and secure (a boolean), a Via sent-by (§5); q points
 * into the tree. Both return 0, or SIP_EINVAL with *bad naming the field
 * (SIP_ENOMEM). sip_dns_emit_targets: t[0..n) appended to e's current
 * table, each { transport ("udp"), host, port, addr, dest } in order. */
int sip_dns_read_config(const sip_tree_reader *r, sip_dns_config *cfg,
                        const char **bad);
int sip_dns_read_query(const sip_tree_reader *r, sip_dns_query *q,
                       const char **bad);
void sip_dns_emit_targets(const sip_dns_target *t, int n,
                          const sip_tree_emitter *e);
/* d's counters (zeros when d is NULL) as fields of e's current table, named
 * as in sip_dns_counters (core.dns_stats()). */
void sip_dns_emit_stats(const sip_dns *d, const sip_tree_emitter *e);

#endif
