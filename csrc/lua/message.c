/* luasip.Message: a parsed SIP message.
 *
 * The userdata points at a sip_msg (from the state's slot pool for a message
 * core.parse made, or its owner's); the input Lua string is user value 1
 * (every slice points into it: zero-copy, Lua strings never move). Fields are
 * served lazily by __index: a Lua string is made only when a script reads a
 * field, and derived tables (from, to, via, contacts, ...) are cached in user
 * values (lsip.h) until the next edit. Methods live in core.Message, which the
 * Lua layer (lua/luasip/init.lua) extends with response(), validate(), ...
 *
 * Errors: expected failures (malformed input, absent fields) return
 * nil, "PARSE: <what> at byte N: <why>", "<NAME>"; misuse raises. */
#include <string.h>

#include "lsip.h"
#include "sip_access.h"
#include "sip_pool.h"
#include "sip_reply.h"
#include "sip_tu.h"

/* ---- the userdata ------------------------------------------------------ */

/* Hot paths (every field read goes through __index) tell a message from
 * any other value by its tag, the userdata's own address scrambled with a
 * constant: no metatable fetch and compare. Only message.c writes a
 * sip_lua_msg, and no Lua value can forge the tag (a full userdata of
 * another kind would have to hold its own address xor this constant);
 * anything else takes luaL_checkudata's path and its usual error. */
#define MSG_TAG_KEY ((uintptr_t)0x5349504d53474c55ull) /* "SIPMSGLU" */

static inline uintptr_t msg_tag(const sip_lua_msg *u) {
  return (uintptr_t)u ^ MSG_TAG_KEY;
}

static inline sip_lua_msg *to_message(lua_State *L, int idx) {
  sip_lua_msg *u = lua_touserdata(L, idx);
  if (u && lua_rawlen(L, idx) >= sizeof(*u) && u->tag == msg_tag(u))
    return u;
  return luaL_checkudata(L, idx, SIP_LUA_MESSAGE); /* raises the usual error */
}

/* ---- parsed messages' sip_msg: the slot pool -------------------------------
 *
 * A message that core.parse made takes its sip_msg from a slot of the Lua
 * state's pool (sip_pool.h: the algorithm), and the slot is free again once
 * the message is closed or collected. Collected is learnt without a
 * finalizer: a weak-valued table W maps each slot to its message, and the
 * collector clears the entry when the message dies. A finalizer on the
 * message (or on a token it owns) cost a third of reading a message from
 * Lua: the collector keeps every dead message, and all it caches, for one
 * more cycle, and calls each finalizer in a protected call. The message
 * anchors the pool (OWNER user value), so the slot array it reads is always
 * there; the array is a userdata (the pool's user value 1). */

/* a message made by core.parse: base.owner is the parsed_msg itself */
typedef struct parsed_msg {
  sip_lua_msg base;
  sip_slot_pool *pool;
  uint32_t idx, gen;
} parsed_msg;

/* the release callback of parsed messages (close, __close) */
static void slot_release(void *owner) {
  parsed_msg *pm = owner;
  sip_slot_release(pm->pool, pm->idx, pm->gen);
}

static inline int msg_live(const sip_lua_msg *u) {
  if (!u->live)
    return 0;
  if (u->release != slot_release)
    return 1;
  const parsed_msg *pm = (const parsed_msg *)u;
  return sip_slot_valid(pm->pool, pm->idx, pm->gen);
}

typedef struct slot_ctx {
  lua_State *L;
  int wi; /* W */
} slot_ctx;

/* Does the message of a taken slot live? (W has it) */
static int slot_live(void *ctx, uint32_t i) {
  slot_ctx *c = ctx;
  int t = lua_rawgeti(c->L, c->wi, (lua_Integer)i + 1);
  lua_pop(c->L, 1);
  return t == LUA_TUSERDATA;
}

/* Claim a slot; returns its index. The pool is at pi, W at wi (both
 * pseudo-indices of l_parse). Raises on memory errors with nothing
 * claimed. */
static uint32_t slot_claim(lua_State *L, sip_slot_pool *p, int pi, int wi) {
  slot_ctx c = {L, wi};
  uint32_t i;
  int rc;
  while ((rc = sip_slot_claim(p, slot_live, &c, &i)) == 0) {
    /* Allocations can run finalizers, and they core.parse: nothing is
     * claimed here, and the new slab is installed only if p did not change
     * meanwhile. W gets entries (false) up to cap, mostly in its array
     * part, so that taking a slot seldom allocates. */
    uint32_t cap = p->cap * 2;
    sip_msg_slot *slab = lua_newuserdatauv(L, cap * sizeof(*slab), 0);
    for (uint32_t j = p->cap; j < cap; j++) {
      lua_pushboolean(L, 0);
      lua_rawseti(L, wi, (lua_Integer)j + 1);
    }
    if (p->cap * 2 == cap) {
      sip_slot_grow(p, slab, cap);
      lua_setiuservalue(L, pi, 1);
    } else {
      lua_pop(L, 1);
    }
  }
  if (rc < 0)
    luaL_error(L, "not enough memory");
  return i;
}

/* __gc of the pool: only at lua_close, or once no core.parse and no
 * message can reach it. Messages still reachable then read as closed. */
static int pool_gc(lua_State *L) {
  sip_slot_pool *p = lua_touserdata(L, 1);
  if (p && lua_rawlen(L, 1) == sizeof(*p))
    sip_slot_finalize(p);
  return 0;
}

