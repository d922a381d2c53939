/* An asynchronous Redis client on a libuv loop (hiredis and its libuv
 * adapter), for the redis location backend (its binding:
 * csrc/lua/redis.c; lua/luasip/location/redis.lua). No Lua.
 *
 * The connection is made on the first command and made again by the first
 * command after it was lost, so a Redis that comes back is used again with
 * nothing to do. Failures are quick and never block: connecting runs on the
 * loop (give a numeric address: a host name is resolved by hiredis with a
 * blocking getaddrinfo), a connection not up after connect_timeout or a
 * command without a reply after timeout drops the connection, and every
 * pending command gets its callback with an error text. A database other
 * than 0 is SELECTed first on each connection.
 *
 * The connection does not keep the loop alive when idle; a pending command
 * does (its timeout timer runs). Memory: the handle is malloc'd and freed
 * by sip_redis_close (its timer in the timer's close callback). */
#ifndef SIP_REDIS_H
#define SIP_REDIS_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct redisReply;
typedef struct sip_redis sip_redis;

/* A command's outcome: rep (a Redis error reply included), or rep NULL and
 * err saying why (the connection failed, timed out, was lost or closed:
 * "timed out", "connect timed out", "closed", hiredis's text...). ud:
 * sip_redis_open's; tag: sip_redis_command's. Called on the loop, never
 * inside sip_redis_command; from sip_redis_close for what is pending. */
typedef void (*sip_redis_cb)(void *ud, intptr_t tag,
                             const struct redisReply *rep, const char *err);

/* A client of host:port (host 1..255 bytes), database db, with the
 * timeouts in ms (> 0). Connects on the first command. Returns 0 with
 * *out, SIP_EINVAL or SIP_ENOMEM. */
int sip_redis_open(uv_loop_t *loop, const char *host, int port, int db,
                   uint64_t connect_timeout_ms, uint64_t timeout_ms,
                   sip_redis_cb cb, void *ud, sip_redis **out);

/* Send a command (argc arguments, argv[i] of argl[i] bytes, copied); its
 * outcome goes to the callback with tag. Returns 0, or SIP_EINVAL when it
 * cannot be sent (closed, or the connection cannot be made:
 * sip_redis_last_error says why), SIP_ENOMEM. */
int sip_redis_command(sip_redis *r, int argc, const char **argv,
                      const size_t *argl, intptr_t tag);

/* Whether the connection is up. */
int sip_redis_connected(const sip_redis *r);

/* The last connection error, or NULL. */
const char *sip_redis_last_error(const sip_redis *r);

/* Close: every pending command's callback runs now with err "closed", the
 * last connection error then goes to last_err (cap bytes, "" for none),
 * and r is freed. loop_alive 0 (the loop is being torn down): its timer is
 * freed without libuv. */
void sip_redis_close(sip_redis *r, int loop_alive, char *last_err, size_t cap);

#endif
