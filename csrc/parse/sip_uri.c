/* URI grammar: SIP/SIPS (RFC 3261 §19.1, §25.1), tel (RFC 3966), and any
 * other absolute URI kept opaque. One forward pass over the text; decoded
 * copies go to the arena only when a '%' is present. */
#include "sip_uri.h"

#include <string.h>

#include "sip_scan.h"

/* Most URIs carry few parameters: collect them on the stack and copy the
 * exact count to the arena once, instead of a counting pre-pass. */
#define PLIST_STACK 12

typedef struct plist {
  sip_param *v;
  uint32_t n, cap;
  sip_param stack[PLIST_STACK];
} plist;

/* Every decoded piece is no longer than its source and the sources do not
 * overlap, so one buffer the size of the whole URI holds all of them. */
typedef struct dctx {
  sip_arena *a;
  char *buf;
  size_t pos, cap;
} dctx;

enum wk {
  WK_NONE,
  WK_TRANSPORT,
  WK_MADDR,
  WK_USER,
  WK_METHOD,
  WK_TTL,
  WK_LR,
};

static void plist_init(plist *pl) {
  pl->v = pl->stack;
  pl->n = 0;
  pl->cap = PLIST_STACK;
}

static sip_param *plist_push(plist *pl, sip_arena *a) {
  if (pl->n == pl->cap) {
    if (pl->cap > UINT32_MAX / 2)
      return NULL;
    uint32_t cap = pl->cap * 2;
    sip_param *v = sip_arena_alloc(a, (size_t)cap * sizeof *v);
    if (!v)
      return NULL;
    memcpy(v, pl->v, (size_t)pl->n * sizeof *v);
    pl->v = v;
    pl->cap = cap;
  }
  return &pl->v[pl->n++];
}

static int plist_finish(plist *pl, sip_arena *a, sip_params *out) {
  out->n = pl->n;
  if (pl->n == 0) {
    out->v = NULL;
    return 0;
  }
  if (pl->v == pl->stack) {
    sip_param *v = sip_arena_alloc(a, (size_t)pl->n * sizeof *v);
    if (!v)
      return SIP_ENOMEM;
    memcpy(v, pl->stack, (size_t)pl->n * sizeof *v);
    pl->v = v;
  }
  out->v = pl->v;
  return 0;
}

size_t sip_unescape(char *dst, const char *p, size_t len) {
  const char *end = p + len;
  char *d = dst;
  while (p < end) {
    if (*p == '%' && end - p >= 3) {
      int hi = sip__hexval((unsigned char)p[1]);
      int lo = sip__hexval((unsigned char)p[2]);
      if (hi >= 0 && lo >= 0) {
        *d++ = (char)(hi << 4 | lo);
        p += 3;
        continue;
      }
    }
    *d++ = *p++;
  }
  return (size_t)(d - dst);
}

static int decode_slow(dctx *c, const char *p, size_t n, sip_str *out) {
  if (!c->buf) {
    c->buf = sip_arena_alloc(c->a, c->cap);
    if (!c->buf)
      return SIP_ENOMEM;
  }
  size_t m = sip_unescape(c->buf + c->pos, p, n);
  if (m != n) { /* only then did an escape decode */
    *out = (sip_str){c->buf + c->pos, m};
    c->pos += m;
  }
  return 0;
}

/* pct says whether the scanner saw a '%'; without one the decoded form is the
 * raw slice itself, as the sip_param contract promises. Kept tiny so the
 * common no-escape case inlines. */
static inline int decode(dctx *c, const char *p, size_t n, int pct,
                         sip_str *out) {
  *out = (sip_str){p, n};
  return pct ? decode_slow(c, p, n, out) : 0;
}

static int bytes_eq(sip_str a, sip_str b) {
  return a.len == b.len && (a.len == 0 || memcmp(a.p, b.p, a.len) == 0);
}

/* lit must be lower-case letters only: then c | 0x20 equals lit[i] exactly
 * when c is that letter in either case, which saves the range test. */
static inline int ieq_lit(sip_str s, const char *lit, size_t n) {
  if (s.len != n)
    return 0;
  for (size_t i = 0; i < n; i++)
    if ((s.p[i] | 0x20) != lit[i])
      return 0;
  return 1;
}

