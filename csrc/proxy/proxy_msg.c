/* The proxy's message functions (sip_proxy.h): no libuv state, no Lua. */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sip_proxy.h"
#include "sip_scan.h"

/* ---- myself ------------------------------------------------------------- */

static int host_eq(sip_str a, const char *b) {
  size_t n = strlen(b);
  if (a.len != n)
    return 0;
  for (size_t i = 0; i < n; i++) {
    char x = a.p[i], y = b[i];
    if (x >= 'A' && x <= 'Z')
      x = (char)(x | 0x20);
    if (y >= 'A' && y <= 'Z')
      y = (char)(y | 0x20);
    if (x != y)
      return 0;
  }
  return 1;
}

static int alias_match(const sip_proxy_self *self, sip_str host) {
  for (int i = 0; i < self->nalias; i++)
    if (host_eq(host, self->alias[i]))
      return 1;
  return 0;
}

int sip_proxy_is_self(const sip_proxy_self *self, const sip_uri *uri) {
  if (!uri || (uri->kind != SIP_URI_SIP && uri->kind != SIP_URI_SIPS) ||
      !uri->host.p)
    return 0;
  if (alias_match(self, uri->host))
    return 1;
  int port = uri->has_port
                 ? uri->port
                 : (uri->kind == SIP_URI_SIPS ? SIP_TP_PORT_TLS : SIP_TP_PORT);
  for (int i = 0; i < self->naddr; i++)
    if (self->addr[i].port == port && host_eq(uri->host, self->addr[i].host))
      return 1;
  return 0;
}

int sip_proxy_via_is_self(const sip_proxy_self *self, const sip_via *v) {
  int t = sip_tp_transport_from(v->transport);
  int port =
      v->has_port ? v->port : (t == SIP_TP_TLS ? SIP_TP_PORT_TLS : SIP_TP_PORT);
  for (int i = 0; i < self->naddr; i++)
    if (self->addr[i].port == port && host_eq(v->host, self->addr[i].host))
      return 1;
  return 0;
}

/* ---- loop hash ---------------------------------------------------------- */

typedef struct fnv {
  uint64_t h;
} fnv;

static void fnv_add(fnv *f, const char *p, size_t n) {
  uint64_t h = f->h;
  for (size_t i = 0; i < n; i++) {
    h ^= (unsigned char)p[i];
    h *= 0x100000001b3ULL;
  }
  /* a separator, so that ("ab","c") and ("a","bc") differ */
  h ^= 0xff;
  h *= 0x100000001b3ULL;
  f->h = h;
}

static void fnv_str(fnv *f, sip_str s) { fnv_add(f, s.p ? s.p : "", s.len); }

static void hex16(uint64_t h, char out[17]) {
  static const char d[] = "0123456789abcdef";
  for (int i = 15; i >= 0; i--) {
    out[i] = d[h & 15];
    h >>= 4;
  }
  out[16] = 0;
}

/* The Request-URI as received: the start line's middle word. */
static sip_str original_ruri(const sip_msg *m) {
  sip_str sl = m->start_line;
  const char *p = memchr(sl.p, ' ', sl.len);
  if (!p)
    return m->ruri;
  const char *end = sl.p + sl.len;
  p++;
  const char *q = end;
  while (q > p && q[-1] != ' ')
    q--;
  if (q <= p)
    return m->ruri;
  return (sip_str){p, (size_t)(q - 1 - p)};
}

static void hash_headers(fnv *f, const sip_msg *m, int id) {
  for (int i = sip_msg_find(m, id, NULL, 0, 0); i >= 0;
       i = sip_msg_find(m, id, NULL, 0, i + 1))
    fnv_str(f, m->hdr[i].value);
}

