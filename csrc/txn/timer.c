/* One uv_timer_t per layer over a binary min-heap of deadlines. Each
 * transaction embeds its two heap nodes (sip__txn_tnode), so arming,
 * moving and stopping a timer allocates nothing once the heap array is big
 * enough, and costs O(log n). The uv timer is armed for the earliest
 * deadline and re-armed only when an earlier one appears or it fired. */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "txn_int.h"

static sip_txn *owner(sip__txn_tnode *n) {
  sip__txn_tnode *base = n - n->which;
  return (sip_txn *)((char *)base - offsetof(sip_txn, tn));
}

/* ---- heap
 * ------------------------------------------------------------------- */

static void place(sip_txl *txl, uint32_t i, sip__txn_tnode *n) {
  txl->heap[i] = n;
  n->idx = i;
}

static void sift_up(sip_txl *txl, uint32_t i) {
  sip__txn_tnode *n = txl->heap[i];
  while (i > 0) {
    uint32_t p = (i - 1) / 2;
    if (txl->heap[p]->due <= n->due)
      break;
    place(txl, i, txl->heap[p]);
    i = p;
  }
  place(txl, i, n);
}

static void sift_down(sip_txl *txl, uint32_t i) {
  sip__txn_tnode *n = txl->heap[i];
  uint32_t len = txl->heap_len;
  for (;;) {
    uint32_t c = 2 * i + 1;
    if (c >= len)
      break;
    if (c + 1 < len && txl->heap[c + 1]->due < txl->heap[c]->due)
      c++;
    if (n->due <= txl->heap[c]->due)
      break;
    place(txl, i, txl->heap[c]);
    i = c;
  }
  place(txl, i, n);
}

static void heap_remove(sip_txl *txl, sip__txn_tnode *n) {
  uint32_t i = n->idx;
  n->idx = SIP__TN_NONE;
  uint32_t last = --txl->heap_len;
  if (i == last)
    return;
  sip__txn_tnode *m = txl->heap[last];
  place(txl, i, m);
  if (i > 0 && txl->heap[(i - 1) / 2]->due > m->due)
    sift_up(txl, i);
  else
    sift_down(txl, i);
}

static int heap_reserve(sip_txl *txl) {
  if (txl->heap_len < txl->heap_cap)
    return 0;
  uint32_t cap = txl->heap_cap ? txl->heap_cap * 2 : 256;
  sip__txn_tnode **h = sip__txn_alloc(txl, cap * sizeof(*h), 0);
  if (!h)
    return SIP_ENOMEM;
  if (txl->heap_len)
    memcpy(h, txl->heap, txl->heap_len * sizeof(*h));
  if (txl->heap)
    sip__txn_free(txl, txl->heap, txl->heap_cap * sizeof(*h), 0);
  txl->heap = h;
  txl->heap_cap = cap;
  return 0;
}

int sip__txn_timer_at(sip_txn *t, int which, uint64_t due) {
  sip_txl *txl = t->txl;
  sip__txn_tnode *n = &t->tn[which];
  if (txl->closing || t->state == SIP_TXN_TERMINATED)
    return 0; /* nothing runs any more */
  if (n->idx != SIP__TN_NONE) {
    uint64_t old = n->due;
    n->due = due;
    if (due < old)
      sift_up(txl, n->idx);
    else
      sift_down(txl, n->idx);
  } else {
    int rc = heap_reserve(txl);
    if (rc < 0)
      return rc;
    n->due = due;
    place(txl, txl->heap_len++, n);
    sift_up(txl, n->idx);
  }
  sip__txn_timer_rearm(txl);
  return 0;
}

int sip__txn_timer_in(sip_txn *t, int which, uint64_t delay) {
  /* the loop's cached time can be old when the TU calls in from outside
   * a callback, or after a long callback: a deadline is from now */
  uv_update_time(t->txl->loop);
  return sip__txn_timer_at(t, which, uv_now(t->txl->loop) + delay);
}

void sip__txn_timer_stop(sip_txn *t, int which) {
  sip__txn_tnode *n = &t->tn[which];
  if (n->idx != SIP__TN_NONE)
    heap_remove(t->txl, n);
  /* the uv timer may now fire early for nothing: it re-arms then */
}

