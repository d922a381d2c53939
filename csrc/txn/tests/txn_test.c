/* Transaction layer test: a transport manager and a transaction layer on
 * one libuv loop, raw sockets on 127.0.0.1 playing the peer, time
 * compressed (T1 = 10 ms, T2 = 4*T1, T4 = 5*T1; T1 = 40 ms under valgrind).
 * Every wait is bounded. Prints "test_txn: N passed, N failed". */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "sip_reply.h"
#include "sip_txn.h"
#include "test/check.h"
#include "txn/txn_int.h"

#ifndef LUASIP_VECTORS_DIR
#define LUASIP_VECTORS_DIR "spec/vectors"
#endif

static uv_loop_t loop;
static int T1 = 10; /* ms; larger under valgrind */
static int slow;    /* under valgrind or ASan: see check_timers_slow */

static double now_ms(void) { return (double)uv_hrtime() / 1e6; }

static void step(void) {
  uv_run(&loop, UV_RUN_NOWAIT);
  struct timespec ts = {0, 200000};
  nanosleep(&ts, NULL);
}

#define RUN_UNTIL(expr, ms)                                                    \
  do {                                                                         \
    double d_ = now_ms() + (ms);                                               \
    while (!(expr) && now_ms() < d_)                                           \
      step();                                                                  \
  } while (0)

static void run_for(double ms) {
  double d = now_ms() + ms;
  while (now_ms() < d)
    step();
}

/* |got - want| within the tolerance for a wait of want ms */
static int near(double got, double want) {
  double tol = slow ? 25 + want * 0.3 : 5 + want * 0.2;
  return got >= want - tol && got <= want + tol;
}

#define CHECK_NEAR(got, want)                                                  \
  CHECK_MSG(near((got), (want)), "got %.1f ms, want %.1f ms", (double)(got),   \
            (double)(want))

static int contains(const char *p, size_t n, const char *needle) {
  size_t k = strlen(needle);
  for (size_t i = 0; i + k <= n; i++)
    if (memcmp(p + i, needle, k) == 0)
      return 1;
  return 0;
}

/* ---- the element under test: tp + txl, a scripted TU
 * ------------------------------------------------ */

typedef struct env {
  sip_tp *tp;
  sip_txl *txl;
  int udp_id, udp_port, tcp_port;
  /* TU behaviour */
  int reply_status; /* on_request answers this at once (0: not) */
  int load;         /* load mode: answer 200, keep nothing */
  /* what the TU saw */
  int nreq, nack, nack_txn, nstray, ncancel;
  int rxcode[8], rxerr;
  sip_txn *txn;  /* last new request's transaction (referenced) */
  sip_rxbuf *rx; /* and its message (referenced) */
  sip_txn *ack_txn, *cancelled;
  int cancel_reply; /* the CANCEL's own transaction is answered 200 */
  int ev_timeout, ev_transport, ev_term;
  double ev_timeout_at;
  int tp_closed, txl_closed;
} env;

static int tu_reply(sip_txn *t, sip_msg *m, int status, const char *tag) {
  char buf[4096];
  sip_str none = SIP_STR_LIT("");
  sip_str tg = tag ? (sip_str){tag, strlen(tag)} : SIP_STR_NULL;
  int n = sip_reply_write(m, status, SIP_STR_NULL, tg, none, none, buf,
                          sizeof(buf));
  if (n < 0)
    return n;
  return sip_txn_reply(t, status, buf, (size_t)n);
}

static void on_event(void *arg, sip_txn *t, int ev, int err) {
  env *e = arg;
  (void)t;
  (void)err;
  if (ev == SIP_TXN_EV_TIMEOUT) {
    e->ev_timeout++;
    e->ev_timeout_at = now_ms();
  } else if (ev == SIP_TXN_EV_TRANSPORT) {
    e->ev_transport++;
  } else if (ev == SIP_TXN_EV_TERMINATED) {
    e->ev_term++;
  }
}

static void keep(env *e, sip_txn *t, sip_rxbuf *rx) {
  if (e->txn)
    sip_txn_unref(e->txn);
  if (e->rx)
    sip_rxbuf_unref(e->rx);
  e->txn = t;
  e->rx = rx;
  if (t)
    sip_txn_ref(t);
  if (rx)
    sip_rxbuf_ref(rx);
}

static void on_request(void *ud, sip_txn *t, sip_msg *m, sip_rxbuf *rx,
                       const sip_src *src) {
  env *e = ud;
  (void)src;
  e->nreq++;
  if (e->load) {
    tu_reply(t, m, 200, "load");
    return;
  }
  sip_txn_set_event_cb(t, on_event, e);
  if (m->method.len == 6 && memcmp(m->method.p, "CANCEL", 6) == 0) {
    e->ncancel++;
    e->cancelled = sip_txn_find_cancelled(e->txl, m);
    if (e->cancel_reply)
      tu_reply(t, m, 200, "c1");
    return;
  }
  keep(e, t, rx);
  if (e->reply_status)
    tu_reply(t, m, e->reply_status, "tu1");
}

static void on_ack(void *ud, sip_txn *t, sip_msg *m, sip_rxbuf *rx,
                   const sip_src *src) {
  env *e = ud;
  (void)m;
  (void)rx;
  (void)src;
  e->nack++;
  if (t) {
    e->nack_txn++;
    e->ack_txn = t;
  }
}

static void on_stray(void *ud, sip_msg *m, sip_rxbuf *rx, const sip_src *src) {
  env *e = ud;
  (void)m;
  (void)rx;
  (void)src;
  e->nstray++;
}

static void on_message(void *ud, sip_msg *m, sip_rxbuf *rx,
                       const sip_src *src) {
  env *e = ud;
  int rc = sip_txl_receive(e->txl, m, rx, src);
  if (rc >= 0 && rc < 8)
    e->rxcode[rc]++;
  else
    e->rxerr++;
}

static void on_tp_closed(void *arg) { ((env *)arg)->tp_closed = 1; }
static void on_txl_closed(void *arg) { ((env *)arg)->txl_closed = 1; }

static void config(sip_txl_config *c) {
  sip_txl_config_init(c);
  c->t1_ms = (uint32_t)T1;
  c->t2_ms = (uint32_t)(4 * T1);
  c->t4_ms = (uint32_t)(5 * T1);
  c->timer_d_ms = (uint32_t)(10 * T1);
  c->trying_delay_ms = (uint32_t)(3 * T1);
}

static void env_open(env *e, const sip_txl_config *cfg) {
  memset(e, 0, sizeof(*e));
  sip_tp_config tc;
  sip_tp_config_init(&tc);
  tc.ud = e;
  tc.on_message = on_message;
  char err[256];
  CHECK_INT(sip_tp_new(&loop, &tc, &e->tp, err, sizeof(err)), 0);
  e->udp_id = sip_tp_listen(e->tp, "udp:127.0.0.1:0");
  CHECK(e->udp_id >= 0);
  e->udp_port = sip_tp_listener_port(e->tp, e->udp_id);
  int tid = sip_tp_listen(e->tp, "tcp:127.0.0.1:0");
  CHECK(tid >= 0);
  e->tcp_port = sip_tp_listener_port(e->tp, tid);
  sip_txl_config c;
  if (cfg)
    c = *cfg;
  else
    config(&c);
  c.ud = e;
  c.on_request = on_request;
  c.on_ack = on_ack;
  c.on_stray_response = on_stray;
  CHECK_INT(sip_txl_new(&loop, e->tp, &c, &e->txl), 0);
}

static void env_close(env *e) {
  keep(e, NULL, NULL);
  sip_txl_close(e->txl, on_txl_closed, e);
  sip_tp_close(e->tp, on_tp_closed, e);
  RUN_UNTIL(e->tp_closed && e->txl_closed, 3000);
  CHECK(e->tp_closed);
  CHECK(e->txl_closed);
}

static sip_txl_counters stats(env *e) {
  sip_txl_counters st;
  sip_txl_stats(e->txl, &st);
  return st;
}

/* ---- the peer: raw sockets
 * ---------------------------------------------------------- */

static int udp_sock(int *port) {
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
  struct sockaddr_storage sa;
  sip_tp_addr(&sa, "127.0.0.1", 9, 0);
  if (s < 0 || bind(s, (struct sockaddr *)&sa, sizeof(struct sockaddr_in)) < 0)
    return -1;
  socklen_t n = sizeof(sa);
  getsockname(s, (struct sockaddr *)&sa, &n);
  *port = sip_tp_addr_port(&sa);
  return s;
}

static void udp_to(int s, int port, const char *p, size_t n) {
  struct sockaddr_storage sa;
  sip_tp_addr(&sa, "127.0.0.1", 9, port);
  ssize_t w =
      sendto(s, p, n, 0, (struct sockaddr *)&sa, sizeof(struct sockaddr_in));
  CHECK_INT(w, (ssize_t)n);
}

#define MAXPK 64
typedef struct pkt {
  char d[4096];
  int n;
  double t; /* now_ms() when read */
} pkt;
static pkt pk[MAXPK];
static int npk;

/* Run the loop for up to ms, storing datagrams read from s in pk[]; stop
 * early once *count >= target (count may be NULL). Returns packets read. */
static int collect(int s, double ms, const int *count, int target) {
  npk = 0;
  double d = now_ms() + ms;
  for (;;) {
    for (;;) {
      char buf[4096];
      ssize_t n = recv(s, buf, sizeof(buf) - 1, 0);
      if (n < 0)
        break;
      if (npk < MAXPK) {
        memcpy(pk[npk].d, buf, (size_t)n);
        pk[npk].d[n] = '\0';
        pk[npk].n = (int)n;
        pk[npk].t = now_ms();
      }
      npk++;
    }
    if ((count && *count >= target) || now_ms() >= d)
      break;
    step();
  }
  return npk;
}

/* One datagram within ms (running the loop), or -1. */
static int recv_one(int s, char *buf, size_t cap, double ms) {
  double d = now_ms() + ms;
  for (;;) {
    ssize_t n = recv(s, buf, cap - 1, 0);
    if (n >= 0) {
      buf[n] = '\0';
      return (int)n;
    }
    if (now_ms() >= d)
      return -1;
    step();
  }
}

static int starts(const char *p, const char *prefix) {
  return strncmp(p, prefix, strlen(prefix)) == 0;
}

static sip_msg peer_msg;

/* A response the peer builds to a request it received (sip_reply_write). */
static int peer_reply(const char *req, int len, int status, const char *tag,
                      char *out, size_t cap) {
  sip_msg_free(&peer_msg);
  sip_msg_init(&peer_msg, NULL);
  if (sip_msg_parse(&peer_msg, req, (size_t)len, SIP_MODE_DATAGRAM) < 0)
    return -1;
  sip_str none = SIP_STR_LIT("");
  sip_str tg = tag ? (sip_str){tag, strlen(tag)} : SIP_STR_NULL;
  int n = sip_reply_write(&peer_msg, status, SIP_STR_NULL, tg, none, none, out,
                          cap);
  sip_msg_free(&peer_msg);
  return n;
}

/* A request from the peer to the layer. */
static int mkreq(char *out, size_t cap, const char *method, const char *tp,
                 int via_port, const char *branch, const char *callid, int cseq,
                 const char *cseq_method, const char *to_tag) {
  return snprintf(out, cap,
                  "%s sip:bob@127.0.0.1 SIP/2.0\r\n"
                  "Via: SIP/2.0/%s 127.0.0.1:%d;branch=%s\r\n"
                  "Max-Forwards: 70\r\n"
                  "From: <sip:alice@a.example>;tag=fa\r\n"
                  "To: <sip:bob@b.example>%s%s\r\n"
                  "Call-ID: %s\r\n"
                  "CSeq: %d %s\r\n"
                  "Content-Length: 0\r\n\r\n",
                  method, tp, via_port, branch, to_tag ? ";tag=" : "",
                  to_tag ? to_tag : "", callid, cseq, cseq_method);
}

