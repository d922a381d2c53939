/* The transport manager: configuration, lifetime, listeners, delivery of
 * received messages with the §18.2.1 Via fix-ups, response routing
 * (§18.2.2), statistics and error names. */
#include <arpa/inet.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tp_int.h"

/* ---- small helpers --------------------------------------------------------
 */

const char *sip_tp_transport_name(int t) {
  switch (t) {
  case SIP_TP_UDP:
    return "UDP";
  case SIP_TP_TCP:
    return "TCP";
  case SIP_TP_TLS:
    return "TLS";
  case SIP_TP_WS:
    return "WS";
  case SIP_TP_WSS:
    return "WSS";
  default:
    return "?";
  }
}

int sip_tp_transport_from(sip_str tok) {
  if (sip_str_ieq_cstr(tok, "UDP"))
    return SIP_TP_UDP;
  if (sip_str_ieq_cstr(tok, "TCP"))
    return SIP_TP_TCP;
  if (sip_str_ieq_cstr(tok, "TLS"))
    return SIP_TP_TLS;
  if (sip_str_ieq_cstr(tok, "WS"))
    return SIP_TP_WS;
  if (sip_str_ieq_cstr(tok, "WSS"))
    return SIP_TP_WSS;
  return 0;
}

const char *sip_tp_errname(int err) {
  if (err == 0)
    return "OK";
  if (err > SIP__EBASE && err < SIP__ELIMIT)
    return sip_errname(err);
  return uv_err_name(err);
}

const char *sip_tp_strerror(int err) {
  if (err == 0)
    return "success";
  if (err > SIP__EBASE && err < SIP__ELIMIT)
    return sip_strerror(err);
  return uv_strerror(err);
}

const char *sip_tp_last_error(const sip_tp *tp) { return tp->errtext; }

void sip__tp_seterr(sip_tp *tp, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(tp->errtext, sizeof(tp->errtext), fmt, ap);
  va_end(ap);
}

void sip_dest_init(sip_dest *d, int transport) {
  memset(d, 0, sizeof(*d));
  d->transport = transport;
  d->listener = -1;
}

int sip_tp_addr(struct sockaddr_storage *out, const char *ip, size_t len,
                int port) {
  char tmp[64];
  if (!ip || port < 0 || port > 65535)
    return SIP_EINVAL;
  if (len >= 2 && ip[0] == '[' && ip[len - 1] == ']') {
    ip++;
    len -= 2;
  }
  if (len == 0 || len >= sizeof(tmp))
    return SIP_EINVAL;
  memcpy(tmp, ip, len);
  tmp[len] = '\0';
  memset(out, 0, sizeof(*out));
  if (memchr(tmp, ':', len)) {
    if (uv_ip6_addr(tmp, port, (struct sockaddr_in6 *)out) != 0)
      return SIP_EINVAL;
  } else if (uv_ip4_addr(tmp, port, (struct sockaddr_in *)out) != 0) {
    return SIP_EINVAL;
  }
  return 0;
}

int sip_tp_addr_port(const struct sockaddr_storage *sa) {
  if (sa->ss_family == AF_INET)
    return ntohs(((const struct sockaddr_in *)sa)->sin_port);
  if (sa->ss_family == AF_INET6)
    return ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
  return 0;
}

/* The address without port; IPv4-mapped IPv6 shown as IPv4. */
static void addr_ip(const struct sockaddr_storage *sa, char *out, size_t cap) {
  out[0] = '\0';
  if (sa->ss_family == AF_INET) {
    uv_ip4_name((const struct sockaddr_in *)sa, out, cap);
  } else if (sa->ss_family == AF_INET6) {
    const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
    if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr))
      inet_ntop(AF_INET, &s6->sin6_addr.s6_addr[12], out, (socklen_t)cap);
    else
      uv_ip6_name(s6, out, cap);
  }
}

void sip_tp_addr_str(const struct sockaddr_storage *sa, char *out, size_t cap) {
  char ip[INET6_ADDRSTRLEN];
  if (cap == 0)
    return;
  addr_ip(sa, ip, sizeof(ip));
  if (sa->ss_family == AF_INET6 && strchr(ip, ':'))
    snprintf(out, cap, "[%s]:%d", ip, sip_tp_addr_port(sa));
  else
    snprintf(out, cap, "%s:%d", ip, sip_tp_addr_port(sa));
}

void sip_tp_addr_host(const struct sockaddr_storage *sa, char *out,
                      size_t cap) {
  if (cap == 0)
    return;
  addr_ip(sa, out, cap);
}

