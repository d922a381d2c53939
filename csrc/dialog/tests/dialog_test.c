/* Dialog layer test (RFC 3261 §12, §13.2.2.4): dialog state from messages
 * (UAC and UAS, early and confirmed, forked INVITE), route set and remote
 * target refresh, CSeq order, the 481 verdict, requests built from dialog
 * state (loose and strict routing), and, on the loop against a raw UDP peer
 * on 127.0.0.1 (loopback only; every wait bounded), the ACK for a 2xx sent
 * by the UAC core and sent again, and a BYE over a client transaction. */
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "sip_dialog.h"
#include "sip_error.h"
#include "sip_reply.h"
#include "test/check.h"
#include "test/tree.h"
#include "test/udp_peer.h"

/* A parsed message over a copy of text (freed by msg_free). */
typedef struct tmsg {
  sip_msg m;
  char *text;
} tmsg;

static int msg_parse(tmsg *t, const char *text) {
  t->text = strdup(text);
  sip_msg_init(&t->m, NULL);
  int rc = sip_msg_parse(&t->m, t->text, strlen(t->text), SIP_MODE_DATAGRAM);
  CHECK_MSG(rc >= 0, "parse %d: %s", rc, text);
  return rc;
}

static void msg_free(tmsg *t) {
  sip_msg_free(&t->m);
  free(t->text);
}

static const char *INVITE =
    "INVITE sip:bob@example.com SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKinv1\r\n"
    "Max-Forwards: 70\r\n"
    "From: \"Alice\" <sip:alice@example.com>;tag=A1\r\n"
    "To: <sip:bob@example.com>\r\n"
    "Call-ID: call1@test\r\n"
    "CSeq: 10 INVITE\r\n"
    "Contact: <sip:alice@127.0.0.1:5060>\r\n"
    "Content-Length: 0\r\n\r\n";

/* A response to INVITE above: status, To tag, Contact host, Record-Route
 * lines ("" for none). */
static void response(char *out, size_t cap, int status, const char *tag,
                     const char *contact, const char *rr) {
  snprintf(out, cap,
           "SIP/2.0 %d X\r\n"
           "Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKinv1\r\n"
           "%s"
           "From: \"Alice\" <sip:alice@example.com>;tag=A1\r\n"
           "To: <sip:bob@example.com>;tag=%s\r\n"
           "Call-ID: call1@test\r\n"
           "CSeq: 10 INVITE\r\n"
           "%s%s%s"
           "Content-Length: 0\r\n\r\n",
           status, rr, tag, contact ? "Contact: <" : "", contact ? contact : "",
           contact ? ">\r\n" : "");
}

static int has(const char *text, const char *part) {
  int ok = strstr(text, part) != NULL;
  if (!ok)
    fprintf(stderr, "missing [%s] in:\n%s\n", part, text);
  return ok;
}

