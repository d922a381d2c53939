/* The proxy engine (sip_proxy.h): response contexts, branches, forking,
 * CANCEL, Timer C, stateless forwarding. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sip_proxy.h"
#include "sip_reply.h"
#include "sip_tu.h" /* sip_tu_via_value: the one Via format */

#define CANCEL_WAIT_MS 32000 /* a cancelled branch's 487: 64*T1 at most */
#define MAX_BRANCHES 32
#define MAX_FAILOVER 16

typedef struct px_rr {
  char uri[112]; /* "<sip:127.0.0.1:5060;transport=tcp" (no lr, no '>') */
} px_rr;

struct sip_proxy {
  uv_loop_t *loop;
  sip_tp *tp;
  sip_txl *txl;
  sip_proxy_self self;
  px_rr rr[SIP_TP_MAX_LISTENERS]; /* by index in self.addr */
  uint32_t timer_c_ms;
  sip_proxy_ctx *ctxs;
  sip_proxy_counters st;
};

typedef struct px_branch {
  sip_proxy_ctx *c;
  sip_txn *t;       /* client transaction (a reference); NULL once over */
  sip_rxbuf *final; /* the final response kept (3xx-6xx) */
  char *ruri;       /* Request-URI sent (for the CANCEL) */
  char *route;      /* the Route lines sent, NULL when none */
  sip_dest dest;    /* where it went */
  uint64_t timer_c; /* due (uv ms), 0: none */
  uint64_t give_up; /* cancelled, waiting for its final: due */
  uint16_t status;  /* final status (made up: 408 / 503), 0: pending */
  uint8_t provisional, cancel, cancel_sent, group;
  char via[128];
  char *udp_via; /* moved to TCP for its size (§18.1.1): the Via of its
                    UDP form, used when the transaction fell back to it */
  /* its target, for a failover to the next destination (RFC 3263 §4.3) */
  char *t_uri, *t_dest, *t_route, *t_alt, *t_tls; /* malloc'd, or NULL */
  uint8_t superseded; /* failed over: a later branch replaces it */
} px_branch;

typedef struct px_target {
  char *uri, *dest, *route, *alt, *tls; /* malloc'd, NULL when absent */
  int q;
} px_target;

struct sip_proxy_ctx {
  sip_proxy *p; /* NULL once the proxy is closed */
  sip_proxy_ctx *prev, *next;
  int refs;
  int timer_state; /* 0 open, 1 closing, 2 closed */
  uv_timer_t timer;
  sip_txn *st;
  sip_rxbuf *rx;
  sip_src src;
  sip_proxy_cb cb;
  void *ud;
  unsigned want;
  px_branch **br;
  int nbr, cap;
  int round_first;
  px_target *pend; /* serial groups not started yet */
  int npend, ipend;
  int group; /* current serial group number */
  sip_proxy_opts o;
  char *rr_params;
  uint16_t failover[MAX_FAILOVER + 1];
  uint64_t round_due, group_due;
  int best_2xx; /* branch of the first forwarded 2xx, -1 */
  uint8_t running, cancelled, checked, final_sent, invite, in_relay;
  char lhash[17];
};

/* ---- helpers --------------------------------------------------------------
 */

static uint64_t now_ms(sip_proxy *p) {
  uv_update_time(p->loop);
  return uv_now(p->loop);
}

static char *dupstr(sip_str s) {
  if (!s.p)
    return NULL;
  char *d = malloc(s.len + 1);
  if (d) {
    memcpy(d, s.p, s.len);
    d[s.len] = 0;
  }
  return d;
}

static sip_str cstr(const char *s) {
  return s ? (sip_str){s, strlen(s)} : (sip_str){NULL, 0};
}

static int self_index(const sip_proxy *p, int lid) {
  for (int i = 0; i < p->self.naddr; i++)
    if (p->self.addr[i].id == lid)
      return i;
  return -1;
}

static int is_invite(const sip_msg *m) {
  return m->method.len == 6 && memcmp(m->method.p, "INVITE", 6) == 0;
}

/* ---- the proxy --------------------------------------------------------------
 */

int sip_proxy_new(uv_loop_t *loop, sip_tp *tp, sip_txl *txl, sip_proxy **out) {
  sip_proxy *p = calloc(1, sizeof(*p));
  if (!p)
    return SIP_ENOMEM;
  p->loop = loop;
  p->tp = tp;
  p->txl = txl;
  p->timer_c_ms = 180000;
  sip_proxy_update_listeners(p);
  *out = p;
  return 0;
}

void sip_proxy_update_listeners(sip_proxy *p) {
  p->self.naddr = 0;
  for (int id = 0; id < SIP_TP_MAX_LISTENERS; id++) {
    struct sockaddr_storage sa;
    int tr = sip_tp_listener_addr(p->tp, id, &sa);
    if (tr < 0)
      continue;
    sip_proxy_addr *a = &p->self.addr[p->self.naddr];
    a->id = id;
    a->transport = tr;
    a->family = sa.ss_family;
    a->port = (uint16_t)sip_tp_addr_port(&sa);
    char text[64], sb[64];
    sip_tp_addr_str(&sa, text, sizeof text);
    memcpy(a->sent_by, text, sizeof a->sent_by);
    memcpy(sb, text, sizeof sb);
    char *colon = strrchr(text, ':');
    if (colon)
      *colon = 0;
    memcpy(a->host, text, sizeof a->host - 1);
    a->host[sizeof a->host - 1] = 0;
    snprintf(p->rr[p->self.naddr].uri, sizeof p->rr[0].uri, "<sip:%s%s", sb,
             tr == SIP_TP_TCP   ? ";transport=tcp"
             : tr == SIP_TP_TLS ? ";transport=tls"
             : tr == SIP_TP_WS  ? ";transport=ws"
             : tr == SIP_TP_WSS ? ";transport=wss"
                                : "");
    p->self.naddr++;
  }
}

int sip_proxy_add_alias(sip_proxy *p, const char *host, size_t len) {
  if (p->self.nalias >= SIP_PROXY_MAX_ALIASES)
    return SIP_ERANGE;
  char *d = malloc(len + 1);
  if (!d)
    return SIP_ENOMEM;
  for (size_t i = 0; i < len; i++)
    d[i] =
        (host[i] >= 'A' && host[i] <= 'Z') ? (char)(host[i] | 0x20) : host[i];
  d[len] = 0;
  p->self.alias[p->self.nalias++] = d;
  return 0;
}

const sip_proxy_self *sip_proxy_get_self(const sip_proxy *p) {
  return &p->self;
}

void sip_proxy_stats(const sip_proxy *p, sip_proxy_counters *out) {
  *out = p->st;
}

void sip_proxy_set_timer_c(sip_proxy *p, uint32_t ms) {
  p->timer_c_ms = ms ? ms : 180000;
}

