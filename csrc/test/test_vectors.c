/* The parser against the RFC 4475 / RFC 5118 torture vectors of
 * spec/vectors: every file of INDEX.tsv is parsed with its verdict
 * checked, every lazily parsed field is read, and each valid message is also
 * fed to stream mode one byte at a time.
 *
 * Every input is copied so that it ends exactly where a PROT_NONE guard page
 * begins: a read one byte past the message is a SIGSEGV (and ASan/valgrind
 * report other out-of-bounds reads).
 *
 * Vectors directory: argv[1], else $LUASIP_VECTORS, else the compile-time
 * LUASIP_VECTORS_DIR, else spec/vectors (the repository's copy). */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "check.h"
#include "sip_msg.h"
#include "touch.h"

#ifndef LUASIP_VECTORS_DIR
#define LUASIP_VECTORS_DIR "spec/vectors"
#endif

/* ---- guard-page buffer ------------------------------------------------- */

typedef struct guard {
  char *base;
  size_t size; /* mapped bytes, the last page is PROT_NONE */
  size_t page;
} guard;

/* Copy data[0..len) so that its last byte is the last readable byte. */
static char *guard_place(guard *g, const char *data, size_t len) {
  size_t need = (len + g->page - 1) / g->page * g->page + g->page;
  if (need < 2 * g->page)
    need = 2 * g->page;
  if (need > g->size) {
    if (g->base)
      munmap(g->base, g->size);
    g->base = mmap(NULL, need, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (g->base == MAP_FAILED) {
      perror("mmap");
      exit(2);
    }
    if (mprotect(g->base + need - g->page, g->page, PROT_NONE) != 0) {
      perror("mprotect");
      exit(2);
    }
    g->size = need;
  }
  char *end = g->base + g->size - g->page;
  memcpy(end - len, data, len);
  return end - len;
}

/* ---- helpers ------------------------------------------------------------ */

static int ieq(sip_str s, const char *c) {
  return s.p && sip_str_ieq_cstr(s, c);
}

static int eq(sip_str s, const char *c, size_t n) {
  return s.p && s.len == n && memcmp(s.p, c, n) == 0;
}
#define EQ(s, lit) eq((s), (lit), sizeof(lit) - 1)

/* ---- reading every field ------------------------------------------------ */

#define MAX_FIELDS 512

typedef struct fields {
  int n;
  const char *name[MAX_FIELDS];
  int rc[MAX_FIELDS];
  /* results kept for the per-vector checks */
  const sip_uri *ruri;
  const sip_via *vias;
  const sip_addr *from, *to, *contacts, *routes, *rroutes;
  const sip_cseq *cseq;
  sip_str call_id;
  uint32_t max_forwards, expires;
  const sip_ctype *ctype;
  const sip_part *parts;
  int nvia, ncontact, nparts;
} fields;

static void note(fields *f, const char *name, int rc) {
  if (f->n < MAX_FIELDS) {
    f->name[f->n] = name;
    f->rc[f->n] = rc;
    f->n++;
  }
}

static void read_fields(sip_msg *m, fields *f) {
  int rc;
  memset(f, 0, sizeof *f);

  touch(m->method);
  touch(m->ruri);
  touch(m->version);
  touch(m->reason);
  touch(m->start_line);
  touch(m->body);
  for (uint32_t i = 0; i < m->nhdr; i++) {
    sip_str v;
    touch(m->hdr[i].name);
    touch(m->hdr[i].value);
    touch(m->hdr[i].raw);
    rc = sip_msg_unfolded(m, &m->hdr[i], &v);
    if (rc == 0)
      touch(v);
    note(f, "unfolded value", rc);
  }

  if (m->is_request) {
    rc = sip_msg_get_ruri(m, &f->ruri);
    if (rc == 0)
      touch_uri(f->ruri);
    note(f, "Request-URI", rc);
  }

  rc = sip_msg_get_vias(m, &f->vias);
  if (rc == 0) {
    for (const sip_via *v = f->vias; v; v = v->next, f->nvia++) {
      touch(v->raw);
      touch(v->protocol);
      touch(v->version);
      touch(v->transport);
      touch(v->host);
      touch(v->params_raw);
      touch_params(&v->params);
      touch(v->branch);
      touch(v->received);
      touch(v->maddr);
      touch(v->ttl);
    }
  }
  note(f, "Via", rc);

  rc = sip_msg_get_addr(m, SIP_H_FROM, &f->from);
  if (rc == 0)
    touch_addr(f->from);
  note(f, "From", rc);
  rc = sip_msg_get_addr(m, SIP_H_TO, &f->to);
  if (rc == 0)
    touch_addr(f->to);
  note(f, "To", rc);

  rc = sip_msg_get_addrs(m, SIP_H_CONTACT, &f->contacts);
  if (rc == 0)
    f->ncontact = touch_addrs(f->contacts);
  note(f, "Contact", rc);
  rc = sip_msg_get_addrs(m, SIP_H_ROUTE, &f->routes);
  if (rc == 0)
    touch_addrs(f->routes);
  note(f, "Route", rc);
  rc = sip_msg_get_addrs(m, SIP_H_RECORD_ROUTE, &f->rroutes);
  if (rc == 0)
    touch_addrs(f->rroutes);
  note(f, "Record-Route", rc);

  rc = sip_msg_get_cseq(m, &f->cseq);
  if (rc == 0)
    touch(f->cseq->method);
  note(f, "CSeq", rc);

  rc = sip_msg_get_call_id(m, &f->call_id);
  if (rc == 0)
    touch(f->call_id);
  note(f, "Call-ID", rc);

  note(f, "Max-Forwards", sip_msg_get_max_forwards(m, &f->max_forwards));
  note(f, "Expires", sip_msg_get_expires(m, &f->expires));

  rc = sip_msg_get_ctype(m, &f->ctype);
  if (rc == 0) {
    touch(f->ctype->type);
    touch(f->ctype->subtype);
    touch_params(&f->ctype->params);
    touch(f->ctype->boundary);
  }
  note(f, "Content-Type", rc);

  if (rc == 0 && ieq(f->ctype->type, "multipart")) {
    rc = sip_msg_get_parts(m, &f->parts);
    if (rc >= 0) {
      for (const sip_part *p = f->parts; p; p = p->next, f->nparts++) {
        touch(p->headers);
        touch(p->content_type);
        touch(p->body);
      }
      rc = 0;
    }
    note(f, "multipart body", rc);
  }

  for (uint32_t i = 0; i < m->nhdr; i++) {
    int id = m->hdr[i].id;
    if (m->hdr[i].state == SIP_HS_REMOVED)
      continue;
    if (id == SIP_H_AUTHORIZATION || id == SIP_H_PROXY_AUTHORIZATION ||
        id == SIP_H_WWW_AUTHENTICATE || id == SIP_H_PROXY_AUTHENTICATE) {
      const sip_auth *a;
      rc = sip_msg_get_auth(m, (int)i, &a);
      if (rc == 0) {
        touch(a->scheme);
        touch_params(&a->params);
      }
      note(f, "credentials/challenge", rc);
    }
  }
}

/* First field error other than "absent", or 0. */
static int first_error(const fields *f, const char **what) {
  for (int i = 0; i < f->n; i++) {
    if (f->rc[i] != 0 && f->rc[i] != SIP_ENOTFOUND) {
      *what = f->name[i];
      return f->rc[i];
    }
  }
  return 0;
}

/* ---- the INDEX and its exceptions -------------------------------------- */

/* invalid-parse vectors whose INDEX note lets a liberal element accept the
 * message ("may be rejected", "a liberal element may ...", "should just
 * ignore it", "quote inference is allowed"): either outcome passes. */
static const char *const liberal[] = {
    "rfc4475/lwsruri.dat",  "rfc4475/lwsstart.dat", "rfc4475/trws.dat",
    "rfc4475/ltgtruri.dat", "rfc4475/escruri.dat",  "rfc4475/baddate.dat",
    "rfc4475/badaspec.dat", "rfc4475/baddn.dat",
};

static int is_liberal(const char *file) {
  for (size_t i = 0; i < sizeof liberal / sizeof liberal[0]; i++)
    if (strcmp(file, liberal[i]) == 0)
      return 1;
  return 0;
}

/* Rewrite the Content-Length value to the real body length (the RFC 5118
 * files whose CRLF conversion changed the body size; the INDEX note says
 * "CAUTION: ... Content-Length"). Returns a malloc'd copy. */
static char *fix_content_length(const char *buf, size_t len, size_t *outlen) {
  const char *hend = NULL;
  for (size_t i = 0; i + 4 <= len; i++) {
    if (memcmp(buf + i, "\r\n\r\n", 4) == 0) {
      hend = buf + i + 2; /* start of the empty line */
      break;
    }
  }
  if (!hend)
    return NULL;
  size_t body = len - (size_t)(hend + 2 - buf);
  const char *line = buf;
  while (line < hend) {
    const char *eol = memchr(line, '\n', (size_t)(hend - line));
    if (!eol)
      break;
    const char *colon = memchr(line, ':', (size_t)(eol - line));
    if (colon) {
      size_t nlen = (size_t)(colon - line);
      while (nlen && (line[nlen - 1] == ' ' || line[nlen - 1] == '\t'))
        nlen--;
      if (sip_hdr_lookup(line, nlen) == SIP_H_CONTENT_LENGTH) {
        char num[32];
        int nn = snprintf(num, sizeof num, "%zu", body);
        const char *v = colon + 1;
        while (*v == ' ' || *v == '\t')
          v++;
        const char *ve = v;
        while (*ve >= '0' && *ve <= '9')
          ve++;
        size_t pre = (size_t)(v - buf), post = len - (size_t)(ve - buf);
        char *out = malloc(pre + (size_t)nn + post);
        memcpy(out, buf, pre);
        memcpy(out + pre, num, (size_t)nn);
        memcpy(out + pre + nn, ve, post);
        *outlen = pre + (size_t)nn + post;
        return out;
      }
    }
    line = eol + 1;
  }
  return NULL;
}

/* ---- per-vector checks beyond the verdict ------------------------------- */

static const sip_param *param(const sip_params *ps, const char *name) {
  return sip_params_get(ps, name);
}

static void specific(const char *file, sip_msg *m, const fields *f,
                     size_t inlen) {
  const char *b = strrchr(file, '/');
  b = b ? b + 1 : file;
#define IS(n) (strcmp(b, n) == 0)
  if (IS("wsinv.dat")) {
    CHECK_INT(f->max_forwards, 68);
    CHECK(f->cseq && f->cseq->num == 9 && EQ(f->cseq->method, "INVITE"));
    CHECK_INT(f->nvia, 3);
    CHECK(f->to && EQ(f->to->tag, "1918181833n"));
    CHECK(f->from && EQ(f->from->tag, "98asjd8"));
    CHECK(f->contacts && f->contacts->q == 330);
    CHECK(f->routes && f->routes->uri.lr);
  } else if (IS("esc01.dat")) {
    const sip_param *p =
        f->contacts ? param(&f->contacts->uri.params, "name") : NULL;
    CHECK_MSG(p && EQ(p->dec, "value%41"), "esc01: n%%61me decoded once");
    CHECK(f->ruri && EQ(f->ruri->user_dec, "sips:user@example.com"));
  } else if (IS("escnull.dat")) {
    CHECK_INT(f->ncontact, 2);
    if (f->ncontact == 2) {
      CHECK(EQ(f->contacts->uri.user_dec, "\0"));
      CHECK(EQ(f->contacts->next->uri.user_dec, "\0\0"));
    }
    CHECK(f->to && EQ(f->to->uri.user_dec, "null-\0-null"));
  } else if (IS("esc02.dat")) {
    CHECK_STR(m->method, "RE%47IST%45R");
    CHECK_INT(f->ncontact, 2);
  } else if (IS("longreq.dat")) {
    CHECK_INT(f->nvia, 34);
  } else if (IS("dblreq.dat")) {
    CHECK_STR(m->method, "REGISTER");
    CHECK(m->len < inlen);
    CHECK_INT(m->body.len, 0);
  } else if (IS("semiuri.dat")) {
    CHECK(f->ruri && EQ(f->ruri->user_dec, "user;par=u@example.net"));
  } else if (IS("transports.dat")) {
    static const char *const t[] = {"UDP", "SCTP", "TLS", "UNKNOWN", "TCP"};
    CHECK_INT(f->nvia, 5);
    int i = 0;
    for (const sip_via *v = f->vias; v && i < 5; v = v->next, i++)
      CHECK_MSG(ieq(v->transport, t[i]), "Via %d: %.*s, want %s", i,
                (int)v->transport.len, v->transport.p, t[i]);
  } else if (IS("mpart01.dat")) {
    CHECK_INT(m->body.len, 553);
    CHECK_INT(f->nparts, 2);
  } else if (IS("noreason.dat")) {
    CHECK_INT(m->status, 100);
    CHECK(m->reason.p != NULL && m->reason.len == 0);
  } else if (IS("unreason.dat")) {
    CHECK_INT(m->status, 200);
  } else if (IS("zeromf.dat")) {
    CHECK_INT(f->max_forwards, 0);
  } else if (IS("cparam01.dat")) {
    CHECK(f->contacts && param(&f->contacts->params, "unknownparam"));
    CHECK(f->contacts && !param(&f->contacts->uri.params, "unknownparam"));
  } else if (IS("cparam02.dat")) {
    CHECK(f->contacts && param(&f->contacts->uri.params, "unknownparam"));
    CHECK(f->contacts && !param(&f->contacts->params, "unknownparam"));
  } else if (IS("regescrt.dat")) {
    CHECK(f->contacts && f->contacts->uri.headers_raw.p != NULL);
  } else if (IS("inv2543.dat")) {
    CHECK(!m->has_clen && m->body.len > 0);
  } else if (IS("badvers.dat")) {
    CHECK_STR(m->version, "SIP/7.0");
  } else if (IS("badbranch.dat")) {
    CHECK(f->vias && EQ(f->vias->branch, "z9hG4bK"));
  } else if (IS("insuf.dat")) {
    CHECK(f->from == NULL && f->to == NULL && f->call_id.p == NULL);
  } else if (IS("multi01.dat")) {
    CHECK_INT(sip_msg_count(m, SIP_H_CALL_ID, NULL, 0), 2);
  } else if (IS("unkscm.dat") || IS("novelsc.dat")) {
    CHECK(f->ruri && f->ruri->kind == SIP_URI_OTHER);
  } else if (IS("ipv6-good.dat") || IS("ipv6-bug-abnf-3-colons.dat") ||
             IS("ipv6-correct-abnf-2-colons.dat")) {
    CHECK(f->ruri && f->ruri->host_type == SIP_HOST_IPV6);
  } else if (IS("port-ambiguous.dat")) {
    CHECK(f->ruri && f->ruri->host_type == SIP_HOST_IPV6 && !f->ruri->has_port);
  } else if (IS("port-unambiguous.dat")) {
    CHECK(f->ruri && f->ruri->has_port && f->ruri->port == 5070);
  } else if (IS("mult-ip-in-header.dat")) {
    CHECK_INT(f->nvia, 3);
  } else if (IS("ipv6-in-sdp.dat") || IS("mult-ip-in-sdp.dat") ||
             IS("ipv4-mapped-ipv6.dat")) {
    CHECK(m->body.p && m->body.p + m->body.len == m->buf + m->len);
  }
#undef IS
}

/* ---- one vector --------------------------------------------------------- */

static int nvectors, nliberal_accepted;

static void run_vector(guard *g, const char *dir, const char *file,
                       const char *expected, const char *notes) {
  char path[4096];
  size_t len;
  snprintf(path, sizeof path, "%s/%s", dir, file);
  char *data = slurp(path, &len);
  CHECK_MSG(data != NULL, "cannot read %s", path);
  if (!data)
    return;
  nvectors++;

  if (strstr(notes, "CAUTION") && strstr(notes, "Content-Length")) {
    size_t nlen;
    char *fixed = fix_content_length(data, len, &nlen);
    CHECK_MSG(fixed != NULL, "%s: no Content-Length to correct", file);
    if (fixed) {
      free(data);
      data = fixed;
      len = nlen;
    }
  }

  int valid = strcmp(expected, "valid") == 0;
  int invalid = strcmp(expected, "invalid-parse") == 0;
  int semantic = strcmp(expected, "valid-syntax-but-semantic-error") == 0;
  CHECK_MSG(valid || invalid || semantic, "%s: unknown verdict '%s'", file,
            expected);
  /* mcl01: "the framing layer itself must flag this" (INDEX note) */
  int framing_error = strstr(file, "mcl01.dat") != NULL;

  /* datagram mode */
  sip_msg m;
  fields f;
  const char *what = NULL;
  char err[256];
  sip_msg_init(&m, NULL);
  const char *in = guard_place(g, data, len);
  int rc = sip_msg_parse(&m, in, len, SIP_MODE_DATAGRAM);
  int ferr = 0;
  if (rc > 0) {
    read_fields(&m, &f);
    ferr = first_error(&f, &what);
  } else {
    sip_msg_strerror(&m, rc, err, sizeof err);
  }

  if (framing_error) {
    CHECK_MSG(rc < 0, "%s: conflicting Content-Length accepted", file);
  } else if (valid || semantic) {
    CHECK_MSG(rc == (int)len, "%s (%s): parse returned %d (%s): %s", file,
              expected, rc, sip_errname(rc), rc < 0 ? err : "");
    if (rc > 0) {
      for (int i = 0; i < f.n; i++)
        CHECK_MSG(f.rc[i] == 0 || f.rc[i] == SIP_ENOTFOUND, "%s (%s): %s: %s",
                  file, expected, f.name[i], sip_errname(f.rc[i]));
      specific(file, &m, &f, len);
    }
  } else if (invalid) {
    int rejected = rc < 0 || ferr != 0;
    if (is_liberal(file)) {
      CHECK(1);
      if (!rejected)
        nliberal_accepted++;
      printf("  %-40s %s (liberal acceptance allowed by the INDEX note)\n",
             file, rejected ? "rejected" : "accepted");
    } else {
      CHECK_MSG(rejected, "%s (invalid-parse): parsed and every field OK",
                file);
    }
    if (rc < 0) {
      CHECK_MSG(m.err_off <= len, "%s: err_off %zu beyond %zu", file, m.err_off,
                len);
    }
  }
  if (getenv("LUASIP_VERBOSE"))
    printf("  %-40s %-32s parse=%s%s%s\n", file, expected,
           rc > 0 ? "ok" : sip_errname(rc), ferr ? " field " : "",
           ferr ? what : "");
  sip_msg_free(&m);

  /* stream mode, one more byte at a time: NEEDMORE until the message is
   * complete, then its length, also when more bytes follow */
  if (valid) {
    size_t n, done = 0;
    int r = SIP_ENEEDMORE;
    for (n = 1; n <= len; n++) {
      sip_msg_init(&m, NULL);
      r = sip_msg_parse(&m, guard_place(g, data, n), n, SIP_MODE_STREAM);
      sip_msg_free(&m);
      if (r != SIP_ENEEDMORE)
        break;
    }
    CHECK_MSG(r > 0 && (size_t)r == n,
              "%s: stream mode at %zu/%zu bytes: %d (%s)", file, n, len, r,
              sip_errname(r));
    if (r > 0) {
      done = (size_t)r;
      sip_msg_init(&m, NULL);
      r = sip_msg_parse(&m, guard_place(g, data, len), len, SIP_MODE_STREAM);
      CHECK_MSG(r > 0 && (size_t)r == done,
                "%s: stream mode with all %zu bytes: %d, want %zu", file, len,
                r, done);
      if (r > 0) {
        read_fields(&m, &f);
        int e = first_error(&f, &what);
        CHECK_MSG(e == 0, "%s: stream mode: %s: %s", file, what,
                  sip_errname(e));
      }
      sip_msg_free(&m);
    }
  }
  free(data);
}

int main(int argc, char **argv) {
  const char *dir = argc > 1 ? argv[1] : getenv("LUASIP_VECTORS");
  if (!dir || !*dir)
    dir = LUASIP_VECTORS_DIR;
  char path[4096];
  snprintf(path, sizeof path, "%s/INDEX.tsv", dir);
  size_t ilen;
  char *index = slurp(path, &ilen);
  if (!index) {
    fprintf(stderr, "test_vectors: cannot read %s\n", path);
    CHECK(index != NULL);
    return check_summary("test_vectors");
  }
  index = realloc(index, ilen + 1);
  index[ilen] = '\0';

  guard g = {NULL, 0, (size_t)sysconf(_SC_PAGESIZE)};
  char *save = NULL;
  int lineno = 0;
  for (char *line = strtok_r(index, "\n", &save); line;
       line = strtok_r(NULL, "\n", &save)) {
    if (lineno++ == 0 || !*line)
      continue; /* header */
    char *f1 = line, *f2 = strchr(f1, '\t');
    char *f3 = f2 ? strchr(f2 + 1, '\t') : NULL;
    char *f4 = f3 ? strchr(f3 + 1, '\t') : NULL;
    CHECK_MSG(f4 != NULL, "INDEX.tsv line %d: 4 fields expected", lineno);
    if (!f4)
      continue;
    *f2 = *f3 = *f4 = '\0';
    run_vector(&g, dir, f1, f3 + 1, f4 + 1);
  }
  CHECK_MSG(nvectors >= 61, "only %d vectors listed", nvectors);
  printf("test_vectors: %d vectors from %s (%d invalid accepted liberally)\n",
         nvectors, dir, nliberal_accepted);
  if (g.base)
    munmap(g.base, g.size);
  free(index);
  return check_summary("test_vectors");
}
