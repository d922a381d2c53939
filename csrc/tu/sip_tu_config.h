/* The configuration of an element built on the TU core (the options of
 * core.server), and its counters, below any binding: one struct with the
 * defaults of each layer (transport, transaction layer, TU), the options
 * by name with their types and ranges (the binding reads its table into it
 * and the validation is here), and the counters of every layer by name.
 *
 * No Lua, no allocation. */
#ifndef SIP_TU_CONFIG_H
#define SIP_TU_CONFIG_H

#include <stdint.h>

#include "sip_tu.h"

typedef struct sip_tu_config {
  sip_tp_config tp;
  sip_txl_config txl;
  int transactions; /* 0: a stateless element (no transaction layer) */
  int auto_cancel;  /* §9.2 at the UAS: CANCEL answered by the core */
  int force_rport;  /* RFC 3581 rport forced on UDP requests */
  sip_sanity_config sanity;
  /* "Server: x\r\n" / "User-Agent: x\r\n" (sip_tu_config_header); 0: none */
  size_t server_len, ua_len;
  char server_line[SIP_TU_HEADER_MAX + 16], ua_line[SIP_TU_HEADER_MAX + 16];
} sip_tu_config;

/* The options by name. An INT option takes lo..hi; a BOOL one 0 / 1; a
 * CHECK one is a sanity check (sip_sanity.h) on or off. */
enum { SIP_TU_OPT_INT = 1, SIP_TU_OPT_BOOL, SIP_TU_OPT_CHECK };

typedef struct sip_tu_option {
  const char *name; /* NULL ends the list */
  int kind;
  int64_t lo, hi;
} sip_tu_option;

/* Every layer's defaults: sip_tp_config_init, sip_txl_config_init, every
 * sanity check of sip_sanity_config_init, transactions and auto_cancel on,
 * max_conn_per_source 0 (none), no Server / User-Agent header. */
void sip_tu_config_init(sip_tu_config *c);

/* Option i (0, 1, ...), or NULL past the last one (static storage). */
const sip_tu_option *sip_tu_option_at(int i);

/* Set option o (from sip_tu_option_at / sip_tu_option_find) to v. Returns 0, or
 * SIP_ERANGE when v is outside o's range (nothing changed). */
int sip_tu_config_set(sip_tu_config *c, const sip_tu_option *o, int64_t v);

/* The option named name, or NULL. */
const sip_tu_option *sip_tu_option_find(const char *name);

/* The Server (which = 'S') or User-Agent ('U') header of what the element
 * originates: value of 1..SIP_TU_HEADER_MAX bytes without control
 * characters, or NULL / len 0 for none. Returns 0, SIP_ERANGE (empty or too
 * long) or SIP_EINVAL (a control character, or which unknown). */
int sip_tu_config_header(sip_tu_config *c, int which, const char *value,
                         size_t len);

/* The TU's part of c into tu (after sip_tu_init): sanity, force_rport and
 * the header lines (the Server value also to tu->txl). */
void sip_tu_configure(sip_tu *tu, const sip_tu_config *c);

/* ---- counters ----------------------------------------------------------- */

typedef struct sip_tu_stat {
  const char *name; /* static storage */
  uint64_t value;
} sip_tu_stat;

#define SIP_TU_STATS_MAX 96

/* The counters of tu and of the layers below it (transport with its
 * connections by transport, the transaction layer when tu has one: then
 * the txn_* names; retx_2xx and unacked_2xx always) into out, by name.
 * Returns how many were written (at most cap). */
int sip_tu_stats(const sip_tu *tu, sip_tu_stat *out, int cap);

#endif
