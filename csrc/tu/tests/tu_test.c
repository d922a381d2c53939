/* Transaction user core test: a transport manager, a transaction layer and
 * the TU core on the loop, against a raw UDP peer on 127.0.0.1 (loopback
 * only; every wait is bounded). Covers dispatch (sanity rejects), replies
 * with the Server header, §9.2 UAS CANCEL, §13.3.1.4 2xx retransmission on
 * the transaction heap with the ACK matched in the TU (and Timer L without
 * one), next hop, Via, and a request sent over a client transaction. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "sip_error.h"
#include "sip_reply.h"
#include "sip_tu.h"
#include "sip_tu_config.h"
#include "test/check.h"
#include "test/udp_peer.h"

static uv_loop_t loop;
static int T1 = 10; /* ms; 40 when check_timers_slow() */

static void step(void) {
  uv_run(&loop, UV_RUN_NOWAIT);
  struct timespec ts = {0, 200000};
  nanosleep(&ts, NULL);
}

typedef struct env {
  sip_tp *tp;
  sip_txl *txl;
  sip_tu tu;
  int port;
  int answer; /* on_request answers INVITEs 200 */
  int nreq, nack, nack_matched, nresp;
  sip_txn *cancelled; /* sip_tu_cancel's result */
  sip_txn *invite;    /* the last INVITE's transaction (a reference) */
  int resp_status;
  int tp_closed, txl_closed;
} env;

static void on_request(void *ud, sip_txn *t, sip_msg *m, sip_rxbuf *rx,
                       const sip_src *src) {
  env *e = ud;
  (void)rx;
  e->nreq++;
  if (m->method.len == 6 && memcmp(m->method.p, "CANCEL", 6) == 0) {
    e->cancelled = sip_tu_cancel(&e->tu, t, m, src);
    return;
  }
  if (e->invite)
    sip_txn_unref(e->invite);
  e->invite = t;
  sip_txn_ref(t);
  if (e->answer) {
    char tag[SIP_TU_TAG_LEN];
    CHECK_INT(sip_tu_reply(&e->tu, t, m, src, 200, SIP_STR_NULL,
                           sip_tu_new_tag(tag), SIP_STR_NULL, SIP_STR_NULL,
                           SIP_TU_RETRANSMIT),
              0);
  }
}

static void on_ack(void *ud, sip_txn *t, sip_msg *m, sip_rxbuf *rx,
                   const sip_src *src) {
  env *e = ud;
  (void)rx;
  (void)src;
  e->nack++;
  e->nack_matched += sip_tu_ack(&e->tu, t, m);
}

static void on_message(void *ud, sip_msg *m, sip_rxbuf *rx,
                       const sip_src *src) {
  env *e = ud;
  CHECK_INT(sip_tu_receive(&e->tu, m, rx, src), 0); /* stateful */
}

static void on_tp_closed(void *arg) { ((env *)arg)->tp_closed = 1; }
static void on_txl_closed(void *arg) { ((env *)arg)->txl_closed = 1; }

static void env_open(env *e) {
  memset(e, 0, sizeof(*e));
  sip_tp_config tc;
  sip_tp_config_init(&tc);
  tc.ud = e;
  tc.on_message = on_message;
  char err[256];
  CHECK_INT(sip_tp_new(&loop, &tc, &e->tp, err, sizeof err), 0);
  int id = sip_tp_listen(e->tp, "udp:127.0.0.1:0");
  CHECK(id >= 0);
  e->port = sip_tp_listener_port(e->tp, id);
  sip_txl_config c;
  sip_txl_config_init(&c);
  c.t1_ms = (uint32_t)T1;
  c.t2_ms = (uint32_t)(4 * T1);
  c.trying_delay_ms = SIP_TXN_NO_TRYING;
  c.ud = e;
  c.on_request = on_request;
  c.on_ack = on_ack;
  CHECK_INT(sip_txl_new(&loop, e->tp, &c, &e->txl), 0);
  sip_tu_init(&e->tu, e->tp, e->txl);
}

static void env_close(env *e) {
  if (e->invite)
    sip_txn_unref(e->invite);
  sip_tu_close(&e->tu);
  sip_txl_close(e->txl, on_txl_closed, e);
  sip_tp_close(e->tp, on_tp_closed, e);
  double d = now_ms() + 3000;
  while (!(e->tp_closed && e->txl_closed) && now_ms() < d)
    step();
  CHECK(e->tp_closed && e->txl_closed);
}

/* ---- the peer ------------------------------------------------------------ */

static void peer_send(int s, int port, const char *p) {
  struct sockaddr_storage sa;
  sip_tp_addr(&sa, "127.0.0.1", 9, port);
  size_t n = strlen(p);
  CHECK_INT(
      sendto(s, p, n, 0, (struct sockaddr *)&sa, sizeof(struct sockaddr_in)),
      (ssize_t)n);
}

static void request(char *out, size_t cap, const char *method, int port,
                    const char *branch, const char *callid, const char *to,
                    const char *extra) {
  snprintf(out, cap,
           "%s sip:bob@127.0.0.1 SIP/2.0\r\n"
           "Via: SIP/2.0/UDP 127.0.0.1:%d;branch=z9hG4bK%s\r\n"
           "Max-Forwards: 70\r\n"
           "From: <sip:alice@127.0.0.1>;tag=a1\r\n"
           "To: %s\r\n"
           "Call-ID: %s\r\n"
           "CSeq: 1 %s\r\n"
           "%s"
           "Content-Length: 0\r\n\r\n",
           method, port, branch, to, callid, method, extra ? extra : "");
}

