/* SDP parser, writer and builder (csrc/sdp). Every input is copied to a
 * malloc'd block of exactly its length (no NUL after it), so ASan flags any
 * read past the end. The real-world descriptions are read from
 * spec/fixtures/sdp. */
#include <stdlib.h>
#include <string.h>

#include "../../test/check.h"
#include "sip_sdp.h"
#include "test/tree.h"

#define MAXL 256
static sip_sdp_line lines[MAXL];
static char *copies[256];
static int ncopies;

static int parse_n(sip_sdp *s, const char *text, size_t len) {
  char *p = malloc(len ? len : 1);
  if (!p)
    abort();
  memcpy(p, text, len);
  int rc = sip_sdp_parse(s, p, len, lines, MAXL);
  /* the slices point into p: freed at the end of the run */
  if (ncopies < (int)(sizeof copies / sizeof copies[0]))
    copies[ncopies++] = p;
  else
    abort();
  return rc;
}

static int parse(sip_sdp *s, const char *text) {
  return parse_n(s, text, strlen(text));
}

/* Written back from the parsed lines (values kept): the input, byte for
 * byte. */
static int roundtrip_exact(const char *text, size_t len) {
  sip_sdp s;
  int n = parse_n(&s, text, len);
  if (n <= 0)
    return 0;
  int need =
      sip_sdp_write(lines, s.nlines, s.lf_only, s.last_eol, NULL, 0, NULL);
  if (need < 0 || (size_t)need != len)
    return 0;
  char *out = malloc((size_t)need + 1);
  int w = sip_sdp_write(lines, s.nlines, s.lf_only, s.last_eol, out,
                        (size_t)need, NULL);
  int ok = w == need && memcmp(out, text, len) == 0;
  /* and from the fields alone, when every line is canonical */
  int canon = 1;
  for (uint32_t i = 0; i < s.nlines; i++)
    canon &= sip_sdp_line_canonical(&lines[i]);
  if (canon) {
    for (uint32_t i = 0; i < s.nlines; i++)
      if (lines[i].type != 'v' && !strchr("siuepkzr", lines[i].type))
        lines[i].value = SIP_STR_NULL;
    w = sip_sdp_write(lines, s.nlines, s.lf_only, s.last_eol, out, (size_t)need,
                      NULL);
    ok = ok && w == need && memcmp(out, text, len) == 0;
  }
  free(out);
  return ok;
}

/* The SDP fixtures both round trips read (spec/fixtures/sdp). */
static const char *const fixtures[] = {"sipp_uac.sdp", "baresip.sdp",
                                       "chrome_webrtc.sdp", "rfc8866_lf.sdp",
                                       "repeat_noeol.sdp"};
#define NFIXTURES (sizeof fixtures / sizeof fixtures[0])

/* Fixture i's text, malloc'd (*len bytes), or NULL when it cannot be read
 * (a failed check). */
static char *fixture(size_t i, size_t *len) {
  char path[1024];
  snprintf(path, sizeof path, "%s/../fixtures/sdp/%s", LUASIP_VECTORS_DIR,
           fixtures[i]);
  char *text = slurp(path, len);
  CHECK_MSG(text != NULL, "cannot read %s", path);
  return text;
}

static void test_fixtures(void) {
  for (size_t i = 0; i < NFIXTURES; i++) {
    size_t len;
    char *text = fixture(i, &len);
    if (!text)
      continue;
    CHECK_MSG(roundtrip_exact(text, len), "%s does not round-trip",
              fixtures[i]);
    free(text);
  }
}

static void test_fields(void) {
  sip_sdp s;
  const char *t = "v=0\r\n"
                  "o=alice 2890844526 2890844527 IN IP4 host.example.com\r\n"
                  "s=-\r\n"
                  "c=IN IP4 192.0.2.10\r\n"
                  "b=AS:64\r\n"
                  "t=0 0\r\n"
                  "a=sendrecv\r\n"
                  "m=audio 49170 RTP/AVP 0 8 97\r\n"
                  "a=rtpmap:97 iLBC/8000\r\n"
                  "a=fmtp:97 mode=30\r\n"
                  "m=video 51372/2 RTP/SAVP 31\r\n"
                  "a=inactive\r\n";
  CHECK_INT(parse(&s, t), 12);
  CHECK_INT(s.nmedia, 2);
  CHECK_INT(s.first_media, 7);
  CHECK_INT(s.lf_only, 0);
  CHECK_INT(s.last_eol, 1);
  CHECK_STR(lines[1].u.o.username, "alice");
  CHECK_STR(lines[1].u.o.sess_id, "2890844526");
  CHECK_STR(lines[1].u.o.sess_version, "2890844527");
  CHECK_STR(lines[1].u.o.address, "host.example.com");
  CHECK_STR(lines[3].u.c.address, "192.0.2.10");
  CHECK_STR(lines[4].u.b.bwtype, "AS");
  CHECK_STR(lines[4].u.b.bandwidth, "64");
  CHECK_STR(lines[5].u.t.stop, "0");
  CHECK_STR(lines[6].u.a.name, "sendrecv");
  CHECK(lines[6].u.a.value.p == NULL);
  CHECK_STR(lines[7].u.m.media, "audio");
  CHECK_STR(lines[7].u.m.port, "49170");
  CHECK(lines[7].u.m.nports.p == NULL);
  CHECK_STR(lines[7].u.m.proto, "RTP/AVP");
  CHECK_STR(lines[7].u.m.fmts, "0 8 97");
  CHECK_STR(lines[8].u.a.name, "rtpmap");
  CHECK_STR(lines[8].u.a.value, "97 iLBC/8000");
  CHECK_STR(lines[10].u.m.port, "51372");
  CHECK_STR(lines[10].u.m.nports, "2");
  CHECK_STR(lines[10].u.m.proto, "RTP/SAVP");
  /* "a=x:" has an empty value, not an absent one */
  CHECK_INT(parse(&s, "v=0\no=- 1 1 IN IP4 h\ns=\na=x:\nm=audio 0 RTP/AVP"), 5);
  CHECK_INT(s.lf_only, 1);
  CHECK_INT(s.last_eol, 0);
  CHECK(lines[3].u.a.value.p != NULL && lines[3].u.a.value.len == 0);
  CHECK(lines[4].u.m.fmts.p == NULL);
  CHECK_INT(s.nmedia, 1);
}

