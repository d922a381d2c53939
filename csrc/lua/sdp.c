/* SDP binding: core.sdp_parse(text) -> table, core.sdp_write(table) ->
 * text. The grammar, the order rules and the writing are csrc/sdp's; this
 * file only moves fields between sip_sdp_line and Lua tables (the table
 * shape is documented in lua/luasip/sdp.lua).
 *
 * Byte-exact output: a line whose fields, written back, would not give its
 * bytes (extra spaces, leading zeros) keeps its text in the item's `_raw`;
 * the writer uses `_raw` while the item's fields still equal the fields
 * parsed from it (sip_sdp_line_equal). Text lines (s i u e p k z r) and
 * attributes always write back as they were. */
#include <stdio.h>
#include <string.h>

#include "lsip.h"
#include "sip_sdp.h"

/* --- parse ---------------------------------------------------------------- */

/* A digit slice as an integer when it fits, else as the string. */
static void push_num(lua_State *L, sip_str s) {
  if (s.len <= 18) {
    lua_Integer v = 0;
    for (size_t i = 0; i < s.len; i++)
      v = v * 10 + (s.p[i] - '0');
    lua_pushinteger(L, v);
  } else {
    lua_pushlstring(L, s.p, s.len);
  }
}

static void set_num(lua_State *L, const char *k, sip_str s) {
  push_num(L, s);
  lua_setfield(L, -2, k);
}

/* t[key] (a list at the top's table), created on first use; appends the
 * value at the top of the stack. */
static void append(lua_State *L, int t, const char *key) {
  if (lua_getfield(L, t, key) != LUA_TTABLE) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_setfield(L, t, key);
  }
  lua_insert(L, -2);
  lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
  lua_pop(L, 1);
}

static void push_item(lua_State *L, const sip_sdp_line *l) {
  lua_createtable(L, 0, 6);
  switch (l->type) {
  case 'o':
    sip__lua_set_str(L, "username", l->u.o.username);
    sip__lua_set_str(L, "sess_id", l->u.o.sess_id);
    sip__lua_set_str(L, "sess_version", l->u.o.sess_version);
    sip__lua_set_str(L, "nettype", l->u.o.nettype);
    sip__lua_set_str(L, "addrtype", l->u.o.addrtype);
    sip__lua_set_str(L, "address", l->u.o.address);
    break;
  case 'c':
    sip__lua_set_str(L, "nettype", l->u.c.nettype);
    sip__lua_set_str(L, "addrtype", l->u.c.addrtype);
    sip__lua_set_str(L, "address", l->u.c.address);
    break;
  case 'b':
    sip__lua_set_str(L, "type", l->u.b.bwtype);
    set_num(L, "value", l->u.b.bandwidth);
    break;
  case 't':
    sip__lua_set_str(L, "start", l->u.t.start);
    sip__lua_set_str(L, "stop", l->u.t.stop);
    break;
  case 'm': {
    sip__lua_set_str(L, "media", l->u.m.media);
    set_num(L, "port", l->u.m.port);
    if (l->u.m.nports.p)
      set_num(L, "nports", l->u.m.nports);
    sip__lua_set_str(L, "proto", l->u.m.proto);
    lua_newtable(L);
    const char *p = l->u.m.fmts.p, *end = p + l->u.m.fmts.len;
    lua_Integer i = 0;
    while (p && p < end) {
      while (p < end && *p == ' ')
        p++;
      const char *s = p;
      while (p < end && *p != ' ')
        p++;
      if (p > s) {
        lua_pushlstring(L, s, (size_t)(p - s));
        lua_rawseti(L, -2, ++i);
      }
    }
    lua_setfield(L, -2, "fmts");
    break;
  }
  case 'a':
    sip__lua_set_str(L, "name", l->u.a.name);
    sip__lua_set_str(L, "value", l->u.a.value);
    return; /* always canonical */
  default:
    break;
  }
  if (!sip_sdp_line_canonical(l)) {
    sip__lua_push_str(L, l->value);
    lua_setfield(L, -2, "_raw");
  }
}

