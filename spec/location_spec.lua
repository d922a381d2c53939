-- The location service (lua/luasip/location.lua and its backends), with
-- real processes: a real redis-server started here on a loopback port, and
-- child lua5.4 processes for durability and sharing.
local sip = require "luasip"
local location = require "luasip.location"
local N = require "spec.support.net"
local socket = require "socket"


-- Run fn(...) in a coroutine on the luasip loop until it returns (at most
-- `seconds`, default 5); returns its results, or raises when it timed out
-- or failed.
local run = N.run_task

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

describe("core.memstore (the memory store's C structure)", function()
  local core = require "luasip.core"
  local codec = require "luasip.location.codec"
  after_each(function()
    N.cleanup()
  end)

  it("saves records, finds the unexpired ones, refuses what is not one", function()
    local ms = core.memstore_new()
    local t = core.location_clock()
    local a = codec.encode(binding("k1", t + 60), t)
    local b = codec.encode(binding("k2", t - 1), t)
    assert.is_true(ms:save("sip:a@x", a))
    assert.is_true(ms:save("sip:a@x", b))
    assert.same({ a }, ms:lookup("sip:a@x"))
    assert.equal(2, ms:count()) -- the expired one until the timer runs
    local ok, err = ms:save("sip:a@x", "not a record")
    assert.is_nil(ok)
    assert.equal("corrupt binding record", err)
    assert.is_true(ms:remove("sip:a@x", "k1"))
    assert.same({}, ms:lookup("sip:a@x"))
    assert.is_true(ms:remove_all("sip:a@x"))
    assert.equal(0, ms:count())
    ms:close()
    assert.has_error(function() ms:count() end, "location: the memory store is closed")
    ms:close() -- twice is fine
  end)

  it("calls on_expire through the one protected call: an error is logged and counted", function()
    N.server() -- keeps the loop alive: the store's timer is a background one
    local lines = {}
    local prev = core.set_log_handler(function(level, text)
      lines[#lines + 1] = level .. ": " .. text
    end)
    finally(function()
      core.set_log_handler(prev)
    end)
    local ms = core.memstore_new()
    local got = {}
    ms:on_expire(function(aor, s)
      got[#got + 1] = aor .. " " .. codec.key(s)
      error("boom in on_expire")
    end)
    local errors0 = core.script_errors()
    local t = core.location_clock()
    assert(ms:save("sip:a@x", codec.encode(binding("k1", t + 0.05), t)))
    assert(ms:save("sip:b@x", codec.encode(binding("k2", t + 0.05), t)))
    assert(N.pump_until(function() return #got == 2 end, 5))
    table.sort(got)
    assert.same({ "sip:a@x k1", "sip:b@x k2" }, got)
    assert.equal(errors0 + 2, core.script_errors())
    assert.equal(2, #lines)
    assert.matches("location: on_expire: .*boom in on_expire.*stack traceback", lines[1])
    assert.equal(0, ms:count())
    ms:close()
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

  it("keeps its bindings outside the Lua heap (the collector never walks them)", function()
    local function heap_kb()
      collectgarbage()
      collectgarbage()
      return collectgarbage("count")
    end
    local base = heap_kb()
    run(function()
      for i = 1, 20000 do
        assert(store:save("sip:h" .. i .. "@x", binding("k", os.time() + 3600)))
      end
    end, 30)
    local grown = heap_kb() - base
    assert.equal(20000, run(function() return store:count() end))
    -- in Lua tables, 20,000 encoded bindings take several MB
    assert.is_true(grown < 256, string.format("the Lua heap grew by %.0f kB", grown))
  end)

  it("expires many bindings in several runs of the one timer", function()
    local expired = 0
    store:on_expire(function()
      expired = expired + 1
    end)
    local soon = socket.gettime() + 1
    -- saves after `soon` remove instead (a past expiry): count what lives
    local live = run(function()
      for i = 1, 30000 do
        assert(store:save("sip:u" .. i .. "@x", binding("k", soon)))
      end
      return store:count()
    end, 30)
    assert.is_true(live > 20000) -- BATCH is 20000: several timer runs
    N.pump_until(function() return expired == live end, 20)
    assert.equal(live, expired)
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

------------------------------------------------------------------------------
-- Child processes (a second luasip instance) and a real redis-server
------------------------------------------------------------------------------

local LUA = os.getenv("LUA") or "lua5.4"

local function shell_quote(s)
  return "'" .. s:gsub("'", "'\\''") .. "'"
end

-- Run `body` (Lua source, inside a coroutine with `store` opened on url)
-- in a fresh lua5.4 process; returns what it printed.
local function child(url, body)
  local script = ([[
local sip = require "luasip"
local location = require "luasip.location"
local core = require "luasip.core"
local store = assert(location.open(%q))
local ok, err
sip.spawn(function()
  ok, err = pcall(function() %s end)
end)
core.run()
if not ok then io.stderr:write(tostring(err), "\n") os.exit(1) end
]]):format(url, body)
  local cmd = ("LUA_PATH=%s LUA_CPATH=%s timeout -k 5 20 %s -e %s 2>&1"):format(
    shell_quote(package.path), shell_quote(package.cpath), LUA, shell_quote(script))
  local p = assert(io.popen(cmd))
  local out = p:read("a")
  local ok = p:close()
  return out, ok
end

local function tmpdir()
  local p = assert(io.popen("mktemp -d /tmp/luasip-loc-XXXXXX"))
  local d = p:read("l")
  p:close()
  return d
end

describe("location sqlite", function()
  local dir, url, store
  before_each(function()
    N.server()
    dir = tmpdir()
    url = "sqlite:" .. dir .. "/loc.db?sweep=0.1"
    store = assert(location.open(url))
  end)
  after_each(function()
    location.close(url)
    N.cleanup()
    os.execute("rm -rf " .. shell_quote(dir))
  end)

  it("saves, upserts, orders, removes, counts", function()
    local t = os.time() + 3600
    local list, n1, after, n2 = run(function()
      assert(store:save("sip:a@x", binding("k1", t, { q = 0.5, path = { "<sip:p;lr>" }, cseq = 1, call_id = "c" })))
      assert(store:save("sip:a@x", binding("k2", t, { q = 0.5 })))
      assert(store:save("sip:a@x", binding("k3", t, { q = 1 })))
      assert(store:save("sip:a@x", binding("k1", t, { q = 0.5, cseq = 2, call_id = "c" })))
      assert(store:save("sip:b@x", binding("kb", t)))
      local list = store:lookup("sip:a@x")
      local n1 = store:count()
      assert(store:remove("sip:a@x", "k3"))
      assert(store:remove("sip:a@x", "none"))
      assert(store:remove_all("sip:b@x"))
      return list, n1, store:lookup("sip:a@x"), store:count()
    end)
    assert.equal("k3 k1 k2", keys(list))
    assert.same({ key = "k1", contact = "k1", expires = t, q = 0.5, cseq = 2, call_id = "c" }, list[2])
    assert.equal(4, n1)
    assert.equal("k1 k2", keys(after))
    assert.equal(2, n2)
  end)

  it("raises outside a coroutine", function()
    assert.has_error(function() store:lookup("sip:a@x") end,
      "location: this operation may wait: call it from a request handler or sip.spawn()")
    assert.has_error(function() store:save("sip:a@x", binding("k", os.time() + 9)) end,
      "location: save() may wait: call it from a request handler or sip.spawn()")
  end)

  it("keeps bindings across processes: a child saves, we read; we save, a child reads", function()
    local t = os.time() + 3600
    local out, ok = child(url, ([[
      assert(store:save("sip:child@x", { key = "ck", contact = "sip:child@192.0.2.9", expires = %d, q = 0.7,
        path = { "<sip:edge;lr>" } }))
      print("saved")
    ]]):format(t))
    assert.is_true(ok, out)
    assert.equal("saved\n", out)
    local list = run(function()
      return store:lookup("sip:child@x")
    end)
    assert.same({ { key = "ck", contact = "sip:child@192.0.2.9", expires = t, q = 0.7, path = { "<sip:edge;lr>" } } },
      list)
    run(function()
      assert(store:save("sip:parent@x", binding("pk", t)))
    end)
    location.close(url) -- luasip stops; a new one starts on the same file
    out, ok = child(url, [[
      local l = store:lookup("sip:parent@x")
      print(#l, l[1].key, store:count())
    ]])
    assert.is_true(ok, out)
    assert.equal("1\tpk\t2\n", out)
    store = assert(location.open(url))
    assert.equal(2, run(function() return store:count() end))
  end)

  it("deletes expired rows by its sweep timer and calls on_expire", function()
    local expired = {}
    store:on_expire(function(aor, b)
      expired[#expired + 1] = aor .. " " .. b.key .. " " .. tostring(b.call_id)
    end)
    run(function()
      assert(store:save("sip:a@x", binding("short", socket.gettime() + 0.3, { call_id = "c9" })))
      assert(store:save("sip:a@x", binding("long", os.time() + 3600)))
    end)
    N.pump_until(function() return #expired > 0 end, 5)
    assert.same({ "sip:a@x short c9" }, expired)
    -- the row is gone from the file, not only filtered
    local out, ok = child(url, [[ print(store:count(), #store:lookup("sip:a@x")) ]])
    assert.is_true(ok, out)
    assert.equal("1\t1\n", out)
  end)

  it("fails with nil, message on a file it cannot open, and recovers when it can", function()
    local bad_url = "sqlite:" .. dir .. "/sub/loc.db"
    local bad = assert(location.open(bad_url))
    local r, err = run(function()
      return bad:save("sip:a@x", binding("k", os.time() + 60))
    end)
    assert.is_nil(r)
    assert.matches("^location sqlite:.*/sub/loc.db: open .*unable to open", err)
    os.execute("mkdir " .. shell_quote(dir .. "/sub"))
    local ok, list = run(function()
      return bad:save("sip:a@x", binding("k", os.time() + 60)), bad:lookup("sip:a@x")
    end)
    assert.is_true(ok)
    assert.equal("k", keys(list))
    location.close(bad_url)
  end)

  it("many concurrent saves are all committed (group commit)", function()
    local pending, failed = 200, 0
    for i = 1, 200 do
      sip.spawn(function()
        if not store:save("sip:u" .. i .. "@x", binding("k", os.time() + 60)) then
          failed = failed + 1
        end
        pending = pending - 1
      end)
    end
    N.pump_until(function() return pending == 0 end, 20)
    assert.equal(0, pending)
    assert.equal(0, failed)
    local out, ok = child(url, [[ print(store:count()) ]])
    assert.is_true(ok, out)
    assert.equal("200\n", out)
  end)
end)

-- A redis-server of our own on a random loopback port, stopped by its PID.
local Redis = {}
Redis.__index = Redis

local function redis_ping(port)
  local c = socket.tcp()
  c:settimeout(0.2)
  if not c:connect("127.0.0.1", port) then
    c:close()
    return false
  end
  c:send("PING\r\n")
  local line = c:receive("*l")
  c:close()
  return line == "+PONG"
end

local function pid_alive(pid)
  return os.execute("kill -0 " .. pid .. " 2>/dev/null") == true
end

function Redis.start(port)
  for _ = 1, 5 do
    local p = port or math.random(20000, 60000)
    local log = os.tmpname()
    local h = assert(io.popen(("redis-server --port %d --bind 127.0.0.1 --save '' --appendonly no "
      .. "--daemonize no >%s 2>&1 & echo $!"):format(p, log)))
    local pid = tonumber(h:read("l"))
    h:close()
    local up = N.pump_until(function()
      return redis_ping(p) or not pid_alive(pid)
    end, 5) and redis_ping(p)
    if up then
      return setmetatable({ port = p, pid = pid, log = log }, Redis)
    end
    os.execute("kill " .. pid .. " 2>/dev/null")
    os.remove(log)
    if port then
      break
    end
  end
  error("cannot start redis-server")
end

function Redis:stop()
  os.execute("kill " .. self.pid .. " 2>/dev/null")
  N.pump_until(function() return not pid_alive(self.pid) end, 10)
  os.execute("kill -9 " .. self.pid .. " 2>/dev/null")
  os.remove(self.log)
end

describe("location redis", function()
  local redis, url, store
  setup(function()
    redis = Redis.start()
  end)
  teardown(function()
    if redis then
      redis:stop()
    end
  end)
  before_each(function()
    N.server()
    url = ("redis://127.0.0.1:%d/1?timeout=1000&connect_timeout=1000"):format(redis.port)
    store = assert(location.open(url))
  end)
  after_each(function()
    run(function()
      store.rd:command(function() end, "FLUSHDB")
      return require("luasip.location.util").wait(function(cb) return store.rd:command(cb, "PING") end)
    end)
    location.close(url)
    N.cleanup()
  end)

  local function raw(...)
    local args = table.pack(...)
    return require("luasip.location.util").wait(function(cb)
      return store.rd:command(cb, table.unpack(args, 1, args.n))
    end)
  end

  it("saves, upserts, orders, removes, counts", function()
    local t = os.time() + 3600
    local list, n1, after, n2 = run(function()
      assert(store:save("sip:a@x", binding("k1", t, { q = 0.5, path = { "<sip:p;lr>" }, cseq = 1 })))
      assert(store:save("sip:a@x", binding("k2", t, { q = 0.5 })))
      assert(store:save("sip:a@x", binding("k3", t, { q = 1 })))
      assert(store:save("sip:a@x", binding("k1", t, { q = 0.5, cseq = 2 })))
      assert(store:save("sip:b@x", binding("kb", t)))
      local list = store:lookup("sip:a@x")
      local n1 = store:count()
      assert(store:remove("sip:a@x", "k3"))
      assert(store:remove("sip:a@x", "none"))
      assert(store:remove_all("sip:b@x"))
      return list, n1, store:lookup("sip:a@x"), store:count()
    end)
    assert.equal("k3 k1 k2", keys(list))
    assert.same({ key = "k1", contact = "k1", expires = t, q = 0.5, cseq = 2 }, list[2])
    assert.equal(4, n1)
    assert.equal("k1 k2", keys(after))
    assert.equal(2, n2)
  end)

  it("two luasip processes share the bindings", function()
    local t = os.time() + 3600
    local out, ok = child(url, ([[
      assert(store:save("sip:shared@x", { key = "from-child", contact = "sip:c@192.0.2.1", expires = %d }))
      print("saved")
    ]]):format(t))
    assert.is_true(ok, out)
    assert.equal("saved\n", out)
    local list = run(function()
      assert(store:save("sip:shared@x", binding("from-parent", t, { q = 0.9 })))
      return store:lookup("sip:shared@x")
    end)
    assert.equal("from-child from-parent", keys(list))
    out, ok = child(url, [[
      local l = store:lookup("sip:shared@x")
      print(l[1].key, l[1].q, l[2].key, l[2].q, store:count())
    ]])
    assert.is_true(ok, out)
    assert.equal("from-child\tnil\tfrom-parent\t0.9\t2\n", out)
  end)

  it("lets Redis expire an AOR by its TTL (no lookup, no timer of ours)", function()
    local key = "luasip:loc:sip:ttl@x"
    local ttl, exists = run(function()
      assert(store:save("sip:ttl@x", binding("k", os.time() + 1)))
      return raw("TTL", key), raw("EXISTS", key)
    end)
    assert.equal(1, exists)
    assert.is_true(ttl >= 0 and ttl <= 2, tostring(ttl))
    local gone = N.pump_until(function()
      return run(function() return raw("EXISTS", key) end) == 0
    end, 6)
    assert.truthy(gone)
    -- an AOR's TTL follows its latest binding; expired fields are purged
    -- by the next save
    local ttl2, fields = run(function()
      assert(store:save("sip:two@x", binding("short", socket.gettime() + 0.2)))
      assert(store:save("sip:two@x", binding("long", os.time() + 100)))
      sip.sleep(0.4)
      assert(store:save("sip:two@x", binding("long", os.time() + 100)))
      return raw("TTL", "luasip:loc:sip:two@x"), raw("HKEYS", "luasip:loc:sip:two@x")
    end)
    assert.is_true(ttl2 > 90, tostring(ttl2))
    assert.same({ "long" }, fields)
  end)

  it("Redis down: nil, message at once and the server keeps serving; Redis back: works with no reopen", function()
    local srv, l = N.server()
    srv:on_request(function(req)
      local ok, err = store:save("sip:a@x", binding("k", os.time() + 60))
      if ok then
        req:reply(200)
      else
        req:reply(500, nil, { ["Retry-After"] = "5", ["X-Err"] = err })
      end
    end)
    local function register()
      local peer = N.udp(N.V4)
      peer:send(N.request { method = "REGISTER", uri = "sip:127.0.0.1", via_port = peer.port }, N.V4, l.port)
      local data = peer:recv(10)
      peer:close()
      return data and N.parse(data)
    end
    assert.equal(200, assert(register()).status)
    redis:stop()
    local r, err = run(function()
      return store:lookup("sip:a@x")
    end, 10)
    assert.is_nil(r)
    assert.matches("^location redis://127.0.0.1:%d+/1.*: ", err)
    local r2, err2 = run(function()
      return store:save("sip:a@x", binding("k", os.time() + 60))
    end, 10)
    assert.is_nil(r2)
    assert.is_string(err2)
    local res = assert(register())
    assert.equal(500, res.status)
    assert.equal("5", res:get("Retry-After"))
    redis = Redis.start(redis.port)
    assert.equal(200, assert(register()).status)
    local list = run(function()
      return store:lookup("sip:a@x")
    end)
    assert.equal("k", keys(list))
  end)
end)
