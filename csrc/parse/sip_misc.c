/* Small header grammars: CSeq (§20.16), Content-Type media-type (§20.15),
 * credentials/challenges (§25.1, RFC 7235 framing), and multipart bodies
 * (RFC 2046 §5.1.1). */
#include <string.h>

#include "sip_fields.h"
#include "sip_scan.h"

static const char *skip_token(const char *p, const char *end) {
  while (p < end && sip__is((unsigned char)*p, SIP_C_TOKEN))
    p++;
  return p;
}

/* ---- CSeq ---------------------------------------------------------------- */

int sip_cseq_parse(const char *p, size_t len, sip_cseq *out) {
  sip_str t = sip__trim(p, p + len);
  const char *s = t.p, *end = t.p + t.len;
  p = s;
  while (p < end && sip__is((unsigned char)*p, SIP_C_DIGIT))
    p++;
  uint64_t num;
  int r = sip__parse_uint(s, p, 0x7fffffffu, &num); /* < 2^31, §8.1.1.5 */
  if (r < 0)
    return r == SIP_ERANGE ? r : SIP_ECSEQ;
  const char *m = sip__skip_lws(p, end);
  if (m == p) /* LWS between number and method is mandatory */
    return SIP_ECSEQ;
  const char *me = skip_token(m, end);
  if (me == m || me != end)
    return SIP_ECSEQ;
  out->num = (uint32_t)num;
  out->method = (sip_str){m, (size_t)(me - m)};
  return 0;
}

/* ---- Content-Type ------------------------------------------------------- */

int sip_ctype_parse(sip_arena *a, const char *p, size_t len, sip_ctype *out) {
  memset(out, 0, sizeof *out);
  sip_str t = sip__trim(p, p + len);
  const char *s = t.p, *end = t.p + t.len;
  p = skip_token(s, end);
  if (p == s)
    return SIP_EVALUE;
  out->type = (sip_str){s, (size_t)(p - s)};
  p = sip__skip_lws(p, end);
  if (p == end || *p != '/')
    return SIP_EVALUE;
  s = sip__skip_lws(p + 1, end);
  p = skip_token(s, end);
  if (p == s)
    return SIP_EVALUE;
  out->subtype = (sip_str){s, (size_t)(p - s)};
  p = sip__skip_lws(p, end);
  if (p == end)
    return 0;
  if (*p != ';')
    return SIP_EVALUE;
  int r = sip_params_parse(a, p, (size_t)(end - p), &out->params);
  if (r < 0)
    return r;
  const sip_param *b = sip_params_get(&out->params, "boundary");
  if (b)
    out->boundary = b->dec;
  return 0;
}

/* ---- Authorization / WWW-Authenticate ----------------------------------- */

/* token68 (RFC 7235 §2.1): Basic/Negotiate credentials such as
 * "dXNlcjpwYXNz==", which are not auth-params. */
static int is_token68(const char *p, const char *end) {
  const char *s = p;
  while (p < end &&
         (sip__is((unsigned char)*p, SIP_C_ALPHA | SIP_C_DIGIT) || *p == '-' ||
          *p == '.' || *p == '_' || *p == '~' || *p == '+' || *p == '/'))
    p++;
  if (p == s)
    return 0;
  while (p < end && *p == '=')
    p++;
  return p == end;
}

/* An unquoted auth-param value: token by the grammar, but real credentials
 * carry unquoted URIs and base64, so take anything up to a separator. */
static int is_auth_value_char(unsigned char c) {
  return c > ' ' && c != ',' && c != '"' && c != 0x7f;
}

static int parse_auth_params(sip_arena *a, const char *p, const char *end,
                             sip_params *out) {
  size_t max = 1 + sip__count_byte(p, end, ',');
  sip_param *v = sip_arena_alloc(a, max * sizeof *v);
  if (!v)
    return SIP_ENOMEM;
  uint32_t n = 0;
  for (;;) {
    /* #auth-param allows empty list elements (RFC 7235 §7) */
    while (p < end &&
           (*p == ',' || *p == ' ' || *p == '\t' || *p == '\r' || *p == '\n'))
      p++;
    if (p == end)
      break;
    const char *s = p;
    p = skip_token(p, end);
    if (p == s)
      return SIP_EPARAM;
    sip_param *pr = &v[n++];
    pr->name = (sip_str){s, (size_t)(p - s)};
    pr->value = pr->dec = SIP_STR_NULL;
    p = sip__skip_lws(p, end);
    if (p < end && *p == '=') {
      p = sip__skip_lws(p + 1, end);
      s = p;
      if (p < end && *p == '"') {
        p = sip__skip_quoted(p, end, NULL);
        if (!p)
          return SIP_EQUOTE;
        pr->value = (sip_str){s, (size_t)(p - s)};
        int r = sip_unquote(a, pr->value, &pr->dec);
        if (r < 0)
          return r;
      } else {
        while (p < end && is_auth_value_char((unsigned char)*p))
          p++;
        if (p == s)
          return SIP_EPARAM;
        pr->value = pr->dec = (sip_str){s, (size_t)(p - s)};
      }
      p = sip__skip_lws(p, end);
    }
    if (p < end && *p != ',')
      return SIP_EPARAM;
  }
  out->v = v;
  out->n = n;
  return 0;
}

