/* The proxy's message functions (csrc/proxy/proxy_msg.c): "myself", loop
 * hash and detection, Route preprocessing and strict routing, Max-Forwards,
 * the forwarded request, the CANCEL of a branch, best response selection,
 * the forwarded response, Proxy-Require, force rport, the targets of the
 * Lua API's shape. No sockets. Prints
 * "proxy_test: N passed, N failed". */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sip_proxy.h"
#include "test/check.h"
#include "test/tree.h"

static sip_proxy_self self;

static void add_self(int transport, const char *host, int port) {
  sip_proxy_addr *a = &self.addr[self.naddr++];
  a->id = self.naddr - 1;
  a->transport = transport;
  a->family = AF_INET;
  a->port = (uint16_t)port;
  snprintf(a->host, sizeof a->host, "%s", host);
  snprintf(a->sent_by, sizeof a->sent_by, "%s:%d", host, port);
}

/* parse text (CRLF already in it) into m; returns m or NULL */
static sip_msg *parse(sip_msg *m, const char *text) {
  sip_msg_init(m, NULL);
  if (sip_msg_parse(m, text, strlen(text), SIP_MODE_DATAGRAM) < 0)
    return NULL;
  return m;
}

static char *serialize(const sip_msg *m) {
  size_t n = sip_msg_size(m);
  char *b = malloc(n + 1);
  int rc = sip_msg_write(m, b, n);
  b[rc < 0 ? 0 : rc] = 0;
  return b;
}

#define INVITE_HEAD                                                            \
  "Via: SIP/2.0/UDP 10.0.0.1:5062;branch=z9hG4bKabc\r\n"                       \
  "From: <sip:alice@a.example>;tag=f1\r\n"                                     \
  "To: <sip:bob@b.example>\r\n"                                                \
  "Call-ID: call-1\r\n"                                                        \
  "CSeq: 7 INVITE\r\n"

static void test_self(void) {
  char mem[2048];
  sip_arena a;
  sip_arena_init(&a, mem, sizeof mem);
  sip_uri u;
  CHECK_INT(sip_uri_parse(&a, "sip:127.0.0.1:5070;lr", 21, &u), 0);
  CHECK_INT(sip_proxy_is_self(&self, &u), 1);
  CHECK_INT(sip_uri_parse(&a, "sip:127.0.0.1;lr", 16, &u), 0);
  CHECK_INT(sip_proxy_is_self(&self, &u), 0); /* 5060 is not ours */
  CHECK_INT(sip_uri_parse(&a, "sip:bob@Proxy.Example.COM", 25, &u), 0);
  CHECK_INT(sip_proxy_is_self(&self, &u), 1); /* alias, any port */
  CHECK_INT(sip_uri_parse(&a, "sip:bob@other.example", 21, &u), 0);
  CHECK_INT(sip_proxy_is_self(&self, &u), 0);
  sip_arena_free(&a);
}

static void test_failover_status(void) {
  CHECK_INT(sip_proxy_failover_status(503, 0), 1);
  CHECK_INT(sip_proxy_failover_status(503, 1), 1);
  CHECK_INT(sip_proxy_failover_status(408, 1), 1);
  CHECK_INT(sip_proxy_failover_status(408, 0), 0); /* a server's 408 */
  CHECK_INT(sip_proxy_failover_status(486, 0), 0);
  CHECK_INT(sip_proxy_failover_status(500, 1), 0);
}

static void test_best(void) {
  uint16_t a[] = {486, 0, 404};
  CHECK_INT(sip_proxy_best(a, 3), 0); /* same class: the first */
  uint16_t b[] = {503, 486, 302};
  CHECK_INT(sip_proxy_best(b, 3), 2); /* lowest class */
  uint16_t c[] = {486, 603, 200};
  CHECK_INT(sip_proxy_best(c, 3), 2); /* 2xx */
  uint16_t d[] = {486, 603, 404};
  CHECK_INT(sip_proxy_best(d, 3), 1); /* 6xx wins over 4xx */
  uint16_t e[] = {404, 401, 480};
  CHECK_INT(sip_proxy_best(e, 3), 1); /* 401 preferred in 4xx */
  uint16_t f[] = {0, 0};
  CHECK_INT(sip_proxy_best(f, 2), -1);
  uint16_t g[] = {500, 408, 603, 600};
  CHECK_INT(sip_proxy_best(g, 4), 2); /* the first 6xx */
}

