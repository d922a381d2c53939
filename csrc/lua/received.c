/* A received message (luasip.Request / luasip.Response over the receive
 * buffer, with its transaction and source), the binding: made by
 * sip__lua_push_received for server.c, and its methods reply, drop,
 * answered, handled, is_cancelled, source, transport. Whether a reply may
 * go, and what it is, are csrc/tu's (sip_tu_uas_can_reply,
 * sip_tu_reply_parts, sip_tu_reply). */
#include <string.h>

#include "lserver.h"

/* owner: the sip_lua_rx itself (a userdata: it does not move) */
static void rx_release(void *owner) {
  sip_lua_rx *r = owner;
  if (r->px) {
    sip_proxy_ctx *c = r->px;
    r->px = NULL;
    sip_proxy_ctx_unref(c);
  }
  if (r->txn) {
    if (!r->final_status) /* collected unanswered: nobody will answer */
      sip_txn_abandon(r->txn);
    if (sip_txn_udata(r->txn) == r)
      sip_txn_set_udata(r->txn, NULL);
    sip_txn_unref(r->txn);
    r->txn = NULL;
  }
  sip_rxbuf_unref(r->rx);
}

unsigned sip__lua_rx_state(const sip_lua_rx *r) {
  return (r->final_status ? SIP_TU_UAS_FINAL : 0) |
         (r->dropped ? SIP_TU_UAS_DROPPED : 0) |
         (r->cancelled ? SIP_TU_UAS_CANCELLED : 0) |
         (r->px && sip_proxy_final_sent(r->px) ? SIP_TU_UAS_RELAYED : 0) |
         (!r->base.live || !r->srv->tp ? SIP_TU_UAS_CLOSED : 0);
}

sip_lua_rx *sip__lua_push_received(lua_State *L, int srvidx, sip_lua_server *s,
                                   sip_rxbuf *rx, const sip_src *src,
                                   sip_txn *t) {
  sip_lua_rx *r = (sip_lua_rx *)sip__lua_message_push(
      L, &rx->msg, sizeof(sip_lua_rx) - sizeof(sip_lua_msg), rx_release, NULL,
      rx->msg.is_request ? SIP_LUA_REQUEST : SIP_LUA_RESPONSE);
  /* the receive buffer (about 7 KB with its parsed message) is memory the
   * collector does not see: let it work as if it had been allocated, so
   * that garbage requests give their buffers back at the pace they come */
  lua_gc(L, LUA_GCSTEP, (int)((sizeof(*rx) + rx->len) >> 10));
  r->base.owner = r;
  sip_rxbuf_ref(rx);
  r->rx = rx;
  r->srv = s;
  if (src)
    r->src = *src;
  if (t) {
    sip_txn_ref(t);
    r->txn = t;
    sip_txn_set_udata(t, r);
  }
  lua_pushvalue(L, srvidx);
  lua_setiuservalue(L, -2, SIP_LUA_MSG_UV_OWNER);
  return r;
}

sip_lua_rx *sip__lua_check_received(lua_State *L, int idx, const char *what) {
  sip_lua_msg *u = sip__lua_message_check(L, idx);
  if (u->release != rx_release)
    luaL_error(L, "%s: not a message received by a luasip server", what);
  return (sip_lua_rx *)u;
}

void sip__lua_push_addr(lua_State *L, const struct sockaddr_storage *sa,
                        const char *hostk, const char *portk) {
  char host[64];
  sip_tp_addr_host(sa, host, sizeof host);
  lua_pushstring(L, host);
  lua_setfield(L, -2, hostk);
  lua_pushinteger(L, sip_tp_addr_port(sa));
  lua_setfield(L, -2, portk);
}

static sip_str opt_slice(lua_State *L, int idx) {
  size_t n;
  const char *p = luaL_optlstring(L, idx, NULL, &n);
  return (sip_str){p, p ? n : 0};
}

/* Send a reply to a received request whose checks (msg_reply's) passed:
 * the To tag chosen once per request, the final status recorded, a 2xx to
 * an INVITE over UDP kept for retransmission. Returns 0 or a negative code. */
int sip__lua_rx_reply(sip_lua_rx *r, int status, sip_str reason, sip_str extra,
                      sip_str body) {
  return sip__lua_rx_reply_flags(r, status, reason, extra, body,
                                 SIP_TU_RETRANSMIT);
}

int sip__lua_rx_reply_flags(sip_lua_rx *r, int status, sip_str reason,
                            sip_str extra, sip_str body, int flags) {
  if (!r->has_tag) {
    sip_tu_new_tag(r->to_tag);
    r->has_tag = 1;
  }
  if (status >= 200)
    r->final_status = (uint16_t)status;
  /* a 2xx to INVITE is re-sent until its ACK (§13.3.1.4, csrc/tu) */
  return sip_tu_reply(&r->srv->tu, r->txn, r->base.m, &r->src, status, reason,
                      (sip_str){r->to_tag, sizeof r->to_tag}, extra, body,
                      flags);
}

/* req:reply(status[, reason[, extra[, body]]]) -> true, or nil, err, name.
 * Stateless: builds the response (§8.2.6) and sends it per §18.2.2. extra:
 * complete header lines, each ending with CRLF. One final response per
 * request: a second one raises. On an ACK nothing is sent: nil, err
 * (counted as ack_replies). */
