/* The memory location store (sip_memstore.h). */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "sip_binding.h"
#include "sip_error.h"
#include "sip_memstore.h"

/* A stored record: a copy of the encoded binding. */
typedef struct mrec {
  double expires;
  uint32_t len;
  char data[];
} mrec;

/* An AOR. It stays in the table while it has records or references (heap
 * items, expired records waiting for their callback). */
typedef struct mentry {
  struct mentry *next; /* hash chain */
  uint32_t hash;
  uint32_t n, cap;
  uint32_t refs;
  double sched; /* the time of its earliest pending heap item; 0: none */
  mrec **recs;
  uint32_t aorlen;
  char aor[];
} mentry;

typedef struct hitem {
  double t;
  mentry *e;
} hitem;

typedef struct dead {
  mentry *e;
  mrec *r;
} dead;

struct sip_memstore {
  uv_timer_t timer;
  mentry **tab;
  size_t tabsize; /* a power of two */
  size_t naors, count;
  hitem *heap;
  size_t nheap, heapcap;
  dead *dead;
  size_t ndead, deadcap;
  sip_memstore_expire_fn expire_fn;
  void *expire_ud;
  sip_memstore_clock_fn clock_fn;
  void *clock_ud;
  int in_callbacks, closing;
};

static double wall_clock(void *ud) {
  (void)ud;
  struct timeval tv;
  gettimeofday(&tv, NULL);
  return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

double sip_memstore_now(sip_memstore *s) { return s->clock_fn(s->clock_ud); }

static uint32_t hash_of(sip_str a) {
  uint32_t h = 2166136261u; /* FNV-1a */
  for (size_t i = 0; i < a.len; i++) {
    h ^= (unsigned char)a.p[i];
    h *= 16777619u;
  }
  return h;
}

static mentry *find(const sip_memstore *s, sip_str aor, uint32_t h) {
  for (mentry *e = s->tab[h & (s->tabsize - 1)]; e; e = e->next)
    if (e->hash == h && e->aorlen == aor.len && !memcmp(e->aor, aor.p, aor.len))
      return e;
  return NULL;
}

/* Double the table when it is full (a failure keeps the chains longer). */
static void maybe_grow(sip_memstore *s) {
  if (s->naors < s->tabsize)
    return;
  size_t size = s->tabsize * 2;
  mentry **tab = calloc(size, sizeof *tab);
  if (!tab)
    return;
  for (size_t i = 0; i < s->tabsize; i++)
    for (mentry *e = s->tab[i], *next; e; e = next) {
      next = e->next;
      e->next = tab[e->hash & (size - 1)];
      tab[e->hash & (size - 1)] = e;
    }
  free(s->tab);
  s->tab = tab;
  s->tabsize = size;
}

static void unlink_free(sip_memstore *s, mentry *e) {
  mentry **pp = &s->tab[e->hash & (s->tabsize - 1)];
  while (*pp != e)
    pp = &(*pp)->next;
  *pp = e->next;
  s->naors--;
  free(e->recs);
  free(e);
}

/* Free e when nothing holds it any more. */
static void release(sip_memstore *s, mentry *e) {
  if (e->n == 0 && e->refs == 0)
    unlink_free(s, e);
}

static sip_str key_of(const mrec *r) {
  sip_breader rd;
  if (sip_binding_open(&rd, r->data, r->len) < 0)
    return (sip_str){"", 0}; /* checked on the way in */
  return rd.key;
}

static int find_key(const mentry *e, sip_str key) {
  for (uint32_t i = 0; i < e->n; i++) {
    sip_str k = key_of(e->recs[i]);
    if (k.len == key.len && !memcmp(k.p, key.p, key.len))
      return (int)i;
  }
  return -1;
}

/* ---- the heap --------------------------------------------------------- */

static void heap_push(sip_memstore *s, double t, mentry *e) {
  size_t i = s->nheap++; /* room reserved by the caller */
  while (i > 0) {
    size_t p = (i - 1) / 2;
    if (s->heap[p].t <= t)
      break;
    s->heap[i] = s->heap[p];
    i = p;
  }
  s->heap[i] = (hitem){t, e};
}

static hitem heap_pop(sip_memstore *s) {
  hitem top = s->heap[0];
  hitem last = s->heap[--s->nheap];
  size_t n = s->nheap, i = 0;
  if (n == 0)
    return top;
  for (;;) {
    size_t c = 2 * i + 1;
    if (c >= n)
      break;
    if (c + 1 < n && s->heap[c + 1].t < s->heap[c].t)
      c++;
    if (s->heap[c].t >= last.t)
      break;
    s->heap[i] = s->heap[c];
    i = c;
  }
  s->heap[i] = last;
  return top;
}

static int heap_reserve(sip_memstore *s, size_t more) {
  if (s->nheap + more <= s->heapcap)
    return 0;
  size_t cap = s->heapcap ? s->heapcap * 2 : 64;
  while (cap < s->nheap + more)
    cap *= 2;
  hitem *h = realloc(s->heap, cap * sizeof *h);
  if (!h)
    return SIP_ENOMEM;
  s->heap = h;
  s->heapcap = cap;
  return 0;
}

static void on_timer(uv_timer_t *t);

static void arm(sip_memstore *s) {
  if (s->nheap == 0) {
    uv_timer_stop(&s->timer);
    return;
  }
  double ms = ceil((s->heap[0].t - sip_memstore_now(s)) * 1000);
  uv_timer_start(&s->timer, on_timer,
                 ms > 0 ? (ms < 1e12 ? (uint64_t)ms : (uint64_t)1e12) : 0, 0);
}

/* e expires at t: an item unless one as early is pending (room reserved). */
static void schedule(sip_memstore *s, mentry *e, double t) {
  if (e->sched != 0 && e->sched <= t)
    return;
  heap_push(s, t, e);
  e->sched = t;
  e->refs++;
  if (s->heap[0].e == e && s->heap[0].t == t && !s->in_callbacks)
    arm(s);
}

/* ---- changes ---------------------------------------------------------- */

int sip_memstore_update(sip_memstore *s, sip_str aor,
                        const sip_memstore_op *ops, size_t n) {
  if (aor.len == 0 || aor.len > UINT32_MAX)
    return SIP_EINVAL;
  size_t saves = 0;
  for (size_t i = 0; i < n; i++) {
    if (!ops[i].blob.p)
      continue;
    sip_breader rd;
    if (ops[i].blob.len > UINT32_MAX)
      return SIP_EINVAL;
    if (sip_binding_open(&rd, ops[i].blob.p, ops[i].blob.len) < 0)
      return SIP_EVALUE;
    if (rd.key.len == 0)
      return SIP_EINVAL;
    saves++;
  }
  uint32_t h = hash_of(aor);
  mentry *e = find(s, aor, h);
  if (!e && saves == 0)
    return 0;
  /* every allocation first: a failure leaves the store as it was */
  mentry *fresh = NULL;
  if (!e) {
    fresh = calloc(1, sizeof *fresh + aor.len);
    if (!fresh)
      return SIP_ENOMEM;
    fresh->hash = h;
    fresh->aorlen = (uint32_t)aor.len;
    memcpy(fresh->aor, aor.p, aor.len);
  }
  mentry *t = e ? e : fresh;
  mrec *recs[64];
  mrec **made = saves <= 64 ? recs : malloc(saves * sizeof *made);
  size_t nmade = 0;
  int rc = made ? 0 : SIP_ENOMEM;
  for (size_t i = 0; i < n && rc == 0; i++) {
    if (!ops[i].blob.p)
      continue;
    mrec *r = malloc(sizeof *r + ops[i].blob.len);
    if (!r) {
      rc = SIP_ENOMEM;
      break;
    }
    sip_breader rd;
    sip_binding_open(&rd, ops[i].blob.p, ops[i].blob.len);
    r->expires = rd.expires;
    r->len = (uint32_t)ops[i].blob.len;
    memcpy(r->data, ops[i].blob.p, ops[i].blob.len);
    made[nmade++] = r;
  }
  if (rc == 0 && t->n + saves > t->cap) {
    uint32_t cap = t->cap ? t->cap : 1;
    while (cap < t->n + saves)
      cap *= 2;
    mrec **grown = realloc(t->recs, cap * sizeof *grown);
    if (!grown)
      rc = SIP_ENOMEM;
    else {
      t->recs = grown;
      t->cap = cap;
    }
  }
  if (rc == 0)
    rc = heap_reserve(s, saves);
  if (rc < 0) {
    for (size_t i = 0; i < nmade; i++)
      free(made[i]);
    if (made != recs)
      free(made);
    if (fresh) {
      free(fresh->recs);
      free(fresh);
    }
    return rc;
  }
  if (fresh) {
    maybe_grow(s);
    size_t b = h & (s->tabsize - 1);
    fresh->next = s->tab[b];
    s->tab[b] = fresh;
    s->naors++;
  }
  /* apply */
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    if (ops[i].blob.p) {
      mrec *r = made[k++];
      int at = find_key(t, key_of(r));
      if (at >= 0) {
        free(t->recs[at]);
        t->recs[at] = r;
      } else {
        t->recs[t->n++] = r;
        s->count++;
      }
      schedule(s, t, r->expires);
    } else {
      int at = find_key(t, ops[i].key);
      if (at >= 0) {
        free(t->recs[at]);
        memmove(t->recs + at, t->recs + at + 1,
                (t->n - (uint32_t)at - 1) * sizeof *t->recs);
        t->n--;
        s->count--;
      }
    }
  }
  if (made != recs)
    free(made);
  release(s, t);
  return 0;
}

