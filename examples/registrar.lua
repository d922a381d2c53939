-- A registrar (RFC 3261 §10.3, with Path, Outbound and GRUU):
--
--     luasip run examples/registrar.lua [--listen udp:0.0.0.0:5060]...
--                                       [--location memory|sqlite:PATH|redis://HOST:PORT/DB]
--                                       [--min-expires SECONDS]
local registrar = require "luasip.registrar"
local location = require "luasip.location"

local loc, min_expires
return {
  listen = { "udp:127.0.0.1:5060", "tcp:127.0.0.1:5060" },
  server = { sanity = { supported = registrar.supported } }, -- let Require: path/outbound/gruu through
  options = {
    location = { default = "memory", arg = "URL",
                 help = "location service: memory, sqlite:PATH or redis://HOST:PORT/DB" },
    ["min-expires"] = { default = 60, arg = "SECONDS", help = "shorter registrations get 423" },
  },
  setup = function(ctx)
    loc = assert(location.open(ctx.options.location))
    min_expires = ctx.options["min-expires"]
  end,
  methods = {
    REGISTER = function(req)
      registrar.save(req, { location = loc, min_expires = min_expires })
    end,
  },
}
