/* luasip.Server, the binding: a transport manager (csrc/transport), a
 * transaction layer (csrc/txn) and the transaction user core (csrc/tu) on
 * the luasip loop, configured from Lua options, and the delivery of what
 * they hand up to Lua. The protocol work (dispatch and sanity rejects,
 * §8.2.6 replies, §9.2 CANCEL, the 2xx retransmission, next hop and Via of
 * srv:request, the client transactions, the 500 and 487 rules, the
 * options and counters) is csrc/tu's; this file decides only what Lua
 * sees. The methods of the received messages are received.c's.
 *
 * Path of a request: transport -> on_message -> sip_tu_receive -> the
 * transaction layer -> txl_on_request -> the Lua request handler with a
 * luasip.Request that wraps the received buffer (zero-copy: the message
 * keeps a reference on the sip_rxbuf). Every entry into Lua runs under the
 * one protected call (sip__lua_pcall); after a script error entry_failed
 * answers 500 by csrc/tu's one rule (sip_tu_uas_failed).
 *
 * A server stays alive while it is open, even when the script drops every
 * reference to it: an open listener must not vanish with a garbage
 * collection. close() releases it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lserver.h"
#include "sip_reply.h"
#include "sip_tu_config.h"

/* ---- logging and the protected call ------------------------------------ */

/* A line through the server's own sink (srv:set_log_handler), else the
 * loop's (sip__lua_log). */
static void srv_log(lua_State *L, int srvidx, const char *level,
                    const char *text) {
  srvidx = lua_absindex(L, srvidx);
  if (lua_getiuservalue(L, srvidx, SRV_UV_LOG) == LUA_TFUNCTION) {
    lua_pushstring(L, level);
    lua_pushstring(L, text);
    if (lua_pcall(L, 2, 0, 0) == LUA_OK)
      return;
    fprintf(stderr, "luasip: log handler failed: %s\n",
            lua_tostring(L, -1) ? lua_tostring(L, -1) : "?");
  }
  lua_pop(L, 1);
  sip__lua_log(L, level, text);
}

/* sip__lua_pcall (the one protected call, loop.c), counted for the
 * server too. The stack is left as it was below the function. */
static int protected_call(lua_State *L, int srvidx, int nargs) {
  sip_lua_server *s = lua_touserdata(L, srvidx);
  int rc = sip__lua_pcall(L, nargs, 0, NULL);
  if (rc != LUA_OK)
    s->st.script_errors++;
  return rc;
}

int sip__lua_srv_pcall(lua_State *L, int srvidx, int nargs) {
  return protected_call(L, srvidx, nargs);
}

/* ---- replies: the TU layer's (csrc/tu) ---------------------------------- */

/* A request no script saw answered from C (a new To tag). */
static void answer_plain(sip_lua_server *s, sip_txn *t, sip_msg *m,
                         const sip_src *src, int status, const char *reason) {
  char tag[SIP_TU_TAG_LEN];
  sip_tu_reply(&s->tu, t, m, src, status,
               (sip_str){reason, reason ? strlen(reason) : 0},
               sip_tu_new_tag(tag), SIP_STR_NULL, SIP_STR_NULL, 0);
}

/* ---- transport callbacks ------------------------------------------------- */

/* Every call from the loop into Lua goes through run_entry(): the work is
 * done by entry_body() inside lua_pcall, so that no error (a memory error
 * under the state's limit, a bug) can escape into libuv. When the body fails
 * before the handler ran, the request is answered 500 from C. */
enum entry_kind {
  ENTRY_MESSAGE = 1, /* from the transport, stateless server */
  ENTRY_REQUEST,     /* from the transaction layer: a new request */
  ENTRY_ACK,         /* from the transaction layer: an ACK for the TU */
  ENTRY_STRAY,       /* from the transaction layer: a stray response */
  ENTRY_CLIENT,      /* a response for a client transaction from Lua */
  ENTRY_LOG,         /* a log line from the transport (text in e->text) */
};

typedef struct entry {
  int kind;
  sip_lua_server *s;
  sip_msg *msg;
  sip_rxbuf *rx;
  const sip_src *src;
  sip_txn *t;
  struct client_ctx *client;
  int status;
  int handler_called; /* set just before the Lua handler is called */
  const char *text;   /* ENTRY_LOG */
  sip_lua_rx *r;      /* the request given to the handler (anchored) */
} entry;

static int entry_body(lua_State *L);

/* A received request whose script failed (an entry from C: entry_failed;
 * a handler coroutine or a Lua-side xpcall: core.script_failed): counted
 * for the server, and answered 500 (with the To tag of its other replies)
 * when csrc/tu's one rule says so (sip_tu_uas_failed). */
