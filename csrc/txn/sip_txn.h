/* The transaction layer (RFC 3261 §17, with RFC 6026): the four state
 * machines (INVITE / non-INVITE, client / server), request and response
 * matching (§17.1.3, §17.2.3 incl. the RFC 2543 fallback), retransmission
 * and timeout timers, over one transport manager (sip_transport.h) on one
 * libuv loop.
 *
 * Threading: everything runs on the loop's thread; nothing is thread-safe.
 *
 * Wiring: the owner of the sip_tp creates the layer over it and forwards
 * every message its on_message callback receives to sip_txl_receive(). The
 * layer absorbs retransmissions, routes responses to client transactions,
 * creates server transactions for new requests and calls the callbacks of
 * sip_txl_config for what the layer above (the TU) must see.
 *
 * Transactions (sip_txn) are reference counted. Lifetime rules:
 *  - The layer holds one reference while a transaction is not Terminated.
 *    Termination takes it out of the matching tables at once (nothing
 *    matches it afterwards) and stops its timers; the layer drops its
 *    reference later, from the loop, never inside an API call. So a pointer
 *    handed to the TU (the out parameter of sip_txn_request, the txn of
 *    on_request / on_ack, sip_txn_find_cancelled's result, any callback's
 *    txn) stays valid at least until control returns to the loop.
 *  - To keep one across asynchronous waits, take a reference with
 *    sip_txn_ref() and drop it with sip_txn_unref(). A referenced
 *    transaction that has terminated stays readable (sip_txn_state() says
 *    SIP_TXN_TERMINATED) and callable (sip_txn_reply() fails cleanly); it
 *    never calls back again.
 *  - Callbacks never see a freed transaction: the layer holds a reference
 *    around every callback.
 *  - The SIP_TXN_EV_TERMINATED event (sip_txn_set_event_cb) tells the TU
 *    when the layer is about to drop its reference: the natural place to
 *    drop the TU's own.
 *
 * Messages: received ones come as sip_msg + sip_rxbuf (sip_transport.h);
 * msg is valid during the callback, and a callback that keeps it takes a
 * reference with sip_rxbuf_ref(rx). Messages the TU sends through a
 * transaction are complete byte strings, copied by the layer.
 *
 * Errors: functions return >= 0 on success or a negative code: SIP codes
 * (sip_error.h) or libuv codes (UV_E*), named by sip_tp_errname(). The
 * layer's own conditions: SIP_EINVAL (misuse: bad arguments, a request
 * without a z9hG4bK branch, a second final response, a transaction that is
 * not in a state for it), UV_EAGAIN (max_transactions reached), UV_EEXIST
 * (a client transaction with that branch and method exists), UV_ECANCELED
 * (the layer is closing). Transport codes pass through.
 *
 * Timers: one uv_timer_t per layer drives a binary min-heap of deadlines
 * (at most two per transaction). Times are uv_now() milliseconds; arming
 * one calls uv_update_time() first, so a call from outside a callback or
 * after a long one counts from the real now. Retransmission intervals are
 * anchored at the previous deadline (a late loop does not stretch the
 * schedule). */
#ifndef SIP_TXN_H
#define SIP_TXN_H

#include <stdint.h>
#include <uv.h>

#include "sip_msg.h"
#include "sip_transport.h"

/* RFC 3261 §8.1.1.7: branches of RFC 3261 elements start with this. */
#define SIP_TXN_MAGIC "z9hG4bK"

/* Buffer sizes incl. the NUL of sip_txn_new_branch / sip_txn_new_tag. */
#define SIP_TXN_BRANCH_SIZE 30 /* "z9hG4bK" + 22 chars (132 random bits) */
#define SIP_TXN_TAG_SIZE 17    /* 16 hex digits (64 random bits) */

/* Defaults (§17.1.1.1, §17.1.2.2, Table 4). */
#define SIP_TXN_T1_MS 500
#define SIP_TXN_T2_MS 4000
#define SIP_TXN_T4_MS 5000
#define SIP_TXN_TIMER_D_MS 32000    /* "at least 32 seconds" (§17.1.1.2) */
#define SIP_TXN_TRYING_DELAY_MS 200 /* §17.2.1 */
#define SIP_TXN_MAX_TRANSACTIONS 500000
/* trying_delay_ms value that disables the automatic 100 Trying. */
#define SIP_TXN_NO_TRYING UINT32_MAX

