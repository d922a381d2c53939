/* The transaction user core: see sip_tu.h. */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sip_error.h"
#include "sip_fields.h"
#include "sip_proxy.h" /* sip_proxy_write_cancel: the §9.1 CANCEL, shared */
#include "sip_reply.h"
#include "sip_tu.h"

/* A 2xx re-sent by its transaction until this ACK comes. */
struct sip_tu_ackwait {
  sip_tu_ackwait *next;
  sip_txn *t; /* a reference */
  uint32_t cseq;
  uint8_t tag_len;
  char tag[64];
  size_t call_id_len;
  char call_id[];
};

void sip_tu_init(sip_tu *tu, sip_tp *tp, sip_txl *txl) {
  memset(tu, 0, sizeof(*tu));
  tu->tp = tp;
  tu->txl = txl;
  sip_sanity_config_init(&tu->sanity);
}

static void ack_free(sip_tu_ackwait *a) { free(a); }

/* The IST of a waiting 2xx ended (Timer L, or a transport failure): its
 * entry goes (the layer still holds the transaction during this call). */
static void on_ist_event(void *arg, sip_txn *t, int event, int err) {
  sip_tu *tu = arg;
  (void)err;
  if (event != SIP_TXN_EV_TERMINATED)
    return;
  for (sip_tu_ackwait **pp = &tu->acks; *pp; pp = &(*pp)->next)
    if ((*pp)->t == t) {
      sip_tu_ackwait *a = *pp;
      *pp = a->next;
      ack_free(a);
      return;
    }
}

static void client_unlist(sip_tu_client *c) {
  if (c->prev)
    c->prev->next = c->next;
  else
    c->tu->clients = c->next;
  if (c->next)
    c->next->prev = c->prev;
  c->prev = c->next = NULL;
  c->t = NULL;
}

void sip_tu_close(sip_tu *tu) {
  while (tu->clients) {
    sip_tu_client *c = tu->clients;
    if (tu->txl)
      sip_txn_set_event_cb(c->t, NULL, NULL);
    client_unlist(c);
    if (c->on_end)
      c->on_end(c);
  }
  while (tu->acks) {
    sip_tu_ackwait *a = tu->acks;
    tu->acks = a->next;
    if (tu->txl)
      sip_txn_set_event_cb(a->t, NULL, NULL);
    ack_free(a);
  }
  tu->tp = NULL;
  tu->txl = NULL;
}

int sip_tu_set_header(sip_tu *tu, int which, const char *value, size_t len) {
  const char *name = which == 'S' ? "Server" : "User-Agent";
  char *line = which == 'S' ? tu->server_line : tu->ua_line;
  size_t *n = which == 'S' ? &tu->server_len : &tu->ua_len;
  if (which != 'S' && which != 'U')
    return SIP_EINVAL;
  if (!value || !len) {
    *n = 0;
  } else {
    if (len > SIP_TU_HEADER_MAX)
      return SIP_EINVAL;
    for (size_t i = 0; i < len; i++)
      if ((unsigned char)value[i] < 0x20 || value[i] == 0x7f)
        return SIP_EINVAL;
    *n = (size_t)snprintf(line, SIP_TU_HEADER_MAX + 16, "%s: %.*s\r\n", name,
                          (int)len, value);
  }
  if (which == 'S' && tu->txl) {
    char v[SIP_TU_HEADER_MAX + 1];
    memcpy(v, value ? value : "", *n ? len : 0);
    v[*n ? len : 0] = '\0';
    sip_txl_set_server(tu->txl, *n ? v : NULL);
  }
  return 0;
}

sip_str sip_tu_new_tag(char out[SIP_TU_TAG_LEN]) {
  char tag[SIP_TXN_TAG_SIZE];
  sip_txn_new_tag(tag);
  memcpy(out, tag, SIP_TU_TAG_LEN);
  return (sip_str){out, SIP_TU_TAG_LEN};
}