/* A request of the TU (client side): two Via lines (the top one ours),
 * two Route lines. */
static int mkcreq(char *out, size_t cap, const char *method, int lport,
                  const char *branch, const char *callid) {
  return snprintf(out, cap,
                  "%s sip:carol@127.0.0.1;transport=udp SIP/2.0\r\n"
                  "Via: SIP/2.0/UDP 127.0.0.1:%d;branch=%s\r\n"
                  "Via: SIP/2.0/UDP 192.0.2.9:5060;branch=z9hG4bKdownstream\r\n"
                  "Route: <sip:p1.example;lr>\r\n"
                  "Max-Forwards: 69\r\n"
                  "From: \"Alice\" <sip:alice@a.example>;tag=ft1\r\n"
                  "To: <sip:carol@c.example>\r\n"
                  "Route: <sip:p2.example;lr>\r\n"
                  "Call-ID: %s\r\n"
                  "CSeq: 7 %s\r\n"
                  "Contact: <sip:alice@127.0.0.1:%d>\r\n"
                  "Content-Length: 0\r\n\r\n",
                  method, lport, branch, callid, method, lport);
}

static void udp_dest(sip_dest *d, int port) {
  sip_dest_init(d, SIP_TP_UDP);
  sip_tp_addr(&d->addr, "127.0.0.1", 9, port);
}

/* What a client transaction's callback saw. */
typedef struct cres {
  int n;
  int status[32];
  int withmsg[32];
  int state[32];
  double t[32];
} cres;

static void on_resp(void *arg, sip_txn *t, int status, sip_msg *m,
                    sip_rxbuf *rx) {
  cres *c = arg;
  if (c->n < 32) {
    c->status[c->n] = status;
    c->withmsg[c->n] = m != NULL && rx != NULL && &rx->msg == m;
    c->state[c->n] = sip_txn_state(t);
    c->t[c->n] = now_ms();
  }
  c->n++;
}

/* ---- tests: basics
 * ------------------------------------------------------------------ */

static void test_names(void) {
  char b1[SIP_TXN_BRANCH_SIZE], b2[SIP_TXN_BRANCH_SIZE];
  CHECK_INT(sip_txn_new_branch(b1), 29);
  CHECK_INT(strlen(b1), 29);
  CHECK(starts(b1, "z9hG4bK"));
  int distinct = 1, clean = 1;
  for (int i = 0; i < 10000; i++) {
    sip_txn_new_branch(b2);
    if (strcmp(b1, b2) == 0)
      distinct = 0;
    for (int j = 7; j < 29; j++)
      if (!strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                  "0123456789-_",
                  b2[j]))
        clean = 0;
  }
  CHECK(distinct);
  CHECK(clean);
  char tag[SIP_TXN_TAG_SIZE];
  CHECK_INT(sip_txn_new_tag(tag), 16);
  CHECK_INT(strlen(tag), 16);
  CHECK(strcmp(sip_txn_state_name(SIP_TXN_ACCEPTED), "Accepted") == 0);
  CHECK(strcmp(sip_txn_state_name(99), "?") == 0);
  CHECK(strcmp(sip_txn_kind_name(SIP_TXN_NIST), "NIST") == 0);
  sip_txl_config c;
  sip_txl_config_init(&c);
  CHECK_INT(c.t1_ms, 500);
  CHECK_INT(c.t2_ms, 4000);
  CHECK_INT(c.t4_ms, 5000);
  CHECK_INT(c.trying_delay_ms, 200);
}

static void test_request_errors(void) {
  env e;
  env_open(&e, NULL);
  sip_dest d;
  udp_dest(&d, 9);
  char req[2048];
  char br[SIP_TXN_BRANCH_SIZE];
  sip_txn_new_branch(br);
  sip_txn *t = (sip_txn *)1;
  int n = mkcreq(req, sizeof(req), "ACK", e.udp_port, br, "err1@x");
  CHECK_INT(sip_txn_request(e.txl, req, (size_t)n, &d, NULL, NULL, &t),
            SIP_EINVAL);
  CHECK(t == NULL);
  n = mkcreq(req, sizeof(req), "OPTIONS", e.udp_port, "nocookie1", "err2@x");
  CHECK_INT(sip_txn_request(e.txl, req, (size_t)n, &d, NULL, NULL, &t),
            SIP_EINVAL);
  CHECK_INT(sip_txn_request(e.txl, "garbage\r\n\r\n", 11, &d, NULL, NULL, &t),
            SIP_EINVAL);
  n = mkcreq(req, sizeof(req), "OPTIONS", e.udp_port, br, "err3@x");
  CHECK_INT(sip_txn_request(e.txl, req, (size_t)n, &d, NULL, NULL, &t), 0);
  CHECK(t != NULL);
  CHECK_INT(sip_txn_request(e.txl, req, (size_t)n, &d, NULL, NULL, NULL),
            UV_EEXIST);
  /* the same branch with another method is another transaction (§17.1.3:
   * CANCEL shares the INVITE's branch) */
  n = mkcreq(req, sizeof(req), "CANCEL", e.udp_port, br, "err3@x");
  CHECK_INT(sip_txn_request(e.txl, req, (size_t)n, &d, NULL, NULL, NULL), 0);
  CHECK_INT(sip_txn_reply(t, 200, "x", 1), SIP_EINVAL); /* a client */
  CHECK_INT(stats(&e).live[SIP_TXN_NICT], 2);
  CHECK_INT(sip__txn_check(e.txl), 0);
  env_close(&e); /* closing with live transactions frees them */
}

/* ---- INVITE client
 * ------------------------------------------------------------------ */

/* Timer A: T1, 2T1, 4T1 ... until Timer B (64*T1): 408. */
static void test_ict_timer_a(void) {
  env e;
  env_open(&e, NULL);
  int pport, s = udp_sock(&pport);
  sip_dest d;
  udp_dest(&d, pport);
  char req[2048], br[SIP_TXN_BRANCH_SIZE];
  sip_txn_new_branch(br);
  int n = mkcreq(req, sizeof(req), "INVITE", e.udp_port, br, "ta@x");
  cres c = {0};
  sip_txn *t = NULL;
  double t0 = now_ms();
  CHECK_INT(sip_txn_request(e.txl, req, (size_t)n, &d, on_resp, &c, &t), 0);
  CHECK_INT(sip_txn_kind(t), SIP_TXN_ICT);
  CHECK_INT(sip_txn_state(t), SIP_TXN_CALLING);
  CHECK_STR(sip_txn_method(t), "INVITE");
  CHECK_STR(sip_txn_branch(t), br);
  sip_txn_ref(t);
  collect(s, 64 * T1 + 40 * T1, &c.n, 1);
  run_for(5 * T1);
  int got = npk;
  npk = 0;
  for (;;) { /* late ones */
    char b[4096];
    if (recv(s, b, sizeof(b), 0) < 0)
      break;
    got++;
  }
  CHECK_INT(got, 7); /* 0, 1, 3, 7, 15, 31, 63 T1 */
  for (int i = 0; i < 7 && i < MAXPK; i++)
    CHECK(pk[i].n == n && memcmp(pk[i].d, req, (size_t)n) == 0);
  for (int i = 1; i < 7; i++)
    CHECK_NEAR(pk[i].t - pk[i - 1].t, (double)(T1 << (i - 1)));
  CHECK_INT(c.n, 1);
  CHECK_INT(c.status[0], 408);
  CHECK_INT(c.withmsg[0], 0);
  CHECK_INT(c.state[0], SIP_TXN_TERMINATED);
  CHECK_NEAR(c.t[0] - t0, 64.0 * T1);
  CHECK_INT(sip_txn_state(t), SIP_TXN_TERMINATED);
  CHECK_INT(sip_txn_status(t), 408);
  sip_txl_counters st = stats(&e);
  CHECK_INT(st.timeouts, 1);
  CHECK_INT(st.retransmissions, 6);
  CHECK_INT(st.live_total, 0);
  CHECK_INT(st.zombies, 1); /* our reference */
  sip_txn_unref(t);
  CHECK_INT(stats(&e).zombies, 0);
  close(s);
  env_close(&e);
}

/* Provisional stops A; a non-2xx final gets the layer's ACK (§17.1.1.3);
 * its retransmission gets the ACK again, not the TU; Timer D ends it. */
static void test_ict_non2xx(void) {
  env e;
  env_open(&e, NULL);
  int pport, s = udp_sock(&pport);
  sip_dest d;
  udp_dest(&d, pport);
  char req[2048], br[SIP_TXN_BRANCH_SIZE], buf[4096], resp[4096];
  sip_txn_new_branch(br);
  int n = mkcreq(req, sizeof(req), "INVITE", e.udp_port, br, "nx@x");
  cres c = {0};
  sip_txn *t = NULL;
  CHECK_INT(sip_txn_request(e.txl, req, (size_t)n, &d, on_resp, &c, &t), 0);
  sip_txn_ref(t);
  int k = recv_one(s, buf, sizeof(buf), 1000);
  CHECK_INT(k, n);
  int rn = peer_reply(buf, k, 100, NULL, resp, sizeof(resp));
  CHECK(rn > 0);
  udp_to(s, e.udp_port, resp, (size_t)rn);
  RUN_UNTIL(c.n == 1, 1000);
  CHECK_INT(c.n, 1);
  CHECK_INT(c.status[0], 100);
  CHECK_INT(c.withmsg[0], 1);
  CHECK_INT(sip_txn_state(t), SIP_TXN_PROCEEDING);
  /* Proceeding: no retransmissions, no Timer B */
  CHECK_INT(collect(s, 8 * T1, NULL, 0), 0);

  rn = peer_reply(buf, k, 486, "peer486", resp, sizeof(resp));
  udp_to(s, e.udp_port, resp, (size_t)rn);
  char ack[4096];
  int an = recv_one(s, ack, sizeof(ack), 1000);
  CHECK(an > 0);
  CHECK_INT(c.n, 2);
  CHECK_INT(c.status[1], 486);
  CHECK_INT(c.state[1], SIP_TXN_COMPLETED);
  char want[2048];
  snprintf(want, sizeof(want),
           "ACK sip:carol@127.0.0.1;transport=udp SIP/2.0\r\n"
           "Via: SIP/2.0/UDP 127.0.0.1:%d;branch=%s\r\n"
           "Route: <sip:p1.example;lr>\r\n"
           "Route: <sip:p2.example;lr>\r\n"
           "Max-Forwards: 70\r\n"
           "From: \"Alice\" <sip:alice@a.example>;tag=ft1\r\n"
           "To: <sip:carol@c.example>;tag=peer486\r\n"
           "Call-ID: nx@x\r\n"
           "CSeq: 7 ACK\r\n"
           "Content-Length: 0\r\n\r\n",
           e.udp_port, br);
  CHECK_MSG(an > 0 && strcmp(ack, want) == 0, "ACK:\n%s\nwant:\n%s",
            an > 0 ? ack : "", want);
  CHECK_INT(stats(&e).acks_sent, 1);

  /* the 486 again: the same ACK again, nothing for the TU */
  udp_to(s, e.udp_port, resp, (size_t)rn);
  int an2 = recv_one(s, buf, sizeof(buf), 1000);
  CHECK_INT(an2, an);
  CHECK(an2 == an && memcmp(buf, ack, (size_t)an) == 0);
  run_for(2 * T1);
  CHECK_INT(c.n, 2);
  CHECK_INT(stats(&e).absorbed, 1);
  CHECK_INT(stats(&e).retransmissions, 1);
  CHECK_INT(sip_txn_state(t), SIP_TXN_COMPLETED);

  /* Timer D (10*T1 here) */
  RUN_UNTIL(sip_txn_state(t) == SIP_TXN_TERMINATED, 40 * T1);
  CHECK_INT(sip_txn_state(t), SIP_TXN_TERMINATED);
  udp_to(s, e.udp_port, resp, (size_t)rn);
  RUN_UNTIL(e.nstray == 1, 1000);
  CHECK_INT(e.nstray, 1);
  CHECK_INT(collect(s, 3 * T1, NULL, 0), 0); /* no ACK any more */
  sip_txn_unref(t);
  close(s);
  env_close(&e);
}

