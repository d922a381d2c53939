/* Transport test: real sockets on 127.0.0.1 and ::1 only, one libuv loop
 * driven in small steps so raw test sockets and transport managers can talk
 * to each other. Every wait is bounded. Prints
 * "test_transport: N passed, N failed". */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "sip_transport.h"
#include "test/check.h"

static uv_loop_t loop;

/* Fault injection: the next fake_eagain calls of sendmsg(2) (libuv's
 * uv_udp_try_send) fail with EAGAIN, as when a socket's send buffer is
 * full -- which the loopback interface never is. This definition takes
 * the place of libc's for libuv too. */
static int fake_eagain;

ssize_t sendmsg(int fd, const struct msghdr *m, int flags) {
  if (fake_eagain > 0) {
    fake_eagain--;
    errno = EAGAIN;
    return -1;
  }
  return syscall(SYS_sendmsg, fd, m, flags);
}

static uint64_t now_ms(void) { return uv_hrtime() / 1000000u; }

static void step(void) {
  uv_run(&loop, UV_RUN_NOWAIT);
  struct timespec ts = {0, 500000};
  nanosleep(&ts, NULL);
}

/* Run the loop until expr holds or ms pass. */
#define RUN_UNTIL(expr, ms)                                                    \
  do {                                                                         \
    uint64_t d_ = now_ms() + (ms);                                             \
    while (!(expr) && now_ms() < d_)                                           \
      step();                                                                  \
  } while (0)

static void run_for(int ms) {
  uint64_t d = now_ms() + (uint64_t)ms;
  while (now_ms() < d)
    step();
}

/* ---- what the callbacks saw -------------------------------------------------
 */

#define MAXMSG 16
typedef struct rec {
  sip_tp *tp;
  sip_rxbuf *rx[MAXMSG];
  sip_src src[MAXMSG];
  int nmsg;
  int nbad, bad_err;
  char bad_text[256];
  int respond_400; /* on_bad answers with a 400 over sip_tp_send_response */
  int nopen, nclose, close_err;
  char close_text[512];
  uint64_t open_id;
  int closed; /* sip_tp_close callback ran */
} rec;

static void on_message(void *ud, sip_msg *m, sip_rxbuf *rx,
                       const sip_src *src) {
  rec *r = ud;
  (void)m;
  if (r->nmsg < MAXMSG) {
    sip_rxbuf_ref(rx); /* keep it beyond the callback */
    r->rx[r->nmsg] = rx;
    r->src[r->nmsg] = *src;
  }
  r->nmsg++;
}

static void on_bad(void *ud, int err, const char *text, sip_rxbuf *rx,
                   const sip_src *src) {
  rec *r = ud;
  r->nbad++;
  r->bad_err = err;
  snprintf(r->bad_text, sizeof(r->bad_text), "%s", text);
  if (r->respond_400) {
    const sip_via *v;
    if (sip_msg_get_vias(&rx->msg, &v) == 0) {
      char resp[512];
      int n = snprintf(resp, sizeof(resp),
                       "SIP/2.0 400 Bad Request\r\nVia: %.*s\r\n"
                       "Content-Length: 0\r\n\r\n",
                       (int)v->raw.len, v->raw.p);
      sip_tp_send_response(r->tp, resp, (size_t)n, v, src, NULL, NULL);
    }
  }
}

static void on_conn(void *ud, uint64_t id, int ev, int err, const char *text) {
  rec *r = ud;
  (void)text;
  if (ev == SIP_TP_CONN_OPEN) {
    r->nopen++;
    r->open_id = id;
  } else {
    r->nclose++;
    r->close_err = err;
    snprintf(r->close_text, sizeof(r->close_text), "%s", text);
  }
}

static void rec_clear(rec *r) {
  for (int i = 0; i < r->nmsg && i < MAXMSG; i++)
    sip_rxbuf_unref(r->rx[i]);
  r->nmsg = 0;
  r->nbad = 0;
  r->bad_err = 0;
}

static void on_closed(void *arg) { ((rec *)arg)->closed = 1; }

typedef struct sendres {
  int done, status;
} sendres;

static void on_sent(void *arg, int status) {
  sendres *s = arg;
  s->done++;
  s->status = status;
}

static sip_tp *mk_tp(rec *r, sip_tp_config *cfg) {
  sip_tp_config c;
  if (!cfg) {
    sip_tp_config_init(&c);
    cfg = &c;
  }
  cfg->ud = r;
  cfg->on_message = on_message;
  cfg->on_bad = on_bad;
  cfg->on_conn = on_conn;
  char err[256];
  sip_tp *tp = NULL;
  int rc = sip_tp_new(&loop, cfg, &tp, err, sizeof(err));
  CHECK_MSG(rc == 0, "sip_tp_new: %s %s", sip_tp_errname(rc), err);
  r->tp = tp;
  return tp;
}

static void close_tp(rec *r) {
  rec_clear(r);
  sip_tp_close(r->tp, on_closed, r);
  RUN_UNTIL(r->closed, 3000);
  CHECK(r->closed);
}

/* ---- raw sockets ------------------------------------------------------------
 */

static void loopback(struct sockaddr_storage *sa, int fam, int port) {
  sip_tp_addr(sa, fam == AF_INET6 ? "::1" : "127.0.0.1",
              fam == AF_INET6 ? 3 : 9, port);
}

static int sock_port(int s) {
  struct sockaddr_storage sa;
  socklen_t n = sizeof(sa);
  getsockname(s, (struct sockaddr *)&sa, &n);
  return sip_tp_addr_port(&sa);
}

static int udp_sock(int fam, int *port) {
  int s = socket(fam, SOCK_DGRAM | SOCK_NONBLOCK, 0);
  struct sockaddr_storage sa;
  loopback(&sa, fam, 0);
  if (s < 0 || bind(s, (struct sockaddr *)&sa,
                    fam == AF_INET6 ? sizeof(struct sockaddr_in6)
                                    : sizeof(struct sockaddr_in)) < 0)
    return -1;
  *port = sock_port(s);
  return s;
}

static void udp_to(int s, int fam, int port, const char *p, size_t n) {
  struct sockaddr_storage sa;
  loopback(&sa, fam, port);
  ssize_t w = sendto(s, p, n, 0, (struct sockaddr *)&sa,
                     fam == AF_INET6 ? sizeof(struct sockaddr_in6)
                                     : sizeof(struct sockaddr_in));
  CHECK_INT(w, (ssize_t)n);
}

/* Bytes read, 0 at end of stream, -1 on timeout, -2 on an error (reset). */
static ssize_t recv_poll(int s, char *buf, size_t cap, int ms) {
  uint64_t d = now_ms() + (uint64_t)ms;
  for (;;) {
    ssize_t n = recv(s, buf, cap, 0);
    if (n >= 0)
      return n;
    if (errno != EAGAIN && errno != EWOULDBLOCK)
      return -2;
    if (now_ms() >= d)
      return -1;
    step();
  }
}

static int tcp_connect(int fam, int port) {
  int s = socket(fam, SOCK_STREAM, 0);
  struct sockaddr_storage sa;
  loopback(&sa, fam, port);
  /* non-blocking connect: the loop must run for the accept */
  fcntl(s, F_SETFL, O_NONBLOCK);
  int rc = connect(s, (struct sockaddr *)&sa,
                   fam == AF_INET6 ? sizeof(struct sockaddr_in6)
                                   : sizeof(struct sockaddr_in));
  CHECK(rc == 0 || errno == EINPROGRESS);
  int one = 1;
  setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  run_for(5);
  return s;
}

static void tcp_write(int s, const char *p, size_t n) {
  while (n) {
    ssize_t w = send(s, p, n, MSG_NOSIGNAL);
    if (w < 0 && errno == EAGAIN) {
      step();
      continue;
    }
    if (w <= 0) { /* counted only when it fails */
      CHECK_MSG(0, "send: %s", strerror(errno));
      return;
    }
    p += w;
    n -= (size_t)w;
  }
}

/* ---- messages
 * ---------------------------------------------------------------- */

static int mkreq(char *out, size_t cap, const char *method, const char *via,
                 const char *body) {
  return snprintf(out, cap,
                  "%s sip:bob@127.0.0.1 SIP/2.0\r\n"
                  "Via: %s\r\n"
                  "Max-Forwards: 70\r\n"
                  "From: <sip:alice@a.example>;tag=1\r\n"
                  "To: <sip:bob@b.example>\r\n"
                  "Call-ID: c1@x\r\n"
                  "CSeq: 1 %s\r\n"
                  "Content-Length: %zu\r\n\r\n%s",
                  method, via, method, strlen(body), body);
}

static sip_str top_via_value(const sip_msg *m) {
  int i = sip_msg_find(m, SIP_H_VIA, NULL, 0, 0);
  return i < 0 ? SIP_STR_NULL : m->hdr[i].value;
}

static int contains(const char *p, size_t n, const char *needle) {
  size_t k = strlen(needle);
  for (size_t i = 0; i + k <= n; i++)
    if (memcmp(p + i, needle, k) == 0)
      return 1;
  return 0;
}

/* ---- tests
 * --------------------------------------------------------------------- */

static void test_names(void) {
  CHECK(strcmp(sip_tp_errname(0), "OK") == 0);
  CHECK(strcmp(sip_tp_errname(SIP_ECLEN), "CLEN") == 0);
  CHECK(strcmp(sip_tp_errname(SIP_ENEEDMORE), "NEEDMORE") == 0);
  CHECK(strcmp(sip_tp_errname(UV_ECONNREFUSED), "ECONNREFUSED") == 0);
  CHECK(strcmp(sip_tp_errname(UV_ETIMEDOUT), "ETIMEDOUT") == 0);
  CHECK(strlen(sip_tp_strerror(UV_EPROTO)) > 0);
  CHECK(strcmp(sip_tp_strerror(SIP_ECLEN), "invalid Content-Length") == 0);
  CHECK_INT(SIP_TP_UDP_MTU_THRESHOLD, 1300);
  CHECK_INT(sip_tp_transport_from(SIP_STR_LIT("tls")), SIP_TP_TLS);
  struct sockaddr_storage sa;
  char buf[64];
  CHECK_INT(sip_tp_addr(&sa, "[::1]", 5, 5060), 0);
  sip_tp_addr_str(&sa, buf, sizeof(buf));
  CHECK(strcmp(buf, "[::1]:5060") == 0);
  sip_tp_addr_host(&sa, buf, sizeof(buf));
  CHECK(strcmp(buf, "::1") == 0);
  CHECK_INT(sip_tp_addr(&sa, "::ffff:192.0.2.7", 16, 5060), 0);
  sip_tp_addr_host(&sa, buf, sizeof(buf));
  CHECK(strcmp(buf, "192.0.2.7") == 0);
  CHECK_INT(sip_tp_addr(&sa, "127.0.0.1", 9, 5060), 0);
  sip_tp_addr_host(&sa, buf, sizeof(buf));
  CHECK(strcmp(buf, "127.0.0.1") == 0);
  sip_tp_addr_host(&sa, buf, 4); /* too small: empty, not cut */
  CHECK(strcmp(buf, "") == 0);
  memset(&sa, 0, sizeof sa);
  sip_tp_addr_host(&sa, buf, sizeof(buf));
  CHECK(strcmp(buf, "") == 0);
  CHECK_INT(sip_tp_addr(&sa, "example.com", 11, 5060), SIP_EINVAL);
}

