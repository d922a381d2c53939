/* The registrar's flow (RFC 3261 §10.3): see sip_reg_plan.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sip_binding.h"
#include "sip_error.h"
#include "sip_reg_plan.h"

#define MAX_U32 4294967295LL

static void answer(sip_reg_answer *ans, int status, const char *reason) {
  ans->status = status;
  snprintf(ans->reason, sizeof ans->reason, "%s", reason);
  ans->hname = NULL;
  ans->hvalue[0] = '\0';
}

/* Control characters of a reason become spaces (it goes on a status
 * line). */
static void clean_reason(sip_reg_answer *ans) {
  for (char *p = ans->reason; *p; p++)
    if ((unsigned char)*p < 0x20 || *p == 0x7f)
      *p = ' ';
}

/* The parser's text for a field that did not parse: "PARSE: <what> at byte
 * N: <why>" (N: the header line's offset), or the parser's own text when it
 * recorded a place; as the message binding reports it (msg:get). */
static void field_text(sip_msg *m, int rc, int id, const char *what, char *out,
                       size_t cap) {
  if (m->err_what) {
    sip_msg_strerror(m, rc, out, cap);
    return;
  }
  int i = id == SIP_H_OTHER ? -1 : sip_msg_find(m, id, NULL, 0, 0);
  const char *at = NULL;
  if (i >= 0 && m->hdr[i].state == SIP_HS_ORIG)
    at = m->hdr[i].raw.p;
  else if (id == SIP_H_OTHER && m->is_request)
    at = m->ruri.p;
  if (at && at >= m->buf && at < m->buf + m->len)
    snprintf(out, cap, "PARSE: %s at byte %lld: %s", what,
             (long long)(at - m->buf), sip_strerror(rc));
  else
    snprintf(out, cap, "PARSE: %s: %s", what, sip_strerror(rc));
}

/* 400 "Bad Request (missing X)" / "Bad Request (malformed X: why)" */
static int field_error(sip_msg *m, int rc, int id, const char *what,
                       sip_reg_answer *ans) {
  answer(ans, 400, "");
  if (rc == SIP_ENOTFOUND) {
    snprintf(ans->reason, sizeof ans->reason, "Bad Request (missing %s)", what);
  } else {
    char why[192];
    field_text(m, rc, id, what, why, sizeof why);
    snprintf(ans->reason, sizeof ans->reason, "Bad Request (malformed %s: %s)",
             what, why);
  }
  clean_reason(ans);
  return 1;
}

/* 1 / 0 served, or the callback's negative code */
static int serves(const sip_reg_conf *c, sip_str host) {
  return c->serves ? c->serves(c->ud, host) : 1;
}

/* Calls fn(ud, item) for each non-empty item of every header line of id,
 * split at top-level commas (msg:headers(name)); stops at a non-zero
 * return, which it returns. An unbalanced line's rest is one item. */
static int each_item(sip_msg *m, int id, int (*fn)(void *, sip_str), void *ud) {
  for (int i = sip_msg_find(m, id, NULL, 0, 0); i >= 0;
       i = sip_msg_find(m, id, NULL, 0, i + 1)) {
    sip_str v, item;
    if (sip_msg_unfolded(m, &m->hdr[i], &v) < 0)
      return SIP_ENOMEM;
    if (!v.p)
      v.p = "";
    sip_str rest = v;
    int rc, r;
    while ((rc = sip_split_next(&rest, &item)) > 0)
      if (item.len > 0 && (r = fn(ud, item)) != 0)
        return r;
    if (rc < 0 && (r = fn(ud, rest)) != 0)
      return r;
  }
  return 0;
}

/* ---- step A ------------------------------------------------------------ */

static const char *const own_tags[] = {"path", "outbound", "gruu"};

typedef struct require_scan {
  const sip_reg_conf *c;
  sip_obuf out; /* the Unsupported value */
  int n;
} require_scan;

