/* The digest primitives (csrc/auth/): known answers of RFC 7616 §3.9.1,
 * RFC 2617 §3.5 and the hashlib fixtures (spec/fixtures/digest_kat.txt:
 * SHA-512-256, auth-int, no qop, -sess), constant-time verification,
 * stateless nonces (realm binding, tampering, expiry), the bounded
 * nonce-count memory, and the trace redaction. Run from the repository
 * root. Prints "digest_test: N passed, N failed". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../test/check.h"
#include "sip_digest.h"

#define S(lit) ((sip_str){(lit), sizeof(lit) - 1})

static sip_str cs(const char *s) { return (sip_str){s, strlen(s)}; }

static void test_alg_names(void) {
  int sess = -1;
  CHECK_INT(sip_digest_alg_lookup("MD5", 3, &sess), SIP_DIGEST_MD5);
  CHECK_INT(sess, 0);
  CHECK_INT(sip_digest_alg_lookup("sha-256", 7, &sess), SIP_DIGEST_SHA256);
  CHECK_INT(sip_digest_alg_lookup("SHA-512-256-sess", 16, &sess),
            SIP_DIGEST_SHA512_256);
  CHECK_INT(sess, 1);
  CHECK_INT(sip_digest_alg_lookup("SHA-512", 7, NULL), SIP_EVALUE);
  CHECK_INT(sip_digest_alg_lookup("-sess", 5, NULL), SIP_EVALUE);
  CHECK_INT(sip_digest_alg_lookup("", 0, NULL), SIP_EVALUE);
  CHECK(strcmp(sip_digest_alg_name(SIP_DIGEST_SHA512_256), "SHA-512-256") == 0);
  CHECK(sip_digest_alg_name(7) == NULL);
  CHECK_INT(sip_digest_hex_len(SIP_DIGEST_MD5), 32);
  CHECK_INT(sip_digest_hex_len(SIP_DIGEST_SHA256), 64);
}

/* RFC 7616 §3.9.1 and RFC 2617 §3.5, written out here as well as in the
 * fixture file */
static void test_rfc_vectors(void) {
  char out[SIP_DIGEST_HEX_BUF], ha1[SIP_DIGEST_HEX_BUF];
  sip_digest_in in = {
      .alg = SIP_DIGEST_MD5,
      .nonce = S("7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v"),
      .nc = S("00000001"),
      .cnonce = S("f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"),
      .qop = S("auth"),
      .method = S("GET"),
      .uri = S("/dir/index.html"),
  };
  CHECK_INT(sip_digest_ha1(SIP_DIGEST_MD5, S("Mufasa"),
                           S("http-auth@example.org"), S("Circle of Life"),
                           ha1),
            32);
  in.ha1 = cs(ha1);
  CHECK_INT(sip_digest_response(&in, out), 32);
  CHECK(strcmp(out, "8ca523f5e9506fed4657c9700eebdbec") == 0);
  CHECK_INT(sip_digest_ha1(SIP_DIGEST_SHA256, S("Mufasa"),
                           S("http-auth@example.org"), S("Circle of Life"),
                           ha1),
            64);
  in.alg = SIP_DIGEST_SHA256;
  in.ha1 = cs(ha1);
  CHECK_INT(sip_digest_response(&in, out), 64);
  CHECK(strcmp(out, "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8d"
                    "b5856cb6c1") == 0);

  sip_digest_ha1(SIP_DIGEST_MD5, S("Mufasa"), S("testrealm@host.com"),
                 S("Circle Of Life"), ha1);
  sip_digest_in r2617 = {
      .alg = SIP_DIGEST_MD5,
      .ha1 = cs(ha1),
      .nonce = S("dcd98b7102dd2f0e8b11d0f600bfb0c093"),
      .nc = S("00000001"),
      .cnonce = S("0a4f113b"),
      .qop = S("auth"),
      .method = S("GET"),
      .uri = S("/dir/index.html"),
  };
  CHECK_INT(sip_digest_verify(&r2617, S("6629fae49393a05397450978507c4ef1")),
            1);
  CHECK_INT(sip_digest_verify(&r2617, S("6629FAE49393A05397450978507C4EF1")),
            1);
  CHECK_INT(sip_digest_verify(&r2617, S("6629fae49393a05397450978507c4ef2")),
            0);
  CHECK_INT(sip_digest_verify(&r2617, S("6629fae49393a05397450978507c4ef")), 0);
  CHECK_INT(sip_digest_verify(&r2617, SIP_STR_NULL), 0);
  r2617.qop = S("auth-conf");
  CHECK_INT(sip_digest_response(&r2617, out), SIP_EINVAL);
  r2617.qop = S("auth");
  r2617.alg = 9;
  CHECK_INT(sip_digest_response(&r2617, out), SIP_EINVAL);
}

