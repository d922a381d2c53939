/* Control characters in header fields (issue [wire] 6): NUL, 0x01-0x08,
 * 0x0B, 0x0C, 0x0E-0x1F and 0x7F make a message invalid (SIP_ECTL), in any
 * header, at any position, in datagram and stream mode; HTAB, folds,
 * UTF-8 and a quoted-pair inside a quoted-string stay valid (RFC 3261
 * §25.1). The header index is still complete, so a 400 can be built from
 * the other headers, and no response ever copies a control character back.
 * Every input ends where a PROT_NONE page begins. */
#define _DEFAULT_SOURCE /* mmap, MAP_ANONYMOUS */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "check.h"
#include "sip_msg.h"
#include "sip_reply.h"
#include "sip_sanity.h"

/* One reusable buffer whose last readable byte is followed by a guard page. */
static char *guard_base;
static size_t guard_size, guard_page;

static char *guarded(const char *data, size_t len) {
  if (!guard_page)
    guard_page = (size_t)sysconf(_SC_PAGESIZE);
  size_t need = (len + guard_page - 1) / guard_page * guard_page + guard_page;
  if (need < 2 * guard_page)
    need = 2 * guard_page;
  if (need > guard_size) {
    if (guard_base)
      munmap(guard_base, guard_size);
    guard_base = mmap(NULL, need, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (guard_base == MAP_FAILED ||
        mprotect(guard_base + need - guard_page, guard_page, PROT_NONE) != 0)
      abort();
    guard_size = need;
  }
  char *end = guard_base + guard_size - guard_page;
  memcpy(end - len, data, len);
  return end - len;
}

static const unsigned char bad_bytes[] = {
    0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x0b,
    0x0c, 0x0e, 0x0f, 0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16,
    0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f, 0x7f};
#define NBAD (sizeof bad_bytes / sizeof bad_bytes[0])

/* The request, with "@" in the line of header `which` replaced by byte b. */
static const char *const lines[] = {
    "OPTIONS sip:bob@example.com SIP/2.0\r\n",
    "Via: SIP/2.0/UDP host.example.com;branch=z9hG4bK@a\r\n",
    "Max-Forwards: 70\r\n",
    "From: <sip:alice@example.com>;tag=1@8\r\n",
    "To: <sip:bob@example.com>@\r\n",
    "Call-ID: call@id\r\n",
    "CSeq: 1 OPTIONS@\r\n",
    "Subject: @hello world, a long value\r\n",
    "X-Extension: some @value\r\n",
    "Content-Length: 0\r\n",
    "\r\n",
};
#define NLINES (sizeof lines / sizeof lines[0])
enum { L_VIA = 1, L_FROM = 3, L_TO, L_CALLID, L_CSEQ, L_SUBJECT, L_EXT };

/* Build the request into out; the byte that replaces the first '@' after
 * the header name of line `which` (0: none replaced) is b. Returns the
 * length and sets *at to the offset of the replaced byte. */
static size_t build(char *out, int which, unsigned char b, size_t *at) {
  size_t n = 0;
  for (size_t i = 0; i < NLINES; i++) {
    size_t len = strlen(lines[i]);
    memcpy(out + n, lines[i], len);
    if ((int)i == which) {
      char *colon = memchr(out + n, ':', len);
      char *mark = memchr(colon, '@', len - (size_t)(colon - (out + n)));
      if (!mark)
        abort();
      /* the '@' that is part of the value stays for the URI lines: use the
       * last '@' of the line for them */
      char *last = mark;
      for (char *q = mark; q < out + n + len; q++)
        if (*q == '@')
          last = q;
      if (which == L_VIA || which == L_FROM || which == L_TO ||
          which == L_CALLID || which == L_CSEQ)
        mark = last;
      *mark = (char)b;
      *at = (size_t)(mark - out);
    }
    n += len;
  }
  return n;
}

static int has_ctl(const char *p, size_t n) {
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)p[i];
    if ((c < 0x20 && c != '\t' && c != '\r' && c != '\n') || c == 0x7f)
      return 1;
  }
  return 0;
}