/* Extra spaces are accepted; the line is then not canonical and only its
 * kept value writes it back as it was. */
static void test_lenient(void) {
  sip_sdp s;
  const char *t = "v=0\r\no=-  1 1 IN IP4 h \r\ns=-\r\nt=0  0\r\n"
                  "m=audio 4000 RTP/AVP  0   8 \r\n";
  CHECK_INT(parse(&s, t), 5);
  CHECK_INT(sip_sdp_line_canonical(&lines[0]), 1);
  CHECK_INT(sip_sdp_line_canonical(&lines[1]), 0);
  CHECK_INT(sip_sdp_line_canonical(&lines[2]), 1);
  CHECK_INT(sip_sdp_line_canonical(&lines[3]), 0);
  CHECK_INT(sip_sdp_line_canonical(&lines[4]), 0);
  CHECK_STR(lines[4].u.m.fmts, "0   8");
  /* the same fields as the canonical text: numbers and format lists */
  {
    sip_sdp_line c;
    const char *what;
    CHECK_INT(sip_sdp_parse_line('m', "audio 04000 RTP/AVP 0 8", 23, &c, &what),
              0);
    CHECK(sip_sdp_line_equal(&lines[4], &c));
    CHECK_INT(sip_sdp_parse_line('m', "audio 4000 RTP/AVP 0 18", 23, &c, &what),
              0);
    CHECK(!sip_sdp_line_equal(&lines[4], &c));
    CHECK_INT(
        sip_sdp_parse_line('m', "audio 4000/2 RTP/AVP 0 8", 24, &c, &what), 0);
    CHECK(!sip_sdp_line_equal(&lines[4], &c));
    CHECK(!sip_sdp_line_equal(&lines[4], &lines[3]));
  }
  CHECK(roundtrip_exact(t, strlen(t)));
  char out[128];
  lines[4].value = SIP_STR_NULL;
  lines[4].u.m.fmts = SIP_STR_LIT("0 8");
  int n = sip_sdp_write(lines + 4, 1, 0, 1, out, sizeof out, NULL);
  CHECK_INT(n, 26);
  CHECK(n == 26 && memcmp(out, "m=audio 4000 RTP/AVP 0 8\r\n", 26) == 0);
}

