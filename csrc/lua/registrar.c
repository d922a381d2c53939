/* The registrar's steps and text for lua/luasip/registrar.lua: the one
 * copy of each is in csrc/registrar/ (the flow: plan.c, its fast path on
 * the memory store: memsave.c; the qvalue: the Contact parser), this file
 * only converts (the binding codec: binding.c).
 *
 *   core.registrar_check(req, opts, defaults) -> aor
 *   core.registrar_contacts(req, opts, defaults) -> changes, star, outbound
 *       (both: | nil, status, reason[, header name, header value])
 *   core.registrar_aor(uri) -> aor, host | nil, why
 *   core.registrar_update(req, changes, current, star, opts, defaults)
 *     -> removes, kept | nil, status, reason
 *   core.registrar_binding(req, change, aor, now, opts, defaults[, base])
 *     -> the binding table of a save
 *   core.registrar_ok_headers(req, list, now, opts, defaults, outbound)
 *     -> the 200's header lines (list sorted in place)
 *   core.registrar_contact_value(binding, now) -> Contact value
 *   core.registrar_http_date(t) -> "Sat, 13 Nov 2010 23:29:00 GMT"
 *   core.registrar_temp_gruu(uri) -> base, n, or nil: not a temporary GRUU
 *   core.registrar_save(req, memstore, opts, defaults, now, saved)
 *     -> 200, list       done: stored, answered
 *     -> status, reason  a step's answer (sent)
 *     -> false           not a case it takes: the caller runs
 *                        registrar.save's Lua flow
 *
 * `uri` is a string or a luasip.URI. Misuse (a wrong argument type)
 * raises; so does an error of an opts.domains function (raised again
 * after the step). registrar_save is csrc/registrar/memsave.c on a
 * luasip.MemStore (the memory backend's C store: it keeps the count and
 * schedules the expiry); "false" leaves no trace. `now` is os.time(),
 * `saved` the store's clock (location_clock). It is kept for speed (CPU
 * per REGISTER: see README, "Registrar").
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "lbinding.h"
#include "lserver.h"
#include "sip_binding.h"
#include "sip_memstore.h"
#include "sip_reg_memsave.h"
#include "sip_reg_plan.h"
#include "sip_registrar.h"

/* A parsed URI: the text at idx (a string, or a URI through __tostring)
 * parsed into u with arena a. Returns 0 or a negative error. */
static int parse_uri_arg(lua_State *L, int idx, sip_arena *a, sip_uri *u) {
  size_t len;
  const char *s;
  if (lua_type(L, idx) == LUA_TSTRING) {
    s = lua_tolstring(L, idx, &len);
  } else {
    luaL_checkudata(L, idx, SIP_LUA_URI);
    luaL_tolstring(L, idx, NULL);
    lua_replace(L, idx); /* keeps the text alive */
    s = lua_tolstring(L, idx, &len);
  }
  return sip_uri_parse(a, s, len, u);
}

static int is_sip(const sip_uri *u) {
  return u->kind == SIP_URI_SIP || u->kind == SIP_URI_SIPS;
}

/* fn(u, out) into a Lua string of at most cap bytes, pushed */
static void push_text(lua_State *L, int (*fn)(const sip_uri *, sip_obuf *),
                      const sip_uri *u, size_t cap) {
  luaL_Buffer lb;
  char *mem = luaL_buffinitsize(L, &lb, cap);
  sip_obuf out;
  sip_obuf_init(&out, mem, cap);
  fn(u, &out);
  if (out.overflow) /* the bounds below are wrong: a bug, not input */
    luaL_error(L, "registrar: text longer than %d bytes", (int)cap);
  luaL_pushresultsize(&lb, out.len);
}

/* Room for a key or an AOR: every byte escaped (3x), the port and the
 * compared parameter names. */
static size_t text_cap(const sip_uri *u) { return 3 * u->raw.len + 64; }

