-- RFC 3263 against a real DNS server: dnsmasq on 127.0.0.1:5353 (started
-- here, spec/dns/dnsmasq.lua) with NAPTR, SRV, A and AAAA records for test
-- domains that point at luasip UASes on 127.0.0.1 and ::1. Run by
-- spec/dns/run.sh inside a loopback-only network namespace (the fixed
-- ports below are the namespace's own); not a *_spec.lua file, so the
-- plain busted run does not pick it up.
local here = debug.getinfo(1, "S").source:gsub("^@", ""):match("^(.*)/[^/]*$") or "."
local N = dofile(here .. "/../support/net.lua")
local U = dofile(here .. "/../support/ua.lua")(N)
local D = dofile(here .. "/dnsmasq.lua")
local sip = require "luasip"
local dns = require "luasip.dns"
local socket = require "socket"

local DNS_PORT = 5353

-- The zone (dnsmasq authoritative for "test": negative answers carry an
-- SOA, RFC 2308).
local ZONE = {
  "auth-zone=test",
  "auth-server=ns.test,127.0.0.1",
  "auth-ttl=300",
  -- NAPTR prefers TCP (order 10) over UDP (20)
  "naptr-record=naptr.test,20,10,s,SIP+D2U,,_sip._udp.naptr.test",
  "naptr-record=naptr.test,10,10,s,SIP+D2T,,_sip._tcp.naptr.test",
  "srv-host=_sip._tcp.naptr.test,uas.naptr.test,5071,0,0",
  "srv-host=_sip._udp.naptr.test,uas.naptr.test,5072,0,0",
  "host-record=uas.naptr.test,127.0.0.1",
  -- SRV only
  "srv-host=_sip._udp.srv.test,uas.srv.test,5073,0,0",
  "host-record=uas.srv.test,127.0.0.1",
  -- A only
  "host-record=a.test,127.0.0.1",
  -- weights 60 / 30 / 10 in one priority
  "srv-host=_sip._udp.w.test,w1.w.test,5081,10,60",
  "srv-host=_sip._udp.w.test,w2.w.test,5082,10,30",
  "srv-host=_sip._udp.w.test,w3.w.test,5083,10,10",
  "host-record=w1.w.test,127.0.0.1",
  "host-record=w2.w.test,127.0.0.1",
  "host-record=w3.w.test,127.0.0.1",
  -- failover: the first TCP target refuses connections
  "srv-host=_sip._tcp.down.test,dead.down.test,5090,10,0",
  "srv-host=_sip._tcp.down.test,live.down.test,5074,20,0",
  "host-record=dead.down.test,127.0.0.1",
  "host-record=live.down.test,127.0.0.1",
  -- failover: the first UDP target never answers (Timer F)
  "srv-host=_sip._udp.lost.test,dead.lost.test,5091,10,0",
  "srv-host=_sip._udp.lost.test,live.lost.test,5073,20,0",
  "host-record=dead.lost.test,127.0.0.1",
  "host-record=live.lost.test,127.0.0.1",
  -- failover: the first target answers 503 with Retry-After
  "srv-host=_sip._udp.busy.test,busy.busy.test,5075,10,0",
  "srv-host=_sip._udp.busy.test,ok.busy.test,5073,20,0",
  "host-record=busy.busy.test,127.0.0.1",
  "host-record=ok.busy.test,127.0.0.1",
  -- proxy.relay's failover: a 503 (no Retry-After) first
  "srv-host=_sip._udp.relay.test,busy.relay.test,5077,10,0",
  "srv-host=_sip._udp.relay.test,ok.relay.test,5073,20,0",
  "host-record=busy.relay.test,127.0.0.1",
  "host-record=ok.relay.test,127.0.0.1",
  -- a forking proxy's branch fails over: a 503 first / a refused TCP first
  "srv-host=_sip._udp.fork.test,busy.fork.test,5079,10,0",
  "srv-host=_sip._udp.fork.test,ok.fork.test,5073,20,0",
  "host-record=busy.fork.test,127.0.0.1",
  "host-record=ok.fork.test,127.0.0.1",
  "srv-host=_sip._tcp.forkdown.test,dead.forkdown.test,5092,10,0",
  "srv-host=_sip._tcp.forkdown.test,live.forkdown.test,5074,20,0",
  "host-record=dead.forkdown.test,127.0.0.1",
  "host-record=live.forkdown.test,127.0.0.1",
  -- a Via maddr that is a name (responses, RFC 3263 §5)
  "host-record=back.test,127.0.0.2",
  -- TLS through DNS: the certificate names tls.test only (RFC 5922)
  "srv-host=_sips._tcp.tls.test,uas.tls.test,5094,0,0",
  "host-record=uas.tls.test,127.0.0.1",
  -- a sip: URI without NAPTR: _sips._tcp too (RFC 3263 §4.2), after UDP
  "srv-host=_sips._tcp.stls.test,uas.stls.test,5095,0,0",
  "host-record=uas.stls.test,127.0.0.1",
  "srv-host=_sip._udp.mix.test,uas.mix.test,5073,0,0",
  "srv-host=_sips._tcp.mix.test,uas.mix.test,5094,0,0",
  "host-record=uas.mix.test,127.0.0.1",
  -- IPv6 only
  "host-record=v6.test,::1",
  -- a name with no SIP service at all and no address
  "txt-record=noaddr.test,nothing",
}

-- dnsmasq with the zone and ttl.test at addr, TTL seconds for everything
local function ttl_zone(addr, ttl)
  return {
    "auth-zone=test",
    "auth-server=ns.test,127.0.0.1",
    "auth-ttl=" .. ttl,
    "host-record=ttl.test," .. addr,
    "host-record=a.test,127.0.0.1",
  }
end

local server, uas = nil, {}
local dnsmasq

-- A UAS on spec (one listener) answering `status` with "from <port>".
local function start_uas(spec, status, extra)
  local srv = assert(sip.server { listen = spec })
  local port = srv:listener(0).port
  srv:on_request(function(req)
    if req.method == "ACK" then
      return
    end
    uas[port] = (uas[port] or 0) + 1
    req:reply(status, "from " .. port, extra)
  end)
  return srv
end

local function options(uri)
  return assert(sip.request {
    method = "OPTIONS", uri = uri, from = "sip:alice@127.0.0.1",
    via = "SIP/2.0/UDP 127.0.0.1",
  })
end

local function send(uri)
  return N.run_task(function()
    return server:send(options(uri))
  end, 10)
end

local function resolve(uri)
  return N.run_task(function()
    return sip.resolve(uri)
  end, 10)
end

local function dests(targets)
  local out = {}
  for i, t in ipairs(targets or {}) do
    out[i] = t.dest
  end
  return table.concat(out, " ")
end

local servers = {}

setup(function()
  dnsmasq = D.start(ZONE, DNS_PORT)
  assert(sip.dns { servers = "127.0.0.1:" .. DNS_PORT, timeout = 1, avoid = 30 })
  local listen = { "udp:127.0.0.1:0", "tcp:127.0.0.1:0" }
  if N.have_ipv6() then
    listen[#listen + 1] = "udp:[::1]:0"
  end
  server = assert(sip.server { listen = listen, t1 = 25 })
  servers = {
    server,
    start_uas("tcp:127.0.0.1:5071", 200),
    start_uas("udp:127.0.0.1:5072", 200),
    start_uas("udp:127.0.0.1:5073", 200),
    start_uas("tcp:127.0.0.1:5074", 200),
    start_uas("udp:127.0.0.1:5075", 503, { ["Retry-After"] = "60" }),
    start_uas("udp:127.0.0.1:5077", 503),
    start_uas("udp:127.0.0.1:5078", 486),
    start_uas("udp:127.0.0.1:5079", 503),
  }
  if N.have_ipv6() then
    servers[#servers + 1] = start_uas("udp:[::1]:5076", 200)
  end
end)

teardown(function()
  for _, s in ipairs(servers) do
    s:close()
  end
  if dnsmasq then
    dnsmasq:stop()
  end
end)

describe("RFC 3263 with dnsmasq", function()
  it("NAPTR chooses TCP, then the UDP record's target", function()
    local t = assert(resolve("sip:bob@naptr.test"))
    assert.equal("tcp:127.0.0.1:5071 udp:127.0.0.1:5072", dests(t))
    assert.equal("uas.naptr.test", t[1].host)
    local res = send("sip:bob@naptr.test")
    assert.equal(200, res.status)
    assert.equal("from 5071", res.reason) -- it went over TCP
  end)

  it("SRV only: no NAPTR, _sip._udp gives the target", function()
    local t = assert(resolve("sip:bob@srv.test"))
    assert.equal("udp:127.0.0.1:5073", dests(t))
    assert.equal("from 5073", send("sip:bob@srv.test").reason)
  end)

  it("A only: UDP on 5060; an explicit port skips NAPTR and SRV", function()
    local before = dns.stats().cache_misses
    assert.equal("udp:127.0.0.1:5060", dests(resolve("sip:bob@a.test")))
    local mid = dns.stats().cache_misses
    assert.is_true(mid - before >= 4) -- NAPTR, SRV udp, SRV tcp, A (+ AAAA)
    assert.equal("udp:127.0.0.1:5073", dests(resolve("sip:bob@a.test:5073")))
    assert.equal(mid, dns.stats().cache_misses) -- the A from the cache
    assert.equal("from 5073", send("sip:bob@a.test:5073").reason)
    -- a transport and no port: SRV for it, else A on its default port
    assert.equal("tcp:127.0.0.1:5060", dests(resolve("sip:bob@a.test;transport=tcp")))
    -- sips: TLS on 5061
    assert.equal("tls:127.0.0.1:5061", dests(resolve("sips:bob@a.test")))
  end)

  it("weighted SRV: 1,000 lookups follow the weights 60/30/10 (+-60 each)", function()
    -- sd of a count: sqrt(1000 p (1 - p)) <= 15.5, so 60 is >= 3.8 sd
    local first = { [5081] = 0, [5082] = 0, [5083] = 0 }
    N.run_task(function()
      for _ = 1, 1000 do
        local t = assert(sip.resolve("sip:bob@w.test"))
        assert.equal(3, #t)
        first[t[1].port] = first[t[1].port] + 1
      end
    end, 20)
    local msg = string.format("firsts: %d %d %d", first[5081], first[5082], first[5083])
    assert.is_true(math.abs(first[5081] - 600) <= 60, msg)
    assert.is_true(math.abs(first[5082] - 300) <= 60, msg)
    assert.is_true(math.abs(first[5083] - 100) <= 60, msg)
  end)

  it("fails over when the first SRV target refuses the connection", function()
    local f0 = server:stats().dns_failovers
    local res = send("sip:bob@down.test;transport=tcp")
    assert.equal(200, res.status)
    assert.equal("from 5074", res.reason)
    assert.equal(f0 + 1, server:stats().dns_failovers)
    -- the dead target is tried last for a while
    assert.equal("tcp:127.0.0.1:5074 tcp:127.0.0.1:5090", dests(resolve("sip:bob@down.test;transport=tcp")))
  end)

  it("fails over when the first UDP target never answers (Timer F)", function()
    local f0 = server:stats().dns_failovers
    local res = send("sip:bob@lost.test")
    assert.equal(200, res.status)
    assert.equal("from 5073", res.reason)
    assert.equal(f0 + 1, server:stats().dns_failovers)
  end)

  it("fails over on a 503 and avoids that target for its Retry-After", function()
    uas[5075] = 0
    local res = send("sip:bob@busy.test")
    assert.equal("from 5073", res.reason)
    assert.equal(1, uas[5075])
    assert.is_true(require("luasip.core").dns_avoided("udp", "127.0.0.1", 5075))
    assert.equal("udp:127.0.0.1:5073 udp:127.0.0.1:5075", dests(resolve("sip:bob@busy.test")))
  end)

  it("NXDOMAIN: nil, EAI_NONAME; a 404 from srv:send; the negative answer is cached", function()
    local t, err, name = resolve("sip:bob@nx.test")
    assert.is_nil(t)
    assert.equal("EAI_NONAME", name, err)
    local neg = dns.stats().negative_hits
    local res = send("sip:bob@nx.test")
    assert.equal(404, res.status)
    assert.is_true(dns.stats().negative_hits > neg)
    -- a name that exists without a SIP server or an address: 404 too
    assert.equal(404, send("sip:bob@noaddr.test").status)
  end)

  it("proxy.relay: fails over to the next target; NXDOMAIN is answered 404", function()
    local proxy = require "luasip.proxy"
    local px = assert(sip.server { listen = { "udp:127.0.0.1:0", "tcp:127.0.0.1:0" }, t1 = 25 })
    servers[#servers + 1] = px
    local port = px:listener(0).port
    px:on_request(function(req)
      local user = req.ruri.user
      proxy.relay(req, "sip:" .. user .. "@" .. (user == "nx" and "nx.test" or "relay.test"))
    end)
    local f0 = server:stats().dns_failovers
    uas[5077] = 0
    local res = send("sip:bob@127.0.0.1:" .. port)
    assert.equal(200, res.status)
    assert.equal("from 5073", res.reason)
    assert.equal(1, uas[5077]) -- the 503 came first
    assert.equal(f0 + 1, server:stats().dns_failovers)
    res = send("sip:nx@127.0.0.1:" .. port)
    assert.equal(404, res.status)
  end)

  it("proxy.relay forking: each branch fails over over its own DNS targets", function()
    local proxy = require "luasip.proxy"
    local px = assert(sip.server { listen = { "udp:127.0.0.1:0", "tcp:127.0.0.1:0" }, t1 = 25 })
    servers[#servers + 1] = px
    local port = px:listener(0).port
    local finals = {}
    px:on_request(function(req)
      local first = req.ruri.user == "down" and "sip:bob@forkdown.test;transport=tcp" or "sip:bob@fork.test"
      finals = {}
      proxy.relay(req, { first, "sip:carol@127.0.0.1:5078" }, {
        on_response = function(_, branch, status)
          finals[#finals + 1] = branch .. ":" .. status
        end,
      })
    end)
    -- the first branch's first DNS target answers 503: that branch moves
    -- to the next target (not the round: the 486 branch is not repeated)
    local f0 = server:stats().dns_failovers
    uas[5079], uas[5078], uas[5073] = 0, 0, 0
    local res = send("sip:bob@127.0.0.1:" .. port)
    assert.equal(200, res.status)
    assert.equal("from 5073", res.reason)
    assert.equal(1, uas[5079])
    assert.equal(1, uas[5078])
    assert.equal(1, uas[5073])
    assert.equal(f0 + 1, server:stats().dns_failovers)
    assert.is_true(require("luasip.core").dns_avoided("udp", "127.0.0.1", 5079))
    table.sort(finals)
    assert.equal("1:503 2:486 3:200", table.concat(finals, " "))
    -- the first TCP target refuses the connection
    uas[5074], uas[5078] = 0, 0
    res = send("sip:down@127.0.0.1:" .. port)
    assert.equal(200, res.status)
    assert.equal("from 5074", res.reason)
    assert.equal(1, uas[5074])
    assert.equal(1, uas[5078])
    assert.equal(f0 + 2, server:stats().dns_failovers)
    assert.is_true(require("luasip.core").dns_avoided("tcp", "127.0.0.1", 5092))
  end)

  it("a response to a Via whose maddr is a host name is sent to its address (§18.2.2, RFC 3263 §5)", function()
    local srv = start_uas("udp:127.0.0.1:0", 200)
    servers[#servers + 1] = srv
    local port = srv:listener(0).port
    local back = N.udp("127.0.0.2") -- where back.test points
    local from = N.udp()
    local bytes = N.request {
      uri = "sip:bob@127.0.0.1:" .. port,
      via = "SIP/2.0/UDP 127.0.0.1:" .. back.port .. ";maddr=back.test;branch=z9hG4bK" .. N.unique("m"):gsub("%.", ""),
    }
    from:send(bytes, "127.0.0.1", port)
    local data = back:recv(3)
    assert.is_not_nil(data, "no response at back.test's address")
    assert.truthy(data:find("^SIP/2.0 200"))
    assert.equal(0, from:pending())
    assert.equal(1, srv:stats().responses_resolved)
    -- a name that does not resolve: the response is dropped (no crash)
    bytes = N.request {
      uri = "sip:bob@127.0.0.1:" .. port,
      via = "SIP/2.0/UDP 127.0.0.1:" .. back.port .. ";maddr=nx-back.test;branch=z9hG4bK"
        .. N.unique("n"):gsub("%.", ""),
    }
    local answered = uas[port]
    from:send(bytes, "127.0.0.1", port)
    N.pump_until(function()
      return uas[port] > answered
    end, 3)
    assert.equal(answered + 1, uas[port])
    assert.equal(1, srv:stats().responses_resolved)
    back:close()
    from:close()
  end)

  it("TLS through DNS: the certificate is verified against the URI's domain (RFC 5922)", function()
    -- a CA, and a certificate for DNS:tls.test only (not the address, not
    -- the SRV target uas.tls.test)
    local dir = N.tmpdir()
    local f = assert(io.open(dir .. "/openssl.cnf", "w"))
    f:write("[req]\ndistinguished_name = dn\nprompt = no\n[dn]\nCN = placeholder\n",
      "[ca_ext]\nbasicConstraints = critical, CA:TRUE\nkeyUsage = critical, keyCertSign, cRLSign\n",
      "[leaf_ext]\nbasicConstraints = critical, CA:FALSE\nkeyUsage = critical, digitalSignature\n",
      "extendedKeyUsage = serverAuth, clientAuth\nsubjectAltName = DNS:tls.test\n")
    f:close()
    local key = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
    local function p(name)
      return "'" .. dir .. "/" .. name .. "'"
    end
    N.sh(string.format("openssl req -config %s -x509 %s -keyout %s -out %s -days 2 -subj '/CN=dns test CA'"
      .. " -extensions ca_ext", p("openssl.cnf"), key, p("ca.key"), p("ca.pem")))
    N.sh(string.format("openssl req -config %s -new %s -keyout %s -out %s -subj '/CN=tls.test'",
      p("openssl.cnf"), key, p("leaf.key"), p("leaf.csr")))
    N.sh(string.format("openssl x509 -req -in %s -CA %s -CAkey %s -CAcreateserial -out %s -days 2"
      .. " -extfile %s -extensions leaf_ext", p("leaf.csr"), p("ca.pem"), p("ca.key"), p("leaf.pem"),
      p("openssl.cnf")))
    local tls = { cert = dir .. "/leaf.pem", key = dir .. "/leaf.key", ca = dir .. "/ca.pem" }
    local uas_srv = assert(sip.server { listen = { "tls:127.0.0.1:5094" }, tls = tls })
    servers[#servers + 1] = uas_srv
    uas_srv:on_request(function(req)
      req:reply(200, "over TLS")
    end)
    local client = assert(sip.server { listen = { "tls:127.0.0.1:0", "udp:127.0.0.1:0" }, tls = tls, t1 = 25 })
    servers[#servers + 1] = client
    local t = assert(resolve("sips:bob@tls.test"))
    assert.equal("tls:127.0.0.1:5094", dests(t))
    assert.equal("tls.test", t[1].tls_name)
    local res = N.run_task(function()
      return client:send(options("sips:bob@tls.test"))
    end, 10)
    assert.equal(200, res.status, res.reason)
    assert.equal("over TLS", res.reason)
    assert.equal(0, client:stats().tls_verify_failures)
    -- proxy.relay and its TLS branch
    local proxy = require "luasip.proxy"
    client:on_request(function(req)
      proxy.relay(req, "sips:bob@tls.test")
    end)
    local port = client:listener(1).port
    res = send("sip:bob@127.0.0.1:" .. port)
    assert.equal(200, res.status, res.reason)
    assert.equal("over TLS", res.reason)
    assert.equal(0, client:stats().tls_verify_failures)
    N.rmdir(dir)
  end)

  it("a sip: URI without NAPTR also finds _sips._tcp (RFC 3263 §4.2)", function()
    local t = assert(resolve("sip:bob@stls.test"))
    assert.equal("tls:127.0.0.1:5095", dests(t))
    assert.equal("stls.test", t[1].tls_name)
    assert.equal("udp:127.0.0.1:5073 tls:127.0.0.1:5094", dests(resolve("sip:bob@mix.test")))
  end)

  it("IPv6: an AAAA-only name gives [::1]", function()
    if not N.have_ipv6() then
      pending("no IPv6 on loopback")
      return
    end
    assert.equal("udp:[::1]:5076", dests(resolve("sip:bob@v6.test:5076")))
    local res = send("sip:bob@v6.test:5076")
    assert.equal(200, res.status)
    assert.equal("from 5076", res.reason)
  end)

  it("a stopped DNS server: the lookup fails within the timeout, requests keep flowing", function()
    dnsmasq:pause()
    local done, t0, took, err_name
    local answered = 0
    sip.spawn(function()
      t0 = socket.gettime()
      local _, _, name = sip.resolve("sip:bob@slow.test")
      took = socket.gettime() - t0
      err_name = name
      done = true
    end)
    -- meanwhile: OPTIONS to a numeric UAS, one after the other
    sip.spawn(function()
      while not done do
        local res = server:send(options("sip:bob@127.0.0.1:5073"))
        if res.status == 200 then
          answered = answered + 1
        end
      end
    end)
    N.pump_until(function()
      return done
    end, 5)
    dnsmasq:resume()
    assert.is_true(done, "the lookup never ended")
    assert.equal("ETIMEDOUT", err_name)
    -- the configured timeout is 1 s: it waited, then gave up within it
    -- (plus scheduling slack)
    assert.is_true(took >= 0.5 and took < 2, "took " .. tostring(took))
    assert.is_true(answered >= 5, "only " .. answered .. " requests answered meanwhile")
    N.pump_until(function()
      return dns.stats().pending == 0
    end, 2)
  end)

  it("TTL expiry: an answer is kept for its TTL, then asked again", function()
    dnsmasq:stop()
    dnsmasq = D.start(ttl_zone("127.0.0.1", 2), DNS_PORT)
    local t0 = socket.gettime()
    assert.equal("udp:127.0.0.1:5073", dests(resolve("sip:bob@ttl.test:5073")))
    -- the server's answer changes; within the TTL the cached one stays
    dnsmasq:stop()
    dnsmasq = D.start(ttl_zone("127.0.0.2", 2), DNS_PORT)
    if socket.gettime() - t0 < 1.5 then
      assert.equal("udp:127.0.0.1:5073", dests(resolve("sip:bob@ttl.test:5073")))
    end
    local misses = dns.stats().cache_misses
    N.pump_for(math.max(0, t0 + 2.3 - socket.gettime()))
    assert.equal("udp:127.0.0.2:5073", dests(resolve("sip:bob@ttl.test:5073")))
    assert.is_true(dns.stats().cache_misses > misses)
    dnsmasq:stop()
    dnsmasq = D.start(ZONE, DNS_PORT)
  end)

  it("flood protection trusts a dispatcher destination's name by its addresses, as it re-resolves", function()
    local dispatcher = require "luasip.dispatcher"
    dnsmasq:stop()
    dnsmasq = D.start(ttl_zone("127.0.0.2", 1), DNS_PORT)
    dns.flush()
    local srv = assert(sip.server { listen = { "udp:127.0.0.1:0" }, flood = { invite = 1000, other = 1000 } })
    servers[#servers + 1] = srv
    local port = srv:listener(0).port
    srv:on_request(function(req)
      req:reply(200)
    end)
    -- one OPTIONS from ip: was it counted as trusted?
    local function trusted(ip)
      local u = assert(socket.udp())
      assert(u:setsockname(ip, 0))
      local st = srv:stats()
      local requests, before = st.requests, st.flood_trusted
      u:sendto(N.request { via_host = ip, rport = true }, "127.0.0.1", port)
      N.pump_until(function()
        return srv:stats().requests > requests
      end, 2)
      u:close()
      return srv:stats().flood_trusted > before
    end
    local function eventually(ip, want)
      for _ = 1, 40 do
        if trusted(ip) == want then
          return true
        end
        N.pump_for(0.1)
      end
      return false
    end
    dispatcher.set("named", { "sip:ttl.test:5099" }, { server = srv, trust_refresh = 0.3 })
    assert.is_true(eventually("127.0.0.2", true))
    assert.is_false(trusted("127.0.0.3"))
    -- the name moves: the new address is trusted, the old one no longer
    dnsmasq:stop()
    dnsmasq = D.start(ttl_zone("127.0.0.3", 1), DNS_PORT)
    assert.is_true(eventually("127.0.0.3", true))
    assert.is_true(eventually("127.0.0.2", false))
    -- the set goes: so does the trust
    dispatcher.reset()
    assert.is_false(trusted("127.0.0.3"))
    dnsmasq:stop()
    dnsmasq = D.start(ZONE, DNS_PORT)
  end)

  it("srv:stats() counts lookups, cache hits, failures and failovers", function()
    local st = server:stats()
    assert.is_true(st.dns_lookups > 1000)
    assert.is_true(st.dns_cache_hits > 1000)
    assert.is_true(st.dns_failures >= 3)
    assert.is_true(st.dns_failovers >= 3)
    assert.is_true(st.dns_timeouts >= 1)
  end)
end)

describe("luasip.ua with host names", function()
  it("sends the ACK for a 2xx to the 2xx's Contact host name, resolved (RFC 3263)", function()
    local ua = require "luasip.ua"
    local sa = assert(sip.server { listen = { "udp:127.0.0.1:0" }, t1 = 25 })
    local sb = assert(sip.server { listen = { "udp:127.0.0.1:0" }, t1 = 25 })
    local port = sb:listener(0).port
    local alice = U.ua(sa)
    local bob = ua.new(sb, { contact = "<sip:bob@a.test:" .. port .. ">" })
    local bd
    sb:on_request(function(req)
      if bob:handle(req) then
        return
      end
      bd = bob:answer(req)
    end)
    local d, res = N.run_task(function()
      return alice:invite { to = "sip:bob@127.0.0.1:" .. port }
    end, 10)
    assert.is_truthy(d, tostring(res))
    assert.equal("sip:bob@a.test:" .. port, d:details().remote_target)
    assert.is_truthy(N.pump_until(function() return bd and bd.acked end, 3), "no ACK at the UAS")
    local bye = N.run_task(function() return d:bye() end, 10)
    assert.equal(200, bye.status)
    sa:close()
    sb:close()
  end)
end)
