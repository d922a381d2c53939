-- Issue [wire], transport defects 1 and 2, over real sockets on 127.0.0.1
-- (only 127.0.0.1 appears in the messages):
--  1. §18.1.1 decides on the size of the request as written, not on an
--     estimate; a request moved to TCP for its size falls back to UDP when
--     the connection is refused (a UA listening on UDP only), for the
--     proxy (stateful and stateless) and for srv:send;
--  2. a message that arrives over UDP without Content-Length and is
--     relayed over TCP carries "Content-Length: 0".
-- Defect 7 (send errors under load) is spec/netns/wire_load.sh.
local here = debug.getinfo(1, "S").source:gsub("^@", ""):match("^(.*)/[^/]*$") or "."
local N = dofile(here .. "/support/net.lua")
local proxy = require "luasip.proxy"
local sip = require "luasip"
local socket = require "socket"

local V4 = N.V4

-- A response to a parsed request (every Via, From, To + tag, Call-ID,
-- CSeq).
local function response(req, code, reason)
  local lines = { ("SIP/2.0 %d %s"):format(code, reason or "X") }
  for _, v in ipairs(req:all("Via")) do
    lines[#lines + 1] = "Via: " .. v
  end
  local to = req:get("To")
  if not to:find(";tag=", 1, true) then
    to = to .. ";tag=uas1"
  end
  lines[#lines + 1] = "From: " .. req:get("From")
  lines[#lines + 1] = "To: " .. to
  lines[#lines + 1] = "Call-ID: " .. req:get("Call-ID")
  lines[#lines + 1] = "CSeq: " .. req:get("CSeq")
  lines[#lines + 1] = "Content-Length: 0"
  return table.concat(lines, "\r\n") .. "\r\n\r\n"
end

local function next_msg(peer, seconds)
  local d = peer:recv(seconds or 2)
  return d and N.parse(d), d
end

local function next_final(peer, seconds)
  local deadline = socket.gettime() + (seconds or 3)
  while socket.gettime() < deadline do
    local m = next_msg(peer, 0.5)
    if m and m.status and m.status >= 200 then
      return m
    end
  end
  return nil
end

-- A request of exactly size bytes (the body fills it up).
local function sized(t, size)
  t.content_type = "application/sdp"
  t.body = ""
  t.from = t.from or "<sip:alice@127.0.0.1>;tag=a1"
  local bytes, call_id, branch = N.request(t)
  t.call_id, t.branch = call_id, branch
  for b = size - #bytes - 5, size - #bytes do
    if #bytes + b + #tostring(b) - 1 == size then
      t.body = string.rep("a", b)
      break
    end
  end
  bytes = N.request(t)
  assert(#bytes == size, "sized request: " .. #bytes)
  return bytes
end

-- A TCP listening socket the spec plays a callee with.
local function tcp_listener()
  local s = assert(socket.bind(V4, 0))
  s:settimeout(0)
  local _, port = s:getsockname()
  local l = { s = s, port = tonumber(port) }
  function l:accept(seconds)
    local c = N.pump_until(function()
      return self.s:accept()
    end, seconds)
    if c then
      c:settimeout(0)
      self.conn = { s = c, buf = "" }
    end
    return c
  end
  -- the next message framed by its Content-Length (as a stream peer must)
  function l:read_message(seconds)
    local m
    N.pump_until(function()
      if not self.conn and not self:accept(0.01) then
        return false
      end
      local d, _, partial = self.conn.s:receive(65536)
      self.conn.buf = self.conn.buf .. (d or partial or "")
      local msg, rest = N.take_message(self.conn.buf)
      if msg and msg:sub(1, msg:find("\r\n\r\n", 1, true)):lower():find("\ncontent%-length:") then
        m = msg
        self.conn.buf = rest
        return true
      end
      return false
    end, seconds)
    return m
  end
  function l:send(bytes)
    assert(self.conn.s:send(bytes) == #bytes)
  end
  function l:close()
    if self.conn then
      self.conn.s:close()
    end
    self.s:close()
  end
  return l
end

describe("[wire] transport", function()
  local srv, port, uac, outcome

  local function setup(handler, opts)
    opts = opts or {}
    opts.listen = opts.listen or { "udp:127.0.0.1:0", "tcp:127.0.0.1:0" }
    local l
    srv, l = N.server(opts)
    port = l.port
    uac = N.udp(V4)
    outcome = {}
    srv:on_request(function(req)
      return handler(req, outcome)
    end)
  end

  after_each(function()
    N.cleanup()
  end)

  describe("1. §18.1.1 with a UDP-only callee (no transport in its Contact)", function()
    local callee

    local function relay_to_callee()
      setup(function(req, out)
        local res = proxy.relay(req, "sip:bob@127.0.0.1:" .. callee.port)
        out.status = res.status
      end)
    end

    local guard

    before_each(function()
      callee = N.udp(V4)
      -- its TCP port bound and not listening: a connect to it is refused,
      -- and no other process can listen there meanwhile
      guard = assert(socket.tcp())
      assert(guard:bind(V4, callee.port))
    end)

    after_each(function()
      guard:close()
    end)

    it("a 1,000-byte INVITE goes out over UDP (not TCP on an estimate)", function()
      relay_to_callee()
      uac:send(sized({ method = "INVITE", uri = "sip:bob@127.0.0.1:" .. port, via_port = uac.port }, 1000), V4,
        port)
      local r, raw = next_msg(callee)
      assert.is_truthy(r, "the INVITE did not reach the callee over UDP")
      assert.truthy(#raw <= 1300, "relayed " .. #raw .. " bytes")
      assert.truthy(r:all("Via")[1]:match("^SIP/2%.0/UDP "))
      callee:send(response(r, 200, "OK"), V4, port)
      assert.equal(200, assert(next_final(uac)).status)
      assert.equal(0, srv:stats().txn_udp_fallbacks)
    end)

    it("a 1,400-byte INVITE tries TCP, is refused, and is delivered over UDP", function()
      relay_to_callee()
      uac:send(sized({ method = "INVITE", uri = "sip:bob@127.0.0.1:" .. port, via_port = uac.port }, 1400), V4,
        port)
      local r, raw = next_msg(callee, 3)
      assert.is_truthy(r, "the INVITE was not retried over UDP")
      assert.truthy(#raw > 1300)
      assert.truthy(r:all("Via")[1]:match("^SIP/2%.0/UDP 127%.0%.0%.1:" .. port .. ";"))
      callee:send(response(r, 180, "Ringing"), V4, port)
      assert.equal(180, assert(next_msg(uac)).status)
      callee:send(response(r, 486, "Busy Here"), V4, port)
      assert.equal(486, assert(next_final(uac)).status)
      -- the ACK of the 486 goes where the INVITE went: over UDP
      local ack = assert(next_msg(callee))
      assert.equal("ACK", ack.start:match("^%u+"))
      assert.equal(r:all("Via")[1], ack:all("Via")[1])
      assert.equal(486, outcome.status)
      assert.equal(1, srv:stats().txn_udp_fallbacks)
    end)

    it("a CANCEL follows the INVITE that fell back to UDP", function()
      relay_to_callee()
      local bytes = sized({ method = "INVITE", uri = "sip:bob@127.0.0.1:" .. port, via_port = uac.port }, 1400)
      uac:send(bytes, V4, port)
      local r = assert(next_msg(callee, 3))
      callee:send(response(r, 180, "Ringing"), V4, port)
      assert.equal(180, assert(next_msg(uac)).status)
      local inv = N.parse(bytes)
      local cancel = table.concat({
        "CANCEL " .. inv.start:match("^%u+ (%S+)") .. " SIP/2.0",
        "Via: " .. inv:get("Via"),
        "Max-Forwards: 70",
        "From: " .. inv:get("From"),
        "To: " .. inv:get("To"),
        "Call-ID: " .. inv:get("Call-ID"),
        "CSeq: " .. inv:get("CSeq"):match("^%d+") .. " CANCEL",
        "Content-Length: 0",
        "",
        "",
      }, "\r\n")
      uac:send(cancel, V4, port)
      local c = assert(next_msg(callee))
      assert.equal("CANCEL", c.start:match("^%u+"))
      assert.equal(r:all("Via")[1], c:all("Via")[1])
    end)

    it("stateless: a 1,400-byte request falls back to UDP, a 1,000-byte one goes over UDP", function()
      setup(function(req)
        assert(proxy.forward(req, "sip:bob@127.0.0.1:" .. callee.port))
      end, { transactions = false })
      uac:send(sized({ method = "MESSAGE", uri = "sip:bob@127.0.0.1:" .. port, via_port = uac.port }, 1000), V4,
        port)
      local r1 = next_msg(callee)
      assert.is_truthy(r1, "1,000 bytes: not over UDP")
      assert.truthy(r1:all("Via")[1]:match("^SIP/2%.0/UDP "))
      uac:send(sized({ method = "MESSAGE", uri = "sip:bob@127.0.0.1:" .. port, via_port = uac.port }, 1400), V4,
        port)
      local r2 = next_msg(callee, 3)
      assert.is_truthy(r2, "1,400 bytes: not retried over UDP")
      assert.truthy(r2:all("Via")[1]:match("^SIP/2%.0/UDP "))
    end)

    it("srv:send: 1,000 bytes over UDP; 1,400 bytes over UDP after the refused TCP", function()
      setup(function(req)
        req:reply(404)
      end)
      for _, size in ipairs { 1000, 1400 } do
        local t = { method = "MESSAGE", uri = "sip:bob@127.0.0.1:" .. callee.port, via_port = 1 }
        local req = assert(sip.parse(sized(t, size)))
        local res
        sip.spawn(function()
          res = { srv:send(req) }
        end)
        local r = next_msg(callee, 3)
        assert.is_truthy(r, size .. " bytes: nothing over UDP")
        assert.truthy(r:all("Via")[1]:match("^SIP/2%.0/UDP "))
        callee:send(response(r, 200, "OK"), V4, port)
        assert.truthy(N.pump_until(function()
          return res
        end))
        assert.equal(200, res[1] and res[1].status, tostring(res[2]))
      end
    end)

    it("a callee that listens on TCP too gets the 1,400-byte request over TCP", function()
      local tcp = tcp_listener()
      setup(function(req, out)
        out.status = proxy.relay(req, "sip:bob@127.0.0.1:" .. tcp.port).status
      end)
      uac:send(sized({ method = "INVITE", uri = "sip:bob@127.0.0.1:" .. port, via_port = uac.port }, 1400), V4,
        port)
      local raw = tcp:read_message(3)
      tcp:close()
      assert.is_truthy(raw, "nothing over TCP")
      assert.truthy(N.parse(raw):all("Via")[1]:match("^SIP/2%.0/TCP "))
    end)
  end)

  describe("2. Content-Length after a move from UDP to TCP", function()
    it("an ACK and a BYE without Content-Length, relayed UDP -> TCP, carry Content-Length: 0", function()
      local tcp = tcp_listener()
      local target = "sip:bob@127.0.0.1:" .. tcp.port .. ";transport=tcp"
      setup(function(req, out)
        local res = proxy.relay(req, target)
        out[req.method] = res and res.status or true
      end)
      local to = "Bob <sip:bob@127.0.0.1>;tag=t1"
      local bye = N.request { method = "BYE", uri = "sip:bob@127.0.0.1:" .. port, via_port = uac.port, to = to,
        omit = { ["Content-Length"] = true } }
      assert.is_nil(bye:find("Content%-Length"))
      uac:send(bye, V4, port)
      local got = tcp:read_message(3)
      assert.is_truthy(got, "the BYE was not framed (no Content-Length)")
      assert.equal("0", N.parse(got):get("Content-Length"))
      tcp:send(response(N.parse(got), 200, "OK"))
      assert.equal(200, assert(next_final(uac)).status)
      local ack = N.request { method = "ACK", uri = "sip:bob@127.0.0.1:" .. port, via_port = uac.port, to = to,
        omit = { ["Content-Length"] = true } }
      uac:send(ack, V4, port)
      got = tcp:read_message(3)
      tcp:close()
      assert.is_truthy(got, "the ACK was not framed (no Content-Length)")
      local a = N.parse(got)
      assert.equal("ACK", a.start:match("^%u+"))
      assert.equal("0", a:get("Content-Length"))
      assert.equal(2, srv:stats().clen_fixed)
    end)
  end)
end)
