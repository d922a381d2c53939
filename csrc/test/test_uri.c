/* URI grammar: sip_uri_parse, sip_uri_equal, sip_unescape. Every input is
 * copied to a malloc'd block of exactly its length (no NUL after it), so
 * ASan flags any read past the end of the slice. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "sip_uri.h"

static sip_arena arena;
static char *copies[2048];
static int ncopies;

static const char *dup_exact(const char *s, size_t len) {
  char *p = malloc(len ? len : 1);
  if (!p)
    abort();
  memcpy(p, s, len);
  if (ncopies < (int)(sizeof copies / sizeof copies[0]))
    copies[ncopies++] = p;
  return p;
}

static int parse_n(const char *s, size_t len, sip_uri *u) {
  return sip_uri_parse(&arena, dup_exact(s, len), len, u);
}

static int parse(const char *s, sip_uri *u) { return parse_n(s, strlen(s), u); }

#define ABSENT(slice) CHECK((slice).p == NULL && (slice).len == 0)

/* A slice equals the bytes [b, b+n), NULs included. */
#define CHECK_BYTES(slice, b, n)                                               \
  CHECK((slice).p != NULL && (slice).len == (n) &&                             \
        memcmp((slice).p, (b), (n)) == 0)

static void test_typical(void) {
  sip_uri u;
  const char *s = "sip:alice:secret@Atlanta.example.com:5061;transport=TCP;"
                  "lr;maddr=239.255.255.1;ttl=15;user=phone;method=INVITE;"
                  "x-foo?Subject=hi&Priority=urgent";
  CHECK_INT(parse(s, &u), 0);
  CHECK_STR(u.raw, s);
  CHECK_STR(u.scheme, "sip");
  CHECK_INT(u.kind, SIP_URI_SIP);
  CHECK_STR(u.user, "alice");
  CHECK(u.user_dec.p == u.user.p && u.user_dec.len == u.user.len);
  CHECK_STR(u.password, "secret");
  CHECK(u.password_dec.p == u.password.p);
  CHECK_STR(u.host, "Atlanta.example.com");
  CHECK_INT(u.host_type, SIP_HOST_NAME);
  CHECK_INT(u.has_port, 1);
  CHECK_INT(u.port, 5061);
  CHECK_STR(u.params_raw, ";transport=TCP;lr;maddr=239.255.255.1;ttl=15;"
                          "user=phone;method=INVITE;x-foo");
  CHECK_INT(u.params.n, 7);
  CHECK_STR(u.params.v[0].name, "transport");
  CHECK_STR(u.params.v[0].value, "TCP");
  CHECK(u.params.v[0].dec.p == u.params.v[0].value.p);
  CHECK_STR(u.params.v[1].name, "lr");
  ABSENT(u.params.v[1].value);
  ABSENT(u.params.v[1].dec);
  CHECK_STR(u.params.v[6].name, "x-foo");
  ABSENT(u.params.v[6].value);
  CHECK_INT(u.lr, 1);
  CHECK_STR(u.transport, "TCP");
  CHECK_STR(u.maddr, "239.255.255.1");
  CHECK_STR(u.ttl, "15");
  CHECK_STR(u.user_param, "phone");
  CHECK_STR(u.method, "INVITE");
  CHECK_STR(u.headers_raw, "Subject=hi&Priority=urgent");
  CHECK_INT(u.headers.n, 2);
  CHECK_STR(u.headers.v[0].name, "Subject");
  CHECK_STR(u.headers.v[0].value, "hi");
  CHECK_STR(u.headers.v[0].dec, "hi");
  CHECK_STR(u.headers.v[1].name, "Priority");
  CHECK_STR(u.headers.v[1].dec, "urgent");
  ABSENT(u.opaque);

  CHECK_INT(parse("sip:example.com", &u), 0);
  CHECK_INT(u.kind, SIP_URI_SIP);
  ABSENT(u.user);
  ABSENT(u.user_dec);
  ABSENT(u.password);
  CHECK_STR(u.host, "example.com");
  CHECK_INT(u.has_port, 0);
  CHECK_INT(u.lr, 0);
  ABSENT(u.params_raw);
  CHECK_INT(u.params.n, 0);
  CHECK(u.params.v == NULL);
  ABSENT(u.headers_raw);
  CHECK_INT(u.headers.n, 0);
  ABSENT(u.transport);
  ABSENT(u.maddr);
  ABSENT(u.user_param);
  ABSENT(u.method);
  ABSENT(u.ttl);

  /* scheme case-insensitive, kept as written */
  CHECK_INT(parse("SIPS:Bob@Biloxi.example.com", &u), 0);
  CHECK_INT(u.kind, SIP_URI_SIPS);
  CHECK_STR(u.scheme, "SIPS");
  CHECK_STR(u.user, "Bob");
  CHECK_INT(parse("sIp:bob@host", &u), 0);
  CHECK_INT(u.kind, SIP_URI_SIP);

  /* empty password is present */
  CHECK_INT(parse("sip:bob:@host", &u), 0);
  CHECK_STR(u.user, "bob");
  CHECK(u.password.p != NULL && u.password.len == 0);

  CHECK_INT(parse("sip:192.0.2.4:0", &u), 0);
  CHECK_INT(u.host_type, SIP_HOST_IPV4);
  CHECK_STR(u.host, "192.0.2.4");
  CHECK_INT(u.has_port, 1);
  CHECK_INT(u.port, 0);
  CHECK_INT(parse("sip:h:65535", &u), 0);
  CHECK_INT(u.port, 65535);
  CHECK_INT(parse("sip:h:0005060", &u), 0);
  CHECK_INT(u.port, 5060);

  /* trailing dot on a hostname */
  CHECK_INT(parse("sip:user@example.com.", &u), 0);
  CHECK_STR(u.host, "example.com.");
  CHECK_INT(u.host_type, SIP_HOST_NAME);
  CHECK_INT(parse("sip:a-b.c-d9.example", &u), 0);
  CHECK_INT(parse("sip:host5", &u), 0);
  CHECK_STR(u.host, "host5");

  /* host then headers, no params */
  CHECK_INT(parse("sip:host?h=", &u), 0);
  ABSENT(u.params_raw);
  CHECK_STR(u.headers_raw, "h=");
  CHECK_INT(u.headers.n, 1);
  CHECK(u.headers.v[0].value.p != NULL && u.headers.v[0].value.len == 0);

  /* valueless well-known params are present, empty */
  CHECK_INT(parse("sip:host;transport;LR", &u), 0);
  CHECK(u.transport.p != NULL && u.transport.len == 0);
  CHECK_INT(u.lr, 1);
  /* the first occurrence wins */
  CHECK_INT(parse("sip:host;transport=udp;transport=tcp", &u), 0);
  CHECK_STR(u.transport, "udp");
  CHECK_INT(u.params.n, 2);

  /* more parameters than the parser keeps on its stack */
  char big[1024];
  size_t n = (size_t)snprintf(big, sizeof big, "sip:host");
  for (int i = 0; i < 40; i++)
    n += (size_t)snprintf(big + n, sizeof big - n, ";p%d=v%d", i, i);
  n += (size_t)snprintf(big + n, sizeof big - n, "?");
  for (int i = 0; i < 30; i++)
    n += (size_t)snprintf(big + n, sizeof big - n, "%sh%d=%%41%d", i ? "&" : "",
                          i, i);
  CHECK_INT(parse_n(big, n, &u), 0);
  CHECK_INT(u.params.n, 40);
  CHECK_STR(u.params.v[0].name, "p0");
  CHECK_STR(u.params.v[39].name, "p39");
  CHECK_STR(u.params.v[39].value, "v39");
  CHECK_INT(u.headers.n, 30);
  CHECK_STR(u.headers.v[29].name, "h29");
  CHECK_STR(u.headers.v[29].value, "%4129");
  CHECK_STR(u.headers.v[29].dec, "A29");
}

