-- The location service (lua/luasip/location.lua and its backends), with
-- real processes: a real redis-server started here on a loopback port, and
-- child lua5.4 processes for durability and sharing.
local sip = require "luasip"
local location = require "luasip.location"
local N = require "spec.support.net"
local socket = require "socket"

local pack, unpack = table.pack, table.unpack

-- Run fn(...) in a coroutine on the luasip loop until it returns (at most
-- `seconds`, default 5); returns its results, or raises when it timed out
-- or failed.
local function run(fn, seconds)
  local done, res
  sip.spawn(function()
    res = pack(pcall(fn))
    done = true
  end)
  assert(N.pump_until(function() return done end, seconds or 5), "timed out")
  assert(res[1], res[2])
  return unpack(res, 2, res.n)
end

local function binding(key, expires, extra)
  local b = { key = key, contact = key, expires = expires }
  for k, v in pairs(extra or {}) do
    b[k] = v
  end
  return b
end

local function keys(list)
  local out = {}
  for i, b in ipairs(list) do
    out[i] = b.key
  end
  return table.concat(out, " ")
end

describe("location.open", function()
  after_each(N.cleanup)

  it("parses URLs and memoizes stores per URL", function()
    local m = assert(location.open())
    assert.equal(m, location.open("memory"))
    assert.equal("memory", m.url)
    local u = assert(location.parse_url("redis://127.0.0.1/3?timeout=100"))
    assert.same({ "redis", "127.0.0.1", 6379, 3, "100" }, { u.backend, u.host, u.port, u.db, u.opts.timeout })
    u = assert(location.parse_url("redis://[::1]:7000"))
    assert.same({ "::1", 7000, 0, "redis://[::1]:7000/0" }, { u.host, u.port, u.db, u.canonical })
    u = assert(location.parse_url("sqlite:///tmp/x.db"))
    assert.same({ "sqlite", "/tmp/x.db" }, { u.backend, u.path })
    u = assert(location.parse_url("sqlite:rel/x.db?synchronous=normal"))
    assert.same({ "rel/x.db", "normal" }, { u.path, u.opts.synchronous })
  end)

  it("refuses bad URLs with nil, message", function()
    for _, bad in ipairs { "mysql://x", "redis://", "redis://h:99999/0", "redis://h/x", "sqlite:", 42, "x?y" } do
      local s, err = location.open(bad)
      assert.is_nil(s)
      assert.is_string(err)
      assert.truthy(err:find("location", 1, true), err)
    end
  end)
end)

