/* The layer: configuration, lifetime, memory accounting, the receive entry
 * point, sending, termination and the accessors every transaction shares. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "txn_int.h"

/* ---- memory
 * ----------------------------------------------------------------- */

void *sip__txn_alloc(sip_txl *txl, size_t n, int txn_part) {
  void *p = malloc(n);
  if (p) {
    txl->st.mem_bytes += n;
    if (txn_part)
      txl->st.txn_bytes += n;
  }
  return p;
}

void sip__txn_free(sip_txl *txl, void *p, size_t n, int txn_part) {
  if (!p)
    return;
  free(p);
  txl->st.mem_bytes -= n;
  if (txn_part)
    txl->st.txn_bytes -= n;
}

int sip__txn_set_out(sip_txn *t, const char *p, size_t n) {
  char *c = NULL;
  if (n) {
    if (n > UINT32_MAX)
      return SIP_EINVAL;
    c = sip__txn_alloc(t->txl, n, 1);
    if (!c)
      return SIP_ENOMEM;
    memcpy(c, p, n);
  }
  sip__txn_take_out(t, c, (uint32_t)n);
  return 0;
}

void sip__txn_take_out(sip_txn *t, char *p, uint32_t n) {
  sip__txn_free(t->txl, t->out, t->out_len, 1);
  t->out = p;
  t->out_len = p ? n : 0;
}

/* ---- configuration and lifetime
 * --------------------------------------------- */

void sip_txl_config_init(sip_txl_config *cfg) {
  memset(cfg, 0, sizeof(*cfg));
  cfg->t1_ms = SIP_TXN_T1_MS;
  cfg->t2_ms = SIP_TXN_T2_MS;
  cfg->t4_ms = SIP_TXN_T4_MS;
  cfg->timer_d_ms = SIP_TXN_TIMER_D_MS;
  cfg->trying_delay_ms = SIP_TXN_TRYING_DELAY_MS;
  cfg->max_transactions = SIP_TXN_MAX_TRANSACTIONS;
}

static void free_layer(sip_txl *txl) {
  void (*cb)(void *) = txl->close_cb;
  void *arg = txl->close_arg;
  sip__txn_table_free(txl, &txl->client);
  sip__txn_table_free(txl, &txl->server);
  sip__txn_table_free(txl, &txl->s2543);
  if (txl->heap)
    sip__txn_free(txl, txl->heap, txl->heap_cap * sizeof(*txl->heap), 0);
  if (txl->scratch) {
    sip_msg_free(txl->scratch);
    sip__txn_free(txl, txl->scratch, sizeof(sip_msg), 0);
  }
  free(txl);
  if (cb)
    cb(arg);
}

static void maybe_free_layer(sip_txl *txl) {
  if (txl->closing && txl->timer_closed && txl->nalloc == 0)
    free_layer(txl);
}

int sip_txl_new(uv_loop_t *loop, sip_tp *tp, const sip_txl_config *cfg,
                sip_txl **out) {
  if (!loop || !tp || !out)
    return SIP_EINVAL;
  sip_txl *txl = calloc(1, sizeof(*txl));
  if (!txl)
    return SIP_ENOMEM;
  txl->loop = loop;
  txl->tp = tp;
  if (cfg)
    txl->cfg = *cfg;
  else
    sip_txl_config_init(&txl->cfg);
  sip_txl_config d;
  sip_txl_config_init(&d);
  if (!txl->cfg.t1_ms)
    txl->cfg.t1_ms = d.t1_ms;
  if (!txl->cfg.t2_ms)
    txl->cfg.t2_ms = d.t2_ms;
  if (!txl->cfg.t4_ms)
    txl->cfg.t4_ms = d.t4_ms;
  if (!txl->cfg.timer_d_ms)
    txl->cfg.timer_d_ms = d.timer_d_ms;
  if (!txl->cfg.max_transactions)
    txl->cfg.max_transactions = d.max_transactions;
  sip__txn_random(&txl->seed, sizeof(txl->seed));
  txl->st.mem_bytes = sizeof(*txl);
  txl->scratch = sip__txn_alloc(txl, sizeof(sip_msg), 0);
  int rc = txl->scratch ? 0 : SIP_ENOMEM;
  if (!rc)
    sip_msg_init(txl->scratch, NULL);
  if (!rc)
    rc = sip__txn_table_init(txl, &txl->client);
  if (!rc)
    rc = sip__txn_table_init(txl, &txl->server);
  if (!rc)
    rc = sip__txn_table_init(txl, &txl->s2543);
  if (!rc)
    rc = sip__txn_timer_init(txl);
  if (rc < 0) {
    txl->close_cb = NULL;
    free_layer(txl);
    return rc;
  }
  *out = txl;
  return 0;
}