/* The To header line of a response (without CRLF) into out. */
static void to_of(const char *resp, char *out, size_t cap) {
  const char *p = strstr(resp, "\r\nTo: ");
  out[0] = '\0';
  if (!p)
    return;
  p += 6;
  const char *q = strstr(p, "\r\n");
  snprintf(out, cap, "%.*s", (int)(q - p), p);
}

/* ---- tests --------------------------------------------------------------- */

static void test_2xx_until_ack(void) {
  env e;
  env_open(&e);
  e.answer = 1;
  CHECK_INT(sip_tu_set_header(&e.tu, 'S', "tu-test", 7), 0);
  int pport, ps = peer_open(&pport);
  CHECK(ps >= 0);
  char req[2048], resp[4096], to[256];
  request(req, sizeof req, "INVITE", pport, "inv1", "c1@test",
          "<sip:bob@127.0.0.1>", NULL);
  peer_send(ps, e.port, req);
  /* the first 200, then copies at T1, 3*T1, 7*T1 (within 10*T1) */
  int n = peer_count(ps, 10 * T1, "SIP/2.0 200", resp, sizeof resp);
  CHECK_MSG(n >= 3 && n <= 5, "%d 200s in %d ms", n, 10 * T1);
  CHECK(strstr(resp, "\r\nServer: tu-test\r\n") != NULL);
  sip_txl_counters st;
  sip_txl_stats(e.txl, &st);
  CHECK(st.retx_2xx >= 2);
  CHECK(e.tu.acks != NULL);
  /* the ACK: its own branch, the 2xx's To tag */
  to_of(resp, to, sizeof to);
  CHECK(strstr(to, ";tag=") != NULL);
  request(req, sizeof req, "ACK", pport, "ack1", "c1@test", to, NULL);
  peer_send(ps, e.port, req);
  double d = now_ms() + 500;
  while (e.nack == 0 && now_ms() < d)
    step();
  CHECK_INT(e.nack_matched, 1);
  CHECK(e.tu.acks == NULL);
  CHECK_INT(peer_count(ps, 8 * T1, "SIP/2.0 200", NULL, 0), 0);
  CHECK(!sip_txn_awaits_ack(e.invite));
  /* Timer L ends it: not counted as unacknowledged */
  d = now_ms() + 64 * T1 + 500;
  while (sip_txn_state(e.invite) != SIP_TXN_TERMINATED && now_ms() < d)
    step();
  CHECK_INT(sip_txn_state(e.invite), SIP_TXN_TERMINATED);
  sip_txl_stats(e.txl, &st);
  CHECK_INT(st.unacked_2xx, 0);
  CHECK_INT(e.tu.st.replies, 1);
  close(ps);
  env_close(&e);
}

static void test_2xx_no_ack(void) {
  env e;
  env_open(&e);
  e.answer = 1;
  int pport, ps = peer_open(&pport);
  char req[2048];
  request(req, sizeof req, "INVITE", pport, "inv2", "c2@test",
          "<sip:bob@127.0.0.1>", NULL);
  peer_send(ps, e.port, req);
  double d = now_ms() + 64 * T1 + 1000;
  while ((!e.invite || sip_txn_state(e.invite) != SIP_TXN_TERMINATED) &&
         now_ms() < d)
    step();
  CHECK(e.invite && sip_txn_state(e.invite) == SIP_TXN_TERMINATED);
  sip_txl_counters st;
  sip_txl_stats(e.txl, &st);
  CHECK_INT(st.unacked_2xx, 1);
  /* at T1, 3, 7, 15, 23, ... up to 64*T1 with T2 = 4*T1: about 17 */
  CHECK_MSG(st.retx_2xx >= 10 && st.retx_2xx <= 20, "%llu re-sent",
            (unsigned long long)st.retx_2xx);
  CHECK(e.tu.acks == NULL); /* the entry went with its transaction */
  close(ps);
  env_close(&e);
}

static void test_cancel(void) {
  env e;
  env_open(&e); /* INVITEs are left unanswered */
  int pport, ps = peer_open(&pport);
  char req[2048], resp[4096];
  request(req, sizeof req, "INVITE", pport, "inv3", "c3@test",
          "<sip:bob@127.0.0.1>", NULL);
  peer_send(ps, e.port, req);
  double d = now_ms() + 500;
  while (!e.invite && now_ms() < d)
    step();
  CHECK(e.invite != NULL);
  request(req, sizeof req, "CANCEL", pport, "inv3", "c3@test",
          "<sip:bob@127.0.0.1>", NULL);
  peer_send(ps, e.port, req);
  CHECK_INT(peer_count(ps, 100, "SIP/2.0 200", resp, sizeof resp), 1);
  CHECK(strstr(resp, "CSeq: 1 CANCEL") != NULL);
  CHECK(e.cancelled == e.invite);
  /* a CANCEL that matches nothing: 481 */
  e.cancelled = e.invite;
  request(req, sizeof req, "CANCEL", pport, "none", "c4@test",
          "<sip:bob@127.0.0.1>", NULL);
  peer_send(ps, e.port, req);
  CHECK_INT(peer_count(ps, 100, "SIP/2.0 481", NULL, 0), 1);
  CHECK(e.cancelled == NULL);
  close(ps);
  env_close(&e);
}

