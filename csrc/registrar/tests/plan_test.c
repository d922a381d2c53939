/* The registrar's flow (csrc/registrar/plan.c): step A (Request-URI,
 * Require, the fields read, the AOR) and step B (the Contacts as changes),
 * step C (the update: CSeq order, max_contacts, temp-GRUU numbers), step D
 * (the 200's header lines), each answer it chooses and its reason.
 * Prints "plan_test: N passed, N failed". */
#include <stdio.h>
#include <string.h>

#include "reg_conf.h"
#include "sip_binding.h"
#include "sip_error.h"
#include "sip_reg_plan.h"
#include "test/check.h"

#define CHECK_CSTR(got, want)                                                  \
  CHECK_MSG(strcmp((got), (want)) == 0, "got '%s', want '%s'", (got), (want))

static char wire[4096];
static sip_msg msg;
static char textmem[4096];
static sip_obuf text;
static sip_reg_answer ans;

/* A REGISTER to ruri with these header lines (each ending in CRLF); the
 * Via, Call-ID, CSeq, From and To given unless the lines start with "!" */
static sip_msg *reg(const char *ruri, const char *lines) {
  int own = lines[0] == '!';
  snprintf(wire, sizeof wire, "REGISTER %s SIP/2.0\r\n%s%s\r\n", ruri,
           own ? ""
               : "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1\r\n"
                 "Call-ID: c1@127.0.0.1\r\nCSeq: 7 REGISTER\r\n"
                 "From: <sip:alice@example.com>;tag=1\r\n"
                 "To: <sip:%61lice@Example.COM:5060>\r\n",
           own ? lines + 1 : lines);
  sip_msg_free(&msg);
  sip_msg_init(&msg, NULL);
  int rc = sip_msg_parse(&msg, wire, strlen(wire), SIP_MODE_DATAGRAM);
  CHECK_MSG(rc > 0, "parse: %d", rc);
  sip_obuf_init(&text, textmem, sizeof textmem);
  memset(&ans, 0, sizeof ans);
  return &msg;
}

/* serves: "example.com" only; counts its calls; -99 when told to fail */
static int calls, fail_serves;
static int serves_example(void *ud, sip_str host) {
  (void)ud;
  calls++;
  if (fail_serves)
    return -99;
  return sip_str_ieq_cstr(host, "example.com");
}

static sip_reg_conf conf(void) { return reg_test_conf(10, serves_example); }

static int check_a(const char *ruri, const char *lines, const sip_reg_conf *c,
                   sip_reg_req *rq) {
  return sip_reg_check(reg(ruri, lines), c, &text, rq, &ans);
}

/* Step A answers (ruri, these lines, the configuration at cp) with this
 * status and reason; rq is the sip_reg_req in scope. */
#define CHECK_REJECT_A(ruri, lines, cp, want, why)                             \
  do {                                                                         \
    CHECK_INT(check_a((ruri), (lines), (cp), &rq), 1);                         \
    CHECK_INT(ans.status, (want));                                             \
    CHECK_CSTR(ans.reason, (why));                                             \
  } while (0)