static void test_malformed(void) {
  static const struct {
    const char *text;
    uint32_t line;
    const char *what;
  } bad[] = {
      {"", 1, "empty description"},
      {"v=0\r\n", 2, "no o= or s= line"},
      {"o=- 1 1 IN IP4 h\r\n", 1, "does not start with v="},
      {"v=0\r\ns=-\r\n", 2, "o= must follow v="},
      {"v=0\r\no=- 1 1 IN IP4 h\r\nt=0 0\r\n", 3, "s= must follow o="},
      {"v=x\r\n", 1, "v= line: version is not a number"},
      {"v=0\r\no=- 1 1 IN IP4\r\ns=-\r\n", 2, "o= line: fewer than 6 fields"},
      {"v=0\r\no=- 1 1 IN IP4 h x\r\ns=-\r\n", 2,
       "o= line: more than 6 fields"},
      {"v=0\r\no=- a 1 IN IP4 h\r\ns=-\r\n", 2,
       "o= line: sess-id or sess-version is not a number"},
      {"v=0\no=- 1 1 IN IP4 h\ns=-\nm=audio x RTP/AVP 0\n", 4,
       "m= line: port is not a number"},
      {"v=0\no=- 1 1 IN IP4 h\ns=-\nm=audio 65536 RTP/AVP 0\n", 4,
       "m= line: port out of range"},
      {"v=0\no=- 1 1 IN IP4 h\ns=-\nm=audio 1/x RTP/AVP 0\n", 4,
       "m= line: number of ports is not a number"},
      {"v=0\no=- 1 1 IN IP4 h\ns=-\nm=audio 1\n", 4,
       "m= line: no transport protocol"},
      {"v=0\no=- 1 1 IN IP4 h\ns=-\nm=audio 1 RTP//AVP 0\n", 4,
       "m= line: no transport protocol"},
      {"v=0\no=- 1 1 IN IP4 h\ns=-\nm=\n", 4, "m= line: media is not a token"},
      {"v=0\no=- 1 1 IN IP4 h\ns=-\nc=IN IP4\n", 4,
       "c= line: fewer than 3 fields"},
      {"v=0\no=- 1 1 IN IP4 h\ns=-\nb=AS64\n", 4,
       "b= line: not <bwtype>:<bandwidth>"},
      {"v=0\no=- 1 1 IN IP4 h\ns=-\nb=AS:x\n", 4,
       "b= line: bandwidth is not a number"},
      {"v=0\no=- 1 1 IN IP4 h\ns=-\nt=0\n", 4, "t= line: not <start> <stop>"},
      {"v=0\no=- 1 1 IN IP4 h\ns=-\na=\n", 4,
       "a= line: attribute name is not a token"},
      {"v=0\no=- 1 1 IN IP4 h\ns=-\na=a b:c\n", 4,
       "a= line: attribute name is not a token"},
      {"v=0\no=- 1 1 IN IP4 h\ns=-\nx=1\n", 4, "unknown type letter"},
      {"v=0\no=- 1 1 IN IP4 h\ns=-\nA=1\n", 4, "unknown type letter"},
      {"v=0\no=- 1 1 IN IP4 h\ns=-\n\n", 4, "empty line"},
      {"v=0\no=- 1 1 IN IP4 h\ns=-\nt 0 0\n", 4, "not <type>=<value>"},
      {"v=0\r\no=- 1 1 IN IP4 h\r\ns=-\nt=0 0\r\n", 3,
       "mixed CRLF and LF line endings"},
      {"v=0\no=- 1 1 IN IP4 h\ns=-\na=x\nt=0 0\n", 5, "line out of order"},
      {"v=0\no=- 1 1 IN IP4 h\ns=-\ni=a\ni=b\n", 5, "line out of order"},
      {"v=0\no=- 1 1 IN IP4 h\ns=-\nr=1 1 0\n", 4, "r= without t="},
      {"v=0\no=- 1 1 IN IP4 h\ns=-\nm=audio 1 RTP/AVP 0\na=x\nc=IN IP4 h\n", 6,
       "line out of order"},
      {"v=0\no=- 1 1 IN IP4 h\ns=-\nm=audio 1 RTP/AVP 0\nt=0 0\n", 5,
       "type letter not allowed here"},
      {"v=0\no=- 1 1 IN IP4 h\ns=-\rx\n", 3, "control character in a line"},
      {"v=0\no=- 1 1 IN IP4 h\nm=audio 1 RTP/AVP 0\n", 3,
       "m= before o= and s="},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    sip_sdp s;
    int rc = parse(&s, bad[i].text);
    CHECK_MSG(rc == SIP_ESDP, "case %zu: rc %d", i, rc);
    CHECK_MSG(s.err_line == bad[i].line, "case %zu: line %u, want %u", i,
              (unsigned)s.err_line, (unsigned)bad[i].line);
    CHECK_MSG(s.err_what && !strcmp(s.err_what, bad[i].what),
              "case %zu: '%s', want '%s'", i, s.err_what ? s.err_what : "",
              bad[i].what);
  }
  /* a NUL inside a value */
  sip_sdp s;
  static const char nul[] = "v=0\no=- 1 1 IN IP4 h\ns=a\0b\n";
  CHECK_INT(parse_n(&s, nul, sizeof nul - 1), SIP_ESDP);
  CHECK_INT(s.err_line, 3);
  /* more lines than the caller's array */
  sip_sdp_line few[2];
  CHECK_INT(sip_sdp_parse(&s, "v=0\no=- 1 1 IN IP4 h\ns=-\n", 24, few, 2),
            SIP_ETOOMANY);
}

