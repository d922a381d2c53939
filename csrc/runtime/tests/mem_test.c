/* The runtime's memory policy (csrc/runtime/sip_mem.h): the budget's
 * admission and accounting (limit, handler ceiling with its one slack,
 * nesting), the idle / full-collection decisions of the trim tick with the
 * follow-up gaps, and the C heap trim decision; then one real heap step. */
#include <stdlib.h>

#include "sip_error.h"
#include "sip_mem.h"
#include "test/check.h"

#define MiB ((size_t)1 << 20)

static void test_limit(void) {
  sip_mem_budget b = {0};
  CHECK_INT(sip_mem_admit(&b, 0, 100 * MiB), 1); /* no limit */
  sip_mem_account(&b, 0, 1000, 1);
  CHECK_INT(b.used, 1000);
  CHECK_INT(sip_mem_set_limit(&b, 999), SIP_EINVAL); /* below what is used */
  CHECK_INT(b.limit, 0);
  CHECK_INT(sip_mem_set_limit(&b, 2000), 0);
  CHECK_INT(sip_mem_admit(&b, 0, 1000), 1);   /* exactly the limit */
  CHECK_INT(sip_mem_admit(&b, 0, 1001), 0);   /* one byte over */
  CHECK_INT(sip_mem_admit(&b, 500, 1500), 1); /* growth counts, not size */
  CHECK_INT(sip_mem_admit(&b, 5000, 10), 1);  /* shrinking always may */
  CHECK_INT(b.ceiling_hits, 0);               /* the limit is not a ceiling */
  sip_mem_account(&b, 0, 500, 0);             /* a failed allocation */
  CHECK_INT(b.used, 1000);
  sip_mem_account(&b, 400, 0, 0); /* a free always succeeds */
  CHECK_INT(b.used, 600);
  sip_mem_account(&b, 5000, 0, 1); /* never below 0 */
  CHECK_INT(b.used, 0);
  CHECK_INT(sip_mem_set_limit(&b, 0), 0);
  CHECK_INT(b.limit, 0);
}

static void test_handler_budget(void) {
  sip_mem_budget b = {0};
  size_t mark;
  int slack;
  sip_mem_account(&b, 0, 10 * MiB, 1);
  sip_mem_enter(&b, &mark, &slack); /* no budget: no ceiling */
  CHECK_INT(b.ceiling, 0);
  CHECK_INT(sip_mem_admit(&b, 0, 100 * MiB), 1);
  sip_mem_leave(&b, mark, slack);

  b.budget = 2 * MiB;
  sip_mem_enter(&b, &mark, &slack);
  CHECK_INT(mark, 0);
  CHECK_INT(b.ceiling, 12 * MiB);
  CHECK_INT(sip_mem_admit(&b, 0, 2 * MiB), 1);
  CHECK_INT(sip_mem_admit(&b, 0, 2 * MiB + 1), 0); /* refused, counted */
  CHECK_INT(b.ceiling_hits, 1);
  CHECK_INT(b.slack_used, 1);
  CHECK_INT(b.ceiling, 11 * MiB); /* used + the slack, once */
  CHECK_INT(sip_mem_admit(&b, 0, MiB), 1);
  CHECK_INT(sip_mem_admit(&b, 0, MiB + 1), 0);
  CHECK_INT(b.ceiling, 11 * MiB); /* not raised twice */
  CHECK_INT(b.ceiling_hits, 2);

  /* a nested resume starts from what is used then, and gives the outer
   * ceiling back when it leaves */
  size_t mark2;
  int slack2;
  sip_mem_account(&b, 0, MiB, 1);
  sip_mem_enter(&b, &mark2, &slack2);
  CHECK_INT(mark2, 11 * MiB);
  CHECK_INT(slack2, 1);
  CHECK_INT(b.ceiling, 13 * MiB);
  CHECK_INT(b.slack_used, 0);
  sip_mem_leave(&b, mark2, slack2);
  CHECK_INT(b.ceiling, 11 * MiB);
  CHECK_INT(b.slack_used, 1);
  sip_mem_leave(&b, mark, slack);
  CHECK_INT(b.ceiling, 0);
  CHECK_INT(sip_mem_admit(&b, 0, 100 * MiB), 1);
}