typedef struct sip_txl sip_txl; /* the layer */
typedef struct sip_txn sip_txn; /* one transaction */

enum sip_txn_kind {
  SIP_TXN_ICT = 0,  /* INVITE client */
  SIP_TXN_NICT = 1, /* non-INVITE client */
  SIP_TXN_IST = 2,  /* INVITE server */
  SIP_TXN_NIST = 3, /* non-INVITE server */
};

enum sip_txn_state {
  SIP_TXN_CALLING = 1, /* ICT */
  SIP_TXN_TRYING,      /* NICT, NIST */
  SIP_TXN_PROCEEDING,  /* all four */
  SIP_TXN_COMPLETED,   /* all four */
  SIP_TXN_CONFIRMED,   /* IST: ACK for a non-2xx received */
  SIP_TXN_ACCEPTED,    /* ICT, IST: 2xx received / sent (RFC 6026) */
  SIP_TXN_TERMINATED,
};

/* "Calling", "Trying", ... "Terminated"; "?" otherwise. */
const char *sip_txn_state_name(int state);
/* "ICT", "NICT", "IST", "NIST"; "?" otherwise. */
const char *sip_txn_kind_name(int kind);

/* Events of sip_txn_set_event_cb (err is 0 unless said otherwise). */
enum sip_txn_event {
  /* IST: Timer H fired, no ACK came for the non-2xx final response. The
   * transaction is Terminated. */
  SIP_TXN_EV_TIMEOUT = 1,
  /* Server transactions: sending a response failed asynchronously (err:
   * the transport's code), or the automatic 100 Trying could not be sent.
   * §17.2.4: the transaction is Terminated. (A failure sip_txn_reply can
   * see at once is its return value instead.) Client transactions report
   * transport failures as a 503 response. */
  SIP_TXN_EV_TRANSPORT = 2,
  /* Any transaction, once, from the loop, after it became Terminated and
   * after every other callback: the layer drops its reference when this
   * returns. Not called when sip_txl_close() terminates transactions. */
  SIP_TXN_EV_TERMINATED = 3,
};

/* A response for a client transaction. status is msg's status, or for a
 * response the layer made up (msg == NULL, rx == NULL): 408 when Timer B/F
 * fired, 503 when the transport failed (§17.1.4, §8.1.3.1;
 * sip_txn_error() has the transport's code). Fires for: every provisional
 * response in Calling/Trying/Proceeding; the first final response; for an
 * INVITE, every 2xx received in Accepted (retransmissions and forks: the TU
 * acknowledges 2xx itself). Retransmitted non-2xx finals are absorbed (the
 * ACK is re-sent by the layer) and never reach the TU. */
typedef void (*sip_txn_response_cb)(void *arg, sip_txn *t, int status,
                                    sip_msg *msg, sip_rxbuf *rx);
typedef void (*sip_txn_event_cb)(void *arg, sip_txn *t, int event, int err);

/* ---- the layer
 * ------------------------------------------------------------ */

typedef struct sip_txl_config {
  uint32_t t1_ms;            /* RTT estimate (default 500) */
  uint32_t t2_ms;            /* max retransmit interval, non-INVITE and
                                INVITE responses (default 4000) */
  uint32_t t4_ms;            /* max time a message stays in the network
                                (default 5000): Timers I and K */
  uint32_t timer_d_ms;       /* ICT wait for response retransmissions,
                                unreliable transports (default 32000) */
  uint32_t trying_delay_ms;  /* IST: send 100 Trying when the TU has not
                                answered within this (default 200;
                                SIP_TXN_NO_TRYING: never) */
  uint32_t max_transactions; /* live ones, client + server (default
                                500000). Beyond it a new request other than
                                ACK is answered 503 by the layer itself and
                                sip_txn_request fails with UV_EAGAIN. */

  void *ud; /* passed back to the callbacks below (all optional) */
  /* A new request (not ACK): the server transaction t was created for it
   * (state Proceeding for INVITE, Trying otherwise). Answer with
   * sip_txn_reply, now or later (keep t with sip_txn_ref across waits; keep
   * msg with sip_rxbuf_ref(rx)). A CANCEL gets its own transaction here;
   * sip_txn_find_cancelled() finds the INVITE it cancels. */
  void (*on_request)(void *ud, sip_txn *t, sip_msg *msg, sip_rxbuf *rx,
                     const sip_src *src);
  /* An ACK the layer does not absorb: t == NULL when it matched no
   * transaction (the ACK for a 2xx: its own branch), or the INVITE server
   * transaction in Accepted it matched (same branch, or RFC 2543 rules). */
  void (*on_ack)(void *ud, sip_txn *t, sip_msg *msg, sip_rxbuf *rx,
                 const sip_src *src);
  /* A response that matched no client transaction (§17.1.3): for a proxy,
   * forwarded statelessly (§16.7 step 5, e.g. 2xx retransmissions). */
  void (*on_stray_response)(void *ud, sip_msg *msg, sip_rxbuf *rx,
                            const sip_src *src);
} sip_txl_config;

