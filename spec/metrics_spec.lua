-- luasip.metrics: the Prometheus exposition (checked by promtool), its
-- agreement with srv:stats(), and the HTTP endpoint on 127.0.0.1.
local here = debug.getinfo(1, "S").source:gsub("^@", ""):match("^(.*)/[^/]*$") or "."
local N = dofile(here .. "/support/net.lua")
local metrics = require "luasip.metrics"
local dispatcher = require "luasip.dispatcher"
local proxy = require "luasip.proxy"
local registrar = require "luasip.registrar"
local location = require "luasip.location"

local V4 = N.V4

-- The samples of an exposition: name{labels} -> value (a number).
local function samples(text)
  local t = {}
  for line in text:gmatch("[^\n]+") do
    if not line:match("^#") then
      local key, value = line:match("^(%S+) (%S+)$")
      assert(key, "bad sample line: " .. line)
      t[key] = tonumber(value) or value
    end
  end
  return t
end

local function promtool(text)
  local dir = N.tmpdir()
  local f = assert(io.open(dir .. "/m.txt", "w"))
  f:write(text)
  f:close()
  local p = assert(io.popen("promtool check metrics < " .. dir .. "/m.txt 2>&1; echo rc=$?"))
  local out = p:read("a")
  p:close()
  N.rmdir(dir)
  return out
end

-- One HTTP exchange with the endpoint: the whole response text.
local function http_get(port, request)
  local peer = assert(N.tcp(V4, port))
  peer:send(request)
  peer:wait_closed(5)
  return peer.buf
end

