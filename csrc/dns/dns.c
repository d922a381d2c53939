/* The resolver: a c-ares channel whose sockets the libuv loop polls, the
 * RFC 3263 §4 steps over the cache (dns_cache.c), failover avoidance.
 * See sip_dns.h for the contract. */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <ares.h>

#include "dns_int.h"
#include "sip_error.h"
#include "sip_txn.h"
#include "tp_int.h" /* sip__tp_addr_eq */

#define MAX_SRVQ 6   /* SRV names asked in one resolution */
#define MAX_HOSTS 16 /* SRV targets (names) whose addresses are asked */
#define AVOID_SLOTS 256

typedef struct dns_req dns_req;

/* One query sent to c-ares. It outlives its resolution when that ends
 * first (r == NULL): the answer still goes into the cache. */
typedef struct dns_q {
  struct dns_q *next, *prev; /* the resolution's in-flight list */
  sip_dns *d;
  dns_req *r;
  sip__dns_answer **slot;
  int type;
  char name[SIP_DNS_NAME_MAX];
} dns_q;

typedef struct dns_poll {
  uv_poll_t h;
  struct dns_poll *next;
  ares_socket_t fd;
  sip_dns *d;
} dns_poll;

/* stages: ST_NAPTR, ST_SRV_WAIT and ST_ADDR_WAIT wait for answers */
enum {
  ST_START,
  ST_NAPTR,
  ST_SRV,
  ST_SRV_WAIT,
  ST_ADDR,
  ST_ADDR_WAIT,
  ST_DONE
};

struct dns_req {
  dns_req *next, *prev; /* the resolver's pending list, by deadline */
  sip_dns *d;
  dns_q qs; /* sentinel of the in-flight queries */
  sip_dns_cb cb;
  void *arg;
  uint64_t deadline;
  int stage, pending, issuing, secure, port, transport;
  sip__dns_answer *naptr;
  int nsrvq;
  struct {
    int transport;
    char name[SIP_DNS_NAME_MAX];
    sip__dns_answer *ans;
  } srvq[MAX_SRVQ];
  int nhosts;
  struct {
    int transport, port, same; /* same: index of a host of the same name */
    const char *name;
    sip__dns_answer *a, *aaaa;
  } hosts[MAX_HOSTS];
  char host[SIP_DNS_NAME_MAX];
};

typedef struct avoid_ent {
  uint64_t until;
  int transport;
  struct sockaddr_storage addr;
} avoid_ent;

struct sip_dns {
  uv_loop_t *loop;
  ares_channel ch;
  int ch_ok;
  uv_timer_t *ares_timer, *deadline_timer; /* malloc'd: freed when closed */
  dns_poll *polls;
  int handles; /* handles not yet closed (the struct goes with the last) */
  int depth;   /* inside a c-ares call: destroy the channel later */
  int closing;
  sip__dns_cache *cache;
  dns_req pending; /* sentinel; oldest (earliest deadline) first */
  unsigned timeout_ms, max_ttl, neg_ttl;
  int ipv6;
  sip_dns_counters st;
  avoid_ent avoid[AVOID_SLOTS];
};

static int lib_ready;

/* ---- small helpers ----------------------------------------------------- */

/* SRV weights draw from the process's one generator (sip_txn_random). */
static uint64_t rnd(void *arg) {
  (void)arg;
  uint64_t r;
  sip_txn_random(&r, sizeof r);
  return r;
}

static uint64_t now_ms(sip_dns *d) { return uv_now(d->loop); }

static int default_port(int transport) {
  return transport == SIP_TP_TLS ? SIP_TP_PORT_TLS : SIP_TP_PORT;
}

/* IPv6 is available: an address that is not link-local (::1 counts). */
static int have_ipv6(void) {
  uv_interface_address_t *ifs;
  int n, yes = 0;
  if (uv_interface_addresses(&ifs, &n) < 0)
    return 0;
  for (int i = 0; i < n && !yes; i++) {
    if (ifs[i].address.address6.sin6_family != AF_INET6)
      continue;
    const unsigned char *b = ifs[i].address.address6.sin6_addr.s6_addr;
    if (!(b[0] == 0xfe && (b[1] & 0xc0) == 0x80))
      yes = 1;
  }
  uv_free_interface_addresses(ifs, n);
  return yes;
}

/* ---- the channel on the loop ------------------------------------------- */

static void handle_closed(uv_handle_t *h) {
  sip_dns *d = h->data;
  free(h->type == UV_POLL ? (void *)((char *)h - offsetof(dns_poll, h))
                          : (void *)h);
  if (--d->handles == 0) {
    sip__dns_cache_free(d->cache);
    free(d);
  }
}

static void on_ares_timer(uv_timer_t *t);

static void rearm(sip_dns *d) {
  if (!d->ch_ok || d->closing)
    return;
  struct timeval tv, *tvp = ares_timeout(d->ch, NULL, &tv);
  if (tvp) {
    uint64_t ms = (uint64_t)tvp->tv_sec * 1000 + (uint64_t)tvp->tv_usec / 1000;
    uv_timer_start(d->ares_timer, on_ares_timer, ms + 1, 0);
  } else {
    uv_timer_stop(d->ares_timer);
  }
}

