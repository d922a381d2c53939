/* UDP listeners: batched receive (recvmmsg through libuv's UV_UDP_RECVMMSG),
 * one rxbuf per datagram, and sends from the listener's own socket so that
 * responses leave from the port the request arrived on (RFC 3581). */
#include <stdlib.h>
#include <string.h>

#include "tp_int.h"

#define UDP_BUF_SIZE (SIP__UDP_BATCH * SIP__UDP_DGRAM_MAX)

/* One buffer per listener, reused for every batch: each datagram is copied
 * out into its own rxbuf before the next read. */
static void udp_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  sip_listener *l = h->data;
  (void)suggested;
  buf->base = l->rbuf;
  buf->len = UDP_BUF_SIZE;
}

static int only_crlf(const char *p, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (p[i] != '\r' && p[i] != '\n')
      return 0;
  return 1;
}

static void udp_recv(uv_udp_t *h, ssize_t nread, const uv_buf_t *buf,
                     const struct sockaddr *addr, unsigned flags) {
  sip_listener *l = h->data;
  sip_tp *tp = l->tp;
  /* nread 0 without addr: nothing read, or the end of a recvmmsg batch
   * (UV_UDP_MMSG_FREE); the buffer is ours and reused. */
  if (l->closing || tp->closing || nread == 0 || !addr)
    return;
  if (nread < 0) {
    sip__tp_seterr(tp, "udp recv: %s", uv_strerror((int)nread));
    return;
  }
  tp->st.rx_bytes += (uint64_t)nread;
  if (flags & UV_UDP_PARTIAL) { /* truncated: cannot be a whole message */
    tp->st.parse_errors++;
    tp->st.dropped++;
    return;
  }
  if (only_crlf(buf->base, (size_t)nread)) { /* keep-alive noise */
    tp->st.keepalives++;
    return;
  }
  sip_src src;
  memset(&src, 0, sizeof(src));
  src.transport = SIP_TP_UDP;
  src.listener = l->id;
  src.local = l->addr;
  memcpy(&src.peer, addr,
         addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                     : sizeof(struct sockaddr_in));
  if (tp->flood && sip__tp_flood_check(tp, buf->base, (size_t)nread, &src))
    return;
  sip_rxbuf *rx = sip__tp_rxbuf_new(buf->base, (size_t)nread, &tp->cfg.limits);
  if (!rx) {
    tp->st.dropped++;
    return;
  }
  int rc = sip_msg_parse(&rx->msg, rx->data, rx->len, SIP_MODE_DATAGRAM);
  sip__tp_deliver(tp, rx, rc, &src);
  sip_rxbuf_unref(rx);
}

int sip__tp_udp_listen(sip_tp *tp, sip_listener *l) {
  unsigned int fl = (unsigned int)l->addr.ss_family | UV_UDP_RECVMMSG;
  int rc = uv_udp_init_ex(tp->loop, &l->u.udp, fl);
  if (rc < 0)
    return rc;
  l->u.h.data = l;
  rc = uv_udp_bind(&l->u.udp, (const struct sockaddr *)&l->addr,
                   l->addr.ss_family == AF_INET6 ? UV_UDP_IPV6ONLY : 0);
  if (rc < 0)
    return rc;
  int n = (int)sizeof(l->addr);
  rc = uv_udp_getsockname(&l->u.udp, (struct sockaddr *)&l->addr, &n);
  if (rc < 0)
    return rc;
  if (tp->cfg.udp_rcvbuf > 0) {
    /* best effort: the kernel caps it at net.core.rmem_max */
    int v = tp->cfg.udp_rcvbuf;
    uv_recv_buffer_size(&l->u.h, &v);
  }
  l->rbuf = malloc(UDP_BUF_SIZE);
  if (!l->rbuf)
    return SIP_ENOMEM;
  return uv_udp_recv_start(&l->u.udp, udp_alloc, udp_recv);
}

/* ---- sending ----------------------------------------------------------------
 *
 * One sendmsg per datagram (uv_udp_try_send), so that an error belongs to
 * the datagram that caused it and to no other. libuv's own queue
 * (uv_udp_send) sends what accumulated in one loop iteration with one
 * sendmmsg of up to 20 datagrams, and when the kernel refuses the first of
 * them (ENETUNREACH for an unroutable Contact, say) it reports that error
 * for every datagram of the batch, none of which was sent (libuv 1.44
 * uv__udp_sendmmsg): under load, one bad destination failed unrelated
 * requests and responses. Only when the socket has no room (EAGAIN) does a
 * datagram wait here, in order; libuv is then given one datagram at a time
 * (a batch of one), to be told when the socket is writable again. */

struct sip__udp_out {
  uv_udp_send_t req;
  sip__udp_out *next;
  sip_listener *l;
  sip_tp_send_cb cb;
  void *arg;
  struct sockaddr_storage to;
  size_t len;
  char data[];
};

static socklen_t to_len(const struct sockaddr_storage *sa) {
  return sa->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                   : sizeof(struct sockaddr_in);
}

