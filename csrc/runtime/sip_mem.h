/* The runtime's memory policy, below any binding (csrc/lua/loop.c wraps a
 * Lua state's allocator and runs the trim tick; the decisions are here):
 *
 *  - a budget: the bytes a scripting heap may grow to (a limit for the
 *    whole heap, and a handler's budget measured from where the handler was
 *    resumed), so that a script cannot take the whole machine;
 *  - the trim policy: after a peak (100,000 registrations that expired, a
 *    burst of transactions) the live state is small again but the process
 *    keeps its size: a collector that runs only when the script allocates
 *    keeps an idle server's garbage, and glibc keeps what the process freed
 *    in its arenas. A tick once a second (sip_mem_tick) decides:
 *     - when the server is idle (fewer than SIP_MEM_IDLE_CALLS calls into
 *       the script, and its heap changed by less than SIP_MEM_IDLE_KB, since
 *       the last tick) and the script heap grew by half (and 1 MiB) since
 *       the last such collection, a full collection, if the heap is at most
 *       SIP_MEM_FULL_GC_MAX_KB (a few tens of milliseconds, once per
 *       episode; a larger heap is left to the collector's own pace). State
 *       that a peak left behind often dies after that collection and adds
 *       too little to start another one: so after a collection that freed a
 *       quarter of the heap (and 1 MiB), idle ones follow 2, 4, 8... seconds
 *       apart, then every SIP_MEM_GC_GAP_MAX_S seconds (back to 2 after one
 *       that frees a quarter again);
 *     - when the server is idle, and the free part of the C heap is at
 *       least SIP_MEM_TRIM_MIN_FREE and half of what is in use, and either
 *       that much was freed since the lowest point after the last trim, or
 *       what is in use moved by SIP_MEM_TRIM_MOVED since the last trim, the
 *       free pages go back to the system (sip_mem_heap_tick). The second
 *       case matters: the pages freed by a trim still count as free, and
 *       the state that dies after it frees less than SIP_MEM_TRIM_MIN_FREE.
 *       In a steady state freed memory is reused and nothing is trimmed.
 *
 * No Lua, no allocation. Threading: one owner per struct. */
#ifndef SIP_MEM_H
#define SIP_MEM_H

#include <stddef.h>
#include <stdint.h>

/* ---- the budget --------------------------------------------------------- */

/* After the first refusal by a handler's ceiling the ceiling rises this
 * much, once per resume, so that the error can still be handled (a
 * traceback, a log line, the 500). */
#define SIP_MEM_HANDLER_SLACK ((size_t)1 << 20)

typedef struct sip_mem_budget {
  size_t used;           /* bytes counted (sip_mem_account) */
  size_t limit;          /* of the whole heap; 0: none */
  size_t budget;         /* of a handler between two waits; 0: none */
  size_t ceiling;        /* used + budget at the resume; 0 outside */
  int slack_used;        /* the ceiling was raised once for error handling */
  uint64_t ceiling_hits; /* allocations refused by a handler's ceiling */
} sip_mem_budget;

/* May a block grow from old to nsize bytes (shrinking always may)? Returns
 * 1, or 0 when refused: over the limit, or over the handler's ceiling
 * (counted in ceiling_hits; the first such refusal of a resume raises the
 * ceiling to used + SIP_MEM_HANDLER_SLACK). */
int sip_mem_admit(sip_mem_budget *b, size_t old, size_t nsize);

/* A block went from old to nsize bytes (ok: the allocator succeeded; a
 * free, nsize 0, always does). used never goes below 0. */
void sip_mem_account(sip_mem_budget *b, size_t old, size_t nsize, int ok);

/* The limit of the whole heap (0: none). Returns 0, or SIP_EINVAL when
 * more than n bytes are in use already (nothing changed). */
int sip_mem_set_limit(sip_mem_budget *b, size_t n);

/* A handler is resumed: the ceiling before (resumes nest) into *mark and
 * *slack_used, then, with a budget, the ceiling becomes used + budget. */
void sip_mem_enter(sip_mem_budget *b, size_t *mark, int *slack_used);
/* The handler waits or ends: the ceiling of sip_mem_enter's mark again. */
void sip_mem_leave(sip_mem_budget *b, size_t mark, int slack_used);

/* ---- the trim policy ---------------------------------------------------- */

#define SIP_MEM_TICK_MS 1000
#define SIP_MEM_IDLE_CALLS 16 /* calls into the script in a tick */
#define SIP_MEM_IDLE_KB 256
#define SIP_MEM_FULL_GC_MAX_KB ((size_t)64 << 10)
#define SIP_MEM_GC_GAP_MAX_S 32
#define SIP_MEM_TRIM_MIN_FREE ((size_t)8 << 20)
#define SIP_MEM_TRIM_MOVED ((size_t)1 << 20)

typedef struct sip_mem_trim {
  uint64_t calls_at_tick; /* calls into the script at the last tick */
  size_t lua_kb;          /* the script heap at the previous tick */
  size_t lua_full_kb;     /* the script heap after the last idle collection */
  unsigned gc_gap_s;   /* seconds to the next follow-up collection (0: none) */
  unsigned gc_wait_s;  /* seconds waited towards it */
  size_t free_low;     /* the least free C heap seen since the last trim */
  size_t used_at_trim; /* the C heap in use at the last trim */
  uint64_t trims;      /* trims made */
} sip_mem_trim;

/* sip_mem_tick's result bits */
enum {
  SIP_MEM_IDLE = 1,    /* the server is idle: look at the C heap */
  SIP_MEM_FULL_GC = 2, /* collect the script heap fully, then sip_mem_gc_done */
};

/* One tick: calls is the count of calls into the script so far, kb the
 * script heap now (have_kb 0: the heap cannot be read this tick, only the
 * calls decide). Returns SIP_MEM_IDLE and SIP_MEM_FULL_GC bits. */
int sip_mem_tick(sip_mem_trim *t, uint64_t calls, size_t kb, int have_kb);

/* The full collection sip_mem_tick asked for took the heap from before_kb
 * to after_kb. */
void sip_mem_gc_done(sip_mem_trim *t, size_t before_kb, size_t after_kb);

/* The C heap of an idle server: free and used bytes now. Returns 1 when it
 * should be trimmed (then sip_mem_trimmed), else 0. */
int sip_mem_heap_tick(sip_mem_trim *t, size_t avail, size_t used);
/* A trim was made: free_after bytes are free after it, used in use. */
void sip_mem_trimmed(sip_mem_trim *t, size_t free_after, size_t used);

/* The C library's heap: bytes in use (*used: allocated chunks, *mapped:
 * large blocks mapped on their own) and free in its arenas. Returns 0, or
 * SIP_EINVAL when the C library does not tell (all set to 0). */
int sip_mem_heap_info(size_t *used, size_t *mapped, size_t *avail);

/* The C heap part of a tick for an idle server: sip_mem_heap_info, and a
 * trim (malloc_trim) when sip_mem_heap_tick says so. Returns 1 when it
 * trimmed, 0 otherwise. */
int sip_mem_heap_step(sip_mem_trim *t);

#endif
