/* WebSocket (RFC 6455) as a SIP transport (RFC 7118), under WS (TCP) and
 * WSS (TLS) connections of conn.c:
 *  - the HTTP/1.1 upgrade: a server requires GET, HTTP/1.1, Upgrade:
 *    websocket, Connection: upgrade, version 13, a 16-byte key, the "sip"
 *    subprotocol and (when configured) an accepted Origin; a client sends
 *    the request and checks Sec-WebSocket-Accept and the subprotocol;
 *  - frames: masking (client to server only), fragmentation, ping/pong,
 *    close with its code, a frame and message limit of limits.max_size;
 *  - one SIP message per WebSocket message (§5): a message is parsed as a
 *    datagram is (Content-Length optional);
 *  - a GET without Upgrade serves a file under http_root (a demo page on
 *    the same port; nothing more of an HTTP server).
 * The connection is in SIP__CS_WSHAKE from TCP/TLS up to the upgrade; sends
 * wait in its queue as they do while connecting. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tp_int.h"

/* The upgrade request or response, at most (more: 431 / failure). */
#define WS_MAX_HEAD 8192
/* A static file, at most. */
#define WS_MAX_FILE (16u << 20)

enum {
  OP_CONT = 0,
  OP_TEXT = 1,
  OP_BIN = 2,
  OP_CLOSE = 8,
  OP_PING = 9,
  OP_PONG = 10,
};

/* RFC 6455 §1.3 */
static const char ws_guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

static int lower(int ch) { return ch >= 'A' && ch <= 'Z' ? ch + 32 : ch; }

static int ieq(const char *a, size_t an, const char *b) {
  size_t bn = strlen(b);
  if (an != bn)
    return 0;
  for (size_t i = 0; i < an; i++)
    if (lower((unsigned char)a[i]) != lower((unsigned char)b[i]))
      return 0;
  return 1;
}

static void peer_str(const sip_conn *c, char *out, size_t cap) {
  sip_tp_addr_str(&c->peer, out, cap);
}

/* Sec-WebSocket-Accept of a key: base64(SHA-1(key GUID)), 28 characters. */
static int accept_of(const char *key, size_t n, char out[32]) {
  char buf[128];
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int mdlen = 0;
  if (n > sizeof buf - sizeof ws_guid)
    return -1;
  memcpy(buf, key, n);
  memcpy(buf + n, ws_guid, sizeof ws_guid - 1);
  if (!EVP_Digest(buf, n + sizeof ws_guid - 1, md, &mdlen, EVP_sha1(), NULL) ||
      mdlen != 20)
    return -1;
  EVP_EncodeBlock((unsigned char *)out, md, 20);
  return 0;
}

/* ---- HTTP header section ---------------------------------------------------
 */

/* Length of the header section (through the empty line) in p[0..n), or 0
 * when it is not all there. */
static size_t head_len(const char *p, size_t n) {
  for (size_t i = 0; i + 1 < n; i++) {
    if (p[i] != '\n')
      continue;
    if (p[i + 1] == '\n')
      return i + 2;
    if (i + 2 < n && p[i + 1] == '\r' && p[i + 2] == '\n')
      return i + 3;
  }
  return 0;
}

/* A field line "name: value" of a header section, value trimmed. */
typedef struct hfield {
  const char *name, *value;
  size_t nlen, vlen;
} hfield;

/* The next field line at *pos of h[0..n): 1 and *f, or 0 at the end. */
static int next_field(const char *h, size_t n, size_t *pos, hfield *f) {
  while (*pos < n) {
    const char *line = h + *pos;
    const char *nl = memchr(line, '\n', n - *pos);
    size_t len = nl ? (size_t)(nl - line) : n - *pos;
    *pos += len + 1;
    if (len && line[len - 1] == '\r')
      len--;
    if (!len)
      return 0;
    const char *colon = memchr(line, ':', len);
    if (!colon)
      continue;
    f->name = line;
    f->nlen = (size_t)(colon - line);
    const char *v = colon + 1, *e = line + len;
    while (v < e && (*v == ' ' || *v == '\t'))
      v++;
    while (e > v && (e[-1] == ' ' || e[-1] == '\t'))
      e--;
    f->value = v;
    f->vlen = (size_t)(e - v);
    return 1;
  }
  return 0;
}