static void rx_failed(sip_lua_rx *r) {
  r->srv->st.script_errors++;
  if (sip_tu_uas_failed(r->base.m, sip__lua_rx_state(r)))
    sip__lua_rx_reply(r, 500, (sip_str){NULL, 0}, (sip_str){NULL, 0},
                      (sip_str){NULL, 0});
}

/* An entry from C whose protected call failed (the error was logged, with
 * its traceback, and counted by sip__lua_pcall): the request given to the
 * handler goes to rx_failed; one that failed before its handler was called
 * gets 500 here (a response or a client entry: nothing). */
static void entry_failed(lua_State *L, entry *e) {
  (void)L;
  sip_lua_server *s = e->s;
  sip_msg *m = e->msg;
  if (e->r && e->kind != ENTRY_CLIENT) {
    rx_failed(e->r);
    return;
  }
  s->st.script_errors++;
  if (e->kind != ENTRY_CLIENT && !e->handler_called &&
      sip_tu_uas_failed(m, s->tp ? 0 : SIP_TU_UAS_CLOSED))
    answer_plain(s, e->t, m, e->src, 500, NULL);
}

static void run_entry(entry *e) {
  lua_State *L = e->s->lp->L;
  if (!L || !e->s->tp)
    return;
  int top = lua_gettop(L);
  if (!lua_checkstack(L, 8))
    return;
  lua_pushcfunction(L, entry_body);
  lua_pushlightuserdata(L, e);
  if (sip__lua_pcall(L, 1, 0, NULL) != LUA_OK)
    entry_failed(L, e);
  if (e->r) { /* the request's anchor (see deliver) */
    lua_pushnil(L);
    lua_rawsetp(L, LUA_REGISTRYINDEX, e);
  }
  lua_settop(L, top);
}

/* §9.2 for a UAS: the CANCEL gets 200 (481 when it matches nothing), and an
 * INVITE still without a final response gets 487. */
static void auto_cancel(sip_lua_server *s, sip_txn *t, sip_msg *msg,
                        const sip_src *src) {
  sip_txn *inv = sip_tu_cancel(&s->tu, t, msg, src);
  if (!inv)
    return;
  sip_lua_rx *r = sip_txn_udata(inv);
  /* §16.10: a proxied INVITE's pending branches are cancelled; their 487
   * ends the round and goes upstream */
  if (r && r->px && sip_proxy_cancel(r->px))
    return;
  if (r && sip_tu_uas_cancels(sip__lua_rx_state(r))) {
    r->cancelled = 1; /* over inv: r's transaction */
    sip__lua_rx_reply_flags(r, 487, SIP_STR_NULL, SIP_STR_NULL, SIP_STR_NULL,
                            0);
  }
}

/* A request (with its server transaction, NULL when stateless or for an
 * ACK) or a response for the Lua handlers. The server is at index top. */
static void deliver(lua_State *L, int top, sip_lua_server *s, entry *e,
                    sip_txn *t) {
  sip_msg *msg = e->msg;
  const sip_src *src = e->src;
  int uv = msg->is_request ? SRV_UV_REQUEST : SRV_UV_RESPONSE;
  if (lua_getiuservalue(L, top, uv) != LUA_TFUNCTION) {
    lua_settop(L, top);
    e->handler_called = 1; /* answered here */
    if (!msg->is_request)
      s->st.responses_dropped++;
    else if (!sip_tu_is_ack(msg))
      answer_plain(s, t, msg, src, 503,
                   "Service Unavailable (no request handler)");
    return;
  }
  sip_lua_rx *r = sip__lua_push_received(L, top, s, e->rx, src, t);
  if (msg->is_request) {
    /* anchored until run_entry is done: an error in the handler unwinds
     * this stack, and entry_failed still needs the request */
    lua_pushvalue(L, -1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, e);
    e->r = r;
  }
  e->handler_called = 1;
  lua_call(L, 1, 0); /* an error goes to run_entry's protected call */
  lua_settop(L, top);
}

/* ---- transaction layer callbacks ----------------------------------------- */

static void txl_on_request(void *ud, sip_txn *t, sip_msg *msg, sip_rxbuf *rx,
                           const sip_src *src) {
  srv_bridge *b = ud;
  if (!b->srv)
    return;
  entry e = {.kind = ENTRY_REQUEST,
             .s = b->srv,
             .msg = msg,
             .rx = rx,
             .src = src,
             .t = t};
  run_entry(&e);
}

