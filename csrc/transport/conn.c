/* TCP and TLS connections: the connection table, accept and connect,
 * incremental framing (RFC 3261 §18.3) with CRLF keep-alives (RFC 5626
 * §3.5.1), idle / partial-message / connect timeouts, and writes.
 *
 * Framing: the receive buffer is searched for the end of the header section
 * from where the last search stopped, and the parser runs only when it is
 * there; once the parser reports the body incomplete, the message length is
 * known and the parser runs again only when that many bytes are buffered.
 * So a message trickling in byte by byte costs linear time. A complete
 * message is copied into its own rxbuf and parsed there for delivery. */
#include <stdlib.h>
#include <string.h>

#include "tp_int.h"

/* ---- the connection table ---------------------------------------------------
 */

static void link_conn(sip_conn **head, sip_conn *c) {
  c->prev = NULL;
  c->next = *head;
  if (*head)
    (*head)->prev = c;
  *head = c;
}

static void unlink_conn(sip_conn **head, sip_conn *c) {
  if (c->prev)
    c->prev->next = c->next;
  else if (*head == c)
    *head = c->next;
  if (c->next)
    c->next->prev = c->prev;
  c->prev = c->next = NULL;
}

/* ---- lifetime
 * ------------------------------------------------------------------ */

static void conn_timer(uv_timer_t *t);

static sip_conn *conn_new(sip_tp *tp, int transport, int listener) {
  sip_conn *c = calloc(1, sizeof(*c));
  if (!c)
    return NULL;
  c->tp = tp;
  c->id = tp->next_conn_id++;
  c->transport = transport;
  c->listener = listener;
  c->state = SIP__CS_CONNECTING;
  uv_tcp_init(tp->loop, &c->tcp);
  uv_timer_init(tp->loop, &c->timer);
  c->tcp.data = c;
  c->timer.data = c;
  c->handles = 2;
  tp->handles += 2;
  c->opened = c->last_io = c->last_rx = c->last_msg = uv_now(tp->loop);
  c->ws = sip__tp_is_ws(transport);
  link_conn(&tp->conns, c);
  tp->nconns++;
  tp->nconns_by[transport & 7]++;
  tp->st.conn_opened++;
  return c;
}

static void on_conn_handle_closed(uv_handle_t *h) {
  sip_conn *c = h->data;
  sip_tp *tp = c->tp;
  if (--c->handles == 0) {
    sip__tp_tls_conn_free(c);
    sip__tp_ws_free(c);
    free(c->buf);
    free(c->tls_name);
    free(c);
  }
  sip__tp_handle_closed(tp);
}

static void close_handles(sip_conn *c) {
  if (c->draining) {
    unlink_conn(&c->tp->draining, c);
    c->draining = 0;
  }
  if (uv_is_closing((uv_handle_t *)&c->tcp))
    return;
  uv_close((uv_handle_t *)&c->tcp, on_conn_handle_closed);
  uv_close((uv_handle_t *)&c->timer, on_conn_handle_closed);
}

static void fail_pending(sip_conn *c, int err) {
  sip__wreq *w = c->pend_head;
  c->pend_head = c->pend_tail = NULL;
  c->pend_bytes = 0;
  while (w) {
    sip__wreq *next = w->next;
    c->tp->st.tx_errors++;
    if (w->cb)
      w->cb(w->arg, err);
    free(w);
    w = next;
  }
}

static void on_shutdown(uv_shutdown_t *req, int status) {
  (void)status;
  close_handles(req->data);
}

static void on_linger_timeout(uv_timer_t *t) { close_handles(t->data); }

void sip__tp_conn_close_now(sip_conn *c) { close_handles(c); }

void sip__tp_conn_close(sip_conn *c, int err, int graceful) {
  sip_tp *tp = c->tp;
  if (c->state == SIP__CS_CLOSING)
    return;
  /* a WebSocket refusal (an HTTP 4xx) is flushed like a message */
  int was_open = c->state == SIP__CS_OPEN || c->state == SIP__CS_WSHAKE;
  int ws_open = c->ws && c->state == SIP__CS_OPEN;
  c->state = SIP__CS_CLOSING;
  unlink_conn(&tp->conns, c);
  sip__tp_table_remove(tp, c);
  tp->nconns--;
  tp->nconns_by[c->transport & 7]--;
  tp->st.conn_closed++;
  uv_read_stop((uv_stream_t *)&c->tcp);
  uv_timer_stop(&c->timer);
  fail_pending(c, err ? err : UV_ECANCELED);
  if (tp->cfg.on_conn)
    tp->cfg.on_conn(tp->cfg.ud, c->id, SIP_TP_CONN_CLOSE, err,
                    err ? tp->errtext : "");
  if (graceful && was_open && !tp->closing) {
    /* let queued writes (a 400 from on_bad, say) reach the peer first */
    if (ws_open)
      sip__tp_ws_close(c, err ? 1011 : 1000);
    if (c->ssl)
      sip__tp_tls_shutdown(c);
    c->sreq.data = c;
    if (uv_shutdown(&c->sreq, (uv_stream_t *)&c->tcp, on_shutdown) == 0) {
      uv_timer_start(&c->timer, on_linger_timeout, 2000, 0);
      link_conn(&tp->draining, c);
      c->draining = 1;
      return;
    }
  }
  close_handles(c);
}