static void test_listen_specs(void) {
  rec r = {0};
  sip_tp *tp = mk_tp(&r, NULL);
  CHECK_INT(sip_tp_listen(tp, "foo:127.0.0.1:5060"), SIP_EINVAL);
  CHECK_INT(sip_tp_listen(tp, "udp:localhost:5060"), SIP_EINVAL);
  CHECK_INT(sip_tp_listen(tp, "udp:127.0.0.1:99999"), SIP_EINVAL);
  CHECK_INT(sip_tp_listen(tp, "udp:127.0.0.1"), SIP_EINVAL);
  CHECK_INT(sip_tp_listen(tp, "udp:::1:5060"), SIP_EINVAL);
  CHECK_INT(sip_tp_listen(tp, "tls:127.0.0.1:0"), SIP_EINVAL); /* no cert */
  int id = sip_tp_listen(tp, "tcp:127.0.0.1:0");
  CHECK_INT(id, 0);
  int port = sip_tp_listener_port(tp, id);
  CHECK(port > 0);
  char spec[64];
  snprintf(spec, sizeof(spec), "tcp:127.0.0.1:%d", port);
  CHECK_INT(sip_tp_listen(tp, spec), UV_EADDRINUSE);
  CHECK(strstr(sip_tp_last_error(tp), "address already in use") != NULL);
  close_tp(&r);
}

/* A peer that closes while a write is under way must not end the process:
 * the transport ignores SIGPIPE (its default action is to terminate), but
 * keeps a disposition the application chose. Regression: examples/
 * webphone.lua died of SIGPIPE when chromium closed a WSS connection. */
static int sigpipe_seen;
static void on_sigpipe(int sig) {
  (void)sig;
  sigpipe_seen++;
}

static void test_sigpipe(void) {
  struct sigaction sa;
  signal(SIGPIPE, SIG_DFL);
  rec r = {0};
  CHECK(mk_tp(&r, NULL) != NULL);
  CHECK_INT(sigaction(SIGPIPE, NULL, &sa), 0);
  CHECK(sa.sa_handler == SIG_IGN);
  CHECK_INT(raise(SIGPIPE), 0); /* before the fix: the test ends here */
  close_tp(&r);
  /* an application's own handler stays */
  signal(SIGPIPE, on_sigpipe);
  CHECK(mk_tp(&r, NULL) != NULL);
  CHECK_INT(sigaction(SIGPIPE, NULL, &sa), 0);
  CHECK(sa.sa_handler == on_sigpipe);
  CHECK_INT(raise(SIGPIPE), 0);
  CHECK_INT(sigpipe_seen, 1);
  close_tp(&r);
  signal(SIGPIPE, SIG_IGN);
}

static void test_udp(int fam) {
  rec r = {0};
  sip_tp *tp = mk_tp(&r, NULL);
  int lid =
      sip_tp_listen(tp, fam == AF_INET6 ? "udp:[::1]:0" : "udp:127.0.0.1:0");
  CHECK(lid >= 0);
  int lport = sip_tp_listener_port(tp, lid);
  CHECK(lport > 0);
  int cport = 0;
  int s = udp_sock(fam, &cport);
  CHECK(s >= 0);
  const char *ip = fam == AF_INET6 ? "::1" : "127.0.0.1";

  /* sent-by names another address, rport without value: received and
   * rport are filled in */
  char msg[1024], want[256];
  const char *sentby =
      fam == AF_INET6 ? "[2001:db8::9]:5070" : "127.0.0.2:5070";
  char via[256];
  snprintf(via, sizeof(via), "SIP/2.0/UDP %s;branch=z9hG4bKu1;rport", sentby);
  int n = mkreq(msg, sizeof(msg), "INVITE", via, "v=0\r\n");
  udp_to(s, fam, lport, msg, (size_t)n);
  RUN_UNTIL(r.nmsg == 1, 2000);
  CHECK_INT(r.nmsg, 1);
  if (r.nmsg != 1) {
    close(s);
    close_tp(&r);
    return;
  }
  sip_msg *m = &r.rx[0]->msg;
  const sip_src *src = &r.src[0];
  CHECK_INT(src->transport, SIP_TP_UDP);
  CHECK_INT(src->listener, lid);
  CHECK_INT(src->conn_id, 0);
  CHECK_INT(src->peer.ss_family, fam);
  CHECK_INT(sip_tp_addr_port(&src->peer), cport);
  CHECK_INT(sip_tp_addr_port(&src->local), lport);
  CHECK(m->is_request);
  CHECK_STR(m->method, "INVITE");
  CHECK_STR(m->body, "v=0\r\n");
  snprintf(want, sizeof(want),
           "SIP/2.0/UDP %s;branch=z9hG4bKu1;rport=%d;received=%s", sentby,
           cport, ip);
  CHECK_STR(top_via_value(m), want);
  const sip_via *v = NULL;
  CHECK_INT(sip_msg_get_vias(m, &v), 0);
  if (v) {
    CHECK_STR(v->received, ip);
    CHECK_INT(v->rport, cport);
    CHECK_STR(v->branch, "z9hG4bKu1");
  }
  /* the serialized message carries the new Via */
  size_t sz = sip_msg_size(m);
  char *out = malloc(sz);
  CHECK_INT(sip_msg_write(m, out, sz), (int)sz);
  snprintf(want, sizeof(want), "Via: SIP/2.0/UDP %s;branch=z9hG4bKu1;rport=%d",
           sentby, cport);
  CHECK(contains(out, sz, want));
  free(out);

  /* §18.2.2 + RFC 3581: the response goes to received:rport, i.e. back to
   * the test socket, not to the sent-by address */
  sendres sr = {0};
  const char *resp = "SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n";
  CHECK_INT(sip_tp_send_response(tp, resp, strlen(resp), v, src, on_sent, &sr),
            0);
  CHECK_INT(sr.done, 0); /* never synchronously */
  char buf[2048];
  ssize_t got = recv_poll(s, buf, sizeof(buf), 2000);
  CHECK_INT(got, (ssize_t)strlen(resp));
  RUN_UNTIL(sr.done, 1000);
  CHECK_INT(sr.done, 1);
  CHECK_INT(sr.status, 0);

  /* the kept message is intact after more traffic */
  CHECK_STR(m->method, "INVITE");

  /* sent-by is the source address, no rport: no edit at all */
  char via2[128];
  snprintf(via2, sizeof(via2), "SIP/2.0/UDP %s%s%s:%d;branch=z9hG4bKu2",
           fam == AF_INET6 ? "[" : "", ip, fam == AF_INET6 ? "]" : "", cport);
  n = mkreq(msg, sizeof(msg), "OPTIONS", via2, "");
  udp_to(s, fam, lport, msg, (size_t)n);
  RUN_UNTIL(r.nmsg == 2, 2000);
  CHECK_INT(r.nmsg, 2);
  if (r.nmsg == 2) {
    CHECK_STR(top_via_value(&r.rx[1]->msg), via2);
    CHECK_INT(r.rx[1]->msg.dirty, 0);
  }

  /* a host name in sent-by: received added; a second Via value on the same
   * line and a second Via line stay as written */
  n = mkreq(msg, sizeof(msg), "OPTIONS",
            "SIP/2.0/UDP client.invalid;branch=z9hG4bKu3 , SIP/2.0/TCP "
            "p.invalid;branch=z9hG4bKp\r\nVia: SIP/2.0/UDP q.invalid",
            "");
  udp_to(s, fam, lport, msg, (size_t)n);
  RUN_UNTIL(r.nmsg == 3, 2000);
  CHECK_INT(r.nmsg, 3);
  if (r.nmsg == 3) {
    snprintf(want, sizeof(want),
             "SIP/2.0/UDP client.invalid;branch=z9hG4bKu3;received=%s , "
             "SIP/2.0/TCP p.invalid;branch=z9hG4bKp",
             ip);
    CHECK_STR(top_via_value(&r.rx[2]->msg), want);
    CHECK_INT(sip_msg_count(&r.rx[2]->msg, SIP_H_VIA, NULL, 0), 2);
  }

  /* a received the client wrote is replaced, in place */
  n = mkreq(msg, sizeof(msg), "OPTIONS",
            "SIP/2.0/UDP 127.0.0.2 ; received=10.0.0.1;rport;branch=z9hG4bKu4",
            "");
  udp_to(s, fam, lport, msg, (size_t)n);
  RUN_UNTIL(r.nmsg == 4, 2000);
  CHECK_INT(r.nmsg, 4);
  if (r.nmsg == 4) {
    snprintf(want, sizeof(want),
             "SIP/2.0/UDP 127.0.0.2;received=%s;rport=%d;branch=z9hG4bKu4", ip,
             cport);
    CHECK_STR(top_via_value(&r.rx[3]->msg), want);
  }

  /* a burst (recvmmsg batches): every datagram delivered, in order */
  for (int i = 0; i < 40; i++) {
    char via3[96];
    snprintf(via3, sizeof(via3), "SIP/2.0/UDP 127.0.0.2;branch=z9hG4bKburst%d",
             i);
    n = mkreq(msg, sizeof(msg), "OPTIONS", via3, "");
    udp_to(s, fam, lport, msg, (size_t)n);
  }
  RUN_UNTIL(r.nmsg == 44, 3000);
  CHECK_INT(r.nmsg, 44);

  /* response targets computed without sending (§18.2.2) */
  if (v) {
    sip_dest d;
    sip_via vv = *v;
    vv.rport = -1; /* received without rport value: sent-by port */
    CHECK_INT(sip_tp_response_dest(tp, &vv, src, &d), 0);
    CHECK_INT(sip_tp_addr_port(&d.addr), 5070);
    CHECK_INT(d.addr.ss_family, fam);
    vv.maddr = SIP_STR_LIT("239.1.1.1");
    CHECK_INT(sip_tp_response_dest(tp, &vv, src, &d), 0);
    char a[64];
    sip_tp_addr_str(&d.addr, a, sizeof(a));
    CHECK(strcmp(a, "239.1.1.1:5070") == 0);
    vv.maddr = SIP_STR_NULL;
    vv.received = SIP_STR_NULL;
    vv.host = SIP_STR_LIT("client.invalid");
    CHECK_INT(sip_tp_response_dest(tp, &vv, src, &d), UV_EAI_NONAME);
    vv.has_port = 0;
    vv.host = SIP_STR_LIT("127.0.0.3");
    CHECK_INT(sip_tp_response_dest(tp, &vv, src, &d), 0);
    CHECK_INT(sip_tp_addr_port(&d.addr), 5060);
    CHECK_INT(d.listener, lid);
  }

  /* malformed datagrams */
  sip_tp_counters st;
  sip_tp_stats(tp, &st);
  uint64_t pe0 = st.parse_errors;
  /* answerable: bad Content-Length -> on_bad */
  n = snprintf(msg, sizeof(msg),
               "OPTIONS sip:b@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP "
               "127.0.0.2;branch=z9hG4bKb1\r\nFrom: <sip:a@x>;tag=1\r\n"
               "To: <sip:b@y>\r\nCall-ID: bad1\r\nCSeq: 1 OPTIONS\r\n"
               "Content-Length: abc\r\n\r\n");
  udp_to(s, fam, lport, msg, (size_t)n);
  RUN_UNTIL(r.nbad == 1, 2000);
  CHECK_INT(r.nbad, 1);
  CHECK_INT(r.bad_err, SIP_ECLEN);
  CHECK(strstr(r.bad_text, "Content-Length") != NULL);
  /* answerable but the top Via is garbage */
  n = mkreq(msg, sizeof(msg), "OPTIONS", "garbage", "");
  udp_to(s, fam, lport, msg, (size_t)n);
  RUN_UNTIL(r.nbad == 2, 2000);
  CHECK_INT(r.nbad, 2);
  CHECK_INT(r.bad_err, SIP_EVIA);
  /* not answerable: dropped and counted */
  udp_to(s, fam, lport, "hello world\r\n\r\n", 15);
  n = snprintf(msg, sizeof(msg),
               "ACK sip:b@x SIP/2.0\r\nContent-Length: x\r\n\r\n");
  udp_to(s, fam, lport, msg, (size_t)n);
  udp_to(s, fam, lport, "\r\n\r\n", 4); /* keep-alive noise */
  RUN_UNTIL((sip_tp_stats(tp, &st), st.dropped >= 2 && st.keepalives >= 1),
            2000);
  CHECK_INT(st.dropped, 2);
  CHECK_INT(st.keepalives, 1);
  CHECK_INT(st.parse_errors - pe0, 4);
  CHECK_INT(st.bad_delivered, 2);
  CHECK_INT(st.rx_msgs, 44);
  CHECK_INT(st.tx_msgs, 1);
  CHECK_INT(r.nmsg, 44);

  /* no UDP listener of the other family */
  sip_dest d;
  sip_dest_init(&d, SIP_TP_UDP);
  loopback(&d.addr, fam == AF_INET6 ? AF_INET : AF_INET6, 5060);
  CHECK_INT(sip_tp_send(tp, "x", 1, &d, NULL, NULL), UV_EAFNOSUPPORT);

  close(s);
  close_tp(&r);
}