static void test_mf(void) {
  sip_msg m;
  CHECK(parse(&m, "INVITE sip:bob@b.example SIP/2.0\r\n" INVITE_HEAD
                  "Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n"));
  CHECK_INT(sip_proxy_decrement_mf(&m), 0);
  uint32_t mf = 0;
  CHECK_INT(sip_msg_get_max_forwards(&m, &mf), 0);
  CHECK_INT(mf, 69);
  sip_msg_free(&m);
  CHECK(parse(&m, "INVITE sip:bob@b.example SIP/2.0\r\n" INVITE_HEAD
                  "Content-Length: 0\r\n\r\n"));
  CHECK_INT(sip_proxy_decrement_mf(&m), 0);
  CHECK_INT(sip_msg_get_max_forwards(&m, &mf), 0);
  CHECK_INT(mf, 70);
  sip_msg_free(&m);
  CHECK(parse(&m, "INVITE sip:bob@b.example SIP/2.0\r\n" INVITE_HEAD
                  "Max-Forwards: 0\r\nContent-Length: 0\r\n\r\n"));
  CHECK_INT(sip_proxy_decrement_mf(&m), SIP_ERANGE);
  sip_msg_free(&m);
}

static void test_route(void) {
  sip_msg m;
  /* loose: our two values (double Record-Route) go, the next stays */
  CHECK(parse(&m, "BYE sip:bob@10.0.0.9 SIP/2.0\r\n" INVITE_HEAD
                  "Route: <sip:127.0.0.1:5070;lr>, "
                  "<sip:127.0.0.1:5070;transport=tcp;lr>\r\n"
                  "Route: <sip:10.0.0.2;lr>\r\nContent-Length: 0\r\n\r\n"));
  int rc = sip_proxy_route_pre(&m, &self);
  CHECK_INT(rc, SIP_PROXY_ROUTE_PRESENT | SIP_PROXY_ROUTE_OWN |
                    SIP_PROXY_ROUTE_MORE);
  const sip_addr *r;
  CHECK_INT(sip_msg_get_addrs(&m, SIP_H_ROUTE, &r), 0);
  CHECK_STR(r->uri.raw, "sip:10.0.0.2;lr");
  CHECK(r->next == NULL);
  sip_msg_free(&m);

  /* no Route: nothing */
  CHECK(parse(&m, "INVITE sip:bob@b.example SIP/2.0\r\n" INVITE_HEAD
                  "Content-Length: 0\r\n\r\n"));
  CHECK_INT(sip_proxy_route_pre(&m, &self), 0);
  sip_msg_free(&m);

  /* a strict router put our Record-Route URI in the Request-URI */
  CHECK(parse(&m, "BYE sip:127.0.0.1:5070;lr SIP/2.0\r\n" INVITE_HEAD
                  "Route: <sip:10.0.0.3;lr>, <sip:bob@10.0.0.9>\r\n"
                  "Content-Length: 0\r\n\r\n"));
  rc = sip_proxy_route_pre(&m, &self);
  CHECK(rc & SIP_PROXY_ROUTE_STRICT);
  CHECK_STR(m.ruri, "sip:bob@10.0.0.9");
  CHECK_INT(sip_msg_get_addrs(&m, SIP_H_ROUTE, &r), 0);
  CHECK_STR(r->uri.raw, "sip:10.0.0.3;lr");
  CHECK(r->next == NULL);
  sip_msg_free(&m);

  /* the next hop is a strict router: R-URI to the end, Route to R-URI */
  CHECK(parse(&m, "BYE sip:bob@10.0.0.9 SIP/2.0\r\n" INVITE_HEAD
                  "Route: <sip:10.0.0.4>, <sip:10.0.0.5;lr>\r\n"
                  "Content-Length: 0\r\n\r\n"));
  CHECK_INT(sip_proxy_route_strict_next(&m), 1);
  CHECK_STR(m.ruri, "sip:10.0.0.4");
  CHECK_INT(sip_msg_get_addrs(&m, SIP_H_ROUTE, &r), 0);
  CHECK_STR(r->uri.raw, "sip:10.0.0.5;lr");
  CHECK(r->next && r->next->next == NULL);
  if (r->next)
    CHECK_STR(r->next->uri.raw, "sip:bob@10.0.0.9");
  sip_msg_free(&m);
}