/* Push a new pool and its W table (for l_parse's upvalues). */
static void push_pool(lua_State *L) {
  sip_slot_pool *p = lua_newuserdatauv(L, sizeof(*p), 1);
  memset(p, 0, sizeof(*p));
  lua_createtable(L, 0, 2);
  lua_pushcfunction(L, pool_gc);
  lua_setfield(L, -2, "__gc");
  lua_pushliteral(L, "luasip.MessagePool");
  lua_setfield(L, -2, "__name");
  lua_setmetatable(L, -2);
  uint32_t cap = 64;
  sip_slot_init(p, lua_newuserdatauv(L, cap * sizeof(sip_msg_slot), 0), cap);
  lua_setiuservalue(L, -2, 1);
  lua_createtable(L, (int)p->cap, 0); /* W */
  for (uint32_t j = 0; j < p->cap; j++) {
    lua_pushboolean(L, 0);
    lua_rawseti(L, -2, (lua_Integer)j + 1);
  }
  lua_createtable(L, 0, 1);
  lua_pushliteral(L, "v");
  lua_setfield(L, -2, "__mode");
  lua_setmetatable(L, -2);
}

static sip_lua_msg *check_message(lua_State *L, int idx) {
  sip_lua_msg *u = to_message(L, idx);
  if (!msg_live(u))
    luaL_error(L, "attempt to use a closed " SIP_LUA_MESSAGE);
  return u;
}

/* __gc (of pushed messages), __close and msg:close(): safe to call twice. */
static int msg_gc(lua_State *L) {
  sip_lua_msg *u = to_message(L, 1);
  if (u->live) {
    u->live = 0;
    if (u->release)
      u->release(u->owner);
    else
      sip_msg_delete(u->m);
    u->m = NULL;
  }
  return 0;
}

sip_lua_msg *sip__lua_message_check(lua_State *L, int idx) {
  return check_message(L, idx);
}

sip_lua_msg *sip__lua_message_push(lua_State *L, sip_msg *m, size_t extra,
                                   void (*release)(void *owner), void *owner,
                                   const char *tname) {
  sip_lua_msg *u = lua_newuserdatauv(L, sizeof(*u) + extra, SIP_LUA_MSG_NUV);
  memset(u, 0, sizeof(*u) + extra);
  u->tag = msg_tag(u);
  u->limits = *m->limits;
  u->m = m;
  u->release = release;
  u->owner = owner;
  u->live = 1;
  luaL_setmetatable(L, tname ? tname : SIP_LUA_MESSAGE);
  return u;
}

static void drop_cache(lua_State *L, int idx, sip_lua_msg *u) {
  for (int i = 0; u->cached; i++) {
    if (u->cached & (1u << i)) {
      lua_pushnil(L);
      lua_setiuservalue(L, idx, SIP_LUA_MSG_UV_RURI + 1 + i);
      u->cached &= (uint16_t) ~(1u << i);
    }
  }
}

static uint32_t opt_limit(lua_State *L, int t, const char *k, uint32_t def) {
  lua_Integer v;
  int isnum;
  if (lua_getfield(L, t, k) == LUA_TNIL) {
    lua_pop(L, 1);
    return def;
  }
  v = lua_tointegerx(L, -1, &isnum);
  if (!isnum || v <= 0 || v > (lua_Integer)UINT32_MAX)
    luaL_error(L, "opts.%s must be a positive integer", k);
  lua_pop(L, 1);
  return (uint32_t)v;
}

/* core.parse(bytes[, opts]) -> msg (datagram), msg, consumed (stream), or
 * nil, err, name. opts: stream (boolean), pos (1-based start, default 1),
 * max_size, max_headers, max_line. Upvalue 1: the metatable of parsed
 * messages, 2: the slot pool, 3: its W table. */
static int l_parse(lua_State *L) {
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  int stream = 0;
  lua_Integer pos = 1;
  sip_limits lim = sip_default_limits;
  if (!lua_isnoneornil(L, 2)) {
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_getfield(L, 2, "stream");
    stream = lua_toboolean(L, -1);
    lua_pop(L, 1);
    lua_getfield(L, 2, "pos");
    pos = luaL_optinteger(L, -1, 1);
    lua_pop(L, 1);
    if (pos < 1 || (size_t)pos > len + 1)
      luaL_argerror(L, 2, "opts.pos out of range");
    lim.max_size = opt_limit(L, 2, "max_size", lim.max_size);
    lim.max_headers = opt_limit(L, 2, "max_headers", lim.max_headers);
    lim.max_line = opt_limit(L, 2, "max_line", lim.max_line);
  }
  lua_settop(L, 1);
  sip_slot_pool *pool = lua_touserdata(L, lua_upvalueindex(2));
  if (pool->finalized)
    return luaL_error(L, "luasip.core is being unloaded");
  /* closed and consistent before anything can fail */
  parsed_msg *pm = lua_newuserdatauv(L, sizeof(*pm), SIP_LUA_MSG_NUV);
  sip_lua_msg *u = &pm->base;
  u->tag = msg_tag(u);
  u->limits = lim;
  u->live = 0;
  u->cached = 0;
  u->m = NULL;
  u->release = slot_release;
  u->owner = pm;
  pm->pool = pool;
  pm->idx = 0;
  pm->gen = 0;
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_setmetatable(L, 2);
  lua_pushvalue(L, lua_upvalueindex(2));
  lua_setiuservalue(L, 2, SIP_LUA_MSG_UV_OWNER);
  lua_pushvalue(L, 1);
  lua_setiuservalue(L, 2, SIP_LUA_MSG_UV_INPUT);
  uint32_t i = slot_claim(L, pool, lua_upvalueindex(2), lua_upvalueindex(3));
  sip_msg_slot *sl = &pool->slot[i];
  pm->idx = i;
  pm->gen = sl->gen;
  /* the slot is CLAIMED until W has the message (setting it may allocate,
   * and so run a finalizer that parses) */
  lua_pushvalue(L, 2);
  lua_rawseti(L, lua_upvalueindex(3), (lua_Integer)i + 1);
  sl = &pool->slot[i]; /* that parse may have moved the slots */
  sl->state = SIP_SLOT_TAKEN;
  /* a pooled message is empty (sip_msg_free'd, or its arena chunks were
   * freed when it went free), and sip_msg_parse resets everything but the
   * limits: only those are left to set */
  sl->m->limits = &u->limits;
  u->m = sl->m;
  u->live = 1;

  const char *p = s + (pos - 1);
  size_t n = len - (size_t)(pos - 1);
  int rc =
      sip_msg_parse(u->m, p, n, stream ? SIP_MODE_STREAM : SIP_MODE_DATAGRAM);
  if (rc < 0) {
    char buf[256];
    if (rc == SIP_ENEEDMORE) {
      lua_pushnil(L);
      lua_pushfstring(L, "NEEDMORE: %s (have %I bytes)", sip_strerror(rc),
                      (lua_Integer)n);
      lua_pushstring(L, sip_errname(rc));
    } else {
      sip_msg_strerror(u->m, rc, buf, sizeof buf);
      lua_pushnil(L);
      lua_pushstring(L, buf);
      lua_pushstring(L, sip_errname(rc));
    }
    u->live = 0;
    slot_release(pm);
    u->m = NULL;
    return 3;
  }
  if (stream) {
    lua_pushinteger(L, rc);
    return 2;
  }
  return 1;
}

