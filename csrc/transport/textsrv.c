/* The text server: see sip_textsrv.h. */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "sip_error.h"
#include "sip_textsrv.h"

typedef struct tconn {
  union {
    uv_handle_t handle;
    uv_stream_t stream;
    uv_tcp_t tcp;
    uv_pipe_t pipe;
  } s;
  uv_timer_t timer;
  uv_write_t wr;
  sip_textsrv *srv; /* NULL once the server closed */
  struct tconn *next, *prev;
  int64_t id;
  int uid;
  int waiting; /* the callback has it, no reply yet */
  int closing;
  int open_handles;
  char *out;
  size_t len;
  char buf[]; /* max_request + 1 */
} tconn;

struct sip_textsrv {
  union {
    uv_handle_t handle;
    uv_stream_t stream;
    uv_tcp_t tcp;
    uv_pipe_t pipe;
  } l;
  uv_loop_t *loop;
  sip_textsrv_config cfg; /* too_large: our copy */
  int is_unix;
  tconn *conns;
  int nconns;
  int64_t next_id;
  char *path; /* Unix socket file, removed at close */
  sip_textsrv_stats st;
};

void sip_textsrv_config_init(sip_textsrv_config *cfg) {
  memset(cfg, 0, sizeof *cfg);
  cfg->max_request = 8192;
  cfg->timeout_ms = 5000;
  cfg->max_conns = 32;
  cfg->allow_uid = -1;
  cfg->mode = 0600;
  cfg->term[0] = '\n';
  cfg->term_len = 1;
}

static void conn_freed(uv_handle_t *h) {
  tconn *c = h->data;
  if (--c->open_handles == 0) {
    free(c->out);
    free(c);
  }
}

static void conn_close(tconn *c) {
  if (c->closing)
    return;
  c->closing = 1;
  sip_textsrv *s = c->srv;
  if (s) {
    if (c->prev)
      c->prev->next = c->next;
    else
      s->conns = c->next;
    if (c->next)
      c->next->prev = c->prev;
    s->nconns--;
    c->srv = NULL;
  }
  uv_close(&c->s.handle, conn_freed);
  uv_close((uv_handle_t *)&c->timer, conn_freed);
}

static void on_written(uv_write_t *wr, int status) {
  (void)status;
  conn_close(wr->data);
}

/* Write bytes (copied) and close once written. */
static int conn_write_close(tconn *c, const char *p, size_t n) {
  free(c->out);
  c->out = malloc(n ? n : 1);
  if (!c->out) {
    conn_close(c);
    return UV_ENOMEM;
  }
  memcpy(c->out, p, n);
  uv_buf_t b = uv_buf_init(c->out, (unsigned)n);
  c->wr.data = c;
  uv_read_stop(&c->s.stream);
  int rc = uv_write(&c->wr, &c->s.stream, &b, 1, on_written);
  if (rc < 0)
    conn_close(c);
  return rc;
}

static void on_timeout(uv_timer_t *t) {
  tconn *c = t->data;
  if (c->srv)
    c->srv->st.timeouts++;
  conn_close(c);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b) {
  (void)hint;
  tconn *c = h->data;
  size_t cap = c->srv ? c->srv->cfg.max_request + 1 : 0;
  *b =
      uv_buf_init(c->buf + c->len, (unsigned)(cap > c->len ? cap - c->len : 0));
}

static char *find_term(const sip_textsrv *s, char *p, size_t n) {
  size_t tl = s->cfg.term_len;
  if (n < tl)
    return NULL;
  for (size_t i = 0; i + tl <= n; i++)
    if (memcmp(p + i, s->cfg.term, tl) == 0)
      return p + i;
  return NULL;
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *b) {
  (void)b;
  tconn *c = st->data;
  sip_textsrv *s = c->srv;
  if (nread == 0)
    return;
  if (nread < 0 || !s || c->waiting) {
    conn_close(c);
    return;
  }
  c->len += (size_t)nread;
  char *end = find_term(s, c->buf, c->len);
  if (!end) {
    if (c->len > s->cfg.max_request) {
      s->st.too_large++;
      if (s->cfg.too_large)
        conn_write_close(c, s->cfg.too_large, s->cfg.too_large_len);
      else
        conn_close(c);
    }
    return;
  }
  size_t reqlen = (size_t)(end - c->buf) + s->cfg.term_len;
  uv_read_stop(st);
  c->waiting = 1;
  if (!s->cfg.cb || s->cfg.cb(s->cfg.ud, c->id, c->buf, reqlen, c->uid) < 0)
    conn_close(c);
}

static int peer_uid(tconn *c) {
  uv_os_fd_t fd;
  if (uv_fileno(&c->s.handle, &fd) < 0)
    return -2;
  struct ucred cr;
  socklen_t len = sizeof cr;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) < 0)
    return -2;
  return (int)cr.uid;
}

