/* The resolver (csrc/dns): the DNS message reader, the cache, the SRV
 * order, and RFC 3263 resolutions against a fake DNS server on 127.0.0.1
 * (a UDP socket of this test that answers from a table; no other
 * traffic). Prints "dns_test: N passed, N failed". */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dns_int.h"
#include "sip_dns.h"
#include "sip_error.h"
#include "sip_msg.h"
#include "test/check.h"
#include "test/tree.h"

/* ---- DNS message building ---------------------------------------------- */

typedef struct wbuf {
  unsigned char b[1500];
  size_t n;
} wbuf;

static void put8(wbuf *w, unsigned v) { w->b[w->n++] = (unsigned char)v; }
static void put16(wbuf *w, unsigned v) {
  put8(w, v >> 8);
  put8(w, v & 255);
}
static void put32(wbuf *w, uint32_t v) {
  put16(w, v >> 16);
  put16(w, v & 0xffff);
}
static void put_name(wbuf *w, const char *name) {
  while (*name) {
    const char *dot = strchr(name, '.');
    size_t k = dot ? (size_t)(dot - name) : strlen(name);
    put8(w, (unsigned)k);
    memcpy(w->b + w->n, name, k);
    w->n += k;
    name += k + (dot ? 1 : 0);
  }
  put8(w, 0);
}
static void put_cstr(wbuf *w, const char *s) {
  put8(w, (unsigned)strlen(s));
  memcpy(w->b + w->n, s, strlen(s));
  w->n += strlen(s);
}

/* one record of the fake zone */
typedef struct zrec {
  const char *name;
  int type;
  uint32_t ttl;
  /* A: a; AAAA: a; SRV: prio, weight, port, target; NAPTR: prio(order),
   * weight(pref), flags, service, target(replacement) */
  const char *a;
  unsigned prio, weight, port;
  const char *flags, *service, *target;
} zrec;

static const zrec zone[] = {
    /* n.test: NAPTR prefers TCP */
    {"n.test", SIP__DNS_NAPTR, 60, 0, 20, 10, 0, "s", "SIP+D2U",
     "_sip._udp.n.test"},
    {"n.test", SIP__DNS_NAPTR, 60, 0, 10, 10, 0, "s", "SIP+D2T",
     "_sip._tcp.n.test"},
    {"n.test", SIP__DNS_NAPTR, 60, 0, 5, 10, 0, "s", "SIP+D2X", "_x.n.test"},
    {"_sip._tcp.n.test", SIP__DNS_SRV, 60, 0, 10, 1, 5070, 0, 0, "a.n.test"},
    {"_sip._udp.n.test", SIP__DNS_SRV, 60, 0, 10, 1, 5080, 0, 0, "b.n.test"},
    {"a.n.test", SIP__DNS_A, 60, "127.0.0.2", 0, 0, 0, 0, 0, 0},
    {"b.n.test", SIP__DNS_A, 60, "127.0.0.3", 0, 0, 0, 0, 0, 0},
    {"b.n.test", SIP__DNS_AAAA, 60, "::1", 0, 0, 0, 0, 0, 0},
    /* s.test: SRV only, two priorities, weights in the first */
    {"_sip._udp.s.test", SIP__DNS_SRV, 60, 0, 20, 5, 5090, 0, 0, "c.s.test"},
    {"_sip._udp.s.test", SIP__DNS_SRV, 60, 0, 10, 30, 5071, 0, 0, "w1.s.test"},
    {"_sip._udp.s.test", SIP__DNS_SRV, 60, 0, 10, 10, 5072, 0, 0, "w2.s.test"},
    {"w1.s.test", SIP__DNS_A, 60, "127.0.0.11", 0, 0, 0, 0, 0, 0},
    {"w2.s.test", SIP__DNS_A, 60, "127.0.0.12", 0, 0, 0, 0, 0, 0},
    {"c.s.test", SIP__DNS_A, 60, "127.0.0.13", 0, 0, 0, 0, 0, 0},
    {"s.test", SIP__DNS_A, 60, "127.0.0.99", 0, 0, 0, 0, 0, 0},
    /* a.test: A only, TTL 1 */
    {"a.test", SIP__DNS_A, 1, "127.0.0.21", 0, 0, 0, 0, 0, 0},
    {"o.test", SIP__DNS_A, 60, "127.0.0.41", 0, 0, 0, 0, 0, 0},
    /* none.test: SRV "." (no service) */
    {"_sip._udp.none.test", SIP__DNS_SRV, 60, 0, 0, 0, 0, 0, 0, ""},
    {"none.test", SIP__DNS_A, 60, "127.0.0.31", 0, 0, 0, 0, 0, 0},
};