/* Request-URIs and header URIs from the RFC 4475 torture messages. */
static void test_rfc4475(void) {
  sip_uri u;

  /* esc01 Request-URI: the user embeds a whole SIPS URI */
  CHECK_INT(parse("sip:sips%3Auser%40example.com@example.net", &u), 0);
  CHECK_STR(u.user, "sips%3Auser%40example.com");
  CHECK_STR(u.user_dec, "sips:user@example.com");
  CHECK_STR(u.host, "example.net");
  ABSENT(u.password);
  /* esc01 To and From */
  CHECK_INT(parse("sip:%75se%72@example.com", &u), 0);
  CHECK_STR(u.user_dec, "user");
  CHECK_INT(parse("sip:I%20have%20spaces@example.net", &u), 0);
  CHECK_STR(u.user_dec, "I have spaces");
  /* esc01 Contact: escaped param names, decoded exactly once */
  CHECK_INT(parse("sip:cal%6Cer@host5.example.net;%6C%72;"
                  "n%61me=v%61lue%25%34%31",
                  &u),
            0);
  CHECK_STR(u.user_dec, "caller");
  CHECK_STR(u.host, "host5.example.net");
  CHECK_INT(u.params.n, 2);
  CHECK_STR(u.params.v[0].name, "lr");
  CHECK_INT(u.lr, 1);
  CHECK_STR(u.params.v[1].name, "name");
  CHECK_STR(u.params.v[1].value, "v%61lue%25%34%31");
  CHECK_STR(u.params.v[1].dec, "value%41");
  CHECK_STR(u.params_raw, ";%6C%72;n%61me=v%61lue%25%34%31");

  /* escnull: NUL bytes survive decoding */
  CHECK_INT(parse("sip:null-%00-null@example.com", &u), 0);
  CHECK_STR(u.user, "null-%00-null");
  CHECK_BYTES(u.user_dec, "null-\0-null", 11);
  sip_uri u1, u2;
  CHECK_INT(parse("sip:%00@host5.example.com", &u1), 0);
  CHECK_INT(parse("sip:%00%00@host5.example.com", &u2), 0);
  CHECK_BYTES(u1.user_dec, "\0", 1);
  CHECK_BYTES(u2.user_dec, "\0\0", 2);
  CHECK_INT(sip_uri_equal(&u1, &u2), 0);

  /* semiuri: ';' before the '@' is part of the user */
  CHECK_INT(parse("sip:user;par=u%40example.net@example.com", &u), 0);
  CHECK_STR(u.user, "user;par=u%40example.net");
  CHECK_STR(u.user_dec, "user;par=u@example.net");
  CHECK_STR(u.host, "example.com");
  ABSENT(u.params_raw);
  CHECK_INT(u.params.n, 0);

  /* intmeth Request-URI: every legal user and password character */
  const char *im = "sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*:"
                   "&it+has=1,weird!*pas$wo~d_too.(doesn't-it)@example.com";
  CHECK_INT(parse(im, &u), 0);
  CHECK_STR(u.user, "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*");
  CHECK(u.user_dec.p == u.user.p);
  CHECK_STR(u.password, "&it+has=1,weird!*pas$wo~d_too.(doesn't-it)");
  CHECK_STR(u.host, "example.com");
  ABSENT(u.headers_raw);
  /* intmeth To */
  CHECK_INT(
      parse("sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*@example.com",
            &u),
      0);
  CHECK_STR(u.user, "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*");
  ABSENT(u.password);

  /* wsinv Request-URI */
  CHECK_INT(parse("sip:vivekg@chair-dnrc.example.com;unknownparam", &u), 0);
  CHECK_STR(u.host, "chair-dnrc.example.com");
  CHECK_INT(u.params.n, 1);
  CHECK_STR(u.params.v[0].name, "unknownparam");

  /* longreq To URI */
  CHECK_INT(parse("sip:user@example.com:6000;unknownparam1=verylonglong"
                  "value;longparamnamename=shortvalue;"
                  "verylongParameterNameWithNoValue",
                  &u),
            0);
  CHECK_INT(u.port, 6000);
  CHECK_INT(u.params.n, 3);
  CHECK_STR(u.params.v[1].dec, "shortvalue");

  /* regescrt / escruri: escaped header values */
  CHECK_INT(parse("sip:user@example.com?Route=%3Csip:sip.example.com%3E", &u),
            0);
  CHECK_INT(u.headers.n, 1);
  CHECK_STR(u.headers.v[0].name, "Route");
  CHECK_STR(u.headers.v[0].value, "%3Csip:sip.example.com%3E");
  CHECK_STR(u.headers.v[0].dec, "<sip:sip.example.com>");
  CHECK_STR(u.headers_raw, "Route=%3Csip:sip.example.com%3E");

  /* unkscm, novelsc, unksm2: other schemes stay opaque */
  CHECK_INT(parse("nobodyKnowsThisScheme:totallyopaquecontent", &u), 0);
  CHECK_INT(u.kind, SIP_URI_OTHER);
  CHECK_STR(u.scheme, "nobodyKnowsThisScheme");
  CHECK_STR(u.opaque, "totallyopaquecontent");
  ABSENT(u.host);
  ABSENT(u.user);
  CHECK_INT(u.host_type, SIP_HOST_NONE);
  CHECK_INT(parse("soap.beep://192.0.2.103:3002", &u), 0);
  CHECK_INT(u.kind, SIP_URI_OTHER);
  CHECK_STR(u.scheme, "soap.beep");
  CHECK_STR(u.opaque, "//192.0.2.103:3002");
  CHECK_INT(u.has_port, 0);
  CHECK_INT(parse("isbn:2983792873", &u), 0);
  CHECK_STR(u.opaque, "2983792873");
  CHECK_INT(parse("http://www.example.com", &u), 0);
  CHECK_STR(u.scheme, "http");
  CHECK_STR(u.opaque, "//www.example.com");
  CHECK_INT(parse("name:John_Smith", &u), 0);
  CHECK_STR(u.opaque, "John_Smith");
  CHECK_INT(parse("http://host/path?q=1;x#frag", &u), 0);
  CHECK_INT(parse("a+b-c.d:x", &u), 0);
  CHECK_STR(u.scheme, "a+b-c.d");

  /* ltgtruri, lwsruri: the bracketed / split Request-URI is rejected */
  CHECK_INT(parse("<sip:user@example.com>", &u), SIP_EURI);
  CHECK_INT(parse("sip:user@example.com;", &u), SIP_EURI);
  CHECK_INT(parse("sip:user@example.com; lr", &u), SIP_EURI);
}

