/* Dialogs: see sip_dialog.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sip_dialog.h"
#include "sip_error.h"
#include "sip_fields.h"
#include "sip_scan.h"

/* ---- small helpers ------------------------------------------------------- */

static int str_set(sip_str *s, const char *p, size_t len) {
  char *c = malloc(len + 1);
  if (!c)
    return SIP_ENOMEM;
  if (len)
    memcpy(c, p, len);
  c[len] = '\0';
  free((char *)s->p);
  s->p = c;
  s->len = len;
  return 0;
}

static int str_eq(sip_str a, sip_str b) {
  return a.len == b.len && (a.len == 0 || memcmp(a.p, b.p, a.len) == 0);
}

static int method_is(sip_str m, const char *name) {
  size_t n = strlen(name);
  return m.len == n && memcmp(m.p, name, n) == 0;
}

/* §12.2: methods that refresh the remote target */
static int target_refresh(sip_str m) {
  return method_is(m, "INVITE") || method_is(m, "UPDATE") ||
         method_is(m, "SUBSCRIBE") || method_is(m, "NOTIFY") ||
         method_is(m, "REFER");
}

/* A growing output buffer; err sticks. */
typedef struct buf {
  char *p;
  size_t len, cap;
  int err;
} buf;

static void put(buf *b, const char *p, size_t n) {
  if (b->err || n == 0)
    return;
  if (b->len + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 512;
    while (cap < b->len + n + 1)
      cap *= 2;
    char *q = realloc(b->p, cap);
    if (!q) {
      b->err = SIP_ENOMEM;
      return;
    }
    b->p = q;
    b->cap = cap;
  }
  memcpy(b->p + b->len, p, n);
  b->len += n;
  b->p[b->len] = '\0';
}

static void puts_(buf *b, const char *s) { put(b, s, strlen(s)); }
static void puts_str(buf *b, sip_str s) { put(b, s.p, s.len); }

static void routes_free(sip_dialog *d) {
  for (uint32_t i = 0; i < d->nroutes; i++)
    free((char *)d->routes[i].p);
  free(d->routes);
  d->routes = NULL;
  d->nroutes = 0;
}

/* The route set from m's Record-Route: in order (UAS) or reversed (UAC). */
static int routes_from(sip_dialog *d, sip_msg *m, int reverse) {
  const sip_addr *rr = NULL;
  int rc = sip_msg_get_addrs(m, SIP_H_RECORD_ROUTE, &rr);
  if (rc < 0 && rc != SIP_ENOTFOUND)
    return rc;
  uint32_t n = 0;
  for (const sip_addr *a = rc == 0 ? rr : NULL; a; a = a->next)
    n++;
  sip_str *r = n ? calloc(n, sizeof *r) : NULL;
  if (n && !r)
    return SIP_ENOMEM;
  uint32_t i = 0;
  for (const sip_addr *a = rc == 0 ? rr : NULL; a; a = a->next, i++)
    if (str_set(&r[reverse ? n - 1 - i : i], a->raw.p, a->raw.len) < 0) {
      for (uint32_t j = 0; j < n; j++)
        free((char *)r[j].p);
      free(r);
      return SIP_ENOMEM;
    }
  routes_free(d);
  d->routes = r;
  d->nroutes = n;
  return 0;
}

/* The remote target from m's Contact; 0 when it has none (unchanged). */
static int target_from(sip_dialog *d, sip_msg *m, int *found) {
  const sip_addr *c;
  int rc = sip_msg_get_addrs(m, SIP_H_CONTACT, &c);
  *found = 0;
  if (rc == SIP_ENOTFOUND)
    return 0;
  if (rc < 0)
    return rc;
  if (c->star || !c->uri.raw.len)
    return SIP_EINVAL;
  *found = 1;
  return str_set(&d->remote_target, c->uri.raw.p, c->uri.raw.len);
}

/* ---- one dialog ---------------------------------------------------------- */

/* The UAC's last ACK for a 2xx. */
struct sip_dialog_ack {
  char *bytes;
  size_t len;
  uint32_t cseq;
  sip_dest dest;
};

void sip_dialog_free(sip_dialog *d) {
  if (!d)
    return;
  free((char *)d->remote_target.p);
  sip_dialog_reliable_end(d);
  routes_free(d);
  if (d->ack)
    free(d->ack->bytes);
  free(d->ack);
  free(d); /* and the strings after it */
}

/* A slice's copy at *p (NUL-terminated); *p moves past it. */
static sip_str place(char **p, sip_str s) {
  sip_str r = {*p, s.len};
  if (s.len)
    memcpy(*p, s.p, s.len);
  (*p)[s.len] = '\0';
  *p += s.len + 1;
  return r;
}

