/* Flood protection: requests counted per source IP address (and per source
 * and From user) in fixed windows, before the full parse and before any
 * script; a source over its threshold is blocked for a while (see
 * sip_flood_config in sip_transport.h).
 *
 * Cost per request: the method is the first token of the start line, the
 * From user a scan of the header section's line starts (only with
 * max_user), and one or two lookups of at most PROBES slots of a fixed
 * table. A blocked source's datagram costs that and nothing more: no
 * allocation, no parse. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sip_reply.h"
#include "tp_int.h"

#define PROBES 8
#define MAX_TRUST 64
#define USER_KEEP 32

enum { KIND_INVITE = 1, KIND_OTHER = 2, KIND_USER = 3 };

typedef struct fentry {
  uint8_t used;
  uint8_t len;     /* address bytes: 4 or 16 (0: unused) */
  uint8_t replied; /* the 503 of this block was sent */
  uint8_t ulen;    /* bytes of user kept */
  uint32_t uhash;  /* 0: the source itself; else a user of it */
  unsigned char addr[16];
  uint64_t win_start, last_seen, blocked_until;
  uint32_t n_invite, n_other;
  char user[USER_KEEP];
} fentry;

typedef struct trust {
  uint8_t len; /* 4 or 16 */
  uint8_t prefix;
  unsigned char addr[16]; /* the bits past prefix are zero */
  uint32_t refs;          /* times trusted, less times untrusted */
} trust;

struct sip__flood {
  sip_flood_config cfg;
  fentry *tab;
  uint32_t mask;
  trust trusted[MAX_TRUST];
  int ntrust;
};

void sip_flood_config_init(sip_flood_config *cfg) {
  memset(cfg, 0, sizeof(*cfg));
  cfg->window_ms = 1000;
  cfg->block_ms = 60000;
  cfg->max_entries = 16384;
}

/* The address bytes of a sockaddr (an IPv4-mapped IPv6 address as IPv4).
 * Returns 4, 16, or 0 for another family. */
static int addr_bytes(const struct sockaddr_storage *sa, unsigned char *out) {
  static const unsigned char mapped[12] = {0, 0, 0, 0, 0,    0,
                                           0, 0, 0, 0, 0xff, 0xff};
  if (sa->ss_family == AF_INET) {
    memcpy(out, &((const struct sockaddr_in *)sa)->sin_addr, 4);
    return 4;
  }
  if (sa->ss_family == AF_INET6) {
    const unsigned char *a =
        ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
    if (memcmp(a, mapped, 12) == 0) {
      memcpy(out, a + 12, 4);
      return 4;
    }
    memcpy(out, a, 16);
    return 16;
  }
  return 0;
}

static uint32_t fnv(uint32_t h, const unsigned char *p, size_t n) {
  for (size_t i = 0; i < n; i++)
    h = (h ^ p[i]) * 16777619u;
  return h;
}

/* ---- configuration --------------------------------------------------------
 */

int sip_tp_flood(sip_tp *tp, const sip_flood_config *cfg) {
  struct sip__flood *f = tp->flood;
  if (!cfg) {
    sip__tp_flood_free(tp);
    return 0;
  }
  if (cfg->max_entries == 0 || cfg->max_entries > (1u << 24) ||
      cfg->window_ms == 0)
    return SIP_EINVAL;
  uint32_t n = 16;
  while (n < cfg->max_entries)
    n <<= 1;
  if (!f) {
    f = calloc(1, sizeof(*f));
    if (!f)
      return SIP_ENOMEM;
  }
  if (!f->tab || f->mask + 1 != n) {
    fentry *t = calloc(n, sizeof(*t));
    if (!t) {
      if (!tp->flood)
        free(f);
      return SIP_ENOMEM;
    }
    free(f->tab);
    f->tab = t;
    f->mask = n - 1;
  }
  f->cfg = *cfg;
  tp->flood = f;
  return 0;
}

void sip__tp_flood_free(sip_tp *tp) {
  if (!tp->flood)
    return;
  free(tp->flood->tab);
  free(tp->flood);
  tp->flood = NULL;
}

/* Parse "ADDR" or "ADDR/PREFIX" into t (host bits cleared). 0 or
 * SIP_EINVAL. */
