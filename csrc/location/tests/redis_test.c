/* Redis client test (sip_redis.h): nothing listening (a quick error), a
 * peer that never answers (the command timeout), close with a command
 * pending, then a real redis-server on 127.0.0.1 started by this test
 * (replies of each type, an error reply, SELECT of another database, the
 * server stopped and started again: reconnected). Every wait is bounded;
 * the server is stopped by its PID. Prints "test_redis: N passed, N
 * failed". */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "sip_error.h"
#include "sip_redis.h"
#include "test/check.h"

static uv_loop_t loop;

#define MAXR 32
static struct {
  int done, type;
  long long integer;
  char str[128];
  char err[128];
  int elements;
} res[MAXR];
static int ndone;

static void on_reply(void *ud, intptr_t tag, const redisReply *rep,
                     const char *err) {
  CHECK(ud == &loop);
  if (tag < 0 || tag >= MAXR)
    return;
  ndone++;
  res[tag].done = 1;
  snprintf(res[tag].err, sizeof res[tag].err, "%s", err ? err : "");
  if (rep) {
    res[tag].type = rep->type;
    res[tag].integer = rep->integer;
    res[tag].elements = (int)rep->elements;
    if (rep->str)
      snprintf(res[tag].str, sizeof res[tag].str, "%.*s", (int)rep->len,
               rep->str);
  }
}

static uint64_t now_ms(void) { return uv_hrtime() / 1000000u; }

static void wait_done(int want, int ms) {
  uint64_t deadline = now_ms() + (uint64_t)ms;
  while (ndone < want && now_ms() < deadline) {
    uv_run(&loop, UV_RUN_NOWAIT);
    struct timespec ts = {0, 500000};
    nanosleep(&ts, NULL);
  }
}

static int cmd(sip_redis *r, intptr_t tag, int argc, const char **argv) {
  size_t l[8];
  for (int i = 0; i < argc; i++)
    l[i] = strlen(argv[i]);
  return sip_redis_command(r, argc, argv, l, tag);
}

/* A free port on 127.0.0.1; with listen_fd, a socket listening there that
 * never answers (its connections complete in the kernel's backlog). */
static int free_port(int *listen_fd) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET};
  inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
  CHECK(bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0);
  socklen_t len = sizeof sa;
  getsockname(fd, (struct sockaddr *)&sa, &len);
  if (listen_fd) {
    CHECK(listen(fd, 8) == 0);
    *listen_fd = fd;
  } else {
    close(fd);
  }
  return ntohs(sa.sin_port);
}

static pid_t start_redis(int port) {
  char p[16];
  snprintf(p, sizeof p, "%d", port);
  pid_t pid = fork();
  if (pid == 0) {
    int devnull = open("/dev/null", 1);
    dup2(devnull, 1);
    dup2(devnull, 2);
    execlp("redis-server", "redis-server", "--port", p, "--bind", "127.0.0.1",
           "--save", "", "--appendonly", "no", (char *)NULL);
    _exit(127);
  }
  /* up when it accepts a connection (5 s at most) */
  for (int i = 0; i < 500; i++) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    int ok = connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
    close(fd);
    if (ok)
      return pid;
    int st;
    if (waitpid(pid, &st, WNOHANG) == pid)
      return -1;
    struct timespec ts = {0, 10000000};
    nanosleep(&ts, NULL);
  }
  return pid;
}