/* RFC 5118 IPv6 references. */
static void test_ipv6(void) {
  sip_uri u;
  CHECK_INT(parse("sip:[2001:db8::10]", &u), 0);
  CHECK_STR(u.host, "[2001:db8::10]");
  CHECK_INT(u.host_type, SIP_HOST_IPV6);
  CHECK_INT(u.has_port, 0);
  CHECK_INT(parse("sip:caller@[2001:db8::1]", &u), 0);
  CHECK_STR(u.user, "caller");
  CHECK_STR(u.host, "[2001:db8::1]");
  /* port-ambiguous: the ":5070" is inside the address */
  CHECK_INT(parse("sip:[2001:db8::10:5070]", &u), 0);
  CHECK_STR(u.host, "[2001:db8::10:5070]");
  CHECK_INT(u.has_port, 0);
  /* port-unambiguous */
  CHECK_INT(parse("sip:[2001:db8::10]:5070", &u), 0);
  CHECK_STR(u.host, "[2001:db8::10]");
  CHECK_INT(u.has_port, 1);
  CHECK_INT(u.port, 5070);
  /* ipv6-bad: a raw address is not a host */
  CHECK_INT(parse("sip:2001:db8::10", &u), SIP_EURI);
  CHECK_INT(parse("sip:user@2001:db8::10", &u), SIP_EURI);
  /* three- and two-colon forms before an embedded IPv4 */
  CHECK_INT(parse("sip:user@[2001:db8:::192.0.2.1]", &u), 0);
  CHECK_STR(u.host, "[2001:db8:::192.0.2.1]");
  CHECK_INT(u.host_type, SIP_HOST_IPV6);
  CHECK_INT(parse("sip:user@[2001:db8::192.0.2.1]", &u), 0);
  /* ipv4-mapped */
  CHECK_INT(parse("sip:ted@[::ffff:192.0.2.2]", &u), 0);
  CHECK_STR(u.host, "[::ffff:192.0.2.2]");
  CHECK_INT(parse("sip:[::ffff:192.0.2.2]:5060;transport=tcp", &u), 0);
  CHECK_INT(u.port, 5060);
  CHECK_STR(u.transport, "tcp");
  /* full, compressed, loopback and any forms */
  CHECK_INT(parse("sip:[2001:DB8:0:0:8:800:200C:417A]", &u), 0);
  CHECK_INT(parse("sip:[::1]", &u), 0);
  CHECK_INT(parse("sip:[::]", &u), 0);
  CHECK_INT(parse("sip:[fe80::]", &u), 0);
  CHECK_INT(parse("sip:[1:2:3:4:5:6:1.2.3.4]", &u), 0);
  /* malformed references */
  CHECK_INT(parse("sip:[2001:db8::10", &u), SIP_EURI);
  CHECK_INT(parse("sip:[]", &u), SIP_EURI);
  CHECK_INT(parse("sip:[:]", &u), SIP_EURI);
  CHECK_INT(parse("sip:[1:2:3:4:5:6:7]", &u), SIP_EURI);
  CHECK_INT(parse("sip:[1:2:3:4:5:6:7:8:9]", &u), SIP_EURI);
  CHECK_INT(parse("sip:[1::2::3]", &u), SIP_EURI);
  CHECK_INT(parse("sip:[12345::1]", &u), SIP_EURI);
  CHECK_INT(parse("sip:[1:2:3:4:5:6:7:1.2.3.4]", &u), SIP_EURI);
  CHECK_INT(parse("sip:[::ffff:192.0.2.256]", &u), SIP_EURI);
  CHECK_INT(parse("sip:[2001:db8::g]", &u), SIP_EURI);
  CHECK_INT(parse("sip:[2001:db8::1:]", &u), SIP_EURI);
  CHECK_INT(parse("sip:[:1::2]", &u), SIP_EURI);
  CHECK_INT(parse("sip:[2001:db8:::1]", &u), SIP_EURI);
  CHECK_INT(parse("sip:[::1]x", &u), SIP_EURI);
  CHECK_INT(parse("sip:[::1]:", &u), SIP_EURI);
}