/* core.registrar_aor(uri) -> aor, host (as written) | nil, why */
static int l_aor(lua_State *L) {
  lua_settop(L, 1);
  uint64_t inl[512 / 8];
  sip_arena a;
  sip_arena_init(&a, inl, sizeof inl);
  sip_uri u;
  const char *why = NULL;
  if (parse_uri_arg(L, 1, &a, &u) < 0)
    why = "malformed URI";
  else if (!is_sip(&u))
    why = "not a SIP or SIPS URI";
  else if (u.host.len == 0)
    why = "no host";
  if (why) {
    sip_arena_free(&a);
    lua_pushnil(L);
    lua_pushstring(L, why);
    return 2;
  }
  push_text(L, sip_reg_aor, &u, text_cap(&u));
  sip__lua_push_str(L, u.host);
  sip_arena_free(&a);
  return 2;
}

/* core.registrar_temp_gruu(uri) -> base, n | nil: the parts of a temporary
 * GRUU (sip_reg_temp_gruu_parse, the inverse of its writer) */
static int l_temp_gruu(lua_State *L) {
  lua_settop(L, 1);
  uint64_t inl[512 / 8];
  sip_arena a;
  sip_arena_init(&a, inl, sizeof inl);
  sip_uri u;
  sip_str base;
  int64_t n;
  if (parse_uri_arg(L, 1, &a, &u) < 0 ||
      !sip_reg_temp_gruu_parse(&u, &base, &n)) {
    sip_arena_free(&a);
    lua_pushnil(L);
    return 1;
  }
  sip__lua_push_str(L, base);
  lua_pushinteger(L, (lua_Integer)n);
  sip_arena_free(&a);
  return 2;
}

/* ---- the flow's steps (csrc/registrar/plan.c) ------------------------ */

#define MAX_TAGS 32 /* opts.supported */

/* The options of registrar.save as a sip_reg_conf, and what its domains
 * callback needs: opts.domains (a list or a function(host, req)) at index
 * `domains` (0: every domain is served), the request at `req`. */
typedef struct reg_ctx {
  lua_State *L;
  int domains, req;
  int failed; /* the domains function raised: its error is on the stack */
  sip_str tags[MAX_TAGS];
  sip_reg_conf conf;
} reg_ctx;

/* The message handler of the domains function's call: its error with the
 * traceback where it was raised (the error is raised again after the
 * step, whose own traceback starts at the step). */
static int add_traceback(lua_State *L) {
  const char *msg = lua_tostring(L, 1);
  if (!msg)
    return 1; /* not a string: as it is */
  luaL_traceback(L, L, msg, 1);
  return 1;
}

static int serves_cb(void *ud, sip_str host) {
  reg_ctx *x = ud;
  lua_State *L = x->L;
  luaL_checkstack(L, 5, "registrar domains");
  if (lua_type(L, x->domains) == LUA_TFUNCTION) {
    lua_pushcfunction(L, add_traceback);
    int msgh = lua_gettop(L);
    lua_pushvalue(L, x->domains);
    luaL_Buffer lb;
    char *d = luaL_buffinitsize(L, &lb, host.len);
    for (size_t i = 0; i < host.len; i++)
      d[i] = sip__lua_lower(host.p[i]);
    luaL_pushresultsize(&lb, host.len);
    lua_pushvalue(L, x->req);
    if (lua_pcall(L, 2, 1, msgh) != LUA_OK) {
      lua_remove(L, msgh); /* the error stays on top */
      x->failed = 1;
      return SIP_EINVAL;
    }
    int r = lua_toboolean(L, -1);
    lua_pop(L, 2);
    return r;
  }
  for (lua_Integer i = 1;; i++) {
    int t = lua_rawgeti(L, x->domains, i);
    if (t == LUA_TNIL) {
      lua_pop(L, 1);
      return 0;
    }
    size_t n;
    const char *name = t == LUA_TSTRING ? lua_tolstring(L, -1, &n) : NULL;
    int found = name && sip_str_ieq(host, (sip_str){name, n});
    lua_pop(L, 1);
    if (found)
      return 1;
  }
}

/* opts[name], else defaults[name]: an integer (a float is clamped). */
static int64_t opt_int(lua_State *L, int opts, int defaults, const char *name) {
  if (lua_getfield(L, opts, name) == LUA_TNIL) {
    lua_pop(L, 1);
    lua_getfield(L, defaults, name);
  }
  int isint;
  lua_Integer i = lua_tointegerx(L, -1, &isint);
  if (!isint && lua_type(L, -1) != LUA_TNUMBER)
    luaL_error(L, "registrar: option %s must be a number", name);
  double d = (double)lua_tonumber(L, -1);
  lua_pop(L, 1);
  if (isint)
    return (int64_t)i;
  return d >= 9.2e18 ? INT64_MAX : d <= -9.2e18 ? INT64_MIN : (int64_t)d;
}

