/* Header field grammars (sip_fields.h) against values taken from the RFC 4475
 * and RFC 5118 torture messages (folds kept as \r\n) and everyday ones. */
#define _DEFAULT_SOURCE /* mmap, MAP_ANONYMOUS */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../parse/sip_fields.h"
#include "../parse/sip_scan.h"
#include "check.h"

/* A copy of [p, p+len) that ends exactly where an inaccessible page begins,
 * so reading one byte past a slice crashes instead of passing silently.
 * Never unmapped: results keep pointing into it until the program ends. */
static const char *guarded(const char *p, size_t len) {
  size_t pg = (size_t)sysconf(_SC_PAGESIZE);
  size_t n = len ? (len + pg - 1) / pg * pg : pg;
  char *m = mmap(NULL, n + pg, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED || mprotect(m + n, pg, PROT_NONE) != 0)
    abort();
  char *dst = m + n - len;
  if (len)
    memcpy(dst, p, len);
  return dst;
}

/* A string literal as a guarded pointer + length (embedded NULs survive). */
#define S(lit) guarded((lit), sizeof(lit) - 1), (sizeof(lit) - 1)

/* A slice equals a byte array (may contain NUL). */
#define CHECK_MEM(slice, lit)                                                  \
  CHECK((slice).p != NULL && (slice).len == sizeof(lit) - 1 &&                 \
        memcmp((slice).p, (lit), sizeof(lit) - 1) == 0)

#define CHECK_ABSENT(slice) CHECK((slice).p == NULL && (slice).len == 0)

static sip_arena arena;

static const sip_param *param(const sip_params *ps, const char *name) {
  return sip_params_get(ps, name);
}

/* ---- sip_split_next ------------------------------------------------------ */

static void test_split(void) {
  sip_str rest = {S("a, \"b,\\\"c\" ,\r\n <sip:x,y@h>;p=1 ,, last")}, it;
  CHECK_INT(sip_split_next(&rest, &it), 1);
  CHECK_STR(it, "a");
  CHECK_INT(sip_split_next(&rest, &it), 1);
  CHECK_STR(it, "\"b,\\\"c\"");
  CHECK_INT(sip_split_next(&rest, &it), 1);
  CHECK_STR(it, "<sip:x,y@h>;p=1");
  CHECK_INT(sip_split_next(&rest, &it), 1);
  CHECK(it.p != NULL && it.len == 0); /* empty item between ",," */
  CHECK_INT(sip_split_next(&rest, &it), 1);
  CHECK_STR(it, "last");
  CHECK_INT(sip_split_next(&rest, &it), 0);
  CHECK_INT(sip_split_next(&rest, &it), 0);

  /* a trailing comma yields a final empty item */
  rest = (sip_str){S("x,")};
  CHECK_INT(sip_split_next(&rest, &it), 1);
  CHECK_STR(it, "x");
  CHECK_INT(sip_split_next(&rest, &it), 1);
  CHECK(it.p != NULL && it.len == 0);
  CHECK_INT(sip_split_next(&rest, &it), 0);

  /* wsinv's unknown header value: opaque, splits without error */
  rest = (sip_str){S(";;,,;;,;")};
  int n = 0, r;
  while ((r = sip_split_next(&rest, &it)) == 1)
    n++;
  CHECK_INT(r, 0);
  CHECK_INT(n, 4);

  rest = (sip_str){S("a, \"open, b")};
  CHECK_INT(sip_split_next(&rest, &it), 1);
  CHECK_INT(sip_split_next(&rest, &it), SIP_EQUOTE);
  rest = (sip_str){S("<sip:a@b, c")};
  CHECK_INT(sip_split_next(&rest, &it), SIP_EVALUE);
  rest = SIP_STR_NULL;
  CHECK_INT(sip_split_next(&rest, &it), 0);
}

/* ---- sip_unquote -------------------------------------------------------- */

static void test_unquote(void) {
  sip_str in = {S("\"a\\\\b\\\"c\"")}, out;
  CHECK_INT(sip_unquote(&arena, in, &out), 0);
  CHECK_STR(out, "a\\b\"c");
  in = (sip_str){S("\"plain text\"")};
  CHECK_INT(sip_unquote(&arena, in, &out), 0);
  CHECK_STR(out, "plain text");
  CHECK(out.p == in.p + 1); /* no quoted-pair: no copy */
  in = (sip_str){S("token")};
  CHECK_INT(sip_unquote(&arena, in, &out), 0);
  CHECK(out.p == in.p && out.len == in.len);
  in = (sip_str){S("\"\"")};
  CHECK_INT(sip_unquote(&arena, in, &out), 0);
  CHECK(out.p != NULL && out.len == 0);
  in = (sip_str){S("\"open")};
  CHECK_INT(sip_unquote(&arena, in, &out), SIP_EQUOTE);
  in = (sip_str){S("\"ab\"c")};
  CHECK_INT(sip_unquote(&arena, in, &out), SIP_EQUOTE);
  in = (sip_str){S("\"ends in pair\\\"")};
  CHECK_INT(sip_unquote(&arena, in, &out), SIP_EQUOTE);
}

/* ---- sip_params_parse --------------------------------------------------- */

