/* Message framing and the header index (RFC 3261 §7, §18.3), and the lazily
 * parsed accessors on top of it.
 *
 * sip_msg_parse does only what every element needs for every message: the
 * start line, each header's boundaries and name, Content-Length and the body.
 * Everything else is parsed the first time someone asks, and cached. */
#include <stdio.h>
#include <string.h>

#include "sip_msg.h"
#include "sip_scan.h"

const sip_limits sip_default_limits = {
    .max_size = 65535,
    .max_headers = 256,
    .max_line = 16384,
};

/* ---- the header name table ------------------------------------------- */

#define HDR_SLOTS 256 /* power of two, > 4x the table size */

static const char *const hdr_names[SIP_H__COUNT] = {NULL,
#define HDR_NAME(id, name, compact, flags) name,
                                                    SIP_HEADER_TABLE(HDR_NAME)
#undef HDR_NAME
};

static const unsigned char hdr_compact[SIP_H__COUNT] = {
    0,
#define HDR_COMPACT(id, name, compact, flags) compact,
    SIP_HEADER_TABLE(HDR_COMPACT)
#undef HDR_COMPACT
};

static const unsigned hdr_flag_tab[SIP_H__COUNT] = {0,
#define HDR_FLAGS(id, name, compact, flags) flags,
                                                    SIP_HEADER_TABLE(HDR_FLAGS)
#undef HDR_FLAGS
};

static uint8_t hdr_by_compact[128];
/* Call-ID bytes: word characters and '@' */
static uint8_t callid_byte[256];
/* bytes that cannot be in a Request-URI on the wire: CTL, SP, HTAB, < > " */
static uint8_t ruri_bad[256];
static uint8_t hdr_slot[HDR_SLOTS];
static uint8_t hdr_name_len[SIP_H__COUNT];
/* lowercase copies, zero-padded so they can be compared 8 bytes at a time */
static char hdr_lower[SIP_H__COUNT][24];
/* what OR-ing folds: 0x20 for every byte (tokens, below), or only at the
 * letters of a table name (exact, for a name that is not checked yet) */
static const char fold_tokens[24] = {
    0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20,
    0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20};
static char hdr_fold_letters[SIP_H__COUNT][24];
/* per first letter (a..z), the names a header name can be: the compact
 * form first (len 1), then the usual headers, then the others; len 0 ends */
typedef struct hdr_cand {
  uint8_t len, id;
} hdr_cand;
static hdr_cand hdr_by_first[26][16];

static unsigned hdr_hash(const char *p, size_t len) {
  return ((unsigned)len * 7u + (unsigned)(p[0] | 0x20) * 31u +
          (unsigned)(p[len - 1] | 0x20) * 3u + (unsigned)(p[1] | 0x20)) &
         (HDR_SLOTS - 1);
}

/* Runs before main (and before any dlopen'er calls in), so lookups need no
 * initialisation check on the hot path. */
__attribute__((constructor)) static void hdr_table_init(void) {
  for (int c = 0; c < 256; c++) {
    callid_byte[c] = c == '@' || sip__is((unsigned char)c, SIP_C_WORD);
    ruri_bad[c] = sip__is((unsigned char)c, SIP_C_CTL | SIP_C_WS) || c == '<' ||
                  c == '>' || c == '"';
  }
  for (int id = 1; id < SIP_H__COUNT; id++) {
    size_t len = strlen(hdr_names[id]);
    hdr_name_len[id] = (uint8_t)len;
    for (size_t i = 0; i < len; i++) {
      hdr_lower[id][i] = sip__lower(hdr_names[id][i]);
      hdr_fold_letters[id][i] =
          sip__is((unsigned char)hdr_names[id][i], SIP_C_ALPHA) ? 0x20 : 0;
    }
    unsigned h = hdr_hash(hdr_names[id], len);
    while (hdr_slot[h])
      h = (h + 1) & (HDR_SLOTS - 1);
    hdr_slot[h] = (uint8_t)id;
    if (hdr_compact[id])
      hdr_by_compact[(unsigned char)sip__lower((char)hdr_compact[id])] =
          (uint8_t)id;
  }
  static const uint8_t usual[] = {SIP_H_VIA,
                                  SIP_H_FROM,
                                  SIP_H_TO,
                                  SIP_H_CALL_ID,
                                  SIP_H_CSEQ,
                                  SIP_H_CONTACT,
                                  SIP_H_CONTENT_LENGTH,
                                  SIP_H_CONTENT_TYPE,
                                  SIP_H_MAX_FORWARDS,
                                  SIP_H_ROUTE,
                                  SIP_H_RECORD_ROUTE,
                                  SIP_H_EXPIRES,
                                  SIP_H_USER_AGENT,
                                  SIP_H_ALLOW,
                                  SIP_H_SUPPORTED,
                                  SIP_H_SERVER,
                                  SIP_H_AUTHORIZATION,
                                  SIP_H_REQUIRE};
  int n[26] = {0};
  uint8_t seen[SIP_H__COUNT] = {0};
  for (int c = 'a'; c <= 'z'; c++)
    if (hdr_by_compact[c])
      hdr_by_first[c - 'a'][n[c - 'a']++] = (hdr_cand){1, hdr_by_compact[c]};
  for (size_t i = 0; i < sizeof usual; i++) {
    int c = hdr_lower[usual[i]][0] - 'a';
    hdr_by_first[c][n[c]++] = (hdr_cand){hdr_name_len[usual[i]], usual[i]};
    seen[usual[i]] = 1;
  }
  for (int id = 1; id < SIP_H__COUNT; id++) {
    int c = hdr_lower[id][0] - 'a';
    if (!seen[id] && c >= 0 && c < 26 && n[c] < 15)
      hdr_by_first[c][n[c]++] = (hdr_cand){hdr_name_len[id], (uint8_t)id};
  }
}

