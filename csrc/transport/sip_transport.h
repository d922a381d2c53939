/* The transport layer (RFC 3261 §18, RFC 3581, RFC 5626 §3.5.1): UDP, TCP
 * and TLS listeners and connections on one libuv loop, framing, delivery of
 * parsed messages, and sending requests and responses.
 *
 * Threading: everything runs on the loop's thread; nothing is thread-safe.
 *
 * Ownership of received bytes (zero-copy): every delivered message lives in a
 * sip_rxbuf, one malloc'd block holding the message bytes and the parsed
 * sip_msg whose slices point into them. The transport holds one reference
 * during the callback and drops it afterwards; a callback that wants to keep
 * the message beyond its return calls sip_rxbuf_ref() and later
 * sip_rxbuf_unref(). Datagrams are copied once from the socket's batch buffer
 * into their own rxbuf; for TCP/TLS each framed message is copied once from
 * the connection buffer into its own rxbuf, so a kept message never pins a
 * connection buffer and its bytes stay stable.
 *
 * Errors: functions return >= 0 on success or a negative code: SIP codes
 * from sip_error.h or libuv codes (UV_E*), which pass through unchanged.
 * sip_tp_errname() names either kind. Transport-specific conditions map to
 * libuv codes: UV_ETIMEDOUT (idle, partial-message, connect timeouts),
 * UV_EPROTO (TLS failure; sip_tp_last_error() has OpenSSL's text),
 * UV_EMFILE (max_connections reached), UV_ENOBUFS (write queue full),
 * UV_EAFNOSUPPORT (no UDP listener of the destination's address family),
 * UV_EAI_NONAME (a destination that is a host name: no DNS at this layer),
 * UV_ECANCELED (the transport or the connection was closed). */
#ifndef SIP_TRANSPORT_H
#define SIP_TRANSPORT_H

#include <stdint.h>
#include <stdio.h>
#include <uv.h>

#include "sip_msg.h"

/* §18.1.1: a request within 200 bytes of the path MTU (1500), i.e. larger
 * than this, must go over a congestion-controlled transport. The caller
 * decides; the transport only exposes the threshold. */
#define SIP_TP_UDP_MTU_THRESHOLD 1300

/* Default ports (RFC 3261 §18.2.2, §26.2). */
#define SIP_TP_PORT 5060
#define SIP_TP_PORT_TLS 5061

/* Listeners per transport manager. */
#define SIP_TP_MAX_LISTENERS 16

enum sip_tp_transport {
  SIP_TP_UDP = 1,
  SIP_TP_TCP = 2,
  SIP_TP_TLS = 3,
  SIP_TP_WS = 4,  /* SIP over WebSocket (RFC 7118) over TCP */
  SIP_TP_WSS = 5, /* ... over TLS */
};

/* Default ports of ws: and wss: (RFC 6455 §3). */
#define SIP_TP_PORT_WS 80
#define SIP_TP_PORT_WSS 443

/* "UDP", "TCP", "TLS", "WS", "WSS" (as written in Via); "?" otherwise. */
const char *sip_tp_transport_name(int transport);
/* SIP_TP_* for a Via transport token (case-insensitive), 0 when unknown. */
int sip_tp_transport_from(sip_str token);

/* ---- received messages ----------------------------------------------------
 */

/* Where a message came from. Copyable by value. */
typedef struct sip_src {
  int transport;    /* SIP_TP_UDP / TCP / TLS */
  int listener;     /* id of the listener that received it or accepted the
                       connection; -1 for a connection this side opened */
  uint64_t conn_id; /* TCP/TLS: the connection (never reused); 0 for UDP */
  struct sockaddr_storage local; /* the listener's bound address for UDP
                                    (a wildcard bind stays the wildcard) */
  struct sockaddr_storage peer;  /* the packet's / connection's source */
} sip_src;

/* One received message: its bytes and the message parsed in place. Reference
 * counted (not atomically: loop thread only). */
