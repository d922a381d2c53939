/* ws_load: OPTIONS load over SIP/TCP or SIP over WebSocket (RFC 7118), for
 * csrc/bench/ws_bench.sh (SIPp speaks no WebSocket).
 *
 *   ws_load tcp|ws PORT COUNT CONNS WINDOW
 *
 * Opens CONNS connections to 127.0.0.1:PORT (ws: the RFC 6455 upgrade with
 * the `sip` subprotocol first), keeps WINDOW OPTIONS outstanding on each
 * (a masked text frame per OPTIONS over WS, Content-Length framing over
 * TCP), until COUNT were answered or 60 s passed. Prints
 *   MODE sent=N answered=N seconds=X msgs/s=Y
 * Loopback only; exits 1 when not all were answered. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAXC 256

typedef struct {
  int fd;
  long inflight;
  char buf[1 << 16];
  size_t len;
} conn;

static int ws_mode;
static long sent, answered, count;

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int write_all(int fd, const void *p, size_t n) {
  const char *c = p;
  while (n) {
    ssize_t w = send(fd, c, n, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0)
      return -1;
    c += w;
    n -= (size_t)w;
  }
  return 0;
}

static int dial(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET,
                           .sin_port = htons((uint16_t)port)};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0)
    return -1;
  return fd;
}

/* The upgrade: request, then read up to the blank line (101 expected). */
static int upgrade(int fd, int port) {
  char req[512], head[2048];
  int n = snprintf(
      req, sizeof req,
      "GET / HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
      "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
      "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: sip\r\n\r\n",
      port);
  if (write_all(fd, req, (size_t)n) < 0)
    return -1;
  size_t len = 0;
  while (len < sizeof head - 1) {
    ssize_t r = recv(fd, head + len, 1, 0); /* byte by byte: no frame read */
    if (r <= 0)
      return -1;
    len++;
    head[len] = '\0';
    if (len >= 4 && !memcmp(head + len - 4, "\r\n\r\n", 4))
      return strncmp(head, "HTTP/1.1 101", 12) == 0 ? 0 : -1;
  }
  return -1;
}

static int send_options(conn *c, int port, long id) {
  char msg[1024];
  unsigned char frame[1100];
  int n = snprintf(msg, sizeof msg,
                   "OPTIONS sip:bench@127.0.0.1:%d SIP/2.0\r\n"
                   "Via: SIP/2.0/%s %s;branch=z9hG4bK-wsl-%ld\r\n"
                   "Max-Forwards: 70\r\n"
                   "From: <sip:load@127.0.0.1>;tag=wsl%ld\r\n"
                   "To: <sip:bench@127.0.0.1>\r\n"
                   "Call-ID: wsl-%ld@127.0.0.1\r\n"
                   "CSeq: 1 OPTIONS\r\n"
                   "Content-Length: 0\r\n\r\n",
                   port, ws_mode ? "WS" : "TCP",
                   ws_mode ? "ld7x0q2a.invalid" : "127.0.0.1", id, id, id);
  if (!ws_mode)
    return write_all(c->fd, msg, (size_t)n);
  static const unsigned char key[4] = {0x12, 0x34, 0x56, 0x78};
  size_t k = 0;
  frame[k++] = 0x81;
  if (n < 126) {
    frame[k++] = (unsigned char)(0x80 | n);
  } else {
    frame[k++] = 0x80 | 126;
    frame[k++] = (unsigned char)(n >> 8);
    frame[k++] = (unsigned char)n;
  }
  memcpy(frame + k, key, 4);
  k += 4;
  for (int i = 0; i < n; i++)
    frame[k + (size_t)i] = (unsigned char)msg[i] ^ key[i & 3];
  return write_all(c->fd, frame, k + (size_t)n);
}

/* Count the complete answers in c->buf; keep the rest. */
static void take(conn *c) {
  size_t at = 0;
  for (;;) {
    size_t left = c->len - at;
    const char *p = c->buf + at;
    size_t used;
    if (ws_mode) {
      const unsigned char *u = (const unsigned char *)p;
      if (left < 2)
        break;
      size_t pl = u[1] & 0x7f, hl = 2;
      if (pl == 126) {
        if (left < 4)
          break;
        pl = (size_t)u[2] << 8 | u[3];
        hl = 4;
      } else if (pl == 127) {
        break; /* never for an answer to OPTIONS */
      }
      if (left < hl + pl)
        break;
      used = hl + pl;
      if ((u[0] & 0x0f) != 1 && (u[0] & 0x0f) != 2) {
        at += used; /* a ping or the like: not an answer */
        continue;
      }
    } else {
      const char *e = memmem(p, left, "\r\n\r\n", 4);
      if (!e)
        break;
      size_t hl = (size_t)(e - p) + 4, cl = 0;
      const char *h = memmem(p, hl, "\r\nContent-Length:", 17);
      if (h)
        cl = strtoul(h + 17, NULL, 10);
      if (left < hl + cl)
        break;
      used = hl + cl;
    }
    at += used;
    answered++;
    c->inflight--;
  }
  memmove(c->buf, c->buf + at, c->len - at);
  c->len -= at;
}

int main(int argc, char **argv) {
  if (argc != 6 || (strcmp(argv[1], "tcp") && strcmp(argv[1], "ws"))) {
    fprintf(stderr, "usage: ws_load tcp|ws PORT COUNT CONNS WINDOW\n");
    return 2;
  }
  ws_mode = !strcmp(argv[1], "ws");
  int port = atoi(argv[2]);
  count = atol(argv[3]);
  int nconn = atoi(argv[4]);
  long window = atol(argv[5]);
  if (port <= 0 || count <= 0 || nconn <= 0 || nconn > MAXC || window <= 0)
    return 2;
  static conn cs[MAXC];
  struct pollfd pf[MAXC];
  for (int i = 0; i < nconn; i++) {
    cs[i].fd = dial(port);
    if (cs[i].fd < 0 || (ws_mode && upgrade(cs[i].fd, port) < 0)) {
      fprintf(stderr, "ws_load: connection %d to 127.0.0.1:%d failed\n", i,
              port);
      return 1;
    }
  }
  double t0 = now_s(), deadline = t0 + 60;
  while (answered < count && now_s() < deadline) {
    for (int i = 0; i < nconn; i++) {
      while (cs[i].inflight < window && sent < count) {
        if (send_options(&cs[i], port, sent) < 0) {
          fprintf(stderr, "ws_load: send failed on connection %d\n", i);
          return 1;
        }
        sent++;
        cs[i].inflight++;
      }
      pf[i].fd = cs[i].fd;
      pf[i].events = POLLIN;
    }
    if (poll(pf, (nfds_t)nconn, 1000) < 0 && errno != EINTR)
      return 1;
    for (int i = 0; i < nconn; i++) {
      if (!(pf[i].revents & (POLLIN | POLLHUP | POLLERR)))
        continue;
      ssize_t r = recv(cs[i].fd, cs[i].buf + cs[i].len,
                       sizeof cs[i].buf - cs[i].len, 0);
      if (r <= 0) {
        fprintf(stderr, "ws_load: connection %d closed\n", i);
        deadline = 0;
        break;
      }
      cs[i].len += (size_t)r;
      take(&cs[i]);
    }
  }
  double secs = now_s() - t0;
  for (int i = 0; i < nconn; i++)
    close(cs[i].fd);
  printf("%s sent=%ld answered=%ld seconds=%.3f msgs/s=%.0f\n", argv[1], sent,
         answered, secs, secs > 0 ? (double)answered / secs : 0.0);
  return answered == count ? 0 : 1;
}