static int msg_reply(lua_State *L) {
  sip_lua_rx *r = sip__lua_check_received(L, 1, "reply");
  sip_msg *m = r->base.m;
  lua_Integer status = luaL_checkinteger(L, 2);
  luaL_argcheck(L, status >= 100 && status <= 699, 2, "status 100..699");
  sip_str reason = opt_slice(L, 3), extra = opt_slice(L, 4),
          body = opt_slice(L, 5);
  int bad = sip_tu_reply_parts(reason, extra);
  if (bad == SIP_TU_BAD_REASON)
    luaL_argerror(L, 3, "reason contains a control character");
  if (bad == SIP_TU_BAD_EXTRA)
    luaL_argerror(L, 4, "header lines must end with CRLF");
  switch (sip_tu_uas_can_reply(m, sip__lua_rx_state(r), (int)status)) {
  case SIP_TU_NOREPLY_RESPONSE:
    return luaL_error(L, "reply: a response cannot be answered");
  case SIP_TU_NOREPLY_ACK: /* a no-op, counted: a script answering every
                              request alike must not fail (or log) once per
                              stray ACK */
    r->srv->st.ack_replies++;
    return sip__lua_fail(L, SIP_EINVAL,
                         "reply: an ACK is not answered (§17.1.1.3)");
  case SIP_TU_NOREPLY_CANCELLED:
    return sip__lua_fail(L, SIP_EINVAL,
                         "reply: the request was cancelled (487 sent)");
  case SIP_TU_NOREPLY_ANSWERED:
    return luaL_error(L, "reply: the request was already answered with %d",
                      (int)r->final_status);
  case SIP_TU_NOREPLY_RELAYED:
    return sip__lua_fail(L, SIP_EINVAL,
                         "reply: a final response was relayed already");
  case SIP_TU_NOREPLY_CLOSED:
    return sip__lua_fail(L, UV_ECANCELED, "reply: the server is closed");
  }
  int rc = sip__lua_rx_reply(r, (int)status, reason, extra, body);
  if (rc < 0)
    return sip__lua_fail(L, rc, "reply: %s", sip_tp_strerror(rc));
  lua_pushboolean(L, 1);
  return 1;
}

/* msg:answered() -> the final status sent for this request, or false */
static int msg_answered(lua_State *L) {
  sip_lua_rx *r = sip__lua_check_received(L, 1, "answered");
  if (r->final_status)
    lua_pushinteger(L, r->final_status);
  else
    lua_pushboolean(L, 0);
  return 1;
}

/* msg:is_cancelled() -> true once a CANCEL ended this INVITE (the core
 * answered 487) */
static int msg_is_cancelled(lua_State *L) {
  lua_pushboolean(L, sip__lua_check_received(L, 1, "is_cancelled")->cancelled);
  return 1;
}

/* msg:drop(): the script deliberately leaves this request unanswered (no
 * default 500 when its handler ends). */
static int msg_drop(lua_State *L) {
  sip_lua_rx *r = sip__lua_check_received(L, 1, "drop");
  r->dropped = 1;
  if (r->txn && !r->final_status)
    sip_txn_abandon(r->txn);
  return 0;
}

/* msg:handled() -> true once a final reply was sent or drop() was called */
static int msg_handled(lua_State *L) {
  sip_lua_rx *r = sip__lua_check_received(L, 1, "handled");
  lua_pushboolean(
      L, (sip__lua_rx_state(r) &
          (SIP_TU_UAS_FINAL | SIP_TU_UAS_DROPPED | SIP_TU_UAS_RELAYED)) != 0);
  return 1;
}

/* msg:transport() -> "UDP", "TCP", "TLS", "WS" or "WSS": what the message
 * came over (nil as for source()); msg:source()'s transport without
 * building its table, for tests made on every message */
static int msg_transport(lua_State *L) {
  sip_lua_rx *r = sip__lua_check_received(L, 1, "transport");
  if (r->src.peer.ss_family == 0)
    lua_pushnil(L);
  else
    lua_pushstring(L, sip_tp_transport_name(r->src.transport));
  return 1;
}

/* msg:source() -> { transport = "UDP", host =, port =, local_host =,
 * local_port =, conn_id = (TCP/TLS) } */
static int msg_source(lua_State *L) {
  sip_lua_rx *r = sip__lua_check_received(L, 1, "source");
  if (r->src.peer.ss_family == 0) { /* a response to a client transaction */
    lua_pushnil(L);
    return 1;
  }
  lua_createtable(L, 0, 6);
  lua_pushstring(L, sip_tp_transport_name(r->src.transport));
  lua_setfield(L, -2, "transport");
  sip__lua_push_addr(L, &r->src.peer, "host", "port");
  if (r->src.transport == SIP_TP_UDP) {
    sip__lua_push_addr(L, &r->src.local, "local_host", "local_port");
  } else {
    lua_pushinteger(L, (lua_Integer)r->src.conn_id);
    lua_setfield(L, -2, "conn_id");
  }
  return 1;
}

static const luaL_Reg received_methods[] = {
    {"reply", msg_reply},
    {"answered", msg_answered},
    {"drop", msg_drop},
    {"handled", msg_handled},
    {"is_cancelled", msg_is_cancelled},
    {"source", msg_source},
    {"transport", msg_transport},
    {NULL, NULL},
};

void sip__lua_open_received(lua_State *L) {
  /* stack: core */
  lua_getfield(L, -1, "Request");
  luaL_setfuncs(L, received_methods, 0);
  lua_pop(L, 1);
  lua_getfield(L, -1, "Response"); /* a received response: where from */
  lua_pushcfunction(L, msg_source);
  lua_setfield(L, -2, "source");
  lua_pushcfunction(L, msg_transport);
  lua_setfield(L, -2, "transport");
  lua_pop(L, 1);
}
