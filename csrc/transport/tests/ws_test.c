/* WebSocket transport test (RFC 6455, RFC 7118): the upgrade, frames,
 * limits, timeouts, static files, and a luasip client against a luasip
 * server over ws: and wss:. Real sockets on 127.0.0.1 only; every wait is
 * bounded. Prints "test_ws: N passed, N failed". */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "sip_transport.h"
#include "test/check.h"

static uv_loop_t loop;

static uint64_t now_ms(void) { return uv_hrtime() / 1000000u; }

static void step(void) {
  uv_run(&loop, UV_RUN_NOWAIT);
  struct timespec ts = {0, 500000};
  nanosleep(&ts, NULL);
}

#define RUN_UNTIL(expr, ms)                                                    \
  do {                                                                         \
    uint64_t d_ = now_ms() + (ms);                                             \
    while (!(expr) && now_ms() < d_)                                           \
      step();                                                                  \
  } while (0)

/* ---- what the callbacks saw ---------------------------------------------- */

#define MAXMSG 16
typedef struct rec {
  sip_tp *tp;
  sip_rxbuf *rx[MAXMSG];
  sip_src src[MAXMSG];
  int nmsg, nbad, nopen, nclose, close_err, closed;
  int answer; /* on_message answers requests with 200 */
} rec;

static void on_message(void *ud, sip_msg *m, sip_rxbuf *rx,
                       const sip_src *src) {
  rec *r = ud;
  if (r->nmsg < MAXMSG) {
    sip_rxbuf_ref(rx);
    r->rx[r->nmsg] = rx;
    r->src[r->nmsg] = *src;
  }
  r->nmsg++;
  const sip_via *v;
  if (r->answer && m->is_request && sip_msg_get_vias(m, &v) == 0) {
    char resp[512];
    int n = snprintf(resp, sizeof resp,
                     "SIP/2.0 200 OK\r\nVia: %.*s\r\nContent-Length: 0\r\n\r\n",
                     (int)v->raw.len, v->raw.p);
    sip_tp_send_response(r->tp, resp, (size_t)n, v, src, NULL, NULL);
  }
}

static void on_bad(void *ud, int err, const char *text, sip_rxbuf *rx,
                   const sip_src *src) {
  (void)err, (void)text, (void)rx, (void)src;
  ((rec *)ud)->nbad++;
}

static void on_conn(void *ud, uint64_t id, int ev, int err, const char *text) {
  rec *r = ud;
  (void)id, (void)text;
  if (ev == SIP_TP_CONN_OPEN) {
    r->nopen++;
  } else {
    r->nclose++;
    r->close_err = err;
  }
}

static void rec_clear(rec *r) {
  for (int i = 0; i < r->nmsg && i < MAXMSG; i++)
    sip_rxbuf_unref(r->rx[i]);
  r->nmsg = r->nbad = 0;
}

static void on_closed(void *arg) { ((rec *)arg)->closed = 1; }

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

/* ---- a raw client -------------------------------------------------------- */

static int tcp_connect(int port) {
  int s = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
  inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
  fcntl(s, F_SETFL, O_NONBLOCK);
  int rc = connect(s, (struct sockaddr *)&sa, sizeof sa);
  CHECK(rc == 0 || errno == EINPROGRESS);
  int one = 1;
  setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  RUN_UNTIL(0, 5);
  return s;
}

static void tcp_write(int s, const void *p, size_t n) {
  const char *c = p;
  while (n) {
    ssize_t w = send(s, c, n, MSG_NOSIGNAL);
    if (w < 0 && errno == EAGAIN) {
      step();
      continue;
    }
    if (w <= 0) {
      CHECK_MSG(0, "send: %s", strerror(errno));
      return;
    }
    c += w;
    n -= (size_t)w;
  }
}

/* What a raw client has read and not consumed. */
typedef struct rd {
  int s;
  char buf[1 << 17];
  size_t len;
  int eof;
} rd;

/* Read more (bounded wait); 0 when nothing came. */
static int rd_more(rd *r, int ms) {
  uint64_t d = now_ms() + (uint64_t)ms;
  for (;;) {
    ssize_t n = recv(r->s, r->buf + r->len, sizeof r->buf - r->len, 0);
    if (n > 0) {
      r->len += (size_t)n;
      return 1;
    }
    if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
      r->eof = 1;
      return 0;
    }
    if (now_ms() >= d)
      return 0;
    step();
  }
}