/* The value of counter name in st[0..n), -1 when absent. */
static long long stat_of(const sip_tu_stat *st, int n, const char *name) {
  for (int i = 0; i < n; i++)
    if (strcmp(st[i].name, name) == 0)
      return (long long)st[i].value;
  return -1;
}

static void test_reject(void) {
  env e;
  env_open(&e);
  int pport, ps = peer_open(&pport);
  char req[2048], resp[4096];
  request(req, sizeof req, "OPTIONS", pport, "opt1", "c5@test",
          "<sip:bob@127.0.0.1>", "Require: foo\r\n");
  peer_send(ps, e.port, req);
  CHECK_INT(peer_count(ps, 100, "SIP/2.0 420", resp, sizeof resp), 1);
  CHECK(strstr(resp, "\r\nUnsupported: foo\r\n") != NULL);
  CHECK_INT(e.nreq, 0);
  CHECK_INT(e.tu.st.requests, 1);
  CHECK_INT(e.tu.st.rejected, 1);
  CHECK_INT(e.tu.st.rejected_by[3], 1);
  /* the counters of every layer by name */
  sip_tu_stat st[SIP_TU_STATS_MAX];
  int n = sip_tu_stats(&e.tu, st, SIP_TU_STATS_MAX);
  CHECK(n > 60 && n < SIP_TU_STATS_MAX);
  CHECK_INT(stat_of(st, n, "requests"), 1);
  CHECK_INT(stat_of(st, n, "rejected"), 1);
  CHECK_INT(stat_of(st, n, "rejected_420"), 1);
  CHECK_INT(stat_of(st, n, "rx_msgs"), 1);
  CHECK_INT(stat_of(st, n, "tx_msgs"), 1);
  CHECK_INT(stat_of(st, n, "responses_sent_4xx"), 1);
  CHECK_INT(stat_of(st, n, "connections_udp"), 0);
  CHECK_INT(stat_of(st, n, "txn_live"), 0);
  CHECK_INT(stat_of(st, n, "unacked_2xx"), 0);
  int twice = 0; /* each name once */
  for (int i = 0; i < n; i++)
    for (int j = i + 1; j < n; j++)
      twice += strcmp(st[i].name, st[j].name) == 0;
  CHECK_INT(twice, 0);
  CHECK_INT(sip_tu_stats(&e.tu, st, 5), 5); /* cut at cap */
  /* a stateless element: no txn_ names, the 2xx counters still */
  sip_txl *txl = e.tu.txl;
  e.tu.txl = NULL;
  int m = sip_tu_stats(&e.tu, st, SIP_TU_STATS_MAX);
  CHECK_INT(m, n - 16);
  CHECK_INT(stat_of(st, m, "txn_live"), -1);
  CHECK_INT(stat_of(st, m, "retx_2xx"), 0);
  e.tu.txl = txl;
  close(ps);
  env_close(&e);
}

static void parse(sip_msg *m, const char *text) {
  sip_msg_init(m, NULL);
  CHECK(sip_msg_parse(m, text, strlen(text), SIP_MODE_DATAGRAM) >= 0);
}

typedef struct tracked {
  sip_tu_client c;
  int nresp, status, ended;
} tracked;

static void tracked_response(sip_tu_client *c, int status, sip_msg *m,
                             sip_rxbuf *rx) {
  tracked *k = (tracked *)c;
  (void)m;
  (void)rx;
  k->nresp++;
  k->status = status;
}

static void tracked_end(sip_tu_client *c) { ((tracked *)c)->ended++; }

/* Client transactions the TU keeps track of: listed until they end (Timer
 * F here: the peer never answers), found by branch, and ended by
 * sip_tu_close */