static void on_timer_closed(uv_handle_t *h) {
  sip_txl *txl = (sip_txl *)((char *)h - offsetof(sip_txl, timer));
  txl->timer_closed = 1;
  txl->nalloc++; /* draining may free the last transaction: not yet us */
  sip__txn_drain_dead(txl);
  txl->nalloc--;
  maybe_free_layer(txl);
}

static void terminate_table(sip__txn_table *tb) {
  for (uint32_t b = 0; b <= tb->mask; b++)
    while (tb->b[b])
      sip__txn_terminate(tb->b[b]);
}

void sip_txl_close(sip_txl *txl, void (*cb)(void *arg), void *arg) {
  if (!txl || txl->closing)
    return;
  txl->close_cb = cb;
  txl->close_arg = arg;
  terminate_table(&txl->client);
  terminate_table(&txl->server);
  terminate_table(&txl->s2543);
  txl->closing = 1;
  /* every deadline belonged to a live transaction: none is left */
  txl->heap_len = 0;
  uv_timer_stop(&txl->timer);
  txl->armed = 0;
  uv_close((uv_handle_t *)&txl->timer, on_timer_closed);
}

/* ---- transactions
 * ----------------------------------------------------------- */

sip_txn *sip__txn_new(sip_txl *txl, int kind, size_t klen) {
  if (klen > UINT16_MAX)
    return NULL;
  size_t size = sizeof(sip_txn) + klen;
  sip_txn *t = sip__txn_alloc(txl, size, 1);
  if (!t)
    return NULL;
  memset(t, 0, sizeof(*t));
  t->txl = txl;
  t->refs = 1;
  t->kind = (uint8_t)kind;
  t->klen = (uint16_t)klen;
  for (int i = 0; i < 2; i++) {
    t->tn[i].idx = SIP__TN_NONE;
    t->tn[i].which = (uint8_t)i;
  }
  txl->nalloc++;
  txl->st.created[kind]++;
  txl->st.live[kind]++;
  txl->st.live_total++;
  return t;
}

sip__txn_slice sip__txn_put(sip_txn *t, size_t *used, const char *p, size_t n) {
  sip__txn_slice s = {(uint16_t)*used, (uint16_t)n};
  if (n)
    memcpy(t->k + *used, p, n);
  *used += n;
  return s;
}

void sip__txn_drop_alt(sip_txn *t) {
  if (!t->alt)
    return;
  sip__txn_free(t->txl, t->alt, sizeof(sip__txn_alt) + t->alt->len, 1);
  t->alt = NULL;
}

static void txn_free(sip_txn *t) {
  sip_txl *txl = t->txl;
  sip__txn_take_out(t, NULL, 0);
  sip__txn_drop_alt(t);
  if (t->rtag)
    sip__txn_free(txl, t->rtag, strlen(t->rtag) + 1, 1);
  sip__txn_free(txl, t, sizeof(sip_txn) + t->klen, 1);
  txl->st.zombies--;
  txl->nalloc--;
  maybe_free_layer(txl);
}

void sip_txn_ref(sip_txn *t) { t->refs++; }

void sip_txn_unref(sip_txn *t) {
  if (!t || --t->refs > 0)
    return;
  txn_free(t);
}

void sip__txn_terminate(sip_txn *t) {
  if (t->state == SIP_TXN_TERMINATED)
    return;
  sip_txl *txl = t->txl;
  if (sip__txn_is_client(t))
    sip__txn_table_del(&txl->client, t);
  else if (t->flags & SIP__TF_2543)
    sip__txn_table_del(&txl->s2543, t);
  else
    sip__txn_table_del(&txl->server, t);
  sip__txn_timer_stop(t, 0);
  sip__txn_timer_stop(t, 1);
  t->state = SIP_TXN_TERMINATED;
  txl->st.live[t->kind]--;
  txl->st.live_total--;
  txl->st.zombies++;
  /* nothing is re-sent any more: give the memory back now */
  sip__txn_take_out(t, NULL, 0);
  sip__txn_drop_alt(t);
  t->flags |= SIP__TF_DEAD;
  t->hnext = txl->dead;
  txl->dead = t;
  sip__txn_timer_rearm(txl);
}

