-- luasip.ua.register (the registration client) against luasip registrars
-- on 127.0.0.1: an in-process one (registrar.save, min_expires lowered) and
-- `luasip run examples/registrar.lua --users` (the 401 path). Refresh,
-- 423 Min-Expires, unregister, back-off while the registrar is away.
local here = debug.getinfo(1, "S").source:gsub("^@", ""):match("^(.*)/[^/]*$") or "."
local N = dofile(here .. "/support/net.lua")
local P = dofile(here .. "/support/proc.lua")
local registrar = require "luasip.registrar"
local location = require "luasip.location"
local register = require "luasip.ua.register"
local sip = require "luasip"

local V4 = N.V4
local store = assert(location.open("memory"))

local seq = 0
local function aor()
  seq = seq + 1
  return string.format("sip:rc%d.%d@example.com", seq, math.random(1, 1e9))
end

-- A registrar server; `seen` gets every REGISTER it took.
local function registrar_server(opts, listen)
  local seen = {}
  local srv, l = N.server({ listen = listen })
  srv:on_request(function(req)
    seen[#seen + 1] = { cseq = req.cseq, expires = req:header("Expires"), call_id = req.call_id,
                        contact = req:header("Contact"), auth = req:header("Authorization") }
    registrar.save(req, { location = store, min_expires = opts.min_expires or 1 })
  end)
  return srv, l, seen
end

local function wait_state(reg, state, seconds)
  return N.pump_until(function()
    return reg:status().state == state
  end, seconds or 3)
end

