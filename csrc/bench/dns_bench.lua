-- The resolver's speed (run by csrc/bench/dns_bench.sh inside a
-- loopback-only namespace, with dnsmasq on 127.0.0.1:PORT serving w.test):
--   1. lookups per second answered from the cache (NAPTR, SRV, A all
--      cached: the RFC 2782 draw and the target list each time);
--   2. resolution latency against dnsmasq with the cache off (NAPTR, SRV
--      udp/tcp, A, AAAA per lookup), one lookup at a time.
-- Usage: lua5.4 csrc/bench/dns_bench.lua PORT [SECONDS]
local sip = require "luasip"
local dns = require "luasip.dns"
local socket = require "socket"

local port = assert(tonumber(arg[1]), "usage: dns_bench.lua PORT [SECONDS]")
local seconds = tonumber(arg[2]) or 2
local URI = "sip:bob@w.test"

local function run(fn)
  local done
  sip.spawn(function()
    fn()
    done = true
    sip.stop()
  end)
  if not done then
    sip.run()
  end
end

-- 1. from the cache
assert(sip.dns { servers = "127.0.0.1:" .. port, timeout = 2 })
local n, t0, t1 = 0, nil, nil
run(function()
  assert(sip.resolve(URI)) -- warm the cache
  local resolve = sip.resolve
  t0 = socket.gettime()
  local deadline = t0 + seconds
  repeat
    for _ = 1, 1000 do
      assert(resolve(URI))
    end
    n = n + 1000
    t1 = socket.gettime()
  until t1 >= deadline
end)
local st = dns.stats()
print(string.format("dns-bench cache: %.0f lookups/s (%d lookups, %d cache hits, %d queries)",
  n / (t1 - t0), st.lookups, st.cache_hits, st.cache_misses))

-- 2. against dnsmasq, cache off
assert(sip.dns { servers = "127.0.0.1:" .. port, timeout = 2, cache_size = 0 })
local lat = {}
run(function()
  local deadline = socket.gettime() + seconds
  repeat
    local a = socket.gettime()
    assert(sip.resolve(URI))
    lat[#lat + 1] = (socket.gettime() - a) * 1000
  until socket.gettime() >= deadline
end)
table.sort(lat)
local sum = 0
for _, v in ipairs(lat) do
  sum = sum + v
end
local function pct(p)
  return lat[math.max(1, math.ceil(#lat * p))]
end
st = dns.stats()
print(string.format("dns-bench dnsmasq: %d lookups (%d queries each), latency mean %.3f ms,"
  .. " p50 %.3f ms, p99 %.3f ms, max %.3f ms", #lat, st.cache_misses // math.max(1, st.lookups),
  sum / #lat, pct(0.5), pct(0.99), lat[#lat]))