static void test_uac_dialog(void) {
  tmsg req, r180, r200;
  char text[2048];
  msg_parse(&req, INVITE);
  response(
      text, sizeof text, 180, "B1", "sip:bob@10.0.0.2",
      "Record-Route: <sip:p2.example.com;lr>, <sip:p1.example.com;lr>\r\n");
  msg_parse(&r180, text);
  sip_dialog *d;
  CHECK_INT(sip_dialog_uac_new(&req.m, &r180.m, &d), 0);
  CHECK_INT(d->state, SIP_DLG_EARLY);
  CHECK_INT(d->role, SIP_DLG_UAC);
  CHECK_STR(d->call_id, "call1@test");
  CHECK_STR(d->local_tag, "A1");
  CHECK_STR(d->remote_tag, "B1");
  CHECK_STR(d->local_uri, "\"Alice\" <sip:alice@example.com>");
  CHECK_STR(d->remote_uri, "<sip:bob@example.com>");
  CHECK_STR(d->remote_target, "sip:bob@10.0.0.2");
  CHECK_STR(d->local_contact, "<sip:alice@127.0.0.1:5060>");
  CHECK_INT(d->nroutes, 2);
  /* §12.1.2: the UAC reverses the Record-Route */
  if (d->nroutes == 2) {
    CHECK_STR(d->routes[0], "<sip:p1.example.com;lr>");
    CHECK_STR(d->routes[1], "<sip:p2.example.com;lr>");
  }
  CHECK_INT(d->local_cseq, 10);
  CHECK_INT(d->invite_cseq, 10);
  CHECK(sip_dialog_matches(d, &r180.m));
  /* the 2xx confirms it; the route set is recomputed from the 2xx and the
   * remote target taken from its Contact (§13.2.2.4) */
  response(text, sizeof text, 200, "B1", "sip:bob@10.0.0.3:5070",
           "Record-Route: <sip:p3.example.com;lr>\r\n");
  msg_parse(&r200, text);
  CHECK_INT(sip_dialog_uac_response(d, &r200.m), 0);
  CHECK_INT(d->state, SIP_DLG_CONFIRMED);
  CHECK_STR(d->remote_target, "sip:bob@10.0.0.3:5070");
  CHECK_INT(d->nroutes, 1);
  if (d->nroutes == 1)
    CHECK_STR(d->routes[0], "<sip:p3.example.com;lr>");
  /* §12.2.1.1: a BYE from the dialog state, next CSeq, loose route */
  char *bye;
  int n = sip_dialog_request(d, "BYE", 0, SIP_STR_NULL, SIP_STR_NULL, &bye);
  CHECK(n > 0);
  if (n > 0) {
    CHECK(strncmp(bye, "BYE sip:bob@10.0.0.3:5070 SIP/2.0\r\n", 35) == 0);
    CHECK(has(bye, "\r\nTo: <sip:bob@example.com>;tag=B1\r\n"));
    CHECK(has(bye, "\r\nFrom: \"Alice\" <sip:alice@example.com>;tag=A1\r\n"));
    CHECK(has(bye, "\r\nCall-ID: call1@test\r\n"));
    CHECK(has(bye, "\r\nCSeq: 11 BYE\r\n"));
    CHECK(has(bye, "\r\nRoute: <sip:p3.example.com;lr>\r\n"));
    CHECK(has(bye, "\r\nMax-Forwards: 70\r\n"));
    CHECK(strstr(bye, "Contact:") == NULL); /* not a target refresh */
    CHECK(has(bye, "\r\nContent-Length: 0\r\n\r\n"));
    /* it parses */
    tmsg chk;
    CHECK(msg_parse(&chk, bye) >= 0);
    CHECK(chk.m.is_request);
    msg_free(&chk);
  }
  free(bye);
  /* a re-INVITE with a body: Contact, CSeq 12, invite_cseq follows */
  char *re;
  n = sip_dialog_request(d, "INVITE", 0,
                         SIP_STR_LIT("Content-Type: application/sdp\r\n"),
                         SIP_STR_LIT("v=0\r\n"), &re);
  CHECK(n > 0);
  if (n > 0) {
    CHECK(has(re, "\r\nCSeq: 12 INVITE\r\n"));
    CHECK(has(re, "\r\nContact: <sip:alice@127.0.0.1:5060>\r\n"));
    CHECK(has(re, "Content-Type: application/sdp\r\nContent-Length: 5\r\n"
                  "\r\nv=0\r\n"));
  }
  free(re);
  CHECK_INT(d->invite_cseq, 12);
  /* ACK takes the INVITE's number and does not count */
  char *ack;
  n = sip_dialog_request(d, "ACK", 12, SIP_STR_NULL, SIP_STR_NULL, &ack);
  CHECK(n > 0 && has(ack, "\r\nCSeq: 12 ACK\r\n"));
  free(ack);
  CHECK_INT(d->local_cseq, 12);
  /* misuse */
  CHECK_INT(sip_dialog_request(d, "ACK", 0, SIP_STR_NULL, SIP_STR_NULL, &ack),
            SIP_EINVAL);
  CHECK_INT(sip_dialog_request(d, "B YE", 0, SIP_STR_NULL, SIP_STR_NULL, &ack),
            SIP_EINVAL);
  CHECK_INT(
      sip_dialog_request(d, "INFO", 0, SIP_STR_LIT("X: y"), SIP_STR_NULL, &ack),
      SIP_EINVAL);
  /* a 481 to a request within the dialog ends it (§12.2.1.2) */
  tmsg r481;
  snprintf(text, sizeof text,
           "SIP/2.0 481 Gone\r\nVia: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bKb\r\n"
           "From: <sip:alice@example.com>;tag=A1\r\n"
           "To: <sip:bob@example.com>;tag=B1\r\nCall-ID: call1@test\r\n"
           "CSeq: 13 INFO\r\nContent-Length: 0\r\n\r\n");
  msg_parse(&r481, text);
  CHECK_INT(sip_dialog_uac_response(d, &r481.m), 0);
  CHECK_INT(d->state, SIP_DLG_TERMINATED);
  msg_free(&r481);
  sip_dialog_free(d);
  /* responses that make no dialog */
  tmsg r100, r200nc;
  response(text, sizeof text, 100, "", NULL, "");
  msg_parse(&r100, text);
  CHECK_INT(sip_dialog_uac_new(&req.m, &r100.m, &d), SIP_EINVAL);
  response(text, sizeof text, 200, "B9", NULL, "");
  msg_parse(&r200nc, text);
  CHECK_INT(sip_dialog_uac_new(&req.m, &r200nc.m, &d), SIP_EINVAL);
  CHECK(d == NULL);
  msg_free(&r100);
  msg_free(&r200nc);
  msg_free(&req);
  msg_free(&r180);
  msg_free(&r200);
}