/* Offset of the first field line (after the start line). */
static size_t first_field(const char *h, size_t n) {
  const char *nl = memchr(h, '\n', n);
  return nl ? (size_t)(nl - h) + 1 : n;
}

/* The value of the first field called name; NULL when none. */
static const char *field(const char *h, size_t n, const char *name,
                         size_t *vlen) {
  size_t pos = first_field(h, n);
  hfield f;
  while (next_field(h, n, &pos, &f))
    if (ieq(f.name, f.nlen, name)) {
      *vlen = f.vlen;
      return f.value;
    }
  return NULL;
}

/* Does a field called name (any of them) list token (comma-separated,
 * case-insensitive)? */
static int has_token(const char *h, size_t n, const char *name,
                     const char *token) {
  size_t pos = first_field(h, n);
  hfield f;
  while (next_field(h, n, &pos, &f)) {
    if (!ieq(f.name, f.nlen, name))
      continue;
    const char *p = f.value, *e = f.value + f.vlen;
    while (p < e) {
      const char *comma = memchr(p, ',', (size_t)(e - p));
      const char *te = comma ? comma : e;
      const char *a = p, *b = te;
      while (a < b && (*a == ' ' || *a == '\t'))
        a++;
      while (b > a && (b[-1] == ' ' || b[-1] == '\t'))
        b--;
      if (ieq(a, (size_t)(b - a), token))
        return 1;
      p = comma ? comma + 1 : e;
    }
  }
  return 0;
}

/* Is origin in the configured list (separated by spaces or commas)? */
static int origin_ok(const sip_tp *tp, const char *o, size_t n) {
  const char *list = tp->cfg.ws_origins;
  if (!list || !*list)
    return 1;
  if (!o)
    return 0;
  const char *p = list;
  while (*p) {
    while (*p == ' ' || *p == ',')
      p++;
    const char *s = p;
    while (*p && *p != ' ' && *p != ',')
      p++;
    if (p > s && (size_t)(p - s) == n && strncasecmp(s, o, n) == 0)
      return 1;
  }
  return 0;
}

/* ---- frames ----------------------------------------------------------------
 */

/* A frame header for a payload of len into h (14 bytes at most); a client
 * masks with a fresh key (RFC 6455 §5.3). Returns its length. */
static size_t frame_head(unsigned char *h, int op, size_t len, int mask,
                         unsigned char key[4]) {
  size_t k;
  h[0] = (unsigned char)(0x80 | op);
  if (len < 126) {
    h[1] = (unsigned char)len;
    k = 2;
  } else if (len < 65536) {
    h[1] = 126;
    h[2] = (unsigned char)(len >> 8);
    h[3] = (unsigned char)len;
    k = 4;
  } else {
    h[1] = 127;
    for (int i = 0; i < 8; i++)
      h[2 + i] = (unsigned char)((uint64_t)len >> (56 - 8 * i));
    k = 10;
  }
  if (mask) {
    h[1] |= 0x80;
    if (RAND_bytes(key, 4) != 1)
      memset(key, 0x5a, 4);
    memcpy(h + k, key, 4);
    k += 4;
  }
  return k;
}

/* A control frame (payload <= 125 bytes), written at once. */
static int control(sip_conn *c, int op, const unsigned char *p, size_t n) {
  unsigned char f[14 + 125], key[4];
  if (n > 125)
    n = 125;
  int mask = c->listener < 0;
  size_t k = frame_head(f, op, n, mask, key);
  for (size_t i = 0; i < n; i++)
    f[k + i] = mask ? p[i] ^ key[i & 3] : p[i];
  return sip__tp_conn_raw(c, (const char *)f, k + n);
}

sip__wreq *sip__tp_ws_frame(sip_conn *c, sip__wreq *w) {
  unsigned char h[14], key[4];
  int mask = c->listener < 0;
  size_t k = frame_head(h, OP_TEXT, w->len, mask, key);
  sip__wreq *f = sip__tp_conn_wreq(c, k + w->len, w->msg_len, w->cb, w->arg);
  if (!f) {
    free(w);
    return NULL;
  }
  memcpy(f->data, h, k);
  memcpy(f->data + k, w->data, w->len);
  if (mask)
    for (size_t i = 0; i < w->len; i++)
      f->data[k + i] ^= (char)key[i & 3];
  free(w);
  return f;
}

