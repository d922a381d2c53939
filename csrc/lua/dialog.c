/* The dialog binding (csrc/dialog under Lua): a luasip.Dialog userdata per
 * dialog, the server's dialog set, and the Server methods the UA module
 * (lua/luasip/ua.lua) builds on. Protocol logic stays in csrc/dialog:
 * this file converts arguments and results.
 *
 *   srv:dialog_uac(invite, res) -> dlg, is_new | nil, err, code
 *   srv:dialog_uas(req, contact[, early]) -> dlg | nil, err, code
 *   srv:dialog_match(req) -> "outside" | "inside", dlg | "481" | "500", dlg
 *   srv:has_option(msg, tag[, require]) -> boolean
 *   srv:session_uas(req, min_se[, want]), srv:session_uac(res),
 *   srv:min_se(msg), srv:session_due(expires, we_refresh)  (RFC 4028)
 *   dlg:request(method[, extra[, body[, cseq]]]) -> bytes
 *   dlg:ack(cseq[, extra[, body[, dest]]]) -> true | nil, err, code
 *   dlg:ack_again(cseq) -> boolean
 *   dlg:response(res) -> true | nil, err, code
 *   dlg:state() -> "early" | "confirmed" | "terminated"
 *   dlg:reliable(req, status[, reason[, extra[, body]]]) -> rseq (RFC 3262)
 *   dlg:prack(req) -> true | nil, err, code;  dlg:rack(res) -> line | false
 *   dlg:confirm()
 *   dlg:terminate(), dlg:close(), dlg:info() -> table
 */
#include <stdlib.h>
#include <string.h>

#include "lserver.h"
#include "ltree.h"
#include "sip_dialog.h"
#include "sip_error.h"

#define SIP_LUA_DIALOG "luasip.Dialog"

/* The userdata: the dialog (NULL once closed, or when its server closed). */
typedef struct lua_dialog {
  sip_dialog *d;
  sip_lua_server *srv;
} lua_dialog;

static lua_dialog *check_dialog(lua_State *L, int idx) {
  lua_dialog *u = luaL_checkudata(L, idx, SIP_LUA_DIALOG);
  if (!u->d || !u->srv || !u->srv->tp)
    luaL_error(L, "attempt to use a closed " SIP_LUA_DIALOG);
  return u;
}

static sip_lua_server *check_srv(lua_State *L, int idx) {
  sip_lua_server *s = luaL_checkudata(L, idx, SIP_LUA_SERVER);
  if (!s->tp)
    luaL_error(L, "attempt to use a closed " SIP_LUA_SERVER);
  return s;
}

static int ensure_set(sip_lua_server *s) {
  return s->dialogs.buckets ? 0 : sip_dialogs_init(&s->dialogs, 0);
}

/* Push the userdata of d (made on first use; the set owns d). The server
 * is at srvidx. */
static void push_dialog(lua_State *L, int srvidx, sip_lua_server *s,
                        sip_dialog *d) {
  if (d->udata && lua_rawgetp(L, LUA_REGISTRYINDEX, d->udata) == LUA_TUSERDATA)
    return;
  if (d->udata)
    lua_pop(L, 1);
  lua_dialog *u = lua_newuserdatauv(L, sizeof *u, 1);
  u->d = d;
  u->srv = s;
  luaL_setmetatable(L, SIP_LUA_DIALOG);
  lua_pushvalue(L, srvidx);
  lua_setiuservalue(L, -2, 1);
  d->udata = u;
  /* a weak registry entry is not available; the anchor is the userdata
   * itself, dropped in close/__gc (ua.lua keeps live dialogs referenced) */
  lua_pushvalue(L, -1);
  lua_rawsetp(L, LUA_REGISTRYINDEX, u);
}

static void dialog_release(lua_State *L, lua_dialog *u) {
  if (u->d) {
    if (u->srv && u->srv->dialogs.buckets)
      sip_dialogs_remove(&u->srv->dialogs, u->d);
    sip_dialog_free(u->d);
    u->d = NULL;
  }
  lua_pushnil(L);
  lua_rawsetp(L, LUA_REGISTRYINDEX, u);
}

void sip__lua_dialogs_close(lua_State *L, sip_lua_server *s) {
  if (!s->dialogs.buckets)
    return;
  for (size_t i = 0; i < s->dialogs.nbuckets; i++)
    for (sip_dialog *d = s->dialogs.buckets[i]; d; d = d->next)
      if (d->udata) {
        lua_dialog *u = d->udata;
        u->d = NULL;
        if (L) {
          lua_pushnil(L);
          lua_rawsetp(L, LUA_REGISTRYINDEX, u);
        }
      }
  sip_dialogs_free(&s->dialogs);
}