int sip_proxy_loop_hash(sip_msg *m, const sip_via *via, char out[17]) {
  const sip_addr *from, *to;
  const sip_cseq *cs;
  sip_str cid;
  int rc;
  if ((rc = sip_msg_get_addr(m, SIP_H_FROM, &from)) < 0 ||
      (rc = sip_msg_get_addr(m, SIP_H_TO, &to)) < 0 ||
      (rc = sip_msg_get_cseq(m, &cs)) < 0 ||
      (rc = sip_msg_get_call_id(m, &cid)) < 0)
    return rc;
  fnv f = {0xcbf29ce484222325ULL};
  fnv_str(&f, original_ruri(m));
  fnv_str(&f, from->tag);
  fnv_str(&f, to->tag);
  fnv_str(&f, cid);
  char num[24];
  fnv_add(&f, num, sip__fmt_uint(num, cs->num));
  if (via) {
    fnv_str(&f, via->branch);
    fnv_str(&f, via->host);
    fnv_add(&f, num, sip__fmt_uint(num, via->has_port ? via->port : 0));
  }
  hash_headers(&f, m, SIP_H_PROXY_REQUIRE);
  hash_headers(&f, m, SIP_H_PROXY_AUTHORIZATION);
  hex16(f.h, out);
  return 0;
}

int sip_proxy_detect_loop(sip_msg *m, const sip_proxy_self *self) {
  const sip_via *v;
  if (sip_msg_get_vias(m, &v) < 0)
    return 0;
  char h[17];
  int have = 0;
  for (; v && v->next; v = v->next) {
    if (v->branch.len < 7 + 16 + 1 || v->branch.p[7 + 16] != '.' ||
        !sip_proxy_via_is_self(self, v))
      continue;
    /* the hash this proxy computed when it got the request with v->next on
     * top; recomputed only when the Via below changes (rarely: spirals) */
    (void)have;
    if (sip_proxy_loop_hash(m, v->next, h) < 0)
      return 0;
    have = 1;
    if (memcmp(v->branch.p + 7, h, 16) == 0)
      return 1;
  }
  return 0;
}

/* ---- list header edits ----------------------------------------------------
 */

/* The items of header line idx (folds unfolded). */
static int line_items(sip_msg *m, int idx, sip_str *items, int max) {
  sip_str v;
  int rc = sip_msg_unfolded(m, &m->hdr[idx], &v);
  if (rc < 0)
    return rc;
  sip_str rest = v, it;
  int n = 0;
  while ((rc = sip_split_next(&rest, &it)) == 1) {
    if (it.len == 0)
      continue;
    if (n == max)
      return SIP_ERANGE;
    items[n++] = it;
  }
  return rc < 0 ? rc : n;
}

/* Rewrite line idx with items [from, to) (removing it when empty). */
static int line_keep(sip_msg *m, int idx, const sip_str *items, int from,
                     int to) {
  if (from >= to)
    return sip_msg_remove_header(m, idx);
  size_t len = 0;
  for (int i = from; i < to; i++)
    len += items[i].len + 2;
  char stackbuf[2048];
  stackbuf[0] = 0;
  char *b = len <= sizeof stackbuf ? stackbuf : malloc(len);
  if (!b)
    return SIP_ENOMEM;
  size_t o = 0;
  for (int i = from; i < to; i++) {
    if (i > from) {
      b[o++] = ',';
      b[o++] = ' ';
    }
    memcpy(b + o, items[i].p, items[i].len);
    o += items[i].len;
  }
  int rc = sip_msg_replace_value(m, idx, b, o);
  if (b != stackbuf)
    free(b);
  return rc;
}

#define MAX_ITEMS 64

int sip_proxy_pop_first(sip_msg *m, int id) {
  int idx = sip_msg_find(m, id, NULL, 0, 0);
  if (idx < 0)
    return SIP_ENOTFOUND;
  sip_str items[MAX_ITEMS];
  int n = line_items(m, idx, items, MAX_ITEMS);
  if (n < 0)
    return n;
  if (n <= 1)
    return sip_msg_remove_header(m, idx);
  return line_keep(m, idx, items, 1, n);
}

/* Remove the last value of the last `id` line; *last gets a copy of it
 * (in the arena). */
