/* Internals shared by the transaction layer's files (not public). */
#ifndef SIP_TXN_INT_H
#define SIP_TXN_INT_H

#include <netinet/in.h>

#include "sip_txn.h"

/* A deadline in the layer's heap. Each transaction has two:
 *   tn[0] retransmit: A (ICT), E (NICT), G (IST), and the IST's 100 Trying
 *   tn[1] timeout:    B/D/M (ICT), F/K (NICT), H/I/L (IST), J (NIST), and a
 *                     deferred send failure of sip_txn_request (due now) */
typedef struct sip__txn_tnode {
  uint64_t due;  /* uv_now() ms */
  uint32_t idx;  /* position in the heap, SIP__TN_NONE when not in it */
  uint8_t which; /* 0 or 1: its index in the owner's tn[] */
} sip__txn_tnode;

#define SIP__TN_NONE UINT32_MAX

/* A slice of the transaction's key block t->k. */
typedef struct sip__txn_slice {
  uint16_t off, len;
} sip__txn_slice;

/* A compact sip_src / sip_dest: what response routing and sends need. */
typedef struct sip__txn_addr {
  uint64_t conn_id;
  union {
    struct sockaddr sa;
    struct sockaddr_in in4;
    struct sockaddr_in6 in6;
  } u;
  int16_t listener;
  uint8_t transport;
} sip__txn_addr;

enum {
  SIP__TF_RELIABLE = 0x01,    /* TCP/TLS: no retransmissions, zero waits */
  SIP__TF_2543 = 0x02,        /* server: matched by the RFC 2543 rules */
  SIP__TF_TRYING = 0x04,      /* IST: out is the 100 Trying, not yet sent */
  SIP__TF_PENDING_ERR = 0x08, /* client: tn[1] reports err (send failed) */
  SIP__TF_DEAD = 0x10,        /* on the dead list */
  SIP__TF_FINAL = 0x20,       /* client: a final was delivered to the TU */
  SIP__TF_END_ON_SENT = 0x40, /* NIST, reliable: Timer J = 0 counts from
                                 the transport's verdict on the final */
  SIP__TF_DEST = 0x80,        /* server, UDP: addr is the response
                                 destination (§18.2.2 resolved once) */
};

/* Client: the UDP form of a request sent over TCP for its size (§18.1.1),
 * sent instead when the connection fails before any response. */
typedef struct sip__txn_alt {
  sip__txn_addr addr;
  uint32_t len;
  char bytes[];
} sip__txn_alt;

struct sip_txn {
  sip_txl *txl;
  struct sip_txn *hnext; /* hash chain; the dead list once Terminated */
  sip__txn_tnode tn[2];
  char *out; /* what is re-sent: client request / ACK; server: last
                response or the pending 100 Trying */
  sip_txn_response_cb on_response;
  void *arg;
  sip_txn_event_cb on_event;
  void *ev_arg;
  void *udata;
  char *rtag;        /* RFC 2543 IST: To tag of the final response sent (NUL) */
  sip__txn_alt *alt; /* client: the UDP fallback, NULL when none */
  sip__txn_addr addr;
  uint32_t hash;
  int32_t refs;
  uint32_t out_len;
  uint32_t interval; /* current A / E / G interval, ms */
  int32_t err;
  uint32_t cseq; /* server: CSeq number (RFC 2543 matching) */
  uint16_t status;
  uint16_t port;  /* server: sent-by port, 0 when absent */
  uint16_t klen;  /* bytes of k[] */
  uint16_t sends; /* transport callbacks pending */
  uint8_t kind, state, flags;
  uint8_t
      retx; /* IST: 1 re-sending its 2xx (sip_txn_retransmit_2xx), 2 acked,
               3 a reliable 1xx awaiting its PRACK (sip_txn_retransmit_1xx) */
  uint32_t rel_len; /* retx 3: out is the 1xx (rel_len bytes), then the
                       final response sent when no PRACK comes */
  /* in k[]: */
  sip__txn_slice branch, method;
  sip__txn_slice host, via;                    /* server */
  sip__txn_slice ruri, totag, fromtag, callid; /* server, RFC 2543 */
  sip__txn_slice tls_name;                     /* client, NUL after it */
  char k[];
};

/* A chained hash table of transactions (intrusive: t->hnext). */
typedef struct sip__txn_table {
  sip_txn **b;
  uint32_t mask; /* buckets - 1 (a power of two) */
  uint32_t n;
} sip__txn_table;

struct sip_txl {
  uv_loop_t *loop;
  sip_tp *tp;
  sip_txl_config cfg;

  uv_timer_t timer;
  uint64_t armed_due;
  int armed;
  int in_timer;     /* dispatching: rearm once at the end */
  int timer_closed; /* the close callback ran */
  int closing;
  void (*close_cb)(void *);
  void *close_arg;

  sip__txn_tnode **heap;
  uint32_t heap_len, heap_cap;

  sip__txn_table client; /* key: branch + CSeq method */
  sip__txn_table server; /* key: branch + sent-by + method (ACK: INVITE) */
  sip__txn_table s2543;  /* key: Call-ID, CSeq number, From tag, R-URI, Via */
  sip_txn *dead;         /* Terminated, layer reference still held */