socklen_t sip__tp_addr_len(const struct sockaddr_storage *a) {
  return a->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                  : sizeof(struct sockaddr_in);
}

int sip__tp_addr_eq(const struct sockaddr_storage *a,
                    const struct sockaddr_storage *b) {
  if (a->ss_family != b->ss_family)
    return 0;
  if (a->ss_family == AF_INET) {
    const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
    return x->sin_port == y->sin_port &&
           x->sin_addr.s_addr == y->sin_addr.s_addr;
  }
  if (a->ss_family == AF_INET6) {
    const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
    return x->sin6_port == y->sin6_port &&
           memcmp(&x->sin6_addr, &y->sin6_addr, 16) == 0;
  }
  return 0;
}

/* ---- rxbuf
 * -------------------------------------------------------------------- */

sip_rxbuf *sip__tp_rxbuf_new(const char *p, size_t len, const sip_limits *lim) {
  sip_rxbuf *rx = malloc(offsetof(sip_rxbuf, bytes) + len + 1);
  if (!rx)
    return NULL;
  rx->refs = 1;
  rx->len = (uint32_t)len;
  memcpy(rx->bytes, p, len);
  rx->bytes[len] = '\0';
  rx->data = rx->bytes;
  rx->limits = lim ? *lim : sip_default_limits;
  memset(&rx->src, 0, sizeof rx->src);
  sip_msg_init(&rx->msg, &rx->limits);
  return rx;
}

void sip_rxbuf_ref(sip_rxbuf *rx) { rx->refs++; }

void sip_rxbuf_unref(sip_rxbuf *rx) {
  if (!rx || --rx->refs > 0)
    return;
  sip_msg_free(&rx->msg);
  free(rx);
}

/* ---- configuration and lifetime
 * ----------------------------------------------- */

void sip_tp_config_init(sip_tp_config *cfg) {
  memset(cfg, 0, sizeof(*cfg));
  cfg->limits = sip_default_limits;
  cfg->max_connections = 1024;
  cfg->max_conn_buffer = 65535 + 1024;
  cfg->max_write_queue = 4u << 20;
  cfg->idle_timeout_ms = 120000;
  cfg->partial_message_timeout_ms = 10000;
  cfg->connect_timeout_ms = 10000;
  cfg->udp_rcvbuf = 4 << 20;
  cfg->tls_verify_peer = 1;
  cfg->ws_ping_interval_ms = 30000;
}

static char *dup_or_null(const char *s) {
  if (!s)
    return NULL;
  size_t n = strlen(s) + 1;
  char *d = malloc(n);
  if (d)
    memcpy(d, s, n);
  return d;
}

static void tp_free(sip_tp *tp) {
  void (*cb)(void *) = tp->close_cb;
  void *arg = tp->close_arg;
  sip__tp_tls_free(tp);
  sip__tp_table_free(tp);
  sip__tp_flood_free(tp);
  sip_msg_free(&tp->scratch);
  free(tp->cert_file);
  free(tp->key_file);
  free(tp->ca_file);
  free(tp->ws_origins);
  free(tp->http_root);
  free(tp);
  if (cb)
    cb(arg);
}

void sip__tp_handle_closed(sip_tp *tp) {
  if (--tp->handles == 0 && tp->closing)
    tp_free(tp);
}

static void on_anchor_closed(uv_handle_t *h) { sip__tp_handle_closed(h->data); }

/* ---- deferred send results
 * ------------------------------------------------------ */

/* Every result queued so far, in order (the callbacks may queue more: they
 * wait for the next run). */
static void run_done(sip_tp *tp) {
  sip__done *d = tp->done_head;
  tp->done_head = tp->done_tail = NULL;
  while (d) {
    sip__done *next = d->next;
    d->cb(d->arg, d->status);
    free(d);
    d = next;
  }
}

static void on_done_idle(uv_idle_t *h) {
  sip_tp *tp = h->data;
  run_done(tp);
  if (!tp->done_head)
    uv_idle_stop(&tp->done_idle);
}

void sip__tp_defer(sip_tp *tp, sip__done *d) {
  d->next = NULL;
  if (tp->done_tail)
    tp->done_tail->next = d;
  else
    tp->done_head = d;
  tp->done_tail = d;
  if (!tp->closing)
    uv_idle_start(&tp->done_idle, on_done_idle);
}