static void test_forward_and_loop(void) {
  sip_msg m;
  CHECK(parse(&m, "INVITE sip:bob@b.example SIP/2.0\r\n" INVITE_HEAD
                  "Record-Route: <sip:10.0.0.7;lr>\r\n"
                  "Max-Forwards: 70\r\nContent-Length: 4\r\n\r\nbody"));
  const sip_via *v;
  CHECK_INT(sip_msg_get_vias(&m, &v), 0);
  char h[17];
  CHECK_INT(sip_proxy_loop_hash(&m, v, h), 0);
  CHECK_INT(strlen(h), 16);
  CHECK_INT(sip_proxy_decrement_mf(&m), 0);
  char via[160];
  snprintf(via, sizeof via,
           "SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK%s.rnd123", h);
  const char *rr = "Record-Route: <sip:127.0.0.1:5070;lr>\r\n";
  sip_proxy_fwd f = {.ruri = SIP_STR_LIT("sip:bob@10.0.0.9:5090"),
                     .via = {via, strlen(via)},
                     .extra = {rr, strlen(rr)}};
  size_t cap = sip_proxy_request_size(&m, &f);
  char *buf = malloc(cap + 1);
  int n = sip_proxy_write_request(&m, &f, buf, cap);
  CHECK(n > 0);
  buf[n > 0 ? n : 0] = 0;
  char want_start[400];
  snprintf(want_start, sizeof want_start,
           "INVITE sip:bob@10.0.0.9:5090 SIP/2.0\r\nVia: %s\r\n"
           "Via: SIP/2.0/UDP 10.0.0.1:5062;branch=z9hG4bKabc\r\n"
           "Record-Route: <sip:127.0.0.1:5070;lr>\r\n"
           "From: <sip:alice@a.example>;tag=f1\r\n",
           via);
  CHECK_MSG(strncmp(buf, want_start, strlen(want_start)) == 0, "got:\n%s", buf);
  CHECK(strstr(buf, "Max-Forwards: 69\r\n") != NULL);
  CHECK(strstr(buf, "Record-Route: <sip:10.0.0.7;lr>\r\n") != NULL);
  CHECK(n > 4 && memcmp(buf + n - 8, "\r\n\r\nbody", 8) == 0);

  /* the forwarded request comes back retargeted (another Request-URI than
   * the one received first): a spiral */
  sip_msg back;
  CHECK(parse(&back, buf));
  CHECK_INT(sip_proxy_detect_loop(&back, &self), 0);
  sip_msg_free(&back);
  /* forwarded with the Request-URI it came with and back again: a loop */
  f.ruri = SIP_STR_LIT("sip:bob@b.example");
  n = sip_proxy_write_request(&m, &f, buf, cap);
  CHECK(n > 0);
  buf[n > 0 ? n : 0] = 0;
  CHECK(parse(&back, buf));
  CHECK_INT(sip_proxy_detect_loop(&back, &self), 1);
  sip_msg_free(&back);
  free(buf);
  sip_msg_free(&m);

  /* a request that went elsewhere first: the same branch, other R-URI */
  CHECK(parse(&m, "INVITE sip:carol@b.example SIP/2.0\r\n"
                  "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK"
                  "0123456789abcdef.x\r\n" INVITE_HEAD
                  "Content-Length: 0\r\n\r\n"));
  CHECK_INT(sip_proxy_detect_loop(&m, &self), 0);
  sip_msg_free(&m);
}