describe("luasip.ua.register", function()
  after_each(function()
    N.cleanup()
    P.cleanup()
  end)

  it("refresh_delay and backoff", function()
    assert.equal(510, register.refresh_delay(600))
    assert.equal(25, register.refresh_delay(30))
    assert.equal(2, register.refresh_delay(4))
    assert.equal(1, register.backoff(1, 1, 8))
    assert.equal(4, register.backoff(3, 1, 8))
    assert.equal(8, register.backoff(9, 1, 8))
  end)

  it("registers, takes the expiry the registrar granted, refreshes before it ends, unregisters", function()
    local _, l, seen = registrar_server({ min_expires = 1 })
    local uac = N.server()
    local who = aor()
    local changes = {}
    local reg = register.register{
      server = uac, registrar = "sip:example.com", dest = "udp:" .. V4 .. ":" .. l.port,
      aor = who, expires = 3,
      on_change = function(_, state, status)
        changes[#changes + 1] = state .. ":" .. tostring(status)
      end,
    }
    assert.equal("registering", reg:status().state)
    assert.truthy(wait_state(reg, "registered"))
    local st = reg:status()
    assert.equal(200, st.status)
    assert.equal(3, st.expires)
    assert.equal(1.5, st.next_in) -- refresh_delay(3)
    assert.matches("expires=3", st.binding)
    -- the default Contact: our UDP listener, the AOR's user
    assert.equal("sip:" .. who:match("sip:([^@]+)") .. "@127.0.0.1:" .. uac:listener(0).port, st.contact)
    assert.equal(1, #seen)
    assert.equal("3", seen[1].expires)
    -- the refresh: same Call-ID, next CSeq, before the binding expired
    assert.truthy(N.pump_until(function()
      return #seen >= 3
    end, 6))
    assert.equal(seen[1].call_id, seen[3].call_id)
    assert.equal(seen[1].cseq + 2, seen[3].cseq)
    local live = N.run_task(function()
      return store:lookup(who)
    end)
    assert.equal(1, #live)
    assert.equal("registered", reg:status().state)

    local res = N.run_task(function()
      return reg:unregister()
    end)
    assert.equal(200, res.status)
    assert.equal("0", seen[#seen].expires)
    assert.equal("unregistered", reg:status().state)
    assert.is_nil(reg:status().expires)
    assert.equal(0, #N.run_task(function()
      return store:lookup(who)
    end))
    assert.same({ "registered:200", "unregistering:200", "unregistered:200" }, changes)
    -- no more REGISTERs after unregister
    local n = #seen
    N.pump_for(1.7)
    assert.equal(n, #seen)
  end)

  it("registers over WebSocket: luasip as a WS client of a luasip WS server", function()
    local _, l, seen = registrar_server({ min_expires = 1 }, { "ws:127.0.0.1:0" })
    local uac = N.server()
    local who = aor()
    local reg = register.register{
      server = uac, registrar = "sip:example.com", dest = "ws:" .. V4 .. ":" .. l.port,
      aor = who, expires = 60, contact = "sip:" .. who:match("sip:([^@]+)") .. "@df7jal23ls0d.invalid;transport=ws",
    }
    assert.truthy(wait_state(reg, "registered"))
    assert.equal(200, reg:status().status)
    assert.equal(1, #seen)
    local live = N.run_task(function()
      return store:lookup(who)
    end)
    assert.equal(1, #live)
    assert.matches("transport=ws", live[1].contact)
    local res = N.run_task(function()
      return reg:unregister()
    end)
    assert.equal(200, res.status)
    assert.equal("unregistered", reg:status().state)
  end)

  it("follows 423 Min-Expires and keeps the raised expiry for refreshes", function()
    local _, l, seen = registrar_server({ min_expires = 2 })
    local uac = N.server()
    local reg = register.register{
      server = uac, registrar = "sip:example.com", dest = "udp:" .. V4 .. ":" .. l.port,
      aor = aor(), expires = 1,
    }
    assert.truthy(wait_state(reg, "registered"))
    assert.equal(2, #seen)
    assert.equal("1", seen[1].expires)
    assert.equal("2", seen[2].expires)
    assert.equal(seen[1].cseq + 1, seen[2].cseq)
    assert.equal(2, reg:status().expires)
    assert.truthy(N.pump_until(function()
      return #seen >= 3
    end, 4))
    assert.equal("2", seen[3].expires)
    N.run_task(function()
      return reg:unregister()
    end)
  end)

  it("fails on a 423 without a usable Min-Expires and retries with back-off", function()
    local seen = 0
    local srv, l = N.server()
    srv:on_request(function(req)
      seen = seen + 1
      req:reply(423) -- no Min-Expires
    end)
    local uac = N.server()
    local reg = register.register{
      server = uac, registrar = "sip:example.com", dest = "udp:" .. V4 .. ":" .. l.port,
      aor = aor(), retry_base = 0.1, retry_max = 0.4,
    }
    assert.truthy(wait_state(reg, "failed"))
    assert.equal(423, reg:status().status)
    assert.equal(1, reg:status().failures)
    assert.equal(0.1, reg:status().next_in)
    assert.truthy(N.pump_until(function()
      return reg:status().failures >= 4
    end, 4))
    assert.equal(0.4, reg:status().next_in) -- 0.1, 0.2, 0.4, then the cap
    assert.equal(4, seen)
    N.run_task(function()
      return reg:unregister()
    end)
  end)

  it("backs off while the registrar is away (TCP refused) and registers when it is back", function()
    local probe = N.server({ listen = { "tcp:127.0.0.1:0" } })
    local port = probe:listener(0).port
    probe:close()
    local uac = N.server({ listen = { "udp:127.0.0.1:0", "tcp:127.0.0.1:0" } })
    local reg = register.register{
      server = uac, registrar = "sip:example.com;transport=tcp",
      dest = "tcp:" .. V4 .. ":" .. port, aor = aor(), expires = 60,
      retry_base = 0.2, retry_max = 0.8,
    }
    assert.truthy(N.pump_until(function()
      return reg:status().failures >= 3
    end, 5))
    local st = reg:status()
    assert.equal("failed", st.state)
    assert.equal(503, st.status)
    assert.matches(";transport=tcp$", st.contact)
    assert.equal(0.8, st.next_in)
    local _, _, seen = registrar_server({}, { "tcp:127.0.0.1:" .. port })
    assert.truthy(wait_state(reg, "registered", 3))
    assert.equal(0, reg:status().failures)
    assert.equal(1, #seen)
    N.run_task(function()
      return reg:unregister()
    end)
  end)

  it("keeps a TCP flow up with CRLF keep-alives and registers again when it breaks", function()
    local probe = N.server({ listen = { "tcp:127.0.0.1:0" } })
    local port = probe:listener(0).port
    probe:close()
    local rsrv, _, seen = registrar_server({}, { "tcp:127.0.0.1:" .. port })
    local uac = N.server({ listen = { "udp:127.0.0.1:0", "tcp:127.0.0.1:0" } })
    local reg = register.register{
      server = uac, registrar = "sip:127.0.0.1:" .. port .. ";transport=tcp", aor = aor(), expires = 60,
      keepalive = 0.2, retry_base = 60,
    }
    assert.truthy(wait_state(reg, "registered"))
    -- the registrar answers each double CRLF (counted there)
    assert.truthy(N.wait_stat(rsrv, "keepalives", 3, 3))
    assert.truthy(reg:status().keepalives >= 3)
    assert.equal(1, #seen)
    -- the registrar restarts: the flow is gone, the client registers again
    -- at once (not after its 60 s back-off or its 51 s refresh)
    rsrv:close()
    local _, _, seen2 = registrar_server({}, { "tcp:127.0.0.1:" .. port })
    assert.truthy(N.pump_until(function()
      return #seen2 >= 1 and reg:status().state == "registered"
    end, 3))
    assert.equal(0, reg:status().failures)
    N.run_task(function()
      return reg:unregister()
    end)
  end)

  it("waits in a coroutine: wait(state, seconds)", function()
    local _, l = registrar_server({})
    local uac = N.server()
    local reg = register.register{
      server = uac, registrar = "sip:example.com", dest = "udp:" .. V4 .. ":" .. l.port,
      aor = aor(), expires = 60,
    }
    assert.equal("registered", N.run_task(function()
      return reg:wait("registered", 3)
    end))
    local state, err = N.run_task(function()
      return reg:wait("failed", 0.2)
    end)
    assert.is_nil(state)
    assert.matches("^TIMEOUT", err)
    N.run_task(function()
      return reg:unregister()
    end)
  end)

  it("answers the 401 of examples/registrar.lua --users, and fails with a wrong password", function()
    local dir = N.tmpdir()
    local f = assert(io.open(dir .. "/users", "w"))
    f:write("alice:secret\n")
    f:close()
    local proc = P.start({ "run", "examples/registrar.lua", "--listen", "udp:127.0.0.1:0",
                           "--users", dir .. "/users", "--min-expires", "2" })
    local port = assert(proc:port("udp"), proc:log())
    local uac = N.server()
    local reg = register.register{
      server = uac, registrar = "sip:example.com", dest = "udp:" .. V4 .. ":" .. port,
      aor = "sip:alice@example.com", expires = 2,
      credentials = { user = "alice", password = "secret" },
    }
    assert.truthy(wait_state(reg, "registered", 5))
    local st = reg:status()
    assert.equal(200, st.status)
    assert.equal(2, st.cseq) -- 1 challenged, 2 with credentials
    -- refreshes go on (the nonce reused with nc 2, 3, ..., or a new
    -- challenge answered when it went stale)
    assert.truthy(N.pump_until(function()
      return reg:status().cseq >= 4
    end, 4))
    assert.equal("registered", reg:status().state)
    local res = N.run_task(function()
      return reg:unregister()
    end)
    assert.equal(200, res.status)

    local bad = register.register{
      server = uac, registrar = "sip:example.com", dest = "udp:" .. V4 .. ":" .. port,
      aor = "sip:alice@example.com", credentials = { user = "alice", password = "wrong" },
      retry_base = 60,
    }
    assert.truthy(wait_state(bad, "failed", 5))
    assert.equal(401, bad:status().status)
    N.run_task(function()
      return bad:unregister()
    end)
    N.rmdir(dir)
  end)

  it("refuses misuse", function()
    local uac = N.server()
    assert.has_error(function()
      register.register{ registrar = "sip:x", aor = "sip:a@x" }
    end)
    assert.has_error(function()
      register.register{ server = uac, registrar = "sip:x", aor = "not a uri" }
    end)
    assert.has_error(function()
      register.register{ server = uac, registrar = "sip:x;transport=tcp", aor = "sip:a@x" } -- no TCP listener
    end)
    assert.has_error(function()
      register.register{ server = uac, registrar = "sip:x", aor = "sip:a@x", credentials = "pw" }
    end)
    assert.is_function(sip.spawn)
  end)
end)