/* libuv writes to stream sockets with write(2): a peer that closed (a
 * browser tab, a TLS client resetting) would raise SIGPIPE, whose default
 * action ends the process. Ignored here unless the application set its
 * own disposition; the write then fails with EPIPE, which closes the
 * connection. */
static void ignore_sigpipe(void) {
  struct sigaction sa;
  if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL) {
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_IGN;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGPIPE, &sa, NULL);
  }
}

int sip_tp_new(uv_loop_t *loop, const sip_tp_config *cfg, sip_tp **out,
               char *err, size_t errcap) {
  if (errcap)
    err[0] = '\0';
  if (!loop || !out)
    return SIP_EINVAL;
  ignore_sigpipe();
  sip_tp *tp = calloc(1, sizeof(*tp));
  if (!tp)
    return SIP_ENOMEM;
  tp->loop = loop;
  if (cfg)
    tp->cfg = *cfg;
  else
    sip_tp_config_init(&tp->cfg);
  sip_tp_config *c = &tp->cfg;
  if (c->limits.max_size == 0)
    c->limits = sip_default_limits;
  if (c->max_conn_buffer < c->limits.max_size + 1024)
    c->max_conn_buffer = c->limits.max_size + 1024;
  if (c->max_write_queue == 0)
    c->max_write_queue = 4u << 20;
  tp->cert_file = dup_or_null(c->tls_cert_file);
  tp->key_file = dup_or_null(c->tls_key_file);
  tp->ca_file = dup_or_null(c->tls_ca_file);
  tp->ws_origins = dup_or_null(c->ws_origins);
  tp->http_root = dup_or_null(c->http_root);
  c->ws_origins = tp->ws_origins;
  c->http_root = tp->http_root;
  c->tls_cert_file = tp->cert_file;
  c->tls_key_file = tp->key_file;
  c->tls_ca_file = tp->ca_file;
  tp->next_conn_id = 1;
  sip_msg_init(&tp->scratch, &tp->cfg.limits);
  int rc = sip__tp_tls_init(tp, err, errcap);
  if (rc < 0) {
    tp_free(tp);
    return rc;
  }
  uv_timer_init(loop, &tp->anchor);
  tp->anchor.data = tp;
  uv_unref((uv_handle_t *)&tp->anchor);
  uv_idle_init(loop, &tp->done_idle);
  tp->done_idle.data = tp;
  tp->handles = 2;
  *out = tp;
  return 0;
}

static void on_listener_closed(uv_handle_t *h) {
  sip_listener *l = h->data;
  sip_tp *tp = l->tp;
  free(l->rbuf);
  free(l);
  sip__tp_handle_closed(tp);
}

static void resolving_cancel_all(sip_tp *tp);

void sip_tp_close(sip_tp *tp, void (*cb)(void *arg), void *arg) {
  if (tp->closing)
    return;
  tp->closing = 1;
  tp->close_cb = cb;
  tp->close_arg = arg;
  for (int i = 0; i < tp->nls; i++) {
    sip_listener *l = tp->ls[i];
    if (!l)
      continue;
    l->closing = 1;
    tp->ls[i] = NULL;
    if (l->transport == SIP_TP_UDP)
      sip__tp_udp_close(l);
    uv_close(&l->u.h, on_listener_closed);
  }
  resolving_cancel_all(tp);
  while (tp->conns)
    sip__tp_conn_close(tp->conns, UV_ECANCELED, 0);
  while (tp->draining)
    sip__tp_conn_close_now(tp->draining);
  /* datagrams the kernel took: their results, now */
  while (tp->done_head)
    run_done(tp);
  uv_close((uv_handle_t *)&tp->done_idle, on_anchor_closed);
  uv_close((uv_handle_t *)&tp->anchor, on_anchor_closed);
}

void sip_tp_stats(const sip_tp *tp, sip_tp_counters *out) { *out = tp->st; }

uint32_t sip_tp_conn_count(const sip_tp *tp) { return tp->nconns; }

uint32_t sip_tp_conn_count_by(const sip_tp *tp, int transport) {
  return transport > 0 && transport < 8 ? tp->nconns_by[transport] : 0;
}

int sip_tp_conn_alive(const sip_tp *tp, uint64_t id) {
  return sip__tp_conn_find_id(tp, id) != NULL;
}

int sip_tp_conn_close(sip_tp *tp, uint64_t id) {
  sip_conn *c = sip__tp_conn_find_id(tp, id);
  if (!c)
    return SIP_ENOTFOUND;
  sip__tp_conn_close(c, 0, 1);
  return 0;
}