static uint64_t load8(const char *p) {
  uint64_t v;
  memcpy(&v, p, 8);
  return v;
}

/* Header names are tokens, and for token characters OR-ing 0x20 folds case
 * without mapping any other token character onto a letter, digit or '-', so
 * the table compare can fold eight bytes at once (fold_tokens): whole
 * words, then the last eight bytes (overlapping; the table copies are
 * zero-padded). A name not known to be a token folds only where the table
 * name has a letter (hdr_fold_letters): then equal means exactly the table
 * name, letters in any case. A name shorter than eight is one masked word
 * when at least eight bytes can be read from it (overread: the rest of the
 * header line is there). */
__attribute__((always_inline)) static inline int
name_eq_lower(const char *name, size_t len, const char *lower, const char *fold,
              int overread) {
  if (len >= 8) {
    size_t i = 0;
    for (; i + 8 <= len; i += 8)
      if ((load8(name + i) | load8(fold + i)) != load8(lower + i))
        return 0;
    return i == len || (load8(name + len - 8) | load8(fold + len - 8)) ==
                           load8(lower + len - 8);
  }
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  if (overread) {
    uint64_t mask = ~(uint64_t)0 >> (8 * (8 - len));
    return ((load8(name) | load8(fold)) & mask) == load8(lower);
  }
#else
  (void)overread;
#endif
  for (size_t i = 0; i < len; i++)
    if ((name[i] | fold[i]) != lower[i])
      return 0;
  return 1;
}

/* sip_hdr_lookup; overread: name[0..8) may be read whatever len is; exact:
 * the name is not known to be a token (see name_eq_lower) */
__attribute__((always_inline)) static inline int
hdr_lookup(const char *name, size_t len, int overread, int exact) {
  if (len == 0)
    return SIP_H_OTHER;
  if (len == 1) {
    unsigned char c = (unsigned char)sip__lower(name[0]);
    return c < 128 ? hdr_by_compact[c] : SIP_H_OTHER;
  }
  if (len >= sizeof(hdr_lower[0]))
    return SIP_H_OTHER;
  unsigned h = hdr_hash(name, len);
  for (;;) {
    int id = hdr_slot[h];
    if (!id)
      return SIP_H_OTHER;
    if (hdr_name_len[id] == len &&
        name_eq_lower(name, len, hdr_lower[id],
                      exact ? hdr_fold_letters[id] : fold_tokens, overread))
      return id;
    h = (h + 1) & (HDR_SLOTS - 1);
  }
}

int sip_hdr_lookup(const char *name, size_t len) {
  return hdr_lookup(name, len, 0, 0);
}

const char *sip_hdr_canonical(int id) {
  return (id > 0 && id < SIP_H__COUNT) ? hdr_names[id] : NULL;
}

unsigned sip_hdr_flags(int id) {
  return (id > 0 && id < SIP_H__COUNT) ? hdr_flag_tab[id] : 0;
}

/* ---- framing ----------------------------------------------------------- */

static void msg_reset(sip_msg *m) {
  const sip_limits *lim = m->limits;
  sip_arena_free(&m->arena);
  memset(m, 0, offsetof(sip_msg, cache));
  m->limits = lim ? lim : &sip_default_limits;
  m->hdr = m->hdr_inline;
  m->hdr_cap = SIP_MSG_INLINE_HDRS;
  sip_arena_init(&m->arena, m->arena_inline, sizeof(m->arena_inline));
}

