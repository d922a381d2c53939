/* Responses built from a request (RFC 3261 §8.2.6); see sip_reply.h. One
 * builder serves both the size and the write: with a NULL output it only
 * counts, so the two can never disagree. */
#include <stdio.h>
#include <string.h>

#include "sip_reply.h"
#include "sip_scan.h"

/* RFC 3261 §21 unless another RFC is named */
static const struct {
  short code;
  const char *phrase;
} phrases[] = {
    {100, "Trying"},
    {180, "Ringing"},
    {181, "Call Is Being Forwarded"},
    {182, "Queued"},
    {183, "Session Progress"},
    {199, "Early Dialog Terminated"}, /* RFC 6228 */
    {200, "OK"},
    {202, "Accepted"},        /* RFC 3265 */
    {204, "No Notification"}, /* RFC 5839 */
    {300, "Multiple Choices"},
    {301, "Moved Permanently"},
    {302, "Moved Temporarily"},
    {305, "Use Proxy"},
    {380, "Alternative Service"},
    {400, "Bad Request"},
    {401, "Unauthorized"},
    {402, "Payment Required"},
    {403, "Forbidden"},
    {404, "Not Found"},
    {405, "Method Not Allowed"},
    {406, "Not Acceptable"},
    {407, "Proxy Authentication Required"},
    {408, "Request Timeout"},
    {410, "Gone"},
    {412, "Conditional Request Failed"}, /* RFC 3903 */
    {413, "Request Entity Too Large"},
    {414, "Request-URI Too Long"},
    {415, "Unsupported Media Type"},
    {416, "Unsupported URI Scheme"},
    {417, "Unknown Resource-Priority"}, /* RFC 4412 */
    {420, "Bad Extension"},
    {421, "Extension Required"},
    {422, "Session Interval Too Small"}, /* RFC 4028 */
    {423, "Interval Too Brief"},
    {424, "Bad Location Information"},  /* RFC 6442 */
    {428, "Use Identity Header"},       /* RFC 4474 */
    {429, "Provide Referrer Identity"}, /* RFC 3892 */
    {430, "Flow Failed"},               /* RFC 5626 */
    {433, "Anonymity Disallowed"},      /* RFC 5079 */
    {436, "Bad Identity-Info"},         /* RFC 4474 */
    {437, "Unsupported Certificate"},
    {438, "Invalid Identity Header"},
    {439, "First Hop Lacks Outbound Support"}, /* RFC 5626 */
    {440, "Max-Breadth Exceeded"},             /* RFC 5393 */
    {469, "Bad Info Package"},                 /* RFC 6086 */
    {470, "Consent Needed"},                   /* RFC 5360 */
    {480, "Temporarily Unavailable"},
    {481, "Call/Transaction Does Not Exist"},
    {482, "Loop Detected"},
    {483, "Too Many Hops"},
    {484, "Address Incomplete"},
    {485, "Ambiguous"},
    {486, "Busy Here"},
    {487, "Request Terminated"},
    {488, "Not Acceptable Here"},
    {489, "Bad Event"}, /* RFC 3265 */
    {491, "Request Pending"},
    {493, "Undecipherable"},
    {494, "Security Agreement Required"}, /* RFC 3329 */
    {500, "Server Internal Error"},
    {501, "Not Implemented"},
    {502, "Bad Gateway"},
    {503, "Service Unavailable"},
    {504, "Server Time-out"},
    {505, "Version Not Supported"},
    {513, "Message Too Large"},
    {555, "Push Notification Service Not Supported"}, /* RFC 8599 */
    {580, "Precondition Failure"},                    /* RFC 3312 */
    {600, "Busy Everywhere"},
    {603, "Decline"},
    {604, "Does Not Exist Anywhere"},
    {606, "Not Acceptable"},
    {607, "Unwanted"}, /* RFC 8197 */
    {608, "Rejected"}, /* RFC 8688 */
};

/* §21: an unknown code is treated as the x00 of its class, so its phrase
 * names the class. */
static const char *const class_phrases[] = {
    NULL,           "Trying",        "OK", "Redirection", "Client Error",
    "Server Error", "Global Failure"};

const char *sip_reason_phrase(int status) {
  for (size_t i = 0; i < sizeof(phrases) / sizeof(phrases[0]); i++)
    if (phrases[i].code == status)
      return phrases[i].phrase;
  if (status >= 100 && status <= 699)
    return class_phrases[status / 100];
  return "Unknown";
}

