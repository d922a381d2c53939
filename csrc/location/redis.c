/* The asynchronous Redis client: see sip_redis.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/adapters/libuv.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "sip_error.h"
#include "sip_redis.h"

#define TICK_MS 50

typedef struct rdreq {
  struct rdreq *next, *prev;
  sip_redis *r;
  intptr_t tag;
  uint64_t deadline;
} rdreq;

struct sip_redis {
  uv_loop_t *loop;
  sip_redis_cb cb;
  void *ud;
  redisAsyncContext *ac; /* NULL: not connected (nor connecting) */
  int connected;         /* the connect callback said yes */
  uint64_t connect_deadline;
  uint64_t connect_timeout, command_timeout; /* ms */
  uv_timer_t *timer;                         /* malloc'd (outlives r) */
  rdreq pending;                             /* circular list, oldest first */
  int npending;
  int closed;
  const char *why; /* reason given to the replies of a dropped context */
  char err[160];   /* the last connection error */
  int port, db;
  char host[256];
};

static void on_timer_closed(uv_handle_t *h) { free(h); }

static uint64_t now_ms(sip_redis *r) { return uv_now(r->loop); }

static void drop(sip_redis *r, const char *why);

static void tick(uv_timer_t *h) {
  sip_redis *r = h->data;
  if (!r)
    return;
  uint64_t now = now_ms(r);
  if (r->ac && !r->connected && now >= r->connect_deadline) {
    drop(r, "connect timed out");
  } else if (r->npending > 0 && now >= r->pending.next->deadline) {
    drop(r, "timed out");
  }
  if (r->npending == 0 && !(r->ac && !r->connected))
    uv_timer_stop(h);
}

/* Start the tick while something waits. */
static void watch(sip_redis *r) {
  if (r->timer && !uv_is_active((uv_handle_t *)r->timer) &&
      (r->npending > 0 || (r->ac && !r->connected)))
    uv_timer_start(r->timer, tick, TICK_MS, TICK_MS);
}

/* Give up the connection: every pending command gets why. */
static void drop(sip_redis *r, const char *why) {
  redisAsyncContext *ac = r->ac;
  if (!ac)
    return;
  r->ac = NULL;
  r->connected = 0;
  snprintf(r->err, sizeof r->err, "%s", why);
  r->why = why;
  redisAsyncFree(ac); /* runs the pending callbacks with a NULL reply */
  r->why = NULL;
}

static void on_connect(const redisAsyncContext *ac, int status) {
  sip_redis *r = ac->data;
  if (!r || r->ac != ac)
    return;
  if (status != REDIS_OK) {
    snprintf(r->err, sizeof r->err, "%s",
             ac->errstr[0] ? ac->errstr : "cannot connect");
    r->ac = NULL; /* hiredis frees it after this callback */
    r->connected = 0;
    return;
  }
  r->connected = 1;
}

static void on_disconnect(const redisAsyncContext *ac, int status) {
  (void)status;
  sip_redis *r = ac->data;
  if (!r || r->ac != ac)
    return;
  snprintf(r->err, sizeof r->err, "%s",
           ac->errstr[0] ? ac->errstr : "connection lost");
  r->ac = NULL;
  r->connected = 0;
}

static void on_reply(redisAsyncContext *ac, void *reply, void *priv) {
  rdreq *c = priv;
  sip_redis *r = c->r;
  c->prev->next = c->next;
  c->next->prev = c->prev;
  r->npending--;
  redisReply *rep = reply;
  char why[200];
  if (!rep) {
    /* only a context on its way out gives NULL replies */
    const char *w = r->why          ? r->why
                    : ac->errstr[0] ? ac->errstr
                    : r->err[0]     ? r->err
                                    : "connection lost";
    snprintf(why, sizeof why, "%s", w);
    if (r->ac == ac) {
      snprintf(r->err, sizeof r->err, "%s", w);
      r->ac = NULL;
      r->connected = 0;
    }
  }
  intptr_t tag = c->tag;
  free(c);
  r->cb(r->ud, tag, rep, rep ? NULL : why);
}

static void on_select(redisAsyncContext *ac, void *reply, void *priv) {
  sip_redis *r = priv;
  redisReply *rep = reply;
  if (rep && rep->type == REDIS_REPLY_ERROR && r->ac == ac) {
    snprintf(r->err, sizeof r->err, "SELECT %d: %s", r->db, rep->str);
    redisAsyncDisconnect(ac);
  }
}

/* The adapter's poll callback ignores a poll error, and libuv stops the
 * handle on POLLERR (a refused connect, a reset): hiredis would never hear
 * of it and every command would wait for its timeout. These hooks replace
 * the adapter's (same struct, same cleanup) with a callback that lets
 * hiredis read/write on an error, so it finds the socket error at once. */
static void poll_cb(uv_poll_t *h, int status, int events) {
  redisLibuvEvents *p = h->data;
  if (status != 0)
    events = p->events;
  if (p->context && (events & UV_READABLE))
    redisAsyncHandleRead(p->context);
  if (p->context && (events & UV_WRITABLE))
    redisAsyncHandleWrite(p->context);
}

