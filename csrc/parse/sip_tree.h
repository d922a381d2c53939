/* A tree of values (a Lua table, a test's nodes) seen from C through
 * callbacks, so that a C layer can read or make the table shape of a Lua
 * API (the SDP tables of luasip.sdp, a proxy's targets) and the binding
 * only moves values: sip_sdp_build / sip_sdp_emit, sip_proxy_read_target.
 * No Lua here: the bindings implement the callbacks (csrc/lua/ltree.c). */
#ifndef SIP_TREE_H
#define SIP_TREE_H

#include <stddef.h>
#include <stdint.h>

#include "sip_types.h"

enum sip_tree_kind {
  SIP_TREE_NIL = 0, /* absent */
  SIP_TREE_STR,     /* s (the reader keeps its bytes alive as long as the
                       tree) */
  SIP_TREE_UINT,    /* n: an integer >= 0 (d too) */
  SIP_TREE_FALSE,   /* false: the one value besides nil that is not true */
  SIP_TREE_TRUE,    /* true */
  SIP_TREE_TABLE,   /* an object or a list of len elements: it becomes the
                       reader's current table until close */
  SIP_TREE_NUM,     /* d: any other number (negative, fractional) */
  SIP_TREE_OTHER,   /* anything else (a function, a userdata...) */
};

typedef struct sip_tree_val {
  int kind; /* enum sip_tree_kind */
  sip_str s;
  uint64_t n;
  double d;
  size_t len;
} sip_tree_val;

/* A tree, seen from its current table (at first the root). get: the field
 * key of the current table (key NULL: its element i, 1-based) into *v
 * (zeroed by the caller); a TABLE value becomes the current table, and
 * close returns to the one before. get never fails. keep (may be NULL
 * when the reader's user needs none): bytes the caller made (a joined
 * list), copied and kept alive as long as the tree. */
typedef struct sip_tree_reader {
  void *ud;
  void (*get)(void *ud, const char *key, size_t i, sip_tree_val *v);
  void (*close)(void *ud);
  sip_str (*keep)(void *ud, const char *p, size_t len);
} sip_tree_reader;

/* The other way, a tree made from C. put: v (STR, UINT, TRUE; TABLE: a new
 * empty table, the current one until close) as the field key of the
 * current table (at first the root), or appended to it as a list element
 * (key NULL). */
typedef struct sip_tree_emitter {
  void *ud;
  void (*put)(void *ud, const char *key, const sip_tree_val *v);
  void (*close)(void *ud);
} sip_tree_emitter;

/* Zeroes *v, then reads field k of the current table of r (k NULL: its
 * element i) into it, as r->get does. */
void sip_tree_get(const sip_tree_reader *r, const char *k, size_t i,
                  sip_tree_val *v);

/* The number v holds: a UINT or NUM value's d, or a string that is a
 * number as a whole (strtod's syntax, at most 63 bytes: a setting written
 * as text). Returns 0 (*out set) or SIP_EINVAL (anything else). */
int sip_tree_number(const sip_tree_val *v, double *out);

/* The len elements of the current table of r (a list, just read as a TABLE
 * value; the caller closes it) joined with sep, into *out: a malloc'd,
 * NUL-terminated buffer of *n bytes, for the caller to free. An element
 * that is a table is closed. An element that is not a string counts as
 * empty, or, when strict, makes the call fail. Returns 0 (*out set),
 * SIP_EINVAL (strict, an element not a string; *out NULL) or SIP_ENOMEM. */
int sip_tree_join(const sip_tree_reader *r, size_t len, const char *sep,
                  int strict, char **out, size_t *n);

/* A named counter, for sip_tree_put_counters. */
typedef struct sip_tree_counter {
  const char *name;
  uint64_t v;
} sip_tree_counter;

/* Puts the n counters c[i] into the current table of e, each as the UINT
 * field c[i].name (a stats call's table shape). Returns nothing: put
 * cannot fail. */
void sip_tree_put_counters(const sip_tree_emitter *e, const sip_tree_counter *c,
                           size_t n);

#endif