/* ---- timers ----------------------------------------------------------------
 */

/* More than 3/4 of max_connections taken. */
static int slots_short(const sip_tp *tp) {
  return (uint64_t)tp->nconns * 4 > (uint64_t)tp->cfg.max_connections * 3;
}

/* 0 when no deadline applies. */
static uint64_t deadline(const sip_conn *c) {
  const sip_tp_config *cfg = &c->tp->cfg;
  if (c->state == SIP__CS_CONNECTING || c->state == SIP__CS_HANDSHAKE ||
      c->state == SIP__CS_WSHAKE)
    return cfg->connect_timeout_ms ? c->opened + cfg->connect_timeout_ms : 0;
  if ((c->len > c->start || c->ws_frag) && c->msg_start)
    return cfg->partial_message_timeout_ms
               ? c->msg_start + cfg->partial_message_timeout_ms
               : 0;
  /* slots short: keep-alives alone do not hold a connection open */
  uint64_t since = slots_short(c->tp) ? c->last_msg : c->last_io;
  if (c->ws) { /* pings keep last_io fresh: idle counts what was read */
    if (!slots_short(c->tp))
      since = c->last_rx;
    uint64_t idle = cfg->idle_timeout_ms ? since + cfg->idle_timeout_ms : 0;
    uint64_t ping = sip__tp_ws_ping_due(c);
    return ping && (!idle || ping < idle) ? ping : idle;
  }
  return cfg->idle_timeout_ms ? since + cfg->idle_timeout_ms : 0;
}

static void conn_arm(sip_conn *c) {
  if (c->state == SIP__CS_CLOSING)
    return;
  uint64_t d = deadline(c), now = uv_now(c->tp->loop);
  if (!d) {
    uv_timer_stop(&c->timer);
    return;
  }
  uv_timer_start(&c->timer, conn_timer, d > now ? d - now : 0, 0);
}

static void conn_timer(uv_timer_t *t) {
  sip_conn *c = t->data;
  sip_tp *tp = c->tp;
  uint64_t d = deadline(c);
  uint64_t ping = c->state == SIP__CS_OPEN ? sip__tp_ws_ping_due(c) : 0;
  if (ping && d == ping && uv_now(tp->loop) >= d) {
    sip__tp_ws_ping(c);
  } else if (d && uv_now(tp->loop) >= d) {
    const char *what = c->state == SIP__CS_WSHAKE ? "WebSocket handshake"
                       : c->state != SIP__CS_OPEN ? "connect/handshake"
                       : (c->len > c->start && c->msg_start) ? "partial message"
                                                             : "idle";
    char peer[64];
    sip_tp_addr_str(&c->peer, peer, sizeof(peer));
    sip__tp_seterr(tp, "%s %s: %s timeout", sip_tp_transport_name(c->transport),
                   peer, what);
    tp->st.conn_timeouts++;
    sip__tp_conn_close(c, UV_ETIMEDOUT, 0);
    return;
  }
  conn_arm(c);
}

/* ---- writes -----------------------------------------------------------------
 */

static void conn_written(uv_write_t *req, int status) {
  sip__wreq *w = req->data;
  sip_tp *tp = w->tp;
  if (status == 0) {
    w->conn->last_io = uv_now(tp->loop);
    if (w->msg_len) {
      w->conn->last_msg = w->conn->last_io;
      tp->st.tx_msgs++;
      tp->st.tx_bytes += w->msg_len;
    }
  } else if (w->msg_len) {
    tp->st.tx_errors++;
  }
  if (w->cb)
    w->cb(w->arg, status);
  free(w);
}

sip__wreq *sip__tp_conn_wreq(sip_conn *c, size_t len, uint32_t msg_len,
                             sip_tp_send_cb cb, void *arg) {
  sip__wreq *w = malloc(sizeof(*w) + len);
  if (!w)
    return NULL;
  memset(w, 0, sizeof(*w));
  w->tp = c->tp;
  w->conn = c;
  w->cb = cb;
  w->arg = arg;
  w->msg_len = msg_len;
  w->len = len;
  return w;
}

