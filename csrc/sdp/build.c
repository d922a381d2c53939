/* SDP lines from a tree of values (sip_sdp_build) and the tree of parsed
 * lines (sip_sdp_emit), see sip_sdp.h: the
 * table shape of lua/luasip/sdp.lua walked in RFC 8866 §5 order.
 *
 * Byte-exact output: an item that keeps the text it was parsed from (_raw)
 * is written as that text while its fields still equal the fields parsed
 * from it (sip_sdp_line_equal); the session's _raw_version likewise. Text
 * lines (s i u e p k z r) and attributes are written as they are. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sip_sdp.h"

/* A block of bytes the lines point into (numbers, joined formats). */
struct sip_sdp_blk {
  struct sip_sdp_blk *next;
  char data[];
};

typedef struct walk {
  sip_sdp_builder *b;
  const sip_tree_reader *r;
  int nomem;
} walk;

static void get(walk *w, const char *k, size_t i, sip_tree_val *v) {
  sip_tree_get(w->r, k, i, v);
}

static void close_table(walk *w) { w->r->close(w->r->ud); }

static sip_str keep(walk *w, const char *p, size_t len) {
  struct sip_sdp_blk *k = malloc(sizeof *k + len + 1);
  if (!k) {
    w->nomem = 1;
    return SIP_STR_NULL;
  }
  memcpy(k->data, p, len);
  k->data[len] = 0;
  k->next = w->b->blks;
  w->b->blks = k;
  return (sip_str){k->data, len};
}

static sip_sdp_line *new_line(walk *w, char type) {
  sip_sdp_builder *b = w->b;
  if (b->n == b->cap) {
    uint32_t cap = b->cap ? b->cap * 2 : 32;
    sip_sdp_line *nl = realloc(b->lines, cap * sizeof *nl);
    if (!nl) {
      w->nomem = 1;
      return NULL;
    }
    b->lines = nl;
    b->cap = cap;
  }
  sip_sdp_line *l = &b->lines[b->n++];
  memset(l, 0, sizeof *l);
  l->type = type;
  return l;
}

/* Field k of the current table: a string, or (num) an integer >= 0 in
 * decimal. Absent when nil; *ok = 0 for any other value. */
static sip_str field(walk *w, const char *k, int num, int *ok) {
  sip_tree_val v;
  get(w, k, 0, &v);
  if (v.kind == SIP_TREE_NIL)
    return SIP_STR_NULL;
  if (v.kind == SIP_TREE_STR)
    return v.s;
  if (v.kind == SIP_TREE_TABLE)
    close_table(w);
  if (num && v.kind == SIP_TREE_UINT) {
    char buf[24];
    int n = snprintf(buf, sizeof buf, "%llu", (unsigned long long)v.n);
    return keep(w, buf, (size_t)n);
  }
  *ok = 0;
  w->b->err_field = k;
  return SIP_STR_NULL;
}

/* A required field: present, else *ok = 0 (the first missing one named,
 * unless a later field is of a wrong type). */
static sip_str need(walk *w, const char *k, int num, int *ok) {
  sip_str s = field(w, k, num, ok);
  if (!s.p && *ok) {
    *ok = 0;
    w->b->err_field = k;
  }
  return s;
}

/* The item (the current table) keeps the text it was parsed from: written
 * as it was while its fields still equal that text's. */
static void keep_raw(walk *w, sip_sdp_line *l) {
  sip_tree_val v;
  get(w, "_raw", 0, &v);
  if (v.kind == SIP_TREE_TABLE)
    close_table(w);
  if (v.kind != SIP_TREE_STR)
    return;
  sip_sdp_line r;
  const char *what;
  if (sip_sdp_parse_line(l->type, v.s.p, v.s.len, &r, &what) == 0 &&
      sip_sdp_line_equal(l, &r))
    l->value = v.s;
}

/* m= formats: the list fmts of the current table, joined with spaces. */
static sip_str fmts(walk *w, int *ok) {
  sip_tree_val v;
  get(w, "fmts", 0, &v);
  if (v.kind == SIP_TREE_NIL)
    return SIP_STR_NULL;
  if (v.kind != SIP_TREE_TABLE) {
    *ok = 0;
    w->b->err_field = "fmts";
    return SIP_STR_NULL;
  }
  char *buf;
  size_t n;
  int rc = sip_tree_join(w->r, v.len, " ", 1, &buf, &n);
  sip_str out = SIP_STR_NULL;
  if (rc == SIP_EINVAL) {
    *ok = 0;
    w->b->err_field = "fmts";
  } else if (*ok && v.len) {
    if (rc < 0)
      w->nomem = 1;
    else
      out = keep(w, buf, n);
  }
  free(buf);
  close_table(w);
  return out;
}

