/* SDP (RFC 8866) parser and writer: see sip_sdp.h for the contract. Every
 * read is bounded by the slice it belongs to; nothing is allocated. */
#include <string.h>

#include "sip_sdp.h"

/* Byte classes (RFC 8866 §9), our own table: no locale. */
enum { C_TOKEN = 1, C_VCHAR = 2, C_DIGIT = 4 };

static unsigned char cls(unsigned char c) {
  static const char token_extra[] = "!#$%&'*+-.^_`{|}~";
  unsigned char r = 0;
  if ((c >= 0x21 && c <= 0x7e) || c >= 0x80)
    r |= C_VCHAR;
  if (c >= '0' && c <= '9')
    r |= C_DIGIT | C_TOKEN;
  else if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
    r |= C_TOKEN;
  else if (c && memchr(token_extra, c, sizeof token_extra - 1))
    r |= C_TOKEN;
  return r;
}

static int all_of(sip_str s, unsigned char want) {
  if (!s.p || s.len == 0)
    return 0;
  for (size_t i = 0; i < s.len; i++)
    if (!(cls((unsigned char)s.p[i]) & want))
      return 0;
  return 1;
}

/* proto = token *("/" token) */
static int is_proto(sip_str s) {
  if (!s.p || s.len == 0 || s.p[0] == '/' || s.p[s.len - 1] == '/')
    return 0;
  for (size_t i = 0; i < s.len; i++) {
    unsigned char c = (unsigned char)s.p[i];
    if (c == '/') {
      if (s.p[i - 1] == '/')
        return 0;
    } else if (!(cls(c) & C_TOKEN)) {
      return 0;
    }
  }
  return 1;
}

/* No byte that would end or corrupt a line. */
static int is_text(sip_str s) {
  for (size_t i = 0; i < s.len; i++)
    if (s.p[i] == '\r' || s.p[i] == '\n' || s.p[i] == '\0')
      return 0;
  return 1;
}

sip_str sip_sdp_next_token(const char **p, const char *end) {
  const char *s = *p;
  while (s < end && *s == ' ')
    s++;
  const char *t = s;
  while (t < end && *t != ' ')
    t++;
  *p = t;
  return t > s ? (sip_str){s, (size_t)(t - s)} : SIP_STR_NULL;
}

static int only_spaces(const char *p, const char *end) {
  for (; p < end; p++)
    if (*p != ' ')
      return 0;
  return 1;
}

#define FAIL(why)                                                              \
  do {                                                                         \
    *what = (why);                                                             \
    return SIP_ESDP;                                                           \
  } while (0)