/* Defaults as documented above, callbacks NULL. */
void sip_txl_config_init(sip_txl_config *cfg);

/* Create a layer sending through tp on loop (tp must outlive the layer's
 * use of it: close the layer first, then tp). cfg is copied; zero timer
 * values are replaced by the defaults. Returns 0 and sets *out, or
 * SIP_ENOMEM / SIP_EINVAL. */
int sip_txl_new(uv_loop_t *loop, sip_tp *tp, const sip_txl_config *cfg,
                sip_txl **out);

/* Terminate every transaction silently (no callbacks of any kind), stop
 * using tp, and free the layer asynchronously: memory is released once the
 * timer handle is closed and every transaction's references are gone (the
 * TU's, and transport send callbacks still pending: closing tp completes
 * those). Then cb(arg) runs (cb may be NULL). txl must not be used after
 * this call, except through sip_txn_* on transactions the TU still
 * references (they are Terminated). */
void sip_txl_close(sip_txl *txl, void (*cb)(void *arg), void *arg);

/* What sip_txl_receive did with a message. */
enum sip_txl_rx {
  SIP_TXL_RX_REQUEST = 0,  /* new server transaction, on_request called */
  SIP_TXL_RX_ABSORBED = 1, /* retransmission / ACK absorbed by a txn */
  SIP_TXL_RX_ACK = 2,      /* on_ack called */
  SIP_TXL_RX_RESPONSE = 3, /* matched a client transaction */
  SIP_TXL_RX_STRAY = 4,    /* on_stray_response called */
  SIP_TXL_RX_REJECTED = 5, /* max_transactions: 503 sent by the layer */
};

/* Hand a received message to the layer (from sip_tp_config.on_message; msg
 * is rx->msg; msg's lazily parsed fields get parsed). The layer keeps no
 * reference to rx (a transaction copies what it needs: its keys, the top
 * Via, a prebuilt 100 Trying), the caller's reference is untouched. Returns a
 * SIP_TXL_RX_* value, or a negative code when a request lacks what matching
 * needs (no parseable top Via: SIP_EVIA; CSeq: SIP_ECSEQ / SIP_ERANGE; for RFC
 * 2543 matching also Call-ID, From, To) -- nothing was called then and the
 * caller may answer 400 -- or UV_ECANCELED when the layer is closing. A
 * response without a usable Via or CSeq goes to on_stray_response. */
int sip_txl_receive(sip_txl *txl, sip_msg *msg, sip_rxbuf *rx,
                    const sip_src *src);

