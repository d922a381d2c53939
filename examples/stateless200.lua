-- A stateless server that answers 200 OK to every request except ACK.
--
--     lua5.4 examples/stateless200.lua [--listen SPEC]...
--
-- SPEC is "udp:127.0.0.1:5070", "tcp:[::1]:5070", ... (port 0: any free
-- port); the default is udp and tcp on 127.0.0.1:5070. Prints one line
-- "listening on udp:127.0.0.1:5070" per listener once it is open, then
-- serves until killed. Stateless (`transactions = false`): every request,
-- retransmissions included, is answered on its own, as Kamailio's
-- sl_send_reply does. Requests that fail the core's sanity checks never
-- reach the handler: the core answers them (400, 416, 420, 505).
local sip = require "luasip"

local specs = {}
local i = 1
while i <= #arg do
  if arg[i] == "--listen" and arg[i + 1] then
    specs[#specs + 1] = arg[i + 1]
    i = i + 2
  else
    io.stderr:write("usage: stateless200.lua [--listen udp|tcp:ADDRESS:PORT]...\n")
    os.exit(2)
  end
end
if #specs == 0 then
  specs = { "udp:127.0.0.1:5070", "tcp:127.0.0.1:5070" }
end

local srv = assert(sip.server{ transactions = false })
for _, spec in ipairs(specs) do
  local id = assert(srv:listen(spec))
  local l = srv:listener(id)
  local host = l.host:find(":", 1, true) and "[" .. l.host .. "]" or l.host
  print(("listening on %s:%s:%d"):format(l.transport:lower(), host, l.port))
end
io.stdout:flush()

srv:on_request(function(req)
  if req.method ~= "ACK" then -- an ACK is never answered (RFC 3261 §17.1.1.3)
    req:reply(200)
  end
end)
srv:run()