static void test_tracked_clients(void) {
  env e;
  env_open(&e);
  int pport, ps = peer_open(&pport);
  char text[1024];
  snprintf(text, sizeof text,
           "OPTIONS sip:carol@127.0.0.1:%d SIP/2.0\r\n"
           "Max-Forwards: 70\r\nFrom: <sip:a@x>;tag=1\r\nTo: <sip:c@x>\r\n"
           "Call-ID: tr@x\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
           pport);
  sip_msg m;
  parse(&m, text);
  tracked a = {.c = {.on_response = tracked_response, .on_end = tracked_end}};
  tracked b = a;
  char ba[SIP_TXN_BRANCH_SIZE], bb[SIP_TXN_BRANCH_SIZE];
  CHECK_INT(sip_tu_client_start(&e.tu, &a.c, &m, NULL, ba), 0);
  CHECK_INT(sip_tu_client_start(&e.tu, &b.c, &m, NULL, bb), 0);
  CHECK(e.tu.clients == &b.c && b.c.next == &a.c && a.c.prev == &b.c);
  CHECK_INT(a.c.transport, SIP_TP_UDP);
  CHECK(sip_tu_client_find(&e.tu, ba, strlen(ba)) == &a.c);
  CHECK(sip_tu_client_find(&e.tu, bb, strlen(bb)) == &b.c);
  CHECK(sip_tu_client_find(&e.tu, bb, strlen(bb) - 1) == NULL);
  CHECK(sip_tu_client_find(&e.tu, "z9hG4bKnone", 11) == NULL);
  /* an ACK is not sent over a client transaction: not listed */
  sip_msg ack;
  char atext[1024];
  snprintf(atext, sizeof atext,
           "ACK sip:carol@127.0.0.1:%d SIP/2.0\r\n"
           "Max-Forwards: 70\r\nFrom: <sip:a@x>;tag=1\r\nTo: <sip:c@x>\r\n"
           "Call-ID: tr@x\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n",
           pport);
  parse(&ack, atext);
  tracked x = a;
  CHECK(sip_tu_client_start(&e.tu, &x.c, &ack, NULL, ba) < 0);
  CHECK(e.tu.clients == &b.c);
  sip_msg_free(&ack);
  /* no answer: Timer F (64*T1) gives a 408, then the end */
  double d = now_ms() + 64 * T1 + 2000;
  while (!(a.ended && b.ended) && now_ms() < d)
    step();
  CHECK_INT(a.nresp, 1);
  CHECK_INT(a.status, 408);
  CHECK_INT(a.ended, 1);
  CHECK_INT(b.ended, 1);
  CHECK(e.tu.clients == NULL && a.c.t == NULL);
  /* one still running when the TU closes: ended there, once */
  tracked c = {.c = {.on_response = tracked_response, .on_end = tracked_end}};
  CHECK_INT(sip_tu_client_start(&e.tu, &c.c, &m, NULL, ba), 0);
  sip_tu_close(&e.tu);
  CHECK_INT(c.ended, 1);
  CHECK_INT(c.nresp, 0);
  CHECK(e.tu.clients == NULL);
  sip_tu_init(&e.tu, e.tp, e.txl); /* for env_close */
  sip_msg_free(&m);
  close(ps);
  env_close(&e);
  CHECK_INT(c.ended, 1); /* no event after the close */
}

/* The UAS decisions: the 500 of a failed handler, the 487 of §9.2, and
 * when a reply may go */