static void test_params(void) {
  sip_params ps;
  /* wsinv Contact's parameters: LWS and folds around ';' and '=' */
  CHECK_INT(sip_params_parse(&arena,
                             S(" ; newparam =\r\n      newvalue ;\r\n"
                               "  secondparam ; q = 0.33"),
                             &ps),
            0);
  CHECK_INT(ps.n, 3);
  CHECK_STR(ps.v[0].name, "newparam");
  CHECK_STR(ps.v[0].value, "newvalue");
  CHECK(ps.v[0].dec.p == ps.v[0].value.p);
  CHECK_STR(ps.v[1].name, "secondparam");
  CHECK_ABSENT(ps.v[1].value);
  CHECK_ABSENT(ps.v[1].dec);
  CHECK_STR(ps.v[2].name, "q");
  CHECK_STR(ps.v[2].value, "0.33");

  /* quoted values: value keeps the quotes, dec is unquoted */
  CHECK_INT(sip_params_parse(&arena,
                             S(";a=\"x;y\\\"z\";B=\"\";c=tok;"
                               "+sip.instance=\"<urn:uuid:1234>\""),
                             &ps),
            0);
  CHECK_INT(ps.n, 4);
  CHECK_STR(ps.v[0].value, "\"x;y\\\"z\"");
  CHECK_STR(ps.v[0].dec, "x;y\"z");
  CHECK_STR(ps.v[1].value, "\"\"");
  CHECK(ps.v[1].dec.p != NULL && ps.v[1].dec.len == 0);
  CHECK(param(&ps, "b") == &ps.v[1]); /* names are case-insensitive */
  CHECK_STR(param(&ps, "+sip.instance")->dec, "<urn:uuid:1234>");

  /* RFC 5118 §4.5: bare and bracketed IPv6 received values */
  CHECK_INT(sip_params_parse(
                &arena, S(";received=2001:db8::9:255;branch=z9hG4bKas3"), &ps),
            0);
  CHECK_INT(ps.n, 2);
  CHECK_STR(ps.v[0].dec, "2001:db8::9:255");
  CHECK_STR(ps.v[1].dec, "z9hG4bKas3");
  CHECK_INT(
      sip_params_parse(
          &arena, S(";received=[2001:db8::9:255];branch=z9hG4bKas3-111"), &ps),
      0);
  CHECK_STR(ps.v[0].dec, "[2001:db8::9:255]");

  /* intmeth: a parameter name using all token punctuation, UTF-8 value */
  CHECK_INT(
      sip_params_parse(
          &arena,
          S(";fromParam''~+*_!.-%=\"\xd1\x80\xd0\xb0\";tag=_token~1'+`*%!-."),
          &ps),
      0);
  CHECK_INT(ps.n, 2);
  CHECK_STR(ps.v[0].name, "fromParam''~+*_!.-%");
  CHECK_STR(ps.v[0].dec, "\xd1\x80\xd0\xb0");
  CHECK_STR(ps.v[1].dec, "_token~1'+`*%!-.");

  /* nothing at all is zero parameters */
  CHECK_INT(sip_params_parse(&arena, S("  "), &ps), 0);
  CHECK_INT(ps.n, 0);

  /* errors */
  CHECK_INT(sip_params_parse(&arena, S(";;"), &ps), SIP_EPARAM);
  CHECK_INT(sip_params_parse(&arena, S(";;;;"), &ps), SIP_EPARAM);
  CHECK_INT(sip_params_parse(&arena, S(";a;;b"), &ps), SIP_EPARAM);
  CHECK_INT(sip_params_parse(&arena, S(";a;"), &ps), SIP_EPARAM);
  CHECK_INT(sip_params_parse(&arena, S(";a="), &ps), SIP_EPARAM);
  CHECK_INT(sip_params_parse(&arena, S(";a=;b"), &ps), SIP_EPARAM);
  CHECK_INT(sip_params_parse(&arena, S(";a=b c"), &ps), SIP_EPARAM);
  CHECK_INT(sip_params_parse(&arena, S(";a=b,c"), &ps), SIP_EPARAM);
  CHECK_INT(sip_params_parse(&arena, S("a=b"), &ps), SIP_EPARAM);
  CHECK_INT(sip_params_parse(&arena, S(";a=\"open"), &ps), SIP_EQUOTE);
  CHECK_INT(sip_params_parse(&arena, S(";=b"), &ps), SIP_EPARAM);
}

/* ---- sip_addr_parse / sip_addr_list_parse ------------------------------- */

static int addr(const char *p, size_t len, unsigned flags, sip_addr *a) {
  return sip_addr_parse(&arena, p, len, flags, a);
}