static void txl_on_ack(void *ud, sip_txn *t, sip_msg *msg, sip_rxbuf *rx,
                       const sip_src *src) {
  srv_bridge *b = ud;
  if (!b->srv)
    return;
  sip_tu_ack(&b->srv->tu, t, msg);
  entry e = {.kind = ENTRY_ACK, .s = b->srv, .msg = msg, .rx = rx, .src = src};
  run_entry(&e);
}

static void txl_on_stray(void *ud, sip_msg *msg, sip_rxbuf *rx,
                         const sip_src *src) {
  srv_bridge *b = ud;
  if (!b->srv)
    return;
  /* a response to a request this proxy forwarded (statelessly, or after
   * its client transaction ended): along the next Via (§16.11) */
  if (b->srv->px && sip_proxy_forward_response(b->srv->px, msg) != 0)
    return;
  entry e = {
      .kind = ENTRY_STRAY, .s = b->srv, .msg = msg, .rx = rx, .src = src};
  run_entry(&e);
}

/* ---- transport callbacks --------------------------------------------------
 */

static void on_message(void *ud, sip_msg *msg, sip_rxbuf *rx,
                       const sip_src *src) {
  srv_bridge *b = ud;
  sip_lua_server *s = b->srv;
  if (!s || !s->lp->L)
    return;
  /* counted, checked, to the transaction layer (csrc/tu); a stateless
   * server gets it back */
  if (!sip_tu_receive(&s->tu, msg, rx, src))
    return;
  if (!msg->is_request && s->px && sip_proxy_forward_response(s->px, msg))
    return;
  entry e = {.kind = ENTRY_MESSAGE, .s = s, .msg = msg, .rx = rx, .src = src};
  run_entry(&e);
}

static void on_bad(void *ud, int err, const char *errtext, sip_rxbuf *rx,
                   const sip_src *src) {
  (void)errtext;
  sip_lua_server *s = ((srv_bridge *)ud)->srv;
  if (s)
    sip_tu_bad(&s->tu, err, rx, src);
}

/* A connection closed: a refused certificate (ours refusing the peer's, or
 * a client's refused by verify_client) is a warning in the log, with the
 * transport's text (peer, name checked, reason, verification error). */
static void on_conn(void *ud, uint64_t conn_id, int event, int err,
                    const char *text) {
  (void)conn_id;
  sip_lua_server *s = ((srv_bridge *)ud)->srv;
  if (!s || event != SIP_TP_CONN_CLOSE || err != SIP_ECERT)
    return;
  entry e = {.kind = ENTRY_LOG, .s = s, .text = text};
  run_entry(&e);
}

static void bridge_free(void *arg) { free(arg); }

/* ---- construction ---------------------------------------------------------
 */

static sip_lua_server *check_server(lua_State *L, int idx) {
  sip_lua_server *s = luaL_checkudata(L, idx, SIP_LUA_SERVER);
  if (!s->tp)
    luaL_error(L, "attempt to use a closed " SIP_LUA_SERVER);
  return s;
}

static const char *opt_str(lua_State *L, int t, const char *k) {
  if (lua_getfield(L, t, k) == LUA_TNIL) {
    lua_pop(L, 1);
    return NULL;
  }
  const char *v = lua_tostring(L, -1);
  if (!v)
    luaL_error(L, "option %s must be a string", k);
  lua_pop(L, 1); /* still referenced by the options table during new() */
  return v;
}

static int opt_bool(lua_State *L, int t, const char *k, int def) {
  int ty = lua_getfield(L, t, k);
  int v = ty == LUA_TNIL ? def : lua_toboolean(L, -1);
  if (ty != LUA_TNIL && ty != LUA_TBOOLEAN)
    luaL_error(L, "option %s must be a boolean", k);
  lua_pop(L, 1);
  return v;
}

/* Option o (csrc/tu: sip_tu_config.h) from the table at t into cfg when
 * present; raises when it is not of its type or range. */
static void read_option(lua_State *L, int t, const sip_tu_option *o,
                        sip_tu_config *cfg) {
  int ty = lua_getfield(L, t, o->name), isnum;
  if (ty != LUA_TNIL && o->kind == SIP_TU_OPT_INT) {
    lua_Integer v = lua_tointegerx(L, -1, &isnum);
    if (!isnum || sip_tu_config_set(cfg, o, v) < 0)
      luaL_error(L, "option %s must be an integer in %I..%I", o->name,
                 (lua_Integer)o->lo, (lua_Integer)o->hi);
  } else if (ty != LUA_TNIL) {
    if (ty != LUA_TBOOLEAN)
      luaL_error(L, "option %s must be a boolean", o->name);
    sip_tu_config_set(cfg, o, lua_toboolean(L, -1));
  }
  lua_pop(L, 1);
}

