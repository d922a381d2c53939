/* RFC 3264 §6 offer/answer on parsed descriptions: see sip_sdp_answer in
 * sip_sdp.h for the rules. Nothing is allocated: the codec lists live on
 * the stack (SIP_SDP_MAX_FMTS per stream), the answer is written into the
 * caller's buffer (sized by a first call with cap 0). */
#include <string.h>

#include "sip_sdp.h"

/* RFC 3551 static payload types: encoding, clock rate, channels (0: not
 * given, counts as 1). */
static const struct {
  const char *name;
  unsigned rate, ch;
} static_pt[35] = {
    [0] = {"PCMU", 8000, 1},   [3] = {"GSM", 8000, 1},
    [4] = {"G723", 8000, 1},   [5] = {"DVI4", 8000, 1},
    [6] = {"DVI4", 16000, 1},  [7] = {"LPC", 8000, 1},
    [8] = {"PCMA", 8000, 1},   [9] = {"G722", 8000, 1},
    [10] = {"L16", 44100, 2},  [11] = {"L16", 44100, 1},
    [12] = {"QCELP", 8000, 1}, [13] = {"CN", 8000, 1},
    [14] = {"MPA", 90000, 1},  [15] = {"G728", 8000, 1},
    [16] = {"DVI4", 11025, 1}, [17] = {"DVI4", 22050, 1},
    [18] = {"G729", 8000, 1},  [25] = {"CelB", 90000, 0},
    [26] = {"JPEG", 90000, 0}, [28] = {"nv", 90000, 0},
    [31] = {"H261", 90000, 0}, [32] = {"MPV", 90000, 0},
    [33] = {"MP2T", 90000, 0}, [34] = {"H263", 90000, 0},
};

int sip_sdp_static_pt(unsigned pt, const char **name, unsigned *rate,
                      unsigned *channels) {
  if (pt >= sizeof static_pt / sizeof static_pt[0] || !static_pt[pt].name)
    return 0;
  *name = static_pt[pt].name;
  *rate = static_pt[pt].rate;
  *channels = static_pt[pt].ch;
  return 1;
}

static int lc(int c) { return c >= 'A' && c <= 'Z' ? c + 32 : c; }

static int ieq(sip_str a, sip_str b) {
  if (a.len != b.len)
    return 0;
  for (size_t i = 0; i < a.len; i++)
    if (lc((unsigned char)a.p[i]) != lc((unsigned char)b.p[i]))
      return 0;
  return 1;
}

static int eq(sip_str a, sip_str b) {
  return a.len == b.len && (a.len == 0 || memcmp(a.p, b.p, a.len) == 0);
}

static int eq_lit(sip_str a, const char *s) {
  return a.p && a.len == strlen(s) && memcmp(a.p, s, a.len) == 0;
}

static int is_space(unsigned char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' ||
         c == '\r';
}

/* Digits only, as a number (saturating); -1 when not all digits. */
static long long num(sip_str s) {
  if (!s.p || s.len == 0)
    return -1;
  long long v = 0;
  for (size_t i = 0; i < s.len; i++) {
    if (s.p[i] < '0' || s.p[i] > '9')
      return -1;
    if (v < 100000000000000LL)
      v = v * 10 + (s.p[i] - '0');
  }
  return v;
}

/* "<pt><spaces><rest>" (rtpmap, fmtp, rtcp-fb values): 0 when v does not
 * have that shape. */
static int pt_rest(sip_str v, sip_str *pt, sip_str *rest) {
  size_t i = 0;
  while (i < v.len && !is_space((unsigned char)v.p[i]))
    i++;
  if (i == 0 || i == v.len)
    return 0;
  *pt = (sip_str){v.p, i};
  while (i < v.len && is_space((unsigned char)v.p[i]))
    i++;
  *rest = (sip_str){v.p + i, v.len - i};
  return 1;
}

static const char *const directions[] = {"inactive", "sendonly", "recvonly",
                                         "sendrecv"};

/* 0-3 (bit 1: send, bit 2: recv) for a direction property attribute, -1
 * for any other line. */
static int dir_of(const sip_sdp_line *l) {
  if (l->type != 'a' || l->u.a.value.p)
    return -1;
  for (int i = 0; i < 4; i++)
    if (eq_lit(l->u.a.name, directions[i]))
      return i;
  return -1;
}

int sip_sdp_direction(const char *name) {
  for (int i = 0; i < 4; i++)
    if (name && strcmp(name, directions[i]) == 0)
      return i;
  return -1;
}

/* The lines [*from, *to) of media section k (k = -1: the session part). */
static void section(const sip_sdp *s, int k, uint32_t *from, uint32_t *to) {
  uint32_t i = 0;
  if (k < 0) {
    *from = 0;
    *to = s->first_media;
    return;
  }
  int m = -1;
  for (i = s->first_media; i < s->nlines; i++)
    if (s->lines[i].type == 'm' && ++m == k)
      break;
  *from = i;
  for (i++; i < s->nlines && s->lines[i].type != 'm'; i++)
    ;
  *to = i;
}