typedef struct sip_rxbuf {
  int refs;          /* do not touch: use sip_rxbuf_ref/unref */
  uint32_t len;      /* number of message bytes */
  const char *data;  /* the bytes (NUL-terminated copy of what was received) */
  sip_limits limits; /* msg->limits points here: the rxbuf may outlive tp */
  sip_msg msg;       /* parsed from data; for on_bad: parsed up to the error */
  sip_src src;       /* where it came from (set when it is delivered): a
                        response keeps it through the transaction layer */
  char bytes[];
} sip_rxbuf;

void sip_rxbuf_ref(sip_rxbuf *rx);
/* Drops one reference; at zero frees the message's arena and the buffer. */
void sip_rxbuf_unref(sip_rxbuf *rx);

/* Where to send. Fill with sip_dest_init() and sip_tp_addr(). */
typedef struct sip_dest {
  int transport;
  struct sockaddr_storage addr;
  uint64_t conn_id;     /* TCP/TLS: use this connection while it is open;
                           0 = any open connection to addr, else connect */
  int listener;         /* UDP: send from this listener's socket; -1 = the
                           first UDP listener of addr's family */
  const char *tls_name; /* TLS: SNI and the name verified against the
                           certificate; NULL verifies addr's IP instead.
                           Copied; may be freed after sip_tp_send returns. */
  int size_rule;        /* set by sip_tp_request_dest: the URI named no
                           transport, so §18.1.1 chooses by size (see
                           sip_tp_request_switch) */
} sip_dest;

void sip_dest_init(sip_dest *d, int transport);

/* Numeric IPv4 or IPv6 address (brackets allowed: "[::1]") and port into a
 * sockaddr. Returns 0 or SIP_EINVAL. No name resolution. */
int sip_tp_addr(struct sockaddr_storage *out, const char *ip, size_t len,
                int port);
/* "127.0.0.1:5060" / "[::1]:5060" into out (NUL-terminated, cap > 0). */
void sip_tp_addr_str(const struct sockaddr_storage *sa, char *out, size_t cap);
/* The address alone, without brackets or port ("127.0.0.1", "::1"; a
 * v4-mapped IPv6 address as IPv4; "" for another family or when cap is too
 * small) into out (NUL-terminated, cap > 0). */
void sip_tp_addr_host(const struct sockaddr_storage *sa, char *out, size_t cap);
/* Port of a sockaddr, host byte order. */
int sip_tp_addr_port(const struct sockaddr_storage *sa);

/* ---- configuration ----------------------------------------------------------
 */

typedef struct sip_tp sip_tp;

enum sip_tp_conn_event {
  SIP_TP_CONN_OPEN = 1,  /* accepted, or connected (after the TLS handshake) */
  SIP_TP_CONN_CLOSE = 2, /* err: 0 for an orderly close by the peer or by us,
                            else why (UV_ETIMEDOUT, UV_EPROTO, SIP_ECLEN ...) */
};