/* A list of strings into out[] (NULL-terminated); the strings are kept
 * alive in the table at keep (they are interned Lua strings). Returns 0
 * when there is no such list. */
static int string_list(lua_State *L, int t, const char *k, const char **out,
                       int keep) {
  if (lua_getfield(L, t, k) == LUA_TNIL) {
    lua_pop(L, 1);
    return 0;
  }
  luaL_argexpected(L, lua_istable(L, -1), 1, "a list of strings");
  int n = (int)luaL_len(L, -1);
  if (n > MAX_TAGS)
    luaL_error(L, "sanity.%s: at most %d entries", k, MAX_TAGS);
  for (int i = 1; i <= n; i++) {
    lua_rawgeti(L, -1, i);
    const char *v = lua_tostring(L, -1);
    if (!v || lua_type(L, -1) != LUA_TSTRING)
      luaL_error(L, "sanity.%s[%d] must be a string", k, i);
    out[i - 1] = v;
    lua_rawseti(L, keep, (lua_Integer)luaL_len(L, keep) + 1);
  }
  out[n] = NULL;
  lua_pop(L, 1);
  return 1;
}

/* sanity = false | { version = bool, ..., supported = {...},
 * schemes = {...} } */
static void configure_sanity(lua_State *L, sip_lua_server *s,
                             sip_tu_config *cfg, int keep) {
  int ty = lua_getfield(L, 1, "sanity");
  if (ty == LUA_TBOOLEAN && !lua_toboolean(L, -1))
    cfg->sanity.checks = 0;
  else if (ty != LUA_TNIL && ty != LUA_TBOOLEAN && ty != LUA_TTABLE)
    luaL_error(L, "option sanity must be a table or a boolean");
  if (ty != LUA_TTABLE) {
    lua_pop(L, 1);
    return;
  }
  int t = lua_gettop(L);
  const sip_tu_option *o;
  for (int i = 0; (o = sip_tu_option_at(i)); i++)
    if (o->kind == SIP_TU_OPT_CHECK)
      read_option(L, t, o, cfg);
  if (string_list(L, t, "supported", s->supported, keep))
    cfg->sanity.supported = s->supported;
  if (string_list(L, t, "schemes", s->schemes, keep))
    cfg->sanity.schemes = s->schemes;
  lua_pop(L, 1);
}

/* A header option (which: 'S' Server, 'U' User-Agent) of opts (index 1):
 * a string, or nil / false for none; raises when csrc/tu refuses it. */
static void header_option(lua_State *L, const char *k, int which,
                          sip_tu_config *cfg) {
  int ty = lua_getfield(L, 1, k), rc = 0;
  size_t n = 0;
  const char *v = ty == LUA_TSTRING ? lua_tolstring(L, -1, &n) : NULL;
  if (v)
    rc = sip_tu_config_header(cfg, which, v, n);
  else if (ty != LUA_TNIL && (ty != LUA_TBOOLEAN || lua_toboolean(L, -1)))
    rc = SIP_ERANGE;
  if (rc == SIP_EINVAL)
    luaL_error(L, "option %s: control characters are not allowed", k);
  if (rc < 0)
    luaL_error(L, "option %s must be false or a string of 1 to %d bytes", k,
               SIP_TU_HEADER_MAX);
  lua_pop(L, 1);
}

/* core.server(opts) -> server, or nil, err, name. opts: the options of
 * csrc/tu's sip_tu_config (limits, timers, transactions, auto_cancel,
 * force_rport, sanity: see configure_sanity), ws_origins, http_root,
 * server_header, user_agent, tls = { cert, key, ca, verify_peer,
 * verify_client }, flood (flood.c). Listeners are added with
 * server:listen(). */