/* RFC 7616 §3.9.2 (SHA-512-256, UTF-8 user name, userhash=true). The
 * username the RFC prints (488869477bf2...) is not H("Jäsøn Doe" ":"
 * "api@example.org") (erratum 4897); these are computed independently
 * with `openssl dgst -sha512-256` / `-sha256` / `-md5`. */
static void test_userhash(void) {
  char out[SIP_DIGEST_HEX_BUF];
  sip_str jason = S("J\xc3\xa4s\xc3\xb8n Doe");
  CHECK_INT(sip_digest_userhash(SIP_DIGEST_SHA512_256, jason,
                                S("api@example.org"), out),
            64);
  CHECK(strcmp(out, "793263caabb707a56211940d90411ea4a575adeccb7e360aeb624e"
                    "d06ece9b0b") == 0);
  CHECK_INT(sip_digest_userhash(SIP_DIGEST_SHA256, S("Mufasa"),
                                S("http-auth@example.org"), out),
            64);
  CHECK(strcmp(out, "a947aad205e80e429958a387394944c6b496301e79f89d35a4cc23"
                    "b6ee12b5b6") == 0);
  CHECK_INT(sip_digest_userhash(SIP_DIGEST_MD5, S("Mufasa"),
                                S("http-auth@example.org"), out),
            32);
  CHECK(strcmp(out, "4238f3a16167373febb9bc4d43db9cc4") == 0);
  CHECK_INT(sip_digest_userhash(7, S("a"), S("b"), out), SIP_EINVAL);
}

static int unhex(const char *h, char *out) {
  size_t n = strlen(h);
  for (size_t i = 0; i + 1 < n; i += 2) {
    unsigned v;
    if (sscanf(h + i, "%2x", &v) != 1)
      return -1;
    out[i / 2] = (char)v;
  }
  return (int)(n / 2);
}