static int pop_last(sip_msg *m, int id, sip_str *last) {
  int idx = -1;
  for (int i = sip_msg_find(m, id, NULL, 0, 0); i >= 0;
       i = sip_msg_find(m, id, NULL, 0, i + 1))
    idx = i;
  if (idx < 0)
    return SIP_ENOTFOUND;
  sip_str items[MAX_ITEMS];
  int n = line_items(m, idx, items, MAX_ITEMS);
  if (n < 0)
    return n;
  if (n == 0)
    return SIP_ENOTFOUND;
  char *copy = sip_arena_strndup(&m->arena, items[n - 1].p, items[n - 1].len);
  if (!copy)
    return SIP_ENOMEM;
  *last = (sip_str){copy, items[n - 1].len};
  return line_keep(m, idx, items, 0, n - 1);
}

/* The URI of a name-addr / addr-spec value (parsed into the arena). */
static int value_uri(sip_msg *m, sip_str v, sip_uri *uri) {
  sip_addr a;
  int rc = sip_addr_parse(&m->arena, v.p, v.len, 0, &a);
  if (rc < 0)
    return rc;
  *uri = a.uri;
  return 0;
}

int sip_proxy_route_pre(sip_msg *m, const sip_proxy_self *self) {
  const sip_addr *r;
  int rc = sip_msg_get_addrs(m, SIP_H_ROUTE, &r);
  if (rc == SIP_ENOTFOUND)
    return 0;
  if (rc < 0)
    return rc;
  int out = SIP_PROXY_ROUTE_PRESENT;
  const sip_uri *ruri;
  if (sip_msg_get_ruri(m, &ruri) == 0 && !ruri->user.p && ruri->lr &&
      sip_proxy_is_self(self, ruri)) {
    /* a strict router sent our Record-Route URI as the Request-URI */
    sip_str last;
    if ((rc = pop_last(m, SIP_H_ROUTE, &last)) < 0)
      return rc;
    sip_uri u;
    if ((rc = value_uri(m, last, &u)) < 0)
      return rc;
    if ((rc = sip_msg_set_ruri(m, u.raw.p, u.raw.len)) < 0)
      return rc;
    out |= SIP_PROXY_ROUTE_STRICT;
  }
  for (int i = 0; i < 2; i++) {
    if (sip_msg_get_addrs(m, SIP_H_ROUTE, &r) < 0 ||
        !sip_proxy_is_self(self, &r->uri))
      break;
    if ((rc = sip_proxy_pop_first(m, SIP_H_ROUTE)) < 0)
      return rc;
    out |= SIP_PROXY_ROUTE_OWN;
  }
  if (sip_msg_get_addrs(m, SIP_H_ROUTE, &r) == 0)
    out |= SIP_PROXY_ROUTE_MORE;
  return out;
}

int sip_proxy_route_strict_next(sip_msg *m) {
  const sip_addr *r;
  if (sip_msg_get_addrs(m, SIP_H_ROUTE, &r) < 0 || r->uri.lr)
    return 0;
  /* copy what the edits below invalidate */
  char *first = sip_arena_strndup(&m->arena, r->uri.raw.p, r->uri.raw.len);
  size_t flen = r->uri.raw.len;
  sip_str cur = m->ruri;
  size_t vlen = cur.len + 2;
  char *val = sip_arena_alloc(&m->arena, vlen + 1);
  if (!first || !val)
    return SIP_ENOMEM;
  val[0] = '<';
  memcpy(val + 1, cur.p, cur.len);
  val[vlen - 1] = '>';
  int rc = sip_proxy_pop_first(m, SIP_H_ROUTE);
  if (rc < 0)
    return rc;
  rc = sip_msg_insert_header(m, -1, SIP_H_ROUTE, NULL, 0, val, vlen);
  if (rc < 0)
    return rc;
  rc = sip_msg_set_ruri(m, first, flen);
  return rc < 0 ? rc : 1;
}

int sip_proxy_decrement_mf(sip_msg *m) {
  uint32_t mf;
  int rc = sip_msg_get_max_forwards(m, &mf);
  if (rc == SIP_ENOTFOUND)
    return sip_msg_insert_header(m, -1, SIP_H_MAX_FORWARDS, NULL, 0, "70", 2);
  if (rc < 0)
    return rc;
  if (mf == 0)
    return SIP_ERANGE;
  int idx = sip_msg_find(m, SIP_H_MAX_FORWARDS, NULL, 0, 0);
  char v[24];
  rc = sip_msg_replace_value(m, idx, v, sip__fmt_uint(v, mf - 1));
  return rc;
}

