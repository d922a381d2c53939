/* Client transactions: INVITE (§17.1.1, RFC 6026 §7.2) and non-INVITE
 * (§17.1.2), response matching (§17.1.3), the ACK for non-2xx finals
 * (§17.1.1.3). */
#include <stdio.h>
#include <string.h>

#include "txn_int.h"

static int str_eq(sip_str a, sip_str b) {
  return a.len == b.len && (a.len == 0 || memcmp(a.p, b.p, a.len) == 0);
}

static int is_method(sip_str m, const char *s) {
  size_t n = strlen(s);
  return m.len == n && memcmp(m.p, s, n) == 0;
}

static int has_cookie(sip_str branch) {
  return branch.p && branch.len >= 7 && memcmp(branch.p, SIP_TXN_MAGIC, 7) == 0;
}

/* §17.1.3: the top Via branch and the CSeq method. */
static sip_txn *find_client(sip_txl *txl, uint32_t h, sip_str branch,
                            sip_str method) {
  for (sip_txn *t = txl->client.b[h & txl->client.mask]; t; t = t->hnext)
    if (t->hash == h && str_eq(sip__txn_str(t, t->branch), branch) &&
        str_eq(sip__txn_str(t, t->method), method))
      return t;
  return NULL;
}

static void deliver(sip_txn *t, int status, sip_msg *msg, sip_rxbuf *rx) {
  if (!t->on_response || t->txl->closing)
    return;
  t->refs++;
  t->on_response(t->arg, t, status, msg, rx);
  sip_txn_unref(t);
}

/* ---- creating
 * --------------------------------------------------------------- */

static int dest_ok(const sip_dest *d) {
  if (d->transport < SIP_TP_UDP || d->transport > SIP_TP_WSS)
    return 0;
  int fam = d->addr.ss_family;
  return fam == AF_INET || fam == AF_INET6;
}

static void addr_from(sip__txn_addr *a, const sip_dest *d) {
  memset(a, 0, sizeof(*a));
  a->transport = (uint8_t)d->transport;
  a->listener = (int16_t)d->listener;
  a->conn_id = d->conn_id;
  if (d->addr.ss_family == AF_INET6)
    memcpy(&a->u.in6, &d->addr, sizeof(a->u.in6));
  else
    memcpy(&a->u.in4, &d->addr, sizeof(a->u.in4));
}

int sip_txn_dest(const sip_txn *t, sip_dest *out) {
  if (!sip__txn_is_client(t))
    return SIP_EINVAL;
  sip_dest_init(out, t->addr.transport);
  if (t->addr.u.sa.sa_family == AF_INET6)
    memcpy(&out->addr, &t->addr.u.in6, sizeof(t->addr.u.in6));
  else if (t->addr.u.sa.sa_family == AF_INET)
    memcpy(&out->addr, &t->addr.u.in4, sizeof(t->addr.u.in4));
  out->conn_id = t->addr.conn_id;
  out->listener = t->addr.listener;
  return 0;
}

static int request(sip_txl *txl, const char *bytes, size_t len,
                   const sip_dest *dest, const char *udp_bytes, size_t udp_len,
                   const sip_dest *udp_dest, sip_txn_response_cb on_response,
                   void *arg, sip_txn **out);

int sip_txn_request(sip_txl *txl, const char *bytes, size_t len,
                    const sip_dest *dest, sip_txn_response_cb on_response,
                    void *arg, sip_txn **out) {
  return request(txl, bytes, len, dest, NULL, 0, NULL, on_response, arg, out);
}

int sip_txn_request_switched(sip_txl *txl, const char *bytes, size_t len,
                             const sip_dest *dest, const char *udp_bytes,
                             size_t udp_len, const sip_dest *udp_dest,
                             sip_txn_response_cb on_response, void *arg,
                             sip_txn **out) {
  if (out)
    *out = NULL;
  if (!udp_bytes || !udp_len || udp_len > UINT32_MAX || !udp_dest ||
      udp_dest->transport != SIP_TP_UDP || !dest_ok(udp_dest))
    return SIP_EINVAL;
  return request(txl, bytes, len, dest, udp_bytes, udp_len, udp_dest,
                 on_response, arg, out);
}