/* [wire] 7: a send error belongs to the datagram that failed. A burst of
 * datagrams from one listener in one loop iteration, one of them to a
 * destination the kernel refuses at once (port 0: EINVAL, nothing leaves
 * 127.0.0.1): every other datagram arrives and is reported sent. libuv's
 * batched uv_udp_send (one sendmmsg of up to 20) reported the first error
 * of a batch for all of it, and sent none of the rest. */
static int results(const sendres *sr, int n) {
  int done = 0;
  for (int i = 0; i < n; i++)
    done += sr[i].done;
  return done;
}

static void test_udp_errors(void) {
  rec r = {0};
  sip_tp *tp = mk_tp(&r, NULL);
  int lid = sip_tp_listen(tp, "udp:127.0.0.1:0");
  CHECK(lid >= 0);
  int sport = 0;
  int s = udp_sock(AF_INET, &sport);
  CHECK(s >= 0);
  enum { N = 12, BAD = 3 };
  sendres sr[N];
  memset(sr, 0, sizeof(sr));
  int sync_err = 0;
  char msg[256];
  for (int i = 0; i < N; i++) {
    sip_dest d;
    sip_dest_init(&d, SIP_TP_UDP);
    loopback(&d.addr, AF_INET, i == BAD ? 0 : sport);
    int n = snprintf(msg, sizeof(msg),
                     "OPTIONS sip:x@127.0.0.1 SIP/2.0\r\n"
                     "Call-ID: burst-%d\r\n\r\n",
                     i);
    int rc = sip_tp_send(tp, msg, (size_t)n, &d, on_sent, &sr[i]);
    if (i == BAD) {
      if (rc < 0) {
        sync_err = rc;
        sr[i].done = 1;
        sr[i].status = rc;
      }
    } else {
      CHECK_INT(rc, 0);
    }
  }
  /* every live datagram arrives */
  int got = 0, seen[N] = {0};
  char buf[512];
  uint64_t deadline = now_ms() + 2000;
  while (got < N - 1 && now_ms() < deadline) {
    ssize_t k = recv_poll(s, buf, sizeof(buf) - 1, 50);
    if (k <= 0)
      continue;
    buf[k] = 0;
    const char *p = strstr(buf, "burst-");
    int i = p ? atoi(p + 6) : -1;
    if (i >= 0 && i < N && !seen[i]) {
      seen[i] = 1;
      got++;
    }
  }
  CHECK_INT(got, N - 1);
  CHECK_INT(seen[BAD], 0);
  RUN_UNTIL(results(sr, N) == N, 2000);
  for (int i = 0; i < N; i++) {
    CHECK_MSG(sr[i].done == 1, "datagram %d: %d results", i, sr[i].done);
    if (i == BAD)
      CHECK_MSG(sr[i].status == UV_EINVAL, "datagram %d: %s", i,
                sip_tp_errname(sr[i].status));
    else
      CHECK_MSG(sr[i].status == 0, "datagram %d: %s", i,
                sip_tp_errname(sr[i].status));
  }
  (void)sync_err; /* at once or from the loop: either is its own */
  sip_tp_counters st;
  sip_tp_stats(tp, &st);
  CHECK_INT(st.tx_errors, 1);
  CHECK_INT(st.tx_msgs, N - 1);
  CHECK(strstr(sip_tp_last_error(tp), "127.0.0.1:0") != NULL);
  close(s);
  close_tp(&r);
}

/* The send buffer is full (EAGAIN, injected): datagrams wait in order, go
 * out one at a time when there is room, each with its own result; closing
 * fails the ones still waiting, once each. */
static void test_udp_queue(void) {
  rec r = {0};
  sip_tp *tp = mk_tp(&r, NULL);
  int lid = sip_tp_listen(tp, "udp:127.0.0.1:0");
  CHECK(lid >= 0);
  int sport = 0;
  int s = udp_sock(AF_INET, &sport);
  CHECK(s >= 0);
  enum { N = 8, BAD = 5 };
  sendres sr[N];
  memset(sr, 0, sizeof(sr));
  char msg[256];
  /* the first try and the first retry find no room */
  fake_eagain = 2;
  for (int i = 0; i < N; i++) {
    sip_dest d;
    sip_dest_init(&d, SIP_TP_UDP);
    loopback(&d.addr, AF_INET, i == BAD ? 0 : sport);
    int n = snprintf(msg, sizeof(msg),
                     "OPTIONS sip:x@127.0.0.1 SIP/2.0\r\n"
                     "Call-ID: queued-%d\r\n\r\n",
                     i);
    CHECK_INT(sip_tp_send(tp, msg, (size_t)n, &d, on_sent, &sr[i]), 0);
  }
  CHECK_INT(results(sr, N), 0); /* never from inside sip_tp_send */
  int order[N], got = 0;
  char buf[512];
  uint64_t deadline = now_ms() + 2000;
  while (got < N - 1 && now_ms() < deadline) {
    ssize_t k = recv_poll(s, buf, sizeof(buf) - 1, 50);
    if (k <= 0)
      continue;
    buf[k] = 0;
    const char *p = strstr(buf, "queued-");
    order[got++] = p ? atoi(p + 7) : -1;
  }
  CHECK_INT(got, N - 1);
  for (int i = 0, want = 0; i < got; i++, want++) {
    if (want == BAD)
      want++;
    CHECK_MSG(order[i] == want, "arrival %d: datagram %d", i, order[i]);
  }
  RUN_UNTIL(results(sr, N) == N, 2000);
  for (int i = 0; i < N; i++) {
    CHECK_MSG(sr[i].done == 1, "datagram %d: %d results", i, sr[i].done);
    CHECK_MSG(sr[i].status == (i == BAD ? UV_EINVAL : 0), "datagram %d: %s", i,
              sip_tp_errname(sr[i].status));
  }
  CHECK_INT(fake_eagain, 0);
  sip_tp_counters st;
  sip_tp_stats(tp, &st);
  CHECK_INT(st.tx_errors, 1);
  CHECK_INT(st.tx_msgs, N - 1);

  /* closing with datagrams waiting: one result each */
  memset(sr, 0, sizeof(sr));
  fake_eagain = 1000;
  for (int i = 0; i < 4; i++) {
    sip_dest d;
    sip_dest_init(&d, SIP_TP_UDP);
    loopback(&d.addr, AF_INET, sport);
    CHECK_INT(sip_tp_send(tp, "x", 1, &d, on_sent, &sr[i]), 0);
  }
  close(s);
  close_tp(&r);
  fake_eagain = 0;
  RUN_UNTIL(results(sr, 4) == 4, 2000);
  for (int i = 0; i < 4; i++)
    CHECK_MSG(sr[i].done == 1, "datagram %d: %d results", i, sr[i].done);
}

/* [wire] 2: every message written to a stream carries one correct
 * Content-Length (§18.3, §20.14): missing (an ACK relayed from UDP),
 * wrong, repeated or folded ones are replaced by one line; a correct one
 * goes out byte for byte; bytes that are not a message are refused. */
static void test_tcp_clen(void) {
  rec r = {0};
  sip_tp *tp = mk_tp(&r, NULL);
  int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  struct sockaddr_storage sa;
  loopback(&sa, AF_INET, 0);
  CHECK(ls >= 0);
  CHECK_INT(bind(ls, (struct sockaddr *)&sa, sizeof(struct sockaddr_in)), 0);
  CHECK_INT(listen(ls, 4), 0);
  sip_dest d;
  sip_dest_init(&d, SIP_TP_TCP);
  loopback(&d.addr, AF_INET, sock_port(ls));
  static const struct {
    const char *in, *out;
  } cases[] = {
      {"ACK sip:b@x SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\n\r\n",
       "ACK sip:b@x SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\n"
       "Content-Length: 0\r\n\r\n"},
      {"BYE sip:b@x SIP/2.0\r\nl : 99\r\nTo: <sip:b@x>\r\n\r\nabc",
       "BYE sip:b@x SIP/2.0\r\nTo: <sip:b@x>\r\nContent-Length: 3\r\n\r\nabc"},
      {"SIP/2.0 200 OK\r\ncontent-length:3\r\n\r\nabc",
       "SIP/2.0 200 OK\r\ncontent-length:3\r\n\r\nabc"},
      {"INFO sip:b@x SIP/2.0\r\nContent-Length: 2\r\nX: 1\r\n"
       "Content-Length: 2\r\n\r\nab",
       "INFO sip:b@x SIP/2.0\r\nX: 1\r\nContent-Length: 2\r\n\r\nab"},
      {"INFO sip:b@x SIP/2.0\r\nContent-Length:\r\n 1\r\nX: 1\r\n\r\n",
       "INFO sip:b@x SIP/2.0\r\nX: 1\r\nContent-Length: 0\r\n\r\n"},
      {"SIP/2.0 180 Ringing\r\nContent-Lengthy: 5\r\n\r\n",
       "SIP/2.0 180 Ringing\r\nContent-Lengthy: 5\r\nContent-Length: "
       "0\r\n\r\n"},
  };
  enum { NC = sizeof(cases) / sizeof(cases[0]) };
  char want[2048] = "";
  for (size_t i = 0; i < NC; i++) {
    CHECK_INT(sip_tp_send(tp, cases[i].in, strlen(cases[i].in), &d, NULL, NULL),
              0);
    strcat(want, cases[i].out);
  }
  CHECK_INT(sip_tp_send(tp, "garbage", 7, &d, NULL, NULL), SIP_EINVAL);
  int s = -1;
  uint64_t deadline = now_ms() + 2000;
  while (s < 0 && now_ms() < deadline) {
    s = accept(ls, NULL, NULL);
    step();
  }
  CHECK(s >= 0);
  char got[2048];
  size_t n = 0, wn = strlen(want);
  deadline = now_ms() + 2000;
  while (s >= 0 && n < wn && now_ms() < deadline) {
    ssize_t k = recv(s, got + n, sizeof(got) - 1 - n, MSG_DONTWAIT);
    if (k > 0)
      n += (size_t)k;
    else
      step();
  }
  got[n] = 0;
  CHECK_MSG(n == wn && memcmp(got, want, wn) == 0, "got:\n%s\nwant:\n%s", got,
            want);
  sip_tp_counters st;
  sip_tp_stats(tp, &st);
  CHECK_INT(st.clen_fixed, NC - 1);
  CHECK_INT(st.tx_msgs, NC);
  if (s >= 0)
    close(s);
  close(ls);
  close_tp(&r);
}