static int parse_cidr(const char *cidr, trust *t) {
  const char *slash = strchr(cidr, '/');
  size_t alen = slash ? (size_t)(slash - cidr) : strlen(cidr);
  struct sockaddr_storage sa;
  if (sip_tp_addr(&sa, cidr, alen, 0) < 0)
    return SIP_EINVAL;
  memset(t, 0, sizeof(*t));
  t->len = (uint8_t)addr_bytes(&sa, t->addr);
  int prefix = t->len * 8;
  if (slash) {
    const char *p = slash + 1;
    if (!*p || strlen(p) > 3)
      return SIP_EINVAL;
    prefix = 0;
    for (; *p; p++) {
      if (*p < '0' || *p > '9')
        return SIP_EINVAL;
      prefix = prefix * 10 + (*p - '0');
    }
    if (prefix > t->len * 8)
      return SIP_EINVAL;
  }
  t->prefix = (uint8_t)prefix;
  /* clear the host bits, so that one network has one form */
  for (int i = prefix / 8; i < t->len; i++) {
    int keep = i == prefix / 8 ? prefix % 8 : 0;
    t->addr[i] &= (unsigned char)(0xff << (8 - keep));
  }
  return 0;
}

/* The entry equal to t, or -1. */
static int find_trust(const struct sip__flood *f, const trust *t) {
  for (int i = 0; i < f->ntrust; i++) {
    const trust *e = &f->trusted[i];
    if (e->len == t->len && e->prefix == t->prefix &&
        memcmp(e->addr, t->addr, t->len) == 0)
      return i;
  }
  return -1;
}

/* cidr parsed into t and its entry in *idx (-1: none): 0, or SIP_EINVAL
 * (malformed, or flood protection off). */
static int lookup_trust(const sip_tp *tp, const char *cidr, trust *t,
                        int *idx) {
  if (!tp->flood || !cidr || parse_cidr(cidr, t) < 0)
    return SIP_EINVAL;
  *idx = find_trust(tp->flood, t);
  return 0;
}

int sip_tp_flood_trust(sip_tp *tp, const char *cidr) {
  trust t;
  int i = -1, rc = lookup_trust(tp, cidr, &t, &i);
  if (rc < 0)
    return rc;
  struct sip__flood *f = tp->flood;
  if (i >= 0) { /* trusted already (by the configuration, another set) */
    f->trusted[i].refs++;
    return 0;
  }
  if (f->ntrust >= MAX_TRUST)
    return SIP_ETOOMANY;
  t.refs = 1;
  f->trusted[f->ntrust++] = t;
  return 0;
}

int sip_tp_flood_untrust(sip_tp *tp, const char *cidr) {
  trust t;
  int i = -1, rc = lookup_trust(tp, cidr, &t, &i);
  if (rc < 0)
    return rc;
  if (i < 0)
    return SIP_ENOTFOUND;
  struct sip__flood *f = tp->flood;
  if (--f->trusted[i].refs == 0)
    f->trusted[i] = f->trusted[--f->ntrust];
  return 0;
}

void sip_tp_flood_trust_clear(sip_tp *tp) {
  if (tp->flood)
    tp->flood->ntrust = 0;
}

static int trusted(const struct sip__flood *f, const unsigned char *a,
                   int len) {
  for (int i = 0; i < f->ntrust; i++) {
    const trust *t = &f->trusted[i];
    if (t->len != len)
      continue;
    int bytes = t->prefix / 8, bits = t->prefix % 8;
    if (memcmp(t->addr, a, (size_t)bytes) != 0)
      continue;
    if (bits) {
      unsigned char m = (unsigned char)(0xff << (8 - bits));
      if ((t->addr[bytes] & m) != (a[bytes] & m))
        continue;
    }
    return 1;
  }
  return 0;
}

/* ---- the table ------------------------------------------------------------
 */

static int blocked(const fentry *e, uint64_t now) {
  return e->blocked_until > now;
}

/* The entry of (address, user hash), created when absent: a free slot of
 * the probe run, else the least recently seen unblocked one, else the block
 * that ends first. */
static fentry *lookup(sip_tp *tp, const unsigned char *a, int len,
                      uint32_t uhash, uint64_t now) {
  struct sip__flood *f = tp->flood;
  uint32_t h = fnv(2166136261u ^ uhash, a, (size_t)len);
  fentry *victim = NULL, *free_slot = NULL;
  for (uint32_t i = 0; i < PROBES; i++) {
    fentry *e = &f->tab[(h + i) & f->mask];
    if (!e->used) {
      if (!free_slot)
        free_slot = e;
      continue;
    }
    if (e->len == len && e->uhash == uhash &&
        memcmp(e->addr, a, (size_t)len) == 0)
      return e;
    if (!victim || (blocked(victim, now) && !blocked(e, now)) ||
        (blocked(victim, now) == blocked(e, now) &&
         (blocked(e, now) ? e->blocked_until < victim->blocked_until
                          : e->last_seen < victim->last_seen)))
      victim = e;
  }
  fentry *e = free_slot;
  if (!e) {
    e = victim;
    tp->st.flood_evictions++;
  }
  memset(e, 0, sizeof(*e));
  e->used = 1;
  e->len = (uint8_t)len;
  e->uhash = uhash;
  memcpy(e->addr, a, (size_t)len);
  e->win_start = now;
  return e;
}

/* ---- cheap reads of the raw message ---------------------------------------
 */

