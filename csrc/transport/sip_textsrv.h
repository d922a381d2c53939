/* A small request/reply text server on a libuv loop, for the metrics
 * endpoint (HTTP/1.1 GET on TCP) and the control socket (one line on a Unix
 * socket), and the blocking client of the control socket. No Lua: the
 * binding is csrc/lua/textsrv.c.
 *
 * A request ends with the configured terminator; the callback gets it
 * (with the connection's id and, on a Unix socket, the peer's uid), and
 * the answer comes now or later through sip_textsrv_reply, after which the
 * connection closes. A longer request gets the too_large text (or nothing)
 * and is closed; a connection lives timeout_ms at most; connections beyond
 * max_conns are closed at once. A Unix socket's peer that is neither root,
 * nor our user, nor allow_uid is answered "error: permission denied\n" and
 * closed before the callback sees anything.
 *
 * Memory: the server and each connection are malloc'd and freed in their
 * libuv close callbacks. Threading: the loop's thread only. Errors: libuv
 * codes, SIP_EINVAL / SIP_ENOTFOUND of sip_error.h. */
#ifndef SIP_TEXTSRV_H
#define SIP_TEXTSRV_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

typedef struct sip_textsrv sip_textsrv;

/* A complete request of connection id (uid: the peer's on a Unix socket,
 * -1 on TCP; -2 when unknown). Returns 0, or a negative value to have the
 * connection closed unanswered. */
typedef int (*sip_textsrv_cb)(void *ud, int64_t id, const char *req, size_t len,
                              int uid);

typedef struct sip_textsrv_config {
  size_t max_request;  /* bytes (8192) */
  uint64_t timeout_ms; /* a connection's lifetime (5000) */
  int max_conns;       /* at once (32) */
  int allow_uid;       /* a uid admitted besides root and ours; -1: none */
  unsigned mode;       /* a Unix socket file's permissions (0600) */
  char term[8];        /* the terminator, 1..7 bytes ("\n") */
  size_t term_len;
  const char *too_large; /* written to a too long request (copied); NULL */
  size_t too_large_len;
  sip_textsrv_cb cb;
  void *ud;
} sip_textsrv_config;

typedef struct sip_textsrv_stats {
  uint64_t accepted, refused, too_large, timeouts, busy;
  int open; /* connections now */
} sip_textsrv_stats;

/* The defaults above into cfg (no callback). */
void sip_textsrv_config_init(sip_textsrv_config *cfg);

/* "tcp:ADDRESS:PORT" (numeric, IPv6 in brackets or not) into *ss: 0; or
 * "unix:PATH": 1 (ss untouched); otherwise SIP_EINVAL with *why saying
 * what is wrong. */
int sip_textsrv_parse_spec(const char *spec, struct sockaddr_storage *ss,
                           const char **why);

/* Listen on spec (sip_textsrv_parse_spec's forms). A Unix socket's stale
 * file (nothing listens) is replaced, a live one left alone
 * (UV_EADDRINUSE), another kind of file too (UV_EEXIST); the file gets
 * cfg->mode before anyone can connect. Returns 0 with *out, or a negative
 * code (nothing left open). */
int sip_textsrv_open(uv_loop_t *loop, const char *spec,
                     const sip_textsrv_config *cfg, sip_textsrv **out);

/* Answer connection id with bytes (copied) and close it once written.
 * Returns 0, SIP_ENOTFOUND when it is gone (closed, timed out, answered),
 * or a libuv code. */
int sip_textsrv_reply(sip_textsrv *s, int64_t id, const char *p, size_t n);

/* The bound TCP port (0 for a Unix socket). */
int sip_textsrv_port(const sip_textsrv *s);

void sip_textsrv_get_stats(const sip_textsrv *s, sip_textsrv_stats *out);

/* Stop listening and close every connection (the callback is not called
 * again); a Unix socket's file is removed. Memory goes in the close
 * callbacks. */
void sip_textsrv_close(sip_textsrv *s);

/* The blocking client (never inside a server): connect to the Unix socket
 * path, write req, read until EOF or timeout_ms. Returns 0 with the reply
 * in a malloc'd *out (NUL-terminated, *len bytes), or -errno (ETIMEDOUT
 * included). */
int sip_textsrv_call(const char *path, const char *req, size_t n,
                     int timeout_ms, char **out, size_t *len);

#endif
