/* Edits and serialization.
 *
 * An edit never rewrites the input: new values are copied into the arena and
 * the header index records what changed. Serialization writes untouched
 * header lines from their raw bytes, so folds, spelling and compact names
 * survive, and an unchanged message comes out byte for byte as it came in. */
#include <stdio.h>
#include <string.h>

#include "sip_fields.h"
#include "sip_msg.h"
#include "sip_scan.h"

static void drop_cache(sip_msg *m, int id) {
  if (id > 0 && id < SIP_H__COUNT)
    m->cached &= ~((uint64_t)1 << id);
  if (id == SIP_H_CONTENT_TYPE)
    m->parts = NULL;
}

static int copy_str(sip_msg *m, const char *p, size_t len, sip_str *out) {
  char *d = sip_arena_strndup(&m->arena, p, len);
  if (!d)
    return SIP_ENOMEM;
  *out = (sip_str){d, len};
  return 0;
}

/* Header values may not carry a line break that is not a fold: that would
 * let a script inject a header field or end the header section. */
static int value_ok(const char *v, size_t len) {
  for (size_t i = 0; i < len; i++) {
    if (v[i] == '\r' || v[i] == '\n') {
      size_t j = i + (v[i] == '\r' && i + 1 < len && v[i + 1] == '\n');
      if (j + 1 >= len || (v[j + 1] != ' ' && v[j + 1] != '\t'))
        return 0;
    }
  }
  return 1;
}

static int new_start_line(sip_msg *m, const char *fmt_a, size_t la,
                          const char *b, size_t lb, const char *c, size_t lc) {
  size_t n = la + 1 + lb + 1 + lc;
  char *d = sip_arena_alloc(&m->arena, n + 1);
  if (!d)
    return SIP_ENOMEM;
  memcpy(d, fmt_a, la);
  d[la] = ' ';
  memcpy(d + la + 1, b, lb);
  d[la + 1 + lb] = ' ';
  memcpy(d + la + 2 + lb, c, lc);
  d[n] = '\0';
  m->new_start_line = (sip_str){d, n};
  m->dirty = 1;
  return 0;
}

int sip_msg_set_ruri(sip_msg *m, const char *uri, size_t len) {
  if (!m->is_request || len == 0 || !uri)
    return SIP_EINVAL;
  for (size_t i = 0; i < len; i++)
    if (sip__is((unsigned char)uri[i], SIP_C_CTL | SIP_C_WS))
      return SIP_EINVAL;
  sip_str u;
  int rc = copy_str(m, uri, len, &u);
  if (rc < 0)
    return rc;
  rc = new_start_line(m, m->method.p, m->method.len, u.p, u.len, m->version.p,
                      m->version.len);
  if (rc < 0)
    return rc;
  m->ruri = u;
  m->ruri_parsed = NULL;
  return 0;
}

int sip_msg_set_status(sip_msg *m, int status, const char *reason, size_t len) {
  if (m->is_request || status < 100 || status > 699)
    return SIP_EINVAL;
  for (size_t i = 0; i < len; i++)
    if (reason[i] == '\r' || reason[i] == '\n')
      return SIP_EINVAL;
  char code[4];
  snprintf(code, sizeof(code), "%03d", status);
  sip_str r;
  int rc = copy_str(m, reason ? reason : "", reason ? len : 0, &r);
  if (rc < 0)
    return rc;
  rc = new_start_line(m, m->version.p, m->version.len, code, 3, r.p, r.len);
  if (rc < 0)
    return rc;
  m->status = (uint16_t)status;
  m->reason = r;
  return 0;
}