/* Absent ({NULL,0}) only equals absent. */
static int opt_eq(sip_str a, sip_str b, int icase) {
  if (!a.p || !b.p)
    return !a.p && !b.p;
  return icase ? sip_str_ieq(a, b) : bytes_eq(a, b);
}

static enum wk wk_of(sip_str name) {
  switch (name.len) {
  case 2:
    return ieq_lit(name, "lr", 2) ? WK_LR : WK_NONE;
  case 3:
    return ieq_lit(name, "ttl", 3) ? WK_TTL : WK_NONE;
  case 4:
    return ieq_lit(name, "user", 4) ? WK_USER : WK_NONE;
  case 5:
    return ieq_lit(name, "maddr", 5) ? WK_MADDR : WK_NONE;
  case 6:
    return ieq_lit(name, "method", 6) ? WK_METHOD : WK_NONE;
  case 9:
    return ieq_lit(name, "transport", 9) ? WK_TRANSPORT : WK_NONE;
  default:
    return WK_NONE;
  }
}

static void set_wk(sip_uri *u, const sip_param *pr) {
  sip_str *dst;
  switch (wk_of(pr->name)) {
  case WK_LR:
    u->lr = 1;
    return;
  case WK_TRANSPORT:
    dst = &u->transport;
    break;
  case WK_MADDR:
    dst = &u->maddr;
    break;
  case WK_USER:
    dst = &u->user_param;
    break;
  case WK_METHOD:
    dst = &u->method;
    break;
  case WK_TTL:
    dst = &u->ttl;
    break;
  default:
    return;
  }
  if (dst->p) /* the first occurrence wins */
    return;
  /* a valueless ";transport" is still present, so §19.1.4 sees it */
  *dst = pr->dec.p ? pr->dec : (sip_str){pr->name.p + pr->name.len, 0};
}

/* Scan 0+ bytes of class cls or '%'; reports whether a '%' was seen. */
static const char *scan_esc(const char *q, const char *end, unsigned cls,
                            int *pct) {
  while (q < end) {
    unsigned char ch = (unsigned char)*q;
    if (sip__is(ch, cls)) {
      q++;
    } else if (ch == '%') {
      *pct = 1;
      q++;
    } else {
      break;
    }
  }
  return q;
}

/* uri-parameters from *pp (at ';'); leaves *pp at the first byte that cannot
 * continue them. */
static int parse_params(dctx *c, sip_uri *u, const char **pp, const char *end,
                        plist *pl) {
  const char *q = *pp;
  while (q < end && *q == ';') {
    const char *ns = ++q;
    int npct = 0;
    q = scan_esc(q, end, SIP_C_PARAM, &npct);
    if (q == ns)
      return SIP_EURI;
    sip_param *pr = plist_push(pl, c->a);
    if (!pr)
      return SIP_ENOMEM;
    if (decode(c, ns, (size_t)(q - ns), npct, &pr->name))
      return SIP_ENOMEM;
    pr->value = pr->dec = SIP_STR_NULL;
    if (q < end && *q == '=') {
      const char *vs = ++q;
      int vpct = 0;
      q = scan_esc(q, end, SIP_C_PARAM, &vpct);
      pr->value = (sip_str){vs, (size_t)(q - vs)};
      if (decode(c, vs, pr->value.len, vpct, &pr->dec))
        return SIP_ENOMEM;
    }
    set_wk(u, pr);
  }
  *pp = q;
  return 0;
}

/* headers after '?': hname "=" hvalue *( "&" hname "=" hvalue ) */
static int parse_headers(dctx *c, const char *q, const char *end, plist *pl) {
  for (;;) {
    const char *ns = q;
    int npct = 0;
    q = scan_esc(q, end, SIP_C_HNV, &npct);
    if (q == ns || q == end || *q != '=')
      return SIP_EURI;
    sip_param *pr = plist_push(pl, c->a);
    if (!pr)
      return SIP_ENOMEM;
    if (decode(c, ns, (size_t)(q - ns), npct, &pr->name))
      return SIP_ENOMEM;
    const char *vs = ++q;
    int vpct = 0;
    q = scan_esc(q, end, SIP_C_HNV, &vpct);
    pr->value = (sip_str){vs, (size_t)(q - vs)};
    if (decode(c, vs, pr->value.len, vpct, &pr->dec))
      return SIP_ENOMEM;
    if (q == end)
      return 0;
    if (*q != '&')
      return SIP_EURI;
    q++;
  }
}