/* §5.1 via RFC 3264: the stream's own direction, else the session's, else
 * sendrecv. */
static int direction(const sip_sdp *s, uint32_t mfrom, uint32_t mto) {
  for (uint32_t i = mfrom; i < mto; i++) {
    int d = dir_of(&s->lines[i]);
    if (d >= 0)
      return d;
  }
  for (uint32_t i = 0; i < s->first_media; i++) {
    int d = dir_of(&s->lines[i]);
    if (d >= 0)
      return d;
  }
  return 3;
}

typedef struct codec {
  sip_str pt, name, rtpmap, fmtp; /* name absent: unknown encoding */
  long long rate, ch;             /* ch 0: not given */
  size_t idx;                     /* its place in its m= line */
} codec;

static int is_rtp(sip_str proto) {
  for (size_t i = 0; i + 4 <= proto.len; i++)
    if (lc((unsigned char)proto.p[i]) == 'r' &&
        lc((unsigned char)proto.p[i + 1]) == 't' &&
        lc((unsigned char)proto.p[i + 2]) == 'p' && proto.p[i + 3] == '/')
      return 1;
  return 0;
}

/* The first a=<attr>:<pt> <rest> of [from, to) for pt: rest, or absent. */
static sip_str pt_attr(const sip_sdp *s, uint32_t from, uint32_t to,
                       const char *attr, sip_str pt) {
  for (uint32_t i = from; i < to; i++) {
    const sip_sdp_line *l = &s->lines[i];
    sip_str p, rest;
    if (l->type == 'a' && l->u.a.value.p && eq_lit(l->u.a.name, attr) &&
        pt_rest(l->u.a.value, &p, &rest) && eq(p, pt))
      return rest;
  }
  return SIP_STR_NULL;
}

/* The formats of the m= line at s->lines[from] (section [from, to)), with
 * their encodings for RTP (a=rtpmap, else RFC 3551's table). Returns the
 * count, or SIP_ETOOMANY past max. */
static int codecs(const sip_sdp *s, uint32_t from, uint32_t to, codec *out,
                  int max) {
  const sip_sdp_line *m = &s->lines[from];
  int rtp = is_rtp(m->u.m.proto), n = 0;
  const char *p = m->u.m.fmts.p, *end = p ? p + m->u.m.fmts.len : NULL;
  for (sip_str pt; p && (pt = sip_sdp_next_token(&p, end)).p;) {
    if (n == max)
      return SIP_ETOOMANY;
    codec *c = &out[n];
    memset(c, 0, sizeof *c);
    c->pt = pt;
    c->idx = (size_t)n;
    n++;
    if (!rtp)
      continue;
    c->rtpmap = pt_attr(s, from + 1, to, "rtpmap", c->pt);
    c->fmtp = pt_attr(s, from + 1, to, "fmtp", c->pt);
    if (c->rtpmap.p) {
      /* <name>/<rate>[/<channels>] */
      const char *q = c->rtpmap.p, *e = q + c->rtpmap.len;
      const char *sl = memchr(q, '/', c->rtpmap.len);
      if (!sl || sl == q)
        continue;
      const char *r = sl + 1, *re = r;
      while (re < e && *re >= '0' && *re <= '9')
        re++;
      if (re == r)
        continue;
      c->name = (sip_str){q, (size_t)(sl - q)};
      c->rate = num((sip_str){r, (size_t)(re - r)});
      if (re < e && *re == '/')
        re++;
      const char *h = re;
      while (re < e && *re >= '0' && *re <= '9')
        re++;
      if (re > h)
        c->ch = num((sip_str){h, (size_t)(re - h)});
    } else {
      long long v = num(c->pt);
      const char *name;
      unsigned rate, ch;
      if (v >= 0 && v <= 1000 &&
          sip_sdp_static_pt((unsigned)v, &name, &rate, &ch)) {
        c->name = (sip_str){name, strlen(name)};
        c->rate = rate;
        c->ch = ch;
      }
    }
  }
  return n;
}

static int same_codec(const codec *a, const codec *b, int rtp) {
  if (!rtp)
    return eq(a->pt, b->pt);
  return a->name.p && b->name.p && ieq(a->name, b->name) &&
         a->rate == b->rate && (a->ch ? a->ch : 1) == (b->ch ? b->ch : 1);
}

/* Formats that carry no media of their own. */
static int secondary(sip_str name) {
  static const char *const sec[] = {
      "telephone-event", "cn", "red", "rtx", "ulpfec", "flexfec", "flexfec-03"};
  for (size_t i = 0; i < sizeof sec / sizeof sec[0]; i++)
    if (ieq(name, (sip_str){sec[i], strlen(sec[i])}))
      return 1;
  return 0;
}

