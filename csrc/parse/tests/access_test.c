/* sip_access: field names and ids, and the values of message, address and
 * Via fields (what csrc/lua/message.c pushes). */
#include <string.h>

#include "sip_access.h"
#include "test/check.h"

static const char REQ[] =
    "INVITE sip:bob@biloxi.example.com SIP/2.0\r\n"
    "Via: SIP/2.0/UDP pc33.example.com:5062;rport;branch=z9hG4bK1;ttl=16\r\n"
    "v: SIP/2.0/TCP p2.example.com;received=192.0.2.9;rport=5070;"
    "maddr=224.0.0.1;branch=z9hG4bK2\r\n"
    "Max-Forwards: 70\r\n"
    "To: Bob <sip:bob@biloxi.example.com>\r\n"
    "From: \"A \\\"x\\\"\" <sip:alice@atlanta.example.com>;tag=1928\r\n"
    "Call-ID: a84b4c76e66710\r\n"
    "CSeq: 314159 INVITE\r\n"
    "Contact: <sip:a@pc33.example.com>;q=0.7;expires=60, *\r\n"
    "Content-Type: multipart/mixed;boundary=b1\r\n"
    "Expires: 30\r\n"
    "\r\n";

static int parse(sip_msg *m, const char *s) {
  sip_msg_init(m, NULL);
  return sip_msg_parse(m, s, strlen(s), SIP_MODE_DATAGRAM);
}

/* every name of the X-macro lists maps to its id and back; the switches
 * agree with the lists (they are written by hand) */
static void test_names(void) {
  int n = 0;
  for (int f = 1; f < SIP_F__COUNT; f++, n++) {
    const char *k = sip_msg_field_name(f);
    CHECK_MSG(k && sip_msg_field_id(k, strlen(k)) == f, "field %d", f);
  }
  CHECK_INT(n, 24);
  for (int f = 1; f < SIP_VF__COUNT; f++) {
    const char *k = sip_view_field_name(f);
    int id = f <= SIP_AF_STAR ? sip_addr_field_id(k, strlen(k))
                              : sip_via_field_id(k, strlen(k));
    CHECK_MSG(id == f, "view field %d '%s' -> %d", f, k, id);
  }
  CHECK(sip_msg_field_name(0) == NULL);
  CHECK(sip_msg_field_name(SIP_F__COUNT) == NULL);
  CHECK(sip_view_field_name(SIP_VF__COUNT) == NULL);
  /* exact, case-sensitive; not a prefix; the other kind's names are not */
  CHECK_INT(sip_msg_field_id("Call_ID", 7), 0);
  CHECK_INT(sip_msg_field_id("call_i", 6), 0);
  CHECK_INT(sip_msg_field_id("call_idx", 8), 0);
  CHECK_INT(sip_msg_field_id("", 0), 0);
  CHECK_INT(sip_msg_field_id("header", 6), 0);
  CHECK_INT(sip_addr_field_id("branch", 6), 0);
  CHECK_INT(sip_via_field_id("tag", 3), 0);
  CHECK_INT(sip_via_field_id("raw", 3), SIP_VF_RAW);
  CHECK_INT(sip_addr_field_id("raw", 3), SIP_AF_RAW);
  /* where errors point */
  CHECK_INT(sip_msg_field_header(SIP_F_RURI), SIP_H_OTHER);
  CHECK(strcmp(sip_msg_field_what(SIP_F_RURI), "Request-URI") == 0);
  CHECK(strcmp(sip_msg_field_what(SIP_F_CSEQ_METHOD), "CSeq") == 0);
  CHECK(strcmp(sip_msg_field_what(SIP_F_CALL_ID), "Call-ID") == 0);
  CHECK(strcmp(sip_msg_field_what(SIP_F_RECORD_ROUTES), "Record-Route") == 0);
  CHECK(strcmp(sip_msg_field_what(SIP_F_CONTENT_TYPE), "Content-Type") == 0);
}

/* Message field id of m reads into v with no error, as absent (NONE) or
 * as the string want. */
#define CHECK_FIELD_NONE(m, id, v)                                             \
  do {                                                                         \
    CHECK_INT(sip_msg_field((m), (id), (v)), 0);                               \
    CHECK_INT((v)->type, SIP_V_NONE);                                          \
  } while (0)
