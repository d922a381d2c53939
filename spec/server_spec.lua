-- luasip.server over real sockets on the loopback interface: UDP and TCP on
-- IPv4 and IPv6, §18.2.1 / RFC 3581 Via handling and §18.2.2 response
-- routing, TCP framing, keep-alives, timeouts and limits, the sanity checks
-- and their exact statuses, script faults, req:source() and srv:stats().
local here = debug.getinfo(1, "S").source:gsub("^@", ""):match("^(.*)/[^/]*$") or "."
local N = dofile(here .. "/support/net.lua")
local log = require "luasip.log"
local sip = require "luasip"
local socket = require "socket"

local V4, V6 = N.V4, N.V6

local families = { { name = "IPv4", host = V4, spec = "127.0.0.1" } }
if N.have_ipv6() then
  families[#families + 1] = { name = "IPv6", host = V6, spec = "[::1]" }
else
  pending("IPv6 tests: no ::1 on this host")
end

local function ok200(req)
  req:reply(200)
end

-- Capture log lines for the duration of a test.
local function capture_log()
  local lines = {}
  log.configure { sink = function(line)
    lines[#lines + 1] = line
  end }
  finally(function()
    log.configure { sink = function(line)
      io.stderr:write(line, "\n")
    end }
  end)
  return lines
end

-- A UDP server answering 200 to everything (unless handler is given) and
-- a UDP peer on the same family.
local function udp_setup(fam, opts, handler)
  opts = opts or {}
  opts.listen = { "udp:" .. fam.spec .. ":0" }
  local srv, l = N.server(opts)
  if handler ~= false then
    srv:on_request(handler or ok200)
  end
  return srv, l, N.udp(fam.host)
end

-- Send a good request and expect its 200 as the very next datagram: proves
-- that whatever was sent before it got no answer.
local function expect_next_is_ok(u, l)
  local bytes, cid = N.request { rport = true, via_host = u.host }
  u:send(bytes, l.host, l.port)
  local d = assert(u:recv(2), "no answer to the follow-up request")
  local r = N.parse(d)
  assert.are.equal(cid, r:get("Call-ID"))
  assert.are.equal(200, r.status)
  assert.are.equal(0, u:pending())
end

------------------------------------------------------------------------------
-- UDP
------------------------------------------------------------------------------

for _, fam in ipairs(families) do
  describe("UDP over " .. fam.name, function()
    after_each(N.cleanup)

    it("answers 200 with received/rport, a To tag, the request's fields, headers and body", function()
      local srv, l, u = udp_setup(fam, nil, function(req)
        req:reply(200, nil, { { "Content-Type", "text/plain" }, { "X-Extra", "1" }, { "X-Extra", "2" } },
          "hello\r\nworld")
      end)
      assert.are.equal("UDP", l.transport)
      assert.are.equal(fam.host, l.host)
      local from = '"Alice" <sip:alice@127.0.0.1>;tag=a1b2'
      local bytes, cid, branch = N.request {
        via_host = "ua.invalid", via_port = 5062, rport = true, from = from, cseq = 7,
      }
      u:send(bytes, l.host, l.port)
      local d, ip, port = u:recv(2)
      assert.is_not_nil(d, "no response")
      assert.are.equal(fam.host, ip)
      assert.are.equal(l.port, port)
      local r = N.parse(d)
      local tag = r:to_tag()
      assert.is_truthy(tag and tag:match("^[%w%-%.!%%%*_%+`'~]+$"), "To tag is a token")
      assert.is_true(#tag >= 8, "To tag has at least 32 random bits")
      local expect = table.concat({
        "SIP/2.0 200 OK",
        string.format("Via: SIP/2.0/UDP ua.invalid:5062;branch=%s;rport=%d;received=%s", branch, u.port, fam.host),
        "From: " .. from,
        "To: Bob <sip:bob@127.0.0.1>;tag=" .. tag,
        "Call-ID: " .. cid,
        "CSeq: 7 OPTIONS",
        "Server: " .. require("luasip.server").product(),
        "Content-Type: text/plain",
        "X-Extra: 1",
        "X-Extra: 2",
        "Content-Length: 12",
        "",
        "hello\r\nworld",
      }, "\r\n")
      assert.are.equal(expect, d)
      local st = N.wait_stat(srv, "tx_msgs", 1)
      assert.are.equal(1, st.rx_msgs)
      assert.are.equal(1, st.tx_msgs)
      assert.are.equal(#bytes, st.rx_bytes)
      assert.are.equal(#d, st.tx_bytes)
    end)

    it("writes map headers in name order", function()
      local _, l, u = udp_setup(fam, nil, function(req)
        req:reply(404, "Nobody Here", { Supported = "path", Allow = { "INVITE, ACK", "OPTIONS" } })
      end)
      u:send((N.request { rport = true, via_host = fam.host }), l.host, l.port)
      local r = N.parse(assert(u:recv(2)))
      assert.are.equal("SIP/2.0 404 Nobody Here", r.start)
      assert.are.same({ "INVITE, ACK", "OPTIONS" }, r:all("Allow"))
      local names = {}
      for _, h in ipairs(r.headers) do
        names[#names + 1] = h[1]
      end
      assert.are.same({ "Via", "From", "To", "Call-ID", "CSeq", "Server", "Allow", "Allow", "Supported",
        "Content-Length" }, names)
      assert.are.equal("0", r:get("Content-Length"))
      assert.are.equal("", r.body)
    end)

    it("fills rport and adds received even when the sent-by is the source (RFC 3581 §4)", function()
      local _, l, u = udp_setup(fam)
      local bytes, _, branch = N.request { via_host = fam.host, via_port = u.port, rport = true }
      u:send(bytes, l.host, l.port)
      local r = N.parse(assert(u:recv(2)))
      local sent_by = fam.host:find(":") and ("[" .. fam.host .. "]") or fam.host
      assert.are.equal(string.format("SIP/2.0/UDP %s:%d;branch=%s;rport=%d;received=%s", sent_by, u.port, branch,
        u.port, fam.host), r:get("Via"))
    end)

    it("adds no received and no rport when the sent-by is the source and has no rport (§18.2.1)", function()
      local _, l, u = udp_setup(fam)
      local bytes, _, branch = N.request { via_host = fam.host, via_port = u.port }
      u:send(bytes, l.host, l.port)
      local r = N.parse(assert(u:recv(2)))
      local sent_by = fam.host:find(":") and ("[" .. fam.host .. "]") or fam.host
      assert.are.equal(string.format("SIP/2.0/UDP %s:%d;branch=%s", sent_by, u.port, branch), r:get("Via"))
    end)

    it("sends the response to the source port when the Via has rport, not to the sent-by port", function()
      local _, l, u = udp_setup(fam)
      local other = N.udp(fam.host)
      local bytes, cid = N.request { via_host = fam.host, via_port = other.port, rport = true }
      u:send(bytes, l.host, l.port)
      local d = assert(u:recv(2), "no response at the rport port")
      assert.are.equal(cid, N.parse(d):get("Call-ID"))
      N.pump_for(0.03)
      assert.are.equal(0, other:pending(), "a copy went to the sent-by port")
    end)

    it("sends the response to the sent-by port when the Via has no rport", function()
      local _, l, u = udp_setup(fam)
      local other = N.udp(fam.host)
      local bytes, cid, branch = N.request { via_host = fam.host, via_port = other.port }
      u:send(bytes, l.host, l.port)
      local d, ip, port = other:recv(2)
      assert.is_not_nil(d, "no response at the sent-by port")
      assert.are.equal(fam.host, ip)
      assert.are.equal(l.port, port, "the response leaves from the listener's port")
      local r = N.parse(d)
      assert.are.equal(cid, r:get("Call-ID"))
      assert.is_nil(r:get("Via"):find("received", 1, true))
      assert.is_truthy(r:get("Via"):find("branch=" .. branch, 1, true))
      N.pump_for(0.03)
      assert.are.equal(0, u:pending(), "the response went back to the source port")
    end)

    it("sends to received and the sent-by port when the sent-by is a name and has no rport", function()
      local _, l, u = udp_setup(fam)
      local other = N.udp(fam.host)
      local bytes, _, branch = N.request { via_host = "ua.invalid", via_port = other.port }
      u:send(bytes, l.host, l.port)
      local d = assert(other:recv(2), "no response at received:sent-by port")
      assert.are.equal(string.format("SIP/2.0/UDP ua.invalid:%d;branch=%s;received=%s", other.port, branch, fam.host),
        N.parse(d):get("Via"))
      N.pump_for(0.03)
      assert.are.equal(0, u:pending())
    end)

    it("gives req:source() the transport, the peer and the listener", function()
      local src, transport
      local _, l, u = udp_setup(fam, nil, function(req)
        src, transport = req:source(), req:transport()
        req:reply(200)
      end)
      u:send((N.request { rport = true }), l.host, l.port)
      assert.is_not_nil(u:recv(2))
      assert.are.same({
        transport = "UDP", host = fam.host, port = u.port, local_host = fam.host, local_port = l.port,
      }, src)
      assert.are.equal("UDP", transport)
    end)

    it("reuses a finished handler's coroutine; a late wake-up of it changes nothing", function()
      local lines = capture_log()
      local cos = {}
      local _, l, u = udp_setup(fam, nil, function(req)
        cos[#cos + 1] = coroutine.running()
        req:reply(200, "handler " .. #cos)
      end)
      u:send((N.request { rport = true }), l.host, l.port)
      assert.truthy(assert(u:recv(2)):find("200 handler 1", 1, true))
      -- a wake-up meant for the first handler, which has returned
      require("luasip.server").resume(cos[1], "late", "values")
      u:send((N.request { rport = true, call_id = "second" }), l.host, l.port)
      assert.truthy(assert(u:recv(2)):find("200 handler 2", 1, true))
      assert.equal(cos[1], cos[2])
      assert.same({}, lines)
    end)

    it("does not reuse the coroutine of a handler that raised", function()
      local lines = capture_log()
      local cos = {}
      local _, l, u = udp_setup(fam, nil, function(req)
        cos[#cos + 1] = coroutine.running()
        if #cos == 1 then
          error("first handler fails")
        end
        req:reply(200)
      end)
      u:send((N.request { rport = true }), l.host, l.port)
      assert.truthy(assert(u:recv(2)):find("SIP/2.0 500", 1, true))
      u:send((N.request { rport = true, call_id = "second" }), l.host, l.port)
      assert.truthy(assert(u:recv(2)):find("SIP/2.0 200", 1, true))
      assert.are_not.equal(cos[1], cos[2])
      assert.equal("dead", coroutine.status(cos[1]))
      assert.truthy(table.concat(lines, "\n"):find("first handler fails", 1, true))
    end)

    it("gives a received request its own metatable (luasip.Request) with Message's methods", function()
      local seen
      local _, l, u = udp_setup(fam, nil, function(req)
        seen = {
          name = getmetatable(req).__name, reply = type(req.reply), source = type(req.source),
          relay = type(req._relay), header = type(req.header), validate = type(req.validate),
        }
        req:reply(200)
      end)
      u:send((N.request { rport = true }), l.host, l.port)
      assert.is_not_nil(u:recv(2))
      assert.are.same({ name = "luasip.Request", reply = "function", source = "function",
        relay = "function", header = "function", validate = "function" }, seen)
      -- a parsed message is a luasip.Message with none of them
      local msg = assert(sip.parse((N.request { rport = true })))
      assert.are.equal("luasip.Message", getmetatable(msg).__name)
      for _, name in ipairs { "reply", "answered", "drop", "handled", "is_cancelled", "source", "transport", "_relay",
        "forward", "finish", "record_route", "loose_route", "is_initial" } do
        assert.is_nil(msg[name], name)
      end
      assert.are.equal("function", type(msg.header))
    end)
    it("ignores a CRLF keep-alive datagram and counts it", function()
      local srv, l, u = udp_setup(fam)
      u:send("\r\n\r\n", l.host, l.port)
      local st = N.wait_stat(srv, "keepalives", 1)
      assert.are.equal(1, st.keepalives)
      expect_next_is_ok(u, l)
      st = srv:stats()
      assert.are.equal(1, st.rx_msgs)
      assert.are.equal(0, st.parse_errors)
    end)
  end)
end

------------------------------------------------------------------------------
-- TCP
------------------------------------------------------------------------------

-- A TCP server that answers 200 to every request and records the requests'
-- sources; a connected peer with TCP_NODELAY.
local function tcp_setup(fam, opts, handler)
  opts = opts or {}
  opts.listen = { "tcp:" .. fam.spec .. ":0" }
  local srv, l = N.server(opts)
  local seen = {}
  srv:on_request(handler or function(req)
    seen[#seen + 1] = { cseq = req.cseq, src = req:source() }
    req:reply(200)
  end)
  local p = assert(N.tcp(fam.host, l.port))
  assert(p:setoption("tcp-nodelay", true))
  return srv, l, p, seen
end

local function message_with_body(cseq)
  return (N.request {
    method = "MESSAGE", transport = "TCP", cseq = cseq, call_id = "split-" .. cseq,
    content_type = "text/plain", body = "Hello over TCP\r\n\r\nwith a blank line in the body " .. cseq,
  })
end

for _, fam in ipairs(families) do
  describe("TCP over " .. fam.name, function()
    after_each(N.cleanup)

    it("answers on the same connection with received and rport in the Via", function()
      local _, l, p, seen = tcp_setup(fam)
      assert.are.equal("TCP", l.transport)
      local bytes, cid, branch = N.request { transport = "TCP", via_host = "ua.invalid", via_port = 5062, rport = true }
      p:send(bytes)
      local r = N.parse(assert(p:read_message(2)))
      assert.are.equal(200, r.status)
      assert.are.equal(cid, r:get("Call-ID"))
      assert.are.equal(string.format("SIP/2.0/TCP ua.invalid:5062;branch=%s;rport=%d;received=%s", branch, p.port,
        fam.host), r:get("Via"))
      assert.are.equal(1, #seen)
      local src = seen[1].src
      assert.are.equal("TCP", src.transport)
      assert.are.equal(fam.host, src.host)
      assert.are.equal(p.port, src.port)
      assert.are.equal("integer", math.type(src.conn_id))
      assert.is_true(src.conn_id > 0)
      assert.is_nil(src.local_host)
      assert.are.equal("", p.buf, "nothing after the response")
    end)

    it("frames a message sent byte by byte", function()
      local srv, _, p, seen = tcp_setup(fam)
      local msg = message_with_body(1)
      local cuts = {}
      for i = 1, #msg - 1 do
        cuts[i] = i
      end
      p:send_split(msg, cuts)
      local r = N.parse(assert(p:read_message(2)))
      assert.are.equal("1 MESSAGE", r:get("CSeq"))
      -- exactly one answer: the next thing on the stream is the answer to
      -- the next request
      p:send(message_with_body(2))
      r = N.parse(assert(p:read_message(2)))
      assert.are.equal("2 MESSAGE", r:get("CSeq"))
      assert.are.equal(2, #seen)
      assert.are.equal(2, srv:stats().rx_msgs)
      assert.are.equal(0, srv:stats().parse_errors)
    end)

    it("frames messages cut at random offsets (TCP_NODELAY)", function()
      local seed = os.time()
      math.randomseed(seed)
      local _, _, p, seen = tcp_setup(fam)
      local parts = {}
      for k = 1, 8 do
        parts[k] = message_with_body(k)
      end
      local stream = table.concat(parts)
      local cuts, pos = {}, 0
      while true do
        pos = pos + math.random(1, 60)
        if pos >= #stream then
          break
        end
        cuts[#cuts + 1] = pos
      end
      p:send_split(stream, cuts)
      for k = 1, 8 do
        local m = p:read_message(2)
        assert.is_not_nil(m, "answer " .. k .. " missing (seed " .. seed .. ")")
        assert.are.equal(k .. " MESSAGE", N.parse(m):get("CSeq"), "seed " .. seed)
      end
      assert.are.equal(8, #seen, "seed " .. seed)
      p:poll()
      assert.are.equal("", p.buf, "seed " .. seed)
    end)

    it("frames a message cut in two at every offset", function()
      local srv, _, p = tcp_setup(fam)
      local msg = message_with_body(0)
      for k = 1, #msg - 1 do
        local m = msg:gsub("CSeq: 0 MESSAGE", "CSeq: " .. k .. " MESSAGE")
        local at = k <= #m - 1 and k or #m - 1
        p:send_split(m, { at })
        local r = p:read_message(2)
        assert.is_not_nil(r, "no answer with the cut after byte " .. k)
        assert.are.equal(k .. " MESSAGE", N.parse(r):get("CSeq"))
      end
      local st = srv:stats()
      assert.are.equal(#msg - 1, st.rx_msgs)
      assert.are.equal(1, st.conn_opened)
    end)

    it("answers 20 requests pipelined in one segment, in order", function()
      local srv, _, p = tcp_setup(fam)
      local t = {}
      for k = 1, 20 do
        t[k] = (N.request { transport = "TCP", cseq = k, call_id = "pipe" })
      end
      p:send(table.concat(t))
      for k = 1, 20 do
        local m = p:read_message(2)
        assert.is_not_nil(m, "answer " .. k .. " missing")
        local r = N.parse(m)
        assert.are.equal(200, r.status)
        assert.are.equal(k .. " OPTIONS", r:get("CSeq"))
      end
      p:poll()
      assert.are.equal("", p.buf)
      local st = N.wait_stat(srv, "tx_msgs", 20)
      assert.are.equal(20, st.rx_msgs)
      assert.are.equal(20, st.tx_msgs)
    end)

    it("reuses one connection for several requests", function()
      local srv, _, p, seen = tcp_setup(fam)
      for k = 1, 5 do
        p:send((N.request { transport = "TCP", cseq = k }))
        local r = N.parse(assert(p:read_message(2)))
        assert.are.equal(k .. " OPTIONS", r:get("CSeq"))
      end
      assert.are.equal(5, #seen)
      for k = 2, 5 do
        assert.are.equal(seen[1].src.conn_id, seen[k].src.conn_id)
      end
      local st = srv:stats()
      assert.are.equal(1, st.conn_opened)
      assert.are.equal(1, st.connections)
      assert.are.equal(0, st.conn_closed)
    end)
  end)
end

describe("TCP connection management", function()
  after_each(N.cleanup)
  local fam = families[1]

  it("answers a CRLFCRLF ping with one CRLF and ignores a single CRLF (RFC 5626 §3.5.1)", function()
    local srv, _, p = tcp_setup(fam)
    p:send("\r\n\r\n")
    assert.are.equal("\r\n", p:read_bytes(2, 2))
    local st = srv:stats()
    assert.are.equal(1, st.keepalives)
    -- a lone CRLF before a request gets no pong
    p:send("\r\n" .. (N.request { transport = "TCP", cseq = 9 }))
    local m = assert(p:read_message(2))
    assert.are.equal("SIP/2.0 200 OK\r\n", m:sub(1, 16), "no extra CRLF before the response")
    assert.are.equal("9 OPTIONS", N.parse(m):get("CSeq"))
    assert.are.equal(1, srv:stats().keepalives)
    assert.are.equal(1, srv:stats().connections)
  end)

  it("closes an idle connection after idle_timeout", function()
    local srv, _, p = tcp_setup(fam, { idle_timeout = 200 })
    p:send((N.request { transport = "TCP" }))
    assert.is_not_nil(p:read_message(2))
    local t0 = socket.gettime()
    local why = p:wait_closed(3)
    local dt = socket.gettime() - t0
    assert.is_not_nil(why, "the server did not close the idle connection")
    assert.is_true(dt >= 0.15, "closed too early: " .. dt)
    assert.is_true(dt < 2, "closed too late: " .. dt)
    local st = N.wait_stat(srv, "conn_closed", 1)
    assert.are.equal(1, st.conn_timeouts)
    assert.are.equal(1, st.conn_closed)
    assert.are.equal(0, st.connections)
  end)

  it("closes a connection that stops in the middle of a message after partial_timeout", function()
    local srv, _, p = tcp_setup(fam, { partial_timeout = 200 })
    local msg = message_with_body(1)
    p:send(msg:sub(1, math.floor(#msg / 2)))
    local t0 = socket.gettime()
    local why = p:wait_closed(3)
    local dt = socket.gettime() - t0
    assert.is_not_nil(why, "the server did not close the connection")
    assert.is_true(dt >= 0.15, "closed too early: " .. dt)
    assert.is_true(dt < 2, "closed too late: " .. dt)
    assert.are.equal("", p.buf, "no answer to half a message")
    local st = srv:stats()
    assert.are.equal(1, st.conn_timeouts)
    assert.are.equal(0, st.rx_msgs)
    assert.are.equal(0, st.connections)
  end)

  it("beyond max_connections, evicts the least recently useful connection for a newcomer", function()
    local srv, l, p1 = tcp_setup(fam, { max_connections = 2 })
    local p2 = assert(N.tcp(fam.host, l.port))
    local st = N.wait_stat(srv, "connections", 2)
    assert.are.equal(2, st.connections)
    p2:send((N.request { transport = "TCP", cseq = 2 })) -- p1 is now the least useful
    assert.is_not_nil(p2:read_message(2))
    local p3 = assert(N.tcp(fam.host, l.port))
    assert.is_not_nil(p1:wait_closed(2), "the idle connection was not evicted")
    st = N.wait_stat(srv, "conn_evicted", 1)
    assert.are.equal(1, st.conn_evicted)
    assert.are.equal(0, st.conn_refused)
    assert.are.equal(2, st.connections)
    assert.are.equal(3, st.conn_opened)
    for k, p in ipairs { p2, p3 } do
      p:send((N.request { transport = "TCP", cseq = k + 2 }))
      local r = N.parse(assert(p:read_message(2)))
      assert.are.equal((k + 2) .. " OPTIONS", r:get("CSeq"))
    end
  end)

  it("answers 513 to a message whose Content-Length exceeds max_size, then closes", function()
    local srv, _, p, seen = tcp_setup(fam, { max_size = 1024 })
    local bytes, cid = N.request { transport = "TCP", body = string.rep("x", 2000) }
    p:send(bytes)
    local r = N.parse(assert(p:read_message(2)))
    assert.are.equal("SIP/2.0 513 Message Too Large", r.start)
    assert.are.equal(cid, r:get("Call-ID"))
    assert.is_not_nil(p:wait_closed(2))
    assert.are.equal(0, #seen)
    local st = srv:stats()
    assert.are.equal(1, st.parse_errors)
    assert.are.equal(1, st.bad_answered)
  end)

  it("closes a connection whose header section exceeds max_size and cannot be answered", function()
    -- the oversized header comes before Call-ID and CSeq: nothing to answer
    local srv, _, p, seen = tcp_setup(fam, { max_size = 1024 })
    local bytes = N.request {
      transport = "TCP", omit = { ["Call-ID"] = true, CSeq = true },
      headers = { "X-Big: " .. string.rep("y", 2000), "Call-ID: big", "CSeq: 1 OPTIONS" },
    }
    p:send(bytes)
    local why = p:wait_closed(2)
    assert.is_not_nil(why)
    assert.are.equal("", p.buf)
    assert.are.equal(0, #seen)
    local st = srv:stats()
    assert.are.equal(1, st.parse_errors)
    assert.are.equal(1, st.dropped)
    assert.are.equal(0, st.connections)
  end)
end)

------------------------------------------------------------------------------
-- Limits over UDP
------------------------------------------------------------------------------

describe("UDP max_size", function()
  after_each(N.cleanup)
  local fam = families[1]

  it("answers 513 to a datagram whose body exceeds max_size", function()
    local srv, l, u = udp_setup(fam, { max_size = 1024 })
    local bytes, cid = N.request { rport = true, body = string.rep("x", 2000) }
    u:send(bytes, l.host, l.port)
    local r = N.parse(assert(u:recv(2)))
    assert.are.equal("SIP/2.0 513 Message Too Large", r.start)
    assert.are.equal(cid, r:get("Call-ID"))
    assert.are.equal(1, srv:stats().bad_answered)
  end)

  it("answers 513 to an oversized header after Content-Length", function()
    local _, l, u = udp_setup(fam, { max_size = 1024 })
    local bytes, cid = N.request { rport = true, after = { "X-Big: " .. string.rep("y", 2000) } }
    u:send(bytes, l.host, l.port)
    local r = N.parse(assert(u:recv(2)))
    assert.are.equal("SIP/2.0 513 Message Too Large", r.start)
    assert.are.equal(cid, r:get("Call-ID"))
  end)

  -- Fails today: the parser indexes a header field only when it finds the
  -- end of the next line (to see folds), so when the size limit cuts the
  -- line after CSeq, CSeq is not in the partial parse, the transport finds
  -- the request unanswerable and drops it (see the report).
  it("answers 513 to an oversized header that follows CSeq directly", function()
    local srv, l, u = udp_setup(fam, { max_size = 1024 })
    local bytes, cid = N.request { rport = true, headers = { "X-Big: " .. string.rep("y", 2000) } }
    u:send(bytes, l.host, l.port)
    local d = u:recv(0.5)
    local st = srv:stats()
    assert.are.equal(1, st.parse_errors)
    assert.is_not_nil(d, "dropped instead of answered (dropped = " .. st.dropped .. ")")
    local r = N.parse(d)
    assert.are.equal("SIP/2.0 513 Message Too Large", r.start)
    assert.are.equal(cid, r:get("Call-ID"))
  end)
end)

------------------------------------------------------------------------------
-- Sanity checks (csrc/parse/sip_sanity.h)
------------------------------------------------------------------------------

describe("sanity checks over UDP", function()
  after_each(N.cleanup)
  local fam = families[1]

  -- Send t (a N.request table) to a server with opts; returns the parsed
  -- answer, the server's stats and what the handler saw.
  local function exchange(t, opts)
    local seen = {}
    local srv, l, u = udp_setup(fam, opts, function(req)
      seen[#seen + 1] = req.method
      req:reply(200)
    end)
    t.rport = true
    local bytes, cid = N.request(t)
    u:send(bytes, l.host, l.port)
    local d = assert(u:recv(2), "no answer")
    local r = N.parse(d)
    if not (t.omit and t.omit["Call-ID"]) then
      assert.are.equal(cid, r:get("Call-ID"))
    end
    N.wait_stat(srv, "tx_msgs", 1)
    return r, srv:stats(), seen, u, l
  end

  local cases = {
    { "SIP/3.0", { version = "SIP/3.0" }, 505, "Version Not Supported", "rejected_505" },
    { "a missing Call-ID", { omit = { ["Call-ID"] = true } }, 400, "Bad Request (missing Call-ID)", "rejected_400" },
    { "a duplicated CSeq", { headers = { "CSeq: 2 OPTIONS" } }, 400, "Bad Request (duplicate CSeq)", "rejected_400" },
    { "a CSeq method that does not match", { cseq_method = "INVITE" }, 400,
      "Bad Request (CSeq method does not match)", "rejected_400" },
    { "Max-Forwards above 255", { max_forwards = 300 }, 400, "Bad Request (Max-Forwards above 255)", "rejected_400" },
    { "an http: Request-URI", { uri = "http://example.com/" }, 416, "Unsupported URI Scheme", "rejected_416" },
    { "Require: foo", { headers = { "Require: foo" } }, 420, "Bad Extension", "rejected_420" },
  }
  for _, c in ipairs(cases) do
    local what, t, status, reason, slot = c[1], c[2], c[3], c[4], c[5]
    it("answers " .. what .. " with " .. status .. " " .. reason, function()
      local r, st, seen = exchange(t)
      assert.are.equal("SIP/2.0 " .. status .. " " .. reason, r.start)
      assert.is_truthy(r:to_tag(), "To tag")
      assert.are.same({}, seen, "the handler saw it")
      assert.are.equal(1, st.rejected)
      assert.are.equal(1, st[slot])
      assert.are.equal(1, st.requests)
      assert.are.equal(1, st.replies)
      assert.are.equal(0, st.bad_answered)
    end)
  end

  it("answers a request without From and To with a 400 that names both", function()
    local r, st = exchange { omit = { From = true, To = true } }
    assert.are.equal("SIP/2.0 400 Bad Request (missing From, To)", r.start)
    assert.is_nil(r:get("From"))
    assert.is_nil(r:get("To"))
    assert.are.equal(1, st.rejected_400)
  end)

  it("answers 420 with Unsupported naming the extension", function()
    local r = exchange { headers = { "Require: foo" } }
    assert.are.equal("SIP/2.0 420 Bad Extension", r.start)
    assert.are.equal("foo", r:get("Unsupported"))
    r = exchange { headers = { "Require: foo, 100rel", "Require: FOO" } }
    assert.are.equal("foo, 100rel", r:get("Unsupported"))
  end)

  it("answers a Content-Length larger than the datagram's body with 400 (parse error path)", function()
    local r, st, seen = exchange { body = "abc", content_length = 10 }
    assert.are.equal("SIP/2.0 400 Bad Request (Content-Length larger than body)", r.start)
    assert.are.same({}, seen)
    assert.are.equal(1, st.parse_errors)
    assert.are.equal(1, st.bad_answered)
    assert.are.equal(0, st.rx_msgs)
    assert.are.equal(0, st.rejected)
  end)

  it("lets Require: foo through with sanity.supported = {\"foo\"}", function()
    local r, st, seen = exchange({ headers = { "Require: foo" } }, { sanity = { supported = { "foo" } } })
    assert.are.equal(200, r.status)
    assert.are.same({ "OPTIONS" }, seen)
    assert.are.equal(0, st.rejected)
  end)

  it("lets an http: Request-URI through with sanity.scheme = false", function()
    local r, st, seen = exchange({ uri = "http://example.com/" }, { sanity = { scheme = false } })
    assert.are.equal(200, r.status)
    assert.are.same({ "OPTIONS" }, seen)
    assert.are.equal(0, st.rejected)
    -- the other checks are still on
    local r2 = exchange({ uri = "http://example.com/", cseq_method = "INVITE" }, { sanity = { scheme = false } })
    assert.are.equal("SIP/2.0 400 Bad Request (CSeq method does not match)", r2.start)
  end)

  it("accepts other schemes with sanity.schemes", function()
    local r = exchange({ uri = "http://example.com/" }, { sanity = { schemes = { "sip", "http" } } })
    assert.are.equal(200, r.status)
    r = exchange({}, { sanity = { schemes = { "tel" } } })
    assert.are.equal("SIP/2.0 416 Unsupported URI Scheme", r.start)
  end)

  it("turns every check off with sanity = false", function()
    for _, t in ipairs {
      { version = "SIP/3.0" }, { omit = { ["Call-ID"] = true } }, { headers = { "CSeq: 2 OPTIONS" } },
      { cseq_method = "INVITE" }, { uri = "http://example.com/" }, { headers = { "Require: foo" } },
    } do
      local r, st, seen = exchange(t, { sanity = false })
      assert.are.equal(200, r.status)
      assert.are.equal(1, #seen)
      assert.are.equal(0, st.rejected)
      N.cleanup()
    end
  end)

  it("drops a broken ACK silently and counts it", function()
    local seen = {}
    local srv, l, u = udp_setup(fam, nil, function(req)
      seen[#seen + 1] = req.method
      req:reply(200)
    end)
    -- ACK whose CSeq names another method, and an ACK without Call-ID
    u:send((N.request { method = "ACK", cseq_method = "INVITE", rport = true }), l.host, l.port)
    u:send((N.request { method = "ACK", omit = { ["Call-ID"] = true }, rport = true }), l.host, l.port)
    expect_next_is_ok(u, l)
    local st = srv:stats()
    assert.are.equal(2, st.dropped_sanity)
    assert.are.equal(0, st.rejected)
    assert.are.same({ "OPTIONS" }, seen)
  end)

  it("drops a datagram that is not SIP, and counts it", function()
    local srv, l, u = udp_setup(fam)
    u:send("GET / HTTP/1.1\r\nHost: x\r\n\r\n", l.host, l.port)
    u:send("\0\1\2garbage", l.host, l.port)
    expect_next_is_ok(u, l)
    local st = srv:stats()
    assert.are.equal(2, st.parse_errors)
    assert.are.equal(2, st.dropped)
    assert.are.equal(1, st.rx_msgs)
  end)

  it("counts a response that reaches a server without a response handler", function()
    local srv, l, u = udp_setup(fam)
    u:send(table.concat({
      "SIP/2.0 200 OK",
      "Via: SIP/2.0/UDP 127.0.0.1:" .. l.port .. ";branch=z9hG4bKresp1",
      "From: <sip:a@127.0.0.1>;tag=1",
      "To: <sip:b@127.0.0.1>;tag=2",
      "Call-ID: resp1",
      "CSeq: 1 OPTIONS",
      "Content-Length: 0",
      "", "",
    }, "\r\n"), l.host, l.port)
    expect_next_is_ok(u, l)
    local st = srv:stats()
    assert.are.equal(1, st.responses)
    assert.are.equal(1, st.responses_dropped)
    assert.are.equal(2, st.rx_msgs)
  end)

  it("passes a response to the response handler", function()
    local got = {}
    local srv, l, u = udp_setup(fam)
    srv:on_response(function(res)
      got[#got + 1] = { res.status, res.call_id }
    end)
    u:send(table.concat({
      "SIP/2.0 486 Busy Here",
      "Via: SIP/2.0/UDP 127.0.0.1:" .. l.port .. ";branch=z9hG4bKresp2",
      "From: <sip:a@127.0.0.1>;tag=1",
      "To: <sip:b@127.0.0.1>;tag=2",
      "Call-ID: resp2",
      "CSeq: 1 OPTIONS",
      "Content-Length: 0",
      "", "",
    }, "\r\n"), l.host, l.port)
    expect_next_is_ok(u, l)
    assert.are.same({ { 486, "resp2" } }, got)
    assert.are.equal(0, srv:stats().responses_dropped)
  end)
end)

------------------------------------------------------------------------------
-- Script faults
------------------------------------------------------------------------------

describe("script faults", function()
  after_each(N.cleanup)
  local fam = families[1]

  local function ask(u, l, t)
    t = t or {}
    t.rport = true
    local bytes, cid = N.request(t)
    u:send(bytes, l.host, l.port)
    local d = u:recv(2)
    return d and N.parse(d), cid
  end

  it("answers 500 when the handler raises, logs the traceback, and keeps serving", function()
    local lines = capture_log()
    local n = 0
    local _, l, u = udp_setup(fam, nil, function(req)
      n = n + 1
      if n == 1 then
        error("handler-boom-4711")
      end
      req:reply(200)
    end)
    local r, cid = ask(u, l)
    assert.is_not_nil(r)
    assert.are.equal("SIP/2.0 500 Server Internal Error", r.start)
    assert.are.equal(cid, r:get("Call-ID"))
    r = ask(u, l)
    assert.are.equal(200, r.status)
    local text = table.concat(lines, "\n")
    assert.is_truthy(text:find("handler-boom-4711", 1, true), "error text in the log")
    assert.is_truthy(text:find("stack traceback", 1, true), "traceback in the log")
    assert.is_truthy(lines[1]:find(" error ", 1, true), "logged at error level")
  end)

  it("answers 500 with a reason when the handler returns without replying", function()
    local lines = capture_log()
    local _, l, u = udp_setup(fam, nil, function() end)
    local r = ask(u, l, { method = "INFO" })
    assert.are.equal("SIP/2.0 500 Server Internal Error (no reply from the script)", r.start)
    assert.are.equal("1 INFO", r:get("CSeq"))
    local text = table.concat(lines, "\n")
    assert.is_truthy(text:find("INFO handler returned without a final reply", 1, true))
  end)

  it("sends nothing after req:drop()", function()
    local dropped = 0
    local _, l, u = udp_setup(fam, nil, function(req)
      if req.method == "MESSAGE" then
        dropped = dropped + 1
        req:drop()
        assert(req:handled())
        return
      end
      req:reply(200)
    end)
    u:send((N.request { method = "MESSAGE", rport = true }), l.host, l.port)
    expect_next_is_ok(u, l)
    assert.are.equal(1, dropped)
  end)

  it("raises on a second final reply, and sends only the first", function()
    local err, answered
    local _, l, u = udp_setup(fam, nil, function(req)
      req:reply(486)
      answered = req:answered()
      local ok, e = pcall(req.reply, req, 200)
      err = not ok and e or "no error"
    end)
    local r = ask(u, l)
    assert.are.equal("SIP/2.0 486 Busy Here", r.start)
    assert.are.equal(486, answered)
    assert.is_truthy(tostring(err):find("already answered", 1, true), tostring(err))
    N.pump_for(0.03)
    assert.are.equal(0, u:pending(), "a second response was sent")
  end)

  it("sends a 180 and a 200 with the same To tag", function()
    local _, l, u = udp_setup(fam, nil, function(req)
      req:reply(180)
      req:reply(200, nil, nil, "ok")
    end)
    local bytes, cid = N.request { method = "INVITE", rport = true }
    u:send(bytes, l.host, l.port)
    local r1 = N.parse(assert(u:recv(2)))
    local r2 = N.parse(assert(u:recv(2)))
    assert.are.equal("SIP/2.0 180 Ringing", r1.start)
    assert.are.equal("SIP/2.0 200 OK", r2.start)
    assert.are.equal(cid, r1:get("Call-ID"))
    assert.are.equal(cid, r2:get("Call-ID"))
    assert.is_truthy(r1:to_tag())
    assert.are.equal(r1:to_tag(), r2:to_tag())
    assert.are.equal("ok", r2.body)
  end)

  it("a reply to an ACK sends nothing: nil, err, counted (ack_replies)", function()
    local res
    local seen = {}
    local srv, l, u = udp_setup(fam, nil, function(req)
      seen[#seen + 1] = req.method
      if req.method == "ACK" then
        res = table.pack(pcall(req.reply, req, 200))
        return
      end
      req:reply(200)
    end)
    u:send((N.request { method = "ACK", rport = true }), l.host, l.port)
    expect_next_is_ok(u, l)
    assert.are.same({ "ACK", "OPTIONS" }, seen)
    assert.is_true(res[1])
    assert.is_nil(res[2])
    assert.is_truthy(tostring(res[3]):find("an ACK is not answered", 1, true), tostring(res[3]))
    assert.are.equal(1, srv:stats().ack_replies)
  end)

  it("answers 503 when there is no request handler, and never answers an ACK", function()
    local srv, l, u = udp_setup(fam, nil, false)
    u:send((N.request { method = "ACK", rport = true }), l.host, l.port)
    local r = ask(u, l)
    assert.are.equal("SIP/2.0 503 Service Unavailable (no request handler)", r.start)
    N.pump_for(0.03)
    assert.are.equal(0, u:pending())
    assert.are.equal(2, srv:stats().requests)
  end)
end)

------------------------------------------------------------------------------
-- Stats
------------------------------------------------------------------------------

describe("server stats", function()
  after_each(N.cleanup)

  it("counts messages and bytes in both directions", function()
    local srv, l, u = udp_setup(families[1])
    local rx, tx = 0, 0
    for k = 1, 3 do
      local bytes = N.request { rport = true, cseq = k }
      rx = rx + #bytes
      u:send(bytes, l.host, l.port)
      tx = tx + #assert(u:recv(2))
    end
    local st = N.wait_stat(srv, "tx_msgs", 3)
    assert.are.equal(3, st.rx_msgs)
    assert.are.equal(3, st.tx_msgs)
    assert.are.equal(rx, st.rx_bytes)
    assert.are.equal(tx, st.tx_bytes)
    assert.are.equal(3, st.requests)
    assert.are.equal(3, st.replies)
    assert.are.equal(0, st.tx_errors)
    assert.are.equal(0, st.reply_errors)
  end)

  it("counts messages over TCP", function()
    local srv, _, p = tcp_setup(families[1])
    local rx, tx = 0, 0
    for k = 1, 3 do
      local bytes = N.request { transport = "TCP", cseq = k }
      rx = rx + #bytes
      p:send(bytes)
      tx = tx + #assert(p:read_message(2))
    end
    local st = N.wait_stat(srv, "tx_msgs", 3)
    assert.are.equal(3, st.rx_msgs)
    assert.are.equal(3, st.tx_msgs)
    assert.are.equal(rx, st.rx_bytes)
    assert.are.equal(tx, st.tx_bytes)
  end)
end)