  uint64_t seed;
  uint64_t nalloc;  /* transactions allocated and not freed */
  sip_msg *scratch; /* parses of requests the TU sends and of responses */
  sip_txl_counters st;
  size_t server_hdr_len; /* "Server: ...\r\n" (sip_txl_set_server), 0: none */
  char server_hdr[SIP_TXL_SERVER_MAX + 12];
};

static inline sip_str sip__txn_str(const sip_txn *t, sip__txn_slice s) {
  return (sip_str){t->k + s.off, s.len};
}

static inline int sip__txn_is_client(const sip_txn *t) {
  return t->kind == SIP_TXN_ICT || t->kind == SIP_TXN_NICT;
}

/* txl.c: memory accounting, lifetime */
void *sip__txn_alloc(sip_txl *txl, size_t n, int txn_part);
void sip__txn_free(sip_txl *txl, void *p, size_t n, int txn_part);
/* Replace t->out by a copy of p[0..n) (n == 0: free it). 0 or SIP_ENOMEM. */
int sip__txn_set_out(sip_txn *t, const char *p, size_t n);
/* Take ownership of an already accounted buffer as t->out. */
void sip__txn_take_out(sip_txn *t, char *p, uint32_t n);
/* Move to Terminated: out of the tables, timers stopped, onto the dead
 * list (the layer's reference is dropped from the loop). Idempotent. */
void sip__txn_terminate(sip_txn *t);
/* Call on_event when set (holding a reference). */
void sip__txn_event(sip_txn *t, int ev, int err);
/* Send (or re-send) bytes over the transaction: client to its dest, server
 * per §18.2.2. Holds a reference until the transport's callback. */
int sip__txn_send(sip_txn *t, const char *p, size_t n);
/* A transport failure (sync or async) for t. */
void sip__txn_transport_error(sip_txn *t, int err);
/* Free t->alt (no fallback any more). */
void sip__txn_drop_alt(sip_txn *t);
/* A new transaction with room for klen key bytes (<= 65535), one layer
 * reference, timers idle, counted live. NULL when out of memory. */
sip_txn *sip__txn_new(sip_txl *txl, int kind, size_t klen);
/* Append p[0..n) to t->k at *used, return its slice. */
sip__txn_slice sip__txn_put(sip_txn *t, size_t *used, const char *p, size_t n);

/* hash.c: seeded hashing and the tables */
uint32_t sip__txn_hash_client(uint64_t seed, sip_str branch, sip_str method);
uint32_t sip__txn_hash_server(uint64_t seed, sip_str branch, sip_str host,
                              uint16_t port, sip_str method);
/* Every RFC 2543 field but the To tag (an ACK's differs from its
 * INVITE's), so a peer varying only one field cannot grow one chain. */
uint32_t sip__txn_hash_2543(uint64_t seed, sip_str callid, uint32_t cseq,
                            sip_str fromtag, sip_str ruri, sip_str via);
int sip__txn_table_init(sip_txl *txl, sip__txn_table *tb);
void sip__txn_table_free(sip_txl *txl, sip__txn_table *tb);
/* Insert t (t->hash set). Grows the table; 0 or SIP_ENOMEM (then t is not
 * inserted). */
int sip__txn_table_add(sip_txl *txl, sip__txn_table *tb, sip_txn *t);
void sip__txn_table_del(sip__txn_table *tb, sip_txn *t);
/* Random bytes (getrandom, pooled). */
void sip__txn_random(void *out, size_t n);

/* timer.c: the heap behind the one uv timer */
int sip__txn_timer_init(sip_txl *txl);
/* (Re)arm tn[which] to fire at due (absolute uv_now ms). 0 or SIP_ENOMEM. */
int sip__txn_timer_at(sip_txn *t, int which, uint64_t due);
/* ... delay ms from now. */
int sip__txn_timer_in(sip_txn *t, int which, uint64_t delay);
void sip__txn_timer_stop(sip_txn *t, int which);
/* Arm the uv timer for the earliest deadline (or now when t's are dead). */
void sip__txn_timer_rearm(sip_txl *txl);
/* Drop the layer's references of dead transactions (calls
 * SIP_TXN_EV_TERMINATED unless closing). */
void sip__txn_drain_dead(sip_txl *txl);

/* client.c / server.c: a deadline of t fired */
void sip__txn_client_timer(sip_txn *t, int which);
void sip__txn_server_timer(sip_txn *t, int which);
/* A response from the transport (sip_txl_receive). */
int sip__txn_client_response(sip_txl *txl, sip_msg *msg, sip_rxbuf *rx,
                             const sip_src *src);
/* A request from the transport (sip_txl_receive). */
int sip__txn_server_request(sip_txl *txl, sip_msg *msg, sip_rxbuf *rx,
                            const sip_src *src);

/* Test aid: checks the heap order and back-pointers, the tables' counts
 * against the live counters and that every queued deadline belongs to a
 * live transaction. 0, or SIP_EINVAL naming nothing (use a debugger). */
int sip__txn_check(const sip_txl *txl);

#endif