typedef struct sip_tp_config {
  sip_limits limits;        /* parser limits (default sip_default_limits) */
  uint32_t max_connections; /* TCP+TLS, both directions (default 1024);
                               accepted beyond it: closed and counted */
  uint32_t max_conn_buffer; /* receive buffer per connection, bytes
                               (default 65535 + 1024; raised to at least
                               limits.max_size + 1024) */
  uint32_t max_write_queue; /* unsent bytes per connection before sends
                               fail with UV_ENOBUFS (default 4 MiB) */
  uint32_t idle_timeout_ms; /* no bytes in either direction: close
                               (default 120000, i.e. above the 90 s CRLF
                               keep-alive of RFC 5626 §4.4.1) */
  uint32_t partial_message_timeout_ms; /* a message's first byte to its last
                                 (default 10000): a peer that sends half a
                                 message and stops is closed */
  uint32_t connect_timeout_ms; /* TCP connect + TLS handshake (default 10000) */
  int udp_rcvbuf;              /* SO_RCVBUF for UDP sockets (default 4 MiB;
                                  0 leaves the system default) */

  /* TLS (OpenSSL 3, TLS 1.2 minimum). The server side needs cert + key;
   * the client side uses ca_file (else the system's default paths). */
  const char *tls_cert_file; /* PEM chain; copied at sip_tp_new */
  const char *tls_key_file;  /* PEM private key */
  const char *tls_ca_file;   /* PEM CA bundle for verification */
  int tls_verify_peer;       /* outgoing: verify the server's certificate
                                and name (default 1) */
  int tls_verify_client;     /* incoming: require a client certificate
                                signed by ca_file (default 0) */

  /* RFC 5923 connection reuse: a request whose top Via has ";alias" makes
   * its connection usable for requests to the Via's sent-by (a numeric
   * address). Over TLS when the client's verified certificate names the
   * sent-by host (so only with tls_verify_client); over TCP only when this
   * is set (default 0: anyone can claim any address over TCP). */
  int tcp_accept_aliases;

  /* WebSocket (RFC 6455, RFC 7118), ws: and wss: listeners and connections.
   * The upgrade must ask for the "sip" subprotocol and version 13. */
  const char *ws_origins;       /* accepted Origin values, separated by
                                   spaces or commas (copied); NULL or "":
                                   any Origin, or none. Others get 403 */
  const char *http_root;        /* a GET without Upgrade on a ws/wss
                                   listener serves files under this folder
                                   (copied); NULL: 404 */
  uint32_t ws_ping_interval_ms; /* an open WebSocket with nothing received
                                   for this long gets a ping (default
                                   30000; 0: none) */
  /* Connection slots. At max_connections, an accepted connection takes the
   * slot of the least recently useful open one (not a kept flow, the oldest
   * message -- keep-alives do not count), which is closed (conn_evicted);
   * with max_conn_per_source > 0, a source (IP address) with that many
   * connections open has a new one refused (conn_refused_source). When
   * more than 3/4 of the slots are taken, keep-alives alone no longer hold
   * a connection open: idle_timeout runs from its last message. */
  uint32_t max_conn_per_source; /* default 0: no limit */

  /* Callbacks (all optional, ud passed back). */
  void *ud;
  /* A parsed message. For requests the top Via already carries received /
   * rport (§18.2.1, RFC 3581). rx->msg is msg; take a reference to keep it. */
  void (*on_message)(void *ud, sip_msg *msg, sip_rxbuf *rx, const sip_src *src);
  /* A request that failed to parse (or whose top Via is malformed) but has a
   * request line and Via, From, To, Call-ID and CSeq, not ACK: the layer
   * above may answer 400 with errtext as the reason. rx->data/rx->len are
   * the bytes (for a stream: what was buffered), rx->msg the partial parse.
   * A stream that fails framing is closed after this returns (pending writes
   * are flushed first). Everything else unparseable is dropped and counted. */
  void (*on_bad)(void *ud, int err, const char *errtext, sip_rxbuf *rx,
                 const sip_src *src);
  /* Connection opened / closed (TCP/TLS). text: detail for a failure. */
  void (*on_conn)(void *ud, uint64_t conn_id, int event, int err,
                  const char *text);
} sip_tp_config;

/* Defaults as documented above. */
void sip_tp_config_init(sip_tp_config *cfg);

/* Create a transport manager on loop. Loads the TLS certificate/key/CA when
 * configured. Returns 0 and sets *out, or SIP_ENOMEM, SIP_EINVAL (bad TLS
 * files; err gets OpenSSL's text when errcap > 0). */
int sip_tp_new(uv_loop_t *loop, const sip_tp_config *cfg, sip_tp **out,
               char *err, size_t errcap);

/* Close every listener and connection (pending sends fail with
 * UV_ECANCELED), then free the manager in libuv close callbacks and call
 * cb(arg) (may be NULL). Always asynchronous; tp must not be used after. */