int sip_memstore_save(sip_memstore *s, sip_str aor, sip_str blob) {
  sip_memstore_op op = {blob, SIP_STR_NULL};
  return sip_memstore_update(s, aor, &op, 1);
}

int sip_memstore_remove(sip_memstore *s, sip_str aor, sip_str key) {
  sip_memstore_op op = {SIP_STR_NULL, key};
  return sip_memstore_update(s, aor, &op, 1);
}

void sip_memstore_remove_all(sip_memstore *s, sip_str aor) {
  mentry *e = find(s, aor, hash_of(aor));
  if (!e)
    return;
  for (uint32_t i = 0; i < e->n; i++)
    free(e->recs[i]);
  s->count -= e->n;
  e->n = 0;
  release(s, e);
}

/* ---- reading ---------------------------------------------------------- */

size_t sip_memstore_records(const sip_memstore *s, sip_str aor, sip_str *out,
                            size_t max) {
  mentry *e = find(s, aor, hash_of(aor));
  if (!e)
    return 0;
  for (uint32_t i = 0; i < e->n && i < max; i++)
    out[i] = (sip_str){e->recs[i]->data, e->recs[i]->len};
  return e->n;
}

size_t sip_memstore_lookup(const sip_memstore *s, sip_str aor, double now,
                           sip_str *out, size_t max) {
  mentry *e = find(s, aor, hash_of(aor));
  size_t k = 0;
  for (uint32_t i = 0; e && i < e->n; i++)
    if (e->recs[i]->expires > now) {
      if (k < max)
        out[k] = (sip_str){e->recs[i]->data, e->recs[i]->len};
      k++;
    }
  return k;
}