static void test_fork(void) {
  sip_dialogs s;
  CHECK_INT(sip_dialogs_init(&s, 4), 0);
  tmsg req, a, b, a200, b200;
  char text[2048];
  msg_parse(&req, INVITE);
  response(text, sizeof text, 183, "forkA", "sip:bob@10.0.0.1", "");
  msg_parse(&a, text);
  response(text, sizeof text, 180, "forkB", "sip:bob@10.0.0.2", "");
  msg_parse(&b, text);
  sip_dialog *da, *db, *x;
  CHECK_INT(sip_dialogs_uac_response(&s, &req.m, &a.m, &da), 1);
  CHECK_INT(sip_dialogs_uac_response(&s, &req.m, &b.m, &db), 1);
  CHECK(da && db && da != db);
  CHECK_INT((int)s.count, 2);
  /* a retransmitted 183 finds its dialog */
  CHECK_INT(sip_dialogs_uac_response(&s, &req.m, &a.m, &x), 0);
  CHECK(x == da);
  CHECK(sip_dialogs_find(&s, &b.m) == db);
  /* fork B answers: B confirmed, A still early */
  response(text, sizeof text, 200, "forkB", "sip:bob@10.0.0.2", "");
  msg_parse(&b200, text);
  CHECK_INT(sip_dialogs_uac_response(&s, &req.m, &b200.m, &x), 0);
  CHECK(x == db);
  CHECK_INT(db->state, SIP_DLG_CONFIRMED);
  CHECK_INT(da->state, SIP_DLG_EARLY);
  /* a 2xx from a fork never seen early makes a confirmed dialog */
  response(text, sizeof text, 200, "forkC", "sip:bob@10.0.0.4", "");
  msg_parse(&a200, text);
  CHECK_INT(sip_dialogs_uac_response(&s, &req.m, &a200.m, &x), 1);
  CHECK(x && x->state == SIP_DLG_CONFIRMED);
  CHECK_INT((int)s.count, 3);
  /* the INVITE is over: the early one ends */
  CHECK_INT((int)sip_dialogs_end_early(&s, SIP_STR_LIT("call1@test"),
                                       SIP_STR_LIT("A1")),
            1);
  CHECK_INT(da->state, SIP_DLG_TERMINATED);
  CHECK_INT(db->state, SIP_DLG_CONFIRMED);
  CHECK_INT(sip_dialogs_remove(&s, da), 1);
  CHECK_INT(sip_dialogs_remove(&s, da), 0);
  sip_dialog_free(da);
  CHECK_INT((int)s.count, 2);
  sip_dialogs_free(&s);
  msg_free(&req);
  msg_free(&a);
  msg_free(&b);
  msg_free(&a200);
  msg_free(&b200);
}

/* An in-dialog request to the UAS of test_uas: method, CSeq, To tag. */
static void uas_req(char *out, size_t cap, const char *method, int cseq,
                    const char *totag, const char *contact) {
  snprintf(out, cap,
           "%s sip:bob@127.0.0.1:5062 SIP/2.0\r\n"
           "Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK%s%d\r\n"
           "Max-Forwards: 70\r\n"
           "From: <sip:alice@example.com>;tag=A1\r\n"
           "To: <sip:bob@example.com>%s%s\r\n"
           "Call-ID: call2@test\r\n"
           "CSeq: %d %s\r\n"
           "%s%s%s"
           "Content-Length: 0\r\n\r\n",
           method, method, cseq, totag ? ";tag=" : "", totag ? totag : "", cseq,
           method, contact ? "Contact: <" : "", contact ? contact : "",
           contact ? ">\r\n" : "");
}

/* The tree of dlg:info() (sip_dialog_info) of test_uas's dialog. */
static void check_info(const sip_dialog *d) {
  temit e;
  sip_tree_emitter em;
  temit_init(&e, &em);
  sip_dialog_info(d, &em);
  CHECK_INT(e.opens, e.closes);
  CHECK_INT(e.top, 0);
  static const char *const want[][2] = {
      {"role", "uas"},
      {"state", "confirmed"},
      {"call_id", "call2@test"},
      {"local_tag", "B2"},
      {"remote_tag", "A1"},
      {"local_uri", "<sip:bob@example.com>"},
      {"remote_uri", "<sip:alice@example.com>"},
      {"remote_target", "sip:alice@10.1.1.1"},
      {"local_contact", "<sip:bob@127.0.0.1:5062>"},
  };
  for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
    const tnode *f = tfield(&e.root, want[i][0]);
    CHECK_MSG(f && f->kind == SIP_TREE_STR && !strcmp(f->s, want[i][1]),
              "%s: got %s", want[i][0], f && f->s ? f->s : "(none)");
  }
  const tnode *rc = tfield(&e.root, "remote_cseq");
  CHECK(rc && rc->kind == SIP_TREE_UINT && rc->n == 5);
  CHECK(!tfield(&e.root, "local_cseq")); /* no request sent yet */
  const tnode *ic = tfield(&e.root, "invite_cseq");
  CHECK(ic && ic->kind == SIP_TREE_UINT);
  const tnode *rt = tfield(&e.root, "routes");
  CHECK(rt && rt->nkids == 2 &&
        !strcmp(rt->kids[0].s, "<sip:p1.example.com;lr>") &&
        !strcmp(rt->kids[1].s, "<sip:p2.example.com;lr>"));
  tnode_free(&e.root);
  CHECK(!strcmp(sip_dialog_state_name(NULL), "terminated"));
}