/* Dotted quad, each part 1..3 digits <= 255, nothing else. */
static int ipv4_ok(const char *p, const char *end) {
  int parts = 0;
  while (parts < 4) {
    unsigned v = 0;
    const char *s = p;
    while (p < end && p - s < 3 && sip__is((unsigned char)*p, SIP_C_DIGIT))
      v = v * 10 + (unsigned)(*p++ - '0');
    if (p == s || v > 255)
      return 0;
    if (++parts == 4)
      break;
    if (p == end || *p != '.')
      return 0;
    p++;
  }
  return p == end;
}

/* RFC 4291 text form, plus the RFC 5118 §4.10 ":::" before an embedded IPv4
 * that RFC 3261's ABNF lets through and that real stacks emit. */
static int ipv6_ok(const char *p, const char *end) {
  int groups = 0, dcolon = 0;
  if (end - p >= 2 && p[0] == ':' && p[1] == ':') {
    dcolon = 1;
    p += 2;
    if (p == end)
      return 1;
  }
  for (;;) {
    const char *g = p;
    while (p < end && p - g < 5 && sip__is((unsigned char)*p, SIP_C_HEX))
      p++;
    if (p < end && *p == '.') {
      if (!ipv4_ok(g, end))
        return 0;
      groups += 2;
      break;
    }
    if (p == g || p - g > 4)
      return 0;
    groups++;
    if (p == end)
      break;
    if (*p != ':')
      return 0;
    if (++p == end)
      return 0;
    if (*p == ':') {
      if (dcolon)
        return 0;
      dcolon = 1;
      if (++p == end)
        break;
      if (*p == ':') {
        if (!ipv4_ok(p + 1, end))
          return 0;
        groups += 2;
        break;
      }
    }
  }
  return dcolon ? groups <= 7 : groups == 8;
}

/* host [":" port] from *pp; leaves *pp after them. */
static int parse_hostport(sip_uri *u, const char **pp, const char *end) {
  const char *q = *pp, *h = q;
  if (q == end)
    return SIP_EURI;
  if (*q == '[') {
    const char *r = q + 1;
    while (r < end &&
           (sip__is((unsigned char)*r, SIP_C_HEX) || *r == ':' || *r == '.'))
      r++;
    if (r == end || *r != ']' || !ipv6_ok(q + 1, r))
      return SIP_EURI;
    q = r + 1;
    u->host_type = SIP_HOST_IPV6;
  } else {
    /* one table load per byte; only '.' and '-' need the label checks */
    unsigned acc = 0;
    int dots = 0;
    char prev = '.';
    for (; q < end; q++) {
      unsigned char ch = (unsigned char)*q;
      unsigned k = sip__cclass[ch];
      if (!(k & SIP_C_HOST))
        break;
      acc |= k;
      if (!(k & (SIP_C_ALPHA | SIP_C_DIGIT))) {
        if (ch == '.') {
          if (prev == '.' || prev == '-')
            return SIP_EURI;
          dots++;
        } else if (prev == '.') { /* a label cannot start with '-' */
          return SIP_EURI;
        }
      }
      prev = (char)ch;
    }
    /* '-' is the only HOST byte that is neither ALPHA, DIGIT nor '.' */
    int named = (acc & SIP_C_ALPHA) || memchr(h, '-', (size_t)(q - h));
    if (q == h || prev == '-')
      return SIP_EURI;
    if (named) {
      u->host_type = SIP_HOST_NAME;
    } else {
      /* all digits and dots: the ABNF toplabel starts with ALPHA, so this can
       * only be an IPv4 address */
      if (dots != 3 || !ipv4_ok(h, q))
        return SIP_EURI;
      u->host_type = SIP_HOST_IPV4;
    }
  }
  u->host = (sip_str){h, (size_t)(q - h)};
  if (q < end && *q == ':') {
    const char *ds = ++q;
    uint32_t v = 0;
    while (q < end && sip__is((unsigned char)*q, SIP_C_DIGIT)) {
      v = v * 10 + (uint32_t)(*q++ - '0');
      if (v > 65535)
        return SIP_ERANGE;
    }
    if (q == ds)
      return SIP_EURI;
    u->has_port = 1;
    u->port = (uint16_t)v;
  }
  *pp = q;
  return 0;
}

