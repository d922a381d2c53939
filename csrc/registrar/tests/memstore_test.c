/* The memory location store (csrc/registrar/memstore.c): saves, replaces
 * by key, removals, lookups that skip expired records, expiry on the timer
 * (batches, refreshes, callbacks that change or close the store), refused
 * records, all-or-nothing updates. A test clock drives the expiry times;
 * the uv loop runs the timer. Prints "memstore_test: N passed, N failed". */
#include <stdio.h>
#include <string.h>

#include "sip_binding.h"
#include "sip_error.h"
#include "sip_memstore.h"
#include "test/check.h"

static double clock_now = 1000;
static double test_clock(void *ud) {
  (void)ud;
  return clock_now;
}

static uv_loop_t loop;
/* the store's timer keeps no loop alive: this one does, for uv_run */
static uv_timer_t keep;
static void never(uv_timer_t *t) { (void)t; }

/* set the test clock to t (re-arms the timer) and run the loop until the
 * timer has nothing due */
static void advance(sip_memstore *s, double t) {
  clock_now = t;
  sip_memstore_set_clock(s, test_clock, NULL);
  for (int i = 0; i < 100; i++)
    uv_run(&loop, UV_RUN_NOWAIT);
}

static char blobmem[64][256];
static int blobnext;

/* A record: key, expiry, a contact field. */
static sip_str blob(const char *key, double expires) {
  char *mem = blobmem[blobnext++ % 64];
  sip_obuf b;
  sip_obuf_init(&b, mem, 256);
  sip_binding_begin(&b, expires, clock_now, (sip_str){key, strlen(key)});
  sip_binding_put_key(&b, SIP_BF_CONTACT, NULL);
  return (sip_str){b.p, b.len};
}

static sip_str S(const char *s) { return (sip_str){s, strlen(s)}; }

static sip_memstore *fresh(void) {
  sip_memstore *s = NULL;
  CHECK_INT(sip_memstore_new(&loop, &s), 0);
  sip_memstore_set_clock(s, test_clock, NULL);
  return s;
}

static sip_str key_of(sip_str rec) {
  sip_breader rd;
  if (sip_binding_open(&rd, rec.p, rec.len) < 0)
    return S("(corrupt)");
  return rd.key;
}

static void test_save_lookup(void) {
  clock_now = 1000;
  sip_memstore *s = fresh();
  sip_str out[8];
  CHECK_INT(sip_memstore_lookup(s, S("sip:a@x"), clock_now, out, 8), 0);
  CHECK_INT(sip_memstore_save(s, S("sip:a@x"), blob("k1", 1100)), 0);
  CHECK_INT(sip_memstore_save(s, S("sip:a@x"), blob("k2", 1200)), 0);
  CHECK_INT(sip_memstore_save(s, S("sip:b@x"), blob("k1", 1300)), 0);
  CHECK_INT(sip_memstore_count(s), 3);
  CHECK_INT(sip_memstore_aors(s), 2);
  CHECK_INT(sip_memstore_lookup(s, S("sip:a@x"), clock_now, out, 8), 2);
  CHECK_STR(key_of(out[0]), "k1");
  CHECK_STR(key_of(out[1]), "k2");
  /* the same key replaces in place */
  CHECK_INT(sip_memstore_save(s, S("sip:a@x"), blob("k1", 1500)), 0);
  CHECK_INT(sip_memstore_count(s), 3);
  CHECK_INT(sip_memstore_records(s, S("sip:a@x"), out, 8), 2);
  CHECK_STR(key_of(out[0]), "k1");
  sip_breader rd;
  CHECK_INT(sip_binding_open(&rd, out[0].p, out[0].len), 0);
  CHECK(rd.expires == 1500);
  /* records: a smaller max still counts them all */
  CHECK_INT(sip_memstore_records(s, S("sip:a@x"), out, 1), 2);
  /* an expired record is not returned, even before the timer ran */
  clock_now = 1250;
  CHECK_INT(sip_memstore_lookup(s, S("sip:a@x"), clock_now, out, 8), 1);
  CHECK_STR(key_of(out[0]), "k1");
  CHECK_INT(sip_memstore_records(s, S("sip:a@x"), out, 8), 2);
  CHECK_INT(sip_memstore_count(s), 3);
  /* removal by key; an absent key or AOR is no error */
  CHECK_INT(sip_memstore_remove(s, S("sip:a@x"), S("k2")), 0);
  CHECK_INT(sip_memstore_remove(s, S("sip:a@x"), S("nope")), 0);
  CHECK_INT(sip_memstore_remove(s, S("sip:nobody@x"), S("k1")), 0);
  CHECK_INT(sip_memstore_count(s), 2);
  sip_memstore_remove_all(s, S("sip:a@x"));
  sip_memstore_remove_all(s, S("sip:nobody@x"));
  CHECK_INT(sip_memstore_count(s), 1);
  CHECK_INT(sip_memstore_lookup(s, S("sip:a@x"), clock_now, out, 8), 0);
  sip_memstore_close(s);
  uv_run(&loop, UV_RUN_NOWAIT);
}