static int require_item(void *ud, sip_str tag) {
  require_scan *s = ud;
  for (size_t i = 0; i < sizeof own_tags / sizeof *own_tags; i++)
    if (sip_str_ieq_cstr(tag, own_tags[i]))
      return 0;
  for (size_t i = 0; i < s->c->nsupported; i++)
    if (sip_str_ieq(tag, s->c->supported[i]))
      return 0;
  if (s->n++)
    sip_obuf_puts(&s->out, ", ");
  sip_obuf_put(&s->out, tag.p, tag.len);
  return 0;
}

int sip_reg_check(sip_msg *m, const sip_reg_conf *c, sip_obuf *text,
                  sip_reg_req *out, sip_reg_answer *ans) {
  memset(out, 0, sizeof *out);
  ans->status = 0;
  /* 1. The Request-URI: a SIP or SIPS URI of a served domain. */
  const sip_uri *ru;
  int rc = sip_msg_get_ruri(m, &ru);
  if (rc < 0)
    return field_error(m, rc, SIP_H_OTHER, "Request-URI", ans);
  if (ru->kind != SIP_URI_SIP && ru->kind != SIP_URI_SIPS) {
    answer(ans, 416, "Unsupported URI Scheme");
    return 1;
  }
  if ((rc = serves(c, ru->host)) <= 0) {
    if (rc < 0)
      return rc;
    answer(ans, 404, "Domain Not Served Here");
    return 1;
  }

  /* 2. Require (§8.2.2.3): 420 naming every tag not implemented. */
  require_scan rs = {c, {0}, 0};
  answer(ans, 420, "Bad Extension");
  sip_obuf_init(&rs.out, ans->hvalue, sizeof ans->hvalue - 1);
  if ((rc = each_item(m, SIP_H_REQUIRE, require_item, &rs)) < 0)
    return rc;
  if (rs.n > 0) {
    ans->hvalue[rs.out.len] = '\0';
    ans->hname = "Unsupported";
    return 1;
  }
  ans->status = 0;

  /* The other fields the flow reads, in this order. */
  const sip_cseq *cs;
  const sip_via *v = NULL;
  const sip_addr *to, *paths = NULL;
  if ((rc = sip_msg_get_call_id(m, &out->call_id)) < 0)
    return field_error(m, rc, SIP_H_CALL_ID, "Call-ID", ans);
  if ((rc = sip_msg_get_cseq(m, &cs)) < 0)
    return field_error(m, rc, SIP_H_CSEQ, "CSeq", ans);
  out->cseq = cs->num;
  if ((rc = sip_msg_get_vias(m, &v)) < 0 && rc != SIP_ENOTFOUND)
    return field_error(m, rc, SIP_H_VIA, "Via", ans);
  for (; rc >= 0 && v; v = v->next)
    out->nvias++;
  if ((rc = sip_msg_get_addr(m, SIP_H_TO, &to)) < 0)
    return field_error(m, rc, SIP_H_TO, "To", ans);
  if ((rc = sip_msg_get_addrs(m, SIP_H_PATH, &paths)) < 0 &&
      rc != SIP_ENOTFOUND)
    return field_error(m, rc, SIP_H_PATH, "Path", ans);
  out->paths = rc < 0 ? NULL : paths;

  /* 5. The address-of-record, of a served domain. */
  size_t at = text->len;
  if (sip_reg_aor(&to->uri, text) < 0) {
    answer(ans, 400, "Bad Request (To must be a SIP or SIPS URI)");
    return 1;
  }
  if (text->overflow)
    return SIP_ENOMEM;
  out->aor = (sip_str){text->p + at, text->len - at};
  if ((rc = serves(c, to->uri.host)) <= 0) {
    if (rc < 0)
      return rc;
    answer(ans, 404, "Not Found (domain of To not served here)");
    return 1;
  }
  return 0;
}

/* ---- step B ------------------------------------------------------------ */

size_t sip_reg_contacts_max(const sip_msg *m) {
  size_t n = 0;
  for (int i = sip_msg_find(m, SIP_H_CONTACT, NULL, 0, 0); i >= 0;
       i = sip_msg_find(m, SIP_H_CONTACT, NULL, 0, i + 1)) {
    sip_str v = m->hdr[i].value;
    n++;
    for (size_t k = 0; k < v.len; k++)
      n += v.p[k] == ',';
  }
  return n;
}

