-- Location service benchmark: saves/s and lookups/s per backend, and the
-- memory a binding takes in the `memory` backend with 1,000,000 bindings.
--
--   LUA_PATH='lua/?.lua;lua/?/init.lua;;' LUA_CPATH='build/lib/?.so;;' \
--     lua5.4 csrc/bench/location_bench.lua [MEMORY_BINDINGS] [OPS]
--
-- Each backend gets OPS saves (default 20000; sqlite with synchronous=full
-- gets OPS/10, it waits for the disk) from 64 coroutines at once (the
-- registrar's situation: many REGISTERs in flight), then as many lookups.
-- Redis is a redis-server started here on a random loopback port (stopped
-- by its PID). The bindings look like what a registrar stores for a SIPp
-- REGISTER (see csrc/bench/location_bench.sh, which compares the memory
-- figure with Kamailio's usrloc).
local sip = require "luasip"
local core = require "luasip.core"
local location = require "luasip.location"

local clock = core.location_clock
local MEM_N = tonumber(arg[1]) or 1000000
local OPS = tonumber(arg[2]) or 20000
local CONC = 64

local function binding(i, expires)
  local contact = ("sip:u%d@127.0.0.1:5061"):format(i)
  return {
    key = contact, contact = contact, expires = expires, q = 1,
    call_id = ("%d-4242@127.0.0.1"):format(i), cseq = 1,
    received = "udp:127.0.0.1:5061", socket = "udp:127.0.0.1:5070",
    user_agent = "sipp-bench", updated = os.time(),
  }
end

local function aor(i)
  return ("sip:u%d@127.0.0.1"):format(i)
end

-- n operations op(i) over CONC coroutines; returns ops/s and failures.
local function drive(n, op)
  local next_i, done, failed = 0, 0, 0
  local t0 = clock()
  for _ = 1, CONC do
    sip.spawn(function()
      while next_i < n do
        next_i = next_i + 1
        if not op(next_i) then
          failed = failed + 1
        end
        done = done + 1
      end
    end)
  end
  while done < n do
    core.run()
  end
  return n / (clock() - t0), failed
end

local function bench(name, url, n)
  local store = assert(location.open(url))
  local exp = os.time() + 3600
  -- warm up: the connection, the file, the schema
  drive(CONC, function(i) return store:save(aor(i), binding(i, exp)) end)
  local saves, f1 = drive(n, function(i) return store:save(aor(i), binding(i, exp)) end)
  local lookups, f2 = drive(n, function(i)
    local l = store:lookup(aor(i))
    return l and #l == 1
  end)
  print(("location %-14s %9.0f saves/s %9.0f lookups/s (%d ops each, %d in flight, %d failed)"):format(
    name, saves, lookups, n, CONC, f1 + f2))
  location.close(url)
end

local function rss_kb()
  local f = io.open("/proc/self/status")
  local s = f:read("a")
  f:close()
  return tonumber(s:match("VmRSS:%s*(%d+)"))
end

local function pss_kb()
  local f = io.open("/proc/self/smaps_rollup")
  if not f then
    return 0
  end
  local s = f:read("a")
  f:close()
  return tonumber(s:match("\nPss:%s*(%d+)")) or 0
end

local function memory_per_binding(n)
  local store = assert(location.open("memory"))
  collectgarbage("collect")
  collectgarbage("collect")
  local lua0, rss0, pss0 = collectgarbage("count"), rss_kb(), pss_kb()
  local exp = os.time() + 3600
  local t0 = clock()
  sip.spawn(function()
    for i = 1, n do
      store:save(aor(i), binding(i, exp))
    end
  end)
  local dt = clock() - t0
  collectgarbage("collect")
  collectgarbage("collect")
  local lua1, rss1, pss1 = collectgarbage("count"), rss_kb(), pss_kb()
  local count
  sip.spawn(function() count = store:count() end)
  print(("location memory: %d bindings (%.0f saves/s single coroutine): %.0f bytes/binding (Lua heap), "
    .. "%.0f bytes/binding (process RSS), %.0f bytes/binding (process PSS)"):format(
    count, n / dt, (lua1 - lua0) * 1024 / n, (rss1 - rss0) * 1024 / n, (pss1 - pss0) * 1024 / n))
  location.close("memory")
end

-- a redis-server of our own
local function start_redis()
  for _ = 1, 5 do
    local port = math.random(20000, 60000)
    local h = assert(io.popen(("redis-server --port %d --bind 127.0.0.1 --save '' --appendonly no "
      .. "--daemonize no >/dev/null 2>&1 & echo $!"):format(port)))
    local pid = tonumber(h:read("l"))
    h:close()
    for _ = 1, 50 do
      local p = io.popen(("redis-cli -p %d ping 2>/dev/null"):format(port))
      local out = p:read("a")
      p:close()
      if out:find("PONG") then
        return port, pid
      end
      os.execute("sleep 0.1")
    end
    os.execute("kill " .. pid .. " 2>/dev/null")
  end
  error("cannot start redis-server")
end

math.randomseed(os.time() ~ tonumber(tostring({}):match("0x(%x+)"), 16))
local dir = io.popen("mktemp -d /tmp/luasip-locbench-XXXXXX"):read("l")

bench("memory", "memory", OPS * 5)
bench("sqlite/normal", "sqlite:" .. dir .. "/normal.db?synchronous=normal", OPS)
bench("sqlite/full", "sqlite:" .. dir .. "/full.db", math.max(OPS // 10, CONC))
local port, pid = start_redis()
local ok, err = pcall(bench, "redis", ("redis://127.0.0.1:%d/0"):format(port), OPS)
os.execute("kill " .. pid)
os.execute("rm -rf '" .. dir .. "'")
assert(ok, err)
memory_per_binding(MEM_N)
