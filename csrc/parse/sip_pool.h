/* Where parsed messages live between parses: a per-thread free list of
 * sip_msg, and the slot pool a Lua state's core.parse takes them from.
 *
 * A sip_msg is several KB (inline header index and arena), too big for
 * malloc's fast paths, and scripts parse and drop messages at line rate.
 *
 * The slot pool: each message core.parse makes holds a slot (an index and
 * the slot's generation) and the slot's sip_msg. The pool does not know
 * when a message dies (the Lua binding learns it from a weak table, with no
 * finalizer): claiming asks the owner through a callback whether the
 * message of a taken slot still lives. A generation, bumped whenever a slot
 * is claimed or released, makes a message that outlived its slot read as
 * closed, never as a window on another message.
 *
 * Claiming searches [0, lim) round robin from where it last took a slot, a
 * few slots at most (SIP_SLOT_PROBES); when those are busy it takes the next
 * slot past lim (made before, or a new one): the pool grows to what the
 * owner keeps alive at once, and the slots below lim keep their sip_msg.
 * Past SIP_SLOT_KEEP slots, every full round gives the sip_msg of the free
 * slots at SIP_SLOT_KEEP and beyond back to the free list and brings lim
 * back to SIP_SLOT_KEEP: a burst does not keep its memory. The slot array
 * is the owner's memory (a Lua userdata): when it is full, claiming says so
 * and the owner installs a bigger copy (sip_slot_grow). */
#ifndef SIP_POOL_H
#define SIP_POOL_H

#include "sip_msg.h"

/* An empty sip_msg (sip_msg_init'd with NULL limits) from the calling
 * thread's free list or malloc; NULL when out of memory. */
sip_msg *sip_msg_new(void);
/* sip_msg_free m and keep it on the free list (or free it when the list
 * is full). */
void sip_msg_delete(sip_msg *m);

#define SIP_SLOT_PROBES 4
#define SIP_SLOT_KEEP 256

enum sip_slot_state {
  SIP_SLOT_FREE = 0,
  SIP_SLOT_TAKEN = 1,   /* the owner says whether its message still lives */
  SIP_SLOT_CLAIMED = 2, /* claimed, not yet handed to a message: busy */
};

typedef struct sip_msg_slot {
  sip_msg *m;   /* NULL: none yet, or given back */
  uint32_t gen; /* see above */
  uint8_t state;
} sip_msg_slot;

typedef struct sip_slot_pool {
  sip_msg_slot *slot; /* cap entries, the owner's memory */
  uint32_t n, cap;    /* slots made, room */
  uint32_t lim;       /* the round robin's range, <= n */
  uint32_t next;      /* where the next search starts, < lim */
  uint32_t taken;     /* since the last round */
  uint8_t finalized;  /* sip_slot_finalize ran */
} sip_slot_pool;

/* Does the message of taken slot i still live? (the owner's answer) */
typedef int (*sip_slot_live_fn)(void *ctx, uint32_t i);

/* An empty pool over slab[0..cap) (cap >= 1). */
void sip_slot_init(sip_slot_pool *p, sip_msg_slot *slab, uint32_t cap);
/* Claim a slot: on success *idx is CLAIMED, its generation bumped, and it
 * has an empty sip_msg. Returns 1, 0 when every slot of the array is busy
 * (nothing claimed: sip_slot_grow, then claim again), or SIP_ENOMEM when no
 * sip_msg could be had (nothing claimed). A taken slot whose message no
 * longer lives (live says 0) becomes free on the way. */
int sip_slot_claim(sip_slot_pool *p, sip_slot_live_fn live, void *ctx,
                   uint32_t *idx);
/* Move the slots into slab (cap entries, more than p->cap; the owner keeps
 * the old array until this returns). */
void sip_slot_grow(sip_slot_pool *p, sip_msg_slot *slab, uint32_t cap);
/* A message is done with slot idx of generation gen: the slot is free and
 * its sip_msg's arena freed now. Nothing when the slot has moved on. */
void sip_slot_release(sip_slot_pool *p, uint32_t idx, uint32_t gen);
/* Is slot idx still of generation gen? */
static inline int sip_slot_valid(const sip_slot_pool *p, uint32_t idx,
                                 uint32_t gen) {
  return p->slot[idx].gen == gen;
}
/* Every slot free and its sip_msg deleted; messages of any generation read
 * as closed. Safe to call twice. */
void sip_slot_finalize(sip_slot_pool *p);

#endif
