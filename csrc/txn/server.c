/* Server transactions: INVITE (§17.2.1, RFC 6026 §7.1) and non-INVITE
 * (§17.2.2), request matching (§17.2.3, with the RFC 2543 fallback), the
 * automatic 100 Trying, CANCEL lookup (§9.2) and the max_transactions 503. */
#include <stdlib.h>
#include <string.h>

#include "sip_reply.h"
#include "txn_int.h"

static int str_eq(sip_str a, sip_str b) {
  return a.len == b.len && (a.len == 0 || memcmp(a.p, b.p, a.len) == 0);
}

static int str_ieq(sip_str a, sip_str b) {
  if (a.len != b.len)
    return 0;
  for (size_t i = 0; i < a.len; i++) {
    unsigned char x = (unsigned char)a.p[i], y = (unsigned char)b.p[i];
    if (x >= 'A' && x <= 'Z')
      x = (unsigned char)(x + 32);
    if (y >= 'A' && y <= 'Z')
      y = (unsigned char)(y + 32);
    if (x != y)
      return 0;
  }
  return 1;
}

static int is_method(sip_str m, const char *s) {
  size_t n = strlen(s);
  return m.len == n && memcmp(m.p, s, n) == 0;
}

static int has_cookie(sip_str branch) {
  return branch.p && branch.len >= 7 && memcmp(branch.p, SIP_TXN_MAGIC, 7) == 0;
}

static sip_str nonull(sip_str s) { return s.p ? s : SIP_STR_LIT(""); }

/* ---- matching (§17.2.3)
 * ----------------------------------------------------- */

/* What the RFC 2543 rules compare, from a request. */
typedef struct key2543 {
  sip_str ruri, totag, fromtag, callid, via;
  uint32_t cseq;
} key2543;

static int get_key2543(sip_msg *msg, const sip_via *v, const sip_cseq *cs,
                       key2543 *k) {
  const sip_addr *to, *from;
  int rc = sip_msg_get_addr(msg, SIP_H_TO, &to);
  if (rc == 0)
    rc = sip_msg_get_addr(msg, SIP_H_FROM, &from);
  if (rc == 0)
    rc = sip_msg_get_call_id(msg, &k->callid);
  if (rc < 0)
    return rc;
  k->ruri = msg->ruri;
  k->totag = nonull(to->tag);
  k->fromtag = nonull(from->tag);
  k->via = v->raw;
  k->cseq = cs->num;
  return 0;
}

/* branch + sent-by + method (ACK and CANCEL lookups pass "INVITE"). */
static sip_txn *find_server(sip_txl *txl, const sip_via *v, sip_str method,
                            uint32_t *hash) {
  uint16_t port = v->has_port ? v->port : 0;
  uint32_t h =
      sip__txn_hash_server(txl->seed, v->branch, v->host, port, method);
  *hash = h;
  for (sip_txn *t = txl->server.b[h & txl->server.mask]; t; t = t->hnext)
    if (t->hash == h && t->port == port &&
        str_eq(sip__txn_str(t, t->branch), v->branch) &&
        str_ieq(sip__txn_str(t, t->host), v->host) &&
        str_eq(sip__txn_str(t, t->method), method))
      return t;
  return NULL;
}

/* §17.2.3, last paragraphs: Request-URI, To tag, From tag, Call-ID, CSeq
 * and top Via; an ACK's To tag is compared with the tag of the response
 * the transaction sent (ack != 0). */
static sip_txn *find_2543(sip_txl *txl, const key2543 *k, sip_str method,
                          int ack, uint32_t *hash) {
  uint32_t h = sip__txn_hash_2543(txl->seed, k->callid, k->cseq, k->fromtag,
                                  k->ruri, k->via);
  *hash = h;
  for (sip_txn *t = txl->s2543.b[h & txl->s2543.mask]; t; t = t->hnext) {
    if (t->hash != h || t->cseq != k->cseq ||
        !str_eq(sip__txn_str(t, t->method), method) ||
        !str_eq(sip__txn_str(t, t->callid), k->callid) ||
        !str_eq(sip__txn_str(t, t->fromtag), k->fromtag) ||
        !str_eq(sip__txn_str(t, t->ruri), k->ruri) ||
        !str_ieq(sip__txn_str(t, t->via), k->via))
      continue;
    sip_str tag =
        ack ? (sip_str){t->rtag ? t->rtag : "", t->rtag ? strlen(t->rtag) : 0}
            : sip__txn_str(t, t->totag);
    if (str_eq(tag, k->totag))
      return t;
  }
  return NULL;
}