static int is_space(char ch) {
  return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n' || ch == '\v' ||
         ch == '\f';
}

static int is_digit(char ch) { return ch >= '0' && ch <= '9'; }

/* Digits as a number, 2^32-1 for anything larger. */
static int64_t clamp_digits(const char *p, size_t n) {
  int64_t v = 0;
  for (size_t k = 0; k < n; k++) {
    v = v * 10 + (p[k] - '0');
    if (v > MAX_U32)
      return MAX_U32;
  }
  return v;
}

/* The Expires header: 1 and *out, 0 when absent, -1 when it is not digits
 * (blanks around them allowed). */
static int header_expires(sip_msg *m, int64_t *out) {
  int i = sip_msg_find(m, SIP_H_EXPIRES, NULL, 0, 0);
  if (i < 0)
    return 0;
  sip_str v;
  if (sip_msg_unfolded(m, &m->hdr[i], &v) < 0)
    return -1;
  size_t a = 0, b = v.len;
  while (a < b && is_space(v.p[a]))
    a++;
  while (b > a && is_space(v.p[b - 1]))
    b--;
  if (a == b)
    return -1;
  for (size_t k = a; k < b; k++)
    if (!is_digit(v.p[k]))
      return -1;
  *out = clamp_digits(v.p + a, b - a);
  return 1;
}

/* "expires" (any case) at p, then blanks, '=' and blanks: the offset of
 * the digits after it, or 0. */
static size_t expires_digits(const char *p, size_t n) {
  static const char name[] = "expires";
  size_t k = 0;
  for (; k < 7; k++)
    if (k >= n || (p[k] | 0x20) != name[k])
      return 0;
  while (k < n && is_space(p[k]))
    k++;
  if (k >= n || p[k] != '=')
    return 0;
  k++;
  while (k < n && is_space(p[k]))
    k++;
  return k < n && is_digit(p[k]) ? k : 0;
}

/* The Contact values re-read with every ";expires=" of more than 2^32-1
 * written as 2^32-1 (the parser refuses the whole field otherwise). */
static int contacts_clamped(sip_msg *m, sip_arena *a, const sip_addr **out) {
  sip_addr *head = NULL, **tail = &head;
  for (int i = sip_msg_find(m, SIP_H_CONTACT, NULL, 0, 0); i >= 0;
       i = sip_msg_find(m, SIP_H_CONTACT, NULL, 0, i + 1)) {
    sip_str v;
    if (sip_msg_unfolded(m, &m->hdr[i], &v) < 0)
      return SIP_ENOMEM;
    /* at most as long as the value: digit runs only get shorter */
    char *w = sip_arena_alloc(a, v.len + 1);
    if (!w)
      return SIP_ENOMEM;
    size_t n = 0;
    for (size_t k = 0; k < v.len;) {
      w[n++] = v.p[k];
      if (v.p[k++] != ';')
        continue;
      size_t s = k;
      while (s < v.len && is_space(v.p[s]))
        s++;
      size_t d = expires_digits(v.p + s, v.len - s);
      if (!d)
        continue;
      memcpy(w + n, v.p + k, s + d - k);
      n += s + d - k;
      k = s + d;
      size_t e = k;
      while (e < v.len && is_digit(v.p[e]))
        e++;
      int64_t val = clamp_digits(v.p + k, e - k);
      char num[16];
      int len = snprintf(num, sizeof num, "%lld", (long long)val);
      if ((size_t)len < e - k) {
        memcpy(w + n, num, (size_t)len);
        n += (size_t)len;
      } else {
        memcpy(w + n, v.p + k, e - k);
        n += e - k;
      }
      k = e;
    }
    int rc = sip_addr_list_parse(a, w, n, SIP_ADDR_ALLOW_STAR, &tail);
    if (rc < 0)
      return rc;
  }
  *out = head;
  return 0;
}

typedef struct tag_find {
  const char *tag;
} tag_find;