int sip_sdp_parse_line(char type, const char *value, size_t len,
                       sip_sdp_line *l, const char **what) {
  const char *p = value, *end = value + len;
  memset(l, 0, sizeof *l);
  l->type = type;
  l->value = (sip_str){value, len};
  *what = NULL;
  if (!is_text(l->value))
    FAIL("control character in a line");
  switch (type) {
  case 'v':
    if (!all_of(l->value, C_DIGIT))
      FAIL("v= line: version is not a number");
    return 0;
  case 's':
  case 'i':
  case 'u':
  case 'e':
  case 'p':
  case 'k':
  case 'z':
  case 'r':
    return 0;
  case 'o': {
    sip_str *f[] = {&l->u.o.username, &l->u.o.sess_id,  &l->u.o.sess_version,
                    &l->u.o.nettype,  &l->u.o.addrtype, &l->u.o.address};
    for (size_t i = 0; i < 6; i++) {
      *f[i] = sip_sdp_next_token(&p, end);
      if (!all_of(*f[i], C_VCHAR))
        FAIL("o= line: fewer than 6 fields");
    }
    if (!only_spaces(p, end))
      FAIL("o= line: more than 6 fields");
    if (!all_of(l->u.o.sess_id, C_DIGIT) ||
        !all_of(l->u.o.sess_version, C_DIGIT))
      FAIL("o= line: sess-id or sess-version is not a number");
    return 0;
  }
  case 'c': {
    sip_str *f[] = {&l->u.c.nettype, &l->u.c.addrtype, &l->u.c.address};
    for (size_t i = 0; i < 3; i++) {
      *f[i] = sip_sdp_next_token(&p, end);
      if (!all_of(*f[i], C_VCHAR))
        FAIL("c= line: fewer than 3 fields");
    }
    if (!only_spaces(p, end))
      FAIL("c= line: more than 3 fields");
    return 0;
  }
  case 'b': {
    sip_str all = sip_sdp_next_token(&p, end);
    if (!only_spaces(p, end) || !all.p)
      FAIL("b= line: not <bwtype>:<bandwidth>");
    const char *colon = memchr(all.p, ':', all.len);
    if (!colon)
      FAIL("b= line: not <bwtype>:<bandwidth>");
    l->u.b.bwtype = (sip_str){all.p, (size_t)(colon - all.p)};
    l->u.b.bandwidth =
        (sip_str){colon + 1, (size_t)(all.p + all.len - colon - 1)};
    if (!all_of(l->u.b.bwtype, C_TOKEN))
      FAIL("b= line: bwtype is not a token");
    if (!all_of(l->u.b.bandwidth, C_DIGIT))
      FAIL("b= line: bandwidth is not a number");
    return 0;
  }
  case 't':
    l->u.t.start = sip_sdp_next_token(&p, end);
    l->u.t.stop = sip_sdp_next_token(&p, end);
    if (!all_of(l->u.t.start, C_DIGIT) || !all_of(l->u.t.stop, C_DIGIT) ||
        !only_spaces(p, end))
      FAIL("t= line: not <start> <stop>");
    return 0;
  case 'm': {
    l->u.m.media = sip_sdp_next_token(&p, end);
    if (!all_of(l->u.m.media, C_TOKEN))
      FAIL("m= line: media is not a token");
    sip_str port = sip_sdp_next_token(&p, end);
    if (!port.p)
      FAIL("m= line: no port");
    const char *slash = memchr(port.p, '/', port.len);
    if (slash) {
      l->u.m.port = (sip_str){port.p, (size_t)(slash - port.p)};
      l->u.m.nports =
          (sip_str){slash + 1, (size_t)(port.p + port.len - slash - 1)};
      if (!all_of(l->u.m.nports, C_DIGIT))
        FAIL("m= line: number of ports is not a number");
    } else {
      l->u.m.port = port;
    }
    if (!all_of(l->u.m.port, C_DIGIT))
      FAIL("m= line: port is not a number");
    if (l->u.m.port.len > 5 ||
        (l->u.m.port.len == 5 && memcmp(l->u.m.port.p, "65535", 5) > 0))
      FAIL("m= line: port out of range");
    l->u.m.proto = sip_sdp_next_token(&p, end);
    if (!is_proto(l->u.m.proto))
      FAIL("m= line: no transport protocol");
    sip_str f = sip_sdp_next_token(&p, end);
    if (f.p) {
      const char *last_end = f.p + f.len;
      l->u.m.fmts.p = f.p;
      for (; f.p; f = sip_sdp_next_token(&p, end)) {
        if (!all_of(f, C_VCHAR))
          FAIL("m= line: malformed format");
        last_end = f.p + f.len;
      }
      l->u.m.fmts.len = (size_t)(last_end - l->u.m.fmts.p);
    }
    return 0;
  }
  case 'a': {
    const char *colon = memchr(value, ':', len);
    l->u.a.name = (sip_str){value, colon ? (size_t)(colon - value) : len};
    if (!all_of(l->u.a.name, C_TOKEN))
      FAIL("a= line: attribute name is not a token");
    if (colon)
      l->u.a.value = (sip_str){colon + 1, (size_t)(end - colon - 1)};
    return 0;
  }
  default:
    FAIL("unknown type letter");
  }
}

/* --- writing ------------------------------------------------------------ */

typedef struct sink {
  char *out;
  size_t cap;
  size_t n;
  const char *cmp; /* compare instead of writing (cap: its length) */
  int differ;
} sink;

static void put(sink *k, const char *p, size_t len) {
  if (k->cmp) {
    if (k->n + len > k->cap || memcmp(k->cmp + k->n, p, len) != 0)
      k->differ = 1;
  } else if (k->n < k->cap) {
    size_t room = k->cap - k->n;
    memcpy(k->out + k->n, p, len < room ? len : room);
  }
  k->n += len;
}