static void on_connection(uv_stream_t *ls, int status) {
  sip_textsrv *s = ls->data;
  if (status < 0)
    return;
  tconn *c = calloc(1, sizeof *c + s->cfg.max_request + 1);
  if (!c)
    return;
  int rc = s->is_unix ? uv_pipe_init(s->loop, &c->s.pipe, 0)
                      : uv_tcp_init(s->loop, &c->s.tcp);
  if (rc < 0) {
    free(c);
    return;
  }
  c->s.handle.data = c;
  c->open_handles = 1;
  uv_timer_init(s->loop, &c->timer);
  c->timer.data = c;
  c->open_handles = 2;
  c->srv = s;
  c->uid = -1;
  c->id = ++s->next_id;
  c->next = s->conns;
  if (s->conns)
    s->conns->prev = c;
  s->conns = c;
  s->nconns++;
  if (uv_accept(ls, &c->s.stream) < 0) {
    conn_close(c);
    return;
  }
  if (s->nconns > s->cfg.max_conns) {
    s->st.busy++;
    conn_close(c);
    return;
  }
  s->st.accepted++;
  uv_timer_start(&c->timer, on_timeout, s->cfg.timeout_ms, 0);
  if (s->is_unix) {
    c->uid = peer_uid(c);
    if (c->uid != 0 && c->uid != (int)geteuid() &&
        (s->cfg.allow_uid < 0 || c->uid != s->cfg.allow_uid)) {
      static const char denied[] = "error: permission denied\n";
      s->st.refused++;
      conn_write_close(c, denied, sizeof denied - 1);
      return;
    }
  }
  if (uv_read_start(&c->s.stream, on_alloc, on_read) < 0)
    conn_close(c);
}

static void srv_freed(uv_handle_t *h) {
  sip_textsrv *s = h->data;
  free(s->path);
  free((char *)s->cfg.too_large);
  free(s);
}

void sip_textsrv_close(sip_textsrv *s) {
  if (!s)
    return;
  while (s->conns)
    conn_close(s->conns);
  if (s->path)
    unlink(s->path);
  uv_close(&s->l.handle, srv_freed);
}

/* Bind a Unix socket: a stale socket file (nothing listens) is replaced;
 * the file gets mode before anyone can connect (umask at bind). */
static int bind_unix(sip_textsrv *s, const char *path) {
  struct stat st;
  if (lstat(path, &st) == 0) {
    if (!S_ISSOCK(st.st_mode))
      return UV_EEXIST;
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof sa.sun_path) {
      if (fd >= 0)
        close(fd);
      return UV_ENAMETOOLONG;
    }
    memcpy(sa.sun_path, path, strlen(path) + 1);
    int live = fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
    if (fd >= 0)
      close(fd);
    if (live)
      return UV_EADDRINUSE;
    unlink(path);
  }
  mode_t old = umask((mode_t)(~s->cfg.mode & 0777));
  int rc = uv_pipe_bind(&s->l.pipe, path);
  umask(old);
  if (rc == 0)
    chmod(path, (mode_t)s->cfg.mode);
  return rc;
}

int sip_textsrv_parse_spec(const char *spec, struct sockaddr_storage *ss,
                           const char **why) {
  static const char forms[] = "tcp:ADDRESS:PORT or unix:PATH";
  *why = forms;
  if (strncmp(spec, "unix:", 5) == 0)
    return 1;
  if (strncmp(spec, "tcp:", 4) != 0)
    return SIP_EINVAL;
  const char *p = spec + 4;
  char host[64];
  const char *colon = strrchr(p, ':');
  size_t hl = colon ? (size_t)(colon - p) : 0;
  if (hl >= 2 && p[0] == '[' && p[hl - 1] == ']') {
    p++;
    hl -= 2;
  }
  if (!colon || hl == 0 || hl >= sizeof host)
    return SIP_EINVAL;
  memcpy(host, p, hl);
  host[hl] = 0;
  char *e;
  long pl = strtol(colon + 1, &e, 10);
  if (*e || pl < 0 || pl > 65535 || e == colon + 1) {
    *why = "bad port";
    return SIP_EINVAL;
  }
  if (uv_ip4_addr(host, (int)pl, (struct sockaddr_in *)ss) != 0 &&
      uv_ip6_addr(host, (int)pl, (struct sockaddr_in6 *)ss) != 0) {
    *why = "a numeric address expected";
    return SIP_EINVAL;
  }
  return 0;
}