/* ---- error text for lazily parsed fields ------------------------------- */

/* nil, "PARSE: <what> at byte N: <why>", name: a failed lazy read of
 * header line at (sip_msg_field_strerror) */
static int place_fail(lua_State *L, sip_lua_msg *u, int rc, int at,
                      const char *what) {
  char buf[256];
  sip_msg_field_strerror(u->m, rc, at, what, buf, sizeof buf);
  return sip__lua_fail(L, rc, "%s", buf);
}

/* nil, "PARSE: <Header> at byte N: <why>", name for field f */
static int field_fail(lua_State *L, sip_lua_msg *u, int rc, int f) {
  char buf[256];
  sip_msg_field_error(u->m, f, rc, buf, sizeof buf);
  return sip__lua_fail(L, rc, "%s", buf);
}

/* ---- pushing parsed structures ----------------------------------------- */

/* Address and Via values are views: a small userdata pointing at the parsed
 * structure in the message's arena, anchored to the message (user value 1)
 * so the arena outlives it. A field becomes a Lua value only when a script
 * reads it; building a table of every field for every value was most of the
 * cost of reading a message from Lua. The arena is not freed by edits, so a
 * view keeps showing the value as it was when read; msg.from after an edit
 * gives a new view of the new value. User value 2 caches the params table. */
#define SIP_LUA_ADDR "luasip.Address"
#define SIP_LUA_VIA "luasip.Via"

typedef struct view {
  const void *p;      /* sip_addr or sip_via */
  sip_lua_msg *owner; /* kept alive by user value 1 */
  uintptr_t tag;      /* view_tag(v, kind): see view_check */
} view;

enum { VIEW_ADDR = 1, VIEW_VIA = 2 };

#define VIEW_TAG_KEY ((uintptr_t)0x5349505649455755ull) /* "SIPVIEWU" */

static inline uintptr_t view_tag(const view *v, int kind) {
  return ((uintptr_t)v ^ VIEW_TAG_KEY) + (uintptr_t)kind;
}

/* The view at idx when it is one of that kind (like to_message: no
 * metatable compare on the hot path), else NULL. */
static inline view *view_check(lua_State *L, int idx, int kind) {
  view *v = lua_touserdata(L, idx);
  if (v && lua_rawlen(L, idx) == sizeof(*v) && v->tag == view_tag(v, kind))
    return v;
  return NULL;
}

/* ---- field names -> ids ---------------------------------------------------
 *
 * Every field read is an __index call with a string key: sip_access.c finds
 * the field with a switch on the length (no Lua table lookup). */
typedef int (*field_finder)(const char *k, size_t len);

/* the field of the string key at idx, 0 when it is not one */
static inline int key_field(lua_State *L, int idx, field_finder find) {
  size_t len;
  if (lua_type(L, idx) != LUA_TSTRING)
    return 0;
  const char *k = lua_tolstring(L, idx, &len);
  return find(k, len);
}

/* The message's field readers (msg_index, msg:get) are closures whose
 * upvalues 1 and 2 are the Address and Via metatables: no registry lookup
 * per view made. */
#define UV_ADDR_MT lua_upvalueindex(1)
#define UV_VIA_MT lua_upvalueindex(2)

static void push_view(lua_State *L, int msgidx, sip_lua_msg *owner,
                      const void *p, int kind) {
  view *v = lua_newuserdatauv(L, sizeof(*v), 2);
  v->p = p;
  v->owner = owner;
  v->tag = view_tag(v, kind);
  lua_pushvalue(L, kind == VIEW_VIA ? UV_VIA_MT : UV_ADDR_MT);
  lua_setmetatable(L, -2);
  lua_pushvalue(L, msgidx);
  lua_setiuservalue(L, -2, 1);
}