/* The current table as a line of type. 1, or 0 with err_field set. */
static int item_line(walk *w, char type) {
  int ok = 1;
  sip_sdp_line *l = new_line(w, type);
  if (!l)
    return 0;
  switch (type) {
  case 'o':
    l->u.o.username = need(w, "username", 0, &ok);
    l->u.o.sess_id = need(w, "sess_id", 1, &ok);
    l->u.o.sess_version = need(w, "sess_version", 1, &ok);
    l->u.o.nettype = need(w, "nettype", 0, &ok);
    l->u.o.addrtype = need(w, "addrtype", 0, &ok);
    l->u.o.address = need(w, "address", 0, &ok);
    break;
  case 'c':
    l->u.c.nettype = need(w, "nettype", 0, &ok);
    l->u.c.addrtype = need(w, "addrtype", 0, &ok);
    l->u.c.address = need(w, "address", 0, &ok);
    break;
  case 'b':
    l->u.b.bwtype = need(w, "type", 0, &ok);
    l->u.b.bandwidth = need(w, "value", 1, &ok);
    break;
  case 't':
    l->u.t.start = need(w, "start", 1, &ok);
    l->u.t.stop = need(w, "stop", 1, &ok);
    break;
  case 'm':
    l->u.m.media = need(w, "media", 0, &ok);
    l->u.m.port = need(w, "port", 1, &ok);
    l->u.m.nports = field(w, "nports", 1, &ok);
    l->u.m.proto = need(w, "proto", 0, &ok);
    l->u.m.fmts = fmts(w, &ok);
    break;
  case 'a':
    l->u.a.name = need(w, "name", 0, &ok);
    l->u.a.value = field(w, "value", 1, &ok);
    break;
  default:
    break;
  }
  if (ok && !w->nomem)
    keep_raw(w, l);
  return ok && !w->nomem;
}

/* A text line from field k (optional unless req). */
static int text_line(walk *w, const char *k, char type, int req) {
  int ok = 1;
  sip_str s = req ? need(w, k, 0, &ok) : field(w, k, 0, &ok);
  if (ok && s.p) {
    sip_sdp_line *l = new_line(w, type);
    if (!l)
      return 0;
    l->value = s;
  }
  return ok;
}

/* Each element of the list k: text lines for e p r, items otherwise. */
static int list_lines(walk *w, const char *k, char type) {
  sip_tree_val v;
  get(w, k, 0, &v);
  if (v.kind == SIP_TREE_NIL)
    return 1;
  if (v.kind != SIP_TREE_TABLE) {
    w->b->err_field = k;
    return 0;
  }
  int ok = 1;
  for (size_t i = 1; ok && i <= v.len; i++) {
    sip_tree_val e;
    get(w, NULL, i, &e);
    if (strchr("epr", type)) {
      if (e.kind == SIP_TREE_TABLE)
        close_table(w);
      sip_sdp_line *l = e.kind == SIP_TREE_STR ? new_line(w, type) : NULL;
      if (l)
        l->value = e.s;
      else if (!w->nomem)
        w->b->err_field = k;
      ok = l != NULL;
      continue;
    }
    if (e.kind != SIP_TREE_TABLE) {
      w->b->err_field = "(not a table)";
      ok = 0;
      continue;
    }
    ok = item_line(w, type);
    if (ok && type == 't')
      ok = list_lines(w, "repeats", 'r');
    close_table(w);
  }
  close_table(w);
  return ok;
}

/* An optional item k of the current table. */
static int opt_item(walk *w, const char *k, char type, int req) {
  sip_tree_val v;
  get(w, k, 0, &v);
  if (v.kind == SIP_TREE_NIL) {
    if (req)
      w->b->err_field = k;
    return !req;
  }
  if (v.kind != SIP_TREE_TABLE) {
    w->b->err_field = "(not a table)";
    return 0;
  }
  int ok = item_line(w, type);
  close_table(w);
  return ok;
}

static int media_section(walk *w) {
  return item_line(w, 'm') && text_line(w, "info", 'i', 0) &&
         list_lines(w, "connections", 'c') &&
         list_lines(w, "bandwidths", 'b') && text_line(w, "key", 'k', 0) &&
         list_lines(w, "attributes", 'a');
}