static void test_uas(void) {
  sip_dialogs s;
  CHECK_INT(sip_dialogs_init(&s, 0), 0);
  char text[2048];
  tmsg inv;
  snprintf(text, sizeof text,
           "INVITE sip:bob@127.0.0.1:5062 SIP/2.0\r\n"
           "Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKi\r\n"
           "Record-Route: <sip:p1.example.com;lr>\r\n"
           "Record-Route: <sip:p2.example.com;lr>\r\n"
           "Max-Forwards: 70\r\n"
           "From: <sip:alice@example.com>;tag=A1\r\n"
           "To: <sip:bob@example.com>\r\n"
           "Call-ID: call2@test\r\n"
           "CSeq: 5 INVITE\r\n"
           "Contact: <sip:alice@10.1.1.1>\r\n"
           "Content-Length: 0\r\n\r\n");
  msg_parse(&inv, text);
  sip_dialog *d, *x;
  /* outside any dialog: no To tag */
  CHECK_INT(sip_dialogs_request(&s, &inv.m, &x), SIP_DLG_OUTSIDE);
  CHECK_INT(sip_dialog_uas_new(&inv.m, SIP_STR_LIT("B2"),
                               SIP_STR_LIT("<sip:bob@127.0.0.1:5062>"),
                               SIP_DLG_CONFIRMED, &d),
            0);
  CHECK_INT(d->role, SIP_DLG_UAS);
  CHECK_STR(d->local_uri, "<sip:bob@example.com>");
  CHECK_STR(d->remote_uri, "<sip:alice@example.com>");
  CHECK_STR(d->remote_target, "sip:alice@10.1.1.1");
  CHECK_INT(d->remote_cseq, 5);
  CHECK(!d->has_local_cseq);
  CHECK_INT(d->nroutes, 2); /* §12.1.1: in order */
  if (d->nroutes == 2) {
    CHECK_STR(d->routes[0], "<sip:p1.example.com;lr>");
    CHECK_STR(d->routes[1], "<sip:p2.example.com;lr>");
  }
  check_info(d);
  sip_dialogs_add(&s, d);
  /* the UAS's own BYE: CSeq starts at 1, routes in order */
  char *bye;
  int n = sip_dialog_request(d, "BYE", 0, SIP_STR_NULL, SIP_STR_NULL, &bye);
  CHECK(n > 0 && has(bye, "CSeq: 1 BYE\r\n") &&
        has(bye, "Route: <sip:p1.example.com;lr>\r\n"
                 "Route: <sip:p2.example.com;lr>\r\n") &&
        has(bye, "To: <sip:alice@example.com>;tag=A1\r\n") &&
        has(bye, "From: <sip:bob@example.com>;tag=B2\r\n"));
  free(bye);
  /* a re-INVITE refreshes the remote target and the remote CSeq */
  tmsg re, old, ack, stray, info, by;
  uas_req(text, sizeof text, "INVITE", 6, "B2", "sip:alice@10.1.1.9");
  msg_parse(&re, text);
  CHECK_INT(sip_dialogs_request(&s, &re.m, &x), SIP_DLG_INSIDE);
  CHECK(x == d);
  CHECK_STR(d->remote_target, "sip:alice@10.1.1.9");
  CHECK_INT(d->remote_cseq, 6);
  /* its ACK (same CSeq number) is inside and changes nothing */
  uas_req(text, sizeof text, "ACK", 6, "B2", NULL);
  msg_parse(&ack, text);
  CHECK_INT(sip_dialogs_request(&s, &ack.m, &x), SIP_DLG_INSIDE);
  /* a lower CSeq: 500 (§12.2.2) */
  uas_req(text, sizeof text, "INFO", 4, "B2", NULL);
  msg_parse(&old, text);
  CHECK_INT(sip_dialogs_request(&s, &old.m, &x), SIP_DLG_OUT_OF_ORDER);
  CHECK_INT(d->remote_cseq, 6);
  /* a To tag of no dialog: 481 */
  uas_req(text, sizeof text, "INFO", 7, "nope", NULL);
  msg_parse(&stray, text);
  CHECK_INT(sip_dialogs_request(&s, &stray.m, &x), SIP_DLG_NO_DIALOG);
  CHECK(x == NULL);
  /* INFO is not a target refresh; a BYE ends the dialog, and what comes
   * after it gets 481 */
  uas_req(text, sizeof text, "INFO", 7, "B2", "sip:alice@10.9.9.9");
  msg_parse(&info, text);
  CHECK_INT(sip_dialogs_request(&s, &info.m, &x), SIP_DLG_INSIDE);
  CHECK_STR(d->remote_target, "sip:alice@10.1.1.9");
  uas_req(text, sizeof text, "BYE", 8, "B2", NULL);
  msg_parse(&by, text);
  CHECK_INT(sip_dialogs_request(&s, &by.m, &x), SIP_DLG_INSIDE);
  CHECK_INT(d->state, SIP_DLG_TERMINATED);
  CHECK_INT(sip_dialogs_request(&s, &info.m, &x), SIP_DLG_NO_DIALOG);
  /* no Contact in the INVITE: no dialog */
  tmsg nc;
  uas_req(text, sizeof text, "INVITE", 1, NULL, NULL);
  msg_parse(&nc, text);
  CHECK_INT(sip_dialog_uas_new(&nc.m, SIP_STR_LIT("B3"),
                               SIP_STR_LIT("<sip:b@127.0.0.1>"), SIP_DLG_EARLY,
                               &x),
            SIP_EINVAL);
  msg_free(&nc);
  sip_dialogs_free(&s);
  msg_free(&inv);
  msg_free(&re);
  msg_free(&old);
  msg_free(&ack);
  msg_free(&stray);
  msg_free(&info);
  msg_free(&by);
}