static void push_params_cached(lua_State *L, const sip_params *ps) {
  if (lua_getiuservalue(L, 1, 2) == LUA_TTABLE)
    return;
  lua_pop(L, 1);
  sip__lua_push_params(L, ps);
  lua_pushvalue(L, -1);
  lua_setiuservalue(L, 1, 2);
}

/* Push a value of sip_access.c (a view's field, a scalar message field);
 * params of a view are cached in its user value 2. Returns the number of
 * values pushed (0 for SIP_V_NONE). */
static inline int push_value(lua_State *L, const sip_value *v) {
  switch (v->type) {
  case SIP_V_STR:
    lua_pushlstring(L, v->s.p, v->s.len);
    return 1;
  case SIP_V_INT:
    lua_pushinteger(L, (lua_Integer)v->i);
    return 1;
  case SIP_V_BOOL:
    lua_pushboolean(L, (int)v->i);
    return 1;
  case SIP_V_Q:
    lua_pushnumber(L, (lua_Number)v->i / 1000.0);
    return 1;
  case SIP_V_PARAMS:
    push_params_cached(L, v->p);
    return 1;
  }
  return 0;
}

/* __index of both view types */
static int view_index(lua_State *L, int kind) {
  view *v = view_check(L, 1, kind);
  if (!v)
    return luaL_typeerror(L, 1, "luasip view");
  int f =
      key_field(L, 2, kind == VIEW_VIA ? sip_via_field_id : sip_addr_field_id);
  if (!f)
    return 0;
  if (!msg_live(v->owner))
    return luaL_error(L, "attempt to use a value of a closed " SIP_LUA_MESSAGE);
  sip_value val;
  if (kind == VIEW_VIA)
    sip_via_field(v->p, f, &val);
  else
    sip_addr_field(v->p, f, &val);
  int n = push_value(L, &val);
  /* ttl = 1*3DIGIT: a number when it is one, the text otherwise */
  if (f == SIP_VF_TTL && n && lua_stringtonumber(L, lua_tostring(L, -1)))
    lua_remove(L, -2);
  return n;
}

static int addr_index(lua_State *L) { return view_index(L, VIEW_ADDR); }
static int via_index(lua_State *L) { return view_index(L, VIEW_VIA); }

static int view_tostring(lua_State *L) {
  int kind = VIEW_VIA;
  view *v = view_check(L, 1, VIEW_VIA);
  if (!v && (v = view_check(L, 1, kind = VIEW_ADDR)) == NULL)
    return luaL_typeerror(L, 1, "luasip view");
  if (!msg_live(v->owner))
    return luaL_error(L, "attempt to use a value of a closed " SIP_LUA_MESSAGE);
  sip_value raw;
  if (kind == VIEW_VIA)
    sip_via_field(v->p, SIP_VF_RAW, &raw);
  else
    sip_addr_field(v->p, SIP_AF_RAW, &raw);
  lua_pushlstring(L, raw.s.p ? raw.s.p : "", raw.s.len);
  return 1;
}

/* Push the metatable of a view kind (also registered under its name). */
static void open_view(lua_State *L, const char *name, int kind) {
  luaL_newmetatable(L, name);
  lua_pushcfunction(L, kind == VIEW_VIA ? via_index : addr_index);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, view_tostring);
  lua_setfield(L, -2, "__tostring");
}

static inline const void *view_next(const void *q, int kind) {
  return kind == VIEW_VIA ? (const void *)((const sip_via *)q)->next
                          : (const void *)((const sip_addr *)q)->next;
}

static inline int view_star(const void *q, int kind) {
  return kind == VIEW_ADDR && ((const sip_addr *)q)->star;
}

/* A list of addresses or Vias (linked by next) as views; a "*" Contact
 * sets list.star = true and adds no entry. The table is made at its final
 * size. */
static void push_view_list(lua_State *L, int msgidx, sip_lua_msg *u,
                           const void *p, int kind) {
  int i = 0, n = 0, star = 0;
  for (const void *q = p; q; q = view_next(q, kind))
    *(view_star(q, kind) ? &star : &n) += 1;
  lua_createtable(L, n, star != 0);
  for (const void *q = p; q; q = view_next(q, kind)) {
    if (view_star(q, kind)) {
      lua_pushboolean(L, 1);
      lua_setfield(L, -2, "star");
      continue;
    }
    push_view(L, msgidx, u, q, kind);
    lua_rawseti(L, -2, ++i);
  }
}

/* ---- fields ------------------------------------------------------------ */

/* Derived values (tables, views, URI objects) are cached in user value
 * slots, one per cached field: no string-keyed table on the hot path, and
 * no slot (initialised and traversed by the GC for every message) for the
 * fields that are cheap to make again. */
static const uint8_t cache_slot[SIP_F__COUNT] = {
    [SIP_F_RURI] = 1,          [SIP_F_FROM] = 2,     [SIP_F_TO] = 3,
    [SIP_F_VIA] = 4,           [SIP_F_CONTACTS] = 5, [SIP_F_ROUTES] = 6,
    [SIP_F_RECORD_ROUTES] = 7, [SIP_F_PATHS] = 8,    [SIP_F_CTYPE] = 9,
};
_Static_assert(9 <= SIP_LUA_MSG_NCACHE, "a user value slot per cached field");
_Static_assert(SIP_LUA_MSG_NCACHE <= 16, "sip_lua_msg.cached is 16 bits");

#define CACHE_SLOT(f) (SIP_LUA_MSG_UV_RURI + cache_slot[f])

/* u->cached says which slots hold a value: a first read (every read, in a
 * script that reads each field once) costs no user value fetch */