int sip_tu_is_method(const sip_msg *m, const char *name) {
  size_t n = strlen(name);
  return m->is_request && m->method.len == n &&
         memcmp(m->method.p, name, n) == 0;
}

int sip_tu_is_ack(const sip_msg *m) { return sip_tu_is_method(m, "ACK"); }

int sip_tu_uas_failed(const sip_msg *m, unsigned state) {
  return m && m->is_request && !sip_tu_is_ack(m) && state == 0;
}

int sip_tu_uas_cancels(unsigned state) { return state == 0; }

int sip_tu_uas_can_reply(const sip_msg *m, unsigned state, int status) {
  if (!m->is_request)
    return SIP_TU_NOREPLY_RESPONSE;
  if (sip_tu_is_ack(m))
    return SIP_TU_NOREPLY_ACK;
  if (state & SIP_TU_UAS_CANCELLED)
    return SIP_TU_NOREPLY_CANCELLED;
  if (state & SIP_TU_UAS_FINAL)
    return SIP_TU_NOREPLY_ANSWERED;
  if ((state & SIP_TU_UAS_RELAYED) && status >= 200)
    return SIP_TU_NOREPLY_RELAYED;
  if (state & SIP_TU_UAS_CLOSED)
    return SIP_TU_NOREPLY_CLOSED;
  return 0;
}

/* ---- responses ----------------------------------------------------------- */

/* Where to answer when the top Via cannot be read (a request that failed to
 * parse): the connection it came on, or the datagram's source address. */
static void fallback_dest(const sip_src *src, sip_dest *d) {
  sip_dest_init(d, src->transport);
  d->addr = src->peer;
  d->conn_id = src->conn_id;
  d->listener = src->listener;
}

/* Remember the ACK that ends the 2xx t re-sends. 0 or SIP_ENOMEM. */
static int ack_wait(sip_tu *tu, sip_txn *t, sip_msg *req, sip_str to_tag) {
  const sip_cseq *cs;
  sip_str cid;
  const sip_addr *to;
  if (sip_msg_get_cseq(req, &cs) < 0 || sip_msg_get_call_id(req, &cid) < 0 ||
      sip_msg_get_addr(req, SIP_H_TO, &to) < 0)
    return SIP_EINVAL;
  sip_str tag = to->tag.p ? to->tag : to_tag;
  if (tag.len > sizeof(((sip_tu_ackwait *)0)->tag))
    return SIP_EINVAL;
  sip_tu_ackwait *a = malloc(sizeof(*a) + cid.len);
  if (!a)
    return SIP_ENOMEM;
  a->t = t; /* no reference: on_ist_event removes the entry in time */
  sip_txn_set_event_cb(t, on_ist_event, tu);
  a->cseq = cs->num;
  a->tag_len = (uint8_t)tag.len;
  memcpy(a->tag, tag.p, tag.len);
  a->call_id_len = cid.len;
  memcpy(a->call_id, cid.p, cid.len);
  a->next = tu->acks;
  tu->acks = a;
  return 0;
}

/* RFC 3262 §3: the final response that ends an INVITE whose reliable 1xx
 * got no PRACK (built now, with the 1xx's To tag and our Server header),
 * handed to the layer with the 1xx to re-send. */
static int reliable_1xx(sip_tu *tu, sip_txn *t, sip_msg *req, sip_str to_tag) {
  static const char reason[] = "No PRACK";
  sip_str r = {reason, sizeof reason - 1};
  sip_str x = {tu->server_line, tu->server_len};
  sip_str none = {NULL, 0};
  size_t n = sip_reply_size(req, 500, r, to_tag, x, none);
  char *buf = n ? malloc(n) : NULL;
  if (!buf)
    return n ? SIP_ENOMEM : SIP_EINVAL;
  int rc = sip_reply_write(req, 500, r, to_tag, x, none, buf, n);
  if (rc >= 0)
    rc = sip_txn_retransmit_1xx(t, buf, (size_t)rc);
  free(buf);
  return rc;
}

