/* Internals shared by the transport's files (not installed, not public). */
#ifndef SIP_TP_INT_H
#define SIP_TP_INT_H

#include <openssl/ssl.h>

#include "sip_transport.h"

/* UDP: datagrams read per recvmmsg batch; the listener's batch buffer is
 * this many maximum-size datagrams. */
#define SIP__UDP_BATCH 8
#define SIP__UDP_DGRAM_MAX 65536

/* A write request: the bytes follow the struct. */
typedef struct sip__wreq {
  union {
    uv_write_t w;
    uv_udp_send_t u;
  } req;
  sip_tp *tp;
  struct sip_conn *conn;
  sip_tp_send_cb cb;
  void *arg;
  struct sip__wreq *next; /* pending queue of a connection not yet open */
  uint32_t msg_len;       /* bytes of the user's message (0: internal) */
  size_t len;
  char data[];
} sip__wreq;

/* udp.c: a datagram waiting for room in the socket (see sip__tp_udp_send) */
typedef struct sip__udp_out sip__udp_out;

typedef struct sip_listener {
  union {
    uv_handle_t h;
    uv_udp_t udp;
    uv_tcp_t tcp;
  } u;
  sip_tp *tp;
  int id;
  int transport;
  int closing;
  struct sockaddr_storage addr;
  char *rbuf; /* UDP batch buffer */
  /* UDP sends the socket had no room for: at most one handed to libuv
   * (busy), the others wait here in order */
  sip__udp_out *busy, *q_head, *q_tail;
} sip_listener;

/* A send result to report from the loop (sip_tp_send never calls back from
 * inside itself): UDP datagrams the kernel took at once. */
typedef struct sip__done {
  struct sip__done *next;
  sip_tp_send_cb cb;
  void *arg;
  int status;
} sip__done;

/* An entry of the connection table by address: a connection's peer address,
 * or an alias of it (RFC 5923). */
typedef struct sip__tp_key {
  struct sip__tp_key *next;       /* in its bucket */
  struct sip__tp_key *alias_next; /* the connection's other aliases */
  struct sip_conn *conn;
  int transport;
  struct sockaddr_storage addr;
} sip__tp_key;

/* Aliases one connection may collect (RFC 5923 §5). */
#define SIP__TP_MAX_ALIASES 4

enum sip__tp_conn_state {
  SIP__CS_CONNECTING = 1,
  SIP__CS_HANDSHAKE,
  SIP__CS_WSHAKE, /* WebSocket: the HTTP upgrade (after TCP/TLS) */
  SIP__CS_OPEN,
  SIP__CS_CLOSING,
};

typedef struct sip_conn {
  uv_tcp_t tcp;
  uv_timer_t timer;
  uv_connect_t creq;
  uv_shutdown_t sreq;
  sip_tp *tp;
  struct sip_conn *prev, *next; /* tp->conns (open ones) or tp->draining */
  struct sip_conn *id_next;     /* in its bucket of tp->by_id */
  sip__tp_key key;              /* peer address, in tp->by_addr */
  sip__tp_key *aliases;         /* more addresses (RFC 5923) */
  int in_table;
  uint64_t id;
  int transport;
  int listener; /* -1: outgoing */
  int state;
  int handles;  /* libuv handles still to close */
  int crlf;     /* one CRLF seen at a message boundary */
  int draining; /* on tp->draining */
  struct sockaddr_storage local, peer;
  /* receive buffer (plaintext): [start, len) is unconsumed */
  char *buf;
  size_t start, len, cap;
  size_t scan; /* bytes after start searched for the header section's end */
  size_t need; /* known length of the message at start, 0 = unknown */
  uint64_t msg_start; /* uv_now() of the first byte of a partial message */
  uint64_t last_io;
  uint64_t last_msg; /* last message in or out (keep-alives not counted) */
  uint64_t opened;
  int kept; /* a registered flow (sip_tp_conn_keep) */
  /* sends waiting for connect/handshake (plaintext) */
  sip__wreq *pend_head, *pend_tail;
  size_t pend_bytes;
  /* TLS: the SSL object reads from rbio and writes to wbio (memory BIOs);
   * the uv stream moves ciphertext between them and the socket. */
  SSL *ssl;
  BIO *rbio, *wbio;
  /* WebSocket (ws.c): ws is set for WS/WSS connections */
  int ws;
  int ws_frag; /* the opcode of the fragmented message being collected (0: none)
                */
  int ws_closing; /* our close frame was sent */
  char *ws_msg;   /* the message so far (fragments) */
  size_t ws_mlen, ws_mcap;
  uint64_t last_rx;   /* uv_now() of the last bytes read */
  uint64_t ping_sent; /* uv_now() of our last ping, 0: none outstanding */
  char ws_accept[32]; /* client: the Sec-WebSocket-Accept expected */
  char *tls_name;
} sip_conn;