static void test_uas_decisions(void) {
  char inv[1024], ack[1024],
      res[] = "SIP/2.0 200 OK\r\n"
              "Via: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bKr\r\n"
              "From: <sip:a@b>;tag=1\r\nTo: <sip:b@c>\r\n"
              "Call-ID: r1\r\nCSeq: 1 INVITE\r\n"
              "Content-Length: 0\r\n\r\n";
  request(inv, sizeof inv, "INVITE", 5070, "d1", "d1@test",
          "<sip:bob@127.0.0.1>", NULL);
  request(ack, sizeof ack, "ACK", 5070, "d2", "d1@test", "<sip:bob@127.0.0.1>",
          NULL);
  sip_msg mi, ma, mr, mc;
  parse(&mi, inv);
  parse(&ma, ack);
  parse(&mr, res);
  char cancel[1024];
  request(cancel, sizeof cancel, "CANCEL", 5070, "d1", "d1@test",
          "<sip:bob@127.0.0.1>", NULL);
  parse(&mc, cancel);
  CHECK_INT(sip_tu_is_ack(&ma), 1);
  CHECK_INT(sip_tu_is_ack(&mi), 0);
  CHECK_INT(sip_tu_is_ack(&mr), 0);
  CHECK_INT(sip_tu_is_method(&mi, "INVITE"), 1);
  CHECK_INT(sip_tu_is_method(&mi, "INVIT"), 0);
  CHECK_INT(sip_tu_is_method(&mi, "invite"), 0); /* case-sensitive */
  CHECK_INT(sip_tu_is_method(&mc, "CANCEL"), 1);
  CHECK_INT(sip_tu_is_method(&mr, "INVITE"), 0); /* a response */

  /* 500: an open request nobody answered, never an ACK or a response */
  CHECK_INT(sip_tu_uas_failed(&mi, 0), 1);
  CHECK_INT(sip_tu_uas_failed(&ma, 0), 0);
  CHECK_INT(sip_tu_uas_failed(&mr, 0), 0);
  CHECK_INT(sip_tu_uas_failed(NULL, 0), 0);
  static const unsigned bits[] = {SIP_TU_UAS_FINAL, SIP_TU_UAS_DROPPED,
                                  SIP_TU_UAS_CANCELLED, SIP_TU_UAS_RELAYED,
                                  SIP_TU_UAS_CLOSED};
  for (int i = 0; i < 5; i++)
    CHECK_MSG(sip_tu_uas_failed(&mi, bits[i]) == 0, "state %u", bits[i]);

  /* 487: only while nobody answered, dropped or relayed */
  CHECK_INT(sip_tu_uas_cancels(0), 1);
  for (int i = 0; i < 5; i++)
    CHECK_MSG(sip_tu_uas_cancels(bits[i]) == 0, "state %u", bits[i]);

  /* the parts of a reply */
  CHECK_INT(sip_tu_reply_parts(SIP_STR_LIT("Not\tHere"), SIP_STR_NULL), 0);
  CHECK_INT(sip_tu_reply_parts(SIP_STR_LIT("a\r\nX: y"), SIP_STR_NULL),
            SIP_TU_BAD_REASON);
  CHECK_INT(sip_tu_reply_parts(SIP_STR_LIT("a\x7f"), SIP_STR_NULL), 0);
  CHECK_INT(sip_tu_reply_parts(SIP_STR_NULL, SIP_STR_LIT("X: 1\r\n")), 0);
  CHECK_INT(sip_tu_reply_parts(SIP_STR_NULL, SIP_STR_LIT("X: 1")),
            SIP_TU_BAD_EXTRA);
  CHECK_INT(sip_tu_reply_parts(SIP_STR_NULL, SIP_STR_LIT("\n")),
            SIP_TU_BAD_EXTRA);
  CHECK_INT(sip_tu_reply_parts(SIP_STR_NULL, SIP_STR_LIT("X: 1\n")),
            SIP_TU_BAD_EXTRA);

  /* where a UAC request goes: the spec, else the next hop */
  sip_dest d;
  char name[64];
  CHECK_INT(sip_tu_request_dest(&mi, "tls:127.0.0.1:5071", "example.com", &d,
                                name, sizeof name),
            0);
  CHECK_INT(d.transport, SIP_TP_TLS);
  CHECK_INT(sip_tp_addr_port(&d.addr), 5071);
  CHECK(d.tls_name && strcmp(d.tls_name, "example.com") == 0);
  CHECK_INT(
      sip_tu_request_dest(&mi, "tcp:127.0.0.1:5072", "", &d, name, sizeof name),
      0);
  CHECK(d.transport == SIP_TP_TCP && d.tls_name == NULL);
  CHECK(sip_tu_request_dest(&mi, "bogus", NULL, &d, name, sizeof name) < 0);
  CHECK_INT(sip_tu_request_dest(&mi, NULL, NULL, &d, name, sizeof name), 0);
  CHECK_INT(d.transport, SIP_TP_UDP); /* sip:bob@127.0.0.1 */
  CHECK_INT(sip_tp_addr_port(&d.addr), 5060);

  /* replies */
  CHECK_INT(sip_tu_uas_can_reply(&mi, 0, 200), 0);
  CHECK_INT(sip_tu_uas_can_reply(&mi, SIP_TU_UAS_DROPPED, 200), 0);
  CHECK_INT(sip_tu_uas_can_reply(&mr, 0, 200), SIP_TU_NOREPLY_RESPONSE);
  CHECK_INT(sip_tu_uas_can_reply(&ma, 0, 200), SIP_TU_NOREPLY_ACK);
  CHECK_INT(
      sip_tu_uas_can_reply(&mi, SIP_TU_UAS_CANCELLED | SIP_TU_UAS_FINAL, 200),
      SIP_TU_NOREPLY_CANCELLED);
  CHECK_INT(sip_tu_uas_can_reply(&mi, SIP_TU_UAS_FINAL, 180),
            SIP_TU_NOREPLY_ANSWERED);
  CHECK_INT(sip_tu_uas_can_reply(&mi, SIP_TU_UAS_RELAYED, 200),
            SIP_TU_NOREPLY_RELAYED);
  CHECK_INT(sip_tu_uas_can_reply(&mi, SIP_TU_UAS_RELAYED, 183), 0);
  CHECK_INT(sip_tu_uas_can_reply(&mi, SIP_TU_UAS_CLOSED, 200),
            SIP_TU_NOREPLY_CLOSED);
  sip_msg_free(&mi);
  sip_msg_free(&ma);
  sip_msg_free(&mr);
  sip_msg_free(&mc);
}

/* core.server's options: defaults, ranges, types, the sanity checks by
 * name, the header values and what reaches the TU */
