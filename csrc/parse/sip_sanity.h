/* Request sanity checks (RFC 3261 §8.2, §16.3): what every server checks
 * before any script sees a request, in the spirit of Kamailio's sanity
 * module. Each check can be switched off; a failure names the status to
 * answer with and a reason phrase that says what is wrong.
 *
 * The checks run in this order and stop at the first failure:
 *
 *   SIP_SANITY_VERSION        the start line's version is SIP/2.0 (case-
 *                             insensitive, §7.1) -> 505 Version Not Supported
 *   SIP_SANITY_REQUIRED       Via, From, To, Call-ID and CSeq are present, and
 *                             no header the table marks single-valued
 *                             (SIP_HF_SINGLE: To, From, Call-ID, CSeq,
 *                             Max-Forwards, Content-Length, Content-Type,
 *                             Expires, ...) appears more than once -> 400.
 *                             Max-Forwards is not required: RFC 2543 clients
 *                             omit it and §8.2 does not reject for it.
 *   SIP_SANITY_CSEQ           CSeq parses, its number is < 2^31 (§8.1.1.5),
 *                             and in a request its method equals the request
 *                             method, compared case-sensitively (§7.1) -> 400
 *   SIP_SANITY_CLEN           a Content-Length value equals the body length
 *                             -> 400. sip_msg_parse already refuses a short
 *                             datagram body (SIP_ESHORTBODY, see
 *                             sip_sanity_parse_error) and in stream mode it
 *                             waits for the body, so this catches a length
 *                             edited after parsing. Skipped after
 *                             sip_msg_set_body (the length is rewritten).
 *   SIP_SANITY_MAX_FORWARDS   Max-Forwards, when present, is 0..255 -> 400 (0
 *                             itself is fine: 483 is the proxy's decision)
 *   SIP_SANITY_FIELDS         the fields every element reads parse: Request-
 *                             URI, every Via, From, To (name-addr or addr-spec
 *                             with their tag), Call-ID, and when present
 *                             Contact, Route and Record-Route -> 400 naming
 *                             the header
 *   SIP_SANITY_SCHEME         the Request-URI scheme is in the configured
 *                             list (default sip, sips, tel; case-insensitive)
 *                             -> 416 Unsupported URI Scheme
 *   SIP_SANITY_REQUIRE        every option tag of Require is in the supported
 *                             list (UAS role, §8.2.2.3) -> 420 Bad Extension
 *                             with out->unsupported set
 *   SIP_SANITY_PROXY_REQUIRE  the same for Proxy-Require (proxy role, §16.3
 *                             step 5) -> 420 with out->unsupported set
 *
 * Require and Proxy-Require are ignored in ACK and CANCEL (§8.2.2.3: they
 * must not be used there, and must be ignored when present). Option tags
 * compare case-insensitively (§7.3.1); an option tag that is not a token is
 * a 400. Syntax (400) is checked before the URI scheme (416) and the
 * extensions (420), the order of §16.3.
 *
 * Responses (m->is_request == 0) get VERSION, REQUIRED, CSEQ (without the
 * method comparison), CLEN and FIELDS (without the Request-URI); any failure
 * is status 400, meaning "drop it": a response is never answered. */
#ifndef SIP_SANITY_H
#define SIP_SANITY_H

#include "sip_msg.h"

enum sip_sanity_checks {
  SIP_SANITY_VERSION = 1u << 0,
  SIP_SANITY_REQUIRED = 1u << 1,
  SIP_SANITY_CSEQ = 1u << 2,
  SIP_SANITY_CLEN = 1u << 3,
  SIP_SANITY_SCHEME = 1u << 4,
  SIP_SANITY_REQUIRE = 1u << 5,
  SIP_SANITY_PROXY_REQUIRE = 1u << 6,
  SIP_SANITY_MAX_FORWARDS = 1u << 7,
  SIP_SANITY_FIELDS = 1u << 8,
  SIP_SANITY_ALL = (1u << 9) - 1,
};

typedef struct sip_sanity_config {
  unsigned checks; /* SIP_SANITY_* bits */
  /* Request-URI schemes this element accepts, NULL-terminated; NULL means
   * {"sip", "sips", "tel"}. */
  const char *const *schemes;
  /* Option tags this element supports, NULL-terminated; NULL means none. */
  const char *const *supported;
} sip_sanity_config;

/* Defaults for a UAS or registrar: every check except
 * SIP_SANITY_PROXY_REQUIRE, default schemes, no supported extensions. A proxy
 * sets SIP_SANITY_PROXY_REQUIRE and clears SIP_SANITY_REQUIRE. Never fails. */
void sip_sanity_config_init(sip_sanity_config *c);

typedef struct sip_sanity_result {
  int status; /* 0 = passed, else the status to answer with: 400, 416, 420,
                 505 (500 out of memory; 513 from sip_sanity_parse_error) */
  int check;  /* the SIP_SANITY_* bit that failed, 0 when passed */
  /* Reason phrase for the status line: printable ASCII, no CR/LF, e.g.
   * "Bad Request (missing Call-ID)", "Unsupported URI Scheme". "" when
   * passed. */
  char reason[128];
  /* For 420: the Unsupported header value, "tag1, tag2" (each tag once,
   * as first written; cut after the last whole tag that fits, so empty only
   * if the first unsupported tag alone is longer). "" otherwise. */
  char unsupported[256];
} sip_sanity_result;

/* Run the enabled checks on a parsed message (cfg NULL: the defaults). Reads
 * the lazily parsed fields, so it may allocate in the message's arena.
 * Returns out->status: 0 when every enabled check passed, otherwise the
 * status code of the first failure (505, 400, 416, 420; 500 when the arena
 * ran out of memory). */
int sip_sanity_check(sip_msg *m, const sip_sanity_config *cfg,
                     sip_sanity_result *out);

/* The answer to a request whose sip_msg_parse failed with err (for the
 * transport's on_bad hook): 400 with a reason naming the problem, e.g.
 * "Bad Request (Content-Length larger than body)" for SIP_ESHORTBODY (check
 * SIP_SANITY_CLEN), "Bad Request (malformed Via)" for SIP_EVIA (check
 * SIP_SANITY_FIELDS); 513 Message Too Large for the size, header count and
 * line length limits; 500 for SIP_ENOMEM. Returns out->status: 0 only when
 * err >= 0. */
int sip_sanity_parse_error(int err, sip_sanity_result *out);

#endif