/* ---- forwarded request ----------------------------------------------------
 */

/* Start line of m as sip_msg_write writes it, and where the header lines
 * begin in that output. */
static sip_str cur_start_line(const sip_msg *m) {
  return m->new_start_line.p ? m->new_start_line : m->start_line;
}

size_t sip_proxy_request_size(const sip_msg *m, const sip_proxy_fwd *f) {
  return sip_msg_size(m) + m->method.len + 1 +
         (f->ruri.p ? f->ruri.len : m->ruri.len) + 1 + m->version.len + 2 + 5 +
         f->via.len + 2 + f->extra.len;
}

static char *put(char *o, const char *p, size_t n) {
  if (n)
    memcpy(o, p, n);
  return o + n;
}

/* Length of the Via lines at the start of a header section (folds kept). */
static size_t leading_vias(const char *h, const char *end) {
  const char *p = h;
  while (p < end) {
    size_t left = (size_t)(end - p);
    int via = (left > 4 && (p[0] == 'V' || p[0] == 'v') &&
               (p[1] == 'i' || p[1] == 'I') && (p[2] == 'a' || p[2] == 'A') &&
               (p[3] == ':' || p[3] == ' ' || p[3] == '\t')) ||
              (left > 2 && (p[0] == 'v' || p[0] == 'V') &&
               (p[1] == ':' || p[1] == ' ' || p[1] == '\t'));
    if (!via)
      break;
    /* to the end of the field, continuation lines included */
    for (;;) {
      const char *nl = memchr(p, '\n', (size_t)(end - p));
      if (!nl)
        return (size_t)(end - h);
      p = nl + 1;
      if (p >= end || (*p != ' ' && *p != '\t'))
        break;
    }
  }
  return (size_t)(p - h);
}

int sip_proxy_write_request(const sip_msg *m, const sip_proxy_fwd *f, char *buf,
                            size_t cap) {
  size_t body = sip_msg_size(m);
  sip_str ruri = f->ruri.p ? f->ruri : m->ruri;
  size_t pre = m->method.len + 1 + ruri.len + 1 + m->version.len + 2 + 5 +
               f->via.len + 2;
  size_t e = f->extra.len;
  size_t sl = cur_start_line(m).len + 2;
  if (body < sl || cap < pre + e + body - sl)
    return SIP_EINVAL;
  /* the message goes after the prefix and the extra lines, minus its own
   * start line; then its leading Via lines move up and the extra lines go
   * after them (Via rows stay together, Record-Route before the others) */
  char *h = buf + pre + e;
  int rc = sip_msg_write(m, h - sl, cap - (pre + e - sl));
  if (rc < 0)
    return rc;
  size_t total = pre + e + (size_t)rc - sl;
  char *o = buf;
  o = put(o, m->method.p, m->method.len);
  *o++ = ' ';
  o = put(o, ruri.p, ruri.len);
  *o++ = ' ';
  o = put(o, m->version.p, m->version.len);
  o = put(o, "\r\nVia: ", 7);
  o = put(o, f->via.p, f->via.len);
  o = put(o, "\r\n", 2);
  if (e) {
    size_t v = leading_vias(h, buf + total);
    if (v)
      memmove(buf + pre, h, v);
    memcpy(buf + pre + v, f->extra.p, e);
  }
  return (int)total;
}