/* nil, "what: message", code name (libuv codes named too: EAI_NONAME) */
static int fail(lua_State *L, int rc, const char *what) {
  if (rc == SIP_ENOMEM)
    return luaL_error(L, "not enough memory");
  lua_pushnil(L);
  lua_pushfstring(L, "%s: %s", what, sip_tp_strerror(rc));
  lua_pushstring(L, sip_tp_errname(rc));
  return 3;
}

/* srv:dialog_uac(invite, res): the dialog res (a 101-299 response with a To
 * tag to the request invite as sent) makes or updates (§12.1.2, §13.2.2.4;
 * a forked INVITE gets one dialog per To tag). */
static int l_dialog_uac(lua_State *L) {
  sip_lua_server *s = check_srv(L, 1);
  sip_msg *req = sip__lua_message_check(L, 2)->m;
  sip_msg *res = sip__lua_message_check(L, 3)->m;
  if (!req->is_request || res->is_request)
    return luaL_error(L, "dialog_uac: needs a request and its response");
  int rc = ensure_set(s);
  sip_dialog *d = NULL;
  if (rc == 0)
    rc = sip_dialogs_uac_response(&s->dialogs, req, res, &d);
  if (rc < 0)
    return fail(L, rc, "dialog_uac");
  push_dialog(L, 1, s, d);
  lua_pushboolean(L, rc == 1);
  return 2;
}

/* srv:dialog_uas(req, contact[, early]): the UAS's dialog of the request
 * req received, answered (or to be answered) with req's To tag and the
 * Contact value contact (§12.1.1). */
static int l_dialog_uas(lua_State *L) {
  sip_lua_server *s = check_srv(L, 1);
  sip_lua_rx *r = sip__lua_check_received(L, 2, "dialog_uas");
  size_t clen;
  const char *contact = luaL_checklstring(L, 3, &clen);
  int early = lua_toboolean(L, 4);
  if (!r->base.m || !r->base.m->is_request)
    return luaL_error(L, "dialog_uas: needs a received request");
  if (!r->has_tag) { /* the tag its replies will carry */
    sip_tu_new_tag(r->to_tag);
    r->has_tag = 1;
  }
  int rc = ensure_set(s);
  sip_dialog *d = NULL;
  if (rc == 0)
    rc = sip_dialog_uas_new(r->base.m, (sip_str){r->to_tag, sizeof r->to_tag},
                            (sip_str){contact, clen},
                            early ? SIP_DLG_EARLY : SIP_DLG_CONFIRMED, &d);
  if (rc < 0)
    return fail(L, rc, "dialog_uas");
  sip_dialogs_add(&s->dialogs, d);
  push_dialog(L, 1, s, d);
  return 1;
}

/* srv:dialog_match(req): where a received request belongs (§12.2.2). */
static int l_dialog_match(lua_State *L) {
  sip_lua_server *s = check_srv(L, 1);
  sip_msg *req = sip__lua_message_check(L, 2)->m;
  if (!req->is_request)
    return luaL_error(L, "dialog_match: needs a request");
  int rc = ensure_set(s);
  sip_dialog *d = NULL;
  if (rc == 0)
    rc = sip_dialogs_request(&s->dialogs, req, &d);
  if (rc < 0)
    return fail(L, rc, "dialog_match");
  static const char *const names[] = {"outside", "inside", "481", "500"};
  lua_pushstring(L, names[rc]);
  if (!d)
    return 1;
  push_dialog(L, 1, s, d);
  return 2;
}

static sip_str opt_slice(lua_State *L, int idx) {
  size_t n;
  const char *p = luaL_optlstring(L, idx, NULL, &n);
  return (sip_str){p, p ? n : 0};
}

/* dlg:request(method[, extra[, body[, cseq]]]) -> the request's bytes,
 * without Via (srv:send adds it): §12.2.1.1. extra: header lines ending
 * with CRLF. */