static int push_cached(lua_State *L, int idx, sip_lua_msg *u, int f) {
  if (!(u->cached & (1u << (cache_slot[f] - 1))))
    return 0;
  lua_getiuservalue(L, idx, CACHE_SLOT(f));
  return 1;
}

/* cache the value at the top of the stack (the value stays) */
static void store_cached(lua_State *L, int idx, sip_lua_msg *u, int f) {
  lua_pushvalue(L, -1);
  lua_setiuservalue(L, idx, CACHE_SLOT(f));
  u->cached |= (uint16_t)(1u << (cache_slot[f] - 1));
}

static void push_ruri_text(lua_State *L, int idx, sip_lua_msg *u) {
  if (lua_getiuservalue(L, idx, SIP_LUA_MSG_UV_RURI) == LUA_TSTRING)
    return;
  lua_pop(L, 1);
  sip__lua_push_str(L, u->m->ruri);
}

/* Push the value of field f of the message at idx (sip_msg_field). Returns
 * 1 (the value, nil when absent or not applicable) or 3 (nil, err, name
 * when malformed). */
static int push_field(lua_State *L, int idx, sip_lua_msg *u, int f) {
  if (cache_slot[f] && push_cached(L, idx, u, f))
    return 1;
  sip_value v;
  int rc = sip_msg_field(u->m, f, &v);
  if (rc < 0)
    return field_fail(L, u, rc, f);
  switch (v.type) {
  case SIP_V_URI: {
    const sip_uri *ru = v.p;
    /* the URI object owns its own parse of the text, so it stays valid
     * after the message is closed or edited */
    lua_pushlstring(L, ru->raw.p, ru->raw.len);
    rc = sip__lua_uri_new(L, -1);
    lua_remove(L, -1 - rc);
    if (rc != 1)
      return rc;
    break;
  }
  case SIP_V_ADDR:
    push_view(L, idx, u, v.p, VIEW_ADDR);
    break;
  case SIP_V_ADDRS:
  case SIP_V_VIAS:
    push_view_list(L, idx, u, v.p, v.type == SIP_V_VIAS ? VIEW_VIA : VIEW_ADDR);
    break;
  case SIP_V_CTYPE: {
    const sip_ctype *c = v.p;
    if (f == SIP_F_CONTENT_TYPE) {
      /* "type/subtype" as written, without parameters */
      lua_pushlstring(L, c->type.p, c->type.len);
      lua_pushliteral(L, "/");
      lua_pushlstring(L, c->subtype.p, c->subtype.len);
      lua_concat(L, 3);
      return 1;
    }
    lua_createtable(L, 0, 4);
    sip__lua_set_str(L, "type", c->type);
    sip__lua_set_str(L, "subtype", c->subtype);
    sip__lua_set_str(L, "boundary", c->boundary);
    sip__lua_push_params(L, &c->params);
    lua_setfield(L, -2, "params");
    break;
  }
  case SIP_V_STR:
    if (f == SIP_F_URI)
      push_ruri_text(L, idx, u); /* the string an edit set, if any */
    else
      lua_pushlstring(L, v.s.p, v.s.len);
    return 1;
  default:
    if (!push_value(L, &v))
      lua_pushnil(L);
    return 1;
  }
  if (cache_slot[f])
    store_cached(L, idx, u, f);
  return 1;
}

/* upvalues 1 and 2: the view metatables (see UV_ADDR_MT), 3: the methods
 * table */
static int msg_index(lua_State *L) {
  sip_lua_msg *u = to_message(L, 1);
  /* fields first: they are what a script reads per message; the value is
   * returned from the top */
  int f = key_field(L, 2, sip_msg_field_id);
  if (f) {
    if (!msg_live(u))
      return luaL_error(L, "attempt to use a closed " SIP_LUA_MESSAGE);
    if (push_field(L, 1, u, f) > 1)
      lua_pop(L, 2); /* a field read yields nil; msg:get() has the error */
    return 1;
  }
  /* methods stay reachable after close (close, is_closed); a received
   * request's own methods (upvalue 3) first, then Message's (upvalue 4) */
  lua_settop(L, 2);
  lua_pushvalue(L, 2);
  if (lua_rawget(L, lua_upvalueindex(3)) == LUA_TNIL &&
      lua_type(L, lua_upvalueindex(4)) == LUA_TTABLE) {
    lua_pushvalue(L, 2);
    lua_rawget(L, lua_upvalueindex(4));
  }
  return 1;
}

/* msg:get(field) -> value, or nil, err, name when the field is malformed
 * (nil alone when absent). Upvalues as msg_index's first two. */
static int msg_get(lua_State *L) {
  sip_lua_msg *u = check_message(L, 1);
  luaL_checkstring(L, 2);
  int f = key_field(L, 2, sip_msg_field_id);
  if (!f)
    return luaL_argerror(L, 2, "unknown field");
  return push_field(L, 1, u, f);
}

static void check_rc(lua_State *L, int rc, const char *what) {
  if (rc < 0)
    luaL_error(L, "%s: %s (%s)", what, sip_strerror(rc), sip_errname(rc));
}

