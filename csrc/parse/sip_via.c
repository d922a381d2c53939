/* Via (RFC 3261 §20.42, §25.1):
 *   via-parm = sent-protocol LWS sent-by *( SEMI via-params )
 *   sent-protocol = protocol-name SLASH protocol-version SLASH transport
 * SLASH and COLON allow LWS on both sides (wsinv), so every step skips it. */
#include <string.h>

#include "sip_fields.h"
#include "sip_scan.h"

static const char *skip_token(const char *p, const char *end) {
  return sip__span(p, end, SIP_C_TOKEN);
}

/* token LWS? "/" LWS? ; stores the token. NULL when malformed. */
static const char *token_slash(const char *p, const char *end, sip_str *tok) {
  const char *s = p;
  p = skip_token(p, end);
  if (p == s)
    return NULL;
  *tok = (sip_str){s, (size_t)(p - s)};
  p = sip__skip_lws(p, end);
  if (p == end || *p != '/')
    return NULL;
  return sip__skip_lws(p + 1, end);
}

/* A dotted quad with every part 0..255. */
static int is_ipv4(const char *p, const char *end) {
  int parts = 0;
  while (p < end) {
    unsigned v = 0, nd = 0;
    for (; p < end && *p >= '0' && *p <= '9'; p++, nd++)
      v = v * 10 + (unsigned)(*p - '0');
    if (nd == 0 || nd > 3 || v > 255)
      return 0;
    parts++;
    if (p < end) {
      if (*p != '.' || ++p == end)
        return 0;
    }
  }
  return parts == 4;
}

/* hostname bytes and '_' (built once) */
static uint8_t host_byte[256];

__attribute__((constructor)) static void host_byte_init(void) {
  for (int c = 0; c < 256; c++)
    host_byte[c] = sip__is((unsigned char)c, SIP_C_HOST) || c == '_';
}

static int digits_and_dots(const char *p, const char *end) {
  for (; p < end; p++)
    if (*p != '.' && !sip__is((unsigned char)*p, SIP_C_DIGIT))
      return 0;
  return 1;
}

/* sent-by host: IPv6 reference (brackets kept), IPv4 or hostname.
 * Returns the position after it, NULL when malformed. */
static const char *parse_host(const char *p, const char *end, sip_via *v) {
  const char *s = p;
  if (p < end && *p == '[') {
    for (p++; p < end &&
              (sip__is((unsigned char)*p, SIP_C_HEX) || *p == ':' || *p == '.');
         p++)
      ;
    if (p == end || *p != ']' || p == s + 1)
      return NULL;
    p++;
    v->host_type = SIP_HOST_IPV6;
  } else {
    /* '_' is not in hostname, but deployed hosts use it and nothing else
     * in a sent-by could be confused with it. */
    p = sip__span_tab(p, end, host_byte);
    if (p == s)
      return NULL;
    if (is_ipv4(s, p)) /* returns at once for a name: a letter first */
      v->host_type = SIP_HOST_IPV4;
    else if (digits_and_dots(s, p)) /* "192.0.2.256": neither */
      return NULL;
    else
      v->host_type = SIP_HOST_NAME;
  }
  v->host = (sip_str){s, (size_t)(p - s)};
  return p;
}

static int via_conveniences(sip_via *v) {
  for (uint32_t i = 0; i < v->params.n; i++) {
    const sip_param *pr = &v->params.v[i];
    sip_str n = pr->name;
    if (!v->branch.p && sip__ieq_letters(n, "branch", 6)) {
      v->branch = pr->dec;
    } else if (!v->received.p && sip__ieq_letters(n, "received", 8)) {
      v->received = pr->dec;
    } else if (!v->has_rport && sip__ieq_letters(n, "rport", 5)) {
      v->has_rport = 1;
      if (pr->dec.p) {
        uint64_t port;
        int r =
            sip__parse_uint(pr->dec.p, pr->dec.p + pr->dec.len, 65535, &port);
        if (r < 0)
          return r == SIP_ERANGE ? r : SIP_EPARAM;
        v->rport = (int32_t)port;
      }
    } else if (!v->maddr.p && sip__ieq_letters(n, "maddr", 5)) {
      v->maddr = pr->dec;
    } else if (!v->ttl.p && sip__ieq_letters(n, "ttl", 3)) {
      v->ttl = pr->dec;
    }
  }
  return 0;
}

/* One via-parm, [p, end) already trimmed. */
static int parse_via_parm(sip_arena *a, const char *p, const char *end,
                          sip_via *v) {
  memset(v, 0, sizeof *v);
  v->rport = -1;
  v->raw = (sip_str){p, (size_t)(end - p)};
  if (!(p = token_slash(p, end, &v->protocol)) ||
      !(p = token_slash(p, end, &v->version)))
    return SIP_EVIA;
  const char *s = p;
  p = skip_token(p, end);
  if (p == s)
    return SIP_EVIA;
  v->transport = (sip_str){s, (size_t)(p - s)};
  s = p;
  p = sip__skip_lws(p, end);
  if (p == s) /* LWS before sent-by is mandatory */
    return SIP_EVIA;
  if (!(p = parse_host(p, end, v)))
    return SIP_EVIA;
  p = sip__skip_lws(p, end);
  if (p < end && *p == ':') {
    p = sip__skip_lws(p + 1, end);
    s = p;
    while (p < end && sip__is((unsigned char)*p, SIP_C_DIGIT))
      p++;
    uint64_t port;
    int r = sip__parse_uint(s, p, 65535, &port);
    if (r < 0)
      return r == SIP_ERANGE ? r : SIP_EVIA;
    v->port = (uint16_t)port;
    v->has_port = 1;
    p = sip__skip_lws(p, end);
  }
  if (p == end)
    return 0;
  if (*p != ';')
    return SIP_EVIA;
  v->params_raw = (sip_str){p, (size_t)(end - p)};
  int r = sip_params_parse(a, p, (size_t)(end - p), &v->params);
  if (r < 0)
    return r;
  return via_conveniences(v);
}

int sip_via_list_parse(sip_arena *a, const char *p, size_t len,
                       sip_via ***tail) {
  /* Link the new values only when all parsed: a failure leaves the
   * caller's list untouched. */
  sip_via *head = NULL, **t = &head;
  int n = 0, r;
  sip_str rest = {p, len}, item;
  if (!len || !memchr(p, ',', len)) { /* one via-parm: skip the splitter */
    item = sip__trim(p, p + len);
    rest = SIP_STR_NULL;
    r = 1;
  } else {
    r = sip_split_next(&rest, &item);
  }
  while (r == 1) {
    sip_via *v = sip_arena_alloc(a, sizeof *v);
    if (!v)
      return SIP_ENOMEM;
    r = parse_via_parm(a, item.p, item.p + item.len, v);
    if (r < 0)
      return r;
    *t = v;
    t = &v->next;
    n++;
    r = sip_split_next(&rest, &item);
  }
  if (r < 0)
    return SIP_EVIA;
  if (n) {
    **tail = head;
    *tail = t;
  }
  return n;
}