static void set_events(redisLibuvEvents *p, int events) {
  p->events = events;
  if (events)
    uv_poll_start(&p->handle, events, poll_cb);
  else
    uv_poll_stop(&p->handle);
}

static void add_read(void *d) {
  redisLibuvEvents *p = d;
  set_events(p, p->events | UV_READABLE);
}

static void del_read(void *d) {
  redisLibuvEvents *p = d;
  set_events(p, p->events & ~UV_READABLE);
}

static void add_write(void *d) {
  redisLibuvEvents *p = d;
  set_events(p, p->events | UV_WRITABLE);
}

static void del_write(void *d) {
  redisLibuvEvents *p = d;
  set_events(p, p->events & ~UV_WRITABLE);
}

static int connect_now(sip_redis *r) {
  redisAsyncContext *ac = redisAsyncConnect(r->host, r->port);
  if (!ac) {
    snprintf(r->err, sizeof r->err, "out of memory");
    return -1;
  }
  if (ac->err) {
    snprintf(r->err, sizeof r->err, "%s", ac->errstr);
    redisAsyncFree(ac);
    return -1;
  }
  if (redisLibuvAttach(ac, r->loop) != REDIS_OK) {
    snprintf(r->err, sizeof r->err, "cannot watch the connection");
    redisAsyncFree(ac);
    return -1;
  }
  /* an idle connection is not work for the loop */
  redisLibuvEvents *ev = ac->ev.data;
  uv_unref((uv_handle_t *)&ev->handle);
  ac->ev.addRead = add_read;
  ac->ev.delRead = del_read;
  ac->ev.addWrite = add_write;
  ac->ev.delWrite = del_write;
  ac->data = r;
  redisAsyncSetConnectCallback(ac, on_connect);
  redisAsyncSetDisconnectCallback(ac, on_disconnect);
  r->ac = ac;
  r->connected = 0;
  r->connect_deadline = now_ms(r) + r->connect_timeout;
  if (r->db != 0) {
    char db[16];
    snprintf(db, sizeof db, "%d", r->db);
    const char *argv[2] = {"SELECT", db};
    size_t lens[2] = {6, strlen(db)};
    redisAsyncCommandArgv(ac, on_select, r, 2, argv, lens);
  }
  watch(r);
  return 0;
}

int sip_redis_open(uv_loop_t *loop, const char *host, int port, int db,
                   uint64_t connect_timeout_ms, uint64_t timeout_ms,
                   sip_redis_cb cb, void *ud, sip_redis **out) {
  size_t hl = host ? strlen(host) : 0;
  if (hl == 0 || hl >= sizeof((sip_redis *)0)->host || port <= 0 ||
      port > 65535 || db < 0 || !connect_timeout_ms || !timeout_ms || !cb)
    return SIP_EINVAL;
  sip_redis *r = calloc(1, sizeof(*r));
  if (!r)
    return SIP_ENOMEM;
  r->timer = malloc(sizeof(*r->timer));
  if (!r->timer) {
    free(r);
    return SIP_ENOMEM;
  }
  r->loop = loop;
  r->cb = cb;
  r->ud = ud;
  r->pending.next = r->pending.prev = &r->pending;
  memcpy(r->host, host, hl + 1);
  r->port = port;
  r->db = db;
  r->connect_timeout = connect_timeout_ms;
  r->command_timeout = timeout_ms;
  uv_timer_init(loop, r->timer);
  r->timer->data = r;
  *out = r;
  return 0;
}

int sip_redis_command(sip_redis *r, int argc, const char **argv,
                      const size_t *argl, intptr_t tag) {
  if (r->closed || argc < 1)
    return SIP_EINVAL;
  if (!r->ac && connect_now(r) < 0)
    return SIP_EINVAL;
  rdreq *c = malloc(sizeof(*c));
  if (!c)
    return SIP_ENOMEM;
  c->r = r;
  c->tag = tag;
  c->deadline = now_ms(r) + r->command_timeout;
  if (redisAsyncCommandArgv(r->ac, on_reply, c, argc, argv, argl) != REDIS_OK) {
    free(c);
    drop(r, "connection lost");
    return SIP_EINVAL;
  }
  c->prev = r->pending.prev;
  c->next = &r->pending;
  r->pending.prev->next = c;
  r->pending.prev = c;
  r->npending++;
  watch(r);
  return 0;
}

int sip_redis_connected(const sip_redis *r) {
  return r->ac != NULL && r->connected;
}

const char *sip_redis_last_error(const sip_redis *r) {
  return r->err[0] ? r->err : NULL;
}

void sip_redis_close(sip_redis *r, int loop_alive, char *last_err, size_t cap) {
  if (!r || r->closed)
    return;
  r->closed = 1;
  drop(r, "closed");
  if (last_err && cap)
    snprintf(last_err, cap, "%s", r->err);
  r->timer->data = NULL;
  if (loop_alive)
    uv_close((uv_handle_t *)r->timer, on_timer_closed);
  else
    free(r->timer);
  free(r);
}