static int lower(int c) { return c >= 'A' && c <= 'Z' ? c + 32 : c; }

static int ieq(const char *p, const char *lit, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (lower((unsigned char)p[i]) != lit[i])
      return 0;
  return 1;
}

/* The user part of the URI in the From header field: p[0..len) is the raw
 * message. 0 with user and ulen set, or -1 (no From, or no user). */
static int from_user(const char *p, size_t len, const char **user,
                     size_t *ulen) {
  const char *end = p + len, *line = memchr(p, '\n', len);
  while (line && ++line < end) {
    if (*line == '\r' || *line == '\n')
      return -1; /* the end of the header section */
    const char *nl = memchr(line, '\n', (size_t)(end - line));
    const char *le = nl ? nl : end;
    size_t k = 0, n = (size_t)(le - line);
    while (k < n && line[k] != ':' && line[k] != ' ' && line[k] != '\t')
      k++;
    if ((k == 4 && ieq(line, "from", 4)) || (k == 1 && lower(*line) == 'f')) {
      for (const char *q = line + k; q + 4 <= le; q++) {
        size_t skip = ieq(q, "sip:", 4)                     ? 4
                      : (q + 5 <= le && ieq(q, "sips:", 5)) ? 5
                                                            : 0;
        if (!skip)
          continue;
        const char *u = q + skip, *e = u;
        while (e < le && *e != '@' && *e != '>' && *e != ';' && *e != ' ')
          e++;
        if (e == le || *e != '@' || e == u)
          return -1;
        *user = u;
        *ulen = (size_t)(e - u);
        return 0;
      }
      return -1;
    }
    line = nl;
  }
  return -1;
}

/* ---- the 503 --------------------------------------------------------------
 */

static void reply_503(sip_tp *tp, const char *p, size_t len,
                      const sip_src *src) {
  sip_rxbuf *rx = sip__tp_rxbuf_new(p, len, &tp->cfg.limits);
  if (!rx)
    return;
  int rc = sip_msg_parse(&rx->msg, rx->data, rx->len,
                         src->transport == SIP_TP_UDP ? SIP_MODE_DATAGRAM
                                                      : SIP_MODE_STREAM);
  if (rc >= 0 && rx->msg.is_request &&
      !sip_str_ieq_cstr(rx->msg.method, "ACK")) {
    char extra[48], tag[24], buf[8192];
    int xl = snprintf(extra, sizeof(extra), "Retry-After: %u\r\n",
                      (unsigned)((tp->flood->cfg.block_ms + 999) / 1000));
    int tl = snprintf(tag, sizeof(tag), "fl%llx",
                      (unsigned long long)(uv_hrtime() & 0xffffffffffull));
    int n = sip_reply_write(
        &rx->msg, 503, (sip_str){NULL, 0}, (sip_str){tag, (size_t)tl},
        (sip_str){extra, (size_t)xl}, (sip_str){"", 0}, buf, sizeof(buf));
    if (n > 0) {
      /* to the packet's source (or its connection), never to a Via host */
      sip_dest d;
      sip_dest_init(&d, src->transport);
      d.addr = src->peer;
      d.listener = src->listener;
      d.conn_id = src->conn_id;
      if (sip_tp_send(tp, buf, (size_t)n, &d, NULL, NULL) == 0)
        tp->st.flood_replied++;
    }
  }
  sip_rxbuf_unref(rx);
}

/* ---- the check ------------------------------------------------------------
 */

/* Count one request of kind in e; returns the kind that went over its
 * threshold, or 0. */
static int count(const sip_flood_config *c, fentry *e, int invite,
                 uint64_t now) {
  if (now - e->win_start >= c->window_ms) {
    e->win_start = now;
    e->n_invite = e->n_other = 0;
  }
  if (invite) {
    e->n_invite++;
    return c->max_invite && e->n_invite > c->max_invite ? KIND_INVITE : 0;
  }
  e->n_other++;
  return c->max_other && e->n_other > c->max_other ? KIND_OTHER : 0;
}

/* Over a threshold: block e unless the hook says no. 1 blocked. */
static int start_block(sip_tp *tp, fentry *e, const sip_src *src, int kind,
                       const char *user, size_t ulen, uint64_t now) {
  struct sip__flood *f = tp->flood;
  uint32_t n = kind == KIND_INVITE ? e->n_invite : e->n_other;
  if (f->cfg.on_block &&
      !f->cfg.on_block(f->cfg.ud, &src->peer, user, ulen, kind, n)) {
    tp->st.flood_vetoed++;
    e->win_start = now; /* a new window: asked again when it fills */
    e->n_invite = e->n_other = 0;
    return 0;
  }
  e->blocked_until = now + f->cfg.block_ms;
  e->replied = 0;
  tp->st.flood_blocks++;
  return 1;
}

