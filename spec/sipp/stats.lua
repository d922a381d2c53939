-- Print the counters of a running examples/uas200.lua ("name value" lines):
-- sends OPTIONS sip:stats@127.0.0.1:PORT over UDP and prints the body of
-- the 200. Exit status 1 when no answer came within 2 s.
--
--     lua5.4 spec/sipp/stats.lua PORT
local socket = require "socket"

local port = tonumber(arg[1])
if not port then
  io.stderr:write("usage: stats.lua PORT\n")
  os.exit(2)
end
local u = assert(socket.udp())
assert(u:setsockname("127.0.0.1", 0))
local _, lport = u:getsockname()
local id = tostring(os.time()) .. tostring(math.random(1, 1e9))
local req = table.concat({
  "OPTIONS sip:stats@127.0.0.1:" .. port .. " SIP/2.0",
  "Via: SIP/2.0/UDP 127.0.0.1:" .. lport .. ";branch=z9hG4bKstats" .. id .. ";rport",
  "Max-Forwards: 70",
  "From: <sip:probe@127.0.0.1>;tag=" .. id,
  "To: <sip:stats@127.0.0.1>",
  "Call-ID: stats-" .. id,
  "CSeq: 1 OPTIONS",
  "Content-Length: 0",
  "", "",
}, "\r\n")
u:settimeout(0.5)
for _ = 1, 4 do
  assert(u:sendto(req, "127.0.0.1", port))
  local d = u:receive()
  if d and d:find("^SIP/2%.0 200") then
    local _, e = d:find("\r\n\r\n", 1, true)
    io.write(d:sub(e + 1))
    os.exit(0)
  end
end
io.stderr:write("stats.lua: no answer from 127.0.0.1:" .. port .. "\n")
os.exit(1)