static void ctx_timer_closed(uv_handle_t *h);
static void branch_release_txn(px_branch *b);

void sip_proxy_close(sip_proxy *p) {
  while (p->ctxs) {
    sip_proxy_ctx *c = p->ctxs;
    p->ctxs = c->next;
    c->prev = c->next = NULL;
    c->p = NULL;
    c->running = 0;
    c->refs++;
    for (int i = 0; i < c->nbr; i++)
      branch_release_txn(c->br[i]);
    if (c->timer_state == 0) {
      c->timer_state = 1;
      uv_timer_stop(&c->timer);
      uv_close((uv_handle_t *)&c->timer, ctx_timer_closed);
    }
    sip_proxy_ctx_unref(c);
  }
  for (int i = 0; i < p->self.nalias; i++)
    free(p->self.alias[i]);
  free(p);
}

/* ---- contexts -------------------------------------------------------------
 */

static void on_timer(uv_timer_t *h);

int sip_proxy_ctx_new(sip_proxy *p, sip_txn *st, sip_rxbuf *rx,
                      const sip_src *src, sip_proxy_ctx **out) {
  if (!p || !p->txl || !st || !rx)
    return SIP_EINVAL;
  sip_proxy_ctx *c = calloc(1, sizeof(*c));
  if (!c)
    return SIP_ENOMEM;
  c->p = p;
  c->refs = 1;
  uv_timer_init(p->loop, &c->timer);
  c->timer.data = c;
  c->st = st;
  sip_txn_ref(st);
  c->rx = rx;
  sip_rxbuf_ref(rx);
  if (src)
    c->src = *src;
  c->best_2xx = -1;
  c->invite = is_invite(&rx->msg);
  c->next = p->ctxs;
  if (p->ctxs)
    p->ctxs->prev = c;
  p->ctxs = c;
  p->st.live_ctx++;
  p->st.ctx_bytes += sizeof(*c);
  *out = c;
  return 0;
}

void sip_proxy_ctx_ref(sip_proxy_ctx *c) { c->refs++; }

static void free_pending(sip_proxy_ctx *c) {
  for (int i = 0; i < c->npend; i++) {
    free(c->pend[i].uri);
    free(c->pend[i].dest);
    free(c->pend[i].route);
    free(c->pend[i].alt);
    free(c->pend[i].tls);
  }
  free(c->pend);
  c->pend = NULL;
  c->npend = c->ipend = 0;
}

static void ctx_free(sip_proxy_ctx *c) {
  if (c->cb)
    c->cb(c->ud, c, SIP_PROXY_EV_FREE, -1, 0, NULL, NULL);
  for (int i = 0; i < c->nbr; i++) {
    px_branch *b = c->br[i];
    if (b->final)
      sip_rxbuf_unref(b->final);
    free(b->ruri);
    free(b->route);
    free(b->udp_via);
    free(b->t_uri);
    free(b->t_dest);
    free(b->t_route);
    free(b->t_alt);
    free(b->t_tls);
    free(b);
  }
  free(c->br);
  free_pending(c);
  free(c->rr_params);
  sip_txn_unref(c->st);
  if (c->rx)
    sip_rxbuf_unref(c->rx);
  free(c);
}

static void ctx_timer_closed(uv_handle_t *h) {
  sip_proxy_ctx *c = h->data;
  c->timer_state = 2;
  if (c->refs == 0)
    ctx_free(c);
}

void sip_proxy_ctx_unref(sip_proxy_ctx *c) {
  if (--c->refs > 0)
    return;
  sip_proxy *p = c->p;
  if (p) {
    if (c->prev)
      c->prev->next = c->next;
    else
      p->ctxs = c->next;
    if (c->next)
      c->next->prev = c->prev;
    p->st.live_ctx--;
    p->st.ctx_bytes -= sizeof(*c) + (size_t)c->nbr * sizeof(px_branch);
    c->p = NULL;
  }
  if (c->timer_state == 0) {
    c->timer_state = 1;
    uv_timer_stop(&c->timer);
    uv_close((uv_handle_t *)&c->timer, ctx_timer_closed);
  } else if (c->timer_state == 2) {
    ctx_free(c);
  }
}

void sip_proxy_ctx_set_cb(sip_proxy_ctx *c, sip_proxy_cb cb, void *ud,
                          unsigned want) {
  c->cb = cb;
  c->ud = ud;
  c->want = want | (1u << SIP_PROXY_EV_DONE) | (1u << SIP_PROXY_EV_FREE);
}

void *sip_proxy_ctx_udata(const sip_proxy_ctx *c) { return c->ud; }

int sip_proxy_final_sent(const sip_proxy_ctx *c) {
  return c->final_sent || sip_txn_status(c->st) >= 200;
}

int sip_proxy_busy(const sip_proxy_ctx *c) { return c->running; }

const char *sip_proxy_branch_dest(const sip_proxy_ctx *c, int branch) {
  if (branch < 0 || branch >= c->nbr)
    return NULL;
  return c->br[branch]->t_dest;
}

static int notify(sip_proxy_ctx *c, int ev, int branch, int status,
                  sip_msg *msg, sip_rxbuf *rx) {
  if (!c->cb || !(c->want & (1u << ev)))
    return 0;
  c->refs++;
  int rc = c->cb(c->ud, c, ev, branch, status, msg, rx);
  sip_proxy_ctx_unref(c);
  return rc;
}

/* ---- sending upstream -------------------------------------------------------
 */

static int reply_made_up_x(sip_proxy_ctx *c, int status, const char *reason,
                           sip_str extra);

/* A response made up from the request (408, 487, 500, 483 ...), with the
 * Server header of the transaction layer (sip_txl_set_server) first. */
static int reply_made_up(sip_proxy_ctx *c, int status, const char *reason,
                         sip_str extra) {
  sip_str server = sip_txl_server_line(c->p ? c->p->txl : NULL);
  char xbuf[1024], *x = NULL;
  if (server.len) {
    size_t xn = server.len + extra.len;
    x = xn <= sizeof xbuf ? xbuf : malloc(xn);
    if (!x)
      return SIP_ENOMEM;
    memcpy(x, server.p, server.len);
    if (extra.len)
      memcpy(x + server.len, extra.p, extra.len);
    extra = (sip_str){x, xn};
  }
  int rc = reply_made_up_x(c, status, reason, extra);
  if (x && x != xbuf)
    free(x);
  return rc;
}