/* spec/fixtures/digest_kat.txt, from spec/fixtures/digest_kat.py */
static void test_fixtures(void) {
  size_t len;
  char *text = slurp("spec/fixtures/digest_kat.txt", &len);
  CHECK_MSG(text != NULL, "spec/fixtures/digest_kat.txt (run from the root)");
  if (!text)
    return;
  text = realloc(text, len + 1);
  text[len] = '\0';
  int cases = 0;
  for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
    if (line[0] == '#')
      continue;
    char *f[14];
    int n = 0;
    for (char *p = line; n < 14; n++) {
      f[n] = p;
      char *bar = strchr(p, '|');
      if (!bar) {
        n++;
        break;
      }
      *bar = '\0';
      p = bar + 1;
    }
    CHECK_INT(n, 14);
    if (n != 14)
      continue;
    cases++;
    int sess = 0;
    int alg = sip_digest_alg_lookup(f[1], strlen(f[1]), &sess);
    CHECK_MSG(alg >= 0, "%s: algorithm %s", f[0], f[1]);
    char ha1[SIP_DIGEST_HEX_BUF], out[SIP_DIGEST_HEX_BUF];
    sip_digest_ha1(alg, cs(f[2]), cs(f[3]), cs(f[4]), ha1);
    CHECK_MSG(strcmp(ha1, f[12]) == 0, "%s: HA1 %s, want %s", f[0], ha1, f[12]);
    static char body[4096];
    int blen = unhex(f[11], body);
    int noqop = strcmp(f[10], "-") == 0;
    sip_digest_in in = {
        .alg = alg,
        .sess = sess,
        .ha1 = cs(f[12]),
        .nonce = cs(f[7]),
        .nc = cs(f[8]),
        .cnonce = cs(f[9]),
        .qop = noqop ? SIP_STR_NULL : cs(f[10]),
        .method = cs(f[5]),
        .uri = cs(f[6]),
        .body = {body, (size_t)blen},
    };
    CHECK(sip_digest_response(&in, out) > 0);
    CHECK_MSG(strcmp(out, f[13]) == 0, "%s: response %s, want %s", f[0], out,
              f[13]);
    CHECK_MSG(sip_digest_verify(&in, cs(f[13])) == 1, "%s: verify", f[0]);
    /* one byte of the body, or of the uri, changes the answer */
    if (blen > 0) {
      body[0] ^= 1;
      CHECK_MSG(sip_digest_verify(&in, cs(f[13])) == 0, "%s: body", f[0]);
      body[0] ^= 1;
    }
    in.uri.len--;
    CHECK_MSG(sip_digest_verify(&in, cs(f[13])) == 0, "%s: uri", f[0]);
  }
  CHECK_MSG(cases >= 17, "%d cases", cases);
  free(text);
}

static void test_nonces(void) {
  sip_str secret = S("0123456789abcdef0123456789abcdef");
  char n1[SIP_NONCE_LEN + 1], n2[SIP_NONCE_LEN + 1];
  const uint64_t sec = SIP_NONCE_SECOND;
  uint64_t now = 1700000000 * sec, issued = 0;
  unsigned char key[SIP_NONCE_KEY_LEN], key2[SIP_NONCE_KEY_LEN];
  CHECK_INT(sip_nonce_make(secret, S("example.com"), now, n1), SIP_NONCE_LEN);
  CHECK_INT(sip_nonce_make(secret, S("example.com"), now, n2), SIP_NONCE_LEN);
  CHECK(strlen(n1) == SIP_NONCE_LEN);
  CHECK(strcmp(n1, n2) != 0); /* the salt: two nonces of one second differ */
  sip_str s1 = {n1, SIP_NONCE_LEN};
  CHECK_INT(sip_nonce_check(secret, S("example.com"), s1, now + 10 * sec, 300,
                            &issued, key),
            0);
  CHECK(issued == now);
  CHECK_INT(sip_nonce_check(secret, S("example.com"), (sip_str){n2, 64}, now,
                            300, NULL, key2),
            0);
  CHECK(memcmp(key, key2, SIP_NONCE_KEY_LEN) != 0);
  /* another realm, another secret, a changed digit, a changed time */
  CHECK_INT(sip_nonce_check(secret, S("example.org"), s1, now, 300, NULL, NULL),
            SIP_EVALUE);
  CHECK_INT(sip_nonce_check(S("another secret"), S("example.com"), s1, now, 300,
                            NULL, NULL),
            SIP_EVALUE);
  char bad[SIP_NONCE_LEN + 1];
  for (int i = 0; i < SIP_NONCE_LEN; i += 7) {
    memcpy(bad, n1, sizeof bad);
    bad[i] = bad[i] == '0' ? '1' : '0';
    CHECK_MSG(sip_nonce_check(secret, S("example.com"), (sip_str){bad, 64}, now,
                              300, NULL, NULL) == SIP_EVALUE,
              "digit %d", i);
  }
  memcpy(bad, n1, sizeof bad);
  for (int i = 0; i < SIP_NONCE_LEN; i++)
    if (bad[i] >= 'a' && bad[i] <= 'f')
      bad[i] = (char)(bad[i] - 32);
  if (strcmp(bad, n1) != 0)
    CHECK_INT(sip_nonce_check(secret, S("example.com"), (sip_str){bad, 64}, now,
                              300, NULL, NULL),
              SIP_EVALUE);
  CHECK_INT(sip_nonce_check(secret, S("example.com"), (sip_str){n1, 63}, now,
                            300, NULL, NULL),
            SIP_EVALUE);
  CHECK_INT(sip_nonce_check(secret, S("example.com"), SIP_STR_NULL, now, 300,
                            NULL, NULL),
            SIP_EVALUE);
  CHECK_INT(sip_nonce_check(secret, S("example.com"), S("\"\""), now, 300, NULL,
                            NULL),
            SIP_EVALUE);
  /* lifetime */
  CHECK_INT(sip_nonce_check(secret, S("example.com"), s1, now + 300 * sec, 300,
                            &issued, NULL),
            0);
  CHECK_INT(sip_nonce_check(secret, S("example.com"), s1, now + 301 * sec, 300,
                            &issued, NULL),
            SIP_ESTALE);
  CHECK(issued == now);
  CHECK_INT(sip_nonce_check(secret, S("example.com"), s1, now - 3600 * sec, 300,
                            NULL, NULL),
            SIP_ESTALE);
  CHECK_INT(sip_nonce_make(SIP_STR_NULL, S("x"), now, n1), SIP_EINVAL);
}