static int tag_item(void *ud, sip_str item) {
  return sip_str_ieq_cstr(item, ((tag_find *)ud)->tag);
}

/* Is tag one of the items of the header lines of id? */
static int has_tag(sip_msg *m, int id, const char *tag) {
  tag_find f = {tag};
  return each_item(m, id, tag_item, &f) == 1;
}

/* reg-id = 1*DIGIT, 1 to 2^32-1 (RFC 5626 §4.2): the value or 0. */
static uint32_t reg_id_value(sip_str v) {
  if (v.len == 0 || v.len > 10)
    return 0;
  for (size_t k = 0; k < v.len; k++)
    if (!is_digit(v.p[k]))
      return 0;
  int64_t n = 0;
  for (size_t k = 0; k < v.len; k++)
    n = n * 10 + (v.p[k] - '0');
  return n >= 1 && n <= MAX_U32 ? (uint32_t)n : 0;
}

static sip_str param_value(const sip_param *p) {
  if (!p || !p->value.p)
    return SIP_STR_NULL;
  return p->dec.p ? p->dec : p->value;
}

int sip_reg_contacts_plan(sip_msg *m, const sip_reg_conf *c, sip_arena *a,
                          sip_obuf *text, sip_reg_contacts *out,
                          sip_reg_answer *ans) {
  out->n = 0;
  out->star = out->outbound = 0;
  ans->status = 0;
  const sip_addr *list = NULL;
  int rc = sip_msg_get_addrs(m, SIP_H_CONTACT, &list);
  if (rc == SIP_ERANGE && contacts_clamped(m, a, &list) < 0)
    list = NULL;
  else if (rc == SIP_ERANGE)
    rc = 0;
  if (rc < 0 && rc != SIP_ENOTFOUND) {
    char why[192];
    field_text(m, rc, SIP_H_CONTACT, "Contact", why, sizeof why);
    answer(ans, 400, "");
    snprintf(ans->reason, sizeof ans->reason,
             "Bad Request (malformed Contact: %s)", why);
    clean_reason(ans);
    return 1;
  }
  if (rc < 0)
    list = NULL;
  int64_t hexp = -1;
  int hx = header_expires(m, &hexp);
  if (hx < 0) {
    answer(ans, 400, "Bad Request (malformed Expires)");
    return 1;
  }
  int values = 0;
  for (const sip_addr *x = list; x; x = x->next) {
    values++;
    out->star |= x->star;
  }
  if (out->star) {
    if (values > 1) {
      answer(ans, 400, "Bad Request (Contact * must be the only Contact)");
      return 1;
    }
    if (!hx || hexp != 0) {
      answer(ans, 400, "Bad Request (Contact * needs Expires: 0)");
      return 1;
    }
    return 0;
  }

  int use_outbound = c->outbound && has_tag(m, SIP_H_SUPPORTED, "outbound");
  int reg_ids = 0;
  for (const sip_addr *x = list; x; x = x->next) {
    if ((int64_t)x->raw.len > c->max_contact_size) {
      answer(ans, 400, "");
      snprintf(ans->reason, sizeof ans->reason,
               "Bad Request (Contact too long: %d bytes, at most %lld)",
               (int)x->raw.len, (long long)c->max_contact_size);
      return 1;
    }
    if (out->n == out->cap)
      return SIP_ENOMEM;
    sip_reg_change *ch = &out->ch[out->n++];
    memset(ch, 0, sizeof *ch);
    const sip_uri *u = &x->uri;
    ch->contact = u->raw;
    ch->q = x->q < 0 ? 1000 : x->q;
    int64_t e = x->expires >= 0 ? x->expires : hx ? hexp : c->default_expires;
    if (e > 0 && e < c->min_expires) {
      answer(ans, 423, "Interval Too Brief");
      ans->hname = "Min-Expires";
      snprintf(ans->hvalue, sizeof ans->hvalue, "%lld",
               (long long)c->min_expires);
      return 1;
    }
    ch->expires = e > c->max_expires ? c->max_expires : e;
    int is_sip = u->kind == SIP_URI_SIP || u->kind == SIP_URI_SIPS;
    if (is_sip && u->host.len > 0 && sip_params_get(&u->params, "gr")) {
      if ((rc = serves(c, u->host)) < 0)
        return rc;
      if (rc) {
        answer(ans, 403, "Forbidden (Contact is a GRUU)");
        return 1;
      }
    }
    ch->instance = param_value(sip_params_get(&x->params, "+sip.instance"));
    const sip_param *rp = sip_params_get(&x->params, "reg-id");
    size_t at = text->len;
    if (rp && use_outbound) {
      ch->reg_id = reg_id_value(param_value(rp));
      if (!ch->instance.p || !ch->reg_id) {
        answer(ans, 400,
               "Bad Request (reg-id needs +sip.instance and a "
               "number 1 to 2^32-1)");
        return 1;
      }
      reg_ids++;
      char num[16];
      snprintf(num, sizeof num, ";%u", (unsigned)ch->reg_id);
      sip_obuf_put(text, ch->instance.p, ch->instance.len);
      sip_obuf_puts(text, num);
      out->outbound = 1;
    } else if (ch->instance.p) {
      sip_obuf_put(text, ch->instance.p, ch->instance.len);
    } else {
      sip_reg_contact_key(u, text);
    }
    ch->key = (sip_str){text->p + at, text->len - at};
    at = text->len;
    sip_reg_kept_params(x->params_raw, text);
    ch->params = (sip_str){text->p + at, text->len - at};
    if (text->overflow)
      return SIP_ENOMEM;
  }
  if (reg_ids > 1) {
    answer(ans, 400, "Bad Request (reg-id on more than one Contact)");
    return 1;
  }
  /* RFC 5626 §6: an outbound registration through a proxy needs a first
   * hop that added a Path with "ob". */
  const sip_via *v = NULL;
  const sip_addr *path = NULL;
  int nvias = 0;
  if (out->outbound && sip_msg_get_vias(m, &v) >= 0)
    for (; v; v = v->next)
      nvias++;
  if (out->outbound && nvias > 1 &&
      !(sip_msg_get_addrs(m, SIP_H_PATH, &path) >= 0 &&
        sip_params_get(&path->uri.params, "ob"))) {
    answer(ans, 439, "First Hop Lacks Outbound Support");
    return 1;
  }
  return 0;
}