static void test_cancel(void) {
  sip_msg m;
  CHECK(parse(&m, "INVITE sip:bob@b.example SIP/2.0\r\n" INVITE_HEAD
                  "Content-Length: 0\r\n\r\n"));
  char buf[1024];
  const char *route = "Route: <sip:10.0.0.2;lr>\r\n";
  int n = sip_proxy_write_cancel(
      &m, SIP_STR_LIT("sip:bob@10.0.0.9"),
      SIP_STR_LIT("SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKx.y"),
      (sip_str){route, strlen(route)}, buf, sizeof buf);
  CHECK(n > 0);
  const char *want = "CANCEL sip:bob@10.0.0.9 SIP/2.0\r\n"
                     "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKx.y\r\n"
                     "Route: <sip:10.0.0.2;lr>\r\n"
                     "From: <sip:alice@a.example>;tag=f1\r\n"
                     "To: <sip:bob@b.example>\r\n"
                     "Call-ID: call-1\r\n"
                     "CSeq: 7 CANCEL\r\n"
                     "Max-Forwards: 70\r\n"
                     "Content-Length: 0\r\n\r\n";
  CHECK_MSG(n > 0 && strcmp(buf, want) == 0, "got:\n%s", buf);
  sip_msg c;
  CHECK(parse(&c, buf));
  sip_msg_free(&c);
  sip_msg_free(&m);
}

static void test_response(void) {
  sip_msg m;
  CHECK(parse(&m, "SIP/2.0 503 Service Unavailable\r\n"
                  "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKx.y, "
                  "SIP/2.0/UDP 10.0.0.1:5062;branch=z9hG4bKabc\r\n"
                  "From: <sip:alice@a.example>;tag=f1\r\n"
                  "To: <sip:bob@b.example>;tag=t1\r\n"
                  "Call-ID: call-1\r\nCSeq: 7 INVITE\r\n"
                  "Content-Length: 0\r\n\r\n"));
  const char *extra = "WWW-Authenticate: Digest realm=\"b\"\r\n";
  CHECK_INT(sip_proxy_response_edit(&m, (sip_str){extra, strlen(extra)}), 0);
  char *s = serialize(&m);
  const char *want = "SIP/2.0 500 Server Internal Error\r\n"
                     "Via: SIP/2.0/UDP 10.0.0.1:5062;branch=z9hG4bKabc\r\n";
  CHECK_MSG(strncmp(s, want, strlen(want)) == 0, "got:\n%s", s);
  CHECK(strstr(s, "WWW-Authenticate: Digest realm=\"b\"\r\n") != NULL);
  free(s);
  sip_msg_free(&m);

  /* our Via on its own line: the line goes */
  CHECK(parse(&m, "SIP/2.0 180 Ringing\r\n"
                  "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKx.y\r\n"
                  "Via: SIP/2.0/UDP 10.0.0.1:5062;branch=z9hG4bKabc\r\n"
                  "From: <sip:alice@a.example>;tag=f1\r\n"
                  "To: <sip:bob@b.example>;tag=t1\r\n"
                  "Call-ID: call-1\r\nCSeq: 7 INVITE\r\n"
                  "Content-Length: 0\r\n\r\n"));
  CHECK_INT(sip_proxy_response_edit(&m, SIP_STR_NULL), 0);
  const sip_via *v;
  CHECK_INT(sip_msg_get_vias(&m, &v), 0);
  CHECK_STR(v->host, "10.0.0.1");
  CHECK(v->next == NULL);
  CHECK_INT(m.status, 180);
  sip_msg_free(&m);
}

static void test_proxy_require(void) {
  sip_msg m;
  CHECK(parse(&m, "INVITE sip:bob@b.example SIP/2.0\r\n" INVITE_HEAD
                  "Proxy-Require: foo, bar\r\nContent-Length: 0\r\n\r\n"));
  char tags[64];
  const char *const sup[] = {"bar", NULL};
  CHECK_INT(sip_proxy_unsupported(&m, sup, tags, sizeof tags), 1);
  CHECK(strcmp(tags, "foo") == 0);
  const char *const both[] = {"foo", "bar", NULL};
  CHECK_INT(sip_proxy_unsupported(&m, both, tags, sizeof tags), 0);
  sip_msg_free(&m);
}