void sip_msg_init(sip_msg *m, const sip_limits *limits) {
  m->arena.chunks = NULL;
  m->limits = limits;
  msg_reset(m);
}

void sip_msg_free(sip_msg *m) { msg_reset(m); }

static int fail(sip_msg *m, const char *base, const char *at, const char *what,
                int err) {
  m->err_off = (size_t)(at - base);
  m->err_what = what;
  return err;
}

/* "SIP/" 1*DIGIT "." 1*DIGIT, "SIP" in any case. */
static int version_ok(const char *p, const char *end) {
  if (end - p < 7 || sip__lower(p[0]) != 's' || sip__lower(p[1]) != 'i' ||
      sip__lower(p[2]) != 'p' || p[3] != '/')
    return 0;
  p += 4;
  const char *d = p;
  while (p < end && sip__is((unsigned char)*p, SIP_C_DIGIT))
    p++;
  if (p == d || p == end || *p != '.')
    return 0;
  d = ++p;
  while (p < end && sip__is((unsigned char)*p, SIP_C_DIGIT))
    p++;
  return p > d && p == end;
}

static int parse_start_line(sip_msg *m, const char *base, const char *p,
                            const char *end) {
  m->start_line = (sip_str){p, (size_t)(end - p)};
  const char *sp1 = memchr(p, ' ', (size_t)(end - p));
  if (!sp1 || sp1 == p)
    return fail(m, base, p, "start line", SIP_ESTARTLINE);

  if (version_ok(p, sp1)) { /* Status-Line */
    m->version = (sip_str){p, (size_t)(sp1 - p)};
    const char *c = sp1 + 1;
    if (end - c < 3)
      return fail(m, base, c, "status code", SIP_ESTARTLINE);
    unsigned code = 0;
    for (int i = 0; i < 3; i++) {
      if (!sip__is((unsigned char)c[i], SIP_C_DIGIT))
        return fail(m, base, c, "status code", SIP_ESTARTLINE);
      code = code * 10 + (unsigned)(c[i] - '0');
    }
    c += 3;
    if (c < end && *c != ' ')
      return fail(m, base, c, "status code", SIP_ESTARTLINE);
    if (code < 100 || code > 699)
      return fail(m, base, c - 3, "status code", SIP_ERANGE);
    m->status = (uint16_t)code;
    /* "SIP/2.0 100" without the SP is taken liberally (RFC 4475 §3.1.1.13) */
    m->reason =
        c < end ? (sip_str){c + 1, (size_t)(end - c - 1)} : (sip_str){c, 0};
    for (const char *r = m->reason.p; r < end; r++)
      if (*r == '\r' || *r == '\n')
        return fail(m, base, r, "reason phrase", SIP_ESTARTLINE);
    /* §25.1: no control characters but HTAB in the Reason-Phrase */
    const char *bad = sip__ctl_find(m->reason.p, end, 0);
    if (bad)
      return fail(m, base, bad, "reason phrase (control character)",
                  SIP_ESTARTLINE);
    return 0;
  }

  /* Request-Line: Method SP Request-URI SP SIP-Version, single SPs */
  for (const char *c = p; c < sp1; c++)
    if (!sip__is((unsigned char)*c, SIP_C_TOKEN))
      return fail(m, base, c, "method", SIP_ESTARTLINE);
  const char *u = sp1 + 1;
  const char *sp2 = memchr(u, ' ', (size_t)(end - u));
  if (!sp2 || sp2 == u)
    return fail(m, base, u, "Request-URI", SIP_ESTARTLINE);
  for (const char *c = u; c < sp2; c++)
    if (ruri_bad[(unsigned char)*c])
      return fail(m, base, c, "Request-URI", SIP_ESTARTLINE);
  if (!version_ok(sp2 + 1, end))
    return fail(m, base, sp2 + 1, "SIP version", SIP_EVERSION);
  m->is_request = 1;
  m->method = (sip_str){p, (size_t)(sp1 - p)};
  m->ruri = (sip_str){u, (size_t)(sp2 - u)};
  m->version = (sip_str){sp2 + 1, (size_t)(end - sp2 - 1)};
  return 0;
}

/* After a Request-Line failed to parse: if it starts with a method token
 * and SP, treat the message as a request with that method, so that the
 * headers read after it can still answer it (400), RFC 4475 §3.1.2.7-10. */
static void guess_request(sip_msg *m, const char *p, const char *end) {
  const char *sp1 = memchr(p, ' ', (size_t)(end - p));
  if (!sp1 || sp1 == p || version_ok(p, sp1))
    return;
  for (const char *c = p; c < sp1; c++)
    if (!sip__is((unsigned char)*c, SIP_C_TOKEN))
      return;
  m->is_request = 1;
  m->method = (sip_str){p, (size_t)(sp1 - p)};
}

