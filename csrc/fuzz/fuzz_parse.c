/* libFuzzer target for the parser (make fuzz): one input is parsed as a
 * datagram and as a stream, every lazily parsed field is read, an unchanged
 * message must serialize to its own bytes and has no control character in
 * its header fields, and a few edits are serialized.
 * Any crash, out-of-bounds read (ASan), undefined behaviour (UBSan) or leak
 * fails the run. The trace redaction of credentials (csrc/auth/redact.c)
 * runs on every input too. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sip_digest.h"
#include "sip_msg.h"
#include "sip_sdp.h"
#include "test/touch.h"

static void read_all(sip_msg *m) {
  const sip_uri *ruri;
  const sip_via *via;
  const sip_addr *addr;
  const sip_cseq *cseq;
  const sip_ctype *ct;
  const sip_part *parts;
  const sip_auth *auth;
  sip_str s;
  uint32_t u;

  for (uint32_t i = 0; i < m->nhdr; i++) {
    if (sip_msg_unfolded(m, &m->hdr[i], &s) == 0)
      touch(s);
  }
  if (m->is_request && sip_msg_get_ruri(m, &ruri) == 0)
    touch_uri(ruri);
  if (sip_msg_get_vias(m, &via) == 0) {
    for (; via; via = via->next) {
      touch(via->transport);
      touch(via->host);
      touch(via->branch);
      touch(via->received);
      touch_params(&via->params);
    }
  }
  static const int single[] = {SIP_H_FROM, SIP_H_TO, SIP_H_REFER_TO,
                               SIP_H_REPLY_TO, SIP_H_REFERRED_BY};
  for (size_t i = 0; i < sizeof single / sizeof single[0]; i++)
    if (sip_msg_get_addr(m, single[i], &addr) == 0)
      touch_addrs(addr);
  static const int lists[] = {SIP_H_CONTACT, SIP_H_ROUTE, SIP_H_RECORD_ROUTE,
                              SIP_H_PATH};
  for (size_t i = 0; i < sizeof lists / sizeof lists[0]; i++)
    if (sip_msg_get_addrs(m, lists[i], &addr) == 0)
      touch_addrs(addr);
  if (sip_msg_get_cseq(m, &cseq) == 0)
    touch(cseq->method);
  if (sip_msg_get_call_id(m, &s) == 0)
    touch(s);
  (void)sip_msg_get_max_forwards(m, &u);
  (void)sip_msg_get_expires(m, &u);
  if (sip_msg_get_ctype(m, &ct) == 0) {
    touch(ct->boundary);
    touch_params(&ct->params);
    if (sip_msg_get_parts(m, &parts) >= 0)
      for (; parts; parts = parts->next) {
        touch(parts->content_type);
        touch(parts->body);
      }
  }
  for (uint32_t i = 0; i < m->nhdr; i++) {
    int id = m->hdr[i].id;
    if (id == SIP_H_AUTHORIZATION || id == SIP_H_PROXY_AUTHORIZATION ||
        id == SIP_H_WWW_AUTHENTICATE || id == SIP_H_PROXY_AUTHENTICATE) {
      if (sip_msg_get_auth(m, (int)i, &auth) == 0)
        touch_params(&auth->params);
    }
  }
}

static int ctl(unsigned char c) {
  return (c < 0x20 && c != '\t' && c != '\r' && c != '\n') || c == 0x7f;
}

/* RFC 3261 §25.1: a parsed message has no control character in a header
 * field other than HTAB, CR/LF of a fold, or the escaped byte of a
 * quoted-pair (checked here independently of the parser: a backslash
 * before it), and none in a reason phrase. */
static void check_no_ctl(const sip_msg *m) {
  for (uint32_t i = 0; i < m->nhdr; i++) {
    sip_str v = m->hdr[i].raw;
    for (size_t k = 0; k < v.len; k++)
      if (ctl((unsigned char)v.p[k]) && (k == 0 || v.p[k - 1] != '\\'))
        abort();
  }
  for (size_t k = 0; k < m->reason.len; k++)
    if (ctl((unsigned char)m->reason.p[k]))
      abort();
}

static void serialize(const sip_msg *m, int unchanged) {
  size_t n = sip_msg_size(m);
  char *out = malloc(n ? n : 1);
  if (!out)
    return;
  int w = sip_msg_write(m, out, n);
  if (w < 0 || (size_t)w != n)
    abort(); /* sip_msg_size promised exactly n bytes */
  if (unchanged && (n != m->len || memcmp(out, m->buf, n) != 0))
    abort(); /* an unchanged message serializes to its original bytes */
  free(out);
}

/* --trace redaction (csrc/auth/redact.c) runs on raw received bytes, parsed
 * or not: it must stay in bounds and size its output exactly. */
static void redact(const char *buf, size_t size) {
  size_t need = sip_auth_redact(buf, size, NULL, 0);
  if (!need)
    return;
  char *out = malloc(need);
  if (!out)
    return;
  if (sip_auth_redact(buf, size, out, need) != need)
    abort();
  /* a short buffer: the same length, nothing written past it */
  if (sip_auth_redact(buf, size, out, need / 2) != need)
    abort();
  free(out);
}

/* SDP (csrc/sdp): whatever parses writes back to its own bytes, from the
 * kept values and, for canonical lines, from the fields alone; an error
 * points inside the input. */
