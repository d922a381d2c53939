/* A tree of test nodes read through a sip_tree_reader (sip_tree.h), for
 * the C tests of the layers that read a Lua API's table shape (sdp_test,
 * proxy_test): TT(key, ...) a table, TS a string, TN a number >= 0, TX
 * another kind, TE an empty table; key NULL: a list element. The reader
 * counts the tables it opened and closed. */
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

static void t_get(void *ud, const char *key, size_t i, sip_tree_val *v) {
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

static void t_close(void *ud) {
  treader *r = ud;
  r->top--;
  r->closes++;
}

static sip_str t_keep(void *ud, const char *p, size_t len) {
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
static void treader_init(treader *r, sip_tree_reader *rd, const tnode *root) {
  memset(r, 0, sizeof *r);
  r->stack[0] = root;
  *rd = (sip_tree_reader){r, t_get, t_close, t_keep};
}

static void treader_free(treader *r) {
  for (int i = 0; i < r->nkept; i++)
    free(r->kept[i]);
  r->nkept = 0;
}

#endif