void sip__tp_ws_close(sip_conn *c, int code) {
  if (!c->ws || c->ws_closing || c->state == SIP__CS_CLOSING)
    return;
  c->ws_closing = 1;
  unsigned char p[2] = {(unsigned char)(code >> 8), (unsigned char)code};
  control(c, OP_CLOSE, p, 2);
}

uint64_t sip__tp_ws_ping_due(const sip_conn *c) {
  uint32_t every = c->tp->cfg.ws_ping_interval_ms;
  if (!c->ws || !every || c->state != SIP__CS_OPEN || c->ws_closing)
    return 0;
  /* One outstanding: the idle timeout decides. Anything received since
   * (the pong, in the same millisecond of loop time on loopback) answers
   * it: a ping is sent at least `every` after the last receipt, so
   * ping_sent == last_rx means received after. */
  if (c->ping_sent && c->ping_sent > c->last_rx)
    return 0;
  return c->last_rx + every;
}

void sip__tp_ws_ping(sip_conn *c) {
  c->ping_sent = uv_now(c->tp->loop);
  c->tp->st.ws_pings++;
  if (control(c, OP_PING, (const unsigned char *)"", 0) < 0)
    sip__tp_conn_close(c, UV_EPIPE, 0);
}

void sip__tp_ws_free(sip_conn *c) {
  free(c->ws_msg);
  c->ws_msg = NULL;
  c->ws_mlen = c->ws_mcap = 0;
}

/* A protocol failure: close code, counted, the connection closed. */
static int ws_fail(sip_conn *c, int code, const char *why) {
  char peer[64];
  peer_str(c, peer, sizeof peer);
  c->tp->st.ws_errors++;
  sip__tp_seterr(c->tp, "%s %s: %s (close %d)",
                 sip_tp_transport_name(c->transport), peer, why, code);
  sip__tp_ws_close(c, code);
  sip__tp_conn_close(c, code == 1009 ? SIP_ETOOBIG : UV_EPROTO, 1);
  return -1;
}

/* Whether p[0..n) is well-formed UTF-8 (RFC 3629 §4: no overlong forms, no
 * surrogates, nothing above U+10FFFF, no sequence cut short), as a text
 * message and a close reason must be (RFC 6455 §8.1, §5.5.1). */
static int utf8_ok(const unsigned char *p, size_t n) {
  size_t i = 0;
  while (i < n) {
    unsigned b = p[i];
    if (b < 0x80) {
      i++;
      continue;
    }
    size_t k;
    unsigned lo = 0x80, hi = 0xbf; /* the second byte's range */
    if (b >= 0xc2 && b <= 0xdf) {
      k = 1;
    } else if (b >= 0xe0 && b <= 0xef) {
      k = 2;
      if (b == 0xe0)
        lo = 0xa0; /* overlong */
      else if (b == 0xed)
        hi = 0x9f; /* surrogates */
    } else if (b >= 0xf0 && b <= 0xf4) {
      k = 3;
      if (b == 0xf0)
        lo = 0x90; /* overlong */
      else if (b == 0xf4)
        hi = 0x8f; /* above U+10FFFF */
    } else {
      return 0;
    }
    if (n - i - 1 < k || p[i + 1] < lo || p[i + 1] > hi)
      return 0;
    for (size_t j = 2; j <= k; j++)
      if ((p[i + j] & 0xc0) != 0x80)
        return 0;
    i += k + 1;
  }
  return 1;
}

/* Only line ends: a CRLF keep-alive (RFC 5626 §3.5.1) in a message. */
static int only_crlf(const char *p, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (p[i] != '\r' && p[i] != '\n')
      return 0;
  return 1;
}

/* One WebSocket message: one SIP message (RFC 7118 §5). */
static void deliver(sip_conn *c, const char *p, size_t n) {
  sip_tp *tp = c->tp;
  if (only_crlf(p, n)) {
    tp->st.keepalives++;
    if (c->listener >= 0 && n >= 4) { /* a ping: one CRLF back */
      sip__wreq *w = sip__tp_conn_wreq(c, 2, 0, NULL, NULL);
      if (w) {
        memcpy(w->data, "\r\n", 2);
        w = sip__tp_ws_frame(c, w);
      }
      if (w &&
          (c->ssl ? sip__tp_tls_write(c, w) : sip__tp_conn_write(c, w)) < 0)
        sip__tp_conn_close(c, UV_EPIPE, 0);
    }
    return;
  }
  sip_rxbuf *rx = sip__tp_rxbuf_new(p, n, &tp->cfg.limits);
  if (!rx) {
    tp->st.dropped++;
    return;
  }
  sip_src src;
  memset(&src, 0, sizeof src);
  src.transport = c->transport;
  src.listener = c->listener;
  src.conn_id = c->id;
  src.local = c->local;
  src.peer = c->peer;
  int rc = sip_msg_parse(&rx->msg, rx->data, rx->len, SIP_MODE_DATAGRAM);
  sip__tp_deliver(tp, rx, rc, &src);
  sip_rxbuf_unref(rx);
}