size_t sip_memstore_count(const sip_memstore *s) { return s->count; }
size_t sip_memstore_aors(const sip_memstore *s) { return s->naors; }
size_t sip_memstore_pending(const sip_memstore *s) { return s->nheap; }

/* ---- expiry ----------------------------------------------------------- */

/* Move e's records expired at t to the dead list (freed at once when the
 * list cannot grow: their callback is lost, the store stays right). */
static void purge(sip_memstore *s, mentry *e, double t) {
  uint32_t j = 0;
  for (uint32_t i = 0; i < e->n; i++) {
    mrec *r = e->recs[i];
    if (r->expires > t) {
      e->recs[j++] = r;
      continue;
    }
    s->count--;
    if (!s->expire_fn) {
      free(r);
      continue;
    }
    if (s->ndead == s->deadcap) {
      size_t cap = s->deadcap ? s->deadcap * 2 : 64;
      dead *d = realloc(s->dead, cap * sizeof *d);
      if (!d) {
        free(r);
        continue;
      }
      s->dead = d;
      s->deadcap = cap;
    }
    s->dead[s->ndead++] = (dead){e, r};
    e->refs++;
  }
  e->n = j;
}

static void free_all(sip_memstore *s);

static void on_timer(uv_timer_t *timer) {
  sip_memstore *s = timer->data;
  double t = sip_memstore_now(s);
  size_t budget = SIP_MEMSTORE_BATCH;
  while (s->nheap && s->heap[0].t <= t && budget > 0) {
    budget--;
    hitem it = heap_pop(s);
    mentry *e = it.e;
    e->refs--;
    if (e->sched == it.t)
      e->sched = 0;
    purge(s, e, t);
    double next = 0;
    for (uint32_t i = 0; i < e->n; i++)
      if (next == 0 || e->recs[i]->expires < next)
        next = e->recs[i]->expires;
    if (next != 0 && (e->sched == 0 || next < e->sched)) {
      heap_push(s, next, e); /* the pop made room */
      e->sched = next;
      e->refs++;
    }
    release(s, e);
  }
  /* the structure is consistent: the callbacks may change it */
  s->in_callbacks = 1;
  for (size_t i = 0; i < s->ndead; i++) {
    dead d = s->dead[i];
    if (s->expire_fn && !s->closing)
      s->expire_fn(s->expire_ud, (sip_str){d.e->aor, d.e->aorlen},
                   (sip_str){d.r->data, d.r->len});
    free(d.r);
    d.e->refs--;
    if (!s->closing)
      release(s, d.e);
  }
  s->ndead = 0;
  s->in_callbacks = 0;
  if (s->closing) {
    free_all(s);
    return;
  }
  if (s->nheap && s->heap[0].t <= t)
    /* more due: again after the loop polled I/O. 1 ms, not 0: libuv up to
     * 1.44 runs a 0 ms timer started from a timer callback in the same pass,
     * and the loop would not breathe */
    uv_timer_start(&s->timer, on_timer, 1, 0);
  else
    arm(s);
}

