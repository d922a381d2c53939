/* Text server test (sip_textsrv.h): requests and replies over TCP on
 * 127.0.0.1 and over a Unix socket in a temporary directory, the limits
 * (too large, too many connections, timeout), the socket file rules, and
 * the blocking client against a server run by a second thread. Every wait
 * is bounded. Prints "test_textsrv: N passed, N failed". */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "sip_error.h"
#include "sip_textsrv.h"
#include "test/check.h"

static uv_loop_t loop;
static sip_textsrv *srv;
static int nreq, last_uid, answer_now;
static int64_t last_id;
static char last_req[256];

static uint64_t now_ms(void) { return uv_hrtime() / 1000000u; }

static void step(void) {
  uv_run(&loop, UV_RUN_NOWAIT);
  struct timespec ts = {0, 200000};
  nanosleep(&ts, NULL);
}

static int on_req(void *ud, int64_t id, const char *req, size_t len, int uid) {
  (void)ud;
  nreq++;
  last_id = id;
  last_uid = uid;
  snprintf(last_req, sizeof last_req, "%.*s", (int)len, req);
  if (answer_now)
    sip_textsrv_reply(srv, id, "now\n", 4);
  return 0;
}

static int tcp_client(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
  inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
  CHECK(connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0);
  struct timeval tv = {0, 1000};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  return fd;
}

/* Read until EOF (the server closes after its reply) while the loop runs,
 * for up to ms; returns the bytes read, -1 when the connection stayed
 * open. */
static int read_all(int fd, char *out, size_t cap, int ms) {
  size_t got = 0;
  uint64_t deadline = now_ms() + (uint64_t)ms;
  while (now_ms() < deadline) {
    step();
    ssize_t r = recv(fd, out + got, cap - 1 - got, 0);
    if (r == 0) {
      out[got] = 0;
      return (int)got;
    }
    if (r > 0)
      got += (size_t)r;
    else if (errno == ECONNRESET) {
      out[got] = 0;
      return (int)got;
    }
  }
  out[got] = 0;
  return -1;
}

static void wait_for(int *counter, int want) {
  uint64_t deadline = now_ms() + 1000;
  while (*counter < want && now_ms() < deadline)
    step();
}

static void test_spec(void) {
  struct sockaddr_storage ss;
  const char *why;
  CHECK_INT(sip_textsrv_parse_spec("tcp:127.0.0.1:9090", &ss, &why), 0);
  CHECK_INT(ss.ss_family, AF_INET);
  CHECK_INT(sip_textsrv_parse_spec("tcp:[::1]:0", &ss, &why), 0);
  CHECK_INT(ss.ss_family, AF_INET6);
  CHECK_INT(sip_textsrv_parse_spec("unix:/tmp/x.sock", &ss, &why), 1);
  CHECK_INT(sip_textsrv_parse_spec("udp:127.0.0.1:1", &ss, &why), SIP_EINVAL);
  CHECK(strcmp(why, "tcp:ADDRESS:PORT or unix:PATH") == 0);
  CHECK_INT(sip_textsrv_parse_spec("tcp:127.0.0.1:99999", &ss, &why),
            SIP_EINVAL);
  CHECK(strcmp(why, "bad port") == 0);
  CHECK_INT(sip_textsrv_parse_spec("tcp:localhost:80", &ss, &why), SIP_EINVAL);
  CHECK(strcmp(why, "a numeric address expected") == 0);
  CHECK_INT(sip_textsrv_parse_spec("tcp:127.0.0.1", &ss, &why), SIP_EINVAL);
}