static void stop_redis(pid_t pid) {
  kill(pid, SIGTERM);
  for (int i = 0; i < 300; i++) {
    int st;
    if (waitpid(pid, &st, WNOHANG) == pid)
      return;
    struct timespec ts = {0, 10000000};
    nanosleep(&ts, NULL);
  }
  kill(pid, SIGKILL);
  waitpid(pid, NULL, 0);
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  CHECK_INT(uv_loop_init(&loop), 0);
  sip_redis *r;
  const char *ping[] = {"PING"};

  CHECK_INT(sip_redis_open(&loop, "", 6379, 0, 100, 100, on_reply, &loop, &r),
            SIP_EINVAL);
  CHECK_INT(
      sip_redis_open(&loop, "127.0.0.1", 0, 0, 100, 100, on_reply, &loop, &r),
      SIP_EINVAL);

  /* nothing listening: refused at once, not after the timeout */
  int port = free_port(NULL);
  CHECK_INT(sip_redis_open(&loop, "127.0.0.1", port, 0, 5000, 5000, on_reply,
                           &loop, &r),
            0);
  CHECK(sip_redis_last_error(r) == NULL);
  CHECK_INT(cmd(r, 0, 1, ping), 0);
  CHECK_INT(ndone, 0); /* never inside the call */
  wait_done(1, 10000);
  CHECK_INT(res[0].done, 1);
  /* refused: seen as such, not as the (5 s) connect timeout */
  CHECK_MSG(res[0].err[0] && strstr(res[0].err, "timed out") == NULL, "%s",
            res[0].err);
  CHECK_INT(sip_redis_connected(r), 0);
  CHECK(sip_redis_last_error(r) != NULL);
  char last[160];
  sip_redis_close(r, 1, last, sizeof last);
  CHECK(last[0] != 0);

  /* a peer that accepts and never answers: the command times out */
  int lfd;
  port = free_port(&lfd);
  CHECK_INT(sip_redis_open(&loop, "127.0.0.1", port, 0, 2000, 200, on_reply,
                           &loop, &r),
            0);
  CHECK_INT(cmd(r, 1, 1, ping), 0);
  wait_done(2, 3000);
  CHECK_MSG(strcmp(res[1].err, "timed out") == 0, "%s", res[1].err);
  /* close with a command pending: its callback now, with "closed" */
  CHECK_INT(cmd(r, 2, 1, ping), 0);
  sip_redis_close(r, 1, last, sizeof last);
  CHECK_INT(res[2].done, 1);
  CHECK(strcmp(res[2].err, "closed") == 0);
  CHECK(strcmp(last, "closed") == 0);
  close(lfd);

  /* a real server */
  port = free_port(NULL);
  pid_t pid = start_redis(port);
  CHECK_MSG(pid > 0, "redis-server did not start (deps/debian.txt, test)");
  if (pid > 0) {
    ndone = 0;
    CHECK_INT(sip_redis_open(&loop, "127.0.0.1", port, 1, 2000, 2000, on_reply,
                             &loop, &r),
              0);
    const char *set[] = {"SET", "k", "v1"};
    const char *get[] = {"GET", "k"};
    const char *incr[] = {"INCR", "n"};
    const char *bad[] = {"NOSUCHCOMMAND"};
    const char *mget[] = {"MGET", "k", "missing"};
    CHECK_INT(cmd(r, 10, 3, set), 0);
    CHECK_INT(cmd(r, 11, 2, get), 0);
    CHECK_INT(cmd(r, 12, 2, incr), 0);
    CHECK_INT(cmd(r, 13, 1, bad), 0);
    CHECK_INT(cmd(r, 14, 3, mget), 0);
    wait_done(5, 3000);
    CHECK_INT(sip_redis_connected(r), 1);
    CHECK_INT(res[10].type, REDIS_REPLY_STATUS);
    CHECK(strcmp(res[10].str, "OK") == 0);
    CHECK_INT(res[11].type, REDIS_REPLY_STRING);
    CHECK(strcmp(res[11].str, "v1") == 0);
    CHECK_INT(res[12].type, REDIS_REPLY_INTEGER);
    CHECK_INT((int)res[12].integer, 1);
    CHECK_INT(res[13].type, REDIS_REPLY_ERROR);
    CHECK(strncmp(res[13].str, "ERR", 3) == 0);
    CHECK_INT(res[14].type, REDIS_REPLY_ARRAY);
    CHECK_INT(res[14].elements, 2);
    /* database 1 was selected: database 0 does not have k */
    sip_redis *r0;
    CHECK_INT(sip_redis_open(&loop, "127.0.0.1", port, 0, 2000, 2000, on_reply,
                             &loop, &r0),
              0);
    CHECK_INT(cmd(r0, 15, 2, get), 0);
    wait_done(6, 3000);
    CHECK_INT(res[15].type, REDIS_REPLY_NIL);
    sip_redis_close(r0, 1, NULL, 0);
    /* the server goes and comes back: the next command reconnects */
    stop_redis(pid);
    CHECK_INT(cmd(r, 16, 1, ping), 0);
    wait_done(7, 3000);
    CHECK(res[16].err[0] != 0);
    pid = start_redis(port);
    CHECK(pid > 0);
    CHECK_INT(cmd(r, 17, 1, ping), 0);
    wait_done(8, 3000);
    CHECK_MSG(strcmp(res[17].str, "PONG") == 0, "'%s' '%s'", res[17].str,
              res[17].err);
    sip_redis_close(r, 1, NULL, 0);
    if (pid > 0)
      stop_redis(pid);
  }
  for (int i = 0; i < 20; i++)
    uv_run(&loop, UV_RUN_NOWAIT);
  CHECK_INT(uv_loop_close(&loop), 0);
  return check_summary("test_redis");
}