void sip_tp_close(sip_tp *tp, void (*cb)(void *arg), void *arg);

/* ---- listening
 * ---------------------------------------------------------------- */

/* "udp:127.0.0.1:5060", "tcp:[::1]:0", "tls:0.0.0.0:5061" (numeric address,
 * port 0 = ephemeral). Returns the listener id (>= 0), SIP_EINVAL for a
 * malformed spec (or tls without a certificate), or a libuv code
 * (UV_EADDRINUSE, ...). */
int sip_tp_listen(sip_tp *tp, const char *spec);
/* "udp:127.0.0.1:5060" / "tls:[::1]:5061" into a transport and address
 * (numeric only). 0 or SIP_EINVAL. */
int sip_tp_parse_spec(const char *spec, int *transport,
                      struct sockaddr_storage *sa);
/* The first open listener of that transport and address family (AF_INET,
 * AF_INET6), or -1: the address a request sent that way names in its Via. */
int sip_tp_find_listener(const sip_tp *tp, int transport, int family);
/* The bound address of a listener (the real port when 0 was asked).
 * Returns its transport or SIP_EINVAL. */
int sip_tp_listener_addr(const sip_tp *tp, int id,
                         struct sockaddr_storage *out);
/* The bound port of a listener or SIP_EINVAL. */
int sip_tp_listener_port(const sip_tp *tp, int id);

/* Write every message received and sent (with time, transport and
 * addresses) to out, flushed per message; NULL turns it off. */
void sip_tp_set_trace(sip_tp *tp, FILE *out);

/* ---- sending ----------------------------------------------------------------
 */

/* Result of one send: 0 when handed to the kernel, else a negative code. */
typedef void (*sip_tp_send_cb)(void *arg, int status);

/* Send bytes (copied) to dst. UDP: one sendmsg per datagram from a
 * listener's socket, so a failure is the result of that datagram alone (an
 * unroutable destination fails at once: ENETUNREACH ...); when the socket
 * has no room the datagram waits, in order. TCP/TLS: over dst->conn_id or
 * an open connection to dst->addr, else a new connection (asynchronous
 * connect + handshake; the bytes wait in a queue); a message written to a
 * stream always carries one Content-Length equal to its body's length
 * (§18.3: added or corrected here when not), and bytes that are not a
 * message (no header end) fail with SIP_EINVAL.
 * Returns 0 and later calls cb(arg, status) exactly once, never from inside
 * this call; or returns a negative code and never calls cb. */
int sip_tp_send(sip_tp *tp, const char *bytes, size_t len, const sip_dest *dst,
                sip_tp_send_cb cb, void *arg);

/* Where a response goes (§18.2.2, RFC 3581 §4), given the request's top Via
 * (as delivered, with received/rport) and its source:
 *  reliable: the request's connection (dst->conn_id) if still open, else a
 *            connection to received (or sent-by host) at the sent-by port
 *            (default 5060, 5061 for TLS);
 *  unreliable: maddr if present (port from sent-by, default 5060); else
 *            received with rport's value if rport has one, else the sent-by
 *            port; else sent-by host and port.
 *  UDP responses go out through the listener that received the request.
 * Returns 0, UV_EAI_NONAME when the target is a host name (resolving it,
 * RFC 3263 §5, is the caller's job) or SIP_EINVAL. */
int sip_tp_response_dest(const sip_tp *tp, const sip_via *top_via,
                         const sip_src *src, sip_dest *out);
/* sip_tp_response_dest() + sip_tp_send(). Same return contract, except
 * that a host name (UV_EAI_NONAME above) is located by the resolver of
 * sip_tp_set_resolver when there is one (RFC 3263 §5), and the response
 * sent to its first target: 0 then, and cb runs once the response was
 * sent or could not be (the name's resolution failed: its code). */