/* opts[name] ~= false */
static int opt_on(lua_State *L, int opts, const char *name) {
  lua_getfield(L, opts, name);
  int on = !(lua_isboolean(L, -1) && !lua_toboolean(L, -1));
  lua_pop(L, 1);
  return on;
}

/* Fill x from opts and defaults; pushes opts.domains (kept on the stack
 * for the callback). */
static void read_conf(lua_State *L, int req, int opts, int defaults,
                      reg_ctx *x) {
  memset(x, 0, sizeof *x);
  x->L = L;
  x->req = req;
  sip_reg_conf *c = &x->conf;
  c->default_expires = opt_int(L, opts, defaults, "default_expires");
  c->min_expires = opt_int(L, opts, defaults, "min_expires");
  c->max_expires = opt_int(L, opts, defaults, "max_expires");
  c->max_contacts = opt_int(L, opts, defaults, "max_contacts");
  c->max_contact_size = opt_int(L, opts, defaults, "max_contact_size");
  c->path = opt_on(L, opts, "path");
  c->outbound = opt_on(L, opts, "outbound");
  c->gruu = opt_on(L, opts, "gruu");
  if (lua_getfield(L, opts, "supported") == LUA_TTABLE) {
    for (lua_Integer i = 1; lua_rawgeti(L, -1, i) == LUA_TSTRING; i++) {
      if (c->nsupported == MAX_TAGS)
        luaL_error(L, "registrar: opts.supported: at most %d tags", MAX_TAGS);
      size_t n;
      const char *s = lua_tolstring(L, -1, &n); /* kept alive by opts */
      x->tags[c->nsupported++] = (sip_str){s, n};
      lua_pop(L, 1);
    }
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  c->supported = x->tags;
  int t = lua_getfield(L, opts, "domains");
  if (t == LUA_TTABLE || t == LUA_TFUNCTION) {
    x->domains = lua_gettop(L);
    c->serves = serves_cb;
    c->ud = x;
  } else if (t != LUA_TNIL) {
    luaL_error(L, "registrar: opts.domains must be a list or a function");
  }
}

/* A step's negative result: the domains function's error is raised again;
 * SIP_ENOMEM (a buffer too small) is the caller's to handle. */
static int step_failed(lua_State *L, reg_ctx *x, int rc) {
  if (x->failed)
    return lua_error(L);
  return rc;
}

/* The start of a step called as (req, opts, defaults): checks them, reads
 * the configuration into *x (opts.domains is left on the stack at 4) and
 * returns the request's message. */
static sip_msg *step_args(lua_State *L, reg_ctx *x) {
  sip_msg *m = sip__lua_message_check(L, 1)->m;
  luaL_checktype(L, 2, LUA_TTABLE);
  luaL_checktype(L, 3, LUA_TTABLE);
  lua_settop(L, 3);
  read_conf(L, 1, 2, 3, x);
  return m;
}

/* nil, status, reason, header name, header value */
static int push_answer(lua_State *L, const sip_reg_answer *ans) {
  lua_pushnil(L);
  lua_pushinteger(L, ans->status);
  lua_pushstring(L, ans->reason);
  if (!ans->hname)
    return 3;
  lua_pushstring(L, ans->hname);
  lua_pushstring(L, ans->hvalue);
  return 5;
}

/* core.registrar_check(req, opts, defaults) -> aor
 *   | nil, status, reason[, header name, header value] */
static int l_check(lua_State *L) {
  reg_ctx x;
  sip_msg *m = step_args(L, &x);
  size_t cap = 3 * m->len + 64;
  char *mem = lua_newuserdatauv(L, cap, 0);
  sip_obuf text;
  sip_obuf_init(&text, mem, cap);
  sip_reg_req rq;
  sip_reg_answer ans;
  int rc = sip_reg_check(m, &x.conf, &text, &rq, &ans);
  if (rc < 0)
    return luaL_error(L, "registrar: %s", sip_strerror(step_failed(L, &x, rc)));
  if (rc > 0)
    return push_answer(L, &ans);
  sip__lua_push_str(L, rq.aor);
  return 1;
}

/* core.registrar_contacts(req, opts, defaults) -> changes, star, outbound
 *   | nil, status, reason[, header name, header value]
 * changes: { key =, contact =, expires =, q =, instance =, reg_id =,
 * params = } in the order of the Contacts. */
static int l_contacts(lua_State *L) {
  reg_ctx x;
  sip_msg *m = step_args(L, &x);
  size_t max = sip_reg_contacts_max(m);
  sip_reg_contacts cs = {
      lua_newuserdatauv(L, (max ? max : 1) * sizeof(sip_reg_change), 0), 0, max,
      0, 0};
  size_t cap = 4 * m->len + 64 * max + 64;
  char *mem = lua_newuserdatauv(L, cap, 0);
  sip_obuf text;
  sip_obuf_init(&text, mem, cap);
  /* the arena holds the Contacts re-read when an expires is too large: in
   * a userdata as big as that copy can need, so that a raise below leaves
   * nothing malloc'd */
  size_t acap = 8 * m->len + 4096;
  sip_arena a;
  sip_arena_init(&a, lua_newuserdatauv(L, acap, 0), acap);
  sip_reg_answer ans;
  int rc = sip_reg_contacts_plan(m, &x.conf, &a, &text, &cs, &ans);
  if (rc < 0) {
    sip_arena_free(&a);
    return luaL_error(L, "registrar: %s", sip_strerror(step_failed(L, &x, rc)));
  }
  if (rc > 0) {
    sip_arena_free(&a);
    return push_answer(L, &ans);
  }
  lua_createtable(L, (int)cs.n, 0);
  for (size_t i = 0; i < cs.n; i++) {
    const sip_reg_change *ch = &cs.ch[i];
    lua_createtable(L, 0, 7);
    sip__lua_set_str(L, "key", ch->key);
    sip__lua_set_str(L, "contact", ch->contact);
    lua_pushinteger(L, ch->expires);
    lua_setfield(L, -2, "expires");
    if (ch->q == 0 || ch->q == 1000)
      lua_pushinteger(L, ch->q / 1000);
    else
      lua_pushnumber(L, ch->q / 1000.0);
    lua_setfield(L, -2, "q");
    sip__lua_set_str(L, "instance", ch->instance);
    if (ch->reg_id) {
      lua_pushinteger(L, ch->reg_id);
      lua_setfield(L, -2, "reg_id");
    }
    sip__lua_set_str(L, "params", ch->params);
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  sip_arena_free(&a);
  lua_pushboolean(L, cs.star);
  lua_pushboolean(L, cs.outbound);
  return 3;
}

/* t[k] as a string slice (kept alive by t at idx), or absent */
static sip_str field_str(lua_State *L, int idx, const char *k) {
  sip_str s = SIP_STR_NULL;
  if (lua_getfield(L, idx, k) == LUA_TSTRING)
    s.p = lua_tolstring(L, -1, &s.len);
  lua_pop(L, 1);
  return s;
}

static double field_num(lua_State *L, int idx, const char *k, double dflt) {
  lua_getfield(L, idx, k);
  double v = lua_isnumber(L, -1) ? (double)lua_tonumber(L, -1) : dflt;
  lua_pop(L, 1);
  return v;
}

/* core.registrar_update(req, changes, current, star, opts, defaults)
 *   -> removes, kept | nil, status, reason
 * Step C: changes from registrar_contacts (each gets `old`, the index in
 * current of its binding, `tgruu_n`, and `superseded` when a later change
 * has its key), current from the store's lookup;
 * removes: the keys to remove, kept: the current bindings still bound and
 * unchanged. */
static int l_update(lua_State *L) {
  sip_msg *m = sip__lua_message_check(L, 1)->m;
  luaL_checktype(L, 2, LUA_TTABLE);
  luaL_checktype(L, 3, LUA_TTABLE);
  int star = lua_toboolean(L, 4);
  luaL_checktype(L, 5, LUA_TTABLE);
  luaL_checktype(L, 6, LUA_TTABLE);
  lua_settop(L, 6);
  reg_ctx x;
  read_conf(L, 1, 5, 6, &x);
  sip_str call_id;
  const sip_cseq *cseq;
  if (sip_msg_get_call_id(m, &call_id) < 0 || sip_msg_get_cseq(m, &cseq) < 0)
    return luaL_error(L, "registrar_update: Call-ID and CSeq first "
                         "(registrar_check)");
  lua_Integer nch = luaL_len(L, 2), ncur = luaL_len(L, 3);
  if (nch < 0 || ncur < 0 || nch > 65535 || ncur > 65535)
    return luaL_error(L, "registrar_update: too many bindings");
  sip_reg_contacts cs = {
      lua_newuserdatauv(L, (size_t)(nch ? nch : 1) * sizeof(sip_reg_change), 0),
      (size_t)nch, (size_t)nch, star, 0};
  sip_reg_current *cur = lua_newuserdatauv(
      L, (size_t)(ncur ? ncur : 1) * sizeof(sip_reg_current), 0);
  for (lua_Integer k = 1; k <= nch; k++) {
    lua_rawgeti(L, 2, k);
    int t = lua_gettop(L);
    luaL_checktype(L, t, LUA_TTABLE);
    sip_reg_change *ch = &cs.ch[k - 1];
    memset(ch, 0, sizeof *ch);
    ch->key = field_str(L, t, "key");
    ch->instance = field_str(L, t, "instance");
    ch->expires = (int64_t)field_num(L, t, "expires", 0);
    if (!ch->key.p)
      return luaL_error(L, "registrar_update: a change without a key");
    lua_pop(L, 1);
  }
  for (lua_Integer i = 1; i <= ncur; i++) {
    lua_rawgeti(L, 3, i);
    int t = lua_gettop(L);
    luaL_checktype(L, t, LUA_TTABLE);
    sip_reg_current *b = &cur[i - 1];
    memset(b, 0, sizeof *b);
    b->key = field_str(L, t, "key");
    b->call_id = field_str(L, t, "call_id");
    b->tgruu_base = field_str(L, t, "tgruu_base");
    b->cseq = field_num(L, t, "cseq", -1);
    b->tgruu_n = (int64_t)field_num(L, t, "tgruu_n", 0);
    lua_pop(L, 1);
  }
  sip_reg_answer ans;
  if (sip_reg_update(&x.conf, call_id, cseq->num, &cs, cur, (size_t)ncur, &ans))
    return push_answer(L, &ans);
  for (lua_Integer k = 1; k <= nch; k++) {
    lua_rawgeti(L, 2, k);
    const sip_reg_change *ch = &cs.ch[k - 1];
    if (ch->old >= 0) {
      lua_pushinteger(L, ch->old + 1);
      lua_setfield(L, -2, "old");
    }
    if (ch->tgruu_n) {
      lua_pushinteger(L, ch->tgruu_n);
      lua_setfield(L, -2, "tgruu_n");
    }
    if (ch->superseded) {
      lua_pushboolean(L, 1);
      lua_setfield(L, -2, "superseded");
    }
    lua_pop(L, 1);
  }
  lua_newtable(L);
  lua_newtable(L);
  int nr = 0, nk = 0;
  for (lua_Integer i = 1; i <= ncur; i++) {
    if (cur[i - 1].remove) {
      sip__lua_push_str(L, cur[i - 1].key);
      lua_rawseti(L, -3, ++nr);
    }
    if (cur[i - 1].keep) {
      lua_rawgeti(L, 3, i);
      lua_rawseti(L, -2, ++nk);
    }
  }
  return 2;
}

/* The binding table at idx as a sip_reg_binding (its strings stay owned by
 * the table). */
static void read_binding(lua_State *L, int idx, double now,
                         sip_reg_binding *v) {
  static const char *const strs[] = {"contact", "params", "pub_gruu",
                                     "temp_gruu"};
  sip_str *dst[] = {&v->contact, &v->params, &v->pub_gruu, &v->temp_gruu};
  for (int i = 0; i < 4; i++) {
    *dst[i] = SIP_STR_NULL;
    if (lua_getfield(L, idx, strs[i]) == LUA_TSTRING) {
      size_t n;
      const char *p = lua_tolstring(L, -1, &n);
      *dst[i] = (sip_str){p, n};
    } else if (i == 0) {
      luaL_error(L, "registrar: a binding without a contact string");
    }
    lua_pop(L, 1); /* a string stays referenced by the table */
  }
  lua_getfield(L, idx, "expires");
  v->expires = lua_isnumber(L, -1) ? (double)lua_tonumber(L, -1) : now;
  lua_getfield(L, idx, "q");
  v->q = lua_isnumber(L, -1) ? (double)lua_tonumber(L, -1) : 1;
  lua_getfield(L, idx, "updated");
  v->updated = lua_isnumber(L, -1) ? (double)lua_tonumber(L, -1) : 0;
  lua_pop(L, 3);
}

/* core.registrar_ok_headers(req, list, now, opts, defaults, outbound)
 *   -> the 200's header lines; list is sorted in place (step D) */
static int l_ok_headers(lua_State *L) {
  sip_msg *m = sip__lua_message_check(L, 1)->m;
  luaL_checktype(L, 2, LUA_TTABLE);
  lua_Integer now = luaL_checkinteger(L, 3);
  luaL_checktype(L, 4, LUA_TTABLE);
  luaL_checktype(L, 5, LUA_TTABLE);
  int outbound = lua_toboolean(L, 6);
  lua_settop(L, 5);
  reg_ctx x;
  read_conf(L, 1, 4, 5, &x);
  lua_Integer n = luaL_len(L, 2);
  if (n < 0 || n > 65535)
    return luaL_error(L, "registrar: too many bindings");
  sip_reg_binding *v = lua_newuserdatauv(L, (size_t)(n ? n : 1) * sizeof *v, 0);
  size_t need = 128;
  for (lua_Integer i = 1; i <= n; i++) {
    lua_rawgeti(L, 2, i); /* kept on the stack: its strings are read */
    luaL_checktype(L, -1, LUA_TTABLE);
    read_binding(L, lua_gettop(L), (double)now, &v[i - 1]);
    v[i - 1].idx = (int)i;
    need += 120 + v[i - 1].contact.len + v[i - 1].params.len +
            v[i - 1].pub_gruu.len + v[i - 1].temp_gruu.len;
    lua_pop(L, 1);
  }
  sip_reg_sort(v, (size_t)n);
  lua_createtable(L, (int)n, 0); /* the items in the new order */
  for (lua_Integer i = 0; i < n; i++) {
    lua_rawgeti(L, 2, v[i].idx);
    lua_rawseti(L, -2, i + 1);
  }
  for (lua_Integer i = 1; i <= n; i++) {
    lua_rawgeti(L, -1, i);
    lua_rawseti(L, 2, i);
  }
  lua_pop(L, 1);
  need += m->len; /* Path values echoed */
  luaL_Buffer lb;
  char *mem = luaL_buffinitsize(L, &lb, need);
  sip_obuf out;
  sip_obuf_init(&out, mem, need);
  if (sip_reg_ok_headers(m, &x.conf, v, (size_t)n, (int64_t)now, outbound,
                         &out) < 0)
    return luaL_error(L, "registrar: the 200's headers exceed %d bytes",
                      (int)need);
  luaL_pushresultsize(&lb, out.len);
  return 1;
}

/* core.registrar_http_date(t) -> the Date header's form of t (step D's
 * writer); a t gmtime cannot represent raises, as os.date does */
static int l_http_date(lua_State *L) {
  lua_Integer t = luaL_checkinteger(L, 1);
  char mem[64];
  sip_obuf out;
  sip_obuf_init(&out, mem, sizeof mem);
  if (sip_reg_http_date(&out, (int64_t)t) < 0)
    return luaL_error(L, "registrar: time %I out of range", t);
  lua_pushlstring(L, out.p, out.len);
  return 1;
}

/* core.registrar_contact_value(binding, now) -> the Contact value of a
 * binding (no GRUUs) */
static int l_contact_value(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  double now = (double)luaL_checknumber(L, 2);
  sip_reg_binding v;
  read_binding(L, 1, now, &v);
  size_t need = 128 + v.contact.len + v.params.len;
  luaL_Buffer lb;
  char *mem = luaL_buffinitsize(L, &lb, need);
  sip_obuf out;
  sip_obuf_init(&out, mem, need);
  sip_reg_contact_value(&out, &v, now, 0);
  luaL_pushresultsize(&lb, out.len);
  return 1;
}

/* "udp:127.0.0.1:5060" */
static void put_transport_addr(sip_obuf *b, int transport,
                               const struct sockaddr_storage *sa) {
  const char *name = sip_tp_transport_name(transport);
  char text[64];
  sip_obuf_put_lower(b, name, strlen(name));
  sip_obuf_put(b, ":", 1);
  sip_tp_addr_str(sa, text, sizeof text);
  sip_obuf_puts(b, text);
}

/* "udp:192.0.2.1:5060" and, for UDP, the local address: what a binding
 * stores of where the REGISTER came from. */
static void source_addrs(const sip_lua_rx *r, sip_obuf *a, sip_str *received,
                         sip_str *socket) {
  put_transport_addr(a, r->src.transport, &r->src.peer);
  *received = (sip_str){a->p, a->len};
  *socket = SIP_STR_NULL;
  if (r->src.transport == SIP_TP_UDP) {
    put_transport_addr(a, r->src.transport, &r->src.local);
    *socket = (sip_str){a->p + received->len, a->len - received->len};
  }
}

/* core.registrar_binding(req, change, aor, now, opts, defaults[, base])
 *   -> the binding table of a save (the change of registrar_contacts with
 *   `tgruu_n` of registrar_update; base: the temp GRUUs' random base) */
static int l_binding_new(lua_State *L) {
  sip_lua_rx *r = sip__lua_check_received(L, 1, "registrar_binding");
  sip_msg *m = r->base.m;
  luaL_checktype(L, 2, LUA_TTABLE);
  size_t alen;
  const char *aor = luaL_checklstring(L, 3, &alen);
  lua_Integer now = luaL_checkinteger(L, 4);
  luaL_checktype(L, 5, LUA_TTABLE);
  luaL_checktype(L, 6, LUA_TTABLE);
  size_t blen = 0;
  const char *base = luaL_optlstring(L, 7, NULL, &blen);
  lua_settop(L, 7);
  reg_ctx x;
  read_conf(L, 1, 5, 6, &x);
  sip_reg_change ch;
  memset(&ch, 0, sizeof ch);
  ch.key = field_str(L, 2, "key");
  ch.contact = field_str(L, 2, "contact");
  ch.params = field_str(L, 2, "params");
  ch.instance = field_str(L, 2, "instance");
  ch.expires = (int64_t)field_num(L, 2, "expires", 0);
  ch.q = (int32_t)(field_num(L, 2, "q", 1) * 1000 + 0.5);
  ch.reg_id = (uint32_t)field_num(L, 2, "reg_id", 0);
  ch.tgruu_n = (int64_t)field_num(L, 2, "tgruu_n", 0);
  if (!ch.key.p || !ch.contact.p || !ch.params.p)
    return luaL_error(L, "registrar_binding: not a change");
  sip_reg_new nb;
  memset(&nb, 0, sizeof nb);
  nb.ch = &ch;
  nb.aor = (sip_str){aor, alen};
  const sip_cseq *cs;
  if (sip_msg_get_call_id(m, &nb.call_id) < 0 || sip_msg_get_cseq(m, &cs) < 0)
    return luaL_error(L, "registrar_binding: Call-ID and CSeq first "
                         "(registrar_check)");
  nb.cseq = cs->num;
  if (!x.conf.path || sip_msg_get_addrs(m, SIP_H_PATH, &nb.paths) < 0)
    nb.paths = NULL;
  char addrs[160];
  sip_obuf a;
  sip_obuf_init(&a, addrs, sizeof addrs);
  source_addrs(r, &a, &nb.received, &nb.socket);
  nb.conn_id = (int64_t)r->src.conn_id;
  if (sip_reg_user_agent(m, &nb.user_agent) < 0)
    return luaL_error(L, "registrar_binding: out of memory");
  nb.tgruu_base = base ? (sip_str){base, blen} : SIP_STR_NULL;
  nb.now = now;
  size_t cap = 4096 + m->len + 2 * alen + blen;
  char *mem = lua_newuserdatauv(L, cap, 0);
  sip_obuf out;
  sip_obuf_init(&out, mem, cap);
  if (a.overflow || sip_reg_record(&out, &nb) < 0)
    return luaL_error(L, "registrar_binding: a binding over %d bytes",
                      (int)cap);
  if (sip__lua_push_binding(L, out.p, out.len) < 0)
    return luaL_error(L, "location: corrupt binding record");
  lua_pop(L, 1); /* saved */
  return 1;
}

/* core.registrar_save(req, memstore, opts, defaults, now, saved) */
static int l_registrar_save(lua_State *L) {
  sip_lua_rx *r = sip__lua_check_received(L, 1, "registrar_save");
  sip__lua_memstore_check(L, 2);
  luaL_checktype(L, 3, LUA_TTABLE);
  luaL_checktype(L, 4, LUA_TTABLE);
  lua_Integer now = luaL_checkinteger(L, 5);
  double t = luaL_checknumber(L, 6);
  lua_settop(L, 6);
  if (!r->base.m || !r->base.m->is_request || r->final_status || r->cancelled ||
      r->dropped || r->px || !r->srv->tp) {
    lua_pushboolean(L, 0);
    return 1;
  }
  reg_ctx x;
  read_conf(L, 1, 3, 4, &x);
  char addrs[160];
  sip_obuf a;
  sip_obuf_init(&a, addrs, sizeof addrs);
  sip_str received, socket;
  source_addrs(r, &a, &received, &socket);
  sip_reg_mem fm; /* on the C stack: nothing in it needs freeing */
  sip_reg_mem *f = &fm;
  sip_reg_answer ans;
  int rc = a.overflow ? 0
                      : sip_reg_mem_plan(f, r->base.m, &x.conf,
                                         sip__lua_memstore_check(L, 2),
                                         received, socket,
                                         (int64_t)r->src.conn_id, now, t, &ans);
  if (rc < 0)
    step_failed(L, &x, rc); /* raises the domains function's error */
  if (rc == 2) {            /* a step's answer, as the Lua flow gives it */
    char hdr[300];
    int n = ans.hname
                ? snprintf(hdr, sizeof hdr, "%s: %s\r\n", ans.hname, ans.hvalue)
                : 0;
    (void)sip__lua_rx_reply(r, ans.status,
                            (sip_str){ans.reason, strlen(ans.reason)},
                            (sip_str){hdr, (size_t)n}, SIP_STR_NULL);
    lua_pushinteger(L, ans.status);
    lua_pushstring(L, ans.reason);
    return 2;
  }
  if (rc != 1) {
    lua_pushboolean(L, 0);
    return 1;
  }
  /* The list returned (the bindings of the 200). Every allocation comes
   * before the one write into the store: a memory error leaves no trace. */
  lua_createtable(L, (int)f->nlist, 0);
  for (size_t i = 0; i < f->nlist; i++) {
    if (sip__lua_push_binding(L, f->list[i].p, f->list[i].len) < 0)
      return luaL_error(L, "location: corrupt binding record");
    lua_pop(L, 1); /* saved */
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  /* The one write, all or nothing (a failure leaves the store as it was,
   * and the general flow takes the request). The store is fetched again:
   * Lua ran since. */
  if (sip_reg_mem_commit(f, sip__lua_memstore_check(L, 2)) < 0) {
    lua_pushboolean(L, 0);
    return 1;
  }
  /* stored: a send that fails (counted by the server) changes nothing
   * here, as for the Lua flow, which does not look at req:reply's result */
  (void)sip__lua_rx_reply(r, 200, SIP_STR_NULL, f->headers, SIP_STR_NULL);
  lua_pushinteger(L, 200);
  lua_insert(L, -2);
  return 2;
}

void sip__lua_open_registrar(lua_State *L) {
  static const luaL_Reg fns[] = {
      {"registrar_aor", l_aor},
      {"registrar_check", l_check},
      {"registrar_contacts", l_contacts},
      {"registrar_update", l_update},
      {"registrar_binding", l_binding_new},
      {"registrar_ok_headers", l_ok_headers},
      {"registrar_contact_value", l_contact_value},
      {"registrar_http_date", l_http_date},
      {"registrar_temp_gruu", l_temp_gruu},
      {"registrar_save", l_registrar_save},
      {NULL, NULL},
  };
  luaL_setfuncs(L, fns, 0);
  sip__lua_open_binding(L);
}