static sip__wreq *wreq_new(sip_conn *c, const char *p, size_t len,
                           uint32_t msg_len, sip_tp_send_cb cb, void *arg) {
  sip__wreq *w = sip__tp_conn_wreq(c, len, msg_len, cb, arg);
  if (w && len)
    memcpy(w->data, p, len);
  return w;
}

int sip__tp_conn_raw(sip_conn *c, const char *p, size_t len) {
  sip__wreq *w = wreq_new(c, p, len, 0, NULL, NULL);
  if (!w)
    return SIP_ENOMEM;
  return c->ssl ? sip__tp_tls_write(c, w) : sip__tp_conn_write(c, w);
}

int sip__tp_conn_write(sip_conn *c, sip__wreq *w) {
  w->req.w.data = w;
  uv_buf_t b = uv_buf_init(w->data, (unsigned int)w->len);
  int rc = uv_write(&w->req.w, (uv_stream_t *)&c->tcp, &b, 1, conn_written);
  if (rc < 0)
    free(w);
  return rc;
}

/* A user's message on an open connection. Consumes w. Traced here, when it
 * goes to the socket: a message queued for a connection that never opens
 * (a refused certificate) is never shown as sent. */
static int send_now(sip_conn *c, sip__wreq *w) {
  if (c->tp->trace && w->msg_len)
    sip__tp_trace(c->tp, 1, w->data, w->len, c->transport, &c->local, &c->peer);
  if (c->ws && !(w = sip__tp_ws_frame(c, w)))
    return SIP_ENOMEM;
  return c->ssl ? sip__tp_tls_write(c, w) : sip__tp_conn_write(c, w);
}

void sip__tp_conn_opened(sip_conn *c) {
  sip_tp *tp = c->tp;
  if (c->ws && c->state != SIP__CS_WSHAKE) {
    /* TCP/TLS is up; the connection opens when the upgrade is done */
    c->state = SIP__CS_WSHAKE;
    sip__tp_ws_start(c);
    conn_arm(c);
    return;
  }
  c->state = SIP__CS_OPEN;
  c->last_io = uv_now(tp->loop);
  /* queued sends first: on_conn may send, and order must be kept */
  sip__wreq *w = c->pend_head;
  c->pend_head = c->pend_tail = NULL;
  c->pend_bytes = 0;
  while (w) {
    sip__wreq *next = w->next;
    sip_tp_send_cb cb = w->cb;
    void *arg = w->arg;
    int rc =
        c->state == SIP__CS_OPEN ? send_now(c, w) : (free(w), UV_ECANCELED);
    if (rc < 0) {
      tp->st.tx_errors++;
      if (cb)
        cb(arg, rc);
    }
    w = next;
  }
  if (tp->cfg.on_conn && c->state == SIP__CS_OPEN)
    tp->cfg.on_conn(tp->cfg.ud, c->id, SIP_TP_CONN_OPEN, 0, "");
  conn_arm(c);
}

/* ---- reading and framing
 * ------------------------------------------------------ */

int sip__tp_conn_grow(sip_conn *c, size_t want) {
  if (c->start) {
    memmove(c->buf, c->buf + c->start, c->len - c->start);
    c->len -= c->start;
    c->start = 0;
  }
  if (c->cap - c->len >= want)
    return 0;
  size_t max = c->tp->cfg.max_conn_buffer;
  size_t ncap = c->cap ? c->cap * 2 : 16384;
  if (ncap < c->len + want)
    ncap = c->len + want;
  if (ncap > max)
    ncap = max;
  if (ncap <= c->cap)
    return c->cap > c->len ? 0 : SIP_ETOOBIG;
  char *nb = realloc(c->buf, ncap);
  if (!nb)
    return SIP_ENOMEM;
  c->buf = nb;
  c->cap = ncap;
  return 0;
}

/* Is the empty line ending the header section in p[0..n)? Resumes the
 * search at *scan and records how far it got. */
static int head_complete(const char *p, size_t n, size_t *scan) {
  size_t i = *scan >= 2 ? *scan - 2 : 0;
  while (i < n) {
    const char *nl = memchr(p + i, '\n', n - i);
    if (!nl)
      break;
    i = (size_t)(nl - p);
    if (i + 1 < n && p[i + 1] == '\n')
      return 1;
    if (i + 2 < n && p[i + 1] == '\r' && p[i + 2] == '\n')
      return 1;
    i++;
  }
  *scan = n;
  return 0;
}

/* After SIP_ENEEDMORE with the header section complete: the whole length
 * (the parser has validated Content-Length). 0 when unknown. */