typedef struct sip_txl_counters {
  uint32_t live[4];         /* transactions not Terminated, by sip_txn_kind */
  uint32_t live_total;      /* sum of live[] */
  uint32_t zombies;         /* Terminated, still referenced (TU references,
                               transport callbacks pending) */
  uint64_t created[4];      /* by kind */
  uint64_t timeouts;        /* Timer B / F (408 given to the TU), Timer H */
  uint64_t retransmissions; /* sent again: requests (A, E), responses (G,
                               and for retransmitted requests), ACKs (for
                               retransmitted non-2xx finals) */
  uint64_t absorbed;        /* retransmitted requests and responses, and
                               ACKs, consumed by their transaction */
  uint64_t stray_responses; /* to on_stray_response */
  uint64_t stray_acks;      /* ACKs that matched no transaction */
  uint64_t acks_passed;     /* ACKs of an IST in Accepted, to on_ack */
  uint64_t transport_errors;
  uint64_t rejected;    /* over max_transactions: requests answered 503
                           and sip_txn_request calls refused */
  uint64_t trying_sent; /* automatic 100 Trying */
  uint64_t acks_sent;   /* ACKs built for non-2xx finals (first sends) */
  uint64_t mem_bytes;   /* bytes the layer has malloc'd now: transactions
                           (structs, keys, stored messages), the matching
                           tables, the timer heap, scratch space */
  uint64_t txn_bytes;   /* of mem_bytes, the transactions' part */
  /* requests moved to TCP for their size (§18.1.1) whose connection
   * failed, sent over UDP instead */
  uint64_t udp_fallbacks;
  uint64_t retx_2xx;      /* 2xx re-sent by sip_txn_retransmit_2xx */
  uint64_t unacked_2xx;   /* of those, ended by Timer L without an ACK */
  uint64_t retx_1xx;      /* reliable 1xx re-sent (sip_txn_retransmit_1xx) */
  uint64_t unpracked_1xx; /* reliable 1xx without PRACK for 64*T1: the
                            INVITE failed with the stored final */
} sip_txl_counters;

/* Copy the counters into *out. */
void sip_txl_stats(const sip_txl *txl, sip_txl_counters *out);

/* The Server header field of the responses the layer makes itself (100
 * Trying, 503 past max_transactions) and, through sip_txl_server_line, of
 * those its users make: value is 1..SIP_TXL_SERVER_MAX bytes without
 * control characters; NULL for none (the default). Returns 0, or
 * SIP_EINVAL (nothing changed). */
#define SIP_TXL_SERVER_MAX 200
int sip_txl_set_server(sip_txl *txl, const char *value);

/* "Server: <value>\r\n", or an empty string when none is set. */
sip_str sip_txl_server_line(const sip_txl *txl);

/* ---- client transactions
 * -------------------------------------------------- */

/* n random bytes: the process's one generator (getrandom(2) through a
 * pool; every byte served once), behind branches, tags and the Lua
 * layer's identifiers. */
void sip_txn_random(void *out, size_t n);

/* A new branch: SIP_TXN_MAGIC and 22 base64url characters (132 bits from
 * getrandom(2)), NUL-terminated. Returns its length (29). */
size_t sip_txn_new_branch(char out[SIP_TXN_BRANCH_SIZE]);
/* A random tag (From/To) of 16 lower-case hex digits, NUL-terminated: the
 * one tag format (sip_tu_new_tag, sip.new_tag in Lua).
 * Returns its length (16). */
size_t sip_txn_new_tag(char out[SIP_TXN_TAG_SIZE]);

/* Start a client transaction: bytes[0..len) is the complete request, not
 * ACK (a 2xx ACK is no transaction: send it with sip_tp_send), with its top
 * Via and a branch starting with z9hG4bK in place (the TU builds the Via;
 * sip_txn_new_branch makes a branch); its CSeq method is the request's.
 * The bytes are copied and sent to dest (copied, tls_name included); the
 * transport of dest decides reliability (UDP: Timers A / E retransmit; the
 * §18.1.1 size rule is the caller's, see sip_tp_request_dest). For a
 * 300-699 final to an INVITE the layer sends the ACK of §17.1.1.3 itself:
 * "ACK <Request-URI> SIP/2.0", the request's top Via only, its Route
 * fields, Max-Forwards: 70, its From, the response's To, its Call-ID,
 * "CSeq: <number> ACK", Content-Length: 0; it is re-sent for every
 * retransmission of that final until Timer D.
 * on_response(arg, ...) reports responses (see sip_txn_response_cb); it
 * may be NULL. Returns 0 and sets *out (may be NULL) to the transaction
 * (see the lifetime rules), or SIP_EINVAL (unparseable request, ACK, no
 * magic-cookie branch, CSeq method mismatch, bad dest), UV_EEXIST, UV_EAGAIN
 * (max_transactions), UV_ECANCELED, SIP_ENOMEM. A send failure is not a
 * return code: it is delivered as a 503 from the loop, like a later one. */
