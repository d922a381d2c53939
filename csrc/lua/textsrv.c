/* A small request/reply text server on the luasip loop, for the metrics
 * endpoint (HTTP/1.1 GET on TCP) and the control socket (one line on a
 * Unix socket), and the blocking client of the control socket.
 *
 *   core.text_server(spec, opts, fn) -> handle | nil, err, name
 *     spec  "tcp:127.0.0.1:9090", "tcp:[::1]:0" or "unix:/run/luasip.ctl"
 *     opts  terminator ("\n"): the request ends with it
 *           max_request (8192 bytes): a longer one gets `too_large` (a
 *             string written before closing, default none) and is closed
 *           timeout (5000 ms): a connection lives that long at most
 *           max_conns (32): more connections at once are closed at once
 *           mode (0600): permissions of a Unix socket's file
 *           allow_uid (-1): a uid admitted besides root and our own
 *     fn(id, request, uid) runs when a request is complete (uid: the
 *       peer's, for a Unix socket; -1 for TCP); it answers, now or later,
 *       with handle:reply(id, bytes), after which the connection closes.
 *       A peer of a Unix socket that is neither root, nor our user, nor
 *       allow_uid is answered "error: permission denied\n" and closed
 *       before fn sees anything (counted: refused).
 *   handle:reply(id, bytes) -> true | nil, "gone"
 *   handle:port()    the bound TCP port (0 for a Unix socket)
 *   handle:stats()   { accepted, refused, too_large, timeouts, busy }
 *   handle:close()   stop listening, close every connection (idempotent;
 *                    a Unix socket's file is removed)
 *
 *   core.ctl_call(path, request[, timeout_ms]) -> reply | nil, err
 *     blocking (for the `luasip ctl` command, never inside a server):
 *     connect to a Unix socket, write request, read until EOF.
 *
 * Memory: the server and each connection are malloc'd and freed in their
 * libuv close callbacks; the handle keeps a registry reference to itself
 * (and so to fn) while open. */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "lsip.h"

#define SIP_LUA_TEXTSRV "luasip.TextServer"

typedef struct tsrv tsrv;

typedef struct tconn {
  union {
    uv_handle_t handle;
    uv_stream_t stream;
    uv_tcp_t tcp;
    uv_pipe_t pipe;
  } s;
  uv_timer_t timer;
  uv_write_t wr;
  tsrv *srv; /* NULL once the server closed */
  struct tconn *next, *prev;
  lua_Integer id;
  int uid;
  int waiting; /* fn called, reply not yet given */
  int closing;
  int open_handles;
  char *out;
  size_t len;
  char buf[]; /* max_request + 1 */
} tconn;

struct tsrv {
  union {
    uv_handle_t handle;
    uv_stream_t stream;
    uv_tcp_t tcp;
    uv_pipe_t pipe;
  } l;
  sip_lua_loop *lp;
  int is_unix;
  int self_ref, fn_ref;
  tconn *conns;
  int nconns;
  lua_Integer next_id;
  char *path; /* Unix socket file, removed at close */
  char *too_large;
  size_t too_large_len;
  char term[8];
  size_t term_len;
  size_t max_request;
  uint64_t timeout;
  int max_conns;
  int allow_uid;
  unsigned mode;
  lua_Integer accepted, refused, too_big, timeouts, busy;
};

typedef struct tsrv_box {
  tsrv *srv; /* NULL once closed */
} tsrv_box;

/* nil, "EADDRINUSE: what: address already in use", "EADDRINUSE" */
static int uv_fail(lua_State *L, int rc, const char *what) {
  lua_pushnil(L);
  lua_pushfstring(L, "%s: %s: %s", uv_err_name(rc), what, uv_strerror(rc));
  lua_pushstring(L, uv_err_name(rc));
  return 3;
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
  tsrv *s = c->srv;
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
    c->srv->timeouts++;
  conn_close(c);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b) {
  (void)hint;
  tconn *c = h->data;
  size_t cap = c->srv ? c->srv->max_request + 1 : 0;
  *b =
      uv_buf_init(c->buf + c->len, (unsigned)(cap > c->len ? cap - c->len : 0));
}