/* names that exist (NODATA for other types); anything else: NXDOMAIN */
static const char *const existing[] = {"n.test", "s.test", "a.test",
                                       "none.test", "slow.test"};

static int queries_for(const char *name, int type);
static struct {
  char name[128];
  int type;
} qlog[4096];
static int nqlog;
static int answer_ttl_shift; /* a.test's address changes with it */

static int name_exists(const char *name) {
  for (size_t i = 0; i < sizeof zone / sizeof zone[0]; i++)
    if (strcasecmp(zone[i].name, name) == 0)
      return 1;
  for (size_t i = 0; i < sizeof existing / sizeof existing[0]; i++)
    if (strcasecmp(existing[i], name) == 0)
      return 1;
  return 0;
}

/* the response to query q (n bytes) into w; 0 to stay silent */
static int respond(const unsigned char *q, size_t n, wbuf *w) {
  if (n < 17)
    return 0;
  char name[128];
  size_t p = 12, k = 0;
  while (p < n && q[p]) {
    unsigned l = q[p++];
    if (p + l > n || k + l + 1 >= sizeof name)
      return 0;
    if (k)
      name[k++] = '.';
    memcpy(name + k, q + p, l);
    k += l;
    p += l;
  }
  name[k] = 0;
  p++;
  if (p + 4 > n)
    return 0;
  int type = q[p] << 8 | q[p + 1];
  size_t qend = p + 4;
  if (nqlog < 4096) {
    snprintf(qlog[nqlog].name, sizeof qlog[nqlog].name, "%s", name);
    qlog[nqlog++].type = type;
  }
  if (strcasecmp(name, "slow.test") == 0 ||
      strcasecmp(name, "_sip._udp.slow.test") == 0)
    return 0; /* never answers */
  int exists = name_exists(name);
  w->n = 0;
  put8(w, q[0]);
  put8(w, q[1]);
  put16(w, 0x8180 | (exists ? 0 : 3)); /* response, RD, RA, rcode */
  put16(w, 1);
  size_t ancount_at = w->n;
  put16(w, 0);
  size_t nscount_at = w->n;
  put16(w, 0);
  put16(w, 0);
  memcpy(w->b + w->n, q + 12, qend - 12);
  w->n += qend - 12;
  unsigned an = 0;
  for (size_t i = 0; i < sizeof zone / sizeof zone[0]; i++) {
    const zrec *z = &zone[i];
    if (z->type != type || strcasecmp(z->name, name) != 0)
      continue;
    put_name(w, z->name);
    put16(w, (unsigned)type);
    put16(w, 1);
    put32(w, z->ttl);
    size_t rdlen_at = w->n;
    put16(w, 0);
    size_t start = w->n;
    if (type == SIP__DNS_A) {
      struct in_addr a;
      inet_pton(AF_INET, z->a, &a);
      if (strcmp(z->name, "a.test") == 0)
        a.s_addr = htonl(ntohl(a.s_addr) + (uint32_t)answer_ttl_shift);
      memcpy(w->b + w->n, &a, 4);
      w->n += 4;
    } else if (type == SIP__DNS_AAAA) {
      struct in6_addr a;
      inet_pton(AF_INET6, z->a, &a);
      memcpy(w->b + w->n, &a, 16);
      w->n += 16;
    } else if (type == SIP__DNS_SRV) {
      put16(w, z->prio);
      put16(w, z->weight);
      put16(w, z->port);
      put_name(w, z->target);
    } else if (type == SIP__DNS_NAPTR) {
      put16(w, z->prio);
      put16(w, z->weight);
      put_cstr(w, z->flags);
      put_cstr(w, z->service);
      put_cstr(w, "");
      put_name(w, z->target);
    }
    size_t rdlen = w->n - start;
    w->b[rdlen_at] = (unsigned char)(rdlen >> 8);
    w->b[rdlen_at + 1] = (unsigned char)rdlen;
    an++;
  }
  w->b[ancount_at] = (unsigned char)(an >> 8);
  w->b[ancount_at + 1] = (unsigned char)an;
  if (an == 0) { /* negative: an SOA with TTL 60 and MINIMUM 30 */
    put_name(w, "test");
    put16(w, SIP__DNS_SOA);
    put16(w, 1);
    put32(w, 60);
    size_t rdlen_at = w->n;
    put16(w, 0);
    size_t start = w->n;
    put_name(w, "ns.test");
    put_name(w, "root.test");
    put32(w, 1);
    put32(w, 3600);
    put32(w, 600);
    put32(w, 86400);
    put32(w, 30);
    size_t rdlen = w->n - start;
    w->b[rdlen_at] = (unsigned char)(rdlen >> 8);
    w->b[rdlen_at + 1] = (unsigned char)rdlen;
    w->b[nscount_at + 1] = 1;
  }
  return 1;
}