static void test_addr_rfc4475(void) {
  sip_addr a;

  /* wsinv To: addr-spec, LWS before ';' and around '=' */
  CHECK_INT(
      addr(S("sip:vivekg@chair-dnrc.example.com ;   tag    = 1918181833n"), 0,
           &a),
      0);
  CHECK_INT(a.angle, 0);
  CHECK_ABSENT(a.display);
  CHECK_STR(a.uri.raw, "sip:vivekg@chair-dnrc.example.com");
  CHECK_STR(a.uri.user, "vivekg");
  CHECK_STR(a.uri.host, "chair-dnrc.example.com");
  CHECK_STR(a.tag, "1918181833n");
  CHECK_STR(a.params_raw, ";   tag    = 1918181833n");
  CHECK_INT(a.q, -1);
  CHECK_INT(a.expires, -1);

  /* wsinv From: quoted-pairs in the display name, params folded */
  CHECK_INT(
      addr(S("\"J Rosenberg \\\\\\\"\"       <sip:jdrosen@example.com>\r\n"
             "  ;\r\n  tag = 98asjd8"),
           0, &a),
      0);
  CHECK_STR(a.display, "\"J Rosenberg \\\\\\\"\"");
  CHECK_STR(a.display_dec, "J Rosenberg \\\"");
  CHECK_INT(a.angle, 1);
  CHECK_STR(a.uri.raw, "sip:jdrosen@example.com");
  CHECK_STR(a.tag, "98asjd8");

  /* wsinv Contact (m:) */
  CHECK_INT(
      addr(S("\"Quoted string \\\"\\\"\" <sip:jdrosen@example.com> ; "
             "newparam =\r\n      newvalue ;\r\n  secondparam ; q = 0.33"),
           SIP_ADDR_ALLOW_STAR, &a),
      0);
  CHECK_STR(a.display_dec, "Quoted string \"\"");
  CHECK_INT(a.params.n, 3);
  CHECK_STR(param(&a.params, "newparam")->dec, "newvalue");
  CHECK(param(&a.params, "secondparam") != NULL);
  CHECK_INT(a.q, 330);
  CHECK_ABSENT(a.tag);

  /* wsinv Route (folded before the value): URI params stay in the URI */
  CHECK_INT(addr(S("\r\n <sip:services.example.com;lr;unknownwith=value;"
                   "unknown-no-value>"),
                 0, &a),
            0);
  CHECK_INT(a.uri.lr, 1);
  CHECK_INT(a.uri.params.n, 3);
  CHECK_INT(a.params.n, 0);
  CHECK_ABSENT(a.params_raw);

  /* intmeth To: raw BEL, NUL and DEL through quoted-pairs; a URI user part
   * with ',', '?' and ';' inside the brackets */
  CHECK_INT(addr(S("\"BEL:\\\x07 NUL:\\\x00 DEL:\\\x7f\" <sip:1_unusual.URI~"
                   "(to-be!sure)&isn't+it$/crazy?,/;;*@example.com>"),
                 0, &a),
            0);
  CHECK_MEM(a.display_dec, "BEL:\x07 NUL:\x00 DEL:\x7f");
  CHECK_STR(a.uri.host, "example.com");
  CHECK_STR(a.uri.user, "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*");

  /* intmeth From: token display name with token punctuation */
  CHECK_INT(addr(S("token1~` token2'+_ token3*%!.- <sip:mundane@example.com>;"
                   "fromParam''~+*_!.-%=\"\xd1\x80\xd0\xb0\xd0\xb1\xd0\xbe\xd1"
                   "\x82\xd0\xb0\xd1\x8e\xd1\x89\xd0\xb8\xd0\xb9\";"
                   "tag=_token~1'+`*%!-."),
                 0, &a),
            0);
  CHECK_STR(a.display, "token1~` token2'+_ token3*%!.-");
  CHECK_STR(a.display_dec, "token1~` token2'+_ token3*%!.-");
  CHECK_STR(a.uri.user, "mundane");
  CHECK_INT(a.params.n, 2);
  CHECK_STR(a.tag, "_token~1'+`*%!-.");

  /* lwsdisp: no LWS between the token display name and '<' */
  CHECK_INT(addr(S("caller<sip:caller@example.com>;tag=323"), 0, &a), 0);
  CHECK_STR(a.display, "caller");
  CHECK_STR(a.uri.raw, "sip:caller@example.com");
  CHECK_STR(a.tag, "323");

  /* cparam01: params after a bare addr-spec are header params */
  CHECK_INT(addr(S("sip:+19725552222@gw1.example.net;unknownparam"),
                 SIP_ADDR_ALLOW_STAR, &a),
            0);
  CHECK_STR(a.uri.raw, "sip:+19725552222@gw1.example.net");
  CHECK_INT(a.uri.params.n, 0);
  CHECK_ABSENT(a.uri.params_raw);
  CHECK_INT(a.params.n, 1);
  CHECK_STR(a.params.v[0].name, "unknownparam");
  CHECK_ABSENT(a.params.v[0].value);

  /* cparam02: inside <> it is a URI param */
  CHECK_INT(addr(S("<sip:+19725552222@gw1.example.net;unknownparam>"),
                 SIP_ADDR_ALLOW_STAR, &a),
            0);
  CHECK_INT(a.uri.params.n, 1);
  CHECK_STR(a.uri.params.v[0].name, "unknownparam");
  CHECK_INT(a.params.n, 0);

  /* regescrt: escaped header inside <> is fine */
  CHECK_INT(addr(S("<sip:user@example.com?Route=%3Csip:sip.example.com%3E>"),
                 SIP_ADDR_ALLOW_STAR, &a),
            0);
  CHECK_STR(a.uri.headers_raw, "Route=%3Csip:sip.example.com%3E");

  /* unksm2: non-SIP schemes are opaque URIs */
  CHECK_INT(addr(S("isbn:2983792873"), 0, &a), 0);
  CHECK_INT(a.uri.kind, SIP_URI_OTHER);
  CHECK_STR(a.uri.scheme, "isbn");
  CHECK_STR(a.uri.opaque, "2983792873");
  CHECK_INT(addr(S("<http://www.example.com>;tag=3234233"), 0, &a), 0);
  CHECK_INT(a.uri.kind, SIP_URI_OTHER);
  CHECK_STR(a.uri.scheme, "http");
  CHECK_STR(a.tag, "3234233");
  CHECK_INT(addr(S("<name:John_Smith>"), SIP_ADDR_ALLOW_STAR, &a), 0);
  CHECK_INT(a.uri.kind, SIP_URI_OTHER);
  CHECK_STR(a.uri.opaque, "John_Smith");

  /* esc02: '%' in a display name is just a character */
  CHECK_INT(
      addr(S("\"%Z%45\" <sip:resource@example.com>;tag=f232jadfj23"), 0, &a),
      0);
  CHECK_STR(a.display_dec, "%Z%45");

  /* escnull: %00 in the user part is decoded, not a terminator */
  CHECK_INT(addr(S("<sip:%00%00@host5.example.com>"), SIP_ADDR_ALLOW_STAR, &a),
            0);
  CHECK_MEM(a.uri.user_dec, "\0\0");

  /* esc01 Contact (folded value) */
  CHECK_INT(addr(S("\r\n  <sip:cal%6Cer@host5.example.net;%6C%72;"
                   "n%61me=v%61lue%25%34%31>"),
                 SIP_ADDR_ALLOW_STAR, &a),
            0);
  CHECK_STR(a.uri.user_dec, "caller");

  /* RFC 5118: IPv6 hosts in Contact */
  CHECK_INT(addr(S("\"Caller\" <sip:caller@[2001:db8::9:1]>"),
                 SIP_ADDR_ALLOW_STAR, &a),
            0);
  CHECK_STR(a.display_dec, "Caller");
  CHECK_STR(a.uri.host, "[2001:db8::9:1]");
  CHECK_INT(a.uri.host_type, SIP_HOST_IPV6);
  CHECK_INT(addr(S("\"T. desk phone\" <sip:ted@[::ffff:192.0.2.2]>"),
                 SIP_ADDR_ALLOW_STAR, &a),
            0);
  CHECK_STR(a.uri.host, "[::ffff:192.0.2.2]");
}