/* The targets of the Lua API's shape (sip_proxy_read_target(s)). */
static int read_targets(const tnode *root, sip_proxy_target *t, int max,
                        treader *r) {
  sip_tree_reader rd;
  treader_init(r, &rd, root);
  sip_tree_val v;
  memset(&v, 0, sizeof v);
  /* the root as the value: a table becomes the current one */
  v.kind = root->kind;
  v.s = root->s ? (sip_str){root->s, strlen(root->s)} : SIP_STR_NULL;
  v.d = root->d;
  if (root->kind == SIP_TREE_TABLE) {
    while (v.len < root->nkids && !root->kids[v.len].key)
      v.len++;
    r->opens++; /* the caller's get opened it */
  } else {
    r->top = -1; /* nothing open */
  }
  int n = sip_proxy_read_targets(&rd, &v, t, max);
  CHECK_INT(r->opens, r->closes);
  return n;
}

static void test_targets(void) {
  sip_proxy_target t[4];
  treader r;
  const tnode s = TS(NULL, "sip:bob@127.0.0.1");
  CHECK_INT(read_targets(&s, t, 4, &r), 1);
  CHECK_STR(t[0].uri, "sip:bob@127.0.0.1");
  CHECK(!t[0].dest.p && !t[0].route.p && t[0].q == -1);
  const tnode nil = TX(NULL, SIP_TREE_NIL);
  CHECK_INT(read_targets(&nil, t, 4, &r), 0);
  const tnode num = TN(NULL, 5);
  CHECK_INT(read_targets(&num, t, 4, &r), SIP_EINVAL);
  /* one table: contact, received, path joined as one Route set, q */
  const tnode one = TT(NULL, TS("contact", "sip:a@127.0.0.2"),
                       TS("received", "udp:127.0.0.2:5080"),
                       TT("path", TS(NULL, "<sip:p1@127.0.0.3;lr>"),
                          TS(NULL, "<sip:p2@127.0.0.4;lr>")),
                       TD("q", 0.4), TS("alt", "tcp:127.0.0.2:5080"),
                       TS("tls_name", "a.test"));
  CHECK_INT(read_targets(&one, t, 4, &r), 1);
  CHECK_STR(t[0].uri, "sip:a@127.0.0.2");
  CHECK_STR(t[0].dest, "udp:127.0.0.2:5080");
  CHECK_STR(t[0].route, "<sip:p1@127.0.0.3;lr>, <sip:p2@127.0.0.4;lr>");
  CHECK_STR(t[0].alt, "tcp:127.0.0.2:5080");
  CHECK_STR(t[0].tls_name, "a.test");
  CHECK_INT(t[0].q, 400);
  treader_free(&r);
  /* uri and dest win over contact and received; route over path; q
   * clamped */
  const tnode both = TT(NULL, TS("uri", "sip:u@h"), TS("contact", "sip:c@h"),
                        TS("dest", "udp:127.0.0.1:1"), TS("received", "x"),
                        TS("route", "<sip:r@h;lr>"),
                        TT("path", TS(NULL, "<sip:p@h;lr>")), TN("q", 2));
  CHECK_INT(read_targets(&both, t, 4, &r), 1);
  CHECK_STR(t[0].uri, "sip:u@h");
  CHECK_STR(t[0].dest, "udp:127.0.0.1:1");
  CHECK_STR(t[0].route, "<sip:r@h;lr>");
  CHECK_INT(t[0].q, 1000);
  /* a list: strings and tables; a non-string uri is absent */
  const tnode list = TT(NULL, TS(NULL, "sip:x@127.0.0.1"),
                        TT(NULL, TS("contact", "sip:y@127.0.0.1"), TD("q", -1)),
                        TT(NULL, TN("uri", 7), TT("path", TE(NULL))));
  CHECK_INT(read_targets(&list, t, 4, &r), 3);
  CHECK_STR(t[0].uri, "sip:x@127.0.0.1");
  CHECK_STR(t[1].uri, "sip:y@127.0.0.1");
  CHECK_INT(t[1].q, 0);
  CHECK(!t[2].uri.p && !t[2].route.p && t[2].q == -1);
  CHECK_INT(read_targets(&list, t, 2, &r), SIP_ETOOMANY);
  const tnode empty = TE(NULL);
  CHECK_INT(read_targets(&empty, t, 4, &r), SIP_ENOTFOUND);
  const tnode bad = TT(NULL, TS(NULL, "sip:x@h"), TX(NULL, SIP_TREE_TRUE));
  CHECK_INT(read_targets(&bad, t, 4, &r), SIP_EINVAL);
  treader_free(&r);
}

