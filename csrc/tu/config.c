/* The configuration and counters of an element on the TU core: see
 * sip_tu_config.h. */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "sip_error.h"
#include "sip_tu_config.h"

void sip_tu_config_init(sip_tu_config *c) {
  memset(c, 0, sizeof(*c));
  sip_tp_config_init(&c->tp);
  c->tp.max_conn_per_source = 0;
  sip_txl_config_init(&c->txl);
  sip_sanity_config_init(&c->sanity);
  c->transactions = 1;
  c->auto_cancel = 1;
}

/* Where each option goes: a field of the struct, of a type. */
enum { F_U32 = 1, F_INT, F_TRYING, F_CHECK };

typedef struct option_def {
  sip_tu_option o;
  int field;
  size_t off;   /* F_U32 / F_INT: offset in sip_tu_config */
  unsigned bit; /* F_CHECK */
} option_def;

#define TP(f) offsetof(sip_tu_config, tp.f)
#define TXL(f) offsetof(sip_tu_config, txl.f)
#define INT(n, lo, hi, f)                                                      \
  { {n, SIP_TU_OPT_INT, lo, hi}, F_U32, f, 0 }
#define BOOL(n, f)                                                             \
  { {n, SIP_TU_OPT_BOOL, 0, 1}, F_INT, f, 0 }
#define CHECK(n, b)                                                            \
  { {n, SIP_TU_OPT_CHECK, 0, 1}, F_CHECK, 0, b }

static const option_def defs[] = {
    INT("max_size", 256, 1 << 26, TP(limits.max_size)),
    INT("max_headers", 8, 1 << 16, TP(limits.max_headers)),
    INT("max_line", 64, 1 << 26, TP(limits.max_line)),
    INT("max_connections", 0, 1 << 24, TP(max_connections)),
    INT("max_conn_buffer", 1024, 1 << 28, TP(max_conn_buffer)),
    INT("max_write_queue", 1024, 1 << 30, TP(max_write_queue)),
    INT("idle_timeout", 1, 1 << 30, TP(idle_timeout_ms)),
    INT("partial_timeout", 1, 1 << 30, TP(partial_message_timeout_ms)),
    INT("connect_timeout", 1, 1 << 30, TP(connect_timeout_ms)),
    {{"udp_rcvbuf", SIP_TU_OPT_INT, 0, 1 << 30}, F_INT, TP(udp_rcvbuf), 0},
    INT("ws_ping_interval", 0, 1 << 30, TP(ws_ping_interval_ms)),
    INT("max_conn_per_source", 0, 1 << 24, TP(max_conn_per_source)),
    BOOL("tcp_accept_aliases", TP(tcp_accept_aliases)),
    BOOL("transactions", offsetof(sip_tu_config, transactions)),
    INT("t1", 1, 1 << 24, TXL(t1_ms)),
    INT("t2", 1, 1 << 24, TXL(t2_ms)),
    INT("t4", 1, 1 << 24, TXL(t4_ms)),
    INT("timer_d", 1, 1 << 24, TXL(timer_d_ms)),
    /* -1: no 100 Trying from the layer */
    {{"trying_delay", SIP_TU_OPT_INT, -1, 1 << 24}, F_TRYING, 0, 0},
    INT("max_transactions", 1, 1 << 26, TXL(max_transactions)),
    BOOL("auto_cancel", offsetof(sip_tu_config, auto_cancel)),
    BOOL("force_rport", offsetof(sip_tu_config, force_rport)),
    /* sanity = { <name> = bool } */
    CHECK("version", SIP_SANITY_VERSION),
    CHECK("required", SIP_SANITY_REQUIRED),
    CHECK("cseq", SIP_SANITY_CSEQ),
    CHECK("content_length", SIP_SANITY_CLEN),
    CHECK("scheme", SIP_SANITY_SCHEME),
    CHECK("require", SIP_SANITY_REQUIRE),
    CHECK("proxy_require", SIP_SANITY_PROXY_REQUIRE),
    CHECK("max_forwards", SIP_SANITY_MAX_FORWARDS),
    CHECK("fields", SIP_SANITY_FIELDS),
    {{NULL, 0, 0, 0}, 0, 0, 0},
};