/* Drop a request of a blocked entry: the first one answered with 503 when
 * configured. */
static int drop(sip_tp *tp, fentry *e, const char *p, size_t len,
                const sip_src *src) {
  tp->st.flood_dropped++;
  if (tp->flood->cfg.reply_503 && !e->replied) {
    e->replied = 1;
    reply_503(tp, p, len, src);
  }
  return 1;
}

int sip__tp_flood_check(sip_tp *tp, const char *p, size_t len,
                        const sip_src *src) {
  struct sip__flood *f = tp->flood;
  if (len < 8 || (len >= 4 && memcmp(p, "SIP/", 4) == 0))
    return 0; /* a response (or too short to be anything: the parser says) */
  unsigned char a[16];
  int alen = addr_bytes(&src->peer, a);
  if (!alen)
    return 0;
  if (f->ntrust && trusted(f, a, alen)) {
    tp->st.flood_trusted++;
    return 0;
  }
  int invite = (len > 7 && memcmp(p, "INVITE ", 7) == 0) ||
               (len > 9 && memcmp(p, "REGISTER ", 9) == 0);
  uint64_t now = uv_now(tp->loop);
  const sip_flood_config *c = &f->cfg;
  if (c->max_user) {
    const char *user;
    size_t ulen;
    if (from_user(p, len, &user, &ulen) == 0) {
      uint32_t uh = fnv(2166136261u, (const unsigned char *)user, ulen);
      if (!uh)
        uh = 1;
      fentry *u = lookup(tp, a, alen, uh, now);
      u->last_seen = now;
      if (!u->ulen) {
        u->ulen = (uint8_t)(ulen < USER_KEEP ? ulen : USER_KEEP);
        memcpy(u->user, user, u->ulen);
      }
      if (blocked(u, now))
        return drop(tp, u, p, len, src);
      if (u->blocked_until) { /* a block ended: a fresh start */
        u->blocked_until = 0;
        u->win_start = now;
        u->n_invite = u->n_other = 0;
      }
      if (now - u->win_start >= c->window_ms) {
        u->win_start = now;
        u->n_invite = u->n_other = 0;
      }
      u->n_other++;
      if (u->n_other > c->max_user &&
          start_block(tp, u, src, KIND_USER, user, ulen, now))
        return drop(tp, u, p, len, src);
    }
  }
  fentry *e = lookup(tp, a, alen, 0, now);
  e->last_seen = now;
  if (blocked(e, now))
    return drop(tp, e, p, len, src);
  if (e->blocked_until) {
    e->blocked_until = 0;
    e->win_start = now;
    e->n_invite = e->n_other = 0;
  }
  int kind = count(c, e, invite, now);
  if (kind && start_block(tp, e, src, kind, NULL, 0, now))
    return drop(tp, e, p, len, src);
  return 0;
}

/* ---- administration -------------------------------------------------------
 */

int sip_tp_flood_unblock(sip_tp *tp, const struct sockaddr_storage *addr) {
  struct sip__flood *f = tp->flood;
  unsigned char a[16];
  int alen = addr_bytes(addr, a), n = 0;
  if (!f || !alen)
    return 0;
  uint64_t now = uv_now(tp->loop);
  for (uint32_t i = 0; i <= f->mask; i++) {
    fentry *e = &f->tab[i];
    if (e->used && e->len == alen && memcmp(e->addr, a, (size_t)alen) == 0 &&
        blocked(e, now)) {
      e->blocked_until = 0;
      e->win_start = now;
      e->n_invite = e->n_other = 0;
      n++;
    }
  }
  return n;
}

int sip_tp_flood_blocked(sip_tp *tp,
                         void (*cb)(void *arg,
                                    const struct sockaddr_storage *addr,
                                    const char *user, size_t user_len,
                                    uint64_t remaining_ms),
                         void *arg) {
  struct sip__flood *f = tp->flood;
  int n = 0;
  if (!f)
    return 0;
  uint64_t now = uv_now(tp->loop);
  for (uint32_t i = 0; i <= f->mask; i++) {
    fentry *e = &f->tab[i];
    if (!e->used || !blocked(e, now))
      continue;
    n++;
    if (!cb)
      continue;
    struct sockaddr_storage sa;
    memset(&sa, 0, sizeof(sa));
    if (e->len == 4) {
      struct sockaddr_in *s4 = (struct sockaddr_in *)&sa;
      s4->sin_family = AF_INET;
      memcpy(&s4->sin_addr, e->addr, 4);
    } else {
      struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&sa;
      s6->sin6_family = AF_INET6;
      memcpy(&s6->sin6_addr, e->addr, 16);
    }
    cb(arg, &sa, e->uhash ? e->user : NULL, e->uhash ? e->ulen : 0,
       e->blocked_until - now);
  }
  return n;
}