static void test_check(void) {
  sip_reg_conf c = conf();
  sip_reg_req rq;
  calls = 0;
  CHECK_INT(check_a("sip:example.com", "", &c, &rq), 0);
  CHECK_STR(rq.aor, "sip:alice@example.com");
  CHECK_STR(rq.call_id, "c1@127.0.0.1");
  CHECK_INT(rq.cseq, 7);
  CHECK_INT(rq.nvias, 1);
  CHECK(rq.paths == NULL);
  CHECK_INT(calls, 2); /* the Request-URI's host, then the To's */

  /* 1: scheme and domain */
  CHECK_REJECT_A("tel:+123", "", &c, 416, "Unsupported URI Scheme");
  CHECK_REJECT_A("sip:other.org", "", &c, 404, "Domain Not Served Here");
  sip_reg_conf all = c;
  all.serves = NULL;
  CHECK_INT(check_a("sip:other.org", "", &all, &rq), 0);

  /* 2: Require: every tag not implemented, as written */
  CHECK_REJECT_A("sip:example.com",
                 "Require: Path, foo\r\nRequire: gruu,bar , outbound\r\n", &c,
                 420, "Bad Extension");
  CHECK(ans.hname && !strcmp(ans.hname, "Unsupported"));
  CHECK_CSTR(ans.hvalue, "foo, bar");
  sip_str extra[] = {SIP_STR_LIT("FOO"), SIP_STR_LIT("bar")};
  sip_reg_conf more = c;
  more.supported = extra;
  more.nsupported = 2;
  CHECK_INT(
      check_a("sip:example.com", "Require: path, foo, bar\r\n", &more, &rq), 0);

  /* the fields read: missing or malformed, in the flow's order */
  CHECK_REJECT_A("sip:example.com",
                 "!Via: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bK2\r\n"
                 "CSeq: 1 REGISTER\r\nTo: <sip:a@example.com>\r\n",
                 &c, 400, "Bad Request (missing Call-ID)");
  CHECK_INT(check_a("sip:example.com",
                    "!Call-ID: x\r\nCSeq: one REGISTER\r\n"
                    "To: <sip:a@example.com>\r\n",
                    &c, &rq),
            1);
  CHECK_INT(ans.status, 400);
  CHECK_MSG(
      !strncmp(ans.reason, "Bad Request (malformed CSeq: PARSE: CSeq", 40),
      "reason '%s'", ans.reason);
  CHECK_INT(check_a("sip:example.com", "!Call-ID: x\r\nCSeq: 1 REGISTER\r\n",
                    &c, &rq),
            1);
  CHECK_CSTR(ans.reason, "Bad Request (missing To)");
  CHECK_INT(
      check_a("sip:example.com", "Path: <sip:p1.example.com;lr\r\n", &c, &rq),
      1);
  CHECK_MSG(!strncmp(ans.reason, "Bad Request (malformed Path: ", 29),
            "reason '%s'", ans.reason);

  /* 5: the AOR */
  CHECK_REJECT_A("sip:example.com",
                 "!Call-ID: x\r\nCSeq: 1 REGISTER\r\nTo: <tel:+1234>\r\n", &c,
                 400, "Bad Request (To must be a SIP or SIPS URI)");
  CHECK_REJECT_A("sip:example.com",
                 "!Call-ID: x\r\nCSeq: 1 REGISTER\r\n"
                 "To: <sip:bob@other.org>\r\n",
                 &c, 404, "Not Found (domain of To not served here)");

  /* the callback's failure passes through; a text buffer too small */
  fail_serves = 1;
  CHECK_INT(check_a("sip:example.com", "", &c, &rq), -99);
  fail_serves = 0;
  reg("sip:example.com", "");
  sip_obuf_init(&text, textmem, 5);
  CHECK_INT(sip_reg_check(&msg, &c, &text, &rq, &ans), SIP_ENOMEM);
}

static sip_reg_change changes[8];
static sip_reg_contacts cs;
static sip_arena arena;

static int check_b(const char *lines, const sip_reg_conf *c) {
  reg("sip:example.com", lines);
  cs = (sip_reg_contacts){changes, 0, 8, 0, 0};
  sip_arena_free(&arena);
  return sip_reg_contacts_plan(&msg, c, &arena, &text, &cs, &ans);
}

/* Step B answers (these lines, the configuration at cp) with this status
 * and reason. */
#define CHECK_REJECT_B(lines, cp, want, why)                                   \
  do {                                                                         \
    CHECK_INT(check_b((lines), (cp)), 1);                                      \
    CHECK_INT(ans.status, (want));                                             \
    CHECK_CSTR(ans.reason, (why));                                             \
  } while (0)