int sip_tp_send_response(sip_tp *tp, const char *bytes, size_t len,
                         const sip_via *top_via, const sip_src *src,
                         sip_tp_send_cb cb, void *arg);

/* A response waiting for the location of a host name (opaque). */
typedef struct sip_tp_resolving sip_tp_resolving;
/* Locate host for a response (RFC 3263 §5): port 0 when the Via's sent-by
 * has none (SRV for `transport`, then A/AAAA on its default port), else
 * A/AAAA on port. Must call sip_tp_resolved(r, ...) exactly once (from
 * inside this call or later, from the loop) and return 0; or return a
 * negative code without calling it. */
typedef int (*sip_tp_resolve_fn)(void *ud, sip_tp_resolving *r, int transport,
                                 const char *host, int port);
/* Install (fn NULL: remove) the resolver of sip_tp_send_response. */
void sip_tp_set_resolver(sip_tp *tp, sip_tp_resolve_fn fn, void *ud);
/* The answer for r: status 0 and the address (with its port) to send to
 * over `transport` (the request's own when it differs: a response goes
 * back over the transport its request came on), tls_name the name a TLS
 * certificate must carry (NULL: none); or status < 0. r is freed. */
void sip_tp_resolved(sip_tp_resolving *r, int status,
                     const struct sockaddr_storage *addr, const char *tls_name);

/* Where a request goes when its next hop is uri (RFC 3261 §18.1.1, RFC 3263
 * §4 for numeric hosts): maddr when present, else the host; the transport
 * from ";transport=" (udp, tcp, tls; "tcp" in a sips URI means TLS), else
 * TLS for sips, else UDP (and dst->size_rule is set); the port from the
 * URI, else 5060 (5061 for TLS). A UDP request of msg_len >
 * SIP_TP_UDP_MTU_THRESHOLD goes over TCP instead (§18.1.1), unless the URI
 * names the transport explicitly. msg_len must be the size of the request
 * as written for UDP: callers that build the request after choosing (its
 * Via names the transport) pass 0, write it, then ask
 * sip_tp_request_switch with its real size.
 * For TLS, dst->tls_name is set to the host when the caller passes
 * name_buf (the name to verify; a numeric host verifies the address).
 * Returns 0, UV_EAI_NONAME when the host is a name (resolving it per RFC
 * 3263 is the caller's job), SIP_EINVAL for a URI that is not sip/sips or
 * names another transport (sctp, ws ...). */
int sip_tp_request_dest(const sip_uri *uri, size_t msg_len, sip_dest *out,
                        char *name_buf, size_t name_cap);

/* §18.1.1 on the real size: a request written for UDP to d (from
 * sip_tp_request_dest) is len bytes. When it is larger than
 * SIP_TP_UDP_MTU_THRESHOLD (1300: the path MTU is unknown) and the URI left
 * the transport to this rule (d->size_rule), d becomes TCP to the same
 * address and port (listener -1) and 1 is returned: the caller writes the
 * request again for TCP (Via transport, Record-Route) and sends that, with
 * the UDP form as the fallback for a connection that fails
 * (sip_txn_request_switched). Otherwise 0 and d is unchanged. */
int sip_tp_request_switch(sip_dest *d, size_t len);

/* Is a TCP/TLS connection with that id open (or connecting)? 1 or 0. */
int sip_tp_conn_alive(const sip_tp *tp, uint64_t conn_id);
/* Close a connection (after flushing its pending writes). 0 or SIP_ENOTFOUND.
 */
int sip_tp_conn_close(sip_tp *tp, uint64_t conn_id);
/* Open TCP/TLS connections. */
uint32_t sip_tp_conn_count(const sip_tp *tp);
/* Open connections of one transport (SIP_TP_TCP, _TLS, _WS, _WSS); 0 for
 * UDP or an unknown transport. */
uint32_t sip_tp_conn_count_by(const sip_tp *tp, int transport);

