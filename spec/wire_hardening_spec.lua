-- Issue [wire]: hardening of the wire side, one regression per item.
--   4  a refused TLS certificate when luasip connects out: a warning with
--      the peer, the reason and the verification error, counted in
--      srv:stats() (the trace side is in csrc/transport/tests/tp_test.c)
--   6  control characters in header fields make a message invalid: 400
--      with a reason over the network, never a script
--  10  a handler that allocates without bound is stopped by the default
--      handler memory budget at once, while other requests are served
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
