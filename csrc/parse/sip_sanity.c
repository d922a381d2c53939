/* Request sanity checks (RFC 3261 §8.2, §16.3); see sip_sanity.h for what
 * each check does and the order they run in. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "sip_sanity.h"
#include "sip_scan.h"

static const char *const default_schemes[] = {"sip", "sips", "tel", NULL};

void sip_sanity_config_init(sip_sanity_config *c) {
  c->checks = SIP_SANITY_ALL & ~(unsigned)SIP_SANITY_PROXY_REQUIRE;
  c->schemes = NULL;
  c->supported = NULL;
}

static void result_clear(sip_sanity_result *out) {
  out->status = 0;
  out->check = 0;
  out->reason[0] = '\0';
  out->unsupported[0] = '\0';
}

/* Record a failure; the reason is built from fixed text and canonical header
 * names only, so it is always printable ASCII without CR/LF. */
__attribute__((format(printf, 4, 5))) static int
verdict(sip_sanity_result *out, int status, int check, const char *fmt, ...) {
  va_list ap;
  out->status = status;
  out->check = check;
  va_start(ap, fmt);
  vsnprintf(out->reason, sizeof(out->reason), fmt, ap);
  va_end(ap);
  return status;
}

static int no_memory(sip_sanity_result *out, int check) {
  return verdict(out, 500, check, "Server Internal Error");
}

static const char *hname(int id) { return sip_hdr_canonical(id); }

/* ---- the checks ----------------------------------------------------------
 * Each returns 0 when it passes, else the status it recorded in out. */

static int check_version(const sip_msg *m, sip_sanity_result *out) {
  if (sip_str_ieq_cstr(m->version, "SIP/2.0"))
    return 0;
  if (m->is_request)
    return verdict(out, 505, SIP_SANITY_VERSION, "Version Not Supported");
  return verdict(out, 400, SIP_SANITY_VERSION,
                 "Bad Request (unsupported SIP version)");
}

static int check_required(const sip_msg *m, sip_sanity_result *out) {
  static const int need[] = {SIP_H_VIA, SIP_H_FROM, SIP_H_TO, SIP_H_CALL_ID,
                             SIP_H_CSEQ};
  uint32_t count[SIP_H__COUNT] = {0};
  for (uint32_t i = 0; i < m->nhdr; i++)
    if (m->hdr[i].state != SIP_HS_REMOVED && m->hdr[i].id < SIP_H__COUNT)
      count[m->hdr[i].id]++;

  /* every missing one is named: "missing From, To, Call-ID" */
  char list[64];
  size_t n = 0;
  list[0] = '\0';
  for (size_t k = 0; k < sizeof(need) / sizeof(need[0]); k++) {
    if (count[need[k]])
      continue;
    int w = snprintf(list + n, sizeof(list) - n, "%s%s", n ? ", " : "",
                     hname(need[k]));
    if (w > 0)
      n += (size_t)w < sizeof(list) - n ? (size_t)w : sizeof(list) - n - 1;
  }
  if (n)
    return verdict(out, 400, SIP_SANITY_REQUIRED, "Bad Request (missing %s)",
                   list);

  /* §7.3.1: only list-valued headers may appear on several lines */
  for (uint32_t i = 0; i < m->nhdr; i++) {
    const sip_hdr *h = &m->hdr[i];
    if (h->state != SIP_HS_REMOVED && h->id != SIP_H_OTHER &&
        h->id < SIP_H__COUNT && (sip_hdr_flags(h->id) & SIP_HF_SINGLE) &&
        count[h->id] > 1)
      return verdict(out, 400, SIP_SANITY_REQUIRED,
                     "Bad Request (duplicate %s)", hname(h->id));
  }
  return 0;
}

static int check_cseq(sip_msg *m, int compare_method, sip_sanity_result *out,
                      int check) {
  const sip_cseq *cs;
  int rc = sip_msg_get_cseq(m, &cs);
  if (rc == SIP_ENOTFOUND)
    return check == SIP_SANITY_CSEQ
               ? verdict(out, 400, check, "Bad Request (missing CSeq)")
               : 0;
  if (rc == SIP_ENOMEM)
    return no_memory(out, check);
  if (rc == SIP_ERANGE)
    return verdict(out, 400, check, "Bad Request (CSeq number too large)");
  if (rc < 0)
    return verdict(out, 400, check, "Bad Request (malformed CSeq)");
  /* methods are case-sensitive (§7.1); every request, ACK and CANCEL
   * included, carries its own method in CSeq (§8.1.1.5, §9.1, §17.1.1.3) */
  if (compare_method && (cs->method.len != m->method.len ||
                         memcmp(cs->method.p, m->method.p, m->method.len) != 0))
    return verdict(out, 400, check, "Bad Request (CSeq method does not match)");
  return 0;
}

