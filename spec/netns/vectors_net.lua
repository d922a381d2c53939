-- The RFC 4475 / RFC 5118 torture vectors over the network, against a
-- server that answers 200 to every request but ACK (examples/stateless200.lua)
-- listening on udp and tcp 127.0.0.1:PORT.
--
--     lua5.4 spec/netns/vectors_net.lua [PORT]     (default 5070)
--
-- Plain Lua 5.4 + luasocket; run it through spec/netns/run.sh, which puts
-- server and driver in a network namespace with nothing but loopback: the
-- vectors name foreign hosts (192.0.2.x, example.com, IPv6 documentation
-- addresses), and a routing bug must never send a packet off the machine.
-- It binds UDP ports < 1024 only if asked to, but binds 5050, 5060, 5062,
-- 6050 and 19823 on 127.0.0.1 (and 5062 on 127.0.0.2).
--
-- Every vector of INDEX.tsv is sent over UDP (one datagram) and over TCP
-- (one connection each), and its answer checked against EXPECT below:
--   - a status: the answer's status code; its Call-ID and CSeq must be the
--     request's (unless `loose`), and over UDP it must arrive where RFC 3261
--     §18.2.2 / RFC 3581 §4 send it: to the source address (the server adds
--     received=127.0.0.1) at the top Via's rport when it has one, else at
--     the sent-by port (default 5060). The driver sends each datagram from
--     a socket bound to that port, so the answer comes back to it; a Via
--     with rport is sent from an ephemeral port.
--   - false: silence for SILENCE seconds on every socket the driver holds
--     (a TCP connection may also be closed by the server).
--   - a list: over TCP, the answers to several messages in one stream.
-- Prints one line per check, the table, then "vectors-net: N passed, N failed".
local socket = require "socket"

local PORT = tonumber(arg[1] or os.getenv("LUASIP_PORT") or 5070)
local SERVER = "127.0.0.1"
local VECTORS = os.getenv("LUASIP_VECTORS") or "spec/vectors"
local SILENCE = 0.3 -- seconds of silence that count as "no answer"
local WAIT = 2.0 -- seconds to wait for an expected answer