int sip_msg_insert_header(sip_msg *m, int at, int id, const char *name,
                          size_t nlen, const char *value, size_t vlen) {
  if (name) {
    if (nlen == 0)
      return SIP_EINVAL;
    for (size_t i = 0; i < nlen; i++)
      if (!sip__is((unsigned char)name[i], SIP_C_TOKEN))
        return SIP_EINVAL;
    if (id == SIP_H_OTHER)
      id = sip_hdr_lookup(name, nlen);
  } else {
    name = sip_hdr_canonical(id);
    if (!name)
      return SIP_EINVAL;
    nlen = strlen(name);
  }
  if (!value_ok(value, vlen))
    return SIP_EINVAL;
  if (at < 0 || (uint32_t)at > m->nhdr)
    at = (int)m->nhdr;
  if (m->nhdr == m->hdr_cap && sip__msg_grow_headers(m) < 0)
    return SIP_ENOMEM;
  sip_str n, v;
  int rc = copy_str(m, name, nlen, &n);
  if (rc == 0)
    rc = copy_str(m, value, vlen, &v);
  if (rc < 0)
    return rc;
  memmove(&m->hdr[at + 1], &m->hdr[at],
          (m->nhdr - (uint32_t)at) * sizeof(sip_hdr));
  m->nhdr++;
  m->hdr[at] = (sip_hdr){.name = n,
                         .value = v,
                         .raw = SIP_STR_NULL,
                         .id = (uint16_t)id,
                         .state = SIP_HS_ADDED};
  m->present |= (uint64_t)1 << id;
  drop_cache(m, id);
  m->dirty = 1;
  return 0;
}

int sip_msg_replace_value(sip_msg *m, int index, const char *value,
                          size_t len) {
  if (index < 0 || (uint32_t)index >= m->nhdr ||
      m->hdr[index].state == SIP_HS_REMOVED || !value_ok(value, len))
    return SIP_EINVAL;
  sip_hdr *h = &m->hdr[index];
  int rc = copy_str(m, value, len, &h->value);
  if (rc < 0)
    return rc;
  if (h->state == SIP_HS_ORIG)
    h->state = SIP_HS_CHANGED;
  h->parsed = NULL;
  drop_cache(m, h->id);
  m->dirty = 1;
  return 0;
}

int sip_msg_remove_header(sip_msg *m, int index) {
  if (index < 0 || (uint32_t)index >= m->nhdr ||
      m->hdr[index].state == SIP_HS_REMOVED)
    return SIP_EINVAL;
  m->hdr[index].state = SIP_HS_REMOVED;
  m->hdr[index].parsed = NULL;
  drop_cache(m, m->hdr[index].id);
  m->dirty = 1;
  return 0;
}

int sip_msg_set_header(sip_msg *m, int id, const char *name, size_t nlen,
                       const char *value, size_t vlen) {
  int i = sip_msg_find(m, id, name, nlen, 0);
  if (i < 0)
    return sip_msg_insert_header(m, -1, id, name, nlen, value, vlen);
  int rc = sip_msg_replace_value(m, i, value, vlen);
  int j;
  while (rc == 0 && (j = sip_msg_find(m, id, name, nlen, i + 1)) >= 0)
    rc = sip_msg_remove_header(m, j);
  return rc;
}

int sip_msg_add_header(sip_msg *m, int id, const char *name, size_t nlen,
                       const char *value, size_t vlen, int first) {
  int at = -1;
  if (first && (at = sip_msg_find(m, id, name, nlen, 0)) < 0)
    at = 0;
  return sip_msg_insert_header(m, at, id, name, nlen, value, vlen);
}

int sip_msg_remove_headers(sip_msg *m, int id, const char *name, size_t nlen) {
  int n = 0, i, rc;
  while ((i = sip_msg_find(m, id, name, nlen, 0)) >= 0) {
    if ((rc = sip_msg_remove_header(m, i)) < 0)
      return rc;
    n++;
  }
  return n;
}

int sip_msg_set_body(sip_msg *m, const char *body, size_t len) {
  sip_str b;
  int rc = copy_str(m, body ? body : "", body ? len : 0, &b);
  if (rc < 0)
    return rc;
  char num[24];
  int nn = snprintf(num, sizeof(num), "%zu", len);
  int i = sip_msg_find(m, SIP_H_CONTENT_LENGTH, NULL, 0, 0);
  rc = i >= 0 ? sip_msg_replace_value(m, i, num, (size_t)nn)
              : sip_msg_insert_header(m, -1, SIP_H_CONTENT_LENGTH, NULL, 0, num,
                                      (size_t)nn);
  if (rc < 0)
    return rc;
  m->body = b;
  m->body_changed = 1;
  m->has_clen = 1;
  m->parts = NULL;
  m->dirty = 1;
  return 0;
}

