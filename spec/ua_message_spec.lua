-- luasip.ua.message on 127.0.0.1: MESSAGE (RFC 3428) sent and received,
-- the OPTIONS ping and its default answer; two luasip instances
-- (examples/message_bot.lua and this process) exchanging MESSAGEs through
-- `luasip run examples/proxy.lua`.
local here = debug.getinfo(1, "S").source:gsub("^@", ""):match("^(.*)/[^/]*$") or "."
local N = dofile(here .. "/support/net.lua")
local P = dofile(here .. "/support/proc.lua")
local message = require "luasip.ua.message"
local register = require "luasip.ua.register"

local V4 = N.V4

describe("luasip.ua.message", function()
  after_each(function()
    N.cleanup()
    P.cleanup()
  end)

  it("sends a MESSAGE and the handler gets body and type; its status is the answer", function()
    local got = {}
    local uas, l = N.server()
    local answer
    uas:on_request(message.handler(function(req, body, ctype)
      got[#got + 1] = { body = body, ctype = ctype, from = tostring(req.from.uri), to = req.to.tag }
      return answer
    end, { accept = { "text/plain", "application/im-iscomposing+xml" } }))
    local uac = N.server()
    local dest = "udp:" .. V4 .. ":" .. l.port
    local res = N.run_task(function()
      return message.message{ server = uac, to = "sip:bob@example.com", from = "Alice <sip:alice@example.com>",
                              body = "hello, Bob", dest = dest }
    end)
    assert.equal(200, res.status)
    assert.same({ body = "hello, Bob", ctype = "text/plain", from = "sip:alice@example.com" }, got[1])
    answer = 202
    res = N.run_task(function()
      return message.message{ server = uac, to = "<sip:bob@example.com>", from = "sip:alice@example.com",
                              body = "<x/>", content_type = "application/im-iscomposing+xml", dest = dest }
    end)
    assert.equal(202, res.status)
    assert.equal("application/im-iscomposing+xml", got[2].ctype)
    -- a type not accepted: 415 with Accept, the handler not called
    res = N.run_task(function()
      return message.message{ server = uac, to = "sip:bob@example.com", from = "sip:alice@example.com",
                              body = "<html/>", content_type = "text/html", dest = dest }
    end)
    assert.equal(415, res.status)
    assert.equal("text/plain, application/im-iscomposing+xml", res:header("Accept"))
    assert.equal(2, #got)
  end)

  it("answers a 401 with credentials", function()
    local auth = require "luasip.auth"
    local uas, l = N.server()
    local n = 0
    uas:on_request(function(req)
      n = n + 1
      if auth.authenticate(req, function(u) return u == "alice" and "pw" or nil end,
                           { realm = "example.com", proxy = false }) then
        req:reply(200)
      end
    end)
    local uac = N.server()
    local res = N.run_task(function()
      return message.message{ server = uac, to = "sip:bob@example.com", from = "sip:alice@example.com",
                              body = "x", dest = "udp:" .. V4 .. ":" .. l.port,
                              credentials = { user = "alice", password = "pw" } }
    end)
    assert.equal(200, res.status)
    assert.equal(2, n)
  end)

  it("pings with OPTIONS; the default answer lists Allow and Accept", function()
    local uas, l = N.server()
    uas:on_request(message.options_handler{ allow = { INVITE = true, MESSAGE = true }, supported = { "100rel" } })
    local uac = N.server()
    local res = N.run_task(function()
      return message.ping("sip:127.0.0.1:" .. l.port, { server = uac })
    end)
    assert.equal(200, res.status)
    assert.equal("INVITE, MESSAGE, OPTIONS", res:header("Allow"))
    assert.equal("application/sdp, text/plain", res:header("Accept"))
    assert.equal("100rel", res:header("Supported"))
    -- a port with no one: the timeout given
    local probe = N.server()
    local dead = probe:listener(0).port
    probe:close()
    local none, err, name = N.run_task(function()
      return message.ping("sip:127.0.0.1:" .. dead, { server = uac, timeout = 0.3 })
    end)
    assert.is_nil(none)
    assert.equal("TIMEOUT", name)
    assert.matches("^TIMEOUT", err)
    -- a refused TCP connection: no response (the 503 was made up here)
    local tcp = N.server({ listen = { "tcp:127.0.0.1:0" } })
    local tport = tcp:listener(0).port
    tcp:close()
    local uac2 = N.server({ listen = { "udp:127.0.0.1:0", "tcp:127.0.0.1:0" } })
    none, err, name = N.run_task(function()
      return message.ping("sip:127.0.0.1:" .. tport .. ";transport=tcp", { server = uac2 })
    end)
    assert.is_nil(none)
    assert.equal("NORESPONSE", name)
    assert.matches("503", err)
  end)

  it("refuses misuse", function()
    assert.has_error(function()
      message.message{ to = "sip:a@x", from = "sip:b@x", body = "" }
    end)
    local uac = N.server()
    assert.has_error(function()
      message.message{ server = uac, to = "sip:a@x", from = "sip:b@x", body = "x" } -- not in a coroutine
    end, "message() must run inside a request handler or sip.spawn()")
    assert.has_error(function()
      message.ping("sip:a@x")
    end)
  end)

  it("two luasip instances exchange MESSAGEs through examples/proxy.lua", function()
    local proxy = P.start({ "run", "examples/proxy.lua", "--listen", "udp:127.0.0.1:0", "--domain", "example.com" })
    local pport = assert(proxy:port("udp"), proxy:log())
    local via = "udp:" .. V4 .. ":" .. pport
    local bot = P.start({ "run", "examples/message_bot.lua", "--listen", "udp:127.0.0.1:0",
                          "--register", "sip:example.com", "--aor", "sip:bot@example.com",
                          "--proxy", via, "--expires", "60" })
    assert(bot:port("udp"), bot:log())
    assert(bot:wait_log("registration of sip:bot@example.com: registered %(200%)", 5), bot:log())

    local alice = N.server()
    local inbox = {}
    alice:on_request(message.handler(function(_, body)
      inbox[#inbox + 1] = body
    end))
    local reg = register.register{ server = alice, registrar = "sip:example.com", dest = via,
                                   aor = "sip:alice@example.com", expires = 60 }
    assert.equal("registered", N.run_task(function()
      return reg:wait("registered", 3)
    end))
    local res = N.run_task(function()
      return message.message{ server = alice, to = "sip:bot@example.com", from = "sip:alice@example.com",
                              body = "ping 1", dest = via }
    end)
    assert.equal(200, res.status)
    assert.truthy(N.pump_until(function()
      return #inbox > 0
    end, 3), bot:log())
    assert.same({ "echo: ping 1" }, inbox)
    assert.matches("MESSAGE from sip:alice@example.com %(text/plain%): ping 1", bot:log())
    assert.truthy(N.pump_until(function() -- our 200 reaches the bot after the MESSAGE
      return bot:log():find("reply to sip:alice@example.com: 200 OK", 1, true)
    end, 3), bot:log())
    -- the proxy answers OPTIONS to itself; the bot answers its own
    res = N.run_task(function()
      return message.ping("sip:bot@example.com", { server = alice, dest = via, timeout = 3 })
    end)
    assert.equal(200, res.status)
    assert.equal("MESSAGE, OPTIONS", res:header("Allow"))
    N.run_task(function()
      return reg:unregister()
    end)
  end)
end)