/* ---- argument checks ------------------------------------------------------
 */

/* Reason-Phrase: text without CR, LF or other controls (HTAB allowed). */
static int reason_ok(sip_str r) {
  if (!r.p)
    return 1;
  for (size_t i = 0; i < r.len; i++) {
    unsigned char c = (unsigned char)r.p[i];
    if ((c < 0x20 && c != '\t') || c == 0x7f)
      return 0;
  }
  return 1;
}

static int tag_ok(sip_str t) {
  if (!t.p)
    return 1;
  if (t.len == 0)
    return 0;
  for (size_t i = 0; i < t.len; i++)
    if (!sip__is((unsigned char)t.p[i], SIP_C_TOKEN))
      return 0;
  return 1;
}

/* Zero or more header lines, each ending in CRLF; a line may be a folded
 * continuation (starting with SP/HTAB) except the first; no empty line, no
 * bare CR or LF, so the bytes cannot end the header section early. */
static int extra_ok(sip_str e) {
  if (e.len == 0)
    return 1;
  if (!e.p || e.len < 3 || e.p[e.len - 2] != '\r' || e.p[e.len - 1] != '\n')
    return 0;
  if (e.p[0] == ' ' || e.p[0] == '\t' || e.p[0] == '\r' || e.p[0] == '\n')
    return 0;
  for (size_t i = 0; i < e.len; i++) {
    if (e.p[i] == '\n')
      return 0; /* every LF is consumed with its CR below */
    if (e.p[i] != '\r')
      continue;
    if (i + 1 >= e.len || e.p[i + 1] != '\n')
      return 0;
    if (i + 2 < e.len && (e.p[i + 2] == '\r' || e.p[i + 2] == '\n'))
      return 0; /* an empty line */
    i++;
  }
  return 1;
}

static int clean(const sip_hdr *h) {
  return sip__ctl_find(h->value.p, h->value.p + h->value.len, 1) == NULL;
}

/* No value the response copies holds a control character (a request that
 * failed to parse with SIP_ECTL still has its header index): a response
 * never carries one back. */
static int copied_ok(const sip_msg *req, int status) {
  static const int singles[] = {SIP_H_FROM, SIP_H_TO, SIP_H_CALL_ID, SIP_H_CSEQ,
                                SIP_H_TIMESTAMP};
  size_t n = sizeof(singles) / sizeof(singles[0]) - (status == 100 ? 0 : 1);
  for (uint32_t i = 0; i < req->nhdr; i++)
    if (req->hdr[i].id == SIP_H_VIA && req->hdr[i].state != SIP_HS_REMOVED &&
        !clean(&req->hdr[i]))
      return 0;
  for (size_t k = 0; k < n; k++)
    for (uint32_t i = 0; i < req->nhdr; i++)
      if (req->hdr[i].id == singles[k] && req->hdr[i].state != SIP_HS_REMOVED) {
        if (!clean(&req->hdr[i]))
          return 0;
        break; /* only the first live line is copied */
      }
  return 1;
}

static int args_ok(const sip_msg *req, int status, sip_str reason,
                   sip_str to_tag, sip_str extra, sip_str body) {
  return req && status >= 100 && status <= 699 && reason_ok(reason) &&
         tag_ok(to_tag) && extra_ok(extra) && (body.p || body.len == 0) &&
         copied_ok(req, status);
}

/* ---- building ------------------------------------------------------------
 */

typedef struct wbuf {
  char *p; /* NULL: count only */
  size_t n;
} wbuf;

static void put(wbuf *w, const char *s, size_t len) {
  if (w->p && len)
    memcpy(w->p + w->n, s, len);
  w->n += len;
}

static void puts_(wbuf *w, const char *s) { put(w, s, strlen(s)); }