/* The HTTP response head (NUL-terminated into out), consumed. */
static int rd_head(rd *r, char *out, size_t cap) {
  for (int i = 0; i < 200; i++) {
    char *e = memmem(r->buf, r->len, "\r\n\r\n", 4);
    if (e) {
      size_t n = (size_t)(e + 4 - r->buf);
      snprintf(out, cap, "%.*s", (int)n, r->buf);
      memmove(r->buf, r->buf + n, r->len - n);
      r->len -= n;
      return 1;
    }
    if (!rd_more(r, 20) && r->eof)
      break;
  }
  out[0] = 0;
  return 0;
}

/* One server frame: its opcode (payload into out, NUL-terminated), or -1. */
static int rd_frame(rd *r, char *out, size_t cap, size_t *plen) {
  for (int i = 0; i < 200; i++) {
    if (r->len >= 2) {
      const unsigned char *p = (const unsigned char *)r->buf;
      size_t hl = 2, n = p[1] & 0x7f;
      CHECK_MSG(!(p[1] & 0x80), "a server frame is never masked");
      if (n == 126 && r->len >= 4) {
        n = (size_t)p[2] << 8 | p[3];
        hl = 4;
      } else if (n == 127 && r->len >= 10) {
        n = 0;
        for (int k = 2; k < 10; k++)
          n = n << 8 | p[k];
        hl = 10;
      }
      if ((p[1] & 0x7f) < 126 || hl > 2) {
        if (r->len >= hl + n) {
          int op = p[0] & 0x0f;
          size_t c = n < cap - 1 ? n : cap - 1;
          memcpy(out, r->buf + hl, c);
          out[c] = 0;
          if (plen)
            *plen = n;
          memmove(r->buf, r->buf + hl + n, r->len - hl - n);
          r->len -= hl + n;
          return op;
        }
      }
    }
    if (!rd_more(r, 20) && r->eof)
      break;
  }
  return -1;
}

/* A client frame, masked unless mask is 0. */
static size_t mkframe(unsigned char *out, int fin, int op, const void *p,
                      size_t n, int mask) {
  static const unsigned char key[4] = {0x37, 0xfa, 0x21, 0x3d};
  size_t k = 0;
  out[k++] = (unsigned char)((fin ? 0x80 : 0) | op);
  unsigned char m = mask ? 0x80 : 0;
  if (n < 126) {
    out[k++] = (unsigned char)(m | n);
  } else if (n < 65536) {
    out[k++] = m | 126;
    out[k++] = (unsigned char)(n >> 8);
    out[k++] = (unsigned char)n;
  } else {
    out[k++] = m | 127;
    for (int i = 0; i < 8; i++)
      out[k++] = (unsigned char)((uint64_t)n >> (56 - 8 * i));
  }
  if (mask) {
    memcpy(out + k, key, 4);
    k += 4;
  }
  for (size_t i = 0; i < n; i++)
    out[k + i] = ((const unsigned char *)p)[i] ^ (mask ? key[i & 3] : 0);
  return k + n;
}

static void send_frame(int s, int fin, int op, const void *p, size_t n,
                       int mask) {
  unsigned char *f = malloc(n + 14);
  size_t k = mkframe(f, fin, op, p, n, mask);
  tcp_write(s, f, k);
  free(f);
}

/* RFC 6455 §1.3's example key and its accept value. */
#define KEY "dGhlIHNhbXBsZSBub25jZQ=="
#define ACCEPT "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

static const char *upgrade_req(char *out, size_t cap, const char *extra) {
  snprintf(out, cap,
           "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
           "Connection: keep-alive, Upgrade\r\nSec-WebSocket-Key: " KEY "\r\n"
           "%s\r\n",
           extra);
  return out;
}

#define STD_EXTRA "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: sip\r\n"

/* Connect and upgrade: 1 when the answer was 101 with the right accept. */
static int ws_open(rd *r, int port, const char *extra, char *head, size_t cap) {
  char req[1024];
  r->s = tcp_connect(port);
  r->len = 0;
  r->eof = 0;
  upgrade_req(req, sizeof req, extra);
  tcp_write(r->s, req, strlen(req));
  rd_head(r, head, cap);
  return strncmp(head, "HTTP/1.1 101 ", 13) == 0 &&
         strstr(head, "Sec-WebSocket-Accept: " ACCEPT "\r\n") &&
         strstr(head, "Sec-WebSocket-Protocol: sip\r\n");
}