sip_txn *sip_txn_find_cancelled(sip_txl *txl, sip_msg *msg) {
  const sip_via *v;
  const sip_cseq *cs;
  if (!txl || !msg || txl->closing || !msg->is_request ||
      !is_method(msg->method, "CANCEL") || sip_msg_get_vias(msg, &v) < 0 ||
      sip_msg_get_cseq(msg, &cs) < 0)
    return NULL;
  sip_txn *t;
  uint32_t h;
  if (has_cookie(v->branch)) {
    t = find_server(txl, v, SIP_STR_LIT("INVITE"), &h);
  } else {
    key2543 k;
    if (get_key2543(msg, v, cs, &k) < 0)
      return NULL;
    t = find_2543(txl, &k, SIP_STR_LIT("INVITE"), 0, &h);
  }
  return t && t->kind == SIP_TXN_IST ? t : NULL;
}

/* ---- creating
 * --------------------------------------------------------------- */

/* s is copied into k[] unless it lies inside the Via copy already there. */
static sip__txn_slice put_or_ref(sip_txn *t, size_t *used, sip_str via,
                                 sip__txn_slice vs, sip_str s) {
  if (s.p && s.p >= via.p && s.p + s.len <= via.p + via.len)
    return (sip__txn_slice){(uint16_t)(vs.off + (s.p - via.p)),
                            (uint16_t)s.len};
  return sip__txn_put(t, used, s.p, s.len);
}

static size_t outside(sip_str via, sip_str s) {
  return s.p && s.p >= via.p && s.p + s.len <= via.p + via.len ? 0 : s.len;
}

static void set_sockaddr(sip__txn_addr *a, const struct sockaddr_storage *ss) {
  if (ss->ss_family == AF_INET6)
    memcpy(&a->u.in6, ss, sizeof(a->u.in6));
  else if (ss->ss_family == AF_INET)
    memcpy(&a->u.in4, ss, sizeof(a->u.in4));
}

static void set_addr(sip__txn_addr *a, const sip_src *src) {
  a->transport = (uint8_t)src->transport;
  a->listener = (int16_t)src->listener;
  a->conn_id = src->conn_id;
  set_sockaddr(a, &src->peer);
}

/* Build a response to msg into a new accounted buffer. */
static char *make_reply(sip_txl *txl, sip_msg *msg, int status, sip_str tag,
                        size_t *len) {
  sip_str none = SIP_STR_LIT("");
  sip_str server = sip_txl_server_line(txl);
  size_t n = sip_reply_size(msg, status, SIP_STR_NULL, tag, server, none);
  if (!n)
    return NULL;
  char *buf = sip__txn_alloc(txl, n, 1);
  if (!buf)
    return NULL;
  sip_reply_write(msg, status, SIP_STR_NULL, tag, server, none, buf, n);
  *len = n;
  return buf;
}

/* hash: the key's, from the lookup that found nothing (the method is the
 * request's: no ACK gets here) */
