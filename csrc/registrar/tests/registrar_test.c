/* The registrar's C text helpers and the binding codec
 * (csrc/registrar/): AORs, binding keys, kept contact parameters, records
 * written and read back, truncated records refused (qvalues: the Contact
 * parser, csrc/test/test_fields.c). Prints "registrar_test: N passed, N
 * failed". */
#include <string.h>

#include "sip_binding.h"
#include "sip_registrar.h"
#include "test/check.h"

static sip_arena arena;

/* fn (sip_reg_aor or sip_reg_contact_key) on a URI, as a C string: the
 * text, or "(unparsable)", "(refused)", "(overflow)". */
static const char *uri_text(int (*fn)(const sip_uri *, sip_obuf *),
                            const char *text, char *out, size_t cap) {
  sip_uri u;
  if (sip_uri_parse(&arena, text, strlen(text), &u) < 0)
    return "(unparsable)";
  sip_obuf b;
  sip_obuf_init(&b, out, cap - 1);
  if (fn(&u, &b) < 0)
    return "(refused)";
  if (b.overflow)
    return "(overflow)";
  out[b.len] = 0;
  return out;
}

static const char *aor_of(const char *text, char *out, size_t cap) {
  return uri_text(sip_reg_aor, text, out, cap);
}

static const char *key_of(const char *text, char *out, size_t cap) {
  return uri_text(sip_reg_contact_key, text, out, cap);
}

static const char *kept(const char *params, char *out, size_t cap) {
  sip_obuf b;
  sip_obuf_init(&b, out, cap - 1);
  sip_reg_kept_params((sip_str){params, strlen(params)}, &b);
  out[b.len] = 0;
  return out;
}

#define CHECK_CSTR(got, want)                                                  \
  CHECK_MSG(strcmp((got), (want)) == 0, "got '%s', want '%s'", (got), (want))

static void test_aor(void) {
  char buf[256];
  CHECK_CSTR(
      aor_of("sip:%61lice@Example.COM:5060;transport=tcp", buf, sizeof buf),
      "sip:alice@example.com");
  CHECK_CSTR(aor_of("SIPS:Bob@EXAMPLE.com", buf, sizeof buf),
             "sips:Bob@example.com");
  CHECK_CSTR(aor_of("sip:example.com", buf, sizeof buf), "sip:example.com");
  /* a space and a '@' must be escaped, ';' '?' '/' need not */
  CHECK_CSTR(aor_of("sip:a%20b%40c;d?e/f@h", buf, sizeof buf),
             "sip:a%20b%40c;d?e/f@h");
  CHECK_CSTR(aor_of("sip:%c3%a9@h", buf, sizeof buf), "sip:%C3%A9@h");
  CHECK_CSTR(aor_of("sip:u:pw@h", buf, sizeof buf), "sip:u@h");
  CHECK_CSTR(aor_of("tel:+1234", buf, sizeof buf), "(refused)");
  char small[8];
  CHECK_CSTR(aor_of("sip:alice@example.com", small, sizeof small),
             "(overflow)");
}

static void test_key(void) {
  char buf[256];
  CHECK_CSTR(key_of("SIP:%61lice@Host.Example:5070;Transport=TCP;lr;foo=bar",
                    buf, sizeof buf),
             "sip:alice@host.example:5070;transport=tcp");
  CHECK_CSTR(key_of("sip:u@h;user=Phone;ttl=3;maddr=239.1.1.1;method=INVITE",
                    buf, sizeof buf),
             "sip:u@h;maddr=239.1.1.1;method=invite;ttl=3;user=phone");
  CHECK_CSTR(key_of("sip:u:p%41ss@h?Subject=Hi", buf, sizeof buf),
             "sip:u:pAss@h?Subject=Hi");
  CHECK_CSTR(key_of("sip:[2001:DB8::1]:5060", buf, sizeof buf),
             "sip:[2001:db8::1]:5060");
  CHECK_CSTR(key_of("sip:h;transport", buf, sizeof buf), "sip:h;transport");
  /* another scheme: lower-case scheme, the rest as written */
  CHECK_CSTR(key_of("MailTo:A@B", buf, sizeof buf), "mailto:A@B");
  CHECK_CSTR(key_of("TEL:+1-555;Ext=7", buf, sizeof buf), "tel:+1-555;Ext=7");
}

static void test_params(void) {
  char buf[256];
  CHECK_CSTR(kept(";q=0.5;expires=60;foo;bar=\"a;b\"", buf, sizeof buf),
             ";foo;bar=\"a;b\"");
  CHECK_CSTR(
      kept(" ; Q = 1 ;  x = y  ;pub-gruu=\"g\";TEMP-GRUU=t", buf, sizeof buf),
      ";x = y");
  CHECK_CSTR(kept(";a=\"q\\\";x\";Expires", buf, sizeof buf), ";a=\"q\\\";x\"");
  CHECK_CSTR(kept("", buf, sizeof buf), "");
  CHECK_CSTR(kept(";;+sip.instance=\"<urn:x>\"", buf, sizeof buf),
             ";+sip.instance=\"<urn:x>\"");
}