/* userinfo = user [":" password], ending at the last '@' of the URI: '@' is
 * legal nowhere after the host, and ';' and '?' may belong to the user. */
static int parse_userinfo(dctx *c, sip_uri *u, const char *s, const char *at) {
  const char *q = s, *colon = NULL;
  int upct = 0, ppct = 0;
  for (; q < at; q++) {
    unsigned char ch = (unsigned char)*q;
    if (sip__is(ch, SIP_C_USER) || ch == '@') /* '@' tolerated: see above */
      continue;
    if (ch == '%') {
      upct = 1;
    } else if (ch == ':') {
      colon = q;
      break;
    } else {
      return SIP_EURI;
    }
  }
  if (q == s)
    return SIP_EURI;
  u->user = (sip_str){s, (size_t)(q - s)};
  if (decode(c, s, u->user.len, upct, &u->user_dec))
    return SIP_ENOMEM;
  if (!colon)
    return 0;
  const char *ps = colon + 1;
  for (q = ps; q < at; q++) {
    unsigned char ch = (unsigned char)*q;
    if (sip__is(ch, SIP_C_PASSWORD) || ch == '@')
      continue;
    if (ch != '%')
      return SIP_EURI;
    ppct = 1;
  }
  u->password = (sip_str){ps, (size_t)(at - ps)};
  return decode(c, ps, u->password.len, ppct, &u->password_dec) ? SIP_ENOMEM
                                                                : 0;
}

static const char *last_at(const char *p, const char *end) {
  const char *at = NULL, *f;
  while (p < end && (f = memchr(p, '@', (size_t)(end - p))) != NULL) {
    at = f;
    p = f + 1;
  }
  return at;
}

static int parse_sip(dctx *c, sip_uri *u, const char *q, const char *end,
                     plist *params, plist *headers) {
  const char *at = last_at(q, end);
  int rc;
  if (at) {
    if ((rc = parse_userinfo(c, u, q, at)) != 0)
      return rc;
    q = at + 1;
  }
  if ((rc = parse_hostport(u, &q, end)) != 0)
    return rc;
  if (q < end && *q == ';') {
    const char *ps = q;
    if ((rc = parse_params(c, u, &q, end, params)) != 0)
      return rc;
    u->params_raw = (sip_str){ps, (size_t)(q - ps)};
  }
  if (q < end && *q == '?') {
    u->headers_raw = (sip_str){q + 1, (size_t)(end - q - 1)};
    return parse_headers(c, q + 1, end, headers);
  }
  return q == end ? 0 : SIP_EURI;
}

/* RFC 3966: global-number "+" 1*phonedigit, or local-number
 * 1*phonedigit-hex (phone-context is not enforced), then ;par. */
static int parse_tel(dctx *c, sip_uri *u, const char *q, const char *end,
                     plist *params) {
  const char *s = q;
  int digits = 0, pct = 0, global = q < end && *q == '+';
  if (global)
    q++;
  for (; q < end; q++) {
    unsigned char ch = (unsigned char)*q;
    if (sip__is(ch, SIP_C_DIGIT) ||
        (!global && (sip__is(ch, SIP_C_HEX) || ch == '*' || ch == '#'))) {
      digits = 1;
    } else if (ch == '%' && !global) {
      pct = 1; /* an escaped '#' or '*' */
    } else if (ch != '-' && ch != '.' && ch != '(' && ch != ')') {
      break;
    }
  }
  if (!digits && !pct)
    return SIP_EURI;
  u->user = (sip_str){s, (size_t)(q - s)};
  if (decode(c, s, u->user.len, pct, &u->user_dec))
    return SIP_ENOMEM;
  if (q < end && *q == ';') {
    const char *ps = q;
    int rc = parse_params(c, u, &q, end, params);
    if (rc)
      return rc;
    u->params_raw = (sip_str){ps, (size_t)(q - ps)};
  }
  return q == end ? 0 : SIP_EURI;
}

static int parse_other(sip_uri *u, const char *q, const char *end) {
  if (q == end)
    return SIP_EURI;
  u->opaque = (sip_str){q, (size_t)(end - q)};
  for (; q < end; q++) {
    unsigned char ch = (unsigned char)*q;
    if (ch == ' ' || ch == '<' || ch == '>' || ch == '"' ||
        sip__is(ch, SIP_C_CTL))
      return SIP_EURI;
  }
  return 0;
}

