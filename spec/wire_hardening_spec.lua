-- Issue [wire]: hardening of the wire side, one regression per item.
--   4  a refused TLS certificate when luasip connects out: a warning with
--      the peer, the reason and the verification error, counted in
--      srv:stats() (the trace side is in csrc/transport/tests/tp_test.c)
--   6  control characters in header fields make a message invalid: 400
--      with a reason over the network, never a script
--  10  a handler that allocates without bound is stopped by the default
--      handler memory budget at once, while other requests are served
--  11  the resident size comes back near its baseline once 100,000
--      registrations have expired (the trim timer)
local N = require "spec.support.net"
local P = require "spec.support.proc"
local sip = require "luasip"
local socket = require "socket"

local V4 = N.V4

-- Every control character RFC 3261 allows nowhere in a header field.
local BAD = {}
for c = 0x00, 0x1f do
  if c ~= 0x09 and c ~= 0x0a and c ~= 0x0d then
    BAD[#BAD + 1] = string.char(c)
  end
end
BAD[#BAD + 1] = "\127"

local REASON = "Bad Request (control character in a header field)"

describe("control characters in header fields", function()
  after_each(N.cleanup)

  -- A server whose handler records what reaches it and answers 200.
  local function server(listen)
    local srv, l = N.server { listen = listen }
    local seen = {}
    srv:on_request(function(req)
      seen[#seen + 1] = req
      req:reply(200)
    end)
    return srv, l, seen
  end

  it("are refused by sip.parse with the code CTL", function()
    for _, c in ipairs(BAD) do
      local msg, err, code = sip.parse((N.request { headers = { "Subject: a" .. c .. "b" } }))
      assert.is_nil(msg)
      assert.equal("CTL", code)
      assert.matches("control character in a header field", err)
    end
    -- HTAB, and a quoted-pair in a quoted-string (RFC 4475 intmeth), stay valid
    assert.is_truthy(sip.parse((N.request { headers = { "Subject: a\tb" } })))
    local msg = assert(sip.parse((N.request { to = '"N\\\0L" <sip:bob@127.0.0.1>' })))
    assert.equal("sip:bob@127.0.0.1", tostring(msg.to.uri))
  end)

  it("get 400 with a reason over UDP, every byte, and never reach the handler", function()
    local srv, l, seen = server()
    local u = N.udp()
    for i, c in ipairs(BAD) do
      local bytes, cid = N.request { rport = true, headers = { "Subject: a" .. c .. "b", "X-Other: x" } }
      u:send(bytes, V4, l.port)
      local r = N.parse(assert(u:recv(2), "no answer for byte " .. i))
      assert.equal("SIP/2.0 400 " .. REASON, r.start)
      assert.equal(cid, r:get("Call-ID"))
    end
    -- a good request after them is served: the handler saw only that one
    u:send((N.request { rport = true }), V4, l.port)
    assert.equal(200, N.parse(assert(u:recv(2))).status)
    assert.equal(1, #seen)
    local st = srv:stats()
    assert.equal(#BAD, st.parse_errors)
    assert.equal(#BAD, st.bad_answered)
  end)

  it("in a header the response would copy: no answer, counted, nothing reaches the handler", function()
    local srv, l, seen = server()
    local u = N.udp()
    for _, t in ipairs {
      { from = "<sip:alice@127.0.0.1>;tag=a\0b" },
      { to = "<sip:bob@127.0.0.1>\1" },
      { call_id = "cid\127x" },
      { via = "SIP/2.0/UDP 127.0.0.1;branch=z9hG4bK\27x;rport" },
    } do
      t.rport = true
      u:send((N.request(t)), V4, l.port)
    end
    u:send((N.request { rport = true }), V4, l.port)
    -- the only answer is the good request's 200
    assert.equal(200, N.parse(assert(u:recv(2))).status)
    N.pump_for(0.05)
    assert.equal(0, u:pending())
    assert.equal(1, #seen)
    local st = srv:stats()
    assert.equal(4, st.parse_errors)
    assert.equal(0, st.bad_answered)
    assert.equal(4, st.reply_errors)
  end)

  it("get 400 over TCP, then the connection is closed", function()
    local srv, l, seen = server { "tcp:127.0.0.1:0" }
    local p = assert(N.tcp(V4, l.port))
    local bytes, cid = N.request { transport = "TCP", after = { "X-Nul: a\0b" } }
    p:send(bytes)
    local r = N.parse(assert(p:read_message(2)))
    assert.equal("SIP/2.0 400 " .. REASON, r.start)
    assert.equal(cid, r:get("Call-ID"))
    assert.is_truthy(p:wait_closed(2))
    assert.equal(0, #seen)
    assert.equal(1, srv:stats().bad_answered)
  end)
end)

describe("a refused TLS certificate when luasip connects out", function()
  local dir

  lazy_setup(function()
    dir = N.tmpdir()
    -- the target's self-signed certificate (names 127.0.0.1), and another
    -- one the client trusts instead
    for _, name in ipairs { "target", "other" } do
      N.sh(string.format("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
        .. "-keyout '%s/%s.key' -out '%s/%s.pem' -days 2 -subj '/CN=%s' -addext 'subjectAltName=IP:127.0.0.1'",
        dir, name, dir, name, name))
    end
  end)

  lazy_teardown(function()
    N.cleanup()
    N.rmdir(dir)
  end)

  after_each(N.cleanup)

  it("is logged with the peer, the reason and the verification error, and counted; the caller gets 503", function()
    local target = N.server { listen = { "tls:127.0.0.1:0" },
      tls = { cert = dir .. "/target.pem", key = dir .. "/target.key" } }
    target:on_request(function(req) req:reply(200) end)
    local port = target:listener(0).port
    local client = N.server { listen = { "tls:127.0.0.1:0" },
      tls = { cert = dir .. "/other.pem", key = dir .. "/other.key", ca = dir .. "/other.pem" } }
    local logs = {}
    client:set_log_handler(function(level, text)
      logs[#logs + 1] = level .. " " .. text
    end)
    local res
    sip.spawn(function()
      res = client:send(sip.request { method = "OPTIONS", uri = "sips:bob@127.0.0.1:" .. port,
        from = "sips:alice@127.0.0.1" })
    end)
    assert.is_truthy(N.pump_until(function() return res end, 5))
    assert.equal(503, res.status)
    assert.equal(1, #logs, table.concat(logs, "\n"))
    assert.matches("^warn TLS: certificate of 127%.0%.0%.1:" .. port .. "[^\n]* refused: "
      .. "certificate verify failed %(verify error 18: self.signed certificate%)$", logs[1])
    local st = client:stats()
    assert.equal(1, st.tls_verify_failures)
    assert.equal(1, st.tls_failures)
    assert.equal(0, st.tx_msgs)
    assert.equal(0, target:stats().rx_msgs)
  end)
end)

describe("a handler allocating without bound under luasip run's default limits", function()
  local dir

  lazy_setup(function()
    dir = N.tmpdir()
  end)

  lazy_teardown(function()
    P.cleanup()
    N.cleanup()
    N.rmdir(dir)
  end)

  it("is answered 500 quickly, and OPTIONS from another socket are all answered", function()
    local path = dir .. "/hog.lua"
    local f = assert(io.open(path, "w"))
    f:write([[
return {
  listen = { "udp:127.0.0.1:0" },
  methods = {
    OPTIONS = function(req) req:reply(200, "alive") end,
    MESSAGE = function(req)
      local t = {}
      for i = 1, 1e9 do t[i] = ("x"):rep(1000000) .. i end
      req:reply(200, "unreachable")
    end,
  },
}
]])
    f:close()
    local p = P.start { "run", path }
    local port = assert(p:port("udp"), p:log())
    local hog, other = N.udp(), N.udp()
    local t0 = socket.gettime()
    hog:send((N.request { method = "MESSAGE", rport = true }), V4, port)
    -- 32 OPTIONS, one every 3 ms, while the handler runs away
    local sent, answered, elapsed = 0, 0, nil
    local deadline = t0 + 5
    while (answered < 32 or not elapsed) and socket.gettime() < deadline do
      if sent < 32 and socket.gettime() >= t0 + sent * 0.003 then
        other:send((N.request { rport = true }), V4, port)
        sent = sent + 1
      end
      other:poll()
      while #other.queue > 0 do
        local r = N.parse(table.remove(other.queue, 1).data)
        assert.equal("SIP/2.0 200 alive", r.start)
        answered = answered + 1
      end
      if not elapsed then
        hog:poll()
        if #hog.queue > 0 then
          elapsed = socket.gettime() - t0
          assert.equal("SIP/2.0 500 Server Internal Error", N.parse(hog.queue[1].data).start)
        end
      end
      socket.sleep(0.001)
    end
    assert.is_truthy(elapsed, "no answer to the MESSAGE: " .. p:log())
    print(string.format("\nwire-hardening: runaway handler answered 500 after %.1f ms; %d/32 OPTIONS answered",
      elapsed * 1000, answered))
    -- a generous bound: before the budget it took 5-6 s
    assert.is_true(elapsed < 1.5, string.format("%.3f s", elapsed))
    assert.equal(32, answered)
    assert.matches("MESSAGE handler of [^\n]* failed: [^\n]*not enough memory %(the handler memory budget: "
      .. "16777216 bytes between two waits%)", p:log())
  end)
end)

describe("memory after a peak", function()
  local dir

  lazy_setup(function()
    dir = N.tmpdir()
  end)

  lazy_teardown(function()
    P.cleanup()
    N.cleanup()
    N.rmdir(dir)
  end)

  local function rss_kb(pid)
    local f = assert(io.open("/proc/" .. pid .. "/status"))
    local s = f:read("a")
    f:close()
    return tonumber(s:match("VmRSS:%s*(%d+) kB"))
  end

  -- #glibc_malloc: left out under ASan, whose allocator malloc_trim cannot
  -- shrink (see the Makefile)
  it("goes back near the baseline once 100,000 registrations have expired #glibc_malloc", function()
    local path = dir .. "/reg.lua"
    local f = assert(io.open(path, "w"))
    f:write([[
local registrar = require "luasip.registrar"
local location = require "luasip.location"
local loc
return {
  listen = { "udp:127.0.0.1:0" },
  server = { t1 = 10 }, -- Timer J 640 ms: the transactions go soon after
  setup = function() loc = assert(location.open("memory")) end,
  methods = {
    REGISTER = function(req) registrar.save(req, { location = loc, min_expires = 1 }) end,
    OPTIONS = function(req) req:reply(200, "bindings " .. loc:count()) end,
  },
}
]])
    f:close()
    local p = P.start { "run", path }
    local port = assert(p:port("udp"), p:log())
    local u = N.udp()
    local function bindings()
      u:send((N.request { rport = true }), V4, port)
      local d = assert(u:recv(5), "no answer to OPTIONS")
      return tonumber(N.parse(d).start:match("bindings (%d+)"))
    end
    assert.equal(0, bindings())
    socket.sleep(1.2) -- a trim tick after the start
    local base = rss_kb(p.pid)
    -- 100,000 REGISTERs, 256 in flight, each for its own AOR, expiring in 5 s:
    -- long enough that most are live at once even when a loaded machine
    -- takes 7 s for the load (with 2 s a CI run held ~28,000 live and grew
    -- by 20 MB only, under the 32 MB this test needs to show anything)
    local total, window, sent, got = 100000, 256, 0, 0
    local peak = 0
    local head = "REGISTER sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:%d;rport;branch=z9hG4bKr%d\r\n"
      .. "Max-Forwards: 70\r\nFrom: <sip:u%d@127.0.0.1>;tag=f%d\r\nTo: <sip:u%d@127.0.0.1>\r\n"
      .. "Call-ID: reg%d@wire\r\nCSeq: 1 REGISTER\r\nContact: <sip:u%d@127.0.0.1:%d>\r\nExpires: 5\r\n"
      .. "Content-Length: 0\r\n\r\n"
    -- (a datagram lost on the way frees its slot after 0.2 s of silence)
    local deadline = socket.gettime() + 25
    local t0 = socket.gettime()
    local done, last = 0, t0
    while done < total and socket.gettime() < deadline do
      while sent < total and sent - done < window do
        sent = sent + 1
        u.s:sendto(string.format(head, u.port, sent, sent, sent, sent, sent, sent, u.port), V4, port)
      end
      local d = u.s:receive()
      if d then
        assert(d:find("^SIP/2.0 200 "), d)
        got, done, last = got + 1, done + 1, socket.gettime()
        if got % 1000 == 0 then -- a trim may come before the load ends
          peak = math.max(peak, rss_kb(p.pid))
        end
      elseif socket.gettime() - last > 0.2 then
        done, last = sent, socket.gettime()
      else
        socket.sleep(0.0005)
      end
    end
    local took = socket.gettime() - t0
    assert.is_true(got > total * 0.99, got .. " answers")
    peak = math.max(peak, rss_kb(p.pid))
    -- the bindings expire, the transactions end, a trim tick comes
    local now, n
    deadline = socket.gettime() + 20
    repeat
      socket.sleep(0.25)
      n = bindings()
      now = rss_kb(p.pid)
    until (n == 0 and now < base + 16 * 1024) or socket.gettime() > deadline
    print(string.format("\nwire-hardening: VmRSS baseline %.1f MB, after 100,000 REGISTERs %.1f MB (%d answered "
      .. "in %.1f s), after expiry %.1f MB", base / 1024, peak / 1024, got, took, now / 1024))
    assert.equal(0, n)
    -- the load grew it (else this test shows nothing)
    assert.is_true(peak > base + 32 * 1024, string.format("peak %d kB, base %d kB", peak, base))
    assert.is_true(now < base + 16 * 1024, string.format("now %d kB, base %d kB", now, base))
  end)
end)