/* The output: writes up to cap, counts everything. */
typedef struct out {
  char *p;
  size_t n, cap;
  const char *eol;
} out;

static void put(out *o, const char *s, size_t len) {
  if (o->n < o->cap)
    memcpy(o->p + o->n, s, o->n + len <= o->cap ? len : o->cap - o->n);
  o->n += len;
}
static void puts_(out *o, const char *s) { put(o, s, strlen(s)); }
static void put_str(out *o, sip_str s) {
  if (s.p)
    put(o, s.p, s.len);
}
static void put_num(out *o, long long v) {
  char b[24];
  int i = (int)sizeof b;
  do {
    b[--i] = (char)('0' + v % 10);
    v /= 10;
  } while (v > 0);
  put(o, b + i, sizeof b - (size_t)i);
}
static void line(out *o, char type, sip_str value) {
  char h[2] = {type, '='};
  put(o, h, 2);
  put_str(o, value);
  puts_(o, o->eol);
}

/* The answer to stream k of the offer from caps' stream (sections [of, ot)
 * and [lf, lt)): 1 written, 0 nothing in common (nothing written). */
static int media_answer(out *o, const sip_sdp *offer, uint32_t of, uint32_t ot,
                        const sip_sdp *caps, uint32_t lf, uint32_t lt,
                        const sip_sdp_answer_opts *opts, int *err) {
  codec oc[SIP_SDP_MAX_FMTS], lcs[SIP_SDP_MAX_FMTS];
  struct {
    const codec *o, *l;
  } pairs[SIP_SDP_MAX_FMTS];
  unsigned char taken[SIP_SDP_MAX_FMTS] = {0};
  int no = codecs(offer, of, ot, oc, SIP_SDP_MAX_FMTS);
  int nl = codecs(caps, lf, lt, lcs, SIP_SDP_MAX_FMTS);
  if (no < 0 || nl < 0) {
    *err = SIP_ETOOMANY;
    return 0;
  }
  const sip_sdp_line *om = &offer->lines[of], *lm = &caps->lines[lf];
  int rtp = is_rtp(om->u.m.proto), np = 0, primary = 0;
  for (int i = 0; i < no; i++)
    for (int j = 0; j < nl; j++)
      if (!taken[j] && same_codec(&oc[i], &lcs[j], rtp)) {
        taken[j] = 1;
        pairs[np].o = &oc[i];
        pairs[np].l = &lcs[j];
        np++;
        if (!(oc[i].name.p && secondary(oc[i].name)))
          primary = 1;
        break;
      }
  if (!primary)
    return 0;
  if (opts && opts->prefer_local) /* caps' order (insertion sort: stable) */
    for (int i = 1; i < np; i++)
      for (int j = i; j > 0 && pairs[j - 1].l->idx > pairs[j].l->idx; j--) {
        const codec *to = pairs[j].o, *tl = pairs[j].l;
        pairs[j] = pairs[j - 1];
        pairs[j - 1].o = to;
        pairs[j - 1].l = tl;
      }
  /* m=<offered media> <our port>[/n] <offered proto> <formats> */
  puts_(o, "m=");
  put_str(o, om->u.m.media);
  put(o, " ", 1);
  put_num(o, num(lm->u.m.port));
  if (lm->u.m.nports.p) {
    put(o, "/", 1);
    put_num(o, num(lm->u.m.nports));
  }
  put(o, " ", 1);
  put_str(o, om->u.m.proto);
  for (int i = 0; i < np; i++) {
    put(o, " ", 1);
    put_str(o, pairs[i].o->pt);
  }
  puts_(o, o->eol);
  for (uint32_t i = lf + 1; i < lt; i++) /* our c= and b= lines */
    if (caps->lines[i].type == 'c' || caps->lines[i].type == 'b')
      line(o, caps->lines[i].type, caps->lines[i].value);
  for (int i = 0; i < np && rtp; i++) {
    const codec *c = pairs[i].o, *l = pairs[i].l;
    sip_str map = l->rtpmap.p ? l->rtpmap : c->rtpmap;
    long long pt = num(c->pt);
    if (map.p || pt >= 96) {
      puts_(o, "a=rtpmap:");
      put_str(o, c->pt);
      put(o, " ", 1);
      if (map.p) {
        put_str(o, map);
      } else {
        put_str(o, c->name);
        put(o, "/", 1);
        put_num(o, c->rate);
        if (c->ch) {
          put(o, "/", 1);
          put_num(o, c->ch);
        }
      }
      puts_(o, o->eol);
    }
    sip_str fmtp = l->fmtp.p ? l->fmtp : c->fmtp;
    if (fmtp.p) {
      puts_(o, "a=fmtp:");
      put_str(o, c->pt);
      put(o, " ", 1);
      put_str(o, fmtp);
      puts_(o, o->eol);
    }
  }
  for (uint32_t i = lf + 1; i < lt; i++) {
    const sip_sdp_line *a = &caps->lines[i];
    if (a->type != 'a' || dir_of(a) >= 0 || eq_lit(a->u.a.name, "rtpmap") ||
        eq_lit(a->u.a.name, "fmtp"))
      continue;
    if (!eq_lit(a->u.a.name, "rtcp-fb")) {
      line(o, 'a', a->value);
      continue;
    }
    /* rtcp-fb for our formats, under the offerer's numbers */
    sip_str pt, rest, opt = SIP_STR_NULL;
    if (!a->u.a.value.p || !pt_rest(a->u.a.value, &pt, &rest))
      continue;
    if (eq_lit(pt, "*"))
      opt = pt;
    for (int j = np - 1; j >= 0 && !opt.p; j--) /* the last, as Lua did */
      if (eq(pairs[j].l->pt, pt))
        opt = pairs[j].o->pt;
    if (!opt.p)
      continue;
    puts_(o, "a=rtcp-fb:");
    put_str(o, opt);
    put(o, " ", 1);
    put_str(o, rest);
    puts_(o, o->eol);
  }
  int offered = direction(offer, of, ot);
  int wanted =
      opts && opts->direction >= 0 ? opts->direction : direction(caps, lf, lt);
  /* §6.1: we send if they receive and we want to send; likewise receive */
  int send = (offered & 2) && (wanted & 1),
      recv = (offered & 1) && (wanted & 2);
  puts_(o, "a=");
  puts_(o, directions[(send ? 1 : 0) | (recv ? 2 : 0)]);
  puts_(o, o->eol);
  return 1;
}