static void test_strict_route(void) {
  char text[2048];
  tmsg req, r200;
  msg_parse(&req, INVITE);
  response(text, sizeof text, 200, "S1", "sip:bob@10.0.0.5",
           "Record-Route: <sip:p2.example.com;lr>\r\n"
           "Record-Route: <sip:strict.example.com>\r\n");
  msg_parse(&r200, text);
  sip_dialog *d;
  CHECK_INT(sip_dialog_uac_new(&req.m, &r200.m, &d), 0);
  char *bye;
  int n = sip_dialog_request(d, "BYE", 0, SIP_STR_NULL, SIP_STR_NULL, &bye);
  /* §12.2.1.1: the strict router is the Request-URI, the remote target
   * goes last in the Route */
  CHECK(n > 0 &&
        strncmp(bye, "BYE sip:strict.example.com SIP/2.0\r\n", 36) == 0);
  CHECK(n > 0 && has(bye, "Route: <sip:p2.example.com;lr>\r\n"
                          "Route: <sip:bob@10.0.0.5>\r\n"));
  CHECK(n > 0 && strstr(bye, "Route: <sip:strict") == NULL);
  free(bye);
  sip_dialog_free(d);
  msg_free(&req);
  msg_free(&r200);
}

/* ---- on the loop: the ACK for a 2xx, a BYE over a transaction ------------ */

static uv_loop_t loop;
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
  int tp_closed, txl_closed;
  int nresp, status;
} env;

static void on_message(void *ud, sip_msg *m, sip_rxbuf *rx,
                       const sip_src *src) {
  env *e = ud;
  sip_tu_receive(&e->tu, m, rx, src);
}

static void on_tp_closed(void *arg) { ((env *)arg)->tp_closed = 1; }
static void on_txl_closed(void *arg) { ((env *)arg)->txl_closed = 1; }

static void on_response(void *arg, sip_txn *t, int status, sip_msg *msg,
                        sip_rxbuf *rx) {
  env *e = arg;
  (void)t;
  (void)msg;
  (void)rx;
  e->nresp++;
  e->status = status;
}

/* The branch of the top Via of text into out. */
static void branch_of(const char *text, char *out, size_t cap) {
  const char *p = strstr(text, ";branch=");
  out[0] = '\0';
  if (!p)
    return;
  p += 8;
  size_t n = strcspn(p, ";\r\n");
  snprintf(out, cap, "%.*s", (int)n, p);
}

