/* The transaction user core (RFC 3261 §8, §9.2, §13.3.1.4, §18): what
 * every element built on the transaction layer does the same way, below
 * any binding. The server binding (csrc/lua/server.c) and the proxy sit on
 * it; the dialog layer (the UA) builds on it.
 *
 *  - dispatch: a received message is counted, checked (§8.2 / §16.3
 *    sanity: sip_sanity.h), answered in C when it fails, and handed to the
 *    transaction layer (or, for a stateless element, back to the caller);
 *  - UAS responses: §8.2.6 (sip_reply.h) with the element's Server header,
 *    sent over the server transaction or statelessly (§18.2.2);
 *  - §9.2 at a UAS: a CANCEL gets 200 (481 when it matches nothing), and
 *    the caller learns which INVITE it cancels;
 *  - §13.3.1.4: a UAS's 2xx to INVITE re-sent on the transaction layer's
 *    timer heap (sip_txn_retransmit_2xx) until the ACK, which is matched
 *    here (its own branch: by Call-ID, CSeq number and To tag);
 *  - the UAC side: the next hop of a request (§8.1.2: the first Route if
 *    loose, else the Request-URI), its Via (one format, with a new branch)
 *    and User-Agent, sent over a client transaction (§18.1.1 size switch
 *    included);
 *  - one To-tag format (sip_txn_new_tag: one random generator);
 *  - counters.
 *
 * No Lua, no allocation on the receive path except for a 2xx that waits for
 * its ACK. Threading: the loop's thread only. Errors: negative codes of
 * sip_error.h, libuv codes passed through (sip_tp_errname names both). */
#ifndef SIP_TU_H
#define SIP_TU_H

#include <stdint.h>

#include "sip_sanity.h"
#include "sip_transport.h"
#include "sip_txn.h"

/* A To tag: sip_txn_new_tag's 16 characters (no NUL in tag buffers). */
#define SIP_TU_TAG_LEN (SIP_TXN_TAG_SIZE - 1)
/* A header value (Server, User-Agent) at most this long. */
#define SIP_TU_HEADER_MAX SIP_TXL_SERVER_MAX

typedef struct sip_tu_counters {
  uint64_t requests, responses; /* received */
  uint64_t rejected;            /* answered by the sanity checks */
  uint64_t rejected_by[8];      /* 400 405 416 420 505 483 other */
  uint64_t dropped_sanity;      /* ACKs and responses that failed them */
  uint64_t bad_answered;        /* unparsable requests answered */
  uint64_t replies, reply_errors;
} sip_tu_counters;

/* A 2xx waiting for its ACK (sip_tu_reply with SIP_TU_RETRANSMIT). */
typedef struct sip_tu_ackwait sip_tu_ackwait;

/* A client transaction the element keeps track of (sip_tu_client_start)
 * until it ends: its owner embeds this struct, sets the callbacks, and
 * frees it in on_end. */
typedef struct sip_tu_client sip_tu_client;
struct sip_tu_client {
  sip_tu_client *prev, *next; /* the TU's list */
  struct sip_tu *tu;
  sip_txn *t;    /* the transaction, valid while listed (else NULL) */
  int transport; /* the one used: UDP after a §18.1.1 fallback */
  /* every response the transaction reports: msg / rx NULL when the layer
   * made the status up (408, 503); c->transport is up to date */
  void (*on_response)(sip_tu_client *c, int status, sip_msg *msg,
                      sip_rxbuf *rx);
  /* c left the list: its transaction ended (SIP_TXN_EV_TERMINATED) or the
   * TU closed (sip_tu_close); c is not used again */
  void (*on_end)(sip_tu_client *c);
};

typedef struct sip_tu {
  sip_tp *tp;
  sip_txl *txl; /* NULL: a stateless element */
  sip_tu_ackwait *acks;
  sip_tu_client *clients; /* sip_tu_client_start's, until they end */
  sip_sanity_config sanity;
  int force_rport; /* RFC 3581 rport forced on UDP requests */
  /* "Server: x\r\n" / "User-Agent: x\r\n"; length 0: none */
  size_t server_len, ua_len;
  char server_line[SIP_TU_HEADER_MAX + 16], ua_line[SIP_TU_HEADER_MAX + 16];
  sip_tu_counters st;
} sip_tu;

/* Set up tu over tp and txl (NULL: stateless): no headers, every sanity
 * check of sip_sanity_config_init, counters zero. Allocates nothing. */
