-- A UAS over the transaction layer for SIPp runs: answers OPTIONS, REGISTER,
-- BYE (and any other request but ACK) with 200, and INVITE with 180 then
-- 200; INVITE to user "busy" gets 486, to user "hold" nothing (the
-- transaction stays live: memory benchmarks). An OPTIONS to user "stats"
-- gets 200 with srv:stats() in its body ("name value" lines).
--
--     lua5.4 examples/uas200.lua [--listen SPEC]... [--t1 MS] [--t2 MS]
--                                [--t4 MS] [--trying-delay MS] [--stateless]
--
-- SPEC is "udp:127.0.0.1:5070", "tcp:[::1]:5070", ... (default
-- udp:127.0.0.1:5070). --stateless creates the server with transactions =
-- false (replies without transactions; "hold" and "busy" work the same,
-- "stats" has no txn_* counters). Prints one line "listening on SPEC" per
-- listener once it is open, then serves until killed.
--
-- A 2xx to an INVITE is sent once: retransmitting it until the ACK is the
-- UAS core's job (RFC 3261 §13.3.1.4) and luasip has no dialog layer yet,
-- so a lost 200 is not recovered.
local sip = require "luasip"

local usage = "usage: uas200.lua [--listen udp|tcp:ADDRESS:PORT]... [--t1 MS] [--t2 MS] [--t4 MS]"
  .. " [--trying-delay MS] [--stateless]\n"
local specs = {}
local opts = {}
local numeric = { ["--t1"] = "t1", ["--t2"] = "t2", ["--t4"] = "t4", ["--trying-delay"] = "trying_delay" }
local i = 1
while i <= #arg do
  local a = arg[i]
  if a == "--listen" and arg[i + 1] then
    specs[#specs + 1] = arg[i + 1]
    i = i + 2
  elseif numeric[a] and tonumber(arg[i + 1]) then
    opts[numeric[a]] = math.tointeger(tonumber(arg[i + 1]))
    i = i + 2
  elseif a == "--stateless" then
    opts.transactions = false
    i = i + 1
  else
    io.stderr:write(usage)
    os.exit(2)
  end
end
if #specs == 0 then
  specs = { "udp:127.0.0.1:5070" }
end

local srv = assert(sip.server(opts))
local contact
for _, spec in ipairs(specs) do
  local id = assert(srv:listen(spec))
  local l = srv:listener(id)
  local host = l.host:find(":", 1, true) and "[" .. l.host .. "]" or l.host
  contact = contact or ("<sip:uas@%s:%d>"):format(host, l.port)
  print(("listening on %s:%s:%d"):format(l.transport:lower(), host, l.port))
end
io.stdout:flush()

local function stats_body()
  local st = srv:stats()
  local names = {}
  for k in pairs(st) do
    names[#names + 1] = k
  end
  table.sort(names)
  local lines = {}
  for _, k in ipairs(names) do
    lines[#lines + 1] = k .. " " .. tostring(st[k])
  end
  return table.concat(lines, "\n") .. "\n"
end

local held = {}

srv:on_request(function(req)
  local method = req.method
  if method == "ACK" then -- never answered (RFC 3261 §17.1.1.3)
    return
  end
  local user = req.ruri and req.ruri.user
  if method == "INVITE" then
    if user == "busy" then
      return req:reply(486)
    elseif user == "hold" then
      held[#held + 1] = req -- kept: its transaction stays live
      return req:drop()
    end
    req:reply(180)
    return req:reply(200, nil, { Contact = contact })
  end
  if method == "OPTIONS" and user == "stats" then
    return req:reply(200, nil, { ["Content-Type"] = "text/plain" }, stats_body())
  end
  req:reply(200)
end)
srv:run()