static void destroy_channel(sip_dns *d) {
  if (d->ch_ok && d->depth == 0) {
    d->ch_ok = 0;
    ares_destroy(d->ch); /* callbacks run with ARES_EDESTRUCTION */
  }
}

static void process(sip_dns *d, ares_socket_t r, ares_socket_t w) {
  if (!d->ch_ok)
    return;
  d->depth++;
  ares_process_fd(d->ch, r, w);
  d->depth--;
  if (d->closing)
    destroy_channel(d);
  else
    rearm(d);
}

static void on_ares_timer(uv_timer_t *t) {
  process(t->data, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
}

static void on_poll(uv_poll_t *h, int status, int events) {
  dns_poll *p = (dns_poll *)((char *)h - offsetof(dns_poll, h));
  ares_socket_t r = ARES_SOCKET_BAD, w = ARES_SOCKET_BAD;
  if (status < 0) { /* let c-ares find the error on the socket */
    r = w = p->fd;
  } else {
    if (events & UV_READABLE)
      r = p->fd;
    if (events & UV_WRITABLE)
      w = p->fd;
  }
  process(p->d, r, w);
}

static void sock_state(void *data, ares_socket_t fd, int readable,
                       int writable) {
  sip_dns *d = data;
  dns_poll **pp = &d->polls, *p;
  while ((p = *pp) && p->fd != fd)
    pp = &p->next;
  if (!readable && !writable) {
    if (p) {
      *pp = p->next;
      uv_close((uv_handle_t *)&p->h, handle_closed);
    }
    return;
  }
  if (!p) {
    p = calloc(1, sizeof(*p));
    if (!p)
      return; /* the query times out */
    if (uv_poll_init_socket(d->loop, &p->h, fd) < 0) {
      free(p);
      return;
    }
    p->fd = fd;
    p->d = d;
    p->h.data = d;
    d->handles++;
    uv_unref((uv_handle_t *)&p->h); /* pending resolutions hold the loop */
    p->next = d->polls;
    d->polls = p;
  }
  uv_poll_start(&p->h,
                (readable ? UV_READABLE : 0) | (writable ? UV_WRITABLE : 0),
                on_poll);
}

/* ---- resolutions ------------------------------------------------------- */

static int step(dns_req *r);

static void req_unlink(dns_req *r) {
  r->prev->next = r->next;
  r->next->prev = r->prev;
  r->next = r->prev = r;
}

static void req_free(dns_req *r) {
  for (dns_q *q = r->qs.next, *nx; q != &r->qs; q = nx) {
    nx = q->next;
    q->r = NULL; /* answers still go into the cache */
    q->next = q->prev = q;
  }
  sip__dns_answer_unref(r->naptr);
  for (int i = 0; i < r->nsrvq; i++)
    sip__dns_answer_unref(r->srvq[i].ans);
  for (int i = 0; i < r->nhosts; i++) {
    sip__dns_answer_unref(r->hosts[i].a);
    sip__dns_answer_unref(r->hosts[i].aaaa);
  }
  free(r);
}

/* End r: cb once, then r is gone. */
static void finish(dns_req *r, int status, const sip_dns_target *t, int n) {
  sip_dns *d = r->d;
  req_unlink(r);
  if (d->pending.next == &d->pending) /* nothing left to time */
    uv_timer_stop(d->deadline_timer);
  d->st.pending--;
  if (status < 0) {
    d->st.failures++;
    if (status == UV_ETIMEDOUT)
      d->st.timeouts++;
  }
  r->stage = ST_DONE;
  sip_dns_cb cb = r->cb;
  void *arg = r->arg;
  req_free(r);
  cb(arg, status, status < 0 ? NULL : t, status < 0 ? 0 : n);
}

static void fail(dns_req *r, int status) { finish(r, status, NULL, 0); }

/* An answer for a query of r arrived (or came from the cache). */
static void deliver(dns_req *r) {
  if (--r->pending == 0 && !r->issuing)
    step(r);
}

static void on_answer(void *arg, int status, int timeouts, unsigned char *abuf,
                      int alen) {
  (void)timeouts;
  dns_q *q = arg;
  sip_dns *d = q->d;
  sip__dns_answer *a = NULL;
  if (status == ARES_SUCCESS || status == ARES_ENODATA ||
      status == ARES_ENOTFOUND) {
    a = abuf ? sip__dns_parse(abuf, (size_t)alen, q->type) : NULL;
    if (!a && status == ARES_ENOTFOUND)
      a = sip__dns_answer_status(UV_EAI_NONAME);
    if (a && a->status != UV_EAI_AGAIN) {
      uint32_t ttl = a->ttl;
      uint32_t cap = a->n > 0 ? d->max_ttl : d->neg_ttl;
      if (ttl > cap)
        ttl = cap;
      sip__dns_cache_put(d->cache, q->name, q->type, a, ttl, now_ms(d),
                         &d->st.evictions);
    }
  } else if (status == ARES_ETIMEOUT) {
    a = sip__dns_answer_status(UV_ETIMEDOUT);
  } else if (status == ARES_EDESTRUCTION || status == ARES_ECANCELLED) {
    a = sip__dns_answer_status(UV_ECANCELED);
  }
  if (!a)
    a = sip__dns_answer_status(UV_EAI_AGAIN);
  dns_req *r = q->r;
  q->prev->next = q->next;
  q->next->prev = q->prev;
  if (r && a) {
    *q->slot = a;
    a = NULL;
  }
  sip__dns_answer_unref(a);
  free(q);
  if (r)
    deliver(r);
}

/* Ask (name, type) for r into *slot: from the cache at once, else from the
 * servers (r->pending counts it until it comes). */
static void lookup(dns_req *r, const char *name, int type,
                   sip__dns_answer **slot) {
  sip_dns *d = r->d;
  r->pending++;
  sip__dns_answer *a = sip__dns_cache_get(d->cache, name, type, now_ms(d));
  if (a) {
    d->st.cache_hits++;
    if (a->status < 0 || a->n == 0)
      d->st.negative_hits++;
    *slot = a;
    deliver(r);
    return;
  }
  d->st.cache_misses++;
  dns_q *q = calloc(1, sizeof(*q));
  if (!q || !d->ch_ok) {
    free(q);
    *slot = sip__dns_answer_status(UV_EAI_AGAIN);
    deliver(r);
    return;
  }
  q->d = d;
  q->r = r;
  q->slot = slot;
  q->type = type;
  snprintf(q->name, sizeof q->name, "%s", name);
  q->next = r->qs.next;
  q->prev = &r->qs;
  r->qs.next->prev = q;
  r->qs.next = q;
  d->depth++;
  ares_query(d->ch, q->name, 1 /* C_IN */, type, on_answer, q);
  d->depth--;
  if (d->closing)
    destroy_channel(d);
  else
    rearm(d);
}

static int naptr_cmp(const sip__dns_rr *a, const sip__dns_rr *b) {
  if (a->order != b->order)
    return a->order < b->order ? -1 : 1;
  if (a->pref != b->pref)
    return a->pref < b->pref ? -1 : 1;
  return 0;
}

static void add_srvq(dns_req *r, int transport, const char *name) {
  for (int i = 0; i < r->nsrvq; i++)
    if (r->srvq[i].transport == transport &&
        strcasecmp(r->srvq[i].name, name) == 0)
      return;
  if (r->nsrvq == MAX_SRVQ)
    return;
  r->srvq[r->nsrvq].transport = transport;
  snprintf(r->srvq[r->nsrvq].name, SIP_DNS_NAME_MAX, "%s", name);
  r->srvq[r->nsrvq].ans = NULL;
  r->nsrvq++;
}

static void srv_name(dns_req *r, int transport) {
  char name[SIP_DNS_NAME_MAX];
  snprintf(name, sizeof name, "%s.%.240s",
           transport == SIP_TP_TLS   ? "_sips._tcp"
           : transport == SIP_TP_TCP ? "_sip._tcp"
                                     : "_sip._udp",
           r->host);
  add_srvq(r, transport, name);
}

static void add_host(dns_req *r, const char *name, int transport, int port) {
  if (r->nhosts == MAX_HOSTS)
    return;
  int i = r->nhosts++;
  r->hosts[i].transport = transport;
  r->hosts[i].port = port;
  r->hosts[i].name = name;
  r->hosts[i].same = -1;
  r->hosts[i].a = r->hosts[i].aaaa = NULL;
  for (int j = 0; j < i; j++)
    if (r->hosts[j].same < 0 && strcasecmp(r->hosts[j].name, name) == 0) {
      r->hosts[i].same = j;
      break;
    }
}

/* The NAPTR answer into SRV names (§4.1). */
static void from_naptr(dns_req *r) {
  sip__dns_answer *a = r->naptr;
  const sip__dns_rr *v[SIP__DNS_MAX_RR];
  int n = 0;
  for (int i = 0; a && a->status == 0 && i < a->n; i++) {
    const sip__dns_rr *rr = &a->rr[i];
    if (!rr->transport || !rr->name || !rr->name[0] ||
        strcmp(rr->name, ".") == 0)
      continue;
    if (r->secure && !rr->secure)
      continue; /* a sips URI: SIPS+D2T only */
    int j = n++;
    while (j > 0 && naptr_cmp(v[j - 1], rr) > 0) {
      v[j] = v[j - 1];
      j--;
    }
    v[j] = rr;
  }
  for (int i = 0; i < n; i++)
    add_srvq(r, v[i]->transport, v[i]->name);
}

/* SRV answers into the hosts to ask addresses of (§4.2, RFC 2782). Returns
 * 0, or the status to fail with. */
static int from_srv(dns_req *r) {
  int timed_out = 0, no_service = 0, failed = 0;
  for (int i = 0; i < r->nsrvq; i++) {
    sip__dns_answer *a = r->srvq[i].ans;
    if (!a || a->status < 0) {
      timed_out |= a && a->status == UV_ETIMEDOUT;
      failed |= !a || a->status != UV_EAI_NONAME;
      continue;
    }
    const sip__dns_rr *v[SIP__DNS_MAX_RR];
    int n = 0;
    for (int k = 0; k < a->n; k++) {
      if (!a->rr[k].name || strcmp(a->rr[k].name, ".") == 0 ||
          !a->rr[k].name[0]) {
        no_service = 1; /* RFC 2782: decidedly not available */
        continue;
      }
      v[n++] = &a->rr[k];
    }
    sip__dns_srv_order(v, n, rnd, r->d);
    for (int k = 0; k < n; k++)
      add_host(r, v[k]->name, r->srvq[i].transport, v[k]->port);
  }
  if (r->nhosts > 0)
    return 0;
  if (timed_out)
    return UV_ETIMEDOUT;
  if (no_service && !failed)
    return UV_EAI_NONAME;
  /* no SRV records: the host's addresses, on the first transport's
   * default port (§4.2) */
  int t = r->nsrvq > 0 ? r->srvq[0].transport
                       : (r->secure ? SIP_TP_TLS : SIP_TP_UDP);
  add_host(r, r->host, t, default_port(t));
  return 0;
}

static void put_target(sip_dns_target *t, int *n, int transport, int port,
                       const char *name, const sip__dns_rr *rr) {
  if (*n >= SIP_DNS_MAX_TARGETS)
    return;
  sip_dns_target *x = &t[(*n)++];
  memset(&x->addr, 0, sizeof x->addr);
  x->transport = transport;
  x->port = port;
  snprintf(x->host, sizeof x->host, "%s", name);
  if (rr->family == AF_INET) {
    struct sockaddr_in *a = (struct sockaddr_in *)&x->addr;
    a->sin_family = AF_INET;
    a->sin_port = htons((uint16_t)port);
    memcpy(&a->sin_addr, rr->addr, 4);
  } else {
    struct sockaddr_in6 *a = (struct sockaddr_in6 *)&x->addr;
    a->sin6_family = AF_INET6;
    a->sin6_port = htons((uint16_t)port);
    memcpy(&a->sin6_addr, rr->addr, 16);
  }
}

/* Avoided targets after the others, each group in its order. */
static void order_avoided(sip_dns *d, sip_dns_target *t, int n) {
  sip_dns_target tmp[SIP_DNS_MAX_TARGETS];
  int k = 0, m = 0;
  char late[SIP_DNS_MAX_TARGETS];
  for (int i = 0; i < n; i++) {
    late[i] = (char)sip_dns_avoided(d, t[i].transport, &t[i].addr);
    m += late[i];
  }
  if (m == 0 || m == n)
    return;
  d->st.avoided += (uint64_t)m;
  for (int pass = 0; pass < 2; pass++)
    for (int i = 0; i < n; i++)
      if (late[i] == pass)
        tmp[k++] = t[i];
  memcpy(t, tmp, (size_t)n * sizeof(*t));
}

static void from_addrs(dns_req *r) {
  sip_dns_target t[SIP_DNS_MAX_TARGETS];
  int n = 0, timed_out = 0, failed = 0;
  for (int i = 0; i < r->nhosts; i++) {
    int s = r->hosts[i].same >= 0 ? r->hosts[i].same : i;
    sip__dns_answer *ans[2] = {r->hosts[s].a, r->hosts[s].aaaa};
    for (int k = 0; k < 2; k++) {
      sip__dns_answer *a = ans[k];
      if (!a)
        continue;
      if (a->status < 0) {
        timed_out |= a->status == UV_ETIMEDOUT;
        failed |= a->status != UV_EAI_NONAME;
        continue;
      }
      for (int j = 0; j < a->n; j++)
        put_target(t, &n, r->hosts[i].transport, r->hosts[i].port,
                   r->hosts[i].name, &a->rr[j]);
    }
  }
  if (n == 0) {
    fail(r, timed_out ? UV_ETIMEDOUT : failed ? UV_EAI_AGAIN : UV_EAI_NONAME);
    return;
  }
  order_avoided(r->d, t, n);
  finish(r, 0, t, n);
}

/* Run r's stages while their answers are at hand. Returns 1 when r has
 * finished (it is gone), 0 while it waits for answers. */
static int step(dns_req *r) {
  for (;;) {
    switch (r->stage) {
    case ST_START:
      r->issuing = 1;
      if (r->port) { /* a name and a port: A/AAAA only (§4.2) */
        int t =
            r->transport ? r->transport : (r->secure ? SIP_TP_TLS : SIP_TP_UDP);
        add_host(r, r->host, t, r->port);
        r->stage = ST_ADDR;
        r->issuing = 0;
        continue;
      }
      if (r->transport) { /* a transport and no port: SRV (§4.2) */
        srv_name(r, r->transport);
        r->stage = ST_SRV;
        r->issuing = 0;
        continue;
      }
      r->stage = ST_NAPTR;
      lookup(r, r->host, SIP__DNS_NAPTR, &r->naptr);
      break;
    case ST_NAPTR:
      if (r->naptr && r->naptr->status == UV_EAI_NONAME) {
        fail(r, UV_EAI_NONAME); /* no such domain: nothing below it */
        return 1;
      }
      if (r->naptr && r->naptr->status == UV_ETIMEDOUT) {
        fail(r, UV_ETIMEDOUT);
        return 1;
      }
      from_naptr(r);
      if (r->nsrvq == 0) { /* §4.1: SRV for each supported transport */
        if (!r->secure) {
          srv_name(r, SIP_TP_UDP);
          srv_name(r, SIP_TP_TCP);
        }
        /* TLS: "_sips" for a sips URI, and for a sip URI too (§4.2: a
         * client that wishes to use TLS for a SIP URI uses "_sips");
         * after UDP and TCP for a sip URI */
        srv_name(r, SIP_TP_TLS);
      }
      r->stage = ST_SRV;
      continue;
    case ST_SRV:
      r->issuing = 1;
      r->stage = ST_SRV_WAIT;
      for (int i = 0; i < r->nsrvq; i++)
        lookup(r, r->srvq[i].name, SIP__DNS_SRV, &r->srvq[i].ans);
      break;
    case ST_SRV_WAIT: {
      int rc = from_srv(r);
      if (rc < 0) {
        fail(r, rc);
        return 1;
      }
      r->stage = ST_ADDR;
      continue;
    }
    case ST_ADDR:
      r->issuing = 1;
      r->stage = ST_ADDR_WAIT;
      for (int i = 0; i < r->nhosts; i++) {
        if (r->hosts[i].same >= 0)
          continue;
        lookup(r, r->hosts[i].name, SIP__DNS_A, &r->hosts[i].a);
        if (r->d->ipv6)
          lookup(r, r->hosts[i].name, SIP__DNS_AAAA, &r->hosts[i].aaaa);
      }
      break;
    case ST_ADDR_WAIT:
      from_addrs(r);
      return 1;
    default:
      return 1;
    }
    r->issuing = 0;
    if (r->pending > 0)
      return 0;
  }
}

static void on_deadline(uv_timer_t *t) {
  sip_dns *d = t->data;
  uint64_t now = now_ms(d);
  while (d->pending.next != &d->pending && d->pending.next->deadline <= now)
    fail(d->pending.next, UV_ETIMEDOUT);
  if (d->pending.next != &d->pending)
    uv_timer_start(d->deadline_timer, on_deadline,
                   d->pending.next->deadline - now, 0);
}

int sip_dns_resolve(sip_dns *d, const sip_dns_query *q, sip_dns_cb cb,
                    void *arg) {
  if (!d || !q || !q->host || q->host_len == 0 ||
      q->host_len >= SIP_DNS_NAME_MAX - 16 || q->port < 0 || q->port > 65535)
    return SIP_EINVAL;
  int transport = q->transport;
  if (q->secure && transport && transport != SIP_TP_TLS)
    transport = SIP_TP_TLS;
  sip_dns_target t;
  if (sip__dns_numeric(q->host, q->host_len, 0, &t.addr)) {
    /* §4.1, §4.2: a numeric host takes no DNS */
    d->st.numeric++;
    t.transport = transport ? transport : (q->secure ? SIP_TP_TLS : SIP_TP_UDP);
    t.port = q->port ? q->port : default_port(t.transport);
    sip__dns_numeric(q->host, q->host_len, t.port, &t.addr);
    const char *h = q->host;
    size_t hl = q->host_len;
    if (hl >= 2 && h[0] == '[') {
      h++;
      hl -= 2;
    }
    snprintf(t.host, sizeof t.host, "%.*s", (int)hl, h);
    cb(arg, 0, &t, 1);
    return 1;
  }
  if (memchr(q->host, 0, q->host_len) || d->closing)
    return SIP_EINVAL;
  dns_req *r = calloc(1, sizeof(*r));
  if (!r)
    return UV_ENOMEM;
  d->st.lookups++;
  r->d = d;
  r->cb = cb;
  r->arg = arg;
  r->qs.next = r->qs.prev = &r->qs;
  r->secure = q->secure;
  r->port = q->port;
  r->transport = transport;
  size_t hl = q->host_len;
  while (hl > 1 && q->host[hl - 1] == '.') /* a fully qualified name */
    hl--;
  for (size_t i = 0; i < hl; i++) {
    char c = q->host[i];
    r->host[i] = (c >= 'A' && c <= 'Z') ? (char)(c | 0x20) : c;
  }
  r->host[hl] = 0;
  uv_update_time(d->loop);
  r->deadline = now_ms(d) + d->timeout_ms;
  r->prev = d->pending.prev;
  r->next = &d->pending;
  d->pending.prev->next = r;
  d->pending.prev = r;
  d->st.pending++;
  if (step(r))
    return 1;
  if (!uv_is_active((uv_handle_t *)d->deadline_timer) || d->pending.next == r)
    uv_timer_start(d->deadline_timer, on_deadline,
                   d->pending.next->deadline - now_ms(d), 0);
  return 0;
}

int sip_dns_query_uri(const sip_uri *u, sip_dns_query *q) {
  if (!u || (u->kind != SIP_URI_SIP && u->kind != SIP_URI_SIPS))
    return SIP_EINVAL;
  memset(q, 0, sizeof(*q));
  q->secure = u->kind == SIP_URI_SIPS;
  sip_str host = u->maddr.p ? u->maddr : u->host;
  q->host = host.p;
  q->host_len = host.len;
  q->port = u->has_port ? u->port : 0;
  if (u->transport.p) {
    int t = sip_tp_transport_from(u->transport);
    if (!t || (q->secure && t == SIP_TP_UDP))
      return SIP_EINVAL;
    q->transport = q->secure ? SIP_TP_TLS : t;
  }
  return 0;
}

/* ---- avoidance --------------------------------------------------------- */

void sip_dns_avoid(sip_dns *d, int transport,
                   const struct sockaddr_storage *addr, uint64_t ms) {
  uint64_t now = now_ms(d);
  avoid_ent *slot = NULL;
  for (int i = 0; i < AVOID_SLOTS; i++) {
    avoid_ent *e = &d->avoid[i];
    if (e->until > now && e->transport == transport &&
        sip__tp_addr_eq(&e->addr, addr)) {
      slot = e;
      break;
    }
    if (!slot || e->until < slot->until)
      slot = e; /* a free one, else the one that ends first */
  }
  slot->until = now + ms;
  slot->transport = transport;
  slot->addr = *addr;
}

int sip_dns_avoided(sip_dns *d, int transport,
                    const struct sockaddr_storage *addr) {
  uint64_t now = now_ms(d);
  for (int i = 0; i < AVOID_SLOTS; i++) {
    avoid_ent *e = &d->avoid[i];
    if (e->until > now && e->transport == transport &&
        sip__tp_addr_eq(&e->addr, addr))
      return 1;
  }
  return 0;
}

void sip_dns_count_failover(sip_dns *d) { d->st.failovers++; }

/* ---- life cycle -------------------------------------------------------- */

void sip_dns_config_init(sip_dns_config *cfg) {
  memset(cfg, 0, sizeof(*cfg));
  cfg->timeout_ms = 5000;
  cfg->tries = 2;
  cfg->cache_size = 4096;
  cfg->max_ttl = 86400;
  cfg->neg_ttl = 900;
  cfg->ipv6 = -1;
}

int sip_dns_new(uv_loop_t *loop, const sip_dns_config *cfg, sip_dns **out) {
  sip_dns_config def;
  if (!cfg) {
    sip_dns_config_init(&def);
    cfg = &def;
  }
  *out = NULL;
  if (cfg->timeout_ms == 0 || cfg->tries == 0)
    return SIP_EINVAL;
  if (!lib_ready) {
    if (ares_library_init(ARES_LIB_INIT_ALL) != ARES_SUCCESS)
      return UV_EAI_FAIL;
    lib_ready = 1;
  }
  sip_dns *d = calloc(1, sizeof(*d));
  if (!d)
    return UV_ENOMEM;
  d->loop = loop;
  d->pending.next = d->pending.prev = &d->pending;
  d->timeout_ms = cfg->timeout_ms;
  d->max_ttl = cfg->max_ttl;
  d->neg_ttl = cfg->neg_ttl;
  d->ipv6 = cfg->ipv6 < 0 ? have_ipv6() : cfg->ipv6 != 0;
  d->cache = sip__dns_cache_new(cfg->cache_size);
  d->ares_timer = malloc(sizeof(*d->ares_timer));
  d->deadline_timer = malloc(sizeof(*d->deadline_timer));
  if (!d->cache || !d->ares_timer || !d->deadline_timer) {
    sip__dns_cache_free(d->cache);
    free(d->ares_timer);
    free(d->deadline_timer);
    free(d);
    return UV_ENOMEM;
  }
  struct ares_options o;
  memset(&o, 0, sizeof o);
  /* per try: c-ares doubles it for each round over the servers, so with
   * one server the tries add up to the whole timeout (the deadline of
   * each resolution ends it in any case) */
  unsigned rounds = cfg->tries > 16 ? 65535u : (1u << cfg->tries) - 1;
  unsigned per_try = cfg->timeout_ms / rounds;
  o.timeout = (int)(per_try < 100 ? 100 : per_try);
  o.tries = (int)cfg->tries;
  o.sock_state_cb = sock_state;
  o.sock_state_cb_data = d;
  int mask = ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES | ARES_OPT_SOCK_STATE_CB;
  int rc = ares_init_options(&d->ch, &o, mask);
  if (rc == ARES_SUCCESS && cfg->servers && cfg->servers[0]) {
    rc = ares_set_servers_ports_csv(d->ch, cfg->servers);
    if (rc != ARES_SUCCESS) {
      ares_destroy(d->ch);
      rc = -1;
    }
  }
  if (rc != ARES_SUCCESS) {
    sip__dns_cache_free(d->cache);
    free(d->ares_timer);
    free(d->deadline_timer);
    free(d);
    return rc == -1 ? SIP_EINVAL : UV_EAI_FAIL;
  }
  d->ch_ok = 1;
  uv_timer_init(loop, d->ares_timer);
  uv_timer_init(loop, d->deadline_timer);
  d->ares_timer->data = d->deadline_timer->data = d;
  uv_unref((uv_handle_t *)d->ares_timer);
  d->handles = 2;
  *out = d;
  return 0;
}

void sip_dns_close(sip_dns *d) {
  if (!d || d->closing)
    return;
  d->closing = 1;
  while (d->pending.next != &d->pending)
    fail(d->pending.next, UV_ECANCELED);
  destroy_channel(d); /* now, or when the c-ares call we are in returns */
  uv_close((uv_handle_t *)d->ares_timer, handle_closed);
  uv_close((uv_handle_t *)d->deadline_timer, handle_closed);
  while (d->polls) {
    dns_poll *p = d->polls;
    d->polls = p->next;
    uv_close((uv_handle_t *)&p->h, handle_closed);
  }
}

void sip_dns_flush(sip_dns *d) { sip__dns_cache_clear(d->cache); }

void sip_dns_stats(const sip_dns *d, sip_dns_counters *out) {
  *out = d->st;
  out->cache_entries = sip__dns_cache_count(d->cache);
}

/* ---- for the bindings ---------------------------------------------------- */

const char *sip_dns_strerror(int status) {
  switch (status) {
  case UV_EAI_NONAME:
    return "no such domain or no SIP server for it";
  case UV_ETIMEDOUT:
    return "no answer from the DNS servers in time";
  case UV_EAI_AGAIN:
    return "the DNS servers failed";
  case UV_ECANCELED:
    return "the resolver was closed";
  }
  return uv_strerror(status);
}

int sip_dns_target_text(const sip_dns_target *t, char ip[SIP_DNS_IP_MAX],
                        char *dest, size_t cap) {
  const struct sockaddr_storage *a = &t->addr;
  const char *tr = t->transport == SIP_TP_TLS   ? "tls"
                   : t->transport == SIP_TP_TCP ? "tcp"
                                                : "udp";
  int six = a->ss_family == AF_INET6;
  if (six)
    uv_ip6_name((const struct sockaddr_in6 *)a, ip, SIP_DNS_IP_MAX);
  else
    uv_ip4_name((const struct sockaddr_in *)a, ip, SIP_DNS_IP_MAX);
  int n = snprintf(dest, cap, six ? "%s:[%s]:%d" : "%s:%s:%d", tr, ip, t->port);
  return n < 0 || (size_t)n >= cap ? SIP_ERANGE : n;
}

/* §5: a response goes to the first target (the next ones only after a
 * failure of a connection, which this does not try). */
static void on_response_resolved(void *arg, int status, const sip_dns_target *t,
                                 int n) {
  sip_tp_resolving *r = arg;
  if (status < 0 || n < 1) {
    sip_tp_resolved(r, status < 0 ? status : UV_EAI_NONAME, NULL, NULL);
    return;
  }
  sip_tp_resolved(r, 0, &t[0].addr,
                  t[0].transport == SIP_TP_TLS ? t[0].host : NULL);
}

int sip_dns_resolve_response(sip_dns *d, sip_tp_resolving *r, int transport,
                             const char *host, int port) {
  sip_dns_query q = {.host = host,
                     .host_len = strlen(host),
                     .port = port,
                     .transport = transport,
                     .secure = transport == SIP_TP_TLS};
  int rc = sip_dns_resolve(d, &q, on_response_resolved, r);
  return rc < 0 ? rc : 0;
}

int sip_dns_uri_target(const sip_uri *u, sip_str *host) {
  if (!u->maddr.p) {
    *host = u->host;
    return u->host_type != SIP_HOST_NAME;
  }
  struct sockaddr_storage ss;
  *host = u->maddr;
  return sip_tp_addr(&ss, u->maddr.p, u->maddr.len, 0) == 0;
}

static void tget(const sip_tree_reader *r, const char *k, size_t i,
                 sip_tree_val *v) {
  sip_tree_get(r, k, i, v);
  if (v->kind == SIP_TREE_TABLE && (!k || strcmp(k, "servers"))) {
    r->close(r->ud);
    v->kind = SIP_TREE_OTHER;
  }
}

/* A number option >= 0 (scale: its unit in the config's) into *out. */
static int opt_uint(const sip_tree_reader *r, const char *k, double scale,
                    unsigned *out) {
  sip_tree_val v;
  tget(r, k, 0, &v);
  if (v.kind == SIP_TREE_NIL)
    return 0;
  double n;
  if (sip_tree_number(&v, &n) < 0)
    return SIP_EINVAL;
  if (!(n >= 0) || n * scale > 4e9)
    return SIP_EINVAL;
  *out = (unsigned)(n * scale + 0.5);
  return 0;
}

int sip_dns_read_config(const sip_tree_reader *r, sip_dns_config *cfg,
                        const char **bad) {
  sip_dns_config_init(cfg);
  sip_tree_val v;
  *bad = "servers";
  tget(r, "servers", 0, &v);
  if (v.kind == SIP_TREE_TABLE) { /* a list: joined with commas */
    char *buf;
    size_t n;
    int rc = sip_tree_join(r, v.len, ",", 1, &buf, &n);
    r->close(r->ud);
    if (rc < 0)
      return rc;
    cfg->servers = r->keep(r->ud, buf, n).p;
    free(buf);
  } else if (v.kind == SIP_TREE_STR) {
    cfg->servers = r->keep(r->ud, v.s.p, v.s.len).p; /* NUL-terminated */
  } else if (v.kind != SIP_TREE_NIL) {
    return SIP_EINVAL;
  }
  static const char *const names[] = {"timeout", "tries", "cache_size",
                                      "max_ttl", "neg_ttl"};
  unsigned *dst[] = {&cfg->timeout_ms, &cfg->tries, &cfg->cache_size,
                     &cfg->max_ttl, &cfg->neg_ttl};
  for (int i = 0; i < 5; i++) {
    *bad = names[i];
    int rc = opt_uint(r, names[i], i == 0 ? 1000 : 1, dst[i]);
    if (rc < 0)
      return rc;
  }
  tget(r, "ipv6", 0, &v);
  if (v.kind != SIP_TREE_NIL)
    cfg->ipv6 = v.kind != SIP_TREE_FALSE;
  return 0;
}

int sip_dns_read_query(const sip_tree_reader *r, sip_dns_query *q,
                       const char **bad) {
  memset(q, 0, sizeof *q);
  sip_tree_val v;
  *bad = "host";
  tget(r, "host", 0, &v);
  if (v.kind != SIP_TREE_STR)
    return SIP_EINVAL;
  q->host = v.s.p;
  q->host_len = v.s.len;
  *bad = "port";
  tget(r, "port", 0, &v);
  if (v.kind == SIP_TREE_UINT && v.n <= 65535)
    q->port = (int)v.n;
  else if (v.kind != SIP_TREE_NIL)
    return SIP_EINVAL;
  *bad = "transport";
  tget(r, "transport", 0, &v);
  if (v.kind == SIP_TREE_STR) {
    q->transport = sip_tp_transport_from(v.s);
    if (!q->transport)
      return SIP_EINVAL;
  } else if (v.kind != SIP_TREE_NIL) {
    return SIP_EINVAL;
  }
  tget(r, "secure", 0, &v);
  q->secure = v.kind != SIP_TREE_NIL && v.kind != SIP_TREE_FALSE;
  return 0;
}

void sip_dns_emit_targets(const sip_dns_target *t, int n,
                          const sip_tree_emitter *e) {
  for (int i = 0; i < n; i++) {
    char ip[SIP_DNS_IP_MAX], dest[128];
    int dn = sip_dns_target_text(&t[i], ip, dest, sizeof dest);
    sip_tree_val v = {.kind = SIP_TREE_TABLE};
    e->put(e->ud, NULL, &v);
    v = (sip_tree_val){.kind = SIP_TREE_STR};
    v.s = (sip_str){dest, dn > 0 ? strcspn(dest, ":") : 0};
    e->put(e->ud, "transport", &v);
    v.s = (sip_str){t[i].host, strlen(t[i].host)};
    e->put(e->ud, "host", &v);
    v.s = (sip_str){ip, strlen(ip)};
    e->put(e->ud, "addr", &v);
    v.s = (sip_str){dest, dn > 0 ? (size_t)dn : 0};
    e->put(e->ud, "dest", &v);
    v = (sip_tree_val){.kind = SIP_TREE_UINT, .n = (uint64_t)t[i].port};
    e->put(e->ud, "port", &v);
    e->close(e->ud);
  }
}

void sip_dns_emit_stats(const sip_dns *d, const sip_tree_emitter *e) {
  sip_dns_counters c;
  memset(&c, 0, sizeof c);
  if (d)
    sip_dns_stats(d, &c);
  const sip_tree_counter f[] = {
      {"lookups", c.lookups},
      {"numeric", c.numeric},
      {"cache_hits", c.cache_hits},
      {"cache_misses", c.cache_misses},
      {"negative_hits", c.negative_hits},
      {"failures", c.failures},
      {"timeouts", c.timeouts},
      {"failovers", c.failovers},
      {"avoided", c.avoided},
      {"cache_entries", c.cache_entries},
      {"evictions", c.evictions},
      {"pending", c.pending},
  };
  sip_tree_put_counters(e, f, sizeof f / sizeof f[0]);
}