static void test_tel(void) {
  sip_uri u;
  CHECK_INT(parse("tel:+1-201-555-0123", &u), 0);
  CHECK_INT(u.kind, SIP_URI_TEL);
  CHECK_STR(u.scheme, "tel");
  CHECK_STR(u.user, "+1-201-555-0123");
  CHECK(u.user_dec.p == u.user.p);
  ABSENT(u.host);
  CHECK_INT(u.host_type, SIP_HOST_NONE);
  CHECK_INT(u.has_port, 0);
  ABSENT(u.params_raw);

  CHECK_INT(parse("TEL:7042;phone-context=example.com;ext=12", &u), 0);
  CHECK_INT(u.kind, SIP_URI_TEL);
  CHECK_STR(u.user, "7042");
  CHECK_STR(u.params_raw, ";phone-context=example.com;ext=12");
  CHECK_INT(u.params.n, 2);
  CHECK_STR(u.params.v[0].name, "phone-context");
  CHECK_STR(u.params.v[0].dec, "example.com");
  CHECK_STR(u.params.v[1].dec, "12");

  CHECK_INT(parse("tel:+1(201)555.0123;isub=1411;postd=pp22", &u), 0);
  CHECK_STR(u.user, "+1(201)555.0123");
  CHECK_INT(parse("tel:*21#;phone-context=+1-555", &u), 0);
  CHECK_STR(u.user, "*21#");
  CHECK_INT(parse("tel:%2321;phone-context=+1", &u), 0);
  CHECK_STR(u.user_dec, "#21");

  CHECK_INT(parse("tel:", &u), SIP_EURI);
  CHECK_INT(parse("tel:+", &u), SIP_EURI);
  CHECK_INT(parse("tel:+1-a", &u), SIP_EURI);
  CHECK_INT(parse("tel:+12 34", &u), SIP_EURI);
  CHECK_INT(parse("tel:+1234?x=y", &u), SIP_EURI);
  CHECK_INT(parse("tel:+1234;", &u), SIP_EURI);
  CHECK_INT(parse("tel:;x=1", &u), SIP_EURI);
}