static int reply_made_up_x(sip_proxy_ctx *c, int status, const char *reason,
                           sip_str extra) {
  char tag[SIP_TXN_TAG_SIZE];
  sip_txn_new_tag(tag);
  sip_msg *req = &c->rx->msg;
  sip_str rs = cstr(reason);
  sip_str to_tag = {tag, strlen(tag)};
  size_t n = sip_reply_size(req, status, rs, to_tag, extra, SIP_STR_NULL);
  if (!n)
    return SIP_EINVAL;
  char stackbuf[4096];
  char *buf = n <= sizeof stackbuf ? stackbuf : malloc(n);
  if (!buf)
    return SIP_ENOMEM;
  int rc =
      sip_reply_write(req, status, rs, to_tag, extra, SIP_STR_NULL, buf, n);
  if (rc >= 0)
    rc = sip_txn_reply(c->st, status, buf, (size_t)rc);
  if (buf != stackbuf)
    free(buf);
  if (rc >= 0 && c->p)
    c->p->st.responses_forwarded++;
  return rc;
}

/* Forward a branch's response upstream (edited: our Via off, 503 -> 500,
 * extra lines added). */
static int send_up(sip_proxy_ctx *c, sip_msg *res, sip_str extra) {
  int rc = sip_proxy_response_edit(res, extra);
  if (rc < 0)
    return rc;
  size_t n = sip_msg_size(res);
  char stackbuf[8192];
  char *buf = n <= sizeof stackbuf ? stackbuf : malloc(n);
  if (!buf)
    return SIP_ENOMEM;
  rc = sip_msg_write(res, buf, n);
  if (rc >= 0) {
    int len = rc;
    rc = sip_txn_reply(c->st, res->status, buf, (size_t)len);
    if (rc < 0 && res->status < 300 && c->p) {
      /* a 2xx after the server transaction ended: statelessly (§16.7
       * step 5), along the next Via */
      const sip_via *v;
      if (sip_msg_get_vias(res, &v) == 0)
        rc = sip_tp_send_response(c->p->tp, buf, (size_t)len, v, &c->src, NULL,
                                  NULL);
    }
  }
  if (buf != stackbuf)
    free(buf);
  if (rc >= 0 && c->p)
    c->p->st.responses_forwarded++;
  return rc;
}

/* ---- branches
 * ---------------------------------------------------------------- */

static void on_response(void *arg, sip_txn *t, int status, sip_msg *msg,
                        sip_rxbuf *rx);

static void branch_release_txn(px_branch *b) {
  if (!b->t)
    return;
  sip_txn *t = b->t;
  b->t = NULL;
  sip_txn_set_event_cb(t, NULL, NULL);
  sip_txn_detach(t);
  sip_txn_unref(t);
  sip_proxy_ctx_unref(b->c);
}

static void on_event(void *arg, sip_txn *t, int event, int err) {
  (void)t;
  (void)err;
  px_branch *b = arg;
  if (event == SIP_TXN_EV_TERMINATED)
    branch_release_txn(b);
}

static void branch_sync_dest(px_branch *b);

static void send_cancel(px_branch *b) {
  sip_proxy_ctx *c = b->c;
  b->cancel = 1;
  if (b->cancel_sent || !b->t || !b->provisional || !c->p || !c->invite ||
      !c->rx)
    return;
  b->cancel_sent = 1;
  branch_sync_dest(b);
  char buf[8192];
  int n = sip_proxy_write_cancel(&c->rx->msg, cstr(b->ruri), cstr(b->via),
                                 b->route ? cstr(b->route) : SIP_STR_NULL, buf,
                                 sizeof buf);
  if (n < 0)
    return;
  sip_dest d = b->dest;
  d.tls_name = b->t_dest ? b->t_tls : NULL;
  if (sip_txn_request(c->p->txl, buf, (size_t)n, &d, NULL, NULL, NULL) == 0)
    c->p->st.cancels_sent++;
}

/* "z9hG4bK" LHASH "." and at most tail_max bytes of tail into out (room
 * for 48 bytes: LHASH and tail are 16 and at most 16 characters); memcpy,
 * not snprintf: one is made for every forwarded request. */
static void put_branch(char out[48], const char *lhash, const char *tail,
                       size_t tail_max) {
  size_t n = 7, k = strlen(lhash);
  memcpy(out, "z9hG4bK", 7);
  memcpy(out + n, lhash, k);
  n += k;
  out[n++] = '.';
  k = strnlen(tail, tail_max);
  memcpy(out + n, tail, k);
  out[n + k] = 0;
}

/* The branch's transaction fell back from TCP to UDP (§18.1.1): so do its
 * Via and destination (for the CANCEL, §9.1: the request's top Via, the
 * same destination). */
static void branch_sync_dest(px_branch *b) {
  sip_dest d;
  if (!b->udp_via || !b->t || sip_txn_dest(b->t, &d) < 0 ||
      d.transport != SIP_TP_UDP)
    return;
  b->dest = d;
  snprintf(b->via, sizeof b->via, "%s", b->udp_via);
  free(b->udp_via);
  b->udp_via = NULL;
}

/* Give up a branch now (made-up final status): its transaction goes on
 * (a CANCEL when it had a provisional), later non-2xx are ignored. */
static void branch_give_up(px_branch *b, int status) {
  if (b->status)
    return;
  b->status = (uint16_t)status;
  b->timer_c = b->give_up = 0;
  if (b->provisional)
    send_cancel(b);
  else
    b->cancel = 1; /* sent when a provisional comes */
}

static void cancel_pending(sip_proxy_ctx *c, int from) {
  uint64_t now = c->p ? now_ms(c->p) : 0;
  for (int i = from; i < c->nbr; i++) {
    px_branch *b = c->br[i];
    if (b->status || b->cancel)
      continue;
    if (!c->invite) {
      branch_give_up(b, 408); /* a non-INVITE cannot be cancelled */
      continue;
    }
    send_cancel(b);
    b->give_up = now + CANCEL_WAIT_MS;
  }
}

static int listener_for(sip_proxy *p, int transport, int family) {
  return sip_tp_find_listener(p->tp, transport, family);
}

/* Record-Route lines for a branch leaving from listener index oi (request
 * in on ii, -1 unknown). */
static size_t rr_lines(sip_proxy *p, const char *params, int oi, int ii,
                       char *out, size_t cap) {
  size_t n = 0;
  if (!params)
    params = "";
  if (oi < 0)
    return 0;
  int k =
      snprintf(out, cap, "Record-Route: %s;lr%s>\r\n", p->rr[oi].uri, params);
  if (k < 0 || (size_t)k >= cap)
    return 0;
  n = (size_t)k;
  if (ii >= 0 && ii != oi) {
    k = snprintf(out + n, cap - n, "Record-Route: %s;lr%s>\r\n", p->rr[ii].uri,
                 params);
    if (k < 0 || (size_t)k >= cap - n)
      return 0;
    n += (size_t)k;
  }
  return n;
}