------------------------------------------------------------------------------
-- Expected outcome per vector, from its INDEX verdict and note.
--   udp, tcp: status, false (silence), or (tcp) a list of statuses
--   to:       UDP answer port: a number (the top Via's sent-by port, 5060
--             when it has none) or "rport" (the ephemeral port sent from)
--   also:     another status the INDEX note allows (a liberal reading)
--   loose:    true: do not compare Call-ID / CSeq (the request has two of
--             each); "cseq": compare only the CSeq (the request has no Call-ID)
--   fix_clen: correct Content-Length to the CRLF body (RFC 5118 CAUTION)
--   tcp_close: after the answer the server closes the connection (framing
--             is lost: the note says so)
------------------------------------------------------------------------------
local EXPECT = {
  -- valid: every element accepts them; this server answers 200.
  ["rfc4475/wsinv.dat"] = { udp = 200, to = 5060, why = "folded Via sent-by 192.0.2.2, no port" },
  ["rfc4475/intmeth.dat"] = { udp = 200, to = 5060, why = "a UAS would say 501; this server says 200 to all" },
  ["rfc4475/esc01.dat"] = { udp = 200, to = 5060 },
  ["rfc4475/escnull.dat"] = { udp = 200, to = 5060 },
  ["rfc4475/esc02.dat"] = { udp = 200, to = 5060, why = "unknown method RE%47IST%45R; CSeq matches it" },
  ["rfc4475/lwsdisp.dat"] = { udp = 200, to = 5060 },
  ["rfc4475/longreq.dat"] = { udp = 200, to = 5060, why = "3.5 kB, 34 Via values" },
  -- one datagram: the INVITE after the REGISTER is junk (§18.3); on a stream
  -- it is simply the next message (Content-Length 150 of its 155 octets; the
  -- last 5 octets are then unparseable and dropped)
  ["rfc4475/dblreq.dat"] = { udp = 200, tcp = { 200, 200 }, to = 5060,
    why = "UDP: REGISTER only; TCP: REGISTER then the INVITE" },
  ["rfc4475/semiuri.dat"] = { udp = 200, to = 5060 },
  ["rfc4475/transports.dat"] = { udp = 200, to = 5060 },
  ["rfc4475/mpart01.dat"] = { udp = 200, to = "rport", why = "Via 127.0.0.1:5070;rport: answer to the source port" },
  -- responses are never answered
  ["rfc4475/unreason.dat"] = { udp = false, to = 5060, why = "a response" },
  ["rfc4475/noreason.dat"] = { udp = false, to = 5060, why = "a response" },

  -- invalid-parse: a request with a request line, Via, From, To, Call-ID and
  -- CSeq gets 400 (the core's on_bad path or a sanity check); responses and
  -- the unanswerable are dropped.
  ["rfc4475/badinv01.dat"] = { udp = 400, to = 5060,
    why = "malformed Via: 400 to the datagram's source (which is 5060 here)" },
  ["rfc4475/clerr.dat"] = { udp = 400, tcp = false, to = 5060,
    why = "UDP: body shorter than Content-Length; TCP: waits for the body" },
  ["rfc4475/ncl.dat"] = { udp = 400, to = 5060, tcp_close = true, why = "Content-Length -999; TCP: 400 then close" },
  ["rfc4475/scalar02.dat"] = { udp = 400, to = 5060, why = "CSeq > 2^32-1" },
  ["rfc4475/scalarlg.dat"] = { udp = false, to = 5060, why = "a response" },
  ["rfc4475/quotbal.dat"] = { udp = 400, to = 5050, why = "unterminated quote in To; Via port 5050" },
  -- a broken request line; the notes allow a liberal reading (200) too,
  -- but never silence: Via, From, To, Call-ID and CSeq are all there
  ["rfc4475/ltgtruri.dat"] = { udp = 400, also = 200, to = 5060, why = "<> around the Request-URI" },
  ["rfc4475/lwsruri.dat"] = { udp = 400, also = 200, to = 5060, why = "SP inside the Request-URI" },
  ["rfc4475/lwsstart.dat"] = { udp = 400, also = 200, to = 5060, why = "double SP in the request line" },
  ["rfc4475/trws.dat"] = { udp = 400, also = 200, to = 5060, why = "trailing SP after SIP/2.0" },
  ["rfc4475/escruri.dat"] = { udp = 400, to = 5060, why = "headers in the Request-URI" },
  -- the note: "an element that does not need the Date should just ignore it"
  ["rfc4475/baddate.dat"] = { udp = 200, to = 5060, why = "Date is not read: ignored (note)" },
  ["rfc4475/regbadct.dat"] = { udp = 400, to = 5060, why = "Contact addr-spec with ?Route" },
  ["rfc4475/badaspec.dat"] = { udp = 400, to = 5060, why = "spaces inside <> in To" },
  -- as archived the header section never ends: one datagram is a framing
  -- error with every header present (400); a stream waits for the end
  ["rfc4475/baddn.dat"] = { udp = 400, tcp = false, to = 5060,
    why = "no empty line: UDP 400, TCP waits for the header end" },
  ["rfc4475/bigcode.dat"] = { udp = false, to = 5060, why = "a response" },
  ["rfc5118/ipv6-bad.dat"] = { udp = 400, to = 5060, why = "sip:2001:db8::10 without []" },

  -- valid-syntax-but-semantic-error: what the core's sanity checks answer;
  -- the rest is a registrar's, proxy's or UAS's business, and this server,
  -- which answers 200 to everything, answers 200.
  ["rfc4475/badvers.dat"] = { udp = 505, to = 5060, why = "SIP/7.0: sanity version" },
  ["rfc4475/mismatch01.dat"] = { udp = 400, to = 5060, why = "CSeq method INVITE in OPTIONS: sanity cseq" },
  ["rfc4475/mismatch02.dat"] = { udp = 400, to = 5060, why = "sanity cseq (501 preferred at proxies, 400 fine)" },
  ["rfc4475/badbranch.dat"] = { udp = 200, to = 5060, why = "no transaction matching here: branch unused" },
  -- no To, From, Call-ID: the note asks for 400 ideally; the 400 can only
  -- copy Via and CSeq, so only the CSeq is compared
  ["rfc4475/insuf.dat"] = { udp = 400, to = 5060, loose = "cseq", why = "sanity required; note: ideally 400" },
  ["rfc4475/unkscm.dat"] = { udp = 416, to = 5060, why = "sanity scheme" },
  ["rfc4475/novelsc.dat"] = { udp = 416, to = 5060, why = "soap.beep: not sip/sips/tel" },
  ["rfc4475/unksm2.dat"] = { udp = 200, to = 5060, why = "non-SIP To AOR is a registrar's 400" },
  ["rfc4475/bext01.dat"] = { udp = 420, to = 5060,
    unsupported = "nothingSupportsThis, nothingSupportsThisEither", why = "sanity require (UAS)" },
  ["rfc4475/invut.dat"] = { udp = 200, to = 5060, why = "415 is the UAS's business" },
  ["rfc4475/regaut01.dat"] = { udp = 200, to = 5060, why = "no auth here: header ignored" },
  ["rfc4475/multi01.dat"] = { udp = 400, to = 5060, loose = true, why = "repeated Call-ID/To/From/CSeq: sanity" },
  ["rfc4475/mcl01.dat"] = { udp = 400, to = 5060, tcp_close = true, why = "two Content-Lengths; TCP: 400 then close" },
  ["rfc4475/bcast.dat"] = { udp = false, to = 5060, why = "a response" },
  ["rfc4475/sdp01.dat"] = { udp = 200, to = 5060, why = "406 is the UAS's business" },
  ["rfc5118/port-ambiguous.dat"] = { udp = 200, to = 5060, why = "Request-URI not routed here" },

  -- valid (continued)
  ["rfc4475/zeromf.dat"] = { udp = 200, to = 5060, why = "Max-Forwards 0: a proxy's 483, an endpoint's 200" },
  ["rfc4475/cparam01.dat"] = { udp = 200, to = 5060 },
  ["rfc4475/cparam02.dat"] = { udp = 200, to = 5060 },
  ["rfc4475/regescrt.dat"] = { udp = 200, to = 5060 },
  -- no Content-Length: a datagram's body is the rest of it; on a stream the
  -- parser reads it as an empty body (csrc/parse/sip_msg.h, SIP_MODE_STREAM),
  -- so the INVITE gets 200 and its SDP lines are the start of a next
  -- message that never ends (closed at the partial-message timeout)
  ["rfc4475/inv2543.dat"] = { udp = 200, to = 5060,
    why = "UDP: body = rest of datagram; TCP: no Content-Length = empty body" },
  ["rfc5118/ipv6-good.dat"] = { udp = 200, to = 5060 },
  ["rfc5118/port-unambiguous.dat"] = { udp = 200, to = 5060 },
  ["rfc5118/via-received-param-with-delim.dat"] = { udp = 200, to = 5060,
    why = "the client's received=[v6] is replaced by 127.0.0.1" },
  ["rfc5118/via-received-param-no-delim.dat"] = { udp = 200, to = 5060, why = "likewise" },
  ["rfc5118/ipv6-in-sdp.dat"] = { udp = 200, to = 5060, fix_clen = true },
  ["rfc5118/mult-ip-in-header.dat"] = { udp = 200, to = 6050, why = "Via [2001:db8::9:1]:6050" },
  ["rfc5118/mult-ip-in-sdp.dat"] = { udp = 200, to = 5060, fix_clen = true },
  ["rfc5118/ipv4-mapped-ipv6.dat"] = { udp = 200, to = 19823, fix_clen = true, why = "Via [::ffff:192.0.2.10]:19823" },
  ["rfc5118/ipv6-bug-abnf-3-colons.dat"] = { udp = 200, to = 5060 },
  ["rfc5118/ipv6-correct-abnf-2-colons.dat"] = { udp = 200, to = 5060 },
}

-- Not in the INDEX: the three RFC 5118 vectors as archived (UDP only: on a
-- stream a wrong length breaks the framing of whatever follows), and top
-- Vias with maddr (no vector has one in its top Via).
local OPTIONS = table.concat({
  "OPTIONS sip:extra@127.0.0.1 SIP/2.0",
  "Via: SIP/2.0/UDP %s;branch=z9hG4bK-%s",
  "Max-Forwards: 70",
  "To: <sip:extra@127.0.0.1>",
  "From: <sip:driver@127.0.0.1>;tag=%s",
  "Call-ID: %s@vectors-net",
  "CSeq: 1 OPTIONS",
  "Content-Length: 0",
  "", "" }, "\r\n")

local function options(via, name)
  return OPTIONS:format(via, name, name, name)
end

local EXTRA = {
  { name = "as-archived/ipv6-in-sdp", file = "rfc5118/ipv6-in-sdp.dat", udp = 400, to = 5060,
    why = "Content-Length 268 > 251 body octets: short body" },
  { name = "as-archived/mult-ip-in-sdp", file = "rfc5118/mult-ip-in-sdp.dat", udp = 200, to = 5060,
    why = "Content-Length 181 < 189: the last octets are ignored" },
  { name = "as-archived/ipv4-mapped-ipv6", file = "rfc5118/ipv4-mapped-ipv6.dat", udp = 200, to = 19823,
    why = "Content-Length 236 < 245: the last octets are ignored" },
  -- maddr wins over received (§18.2.2): 127.0.0.2 is loopback too
  { name = "maddr-loopback", bytes = options("192.0.2.7:5062;maddr=127.0.0.2", "maddr-loopback"),
    udp = 200, to = 5062, to_host = "127.0.0.2", why = "answer at maddr 127.0.0.2:5062" },
  -- maddr somewhere off the machine: unreachable in the namespace
  { name = "maddr-foreign", bytes = options("127.0.0.1:5062;maddr=192.0.2.1", "maddr-foreign"),
    udp = false, to = 5062, why = "answer goes to 192.0.2.1: unreachable here, silence" },
  { name = "rport-with-port", bytes = options("127.0.0.1:5062;rport", "rport-with-port"),
    udp = 200, to = "rport", why = "rport beats the sent-by port 5062" },
}

------------------------------------------------------------------------------
-- Reading messages without the library under test
------------------------------------------------------------------------------
local COMPACT = { i = "call-id", l = "content-length", v = "via", f = "from", t = "to",
  m = "contact", c = "content-type", k = "supported", s = "subject", e = "content-encoding" }

-- first line and a map lower-case header name -> list of values
local function parse_head(bytes)
  local head = bytes:match("^(.-)\r\n\r\n") or bytes
  head = head:gsub("\r\n[ \t]+", " ")
  local first, rest = head:match("^([^\r\n]*)\r?\n?(.*)$")
  local h = {}
  for line in (rest .. "\r\n"):gmatch("(.-)\r\n") do
    local name, value = line:match("^([^:]-)[ \t]*:[ \t]*(.-)[ \t]*$")
    if name then
      name = name:lower()
      name = COMPACT[name] or name
      h[name] = h[name] or {}
      table.insert(h[name], value)
    end
  end
  return first, h
end

local function ids(bytes)
  local _, h = parse_head(bytes)
  local callid = h["call-id"] and h["call-id"][1]
  local n, method
  if h.cseq then
    n, method = h.cseq[1]:match("^(%d+)%s+(%S+)$")
  end
  return callid, n and tonumber(n), method
end

local function read_file(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

local function fix_clen(bytes)
  local hend = assert(bytes:find("\r\n\r\n", 1, true)) + 4
  local head, body = bytes:sub(1, hend - 1), bytes:sub(hend)
  local n
  head, n = head:gsub("(\n[Cc]ontent%-[Ll]ength[ \t]*:[ \t]*)%d+", "%1" .. #body, 1)
  assert(n == 1, "no Content-Length to fix")
  return head .. body
end

------------------------------------------------------------------------------
-- Sockets
------------------------------------------------------------------------------
local udp_socks = {} -- "host:port" -> socket, kept for the whole run

local function udp_at(host, port)
  local key = host .. ":" .. port
  if not udp_socks[key] then
    local s = assert(socket.udp())
    assert(s:setsockname(host, port))
    udp_socks[key] = s
  end
  return udp_socks[key]
end

local function all_udp(extra)
  local list = {}
  for _, s in pairs(udp_socks) do
    list[#list + 1] = s
  end
  if extra then
    list[#list + 1] = extra
  end
  return list
end

-- Empty every socket; returns what was found (late or misrouted answers).
local function drain(extra)
  local found = {}
  for _, s in ipairs(all_udp(extra)) do
    s:settimeout(0)
    while true do
      local data = s:receive()
      if not data then
        break
      end
      local ip, port = s:getsockname()
      found[#found + 1] = ("%s:%s got %q"):format(ip, port, data:sub(1, 40))
    end
  end
  return found
end

-- Wait until deadline for a datagram on any socket: data, socket.
local function wait_udp(socks, deadline)
  while true do
    local left = deadline - socket.gettime()
    if left <= 0 then
      return nil
    end
    local ready = socket.select(socks, nil, left)
    for _, s in ipairs(ready) do
      s:settimeout(0)
      local data, ip, port = s:receivefrom()
      if data then
        return data, s, ip, port
      end
    end
  end
end

-- Read one framed message from a TCP connection: bytes, or nil and
-- "timeout" / "closed".
local function tcp_read(conn, buf, deadline)
  while true do
    local hend = buf.data:find("\r\n\r\n", 1, true)
    if hend then
      local _, h = parse_head(buf.data:sub(1, hend + 3))
      local clen = tonumber(h["content-length"] and h["content-length"][1] or "0") or 0
      local total = hend + 3 + clen
      if #buf.data >= total then
        local msg = buf.data:sub(1, total)
        buf.data = buf.data:sub(total + 1)
        return msg
      end
    end
    local left = deadline - socket.gettime()
    if left <= 0 then
      return nil, "timeout"
    end
    -- receive(n) waits for all n bytes: wait for readability, then take
    -- what is there without blocking
    socket.select({ conn }, nil, left)
    conn:settimeout(0)
    local data, err, partial = conn:receive(65536)
    data = data or partial
    if data and #data > 0 then
      buf.data = buf.data .. data
    elseif err == "closed" then
      return nil, "closed"
    end
  end
end

------------------------------------------------------------------------------
-- Checks
------------------------------------------------------------------------------
local passed, failed = 0, 0
local rows = {}

local function outcome_text(got)
  if type(got) == "table" then
    local t = {}
    for i, g in ipairs(got) do
      t[i] = outcome_text(g)
    end
    return table.concat(t, "+")
  end
  return got == false and "silence" or tostring(got)
end

-- the expected outcome as shown: "400|200" when the note allows both
local function shown(e, want)
  if e.also and type(want) == "number" then
    return want .. "|" .. e.also
  end
  return want
end

local function record(name, transport, expected, got, problem)
  local ok = problem == nil
  if ok then
    passed = passed + 1
  else
    failed = failed + 1
  end
  print(("%s %s %s: expected %s, got %s%s"):format(ok and "ok  " or "FAIL", transport, name,
    outcome_text(expected), outcome_text(got), problem and (" -- " .. problem) or ""))
  rows[name] = rows[name] or {}
  rows[name][transport] = { expected = expected, got = got, ok = ok }
  return ok
end

-- Compare one answer with the request: nil when fine, else what is wrong.
local function check_answer(req, ans, status, e, nth)
  local first, h = parse_head(ans)
  local code = tonumber(first:match("^SIP/2%.0 (%d%d%d) "))
  if code ~= status and not (e.also and code == e.also) then
    return code or first:sub(1, 40), ("status line %q"):format(first:sub(1, 60))
  end
  if e.loose ~= true then
    local cid, n, m = ids(req)
    local acid, an, am = ids(ans)
    if acid ~= cid and e.loose ~= "cseq" then
      return code, ("Call-ID %q, request's %q"):format(tostring(acid), tostring(cid))
    end
    if an ~= n or am ~= m then
      return code, ("CSeq %s %s, request's %s %s"):format(tostring(an), tostring(am), tostring(n), tostring(m))
    end
  end
  if e.unsupported and nth == 1 then
    local u = h.unsupported and table.concat(h.unsupported, ", ")
    if u ~= e.unsupported then
      return code, ("Unsupported %q, want %q"):format(tostring(u), e.unsupported)
    end
  end
  return code
end

local function run_udp(name, bytes, e)
  local rport = e.to == "rport"
  local from = rport and assert(socket.udp()) or udp_at("127.0.0.1", e.to)
  if rport then
    assert(from:setsockname("127.0.0.1", 0))
  end
  local expect_at = e.to_host and udp_at(e.to_host, e.to) or from
  local stray = drain(rport and from or nil)
  if #stray > 0 then
    record("stray-before-" .. name, "udp", false, #stray, table.concat(stray, "; "))
  end
  local ok, err = from:sendto(bytes, SERVER, PORT)
  if not ok then
    record(name, "udp", shown(e, e.udp), "send failed", err)
    return
  end
  local socks = all_udp(rport and from or nil)
  if e.udp == false then
    local data, s = wait_udp(socks, socket.gettime() + SILENCE)
    if data then
      local ip, port = s:getsockname()
      local first = data:match("^[^\r\n]*")
      record(name, "udp", false, first:match("^SIP/2%.0 (%d+)") or "datagram",
        ("answer at %s:%s: %q"):format(ip, port, first))
    else
      record(name, "udp", false, false)
    end
  else
    local data, s, ip, port = wait_udp(socks, socket.gettime() + WAIT)
    if not data then
      record(name, "udp", shown(e, e.udp), false, "no answer")
    elseif s ~= expect_at then
      local lip, lport = s:getsockname()
      local eip, eport = expect_at:getsockname()
      record(name, "udp", shown(e, e.udp), data:match("^SIP/2%.0 (%d+)") or "datagram",
        ("answer at %s:%s instead of %s:%s"):format(lip, lport, eip, eport))
    elseif ip ~= SERVER or port ~= PORT then
      record(name, "udp", shown(e, e.udp), "?", ("answer from %s:%s, not the listener"):format(ip, port))
    else
      local got, problem = check_answer(bytes, data, e.udp, e, 1)
      record(name, "udp", shown(e, e.udp), got, problem)
    end
  end
  if rport then
    from:close()
  end
end

local function run_tcp(name, bytes, e)
  local want = e.tcp
  if want == nil then
    want = e.udp
  end
  local conn = socket.tcp()
  conn:settimeout(WAIT)
  local ok, err = conn:connect(SERVER, PORT)
  if not ok then
    record(name, "tcp", shown(e, want), "connect failed", err)
    return
  end
  ok, err = conn:send(bytes)
  if not ok then
    record(name, "tcp", shown(e, want), "send failed", err)
    conn:close()
    return
  end
  local buf = { data = "" }
  if want == false then
    local msg, why = tcp_read(conn, buf, socket.gettime() + SILENCE)
    if msg then
      record(name, "tcp", false, msg:match("^SIP/2%.0 (%d+)") or "message",
        ("answer %q"):format(msg:match("^[^\r\n]*")))
    else
      record(name, "tcp", false, false, (why ~= "timeout" and why ~= "closed") and why or nil)
    end
  else
    local list = type(want) == "table" and want or { want }
    local got, problem = {}, nil
    -- the n-th answer belongs to the n-th message of the stream
    local reqs = { bytes }
    if #list > 1 then
      reqs = {}
      local rest = bytes
      for _ = 1, #list do
        rest = rest:gsub("^\r\n", "")
        local hend = rest:find("\r\n\r\n", 1, true)
        local _, h = parse_head(rest:sub(1, hend + 3))
        local total = hend + 3 + tonumber(h["content-length"][1])
        reqs[#reqs + 1] = rest:sub(1, total)
        rest = rest:sub(total + 1)
      end
    end
    for i, status in ipairs(list) do
      local msg, why = tcp_read(conn, buf, socket.gettime() + WAIT)
      if not msg then
        got[i] = false
        problem = problem or ("answer " .. i .. ": " .. why)
      else
        local code, p = check_answer(reqs[i], msg, status, e, i)
        got[i] = code
        problem = problem or p
      end
    end
    if e.tcp_close and not problem then
      local msg, why = tcp_read(conn, buf, socket.gettime() + SILENCE)
      if msg or why ~= "closed" then
        problem = "the connection stayed open after the answer (framing is lost)"
      end
    end
    record(name, "tcp", #list > 1 and list or shown(e, list[1]), #list > 1 and got or got[1], problem)
  end
  conn:close()
end

------------------------------------------------------------------------------
-- The run
------------------------------------------------------------------------------
local index = {}
local first = true
for line in io.lines(VECTORS .. "/INDEX.tsv") do
  if first then
    first = false
  else
    local file, _, verdict = line:match("^([^\t]*)\t([^\t]*)\t([^\t]*)\t")
    if file then
      index[#index + 1] = { file = file, verdict = verdict }
    end
  end
end

local t0 = socket.gettime()
for _, v in ipairs(index) do
  local e = EXPECT[v.file]
  if not e then
    record(v.file, "udp", "an entry in EXPECT", "none", "vector not in the driver's table")
  else
    local bytes = read_file(VECTORS .. "/" .. v.file)
    if e.fix_clen then
      bytes = fix_clen(bytes)
    end
    run_udp(v.file, bytes, e)
    run_tcp(v.file, bytes, e)
  end
end
for _, x in ipairs(EXTRA) do
  local bytes = x.bytes or read_file(VECTORS .. "/" .. x.file)
  run_udp(x.name, bytes, x)
end

-- the server is still there and still answers
local probe = options("127.0.0.1:5062", "alive-after")
run_udp("alive-after", probe, { udp = 200, to = 5062 })
run_tcp("alive-after", probe, { udp = 200 })
local stray = drain()
if #stray > 0 then
  record("no-stray-datagrams", "udp", false, #stray, table.concat(stray, "; "))
end

-- the table
print()
print(("%-44s %-32s %-18s %-18s"):format("vector", "verdict", "udp exp/got", "tcp exp/got"))
local function cell(r)
  if not r then
    return "-"
  end
  return ("%s%s/%s"):format(r.ok and "" or "!", outcome_text(r.expected), outcome_text(r.got))
end
local verdicts = {}
for _, v in ipairs(index) do
  verdicts[#verdicts + 1] = { v.file, v.verdict }
end
for _, x in ipairs(EXTRA) do
  verdicts[#verdicts + 1] = { x.name, "extra: " .. x.why:sub(1, 25) }
end
for _, pair in ipairs(verdicts) do
  local r = rows[pair[1]] or {}
  local e = EXPECT[pair[1]]
  print(("%-44s %-32s %-18s %-18s %s"):format(pair[1], pair[2], cell(r.udp), cell(r.tcp), e and e.why or ""))
end
print(("(%.1f s)"):format(socket.gettime() - t0))
print(("vectors-net: %d passed, %d failed"):format(passed, failed))
os.exit(failed == 0 and 0 or 1)