/* ---- step C ------------------------------------------------------------ */

static int same(sip_str a, sip_str b) {
  return a.p && b.p && a.len == b.len && (!a.len || !memcmp(a.p, b.p, a.len));
}

/* §10.3 step 7: a binding of this Call-ID must have a lower CSeq */
static int in_order(const sip_reg_current *b, sip_str call_id, uint32_t cseq) {
  return !same(b->call_id, call_id) || b->cseq < (double)cseq;
}

int sip_reg_update(const sip_reg_conf *c, sip_str call_id, uint32_t cseq,
                   sip_reg_contacts *cs, sip_reg_current *cur, size_t ncur,
                   sip_reg_answer *ans) {
  ans->status = 0;
  for (size_t i = 0; i < ncur; i++) {
    cur[i].remove = cs->star;
    cur[i].keep = !cs->star;
    if (cs->star && !in_order(&cur[i], call_id, cseq))
      goto out_of_order;
  }
  size_t saves = 0, count = 0;
  for (size_t k = 0; k < cs->n; k++) {
    sip_reg_change *ch = &cs->ch[k];
    ch->old = -1;
    ch->tgruu_n = 0;
    ch->superseded = 0;
    for (size_t j = k + 1; j < cs->n && !ch->superseded; j++)
      ch->superseded = same(cs->ch[j].key, ch->key);
    for (size_t i = 0; i < ncur; i++)
      if (same(cur[i].key, ch->key)) {
        ch->old = (int)i;
        break;
      }
    sip_reg_current *old = ch->old >= 0 ? &cur[ch->old] : NULL;
    if (old && !in_order(old, call_id, cseq))
      goto out_of_order;
    if (ch->superseded)
      continue;
    if (old) {
      old->keep = 0; /* removed, or listed as the change */
      old->remove = ch->expires == 0;
    }
    if (ch->expires == 0)
      continue;
    saves++;
    if (ch->instance.p && c->gruu)
      ch->tgruu_n = old && same(old->call_id, call_id) && old->tgruu_base.p
                        ? old->tgruu_n + 1
                        : 1;
  }
  /* the bindings after the request: the current ones kept, and each key
   * whose last change saves it */
  for (size_t i = 0; i < ncur; i++)
    count += cur[i].keep;
  for (size_t k = 0; k < cs->n; k++)
    count += !cs->ch[k].superseded && cs->ch[k].expires > 0;
  if (saves > 0 && (int64_t)count > c->max_contacts) {
    answer(ans, 503, "Too Many Registered Contacts");
    return 1;
  }
  return 0;
out_of_order:
  answer(ans, 500, "Server Internal Error (CSeq out of order)");
  return 1;
}