static int l_server(lua_State *L) {
  if (lua_isnoneornil(L, 1)) {
    lua_settop(L, 0);
    lua_newtable(L);
  }
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  sip_lua_loop *lp = sip__lua_loop(L);

  sip_tu_config cfg;
  sip_tu_config_init(&cfg);
  const sip_tu_option *o;
  for (int i = 0; (o = sip_tu_option_at(i)); i++)
    if (o->kind != SIP_TU_OPT_CHECK)
      read_option(L, 1, o, &cfg);
  cfg.tp.ws_origins = opt_str(L, 1, "ws_origins"); /* WebSocket (ws.c) */
  cfg.tp.http_root = opt_str(L, 1, "http_root");
  if (lua_getfield(L, 1, "tls") != LUA_TNIL) {
    luaL_argexpected(L, lua_istable(L, -1), 1, "opts.tls: a table");
    int t = lua_gettop(L);
    cfg.tp.tls_cert_file = opt_str(L, t, "cert");
    cfg.tp.tls_key_file = opt_str(L, t, "key");
    cfg.tp.tls_ca_file = opt_str(L, t, "ca");
    cfg.tp.tls_verify_peer =
        opt_bool(L, t, "verify_peer", cfg.tp.tls_verify_peer);
    cfg.tp.tls_verify_client =
        opt_bool(L, t, "verify_client", cfg.tp.tls_verify_client);
  }
  lua_pop(L, 1); /* the tls table stays referenced by opts (index 1) */
  header_option(L, "server_header", 'S', &cfg);
  header_option(L, "user_agent", 'U', &cfg);

  sip_lua_server *s = lua_newuserdatauv(L, sizeof(*s), SRV_NUV);
  memset(s, 0, sizeof(*s));
  sip_tu_init(&s->tu, NULL, NULL); /* tp and txl once they exist */
  s->self_ref = LUA_NOREF;
  s->lp = lp;
  luaL_setmetatable(L, SIP_LUA_SERVER);
  int sidx = lua_gettop(L);
  sip__lua_push_loop(L);
  lua_setiuservalue(L, sidx, SRV_UV_LOOP);
  lua_newtable(L);
  configure_sanity(L, s, &cfg, lua_gettop(L));
  lua_setiuservalue(L, sidx, SRV_UV_SANITY);

  s->bridge = calloc(1, sizeof(*s->bridge));
  if (!s->bridge)
    return luaL_error(L, "not enough memory");
  cfg.tp.ud = s->bridge;
  cfg.tp.on_message = on_message;
  cfg.tp.on_bad = on_bad;
  cfg.tp.on_conn = on_conn;
  char err[256] = "";
  int rc = sip_tp_new(&lp->loop, &cfg.tp, &s->tp, err, sizeof err);
  if (rc < 0) {
    free(s->bridge);
    s->bridge = NULL;
    s->tp = NULL;
    return sip__lua_fail(L, rc, "%s%s%s", sip_tp_strerror(rc),
                         err[0] ? ": " : "", err);
  }
  sip__lua_dns_attach(lp, s->tp); /* responses to a Via host name */
  if (cfg.transactions) {
    cfg.txl.ud = s->bridge;
    cfg.txl.on_request = txl_on_request;
    cfg.txl.on_ack = txl_on_ack;
    cfg.txl.on_stray_response = txl_on_stray;
    rc = sip_txl_new(&lp->loop, s->tp, &cfg.txl, &s->txl);
    if (rc < 0) {
      sip_tp_close(s->tp, bridge_free, s->bridge);
      s->tp = NULL;
      s->bridge = NULL;
      return sip__lua_fail(L, rc, "transactions: %s", sip_tp_strerror(rc));
    }
    s->auto_cancel = cfg.auto_cancel;
  }
  s->tu.tp = s->tp;
  s->tu.txl = s->txl;
  sip_tu_configure(&s->tu, &cfg);
  if (sip_proxy_new(&lp->loop, s->tp, s->txl, &s->px) < 0) {
    if (s->txl)
      sip_txl_close(s->txl, NULL, NULL);
    s->txl = NULL;
    sip_tp_close(s->tp, bridge_free, s->bridge);
    s->tp = NULL;
    s->bridge = NULL;
    return luaL_error(L, "not enough memory");
  }
  s->bridge->srv = s;
  lua_pushvalue(L, sidx);
  s->self_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  sip__lua_flood_configure(L, 1, s, sidx);
  lua_settop(L, sidx);
  return 1;
}

/* ---- client transactions ---------------------------------------------------
 */

/* csrc/tu is done with c (its transaction ended, or the server closed:
 * then server_close dropped the reference already) */
static void client_end(sip_tu_client *base) {
  client_ctx *c = (client_ctx *)base;
  lua_State *L = c->srv->lp->L;
  if (L)
    luaL_unref(L, LUA_REGISTRYINDEX, c->fn_ref);
  free(c);
}

/* fn(status, response or nil) for every response the transaction reports;
 * nil with 408 / 503 when the layer made the status up. */
static void on_client_response(sip_tu_client *base, int status, sip_msg *msg,
                               sip_rxbuf *rx) {
  client_ctx *c = (client_ctx *)base;
  entry e = {.kind = ENTRY_CLIENT,
             .s = c->srv,
             .msg = msg,
             .rx = rx,
             .t = base->t,
             .client = c,
             .status = status};
  run_entry(&e);
}