static void test_contacts(void) {
  sip_reg_conf c = conf();
  /* expiry: the contact's, else the header's, else the default; q */
  CHECK_INT(check_b("Contact: <sip:a@192.0.2.1;Transport=TCP>;expires=120;"
                    "q=0.5;+foo=\"x\", \"A\" <sip:b@192.0.2.2>\r\n"
                    "Contact: sip:c@192.0.2.3;q=0\r\nExpires: 300\r\n",
                    &c),
            0);
  CHECK_INT(cs.n, 3);
  CHECK_STR(changes[0].key, "sip:a@192.0.2.1;transport=tcp");
  CHECK_STR(changes[0].contact, "sip:a@192.0.2.1;Transport=TCP");
  CHECK_INT(changes[0].expires, 120);
  CHECK_INT(changes[0].q, 500);
  CHECK_STR(changes[0].params, ";+foo=\"x\"");
  CHECK_INT(changes[1].expires, 300);
  CHECK_INT(changes[1].q, 1000);
  CHECK_INT(changes[2].q, 0);
  CHECK(!cs.star && !cs.outbound);
  CHECK_INT(check_b("Contact: <sip:a@192.0.2.1>\r\n", &c), 0);
  CHECK_INT(changes[0].expires, 3600);
  /* beyond max_expires: shortened; beyond 2^32-1: taken as 2^32-1 */
  CHECK_INT(check_b("Contact: <sip:a@192.0.2.1>;expires=99999999999\r\n", &c),
            0);
  CHECK_INT(cs.n, 1);
  CHECK_INT(changes[0].expires, 7200);
  CHECK_STR(changes[0].key, "sip:a@192.0.2.1");
  CHECK_INT(
      check_b("Contact: <sip:a@192.0.2.1>\r\nExpires: 99999999999\r\n", &c), 0);
  CHECK_INT(changes[0].expires, 7200);

  /* 423 (0 still removes) */
  CHECK_REJECT_B("Contact: <sip:a@192.0.2.1>;expires=30\r\n", &c, 423,
                 "Interval Too Brief");
  CHECK(ans.hname && !strcmp(ans.hname, "Min-Expires"));
  CHECK_CSTR(ans.hvalue, "60");
  CHECK_INT(check_b("Contact: <sip:a@192.0.2.1>;expires=0\r\n", &c), 0);
  CHECK_INT(changes[0].expires, 0);

  /* malformed */
  CHECK_INT(check_b("Contact: <sip:a@192.0.2.1>\r\nExpires: soon\r\n", &c), 1);
  CHECK_CSTR(ans.reason, "Bad Request (malformed Expires)");
  CHECK_INT(check_b("Contact: <sip:a@192.0.2.1>;q=2\r\n", &c), 1);
  CHECK_INT(ans.status, 400);
  CHECK_MSG(!strncmp(ans.reason, "Bad Request (malformed Contact: PARSE:", 38),
            "reason '%s'", ans.reason);

  /* star */
  CHECK_INT(check_b("Contact: *\r\nExpires: 0\r\n", &c), 0);
  CHECK(cs.star);
  CHECK_INT(cs.n, 0);
  CHECK_INT(check_b("Contact: *\r\n", &c), 1);
  CHECK_CSTR(ans.reason, "Bad Request (Contact * needs Expires: 0)");
  CHECK_INT(check_b("Contact: *\r\nExpires: 10\r\n", &c), 1);
  CHECK_CSTR(ans.reason, "Bad Request (Contact * needs Expires: 0)");
  CHECK_INT(check_b("Contact: *\r\nContact: <sip:a@192.0.2.1>\r\n"
                    "Expires: 0\r\n",
                    &c),
            1);
  CHECK_CSTR(ans.reason, "Bad Request (Contact * must be the only Contact)");

  /* max_contact_size */
  sip_reg_conf small = c;
  small.max_contact_size = 20;
  CHECK_REJECT_B("Contact: <sip:a@192.0.2.1>;expires=100\r\n", &small, 400,
                 "Bad Request (Contact too long: 29 bytes, at most 20)");

  /* a GRUU of ours as a Contact: 403; another domain's: a binding */
  CHECK_REJECT_B("Contact: <sip:alice@example.com;gr=urn:x>\r\n", &c, 403,
                 "Forbidden (Contact is a GRUU)");
  CHECK_INT(check_b("Contact: <sip:alice@other.org;gr=urn:x>\r\n", &c), 0);
  CHECK_INT(cs.n, 1);

  /* RFC 5626: instance and reg-id */
  const char *inst = ";+sip.instance=\"<urn:uuid:1>\"";
  char lines[512];
  snprintf(lines, sizeof lines,
           "Supported: path, outbound\r\n"
           "Contact: <sip:a@192.0.2.1;ob>%s;reg-id=2\r\n",
           inst);
  CHECK_INT(check_b(lines, &c), 0);
  CHECK_STR(changes[0].key, "<urn:uuid:1>;2");
  CHECK_STR(changes[0].instance, "<urn:uuid:1>");
  CHECK_INT(changes[0].reg_id, 2);
  CHECK(cs.outbound);
  /* without Supported: outbound the reg-id is not used */
  snprintf(lines, sizeof lines, "Contact: <sip:a@192.0.2.1>%s;reg-id=2\r\n",
           inst);
  CHECK_INT(check_b(lines, &c), 0);
  CHECK_STR(changes[0].key, "<urn:uuid:1>");
  CHECK_INT(changes[0].reg_id, 0);
  CHECK(!cs.outbound);
  const char *bad[] = {";reg-id=1", ";+sip.instance=\"<urn:uuid:1>\";reg-id=0",
                       ";+sip.instance=\"<urn:uuid:1>\";reg-id=4294967296",
                       ";+sip.instance=\"<urn:uuid:1>\";reg-id=x",
                       ";+sip.instance=\"<urn:uuid:1>\";reg-id"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    snprintf(lines, sizeof lines,
             "Supported: outbound\r\nContact: <sip:a@192.0.2.1>%s\r\n", bad[i]);
    CHECK_INT(check_b(lines, &c), 1);
    CHECK_CSTR(ans.reason, "Bad Request (reg-id needs +sip.instance and a "
                           "number 1 to 2^32-1)");
  }
  snprintf(lines, sizeof lines,
           "Supported: outbound\r\nContact: <sip:a@192.0.2.1>%s;reg-id=1, "
           "<sip:a@192.0.2.2>%s;reg-id=2\r\n",
           inst, inst);
  CHECK_INT(check_b(lines, &c), 1);
  CHECK_CSTR(ans.reason, "Bad Request (reg-id on more than one Contact)");
  /* through a proxy: the first hop's Path must have "ob" */
  snprintf(lines, sizeof lines,
           "Via: SIP/2.0/UDP 127.0.0.2;branch=z9hG4bK9\r\n"
           "Supported: outbound\r\nContact: <sip:a@192.0.2.1>%s;reg-id=1\r\n",
           inst);
  CHECK_REJECT_B(lines, &c, 439, "First Hop Lacks Outbound Support");
  snprintf(lines, sizeof lines,
           "Via: SIP/2.0/UDP 127.0.0.2;branch=z9hG4bK9\r\n"
           "Path: <sip:p.example.com;lr;ob>\r\n"
           "Supported: outbound\r\nContact: <sip:a@192.0.2.1>%s;reg-id=1\r\n",
           inst);
  CHECK_INT(check_b(lines, &c), 0);

  /* the callback's failure, an array or a text buffer too small */
  fail_serves = 1;
  CHECK_INT(check_b("Contact: <sip:alice@example.com;gr>\r\n", &c), -99);
  fail_serves = 0;
  reg("sip:example.com", "Contact: <sip:a@192.0.2.1>, <sip:b@192.0.2.1>\r\n");
  CHECK_INT(sip_reg_contacts_max(&msg), 2);
  cs = (sip_reg_contacts){changes, 0, 1, 0, 0};
  CHECK_INT(sip_reg_contacts_plan(&msg, &c, &arena, &text, &cs, &ans),
            SIP_ENOMEM);
  sip_obuf_init(&text, textmem, 8);
  cs = (sip_reg_contacts){changes, 0, 8, 0, 0};
  CHECK_INT(sip_reg_contacts_plan(&msg, &c, &arena, &text, &cs, &ans),
            SIP_ENOMEM);
}