static size_t known_length(const sip_msg *m, const char *p) {
  if (!m->head_end.p || !m->has_clen)
    return 0;
  int i = sip_msg_find(m, SIP_H_CONTENT_LENGTH, NULL, 0, 0);
  if (i < 0)
    return 0;
  size_t clen = 0;
  sip_str v = m->hdr[i].value;
  for (size_t k = 0; k < v.len && v.p[k] >= '0' && v.p[k] <= '9'; k++)
    clen = clen * 10 + (size_t)(v.p[k] - '0');
  return (size_t)(m->head_end.p + m->head_end.len - p) + clen;
}

static void conn_src(const sip_conn *c, sip_src *src) {
  memset(src, 0, sizeof(*src));
  src->transport = c->transport;
  src->listener = c->listener;
  src->conn_id = c->id;
  src->local = c->local;
  src->peer = c->peer;
}

void sip__tp_conn_process(sip_conn *c) {
  sip_tp *tp = c->tp;
  if (c->ws) {
    sip__tp_ws_process(c);
    if (c->state != SIP__CS_CLOSING) {
      if (c->start == c->len)
        c->start = c->len = 0;
      conn_arm(c);
    }
    return;
  }
  sip_src src;
  conn_src(c, &src);
  while (c->state == SIP__CS_OPEN && !tp->closing && c->len > c->start) {
    char *p = c->buf + c->start;
    size_t avail = c->len - c->start;
    if (!c->msg_start) {
      /* at a message boundary: CRLF keep-alives (RFC 5626 §3.5.1). A
       * server answers a double CRLF with one CRLF; a client ignores the
       * CRLF pongs it gets. */
      if (p[0] == '\n' || (p[0] == '\r' && avail >= 2 && p[1] != '\n')) {
        c->start++; /* stray line-end byte */
        c->crlf = 0;
        continue;
      }
      if (p[0] == '\r') {
        if (avail < 2)
          break;
        c->start += 2;
        if (c->listener < 0)
          continue;
        if (!c->crlf) {
          c->crlf = 1;
          continue;
        }
        c->crlf = 0;
        tp->st.keepalives++;
        sip__wreq *w = wreq_new(c, "\r\n", 2, 0, NULL, NULL);
        if (w &&
            (c->ssl ? sip__tp_tls_write(c, w) : sip__tp_conn_write(c, w)) < 0)
          sip__tp_conn_close(c, UV_EPIPE, 0);
        continue;
      }
      c->crlf = 0;
      c->msg_start = uv_now(tp->loop);
      c->scan = c->need = 0;
    }
    if (c->need) {
      if (avail < c->need)
        break;
    } else if (!head_complete(p, avail, &c->scan) &&
               avail < tp->cfg.limits.max_size) {
      break; /* (at max_size the parser reports what is wrong) */
    }
    int rc = sip_msg_parse(&tp->scratch, p, avail, SIP_MODE_STREAM);
    if (rc == SIP_ENEEDMORE) {
      c->need = known_length(&tp->scratch, p);
      break;
    }
    if (rc < 0) {
      /* a framing error: the rest of the stream cannot be delimited */
      sip_rxbuf *rx = sip__tp_rxbuf_new(p, avail, &tp->cfg.limits);
      if (rx) {
        int rc2 = sip_msg_parse(&rx->msg, rx->data, rx->len, SIP_MODE_STREAM);
        sip__tp_deliver(tp, rx, rc2 < 0 ? rc2 : rc, &src);
        sip_rxbuf_unref(rx);
      }
      sip__tp_conn_close(c, rc, 1);
      return;
    }
    size_t mlen = (size_t)rc;
    if (tp->flood && sip__tp_flood_check(tp, p, mlen, &src)) {
      c->start += mlen;
      c->msg_start = 0;
      c->scan = c->need = 0;
      continue;
    }
    c->last_msg = uv_now(tp->loop); /* dropped floods are not useful */
    sip_rxbuf *rx = sip__tp_rxbuf_new(p, mlen, &tp->cfg.limits);
    c->start += mlen;
    c->msg_start = 0;
    c->scan = c->need = 0;
    if (!rx) {
      tp->st.dropped++;
      continue;
    }
    rc = sip_msg_parse(&rx->msg, rx->data, rx->len, SIP_MODE_STREAM);
    sip__tp_deliver(tp, rx, rc, &src);
    sip_rxbuf_unref(rx);
  }
  if (c->state == SIP__CS_CLOSING)
    return;
  if (c->start == c->len) {
    c->start = c->len = 0;
    c->msg_start = 0;
  }
  conn_arm(c);
}