static int blank(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* The value without blanks at either end, every run of blanks that holds a
 * CR or LF (a fold) written as one SP, other runs as they are. */
static void put_value(wbuf *w, sip_str v) {
  const char *p = v.p, *end = p + v.len;
  while (p < end && blank(*p))
    p++;
  while (end > p && blank(end[-1]))
    end--;
  while (p < end) {
    const char *q = p;
    while (q < end && !blank(*q))
      q++;
    put(w, p, (size_t)(q - p));
    if (q == end)
      break;
    const char *r = q;
    int brk = 0;
    for (; r < end && blank(*r); r++)
      brk |= *r == '\r' || *r == '\n';
    if (brk)
      put(w, " ", 1);
    else
      put(w, q, (size_t)(r - q));
    p = r;
  }
}

static void put_header(wbuf *w, int id, sip_str value) {
  puts_(w, sip_hdr_canonical(id));
  put(w, ": ", 2);
  put_value(w, value);
  put(w, "\r\n", 2);
}

/* Does a From/To value carry a tag parameter? A scan that needs no parse:
 * ";" outside quotes and "<>", LWS, "tag" (any case), then "=", another
 * parameter or the end. Never fails; an unterminated quote means no. */
static int has_tag(sip_str v) {
  const char *p = v.p, *end = p + v.len;
  int angle = 0;
  while (p < end) {
    char c = *p;
    if (c == '"') {
      p = sip__skip_quoted(p, end, NULL);
      if (!p)
        return 0;
      continue;
    }
    if (c == '<') {
      angle = 1;
    } else if (c == '>') {
      angle = 0;
    } else if (c == ';' && !angle) {
      const char *q = sip__skip_lws(p + 1, end);
      if (end - q >= 3 && sip__lower(q[0]) == 't' && sip__lower(q[1]) == 'a' &&
          sip__lower(q[2]) == 'g') {
        const char *r = sip__skip_lws(q + 3, end);
        if (r == end || *r == '=' || *r == ';' || *r == ',')
          return 1;
      }
    }
    p++;
  }
  return 0;
}

static const sip_hdr *first_live(const sip_msg *m, int id) {
  for (uint32_t i = 0; i < m->nhdr; i++)
    if (m->hdr[i].id == id && m->hdr[i].state != SIP_HS_REMOVED)
      return &m->hdr[i];
  return NULL;
}

static size_t build(const sip_msg *req, int status, sip_str reason,
                    sip_str to_tag, sip_str extra, sip_str body, char *out) {
  wbuf w = {out, 0};
  char code[4] = {(char)('0' + status / 100), (char)('0' + status / 10 % 10),
                  (char)('0' + status % 10), '\0'};
  put(&w, "SIP/2.0 ", 8);
  put(&w, code, 3);
  put(&w, " ", 1);
  if (reason.p)
    put(&w, reason.p, reason.len);
  else
    puts_(&w, sip_reason_phrase(status));
  put(&w, "\r\n", 2);

  for (uint32_t i = 0; i < req->nhdr; i++)
    if (req->hdr[i].id == SIP_H_VIA && req->hdr[i].state != SIP_HS_REMOVED)
      put_header(&w, SIP_H_VIA, req->hdr[i].value);
  const sip_hdr *h;
  if ((h = first_live(req, SIP_H_FROM)))
    put_header(&w, SIP_H_FROM, h->value);
  if ((h = first_live(req, SIP_H_TO))) {
    puts_(&w, "To: ");
    put_value(&w, h->value);
    if (status > 100 && to_tag.p && !has_tag(h->value)) {
      put(&w, ";tag=", 5);
      put(&w, to_tag.p, to_tag.len);
    }
    put(&w, "\r\n", 2);
  }
  if ((h = first_live(req, SIP_H_CALL_ID)))
    put_header(&w, SIP_H_CALL_ID, h->value);
  if ((h = first_live(req, SIP_H_CSEQ)))
    put_header(&w, SIP_H_CSEQ, h->value);
  /* §8.2.6.1: a 100 copies the request's Timestamp */
  if (status == 100 && (h = first_live(req, SIP_H_TIMESTAMP)))
    put_header(&w, SIP_H_TIMESTAMP, h->value);
  put(&w, extra.p, extra.len);
  char num[24];
  put(&w, "Content-Length: ", 16);
  put(&w, num, sip__fmt_uint(num, body.len));
  put(&w, "\r\n\r\n", 4);
  put(&w, body.p, body.len);
  return w.n;
}

size_t sip_reply_size(const sip_msg *req, int status, sip_str reason,
                      sip_str to_tag, sip_str extra, sip_str body) {
  if (!args_ok(req, status, reason, to_tag, extra, body))
    return 0;
  return build(req, status, reason, to_tag, extra, body, NULL);
}

int sip_reply_write(const sip_msg *req, int status, sip_str reason,
                    sip_str to_tag, sip_str extra, sip_str body, char *out,
                    size_t cap) {
  size_t need = sip_reply_size(req, status, reason, to_tag, extra, body);
  if (need == 0 || need > cap || need > (size_t)INT32_MAX || !out)
    return SIP_EINVAL;
  return (int)build(req, status, reason, to_tag, extra, body, out);
}