int sip_textsrv_open(uv_loop_t *loop, const char *spec,
                     const sip_textsrv_config *cfg, sip_textsrv **out) {
  struct sockaddr_storage ss;
  const char *why;
  int kind = sip_textsrv_parse_spec(spec, &ss, &why);
  if (kind < 0)
    return kind;
  if (cfg->term_len == 0 || cfg->term_len >= sizeof cfg->term ||
      cfg->max_request == 0 || cfg->max_conns < 1)
    return SIP_EINVAL;
  sip_textsrv *s = calloc(1, sizeof *s);
  if (!s)
    return UV_ENOMEM;
  s->loop = loop;
  s->cfg = *cfg;
  s->cfg.too_large = NULL;
  s->is_unix = kind == 1;
  if (cfg->too_large) {
    char *t = malloc(cfg->too_large_len ? cfg->too_large_len : 1);
    if (!t) {
      free(s);
      return UV_ENOMEM;
    }
    memcpy(t, cfg->too_large, cfg->too_large_len);
    s->cfg.too_large = t;
  }
  int rc = s->is_unix ? uv_pipe_init(loop, &s->l.pipe, 0)
                      : uv_tcp_init(loop, &s->l.tcp);
  if (rc < 0) {
    free((char *)s->cfg.too_large);
    free(s);
    return rc;
  }
  s->l.handle.data = s;
  if (s->is_unix) {
    rc = bind_unix(s, spec + 5);
    if (rc == 0 && !(s->path = strdup(spec + 5)))
      rc = UV_ENOMEM;
  } else {
    rc = uv_tcp_bind(&s->l.tcp, (struct sockaddr *)&ss, 0);
  }
  if (rc == 0)
    rc = uv_listen(&s->l.stream, 16, on_connection);
  if (rc < 0) {
    sip_textsrv_close(s);
    return rc;
  }
  *out = s;
  return 0;
}

int sip_textsrv_reply(sip_textsrv *s, int64_t id, const char *p, size_t n) {
  for (tconn *c = s->conns; c; c = c->next) {
    if (c->id == id && c->waiting && !c->closing) {
      c->waiting = 0;
      return conn_write_close(c, p, n);
    }
  }
  return SIP_ENOTFOUND;
}

int sip_textsrv_port(const sip_textsrv *s) {
  if (s->is_unix)
    return 0;
  struct sockaddr_storage ss;
  int len = sizeof ss;
  if (uv_tcp_getsockname(&s->l.tcp, (struct sockaddr *)&ss, &len) != 0)
    return 0;
  return ntohs(ss.ss_family == AF_INET6
                   ? ((struct sockaddr_in6 *)&ss)->sin6_port
                   : ((struct sockaddr_in *)&ss)->sin_port);
}

void sip_textsrv_get_stats(const sip_textsrv *s, sip_textsrv_stats *out) {
  *out = s->st;
  out->open = s->nconns;
}

/* ---- the blocking client ------------------------------------------------ */

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int call_fail(int fd, char *buf, int err) {
  if (fd >= 0)
    close(fd);
  free(buf);
  return -err;
}

int sip_textsrv_call(const char *path, const char *req, size_t n,
                     int timeout_ms, char **out, size_t *len) {
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  if (strlen(path) >= sizeof sa.sun_path)
    return -ENAMETOOLONG;
  memcpy(sa.sun_path, path, strlen(path) + 1);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -errno;
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0)
    return call_fail(fd, NULL, errno);
  double deadline = now_ms() + (double)timeout_ms;
  size_t off = 0;
  while (off < n) {
    ssize_t w = write(fd, req + off, n - off);
    if (w < 0) {
      if (errno == EINTR)
        continue;
      return call_fail(fd, NULL, errno);
    }
    off += (size_t)w;
  }
  size_t cap = 4096, got = 0;
  char *buf = malloc(cap);
  if (!buf)
    return call_fail(fd, NULL, ENOMEM);
  for (;;) {
    double left = deadline - now_ms();
    if (left <= 0)
      return call_fail(fd, buf, ETIMEDOUT);
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    int pr = poll(&pfd, 1, (int)left + 1);
    if (pr < 0 && errno == EINTR)
      continue;
    if (pr <= 0)
      return call_fail(fd, buf, pr == 0 ? ETIMEDOUT : errno);
    if (cap - got < 1024) {
      char *nb = realloc(buf, cap * 2);
      if (!nb)
        return call_fail(fd, buf, ENOMEM);
      buf = nb;
      cap *= 2;
    }
    ssize_t r = read(fd, buf + got, cap - got - 1);
    if (r < 0) {
      if (errno == EINTR)
        continue;
      return call_fail(fd, buf, errno);
    }
    if (r == 0)
      break;
    got += (size_t)r;
  }
  close(fd);
  buf[got] = 0;
  *out = buf;
  *len = got;
  return 0;
}