/* "[display ]<uri>" of an address at *p (its tag and other parameters
 * dropped); *p moves past it. */
static sip_str place_name_addr(char **p, const sip_addr *a) {
  char *s = *p;
  size_t n = 0;
  if (a->display.len) {
    memcpy(s, a->display.p, a->display.len);
    n = a->display.len;
    s[n++] = ' ';
  }
  s[n++] = '<';
  if (a->uri.raw.len)
    memcpy(s + n, a->uri.raw.p, a->uri.raw.len);
  n += a->uri.raw.len;
  s[n++] = '>';
  s[n] = '\0';
  *p += n + 1;
  return (sip_str){s, n};
}

static size_t name_addr_len(const sip_addr *a) {
  return (a->display.len ? a->display.len + 1 : 0) + a->uri.raw.len + 2;
}

/* A zeroed dialog whose fixed strings (local is the From (UAC) or To (UAS)
 * of req) are in the same block; its CSeq and INVITE CSeq from req. */
static int dialog_new(sip_msg *req, int role, const sip_addr *local,
                      const sip_addr *remote, sip_str local_tag,
                      sip_str remote_tag, sip_str contact, sip_dialog **out) {
  sip_str cid;
  const sip_cseq *cs;
  int rc;
  *out = NULL;
  if ((rc = sip_msg_get_call_id(req, &cid)) < 0 ||
      (rc = sip_msg_get_cseq(req, &cs)) < 0)
    return rc;
  size_t need = cid.len + 1 + local_tag.len + 1 + remote_tag.len + 1 +
                name_addr_len(local) + 1 + name_addr_len(remote) + 1 +
                contact.len + 1;
  sip_dialog *d = calloc(1, sizeof *d + need);
  if (!d)
    return SIP_ENOMEM;
  char *p = (char *)(d + 1);
  d->call_id = place(&p, cid);
  d->local_tag = place(&p, local_tag);
  d->remote_tag = place(&p, remote_tag);
  d->local_uri = place_name_addr(&p, local);
  d->remote_uri = place_name_addr(&p, remote);
  d->local_contact = place(&p, contact);
  d->role = (uint8_t)role;
  *out = d;
  if (method_is(cs->method, "INVITE"))
    d->invite_cseq = cs->num;
  if (d->role == SIP_DLG_UAC) {
    d->local_cseq = cs->num;
    d->has_local_cseq = 1;
  } else {
    d->remote_cseq = cs->num;
    d->has_remote_cseq = 1;
  }
  return 0;
}

int sip_dialog_uac_new(sip_msg *req, sip_msg *resp, sip_dialog **out) {
  const sip_addr *from, *to, *contact;
  int rc;
  *out = NULL;
  if (!req->is_request || resp->is_request || resp->status <= 100 ||
      resp->status >= 300)
    return SIP_EINVAL;
  if ((rc = sip_msg_get_addr(req, SIP_H_FROM, &from)) < 0 ||
      (rc = sip_msg_get_addr(resp, SIP_H_TO, &to)) < 0)
    return rc;
  if (!from->tag.len || !to->tag.len)
    return SIP_EINVAL;
  rc = sip_msg_get_addrs(req, SIP_H_CONTACT, &contact);
  if (rc < 0)
    return rc == SIP_ENOTFOUND ? SIP_EINVAL : rc;
  sip_dialog *d;
  if ((rc = dialog_new(req, SIP_DLG_UAC, from, to, from->tag, to->tag,
                       contact->raw, &d)) < 0)
    return rc;
  d->state = resp->status < 200 ? SIP_DLG_EARLY : SIP_DLG_CONFIRMED;
  int found;
  if ((rc = routes_from(d, resp, 1)) < 0 ||
      (rc = target_from(d, resp, &found)) < 0)
    goto fail;
  if (!found) {
    if (resp->status >= 200) {
      rc = SIP_EINVAL; /* §12.1.2: a 2xx must carry a Contact */
      goto fail;
    }
    if ((rc = str_set(&d->remote_target, to->uri.raw.p, to->uri.raw.len)) < 0)
      goto fail;
  }
  *out = d;
  return 0;
fail:
  sip_dialog_free(d);
  return rc;
}