static void test_addr_contact(void) {
  sip_addr a;
  CHECK_INT(addr(S(" * "), SIP_ADDR_ALLOW_STAR, &a), 0);
  CHECK_INT(a.star, 1);
  CHECK_ABSENT(a.uri.raw);
  CHECK(addr(S("*"), 0, &a) < 0); /* only Contact may be "*" */
  CHECK(addr(S("*;q=0.5"), SIP_ADDR_ALLOW_STAR, &a) < 0);

  CHECK_INT(addr(S("<sip:a@b>;q=0"), 0, &a), 0);
  CHECK_INT(a.q, 0);
  CHECK_INT(addr(S("<sip:a@b>;q=0.5"), 0, &a), 0);
  CHECK_INT(a.q, 500);
  CHECK_INT(addr(S("<sip:a@b>;Q=1.000"), 0, &a), 0);
  CHECK_INT(a.q, 1000);
  CHECK_INT(addr(S("<sip:a@b>;q=1"), 0, &a), 0);
  CHECK_INT(a.q, 1000);
  CHECK_INT(addr(S("<sip:a@b>;q=0.001"), 0, &a), 0);
  CHECK_INT(a.q, 1);
  CHECK_INT(addr(S("<sip:a@b>;q=1.5"), 0, &a), SIP_ERANGE);
  CHECK_INT(addr(S("<sip:a@b>;q=1.001"), 0, &a), SIP_ERANGE);
  CHECK_INT(addr(S("<sip:a@b>;q=2"), 0, &a), SIP_ERANGE);
  CHECK_INT(addr(S("<sip:a@b>;q=0.1234"), 0, &a), SIP_EPARAM);
  CHECK_INT(addr(S("<sip:a@b>;q=abc"), 0, &a), SIP_EPARAM);
  CHECK_INT(addr(S("<sip:a@b>;q"), 0, &a), SIP_EPARAM);
  /* qvalue has one integer digit (RFC 3261 §25.1): leading zeros and
   * digit runs are malformed, not read as a number */
  CHECK_INT(addr(S("<sip:a@b>;q=05"), 0, &a), SIP_EPARAM);
  CHECK_INT(addr(S("<sip:a@b>;q=0123"), 0, &a), SIP_EPARAM);
  CHECK_INT(addr(S("<sip:a@b>;q=1000"), 0, &a), SIP_EPARAM);
  CHECK_INT(addr(S("<sip:a@b>;q=01"), 0, &a), SIP_EPARAM);
  CHECK_INT(addr(S("<sip:a@b>;q=00.5"), 0, &a), SIP_EPARAM);
  CHECK_INT(addr(S("<sip:a@b>;q=0001.000"), 0, &a), SIP_EPARAM);
  CHECK_INT(addr(S("<sip:a@b>;q=.5"), 0, &a), SIP_EPARAM);
  CHECK_INT(addr(S("<sip:a@b>;q=0."), 0, &a), 0);
  CHECK_INT(a.q, 0);
  CHECK_INT(addr(S("<sip:a@b>;q=1."), 0, &a), 0);
  CHECK_INT(a.q, 1000);

  CHECK_INT(addr(S("<sip:a@b>;expires=0"), 0, &a), 0);
  CHECK_INT(a.expires, 0);
  CHECK_INT(addr(S("<sip:a@b>;EXPIRES=4294967295"), 0, &a), 0);
  CHECK_INT(a.expires, 4294967295LL);
  CHECK_INT(addr(S("<sip:a@b>;expires=4294967296"), 0, &a), SIP_ERANGE);
  /* scalar02 Contact */
  CHECK_INT(addr(S("<sip:user@host129.example.com>\r\n"
                   "  ;expires=280297596632815"),
                 SIP_ADDR_ALLOW_STAR, &a),
            SIP_ERANGE);
  CHECK_INT(addr(S("<sip:a@b>;expires=soon"), 0, &a), SIP_EPARAM);
  CHECK_INT(addr(S("<sip:a@b>;expires"), 0, &a), SIP_EPARAM);
}

static void test_addr_errors(void) {
  sip_addr a;
  /* badinv01 Contact */
  CHECK_INT(
      addr(S("\"Joe\" <sip:joe@example.org>;;;;"), SIP_ADDR_ALLOW_STAR, &a),
      SIP_EPARAM);
  /* quotbal To */
  CHECK_INT(addr(S("\"Mr. J. User <sip:j.user@example.com>"), 0, &a),
            SIP_EQUOTE);
  /* baddn From / To */
  CHECK_INT(addr(S("Bell, Alexander <sip:a.g.bell@example.com>;tag=43"), 0, &a),
            SIP_EADDR);
  CHECK_INT(addr(S("Watson, Thomas <sip:t.watson@example.org>"), 0, &a),
            SIP_EADDR);
  /* badaspec To */
  CHECK_INT(addr(S("\"Watson, Thomas\" < sip:t.watson@example.org >"), 0, &a),
            SIP_EADDR);
  CHECK_INT(addr(S("<sip:t.watson@example.org >"), 0, &a), SIP_EADDR);
  /* regbadct Contact: '?' needs the name-addr form */
  CHECK_INT(addr(S("sip:user@example.com?Route=%3Csip:sip.example.com%3E"),
                 SIP_ADDR_ALLOW_STAR, &a),
            SIP_EADDR);
  CHECK_INT(addr(S("sip:a,b@example.com"), 0, &a), SIP_EADDR);

  CHECK_INT(addr(S(""), 0, &a), SIP_EADDR);
  CHECK_INT(addr(S("  \r\n "), 0, &a), SIP_EADDR);
  CHECK_INT(addr(S("<sip:a@b"), 0, &a), SIP_EADDR);
  CHECK_INT(addr(S("<>"), 0, &a), SIP_EADDR);
  CHECK_INT(addr(S("\"Joe\" sip:joe@example.org"), 0, &a), SIP_EADDR);
  CHECK_INT(addr(S("<sip:a@b> junk"), 0, &a), SIP_EADDR);
  CHECK_INT(addr(S("sip:a@b junk"), 0, &a), SIP_EADDR);
  CHECK_INT(addr(S("\xd0\x98\xd0\xb2\xd0\xb0\xd0\xbd <sip:a@b>"), 0, &a),
            SIP_EADDR); /* unquoted UTF-8 display name */
  CHECK(addr(S("<sip:2001:db8::10>"), 0, &a) < 0); /* ipv6-bad */
  CHECK(addr(S("Bob"), 0, &a) < 0);
}

static void test_addr_list(void) {
  sip_addr *head = NULL, **tail = &head;
  /* two header lines appended to one list */
  CHECK_INT(sip_addr_list_parse(&arena,
                                S("<sip:a@b>;q=0.5, \"x, <y>\" <sip:c@d>,\r\n"
                                  " sip:e@f;expires=60"),
                                SIP_ADDR_ALLOW_STAR, &tail),
            3);
  CHECK_INT(sip_addr_list_parse(&arena, S("Bob <sips:bob@biloxi.com>"),
                                SIP_ADDR_ALLOW_STAR, &tail),
            1);
  const sip_addr *a = head;
  CHECK(a != NULL);
  if (!a)
    return;
  CHECK_INT(a->q, 500);
  CHECK_STR(a->raw, "<sip:a@b>;q=0.5");
  a = a->next;
  CHECK_STR(a->display_dec, "x, <y>");
  CHECK_STR(a->uri.host, "d");
  a = a->next;
  CHECK_STR(a->uri.raw, "sip:e@f");
  CHECK_INT(a->expires, 60);
  a = a->next;
  CHECK_STR(a->display, "Bob");
  CHECK_INT(a->uri.kind, SIP_URI_SIPS);
  CHECK(a->next == NULL);
  CHECK(tail == &a->next);

  /* a failing value leaves the list as it was */
  sip_addr **before = tail;
  CHECK_INT(sip_addr_list_parse(&arena, S("<sip:g@h>, \"Joe\" <sip:joe@x>;;;;"),
                                SIP_ADDR_ALLOW_STAR, &tail),
            SIP_EPARAM);
  CHECK(tail == before && *tail == NULL);
  CHECK_INT(sip_addr_list_parse(
                &arena, S("\"Mr. J. User <sip:j.user@example.com>"), 0, &tail),
            SIP_EQUOTE);
  CHECK(sip_addr_list_parse(&arena,
                            S("Bell, Alexander <sip:a.g.bell@example.com>"), 0,
                            &tail) < 0);
  CHECK_INT(sip_addr_list_parse(&arena, S("<sip:a@b>,"), 0, &tail), SIP_EADDR);
  CHECK(sip_addr_list_parse(&arena, S("<sip:a@b, <sip:c@d>"), 0, &tail) < 0);
  CHECK_INT(sip_addr_list_parse(&arena, S(""), 0, &tail), SIP_EADDR);
  CHECK(tail == before && *tail == NULL);
}

