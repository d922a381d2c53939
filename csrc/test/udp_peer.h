/* A raw UDP peer on 127.0.0.1 for the C tests that drive a luasip layer on
 * a loop of their own (tu_test, dialog_test). The including file defines
 * step(): one turn of its loop, run while the peer waits. */
#ifndef LUASIP_TEST_UDP_PEER_H
#define LUASIP_TEST_UDP_PEER_H

#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <uv.h>

#include "sip_transport.h"

static void step(void);

static double now_ms(void) { return (double)uv_hrtime() / 1e6; }

/* A nonblocking socket bound to 127.0.0.1 on a free port (*port), or -1. */
static int peer_open(int *port) {
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
  struct sockaddr_storage sa;
  sip_tp_addr(&sa, "127.0.0.1", 9, 0);
  if (s < 0 || bind(s, (struct sockaddr *)&sa, sizeof(struct sockaddr_in)) < 0)
    return -1;
  socklen_t n = sizeof sa;
  getsockname(s, (struct sockaddr *)&sa, &n);
  *port = sip_tp_addr_port(&sa);
  return s;
}

/* Datagrams read within ms that start with prefix (the last one into buf),
 * the loop turning meanwhile. */
static int peer_count(int s, double ms, const char *prefix, char *buf,
                      size_t cap) {
  int count = 0;
  double d = now_ms() + ms;
  while (now_ms() < d) {
    char tmp[4096];
    ssize_t n = recv(s, tmp, sizeof tmp - 1, 0);
    if (n < 0) {
      step();
      continue;
    }
    tmp[n] = '\0';
    if (strncmp(tmp, prefix, strlen(prefix)) == 0) {
      count++;
      if (buf)
        snprintf(buf, cap, "%s", tmp);
    }
  }
  return count;
}

#endif