int sip_dialog_uas_new(sip_msg *req, sip_str local_tag, sip_str local_contact,
                       int state, sip_dialog **out) {
  const sip_addr *from, *to;
  int rc, found;
  *out = NULL;
  if (!req->is_request || !local_tag.len || !local_contact.len ||
      (state != SIP_DLG_EARLY && state != SIP_DLG_CONFIRMED))
    return SIP_EINVAL;
  if ((rc = sip_msg_get_addr(req, SIP_H_FROM, &from)) < 0 ||
      (rc = sip_msg_get_addr(req, SIP_H_TO, &to)) < 0)
    return rc;
  if (!from->tag.len)
    return SIP_EINVAL;
  sip_dialog *d;
  if ((rc = dialog_new(req, SIP_DLG_UAS, to, from, local_tag, from->tag,
                       local_contact, &d)) < 0)
    return rc;
  d->state = (uint8_t)state;
  if ((rc = routes_from(d, req, 0)) < 0 ||
      (rc = target_from(d, req, &found)) < 0)
    goto fail;
  if (!found) {
    rc = SIP_EINVAL; /* §12.1.1: the request must carry a Contact */
    goto fail;
  }
  *out = d;
  return 0;
fail:
  sip_dialog_free(d);
  return rc;
}

int sip_dialog_matches(const sip_dialog *d, sip_msg *m) {
  const sip_addr *from, *to;
  sip_str cid;
  if (sip_msg_get_call_id(m, &cid) < 0 ||
      sip_msg_get_addr(m, SIP_H_FROM, &from) < 0 ||
      sip_msg_get_addr(m, SIP_H_TO, &to) < 0)
    return 0;
  sip_str local = m->is_request ? to->tag : from->tag;
  sip_str remote = m->is_request ? from->tag : to->tag;
  return str_eq(cid, d->call_id) && str_eq(local, d->local_tag) &&
         str_eq(remote, d->remote_tag);
}

int sip_dialog_uac_response(sip_dialog *d, sip_msg *resp) {
  const sip_cseq *cs;
  int rc, found;
  if ((rc = sip_msg_get_cseq(resp, &cs)) < 0)
    return rc;
  int st = resp->status;
  int is_invite = method_is(cs->method, "INVITE");
  if (st == 481 || st == 408) {
    if (!method_is(cs->method, "CANCEL"))
      d->state = SIP_DLG_TERMINATED;
    return 0;
  }
  if (st >= 300) {
    if (is_invite && d->state == SIP_DLG_EARLY && cs->num == d->invite_cseq)
      d->state = SIP_DLG_TERMINATED;
    return 0;
  }
  if (st <= 100)
    return 0;
  if (is_invite && st >= 200 && d->state == SIP_DLG_EARLY &&
      cs->num == d->invite_cseq) {
    /* §13.2.2.4: confirmed, the route set recomputed from the 2xx */
    if ((rc = routes_from(d, resp, 1)) < 0 ||
        (rc = target_from(d, resp, &found)) < 0)
      return rc;
    d->state = SIP_DLG_CONFIRMED;
    return 0;
  }
  if (target_refresh(cs->method))
    return target_from(d, resp, &found);
  return 0;
}

int sip_dialog_uas_request(sip_dialog *d, sip_msg *req) {
  const sip_cseq *cs;
  int rc, found;
  if (method_is(req->method, "ACK"))
    return 0;
  if ((rc = sip_msg_get_cseq(req, &cs)) < 0)
    return rc;
  if (d->has_remote_cseq && cs->num < d->remote_cseq)
    return SIP_ERANGE;
  if (target_refresh(req->method) && (rc = target_from(d, req, &found)) < 0)
    return rc;
  d->remote_cseq = cs->num;
  d->has_remote_cseq = 1;
  if (method_is(req->method, "INVITE"))
    d->invite_cseq = cs->num;
  if (method_is(req->method, "BYE"))
    d->state = SIP_DLG_TERMINATED;
  return 0;
}

static int is_token(const char *s) {
  if (!*s)
    return 0;
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
          (c >= '0' && c <= '9') || strchr("-.!%*_+`'~", c)))
      return 0;
  }
  return 1;
}

/* The URI inside a name-addr value ("<sip:p;lr>;x" -> "sip:p;lr"), and
 * whether it is a loose router. */
static int route_uri(sip_str route, sip_str *uri, int *lr) {
  char mem[1024];
  sip_arena a;
  sip_addr ad;
  sip_arena_init(&a, mem, sizeof mem);
  int rc = sip_addr_parse(&a, route.p, route.len, 0, &ad);
  if (rc == 0) {
    *lr = ad.uri.lr;
    /* uri.raw points into route (no decoding): valid after the arena */
    *uri = ad.uri.raw;
  }
  sip_arena_free(&a);
  return rc;
}