/* RFC 6026: a 2xx moves to Accepted; the layer sends no ACK; every 2xx
 * retransmission reaches the TU; Timer M ends it. */
static void test_ict_2xx(void) {
  env e;
  env_open(&e, NULL);
  int pport, s = udp_sock(&pport);
  sip_dest d;
  udp_dest(&d, pport);
  char req[2048], br[SIP_TXN_BRANCH_SIZE], buf[4096], resp[4096];
  sip_txn_new_branch(br);
  int n = mkcreq(req, sizeof(req), "INVITE", e.udp_port, br, "ok@x");
  cres c = {0};
  sip_txn *t = NULL;
  CHECK_INT(sip_txn_request(e.txl, req, (size_t)n, &d, on_resp, &c, &t), 0);
  sip_txn_ref(t);
  int k = recv_one(s, buf, sizeof(buf), 1000);
  CHECK_INT(k, n);
  int rn = peer_reply(buf, k, 200, "peer200", resp, sizeof(resp));
  double t0 = now_ms();
  udp_to(s, e.udp_port, resp, (size_t)rn);
  RUN_UNTIL(c.n == 1, 1000);
  CHECK_INT(c.status[0], 200);
  CHECK_INT(c.state[0], SIP_TXN_ACCEPTED);
  CHECK_INT(collect(s, 6 * T1, NULL, 0), 0); /* no ACK, no retransmission */
  udp_to(s, e.udp_port, resp, (size_t)rn);
  udp_to(s, e.udp_port, resp, (size_t)rn);
  RUN_UNTIL(c.n == 3, 1000);
  CHECK_INT(c.n, 3);
  CHECK(c.status[1] == 200 && c.status[2] == 200);
  CHECK(c.withmsg[1] && c.withmsg[2]);
  CHECK_INT(stats(&e).acks_sent, 0);
  /* a non-2xx in Accepted is absorbed */
  int xn = peer_reply(buf, k, 500, "peer500", resp + 2048, 2048);
  udp_to(s, e.udp_port, resp + 2048, (size_t)xn);
  run_for(3 * T1);
  CHECK_INT(c.n, 3);
  /* Timer M = 64*T1 */
  RUN_UNTIL(sip_txn_state(t) == SIP_TXN_TERMINATED, 100 * T1);
  CHECK_INT(sip_txn_state(t), SIP_TXN_TERMINATED);
  CHECK_NEAR(now_ms() - t0, 64.0 * T1);
  udp_to(s, e.udp_port, resp, (size_t)rn);
  RUN_UNTIL(e.nstray == 1, 1000);
  CHECK_INT(e.nstray, 1);
  CHECK_INT(c.n, 3);
  sip_txn_unref(t);
  close(s);
  env_close(&e);
}

/* ---- non-INVITE client
 * -------------------------------------------------------------- */

/* Timer E: T1, 2T1, 4T1, then T2 (= 4T1) ... until Timer F: 408. */
static void test_nict_timer_e(void) {
  env e;
  env_open(&e, NULL);
  int pport, s = udp_sock(&pport);
  sip_dest d;
  udp_dest(&d, pport);
  char req[2048], br[SIP_TXN_BRANCH_SIZE];
  sip_txn_new_branch(br);
  int n = mkcreq(req, sizeof(req), "OPTIONS", e.udp_port, br, "te@x");
  cres c = {0};
  double t0 = now_ms();
  CHECK_INT(sip_txn_request(e.txl, req, (size_t)n, &d, on_resp, &c, NULL), 0);
  collect(s, 64 * T1 + 40 * T1, &c.n, 1);
  run_for(5 * T1);
  int got = npk;
  for (;;) {
    char b[4096];
    if (recv(s, b, sizeof(b), 0) < 0)
      break;
    got++;
  }
  /* 0, 1, 3, 7, 11, ... 63 T1 */
  CHECK_INT(got, 18);
  for (int i = 1; i < 18 && i < npk; i++) {
    double want = i == 1 ? T1 : i == 2 ? 2 * T1 : 4 * T1;
    CHECK_NEAR(pk[i].t - pk[i - 1].t, want);
  }
  CHECK_INT(c.n, 1);
  CHECK_INT(c.status[0], 408);
  CHECK_INT(c.withmsg[0], 0);
  CHECK_NEAR(c.t[0] - t0, 64.0 * T1);
  sip_txl_counters st = stats(&e);
  CHECK_INT(st.timeouts, 1);
  CHECK_INT(st.retransmissions, 17);
  close(s);
  env_close(&e);
}

/* Proceeding: E continues at T2; a final completes; retransmitted finals
 * are absorbed; Timer K ends it. */
static void test_nict_proceeding(void) {
  env e;
  env_open(&e, NULL);
  int pport, s = udp_sock(&pport);
  sip_dest d;
  udp_dest(&d, pport);
  char req[2048], br[SIP_TXN_BRANCH_SIZE], buf[4096], resp[4096];
  sip_txn_new_branch(br);
  int n = mkcreq(req, sizeof(req), "REGISTER", e.udp_port, br, "np@x");
  cres c = {0};
  sip_txn *t;
  CHECK_INT(sip_txn_request(e.txl, req, (size_t)n, &d, on_resp, &c, &t), 0);
  sip_txn_ref(t);
  int k = recv_one(s, buf, sizeof(buf), 1000);
  CHECK_INT(k, n);
  int rn = peer_reply(buf, k, 100, NULL, resp, sizeof(resp));
  udp_to(s, e.udp_port, resp, (size_t)rn);
  RUN_UNTIL(c.n == 1, 1000);
  CHECK_INT(sip_txn_state(t), SIP_TXN_PROCEEDING);
  /* E fires at T1 (already scheduled), then every T2: in 10 T1 from the
   * 100, three copies (at <= T1, <= 5 T1, <= 9 T1); the fourth is due
   * after 12 T1 from the request, so never inside the window */
  collect(s, 10 * T1 + 1, NULL, 0);
  CHECK_INT(npk, 3);
  if (npk >= 3) {
    CHECK_NEAR(pk[1].t - pk[0].t, 4.0 * T1);
    CHECK_NEAR(pk[2].t - pk[1].t, 4.0 * T1);
  }
  rn = peer_reply(buf, k, 200, "reg", resp, sizeof(resp));
  udp_to(s, e.udp_port, resp, (size_t)rn);
  RUN_UNTIL(c.n == 2, 1000);
  CHECK_INT(c.status[1], 200);
  CHECK_INT(c.state[1], SIP_TXN_COMPLETED);
  udp_to(s, e.udp_port, resp, (size_t)rn);
  run_for(T1);
  CHECK_INT(c.n, 2);
  CHECK_INT(collect(s, 6 * T1, NULL, 0), 0); /* nothing re-sent */
  RUN_UNTIL(sip_txn_state(t) == SIP_TXN_TERMINATED, 20 * T1);
  CHECK_INT(sip_txn_state(t), SIP_TXN_TERMINATED);
  CHECK_INT(stats(&e).absorbed, 1);
  sip_txn_unref(t);
  close(s);
  env_close(&e);
}

/* The TU detaches: no callbacks, the state machine goes on (the ACK). */
static void test_detach(void) {
  env e;
  env_open(&e, NULL);
  int pport, s = udp_sock(&pport);
  sip_dest d;
  udp_dest(&d, pport);
  char req[2048], br[SIP_TXN_BRANCH_SIZE], buf[4096], resp[4096];
  sip_txn_new_branch(br);
  int n = mkcreq(req, sizeof(req), "INVITE", e.udp_port, br, "dt@x");
  cres c = {0};
  sip_txn *t;
  CHECK_INT(sip_txn_request(e.txl, req, (size_t)n, &d, on_resp, &c, &t), 0);
  sip_txn_detach(t);
  int k = recv_one(s, buf, sizeof(buf), 1000);
  int rn = peer_reply(buf, k, 603, "dec", resp, sizeof(resp));
  udp_to(s, e.udp_port, resp, (size_t)rn);
  k = recv_one(s, buf, sizeof(buf), 1000);
  CHECK(k > 0 && starts(buf, "ACK "));
  CHECK_INT(c.n, 0);
  close(s);
  env_close(&e);
}

/* A send that fails at once is still a 503 from the loop, not a return
 * code; the transport's code is kept. */
static void test_sync_send_error(void) {
  env e;
  env_open(&e, NULL);
  sip_dest d;
  sip_dest_init(&d, SIP_TP_UDP);
  sip_tp_addr(&d.addr, "::1", 3, 5060); /* no IPv6 UDP listener */
  char req[2048], br[SIP_TXN_BRANCH_SIZE];
  sip_txn_new_branch(br);
  int n = mkcreq(req, sizeof(req), "OPTIONS", e.udp_port, br, "se@x");
  cres c = {0};
  sip_txn *t;
  CHECK_INT(sip_txn_request(e.txl, req, (size_t)n, &d, on_resp, &c, &t), 0);
  sip_txn_ref(t);
  CHECK_INT(c.n, 0);
  RUN_UNTIL(c.n == 1, 1000);
  CHECK_INT(c.n, 1);
  CHECK_INT(c.status[0], 503);
  CHECK_INT(c.withmsg[0], 0);
  CHECK_INT(sip_txn_error(t), UV_EAFNOSUPPORT);
  CHECK_INT(sip_txn_state(t), SIP_TXN_TERMINATED);
  CHECK_INT(stats(&e).transport_errors, 1);
  sip_txn_unref(t);
  env_close(&e);
}

/* §18.1.1: a request moved from UDP to TCP for its size, to a peer that
 * listens on UDP only: the refused connection makes the transaction go on
 * with the request's UDP form, over UDP, as an unreliable one (Timer A),
 * and the ACK of its non-2xx final follows it. */