/* An option is the first member of its definition: sip_tu_config_set
 * finds the definition from it. */
const sip_tu_option *sip_tu_option_at(int i) {
  if (i < 0 || i >= (int)(sizeof defs / sizeof defs[0]) - 1)
    return NULL;
  return &defs[i].o;
}

const sip_tu_option *sip_tu_option_find(const char *name) {
  for (const option_def *d = defs; d->o.name; d++)
    if (strcmp(d->o.name, name) == 0)
      return &d->o;
  return NULL;
}

int sip_tu_config_set(sip_tu_config *c, const sip_tu_option *o, int64_t v) {
  const option_def *d = (const option_def *)o;
  if (v < o->lo || v > o->hi)
    return SIP_ERANGE;
  char *base = (char *)c;
  switch (d->field) {
  case F_U32:
    *(uint32_t *)(base + d->off) = (uint32_t)v;
    break;
  case F_INT:
    *(int *)(base + d->off) = (int)v;
    break;
  case F_TRYING:
    c->txl.trying_delay_ms = v < 0 ? SIP_TXN_NO_TRYING : (uint32_t)v;
    break;
  case F_CHECK:
    c->sanity.checks =
        v ? c->sanity.checks | d->bit : c->sanity.checks & ~d->bit;
    break;
  }
  return 0;
}

int sip_tu_config_header(sip_tu_config *c, int which, const char *value,
                         size_t len) {
  if (which != 'S' && which != 'U')
    return SIP_EINVAL;
  char *line = which == 'S' ? c->server_line : c->ua_line;
  size_t *n = which == 'S' ? &c->server_len : &c->ua_len;
  if (!value) {
    *n = 0;
    return 0;
  }
  if (len == 0 || len > SIP_TU_HEADER_MAX)
    return SIP_ERANGE;
  for (size_t i = 0; i < len; i++)
    if ((unsigned char)value[i] < 0x20 || value[i] == 0x7f)
      return SIP_EINVAL;
  *n =
      (size_t)snprintf(line, sizeof c->server_line, "%s: %.*s\r\n",
                       which == 'S' ? "Server" : "User-Agent", (int)len, value);
  return 0;
}

void sip_tu_configure(sip_tu *tu, const sip_tu_config *c) {
  tu->sanity = c->sanity;
  tu->force_rport = c->force_rport;
  memcpy(tu->ua_line, c->ua_line, c->ua_len);
  tu->ua_len = c->ua_len;
  /* "Server: " is 8 bytes, and the line ends with CRLF */
  (void)sip_tu_set_header(tu, 'S', c->server_len ? c->server_line + 8 : NULL,
                          c->server_len ? c->server_len - 10 : 0);
}

/* ---- counters ----------------------------------------------------------- */

typedef struct stats {
  sip_tu_stat *out;
  int n, cap;
} stats;

static void put(stats *s, const char *name, uint64_t v) {
  if (s->n < s->cap)
    s->out[s->n++] = (sip_tu_stat){name, v};
}