int sip_dialog_request(sip_dialog *d, const char *method, uint32_t cseq,
                       sip_str extra, sip_str body, char **out) {
  *out = NULL;
  sip_str m = {method, method ? strlen(method) : 0};
  int ack_or_cancel = method_is(m, "ACK") || method_is(m, "CANCEL");
  if (!method || !is_token(method) || (ack_or_cancel && !cseq) ||
      (extra.len &&
       (extra.len < 2 || memcmp(extra.p + extra.len - 2, "\r\n", 2) != 0)))
    return SIP_EINVAL;
  /* §12.2.1.1 routing: a strict router first takes the Request-URI */
  sip_str ruri = d->remote_target;
  uint32_t first = 0;
  int strict = 0;
  if (d->nroutes) {
    sip_str u;
    int lr;
    if (route_uri(d->routes[0], &u, &lr) < 0)
      return SIP_EINVAL;
    if (!lr) {
      strict = 1;
      ruri = u;
      first = 1;
    }
  }
  if (!cseq) {
    if (!d->has_local_cseq) {
      d->local_cseq = 0;
      d->has_local_cseq = 1;
    }
    cseq = ++d->local_cseq;
  }
  if (method_is(m, "INVITE"))
    d->invite_cseq = cseq;
  char num[24]; /* sip__fmt_uint: up to 20 digits and a NUL */
  buf b = {0};
  puts_(&b, method);
  puts_(&b, " ");
  puts_str(&b, ruri);
  puts_(&b, " SIP/2.0\r\nMax-Forwards: 70\r\nTo: ");
  puts_str(&b, d->remote_uri);
  if (d->remote_tag.len) {
    puts_(&b, ";tag=");
    puts_str(&b, d->remote_tag);
  }
  puts_(&b, "\r\nFrom: ");
  puts_str(&b, d->local_uri);
  puts_(&b, ";tag=");
  puts_str(&b, d->local_tag);
  puts_(&b, "\r\nCall-ID: ");
  puts_str(&b, d->call_id);
  sip__fmt_uint(num, cseq);
  puts_(&b, "\r\nCSeq: ");
  puts_(&b, num);
  puts_(&b, " ");
  puts_(&b, method);
  puts_(&b, "\r\n");
  for (uint32_t i = first; i < d->nroutes; i++) {
    puts_(&b, "Route: ");
    puts_str(&b, d->routes[i]);
    puts_(&b, "\r\n");
  }
  if (strict) {
    puts_(&b, "Route: <");
    puts_str(&b, d->remote_target);
    puts_(&b, ">\r\n");
  }
  if (target_refresh(m)) {
    puts_(&b, "Contact: ");
    puts_str(&b, d->local_contact);
    puts_(&b, "\r\n");
  }
  puts_str(&b, extra);
  sip__fmt_uint(num, body.len);
  puts_(&b, "Content-Length: ");
  puts_(&b, num);
  puts_(&b, "\r\n\r\n");
  puts_str(&b, body);
  if (b.err) {
    free(b.p);
    return b.err;
  }
  *out = b.p;
  return (int)b.len;
}

int sip_dialog_send(sip_tu *tu, sip_dialog *d, const char *method,
                    sip_str extra, sip_str body, const sip_dest *dest,
                    sip_txn_response_cb cb, void *arg,
                    char branch[SIP_TXN_BRANCH_SIZE], sip_txn **out) {
  char *bytes;
  int n = sip_dialog_request(d, method, 0, extra, body, &bytes);
  if (n < 0)
    return n;
  sip_msg m;
  sip_msg_init(&m, NULL);
  int rc = sip_msg_parse(&m, bytes, (size_t)n, SIP_MODE_DATAGRAM);
  if (rc >= 0)
    rc = sip_tu_request(tu, &m, dest, cb, arg, branch, out, NULL);
  sip_msg_free(&m);
  free(bytes);
  return rc < 0 ? rc : 0;
}

int sip_dialog_ack(sip_tu *tu, sip_dialog *d, uint32_t cseq, sip_str extra,
                   sip_str body, const sip_dest *dest) {
  char *bytes, *wire = NULL;
  int n = sip_dialog_request(d, "ACK", cseq, extra, body, &bytes);
  if (n < 0)
    return n;
  sip_msg m;
  sip_msg_init(&m, NULL);
  sip_dest dst;
  int rc = sip_msg_parse(&m, bytes, (size_t)n, SIP_MODE_DATAGRAM);
  if (rc >= 0) {
    if (dest) {
      dst = *dest;
      rc = 0;
    } else {
      rc = sip_tu_next_hop(&m, (size_t)n, &dst, NULL, 0);
    }
  }
  if (rc >= 0) {
    char branch[SIP_TXN_BRANCH_SIZE];
    sip_txn_new_branch(branch);
    rc = sip_tu_write_request(tu, &m, &dst, branch, &wire);
  }
  sip_msg_free(&m);
  free(bytes);
  if (rc < 0)
    return rc;
  if (!d->ack && !(d->ack = calloc(1, sizeof *d->ack))) {
    free(wire);
    return SIP_ENOMEM;
  }
  free(d->ack->bytes);
  d->ack->bytes = wire;
  d->ack->len = (size_t)rc;
  d->ack->cseq = cseq;
  d->ack->dest = dst;
  d->ack->dest.tls_name = NULL;
  rc = sip_tp_send(tu->tp, wire, (size_t)rc, &d->ack->dest, NULL, NULL);
  return rc < 0 ? rc : 0;
}