static void test_codec(void) {
  char mem[512];
  sip_obuf b;
  sip_obuf_init(&b, mem, sizeof mem);
  sip_str key = SIP_STR_LIT("sip:a@h");
  sip_binding_begin(&b, 1700000000.0, 1699990000.25, key);
  sip_binding_put_key(&b, SIP_BF_CONTACT, NULL);
  sip_binding_put_double(&b, SIP_BF_Q, NULL, 0.5);
  sip_binding_put_int(&b, SIP_BF_CSEQ, NULL, 7);
  sip_binding_put_int(&b, SIP_BF_OTHER, "conn_id", 1LL << 40);
  sip_binding_put_bool(&b, SIP_BF_OTHER, "flag", 1);
  sip_binding_put_array(&b, SIP_BF_PATH, NULL, 2);
  sip_binding_put_item(&b, SIP_STR_LIT("<sip:p1;lr>"));
  sip_binding_put_item(&b, SIP_STR_LIT("<sip:p2;lr>"));
  sip_binding_put_str(&b, SIP_BF_PARAMS, NULL, SIP_STR_LIT(""));
  CHECK(!b.overflow);
  /* the header is what codec.lua's string.pack("<dds2", ...) writes */
  CHECK_INT(b.len > 18, 1);
  CHECK_INT((unsigned char)mem[16], 7);
  CHECK_INT((unsigned char)mem[17], 0);

  sip_breader r;
  CHECK_INT(sip_binding_open(&r, b.p, b.len), 0);
  CHECK(r.expires == 1700000000.0 && r.saved == 1699990000.25);
  CHECK_STR(r.key, "sip:a@h");
  sip_bfield f;
  CHECK_INT(sip_binding_next(&r, &f), 1);
  CHECK_INT(f.id, SIP_BF_CONTACT);
  CHECK_INT(f.type, SIP_BT_KEY);
  CHECK_STR(f.str, "sip:a@h");
  CHECK_INT(sip_binding_next(&r, &f), 1);
  CHECK(f.id == SIP_BF_Q && f.type == SIP_BT_DBL && f.d == 0.5);
  CHECK_INT(sip_binding_next(&r, &f), 1);
  CHECK(f.id == SIP_BF_CSEQ && f.type == SIP_BT_I32 && f.i == 7);
  CHECK_INT(sip_binding_next(&r, &f), 1);
  CHECK(f.id == SIP_BF_OTHER && f.type == SIP_BT_I64 && f.i == 1LL << 40);
  CHECK_STR(f.name, "conn_id");
  CHECK_INT(sip_binding_next(&r, &f), 1);
  CHECK(f.type == SIP_BT_TRUE);
  CHECK_STR(f.name, "flag");
  CHECK_INT(sip_binding_next(&r, &f), 1);
  CHECK(f.id == SIP_BF_PATH && f.type == SIP_BT_ARRAY && f.i == 2);
  sip_str rest = f.str, item;
  CHECK_INT(sip_binding_item(&rest, &item), 0);
  CHECK_STR(item, "<sip:p1;lr>");
  CHECK_INT(sip_binding_item(&rest, &item), 0);
  CHECK_STR(item, "<sip:p2;lr>");
  CHECK_INT(rest.len, 0);
  CHECK_INT(sip_binding_next(&r, &f), 1);
  CHECK(f.id == SIP_BF_PARAMS && f.type == SIP_BT_STR && f.str.len == 0);
  CHECK_INT(sip_binding_next(&r, &f), 0);

  /* a cut record ends within its bytes: an error, or (cut between fields)
   * a shorter record; the header and a field cut in half are errors */
  int ended = 0, errors = 0;
  for (size_t n = 0; n < b.len; n++) {
    char *copy = malloc(n ? n : 1);
    memcpy(copy, b.p, n);
    int rc = sip_binding_open(&r, copy, n);
    if (rc == 0)
      do
        rc = sip_binding_next(&r, &f);
      while (rc == 1);
    ended += rc <= 0 && r.pos <= n;
    errors += rc < 0;
    free(copy);
  }
  CHECK_INT(ended, (int)b.len);
  CHECK_INT(errors, (int)b.len - 7); /* 7 cuts fall between fields */

  CHECK_CSTR(sip_binding_field_name(SIP_BF_USER_AGENT), "user_agent");
  CHECK_INT(sip_binding_field_id("temp_gruu", 9), SIP_BF_TEMP_GRUU);
  CHECK_INT(sip_binding_field_id("conn_id", 7), SIP_BF_OTHER);

  sip_obuf_init(&b, mem, 20);
  sip_binding_begin(&b, 1, 2, SIP_STR_LIT("a-long-key"));
  CHECK(b.overflow);
}

int main(void) {
  char first[1024];
  sip_arena_init(&arena, first, sizeof first);
  test_aor();
  test_key();
  test_params();
  test_codec();
  sip_arena_free(&arena);
  return check_summary("registrar_test");
}