/* A relay's options (sip_proxy_read_opts): the root stays open. */
static int read_opts(const tnode *root, sip_proxy_opts *o, uint16_t fo[17],
                     const char **bad) {
  treader r;
  sip_tree_reader rd;
  treader_init(&r, &rd, root);
  memset(o, 0, sizeof *o);
  *bad = NULL;
  int rc = sip_proxy_read_opts(&rd, o, fo, bad);
  CHECK_INT(r.opens, r.closes);
  CHECK_INT(r.top, 0);
  return rc;
}

static void test_opts(void) {
  sip_proxy_opts o;
  uint16_t fo[17];
  const char *bad;
  const tnode none = TE(NULL);
  CHECK_INT(read_opts(&none, &o, fo, &bad), 0);
  CHECK(o.fork == SIP_PROXY_PARALLEL && !o.timeout_ms && !o.recurse &&
        !o.failover);
  const tnode all = TT(NULL, TS("fork", "serial"), TD("timeout", 1.5),
                       TN("branch_timeout", 2), TS("timer_c", "180"),
                       TX("recurse", SIP_TREE_TRUE),
                       TT("failover", TN(NULL, 486), TD(NULL, 503)));
  CHECK_INT(read_opts(&all, &o, fo, &bad), 0);
  CHECK_INT(o.fork, SIP_PROXY_SERIAL);
  CHECK_INT(o.timeout_ms, 1500);
  CHECK_INT(o.branch_timeout_ms, 2000);
  CHECK_INT(o.timer_c_ms, 180000);
  CHECK_INT(o.recurse, 1);
  CHECK(o.failover == fo && fo[0] == 486 && fo[1] == 503 && fo[2] == 0);
  const tnode par =
      TT(NULL, TS("fork", "parallel"), TX("recurse", SIP_TREE_FALSE));
  CHECK_INT(read_opts(&par, &o, fo, &bad), 0);
  CHECK(o.fork == SIP_PROXY_PARALLEL && !o.recurse);
  const tnode fork = TT(NULL, TS("fork", "both"));
  CHECK_INT(read_opts(&fork, &o, fo, &bad), SIP_EINVAL);
  CHECK(bad && !strcmp(bad, "fork"));
  const tnode big = TT(NULL, TN("timeout", 86400 * 8));
  CHECK_INT(read_opts(&big, &o, fo, &bad), SIP_ERANGE);
  CHECK(bad && !strcmp(bad, "timeout"));
  const tnode neg = TT(NULL, TD("timer_c", -1));
  CHECK_INT(read_opts(&neg, &o, fo, &bad), SIP_ERANGE);
  CHECK(bad && !strcmp(bad, "timer_c"));
  const tnode word = TT(NULL, TS("branch_timeout", "soon"));
  CHECK_INT(read_opts(&word, &o, fo, &bad), SIP_EINVAL);
  CHECK(bad && !strcmp(bad, "branch_timeout"));
  const tnode frac = TT(NULL, TT("failover", TD(NULL, 4.5)));
  CHECK_INT(read_opts(&frac, &o, fo, &bad), SIP_EINVAL);
  CHECK(bad && !strcmp(bad, "failover"));
}

int main(void) {
  add_self(SIP_TP_UDP, "127.0.0.1", 5070);
  add_self(SIP_TP_TCP, "127.0.0.1", 5070);
  char alias[] = "proxy.example.com";
  self.alias[self.nalias++] = alias;
  test_self();
  test_best();
  test_failover_status();
  test_mf();
  test_route();
  test_forward_and_loop();
  test_cancel();
  test_response();
  test_proxy_require();
  test_targets();
  test_opts();
  return check_summary("proxy_test");
}