/* The work of run_entry(), under lua_pcall: the entry is argument 1. */
static int entry_body(lua_State *L) {
  entry *e = lua_touserdata(L, 1);
  sip_lua_server *s = e->s;
  lua_settop(L, 0);
  lua_rawgeti(L, LUA_REGISTRYINDEX, s->self_ref);
  int top = lua_gettop(L);
  switch (e->kind) {
  case ENTRY_REQUEST:
    if (s->auto_cancel && sip_tu_is_method(e->msg, "CANCEL")) {
      e->handler_called = 1; /* answered here, in C */
      auto_cancel(s, e->t, e->msg, e->src);
      break;
    }
    deliver(L, top, s, e, e->t);
    break;
  case ENTRY_MESSAGE:
  case ENTRY_ACK:
  case ENTRY_STRAY:
    deliver(L, top, s, e, NULL);
    break;
  case ENTRY_CLIENT: {
    client_ctx *c = e->client;
    lua_rawgeti(L, LUA_REGISTRYINDEX, c->fn_ref);
    lua_pushinteger(L, e->status);
    if (e->rx) {
      sip_lua_rx *r = sip__lua_push_received(L, top, s, e->rx, NULL, NULL);
      r->src.transport = c->base.transport;
    } else {
      lua_pushnil(L);
    }
    e->handler_called = 1;
    protected_call(L, top, 2);
    break;
  }
  case ENTRY_LOG:
    srv_log(L, top, "warn", e->text);
    break;
  }
  return 0;
}

/* Where a request goes by itself: the first Route when it is a loose
 * router (§8.1.2), else the Request-URI. */
/* server:request(msg, dest, fn [, tls_name]) -> branch, or nil, err, name.
 * Starts a client transaction for msg (a request, not ACK), sent to dest
 * ("udp:127.0.0.1:5070"; nil: the next hop from Route / Request-URI) with
 * a new top Via naming the listener it leaves from. msg itself is not
 * changed. tls_name: with a TLS dest, the name its certificate must carry
 * (RFC 5922: the domain of the URI a DNS target came from); without it the
 * address is verified.
 * Without dest and without a transport in the next hop's URI, §18.1.1
 * decides on the real size: a request larger than 1300 bytes for UDP goes
 * over TCP, and over UDP after all when the connection fails.
 * fn(status, res) gets the responses (see on_client_response). */
static int srv_request(lua_State *L) {
  sip_lua_server *s = check_server(L, 1);
  sip_msg *m = sip__lua_message_check(L, 2)->m;
  const char *spec = luaL_optstring(L, 3, NULL);
  luaL_checktype(L, 4, LUA_TFUNCTION);
  const char *tls_name = luaL_optstring(L, 5, NULL);
  if (!s->txl)
    return luaL_error(L, "request: the server has no transaction layer "
                         "(created with transactions = false)");
  if (!m->is_request || sip_tu_is_ack(m))
    return luaL_error(L, "request: needs a request other than ACK");
  sip_dest d;
  char name[256];
  int rc = sip_tu_request_dest(m, spec, tls_name, &d, name, sizeof name);
  if (rc < 0 && spec)
    return sip__lua_fail(L, rc, "request: bad destination %s", spec);
  if (rc < 0)
    return sip__lua_fail(
        L, rc, "request: no next hop: %s%s", sip_tp_strerror(rc),
        rc == UV_EAI_NONAME ? " (a host name: no DNS yet)" : "");
  client_ctx *c = calloc(1, sizeof(*c));
  if (!c)
    return luaL_error(L, "not enough memory");
  char branch[SIP_TXN_BRANCH_SIZE];
  c->base.on_response = on_client_response;
  c->base.on_end = client_end;
  c->srv = s;
  c->fn_ref = LUA_NOREF;
  rc = sip_tu_client_start(&s->tu, &c->base, m, &d, branch);
  if (rc < 0)
    free(c);
  if (rc == UV_EAFNOSUPPORT)
    return sip__lua_fail(L, rc, "request: no %s listener for %s",
                         sip_tp_transport_name(d.transport),
                         d.addr.ss_family == AF_INET6 ? "IPv6" : "IPv4");
  if (rc == SIP_ENOMEM)
    return luaL_error(L, "not enough memory");
  if (rc == SIP_EINVAL)
    return sip__lua_fail(L, rc, "request: cannot serialize");
  if (rc < 0)
    return sip__lua_fail(L, rc, "request: %s", sip_tp_strerror(rc));
  lua_pushvalue(L, 4);
  c->fn_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_pushstring(L, branch);
  return 1;
}