/* msg.uri = "sip:..." and msg.body = "..." */
static int msg_newindex(lua_State *L) {
  sip_lua_msg *u = check_message(L, 1);
  const char *k = luaL_checkstring(L, 2);
  size_t len;
  if (!strcmp(k, "uri")) {
    if (!u->m->is_request)
      return luaL_error(L, "cannot set the Request-URI of a response");
    luaL_checktype(L, 3, LUA_TSTRING);
    const char *v = lua_tolstring(L, 3, &len);
    check_rc(L, sip_msg_set_ruri(u->m, v, len), "set uri");
    lua_pushvalue(L, 3);
    lua_setiuservalue(L, 1, SIP_LUA_MSG_UV_RURI);
  } else if (!strcmp(k, "body")) {
    luaL_checktype(L, 3, LUA_TSTRING);
    const char *v = lua_tolstring(L, 3, &len);
    check_rc(L, sip_msg_set_body(u->m, v, len), "set body");
  } else {
    return luaL_error(L, "cannot set field '%s' of " SIP_LUA_MESSAGE, k);
  }
  drop_cache(L, 1, u);
  return 0;
}

/* ---- serialization ----------------------------------------------------- */

static int msg_tostring(lua_State *L) {
  sip_lua_msg *u = check_message(L, 1);
  sip_msg *m = u->m;
  if (!m->dirty) {
    size_t inlen;
    lua_getiuservalue(L, 1, SIP_LUA_MSG_UV_INPUT);
    const char *in = lua_tolstring(L, -1, &inlen);
    if (in == m->buf && inlen == m->len)
      return 1; /* the input string itself */
    lua_pop(L, 1);
    lua_pushlstring(L, m->buf, m->len);
    return 1;
  }
  size_t n = sip_msg_size(m);
  luaL_Buffer b;
  char *d = luaL_buffinitsize(L, &b, n);
  int rc = sip_msg_write(m, d, n);
  check_rc(L, rc, "serialize");
  luaL_pushresultsize(&b, (size_t)rc);
  return 1;
}

/* ---- header access ------------------------------------------------------ */

/* The header id for a name argument (long or compact form). */
static int name_arg(lua_State *L, int arg, const char **name, size_t *len) {
  *name = luaL_checklstring(L, arg, len);
  if (*len == 0)
    luaL_argerror(L, arg, "empty header name");
  return sip_hdr_lookup(*name, *len);
}

/* msg:header(name) -> the first header line's value (folds unfolded), nil
 * when absent */
static int msg_header(lua_State *L) {
  sip_lua_msg *u = check_message(L, 1);
  const char *name;
  size_t nlen;
  int id = name_arg(L, 2, &name, &nlen);
  sip_values it;
  sip_str v;
  sip_values_init(&it, u->m, id, name, nlen, 0);
  int rc = sip_values_next(&it, &v);
  check_rc(L, rc, "header");
  if (rc == 0)
    lua_pushnil(L);
  else
    lua_pushlstring(L, v.p, v.len);
  return 1;
}

/* msg:headers(name[, split]) -> list of every value (sip_values: lines of
 * list headers split at top-level commas unless split is false). An empty
 * list when absent. */
static int msg_headers(lua_State *L) {
  sip_lua_msg *u = check_message(L, 1);
  const char *name;
  size_t nlen;
  int id = name_arg(L, 2, &name, &nlen);
  sip_values it;
  sip_str v;
  int n = 0, rc;
  sip_values_init(&it, u->m, id, name, nlen,
                  lua_isnoneornil(L, 3) || lua_toboolean(L, 3));
  lua_newtable(L);
  while ((rc = sip_values_next(&it, &v)) > 0) {
    lua_pushlstring(L, v.p, v.len);
    lua_rawseti(L, -2, ++n);
  }
  check_rc(L, rc, "headers");
  return 1;
}

/* msg:count(name) -> number of header lines with that name */
static int msg_count(lua_State *L) {
  sip_lua_msg *u = check_message(L, 1);
  const char *name;
  size_t nlen;
  int id = name_arg(L, 2, &name, &nlen);
  lua_pushinteger(L, sip_msg_count(u->m, id, name, nlen));
  return 1;
}

/* msg:header_names() -> list of the live header names as written, in order */
static int msg_header_names(lua_State *L) {
  sip_lua_msg *u = check_message(L, 1);
  int n = 0;
  lua_newtable(L);
  for (uint32_t i = 0; i < u->m->nhdr; i++) {
    const sip_hdr *h = &u->m->hdr[i];
    if (h->state == SIP_HS_REMOVED)
      continue;
    lua_pushlstring(L, h->name.p, h->name.len);
    lua_rawseti(L, -2, ++n);
  }
  return 1;
}

static const char *value_arg(lua_State *L, int arg, size_t *len) {
  const char *v = luaL_checklstring(L, arg, len);
  for (size_t i = 0; i < *len; i++)
    if (v[i] == '\r' || v[i] == '\n')
      luaL_argerror(L, arg, "header value contains a line break");
  return v;
}

/* msg:set_header(name, value): the first instance gets the value, the
 * others are removed; appended at the end when absent (sip_msg_set_header). */
static int msg_set_header(lua_State *L) {
  sip_lua_msg *u = check_message(L, 1);
  const char *name;
  size_t nlen, vlen;
  int id = name_arg(L, 2, &name, &nlen);
  const char *v = value_arg(L, 3, &vlen);
  check_rc(L, sip_msg_set_header(u->m, id, name, nlen, v, vlen), "set_header");
  drop_cache(L, 1, u);
  return 0;
}

/* msg:add_header(name, value[, where]): where "last" (default) appends at
 * the end of the header section; "first" inserts before the first instance
 * of that header (at the top when there is none), so it becomes
 * headers(name)[1]. */
static int msg_add_header(lua_State *L) {
  static const char *const wheres[] = {"last", "first", NULL};
  sip_lua_msg *u = check_message(L, 1);
  const char *name;
  size_t nlen, vlen;
  int id = name_arg(L, 2, &name, &nlen);
  const char *v = value_arg(L, 3, &vlen);
  int first = luaL_checkoption(L, 4, "last", wheres);
  check_rc(L, sip_msg_add_header(u->m, id, name, nlen, v, vlen, first),
           "add_header");
  drop_cache(L, 1, u);
  return 0;
}