void sip_tu_init(sip_tu *tu, sip_tp *tp, sip_txl *txl);
/* Forget the 2xx waiting for ACKs and the client transactions (each
 * one's on_end runs; do this before the transaction layer closes) and stop
 * using tp and txl. tu may be initialized again. */
void sip_tu_close(sip_tu *tu);

/* The Server (which = 'S') or User-Agent ('U') header of what tu
 * originates: value of 1..SIP_TU_HEADER_MAX bytes without control
 * characters, or NULL / len 0 for none. The Server value also goes to the
 * transaction layer (its 100 Trying and 503). Returns 0 or SIP_EINVAL
 * (nothing changed). */
int sip_tu_set_header(sip_tu *tu, int which, const char *value, size_t len);

/* A new To tag (SIP_TU_TAG_LEN characters, no NUL) into out. */
sip_str sip_tu_new_tag(char out[SIP_TU_TAG_LEN]);

/* ---- the UAS side ------------------------------------------------------ */

/* 1 when m is a request with method name (case-sensitive, §7.1), else 0.
 * sip_tu_is_ack(m): sip_tu_is_method(m, "ACK"). */
int sip_tu_is_method(const sip_msg *m, const char *name);
int sip_tu_is_ack(const sip_msg *m);

/* What became of a received request, for the decisions below. */
enum {
  SIP_TU_UAS_FINAL = 1,     /* a final response was sent for it */
  SIP_TU_UAS_DROPPED = 2,   /* its handler chose not to answer it */
  SIP_TU_UAS_CANCELLED = 4, /* a CANCEL ended it (487 sent) */
  SIP_TU_UAS_RELAYED = 8,   /* a proxy relayed a final response for it */
  SIP_TU_UAS_CLOSED = 16,   /* the element is closed, or the request gone */
};

/* The one "handler failed -> 500" rule (a script error, an out-of-memory
 * in the handler): 1 when request m, in state (SIP_TU_UAS_* bits), is
 * still to be answered 500 by the element -- a request other than ACK (an
 * ACK is never answered, §17.1.1.3) that is open and that nobody answered
 * --, else 0. */
int sip_tu_uas_failed(const sip_msg *m, unsigned state);

/* §9.2: the INVITE that sip_tu_cancel matched, in state: 1 when the UAS
 * core answers it 487 now (nobody answered, dropped or relayed a final
 * response yet), else 0. (A proxied INVITE's branches are the proxy's.) */
int sip_tu_uas_cancels(unsigned state);

/* Why a reply with status to request m in state cannot be sent: 0 when it
 * can, else SIP_TU_NOREPLY_* (an ACK; a cancelled request; one answered
 * already; a final response after a relayed one; a response). */
enum {
  SIP_TU_NOREPLY_RESPONSE = 1,
  SIP_TU_NOREPLY_ACK,
  SIP_TU_NOREPLY_CANCELLED,
  SIP_TU_NOREPLY_ANSWERED,
  SIP_TU_NOREPLY_RELAYED,
  SIP_TU_NOREPLY_CLOSED,
};
int sip_tu_uas_can_reply(const sip_msg *m, unsigned state, int status);

/* Receive a message from the transport (sip_tp_config.on_message): count
 * it, check it (tu->sanity; a failing request other than ACK is answered
 * here, a failing ACK or response is dropped and counted), force rport
 * (tu->force_rport), and hand it to the transaction layer, whose callbacks
 * then run; a request the layer cannot match is answered 400. Returns 1
 * when the caller must handle msg itself (a stateless element: tu->txl is
 * NULL), 0 otherwise. */
int sip_tu_receive(sip_tu *tu, sip_msg *msg, sip_rxbuf *rx, const sip_src *src);

/* RFC 3581 "force rport" (sip_tu_receive, with tu->force_rport) for a
 * request m from src: its top Via gets received and rport with the
 * source's address and port, so that responses go back where the request
 * came from (NAT); the other Via values of that line stay. Returns 1 when
 * edited, 0 when it had both already, or a negative code (no or a
 * malformed Via: SIP_ENOTFOUND / the parse error; SIP_EINVAL: src has no
 * IP address; SIP_ERANGE: the line would exceed 1024 bytes). */
int sip_tu_force_rport(sip_msg *m, const sip_src *src);