static void conn_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  sip_conn *c = h->data;
  (void)suggested;
  if (c->ssl) { /* ciphertext: decrypted into c->buf right away */
    buf->base = c->tp->tls_scratch;
    buf->len = sizeof(c->tp->tls_scratch);
    return;
  }
  if (sip__tp_conn_grow(c, 4096) < 0 || c->cap == c->len) {
    buf->base = NULL; /* libuv reports UV_ENOBUFS */
    buf->len = 0;
    return;
  }
  buf->base = c->buf + c->len;
  buf->len = c->cap - c->len;
}

static void conn_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  sip_conn *c = s->data;
  sip_tp *tp = c->tp;
  if (c->state == SIP__CS_CLOSING || n == 0)
    return;
  if (n < 0) {
    if (n == UV_ENOBUFS) { /* a full buffer without a complete message */
      sip__tp_seterr(tp, "%s: message exceeds the connection buffer",
                     sip_tp_transport_name(c->transport));
      sip__tp_conn_close(c, SIP_ETOOBIG, 0);
    } else {
      if (n != UV_EOF) {
        char peer[64];
        sip_tp_addr_str(&c->peer, peer, sizeof(peer));
        sip__tp_seterr(tp, "%s %s: read: %s",
                       sip_tp_transport_name(c->transport), peer,
                       uv_strerror((int)n));
      }
      sip__tp_conn_close(c, n == UV_EOF ? 0 : (int)n, n == UV_EOF);
    }
    return;
  }
  tp->st.rx_bytes += (uint64_t)n;
  c->last_io = c->last_rx = uv_now(tp->loop);
  if (c->ssl) {
    int rc = sip__tp_tls_input(c, buf->base, (size_t)n);
    if (rc == UV_EOF)
      sip__tp_conn_close(c, 0, 1);
    else if (rc < 0)
      sip__tp_conn_close(c, rc, 0);
    else
      conn_arm(c);
    return;
  }
  c->len += (size_t)n;
  sip__tp_conn_process(c);
}

/* Connected or accepted: start reading, and the TLS handshake. */
static void conn_start(sip_conn *c) {
  int n = (int)sizeof(c->local);
  uv_tcp_getsockname(&c->tcp, (struct sockaddr *)&c->local, &n);
  uv_tcp_nodelay(&c->tcp, 1);
  int rc = uv_read_start((uv_stream_t *)&c->tcp, conn_alloc, conn_read);
  if (rc == 0 && sip__tp_is_tls(c->transport)) {
    c->state = SIP__CS_HANDSHAKE;
    rc = sip__tp_tls_start(c);
    if (rc == 0 && c->state != SIP__CS_CLOSING)
      conn_arm(c);
  } else if (rc == 0) {
    sip__tp_conn_opened(c);
  }
  if (rc < 0)
    sip__tp_conn_close(c, rc, 0);
}

/* ---- accept
 * ------------------------------------------------------------------- */

static void on_refused_closed(uv_handle_t *h) {
  sip_tp *tp = h->data;
  free(h);
  sip__tp_handle_closed(tp);
}

/* Accept and close at once: the peer sees the refusal now rather than
 * waiting in the backlog. */
static void refuse(sip_tp *tp, uv_stream_t *server) {
  uv_tcp_t *t = malloc(sizeof(*t));
  if (!t)
    return;
  uv_tcp_init(tp->loop, t);
  t->data = tp;
  tp->handles++;
  uv_accept(server, (uv_stream_t *)t);
  uv_close((uv_handle_t *)t, on_refused_closed);
}

static int same_ip(const struct sockaddr_storage *a,
                   const struct sockaddr_storage *b) {
  if (a->ss_family != b->ss_family)
    return 0;
  if (a->ss_family == AF_INET)
    return ((const struct sockaddr_in *)a)->sin_addr.s_addr ==
           ((const struct sockaddr_in *)b)->sin_addr.s_addr;
  return a->ss_family == AF_INET6 &&
         memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
                &((const struct sockaddr_in6 *)b)->sin6_addr, 16) == 0;
}

/* The least recently useful open connection: not a kept flow when there
 * is another, then the oldest message (keep-alives do not count), then the
 * oldest. NULL when none is open. */
static sip_conn *eviction_victim(sip_tp *tp) {
  sip_conn *v = NULL;
  for (sip_conn *c = tp->conns; c; c = c->next) {
    if (c->state == SIP__CS_CLOSING)
      continue;
    if (!v || (v->kept && !c->kept) ||
        (v->kept == c->kept && (c->last_msg < v->last_msg ||
                                (c->last_msg == v->last_msg && c->id < v->id))))
      v = c;
  }
  return v;
}

/* The table is full: close the least recently useful connection to make
 * room. 1 done, 0 when there is none (max_connections 0). */
