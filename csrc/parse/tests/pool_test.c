/* sip_pool: the sip_msg free list and the slot pool behind core.parse. */
#include <stdlib.h>
#include <string.h>

#include "sip_pool.h"
#include "test/check.h"

/* the owner's view of which taken slots still have a live message */
static unsigned char alive[4 * SIP_SLOT_KEEP];
static int asked;

static int live(void *ctx, uint32_t i) {
  (void)ctx;
  asked++;
  return alive[i];
}

static const char MSG[] = "OPTIONS sip:a@b SIP/2.0\r\nCall-ID: x\r\n\r\n";

/* claim, grow when told, hand to a "message" (TAKEN + alive) */
static uint32_t take(sip_slot_pool *p) {
  uint32_t i = 0;
  int rc;
  while ((rc = sip_slot_claim(p, live, NULL, &i)) == 0) {
    uint32_t cap = p->cap * 2;
    sip_msg_slot *slab = malloc(cap * sizeof(*slab));
    sip_msg_slot *old = p->slot;
    sip_slot_grow(p, slab, cap);
    free(old);
  }
  CHECK_INT(rc, 1);
  CHECK_INT(p->slot[i].state, SIP_SLOT_CLAIMED);
  CHECK(p->slot[i].m != NULL);
  p->slot[i].state = SIP_SLOT_TAKEN;
  alive[i] = 1;
  return i;
}

static void test_free_list(void) {
  sip_msg *a = sip_msg_new();
  CHECK(a != NULL);
  CHECK_INT(sip_msg_parse(a, MSG, strlen(MSG), SIP_MODE_DATAGRAM),
            (int)strlen(MSG));
  sip_msg_delete(a);
  /* the same one comes back, empty and parseable */
  sip_msg *b = sip_msg_new();
  CHECK(b == a);
  CHECK_INT(b->nhdr, 0);
  CHECK_INT(sip_msg_parse(b, MSG, strlen(MSG), SIP_MODE_DATAGRAM),
            (int)strlen(MSG));
  sip_msg_delete(b);
  /* more than the list keeps: the rest are freed (valgrind: no leak) */
  enum { N = 100 };
  sip_msg *ms[N];
  for (int i = 0; i < N; i++)
    CHECK((ms[i] = sip_msg_new()) != NULL);
  for (int i = 0; i < N; i++)
    sip_msg_delete(ms[i]);
}

static void test_slots(void) {
  sip_slot_pool p;
  sip_slot_init(&p, malloc(4 * sizeof(sip_msg_slot)), 4);
  memset(alive, 0, sizeof alive);
  uint32_t a = take(&p), b = take(&p);
  CHECK_INT(a, 0);
  CHECK_INT(b, 1);
  uint32_t ga = p.slot[a].gen;
  CHECK(sip_slot_valid(&p, a, ga));
  /* a release frees the arena and moves the generation on */
  CHECK_INT(sip_msg_parse(p.slot[a].m, MSG, strlen(MSG), SIP_MODE_DATAGRAM),
            (int)strlen(MSG));
  sip_slot_release(&p, a, ga);
  CHECK(!sip_slot_valid(&p, a, ga));
  CHECK_INT(p.slot[a].state, SIP_SLOT_FREE);
  CHECK(p.slot[a].m != NULL && p.slot[a].m->arena.chunks == NULL);
  /* a stale release does nothing */
  uint32_t g2 = p.slot[a].gen;
  sip_slot_release(&p, a, ga);
  CHECK_INT(p.slot[a].gen, g2);
  alive[a] = 0;
  /* a collected message's slot (live says 0) is taken again; live ones
   * are not */
  alive[b] = 0;
  uint32_t c = take(&p);
  CHECK(c == a || c == b);
  CHECK(p.slot[c].gen > 0);
  /* a CLAIMED slot is busy without asking the owner */
  uint32_t d;
  CHECK_INT(sip_slot_claim(&p, live, NULL, &d), 1);
  CHECK(d != c);
  asked = 0;
  uint32_t e = take(&p);
  CHECK(e != c && e != d);
  p.slot[d].state = SIP_SLOT_TAKEN;
  alive[d] = 1;
  /* all live: the pool grows past its array */
  for (int k = 0; k < 10; k++)
    take(&p);
  CHECK(p.n >= 13);
  CHECK(p.cap >= p.n);
  for (uint32_t i = 0; i < p.n; i++)
    CHECK_INT(p.slot[i].state, SIP_SLOT_TAKEN);
  sip_slot_finalize(&p);
  CHECK(p.finalized);
  for (uint32_t i = 0; i < p.n; i++)
    CHECK(p.slot[i].m == NULL && p.slot[i].state == SIP_SLOT_FREE);
  sip_slot_finalize(&p); /* twice is safe */
  free(p.slot);
}

/* A burst past SIP_SLOT_KEEP: after a round the slots beyond it give their
 * sip_msg back, and the search range comes back to SIP_SLOT_KEEP. */
static void test_trim(void) {
  sip_slot_pool p;
  sip_slot_init(&p, malloc(64 * sizeof(sip_msg_slot)), 64);
  memset(alive, 0, sizeof alive);
  uint32_t n = SIP_SLOT_KEEP + 100;
  for (uint32_t k = 0; k < n; k++)
    take(&p);
  CHECK_INT(p.n, n);
  /* the burst dies */
  memset(alive, 0, sizeof alive);
  for (uint32_t k = 0; k < 3 * n; k++) {
    uint32_t i = take(&p);
    alive[i] = 0;
  }
  CHECK_INT(p.lim, SIP_SLOT_KEEP);
  int kept = 0;
  for (uint32_t i = SIP_SLOT_KEEP; i < p.n; i++)
    kept += p.slot[i].m != NULL;
  CHECK_MSG(kept == 0, "%d slots past SIP_SLOT_KEEP kept their sip_msg", kept);
  CHECK_INT(p.n, n); /* the slots stay, without memory */
  sip_slot_finalize(&p);
  free(p.slot);
}

int main(void) {
  test_free_list();
  test_slots();
  test_trim();
  return check_summary("pool_test");
}