int sip_tu_stats(const sip_tu *tu, sip_tu_stat *out, int cap) {
  stats s = {out, 0, cap};
  if (tu->tp) {
    sip_tp_counters c;
    sip_tp_stats(tu->tp, &c);
    put(&s, "rx_msgs", c.rx_msgs);
    put(&s, "rx_bytes", c.rx_bytes);
    put(&s, "tx_msgs", c.tx_msgs);
    put(&s, "tx_bytes", c.tx_bytes);
    put(&s, "tx_errors", c.tx_errors);
    put(&s, "parse_errors", c.parse_errors);
    put(&s, "dropped", c.dropped);
    put(&s, "keepalives", c.keepalives);
    put(&s, "conn_opened", c.conn_opened);
    put(&s, "conn_closed", c.conn_closed);
    put(&s, "conn_refused", c.conn_refused);
    put(&s, "conn_timeouts", c.conn_timeouts);
    put(&s, "tls_failures", c.tls_failures);
    put(&s, "ws_upgrades", c.ws_upgrades);
    put(&s, "ws_rejected", c.ws_rejected);
    put(&s, "ws_errors", c.ws_errors);
    put(&s, "tls_verify_failures", c.tls_verify_failures);
    put(&s, "aliases", c.aliases);
    put(&s, "aliases_refused", c.aliases_refused);
    put(&s, "clen_fixed", c.clen_fixed);
    put(&s, "responses_resolved", c.responses_resolved);
    put(&s, "connections", sip_tp_conn_count(tu->tp));
    static const char *const sent[] = {
        "responses_sent_1xx", "responses_sent_2xx", "responses_sent_3xx",
        "responses_sent_4xx", "responses_sent_5xx", "responses_sent_6xx"};
    static const char *const rcvd[] = {
        "responses_received_1xx", "responses_received_2xx",
        "responses_received_3xx", "responses_received_4xx",
        "responses_received_5xx", "responses_received_6xx"};
    for (int i = 0; i < 6; i++) {
      put(&s, sent[i], c.tx_responses[i]);
      put(&s, rcvd[i], c.rx_responses[i]);
    }
    /* UDP has no connections: 0, listed so that every transport has its
     * series (luasip_open_connections{transport="udp"}) */
    put(&s, "connections_udp", sip_tp_conn_count_by(tu->tp, SIP_TP_UDP));
    put(&s, "connections_tcp", sip_tp_conn_count_by(tu->tp, SIP_TP_TCP));
    put(&s, "connections_tls", sip_tp_conn_count_by(tu->tp, SIP_TP_TLS));
    put(&s, "connections_ws", sip_tp_conn_count_by(tu->tp, SIP_TP_WS));
    put(&s, "connections_wss", sip_tp_conn_count_by(tu->tp, SIP_TP_WSS));
  }
  put(&s, "requests", tu->st.requests);
  put(&s, "responses", tu->st.responses);
  put(&s, "rejected", tu->st.rejected);
  static const char *const by[] = {
      "rejected_400", "rejected_405", "rejected_416",  "rejected_420",
      "rejected_505", "rejected_483", "rejected_other"};
  for (int i = 0; i < 7; i++)
    put(&s, by[i], tu->st.rejected_by[i]);
  put(&s, "dropped_sanity", tu->st.dropped_sanity);
  put(&s, "bad_answered", tu->st.bad_answered);
  put(&s, "replies", tu->st.replies);
  put(&s, "reply_errors", tu->st.reply_errors);
  sip_txl_counters x;
  memset(&x, 0, sizeof x);
  if (tu->txl) {
    sip_txl_stats(tu->txl, &x);
    put(&s, "txn_live", x.live_total);
    put(&s, "txn_live_ict", x.live[SIP_TXN_ICT]);
    put(&s, "txn_live_nict", x.live[SIP_TXN_NICT]);
    put(&s, "txn_live_ist", x.live[SIP_TXN_IST]);
    put(&s, "txn_live_nist", x.live[SIP_TXN_NIST]);
    put(&s, "txn_created",
        x.created[0] + x.created[1] + x.created[2] + x.created[3]);
    put(&s, "txn_timeouts", x.timeouts);
    put(&s, "txn_retransmissions", x.retransmissions);
    put(&s, "txn_absorbed", x.absorbed);
    put(&s, "txn_stray_responses", x.stray_responses);
    put(&s, "txn_stray_acks", x.stray_acks);
    put(&s, "txn_transport_errors", x.transport_errors);
    put(&s, "txn_udp_fallbacks", x.udp_fallbacks);
    put(&s, "txn_rejected", x.rejected);
    put(&s, "txn_trying_sent", x.trying_sent);
    put(&s, "txn_mem_bytes", x.mem_bytes);
  }
  put(&s, "retx_2xx", x.retx_2xx);
  put(&s, "unacked_2xx", x.unacked_2xx);
  return s.n;
}
