-- Issue [wire], the policy side, over real sockets on 127.0.0.1 (only
-- 127.0.0.1 appears where luasip could send): malformed REGISTERs get 400
-- with a reason (item 8); stray ACKs and log floods (item 9); the Server
-- and User-Agent headers of what luasip originates (item 5). The GRUU
-- routing of item 3 sends to Contacts, so it runs in a loopback-only
-- namespace: spec/netns/gruu.sh.
local here = debug.getinfo(1, "S").source:gsub("^@", ""):match("^(.*)/[^/]*$") or "."
local N = dofile(here .. "/support/net.lua")
local log = require "luasip.log"
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