void sip_reg_pub_gruu(sip_obuf *out, sip_str aor, sip_str instance) {
  if (instance.len >= 2 && instance.p[0] == '<' &&
      instance.p[instance.len - 1] == '>') {
    instance.p++;
    instance.len -= 2;
  }
  sip_obuf_put(out, aor.p, aor.len);
  sip_obuf_puts(out, ";gr=");
  sip_obuf_put(out, instance.p, instance.len);
}

void sip_reg_temp_gruu(sip_obuf *out, sip_str aor, sip_str base, int64_t n) {
  size_t colon = 0, host = 0;
  while (colon < aor.len && aor.p[colon] != ':')
    colon++;
  host = colon < aor.len ? colon + 1 : 0;
  for (size_t i = host; i < aor.len; i++)
    if (aor.p[i] == '@')
      host = i + 1;
  char num[24];
  snprintf(num, sizeof num, ".%lld@", (long long)n);
  sip_obuf_put(out, aor.p, colon);
  sip_obuf_puts(out, ":tgruu.");
  sip_obuf_put(out, base.p, base.len);
  sip_obuf_puts(out, num);
  sip_obuf_put(out, aor.p + host, aor.len - host);
  sip_obuf_puts(out, ";gr");
}

static int is_alnum(char ch) {
  return is_digit(ch) || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z');
}

int sip_reg_temp_gruu_parse(const sip_uri *u, sip_str *base, int64_t *n) {
  static const char prefix[] = "tgruu.";
  const size_t plen = sizeof prefix - 1;
  if (u->kind != SIP_URI_SIP && u->kind != SIP_URI_SIPS)
    return 0;
  const sip_param *gr = sip_params_get(&u->params, "gr");
  if (!gr || gr->value.p)
    return 0;
  sip_str user = u->user_dec.p ? u->user_dec : u->user;
  if (!user.p || user.len <= plen || memcmp(user.p, prefix, plen))
    return 0;
  size_t b = plen, e = plen;
  while (e < user.len && is_alnum(user.p[e]))
    e++;
  size_t d = e + 1;
  if (e == b || e >= user.len || user.p[e] != '.' || d >= user.len)
    return 0;
  int64_t v = 0;
  for (size_t k = d; k < user.len; k++) {
    if (!is_digit(user.p[k]))
      return 0;
    v = v > (INT64_MAX - 9) / 10 ? INT64_MAX : v * 10 + (user.p[k] - '0');
  }
  *base = (sip_str){user.p + b, e - b};
  if (n)
    *n = v;
  return 1;
}

