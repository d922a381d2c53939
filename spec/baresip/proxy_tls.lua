-- examples/proxy.lua with a TLS certificate, for spec/baresip/run.sh:
-- `luasip run` has no option for certificates (they are the script's
-- `server.tls`), so this script returns the example's table with
-- `server.tls` taken from the environment (certificates made at test time):
--
--     LUASIP_TLS_CERT=server.pem LUASIP_TLS_KEY=server.key LUASIP_TLS_CA=ca.pem \
--       luasip run spec/baresip/proxy_tls.lua --listen tls:127.0.0.1:5061 ...
--
-- LUASIP_TLS_CA (optional) verifies the certificates of the peers the proxy
-- connects to (the softphones' own TLS listeners).
local here = debug.getinfo(1, "S").source:gsub("^@", ""):match("^(.*)/[^/]*$") or "."
local spec = assert(loadfile(here .. "/../../examples/proxy.lua", "t", _ENV))()

local cert, key = os.getenv("LUASIP_TLS_CERT"), os.getenv("LUASIP_TLS_KEY")
assert(cert and key, "spec/baresip/proxy_tls.lua: set LUASIP_TLS_CERT and LUASIP_TLS_KEY")
local server = {}
for k, v in pairs(spec.server or {}) do
  server[k] = v
end
server.tls = { cert = cert, key = key, ca = os.getenv("LUASIP_TLS_CA") }
spec.server = server
return spec
