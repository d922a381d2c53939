/* Transaction layer benchmark (no assertions; prints figures).
 *
 *  1. Throughput: non-INVITE server transactions driven in-process. Each
 *     request is parsed into an rxbuf and handed to sip_txl_receive (the
 *     transport's delivery path without the socket read); the TU answers
 *     200 from on_request, the 200 goes out through the UDP transport to a
 *     sink socket, Timer J (64*T1, T1 = 1 ms) terminates the transaction.
 *     Reported: transactions created + completed + terminated per second,
 *     and, for comparison, the parse-only rate of the same requests.
 *  2. Memory: bytes the layer has malloc'd per live transaction, for
 *     100,000 live NIST in Completed (200 stored), NIST in Trying (nothing
 *     answered) and IST in Proceeding (100 Trying pending).
 *
 * Build and run (not in the Makefile), from the repository root:
 *   gcc -O2 -std=c11 -D_GNU_SOURCE -Icsrc -Icsrc/parse -Icsrc/transport
 *     -Icsrc/txn $(pkg-config --cflags libuv openssl)
 *     -o build/bench/bench_txn csrc/bench/bench_txn.c csrc/txn/(all .c)
 *     csrc/transport/(all .c) csrc/parse/(all .c)
 *     $(pkg-config --libs libuv openssl)
 *   build/bench/bench_txn [transactions]      (default 1000000) */
#include <netinet/in.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "sip_reply.h"
#include "sip_txn.h"
#include "txn/txn_int.h"

static uv_loop_t loop;
static int answer = 1;

static double now_s(void) { return (double)uv_hrtime() / 1e9; }

static void on_request(void *ud, sip_txn *t, sip_msg *m, sip_rxbuf *rx,
                       const sip_src *src) {
  (void)ud;
  (void)rx;
  (void)src;
  if (!answer)
    return;
  char buf[2048];
  sip_str none = SIP_STR_LIT("");
  int n = sip_reply_write(m, 200, SIP_STR_NULL, SIP_STR_LIT("b1"), none, none,
                          buf, sizeof(buf));
  if (n > 0)
    sip_txn_reply(t, 200, buf, (size_t)n);
}

static sip_rxbuf *rx_new(const char *p, size_t n) {
  sip_rxbuf *rx = malloc(offsetof(sip_rxbuf, bytes) + n + 1);
  if (!rx)
    abort();
  rx->refs = 1;
  rx->len = (uint32_t)n;
  memcpy(rx->bytes, p, n);
  rx->bytes[n] = '\0';
  rx->data = rx->bytes;
  rx->limits = sip_default_limits;
  sip_msg_init(&rx->msg, &rx->limits);
  return rx;
}

/* A request template whose branch ends in 10 digits patched per request. */
static int mkreq(char *out, size_t cap, const char *method, int port,
                 size_t *digits) {
  int n = snprintf(out, cap,
                   "%s sip:bench@127.0.0.1 SIP/2.0\r\n"
                   "Via: SIP/2.0/UDP 127.0.0.1:%d;branch=z9hG4bKbench",
                   method, port);
  *digits = (size_t)n;
  n += snprintf(out + n, cap - (size_t)n,
                "0000000000;rport\r\n"
                "Max-Forwards: 70\r\n"
                "From: \"Bench\" <sip:bench@a.example>;tag=9fxced76sl\r\n"
                "To: <sip:bench@b.example>\r\n"
                "Call-ID: 3848276298220188511@a.example\r\n"
                "CSeq: 1 %s\r\n"
                "Contact: <sip:bench@127.0.0.1:5070>\r\n"
                "User-Agent: bench\r\n"
                "Content-Length: 0\r\n\r\n",
                method);
  return n;
}

static void patch(char *req, size_t at, uint64_t i) {
  for (int k = 9; k >= 0; k--, i /= 10)
    req[at + (size_t)k] = (char)('0' + i % 10);
}

typedef struct ctx {
  sip_tp *tp;
  sip_txl *txl;
  sip_src src;
  int sink_port;
  int done;
} ctx;

static void feed(ctx *c, char *req, int n, size_t digits, uint64_t i) {
  patch(req, digits, i);
  sip_rxbuf *rx = rx_new(req, (size_t)n);
  if (sip_msg_parse(&rx->msg, rx->data, rx->len, SIP_MODE_DATAGRAM) > 0)
    sip_txl_receive(c->txl, &rx->msg, rx, &c->src);
  sip_rxbuf_unref(rx);
}

static void closed(void *arg) { ((ctx *)arg)->done++; }

