/* Internal header of the Lua binding (csrc/lua). Only the binding files
 * include lua.h; the parser builds and tests without Lua.
 *
 * Naming: luaopen_luasip_core is the one public symbol; everything shared
 * between the binding files is sip__lua_*, everything else is static. */
#ifndef SIP_LUA_LSIP_H
#define SIP_LUA_LSIP_H

#include <lauxlib.h>
#include <lua.h>
#include <uv.h>

#include "sip_mem.h"
#include "sip_msg.h"

#define SIP_LUA_MESSAGE "luasip.Message"
#define SIP_LUA_REQUEST "luasip.Request"   /* a received request */
#define SIP_LUA_RESPONSE "luasip.Response" /* a received response */
#define SIP_LUA_URI "luasip.URI"
#define SIP_LUA_LOOP "luasip.Loop"
#define SIP_LUA_SERVER "luasip.Server"

/* The loop of a Lua state (loop.c). */
typedef struct sip_lua_loop {
  uv_loop_t loop;
  lua_State *L; /* the thread inside core.run/step; NULL when not running */
  int initialized;
  uv_timer_t trim;        /* loop.c: gives freed heap memory back (unref'd) */
  sip_mem_trim mem;       /* its policy (csrc/runtime/sip_mem.h) */
  uint64_t script_errors; /* errors caught by sip__lua_pcall */
} sip_lua_loop;

/* The state's loop, created on first use. */
sip_lua_loop *sip__lua_loop(lua_State *L);
/* Push the loop's userdata (servers keep it as a user value). */
void sip__lua_push_loop(lua_State *L);
/* THE protected call from C into Lua (loop.c); every callback uses it:
 * the function below its nargs arguments on the top of L's stack runs
 * under lua_pcall with the one traceback handler, so that no error (a
 * script's, a memory error under the state's limit) escapes into libuv.
 * On error the loop's script-error count goes up by one and the error,
 * prefixed with `what: ` when what is not NULL, goes with its traceback to
 * the log sink (core.set_log_handler; stderr without one), and nothing is
 * left on the stack. On success the nresults results replace the function
 * and its arguments. Returns the lua_pcall status. The caller decides what
 * an error means for its request (server.c: the 500). An error that a
 * Lua-side protected call caught (a handler coroutine, an xpcall with
 * core.traceback) takes the same traceback, count and log line through
 * core.script_error, and the same 500 decision through core.script_failed. */
int sip__lua_pcall(lua_State *L, int nargs, int nresults, const char *what);
/* sip__lua_pcall with no results. */
int sip__lua_call(lua_State *L, int nargs, const char *what);
/* One line (level "error", "warn", "info", "debug") through the log sink;
 * never raises. */
void sip__lua_log(lua_State *L, const char *level, const char *text);
/* ndigits random lower-case hex digits into out (not NUL-terminated). */
void sip__lua_random_hex(char *out, size_t ndigits);

/* A parsed message. The sip_msg is malloc'd (pooled) and never moves, so
 * its self-pointers (inline header array, inline arena) stay valid; its
 * limits pointer refers to the userdata, which does not move either.
 * User values: 1 = the input Lua string (the slices point into it; nil
 *                  for a message whose owner keeps the bytes),
 *              2 = the owner's Lua object (a received request's server;
 *                  for a message from core.parse, the slot pool its
 *                  sip_msg comes from: see message.c),
 *              3 = the Request-URI string set by an edit (nil otherwise). */
typedef struct sip_lua_msg {
  sip_msg *m; /* from a free list, or the owner's; NULL once closed */
  /* the userdata's address scrambled with a constant: message.c's hot
   * paths tell a luasip.Message from any other userdata with it instead of
   * comparing metatables (set by message.c, never by a binding) */
  uintptr_t tag;
  sip_limits limits;
  uint8_t live;    /* 0 after close / __gc: the arena is freed */
  uint16_t cached; /* message.c: the cache user values in use, a bit each */
  /* A message that someone else owns (a received one lives in its rxbuf):
   * close calls release(owner) instead of returning m to the free list. */
  void (*release)(void *owner);
  void *owner;
} sip_lua_msg;