/* ---- statistics and errors
 * ---------------------------------------------------- */

typedef struct sip_tp_counters {
  uint64_t rx_msgs, rx_bytes; /* messages delivered (on_message), bytes read */
  uint64_t tx_msgs, tx_bytes; /* sends completed, their bytes */
  uint64_t tx_errors;         /* sends that failed */
  uint64_t clen_fixed;        /* messages to TCP/TLS that lacked a correct
                                 Content-Length: one was written (§18.3) */
  uint64_t parse_errors;      /* datagrams / stream messages that failed */
  uint64_t bad_delivered;     /* of those, passed to on_bad */
  uint64_t dropped;           /* unparseable, unanswerable: dropped */
  uint64_t keepalives;        /* CRLFCRLF pings answered (and empty
                                 datagrams ignored) */
  uint64_t conn_opened, conn_closed;
  uint64_t conn_refused;        /* beyond max_connections */
  uint64_t conn_timeouts;       /* idle, partial-message, connect */
  uint64_t tls_failures;        /* handshakes and TLS records that failed */
  uint64_t tls_verify_failures; /* of those, peer certificates refused (the
                                   close event has err SIP_ECERT and a text
                                   naming the peer, the reason and the
                                   verification error) */
  uint64_t aliases;             /* connection aliases taken (RFC 5923) */
  uint64_t aliases_refused; /* ;alias not honoured (see tcp_accept_aliases) */
  uint64_t ws_upgrades;     /* WebSocket handshakes completed */
  uint64_t ws_rejected;     /* upgrades refused (4xx) or failed */
  uint64_t ws_errors;       /* connections closed for a framing error
                               (close 1002), or an oversized frame or
                               message (1009) */
  uint64_t ws_pings;        /* pings received (answered) and sent */
  uint64_t http_files;      /* static files served (http_root) */
  uint64_t conn_evicted;    /* closed to make room for a newcomer (the
                               table was full) */
  uint64_t conn_refused_source; /* beyond max_conn_per_source */
  /* flood protection (sip_tp_flood) */
  uint64_t flood_dropped;   /* requests dropped from blocked sources */
  uint64_t flood_blocks;    /* blocks started (sources or source+user) */
  uint64_t flood_replied;   /* 503 answers (one per block, reply_503) */
  uint64_t flood_vetoed;    /* blocks the on_block hook refused */
  uint64_t flood_trusted;   /* requests from trusted addresses (unchecked) */
  uint64_t flood_evictions; /* table entries reused for a new source */
  /* responses by class (index 0: 1xx .. 5: 6xx): handed to sip_tp_send
   * (every path that sends one: stateless replies, transactions and
   * their retransmissions, the proxy, flood 503s), and received (parsed,
   * delivered to on_message) */
  uint64_t tx_responses[6];
  uint64_t rx_responses[6];
  uint64_t responses_resolved; /* responses sent to a located host name
                                  (sip_tp_set_resolver, RFC 3263 §5) */
} sip_tp_counters;

/* Mark a connection as a registered flow (kept = 1; RFC 5626 §5.2): it is
 * evicted only when every open connection is one. 0 or SIP_ENOTFOUND. */
int sip_tp_conn_keep(sip_tp *tp, uint64_t conn_id, int kept);
/* RFC 5626 §4.4.1 CRLF keep-alive: write a double CRLF on an open TCP/TLS
 * connection (a client's flow; the server answers with one CRLF): the one
 * of dst->conn_id, else the open one to dst->addr over dst->transport. Returns
 * 0 once queued, SIP_ENOTFOUND when no such connection is open, SIP_EINVAL
 * for a WebSocket (it has its own pings) or a connection not open yet, or
 * the write's error (the connection is then closed). */
int sip_tp_conn_keepalive(sip_tp *tp, const sip_dest *dst);

/* ---- flood protection (flood.c)
 * ----------------------------------------------------------- */