/* The writer refuses what would not parse back as the same lines. */
static void test_write_refuses(void) {
  char out[256];
  uint32_t bad = 99;
  sip_sdp_line l[2];
  memset(l, 0, sizeof l);
  l[0].type = 'v';
  l[0].value = SIP_STR_LIT("0");
  l[1].type = 'a';
  l[1].u.a.name = SIP_STR_LIT("x");
  l[1].u.a.value = SIP_STR_LIT("1\r\nm=audio 1 RTP/AVP 0");
  CHECK_INT(sip_sdp_write(l, 2, 0, 1, out, sizeof out, &bad), SIP_EINVAL);
  CHECK_INT(bad, 1);
  l[1].u.a.value = SIP_STR_LIT("1");
  CHECK_INT(sip_sdp_write(l, 2, 0, 1, out, sizeof out, &bad), 12);
  l[1].u.a.name = SIP_STR_LIT("a:b");
  CHECK_INT(sip_sdp_write(l, 2, 0, 1, out, sizeof out, &bad), SIP_EINVAL);
  memset(&l[1], 0, sizeof l[1]);
  l[1].type = 'm';
  l[1].u.m.media = SIP_STR_LIT("audio");
  l[1].u.m.port = SIP_STR_LIT("1 2");
  l[1].u.m.proto = SIP_STR_LIT("RTP/AVP");
  CHECK_INT(sip_sdp_write(l, 2, 0, 1, out, sizeof out, &bad), SIP_EINVAL);
  l[1].u.m.port = SIP_STR_LIT("0");
  CHECK_INT(sip_sdp_write(l, 2, 1, 0, out, sizeof out, &bad), 21);
  CHECK(memcmp(out, "v=0\nm=audio 0 RTP/AVP", 21) == 0);
  l[1].type = 'q';
  CHECK_INT(sip_sdp_write(l, 2, 0, 1, out, sizeof out, &bad), SIP_EINVAL);
  /* a short buffer: the full length, nothing written past cap */
  memset(out, 'Z', sizeof out);
  l[1].type = 'm';
  CHECK_INT(sip_sdp_write(l, 2, 0, 1, out, 5, &bad), 24);
  CHECK(out[5] == 'Z');
}

/* ---- offer/answer (sip_sdp_answer) ---- */

static sip_sdp_line olines[MAXL], clines[MAXL];

/* The answer to offer from caps (LF texts), in a malloc'd block of exactly
 * its length plus a NUL (written by a second call of exactly that cap, so
 * ASan sees a write past it), or NULL when it failed (*rc says why). */
static char *answer_of(const char *offer, const char *caps,
                       const sip_sdp_answer_opts *opts, uint32_t *acc,
                       int *rc) {
  sip_sdp o, c;
  char *ob = strdup(offer), *cb = strdup(caps);
  if (!ob || !cb)
    abort();
  char *res = NULL;
  *rc = sip_sdp_parse(&o, ob, strlen(ob), olines, MAXL);
  if (*rc >= 0)
    *rc = sip_sdp_parse(&c, cb, strlen(cb), clines, MAXL);
  if (*rc >= 0)
    *rc = sip_sdp_answer(&o, &c, opts, NULL, 0, acc);
  if (*rc >= 0) {
    size_t need = (size_t)*rc;
    char *small = malloc(need > 1 ? need - 1 : 1); /* one byte short */
    res = malloc(need + 1);
    if (!small || !res)
      abort();
    CHECK_INT(sip_sdp_answer(&o, &c, opts, small, need ? need - 1 : 0, NULL),
              (int)need);
    CHECK_INT(sip_sdp_answer(&o, &c, opts, res, need, NULL), (int)need);
    res[need] = '\0';
    CHECK_MSG(need == 0 || memcmp(small, res, need - 1) == 0,
              "truncated output differs");
    free(small);
  }
  free(ob);
  free(cb);
  return res;
}

#define CAPS                                                                   \
  "v=0\no=luasip 100 1 IN IP4 127.0.0.2\ns=luasip\nc=IN IP4 127.0.0.2\n"       \
  "t=0 0\na=tool:x\na=sendrecv\n"                                              \
  "m=audio 7000 RTP/AVP 8 0 96 101\nb=AS:64\na=rtpmap:96 OPUS/48000/2\n"       \
  "a=fmtp:96 useinbandfec=1\na=rtpmap:101 telephone-event/8000\n"              \
  "a=fmtp:101 0-15\na=rtcp-fb:96 nack\na=ptime:20\n"                           \
  "m=video 7002 RTP/AVP 100\na=rtpmap:100 VP8/90000\n"                         \
  "a=rtcp-fb:100 nack pli\na=rtcp-fb:* ccm fir\n"

static void check_answer(const char *offer, const sip_sdp_answer_opts *opts,
                         const char *want, uint32_t want_acc) {
  uint32_t acc = 99;
  int rc;
  char *got = answer_of(offer, CAPS, opts, &acc, &rc);
  CHECK_MSG(got && strcmp(got, want) == 0, "answer\n%s\nwant\n%s",
            got ? got : "(failed)", want);
  CHECK_INT((int)acc, (int)want_acc);
  free(got);
}

#define HEAD                                                                   \
  "v=0\no=luasip 100 1 IN IP4 127.0.0.2\ns=luasip\nc=IN IP4 127.0.0.2\n"       \
  "t=0 0\na=tool:x\n"

