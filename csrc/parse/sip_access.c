/* Named access to a parsed message (sip_access.h). The name switches
 * follow the X-macro lists of sip_access.h; test_access checks they agree. */
#include <string.h>

#include "sip_access.h"

/* ---- names -> ids ------------------------------------------------------- */

int sip_msg_field_id(const char *k, size_t len) {
  switch (len) {
  case 2:
    if (!memcmp(k, "to", 2))
      return SIP_F_TO;
    break;
  case 3:
    if (!memcmp(k, "uri", 3))
      return SIP_F_URI;
    if (!memcmp(k, "via", 3))
      return SIP_F_VIA;
    break;
  case 4:
    if (!memcmp(k, "ruri", 4))
      return SIP_F_RURI;
    if (!memcmp(k, "cseq", 4))
      return SIP_F_CSEQ;
    if (!memcmp(k, "from", 4))
      return SIP_F_FROM;
    if (!memcmp(k, "body", 4))
      return SIP_F_BODY;
    break;
  case 5:
    if (!memcmp(k, "paths", 5))
      return SIP_F_PATHS;
    if (!memcmp(k, "ctype", 5))
      return SIP_F_CTYPE;
    break;
  case 6:
    if (!memcmp(k, "method", 6))
      return SIP_F_METHOD;
    if (!memcmp(k, "status", 6))
      return SIP_F_STATUS;
    if (!memcmp(k, "reason", 6))
      return SIP_F_REASON;
    if (!memcmp(k, "routes", 6))
      return SIP_F_ROUTES;
    break;
  case 7:
    if (!memcmp(k, "version", 7))
      return SIP_F_VERSION;
    if (!memcmp(k, "call_id", 7))
      return SIP_F_CALL_ID;
    if (!memcmp(k, "expires", 7))
      return SIP_F_EXPIRES;
    break;
  case 8:
    if (!memcmp(k, "contacts", 8))
      return SIP_F_CONTACTS;
    break;
  case 10:
    if (!memcmp(k, "is_request", 10))
      return SIP_F_IS_REQUEST;
    if (!memcmp(k, "start_line", 10))
      return SIP_F_START_LINE;
    break;
  case 11:
    if (!memcmp(k, "cseq_method", 11))
      return SIP_F_CSEQ_METHOD;
    break;
  case 12:
    if (!memcmp(k, "max_forwards", 12))
      return SIP_F_MAX_FORWARDS;
    if (!memcmp(k, "content_type", 12))
      return SIP_F_CONTENT_TYPE;
    break;
  case 13:
    if (!memcmp(k, "record_routes", 13))
      return SIP_F_RECORD_ROUTES;
    break;
  case 18:
    if (!memcmp(k, "has_content_length", 18))
      return SIP_F_HAS_CONTENT_LENGTH;
    break;
  }
  return 0;
}

int sip_addr_field_id(const char *k, size_t len) {
  switch (len) {
  case 1:
    if (!memcmp(k, "q", 1))
      return SIP_AF_Q;
    break;
  case 3:
    if (!memcmp(k, "uri", 3))
      return SIP_AF_URI;
    if (!memcmp(k, "tag", 3))
      return SIP_AF_TAG;
    if (!memcmp(k, "raw", 3))
      return SIP_AF_RAW;
    break;
  case 4:
    if (!memcmp(k, "star", 4))
      return SIP_AF_STAR;
    break;
  case 6:
    if (!memcmp(k, "params", 6))
      return SIP_AF_PARAMS;
    break;
  case 7:
    if (!memcmp(k, "display", 7))
      return SIP_AF_DISPLAY;
    if (!memcmp(k, "expires", 7))
      return SIP_AF_EXPIRES;
    break;
  case 10:
    if (!memcmp(k, "params_raw", 10))
      return SIP_AF_PARAMS_RAW;
    break;
  case 11:
    if (!memcmp(k, "display_raw", 11))
      return SIP_AF_DISPLAY_RAW;
    break;
  }
  return 0;
}

int sip_via_field_id(const char *k, size_t len) {
  switch (len) {
  case 3:
    if (!memcmp(k, "raw", 3))
      return SIP_VF_RAW;
    if (!memcmp(k, "ttl", 3))
      return SIP_VF_TTL;
    break;
  case 4:
    if (!memcmp(k, "host", 4))
      return SIP_VF_HOST;
    if (!memcmp(k, "port", 4))
      return SIP_VF_PORT;
    break;
  case 5:
    if (!memcmp(k, "rport", 5))
      return SIP_VF_RPORT;
    if (!memcmp(k, "maddr", 5))
      return SIP_VF_MADDR;
    break;
  case 6:
    if (!memcmp(k, "branch", 6))
      return SIP_VF_BRANCH;
    if (!memcmp(k, "params", 6))
      return SIP_VF_PARAMS;
    break;
  case 7:
    if (!memcmp(k, "version", 7))
      return SIP_VF_VERSION;
    break;
  case 8:
    if (!memcmp(k, "protocol", 8))
      return SIP_VF_PROTOCOL;
    if (!memcmp(k, "received", 8))
      return SIP_VF_RECEIVED;
    break;
  case 9:
    if (!memcmp(k, "transport", 9))
      return SIP_VF_TRANSPORT;
    break;
  case 10:
    if (!memcmp(k, "params_raw", 10))
      return SIP_VF_PARAMS_RAW;
    break;
  }
  return 0;
}