/* The destination of a request: dest spec, else the next hop (csrc/tu's
 * rule: first route, pushed or in m, when loose, else the Request-URI). */
static int resolve_dest(sip_msg *m, sip_str ruri, sip_str dest, sip_str route,
                        size_t len, sip_dest *d) {
  if (dest.p)
    return sip_tu_dest_spec(dest.p, dest.len, d);
  return sip_tu_next_hop_dest(m, ruri, route, len, d, NULL, 0);
}

/* Route lines of m (after the edits), with pushed values first. */
static char *route_lines(sip_msg *m, sip_str push) {
  size_t n = push.p ? push.len + 9 : 0;
  for (int i = sip_msg_find(m, SIP_H_ROUTE, NULL, 0, 0); i >= 0;
       i = sip_msg_find(m, SIP_H_ROUTE, NULL, 0, i + 1))
    n += m->hdr[i].value.len + 9;
  if (!n)
    return NULL;
  char *s = malloc(n + 1), *o = s;
  if (!s)
    return NULL;
  if (push.p)
    o += sprintf(o, "Route: %.*s\r\n", (int)push.len, push.p);
  for (int i = sip_msg_find(m, SIP_H_ROUTE, NULL, 0, 0); i >= 0;
       i = sip_msg_find(m, SIP_H_ROUTE, NULL, 0, i + 1))
    o += sprintf(o, "Route: %.*s\r\n", (int)m->hdr[i].value.len,
                 m->hdr[i].value.p);
  *o = 0;
  return s;
}

/* The listener index (in p->self) a request to d leaves from, d->listener
 * set; -1 when there is none of its transport and family. */
static int out_index(sip_proxy *p, sip_dest *d) {
  int lid = listener_for(p, d->transport, d->addr.ss_family);
  int oi = lid < 0 ? -1 : self_index(p, lid);
  if (oi >= 0)
    d->listener = lid;
  return oi;
}

/* How one hop's request is written: everything but the transport. */
typedef struct px_build {
  sip_msg *m;
  sip_str ruri, push;
  const char *branch;    /* the Via branch */
  int record_route, ii;  /* Record-Route; the listener index it came in on */
  const char *rr_params; /* NULL: none */
} px_build;

/* The request of bd for a next hop over transport, leaving from listener
 * index oi: its Via (copied into via), Record-Route lines, pushed Route
 * lines, then m. Into stack when it fits, else into a malloc'd buffer;
 * *out says which. Returns the length or a negative code. */
static int build_request(sip_proxy *p, const px_build *bd, int transport,
                         int oi, char *via, size_t vcap, char *stack,
                         size_t scap, char **out) {
  *out = NULL;
  int k = sip_tu_via_value(via, vcap, transport, p->self.addr[oi].sent_by,
                           bd->branch, 0);
  if (k < 0)
    return k;
  char extra[1024];
  size_t en = 0;
  if (bd->record_route)
    en = rr_lines(p, bd->rr_params, oi, bd->ii, extra, sizeof extra);
  if (bd->push.p) {
    k = snprintf(extra + en, sizeof extra - en, "Route: %.*s\r\n",
                 (int)bd->push.len, bd->push.p);
    if (k < 0 || (size_t)k >= sizeof extra - en)
      return SIP_ERANGE;
    en += (size_t)k;
  }
  sip_proxy_fwd f = {.ruri = bd->ruri, .via = cstr(via), .extra = {extra, en}};
  size_t cap = sip_proxy_request_size(bd->m, &f);
  char *buf = cap <= scap ? stack : malloc(cap);
  if (!buf)
    return SIP_ENOMEM;
  int len = sip_proxy_write_request(bd->m, &f, buf, cap);
  if (len < 0 && buf != stack)
    free(buf);
  else if (buf != stack)
    *out = buf;
  return len;
}

/* One hop's request as written (see write_hop). */
typedef struct px_req {
  char stack[8192];
  char *heap, *tcp;         /* malloc'd (NULL when not): req_free */
  const char *bytes;        /* the request as written for d: len bytes, via */
  int len, tlen;            /* tlen >= 0: switched, the TCP form is tcp, tvia */
  sip_dest td;              /* its destination */
  char via[128], tvia[128]; /* as px_branch.via */
} px_req;
_Static_assert(sizeof(((px_req *)0)->via) == sizeof(((px_branch *)0)->via),
               "one Via size");

/* A request of bd to d, leaving from listener index oi, written for d's
 * transport; then §18.1.1 on its real size: a UDP request larger than
 * SIP_TP_UDP_MTU_THRESHOLD whose URI left the transport open is written
 * again for TCP (when there is a TCP listener to name in its Via; else it
 * goes over UDP after all), to be sent with the UDP form as its fallback.
 * 0 or a negative code; req_free(r) in both cases. */
static int write_hop(sip_proxy *p, const px_build *bd, sip_dest *d, int oi,
                     px_req *r) {
  r->tcp = NULL;
  r->tlen = -1;
  r->len = build_request(p, bd, d->transport, oi, r->via, sizeof r->via,
                         r->stack, sizeof r->stack, &r->heap);
  if (r->len < 0)
    return r->len;
  r->bytes = r->heap ? r->heap : r->stack;
  r->td = *d;
  int toi;
  if (sip_tp_request_switch(&r->td, (size_t)r->len) &&
      (toi = out_index(p, &r->td)) >= 0) {
    char none[1];
    r->tlen = build_request(p, bd, SIP_TP_TCP, toi, r->tvia, sizeof r->tvia,
                            none, 0, &r->tcp);
    if (r->tlen < 0)
      return r->tlen;
  }
  return 0;
}

static void req_free(px_req *r) {
  free(r->heap);
  free(r->tcp);
}