static void test_answer(void) {
  /* static subset in the offer's order, offerer's numbers; caps' b= and
   * other attributes; the session direction is not copied */
  check_answer("v=0\no=- 1 1 IN IP4 h\ns=-\nt=0 0\n"
               "m=audio 6000 RTP/AVP 18 0 8 4\n",
               NULL,
               HEAD "m=audio 7000 RTP/AVP 0 8\nb=AS:64\na=ptime:20\n"
                    "a=sendrecv\n",
               1);
  /* dynamic types by name (any case), rate and channels, renumbered; caps'
   * fmtp over the offer's; rtcp-fb renumbered */
  check_answer("v=0\no=- 1 1 IN IP4 h\ns=-\nt=0 0\n"
               "m=audio 6000 RTP/AVP 111 110 126 0\na=rtpmap:111 opus/48000/2\n"
               "a=fmtp:111 minptime=10\na=rtpmap:110 telephone-event/48000\n"
               "a=rtpmap:126 telephone-event/8000\na=fmtp:126 0-16\n",
               NULL,
               HEAD "m=audio 7000 RTP/AVP 111 126 0\nb=AS:64\n"
                    "a=rtpmap:111 OPUS/48000/2\na=fmtp:111 useinbandfec=1\n"
                    "a=rtpmap:126 telephone-event/8000\na=fmtp:126 0-15\n"
                    "a=rtcp-fb:111 nack\na=ptime:20\na=sendrecv\n",
               1);
  /* the offer's fmtp when caps has none; rtcp-fb "*"; a held offer
   * (sendonly) is answered recvonly */
  check_answer("v=0\no=- 1 1 IN IP4 h\ns=-\nt=0 0\na=sendonly\n"
               "m=video 6002 RTP/AVP 120\na=rtpmap:120 vp8/90000\n"
               "a=fmtp:120 max-fr=30\n",
               NULL,
               HEAD "m=video 7002 RTP/AVP 120\na=rtpmap:120 VP8/90000\n"
                    "a=fmtp:120 max-fr=30\na=rtcp-fb:120 nack pli\n"
                    "a=rtcp-fb:* ccm fir\na=recvonly\n",
               1);
  /* rejected: nothing in common, telephone-event alone, port 0, another
   * protocol, unknown media; each caps stream answers one offered one */
  check_answer("v=0\no=- 1 1 IN IP4 h\ns=-\nt=0 0\n"
               "m=audio 6000 RTP/AVP 18 3\n"
               "m=audio 6002 RTP/AVP 101\na=rtpmap:101 telephone-event/8000\n"
               "m=audio 0 RTP/AVP 0\nm=application 6004 UDP/BFCP *\n"
               "m=video 6006 RTP/SAVP 100\na=rtpmap:100 VP8/90000\n"
               "m=audio 6008 rtp/avp 8\nm=audio 6010 RTP/AVP 0\n",
               NULL,
               HEAD "m=audio 0 RTP/AVP 18 3\nm=audio 0 RTP/AVP 101\n"
                    "m=audio 0 RTP/AVP 0\nm=application 0 UDP/BFCP *\n"
                    "m=video 0 RTP/SAVP 100\n"
                    "m=audio 7000 rtp/avp 8\nb=AS:64\na=ptime:20\na=sendrecv\n"
                    "m=audio 0 RTP/AVP 0\n",
               1);
  /* what we want, and caps' order */
  sip_sdp_answer_opts o = {.direction = sip_sdp_direction("recvonly"),
                           .prefer_local = 1};
  check_answer("v=0\no=- 1 1 IN IP4 h\ns=-\nt=0 0\n"
               "m=audio 6000 RTP/AVP 0 8\n",
               &o,
               HEAD "m=audio 7000 RTP/AVP 8 0\nb=AS:64\na=ptime:20\n"
                    "a=recvonly\n",
               1);
  CHECK_INT(sip_sdp_direction("sendrecv"), 3);
  CHECK_INT(sip_sdp_direction("inactive"), 0);
  CHECK_INT(sip_sdp_direction("hold"), -1);
  CHECK_INT(sip_sdp_direction(NULL), -1);
  /* CRLF caps: CRLF answer */
  uint32_t acc;
  int rc;
  char *got =
      answer_of("v=0\no=- 1 1 IN IP4 h\ns=-\nt=0 0\nm=audio 1 RTP/AVP 0\n",
                "v=0\r\no=a 1 1 IN IP4 x\r\ns=-\r\nt=0 0\r\n"
                "m=audio 2 RTP/AVP 0\r\n",
                NULL, &acc, &rc);
  CHECK_MSG(got && strcmp(got, "v=0\r\no=a 1 1 IN IP4 x\r\ns=-\r\nt=0 0\r\n"
                               "m=audio 2 RTP/AVP 0\r\na=sendrecv\r\n") == 0,
            "%s", got ? got : "(failed)");
  free(got);
  /* more formats than SIP_SDP_MAX_FMTS in a stream that could match */
  char big[2048] = "v=0\no=- 1 1 IN IP4 h\ns=-\nt=0 0\nm=audio 1 RTP/AVP";
  for (int i = 0; i <= SIP_SDP_MAX_FMTS; i++)
    snprintf(big + strlen(big), sizeof big - strlen(big), " %d", i % 128);
  strcat(big, "\n");
  got = answer_of(big, CAPS, NULL, &acc, &rc);
  CHECK(got == NULL);
  CHECK_INT(rc, SIP_ETOOMANY);
  const char *name;
  unsigned rate, ch;
  CHECK(sip_sdp_static_pt(8, &name, &rate, &ch) && strcmp(name, "PCMA") == 0 &&
        rate == 8000 && ch == 1);
  CHECK(sip_sdp_static_pt(34, &name, &rate, &ch) && ch == 0);
  CHECK(!sip_sdp_static_pt(2, &name, &rate, &ch));
  CHECK(!sip_sdp_static_pt(35, &name, &rate, &ch));
}
/* ---- the builder (sip_sdp_build) over a tree of test nodes ---- */