static void test_refused(void) {
  sip_memstore *s = fresh();
  CHECK_INT(sip_memstore_save(s, S("sip:a@x"), S("short")), SIP_EVALUE);
  CHECK_INT(sip_memstore_save(s, S("sip:a@x"), blob("", 2000)), SIP_EINVAL);
  CHECK_INT(sip_memstore_save(s, S(""), blob("k", 2000)), SIP_EINVAL);
  /* all or nothing: a bad record anywhere changes nothing */
  sip_memstore_op ops[3] = {
      {blob("k1", 2000), SIP_STR_NULL},
      {blob("k2", 2000), SIP_STR_NULL},
      {S("garbage"), SIP_STR_NULL},
  };
  CHECK_INT(sip_memstore_update(s, S("sip:a@x"), ops, 3), SIP_EVALUE);
  CHECK_INT(sip_memstore_count(s), 0);
  CHECK_INT(sip_memstore_aors(s), 0);
  /* a save and a removal of another key in one update, in order */
  ops[2] = (sip_memstore_op){SIP_STR_NULL, S("k1")};
  CHECK_INT(sip_memstore_update(s, S("sip:a@x"), ops, 3), 0);
  sip_str out[4];
  CHECK_INT(sip_memstore_records(s, S("sip:a@x"), out, 4), 1);
  CHECK_STR(key_of(out[0]), "k2");
  sip_memstore_close(s);
  uv_run(&loop, UV_RUN_NOWAIT);
}

typedef struct seen {
  int n;
  char aor[64][32];
  char key[64][32];
  sip_memstore *s;
  int resave; /* the callback saves "again" into the AOR */
  int close;  /* the callback closes the store */
} seen;

static void on_expire(void *ud, sip_str aor, sip_str rec) {
  seen *w = ud;
  if (w->n < 64) {
    snprintf(w->aor[w->n], 32, "%.*s", (int)aor.len, aor.p);
    sip_str k = key_of(rec);
    snprintf(w->key[w->n], 32, "%.*s", (int)k.len, k.p);
  }
  w->n++;
  if (w->resave)
    CHECK_INT(sip_memstore_save(w->s, aor, blob("again", clock_now + 50)), 0);
  if (w->close)
    sip_memstore_close(w->s);
}

static void test_expiry(void) {
  clock_now = 1000;
  sip_memstore *s = fresh();
  seen w = {0};
  w.s = s;
  sip_memstore_on_expire(s, on_expire, &w);
  CHECK_INT(sip_memstore_save(s, S("sip:a@x"), blob("k1", 1010)), 0);
  CHECK_INT(sip_memstore_save(s, S("sip:a@x"), blob("k2", 1020)), 0);
  CHECK_INT(sip_memstore_save(s, S("sip:b@x"), blob("k1", 1030)), 0);
  advance(s, 1005);
  CHECK_INT(w.n, 0);
  advance(s, 1010);
  CHECK_INT(w.n, 1);
  CHECK_MSG(strcmp(w.aor[0], "sip:a@x") == 0, "got %s", w.aor[0]);
  CHECK_MSG(strcmp(w.key[0], "k1") == 0, "got %s", w.key[0]);
  CHECK_INT(sip_memstore_count(s), 2);
  advance(s, 1025);
  CHECK_INT(w.n, 2);
  CHECK_MSG(strcmp(w.key[1], "k2") == 0, "got %s", w.key[1]);
  /* a refresh moves the expiry later: nothing at the old time */
  CHECK_INT(sip_memstore_save(s, S("sip:b@x"), blob("k1", 1100)), 0);
  advance(s, 1050);
  CHECK_INT(w.n, 2);
  CHECK_INT(sip_memstore_count(s), 1);
  /* and earlier again: it expires at the new time */
  CHECK_INT(sip_memstore_save(s, S("sip:b@x"), blob("k1", 1060)), 0);
  advance(s, 1061);
  CHECK_INT(w.n, 3);
  CHECK_MSG(strcmp(w.aor[2], "sip:b@x") == 0, "got %s", w.aor[2]);
  CHECK_INT(sip_memstore_count(s), 0);
  advance(s, 1200); /* the stale item of the first save goes */
  CHECK_INT(w.n, 3);
  CHECK_INT(sip_memstore_aors(s), 0);
  CHECK_INT(sip_memstore_pending(s), 0);
  /* a removed record never expires */
  CHECK_INT(sip_memstore_save(s, S("sip:c@x"), blob("k", 1300)), 0);
  CHECK_INT(sip_memstore_remove(s, S("sip:c@x"), S("k")), 0);
  advance(s, 1400);
  CHECK_INT(w.n, 3);
  CHECK_INT(sip_memstore_aors(s), 0);
  sip_memstore_close(s);
  uv_run(&loop, UV_RUN_NOWAIT);
}