static int check_clen(const sip_msg *m, sip_sanity_result *out) {
  if (m->body_changed) /* serialization writes the new body's length */
    return 0;
  int i = sip_msg_find(m, SIP_H_CONTENT_LENGTH, NULL, 0, 0);
  if (i < 0)
    return 0;
  const sip_hdr *h = &m->hdr[i];
  uint64_t v;
  if (sip__parse_uint(h->value.p, h->value.p + h->value.len, UINT32_MAX, &v) <
      0)
    return verdict(out, 400, SIP_SANITY_CLEN,
                   "Bad Request (invalid Content-Length)");
  if (v > m->body.len)
    return verdict(out, 400, SIP_SANITY_CLEN,
                   "Bad Request (Content-Length larger than body)");
  if (v < m->body.len)
    return verdict(out, 400, SIP_SANITY_CLEN,
                   "Bad Request (Content-Length smaller than body)");
  return 0;
}

static int check_max_forwards(sip_msg *m, sip_sanity_result *out) {
  uint32_t mf;
  int rc = sip_msg_get_max_forwards(m, &mf);
  if (rc == 0 || rc == SIP_ENOTFOUND)
    return 0;
  if (rc == SIP_ERANGE)
    return verdict(out, 400, SIP_SANITY_MAX_FORWARDS,
                   "Bad Request (Max-Forwards above 255)");
  return verdict(out, 400, SIP_SANITY_MAX_FORWARDS,
                 "Bad Request (malformed Max-Forwards)");
}

/* rc of a field accessor: absent is fine here (REQUIRED rules on that) */
static int field_rc(sip_sanity_result *out, int rc, const char *what) {
  if (rc == 0 || rc == SIP_ENOTFOUND)
    return 0;
  if (rc == SIP_ENOMEM)
    return no_memory(out, SIP_SANITY_FIELDS);
  return verdict(out, 400, SIP_SANITY_FIELDS, "Bad Request (malformed %s)",
                 what);
}

static int check_fields(sip_msg *m, sip_sanity_result *out) {
  static const int addrs[] = {SIP_H_FROM, SIP_H_TO, SIP_H_CONTACT, SIP_H_ROUTE,
                              SIP_H_RECORD_ROUTE};
  int st;
  if (m->is_request) {
    const sip_uri *u;
    if ((st = field_rc(out, sip_msg_get_ruri(m, &u), "Request-URI")))
      return st;
  }
  const sip_via *v;
  if ((st = field_rc(out, sip_msg_get_vias(m, &v), "Via")))
    return st;
  for (size_t k = 0; k < sizeof(addrs) / sizeof(addrs[0]); k++) {
    const sip_addr *a;
    if ((st = field_rc(out, sip_msg_get_addrs(m, addrs[k], &a),
                       hname(addrs[k]))))
      return st;
  }
  sip_str cid;
  if ((st = field_rc(out, sip_msg_get_call_id(m, &cid), "Call-ID")))
    return st;
  return check_cseq(m, 0, out, SIP_SANITY_FIELDS);
}

static int check_scheme(const sip_msg *m, const sip_sanity_config *cfg,
                        sip_sanity_result *out) {
  const char *p = m->ruri.p;
  const char *c = p ? memchr(p, ':', m->ruri.len) : NULL;
  if (!c || c == p || !sip__is((unsigned char)*p, SIP_C_ALPHA))
    return verdict(out, 400, SIP_SANITY_SCHEME,
                   "Bad Request (malformed Request-URI)");
  for (const char *s = p; s < c; s++)
    if (!sip__is((unsigned char)*s, SIP_C_SCHEME))
      return verdict(out, 400, SIP_SANITY_SCHEME,
                     "Bad Request (malformed Request-URI)");
  sip_str scheme = {p, (size_t)(c - p)};
  const char *const *list = cfg->schemes ? cfg->schemes : default_schemes;
  for (; *list; list++)
    if (sip_str_ieq_cstr(scheme, *list))
      return 0;
  return verdict(out, 416, SIP_SANITY_SCHEME, "Unsupported URI Scheme");
}

/* methods are case-sensitive (§7.1): "ack" is an extension method */
static int method_is(const sip_msg *m, const char *name) {
  size_t n = strlen(name);
  return m->method.len == n && memcmp(m->method.p, name, n) == 0;
}

static int is_token(sip_str s) {
  for (size_t i = 0; i < s.len; i++)
    if (!sip__is((unsigned char)s.p[i], SIP_C_TOKEN))
      return 0;
  return s.len > 0;
}

static int is_supported(const sip_sanity_config *cfg, sip_str tag) {
  for (const char *const *t = cfg->supported; t && *t; t++)
    if (sip_str_ieq_cstr(tag, *t))
      return 1;
  return 0;
}

/* Is tag already in the ", "-separated list? Tags are tokens (no ',' or
 * SP), so splitting the list on ", " is exact. */
