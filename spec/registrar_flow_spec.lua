-- Issue [edge], connection slots: a REGISTER that creates an RFC 5626 flow
-- (+sip.instance and reg-id, Supported: outbound) over TCP marks its
-- connection as a registered flow (req:keep_flow), so when the slots run
-- short it is evicted last, after connections that only carried a message
-- more recently. Loopback only (127.0.0.1).
local N = require "spec.support.net"
local registrar = require "luasip.registrar"
local location = require "luasip.location"

local V4 = N.V4

local function register(port, t)
  t = t or {}
  local contact = "<sip:alice@127.0.0.1:" .. port .. ";transport=tcp;ob>"
    .. (t.instance and (';+sip.instance="<urn:uuid:' .. t.instance .. '>"') or "")
    .. (t.reg_id and (";reg-id=" .. t.reg_id) or "")
  return (N.request {
    method = "REGISTER",
    uri = "sip:127.0.0.1",
    transport = "TCP",
    from = "<sip:alice@127.0.0.1>;tag=" .. N.unique("t"):gsub("%.", ""),
    to = "<sip:alice@127.0.0.1>",
    headers = { "Contact: " .. contact, "Supported: outbound", "Expires: 600" },
  })
end

describe("registrar and connection slots (RFC 5626 flows)", function()
  after_each(function()
    N.cleanup()
  end)

  -- Three slots: a registered flow (a), then two connections with newer
  -- messages (b, c); a newcomer (d) takes a slot. Without the flow mark the
  -- oldest message is a's, so a was the one closed.
  local function run(instance, reg_id)
    local srv = N.server { listen = { "tcp:127.0.0.1:0" }, max_connections = 3 }
    local store = assert(location.open("memory"))
    srv:on_request(function(req)
      if req.method == "REGISTER" then
        registrar.save(req, { location = store })
      else
        req:reply(200)
      end
    end)
    local port = srv:listener(0).port
    local a = assert(N.tcp(V4, port))
    a:send(register(port, { instance = instance, reg_id = reg_id }))
    local m = assert(a:read_message(2), "no answer to the REGISTER")
    assert.equal(200, N.parse(m).status)
    N.pump_for(0.02)
    local b = assert(N.tcp(V4, port))
    b:send(N.request { transport = "TCP" })
    assert.is_truthy(b:read_message(2))
    N.pump_for(0.02)
    local c = assert(N.tcp(V4, port))
    c:send(N.request { transport = "TCP" })
    assert.is_truthy(c:read_message(2))
    N.pump_for(0.02)
    local d = assert(N.tcp(V4, port))
    d:send(N.request { transport = "TCP" })
    assert.is_truthy(d:read_message(2), "the newcomer got no answer")
    assert.equal(1, srv:stats().conn_evicted)
    return a, b
  end

  it("keeps the connection of a registered flow and evicts another", function()
    local a, b = run("00000000-0000-0000-0000-00000000000a", 1)
    assert.is_truthy(b:wait_closed(2), "b (no flow, oldest message after a) was not evicted")
    a:send(N.request { transport = "TCP" })
    assert.is_truthy(a:read_message(2), "the registered flow was evicted")
  end)

  it("does not keep a connection whose REGISTER made no flow (no reg-id)", function()
    local a, b = run(nil, nil)
    assert.is_truthy(a:wait_closed(2), "a (oldest message, no flow) was not evicted")
    b:send(N.request { transport = "TCP" })
    assert.is_truthy(b:read_message(2))
  end)

  it("req:keep_flow refuses a request that came over UDP", function()
    local srv = N.server()
    local got
    srv:on_request(function(req)
      got = { req:keep_flow() }
      req:reply(200)
    end)
    local uac = N.udp(V4)
    uac:send(N.request { via_port = uac.port }, V4, srv:listener(0).port)
    assert(uac:recv(2))
    assert.is_nil(got[1])
    assert.equal("INVAL", got[3])
  end)
end)