static void test_callbacks_change_store(void) {
  clock_now = 1000;
  sip_memstore *s = fresh();
  seen w = {0};
  w.s = s;
  w.resave = 1;
  sip_memstore_on_expire(s, on_expire, &w);
  CHECK_INT(sip_memstore_save(s, S("sip:a@x"), blob("k1", 1010)), 0);
  advance(s, 1010);
  CHECK_INT(w.n, 1);
  /* the callback's save is there, and expires in its turn */
  sip_str out[4];
  CHECK_INT(sip_memstore_lookup(s, S("sip:a@x"), clock_now, out, 4), 1);
  CHECK_STR(key_of(out[0]), "again");
  w.resave = 0;
  advance(s, 1060);
  CHECK_INT(w.n, 2);
  CHECK_MSG(strcmp(w.key[1], "again") == 0, "got %s", w.key[1]);
  CHECK_INT(sip_memstore_count(s), 0);
  /* a callback that closes the store: no further callback */
  w.close = 1;
  for (int i = 0; i < 5; i++) {
    char aor[32];
    snprintf(aor, sizeof aor, "sip:u%d@x", i);
    CHECK_INT(sip_memstore_save(s, S(aor), blob("k", 1100)), 0);
  }
  advance(s, 1100);
  CHECK_INT(w.n, 3);
  uv_run(&loop, UV_RUN_NOWAIT);
}

/* the loop between the timer runs: what the callbacks had seen */
static int seen_at_prepare = -1;
static void on_prepare(uv_prepare_t *p) {
  seen *w = p->data;
  if (seen_at_prepare < 0 && w->n > 0)
    seen_at_prepare = w->n;
}

static void test_batch(void) {
  clock_now = 1000;
  sip_memstore *s = fresh();
  seen w = {0};
  w.s = s;
  sip_memstore_on_expire(s, on_expire, &w);
  int n = SIP_MEMSTORE_BATCH + 5;
  for (int i = 0; i < n; i++) {
    char aor[32];
    snprintf(aor, sizeof aor, "sip:u%d@x", i);
    CHECK_INT(sip_memstore_save(s, S(aor), blob("k", 1010 + i % 7)), 0);
  }
  CHECK_INT(sip_memstore_count(s), n);
  CHECK_INT(sip_memstore_aors(s), n);
  clock_now = 1100;
  sip_memstore_set_clock(s, test_clock, NULL);
  uv_prepare_t prep;
  uv_prepare_init(&loop, &prep);
  prep.data = &w;
  uv_prepare_start(&prep, on_prepare);
  /* one timer run, one batch; the loop turns (the prepare handle sees it),
   * then the rest: re-armed at once */
  for (int i = 0; i < 50 && w.n < n; i++)
    uv_run(&loop, UV_RUN_ONCE);
  uv_close((uv_handle_t *)&prep, NULL);
  CHECK_INT(seen_at_prepare, SIP_MEMSTORE_BATCH);
  CHECK_INT(w.n, n);
  CHECK_INT(sip_memstore_count(s), 0);
  CHECK_INT(sip_memstore_aors(s), 0);
  CHECK_INT(sip_memstore_pending(s), 0);
  sip_memstore_close(s);
  uv_run(&loop, UV_RUN_NOWAIT);
}

/* close with records, heap items and a pending timer frees everything
 * (ASan / valgrind tell) */
static void test_close_full(void) {
  clock_now = 1000;
  sip_memstore *s = fresh();
  for (int i = 0; i < 1000; i++) {
    char aor[32];
    snprintf(aor, sizeof aor, "sip:u%d@x", i % 250);
    char key[16];
    snprintf(key, sizeof key, "k%d", i % 3);
    CHECK_INT(sip_memstore_save(s, S(aor), blob(key, 2000 + i)), 0);
  }
  CHECK_INT(sip_memstore_count(s), 750);
  sip_memstore_close(s);
  uv_run(&loop, UV_RUN_NOWAIT);
}

int main(void) {
  if (uv_loop_init(&loop) < 0)
    return 1;
  uv_timer_init(&loop, &keep);
  uv_timer_start(&keep, never, 3600 * 1000, 0);
  test_save_lookup();
  test_refused();
  test_expiry();
  test_callbacks_change_store();
  test_batch();
  test_close_full();
  uv_close((uv_handle_t *)&keep, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  CHECK_INT(uv_loop_close(&loop), 0);
  return check_summary("memstore_test");
}
