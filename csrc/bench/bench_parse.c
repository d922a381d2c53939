/* Parser throughput (make bench): each corpus message is parsed over and over
 * for about SECONDS, reading what a proxy needs per message: the Via list,
 * From, To, Call-ID, CSeq, Contact and Route. Absent headers are fine.
 *
 * Usage: bench_parse SECONDS FILE...
 * Prints: parse-c: N msgs/s, N MB/s */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sip_msg.h"

#define MAX_FILES 64

static char *slurp(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    perror(path);
    exit(2);
  }
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  rewind(f);
  char *b = malloc((size_t)n + 1);
  if (!b || fread(b, 1, (size_t)n, f) != (size_t)n) {
    perror(path);
    exit(2);
  }
  fclose(f);
  *len = (size_t)n;
  return b;
}

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static volatile size_t sink;

/* One message as a proxy reads it; returns 0 when everything it needs parsed.
 */
static int parse_one(const char *buf, size_t len) {
  sip_msg m;
  const sip_via *via;
  const sip_addr *from, *to, *contacts, *routes;
  const sip_cseq *cseq;
  sip_str call_id;
  int bad = 0, rc;

  sip_msg_init(&m, NULL);
  if (sip_msg_parse(&m, buf, len, SIP_MODE_DATAGRAM) < 0) {
    sip_msg_free(&m);
    return -1;
  }
  bad |= sip_msg_get_vias(&m, &via) != 0;
  bad |= sip_msg_get_addr(&m, SIP_H_FROM, &from) != 0;
  bad |= sip_msg_get_addr(&m, SIP_H_TO, &to) != 0;
  bad |= sip_msg_get_call_id(&m, &call_id) != 0;
  bad |= sip_msg_get_cseq(&m, &cseq) != 0;
  rc = sip_msg_get_addrs(&m, SIP_H_CONTACT, &contacts);
  bad |= rc != 0 && rc != SIP_ENOTFOUND;
  rc = sip_msg_get_addrs(&m, SIP_H_ROUTE, &routes);
  bad |= rc != 0 && rc != SIP_ENOTFOUND;
  if (!bad)
    sink +=
        via->branch.len + from->tag.len + to->tag.len + call_id.len + cseq->num;
  sip_msg_free(&m);
  return bad ? -1 : 0;
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: bench_parse SECONDS FILE...\n");
    return 2;
  }
  double secs = atof(argv[1]);
  int n = argc - 2;
  if (n > MAX_FILES)
    n = MAX_FILES;
  char *buf[MAX_FILES];
  size_t len[MAX_FILES], total = 0;
  for (int i = 0; i < n; i++) {
    buf[i] = slurp(argv[i + 2], &len[i]);
    total += len[i];
    if (parse_one(buf[i], len[i]) != 0) {
      fprintf(stderr, "bench_parse: %s does not parse\n", argv[i + 2]);
      return 1;
    }
  }

  long rounds = 0;
  double t0 = now(), t;
  do {
    for (int k = 0; k < 1000; k++)
      for (int i = 0; i < n; i++)
        parse_one(buf[i], len[i]);
    rounds += 1000;
    t = now() - t0;
  } while (t < secs);

  double msgs = (double)rounds * n;
  printf("parse-c: %.0f msgs/s, %.1f MB/s (%ld rounds of %d messages, "
         "%zu bytes, %.2f s)\n",
         msgs / t, (double)rounds * (double)total / t / 1e6, rounds, n, total,
         t);
  for (int i = 0; i < n; i++)
    free(buf[i]);
  return 0;
}