static int append(sip_conn *c, const unsigned char *p, size_t n) {
  if (c->ws_mlen + n > c->tp->cfg.limits.max_size)
    return ws_fail(c, 1009, "message too big");
  if (c->ws_mlen + n > c->ws_mcap) {
    size_t cap = c->ws_mcap ? c->ws_mcap * 2 : 4096;
    while (cap < c->ws_mlen + n)
      cap *= 2;
    char *m = realloc(c->ws_msg, cap);
    if (!m)
      return ws_fail(c, 1011, "out of memory");
    c->ws_msg = m;
    c->ws_mcap = cap;
  }
  memcpy(c->ws_msg + c->ws_mlen, p, n);
  c->ws_mlen += n;
  return 0;
}

/* One frame at c->buf + c->start: 1 consumed, 0 incomplete, -1 closed. */
static int frame(sip_conn *c) {
  sip_tp *tp = c->tp;
  unsigned char *p = (unsigned char *)c->buf + c->start;
  size_t n = c->len - c->start;
  if (!c->msg_start)
    c->msg_start = uv_now(tp->loop);
  if (n < 2)
    return 0;
  int fin = p[0] & 0x80, op = p[0] & 0x0f, masked = p[1] & 0x80;
  uint64_t plen = p[1] & 0x7f;
  size_t hl = 2;
  if (p[0] & 0x70)
    return ws_fail(c, 1002, "reserved bits set");
  if (op != OP_CONT && op != OP_TEXT && op != OP_BIN && op != OP_CLOSE &&
      op != OP_PING && op != OP_PONG)
    return ws_fail(c, 1002, "unknown opcode");
  if (op >= OP_CLOSE && (!fin || plen > 125))
    return ws_fail(c, 1002, "fragmented or long control frame");
  if (c->listener >= 0 && !masked)
    return ws_fail(c, 1002, "unmasked frame from a client");
  if (c->listener < 0 && masked)
    return ws_fail(c, 1002, "masked frame from a server");
  if (plen == 126) {
    if (n < 4)
      return 0;
    plen = (uint64_t)p[2] << 8 | p[3];
    hl = 4;
  } else if (plen == 127) {
    if (n < 10)
      return 0;
    plen = 0;
    for (int i = 2; i < 10; i++)
      plen = plen << 8 | p[i];
    hl = 10;
    if (plen >> 63)
      return ws_fail(c, 1002, "bad payload length");
  }
  if (plen > tp->cfg.limits.max_size)
    return ws_fail(c, 1009, "frame too big");
  if (masked)
    hl += 4;
  if (n < hl + plen)
    return 0;
  unsigned char *pay = p + hl;
  if (masked)
    for (size_t i = 0; i < plen; i++)
      pay[i] ^= p[hl - 4 + (i & 3)];
  c->start += hl + (size_t)plen;
  if (!c->ws_frag)
    c->msg_start = 0;
  switch (op) {
  case OP_PING:
    tp->st.ws_pings++;
    if (control(c, OP_PONG, pay, (size_t)plen) < 0) {
      sip__tp_conn_close(c, UV_EPIPE, 0);
      return -1;
    }
    return 1;
  case OP_PONG:
    return 1;
  case OP_CLOSE: {
    if (plen > 2 && !utf8_ok(pay + 2, (size_t)plen - 2))
      return ws_fail(c, 1007, "close reason not UTF-8");
    int code = plen >= 2 ? (pay[0] << 8 | pay[1]) : 1000;
    sip__tp_ws_close(c, code == 1005 || code == 1006 ? 1000 : code);
    sip__tp_conn_close(c, 0, 1);
    return -1;
  }
  case OP_CONT:
    if (!c->ws_frag)
      return ws_fail(c, 1002, "continuation without a message");
    if (append(c, pay, (size_t)plen) < 0)
      return -1;
    if (fin) {
      size_t len = c->ws_mlen;
      if (c->ws_frag == OP_TEXT &&
          !utf8_ok((const unsigned char *)c->ws_msg, len))
        return ws_fail(c, 1007, "text message not UTF-8");
      c->ws_frag = 0;
      c->msg_start = 0;
      c->ws_mlen = 0;
      deliver(c, c->ws_msg, len); /* copied: ws_msg may be reused */
    }
    return 1;
  default: /* text, binary */
    if (c->ws_frag)
      return ws_fail(c, 1002, "new message inside a fragmented one");
    if (fin) {
      if (op == OP_TEXT && !utf8_ok(pay, (size_t)plen))
        return ws_fail(c, 1007, "text message not UTF-8");
      deliver(c, (const char *)pay, (size_t)plen);
      return 1;
    }
    c->ws_frag = op; /* text (checked when complete) or binary */
    c->ws_mlen = 0;
    return append(c, pay, (size_t)plen) < 0 ? -1 : 1;
  }
}

