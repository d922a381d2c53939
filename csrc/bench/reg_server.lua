-- The registrar the benchmark drives (csrc/bench/reg_bench.sh): the
-- contract of ../shared/bench/run.sh (OPTIONS 200 for readiness, REGISTER
-- saved) with registrar.save on --location URL (memory by default).
local registrar = require "luasip.registrar"
local location = require "luasip.location"

local loc
return {
  listen = { "udp:127.0.0.1:5070" },
  options = { location = { default = "memory", arg = "URL", help = "location service URL" } },
  setup = function(ctx)
    loc = assert(location.open(ctx.options.location))
  end,
  methods = {
    OPTIONS = function(req)
      req:reply(200)
    end,
    REGISTER = function(req)
      registrar.save(req, { location = loc })
    end,
  },
}