static sip_txn *server_new(sip_txl *txl, sip_msg *msg, const sip_via *v,
                           const sip_cseq *cs, const key2543 *k, uint32_t hash,
                           const sip_src *src, int *err) {
  int kind = is_method(msg->method, "INVITE") ? SIP_TXN_IST : SIP_TXN_NIST;
  sip_str via = v->raw, branch = nonull(v->branch);
  size_t klen =
      via.len + outside(via, branch) + msg->method.len + outside(via, v->host);
  if (k)
    klen += k->ruri.len + k->totag.len + k->fromtag.len + k->callid.len;
  sip_txn *t = sip__txn_new(txl, kind, klen);
  if (!t) {
    *err = klen > UINT16_MAX ? SIP_ETOOBIG : SIP_ENOMEM;
    return NULL;
  }
  size_t used = 0;
  t->via = sip__txn_put(t, &used, via.p, via.len);
  t->branch = put_or_ref(t, &used, via, t->via, branch);
  t->host = put_or_ref(t, &used, via, t->via, v->host);
  t->method = sip__txn_put(t, &used, msg->method.p, msg->method.len);
  t->port = v->has_port ? v->port : 0;
  t->cseq = cs->num;
  if (k) {
    t->flags |= SIP__TF_2543;
    t->ruri = sip__txn_put(t, &used, k->ruri.p, k->ruri.len);
    t->totag = sip__txn_put(t, &used, k->totag.p, k->totag.len);
    t->fromtag = sip__txn_put(t, &used, k->fromtag.p, k->fromtag.len);
    t->callid = sip__txn_put(t, &used, k->callid.p, k->callid.len);
  }
  t->hash = hash;
  set_addr(&t->addr, src);
  sip_dest d;
  if (src->transport != SIP_TP_UDP) {
    t->flags |= SIP__TF_RELIABLE;
  } else if (sip_tp_response_dest(txl->tp, v, src, &d) == 0 &&
             (d.addr.ss_family == AF_INET || d.addr.ss_family == AF_INET6)) {
    /* UDP: where responses go does not change (no connection to come and
     * go), so §18.2.2 is worked out once instead of per send */
    t->addr.listener = (int16_t)d.listener;
    set_sockaddr(&t->addr, &d.addr);
    t->flags |= SIP__TF_DEST;
  }
  t->state = kind == SIP_TXN_IST ? SIP_TXN_PROCEEDING : SIP_TXN_TRYING;
  int rc = sip__txn_table_add(txl, k ? &txl->s2543 : &txl->server, t);
  if (rc == 0 && kind == SIP_TXN_IST &&
      txl->cfg.trying_delay_ms != SIP_TXN_NO_TRYING) {
    /* §17.2.1: built now, while the request is at hand, so nothing has to
     * keep the received message; sent by tn[0] unless the TU is first */
    size_t n = 0;
    char *buf = make_reply(txl, msg, 100, SIP_STR_NULL, &n);
    if (buf) {
      sip__txn_take_out(t, buf, (uint32_t)n);
      t->flags |= SIP__TF_TRYING;
      rc = sip__txn_timer_in(t, 0, txl->cfg.trying_delay_ms);
    }
  }
  if (rc < 0) {
    sip__txn_terminate(t);
    *err = rc;
    return NULL;
  }
  return t;
}

/* max_transactions: a 503 straight from the layer (stateless). */
static void reject(sip_txl *txl, sip_msg *msg, const sip_via *v,
                   const sip_src *src) {
  char tag[SIP_TXN_TAG_SIZE];
  size_t tl = sip_txn_new_tag(tag);
  size_t n = 0;
  txl->st.rejected++;
  char *buf = make_reply(txl, msg, 503, (sip_str){tag, tl}, &n);
  if (!buf)
    return;
  sip_tp_send_response(txl->tp, buf, n, v, src, NULL, NULL);
  sip__txn_free(txl, buf, n, 1);
}

/* ---- a request that matched
 * ------------------------------------------------- */

static void resend(sip_txn *t) {
  if (!t->out)
    return;
  t->txl->st.retransmissions++;
  int rc = sip__txn_send(t, t->out, t->retx == 3 ? t->rel_len : t->out_len);
  if (rc < 0)
    sip__txn_transport_error(t, rc);
}

static void send_trying(sip_txn *t) {
  t->flags &= (uint8_t)~SIP__TF_TRYING;
  sip__txn_timer_stop(t, 0);
  t->status = 100;
  t->txl->st.trying_sent++;
  int rc = sip__txn_send(t, t->out, t->out_len);
  if (rc < 0)
    sip__txn_transport_error(t, rc);
}