static void test_udp_fallback(void) {
  env e;
  env_open(&e, NULL);
  int pport, s = udp_sock(&pport);
  sip_dest ud, td;
  udp_dest(&ud, pport);
  td = ud;
  td.transport = SIP_TP_TCP; /* nothing listens on TCP there */
  char ureq[2048], treq[2048], br[SIP_TXN_BRANCH_SIZE];
  sip_txn_new_branch(br);
  int n = mkcreq(ureq, sizeof(ureq), "INVITE", e.udp_port, br, "fb@x");
  memcpy(treq, ureq, (size_t)n);
  char *v = strstr(treq, "SIP/2.0/UDP");
  memcpy(v, "SIP/2.0/TCP", 11); /* the TCP form's top Via */
  cres c = {0};
  sip_txn *t = NULL;
  CHECK_INT(sip_txn_request_switched(e.txl, treq, (size_t)n, &td, ureq,
                                     (size_t)n, &td, on_resp, &c, &t),
            SIP_EINVAL); /* the fallback must be UDP */
  CHECK_INT(sip_txn_request_switched(e.txl, treq, (size_t)n, &td, ureq,
                                     (size_t)n, &ud, on_resp, &c, &t),
            0);
  sip_txn_ref(t);
  sip_dest d;
  CHECK_INT(sip_txn_dest(t, &d), 0);
  CHECK_INT(d.transport, SIP_TP_TCP);
  /* the UDP form, then Timer A's retransmissions of it */
  int target = 3;
  collect(s, 20 * T1, &npk, target);
  CHECK(npk >= target);
  for (int i = 0; i < target && i < npk; i++)
    CHECK_MSG(pk[i].n == n && memcmp(pk[i].d, ureq, (size_t)n) == 0,
              "datagram %d: %.*s", i, pk[i].n, pk[i].d);
  if (npk >= 3)
    CHECK_NEAR(pk[2].t - pk[1].t, 2.0 * T1);
  CHECK_INT(c.n, 0); /* no 503 for the refused connection */
  CHECK_INT(sip_txn_dest(t, &d), 0);
  CHECK_INT(d.transport, SIP_TP_UDP);
  CHECK_INT(stats(&e).udp_fallbacks, 1);
  /* a 486 over UDP: the TU gets it, the ACK goes over UDP */
  char resp[2048];
  int rn = peer_reply(pk[0].d, pk[0].n, 486, "b1", resp, sizeof(resp));
  CHECK(rn > 0);
  udp_to(s, e.udp_port, resp, (size_t)rn);
  RUN_UNTIL(c.n >= 1, 1000);
  CHECK_INT(c.n, 1);
  CHECK_INT(c.status[0], 486);
  char ack[2048];
  int an;
  do
    an = recv_one(s, ack, sizeof(ack), 500);
  while (an > 0 && starts(ack, "INVITE"));
  CHECK(an > 0 && starts(ack, "ACK sip:carol@127.0.0.1"));
  if (an > 0)
    CHECK(contains(ack, (size_t)an, "Via: SIP/2.0/UDP"));
  sip_txn_unref(t);
  close(s);
  env_close(&e);
}

/* ---- INVITE server
 * ------------------------------------------------------------------ */

/* Timer G: the non-2xx final again at T1, 2T1, 4T1, then T2, until Timer
 * H (64*T1): the TU is told. */
static void test_ist_timer_g(void) {
  env e;
  env_open(&e, NULL);
  e.reply_status = 486;
  int pport, s = udp_sock(&pport);
  char req[2048];
  int n = mkreq(req, sizeof(req), "INVITE", "UDP", pport, "z9hG4bKg1", "g@x", 1,
                "INVITE", NULL);
  udp_to(s, e.udp_port, req, (size_t)n);
  collect(s, 64 * T1 + 40 * T1, &e.ev_timeout, 1);
  run_for(5 * T1);
  int got = npk;
  for (;;) {
    char b[4096];
    if (recv(s, b, sizeof(b), 0) < 0)
      break;
    got++;
  }
  CHECK_INT(e.nreq, 1);
  CHECK_INT(got, 18);
  CHECK(npk > 0 && starts(pk[0].d, "SIP/2.0 486 "));
  for (int i = 1; i < 18 && i < npk; i++) {
    double want = i == 1 ? T1 : i == 2 ? 2 * T1 : 4 * T1;
    CHECK_NEAR(pk[i].t - pk[i - 1].t, want);
    CHECK(pk[i].n == pk[0].n && memcmp(pk[i].d, pk[0].d, (size_t)pk[0].n) == 0);
  }
  CHECK_INT(e.ev_timeout, 1);
  if (npk > 0)
    CHECK_NEAR(e.ev_timeout_at - pk[0].t, 64.0 * T1);
  RUN_UNTIL(e.ev_term == 1, 1000);
  CHECK_INT(e.ev_term, 1);
  CHECK_INT(sip_txn_state(e.txn), SIP_TXN_TERMINATED);
  sip_txl_counters st = stats(&e);
  CHECK_INT(st.timeouts, 1);
  CHECK_INT(st.retransmissions, 17);
  CHECK_INT(e.nack, 0);
  close(s);
  env_close(&e);
}

/* ACK for the non-2xx: Confirmed, retransmissions stop, the TU does not see
 * it; Timer I ends it. A retransmitted INVITE in Completed gets the final
 * again. */
static void test_ist_ack(void) {
  env e;
  env_open(&e, NULL);
  e.reply_status = 486;
  int pport, s = udp_sock(&pport);
  char req[2048], ack[2048], buf[4096];
  int n = mkreq(req, sizeof(req), "INVITE", "UDP", pport, "z9hG4bKa1", "a@x", 5,
                "INVITE", NULL);
  udp_to(s, e.udp_port, req, (size_t)n);
  collect(s, 2 * T1 + T1 / 2, NULL, 0); /* the 486 and one retransmission */
  CHECK_INT(npk, 2);
  udp_to(s, e.udp_port, req, (size_t)n); /* INVITE again: the 486 again */
  int k = recv_one(s, buf, sizeof(buf), 1000);
  CHECK(k > 0 && starts(buf, "SIP/2.0 486 "));
  CHECK_INT(e.nreq, 1);
  int an = mkreq(ack, sizeof(ack), "ACK", "UDP", pport, "z9hG4bKa1", "a@x", 5,
                 "ACK", "tu1");
  udp_to(s, e.udp_port, ack, (size_t)an);
  RUN_UNTIL(sip_txn_state(e.txn) == SIP_TXN_CONFIRMED, 1000);
  CHECK_INT(sip_txn_state(e.txn), SIP_TXN_CONFIRMED);
  while (recv(s, buf, sizeof(buf), 0) >= 0) /* sent before the ACK landed */
    ;
  /* Confirmed lasts T4 (5*T1): within it, ACK and INVITE are absorbed
   * and G (due at 7*T1) does not fire */
  udp_to(s, e.udp_port, ack, (size_t)an);
  udp_to(s, e.udp_port, req, (size_t)n);
  CHECK_INT(collect(s, 4 * T1, NULL, 0), 0);
  CHECK_INT(sip_txn_state(e.txn), SIP_TXN_CONFIRMED);
  CHECK_INT(e.nack, 0);
  CHECK_INT(e.nreq, 1);
  RUN_UNTIL(sip_txn_state(e.txn) == SIP_TXN_TERMINATED, 20 * T1);
  CHECK_INT(sip_txn_state(e.txn), SIP_TXN_TERMINATED); /* Timer I */
  CHECK_INT(e.ev_timeout, 0);
  CHECK_INT(e.rxcode[SIP_TXL_RX_ABSORBED], 4);
  close(s);
  env_close(&e);
}

/* Proceeding: a retransmitted INVITE gets the last provisional again. 2xx:
 * Accepted, INVITEs absorbed, ACKs to the TU, the TU's 2xx retransmissions
 * pass, nothing else does; Timer L ends it. */
static void test_ist_accepted(void) {
  env e;
  env_open(&e, NULL);
  e.reply_status = 180;
  int pport, s = udp_sock(&pport);
  char req[2048], ack[2048], buf[4096];
  int n = mkreq(req, sizeof(req), "INVITE", "UDP", pport, "z9hG4bKacc", "b@x",
                1, "INVITE", NULL);
  udp_to(s, e.udp_port, req, (size_t)n);
  int k = recv_one(s, buf, sizeof(buf), 1000);
  CHECK(k > 0 && starts(buf, "SIP/2.0 180 "));
  udp_to(s, e.udp_port, req, (size_t)n);
  k = recv_one(s, buf, sizeof(buf), 1000);
  CHECK(k > 0 && starts(buf, "SIP/2.0 180 "));
  CHECK_INT(e.nreq, 1);
  CHECK_INT(collect(s, 5 * T1, NULL, 0), 0); /* no 100 after a 180 */
  sip_txn *t = e.txn;
  CHECK_INT(sip_txn_state(t), SIP_TXN_PROCEEDING);
  CHECK_INT(tu_reply(t, &e.rx->msg, 200, "tu1"), 0);
  double t0 = now_ms();
  CHECK_INT(sip_txn_state(t), SIP_TXN_ACCEPTED);
  k = recv_one(s, buf, sizeof(buf), 1000);
  CHECK(k > 0 && starts(buf, "SIP/2.0 200 "));
  udp_to(s, e.udp_port, req, (size_t)n); /* absorbed, nothing re-sent */
  CHECK_INT(collect(s, 3 * T1, NULL, 0), 0);
  CHECK_INT(e.nreq, 1);
  /* the TU's 2xx retransmission passes; other responses do not */
  CHECK_INT(tu_reply(t, &e.rx->msg, 200, "tu1"), 0);
  k = recv_one(s, buf, sizeof(buf), 1000);
  CHECK(k > 0 && starts(buf, "SIP/2.0 200 "));
  CHECK_INT(tu_reply(t, &e.rx->msg, 486, "tu1"), SIP_EINVAL);
  CHECK_INT(tu_reply(t, &e.rx->msg, 180, "tu1"), SIP_EINVAL);
  /* an ACK on the INVITE's branch matches: to the TU with the txn */
  int an = mkreq(ack, sizeof(ack), "ACK", "UDP", pport, "z9hG4bKacc", "b@x", 1,
                 "ACK", "tu1");
  udp_to(s, e.udp_port, ack, (size_t)an);
  RUN_UNTIL(e.nack == 1, 1000);
  CHECK_INT(e.nack, 1);
  CHECK_INT(e.nack_txn, 1);
  CHECK(e.ack_txn == t);
  /* the usual 2xx ACK has its own branch: to the TU without a txn */
  an = mkreq(ack, sizeof(ack), "ACK", "UDP", pport, "z9hG4bKack2", "b@x", 1,
             "ACK", "tu1");
  udp_to(s, e.udp_port, ack, (size_t)an);
  RUN_UNTIL(e.nack == 2, 1000);
  CHECK_INT(e.nack, 2);
  CHECK_INT(e.nack_txn, 1);
  sip_txl_counters st = stats(&e);
  CHECK_INT(st.acks_passed, 1);
  CHECK_INT(st.stray_acks, 1);
  CHECK_INT(st.trying_sent, 0);
  RUN_UNTIL(sip_txn_state(t) == SIP_TXN_TERMINATED, 100 * T1);
  CHECK_INT(sip_txn_state(t), SIP_TXN_TERMINATED); /* Timer L */
  CHECK_NEAR(now_ms() - t0, 64.0 * T1);
  CHECK_INT(tu_reply(t, &e.rx->msg, 200, "tu1"), SIP_EINVAL);
  close(s);
  env_close(&e);
}

/* RFC 3262 §3: a reliable 1xx is re-sent at T1, 2*T1, 4*T1 ... (no T2
 * cap) until the PRACK; without one, the stored 500 goes at 64*T1 (then
 * Timer G as for any final). A PRACK stops it; a further 1xx is refused
 * while one is pending; a final ends it. */
static const char FAIL500[] = "SIP/2.0 500 No PRACK\r\nContent-Length: 0\r\n\r\n";