static int request(sip_txl *txl, const char *bytes, size_t len,
                   const sip_dest *dest, const char *udp_bytes, size_t udp_len,
                   const sip_dest *udp_dest, sip_txn_response_cb on_response,
                   void *arg, sip_txn **out) {
  if (out)
    *out = NULL;
  if (!txl || !bytes || !len || len > UINT32_MAX || !dest || !dest_ok(dest))
    return SIP_EINVAL;
  if (txl->closing)
    return UV_ECANCELED;
  if (txl->st.live_total >= txl->cfg.max_transactions) {
    txl->st.rejected++;
    return UV_EAGAIN;
  }
  sip_msg *m = txl->scratch;
  const sip_via *v;
  const sip_cseq *cs;
  int rc = sip_msg_parse(m, bytes, len, SIP_MODE_DATAGRAM);
  if (rc < 0 || !m->is_request || is_method(m->method, "ACK") ||
      sip_msg_get_vias(m, &v) < 0 || !has_cookie(v->branch) ||
      sip_msg_get_cseq(m, &cs) < 0 || !str_eq(cs->method, m->method)) {
    sip_msg_free(m);
    return SIP_EINVAL;
  }
  sip_str branch = v->branch, method = m->method;
  uint32_t h = sip__txn_hash_client(txl->seed, branch, method);
  if (find_client(txl, h, branch, method)) {
    sip_msg_free(m);
    return UV_EEXIST;
  }
  size_t tls = dest->tls_name ? strlen(dest->tls_name) : 0;
  size_t klen = branch.len + method.len + (tls ? tls + 1 : 0);
  int kind = is_method(method, "INVITE") ? SIP_TXN_ICT : SIP_TXN_NICT;
  sip_txn *t = sip__txn_new(txl, kind, klen);
  if (!t) {
    sip_msg_free(m);
    return klen > UINT16_MAX ? SIP_EINVAL : SIP_ENOMEM;
  }
  size_t used = 0;
  t->branch = sip__txn_put(t, &used, branch.p, branch.len);
  t->method = sip__txn_put(t, &used, method.p, method.len);
  if (tls) {
    t->tls_name = sip__txn_put(t, &used, dest->tls_name, tls);
    t->k[used] = '\0';
  }
  sip_msg_free(m); /* nothing points into it any more */
  t->hash = h;
  addr_from(&t->addr, dest);
  if (dest->transport != SIP_TP_UDP)
    t->flags |= SIP__TF_RELIABLE;
  t->on_response = on_response;
  t->arg = arg;
  rc = sip__txn_set_out(t, bytes, len);
  if (rc == 0 && udp_bytes && dest->transport != SIP_TP_UDP) {
    t->alt = sip__txn_alloc(txl, sizeof(sip__txn_alt) + udp_len, 1);
    if (!t->alt) {
      rc = SIP_ENOMEM;
    } else {
      addr_from(&t->alt->addr, udp_dest);
      t->alt->len = (uint32_t)udp_len;
      memcpy(t->alt->bytes, udp_bytes, udp_len);
    }
  }
  if (rc == 0)
    rc = sip__txn_table_add(txl, &txl->client, t);
  if (rc < 0) {
    sip__txn_terminate(t);
    return rc;
  }

  const sip_txl_config *c = &txl->cfg;
  t->state = kind == SIP_TXN_ICT ? SIP_TXN_CALLING : SIP_TXN_TRYING;
  if (!(t->flags & SIP__TF_RELIABLE)) {
    t->interval = c->t1_ms; /* Timer A / E */
    rc = sip__txn_timer_in(t, 0, c->t1_ms);
  }
  if (rc == 0) /* Timer B / F */
    rc = sip__txn_timer_in(t, 1, 64 * (uint64_t)c->t1_ms);
  if (rc < 0) {
    sip__txn_terminate(t);
    return rc;
  }
  rc = sip__txn_send(t, t->out, t->out_len);
  if (rc < 0) {
    /* reported like an asynchronous failure: a 503 from the loop */
    t->err = rc;
    t->flags |= SIP__TF_PENDING_ERR;
    sip__txn_timer_stop(t, 0);
    sip__txn_timer_in(t, 1, 0);
  }
  if (out)
    *out = t;
  return 0;
}

/* ---- the ACK for a non-2xx final (§17.1.1.3)
 * -------------------------------- */

typedef struct wbuf {
  char *p; /* NULL: count only */
  size_t n;
} wbuf;

static void put(wbuf *w, const char *s, size_t n) {
  if (w->p && n)
    memcpy(w->p + w->n, s, n);
  w->n += n;
}

static void put_hdr(wbuf *w, const char *name, sip_str value) {
  put(w, name, strlen(name));
  put(w, ": ", 2);
  put(w, value.p, value.len);
  put(w, "\r\n", 2);
}

static sip_str hvalue(const sip_msg *m, int id) {
  int i = sip_msg_find(m, id, NULL, 0, 0);
  return i < 0 ? SIP_STR_NULL : m->hdr[i].value;
}

/* Request-URI, Call-ID, From, CSeq number of the original request; To of
 * the response (with its tag); the request's top Via only; its Route
 * header fields. */