/* TCP from raw sockets: splitting, batching, keep-alive, framing errors. */
static void test_tcp_framing(int fam) {
  rec r = {0};
  sip_tp *tp = mk_tp(&r, NULL);
  int lid =
      sip_tp_listen(tp, fam == AF_INET6 ? "tcp:[::1]:0" : "tcp:127.0.0.1:0");
  CHECK(lid >= 0);
  int lport = sip_tp_listener_port(tp, lid);
  int s = tcp_connect(fam, lport);
  RUN_UNTIL(r.nopen == 1, 2000);
  CHECK_INT(r.nopen, 1);

  /* one message in 1-byte writes */
  char msg[1024], msg2[1024];
  int n = mkreq(msg, sizeof(msg), "INVITE",
                "SIP/2.0/TCP client.invalid;branch=z9hG4bKt1", "hello");
  for (int i = 0; i < n; i++) {
    tcp_write(s, msg + i, 1);
    uv_run(&loop, UV_RUN_NOWAIT);
    if (i % 16 == 0)
      step();
  }
  RUN_UNTIL(r.nmsg == 1, 2000);
  CHECK_INT(r.nmsg, 1);
  if (r.nmsg < 1) {
    close(s);
    close_tp(&r);
    return;
  }
  sip_msg *m1 = &r.rx[0]->msg;
  CHECK_STR(m1->method, "INVITE");
  CHECK_STR(m1->body, "hello");
  CHECK_INT(r.src[0].transport, SIP_TP_TCP);
  CHECK_INT(r.src[0].peer.ss_family, fam);
  CHECK_INT(sip_tp_addr_port(&r.src[0].peer), sock_port(s));
  CHECK(r.src[0].conn_id == r.open_id);
  CHECK(sip_tp_conn_alive(tp, r.src[0].conn_id));
  const sip_via *v = NULL;
  CHECK_INT(sip_msg_get_vias(m1, &v), 0);
  if (v)
    CHECK_STR(v->received, fam == AF_INET6 ? "::1" : "127.0.0.1");

  /* two messages in one write, then a CRLFCRLF ping between them */
  int n1 = mkreq(msg, sizeof(msg), "OPTIONS",
                 "SIP/2.0/TCP client.invalid;branch=z9hG4bKt2", "");
  int n2 = mkreq(msg2, sizeof(msg2), "MESSAGE",
                 "SIP/2.0/TCP client.invalid;branch=z9hG4bKt3", "body2");
  char both[2048];
  memcpy(both, msg, (size_t)n1);
  memcpy(both + n1, msg2, (size_t)n2);
  tcp_write(s, both, (size_t)(n1 + n2));
  RUN_UNTIL(r.nmsg == 3, 2000);
  CHECK_INT(r.nmsg, 3);
  if (r.nmsg == 3) {
    CHECK_STR(r.rx[1]->msg.method, "OPTIONS");
    CHECK_STR(r.rx[2]->msg.method, "MESSAGE");
    CHECK_STR(r.rx[2]->msg.body, "body2");
    CHECK(r.src[1].conn_id == r.src[0].conn_id);
  }
  /* the first message, kept, is still intact */
  CHECK_STR(m1->body, "hello");
  CHECK_STR(m1->method, "INVITE");

  /* keep-alive: CRLFCRLF is answered by CRLF, split or not */
  char buf[256];
  tcp_write(s, "\r\n\r\n", 4);
  ssize_t got = recv_poll(s, buf, sizeof(buf), 2000);
  CHECK_INT(got, 2);
  CHECK(got == 2 && memcmp(buf, "\r\n", 2) == 0);
  tcp_write(s, "\r\n", 2);
  run_for(20);
  tcp_write(s, "\r\n", 2);
  got = recv_poll(s, buf, sizeof(buf), 2000);
  CHECK_INT(got, 2);
  /* a ping followed by a message in one write */
  memcpy(both, "\r\n\r\n", 4);
  memcpy(both + 4, msg, (size_t)n1);
  tcp_write(s, both, (size_t)n1 + 4);
  RUN_UNTIL(r.nmsg == 4, 2000);
  CHECK_INT(r.nmsg, 4);
  got = recv_poll(s, buf, sizeof(buf), 2000);
  CHECK_INT(got, 2);
  sip_tp_counters st;
  sip_tp_stats(tp, &st);
  CHECK_INT(st.keepalives, 3);
  CHECK_INT(st.rx_msgs, 4);

  /* a 40000-byte body in three writes: the buffer grows, the length is
   * known after the header section */
  {
    size_t blen = 40000;
    char *body = malloc(blen + 1), *big = malloc(blen + 1024);
    for (size_t i = 0; i < blen; i++)
      body[i] = (char)('a' + i % 26);
    body[blen] = '\0';
    int bn = mkreq(big, blen + 1024, "MESSAGE",
                   "SIP/2.0/TCP client.invalid;branch=z9hG4bKbig", body);
    tcp_write(s, big, 100);
    run_for(10);
    tcp_write(s, big + 100, 20000);
    run_for(10);
    tcp_write(s, big + 20100, (size_t)bn - 20100);
    RUN_UNTIL(r.nmsg == 5, 3000);
    CHECK_INT(r.nmsg, 5);
    if (r.nmsg == 5) {
      CHECK_INT(r.rx[4]->msg.body.len, blen);
      CHECK(memcmp(r.rx[4]->msg.body.p, body, blen) == 0);
    }
    free(body);
    free(big);
  }

  /* framing error: bad Content-Length. on_bad answers 400 over the same
   * connection, which is then closed after the 400 is written. */
  r.respond_400 = 1;
  n = snprintf(msg, sizeof(msg),
               "OPTIONS sip:b@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP "
               "client.invalid;branch=z9hG4bKb1\r\nFrom: <sip:a@x>;tag=1\r\n"
               "To: <sip:b@y>\r\nCall-ID: bad1\r\nCSeq: 1 OPTIONS\r\n"
               "Content-Length: abc\r\n\r\n");
  tcp_write(s, msg, (size_t)n);
  RUN_UNTIL(r.nbad == 1, 2000);
  CHECK_INT(r.nbad, 1);
  CHECK_INT(r.bad_err, SIP_ECLEN);
  char resp[1024];
  size_t rl = 0;
  for (;;) {
    got = recv_poll(s, resp + rl, sizeof(resp) - rl - 1, 2000);
    if (got <= 0)
      break;
    rl += (size_t)got;
  }
  resp[rl] = '\0';
  CHECK(strncmp(resp, "SIP/2.0 400 Bad Request\r\n", 25) == 0);
  CHECK(strstr(resp, "received=") != NULL);
  CHECK_INT(got, 0); /* then closed */
  RUN_UNTIL(r.nclose == 1, 2000);
  CHECK_INT(r.nclose, 1);
  CHECK_INT(r.close_err, SIP_ECLEN);
  CHECK_INT(sip_tp_conn_count(tp), 0);
  close(s);

  /* garbage on a stream: dropped, connection closed */
  s = tcp_connect(fam, lport);
  tcp_write(s, "garbage\r\n\r\n", 11);
  got = recv_poll(s, buf, sizeof(buf), 2000);
  CHECK(got == 0 || got == -2);
  close(s);
  RUN_UNTIL(r.nclose == 2, 2000);
  sip_tp_stats(tp, &st);
  CHECK_INT(st.dropped, 1);
  CHECK_INT(st.conn_opened, 2);
  CHECK_INT(st.conn_closed, 2);
  close_tp(&r);
}

/* Partial-message and idle timeouts. */
static void test_tcp_timeouts(void) {
  rec r = {0};
  sip_tp_config cfg;
  sip_tp_config_init(&cfg);
  cfg.partial_message_timeout_ms = 200;
  cfg.idle_timeout_ms = 400;
  sip_tp *tp = mk_tp(&r, &cfg);
  int lport = sip_tp_listener_port(tp, sip_tp_listen(tp, "tcp:127.0.0.1:0"));
  char msg[1024], buf[64];
  int n = mkreq(msg, sizeof(msg), "OPTIONS",
                "SIP/2.0/TCP client.invalid;branch=z9hG4bKp1", "");

  /* half a message, then silence: closed after ~200 ms */
  int s = tcp_connect(AF_INET, lport);
  uint64_t t0 = now_ms();
  tcp_write(s, msg, (size_t)n / 2);
  ssize_t got = recv_poll(s, buf, sizeof(buf), 3000);
  uint64_t dt = now_ms() - t0;
  CHECK(got == 0 || got == -2);
  CHECK_MSG(dt >= 150 && dt < 1500, "partial close after %llu ms",
            (unsigned long long)dt);
  CHECK_INT(r.nmsg, 0);
  RUN_UNTIL(r.nclose == 1, 1000);
  CHECK_INT(r.close_err, UV_ETIMEDOUT);
  CHECK(strstr(sip_tp_last_error(tp), "partial message timeout") != NULL);
  close(s);

  /* a whole message, then silence: closed as idle after ~400 ms */
  s = tcp_connect(AF_INET, lport);
  t0 = now_ms();
  tcp_write(s, msg, (size_t)n);
  RUN_UNTIL(r.nmsg == 1, 2000);
  CHECK_INT(r.nmsg, 1);
  got = recv_poll(s, buf, sizeof(buf), 3000);
  dt = now_ms() - t0;
  CHECK(got == 0 || got == -2);
  CHECK_MSG(dt >= 300 && dt < 2000, "idle close after %llu ms",
            (unsigned long long)dt);
  RUN_UNTIL(r.nclose == 2, 1000);
  CHECK(strstr(sip_tp_last_error(tp), "idle timeout") != NULL);
  close(s);

  /* slowloris: one byte every 50 ms is still cut at the partial timeout */
  s = tcp_connect(AF_INET, lport);
  t0 = now_ms();
  int i = 0;
  for (; i < n && now_ms() - t0 < 1500; i++) {
    if (send(s, msg + i, 1, MSG_NOSIGNAL) != 1)
      break;
    run_for(50);
  }
  CHECK_MSG(i < n, "a slow message of %d bytes was never cut", n);
  close(s);
  sip_tp_counters st;
  RUN_UNTIL((sip_tp_stats(tp, &st), st.conn_closed == 3), 2000);
  CHECK_INT(st.conn_timeouts, 3);
  CHECK_INT(r.nmsg, 1);
  close_tp(&r);
}

/* ---- flood protection (flood.c) ---------------------------------------- */

typedef struct flood_hook {
  int calls, kind, allow;
  uint32_t count;
  char user[32];
} flood_hook;

static int hook_block(void *ud, const struct sockaddr_storage *src,
                      const char *user, size_t ulen, int kind, uint32_t count) {
  flood_hook *h = ud;
  (void)src;
  h->calls++;
  h->kind = kind;
  h->count = count;
  snprintf(h->user, sizeof(h->user), "%.*s", (int)ulen, user ? user : "");
  return !h->allow;
}

static int flood_req(char *out, size_t cap, const char *method,
                     const char *from, int n) {
  return snprintf(out, cap,
                  "%s sip:bob@127.0.0.1 SIP/2.0\r\n"
                  "Via: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bKfl%d;rport\r\n"
                  "%s\r\nTo: <sip:bob@127.0.0.1>\r\nCall-ID: fl%d\r\n"
                  "CSeq: 1 %s\r\nContent-Length: 0\r\n\r\n",
                  method, n, from, n, method);
}

static void blocked_count(void *arg, const struct sockaddr_storage *a,
                          const char *user, size_t ulen, uint64_t left) {
  (void)a;
  (void)user;
  (void)ulen;
  CHECK(left > 0);
  ++*(int *)arg;
}