static int dlg_request(lua_State *L) {
  lua_dialog *u = check_dialog(L, 1);
  const char *method = luaL_checkstring(L, 2);
  sip_str extra = opt_slice(L, 3), body = opt_slice(L, 4);
  lua_Integer cseq = luaL_optinteger(L, 5, 0);
  luaL_argcheck(L, cseq >= 0 && cseq < 0x80000000LL, 5, "CSeq 0..2^31-1");
  char *out;
  int n = sip_dialog_request(u->d, method, (uint32_t)cseq, extra, body, &out);
  if (n == SIP_EINVAL)
    return luaL_error(L, "request: bad method, CSeq or header lines");
  if (n < 0)
    return fail(L, n, "request");
  lua_pushlstring(L, out, (size_t)n);
  free(out);
  return 1;
}

/* dlg:ack(cseq[, extra[, body[, dest]]]): the ACK for the 2xx to the
 * INVITE of CSeq cseq (§13.2.2.4), sent by the UAC core and kept for the
 * 2xx's retransmissions. dest: "udp:127.0.0.1:5060" (nil: the next hop). */
static int dlg_ack(lua_State *L) {
  lua_dialog *u = check_dialog(L, 1);
  lua_Integer cseq = luaL_checkinteger(L, 2);
  luaL_argcheck(L, cseq > 0 && cseq < 0x80000000LL, 2, "CSeq 1..2^31-1");
  sip_str extra = opt_slice(L, 3), body = opt_slice(L, 4);
  const char *spec = luaL_optstring(L, 5, NULL);
  sip_dest d, *dp = NULL;
  int rc;
  if (spec) {
    int tr;
    sip_dest_init(&d, SIP_TP_UDP);
    if ((rc = sip_tp_parse_spec(spec, &tr, &d.addr)) < 0)
      return sip__lua_fail(L, rc, "ack: bad destination %s", spec);
    d.transport = tr;
    dp = &d;
  }
  rc = sip_dialog_ack(&u->srv->tu, u->d, (uint32_t)cseq, extra, body, dp);
  if (rc < 0)
    return fail(L, rc, "ack");
  lua_pushboolean(L, 1);
  return 1;
}

/* dlg:ack_again(cseq) -> true when the ACK kept for that 2xx was re-sent */
static int dlg_ack_again(lua_State *L) {
  lua_dialog *u = check_dialog(L, 1);
  lua_Integer cseq = luaL_checkinteger(L, 2);
  int rc = sip_dialog_ack_again(&u->srv->tu, u->d, (uint32_t)cseq);
  lua_pushboolean(L, rc == 1);
  return 1;
}

/* dlg:response(res): a response to a request within the dialog
 * (§12.2.1.2): confirmation, target refresh, 481/408 end it. */
static int dlg_response(lua_State *L) {
  lua_dialog *u = check_dialog(L, 1);
  sip_msg *res = sip__lua_message_check(L, 2)->m;
  if (res->is_request)
    return luaL_error(L, "response: needs a response");
  int rc = sip_dialog_uac_response(u->d, res);
  if (rc < 0)
    return fail(L, rc, "response");
  lua_pushboolean(L, 1);
  return 1;
}

/* dlg:reliable(req, status[, reason[, extra[, body]]]) -> rseq | nil, err,
 * code: a reliable 101-199 to the INVITE req in this (early, UAS) dialog
 * (RFC 3262 §3: Require: 100rel and RSeq written here, re-sent on the
 * transaction layer's heap until the PRACK; 500 after 64*T1 without). */
static int dlg_reliable(lua_State *L) {
  lua_dialog *u = check_dialog(L, 1);
  sip_lua_rx *r = sip__lua_check_received(L, 2, "reliable");
  lua_Integer status = luaL_checkinteger(L, 3);
  luaL_argcheck(L, status > 100 && status < 200, 3, "status 101..199");
  sip_str reason = opt_slice(L, 4), extra = opt_slice(L, 5),
          body = opt_slice(L, 6);
  for (size_t i = 0; i < reason.len; i++)
    if ((unsigned char)reason.p[i] < 0x20 && reason.p[i] != '\t')
      luaL_argerror(L, 4, "reason contains a control character");
  if (extra.len && (extra.len < 2 || extra.p[extra.len - 2] != '\r' ||
                    extra.p[extra.len - 1] != '\n'))
    luaL_argerror(L, 5, "header lines must end with CRLF");
  if (!r->txn || r->final_status || r->cancelled)
    return sip__lua_fail(L, SIP_EINVAL, "reliable: the INVITE is answered");
  char hdr[64];
  int n = sip_dialog_reliable(u->d, r->base.m, r->txn, hdr, sizeof hdr);
  if (n < 0) { /* nil, message, code name (EBUSY, NOTFOUND, INVAL) */
    lua_pushnil(L);
    lua_pushfstring(L, "reliable: %s",
                    n == UV_EBUSY ? "the previous reliable 1xx awaits its PRACK"
                    : n == SIP_ENOTFOUND ? "the INVITE does not support 100rel"
                    : n == SIP_EINVAL    ? "not an early UAS dialog"
                                         : sip_tp_strerror(n));
    lua_pushstring(L, sip_tp_errname(n));
    return 3;
  }
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  luaL_addlstring(&b, hdr, (size_t)n);
  if (extra.len)
    luaL_addlstring(&b, extra.p, extra.len);
  luaL_pushresult(&b);
  size_t xl;
  const char *x = lua_tolstring(L, -1, &xl);
  int rc = sip__lua_rx_reply_flags(r, (int)status, reason, (sip_str){x, xl},
                                   body, SIP_TU_RELIABLE);
  if (rc < 0) {
    sip_dialog_reliable_end(u->d);
    return fail(L, rc, "reliable");
  }
  lua_pushinteger(L, u->d->rseq_local);
  return 1;
}