static void sdp(const char *buf, size_t size) {
  static sip_sdp_line lines[512];
  sip_sdp s;
  int rc = sip_sdp_parse(&s, buf, size, lines, 512);
  if (rc < 0) {
    if (rc == SIP_ESDP && (s.err_off > size || !s.err_what))
      abort();
    return;
  }
  int n = sip_sdp_write(lines, s.nlines, s.lf_only, s.last_eol, NULL, 0, NULL);
  if (n < 0 || (size_t)n != size)
    abort();
  char *out = malloc(size ? size : 1);
  if (!out)
    return;
  if (sip_sdp_write(lines, s.nlines, s.lf_only, s.last_eol, out, size, NULL) !=
          n ||
      memcmp(out, buf, size) != 0)
    abort();
  for (uint32_t i = 0; i < s.nlines; i++) {
    sip_sdp_line l = lines[i], r;
    const char *what;
    if (sip_sdp_parse_line(l.type, l.value.p, l.value.len, &r, &what) < 0 ||
        !sip_sdp_line_equal(&l, &r))
      abort();
    if (sip_sdp_line_canonical(&l) && l.type != 'v' &&
        !strchr("siuepkzr", l.type)) {
      l.value = SIP_STR_NULL;
      char one[4096];
      int w = sip_sdp_write(&l, 1, 0, 0, one, sizeof one, NULL);
      if (w < 2 || (size_t)w - 2 != lines[i].value.len ||
          ((size_t)w <= sizeof one &&
           memcmp(one + 2, lines[i].value.p, lines[i].value.len) != 0))
        abort();
    }
  }
  free(out);
}

/* Offer/answer (csrc/sdp/answer.c): buf as the offer against fixed caps,
 * and as the caps for a fixed offer: the answer parses, with one m= line
 * per offered one, and no more accepted streams than that. */
static const char fuzz_caps[] =
    "v=0\r\no=f 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\n"
    "t=0 0\r\na=sendrecv\r\nm=audio 4000 RTP/AVP 0 8 96 101\r\n"
    "a=rtpmap:96 opus/48000/2\r\na=fmtp:96 x=1\r\n"
    "a=rtpmap:101 telephone-event/8000\r\na=rtcp-fb:96 nack\r\n"
    "a=rtcp-fb:* ccm fir\r\nm=video 4002 RTP/AVP 100\r\n"
    "a=rtpmap:100 VP8/90000\r\nm=application 4004 UDP/BFCP *\r\n";
static const char fuzz_offer[] =
    "v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nt=0 0\r\na=sendonly\r\n"
    "m=audio 1 RTP/AVP 0 111 126\r\na=rtpmap:111 OPUS/48000/2\r\n"
    "a=rtpmap:126 telephone-event/8000\r\nm=video 2 RTP/AVP 120\r\n"
    "a=rtpmap:120 vp8/90000\r\nm=application 3 UDP/BFCP *\r\n";

static void sdp_answer_check(const char *obuf, size_t olen, const char *cbuf,
                             size_t clen) {
  static sip_sdp_line ol[512], cl[512], al[2048];
  sip_sdp o, c, a;
  if (sip_sdp_parse(&o, obuf, olen, ol, 512) < 0 ||
      sip_sdp_parse(&c, cbuf, clen, cl, 512) < 0)
    return;
  uint32_t acc;
  int n = sip_sdp_answer(&o, &c, NULL, NULL, 0, &acc);
  if (n < 0) {
    if (n != SIP_ETOOMANY)
      abort();
    return;
  }
  char *out = malloc((size_t)n + 1);
  if (!out)
    return;
  if (sip_sdp_answer(&o, &c, NULL, out, (size_t)n, NULL) != n ||
      sip_sdp_parse(&a, out, (size_t)n, al, 2048) < 0 || a.nmedia != o.nmedia ||
      acc > o.nmedia)
    abort();
  free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *buf = (const char *)data;
  sip_msg m;
  char err[128];

  redact(buf, size);
  sdp(buf, size);
  sdp_answer_check(buf, size, fuzz_caps, sizeof fuzz_caps - 1);
  sdp_answer_check(fuzz_offer, sizeof fuzz_offer - 1, buf, size);

  sip_msg_init(&m, NULL);
  int rc = sip_msg_parse(&m, buf, size, SIP_MODE_DATAGRAM);
  if (rc > 0) {
    if ((size_t)rc != size)
      abort(); /* datagram mode consumes the whole buffer */
    check_no_ctl(&m);
    if (m.body.p) {
      sdp(m.body.p, m.body.len);
      sdp_answer_check(m.body.p, m.body.len, fuzz_caps, sizeof fuzz_caps - 1);
    }
    read_all(&m);
    serialize(&m, 1);
    /* edits: a proxy's typical changes */
    static const char via[] = "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKfuzz";
    if (sip_msg_insert_header(&m, 0, SIP_H_VIA, NULL, 0, via, sizeof via - 1) ==
        0) {
      int i = sip_msg_find(&m, SIP_H_MAX_FORWARDS, NULL, 0, 0);
      if (i >= 0)
        (void)sip_msg_replace_value(&m, i, "69", 2);
      i = sip_msg_find(&m, SIP_H_ROUTE, NULL, 0, 0);
      if (i >= 0)
        (void)sip_msg_remove_header(&m, i);
      (void)sip_msg_set_body(&m, "x", 1);
      read_all(&m);
      serialize(&m, 0);
    }
  } else {
    sip_msg_strerror(&m, rc, err, sizeof err);
    if (m.err_off > size)
      abort();
    /* SIP_ECTL points at the control character */
    if (rc == SIP_ECTL &&
        (m.err_off >= size || !ctl((unsigned char)buf[m.err_off])))
      abort();
  }
  sip_msg_free(&m);

  sip_msg_init(&m, NULL);
  rc = sip_msg_parse(&m, buf, size, SIP_MODE_STREAM);
  if (rc > 0) {
    if ((size_t)rc > size)
      abort();
    read_all(&m);
    serialize(&m, 1);
  }
  sip_msg_free(&m);
  return 0;
}