/* ---- the upgrade -----------------------------------------------------------
 */

static void http_reply(sip_conn *c, const char *status, const char *extra) {
  char b[512];
  int n = snprintf(b, sizeof b,
                   "HTTP/1.1 %s\r\nContent-Length: 0\r\nConnection: close\r\n"
                   "%s\r\n",
                   status, extra ? extra : "");
  if (n > 0 && (size_t)n < sizeof b)
    sip__tp_conn_raw(c, b, (size_t)n);
}

/* An upgrade refused: the HTTP answer, then an orderly close. */
static int refuse(sip_conn *c, const char *status, const char *extra,
                  const char *why) {
  char peer[64];
  peer_str(c, peer, sizeof peer);
  c->tp->st.ws_rejected++;
  sip__tp_seterr(c->tp, "%s %s: upgrade refused: %s",
                 sip_tp_transport_name(c->transport), peer, why);
  http_reply(c, status, extra);
  sip__tp_conn_close(c, UV_EPROTO, 1);
  return -1;
}

static const char *mime_of(const char *path) {
  static const struct {
    const char *ext, *type;
  } types[] = {
      {".html", "text/html; charset=utf-8"},
      {".htm", "text/html; charset=utf-8"},
      {".js", "text/javascript; charset=utf-8"},
      {".mjs", "text/javascript; charset=utf-8"},
      {".css", "text/css; charset=utf-8"},
      {".json", "application/json"},
      {".map", "application/json"},
      {".txt", "text/plain; charset=utf-8"},
      {".png", "image/png"},
      {".svg", "image/svg+xml"},
      {".ico", "image/x-icon"},
      {".wav", "audio/wav"},
      {".wasm", "application/wasm"},
  };
  const char *dot = strrchr(path, '.');
  if (dot && !strchr(dot, '/'))
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
      if (ieq(dot, strlen(dot), types[i].ext))
        return types[i].type;
  return "application/octet-stream";
}

/* A GET without Upgrade: a file under http_root. The path is taken as
 * written (no %-decoding: a '%' is 404), a segment starting with '.' is
 * refused, and the resolved file must stay under the root (symbolic links
 * included). The file is read at once: small demo files only. */