/* ---- serialization --------------------------------------------------------
 */

static size_t hdr_size(const sip_hdr *h) {
  switch (h->state) {
  case SIP_HS_ORIG:
    return h->raw.len;
  case SIP_HS_REMOVED:
    return 0;
  default:
    return h->name.len + 2 + h->value.len + 2;
  }
}

size_t sip_msg_size(const sip_msg *m) {
  if (!m->dirty)
    return m->len;
  const sip_str *sl = m->new_start_line.p ? &m->new_start_line : &m->start_line;
  size_t n = sl->len + 2;
  for (uint32_t i = 0; i < m->nhdr; i++)
    n += hdr_size(&m->hdr[i]);
  return n + 2 + m->body.len;
}

static char *put(char *o, const char *p, size_t len) {
  if (len)
    memcpy(o, p, len);
  return o + len;
}

int sip_msg_write(const sip_msg *m, char *out, size_t cap) {
  size_t need = sip_msg_size(m);
  if (cap < need || need > (size_t)INT32_MAX)
    return SIP_EINVAL;
  if (!m->dirty) {
    put(out, m->buf, m->len);
    return (int)m->len;
  }
  const sip_str *sl = m->new_start_line.p ? &m->new_start_line : &m->start_line;
  char *o = put(out, sl->p, sl->len);
  o = put(o, "\r\n", 2);
  for (uint32_t i = 0; i < m->nhdr; i++) {
    const sip_hdr *h = &m->hdr[i];
    if (h->state == SIP_HS_REMOVED)
      continue;
    if (h->state == SIP_HS_ORIG) {
      o = put(o, h->raw.p, h->raw.len);
      continue;
    }
    o = put(o, h->name.p, h->name.len);
    o = put(o, ": ", 2);
    o = put(o, h->value.p, h->value.len);
    o = put(o, "\r\n", 2);
  }
  o = put(o, "\r\n", 2);
  o = put(o, m->body.p, m->body.len);
  return (int)(o - out);
}

int sip_msg_pop_via(sip_msg *m, sip_str *popped) {
  int i = sip_msg_find(m, SIP_H_VIA, NULL, 0, 0);
  for (; i >= 0; i = sip_msg_find(m, SIP_H_VIA, NULL, 0, i + 1)) {
    sip_str v, rest, item;
    int rc = sip_msg_unfolded(m, &m->hdr[i], &v);
    if (rc < 0)
      return rc;
    rest = v;
    while ((rc = sip_split_next(&rest, &item)) > 0 && item.len == 0)
      ;
    if (rc < 0) { /* unsplittable: the line goes as a whole */
      if ((rc = copy_str(m, v.p, v.len, popped)) < 0 ||
          (rc = sip_msg_remove_header(m, i)) < 0)
        return rc;
      return 1;
    }
    if (rc == 0) { /* an empty line */
      if ((rc = sip_msg_remove_header(m, i)) < 0)
        return rc;
      continue;
    }
    if ((rc = copy_str(m, item.p, item.len, popped)) < 0)
      return rc;
    /* anything left on the line? */
    sip_str probe = rest, more;
    int any = 0;
    while (sip_split_next(&probe, &more) > 0)
      if (more.len) {
        any = 1;
        break;
      }
    if (!any)
      return (rc = sip_msg_remove_header(m, i)) < 0 ? rc : 1;
    const char *s = rest.p, *e = rest.p + rest.len;
    while (s < e && (*s == ' ' || *s == '\t'))
      s++;
    sip_str left; /* a copy: the line's text may live in the arena */
    if ((rc = copy_str(m, s, (size_t)(e - s), &left)) < 0 ||
        (rc = sip_msg_replace_value(m, i, left.p, left.len)) < 0)
      return rc;
    return 1;
  }
  return 0;
}