/* ---- listening
 * ---------------------------------------------------------------- */

int sip_tp_parse_spec(const char *spec, int *transport,
                      struct sockaddr_storage *sa) {
  const char *sep = spec ? strchr(spec, ':') : NULL;
  if (!sep || sep - spec < 2 || sep - spec > 3 || strlen(sep) < 2)
    return SIP_EINVAL;
  *transport = sip_tp_transport_from((sip_str){spec, (size_t)(sep - spec)});
  if (!*transport)
    return SIP_EINVAL;
  const char *host = sep + 1, *colon;
  size_t hlen;
  if (*host == '[') {
    const char *rb = strchr(host, ']');
    if (!rb || rb[1] != ':')
      return SIP_EINVAL;
    colon = rb + 1;
  } else {
    colon = strchr(host, ':');
    if (!colon || strchr(colon + 1, ':'))
      return SIP_EINVAL;
  }
  hlen = (size_t)(colon - host);
  const char *p = colon + 1;
  if (!*p || strlen(p) > 5)
    return SIP_EINVAL;
  int port = 0;
  for (; *p; p++) {
    if (*p < '0' || *p > '9')
      return SIP_EINVAL;
    port = port * 10 + (*p - '0');
  }
  return sip_tp_addr(sa, host, hlen, port);
}

int sip_tp_find_listener(const sip_tp *tp, int transport, int family) {
  for (int i = 0; i < tp->nls; i++) {
    const sip_listener *l = tp->ls[i];
    if (l && !l->closing && l->transport == transport &&
        l->addr.ss_family == family)
      return i;
  }
  return -1;
}

int sip_tp_listen(sip_tp *tp, const char *spec) {
  int transport;
  struct sockaddr_storage sa;
  if (tp->closing)
    return UV_ECANCELED;
  int rc = sip_tp_parse_spec(spec, &transport, &sa);
  if (rc < 0) {
    sip__tp_seterr(tp, "listen: malformed spec '%s'", spec ? spec : "(null)");
    return rc;
  }
  if (sip__tp_is_tls(transport) && !tp->tls_server) {
    sip__tp_seterr(tp, "listen: %s: no TLS certificate configured", spec);
    return SIP_EINVAL;
  }
  if (tp->nls >= SIP_TP_MAX_LISTENERS)
    return SIP_ETOOMANY;
  sip_listener *l = calloc(1, sizeof(*l));
  if (!l)
    return SIP_ENOMEM;
  l->tp = tp;
  l->id = tp->nls;
  l->transport = transport;
  l->addr = sa;
  rc = transport == SIP_TP_UDP ? sip__tp_udp_listen(tp, l)
                               : sip__tp_tcp_listen(tp, l);
  if (rc < 0) {
    sip__tp_seterr(tp, "listen: %s: %s", spec, uv_strerror(rc));
    if (l->u.h.data) { /* handle initialised: free in its close callback */
      tp->handles++;
      uv_close(&l->u.h, on_listener_closed);
    } else {
      free(l);
    }
    return rc;
  }
  tp->handles++;
  tp->ls[tp->nls++] = l;
  return l->id;
}

int sip_tp_listener_addr(const sip_tp *tp, int id,
                         struct sockaddr_storage *out) {
  if (id < 0 || id >= tp->nls || !tp->ls[id])
    return SIP_EINVAL;
  *out = tp->ls[id]->addr;
  return tp->ls[id]->transport;
}

int sip_tp_listener_port(const sip_tp *tp, int id) {
  struct sockaddr_storage sa;
  int rc = sip_tp_listener_addr(tp, id, &sa);
  return rc < 0 ? rc : sip_tp_addr_port(&sa);
}

/* ---- delivery and §18.2.1
 * ------------------------------------------------------ */

/* Enough of a request to answer with a 400 (§8.2: the response needs Via,
 * From, To, Call-ID and CSeq); ACK is never answered. */
static int answerable(const sip_msg *m) {
  static const int need[] = {SIP_H_VIA, SIP_H_FROM, SIP_H_TO, SIP_H_CALL_ID,
                             SIP_H_CSEQ};
  if (!m->is_request || sip_str_ieq_cstr(m->method, "ACK"))
    return 0;
  for (size_t i = 0; i < sizeof(need) / sizeof(need[0]); i++)
    if (sip_msg_find(m, need[i], NULL, 0, 0) < 0)
      return 0;
  return 1;
}