static void put_str(sink *k, sip_str s) { put(k, s.p ? s.p : "", s.len); }

/* The fields joined with single spaces. */
static void put_list(sink *k, const sip_str *f, size_t n) {
  for (size_t i = 0; i < n; i++) {
    if (i)
      put(k, " ", 1);
    put_str(k, f[i]);
  }
}

/* Checks the fields of l for writing, then formats them into k. Returns 0 or
 * SIP_EINVAL. */
static int format_fields(const sip_sdp_line *l, sink *k) {
  switch (l->type) {
  case 'v':
    if (!all_of(l->value, C_DIGIT))
      return SIP_EINVAL;
    put_str(k, l->value);
    return 0;
  case 's':
  case 'i':
  case 'u':
  case 'e':
  case 'p':
  case 'k':
  case 'z':
  case 'r':
    if (!l->value.p || !is_text(l->value))
      return SIP_EINVAL;
    put_str(k, l->value);
    return 0;
  case 'o': {
    const sip_str f[] = {l->u.o.username, l->u.o.sess_id,  l->u.o.sess_version,
                         l->u.o.nettype,  l->u.o.addrtype, l->u.o.address};
    for (size_t i = 0; i < 6; i++)
      if (!all_of(f[i], C_VCHAR))
        return SIP_EINVAL;
    if (!all_of(f[1], C_DIGIT) || !all_of(f[2], C_DIGIT))
      return SIP_EINVAL;
    put_list(k, f, 6);
    return 0;
  }
  case 'c': {
    const sip_str f[] = {l->u.c.nettype, l->u.c.addrtype, l->u.c.address};
    for (size_t i = 0; i < 3; i++)
      if (!all_of(f[i], C_VCHAR))
        return SIP_EINVAL;
    put_list(k, f, 3);
    return 0;
  }
  case 'b':
    if (!all_of(l->u.b.bwtype, C_TOKEN) || !all_of(l->u.b.bandwidth, C_DIGIT))
      return SIP_EINVAL;
    put_str(k, l->u.b.bwtype);
    put(k, ":", 1);
    put_str(k, l->u.b.bandwidth);
    return 0;
  case 't':
    if (!all_of(l->u.t.start, C_DIGIT) || !all_of(l->u.t.stop, C_DIGIT))
      return SIP_EINVAL;
    put_str(k, l->u.t.start);
    put(k, " ", 1);
    put_str(k, l->u.t.stop);
    return 0;
  case 'm':
    if (!all_of(l->u.m.media, C_TOKEN) || !all_of(l->u.m.port, C_DIGIT) ||
        (l->u.m.nports.p && !all_of(l->u.m.nports, C_DIGIT)) ||
        !is_proto(l->u.m.proto) || !is_text(l->u.m.fmts))
      return SIP_EINVAL;
    if (l->u.m.fmts.p && (l->u.m.fmts.len == 0 || l->u.m.fmts.p[0] == ' ' ||
                          l->u.m.fmts.p[l->u.m.fmts.len - 1] == ' '))
      return SIP_EINVAL;
    put_str(k, l->u.m.media);
    put(k, " ", 1);
    put_str(k, l->u.m.port);
    if (l->u.m.nports.p) {
      put(k, "/", 1);
      put_str(k, l->u.m.nports);
    }
    put(k, " ", 1);
    put_str(k, l->u.m.proto);
    if (l->u.m.fmts.p) {
      put(k, " ", 1);
      put_str(k, l->u.m.fmts);
    }
    return 0;
  case 'a':
    if (!all_of(l->u.a.name, C_TOKEN) || !is_text(l->u.a.value))
      return SIP_EINVAL;
    put_str(k, l->u.a.name);
    if (l->u.a.value.p) {
      put(k, ":", 1);
      put_str(k, l->u.a.value);
    }
    return 0;
  default:
    return SIP_EINVAL;
  }
}