/* ---- life ------------------------------------------------------------- */

int sip_memstore_new(uv_loop_t *loop, sip_memstore **out) {
  sip_memstore *s = calloc(1, sizeof *s);
  if (!s)
    return SIP_ENOMEM;
  s->tabsize = 64;
  s->tab = calloc(s->tabsize, sizeof *s->tab);
  if (!s->tab) {
    free(s);
    return SIP_ENOMEM;
  }
  int rc = uv_timer_init(loop, &s->timer);
  if (rc < 0) {
    free(s->tab);
    free(s);
    return rc;
  }
  uv_unref((uv_handle_t *)&s->timer);
  s->timer.data = s;
  s->clock_fn = wall_clock;
  *out = s;
  return 0;
}

void sip_memstore_on_expire(sip_memstore *s, sip_memstore_expire_fn fn,
                            void *ud) {
  s->expire_fn = fn;
  s->expire_ud = ud;
}

void sip_memstore_set_clock(sip_memstore *s, sip_memstore_clock_fn fn,
                            void *ud) {
  s->clock_fn = fn ? fn : wall_clock;
  s->clock_ud = ud;
  if (!s->in_callbacks && !s->closing)
    arm(s);
}

static void on_closed(uv_handle_t *h) { free(h->data); }

static void free_all(sip_memstore *s) {
  for (size_t i = 0; i < s->ndead; i++)
    free(s->dead[i].r);
  for (size_t b = 0; b < s->tabsize; b++)
    for (mentry *e = s->tab[b], *next; e; e = next) {
      next = e->next;
      for (uint32_t i = 0; i < e->n; i++)
        free(e->recs[i]);
      free(e->recs);
      free(e);
    }
  free(s->tab);
  free(s->heap);
  free(s->dead);
  uv_close((uv_handle_t *)&s->timer, on_closed);
}

void sip_memstore_close(sip_memstore *s) {
  if (!s || s->closing)
    return;
  s->closing = 1;
  uv_timer_stop(&s->timer);
  if (!s->in_callbacks)
    free_all(s);
}