/* ---- sip_via_list_parse ------------------------------------------------- */

static int via(const char *p, size_t len, sip_via ***tail) {
  return sip_via_list_parse(&arena, p, len, tail);
}

static void test_via(void) {
  sip_via *head = NULL, **tail = &head;

  /* wsinv Via: LWS and folds around '/' and before sent-by */
  CHECK_INT(
      via(S("SIP  /   2.0\r\n /UDP\r\n    192.0.2.2;branch=390skdjuw"), &tail),
      1);
  const sip_via *v = head;
  CHECK_STR(v->protocol, "SIP");
  CHECK_STR(v->version, "2.0");
  CHECK_STR(v->transport, "UDP");
  CHECK_STR(v->host, "192.0.2.2");
  CHECK_INT(v->host_type, SIP_HOST_IPV4);
  CHECK_INT(v->has_port, 0);
  CHECK_STR(v->branch, "390skdjuw");
  CHECK_INT(v->has_rport, 0);
  CHECK_INT(v->rport, -1);
  CHECK_ABSENT(v->received);
  CHECK_STR(v->params_raw, ";branch=390skdjuw");

  /* wsinv v: two via-parms in one value */
  CHECK_INT(via(S("SIP  / 2.0  / TCP     spindle.example.com   ;\r\n"
                  "  branch  =   z9hG4bK9ikj8  ,\r\n"
                  " SIP  /    2.0   / UDP  192.168.255.111   ; branch=\r\n"
                  " z9hG4bK30239"),
                &tail),
            2);
  v = v->next;
  CHECK_STR(v->transport, "TCP");
  CHECK_STR(v->host, "spindle.example.com");
  CHECK_INT(v->host_type, SIP_HOST_NAME);
  CHECK_STR(v->branch, "z9hG4bK9ikj8");
  v = v->next;
  CHECK_STR(v->transport, "UDP");
  CHECK_STR(v->host, "192.168.255.111");
  CHECK_STR(v->branch, "z9hG4bK30239");
  CHECK(v->next == NULL && tail == &v->next);

  /* transports.dat: any transport token */
  static const char *const tr[] = {"UDP", "SCTP", "TLS", "UNKNOWN", "TCP"};
  head = NULL;
  tail = &head;
  CHECK_INT(via(S("SIP/2.0/UDP t1.example.com;branch=z9hG4bKkdjuw"), &tail), 1);
  CHECK_INT(via(S("SIP/2.0/SCTP t2.example.com;branch=z9hG4bKklasjdhf"), &tail),
            1);
  CHECK_INT(via(S("SIP/2.0/TLS t3.example.com;branch=z9hG4bK2980unddj"), &tail),
            1);
  CHECK_INT(
      via(S("SIP/2.0/UNKNOWN t4.example.com;branch=z9hG4bKasd0f3en"), &tail),
      1);
  CHECK_INT(via(S("SIP/2.0/TCP t5.example.com;branch=z9hG4bK0a9idfnee"), &tail),
            1);
  int i = 0;
  for (v = head; v; v = v->next, i++)
    if (i < 5)
      CHECK_STR(v->transport, tr[i]);
  CHECK_INT(i, 5);

  /* RFC 5118 §4.5 and §4.7: IPv6 sent-by and received */
  head = NULL;
  tail = &head;
  CHECK_INT(via(S("SIP/2.0/UDP [2001:db8::9:1];received=[2001:db8::9:255];"
                  "branch=z9hG4bKas3-111"),
                &tail),
            1);
  CHECK_STR(head->host, "[2001:db8::9:1]");
  CHECK_INT(head->host_type, SIP_HOST_IPV6);
  CHECK_STR(head->received, "[2001:db8::9:255]");
  CHECK_STR(head->branch, "z9hG4bKas3-111");
  CHECK_INT(via(S("SIP/2.0/UDP [2001:db8::9:1];received=2001:db8::9:255;"
                  "branch=z9hG4bKas3"),
                &tail),
            1);
  v = head->next;
  CHECK_STR(v->received, "2001:db8::9:255");
  CHECK_STR(v->branch, "z9hG4bKas3");
  CHECK_INT(
      via(S("SIP/2.0/UDP [2001:db8::9:1]:6050;branch=z9hG4bKas3-111"), &tail),
      1);
  v = v->next;
  CHECK_INT(v->has_port, 1);
  CHECK_INT(v->port, 6050);
  CHECK_INT(via(S("SIP/2.0/TCP [2001:db8::9:255];branch=z9hG4bK451jj;"
                  "received=192.0.2.200"),
                &tail),
            1);
  v = v->next;
  CHECK_STR(v->received, "192.0.2.200");
  CHECK_INT(
      via(S("SIP/2.0/UDP [::ffff:192.0.2.10]:19823;branch=z9hG4bKbh19"), &tail),
      1);
  v = v->next;
  CHECK_STR(v->host, "[::ffff:192.0.2.10]");
  CHECK_INT(v->port, 19823);

  /* mpart01: rport without a value; rport=N; other well-known params */
  head = NULL;
  tail = &head;
  CHECK_INT(via(S("SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-d87543-"
                  "4dade06d0bdb11ee-1--d87543-;rport"),
                &tail),
            1);
  CHECK_INT(head->has_rport, 1);
  CHECK_INT(head->rport, -1);
  CHECK_INT(head->port, 5070);
  CHECK_STR(head->branch, "z9hG4bK-d87543-4dade06d0bdb11ee-1--d87543-");
  CHECK_INT(via(S("SIP/2.0/UDP host.example.com : 5060 ;rport=15060;"
                  "received=192.0.2.1;maddr=224.2.0.1;ttl=16"),
                &tail),
            1);
  v = head->next;
  CHECK_INT(v->port, 5060);
  CHECK_INT(v->has_rport, 1);
  CHECK_INT(v->rport, 15060);
  CHECK_STR(v->maddr, "224.2.0.1");
  CHECK_STR(v->ttl, "16");
  CHECK_INT(v->params.n, 4);

  /* badvers / badbranch / bcast parse; the checks are semantic */
  CHECK_INT(via(S("SIP/7.0/UDP c.example.com;branch=z9hG4bKkdjuw"), &tail), 1);
  v = v->next;
  CHECK_STR(v->version, "7.0");
  CHECK_INT(via(S("SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK"), &tail), 1);
  CHECK_INT(via(S("SIP/2.0/UDP 255.255.255.255;branch=z9hG4bK1saber23"), &tail),
            1);
  CHECK_INT(via(S("SIP/2.0/UDP 192.0.2.1"), &tail), 1); /* inv2543 */
  CHECK_INT(via(S("SIP/2.0/WSS df7jal23ls0d.invalid;branch=z9hG4bKx"), &tail),
            1);
  CHECK_INT(via(S("SIP/2.0/TCP pbx_1.example.com:5061"), &tail), 1);

  /* errors leave the list untouched */
  sip_via **before = tail;
  CHECK_INT(via(S("SIP/2.0/UDP 192.0.2.15;;,;,,"), &tail), SIP_EPARAM);
  CHECK_INT(via(S("SIP/2.0/UDP"), &tail), SIP_EVIA);
  CHECK_INT(via(S("SIP/2.0/UDP ;branch=z9hG4bKx"), &tail), SIP_EVIA);
  CHECK_INT(via(S("SIP/2.0/UDP;branch=z9hG4bKx"), &tail), SIP_EVIA);
  CHECK_INT(via(S("SIP/2.0/UDP a.example.com, SIP/2.0/TCP"), &tail), SIP_EVIA);
  CHECK_INT(via(S("SIP/2.0/UDP a.example.com,"), &tail), SIP_EVIA);
  CHECK_INT(via(S("SIP/2.0 UDP a.example.com"), &tail), SIP_EVIA);
  CHECK_INT(via(S("SIP/2.0/UDP a.example.com:"), &tail), SIP_EVIA);
  CHECK_INT(via(S("SIP/2.0/UDP a.example.com:70000"), &tail), SIP_ERANGE);
  CHECK_INT(via(S("SIP/2.0/UDP a.example.com;rport=x"), &tail), SIP_EPARAM);
  CHECK_INT(via(S("SIP/2.0/UDP a.example.com junk"), &tail), SIP_EVIA);
  CHECK_INT(via(S("SIP/2.0/UDP [2001:db8::1"), &tail), SIP_EVIA);
  CHECK_INT(via(S("SIP/2.0/UDP 192.0.2.256"), &tail), SIP_EVIA);
  CHECK_INT(via(S(""), &tail), SIP_EVIA);
  CHECK(tail == before && *tail == NULL);
}