static int session(walk *w) {
  int ok = 1;
  sip_sdp_line *v = new_line(w, 'v');
  if (!v)
    return 0;
  v->value = field(w, "version", 1, &ok);
  if (!v->value.p)
    v->value = SIP_STR_LIT("0");
  sip_tree_val raw;
  get(w, "_raw_version", 0, &raw);
  if (raw.kind == SIP_TREE_TABLE)
    close_table(w);
  if (raw.kind == SIP_TREE_STR) {
    sip_sdp_line a = {.type = 'v', .value = raw.s};
    if (sip_sdp_line_equal(v, &a))
      v->value = raw.s;
  }
  return ok && opt_item(w, "origin", 'o', 1) && text_line(w, "name", 's', 1) &&
         text_line(w, "info", 'i', 0) && text_line(w, "uri", 'u', 0) &&
         list_lines(w, "emails", 'e') && list_lines(w, "phones", 'p') &&
         opt_item(w, "connection", 'c', 0) &&
         list_lines(w, "bandwidths", 'b') && list_lines(w, "times", 't') &&
         text_line(w, "zone", 'z', 0) && text_line(w, "key", 'k', 0) &&
         list_lines(w, "attributes", 'a');
}

static int truthy(walk *w, const char *k) {
  sip_tree_val v;
  get(w, k, 0, &v);
  if (v.kind == SIP_TREE_TABLE)
    close_table(w);
  return v.kind != SIP_TREE_NIL && v.kind != SIP_TREE_FALSE;
}

int sip_sdp_build(sip_sdp_builder *b, const sip_tree_reader *r) {
  memset(b, 0, sizeof *b);
  walk w = {b, r, 0};
  int ok = session(&w);
  if (ok) {
    sip_tree_val v;
    get(&w, "media", 0, &v);
    if (v.kind == SIP_TREE_TABLE) {
      for (size_t i = 1; ok && i <= v.len; i++) {
        sip_tree_val m;
        get(&w, NULL, i, &m);
        b->err_where = (int)i;
        if (m.kind != SIP_TREE_TABLE) {
          b->err_field = "(not a table)";
          ok = 0;
          continue;
        }
        ok = media_section(&w);
        close_table(&w);
      }
      close_table(&w);
    } else if (v.kind != SIP_TREE_NIL) {
      b->err_where = -1;
      b->err_field = "media";
      ok = 0;
    }
  }
  if (w.nomem)
    return SIP_ENOMEM;
  if (!ok)
    return SIP_EINVAL;
  b->err_where = 0;
  b->lf_only = truthy(&w, "lf");
  b->last_eol = !truthy(&w, "no_final_eol");
  return 0;
}

void sip_sdp_builder_free(sip_sdp_builder *b) {
  free(b->lines);
  b->lines = NULL;
  b->n = b->cap = 0;
  while (b->blks) {
    struct sip_sdp_blk *k = b->blks;
    b->blks = k->next;
    free(k);
  }
}

/* ---- the tree of parsed lines (sip_sdp_emit) ------------------------------
 */

typedef struct emit {
  const sip_tree_emitter *e;
} emit;

static void put(const emit *m, const char *k, int kind, sip_str s) {
  sip_tree_val v = {.kind = kind, .s = s};
  m->e->put(m->e->ud, k, &v);
}

static void put_str(const emit *m, const char *k, sip_str s) {
  if (s.p)
    put(m, k, SIP_TREE_STR, s);
}

/* A number field (digits): an integer when it has at most 18 digits, else
 * its text. */
static void put_num(const emit *m, const char *k, sip_str s) {
  if (!s.p)
    return;
  if (s.len > 18) {
    put(m, k, SIP_TREE_STR, s);
    return;
  }
  sip_tree_val v = {.kind = SIP_TREE_UINT};
  for (size_t i = 0; i < s.len; i++)
    v.n = v.n * 10 + (uint64_t)(s.p[i] - '0');
  m->e->put(m->e->ud, k, &v);
}

static void open_table(const emit *m, const char *k) {
  put(m, k, SIP_TREE_TABLE, SIP_STR_NULL);
}

static void close_emit(const emit *m) { m->e->close(m->e->ud); }

/* A number field written with leading zeros ("007"): put as an integer
 * (put_num), it would be written back without them, so its line keeps its
 * text although the line is canonical. */
static int zero_led(sip_str s) {
  return s.p && s.len > 1 && s.len <= 18 && s.p[0] == '0';
}

