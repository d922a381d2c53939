/* The proxy core (RFC 3261 §16): request validation (§16.3), Route
 * preprocessing (§16.4), forwarding (§16.6), response processing (§16.7),
 * CANCEL (§16.10), Timer C (§16.8), stateless forwarding (§16.11), forking
 * (parallel, serial by q-value groups) and the per-request response
 * context. Pure C over the transport (sip_transport.h) and the transaction
 * layer (sip_txn.h) on one libuv loop; no Lua. The Lua binding
 * (csrc/lua/proxy.c) drives it: a script decides the targets, the core does
 * the rest and reports the outcome of each round through one callback.
 *
 * Threading: the loop's thread only.
 *
 * Two layers in this header:
 *  - message functions (proxy_msg.c): no libuv, no state, unit-tested on
 *    their own: loop hash and loop detection, Route preprocessing, building
 *    the forwarded request, the forwarded response, the CANCEL of a branch,
 *    best response selection;
 *  - the engine (proxy.c): sip_proxy (one per server) and sip_proxy_ctx (one
 *    per proxied request: the response context of §16.2).
 *
 * Branch parameters of this proxy: "z9hG4bK" + 16 hex digits (the §16.6
 * item 8 hash of the request as received: loop detection) + "." + a
 * random part (stateful) or 16 more hex digits of a hash that includes the
 * incoming branch (stateless, §16.11: a retransmission gets the same branch).
 *
 * Errors: negative codes of sip_error.h or libuv (sip_tp_errname names
 * both). */
#ifndef SIP_PROXY_H
#define SIP_PROXY_H

#include <stdint.h>
#include <uv.h>

#include "sip_msg.h"
#include "sip_transport.h"
#include "sip_tree.h"
#include "sip_txn.h"

/* ---- "myself": the addresses and names this proxy answers to ---------- */

#define SIP_PROXY_MAX_ALIASES 16

typedef struct sip_proxy_addr {
  int id;           /* listener id */
  int transport;    /* SIP_TP_* */
  int family;       /* AF_INET / AF_INET6 */
  uint16_t port;    /* bound port */
  char host[48];    /* "127.0.0.1" or "[::1]" (brackets kept, as in URIs) */
  char sent_by[64]; /* host:port */
} sip_proxy_addr;

typedef struct sip_proxy_self {
  sip_proxy_addr addr[SIP_TP_MAX_LISTENERS];
  int naddr;
  char *alias[SIP_PROXY_MAX_ALIASES]; /* host names (malloc'd, lower case) */
  int nalias;
} sip_proxy_self;

/* Does uri name this proxy: a listener's address and port (the default
 * port 5060, 5061 for sips, when the URI has none), or an alias (any
 * port)? 1 or 0. */
int sip_proxy_is_self(const sip_proxy_self *self, const sip_uri *uri);
/* Is a Via's sent-by one of the listeners (host and port)? */
int sip_proxy_via_is_self(const sip_proxy_self *self, const sip_via *v);

/* ---- message functions (proxy_msg.c) ------------------------------------ */

/* The §16.6 item 8 hash as 16 hex digits (NUL-terminated out[17]) of m:
 * the Request-URI as received (before any edit), the From and To tags,
 * Call-ID, CSeq number, the branch and sent-by of `via` (the topmost Via
 * as received, i.e. the one below this proxy's own in a looped request),
 * and the Proxy-Require and Proxy-Authorization values. 0 or the parse
 * error of a field. */
int sip_proxy_loop_hash(sip_msg *m, const sip_via *via, char out[17]);

/* §16.3 item 4: 1 when m carries a Via of this proxy whose branch has the
 * loop hash m would get now (a loop), 0 otherwise (no such Via, or a
 * spiral). */
int sip_proxy_detect_loop(sip_msg *m, const sip_proxy_self *self);

/* §16.4: when the Request-URI is one this proxy put in a Record-Route (its
 * address, no user part, lr: a strict router sent it), the last Route value
 * becomes the Request-URI; then a first Route value naming this proxy is
 * removed (and a second one too: double Record-Route). Returns a mask of
 * SIP_PROXY_ROUTE_* (0: no Route at all, nothing done) or a negative code. */
enum {
  SIP_PROXY_ROUTE_PRESENT = 1, /* the request had Route values */
  SIP_PROXY_ROUTE_OWN = 2,     /* this proxy's value(s) removed */
  SIP_PROXY_ROUTE_STRICT = 4,  /* strict-router fix-up of the R-URI */
  SIP_PROXY_ROUTE_MORE = 8,    /* Route values remain (next hop) */
};
int sip_proxy_route_pre(sip_msg *m, const sip_proxy_self *self);