/* Does the sent-by host name the packet's source address? */
static int host_is_source(const sip_via *v, const struct sockaddr_storage *sa) {
  if (v->host_type != SIP_HOST_IPV4 && v->host_type != SIP_HOST_IPV6)
    return 0;
  struct sockaddr_storage h;
  if (sip_tp_addr(&h, v->host.p, v->host.len, 0) < 0)
    return 0;
  unsigned char src6[16];
  if (sa->ss_family == AF_INET6) {
    memcpy(src6, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
    if (h.ss_family == AF_INET6)
      return memcmp(src6, &((struct sockaddr_in6 *)&h)->sin6_addr, 16) == 0;
    /* IPv4 sent-by from a v4-mapped source of a dual-stack socket */
    static const unsigned char mapped[12] = {0, 0, 0, 0, 0,    0,
                                             0, 0, 0, 0, 0xff, 0xff};
    return memcmp(src6, mapped, 12) == 0 &&
           memcmp(src6 + 12, &((struct sockaddr_in *)&h)->sin_addr, 4) == 0;
  }
  return h.ss_family == AF_INET &&
         ((struct sockaddr_in *)&h)->sin_addr.s_addr ==
             ((const struct sockaddr_in *)sa)->sin_addr.s_addr;
}

/* Appends p[0..n) to a bounded buffer; returns 0 or SIP_ETOOBIG. */
typedef struct {
  char *p;
  size_t len, cap;
} sbuf;

static int put(sbuf *b, const char *p, size_t n) {
  if (b->len + n > b->cap)
    return SIP_ETOOBIG;
  memcpy(b->p + b->len, p, n);
  b->len += n;
  return 0;
}

/* §18.2.1 and RFC 3581 §4: add received when the sent-by host is not the
 * source address (and always when rport asks for it), fill an empty rport
 * with the source port. Only the first via-parm of the first Via line is
 * rewritten; the rest of the line is kept as written. No edit at all when
 * nothing changes, so the message stays byte-for-byte as received. */
static int fix_top_via(sip_msg *m, const sip_via *v, const sip_src *src) {
  int fill_rport = v->has_rport && v->rport < 0;
  int add_received = fill_rport || !host_is_source(v, &src->peer);
  if (!add_received)
    return 0;
  int idx = sip_msg_find(m, SIP_H_VIA, NULL, 0, 0);
  if (idx < 0)
    return SIP_ENOTFOUND;
  const sip_hdr *h = &m->hdr[idx];
  const char *vs = h->value.p, *ve = vs + h->value.len;
  if (v->raw.p < vs || v->raw.p + v->raw.len > ve)
    return SIP_EINVAL; /* the value was edited: not ours to rewrite */
  char ip[INET6_ADDRSTRLEN], port[8];
  addr_ip(&src->peer, ip, sizeof(ip));
  snprintf(port, sizeof(port), "%d", sip_tp_addr_port(&src->peer));

  size_t cap = h->value.len + sizeof(ip) + 32;
  char stackbuf[1024];
  char *mem = cap <= sizeof(stackbuf) ? stackbuf : malloc(cap);
  if (!mem)
    return SIP_ENOMEM;
  sbuf b = {mem, 0, cap};
  int rc = put(&b, vs, (size_t)(v->raw.p - vs));
  /* sent-protocol and sent-by, without the LWS before the first ';' */
  const char *pe = v->params_raw.p ? v->params_raw.p : v->raw.p + v->raw.len;
  while (pe > v->raw.p && (pe[-1] == ' ' || pe[-1] == '\t'))
    pe--;
  rc = rc ? rc : put(&b, v->raw.p, (size_t)(pe - v->raw.p));
  int received_done = 0;
  for (uint32_t i = 0; rc == 0 && i < v->params.n; i++) {
    const sip_param *pr = &v->params.v[i];
    if (sip_str_ieq_cstr(pr->name, "received")) {
      /* a received the client wrote is replaced (once) by ours */
      if (!received_done) {
        received_done = 1;
        rc = put(&b, ";received=", 10);
        rc = rc ? rc : put(&b, ip, strlen(ip));
      }
      continue;
    }
    rc = put(&b, ";", 1);
    rc = rc ? rc : put(&b, pr->name.p, pr->name.len);
    if (!rc && fill_rport && sip_str_ieq_cstr(pr->name, "rport") &&
        !pr->value.p) {
      rc = put(&b, "=", 1);
      rc = rc ? rc : put(&b, port, strlen(port));
      fill_rport = 0;
      continue;
    }
    if (!rc && pr->value.p) {
      rc = put(&b, "=", 1);
      rc = rc ? rc : put(&b, pr->value.p, pr->value.len);
    }
  }
  if (!rc && !received_done) {
    rc = put(&b, ";received=", 10);
    rc = rc ? rc : put(&b, ip, strlen(ip));
  }
  const char *after = v->raw.p + v->raw.len;
  rc = rc ? rc : put(&b, after, (size_t)(ve - after));
  if (!rc)
    rc = sip_msg_replace_value(m, idx, b.p, b.len);
  if (mem != stackbuf)
    free(mem);
  return rc;
}

static void bad(sip_tp *tp, sip_rxbuf *rx, int rc, const sip_src *src) {
  char text[256];
  if (tp->trace)
    sip__tp_trace(tp, 0, rx->data, rx->len, src->transport, &src->local,
                  &src->peer);
  char peer[64];
  tp->st.parse_errors++;
  sip_msg_strerror(&rx->msg, rc, text, sizeof(text));
  sip_tp_addr_str(&src->peer, peer, sizeof(peer));
  sip__tp_seterr(tp, "%s from %s: %s", sip_tp_transport_name(src->transport),
                 peer, text);
  if (tp->cfg.on_bad && answerable(&rx->msg)) {
    /* the 400 is routed like any response: received/rport help */
    const sip_via *v;
    if (rc != SIP_EVIA && sip_msg_get_vias(&rx->msg, &v) == 0)
      fix_top_via(&rx->msg, v, src);
    tp->st.bad_delivered++;
    tp->cfg.on_bad(tp->cfg.ud, rc, text, rx, src);
  } else {
    tp->st.dropped++;
  }
}

void sip__tp_deliver(sip_tp *tp, sip_rxbuf *rx, int rc, const sip_src *src) {
  rx->src = *src;
  if (rc < 0) {
    bad(tp, rx, rc, src);
    return;
  }
  sip_msg *m = &rx->msg;
  if (tp->trace)
    sip__tp_trace(tp, 0, rx->data, rx->len, src->transport, &src->local,
                  &src->peer);
  if (m->is_request) {
    const sip_via *v;
    rc = sip_msg_get_vias(m, &v);
    if (rc == 0)
      rc = fix_top_via(m, v, src);
    if (rc == 0 && src->conn_id)
      sip__tp_conn_via_alias(tp, src, v);
    if (rc < 0) {
      if (rc == SIP_ENOTFOUND)
        rc = SIP_EVIA;
      m->err_what = "top Via";
      m->err_off = 0;
      bad(tp, rx, rc, src);
      return;
    }
  }
  tp->st.rx_msgs++;
  if (!m->is_request && m->status >= 100 && m->status < 700)
    tp->st.rx_responses[m->status / 100 - 1]++;
  if (tp->cfg.on_message)
    tp->cfg.on_message(tp->cfg.ud, m, rx, src);
}

/* ---- sending and §18.2.2
 * ------------------------------------------------------- */

int sip_tp_send(sip_tp *tp, const char *bytes, size_t len, const sip_dest *dst,
                sip_tp_send_cb cb, void *arg) {
  if (tp->closing)
    return UV_ECANCELED;
  if (!dst || !bytes || len == 0 || len > UINT32_MAX)
    return SIP_EINVAL;
  /* a response: "SIP/2.0 NNN" (the status line is ours, so exact); read
   * before the send, whose callback may free the bytes */
  int cls = len > 10 && memcmp(bytes, "SIP/2.0 ", 8) == 0 && bytes[8] >= '1' &&
                    bytes[8] <= '6'
                ? bytes[8] - '1'
                : -1;
  int rc;
  switch (dst->transport) {
  case SIP_TP_UDP:
    rc = sip__tp_udp_send(tp, bytes, len, dst, cb, arg);
    break;
  case SIP_TP_TCP:
  case SIP_TP_TLS:
  case SIP_TP_WS:
  case SIP_TP_WSS:
    rc = sip__tp_conn_send(tp, bytes, len, dst, cb, arg);
    break;
  default:
    return SIP_EINVAL;
  }
  if (rc >= 0 && cls >= 0)
    tp->st.tx_responses[cls]++;
  return rc;
}

/* A numeric host of a Via into a sockaddr; UV_EAI_NONAME for a name. */
static int via_host(sip_str host, int port, struct sockaddr_storage *out) {
  if (sip_tp_addr(out, host.p, host.len, port) == 0)
    return 0;
  return UV_EAI_NONAME;
}

int sip_tp_request_dest(const sip_uri *u, size_t msg_len, sip_dest *out,
                        char *name_buf, size_t name_cap) {
  if (!u || (u->kind != SIP_URI_SIP && u->kind != SIP_URI_SIPS))
    return SIP_EINVAL;
  int transport = u->kind == SIP_URI_SIPS ? SIP_TP_TLS : SIP_TP_UDP;
  int explicit_transport = u->transport.p != NULL;
  if (explicit_transport) {
    int t = sip_tp_transport_from(u->transport);
    if (!t)
      return SIP_EINVAL;
    /* RFC 3261 §26.2.2: sips with transport=tcp means TLS over TCP; RFC
     * 7118 §7: sips with transport=ws means WSS */
    transport = u->kind != SIP_URI_SIPS ? t
                : t == SIP_TP_WS        ? SIP_TP_WSS
                : t == SIP_TP_TCP       ? SIP_TP_TLS
                                        : t;
    if (u->kind == SIP_URI_SIPS && t == SIP_TP_UDP)
      return SIP_EINVAL; /* no TLS over UDP here (DTLS is not supported) */
  }
  int size_rule = transport == SIP_TP_UDP && !explicit_transport;
  if (size_rule && msg_len > SIP_TP_UDP_MTU_THRESHOLD)
    transport = SIP_TP_TCP;
  sip_str host = u->maddr.p ? u->maddr : u->host;
  int port = u->has_port               ? u->port
             : transport == SIP_TP_TLS ? SIP_TP_PORT_TLS
             : transport == SIP_TP_WS  ? SIP_TP_PORT_WS
             : transport == SIP_TP_WSS ? SIP_TP_PORT_WSS
                                       : SIP_TP_PORT;
  sip_dest_init(out, transport);
  out->size_rule = size_rule;
  if (sip_tp_addr(&out->addr, host.p, host.len, port) < 0)
    return UV_EAI_NONAME;
  sip_str name = u->host;
  if (name.len >= 2 && name.p[0] == '[') { /* the IPv6 address itself */
    name.p++;
    name.len -= 2;
  }
  if (sip__tp_is_tls(transport) && name_buf && name_cap > name.len) {
    memcpy(name_buf, name.p, name.len);
    name_buf[name.len] = 0;
    out->tls_name = name_buf;
  }
  return 0;
}

int sip_tp_request_switch(sip_dest *d, size_t len) {
  if (!d->size_rule || d->transport != SIP_TP_UDP ||
      len <= SIP_TP_UDP_MTU_THRESHOLD)
    return 0;
  d->transport = SIP_TP_TCP;
  d->listener = -1;
  d->conn_id = 0;
  return 1;
}

/* sip_tp_response_dest, and on UV_EAI_NONAME the name to locate: *name,
 * *port (0: the sent-by has none). */
static int response_dest(const sip_tp *tp, const sip_via *v, const sip_src *src,
                         sip_dest *out, sip_str *name, int *port) {
  if (!v || !src)
    return SIP_EINVAL;
  *name = v->host;
  *port = v->has_port ? v->port : 0;
  sip_dest_init(out, src->transport);
  int reliable = src->transport != SIP_TP_UDP;
  int defport = src->transport == SIP_TP_TLS ? SIP_TP_PORT_TLS : SIP_TP_PORT;
  int sport = v->has_port ? v->port : defport;
  if (reliable) {
    /* the request's connection while it lasts, else a new one */
    if (src->conn_id && sip__tp_conn_find_id(tp, src->conn_id)) {
      out->conn_id = src->conn_id;
      out->addr = src->peer;
      return 0;
    }
    /* RFC 7118 §5.2: a WebSocket client cannot be connected to (its Via
     * host is ".invalid"): only its own connection reaches it */
    if (sip__tp_is_ws(src->transport))
      return UV_ENOTCONN;
    if (v->received.p)
      *name = v->received;
    return via_host(*name, sport, &out->addr);
  }
  out->listener = src->listener;
  if (v->maddr.p) { /* §18.2.2: maddr, the sent-by port (A/AAAA only) */
    *name = v->maddr;
    *port = sport;
    return via_host(v->maddr, sport, &out->addr);
  }
  if (v->received.p)
    return via_host(v->received, v->rport >= 0 ? v->rport : sport, &out->addr);
  return via_host(v->host, sport, &out->addr);
}

int sip_tp_response_dest(const sip_tp *tp, const sip_via *v, const sip_src *src,
                         sip_dest *out) {
  sip_str name;
  int port;
  return response_dest(tp, v, src, out, &name, &port);
}

/* ---- responses to a host name (RFC 3263 §5) --------------------------------
 */

struct sip_tp_resolving {
  sip_tp *tp; /* NULL once the manager closed */
  sip_tp_resolving *prev, *next;
  sip_dest d; /* transport, listener */
  sip_tp_send_cb cb;
  void *arg;
  int in_call; /* inside the resolver: the answer waits in status */
  int status;  /* in_call: 1 not yet answered */
  size_t len;
  char bytes[];
};

void sip_tp_set_resolver(sip_tp *tp, sip_tp_resolve_fn fn, void *ud) {
  tp->resolve = fn;
  tp->resolve_ud = ud;
}

static void resolving_unlink(sip_tp_resolving *r) {
  sip_tp *tp = r->tp;
  if (!tp)
    return;
  if (r->prev)
    r->prev->next = r->next;
  else
    tp->resolving = r->next;
  if (r->next)
    r->next->prev = r->prev;
  r->tp = NULL;
}

/* sip_tp_close: responses still waiting for DNS fail now. */
static void resolving_cancel_all(sip_tp *tp) {
  while (tp->resolving) {
    sip_tp_resolving *r = tp->resolving;
    resolving_unlink(r);
    if (r->cb)
      r->cb(r->arg, UV_ECANCELED);
    r->cb = NULL; /* freed by sip_tp_resolved */
  }
}

void sip_tp_resolved(sip_tp_resolving *r, int status,
                     const struct sockaddr_storage *addr,
                     const char *tls_name) {
  sip_tp *tp = r->tp;
  if (tp && status == 0) {
    memcpy(&r->d.addr, addr, sizeof r->d.addr);
    r->d.tls_name = tls_name;
    struct sockaddr_storage la;
    if (r->d.listener >= 0 &&
        (sip_tp_listener_addr(tp, r->d.listener, &la) < 0 ||
         la.ss_family != addr->ss_family))
      r->d.listener = -1; /* a UDP listener of the target's family */
    tp->st.responses_resolved++;
    status = sip_tp_send(tp, r->bytes, r->len, &r->d, r->cb, r->arg);
    if (status == 0)
      r->cb = NULL; /* the send calls it */
  }
  if (r->in_call) {
    r->in_call = 0;
    r->status = status < 0 ? status : 0; /* the caller returns it */
    r->cb = NULL;
    return;
  }
  resolving_unlink(r);
  if (r->cb)
    r->cb(r->arg, status < 0 ? status : UV_ECANCELED);
  free(r);
}

static int send_resolved(sip_tp *tp, const char *bytes, size_t len,
                         const sip_dest *d, sip_str name, int port,
                         sip_tp_send_cb cb, void *arg) {
  char host[256];
  if (!tp->resolve || !name.p || name.len >= sizeof host)
    return UV_EAI_NONAME;
  memcpy(host, name.p, name.len);
  host[name.len] = 0;
  sip_tp_resolving *r = malloc(sizeof(*r) + len);
  if (!r)
    return SIP_ENOMEM;
  memset(r, 0, sizeof(*r));
  r->d = *d;
  r->d.conn_id = 0;
  r->cb = cb;
  r->arg = arg;
  r->len = len;
  memcpy(r->bytes, bytes, len);
  r->tp = tp;
  r->next = tp->resolving;
  if (r->next)
    r->next->prev = r;
  tp->resolving = r;
  r->in_call = 1;
  r->status = 1;
  int rc = tp->resolve(tp->resolve_ud, r, d->transport, host, port);
  if (rc < 0 || r->status != 1) { /* failed, or answered in the call */
    if (rc >= 0)
      rc = r->status;
    resolving_unlink(r);
    free(r);
    return rc;
  }
  r->in_call = 0;
  return 0;
}

int sip_tp_send_response(sip_tp *tp, const char *bytes, size_t len,
                         const sip_via *top_via, const sip_src *src,
                         sip_tp_send_cb cb, void *arg) {
  sip_dest d;
  sip_str name;
  int port;
  int rc = response_dest(tp, top_via, src, &d, &name, &port);
  if (rc == UV_EAI_NONAME)
    return send_resolved(tp, bytes, len, &d, name, port, cb, arg);
  if (rc < 0)
    return rc;
  return sip_tp_send(tp, bytes, len, &d, cb, arg);
}