int sip_tu_reply(sip_tu *tu, sip_txn *t, sip_msg *req, const sip_src *src,
                 int status, sip_str reason, sip_str to_tag, sip_str extra,
                 sip_str body, int flags) {
  char xbuf[1024], *x = NULL;
  if (tu->server_len) {
    size_t xn = tu->server_len + extra.len;
    x = xn <= sizeof xbuf ? xbuf : malloc(xn);
    if (!x)
      return SIP_ENOMEM;
    memcpy(x, tu->server_line, tu->server_len);
    if (extra.len)
      memcpy(x + tu->server_len, extra.p, extra.len);
    extra = (sip_str){x, xn};
  }
  size_t n = sip_reply_size(req, status, reason, to_tag, extra, body);
  char stackbuf[4096];
  char *buf = n == 0 ? NULL : n <= sizeof stackbuf ? stackbuf : malloc(n);
  int rc;
  if (!buf) {
    rc = n ? SIP_ENOMEM : SIP_EINVAL;
    goto out;
  }
  rc = sip_reply_write(req, status, reason, to_tag, extra, body, buf, n);
  if (rc >= 0 && t) {
    size_t len = (size_t)rc;
    rc = sip_txn_reply(t, status, buf, len);
    if (rc >= 0 && (flags & SIP_TU_RETRANSMIT) && status >= 200 &&
        status < 300 && sip_txn_kind(t) == SIP_TXN_IST &&
        src->transport == SIP_TP_UDP &&
        sip_txn_retransmit_2xx(t, buf, len) == 0 &&
        ack_wait(tu, t, req, to_tag) < 0)
      sip_txn_ack_2xx(t); /* cannot match its ACK: do not re-send */
    if (rc >= 0 && (flags & SIP_TU_RELIABLE) && status > 100 && status < 200 &&
        sip_txn_kind(t) == SIP_TXN_IST)
      rc = reliable_1xx(tu, t, req, to_tag);
  } else if (rc >= 0) {
    const sip_via *via;
    if (sip_msg_get_vias(req, &via) == 0) {
      rc = sip_tp_send_response(tu->tp, buf, (size_t)rc, via, src, NULL, NULL);
    } else {
      sip_dest d;
      fallback_dest(src, &d);
      rc = sip_tp_send(tu->tp, buf, (size_t)rc, &d, NULL, NULL);
    }
  }
out:
  if (buf && buf != stackbuf)
    free(buf);
  if (x && x != xbuf)
    free(x);
  if (rc < 0)
    tu->st.reply_errors++;
  else
    tu->st.replies++;
  return rc < 0 ? rc : 0;
}

int sip_tu_ack(sip_tu *tu, sip_txn *t, sip_msg *ack) {
  const sip_cseq *cs;
  sip_str cid;
  const sip_addr *to;
  if (t && sip_txn_awaits_ack(t)) { /* it matched the INVITE's branch */
    sip_txn_ack_2xx(t);
    on_ist_event(tu, t, SIP_TXN_EV_TERMINATED, 0); /* its entry goes */
    sip_txn_set_event_cb(t, NULL, NULL);
    return 1;
  }
  if (!tu->acks || sip_msg_get_cseq(ack, &cs) < 0 ||
      sip_msg_get_call_id(ack, &cid) < 0 ||
      sip_msg_get_addr(ack, SIP_H_TO, &to) < 0 || !to->tag.p)
    return 0;
  for (sip_tu_ackwait **pp = &tu->acks; *pp; pp = &(*pp)->next) {
    sip_tu_ackwait *a = *pp;
    if (a->cseq == cs->num && a->call_id_len == cid.len &&
        memcmp(a->call_id, cid.p, cid.len) == 0 && a->tag_len == to->tag.len &&
        memcmp(a->tag, to->tag.p, to->tag.len) == 0) {
      sip_txn_ack_2xx(a->t);
      sip_txn_set_event_cb(a->t, NULL, NULL);
      *pp = a->next;
      ack_free(a);
      return 1;
    }
  }
  return 0;
}

