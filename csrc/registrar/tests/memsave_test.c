/* The registrar's fast path on the memory store (csrc/registrar/memsave.c):
 * a REGISTER planned then committed, the 200's lines and list, a step's
 * answer with nothing written, Path, the cases left to the general flow. Prints
 * "memsave_test: N passed, N failed". */
#include <stdio.h>
#include <string.h>
#include <uv.h>

#include "reg_conf.h"
#include "sip_reg_memsave.h"
#include "test/check.h"

static uv_loop_t loop;
static sip_memstore *store;
static sip_msg msg;
static char wire[2048];
static sip_reg_mem f; /* large: not on the stack */
static sip_reg_answer ans;

static double test_clock(void *ud) {
  (void)ud;
  return 1000;
}

static sip_reg_conf conf(void) { return reg_test_conf(3, NULL); }

/* Plan a REGISTER of alice (Call-ID c1, this CSeq) with these lines. */
static int plan(int cseq, const char *lines, const sip_reg_conf *c) {
  snprintf(wire, sizeof wire,
           "REGISTER sip:example.com SIP/2.0\r\n"
           "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK%d\r\n"
           "Call-ID: c1\r\nCSeq: %d REGISTER\r\n"
           "From: <sip:alice@example.com>;tag=1\r\n"
           "To: <sip:alice@example.com>\r\nUser-Agent: t\r\n%s\r\n",
           cseq, cseq, lines);
  sip_msg_free(&msg);
  sip_msg_init(&msg, NULL);
  CHECK(sip_msg_parse(&msg, wire, strlen(wire), SIP_MODE_DATAGRAM) > 0);
  memset(&ans, 0, sizeof ans);
  return sip_reg_mem_plan(
      &f, &msg, c, store, (sip_str)SIP_STR_LIT("udp:127.0.0.1:5070"),
      (sip_str)SIP_STR_LIT("udp:127.0.0.1:5060"), 0, 1000, 1000, &ans);
}

static size_t stored(void) {
  sip_str recs[8];
  return sip_memstore_lookup(
      store, (sip_str)SIP_STR_LIT("sip:alice@example.com"), 1000, recs, 8);
}

static int has(sip_str s, const char *needle) {
  size_t n = strlen(needle);
  for (size_t i = 0; i + n <= s.len; i++)
    if (!memcmp(s.p + i, needle, n))
      return 1;
  return 0;
}

/* A step's answer, with nothing planned: plan (CSeq cseq, these lines, the
 * configuration at cp) returns 2 and ans has status want. */
#define CHECK_ANSWER(cseq, lines, cp, want)                                    \
  do {                                                                         \
    CHECK_INT(plan((cseq), (lines), (cp)), 2);                                 \
    CHECK_INT(ans.status, (want));                                             \
  } while (0)

static void test_flow(void) {
  sip_reg_conf c = conf();
  CHECK_INT(plan(1,
                 "Contact: <sip:a@192.0.2.1>;q=0.5, <sip:b@192.0.2.2>\r\n"
                 "Expires: 600\r\n",
                 &c),
            1);
  CHECK_INT(stored(), 0); /* nothing before the commit */
  CHECK_INT(f.nlist, 2);
  CHECK(has(f.headers, "Contact: <sip:b@192.0.2.2>;expires=600\r\n"
                       "Contact: <sip:a@192.0.2.1>;expires=600;q=0.5\r\n"
                       "Date: "));
  CHECK_INT(sip_reg_mem_commit(&f, store), 0);
  CHECK_INT(stored(), 2);

  /* the same CSeq again: 500, nothing changes */
  CHECK_ANSWER(1, "Contact: <sip:a@192.0.2.1>;expires=0\r\n", &c, 500);
  CHECK_INT(stored(), 2);
  /* a removal and a refresh */
  CHECK_INT(plan(2,
                 "Contact: <sip:a@192.0.2.1>;expires=0, "
                 "<sip:b@192.0.2.2>;expires=100\r\n",
                 &c),
            1);
  CHECK_INT(f.nlist, 1);
  CHECK(has(f.headers, "Contact: <sip:b@192.0.2.2>;expires=100\r\n"));
  CHECK_INT(sip_reg_mem_commit(&f, store), 0);
  CHECK_INT(stored(), 1);
  /* max_contacts 3: two more is 503 */
  CHECK_ANSWER(3,
               "Contact: <sip:c@192.0.2.3>, <sip:d@192.0.2.4>, "
               "<sip:e@192.0.2.5>\r\n",
               &c, 503);
  /* a step's answer: 423, 400 */
  CHECK_ANSWER(4, "Contact: <sip:c@192.0.2.3>;expires=5\r\n", &c, 423);
  CHECK_ANSWER(4, "Contact: <sip:c@192.0.2.3>\r\nExpires: x\r\n", &c, 400);
  CHECK_INT(stored(), 1);

  /* Path: stored, and echoed to a UA that supports path */
  CHECK_INT(plan(5,
                 "Path: <sip:p.example.com;lr>\r\nSupported: path\r\n"
                 "Contact: <sip:c@192.0.2.3>\r\n",
                 &c),
            1);
  CHECK(has(f.headers, "\r\nPath: <sip:p.example.com;lr>\r\n"));
  sip_breader rd;
  sip_bfield fl;
  int path_items = -1;
  for (size_t i = 0; i < f.nlist; i++) { /* the new binding's record */
    CHECK_INT(sip_binding_open(&rd, f.list[i].p, f.list[i].len), 0);
    while (sip_binding_next(&rd, &fl) == 1)
      if (fl.id == SIP_BF_PATH)
        path_items = (int)fl.i;
  }
  CHECK_INT(path_items, 1);

  /* left to the general flow: an instance, outbound */
  CHECK_INT(
      plan(5, "Contact: <sip:c@192.0.2.3>;+sip.instance=\"<urn:x>\"\r\n", &c),
      0);
  CHECK_INT(plan(5,
                 "Supported: outbound\r\n"
                 "Contact: <sip:c@192.0.2.3>;+sip.instance=\"<urn:x>\";"
                 "reg-id=1\r\n",
                 &c),
            0);
  CHECK_INT(plan(5, "Contact: <sip:c@192.0.2.3>, <sip:C@192.0.2.3>\r\n", &c),
            1);
  CHECK_INT(stored(), 1);
}