int sip_reg_record(sip_obuf *b, const sip_reg_new *n) {
  const sip_reg_change *ch = n->ch;
  sip_binding_begin(b, (double)(n->now + ch->expires), n->saved, ch->key);
  if (same(ch->contact, ch->key))
    sip_binding_put_key(b, SIP_BF_CONTACT, NULL);
  else
    sip_binding_put_str(b, SIP_BF_CONTACT, NULL, ch->contact);
  if (ch->q == 0 || ch->q == 1000)
    sip_binding_put_int(b, SIP_BF_Q, NULL, ch->q / 1000);
  else
    sip_binding_put_double(b, SIP_BF_Q, NULL, ch->q / 1000.0);
  sip_binding_put_str(b, SIP_BF_CALL_ID, NULL, n->call_id);
  sip_binding_put_int(b, SIP_BF_CSEQ, NULL, n->cseq);
  if (n->paths) {
    size_t np = 0;
    for (const sip_addr *p = n->paths; p; p = p->next)
      np++;
    sip_binding_put_array(b, SIP_BF_PATH, NULL, np);
    for (const sip_addr *p = n->paths; p; p = p->next)
      sip_binding_put_item(b, p->raw);
  }
  sip_binding_put_str(b, SIP_BF_RECEIVED, NULL, n->received);
  if (n->socket.p)
    sip_binding_put_str(b, SIP_BF_SOCKET, NULL, n->socket);
  else
    sip_binding_put_int(b, SIP_BF_OTHER, "conn_id", n->conn_id);
  if (ch->instance.p)
    sip_binding_put_str(b, SIP_BF_INSTANCE, NULL, ch->instance);
  if (ch->reg_id)
    sip_binding_put_int(b, SIP_BF_REG_ID, NULL, ch->reg_id);
  if (n->user_agent.p)
    sip_binding_put_str(b, SIP_BF_USER_AGENT, NULL, n->user_agent);
  sip_binding_put_int(b, SIP_BF_UPDATED, NULL, n->now);
  sip_binding_put_str(b, SIP_BF_PARAMS, NULL, ch->params);
  if (ch->tgruu_n && ch->instance.p && n->tgruu_base.p) {
    char mem[1024];
    sip_obuf g;
    sip_obuf_init(&g, mem, sizeof mem);
    sip_reg_pub_gruu(&g, n->aor, ch->instance);
    size_t at = g.len;
    sip_reg_temp_gruu(&g, n->aor, n->tgruu_base, ch->tgruu_n);
    if (g.overflow)
      return SIP_ENOMEM;
    sip_binding_put_str(b, SIP_BF_PUB_GRUU, NULL, (sip_str){g.p, at});
    sip_binding_put_str(b, SIP_BF_TEMP_GRUU, NULL,
                        (sip_str){g.p + at, g.len - at});
    sip_binding_put_str(b, SIP_BF_OTHER, "tgruu_base", n->tgruu_base);
    sip_binding_put_int(b, SIP_BF_OTHER, "tgruu_n", ch->tgruu_n);
  }
  return b->overflow ? SIP_ENOMEM : 0;
}

int sip_reg_user_agent(sip_msg *m, sip_str *out) {
  *out = SIP_STR_NULL;
  int i = sip_msg_find(m, SIP_H_USER_AGENT, NULL, 0, 0);
  if (i < 0)
    return 0;
  if (sip_msg_unfolded(m, &m->hdr[i], out) < 0)
    return SIP_ENOMEM;
  if (!out->p)
    out->p = "";
  return 0;
}

/* ---- step D ------------------------------------------------------------ */

static int cmp_binding(const void *a, const void *b) {
  const sip_reg_binding *x = a, *y = b;
  if (x->q != y->q)
    return x->q > y->q ? -1 : 1;
  if (x->updated != y->updated)
    return x->updated > y->updated ? -1 : 1;
  return x->idx < y->idx ? -1 : x->idx > y->idx;
}

void sip_reg_sort(sip_reg_binding *b, size_t n) {
  if (n > 1)
    qsort(b, n, sizeof *b, cmp_binding);
}

/* A number as Lua's tostring writes it for an integer, or %.14g */
static void put_num(sip_obuf *out, double v) {
  char num[40];
  if (v == (double)(long long)v && v > -9e15 && v < 9e15)
    snprintf(num, sizeof num, "%lld", (long long)v);
  else
    snprintf(num, sizeof num, "%.14g", v);
  sip_obuf_puts(out, num);
}