static void test_config(void) {
  sip_tu_config c;
  sip_tu_config_init(&c);
  sip_tp_config tp;
  sip_tp_config_init(&tp);
  CHECK_INT(c.tp.limits.max_size, tp.limits.max_size);
  CHECK_INT(c.tp.max_conn_per_source, 0);
  CHECK_INT(c.transactions, 1);
  CHECK_INT(c.auto_cancel, 1);
  CHECK_INT(c.force_rport, 0);
  CHECK_INT(c.server_len + c.ua_len, 0);
  int n = 0;
  while (sip_tu_option_at(n))
    n++;
  CHECK_INT(n, 31);
  CHECK(sip_tu_option_at(-1) == NULL);
  const sip_tu_option *o = sip_tu_option_find("max_size");
  CHECK(o && o->kind == SIP_TU_OPT_INT && o->lo == 256 && o->hi == 1 << 26);
  CHECK_INT(sip_tu_config_set(&c, o, 255), SIP_ERANGE);
  CHECK_INT(c.tp.limits.max_size, tp.limits.max_size); /* unchanged */
  CHECK_INT(sip_tu_config_set(&c, o, 4096), 0);
  CHECK_INT(c.tp.limits.max_size, 4096);
  CHECK_INT(sip_tu_config_set(&c, sip_tu_option_find("udp_rcvbuf"), 0), 0);
  CHECK_INT(c.tp.udp_rcvbuf, 0);
  CHECK_INT(sip_tu_config_set(&c, sip_tu_option_find("t1"), 40), 0);
  CHECK_INT(c.txl.t1_ms, 40);
  o = sip_tu_option_find("trying_delay");
  CHECK_INT(sip_tu_config_set(&c, o, -2), SIP_ERANGE);
  CHECK_INT(sip_tu_config_set(&c, o, -1), 0);
  CHECK_INT(c.txl.trying_delay_ms, SIP_TXN_NO_TRYING);
  CHECK_INT(sip_tu_config_set(&c, o, 50), 0);
  CHECK_INT(c.txl.trying_delay_ms, 50);
  o = sip_tu_option_find("transactions");
  CHECK(o && o->kind == SIP_TU_OPT_BOOL);
  CHECK_INT(sip_tu_config_set(&c, o, 2), SIP_ERANGE);
  CHECK_INT(sip_tu_config_set(&c, o, 0), 0);
  CHECK_INT(c.transactions, 0);
  CHECK_INT(sip_tu_config_set(&c, sip_tu_option_find("force_rport"), 1), 0);
  CHECK_INT(c.force_rport, 1);
  CHECK(sip_tu_option_find("nonesuch") == NULL);
  /* the sanity checks */
  o = sip_tu_option_find("require");
  CHECK(o && o->kind == SIP_TU_OPT_CHECK);
  CHECK(c.sanity.checks & SIP_SANITY_REQUIRE);
  CHECK_INT(sip_tu_config_set(&c, o, 0), 0);
  CHECK(!(c.sanity.checks & SIP_SANITY_REQUIRE));
  CHECK(c.sanity.checks & SIP_SANITY_VERSION);
  CHECK_INT(sip_tu_config_set(&c, sip_tu_option_find("proxy_require"), 1), 0);
  CHECK(c.sanity.checks & SIP_SANITY_PROXY_REQUIRE);
  /* the headers */
  char big[SIP_TU_HEADER_MAX + 1];
  memset(big, 'x', sizeof big);
  CHECK_INT(sip_tu_config_header(&c, 'S', big, sizeof big), SIP_ERANGE);
  CHECK_INT(sip_tu_config_header(&c, 'S', big, sizeof big - 1), 0);
  CHECK_INT(c.server_len, SIP_TU_HEADER_MAX + 10);
  CHECK_INT(sip_tu_config_header(&c, 'S', "", 0), SIP_ERANGE);
  CHECK_INT(sip_tu_config_header(&c, 'S', "a\tb", 3), SIP_EINVAL);
  CHECK_INT(sip_tu_config_header(&c, 'U', "a\x7f", 2), SIP_EINVAL);
  CHECK_INT(sip_tu_config_header(&c, 'X', "a", 1), SIP_EINVAL);
  CHECK_INT(sip_tu_config_header(&c, 'S', "srv 1.0", 7), 0);
  CHECK_INT(sip_tu_config_header(&c, 'U', "ua 2", 4), 0);
  CHECK(strncmp(c.ua_line, "User-Agent: ua 2\r\n", c.ua_len) == 0);
  /* into a TU with a transaction layer: the Server value reaches it */
  env e;
  env_open(&e);
  sip_tu_configure(&e.tu, &c);
  CHECK_INT(e.tu.force_rport, 1);
  CHECK_INT(e.tu.sanity.checks, c.sanity.checks);
  CHECK(e.tu.server_len == 17 &&
        memcmp(e.tu.server_line, "Server: srv 1.0\r\n", 17) == 0);
  CHECK(e.tu.ua_len == 18 &&
        memcmp(e.tu.ua_line, "User-Agent: ua 2\r\n", 18) == 0);
  CHECK_STR(sip_txl_server_line(e.txl), "Server: srv 1.0\r\n");
  CHECK_INT(sip_tu_config_header(&c, 'S', NULL, 0), 0);
  sip_tu_configure(&e.tu, &c);
  CHECK_INT(e.tu.server_len, 0);
  CHECK_INT(sip_txl_server_line(e.txl).len, 0);
  env_close(&e);
}

static int nresp;
static int resp_status;
static void on_client(void *arg, sip_txn *t, int status, sip_msg *m,
                      sip_rxbuf *rx) {
  (void)arg;
  (void)t;
  (void)m;
  (void)rx;
  nresp++;
  resp_status = status;
}