struct sip_tp {
  uv_loop_t *loop;
  sip_tp_config cfg;
  char *cert_file, *key_file, *ca_file;
  char *ws_origins, *http_root; /* copies of cfg's (ws.c) */
  SSL_CTX *tls_server, *tls_client;
  int tls_client_default_paths; /* the system CA store is still to load */

  sip_listener *ls[SIP_TP_MAX_LISTENERS];
  int nls;

  sip_conn *conns;    /* connections not closing */
  sip_conn *draining; /* closing after their queued writes */
  uint32_t nconns;
  uint32_t nconns_by[8]; /* by transport (SIP_TP_UDP..SIP_TP_WSS) */
  uint64_t next_conn_id;
  /* conn_table.c: open connections by id and by (transport, address) */
  sip_conn **by_id;
  sip__tp_key **by_addr;
  uint32_t nbuckets, nkeys;

  uv_timer_t anchor;   /* always open: makes sip_tp_close asynchronous */
  uv_idle_t done_idle; /* runs while done_head has entries */
  sip__done *done_head, *done_tail;
  int handles; /* open libuv handles owned by the manager */
  int closing;
  void (*close_cb)(void *);
  void *close_arg;

  sip_msg scratch; /* framing parses of stream buffers */
  char tls_scratch[65536];
  sip_tp_counters st;
  /* sip_tp_set_resolver; responses waiting for a name (tp.c) */
  sip_tp_resolve_fn resolve;
  void *resolve_ud;
  sip_tp_resolving *resolving;
  char errtext[512];
  FILE *trace;              /* trace.c: NULL = off */
  struct sip__flood *flood; /* flood.c: NULL = off */
};

/* trace.c: one message, when tp->trace is set */
void sip__tp_trace(sip_tp *tp, int outgoing, const char *bytes, size_t len,
                   int transport, const struct sockaddr_storage *local,
                   const struct sockaddr_storage *peer);