static void answer(sip_tu *tu, sip_txn *t, sip_msg *m, const sip_src *src,
                   int status, const char *reason, sip_str extra) {
  char tag[SIP_TU_TAG_LEN];
  sip_tu_reply(tu, t, m, src, status,
               (sip_str){reason, reason ? strlen(reason) : 0},
               sip_tu_new_tag(tag), extra, (sip_str){NULL, 0}, 0);
}

sip_txn *sip_tu_cancel(sip_tu *tu, sip_txn *t, sip_msg *msg,
                       const sip_src *src) {
  sip_txn *inv = tu->txl ? sip_txn_find_cancelled(tu->txl, msg) : NULL;
  answer(tu, t, msg, src, inv ? 200 : 481, NULL, (sip_str){NULL, 0});
  return inv;
}

/* ---- dispatch ------------------------------------------------------------ */

static int rejected_slot(int status) {
  switch (status) {
  case 400:
    return 0;
  case 405:
    return 1;
  case 416:
    return 2;
  case 420:
    return 3;
  case 505:
    return 4;
  case 483:
    return 5;
  default:
    return 6;
  }
}

static void reject(sip_tu *tu, sip_msg *m, const sip_src *src, int status,
                   const char *reason, const char *unsupported) {
  char extra[300];
  sip_str ex = {NULL, 0};
  if (status == 420 && unsupported && unsupported[0]) {
    int n = snprintf(extra, sizeof extra, "Unsupported: %s\r\n", unsupported);
    if (n > 0 && (size_t)n < sizeof extra)
      ex = (sip_str){extra, (size_t)n};
  }
  tu->st.rejected++;
  tu->st.rejected_by[rejected_slot(status)]++;
  answer(tu, NULL, m, src, status, reason, ex);
}

int sip_tu_receive(sip_tu *tu, sip_msg *msg, sip_rxbuf *rx,
                   const sip_src *src) {
  if (msg->is_request)
    tu->st.requests++;
  else
    tu->st.responses++;
  sip_sanity_result res;
  if (sip_sanity_check(msg, &tu->sanity, &res) != 0) {
    if (msg->is_request && !sip_tu_is_ack(msg))
      reject(tu, msg, src, res.status, res.reason, res.unsupported);
    else
      tu->st.dropped_sanity++;
    return 0;
  }
  if (tu->force_rport && msg->is_request && src->transport == SIP_TP_UDP)
    sip_tu_force_rport(msg, src);
  if (!tu->txl)
    return 1;
  int rc = sip_txl_receive(tu->txl, msg, rx, src);
  if (rc < 0 && msg->is_request && !sip_tu_is_ack(msg))
    reject(tu, msg, src, 400, "Bad Request (unmatchable)", NULL);
  return 0;
}

/* Append n bytes of p at out[*o] when they fit in cap (with room kept for
 * the tail); 0 or SIP_ERANGE. */
static int append(char *out, size_t cap, size_t *o, const char *p, size_t n) {
  if (*o + n > cap)
    return SIP_ERANGE;
  if (n)
    memcpy(out + *o, p, n);
  *o += n;
  return 0;
}