static void test_ack_and_bye(void) {
  env e;
  memset(&e, 0, sizeof e);
  sip_tp_config tc;
  sip_tp_config_init(&tc);
  tc.ud = &e;
  tc.on_message = on_message;
  char err[256];
  CHECK_INT(sip_tp_new(&loop, &tc, &e.tp, err, sizeof err), 0);
  int id = sip_tp_listen(e.tp, "udp:127.0.0.1:0");
  CHECK(id >= 0);
  e.port = sip_tp_listener_port(e.tp, id);
  sip_txl_config c;
  sip_txl_config_init(&c);
  c.t1_ms = 10;
  c.t2_ms = 40;
  c.trying_delay_ms = SIP_TXN_NO_TRYING;
  c.ud = &e;
  CHECK_INT(sip_txl_new(&loop, e.tp, &c, &e.txl), 0);
  sip_tu_init(&e.tu, e.tp, e.txl);
  int pport = 0, ps = peer_open(&pport);
  CHECK(ps >= 0);

  /* a confirmed dialog whose remote target is the peer */
  char text[2048], contact[64];
  snprintf(contact, sizeof contact, "sip:bob@127.0.0.1:%d", pport);
  tmsg req, r200;
  msg_parse(&req, INVITE);
  response(text, sizeof text, 200, "K1", contact, "");
  msg_parse(&r200, text);
  sip_dialog *d;
  CHECK_INT(sip_dialog_uac_new(&req.m, &r200.m, &d), 0);

  /* §13.2.2.4: the ACK, built from the dialog, its own branch, no
   * transaction (sent once) */
  CHECK_INT(sip_dialog_ack(&e.tu, d, 10, SIP_STR_NULL, SIP_STR_NULL, NULL), 0);
  char got[4096], want[128], b1[64], b2[64];
  CHECK_INT(peer_count(ps, 100, "ACK ", got, sizeof got), 1);
  snprintf(want, sizeof want, "ACK %s SIP/2.0\r\nVia: SIP/2.0/UDP ", contact);
  CHECK(strncmp(got, want, strlen(want)) == 0);
  CHECK(has(got, "\r\nCSeq: 10 ACK\r\n"));
  CHECK(has(got, "\r\nTo: <sip:bob@example.com>;tag=K1\r\n"));
  branch_of(got, b1, sizeof b1);
  CHECK(strncmp(b1, SIP_TXN_MAGIC, 7) == 0);
  /* the 2xx again: the same ACK again; another CSeq: nothing */
  CHECK_INT(sip_dialog_ack_again(&e.tu, d, 10), 1);
  CHECK_INT(sip_dialog_ack_again(&e.tu, d, 9), 0);
  CHECK_INT(peer_count(ps, 100, "ACK ", got, sizeof got), 1);
  branch_of(got, b2, sizeof b2);
  CHECK_MSG(strcmp(b1, b2) == 0, "%s vs %s", b1, b2);

  /* a BYE over a client transaction, to the remote target */
  char branch[SIP_TXN_BRANCH_SIZE];
  sip_txn *t = NULL;
  CHECK_INT(sip_dialog_send(&e.tu, d, "BYE", SIP_STR_NULL, SIP_STR_NULL, NULL,
                            on_response, &e, branch, &t),
            0);
  CHECK(peer_count(ps, 60, "BYE ", got, sizeof got) >= 1);
  CHECK(has(got, "\r\nCSeq: 11 BYE\r\n"));
  CHECK(has(got, branch));
  /* the peer answers 200 */
  tmsg bye;
  msg_parse(&bye, got);
  char out[4096];
  int n = sip_reply_write(&bye.m, 200, SIP_STR_NULL, SIP_STR_NULL, SIP_STR_NULL,
                          SIP_STR_NULL, out, sizeof out);
  CHECK(n > 0);
  struct sockaddr_storage sa;
  sip_tp_addr(&sa, "127.0.0.1", 9, e.port);
  CHECK(sendto(ps, out, (size_t)n, 0, (struct sockaddr *)&sa,
               sizeof(struct sockaddr_in)) == n);
  double dl = now_ms() + 500;
  while (e.nresp == 0 && now_ms() < dl)
    step();
  CHECK_INT(e.nresp, 1);
  CHECK_INT(e.status, 200);
  msg_free(&bye);

  /* §9.1 (sip_tu_cancel_request): an INVITE, a 180, then its CANCEL with
   * the same branch, Request-URI, Route and CSeq number */
  char inv_text[1024];
  snprintf(inv_text, sizeof inv_text,
           "INVITE sip:carol@127.0.0.1:%d SIP/2.0\r\n"
           "Route: <sip:127.0.0.1:%d;lr>\r\n"
           "Max-Forwards: 70\r\nFrom: <sip:a@x>;tag=c1\r\nTo: <sip:c@x>\r\n"
           "Call-ID: cancel@x\r\nCSeq: 4 INVITE\r\n"
           "Contact: <sip:a@127.0.0.1>\r\nContent-Length: 0\r\n\r\n",
           pport, pport);
  tmsg inv;
  msg_parse(&inv, inv_text);
  sip_txn *ict = NULL;
  e.nresp = 0;
  CHECK_INT(
      sip_tu_request(&e.tu, &inv.m, NULL, on_response, &e, branch, &ict, NULL),
      0);
  CHECK(peer_count(ps, 30, "INVITE ", got, sizeof got) >= 1);
  tmsg sent;
  msg_parse(&sent, got);
  n = sip_reply_write(&sent.m, 180, SIP_STR_NULL, SIP_STR_LIT("r1"),
                      SIP_STR_NULL, SIP_STR_NULL, out, sizeof out);
  CHECK(sendto(ps, out, (size_t)n, 0, (struct sockaddr *)&sa,
               sizeof(struct sockaddr_in)) == n);
  dl = now_ms() + 500;
  while (e.nresp == 0 && now_ms() < dl)
    step();
  CHECK_INT(e.status, 180);
  CHECK_INT(sip_tu_cancel_request(&e.tu, ict, &inv.m, branch), 0);
  char cancel[4096];
  CHECK(peer_count(ps, 60, "CANCEL ", cancel, sizeof cancel) >= 1);
  snprintf(want, sizeof want, "CANCEL sip:carol@127.0.0.1:%d SIP/2.0\r\n",
           pport);
  CHECK(strncmp(cancel, want, strlen(want)) == 0);
  branch_of(cancel, b1, sizeof b1);
  CHECK_MSG(strcmp(b1, branch) == 0, "%s vs %s", b1, branch);
  CHECK(has(cancel, "\r\nCSeq: 4 CANCEL\r\n"));
  snprintf(want, sizeof want, "\r\nRoute: <sip:127.0.0.1:%d;lr>\r\n", pport);
  CHECK(has(cancel, want));
  CHECK(has(cancel, "\r\nTo: <sip:c@x>\r\n"));
  msg_free(&sent);
  msg_free(&inv);

  sip_dialog_free(d);
  msg_free(&req);
  msg_free(&r200);
  close(ps);
  sip_tu_close(&e.tu);
  sip_txl_close(e.txl, on_txl_closed, &e);
  sip_tp_close(e.tp, on_tp_closed, &e);
  dl = now_ms() + 3000;
  while (!(e.tp_closed && e.txl_closed) && now_ms() < dl)
    step();
  CHECK(e.tp_closed && e.txl_closed);
}

/* RFC 3262 without a transaction: the UAC's RAck for reliable 1xx (in
 * sequence only), option tags, and the UAS's refusals. */
static void rel_response(char *out, size_t cap, const char *rel) {
  snprintf(out, cap,
           "SIP/2.0 183 X\r\n"
           "Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKinv1\r\n"
           "From: \"Alice\" <sip:alice@example.com>;tag=A1\r\n"
           "To: <sip:bob@example.com>;tag=B1\r\n"
           "Call-ID: call1@test\r\n"
           "CSeq: 10 INVITE\r\n"
           "Contact: <sip:bob@10.0.0.2>\r\n"
           "%s"
           "Content-Length: 0\r\n\r\n",
           rel);
}