int sip__msg_grow_headers(sip_msg *m) {
  uint32_t cap = m->hdr_cap * 2;
  sip_hdr *h = sip_arena_alloc(&m->arena, cap * sizeof(*h));
  if (!h)
    return SIP_ENOMEM;
  memcpy(h, m->hdr, m->nhdr * sizeof(*h));
  m->hdr = h;
  m->hdr_cap = cap;
  return 0;
}

/* One header field: name, optional WS, ':', value (LWS trimmed). */
__attribute__((always_inline)) static inline int
index_header(sip_msg *m, const char *base, const char *line, const char *vend,
             const char *rawend) {
  const char *p, *nend = NULL;
  int overread = rawend - line >= 8, id = SIP_H_OTHER;
  /* The usual field is a known header: a name that is exactly a table name
   * (letters in any case) is all token characters, and is what the token
   * scan below would find. First a table name right before a ':', by the
   * first letter; then the name before the first ':' (allows LWS). */
  size_t room = (size_t)(vend - line);
  unsigned c0 = ((unsigned char)line[0] | 0x20u) - 'a';
  if (c0 < 26) {
    for (const hdr_cand *k = hdr_by_first[c0]; k->len; k++) {
      size_t len = k->len;
      if (room > len && line[len] == ':' &&
          (len == 1 || name_eq_lower(line, len, hdr_lower[k->id],
                                     hdr_fold_letters[k->id], overread))) {
        id = k->id;
        nend = line + len;
        break;
      }
    }
  }
  const char *colon = nend ? NULL : memchr(line, ':', room);
  if (colon) {
    const char *ne = colon;
    while (ne > line && (ne[-1] == ' ' || ne[-1] == '\t'))
      ne--;
    id = hdr_lookup(line, (size_t)(ne - line), overread, 1);
    if (id != SIP_H_OTHER)
      nend = ne;
  }
  if (nend) {
    p = colon ? colon : nend;
  } else {
    p = line;
    while (vend - p >= 4 && sip__is((unsigned char)p[0], SIP_C_TOKEN) &&
           sip__is((unsigned char)p[1], SIP_C_TOKEN) &&
           sip__is((unsigned char)p[2], SIP_C_TOKEN) &&
           sip__is((unsigned char)p[3], SIP_C_TOKEN))
      p += 4;
    while (p < vend && sip__is((unsigned char)*p, SIP_C_TOKEN))
      p++;
    nend = p;
    while (p < vend && (*p == ' ' || *p == '\t'))
      p++;
    if (nend == line || p == vend || *p != ':')
      return fail(m, base, nend, "header name", SIP_EHEADER);
    id = hdr_lookup(line, (size_t)(nend - line), overread, 0);
  }
  if (m->nhdr >= m->limits->max_headers)
    return fail(m, base, line, "header count", SIP_ETOOMANY);
  if (m->nhdr == m->hdr_cap && sip__msg_grow_headers(m) < 0)
    return fail(m, base, line, "header index", SIP_ENOMEM);
  sip_hdr *h = &m->hdr[m->nhdr++];
  h->name = (sip_str){line, (size_t)(nend - line)};
  h->value = sip__trim(p + 1, vend);
  h->raw = (sip_str){line, (size_t)(rawend - line)};
  h->id = (uint16_t)id;
  m->present |= (uint64_t)1 << h->id;
  h->state = SIP_HS_ORIG;
  h->parsed = NULL;
  return 0;
}

/* index_header, then the field's bytes are checked for control characters
 * (RFC 3261 §25.1 allows none but HTAB in LWS, and any but CR and LF as a
 * quoted-pair in a quoted-string): *ctl keeps the first one found. The field
 * stays indexed, so that the message can still be answered (400) from its other
 * headers; sip_msg_parse fails with SIP_ECTL once the header section is read.
 */
static inline int index_field(sip_msg *m, const char *base, const char *line,
                              const char *vend, const char *rawend,
                              const char **ctl) {
  int rc = index_header(m, base, line, vend, rawend);
  if (rc == 0 && !*ctl)
    *ctl = sip__ctl_find(line, vend, 1);
  return rc;
}

/* The framing layer must reject a second Content-Length (mcl01): with two
 * lengths there is no way to know where the message ends. */