int sip_tu_force_rport(sip_msg *m, const sip_src *src) {
  const sip_via *v;
  int rc = sip_msg_get_vias(m, &v);
  if (rc < 0)
    return rc;
  char ip[INET6_ADDRSTRLEN + 2] = "";
  const struct sockaddr_storage *sa = &src->peer;
  if (sa->ss_family == AF_INET)
    inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, ip,
              sizeof ip);
  else if (sa->ss_family == AF_INET6)
    inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, ip,
              sizeof ip);
  else
    return SIP_EINVAL;
  int port = sip_tp_addr_port(sa);
  int has_rport = v->has_rport && v->rport == port;
  int has_recv = v->received.p && v->received.len == strlen(ip) &&
                 memcmp(v->received.p, ip, v->received.len) == 0;
  if (has_rport && has_recv)
    return 0;
  int idx = sip_msg_find(m, SIP_H_VIA, NULL, 0, 0);
  if (idx < 0)
    return SIP_ENOTFOUND;
  sip_str line, rest, first;
  if ((rc = sip_msg_unfolded(m, &m->hdr[idx], &line)) < 0)
    return rc;
  rest = line;
  do { /* the first non-empty via-parm of the line */
    if ((rc = sip_split_next(&rest, &first)) < 0)
      return rc;
    if (rc == 0)
      return SIP_EVIA;
  } while (first.len == 0);
  /* the first via-parm without its rport/received, then ours, then the
   * line's other values */
  char nv[1024];
  size_t o = 0, cap = sizeof nv - 64 - sizeof ip; /* room for ours */
  const char *semi = memchr(first.p, ';', first.len);
  if (append(nv, cap, &o, first.p,
             semi ? (size_t)(semi - first.p) : first.len) < 0)
    return SIP_ERANGE;
  for (uint32_t i = 0; i < v->params.n; i++) {
    const sip_param *pr = &v->params.v[i];
    if (sip_str_ieq_cstr(pr->name, "rport") ||
        sip_str_ieq_cstr(pr->name, "received"))
      continue;
    if (append(nv, cap, &o, ";", 1) < 0 ||
        append(nv, cap, &o, pr->name.p, pr->name.len) < 0 ||
        (pr->value.p && (append(nv, cap, &o, "=", 1) < 0 ||
                         append(nv, cap, &o, pr->value.p, pr->value.len) < 0)))
      return SIP_ERANGE;
  }
  o += (size_t)snprintf(nv + o, sizeof nv - o, ";received=%s;rport=%d", ip,
                        port);
  sip_str it;
  while ((rc = sip_split_next(&rest, &it)) == 1) {
    if (it.len == 0)
      continue;
    if (append(nv, sizeof nv, &o, ", ", 2) < 0 ||
        append(nv, sizeof nv, &o, it.p, it.len) < 0)
      return SIP_ERANGE;
  }
  if (rc < 0)
    return rc;
  rc = sip_msg_replace_value(m, idx, nv, o);
  return rc < 0 ? rc : 1;
}

int sip_tu_bad(sip_tu *tu, int err, sip_rxbuf *rx, const sip_src *src) {
  sip_sanity_result r;
  if (sip_sanity_parse_error(err, &r) == 0)
    return 0;
  char tag[SIP_TU_TAG_LEN];
  tu->st.requests++;
  /* no answer when the response would copy a control character back
   * (SIP_ECTL in Via, From, To, Call-ID or CSeq): counted in reply_errors */
  if (sip_tu_reply(tu, NULL, &rx->msg, src, r.status,
                   (sip_str){r.reason, strlen(r.reason)}, sip_tu_new_tag(tag),
                   (sip_str){NULL, 0}, (sip_str){NULL, 0}, 0) < 0)
    return 0;
  tu->st.bad_answered++;
  return 1;
}

/* ---- the UAC side -------------------------------------------------------- */

int sip_tu_next_hop_uri(sip_msg *m, sip_str ruri, sip_str route, sip_arena *a,
                        sip_uri *u, const sip_uri **hop) {
  *hop = NULL;
  if (route.p) {
    sip_str rest = route, it;
    sip_addr ad;
    if (sip_split_next(&rest, &it) == 1 &&
        sip_addr_parse(a, it.p, it.len, 0, &ad) == 0) {
      *u = ad.uri;
      *hop = u;
      return 0;
    }
  }
  const sip_addr *r;
  if (sip_msg_get_addrs(m, SIP_H_ROUTE, &r) == 0 && r->uri.lr) {
    *hop = &r->uri;
    return 0;
  }
  int rc = sip_uri_parse(a, ruri.p, ruri.len, u);
  if (rc == 0)
    *hop = u;
  return rc;
}

