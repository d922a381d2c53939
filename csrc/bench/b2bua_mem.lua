-- examples/b2bua.lua with a memory report (for csrc/bench/b2bua_mem.sh):
-- every second, after a full garbage collection, one line on stderr
--
--     mem: t=S rss_kb=R heap_kb=H txn_live=N ict=.. ist=.. nict=.. nist=.. txn_mem_kb=M dialogs=D
--
-- rss_kb: the process's resident set (/proc/self/status VmRSS); heap_kb:
-- the Lua heap once collected (what is still referenced); txn_*: the
-- transaction layer's counters (srv:stats()). Same options as the example.
-- With B2BUA_CENSUS_AT=S in the environment, at second S also a census of
-- what the Lua heap holds (csrc/bench/heap_census.lua, on stderr).
local core = require "luasip.core"

local base = dofile("examples/b2bua.lua")

local function rss_kb()
  local f = io.open("/proc/self/status")
  if not f then
    return 0
  end
  local s = f:read("a")
  f:close()
  return tonumber(s:match("VmRSS:%s*(%d+)")) or 0
end

local t0 = core.now()
local reporter

local M = {}
for k, v in pairs(base) do
  M[k] = v
end
M.setup = function(ctx)
  base.setup(ctx)
  local srv = ctx.server
  if reporter or not srv then
    return
  end
  reporter = core.timer(1000, 1000, function()
    collectgarbage("collect")
    local st = srv:stats()
    io.stderr:write(string.format(
      "mem: t=%d rss_kb=%d heap_kb=%d txn_live=%d ict=%d ist=%d nict=%d nist=%d txn_mem_kb=%d\n",
      (core.now() - t0) // 1000, rss_kb(), math.floor(collectgarbage("count")),
      st.txn_live or 0, st.txn_live_ict or 0, st.txn_live_ist or 0, st.txn_live_nict or 0,
      st.txn_live_nist or 0, (st.txn_mem_bytes or 0) // 1024))
    io.stderr:flush()
    local at = tonumber(os.getenv("B2BUA_CENSUS_AT") or "")
    if at and (core.now() - t0) // 1000 == at then
      dofile("csrc/bench/heap_census.lua").run(io.stderr)
    end
  end)
end
return M