#define CHECK_FIELD_STR(m, id, v, want)                                        \
  do {                                                                         \
    CHECK_INT(sip_msg_field((m), (id), (v)), 0);                               \
    CHECK_STR((v)->s, (want));                                                 \
  } while (0)

static void test_msg_fields(void) {
  sip_msg m;
  sip_value v;
  CHECK_INT(parse(&m, REQ), (int)strlen(REQ));
  CHECK_INT(sip_msg_field(&m, SIP_F_METHOD, &v), 0);
  CHECK_INT(v.type, SIP_V_STR);
  CHECK_STR(v.s, "INVITE");
  CHECK_FIELD_STR(&m, SIP_F_URI, &v, "sip:bob@biloxi.example.com");
  CHECK_INT(sip_msg_field(&m, SIP_F_RURI, &v), 0);
  CHECK_INT(v.type, SIP_V_URI);
  CHECK_STR(((const sip_uri *)v.p)->host, "biloxi.example.com");
  CHECK_FIELD_NONE(&m, SIP_F_STATUS, &v);
  CHECK_FIELD_NONE(&m, SIP_F_REASON, &v);
  CHECK_INT(sip_msg_field(&m, SIP_F_IS_REQUEST, &v), 0);
  CHECK(v.type == SIP_V_BOOL && v.i == 1);
  CHECK_FIELD_STR(&m, SIP_F_START_LINE, &v,
                  "INVITE sip:bob@biloxi.example.com SIP/2.0");
  CHECK_FIELD_STR(&m, SIP_F_VERSION, &v, "SIP/2.0");
  CHECK_FIELD_STR(&m, SIP_F_CALL_ID, &v, "a84b4c76e66710");
  CHECK_INT(sip_msg_field(&m, SIP_F_CSEQ, &v), 0);
  CHECK(v.type == SIP_V_INT && v.i == 314159);
  CHECK_FIELD_STR(&m, SIP_F_CSEQ_METHOD, &v, "INVITE");
  CHECK_INT(sip_msg_field(&m, SIP_F_MAX_FORWARDS, &v), 0);
  CHECK(v.type == SIP_V_INT && v.i == 70);
  CHECK_INT(sip_msg_field(&m, SIP_F_EXPIRES, &v), 0);
  CHECK(v.type == SIP_V_INT && v.i == 30);
  CHECK_INT(sip_msg_field(&m, SIP_F_FROM, &v), 0);
  CHECK_INT(v.type, SIP_V_ADDR);
  CHECK_STR(((const sip_addr *)v.p)->tag, "1928");
  CHECK_INT(sip_msg_field(&m, SIP_F_VIA, &v), 0);
  CHECK_INT(v.type, SIP_V_VIAS);
  CHECK(v.p && ((const sip_via *)v.p)->next);
  CHECK_INT(sip_msg_field(&m, SIP_F_CONTACTS, &v), 0);
  CHECK(v.type == SIP_V_ADDRS && v.p);
  /* a list field without its header: an empty list, not absent */
  CHECK_INT(sip_msg_field(&m, SIP_F_ROUTES, &v), 0);
  CHECK(v.type == SIP_V_ADDRS && v.p == NULL);
  CHECK_INT(sip_msg_field(&m, SIP_F_CTYPE, &v), 0);
  CHECK_INT(v.type, SIP_V_CTYPE);
  CHECK_STR(((const sip_ctype *)v.p)->boundary, "b1");
  /* no body: an empty string */
  CHECK_INT(sip_msg_field(&m, SIP_F_BODY, &v), 0);
  CHECK(v.type == SIP_V_STR && v.s.p && v.s.len == 0);
  CHECK_INT(sip_msg_field(&m, SIP_F_HAS_CONTENT_LENGTH, &v), 0);
  CHECK(v.type == SIP_V_BOOL && v.i == 0);
  CHECK_INT(sip_msg_field(&m, 0, &v), 0);
  CHECK_INT(v.type, SIP_V_NONE);
  /* an edit shows */
  CHECK_INT(sip_msg_set_ruri(&m, "sip:c@d", 7), 0);
  CHECK_FIELD_STR(&m, SIP_F_START_LINE, &v, "INVITE sip:c@d SIP/2.0");
  CHECK_FIELD_STR(&m, SIP_F_URI, &v, "sip:c@d");
  sip_msg_free(&m);

  /* a response; absent and malformed headers */
  CHECK(parse(&m, "SIP/2.0 486 Busy Here\r\n"
                  "CSeq: x INVITE\r\n"
                  "To: <bad\r\n"
                  "Content-Length: 2\r\n\r\nab") > 0);
  CHECK_FIELD_NONE(&m, SIP_F_METHOD, &v);
  CHECK_FIELD_NONE(&m, SIP_F_RURI, &v);
  CHECK_INT(sip_msg_field(&m, SIP_F_STATUS, &v), 0);
  CHECK(v.type == SIP_V_INT && v.i == 486);
  CHECK_FIELD_STR(&m, SIP_F_REASON, &v, "Busy Here");
  CHECK_FIELD_NONE(&m, SIP_F_CALL_ID, &v);
  CHECK_FIELD_NONE(&m, SIP_F_FROM, &v);
  CHECK_INT(sip_msg_field(&m, SIP_F_VIA, &v), 0);
  CHECK(v.type == SIP_V_VIAS && v.p == NULL);
  CHECK_INT(sip_msg_field(&m, SIP_F_CSEQ, &v), SIP_ECSEQ);
  CHECK_INT(v.type, SIP_V_NONE);
  CHECK(sip_msg_field(&m, SIP_F_TO, &v) < 0);
  CHECK_INT(v.type, SIP_V_NONE);
  CHECK_FIELD_STR(&m, SIP_F_BODY, &v, "ab");
  CHECK_INT(sip_msg_field(&m, SIP_F_HAS_CONTENT_LENGTH, &v), 0);
  CHECK(v.type == SIP_V_BOOL && v.i == 1);
  /* the error texts of message fields: the first line of the header */
  char buf[128];
  CHECK_INT(sip_msg_field(&m, SIP_F_CSEQ_METHOD, &v), SIP_ECSEQ);
  sip_msg_field_error(&m, SIP_F_CSEQ_METHOD, SIP_ECSEQ, buf, sizeof buf);
  CHECK_MSG(strcmp(buf, "PARSE: CSeq at byte 23: malformed CSeq") == 0,
            "got '%s'", buf);
  sip_msg_field_error(&m, SIP_F_RURI, SIP_EURI, buf, sizeof buf);
  CHECK_MSG(strcmp(buf, "PARSE: Request-URI: malformed URI") == 0, "got '%s'",
            buf);
  /* err_what is cleared before each read */
  m.err_what = "stale";
  CHECK_INT(sip_msg_field(&m, SIP_F_STATUS, &v), 0);
  CHECK(m.err_what == NULL);
  sip_msg_free(&m);
}