int sip_tu_next_hop(sip_msg *m, size_t len, sip_dest *d, char *name,
                    size_t cap) {
  const sip_addr *r;
  int rc = sip_msg_get_addrs(m, SIP_H_ROUTE, &r);
  if (rc < 0 && rc != SIP_ENOTFOUND)
    return rc; /* a malformed Route: no guess */
  return sip_tu_next_hop_dest(m, m->ruri, SIP_STR_NULL, len, d, name, cap);
}

int sip_tu_next_hop_dest(sip_msg *m, sip_str ruri, sip_str route, size_t len,
                         sip_dest *d, char *name, size_t cap) {
  char mem[2048];
  sip_arena a;
  sip_arena_init(&a, mem, sizeof mem);
  sip_uri u;
  const sip_uri *hop;
  int rc = sip_tu_next_hop_uri(m, ruri, route, &a, &u, &hop);
  if (rc == 0)
    rc = sip_tp_request_dest(hop, len, d, name, cap);
  sip_arena_free(&a);
  return rc;
}

int sip_tu_dest_spec(const char *spec, size_t len, sip_dest *d) {
  char buf[128];
  if (!spec || len >= sizeof buf)
    return SIP_EINVAL;
  memcpy(buf, spec, len);
  buf[len] = 0;
  int tr, rc;
  sip_dest_init(d, SIP_TP_UDP);
  if ((rc = sip_tp_parse_spec(buf, &tr, &d->addr)) < 0)
    return rc;
  d->transport = tr;
  return 0;
}

int sip_tu_via(sip_tu *tu, int transport, int lid, const char *branch,
               char *out, size_t cap) {
  struct sockaddr_storage la;
  char sent_by[64];
  if (sip_tp_listener_addr(tu->tp, lid, &la) < 0)
    return SIP_EINVAL;
  sip_tp_addr_str(&la, sent_by, sizeof sent_by);
  if (cap < 8)
    return SIP_EINVAL;
  memcpy(out, "Via: ", 5);
  int n = sip_tu_via_value(out + 5, cap - 7, transport, sent_by, branch,
                           transport == SIP_TP_UDP);
  if (n < 0)
    return SIP_EINVAL;
  memcpy(out + 5 + n, "\r\n", 3);
  return n + 7;
}

/* (memcpy, not snprintf: a Via is written into every request sent) */
int sip_tu_via_value(char *out, size_t cap, int transport, const char *sent_by,
                     const char *branch, int rport) {
  const char *parts[] = {"SIP/2.0/",
                         sip_tp_transport_name(transport),
                         " ",
                         sent_by,
                         ";branch=",
                         branch,
                         rport ? ";rport" : ""};
  size_t n = 0;
  for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
    size_t k = strlen(parts[i]);
    if (n + k >= cap)
      return SIP_ERANGE;
    memcpy(out + n, parts[i], k);
    n += k;
  }
  out[n] = 0;
  return (int)n;
}