/* A message the transport could not parse (sip_tp_config.on_bad): a
 * request is answered with the status of sip_sanity_parse_error when the
 * response can be built. Returns 1 when answered, 0 otherwise. */
int sip_tu_bad(sip_tu *tu, int err, sip_rxbuf *rx, const sip_src *src);

/* sip_tu_reply flags */
enum {
  /* a 2xx to INVITE from this UAS: re-sent until its ACK (§13.3.1.4);
   * over UDP the TU then holds the transaction's event callback
   * (sip_txn_set_event_cb) until the ACK or its end */
  SIP_TU_RETRANSMIT = 1,
  /* a 101-199 to INVITE sent reliably (RFC 3262 §3; the caller wrote its
   * Require: 100rel and RSeq): re-sent until sip_txn_prack, and when none
   * comes in 64*T1 the INVITE gets "500 No PRACK" (same To tag) from the
   * layer (sip_txn_retransmit_1xx). Fails with SIP_EINVAL while a previous
   * reliable 1xx awaits its PRACK. */
  SIP_TU_RELIABLE = 2,
};

/* The §8.2.6 response to req (Server header first, then extra: complete
 * header lines; to_tag used when req's To has none), sent over t, or
 * without t statelessly (§18.2.2; to the source when req's Via cannot be
 * read). Returns 0 or a negative code (a response that cannot be built:
 * SIP_EINVAL -- e.g. a control character it would copy --, SIP_ENOMEM, the
 * transaction's or transport's code). Counted in replies / reply_errors. */
int sip_tu_reply(sip_tu *tu, sip_txn *t, sip_msg *req, const sip_src *src,
                 int status, sip_str reason, sip_str to_tag, sip_str extra,
                 sip_str body, int flags);

/* The parts of a reply its caller writes (sip_tu_reply's reason and
 * extra) checked: 0 when usable, SIP_TU_BAD_REASON when reason has a
 * control character other than HTAB, SIP_TU_BAD_EXTRA when extra is not
 * empty and does not end with CRLF (complete header lines). */
enum { SIP_TU_BAD_REASON = 1, SIP_TU_BAD_EXTRA };
int sip_tu_reply_parts(sip_str reason, sip_str extra);

/* An ACK reached the TU (txl on_ack; t as given there): when it
 * acknowledges a 2xx being re-sent, the re-sending stops. Returns 1 when
 * it matched one, 0 otherwise. */
int sip_tu_ack(sip_tu *tu, sip_txn *t, sip_msg *ack);

/* §9.2 for a UAS: the CANCEL request msg (its own transaction t) is
 * answered 200 when it matches an INVITE server transaction, 481
 * otherwise. Returns that INVITE's transaction (lifetime rules of
 * sip_txn.h) or NULL. What the INVITE gets (487, a proxy's CANCELs) is
 * the caller's decision. */
sip_txn *sip_tu_cancel(sip_tu *tu, sip_txn *t, sip_msg *msg,
                       const sip_src *src);

/* ---- the UAC side ------------------------------------------------------ */

/* The next-hop rule, written once for the TU and the proxy (§16.6 item 6,
 * §8.1.2): the first value of `route` (Route values a proxy branch pushes:
 * a Path; absent: none) when it parses, else m's first Route when it is a
 * loose router, else `ruri` (the Request-URI to use). *hop points into m,
 * or to *u (parsed into a). Returns 0, or the URI parse error of ruri. */
int sip_tu_next_hop_uri(sip_msg *m, sip_str ruri, sip_str route, sip_arena *a,
                        sip_uri *u, const sip_uri **hop);

/* The destination sip_tu_next_hop_uri(m, ruri, route) names (len: the
 * request's size, for §18.1.1; name/cap as sip_tu_next_hop's). Returns 0
 * or a negative code (a malformed URI; UV_EAI_NONAME for a host name). */
int sip_tu_next_hop_dest(sip_msg *m, sip_str ruri, sip_str route, size_t len,
                         sip_dest *d, char *name, size_t cap);

/* A destination given as a listen-style spec ("udp:192.0.2.1:5060",
 * "tcp:[::1]:5060"; spec/len, not NUL-terminated, under 128 bytes) into
 * *d (no TLS name). Returns 0, SIP_EINVAL or sip_tp_parse_spec's code. */
int sip_tu_dest_spec(const char *spec, size_t len, sip_dest *d);