static int matched(sip_txn *t, int ack, sip_msg *msg, sip_rxbuf *rx,
                   const sip_src *src) {
  sip_txl *txl = t->txl;
  const sip_txl_config *c = &txl->cfg;
  if (ack) {
    if (t->state == SIP_TXN_COMPLETED) {
      /* §17.2.1: Confirmed; Timer I absorbs further ACKs */
      txl->st.absorbed++;
      t->state = SIP_TXN_CONFIRMED;
      sip__txn_timer_stop(t, 0);
      sip__txn_take_out(t, NULL, 0);
      if (t->flags & SIP__TF_RELIABLE)
        sip__txn_terminate(t); /* Timer I = 0 */
      else
        sip__txn_timer_in(t, 1, c->t4_ms);
      return SIP_TXL_RX_ABSORBED;
    }
    if (t->state == SIP_TXN_ACCEPTED) { /* RFC 6026 §7.1: to the TU */
      txl->st.acks_passed++;
      if (c->on_ack) {
        t->refs++;
        c->on_ack(c->ud, t, msg, rx, src);
        sip_txn_unref(t);
      }
      return SIP_TXL_RX_ACK;
    }
    txl->st.absorbed++;
    return SIP_TXL_RX_ABSORBED;
  }
  /* a retransmitted request: re-send the last response, if any */
  txl->st.absorbed++;
  t->refs++;
  switch (t->state) {
  case SIP_TXN_PROCEEDING:
    if (t->flags & SIP__TF_TRYING)
      send_trying(t); /* the client is waiting: no reason to delay it */
    else
      resend(t);
    break;
  case SIP_TXN_COMPLETED: /* the final (IST: as Timer G does) */
    resend(t);
    break;
  default: /* NIST Trying: nothing sent yet; Confirmed, Accepted: absorb */
    break;
  }
  sip_txn_unref(t);
  return SIP_TXL_RX_ABSORBED;
}

int sip__txn_server_request(sip_txl *txl, sip_msg *msg, sip_rxbuf *rx,
                            const sip_src *src) {
  const sip_via *v;
  const sip_cseq *cs;
  int rc = sip_msg_get_vias(msg, &v);
  if (rc < 0)
    return SIP_EVIA;
  rc = sip_msg_get_cseq(msg, &cs);
  if (rc < 0)
    return rc == SIP_ENOTFOUND ? SIP_ECSEQ : rc;
  int ack = is_method(msg->method, "ACK");
  sip_str mkey = ack ? SIP_STR_LIT("INVITE") : msg->method;
  key2543 k;
  int rfc3261 = has_cookie(v->branch);
  sip_txn *t;
  uint32_t h;
  if (rfc3261) {
    t = find_server(txl, v, mkey, &h);
  } else {
    rc = get_key2543(msg, v, cs, &k);
    if (rc < 0)
      return rc;
    t = find_2543(txl, &k, mkey, ack, &h);
  }
  if (t)
    return matched(t, ack, msg, rx, src);
  const sip_txl_config *c = &txl->cfg;
  if (ack) { /* a 2xx's ACK (its own branch) or one for nothing known */
    txl->st.stray_acks++;
    if (c->on_ack)
      c->on_ack(c->ud, NULL, msg, rx, src);
    return SIP_TXL_RX_ACK;
  }
  if (txl->st.live_total >= c->max_transactions) {
    reject(txl, msg, v, src);
    return SIP_TXL_RX_REJECTED;
  }
  t = server_new(txl, msg, v, cs, rfc3261 ? NULL : &k, h, src, &rc);
  if (!t)
    return rc;
  if (c->on_request) {
    t->refs++;
    c->on_request(c->ud, t, msg, rx, src);
    sip_txn_unref(t);
  }
  return SIP_TXL_RX_REQUEST;
}

/* ---- responses from the TU
 * -------------------------------------------------- */