static void test_flood(void) {
  rec r = {0};
  sip_tp *tp = mk_tp(&r, NULL);
  int lport = sip_tp_listener_port(tp, sip_tp_listen(tp, "udp:127.0.0.1:0"));
  int cport = 0, s = udp_sock(AF_INET, &cport);
  sip_flood_config fc;
  sip_flood_config_init(&fc);
  CHECK_INT(fc.window_ms, 1000);
  CHECK_INT(fc.block_ms, 60000);
  CHECK_INT(sip_tp_flood_trust(tp, "10.0.0.0/8"), SIP_EINVAL); /* off */
  fc.max_invite = 3;
  fc.max_other = 5;
  fc.reply_503 = 1;
  CHECK_INT(sip_tp_flood(tp, &fc), 0);
  char msg[1024], buf[2048];
  int seq = 0;
  /* responses are never counted */
  const char *resp =
      "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:1;branch=z9hG4bKx\r\n"
      "From: <sip:a@b>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: r\r\n"
      "CSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n";
  for (int i = 0; i < 10; i++)
    udp_to(s, AF_INET, lport, resp, strlen(resp));
  RUN_UNTIL(r.nmsg == 10, 2000);
  CHECK_INT(r.nmsg, 10);
  rec_clear(&r);
  /* 5 OPTIONS pass; 3 INVITE/REGISTER pass, the 4th blocks: one 503 */
  for (int i = 0; i < 5; i++) {
    int n =
        flood_req(msg, sizeof msg, "OPTIONS", "From: <sip:a@x>;tag=1", seq++);
    udp_to(s, AF_INET, lport, msg, (size_t)n);
  }
  const char *inv[] = {"INVITE", "REGISTER", "INVITE", "REGISTER", "INVITE"};
  for (int i = 0; i < 5; i++) {
    int n = flood_req(msg, sizeof msg, inv[i], "From: <sip:a@x>;tag=1", seq++);
    udp_to(s, AF_INET, lport, msg, (size_t)n);
  }
  ssize_t got = recv_poll(s, buf, sizeof(buf) - 1, 2000);
  CHECK(got > 0);
  if (got > 0) {
    buf[got] = 0;
    CHECK(strncmp(buf, "SIP/2.0 503 ", 12) == 0);
    CHECK(strstr(buf, "\r\nRetry-After: 60\r\n") != NULL);
    CHECK(strstr(buf, "CSeq: 1 REGISTER\r\n") != NULL);
    CHECK(strstr(buf, "To: <sip:bob@127.0.0.1>;tag=fl") != NULL);
  }
  CHECK_INT(recv_poll(s, buf, sizeof(buf), 100), -1); /* once only */
  RUN_UNTIL(r.nmsg == 8, 1000);
  CHECK_INT(r.nmsg, 8);
  sip_tp_counters st;
  sip_tp_stats(tp, &st);
  CHECK_INT(st.flood_blocks, 1);
  CHECK_INT(st.flood_dropped, 2);
  CHECK_INT(st.flood_replied, 1);
  /* responses by class: the 10 received 200s, the one 503 sent */
  CHECK_INT(st.rx_responses[1], 10);
  CHECK_INT(st.rx_responses[4], 0);
  CHECK_INT(st.tx_responses[4], 1);
  CHECK_INT(st.tx_responses[1], 0);
  int nb = 0;
  CHECK_INT(sip_tp_flood_blocked(tp, blocked_count, &nb), 1);
  CHECK_INT(nb, 1);
  /* unblock, then trust the source: nothing counted any more */
  struct sockaddr_storage me;
  loopback(&me, AF_INET, 0);
  CHECK_INT(sip_tp_flood_unblock(tp, &me), 1);
  CHECK_INT(sip_tp_flood_blocked(tp, NULL, NULL), 0);
  CHECK_INT(sip_tp_flood_trust(tp, "127.0.0.0/33"), SIP_EINVAL);
  CHECK_INT(sip_tp_flood_trust(tp, "127.0.0.x"), SIP_EINVAL);
  CHECK_INT(sip_tp_flood_trust(tp, "::1/129"), SIP_EINVAL);
  CHECK_INT(sip_tp_flood_trust(tp, "127.0.0.0/28"), 0);
  rec_clear(&r);
  for (int i = 0; i < 20; i++) {
    int n =
        flood_req(msg, sizeof msg, "INVITE", "From: <sip:a@x>;tag=1", seq++);
    udp_to(s, AF_INET, lport, msg, (size_t)n);
  }
  RUN_UNTIL(r.nmsg == 20, 2000);
  CHECK_INT(r.nmsg, 20);
  sip_tp_stats(tp, &st);
  CHECK_INT(st.flood_trusted, 20);
  sip_tp_flood_trust_clear(tp);

  /* the trusted list counts references (a dispatcher's destinations come
   * and go as names re-resolve; a script reload declares them again):
   * trusting an entry again takes no slot, untrusting drops one reference
   * and the last one the entry */
  char cidr[32];
  for (int i = 0; i < 64; i++) {
    snprintf(cidr, sizeof cidr, "10.0.%d.0/24", i);
    CHECK_INT(sip_tp_flood_trust(tp, cidr), 0);
  }
  CHECK_INT(sip_tp_flood_trust(tp, "10.1.0.0/24"), SIP_ETOOMANY);
  CHECK_INT(sip_tp_flood_trust(tp, "10.0.5.0/24"), 0);
  CHECK_INT(sip_tp_flood_trust(tp, "10.0.5.7/24"), 0); /* the same network */
  CHECK_INT(sip_tp_flood_untrust(tp, "10.0.63.0/24"), 0);
  CHECK_INT(sip_tp_flood_untrust(tp, "10.0.63.0/24"), SIP_ENOTFOUND);
  CHECK_INT(sip_tp_flood_untrust(tp, "10.0.63.0/2x"), SIP_EINVAL);
  CHECK_INT(sip_tp_flood_trust(tp, "127.0.0.1"), 0); /* the freed slot */
  CHECK_INT(sip_tp_flood_trust(tp, "127.0.0.1"), 0);
  CHECK_INT(sip_tp_flood_untrust(tp, "127.0.0.1"), 0);
  sip_tp_stats(tp, &st);
  uint64_t trusted_before = st.flood_trusted;
  rec_clear(&r);
  for (int i = 0; i < 5; i++) { /* one reference left: trusted */
    int n =
        flood_req(msg, sizeof msg, "INVITE", "From: <sip:a@x>;tag=1", seq++);
    udp_to(s, AF_INET, lport, msg, (size_t)n);
  }
  RUN_UNTIL(r.nmsg == 5, 2000);
  CHECK_INT(r.nmsg, 5);
  sip_tp_stats(tp, &st);
  CHECK_INT(st.flood_trusted, trusted_before + 5);
  CHECK_INT(sip_tp_flood_untrust(tp, "127.0.0.1"), 0);
  CHECK_INT(sip_tp_flood_untrust(tp, "127.0.0.1"), SIP_ENOTFOUND);
  rec_clear(&r);
  for (int i = 0; i < 5; i++) { /* not trusted: 3 pass, then blocked */
    int n =
        flood_req(msg, sizeof msg, "INVITE", "From: <sip:a@x>;tag=1", seq++);
    udp_to(s, AF_INET, lport, msg, (size_t)n);
  }
  RUN_UNTIL(r.nmsg == 3, 2000);
  run_for(100);
  CHECK_INT(r.nmsg, 3);
  sip_tp_stats(tp, &st);
  CHECK_INT(st.flood_trusted, trusted_before + 5);
  CHECK_INT(sip_tp_flood_unblock(tp, &me), 1);
  sip_tp_flood_trust_clear(tp);

  /* per user, with the hook: compact From, sips, a display name with '@' */
  flood_hook h = {0};
  sip_flood_config_init(&fc);
  fc.max_user = 2;
  fc.max_entries = 16;
  fc.on_block = hook_block;
  fc.ud = &h;
  CHECK_INT(sip_tp_flood(tp, &fc), 0);
  rec_clear(&r);
  const char *froms[] = {"f: \"x@y\" <sips:noisy@x>;tag=1",
                         "From: <sip:noisy@x>",
                         "FROM : noisy <sip:noisy@x;transport=tcp>"};
  for (int i = 0; i < 3; i++) {
    int n = flood_req(msg, sizeof msg, "MESSAGE", froms[i], seq++);
    udp_to(s, AF_INET, lport, msg, (size_t)n);
  }
  int n = flood_req(msg, sizeof msg, "MESSAGE", "From: <sip:quiet@x>", seq++);
  udp_to(s, AF_INET, lport, msg, (size_t)n);
  RUN_UNTIL(r.nmsg == 3, 1000);
  run_for(50);
  CHECK_INT(r.nmsg, 3);
  CHECK_INT(h.calls, 1);
  CHECK_INT(h.kind, 3);
  CHECK_INT(h.count, 3);
  CHECK(strcmp(h.user, "noisy") == 0);
  /* a hook that says no: the window starts again, nothing dropped */
  h.allow = 1;
  rec_clear(&r);
  for (int i = 0; i < 6; i++) {
    n = flood_req(msg, sizeof msg, "MESSAGE", "From: <sip:other@x>", seq++);
    udp_to(s, AF_INET, lport, msg, (size_t)n);
  }
  RUN_UNTIL(r.nmsg == 6, 1000);
  CHECK_INT(r.nmsg, 6);
  sip_tp_stats(tp, &st);
  CHECK_INT(st.flood_vetoed, 2);
  /* bounded: 100 users in 16 slots */
  h.allow = 0;
  for (int i = 0; i < 100; i++) {
    char from[64];
    snprintf(from, sizeof from, "From: <sip:u%d@x>", i);
    n = flood_req(msg, sizeof msg, "MESSAGE", from, seq++);
    udp_to(s, AF_INET, lport, msg, (size_t)n);
    if (i % 10 == 9)
      run_for(5);
  }
  run_for(100);
  sip_tp_stats(tp, &st);
  CHECK(st.flood_evictions >= 100 - 16);
  /* no user in From (or no From): counted for the source alone */
  n = snprintf(
      msg, sizeof msg,
      "OPTIONS sip:bob@127.0.0.1 SIP/2.0\r\n"
      "Via: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bKnu;rport\r\n"
      "From: <sip:x>;tag=1\r\nTo: <sip:bob@127.0.0.1>\r\nCall-ID: nu\r\n"
      "CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n");
  rec_clear(&r);
  udp_to(s, AF_INET, lport, msg, (size_t)n);
  RUN_UNTIL(r.nmsg == 1, 1000);
  CHECK_INT(r.nmsg, 1);
  CHECK_INT(sip_tp_flood(tp, NULL), 0); /* off */
  CHECK_INT(sip_tp_flood_blocked(tp, NULL, NULL), 0);
  fc.max_entries = 0;
  CHECK_INT(sip_tp_flood(tp, &fc), SIP_EINVAL);
  close(s);
  close_tp(&r);
}

/* max_connections: a newcomer takes the slot of the least recently useful
 * connection (issue [edge]: idle connections kept open with keep-alives
 * locked every new caller out); with max_connections 0 it is refused. */