static void test_ist_reliable_1xx(void) {
  env e;
  env_open(&e, NULL);
  e.reply_status = 183;
  int pport, s = udp_sock(&pport);
  char req[2048], buf[4096];
  int n = mkreq(req, sizeof(req), "INVITE", "UDP", pport, "z9hG4bKrel1",
                "rel@x", 1, "INVITE", NULL);
  udp_to(s, e.udp_port, req, (size_t)n);
  int k = recv_one(s, buf, sizeof(buf), 1000);
  CHECK(k > 0 && starts(buf, "SIP/2.0 183 "));
  sip_txn *t = e.txn;
  double t0 = now_ms();
  CHECK_INT(sip_txn_retransmit_1xx(t, "SIP/2.0 486 X\r\n\r\n", 17), SIP_EINVAL);
  CHECK_INT(sip_txn_retransmit_1xx(t, FAIL500, sizeof FAIL500 - 1), 0);
  CHECK_INT(sip_txn_awaits_prack(t), 1);
  CHECK_INT(sip_txn_retransmit_1xx(t, FAIL500, sizeof FAIL500 - 1), SIP_EINVAL);
  CHECK_INT(tu_reply(t, &e.rx->msg, 180, "tu1"), SIP_EINVAL); /* one at a time */
  /* re-sent at 1, 3, 7, 15, 31, 63 T1; the 500 at 64 T1 */
  collect(s, 64 * T1 + T1 / 2, NULL, 0);
  CHECK_INT(npk, 7);
  double want = 0;
  for (int i = 0; i < 6 && i < npk; i++) {
    want += (double)(T1 << i);
    CHECK(starts(pk[i].d, "SIP/2.0 183 "));
    CHECK_NEAR(pk[i].t - t0, want);
  }
  if (npk >= 7) {
    CHECK(starts(pk[6].d, "SIP/2.0 500 No PRACK"));
    CHECK_NEAR(pk[6].t - t0, 64.0 * T1);
  }
  CHECK_INT(sip_txn_state(t), SIP_TXN_COMPLETED);
  CHECK_INT(sip_txn_awaits_prack(t), 0);
  sip_txl_counters st = stats(&e);
  CHECK_INT(st.retx_1xx, 6);
  CHECK_INT(st.unpracked_1xx, 1);
  /* the INVITE again in Completed: the 500 again (not the 183) */
  udp_to(s, e.udp_port, req, (size_t)n);
  k = recv_one(s, buf, sizeof(buf), 1000);
  CHECK(k > 0 && starts(buf, "SIP/2.0 500 "));

  /* the PRACK came after two re-sends: no more, and no 500 (a new peer:
   * the first one still gets the 500 by Timer G) */
  close(s);
  s = udp_sock(&pport);
  n = mkreq(req, sizeof(req), "INVITE", "UDP", pport, "z9hG4bKrel2", "rel2@x",
            1, "INVITE", NULL);
  udp_to(s, e.udp_port, req, (size_t)n);
  k = recv_one(s, buf, sizeof(buf), 1000);
  CHECK(k > 0 && starts(buf, "SIP/2.0 183 "));
  t = e.txn;
  CHECK_INT(sip_txn_retransmit_1xx(t, FAIL500, sizeof FAIL500 - 1), 0);
  collect(s, 3 * T1 + T1 / 2, NULL, 0);
  CHECK_INT(npk, 2);
  CHECK_INT(sip_txn_prack(t), 1);
  CHECK_INT(sip_txn_prack(t), 0);
  CHECK_INT(collect(s, 70 * T1, NULL, 0), 0);
  CHECK_INT(sip_txn_state(t), SIP_TXN_PROCEEDING);
  /* the INVITE again: the 183 alone */
  udp_to(s, e.udp_port, req, (size_t)n);
  k = recv_one(s, buf, sizeof(buf), 1000);
  CHECK(k > 0 && starts(buf, "SIP/2.0 183 ") && !strstr(buf, "No PRACK"));
  CHECK_INT(tu_reply(t, &e.rx->msg, 200, "tu1"), 0);
  CHECK_INT(sip_txn_state(t), SIP_TXN_ACCEPTED);

  /* a final while the 1xx is pending ends it */
  close(s);
  s = udp_sock(&pport);
  n = mkreq(req, sizeof(req), "INVITE", "UDP", pport, "z9hG4bKrel3", "rel3@x",
            1, "INVITE", NULL);
  udp_to(s, e.udp_port, req, (size_t)n);
  k = recv_one(s, buf, sizeof(buf), 1000);
  t = e.txn;
  CHECK_INT(sip_txn_retransmit_1xx(t, FAIL500, sizeof FAIL500 - 1), 0);
  CHECK_INT(tu_reply(t, &e.rx->msg, 486, "tu1"), 0);
  CHECK_INT(sip_txn_awaits_prack(t), 0);
  collect(s, 2 * T1 + T1 / 2, NULL, 0); /* the 486 by Timer G only */
  for (int i = 0; i < npk; i++)
    CHECK(starts(pk[i].d, "SIP/2.0 486 "));
  st = stats(&e);
  CHECK_INT(st.unpracked_1xx, 1);
  close(s);
  env_close(&e);
}

/* §17.2.1: a 100 Trying when the TU is slow, none when it is quick. */
static void test_ist_trying(void) {
  env e;
  env_open(&e, NULL);
  int pport, s = udp_sock(&pport);
  char req[2048], buf[4096];
  /* slow TU */
  int n = mkreq(req, sizeof(req), "INVITE", "UDP", pport, "z9hG4bKtr1", "tr@x",
                1, "INVITE", NULL);
  double t0 = now_ms();
  udp_to(s, e.udp_port, req, (size_t)n);
  int k = recv_one(s, buf, sizeof(buf), 1000);
  double t1 = now_ms();
  CHECK(k > 0 && starts(buf, "SIP/2.0 100 Trying\r\n"));
  CHECK(k > 0 && contains(buf, (size_t)k, "CSeq: 1 INVITE\r\n"));
  CHECK(k > 0 && contains(buf, (size_t)k, "z9hG4bKtr1"));
  CHECK(k > 0 && contains(buf, (size_t)k, "To: <sip:bob@b.example>\r\n"));
  CHECK_NEAR(t1 - t0, 3.0 * T1);
  CHECK_INT(stats(&e).trying_sent, 1);
  CHECK_INT(collect(s, 5 * T1, NULL, 0), 0); /* once */
  /* a retransmission re-sends it (the last provisional) */
  udp_to(s, e.udp_port, req, (size_t)n);
  k = recv_one(s, buf, sizeof(buf), 1000);
  CHECK(k > 0 && starts(buf, "SIP/2.0 100 "));
  CHECK_INT(tu_reply(e.txn, &e.rx->msg, 180, "tu1"), 0);
  k = recv_one(s, buf, sizeof(buf), 1000);
  CHECK(k > 0 && starts(buf, "SIP/2.0 180 "));
  CHECK_INT(tu_reply(e.txn, &e.rx->msg, 480, "tu1"), 0);
  CHECK_INT(tu_reply(e.txn, &e.rx->msg, 480, "tu1"), SIP_EINVAL); /* twice */
  k = recv_one(s, buf, sizeof(buf), 1000);
  CHECK(k > 0 && starts(buf, "SIP/2.0 480 "));

  /* quick TU: answers inside on_request */
  e.reply_status = 180;
  n = mkreq(req, sizeof(req), "INVITE", "UDP", pport, "z9hG4bKtr2", "tr2@x", 1,
            "INVITE", NULL);
  udp_to(s, e.udp_port, req, (size_t)n);
  k = recv_one(s, buf, sizeof(buf), 1000);
  CHECK(k > 0 && starts(buf, "SIP/2.0 180 "));
  collect(s, 6 * T1, NULL, 0);
  int trying = 0;
  for (int i = 0; i < npk; i++)
    trying += starts(pk[i].d, "SIP/2.0 100 ");
  CHECK_INT(trying, 0);
  /* TU answers within the delay, outside the callback */
  e.reply_status = 0;
  n = mkreq(req, sizeof(req), "INVITE", "UDP", pport, "z9hG4bKtr3", "tr3@x", 1,
            "INVITE", NULL);
  udp_to(s, e.udp_port, req, (size_t)n);
  RUN_UNTIL(e.nreq == 3, 1000);
  CHECK_INT(tu_reply(e.txn, &e.rx->msg, 603, "tu1"), 0);
  k = recv_one(s, buf, sizeof(buf), 1000);
  CHECK(k > 0 && starts(buf, "SIP/2.0 603 "));
  CHECK_INT(stats(&e).trying_sent, 1);

  /* the INVITE again before the delay: the client is waiting, the 100 goes
   * out at once */
  int p3, s3 = udp_sock(&p3); /* s gets the 603's retransmissions */
  n = mkreq(req, sizeof(req), "INVITE", "UDP", p3, "z9hG4bKtr5", "tr5@x", 1,
            "INVITE", NULL);
  udp_to(s3, e.udp_port, req, (size_t)n);
  RUN_UNTIL(e.nreq == 4, 1000);
  t0 = now_ms();
  udp_to(s3, e.udp_port, req, (size_t)n);
  k = recv_one(s3, buf, sizeof(buf), 1000);
  CHECK(k > 0 && starts(buf, "SIP/2.0 100 "));
  CHECK_MSG(now_ms() - t0 < 2.0 * T1, "100 after %.1f ms", now_ms() - t0);
  CHECK_INT(collect(s3, 5 * T1, NULL, 0), 0); /* and only once */
  CHECK_INT(stats(&e).trying_sent, 2);
  close(s3);

  /* SIP_TXN_NO_TRYING */
  env f;
  sip_txl_config c;
  config(&c);
  c.trying_delay_ms = SIP_TXN_NO_TRYING;
  env_open(&f, &c);
  int p2, s2 = udp_sock(&p2);
  n = mkreq(req, sizeof(req), "INVITE", "UDP", p2, "z9hG4bKtr4", "tr4@x", 1,
            "INVITE", NULL);
  udp_to(s2, f.udp_port, req, (size_t)n);
  CHECK_INT(collect(s2, 8 * T1, NULL, 0), 0);
  CHECK_INT(f.nreq, 1);
  close(s2);
  env_close(&f);
  close(s);
  env_close(&e);
}

/* ---- non-INVITE server
 * -------------------------------------------------------------- */