static void test_tcp(void) {
  sip_textsrv_config cfg;
  sip_textsrv_config_init(&cfg);
  cfg.cb = on_req;
  cfg.max_request = 64;
  cfg.max_conns = 2;
  cfg.timeout_ms = 300;
  cfg.too_large = "too large\n";
  cfg.too_large_len = 10;
  memcpy(cfg.term, "\r\n\r\n", 4);
  cfg.term_len = 4;
  CHECK_INT(sip_textsrv_open(&loop, "tcp:127.0.0.1:0", &cfg, &srv), 0);
  int port = sip_textsrv_port(srv);
  CHECK(port > 0);
  char buf[256];

  /* a request in two pieces, answered later */
  nreq = 0;
  int fd = tcp_client(port);
  send(fd, "GET / HTTP/1.1\r\n", 16, 0);
  for (int i = 0; i < 20; i++)
    step();
  CHECK_INT(nreq, 0);
  send(fd, "\r\n", 2, 0);
  wait_for(&nreq, 1);
  CHECK_INT(nreq, 1);
  CHECK(strcmp(last_req, "GET / HTTP/1.1\r\n\r\n") == 0);
  CHECK_INT(last_uid, -1);
  CHECK_INT(sip_textsrv_reply(srv, last_id, "HTTP/1.1 200 OK\r\n\r\n", 19), 0);
  CHECK_INT(read_all(fd, buf, sizeof buf, 1000), 19);
  CHECK(strcmp(buf, "HTTP/1.1 200 OK\r\n\r\n") == 0);
  close(fd);
  /* answered: gone */
  CHECK_INT(sip_textsrv_reply(srv, last_id, "x", 1), SIP_ENOTFOUND);

  /* too large: the text, then closed */
  fd = tcp_client(port);
  char big[100];
  memset(big, 'a', sizeof big);
  send(fd, big, sizeof big, 0);
  CHECK_INT(read_all(fd, buf, sizeof buf, 1000), 10);
  CHECK(strcmp(buf, "too large\n") == 0);
  close(fd);

  /* a third connection at once is closed (busy) */
  int a = tcp_client(port), b = tcp_client(port);
  for (int i = 0; i < 20; i++)
    step();
  int c = tcp_client(port);
  CHECK_INT(read_all(c, buf, sizeof buf, 1000), 0);
  close(c);
  /* the others time out (300 ms) */
  CHECK_INT(read_all(a, buf, sizeof buf, 2000), 0);
  CHECK_INT(read_all(b, buf, sizeof buf, 2000), 0);
  close(a);
  close(b);
  sip_textsrv_stats st;
  sip_textsrv_get_stats(srv, &st);
  CHECK_INT((int)st.accepted, 4);
  CHECK_INT((int)st.busy, 1);
  CHECK_INT((int)st.too_large, 1);
  CHECK_INT((int)st.timeouts, 2);
  CHECK_INT((int)st.refused, 0);
  CHECK_INT(st.open, 0);

  /* closing with a request waiting: the callback is not called again */
  fd = tcp_client(port);
  send(fd, "x\r\n\r\n", 5, 0);
  wait_for(&nreq, 2);
  CHECK_INT(nreq, 2);
  sip_textsrv_close(srv);
  srv = NULL;
  CHECK_INT(read_all(fd, buf, sizeof buf, 1000), 0);
  close(fd);
  for (int i = 0; i < 10; i++)
    step();
}

typedef struct call_args {
  const char *path, *req;
  int rc;
  char *out;
  size_t len;
} call_args;

static void *call_thread(void *arg) {
  call_args *c = arg;
  c->rc =
      sip_textsrv_call(c->path, c->req, strlen(c->req), 2000, &c->out, &c->len);
  return NULL;
}

static void test_unix(void) {
  char dir[] = "/tmp/luasip-textsrv.XXXXXX";
  CHECK(mkdtemp(dir) != NULL);
  char spec[160], path[128];
  snprintf(path, sizeof path, "%s/ctl.sock", dir);
  snprintf(spec, sizeof spec, "unix:%s", path);
  sip_textsrv_config cfg;
  sip_textsrv_config_init(&cfg);
  cfg.cb = on_req;
  cfg.mode = 0640;

  /* a file that is not a socket is left alone */
  FILE *f = fopen(path, "w");
  CHECK(f != NULL);
  if (f)
    fclose(f);
  CHECK_INT(sip_textsrv_open(&loop, spec, &cfg, &srv), UV_EEXIST);
  unlink(path);

  CHECK_INT(sip_textsrv_open(&loop, spec, &cfg, &srv), 0);
  struct stat st;
  CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0640);
  CHECK_INT(sip_textsrv_port(srv), 0);
  /* a live socket is not taken over */
  sip_textsrv *other = NULL;
  CHECK_INT(sip_textsrv_open(&loop, spec, &cfg, &other), UV_EADDRINUSE);

  /* the blocking client, from a second thread while the loop runs here */
  answer_now = 1;
  nreq = 0;
  call_args ca = {.path = path, .req = "stats\n", .rc = 1};
  pthread_t th;
  CHECK(pthread_create(&th, NULL, call_thread, &ca) == 0);
  uint64_t deadline = now_ms() + 3000;
  while (ca.rc == 1 && now_ms() < deadline)
    step();
  pthread_join(th, NULL);
  CHECK_INT(ca.rc, 0);
  CHECK_INT(nreq, 1);
  CHECK(strcmp(last_req, "stats\n") == 0);
  CHECK_INT(last_uid, (int)geteuid());
  CHECK(ca.out && ca.len == 4 && strcmp(ca.out, "now\n") == 0);
  free(ca.out);
  answer_now = 0;

  /* closed: the file goes, and a stale file is replaced by the next one */
  sip_textsrv_close(srv);
  for (int i = 0; i < 10; i++)
    step();
  CHECK(access(path, F_OK) != 0);
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  memcpy(sa.sun_path, path, strlen(path) + 1);
  CHECK(bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0); /* not listening */
  close(fd);
  CHECK_INT(sip_textsrv_open(&loop, spec, &cfg, &srv), 0);
  sip_textsrv_close(srv);
  srv = NULL;
  for (int i = 0; i < 10; i++)
    step();

  /* the client: nothing there */
  char *out;
  size_t len;
  CHECK_INT(sip_textsrv_call(path, "x\n", 2, 100, &out, &len), -ENOENT);
  rmdir(dir);
}

int main(void) {
  CHECK_INT(uv_loop_init(&loop), 0);
  test_spec();
  test_tcp();
  test_unix();
  uv_run(&loop, UV_RUN_NOWAIT);
  CHECK_INT(uv_loop_close(&loop), 0);
  return check_summary("test_textsrv");
}