static int queries_for(const char *name, int type) {
  int c = 0;
  for (int i = 0; i < nqlog; i++)
    if (qlog[i].type == type && strcasecmp(qlog[i].name, name) == 0)
      c++;
  return c;
}

/* ---- the fake server on the loop ---------------------------------------- */

static uv_udp_t server;
static char server_spec[64];

static void alloc_cb(uv_handle_t *h, size_t s, uv_buf_t *b) {
  (void)h;
  static char mem[2048];
  b->base = mem;
  b->len = s < sizeof mem ? s : sizeof mem;
}

static void on_sent(uv_udp_send_t *req, int status) {
  (void)status;
  free(req);
}

static void on_query(uv_udp_t *h, ssize_t n, const uv_buf_t *b,
                     const struct sockaddr *from, unsigned flags) {
  (void)flags;
  if (n <= 0 || !from)
    return;
  wbuf *w = malloc(sizeof(*w) + sizeof(uv_udp_send_t));
  if (!w)
    return;
  if (!respond((const unsigned char *)b->base, (size_t)n, w)) {
    free(w);
    return;
  }
  /* the send request lives in the same block, after the buffer */
  uv_udp_send_t *req = malloc(sizeof(*req));
  static unsigned char out[16][1500];
  static int next;
  unsigned char *o = out[next++ % 16];
  memcpy(o, w->b, w->n);
  uv_buf_t ob = uv_buf_init((char *)o, (unsigned)w->n);
  if (req)
    uv_udp_send(req, h, &ob, 1, from, on_sent);
  free(w);
}

static void start_server(uv_loop_t *loop) {
  struct sockaddr_in a;
  uv_ip4_addr("127.0.0.1", 0, &a);
  uv_udp_init(loop, &server);
  CHECK(uv_udp_bind(&server, (const struct sockaddr *)&a, 0) == 0);
  struct sockaddr_storage ss;
  int len = sizeof ss;
  uv_udp_getsockname(&server, (struct sockaddr *)&ss, &len);
  snprintf(server_spec, sizeof server_spec, "127.0.0.1:%d",
           ntohs(((struct sockaddr_in *)&ss)->sin_port));
  uv_udp_recv_start(&server, alloc_cb, on_query);
}

/* ---- resolving and waiting ---------------------------------------------- */

typedef struct result {
  int done, status, n;
  sip_dns_target t[SIP_DNS_MAX_TARGETS];
} result;

static void on_result(void *arg, int status, const sip_dns_target *t, int n) {
  result *r = arg;
  r->done++;
  r->status = status;
  r->n = n;
  if (n > 0)
    memcpy(r->t, t, (size_t)n * sizeof(*t));
}

static uv_loop_t *loop;
static sip_dns *dns;

static int resolve_q(const char *host, int port, int transport, int secure,
                     result *r) {
  memset(r, 0, sizeof(*r));
  sip_dns_query q = {host, strlen(host), port, transport, secure};
  int rc = sip_dns_resolve(dns, &q, on_result, r);
  if (rc < 0)
    return rc;
  while (!r->done && uv_run(loop, UV_RUN_ONCE))
    ;
  return rc;
}

static int resolve_uri(const char *text, result *r) {
  sip_msg m;
  sip_msg_init(&m, NULL);
  sip_uri u;
  int rc = sip_uri_parse(&m.arena, text, strlen(text), &u);
  sip_dns_query q;
  if (rc == 0)
    rc = sip_dns_query_uri(&u, &q);
  if (rc == 0) {
    char host[256];
    snprintf(host, sizeof host, "%.*s", (int)q.host_len, q.host);
    rc = resolve_q(host, q.port, q.transport, q.secure, r);
  }
  sip_msg_free(&m);
  return rc;
}

static const char *addr_str(const sip_dns_target *t) {
  static char buf[80];
  char ip[64];
  if (t->addr.ss_family == AF_INET)
    inet_ntop(AF_INET, &((const struct sockaddr_in *)&t->addr)->sin_addr, ip,
              sizeof ip);
  else
    inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)&t->addr)->sin6_addr, ip,
              sizeof ip);
  snprintf(buf, sizeof buf, "%s/%s:%d", sip_tp_transport_name(t->transport), ip,
           t->port);
  return buf;
}

#define CHECK_TARGET(r, i, want)                                               \
  do {                                                                         \
    const char *got_ = (r).n > (i) ? addr_str(&(r).t[i]) : "(none)";           \
    CHECK_MSG(strcmp(got_, want) == 0, "target %d: got %s, want %s", (int)(i), \
              got_, want);                                                     \
  } while (0)

/* ---- the tests ---------------------------------------------------------- */