void sip__txn_event(sip_txn *t, int ev, int err) {
  if (!t->on_event || t->txl->closing)
    return;
  t->refs++;
  t->on_event(t->ev_arg, t, ev, err);
  sip_txn_unref(t);
}

/* ---- sending
 * ---------------------------------------------------------------- */

static void addr_to(const sip__txn_addr *a, struct sockaddr_storage *ss) {
  memset(ss, 0, sizeof(*ss));
  if (a->u.sa.sa_family == AF_INET6)
    memcpy(ss, &a->u.in6, sizeof(a->u.in6));
  else if (a->u.sa.sa_family == AF_INET)
    memcpy(ss, &a->u.in4, sizeof(a->u.in4));
}

static void on_sent(void *arg, int status) {
  sip_txn *t = arg;
  t->sends--;
  if (status < 0 && !t->txl->closing && t->state != SIP_TXN_TERMINATED)
    sip__txn_transport_error(t, status);
  else if (status < 0 && !t->txl->closing)
    t->txl->st.transport_errors++; /* a late one: counted only */
  else if ((t->flags & SIP__TF_END_ON_SENT) && t->sends == 0)
    sip__txn_terminate(t); /* the final went out: Timer J = 0 */
  sip_txn_unref(t);
}

int sip__txn_send(sip_txn *t, const char *p, size_t n) {
  sip_txl *txl = t->txl;
  if (txl->closing)
    return UV_ECANCELED;
  int rc;
  t->refs++;
  if (sip__txn_is_client(t) || (t->flags & SIP__TF_DEST)) {
    /* a client's destination, or a UDP server's resolved one */
    sip_dest d;
    sip_dest_init(&d, t->addr.transport);
    addr_to(&t->addr, &d.addr);
    d.conn_id = t->addr.conn_id;
    d.listener = t->addr.listener;
    d.tls_name = t->tls_name.len ? t->k + t->tls_name.off : NULL;
    rc = sip_tp_send(txl->tp, p, n, &d, on_sent, t);
  } else {
    /* TCP/TLS (or a UDP Via the transport could not resolve): §18.2.2
     * from the request's top Via (as received, with received / rport) and
     * source, re-parsed from the copy, so the connection's liveness is
     * judged at each send, as the transport does */
    char abuf[2048];
    sip_arena a;
    sip_arena_init(&a, abuf, sizeof(abuf));
    sip_via *head = NULL, **tail = &head;
    sip_str v = sip__txn_str(t, t->via);
    rc = sip_via_list_parse(&a, v.p, v.len, &tail);
    if (rc >= 0 && !head)
      rc = SIP_EVIA;
    if (rc >= 0) {
      sip_src src;
      memset(&src, 0, sizeof(src));
      src.transport = t->addr.transport;
      src.listener = t->addr.listener;
      src.conn_id = t->addr.conn_id;
      addr_to(&t->addr, &src.peer);
      rc = sip_tp_send_response(txl->tp, p, n, head, &src, on_sent, t);
    }
    sip_arena_free(&a);
  }
  if (rc < 0)
    t->refs--; /* no callback will come; the caller holds its own */
  else
    t->sends++;
  return rc;
}

/* §18.1.1: the connection for a request moved from UDP to TCP for its
 * size failed before any response (refused: the peer listens on UDP only;
 * reset; timed out ...): the transaction goes on with the request's UDP
 * form, to its UDP destination, as an unreliable one (Timer A / E; Timer B
 * / F start again). 0 when it did, else the code of the UDP send. */
static int fall_back(sip_txn *t) {
  sip_txl *txl = t->txl;
  sip__txn_alt *a = t->alt;
  int rc = sip__txn_set_out(t, a->bytes, a->len);
  if (rc < 0) {
    sip__txn_drop_alt(t);
    return rc;
  }
  t->addr = a->addr;
  sip__txn_drop_alt(t);
  t->flags &= (uint8_t) ~(SIP__TF_RELIABLE | SIP__TF_PENDING_ERR);
  t->err = 0;
  t->interval = txl->cfg.t1_ms;
  rc = sip__txn_timer_in(t, 0, txl->cfg.t1_ms);
  if (rc == 0)
    rc = sip__txn_timer_in(t, 1, 64 * (uint64_t)txl->cfg.t1_ms);
  if (rc == 0)
    rc = sip__txn_send(t, t->out, t->out_len);
  if (rc == 0)
    txl->st.udp_fallbacks++;
  return rc;
}

