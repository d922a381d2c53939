/* SDP parser and writer (csrc/sdp). Every input is copied to a malloc'd block
 * of exactly its length (no NUL after it), so ASan flags any read past the
 * end. The real-world descriptions are read from spec/fixtures/sdp. */
#include <stdlib.h>
#include <string.h>

#include "../../test/check.h"
#include "sip_sdp.h"

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

static void test_fixtures(void) {
  static const char *const names[] = {"sipp_uac.sdp", "baresip.sdp",
                                      "chrome_webrtc.sdp", "rfc8866_lf.sdp",
                                      "repeat_noeol.sdp"};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    char path[1024];
    snprintf(path, sizeof path, "%s/../fixtures/sdp/%s", LUASIP_VECTORS_DIR,
             names[i]);
    size_t len;
    char *text = slurp(path, &len);
    CHECK_MSG(text != NULL, "cannot read %s", path);
    if (!text)
      continue;
    CHECK_MSG(roundtrip_exact(text, len), "%s does not round-trip", names[i]);
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
int main(void) {
  test_fixtures();
  test_fields();
  test_lenient();
  test_malformed();
  test_write_refuses();
  test_answer();
  for (int i = 0; i < ncopies; i++)
    free(copies[i]);
  return check_summary("sdp_test");
}
