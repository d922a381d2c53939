/* The pieces every header grammar shares (RFC 3261 §25.1): splitting comma
 * lists, generic-param lists and quoted strings. */
#include <string.h>

#include "sip_fields.h"
#include "sip_scan.h"

/* The inside of a quoted string, [p, end), with quoted-pairs resolved. Only
 * copies (into the arena) when there was a quoted-pair. */
static int decode_quoted(sip_arena *a, const char *p, const char *end,
                         int pairs, sip_str *out) {
  if (!pairs) {
    *out = (sip_str){p, (size_t)(end - p)};
    return 0;
  }
  char *d = sip_arena_alloc(a, (size_t)(end - p));
  if (!d)
    return SIP_ENOMEM;
  size_t n = 0;
  for (; p < end; p++) {
    if (*p == '\\')
      p++; /* sip__skip_quoted guaranteed a byte after it */
    d[n++] = *p;
  }
  *out = (sip_str){d, n};
  return 0;
}

int sip_unquote(sip_arena *a, sip_str in, sip_str *out) {
  if (in.len == 0 || in.p[0] != '"') {
    *out = in;
    return 0;
  }
  const char *end = in.p + in.len;
  int pairs = 0;
  const char *q = sip__skip_quoted(in.p, end, &pairs);
  if (q != end) /* unterminated, or text after the closing quote */
    return SIP_EQUOTE;
  return decode_quoted(a, in.p + 1, q - 1, pairs, out);
}

/* Bytes that stop the comma splitter's fast loop. */
static const uint8_t split_stop[256] = {[','] = 1, ['"'] = 1, ['<'] = 1};

int sip_split_next(sip_str *rest, sip_str *item) {
  /* An exhausted list is marked with p == NULL, so that "a," still yields
   * a final empty item (the caller decides whether empty items are legal)
   * while a value without a trailing comma yields exactly its items. */
  if (!rest->p)
    return 0;
  const char *s = rest->p, *p = s, *end = s + rest->len;
  while (p < end) {
    if (!split_stop[(unsigned char)*p]) {
      p++;
      continue;
    }
    if (*p == ',') {
      *item = sip__trim(s, p);
      rest->p = p + 1;
      rest->len = (size_t)(end - p - 1);
      return 1;
    }
    if (*p == '"') {
      int pairs = 0;
      p = sip__skip_quoted(p, end, &pairs);
      if (!p)
        return SIP_EQUOTE;
    } else { /* '<': a URI may contain commas; brackets do not nest */
      const char *gt = memchr(p, '>', (size_t)(end - p));
      if (!gt)
        return SIP_EVALUE;
      p = gt + 1;
    }
  }
  *item = sip__trim(s, end);
  *rest = SIP_STR_NULL;
  return 1;
}

/* gen-value = token / host / quoted-string. host adds ':' and '[' ']' to
 * token, which is what lets a bare IPv6 received=2001:db8::9:255 through
 * (RFC 5118 §4.5) without ending the parameter at the first colon. */
static int is_value_char(unsigned char c) {
  return sip__is(c, SIP_C_TOKEN) || c == ':' || c == '[' || c == ']';
}

/* is_value_char as a table (built once) for the value loop */
static uint8_t value_byte[256];

__attribute__((constructor)) static void value_byte_init(void) {
  for (int c = 0; c < 256; c++)
    value_byte[c] = (uint8_t)is_value_char((unsigned char)c);
}

static int parse_value(sip_arena *a, const char **pp, const char *end,
                       sip_param *pr) {
  const char *p = *pp, *s = p;
  if (p < end && *p == '"') {
    int pairs = 0;
    p = sip__skip_quoted(p, end, &pairs);
    if (!p)
      return SIP_EQUOTE;
    pr->value = (sip_str){s, (size_t)(p - s)};
    int r = decode_quoted(a, s + 1, p - 1, pairs, &pr->dec);
    if (r < 0)
      return r;
  } else {
    p = sip__span_tab(p, end, value_byte);
    if (p == s)
      return SIP_EPARAM;
    pr->value = pr->dec = (sip_str){s, (size_t)(p - s)};
  }
  *pp = p;
  return 0;
}

#define PARAMS_LOCAL 8

int sip_params_parse(sip_arena *a, const char *p, size_t len, sip_params *out) {
  out->v = NULL;
  out->n = 0;
  sip_str t = sip__trim(p, p + len);
  p = t.p;
  const char *end = t.p + t.len;
  if (p == end)
    return 0;
  if (*p != ';')
    return SIP_EPARAM;

  /* The usual few parameters are gathered on the stack and copied to the
   * arena at their exact count; past that, every parameter left starts at
   * a ';', so their count bounds the array. */
  sip_param local[PARAMS_LOCAL], *v = local;
  uint32_t n = 0;
  while (p < end) { /* p is at a ';' */
    if (n == PARAMS_LOCAL && v == local) {
      size_t max = n + sip__count_byte(p, end, ';');
      v = sip_arena_alloc(a, max * sizeof *v);
      if (!v)
        return SIP_ENOMEM;
      memcpy(v, local, sizeof local);
    }
    p = sip__skip_lws(p + 1, end);
    const char *ns = p;
    p = sip__span(p, end, SIP_C_TOKEN);
    if (p == ns) /* ";;", a trailing ';' or a non-token name */
      return SIP_EPARAM;
    sip_param *pr = &v[n++];
    pr->name = (sip_str){ns, (size_t)(p - ns)};
    pr->value = pr->dec = SIP_STR_NULL;
    p = sip__skip_lws(p, end);
    if (p < end && *p == '=') {
      p = sip__skip_lws(p + 1, end);
      int r = parse_value(a, &p, end, pr);
      if (r < 0)
        return r;
      p = sip__skip_lws(p, end);
    }
    if (p < end && *p != ';')
      return SIP_EPARAM;
  }
  if (v == local) {
    v = sip_arena_alloc(a, n * sizeof *v);
    if (!v)
      return SIP_ENOMEM;
    memcpy(v, local, n * sizeof *v);
  }
  out->v = v;
  out->n = n;
  return 0;
}