int sip_dialog_ack_again(sip_tu *tu, sip_dialog *d, uint32_t cseq) {
  if (!d->ack || d->ack->cseq != cseq)
    return 0;
  int rc = sip_tp_send(tu->tp, d->ack->bytes, d->ack->len, &d->ack->dest, NULL,
                       NULL);
  return rc < 0 ? rc : 1;
}

/* ---- a set of dialogs ---------------------------------------------------- */

static size_t key_hash(sip_str call_id, sip_str local_tag) {
  uint32_t h = 2166136261u;
  for (size_t i = 0; i < call_id.len; i++)
    h = (h ^ (unsigned char)call_id.p[i]) * 16777619u;
  h = (h ^ '/') * 16777619u;
  for (size_t i = 0; i < local_tag.len; i++)
    h = (h ^ (unsigned char)local_tag.p[i]) * 16777619u;
  return h;
}

int sip_dialogs_init(sip_dialogs *s, size_t nbuckets) {
  size_t n = 1;
  while (n < (nbuckets ? nbuckets : 1024))
    n <<= 1;
  s->buckets = calloc(n, sizeof *s->buckets);
  s->nbuckets = s->buckets ? n : 0;
  s->count = 0;
  return s->buckets ? 0 : SIP_ENOMEM;
}

void sip_dialogs_free(sip_dialogs *s) {
  for (size_t i = 0; i < s->nbuckets; i++)
    while (s->buckets[i]) {
      sip_dialog *d = s->buckets[i];
      s->buckets[i] = d->next;
      d->next = NULL;
      sip_dialog_free(d);
    }
  free(s->buckets);
  s->buckets = NULL;
  s->nbuckets = s->count = 0;
}

void sip_dialogs_add(sip_dialogs *s, sip_dialog *d) {
  size_t i = key_hash(d->call_id, d->local_tag) & (s->nbuckets - 1);
  d->next = s->buckets[i];
  s->buckets[i] = d;
  s->count++;
}

int sip_dialogs_remove(sip_dialogs *s, sip_dialog *d) {
  size_t i = key_hash(d->call_id, d->local_tag) & (s->nbuckets - 1);
  for (sip_dialog **pp = &s->buckets[i]; *pp; pp = &(*pp)->next)
    if (*pp == d) {
      *pp = d->next;
      d->next = NULL;
      s->count--;
      return 1;
    }
  return 0;
}

/* The dialog with this id, or NULL. */
static sip_dialog *find_id(sip_dialogs *s, sip_str cid, sip_str local,
                           sip_str remote) {
  if (!s->nbuckets)
    return NULL;
  size_t i = key_hash(cid, local) & (s->nbuckets - 1);
  for (sip_dialog *d = s->buckets[i]; d; d = d->next)
    if (str_eq(cid, d->call_id) && str_eq(local, d->local_tag) &&
        str_eq(remote, d->remote_tag))
      return d;
  return NULL;
}

sip_dialog *sip_dialogs_find(sip_dialogs *s, sip_msg *m) {
  const sip_addr *from, *to;
  sip_str cid;
  if (sip_msg_get_call_id(m, &cid) < 0 ||
      sip_msg_get_addr(m, SIP_H_FROM, &from) < 0 ||
      sip_msg_get_addr(m, SIP_H_TO, &to) < 0)
    return NULL;
  return m->is_request ? find_id(s, cid, to->tag, from->tag)
                       : find_id(s, cid, from->tag, to->tag);
}

int sip_dialogs_request(sip_dialogs *s, sip_msg *req, sip_dialog **out) {
  const sip_addr *from, *to;
  const sip_cseq *cs;
  sip_str cid;
  int rc;
  *out = NULL;
  if ((rc = sip_msg_get_call_id(req, &cid)) < 0 ||
      (rc = sip_msg_get_addr(req, SIP_H_FROM, &from)) < 0 ||
      (rc = sip_msg_get_addr(req, SIP_H_TO, &to)) < 0 ||
      (rc = sip_msg_get_cseq(req, &cs)) < 0)
    return rc;
  if (!to->tag.len)
    return SIP_DLG_OUTSIDE;
  sip_dialog *d = find_id(s, cid, to->tag, from->tag);
  if (!d || d->state == SIP_DLG_TERMINATED)
    return SIP_DLG_NO_DIALOG;
  *out = d;
  rc = sip_dialog_uas_request(d, req);
  if (rc == SIP_ERANGE)
    return SIP_DLG_OUT_OF_ORDER;
  return rc < 0 ? rc : SIP_DLG_INSIDE;
}