static int serve_file(sip_conn *c, const char *path, size_t plen) {
  sip_tp *tp = c->tp;
  const char *root = tp->cfg.http_root;
  char want[PATH_MAX], real[PATH_MAX], rroot[PATH_MAX];
  size_t q = 0;
  while (q < plen && path[q] != '?' && path[q] != '#')
    q++;
  plen = q;
  if (!root || !*root || plen == 0 || path[0] != '/' || !realpath(root, rroot))
    return refuse(c, "404 Not Found", NULL, "no such file");
  for (size_t i = 0; i < plen; i++)
    if (path[i] == '%' || path[i] == '\\' || (unsigned char)path[i] < 0x21 ||
        (path[i] == '.' && i > 0 && path[i - 1] == '/'))
      return refuse(c, "404 Not Found", NULL, "refused path");
  int n = snprintf(want, sizeof want, "%s%.*s%s", rroot, (int)plen, path,
                   path[plen - 1] == '/' ? "index.html" : "");
  if (n < 0 || (size_t)n >= sizeof want || !realpath(want, real))
    return refuse(c, "404 Not Found", NULL, "no such file");
  size_t rl = strlen(rroot);
  if (strncmp(real, rroot, rl) != 0 || real[rl] != '/')
    return refuse(c, "404 Not Found", NULL, "outside the root");
  int fd = open(real, O_RDONLY | O_CLOEXEC);
  struct stat st;
  if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
      (uint64_t)st.st_size > WS_MAX_FILE) {
    if (fd >= 0)
      close(fd);
    return refuse(c, "404 Not Found", NULL, "not a regular file");
  }
  char head[256];
  int hn = snprintf(head, sizeof head,
                    "HTTP/1.1 200 OK\r\nContent-Type: %s\r\nContent-Length: "
                    "%lld\r\nCache-Control: no-cache\r\nConnection: close\r\n"
                    "X-Content-Type-Options: nosniff\r\n\r\n",
                    mime_of(real), (long long)st.st_size);
  size_t total = (size_t)hn + (size_t)st.st_size;
  sip__wreq *w = sip__tp_conn_wreq(c, total, 0, NULL, NULL);
  if (!w) {
    close(fd);
    return refuse(c, "500 Internal Server Error", NULL, "out of memory");
  }
  memcpy(w->data, head, (size_t)hn);
  size_t got = 0;
  while (got < (size_t)st.st_size) {
    ssize_t r = read(fd, w->data + hn + got, (size_t)st.st_size - got);
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0)
      break;
    got += (size_t)r;
  }
  close(fd);
  if (got != (size_t)st.st_size) {
    free(w);
    return refuse(c, "500 Internal Server Error", NULL, "read failed");
  }
  tp->st.http_files++;
  if ((c->ssl ? sip__tp_tls_write(c, w) : sip__tp_conn_write(c, w)) < 0) {
    sip__tp_conn_close(c, UV_EPIPE, 0);
    return -1;
  }
  sip__tp_conn_close(c, 0, 1);
  return -1;
}

/* The server side: h[0..n) is the request's header section. */
static int server_upgrade(sip_conn *c, const char *h, size_t n) {
  sip_tp *tp = c->tp;
  const char *sp1 = memchr(h, ' ', n);
  const char *eol = memchr(h, '\n', n);
  if (!sp1 || !eol || sp1 > eol)
    return refuse(c, "400 Bad Request", NULL, "malformed request line");
  const char *path = sp1 + 1;
  const char *sp2 = memchr(path, ' ', (size_t)(eol - path));
  if (!sp2)
    return refuse(c, "400 Bad Request", NULL, "malformed request line");
  const char *ver = sp2 + 1;
  size_t verlen = (size_t)(eol - ver);
  if (verlen && ver[verlen - 1] == '\r')
    verlen--;
  if (!ieq(ver, verlen, "HTTP/1.1"))
    return refuse(c, "505 HTTP Version Not Supported", NULL, "not HTTP/1.1");
  if ((size_t)(sp1 - h) != 3 || memcmp(h, "GET", 3) != 0)
    return refuse(c, "405 Method Not Allowed", "Allow: GET\r\n", "not GET");
  size_t vlen = 0;
  if (!field(h, n, "Upgrade", &vlen))
    return serve_file(c, path, (size_t)(sp2 - path));
  if (!has_token(h, n, "Upgrade", "websocket") ||
      !has_token(h, n, "Connection", "upgrade"))
    return refuse(c, "400 Bad Request", NULL, "not a WebSocket upgrade");
  const char *v = field(h, n, "Sec-WebSocket-Version", &vlen);
  if (!v || !ieq(v, vlen, "13"))
    return refuse(c, "426 Upgrade Required", "Sec-WebSocket-Version: 13\r\n",
                  "WebSocket version not 13");
  size_t klen = 0;
  const char *key = field(h, n, "Sec-WebSocket-Key", &klen);
  unsigned char raw[24];
  if (!key || klen != 24 || key[22] != '=' || key[23] != '=' ||
      EVP_DecodeBlock(raw, (const unsigned char *)key, 24) != 18)
    return refuse(c, "400 Bad Request", NULL, "bad Sec-WebSocket-Key");
  size_t olen = 0;
  const char *origin = field(h, n, "Origin", &olen);
  if (!origin_ok(tp, origin, olen))
    return refuse(c, "403 Forbidden", NULL, "Origin not allowed");
  if (!has_token(h, n, "Sec-WebSocket-Protocol", "sip"))
    return refuse(c, "400 Bad Request", NULL, "no sip subprotocol");
  char acc[32];
  if (accept_of(key, klen, acc) < 0)
    return refuse(c, "500 Internal Server Error", NULL, "SHA-1 failed");
  char resp[256];
  int rn = snprintf(resp, sizeof resp,
                    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                    "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n"
                    "Sec-WebSocket-Protocol: sip\r\n\r\n",
                    acc);
  if (sip__tp_conn_raw(c, resp, (size_t)rn) < 0) {
    sip__tp_conn_close(c, UV_EPIPE, 0);
    return -1;
  }
  c->start += n;
  tp->st.ws_upgrades++;
  sip__tp_conn_opened(c);
  return 0;
}

