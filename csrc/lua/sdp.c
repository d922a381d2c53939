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

/* The lines being built: a userdata array that grows, and an anchor table
 * that keeps every string the lines point into alive. */
typedef struct wstate {
  lua_State *L;
  int anchor; /* stack index of the anchor table */
  int box;    /* stack index of the userdata holding lines */
  sip_sdp_line *lines;
  uint32_t n, cap;
  const char *err; /* the field that failed, for the message */
} wstate;

static sip_sdp_line *new_line(wstate *w, char type) {
  if (w->n == w->cap) {
    uint32_t cap = w->cap ? w->cap * 2 : 32;
    sip_sdp_line *nl = lua_newuserdatauv(w->L, cap * sizeof *nl, 0);
    if (w->n)
      memcpy(nl, w->lines, w->n * sizeof *nl);
    lua_replace(w->L, w->box);
    w->lines = nl;
    w->cap = cap;
  }
  sip_sdp_line *l = &w->lines[w->n++];
  memset(l, 0, sizeof *l);
  l->type = type;
  return l;
}

/* Anchor the string at the top of the stack (popped) and return it. */
static sip_str anchor(wstate *w) {
  size_t len;
  const char *s = lua_tolstring(w->L, -1, &len);
  lua_rawseti(w->L, w->anchor, (lua_Integer)lua_rawlen(w->L, w->anchor) + 1);
  return (sip_str){s, len};
}

/* Field k of the table at index t: a string, or an integer written in
 * decimal (numbers only when num). Absent when nil; *ok = 0 for any other
 * type. */
static sip_str field(wstate *w, int t, const char *k, int num, int *ok) {
  lua_State *L = w->L;
  int ty = lua_getfield(L, t, k);
  if (ty == LUA_TNIL) {
    lua_pop(L, 1);
    return SIP_STR_NULL;
  }
  if (ty == LUA_TSTRING)
    return anchor(w);
  if (num && ty == LUA_TNUMBER && lua_isinteger(L, -1) &&
      lua_tointeger(L, -1) >= 0) {
    char buf[24];
    int n = snprintf(buf, sizeof buf, "%lld", (long long)lua_tointeger(L, -1));
    lua_pop(L, 1);
    lua_pushlstring(L, buf, (size_t)n);
    return anchor(w);
  }
  lua_pop(L, 1);
  *ok = 0;
  w->err = k;
  return SIP_STR_NULL;
}

/* Required field: present, else *ok = 0. */
static sip_str need(wstate *w, int t, const char *k, int num, int *ok) {
  sip_str s = field(w, t, k, num, ok);
  if (!s.p && *ok) {
    *ok = 0;
    w->err = k;
  }
  return s;
}

/* When the item keeps the text it was parsed from and its fields still
 * equal that text's, write the text as it was. */
static void keep_raw(wstate *w, int t, sip_sdp_line *l) {
  lua_State *L = w->L;
  if (lua_getfield(L, t, "_raw") != LUA_TSTRING) {
    lua_pop(L, 1);
    return;
  }
  sip_str raw = anchor(w);
  sip_sdp_line r;
  const char *what;
  if (sip_sdp_parse_line(l->type, raw.p, raw.len, &r, &what) == 0 &&
      sip_sdp_line_equal(l, &r))
    l->value = raw;
}

/* One item table at t (absolute index) as a line of type. Returns 1, or 0
 * with w->err naming the field. */
