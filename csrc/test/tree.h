/* A tree of test nodes read through a sip_tree_reader (sip_tree.h), for
 * the C tests of the layers that read a Lua API's table shape (sdp_test,
 * proxy_test): TT(key, ...) a table, TS a string, TN a number >= 0, TX
 * another kind, TE an empty table; key NULL: a list element. The reader
 * counts the tables it opened and closed. temit: an emitter
 * (sip_tree_emitter) that makes such a tree (sdp_test, dialog_test). */
#ifndef LUASIP_TEST_TREE_H
#define LUASIP_TEST_TREE_H

#include <stdlib.h>
#include <string.h>

#include "sip_tree.h"

typedef struct tnode {
  const char *key; /* in an object; NULL in a list */
  int kind;
  const char *s;
  uint64_t n;
  double d;
  const struct tnode *kids;
  size_t nkids;
} tnode;

#define TS(k, v)                                                               \
  { .key = k, .kind = SIP_TREE_STR, .s = v }
#define TN(k, v)                                                               \
  { .key = k, .kind = SIP_TREE_UINT, .n = v }
#define TD(k, v)                                                               \
  { .key = k, .kind = SIP_TREE_NUM, .d = v }
#define TX(k, kd)                                                              \
  { .key = k, .kind = kd }
#define TT(k, ...)                                                             \
  {                                                                            \
    .key = k, .kind = SIP_TREE_TABLE, .kids = (const tnode[]){__VA_ARGS__},    \
    .nkids = sizeof((const tnode[]){__VA_ARGS__}) / sizeof(tnode)              \
  }
#define TE(k)                                                                  \
  { .key = k, .kind = SIP_TREE_TABLE }

typedef struct treader {
  const tnode *stack[16];
  int top, opens, closes;
  char *kept[16]; /* t_keep's copies (treader_free) */
  int nkept;
} treader;

static inline void t_get(void *ud, const char *key, size_t i, sip_tree_val *v) {
  treader *r = ud;
  const tnode *t = r->stack[r->top], *x = NULL;
  if (key) {
    for (size_t j = 0; j < t->nkids; j++)
      if (t->kids[j].key && !strcmp(t->kids[j].key, key))
        x = &t->kids[j];
  } else if (i >= 1 && i <= t->nkids && !t->kids[i - 1].key) {
    x = &t->kids[i - 1];
  }
  if (!x)
    return; /* nil */
  v->kind = x->kind;
  v->n = x->n;
  v->d = x->kind == SIP_TREE_UINT ? (double)x->n : x->d;
  if (x->s)
    v->s = (sip_str){x->s, strlen(x->s)};
  if (x->kind == SIP_TREE_TABLE) {
    size_t len = 0; /* the list part: elements without a key */
    while (len < x->nkids && !x->kids[len].key)
      len++;
    v->len = len;
    r->stack[++r->top] = x;
    r->opens++;
  }
}

static inline void t_close(void *ud) {
  treader *r = ud;
  r->top--;
  r->closes++;
}

static inline sip_str t_keep(void *ud, const char *p, size_t len) {
  treader *r = ud;
  char *c = malloc(len + 1);
  if (!c || r->nkept == 16)
    abort();
  memcpy(c, p, len);
  c[len] = 0;
  r->kept[r->nkept++] = c;
  return (sip_str){c, len};
}

/* A reader of root into *rd (r: its state). */
static inline void treader_init(treader *r, sip_tree_reader *rd,
                                const tnode *root) {
  memset(r, 0, sizeof *r);
  r->stack[0] = root;
  *rd = (sip_tree_reader){r, t_get, t_close, t_keep};
}

static inline void treader_free(treader *r) {
  for (int i = 0; i < r->nkept; i++)
    free(r->kept[i]);
  r->nkept = 0;
}

/* An emitter that builds tnodes (kids malloc'd); the stack holds the open
 * tables (a table's kids grow only while it is the top). */
typedef struct temit {
  tnode root;
  tnode *stack[16];
  int top, opens, closes;
} temit;

static inline void e_put(void *ud, const char *key, const sip_tree_val *v) {
  temit *e = ud;
  tnode *t = e->stack[e->top];
  tnode *kids = realloc((void *)t->kids, (t->nkids + 1) * sizeof *kids);
  if (!kids)
    abort();
  tnode *x = &kids[t->nkids];
  memset(x, 0, sizeof *x);
  x->key = key;
  x->kind = v->kind;
  x->n = v->n;
  if (v->kind == SIP_TREE_STR) {
    char *s = malloc(v->s.len + 1);
    memcpy(s, v->s.p, v->s.len);
    s[v->s.len] = 0;
    x->s = s;
  }
  t->kids = kids;
  t->nkids++;
  if (v->kind == SIP_TREE_TABLE) {
    e->stack[++e->top] = x;
    e->opens++;
  }
}

static inline void e_close(void *ud) {
  temit *e = ud;
  e->top--;
  e->closes++;
}

/* An empty root table, the emitter's current one, and em over e. */
static inline void temit_init(temit *e, sip_tree_emitter *em) {
  memset(e, 0, sizeof *e);
  e->root.kind = SIP_TREE_TABLE;
  e->stack[0] = &e->root;
  *em = (sip_tree_emitter){e, e_put, e_close};
}

static inline void tnode_free(tnode *t) {
  for (size_t i = 0; i < t->nkids; i++)
    tnode_free((tnode *)&t->kids[i]);
  free((void *)t->kids);
  free((void *)t->s);
}

static inline const tnode *tfield(const tnode *t, const char *key) {
  for (size_t i = 0; t && i < t->nkids; i++)
    if (t->kids[i].key && !strcmp(t->kids[i].key, key))
      return &t->kids[i];
  return NULL;
}

#endif