/* The fields of an item line into the current table. */
static void item_fields(const emit *m, const sip_sdp_line *l) {
  switch (l->type) {
  case 'o':
    put_str(m, "username", l->u.o.username);
    put_str(m, "sess_id", l->u.o.sess_id);
    put_str(m, "sess_version", l->u.o.sess_version);
    put_str(m, "nettype", l->u.o.nettype);
    put_str(m, "addrtype", l->u.o.addrtype);
    put_str(m, "address", l->u.o.address);
    break;
  case 'c':
    put_str(m, "nettype", l->u.c.nettype);
    put_str(m, "addrtype", l->u.c.addrtype);
    put_str(m, "address", l->u.c.address);
    break;
  case 'b':
    put_str(m, "type", l->u.b.bwtype);
    put_num(m, "value", l->u.b.bandwidth);
    break;
  case 't':
    put_str(m, "start", l->u.t.start);
    put_str(m, "stop", l->u.t.stop);
    break;
  case 'm': {
    put_str(m, "media", l->u.m.media);
    put_num(m, "port", l->u.m.port);
    put_num(m, "nports", l->u.m.nports);
    put_str(m, "proto", l->u.m.proto);
    open_table(m, "fmts");
    const char *p = l->u.m.fmts.p, *end = p + l->u.m.fmts.len;
    for (sip_str fmt; p && (fmt = sip_sdp_next_token(&p, end)).p;)
      put(m, NULL, SIP_TREE_STR, fmt);
    close_emit(m);
    break;
  }
  case 'a':
    put_str(m, "name", l->u.a.name);
    put_str(m, "value", l->u.a.value);
    return; /* always canonical */
  default:
    break;
  }
  int lost = l->type == 'b'   ? zero_led(l->u.b.bandwidth)
             : l->type == 'm' ? zero_led(l->u.m.port) || zero_led(l->u.m.nports)
                              : 0;
  if (lost || !sip_sdp_line_canonical(l))
    put_str(m, "_raw", l->value);
}

/* The list a run of lines of type goes into (NULL: not a list). */
static const char *list_key(char type, int media) {
  switch (type) {
  case 'e':
    return "emails";
  case 'p':
    return "phones";
  case 'b':
    return "bandwidths";
  case 't':
    return "times";
  case 'a':
    return "attributes";
  case 'c':
    return media ? "connections" : NULL;
  default:
    return NULL;
  }
}

/* Lines [i, end) of one section into the current table. */
static void emit_section(const emit *m, const sip_sdp_line *l, uint32_t i,
                         uint32_t end, int media) {
  while (i < end) {
    char type = l[i].type;
    const char *key = list_key(type, media);
    if (key) {
      open_table(m, key);
      for (; i < end && l[i].type == type; i++) {
        if (type == 'e' || type == 'p') {
          put(m, NULL, SIP_TREE_STR, l[i].value);
          continue;
        }
        open_table(m, NULL);
        item_fields(m, &l[i]);
        if (type == 't' && i + 1 < end && l[i + 1].type == 'r') {
          open_table(m, "repeats");
          for (; i + 1 < end && l[i + 1].type == 'r'; i++)
            put(m, NULL, SIP_TREE_STR, l[i + 1].value);
          close_emit(m);
        }
        close_emit(m);
      }
      close_emit(m);
      continue;
    }
    switch (type) {
    case 'v':
      put_str(m, "version", l[i].value);
      if (!sip_sdp_line_canonical(&l[i]))
        put_str(m, "_raw_version", l[i].value);
      break;
    case 'o':
    case 'c':
      open_table(m, type == 'o' ? "origin" : "connection");
      item_fields(m, &l[i]);
      close_emit(m);
      break;
    case 's':
      put_str(m, "name", l[i].value);
      break;
    case 'i':
      put_str(m, "info", l[i].value);
      break;
    case 'u':
      put_str(m, "uri", l[i].value);
      break;
    case 'k':
      put_str(m, "key", l[i].value);
      break;
    case 'z':
      put_str(m, "zone", l[i].value);
      break;
    default:
      break;
    }
    i++;
  }
}

void sip_sdp_emit(const sip_sdp *sdp, const sip_tree_emitter *e) {
  emit m = {e};
  const sip_sdp_line *l = sdp->lines;
  uint32_t first =
      sdp->first_media < sdp->nlines ? sdp->first_media : sdp->nlines;
  emit_section(&m, l, 0, first, 0);
  if (sdp->lf_only)
    put(&m, "lf", SIP_TREE_TRUE, SIP_STR_NULL);
  if (!sdp->last_eol)
    put(&m, "no_final_eol", SIP_TREE_TRUE, SIP_STR_NULL);
  open_table(&m, "media");
  for (uint32_t i = first; i < sdp->nlines;) {
    uint32_t end = i + 1;
    while (end < sdp->nlines && l[end].type != 'm')
      end++;
    open_table(&m, NULL);
    item_fields(&m, &l[i]);
    emit_section(&m, l, i + 1, end, 1);
    close_emit(&m);
    i = end;
  }
  close_emit(&m);
}