static void test_ok(void) {
  sip_reg_conf c = conf();
  sip_reg_binding b[3] = {
      {SIP_STR_LIT("sip:a@192.0.2.1"), SIP_STR_LIT(";+foo"), SIP_STR_NULL,
       SIP_STR_NULL, 1000.0, 0.5, 10, 0},
      {SIP_STR_LIT("sip:b@192.0.2.2"), SIP_STR_LIT(""),
       SIP_STR_LIT("sip:alice@example.com;gr=urn:uuid:1"),
       SIP_STR_LIT("sip:tgruu.ab.2@example.com;gr"), 1500.5, 1, 5, 1},
      {SIP_STR_LIT("sip:c@192.0.2.3"), SIP_STR_LIT(""), SIP_STR_NULL,
       SIP_STR_NULL, 900, 1, 20, 2},
  };
  /* q high first, then the most recently updated */
  sip_reg_sort(b, 3);
  CHECK_INT(b[0].idx, 2);
  CHECK_INT(b[1].idx, 1);
  CHECK_INT(b[2].idx, 0);

  char mem[1024];
  sip_obuf out;
  sip_obuf_init(&out, mem, sizeof mem - 1);
  reg("sip:example.com",
      "Supported: path, gruu\r\nPath: <sip:p1.example.com;lr>, "
      "<sip:p2.example.com;lr>\r\nContact: <sip:b@192.0.2.2>\r\n");
  CHECK_INT(sip_reg_ok_headers(&msg, &c, b, 3, 1000, 1, &out), 0);
  mem[out.len] = 0;
  CHECK_CSTR(mem, "Contact: <sip:c@192.0.2.3>;expires=0\r\n"
                  "Contact: <sip:b@192.0.2.2>;expires=500.5;"
                  "pub-gruu=\"sip:alice@example.com;gr=urn:uuid:1\";"
                  "temp-gruu=\"sip:tgruu.ab.2@example.com;gr\"\r\n"
                  "Contact: <sip:a@192.0.2.1>;expires=0;q=0.5;+foo\r\n"
                  "Path: <sip:p1.example.com;lr>\r\n"
                  "Path: <sip:p2.example.com;lr>\r\n"
                  "Require: outbound\r\n"
                  "Date: Thu, 01 Jan 1970 00:16:40 GMT\r\n");
  /* no Supported: path, gruu: neither Path nor the GRUUs */
  reg("sip:example.com", "Path: <sip:p1.example.com;lr>\r\n");
  sip_obuf_init(&out, mem, sizeof mem - 1);
  CHECK_INT(sip_reg_ok_headers(&msg, &c, b + 1, 1, 1000, 0, &out), 0);
  mem[out.len] = 0;
  CHECK_CSTR(mem, "Contact: <sip:b@192.0.2.2>;expires=500.5\r\n"
                  "Date: Thu, 01 Jan 1970 00:16:40 GMT\r\n");
  /* GRUU and Path off */
  reg("sip:example.com",
      "Supported: path, gruu\r\nPath: <sip:p1.example.com;lr>\r\n");
  sip_reg_conf off = c;
  off.path = off.gruu = 0;
  sip_obuf_init(&out, mem, sizeof mem - 1);
  CHECK_INT(sip_reg_ok_headers(&msg, &off, b + 1, 1, 1000, 0, &out), 0);
  mem[out.len] = 0;
  CHECK_CSTR(mem, "Contact: <sip:b@192.0.2.2>;expires=500.5\r\n"
                  "Date: Thu, 01 Jan 1970 00:16:40 GMT\r\n");
  sip_obuf_init(&out, mem, 40);
  CHECK_INT(sip_reg_ok_headers(&msg, &c, b, 3, 1000, 0, &out), SIP_ENOMEM);
}