static void test_tcp_limit(void) {
  rec r = {0};
  sip_tp_config cfg;
  sip_tp_config_init(&cfg);
  cfg.max_connections = 2;
  sip_tp *tp = mk_tp(&r, &cfg);
  int lport = sip_tp_listener_port(tp, sip_tp_listen(tp, "tcp:127.0.0.1:0"));
  int s[3];
  for (int i = 0; i < 2; i++) {
    s[i] = tcp_connect(AF_INET, lport);
    RUN_UNTIL(r.nopen == i + 1, 1000);
    run_for(5); /* distinct opening times */
  }
  /* keep-alives on the oldest: no message, so it stays the oldest */
  CHECK_INT((int)send(s[0], "\r\n\r\n", 4, 0), 4);
  char buf[16];
  CHECK_INT(recv_poll(s[0], buf, sizeof(buf), 1000), 2); /* the pong */
  s[2] = tcp_connect(AF_INET, lport);
  sip_tp_counters st;
  RUN_UNTIL((sip_tp_stats(tp, &st), st.conn_evicted == 1), 2000);
  CHECK_INT(st.conn_evicted, 1);
  CHECK_INT(st.conn_refused, 0);
  CHECK_INT(sip_tp_conn_count(tp), 2);
  ssize_t got = recv_poll(s[0], buf, sizeof(buf), 2000);
  CHECK(got == 0 || got == -2); /* the oldest made room */
  CHECK_INT(recv_poll(s[1], buf, sizeof(buf), 50), -1); /* still open */
  CHECK_INT(recv_poll(s[2], buf, sizeof(buf), 50), -1);
  /* outgoing connections take a slot the same way */
  sip_dest d;
  sip_dest_init(&d, SIP_TP_TCP);
  loopback(&d.addr, AF_INET, lport);
  CHECK_INT(sip_tp_send(tp, "x", 1, &d, NULL, NULL), SIP_EINVAL); /* no msg */
  const char *opt =
      "OPTIONS sip:a@127.0.0.1 SIP/2.0\r\nContent-Length: 0\r\n\r\n";
  CHECK_INT(sip_tp_send(tp, opt, strlen(opt), &d, NULL, NULL), 0);
  sip_tp_stats(tp, &st);
  CHECK_INT(st.conn_evicted, 2);
  got = recv_poll(s[1], buf, sizeof(buf), 2000);
  CHECK(got == 0 || got == -2);
  for (int i = 0; i < 3; i++)
    close(s[i]);
  close_tp(&r);

  /* no slots at all: refused, incoming and outgoing */
  rec r0 = {0};
  cfg.max_connections = 0;
  tp = mk_tp(&r0, &cfg);
  lport = sip_tp_listener_port(tp, sip_tp_listen(tp, "tcp:127.0.0.1:0"));
  int z = tcp_connect(AF_INET, lport);
  RUN_UNTIL((sip_tp_stats(tp, &st), st.conn_refused == 1), 2000);
  CHECK_INT(st.conn_refused, 1);
  got = recv_poll(z, buf, sizeof(buf), 2000);
  CHECK(got == 0 || got == -2);
  loopback(&d.addr, AF_INET, lport);
  CHECK_INT(sip_tp_send(tp, opt, strlen(opt), &d, NULL, NULL), UV_EMFILE);
  sip_tp_stats(tp, &st);
  CHECK_INT(st.conn_refused, 2);
  close(z);
  close_tp(&r0);
}

/* max_conn_per_source: the connection beyond it is closed and counted; other
 * sources are not limited by it. */
static void test_tcp_per_source(void) {
  rec r = {0};
  sip_tp_config cfg;
  sip_tp_config_init(&cfg);
  cfg.max_conn_per_source = 2;
  sip_tp *tp = mk_tp(&r, &cfg);
  int lport = sip_tp_listener_port(tp, sip_tp_listen(tp, "tcp:127.0.0.1:0"));
  int s[3];
  for (int i = 0; i < 3; i++)
    s[i] = tcp_connect(AF_INET, lport);
  sip_tp_counters st;
  RUN_UNTIL((sip_tp_stats(tp, &st), st.conn_refused_source == 1), 2000);
  CHECK_INT(st.conn_refused_source, 1);
  CHECK_INT(sip_tp_conn_count(tp), 2);
  for (int i = 0; i < 3; i++)
    close(s[i]);
  close_tp(&r);
}

/* Two managers: outgoing TCP, connection reuse, responses on the same
 * connection, connection refused. */

/* RFC 5923 over TCP: with tcp_accept_aliases, ";alias" in the top Via makes
 * the connection reachable at the Via's sent-by; without it the alias is
 * refused and counted. The alias address is a loopback address where
 * nothing listens, so a send that ignored the alias would fail to connect. */
static void test_tcp_alias(void) {
  for (int accept = 0; accept <= 1; accept++) {
    rec ra = {0}, rb = {0};
    sip_tp_config cfg;
    sip_tp_config_init(&cfg);
    cfg.tcp_accept_aliases = accept;
    sip_tp *a = mk_tp(&ra, NULL);
    sip_tp *b = mk_tp(&rb, &cfg);
    int lid = sip_tp_listen(b, "tcp:127.0.0.1:0");
    sip_dest d;
    sip_dest_init(&d, SIP_TP_TCP);
    loopback(&d.addr, AF_INET, sip_tp_listener_port(b, lid));
    char m[1024];
    int n = mkreq(m, sizeof(m), "OPTIONS",
                  "SIP/2.0/TCP 127.0.0.5:5099;branch=z9hG4bKal1;alias", "");
    sendres s1 = {0};
    CHECK_INT(sip_tp_send(a, m, (size_t)n, &d, on_sent, &s1), 0);
    RUN_UNTIL(rb.nmsg == 1, 3000);
    CHECK_INT(rb.nmsg, 1);
    sip_tp_counters st;
    sip_tp_stats(b, &st);
    CHECK_INT(st.aliases, accept ? 1 : 0);
    CHECK_INT(st.aliases_refused, accept ? 0 : 1);
    /* b sends a request to the alias address */
    sip_dest back;
    sip_dest_init(&back, SIP_TP_TCP);
    sip_tp_addr(&back.addr, "127.0.0.5", 9, 5099);
    n = mkreq(m, sizeof(m), "NOTIFY", "SIP/2.0/TCP 127.0.0.1;branch=z9hG4bKal2",
              "");
    sendres s2 = {0};
    CHECK_INT(sip_tp_send(b, m, (size_t)n, &back, on_sent, &s2), 0);
    RUN_UNTIL(s2.done && (!accept || ra.nmsg == 1), 3000);
    CHECK_INT(s2.done, 1);
    if (accept) {
      CHECK_INT(s2.status, 0);
      CHECK_INT(ra.nmsg, 1);
      if (ra.nmsg == 1)
        CHECK_STR(ra.rx[0]->msg.method, "NOTIFY");
      sip_tp_stats(b, &st);
      CHECK_INT(st.conn_opened, 1); /* no new connection */
    } else {
      CHECK(s2.status < 0); /* nothing listens at 127.0.0.5:5099 */
      CHECK_INT(ra.nmsg, 0);
    }
    close_tp(&ra);
    close_tp(&rb);
  }
}

/* Hundreds of connections: the table grows past its first sizes and every
 * response still finds its connection by id. */
static void test_tcp_many(void) {
  enum { NCONN = 300 };
  rec rb = {0};
  sip_tp *b = mk_tp(&rb, NULL);
  int port = sip_tp_listener_port(b, sip_tp_listen(b, "tcp:127.0.0.1:0"));
  static int socks[NCONN];
  char m[1024];
  for (int i = 0; i < NCONN; i++) {
    socks[i] = tcp_connect(AF_INET, port);
    char via[64];
    snprintf(via, sizeof via, "SIP/2.0/TCP 127.0.0.1;branch=z9hG4bKm%d", i);
    int n = mkreq(m, sizeof(m), "OPTIONS", via, "");
    tcp_write(socks[i], m, (size_t)n);
  }
  RUN_UNTIL(rb.nmsg == NCONN, 10000);
  CHECK_INT(rb.nmsg, NCONN);
  CHECK_INT(sip_tp_conn_count(b), NCONN);
  /* answer the first MAXMSG over their own connections, by id */
  int answered = 0;
  for (int i = 0; i < MAXMSG && i < rb.nmsg; i++) {
    const sip_via *v;
    if (sip_msg_get_vias(&rb.rx[i]->msg, &v) != 0)
      continue;
    int n = snprintf(m, sizeof m,
                     "SIP/2.0 200 OK\r\nVia: %.*s\r\nContent-Length: 0\r\n\r\n",
                     (int)v->raw.len, v->raw.p);
    if (sip_tp_send_response(b, m, (size_t)n, v, &rb.src[i], NULL, NULL) == 0)
      answered++;
  }
  CHECK_INT(answered, MAXMSG);
  sip_tp_counters st;
  sip_tp_stats(b, &st);
  CHECK_INT(st.tx_responses[1], MAXMSG); /* 2xx, counted once each */
  CHECK_INT(st.tx_responses[0] + st.tx_responses[2] + st.tx_responses[3] +
                st.tx_responses[4] + st.tx_responses[5],
            0);
  CHECK_INT(sip_tp_conn_count_by(b, SIP_TP_TCP), NCONN);
  CHECK_INT(sip_tp_conn_count_by(b, SIP_TP_TLS), 0);
  CHECK_INT(sip_tp_conn_count_by(b, SIP_TP_UDP), 0);
  /* each of those sockets gets the answer carrying its own branch */
  int right = 0;
  for (int i = 0; i < NCONN && right < MAXMSG; i++) {
    char buf[2048];
    ssize_t n = recv_poll(socks[i], buf, sizeof buf - 1, i < 40 ? 500 : 5);
    if (n > 0) {
      char want[64];
      snprintf(want, sizeof want, "branch=z9hG4bKm%d\r", i);
      right += contains(buf, (size_t)n, want);
    }
  }
  CHECK_INT(right, MAXMSG);
  for (int i = 0; i < NCONN; i++)
    close(socks[i]);
  RUN_UNTIL(sip_tp_conn_count(b) == 0, 5000);
  CHECK_INT(sip_tp_conn_count(b), 0);
  CHECK_INT(sip_tp_conn_count_by(b, SIP_TP_TCP), 0);
  close_tp(&rb);
}

/* §18.1.1 and the URI rules of RFC 3263 §4 for numeric hosts. */
static void test_request_dest(void) {
  static const struct {
    const char *uri;
    size_t len;
    int rc, transport, port;
    const char *addr, *name;
  } cases[] = {
      {"sip:bob@127.0.0.1", 100, 0, SIP_TP_UDP, 5060, "127.0.0.1:5060", NULL},
      {"sip:bob@127.0.0.1", 1301, 0, SIP_TP_TCP, 5060, "127.0.0.1:5060", NULL},
      {"sip:bob@127.0.0.1", 1300, 0, SIP_TP_UDP, 5060, "127.0.0.1:5060", NULL},
      {"sip:bob@127.0.0.1;transport=udp", 4000, 0, SIP_TP_UDP, 5060,
       "127.0.0.1:5060", NULL},
      {"sip:bob@127.0.0.1:5070;transport=TCP", 10, 0, SIP_TP_TCP, 5070,
       "127.0.0.1:5070", NULL},
      {"sips:bob@127.0.0.1", 10, 0, SIP_TP_TLS, 5061, "127.0.0.1:5061",
       "127.0.0.1"},
      {"sips:bob@[::1]:5071;transport=tcp", 10, 0, SIP_TP_TLS, 5071,
       "[::1]:5071", "::1"},
      {"sip:bob@127.0.0.1;transport=tls", 10, 0, SIP_TP_TLS, 5061,
       "127.0.0.1:5061", "127.0.0.1"},
      {"sip:bob@example.com;maddr=127.0.0.2", 10, 0, SIP_TP_UDP, 5060,
       "127.0.0.2:5060", NULL},
      {"sip:bob@example.com", 10, UV_EAI_NONAME, 0, 0, NULL, NULL},
      {"sip:bob@127.0.0.1;transport=sctp", 10, SIP_EINVAL, 0, 0, NULL, NULL},
      {"sips:bob@127.0.0.1;transport=udp", 10, SIP_EINVAL, 0, 0, NULL, NULL},
      {"tel:+15551234", 10, SIP_EINVAL, 0, 0, NULL, NULL},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    uint64_t block[256];
    sip_arena a;
    sip_arena_init(&a, block, sizeof block);
    sip_uri u;
    CHECK_INT(sip_uri_parse(&a, cases[i].uri, strlen(cases[i].uri), &u), 0);
    sip_dest d;
    char name[64];
    int rc = sip_tp_request_dest(&u, cases[i].len, &d, name, sizeof name);
    CHECK_MSG(rc == cases[i].rc, "%s: rc %d", cases[i].uri, rc);
    if (rc == 0) {
      char text[64];
      sip_tp_addr_str(&d.addr, text, sizeof text);
      CHECK_INT(d.transport, cases[i].transport);
      CHECK_MSG(strcmp(text, cases[i].addr) == 0, "%s: %s", cases[i].uri, text);
      if (cases[i].name)
        CHECK_MSG(d.tls_name && strcmp(d.tls_name, cases[i].name) == 0,
                  "%s: tls_name %s", cases[i].uri,
                  d.tls_name ? d.tls_name : "(none)");
      else
        CHECK(d.tls_name == NULL);
      /* §18.1.1 is the rule only when the URI named no transport */
      CHECK_INT(d.size_rule, strstr(cases[i].uri, "sip:") == cases[i].uri &&
                                 !strstr(cases[i].uri, "transport="));
    }
    sip_arena_free(&a);
  }
  /* on the real size: switched to TCP above 1300 bytes, by the rule only */
  sip_dest d;
  sip_dest_init(&d, SIP_TP_UDP);
  loopback(&d.addr, AF_INET, 5120);
  d.listener = 3;
  CHECK_INT(sip_tp_request_switch(&d, 2000), 0); /* no size_rule */
  d.size_rule = 1;
  CHECK_INT(sip_tp_request_switch(&d, 1300), 0);
  CHECK_INT(d.transport, SIP_TP_UDP);
  CHECK_INT(sip_tp_request_switch(&d, 1301), 1);
  CHECK_INT(d.transport, SIP_TP_TCP);
  CHECK_INT(d.listener, -1);
  CHECK_INT(sip_tp_addr_port(&d.addr), 5120);
  CHECK_INT(sip_tp_request_switch(&d, 1301), 0); /* TCP already */
}