static void write_ack(wbuf *w, sip_msg *req, sip_str via, uint32_t cseq,
                      sip_str to) {
  put(w, "ACK ", 4);
  put(w, req->ruri.p, req->ruri.len);
  put(w, " SIP/2.0\r\n", 10);
  put_hdr(w, "Via", via);
  for (int i = sip_msg_find(req, SIP_H_ROUTE, NULL, 0, 0); i >= 0;
       i = sip_msg_find(req, SIP_H_ROUTE, NULL, 0, i + 1))
    put_hdr(w, "Route", req->hdr[i].value);
  put(w, "Max-Forwards: 70\r\n", 18);
  put_hdr(w, "From", hvalue(req, SIP_H_FROM));
  put_hdr(w, "To", to);
  put_hdr(w, "Call-ID", hvalue(req, SIP_H_CALL_ID));
  char num[32];
  int n = snprintf(num, sizeof(num), "CSeq: %u ACK\r\n", (unsigned)cseq);
  put(w, num, (size_t)n);
  put(w, "Content-Length: 0\r\n\r\n", 21);
}

/* Replace t->out (the request) by its ACK. 0 or a negative code. */
static int build_ack(sip_txn *t, sip_msg *resp) {
  sip_txl *txl = t->txl;
  sip_msg *m = txl->scratch;
  const sip_via *v;
  const sip_cseq *cs;
  int rc = sip_msg_parse(m, t->out, t->out_len, SIP_MODE_DATAGRAM);
  if (rc >= 0)
    rc = sip_msg_get_vias(m, &v);
  if (rc >= 0)
    rc = sip_msg_get_cseq(m, &cs);
  if (rc >= 0) {
    sip_str to = hvalue(resp, SIP_H_TO);
    wbuf w = {NULL, 0};
    write_ack(&w, m, v->raw, cs->num, to);
    char *buf = sip__txn_alloc(txl, w.n, 1);
    if (!buf) {
      rc = SIP_ENOMEM;
    } else {
      w = (wbuf){buf, 0};
      write_ack(&w, m, v->raw, cs->num, to);
      sip_msg_free(m); /* before t->out, which it points into, goes */
      sip__txn_take_out(t, buf, (uint32_t)w.n);
      return 0;
    }
  }
  sip_msg_free(m);
  return rc;
}

/* ---- responses
 * -------------------------------------------------------------- */

static void ict_response(sip_txn *t, int status, sip_msg *msg, sip_rxbuf *rx) {
  sip_txl *txl = t->txl;
  const sip_txl_config *c = &txl->cfg;
  switch (t->state) {
  case SIP_TXN_CALLING:
  case SIP_TXN_PROCEEDING:
    t->status = (uint16_t)status;
    sip__txn_timer_stop(t, 0); /* no more retransmissions (A) */
    if (status < 200) {
      t->state = SIP_TXN_PROCEEDING;
      sip__txn_timer_stop(t, 1); /* B only runs in Calling */
    } else if (status < 300) {
      /* RFC 6026 §7.2: Accepted, Timer M; the TU sends the ACK */
      t->state = SIP_TXN_ACCEPTED;
      t->flags |= SIP__TF_FINAL;
      sip__txn_take_out(t, NULL, 0);
      sip__txn_timer_in(t, 1, 64 * (uint64_t)c->t1_ms);
    } else {
      t->state = SIP_TXN_COMPLETED;
      t->flags |= SIP__TF_FINAL;
      int rc = 0;
      if (build_ack(t, msg) == 0) {
        txl->st.acks_sent++;
        rc = sip__txn_send(t, t->out, t->out_len);
      } else {
        sip__txn_take_out(t, NULL, 0); /* out of memory: no ACK at all */
      }
      if (rc < 0)
        sip__txn_transport_error(t, rc); /* counted; the TU gets its final */
      else if (t->flags & SIP__TF_RELIABLE)
        sip__txn_terminate(t); /* Timer D = 0 */
      else
        sip__txn_timer_in(t, 1, c->timer_d_ms);
    }
    deliver(t, status, msg, rx);
    return;
  case SIP_TXN_COMPLETED:
    txl->st.absorbed++;
    if (status >= 300 && t->out) { /* the final again: so is the ACK */
      txl->st.retransmissions++;
      int rc = sip__txn_send(t, t->out, t->out_len);
      if (rc < 0)
        sip__txn_transport_error(t, rc);
    }
    return;
  case SIP_TXN_ACCEPTED:
    if (status >= 200 && status < 300) {
      t->status = (uint16_t)status;
      deliver(t, status, msg, rx); /* every 2xx: retransmissions, forks */
    } else {
      txl->st.absorbed++;
    }
    return;
  default:
    return;
  }
}