/* dlg:prack(req) -> true | nil, err, code ("NOTFOUND": answer 481,
 * "VALUE": 400): the PRACK req received in this dialog (RFC 3262 §3). */
static int dlg_prack(lua_State *L) {
  lua_dialog *u = check_dialog(L, 1);
  sip_msg *m = sip__lua_message_check(L, 2)->m;
  int rc = sip_dialog_prack(u->d, m);
  if (rc < 0)
    return sip__lua_fail(L, rc, "prack: %s",
                         rc == SIP_ENOTFOUND
                             ? "no reliable 1xx awaits this RAck"
                             : "missing or malformed RAck");
  lua_pushboolean(L, 1);
  return 1;
}

/* dlg:rack(res) -> "RAck: ...\r\n" | false: the RAck line of the PRACK a
 * 1xx received in this dialog calls for (RFC 3262 §4), false when none is
 * due (not reliable, a retransmission, out of order, a malformed RSeq). */
static int dlg_rack(lua_State *L) {
  lua_dialog *u = check_dialog(L, 1);
  sip_msg *m = sip__lua_message_check(L, 2)->m;
  char out[64];
  int n = sip_dialog_rack(u->d, m, out, sizeof out);
  if (n > 0)
    lua_pushlstring(L, out, (size_t)n);
  else
    lua_pushboolean(L, 0);
  return 1;
}

/* dlg:confirm(): a UAS's early dialog is confirmed (its 2xx sent). */
static int dlg_confirm(lua_State *L) {
  sip_dialog_confirm(check_dialog(L, 1)->d);
  return 0;
}

static int dlg_state(lua_State *L) {
  lua_dialog *u = luaL_checkudata(L, 1, SIP_LUA_DIALOG);
  lua_pushstring(L, sip_dialog_state_name(u->d));
  return 1;
}

static int dlg_terminate(lua_State *L) {
  lua_dialog *u = luaL_checkudata(L, 1, SIP_LUA_DIALOG);
  if (u->d)
    u->d->state = SIP_DLG_TERMINATED;
  return 0;
}

static int dlg_close(lua_State *L) {
  dialog_release(L, luaL_checkudata(L, 1, SIP_LUA_DIALOG));
  return 0;
}

/* dlg:info() -> the table of sip_dialog_info */
static int dlg_info(lua_State *L) {
  lua_dialog *u = check_dialog(L, 1);
  lua_createtable(L, 0, 13);
  sip_tree_emitter e;
  sip__lua_tree_emitter(&e, L);
  sip_dialog_info(u->d, &e);
  return 1;
}

static int dlg_tostring(lua_State *L) {
  lua_dialog *u = luaL_checkudata(L, 1, SIP_LUA_DIALOG);
  if (!u->d)
    lua_pushstring(L, SIP_LUA_DIALOG " (closed)");
  else
    lua_pushfstring(L, SIP_LUA_DIALOG " (%s, %s)",
                    u->d->role == SIP_DLG_UAC ? "uac" : "uas", u->d->call_id.p);
  return 1;
}

static const luaL_Reg dlg_methods[] = {
    {"request", dlg_request},
    {"ack", dlg_ack},
    {"ack_again", dlg_ack_again},
    {"response", dlg_response},
    {"state", dlg_state},
    {"terminate", dlg_terminate},
    {"close", dlg_close},
    {"info", dlg_info},
    {"reliable", dlg_reliable},
    {"prack", dlg_prack},
    {"rack", dlg_rack},
    {"confirm", dlg_confirm},
    {NULL, NULL},
};