describe("location memory", function()
  local store
  before_each(function()
    N.server() -- keeps the loop alive: the expiry timer is a background one
    location.close("memory")
    store = assert(location.open("memory"))
  end)
  after_each(function()
    location.close("memory")
    N.cleanup()
  end)

  it("raises outside a coroutine, like the backends that wait", function()
    assert.has_error(function() store:lookup("sip:a@x") end,
      "location: lookup() may wait: call it from a request handler or sip.spawn()")
  end)

  it("saves, upserts by key, orders by q then most recent, keeps every field", function()
    local t = os.time() + 3600
    local list, n = run(function()
      assert(store:save("sip:a@x", binding("sip:a@1.1.1.1", t, { q = 0.5, call_id = "c1", cseq = 1,
        path = { "<sip:p1;lr>", "<sip:p2;lr>" }, received = "udp:192.0.2.4:5060", instance = "<urn:uuid:1>",
        reg_id = 1, flag = true, off = false, big = 2 ^ 40, weight = 0.25, custom_field = "x" })))
      assert(store:save("sip:a@x", binding("sip:a@2.2.2.2", t, { q = 0.5 })))
      assert(store:save("sip:a@x", binding("sip:a@3.3.3.3", t, { q = 1 })))
      assert(store:save("sip:b@x", binding("sip:b@4.4.4.4", t)))
      -- upsert: same key, new contact text and cseq
      assert(store:save("sip:a@x", binding("sip:a@1.1.1.1", t, { q = 0.5, contact = "<sip:a@1.1.1.1>", cseq = 2 })))
      return store:lookup("sip:a@x"), store:count()
    end)
    assert.equal(4, n)
    assert.equal("sip:a@3.3.3.3 sip:a@1.1.1.1 sip:a@2.2.2.2", keys(list))
    local b = list[2]
    assert.same({ key = "sip:a@1.1.1.1", contact = "<sip:a@1.1.1.1>", expires = t, q = 0.5, cseq = 2 }, b)
    -- every type survives a save
    local full = run(function()
      local x = binding("k", t, { q = 0.75, call_id = "c1", cseq = 7, path = { "<sip:p1;lr>", "<sip:p2;lr>" },
        flag = true, off = false, big = 2 ^ 40, n64 = 1 << 40, weight = 0.25, custom_field = "x", empty = {} })
      assert(store:save("sip:c@x", x))
      x.call_id = "changed" -- the store keeps its own copy
      local got = store:lookup("sip:c@x")[1]
      got.cseq = 99 -- and returns copies
      return store:lookup("sip:c@x")[1]
    end)
    assert.same({ key = "k", contact = "k", expires = t, q = 0.75, call_id = "c1", cseq = 7,
      path = { "<sip:p1;lr>", "<sip:p2;lr>" }, flag = true, off = false, big = 2 ^ 40, n64 = 1 << 40,
      weight = 0.25, custom_field = "x", empty = {} }, full)
    assert.equal(math.type(1 << 40), math.type(full.n64))
  end)

  it("removes one binding, all bindings, and unknown ones without error", function()
    local t = os.time() + 3600
    local a, b, c, n = run(function()
      for i = 1, 3 do
        assert(store:save("sip:a@x", binding("k" .. i, t)))
      end
      assert(store:save("sip:b@x", binding("kb", t)))
      assert(store:remove("sip:a@x", "k2"))
      assert(store:remove("sip:a@x", "nope"))
      assert(store:remove("sip:nobody@x", "k1"))
      local a = store:lookup("sip:a@x")
      assert(store:remove_all("sip:b@x"))
      assert(store:remove_all("sip:nobody@x"))
      return a, store:lookup("sip:b@x"), store:lookup("sip:nobody@x"), store:count()
    end)
    assert.equal("k3 k1", keys(a))
    assert.same({}, b)
    assert.same({}, c)
    assert.equal(2, n)
  end)

  it("a save with a past expiry removes the binding", function()
    local n, list = run(function()
      assert(store:save("sip:a@x", binding("k1", os.time() + 60)))
      assert(store:save("sip:a@x", binding("k1", os.time() - 1)))
      return store:count(), store:lookup("sip:a@x")
    end)
    assert.equal(0, n)
    assert.same({}, list)
  end)

  it("expires bindings by timer and calls on_expire in a coroutine", function()
    local expired = {}
    store:on_expire(function(aor, b)
      local _, main = coroutine.running()
      expired[#expired + 1] = { aor, b.key, b.call_id, main }
    end)
    local soon = socket.gettime() + 0.3
    run(function()
      assert(store:save("sip:a@x", binding("short", soon, { call_id = "c-short" })))
      assert(store:save("sip:a@x", binding("long", os.time() + 3600)))
      assert(store:save("sip:b@x", binding("b-short", soon)))
      -- refreshed before its expiry: must not expire at the old time
      assert(store:save("sip:c@x", binding("refreshed", soon)))
      assert(store:save("sip:c@x", binding("refreshed", os.time() + 3600)))
    end)
    -- no lookup meanwhile: only the timer can remove them
    assert(N.pump_until(function() return #expired == 2 end, 5), "expired by timer")
    table.sort(expired, function(x, y) return x[2] > y[2] end)
    assert.same({ { "sip:a@x", "short", "c-short", false }, { "sip:b@x", "b-short", nil, false } }, expired)
    local n, a, c = run(function()
      return store:count(), store:lookup("sip:a@x"), store:lookup("sip:c@x")
    end)
    assert.equal(2, n)
    assert.equal("long", keys(a))
    assert.equal("refreshed", keys(c))
  end)

  it("expires many bindings in several runs of the one timer", function()
    local expired = 0
    store:on_expire(function()
      expired = expired + 1
    end)
    local soon = socket.gettime() + 0.2
    run(function()
      for i = 1, 30000 do
        assert(store:save("sip:u" .. i .. "@x", binding("k", soon)))
      end
    end, 30)
    assert(N.pump_until(function() return expired == 30000 end, 20))
    assert.equal(0, run(function() return store:count() end))
  end)

  it("checks bindings (programmer mistakes raise)", function()
    local errs = run(function()
      local out = {}
      for _, b in ipairs { {}, { key = "k", contact = "c" }, { key = "k", expires = 1 },
        { key = "k", contact = "c", expires = os.time() + 9, q = 2 },
        { key = "k", contact = "c", expires = os.time() + 9, f = function() end } } do
        local ok, err = pcall(store.save, store, "sip:a@x", b)
        out[#out + 1] = not ok and err
      end
      return out
    end)
    assert.equal(5, #errs)
    for _, e in ipairs(errs) do
      assert.is_string(e)
    end
  end)
end)