/* Build and write root; the text (static buffer) or NULL, *rc the build's
 * or the write's code. */
static const char *build(const tnode *root, sip_sdp_builder *b, int *rc) {
  static char out[16384];
  treader r;
  sip_tree_reader rd;
  treader_init(&r, &rd, root);
  *rc = sip_sdp_build(b, &rd);
  treader_free(&r);
  CHECK_INT(r.opens, r.closes); /* every table it opened, closed */
  CHECK_INT(r.top, 0);
  if (*rc < 0)
    return NULL;
  int n = sip_sdp_write(b->lines, b->n, b->lf_only, b->last_eol, out,
                        sizeof out - 1, NULL);
  *rc = n;
  if (n < 0 || (size_t)n >= sizeof out)
    return NULL;
  out[n] = 0;
  return out;
}

#define ORIGIN                                                                 \
  TT("origin", TS("username", "-"), TN("sess_id", 42),                         \
     TS("sess_version", "7"), TS("nettype", "IN"), TS("addrtype", "IP4"),      \
     TS("address", "127.0.0.1"))

static void check_build_fails(const tnode *root, int where, const char *what) {
  sip_sdp_builder b;
  int rc;
  CHECK(build(root, &b, &rc) == NULL);
  CHECK_INT(rc, SIP_EINVAL);
  CHECK_INT(b.err_where, where);
  CHECK_MSG(b.err_field && !strcmp(b.err_field, what), "field %s, want %s",
            b.err_field ? b.err_field : "(none)", what);
  sip_sdp_builder_free(&b);
}