static void test_update(void) {
  sip_reg_conf c = conf();
  c.max_contacts = 3;
  sip_str cid = SIP_STR_LIT("c1"), other = SIP_STR_LIT("c2");
  sip_reg_current cur[3] = {
      {SIP_STR_LIT("k1"), cid, SIP_STR_NULL, 5, 0, 0, 0},
      {SIP_STR_LIT("<urn:1>"), cid, SIP_STR_LIT("base"), 5, 4, 0, 0},
      {SIP_STR_LIT("k3"), other, SIP_STR_NULL, 100, 0, 0, 0},
  };
  sip_reg_change ch[3];
  memset(ch, 0, sizeof ch);
  ch[0].key = (sip_str)SIP_STR_LIT("k1");
  ch[0].expires = 0;
  ch[1].key = (sip_str)SIP_STR_LIT("<urn:1>");
  ch[1].instance = ch[1].key;
  ch[1].expires = 60;
  ch[2].key = (sip_str)SIP_STR_LIT("k4");
  ch[2].expires = 60;
  sip_reg_contacts cs = {ch, 3, 3, 0, 0};
  /* CSeq 6 on Call-ID c1: in order; k3 (another Call-ID, CSeq 100) too */
  CHECK_INT(sip_reg_update(&c, cid, 6, &cs, cur, 3, &ans), 0);
  CHECK_INT(ch[0].old, 0);
  CHECK_INT(ch[1].old, 1);
  CHECK_INT(ch[2].old, -1);
  CHECK(cur[0].remove && !cur[0].keep);
  CHECK(!cur[1].remove && !cur[1].keep); /* replaced: listed as ch[1] */
  CHECK(!cur[2].remove && cur[2].keep);
  CHECK_INT(ch[1].tgruu_n, 5); /* same Call-ID: the base's next number */
  CHECK_INT(ch[2].tgruu_n, 0); /* no instance */
  /* another Call-ID: a new base */
  CHECK_INT(sip_reg_update(&c, other, 101, &cs, cur, 3, &ans), 0);
  CHECK_INT(ch[1].tgruu_n, 1);
  sip_reg_conf nogruu = c;
  nogruu.gruu = 0;
  CHECK_INT(sip_reg_update(&nogruu, cid, 6, &cs, cur, 3, &ans), 0);
  CHECK_INT(ch[1].tgruu_n, 0);
  /* CSeq not higher on the same Call-ID: 500, for a removal too */
  CHECK_INT(sip_reg_update(&c, cid, 5, &cs, cur, 3, &ans), 1);
  CHECK_INT(ans.status, 500);
  CHECK_CSTR(ans.reason, "Server Internal Error (CSeq out of order)");
  /* max_contacts: k3, <urn:1>, k4 is 3; one more key is 503 */
  c.max_contacts = 2;
  CHECK_INT(sip_reg_update(&c, cid, 6, &cs, cur, 3, &ans), 1);
  CHECK_INT(ans.status, 503);
  CHECK_CSTR(ans.reason, "Too Many Registered Contacts");
  /* removals only: never 503 */
  c.max_contacts = 0;
  cs.n = 1;
  CHECK_INT(sip_reg_update(&c, cid, 6, &cs, cur, 3, &ans), 0);
  /* a key given twice counts once; its last change decides (k1, k3,
   * <urn:1> and k4 are 4) */
  c.max_contacts = 4;
  ch[0].key = ch[2].key;
  ch[0].expires = 60;
  cs.n = 3;
  CHECK_INT(sip_reg_update(&c, cid, 6, &cs, cur, 3, &ans), 0);
  ch[2].expires = 0; /* k4 saved, then removed: 3 */
  c.max_contacts = 2;
  CHECK_INT(sip_reg_update(&c, cid, 6, &cs, cur, 3, &ans), 1);
  c.max_contacts = 3;
  CHECK_INT(sip_reg_update(&c, cid, 6, &cs, cur, 3, &ans), 0);
  CHECK(ch[0].superseded && !ch[1].superseded && !ch[2].superseded);
  /* regression: a current key removed, then saved again (k1): bound,
   * listed as the save; saved, then removed: removed */
  ch[0].key = ch[2].key = (sip_str)SIP_STR_LIT("k1");
  ch[0].expires = 0;
  ch[2].expires = 60;
  c.max_contacts = 10;
  CHECK_INT(sip_reg_update(&c, cid, 6, &cs, cur, 3, &ans), 0);
  CHECK(ch[0].superseded && !ch[2].superseded);
  CHECK(!cur[0].remove && !cur[0].keep);
  ch[0].expires = 60;
  ch[2].expires = 0;
  CHECK_INT(sip_reg_update(&c, cid, 6, &cs, cur, 3, &ans), 0);
  CHECK(cur[0].remove && !cur[0].keep);
  /* saved then removed is no save: never 503 */
  ch[0].key = ch[2].key = (sip_str)SIP_STR_LIT("k9");
  cs.n = 3;
  ch[1].expires = 0;
  c.max_contacts = 0;
  CHECK_INT(sip_reg_update(&c, cid, 6, &cs, cur, 3, &ans), 0);
  ch[1].expires = 60;
  c.max_contacts = 3;
  /* `*`: every binding removed, each in CSeq order */
  sip_reg_contacts star = {ch, 0, 3, 1, 0};
  CHECK_INT(sip_reg_update(&c, cid, 6, &star, cur, 3, &ans), 0);
  for (int i = 0; i < 3; i++)
    CHECK(cur[i].remove && !cur[i].keep);
  CHECK_INT(sip_reg_update(&c, other, 100, &star, cur, 3, &ans), 1);
  CHECK_INT(ans.status, 500);

  /* the GRUUs' text */
  char mem[128];
  sip_obuf out;
  sip_obuf_init(&out, mem, sizeof mem - 1);
  sip_reg_pub_gruu(&out, (sip_str)SIP_STR_LIT("sip:alice@example.com"),
                   (sip_str)SIP_STR_LIT("<urn:uuid:1>"));
  mem[out.len] = 0;
  CHECK_CSTR(mem, "sip:alice@example.com;gr=urn:uuid:1");
  sip_obuf_init(&out, mem, sizeof mem - 1);
  sip_reg_temp_gruu(&out, (sip_str)SIP_STR_LIT("sips:alice@example.com"),
                    (sip_str)SIP_STR_LIT("ab12"), 7);
  mem[out.len] = 0;
  CHECK_CSTR(mem, "sips:tgruu.ab12.7@example.com;gr");
  sip_obuf_init(&out, mem, sizeof mem - 1);
  sip_reg_temp_gruu(&out, (sip_str)SIP_STR_LIT("sip:example.com"),
                    (sip_str)SIP_STR_LIT("ab"), 1);
  mem[out.len] = 0;
  CHECK_CSTR(mem, "sip:tgruu.ab.1@example.com;gr");
}