static void test_nist(void) {
  env e;
  env_open(&e, NULL);
  int pport, s = udp_sock(&pport);
  char req[2048], buf[4096];
  int n = mkreq(req, sizeof(req), "OPTIONS", "UDP", pport, "z9hG4bKn1", "n@x",
                3, "OPTIONS", NULL);
  udp_to(s, e.udp_port, req, (size_t)n);
  RUN_UNTIL(e.nreq == 1, 1000);
  sip_txn *t = e.txn;
  CHECK_INT(sip_txn_kind(t), SIP_TXN_NIST);
  CHECK_INT(sip_txn_state(t), SIP_TXN_TRYING);
  /* Trying: a retransmission is absorbed silently */
  udp_to(s, e.udp_port, req, (size_t)n);
  CHECK_INT(collect(s, 3 * T1, NULL, 0), 0);
  CHECK_INT(e.nreq, 1);
  CHECK_INT(tu_reply(t, &e.rx->msg, 183, "tu1"), 0);
  CHECK_INT(sip_txn_state(t), SIP_TXN_PROCEEDING);
  int k = recv_one(s, buf, sizeof(buf), 1000);
  CHECK(k > 0 && starts(buf, "SIP/2.0 183 "));
  udp_to(s, e.udp_port, req, (size_t)n); /* Proceeding: the 183 again */
  k = recv_one(s, buf, sizeof(buf), 1000);
  CHECK(k > 0 && starts(buf, "SIP/2.0 183 "));
  CHECK_INT(tu_reply(t, &e.rx->msg, 200, "tu1"), 0);
  double t0 = now_ms();
  CHECK_INT(sip_txn_state(t), SIP_TXN_COMPLETED);
  CHECK_INT(tu_reply(t, &e.rx->msg, 200, "tu1"), SIP_EINVAL);
  CHECK_INT(tu_reply(t, &e.rx->msg, 100, "tu1"), SIP_EINVAL);
  CHECK_INT(tu_reply(t, &e.rx->msg, 700, "tu1"), SIP_EINVAL);
  k = recv_one(s, buf, sizeof(buf), 1000);
  CHECK(k > 0 && starts(buf, "SIP/2.0 200 "));
  char ok[4096];
  memcpy(ok, buf, (size_t)(k > 0 ? k : 0));
  udp_to(s, e.udp_port, req, (size_t)n); /* Completed: the 200 again */
  int k2 = recv_one(s, buf, sizeof(buf), 1000);
  CHECK(k2 == k && memcmp(buf, ok, (size_t)k) == 0);
  CHECK_INT(e.nreq, 1);
  CHECK_INT(collect(s, 4 * T1, NULL, 0), 0); /* no timer re-sends */
  sip_txl_counters st = stats(&e);
  CHECK_INT(st.absorbed, 3);
  CHECK_INT(st.retransmissions, 2);
  /* Timer J = 64*T1, then the same request is a new transaction */
  RUN_UNTIL(sip_txn_state(t) == SIP_TXN_TERMINATED, 100 * T1);
  CHECK_INT(sip_txn_state(t), SIP_TXN_TERMINATED);
  CHECK_NEAR(now_ms() - t0, 64.0 * T1);
  RUN_UNTIL(e.ev_term == 1, 1000);
  CHECK_INT(e.ev_term, 1);
  udp_to(s, e.udp_port, req, (size_t)n);
  RUN_UNTIL(e.nreq == 2, 1000);
  CHECK_INT(e.nreq, 2);
  close(s);
  env_close(&e);
}

/* The TU gives up on requests: no 100, retransmissions absorbed, the end
 * after 64*T1 (an unanswered NIST / IST has no timer otherwise). */
static void test_abandon(void) {
  env e;
  env_open(&e, NULL);
  int pport, s = udp_sock(&pport);
  char req[2048], inv[2048];
  int n = mkreq(req, sizeof(req), "MESSAGE", "UDP", pport, "z9hG4bKab1", "ab@x",
                1, "MESSAGE", NULL);
  udp_to(s, e.udp_port, req, (size_t)n);
  RUN_UNTIL(e.nreq == 1, 1000);
  sip_txn *nist = e.txn;
  sip_txn_ref(nist);
  int in = mkreq(inv, sizeof(inv), "INVITE", "UDP", pport, "z9hG4bKab2", "ab@x",
                 2, "INVITE", NULL);
  udp_to(s, e.udp_port, inv, (size_t)in);
  RUN_UNTIL(e.nreq == 2, 1000);
  sip_txn *ist = e.txn;
  double t0 = now_ms();
  sip_txn_abandon(nist);
  sip_txn_abandon(ist);
  CHECK_INT(collect(s, 6 * T1, NULL, 0), 0); /* no 100 Trying */
  udp_to(s, e.udp_port, req, (size_t)n);
  udp_to(s, e.udp_port, inv, (size_t)in);
  CHECK_INT(collect(s, 3 * T1, NULL, 0), 0);
  CHECK_INT(e.nreq, 2); /* absorbed, not new */
  CHECK_INT(stats(&e).live_total, 2);
  RUN_UNTIL(stats(&e).live_total == 0, 100 * T1);
  CHECK_INT(stats(&e).live_total, 0);
  CHECK_NEAR(now_ms() - t0, 64.0 * T1);
  CHECK_INT(sip_txn_state(nist), SIP_TXN_TERMINATED);
  CHECK_INT(stats(&e).trying_sent, 0);
  run_for(2 * T1);
  CHECK_INT(e.ev_term, 0); /* detached */
  /* once a final is out, abandoning changes nothing */
  e.reply_status = 200;
  n = mkreq(req, sizeof(req), "OPTIONS", "UDP", pport, "z9hG4bKab3", "ab@x", 3,
            "OPTIONS", NULL);
  udp_to(s, e.udp_port, req, (size_t)n);
  RUN_UNTIL(e.nreq == 3, 1000);
  sip_txn_abandon(e.txn);
  CHECK_INT(sip_txn_state(e.txn), SIP_TXN_COMPLETED);
  sip_txn_unref(nist);
  close(s);
  env_close(&e);
}

/* A stray response and an ACK for nothing go up. */
static void test_strays(void) {
  env e;
  env_open(&e, NULL);
  int pport, s = udp_sock(&pport);
  char req[2048], resp[4096];
  int n = mkreq(req, sizeof(req), "OPTIONS", "UDP", pport, "z9hG4bKs1", "s@x",
                1, "OPTIONS", NULL);
  int rn = peer_reply(req, n, 200, "x", resp, sizeof(resp));
  udp_to(s, e.udp_port, resp, (size_t)rn);
  RUN_UNTIL(e.nstray == 1, 1000);
  CHECK_INT(e.nstray, 1);
  CHECK_INT(e.rxcode[SIP_TXL_RX_STRAY], 1);
  n = mkreq(req, sizeof(req), "ACK", "UDP", pport, "z9hG4bKs2", "s@x", 1, "ACK",
            "x");
  udp_to(s, e.udp_port, req, (size_t)n);
  RUN_UNTIL(e.nack == 1, 1000);
  CHECK_INT(e.nack, 1);
  CHECK_INT(e.nack_txn, 0);
  CHECK_INT(e.nreq, 0);
  sip_txl_counters st = stats(&e);
  CHECK_INT(st.stray_responses, 1);
  CHECK_INT(st.stray_acks, 1);
  CHECK_INT(st.live_total, 0);
  close(s);
  env_close(&e);
}

/* ---- CANCEL (§9.2)
 * ------------------------------------------------------------------- */

static void test_cancel(void) {
  env e;
  env_open(&e, NULL);
  e.cancel_reply = 1;
  int pport, s = udp_sock(&pport);
  char req[2048], can[2048], buf[4096];
  int n = mkreq(req, sizeof(req), "INVITE", "UDP", pport, "z9hG4bKc1", "c@x", 9,
                "INVITE", NULL);
  udp_to(s, e.udp_port, req, (size_t)n);
  RUN_UNTIL(e.nreq == 1, 1000);
  sip_txn *inv = e.txn;
  /* another INVITE transaction, so the lookup has to tell them apart */
  n = mkreq(req, sizeof(req), "INVITE", "UDP", pport, "z9hG4bKc2", "c@x", 10,
            "INVITE", NULL);
  udp_to(s, e.udp_port, req, (size_t)n);
  RUN_UNTIL(e.nreq == 2, 1000);
  sip_txn *inv2 = e.txn;
  sip_txn_ref(inv);
  CHECK(inv != inv2);
  int cn = mkreq(can, sizeof(can), "CANCEL", "UDP", pport, "z9hG4bKc1", "c@x",
                 9, "CANCEL", NULL);
  udp_to(s, e.udp_port, can, (size_t)cn);
  RUN_UNTIL(e.ncancel == 1, 1000);
  CHECK_INT(e.ncancel, 1);
  CHECK(e.cancelled == inv);
  CHECK_INT(e.nreq, 3); /* the CANCEL has its own transaction */
  int got200 = 0;
  for (int i = 0; i < 4; i++) {
    int k = recv_one(s, buf, sizeof(buf), 5 * T1);
    if (k > 0 && starts(buf, "SIP/2.0 200 ") &&
        contains(buf, (size_t)k, "CSeq: 9 CANCEL"))
      got200 = 1;
  }
  CHECK(got200);
  /* a CANCEL whose branch matches nothing, and one from another sent-by */
  cn = mkreq(can, sizeof(can), "CANCEL", "UDP", pport, "z9hG4bKc9", "c@x", 9,
             "CANCEL", NULL);
  udp_to(s, e.udp_port, can, (size_t)cn);
  RUN_UNTIL(e.ncancel == 2, 1000);
  CHECK(e.cancelled == NULL);
  cn = mkreq(can, sizeof(can), "CANCEL", "UDP", pport + 1, "z9hG4bKc1", "c@x",
             9, "CANCEL", NULL);
  udp_to(s, e.udp_port, can, (size_t)cn);
  RUN_UNTIL(e.ncancel == 3, 1000);
  CHECK(e.cancelled == NULL);
  /* not a CANCEL */
  CHECK(sip_txn_find_cancelled(e.txl, &e.rx->msg) == NULL);
  sip_txn_unref(inv);
  close(s);
  env_close(&e);
}

/* ---- RFC 2543 (§17.2.3 last paragraphs), with the RFC 4475 vector
 * ------------------------------------------------------------------- */

static char *read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f)
    return NULL;
  char *buf = malloc(65536);
  size_t n = buf ? fread(buf, 1, 65535, f) : 0;
  fclose(f);
  if (buf)
    buf[n] = '\0';
  *len = n;
  return buf;
}

static void test_rfc2543(void) {
  const char *dir = getenv("LUASIP_VECTORS");
  if (!dir)
    dir = LUASIP_VECTORS_DIR;
  char path[1024];
  snprintf(path, sizeof(path), "%s/rfc4475/inv2543.dat", dir);
  size_t vlen = 0;
  char *vec = read_file(path, &vlen);
  CHECK_MSG(vec != NULL, "cannot read %s", path);
  if (!vec)
    return;
  env e;
  env_open(&e, NULL);
  e.reply_status = 486; /* To tag "tu1" */
  int pport, s = udp_sock(&pport);
  udp_to(s, e.udp_port, vec, vlen);
  RUN_UNTIL(e.nreq == 1, 1000);
  CHECK_INT(e.nreq, 1);
  sip_txn *t = e.txn;
  CHECK(t && (t->flags & SIP__TF_2543));
  CHECK_INT(sip_txn_state(t), SIP_TXN_COMPLETED);
  sip_tp_counters tc0, tc1;
  RUN_UNTIL((sip_tp_stats(e.tp, &tc0), tc0.tx_msgs >= 1), 1000);
  /* the retransmission (byte-identical) is absorbed, the 486 re-sent */
  sip_txl_counters st0 = stats(&e);
  udp_to(s, e.udp_port, vec, vlen);
  RUN_UNTIL(stats(&e).absorbed == st0.absorbed + 1, 1000);
  CHECK_INT(stats(&e).absorbed, st0.absorbed + 1);
  CHECK_INT(e.nreq, 1);
  CHECK_INT(e.rxcode[SIP_TXL_RX_ABSORBED], 1);
  /* its CANCEL (no branch either) finds it */
  char can[2048];
  int cn = snprintf(can, sizeof(can),
                    "CANCEL sip:UserB@example.com SIP/2.0\r\n"
                    "Via: SIP/2.0/UDP iftgw.example.com\r\n"
                    "From: <sip:+13035551111@ift.client.example.net;user="
                    "phone>\r\n"
                    "To: sip:+16505552222@ss1.example.net;user=phone\r\n"
                    "Call-ID: inv2543.1717@ift.client.example.com\r\n"
                    "CSeq: 56 CANCEL\r\n\r\n");
  udp_to(s, e.udp_port, can, (size_t)cn);
  RUN_UNTIL(e.ncancel == 1, 1000);
  CHECK_INT(e.ncancel, 1);
  CHECK(e.cancelled == t);
  /* an ACK with another To tag is not this transaction's */
  const char *ackfmt =
      "ACK sip:UserB@example.com SIP/2.0\r\n"
      "Via: SIP/2.0/UDP iftgw.example.com\r\n"
      "From: <sip:+13035551111@ift.client.example.net;user="
      "phone>\r\n"
      "To: sip:+16505552222@ss1.example.net;user=phone;tag=%s\r\n"
      "Call-ID: inv2543.1717@ift.client.example.com\r\n"
      "CSeq: 56 ACK\r\n\r\n";
  char ack[2048];
  int an = snprintf(ack, sizeof(ack), ackfmt, "other");
  udp_to(s, e.udp_port, ack, (size_t)an);
  RUN_UNTIL(e.nack == 1, 1000);
  CHECK_INT(e.nack, 1);
  CHECK_INT(sip_txn_state(t), SIP_TXN_COMPLETED);
  /* the ACK with the 486's To tag matches: Confirmed, not for the TU */
  an = snprintf(ack, sizeof(ack), ackfmt, "tu1");
  udp_to(s, e.udp_port, ack, (size_t)an);
  RUN_UNTIL(sip_txn_state(t) == SIP_TXN_CONFIRMED, 1000);
  CHECK_INT(sip_txn_state(t), SIP_TXN_CONFIRMED);
  CHECK_INT(e.nack, 1);
  /* Timer G stopped: no more sends */
  run_for(T1);
  sip_tp_stats(e.tp, &tc0);
  run_for(8 * T1);
  sip_tp_stats(e.tp, &tc1);
  CHECK_INT(tc1.tx_msgs + tc1.tx_errors, tc0.tx_msgs + tc0.tx_errors);
  close(s);
  env_close(&e);
  free(vec);
}