int sip_dialogs_uac_response(sip_dialogs *s, sip_msg *req, sip_msg *resp,
                             sip_dialog **out) {
  const sip_addr *to;
  int rc;
  *out = NULL;
  if ((rc = sip_msg_get_addr(resp, SIP_H_TO, &to)) < 0)
    return rc;
  if (!to->tag.len)
    return SIP_EINVAL;
  sip_dialog *d = sip_dialogs_find(s, resp);
  if (d) {
    if ((rc = sip_dialog_uac_response(d, resp)) < 0)
      return rc;
    *out = d;
    return 0;
  }
  if ((rc = sip_dialog_uac_new(req, resp, &d)) < 0)
    return rc;
  sip_dialogs_add(s, d);
  *out = d;
  return 1;
}

size_t sip_dialogs_end_early(sip_dialogs *s, sip_str call_id,
                             sip_str local_tag) {
  size_t n = 0;
  if (!s->nbuckets)
    return 0;
  size_t i = key_hash(call_id, local_tag) & (s->nbuckets - 1);
  for (sip_dialog *d = s->buckets[i]; d; d = d->next)
    if (d->state == SIP_DLG_EARLY && str_eq(call_id, d->call_id) &&
        str_eq(local_tag, d->local_tag)) {
      d->state = SIP_DLG_TERMINATED;
      n++;
    }
  return n;
}

/* ---- reliable provisional responses (RFC 3262) --------------------------- */

int sip_dialog_has_option(sip_msg *m, int require, const char *tag) {
  int id = require ? SIP_H_REQUIRE : SIP_H_SUPPORTED;
  for (int i = sip_msg_find(m, id, NULL, 0, 0); i >= 0;
       i = sip_msg_find(m, id, NULL, 0, i + 1)) {
    sip_str rest, item;
    if (sip_msg_unfolded(m, &m->hdr[i], &rest) < 0)
      continue;
    while (sip_split_next(&rest, &item) > 0)
      if (sip_str_ieq_cstr(item, tag))
        return 1;
  }
  return 0;
}

/* A decimal number 1..2^31-1 at *p (p < e); *p moves past it. */
static int number(const char **p, const char *e, uint32_t *out) {
  uint64_t v = 0;
  const char *s = *p;
  while (*p < e && **p >= '0' && **p <= '9' && *p - s < 11)
    v = v * 10 + (uint64_t)(*(*p)++ - '0');
  if (*p == s || *p - s > 10 || v == 0 || v > 0x7fffffffu)
    return SIP_EVALUE;
  *out = (uint32_t)v;
  return 0;
}

static void skip_lws(const char **p, const char *e) {
  while (*p < e && (**p == ' ' || **p == '\t'))
    (*p)++;
}

/* The value of m's single header id, unfolded; SIP_EVALUE when absent. */
static int single(sip_msg *m, int id, sip_str *v) {
  int i = sip_msg_find(m, id, NULL, 0, 0);
  if (i < 0 || sip_msg_unfolded(m, &m->hdr[i], v) < 0)
    return SIP_EVALUE;
  return 0;
}

int sip_dialog_reliable(sip_dialog *d, sip_msg *invite, sip_txn *ist, char *out,
                        size_t cap) {
  const sip_cseq *cs;
  if (d->role != SIP_DLG_UAS || d->state != SIP_DLG_EARLY || !ist ||
      !invite->is_request || !method_is(invite->method, "INVITE") ||
      sip_msg_get_cseq(invite, &cs) < 0)
    return SIP_EINVAL;
  if (!sip_dialog_has_option(invite, 0, "100rel") &&
      !sip_dialog_has_option(invite, 1, "100rel"))
    return SIP_ENOTFOUND;
  if (d->rel_txn && sip_txn_awaits_prack(d->rel_txn))
    return UV_EBUSY;
  uint32_t rseq = d->rseq_local;
  if (!rseq) {
    sip_txn_random(&rseq, sizeof rseq);
    rseq = (rseq & 0x3fffffffu) + 1; /* room to count up below 2^31 */
  } else {
    rseq++;
  }
  int n = snprintf(out, cap, "Require: 100rel\r\nRSeq: %u\r\n", (unsigned)rseq);
  if (n < 0 || (size_t)n >= cap)
    return SIP_ERANGE;
  sip_dialog_reliable_end(d);
  d->rseq_local = rseq;
  d->rel_cseq = cs->num;
  sip_txn_ref(ist);
  d->rel_txn = ist;
  return n;
}