/* ---- the uv timer
 * ----------------------------------------------------------- */

static void on_timer(uv_timer_t *h);

void sip__txn_timer_rearm(sip_txl *txl) {
  if (txl->closing || txl->in_timer)
    return;
  uint64_t now = uv_now(txl->loop);
  uint64_t due;
  if (txl->dead)
    due = now;
  else if (txl->heap_len)
    due = txl->heap[0]->due;
  else {
    if (txl->armed) {
      uv_timer_stop(&txl->timer);
      txl->armed = 0;
    }
    return;
  }
  if (txl->armed && txl->armed_due <= due)
    return; /* fires first; re-arms then */
  uv_timer_start(&txl->timer, on_timer, due > now ? due - now : 0, 0);
  txl->armed = 1;
  txl->armed_due = due;
}

void sip__txn_drain_dead(sip_txl *txl) {
  while (txl->dead) {
    sip_txn *t = txl->dead;
    txl->dead = t->hnext;
    t->hnext = NULL;
    t->flags &= (uint8_t)~SIP__TF_DEAD;
    if (!txl->closing)
      sip__txn_event(t, SIP_TXN_EV_TERMINATED, 0);
    sip_txn_unref(t); /* the layer's reference */
  }
}

static void on_timer(uv_timer_t *h) {
  sip_txl *txl = (sip_txl *)((char *)h - offsetof(sip_txl, timer));
  txl->armed = 0;
  if (txl->closing)
    return;
  uint64_t now = uv_now(txl->loop);
  txl->in_timer = 1;
  /* everything due, earliest first; handlers may arm new deadlines, which
   * run in this pass when they are due already */
  while (txl->heap_len && txl->heap[0]->due <= now && !txl->closing) {
    sip__txn_tnode *n = txl->heap[0];
    heap_remove(txl, n);
    sip_txn *t = owner(n);
    t->refs++;
    if (sip__txn_is_client(t))
      sip__txn_client_timer(t, n->which);
    else
      sip__txn_server_timer(t, n->which);
    sip_txn_unref(t);
  }
  if (!txl->closing)
    sip__txn_drain_dead(txl);
  txl->in_timer = 0;
  sip__txn_timer_rearm(txl);
}

int sip__txn_timer_init(sip_txl *txl) {
  return uv_timer_init(txl->loop, &txl->timer);
}

/* ---- consistency (tests)
 * ---------------------------------------------------- */

int sip__txn_check(const sip_txl *txl) {
  for (uint32_t i = 0; i < txl->heap_len; i++) {
    const sip__txn_tnode *n = txl->heap[i];
    if (n->idx != i || n->which > 1)
      return SIP_EINVAL;
    if (i > 0 && txl->heap[(i - 1) / 2]->due > n->due)
      return SIP_EINVAL;
    const sip_txn *t = owner((sip__txn_tnode *)n);
    if (t->txl != txl || t->state == SIP_TXN_TERMINATED)
      return SIP_EINVAL;
  }
  uint32_t live = 0;
  for (int k = 0; k < 4; k++)
    live += txl->st.live[k];
  if (live != txl->st.live_total)
    return SIP_EINVAL;
  if (txl->client.n + txl->server.n + txl->s2543.n != live)
    return SIP_EINVAL;
  const sip__txn_table *tbs[3] = {&txl->client, &txl->server, &txl->s2543};
  for (int k = 0; k < 3; k++) {
    uint32_t n = 0;
    for (uint32_t b = 0; b <= tbs[k]->mask; b++)
      for (const sip_txn *t = tbs[k]->b[b]; t; t = t->hnext) {
        if ((t->hash & tbs[k]->mask) != b || t->state == SIP_TXN_TERMINATED)
          return SIP_EINVAL;
        for (int w = 0; w < 2; w++)
          if (t->tn[w].idx != SIP__TN_NONE &&
              (t->tn[w].idx >= txl->heap_len ||
               txl->heap[t->tn[w].idx] != &t->tn[w]))
            return SIP_EINVAL;
        n++;
      }
    if (n != tbs[k]->n)
      return SIP_EINVAL;
  }
  return 0;
}