/* Requests are counted per source IP address (and optionally per source
 * and From user) in fixed windows, before the message is parsed (the
 * method from the start line, the From user by a scan of the header
 * section) and before any script. Over a threshold the source is blocked
 * for block_ms: its requests are dropped (the one that crossed the
 * threshold answered 503 with Retry-After when reply_503 is set; the
 * answer goes to the packet's source, or over its connection). Responses
 * and trusted addresses are never counted. Memory is bounded: max_entries
 * slots (power of two), looked up in 8 probes; a new source takes the
 * slot of the least recently seen unblocked one. */
typedef struct sip_flood_config {
  uint32_t window_ms;   /* counting window (default 1000) */
  uint32_t max_invite;  /* INVITE + REGISTER per source and window
                           (0: not limited) */
  uint32_t max_other;   /* other methods per source and window (0: not
                           limited) */
  uint32_t max_user;    /* requests per source + From user and window
                           (0: off): that user alone is blocked, and its
                           requests then do not count for the source */
  uint32_t block_ms;    /* default 60000 */
  int reply_503;        /* answer once with 503 + Retry-After, then drop */
  uint32_t max_entries; /* default 16384 */
  /* Called when a block would start (kind 1: INVITE/REGISTER, 2: other
   * methods, 3: per user; user is the From user for kind 3, else NULL).
   * Returns 1 to block, 0 to let this window pass (counted flood_vetoed).
   * NULL: always block. It must not call sip_tp_flood. */
  int (*on_block)(void *ud, const struct sockaddr_storage *src,
                  const char *user, size_t user_len, int kind, uint32_t count);
  void *ud;
} sip_flood_config;

/* Defaults as documented above (thresholds 0: nothing limited). */
void sip_flood_config_init(sip_flood_config *cfg);
/* Turn flood protection on (again: the table is kept when max_entries does
 * not change) or off (cfg NULL). 0, SIP_ENOMEM or SIP_EINVAL. */
int sip_tp_flood(sip_tp *tp, const sip_flood_config *cfg);
/* Never count or block addresses of "10.0.0.0/8", "127.0.0.1", "::1/128"
 * (at most 64 entries). Trusting an entry already there (the same network)
 * takes no new slot: it counts one more reference. 0, SIP_EINVAL
 * (malformed), SIP_ETOOMANY. */
int sip_tp_flood_trust(sip_tp *tp, const char *cidr);
/* Drop one reference to a trusted entry (as given to sip_tp_flood_trust);
 * the entry goes with its last. 0, SIP_EINVAL (malformed), SIP_ENOTFOUND
 * (not trusted). */
int sip_tp_flood_untrust(sip_tp *tp, const char *cidr);
/* Forget the trusted list. */
void sip_tp_flood_trust_clear(sip_tp *tp);
/* Lift the blocks of an IP address (every user of it). Returns how many
 * entries were unblocked. */
int sip_tp_flood_unblock(sip_tp *tp, const struct sockaddr_storage *addr);
/* Call cb for each blocked entry (user NULL for a whole source); returns
 * the number of blocked entries. */
int sip_tp_flood_blocked(sip_tp *tp,
                         void (*cb)(void *arg,
                                    const struct sockaddr_storage *addr,
                                    const char *user, size_t user_len,
                                    uint64_t remaining_ms),
                         void *arg);

/* Copy the counters into *out. */
void sip_tp_stats(const sip_tp *tp, sip_tp_counters *out);

/* Name of any code this layer returns: "OK" for 0, SIP names
 * ("CLEN") from sip_errname, libuv names ("ECONNREFUSED") from uv_err_name.
 * Never NULL. */
const char *sip_tp_errname(int err);
/* Message for any code; never NULL. */
const char *sip_tp_strerror(int err);
/* Text of the last failure with detail (TLS errors drained from OpenSSL's
 * error queue, parse errors); "" when none. Valid until the next failure. */
const char *sip_tp_last_error(const sip_tp *tp);

#endif
