/* name-addr / addr-spec with header parameters (RFC 3261 §20.10, §25.1):
 * From, To, Contact, Route, Record-Route, Path, Reply-To, Refer-To, ... */
#include <string.h>

#include "sip_fields.h"
#include "sip_scan.h"

static int is_lws_byte(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* qvalue = ("0" ["." 0*3DIGIT]) / ("1" ["." 0*3("0")]) as thousandths
 * (RFC 3261 §25.1): one integer digit, so "05", "0123" and "1000" are
 * malformed. A well-formed number above 1 ("2", "1.5") is SIP_ERANGE,
 * anything else SIP_EPARAM. */
static int parse_q(sip_str v, int32_t *out) {
  if (!v.p) /* ";q" without a value */
    return SIP_EPARAM;
  const char *p = v.p, *end = v.p + v.len;
  if (p == end || !sip__is((unsigned char)*p, SIP_C_DIGIT))
    return SIP_EPARAM;
  uint32_t ip = (uint32_t)(*p++ - '0');
  uint32_t frac = 0, nd = 0;
  if (p < end && *p == '.') {
    for (p++; p < end && sip__is((unsigned char)*p, SIP_C_DIGIT); p++) {
      if (++nd > 3)
        return SIP_EPARAM;
      frac = frac * 10 + (uint32_t)(*p - '0');
    }
  }
  if (p != end)
    return SIP_EPARAM;
  for (; nd < 3; nd++)
    frac *= 10;
  if (ip > 1 || ip * 1000 + frac > 1000)
    return SIP_ERANGE;
  *out = (int32_t)(ip * 1000 + frac);
  return 0;
}

/* Fill the convenience fields from the parsed header parameters; the first
 * occurrence of a name wins, like sip_params_get(). */
static int addr_conveniences(sip_addr *o) {
  for (uint32_t i = 0; i < o->params.n; i++) {
    const sip_param *pr = &o->params.v[i];
    sip_str n = pr->name;
    if (!o->tag.p && sip__ieq_letters(n, "tag", 3)) {
      o->tag = pr->dec;
    } else if (n.len == 1 && o->q < 0 && (n.p[0] | 0x20) == 'q') {
      int r = parse_q(pr->dec, &o->q);
      if (r < 0)
        return r;
    } else if (o->expires < 0 && sip__ieq_letters(n, "expires", 7)) {
      uint64_t v;
      if (!pr->dec.p)
        return SIP_EPARAM;
      int r =
          sip__parse_uint(pr->dec.p, pr->dec.p + pr->dec.len, UINT32_MAX, &v);
      if (r < 0)
        return r == SIP_ERANGE ? r : SIP_EPARAM;
      o->expires = (int64_t)v;
    }
  }
  return 0;
}

/* Everything but the URI, which sip_uri_parse zeroes itself; a return
 * before the URI is parsed zeroes it (no_uri). */
static void zero_but_uri(sip_addr *o) {
  memset(o, 0, offsetof(sip_addr, uri));
  memset(&o->params_raw, 0, sizeof *o - offsetof(sip_addr, params_raw));
}

static int no_uri(sip_addr *o, int rc) {
  memset(&o->uri, 0, sizeof o->uri);
  return rc;
}

int sip_addr_parse(sip_arena *a, const char *p, size_t len, unsigned flags,
                   sip_addr *out) {
  _Static_assert(offsetof(sip_addr, params_raw) ==
                     offsetof(sip_addr, uri) + sizeof(sip_uri),
                 "sip_addr: uri is followed by params_raw");
  zero_but_uri(out);
  out->q = -1;
  out->expires = -1;
  sip_str t = sip__trim(p, p + len);
  out->raw = t;
  const char *s = t.p, *end = t.p + t.len;
  if (s == end)
    return no_uri(out, SIP_EADDR);
  if ((flags & SIP_ADDR_ALLOW_STAR) && t.len == 1 && *s == '*') {
    out->star = 1;
    return no_uri(out, 0);
  }

  const char *uri_s, *uri_e, *q = s;
  int angle = 0;
  if (*q == '"') {
    const char *e = sip__skip_quoted(q, end, NULL);
    if (!e)
      return no_uri(out, SIP_EQUOTE);
    out->display = (sip_str){q, (size_t)(e - q)};
    int r = sip_unquote(a, out->display, &out->display_dec);
    if (r < 0)
      return no_uri(out, r);
    q = sip__skip_lws(e, end);
    if (q == end || *q != '<')
      return no_uri(out, SIP_EADDR);
    angle = 1;
  } else if (*q == '<') {
    angle = 1;
  } else {
    /* display-name = *(token LWS) or addr-spec: walk tokens separated by
     * LWS and see whether a '<' follows. The LWS before '<' is optional
     * (lwsdisp: "caller<sip:...>", RFC 4475 §3.1.1.6). */
    const char *r = q, *last = q;
    for (;;) {
      const char *ts = r;
      r = sip__span(r, end, SIP_C_TOKEN);
      if (r == ts)
        break;
      last = r;
      r = sip__skip_lws(r, end);
      if (r == last)
        break;
    }
    if (last > q && r < end && *r == '<') {
      out->display = out->display_dec = (sip_str){q, (size_t)(last - q)};
      q = r;
      angle = 1;
    }
  }

  if (angle) {
    const char *gt = memchr(q, '>', (size_t)(end - q));
    if (!gt)
      return no_uri(out, SIP_EADDR);
    uri_s = q + 1;
    uri_e = gt;
    /* badaspec: "< sip:... >" is not an addr-spec in brackets */
    if (uri_s == uri_e || is_lws_byte(*uri_s) || is_lws_byte(uri_e[-1]))
      return no_uri(out, SIP_EADDR);
    q = gt + 1;
  } else {
    /* addr-spec: the URI ends at the first ';' or LWS, and what follows is
     * header parameters (cparam01). A URI needing ',', '?' or ';' must be
     * bracketed (§20.10, regbadct); quotes or brackets here mean a broken
     * display name (baddn: "Bell, Alexander <sip:...>"). */
    uri_s = q;
    while (q < end && *q != ';' && !is_lws_byte(*q)) {
      char c = *q;
      if (c == ',' || c == '?' || c == '<' || c == '>' || c == '"')
        return no_uri(out, SIP_EADDR);
      q++;
    }
    uri_e = q;
  }
  out->angle = (uint8_t)angle;

  /* Check the shape before the URI, so that a broken display name
   * ("Ivan <sip:...>" in UTF-8) reports SIP_EADDR rather than SIP_EURI. */
  q = sip__skip_lws(q, end);
  if (q != end && *q != ';')
    return no_uri(out, SIP_EADDR);
  int r = sip_uri_parse(a, uri_s, (size_t)(uri_e - uri_s), &out->uri);
  if (r < 0)
    return r;
  if (q == end)
    return 0;
  out->params_raw = (sip_str){q, (size_t)(end - q)};
  r = sip_params_parse(a, q, (size_t)(end - q), &out->params);
  if (r < 0)
    return r;
  return addr_conveniences(out);
}

int sip_addr_list_parse(sip_arena *a, const char *p, size_t len, unsigned flags,
                        sip_addr ***tail) {
  /* Build the values on a local list and link it only when all parsed, so
   * a failure leaves the caller's list as it was. */
  sip_addr *head = NULL, **t = &head;
  int n = 0, r;
  sip_str rest = {p, len}, item;
  if (!len || !memchr(p, ',', len)) { /* one value: skip the splitter */
    item = rest;
    rest = SIP_STR_NULL;
    r = 1;
  } else {
    r = sip_split_next(&rest, &item);
  }
  while (r == 1) {
    sip_addr *ad = sip_arena_alloc(a, sizeof *ad);
    if (!ad)
      return SIP_ENOMEM;
    r = sip_addr_parse(a, item.p, item.len, flags, ad);
    if (r < 0)
      return r;
    *t = ad;
    t = &ad->next;
    n++;
    r = sip_split_next(&rest, &item);
  }
  if (r < 0)
    return r == SIP_EVALUE ? SIP_EADDR : r;
  if (n) {
    **tail = head;
    *tail = t;
  }
  return n;
}