static const luaL_Reg dlg_meta[] = {
    {"__gc", dlg_close},
    {"__close", dlg_close},
    {"__tostring", dlg_tostring},
    {NULL, NULL},
};

/* srv:has_option(msg, tag[, require]) -> boolean: msg lists the option tag
 * in its Supported header (require: its Require header). */
static int l_has_option(lua_State *L) {
  check_srv(L, 1);
  sip_msg *m = sip__lua_message_check(L, 2)->m;
  const char *tag = luaL_checkstring(L, 3);
  lua_pushboolean(L, sip_dialog_has_option(m, lua_toboolean(L, 4), tag));
  return 1;
}

static const char *refresher_name(int r) {
  return r == SIP_SE_UAC ? "uac" : "uas";
}

/* srv:session_uas(req, min_se[, want]) -> status (0, 200, 422), header
 * lines, expires, refresher ("uac" | "uas") | nil, err, code: RFC 4028 §9
 * for a session refresh request received (sip_dialog_session_uas). */
static int l_session_uas(lua_State *L) {
  check_srv(L, 1);
  sip_msg *m = sip__lua_message_check(L, 2)->m;
  lua_Integer min_se = luaL_checkinteger(L, 3);
  lua_Integer want = luaL_optinteger(L, 4, 0);
  luaL_argcheck(L, min_se >= 1 && min_se < 0x80000000LL, 3, "1..2^31-1");
  luaL_argcheck(L, want >= 0 && want < 0x80000000LL, 4, "0..2^31-1");
  char out[128];
  uint32_t expires = 0;
  int who = 0;
  int rc = sip_dialog_session_uas(m, (uint32_t)min_se, (uint32_t)want, out,
                                  sizeof out, &expires, &who);
  if (rc < 0)
    return fail(L, rc, "session_uas");
  lua_pushinteger(L, rc);
  lua_pushstring(L, out);
  if (rc != 200)
    return 2;
  lua_pushinteger(L, expires);
  lua_pushstring(L, refresher_name(who));
  return 4;
}

/* srv:session_uac(res) -> expires, refresher | false | nil, err, code
 * (RFC 4028 §7.2, sip_dialog_session_uac) */
static int l_session_uac(lua_State *L) {
  check_srv(L, 1);
  sip_msg *m = sip__lua_message_check(L, 2)->m;
  uint32_t expires;
  int who;
  int rc = sip_dialog_session_uac(m, &expires, &who);
  if (rc < 0)
    return fail(L, rc, "session_uac");
  if (rc == 0) {
    lua_pushboolean(L, 0);
    return 1;
  }
  lua_pushinteger(L, expires);
  lua_pushstring(L, refresher_name(who));
  return 2;
}

/* srv:min_se(msg) -> seconds | nil */
static int l_min_se(lua_State *L) {
  check_srv(L, 1);
  uint32_t v;
  if (sip_dialog_min_se(sip__lua_message_check(L, 2)->m, &v) < 0)
    return 0;
  lua_pushinteger(L, v);
  return 1;
}

/* srv:session_due(expires, we_refresh) -> ms (RFC 4028 §10) */
static int l_session_due(lua_State *L) {
  check_srv(L, 1);
  lua_Integer e = luaL_checkinteger(L, 2);
  luaL_argcheck(L, e >= 1 && e < 0x80000000LL, 2, "1..2^31-1");
  lua_pushinteger(L, (lua_Integer)sip_dialog_session_due_ms(
                         (uint32_t)e, lua_toboolean(L, 3)));
  return 1;
}

static const luaL_Reg srv_methods[] = {
    {"dialog_uac", l_dialog_uac},
    {"dialog_uas", l_dialog_uas},
    {"dialog_match", l_dialog_match},
    {"has_option", l_has_option},
    {"session_uas", l_session_uas},
    {"session_uac", l_session_uac},
    {"min_se", l_min_se},
    {"session_due", l_session_due},
    {NULL, NULL},
};

void sip__lua_open_dialog(lua_State *L) {
  /* stack: core */
  luaL_newmetatable(L, SIP_LUA_DIALOG);
  luaL_setfuncs(L, dlg_meta, 0);
  luaL_newlib(L, dlg_methods);
  lua_pushvalue(L, -1);
  lua_setfield(L, -4, "Dialog");
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
  lua_getfield(L, -1, "Server");
  luaL_setfuncs(L, srv_methods, 0);
  lua_pop(L, 1);
}