static void make_key(unsigned char *key, uint32_t i) {
  memset(key, 0, SIP_NONCE_KEY_LEN);
  memcpy(key + 4, &i, sizeof i);
}

static void test_nc_cache(void) {
  const uint64_t sec = SIP_NONCE_SECOND;
  sip_nonce_cache *c = sip_nonce_cache_new(10);
  CHECK(c != NULL);
  CHECK_INT(sip_nonce_cache_bytes(c), 64 * 32);
  unsigned char k[SIP_NONCE_KEY_LEN];
  memset(k, 0xab, sizeof k);
  uint64_t now = 1000 * sec;
  CHECK_INT(sip_nonce_cache_use(c, k, now - 10, 1, now, 300), 0);
  CHECK_INT(sip_nonce_cache_use(c, k, now - 10, 1, now, 300), SIP_EREPLAY);
  CHECK_INT(sip_nonce_cache_use(c, k, now - 10, 2, now, 300), 0);
  CHECK_INT(sip_nonce_cache_use(c, k, now - 10, 5, now, 300), 0);
  CHECK_INT(sip_nonce_cache_use(c, k, now - 10, 3, now, 300), SIP_EREPLAY);
  CHECK_INT(sip_nonce_cache_use(c, k, now - 10, 5, now, 300), SIP_EREPLAY);
  CHECK_INT(sip_nonce_cache_count(c), 1);
  /* 10000 live nonces through 64 slots: each is taken on first use, the
   * memory stays the same, and every one that was forgotten is stale,
   * never accepted again */
  int first = 0, accepted_again = 0, stale = 0, replay = 0;
  for (uint32_t i = 0; i < 10000; i++) {
    unsigned char key[SIP_NONCE_KEY_LEN];
    make_key(key, i);
    first += sip_nonce_cache_use(c, key, now + i, 1, now + i, 300) == 0;
  }
  CHECK_INT(first, 10000);
  CHECK(sip_nonce_cache_count(c) <= 64);
  for (uint32_t i = 0; i < 10000; i++) {
    unsigned char key[SIP_NONCE_KEY_LEN];
    make_key(key, i);
    int rc = sip_nonce_cache_use(c, key, now + i, 1, now + 10000, 300);
    accepted_again += rc == 0;
    stale += rc == SIP_ESTALE;
    replay += rc == SIP_EREPLAY;
  }
  CHECK_INT(accepted_again, 0);
  CHECK_INT(stale + replay, 10000);
  CHECK(replay > 0 && replay <= 64);
  sip_nonce_cache_free(c);

  /* expired entries are free slots: nonces that come and go within their
   * lifetime never evict a live one (nothing becomes stale) */
  sip_nonce_cache *d = sip_nonce_cache_new(64);
  int bad = 0;
  for (uint32_t round = 0; round < 20; round++) {
    uint64_t t = now + round * 20 * sec;
    for (uint32_t i = 0; i < 16; i++) {
      unsigned char key[SIP_NONCE_KEY_LEN];
      make_key(key, round * 16 + i);
      bad += sip_nonce_cache_use(d, key, t + i, 1, t + i, 10) != 0;
      bad += sip_nonce_cache_use(d, key, t + i, 2, t + i, 10) != 0;
    }
  }
  CHECK_INT(bad, 0);
  CHECK(sip_nonce_cache_count(d) <= 64);
  sip_nonce_cache_free(d);
  sip_nonce_cache_free(NULL);
}