/* §16.6 item 6: when the first Route value has no lr (a strict router
 * next), the Request-URI goes to the end of the Route set and the first
 * Route value becomes the Request-URI. 1 when done, 0 when not needed. */
int sip_proxy_route_strict_next(sip_msg *m);

/* §16.6 item 3: Max-Forwards decremented (70 added when absent). 0,
 * SIP_ERANGE when it is 0 already (the caller answers 483), or an edit
 * error. */
int sip_proxy_decrement_mf(sip_msg *m);

/* Remove the first value of the first header `id` (a list header: Via,
 * Route): its line when it is the only value, else the value from the
 * line. 0, SIP_ENOTFOUND, or an edit error. */
int sip_proxy_pop_first(sip_msg *m, int id);

/* The pieces a branch adds to the (already edited) request m. */
typedef struct sip_proxy_fwd {
  sip_str ruri;  /* new Request-URI; absent: m's own */
  sip_str via;   /* the new top Via's value */
  sip_str extra; /* complete header lines (CRLF each) right after the Via:
                    Record-Route and pushed Route values */
} sip_proxy_fwd;

/* Bytes needed by sip_proxy_write_request (an upper bound). */
size_t sip_proxy_request_size(const sip_msg *m, const sip_proxy_fwd *f);
/* Write the forwarded request into buf[0..cap): start line (with f->ruri),
 * Via, extra, then m's header lines and body as sip_msg_write gives them.
 * Returns the length, or SIP_EINVAL (cap too small). */
int sip_proxy_write_request(const sip_msg *m, const sip_proxy_fwd *f, char *buf,
                            size_t cap);

/* The CANCEL of a branch (§9.1): Request-URI, the branch's top Via (value),
 * its Route lines (route: complete lines or empty), From, To, Call-ID and
 * CSeq number of req. Returns the length or a negative code. */
int sip_proxy_write_cancel(sip_msg *req, sip_str ruri, sip_str via,
                           sip_str route, char *buf, size_t cap);

/* §16.7 step 6: index of the best of n final statuses (0 = no response
 * yet, skipped): a 2xx if any (forwarded already by then), else a 6xx,
 * else the lowest class, preferring 401, 407, 415, 420, 484 within 4xx;
 * the first in order among equals. -1 when no status is final. */
int sip_proxy_best(const uint16_t *status, int n);

/* RFC 3263 §4.3: does a final status move a request to its next DNS
 * target? A 503, or a 408 / 503 made up by the client transaction (made_up:
 * a timeout, a transport error). 1 or 0. The one rule of the proxy core's
 * branches and of srv:send (luasip.dns.should_failover). */
int sip_proxy_failover_status(int status, int made_up);

/* Prepare a response received on a branch for forwarding: its top Via
 * (this proxy's) removed, 503 turned into 500 (§16.7 step 6), and extra
 * header lines (CRLF each: aggregated challenges) added. Edits res. */
int sip_proxy_response_edit(sip_msg *res, sip_str extra);

/* A Proxy-Require tag not in supported (NULL-terminated list, may be NULL):
 * 1 and the tags copied into out (comma-separated), else 0. */
int sip_proxy_unsupported(sip_msg *m, const char *const *supported, char *out,
                          size_t cap);

/* ---- the engine (proxy.c) ------------------------------------------------ */

typedef struct sip_proxy sip_proxy;
typedef struct sip_proxy_ctx sip_proxy_ctx;

typedef struct sip_proxy_counters {
  uint64_t relayed;             /* requests relayed statefully (rounds) */
  uint64_t branches;            /* client branches created */
  uint64_t forwarded_stateless; /* requests forwarded without state */
  uint64_t responses_forwarded; /* responses sent upstream */
  uint64_t strays_forwarded;    /* responses forwarded without a txn */
  uint64_t cancels_sent;        /* CANCELs sent on branches */
  uint64_t loops;               /* 482 */
  uint64_t too_many_hops;       /* 483 */
  uint64_t timer_c;             /* Timer C fired */
  uint64_t live_ctx;            /* response contexts alive now */
  uint64_t ctx_bytes;           /* their malloc'd bytes now */
} sip_proxy_counters;

/* The server's proxy: over tp and txl (both must outlive its use: close the
 * proxy first). 0 and *out, or SIP_ENOMEM. */
int sip_proxy_new(uv_loop_t *loop, sip_tp *tp, sip_txl *txl, sip_proxy **out);
/* Every context is detached (no more callbacks, client transactions
 * released, timers closed); memory of contexts still referenced goes when
 * their last reference goes. p is freed. */
