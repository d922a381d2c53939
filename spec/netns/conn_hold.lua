-- The idle connections of spec/netns/conn_slots.sh: --count TCP
-- connections from --from (a loopback address) to 127.0.0.1:--port, each
-- sending a CRLF keep-alive ping (RFC 5626 §3.5.1) every second and never
-- a message, for --seconds. Prints "held N" once every connection answered
-- a first ping with its pong, then "open N closed N" at the end. Loopback
-- only.
local socket = require "socket"

local opt = { from = "127.0.0.2", port = 5060, count = 1024, seconds = 20 }
for i = 1, #arg, 2 do
  local k = arg[i]:match("^%-%-(%w+)$")
  assert(k and opt[k] and arg[i + 1], "usage: conn_hold.lua [--from IP] [--port P] [--count N] [--seconds S]")
  opt[k] = k == "from" and arg[i + 1] or tonumber(arg[i + 1])
end
assert(opt.from:match("^127%.%d+%.%d+%.%d+$"), "loopback only")

local conns = {}
for i = 1, opt.count do
  local s = assert(socket.tcp())
  assert(s:bind(opt.from, 0))
  s:settimeout(0)
  s:connect("127.0.0.1", opt.port)
  conns[i] = { s = s, pongs = 0 }
end

-- Read every connection without waiting (select(2) cannot take
-- descriptors above FD_SETSIZE, and there are more than that).
local function pump()
  for _, c in ipairs(conns) do
    if not c.closed then
      local d, err, partial = c.s:receive(4096)
      local got = d or partial
      if got and #got > 0 then
        c.pongs = c.pongs + 1
      end
      if err == "closed" then
        c.closed = true
      end
    end
  end
end

local function ping()
  for _, c in ipairs(conns) do
    if not c.closed then
      local ok, err = c.s:send("\r\n\r\n")
      if not ok and err ~= "timeout" then
        c.closed = true
      end
    end
  end
end

local t0 = socket.gettime()
local next_ping, held = t0 + 0.5, false
while socket.gettime() < t0 + opt.seconds do
  if socket.gettime() >= next_ping then
    ping()
    next_ping = next_ping + 1
  end
  pump()
  if not held then
    local n = 0
    for _, c in ipairs(conns) do
      n = n + ((c.pongs > 0 and not c.closed) and 1 or 0)
    end
    if n == opt.count then
      held = true
      io.stdout:write("held ", n, "\n")
      io.stdout:flush()
    end
  end
  socket.sleep(0.1)
end
local open, closed = 0, 0
for _, c in ipairs(conns) do
  if c.closed then
    closed = closed + 1
  else
    open = open + 1
  end
  c.s:close()
end
print(("open %d closed %d"):format(open, closed))
