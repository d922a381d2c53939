/* Registration text: AOR, binding key, kept contact parameters. */
#include <stdio.h>
#include <string.h>

#include "sip_registrar.h"

void sip_obuf_init(sip_obuf *b, char *mem, size_t cap) {
  b->p = mem;
  b->len = 0;
  b->cap = cap;
  b->overflow = 0;
}

void sip_obuf_put(sip_obuf *b, const char *p, size_t n) {
  if (n > b->cap - b->len) {
    b->overflow = 1;
    return;
  }
  if (n)
    memcpy(b->p + b->len, p, n);
  b->len += n;
}

void sip_obuf_puts(sip_obuf *b, const char *s) {
  sip_obuf_put(b, s, strlen(s));
}

static char lower(char c) {
  return c >= 'A' && c <= 'Z' ? (char)(c + ('a' - 'A')) : c;
}

void sip_obuf_put_lower(sip_obuf *b, const char *p, size_t n) {
  if (n > b->cap - b->len) {
    b->overflow = 1;
    return;
  }
  for (size_t i = 0; i < n; i++)
    b->p[b->len + i] = lower(p[i]);
  b->len += n;
}

/* unreserved / user-unreserved (RFC 3261 §25.1): kept as they are */
static int user_char(unsigned char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
      (c >= '0' && c <= '9'))
    return 1;
  return c && strchr("-_.!~*'()&=+$,;?/", c) != NULL;
}

void sip_obuf_put_user(sip_obuf *b, const char *p, size_t n) {
  static const char hex[] = "0123456789ABCDEF";
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)p[i];
    if (user_char(c)) {
      sip_obuf_put(b, (const char *)&p[i], 1);
    } else {
      char e[3] = {'%', hex[c >> 4], hex[c & 15]};
      sip_obuf_put(b, e, 3);
    }
  }
}

static sip_str user_of(const sip_uri *u) {
  return u->user_dec.p ? u->user_dec : u->user;
}

static int is_sip(const sip_uri *u) {
  return u->kind == SIP_URI_SIP || u->kind == SIP_URI_SIPS;
}

int sip_reg_aor(const sip_uri *u, sip_obuf *out) {
  if (!is_sip(u) || u->host.len == 0)
    return SIP_EINVAL;
  sip_obuf_put_lower(out, u->scheme.p, u->scheme.len);
  sip_obuf_put(out, ":", 1);
  sip_str user = user_of(u);
  if (user.len) {
    sip_obuf_put_user(out, user.p, user.len);
    sip_obuf_put(out, "@", 1);
  }
  sip_obuf_put_lower(out, u->host.p, u->host.len);
  return 0;
}

int sip_reg_contact_key(const sip_uri *u, sip_obuf *out) {
  static const char *const compared[] = {"maddr", "method", "transport", "ttl",
                                         "user"};
  sip_obuf_put_lower(out, u->scheme.p, u->scheme.len);
  sip_obuf_put(out, ":", 1);
  if (!is_sip(u)) { /* tel and others: the rest as written */
    size_t rest = u->scheme.len + 1;
    sip_obuf_put(out, u->raw.p + rest, u->raw.len - rest);
    return 0;
  }
  if (u->user.p) {
    sip_str user = user_of(u);
    sip_obuf_put_user(out, user.p, user.len);
    if (u->password.p) {
      sip_str pw = u->password_dec.p ? u->password_dec : u->password;
      sip_obuf_put(out, ":", 1);
      sip_obuf_put_user(out, pw.p, pw.len);
    }
    sip_obuf_put(out, "@", 1);
  }
  sip_obuf_put_lower(out, u->host.p, u->host.len);
  if (u->has_port) {
    char port[8];
    int n = snprintf(port, sizeof port, ":%u", (unsigned)u->port);
    sip_obuf_put(out, port, (size_t)n);
  }
  for (size_t i = 0; i < sizeof compared / sizeof *compared; i++) {
    const sip_param *p = sip_params_get(&u->params, compared[i]);
    if (!p)
      continue;
    sip_obuf_put(out, ";", 1);
    sip_obuf_puts(out, compared[i]);
    if (p->value.p) {
      sip_str v = p->dec.p ? p->dec : p->value;
      sip_obuf_put(out, "=", 1);
      sip_obuf_put_lower(out, v.p, v.len);
    }
  }
  /* the headers: everything after the first '?' of the URI as written */
  const char *q = memchr(u->raw.p, '?', u->raw.len);
  if (q)
    sip_obuf_put(out, q, (size_t)(u->raw.p + u->raw.len - q));
  return 0;
}

static int blank(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' ||
         c == '\f';
}

static int dropped(const char *name, size_t n) {
  static const char *const names[] = {"q", "expires", "pub-gruu", "temp-gruu"};
  for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
    size_t m = strlen(names[i]);
    if (m != n)
      continue;
    size_t j = 0;
    while (j < n && lower(name[j]) == names[i][j])
      j++;
    if (j == n)
      return 1;
  }
  return 0;
}

void sip_reg_kept_params(sip_str raw, sip_obuf *out) {
  const char *s = raw.p;
  size_t n = raw.len, i = 0;
  while (i < n) {
    /* one piece: from s[i] up to the next ';' outside quotes */
    size_t j = i + 1;
    int inq = 0;
    while (j < n) {
      char c = s[j];
      if (c == '"')
        inq = !inq;
      else if (c == '\\' && inq)
        j++;
      else if (c == ';' && !inq)
        break;
      j++;
    }
    if (j > n)
      j = n;
    if (s[i] == ';') {
      size_t a = i + 1;
      while (a < j && blank(s[a]))
        a++;
      size_t b = a;
      while (b < j && s[b] != '=' && !blank(s[b]))
        b++;
      if (b > a && !dropped(s + a, b - a)) {
        size_t end = j;
        while (end > a && blank(s[end - 1]))
          end--;
        sip_obuf_put(out, ";", 1);
        sip_obuf_put(out, s + a, end - a);
      }
    }
    i = j;
  }
}