void sip_dialog_reliable_end(sip_dialog *d) {
  if (!d->rel_txn)
    return;
  sip_txn_prack(d->rel_txn);
  sip_txn_unref(d->rel_txn);
  d->rel_txn = NULL;
}

int sip_dialog_prack(sip_dialog *d, sip_msg *prack) {
  sip_str v;
  uint32_t rseq, cseq;
  if (single(prack, SIP_H_RACK, &v) < 0)
    return SIP_EVALUE;
  const char *p = v.p, *e = v.p + v.len;
  skip_lws(&p, e);
  if (number(&p, e, &rseq) < 0 || p == e || (*p != ' ' && *p != '\t'))
    return SIP_EVALUE;
  skip_lws(&p, e);
  if (number(&p, e, &cseq) < 0 || p == e || (*p != ' ' && *p != '\t'))
    return SIP_EVALUE;
  skip_lws(&p, e);
  sip_str method = {p, (size_t)(e - p)};
  while (method.len &&
         (method.p[method.len - 1] == ' ' || method.p[method.len - 1] == '\t'))
    method.len--;
  if (!method.len)
    return SIP_EVALUE;
  if (!d->rel_txn || !sip_txn_awaits_prack(d->rel_txn) ||
      rseq != d->rseq_local || cseq != d->rel_cseq ||
      !method_is(method, "INVITE"))
    return SIP_ENOTFOUND;
  sip_dialog_reliable_end(d);
  return 0;
}

int sip_dialog_rack(sip_dialog *d, sip_msg *resp, char *out, size_t cap) {
  const sip_cseq *cs;
  sip_str v;
  uint32_t rseq;
  if (resp->is_request || resp->status <= 100 || resp->status >= 200 ||
      !sip_dialog_has_option(resp, 1, "100rel"))
    return 0;
  if (single(resp, SIP_H_RSEQ, &v) < 0 || sip_msg_get_cseq(resp, &cs) < 0)
    return SIP_EVALUE;
  const char *p = v.p, *e = v.p + v.len;
  skip_lws(&p, e);
  if (number(&p, e, &rseq) < 0)
    return SIP_EVALUE;
  skip_lws(&p, e);
  if (p != e)
    return SIP_EVALUE;
  if (d->has_rseq_remote && rseq != d->rseq_remote + 1)
    return 0; /* a retransmission, or out of order */
  int n = snprintf(out, cap, "RAck: %u %u %.*s\r\n", (unsigned)rseq,
                   (unsigned)cs->num, (int)cs->method.len, cs->method.p);
  if (n < 0 || (size_t)n >= cap)
    return SIP_ERANGE;
  d->rseq_remote = rseq;
  d->has_rseq_remote = 1;
  return n;
}

void sip_dialog_confirm(sip_dialog *d) {
  sip_dialog_reliable_end(d);
  if (d->state == SIP_DLG_EARLY)
    d->state = SIP_DLG_CONFIRMED;
}

/* ---- session timers (RFC 4028) ------------------------------------------- */

/* delta-seconds at the start of v, then optional LWS; *rest after it */
static int delta_seconds(sip_str v, uint32_t *out, const char **rest) {
  const char *p = v.p, *e = v.p + v.len;
  skip_lws(&p, e);
  int rc = number(&p, e, out);
  skip_lws(&p, e);
  *rest = p;
  return rc;
}

int sip_dialog_session_expires(sip_msg *m, uint32_t *delta, int *refresher) {
  sip_str v;
  const char *p;
  *refresher = 0;
  if (sip_msg_find(m, SIP_H_SESSION_EXPIRES, NULL, 0, 0) < 0)
    return SIP_ENOTFOUND;
  if (single(m, SIP_H_SESSION_EXPIRES, &v) < 0 ||
      delta_seconds(v, delta, &p) < 0)
    return SIP_EVALUE;
  const char *e = v.p + v.len;
  if (p == e)
    return 0;
  if (*p != ';')
    return SIP_EVALUE;
  sip_params ps;
  if (sip_params_parse(&m->arena, p, (size_t)(e - p), &ps) < 0)
    return SIP_EVALUE;
  const sip_param *r = sip_params_get(&ps, "refresher");
  if (!r)
    return 0;
  if (sip_str_ieq_cstr(r->value, "uac"))
    *refresher = SIP_SE_UAC;
  else if (sip_str_ieq_cstr(r->value, "uas"))
    *refresher = SIP_SE_UAS;
  else
    return SIP_EVALUE;
  return 0;
}

int sip_dialog_min_se(sip_msg *m, uint32_t *out) {
  int i = sip_msg_find(m, SIP_H_OTHER, "Min-SE", 6, 0);
  sip_str v;
  const char *p;
  if (i < 0)
    return SIP_ENOTFOUND;
  if (sip_msg_unfolded(m, &m->hdr[i], &v) < 0 || delta_seconds(v, out, &p) < 0)
    return SIP_EVALUE;
  /* generic parameters may follow */
  return p == v.p + v.len || *p == ';' ? 0 : SIP_EVALUE;
}