static void test_numeric(void) {
  result r;
  CHECK_INT(resolve_uri("sip:bob@127.0.0.5", &r), 1);
  CHECK_INT(r.n, 1);
  CHECK_TARGET(r, 0, "UDP/127.0.0.5:5060");
  CHECK_INT(resolve_uri("sips:bob@127.0.0.5", &r), 1);
  CHECK_TARGET(r, 0, "TLS/127.0.0.5:5061");
  CHECK_INT(resolve_uri("sip:bob@[::1]:5099;transport=tcp", &r), 1);
  CHECK_TARGET(r, 0, "TCP/::1:5099");
  CHECK_STR(((sip_str){r.t[0].host, strlen(r.t[0].host)}), "::1");
  CHECK_INT(resolve_uri("sip:bob@n.test;maddr=127.0.0.7", &r), 1);
  CHECK_TARGET(r, 0, "UDP/127.0.0.7:5060");
  CHECK_INT(resolve_uri("sips:bob@127.0.0.5;transport=udp", &r), SIP_EINVAL);
  CHECK_INT(resolve_uri("tel:+123", &r), SIP_EINVAL);
  CHECK_INT(nqlog, 0); /* no DNS for any of them */
}

static void test_naptr(void) {
  result r;
  CHECK_INT(resolve_uri("sip:bob@n.test", &r), 0);
  CHECK_INT(r.status, 0);
  /* order 5 (SIP+D2X, unknown) skipped; 10: TCP; 20: UDP (A, then AAAA) */
  CHECK_INT(r.n, 3);
  CHECK_TARGET(r, 0, "TCP/127.0.0.2:5070");
  CHECK_TARGET(r, 1, "UDP/127.0.0.3:5080");
  CHECK_TARGET(r, 2, "UDP/::1:5080");
  CHECK_STR(((sip_str){r.t[0].host, strlen(r.t[0].host)}), "a.n.test");
  CHECK_INT(queries_for("n.test", SIP__DNS_NAPTR), 1);
  /* all from the cache the second time */
  int before = nqlog;
  CHECK_INT(resolve_uri("sip:bob@N.Test", &r), 1);
  CHECK_INT(r.n, 3);
  CHECK_INT(nqlog, before);
  /* sips: SIPS+D2T only; n.test has none, and no _sips._tcp: A of n.test */
  CHECK_INT(resolve_uri("sips:bob@n.test", &r), 0);
  CHECK_INT(r.status, UV_EAI_NONAME); /* n.test has no address */
}

static void test_srv_only(void) {
  result r;
  CHECK_INT(resolve_uri("sip:bob@s.test", &r), 0);
  CHECK_INT(r.status, 0);
  CHECK_INT(r.n, 3);
  /* priority 10 (two weighted) before 20 */
  CHECK_TARGET(r, 2, "UDP/127.0.0.13:5090");
  CHECK_INT(queries_for("_sip._tcp.s.test", SIP__DNS_SRV), 1);
  /* §4.2: TLS for a sip URI is "_sips" (asked too, none here) */
  CHECK_INT(queries_for("_sips._tcp.s.test", SIP__DNS_SRV), 1);
  /* an explicit transport: SRV for it only; TCP has none: the host's A */
  CHECK_INT(resolve_uri("sip:bob@s.test;transport=tcp", &r), 0);
  CHECK_INT(r.n, 1);
  CHECK_TARGET(r, 0, "TCP/127.0.0.99:5060");
  /* an explicit port: A only */
  int before = queries_for("s.test", SIP__DNS_A);
  CHECK_INT(resolve_uri("sip:bob@s.test:5077", &r), 1); /* cached A */
  CHECK_TARGET(r, 0, "UDP/127.0.0.99:5077");
  CHECK_INT(queries_for("s.test", SIP__DNS_A), before);
  CHECK_INT(queries_for("_sip._udp.s.test", SIP__DNS_SRV), 1);
  /* weighted: 30 vs 10 -> 3/4 of the draws first; 4000 draws from the
   * cache: sd = sqrt(4000 * .75 * .25) = 27.4, tolerance 150 (5.5 sd) */
  int first_w1 = 0;
  for (int i = 0; i < 4000; i++) {
    resolve_uri("sip:bob@s.test", &r);
    first_w1 += strcmp(addr_str(&r.t[0]), "UDP/127.0.0.11:5071") == 0;
  }
  CHECK_MSG(first_w1 > 3000 - 150 && first_w1 < 3000 + 150,
            "w1 first %d of 4000, want 3000 +- 150", first_w1);
}

