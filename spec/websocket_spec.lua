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

  describe("examples/webphone.lua", function()
    local proxy, ws_port, udp_port, ua, seen

    before_each(function()
      local script = dofile("examples/webphone.lua")
      proxy = N.server {
        listen = { "ws:" .. V4 .. ":0", "udp:" .. V4 .. ":0" },
        sanity = script.server.sanity, http_root = script.server.http_root,
      }
      ws_port, udp_port = proxy:listener(0).port, proxy:listener(1).port
      N.run_task(function()
        script.setup { options = { nat = true, location = "memory", algorithms = "SHA-256,MD5",
          ["nonce-lifetime"] = 300 }, server = proxy, state = {} }
      end)
      proxy:on_request(script.request)
      -- the "browser": a WS client reachable only over its connection
      seen = {}
      ua = N.server { listen = { "udp:" .. V4 .. ":0" } }
      ua:on_request(function(req)
        seen[#seen + 1] = { method = req.method, rr = req:headers("Record-Route"),
          src = req:source(), uri = req.uri }
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
  end)
end)