int sip_sdp_line_canonical(const sip_sdp_line *l) {
  sink k = {.cap = l->value.len, .cmp = l->value.p ? l->value.p : ""};
  if (format_fields(l, &k) < 0)
    return 0;
  return !k.differ && k.n == l->value.len;
}

int sip_sdp_write(const sip_sdp_line *lines, uint32_t n, int lf_only,
                  int last_eol, char *out, size_t cap, uint32_t *bad) {
  sink k = {.out = out, .cap = cap};
  for (uint32_t i = 0; i < n; i++) {
    const sip_sdp_line *l = &lines[i];
    char head[2] = {l->type, '='};
    if (!strchr("vosiuepcbtrzkam", l->type) || l->type == '\0')
      goto invalid;
    put(&k, head, 2);
    if (l->value.p && l->type != 'v') {
      if (!is_text(l->value))
        goto invalid;
      put_str(&k, l->value);
    } else if (format_fields(l, &k) < 0) {
      goto invalid;
    }
    if (i + 1 < n || last_eol)
      put(&k, lf_only ? "\n" : "\r\n", lf_only ? 1 : 2);
    if (k.n > 0x7fffffff)
      return SIP_ETOOBIG;
    continue;
  invalid:
    if (bad)
      *bad = i;
    return SIP_EINVAL;
  }
  return (int)k.n;
}

/* --- the description ---------------------------------------------------- */

/* Where a line may stand (§5): ranks never decrease within a part; a line
 * that may appear once needs a strictly greater rank than the one before. */
static int rank(char t, int media) {
  static const char session[] = "vosiuepcbtrzka";
  static const char inmedia[] = "micbka";
  /* t and r share a rank; r is checked to follow a t or r */
  const char *s = media ? inmedia : session;
  const char *at = strchr(s, t);
  if (!t || !at)
    return -1;
  int r = (int)(at - s);
  if (!media && t == 'r')
    return 9;
  if (!media && r > 10) /* z k a after the shared t/r */
    r--;
  return r;
}

static int repeatable(char t, int media) {
  return media ? (t == 'c' || t == 'b' || t == 'a')
               : (t == 'e' || t == 'p' || t == 'b' || t == 't' || t == 'r' ||
                  t == 'a');
}

int sip_sdp_parse(sip_sdp *sdp, const char *buf, size_t len,
                  sip_sdp_line *lines, uint32_t max) {
  const char *p = buf, *end = buf + len;
  int media = 0, prev_rank = -1;
  char prev = 0;
  memset(sdp, 0, sizeof *sdp);
  sdp->lines = lines;
  sdp->last_eol = 1;
#define BAD(why)                                                               \
  do {                                                                         \
    sdp->err_line = sdp->nlines + 1;                                           \
    sdp->err_off = (size_t)(line - buf);                                       \
    sdp->err_what = (why);                                                     \
    return SIP_ESDP;                                                           \
  } while (0)
  if (len == 0) {
    const char *line = buf;
    BAD("empty description");
  }
  while (p < end) {
    const char *line = p;
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    const char *vend = nl ? nl : end;
    int lf = 0;
    if (nl) {
      if (vend > p && vend[-1] == '\r')
        vend--;
      else
        lf = 1;
      if (sdp->nlines == 0)
        sdp->lf_only = (uint8_t)lf;
      else if (sdp->lf_only != lf)
        BAD("mixed CRLF and LF line endings");
      p = nl + 1;
    } else {
      sdp->last_eol = 0;
      p = end;
    }
    if (vend - line < 2 || line[1] != '=')
      BAD(vend == line ? "empty line" : "not <type>=<value>");
    if (sdp->nlines == max)
      return SIP_ETOOMANY;
    char t = line[0];
    const char *what;
    sip_sdp_line *l = &lines[sdp->nlines];
    if (t < 'a' || t > 'z' || !strchr("vosiuepcbtrzkam", t))
      BAD("unknown type letter");
    if (sip_sdp_parse_line(t, line + 2, (size_t)(vend - line - 2), l, &what) <
        0)
      BAD(what);
    if (sdp->nlines == 0 && t != 'v')
      BAD("does not start with v=");
    if (t == 'm') {
      if (prev_rank < 2 && !media)
        BAD("m= before o= and s=");
      if (!media)
        sdp->first_media = sdp->nlines;
      media = 1;
      sdp->nmedia++;
      prev_rank = 0;
    } else {
      int r = rank(t, media);
      if (r < 0)
        BAD("type letter not allowed here");
      if (!media && r != prev_rank + 1 && prev_rank < 2)
        BAD(prev_rank < 1 ? "o= must follow v=" : "s= must follow o=");
      if (r < prev_rank || (r == prev_rank && !repeatable(t, media)))
        BAD("line out of order");
      if (t == 'r' && prev != 't' && prev != 'r')
        BAD("r= without t=");
      prev_rank = r;
    }
    prev = t;
    sdp->nlines++;
  }
#undef BAD
  if (!media)
    sdp->first_media = sdp->nlines;
  if (prev_rank < 2 && !media) {
    const char *line = end;
    sdp->err_line = sdp->nlines + 1;
    sdp->err_off = (size_t)(line - buf);
    sdp->err_what = "no o= or s= line";
    return SIP_ESDP;
  }
  return (int)sdp->nlines;
}