static int frame_content_length(sip_msg *m, const char *base, size_t *clen) {
  const sip_hdr *found = NULL;
  for (uint32_t i = 0; i < m->nhdr; i++) {
    const sip_hdr *h = &m->hdr[i];
    if (h->id != SIP_H_CONTENT_LENGTH)
      continue;
    if (found)
      return fail(m, base, h->name.p, "Content-Length (repeated)", SIP_ECLEN);
    found = h;
  }
  if (!found)
    return 0;
  uint64_t v;
  int rc = sip__parse_uint(found->value.p, found->value.p + found->value.len,
                           m->limits->max_size, &v);
  if (rc < 0)
    return fail(m, base, found->value.p, "Content-Length",
                rc == SIP_ERANGE ? SIP_ETOOBIG : SIP_ECLEN);
  m->has_clen = 1;
  *clen = (size_t)v;
  return 1;
}

int sip_msg_parse(sip_msg *m, const char *buf, size_t len, int mode) {
  msg_reset(m);
  if (len > (size_t)INT32_MAX)
    return SIP_ETOOBIG;
  const char *base = buf, *end = buf + len;
  const sip_limits *lim = m->limits;
  const char *p = buf;
  /* §7.5: CRLFs before the start line are ignored (and stream keep-alives) */
  while (p < end && (*p == '\r' || *p == '\n'))
    p++;
  if (p == end)
    return mode == SIP_MODE_STREAM
               ? SIP_ENEEDMORE
               : fail(m, base, p, "message", SIP_ESTARTLINE);
  m->buf = p;

  /* Scan lines up to the empty one. A header field spans its first line
   * and every following line that starts with SP/HTAB. */
  const char *line = p;
  const char *field = NULL, *field_vend = NULL;
  int seen_start = 0;
  int start_err = 0; /* the start line failed; the headers are still read */
  const char *ctl = NULL; /* the first control character in a field */
  const char *limit_end = end;
  if ((size_t)(end - p) > lim->max_size)
    limit_end = p + lim->max_size;
  for (;;) {
    const char *nl = memchr(line, '\n', (size_t)(limit_end - line));
    if (!nl) {
      /* The pending field ends here unless this line continues it: index it
       * now, so that a message cut by a limit still shows the headers
       * before the cut (its sender may get an answer: 513). */
      if (field && line < limit_end && *line != ' ' && *line != '\t') {
        int rc = index_field(m, base, field, field_vend, line, &ctl);
        if (rc < 0)
          return rc;
        field = NULL;
      }
      if ((size_t)(limit_end - line) > lim->max_line)
        return fail(m, base, line, "line length", SIP_ELINELEN);
      if (limit_end != end)
        return fail(m, base, p, "message size", SIP_ETOOBIG);
      if (mode == SIP_MODE_STREAM)
        return SIP_ENEEDMORE;
      if (start_err)
        return start_err;
      return fail(m, base, end, "header section (no empty line)", SIP_EHEADER);
    }
    const char *lend = (nl > line && nl[-1] == '\r') ? nl - 1 : nl;
    const char *next = nl + 1;
    int fold = seen_start && (*line == ' ' || *line == '\t') && line < lend;
    if (fold) {
      if (!field)
        return fail(m, base, line, "folded line after the start line",
                    SIP_EHEADER);
      field_vend = lend;
      if ((size_t)(lend - field) > lim->max_line)
        return fail(m, base, field, "line length", SIP_ELINELEN);
      line = next;
      continue;
    }
    if (field) {
      int rc = index_field(m, base, field, field_vend, line, &ctl);
      if (rc < 0)
        return rc;
      field = NULL;
    }
    if ((size_t)(lend - line) > lim->max_line)
      return fail(m, base, line, "line length", SIP_ELINELEN);
    if (!seen_start) {
      int rc = parse_start_line(m, base, line, lend);
      if (rc < 0) {
        start_err = rc;
        guess_request(m, line, lend);
      }
      seen_start = 1;
    } else if (lend == line) {
      m->head_end = (sip_str){line, (size_t)(next - line)};
      p = next;
      break;
    } else {
      field = line;
      field_vend = lend;
    }
    line = next;
  }

  if (start_err)
    return start_err;
  if (ctl)
    return fail(m, base, ctl, "header field", SIP_ECTL);
  size_t clen = 0;
  int has = frame_content_length(m, base, &clen);
  if (has < 0)
    return has;
  size_t head = (size_t)(p - m->buf);
  size_t avail = (size_t)(end - p);
  if (!has)
    clen = mode == SIP_MODE_STREAM ? 0 : avail;
  if (head + clen > lim->max_size)
    return fail(m, base, p, "message size", SIP_ETOOBIG);
  if (avail < clen) {
    if (mode == SIP_MODE_STREAM)
      return SIP_ENEEDMORE;
    return fail(m, base, end, "body", SIP_ESHORTBODY);
  }
  m->body = (sip_str){p, clen};
  m->len = head + clen;
  if (mode == SIP_MODE_STREAM)
    return (int)((m->buf + m->len) - buf);
  return (int)len;
}