static int listed(const char *list, sip_str tag) {
  const char *p = list;
  while (*p) {
    const char *e = strchr(p, ',');
    size_t n = e ? (size_t)(e - p) : strlen(p);
    if (sip_str_ieq((sip_str){p, n}, tag))
      return 1;
    if (!e)
      break;
    p = e + 2;
  }
  return 0;
}

/* Require (UAS) or Proxy-Require (proxy): every option tag of every line. */
static int check_option_tags(const sip_msg *m, const sip_sanity_config *cfg,
                             int id, int check, sip_sanity_result *out) {
  char *list = out->unsupported;
  size_t n = 0, cap = sizeof(out->unsupported);
  int missing = 0;
  list[0] = '\0';
  for (uint32_t i = 0; i < m->nhdr; i++) {
    const sip_hdr *h = &m->hdr[i];
    if (h->id != id || h->state == SIP_HS_REMOVED)
      continue;
    sip_str rest = h->value, tag;
    int r;
    while ((r = sip_split_next(&rest, &tag)) > 0) {
      if (tag.len == 0) /* ",," is tolerated */
        continue;
      if (!is_token(tag)) {
        list[0] = '\0';
        return verdict(out, 400, check, "Bad Request (malformed %s)",
                       hname(id));
      }
      if (is_supported(cfg, tag) || listed(list, tag))
        continue;
      missing++;
      size_t sep = n ? 2 : 0;
      if (n + sep + tag.len < cap) { /* room for the NUL too */
        memcpy(list + n, ", ", sep);
        memcpy(list + n + sep, tag.p, tag.len);
        n += sep + tag.len;
        list[n] = '\0';
      }
    }
    if (r < 0) {
      list[0] = '\0';
      return verdict(out, 400, check, "Bad Request (malformed %s)", hname(id));
    }
  }
  if (missing)
    return verdict(out, 420, check, "Bad Extension");
  return 0;
}

int sip_sanity_check(sip_msg *m, const sip_sanity_config *cfg,
                     sip_sanity_result *out) {
  sip_sanity_config defaults;
  if (!cfg) {
    sip_sanity_config_init(&defaults);
    cfg = &defaults;
  }
  result_clear(out);
  unsigned on = cfg->checks;
  int req = m->is_request;
  int st;
  if ((on & SIP_SANITY_VERSION) && (st = check_version(m, out)))
    return st;
  if ((on & SIP_SANITY_REQUIRED) && (st = check_required(m, out)))
    return st;
  if ((on & SIP_SANITY_CSEQ) && (st = check_cseq(m, req, out, SIP_SANITY_CSEQ)))
    return st;
  if ((on & SIP_SANITY_CLEN) && (st = check_clen(m, out)))
    return st;
  if (req && (on & SIP_SANITY_MAX_FORWARDS) &&
      (st = check_max_forwards(m, out)))
    return st;
  if ((on & SIP_SANITY_FIELDS) && (st = check_fields(m, out)))
    return st;
  if (!req)
    return 0;
  if ((on & SIP_SANITY_SCHEME) && (st = check_scheme(m, cfg, out)))
    return st;
  /* §8.2.2.3: Require and Proxy-Require are ignored in ACK and CANCEL */
  if (method_is(m, "ACK") || method_is(m, "CANCEL"))
    return 0;
  if ((on & SIP_SANITY_REQUIRE) &&
      (st = check_option_tags(m, cfg, SIP_H_REQUIRE, SIP_SANITY_REQUIRE, out)))
    return st;
  if ((on & SIP_SANITY_PROXY_REQUIRE) &&
      (st = check_option_tags(m, cfg, SIP_H_PROXY_REQUIRE,
                              SIP_SANITY_PROXY_REQUIRE, out)))
    return st;
  return 0;
}

int sip_sanity_parse_error(int err, sip_sanity_result *out) {
  result_clear(out);
  switch (err) {
  case SIP_ESHORTBODY:
    return verdict(out, 400, SIP_SANITY_CLEN,
                   "Bad Request (Content-Length larger than body)");
  case SIP_ECLEN:
    return verdict(out, 400, SIP_SANITY_CLEN,
                   "Bad Request (invalid Content-Length)");
  case SIP_ETOOBIG:
  case SIP_ETOOMANY:
  case SIP_ELINELEN:
    return verdict(out, 513, SIP_SANITY_FIELDS, "Message Too Large");
  case SIP_ENOMEM:
    return no_memory(out, SIP_SANITY_FIELDS);
  case SIP_EVERSION:
    return verdict(out, 400, SIP_SANITY_VERSION,
                   "Bad Request (malformed SIP version)");
  default:
    if (err >= 0)
      return 0;
    if (err > SIP__EBASE && err < SIP__ELIMIT) /* sip_strerror: ASCII text */
      return verdict(out, 400, SIP_SANITY_FIELDS, "Bad Request (%s)",
                     sip_strerror(err));
    return verdict(out, 400, SIP_SANITY_FIELDS, "Bad Request");
  }
}