int sip_auth_parse(sip_arena *a, const char *p, size_t len, sip_auth *out) {
  memset(out, 0, sizeof *out);
  sip_str t = sip__trim(p, p + len);
  const char *s = t.p, *end = t.p + t.len;
  p = skip_token(s, end);
  if (p == s)
    return SIP_EVALUE;
  out->scheme = (sip_str){s, (size_t)(p - s)};
  const char *q = sip__skip_lws(p, end);
  if (q == end) /* a scheme alone ("Negotiate") */
    return 0;
  if (q == p)
    return SIP_EVALUE;
  if (is_token68(q, end)) {
    sip_param *v = sip_arena_alloc(a, sizeof *v);
    if (!v)
      return SIP_ENOMEM;
    v->name = (sip_str){q, (size_t)(end - q)};
    v->value = v->dec = SIP_STR_NULL;
    out->params = (sip_params){v, 1};
    return 0;
  }
  return parse_auth_params(a, q, end, &out->params);
}

/* ---- multipart (RFC 2046 §5.1.1) ---------------------------------------- */

/* If a delimiter line "--boundary" starts at p (a line start), return 1 for
 * a delimiter, 2 for the close delimiter "--boundary--", 0 otherwise, and
 * set *next to the start of the following line (or end). */
static int delimiter_at(const char *p, const char *end, sip_str b,
                        const char **next) {
  if ((size_t)(end - p) < b.len + 2 || p[0] != '-' || p[1] != '-' ||
      memcmp(p + 2, b.p, b.len) != 0)
    return 0;
  p += 2 + b.len;
  int kind = 1;
  if (end - p >= 2 && p[0] == '-' && p[1] == '-') {
    p += 2;
    kind = 2;
  }
  while (p < end && (*p == ' ' || *p == '\t')) /* transport-padding */
    p++;
  if (p == end) {
    *next = p;
    return kind;
  }
  if (*p == '\r' && p + 1 < end && p[1] == '\n')
    p++;
  if (*p != '\n')
    return kind == 2 ? 2 : 0; /* anything may follow the close delimiter */
  *next = p + 1;
  return kind;
}

/* Find the next delimiter line at or after p (p is a line start). Sets
 * *line to its start and *next past it; returns its kind or 0. */
static int find_delimiter(const char *p, const char *end, sip_str b,
                          const char **line, const char **next) {
  while (p < end) {
    int k = delimiter_at(p, end, b, next);
    if (k) {
      *line = p;
      return k;
    }
    p = memchr(p, '\n', (size_t)(end - p));
    if (!p)
      return 0;
    p++;
  }
  return 0;
}

/* The part's Content-Type value, trimmed; absent if none. Header lines end
 * with CRLF or LF; a line starting with SP/HTAB continues the previous. */
static sip_str part_ctype(const char *p, const char *end) {
  static const char name[] = "content-type";
  while (p < end) {
    const char *eol = memchr(p, '\n', (size_t)(end - p));
    const char *le = eol ? eol : end;
    const char *c = memchr(p, ':', (size_t)(le - p));
    if (c) {
      sip_str n = sip__trim(p, c);
      if (n.len == sizeof name - 1 && sip_str_ieq_cstr(n, name)) {
        const char *ve = le;
        while (ve < end && ve + 1 < end && (ve[1] == ' ' || ve[1] == '\t')) {
          const char *nx = memchr(ve + 1, '\n', (size_t)(end - ve - 1));
          ve = nx ? nx : end;
        }
        return sip__trim(c + 1, ve);
      }
    }
    p = eol ? eol + 1 : end;
  }
  return SIP_STR_NULL;
}

int sip_multipart_parse(sip_arena *a, const char *body, size_t len,
                        sip_str boundary, sip_part **head) {
  *head = NULL;
  if (!boundary.p || boundary.len == 0 || !body)
    return SIP_EMULTIPART;
  const char *end = body + len, *line, *next;
  int k = find_delimiter(body, end, boundary, &line, &next);
  if (k != 1) /* no parts (or only a close delimiter) */
    return SIP_EMULTIPART;
  sip_part *first = NULL, **t = &first;
  int n = 0;
  while (k == 1) {
    const char *ps = next;
    k = find_delimiter(ps, end, boundary, &line, &next);
    if (!k) /* no close delimiter: the body was cut */
      return SIP_EMULTIPART;
    /* The CRLF before a delimiter belongs to it, not to the content. */
    const char *pe = line;
    if (pe > ps && pe[-1] == '\n')
      pe--;
    if (pe > ps && pe[-1] == '\r')
      pe--;
    sip_part *part = sip_arena_alloc(a, sizeof *part);
    if (!part)
      return SIP_ENOMEM;
    memset(part, 0, sizeof *part);
    /* Headers end at the first empty line; a part that starts with an empty
     * line has none. Without an empty line the whole part is headers. */
    const char *hs = ps, *he = pe, *bs = pe;
    for (const char *q = ps; q < pe;) {
      const char *eol = memchr(q, '\n', (size_t)(pe - q));
      const char *le = eol ? eol : pe;
      if (le == q || (le == q + 1 && *q == '\r')) { /* empty line */
        he = q;
        bs = eol ? eol + 1 : pe;
        break;
      }
      q = eol ? eol + 1 : pe;
    }
    if (he > hs && he[-1] == '\n')
      he--;
    if (he > hs && he[-1] == '\r')
      he--;
    part->headers = (sip_str){hs, (size_t)(he - hs)};
    part->content_type = part_ctype(hs, he);
    part->body = (sip_str){bs, (size_t)(pe - bs)};
    *t = part;
    t = &part->next;
    n++;
  }
  *head = first;
  return n;
}