static void test_errors(void) {
  sip_uri u;
  CHECK_INT(sip_uri_parse(&arena, NULL, 0, &u), SIP_EURI);
  CHECK_INT(parse_n("x", 0, &u), SIP_EURI);
  CHECK_INT(parse("sip:", &u), SIP_EURI);
  CHECK_INT(parse("sip", &u), SIP_EURI);
  CHECK_INT(parse("user@example.com", &u), SIP_EURI);
  CHECK_INT(parse(":foo", &u), SIP_EURI);
  CHECK_INT(parse("1sip:foo", &u), SIP_EURI);
  CHECK_INT(parse("si_p:foo", &u), SIP_EURI);
  CHECK_INT(parse("foo:", &u), SIP_EURI);
  CHECK_INT(parse("foo:a b", &u), SIP_EURI);
  CHECK_INT(parse("foo:a<b", &u), SIP_EURI);
  CHECK_INT(parse("foo:a>", &u), SIP_EURI);
  CHECK_INT(parse("foo:\"a\"", &u), SIP_EURI);
  CHECK_INT(parse("foo:a\tb", &u), SIP_EURI);
  CHECK_INT(parse("foo:a\x7f", &u), SIP_EURI);
  CHECK_INT(parse(" sip:host", &u), SIP_EURI);
  CHECK_INT(parse("sip:host ", &u), SIP_EURI);
  CHECK_INT(parse("sip:us er@host", &u), SIP_EURI);
  CHECK_INT(parse("sip:user@ho st", &u), SIP_EURI);
  CHECK_INT(parse("sip:user@host;a=b c", &u), SIP_EURI);
  CHECK_INT(parse("sip:user@host\r\n", &u), SIP_EURI);
  CHECK_INT(parse("sip:user@host>", &u), SIP_EURI);
  CHECK_INT(parse("sip:user\"@host", &u), SIP_EURI);
  CHECK_INT(parse_n("sip:user@host\0", 14, &u), SIP_EURI);
  CHECK_INT(parse_n("sip:us\0er@host", 14, &u), SIP_EURI);
  /* bad hosts */
  CHECK_INT(parse("sip:user@", &u), SIP_EURI);
  CHECK_INT(parse("sip:@host", &u), SIP_EURI);
  CHECK_INT(parse("sip::pw@host", &u), SIP_EURI);
  CHECK_INT(parse("sip:user@host_name", &u), SIP_EURI);
  CHECK_INT(parse("sip:user@exa..mple.com", &u), SIP_EURI);
  CHECK_INT(parse("sip:user@.example.com", &u), SIP_EURI);
  CHECK_INT(parse("sip:user@-example.com", &u), SIP_EURI);
  CHECK_INT(parse("sip:user@example-.com", &u), SIP_EURI);
  CHECK_INT(parse("sip:user@example.com-", &u), SIP_EURI);
  CHECK_INT(parse("sip:user@.", &u), SIP_EURI);
  CHECK_INT(parse("sip:user@192.0.2.256", &u), SIP_EURI);
  CHECK_INT(parse("sip:user@192.0.2", &u), SIP_EURI);
  CHECK_INT(parse("sip:user@192.0.2.1.5", &u), SIP_EURI);
  CHECK_INT(parse("sip:user@192.0.2.1.", &u), SIP_EURI);
  CHECK_INT(parse("sip:user@0192.0.2.1", &u), SIP_EURI);
  CHECK_INT(parse("sip:user@12345", &u), SIP_EURI);
  CHECK_INT(parse("sip:user@host/path", &u), SIP_EURI);
  CHECK_INT(parse("sip:user@host@", &u), SIP_EURI);
  CHECK_INT(parse("sip:[::1]@host", &u), SIP_EURI);
  /* ports */
  CHECK_INT(parse("sip:host:65536", &u), SIP_ERANGE);
  CHECK_INT(parse("sip:host:99999999999999999999999", &u), SIP_ERANGE);
  CHECK_INT(parse("sip:[::1]:70000", &u), SIP_ERANGE);
  CHECK_INT(parse("sip:host:", &u), SIP_EURI);
  CHECK_INT(parse("sip:host:50a", &u), SIP_EURI);
  CHECK_INT(parse("sip:host:-1", &u), SIP_EURI);
  CHECK_INT(parse("sip:host:5060:5060", &u), SIP_EURI);
  /* params and headers */
  CHECK_INT(parse("sip:host;", &u), SIP_EURI);
  CHECK_INT(parse("sip:host;;lr", &u), SIP_EURI);
  CHECK_INT(parse("sip:host;=x", &u), SIP_EURI);
  CHECK_INT(parse("sip:host;a=b=c", &u), SIP_EURI);
  CHECK_INT(parse("sip:host;a,b", &u), SIP_EURI);
  CHECK_INT(parse("sip:host?", &u), SIP_EURI);
  CHECK_INT(parse("sip:host?a", &u), SIP_EURI);
  CHECK_INT(parse("sip:host?=a", &u), SIP_EURI);
  CHECK_INT(parse("sip:host?a=b&", &u), SIP_EURI);
  CHECK_INT(parse("sip:host?a=b&&c=d", &u), SIP_EURI);
  CHECK_INT(parse("sip:host?a=b;c", &u), SIP_EURI);
  CHECK_INT(parse("sip:host?a=b?c", &u), 0); /* '?' is an hnv char */
  CHECK_INT(parse("sip:host?a=b=c", &u), SIP_EURI);
  CHECK_INT(parse("sip:host;p=\xc3\xa9", &u), SIP_EURI);
  CHECK_INT(parse("sip:us\xc3\xa9r@host", &u), SIP_EURI);
}

