-- Parser throughput from Lua (make bench): sip.parse of each corpus message,
-- then what a proxy reads: top Via branch, From/To tags, Call-ID, CSeq,
-- Contact and Route lists.
--
-- Usage: lua5.4 csrc/bench/bench_parse.lua SECONDS FILE...
-- Prints: parse-lua: N msgs/s, N MB/s
local sip = require "luasip"

local secs = tonumber(arg[1])
if not secs or not arg[2] then
  io.stderr:write("usage: bench_parse.lua SECONDS FILE...\n")
  os.exit(2)
end

local msgs, total = {}, 0
for i = 2, #arg do
  local f = assert(io.open(arg[i], "rb"))
  local bytes = f:read("a")
  f:close()
  msgs[#msgs + 1] = bytes
  total = total + #bytes
  assert(sip.parse(bytes), arg[i] .. " does not parse")
end

local parse, clock = sip.parse, os.clock
local n = #msgs
local sink = 0

local function one(bytes)
  local m = parse(bytes)
  local via = m.via[1]
  local from, to = m.from, m.to
  local contacts, routes = m.contacts, m.routes
  sink = sink + #via.branch + #(from.tag or "") + #(to.tag or "")
    + #m.call_id + m.cseq + #contacts + #routes
end

local rounds, t0 = 0, clock()
local t
repeat
  for _ = 1, 200 do
    for i = 1, n do one(msgs[i]) end
  end
  rounds = rounds + 200
  t = clock() - t0
until t >= secs

print(string.format("parse-lua: %.0f msgs/s, %.1f MB/s (%d rounds of %d messages, %d bytes, %.2f s CPU)",
  rounds * n / t, rounds * total / t / 1e6, rounds, n, total, t))
assert(sink > 0)