void sip__txn_transport_error(sip_txn *t, int err) {
  sip_txl *txl = t->txl;
  txl->st.transport_errors++;
  if (t->state == SIP_TXN_TERMINATED)
    return;
  if (t->alt && !txl->closing && !(t->flags & SIP__TF_FINAL) &&
      (t->state == SIP_TXN_CALLING || t->state == SIP_TXN_TRYING)) {
    int rc = fall_back(t);
    if (rc == 0)
      return;
    err = rc;
  }
  t->err = err;
  t->refs++;
  if (sip__txn_is_client(t) || (t->flags & SIP__TF_DEST)) {
    /* a client's destination, or a UDP server's resolved one */
    /* §17.1.4: a 503 for the TU, unless it has its final already */
    int tell = !(t->flags & SIP__TF_FINAL);
    sip__txn_terminate(t);
    if (tell) {
      t->flags |= SIP__TF_FINAL;
      t->status = 503;
      if (t->on_response)
        t->on_response(t->arg, t, 503, NULL, NULL);
    }
  } else {
    sip__txn_terminate(t);
    sip__txn_event(t, SIP_TXN_EV_TRANSPORT, err);
  }
  sip_txn_unref(t);
}

/* ---- receiving
 * -------------------------------------------------------------- */

int sip_txl_receive(sip_txl *txl, sip_msg *msg, sip_rxbuf *rx,
                    const sip_src *src) {
  if (!txl || !msg || !src)
    return SIP_EINVAL;
  if (txl->closing)
    return UV_ECANCELED;
  int rc = msg->is_request ? sip__txn_server_request(txl, msg, rx, src)
                           : sip__txn_client_response(txl, msg, rx, src);
  sip__txn_timer_rearm(txl);
  return rc;
}

int sip_txl_set_server(sip_txl *txl, const char *value) {
  if (!txl)
    return SIP_EINVAL;
  if (!value) {
    txl->server_hdr_len = 0;
    return 0;
  }
  size_t n = strlen(value);
  if (n == 0 || n > SIP_TXL_SERVER_MAX)
    return SIP_EINVAL;
  for (size_t i = 0; i < n; i++)
    if ((unsigned char)value[i] < 0x20 || value[i] == 0x7f)
      return SIP_EINVAL;
  txl->server_hdr_len = (size_t)snprintf(
      txl->server_hdr, sizeof txl->server_hdr, "Server: %s\r\n", value);
  return 0;
}

sip_str sip_txl_server_line(const sip_txl *txl) {
  if (!txl || !txl->server_hdr_len)
    return (sip_str){"", 0};
  return (sip_str){txl->server_hdr, txl->server_hdr_len};
}

void sip_txl_stats(const sip_txl *txl, sip_txl_counters *out) {
  *out = txl->st;
}

/* ---- accessors
 * -------------------------------------------------------------- */

const char *sip_txn_state_name(int state) {
  static const char *const names[] = {"?",          "Calling",   "Trying",
                                      "Proceeding", "Completed", "Confirmed",
                                      "Accepted",   "Terminated"};
  return state >= 1 && state <= SIP_TXN_TERMINATED ? names[state] : "?";
}

const char *sip_txn_kind_name(int kind) {
  static const char *const names[] = {"ICT", "NICT", "IST", "NIST"};
  return kind >= 0 && kind <= 3 ? names[kind] : "?";
}

int sip_txn_kind(const sip_txn *t) { return t->kind; }
int sip_txn_state(const sip_txn *t) { return t->state; }
int sip_txn_status(const sip_txn *t) { return t->status; }
int sip_txn_error(const sip_txn *t) { return t->err; }
sip_str sip_txn_method(const sip_txn *t) { return sip__txn_str(t, t->method); }
sip_str sip_txn_branch(const sip_txn *t) { return sip__txn_str(t, t->branch); }
void sip_txn_set_udata(sip_txn *t, void *udata) { t->udata = udata; }
void *sip_txn_udata(const sip_txn *t) { return t->udata; }

void sip_txn_set_event_cb(sip_txn *t, sip_txn_event_cb cb, void *arg) {
  t->on_event = cb;
  t->ev_arg = arg;
}

void sip_txn_detach(sip_txn *t) {
  t->on_response = NULL;
  t->arg = NULL;
  t->on_event = NULL;
  t->ev_arg = NULL;
}
