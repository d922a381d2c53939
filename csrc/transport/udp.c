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

static void udp_sent(uv_udp_send_t *req, int status) {
  sip__wreq *w = req->data;
  sip_tp *tp = w->tp;
  if (status == 0) {
    tp->st.tx_msgs++;
    tp->st.tx_bytes += w->len;
  } else {
    tp->st.tx_errors++;
    sip__tp_seterr(tp, "udp send: %s", uv_strerror(status));
  }
  if (w->cb)
    w->cb(w->arg, status);
  free(w);
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
  sip__wreq *w = malloc(sizeof(*w) + len);
  if (!w)
    return SIP_ENOMEM;
  memset(w, 0, sizeof(*w));
  w->tp = tp;
  w->cb = cb;
  w->arg = arg;
  w->len = len;
  w->msg_len = (uint32_t)len;
  memcpy(w->data, bytes, len);
  w->req.u.data = w;
  uv_buf_t b = uv_buf_init(w->data, (unsigned int)len);
  int rc = uv_udp_send(&w->req.u, &l->u.udp, &b, 1,
                       (const struct sockaddr *)&dst->addr, udp_sent);
  if (rc < 0) {
    free(w);
    tp->st.tx_errors++;
    return rc;
  }
  if (tp->trace)
    sip__tp_trace(tp, 1, bytes, len, SIP_TP_UDP, &l->addr, &dst->addr);
  return 0;
}