/* tp.c */
void sip__tp_handle_closed(sip_tp *tp);
void sip__tp_seterr(sip_tp *tp, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Report d (malloc'd by the caller; status and cb set) from the loop, after
 * the ones queued before it. Takes d. */
void sip__tp_defer(sip_tp *tp, sip__done *d);
sip_rxbuf *sip__tp_rxbuf_new(const char *p, size_t len, const sip_limits *lim);
/* Parse outcome of rx (already parsed with rc) from src: delivers it,
 * passes it to on_bad, or drops it. Consumes no reference. */
void sip__tp_deliver(sip_tp *tp, sip_rxbuf *rx, int rc, const sip_src *src);
int sip__tp_addr_eq(const struct sockaddr_storage *a,
                    const struct sockaddr_storage *b);
socklen_t sip__tp_addr_len(const struct sockaddr_storage *a);

/* udp.c */
int sip__tp_udp_listen(sip_tp *tp, sip_listener *l);
int sip__tp_udp_send(sip_tp *tp, const char *bytes, size_t len,
                     const sip_dest *dst, sip_tp_send_cb cb, void *arg);
/* The listener closes: its waiting datagrams fail with UV_ECANCELED. */
void sip__tp_udp_close(sip_listener *l);

/* conn.c */
int sip__tp_tcp_listen(sip_tp *tp, sip_listener *l);
int sip__tp_conn_send(sip_tp *tp, const char *bytes, size_t len,
                      const sip_dest *dst, sip_tp_send_cb cb, void *arg);

/* conn_table.c */
int sip__tp_table_add(sip_tp *tp, sip_conn *c);     /* id and peer address */
void sip__tp_table_remove(sip_tp *tp, sip_conn *c); /* and its aliases */
sip_conn *sip__tp_conn_find_id(const sip_tp *tp, uint64_t id);
sip_conn *sip__tp_conn_find_addr(const sip_tp *tp, int transport,
                                 const struct sockaddr_storage *sa);
/* Make sa reach c too. 0, UV_EEXIST (another connection has it), UV_ENOSPC
 * (SIP__TP_MAX_ALIASES), SIP_ENOMEM, SIP_EINVAL (c not in the table). */
int sip__tp_table_alias(sip_tp *tp, sip_conn *c,
                        const struct sockaddr_storage *sa);
void sip__tp_table_free(sip_tp *tp);
/* err 0: orderly. graceful: flush queued writes first. */
void sip__tp_conn_close(sip_conn *c, int err, int graceful);
void sip__tp_conn_close_now(sip_conn *c);
/* A write request with room for len bytes (data not filled in). */
sip__wreq *sip__tp_conn_wreq(sip_conn *c, size_t len, uint32_t msg_len,
                             sip_tp_send_cb cb, void *arg);
/* Write w's bytes (ciphertext, or plain TCP) to the socket. Consumes w. */
int sip__tp_conn_write(sip_conn *c, sip__wreq *w);
/* Plaintext arrived in c->buf[start..len): frame and deliver. */
void sip__tp_conn_process(sip_conn *c);
void sip__tp_conn_opened(sip_conn *c);
int sip__tp_conn_grow(sip_conn *c, size_t want);
/* A request arrived over src with top Via v: honour ";alias" (RFC 5923). */
void sip__tp_conn_via_alias(sip_tp *tp, const sip_src *src, const sip_via *v);

/* flood.c: should the request in p[0..len) from src be dropped? 1 drop
 * (counted, maybe answered 503), 0 deliver. Only when tp->flood is set. */
int sip__tp_flood_check(sip_tp *tp, const char *p, size_t len,
                        const sip_src *src);
void sip__tp_flood_free(sip_tp *tp);

/* tls.c */
int sip__tp_tls_init(sip_tp *tp, char *err, size_t errcap);
void sip__tp_tls_free(sip_tp *tp);
int sip__tp_tls_start(sip_conn *c); /* SSL object, accept or connect state */
/* Ciphertext from the socket. Returns 0, or a negative code (then the
 * caller closes the connection). */
int sip__tp_tls_input(sip_conn *c, const char *p, size_t len);
int sip__tp_tls_write(sip_conn *c, sip__wreq *w); /* consumes w on success */
void sip__tp_tls_shutdown(sip_conn *c);
void sip__tp_tls_conn_free(sip_conn *c);
/* Did the peer present a verified certificate that names host (a DNS name
 * or an IP literal, brackets allowed)? 1 or 0. */
int sip__tp_tls_peer_names(sip_conn *c, sip_str host);

/* ws.c: WebSocket (RFC 6455) under SIP (RFC 7118) */
static inline int sip__tp_is_ws(int transport) {
  return transport == SIP_TP_WS || transport == SIP_TP_WSS;
}
static inline int sip__tp_is_tls(int transport) {
  return transport == SIP_TP_TLS || transport == SIP_TP_WSS;
}
/* TCP (and TLS) is up: a server waits for the upgrade request, a client
 * sends one. State SIP__CS_WSHAKE until sip__tp_conn_opened. */
void sip__tp_ws_start(sip_conn *c);
/* Bytes in c->buf[start..len): the upgrade, then frames. */
void sip__tp_ws_process(sip_conn *c);
/* A SIP message in w becomes one text frame (masked by a client).
 * Returns the new request (w freed) or NULL (w freed). */
sip__wreq *sip__tp_ws_frame(sip_conn *c, sip__wreq *w);
/* Send a close frame (once) before an orderly close. */
void sip__tp_ws_close(sip_conn *c, int code);
/* The connection timer: a ping is due (0: none). */
uint64_t sip__tp_ws_ping_due(const sip_conn *c);
void sip__tp_ws_ping(sip_conn *c);
void sip__tp_ws_free(sip_conn *c);
/* Write raw bytes (no framing) on the connection, TLS or not. */
int sip__tp_conn_raw(sip_conn *c, const char *p, size_t len);

#endif