/* --- comparing lines ------------------------------------------------------ */

/* Digit strings as numbers: leading zeros do not count. */
static int num_eq(sip_str a, sip_str b) {
  while (a.len > 1 && a.p[0] == '0')
    a.p++, a.len--;
  while (b.len > 1 && b.p[0] == '0')
    b.p++, b.len--;
  return a.len == b.len && (a.len == 0 || memcmp(a.p, b.p, a.len) == 0);
}

static int str_eq(sip_str a, sip_str b) {
  if (!a.p || !b.p)
    return !a.p && !b.p;
  return a.len == b.len && (a.len == 0 || memcmp(a.p, b.p, a.len) == 0);
}

/* The same space-separated tokens. */
static int toks_eq(sip_str a, sip_str b) {
  const char *pa = a.p ? a.p : "", *ea = pa + a.len;
  const char *pb = b.p ? b.p : "", *eb = pb + b.len;
  for (;;) {
    sip_str ta = sip_sdp_next_token(&pa, ea), tb = sip_sdp_next_token(&pb, eb);
    if (!ta.p || !tb.p)
      return !ta.p && !tb.p;
    if (!str_eq(ta, tb))
      return 0;
  }
}

int sip_sdp_line_equal(const sip_sdp_line *a, const sip_sdp_line *b) {
  if (a->type != b->type)
    return 0;
  switch (a->type) {
  case 'v':
    return num_eq(a->value, b->value);
  case 'o':
    return str_eq(a->u.o.username, b->u.o.username) &&
           num_eq(a->u.o.sess_id, b->u.o.sess_id) &&
           num_eq(a->u.o.sess_version, b->u.o.sess_version) &&
           str_eq(a->u.o.nettype, b->u.o.nettype) &&
           str_eq(a->u.o.addrtype, b->u.o.addrtype) &&
           str_eq(a->u.o.address, b->u.o.address);
  case 'c':
    return str_eq(a->u.c.nettype, b->u.c.nettype) &&
           str_eq(a->u.c.addrtype, b->u.c.addrtype) &&
           str_eq(a->u.c.address, b->u.c.address);
  case 'b':
    return str_eq(a->u.b.bwtype, b->u.b.bwtype) &&
           num_eq(a->u.b.bandwidth, b->u.b.bandwidth);
  case 't':
    return num_eq(a->u.t.start, b->u.t.start) &&
           num_eq(a->u.t.stop, b->u.t.stop);
  case 'm':
    return str_eq(a->u.m.media, b->u.m.media) &&
           num_eq(a->u.m.port, b->u.m.port) &&
           (a->u.m.nports.p
                ? b->u.m.nports.p && num_eq(a->u.m.nports, b->u.m.nports)
                : !b->u.m.nports.p) &&
           str_eq(a->u.m.proto, b->u.m.proto) &&
           toks_eq(a->u.m.fmts, b->u.m.fmts);
  case 'a':
    return str_eq(a->u.a.name, b->u.a.name) &&
           str_eq(a->u.a.value, b->u.a.value);
  default:
    return str_eq(a->value, b->value);
  }
}