/* Start one branch; its status is set (503) when it could not be sent. */
static px_branch *start_branch(sip_proxy_ctx *c, const px_target *tg) {
  sip_proxy *p = c->p;
  sip_msg *m = &c->rx->msg;
  if (c->nbr == c->cap) {
    int cap = c->cap ? c->cap * 2 : 4;
    px_branch **nb = realloc(c->br, (size_t)cap * sizeof(*nb));
    if (!nb)
      return NULL;
    c->br = nb;
    c->cap = cap;
  }
  px_branch *b = calloc(1, sizeof(*b));
  if (!b)
    return NULL;
  b->c = c;
  b->group = (uint8_t)c->group;
  c->br[c->nbr++] = b;
  p->st.branches++;
  p->st.ctx_bytes += sizeof(*b);
  sip_str ruri = tg && tg->uri ? cstr(tg->uri) : m->ruri;
  sip_str push = tg ? cstr(tg->route) : SIP_STR_NULL;
  b->ruri = dupstr(ruri);
  if (tg) {
    b->t_uri = tg->uri ? strdup(tg->uri) : NULL;
    b->t_dest = tg->dest ? strdup(tg->dest) : NULL;
    b->t_route = tg->route ? strdup(tg->route) : NULL;
    b->t_alt = tg->alt ? strdup(tg->alt) : NULL;
    b->t_tls = tg->tls ? strdup(tg->tls) : NULL;
  }
  int rc = resolve_dest(m, ruri, tg ? cstr(tg->dest) : SIP_STR_NULL, push, 0,
                        &b->dest);
  if (rc == 0 && tg && tg->dest && b->t_tls)
    b->dest.tls_name = b->t_tls; /* RFC 5922: the URI's domain */
  int oi = rc < 0 ? -1 : out_index(p, &b->dest);
  if (rc < 0 || oi < 0 || !b->ruri) {
    b->status = 503;
    return b;
  }
  char rnd[SIP_TXN_BRANCH_SIZE], branch[48];
  sip_txn_new_branch(rnd);
  put_branch(branch, c->lhash, rnd + 7, 10);
  px_build bd = {.m = m,
                 .ruri = ruri,
                 .push = push,
                 .branch = branch,
                 .record_route = c->o.record_route,
                 .ii = self_index(p, c->src.listener),
                 .rr_params = c->rr_params};
  px_req req, *r = &req;
  if (write_hop(p, &bd, &b->dest, oi, r) < 0) {
    req_free(r);
    b->status = 503;
    return b;
  }
  if (c->invite)
    b->route = route_lines(m, push);
  sip_txn *t = NULL;
  if (r->tlen >= 0) {
    /* too large for UDP: over TCP, the UDP form as its fallback */
    sip_dest ud = b->dest;
    b->dest = r->td;
    b->udp_via = dupstr(cstr(r->via));
    memcpy(b->via, r->tvia, sizeof b->via);
    rc = sip_txn_request_switched(p->txl, r->tcp, (size_t)r->tlen, &b->dest,
                                  r->bytes, (size_t)r->len, &ud, on_response, b,
                                  &t);
  } else {
    memcpy(b->via, r->via, sizeof b->via);
    rc = sip_txn_request(p->txl, r->bytes, (size_t)r->len, &b->dest,
                         on_response, b, &t);
  }
  req_free(r);
  if (rc < 0) {
    b->status = 503;
    return b;
  }
  sip_txn_ref(t);
  b->t = t;
  c->refs++;
  sip_txn_set_event_cb(t, on_event, b);
  if (c->invite)
    b->timer_c =
        now_ms(p) + (c->o.timer_c_ms ? c->o.timer_c_ms : p->timer_c_ms);
  return b;
}

/* ---- failover (RFC 3263 §4.3) ----------------------------------------------
 */

/* Does branch b, ended with status (msg NULL: made up by its transaction),
 * move its target to the next destination? A transport error or a timeout
 * (made-up 503 / 408) or a 503 from the server, while the round runs. */
static int can_fail_over(const sip_proxy_ctx *c, const px_branch *b, int status,
                         const sip_msg *msg) {
  if (!sip_proxy_failover_status(status, msg == NULL))
    return 0;
  if (!b->t_alt || !b->t_alt[strspn(b->t_alt, " ")] || b->superseded)
    return 0;
  return c->p && c->running && !c->cancelled && !b->cancel &&
         !sip_proxy_final_sent(c) && c->nbr < MAX_BRANCHES * 2 - 1;
}

/* Branch bi failed: its target's next destination gets a new branch (and
 * the one after when that cannot be sent either). */
static void fail_over(sip_proxy_ctx *c, int bi, int status, sip_msg *msg,
                      sip_rxbuf *rx) {
  for (;;) {
    px_branch *b = c->br[bi];
    if (!can_fail_over(c, b, status, msg))
      return;
    if (!c->in_relay) /* not from inside sip_proxy_relay: its caller runs */
      notify(c, SIP_PROXY_EV_FAILOVER, bi, status, msg, rx);
    if (!can_fail_over(c, b, status, msg)) /* the hook may have replied */
      return;
    const char *a = b->t_alt + strspn(b->t_alt, " ");
    size_t n = strcspn(a, " ");
    char *dest = malloc(n + 1);
    if (!dest)
      return;
    memcpy(dest, a, n);
    dest[n] = 0;
    const char *rest = a + n;
    rest += strspn(rest, " ");
    px_target tg = {.uri = b->t_uri,
                    .dest = dest,
                    .route = b->t_route,
                    .alt = *rest ? (char *)rest : NULL,
                    .tls = b->t_tls,
                    .q = -1};
    px_branch *nb = start_branch(c, &tg);
    free(dest);
    if (!nb)
      return;
    b->superseded = 1;
    nb->group = b->group;
    if (!nb->status)
      return;
    /* could not be sent: on to the one after */
    bi = c->nbr - 1;
    status = nb->status;
    msg = NULL;
    rx = NULL;
  }
}

/* Start a branch for a target; a destination that cannot be sent to
 * fails over at once. The branch that stands for the target is returned. */
static px_branch *start_target(sip_proxy_ctx *c, const px_target *tg) {
  px_branch *b = start_branch(c, tg);
  if (b && b->status) {
    fail_over(c, c->nbr - 1, b->status, NULL, NULL);
    b = c->br[c->nbr - 1];
  }
  return b;
}

/* ---- rounds ----------------------------------------------------------------
 */

static void rearm(sip_proxy_ctx *c) {
  if (!c->p || c->timer_state)
    return;
  uint64_t due = 0;
#define MIN_DUE(x)                                                             \
  do {                                                                         \
    if ((x) && (!due || (x) < due))                                            \
      due = (x);                                                               \
  } while (0)
  if (c->running) {
    MIN_DUE(c->round_due);
    MIN_DUE(c->group_due);
  }
  for (int i = 0; i < c->nbr; i++) {
    px_branch *b = c->br[i];
    if (!b->t)
      continue;
    if (!b->status)
      MIN_DUE(b->timer_c);
    MIN_DUE(b->give_up);
  }
#undef MIN_DUE
  if (!due) {
    uv_timer_stop(&c->timer);
    return;
  }
  uint64_t now = now_ms(c->p);
  uv_timer_start(&c->timer, on_timer, due > now ? due - now : 0, 0);
}

static uint16_t status_of(const sip_proxy_ctx *c, int i) {
  return c->br[i]->superseded ? 0 : c->br[i]->status;
}

/* best among branches [from, nbr) */
static int best_in(const sip_proxy_ctx *c, int from) {
  uint16_t st[MAX_BRANCHES * 2];
  int n = c->nbr - from;
  if (n > (int)(sizeof st / sizeof st[0]))
    n = (int)(sizeof st / sizeof st[0]);
  for (int i = 0; i < n; i++)
    st[i] = status_of(c, from + i);
  int k = sip_proxy_best(st, n);
  return k < 0 ? -1 : from + k;
}