static void test_tick(void) {
  sip_mem_trim t = {0};
  /* busy: many calls into the script */
  CHECK_INT(sip_mem_tick(&t, 100, 5000, 1), 0);
  /* idle, but the heap moved by 256 KB or more since the last tick */
  CHECK_INT(sip_mem_tick(&t, 110, 5000 + SIP_MEM_IDLE_KB, 1), 0);
  /* idle, the heap grew by half and 1 MiB since the last collection (0):
   * a full collection */
  CHECK_INT(sip_mem_tick(&t, 111, 5000 + SIP_MEM_IDLE_KB, 1),
            SIP_MEM_IDLE | SIP_MEM_FULL_GC);
  /* it freed a quarter and 1 MiB: follow-ups 2, 4, 8 s apart */
  sip_mem_gc_done(&t, 5256, 2000);
  CHECK_INT(t.lua_full_kb, 2000);
  CHECK_INT(t.gc_gap_s, 2);
  CHECK_INT(sip_mem_tick(&t, 111, 2000, 1), SIP_MEM_IDLE);
  CHECK_INT(sip_mem_tick(&t, 111, 2000, 1), SIP_MEM_IDLE | SIP_MEM_FULL_GC);
  sip_mem_gc_done(&t, 2000, 1990); /* freed little: the gap doubles */
  CHECK_INT(t.gc_gap_s, 4);
  for (int i = 0; i < 3; i++)
    CHECK_INT(sip_mem_tick(&t, 111, 1990, 1), SIP_MEM_IDLE);
  CHECK_INT(sip_mem_tick(&t, 111, 1990, 1), SIP_MEM_IDLE | SIP_MEM_FULL_GC);
  for (unsigned gap = 4; gap < SIP_MEM_GC_GAP_MAX_S; gap *= 2)
    sip_mem_gc_done(&t, 1990, 1990);
  CHECK_INT(t.gc_gap_s, SIP_MEM_GC_GAP_MAX_S);
  sip_mem_gc_done(&t, 1990, 1990);
  CHECK_INT(t.gc_gap_s, SIP_MEM_GC_GAP_MAX_S); /* stays at the maximum */
  sip_mem_gc_done(&t, 8000, 1990);             /* a quarter again: back to 2 */
  CHECK_INT(t.gc_gap_s, 2);

  /* a heap above the maximum is left to the collector's own pace */
  sip_mem_trim u = {0};
  CHECK_INT(sip_mem_tick(&u, 0, SIP_MEM_FULL_GC_MAX_KB + 1, 1), 0);
  CHECK_INT(sip_mem_tick(&u, 0, SIP_MEM_FULL_GC_MAX_KB + 1, 1), SIP_MEM_IDLE);
  CHECK_INT(sip_mem_tick(&u, 0, SIP_MEM_FULL_GC_MAX_KB, 1),
            SIP_MEM_IDLE | SIP_MEM_FULL_GC);
  /* without the script heap, only the calls decide */
  CHECK_INT(sip_mem_tick(&u, SIP_MEM_IDLE_CALLS - 1, 0, 0), SIP_MEM_IDLE);
  CHECK_INT(sip_mem_tick(&u, 2 * SIP_MEM_IDLE_CALLS - 1, 0, 0), 0);
  CHECK_INT(u.lua_kb, SIP_MEM_FULL_GC_MAX_KB); /* unchanged */
}

static void test_heap(void) {
  sip_mem_trim t = {0};
  size_t F = SIP_MEM_TRIM_MIN_FREE;
  CHECK_INT(sip_mem_heap_tick(&t, F - 1, 0), 0);     /* too little free */
  CHECK_INT(sip_mem_heap_tick(&t, F, 2 * F + 2), 0); /* under half in use */
  CHECK_INT(sip_mem_heap_tick(&t, F, 2 * F), 1);
  sip_mem_trimmed(&t, MiB, 2 * F);
  CHECK_INT(t.trims, 1);
  CHECK_INT(t.free_low, MiB);
  /* not freed enough since the low point, in use did not move */
  CHECK_INT(sip_mem_heap_tick(&t, F + MiB - 1, 2 * F), 0);
  CHECK_INT(sip_mem_heap_tick(&t, F + MiB, 2 * F), 1);
  /* the low point follows the free bytes down */
  CHECK_INT(sip_mem_heap_tick(&t, 0, 2 * F), 0);
  CHECK_INT(t.free_low, 0);
  /* what is in use moved by 1 MiB since the trim: trimmed even though not
   * enough was freed since the low point */
  sip_mem_trimmed(&t, F, 2 * F);
  CHECK_INT(sip_mem_heap_tick(&t, F, 2 * F - SIP_MEM_TRIM_MOVED + 1), 0);
  CHECK_INT(sip_mem_heap_tick(&t, F, 2 * F - SIP_MEM_TRIM_MOVED), 1);

  /* the real C heap: readable (glibc), and a step trims at most once */
  size_t used, mapped, avail;
  int rc = sip_mem_heap_info(&used, &mapped, &avail);
  CHECK(rc == 0 || rc == SIP_EINVAL);
  sip_mem_trim s = {0};
  int trimmed = sip_mem_heap_step(&s);
  CHECK_INT((uint64_t)trimmed, s.trims);
}

int main(void) {
  test_limit();
  test_handler_budget();
  test_tick();
  test_heap();
  return check_summary("test_mem");
}