void sip_proxy_close(sip_proxy *p);
/* Re-read the listeners (call after a listener was added). */
void sip_proxy_update_listeners(sip_proxy *p);
/* Add a host name this proxy answers to (Route / Request-URI checks). */
int sip_proxy_add_alias(sip_proxy *p, const char *host, size_t len);
const sip_proxy_self *sip_proxy_get_self(const sip_proxy *p);
void sip_proxy_stats(const sip_proxy *p, sip_proxy_counters *out);
/* The counters as fields of e's current table: proxy_relayed,
 * proxy_branches, ... (the names srv:stats() shows). */
void sip_proxy_emit_stats(const sip_proxy *p, const sip_tree_emitter *e);
/* Timer C (ms, default 180000). */
void sip_proxy_set_timer_c(sip_proxy *p, uint32_t ms);

/* A target of a relay round. */
typedef struct sip_proxy_target {
  sip_str uri;      /* the Request-URI of the branch; absent: the request's */
  sip_str dest;     /* "udp:192.0.2.1:5060": where to send (NAT received);
                       absent: the next hop from Route / Request-URI */
  sip_str route;    /* Route values to push (a Path set), comma-separated */
  int q;            /* 0..1000, -1 when absent (= 1000) */
  sip_str alt;      /* more destinations of this target, space-separated dest
                       specs (its further RFC 3263 targets): when its branch
                       fails with a transport error, a timeout (a made-up 408
                       / 503) or a 503, the next one gets a new branch (a new
                       transaction and Via branch; §4.3); absent: none */
  sip_str tls_name; /* with a TLS dest / alt: the name the certificate must
                       carry (RFC 5922: the domain of the URI the DNS
                       targets came from); absent: the address is verified */
} sip_proxy_target;

/* The target v (just got from the tree r: a URI string, or a table of uri
 * (else contact), dest (else received), route (else path: a list of Path
 * values joined as one Route set), alt, tls_name, q (0..1, clamped) --
 * the shape lua/luasip/proxy.lua documents) into *t; a table is closed
 * here. Strings point into the tree (the joined path: r->keep). Returns
 * 0, SIP_EINVAL (neither a string nor a table) or SIP_ENOMEM. */
int sip_proxy_read_target(const sip_tree_reader *r, const sip_tree_val *v,
                          sip_proxy_target *t);

/* The targets of a relay: v nil (none: 0), one target (a string, or a
 * table with a uri or contact string), or a list of targets, into
 * t[0..max). Returns the count, SIP_ENOTFOUND (an empty list),
 * SIP_ETOOMANY (more than max), or sip_proxy_read_target's error. A table
 * v is closed here. */
int sip_proxy_read_targets(const sip_tree_reader *r, const sip_tree_val *v,
                           sip_proxy_target *t, int max);

enum sip_proxy_fork {
  SIP_PROXY_PARALLEL = 0,
  SIP_PROXY_SERIAL = 1, /* q-value groups, highest first, each in parallel */
};

typedef struct sip_proxy_opts {
  int fork;                   /* enum sip_proxy_fork */
  uint32_t timeout_ms;        /* whole round (0: none): pending branches are
                                 cancelled when it fires */
  uint32_t branch_timeout_ms; /* one branch / serial group without a final
                                 response (0: none): cancelled, the next
                                 group starts */
  uint32_t timer_c_ms;        /* 0: the proxy's */
  int recurse;                /* 3xx Contacts become new branches (§16.5) */
  int record_route;           /* add Record-Route (per branch: the right
                                 transport, double when in and out differ) */
  sip_str rr_params;          /* appended to the Record-Route URI (";a=b") */
  const uint16_t *failover;   /* serial: statuses that move to the next group
                                 (0-terminated); NULL: any 3xx-5xx */
  int routed;                 /* §16.4 done by the caller already */
} sip_proxy_opts;

/* The options of a relay from the tree r, its current table (left open):
 * fork ("parallel" | "serial"), timeout, branch_timeout, timer_c (seconds,
 * 0..7 days, a number or a string of one), recurse, failover (a list of
 * statuses; the first 16 count) into *o (failover: into failover[17],
 * 0-terminated). The shape lua/luasip/proxy.lua documents. Returns 0,
 * SIP_EINVAL (not a value of the option's kind) or SIP_ERANGE (seconds
 * out of range), *bad naming the option. */
int sip_proxy_read_opts(const sip_tree_reader *r, sip_proxy_opts *o,
                        uint16_t failover[17], const char **bad);