int sip_sdp_answer(const sip_sdp *offer, const sip_sdp *caps,
                   const sip_sdp_answer_opts *opts, char *buf, size_t cap,
                   uint32_t *accepted) {
  out o = {.p = buf, .cap = cap, .eol = caps->lf_only ? "\n" : "\r\n"};
  uint32_t acc = 0;
  int err = 0;
  unsigned char used[256] = {0};
  if (caps->nmedia > sizeof used)
    return SIP_ETOOMANY;
  line(&o, 'v', SIP_STR_LIT("0"));
  for (uint32_t i = 0; i < caps->first_media; i++)
    if (caps->lines[i].type == 'o')
      line(&o, 'o', caps->lines[i].value);
  sip_str name = SIP_STR_LIT("-");
  for (uint32_t i = 0; i < caps->first_media; i++)
    if (caps->lines[i].type == 's')
      name = caps->lines[i].value;
  line(&o, 's', name);
  for (uint32_t i = 0; i < caps->first_media; i++)
    if (caps->lines[i].type == 'c')
      line(&o, 'c', caps->lines[i].value);
  line(&o, 't', SIP_STR_LIT("0 0"));
  for (uint32_t i = 0; i < caps->first_media; i++)
    if (caps->lines[i].type == 'a' && dir_of(&caps->lines[i]) < 0)
      line(&o, 'a', caps->lines[i].value);
  for (uint32_t k = 0; k < offer->nmedia; k++) {
    uint32_t of, ot;
    section(offer, (int)k, &of, &ot);
    const sip_sdp_line *om = &offer->lines[of];
    int done = 0;
    if (num(om->u.m.port) != 0)
      for (uint32_t j = 0; j < caps->nmedia && !done; j++) {
        uint32_t lf, lt;
        section(caps, (int)j, &lf, &lt);
        const sip_sdp_line *lm = &caps->lines[lf];
        if (used[j] || num(lm->u.m.port) == 0 ||
            !eq(lm->u.m.media, om->u.m.media) ||
            !ieq(lm->u.m.proto, om->u.m.proto))
          continue;
        done = media_answer(&o, offer, of, ot, caps, lf, lt, opts, &err);
        if (err)
          return err;
        if (done)
          used[j] = 1;
      }
    if (done) {
      acc++;
      continue;
    }
    /* rejected: port 0, the offered formats, nothing else */
    puts_(&o, "m=");
    put_str(&o, om->u.m.media);
    puts_(&o, " 0 ");
    put_str(&o, om->u.m.proto);
    const char *p = om->u.m.fmts.p, *end = p ? p + om->u.m.fmts.len : NULL;
    for (sip_str fmt; p && (fmt = sip_sdp_next_token(&p, end)).p;) {
      put(&o, " ", 1);
      put(&o, fmt.p, fmt.len);
    }
    puts_(&o, o.eol);
  }
  if (accepted)
    *accepted = acc;
  if (o.n > 0x7fffffff)
    return SIP_ETOOMANY;
  return (int)o.n;
}
