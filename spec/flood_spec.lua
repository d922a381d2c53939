-- Issue [edge], the protection half: flood protection in the transport
-- (per-source windows, INVITE/REGISTER apart from the other methods, a
-- per-user limit, trusted networks, block with one 503, the on_block hook,
-- the blocked list), and connection slots an attacker cannot hold (the
-- least recently useful connection evicted for a newcomer, a per-source
-- limit, keep-alives not counted as activity when slots are short).
-- Loopback only: the flooders are sockets bound to 127.0.0.2 sending to the
-- server on 127.0.0.1; every answer goes to a packet's source.
local core = require "luasip.core"
local N = require "spec.support.net"
local socket = require "socket"

local V4 = N.V4
local FLOODER = "127.0.0.2"

-- A UDP socket bound to src (a loopback address), sending to 127.0.0.1.
local function udp_from(src)
  local s = assert(socket.udp())
  assert(s:setsockname(src, 0))
  s:settimeout(0)
  local self = { s = s, got = {} }
  function self.send(_, bytes, port)
    assert(s:sendto(bytes, V4, port))
  end
  function self.poll()
    while true do
      local d = s:receivefrom()
      if not d then
        return #self.got
      end
      self.got[#self.got + 1] = N.parse(d)
    end
  end
  function self.close()
    s:close()
  end
  return self
end

-- A TCP peer bound to src, connected to 127.0.0.1:port.
local function tcp_from(src, port)
  local s = assert(socket.tcp())
  assert(s:bind(src, 0))
  s:settimeout(0)
  s:connect(V4, port)
  assert(N.pump_until(function()
    local _, w = socket.select(nil, { s }, 0)
    return w and #w > 0
  end, 2), "connect")
  local self = { s = s, buf = "" }
  function self.send(_, bytes)
    local ok, err = s:send(bytes)
    if not ok then
      self.closed = err
    end
  end
  function self.poll()
    while not self.closed do
      local d, err, partial = s:receive(65536)
      local got = d or partial
      if got and #got > 0 then
        self.buf = self.buf .. got
      end
      if not d then
        if err ~= "timeout" then
          self.closed = err
        end
        return
      end
    end
  end
  function self.read_message(_, seconds)
    local m
    N.pump_until(function()
      self.poll()
      local msg, rest = N.take_message(self.buf)
      if msg then
        m, self.buf = msg, rest
        return true
      end
      return self.closed
    end, seconds)
    return m, self.closed or "timeout"
  end
  function self.wait_closed(_, seconds)
    N.pump_until(function()
      self.poll()
      return self.closed
    end, seconds)
    return self.closed
  end
  function self.close()
    s:close()
  end
  return self
end

local function register(from_ip, user)
  user = user or "alice"
  return (N.request {
    method = "REGISTER",
    uri = "sip:127.0.0.1",
    via_host = from_ip,
    rport = true,
    from = "<sip:" .. user .. "@127.0.0.1>;tag=" .. N.unique("t"):gsub("%.", ""),
    to = "<sip:" .. user .. "@127.0.0.1>",
  })
end

local function options(from_ip, user)
  user = user or "alice"
  return (N.request {
    via_host = from_ip,
    rport = true,
    from = "<sip:" .. user .. "@127.0.0.1>;tag=" .. N.unique("t"):gsub("%.", ""),
  })
end

-- A server on udp (and tcp) 127.0.0.1 that answers every request with 200.
local function server(opts)
  opts.listen = opts.listen or { "udp:127.0.0.1:0" }
  local srv, l = N.server(opts)
  local seen = 0
  srv:on_request(function(req)
    seen = seen + 1
    req:reply(200)
  end)
  return srv, l, function()
    return seen
  end
end

-- Pump until peer got n answers; then a little longer to see no more come.
local function answers(peer, n)
  N.pump_until(function()
    return peer.poll() >= n
  end, 3)
  N.pump_for(0.2)
  peer.poll()
  return peer.got
end

local function count_status(list, status)
  local n = 0
  for _, r in ipairs(list) do
    if r.status == status then
      n = n + 1
    end
  end
  return n
end

describe("flood protection", function()
  local peers
  before_each(function()
    peers = {}
  end)
  after_each(function()
    for _, p in ipairs(peers) do
      p.close()
    end
    N.cleanup()
  end)
  local function peer(src)
    local p = udp_from(src)
    peers[#peers + 1] = p
    return p
  end

  it("blocks a source over its INVITE/REGISTER threshold, answers 503 once, keeps serving others", function()
    local srv, l, seen = server { flood = { invite = 20, other = 1000, block = 60000, reply_503 = true } }
    local bad, good = peer(FLOODER), peer(V4)
    for _ = 1, 60 do
      bad:send(register(FLOODER), l.port)
    end
    local got = answers(bad, 21)
    assert.equal(21, #got)
    assert.equal(20, count_status(got, 200))
    local r503 = got[21]
    assert.equal(503, r503.status)
    assert.equal("60", r503:get("Retry-After"))
    assert.is_truthy(r503:to_tag())
    for _ = 1, 10 do
      good:send(register(V4), l.port)
    end
    assert.equal(10, count_status(answers(good, 10), 200))
    local st = srv:stats()
    assert.equal(1, st.flood_blocks)
    assert.equal(40, st.flood_dropped)
    assert.equal(1, st.flood_replied)
    assert.equal(1, st.flood_blocked)
    assert.equal(30, seen())
    local list = srv:flood_blocked()
    assert.equal(1, #list)
    assert.equal(FLOODER, list[1].addr)
    assert.is_nil(list[1].user)
    assert.is_true(list[1].remaining > 50000 and list[1].remaining <= 60000)
  end)

  it("counts INVITE/REGISTER apart from the other methods", function()
    local srv, l = server { flood = { invite = 5, other = 100 } }
    local p = peer(FLOODER)
    for _ = 1, 5 do
      p:send(register(FLOODER), l.port)
    end
    for _ = 1, 50 do
      p:send(options(FLOODER), l.port)
    end
    assert.equal(55, count_status(answers(p, 55), 200))
    assert.equal(0, srv:stats().flood_blocks)
    p:send(register(FLOODER), l.port) -- the sixth REGISTER of the window
    p:send(options(FLOODER), l.port)
    N.pump_for(0.3)
    assert.equal(55, p.poll())
    assert.equal(1, srv:stats().flood_blocks)
    assert.equal(2, srv:stats().flood_dropped)
  end)

  it("without reply_503 drops silently, and a block ends after its time", function()
    local srv, l = server { flood = { other = 3, block = 300 } }
    local p = peer(FLOODER)
    for _ = 1, 10 do
      p:send(options(FLOODER), l.port)
    end
    assert.equal(3, #answers(p, 3))
    assert.equal(0, srv:stats().flood_replied)
    assert.equal(1, srv:stats().flood_blocked)
    assert.is_truthy(N.pump_until(function()
      return srv:stats().flood_blocked == 0
    end, 2))
    p:send(options(FLOODER), l.port)
    assert.equal(4, #answers(p, 4))
  end)

  it("never counts trusted networks, and srv:flood_trust adds one", function()
    local srv, l = server { flood = { invite = 2, trusted = { "10.0.0.0/8", "127.0.0.0/31" } } }
    local p, q = peer(V4), peer(FLOODER)
    for _ = 1, 30 do
      p:send(register(V4), l.port)
    end
    assert.equal(30, count_status(answers(p, 30), 200))
    assert.equal(30, srv:stats().flood_trusted)
    assert.equal(0, srv:stats().flood_blocks)
    assert.is_true(srv:flood_trust("127.0.0.2"))
    for _ = 1, 10 do
      q:send(register(FLOODER), l.port)
    end
    assert.equal(10, #answers(q, 10))
    local ok, err = srv:flood_trust("127.0.0.300/8")
    assert.is_nil(ok)
    assert.matches("malformed", err)
    assert.is_nil(srv:flood_trust("10.0.0.0/33"))
  end)

  it("srv:flood_untrust drops one reference; the dispatcher trusts its destinations and lets go of them", function()
    local dispatcher = require "luasip.dispatcher"
    local srv, l = server { flood = { invite = 2, trusted = { "127.0.0.2" } } }
    -- one REGISTER from ip: counted as trusted?
    local function trusted(ip)
      local p = peer(ip)
      local before = srv:stats().flood_trusted
      p:send(register(ip), l.port)
      assert.equal(1, #answers(p, 1))
      return srv:stats().flood_trusted == before + 1
    end
    local both = { "sip:127.0.0.2:5099", "sip:127.0.0.3:5099" }
    dispatcher.set("t", both, { server = srv })
    assert.is_true(trusted("127.0.0.3"))
    -- a reload declares the set again, many times: no slot is used up
    for _ = 1, 100 do
      dispatcher.set("t", both, { server = srv })
    end
    assert.is_true(srv:flood_trust("127.0.0.9"))
    assert.is_true(srv:flood_untrust("127.0.0.9"))
    local ok, err, code = srv:flood_untrust("127.0.0.9")
    assert.is_nil(ok)
    assert.matches("127.0.0.9", err, 1, true)
    assert.equal("NOTFOUND", code)
    assert.is_nil((srv:flood_untrust("127.0.0.x")))
    -- the set without 127.0.0.3: no longer trusted; 127.0.0.2 stays (the
    -- flood configuration trusts it too)
    dispatcher.set("t", { "sip:127.0.0.2:5099" }, { server = srv })
    assert.is_false(trusted("127.0.0.3"))
    assert.is_true(trusted("127.0.0.2"))
    dispatcher.reset()
    assert.is_true(trusted("127.0.0.2"))
    -- a destination's dest host is trusted as well (names: spec/dns/dns_cases.lua)
    dispatcher.set("t", { { uri = "sip:127.0.0.1:9", dest = "udp:127.0.0.4:5099" } }, { server = srv })
    assert.is_true(trusted("127.0.0.4"))
    dispatcher.reset()
    assert.is_false(trusted("127.0.0.4"))
  end)

  it("with a per-user limit blocks the noisy phone, not the office behind the same address", function()
    local srv, l = server { flood = { user = 10, invite = 1000, other = 1000 } }
    local noisy, quiet = peer(FLOODER), peer(FLOODER)
    for _ = 1, 30 do
      noisy:send(register(FLOODER, "noisy"), l.port)
    end
    for _ = 1, 8 do
      quiet:send(register(FLOODER, "quiet"), l.port)
    end
    assert.equal(10, #answers(noisy, 10))
    assert.equal(8, count_status(answers(quiet, 8), 200))
    local list = srv:flood_blocked()
    assert.equal(1, #list)
    assert.equal(FLOODER, list[1].addr)
    assert.equal("noisy", list[1].user)
    assert.equal(20, srv:stats().flood_dropped)
  end)

  it("asks on_block, which may let a source go on; unblock lifts a block", function()
    local calls = {}
    local allow = true
    local srv, l = server { flood = { other = 5, on_block = function(ip, kind, count, user)
      calls[#calls + 1] = { ip, kind, count, user }
      return not allow
    end } }
    local p = peer(FLOODER)
    for _ = 1, 12 do
      p:send(options(FLOODER), l.port)
    end
    assert.equal(12, #answers(p, 12))
    assert.same({ FLOODER, "other", 6, nil }, calls[1])
    assert.equal(2, srv:stats().flood_vetoed)
    allow = false
    for _ = 1, 12 do
      p:send(options(FLOODER), l.port)
    end
    N.pump_until(function()
      return srv:stats().flood_dropped > 0
    end, 2)
    N.pump_for(0.2)
    local before = p.poll()
    assert.is_true(before < 24)
    assert.equal(1, srv:stats().flood_blocks)
    assert.equal(1, srv:flood_unblock(FLOODER))
    assert.equal(0, srv:flood_unblock(FLOODER))
    p:send(options(FLOODER), l.port)
    assert.equal(before + 1, #answers(p, before + 1))
  end)

  it("an on_block error is logged with a traceback, counted, and the block goes ahead", function()
    local logged = {}
    local srv, l = server { flood = { other = 2, on_block = function()
      error("hook broke")
    end } }
    -- script errors go through the one protected path, to the loop's sink
    local previous = core.set_log_handler(function(level, text)
      logged[#logged + 1] = level .. ": " .. text
    end)
    local p = peer(FLOODER)
    for _ = 1, 6 do
      p:send(options(FLOODER), l.port)
    end
    local got = #answers(p, 2)
    core.set_log_handler(previous)
    assert.equal(2, got)
    local st = srv:stats()
    assert.equal(1, st.flood_blocks)
    assert.equal(1, st.script_errors)
    assert.matches("hook broke", logged[1])
    assert.matches("stack traceback", logged[1])
  end)

  it("drops a flood over TCP as well, answering the 503 over the connection", function()
    local srv = server { listen = { "tcp:127.0.0.1:0" }, flood = { other = 3, reply_503 = true } }
    local port = srv:listener(0).port
    local c = tcp_from(FLOODER, port)
    for _ = 1, 8 do
      c:send(N.request { transport = "TCP", via_host = FLOODER })
    end
    local got = {}
    for _ = 1, 4 do
      local m = c:read_message(2)
      got[#got + 1] = m and N.parse(m).status
    end
    assert.same({ 200, 200, 200, 503 }, got)
    assert.is_nil((c:read_message(0.3)))
    assert.equal(5, srv:stats().flood_dropped)
    c.close()
  end)

  it("is off unless configured", function()
    local srv, l = server {}
    local p = peer(FLOODER)
    for _ = 1, 100 do
      p:send(register(FLOODER), l.port)
    end
    assert.equal(100, #answers(p, 100))
    assert.equal(0, srv:stats().flood_dropped)
    assert.is_nil(srv:flood_trust("10.0.0.0/8"))
  end)

  it("is turned on, changed and off with srv:set_flood (blocks kept across a change)", function()
    local srv, l = server {}
    assert.equal(srv, srv:set_flood { other = 2, block = 60000 })
    local p = peer(FLOODER)
    for _ = 1, 5 do
      p:send(options(FLOODER), l.port)
    end
    assert.equal(2, #answers(p, 2))
    srv:set_flood { other = 100, block = 60000 } -- a script reload, say
    p:send(options(FLOODER), l.port)
    N.pump_for(0.2)
    assert.equal(2, p.poll())
    assert.equal(1, #srv:flood_blocked())
    srv:set_flood(false)
    p:send(options(FLOODER), l.port)
    assert.equal(3, #answers(p, 3))
    assert.equal(0, #srv:flood_blocked())
  end)

  it("refuses bad options", function()
    assert.has_error(function()
      N.server { flood = { invite = -1 } }
    end)
    assert.has_error(function()
      N.server { flood = { trusted = { "nonsense" } } }
    end)
    assert.has_error(function()
      N.server { flood = { on_block = 42 } }
    end)
  end)
end)

describe("connection slots", function()
  local conns
  before_each(function()
    conns = {}
  end)
  after_each(function()
    for _, c in ipairs(conns) do
      c.close()
    end
    N.cleanup()
  end)
  local function connect(src, port)
    local c = tcp_from(src, port)
    conns[#conns + 1] = c
    return c
  end

  -- issue [edge]: max_connections idle connections kept open with CRLF
  -- keep-alives locked out every new caller (accepted and closed at once)
  it("a full table of idle connections with keep-alives does not lock out a new caller", function()
    local srv = server { listen = { "tcp:127.0.0.1:0" }, max_connections = 8 }
    local port = srv:listener(0).port
    local idle = {}
    for i = 1, 8 do
      idle[i] = connect(FLOODER, port)
    end
    assert.is_truthy(N.pump_until(function()
      return srv:stats().connections == 8
    end, 2))
    for _ = 1, 3 do
      for i = 1, 8 do
        if not idle[i].closed then
          idle[i]:send("\r\n\r\n")
        end
      end
      N.pump_for(0.05)
    end
    local caller = connect(V4, port)
    caller:send(N.request { transport = "TCP" })
    local m = caller:read_message(2)
    assert.is_truthy(m, "the new caller got no answer")
    assert.equal(200, N.parse(m).status)
    local st = srv:stats()
    assert.equal(1, st.conn_evicted)
    assert.equal(0, st.conn_refused)
    assert.equal(8, st.connections)
    -- the oldest idle connection made room
    assert.is_truthy(idle[1]:wait_closed(2))
  end)

  it("evicts the connection whose last message is oldest, keep-alives aside, and a kept flow last", function()
    local srv, _, _ = server { listen = { "tcp:127.0.0.1:0" }, max_connections = 3 }
    local ids = {}
    srv:on_request(function(req)
      ids[#ids + 1] = req:source().conn_id
      req:reply(200)
    end)
    local port = srv:listener(0).port
    local a = connect(FLOODER, port)
    a:send(N.request { transport = "TCP", via_host = FLOODER })
    assert.is_truthy(a:read_message(2))
    assert.is_true(srv:keep_flow(ids[1]))
    local b = connect(FLOODER, port)
    N.pump_for(0.02)
    local c = connect(FLOODER, port)
    N.pump_for(0.02)
    c:send(N.request { transport = "TCP", via_host = FLOODER })
    assert.is_truthy(c:read_message(2))
    b:send("\r\n\r\n") -- a keep-alive is no message
    N.pump_for(0.05)
    local d = connect(V4, port)
    d:send(N.request { transport = "TCP" })
    assert.is_truthy(d:read_message(2))
    assert.is_truthy(b:wait_closed(2))
    a:send(N.request { transport = "TCP", via_host = FLOODER })
    assert.is_truthy(a:read_message(2), "the kept flow was evicted")
    c:send(N.request { transport = "TCP", via_host = FLOODER })
    assert.is_truthy(c:read_message(2))
    assert.equal(1, srv:stats().conn_evicted)
    assert.is_nil(srv:keep_flow(999999))
  end)

  it("limits the connections of one source", function()
    local srv = server { listen = { "tcp:127.0.0.1:0" }, max_conn_per_source = 3 }
    local port = srv:listener(0).port
    local c = {}
    for i = 1, 3 do
      c[i] = connect(FLOODER, port)
    end
    assert.is_truthy(N.pump_until(function()
      return srv:stats().connections == 3
    end, 2))
    local fourth = connect(FLOODER, port)
    assert.is_truthy(fourth:wait_closed(2))
    assert.equal(1, srv:stats().conn_refused_source)
    local other = connect(V4, port)
    other:send(N.request { transport = "TCP" })
    assert.is_truthy(other:read_message(2))
    c[1]:send(N.request { transport = "TCP", via_host = FLOODER })
    assert.is_truthy(c[1]:read_message(2))
  end)

  it("when slots are short, keep-alives alone do not hold a connection past idle_timeout", function()
    -- 4 of 4 slots taken is short (over 3/4): idle_timeout runs from the
    -- last message, until enough closed that slots are no longer short
    local srv = server { listen = { "tcp:127.0.0.1:0" }, max_connections = 4, idle_timeout = 300 }
    local port = srv:listener(0).port
    local c = {}
    for i = 1, 4 do
      c[i] = connect(FLOODER, port)
    end
    local function ping()
      local open = 0
      for i = 1, 4 do
        if not c[i].closed then
          c[i]:send("\r\n\r\n")
        end
        c[i].poll()
        open = open + (c[i].closed and 0 or 1)
      end
      socket.sleep(0.02)
      return open
    end
    assert.is_truthy(N.pump_until(function()
      return ping() < 4
    end, 3), "keep-alives held the connections open")
    local deadline = socket.gettime() + 0.6
    N.pump_until(function()
      ping()
      return socket.gettime() > deadline
    end, 2)
    local st = srv:stats()
    assert.equal(1, st.conn_timeouts)
    assert.equal(3, st.connections)
  end)

  it("with slots to spare, keep-alives still hold an idle connection open", function()
    local srv = server { listen = { "tcp:127.0.0.1:0" }, max_connections = 100, idle_timeout = 200 }
    local port = srv:listener(0).port
    local c = connect(FLOODER, port)
    local deadline = socket.gettime() + 0.8
    N.pump_until(function()
      c:send("\r\n\r\n")
      c.poll()
      socket.sleep(0.02)
      return c.closed or socket.gettime() > deadline
    end, 2)
    assert.is_nil(c.closed)
    assert.equal(0, srv:stats().conn_timeouts)
  end)
end)
