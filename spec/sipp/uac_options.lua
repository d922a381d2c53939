-- A luasip UAC for spec/sipp/txn_loss.sh: sends COUNT OPTIONS requests to
-- udp:127.0.0.1:PORT through client transactions (srv:send), PARALLEL at a
-- time (sip.spawn workers, each sequential), and prints
--
--     uac-options: COUNT sent, N got 200, N other (STATUS xN ...), SECONDS s
--
-- Exit status 0 when every request got a 200. The server's own timers: T1
-- (--t1, default 100 ms) and T2 (--t2, default 800 ms); Timer F is 64*T1.
--
--     lua5.4 spec/sipp/uac_options.lua PORT [COUNT] [PARALLEL] [--t1 MS] [--t2 MS]
local sip = require "luasip"
local socket = require "socket"

local pos, t1, t2 = {}, 100, 800
local i = 1
while i <= #arg do
  if arg[i] == "--t1" then
    t1 = math.tointeger(tonumber(arg[i + 1]))
    i = i + 2
  elseif arg[i] == "--t2" then
    t2 = math.tointeger(tonumber(arg[i + 1]))
    i = i + 2
  else
    pos[#pos + 1] = arg[i]
    i = i + 1
  end
end
local port = tonumber(pos[1])
local count = tonumber(pos[2] or 200)
local parallel = tonumber(pos[3] or 10)
if not port or not count or not parallel or not t1 or not t2 then
  io.stderr:write("usage: uac_options.lua PORT [COUNT] [PARALLEL] [--t1 MS] [--t2 MS]\n")
  os.exit(2)
end

local srv = assert(sip.server { listen = "udp:127.0.0.1:0", t1 = t1, t2 = t2 })
srv:on_request(function(req)
  if req.method ~= "ACK" then
    req:reply(405)
  end
end)

local dest = "udp:127.0.0.1:" .. port
local next_n, finished, ok = 0, 0, 0
local other = {}
local t0 = socket.gettime()

local function worker()
  while next_n < count do
    next_n = next_n + 1
    local req = assert(sip.request {
      method = "OPTIONS", uri = "sip:sipp@127.0.0.1:" .. port, from = "<sip:luasip@127.0.0.1>",
      cseq = next_n,
    })
    local res, err = srv:send(req, dest)
    local status = res and res.status or ("error " .. tostring(err))
    if status == 200 then
      ok = ok + 1
    else
      other[status] = (other[status] or 0) + 1
    end
    finished = finished + 1
    if finished == count then
      sip.stop()
    end
  end
end

for _ = 1, parallel do
  sip.spawn(worker)
end
if finished < count then
  sip.run()
end
local parts = {}
for status, n in pairs(other) do
  parts[#parts + 1] = tostring(status) .. " x" .. n
end
table.sort(parts)
local st = srv:stats()
print(string.format("uac-options: %d sent, %d got 200, %d other (%s), %.1f s, %d retransmissions, %d timeouts",
  count, ok, count - ok, table.concat(parts, ", "), socket.gettime() - t0, st.txn_retransmissions,
  st.txn_timeouts))
srv:close()
os.exit(ok == count and 0 or 1)