static void test_every_byte_every_header(void) {
  static const int which[] = {L_VIA,  L_FROM,    L_TO, L_CALLID,
                              L_CSEQ, L_SUBJECT, L_EXT};
  char buf[1024];
  for (size_t w = 0; w < sizeof which / sizeof which[0]; w++) {
    for (size_t k = 0; k < NBAD; k++) {
      size_t at = 0;
      size_t n = build(buf, which[w], bad_bytes[k], &at);
      for (int mode = 0; mode < 2; mode++) {
        const char *g = guarded(buf, n);
        sip_msg m;
        sip_msg_init(&m, NULL);
        int rc = sip_msg_parse(&m, g, n, mode);
        CHECK_MSG(rc == SIP_ECTL, "line %d byte 0x%02x mode %d: rc %d (%s)",
                  which[w], bad_bytes[k], mode, rc, sip_errname(rc));
        CHECK_MSG(m.err_off == at, "line %d byte 0x%02x: err_off %zu, want %zu",
                  which[w], bad_bytes[k], m.err_off, at);
        /* the index is complete: every header line is there */
        CHECK_INT(m.nhdr, NLINES - 2);
        /* a 400 for it can be built unless the bad value is one the
         * response copies; a built response carries no control byte */
        sip_sanity_result r;
        CHECK_INT(sip_sanity_parse_error(rc, &r), 400);
        sip_str reason = {r.reason, strlen(r.reason)};
        size_t need = sip_reply_size(&m, 400, reason, (sip_str){"t1", 2},
                                     (sip_str){NULL, 0}, (sip_str){NULL, 0});
        int copied = which[w] != L_SUBJECT && which[w] != L_EXT;
        if (copied) {
          CHECK_MSG(need == 0, "line %d byte 0x%02x: reply of %zu bytes",
                    which[w], bad_bytes[k], need);
        } else {
          CHECK_MSG(need > 0, "line %d byte 0x%02x: no reply", which[w],
                    bad_bytes[k]);
          char out[2048];
          int wr = need && need <= sizeof out
                       ? sip_reply_write(&m, 400, reason, (sip_str){"t1", 2},
                                         (sip_str){NULL, 0}, (sip_str){NULL, 0},
                                         out, sizeof out)
                       : -1;
          CHECK(wr > 0 && !has_ctl(out, (size_t)wr));
        }
        sip_msg_free(&m);
      }
    }
  }
}

/* The byte at every offset of a long value: both sides of every 8-byte
 * word the scanner steps over. */
static void test_every_offset(void) {
  static const char head[] = "MESSAGE sip:b@h SIP/2.0\r\nSubject: ";
  static const char tail[] = "\r\nContent-Length: 0\r\n\r\n";
  char buf[512];
  for (size_t k = 0; k < NBAD; k++) {
    for (size_t off = 0; off < 40; off++) {
      size_t n = sizeof head - 1;
      memcpy(buf, head, n);
      memset(buf + n, 'v', 40);
      buf[n + off] = (char)bad_bytes[k];
      memcpy(buf + n + 40, tail, sizeof tail - 1);
      n += 40 + sizeof tail - 1;
      const char *g = guarded(buf, n);
      sip_msg m;
      sip_msg_init(&m, NULL);
      int rc = sip_msg_parse(&m, g, n, SIP_MODE_DATAGRAM);
      CHECK_MSG(rc == SIP_ECTL, "offset %zu byte 0x%02x: rc %d", off,
                bad_bytes[k], rc);
      CHECK_INT(m.err_off, sizeof head - 1 + off);
      sip_msg_free(&m);
    }
  }
}

static int parses(const char *s, size_t n) {
  const char *g = guarded(s, n);
  sip_msg m;
  sip_msg_init(&m, NULL);
  int rc = sip_msg_parse(&m, g, n, SIP_MODE_DATAGRAM);
  sip_msg_free(&m);
  return rc;
}

#define LIT(s) (s), (sizeof(s) - 1)