/* msg:remove_header(name) -> number of header lines removed */
static int msg_remove_header(lua_State *L) {
  sip_lua_msg *u = check_message(L, 1);
  const char *name;
  size_t nlen;
  int id = name_arg(L, 2, &name, &nlen);
  int n = sip_msg_remove_headers(u->m, id, name, nlen);
  check_rc(L, n, "remove_header");
  if (n)
    drop_cache(L, 1, u);
  lua_pushinteger(L, n);
  return 1;
}

/* msg:push_via(value): a new Via line before the first one (at the top when
 * there is none) */
static int msg_push_via(lua_State *L) {
  sip_lua_msg *u = check_message(L, 1);
  size_t vlen;
  const char *v = value_arg(L, 2, &vlen);
  check_rc(L, sip_msg_add_header(u->m, SIP_H_VIA, NULL, 0, v, vlen, 1),
           "push_via");
  drop_cache(L, 1, u);
  return 0;
}

/* msg:pop_via() -> the removed top Via value, or nil when there is none
 * (sip_msg_pop_via: a line with several values is rewritten without its
 * first one). */
static int msg_pop_via(lua_State *L) {
  sip_lua_msg *u = check_message(L, 1);
  sip_str v;
  int rc = sip_msg_pop_via(u->m, &v);
  check_rc(L, rc, "pop_via");
  drop_cache(L, 1, u);
  if (rc == 0)
    lua_pushnil(L);
  else
    lua_pushlstring(L, v.p, v.len);
  return 1;
}

/* msg:set_status(code[, reason]) for responses */
static int msg_set_status(lua_State *L) {
  sip_lua_msg *u = check_message(L, 1);
  lua_Integer code = luaL_checkinteger(L, 2);
  size_t rlen;
  const char *r = luaL_optlstring(L, 3, "", &rlen);
  if (u->m->is_request)
    return luaL_error(L, "cannot set the status of a request");
  luaL_argcheck(L, code >= 100 && code <= 699, 2, "status out of range");
  check_rc(L, sip_msg_set_status(u->m, (int)code, r, rlen), "set_status");
  drop_cache(L, 1, u);
  return 0;
}

/* msg:auth([name[, n]]) -> {scheme=, params={...}} of the n-th (default 1)
 * header line called name (default "Authorization"); nil when absent, or
 * nil, err, name when malformed. Param names lower-cased, values unquoted. */
static int msg_auth(lua_State *L) {
  sip_lua_msg *u = check_message(L, 1);
  size_t nlen;
  const char *name = luaL_optlstring(L, 2, "Authorization", &nlen);
  lua_Integer nth = luaL_optinteger(L, 3, 1);
  luaL_argcheck(L, nth >= 1, 3, "must be 1 or more");
  int id = sip_hdr_lookup(name, nlen);
  luaL_argcheck(L, sip_hdr_flags(id) & SIP_HF_AUTH, 2,
                "not a credentials or challenge header");
  int i = sip_msg_find_nth(u->m, id, NULL, 0, (long)nth);
  if (i < 0) {
    lua_pushnil(L);
    return 1;
  }
  const sip_auth *a;
  u->m->err_what = NULL;
  int rc = sip_msg_get_auth(u->m, i, &a);
  if (rc < 0)
    return place_fail(L, u, rc, i, sip_hdr_canonical(id));
  lua_createtable(L, 0, 2);
  sip__lua_set_str(L, "scheme", a->scheme);
  sip__lua_push_params(L, &a->params);
  lua_setfield(L, -2, "params");
  return 1;
}

/* msg:parts() -> list of {content_type=, headers=, body=} of a multipart
 * body; nil when the body is not multipart; nil, err, name when malformed */
static int msg_parts(lua_State *L) {
  sip_lua_msg *u = check_message(L, 1);
  const sip_part *p;
  u->m->err_what = NULL;
  int rc = sip_msg_get_parts(u->m, &p);
  if (rc == SIP_ENOTFOUND) {
    lua_pushnil(L);
    return 1;
  }
  if (rc < 0)
    return place_fail(L, u, rc,
                      sip_msg_find(u->m, SIP_H_CONTENT_TYPE, NULL, 0, 0),
                      "multipart body");
  lua_newtable(L);
  for (int i = 1; p; p = p->next, i++) {
    lua_createtable(L, 0, 3);
    sip__lua_set_str(L, "content_type", p->content_type);
    sip__lua_set_str(L, "headers", p->headers);
    if (p->body.p)
      lua_pushlstring(L, p->body.p, p->body.len);
    else
      lua_pushliteral(L, "");
    lua_setfield(L, -2, "body");
    lua_rawseti(L, -2, i);
  }
  return 1;
}

/* msg:size() -> serialized size in bytes */
static int msg_size(lua_State *L) {
  sip_lua_msg *u = check_message(L, 1);
  lua_pushinteger(L, (lua_Integer)sip_msg_size(u->m));
  return 1;
}

/* msg:is_closed() */
static int msg_is_closed(lua_State *L) {
  sip_lua_msg *u = to_message(L, 1);
  lua_pushboolean(L, !msg_live(u));
  return 1;
}