static const char *const msg_field_names[SIP_F__COUNT] = {
    NULL,
#define SIP__F_NAME(id, name) name,
    SIP_MSG_FIELDS(SIP__F_NAME)
#undef SIP__F_NAME
};

static const char *const view_field_names[SIP_VF__COUNT] = {
    NULL,
#define SIP__VF_NAME(id, name) name,
    SIP_ADDR_FIELDS(SIP__VF_NAME) SIP_VIA_FIELDS(SIP__VF_NAME)
#undef SIP__VF_NAME
};

const char *sip_msg_field_name(int f) {
  return f > 0 && f < SIP_F__COUNT ? msg_field_names[f] : NULL;
}

const char *sip_view_field_name(int f) {
  return f > 0 && f < SIP_VF__COUNT ? view_field_names[f] : NULL;
}

/* ---- values ------------------------------------------------------------- */

static void v_none(sip_value *out) { out->type = SIP_V_NONE; }

static void v_str(sip_value *out, sip_str s) {
  out->type = s.p ? SIP_V_STR : SIP_V_NONE;
  out->s = s;
}

static void v_int(sip_value *out, int type, int64_t i) {
  out->type = type;
  out->i = i;
}

static void v_ptr(sip_value *out, int type, const void *p) {
  out->type = type;
  out->p = p;
}

int sip_msg_field_header(int f) {
  switch (f) {
  case SIP_F_CALL_ID:
    return SIP_H_CALL_ID;
  case SIP_F_CSEQ:
  case SIP_F_CSEQ_METHOD:
    return SIP_H_CSEQ;
  case SIP_F_FROM:
    return SIP_H_FROM;
  case SIP_F_TO:
    return SIP_H_TO;
  case SIP_F_VIA:
    return SIP_H_VIA;
  case SIP_F_CONTACTS:
    return SIP_H_CONTACT;
  case SIP_F_ROUTES:
    return SIP_H_ROUTE;
  case SIP_F_RECORD_ROUTES:
    return SIP_H_RECORD_ROUTE;
  case SIP_F_PATHS:
    return SIP_H_PATH;
  case SIP_F_MAX_FORWARDS:
    return SIP_H_MAX_FORWARDS;
  case SIP_F_EXPIRES:
    return SIP_H_EXPIRES;
  case SIP_F_CONTENT_TYPE:
  case SIP_F_CTYPE:
    return SIP_H_CONTENT_TYPE;
  }
  return SIP_H_OTHER;
}

const char *sip_msg_field_what(int f) {
  int id = sip_msg_field_header(f);
  return id == SIP_H_OTHER ? "Request-URI" : sip_hdr_canonical(id);
}

size_t sip_msg_field_error(const sip_msg *m, int f, int err, char *out,
                           size_t cap) {
  int id = sip_msg_field_header(f);
  int at =
      id == SIP_H_OTHER ? SIP_MSG_AT_RURI : sip_msg_find(m, id, NULL, 0, 0);
  return sip_msg_field_strerror(m, err, at, sip_msg_field_what(f), out, cap);
}