/* Events of the context callback. */
enum sip_proxy_event {
  /* a provisional response (101-199) on branch `branch`; msg/rx are it.
   * Return 1 to drop it (not forwarded), 0 to forward it (after any edit) */
  SIP_PROXY_EV_PROVISIONAL = 1,
  /* a final response on a branch (msg NULL for a made-up 408 / 503) */
  SIP_PROXY_EV_FINAL = 2,
  /* the round is over: status is the best response's (msg/rx, or NULL
   * when made up: 408, 487, 500); a 2xx was already forwarded, anything
   * else waits for sip_proxy_finish or a reply of the script */
  SIP_PROXY_EV_DONE = 3,
  /* the context is being freed (release the user data) */
  SIP_PROXY_EV_FREE = 4,
  /* branch `branch` failed (status; msg NULL when made up) and its target
   * moves to its next `alt` destination (RFC 3263 §4.3): sent before the
   * new branch starts; sip_proxy_branch_dest names the failed one */
  SIP_PROXY_EV_FAILOVER = 5,
};
typedef int (*sip_proxy_cb)(void *ud, sip_proxy_ctx *c, int event, int branch,
                            int status, sip_msg *msg, sip_rxbuf *rx);

/* A response context for request rx (its server transaction st, received
 * from src): holds references on st and rx. One reference for the caller.
 * 0 and *out, SIP_EINVAL (no transaction layer / no st), SIP_ENOMEM. */
int sip_proxy_ctx_new(sip_proxy *p, sip_txn *st, sip_rxbuf *rx,
                      const sip_src *src, sip_proxy_ctx **out);
void sip_proxy_ctx_ref(sip_proxy_ctx *c);
void sip_proxy_ctx_unref(sip_proxy_ctx *c);
/* The callback for events; `want` is a mask of (1 << SIP_PROXY_EV_*) that
 * reaches it (DONE and FREE always do). */
void sip_proxy_ctx_set_cb(sip_proxy_ctx *c, sip_proxy_cb cb, void *ud,
                          unsigned want);
void *sip_proxy_ctx_udata(const sip_proxy_ctx *c);

/* Start a round: validate (§16.3: 483, 482, 420 -- answered here), route
 * (§16.4 once per context), then one branch per target (n == 0: one
 * branch to the request's own Request-URI / Route). Returns 0 when the
 * round runs (SIP_PROXY_EV_DONE follows, never from inside this call), or
 * a status > 0 when it ended at once: the request was answered with it
 * (483, 482, 420), or 487 (cancelled: no new branch, §16.10), or the
 * status of a round that could not send anything (503, not answered yet).
 * Negative: misuse (a round is running, SIP_EINVAL). */
int sip_proxy_relay(sip_proxy_ctx *c, const sip_proxy_target *t, int n,
                    const sip_proxy_opts *o);

/* A CANCEL for this request arrived (§16.10): pending branches are
 * cancelled, no new ones start. Returns 1 when branches were pending (their
 * 487 ends the round), 0 when nothing was running (the caller answers the
 * INVITE 487 itself). */
int sip_proxy_cancel(sip_proxy_ctx *c);
/* Forward the best final response of the context to the client (after the
 * last round; 408 when none; challenges aggregated; 503 as 500). 1 when
 * sent, 0 when there was nothing to send (a final already went), negative
 * on a send error. */
int sip_proxy_finish(sip_proxy_ctx *c);
/* A final response went upstream (forwarded 2xx, finish, or the script's
 * own reply through the server transaction). */
int sip_proxy_final_sent(const sip_proxy_ctx *c);
/* Is a round running? */
int sip_proxy_busy(const sip_proxy_ctx *c);
/* The dest spec ("udp:192.0.2.1:5060") a branch was started with from a
 * target's `dest` or `alt`: NULL for a branch sent to its next hop or an
 * unknown branch. Valid while the context lives. */
const char *sip_proxy_branch_dest(const sip_proxy_ctx *c, int branch);

/* Forward request m (received from src) statelessly (§16.11): Max-Forwards
 * decremented, Route preprocessing is the caller's (sip_proxy_route_pre),
 * optional Record-Route, a deterministic branch, sent to target (uri /
 * dest / route as in sip_proxy_target; NULL: the request's next hop). ACK
 * and CANCEL get the branch their INVITE got. 0 when handed to the
 * transport, 483 when Max-Forwards was 0 (nothing sent), or a negative
 * code. */
int sip_proxy_forward(sip_proxy *p, sip_msg *m, const sip_src *src,
                      const sip_proxy_target *target, int record_route,
                      sip_str rr_params);

/* A response that matched no client transaction: when its top Via is this
 * proxy's and another Via follows, the top one is removed and the response
 * sent to the next (§16.7 step 5 / §16.11). 1 when forwarded, 0 when not
 * ours (the caller delivers it), negative on a send error. */
int sip_proxy_forward_response(sip_proxy *p, sip_msg *res);

#endif
