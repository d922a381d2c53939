-- Issue [edge], brute-force protection: auth.guard with
-- auth.authenticate. After N failed digest attempts from one source or for
-- one user within a window, 403 for a while, in bounded memory. Clients are
-- luasip servers on 127.0.0.1 / 127.0.0.2 / 127.0.0.3 (loopback) sending
-- REGISTER with srv:send and answering the 401 with the given password.
local N = require "spec.support.net"
local sip = require "luasip"
local auth = require "luasip.auth"

local PASSWORDS = { alice = "secret", bob = "hunter2", carol = "pw3" }

local function lookup(user)
  return PASSWORDS[user]
end

describe("brute-force protection (auth.guard)", function()
  local uas, uas_port, guard, seen

  local function start(gopts)
    guard = auth.guard(gopts)
    seen = 0
    local l
    uas, l = N.server()
    uas_port = l.port
    uas:on_request(function(req)
      seen = seen + 1
      local user = auth.authenticate(req, lookup, { realm = "example.com", guard = guard })
      if user then
        req:reply(200)
      end
    end)
  end

  after_each(N.cleanup)

  local clients = {}
  local function client(ip)
    if not clients[ip] or clients[ip]:is_closed() then
      clients[ip] = N.server { listen = { "udp:" .. ip .. ":0" } }
    end
    return clients[ip]
  end

  -- REGISTER of user from ip with password: the final status.
  local function register(ip, user, password)
    local req = assert(sip.request({
      method = "REGISTER", uri = "sip:example.com:" .. uas_port,
      from = "<sip:" .. user .. "@example.com>;tag=" .. N.unique("t"):gsub("%.", ""),
      to = "<sip:" .. user .. "@example.com>",
      contact = "<sip:" .. user .. "@" .. ip .. ":5999>",
    }))
    local res = N.run_task(function()
      return client(ip):send(req, "udp:127.0.0.1:" .. uas_port, { credentials = function()
        return user, password
      end })
    end)
    return res.status, res.reason
  end

  it("answers 403 to a source after N failures, and still lets a user elsewhere register", function()
    start { failures = 3, window = 60, block = 300 }
    assert.equal(401, (register("127.0.0.2", "alice", "guess1")))
    assert.equal(401, (register("127.0.0.2", "bob", "guess2")))
    local status, reason = register("127.0.0.2", "carol", "guess3")
    assert.equal(403, status) -- the third failure: no new challenge
    assert.equal("Forbidden (too many failed attempts)", reason)
    -- blocked: answered before any digest, even with the right password
    local before = seen
    assert.equal(403, (register("127.0.0.2", "alice", "secret")))
    assert.equal(before + 1, seen) -- one request: the 403 came at once
    -- another source, another user: fine
    assert.equal(200, (register("127.0.0.1", "bob", "hunter2")))
    local list = guard:list()
    table.sort(list, function(a, b)
      return a.kind < b.kind
    end)
    assert.equal(1, #list)
    assert.same({ "source", "127.0.0.2" }, { list[1].kind, list[1].name })
    assert.is_true(list[1].remaining > 290000 and list[1].remaining <= 300000)
    local st = guard:stats()
    assert.equal(1, st.blocks)
    assert.equal(2, st.refused)
    assert.equal(1, st.blocked)
    assert.is_true(guard:unblock("source", "127.0.0.2"))
    assert.equal(200, (register("127.0.0.2", "alice", "secret")))
  end)

  it("blocks a user attacked from many sources, and only that user", function()
    start { failures = 3 }
    assert.equal(401, (register("127.0.0.1", "bob", "x1")))
    assert.equal(401, (register("127.0.0.2", "bob", "x2")))
    assert.equal(403, (register("127.0.0.3", "bob", "x3")))
    assert.equal(403, (register("127.0.0.1", "bob", "hunter2"))) -- the right one, too late
    assert.equal(200, (register("127.0.0.2", "alice", "secret")))
    assert.equal(200, (register("127.0.0.3", "carol", "pw3")))
    assert.same({ { kind = "user", name = "bob" } }, (function()
      local l = guard:list()
      l[1].remaining = nil
      return l
    end)())
  end)

  it("does not count a request without credentials, or failures spread over windows", function()
    start { failures = 2, window = 1 }
    -- a new client sends one request without credentials first (then it
    -- reuses the nonce: a new client each time)
    for _ = 1, 5 do
      client("127.0.0.2"):close()
      assert.equal(200, (register("127.0.0.2", "alice", "secret")))
    end
    client("127.0.0.2"):close()
    assert.equal(401, (register("127.0.0.2", "carol", "wrong")))
    N.pump_for(1.1) -- the window ends
    assert.equal(401, (register("127.0.0.2", "carol", "wrong")))
    assert.equal(0, guard:stats().blocks)
  end)

  it("a block ends after its time", function()
    start { failures = 1, block = 1 }
    assert.equal(403, (register("127.0.0.2", "alice", "wrong")))
    assert.equal(403, (register("127.0.0.2", "alice", "secret")))
    assert.is_truthy(N.pump_until(function()
      return #guard:list() == 0
    end, 3))
    assert.equal(200, (register("127.0.0.2", "alice", "secret")))
  end)

  it("stays bounded in memory", function()
    local g = auth.guard { failures = 1000, max_entries = 10 }
    for i = 1, 100 do
      g:fail("user", "u" .. i)
    end
    local st = g:stats()
    assert.is_true(st.entries <= 10, st.entries)
    assert.is_true(st.forgotten >= 90 - 10)
    assert.is_nil(g:blocked("user", "u100"))
  end)

  it("refuses bad options and a guard that is not one", function()
    assert.has_error(function()
      auth.guard { failures = 0 }
    end)
    assert.has_error(function()
      auth.guard { block = 1.5 }
    end)
    start {}
    local got
    uas:on_request(function(req)
      got = select(2, pcall(auth.authenticate, req, lookup, { guard = {} }))
      req:reply(500)
    end)
    assert.equal(500, (register("127.0.0.1", "alice", "secret")))
    assert.matches("opts.guard: an auth.guard expected", got)
  end)
end)