/* RFC 2543 ACKs carry the To tag of the final response: remember it. */
static void keep_rtag(sip_txn *t, const char *bytes, size_t len) {
  sip_txl *txl = t->txl;
  sip_msg *m = txl->scratch;
  const sip_addr *to;
  if (sip_msg_parse(m, bytes, len, SIP_MODE_DATAGRAM) >= 0 &&
      sip_msg_get_addr(m, SIP_H_TO, &to) == 0 && to->tag.len &&
      memchr(to->tag.p, '\0', to->tag.len) == NULL) {
    char *p = sip__txn_alloc(txl, to->tag.len + 1, 1);
    if (p) {
      memcpy(p, to->tag.p, to->tag.len);
      p[to->tag.len] = '\0';
      if (t->rtag)
        sip__txn_free(txl, t->rtag, strlen(t->rtag) + 1, 1);
      t->rtag = p;
    }
  }
  sip_msg_free(m);
}

int sip_txn_reply(sip_txn *t, int status, const char *bytes, size_t len) {
  if (!t || sip__txn_is_client(t) || status < 100 || status > 699 || !bytes ||
      !len || len > UINT32_MAX || t->state == SIP_TXN_TERMINATED)
    return SIP_EINVAL;
  sip_txl *txl = t->txl;
  const sip_txl_config *c = &txl->cfg;
  uint64_t t64 = 64 * (uint64_t)c->t1_ms;
  int rc = 0;
  const char *p = bytes; /* what goes out: the stored copy when kept */
  if (t->kind == SIP_TXN_IST) {
    if (t->state == SIP_TXN_ACCEPTED) {
      /* RFC 6026 §7.1: the TU's 2xx retransmissions (or a proxy's further
       * 2xx) pass through; nothing else does */
      if (status < 200 || status >= 300)
        return SIP_EINVAL;
    } else if (t->state != SIP_TXN_PROCEEDING) {
      return SIP_EINVAL;
    } else if (t->retx == 3 && status < 200) {
      return SIP_EINVAL; /* RFC 3262 §3: the reliable 1xx awaits its PRACK */
    } else {
      if (t->retx == 3) { /* a final ends the reliable 1xx */
        t->retx = 0;
        sip__txn_timer_stop(t, 1);
      }
      t->flags &= (uint8_t)~SIP__TF_TRYING;
      sip__txn_timer_stop(t, 0);
      if (status < 200) {
        rc = sip__txn_set_out(t, bytes, len);
      } else if (status < 300) {
        t->state = SIP_TXN_ACCEPTED;
        sip__txn_take_out(t, NULL, 0);     /* INVITEs are absorbed now */
        rc = sip__txn_timer_in(t, 1, t64); /* Timer L */
      } else {
        t->state = SIP_TXN_COMPLETED;
        rc = sip__txn_set_out(t, bytes, len);
        if (rc == 0 && !(t->flags & SIP__TF_RELIABLE)) {
          t->interval = c->t1_ms; /* Timer G */
          rc = sip__txn_timer_in(t, 0, c->t1_ms);
        }
        if (rc == 0)
          rc = sip__txn_timer_in(t, 1, t64); /* Timer H */
      }
      if (rc == 0 && status >= 200 && (t->flags & SIP__TF_2543))
        keep_rtag(t, bytes, len);
    }
  } else {
    if (t->state == SIP_TXN_COMPLETED)
      return SIP_EINVAL;
    rc = sip__txn_set_out(t, bytes, len);
    if (rc == 0 && status < 200) {
      t->state = SIP_TXN_PROCEEDING;
    } else if (rc == 0) {
      t->state = SIP_TXN_COMPLETED;
      if (!(t->flags & SIP__TF_RELIABLE))
        rc = sip__txn_timer_in(t, 1, t64); /* Timer J */
    }
  }
  if (rc < 0)
    return rc;
  if (t->out)
    p = t->out;
  t->status = (uint16_t)status;
  rc = sip__txn_send(t, p, len);
  if (rc < 0) {
    /* §17.2.4, told through the return value */
    txl->st.transport_errors++;
    t->err = rc;
    sip__txn_terminate(t);
    return rc;
  }
  /* Timer J = 0 on a reliable transport, from when the transport has
   * delivered its verdict: a connection that cannot be (re)established
   * still reaches the TU as SIP_TXN_EV_TRANSPORT (§17.2.4) */
  if (t->kind == SIP_TXN_NIST && status >= 200 && (t->flags & SIP__TF_RELIABLE))
    t->flags |= SIP__TF_END_ON_SENT;
  return 0;
}