static int mkreq(char *out, size_t cap, const char *method, const char *id) {
  return snprintf(out, cap,
                  "%s sip:bob@127.0.0.1 SIP/2.0\r\n"
                  "Via: SIP/2.0/WS df7jal23ls0d.invalid;branch=z9hG4bK%s\r\n"
                  "Max-Forwards: 70\r\n"
                  "From: <sip:alice@a.example>;tag=1\r\n"
                  "To: <sip:bob@b.example>\r\n"
                  "Call-ID: %s@a.example\r\n"
                  "CSeq: 1 %s\r\n\r\n",
                  method, id, id, method);
}

static int listen_port(sip_tp *tp, const char *spec) {
  int lid = sip_tp_listen(tp, spec);
  CHECK_MSG(lid >= 0, "listen %s: %s", spec, sip_tp_errname(lid));
  return lid >= 0 ? sip_tp_listener_port(tp, lid) : -1;
}

/* ---- tests ---------------------------------------------------------------- */

static void test_names(void) {
  int t;
  struct sockaddr_storage sa;
  CHECK_INT(sip_tp_parse_spec("ws:127.0.0.1:8080", &t, &sa), 0);
  CHECK_INT(t, SIP_TP_WS);
  CHECK_INT(sip_tp_parse_spec("wss:[::1]:443", &t, &sa), 0);
  CHECK_INT(t, SIP_TP_WSS);
  CHECK_INT(sip_tp_parse_spec("w:127.0.0.1:1", &t, &sa), SIP_EINVAL);
  CHECK_INT(sip_tp_parse_spec("wsx:127.0.0.1:1", &t, &sa), SIP_EINVAL);
  CHECK(strcmp(sip_tp_transport_name(SIP_TP_WS), "WS") == 0);
  CHECK(strcmp(sip_tp_transport_name(SIP_TP_WSS), "WSS") == 0);
  CHECK_INT(sip_tp_transport_from((sip_str){"wss", 3}), SIP_TP_WSS);

  /* transport=ws in a URI; sips + ws is WSS */
  sip_arena a;
  char block[2048];
  sip_arena_init(&a, block, sizeof block);
  sip_uri u;
  sip_dest d;
  const char *s1 = "sip:127.0.0.1:8080;transport=ws";
  CHECK_INT(sip_uri_parse(&a, s1, strlen(s1), &u), 0);
  CHECK_INT(sip_tp_request_dest(&u, 0, &d, NULL, 0), 0);
  CHECK_INT(d.transport, SIP_TP_WS);
  CHECK_INT(sip_tp_addr_port(&d.addr), 8080);
  const char *s2 = "sips:127.0.0.1;transport=ws";
  CHECK_INT(sip_uri_parse(&a, s2, strlen(s2), &u), 0);
  CHECK_INT(sip_tp_request_dest(&u, 0, &d, NULL, 0), 0);
  CHECK_INT(d.transport, SIP_TP_WSS);
  CHECK_INT(sip_tp_addr_port(&d.addr), 443);
  sip_arena_free(&a);
}

/* The upgrade, masked frames both ways, a response over the connection,
 * fragments with a ping between them, a CRLF keep-alive, close. */