/* a key given twice, and `*`: taken, with the general flow's outcome (the
 * last change of a key decides; step C's removals after the saves) */
static void test_twice_star(void) {
  sip_reg_conf c = conf();
  /* saved, then removed: nothing written, only b listed */
  CHECK_INT(plan(5,
                 "Contact: <sip:c@192.0.2.3>, <sip:c@192.0.2.3>;expires=0\r\n",
                 &c),
            1);
  CHECK_INT(f.nlist, 1);
  CHECK_INT(f.nops, 0);
  CHECK(!has(f.headers, "sip:c@"));
  /* saved twice: one save, the last */
  CHECK_INT(plan(5,
                 "Contact: <sip:c@192.0.2.3>;expires=100, "
                 "<sip:c@192.0.2.3>;expires=200\r\n",
                 &c),
            1);
  CHECK_INT(f.nlist, 2);
  CHECK_INT(f.nops, 1);
  CHECK(has(f.headers, "Contact: <sip:c@192.0.2.3>;expires=200\r\n"));
  CHECK(!has(f.headers, "<sip:c@192.0.2.3>;expires=100"));
  CHECK_INT(sip_reg_mem_commit(&f, store), 0);
  CHECK_INT(stored(), 2);
  /* a current one removed, then saved: a save; saved, then removed: a
   * removal */
  CHECK_INT(plan(6,
                 "Contact: <sip:c@192.0.2.3>;expires=0, "
                 "<sip:c@192.0.2.3>;expires=300\r\n",
                 &c),
            1);
  CHECK_INT(f.nops, 1);
  CHECK(f.ops[0].blob.p != NULL);
  CHECK(has(f.headers, "Contact: <sip:c@192.0.2.3>;expires=300\r\n"));
  CHECK_INT(plan(6,
                 "Contact: <sip:c@192.0.2.3>;expires=300, "
                 "<sip:c@192.0.2.3>;expires=0\r\n",
                 &c),
            1);
  CHECK_INT(f.nops, 1);
  CHECK(f.ops[0].blob.p == NULL);
  CHECK_INT(f.nlist, 1);
  CHECK_INT(sip_reg_mem_commit(&f, store), 0);
  CHECK_INT(stored(), 1);

  /* `*`: a CSeq not higher is 500; else every binding removed */
  CHECK_ANSWER(1, "Contact: *\r\nExpires: 0\r\n", &c, 500);
  CHECK_ANSWER(7, "Contact: *\r\n", &c, 400); /* without Expires: 0 */
  CHECK_INT(plan(7, "Contact: *\r\nExpires: 0\r\n", &c), 1);
  CHECK_INT(f.nlist, 0);
  CHECK(!has(f.headers, "Contact:"));
  CHECK_INT(stored(), 1);
  CHECK_INT(sip_reg_mem_commit(&f, store), 0);
  CHECK_INT(stored(), 0);
  /* `*` with nothing bound: a 200, nothing to write */
  CHECK_INT(plan(8, "Contact: *\r\nExpires: 0\r\n", &c), 1);
  CHECK_INT(f.nops, 0);
}

int main(void) {
  if (uv_loop_init(&loop) < 0)
    return 1;
  sip_msg_init(&msg, NULL);
  CHECK_INT(sip_memstore_new(&loop, &store), 0);
  sip_memstore_set_clock(store, test_clock, NULL);
  test_flow();
  test_twice_star();
  sip_memstore_close(store);
  uv_run(&loop, UV_RUN_DEFAULT);
  CHECK_INT(uv_loop_close(&loop), 0);
  sip_msg_free(&msg);
  return check_summary("memsave_test");
}