static int evict_one(sip_tp *tp) {
  sip_conn *v = tp->cfg.max_connections ? eviction_victim(tp) : NULL;
  if (!v)
    return 0;
  char a[64];
  sip_tp_addr_str(&v->peer, a, sizeof(a));
  sip__tp_seterr(tp, "%s %s: evicted (max_connections %u reached)",
                 sip_tp_transport_name(v->transport), a,
                 tp->cfg.max_connections);
  tp->st.conn_evicted++;
  sip__tp_conn_close(v, UV_ECONNABORTED, 0);
  return 1;
}

int sip_tp_conn_keep(sip_tp *tp, uint64_t conn_id, int kept) {
  sip_conn *c = sip__tp_conn_find_id(tp, conn_id);
  if (!c)
    return SIP_ENOTFOUND;
  c->kept = kept != 0;
  return 0;
}

int sip_tp_conn_keepalive(sip_tp *tp, const sip_dest *dst) {
  sip_conn *c = dst->conn_id
                    ? sip__tp_conn_find_id(tp, dst->conn_id)
                    : sip__tp_conn_find_addr(tp, dst->transport, &dst->addr);
  if (!c || c->state == SIP__CS_CLOSING)
    return SIP_ENOTFOUND;
  if (c->ws || c->state != SIP__CS_OPEN)
    return SIP_EINVAL;
  int rc = sip__tp_conn_raw(c, "\r\n\r\n", 4);
  if (rc < 0)
    sip__tp_conn_close(c, rc, 0);
  return rc < 0 ? rc : 0;
}

static void on_connection(uv_stream_t *server, int status) {
  sip_listener *l = server->data;
  sip_tp *tp = l->tp;
  if (status < 0 || l->closing || tp->closing)
    return;
  if (tp->nconns >= tp->cfg.max_connections) {
    /* the newcomer takes the slot of the least recently useful connection:
     * otherwise idle connections (kept open with keep-alives) lock every
     * new caller out */
    if (!evict_one(tp)) {
      refuse(tp, server);
      tp->st.conn_refused++;
      sip__tp_seterr(tp, "%s: max_connections (%u) reached",
                     sip_tp_transport_name(l->transport),
                     tp->cfg.max_connections);
      return;
    }
  }
  sip_conn *c = conn_new(tp, l->transport, l->id);
  if (!c)
    return;
  int rc = uv_accept(server, (uv_stream_t *)&c->tcp);
  if (rc < 0) {
    sip__tp_conn_close(c, rc, 0);
    return;
  }
  int n = (int)sizeof(c->peer);
  uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&c->peer, &n);
  if (tp->cfg.max_conn_per_source) {
    uint32_t same = 0;
    for (sip_conn *o = tp->conns; o; o = o->next)
      if (o != c && o->listener >= 0 && same_ip(&o->peer, &c->peer))
        same++;
    if (same >= tp->cfg.max_conn_per_source) {
      char a[64];
      sip_tp_addr_str(&c->peer, a, sizeof(a));
      sip__tp_seterr(tp, "%s %s: max_conn_per_source (%u) reached",
                     sip_tp_transport_name(l->transport), a,
                     tp->cfg.max_conn_per_source);
      tp->st.conn_refused_source++;
      sip__tp_conn_close(c, UV_ECONNREFUSED, 0);
      return;
    }
  }
  if ((rc = sip__tp_table_add(tp, c)) < 0) {
    sip__tp_conn_close(c, rc, 0);
    return;
  }
  conn_start(c);
}

int sip__tp_tcp_listen(sip_tp *tp, sip_listener *l) {
  int rc = uv_tcp_init(tp->loop, &l->u.tcp);
  if (rc < 0)
    return rc;
  l->u.h.data = l;
  rc = uv_tcp_bind(&l->u.tcp, (const struct sockaddr *)&l->addr,
                   l->addr.ss_family == AF_INET6 ? UV_TCP_IPV6ONLY : 0);
  if (rc < 0)
    return rc;
  rc = uv_listen((uv_stream_t *)&l->u.tcp, 128, on_connection);
  if (rc < 0)
    return rc;
  int n = (int)sizeof(l->addr);
  return uv_tcp_getsockname(&l->u.tcp, (struct sockaddr *)&l->addr, &n);
}

/* ---- aliases (RFC 5923)
 * ------------------------------------------------------------ */

/* ";alias" in the top Via of a request says that the sender will accept
 * requests to its sent-by over this connection. RFC 5923 §5 grants that only
 * when the sender authenticated with a certificate naming the sent-by host
 * (TLS with verify_client); over TCP anyone could claim any address, so it
 * is taken only with tcp_accept_aliases (Kamailio makes the same choice).
 * The sent-by must be a numeric address: connections are found by address,
 * and resolving names is not this layer's job. */
