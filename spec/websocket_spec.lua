-- SIP over WebSocket (RFC 7118) on 127.0.0.1: luasip as a WS client
-- (srv:send to a ws: next hop, the .invalid Via), and examples/webphone.lua
-- (registrar + proxy) routing between a WS client and UDP: requests to the
-- WS client go over its own connection, double Record-Route on a
-- transport change, the demo files on the WebSocket port.
-- Loopback only: every address used is 127.0.0.1, and the Contacts name
-- .invalid hosts, which are never resolved.
local here = debug.getinfo(1, "S").source:gsub("^@", ""):match("^(.*)/[^/]*$") or "."
local N = dofile(here .. "/support/net.lua")
local sip = require "luasip"
local dns = require "luasip.dns"
local proxy_lib = require "luasip.proxy"

local V4 = N.V4

describe("WebSocket", function()
  after_each(N.cleanup)

  it("srv:send reaches a ws: server, with an .invalid Via, and the answer comes back", function()
    local seen
    local ws = N.server { listen = { "ws:" .. V4 .. ":0" } }
    local l = ws:listener(0)
    assert.are.equal("WS", l.transport)
    ws:on_request(function(req)
      seen = { via = tostring(req.via[1].raw), src = req:source() }
      req:reply(200)
    end)
    local ua = N.server { listen = { "udp:" .. V4 .. ":0" } }
    local res = N.run_task(function()
      return ua:send(assert(sip.request {
        method = "OPTIONS", uri = "sip:x@" .. V4 .. ":" .. l.port .. ";transport=ws",
        from = "<sip:ua@example.invalid>",
      }))
    end)
    assert.are.equal(200, res.status)
    assert.is_truthy(seen.via:match("^SIP/2%.0/WS %x+%.invalid;branch=z9hG4bK"), seen.via)
    assert.are.equal("WS", seen.src.transport)
    -- the same connection for the next request
    res = N.run_task(function()
      return ua:send(assert(sip.request {
        method = "OPTIONS", uri = "sip:x@" .. V4 .. ":" .. l.port .. ";transport=ws",
        from = "<sip:ua@example.invalid>",
      }))
    end)
    assert.are.equal(200, res.status)
    assert.are.equal(1, ws:stats().ws_upgrades)
  end)

  it("a ws: next hop that is not a WebSocket server: 503, and the server goes on", function()
    local tcp = N.server { listen = { "tcp:" .. V4 .. ":0" } }
    tcp:on_request(function(req) req:reply(200) end)
    local port = tcp:listener(0).port
    local ua = N.server { listen = { "udp:" .. V4 .. ":0" } }
    local res = N.run_task(function()
      return ua:send(assert(sip.request {
        method = "OPTIONS", uri = "sip:x@" .. V4 .. ":" .. port .. ";transport=ws",
        from = "<sip:ua@example.invalid>",
      }))
    end)
    assert.are.equal(503, res.status)
  end)

  it("luasip run: --listen wss: takes --tls-cert and --tls-key (no script edit)", function()
    local dir = N.tmpdir()
    N.sh(string.format("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
      .. "-keyout '%s/k.pem' -out '%s/c.pem' -days 1 -subj /CN=localhost", dir, dir))
    local function run(extra)
      local p = assert(io.popen("timeout -s TERM 1 bin/luasip run examples/webphone.lua "
        .. "--listen wss:127.0.0.1:0 --listen udp:127.0.0.1:0 " .. extra .. " 2>&1"))
      local out = p:read("a")
      p:close()
      return out
    end
    local ok = run(string.format("--tls-cert '%s/c.pem' --tls-key '%s/k.pem'", dir, dir))
    local refused = run("")
    N.rmdir(dir)
    assert.is_truthy(ok:find("serving examples/webphone.lua on wss:127.0.0.1:%d+ udp:127.0.0.1:%d+"), ok)
    assert.is_truthy(refused:find("no TLS certificate configured", 1, true), refused)
  end)

  it("proxy.flow_of: received for outbound, WebSocket and .invalid bindings only", function()
    assert.are.equal("udp:127.0.0.1:5070", proxy_lib.flow_of {
      contact = "<sip:c@127.0.0.1:1>", received = "udp:127.0.0.1:5070", reg_id = 1 })
    assert.are.equal("ws:127.0.0.1:50674", proxy_lib.flow_of {
      contact = "<sip:c@127.0.0.1:1;transport=ws>", received = "ws:127.0.0.1:50674" })
    assert.are.equal("tcp:127.0.0.1:4000", proxy_lib.flow_of {
      contact = "<sip:c@df7jal23ls0d.invalid;transport=tcp>", received = "tcp:127.0.0.1:4000" })
    assert.is_nil(proxy_lib.flow_of { contact = "<sip:c@127.0.0.1:1>", received = "udp:127.0.0.1:5070" })
    assert.is_nil(proxy_lib.flow_of { contact = "<sip:c@127.0.0.1:1;transport=ws>", reg_id = 1 })
  end)

  -- with --nat (every binding relayed to its received address) and
  -- without (only bindings reachable over their flow alone: proxy.flow_of)
  for _, nat in ipairs({ true, false }) do
  describe("examples/webphone.lua " .. (nat and "--nat" or "without --nat"), function()
    -- one location store for the process: AORs of their own per mode
    local bob, carol = nat and "bob-nat" or "bob", nat and "carol-nat" or "carol"
    local proxy, ws_port, udp_port, ua, seen

    after_each(function()
      if not nat then
        dns.configure {}
      end
    end)

    before_each(function()
      if not nat then
        -- a name from a message (an .invalid host, were it ever
        -- resolved) is asked on loopback only, where nothing answers
        assert(dns.configure { servers = V4 .. ":9", timeout = 1, tries = 1 })
      end
      local script = dofile("examples/webphone.lua")
      proxy = N.server {
        listen = { "ws:" .. V4 .. ":0", "udp:" .. V4 .. ":0" },
        sanity = script.server.sanity, http_root = script.server.http_root,
      }
      ws_port, udp_port = proxy:listener(0).port, proxy:listener(1).port
      N.run_task(function()
        script.setup { options = { nat = nat, location = "memory", algorithms = "SHA-256,MD5",
          ["nonce-lifetime"] = 300 }, server = proxy, state = {} }
      end)
      proxy:on_request(script.request)
      -- the "browser": a WS client reachable only over its connection
      seen = {}
      ua = N.server { listen = { "udp:" .. V4 .. ":0" } }
      ua:on_request(function(req)
        seen[#seen + 1] = { method = req.method, rr = req:headers("Record-Route"),
          src = req:source(), uri = req.uri, route = req:headers("Route") }
        req:reply(req.method == "INVITE" and 486 or 200)
      end)
      local res = N.run_task(function()
        return ua:send(assert(sip.request {
          method = "REGISTER", uri = "sip:" .. V4 .. ":" .. ws_port .. ";transport=ws",
          from = "<sip:alice@" .. V4 .. ">", to = "<sip:alice@" .. V4 .. ">",
          contact = "<sip:x7k2@df7jal23ls0d.invalid;transport=ws>;expires=300",
        }))
      end)
      assert.are.equal(200, res.status)
    end)

    it("relays a UDP request to the WS client over its connection, record-routed twice", function()
      local u = N.udp()
      local bytes = N.request { method = "INVITE", uri = "sip:alice@" .. V4, via_host = V4,
        via_port = u.port, rport = true,
        headers = { "Contact: <sip:bob@" .. V4 .. ":" .. u.port .. ">" } }
      u:send(bytes, V4, udp_port)
      local final
      N.pump_until(function()
        local d = u:recv(0.05)
        local m = d and N.parse(d)
        if m and m.status and m.status >= 200 then
          final = m
        end
        return final
      end, 5)
      assert.is_truthy(final, "no final response over UDP")
      assert.are.equal(486, final.status)
      assert.are.equal(1, #seen)
      assert.are.equal("INVITE", seen[1].method)
      assert.are.equal("WS", seen[1].src.transport)
      local rr = table.concat(seen[1].rr, ",")
      assert.is_truthy(rr:find(":" .. ws_port .. ";transport=ws;lr", 1, true), rr)
      assert.is_truthy(rr:find(":" .. udp_port .. ";lr", 1, true), rr)
      assert.are.equal(2, #seen[1].rr)
    end)

    it("relays a request from the WS client to another WS client", function()
      local ua2 = N.server { listen = { "udp:" .. V4 .. ":0" } }
      -- the proxy as the next hop, over WebSocket
      local res = N.run_task(function()
        return ua2:send(assert(sip.request {
          method = "MESSAGE", uri = "sip:alice@" .. V4,
          from = "<sip:bob@" .. V4 .. ">", to = "<sip:alice@" .. V4 .. ">",
          body = "hi", content_type = "text/plain",
        }), "ws:" .. V4 .. ":" .. ws_port)
      end)
      assert.are.equal(200, res.status)
      assert.are.equal("MESSAGE", seen[#seen].method)
      assert.are.equal("WS", seen[#seen].src.transport)
    end)

    it("serves the demo page on the WebSocket port, and nothing outside its folder", function()
      local function get(path)
        local p = assert(N.tcp(V4, ws_port))
        p:send("GET " .. path .. " HTTP/1.1\r\nHost: " .. V4 .. "\r\n\r\n")
        p:wait_closed(3) -- the server closes after one answer
        return p.buf
      end
      local index = get("/")
      assert.is_truthy(index:match("^HTTP/1%.1 200 "), index)
      assert.is_truthy(index:find("Content-Type: text/html", 1, true), index)
      local bad = get("/../proxy.lua")
      assert.is_truthy(bad:match("^HTTP/1%.1 404 "), bad)
    end)

    it("a request in the WS client's dialog reaches it over its connection (its Contact rewritten)", function()
      -- bob, over UDP
      local bob_seen
      local bob_srv = N.server { listen = { "udp:" .. V4 .. ":0" } }
      local bob_port = bob_srv:listener(0).port
      bob_srv:on_request(function(req)
        bob_seen = { contact = req.contacts[1].uri, rr = req:headers("Record-Route") }
        req:reply(486)
      end)
      local res = N.run_task(function()
        return bob_srv:send(assert(sip.request {
          method = "REGISTER", uri = "sip:" .. V4 .. ":" .. udp_port,
          from = "<sip:" .. bob .. "@" .. V4 .. ">", to = "<sip:" .. bob .. "@" .. V4 .. ">",
          contact = "<sip:" .. bob .. "@" .. V4 .. ":" .. bob_port .. ">;expires=300",
        }))
      end)
      assert.are.equal(200, res.status)
      -- the WS client calls bob over its connection
      res = N.run_task(function()
        return ua:send(assert(sip.request {
          method = "INVITE", uri = "sip:" .. bob .. "@" .. V4,
          from = "<sip:alice@" .. V4 .. ">", to = "<sip:" .. bob .. "@" .. V4 .. ">",
          contact = "<sip:x7k2@df7jal23ls0d.invalid;transport=ws>",
        }), "ws:" .. V4 .. ":" .. ws_port)
      end)
      assert.are.equal(486, res.status)
      assert.is_truthy(bob_seen, "bob got no INVITE")
      local c = tostring(bob_seen.contact)
      assert.is_falsy(c:find(".invalid", 1, true), c)
      assert.is_truthy(c:find("@" .. V4 .. ":%d+;transport=ws"), c)
      -- bob's BYE along the route set, to that Contact
      local u = N.udp()
      local headers = {}
      for _, rr in ipairs(bob_seen.rr) do
        headers[#headers + 1] = "Route: " .. rr
      end
      u:send(N.request { method = "BYE", uri = c:match("^<?([^>]*)>?$"), via_port = u.port,
        to = "<sip:alice@" .. V4 .. ">;tag=a1", headers = headers }, V4, udp_port)
      local final
      N.pump_until(function()
        local d = u:recv(0.05)
        local m = d and N.parse(d)
        if m and m.status and m.status >= 200 then
          final = m
        end
        return final
      end, 5)
      assert.is_truthy(final, "no final response to the BYE")
      assert.are.equal(200, final.status)
      assert.are.equal("BYE", seen[#seen].method)
      assert.are.equal("WS", seen[#seen].src.transport)
      assert.are.equal(0, #seen[#seen].route)
    end)

    it("an outbound registration (reg-id) is reached over its flow, not at its Contact", function()
      local u = N.udp()
      u:send(N.request { method = "REGISTER", uri = "sip:" .. V4 .. ":" .. udp_port, via_port = u.port,
        from = "<sip:" .. carol .. "@" .. V4 .. ">;tag=r1", to = "<sip:" .. carol .. "@" .. V4 .. ">",
        headers = { "Supported: outbound", "Expires: 300",
          -- nothing listens at port 1: only the flow reaches carol
          "Contact: <sip:" .. carol .. "@127.0.0.1:1;transport=udp>;reg-id=1;"
            .. '+sip.instance="<urn:uuid:00000000-0000-0000-0000-00000000000c>"' } }, V4, udp_port)
      local rd = u:recv(3)
      local reg = rd and N.parse(rd)
      assert.is_truthy(reg, "no answer to the REGISTER")
      assert.are.equal(200, reg.status)
      local caller = N.udp()
      caller:send(N.request { method = "MESSAGE", uri = "sip:" .. carol .. "@" .. V4, via_port = caller.port,
        to = "<sip:" .. carol .. "@" .. V4 .. ">", content_type = "text/plain", body = "hi" }, V4, udp_port)
      local got
      N.pump_until(function()
        local d = u:recv(0.05)
        local m = d and N.parse(d)
        if m and m.start:match("^MESSAGE ") then
          got = m
        end
        return got
      end, 3)
      assert.is_truthy(got, "the MESSAGE did not come over carol's flow")
    end)
  end)
  end
end)
