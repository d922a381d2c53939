/* The stored form of a location binding (see sip_binding.h). */
#include <string.h>

#include "sip_binding.h"

static const char *const field_names[] = {NULL,
#define SIP__BF_NAME(id, name) name,
                                          SIP_BINDING_FIELDS(SIP__BF_NAME)
#undef SIP__BF_NAME
};

const char *sip_binding_field_name(int id) {
  return id > 0 && id < SIP_BF__COUNT ? field_names[id] : NULL;
}

int sip_binding_field_id(const char *name, size_t len) {
  for (int id = 1; id < SIP_BF__COUNT; id++)
    if (strlen(field_names[id]) == len && !memcmp(field_names[id], name, len))
      return id;
  return SIP_BF_OTHER;
}

/* little-endian readers and writers, independent of the host's order */
static uint64_t get_le(const char *p, int n) {
  uint64_t v = 0;
  for (int i = n - 1; i >= 0; i--)
    v = v << 8 | (unsigned char)p[i];
  return v;
}

static void put_le(sip_obuf *b, uint64_t v, int n) {
  char t[8];
  for (int i = 0; i < n; i++, v >>= 8)
    t[i] = (char)(v & 0xff);
  sip_obuf_put(b, t, (size_t)n);
}

static double get_double(const char *p) {
  uint64_t u = get_le(p, 8);
  double d;
  memcpy(&d, &u, sizeof d);
  return d;
}

static void put_double(sip_obuf *b, double d) {
  uint64_t u;
  memcpy(&u, &d, sizeof u);
  put_le(b, u, 8);
}

static int need(const sip_breader *r, size_t n) { return r->len - r->pos >= n; }

int sip_binding_open(sip_breader *r, const char *p, size_t len) {
  r->p = p;
  r->len = len;
  r->pos = 0;
  if (!need(r, 18))
    return SIP_EVALUE;
  r->expires = get_double(p);
  r->saved = get_double(p + 8);
  size_t klen = (size_t)get_le(p + 16, 2);
  r->pos = 18;
  if (!need(r, klen))
    return SIP_EVALUE;
  r->key = (sip_str){p + 18, klen};
  r->pos += klen;
  return 0;
}

static int read_str(sip_breader *r, int lenbytes, sip_str *out) {
  if (!need(r, (size_t)lenbytes))
    return SIP_EVALUE;
  size_t n = (size_t)get_le(r->p + r->pos, lenbytes);
  r->pos += (size_t)lenbytes;
  if (!need(r, n))
    return SIP_EVALUE;
  *out = (sip_str){r->p + r->pos, n};
  r->pos += n;
  return 0;
}

int sip_binding_next(sip_breader *r, sip_bfield *f) {
  if (r->pos >= r->len)
    return 0;
  memset(f, 0, sizeof *f);
  f->id = (unsigned char)r->p[r->pos++];
  if (f->id >= SIP_BF__COUNT)
    return SIP_EVALUE;
  if (f->id == SIP_BF_OTHER && read_str(r, 1, &f->name) < 0)
    return SIP_EVALUE;
  if (!need(r, 1))
    return SIP_EVALUE;
  f->type = r->p[r->pos++];
  switch (f->type) {
  case SIP_BT_STR:
    return read_str(r, 2, &f->str) < 0 ? SIP_EVALUE : 1;
  case SIP_BT_LSTR:
    return read_str(r, 4, &f->str) < 0 ? SIP_EVALUE : 1;
  case SIP_BT_KEY:
    f->str = r->key;
    return 1;
  case SIP_BT_I32:
    if (!need(r, 4))
      return SIP_EVALUE;
    f->i = (int32_t)(uint32_t)get_le(r->p + r->pos, 4);
    r->pos += 4;
    return 1;
  case SIP_BT_I64:
    if (!need(r, 8))
      return SIP_EVALUE;
    f->i = (int64_t)get_le(r->p + r->pos, 8);
    r->pos += 8;
    return 1;
  case SIP_BT_DBL:
    if (!need(r, 8))
      return SIP_EVALUE;
    f->d = get_double(r->p + r->pos);
    r->pos += 8;
    return 1;
  case SIP_BT_TRUE:
  case SIP_BT_FALSE:
    return 1;
  case SIP_BT_ARRAY: {
    if (!need(r, 2))
      return SIP_EVALUE;
    f->i = (int64_t)get_le(r->p + r->pos, 2);
    r->pos += 2;
    size_t start = r->pos;
    for (int64_t k = 0; k < f->i; k++) {
      sip_str item;
      if (read_str(r, 2, &item) < 0)
        return SIP_EVALUE;
    }
    f->str = (sip_str){r->p + start, r->pos - start};
    return 1;
  }
  default:
    return SIP_EVALUE;
  }
}