/* server:cancel(msg, branch) -> true, or nil, err, name. §9.1: CANCEL the
 * INVITE msg that server:request started with branch (csrc/tu builds and
 * sends it); the INVITE's own callback then gets its final response (487
 * usually). Send it once a provisional response came (§9.1). */
static int srv_cancel(lua_State *L) {
  sip_lua_server *s = check_server(L, 1);
  sip_msg *m = sip__lua_message_check(L, 2)->m;
  const char *branch = luaL_checkstring(L, 3);
  if (!sip_tu_is_method(m, "INVITE"))
    return luaL_error(L, "cancel: needs the INVITE that was sent");
  sip_tu_client *c = sip_tu_client_find(&s->tu, branch, strlen(branch));
  if (!c)
    return sip__lua_fail(L, SIP_ENOTFOUND,
                         "cancel: no such INVITE in progress");
  int rc = sip_tu_cancel_request(&s->tu, c->t, m, branch);
  if (rc < 0)
    return sip__lua_fail(L, rc, "cancel: %s", sip_tp_strerror(rc));
  lua_pushboolean(L, 1);
  return 1;
}

static void server_close(lua_State *L, sip_lua_server *s) {
  if (!s->tp)
    return;
  s->bridge->srv = NULL;
  if (s->px)
    sip_proxy_close(s->px); /* before the transactions it references */
  s->px = NULL;
  sip__lua_dialogs_close(L, s);
  for (sip_tu_client *c = s->tu.clients; c; c = c->next) {
    luaL_unref(L, LUA_REGISTRYINDEX, ((client_ctx *)c)->fn_ref);
    ((client_ctx *)c)->fn_ref = LUA_NOREF;
  }
  sip_tu_close(&s->tu); /* while its transactions are alive; client_end */
  if (s->txl)
    sip_txl_close(s->txl, NULL, NULL); /* silent: no more callbacks */
  s->txl = NULL;
  sip_tp_close(s->tp, bridge_free, s->bridge);
  s->tp = NULL;
  s->bridge = NULL;
  luaL_unref(L, LUA_REGISTRYINDEX, s->self_ref);
  s->self_ref = LUA_NOREF;
}

/* server:close(): listeners and connections closed (asynchronously: the
 * loop finishes it). Safe to call twice. */
static int srv_close(lua_State *L) {
  sip_lua_server *s = luaL_checkudata(L, 1, SIP_LUA_SERVER);
  if (!s->tp || s->closing)
    return 0;
  /* srv:send() calls still waiting get a 503 (§8.1.3.1: the transport is
   * gone) before the transaction layer closes silently */
  s->closing = 1;
  lua_settop(L, 1);
  for (sip_tu_client *c = s->tu.clients; c; c = c->next) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, ((client_ctx *)c)->fn_ref);
    lua_pushinteger(L, 503);
    lua_pushnil(L);
    protected_call(L, 1, 2);
  }
  server_close(L, s);
  return 0;
}

static int srv_is_closed(lua_State *L) {
  sip_lua_server *s = luaL_checkudata(L, 1, SIP_LUA_SERVER);
  lua_pushboolean(L, s->tp == NULL);
  return 1;
}

/* server:set_trace(on): every message in and out to stderr (--trace) */
static int srv_set_trace(lua_State *L) {
  sip_lua_server *s = check_server(L, 1);
  sip_tp_set_trace(s->tp, lua_toboolean(L, 2) ? stderr : NULL);
  lua_settop(L, 1);
  return 1;
}

/* server:listen("udp:127.0.0.1:5060") -> id, or nil, err, name */
static int srv_listen(lua_State *L) {
  sip_lua_server *s = check_server(L, 1);
  const char *spec = luaL_checkstring(L, 2);
  int rc = sip_tp_listen(s->tp, spec);
  if (rc >= 0 && s->px)
    sip_proxy_update_listeners(s->px);
  if (rc < 0) {
    const char *detail = sip_tp_last_error(s->tp);
    return sip__lua_fail(L, rc, "listen %s: %s%s%s", spec, sip_tp_strerror(rc),
                         detail[0] ? ": " : "", detail);
  }
  lua_pushinteger(L, rc);
  return 1;
}

/* server:listener(id) -> { transport = "UDP", host = "127.0.0.1",
 * port = 5060 } or nil when there is no such listener. */
static int srv_listener(lua_State *L) {
  sip_lua_server *s = check_server(L, 1);
  int id = (int)luaL_checkinteger(L, 2);
  struct sockaddr_storage sa;
  int tr = sip_tp_listener_addr(s->tp, id, &sa);
  if (tr < 0) {
    lua_pushnil(L);
    return 1;
  }
  lua_createtable(L, 0, 3);
  lua_pushstring(L, sip_tp_transport_name(tr));
  lua_setfield(L, -2, "transport");
  sip__lua_push_addr(L, &sa, "host", "port");
  return 1;
}

