-- The UACs of spec/netns/wire_load.sh ([wire] 7): from one socket a flood
-- of INVITEs to a user that does not exist (--rate per second, --seconds
-- long), from another socket --calls INVITEs to bob spread over the same
-- time; each call waits up to 3 s for its final response. Prints
-- "wire-load: calls=N ok=N failed=N (statuses) flood=N" and exits 0 when
-- every call got a 200. Loopback only (127.0.0.1:--port).
local socket = require "socket"

local opt = { port = 5060, rate = 2000, seconds = 3, calls = 100 }
for i = 1, #arg, 2 do
  local k = arg[i]:match("^%-%-(%w+)$")
  assert(k and opt[k] and arg[i + 1], "usage: wire_load.lua [--port P] [--rate R] [--seconds S] [--calls N]")
  opt[k] = tonumber(arg[i + 1])
end
local HOST = "127.0.0.1"

local function udp()
  local s = assert(socket.udp())
  assert(s:setsockname(HOST, 0))
  s:settimeout(0)
  local _, p = s:getsockname()
  return s, tonumber(p)
end

local flood, fport = udp()
local caller, cport = udp()

local function invite(user, port, n, tag)
  local body = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"
  return table.concat({
    ("INVITE sip:%s@127.0.0.1:%d SIP/2.0"):format(user, opt.port),
    ("Via: SIP/2.0/UDP 127.0.0.1:%d;branch=z9hG4bK%s%d;rport"):format(port, tag, n),
    "Max-Forwards: 70",
    ("From: <sip:%s@127.0.0.1>;tag=%s%d"):format(tag, tag, n),
    ("To: <sip:%s@127.0.0.1>"):format(user),
    ("Call-ID: %s-%d@127.0.0.1"):format(tag, n),
    "CSeq: 1 INVITE",
    ("Contact: <sip:%s@127.0.0.1:%d>"):format(tag, port),
    "Content-Type: application/sdp",
    "Content-Length: " .. #body,
    "",
    body,
  }, "\r\n")
end

local t0 = socket.gettime()
local stop = t0 + opt.seconds
local sent_flood, sent_calls = 0, 0
local pending, results = {}, {}
local ok, failed, statuses = 0, 0, {}

local function finish(id, status)
  if results[id] then
    return
  end
  results[id] = status
  pending[id] = nil
  if status == 200 then
    ok = ok + 1
  else
    failed = failed + 1
    statuses[status] = (statuses[status] or 0) + 1
  end
end

while true do
  local now = socket.gettime()
  -- the flood: keep up with rate * elapsed
  local due = math.floor((math.min(now, stop) - t0) * opt.rate)
  while sent_flood < due do
    sent_flood = sent_flood + 1
    flood:sendto(invite("nobody", fport, sent_flood, "flood"), HOST, opt.port)
  end
  -- the calls, evenly over the flood
  local cdue = math.floor((math.min(now, stop) - t0) / opt.seconds * opt.calls)
  while sent_calls < math.min(cdue, opt.calls) do
    sent_calls = sent_calls + 1
    caller:sendto(invite("bob", cport, sent_calls, "call"), HOST, opt.port)
    pending[sent_calls] = now + 3
  end
  -- responses to the calls
  while true do
    local d = caller:receive()
    if not d then
      break
    end
    local code = tonumber(d:match("^SIP/2%.0 (%d%d%d)"))
    local id = tonumber(d:match("\r\nCall%-ID: call%-(%d+)@"))
    if code and id and code >= 200 then
      finish(id, code)
    end
  end
  repeat -- (the flood's responses are not read)
  until not flood:receive()
  for id, deadline in pairs(pending) do
    if now > deadline then
      finish(id, "timeout")
    end
  end
  if now >= stop and sent_calls >= opt.calls and not next(pending) then
    break
  end
  socket.sleep(0.0005)
end

local by = {}
for status, n in pairs(statuses) do
  by[#by + 1] = ("%s x%d"):format(status, n)
end
table.sort(by)
print(("wire-load: calls=%d ok=%d failed=%d%s, flood=%d INVITEs in %.1f s"):format(sent_calls, ok, failed,
  #by > 0 and " (" .. table.concat(by, ", ") .. ")" or "", sent_flood, opt.seconds))
os.exit(failed == 0 and ok == opt.calls and 0 or 1)
