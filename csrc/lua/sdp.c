/* SDP binding: core.sdp_parse(text) -> table, core.sdp_write(table) ->
 * text, core.sdp_answer, core.sdp_static. The grammar, the table shape
 * (documented in lua/luasip/sdp.lua), the order rules, _raw and the
 * writing are csrc/sdp's (sip_sdp_emit, sip_sdp_build): this file only
 * reads and makes Lua values for them. */
#include <string.h>

#include "lsip.h"
#include "ltree.h"
#include "sip_sdp.h"

/* --- parse ---------------------------------------------------------------- */

/* Parse text into a userdata of lines left on the stack. Returns 0, or
 * pushes nil, err, name and returns 3. */
static int parse_into(lua_State *L, const char *text, size_t len, sip_sdp *s) {
  /* one line needs at least 2 bytes plus a line ending */
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

/* core.sdp_parse(text) -> table, or nil, "SDP: line N: why", "SDP" */
static int l_sdp_parse(lua_State *L) {
  size_t len;
  const char *text = luaL_checklstring(L, 1, &len);
  sip_sdp sdp;
  int rc = parse_into(L, text, len, &sdp);
  if (rc)
    return rc;
  luaL_checkstack(L, 16, "sdp_parse");
  lua_createtable(L, 0, 8);
  sip_tree_emitter em;
  sip__lua_tree_emitter(&em, L);
  sip_sdp_emit(&sdp, &em);
  return 1;
}

/* --- write ---------------------------------------------------------------- */

#define SDP_BUILD "luasip.SdpBuild"

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
  sip_lua_tree t;
  sip_tree_reader rd;
  sip__lua_tree_reader(&t, &rd, L, 2);
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