int sip_tu_write_request(sip_tu *tu, sip_msg *m, sip_dest *d,
                         const char *branch, char **out) {
  *out = NULL;
  int lid = sip_tp_find_listener(tu->tp, d->transport, d->addr.ss_family);
  char via[200];
  int vlen;
  if (lid < 0 && (d->transport == SIP_TP_WS || d->transport == SIP_TP_WSS)) {
    /* a WebSocket client cannot be reached but over its connection: RFC
     * 7118 §5.2's .invalid host (named after this TU) */
    char sent_by[32];
    snprintf(sent_by, sizeof sent_by, "%08x.invalid", (unsigned)(uintptr_t)tu);
    memcpy(via, "Via: ", 5);
    vlen = sip_tu_via_value(via + 5, sizeof via - 7, d->transport, sent_by,
                            branch, 0);
    if (vlen < 0)
      return vlen;
    memcpy(via + 5 + vlen, "\r\n", 3);
    vlen += 7;
  } else if (lid < 0) {
    return UV_EAFNOSUPPORT;
  } else {
    d->listener = lid;
    vlen = sip_tu_via(tu, d->transport, lid, branch, via, sizeof via);
    if (vlen < 0)
      return vlen;
  }
  /* the User-Agent, unless the request has its own */
  size_t ua = tu->ua_len && sip_msg_find(m, SIP_H_USER_AGENT, NULL, 0, 0) < 0
                  ? tu->ua_len
                  : 0;
  size_t add = (size_t)vlen + ua;
  size_t n = sip_msg_size(m);
  char *buf = malloc(n + add);
  if (!buf)
    return SIP_ENOMEM;
  int rc = sip_msg_write(m, buf + add, n);
  const char *eol = rc > 0 ? memchr(buf + add, '\n', (size_t)rc) : NULL;
  if (!eol) {
    free(buf);
    return SIP_EINVAL;
  }
  /* the start line moves up; the Via (and User-Agent) go right after it */
  size_t start_len = (size_t)(eol + 1 - (buf + add));
  memmove(buf, buf + add, start_len);
  memcpy(buf + start_len, via, (size_t)vlen);
  memcpy(buf + start_len + (size_t)vlen, tu->ua_line, ua);
  *out = buf;
  return rc + (int)add;
}

int sip_tu_request(sip_tu *tu, sip_msg *m, const sip_dest *dest,
                   sip_txn_response_cb cb, void *arg,
                   char branch[SIP_TXN_BRANCH_SIZE], sip_txn **out,
                   int *transport) {
  sip_dest d;
  int rc;
  if (!tu->txl || !m->is_request || sip_tu_is_ack(m))
    return SIP_EINVAL;
  if (dest)
    d = *dest;
  else if ((rc = sip_tu_next_hop(m, 0, &d, NULL, 0)) < 0)
    return rc;
  sip_txn_new_branch(branch);
  char *buf, *tbuf = NULL;
  int len = sip_tu_write_request(tu, m, &d, branch, &buf), tlen = -1;
  if (len < 0)
    return len;
  sip_dest td = d;
  if (sip_tp_request_switch(&td, (size_t)len)) {
    /* §18.1.1: too large for UDP; without a TCP listener, UDP after all */
    tlen = sip_tu_write_request(tu, m, &td, branch, &tbuf);
    if (tlen == SIP_ENOMEM) {
      free(buf);
      return tlen;
    }
  }
  if (tlen >= 0)
    rc = sip_txn_request_switched(tu->txl, tbuf, (size_t)tlen, &td, buf,
                                  (size_t)len, &d, cb, arg, out);
  else
    rc = sip_txn_request(tu->txl, buf, (size_t)len, &d, cb, arg, out);
  free(buf);
  free(tbuf);
  if (rc >= 0 && transport)
    *transport = tlen >= 0 ? td.transport : d.transport;
  return rc < 0 ? rc : 0;
}

