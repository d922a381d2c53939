/* Framing, the header index, limits, edits and serialization. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "sip_msg.h"

static const char INVITE[] =
    "INVITE sip:bob@biloxi.example.com SIP/2.0\r\n"
    "Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds\r\n"
    "Max-Forwards: 70\r\n"
    "To: Bob <sip:bob@biloxi.example.com>\r\n"
    "From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n"
    "Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n"
    "CSeq: 314159 INVITE\r\n"
    "Subject: folded\r\n"
    "  across two lines\r\n"
    "Contact: <sip:alice@pc33.atlanta.example.com>\r\n"
    "Content-Type: application/sdp\r\n"
    "l: 4\r\n"
    "\r\n"
    "v=0\n";

static int parse(sip_msg *m, const char *s, int mode) {
  return sip_msg_parse(m, s, strlen(s), mode);
}

static void test_request(void) {
  sip_msg m;
  sip_msg_init(&m, NULL);
  CHECK_INT(parse(&m, INVITE, SIP_MODE_DATAGRAM), (int)strlen(INVITE));
  CHECK(m.is_request);
  CHECK_STR(m.method, "INVITE");
  CHECK_STR(m.ruri, "sip:bob@biloxi.example.com");
  CHECK_STR(m.version, "SIP/2.0");
  CHECK_INT(m.nhdr, 10);
  CHECK_STR(m.body, "v=0\n");
  CHECK(m.has_clen);
  int i = sip_msg_find(&m, SIP_H_CONTENT_LENGTH, NULL, 0, 0);
  CHECK_INT(i, 9);
  CHECK_STR(m.hdr[i].name, "l");
  i = sip_msg_find(&m, SIP_H_SUBJECT, NULL, 0, 0);
  CHECK_STR(m.hdr[i].value, "folded\r\n  across two lines");
  sip_str u;
  CHECK_INT(sip_msg_unfolded(&m, &m.hdr[i], &u), 0);
  CHECK_STR(u, "folded across two lines");
  CHECK_STR(m.hdr[i].raw, "Subject: folded\r\n  across two lines\r\n");
  sip_msg_free(&m);
  /* regression: a lone CR inside a folded value made unfolding loop forever */
  const char *lone_cr =
      "OPTIONS sip:a@b SIP/2.0\r\nSubject: a\rb\r\n c\r\n\r\n";
  sip_msg_init(&m, NULL);
  CHECK(parse(&m, lone_cr, SIP_MODE_DATAGRAM) > 0);
  CHECK_INT(sip_msg_unfolded(&m, &m.hdr[0], &u), 0);
  CHECK_STR(u, "a\rb c");
  sip_msg_free(&m);
  sip_msg_init(&m, NULL);
  CHECK(parse(&m, INVITE, SIP_MODE_DATAGRAM) > 0);
  i = sip_msg_find(&m, SIP_H_SUBJECT, NULL, 0, 0);
  CHECK_INT(sip_msg_count(&m, SIP_H_VIA, NULL, 0), 1);
  CHECK_INT(sip_msg_find(&m, SIP_H_OTHER, "X-Nope", 6, 0), -1);
  uint32_t mf;
  CHECK_INT(sip_msg_get_max_forwards(&m, &mf), 0);
  CHECK_INT(mf, 70);
  uint32_t ex;
  CHECK_INT(sip_msg_get_expires(&m, &ex), SIP_ENOTFOUND);
  sip_str cid;
  CHECK_INT(sip_msg_get_call_id(&m, &cid), 0);
  CHECK_STR(cid, "a84b4c76e66710@pc33.atlanta.example.com");
  sip_msg_free(&m);
}

static void test_response(void) {
  sip_msg m;
  sip_msg_init(&m, NULL);
  const char *r =
      "SIP/2.0 180 Ringing\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n"
      "Content-Length: 0\r\n\r\n";
  CHECK(parse(&m, r, SIP_MODE_DATAGRAM) > 0);
  CHECK(!m.is_request);
  CHECK_INT(m.status, 180);
  CHECK_STR(m.reason, "Ringing");
  CHECK_INT(parse(&m, "SIP/2.0 100 \r\n\r\n", SIP_MODE_DATAGRAM), 16);
  CHECK_INT(m.reason.len, 0);
  CHECK_INT(parse(&m, "SIP/2.0 100\r\n\r\n", SIP_MODE_DATAGRAM), 15);
  CHECK_INT(parse(&m, "SIP/2.0 4294967301 Big\r\n\r\n", SIP_MODE_DATAGRAM),
            SIP_ESTARTLINE);
  CHECK_INT(parse(&m, "SIP/2.0 700 Big\r\n\r\n", SIP_MODE_DATAGRAM),
            SIP_ERANGE);
  CHECK_INT(parse(&m, "SIP/2.0 099 Small\r\n\r\n", SIP_MODE_DATAGRAM),
            SIP_ERANGE);
  CHECK_INT(parse(&m, "SIP/2.0 20x OK\r\n\r\n", SIP_MODE_DATAGRAM),
            SIP_ESTARTLINE);
  sip_msg_free(&m);
}