/* core.sdp_parse(text) -> table, or nil, "SDP: line N: why", "SDP" */
static int l_sdp_parse(lua_State *L) {
  size_t len;
  const char *text = luaL_checklstring(L, 1, &len);
  /* one line needs at least 2 bytes plus a line ending */
  size_t max = len / 3 + 2;
  if (max > 65536)
    max = 65536;
  sip_sdp_line *lines = lua_newuserdatauv(L, max * sizeof *lines, 0);
  sip_sdp sdp;
  int rc = sip_sdp_parse(&sdp, text, len, lines, (uint32_t)max);
  if (rc < 0) {
    if (rc == SIP_ESDP)
      return sip__lua_fail(L, rc, "SDP: line %d: %s", (int)sdp.err_line,
                           sdp.err_what);
    return sip__lua_fail(L, rc, "SDP: %s", sip_strerror(rc));
  }
  lua_createtable(L, 0, 8);
  int top = lua_gettop(L), sect = top;
  for (uint32_t i = 0; i < sdp.nlines; i++) {
    const sip_sdp_line *l = &lines[i];
    switch (l->type) {
    case 'v':
      sip__lua_set_str(L, "version", l->value);
      if (!sip_sdp_line_canonical(l)) {
        sip__lua_push_str(L, l->value);
        lua_setfield(L, top, "_raw_version");
      }
      break;
    case 's':
      sip__lua_set_str(L, "name", l->value);
      break;
    case 'i':
      sip__lua_set_str(L, "info", l->value);
      break;
    case 'u':
      sip__lua_set_str(L, "uri", l->value);
      break;
    case 'k':
      sip__lua_set_str(L, "key", l->value);
      break;
    case 'z':
      sip__lua_set_str(L, "zone", l->value);
      break;
    case 'e':
      sip__lua_push_str(L, l->value);
      append(L, sect, "emails");
      break;
    case 'p':
      sip__lua_push_str(L, l->value);
      append(L, sect, "phones");
      break;
    case 'r': { /* the repeats of the last t= */
      lua_getfield(L, sect, "times");
      lua_rawgeti(L, -1, (lua_Integer)lua_rawlen(L, -1));
      sip__lua_push_str(L, l->value);
      append(L, lua_gettop(L) - 1, "repeats");
      lua_pop(L, 2);
      break;
    }
    case 'o':
      push_item(L, l);
      lua_setfield(L, sect, "origin");
      break;
    case 'c':
      push_item(L, l);
      if (sect == top)
        lua_setfield(L, sect, "connection");
      else
        append(L, sect, "connections");
      break;
    case 'b':
      push_item(L, l);
      append(L, sect, "bandwidths");
      break;
    case 't':
      push_item(L, l);
      append(L, sect, "times");
      break;
    case 'a':
      push_item(L, l);
      append(L, sect, "attributes");
      break;
    case 'm':
      if (sect != top)
        lua_pop(L, 1); /* the previous media table */
      push_item(L, l);
      lua_pushvalue(L, -1);
      append(L, top, "media");
      sect = lua_gettop(L);
      break;
    default:
      break;
    }
  }
  lua_settop(L, top);
  if (sdp.lf_only) {
    lua_pushboolean(L, 1);
    lua_setfield(L, top, "lf");
  }
  if (!sdp.last_eol) {
    lua_pushboolean(L, 1);
    lua_setfield(L, top, "no_final_eol");
  }
  if (lua_getfield(L, top, "media") == LUA_TNIL) {
    lua_newtable(L);
    lua_setfield(L, top, "media");
  }
  lua_pop(L, 1);
  return 1;
}

/* --- write ---------------------------------------------------------------- */

#define SDP_BUILD "luasip.SdpBuild"

/* The reader sip_sdp_build walks the table with: the current table is at
 * the top of the stack; strings read are kept in the anchor table. */
typedef struct reader {
  lua_State *L;
  int anchor;
} reader;

static void rd_get(void *ud, const char *k, size_t i, sip_sdp_val *v) {
  reader *r = ud;
  lua_State *L = r->L;
  int t = k ? lua_getfield(L, -1, k) : lua_rawgeti(L, -1, (lua_Integer)i);
  v->kind = SIP_SDP_V_OTHER;
  if (t == LUA_TTABLE) {
    v->kind = SIP_SDP_V_TABLE;
    v->len = lua_rawlen(L, -1);
    return; /* the current table until rd_close */
  }
  if (t == LUA_TSTRING) {
    v->kind = SIP_SDP_V_STR;
    v->s.p = lua_tolstring(L, -1, &v->s.len);
    lua_rawseti(L, r->anchor, (lua_Integer)lua_rawlen(L, r->anchor) + 1);
    return;
  }
  if (t == LUA_TNIL)
    v->kind = SIP_SDP_V_NIL;
  else if (t == LUA_TBOOLEAN && !lua_toboolean(L, -1))
    v->kind = SIP_SDP_V_FALSE;
  else if (lua_isinteger(L, -1) && lua_tointeger(L, -1) >= 0) {
    v->kind = SIP_SDP_V_UINT;
    v->n = (uint64_t)lua_tointeger(L, -1);
  }
  lua_pop(L, 1);
}

static void rd_close(void *ud) { lua_pop(((reader *)ud)->L, 1); }

static int build_gc(lua_State *L) {
  sip_sdp_builder_free(luaL_checkudata(L, 1, SDP_BUILD));
  return 0;
}