/* the Date's text (RFC 1123, GMT): step D's writer, registrar.http_date */
static void test_http_date(void) {
  static const struct {
    int64_t t;
    const char *want;
  } cases[] = {
      {0, "Thu, 01 Jan 1970 00:00:00 GMT"},
      {1289690940, "Sat, 13 Nov 2010 23:29:00 GMT"},
      {951782400, "Tue, 29 Feb 2000 00:00:00 GMT"},
      {-1, "Wed, 31 Dec 1969 23:59:59 GMT"},
      /* the year as os.date's %Y writes it */
      {-30610224001LL, "Tue, 31 Dec 999 23:59:59 GMT"},
      {-30610224000LL, "Wed, 01 Jan 1000 00:00:00 GMT"},
      {253402300799LL, "Fri, 31 Dec 9999 23:59:59 GMT"},
      {253402300800LL, "Sat, 01 Jan 10000 00:00:00 GMT"},
      {-62167305600LL, "Fri, 31 Dec -1 00:00:00 GMT"},
  };
  char mem[64];
  sip_obuf out;
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    sip_obuf_init(&out, mem, sizeof mem - 1);
    CHECK_INT(sip_reg_http_date(&out, cases[i].t), 0);
    mem[out.len] = 0;
    CHECK_CSTR(mem, cases[i].want);
  }
  /* too small: the error, never past the buffer */
  sip_obuf_init(&out, mem, 10);
  CHECK_INT(sip_reg_http_date(&out, 0), SIP_ENOMEM);
  CHECK(out.len <= 10);
  /* a year gmtime cannot hold: nothing written */
  sip_obuf_init(&out, mem, sizeof mem - 1);
  CHECK_INT(sip_reg_http_date(&out, INT64_MAX), SIP_ERANGE);
  CHECK_INT((int)out.len, 0);
}