int sip_uri_parse(sip_arena *a, const char *p, size_t len, sip_uri *out) {
  /* a struct copy compiles to vector stores; memset of this size became a
   * slow "rep stos" that cost a quarter of a short parse */
  static const sip_uri zero;
  *out = zero;
  if (!p || len == 0 || !sip__is((unsigned char)*p, SIP_C_ALPHA))
    return SIP_EURI;
  const char *end = p + len, *q = p + 1;
  while (q < end && sip__is((unsigned char)*q, SIP_C_SCHEME))
    q++;
  if (q == end || *q != ':')
    return SIP_EURI;
  out->raw = (sip_str){p, len};
  out->scheme = (sip_str){p, (size_t)(q - p)};
  q++;

  if (ieq_lit(out->scheme, "sip", 3))
    out->kind = SIP_URI_SIP;
  else if (ieq_lit(out->scheme, "sips", 4))
    out->kind = SIP_URI_SIPS;
  else if (ieq_lit(out->scheme, "tel", 3))
    out->kind = SIP_URI_TEL;
  else
    return parse_other(out, q, end);

  dctx c = {a, NULL, 0, len};
  plist params, headers;
  plist_init(&params);
  plist_init(&headers);
  int rc = out->kind == SIP_URI_TEL
               ? parse_tel(&c, out, q, end, &params)
               : parse_sip(&c, out, q, end, &params, &headers);
  if (rc == 0)
    rc = plist_finish(&params, a, &out->params);
  if (rc == 0)
    rc = plist_finish(&headers, a, &out->headers);
  return rc;
}

static const sip_param *find_param(const sip_params *ps, sip_str name) {
  for (uint32_t i = 0; i < ps->n; i++)
    if (sip_str_ieq(ps->v[i].name, name))
      return &ps->v[i];
  return NULL;
}

/* Every header of a has a same-named one in b with the same value. */
static int headers_within(const sip_params *a, const sip_params *b) {
  for (uint32_t i = 0; i < a->n; i++) {
    uint32_t j = 0;
    while (j < b->n && !(sip_str_ieq(a->v[i].name, b->v[j].name) &&
                         opt_eq(a->v[i].dec, b->v[j].dec, 0)))
      j++;
    if (j == b->n)
      return 0;
  }
  return 1;
}

int sip_uri_equal(const sip_uri *a, const sip_uri *b) {
  if (a->kind != b->kind)
    return 0;
  if (a->kind != SIP_URI_SIP && a->kind != SIP_URI_SIPS) {
    if (!a->raw.p || !b->raw.p || !sip_str_ieq(a->scheme, b->scheme))
      return 0;
    size_t skip = a->scheme.len + 1;
    return bytes_eq((sip_str){a->raw.p + skip, a->raw.len - skip},
                    (sip_str){b->raw.p + skip, b->raw.len - skip});
  }
  if (!opt_eq(a->user_dec, b->user_dec, 0) ||
      !opt_eq(a->password_dec, b->password_dec, 0) ||
      !sip_str_ieq(a->host, b->host) || a->has_port != b->has_port ||
      a->port != b->port)
    return 0;
  /* §19.1.4: these must match even when only one side has them */
  if (!opt_eq(a->transport, b->transport, 1) ||
      !opt_eq(a->user_param, b->user_param, 1) || !opt_eq(a->ttl, b->ttl, 1) ||
      !opt_eq(a->method, b->method, 1) || !opt_eq(a->maddr, b->maddr, 1))
    return 0;
  for (uint32_t i = 0; i < a->params.n; i++) {
    const sip_param *pa = &a->params.v[i];
    enum wk k = wk_of(pa->name);
    /* like the well-known fields, the first of repeated names counts */
    if ((k != WK_NONE && k != WK_LR) || find_param(&a->params, pa->name) != pa)
      continue;
    const sip_param *pb = find_param(&b->params, pa->name);
    if (pb && !opt_eq(pa->dec, pb->dec, 1))
      return 0;
  }
  return headers_within(&a->headers, &b->headers) &&
         headers_within(&b->headers, &a->headers);
}