int sip_txn_retransmit_2xx(sip_txn *t, const char *bytes, size_t len) {
  if (!t || t->kind != SIP_TXN_IST || t->state != SIP_TXN_ACCEPTED || t->retx ||
      !bytes || !len || len > UINT32_MAX)
    return SIP_EINVAL;
  if (t->flags & SIP__TF_RELIABLE)
    return 0;
  int rc = sip__txn_set_out(t, bytes, len);
  if (rc < 0)
    return rc;
  t->retx = 1;
  t->interval = t->txl->cfg.t1_ms;
  return sip__txn_timer_in(t, 0, t->interval);
}

void sip_txn_ack_2xx(sip_txn *t) {
  if (!t || t->retx != 1)
    return;
  t->retx = 2;
  sip__txn_timer_stop(t, 0);
  sip__txn_set_out(t, NULL, 0);
}

int sip_txn_awaits_ack(const sip_txn *t) { return t && t->retx == 1; }

int sip_txn_retransmit_1xx(sip_txn *t, const char *fail, size_t fail_len) {
  if (!t || t->kind != SIP_TXN_IST || t->state != SIP_TXN_PROCEEDING ||
      t->retx || !t->out || (t->flags & SIP__TF_TRYING) || t->status <= 100 ||
      t->status >= 200 || !fail || fail_len < 12 ||
      memcmp(fail, "SIP/2.0 5", 9) != 0 || fail_len > UINT32_MAX - t->out_len)
    return SIP_EINVAL;
  sip_txl *txl = t->txl;
  uint32_t n = t->out_len;
  char *c = sip__txn_alloc(txl, n + fail_len, 1);
  if (!c)
    return SIP_ENOMEM;
  memcpy(c, t->out, n);
  memcpy(c + n, fail, fail_len);
  sip__txn_take_out(t, c, n + (uint32_t)fail_len);
  t->rel_len = n;
  t->retx = 3;
  t->interval = txl->cfg.t1_ms;
  int rc = 0;
  if (!(t->flags & SIP__TF_RELIABLE))
    rc = sip__txn_timer_in(t, 0, t->interval);
  if (rc == 0)
    rc = sip__txn_timer_in(t, 1, 64 * (uint64_t)txl->cfg.t1_ms);
  if (rc < 0)
    sip_txn_prack(t);
  return rc;
}

int sip_txn_prack(sip_txn *t) {
  if (!t || t->retx != 3)
    return 0;
  t->retx = 0;
  sip__txn_timer_stop(t, 0);
  sip__txn_timer_stop(t, 1);
  /* keep the 1xx alone: re-sent when the INVITE is */
  if (sip__txn_set_out(t, t->out, t->rel_len) < 0)
    sip__txn_take_out(t, NULL, 0);
  return 1;
}

int sip_txn_awaits_prack(const sip_txn *t) { return t && t->retx == 3; }

/* A reliable 1xx again (RFC 3262 §3): the interval doubles, no cap */
static void resend_1xx(sip_txn *t) {
  sip_txl *txl = t->txl;
  txl->st.retx_1xx++;
  int rc = sip__txn_send(t, t->out, t->rel_len);
  if (rc < 0) {
    sip__txn_transport_error(t, rc);
    return;
  }
  t->interval *= 2;
  uint64_t now = uv_now(txl->loop);
  uint64_t next = t->tn[0].due + t->interval;
  sip__txn_timer_at(t, 0, next > now ? next : now + t->interval);
}

