/* Byte classes and scanning helpers shared by the grammar files (internal to
 * csrc/parse). Every class test is one table load; no <ctype.h>, no locale.
 *
 * Folding: inside a header value, CRLF (or a bare LF) followed by SP or HTAB
 * is linear white space (RFC 3261 §7.3.1). sip__skip_lws() treats it as such,
 * so every grammar function can walk a raw value slice that still contains
 * folds. */
#ifndef SIP_SCAN_H
#define SIP_SCAN_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "sip_types.h"

enum {
  SIP_C_DIGIT = 0x0001,      /* 0-9 */
  SIP_C_ALPHA = 0x0002,      /* A-Z a-z */
  SIP_C_HEX = 0x0004,        /* 0-9 A-F a-f */
  SIP_C_TOKEN = 0x0008,      /* token: alphanum - . ! % * _ + ` ' ~ */
  SIP_C_WS = 0x0010,         /* SP HTAB */
  SIP_C_UNRESERVED = 0x0020, /* alphanum mark: - _ . ! ~ * ' ( ) */
  SIP_C_USER = 0x0040, /* unreserved + user-unreserved & = + $ , ; ? / (no %) */
  SIP_C_PASSWORD = 0x0080, /* unreserved + & = + $ , (no %) */
  SIP_C_PARAM = 0x0100, /* unreserved + param-unreserved [ ] / : & + $ (no %) */
  SIP_C_HNV = 0x0200,   /* unreserved + hnv-unreserved [ ] / ? : + $ (no %) */
  SIP_C_HOST = 0x0400,  /* alphanum - . (hostname) */
  SIP_C_WORD = 0x0800,  /* word (Call-ID): token + ( ) < > : \ " / [ ] ? { } */
  SIP_C_SCHEME = 0x1000, /* alphanum + - . (after the first alpha) */
  SIP_C_UTF8 = 0x2000,   /* 0x80-0xFF */
  SIP_C_CTL = 0x4000,    /* 0x00-0x1F, 0x7F */
};

extern const uint16_t sip__cclass[256];

static inline int sip__is(unsigned char c, unsigned cls) {
  return (sip__cclass[c] & cls) != 0;
}

static inline char sip__lower(char c) {
  return (c >= 'A' && c <= 'Z') ? (char)(c | 0x20) : c;
}

static inline int sip__hexval(unsigned char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  c = (unsigned char)(c | 0x20);
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  return -1;
}

/* The first byte of [p, end) not in class cls (end when there is none),
 * four bytes a step: the scanners' inner loop. */
static inline const char *sip__span(const char *p, const char *end,
                                    unsigned cls) {
  while (end - p >= 4 && sip__is((unsigned char)p[0], cls) &&
         sip__is((unsigned char)p[1], cls) &&
         sip__is((unsigned char)p[2], cls) && sip__is((unsigned char)p[3], cls))
    p += 4;
  while (p < end && sip__is((unsigned char)*p, cls))
    p++;
  return p;
}

/* The same for a byte table (non-zero: in the set). */
static inline const char *sip__span_tab(const char *p, const char *end,
                                        const uint8_t *tab) {
  while (end - p >= 4 && tab[(unsigned char)p[0]] && tab[(unsigned char)p[1]] &&
         tab[(unsigned char)p[2]] && tab[(unsigned char)p[3]])
    p += 4;
  while (p < end && tab[(unsigned char)*p])
    p++;
  return p;
}

/* Skip SP/HTAB and folds (CRLF or LF followed by SP/HTAB) from p up to end.
 * The usual cases inline (a byte that starts no LWS, or one SP before it),
 * the rest in sip_scan.c. */
const char *sip__skip_lws_slow(const char *p, const char *end);

static inline const char *sip__skip_lws(const char *p, const char *end) {
  if (p < end && (unsigned char)*p > ' ')
    return p;
  if (end - p >= 2 && *p == ' ' && (unsigned char)p[1] > ' ')
    return p + 1;
  return sip__skip_lws_slow(p, end);
}

/* s equals lit (n bytes, lower-case letters only) ignoring case: OR-ing 0x20
 * maps exactly the two cases of a letter onto its lower-case form, and no
 * other byte onto a letter. */
static inline int sip__ieq_letters(sip_str s, const char *lit, size_t n) {
  if (s.len != n)
    return 0;
  /* n is a constant: two overlapping words cover 2..8 bytes */
  if (n >= 4 && n <= 8) {
    uint32_t a, b, c, d;
    memcpy(&a, s.p, 4);
    memcpy(&b, lit, 4);
    memcpy(&c, s.p + n - 4, 4);
    memcpy(&d, lit + n - 4, 4);
    return ((a | 0x20202020u) == b) & ((c | 0x20202020u) == d);
  }
  if (n >= 2 && n < 4) {
    uint16_t a, b, c, d;
    memcpy(&a, s.p, 2);
    memcpy(&b, lit, 2);
    memcpy(&c, s.p + n - 2, 2);
    memcpy(&d, lit + n - 2, 2);
    return ((uint16_t)(a | 0x2020u) == b) & ((uint16_t)(c | 0x2020u) == d);
  }
  for (size_t i = 0; i < n; i++)
    if ((unsigned char)(s.p[i] | 0x20) != (unsigned char)lit[i])
      return 0;
  return 1;
}

/* Trim LWS (including folds and trailing CR/LF) from both ends of a slice. */
static inline sip_str sip__trim(const char *p, const char *end) {
  p = sip__skip_lws(p, end);
  while (
      end > p && (unsigned char)end[-1] <= ' ' &&
      (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r' || end[-1] == '\n'))
    end--;
  return (sip_str){p, (size_t)(end - p)};
}

/* p points at the opening '"' of a quoted-string. Returns the position just
 * past the closing quote, or NULL when it is unterminated. When pairs is not
 * NULL, *pairs is set to 1 if a quoted-pair was seen (decoding must copy). */
const char *sip__skip_quoted(const char *p, const char *end, int *pairs);

/* The first control character of [p, end) that RFC 3261 §25.1 does not
 * allow there: 0x00-0x1F other than HTAB, CR and LF, or DEL (0x7F). CR and
 * LF are left to the framing (line ends, folds). With quoted_pairs, one that
 * is the second byte of a quoted-pair inside a quoted-string is allowed
 * (quoted-pair = "\" (%x00-09 / %x0B-0C / %x0E-7F); RFC 4475 intmeth has
 * BEL, NUL and DEL in a display name that way). NULL when there is none.
 * Eight bytes a step; the quote-aware walk runs only for a value that has
 * a control character at all. */
const char *sip__ctl_find(const char *p, const char *end, int quoted_pairs);

/* How many times byte c occurs in [p, end): bounds a list's array size. */
size_t sip__count_byte(const char *p, const char *end, char c);

/* Parse a decimal number of 1..n digits from [p, end); rejects anything else
 * (no sign, no LWS). SIP_ERANGE when the value exceeds max, SIP_EVALUE when
 * not all digits. Leading zeros are fine ("0068"). */
int sip__parse_uint(const char *p, const char *end, uint64_t max,
                    uint64_t *out);

/* v in decimal into out (room for 21 bytes), NUL-terminated; returns the
 * length. snprintf's "%u" without parsing a format: the serializers write
 * numbers into every forwarded message and reply. */
size_t sip__fmt_uint(char *out, uint64_t v);

#endif
