/* Credentials out of traces: a copy of a message whose Authorization and
 * Proxy-Authorization values keep only what identifies the request
 * (username, realm, uri, algorithm, qop, nc). Works on the raw bytes, so a
 * message that failed to parse is redacted too. */
#include <string.h>

#include "sip_digest.h"

typedef struct out_buf {
  char *p;
  size_t cap, len;
} out_buf;

static void put(out_buf *o, const char *s, size_t n) {
  if (o->len < o->cap) {
    size_t k = o->cap - o->len < n ? o->cap - o->len : n;
    memcpy(o->p + o->len, s, k);
  }
  o->len += n;
}

static void puts_(out_buf *o, const char *s) { put(o, s, strlen(s)); }

static int lower(int c) { return c >= 'A' && c <= 'Z' ? c | 0x20 : c; }

static int is_ws(int c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static int is_tok(int c) {
  return c > ' ' && c < 0x7f && !strchr("()<>@,;:\\\"/[]?={}", c);
}

static int name_is(const char *p, size_t n, const char *s) {
  if (n != strlen(s))
    return 0;
  for (size_t i = 0; i < n; i++)
    if (lower((unsigned char)p[i]) != s[i])
      return 0;
  return 1;
}

/* Is [p, end) the start of an Authorization / Proxy-Authorization line? Sets
 * *value to the byte after the colon. */
static int auth_line(const char *p, const char *end, const char **value) {
  const char *s = p;
  while (p < end && is_tok((unsigned char)*p))
    p++;
  size_t n = (size_t)(p - s);
  if (!name_is(s, n, "authorization") && !name_is(s, n, "proxy-authorization"))
    return 0;
  while (p < end && (*p == ' ' || *p == '\t'))
    p++;
  if (p == end || *p != ':')
    return 0;
  *value = p + 1;
  return 1;
}

static const char *const kept[] = {"username", "realm", "uri", "algorithm",
                                   "qop",      "nc",    NULL};

static int keep_param(const char *p, size_t n) {
  for (int i = 0; kept[i]; i++)
    if (name_is(p, n, kept[i]))
      return 1;
  return 0;
}

/* The redacted form of one header value [p, end) (folds included). */
static void redact_value(out_buf *o, const char *p, const char *end) {
  while (p < end && is_ws((unsigned char)*p))
    p++;
  const char *s = p;
  while (p < end && is_tok((unsigned char)*p))
    p++;
  puts_(o, " ");
  put(o, s, (size_t)(p - s));
  if (!name_is(s, (size_t)(p - s), "digest")) {
    puts_(o, " <redacted>");
    return;
  }
  int first = 1;
  for (;;) {
    while (p < end && (is_ws((unsigned char)*p) || *p == ','))
      p++;
    if (p == end)
      return;
    const char *ns = p;
    while (p < end && is_tok((unsigned char)*p))
      p++;
    const char *ne = p;
    while (p < end && is_ws((unsigned char)*p))
      p++;
    if (ne == ns || p == end || *p != '=') {
      puts_(o, first ? " <redacted>" : ", <redacted>");
      return;
    }
    p++;
    while (p < end && is_ws((unsigned char)*p))
      p++;
    const char *vs = p;
    if (p < end && *p == '"') {
      for (p++; p < end && *p != '"'; p++)
        if (*p == '\\' && p + 1 < end)
          p++;
      if (p == end) {
        puts_(o, first ? " <redacted>" : ", <redacted>");
        return;
      }
      p++;
    } else {
      while (p < end && *p != ',' && !is_ws((unsigned char)*p))
        p++;
    }
    puts_(o, first ? " " : ", ");
    first = 0;
    put(o, ns, (size_t)(ne - ns));
    puts_(o, "=");
    if (keep_param(ns, (size_t)(ne - ns)))
      put(o, vs, (size_t)(p - vs));
    else
      puts_(o, "\"<redacted>\"");
  }
}

size_t sip_auth_redact(const char *msg, size_t len, char *out, size_t cap) {
  out_buf o = {out, cap, 0};
  const char *p = msg, *end = msg + len;
  int found = 0;
  /* skip the start line */
  const char *nl = memchr(p, '\n', len);
  if (!nl)
    return 0;
  put(&o, p, (size_t)(nl + 1 - p));
  p = nl + 1;
  while (p < end) {
    nl = memchr(p, '\n', (size_t)(end - p));
    const char *le = nl ? nl + 1 : end;
    if (*p == '\r' || *p == '\n') { /* the empty line: the body follows */
      put(&o, p, (size_t)(end - p));
      break;
    }
    const char *value;
    if (!auth_line(p, le, &value)) {
      put(&o, p, (size_t)(le - p));
      p = le;
      continue;
    }
    found = 1;
    /* the value runs on over folded lines */
    const char *ve = le;
    while (ve < end && (*ve == ' ' || *ve == '\t')) {
      const char *n2 = memchr(ve, '\n', (size_t)(end - ve));
      ve = n2 ? n2 + 1 : end;
    }
    put(&o, p, (size_t)(value - p));
    redact_value(&o, value, ve);
    puts_(&o, "\r\n");
    p = ve;
  }
  return found ? o.len : 0;
}