describe("luasip.metrics", function()
  after_each(function()
    metrics.reset()
    dispatcher.reset()
    N.cleanup()
  end)

  it("exports every srv:stats() counter with the same value, in a format promtool accepts", function()
    local srv = N.server()
    local l = srv:listener(0)
    -- some traffic: requests, replies, transactions
    srv:on_request(function(req)
      req:reply(200)
    end)
    local uac = N.udp(V4)
    for _ = 1, 3 do
      uac:send(N.request { uri = "sip:x@127.0.0.1:" .. l.port, via_port = uac.port }, V4, l.port)
      assert(uac:recv(2))
    end
    local text = N.run_task(function()
      return metrics.render(srv)
    end)
    local st = srv:stats()
    local s = samples(text)
    assert.equal(3, st.requests)
    assert.equal(st.requests, s.luasip_requests_total)
    assert.equal(st.replies, s.luasip_replies_total)
    assert.equal(st.txn_created, s.luasip_txn_created_total)
    assert.equal(st.rx_msgs, s.luasip_rx_msgs_total)
    assert.is_number(s.luasip_txn_live) -- a gauge, no _total
    assert.is_number(s.luasip_connections)
    -- every transport has its series; UDP has no connections: 0 while
    -- datagrams flow (as tcp counts connections, not listeners)
    assert.equal(0, st.connections_udp)
    assert.equal(0, s['luasip_open_connections{transport="udp"}'])
    for _, tp in ipairs({ "tcp", "tls", "ws", "wss" }) do
      assert.is_number(s['luasip_open_connections{transport="' .. tp .. '"}'], tp)
    end
    for k, v in pairs(st) do
      if type(v) == "number" then
        local sent, rcvd = k:match("^responses_sent_(%dxx)$"), k:match("^responses_received_(%dxx)$")
        local tp = k:match("^connections_(%a+)$")
        local got = sent and s['luasip_responses_sent_total{class="' .. sent .. '"}']
          or rcvd and s['luasip_responses_received_total{class="' .. rcvd .. '"}']
          or tp and s['luasip_open_connections{transport="' .. tp .. '"}']
          or s["luasip_" .. k .. "_total"] or s["luasip_" .. k]
        assert.equal(v, got, "missing or different: " .. k)
      end
    end
    assert.is_true(s.luasip_lua_heap_bytes > 0)
    assert.is_number(s.luasip_uptime_seconds)
    local out = promtool(text)
    assert.matches("rc=0", out)
    assert.equal("", (out:gsub("rc=0%s*", "")))
  end)

  -- the metrics gaps of issue [edge]: responses sent and received by
  -- class (C, the transport), the outcome and latency of every proxy.relay
  -- (not only the dispatcher's), connections by transport, registrations
  it("responses by class, every proxy.relay, connections by transport, registrations", function()
    local uas = N.server()
    local uas_port = uas:listener(0).port
    uas:on_request(function(req)
      req:reply(486, "Busy Here")
    end)
    local srv = N.server { listen = { "udp:127.0.0.1:0", "tcp:127.0.0.1:0" } }
    local port = srv:listener(0).port
    local outcome
    srv:on_request(function(req)
      if req.method == "REGISTER" then
        registrar.save(req, { location = assert(location.open("memory")) })
      elseif req.method == "MESSAGE" then
        outcome = proxy.relay(req, "sip:uas@127.0.0.1:" .. uas_port).status
      else
        req:reply(200)
      end
    end)
    local uac = N.udp(V4)
    uac:send(N.request { method = "MESSAGE", uri = "sip:bob@127.0.0.1:" .. port, via_port = uac.port }, V4, port)
    local got = assert(uac:recv(2))
    assert.equal(486, N.parse(got).status)
    assert.equal(486, outcome)
    uac:send(N.request {
      method = "REGISTER", uri = "sip:127.0.0.1", via_port = uac.port,
      from = "<sip:carol@127.0.0.1>;tag=1", to = "<sip:carol@127.0.0.1>",
      headers = { "Contact: <sip:carol@127.0.0.1:" .. uac.port .. ">", "Expires: 60" },
    }, V4, port)
    assert.equal(200, N.parse(assert(uac:recv(2))).status)
    local peer = assert(N.tcp(V4, srv:listener(1).port))
    peer:send(N.request { transport = "TCP" })
    assert.is_truthy(peer:read_message(2))
    local text = N.run_task(function()
      return metrics.render(srv)
    end)
    local s = samples(text)
    local st = srv:stats()
    -- sent: the relayed 486 and the 200s (REGISTER, OPTIONS over TCP)
    assert.equal(1, st.responses_sent_4xx)
    assert.equal(2, st.responses_sent_2xx)
    assert.equal(st.responses_sent_4xx, s['luasip_responses_sent_total{class="4xx"}'])
    assert.equal(st.responses_sent_2xx, s['luasip_responses_sent_total{class="2xx"}'])
    assert.equal(0, s['luasip_responses_sent_total{class="6xx"}'])
    -- received: the UAS's 486
    assert.equal(1, st.responses_received_4xx)
    assert.equal(1, s['luasip_responses_received_total{class="4xx"}'])
    assert.equal(1, uas:stats().responses_sent_4xx)
    -- the relay: its outcome and latency (a plain proxy.relay)
    assert.equal(1, s['luasip_relay_responses_total{class="4xx"}'])
    assert.equal(1, s.luasip_relay_duration_seconds_count)
    assert.equal(1, s['luasip_relay_duration_seconds_bucket{le="+Inf"}'])
    -- connections by transport
    assert.equal(1, st.connections_tcp)
    assert.equal(1, s['luasip_open_connections{transport="tcp"}'])
    assert.equal(0, s['luasip_open_connections{transport="tls"}'])
    -- registrations (rate(): per second)
    assert.is_true(s.luasip_registrations_total >= 1)
    assert.equal(registrar.stats().registered, s.luasip_registrations_total)
    local out = promtool(text)
    assert.equal("", (out:gsub("rc=0%s*", "")))
  end)

  it("script metrics: counters, gauges, histograms with labels; names checked", function()
    local c = metrics.counter("app_calls_total", "Calls", { "route" })
    c:inc(1, { route = "pstn" })
    c:inc(2, { route = 'we"ird\\' })
    metrics.gauge("app_queue", "Queue"):set(3.5)
    local h = metrics.histogram("app_wait_seconds", "Wait", nil, { 0.1, 1 })
    h:observe(0.05)
    h:observe(0.5)
    h:observe(7)
    assert.equal(c, metrics.counter("app_calls_total", "Calls", { "route" })) -- a reload keeps it
    local text = N.run_task(function()
      return metrics.render()
    end)
    local s = samples(text)
    assert.equal(1, s['app_calls_total{route="pstn"}'])
    assert.equal(2, s['app_calls_total{route="we\\"ird\\\\"}'])
    assert.equal(3.5, s.app_queue)
    assert.equal(1, s['app_wait_seconds_bucket{le="0.1"}'])
    assert.equal(2, s['app_wait_seconds_bucket{le="1"}'])
    assert.equal(3, s['app_wait_seconds_bucket{le="+Inf"}'])
    assert.equal(3, s.app_wait_seconds_count)
    assert.equal(7.55, s.app_wait_seconds_sum)
    assert.matches("rc=0", promtool(text))
    assert.has_error(function()
      metrics.counter("app_calls", "no _total")
    end)
    assert.has_error(function()
      metrics.gauge("bad name")
    end)
    assert.has_error(function()
      metrics.gauge("app_calls_total")
    end)
    assert.has_error(function()
      c:inc(-1)
    end)
  end)

  it("dispatcher destination states and relay outcomes", function()
    local srv = N.server()
    dispatcher.set("media", { "sip:127.0.0.1:9", "sip:127.0.0.1:11" }, { server = srv })
    dispatcher.admin("media", 2, "down")
    local s = samples(N.run_task(function()
      return metrics.render(srv)
    end))
    assert.equal(1, s['luasip_dispatcher_destination_state{set="media",destination="sip:127.0.0.1:9",state="up"}'])
    assert.equal(0, s['luasip_dispatcher_destination_state{set="media",destination="sip:127.0.0.1:9",state="down"}'])
    assert.equal(1,
      s['luasip_dispatcher_destination_state{set="media",destination="sip:127.0.0.1:11",state="disabled"}'])
    assert.equal(1, s.luasip_dispatcher_transitions_total)
  end)

  it("serves /metrics over HTTP; other paths, methods and garbage get 404, 405, 400", function()
    local srv = N.server()
    local h = assert(metrics.serve("127.0.0.1:0", srv))
    local port = h:port()
    assert.is_true(port > 0)
    local res = http_get(port, "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: */*\r\n\r\n")
    assert.matches("^HTTP/1.1 200 OK\r\n", res)
    assert.matches("Content%-Type: text/plain; version=0.0.4", res)
    local body = res:match("\r\n\r\n(.*)$")
    assert.equal(tonumber(res:match("Content%-Length: (%d+)")), #body)
    assert.matches("\nluasip_requests_total 0\n", body)
    assert.matches("^HTTP/1.1 404", http_get(port, "GET / HTTP/1.1\r\n\r\n"))
    assert.matches("^HTTP/1.1 405", http_get(port, "POST /metrics HTTP/1.1\r\n\r\n"))
    assert.matches("^HTTP/1.1 400", http_get(port, "hello\r\n\r\n"))
    local head = http_get(port, "HEAD /metrics HTTP/1.0\r\n\r\n")
    assert.matches("^HTTP/1.1 200", head)
    assert.matches("\r\n\r\n$", head)
    -- a request that never ends its header: 431 past 8 KiB, then closed
    assert.matches("^HTTP/1.1 431", http_get(port, "GET /metrics HTTP/1.1\r\nX: " .. ("a"):rep(9000)))
    local st = h:stats()
    assert.equal(6, st.accepted)
    assert.equal(1, st.too_large)
    assert.equal(0, st.open)
    h:close()
    h:close() -- idempotent
    N.pump_for(0.05)
    local p = N.tcp(V4, port, 0.5) -- refused: nothing listens
    assert.is_true(not p or (p:wait_closed(1) ~= nil and p.buf == ""))
  end)

  it("refuses a bad address", function()
    assert.has_error(function()
      metrics.serve("nowhere")
    end)
    assert.has_error(function()
      metrics.serve("127.0.0.1:99999")
    end)
    local h1 = assert(metrics.serve("127.0.0.1:0"))
    local h, err, name = metrics.serve("127.0.0.1:" .. h1:port())
    assert.is_nil(h)
    assert.matches("address already in use", err)
    assert.equal("EADDRINUSE", name)
    h1:close()
  end)
end)