static void test_allowed(void) {
  /* HTAB in LWS and inside a value, a fold, UTF-8 */
  CHECK(parses(LIT(
            "OPTIONS sip:b@h SIP/2.0\r\nSubject:\tone\ttwo\r\n"
            " \tthree \xc3\xa9\xe2\x82\xac\r\nContent-Length: 0\r\n\r\n")) > 0);
  /* quoted-pairs carrying NUL, BEL and DEL in a quoted display name (RFC
   * 4475 intmeth) */
  CHECK(parses(LIT("OPTIONS sip:b@h SIP/2.0\r\n"
                   "To: \"BEL:\\\x07 NUL:\\\x00 DEL:\\\x7f\" <sip:b@h>\r\n"
                   "Content-Length: 0\r\n\r\n")) > 0);
  /* a control character in the body is the body's business */
  CHECK(parses(LIT("MESSAGE sip:b@h SIP/2.0\r\nContent-Length: 3\r\n\r\n"
                   "a\x00z")) > 0);
}

static void test_refused(void) {
  /* a backslash outside a quoted-string is no quoted-pair */
  CHECK_INT(parses(LIT("OPTIONS sip:b@h SIP/2.0\r\nSubject: a\\\x00z\r\n"
                       "Content-Length: 0\r\n\r\n")),
            SIP_ECTL);
  /* after the closing quote it is outside again */
  CHECK_INT(parses(LIT("OPTIONS sip:b@h SIP/2.0\r\n"
                       "To: \"ok\\\x01\" <sip:b@h>;x=\x01\r\n"
                       "Content-Length: 0\r\n\r\n")),
            SIP_ECTL);
  /* an unescaped one inside a quoted-string */
  CHECK_INT(parses(LIT("OPTIONS sip:b@h SIP/2.0\r\n"
                       "To: \"a\x1b[2Jb\" <sip:b@h>\r\n"
                       "Content-Length: 0\r\n\r\n")),
            SIP_ECTL);
  /* in a folded continuation line */
  CHECK_INT(parses(LIT("OPTIONS sip:b@h SIP/2.0\r\nSubject: a\r\n b\x7f\r\n"
                       "Content-Length: 0\r\n\r\n")),
            SIP_ECTL);
  /* right after the colon, and as the last byte before the line end */
  CHECK_INT(parses(LIT("OPTIONS sip:b@h SIP/2.0\r\nX-A:\x00\r\n"
                       "Content-Length: 0\r\n\r\n")),
            SIP_ECTL);
  CHECK_INT(parses(LIT("OPTIONS sip:b@h SIP/2.0\r\nX-A: v\x0c\r\n"
                       "Content-Length: 0\r\n\r\n")),
            SIP_ECTL);
  /* the reason phrase of a response */
  CHECK_INT(parses(LIT("SIP/2.0 200 O\x00K\r\nContent-Length: 0\r\n\r\n")),
            SIP_ESTARTLINE);
  /* the message text names the problem */
  const char s[] = "OPTIONS sip:b@h SIP/2.0\r\nSubject: \x01\r\n\r\n";
  sip_msg m;
  char text[160];
  sip_msg_init(&m, NULL);
  int rc = sip_msg_parse(&m, guarded(s, sizeof s - 1), sizeof s - 1,
                         SIP_MODE_DATAGRAM);
  CHECK_INT(rc, SIP_ECTL);
  sip_msg_strerror(&m, rc, text, sizeof text);
  CHECK_MSG(strcmp(text, "PARSE: header field at byte 34: control character "
                         "in a header field") == 0,
            "%s", text);
  CHECK(strcmp(sip_errname(SIP_ECTL), "CTL") == 0);
  sip_msg_free(&m);
  sip_sanity_result r;
  CHECK_INT(sip_sanity_parse_error(SIP_ECTL, &r), 400);
  CHECK_MSG(strcmp(r.reason,
                   "Bad Request (control character in a header field)") == 0,
            "%s", r.reason);
}

int main(void) {
  test_every_byte_every_header();
  test_every_offset();
  test_allowed();
  test_refused();
  return check_summary("test_ctl");
}