/* ---- sip_cseq_parse ----------------------------------------------------- */

static void test_cseq(void) {
  sip_cseq c;
  CHECK_INT(sip_cseq_parse(S("0009\r\n  INVITE"), &c), 0); /* wsinv */
  CHECK_INT(c.num, 9);
  CHECK_STR(c.method, "INVITE");
  CHECK_INT(sip_cseq_parse(S("139122385 !interesting-Method0123456789_*+`.%"
                             "indeed'~"),
                           &c),
            0); /* intmeth */
  CHECK_INT(c.num, 139122385);
  CHECK_STR(c.method, "!interesting-Method0123456789_*+`.%indeed'~");
  CHECK_INT(sip_cseq_parse(S("29344 RE%47IST%45R"), &c), 0); /* esc02 */
  CHECK_STR(c.method, "RE%47IST%45R");
  CHECK_INT(sip_cseq_parse(S("2147483647 ACK"), &c), 0);
  CHECK_INT(c.num, 2147483647);
  CHECK_INT(sip_cseq_parse(S("0 BYE"), &c), 0);
  CHECK_INT(c.num, 0);

  /* scalar02, scalarlg */
  CHECK_INT(sip_cseq_parse(S("36893488147419103232 REGISTER"), &c), SIP_ERANGE);
  CHECK_INT(sip_cseq_parse(S("9292394834772304023312 OPTIONS"), &c),
            SIP_ERANGE);
  CHECK_INT(sip_cseq_parse(S("2147483648 INVITE"), &c), SIP_ERANGE);
  CHECK_INT(sip_cseq_parse(S("INVITE"), &c), SIP_ECSEQ);
  CHECK_INT(sip_cseq_parse(S("1INVITE"), &c), SIP_ECSEQ);
  CHECK_INT(sip_cseq_parse(S("1 INVITE x"), &c), SIP_ECSEQ);
  CHECK_INT(sip_cseq_parse(S("1"), &c), SIP_ECSEQ);
  CHECK_INT(sip_cseq_parse(S("-1 INVITE"), &c), SIP_ECSEQ);
  CHECK_INT(sip_cseq_parse(S(""), &c), SIP_ECSEQ);
  CHECK_INT(sip_cseq_parse(S("1 IN/VITE"), &c), SIP_ECSEQ);
}

/* ---- sip_ctype_parse ---------------------------------------------------- */