size_t sip_msg_strerror(const sip_msg *m, int err, char *out, size_t cap) {
  int n;
  if (err == SIP_ENEEDMORE)
    n = snprintf(out, cap, "PARSE: %s", sip_strerror(err));
  else
    n = snprintf(out, cap, "PARSE: %s at byte %zu: %s",
                 m->err_what ? m->err_what : "message", m->err_off,
                 sip_strerror(err));
  if (n < 0)
    n = 0;
  return cap == 0 ? 0 : ((size_t)n < cap ? (size_t)n : cap - 1);
}

size_t sip_msg_field_strerror(const sip_msg *m, int err, int at,
                              const char *what, char *out, size_t cap) {
  if (m->err_what)
    return sip_msg_strerror(m, err, out, cap);
  const char *p = NULL;
  if (at >= 0 && (uint32_t)at < m->nhdr && m->hdr[at].state == SIP_HS_ORIG)
    p = m->hdr[at].raw.p;
  else if (at == SIP_MSG_AT_RURI && m->is_request)
    p = m->ruri.p;
  int n;
  if (p && p >= m->buf && p < m->buf + m->len)
    n = snprintf(out, cap, "PARSE: %s at byte %zu: %s", what,
                 (size_t)(p - m->buf), sip_strerror(err));
  else
    n = snprintf(out, cap, "PARSE: %s: %s", what, sip_strerror(err));
  if (n < 0)
    n = 0;
  return cap == 0 ? 0 : ((size_t)n < cap ? (size_t)n : cap - 1);
}

/* ---- the header index ---------------------------------------------------- */

static int hdr_matches(const sip_hdr *h, int id, const char *name,
                       size_t nlen) {
  if (h->state == SIP_HS_REMOVED)
    return 0;
  if (id != SIP_H_OTHER)
    return h->id == id;
  return h->id == SIP_H_OTHER && sip_str_ieq(h->name, (sip_str){name, nlen});
}

static int surely_absent(const sip_msg *m, int id) {
  return id > 0 && id < SIP_H__COUNT && !((m->present >> id) & 1u);
}

int sip_msg_find(const sip_msg *m, int id, const char *name, size_t nlen,
                 int from) {
  if (surely_absent(m, id))
    return -1;
  if (from < 0)
    from = 0;
  if (id != SIP_H_OTHER) { /* the usual case: compare ids only */
    const sip_hdr *hdr = m->hdr;
    for (uint32_t i = (uint32_t)from, n = m->nhdr; i < n; i++)
      if (hdr[i].id == id && hdr[i].state != SIP_HS_REMOVED)
        return (int)i;
    return -1;
  }
  for (uint32_t i = (uint32_t)from; i < m->nhdr; i++)
    if (hdr_matches(&m->hdr[i], id, name, nlen))
      return (int)i;
  return -1;
}

int sip_msg_count(const sip_msg *m, int id, const char *name, size_t nlen) {
  int n = 0;
  for (uint32_t i = 0; i < m->nhdr; i++)
    n += hdr_matches(&m->hdr[i], id, name, nlen);
  return n;
}

int sip_msg_find_nth(const sip_msg *m, int id, const char *name, size_t nlen,
                     long n) {
  int i = -1;
  for (long k = 0; k < n; k++)
    if ((i = sip_msg_find(m, id, name, nlen, i + 1)) < 0)
      return -1;
  return n < 1 ? -1 : i;
}

void sip_values_init(sip_values *it, sip_msg *m, int id, const char *name,
                     size_t nlen, int split) {
  *it = (sip_values){.m = m, .id = id, .name = name, .nlen = nlen};
  it->split = split && (sip_hdr_flags(id) & SIP_HF_LIST) != 0;
}

int sip_values_next(sip_values *it, sip_str *out) {
  for (;;) {
    if (it->in_line) {
      sip_str item;
      int rc;
      while ((rc = sip_split_next(&it->rest, &item)) > 0)
        if (item.len) {
          *out = item;
          return 1;
        }
      it->in_line = 0;
      if (rc < 0) { /* unbalanced quote / '<': the rest as one item */
        *out = it->rest;
        return 1;
      }
    }
    int i = sip_msg_find(it->m, it->id, it->name, it->nlen, it->line);
    if (i < 0)
      return 0;
    it->line = i + 1;
    sip_str v;
    int rc = sip_msg_unfolded(it->m, &it->m->hdr[i], &v);
    if (rc < 0)
      return rc;
    if (!v.p)
      v.p = "";
    if (!it->split) {
      *out = v;
      return 1;
    }
    it->rest = v;
    it->in_line = 1;
  }
}