static void test_userinfo(void) {
  sip_uri u;
  /* the userinfo ends at the last '@' */
  CHECK_INT(parse("sip:a@b@host", &u), 0);
  CHECK_STR(u.user, "a@b");
  CHECK_STR(u.host, "host");
  /* with no '@' there is no user, even with user-like characters */
  CHECK_INT(parse("sip:host;user=phone?x=y", &u), 0);
  ABSENT(u.user);
  CHECK_STR(u.host, "host");
  /* ':' and ';' in the user part */
  CHECK_INT(parse("sip:+1-555;isub=12:pw@gw.example.com;user=phone", &u), 0);
  CHECK_STR(u.user, "+1-555;isub=12");
  CHECK_STR(u.password, "pw");
  CHECK_STR(u.user_param, "phone");
  /* escaped password */
  CHECK_INT(parse("sip:u:p%40ss@h", &u), 0);
  CHECK_STR(u.password, "p%40ss");
  CHECK_STR(u.password_dec, "p@ss");
  /* password characters are narrower than user characters */
  CHECK_INT(parse("sip:u:p;w@h", &u), SIP_EURI);
  CHECK_INT(parse("sip:u:p:w@h", &u), SIP_EURI);
  /* a '%' that starts no escape is kept as is, and the slice is not copied */
  CHECK_INT(parse("sip:100%@h;a=%zz", &u), 0);
  CHECK_STR(u.user_dec, "100%");
  CHECK(u.user_dec.p == u.user.p);
  CHECK_STR(u.params.v[0].dec, "%zz");
  /* only the letters l/L r/R make lr, whatever the byte decodes to */
  CHECK_INT(parse("sip:h;%4C%52", &u), 0);
  CHECK_INT(u.lr, 1);
  CHECK_INT(parse("sip:h;%0Cr;%4C%12", &u), 0);
  CHECK_INT(u.lr, 0);
  CHECK(u.params.v[0].dec.p == u.params.v[0].value.p);
}

static void test_unescape(void) {
  char buf[64];
  size_t n = sip_unescape(buf, "a%41%4a%4A%zz%4%", 16);
  CHECK_INT(n, 10);
  CHECK(memcmp(buf, "aAJJ%zz%4%", 10) == 0);
  CHECK_INT(sip_unescape(buf, "%2541", 5), 3);
  CHECK(memcmp(buf, "%41", 3) == 0);
  CHECK_INT(sip_unescape(buf, "%00x%FF", 7), 3);
  CHECK(buf[0] == 0 && buf[1] == 'x' && (unsigned char)buf[2] == 0xff);
  CHECK_INT(sip_unescape(buf, "", 0), 0);
  /* stops at len: "%4" at the end is not an escape even if memory follows */
  CHECK_INT(sip_unescape(buf, "%41", 2), 2);
  CHECK(memcmp(buf, "%4", 2) == 0);
  /* in place */
  char ip[] = "x%20y";
  CHECK_INT(sip_unescape(ip, ip, 5), 3);
  CHECK(memcmp(ip, "x y", 3) == 0);
}

/* The Request-URI of every request in the RFC 4475 / 5118 vectors, read from
 * the files ($LUASIP_VECTORS, else the repository's spec/vectors, as the
 * other vector tests do); only the four whose Request-URI is itself bad fail.
 */