/* ---- TCP
 * ------------------------------------------------------------------ */

static int tcp_listen_sock(int *port) {
  int s = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  struct sockaddr_storage sa;
  sip_tp_addr(&sa, "127.0.0.1", 9, 0);
  int one = 1;
  setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (bind(s, (struct sockaddr *)&sa, sizeof(struct sockaddr_in)) < 0 ||
      listen(s, 8) < 0)
    return -1;
  socklen_t n = sizeof(sa);
  getsockname(s, (struct sockaddr *)&sa, &n);
  *port = sip_tp_addr_port(&sa);
  return s;
}

static int tcp_connect(int port) {
  int s = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_storage sa;
  sip_tp_addr(&sa, "127.0.0.1", 9, port);
  fcntl(s, F_SETFL, O_NONBLOCK);
  int rc = connect(s, (struct sockaddr *)&sa, sizeof(struct sockaddr_in));
  CHECK(rc == 0 || errno == EINPROGRESS);
  run_for(5);
  return s;
}

/* Everything readable from a stream socket within ms, appended at buf. */
static int tcp_read(int s, char *buf, size_t cap, double ms) {
  size_t n = 0;
  double d = now_ms() + ms;
  while (now_ms() < d && n < cap - 1) {
    ssize_t k = recv(s, buf + n, cap - 1 - n, 0);
    if (k > 0)
      n += (size_t)k;
    else
      step();
  }
  buf[n] = '\0';
  return (int)n;
}

static int count_of(const char *p, const char *needle) {
  int c = 0;
  for (const char *q = strstr(p, needle); q; q = strstr(q + 1, needle))
    c++;
  return c;
}

static void test_tcp(void) {
  env e;
  env_open(&e, NULL);
  static char buf[16384];
  char req[2048], resp[4096], br[SIP_TXN_BRANCH_SIZE];

  /* client over TCP: no Timer E, a 200 completes at once (K = 0) */
  int lport, ls = tcp_listen_sock(&lport);
  CHECK(ls >= 0);
  sip_dest d;
  sip_dest_init(&d, SIP_TP_TCP);
  sip_tp_addr(&d.addr, "127.0.0.1", 9, lport);
  sip_txn_new_branch(br);
  int n = snprintf(req, sizeof(req),
                   "OPTIONS sip:x@127.0.0.1 SIP/2.0\r\n"
                   "Via: SIP/2.0/TCP 127.0.0.1:%d;branch=%s\r\n"
                   "Max-Forwards: 70\r\nFrom: <sip:a@a>;tag=1\r\n"
                   "To: <sip:x@x>\r\nCall-ID: tcp1@x\r\nCSeq: 1 OPTIONS\r\n"
                   "Content-Length: 0\r\n\r\n",
                   e.tcp_port, br);
  cres c = {0};
  sip_txn *t;
  CHECK_INT(sip_txn_request(e.txl, req, (size_t)n, &d, on_resp, &c, &t), 0);
  sip_txn_ref(t);
  int as = -1;
  double dl = now_ms() + 1000;
  while (as < 0 && now_ms() < dl) {
    as = accept(ls, NULL, NULL);
    if (as < 0)
      step();
  }
  CHECK(as >= 0);
  if (as >= 0) {
    fcntl(as, F_SETFL, O_NONBLOCK);
    int k = tcp_read(as, buf, sizeof(buf), 12 * T1);
    CHECK_INT(k, n); /* once: no retransmission */
    CHECK_INT(count_of(buf, "OPTIONS sip:"), 1);
    int rn = peer_reply(buf, k, 200, "t1", resp, sizeof(resp));
    CHECK(send(as, resp, (size_t)rn, MSG_NOSIGNAL) == rn);
    RUN_UNTIL(c.n == 1, 1000);
    CHECK_INT(c.n, 1);
    CHECK_INT(c.status[0], 200);
    RUN_UNTIL(sip_txn_state(t) == SIP_TXN_TERMINATED, 1000);
    CHECK_INT(sip_txn_state(t), SIP_TXN_TERMINATED); /* K = 0 */
    close(as);
  }
  sip_txn_unref(t);
  close(ls);
  CHECK_INT(stats(&e).retransmissions, 0);

  /* a closed port: 503 from the transport error */
  int cport, cs = tcp_listen_sock(&cport);
  close(cs); /* nothing listens there now */
  sip_dest_init(&d, SIP_TP_TCP);
  sip_tp_addr(&d.addr, "127.0.0.1", 9, cport);
  sip_txn_new_branch(br);
  n = snprintf(req, sizeof(req),
               "INVITE sip:x@127.0.0.1 SIP/2.0\r\n"
               "Via: SIP/2.0/TCP 127.0.0.1:%d;branch=%s\r\n"
               "Max-Forwards: 70\r\nFrom: <sip:a@a>;tag=1\r\n"
               "To: <sip:x@x>\r\nCall-ID: tcp2@x\r\nCSeq: 1 INVITE\r\n"
               "Content-Length: 0\r\n\r\n",
               e.tcp_port, br);
  cres c2 = {0};
  CHECK_INT(sip_txn_request(e.txl, req, (size_t)n, &d, on_resp, &c2, &t), 0);
  sip_txn_ref(t);
  RUN_UNTIL(c2.n == 1, 3000);
  CHECK_INT(c2.n, 1);
  CHECK_INT(c2.status[0], 503);
  CHECK_INT(c2.withmsg[0], 0);
  CHECK_INT(sip_txn_error(t), UV_ECONNREFUSED);
  CHECK_INT(sip_txn_state(t), SIP_TXN_TERMINATED);
  CHECK_INT(stats(&e).transport_errors, 1);
  sip_txn_unref(t);

  /* server over TCP: no Timer G; the ACK ends it at once (I = 0) */
  e.reply_status = 486;
  int s = tcp_connect(e.tcp_port);
  n = mkreq(req, sizeof(req), "INVITE", "TCP", 5060, "z9hG4bKtcps", "ts@x", 1,
            "INVITE", NULL);
  CHECK(send(s, req, (size_t)n, MSG_NOSIGNAL) == n);
  int k = tcp_read(s, buf, sizeof(buf), 12 * T1);
  CHECK_INT(count_of(buf, "SIP/2.0 486 "), 1);
  CHECK(k > 0);
  CHECK_INT(e.nreq, 1);
  t = e.txn;
  CHECK_INT(sip_txn_state(t), SIP_TXN_COMPLETED);
  n = mkreq(req, sizeof(req), "ACK", "TCP", 5060, "z9hG4bKtcps", "ts@x", 1,
            "ACK", "tu1");
  CHECK(send(s, req, (size_t)n, MSG_NOSIGNAL) == n);
  RUN_UNTIL(sip_txn_state(t) == SIP_TXN_TERMINATED, 1000);
  CHECK_INT(sip_txn_state(t), SIP_TXN_TERMINATED);
  CHECK_INT(e.nack, 0);
  /* NIST over TCP: J = 0 */
  e.reply_status = 200;
  n = mkreq(req, sizeof(req), "OPTIONS", "TCP", 5060, "z9hG4bKtcpn", "tn@x", 1,
            "OPTIONS", NULL);
  CHECK(send(s, req, (size_t)n, MSG_NOSIGNAL) == n);
  RUN_UNTIL(e.nreq == 2, 1000);
  k = tcp_read(s, buf, sizeof(buf), 3 * T1);
  CHECK_INT(count_of(buf, "SIP/2.0 200 "), 1);
  RUN_UNTIL(sip_txn_state(e.txn) == SIP_TXN_TERMINATED, 1000);
  CHECK_INT(sip_txn_state(e.txn), SIP_TXN_TERMINATED);
  CHECK_INT(stats(&e).retransmissions, 0);
  close(s);

  /* §17.2.4: the request's connection is gone and the Via's port refuses
   * a new one: the TU hears of it (event), the transaction ends */
  int xport, xs = tcp_listen_sock(&xport);
  close(xs);
  RUN_UNTIL(sip_tp_conn_count(e.tp) == 0, 2000);
  e.reply_status = 0;
  s = tcp_connect(e.tcp_port);
  n = mkreq(req, sizeof(req), "OPTIONS", "TCP", xport, "z9hG4bKtcpx", "tx@x", 1,
            "OPTIONS", NULL);
  CHECK(send(s, req, (size_t)n, MSG_NOSIGNAL) == n);
  RUN_UNTIL(e.nreq == 3, 1000);
  CHECK_INT(e.nreq, 3);
  close(s);
  RUN_UNTIL(sip_tp_conn_count(e.tp) == 0, 2000);
  CHECK_INT(sip_tp_conn_count(e.tp), 0);
  int ev0 = e.ev_transport;
  uint64_t te0 = stats(&e).transport_errors;
  CHECK_INT(tu_reply(e.txn, &e.rx->msg, 200, "tu1"), 0);
  CHECK_INT(sip_txn_state(e.txn), SIP_TXN_COMPLETED);
  RUN_UNTIL(e.ev_transport == ev0 + 1, 3000);
  CHECK_INT(e.ev_transport, ev0 + 1);
  CHECK_INT(sip_txn_state(e.txn), SIP_TXN_TERMINATED);
  CHECK_INT(sip_txn_error(e.txn), UV_ECONNREFUSED);
  CHECK_INT(stats(&e).transport_errors, te0 + 1);
  env_close(&e);
}

/* ---- limits, references, closing
 * ---------------------------------------------------- */

