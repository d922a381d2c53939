/* URIs: SIP/SIPS (RFC 3261 §19.1, §25.1), tel (RFC 3966) and any other
 * absolute URI kept opaque (scheme + rest). */
#ifndef SIP_URI_H
#define SIP_URI_H

#include "sip_types.h"

enum sip_uri_kind {
  SIP_URI_OTHER = 0, /* absolute URI of another scheme: opaque holds the rest */
  SIP_URI_SIP,
  SIP_URI_SIPS,
  SIP_URI_TEL,
};

enum sip_host_type {
  SIP_HOST_NONE = 0,
  SIP_HOST_NAME, /* hostname (domain) */
  SIP_HOST_IPV4,
  SIP_HOST_IPV6, /* host keeps the brackets: "[2001:db8::1]" */
};

/* Every slice points into the parsed text, except the *_dec slices and
 * decoded parameter names/values, which point into the arena when %HH escapes
 * had to be decoded (decoding happens exactly once: "%2541" gives "%41"). */
typedef struct sip_uri {
  sip_str raw;       /* the whole URI as written */
  sip_str scheme;    /* as written ("SIP", "sips", "tel", "soap.beep") */
  uint8_t kind;      /* enum sip_uri_kind */
  uint8_t host_type; /* enum sip_host_type */
  uint8_t has_port;
  uint8_t lr;    /* ;lr present */
  uint16_t port; /* valid when has_port */
  sip_str user;  /* as written; absent when no userinfo. For tel: the number */
  sip_str user_dec; /* %HH decoded (may contain NUL bytes) */
  sip_str password; /* as written; absent when none */
  sip_str password_dec;
  sip_str host;       /* as written, brackets kept for IPv6 */
  sip_str params_raw; /* ";a=b;c" as written, including the first ';'; absent if
                         none */
  sip_params params;  /* decoded names and values */
  sip_str headers_raw; /* after '?', as written; absent if none */
  sip_params headers;  /* hname=hvalue pairs, decoded */
  sip_str opaque;      /* SIP_URI_OTHER: everything after "scheme:" */
  /* well-known URI parameters (decoded values), absent when not given */
  sip_str transport, maddr, user_param, method, ttl;
} sip_uri;

/* Parse [p, p+len) as a URI. The slice must be exactly the URI (no LWS, no
 * angle brackets). Returns 0 or SIP_EURI (or SIP_ERANGE for a port > 65535,
 * SIP_ENOMEM). Rules: IPv6 references need brackets ("sip:2001:db8::10" is an
 * error); a port must follow ']' ("sip:[2001:db8::10:5070]" is an address with
 * no port); the RFC 5118 three-colon form "[2001:db8:::192.0.2.1]" is accepted;
 * ';' in the user part before '@' belongs to the user ("user;par=x@host").
 * A scheme that is not sip/sips/tel parses as SIP_URI_OTHER when it is a valid
 * absolute URI (scheme ":" followed by at least one non-space character). */
int sip_uri_parse(sip_arena *a, const char *p, size_t len, sip_uri *out);

/* RFC 3261 §19.1.4 equality (SIP/SIPS): scheme, user and password compared
 * case-sensitively after unescaping; host case-insensitively; ports must
 * match (absent != 5060); a transport/user/ttl/method/maddr parameter present
 * in one must be present and equal in the other; other parameters compared
 * only when present in both; headers must all match. Other schemes: the raw
 * text compared case-insensitively for the scheme and exactly for the rest.
 * Returns 1 when equal, 0 otherwise. */
int sip_uri_equal(const sip_uri *a, const sip_uri *b);

/* Decode %HH escapes of [p, p+len) into dst (room for len bytes); returns the
 * decoded length. A '%' not followed by two hex digits is copied as is. */
size_t sip_unescape(char *dst, const char *p, size_t len);

#endif
