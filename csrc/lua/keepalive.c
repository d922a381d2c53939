/* srv:keepalive(flow): the RFC 5626 CRLF keep-alive of a client flow
 * (csrc/transport sip_tp_conn_keepalive), used by luasip.ua.register to keep
 * a registration's TCP/TLS connection up. */
#include "lserver.h"

/* srv:keepalive(conn_id | "tcp:IP:PORT" | "tls:IP:PORT") -> true, or nil,
 * err, name (ENOTFOUND: no such connection open; EINVAL: a WebSocket, one
 * not open yet, or a UDP spec). A bad spec raises. */
static int srv_keepalive(lua_State *L) {
  sip_lua_server *s = luaL_checkudata(L, 1, SIP_LUA_SERVER);
  if (!s->tp)
    return luaL_error(L, "attempt to use a closed " SIP_LUA_SERVER);
  sip_dest d;
  sip_dest_init(&d, SIP_TP_TCP);
  if (lua_type(L, 2) == LUA_TNUMBER) {
    lua_Integer id = luaL_checkinteger(L, 2);
    if (id <= 0)
      return luaL_argerror(L, 2, "a connection id");
    d.conn_id = (uint64_t)id;
  } else if (sip_tp_parse_spec(luaL_checkstring(L, 2), &d.transport, &d.addr) <
             0) {
    return luaL_argerror(L, 2, "a connection id or tcp:IP:PORT / tls:IP:PORT");
  }
  int rc =
      d.transport == SIP_TP_UDP ? SIP_EINVAL : sip_tp_conn_keepalive(s->tp, &d);
  if (rc < 0)
    return sip__lua_fail(L, rc, "keepalive: %s", sip_tp_strerror(rc));
  lua_pushboolean(L, 1);
  return 1;
}

static const luaL_Reg keepalive_methods[] = {
    {"keepalive", srv_keepalive},
    {NULL, NULL},
};

void sip__lua_open_keepalive(lua_State *L) {
  /* stack: core (core.Server exists) */
  lua_getfield(L, -1, "Server");
  luaL_setfuncs(L, keepalive_methods, 0);
  lua_pop(L, 1);
}