static void test_a_only_ttl(void) {
  result r;
  CHECK_INT(resolve_uri("sip:bob@a.test", &r), 0);
  CHECK_INT(r.n, 1);
  CHECK_TARGET(r, 0, "UDP/127.0.0.21:5060");
  CHECK_INT(resolve_uri("sip:bob@a.test", &r), 1); /* cached */
  CHECK_INT(queries_for("a.test", SIP__DNS_A), 1);
  answer_ttl_shift = 1;
  /* TTL 1 s: after it the answer is asked again, and it changed */
  uv_sleep(1100);
  uv_update_time(loop);
  CHECK_INT(resolve_uri("sip:bob@a.test", &r), 0);
  CHECK_TARGET(r, 0, "UDP/127.0.0.22:5060");
  CHECK_INT(queries_for("a.test", SIP__DNS_A), 2);
}

static void test_negative(void) {
  result r;
  sip_dns_counters c0, c1;
  sip_dns_stats(dns, &c0);
  CHECK_INT(resolve_uri("sip:bob@nx.test", &r), 0);
  CHECK_INT(r.status, UV_EAI_NONAME);
  /* NXDOMAIN at NAPTR: nothing else asked */
  CHECK_INT(queries_for("_sip._udp.nx.test", SIP__DNS_SRV), 0);
  CHECK_INT(resolve_uri("sip:bob@nx.test", &r), 1); /* negative, cached */
  CHECK_INT(r.status, UV_EAI_NONAME);
  CHECK_INT(queries_for("nx.test", SIP__DNS_NAPTR), 1);
  sip_dns_stats(dns, &c1);
  CHECK_INT(c1.failures - c0.failures, 2);
  CHECK(c1.negative_hits > c0.negative_hits);
  /* SRV "." : no service */
  CHECK_INT(resolve_uri("sip:bob@none.test;transport=udp", &r), 0);
  CHECK_INT(r.status, UV_EAI_NONAME);
}

static void test_timeout(void) {
  result r, other;
  uv_update_time(loop);
  uint64_t t0 = uv_now(loop);
  memset(&r, 0, sizeof r);
  sip_dns_query q = {"slow.test", 9, 0, 0, 0};
  CHECK_INT(sip_dns_resolve(dns, &q, on_result, &r), 0);
  /* meanwhile other answers flow */
  CHECK_INT(resolve_uri("sip:bob@o.test:5000", &other), 0);
  CHECK_INT(other.status, 0);
  CHECK_INT(r.done, 0);
  while (!r.done && uv_run(loop, UV_RUN_ONCE))
    ;
  CHECK_INT(r.status, UV_ETIMEDOUT);
  uint64_t took = uv_now(loop) - t0;
  CHECK_MSG(took >= 300 && took < 1500, "took %llu ms, timeout 300",
            (unsigned long long)took);
  sip_dns_counters c;
  sip_dns_stats(dns, &c);
  CHECK(c.timeouts >= 1);
  CHECK_INT(c.pending, 0);
}

static void test_avoid(void) {
  result r;
  resolve_uri("sip:bob@n.test", &r);
  CHECK_INT(r.n, 3);
  sip_dns_avoid(dns, r.t[0].transport, &r.t[0].addr, 60000);
  CHECK_INT(sip_dns_avoided(dns, r.t[0].transport, &r.t[0].addr), 1);
  CHECK_INT(sip_dns_avoided(dns, SIP_TP_UDP, &r.t[0].addr), 0);
  resolve_uri("sip:bob@n.test", &r);
  CHECK_TARGET(r, 0, "UDP/127.0.0.3:5080");
  CHECK_TARGET(r, 2, "TCP/127.0.0.2:5070");              /* last, not dropped */
  sip_dns_avoid(dns, r.t[2].transport, &r.t[2].addr, 0); /* ends it */
  resolve_uri("sip:bob@n.test", &r);
  CHECK_TARGET(r, 0, "TCP/127.0.0.2:5070");
}

static void test_close_pending(void) {
  result r;
  memset(&r, 0, sizeof r);
  sip_dns_query q = {"slow.test", 9, 0, 0, 0};
  CHECK_INT(sip_dns_resolve(dns, &q, on_result, &r), 0);
  sip_dns_close(dns);
  dns = NULL;
  CHECK_INT(r.done, 1);
  CHECK_INT(r.status, UV_ECANCELED);
}

/* ---- units -------------------------------------------------------------- */

static uint64_t seq_rnd(void *arg) { return (*(uint64_t *)arg)++; }