int sip_txn_request(sip_txl *txl, const char *bytes, size_t len,
                    const sip_dest *dest, sip_txn_response_cb on_response,
                    void *arg, sip_txn **out);

/* sip_txn_request for a request that would have gone over UDP but is too
 * large for it (§18.1.1, sip_tp_request_switch): bytes (its TCP form) go
 * to dest; when that fails -- the connection is refused (a UA listening on
 * UDP only), reset, times out ... -- before any response came, the
 * transaction goes on with udp_bytes (the same request written for UDP:
 * same branch and method) to udp_dest, with the timers of an unreliable
 * transport (§18.1.1: "SHOULD retry the request, using UDP"); the TU sees
 * the responses as usual, and sip_txn_dest() tells where it went. Same
 * return contract as sip_txn_request (SIP_EINVAL also for a udp_dest that
 * is not UDP). */
int sip_txn_request_switched(sip_txl *txl, const char *bytes, size_t len,
                             const sip_dest *dest, const char *udp_bytes,
                             size_t udp_len, const sip_dest *udp_dest,
                             sip_txn_response_cb on_response, void *arg,
                             sip_txn **out);

/* Where a client transaction sends (transport, address, connection,
 * listener; tls_name NULL): after a §18.1.1 fallback, the UDP destination.
 * 0, or SIP_EINVAL for a server transaction. */
int sip_txn_dest(const sip_txn *t, sip_dest *out);

/* Stop calling back (on_response and the event callback) without touching
 * the state machine: retransmissions, the ACK for a non-2xx and timers go
 * on; whatever arrives later is handled and dropped. For both kinds. */
void sip_txn_detach(sip_txn *t);

/* ---- server transactions
 * -------------------------------------------------- */

/* Send a response (bytes complete, copied) over a server transaction, to
 * the destination §18.2.2 gives for the request's top Via and source
 * (sip_tp_send_response). status is the response's code (100..699).
 *  - provisional (1xx): any number, while no final was sent; the last one
 *    is re-sent when the request is retransmitted; any response cancels the
 *    automatic 100 Trying;
 *  - final: once. IST 2xx -> Accepted (Timer L = 64*T1; further 2xx, the
 *    TU's retransmissions, are allowed and sent as they come); IST 300-699
 *    -> Completed (Timer G retransmits on UDP until the ACK, Timer H);
 *    NIST -> Completed (Timer J; on reliable transports 0, counted from
 *    the transport's report on the send, so a failure is still told).
 * Returns 0, SIP_EINVAL (not a server transaction, status out of range, a
 * final response already sent -- except 2xx in Accepted --, Terminated),
 * or the transport's code when the send failed at once: the transaction is
 * then Terminated (§17.2.4) and no event is raised for that failure. */
int sip_txn_reply(sip_txn *t, int status, const char *bytes, size_t len);

/* The UAS core's 2xx retransmission (§13.3.1.4), run on the layer's timer
 * heap for the TU: call it on an INVITE server transaction right after
 * sip_txn_reply sent the 2xx `bytes` (state Accepted). Over an unreliable
 * transport the layer re-sends a copy at T1, 2*T1, 4*T1, ... (capped at
 * T2) until sip_txn_ack_2xx() or Timer L (64*T1) ends the transaction
 * (counted in unacked_2xx). A proxy relaying a 2xx does not call it
 * (§16.7). Returns 0 (also over a reliable transport: nothing to do),
 * SIP_EINVAL (not an IST in Accepted, re-sending already) or SIP_ENOMEM. */
int sip_txn_retransmit_2xx(sip_txn *t, const char *bytes, size_t len);

/* §9.1: a CANCEL was sent for the INVITE client transaction t: when no
 * final response comes within 64*T1 from now, the layer ends t as Timer B
 * would (a made-up 408 to the TU; counted in timeouts). In Calling, Timer
 * B already runs. Returns 0, or SIP_EINVAL (not an ICT in Calling or
 * Proceeding). */
int sip_txn_cancel_sent(sip_txn *t);