#define SIP_LUA_MSG_UV_INPUT 1
#define SIP_LUA_MSG_UV_OWNER 2
#define SIP_LUA_MSG_UV_RURI 3
/* slots UV_RURI+1 .. UV_RURI+NCACHE cache derived values (message.c maps
 * each cached field to its slot) */
#define SIP_LUA_MSG_NCACHE 9
#define SIP_LUA_MSG_NUV (SIP_LUA_MSG_UV_RURI + SIP_LUA_MSG_NCACHE)

int luaopen_luasip_core(lua_State *L);

static inline char sip__lua_lower(char c) {
  return (c >= 'A' && c <= 'Z') ? (char)(c | 0x20) : c;
}

/* Push a slice as a string, or nil when absent (p == NULL). */
void sip__lua_push_str(lua_State *L, sip_str s);
/* t[k] = s when s is present (t at the top of the stack). */
void sip__lua_set_str(lua_State *L, const char *k, sip_str s);
/* Push a table of parameters: lower-cased name -> decoded value, true for a
 * parameter without a value. The first occurrence of a name wins. */
void sip__lua_push_params(lua_State *L, const sip_params *ps);
/* Push nil, "NAME: text", "NAME" for a SIP error code; returns 3. */
int sip__lua_fail(lua_State *L, int err, const char *fmt, ...);

/* Parse the string at stack index idx as a URI and push a luasip.URI, or
 * push nil, err, name. Returns the number of pushed values (1 or 3). */
int sip__lua_uri_new(lua_State *L, int idx);

/* Push a luasip.Message for m, which stays owned by `owner`: closing the
 * message (close, __close, __gc) calls release(owner) once. The userdata is
 * sizeof(sip_lua_msg) + extra bytes: a binding that needs per-message state
 * embeds sip_lua_msg as the first member of its own struct. tname: the
 * metatable (SIP_LUA_REQUEST for a received request: core.Request's
 * methods, then Message's), NULL for SIP_LUA_MESSAGE. Returns the
 * userdata; m must be parsed and must outlive it until release. */
sip_lua_msg *sip__lua_message_push(lua_State *L, sip_msg *m, size_t extra,
                                   void (*release)(void *owner), void *owner,
                                   const char *tname);
/* The message at idx (raises unless it is an open luasip.Message). */
sip_lua_msg *sip__lua_message_check(lua_State *L, int idx);

/* Register the metatables and put the constructors/method tables in the
 * module table at the top of the stack. */
void sip__lua_open_message(lua_State *L);
void sip__lua_open_uri(lua_State *L);
void sip__lua_open_loop(lua_State *L);
/* memory.c: the state's memory limit and budgets (from open_loop) */
void sip__lua_open_memory(lua_State *L);
void sip__lua_open_events(lua_State *L);
void sip__lua_open_server(lua_State *L);
/* registrar.c: the registrar's text, the binding codec, the location clock */
void sip__lua_open_registrar(lua_State *L);
/* memstore.c: the memory location store (core.memstore_new) */
void sip__lua_open_memstore(lua_State *L);
struct sip_memstore;
/* The store of the luasip.MemStore at idx (raises unless it is an open one). */
struct sip_memstore *sip__lua_memstore_check(lua_State *L, int idx);
void sip__lua_open_redis(lua_State *L);
void sip__lua_open_sqlite(lua_State *L);
/* dns.c: the resolver (core.dns_*) */
void sip__lua_open_dns(lua_State *L);
/* The resolver locates host names of responses of tp (RFC 3263 §5). */
struct sip_tp;
void sip__lua_dns_attach(sip_lua_loop *lp, struct sip_tp *tp);
/* auth.c: the digest primitives (core.digest_*, core.nonce_*) */
void sip__lua_open_auth(lua_State *L);
/* sdp.c: the SDP parser and writer (core.sdp_parse, core.sdp_write) */
void sip__lua_open_sdp(lua_State *L);
/* textsrv.c: core.text_server (metrics, control socket), core.ctl_call */
void sip__lua_open_textsrv(lua_State *L);

#endif