static void test_units(void) {
  /* cache: TTL, case, LRU bound */
  sip__dns_cache *c = sip__dns_cache_new(2);
  sip__dns_answer *a = sip__dns_answer_status(0),
                  *b = sip__dns_answer_status(0),
                  *x = sip__dns_answer_status(0);
  uint64_t ev = 0;
  sip__dns_cache_put(c, "A.example", 1, a, 10, 1000, &ev);
  sip__dns_cache_put(c, "b.example", 1, b, 10, 1000, &ev);
  sip__dns_answer *g = sip__dns_cache_get(c, "a.EXAMPLE", 1, 5000);
  CHECK(g == a);
  sip__dns_answer_unref(g);
  CHECK(sip__dns_cache_get(c, "a.example", 28, 5000) == NULL);
  sip__dns_cache_put(c, "x.example", 1, x, 10, 1000, &ev); /* evicts b */
  CHECK_INT(ev, 1);
  CHECK_INT(sip__dns_cache_count(c), 2);
  CHECK(sip__dns_cache_get(c, "b.example", 1, 5000) == NULL);
  CHECK(sip__dns_cache_get(c, "a.example", 1, 11000) == NULL); /* expired */
  CHECK_INT(sip__dns_cache_count(c), 1);
  sip__dns_cache_put(c, "z.example", 1, x, 0, 1000, &ev); /* TTL 0 */
  CHECK_INT(sip__dns_cache_count(c), 1);
  sip__dns_cache_free(c);
  sip__dns_answer_unref(a);
  sip__dns_answer_unref(b);
  sip__dns_answer_unref(x);

  /* SRV order: priorities ascending, all records kept */
  sip__dns_rr rr[5] = {{.order = 20, .pref = 1},
                       {.order = 10, .pref = 0},
                       {.order = 10, .pref = 5},
                       {.order = 30, .pref = 0},
                       {.order = 10, .pref = 5}};
  const sip__dns_rr *v[5];
  for (int i = 0; i < 5; i++)
    v[i] = &rr[i];
  uint64_t s = 7;
  sip__dns_srv_order(v, 5, seq_rnd, &s);
  CHECK(v[0]->order == 10 && v[1]->order == 10 && v[2]->order == 10);
  CHECK(v[3] == &rr[0] && v[4] == &rr[3]);
  int seen = 0;
  for (int i = 0; i < 3; i++)
    seen |= 1 << (int)(v[i] - rr);
  CHECK_INT(seen, 0x16);

  /* the reader: truncated and looping messages are refused, never read
   * beyond the end */
  wbuf w;
  unsigned char q[64];
  size_t qn = 0;
  memset(q, 0, sizeof q);
  q[2] = 1;
  q[5] = 1;
  qn = 12;
  const char *lab = "\x01n\x04test";
  memcpy(q + qn, lab, 7);
  qn += 7;
  q[qn++] = 0;
  q[qn++] = 0;
  q[qn++] = SIP__DNS_NAPTR;
  q[qn++] = 0;
  q[qn++] = 1;
  int before = nqlog;
  CHECK_INT(respond(q, qn, &w), 1);
  nqlog = before;
  sip__dns_answer *p = sip__dns_parse(w.b, w.n, SIP__DNS_NAPTR);
  CHECK(p && p->status == 0 && p->n == 3 && p->ttl == 60);
  if (p && p->n == 3) {
    CHECK_INT(p->rr[1].transport, SIP_TP_TCP);
    CHECK_INT(p->rr[2].transport, 0); /* SIP+D2X */
    CHECK(strcmp(p->rr[1].name, "_sip._tcp.n.test") == 0);
  }
  sip__dns_answer_unref(p);
  for (size_t cut = 0; cut < w.n; cut++) {
    unsigned char *copy = malloc(cut ? cut : 1);
    memcpy(copy, w.b, cut);
    sip__dns_answer *t = sip__dns_parse(copy, cut, SIP__DNS_NAPTR);
    /* a cut inside the records is malformed; never a full answer */
    CHECK(!t || t->n < 3);
    sip__dns_answer_unref(t);
    free(copy);
  }
  /* a compression pointer to itself */
  unsigned char loopmsg[32] = {0, 1, 0x81, 0x80, 0,  1, 0, 0, 0,
                               0, 0, 0,    0xc0, 12, 0, 1, 0, 1};
  CHECK(sip__dns_parse(loopmsg, 18, SIP__DNS_A) == NULL);
}