/* A failed client upgrade: the pending requests fail. */
static int client_fail(sip_conn *c, const char *why) {
  char peer[64];
  peer_str(c, peer, sizeof peer);
  c->tp->st.ws_rejected++;
  sip__tp_seterr(c->tp, "%s %s: upgrade failed: %s",
                 sip_tp_transport_name(c->transport), peer, why);
  sip__tp_conn_close(c, UV_EPROTO, 0);
  return -1;
}

/* The client side: h[0..n) is the response's header section. */
static int client_upgraded(sip_conn *c, const char *h, size_t n) {
  if (n < 12 || memcmp(h, "HTTP/1.1 101", 12) != 0)
    return client_fail(c, "no 101 Switching Protocols");
  size_t vlen = 0;
  const char *acc = field(h, n, "Sec-WebSocket-Accept", &vlen);
  if (!acc || vlen != strlen(c->ws_accept) || memcmp(acc, c->ws_accept, vlen))
    return client_fail(c, "bad Sec-WebSocket-Accept");
  if (!has_token(h, n, "Upgrade", "websocket"))
    return client_fail(c, "no Upgrade: websocket");
  const char *proto = field(h, n, "Sec-WebSocket-Protocol", &vlen);
  if (!proto || !ieq(proto, vlen, "sip"))
    return client_fail(c, "the sip subprotocol was not accepted");
  c->start += n;
  c->tp->st.ws_upgrades++;
  sip__tp_conn_opened(c);
  return 0;
}

void sip__tp_ws_start(sip_conn *c) {
  if (c->listener >= 0)
    return; /* a server waits for the request */
  unsigned char raw[16];
  char key[32], host[128], req[512];
  if (RAND_bytes(raw, sizeof raw) != 1) {
    client_fail(c, "no random key");
    return;
  }
  EVP_EncodeBlock((unsigned char *)key, raw, sizeof raw);
  if (accept_of(key, strlen(key), c->ws_accept) < 0) {
    client_fail(c, "SHA-1 failed");
    return;
  }
  if (c->tls_name)
    snprintf(host, sizeof host, "%s:%d", c->tls_name,
             sip_tp_addr_port(&c->peer));
  else
    sip_tp_addr_str(&c->peer, host, sizeof host);
  int n =
      snprintf(req, sizeof req,
               "GET / HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\n"
               "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
               "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: sip\r\n"
               "\r\n",
               host, key);
  if (n < 0 || (size_t)n >= sizeof req ||
      sip__tp_conn_raw(c, req, (size_t)n) < 0)
    client_fail(c, "cannot send the upgrade");
}

void sip__tp_ws_process(sip_conn *c) {
  sip_tp *tp = c->tp;
  while (!tp->closing && c->len > c->start) {
    if (c->state == SIP__CS_WSHAKE) {
      const char *p = c->buf + c->start;
      size_t n = c->len - c->start, hl = head_len(p, n);
      if (!hl) {
        if (n <= WS_MAX_HEAD)
          return; /* the handshake deadline (connect_timeout) applies */
        if (c->listener >= 0)
          refuse(c, "431 Request Header Fields Too Large", NULL,
                 "upgrade request too large");
        else
          client_fail(c, "upgrade response too large");
        return;
      }
      int rc = c->listener >= 0 ? server_upgrade(c, p, hl)
                                : client_upgraded(c, p, hl);
      if (rc < 0)
        return;
      continue;
    }
    if (c->state != SIP__CS_OPEN || frame(c) <= 0)
      return;
  }
}