static int item_line(wstate *w, int t, char type) {
  lua_State *L = w->L;
  int ok = 1;
  if (!lua_istable(L, t)) {
    w->err = "(not a table)";
    return 0;
  }
  sip_sdp_line *l = new_line(w, type);
  switch (type) {
  case 'o':
    l->u.o.username = need(w, t, "username", 0, &ok);
    l->u.o.sess_id = need(w, t, "sess_id", 1, &ok);
    l->u.o.sess_version = need(w, t, "sess_version", 1, &ok);
    l->u.o.nettype = need(w, t, "nettype", 0, &ok);
    l->u.o.addrtype = need(w, t, "addrtype", 0, &ok);
    l->u.o.address = need(w, t, "address", 0, &ok);
    break;
  case 'c':
    l->u.c.nettype = need(w, t, "nettype", 0, &ok);
    l->u.c.addrtype = need(w, t, "addrtype", 0, &ok);
    l->u.c.address = need(w, t, "address", 0, &ok);
    break;
  case 'b':
    l->u.b.bwtype = need(w, t, "type", 0, &ok);
    l->u.b.bandwidth = need(w, t, "value", 1, &ok);
    break;
  case 't':
    l->u.t.start = need(w, t, "start", 1, &ok);
    l->u.t.stop = need(w, t, "stop", 1, &ok);
    break;
  case 'm': {
    l->u.m.media = need(w, t, "media", 0, &ok);
    l->u.m.port = need(w, t, "port", 1, &ok);
    l->u.m.nports = field(w, t, "nports", 1, &ok);
    l->u.m.proto = need(w, t, "proto", 0, &ok);
    if (lua_getfield(L, t, "fmts") == LUA_TTABLE) {
      int ft = lua_gettop(L);
      lua_Integer n = (lua_Integer)lua_rawlen(L, ft);
      luaL_Buffer b;
      luaL_buffinit(L, &b);
      for (lua_Integer i = 1; i <= n; i++) {
        if (i > 1)
          luaL_addchar(&b, ' ');
        if (lua_rawgeti(L, ft, i) != LUA_TSTRING) {
          lua_pop(L, 1);
          ok = 0;
          w->err = "fmts";
          continue;
        }
        luaL_addvalue(&b);
      }
      luaL_pushresult(&b);
      if (n > 0) {
        l->u.m.fmts = anchor(w);
      } else {
        lua_pop(L, 1);
      }
    } else if (!lua_isnil(L, -1)) {
      ok = 0;
      w->err = "fmts";
    }
    lua_pop(L, 1);
    break;
  }
  case 'a':
    l->u.a.name = need(w, t, "name", 0, &ok);
    l->u.a.value = field(w, t, "value", 1, &ok);
    break;
  default:
    break;
  }
  if (ok)
    keep_raw(w, t, l);
  return ok;
}

/* A text line from field k of t (optional unless req). */
static int text_line(wstate *w, int t, const char *k, char type, int req) {
  int ok = 1;
  sip_str s = req ? need(w, t, k, 0, &ok) : field(w, t, k, 0, &ok);
  if (ok && s.p)
    new_line(w, type)->value = s;
  return ok;
}