int sip_msg_unfolded(sip_msg *m, const sip_hdr *h, sip_str *out) {
  const char *p = h->value.p, *end = p + h->value.len;
  if (!memchr(p, '\n', h->value.len)) {
    *out = h->value;
    return 0;
  }
  char *d = sip_arena_alloc(&m->arena, h->value.len);
  if (!d)
    return SIP_ENOMEM;
  size_t n = 0;
  while (p < end) {
    const char *after = (*p == '\r' || *p == '\n') ? sip__skip_lws(p, end) : p;
    if (after == p) { /* not a fold: a lone CR is just a byte of the value */
      d[n++] = *p++;
      continue;
    }
    while (n && (d[n - 1] == ' ' || d[n - 1] == '\t'))
      n--;
    d[n++] = ' ';
    p = after;
  }
  *out = (sip_str){d, n};
  return 0;
}

/* ---- lazily parsed fields --------------------------------------------------
 */

static void *cache_get(const sip_msg *m, int id) {
  return (m->cached >> id) & 1u ? m->cache[id] : NULL;
}

static void cache_put(sip_msg *m, int id, void *v) {
  m->cache[id] = v;
  m->cached |= (uint64_t)1 << id;
}

static const sip_hdr *first_hdr(const sip_msg *m, int id) {
  int i = sip_msg_find(m, id, NULL, 0, 0);
  return i < 0 ? NULL : &m->hdr[i];
}

int sip_msg_get_ruri(sip_msg *m, const sip_uri **out) {
  if (!m->is_request)
    return SIP_ENOTFOUND;
  if (!m->ruri_parsed) {
    sip_uri *u = sip_arena_alloc(&m->arena, sizeof(*u));
    if (!u)
      return SIP_ENOMEM;
    int rc = sip_uri_parse(&m->arena, m->ruri.p, m->ruri.len, u);
    if (rc < 0)
      return rc;
    /* §19.1.5: headers are not allowed in a Request-URI (escruri) */
    if ((u->kind == SIP_URI_SIP || u->kind == SIP_URI_SIPS) && u->headers_raw.p)
      return SIP_EURI;
    m->ruri_parsed = u;
  }
  *out = m->ruri_parsed;
  return 0;
}

int sip_msg_get_vias(sip_msg *m, const sip_via **out) {
  if (surely_absent(m, SIP_H_VIA))
    return SIP_ENOTFOUND;
  if (!cache_get(m, SIP_H_VIA)) {
    sip_via *head = NULL, **tail = &head;
    /* parsing does not touch the header index: walk it with locals */
    for (const sip_hdr *h = m->hdr, *hend = h + m->nhdr; h < hend; h++) {
      if (h->id != SIP_H_VIA || h->state == SIP_HS_REMOVED)
        continue;
      int rc = sip_via_list_parse(&m->arena, h->value.p, h->value.len, &tail);
      if (rc < 0)
        return rc;
    }
    if (!head)
      return SIP_ENOTFOUND;
    cache_put(m, SIP_H_VIA, head);
  }
  *out = cache_get(m, SIP_H_VIA);
  return 0;
}

int sip_msg_get_addrs(sip_msg *m, int id, const sip_addr **out) {
  if (id <= 0 || id >= SIP_H__COUNT || !(hdr_flag_tab[id] & SIP_HF_ADDR))
    return SIP_EINVAL;
  if (surely_absent(m, id))
    return SIP_ENOTFOUND;
  if (!cache_get(m, id)) {
    sip_addr *head = NULL, **tail = &head;
    unsigned flags = id == SIP_H_CONTACT ? SIP_ADDR_ALLOW_STAR : 0;
    for (const sip_hdr *h = m->hdr, *hend = h + m->nhdr; h < hend; h++) {
      if (h->id != id || h->state == SIP_HS_REMOVED)
        continue;
      int rc;
      if (hdr_flag_tab[id] & SIP_HF_LIST) {
        rc = sip_addr_list_parse(&m->arena, h->value.p, h->value.len, flags,
                                 &tail);
      } else {
        sip_addr *a = sip_arena_alloc(&m->arena, sizeof(*a));
        if (!a)
          return SIP_ENOMEM;
        rc = sip_addr_parse(&m->arena, h->value.p, h->value.len, flags, a);
        a->next = NULL;
        *tail = a;
        tail = &a->next;
      }
      if (rc < 0)
        return rc;
    }
    if (!head)
      return SIP_ENOTFOUND;
    cache_put(m, id, head);
  }
  *out = cache_get(m, id);
  return 0;
}

