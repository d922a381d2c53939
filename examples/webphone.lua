-- Browser phones (JsSIP over WebSocket, RFC 7118) and SIP phones on UDP:
-- the registrar + proxy of examples/proxy.lua (a browser's Contact and Via
-- name an `.invalid` host: requests to it go over its own connection, the
-- flow the registrar stored as `received`, with or without --nat:
-- proxy.flow_of, proxy.is_flow_only), listening on ws:127.0.0.1:8080 and
-- udp:127.0.0.1:5060, and serving the demo page
-- (examples/webphone/, `make webphone-deps` fetches JsSIP) on the
-- WebSocket port:
--
--     make webphone-deps
--     luasip run examples/webphone.lua     # then open http://127.0.0.1:8080/
--
-- A request that changes transport (WS <-> UDP) is record-routed twice,
-- once per listener (the proxy core does it). WSS: --listen
-- wss:127.0.0.1:8443 --tls-cert FILE --tls-key FILE.
local dir = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
local spec = dofile(dir .. "/proxy.lua")

spec.listen = { "ws:127.0.0.1:8080", "udp:127.0.0.1:5060" }
spec.server.http_root = dir .. "/webphone"
return spec