static void test_tcp_send(int fam) {
  rec ra = {0}, rb = {0};
  sip_tp *a = mk_tp(&ra, NULL);
  sip_tp *b = mk_tp(&rb, NULL);
  int lid =
      sip_tp_listen(b, fam == AF_INET6 ? "tcp:[::1]:0" : "tcp:127.0.0.1:0");
  CHECK(lid >= 0);
  sip_dest d;
  sip_dest_init(&d, SIP_TP_TCP);
  loopback(&d.addr, fam, sip_tp_listener_port(b, lid));
  char m1[1024], m2[1024];
  int n1 = mkreq(m1, sizeof(m1), "INVITE",
                 "SIP/2.0/TCP a.invalid;branch=z9hG4bKs1", "one");
  int n2 = mkreq(m2, sizeof(m2), "BYE",
                 "SIP/2.0/TCP a.invalid;branch=z9hG4bKs2", "");
  sendres s1 = {0}, s2 = {0};
  CHECK_INT(sip_tp_send(a, m1, (size_t)n1, &d, on_sent, &s1), 0);
  CHECK_INT(sip_tp_send(a, m2, (size_t)n2, &d, on_sent, &s2), 0);
  CHECK_INT(sip_tp_conn_count(a), 1);
  RUN_UNTIL(rb.nmsg == 2 && s1.done && s2.done, 3000);
  CHECK_INT(s1.done, 1);
  CHECK_INT(s1.status, 0);
  CHECK_INT(s2.status, 0);
  CHECK_INT(rb.nmsg, 2);
  if (rb.nmsg == 2) {
    CHECK_STR(rb.rx[0]->msg.method, "INVITE");
    CHECK_STR(rb.rx[1]->msg.method, "BYE");
    CHECK(rb.src[0].conn_id == rb.src[1].conn_id);
    CHECK_INT(rb.src[0].peer.ss_family, fam);
  }
  /* a third send later reuses the connection too */
  sendres s3 = {0};
  CHECK_INT(sip_tp_send(a, m2, (size_t)n2, &d, on_sent, &s3), 0);
  RUN_UNTIL(rb.nmsg == 3 && s3.done, 3000);
  CHECK_INT(rb.nmsg, 3);
  sip_tp_counters st;
  sip_tp_stats(a, &st);
  CHECK_INT(st.conn_opened, 1);
  CHECK_INT(st.tx_msgs, 3);
  sip_tp_stats(b, &st);
  CHECK_INT(st.conn_opened, 1);

  /* the response goes back over the request's connection */
  if (rb.nmsg >= 1) {
    const sip_via *v;
    CHECK_INT(sip_msg_get_vias(&rb.rx[0]->msg, &v), 0);
    const char *resp = "SIP/2.0 200 OK\r\nVia: SIP/2.0/TCP a.invalid\r\n"
                       "Content-Length: 0\r\n\r\n";
    sendres sr = {0};
    CHECK_INT(sip_tp_send_response(b, resp, strlen(resp), v, &rb.src[0],
                                   on_sent, &sr),
              0);
    RUN_UNTIL(ra.nmsg == 1 && sr.done, 3000);
    CHECK_INT(ra.nmsg, 1);
    CHECK_INT(sr.status, 0);
    if (ra.nmsg == 1) {
      CHECK_INT(ra.rx[0]->msg.status, 200);
      CHECK(ra.src[0].conn_id == ra.open_id);
      CHECK_INT(ra.src[0].listener, -1);
    }
    CHECK_INT(sip_tp_conn_count(b), 1);
    /* after the connection is gone the response needs a new one to
     * received:sent-by port (5060 here): only computed, not sent */
    sip_tp_conn_close(b, rb.src[0].conn_id);
    RUN_UNTIL(ra.nclose == 1, 2000);
    CHECK_INT(ra.nclose, 1);
    CHECK_INT(ra.close_err, 0);
    sip_dest rd;
    CHECK_INT(sip_tp_response_dest(b, v, &rb.src[0], &rd), 0);
    CHECK_INT(rd.conn_id, 0);
    CHECK_INT(sip_tp_addr_port(&rd.addr), 5060);
    CHECK_INT(rd.addr.ss_family, fam);
  }

  /* connection refused comes back through the callback */
  int probe = socket(fam, SOCK_STREAM, 0);
  struct sockaddr_storage sa;
  loopback(&sa, fam, 0);
  bind(probe, (struct sockaddr *)&sa,
       fam == AF_INET6 ? sizeof(struct sockaddr_in6)
                       : sizeof(struct sockaddr_in));
  int dead = sock_port(probe);
  close(probe);
  loopback(&d.addr, fam, dead);
  sendres sf = {0};
  CHECK_INT(sip_tp_send(a, m1, (size_t)n1, &d, on_sent, &sf), 0);
  RUN_UNTIL(sf.done, 3000);
  CHECK_INT(sf.done, 1);
  CHECK_INT(sf.status, UV_ECONNREFUSED);
  sip_tp_stats(a, &st);
  CHECK_INT(st.tx_errors, 1);

  /* max_write_queue: bytes waiting for the connect count */
  {
    rec rq = {0};
    sip_tp_config cfg;
    sip_tp_config_init(&cfg);
    cfg.max_write_queue = 70000;
    sip_tp *q = mk_tp(&rq, &cfg);
    static char chunk[30000]; /* a message of 30000 bytes */
    memset(chunk, 'x', sizeof(chunk));
    char head[128];
    int hn =
        snprintf(head, sizeof(head),
                 "MESSAGE sip:b@x SIP/2.0\r\nContent-Length: %5d\r\n\r\n", 0);
    snprintf(head, sizeof(head),
             "MESSAGE sip:b@x SIP/2.0\r\nContent-Length: %5d\r\n\r\n",
             (int)sizeof(chunk) - hn);
    memcpy(chunk, head, (size_t)hn);
    loopback(&d.addr, fam, sip_tp_listener_port(b, lid));
    sendres q1 = {0}, q2 = {0};
    CHECK_INT(sip_tp_send(q, chunk, sizeof(chunk), &d, on_sent, &q1), 0);
    CHECK_INT(sip_tp_send(q, chunk, sizeof(chunk), &d, on_sent, &q2), 0);
    CHECK_INT(sip_tp_send(q, chunk, sizeof(chunk), &d, NULL, NULL), UV_ENOBUFS);
    close_tp(&rq);
    CHECK_INT(q1.status, UV_ECANCELED);
    CHECK_INT(q2.status, UV_ECANCELED);
  }

  /* pending sends fail with ECANCELED when the manager closes */
  loopback(&d.addr, fam, sip_tp_listener_port(b, lid));
  sendres sc = {0};
  CHECK_INT(sip_tp_send(a, m1, (size_t)n1, &d, on_sent, &sc), 0);
  close_tp(&ra);
  CHECK_INT(sc.done, 1);
  CHECK_INT(sc.status, UV_ECANCELED);
  close_tp(&rb);
}

/* ---- TLS
 * ---------------------------------------------------------------------- */

static char tmpdir[64];

static int sh(const char *cmd) {
  char full[1024];
  snprintf(full, sizeof(full), "cd %s && %s >/dev/null 2>&1", tmpdir, cmd);
  return system(full);
}

static int make_certs(void) {
  snprintf(tmpdir, sizeof(tmpdir), "/tmp/tp_test_XXXXXX");
  if (!mkdtemp(tmpdir))
    return -1;
  FILE *f = fopen(strcat(strcpy((char[128]){0}, tmpdir), "/ext.cnf"), "w");
  if (!f)
    return -1;
  fputs("subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1\n"
        "basicConstraints=critical,CA:FALSE\n"
        "extendedKeyUsage=serverAuth,clientAuth\n",
        f);
  fclose(f);
  const char *ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
  char cmd[512];
  snprintf(cmd, sizeof(cmd),
           "openssl req -x509 %s -keyout ca.key -out ca.crt -days 1 "
           "-subj /CN=tp-test-ca -addext basicConstraints=critical,CA:TRUE "
           "-addext keyUsage=critical,keyCertSign,cRLSign",
           ec);
  if (sh(cmd) != 0)
    return -1;
  snprintf(cmd, sizeof(cmd),
           "openssl req %s -keyout srv.key -out srv.csr -subj /CN=localhost",
           ec);
  if (sh(cmd) != 0)
    return -1;
  return sh("openssl x509 -req -in srv.csr -CA ca.crt -CAkey ca.key "
            "-CAcreateserial -out srv.crt -days 1 -extfile ext.cnf");
}

static void rm_certs(void) {
  sh("rm -f ca.key ca.crt ca.srl srv.key srv.csr srv.crt ext.cnf");
  rmdir(tmpdir);
}

