/* --trace: every message in and out as text, sngrep-style, written by the
 * transport so that nothing escapes it (answers made in C, retransmissions
 * from the transaction timers, messages that failed to parse). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sip_digest.h"
#include "tp_int.h"

void sip_tp_set_trace(sip_tp *tp, FILE *out) { tp->trace = out; }

static void addr_or_dash(const struct sockaddr_storage *sa, char *out,
                         size_t cap) {
  if (sa && (sa->ss_family == AF_INET || sa->ss_family == AF_INET6))
    sip_tp_addr_str(sa, out, cap);
  else
    snprintf(out, cap, "-");
}

void sip__tp_trace(sip_tp *tp, int outgoing, const char *bytes, size_t len,
                   int transport, const struct sockaddr_storage *local,
                   const struct sockaddr_storage *peer) {
  char here[64], there[64], stamp[80];
  uv_timeval64_t tv;
  struct tm tm;
  addr_or_dash(local, here, sizeof here);
  addr_or_dash(peer, there, sizeof there);
  if (uv_gettimeofday(&tv) == 0) {
    time_t secs = (time_t)tv.tv_sec;
    gmtime_r(&secs, &tm);
    snprintf(stamp, sizeof stamp, "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ",
             tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
             tm.tm_min, tm.tm_sec, (int)tv.tv_usec);
  } else {
    snprintf(stamp, sizeof stamp, "-");
  }
  /* credentials never reach a trace (csrc/auth/redact.c) */
  size_t wire = len, need = sip_auth_redact(bytes, len, NULL, 0);
  char *red = need ? malloc(need) : NULL;
  if (red) {
    sip_auth_redact(bytes, len, red, need);
    bytes = red;
    len = need;
  } else if (need) {
    bytes = "(not shown: it holds credentials, and no memory to redact)\n";
    len = strlen(bytes);
  }
  /* the message may hold a body without a final newline: end the block */
  int nl = len > 0 && bytes[len - 1] == '\n';
  fprintf(tp->trace, "%s %s %s %s %s (%zu bytes)\n%.*s%s\n", stamp,
          sip_tp_transport_name(transport), here, outgoing ? "->" : "<-", there,
          wire, (int)len, bytes, nl ? "" : "\n");
  fflush(tp->trace);
  free(red);
}