static void test_frames(void) {
  rec rs = {.answer = 1};
  sip_tp *srv = mk_tp(&rs, NULL);
  int port = listen_port(srv, "ws:127.0.0.1:0");
  static rd r;
  char head[2048], buf[4096], req[1024];
  CHECK_MSG(ws_open(&r, port, STD_EXTRA, head, sizeof head), "head: %s", head);
  RUN_UNTIL(rs.nopen == 1, 1000);
  CHECK_INT(rs.nopen, 1);

  /* one masked text frame: one request, answered over the connection */
  int n = mkreq(req, sizeof req, "OPTIONS", "one");
  send_frame(r.s, 1, 1, req, (size_t)n, 1);
  RUN_UNTIL(rs.nmsg == 1, 1000);
  CHECK_INT(rs.nmsg, 1);
  if (rs.nmsg >= 1) {
    CHECK_INT(rs.src[0].transport, SIP_TP_WS);
    CHECK(rs.src[0].conn_id != 0);
    const sip_via *v;
    CHECK_INT(sip_msg_get_vias(&rs.rx[0]->msg, &v), 0);
    CHECK_STR(v->transport, "WS");
    CHECK_STR(v->received, "127.0.0.1"); /* the .invalid host */
  }
  size_t plen = 0;
  CHECK_INT(rd_frame(&r, buf, sizeof buf, &plen), 1);
  CHECK_MSG(strncmp(buf, "SIP/2.0 200 OK\r\n", 16) == 0, "got %s", buf);

  /* fragmented: text (no FIN), ping, continuation, continuation (FIN) */
  n = mkreq(req, sizeof req, "MESSAGE", "frag");
  send_frame(r.s, 0, 1, req, 10, 1);
  send_frame(r.s, 1, 9, "hi", 2, 1);
  send_frame(r.s, 0, 0, req + 10, 50, 1);
  send_frame(r.s, 1, 0, req + 60, (size_t)n - 60, 1);
  CHECK_INT(rd_frame(&r, buf, sizeof buf, &plen), 10); /* pong */
  CHECK(plen == 2 && strcmp(buf, "hi") == 0);
  RUN_UNTIL(rs.nmsg == 2, 1000);
  CHECK_INT(rs.nmsg, 2);
  if (rs.nmsg >= 2)
    CHECK_INT(rs.rx[1]->len, n);
  CHECK_INT(rd_frame(&r, buf, sizeof buf, &plen), 1);
  CHECK(strstr(buf, "branch=z9hG4bKfrag") != NULL);

  /* two messages in one read */
  unsigned char two[2048];
  int n1 = mkreq(req, sizeof req, "OPTIONS", "a");
  size_t k = mkframe(two, 1, 1, req, (size_t)n1, 1);
  n1 = mkreq(req, sizeof req, "OPTIONS", "b");
  k += mkframe(two + k, 1, 2, req, (size_t)n1, 1); /* binary works too */
  tcp_write(r.s, two, k);
  RUN_UNTIL(rs.nmsg == 4, 1000);
  CHECK_INT(rs.nmsg, 4);
  CHECK_INT(rd_frame(&r, buf, sizeof buf, &plen), 1);
  CHECK_INT(rd_frame(&r, buf, sizeof buf, &plen), 1);

  /* a CRLF keep-alive in a message: one CRLF back */
  send_frame(r.s, 1, 1, "\r\n\r\n", 4, 1);
  CHECK_INT(rd_frame(&r, buf, sizeof buf, &plen), 1);
  CHECK(plen == 2 && strcmp(buf, "\r\n") == 0);

  /* UTF-8 text split inside a character across fragments: accepted once
   * joined; a binary message is not checked (RFC 6455 §8.1) */
  n = mkreq(req, sizeof req, "MESSAGE", "utf8");
  memcpy(req + n, "caf\xc3\xa9", 5);
  n += 5;
  send_frame(r.s, 0, 1, req, (size_t)n - 1, 1); /* ends with 0xc3 */
  send_frame(r.s, 1, 0, req + n - 1, 1, 1);
  RUN_UNTIL(rs.nmsg == 5, 1000);
  CHECK_INT(rs.nmsg, 5);
  CHECK_INT(rd_frame(&r, buf, sizeof buf, &plen), 1);
  CHECK(strstr(buf, "branch=z9hG4bKutf8") != NULL);
  n = mkreq(req, sizeof req, "MESSAGE", "bin");
  memcpy(req + n, "\xff\xfe", 2);
  send_frame(r.s, 1, 2, req, (size_t)n + 2, 1);
  RUN_UNTIL(rs.nmsg == 6, 1000);
  CHECK_INT(rs.nmsg, 6);
  CHECK_INT(rd_frame(&r, buf, sizeof buf, &plen), 1);

  /* a garbage message: counted, the connection stays */
  send_frame(r.s, 1, 1, "hello", 5, 1);
  send_frame(r.s, 1, 9, "", 0, 1);
  CHECK_INT(rd_frame(&r, buf, sizeof buf, &plen), 10);
  sip_tp_counters st;
  sip_tp_stats(srv, &st);
  CHECK(st.parse_errors >= 1);
  CHECK_INT(st.ws_upgrades, 1);
  CHECK(st.ws_pings >= 2);

  /* close 1000: echoed, then the connection ends */
  send_frame(r.s, 1, 8, "\x03\xe8", 2, 1);
  CHECK_INT(rd_frame(&r, buf, sizeof buf, &plen), 8);
  CHECK(plen == 2 && (unsigned char)buf[0] == 0x03 &&
        (unsigned char)buf[1] == 0xe8);
  RUN_UNTIL(rs.nclose == 1, 1000);
  CHECK_INT(rs.nclose, 1);
  CHECK_INT(rs.close_err, 0);
  close(r.s);
  close_tp(&rs);
}

/* A frame that breaks the protocol: a close frame with its code, then the
 * connection closes. */