void sip__tp_conn_via_alias(sip_tp *tp, const sip_src *src, const sip_via *v) {
  if (!src->conn_id || !sip_params_get(&v->params, "alias"))
    return;
  sip_conn *c = sip__tp_conn_find_id(tp, src->conn_id);
  if (!c || c->state != SIP__CS_OPEN)
    return;
  if (c->transport == SIP_TP_TCP ? !tp->cfg.tcp_accept_aliases
                                 : !sip__tp_tls_peer_names(c, v->host)) {
    tp->st.aliases_refused++;
    return;
  }
  struct sockaddr_storage sa;
  int port = v->has_port
                 ? v->port
                 : (c->transport == SIP_TP_TLS ? SIP_TP_PORT_TLS : SIP_TP_PORT);
  if (sip_tp_addr(&sa, v->host.p, v->host.len, port) < 0 ||
      sip__tp_table_alias(tp, c, &sa) < 0)
    tp->st.aliases_refused++;
}

/* ---- Content-Length on streams (§18.3, §20.14)
 * ------------------------------------------------------ */

/* Over UDP a message may omit Content-Length (the datagram ends it); over
 * a stream it is what frames the message, and a peer that cannot frame one
 * waits for ever (an ACK or BYE relayed from UDP to TCP without it hung the
 * call). So every message written to a stream is checked here, the one
 * place every TCP and TLS send passes: one Content-Length with the body's
 * length goes out unchanged (the usual case: a scan of the header
 * section); a missing, repeated or wrong one is replaced by one correct
 * "Content-Length: N" line at the end of the header section. */

static int lower(int c) { return c >= 'A' && c <= 'Z' ? c + 32 : c; }

/* Is the header line p[0..n) a Content-Length field ("l" compact)? */
static int is_clen_line(const char *p, size_t n) {
  static const char name[] = "content-length";
  size_t k = 0;
  while (k < n && p[k] != ':' && p[k] != ' ' && p[k] != '\t')
    k++;
  size_t c = k;
  while (c < n && (p[c] == ' ' || p[c] == '\t'))
    c++;
  if (c >= n || p[c] != ':')
    return 0;
  if (k == 1)
    return lower((unsigned char)p[0]) == 'l';
  if (k != sizeof(name) - 1)
    return 0;
  for (size_t i = 0; i < k; i++)
    if (lower((unsigned char)p[i]) != name[i])
      return 0;
  return 1;
}

/* The value of a Content-Length line as a number; -1 when not digits. */
static long long clen_value(const char *p, size_t n) {
  const char *e = p + n, *v = memchr(p, ':', n);
  long long x = 0;
  int digits = 0;
  for (v++; v < e && (*v == ' ' || *v == '\t'); v++)
    ;
  for (; v < e && *v >= '0' && *v <= '9' && digits < 18; v++, digits++)
    x = x * 10 + (*v - '0');
  for (; v < e && (*v == ' ' || *v == '\t'); v++)
    ;
  return digits && v == e ? x : -1;
}

/* Walk the header lines of p[0..n): *eoh gets the offset of the empty
 * line. Returns 1 when exactly one Content-Length equals the body's
 * length, 0 when it must be rewritten, SIP_EINVAL when there is no header
 * section end (not a message). With out, writes the rewritten message
 * there (every Content-Length line and its continuations left out, one
 * correct line added) and returns its length. */
static long long clen_scan(const char *p, size_t n, size_t *eoh, char *out) {
  const char *end = p + n, *nl = memchr(p, '\n', n);
  if (!nl)
    return SIP_EINVAL;
  const char *line = nl + 1;
  size_t o = 0;
  if (out) {
    memcpy(out, p, (size_t)(line - p));
    o = (size_t)(line - p);
  }
  int count = 0, skip = 0;
  long long val = -1;
  while (line < end) {
    nl = memchr(line, '\n', (size_t)(end - line));
    if (!nl)
      return SIP_EINVAL;
    size_t len = (size_t)(nl + 1 - line);
    size_t text = len - (len >= 2 && nl[-1] == '\r' ? 2 : 1);
    if (text == 0) { /* the empty line */
      size_t body = (size_t)(end - (nl + 1));
      *eoh = (size_t)(line - p);
      if (!out)
        return count == 1 && val == (long long)body;
      o += (size_t)sprintf(out + o, "Content-Length: %zu\r\n", body);
      memcpy(out + o, line, (size_t)(end - line));
      return (long long)(o + (size_t)(end - line));
    }
    if (line[0] != ' ' && line[0] != '\t') {
      skip = is_clen_line(line, text);
      if (skip && ++count == 1)
        val = clen_value(line, text);
    }
    if (out && !skip) {
      memcpy(out + o, line, len);
      o += len;
    }
    line = nl + 1;
  }
  return SIP_EINVAL;
}