/* §8.1.2: the destination of request m (len: its size, for §18.1.1) from
 * its first Route when that is a loose router, else its Request-URI.
 * name/cap receive the host name when the target is one (then
 * UV_EAI_NONAME: RFC 3263 is the caller's). Returns 0 or a negative code
 * (a malformed Route / Request-URI). */
int sip_tu_next_hop(sip_msg *m, size_t len, sip_dest *d, char *name,
                    size_t cap);

/* The one format of a Via this element adds (a UAC's, a proxy's):
 * "SIP/2.0/<TRANSPORT> <sent_by>;branch=<branch>", plus ";rport" when
 * rport is set (RFC 3581), NUL-terminated into out. Returns its length, or
 * SIP_ERANGE when it does not fit in cap. */
int sip_tu_via_value(char *out, size_t cap, int transport, const char *sent_by,
                     const char *branch, int rport);

/* A Via header line for a request leaving by listener lid over transport
 * with branch: "Via: SIP/2.0/UDP host:port;branch=...;rport\r\n" (rport
 * over UDP). Returns its length, or SIP_EINVAL when it does not fit. */
int sip_tu_via(sip_tu *tu, int transport, int lid, const char *branch,
               char *out, size_t cap);

/* m with a new top Via (sip_tu_via; d->listener set to the listener d
 * leaves from) and, unless m has one, tu's User-Agent, into a malloc'd
 * *out. m is not changed. Returns the length, or a negative code
 * (UV_EAFNOSUPPORT: no listener of d's transport and family; SIP_ENOMEM;
 * SIP_EINVAL: m cannot be written). */
int sip_tu_write_request(sip_tu *tu, sip_msg *m, sip_dest *d,
                         const char *branch, char **out);

/* Send request m (not ACK) over a new client transaction: to *dest, or
 * (dest NULL) to sip_tu_next_hop's; with a new branch (into branch) and
 * Via; §18.1.1: over TCP when too large for UDP and the next hop names no
 * transport, UDP after all when the connection fails. cb(arg, ...) gets
 * the responses (sip_txn.h). On success *out is the transaction and
 * *transport the transport used. Returns 0 or a negative code
 * (sip_tu_next_hop's, sip_tu_write_request's, sip_txn_request's). */
int sip_tu_request(sip_tu *tu, sip_msg *m, const sip_dest *dest,
                   sip_txn_response_cb cb, void *arg,
                   char branch[SIP_TXN_BRANCH_SIZE], sip_txn **out,
                   int *transport);

/* The destination of a request m a UAC sends: the listen-style spec
 * (sip_tu_dest_spec; NUL-terminated) with tls_name (for TLS: the name the
 * certificate must carry, RFC 5922; NULL or "": its address is verified;
 * d points to it), or without spec m's next hop (sip_tu_next_hop; name /
 * cap receive a host name). Returns 0, or sip_tu_dest_spec's /
 * sip_tu_next_hop's code. */
int sip_tu_request_dest(sip_msg *m, const char *spec, const char *tls_name,
                        sip_dest *d, char *name, size_t cap);

/* sip_tu_request (m, dest, branch as there) with c tracked: c is listed
 * in tu->clients until its transaction ends, c->on_response gets its
 * responses and c->on_end its end. Returns 0, or sip_tu_request's code
 * (then c is not listed and no callback comes). */
int sip_tu_client_start(sip_tu *tu, sip_tu_client *c, sip_msg *m,
                        const sip_dest *dest, char branch[SIP_TXN_BRANCH_SIZE]);

/* The listed client transaction whose branch is branch (len bytes), or
 * NULL. */
sip_tu_client *sip_tu_client_find(sip_tu *tu, const char *branch, size_t len);

/* §9.1: CANCEL the INVITE client transaction ict, started by
 * sip_tu_request for invite (the request as given there) with branch: the
 * same Request-URI, top Via (same branch), Route lines, From, To, Call-ID
 * and CSeq number, to the same destination, over a new non-INVITE client
 * transaction whose responses are not reported. The caller sends it only
 * after a provisional response (§9.1). When no final response comes
 * within 64*T1 after it, the INVITE transaction ends with a made-up 408
 * (§9.1; sip_txn_cancel_sent). Returns 0, SIP_EINVAL (ict is not
 * an INVITE client transaction waiting for its final response, or the
 * CANCEL cannot be written), or sip_txn_request's code. */
int sip_tu_cancel_request(sip_tu *tu, sip_txn *ict, sip_msg *invite,
                          const char *branch);

#endif