static int rack_of(sip_dialog *d, const char *rel, char *out, size_t cap) {
  char text[1024];
  tmsg r;
  rel_response(text, sizeof text, rel);
  msg_parse(&r, text);
  int n = sip_dialog_rack(d, &r.m, out, cap);
  msg_free(&r);
  return n;
}

static void test_100rel(void) {
  tmsg req, r;
  char text[1024], out[64];
  msg_parse(&req, INVITE);
  rel_response(text, sizeof text, "");
  msg_parse(&r, text);
  sip_dialog *d;
  CHECK_INT(sip_dialog_uac_new(&req.m, &r.m, &d), 0);
  CHECK_INT(sip_dialog_rack(d, &r.m, out, sizeof out), 0);  /* unreliable */
  CHECK_INT(rack_of(d, "RSeq: 5\r\n", out, sizeof out), 0); /* no Require */
  int n = rack_of(d, "Require: 100rel\r\nRSeq: 5\r\n", out, sizeof out);
  CHECK_INT(n, (int)strlen("RAck: 5 10 INVITE\r\n"));
  CHECK(strcmp(out, "RAck: 5 10 INVITE\r\n") == 0);
  /* a retransmission, one out of order: no PRACK (§4) */
  CHECK_INT(rack_of(d, "Require: 100rel\r\nRSeq: 5\r\n", out, sizeof out), 0);
  CHECK_INT(rack_of(d, "Require: 100rel\r\nRSeq: 7\r\n", out, sizeof out), 0);
  CHECK_INT(rack_of(d, "Require: 100rel\r\nRSeq: 4\r\n", out, sizeof out), 0);
  n = rack_of(d, "Require: timer, 100REL\r\nRSeq:  6 \r\n", out, sizeof out);
  CHECK(n > 0 && strcmp(out, "RAck: 6 10 INVITE\r\n") == 0);
  CHECK_INT(rack_of(d, "Require: 100rel\r\nRSeq: 7\r\n", out, 8), SIP_ERANGE);
  /* malformed RSeq values */
  CHECK_INT(rack_of(d, "Require: 100rel\r\n", out, sizeof out), SIP_EVALUE);
  CHECK_INT(rack_of(d, "Require: 100rel\r\nRSeq: x\r\n", out, sizeof out),
            SIP_EVALUE);
  CHECK_INT(rack_of(d, "Require: 100rel\r\nRSeq: 0\r\n", out, sizeof out),
            SIP_EVALUE);
  CHECK_INT(
      rack_of(d, "Require: 100rel\r\nRSeq: 2147483648\r\n", out, sizeof out),
      SIP_EVALUE);
  CHECK_INT(rack_of(d, "Require: 100rel\r\nRSeq: 7 8\r\n", out, sizeof out),
            SIP_EVALUE);
  CHECK_INT(d->rseq_remote, 6);
  sip_dialog_free(d);
  msg_free(&r);

  /* option tags: Supported and Require, any case, several lines */
  CHECK_INT(sip_dialog_has_option(&req.m, 0, "100rel"), 0);
  tmsg inv2;
  msg_parse(&inv2, "INVITE sip:bob@example.com SIP/2.0\r\n"
                   "Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKinv2\r\n"
                   "From: <sip:alice@example.com>;tag=A2\r\n"
                   "To: <sip:bob@example.com>\r\n"
                   "Call-ID: call2@test\r\nCSeq: 1 INVITE\r\n"
                   "Contact: <sip:alice@127.0.0.1:5060>\r\n"
                   "Supported: timer\r\nk: replaces, 100REL\r\n"
                   "Content-Length: 0\r\n\r\n");
  CHECK_INT(sip_dialog_has_option(&inv2.m, 0, "100rel"), 1);
  CHECK_INT(sip_dialog_has_option(&inv2.m, 0, "timer"), 1);
  CHECK_INT(sip_dialog_has_option(&inv2.m, 1, "100rel"), 0);
  CHECK_INT(sip_dialog_has_option(&inv2.m, 0, "100re"), 0);

  /* the UAS: an INVITE without 100rel is refused; a PRACK without a
   * reliable 1xx pending is 481, a malformed RAck 400 */
  sip_dialog *u;
  CHECK_INT(sip_dialog_uas_new(&req.m, (sip_str){"B9", 2},
                               (sip_str){"<sip:bob@127.0.0.1>", 19},
                               SIP_DLG_EARLY, &u),
            0);
  sip_txn *fake = (sip_txn *)&u; /* never dereferenced: refused before */
  CHECK_INT(sip_dialog_reliable(u, &req.m, fake, out, sizeof out),
            SIP_ENOTFOUND);
  CHECK_INT(sip_dialog_reliable(u, &req.m, NULL, out, sizeof out), SIP_EINVAL);
  static const char *const pracks[][2] = {
      {"RAck: 1 10 INVITE\r\n", "N"}, {"", "V"},
      {"RAck: 1 x INVITE\r\n", "V"},  {"RAck: 1 10\r\n", "V"},
      {"RAck: 0 10 INVITE\r\n", "V"}, {"RAck: 1  10   INVITE \r\n", "N"},
  };
  for (size_t i = 0; i < sizeof pracks / sizeof pracks[0]; i++) {
    tmsg p;
    snprintf(text, sizeof text,
             "PRACK sip:bob@127.0.0.1 SIP/2.0\r\n"
             "Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKpr%zu\r\n"
             "From: \"Alice\" <sip:alice@example.com>;tag=A1\r\n"
             "To: <sip:bob@example.com>;tag=B9\r\n"
             "Call-ID: call1@test\r\nCSeq: 11 PRACK\r\n%s"
             "Content-Length: 0\r\n\r\n",
             i, pracks[i][0]);
    msg_parse(&p, text);
    CHECK_INT(sip_dialog_prack(u, &p.m),
              pracks[i][1][0] == 'N' ? SIP_ENOTFOUND : SIP_EVALUE);
    msg_free(&p);
  }
  sip_dialog_confirm(u);
  CHECK_INT(u->state, SIP_DLG_CONFIRMED);
  sip_dialog_free(u);
  msg_free(&inv2);
  msg_free(&req);
}