int sip_tu_cancel_request(sip_tu *tu, sip_txn *ict, sip_msg *invite,
                          const char *branch) {
  sip_dest d;
  int st = sip_txn_state(ict);
  if (!tu->txl || sip_txn_kind(ict) != SIP_TXN_ICT ||
      (st != SIP_TXN_CALLING && st != SIP_TXN_PROCEEDING) ||
      sip_txn_dest(ict, &d) < 0 || d.listener < 0)
    return SIP_EINVAL;
  char via[200];
  int vlen = sip_tu_via(tu, d.transport, d.listener, branch, via, sizeof via);
  if (vlen < 7)
    return SIP_EINVAL;
  /* the Route lines of the INVITE, as they were */
  char route[2048];
  size_t rlen = 0;
  for (int i = sip_msg_find(invite, SIP_H_ROUTE, NULL, 0, 0); i >= 0;
       i = sip_msg_find(invite, SIP_H_ROUTE, NULL, 0, i + 1)) {
    sip_str v = invite->hdr[i].value;
    if (rlen + v.len + 9 > sizeof route)
      return SIP_EINVAL;
    memcpy(route + rlen, "Route: ", 7);
    memcpy(route + rlen + 7, v.p, v.len);
    memcpy(route + rlen + 7 + v.len, "\r\n", 2);
    rlen += v.len + 9;
  }
  char buf[8192];
  int n = sip_proxy_write_cancel(invite, invite->ruri,
                                 (sip_str){via + 5, (size_t)vlen - 7},
                                 (sip_str){route, rlen}, buf, sizeof buf);
  if (n < 0)
    return n == SIP_ENOMEM ? n : SIP_EINVAL;
  int rc = sip_txn_request(tu->txl, buf, (size_t)n, &d, NULL, NULL, NULL);
  if (rc >= 0) /* §9.1: no final in 64*T1 ends the INVITE (408) */
    (void)sip_txn_cancel_sent(ict);
  return rc;
}

/* ---- tracked client transactions ----------------------------------------- */

static void on_client_event(void *arg, sip_txn *t, int event, int err) {
  (void)t;
  (void)err;
  sip_tu_client *c = arg;
  if (event != SIP_TXN_EV_TERMINATED)
    return;
  client_unlist(c);
  if (c->on_end)
    c->on_end(c);
}

static void on_client_response(void *arg, sip_txn *t, int status, sip_msg *msg,
                               sip_rxbuf *rx) {
  sip_tu_client *c = arg;
  sip_dest d;
  if (sip_txn_dest(t, &d) == 0)
    c->transport = d.transport;
  if (c->on_response)
    c->on_response(c, status, msg, rx);
}

int sip_tu_client_start(sip_tu *tu, sip_tu_client *c, sip_msg *m,
                        const sip_dest *dest,
                        char branch[SIP_TXN_BRANCH_SIZE]) {
  sip_txn *t;
  c->tu = tu;
  c->prev = c->next = NULL;
  c->t = NULL;
  int rc = sip_tu_request(tu, m, dest, on_client_response, c, branch, &t,
                          &c->transport);
  if (rc < 0)
    return rc;
  c->t = t;
  c->next = tu->clients;
  if (tu->clients)
    tu->clients->prev = c;
  tu->clients = c;
  sip_txn_set_event_cb(t, on_client_event, c);
  return 0;
}

sip_tu_client *sip_tu_client_find(sip_tu *tu, const char *branch, size_t len) {
  for (sip_tu_client *c = tu->clients; c; c = c->next) {
    sip_str b = sip_txn_branch(c->t);
    if (b.len == len && memcmp(b.p, branch, len) == 0)
      return c;
  }
  return NULL;
}

int sip_tu_request_dest(sip_msg *m, const char *spec, const char *tls_name,
                        sip_dest *d, char *name, size_t cap) {
  if (!spec)
    return sip_tu_next_hop(m, 0, d, name, cap);
  int rc = sip_tu_dest_spec(spec, strlen(spec), d);
  if (rc == 0)
    d->tls_name = tls_name && tls_name[0] ? tls_name : NULL;
  return rc;
}

int sip_tu_reply_parts(sip_str reason, sip_str extra) {
  for (size_t i = 0; i < reason.len; i++)
    if ((unsigned char)reason.p[i] < 0x20 && reason.p[i] != '\t')
      return SIP_TU_BAD_REASON;
  if (extra.len && (extra.len < 2 || extra.p[extra.len - 2] != '\r' ||
                    extra.p[extra.len - 1] != '\n'))
    return SIP_TU_BAD_EXTRA;
  return 0;
}
