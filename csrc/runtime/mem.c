/* The runtime's memory policy: see sip_mem.h. */
#include <string.h>
#if defined(__GLIBC__)
#include <malloc.h>
#if __GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33)
#define HAVE_MALLINFO2 1
#endif
#endif

#include "sip_error.h"
#include "sip_mem.h"

/* ---- the budget --------------------------------------------------------- */

int sip_mem_admit(sip_mem_budget *b, size_t old, size_t nsize) {
  if (nsize <= old)
    return 1;
  size_t grow = nsize - old;
  if (b->limit && b->used + grow > b->limit)
    return 0;
  if (b->ceiling && b->used + grow > b->ceiling) {
    b->ceiling_hits++;
    if (!b->slack_used) {
      b->slack_used = 1;
      b->ceiling = b->used + SIP_MEM_HANDLER_SLACK;
    }
    return 0;
  }
  return 1;
}

void sip_mem_account(sip_mem_budget *b, size_t old, size_t nsize, int ok) {
  if (nsize != 0 && !ok)
    return;
  b->used = b->used + nsize >= old ? b->used + nsize - old : 0;
}

int sip_mem_set_limit(sip_mem_budget *b, size_t n) {
  if (n > 0 && n < b->used)
    return SIP_EINVAL;
  b->limit = n;
  return 0;
}

void sip_mem_enter(sip_mem_budget *b, size_t *mark, int *slack_used) {
  *mark = b->ceiling;
  *slack_used = b->slack_used;
  if (b->budget) {
    b->ceiling = b->used + b->budget;
    b->slack_used = 0;
  }
}

void sip_mem_leave(sip_mem_budget *b, size_t mark, int slack_used) {
  b->ceiling = mark;
  b->slack_used = slack_used;
}

/* ---- the trim policy ---------------------------------------------------- */

static size_t distance(size_t a, size_t b) { return a > b ? a - b : b - a; }

int sip_mem_tick(sip_mem_trim *t, uint64_t calls, size_t kb, int have_kb) {
  int idle = calls - t->calls_at_tick < SIP_MEM_IDLE_CALLS;
  t->calls_at_tick = calls;
  if (!have_kb)
    return idle ? SIP_MEM_IDLE : 0;
  idle = idle && distance(kb, t->lua_kb) < SIP_MEM_IDLE_KB;
  int grew = kb > t->lua_full_kb + t->lua_full_kb / 2 + 1024;
  int follow_up = t->gc_gap_s && ++t->gc_wait_s >= t->gc_gap_s;
  t->lua_kb = kb;
  if (idle && kb <= SIP_MEM_FULL_GC_MAX_KB && (grew || follow_up))
    return SIP_MEM_IDLE | SIP_MEM_FULL_GC;
  return idle ? SIP_MEM_IDLE : 0;
}

void sip_mem_gc_done(sip_mem_trim *t, size_t before_kb, size_t after_kb) {
  t->lua_full_kb = after_kb;
  t->lua_kb = after_kb;
  t->gc_wait_s = 0;
  if (before_kb > after_kb + 1024 && before_kb - after_kb >= before_kb / 4)
    t->gc_gap_s = 2;
  else if (t->gc_gap_s)
    t->gc_gap_s = t->gc_gap_s < SIP_MEM_GC_GAP_MAX_S / 2 ? t->gc_gap_s * 2
                                                         : SIP_MEM_GC_GAP_MAX_S;
}

int sip_mem_heap_tick(sip_mem_trim *t, size_t avail, size_t used) {
  if (avail < t->free_low)
    t->free_low = avail;
  return avail >= SIP_MEM_TRIM_MIN_FREE && avail >= used / 2 &&
         (avail >= t->free_low + SIP_MEM_TRIM_MIN_FREE ||
          distance(used, t->used_at_trim) >= SIP_MEM_TRIM_MOVED);
}

void sip_mem_trimmed(sip_mem_trim *t, size_t free_after, size_t used) {
  t->trims++;
  t->free_low = free_after;
  t->used_at_trim = used;
}

int sip_mem_heap_info(size_t *used, size_t *mapped, size_t *avail) {
#ifdef HAVE_MALLINFO2
  /* mallinfo2 walks every free chunk of the heap: under load that is
   * milliseconds a call, so callers look only when the server is idle */
  struct mallinfo2 mi = mallinfo2();
  *used = mi.uordblks;
  *mapped = mi.hblkhd;
  *avail = mi.fordblks;
  return 0;
#else
  *used = *mapped = *avail = 0;
  return SIP_EINVAL;
#endif
}

int sip_mem_heap_step(sip_mem_trim *t) {
  size_t used, mapped, avail;
  if (sip_mem_heap_info(&used, &mapped, &avail) < 0 ||
      !sip_mem_heap_tick(t, avail, used))
    return 0;
#ifdef HAVE_MALLINFO2
  malloc_trim(0);
#endif
  size_t used2, free2;
  sip_mem_heap_info(&used2, &mapped, &free2);
  sip_mem_trimmed(t, free2, used);
  return 1;
}