static char *find_term(tsrv *s, char *p, size_t n) {
  if (n < s->term_len)
    return NULL;
  for (size_t i = 0; i + s->term_len <= n; i++)
    if (memcmp(p + i, s->term, s->term_len) == 0)
      return p + i;
  return NULL;
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *b) {
  (void)b;
  tconn *c = st->data;
  tsrv *s = c->srv;
  if (nread == 0)
    return;
  if (nread < 0 || !s || c->waiting) {
    conn_close(c);
    return;
  }
  c->len += (size_t)nread;
  char *end = find_term(s, c->buf, c->len);
  if (!end) {
    if (c->len > s->max_request) {
      s->too_big++;
      if (s->too_large)
        conn_write_close(c, s->too_large, s->too_large_len);
      else
        conn_close(c);
    }
    return;
  }
  size_t reqlen = (size_t)(end - c->buf) + s->term_len;
  uv_read_stop(st);
  c->waiting = 1;
  lua_State *L = s->lp->L;
  if (!L || !lua_checkstack(L, 6)) {
    conn_close(c);
    return;
  }
  lua_rawgeti(L, LUA_REGISTRYINDEX, s->fn_ref);
  lua_pushinteger(L, c->id);
  lua_pushlstring(L, c->buf, reqlen);
  lua_pushinteger(L, c->uid);
  sip__lua_call(L, 3, "a text server callback");
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
  tsrv *s = ls->data;
  if (status < 0)
    return;
  tconn *c = calloc(1, sizeof *c + s->max_request + 1);
  if (!c)
    return;
  int rc = s->is_unix ? uv_pipe_init(&s->lp->loop, &c->s.pipe, 0)
                      : uv_tcp_init(&s->lp->loop, &c->s.tcp);
  if (rc < 0) {
    free(c);
    return;
  }
  c->s.handle.data = c;
  c->open_handles = 1;
  uv_timer_init(&s->lp->loop, &c->timer);
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
  if (s->nconns > s->max_conns) {
    s->busy++;
    conn_close(c);
    return;
  }
  s->accepted++;
  uv_timer_start(&c->timer, on_timeout, s->timeout, 0);
  if (s->is_unix) {
    c->uid = peer_uid(c);
    if (c->uid != 0 && c->uid != (int)geteuid() &&
        (s->allow_uid < 0 || c->uid != s->allow_uid)) {
      static const char denied[] = "error: permission denied\n";
      s->refused++;
      conn_write_close(c, denied, sizeof denied - 1);
      return;
    }
  }
  if (uv_read_start(&c->s.stream, on_alloc, on_read) < 0)
    conn_close(c);
}

static void srv_freed(uv_handle_t *h) {
  tsrv *s = h->data;
  free(s->path);
  free(s->too_large);
  free(s);
}

static void srv_close(lua_State *L, tsrv_box *box) {
  tsrv *s = box->srv;
  if (!s)
    return;
  box->srv = NULL;
  while (s->conns)
    conn_close(s->conns);
  if (L) {
    luaL_unref(L, LUA_REGISTRYINDEX, s->fn_ref);
    luaL_unref(L, LUA_REGISTRYINDEX, s->self_ref);
  }
  if (s->path)
    unlink(s->path);
  uv_close(&s->l.handle, srv_freed);
}

static tsrv *check_srv(lua_State *L) {
  tsrv_box *box = luaL_checkudata(L, 1, SIP_LUA_TEXTSRV);
  if (!box->srv)
    luaL_error(L, "text server is closed");
  return box->srv;
}

static int get_int(lua_State *L, int t, const char *k, lua_Integer def,
                   lua_Integer lo, lua_Integer hi) {
  lua_getfield(L, t, k);
  lua_Integer v = lua_isnil(L, -1) ? def : luaL_checkinteger(L, -1);
  lua_pop(L, 1);
  if (v < lo || v > hi)
    luaL_error(L, "text_server: %s out of range", k);
  return (int)v;
}

/* Bind a Unix socket: a stale socket file (nothing listens) is replaced;
 * the file gets mode before anyone can connect (umask at bind). */