static void test_uac(void) {
  env e;
  env_open(&e);
  CHECK_INT(sip_tu_set_header(&e.tu, 'U', "tu-uac", 6), 0);
  CHECK_INT(sip_tu_set_header(&e.tu, 'U', "bad\001", 4), SIP_EINVAL);
  int pport, ps = peer_open(&pport);
  char text[1024];
  snprintf(text, sizeof text,
           "OPTIONS sip:carol@127.0.0.1:%d SIP/2.0\r\n"
           "Max-Forwards: 70\r\n"
           "From: <sip:alice@127.0.0.1>;tag=u1\r\n"
           "To: <sip:carol@127.0.0.1>\r\n"
           "Call-ID: uac1@test\r\n"
           "CSeq: 7 OPTIONS\r\n"
           "Content-Length: 0\r\n\r\n",
           pport);
  sip_msg m;
  sip_msg_init(&m, NULL);
  CHECK(sip_msg_parse(&m, text, strlen(text), SIP_MODE_DATAGRAM) >= 0);
  sip_dest d;
  CHECK_INT(sip_tu_next_hop(&m, 0, &d, NULL, 0), 0);
  CHECK_INT(d.transport, SIP_TP_UDP);
  CHECK_INT(sip_tp_addr_port(&d.addr), pport);
  char branch[SIP_TXN_BRANCH_SIZE];
  sip_txn *t = NULL;
  int transport = -1;
  nresp = 0;
  CHECK_INT(
      sip_tu_request(&e.tu, &m, NULL, on_client, NULL, branch, &t, &transport),
      0);
  CHECK_INT(transport, SIP_TP_UDP);
  CHECK(strncmp(branch, SIP_TXN_MAGIC, 7) == 0);
  char got[4096];
  /* sent (and re-sent by the client transaction at T1, 2*T1, ...) */
  CHECK(peer_count(ps, 100, "OPTIONS ", got, sizeof got) >= 1);
  char via[256];
  snprintf(via, sizeof via,
           "\r\nVia: SIP/2.0/UDP 127.0.0.1:%d;branch=%s;rport\r\n", e.port,
           branch);
  CHECK_MSG(strstr(got, via) != NULL, "no %s in %s", via, got);
  CHECK(strstr(got, "\r\nUser-Agent: tu-uac\r\n") != NULL);
  /* the peer answers 200: the client transaction gets it */
  sip_msg r;
  sip_msg_init(&r, NULL);
  CHECK(sip_msg_parse(&r, got, strlen(got), SIP_MODE_DATAGRAM) >= 0);
  char out[4096];
  int n = sip_reply_write(&r, 200, SIP_STR_NULL, SIP_STR_LIT("p1"),
                          SIP_STR_NULL, SIP_STR_NULL, out, sizeof out);
  CHECK(n > 0);
  out[n > 0 ? n : 0] = '\0';
  peer_send(ps, e.port, out);
  double dl = now_ms() + 500;
  while (nresp == 0 && now_ms() < dl)
    step();
  CHECK_INT(nresp, 1);
  CHECK_INT(resp_status, 200);
  sip_msg_free(&r);
  sip_msg_free(&m);
  /* a Route with lr decides the next hop */
  snprintf(text, sizeof text,
           "OPTIONS sip:carol@192.0.2.1 SIP/2.0\r\n"
           "Route: <sip:127.0.0.1:5099;lr;transport=tcp>\r\n"
           "Max-Forwards: 70\r\nFrom: <sip:a@x>;tag=1\r\nTo: <sip:c@x>\r\n"
           "Call-ID: r@x\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n");
  sip_msg_init(&m, NULL);
  CHECK(sip_msg_parse(&m, text, strlen(text), SIP_MODE_DATAGRAM) >= 0);
  CHECK_INT(sip_tu_next_hop(&m, 0, &d, NULL, 0), 0);
  CHECK_INT(d.transport, SIP_TP_TCP);
  CHECK_INT(sip_tp_addr_port(&d.addr), 5099);
  /* no TCP listener: the Via cannot be written */
  char *bytes;
  CHECK_INT(sip_tu_write_request(&e.tu, &m, &d, "z9hG4bKx", &bytes),
            UV_EAFNOSUPPORT);
  sip_msg_free(&m);
  close(ps);
  env_close(&e);
}

static void parse_text(sip_msg *m, const char *via_lines) {
  static char text[2048];
  snprintf(text, sizeof text,
           "OPTIONS sip:bob@b.example SIP/2.0\r\n%s"
           "Max-Forwards: 70\r\nFrom: <sip:a@x>;tag=1\r\nTo: <sip:b@x>\r\n"
           "Call-ID: rp@x\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
           via_lines);
  sip_msg_init(m, NULL);
  CHECK(sip_msg_parse(m, text, strlen(text), SIP_MODE_DATAGRAM) >= 0);
}

static void src_of(sip_src *src, int family, const char *ip, int port) {
  memset(src, 0, sizeof *src);
  src->transport = SIP_TP_UDP;
  if (family == AF_INET) {
    struct sockaddr_in *in = (struct sockaddr_in *)&src->peer;
    in->sin_family = AF_INET;
    in->sin_port = htons((uint16_t)port);
    inet_pton(AF_INET, ip, &in->sin_addr);
  } else {
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&src->peer;
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons((uint16_t)port);
    inet_pton(AF_INET6, ip, &in6->sin6_addr);
  }
}