void sip_reg_contact_value(sip_obuf *out, const sip_reg_binding *b, double now,
                           int gruu) {
  sip_obuf_puts(out, "<");
  sip_obuf_put(out, b->contact.p, b->contact.len);
  sip_obuf_puts(out, ">;expires=");
  double left = b->expires - now;
  put_num(out, left < 0 ? 0 : left);
  if (b->q != 1) {
    char num[40];
    snprintf(num, sizeof num, ";q=%g", b->q);
    sip_obuf_puts(out, num);
  }
  sip_obuf_put(out, b->params.p, b->params.len);
  if (gruu && b->pub_gruu.p) {
    sip_obuf_puts(out, ";pub-gruu=\"");
    sip_obuf_put(out, b->pub_gruu.p, b->pub_gruu.len);
    sip_obuf_puts(out, "\"");
    if (b->temp_gruu.p) {
      sip_obuf_puts(out, ";temp-gruu=\"");
      sip_obuf_put(out, b->temp_gruu.p, b->temp_gruu.len);
      sip_obuf_puts(out, "\"");
    }
  }
}

/* sep, then v (0 to 99) in two digits: the end */
static char *put2(char *p, const char *sep, int v) {
  while (*sep)
    *p++ = *sep++;
  *p++ = (char)('0' + v / 10 % 10);
  *p++ = (char)('0' + v % 10);
  return p;
}

int sip_reg_http_date(sip_obuf *out, int64_t t) {
  /* English names whatever the locale (strftime's %a and %b are not) */
  static const char days[] = "SunMonTueWedThuFriSat";
  static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
  time_t tt = (time_t)t;
  struct tm tm;
  if ((int64_t)tt != t || !gmtime_r(&tt, &tm) || tm.tm_wday < 0 ||
      tm.tm_wday > 6 || tm.tm_mon < 0 || tm.tm_mon > 11)
    return SIP_ERANGE;
  /* by hand: snprintf cost more than the rest of the 200's headers */
  long long year = (long long)tm.tm_year + 1900;
  char date[64], *p = date;
  memcpy(p, days + 3 * tm.tm_wday, 3);
  p = put2(p + 3, ", ", tm.tm_mday);
  *p++ = ' ';
  memcpy(p, months + 3 * tm.tm_mon, 3);
  p += 3;
  *p++ = ' ';
  if (year >= 1000 && year <= 9999) {
    p = put2(p, "", (int)(year / 100));
    p = put2(p, "", (int)(year % 100));
  } else {
    p += snprintf(p, 24, "%lld", year);
  }
  p = put2(p, " ", tm.tm_hour);
  p = put2(p, ":", tm.tm_min);
  p = put2(p, ":", tm.tm_sec);
  memcpy(p, " GMT", 4);
  sip_obuf_put(out, date, (size_t)(p + 4 - date));
  return out->overflow ? SIP_ENOMEM : 0;
}

int sip_reg_ok_headers(sip_msg *m, const sip_reg_conf *c,
                       const sip_reg_binding *b, size_t n, int64_t now,
                       int outbound, sip_obuf *out) {
  int gruu = c->gruu && has_tag(m, SIP_H_SUPPORTED, "gruu");
  for (size_t i = 0; i < n; i++) {
    sip_obuf_puts(out, "Contact: ");
    sip_reg_contact_value(out, &b[i], (double)now, gruu);
    sip_obuf_puts(out, "\r\n");
  }
  const sip_addr *p = NULL;
  if (c->path && sip_msg_get_addrs(m, SIP_H_PATH, &p) >= 0 &&
      has_tag(m, SIP_H_SUPPORTED, "path"))
    for (; p; p = p->next) {
      sip_obuf_puts(out, "Path: ");
      sip_obuf_put(out, p->raw.p, p->raw.len);
      sip_obuf_puts(out, "\r\n");
    }
  if (outbound)
    sip_obuf_puts(out, "Require: outbound\r\n");
  sip_obuf_puts(out, "Date: ");
  int rc = sip_reg_http_date(out, now);
  if (rc < 0)
    return rc;
  sip_obuf_puts(out, "\r\n");
  return out->overflow ? SIP_ENOMEM : 0;
}