static const struct {
  const char *file;
  int want;
} vectors[] = {
    {"rfc4475/badaspec.dat", 0},
    {"rfc4475/badbranch.dat", 0},
    {"rfc4475/baddate.dat", 0},
    {"rfc4475/baddn.dat", 0},
    {"rfc4475/badinv01.dat", 0},
    {"rfc4475/badvers.dat", 0},
    {"rfc4475/bext01.dat", 0},
    {"rfc4475/clerr.dat", 0},
    {"rfc4475/cparam01.dat", 0},
    {"rfc4475/cparam02.dat", 0},
    {"rfc4475/dblreq.dat", 0},
    {"rfc4475/esc01.dat", 0},
    {"rfc4475/esc02.dat", 0},
    {"rfc4475/escnull.dat", 0},
    {"rfc4475/escruri.dat", 0},
    {"rfc4475/insuf.dat", 0},
    {"rfc4475/intmeth.dat", 0},
    {"rfc4475/inv2543.dat", 0},
    {"rfc4475/invut.dat", 0},
    {"rfc4475/longreq.dat", 0},
    {"rfc4475/ltgtruri.dat", SIP_EURI},
    {"rfc4475/lwsdisp.dat", 0},
    {"rfc4475/lwsruri.dat", SIP_EURI},
    {"rfc4475/lwsstart.dat", SIP_EURI},
    {"rfc4475/mcl01.dat", 0},
    {"rfc4475/mismatch01.dat", 0},
    {"rfc4475/mismatch02.dat", 0},
    {"rfc4475/mpart01.dat", 0},
    {"rfc4475/multi01.dat", 0},
    {"rfc4475/ncl.dat", 0},
    {"rfc4475/novelsc.dat", 0},
    {"rfc4475/quotbal.dat", 0},
    {"rfc4475/regaut01.dat", 0},
    {"rfc4475/regbadct.dat", 0},
    {"rfc4475/regescrt.dat", 0},
    {"rfc4475/scalar02.dat", 0},
    {"rfc4475/sdp01.dat", 0},
    {"rfc4475/semiuri.dat", 0},
    {"rfc4475/transports.dat", 0},
    {"rfc4475/trws.dat", 0},
    {"rfc4475/unkscm.dat", 0},
    {"rfc4475/unksm2.dat", 0},
    {"rfc4475/wsinv.dat", 0},
    {"rfc4475/zeromf.dat", 0},
    {"rfc5118/ipv4-mapped-ipv6.dat", 0},
    {"rfc5118/ipv6-bad.dat", SIP_EURI},
    {"rfc5118/ipv6-bug-abnf-3-colons.dat", 0},
    {"rfc5118/ipv6-correct-abnf-2-colons.dat", 0},
    {"rfc5118/ipv6-good.dat", 0},
    {"rfc5118/ipv6-in-sdp.dat", 0},
    {"rfc5118/mult-ip-in-header.dat", 0},
    {"rfc5118/mult-ip-in-sdp.dat", 0},
    {"rfc5118/port-ambiguous.dat", 0},
    {"rfc5118/port-unambiguous.dat", 0},
    {"rfc5118/via-received-param-no-delim.dat", 0},
    {"rfc5118/via-received-param-with-delim.dat", 0},
};

static FILE *open_vector(const char *dir, const char *file) {
  char path[1024];
  snprintf(path, sizeof path, "%s/%s", dir, file);
  return fopen(path, "rb");
}

static void test_vectors(void) {
  const char *dirs[] = {getenv("LUASIP_VECTORS"), "spec/vectors"};
  const char *dir = NULL;
  for (size_t i = 0; i < sizeof dirs / sizeof dirs[0] && !dir; i++) {
    FILE *f = dirs[i] ? open_vector(dirs[i], vectors[0].file) : NULL;
    if (f) {
      fclose(f);
      dir = dirs[i];
    }
  }
  if (!dir) {
    CHECK_MSG(0, "vectors not found ($LUASIP_VECTORS, spec/vectors)");
    return;
  }
  for (size_t i = 0; i < sizeof vectors / sizeof vectors[0]; i++) {
    FILE *f = open_vector(dir, vectors[i].file);
    char line[1024];
    int ok = f && fgets(line, sizeof line, f);
    if (f)
      fclose(f);
    CHECK_MSG(ok, "cannot read %s/%s", dir, vectors[i].file);
    if (!ok)
      continue;
    /* METHOD SP Request-URI SP SIP-Version: the URI is what lies between the
     * first SP and the last " SIP/" */
    char *sp = strchr(line, ' '), *ver = NULL;
    for (char *p = line; (p = strstr(p, " SIP/")) != NULL; p++)
      ver = p;
    CHECK_MSG(sp && ver && ver >= sp, "%s: no request line", vectors[i].file);
    if (!sp || !ver || ver < sp)
      continue;
    sip_uri u;
    int rc = parse_n(sp + 1, (size_t)(ver - sp - 1), &u);
    CHECK_MSG(rc == vectors[i].want, "%s: '%.*s' gave %d, want %d",
              vectors[i].file, (int)(ver - sp - 1), sp + 1, rc,
              vectors[i].want);
  }
}

static int eq(const char *x, const char *y) {
  sip_uri a, b;
  if (parse(x, &a) || parse(y, &b)) {
    fprintf(stderr, "parse failed: %s / %s\n", x, y);
    return -1;
  }
  int r1 = sip_uri_equal(&a, &b), r2 = sip_uri_equal(&b, &a);
  if (r1 != r2) {
    fprintf(stderr, "not symmetric: %s / %s\n", x, y);
    return -1;
  }
  return r1;
}

#define EQ(x, y) CHECK_MSG(eq(x, y) == 1, "%s == %s", x, y)
#define NE(x, y) CHECK_MSG(eq(x, y) == 0, "%s != %s", x, y)