/* The binding's text of a target, and of a failure. */
static void test_text(void) {
  sip_dns_target t;
  char ip[SIP_DNS_IP_MAX], dest[64];
  memset(&t, 0, sizeof t);
  t.transport = SIP_TP_TCP;
  t.port = 5070;
  CHECK_INT(uv_ip4_addr("127.0.0.9", 5070, (struct sockaddr_in *)&t.addr), 0);
  CHECK_INT(sip_dns_target_text(&t, ip, dest, sizeof dest), 18);
  CHECK(!strcmp(ip, "127.0.0.9") && !strcmp(dest, "tcp:127.0.0.9:5070"));
  CHECK_INT(sip_dns_target_text(&t, ip, dest, 18), SIP_ERANGE);
  t.transport = SIP_TP_TLS;
  t.port = 5061;
  CHECK_INT(uv_ip6_addr("::1", 5061, (struct sockaddr_in6 *)&t.addr), 0);
  CHECK_INT(sip_dns_target_text(&t, ip, dest, sizeof dest), 14);
  CHECK(!strcmp(ip, "::1") && !strcmp(dest, "tls:[::1]:5061"));
  t.transport = SIP_TP_UDP;
  CHECK(sip_dns_target_text(&t, ip, dest, sizeof dest) > 0 &&
        !strncmp(dest, "udp:", 4));
  CHECK(!strcmp(sip_dns_strerror(UV_EAI_NONAME),
                "no such domain or no SIP server for it"));
  CHECK(!strcmp(sip_dns_strerror(UV_ETIMEDOUT),
                "no answer from the DNS servers in time"));
  CHECK(
      !strcmp(sip_dns_strerror(UV_ECONNREFUSED), uv_strerror(UV_ECONNREFUSED)));
}

/* §4: the host of a URI's resolution, and whether it is numeric. */
static void check_uri_target(const char *text, const char *want, int numeric) {
  sip_msg m;
  sip_msg_init(&m, NULL);
  sip_uri u;
  sip_str host = SIP_STR_NULL;
  CHECK_INT(sip_uri_parse(&m.arena, text, strlen(text), &u), 0);
  CHECK_INT(sip_dns_uri_target(&u, &host), numeric);
  CHECK_STR(host, want);
  sip_msg_free(&m);
}

static void test_uri_target(void) {
  check_uri_target("sip:bob@127.0.0.1:5070", "127.0.0.1", 1);
  check_uri_target("sip:bob@[::1]", "[::1]", 1);
  check_uri_target("sips:bob@example.test;transport=tcp", "example.test", 0);
  check_uri_target("sip:bob@example.test;maddr=127.0.0.2", "127.0.0.2", 1);
  check_uri_target("sip:bob@127.0.0.1;maddr=proxy.test", "proxy.test", 0);
}

/* The Lua API's tables: options, a sent-by query, the targets. */
static void test_tree(void) {
  treader r;
  sip_tree_reader rd;
  sip_dns_config cfg;
  const char *bad = NULL;
  const tnode opts =
      TT(NULL, TT("servers", TS(NULL, "127.0.0.1:5353"), TS(NULL, "[::1]:53")),
         TD("timeout", 0.25), TN("tries", 3), TS("cache_size", "10"),
         TN("max_ttl", 60), TN("neg_ttl", 5), TX("ipv6", SIP_TREE_FALSE));
  treader_init(&r, &rd, &opts);
  CHECK_INT(sip_dns_read_config(&rd, &cfg, &bad), 0);
  CHECK(cfg.servers && !strcmp(cfg.servers, "127.0.0.1:5353,[::1]:53"));
  CHECK(cfg.timeout_ms == 250 && cfg.tries == 3 && cfg.cache_size == 10 &&
        cfg.max_ttl == 60 && cfg.neg_ttl == 5 && cfg.ipv6 == 0);
  CHECK_INT(r.opens, r.closes); /* the root (not counted) stays open */
  treader_free(&r);
  const tnode dflt = TE(NULL);
  sip_dns_config d0;
  sip_dns_config_init(&d0);
  treader_init(&r, &rd, &dflt);
  CHECK_INT(sip_dns_read_config(&rd, &cfg, &bad), 0);
  CHECK(!cfg.servers && cfg.timeout_ms == d0.timeout_ms && cfg.ipv6 == d0.ipv6);
  const tnode neg = TT(NULL, TD("tries", -1));
  treader_init(&r, &rd, &neg);
  CHECK_INT(sip_dns_read_config(&rd, &cfg, &bad), SIP_EINVAL);
  CHECK(bad && !strcmp(bad, "tries"));
  const tnode srv = TT(NULL, TT("servers", TS(NULL, "a"), TE(NULL)));
  treader_init(&r, &rd, &srv);
  CHECK_INT(sip_dns_read_config(&rd, &cfg, &bad), SIP_EINVAL);
  CHECK(bad && !strcmp(bad, "servers"));
  CHECK_INT(r.opens, r.closes);

  sip_dns_query q;
  const tnode via = TT(NULL, TS("host", "h.test"), TN("port", 5070),
                       TS("transport", "TCP"), TX("secure", SIP_TREE_TRUE));
  treader_init(&r, &rd, &via);
  CHECK_INT(sip_dns_read_query(&rd, &q, &bad), 0);
  CHECK_STR(((sip_str){q.host, q.host_len}), "h.test");
  CHECK(q.port == 5070 && q.transport == SIP_TP_TCP && q.secure == 1);
  const tnode nohost = TT(NULL, TN("port", 5070));
  treader_init(&r, &rd, &nohost);
  CHECK_INT(sip_dns_read_query(&rd, &q, &bad), SIP_EINVAL);
  CHECK(bad && !strcmp(bad, "host"));
  const tnode bigport = TT(NULL, TS("host", "h"), TN("port", 65536));
  treader_init(&r, &rd, &bigport);
  CHECK_INT(sip_dns_read_query(&rd, &q, &bad), SIP_EINVAL);
  CHECK(bad && !strcmp(bad, "port"));
  const tnode badtp = TT(NULL, TS("host", "h"), TS("transport", "sctp"));
  treader_init(&r, &rd, &badtp);
  CHECK_INT(sip_dns_read_query(&rd, &q, &bad), SIP_EINVAL);
  CHECK(bad && !strcmp(bad, "transport"));

  sip_dns_target t[2];
  memset(t, 0, sizeof t);
  t[0].transport = SIP_TP_UDP;
  t[0].port = 5060;
  uv_ip4_addr("127.0.0.3", 5060, (struct sockaddr_in *)&t[0].addr);
  snprintf(t[0].host, sizeof t[0].host, "a.test");
  t[1].transport = SIP_TP_TLS;
  t[1].port = 5061;
  uv_ip6_addr("::1", 5061, (struct sockaddr_in6 *)&t[1].addr);
  snprintf(t[1].host, sizeof t[1].host, "b.test");
  temit e;
  sip_tree_emitter em;
  temit_init(&e, &em);
  sip_dns_emit_targets(t, 2, &em);
  CHECK_INT(e.opens, e.closes);
  CHECK_INT((int)e.root.nkids, 2);
  if (e.root.nkids == 2) {
    const tnode *a = &e.root.kids[0], *b = &e.root.kids[1];
    CHECK(!strcmp(tfield(a, "transport")->s, "udp"));
    CHECK(!strcmp(tfield(a, "host")->s, "a.test"));
    CHECK(!strcmp(tfield(a, "addr")->s, "127.0.0.3"));
    CHECK(!strcmp(tfield(a, "dest")->s, "udp:127.0.0.3:5060"));
    CHECK(tfield(a, "port")->n == 5060);
    CHECK(!strcmp(tfield(b, "transport")->s, "tls"));
    CHECK(!strcmp(tfield(b, "dest")->s, "tls:[::1]:5061"));
  }
  tnode_free(&e.root);
}