/* Count a result (0 or an error of this datagram alone). */
static void account(sip_tp *tp, size_t len, int status,
                    const struct sockaddr_storage *to) {
  if (status == 0) {
    tp->st.tx_msgs++;
    tp->st.tx_bytes += len;
    return;
  }
  char a[64];
  tp->st.tx_errors++;
  sip_tp_addr_str(to, a, sizeof(a));
  sip__tp_seterr(tp, "udp send to %s: %s", a, uv_strerror(status));
}

/* A waiting datagram's result (from the loop: the callback may run now). */
static void out_done(sip__udp_out *o, int status) {
  account(o->l->tp, o->len, status, &o->to);
  if (o->cb)
    o->cb(o->arg, status);
  free(o);
}

static void out_sent(uv_udp_send_t *req, int status);

/* Hand o to libuv (alone: a batch of one). 0 or libuv's code. */
static int out_start(sip_listener *l, sip__udp_out *o) {
  uv_buf_t b = uv_buf_init(o->data, (unsigned int)o->len);
  o->req.data = o;
  int rc = uv_udp_send(&o->req, &l->u.udp, &b, 1,
                       (const struct sockaddr *)&o->to, out_sent);
  if (rc == 0)
    l->busy = o;
  return rc;
}

/* The socket has room again: the waiting datagrams, in order. */
static void drain(sip_listener *l) {
  while (l->q_head && !l->busy && !l->closing) {
    sip__udp_out *o = l->q_head;
    l->q_head = o->next;
    if (!l->q_head)
      l->q_tail = NULL;
    uv_buf_t b = uv_buf_init(o->data, (unsigned int)o->len);
    int rc = uv_udp_try_send(&l->u.udp, &b, 1, (const struct sockaddr *)&o->to);
    if (rc == UV_EAGAIN)
      rc = out_start(l, o);
    else
      rc = rc < 0 ? rc : 0;
    if (l->busy != o)
      out_done(o, rc);
  }
}

static void out_sent(uv_udp_send_t *req, int status) {
  sip__udp_out *o = req->data;
  sip_listener *l = o->l;
  l->busy = NULL;
  out_done(o, status);
  drain(l);
}

void sip__tp_udp_close(sip_listener *l) {
  sip__udp_out *o = l->q_head;
  l->q_head = l->q_tail = NULL;
  while (o) { /* (the busy one: libuv cancels it when the handle closes) */
    sip__udp_out *next = o->next;
    out_done(o, UV_ECANCELED);
    o = next;
  }
}

static sip_listener *pick(sip_tp *tp, const sip_dest *dst) {
  int fam = dst->addr.ss_family;
  if (dst->listener >= 0) {
    sip_listener *l = dst->listener < tp->nls ? tp->ls[dst->listener] : NULL;
    if (l && l->transport == SIP_TP_UDP && l->addr.ss_family == fam)
      return l;
  }
  for (int i = 0; i < tp->nls; i++) {
    sip_listener *l = tp->ls[i];
    if (l && l->transport == SIP_TP_UDP && l->addr.ss_family == fam)
      return l;
  }
  return NULL;
}

int sip__tp_udp_send(sip_tp *tp, const char *bytes, size_t len,
                     const sip_dest *dst, sip_tp_send_cb cb, void *arg) {
  if (dst->addr.ss_family != AF_INET && dst->addr.ss_family != AF_INET6)
    return SIP_EINVAL;
  if (len > SIP__UDP_DGRAM_MAX - 8 - 40)
    return SIP_ETOOBIG;
  sip_listener *l = pick(tp, dst);
  if (!l)
    return UV_EAFNOSUPPORT;
  if (!l->busy && !l->q_head) {
    /* the common case: the kernel takes it now, or says why not */
    sip__done *d = NULL;
    if (cb && !(d = malloc(sizeof(*d))))
      return SIP_ENOMEM;
    uv_buf_t b = uv_buf_init((char *)bytes, (unsigned int)len);
    int rc =
        uv_udp_try_send(&l->u.udp, &b, 1, (const struct sockaddr *)&dst->addr);
    if (rc != UV_EAGAIN) {
      rc = rc < 0 ? rc : 0;
      account(tp, len, rc, &dst->addr);
      if (rc < 0) {
        free(d);
        return rc;
      }
      if (tp->trace)
        sip__tp_trace(tp, 1, bytes, len, SIP_TP_UDP, &l->addr, &dst->addr);
      if (d) {
        d->cb = cb;
        d->arg = arg;
        d->status = 0;
        sip__tp_defer(tp, d);
      }
      return 0;
    }
    free(d);
  }
  /* no room in the socket: wait, in order */
  sip__udp_out *o = malloc(sizeof(*o) + len);
  if (!o)
    return SIP_ENOMEM;
  memset(o, 0, sizeof(*o));
  o->l = l;
  o->cb = cb;
  o->arg = arg;
  o->len = len;
  memcpy(&o->to, &dst->addr, to_len(&dst->addr));
  memcpy(o->data, bytes, len);
  if (!l->busy) {
    int rc = out_start(l, o);
    if (rc < 0) {
      account(tp, len, rc, &dst->addr);
      free(o);
      return rc;
    }
  } else {
    if (l->q_tail)
      l->q_tail->next = o;
    else
      l->q_head = o;
    l->q_tail = o;
  }
  if (tp->trace)
    sip__tp_trace(tp, 1, bytes, len, SIP_TP_UDP, &l->addr, &dst->addr);
  return 0;
}