static int failover_status(const sip_proxy_ctx *c, int s) {
  if (s < 300 || s >= 600)
    return 0;
  if (!c->failover[0])
    return 1;
  for (int i = 0; c->failover[i]; i++)
    if (c->failover[i] == s)
      return 1;
  return 0;
}

static int start_group(sip_proxy_ctx *c);

/* A final response went upstream and no round runs: what only served
 * building requests and choosing the response goes (the request, kept
 * responses); what forwards late 2xx (the server transaction, the
 * branches' transactions) stays. Memory per call in flight. */
static void shed(sip_proxy_ctx *c) {
  if (c->running || !c->final_sent)
    return;
  int need_rx = 0;
  for (int i = 0; i < c->nbr; i++) {
    px_branch *b = c->br[i];
    if (b->final) {
      sip_rxbuf_unref(b->final);
      b->final = NULL;
    }
    if (b->t && b->cancel && !b->cancel_sent)
      need_rx = 1;
  }
  if (!need_rx && c->rx) {
    sip_rxbuf_unref(c->rx);
    c->rx = NULL;
  }
}

static void round_done(sip_proxy_ctx *c) {
  c->running = 0;
  c->round_due = c->group_due = 0;
  free_pending(c);
  int idx =
      c->best_2xx >= c->round_first ? c->best_2xx : best_in(c, c->round_first);
  int status;
  sip_msg *msg = NULL;
  sip_rxbuf *rx = NULL;
  if (idx < 0) {
    status = c->cancelled ? 487 : 408;
  } else {
    status = c->br[idx]->status;
    rx = c->br[idx]->final;
    msg = rx ? &rx->msg : NULL;
  }
  rearm(c);
  if (rx)
    sip_rxbuf_ref(rx); /* for the callback: shed may drop the branch's */
  c->refs++;
  notify(c, SIP_PROXY_EV_DONE, idx, status, msg, rx);
  shed(c);
  if (rx)
    sip_rxbuf_unref(rx);
  sip_proxy_ctx_unref(c);
}

/* After any change: start the next serial group or end the round. */
static void check_round(sip_proxy_ctx *c) {
  if (!c->running || c->in_relay)
    return;
  int six = 0, pending = 0;
  for (int i = c->round_first; i < c->nbr; i++) {
    int s = c->br[i]->status;
    if (!s)
      pending = 1;
    else if (s >= 600)
      six = 1;
  }
  if (c->best_2xx >= c->round_first || six) {
    round_done(c);
    return;
  }
  if (pending) {
    rearm(c);
    return;
  }
  int best = best_in(c, c->round_first);
  if (c->ipend < c->npend && !c->cancelled && !c->final_sent &&
      (best < 0 || failover_status(c, c->br[best]->status))) {
    if (start_group(c) > 0) {
      rearm(c);
      return;
    }
  }
  round_done(c);
}

static void add_contacts(sip_proxy_ctx *c, sip_msg *res) {
  const sip_addr *a;
  if (sip_msg_get_addrs(res, SIP_H_CONTACT, &a) < 0)
    return;
  for (; a && c->nbr < MAX_BRANCHES; a = a->next) {
    if (a->star || !a->uri.raw.p)
      continue;
    int seen = 0;
    for (int i = 0; i < c->nbr; i++)
      if (c->br[i]->ruri && strlen(c->br[i]->ruri) == a->uri.raw.len &&
          memcmp(c->br[i]->ruri, a->uri.raw.p, a->uri.raw.len) == 0)
        seen = 1;
    if (seen)
      continue;
    char *u = dupstr(a->uri.raw);
    px_target tg = {.uri = u, .q = -1};
    start_branch(c, &tg);
    free(u);
  }
}

static void on_response(void *arg, sip_txn *t, int status, sip_msg *msg,
                        sip_rxbuf *rx) {
  (void)t;
  px_branch *b = arg;
  sip_proxy_ctx *c = b->c;
  if (!c->p)
    return;
  int bi = 0;
  while (bi < c->nbr && c->br[bi] != b)
    bi++;
  c->refs++;
  if (status < 200) {
    b->provisional = 1;
    if (b->cancel && !b->cancel_sent)
      send_cancel(b);
    if (status > 100 && !b->status) {
      if (b->timer_c)
        b->timer_c = now_ms(c->p) +
                     (c->o.timer_c_ms ? c->o.timer_c_ms : c->p->timer_c_ms);
      if (msg && !sip_proxy_final_sent(c) && !b->cancel &&
          !notify(c, SIP_PROXY_EV_PROVISIONAL, bi, status, msg, rx))
        send_up(c, msg, SIP_STR_NULL);
      rearm(c);
    }
    sip_proxy_ctx_unref(c);
    return;
  }
  if (status < 300) {
    int first = !b->status || b->status >= 300;
    if (first) {
      b->status = (uint16_t)status;
      notify(c, SIP_PROXY_EV_FINAL, bi, status, msg, rx);
    }
    if (msg && (c->invite || !sip_proxy_final_sent(c))) {
      c->final_sent = 1;
      send_up(c, msg, SIP_STR_NULL);
    }
    if (c->best_2xx < 0 || c->best_2xx < c->round_first) {
      c->best_2xx = bi;
      if (msg && rx && !b->final) {
        b->final = rx;
        sip_rxbuf_ref(rx);
      }
    }
    cancel_pending(c, 0);
    check_round(c);
    sip_proxy_ctx_unref(c);
    return;
  }
  if (b->status) { /* given up already (timeout) */
    sip_proxy_ctx_unref(c);
    return;
  }
  b->status = (uint16_t)status;
  b->timer_c = b->give_up = 0;
  if (rx) {
    b->final = rx;
    sip_rxbuf_ref(rx);
  }
  notify(c, SIP_PROXY_EV_FINAL, bi, status, msg, rx);
  fail_over(c, bi, status, msg, rx);
  if (status < 400 && c->o.recurse && msg && !c->cancelled &&
      !sip_proxy_final_sent(c) && c->running)
    add_contacts(c, msg);
  if (status >= 600)
    cancel_pending(c, 0);
  check_round(c);
  sip_proxy_ctx_unref(c);
}