static void expect_close(int port, const unsigned char *bytes, size_t n,
                         int code, const char *what) {
  static rd r;
  char head[2048], buf[256];
  CHECK_MSG(ws_open(&r, port, STD_EXTRA, head, sizeof head), "%s", what);
  tcp_write(r.s, bytes, n);
  size_t plen = 0;
  int op = rd_frame(&r, buf, sizeof buf, &plen);
  CHECK_MSG(op == 8, "%s: opcode %d", what, op);
  int got = plen >= 2 ? ((unsigned char)buf[0] << 8 | (unsigned char)buf[1]) : 0;
  CHECK_MSG(got == code, "%s: close code %d, want %d", what, got, code);
  for (int i = 0; i < 100 && !r.eof; i++)
    rd_more(&r, 20);
  CHECK_MSG(r.eof, "%s: the connection closed", what);
  close(r.s);
}

static void test_errors(void) {
  rec rs = {0};
  sip_tp_config cfg;
  sip_tp_config_init(&cfg);
  cfg.limits.max_size = 2048;
  sip_tp *srv = mk_tp(&rs, &cfg);
  int port = listen_port(srv, "ws:127.0.0.1:0");
  unsigned char f[8192];
  char req[1024];
  int n = mkreq(req, sizeof req, "OPTIONS", "x");

  size_t k = mkframe(f, 1, 1, req, (size_t)n, 0);
  expect_close(port, f, k, 1002, "unmasked frame");
  k = mkframe(f, 1, 1, req, (size_t)n, 1);
  f[0] |= 0x40;
  expect_close(port, f, k, 1002, "RSV1 set");
  k = mkframe(f, 1, 3, req, (size_t)n, 1);
  expect_close(port, f, k, 1002, "opcode 3");
  k = mkframe(f, 0, 9, "x", 1, 1);
  expect_close(port, f, k, 1002, "fragmented ping");
  k = mkframe(f, 1, 0, req, (size_t)n, 1);
  expect_close(port, f, k, 1002, "continuation first");
  k = mkframe(f, 0, 1, req, 10, 1);
  k += mkframe(f + k, 1, 1, req, 10, 1);
  expect_close(port, f, k, 1002, "text inside a fragmented message");
  /* a frame over max_size: refused from its header */
  f[0] = 0x81;
  f[1] = 0x80 | 126;
  f[2] = 0x10; /* 4096 */
  f[3] = 0x00;
  expect_close(port, f, 4, 1009, "oversized frame");
  /* fragments adding up to more than max_size */
  static char big[1500];
  memset(big, 'a', sizeof big);
  k = mkframe(f, 0, 1, big, sizeof big, 1);
  k += mkframe(f + k, 1, 0, big, sizeof big, 1);
  expect_close(port, f, k, 1009, "oversized message");
  /* text that is not UTF-8 (RFC 6455 §8.1): 1007 */
  static const struct {
    const char *bytes, *what;
  } bad[] = {
      {"\xff", "a 0xff byte"},
      {"\xc0\xaf", "an overlong '/'"},
      {"\xe0\x80\xaf", "an overlong 3-byte form"},
      {"\xed\xa0\x80", "a surrogate"},
      {"\xf4\x90\x80\x80", "above U+10FFFF"},
      {"caf\xc3", "a character cut at the end"},
      {"\xe2\x28\xa1", "a bad continuation byte"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    n = mkreq(req, sizeof req, "MESSAGE", "u");
    size_t bl = strlen(bad[i].bytes);
    memcpy(req + n, bad[i].bytes, bl);
    k = mkframe(f, 1, 1, req, (size_t)n + bl, 1);
    expect_close(port, f, k, 1007, bad[i].what);
  }
  /* valid in each fragment's bytes, broken once joined */
  n = mkreq(req, sizeof req, "MESSAGE", "u");
  memcpy(req + n, "\xe2\x82(", 3);
  k = mkframe(f, 0, 1, req, (size_t)n + 2, 1);
  k += mkframe(f + k, 1, 0, "(", 1, 1);
  expect_close(port, f, k, 1007, "fragments joining into bad UTF-8");
  /* a close frame whose reason is not UTF-8 */
  k = mkframe(f, 1, 8, "\x03\xe8\xff", 3, 1);
  expect_close(port, f, k, 1007, "a close reason not UTF-8");
  sip_tp_counters st;
  sip_tp_stats(srv, &st);
  CHECK_INT(st.ws_errors, 17);
  CHECK_INT(rs.nmsg, 0);
  close_tp(&rs);
}

static void expect_refused(int port, const char *extra, const char *status,
                           const char *what) {
  static rd r;
  char head[2048];
  CHECK_MSG(!ws_open(&r, port, extra, head, sizeof head), "%s", what);
  CHECK_MSG(strncmp(head, status, strlen(status)) == 0, "%s: got '%s'", what,
            head);
  for (int i = 0; i < 100 && !r.eof; i++)
    rd_more(&r, 20);
  CHECK_MSG(r.eof, "%s: closed", what);
  close(r.s);
}

static void test_handshake(void) {
  rec rs = {0};
  sip_tp_config cfg;
  sip_tp_config_init(&cfg);
  cfg.ws_origins = "https://a.example, http://127.0.0.1:8080";
  cfg.connect_timeout_ms = 300;
  sip_tp *srv = mk_tp(&rs, &cfg);
  int port = listen_port(srv, "ws:127.0.0.1:0");

  expect_refused(port, "Sec-WebSocket-Version: 13\r\nOrigin: http://127.0.0.1:8080\r\n",
                 "HTTP/1.1 400 ", "no subprotocol");
  expect_refused(port,
                 "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: "
                 "chat\r\nOrigin: http://127.0.0.1:8080\r\n",
                 "HTTP/1.1 400 ", "another subprotocol");
  expect_refused(port,
                 "Sec-WebSocket-Version: 8\r\nSec-WebSocket-Protocol: "
                 "sip\r\nOrigin: http://127.0.0.1:8080\r\n",
                 "HTTP/1.1 426 ", "version 8");
  expect_refused(port, STD_EXTRA "Origin: https://evil.example\r\n",
                 "HTTP/1.1 403 ", "bad Origin");
  expect_refused(port, STD_EXTRA, "HTTP/1.1 403 ", "no Origin");
  expect_refused(port, "", "HTTP/1.1 426 ", "no version");
  static rd r;
  char head[2048];
  CHECK_MSG(ws_open(&r, port,
                    "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: "
                    "chat, sip\r\nOrigin: HTTPS://A.example\r\n",
                    head, sizeof head),
            "good Origin: %s", head);
  close(r.s);

  /* another method */
  r.s = tcp_connect(port);
  r.len = r.eof = 0;
  const char *post = "POST / HTTP/1.1\r\nHost: x\r\n\r\n";
  tcp_write(r.s, post, strlen(post));
  rd_head(&r, head, sizeof head);
  CHECK_MSG(strncmp(head, "HTTP/1.1 405 ", 13) == 0, "POST: %s", head);
  close(r.s);

  /* no http_root: a plain GET is 404 */
  r.s = tcp_connect(port);
  r.len = r.eof = 0;
  const char *get = "GET /index.html HTTP/1.1\r\nHost: x\r\n\r\n";
  tcp_write(r.s, get, strlen(get));
  rd_head(&r, head, sizeof head);
  CHECK_MSG(strncmp(head, "HTTP/1.1 404 ", 13) == 0, "GET: %s", head);
  close(r.s);

  /* half a handshake, then silence: closed at connect_timeout */
  sip_tp_counters st0, st;
  sip_tp_stats(srv, &st0);
  r.s = tcp_connect(port);
  r.len = r.eof = 0;
  tcp_write(r.s, "GET / HTTP/1.1\r\nUpgr", 20);
  uint64_t t0 = now_ms();
  for (int i = 0; i < 150 && !r.eof; i++)
    rd_more(&r, 20);
  CHECK_MSG(r.eof, "a partial handshake is closed");
  CHECK(now_ms() - t0 >= 250);
  sip_tp_stats(srv, &st);
  CHECK_INT(st.conn_timeouts - st0.conn_timeouts, 1);
  close(r.s);

  /* an endless header section: 431 */
  r.s = tcp_connect(port);
  r.len = r.eof = 0;
  tcp_write(r.s, "GET / HTTP/1.1\r\n", 16);
  static char junk[9000];
  memset(junk, 'x', sizeof junk);
  junk[0] = 'X';
  junk[1] = ':';
  tcp_write(r.s, junk, sizeof junk);
  rd_head(&r, head, sizeof head);
  CHECK_MSG(strncmp(head, "HTTP/1.1 431 ", 13) == 0, "431: %s", head);
  close(r.s);
  CHECK_INT(rs.nopen, 1);
  close_tp(&rs);
}

/* Static files under http_root, and nothing outside it. */
static void test_files(void) {
  char root[64] = "/tmp/ws_test_XXXXXX", path[256];
  CHECK(mkdtemp(root) != NULL);
  snprintf(path, sizeof path, "%s/index.html", root);
  FILE *f = fopen(path, "w");
  fputs("<p>hello</p>\n", f);
  fclose(f);
  snprintf(path, sizeof path, "%s/app.js", root);
  f = fopen(path, "w");
  fputs("var x = 1;\n", f);
  fclose(f);
  snprintf(path, sizeof path, "%s/.secret", root);
  f = fopen(path, "w");
  fputs("no\n", f);
  fclose(f);
  snprintf(path, sizeof path, "%s/out", root);
  CHECK(symlink("/etc/hostname", path) == 0);

  rec rs = {0};
  sip_tp_config cfg;
  sip_tp_config_init(&cfg);
  cfg.http_root = root;
  sip_tp *srv = mk_tp(&rs, &cfg);
  int port = listen_port(srv, "ws:127.0.0.1:0");
  static const struct {
    const char *path, *status, *type, *body;
  } cases[] = {
      {"/", "200", "text/html; charset=utf-8", "<p>hello</p>\n"},
      {"/index.html?x=1", "200", "text/html; charset=utf-8", "<p>hello</p>\n"},
      {"/app.js", "200", "text/javascript; charset=utf-8", "var x = 1;\n"},
      {"/../../etc/passwd", "404", NULL, NULL},
      {"/%2e%2e/etc/passwd", "404", NULL, NULL},
      {"/.secret", "404", NULL, NULL},
      {"/out", "404", NULL, NULL},
      {"/none.html", "404", NULL, NULL},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    static rd r;
    char req[256], head[2048];
    r.s = tcp_connect(port);
    r.len = r.eof = 0;
    snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n",
             cases[i].path);
    tcp_write(r.s, req, strlen(req));
    rd_head(&r, head, sizeof head);
    CHECK_MSG(strncmp(head + 9, cases[i].status, 3) == 0, "%s: %s",
              cases[i].path, head);
    if (cases[i].type) {
      char want[128];
      snprintf(want, sizeof want, "Content-Type: %s\r\n", cases[i].type);
      CHECK_MSG(strstr(head, want) != NULL, "%s: %s", cases[i].path, head);
      for (int k = 0; k < 50 && r.len < strlen(cases[i].body); k++)
        rd_more(&r, 20);
      CHECK(r.len == strlen(cases[i].body) &&
            memcmp(r.buf, cases[i].body, r.len) == 0);
    }
    close(r.s);
  }
  sip_tp_counters st;
  sip_tp_stats(srv, &st);
  CHECK_INT(st.http_files, 3);
  close_tp(&rs);
  snprintf(path, sizeof path,
           "rm -f %s/index.html %s/app.js %s/.secret %s/out; rmdir %s", root,
           root, root, root, root);
  CHECK(system(path) == 0);
}

