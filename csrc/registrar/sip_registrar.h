/* The text of a registration (RFC 3261 §10.3), the one copy the registrar
 * (lua/luasip/registrar.lua, through csrc/lua/registrar.c) uses: the
 * address-of-record, the binding key of a Contact, the contact parameters
 * kept with a binding. A qvalue is read by the Contact parser
 * (sip_addr.q, csrc/parse/sip_addr.c).
 *
 * Output goes to a caller-owned fixed buffer (sip_obuf): a value that does
 * not fit sets `overflow` (the caller sizes the buffer from the input). No
 * allocation here. */
#ifndef SIP_REGISTRAR_H
#define SIP_REGISTRAR_H

#include "sip_types.h"
#include "sip_uri.h"

typedef struct sip_obuf {
  char *p;
  size_t len, cap;
  int overflow; /* something did not fit: the content is incomplete */
} sip_obuf;

void sip_obuf_init(sip_obuf *b, char *mem, size_t cap);
void sip_obuf_put(sip_obuf *b, const char *p, size_t n);
void sip_obuf_puts(sip_obuf *b, const char *s);
/* ASCII lower case of p[0..n) */
void sip_obuf_put_lower(sip_obuf *b, const char *p, size_t n);
/* A user part written with %XX (upper-case hex) for every byte outside
 * RFC 3261's unreserved and user-unreserved sets. */
void sip_obuf_put_user(sip_obuf *b, const char *p, size_t n);

/* The canonical address-of-record of a SIP or SIPS URI: scheme and host in
 * lower case, the user re-escaped, no port, parameters or headers
 * ("sip:%61lice@Example.COM:5060;transport=tcp" -> "sip:alice@example.com").
 * Returns 0, or SIP_EINVAL for another scheme or an empty host. */
int sip_reg_aor(const sip_uri *u, sip_obuf *out);

/* The key of a binding without +sip.instance: the Contact URI with scheme
 * and host lower-cased, user and password re-escaped, the port, the URI
 * parameters §19.1.4 always compares (maddr, method, transport, ttl, user;
 * names and values lower-cased, in that order) and the headers as written.
 * Another scheme (tel, ...): the scheme lower-cased, ':' and the rest as
 * written. Returns 0. */
int sip_reg_contact_key(const sip_uri *u, sip_obuf *out);

/* The contact parameters a binding keeps: params_raw (";a=b;c", as after
 * the URI or '>') without q, expires, pub-gruu and temp-gruu, each kept
 * parameter as ";name[=value]" with the blanks after ';' and at its end
 * removed; quoted strings are respected. */
void sip_reg_kept_params(sip_str params_raw, sip_obuf *out);

#endif