static void on_timer(uv_timer_t *h) {
  sip_proxy_ctx *c = h->data;
  if (!c->p)
    return;
  uint64_t now = now_ms(c->p);
  c->refs++;
  if (c->running && c->round_due && c->round_due <= now) {
    /* the round's time is up: 408 for what is pending (their CANCEL goes
     * now, or when a provisional comes) */
    c->round_due = 0;
    free_pending(c);
    for (int i = c->round_first; i < c->nbr; i++)
      branch_give_up(c->br[i], 408);
  }
  if (c->running && c->group_due && c->group_due <= now) {
    c->group_due = 0;
    for (int i = c->round_first; i < c->nbr; i++)
      if (c->br[i]->group == c->group)
        branch_give_up(c->br[i], 408);
  }
  for (int i = 0; i < c->nbr; i++) {
    px_branch *b = c->br[i];
    if (!b->t)
      continue;
    if (!b->status && b->timer_c && b->timer_c <= now) {
      c->p->st.timer_c++;
      b->timer_c = 0;
      if (b->provisional) {
        send_cancel(b); /* §16.8: its 487 (or a give-up) ends it */
        b->give_up = now + CANCEL_WAIT_MS;
      } else {
        branch_give_up(b, 408);
      }
    }
    if (b->give_up && b->give_up <= now) {
      b->give_up = 0;
      if (!b->status)
        b->status = 408;
    }
  }
  check_round(c);
  rearm(c);
  sip_proxy_ctx_unref(c);
}

static int cmp_q(const void *a, const void *b) {
  const px_target *x = a, *y = b;
  int qx = x->q < 0 ? 1000 : x->q, qy = y->q < 0 ? 1000 : y->q;
  return qy - qx;
}

/* Start the next serial group: every pending target with the q of the
 * first. Returns the number of branches started and still pending. */
static int start_group(sip_proxy_ctx *c) {
  if (c->ipend >= c->npend)
    return 0;
  c->group++;
  int q = c->pend[c->ipend].q < 0 ? 1000 : c->pend[c->ipend].q;
  int live = 0;
  while (c->ipend < c->npend) {
    px_target *tg = &c->pend[c->ipend];
    if ((tg->q < 0 ? 1000 : tg->q) != q)
      break;
    c->ipend++;
    px_branch *b = start_target(c, tg);
    if (b && !b->status)
      live++;
  }
  if (c->o.branch_timeout_ms)
    c->group_due = now_ms(c->p) + c->o.branch_timeout_ms;
  return live;
}

static int answer_check(sip_proxy_ctx *c, int status, const char *reason,
                        sip_str extra) {
  reply_made_up(c, status, reason, extra);
  c->final_sent = 1;
  return status;
}

int sip_proxy_relay(sip_proxy_ctx *c, const sip_proxy_target *t, int n,
                    const sip_proxy_opts *o) {
  sip_proxy *p = c->p;
  if (!p || c->running || n < 0 || n > MAX_BRANCHES)
    return SIP_EINVAL;
  if (c->cancelled)
    return 487;
  if (sip_proxy_final_sent(c))
    return SIP_EINVAL;
  sip_msg *m = &c->rx->msg;
  if (!c->checked) {
    uint32_t mf;
    if (sip_msg_get_max_forwards(m, &mf) == 0 && mf == 0) {
      p->st.too_many_hops++;
      return answer_check(c, 483, "Too Many Hops", SIP_STR_NULL);
    }
    if (sip_proxy_detect_loop(m, &p->self)) {
      p->st.loops++;
      return answer_check(c, 482, "Loop Detected", SIP_STR_NULL);
    }
    char tags[256], line[300];
    if (sip_proxy_unsupported(m, NULL, tags, sizeof tags)) {
      int k = snprintf(line, sizeof line, "Unsupported: %s\r\n", tags);
      return answer_check(c, 420, "Bad Extension",
                          (sip_str){line, k > 0 ? (size_t)k : 0});
    }
    const sip_via *v;
    if (sip_msg_get_vias(m, &v) < 0 || sip_proxy_loop_hash(m, v, c->lhash) < 0)
      return SIP_EINVAL;
    if (!o->routed && sip_proxy_route_pre(m, &p->self) < 0)
      return SIP_EINVAL;
    sip_proxy_route_strict_next(m);
    if (sip_proxy_decrement_mf(m) < 0)
      return SIP_EINVAL;
    c->checked = 1;
  }
  c->o = *o;
  free(c->rr_params);
  c->rr_params = o->rr_params.p ? dupstr(o->rr_params) : NULL;
  c->o.rr_params = SIP_STR_NULL;
  c->o.failover = NULL;
  c->failover[0] = 0;
  for (int i = 0; o->failover && o->failover[i] && i < MAX_FAILOVER; i++) {
    c->failover[i] = o->failover[i];
    c->failover[i + 1] = 0;
  }
  free_pending(c);
  c->round_first = c->nbr;
  c->group = 0;
  p->st.relayed++;
  /* copies of the targets, sorted by q for serial forking */
  int nt = n ? n : 1;
  c->pend = calloc((size_t)nt, sizeof(px_target));
  if (!c->pend)
    return SIP_ENOMEM;
  c->npend = nt;
  for (int i = 0; i < n; i++) {
    c->pend[i].uri = dupstr(t[i].uri);
    c->pend[i].dest = dupstr(t[i].dest);
    c->pend[i].route = dupstr(t[i].route);
    c->pend[i].alt = dupstr(t[i].alt);
    c->pend[i].tls = dupstr(t[i].tls_name);
    c->pend[i].q = o->fork == SIP_PROXY_SERIAL ? t[i].q : -1;
  }
  if (!n)
    c->pend[0].q = -1;
  if (o->fork == SIP_PROXY_SERIAL)
    qsort(c->pend, (size_t)nt, sizeof(px_target), cmp_q);
  c->running = 1;
  c->in_relay = 1;
  int live = 0;
  while (!live && c->ipend < c->npend)
    live = start_group(c);
  c->in_relay = 0;
  if (!live) { /* nothing could be sent */
    c->running = 0;
    free_pending(c);
    int idx = best_in(c, c->round_first);
    return idx < 0 ? 503 : status_of(c, idx);
  }
  if (o->timeout_ms)
    c->round_due = now_ms(p) + o->timeout_ms;
  rearm(c);
  return 0;
}

int sip_proxy_cancel(sip_proxy_ctx *c) {
  c->cancelled = 1;
  if (!c->running || !c->p)
    return 0;
  free_pending(c);
  cancel_pending(c, c->round_first);
  rearm(c);
  return 1;
}