/* The server pings a quiet client. */
static void test_ping(void) {
  rec rs = {0};
  sip_tp_config cfg;
  sip_tp_config_init(&cfg);
  cfg.ws_ping_interval_ms = 100;
  sip_tp *srv = mk_tp(&rs, &cfg);
  int port = listen_port(srv, "ws:127.0.0.1:0");
  static rd r;
  char head[2048], buf[256];
  CHECK(ws_open(&r, port, STD_EXTRA, head, sizeof head));
  size_t plen;
  CHECK_INT(rd_frame(&r, buf, sizeof buf, &plen), 9);
  send_frame(r.s, 1, 10, "", 0, 1); /* pong */
  CHECK_INT(rd_frame(&r, buf, sizeof buf, &plen), 9);
  close(r.s);
  close_tp(&rs);
}

/* ---- a luasip client against a luasip server ------------------------------ */

static char tmpdir[64];

static int sh(const char *cmd) {
  char full[1024];
  snprintf(full, sizeof(full), "cd %s && %s >/dev/null 2>&1", tmpdir, cmd);
  return system(full);
}

static int make_certs(void) {
  snprintf(tmpdir, sizeof(tmpdir), "/tmp/ws_test_XXXXXX");
  if (!mkdtemp(tmpdir))
    return -1;
  char cnf[128];
  snprintf(cnf, sizeof cnf, "%s/ext.cnf", tmpdir);
  FILE *f = fopen(cnf, "w");
  if (!f)
    return -1;
  fputs("subjectAltName=DNS:localhost,IP:127.0.0.1\n"
        "basicConstraints=critical,CA:FALSE\n"
        "extendedKeyUsage=serverAuth\n",
        f);
  fclose(f);
  const char *ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
  char cmd[512];
  snprintf(cmd, sizeof(cmd),
           "openssl req -x509 %s -keyout ca.key -out ca.crt -days 1 "
           "-subj /CN=ws-test-ca -addext basicConstraints=critical,CA:TRUE "
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

typedef struct sendres {
  int done, status;
} sendres;

static void on_sent(void *arg, int status) {
  sendres *s = arg;
  s->done++;
  s->status = status;
}

static void client_server(const char *proto) {
  int wss = strcmp(proto, "wss") == 0;
  char cert[128], key[128], ca[128];
  snprintf(cert, sizeof(cert), "%s/srv.crt", tmpdir);
  snprintf(key, sizeof(key), "%s/srv.key", tmpdir);
  snprintf(ca, sizeof(ca), "%s/ca.crt", tmpdir);
  rec rs = {.answer = 1}, rc = {0};
  sip_tp_config cfg;
  sip_tp_config_init(&cfg);
  if (wss) {
    cfg.tls_cert_file = cert;
    cfg.tls_key_file = key;
  }
  sip_tp *srv = mk_tp(&rs, &cfg);
  char spec[64];
  snprintf(spec, sizeof spec, "%s:127.0.0.1:0", proto);
  int port = listen_port(srv, spec);
  sip_tp_config_init(&cfg);
  cfg.tls_ca_file = ca;
  sip_tp *cli = mk_tp(&rc, &cfg);
  sip_dest d;
  sip_dest_init(&d, wss ? SIP_TP_WSS : SIP_TP_WS);
  sip_tp_addr(&d.addr, "127.0.0.1", 9, port);
  char req[1024];
  sendres sr = {0}, sr2 = {0};
  int n = mkreq(req, sizeof req, "OPTIONS", wss ? "wss1" : "ws1");
  CHECK_INT(sip_tp_send(cli, req, (size_t)n, &d, on_sent, &sr), 0);
  n = mkreq(req, sizeof req, "OPTIONS", wss ? "wss2" : "ws2");
  CHECK_INT(sip_tp_send(cli, req, (size_t)n, &d, on_sent, &sr2), 0);
  RUN_UNTIL(rc.nmsg == 2, 3000);
  CHECK_MSG(sr.done == 1 && sr.status == 0, "%s: sent %d status %s", proto,
            sr.done, sip_tp_errname(sr.status));
  CHECK_INT(rs.nmsg, 2);
  CHECK_INT(rc.nmsg, 2); /* both answers, over the same connection */
  if (rs.nmsg >= 1)
    CHECK_INT(rs.src[0].transport, wss ? SIP_TP_WSS : SIP_TP_WS);
  if (rc.nmsg >= 1) {
    CHECK(!rc.rx[0]->msg.is_request);
    CHECK_INT(rc.src[0].transport, wss ? SIP_TP_WSS : SIP_TP_WS);
  }
  CHECK_INT(sip_tp_conn_count(cli), 1);
  sip_tp_counters st;
  sip_tp_stats(cli, &st);
  CHECK_INT(st.ws_upgrades, 1);
  close_tp(&rc);
  close_tp(&rs);
}

/* A client whose server does not speak WebSocket: the sends fail. */
static void test_client_refused(void) {
  rec rs = {0}, rc = {0};
  sip_tp *srv = mk_tp(&rs, NULL);
  int lid = sip_tp_listen(srv, "tcp:127.0.0.1:0");
  int port = sip_tp_listener_port(srv, lid);
  sip_tp *cli = mk_tp(&rc, NULL);
  sip_dest d;
  sip_dest_init(&d, SIP_TP_WS);
  sip_tp_addr(&d.addr, "127.0.0.1", 9, port);
  char req[1024];
  sendres sr = {0};
  int n = mkreq(req, sizeof req, "OPTIONS", "r");
  CHECK_INT(sip_tp_send(cli, req, (size_t)n, &d, on_sent, &sr), 0);
  RUN_UNTIL(sr.done, 3000);
  CHECK_INT(sr.done, 1);
  CHECK(sr.status < 0);
  close_tp(&rc);
  close_tp(&rs);
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  uv_loop_init(&loop);
  test_names();
  test_frames();
  test_errors();
  test_handshake();
  test_files();
  test_ping();
  if (make_certs() == 0) {
    client_server("ws");
    client_server("wss");
    rm_certs();
  } else {
    CHECK_MSG(0, "openssl could not make the test certificates");
  }
  test_client_refused();
  uv_run(&loop, UV_RUN_NOWAIT);
  CHECK_INT(uv_loop_close(&loop), 0);
  return check_summary("test_ws");
}
