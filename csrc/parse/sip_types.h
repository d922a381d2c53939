/* Basic types of the parser: slices, the per-message arena, parameters. */
#ifndef SIP_TYPES_H
#define SIP_TYPES_H

#include <stddef.h>
#include <stdint.h>

#include "sip_error.h"

/* A slice of bytes. In a parsed message it points into the message's receive
 * buffer (or, for decoded or edited values, into the message's arena). Not
 * NUL-terminated. An absent value is { NULL, 0 }; a present but empty one has
 * p != NULL and len == 0. */
typedef struct sip_str {
  const char *p;
  size_t len;
} sip_str;

#define SIP_STR_NULL ((sip_str){NULL, 0})
#define SIP_STR_LIT(s) ((sip_str){(s), sizeof(s) - 1})

/* Bump allocator: everything a message decodes or edits lives here and is
 * freed at once with the message. An optional first block (inline in the
 * owner) means small messages never call malloc. */
typedef struct sip_arena_chunk sip_arena_chunk;
typedef struct sip_arena {
  char *cur;
  char *end;
  sip_arena_chunk *chunks; /* malloc'd blocks, newest first */
} sip_arena;

/* first/first_size may be NULL/0. Never fails. */
void sip_arena_init(sip_arena *a, void *first, size_t first_size);
/* Aligned to 8 bytes; NULL when out of memory. */
void *sip_arena_alloc(sip_arena *a, size_t size);
/* Copy of p[0..len) with a NUL after it; NULL when out of memory. */
char *sip_arena_strndup(sip_arena *a, const char *p, size_t len);
/* Frees the malloc'd blocks; the arena is empty (re-initialised) after it. */
void sip_arena_free(sip_arena *a);

/* One ";name=value" parameter (URI, header or auth parameter).
 *   name   as written
 *   value  as written (quotes and %HH kept); absent ({NULL,0}) for a bare name
 *   dec    the value decoded once: quotes and quoted-pairs removed for a
 *          quoted-string, %HH decoded for URI parameters; equal to value
 *          (same pointer) when nothing needed decoding
 * For URI parameters the name is %HH-decoded into name, and the raw form is
 * still available from the owner's params_raw slice. */
typedef struct sip_param {
  sip_str name;
  sip_str value;
  sip_str dec;
} sip_param;

typedef struct sip_params {
  sip_param *v; /* arena array of n entries */
  uint32_t n;
} sip_params;

/* Case-insensitive lookup by name; NULL when absent. */
const sip_param *sip_params_get(const sip_params *ps, const char *name);

/* Case-insensitive comparison helpers (ASCII only, no locale). */
int sip_str_ieq(sip_str a, sip_str b);
int sip_str_ieq_cstr(sip_str a, const char *s);

#endif