static void test_ctype(void) {
  sip_ctype ct;
  CHECK_INT(sip_ctype_parse(&arena, S("application/sdp"), &ct), 0);
  CHECK_STR(ct.type, "application");
  CHECK_STR(ct.subtype, "sdp");
  CHECK_INT(ct.params.n, 0);
  CHECK_ABSENT(ct.boundary);
  CHECK_INT(sip_ctype_parse(
                &arena, S("multipart/mixed;boundary=7a9cbec02ceef655"), &ct),
            0); /* mpart01 */
  CHECK_STR(ct.type, "multipart");
  CHECK_STR(ct.subtype, "mixed");
  CHECK_STR(ct.boundary, "7a9cbec02ceef655");
  CHECK_INT(
      sip_ctype_parse(&arena,
                      S("Multipart/Related ;\r\n type=\"application/sdp\" ;"
                        " Boundary=\"simple boundary\""),
                      &ct),
      0);
  CHECK_STR(ct.boundary, "simple boundary");
  CHECK_STR(sip_params_get(&ct.params, "type")->dec, "application/sdp");
  CHECK_INT(sip_ctype_parse(&arena, S("text / plain ; charset = UTF-8"), &ct),
            0);
  CHECK_STR(ct.subtype, "plain");
  CHECK_STR(ct.params.v[0].dec, "UTF-8");
  CHECK_INT(sip_ctype_parse(&arena, S("application/unknownformat"), &ct), 0);

  CHECK_INT(sip_ctype_parse(&arena, S("text"), &ct), SIP_EVALUE);
  CHECK_INT(sip_ctype_parse(&arena, S("text/"), &ct), SIP_EVALUE);
  CHECK_INT(sip_ctype_parse(&arena, S("/plain"), &ct), SIP_EVALUE);
  CHECK_INT(sip_ctype_parse(&arena, S("text/plain x"), &ct), SIP_EVALUE);
  CHECK_INT(sip_ctype_parse(&arena, S("text/plain;"), &ct), SIP_EPARAM);
  CHECK_INT(sip_ctype_parse(&arena, S(""), &ct), SIP_EVALUE);
}

/* ---- sip_auth_parse ----------------------------------------------------- */

static void test_auth(void) {
  sip_auth au;
  CHECK_INT(
      sip_auth_parse(&arena,
                     S("Digest username=\"bob\", realm=\"biloxi.com\",\r\n"
                       " nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\",\r\n"
                       " uri=\"sip:bob@biloxi.com\", qop=auth, nc=00000001,"
                       " cnonce=\"0a4f113b\", response=\"6629fae49393a05"
                       "397450978507c4ef1\", algorithm=MD5,\r\n"
                       " opaque=\"5ccc069c403ebaf9f0171e9517f40e41\""),
                     &au),
      0);
  CHECK_STR(au.scheme, "Digest");
  CHECK_INT(au.params.n, 10);
  CHECK_STR(sip_params_get(&au.params, "username")->dec, "bob");
  CHECK_STR(sip_params_get(&au.params, "username")->value, "\"bob\"");
  CHECK_STR(sip_params_get(&au.params, "realm")->dec, "biloxi.com");
  CHECK_STR(sip_params_get(&au.params, "nonce")->dec,
            "dcd98b7102dd2f0e8b11d0f600bfb0c093");
  CHECK_STR(sip_params_get(&au.params, "uri")->dec, "sip:bob@biloxi.com");
  CHECK_STR(sip_params_get(&au.params, "qop")->dec, "auth");
  CHECK_STR(sip_params_get(&au.params, "nc")->dec, "00000001");
  CHECK_STR(sip_params_get(&au.params, "cnonce")->dec, "0a4f113b");
  CHECK_STR(sip_params_get(&au.params, "response")->dec,
            "6629fae49393a05397450978507c4ef1");
  CHECK_STR(sip_params_get(&au.params, "algorithm")->dec, "MD5");
  CHECK_STR(sip_params_get(&au.params, "opaque")->dec,
            "5ccc069c403ebaf9f0171e9517f40e41");

  /* a challenge; empty quoted value, commas and quoted-pairs inside quotes */
  CHECK_INT(
      sip_auth_parse(&arena,
                     S("Digest realm=\"atlanta.com\", domain=\"sip:ss1."
                       "carrier.com\", qop=\"auth,auth-int\", nonce=\"f84f1"
                       "cec41e6cbe5aea9c8e88d359\", opaque=\"\", "
                       "stale=FALSE, realm2=\"a\\\"b\""),
                     &au),
      0);
  CHECK_INT(au.params.n, 7);
  CHECK_STR(sip_params_get(&au.params, "qop")->dec, "auth,auth-int");
  const sip_param *op = sip_params_get(&au.params, "opaque");
  CHECK(op && op->dec.p != NULL && op->dec.len == 0);
  CHECK_STR(sip_params_get(&au.params, "stale")->dec, "FALSE");
  CHECK_STR(sip_params_get(&au.params, "realm2")->dec, "a\"b");

  /* regaut01: an unknown scheme */
  CHECK_INT(
      sip_auth_parse(&arena, S("NoOneKnowsThisScheme opaque-data=here"), &au),
      0);
  CHECK_STR(au.scheme, "NoOneKnowsThisScheme");
  CHECK_INT(au.params.n, 1);
  CHECK_STR(au.params.v[0].name, "opaque-data");
  CHECK_STR(au.params.v[0].dec, "here");

  /* token68 credentials and a bare scheme */
  CHECK_INT(sip_auth_parse(&arena, S("Basic dXNlcjpwYXNz=="), &au), 0);
  CHECK_STR(au.scheme, "Basic");
  CHECK_INT(au.params.n, 1);
  CHECK_STR(au.params.v[0].name, "dXNlcjpwYXNz==");
  CHECK_ABSENT(au.params.v[0].value);
  CHECK_INT(sip_auth_parse(&arena, S("Negotiate"), &au), 0);
  CHECK_INT(au.params.n, 0);
  /* an unquoted URI value (seen in the wild) and empty list elements */
  CHECK_INT(
      sip_auth_parse(&arena, S("Digest uri=sip:a@b;transport=tcp, ,nc=1"), &au),
      0);
  CHECK_INT(au.params.n, 2);
  CHECK_STR(au.params.v[0].dec, "sip:a@b;transport=tcp");

  CHECK_INT(sip_auth_parse(&arena, S("Digest realm=\"x"), &au), SIP_EQUOTE);
  CHECK_INT(sip_auth_parse(&arena, S(""), &au), SIP_EVALUE);
  CHECK_INT(sip_auth_parse(&arena, S("Digest a=b c=d"), &au), SIP_EPARAM);
  CHECK_INT(sip_auth_parse(&arena, S("Digest a=, b=c"), &au), SIP_EPARAM);
  CHECK_INT(sip_auth_parse(&arena, S("Digest =x"), &au), SIP_EPARAM);
  CHECK_INT(sip_auth_parse(&arena, S("\"Digest\" a=b"), &au), SIP_EVALUE);
}

/* ---- sip_multipart_parse ------------------------------------------------ */

/* The body of rfc4475/mpart01.dat, byte for byte (553 octets); the second
 * part is binary DER with NUL and bare LF octets. */
