/* The sip_msg free list and the slot pool (sip_pool.h). */
#include <stdlib.h>

#include "sip_pool.h"

#define MSG_POOL_MAX 64
static _Thread_local sip_msg *msg_pool[MSG_POOL_MAX];
static _Thread_local int msg_pool_n;

sip_msg *sip_msg_new(void) {
  if (msg_pool_n > 0)
    return msg_pool[--msg_pool_n];
  sip_msg *m = malloc(sizeof(*m));
  if (m) {
    m->arena.chunks = NULL; /* sip_msg_init frees nothing on a fresh one */
    sip_msg_init(m, NULL);
  }
  return m;
}

void sip_msg_delete(sip_msg *m) {
  sip_msg_free(m);
  if (msg_pool_n < MSG_POOL_MAX)
    msg_pool[msg_pool_n++] = m;
  else
    free(m);
}

void sip_slot_init(sip_slot_pool *p, sip_msg_slot *slab, uint32_t cap) {
  *p = (sip_slot_pool){.slot = slab, .cap = cap};
}

static int slot_busy(sip_slot_pool *p, uint32_t i, sip_slot_live_fn live,
                     void *ctx) {
  sip_msg_slot *s = &p->slot[i];
  if (s->state != SIP_SLOT_TAKEN)
    return s->state == SIP_SLOT_CLAIMED;
  if (live(ctx, i))
    return 1;
  s->state = SIP_SLOT_FREE; /* its message died */
  return 0;
}

/* the end of a round past SIP_SLOT_KEEP slots */
static void slot_trim(sip_slot_pool *p, sip_slot_live_fn live, void *ctx) {
  for (uint32_t i = SIP_SLOT_KEEP; i < p->n; i++) {
    sip_msg_slot *s = &p->slot[i];
    if (s->m && !slot_busy(p, i, live, ctx)) {
      sip_msg_delete(s->m);
      s->m = NULL;
    }
  }
  p->lim = SIP_SLOT_KEEP;
  if (p->next >= p->lim)
    p->next = 0;
  p->taken = 0;
}

static int slot_take(sip_slot_pool *p, uint32_t i, uint32_t *idx) {
  sip_msg_slot *s = &p->slot[i];
  p->taken++;
  if (!s->m && !(s->m = sip_msg_new())) {
    s->state = SIP_SLOT_FREE;
    return SIP_ENOMEM;
  }
  s->state = SIP_SLOT_CLAIMED;
  s->gen++;
  *idx = i;
  return 1;
}

int sip_slot_claim(sip_slot_pool *p, sip_slot_live_fn live, void *ctx,
                   uint32_t *idx) {
  if (p->taken >= p->lim && p->n > SIP_SLOT_KEEP)
    slot_trim(p, live, ctx);
  for (int k = 0; k < SIP_SLOT_PROBES && p->lim; k++) {
    uint32_t i = p->next;
    p->next = i + 1 < p->lim ? i + 1 : 0;
    if (!slot_busy(p, i, live, ctx))
      return slot_take(p, i, idx);
  }
  while (p->lim < p->n) { /* slots a trim left out */
    uint32_t i = p->lim++;
    if (!slot_busy(p, i, live, ctx))
      return slot_take(p, i, idx);
  }
  if (p->n == p->cap)
    return 0;
  uint32_t i = p->n++;
  p->lim = p->n;
  p->slot[i] = (sip_msg_slot){NULL, 0, SIP_SLOT_FREE};
  return slot_take(p, i, idx);
}

void sip_slot_grow(sip_slot_pool *p, sip_msg_slot *slab, uint32_t cap) {
  for (uint32_t i = 0; i < p->n; i++)
    slab[i] = p->slot[i];
  p->slot = slab;
  p->cap = cap;
}

void sip_slot_release(sip_slot_pool *p, uint32_t idx, uint32_t gen) {
  sip_msg_slot *s = &p->slot[idx];
  if (s->gen != gen)
    return;
  s->gen++;
  s->state = SIP_SLOT_FREE;
  if (s->m && s->m->arena.chunks) /* memory now, not at the next parse */
    sip_msg_free(s->m);
}

void sip_slot_finalize(sip_slot_pool *p) {
  if (p->finalized)
    return;
  for (uint32_t i = 0; i < p->n; i++) {
    sip_msg_slot *s = &p->slot[i];
    s->gen++;
    s->state = SIP_SLOT_FREE;
    if (s->m)
      sip_msg_delete(s->m);
    s->m = NULL;
  }
  p->finalized = 1;
}