static int bind_unix(tsrv *s, const char *path) {
  struct stat st;
  if (lstat(path, &st) == 0) {
    if (!S_ISSOCK(st.st_mode))
      return UV_EEXIST;
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof sa.sun_path) {
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
  mode_t old = umask((mode_t)(~s->mode & 0777));
  int rc = uv_pipe_bind(&s->l.pipe, path);
  umask(old);
  if (rc == 0)
    chmod(path, (mode_t)s->mode);
  return rc;
}

static int l_text_server(lua_State *L) {
  const char *spec = luaL_checkstring(L, 1);
  luaL_checktype(L, 2, LUA_TTABLE);
  luaL_checktype(L, 3, LUA_TFUNCTION);
  sip_lua_loop *lp = sip__lua_loop(L);
  int is_unix = strncmp(spec, "unix:", 5) == 0;
  struct sockaddr_storage ss;
  if (!is_unix) {
    char host[64];
    int port;
    const char *p = spec + 4;
    if (strncmp(spec, "tcp:", 4) != 0)
      return luaL_argerror(L, 1, "tcp:ADDRESS:PORT or unix:PATH");
    const char *colon = strrchr(p, ':');
    size_t hl = colon ? (size_t)(colon - p) : 0;
    if (hl >= 2 && p[0] == '[' && p[hl - 1] == ']') {
      p++;
      hl -= 2;
    }
    if (!colon || hl == 0 || hl >= sizeof host)
      return luaL_argerror(L, 1, "tcp:ADDRESS:PORT or unix:PATH");
    memcpy(host, p, hl);
    host[hl] = 0;
    char *e;
    long pl = strtol(colon + 1, &e, 10);
    if (*e || pl < 0 || pl > 65535 || e == colon + 1)
      return luaL_argerror(L, 1, "bad port");
    port = (int)pl;
    if (uv_ip4_addr(host, port, (struct sockaddr_in *)&ss) != 0 &&
        uv_ip6_addr(host, port, (struct sockaddr_in6 *)&ss) != 0)
      return luaL_argerror(L, 1, "a numeric address expected");
  }
  tsrv_box *box = lua_newuserdatauv(L, sizeof *box, 0);
  box->srv = NULL;
  luaL_setmetatable(L, SIP_LUA_TEXTSRV);
  int ud = lua_gettop(L);
  tsrv *s = calloc(1, sizeof *s);
  if (!s)
    return luaL_error(L, "not enough memory");
  s->lp = lp;
  s->is_unix = is_unix;
  s->self_ref = s->fn_ref = LUA_NOREF;
  s->max_request = (size_t)get_int(L, 2, "max_request", 8192, 16, 1 << 20);
  s->timeout = (uint64_t)get_int(L, 2, "timeout", 5000, 1, 3600000);
  s->max_conns = get_int(L, 2, "max_conns", 32, 1, 4096);
  s->allow_uid = get_int(L, 2, "allow_uid", -1, -1, 0x7fffffff);
  s->mode = (unsigned)get_int(L, 2, "mode", 0600, 0, 0777);
  lua_getfield(L, 2, "terminator");
  size_t tl = 1;
  const char *term = lua_isnil(L, -1) ? "\n" : luaL_checklstring(L, -1, &tl);
  if (tl == 0 || tl >= sizeof s->term) {
    free(s);
    return luaL_error(L, "text_server: terminator of 1 to 7 bytes");
  }
  memcpy(s->term, term, tl);
  s->term_len = tl;
  lua_pop(L, 1);
  lua_getfield(L, 2, "too_large");
  if (!lua_isnil(L, -1)) {
    size_t n;
    const char *t = luaL_checklstring(L, -1, &n);
    s->too_large = malloc(n ? n : 1);
    if (s->too_large) {
      memcpy(s->too_large, t, n);
      s->too_large_len = n;
    }
  }
  lua_pop(L, 1);
  int rc = is_unix ? uv_pipe_init(&lp->loop, &s->l.pipe, 0)
                   : uv_tcp_init(&lp->loop, &s->l.tcp);
  if (rc < 0) {
    free(s->too_large);
    free(s);
    return uv_fail(L, rc, spec);
  }
  s->l.handle.data = s;
  box->srv = s;
  if (is_unix) {
    rc = bind_unix(s, spec + 5);
    if (rc == 0)
      s->path = strdup(spec + 5);
  } else {
    rc = uv_tcp_bind(&s->l.tcp, (struct sockaddr *)&ss, 0);
  }
  if (rc == 0)
    rc = uv_listen(&s->l.stream, 16, on_connection);
  if (rc < 0) {
    srv_close(NULL, box);
    return uv_fail(L, rc, spec);
  }
  lua_pushvalue(L, 3);
  s->fn_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_pushvalue(L, ud);
  s->self_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  return 1;
}

static int ts_reply(lua_State *L) {
  tsrv *s = check_srv(L);
  lua_Integer id = luaL_checkinteger(L, 2);
  size_t n;
  const char *p = luaL_checklstring(L, 3, &n);
  for (tconn *c = s->conns; c; c = c->next) {
    if (c->id == id && c->waiting && !c->closing) {
      c->waiting = 0;
      int rc = conn_write_close(c, p, n);
      if (rc < 0)
        return uv_fail(L, rc, "reply");
      lua_pushboolean(L, 1);
      return 1;
    }
  }
  lua_pushnil(L);
  lua_pushliteral(L, "gone");
  return 2;
}

static int ts_port(lua_State *L) {
  tsrv *s = check_srv(L);
  int port = 0;
  if (!s->is_unix) {
    struct sockaddr_storage ss;
    int len = sizeof ss;
    if (uv_tcp_getsockname(&s->l.tcp, (struct sockaddr *)&ss, &len) == 0)
      port = ntohs(ss.ss_family == AF_INET6
                       ? ((struct sockaddr_in6 *)&ss)->sin6_port
                       : ((struct sockaddr_in *)&ss)->sin_port);
  }
  lua_pushinteger(L, port);
  return 1;
}

static int ts_stats(lua_State *L) {
  tsrv *s = check_srv(L);
  lua_createtable(L, 0, 6);
#define SET(k, v)                                                              \
  lua_pushinteger(L, (lua_Integer)(v));                                        \
  lua_setfield(L, -2, k)
  SET("accepted", s->accepted);
  SET("refused", s->refused);
  SET("too_large", s->too_big);
  SET("timeouts", s->timeouts);
  SET("busy", s->busy);
  SET("open", s->nconns);
#undef SET
  return 1;
}

static int ts_close(lua_State *L) {
  srv_close(L, luaL_checkudata(L, 1, SIP_LUA_TEXTSRV));
  return 0;
}

/* Reached only once closed (an open server is referenced), or at
 * lua_close. */
static int ts_gc(lua_State *L) {
  tsrv_box *box = luaL_checkudata(L, 1, SIP_LUA_TEXTSRV);
  if (box->srv && box->srv->lp->initialized)
    srv_close(NULL, box);
  return 0;
}

static int ts_tostring(lua_State *L) {
  tsrv_box *box = luaL_checkudata(L, 1, SIP_LUA_TEXTSRV);
  lua_pushfstring(L, "luasip.TextServer (%s)", box->srv ? "open" : "closed");
  return 1;
}

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int ctl_fail(lua_State *L, int fd, const char *what, int err) {
  if (fd >= 0)
    close(fd);
  lua_pushnil(L);
  lua_pushfstring(L, "%s: %s", what, strerror(err));
  return 2;
}

static int l_ctl_call(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  size_t n;
  const char *req = luaL_checklstring(L, 2, &n);
  lua_Integer timeout = luaL_optinteger(L, 3, 10000);
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  if (strlen(path) >= sizeof sa.sun_path)
    return ctl_fail(L, -1, path, ENAMETOOLONG);
  memcpy(sa.sun_path, path, strlen(path) + 1);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return ctl_fail(L, -1, path, errno);
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0)
    return ctl_fail(L, fd, path, errno);
  double deadline = now_ms() + (double)timeout;
  size_t off = 0;
  while (off < n) {
    ssize_t w = write(fd, req + off, n - off);
    if (w < 0) {
      if (errno == EINTR)
        continue;
      return ctl_fail(L, fd, path, errno);
    }
    off += (size_t)w;
  }
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  for (;;) {
    double left = deadline - now_ms();
    if (left <= 0)
      return ctl_fail(L, fd, path, ETIMEDOUT);
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    int pr = poll(&pfd, 1, (int)left + 1);
    if (pr < 0 && errno == EINTR)
      continue;
    if (pr <= 0)
      return ctl_fail(L, fd, path, pr == 0 ? ETIMEDOUT : errno);
    char *p = luaL_prepbuffer(&b);
    ssize_t r = read(fd, p, LUAL_BUFFERSIZE);
    if (r < 0) {
      if (errno == EINTR)
        continue;
      return ctl_fail(L, fd, path, errno);
    }
    if (r == 0)
      break;
    luaL_addsize(&b, (size_t)r);
  }
  close(fd);
  luaL_pushresult(&b);
  return 1;
}

static const luaL_Reg ts_methods[] = {
    {"reply", ts_reply}, {"port", ts_port}, {"stats", ts_stats},
    {"close", ts_close}, {NULL, NULL},
};

void sip__lua_open_textsrv(lua_State *L) {
  luaL_newmetatable(L, SIP_LUA_TEXTSRV);
  luaL_newlib(L, ts_methods);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, ts_gc);
  lua_setfield(L, -2, "__gc");
  lua_pushcfunction(L, ts_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pop(L, 1);
  lua_pushcfunction(L, l_text_server);
  lua_setfield(L, -2, "text_server");
  lua_pushcfunction(L, l_ctl_call);
  lua_setfield(L, -2, "ctl_call");
}