static void test_max_transactions(void) {
  env e;
  sip_txl_config c;
  config(&c);
  c.max_transactions = 2;
  env_open(&e, &c);
  int pport, s = udp_sock(&pport);
  char req[2048], buf[4096];
  for (int i = 0; i < 2; i++) {
    char br[32];
    snprintf(br, sizeof(br), "z9hG4bKmax%d", i);
    int n = mkreq(req, sizeof(req), "OPTIONS", "UDP", pport, br, "m@x", i + 1,
                  "OPTIONS", NULL);
    udp_to(s, e.udp_port, req, (size_t)n);
  }
  RUN_UNTIL(e.nreq == 2, 1000);
  CHECK_INT(stats(&e).live_total, 2);
  int n = mkreq(req, sizeof(req), "OPTIONS", "UDP", pport, "z9hG4bKmax2", "m@x",
                3, "OPTIONS", NULL);
  udp_to(s, e.udp_port, req, (size_t)n);
  int k = recv_one(s, buf, sizeof(buf), 1000);
  CHECK(k > 0 && starts(buf, "SIP/2.0 503 Service Unavailable\r\n"));
  CHECK(k > 0 && contains(buf, (size_t)k, ";tag="));
  CHECK(k > 0 && contains(buf, (size_t)k, "z9hG4bKmax2"));
  CHECK_INT(e.nreq, 2);
  CHECK_INT(e.rxcode[SIP_TXL_RX_REJECTED], 1);
  /* an ACK still passes */
  n = mkreq(req, sizeof(req), "ACK", "UDP", pport, "z9hG4bKmaxa", "m@x", 9,
            "ACK", "x");
  udp_to(s, e.udp_port, req, (size_t)n);
  RUN_UNTIL(e.nack == 1, 1000);
  CHECK_INT(e.nack, 1);
  sip_dest d;
  udp_dest(&d, pport);
  char br[SIP_TXN_BRANCH_SIZE];
  sip_txn_new_branch(br);
  n = mkcreq(req, sizeof(req), "OPTIONS", e.udp_port, br, "m2@x");
  CHECK_INT(sip_txn_request(e.txl, req, (size_t)n, &d, NULL, NULL, NULL),
            UV_EAGAIN);
  CHECK_INT(stats(&e).rejected, 2);
  close(s);
  env_close(&e);
}

/* A referenced transaction outlives its termination and the layer's close;
 * the layer is freed with the last reference. */
static void test_refs_close(void) {
  env e;
  env_open(&e, NULL);
  sip_dest d;
  udp_dest(&d, 9);
  char req[2048], br[SIP_TXN_BRANCH_SIZE];
  sip_txn_new_branch(br);
  int n = mkcreq(req, sizeof(req), "INVITE", e.udp_port, br, "rc@x");
  cres c = {0};
  sip_txn *t;
  CHECK_INT(sip_txn_request(e.txl, req, (size_t)n, &d, on_resp, &c, &t), 0);
  sip_txn_ref(t);
  sip_txn_set_udata(t, &c);
  CHECK(sip_txn_udata(t) == &c);
  keep(&e, NULL, NULL);
  sip_txl_close(e.txl, on_txl_closed, &e);
  CHECK_INT(sip_txn_state(t), SIP_TXN_TERMINATED);
  sip_tp_close(e.tp, on_tp_closed, &e);
  RUN_UNTIL(e.tp_closed, 3000);
  run_for(3 * T1);
  CHECK_INT(e.txl_closed, 0); /* our reference keeps it */
  CHECK_INT(c.n, 0);          /* no callbacks on close */
  CHECK_STR(sip_txn_method(t), "INVITE");
  sip_txn_unref(t);
  CHECK_INT(e.txl_closed, 1);
}

/* ---- load: 100,000 concurrent server transactions
 * ------------------------------------------------ */

static sip_rxbuf *fake_rx(const char *p, size_t n) {
  sip_rxbuf *rx = malloc(offsetof(sip_rxbuf, bytes) + n + 1);
  rx->refs = 1;
  rx->len = (uint32_t)n;
  memcpy(rx->bytes, p, n);
  rx->bytes[n] = '\0';
  rx->data = rx->bytes;
  rx->limits = sip_default_limits;
  sip_msg_init(&rx->msg, &rx->limits);
  return rx;
}

static void test_load(void) {
  enum { N = 100000 };
  env e;
  sip_txl_config c;
  config(&c);
  c.t1_ms = 50; /* J = 3.2 s */
  c.max_transactions = 2 * N;
  env_open(&e, &c);
  e.load = 1;
  int pport, sink = udp_sock(&pport); /* never read: drops are fine */
  sip_src src;
  memset(&src, 0, sizeof(src));
  src.transport = SIP_TP_UDP;
  src.listener = e.udp_id;
  sip_tp_addr(&src.peer, "127.0.0.1", 9, pport);
  sip_txl_counters st0 = stats(&e);
  char req[1024];
  uint64_t J = 64 * (uint64_t)c.t1_ms;
  uv_update_time(&loop);
  uint64_t due_first = uv_now(&loop) + J;
  double t0 = now_ms();
  int bad = 0;
  for (int i = 0; i < N; i++) {
    char br[32], cid[32];
    snprintf(br, sizeof(br), "z9hG4bKload%d", i);
    snprintf(cid, sizeof(cid), "load%d@x", i);
    int n = mkreq(req, sizeof(req), "OPTIONS", "UDP", pport, br, cid, 1,
                  "OPTIONS", NULL);
    sip_rxbuf *rx = fake_rx(req, (size_t)n);
    if (sip_msg_parse(&rx->msg, rx->data, rx->len, SIP_MODE_DATAGRAM) < 0 ||
        sip_txl_receive(e.txl, &rx->msg, rx, &src) != SIP_TXL_RX_REQUEST)
      bad++;
    sip_rxbuf_unref(rx);
  }
  double t1 = now_ms();
  uv_update_time(&loop);
  uint64_t due_last = uv_now(&loop) + J;
  /* the loop has not run: every one of them exists, each with its Timer J
   * (64*T1 after its 200) in the heap */
  CHECK_INT(bad, 0);
  CHECK_INT(e.nreq, N);
  sip_txl_counters st = stats(&e);
  CHECK_INT(st.live[SIP_TXN_NIST], N);
  CHECK_INT(st.live_total, N);
  CHECK_INT(sip__txn_check(e.txl), 0);
  CHECK_INT(e.txl->heap_len, N);
  CHECK(e.txl->heap_len > 0 && e.txl->heap[0]->due >= due_first &&
        e.txl->heap[0]->due <= due_last);
  printf("load: %d server transactions (OPTIONS answered 200, Completed) "
         "created in %.0f ms\n",
         N, t1 - t0);
  printf("load: sizeof(struct sip_txn) = %zu bytes; malloc'd per live "
         "transaction: %.1f bytes (struct, key block, the stored 200); "
         "layer total incl. tables and timer heap: %.1f bytes\n",
         sizeof(struct sip_txn), (double)(st.txn_bytes - st0.txn_bytes) / N,
         (double)(st.mem_bytes - st0.mem_bytes) / N);
  /* a retransmission of one of them is absorbed and answered */
  {
    int n = mkreq(req, sizeof(req), "OPTIONS", "UDP", pport, "z9hG4bKload77",
                  "load77@x", 1, "OPTIONS", NULL);
    sip_rxbuf *rx = fake_rx(req, (size_t)n);
    sip_msg_parse(&rx->msg, rx->data, rx->len, SIP_MODE_DATAGRAM);
    CHECK_INT(sip_txl_receive(e.txl, &rx->msg, rx, &src), SIP_TXL_RX_ABSORBED);
    sip_rxbuf_unref(rx);
  }
  /* all terminate by Timer J, none early, none late (in loop time: what
   * the layer uses) */
  uint64_t first = 0, last = 0;
  double dl = now_ms() + (double)J * 3 + 5000;
  while (now_ms() < dl) {
    uv_run(&loop, UV_RUN_NOWAIT);
    uint32_t live = stats(&e).live_total;
    if (live < N && !first)
      first = uv_now(&loop);
    if (live == 0) {
      last = uv_now(&loop);
      break;
    }
    struct timespec ts = {0, 500000};
    nanosleep(&ts, NULL);
  }
  CHECK_INT(stats(&e).live_total, 0);
  CHECK_MSG(first >= due_first, "first J at %llu, due %llu",
            (unsigned long long)first, (unsigned long long)due_first);
  /* due_last bounds every due from above, read after the last request: the
   * clock may have ticked once since that request's own due was set */
  CHECK_MSG(last + 1 >= due_last && last <= due_last + (slow ? 2000 : 200),
            "last J at %llu, due %llu", (unsigned long long)last,
            (unsigned long long)due_last);
  CHECK_INT(sip__txn_check(e.txl), 0);
  CHECK_INT(e.txl->heap_len, 0);
  printf("load: all %d terminated by Timer J: first %llu ms after its due "
         "time, last %llu ms after its due time\n",
         N, (unsigned long long)(first - due_first),
         (unsigned long long)(last - due_last));
  close(sink);
  env_close(&e);
}

/* What matching needs is missing: an error, nothing called. */
static void test_receive_errors(void) {
  env e;
  env_open(&e, NULL);
  sip_src src;
  memset(&src, 0, sizeof(src));
  src.transport = SIP_TP_UDP;
  src.listener = e.udp_id;
  sip_tp_addr(&src.peer, "127.0.0.1", 9, 9);
  const char *nocseq = "OPTIONS sip:a@b SIP/2.0\r\n"
                       "Via: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKe1\r\n"
                       "From: <sip:a@a>;tag=1\r\nTo: <sip:b@b>\r\n"
                       "Call-ID: e1@x\r\n\r\n";
  const char *novia = "OPTIONS sip:a@b SIP/2.0\r\n"
                      "From: <sip:a@a>;tag=1\r\nTo: <sip:b@b>\r\n"
                      "Call-ID: e1@x\r\nCSeq: 1 OPTIONS\r\n\r\n";
  const char *nocallid2543 = "OPTIONS sip:a@b SIP/2.0\r\n"
                             "Via: SIP/2.0/UDP 127.0.0.1:9\r\n"
                             "From: <sip:a@a>;tag=1\r\nTo: <sip:b@b>\r\n"
                             "CSeq: 1 OPTIONS\r\n\r\n";
  const char *resp_novia = "SIP/2.0 200 OK\r\nCSeq: 1 OPTIONS\r\n\r\n";
  const char *msgs[] = {nocseq, novia, nocallid2543, resp_novia};
  int want[] = {SIP_ECSEQ, SIP_EVIA, SIP_ENOTFOUND, SIP_TXL_RX_STRAY};
  for (int i = 0; i < 4; i++) {
    sip_rxbuf *rx = fake_rx(msgs[i], strlen(msgs[i]));
    CHECK(sip_msg_parse(&rx->msg, rx->data, rx->len, SIP_MODE_DATAGRAM) > 0);
    CHECK_INT(sip_txl_receive(e.txl, &rx->msg, rx, &src), want[i]);
    sip_rxbuf_unref(rx);
  }
  CHECK_INT(e.nreq, 0);
  CHECK_INT(e.nstray, 1);
  CHECK_INT(stats(&e).live_total, 0);
  env_close(&e);
}

int main(void) {
  slow = check_timers_slow();
  if (slow)
    T1 = 40;
  uv_loop_init(&loop);
  sip_msg_init(&peer_msg, NULL);
  test_names();
  test_request_errors();
  test_ict_timer_a();
  test_ict_non2xx();
  test_ict_2xx();
  test_nict_timer_e();
  test_nict_proceeding();
  test_detach();
  test_sync_send_error();
  test_udp_fallback();
  test_ist_timer_g();
  test_ist_ack();
  test_ist_accepted();
  test_ist_trying();
  test_ist_reliable_1xx();
  test_nist();
  test_abandon();
  test_strays();
  test_cancel();
  test_rfc2543();
  test_tcp();
  test_max_transactions();
  test_refs_close();
  test_receive_errors();
  test_load();
  uv_run(&loop, UV_RUN_NOWAIT);
  CHECK_INT(uv_loop_close(&loop), 0);
  return check_summary("test_txn");
}