static void test_view_fields(void) {
  sip_msg m;
  sip_value v;
  CHECK(parse(&m, REQ) > 0);
  const sip_addr *a;
  CHECK_INT(sip_msg_get_addr(&m, SIP_H_FROM, &a), 0);
  sip_addr_field(a, SIP_AF_DISPLAY, &v);
  CHECK_STR(v.s, "A \"x\"");
  sip_addr_field(a, SIP_AF_DISPLAY_RAW, &v);
  CHECK_STR(v.s, "\"A \\\"x\\\"\"");
  sip_addr_field(a, SIP_AF_URI, &v);
  CHECK_STR(v.s, "sip:alice@atlanta.example.com");
  sip_addr_field(a, SIP_AF_TAG, &v);
  CHECK_STR(v.s, "1928");
  sip_addr_field(a, SIP_AF_PARAMS_RAW, &v);
  CHECK_STR(v.s, ";tag=1928");
  sip_addr_field(a, SIP_AF_PARAMS, &v);
  CHECK(v.type == SIP_V_PARAMS && ((const sip_params *)v.p)->n == 1);
  sip_addr_field(a, SIP_AF_Q, &v);
  CHECK_INT(v.type, SIP_V_NONE);
  sip_addr_field(a, SIP_AF_EXPIRES, &v);
  CHECK_INT(v.type, SIP_V_NONE);
  sip_addr_field(a, SIP_AF_STAR, &v);
  CHECK_INT(v.type, SIP_V_NONE);
  sip_addr_field(a, SIP_VF_BRANCH, &v); /* a Via id */
  CHECK_INT(v.type, SIP_V_NONE);
  CHECK_INT(sip_msg_get_addr(&m, SIP_H_TO, &a), 0);
  sip_addr_field(a, SIP_AF_TAG, &v);
  CHECK_INT(v.type, SIP_V_NONE);
  sip_addr_field(a, SIP_AF_DISPLAY, &v);
  CHECK_STR(v.s, "Bob");
  CHECK_INT(sip_msg_get_addrs(&m, SIP_H_CONTACT, &a), 0);
  sip_addr_field(a, SIP_AF_Q, &v);
  CHECK(v.type == SIP_V_Q && v.i == 700);
  sip_addr_field(a, SIP_AF_EXPIRES, &v);
  CHECK(v.type == SIP_V_INT && v.i == 60);
  sip_addr_field(a, SIP_AF_RAW, &v);
  CHECK_STR(v.s, "<sip:a@pc33.example.com>;q=0.7;expires=60");
  CHECK(a->next != NULL);
  sip_addr_field(a->next, SIP_AF_STAR, &v);
  CHECK(v.type == SIP_V_BOOL && v.i == 1);

  const sip_via *w;
  CHECK_INT(sip_msg_get_vias(&m, &w), 0);
  sip_via_field(w, SIP_VF_PROTOCOL, &v);
  CHECK_STR(v.s, "SIP");
  sip_via_field(w, SIP_VF_VERSION, &v);
  CHECK_STR(v.s, "2.0");
  sip_via_field(w, SIP_VF_TRANSPORT, &v);
  CHECK_STR(v.s, "UDP");
  sip_via_field(w, SIP_VF_HOST, &v);
  CHECK_STR(v.s, "pc33.example.com");
  sip_via_field(w, SIP_VF_PORT, &v);
  CHECK(v.type == SIP_V_INT && v.i == 5062);
  sip_via_field(w, SIP_VF_RPORT, &v); /* ;rport without a value */
  CHECK(v.type == SIP_V_BOOL && v.i == 1);
  sip_via_field(w, SIP_VF_BRANCH, &v);
  CHECK_STR(v.s, "z9hG4bK1");
  sip_via_field(w, SIP_VF_TTL, &v);
  CHECK_STR(v.s, "16");
  sip_via_field(w, SIP_VF_RECEIVED, &v);
  CHECK_INT(v.type, SIP_V_NONE);
  sip_via_field(w, SIP_VF_PARAMS_RAW, &v);
  CHECK_STR(v.s, ";rport;branch=z9hG4bK1;ttl=16");
  sip_via_field(w, SIP_VF_PARAMS, &v);
  CHECK(v.type == SIP_V_PARAMS && ((const sip_params *)v.p)->n == 3);
  sip_via_field(w, SIP_AF_TAG, &v); /* an address id */
  CHECK_INT(v.type, SIP_V_NONE);
  w = w->next;
  sip_via_field(w, SIP_VF_RAW, &v);
  CHECK_STR(v.s, "SIP/2.0/TCP p2.example.com;received=192.0.2.9;rport=5070;"
                 "maddr=224.0.0.1;branch=z9hG4bK2");
  sip_via_field(w, SIP_VF_PORT, &v);
  CHECK_INT(v.type, SIP_V_NONE);
  sip_via_field(w, SIP_VF_RPORT, &v);
  CHECK(v.type == SIP_V_INT && v.i == 5070);
  sip_via_field(w, SIP_VF_RECEIVED, &v);
  CHECK_STR(v.s, "192.0.2.9");
  sip_via_field(w, SIP_VF_MADDR, &v);
  CHECK_STR(v.s, "224.0.0.1");
  sip_via_field(w, SIP_VF_TTL, &v);
  CHECK_INT(v.type, SIP_V_NONE);
  sip_msg_free(&m);
}

int main(void) {
  test_names();
  test_msg_fields();
  test_view_fields();
  return check_summary("access_test");
}