/* RFC 4028 in C: Session-Expires and Min-SE parsing, the UAS's 422 and
 * refresher choice, the UAC's reading of a 2xx, when to act. */
static void test_session_timers(void) {
  static const char *const base =
      "INVITE sip:bob@example.com SIP/2.0\r\n"
      "Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKse\r\n"
      "From: <sip:alice@example.com>;tag=A1\r\nTo: <sip:bob@example.com>\r\n"
      "Call-ID: se@test\r\nCSeq: 1 INVITE\r\n"
      "Contact: <sip:alice@127.0.0.1:5060>\r\n%sContent-Length: 0\r\n\r\n";
  static const struct {
    const char *hdrs;
    uint32_t min_se, want;
    int rc;
    const char *out;
  } cases[] = {
      /* no timer asked, none wanted / the UAC has no timer */
      {"", 90, 0, 0, ""},
      {"", 90, 1800, 0, ""},
      /* we want one, the UAC supports timer: it refreshes */
      {"Supported: timer\r\n", 90, 1800, 200,
       "Session-Expires: 1800;refresher=uac\r\nRequire: timer\r\n"},
      /* below our minimum: 422 */
      {"Supported: timer\r\nSession-Expires: 60\r\n", 90, 0, 422,
       "Min-SE: 90\r\n"},
      /* its refresher choice stands */
      {"Supported: timer\r\nx: 1800;refresher=uas\r\n", 90, 0, 200,
       "Session-Expires: 1800;refresher=uas\r\nRequire: timer\r\n"},
      /* a UAC without timer: the UAS refreshes, no Require */
      {"Session-Expires: 1800;refresher=uac\r\n", 90, 0, 200,
       "Session-Expires: 1800;refresher=uas\r\n"},
      /* our interval raised to its Min-SE */
      {"Supported: timer\r\nMin-SE: 600\r\n", 90, 300, 200,
       "Session-Expires: 600;refresher=uac\r\nRequire: timer\r\n"},
      /* malformed */
      {"Session-Expires: abc\r\n", 90, 0, SIP_EVALUE, ""},
      {"Session-Expires: 1800;refresher=me\r\n", 90, 0, SIP_EVALUE, ""},
      {"Session-Expires: 0\r\n", 90, 0, SIP_EVALUE, ""},
      {"Min-SE: x\r\n", 90, 0, SIP_EVALUE, ""},
  };
  char text[1024], out[128];
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    tmsg m;
    snprintf(text, sizeof text, base, cases[i].hdrs);
    msg_parse(&m, text);
    uint32_t e = 0;
    int who = 0;
    int rc = sip_dialog_session_uas(&m.m, cases[i].min_se, cases[i].want, out,
                                    sizeof out, &e, &who);
    CHECK_MSG(rc == cases[i].rc, "case %zu: rc %d", i, rc);
    if (rc >= 0)
      CHECK_MSG(strcmp(out, cases[i].out) == 0, "case %zu: [%s]", i, out);
    msg_free(&m);
  }
  /* the UAC's view of a 2xx */
  tmsg r;
  msg_parse(&r,
            "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bKx\r\n"
            "From: <sip:a@x>;tag=1\r\nTo: <sip:b@x>;tag=2\r\nCall-ID: c\r\n"
            "CSeq: 1 INVITE\r\nSession-Expires: 120\r\n"
            "Content-Length: 0\r\n\r\n");
  uint32_t e = 0;
  int who = 0;
  CHECK_INT(sip_dialog_session_uac(&r.m, &e, &who), 1);
  CHECK_INT(e, 120);
  CHECK_INT(who, SIP_SE_UAC); /* §7.2: no refresher: the UAC */
  msg_free(&r);
  /* §10 */
  CHECK(sip_dialog_session_due_ms(1800, 1) == 900000);
  CHECK(sip_dialog_session_due_ms(1800, 0) == 1768000);
  CHECK(sip_dialog_session_due_ms(90, 0) == 60000);
}

int main(void) {
  test_uac_dialog();
  test_fork();
  test_uas();
  test_strict_route();
  test_100rel();
  test_session_timers();
  CHECK_INT(uv_loop_init(&loop), 0);
  test_ack_and_bye();
  CHECK_INT(uv_loop_close(&loop), 0);
  return check_summary("test_dialog");
}