static int set_handler(lua_State *L, int uv) {
  check_server(L, 1);
  if (!lua_isnil(L, 2))
    luaL_checktype(L, 2, LUA_TFUNCTION);
  lua_settop(L, 2);
  lua_setiuservalue(L, 1, uv);
  return 0;
}

/* server:set_request_handler(fn | nil): fn(req) for every request that
 * passed the sanity checks. Without one, requests get 503. */
static int srv_set_request_handler(lua_State *L) {
  return set_handler(L, SRV_UV_REQUEST);
}

/* server:set_response_handler(fn | nil): fn(res) for received responses. */
static int srv_set_response_handler(lua_State *L) {
  return set_handler(L, SRV_UV_RESPONSE);
}

/* server:set_log_handler(fn | nil): fn(level, text) for errors the server
 * reports (script errors with their traceback). Default: stderr. */
static int srv_set_log_handler(lua_State *L) {
  return set_handler(L, SRV_UV_LOG);
}

#define SET_COUNTER(name, value)                                               \
  do {                                                                         \
    lua_pushinteger(L, (lua_Integer)(value));                                  \
    lua_setfield(L, -2, name);                                                 \
  } while (0)

/* server:stats() -> table of counters: every layer's (csrc/tu:
 * sip_tu_stats), the proxy's, the flood guard's and the binding's. */
static int srv_stats(lua_State *L) {
  sip_lua_server *s = check_server(L, 1);
  sip_tu_stat st[SIP_TU_STATS_MAX];
  int n = sip_tu_stats(&s->tu, st, SIP_TU_STATS_MAX);
  lua_createtable(L, 0, n + 24);
  for (int i = 0; i < n; i++)
    SET_COUNTER(st[i].name, st[i].value);
  if (s->px)
    sip__lua_proxy_stats(L, s);
  sip__lua_flood_stats(L, s);
  SET_COUNTER("responses_dropped", s->st.responses_dropped);
  SET_COUNTER("script_errors", s->st.script_errors);
  SET_COUNTER("ack_replies", s->st.ack_replies);
  return 1;
}

static int srv_gc(lua_State *L) {
  server_close(L, luaL_checkudata(L, 1, SIP_LUA_SERVER));
  return 0;
}

static int srv_tostring(lua_State *L) {
  sip_lua_server *s = luaL_checkudata(L, 1, SIP_LUA_SERVER);
  lua_pushfstring(L, SIP_LUA_SERVER " (%s%p)", s->tp ? "" : "closed, ",
                  (void *)s);
  return 1;
}

/* ---- methods of received messages ------------------------------------------
 */

/* core.script_failed(req): a received request whose script failed (the
 * error already went to core.script_error): rx_failed's 500 decision. */
static int l_script_failed(lua_State *L) {
  rx_failed(sip__lua_check_received(L, 1, "script_failed"));
  return 0;
}

static const luaL_Reg srv_methods[] = {
    {"listen", srv_listen},
    {"listener", srv_listener},
    {"request", srv_request},
    {"cancel", srv_cancel},
    {"set_request_handler", srv_set_request_handler},
    {"set_response_handler", srv_set_response_handler},
    {"set_log_handler", srv_set_log_handler},
    {"set_trace", srv_set_trace},
    {"stats", srv_stats},
    {"close", srv_close},
    {"is_closed", srv_is_closed},
    {NULL, NULL},
};

static const luaL_Reg srv_meta[] = {
    {"__gc", srv_gc},
    {"__close", srv_gc},
    {"__tostring", srv_tostring},
    {NULL, NULL},
};

void sip__lua_open_server(lua_State *L) {
  /* stack: core */
  luaL_newmetatable(L, SIP_LUA_SERVER);
  luaL_setfuncs(L, srv_meta, 0);
  luaL_newlib(L, srv_methods);
  lua_pushvalue(L, -1);
  lua_setfield(L, -4, "Server"); /* core.Server: extensible by the Lua layer */
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
  sip__lua_open_received(L);
  lua_getfield(L, -1, "Request");
  sip__lua_open_proxy(L);
  lua_pop(L, 1);
  sip__lua_open_flood(L);
  sip__lua_open_keepalive(L);
  sip__lua_open_dialog(L);
  lua_pushcfunction(L, l_server);
  lua_setfield(L, -2, "server");
  lua_pushcfunction(L, l_script_failed);
  lua_setfield(L, -2, "script_failed");
}