static void test_tls(void) {
  if (make_certs() != 0) {
    CHECK_MSG(0, "openssl could not make the test certificates");
    return;
  }
  char cert[128], key[128], ca[128];
  snprintf(cert, sizeof(cert), "%s/srv.crt", tmpdir);
  snprintf(key, sizeof(key), "%s/srv.key", tmpdir);
  snprintf(ca, sizeof(ca), "%s/ca.crt", tmpdir);

  /* bad files are reported with OpenSSL's text */
  {
    sip_tp_config cfg;
    sip_tp_config_init(&cfg);
    cfg.tls_cert_file = ca;
    cfg.tls_key_file = key; /* does not match the CA certificate */
    sip_tp *tp = NULL;
    char err[512];
    CHECK_INT(sip_tp_new(&loop, &cfg, &tp, err, sizeof(err)), SIP_EINVAL);
    CHECK_MSG(strstr(err, "TLS:") && strstr(err, "key values mismatch"),
              "err: %s", err);
    CHECK(tp == NULL);
  }

  rec rs = {0}, rc = {0}, rbad = {0}, rip = {0};
  sip_tp_config cfg;
  sip_tp_config_init(&cfg);
  cfg.tls_cert_file = cert;
  cfg.tls_key_file = key;
  sip_tp *srv = mk_tp(&rs, &cfg);
  int lid = sip_tp_listen(srv, "tls:127.0.0.1:0");
  CHECK(lid >= 0);
  int lid6 = sip_tp_listen(srv, "tls:[::1]:0");
  CHECK(lid6 >= 0);

  sip_tp_config_init(&cfg);
  cfg.tls_ca_file = ca;
  cfg.tls_verify_peer = 1;
  sip_tp *cli = mk_tp(&rc, &cfg);
  sip_tp *bad = mk_tp(&rbad, &cfg);
  sip_tp *ipc = mk_tp(&rip, &cfg);

  sip_dest d;
  sip_dest_init(&d, SIP_TP_TLS);
  loopback(&d.addr, AF_INET, sip_tp_listener_port(srv, lid));
  d.tls_name = "localhost";
  char m1[1024];
  int n1 = mkreq(m1, sizeof(m1), "INVITE",
                 "SIP/2.0/TLS client.invalid;branch=z9hG4bKl1", "tls body");
  sendres s1 = {0}, s2 = {0};
  CHECK_INT(sip_tp_send(cli, m1, (size_t)n1, &d, on_sent, &s1), 0);
  CHECK_INT(sip_tp_send(cli, m1, (size_t)n1, &d, on_sent, &s2), 0);
  RUN_UNTIL(rs.nmsg == 2 && s2.done, 5000);
  CHECK_INT(s1.status, 0);
  CHECK_INT(s2.status, 0);
  CHECK_INT(rs.nmsg, 2);
  CHECK_INT(rc.nopen, 1);
  CHECK_MSG(rs.nmsg == 2, "tls: %s / %s", sip_tp_last_error(cli),
            sip_tp_last_error(srv));
  if (rs.nmsg >= 1) {
    CHECK_INT(rs.src[0].transport, SIP_TP_TLS);
    CHECK_STR(rs.rx[0]->msg.body, "tls body");
    const sip_via *v;
    CHECK_INT(sip_msg_get_vias(&rs.rx[0]->msg, &v), 0);
    CHECK_STR(v->received, "127.0.0.1");
    /* response over the same TLS connection */
    const char *resp = "SIP/2.0 180 Ringing\r\nContent-Length: 0\r\n\r\n";
    sendres sr = {0};
    CHECK_INT(sip_tp_send_response(srv, resp, strlen(resp), v, &rs.src[0],
                                   on_sent, &sr),
              0);
    RUN_UNTIL(rc.nmsg == 1, 3000);
    CHECK_INT(rc.nmsg, 1);
    if (rc.nmsg == 1) {
      CHECK_INT(rc.rx[0]->msg.status, 180);
      CHECK_INT(rc.src[0].transport, SIP_TP_TLS);
    }
  }
  /* a large message over TLS: several records */
  {
    size_t blen = 50000;
    char *body = malloc(blen + 1), *big = malloc(blen + 1024);
    for (size_t i = 0; i < blen; i++)
      body[i] = (char)('A' + i % 26);
    body[blen] = '\0';
    int bn = mkreq(big, blen + 1024, "MESSAGE",
                   "SIP/2.0/TLS client.invalid;branch=z9hG4bKl2", body);
    sendres sbig = {0};
    int before = rs.nmsg;
    CHECK_INT(sip_tp_send(cli, big, (size_t)bn, &d, on_sent, &sbig), 0);
    RUN_UNTIL(rs.nmsg == before + 1 && sbig.done, 5000);
    CHECK_INT(sbig.status, 0);
    CHECK_INT(rs.nmsg, before + 1);
    if (rs.nmsg == before + 1 && before < MAXMSG) {
      CHECK_INT(rs.rx[before]->msg.body.len, blen);
      CHECK(memcmp(rs.rx[before]->msg.body.p, body, blen) == 0);
    }
    free(body);
    free(big);
  }
  /* CRLF keep-alive over TLS: the client ignores the pong */
  sendres sk = {0};
  CHECK_INT(sip_tp_send(cli, "\r\n\r\n", 4, &d, on_sent, &sk), 0);
  sip_tp_counters st;
  RUN_UNTIL((sip_tp_stats(srv, &st), st.keepalives == 1), 2000);
  CHECK_INT(st.keepalives, 1);
  CHECK_INT(st.conn_opened, 1);

  /* the wrong name: the handshake fails, the send reports SIP_ECERT; the
   * close event names the peer, the name checked, OpenSSL's reason and the
   * verification error; the refusal is counted; the trace never shows the
   * request as sent (issue [wire] 4) */
  d.tls_name = "wrong.example";
  sendres sb = {0};
  FILE *trace = tmpfile();
  CHECK(trace != NULL);
  sip_tp_set_trace(bad, trace);
  CHECK_INT(sip_tp_send(bad, m1, (size_t)n1, &d, on_sent, &sb), 0);
  RUN_UNTIL(sb.done, 5000);
  CHECK_INT(sb.status, SIP_ECERT);
  sip_tp_stats(bad, &st);
  CHECK_INT(st.tls_failures, 1);
  CHECK_INT(st.tls_verify_failures, 1);
  CHECK_INT(st.tx_msgs, 0);
  CHECK_INT(rbad.nclose, 1);
  CHECK_INT(rbad.close_err, SIP_ECERT);
  {
    char peer[64], want[256];
    sip_tp_addr_str(&d.addr, peer, sizeof(peer));
    snprintf(want, sizeof(want),
             "TLS: certificate of %s (wrong.example) "
             "refused: certificate verify failed (verify error 62: ",
             peer);
    CHECK_MSG(strncmp(rbad.close_text, want, strlen(want)) == 0 &&
                  strstr(rbad.close_text, "mismatch") != NULL,
              "close text: %s", rbad.close_text);
    CHECK_MSG(strcmp(sip_tp_last_error(bad), rbad.close_text) == 0,
              "last error: %s", sip_tp_last_error(bad));
    char tb[4096];
    size_t tn = 0;
    if (trace) {
      rewind(trace);
      tn = fread(tb, 1, sizeof(tb) - 1, trace);
      fclose(trace);
    }
    tb[tn] = '\0';
    CHECK_MSG(strstr(tb, " -> ") == NULL && strstr(tb, "INVITE") == NULL,
              "traced as sent: %s", tb);
    sip_tp_set_trace(bad, NULL);
  }
  /* a good send traces the request once it goes out */
  {
    FILE *t2 = tmpfile();
    sip_tp_set_trace(cli, t2);
    d.tls_name = "localhost";
    sendres sg = {0};
    int before = rs.nmsg;
    CHECK_INT(sip_tp_send(cli, m1, (size_t)n1, &d, on_sent, &sg), 0);
    RUN_UNTIL(sg.done && rs.nmsg == before + 1, 5000);
    CHECK_INT(sg.status, 0);
    char tb[4096];
    rewind(t2);
    size_t tn = fread(tb, 1, sizeof(tb) - 1, t2);
    tb[tn] = '\0';
    CHECK_MSG(strstr(tb, " -> ") != NULL && strstr(tb, "\nINVITE ") != NULL,
              "trace: %s", tb);
    sip_tp_set_trace(cli, NULL);
    fclose(t2);
  }

  /* no name: the IP address is verified (the certificate has IP SANs),
   * over IPv6 */
  sip_dest_init(&d, SIP_TP_TLS);
  loopback(&d.addr, AF_INET6, sip_tp_listener_port(srv, lid6));
  sendres si = {0};
  int before = rs.nmsg;
  CHECK_INT(sip_tp_send(ipc, m1, (size_t)n1, &d, on_sent, &si), 0);
  RUN_UNTIL(si.done && rs.nmsg == before + 1, 5000);
  CHECK_MSG(si.status == 0, "%s", sip_tp_last_error(ipc));
  CHECK_INT(rs.nmsg, before + 1);
  if (rs.nmsg == before + 1 && before < MAXMSG)
    CHECK_INT(rs.src[before].peer.ss_family, AF_INET6);

  /* mutual TLS: a server that requires a client certificate refuses a
   * client without one and accepts one with a certificate from the CA */
  {
    rec rm = {0}, rn = {0}, ry = {0};
    sip_tp_config_init(&cfg);
    cfg.tls_cert_file = cert;
    cfg.tls_key_file = key;
    cfg.tls_ca_file = ca;
    cfg.tls_verify_client = 1;
    sip_tp *mt = mk_tp(&rm, &cfg);
    int mid = sip_tp_listen(mt, "tls:127.0.0.1:0");
    sip_tp_config_init(&cfg);
    cfg.tls_ca_file = ca;
    sip_tp *nocert = mk_tp(&rn, &cfg);
    cfg.tls_cert_file = cert;
    cfg.tls_key_file = key;
    sip_tp *withcert = mk_tp(&ry, &cfg);
    sip_dest_init(&d, SIP_TP_TLS);
    loopback(&d.addr, AF_INET, sip_tp_listener_port(mt, mid));
    d.tls_name = "localhost";
    sendres sn = {0}, sy = {0};
    CHECK_INT(sip_tp_send(nocert, m1, (size_t)n1, &d, on_sent, &sn), 0);
    RUN_UNTIL((sip_tp_stats(mt, &st), st.tls_failures == 1), 5000);
    CHECK_INT(st.tls_failures, 1);
    CHECK_INT(rm.nmsg, 0);
    CHECK_INT(sip_tp_send(withcert, m1, (size_t)n1, &d, on_sent, &sy), 0);
    RUN_UNTIL(rm.nmsg == 1 && sy.done, 5000);
    CHECK_INT(rm.nmsg, 1);
    CHECK_INT(sy.status, 0);
    /* RFC 5923: the client's verified certificate names 127.0.0.1, so an
     * alias for 127.0.0.1 is taken and one for 127.0.0.9 is not */
    char ma[1024];
    int na = mkreq(ma, sizeof(ma), "OPTIONS",
                   "SIP/2.0/TLS 127.0.0.1:5999;branch=z9hG4bKta1;alias", "");
    CHECK_INT(sip_tp_send(withcert, ma, (size_t)na, &d, NULL, NULL), 0);
    na = mkreq(ma, sizeof(ma), "OPTIONS",
               "SIP/2.0/TLS 127.0.0.9:5999;branch=z9hG4bKta2;alias", "");
    CHECK_INT(sip_tp_send(withcert, ma, (size_t)na, &d, NULL, NULL), 0);
    RUN_UNTIL(rm.nmsg == 3, 5000);
    CHECK_INT(rm.nmsg, 3);
    sip_tp_stats(mt, &st);
    CHECK_INT(st.aliases, 1);
    CHECK_INT(st.aliases_refused, 1);
    sip_dest ad;
    sip_dest_init(&ad, SIP_TP_TLS);
    sip_tp_addr(&ad.addr, "127.0.0.1", 9, 5999);
    sendres sa = {0};
    CHECK_INT(sip_tp_send(mt, ma, (size_t)na, &ad, on_sent, &sa), 0);
    RUN_UNTIL(ry.nmsg == 1 && sa.done, 5000);
    CHECK_INT(ry.nmsg, 1); /* over the client's own connection */
    CHECK_INT(sa.status, 0);
    RUN_UNTIL(sn.done, 2000);
    close_tp(&rn);
    close_tp(&ry);
    close_tp(&rm);
  }

  close_tp(&rbad);
  close_tp(&rip);
  close_tp(&rc);
  close_tp(&rs);
  rm_certs();
}

int main(void) {
  uv_loop_init(&loop);
  test_names();
  test_listen_specs();
  test_sigpipe();
  test_udp(AF_INET);
  test_udp(AF_INET6);
  test_udp_errors();
  test_udp_queue();
  test_tcp_framing(AF_INET);
  test_tcp_framing(AF_INET6);
  test_tcp_clen();
  test_tcp_timeouts();
  test_tcp_limit();
  test_flood();
  test_tcp_per_source();
  test_tcp_send(AF_INET);
  test_tcp_send(AF_INET6);
  test_tcp_alias();
  test_request_dest();
  test_tcp_many();
  test_tls();
  /* every handle was closed: the loop has nothing left */
  uv_run(&loop, UV_RUN_NOWAIT);
  CHECK_INT(uv_loop_close(&loop), 0);
  return check_summary("test_transport");
}