static const luaL_Reg msg_methods[] = {
    {"header", msg_header},
    {"headers", msg_headers},
    {"count", msg_count},
    {"header_names", msg_header_names},
    {"set_header", msg_set_header},
    {"add_header", msg_add_header},
    {"remove_header", msg_remove_header},
    {"push_via", msg_push_via},
    {"pop_via", msg_pop_via},
    {"set_status", msg_set_status},
    {"auth", msg_auth},
    {"parts", msg_parts},
    {"size", msg_size},
    {"close", msg_gc},
    {"is_closed", msg_is_closed},
    {NULL, NULL},
};

/* the metatable of parsed messages; pushed ones add __gc */
static const luaL_Reg msg_meta[] = {
    {"__close", msg_gc},
    {"__tostring", msg_tostring},
    {"__newindex", msg_newindex},
    {NULL, NULL},
};

static void push_field_table(lua_State *L) {
  lua_newtable(L);
  for (int f = 1; f < SIP_F__COUNT; f++) {
    lua_pushinteger(L, f);
    lua_setfield(L, -2, sip_msg_field_name(f));
  }
}

/* core.response_text(req, code, reason) -> the §8.2.6 response to req as
 * text (sip_reply.c: the one builder; a new To tag when To has none and
 * code > 100), or nil, err, name when req's headers cannot form one */
static int l_response_text(lua_State *L) {
  sip_lua_msg *u = check_message(L, 1);
  lua_Integer code = luaL_checkinteger(L, 2);
  size_t rl = 0;
  const char *reason = luaL_optlstring(L, 3, NULL, &rl);
  char tag[SIP_TU_TAG_LEN];
  sip_str tg = sip_tu_new_tag(tag);
  sip_str rs = reason ? (sip_str){reason, rl} : SIP_STR_NULL;
  int status = code >= 100 && code <= 699 ? (int)code : 0;
  size_t n = sip_reply_size(u->m, status, rs, tg, SIP_STR_NULL, SIP_STR_NULL);
  if (n == 0)
    return sip__lua_fail(L, SIP_EINVAL,
                         "response: the request's headers "
                         "cannot form a response");
  luaL_Buffer b;
  char *p = luaL_buffinitsize(L, &b, n);
  int w =
      sip_reply_write(u->m, status, rs, tg, SIP_STR_NULL, SIP_STR_NULL, p, n);
  if (w < 0)
    return sip__lua_fail(L, w, "response: cannot write it");
  luaL_pushresultsize(&b, (size_t)w);
  return 1;
}

/* The metatable tname and the methods table core[field] of a kind of
 * received message; core+1, core+2: the view metatables, core+7:
 * Message's methods. */
static void open_received(lua_State *L, int core, const char *tname,
                          const char *field) {
  luaL_newmetatable(L, tname);
  int mt = lua_gettop(L);
  luaL_setfuncs(L, msg_meta, 0);
  lua_pushcfunction(L, msg_gc);
  lua_setfield(L, mt, "__gc");
  lua_pushvalue(L, core + 1);
  lua_pushvalue(L, core + 2);
  lua_newtable(L);
  lua_pushvalue(L, -1);
  lua_setfield(L, core, field);
  lua_pushvalue(L, core + 7);
  lua_pushcclosure(L, msg_index, 4);
  lua_setfield(L, mt, "__index");
  lua_settop(L, mt - 1);
}

void sip__lua_open_message(lua_State *L) {
  int core = lua_gettop(L);
  open_view(L, SIP_LUA_ADDR, VIEW_ADDR); /* core+1 */
  open_view(L, SIP_LUA_VIA, VIEW_VIA);   /* core+2 */
  /* core+3: pushed messages' metatable (registered by name), core+4:
   * parsed messages' (the same less __gc), core+5, core+6: the slot pool
   * and its W table */
  luaL_newmetatable(L, SIP_LUA_MESSAGE);
  luaL_setfuncs(L, msg_meta, 0);
  lua_pushcfunction(L, msg_gc);
  lua_setfield(L, core + 3, "__gc");
  lua_createtable(L, 0, 5);
  luaL_setfuncs(L, msg_meta, 0);
  lua_pushliteral(L, SIP_LUA_MESSAGE);
  lua_setfield(L, core + 4, "__name");
  push_pool(L);
  luaL_newlib(L, msg_methods); /* core+7 */
  lua_pushvalue(L, core + 1);
  lua_pushvalue(L, core + 2);
  lua_pushcclosure(L, msg_get, 2);
  lua_setfield(L, core + 7, "get");
  lua_pushvalue(L, core + 7);
  lua_setfield(L, core, "Message"); /* core.Message = methods (extensible) */
  lua_pushvalue(L, core + 1);
  lua_pushvalue(L, core + 2);
  lua_pushvalue(L, core + 7);
  lua_pushcclosure(L, msg_index, 3);
  lua_pushvalue(L, -1);
  lua_setfield(L, core + 3, "__index");
  lua_setfield(L, core + 4, "__index");
  /* received requests and responses: their own metatables (registered by
   * name) and methods tables core.Request, core.Response (the server's and
   * the proxy's methods, extensible by the Lua layer); Message's methods
   * are inherited */
  open_received(L, core, SIP_LUA_REQUEST, "Request");
  open_received(L, core, SIP_LUA_RESPONSE, "Response");
  lua_pushvalue(L, core + 4);
  lua_pushvalue(L, core + 5);
  lua_pushvalue(L, core + 6);
  lua_pushcclosure(L, l_parse, 3);
  lua_setfield(L, core, "parse");
  lua_pushcfunction(L, l_response_text);
  lua_setfield(L, core, "response_text");
  push_field_table(L);
  lua_setfield(L, core, "fields");
  lua_settop(L, core);
}