static void nict_response(sip_txn *t, int status, sip_msg *msg, sip_rxbuf *rx) {
  sip_txl *txl = t->txl;
  if (t->state != SIP_TXN_TRYING && t->state != SIP_TXN_PROCEEDING) {
    txl->st.absorbed++; /* Completed: retransmitted finals */
    return;
  }
  t->status = (uint16_t)status;
  if (status < 200) {
    t->state = SIP_TXN_PROCEEDING; /* Timer E goes on, at T2 */
  } else {
    t->state = SIP_TXN_COMPLETED;
    t->flags |= SIP__TF_FINAL;
    sip__txn_timer_stop(t, 0);
    sip__txn_take_out(t, NULL, 0);
    if (t->flags & SIP__TF_RELIABLE)
      sip__txn_terminate(t); /* Timer K = 0 */
    else
      sip__txn_timer_in(t, 1, txl->cfg.t4_ms); /* Timer K */
  }
  deliver(t, status, msg, rx);
}

int sip__txn_client_response(sip_txl *txl, sip_msg *msg, sip_rxbuf *rx,
                             const sip_src *src) {
  const sip_via *v;
  const sip_cseq *cs;
  sip_txn *t = NULL;
  if (sip_msg_get_vias(msg, &v) == 0 && v->branch.p &&
      sip_msg_get_cseq(msg, &cs) == 0) {
    uint32_t h = sip__txn_hash_client(txl->seed, v->branch, cs->method);
    t = find_client(txl, h, v->branch, cs->method);
  }
  if (!t) {
    txl->st.stray_responses++;
    if (txl->cfg.on_stray_response)
      txl->cfg.on_stray_response(txl->cfg.ud, msg, rx, src);
    return SIP_TXL_RX_STRAY;
  }
  t->refs++;
  if (t->kind == SIP_TXN_ICT)
    ict_response(t, msg->status, msg, rx);
  else
    nict_response(t, msg->status, msg, rx);
  sip_txn_unref(t);
  return SIP_TXL_RX_RESPONSE;
}

/* ---- timers
 * ----------------------------------------------------------------- */

/* Timer B / F: a 408 for the TU (§17.1.1.2, §17.1.2.2). */
static void timeout(sip_txn *t) {
  t->txl->st.timeouts++;
  sip__txn_terminate(t);
  t->flags |= SIP__TF_FINAL;
  t->status = 408;
  deliver(t, 408, NULL, NULL);
}

void sip__txn_client_timer(sip_txn *t, int which) {
  sip_txl *txl = t->txl;
  const sip_txl_config *c = &txl->cfg;
  if (which == 0) { /* Timer A / E */
    if (t->kind == SIP_TXN_ICT) {
      if (t->state != SIP_TXN_CALLING)
        return;
      t->interval *= 2; /* A doubles without a cap */
    } else if (t->state == SIP_TXN_TRYING) {
      t->interval = 2 * t->interval < c->t2_ms ? 2 * t->interval : c->t2_ms;
    } else if (t->state == SIP_TXN_PROCEEDING) {
      t->interval = c->t2_ms;
    } else {
      return;
    }
    txl->st.retransmissions++;
    int rc = sip__txn_send(t, t->out, t->out_len);
    if (rc < 0) {
      sip__txn_transport_error(t, rc);
      return;
    }
    /* anchored at the previous deadline, so a late loop does not stretch
     * the schedule; after a stall longer than the interval, no burst */
    uint64_t now = uv_now(txl->loop);
    uint64_t next = t->tn[0].due + t->interval;
    sip__txn_timer_at(t, 0, next > now ? next : now + t->interval);
    return;
  }
  if (t->flags & SIP__TF_PENDING_ERR) {
    t->flags &= (uint8_t)~SIP__TF_PENDING_ERR;
    sip__txn_transport_error(t, t->err);
    return;
  }
  switch (t->state) {
  case SIP_TXN_CALLING:    /* B */
  case SIP_TXN_TRYING:     /* F */
  case SIP_TXN_PROCEEDING: /* F (an ICT in Proceeding has no timer) */
    timeout(t);
    return;
  default: /* D, M, K */
    sip__txn_terminate(t);
    return;
  }
}

int sip_txn_cancel_sent(sip_txn *t) {
  if (!t || t->kind != SIP_TXN_ICT ||
      (t->state != SIP_TXN_CALLING && t->state != SIP_TXN_PROCEEDING))
    return SIP_EINVAL;
  if (t->state == SIP_TXN_CALLING) /* Timer B is running */
    return 0;
  /* an ICT in Proceeding has no timer of its own: tn[1] is free */
  return sip__txn_timer_in(t, 1, 64 * (uint64_t)t->txl->cfg.t1_ms);
}