/* Only line ends: a keep-alive (RFC 5626 §3.5.1), not a message. */
static int only_crlf(const char *p, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (p[i] != '\r' && p[i] != '\n')
      return 0;
  return 1;
}

/* A write request for a message to a stream, with a correct
 * Content-Length (see above). NULL and *err on failure. */
static sip__wreq *stream_wreq(sip_conn *c, const char *p, size_t len,
                              sip_tp_send_cb cb, void *arg, int *err) {
  size_t eoh = 0;
  long long ok = only_crlf(p, len) ? 1 : clen_scan(p, len, &eoh, NULL);
  *err = SIP_ENOMEM;
  if (ok < 0) {
    *err = (int)ok;
    sip__tp_seterr(c->tp, "%s send: not a SIP message (no header end)",
                   sip_tp_transport_name(c->transport));
    return NULL;
  }
  if (ok)
    return wreq_new(c, p, len, (uint32_t)len, cb, arg);
  /* at most: the message, a new line, with every old one left out */
  size_t cap = len + 40;
  sip__wreq *w = sip__tp_conn_wreq(c, cap, 0, cb, arg);
  if (!w)
    return NULL;
  long long n = clen_scan(p, len, &eoh, w->data);
  w->len = (size_t)n;
  w->msg_len = (uint32_t)n;
  c->tp->st.clen_fixed++;
  return w;
}

/* ---- connect and send
 * ----------------------------------------------------------- */

static void on_connect(uv_connect_t *req, int status) {
  sip_conn *c = req->data;
  sip_tp *tp = c->tp;
  if (c->state == SIP__CS_CLOSING)
    return;
  if (status < 0) {
    char peer[64];
    sip_tp_addr_str(&c->peer, peer, sizeof(peer));
    sip__tp_seterr(tp, "%s connect %s: %s", sip_tp_transport_name(c->transport),
                   peer, uv_strerror(status));
    sip__tp_conn_close(c, status, 0);
    return;
  }
  conn_start(c);
}

int sip__tp_conn_send(sip_tp *tp, const char *bytes, size_t len,
                      const sip_dest *dst, sip_tp_send_cb cb, void *arg) {
  sip_conn *c = NULL;
  if (dst->conn_id) {
    c = sip__tp_conn_find_id(tp, dst->conn_id);
    if (c && c->transport != dst->transport)
      c = NULL;
  }
  if (!c && dst->addr.ss_family != AF_INET && dst->addr.ss_family != AF_INET6)
    return dst->conn_id ? UV_ENOTCONN : SIP_EINVAL;
  if (!c)
    c = sip__tp_conn_find_addr(tp, dst->transport, &dst->addr);
  if (!c) {
    if (sip__tp_is_tls(dst->transport) && !tp->tls_client)
      return SIP_EINVAL;
    if (tp->nconns >= tp->cfg.max_connections && !evict_one(tp)) {
      tp->st.conn_refused++;
      return UV_EMFILE;
    }
    c = conn_new(tp, dst->transport, -1);
    if (!c)
      return SIP_ENOMEM;
    c->peer = dst->addr;
    int rc = sip__tp_table_add(tp, c);
    if (rc < 0) {
      sip__tp_conn_close(c, rc, 0);
      return rc;
    }
    if (sip__tp_is_tls(dst->transport) && dst->tls_name) {
      size_t n = strlen(dst->tls_name) + 1;
      c->tls_name = malloc(n);
      if (c->tls_name)
        memcpy(c->tls_name, dst->tls_name, n);
    }
    c->creq.data = c;
    rc = uv_tcp_connect(&c->creq, &c->tcp, (const struct sockaddr *)&dst->addr,
                        on_connect);
    if (rc < 0) {
      sip__tp_conn_close(c, rc, 0);
      return rc;
    }
    conn_arm(c);
  }
  size_t queued = uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp);
  if (queued + c->pend_bytes + len > tp->cfg.max_write_queue)
    return UV_ENOBUFS;
  int err;
  sip__wreq *w = stream_wreq(c, bytes, len, cb, arg, &err);
  if (!w) {
    tp->st.tx_errors++;
    return err;
  }
  if (c->state != SIP__CS_OPEN) {
    if (c->pend_tail)
      c->pend_tail->next = w;
    else
      c->pend_head = w;
    c->pend_tail = w;
    c->pend_bytes += w->len;
    return 0;
  }
  int rc = send_now(c, w);
  if (rc < 0)
    tp->st.tx_errors++;
  return rc;
}