/* RFC 3262 §3, on the layer's timer heap for the TU: the provisional response
 * (101-199) just sent on the INVITE server transaction t (sip_txn_reply, state
 * Proceeding) is reliable. Over an unreliable transport the layer re-sends it
 * at T1, 2*T1, 4*T1, ... (no T2 cap); on any transport, when no
 * sip_txn_prack() came after 64*T1, it sends `fail` (a complete 5xx final
 * response to the INVITE, built by the TU, e.g. with the 1xx's To tag) as
 * sip_txn_reply would (counted in unpracked_1xx). A final response sent
 * meanwhile ends it; a further 1xx is refused (SIP_EINVAL) until the PRACK.
 * Returns 0, SIP_EINVAL (not an IST in Proceeding whose last response is a
 * 101-199, a reliable 1xx pending already, fail not a 5xx) or SIP_ENOMEM. */
int sip_txn_retransmit_1xx(sip_txn *t, const char *fail, size_t fail_len);

/* The PRACK for the reliable 1xx of t came (the TU matched its RAck): stop
 * re-sending it and forget the stored final. Returns 1 when t had one
 * pending, 0 otherwise (NULL too). */
int sip_txn_prack(sip_txn *t);

/* Does t have a reliable 1xx awaiting its PRACK? */
int sip_txn_awaits_prack(const sip_txn *t);

/* The ACK for the 2xx re-sent by sip_txn_retransmit_2xx came (the TU
 * matches it: the ACK of a 2xx has its own branch): stop re-sending. The
 * transaction stays Accepted until Timer L. Idempotent; NULL is ignored. */
void sip_txn_ack_2xx(sip_txn *t);

/* Is t re-sending its 2xx (sip_txn_retransmit_2xx, no ACK yet)? */
int sip_txn_awaits_ack(const sip_txn *t);

/* The INVITE server transaction a CANCEL request cancels (§9.2: matched
 * like the INVITE's retransmission would be, by branch and sent-by, or by
 * the RFC 2543 rules), not Terminated; NULL when none or msg is not a
 * CANCEL. The pointer follows the lifetime rules (take a reference to keep
 * it). */
sip_txn *sip_txn_find_cancelled(sip_txl *txl, sip_msg *msg);

/* The TU will never answer this server transaction (a script dropped the
 * request, or its handle was collected unanswered). No-op once a final
 * response was sent, or when Terminated. The pending automatic 100 Trying
 * is cancelled and the callbacks are detached (as sip_txn_detach); the
 * transaction stays for 64*T1 more -- as long as a client retransmits
 * (Timers B, F) -- absorbing retransmissions of the request (the last
 * provisional, if one was sent, is re-sent as usual), then terminates and
 * frees its max_transactions slot. Without this an unanswered NIST (Trying)
 * or IST (Proceeding) has no timer and lives for ever. For a client
 * transaction: sip_txn_detach. */
void sip_txn_abandon(sip_txn *t);

/* Event callback (see enum sip_txn_event), replacing any previous one; for
 * either kind. cb may be NULL. */
void sip_txn_set_event_cb(sip_txn *t, sip_txn_event_cb cb, void *arg);

/* ---- any transaction
 * ------------------------------------------------------ */

void sip_txn_ref(sip_txn *t);
/* Drops a reference taken with sip_txn_ref; the last one frees. */
void sip_txn_unref(sip_txn *t);

int sip_txn_kind(const sip_txn *t);  /* enum sip_txn_kind */
int sip_txn_state(const sip_txn *t); /* enum sip_txn_state */
/* Last status received (client) or sent (server), 0 when none. For a
 * client ended by Timer B/F or a transport error: 408 / 503. */
int sip_txn_status(const sip_txn *t);
/* The transport code that terminated the transaction, else 0. */
int sip_txn_error(const sip_txn *t);
/* The method (CSeq method for clients, request method for servers) and
 * the top Via branch (as received for servers; may lack the magic cookie
 * or be empty for RFC 2543 peers). Slices into the transaction, valid while
 * it is referenced. */
sip_str sip_txn_method(const sip_txn *t);
sip_str sip_txn_branch(const sip_txn *t);
/* One pointer of the TU's own (initially NULL). */
void sip_txn_set_udata(sip_txn *t, void *udata);
void *sip_txn_udata(const sip_txn *t);

#endif