int sip_proxy_finish(sip_proxy_ctx *c) {
  if (sip_proxy_final_sent(c) || c->running || !c->rx)
    return 0;
  int idx = best_in(c, 0);
  c->final_sent = 1;
  if (idx < 0)
    return reply_made_up(c, c->cancelled ? 487 : 408, NULL, SIP_STR_NULL) < 0
               ? -1
               : 1;
  px_branch *b = c->br[idx];
  if (!b->final)
    return reply_made_up(c, b->status == 503 ? 500 : b->status, NULL,
                         SIP_STR_NULL) < 0
               ? -1
               : 1;
  /* §16.7 step 7: every challenge of the 401/407 responses */
  char agg[4096];
  size_t an = 0;
  if (b->status == 401 || b->status == 407) {
    for (int i = 0; i < c->nbr; i++) {
      px_branch *o = c->br[i];
      if (i == idx || !o->final || (o->status != 401 && o->status != 407))
        continue;
      sip_msg *om = &o->final->msg;
      for (uint32_t h = 0; h < om->nhdr; h++) {
        sip_hdr *hd = &om->hdr[h];
        if ((hd->id != SIP_H_WWW_AUTHENTICATE &&
             hd->id != SIP_H_PROXY_AUTHENTICATE) ||
            hd->state == SIP_HS_REMOVED)
          continue;
        int k = snprintf(agg + an, sizeof agg - an, "%s: %.*s\r\n",
                         sip_hdr_canonical(hd->id), (int)hd->value.len,
                         hd->value.p);
        if (k > 0 && (size_t)k < sizeof agg - an)
          an += (size_t)k;
      }
    }
  }
  int rc = send_up(c, &b->final->msg, (sip_str){agg, an});
  shed(c);
  return rc < 0 ? rc : 1;
}

/* ---- stateless
 * ---------------------------------------------------------------- */

/* Stateless, §18.1.1: the TCP form of a request too large for UDP; when
 * the connection fails, its UDP form (there is no transaction to do it). */
typedef struct px_fallback {
  sip_tp *tp;
  sip_dest udp;
  size_t len;
  char bytes[];
} px_fallback;

static void fallback_sent(void *arg, int status) {
  px_fallback *f = arg;
  if (status < 0 && status != UV_ECANCELED)
    sip_tp_send(f->tp, f->bytes, f->len, &f->udp, NULL, NULL);
  free(f);
}

static int send_switched(sip_tp *tp, const px_req *r, const sip_dest *udp) {
  px_fallback *f = malloc(sizeof(*f) + (size_t)r->len);
  if (!f)
    return SIP_ENOMEM;
  f->tp = tp;
  f->udp = *udp;
  f->len = (size_t)r->len;
  memcpy(f->bytes, r->bytes, f->len);
  int rc = sip_tp_send(tp, r->tcp, (size_t)r->tlen, &r->td, fallback_sent, f);
  if (rc < 0) { /* at once (no connection possible): the UDP form now */
    free(f);
    rc = sip_tp_send(tp, r->bytes, (size_t)r->len, udp, NULL, NULL);
  }
  return rc;
}

int sip_proxy_forward(sip_proxy *p, sip_msg *m, const sip_src *src,
                      const sip_proxy_target *target, int record_route,
                      sip_str rr_params) {
  const sip_via *v;
  int rc = sip_msg_get_vias(m, &v);
  if (rc < 0)
    return rc;
  char lh[17], h2[17];
  if ((rc = sip_proxy_loop_hash(m, v, lh)) < 0)
    return rc;
  rc = sip_proxy_decrement_mf(m);
  if (rc == SIP_ERANGE) {
    p->st.too_many_hops++;
    return 483;
  }
  if (rc < 0)
    return rc;
  sip_proxy_route_strict_next(m);
  sip_str ruri = target && target->uri.p ? target->uri : m->ruri;
  sip_str push = target ? target->route : SIP_STR_NULL;
  sip_dest d;
  rc = resolve_dest(m, ruri, target ? target->dest : SIP_STR_NULL, push, 0, &d);
  if (rc < 0)
    return rc;
  char tls[256];
  if (target && target->dest.p && target->tls_name.p &&
      target->tls_name.len < sizeof tls) { /* RFC 5922: the URI's domain */
    memcpy(tls, target->tls_name.p, target->tls_name.len);
    tls[target->tls_name.len] = 0;
    d.tls_name = tls;
  }
  int oi = out_index(p, &d);
  if (oi < 0)
    return UV_EAFNOSUPPORT;
  /* §16.11: the same branch for a retransmission (and for the CANCEL / ACK
   * of an INVITE: the method is not in it) */
  {
    uint64_t h = 0xcbf29ce484222325ULL;
    const char *parts[2] = {v->branch.p ? v->branch.p : "", ruri.p};
    size_t lens[2] = {v->branch.p ? v->branch.len : 0, ruri.len};
    for (int k = 0; k < 2; k++)
      for (size_t i = 0; i < lens[k]; i++) {
        h ^= (unsigned char)parts[k][i];
        h *= 0x100000001b3ULL;
      }
    static const char dg[] = "0123456789abcdef";
    for (int i = 15; i >= 0; i--) {
      h2[i] = dg[h & 15];
      h >>= 4;
    }
    h2[16] = 0;
  }
  char branch[48], params[256] = "";
  put_branch(branch, lh, h2, 16);
  if (rr_params.p && rr_params.len < sizeof params) {
    memcpy(params, rr_params.p, rr_params.len);
    params[rr_params.len] = 0;
  }
  px_build bd = {.m = m,
                 .ruri = ruri,
                 .push = push,
                 .branch = branch,
                 .record_route = record_route,
                 .ii = src ? self_index(p, src->listener) : -1,
                 .rr_params = params};
  px_req req, *r = &req;
  rc = write_hop(p, &bd, &d, oi, r);
  if (rc == 0 && r->tlen >= 0)
    rc = send_switched(p->tp, r, &d);
  else if (rc == 0)
    rc = sip_tp_send(p->tp, r->bytes, (size_t)r->len, &d, NULL, NULL);
  req_free(r);
  if (rc == 0)
    p->st.forwarded_stateless++;
  return rc;
}

int sip_proxy_forward_response(sip_proxy *p, sip_msg *res) {
  const sip_via *v;
  if (sip_msg_get_vias(res, &v) < 0 || !v->next ||
      !sip_proxy_via_is_self(&p->self, v))
    return 0;
  int rc = sip_proxy_pop_first(res, SIP_H_VIA);
  if (rc < 0)
    return rc;
  if ((rc = sip_msg_get_vias(res, &v)) < 0)
    return rc;
  sip_src src;
  memset(&src, 0, sizeof src);
  src.transport = sip_tp_transport_from(v->transport);
  if (!src.transport)
    return SIP_EINVAL;
  src.listener = -1;
  size_t n = sip_msg_size(res);
  char stackbuf[8192];
  char *buf = n <= sizeof stackbuf ? stackbuf : malloc(n);
  if (!buf)
    return SIP_ENOMEM;
  rc = sip_msg_write(res, buf, n);
  if (rc >= 0)
    rc = sip_tp_send_response(p->tp, buf, (size_t)rc, v, &src, NULL, NULL);
  if (buf != stackbuf)
    free(buf);
  if (rc < 0)
    return rc;
  p->st.strays_forwarded++;
  return 1;
}
