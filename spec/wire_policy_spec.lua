-- Issue [wire], the policy side, over real sockets on 127.0.0.1 (only
-- 127.0.0.1 appears where luasip could send): malformed REGISTERs get 400
-- with a reason (item 8); stray ACKs and log floods (item 9); the Server
-- and User-Agent headers of what luasip originates (item 5). The GRUU
-- routing of item 3 sends to Contacts, so it runs in a loopback-only
-- namespace: spec/netns/gruu.sh.
local here = debug.getinfo(1, "S").source:gsub("^@", ""):match("^(.*)/[^/]*$") or "."
local N = dofile(here .. "/support/net.lua")
local sip = require "luasip"
local log = require "luasip.log"
local proxy = require "luasip.proxy"
local server = require "luasip.server"
local registrar = require "luasip.registrar"
local location = require "luasip.location"

local V4 = N.V4

-- Capture the log lines of a test (restored to stderr by finally).
local function capture_log()
  local lines = {}
  log.configure { sink = function(line)
    lines[#lines + 1] = line
  end }
  finally(function()
    log.configure { sink = function(line)
      io.stderr:write(line, "\n")
    end, rate = true }
  end)
  return lines
end

local function has_traceback(lines)
  for _, l in ipairs(lines) do
    if l:find("traceback", 1, true) then
      return true
    end
  end
  return false
end

describe("[wire] item 8: malformed REGISTERs", function()
  local store = assert(location.open("memory"))

  after_each(function()
    N.cleanup()
  end)

  -- A registrar on udp 127.0.0.1:0 with opts for registrar.save; returns
  -- the server's listener and a UDP peer.
  local function setup(opts)
    opts = opts or {}
    opts.location = opts.location or store
    local srv, l = N.server { sanity = { supported = registrar.supported } }
    srv:on_request(function(req)
      registrar.save(req, opts)
    end)
    return srv, l, N.udp(V4)
  end

  local function register(l, peer, contact, headers)
    local user = (N.unique("u"):gsub("%.", "x"))
    local aor = "<sip:" .. user .. "@example.com>"
    local h = { "Contact: " .. contact }
    for _, v in ipairs(headers or {}) do
      h[#h + 1] = v
    end
    peer:send(N.request {
      method = "REGISTER", uri = "sip:example.com", to = aor,
      from = aor .. ";tag=" .. (N.unique("f"):gsub("%.", "")), via_port = peer.port, headers = h,
    }, l.host, l.port)
    local d = assert(peer:recv(3), "no answer to the REGISTER")
    return N.parse(d), user
  end

  it("Path: ; gets 400 naming the Path, no script error", function()
    local lines = capture_log()
    local srv, l, peer = setup()
    local r = register(l, peer, "<sip:a@127.0.0.1:5999>", { "Path: ;" })
    assert.are.equal(400, r.status)
    assert.matches("Path", r.reason)
    assert.is_false(has_traceback(lines))
    assert.are.equal(0, srv:stats().script_errors)
  end)

  it("a 16 KB Contact gets 400 naming its size, on the fast path and the general one", function()
    local lines = capture_log()
    for _, fast in ipairs { true, false } do
      local _, l, peer = setup { fast = fast }
      local big = "<sip:a@127.0.0.1:5999;x=" .. string.rep("a", 16000) .. ">"
      local r, user = register(l, peer, big)
      assert.are.equal(400, r.status)
      assert.matches("Contact too long", r.reason)
      local b = N.run_task(function()
        return registrar.lookup("sip:" .. user .. "@example.com", { location = store })
      end)
      assert.are.equal(0, #b)
      -- a big contact-param too
      r = register(l, peer, "<sip:a@127.0.0.1:5999>;x=" .. string.rep("b", 16000))
      assert.are.equal(400, r.status)
    end
    assert.is_false(has_traceback(lines))
  end)

  it("a REGISTER whose binding outgrows the fast path's buffer is taken by the general path", function()
    local lines = capture_log()
    local _, l, peer = setup()
    local ua = "UA/" .. string.rep("u", 6000)
    local r, user = register(l, peer, "<sip:a@127.0.0.1:5999>", { "User-Agent: " .. ua })
    assert.are.equal(200, r.status)
    local b = N.run_task(function()
      return registrar.lookup("sip:" .. user .. "@example.com", { location = store })
    end)
    assert.are.equal(ua, b[1].user_agent)
    assert.is_false(has_traceback(lines))
  end)

  it("max_contact_size: up to it a Contact is taken, the same on both paths", function()
    for _, fast in ipairs { true, false } do
      local _, l, peer = setup { fast = fast, max_contact_size = 100 }
      local prefix = "<sip:a@127.0.0.1:5999;x="
      local c = prefix .. string.rep("a", 100 - #prefix - 1) .. ">"
      assert.are.equal(100, #c)
      assert.are.equal(200, (register(l, peer, c)).status)
      assert.are.equal(400, (register(l, peer, c .. ";y")).status)
    end
  end)

  it("other malformed fields the registrar reads get 400 (sanity off)", function()
    local lines = capture_log()
    local srv, l = N.server { sanity = false }
    srv:on_request(function(req)
      registrar.save(req, { location = store })
    end)
    local peer = N.udp(V4)
    local cases = {
      { what = "Call%-ID", t = { omit = { ["Call-ID"] = true } } },
      { what = "Request%-URI", t = { uri = "sip:" } },
    }
    for _, case in ipairs(cases) do
      local t = case.t
      t.method, t.uri = "REGISTER", t.uri or "sip:example.com"
      t.to, t.via_port = "<sip:m@example.com>", peer.port
      t.headers = { "Contact: <sip:a@127.0.0.1:5999>" }
      peer:send(N.request(t), l.host, l.port)
      local r = N.parse(assert(peer:recv(3), "no answer: " .. case.what))
      assert.are.equal(400, r.status, case.what)
      assert.matches(case.what, r.reason)
    end
    assert.is_false(has_traceback(lines))
  end)
end)

describe("[wire] item 9: stray ACKs and log floods", function()
  local host = dofile(here .. "/support/script_host.lua")
  local example = here .. "/../examples/proxy.lua"

  after_each(function()
    N.cleanup()
  end)

  -- Send n stray ACKs (no To tag) to l from peer, in batches, each batch
  -- waited for until the server counted it (stat name); returns the stats.
  local function flood(srv, l, peer, n, stat)
    local sent, st = 0, nil
    while sent < n do
      for _ = 1, math.min(200, n - sent) do
        sent = sent + 1
        peer:send((N.request { method = "ACK", uri = "sip:bob@127.0.0.1", via_port = peer.port,
          call_id = "stray" .. sent }), l.host, l.port)
      end
      st = N.wait_stat(srv, stat, sent, 5)
      assert.are.equal(sent, st[stat], "the server did not take batch ending at " .. sent)
    end
    return st
  end

  local function bytes(lines)
    local n = 0
    for _, line in ipairs(lines) do
      n = n + #line + 1
    end
    return n
  end

  it("examples/proxy.lua absorbs 10,000 stray ACKs: counted, no log line, nothing sent", function()
    local lines = capture_log()
    local srv = host.load(example, { listen = { "udp:127.0.0.1:0" } })
    finally(function()
      srv:close()
    end)
    local l = srv:listener(0)
    local peer = N.udp(V4)
    local st = flood(srv, l, peer, 10000, "txn_stray_acks")
    assert.are.equal(10000, st.requests)
    assert.are.equal(0, st.script_errors)
    assert.are.equal(0, #lines, table.concat(lines, "\n"))
    assert.are.equal(0, peer:pending())
  end)

  it("a script that replies to every request: 10,000 ACKs are counted as ack_replies, the log stays empty", function()
    local lines = capture_log()
    local srv, l = N.server()
    srv:on_request(function(req)
      req:reply(404, "Not Here")
    end)
    local peer = N.udp(V4)
    local st = flood(srv, l, peer, 10000, "ack_replies")
    assert.are.equal(10000, st.ack_replies)
    assert.are.equal(0, st.replies)
    assert.are.equal(0, #lines, table.concat(lines, "\n"))
    assert.are.equal(0, peer:pending())
  end)

  it("a handler that fails on each of 10,000 packets leaves a small log: rate-limited, then a summary", function()
    local lines = capture_log()
    log.configure { rate = { burst = 10, interval = 3600 } }
    local srv, l = N.server()
    local calls = 0
    srv:on_request(function()
      calls = calls + 1
      error("boom on every packet")
    end)
    local peer = N.udp(V4)
    flood(srv, l, peer, 10000, "txn_stray_acks")
    assert.is_true(N.pump_until(function()
      return calls == 10000
    end, 5))
    assert.are.equal(10, #lines)
    assert.is_true(bytes(lines) < 20000, "log of " .. bytes(lines) .. " bytes")
    log.flush()
    assert.are.equal(11, #lines)
    assert.are.equal("9990", lines[11]:match("suppressed (%d+) more lines"))
    assert.is_truthy(lines[11]:find("ACK handler failed", 1, true), lines[11])
  end)
end)

describe("[wire] item 9: luasip.log rate limit", function()
  it("writes burst lines of a kind per interval, then one 'suppressed N' line", function()
    local lines = capture_log()
    local now = 1000
    log.configure { rate = { burst = 3, interval = 10 }, clock = function()
      return now
    end }
    finally(function()
      log.configure { clock = os.time }
    end)
    for i = 1, 50 do
      log.error("flood %d", i)
      log.write("warn", "same text\nstack traceback: " .. i)
    end
    log.info("another kind")
    assert.are.equal(7, #lines)
    assert.matches("error flood 1$", lines[1])
    assert.matches("warn same text", lines[4])
    assert.matches("info another kind$", lines[7])
    now = now + 10 -- the interval is over: the summaries come with the next line
    log.error("flood %d", 51)
    assert.are.equal(10, #lines)
    local got = {}
    for i = 8, 9 do
      local n, what = lines[i]:match("suppressed (%d+) more lines like this one in 10s: (.*)$")
      got[#got + 1] = tostring(what) .. " " .. tostring(n)
    end
    table.sort(got)
    assert.are.same({ "flood 1 47", "same text 47" }, got)
    assert.matches("error flood 51$", lines[10])
    -- different kinds are not limited together
    for i = 1, 3 do
      log.info("kind " .. i)
    end
    assert.are.equal(13, #lines)
    -- rate = false: every line
    log.configure { rate = false }
    for _ = 1, 20 do
      log.error("flood %d", 0)
    end
    assert.are.equal(33, #lines)
  end)
end)

describe("[wire] item 5: Server and User-Agent headers", function()
  after_each(function()
    N.cleanup()
  end)

  -- A server whose handler replies 200 to OPTIONS, answers an INVITE late
  -- (after its 100 Trying), relays a MESSAGE to a peer that never answers
  -- (the proxy's own 408) and registers REGISTERs (the C fast path).
  local function setup(opts)
    opts.trying_delay = 1
    opts.sanity = { supported = registrar.supported }
    local srv, l = N.server(opts)
    local silent = N.udp(V4)
    srv:on_request(function(req)
      if req.method == "INVITE" then
        sip.sleep(0.1)
        return req:reply(486)
      elseif req.method == "MESSAGE" then
        return proxy.relay(req, "sip:x@127.0.0.1:" .. silent.port, { timeout = 0.2 })
      elseif req.method == "REGISTER" then
        return registrar.save(req, { location = "memory" })
      end
      req:reply(200)
    end)
    return srv, l, N.udp(V4)
  end

  -- Every response luasip makes, as parsed responses.
  local function responses(l, peer)
    local out = {}
    local function ask(t, want)
      t.via_port = peer.port
      peer:send(N.request(t), l.host, l.port)
      local deadline = os.time() + 5
      while os.time() <= deadline do
        local d = peer:recv(1)
        local r = d and N.parse(d)
        if r then
          out[#out + 1] = r
          if r.status == want then
            return
          end
        end
      end
      error("no " .. want .. " to " .. t.method)
    end
    ask({ method = "OPTIONS" }, 200)
    ask({ method = "OPTIONS", headers = { "Require: nosuchext" } }, 420) -- the C sanity check
    ask({ method = "INVITE" }, 486) -- 100 Trying from the transaction layer, then 486
    ask({ method = "MESSAGE" }, 408) -- the proxy core's own
    ask({ method = "REGISTER", uri = "sip:example.com", to = "<sip:srvhdr@example.com>",
      headers = { "Contact: <sip:srvhdr@127.0.0.1:5999>" } }, 200)
    local statuses = {}
    for _, r in ipairs(out) do
      statuses[#statuses + 1] = r.status
    end
    assert.are.same({ 200, 420, 100, 486, 408, 200 }, statuses)
    return out
  end

  it("responses luasip originates carry Server: luasip/<version> by default", function()
    local _, l, peer = setup {}
    local want = "luasip/" .. sip._VERSION:match("(%S+)$")
    assert.are.equal(want, server.product())
    for _, r in ipairs(responses(l, peer)) do
      assert.are.same({ want }, r:all("Server"), r.start)
    end
  end)

  it("server_header sets the value; false leaves it out", function()
    local _, l, peer = setup { server_header = "Acme-SBC/2.1" }
    for _, r in ipairs(responses(l, peer)) do
      assert.are.same({ "Acme-SBC/2.1" }, r:all("Server"), r.start)
    end
    N.cleanup()
    _, l, peer = setup { server_header = false }
    for _, r in ipairs(responses(l, peer)) do
      assert.are.same({}, r:all("Server"), r.start)
    end
  end)

  it("server_header and user_agent refuse control characters", function()
    assert.has_error(function()
      sip.server { server_header = "a\r\nX-Injected: 1" }
    end)
    assert.has_error(function()
      sip.server { user_agent = "" }
    end)
  end)

  -- The request srv:send sends to a peer, as the peer sees it.
  local function sent_request(opts, headers)
    local srv = N.server(opts)
    local peer = N.udp(V4)
    sip.spawn(function()
      srv:send(assert(sip.request { method = "OPTIONS", uri = "sip:peer@127.0.0.1:" .. peer.port,
        from = "sip:luasip@127.0.0.1", headers = headers }))
    end)
    local d = assert(peer:recv(3), "nothing sent")
    local r = N.parse(d)
    peer:send(table.concat({ "SIP/2.0 200 OK", "Via: " .. r:get("Via"), "From: " .. r:get("From"),
      "To: " .. r:get("To") .. ";tag=p1", "Call-ID: " .. r:get("Call-ID"), "CSeq: " .. r:get("CSeq"),
      "Content-Length: 0", "", "" }, "\r\n"), V4, srv:listener(0).port)
    N.pump_for(0.02)
    return r
  end

  it("requests luasip originates carry User-Agent: luasip/<version>, configurable, or none", function()
    assert.are.same({ server.product() }, sent_request({}):all("User-Agent"))
    assert.are.same({ "Acme-UA/3" }, sent_request({ user_agent = "Acme-UA/3" }):all("User-Agent"))
    assert.are.same({}, sent_request({ user_agent = false }):all("User-Agent"))
    -- a request with its own keeps it, alone
    local r = sent_request({}, { { "User-Agent", "Mine/1" } })
    assert.are.same({ "Mine/1" }, r:all("User-Agent"))
    -- the Via comes first, the rest follows intact
    assert.are.equal("OPTIONS sip:peer@127.0.0.1:" .. r.start:match(":(%d+) SIP") .. " SIP/2.0", r.start)
    assert.are.equal("Via", r.headers[1][1])
  end)
end)