/* 64*T1 without PRACK: the stored 5xx ends the INVITE */
static void prack_timeout(sip_txn *t) {
  sip_txl *txl = t->txl;
  txl->st.unpracked_1xx++;
  uint32_t n = t->out_len - t->rel_len;
  char *fail = malloc(n);
  if (!fail) {
    sip_txn_prack(t);
    return;
  }
  memcpy(fail, t->out + t->rel_len, n);
  int status = (fail[8] - '0') * 100 + (fail[9] - '0') * 10 + (fail[10] - '0');
  sip_txn_prack(t);
  if (status < 500 || status > 599)
    status = 500;
  (void)sip_txn_reply(t, status, fail, n);
  free(fail);
}

/* Accepted, re-sending a 2xx: once more, the interval doubling up to T2 */
static void resend_2xx(sip_txn *t) {
  sip_txl *txl = t->txl;
  txl->st.retx_2xx++;
  int rc = sip__txn_send(t, t->out, t->out_len);
  if (rc < 0) {
    sip__txn_transport_error(t, rc);
    return;
  }
  t->interval =
      2 * t->interval < txl->cfg.t2_ms ? 2 * t->interval : txl->cfg.t2_ms;
  uint64_t now = uv_now(txl->loop);
  uint64_t next = t->tn[0].due + t->interval;
  sip__txn_timer_at(t, 0, next > now ? next : now + t->interval);
}

void sip_txn_abandon(sip_txn *t) {
  if (!t)
    return;
  sip_txn_prack(t); /* no one will send the final */
  sip_txn_detach(t);
  if (sip__txn_is_client(t) || t->state == SIP_TXN_TERMINATED ||
      (t->state != SIP_TXN_TRYING && t->state != SIP_TXN_PROCEEDING))
    return;
  if (t->flags & SIP__TF_TRYING) { /* never sent: nothing to re-send */
    t->flags &= (uint8_t)~SIP__TF_TRYING;
    sip__txn_timer_stop(t, 0);
    sip__txn_take_out(t, NULL, 0);
  }
  /* tn[1] is idle in Trying / Proceeding: it ends the transaction */
  sip__txn_timer_in(t, 1, 64 * (uint64_t)t->txl->cfg.t1_ms);
}

/* ---- timers
 * ----------------------------------------------------------------- */

void sip__txn_server_timer(sip_txn *t, int which) {
  sip_txl *txl = t->txl;
  const sip_txl_config *c = &txl->cfg;
  if (which == 0) {
    if (t->state == SIP_TXN_PROCEEDING && (t->flags & SIP__TF_TRYING)) {
      send_trying(t);
    } else if (t->state == SIP_TXN_COMPLETED && t->kind == SIP_TXN_IST) {
      /* Timer G: the final again, interval doubling up to T2 */
      t->interval = 2 * t->interval < c->t2_ms ? 2 * t->interval : c->t2_ms;
      resend(t);
      if (t->state != SIP_TXN_COMPLETED)
        return;
      uint64_t now = uv_now(txl->loop);
      uint64_t next = t->tn[0].due + t->interval;
      sip__txn_timer_at(t, 0, next > now ? next : now + t->interval);
    } else if (t->state == SIP_TXN_ACCEPTED && t->retx == 1 && t->out) {
      resend_2xx(t);
    } else if (t->state == SIP_TXN_PROCEEDING && t->retx == 3) {
      resend_1xx(t);
    }
    return;
  }
  if (t->state == SIP_TXN_PROCEEDING && t->retx == 3) {
    prack_timeout(t);
    return;
  }
  if (t->state == SIP_TXN_ACCEPTED && t->retx == 1)
    txl->st.unacked_2xx++; /* Timer L: no ACK for the 2xx re-sent */
  if (t->kind == SIP_TXN_IST && t->state == SIP_TXN_COMPLETED) {
    /* Timer H: no ACK came */
    txl->st.timeouts++;
    sip__txn_terminate(t);
    sip__txn_event(t, SIP_TXN_EV_TIMEOUT, 0);
    return;
  }
  sip__txn_terminate(t); /* I, J, L; the end of an abandoned one */
}