int sip_msg_get_addr(sip_msg *m, int id, const sip_addr **out) {
  return sip_msg_get_addrs(m, id, out);
}

int sip_msg_get_cseq(sip_msg *m, const sip_cseq **out) {
  if (!cache_get(m, SIP_H_CSEQ)) {
    const sip_hdr *h = first_hdr(m, SIP_H_CSEQ);
    if (!h)
      return SIP_ENOTFOUND;
    sip_cseq *c = sip_arena_alloc(&m->arena, sizeof(*c));
    if (!c)
      return SIP_ENOMEM;
    int rc = sip_cseq_parse(h->value.p, h->value.len, c);
    if (rc < 0)
      return rc;
    cache_put(m, SIP_H_CSEQ, c);
  }
  *out = cache_get(m, SIP_H_CSEQ);
  return 0;
}

/* Call-ID = word [ "@" word ] */
int sip_msg_get_call_id(sip_msg *m, sip_str *out) {
  const sip_hdr *h = first_hdr(m, SIP_H_CALL_ID);
  if (!h)
    return SIP_ENOTFOUND;
  const char *s = h->value.p, *end = s + h->value.len;
  if (s == end)
    return SIP_EVALUE;
  if (sip__span_tab(s, end, callid_byte) != end)
    return SIP_EVALUE;
  /* at most one '@', with a word on both sides */
  const char *at = memchr(s, '@', h->value.len);
  if (at &&
      (at == s || at + 1 == end || memchr(at + 1, '@', (size_t)(end - at - 1))))
    return SIP_EVALUE;
  *out = h->value;
  return 0;
}

int sip_msg_get_ctype(sip_msg *m, const sip_ctype **out) {
  if (!cache_get(m, SIP_H_CONTENT_TYPE)) {
    const sip_hdr *h = first_hdr(m, SIP_H_CONTENT_TYPE);
    if (!h)
      return SIP_ENOTFOUND;
    sip_ctype *c = sip_arena_alloc(&m->arena, sizeof(*c));
    if (!c)
      return SIP_ENOMEM;
    int rc = sip_ctype_parse(&m->arena, h->value.p, h->value.len, c);
    if (rc < 0)
      return rc;
    cache_put(m, SIP_H_CONTENT_TYPE, c);
  }
  *out = cache_get(m, SIP_H_CONTENT_TYPE);
  return 0;
}

int sip_msg_get_auth(sip_msg *m, int hdr_index, const sip_auth **out) {
  if (hdr_index < 0 || (uint32_t)hdr_index >= m->nhdr)
    return SIP_EINVAL;
  sip_hdr *h = &m->hdr[hdr_index];
  if (!(sip_hdr_flags(h->id) & SIP_HF_AUTH) || h->state == SIP_HS_REMOVED)
    return SIP_EINVAL;
  if (!h->parsed) {
    sip_auth *a = sip_arena_alloc(&m->arena, sizeof(*a));
    if (!a)
      return SIP_ENOMEM;
    int rc = sip_auth_parse(&m->arena, h->value.p, h->value.len, a);
    if (rc < 0)
      return rc;
    h->parsed = a;
  }
  *out = h->parsed;
  return 0;
}

int sip_msg_get_parts(sip_msg *m, const sip_part **out) {
  if (!m->parts) {
    const sip_ctype *ct;
    int rc = sip_msg_get_ctype(m, &ct);
    if (rc < 0)
      return rc;
    if (!sip_str_ieq_cstr(ct->type, "multipart") || !ct->boundary.p)
      return SIP_ENOTFOUND;
    sip_part *head = NULL;
    rc = sip_multipart_parse(&m->arena, m->body.p, m->body.len, ct->boundary,
                             &head);
    if (rc < 0)
      return rc;
    m->parts = head;
  }
  *out = m->parts;
  return 0;
}

static int get_number(sip_msg *m, int id, uint64_t max, uint32_t *out) {
  const sip_hdr *h = first_hdr(m, id);
  if (!h)
    return SIP_ENOTFOUND;
  uint64_t v;
  int rc = sip__parse_uint(h->value.p, h->value.p + h->value.len, max, &v);
  if (rc < 0)
    return rc;
  *out = (uint32_t)v;
  return 0;
}

int sip_msg_get_max_forwards(sip_msg *m, uint32_t *out) {
  return get_number(m, SIP_H_MAX_FORWARDS, 255, out);
}

int sip_msg_get_expires(sip_msg *m, uint32_t *out) {
  return get_number(m, SIP_H_EXPIRES, UINT32_MAX, out);
}