int sip_msg_field(sip_msg *m, int f, sip_value *out) {
  int rc = 0;
  m->err_what = NULL;
  v_none(out);
  switch (f) {
  case SIP_F_METHOD:
    if (m->is_request)
      v_str(out, m->method);
    break;
  case SIP_F_URI:
    if (m->is_request)
      v_str(out, m->ruri);
    break;
  case SIP_F_RURI:
    if (m->is_request) {
      const sip_uri *u;
      if ((rc = sip_msg_get_ruri(m, &u)) == 0)
        v_ptr(out, SIP_V_URI, u);
    }
    break;
  case SIP_F_STATUS:
    if (!m->is_request)
      v_int(out, SIP_V_INT, m->status);
    break;
  case SIP_F_REASON:
    if (!m->is_request)
      v_str(out, m->reason);
    break;
  case SIP_F_VERSION:
    v_str(out, m->version);
    break;
  case SIP_F_IS_REQUEST:
    v_int(out, SIP_V_BOOL, m->is_request);
    break;
  case SIP_F_START_LINE:
    v_str(out, m->new_start_line.p ? m->new_start_line : m->start_line);
    break;
  case SIP_F_CALL_ID: {
    sip_str s;
    if ((rc = sip_msg_get_call_id(m, &s)) == 0)
      v_str(out, s);
    break;
  }
  case SIP_F_CSEQ:
  case SIP_F_CSEQ_METHOD: {
    const sip_cseq *c;
    if ((rc = sip_msg_get_cseq(m, &c)) < 0)
      break;
    if (f == SIP_F_CSEQ)
      v_int(out, SIP_V_INT, c->num);
    else
      v_str(out, c->method);
    break;
  }
  case SIP_F_FROM:
  case SIP_F_TO: {
    const sip_addr *a;
    if ((rc = sip_msg_get_addr(m, f == SIP_F_FROM ? SIP_H_FROM : SIP_H_TO,
                               &a)) == 0)
      v_ptr(out, SIP_V_ADDR, a);
    break;
  }
  case SIP_F_VIA: {
    const sip_via *v = NULL;
    rc = sip_msg_get_vias(m, &v);
    v_ptr(out, SIP_V_VIAS, rc == 0 ? v : NULL);
    if (rc == SIP_ENOTFOUND)
      rc = 0;
    break;
  }
  case SIP_F_CONTACTS:
  case SIP_F_ROUTES:
  case SIP_F_RECORD_ROUTES:
  case SIP_F_PATHS: {
    const sip_addr *a = NULL;
    int id = f == SIP_F_CONTACTS ? SIP_H_CONTACT
             : f == SIP_F_ROUTES ? SIP_H_ROUTE
             : f == SIP_F_PATHS  ? SIP_H_PATH
                                 : SIP_H_RECORD_ROUTE;
    rc = sip_msg_get_addrs(m, id, &a);
    v_ptr(out, SIP_V_ADDRS, rc == 0 ? a : NULL);
    if (rc == SIP_ENOTFOUND)
      rc = 0;
    break;
  }
  case SIP_F_MAX_FORWARDS:
  case SIP_F_EXPIRES: {
    uint32_t v;
    rc = f == SIP_F_MAX_FORWARDS ? sip_msg_get_max_forwards(m, &v)
                                 : sip_msg_get_expires(m, &v);
    if (rc == 0)
      v_int(out, SIP_V_INT, v);
    break;
  }
  case SIP_F_CONTENT_TYPE:
  case SIP_F_CTYPE: {
    const sip_ctype *c;
    if ((rc = sip_msg_get_ctype(m, &c)) == 0)
      v_ptr(out, SIP_V_CTYPE, c);
    break;
  }
  case SIP_F_BODY:
    v_str(out, m->body.p ? m->body : (sip_str){"", 0});
    break;
  case SIP_F_HAS_CONTENT_LENGTH:
    v_int(out, SIP_V_BOOL, m->has_clen);
    break;
  }
  if (rc == SIP_ENOTFOUND)
    rc = 0;
  if (rc < 0)
    v_none(out);
  return rc;
}

void sip_addr_field(const sip_addr *a, int f, sip_value *out) {
  v_none(out);
  switch (f) {
  case SIP_AF_DISPLAY:
    v_str(out, a->display_dec.p ? a->display_dec : a->display);
    break;
  case SIP_AF_DISPLAY_RAW:
    v_str(out, a->display);
    break;
  case SIP_AF_URI:
    v_str(out, a->uri.raw);
    break;
  case SIP_AF_TAG:
    v_str(out, a->tag);
    break;
  case SIP_AF_RAW:
    v_str(out, a->raw);
    break;
  case SIP_AF_PARAMS_RAW:
    v_str(out, a->params_raw);
    break;
  case SIP_AF_PARAMS:
    v_ptr(out, SIP_V_PARAMS, &a->params);
    break;
  case SIP_AF_Q:
    if (a->q >= 0)
      v_int(out, SIP_V_Q, a->q);
    break;
  case SIP_AF_EXPIRES:
    if (a->expires >= 0)
      v_int(out, SIP_V_INT, a->expires);
    break;
  case SIP_AF_STAR:
    if (a->star)
      v_int(out, SIP_V_BOOL, 1);
    break;
  }
}

void sip_via_field(const sip_via *v, int f, sip_value *out) {
  v_none(out);
  switch (f) {
  case SIP_VF_RAW:
    v_str(out, v->raw);
    break;
  case SIP_VF_PROTOCOL:
    v_str(out, v->protocol);
    break;
  case SIP_VF_VERSION:
    v_str(out, v->version);
    break;
  case SIP_VF_TRANSPORT:
    v_str(out, v->transport);
    break;
  case SIP_VF_HOST:
    v_str(out, v->host);
    break;
  case SIP_VF_PORT:
    if (v->has_port)
      v_int(out, SIP_V_INT, v->port);
    break;
  case SIP_VF_RPORT:
    if (v->has_rport) {
      if (v->rport >= 0)
        v_int(out, SIP_V_INT, v->rport);
      else
        v_int(out, SIP_V_BOOL, 1);
    }
    break;
  case SIP_VF_BRANCH:
    v_str(out, v->branch);
    break;
  case SIP_VF_RECEIVED:
    v_str(out, v->received);
    break;
  case SIP_VF_MADDR:
    v_str(out, v->maddr);
    break;
  case SIP_VF_TTL:
    v_str(out, v->ttl);
    break;
  case SIP_VF_PARAMS_RAW:
    v_str(out, v->params_raw);
    break;
  case SIP_VF_PARAMS:
    v_ptr(out, SIP_V_PARAMS, &v->params);
    break;
  }
}