static void test_build(void) {
  sip_sdp_builder b;
  int rc;
  /* every part, in RFC 8866 order whatever the tree's order */
  const tnode full =
      TT(NULL,
         TT("media",
            TT(NULL,
               TT("attributes",
                  TT(NULL, TS("name", "rtpmap"), TS("value", "0 PCMU/8000")),
                  TT(NULL, TS("name", "sendrecv"))),
               TS("media", "audio"), TN("port", 49170), TS("proto", "RTP/AVP"),
               TT("fmts", TS(NULL, "0"), TS(NULL, "8")), TS("info", "voice"),
               TS("key", "prompt"),
               TT("connections",
                  TT(NULL, TS("nettype", "IN"), TS("addrtype", "IP4"),
                     TS("address", "127.0.0.2"))),
               TT("bandwidths", TT(NULL, TS("type", "AS"), TN("value", 64)))),
            TT(NULL, TS("media", "video"), TN("port", 0), TN("nports", 2),
               TS("proto", "RTP/AVP"))),
         TT("attributes", TT(NULL, TS("name", "tool"), TS("value", "t"))),
         TS("key", "clear:x"), TS("zone", "0 0"),
         TT("times", TT(NULL, TN("start", 0), TN("stop", 0),
                        TT("repeats", TS(NULL, "7d 1h 0 25h")))),
         TT("bandwidths", TT(NULL, TS("type", "CT"), TN("value", 128))),
         TT("connection", TS("nettype", "IN"), TS("addrtype", "IP4"),
            TS("address", "127.0.0.1")),
         TT("phones", TS(NULL, "+1 555")), TT("emails", TS(NULL, "a@b.test")),
         TS("uri", "http://x.test/"), TS("info", "about"), TS("name", "call"),
         ORIGIN);
  const char *want =
      "v=0\r\no=- 42 7 IN IP4 127.0.0.1\r\ns=call\r\ni=about\r\n"
      "u=http://x.test/\r\ne=a@b.test\r\np=+1 555\r\nc=IN IP4 127.0.0.1\r\n"
      "b=CT:128\r\nt=0 0\r\nr=7d 1h 0 25h\r\nz=0 0\r\nk=clear:x\r\n"
      "a=tool:t\r\nm=audio 49170 RTP/AVP 0 8\r\ni=voice\r\n"
      "c=IN IP4 127.0.0.2\r\nb=AS:64\r\nk=prompt\r\na=rtpmap:0 PCMU/8000\r\n"
      "a=sendrecv\r\nm=video 0/2 RTP/AVP\r\n";
  const char *got = build(&full, &b, &rc);
  CHECK_MSG(got && !strcmp(got, want), "got %s", got ? got : "(null)");
  /* the parser reads it back */
  sip_sdp s;
  CHECK(got && parse(&s, got) == 22);
  sip_sdp_builder_free(&b);
  sip_sdp_builder_free(&b); /* twice is safe */

  /* line endings: lf, no_final_eol; a version given; no media */
  const tnode lf =
      TT(NULL, TS("version", "0"), ORIGIN, TS("name", "-"),
         TX("lf", SIP_TREE_OTHER), TS("no_final_eol", "yes"), TE("media"));
  got = build(&lf, &b, &rc);
  CHECK_MSG(got && !strcmp(got, "v=0\no=- 42 7 IN IP4 127.0.0.1\ns=-"),
            "got %s", got ? got : "(null)");
  sip_sdp_builder_free(&b);
  const tnode nolf =
      TT(NULL, ORIGIN, TS("name", "-"), TX("lf", SIP_TREE_FALSE));
  got = build(&nolf, &b, &rc);
  CHECK(got && !strcmp(got, "v=0\r\no=- 42 7 IN IP4 127.0.0.1\r\ns=-\r\n"));
  sip_sdp_builder_free(&b);

  /* _raw: written as it was while the fields equal it */
  const tnode raw =
      TT(NULL, TS("_raw_version", "00"), TN("version", 0),
         TT("origin", TS("username", "-"), TS("sess_id", "042"),
            TS("sess_version", "7"), TS("nettype", "IN"), TS("addrtype", "IP4"),
            TS("address", "h"), TS("_raw", "-  042 7 IN IP4 h")),
         TS("name", "-"),
         TT("media", TT(NULL, TS("media", "audio"), TN("port", 9),
                        TS("proto", "RTP/AVP"), TT("fmts", TS(NULL, "0")),
                        TS("_raw", "audio 10 RTP/AVP 0"))));
  got = build(&raw, &b, &rc);
  CHECK_MSG(got && !strcmp(got, "v=00\r\no=-  042 7 IN IP4 h\r\ns=-\r\n"
                                "m=audio 9 RTP/AVP 0\r\n"),
            "got %s", got ? got : "(null)");
  sip_sdp_builder_free(&b);

  /* what is bad or missing, and where */
  const tnode no_origin = TT(NULL, TS("name", "-"));
  check_build_fails(&no_origin, 0, "origin");
  const tnode no_name = TT(NULL, ORIGIN);
  check_build_fails(&no_name, 0, "name");
  const tnode num_name = TT(NULL, ORIGIN, TN("name", 1));
  check_build_fails(&num_name, 0, "name");
  const tnode origin_str = TT(NULL, TS("origin", "x"), TS("name", "-"));
  check_build_fails(&origin_str, 0, "(not a table)");
  const tnode bad_ver =
      TT(NULL, TX("version", SIP_TREE_OTHER), ORIGIN, TS("name", "-"));
  check_build_fails(&bad_ver, 0, "version");
  const tnode no_user =
      TT(NULL, TT("origin", TS("address", "h")), TS("name", "-"));
  check_build_fails(&no_user, 0, "username");
  const tnode bad_email =
      TT(NULL, ORIGIN, TS("name", "-"), TT("emails", TN(NULL, 1)));
  check_build_fails(&bad_email, 0, "emails");
  const tnode bad_times = TT(NULL, ORIGIN, TS("name", "-"), TS("times", "0"));
  check_build_fails(&bad_times, 0, "times");
  const tnode bad_repeat =
      TT(NULL, ORIGIN, TS("name", "-"),
         TT("times",
            TT(NULL, TN("start", 0), TN("stop", 0), TT("repeats", TE(NULL)))));
  check_build_fails(&bad_repeat, 0, "repeats");
  const tnode media_str = TT(NULL, ORIGIN, TS("name", "-"), TS("media", "x"));
  check_build_fails(&media_str, -1, "media");
  const tnode bad_fmt = TT(
      NULL, ORIGIN, TS("name", "-"),
      TT("media",
         TT(NULL, TS("media", "audio"), TN("port", 1), TS("proto", "RTP/AVP")),
         TT(NULL, TS("media", "audio"), TN("port", 1), TS("proto", "RTP/AVP"),
            TT("fmts", TS(NULL, "0"), TN(NULL, 8)))));
  check_build_fails(&bad_fmt, 2, "fmts");
  const tnode media_item =
      TT(NULL, ORIGIN, TS("name", "-"), TT("media", TS(NULL, "audio")));
  check_build_fails(&media_item, 1, "(not a table)");
  const tnode bad_attr =
      TT(NULL, ORIGIN, TS("name", "-"),
         TT("media", TT(NULL, TS("media", "audio"), TN("port", 1),
                        TS("proto", "RTP/AVP"),
                        TT("attributes", TT(NULL, TS("value", "v"))))));
  check_build_fails(&bad_attr, 1, "name");

  /* a field the writer refuses: built, then sip_sdp_write says which line */
  const tnode crlf = TT(NULL, ORIGIN, TS("name", "-\r\nm=x"));
  CHECK(build(&crlf, &b, &rc) == NULL);
  CHECK_INT(rc, SIP_EINVAL);
  uint32_t bad = 0;
  CHECK_INT(sip_sdp_write(b.lines, b.n, 0, 1, NULL, 0, &bad), SIP_EINVAL);
  CHECK_INT(bad, 2);
  sip_sdp_builder_free(&b);
}