static void test_start_line_errors(void) {
  sip_msg m;
  sip_msg_init(&m, NULL);
  static const struct {
    const char *msg;
    int err;
  } bad[] = {
      {"INVITE  sip:a@b SIP/2.0\r\n\r\n", SIP_ESTARTLINE},  /* lwsstart */
      {"INVITE sip:a@b SIP/2.0  \r\n\r\n", SIP_EVERSION},   /* trws */
      {"INVITE <sip:a@b> SIP/2.0\r\n\r\n", SIP_ESTARTLINE}, /* ltgtruri */
      {"INVITE sip:a@b; lr SIP/2.0\r\n\r\n", SIP_EVERSION}, /* lwsruri */
      {"INVITE sip:a@b HTTP/1.1\r\n\r\n", SIP_EVERSION},
      {"INV(ITE sip:a@b SIP/2.0\r\n\r\n", SIP_ESTARTLINE},
      {"INVITE\r\n\r\n", SIP_ESTARTLINE},
      {"\r\n\r\n", SIP_ESTARTLINE},
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
    CHECK_MSG(parse(&m, bad[i].msg, SIP_MODE_DATAGRAM) == bad[i].err,
              "case %zu", i);
  CHECK(parse(&m, "OPTIONS sip:a@b SIP/7.0\r\n\r\n", SIP_MODE_DATAGRAM) > 0);
  CHECK_STR(m.version, "SIP/7.0");
  char err[128];
  int rc = parse(&m, "INVITE  sip:a@b SIP/2.0\r\n\r\n", SIP_MODE_DATAGRAM);
  sip_msg_strerror(&m, rc, err, sizeof(err));
  CHECK_MSG(strstr(err, "PARSE: Request-URI at byte 7") == err, "%s", err);
  sip_msg_free(&m);
}

static void test_framing(void) {
  sip_msg m;
  sip_msg_init(&m, NULL);
  const char *head = "OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 5\r\n\r\n";
  char two[256];
  snprintf(two, sizeof(two), "\r\n\r\n%sHELLO%sWORLD", head, head);
  size_t one = 4 + strlen(head) + 5;
  /* stream mode: every prefix of the first message is incomplete */
  for (size_t n = 0; n < one; n++)
    CHECK_MSG(sip_msg_parse(&m, two, n, SIP_MODE_STREAM) == SIP_ENEEDMORE,
              "prefix %zu", n);
  CHECK_INT(sip_msg_parse(&m, two, strlen(two), SIP_MODE_STREAM), (int)one);
  CHECK_STR(m.body, "HELLO");
  CHECK_INT(sip_msg_parse(&m, two + one, strlen(two) - one, SIP_MODE_STREAM),
            (int)(strlen(two) - one));
  CHECK_STR(m.body, "WORLD");
  /* datagram mode: trailing junk is ignored, not part of the message */
  CHECK_INT(parse(&m, two, SIP_MODE_DATAGRAM), (int)strlen(two));
  CHECK_INT(m.len, strlen(head) + 5);
  CHECK_STR(m.body, "HELLO");
  /* no Content-Length: the rest of a datagram, nothing on a stream */
  const char *nocl = "OPTIONS sip:a@b SIP/2.0\r\nVia: x\r\n\r\nbody";
  CHECK(parse(&m, nocl, SIP_MODE_DATAGRAM) > 0);
  CHECK_STR(m.body, "body");
  CHECK_INT(parse(&m, nocl, SIP_MODE_STREAM), (int)strlen(nocl) - 4);
  CHECK_INT(m.body.len, 0);
  /* bad lengths */
  CHECK_INT(parse(&m, "OPTIONS sip:a@b SIP/2.0\r\nl: -999\r\n\r\n",
                  SIP_MODE_DATAGRAM),
            SIP_ECLEN);
  CHECK_INT(parse(&m, "OPTIONS sip:a@b SIP/2.0\r\nl: 9999\r\n\r\nabc",
                  SIP_MODE_DATAGRAM),
            SIP_ESHORTBODY);
  CHECK_INT(parse(&m, "OPTIONS sip:a@b SIP/2.0\r\nl: 9999\r\n\r\nabc",
                  SIP_MODE_STREAM),
            SIP_ENEEDMORE);
  CHECK_INT(parse(&m,
                  "OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 3\r\n"
                  "Content-Length: 3\r\n\r\nabc",
                  SIP_MODE_DATAGRAM),
            SIP_ECLEN);
  CHECK_INT(parse(&m,
                  "OPTIONS sip:a@b SIP/2.0\r\nl: 99999999999999999999\r\n\r\n",
                  SIP_MODE_DATAGRAM),
            SIP_ETOOBIG);
  /* header section without an empty line */
  CHECK_INT(parse(&m, "OPTIONS sip:a@b SIP/2.0\r\nl: 0\r\n", SIP_MODE_DATAGRAM),
            SIP_EHEADER);
  CHECK_INT(parse(&m, "OPTIONS sip:a@b SIP/2.0\r\nl: 0\r\n", SIP_MODE_STREAM),
            SIP_ENEEDMORE);
  /* bare LF line ends are accepted */
  CHECK(parse(&m, "OPTIONS sip:a@b SIP/2.0\nVia: x\n  y\nl: 1\n\nZ",
              SIP_MODE_DATAGRAM) > 0);
  CHECK_STR(m.hdr[0].value, "x\n  y");
  CHECK_STR(m.body, "Z");
  /* a header line without a colon, and a fold right after the start line */
  CHECK_INT(
      parse(&m, "OPTIONS sip:a@b SIP/2.0\r\nVia x\r\n\r\n", SIP_MODE_DATAGRAM),
      SIP_EHEADER);
  CHECK_INT(
      parse(&m, "OPTIONS sip:a@b SIP/2.0\r\n x: y\r\n\r\n", SIP_MODE_DATAGRAM),
      SIP_EHEADER);
  sip_msg_free(&m);
}

static void test_limits(void) {
  sip_limits lim = {.max_size = 100, .max_headers = 3, .max_line = 40};
  sip_msg m;
  sip_msg_init(&m, &lim);
  CHECK(parse(&m, "OPTIONS sip:a@b SIP/2.0\r\na: 1\r\nb: 2\r\nc: 3\r\n\r\n",
              SIP_MODE_DATAGRAM) > 0);
  CHECK_INT(
      parse(&m,
            "OPTIONS sip:a@b SIP/2.0\r\na: 1\r\nb: 2\r\nc: 3\r\nd: 4\r\n\r\n",
            SIP_MODE_DATAGRAM),
      SIP_ETOOMANY);
  CHECK_INT(parse(&m,
                  "OPTIONS sip:a@b SIP/2.0\r\na: "
                  "0123456789012345678901234567890123456789\r\n\r\n",
                  SIP_MODE_DATAGRAM),
            SIP_ELINELEN);
  CHECK_INT(parse(&m,
                  "OPTIONS sip:a@b SIP/2.0\r\na: 01234567890123456789\r\n"
                  " 01234567890123456789\r\n\r\n",
                  SIP_MODE_DATAGRAM),
            SIP_ELINELEN);
  CHECK_INT(
      parse(&m, "OPTIONS sip:a@b SIP/2.0\r\nl: 90\r\n\r\n", SIP_MODE_DATAGRAM),
      SIP_ETOOBIG);
  char big[300];
  memset(big, 'x', sizeof(big));
  memcpy(big, "OPTIONS sip:a@b SIP/2.0\r\n", 25);
  CHECK_INT(sip_msg_parse(&m, big, sizeof(big), SIP_MODE_STREAM), SIP_ELINELEN);
  /* a limit that cuts the line after a header still indexes that header
   * (the layer above may answer 513 with it), but not one a fold might
   * still continue */
  CHECK_INT(parse(&m,
                  "OPTIONS sip:a@b SIP/2.0\r\nCSeq: 1 OPTIONS\r\nX: "
                  "0123456789012345678901234567890123456789",
                  SIP_MODE_DATAGRAM),
            SIP_ELINELEN);
  CHECK_INT(sip_msg_find(&m, SIP_H_CSEQ, NULL, 0, 0), 0);
  CHECK_INT(parse(&m,
                  "OPTIONS sip:a@b SIP/2.0\r\nCSeq: 1 OPTIONS\r\n "
                  "0123456789012345678901234567890123456789",
                  SIP_MODE_DATAGRAM),
            SIP_ELINELEN);
  CHECK_INT(sip_msg_find(&m, SIP_H_CSEQ, NULL, 0, 0), -1);
  sip_msg_free(&m);

  /* more headers than the inline index holds: the index grows in the arena */
  char many[8192];
  size_t n =
      (size_t)snprintf(many, sizeof(many), "OPTIONS sip:a@b SIP/2.0\r\n");
  for (int i = 0; i < 100; i++)
    n += (size_t)snprintf(many + n, sizeof(many) - n, "X-H%d: %d\r\n", i, i);
  n += (size_t)snprintf(many + n, sizeof(many) - n, "\r\n");
  sip_msg_init(&m, NULL);
  CHECK_INT(sip_msg_parse(&m, many, n, SIP_MODE_DATAGRAM), (int)n);
  CHECK_INT(m.nhdr, 100);
  CHECK_INT(sip_msg_find(&m, SIP_H_OTHER, "x-h99", 5, 0), 99);
  CHECK_STR(m.hdr[99].value, "99");
  sip_msg_free(&m);
}

static void test_table(void) {
  static const struct {
    const char *name;
    int id;
  } names[] = {
      {"via", SIP_H_VIA},
      {"v", SIP_H_VIA},
      {"VIA", SIP_H_VIA},
      {"f", SIP_H_FROM},
      {"t", SIP_H_TO},
      {"i", SIP_H_CALL_ID},
      {"call-id", SIP_H_CALL_ID},
      {"m", SIP_H_CONTACT},
      {"l", SIP_H_CONTENT_LENGTH},
      {"c", SIP_H_CONTENT_TYPE},
      {"e", SIP_H_CONTENT_ENCODING},
      {"k", SIP_H_SUPPORTED},
      {"s", SIP_H_SUBJECT},
      {"o", SIP_H_EVENT},
      {"u", SIP_H_ALLOW_EVENTS},
      {"r", SIP_H_REFER_TO},
      {"b", SIP_H_REFERRED_BY},
      {"x", SIP_H_SESSION_EXPIRES},
      {"y", SIP_H_IDENTITY},
      {"n", SIP_H_IDENTITY_INFO},
      {"a", SIP_H_ACCEPT_CONTACT},
      {"j", SIP_H_REJECT_CONTACT},
      {"d", SIP_H_REQUEST_DISPOSITION},
      {"MaX-fOrWaRdS", SIP_H_MAX_FORWARDS},
      {"www-authenticate", SIP_H_WWW_AUTHENTICATE},
      {"C%6Fntact", SIP_H_OTHER},
      {"q", SIP_H_OTHER},
      {"Vias", SIP_H_OTHER},
      {"X-Custom", SIP_H_OTHER},
  };
  for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
    CHECK_MSG(sip_hdr_lookup(names[i].name, strlen(names[i].name)) ==
                  names[i].id,
              "%s", names[i].name);
  /* every canonical name maps back to its own id */
  for (int id = 1; id < SIP_H__COUNT; id++) {
    const char *c = sip_hdr_canonical(id);
    CHECK_MSG(sip_hdr_lookup(c, strlen(c)) == id, "%s", c);
  }
  CHECK(sip_hdr_flags(SIP_H_CONTACT) & SIP_HF_LIST);
  CHECK(sip_hdr_flags(SIP_H_CALL_ID) & SIP_HF_REQUIRED);
  CHECK(sip_hdr_canonical(SIP_H_OTHER) == NULL);
  CHECK(strcmp(sip_errname(SIP_ECLEN), "CLEN") == 0);
  CHECK(strcmp(sip_errname(-5), "UNKNOWN") == 0);
}

static char *serialize(sip_msg *m, size_t *len) {
  *len = sip_msg_size(m);
  char *out = malloc(*len + 1);
  int n = sip_msg_write(m, out, *len);
  if (n < 0 || (size_t)n != *len) {
    free(out);
    return NULL;
  }
  out[*len] = '\0';
  return out;
}

static void test_edits(void) {
  sip_msg m;
  sip_msg_init(&m, NULL);
  CHECK(parse(&m, INVITE, SIP_MODE_DATAGRAM) > 0);
  size_t len;
  char *out = serialize(&m, &len);
  CHECK(out && len == strlen(INVITE) && memcmp(out, INVITE, len) == 0);
  free(out);
  CHECK_INT(sip_msg_write(&m, (char[8]){0}, 8), SIP_EINVAL);

  CHECK_INT(sip_msg_set_ruri(&m, "sip:bob@192.0.2.4:5062", 22), 0);
  CHECK_INT(sip_msg_insert_header(
                &m, sip_msg_find(&m, SIP_H_VIA, NULL, 0, 0), SIP_H_VIA, NULL, 0,
                "SIP/2.0/UDP proxy.example.com;branch=z9hG4bKp1", 46),
            0);
  int mf = sip_msg_find(&m, SIP_H_MAX_FORWARDS, NULL, 0, 0);
  CHECK_INT(sip_msg_replace_value(&m, mf, "69", 2), 0);
  CHECK_INT(
      sip_msg_remove_header(&m, sip_msg_find(&m, SIP_H_SUBJECT, NULL, 0, 0)),
      0);
  CHECK_INT(sip_msg_insert_header(&m, -1, SIP_H_OTHER, "Record-Route", 12,
                                  "<sip:proxy.example.com;lr>", 26),
            0);
  CHECK_INT(sip_msg_set_body(&m, "v=0\r\no=x\r\n", 10), 0);
  CHECK_INT(sip_msg_insert_header(&m, -1, SIP_H_OTHER, "Bad", 3,
                                  "a\r\nInjected: 1", 15),
            SIP_EINVAL);
  CHECK_INT(sip_msg_insert_header(&m, -1, SIP_H_OTHER, "Bad Name", 8, "a", 1),
            SIP_EINVAL);
  out = serialize(&m, &len);
  const char *want =
      "INVITE sip:bob@192.0.2.4:5062 SIP/2.0\r\n"
      "Via: SIP/2.0/UDP proxy.example.com;branch=z9hG4bKp1\r\n"
      "Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds\r\n"
      "Max-Forwards: 69\r\n"
      "To: Bob <sip:bob@biloxi.example.com>\r\n"
      "From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n"
      "Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n"
      "CSeq: 314159 INVITE\r\n"
      "Contact: <sip:alice@pc33.atlanta.example.com>\r\n"
      "Content-Type: application/sdp\r\n"
      "l: 10\r\n"
      "Record-Route: <sip:proxy.example.com;lr>\r\n"
      "\r\n"
      "v=0\r\no=x\r\n";
  CHECK_MSG(out && strcmp(out, want) == 0, "got:\n%s", out ? out : "(null)");
  /* the edited text parses again to the same fields */
  sip_msg m2;
  sip_msg_init(&m2, NULL);
  CHECK_INT(sip_msg_parse(&m2, out, len, SIP_MODE_STREAM), (int)len);
  CHECK_STR(m2.ruri, "sip:bob@192.0.2.4:5062");
  CHECK_INT(sip_msg_count(&m2, SIP_H_VIA, NULL, 0), 2);
  CHECK_STR(m2.body, "v=0\r\no=x\r\n");
  sip_msg_free(&m2);
  free(out);

  uint32_t v;
  CHECK_INT(sip_msg_get_max_forwards(&m, &v), 0);
  CHECK_INT(v, 69);
  CHECK_INT(sip_msg_set_status(&m, 200, "OK", 2), SIP_EINVAL);
  sip_msg_free(&m);

  sip_msg_init(&m, NULL);
  CHECK(parse(&m, "SIP/2.0 180 Ringing\r\nl: 0\r\n\r\n", SIP_MODE_DATAGRAM) >
        0);
  CHECK_INT(sip_msg_set_status(&m, 486, "Busy Here", 9), 0);
  out = serialize(&m, &len);
  CHECK_MSG(out && strcmp(out, "SIP/2.0 486 Busy Here\r\nl: 0\r\n\r\n") == 0,
            "%s", out ? out : "(null)");
  free(out);
  sip_msg_free(&m);
}

/* sip_msg_pop_via: one value at a time, across lines; empty lines skipped. */
static void test_pop_via(void) {
  static const char R[] =
      "SIP/2.0 200 OK\r\n"
      "Via: ,\r\n"
      "Via: SIP/2.0/UDP a.example;branch=z9hG4bK1 ,  SIP/2.0/TCP "
      "b.example;branch=z9hG4bK2\r\n"
      "v: SIP/2.0/UDP c.example;branch=z9hG4bK3\r\n"
      "To: <sip:b@x>;tag=t\r\nFrom: <sip:a@x>;tag=f\r\nCall-ID: c\r\n"
      "CSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n";
  sip_msg m;
  sip_msg_init(&m, NULL);
  CHECK(parse(&m, R, SIP_MODE_DATAGRAM) >= 0);
  sip_str v;
  CHECK_INT(sip_msg_pop_via(&m, &v), 1);
  CHECK_STR(v, "SIP/2.0/UDP a.example;branch=z9hG4bK1");
  const sip_via *top;
  CHECK_INT(sip_msg_get_vias(&m, &top), 0);
  CHECK_STR(top->branch, "z9hG4bK2");
  char out[1024];
  int n = sip_msg_write(&m, out, sizeof out);
  CHECK(n > 0);
  out[n > 0 ? n : 0] = 0;
  CHECK(strstr(out, "\r\nVia: SIP/2.0/TCP b.example;branch=z9hG4bK2\r\n"));
  CHECK(strstr(out, "Via: ,") == NULL);
  CHECK_INT(sip_msg_pop_via(&m, &v), 1);
  CHECK_STR(v, "SIP/2.0/TCP b.example;branch=z9hG4bK2");
  CHECK_INT(sip_msg_pop_via(&m, &v), 1);
  CHECK_STR(v, "SIP/2.0/UDP c.example;branch=z9hG4bK3");
  CHECK_INT(sip_msg_pop_via(&m, &v), 0);
  CHECK_INT(sip_msg_get_vias(&m, &top), SIP_ENOTFOUND);
  sip_msg_free(&m);
}

/* sip_msg_set_header, sip_msg_add_header, sip_msg_remove_headers: the
 * compound edits of msg:set_header, add_header, remove_header, push_via */
static void test_header_edits(void) {
  static const char REQ[] = "OPTIONS sip:a@b SIP/2.0\r\n"
                            "X-A: 1\r\n"
                            "Subject: s\r\n"
                            "x-a: 2\r\n"
                            "X-A: 3\r\n"
                            "\r\n";
  sip_msg m;
  sip_msg_init(&m, NULL);
  CHECK(parse(&m, REQ, SIP_MODE_DATAGRAM) > 0);
  /* set: the first line gets the value, the others go (names matched
   * case-insensitively) */
  CHECK_INT(sip_msg_set_header(&m, SIP_H_OTHER, "X-a", 3, "new", 3), 0);
  CHECK_INT(sip_msg_count(&m, SIP_H_OTHER, "X-A", 3), 1);
  /* set of an absent header appends it; the compact form finds the long */
  CHECK_INT(sip_msg_set_header(&m, SIP_H_OTHER, "Priority", 8, "urgent", 6), 0);
  CHECK_INT(sip_msg_set_header(&m, SIP_H_SUBJECT, "s", 1, "t", 1), 0);
  /* add: last by default, first before the first line of the name */
  CHECK_INT(sip_msg_add_header(&m, SIP_H_OTHER, "X-B", 3, "last", 4, 0), 0);
  CHECK_INT(sip_msg_add_header(&m, SIP_H_OTHER, "X-A", 3, "top", 3, 1), 0);
  /* first with none of the name: at the top (push_via) */
  CHECK_INT(sip_msg_add_header(&m, SIP_H_VIA, NULL, 0,
                               "SIP/2.0/UDP p.example;branch=z9hG4bKx", 37, 1),
            0);
  CHECK_INT(sip_msg_add_header(&m, SIP_H_VIA, NULL, 0,
                               "SIP/2.0/UDP q.example;branch=z9hG4bKy", 37, 1),
            0);
  /* bad values and names change nothing */
  CHECK_INT(sip_msg_set_header(&m, SIP_H_OTHER, "X-A", 3, "a\r\nB: 1", 8),
            SIP_EINVAL);
  CHECK_INT(sip_msg_add_header(&m, SIP_H_OTHER, "X A", 3, "v", 1, 0),
            SIP_EINVAL);
  size_t len;
  char *out = serialize(&m, &len);
  const char *want = "OPTIONS sip:a@b SIP/2.0\r\n"
                     "Via: SIP/2.0/UDP q.example;branch=z9hG4bKy\r\n"
                     "Via: SIP/2.0/UDP p.example;branch=z9hG4bKx\r\n"
                     "X-A: top\r\n"
                     "X-A: new\r\n"
                     "Subject: t\r\n"
                     "Priority: urgent\r\n"
                     "X-B: last\r\n"
                     "\r\n";
  CHECK_MSG(out && strcmp(out, want) == 0, "got:\n%s", out ? out : "(null)");
  free(out);
  /* remove: every line of the name, and how many */
  CHECK_INT(sip_msg_remove_headers(&m, SIP_H_OTHER, "x-a", 3), 2);
  CHECK_INT(sip_msg_remove_headers(&m, SIP_H_OTHER, "x-a", 3), 0);
  CHECK_INT(sip_msg_remove_headers(&m, SIP_H_VIA, NULL, 0), 2);
  const sip_via *v;
  CHECK_INT(sip_msg_get_vias(&m, &v), SIP_ENOTFOUND);
  out = serialize(&m, &len);
  CHECK_MSG(out && strcmp(out, "OPTIONS sip:a@b SIP/2.0\r\n"
                               "Subject: t\r\n"
                               "Priority: urgent\r\n"
                               "X-B: last\r\n"
                               "\r\n") == 0,
            "got:\n%s", out ? out : "(null)");
  free(out);
  sip_msg_free(&m);
}

/* sip_msg_field_strerror: the text of a failed lazy field read */
static void test_field_strerror(void) {
  static const char REQ[] = "OPTIONS sip:a@b SIP/2.0\r\n"
                            "CSeq: x OPTIONS\r\n"
                            "Authorization: ,\r\n"
                            "\r\n";
  sip_msg m;
  char buf[128];
  sip_msg_init(&m, NULL);
  CHECK(parse(&m, REQ, SIP_MODE_DATAGRAM) > 0);
  const sip_cseq *c;
  m.err_what = NULL;
  int rc = sip_msg_get_cseq(&m, &c);
  CHECK_INT(rc, SIP_ECSEQ);
  size_t n = sip_msg_field_strerror(&m, rc, 0, "CSeq", buf, sizeof buf);
  CHECK_MSG(strcmp(buf, "PARSE: CSeq at byte 25: malformed CSeq") == 0,
            "got '%s'", buf);
  CHECK_INT(n, strlen(buf));
  /* the Request-URI's place */
  sip_msg_field_strerror(&m, SIP_EURI, SIP_MSG_AT_RURI, "Request-URI", buf,
                         sizeof buf);
  CHECK_MSG(strcmp(buf, "PARSE: Request-URI at byte 8: malformed URI") == 0,
            "got '%s'", buf);
  /* no place: an edited line, no line, a response's Request-URI */
  const sip_auth *a;
  CHECK_INT(sip_msg_get_auth(&m, 1, &a), SIP_EVALUE);
  sip_msg_field_strerror(&m, SIP_EVALUE, 1, "Authorization", buf, sizeof buf);
  CHECK_MSG(strcmp(buf, "PARSE: Authorization at byte 42: malformed header "
                        "value") == 0,
            "got '%s'", buf);
  CHECK_INT(sip_msg_replace_value(&m, 1, ",,", 2), 0);
  sip_msg_field_strerror(&m, SIP_EVALUE, 1, "Authorization", buf, sizeof buf);
  CHECK_MSG(strcmp(buf, "PARSE: Authorization: malformed header value") == 0,
            "got '%s'", buf);
  sip_msg_field_strerror(&m, SIP_EVALUE, -1, "X", buf, sizeof buf);
  CHECK_MSG(strcmp(buf, "PARSE: X: malformed header value") == 0, "got '%s'",
            buf);
  /* a place the accessor recorded wins; a short buffer is cut */
  m.err_what = "URI";
  m.err_off = 3;
  sip_msg_field_strerror(&m, SIP_EURI, 0, "CSeq", buf, sizeof buf);
  CHECK_MSG(strcmp(buf, "PARSE: URI at byte 3: malformed URI") == 0, "got '%s'",
            buf);
  m.err_what = NULL;
  CHECK_INT(sip_msg_field_strerror(&m, SIP_EURI, 0, "CSeq", buf, 6), 5);
  CHECK(strcmp(buf, "PARSE") == 0);
  sip_msg_free(&m);
  sip_msg_init(&m, NULL);
  CHECK(parse(&m, "SIP/2.0 200 OK\r\n\r\n", SIP_MODE_DATAGRAM) > 0);
  sip_msg_field_strerror(&m, SIP_EURI, SIP_MSG_AT_RURI, "Request-URI", buf,
                         sizeof buf);
  CHECK_MSG(strcmp(buf, "PARSE: Request-URI: malformed URI") == 0, "got '%s'",
            buf);
  sip_msg_free(&m);
}

/* sip_values (msg:header, msg:headers) and sip_msg_find_nth (msg:auth) */
static void test_values(void) {
  static const char REQ[] = "OPTIONS sip:a@b SIP/2.0\r\n"
                            "Contact: <sip:a@x>, ,\"q, r\" <sip:b@y>\r\n"
                            "Subject: one,\r\n two\r\n"
                            "m: <sip:c@z>\r\n"
                            "Contact: \"open <sip:d@w>, <sip:e@v>\r\n"
                            "Subject:\r\n"
                            "X-Empty:\r\n"
                            "\r\n";
  sip_msg m;
  sip_values it;
  sip_str v;
  sip_msg_init(&m, NULL);
  CHECK(parse(&m, REQ, SIP_MODE_DATAGRAM) > 0);
  /* split: items of every Contact line (long and compact names), the empty
   * one skipped, commas in quotes kept; a line that does not split is one
   * item */
  const char *want[] = {"<sip:a@x>", "\"q, r\" <sip:b@y>", "<sip:c@z>",
                        "\"open <sip:d@w>, <sip:e@v>"};
  sip_values_init(&it, &m, SIP_H_CONTACT, NULL, 0, 1);
  for (int k = 0; k < 4; k++) {
    CHECK_INT(sip_values_next(&it, &v), 1);
    CHECK_STR(v, want[k]);
  }
  CHECK_INT(sip_values_next(&it, &v), 0);
  CHECK_INT(sip_values_next(&it, &v), 0);
  /* not split: one value per line */
  sip_values_init(&it, &m, SIP_H_CONTACT, NULL, 0, 0);
  CHECK_INT(sip_values_next(&it, &v), 1);
  CHECK_STR(v, "<sip:a@x>, ,\"q, r\" <sip:b@y>");
  CHECK_INT(sip_values_next(&it, &v), 1);
  CHECK_INT(sip_values_next(&it, &v), 1);
  CHECK_INT(sip_values_next(&it, &v), 0);
  /* split asked of a header that is not a list: whole lines, unfolded, an
   * empty value as "" */
  sip_values_init(&it, &m, SIP_H_SUBJECT, NULL, 0, 1);
  CHECK_INT(sip_values_next(&it, &v), 1);
  CHECK_STR(v, "one, two");
  CHECK_INT(sip_values_next(&it, &v), 1);
  CHECK(v.p != NULL && v.len == 0);
  CHECK_INT(sip_values_next(&it, &v), 0);
  /* unknown names by name, case-insensitively; absent: nothing */
  sip_values_init(&it, &m, SIP_H_OTHER, "x-empty", 7, 1);
  CHECK_INT(sip_values_next(&it, &v), 1);
  CHECK(v.p != NULL && v.len == 0);
  CHECK_INT(sip_values_next(&it, &v), 0);
  sip_values_init(&it, &m, SIP_H_ROUTE, NULL, 0, 1);
  CHECK_INT(sip_values_next(&it, &v), 0);
  /* edits show: a removed line is skipped */
  CHECK_INT(sip_msg_remove_header(&m, 0), 0);
  sip_values_init(&it, &m, SIP_H_CONTACT, NULL, 0, 1);
  CHECK_INT(sip_values_next(&it, &v), 1);
  CHECK_STR(v, "<sip:c@z>");
  /* the n-th line */
  CHECK_INT(sip_msg_find_nth(&m, SIP_H_SUBJECT, NULL, 0, 1), 1);
  CHECK_INT(sip_msg_find_nth(&m, SIP_H_SUBJECT, NULL, 0, 2), 4);
  CHECK_INT(sip_msg_find_nth(&m, SIP_H_SUBJECT, NULL, 0, 3), -1);
  CHECK_INT(sip_msg_find_nth(&m, SIP_H_SUBJECT, NULL, 0, 0), -1);
  CHECK_INT(sip_msg_find_nth(&m, SIP_H_SUBJECT, NULL, 0, -1), -1);
  CHECK_INT(sip_msg_find_nth(&m, SIP_H_CONTACT, NULL, 0, 1), 2);
  sip_msg_free(&m);
}

int main(void) {
  test_request();
  test_response();
  test_start_line_errors();
  test_framing();
  test_limits();
  test_table();
  test_edits();
  test_pop_via();
  test_header_edits();
  test_field_strerror();
  test_values();
  return check_summary("test_msg");
}