int sip_binding_item(sip_str *rest, sip_str *out) {
  if (rest->len < 2)
    return SIP_EVALUE;
  size_t n = (size_t)get_le(rest->p, 2);
  if (rest->len - 2 < n)
    return SIP_EVALUE;
  *out = (sip_str){rest->p + 2, n};
  rest->p += 2 + n;
  rest->len -= 2 + n;
  return 0;
}

void sip_binding_begin(sip_obuf *b, double expires, double saved, sip_str key) {
  put_double(b, expires);
  put_double(b, saved);
  if (key.len > 0xffff) {
    b->overflow = 1;
    return;
  }
  put_le(b, key.len, 2);
  sip_obuf_put(b, key.p, key.len);
}

static void put_name(sip_obuf *b, int id, const char *name) {
  if (id > 0 && id < SIP_BF__COUNT) {
    char c = (char)id;
    sip_obuf_put(b, &c, 1);
    return;
  }
  size_t n = strlen(name);
  if (n > 255) {
    b->overflow = 1;
    return;
  }
  char h[2] = {0, (char)n};
  sip_obuf_put(b, h, 2);
  sip_obuf_put(b, name, n);
}

static void put_type(sip_obuf *b, char t) { sip_obuf_put(b, &t, 1); }

void sip_binding_put_str(sip_obuf *b, int id, const char *name, sip_str v) {
  put_name(b, id, name);
  if (v.len < 0x10000) {
    put_type(b, SIP_BT_STR);
    put_le(b, v.len, 2);
  } else {
    put_type(b, SIP_BT_LSTR);
    put_le(b, v.len, 4);
  }
  sip_obuf_put(b, v.p, v.len);
}

void sip_binding_put_int(sip_obuf *b, int id, const char *name, int64_t v) {
  put_name(b, id, name);
  if (v >= INT32_MIN && v <= INT32_MAX) {
    put_type(b, SIP_BT_I32);
    put_le(b, (uint64_t)v, 4);
  } else {
    put_type(b, SIP_BT_I64);
    put_le(b, (uint64_t)v, 8);
  }
}

void sip_binding_put_double(sip_obuf *b, int id, const char *name, double v) {
  put_name(b, id, name);
  put_type(b, SIP_BT_DBL);
  put_double(b, v);
}

void sip_binding_put_bool(sip_obuf *b, int id, const char *name, int v) {
  put_name(b, id, name);
  put_type(b, v ? SIP_BT_TRUE : SIP_BT_FALSE);
}

void sip_binding_put_key(sip_obuf *b, int id, const char *name) {
  put_name(b, id, name);
  put_type(b, SIP_BT_KEY);
}

void sip_binding_put_array(sip_obuf *b, int id, const char *name, size_t n) {
  put_name(b, id, name);
  put_type(b, SIP_BT_ARRAY);
  if (n > 0xffff) {
    b->overflow = 1;
    return;
  }
  put_le(b, n, 2);
}

void sip_binding_put_item(sip_obuf *b, sip_str v) {
  if (v.len > 0xffff) {
    b->overflow = 1;
    return;
  }
  put_le(b, v.len, 2);
  sip_obuf_put(b, v.p, v.len);
}