/* ---- the tree of a parsed description (sip_sdp_emit) ---- */

/* parse -> emit -> build -> write gives the text back, byte for byte. */
static int tree_roundtrip(const char *text, size_t len, temit *e) {
  sip_sdp s;
  memset(e, 0, sizeof *e);
  e->root.kind = SIP_TREE_TABLE;
  e->stack[0] = &e->root;
  if (parse_n(&s, text, len) <= 0)
    return 0;
  sip_tree_emitter em = {e, e_put, e_close};
  sip_sdp_emit(&s, &em);
  CHECK_INT(e->opens, e->closes);
  CHECK_INT(e->top, 0);
  sip_sdp_builder b;
  int rc;
  const char *got = build(&e->root, &b, &rc);
  int ok = got && (size_t)rc == len && memcmp(got, text, len) == 0;
  if (!ok)
    fprintf(stderr, "tree_roundtrip: got [%s]\n", got ? got : "(null)");
  sip_sdp_builder_free(&b);
  return ok;
}

static void test_emit(void) {
  temit e;
  for (size_t i = 0; i < NFIXTURES; i++) {
    size_t len;
    char *text = fixture(i, &len);
    if (!text)
      continue;
    CHECK_MSG(tree_roundtrip(text, len, &e), "%s", fixtures[i]);
    tnode_free(&e.root);
    free(text);
  }
  /* the shape: numbers, lists, _raw of a line that is not canonical, the
   * flags, repeats under their time, media always there */
  const char *t = "v=0\no=- 1 1 IN IP4 h\ns=-\ne=a@b\ne=c@d\n"
                  "b=AS:12345678901234567890\nb=CT:7\nt=0 0\nr=1 2 3\n"
                  "r=4 5 6\nt=1  2";
  CHECK(tree_roundtrip(t, strlen(t), &e));
  tnode_free(&e.root);
  /* regression: a number with leading zeros is an integer in the tree, so
   * its line keeps its text (_raw) to be written back as it was */
  t = "v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nb=CT:007\r\nt=0 0\r\n"
      "m=audio 09/02 RTP/AVP 0\r\n";
  CHECK(tree_roundtrip(t, strlen(t), &e));
  tnode_free(&e.root);
  t = "v=0\no=- 1 1 IN IP4 h\ns=-\ne=a@b\ne=c@d\n"
      "b=AS:12345678901234567890\nb=CT:7\nt=0 0\nr=1 2 3\n"
      "r=4 5 6\nt=1  2";
  CHECK(tree_roundtrip(t, strlen(t), &e));
  const tnode *em = tfield(&e.root, "emails");
  CHECK(em && em->nkids == 2 && !strcmp(em->kids[1].s, "c@d"));
  const tnode *bw = tfield(&e.root, "bandwidths");
  CHECK(bw && bw->nkids == 2);
  if (bw && bw->nkids == 2) {
    const tnode *v1 = tfield(&bw->kids[0], "value");
    const tnode *v2 = tfield(&bw->kids[1], "value");
    CHECK(v1 && v1->kind == SIP_TREE_STR &&
          !strcmp(v1->s, "12345678901234567890"));
    CHECK(v2 && v2->kind == SIP_TREE_UINT && v2->n == 7);
    CHECK(!tfield(&bw->kids[0], "_raw"));
  }
  const tnode *tm = tfield(&e.root, "times");
  CHECK(tm && tm->nkids == 2);
  if (tm && tm->nkids == 2) {
    const tnode *rp = tfield(&tm->kids[0], "repeats");
    CHECK(rp && rp->nkids == 2 && !strcmp(rp->kids[1].s, "4 5 6"));
    CHECK(!tfield(&tm->kids[1], "repeats"));
    const tnode *raw = tfield(&tm->kids[1], "_raw");
    CHECK(raw && !strcmp(raw->s, "1  2"));
  }
  const tnode *lf = tfield(&e.root, "lf"),
              *ne = tfield(&e.root, "no_final_eol");
  CHECK(lf && lf->kind == SIP_TREE_TRUE && ne && ne->kind == SIP_TREE_TRUE);
  const tnode *md = tfield(&e.root, "media");
  CHECK(md && md->kind == SIP_TREE_TABLE && md->nkids == 0);
  CHECK(!tfield(&e.root, "connection") && !tfield(&e.root, "_raw_version"));
  tnode_free(&e.root);
}

int main(void) {
  test_fixtures();
  test_fields();
  test_lenient();
  test_malformed();
  test_write_refuses();
  test_answer();
  test_build();
  test_emit();
  for (int i = 0; i < ncopies; i++)
    free(copies[i]);
  return check_summary("sdp_test");
}
