/* Header field grammars (RFC 3261 §20, §25.1): name-addr, Via, CSeq,
 * Content-Type, credentials and challenges, comma lists, generic parameters,
 * multipart bodies. Each function parses one raw header value slice, which
 * may still contain folds (CRLF + SP/HTAB), and stores results as slices into
 * that text or, when something had to be decoded, into the arena. */
#ifndef SIP_FIELDS_H
#define SIP_FIELDS_H

#include "sip_types.h"
#include "sip_uri.h"

/* Split a comma-separated header value at commas outside quoted strings and
 * angle brackets. *rest is the unparsed remainder (start with the whole
 * value). Returns 1 and sets *item (LWS-trimmed, possibly empty) when there
 * is an item, 0 when rest is exhausted, SIP_EQUOTE for an unterminated quote
 * or SIP_EVALUE for an unbalanced '<'. */
int sip_split_next(sip_str *rest, sip_str *item);

/* Header parameters: [p, p+len) starts at the first ';' (leading LWS allowed)
 * and runs to the end of the value. generic-param = token [ EQUAL gen-value ],
 * gen-value = token / host / quoted-string, LWS allowed around ';' and '='.
 * Empty parameters (";;") are SIP_EPARAM. dec of a quoted value is unquoted.
 * Returns 0 or a negative code. */
int sip_params_parse(sip_arena *a, const char *p, size_t len, sip_params *out);

/* Remove the quotes and resolve quoted-pairs of a quoted-string (allocates
 * only when a quoted-pair is present). A slice that is not quoted is returned
 * unchanged. Returns 0, SIP_EQUOTE or SIP_ENOMEM. */
int sip_unquote(sip_arena *a, sip_str in, sip_str *out);

enum {
  SIP_ADDR_ALLOW_STAR = 0x1, /* Contact: a lone "*" is allowed */
};

/* One name-addr or addr-spec with its header parameters (From, To, Contact,
 * Route, Record-Route, Path, Reply-To, Refer-To, ...). For an addr-spec
 * without '<>', parameters after the URI are header parameters, never URI
 * parameters (RFC 3261 §20: cparam01), and such a URI may not contain '?',
 * ',' or ';' in its own parameters (regbadct is SIP_EADDR). */
typedef struct sip_addr {
  sip_str raw;         /* the whole value, trimmed */
  sip_str display;     /* as written (quotes kept); absent when none */
  sip_str display_dec; /* unquoted, quoted-pairs resolved; token form trimmed */
  sip_uri uri;
  sip_str
      params_raw; /* from the first ';' after the URI / '>'; absent if none */
  sip_params params;
  sip_str tag;           /* ;tag value, absent when none */
  int32_t q;             /* ;q as thousandths 0..1000, -1 when absent */
  int64_t expires;       /* ;expires 0..2^32-1, -1 when absent */
  uint8_t angle;         /* written with <> */
  uint8_t star;          /* the value is "*" (then uri is empty) */
  struct sip_addr *next; /* next value of the same list (across header lines) */
} sip_addr;

/* Parse exactly one value (no top-level commas). Errors: SIP_EADDR for a
 * malformed value (unclosed quote is SIP_EQUOTE, bad URI SIP_EURI, bad
 * parameter SIP_EPARAM), SIP_ERANGE for q > 1 or expires > 2^32-1. */
int sip_addr_parse(sip_arena *a, const char *p, size_t len, unsigned flags,
                   sip_addr *out);

/* Parse a comma list of values, appending each to the list whose last
 * "next" pointer is *tail (start with tail = &head). Returns the number of
 * values appended or a negative code. */
int sip_addr_list_parse(sip_arena *a, const char *p, size_t len, unsigned flags,
                        sip_addr ***tail);

typedef struct sip_via {
  sip_str raw;       /* this via-parm, trimmed */
  sip_str protocol;  /* "SIP" */
  sip_str version;   /* "2.0" */
  sip_str transport; /* as written: "UDP", "TCP", "TLS", "SCTP", "WS", ... */
  sip_str host;      /* sent-by host, brackets kept for IPv6 */
  uint8_t host_type; /* enum sip_host_type */
  uint8_t has_port;
  uint8_t has_rport; /* ;rport present (with or without value) */
  uint16_t port;     /* sent-by port, valid when has_port */
  int32_t rport;     /* ;rport=N value, -1 when rport has no value */
  sip_str params_raw;
  sip_params params;
  sip_str branch, received, maddr, ttl; /* absent when not given */
  struct sip_via *next;
} sip_via;

/* Parse one Via header value (a comma list of via-parms), appending to the
 * list at *tail. LWS is allowed around '/' and ':' (wsinv), received may be
 * a bracketed or bare IPv6 address (RFC 5118 §4.5). Returns the count
 * appended or SIP_EVIA / SIP_EPARAM / SIP_ERANGE / SIP_ENOMEM. */
int sip_via_list_parse(sip_arena *a, const char *p, size_t len,
                       sip_via ***tail);

typedef struct sip_cseq {
  uint32_t num;   /* < 2^31 (§8.1.1.5) */
  sip_str method; /* as written (token) */
} sip_cseq;

/* "0009 \r\n INVITE" -> {9, "INVITE"}. SIP_ERANGE when num >= 2^31,
 * SIP_ECSEQ otherwise malformed. */
int sip_cseq_parse(const char *p, size_t len, sip_cseq *out);

/* Content-Type / media-type: type "/" subtype *(; param). */
typedef struct sip_ctype {
  sip_str type, subtype; /* as written */
  sip_params params;
  sip_str boundary; /* unquoted boundary parameter, absent if none */
} sip_ctype;

int sip_ctype_parse(sip_arena *a, const char *p, size_t len, sip_ctype *out);

/* Credentials (Authorization, Proxy-Authorization) or a challenge
 * (WWW-Authenticate, Proxy-Authenticate): scheme followed by comma-separated
 * auth-params; param dec values are unquoted. Well-known digest params are
 * looked up with sip_params_get(&auth->params, "nonce"). */
typedef struct sip_auth {
  sip_str scheme; /* "Digest" (as written) */
  sip_params params;
} sip_auth;

int sip_auth_parse(sip_arena *a, const char *p, size_t len, sip_auth *out);

/* One part of a multipart body (RFC 2046). */
typedef struct sip_part {
  sip_str headers;      /* the part's header block, as written */
  sip_str content_type; /* its Content-Type value, absent if none */
  sip_str body;         /* the part's content (may contain NUL and bare LF) */
  struct sip_part *next;
} sip_part;

/* Split body on "--boundary" delimiter lines; the preamble and epilogue are
 * ignored. Returns the number of parts or SIP_EMULTIPART / SIP_ENOMEM. */
int sip_multipart_parse(sip_arena *a, const char *body, size_t len,
                        sip_str boundary, sip_part **head);

#endif