/* a temporary GRUU read back (sip_reg_temp_gruu_parse): base, n or 0 */
static int tgruu(const char *s, char *base, int64_t *n) {
  sip_uri u;
  sip_str b = SIP_STR_NULL;
  base[0] = 0;
  *n = -1;
  if (sip_uri_parse(&arena, s, strlen(s), &u) < 0)
    return -1;
  int rc = sip_reg_temp_gruu_parse(&u, &b, n);
  if (rc == 1) {
    memcpy(base, b.p, b.len);
    base[b.len] = 0;
  }
  return rc;
}

/* the inverse of the temp-GRUU writer: what it writes reads back, and
 * nothing else is a temporary GRUU */
static void test_temp_gruu_parse(void) {
  char mem[128], base[128];
  int64_t n;
  sip_obuf out;
  sip_obuf_init(&out, mem, sizeof mem - 1);
  sip_reg_temp_gruu(&out, (sip_str)SIP_STR_LIT("sips:alice@example.com"),
                    (sip_str)SIP_STR_LIT("ab12CD"), 7);
  mem[out.len] = 0;
  CHECK_INT(tgruu(mem, base, &n), 1);
  CHECK_CSTR(base, "ab12CD");
  CHECK_INT(n, 7);
  CHECK_INT(tgruu("sip:tgruu.x.123456789012@example.com;lr;gr", base, &n), 1);
  CHECK_CSTR(base, "x");
  CHECK_INT(n, 123456789012LL);
  /* escapes are read decoded (%2e is '.') */
  CHECK_INT(tgruu("sip:tgruu%2eab%2e3@example.com;gr", base, &n), 1);
  CHECK_CSTR(base, "ab");
  CHECK_INT(n, 3);
  /* more digits than 2^63-1 holds: still one, n saturated */
  CHECK_INT(tgruu("sip:tgruu.ab.99999999999999999999999@h;gr", base, &n), 1);
  CHECK(n == INT64_MAX);
  static const char *const nots[] = {
      "sip:tgruu.ab.1@example.com",        /* no gr */
      "sip:tgruu.ab.1@example.com;gr=urn", /* a public GRUU's gr */
      "tel:+1234;gr",
      "sip:example.com;gr",          /* no user */
      "sip:tgruu.@example.com;gr",   /* no base */
      "sip:tgruu..1@example.com;gr", /* empty base */
      "sip:tgruu.ab.@example.com;gr",  /* no number */
      "sip:tgruu.ab@example.com;gr",   /* no second dot */
      "sip:tgruu.a-b.1@example.com;gr", /* base not letters and digits */
      "sip:tgruu.ab.1x@example.com;gr", /* n not digits */
      "sip:tgruu.ab.1.2@example.com;gr",
      "sip:TGRUU.ab.1@example.com;gr", /* the prefix as written */
      "sip:xtgruu.ab.1@example.com;gr",
      "sip:alice@example.com;gr",
  };
  for (size_t i = 0; i < sizeof nots / sizeof *nots; i++)
    CHECK_MSG(tgruu(nots[i], base, &n) == 0, "%s", nots[i]);
}