static void open_ctx(ctx *c, uint32_t t1) {
  memset(c, 0, sizeof(*c));
  sip_tp_config tc;
  sip_tp_config_init(&tc);
  char err[256];
  if (sip_tp_new(&loop, &tc, &c->tp, err, sizeof(err)) < 0)
    abort();
  int id = sip_tp_listen(c->tp, "udp:127.0.0.1:0");
  /* the sink: a bound UDP socket nobody reads (drops are fine) */
  int s = socket(AF_INET, SOCK_DGRAM, 0);
  struct sockaddr_storage sa;
  sip_tp_addr(&sa, "127.0.0.1", 9, 0);
  bind(s, (struct sockaddr *)&sa, sizeof(struct sockaddr_in));
  socklen_t sl = sizeof(sa);
  getsockname(s, (struct sockaddr *)&sa, &sl);
  c->sink_port = sip_tp_addr_port(&sa);
  sip_txl_config cfg;
  sip_txl_config_init(&cfg);
  cfg.t1_ms = t1;
  cfg.max_transactions = 2000000;
  cfg.on_request = on_request;
  if (sip_txl_new(&loop, c->tp, &cfg, &c->txl) < 0)
    abort();
  c->src.transport = SIP_TP_UDP;
  c->src.listener = id;
  c->src.peer = sa;
}

static void close_ctx(ctx *c) {
  sip_txl_close(c->txl, closed, c);
  sip_tp_close(c->tp, closed, c);
  while (c->done < 2)
    uv_run(&loop, UV_RUN_ONCE);
}

static void memory(const char *what, const char *method, int answered) {
  enum { N = 100000 };
  ctx c;
  open_ctx(&c, 500);
  answer = answered;
  char req[1024];
  size_t digits;
  int n = mkreq(req, sizeof(req), method, c.sink_port, &digits);
  sip_txl_counters a, b;
  sip_txl_stats(c.txl, &a);
  for (uint64_t i = 0; i < N; i++)
    feed(&c, req, n, digits, i);
  sip_txl_stats(c.txl, &b);
  printf("memory  %-34s %6.1f bytes/txn (transactions), %6.1f bytes/txn "
         "(layer total: + tables, heap); %u live\n",
         what, (double)(b.txn_bytes - a.txn_bytes) / N,
         (double)(b.mem_bytes - a.mem_bytes) / N, b.live_total);
  uv_run(&loop, UV_RUN_NOWAIT); /* send callbacks */
  close_ctx(&c);
  answer = 1;
}

/* NIST throughput: created, answered 200 (sent over UDP), Timer J. A
 * function of its own so that callgrind --toggle-collect=bench_nist can
 * count it alone. */
__attribute__((noinline)) static void bench_nist(uint64_t total) {
  ctx c;
  open_ctx(&c, 1); /* J = 64 ms */
  char req[1024];
  size_t digits;
  int n = mkreq(req, sizeof(req), "OPTIONS", c.sink_port, &digits);
  sip_txl_counters st;
  uint32_t peak = 0;
  double t0 = now_s();
  for (uint64_t i = 0; i < total; i++) {
    feed(&c, req, n, digits, i);
    if (i % 256 == 255) {
      uv_run(&loop, UV_RUN_NOWAIT);
      sip_txl_stats(c.txl, &st);
      if (st.live_total > peak)
        peak = st.live_total;
    }
  }
  for (;;) {
    sip_txl_stats(c.txl, &st);
    if (st.live_total == 0 && st.zombies == 0)
      break;
    uv_run(&loop, UV_RUN_ONCE);
  }
  double dt = now_s() - t0;
  printf("txn     NIST created+answered+terminated:       %9.0f txn/s "
         "(%llu in %.2f s, peak %u live, incl. 64 ms of Timer J at the "
         "end)\n",
         (double)total / dt, (unsigned long long)total, dt, peak);
  close_ctx(&c);
}

int main(int argc, char **argv) {
  uint64_t total = argc > 1 ? strtoull(argv[1], NULL, 10) : 1000000;
  setvbuf(stdout, NULL, _IOLBF, 0);
  uv_loop_init(&loop);
  printf("sizeof(struct sip_txn) = %zu bytes, sizeof(sip_txl) = %zu bytes\n",
         sizeof(struct sip_txn), sizeof(struct sip_txl));

  /* parse only, for scale */
  {
    char req[1024];
    size_t digits;
    int n = mkreq(req, sizeof(req), "OPTIONS", 5070, &digits);
    double t0 = now_s();
    for (uint64_t i = 0; i < total; i++) {
      patch(req, digits, i);
      sip_rxbuf *rx = rx_new(req, (size_t)n);
      sip_msg_parse(&rx->msg, rx->data, rx->len, SIP_MODE_DATAGRAM);
      const sip_via *v;
      const sip_cseq *cs;
      sip_msg_get_vias(&rx->msg, &v);
      sip_msg_get_cseq(&rx->msg, &cs);
      sip_rxbuf_unref(rx);
    }
    double dt = now_s() - t0;
    printf("parse   rxbuf + parse + Via + CSeq only:        %9.0f msg/s\n",
           (double)total / dt);
  }

  bench_nist(total);

  memory("NIST Completed (200 stored)", "OPTIONS", 1);
  memory("NIST Trying (unanswered)", "OPTIONS", 0);
  memory("IST Proceeding (100 Trying pending)", "INVITE", 0);
  uv_run(&loop, UV_RUN_NOWAIT);
  uv_loop_close(&loop);
  return 0;
}
