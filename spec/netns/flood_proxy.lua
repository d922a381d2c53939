-- examples/proxy.lua as served by spec/netns/flood.sh, with one addition:
-- every 50 ms a line "flood-stats t=<wall clock s> blocks=N dropped=N
-- replied=N cpu=<process CPU s>" goes to stdout, so that the driver can
-- tell when the flooder was blocked and what each dropped packet cost.
-- Everything else (the --flood option included) is the example's.
local sip = require "luasip"
local socket = require "socket"

local base = dofile("examples/proxy.lua")

-- utime + stime of this process, seconds (/proc/self/stat, fields 14, 15)
local function cpu()
  local f = io.open("/proc/self/stat", "r")
  if not f then
    return 0
  end
  local s = f:read("a")
  f:close()
  local rest = s:match("%) (.*)$")
  local fields = {}
  for x in rest:gmatch("%S+") do
    fields[#fields + 1] = x
  end
  -- fields[1] is the state (field 3): utime is field 14, stime 15
  return (tonumber(fields[12]) + tonumber(fields[13])) / 100
end

local spec = {}
for k, v in pairs(base) do
  spec[k] = v
end
local timer
spec.setup = function(ctx)
  base.setup(ctx)
  local srv = ctx.server
  if srv and not timer then
    timer = sip.timer(0.05, function()
      local st = srv:stats()
      io.stdout:write(("flood-stats t=%.3f blocks=%d dropped=%d replied=%d cpu=%.2f\n"):format(
        socket.gettime(), st.flood_blocks, st.flood_dropped, st.flood_replied, cpu()))
      io.stdout:flush()
    end, { interval = 0.05, background = true })
  end
end
return spec