/* core.dns_stats()'s table: every counter, by its name. */
static void check_emit_stats(const sip_dns *d, const sip_dns_counters *c) {
  temit e;
  sip_tree_emitter em;
  temit_init(&e, &em);
  sip_dns_emit_stats(d, &em);
  CHECK_INT((int)e.root.nkids, 12);
  const tnode *l = tfield(&e.root, "lookups"),
              *h = tfield(&e.root, "cache_hits");
  CHECK(l && l->kind == SIP_TREE_UINT && l->n == c->lookups);
  CHECK(h && h->n == c->cache_hits);
  CHECK(tfield(&e.root, "pending") && tfield(&e.root, "evictions"));
  tnode_free(&e.root);
  temit_init(&e, &em);
  sip_dns_emit_stats(NULL, &em); /* before the resolver's first use */
  CHECK(e.root.nkids == 12 && e.root.kids[0].n == 0);
  tnode_free(&e.root);
}

int main(void) {
  static uv_loop_t l;
  loop = &l;
  uv_loop_init(loop);
  test_units();
  test_text();
  test_uri_target();
  test_tree();
  start_server(loop);
  sip_dns_config cfg;
  sip_dns_config_init(&cfg);
  cfg.servers = server_spec;
  cfg.timeout_ms = 300;
  cfg.ipv6 = 1;
  CHECK_INT(sip_dns_new(loop, &cfg, &dns), 0);
  sip_dns *bad = NULL;
  cfg.servers = "not an address";
  CHECK_INT(sip_dns_new(loop, &cfg, &bad), SIP_EINVAL);
  if (dns) {
    test_numeric();
    test_naptr();
    test_srv_only();
    test_a_only_ttl();
    test_negative();
    test_timeout();
    test_avoid();
    sip_dns_counters c;
    sip_dns_stats(dns, &c);
    CHECK(c.lookups > 4000 && c.cache_hits > 4000 && c.numeric >= 4);
    check_emit_stats(dns, &c);
    test_close_pending();
  }
  uv_close((uv_handle_t *)&server, NULL);
  uv_run(loop, UV_RUN_DEFAULT);
  CHECK_INT(uv_loop_close(loop), 0);
  printf("dns_test: %d passed, %d failed\n", check_passed, check_failed);
  return check_failed ? 1 : 0;
}