/* core.sdp_write(table) -> text, or nil, "SDP: ...", "INVAL" */
static int l_sdp_write(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  lua_newtable(L);                                         /* 2: anchor */
  sip_sdp_builder *b = lua_newuserdatauv(L, sizeof *b, 0); /* 3 */
  memset(b, 0, sizeof *b);
  luaL_setmetatable(L, SDP_BUILD);
  lua_pushvalue(L, 1); /* the reader's current table */
  reader r = {L, 2};
  sip_sdp_reader rd = {&r, rd_get, rd_close};
  int rc = sip_sdp_build(b, &rd);
  if (rc == SIP_ENOMEM)
    return luaL_error(L, "not enough memory");
  if (rc < 0 && b->err_where < 0)
    return sip__lua_fail(L, rc, "SDP: media is not a list");
  if (rc < 0 && b->err_where > 0)
    return sip__lua_fail(L, rc, "SDP: media[%d]: bad or missing %s",
                         b->err_where, b->err_field);
  if (rc < 0)
    return sip__lua_fail(L, rc, "SDP: session: bad or missing %s",
                         b->err_field);
  uint32_t bad = 0;
  int need =
      sip_sdp_write(b->lines, b->n, b->lf_only, b->last_eol, NULL, 0, &bad);
  if (need < 0)
    return sip__lua_fail(L, need,
                         "SDP: line %d (%c=): a field holds a CR, LF or NUL, "
                         "a space in a token, or a non-number",
                         (int)bad + 1, b->lines[bad].type);
  luaL_Buffer lb;
  char *out = luaL_buffinitsize(L, &lb, (size_t)need);
  sip_sdp_write(b->lines, b->n, b->lf_only, b->last_eol, out, (size_t)need,
                NULL);
  luaL_pushresultsize(&lb, (size_t)need);
  sip_sdp_builder_free(b); /* now rather than at __gc */
  return 1;
}

/* --- offer/answer --------------------------------------------------------- */

/* Parse text into a userdata of lines left on the stack. Returns 0, or
 * pushes nil, err, name and returns 3. */
static int parse_into(lua_State *L, const char *text, size_t len, sip_sdp *s) {
  size_t max = len / 3 + 2;
  if (max > 65536)
    max = 65536;
  sip_sdp_line *lines = lua_newuserdatauv(L, max * sizeof *lines, 0);
  int rc = sip_sdp_parse(s, text, len, lines, (uint32_t)max);
  if (rc == SIP_ESDP)
    return sip__lua_fail(L, rc, "SDP: line %d: %s", (int)s->err_line,
                         s->err_what);
  if (rc < 0)
    return sip__lua_fail(L, rc, "SDP: %s", sip_strerror(rc));
  return 0;
}

/* core.sdp_answer(offer, caps[, direction[, prefer_local]]) -> text,
 * accepted | nil, "SDP: line N: why", "SDP" (offer or caps does not parse)
 * | nil, "SDP: too many ...", "TOOMANY". Both are texts; direction is nil
 * (each caps stream's) or one of sendrecv, sendonly, recvonly, inactive. */
static int l_sdp_answer(lua_State *L) {
  size_t olen, clen;
  const char *offer = luaL_checklstring(L, 1, &olen);
  const char *caps = luaL_checklstring(L, 2, &clen);
  sip_sdp_answer_opts opts = {.direction = -1,
                              .prefer_local = lua_toboolean(L, 4)};
  if (!lua_isnoneornil(L, 3)) {
    opts.direction = sip_sdp_direction(luaL_checkstring(L, 3));
    if (opts.direction < 0)
      return luaL_argerror(L, 3, "not a direction");
  }
  sip_sdp o, c;
  int rc;
  if ((rc = parse_into(L, offer, olen, &o)) ||
      (rc = parse_into(L, caps, clen, &c)))
    return rc;
  char small[1024];
  uint32_t acc = 0;
  int need = sip_sdp_answer(&o, &c, &opts, small, sizeof small, &acc);
  if (need < 0)
    return sip__lua_fail(L, need, "SDP: %s", sip_strerror(need));
  if ((size_t)need <= sizeof small) {
    lua_pushlstring(L, small, (size_t)need);
  } else {
    luaL_Buffer b;
    char *out = luaL_buffinitsize(L, &b, (size_t)need);
    sip_sdp_answer(&o, &c, &opts, out, (size_t)need, NULL);
    luaL_pushresultsize(&b, (size_t)need);
  }
  lua_pushinteger(L, (lua_Integer)acc);
  return 2;
}

/* core.sdp_static(pt) -> name, rate, channels (nil: not given) | nil: RFC
 * 3551's table, the one sip_sdp_answer uses. */
static int l_sdp_static(lua_State *L) {
  lua_Integer pt = luaL_checkinteger(L, 1);
  const char *name;
  unsigned rate, ch;
  if (pt < 0 || pt > 1000 ||
      !sip_sdp_static_pt((unsigned)pt, &name, &rate, &ch))
    return 0;
  lua_pushstring(L, name);
  lua_pushinteger(L, rate);
  if (ch)
    lua_pushinteger(L, ch);
  else
    lua_pushnil(L);
  return 3;
}

static const luaL_Reg sdp_funcs[] = {
    {"sdp_answer", l_sdp_answer},
    {"sdp_static", l_sdp_static},
    {"sdp_parse", l_sdp_parse},
    {"sdp_write", l_sdp_write},
    {NULL, NULL},
};

void sip__lua_open_sdp(lua_State *L) {
  luaL_newmetatable(L, SDP_BUILD);
  lua_pushcfunction(L, build_gc);
  lua_setfield(L, -2, "__gc");
  lua_pop(L, 1);
  luaL_setfuncs(L, sdp_funcs, 0);
}