static void test_equal(void) {
  /* RFC 3261 §19.1.4: equivalent */
  EQ("sip:%61lice@atlanta.com;transport=TCP",
     "sip:alice@AtLanTa.CoM;Transport=tcp");
  EQ("sip:carol@chicago.com", "sip:carol@chicago.com;newparam=5");
  EQ("sip:carol@chicago.com", "sip:carol@chicago.com;security=on");
  EQ("sip:carol@chicago.com;newparam=5", "sip:carol@chicago.com;security=on");
  EQ("sip:biloxi.com;transport=tcp;method=REGISTER?to=sip:bob%40biloxi.com",
     "sip:biloxi.com;method=REGISTER;transport=tcp?to=sip:bob%40biloxi.com");
  EQ("sip:alice@atlanta.com?subject=project%20x&priority=urgent",
     "sip:alice@atlanta.com?priority=urgent&subject=project%20x");
  /* RFC 3261 §19.1.4: not equivalent */
  NE("SIP:ALICE@AtLanTa.CoM;Transport=udp",
     "sip:alice@AtLanTa.CoM;Transport=UDP");
  NE("sip:bob@biloxi.com", "sip:bob@biloxi.com:5060");
  NE("sip:bob@biloxi.com", "sip:bob@biloxi.com;transport=udp");
  NE("sip:bob@biloxi.com", "sip:bob@biloxi.com:6000;transport=tcp");
  NE("sip:carol@chicago.com", "sip:carol@chicago.com?Subject=next%20meeting");
  NE("sip:bob@phone21.boxesbybob.com", "sip:bob@192.0.2.4");
  /* "equality is not transitive" */
  NE("sip:carol@chicago.com;security=on", "sip:carol@chicago.com;security=off");

  /* more of the rules */
  NE("sip:alice@atlanta.com", "sips:alice@atlanta.com");
  EQ("SIP:alice@atlanta.com", "sip:alice@ATLANTA.com");
  EQ("sip:alice@atlanta.com:5060", "sip:alice@atlanta.com:5060");
  EQ("sip:alice@atlanta.com:05060", "sip:alice@atlanta.com:5060");
  NE("sip:alice@atlanta.com:5060", "sip:alice@atlanta.com:5061");
  NE("sip:alice@atlanta.com", "sip:atlanta.com");
  NE("sip:alice:pw@atlanta.com", "sip:alice@atlanta.com");
  NE("sip:alice:pw@atlanta.com", "sip:alice:PW@atlanta.com");
  EQ("sip:alice:p%77@atlanta.com", "sip:alice:pw@atlanta.com");
  NE("sip:alice:@atlanta.com", "sip:alice@atlanta.com");
  EQ("sip:a%3bb@h", "sip:a;b@h");
  NE("sip:h;user=phone", "sip:h");
  NE("sip:h;user=phone", "sip:h;user=ip");
  EQ("sip:h;user=phone", "sip:h;USER=PHONE");
  NE("sip:h;ttl=1", "sip:h");
  NE("sip:h;method=INVITE", "sip:h");
  NE("sip:h;maddr=239.1.1.1", "sip:h");
  NE("sip:h;maddr=239.1.1.1", "sip:h;maddr=239.1.1.2");
  EQ("sip:h;maddr=239.1.1.1;x=1", "sip:h;y=2;maddr=239.1.1.1");
  EQ("sip:h;lr", "sip:h");
  EQ("sip:h;lr", "sip:h;LR");
  EQ("sip:h;x=%41", "sip:h;X=a");
  NE("sip:h;x", "sip:h;x=1");
  EQ("sip:h;%78=1", "sip:h;x=1");
  /* repeated names: the first one counts, and a URI equals itself */
  EQ("sip:h;x=1;x=2", "sip:h;x=1;x=2");
  EQ("sip:h;x=1;x=2", "sip:h;x=1");
  NE("sip:h;x=2;x=1", "sip:h;x=1");
  /* headers: names case-insensitive, values case-sensitive */
  EQ("sip:h?Subject=a", "sip:h?subject=a");
  NE("sip:h?subject=a", "sip:h?subject=A");
  NE("sip:h?a=1", "sip:h?a=1&b=2");
  EQ("sip:h?a=%31", "sip:h?a=1");
  EQ("sip:[2001:DB8::1]:5060", "sip:[2001:db8::1]:5060");
  /* other schemes: scheme case-insensitive, the rest exact */
  EQ("HTTP://www.example.com", "http://www.example.com");
  NE("http://www.example.com", "http://WWW.example.com");
  NE("http://a", "isbn:a");
  NE("sip:a", "tel:+1");
  EQ("tel:+1-555;ext=1", "TEL:+1-555;ext=1");
  NE("tel:+1-555", "tel:+1555");
  /* NUL bytes compare as bytes */
  NE("sip:%00@h", "sip:%00%00@h");
  EQ("sip:a%00b@h", "sip:a%00b@h");
  NE("sip:a%00b@h", "sip:a%00c@h");
}

static void test_arena_growth(void) {
  /* no inline first block: every allocation comes from malloc'd chunks */
  sip_arena a;
  sip_arena_init(&a, NULL, 0);
  sip_uri u;
  const char *s = "sip:%61@h;%62=%63?%64=%65";
  CHECK_INT(sip_uri_parse(&a, dup_exact(s, strlen(s)), strlen(s), &u), 0);
  CHECK_STR(u.user_dec, "a");
  CHECK_STR(u.params.v[0].name, "b");
  CHECK_STR(u.params.v[0].dec, "c");
  CHECK_STR(u.headers.v[0].name, "d");
  CHECK_STR(u.headers.v[0].dec, "e");
  sip_arena_free(&a);
}

int main(void) {
  static char first[4096];
  sip_arena_init(&arena, first, sizeof first);
  test_typical();
  test_rfc4475();
  test_ipv6();
  test_tel();
  test_errors();
  test_userinfo();
  test_unescape();
  test_equal();
  test_vectors();
  test_arena_growth();
  sip_arena_free(&arena);
  for (int i = 0; i < ncopies; i++)
    free(copies[i]);
  return check_summary("test_uri");
}