int sip_dialog_session_uas(sip_msg *req, uint32_t min_se, uint32_t want,
                           char *out, size_t cap, uint32_t *expires,
                           int *refresher) {
  uint32_t se = 0, their_min = 0;
  int who = 0, n;
  if (cap)
    out[0] = '\0';
  int rc = sip_dialog_session_expires(req, &se, &who);
  if (rc == SIP_EVALUE)
    return rc;
  int has = rc == 0;
  rc = sip_dialog_min_se(req, &their_min);
  if (rc == SIP_EVALUE)
    return rc;
  if (has && se < min_se) { /* §9: too small for us */
    n = snprintf(out, cap, "Min-SE: %u\r\n", (unsigned)min_se);
    return n < 0 || (size_t)n >= cap ? SIP_ERANGE : 422;
  }
  int timer = sip_dialog_has_option(req, 0, "timer") ||
              sip_dialog_has_option(req, 1, "timer");
  if (!has) {
    if (!want || !timer) /* §9: a UAC without timer gets none from us */
      return 0;
    se = want < min_se ? min_se : want;
    if (se < their_min)
      se = their_min;
  }
  if (!who) /* §9: the UAC when it supports timer, else the UAS */
    who = timer ? SIP_SE_UAC : SIP_SE_UAS;
  if (!timer)
    who = SIP_SE_UAS; /* it cannot refresh what it does not know */
  n = snprintf(out, cap, "Session-Expires: %u;refresher=%s\r\n%s", (unsigned)se,
               who == SIP_SE_UAC ? "uac" : "uas",
               timer ? "Require: timer\r\n" : "");
  if (n < 0 || (size_t)n >= cap)
    return SIP_ERANGE;
  *expires = se;
  *refresher = who;
  return 200;
}

int sip_dialog_session_uac(sip_msg *resp, uint32_t *expires, int *refresher) {
  int rc = sip_dialog_session_expires(resp, expires, refresher);
  if (rc == SIP_ENOTFOUND)
    return 0;
  if (rc < 0)
    return rc;
  if (!*refresher)
    *refresher = SIP_SE_UAC; /* §7.2 */
  return 1;
}

uint64_t sip_dialog_session_due_ms(uint32_t expires, int we_refresh) {
  if (we_refresh)
    return (uint64_t)expires * 500;
  uint32_t margin = expires / 3 < 32 ? expires / 3 : 32;
  return (uint64_t)(expires - margin) * 1000;
}

/* ---- for the bindings ---------------------------------------------------- */

const char *sip_dialog_state_name(const sip_dialog *d) {
  static const char *const names[] = {"?", "early", "confirmed", "terminated"};
  return d && d->state <= SIP_DLG_TERMINATED ? names[d->state] : "terminated";
}

static void info_str(const sip_tree_emitter *e, const char *k, sip_str s) {
  sip_tree_val v = {.kind = SIP_TREE_STR, .s = s};
  if (!v.s.p)
    v.s = SIP_STR_LIT("");
  e->put(e->ud, k, &v);
}

static void info_num(const sip_tree_emitter *e, const char *k, uint32_t n) {
  sip_tree_val v = {.kind = SIP_TREE_UINT, .n = n};
  e->put(e->ud, k, &v);
}

void sip_dialog_info(const sip_dialog *d, const sip_tree_emitter *e) {
  const char *role = d->role == SIP_DLG_UAC ? "uac" : "uas";
  const char *state = sip_dialog_state_name(d);
  info_str(e, "role", (sip_str){role, 3});
  info_str(e, "state", (sip_str){state, strlen(state)});
  info_str(e, "call_id", d->call_id);
  info_str(e, "local_tag", d->local_tag);
  info_str(e, "remote_tag", d->remote_tag);
  info_str(e, "local_uri", d->local_uri);
  info_str(e, "remote_uri", d->remote_uri);
  info_str(e, "remote_target", d->remote_target);
  info_str(e, "local_contact", d->local_contact);
  if (d->has_local_cseq)
    info_num(e, "local_cseq", d->local_cseq);
  if (d->has_remote_cseq)
    info_num(e, "remote_cseq", d->remote_cseq);
  info_num(e, "invite_cseq", d->invite_cseq);
  sip_tree_val t = {.kind = SIP_TREE_TABLE};
  e->put(e->ud, "routes", &t);
  for (uint32_t i = 0; i < d->nroutes; i++)
    info_str(e, NULL, d->routes[i]);
  e->close(e->ud);
}
