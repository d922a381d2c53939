-- Memory per live server transaction, measured in one process: a luasip
-- server on udp:127.0.0.1:0 and a luasocket peer that sends COUNT requests
-- (different branches) while the loop runs. Prints, for each kind:
--
--     txn-mem: KIND: N live, txn_mem_bytes/txn=B (txn_bytes part), rss/txn=R
--
-- txn_mem_bytes is the transaction layer's own accounting (srv:stats();
-- transactions, matching tables, timer heap); rss/txn is the growth of the
-- process's resident set divided by N: it adds what the Lua side keeps
-- (the request objects a handler holds, the receive buffers they pin).
-- Kinds:
--  - ist-held: INVITEs whose handler keeps the request and never answers
--    (Proceeding; no 100 Trying: trying_delay = -1)
--  - nist-held: MESSAGE requests held the same way (Trying)
--  - nist-completed: OPTIONS answered 200 at once, the request dropped by
--    the script: the transaction keeps its copy of the 200 until Timer J
--    (64*T1 = 32 s at the default T1) -- the steady state under load
--
--     lua5.4 csrc/bench/txn_mem.lua [COUNT]     (default 20000)
local sip = require "luasip"
local socket = require "socket"

local count = tonumber(arg[1] or 20000)

local function rss_bytes()
  local f = assert(io.open("/proc/self/statm"))
  local _, res = f:read("n", "n")
  f:close()
  return res * 4096
end

local function pump_until(cond, seconds)
  local deadline = socket.gettime() + seconds
  while not cond() and socket.gettime() < deadline do
    sip.step()
    socket.sleep(0.0005)
  end
  return cond()
end

local function measure(kind, method, answer)
  local srv = assert(sip.server { listen = "udp:127.0.0.1:0", trying_delay = -1,
    max_transactions = count + 10 })
  local l = srv:listener(0)
  local held = {}
  local seen = 0
  srv:on_request(function(req)
    seen = seen + 1
    if answer then
      req:reply(200)
      return
    end
    held[#held + 1] = req
    coroutine.yield()
  end)
  local u = assert(socket.udp())
  assert(u:setsockname("127.0.0.1", 0))
  u:settimeout(0)
  local _, uport = u:getsockname()
  collectgarbage()
  collectgarbage()
  for _ = 1, 20 do
    sip.step()
  end
  local base = srv:stats()
  local rss0 = rss_bytes()
  local sent = 0
  while sent < count do
    for _ = 1, 200 do
      if sent >= count then
        break
      end
      sent = sent + 1
      local id = string.format("%08d", sent)
      local bytes = table.concat({
        string.format("%s sip:bob@127.0.0.1:%d SIP/2.0", method, l.port),
        string.format("Via: SIP/2.0/UDP 127.0.0.1:%s;branch=z9hG4bKmem%s%s;rport", uport, kind:sub(1, 4), id),
        "Max-Forwards: 70",
        "From: <sip:alice@127.0.0.1>;tag=f" .. id,
        "To: <sip:bob@127.0.0.1>",
        "Call-ID: mem-" .. kind .. "-" .. id .. "@127.0.0.1",
        "CSeq: 1 " .. method,
        "Content-Length: 0",
        "", "",
      }, "\r\n")
      assert(u:sendto(bytes, "127.0.0.1", l.port))
    end
    pump_until(function()
      return seen >= sent
    end, 5)
    while u:receive() do -- drain the answers
    end
  end
  pump_until(function()
    return seen >= count
  end, 10)
  collectgarbage()
  collectgarbage()
  sip.step()
  local st = srv:stats()
  local rss1 = rss_bytes()
  local live = st.txn_live - base.txn_live
  print(string.format("txn-mem: %s: %d live (%d received), txn_mem_bytes/txn=%.0f, rss/txn=%.0f", kind, live, seen,
    (st.txn_mem_bytes - base.txn_mem_bytes) / math.max(live, 1), (rss1 - rss0) / math.max(live, 1)))
  held = nil -- luacheck: ignore 311
  u:close()
  srv:close()
  for _ = 1, 10 do
    sip.step()
  end
  collectgarbage()
  collectgarbage()
end

measure("ist-held", "INVITE", false)
measure("nist-held", "MESSAGE", false)
measure("nist-completed", "OPTIONS", true)
