/* The per-message bump allocator and small slice helpers. */
#include <stdlib.h>
#include <string.h>

#include "sip_scan.h"
#include "sip_types.h"

struct sip_arena_chunk {
  sip_arena_chunk *next;
  size_t size;
  /* data follows, 8-byte aligned because the header is 16 bytes */
};

/* Grows geometrically so a message with many decoded fields needs few
 * mallocs, but a typical one needs none beyond the inline block. */
#define ARENA_MIN_CHUNK 2048

void sip_arena_init(sip_arena *a, void *first, size_t first_size) {
  a->chunks = NULL;
  if (first && first_size) {
    a->cur = first;
    a->end = (char *)first + first_size;
  } else {
    a->cur = a->end = NULL;
  }
}

void *sip_arena_alloc(sip_arena *a, size_t size) {
  size = (size + 7u) & ~(size_t)7u;
  if (a->cur && (size_t)(a->end - a->cur) >= size) {
    void *p = a->cur;
    a->cur += size;
    return p;
  }
  size_t want = a->chunks ? a->chunks->size * 2 : ARENA_MIN_CHUNK;
  if (want < size)
    want = size;
  sip_arena_chunk *c = malloc(sizeof(*c) + want);
  if (!c)
    return NULL;
  c->next = a->chunks;
  c->size = want;
  a->chunks = c;
  char *data = (char *)(c + 1);
  a->cur = data + size;
  a->end = data + want;
  return data;
}

char *sip_arena_strndup(sip_arena *a, const char *p, size_t len) {
  char *d = sip_arena_alloc(a, len + 1);
  if (!d)
    return NULL;
  if (len)
    memcpy(d, p, len);
  d[len] = '\0';
  return d;
}

void sip_arena_free(sip_arena *a) {
  sip_arena_chunk *c = a->chunks;
  while (c) {
    sip_arena_chunk *next = c->next;
    free(c);
    c = next;
  }
  a->chunks = NULL;
  a->cur = a->end = NULL;
}

int sip_str_ieq(sip_str a, sip_str b) {
  if (a.len != b.len)
    return 0;
  for (size_t i = 0; i < a.len; i++)
    if (sip__lower(a.p[i]) != sip__lower(b.p[i]))
      return 0;
  return 1;
}

int sip_str_ieq_cstr(sip_str a, const char *s) {
  size_t i = 0;
  for (; i < a.len; i++) {
    if (s[i] == '\0' || sip__lower(a.p[i]) != sip__lower(s[i]))
      return 0;
  }
  return s[i] == '\0';
}

const sip_param *sip_params_get(const sip_params *ps, const char *name) {
  for (uint32_t i = 0; i < ps->n; i++)
    if (sip_str_ieq_cstr(ps->v[i].name, name))
      return &ps->v[i];
  return NULL;
}