static const char mpart01_body[] =
    "--7a9cbec02ceef655\r\n"
    "Content-Type: text/plain\r\n"
    "Content-Transfer-Encoding: binary\r\n"
    "\r\n"
    "Hello\r\n"
    "--7a9cbec02ceef655\r\n"
    "Content-Type: application/octet-stream\r\n"
    "Content-Transfer-Encoding: binary\r\n"
    "\r\n"
    "0\202\001R\006\011*\206H\206\367\r\001\007\002\240\202\001C0\202\001\?\002"
    "\001\0011\0110\007\006\005+\016\003\002\0320\013\006\011*\206H\206\367\r"
    "\001\007\0011\202\001 0\202\001\034\002\001\0010|0p1\0130\011\006\003U\004"
    "\006\023\002US1\0230\021\006\003U\004\010\023\n"
    "California1\0210\017\006\003U\004\007\023\010San Jose1\0160\014\006\003"
    "U\004\n"
    "\023\005sipit1)0'\006\003U\004\013\023 Sipit Test Certificate Authority"
    "\002\010\001\225\000q\0023\001\0230\007\006\005+\016\003\002\0320\r\006"
    "\011*\206H\206\367\r\001\001\001\005\000\004\201\200\216\364f\371H\360R"
    "-\322\345\227\216\235\225\252\351\362\376\025\240fYqb\222\350\332*\250\330"
    "5\n"
    "h\316\377\256<\275+\377\026u\335\325d\216Y=\326G(\362b \367\351At\2363\r"
    "\232\025\355\253\333\223\321\014B\020.{r\211\322\234\300\311\256.\373\307"
    "\300\317\371\027/;\002~O\300'\341Tm\344\266\252:\273>f\314\313]\326\306"
    "K\203\203\024\234\270\346\377\030-\224O\345{e\274\231\320\005\r\n"
    "--7a9cbec02ceef655--\r\n";

static void test_multipart(void) {
  sip_part *head;
  sip_str b = SIP_STR_LIT("7a9cbec02ceef655");
  CHECK_INT(sizeof mpart01_body - 1, 553);
  const char *mb = guarded(mpart01_body, sizeof mpart01_body - 1);
  CHECK_INT(sip_multipart_parse(&arena, mb, sizeof mpart01_body - 1, b, &head),
            2);
  const sip_part *pt = head;
  CHECK_STR(pt->headers,
            "Content-Type: text/plain\r\nContent-Transfer-Encoding: binary");
  CHECK_STR(pt->content_type, "text/plain");
  CHECK_STR(pt->body, "Hello");
  pt = pt->next;
  CHECK_STR(pt->content_type, "application/octet-stream");
  CHECK_INT(pt->body.len, 342);
  CHECK(pt->body.p == mb + 187);
  CHECK(memchr(pt->body.p, '\0', pt->body.len) != NULL);
  CHECK(pt->next == NULL);

  /* preamble and epilogue ignored; a part without headers; LF-only lines;
   * a line that merely starts with the boundary text is content */
  static const char body2[] = "preamble\r\n"
                              "--b1\r\n"
                              "\r\n"
                              "no headers\n"
                              "--b1x not a delimiter\r\n"
                              "--b1  \n"
                              "content-type :\r\n text/html ;\r\n charset=x\n"
                              "X-A: 1\n"
                              "\n"
                              "<p>\n"
                              "--b1--\r\n"
                              "epilogue";
  CHECK_INT(sip_multipart_parse(&arena, S(body2), SIP_STR_LIT("b1"), &head), 2);
  pt = head;
  CHECK(pt->headers.p != NULL && pt->headers.len == 0);
  CHECK_ABSENT(pt->content_type);
  CHECK_STR(pt->body, "no headers\n--b1x not a delimiter");
  pt = pt->next;
  CHECK_STR(pt->content_type, "text/html ;\r\n charset=x");
  CHECK_STR(pt->headers,
            "content-type :\r\n text/html ;\r\n charset=x\nX-A: 1");
  CHECK_STR(pt->body, "<p>");

  /* an empty part and a part with headers but no body */
  CHECK_INT(sip_multipart_parse(
                &arena, S("--z\r\n\r\n--z\r\nContent-Type: a/b\r\n--z--"),
                SIP_STR_LIT("z"), &head),
            2);
  CHECK(head->body.p != NULL && head->body.len == 0);
  CHECK_STR(head->next->content_type, "a/b");
  CHECK_INT(head->next->body.len, 0);

  CHECK_INT(sip_multipart_parse(&arena, S("--b\r\n\r\ncut short"),
                                SIP_STR_LIT("b"), &head),
            SIP_EMULTIPART);
  CHECK_INT(sip_multipart_parse(&arena, S("no delimiter at all"),
                                SIP_STR_LIT("b"), &head),
            SIP_EMULTIPART);
  CHECK_INT(
      sip_multipart_parse(&arena, S("--b--\r\n"), SIP_STR_LIT("b"), &head),
      SIP_EMULTIPART);
  CHECK_INT(sip_multipart_parse(&arena, S("x --b\r\n\r\nx\r\n--b--"),
                                SIP_STR_LIT("b"), &head),
            SIP_EMULTIPART); /* a delimiter must start a line */
  CHECK_INT(sip_multipart_parse(&arena, S("--\r\n\r\n--"), SIP_STR_NULL, &head),
            SIP_EMULTIPART);
  CHECK(head == NULL);
}

/* sip__fmt_uint: what snprintf("%" PRIu64) writes, and round trips through
 * sip__parse_uint */
static void test_fmt_uint(void) {
  static const uint64_t vals[] = {
      0, 7, 9, 10, 69, 70, 100, 65535, 4294967295u, 10000000000u, UINT64_MAX};
  for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
    char got[24], want[24];
    memset(got, 'x', sizeof got);
    size_t n = sip__fmt_uint(got, vals[i]);
    int wn = snprintf(want, sizeof want, "%llu", (unsigned long long)vals[i]);
    CHECK_INT((int)n, wn);
    CHECK(strcmp(got, want) == 0);
    uint64_t back = 1;
    CHECK_INT(sip__parse_uint(got, got + n, UINT64_MAX, &back), 0);
    CHECK(back == vals[i]);
  }
}

int main(void) {
  char first[512];
  sip_arena_init(&arena, first, sizeof first);
  test_split();
  test_unquote();
  test_params();
  test_addr_rfc4475();
  test_addr_contact();
  test_addr_errors();
  test_addr_list();
  test_via();
  test_cseq();
  test_ctype();
  test_auth();
  test_multipart();
  test_fmt_uint();
  sip_arena_free(&arena);
  return check_summary("test_fields");
}