static void test_redact(void) {
  static const char msg[] =
      "REGISTER sip:example.com SIP/2.0\r\n"
      "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1\r\n"
      "authorization : Digest username=\"alice\", realm=\"example.com\",\r\n"
      "  nonce=\"SECRETNONCE\", uri=\"sip:example.com\",\r\n"
      "\tresponse=\"SECRETRESPONSE\", algorithm=SHA-256, cnonce=\"SECRETC\", "
      "qop=auth, nc=00000001, opaque=\"SECRETO\\\"x\"\r\n"
      "Proxy-Authorization: Basic U0VDUkVUQkFTSUM=\r\n"
      "Proxy-Authorization: Digest username=\"bob\" response=SECRETBROKEN\r\n"
      "Proxy-Authorization: Digest response=\"SECRETUNTERMINATED\r\n"
      "Contact: <sip:alice@127.0.0.1:5070>\r\n"
      "Content-Length: 34\r\n"
      "\r\n"
      "Authorization: Digest body-stays\r\n";
  size_t need = sip_auth_redact(msg, sizeof msg - 1, NULL, 0);
  CHECK(need > 0);
  char *out = malloc(need + 1);
  CHECK_INT(sip_auth_redact(msg, sizeof msg - 1, out, need), need);
  out[need] = '\0';
  CHECK_MSG(strstr(out, "SECRET") == NULL, "%s", out);
  CHECK(strstr(out, "username=\"alice\"") != NULL);
  CHECK(strstr(out, "realm=\"example.com\"") != NULL);
  CHECK(strstr(out, "algorithm=SHA-256") != NULL);
  CHECK(strstr(out, "nc=00000001") != NULL);
  CHECK(strstr(out, "response=\"<redacted>\"") != NULL);
  CHECK(strstr(out, "Proxy-Authorization: Basic <redacted>\r\n") != NULL);
  CHECK(strstr(out, "Contact: <sip:alice@127.0.0.1:5070>\r\n") != NULL);
  CHECK(strstr(out, "\r\n\r\nAuthorization: Digest body-stays\r\n") != NULL);
  /* a short buffer: the length needed all the same, nothing past cap */
  char small[40];
  memset(small, 'x', sizeof small);
  CHECK_INT(sip_auth_redact(msg, sizeof msg - 1, small, 30), need);
  CHECK(small[30] == 'x');
  free(out);
  static const char none[] = "OPTIONS sip:x SIP/2.0\r\nVia: a\r\n\r\n";
  CHECK_INT(sip_auth_redact(none, sizeof none - 1, NULL, 0), 0);
  CHECK_INT(sip_auth_redact("garbage", 7, NULL, 0), 0);
}

int main(void) {
  test_alg_names();
  test_rfc_vectors();
  test_userhash();
  test_fixtures();
  test_nonces();
  test_nc_cache();
  test_redact();
  return check_summary("digest_test");
}