/* RFC 3581 force rport: the top Via only, once, the rest kept. */
static void test_force_rport(void) {
  sip_msg m;
  sip_src src;
  const sip_via *v;
  src_of(&src, AF_INET, "192.0.2.9", 40000);
  parse_text(&m, "Via: SIP/2.0/UDP 10.0.0.1:5062;branch=z9hG4bKabc\r\n");
  CHECK_INT(sip_tu_force_rport(&m, &src), 1);
  CHECK_INT(sip_msg_get_vias(&m, &v), 0);
  CHECK_STR(v->received, "192.0.2.9");
  CHECK_INT(v->rport, 40000);
  CHECK_STR(v->branch, "z9hG4bKabc");
  CHECK_STR(v->host, "10.0.0.1");
  CHECK_INT(sip_tu_force_rport(&m, &src), 0); /* once */
  sip_msg_free(&m);

  /* stale received/rport replaced; the other values of the line and the
   * next Via line untouched */
  parse_text(&m,
             "Via: SIP/2.0/UDP 10.0.0.1;received=10.9.9.9;rport=1;"
             "branch=z9hG4bKtop;x=1, SIP/2.0/TCP p.example;branch=z9hG4bK2\r\n"
             "Via: SIP/2.0/UDP q.example;branch=z9hG4bK3\r\n");
  src_of(&src, AF_INET6, "2001:db8::7", 5070);
  CHECK_INT(sip_tu_force_rport(&m, &src), 1);
  CHECK_INT(sip_msg_get_vias(&m, &v), 0);
  CHECK_STR(v->received, "2001:db8::7");
  CHECK_INT(v->rport, 5070);
  CHECK_STR(v->branch, "z9hG4bKtop");
  CHECK(v->next != NULL);
  CHECK_STR(v->next->host, "p.example");
  CHECK_STR(v->next->branch, "z9hG4bK2");
  CHECK(v->next->next != NULL);
  CHECK_STR(v->next->next->branch, "z9hG4bK3");
  int idx = sip_msg_find(&m, SIP_H_VIA, NULL, 0, 0);
  sip_str line;
  CHECK_INT(sip_msg_unfolded(&m, &m.hdr[idx], &line), 0);
  const char *want = "SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKtop;x=1;"
                     "received=2001:db8::7;rport=5070, SIP/2.0/TCP "
                     "p.example;branch=z9hG4bK2";
  CHECK_MSG(line.len == strlen(want) && memcmp(line.p, want, line.len) == 0,
            "Via: %.*s", (int)line.len, line.p);
  sip_msg_free(&m);

  /* a source without an IP address, a request without a Via */
  parse_text(&m, "Via: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKabc\r\n");
  memset(&src, 0, sizeof src);
  CHECK_INT(sip_tu_force_rport(&m, &src), SIP_EINVAL);
  sip_msg_free(&m);
  parse_text(&m, "");
  src_of(&src, AF_INET, "192.0.2.9", 40000);
  CHECK(sip_tu_force_rport(&m, &src) < 0);
  sip_msg_free(&m);
}

/* The next hop with a branch's Request-URI and pushed Route, and a
 * destination spec: one rule for the TU, the proxy and the bindings. */
static void test_next_hop_dest(void) {
  sip_msg m;
  sip_dest d;
  parse_text(&m, "Via: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKnh\r\n");
  /* the message's Request-URI names a host: no numeric destination */
  CHECK_INT(sip_tu_next_hop(&m, 0, &d, NULL, 0), UV_EAI_NONAME);
  /* a branch's Request-URI */
  CHECK_INT(sip_tu_next_hop_dest(&m, SIP_STR_LIT("sip:bob@127.0.0.1:5071"),
                                 SIP_STR_NULL, 0, &d, NULL, 0),
            0);
  CHECK_INT(d.transport, SIP_TP_UDP);
  CHECK_INT(sip_tp_addr_port(&d.addr), 5071);
  /* a pushed loose Route wins over the Request-URI */
  CHECK_INT(sip_tu_next_hop_dest(&m, SIP_STR_LIT("sip:bob@127.0.0.1:5071"),
                                 SIP_STR_LIT("<sip:127.0.0.1:5072;lr;"
                                             "transport=tcp>"),
                                 0, &d, NULL, 0),
            0);
  CHECK_INT(d.transport, SIP_TP_TCP);
  CHECK_INT(sip_tp_addr_port(&d.addr), 5072);
  /* §18.1.1: a large request over TCP when the URI names no transport */
  CHECK_INT(sip_tu_next_hop_dest(&m, SIP_STR_LIT("sip:bob@127.0.0.1:5071"),
                                 SIP_STR_NULL, 2000, &d, NULL, 0),
            0);
  CHECK_INT(d.transport, SIP_TP_TCP);
  CHECK(sip_tu_next_hop_dest(&m, SIP_STR_LIT("sip:"), SIP_STR_NULL, 0, &d, NULL,
                             0) < 0);
  sip_msg_free(&m);

  CHECK_INT(sip_tu_dest_spec("tcp:127.0.0.1:5090", 18, &d), 0);
  CHECK_INT(d.transport, SIP_TP_TCP);
  CHECK_INT(sip_tp_addr_port(&d.addr), 5090);
  CHECK(d.tls_name == NULL);
  /* not NUL-terminated: only len bytes count */
  CHECK_INT(sip_tu_dest_spec("udp:[::1]:5091xyz", 14, &d), 0);
  CHECK_INT(d.transport, SIP_TP_UDP);
  CHECK_INT(d.addr.ss_family, AF_INET6);
  CHECK_INT(sip_tp_addr_port(&d.addr), 5091);
  CHECK(sip_tu_dest_spec("bogus", 5, &d) < 0);
  char longspec[200];
  memset(longspec, '1', sizeof longspec);
  CHECK_INT(sip_tu_dest_spec(longspec, sizeof longspec, &d), SIP_EINVAL);
  CHECK_INT(sip_tu_dest_spec(NULL, 0, &d), SIP_EINVAL);
}

int main(void) {
  if (check_timers_slow())
    T1 = 40;
  CHECK_INT(uv_loop_init(&loop), 0);
  test_2xx_until_ack();
  test_2xx_no_ack();
  test_cancel();
  test_reject();
  test_config();
  test_uas_decisions();
  test_tracked_clients();
  test_uac();
  test_force_rport();
  test_next_hop_dest();
  CHECK_INT(uv_loop_close(&loop), 0);
  return check_summary("test_tu");
}