int sip_proxy_write_cancel(sip_msg *req, sip_str ruri, sip_str via,
                           sip_str route, char *buf, size_t cap) {
  const sip_cseq *cs;
  sip_str cid;
  int rc;
  if ((rc = sip_msg_get_cseq(req, &cs)) < 0 ||
      (rc = sip_msg_get_call_id(req, &cid)) < 0)
    return rc;
  int fi = sip_msg_find(req, SIP_H_FROM, NULL, 0, 0);
  int ti = sip_msg_find(req, SIP_H_TO, NULL, 0, 0);
  if (fi < 0 || ti < 0)
    return SIP_ENOTFOUND;
  sip_str from = req->hdr[fi].value, to = req->hdr[ti].value;
  int n = snprintf(buf, cap,
                   "CANCEL %.*s SIP/2.0\r\nVia: %.*s\r\n%.*sFrom: %.*s\r\n"
                   "To: %.*s\r\nCall-ID: %.*s\r\nCSeq: %u CANCEL\r\n"
                   "Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
                   (int)ruri.len, ruri.p, (int)via.len, via.p, (int)route.len,
                   route.p ? route.p : "", (int)from.len, from.p, (int)to.len,
                   to.p, (int)cid.len, cid.p, (unsigned)cs->num);
  if (n < 0 || (size_t)n >= cap)
    return SIP_EINVAL;
  return n;
}

/* ---- responses ------------------------------------------------------------
 */

static int preferred(int s) {
  return s == 401 || s == 407 || s == 415 || s == 420 || s == 484;
}

int sip_proxy_failover_status(int status, int made_up) {
  return status == 503 || (made_up && status == 408);
}

int sip_proxy_best(const uint16_t *status, int n) {
  int best = -1;
  for (int i = 0; i < n; i++) {
    int s = status[i];
    if (s < 200)
      continue;
    if (best < 0) {
      best = i;
      continue;
    }
    int b = status[best];
    if (b < 300)
      continue; /* the first 2xx stays */
    if (s < 300) {
      best = i;
      continue;
    }
    if (b >= 600)
      continue; /* the first 6xx stays */
    if (s >= 600 || s / 100 < b / 100 ||
        (s / 100 == b / 100 && s / 100 == 4 && preferred(s) && !preferred(b)))
      best = i;
  }
  return best;
}

int sip_proxy_response_edit(sip_msg *res, sip_str extra) {
  int rc = sip_proxy_pop_first(res, SIP_H_VIA);
  if (rc < 0)
    return rc;
  if (res->status == 503 &&
      (rc = sip_msg_set_status(res, 500, "Server Internal Error", 21)) < 0)
    return rc;
  /* extra: "Name: value\r\n" lines */
  const char *p = extra.p, *end = extra.p + extra.len;
  while (p && p < end) {
    const char *eol = memchr(p, '\n', (size_t)(end - p));
    const char *le = eol ? eol : end;
    const char *colon = memchr(p, ':', (size_t)(le - p));
    if (colon) {
      const char *v = colon + 1;
      while (v < le && (*v == ' ' || *v == '\t'))
        v++;
      const char *ve = le;
      while (ve > v && (ve[-1] == '\r' || ve[-1] == ' '))
        ve--;
      rc = sip_msg_insert_header(res, -1, SIP_H_OTHER, p, (size_t)(colon - p),
                                 v, (size_t)(ve - v));
      if (rc < 0)
        return rc;
    }
    p = eol ? eol + 1 : end;
  }
  return 0;
}

int sip_proxy_unsupported(sip_msg *m, const char *const *supported, char *out,
                          size_t cap) {
  size_t o = 0;
  int found = 0;
  if (cap)
    out[0] = 0;
  for (int i = sip_msg_find(m, SIP_H_PROXY_REQUIRE, NULL, 0, 0); i >= 0;
       i = sip_msg_find(m, SIP_H_PROXY_REQUIRE, NULL, 0, i + 1)) {
    sip_str rest = m->hdr[i].value, it;
    while (sip_split_next(&rest, &it) == 1) {
      if (!it.len)
        continue;
      int ok = 0;
      for (int k = 0; supported && supported[k]; k++)
        if (host_eq(it, supported[k]))
          ok = 1;
      if (ok)
        continue;
      found = 1;
      if (o + it.len + 3 < cap) {
        if (o) {
          out[o++] = ',';
          out[o++] = ' ';
        }
        memcpy(out + o, it.p, it.len);
        o += it.len;
        out[o] = 0;
      }
    }
  }
  return found;
}