/* Each element of list t[k] (items when type is not a text type). */
static int list_lines(wstate *w, int t, const char *k, char type) {
  lua_State *L = w->L;
  int ty = lua_getfield(L, t, k), ok = 1;
  if (ty == LUA_TNIL) {
    lua_pop(L, 1);
    return 1;
  }
  if (ty != LUA_TTABLE) {
    lua_pop(L, 1);
    w->err = k;
    return 0;
  }
  int lt = lua_gettop(L);
  lua_Integer n = (lua_Integer)lua_rawlen(L, lt);
  for (lua_Integer i = 1; ok && i <= n; i++) {
    lua_rawgeti(L, lt, i);
    if (strchr("epr", type)) {
      if (lua_type(L, -1) == LUA_TSTRING) {
        new_line(w, type)->value = anchor(w);
        continue;
      }
      w->err = k;
      ok = 0;
    } else {
      ok = item_line(w, lua_gettop(L), type);
      if (ok && type == 't')
        ok = list_lines(w, lua_gettop(L), "repeats", 'r');
    }
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  return ok;
}

static int section(wstate *w, int t, int media) {
  lua_State *L = w->L;
  if (media) {
    if (!item_line(w, t, 'm') || !text_line(w, t, "info", 'i', 0) ||
        !list_lines(w, t, "connections", 'c') ||
        !list_lines(w, t, "bandwidths", 'b') || !text_line(w, t, "key", 'k', 0))
      return 0;
    return list_lines(w, t, "attributes", 'a');
  }
  int ok = 1;
  sip_sdp_line *v = new_line(w, 'v');
  v->value = field(w, t, "version", 1, &ok);
  if (!v->value.p)
    v->value = SIP_STR_LIT("0");
  if (lua_getfield(L, t, "_raw_version") == LUA_TSTRING) {
    sip_str raw = anchor(w);
    sip_sdp_line a = {.type = 'v', .value = raw};
    if (sip_sdp_line_equal(v, &a))
      v->value = raw;
  } else {
    lua_pop(L, 1);
  }
  if (!ok)
    return 0;
  if (lua_getfield(L, t, "origin") == LUA_TNIL) {
    w->err = "origin";
    lua_pop(L, 1);
    return 0;
  }
  ok = item_line(w, lua_gettop(L), 'o');
  lua_pop(L, 1);
  if (!ok || !text_line(w, t, "name", 's', 1) ||
      !text_line(w, t, "info", 'i', 0) || !text_line(w, t, "uri", 'u', 0) ||
      !list_lines(w, t, "emails", 'e') || !list_lines(w, t, "phones", 'p'))
    return 0;
  if (lua_getfield(L, t, "connection") != LUA_TNIL)
    ok = item_line(w, lua_gettop(L), 'c');
  lua_pop(L, 1);
  return ok && list_lines(w, t, "bandwidths", 'b') &&
         list_lines(w, t, "times", 't') && text_line(w, t, "zone", 'z', 0) &&
         text_line(w, t, "key", 'k', 0) && list_lines(w, t, "attributes", 'a');
}

/* core.sdp_write(table) -> text, or nil, "SDP: ...", "INVAL" */
static int l_sdp_write(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  lua_newtable(L); /* 2: anchor */
  lua_pushnil(L);  /* 3: the lines' userdata */
  wstate w = {L, 2, 3, NULL, 0, 0, NULL};
  if (!section(&w, 1, 0))
    return sip__lua_fail(L, SIP_EINVAL, "SDP: session: bad or missing %s",
                         w.err);
  int mt = lua_getfield(L, 1, "media");
  if (mt == LUA_TTABLE) {
    lua_Integer n = (lua_Integer)lua_rawlen(L, 4);
    for (lua_Integer i = 1; i <= n; i++) {
      lua_rawgeti(L, 4, i);
      if (!section(&w, 5, 1))
        return sip__lua_fail(L, SIP_EINVAL, "SDP: media[%d]: bad or missing %s",
                             (int)i, w.err);
      lua_pop(L, 1);
    }
  } else if (mt != LUA_TNIL) {
    return sip__lua_fail(L, SIP_EINVAL, "SDP: media is not a list");
  }
  lua_getfield(L, 1, "lf");
  int lf = lua_toboolean(L, -1);
  lua_getfield(L, 1, "no_final_eol");
  int eol = !lua_toboolean(L, -1);
  lua_pop(L, 2);
  uint32_t bad = 0;
  int need = sip_sdp_write(w.lines, w.n, lf, eol, NULL, 0, &bad);
  if (need < 0)
    return sip__lua_fail(L, need,
                         "SDP: line %d (%c=): a field holds a CR, LF or NUL, "
                         "a space in a token, or a non-number",
                         (int)bad + 1, w.lines[bad].type);
  luaL_Buffer b;
  char *out = luaL_buffinitsize(L, &b, (size_t)need);
  sip_sdp_write(w.lines, w.n, lf, eol, out, (size_t)need, NULL);
  luaL_pushresultsize(&b, (size_t)need);
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

void sip__lua_open_sdp(lua_State *L) { luaL_setfuncs(L, sdp_funcs, 0); }
