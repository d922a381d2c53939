/* Internal header of the server binding (csrc/lua/server.c) shared with the
 * proxy binding (csrc/lua/proxy.c): the server userdata and the received
 * message. Only csrc/lua includes it. */
#ifndef SIP_LUA_LSERVER_H
#define SIP_LUA_LSERVER_H

#include "lsip.h"
#include "sip_dialog.h"
#include "sip_proxy.h"
#include "sip_sanity.h"
#include "sip_transport.h"
#include "sip_tu.h"
#include "sip_txn.h"

/* User values of the server userdata. */
enum {
  SRV_UV_LOOP = 1, /* the loop userdata: finalized after the server */
  SRV_UV_REQUEST,  /* function(req): the request handler */
  SRV_UV_RESPONSE, /* function(res): responses (nil: dropped, counted) */
  SRV_UV_LOG,      /* function(level, text): log sink (nil: stderr) */
  SRV_UV_SANITY,   /* strings the sanity configuration points into */
  SRV_NUV = SRV_UV_SANITY
};

#define MAX_TAGS 32

/* The binding's own counters; the protocol's are the TU layer's
 * (sip_tu_counters) and the transaction layer's. */
typedef struct srv_counters {
  uint64_t responses_dropped; /* no response handler */
  uint64_t script_errors;
  uint64_t ack_replies; /* req:reply() on an ACK: nothing sent */
} srv_counters;

/* The transport's callbacks get this, not the server: it outlives a server
 * that the garbage collector frees while the transport is still closing. */
typedef struct srv_bridge {
  struct sip_lua_server *srv; /* NULL once the server is closed */
} srv_bridge;

/* A client transaction started from Lua (tracked by csrc/tu): the
 * function that gets its responses (a registry reference) until the
 * transaction terminates. */
typedef struct client_ctx {
  sip_tu_client base; /* first: in tu.clients */
  struct sip_lua_server *srv;
  int fn_ref;
} client_ctx;

typedef struct sip_lua_server {
  sip_tp *tp;
  sip_txl *txl; /* NULL: stateless (transactions = false) */
  int auto_cancel;
  int closing; /* inside close(): no second one */
  sip_lua_loop *lp;
  srv_bridge *bridge;
  int self_ref; /* registry reference while open */
  /* the transaction user core (csrc/tu): dispatch, sanity configuration,
   * replies, CANCEL, 2xx retransmission, the Server / User-Agent lines of
   * what luasip originates (options server_header, user_agent), counters */
  sip_tu tu;
  const char *supported[MAX_TAGS + 1]; /* tu.sanity points into these */
  const char *schemes[MAX_TAGS + 1];
  srv_counters st;
  sip_proxy *px;       /* the proxy core (NULL once closed) */
  sip_dialogs dialogs; /* dialog.c: the UA's dialogs (empty until used) */
} sip_lua_server;

/* A received request or response: the message plus where it came from. */
typedef struct sip_lua_rx {
  sip_lua_msg base; /* first: a luasip.Message */
  sip_lua_server *srv;
  sip_rxbuf *rx;
  sip_txn *txn; /* the server transaction (a reference), or NULL */
  sip_src src;
  uint16_t final_status; /* a final reply was sent */
  uint8_t dropped;       /* the script chose not to answer */
  uint8_t cancelled;     /* a CANCEL ended it (487 sent) */
  uint8_t has_tag;
  char to_tag[16];
  uint8_t routed; /* §16.4 done (req:loose_route) */
  uint8_t route_flags;
  uint8_t rr;         /* req:record_route() */
  char rr_params[48]; /* its parameters (";a=b") */
  sip_proxy_ctx *px;  /* response context (a reference), NULL until relay */
} sip_lua_rx;

/* received.c (the received message), for server.c, proxy.c and the rest */
/* Push a received message (request with its transaction t, or a response:
 * t NULL) for server s whose userdata is at srvidx. */
sip_lua_rx *sip__lua_push_received(lua_State *L, int srvidx, sip_lua_server *s,
                                   sip_rxbuf *rx, const sip_src *src,
                                   sip_txn *t);
/* Send a reply to a received request (msg_reply once its checks passed;
 * the registrar's fast path). Returns 0 or a negative code. */
int sip__lua_rx_reply(sip_lua_rx *r, int status, sip_str reason, sip_str extra,
                      sip_str body);
/* The same with sip_tu_reply flags (SIP_TU_RELIABLE: a reliable 1xx). */
int sip__lua_rx_reply_flags(sip_lua_rx *r, int status, sip_str reason,
                            sip_str extra, sip_str body, int flags);
/* What became of r (SIP_TU_UAS_* bits), for csrc/tu's decisions. */
unsigned sip__lua_rx_state(const sip_lua_rx *r);
/* { [hostk] = "127.0.0.1", [portk] = 5060 } of sa into the
 * table on top; the methods of received messages (core on top). */
void sip__lua_push_addr(lua_State *L, const struct sockaddr_storage *sa,
                        const char *hostk, const char *portk);
void sip__lua_open_received(lua_State *L);
/* lua_pcall with a traceback; errors are logged and counted. */
int sip__lua_srv_pcall(lua_State *L, int srvidx, int nargs);
/* The received message at idx (raises otherwise). */
sip_lua_rx *sip__lua_check_received(lua_State *L, int idx, const char *what);
/* proxy.c: the proxy methods of received messages (module table on top). */
void sip__lua_open_proxy(lua_State *L);
/* proxy.c: srv:proxy_stats() fields into the table on top */
void sip__lua_proxy_stats(lua_State *L, sip_lua_server *s);
/* flood.c: the flood option of core.server (opts at index opts, the new
 * server at sidx; raises on a bad option), the flood and connection-slot
 * counters into the table on top, and the Server methods (core on top). */
void sip__lua_flood_configure(lua_State *L, int opts, sip_lua_server *s,
                              int sidx);
void sip__lua_flood_stats(lua_State *L, sip_lua_server *s);
void sip__lua_open_flood(lua_State *L);
/* keepalive.c: srv:keepalive(flow) (core on top). */
void sip__lua_open_keepalive(lua_State *L);
/* dialog.c: the Dialog type and the Server dialog methods (core on top),
 * and the dialogs of a server that closes (their userdata become closed) */
void sip__lua_open_dialog(lua_State *L);
void sip__lua_dialogs_close(lua_State *L, sip_lua_server *s);

#endif