/* the record of a save: every field, read back */
static void test_record(void) {
  reg("sip:example.com", "Path: <sip:p1.example.com;lr;ob>, <sip:p2;lr>\r\n"
                         "User-Agent: phone\r\n 2.0\r\n");
  sip_reg_change ch = {0};
  ch.key = (sip_str)SIP_STR_LIT("<urn:uuid:1>;2");
  ch.contact = (sip_str)SIP_STR_LIT("sip:a@192.0.2.1;ob");
  ch.params = (sip_str)SIP_STR_LIT(";+x");
  ch.instance = (sip_str)SIP_STR_LIT("<urn:uuid:1>");
  ch.expires = 600;
  ch.q = 250;
  ch.reg_id = 2;
  ch.tgruu_n = 3;
  const sip_addr *paths = NULL;
  CHECK_INT(sip_msg_get_addrs(&msg, SIP_H_PATH, &paths), 0);
  sip_reg_new n = {&ch,
                   SIP_STR_LIT("sip:alice@example.com"),
                   SIP_STR_LIT("c1"),
                   7,
                   paths,
                   SIP_STR_LIT("tcp:127.0.0.1:5070"),
                   SIP_STR_NULL,
                   42,
                   SIP_STR_NULL,
                   SIP_STR_LIT("ab"),
                   1000,
                   999.5};
  CHECK_INT(sip_reg_user_agent(&msg, &n.user_agent), 0);
  CHECK_STR(n.user_agent, "phone 2.0");
  char mem[1024];
  sip_obuf out;
  sip_obuf_init(&out, mem, sizeof mem);
  CHECK_INT(sip_reg_record(&out, &n), 0);
  sip_breader rd;
  CHECK_INT(sip_binding_open(&rd, out.p, out.len), 0);
  CHECK(rd.expires == 1600 && rd.saved == 999.5);
  CHECK_STR(rd.key, "<urn:uuid:1>;2");
  char seen[400] = "";
  sip_bfield f;
  while (sip_binding_next(&rd, &f) == 1) {
    char item[200];
    const char *name = f.id ? sip_binding_field_name(f.id) : "?";
    if (f.type == SIP_BT_STR || f.type == SIP_BT_KEY)
      snprintf(item, sizeof item, "%s=%.*s|", f.id ? name : "", (int)f.str.len,
               f.str.p);
    else if (f.type == SIP_BT_DBL)
      snprintf(item, sizeof item, "%s=%g|", name, f.d);
    else if (f.type == SIP_BT_ARRAY)
      snprintf(item, sizeof item, "%s=[%lld]|", name, (long long)f.i);
    else
      snprintf(item, sizeof item, "%s=%lld|", f.id ? name : "", (long long)f.i);
    if (!f.id)
      snprintf(item, sizeof item, "%.*s|", (int)f.name.len, f.name.p);
    strncat(seen, item, sizeof seen - strlen(seen) - 1);
  }
  CHECK_CSTR(seen, "contact=sip:a@192.0.2.1;ob|q=0.25|call_id=c1|cseq=7|"
                   "path=[2]|received=tcp:127.0.0.1:5070|conn_id|"
                   "instance=<urn:uuid:1>|reg_id=2|user_agent=phone 2.0|"
                   "updated=1000|params=;+x|"
                   "pub_gruu=sip:alice@example.com;gr=urn:uuid:1|"
                   "temp_gruu=sip:tgruu.ab.3@example.com;gr|tgruu_base|"
                   "tgruu_n|");
  sip_obuf_init(&out, mem, 30);
  CHECK_INT(sip_reg_record(&out, &n), SIP_ENOMEM);
}

int main(void) {
  sip_msg_init(&msg, NULL);
  sip_arena_init(&arena, NULL, 0);
  test_check();
  test_contacts();
  test_update();
  test_record();
  test_ok();
  test_http_date();
  test_temp_gruu_parse();
  sip_arena_free(&arena);
  sip_msg_free(&msg);
  return check_summary("plan_test");
}
