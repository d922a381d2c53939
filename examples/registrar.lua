-- A registrar (RFC 3261 §10.3, with Path, Outbound and GRUU):
--
--     luasip run examples/registrar.lua [--listen udp:0.0.0.0:5060]...
--                                       [--location memory|sqlite:PATH|redis://HOST:PORT/DB]
--                                       [--min-expires SECONDS]
--                                       [--users FILE [--realm REALM] [--algorithms LIST]
--                                        [--nonce-lifetime SECONDS] [--userhash]]
--
-- With --users, every REGISTER needs digest credentials (401 challenge;
-- luasip.auth) of the user whose AOR it registers (another AOR: 403).
-- FILE has lines `user:password` or `user:realm:ALGORITHM:HA1-hex`.
-- --userhash: the challenge says userhash=true (RFC 7616 §3.4.4: the
-- client sends H(user ":" realm) as the user name).
local registrar = require "luasip.registrar"
local location = require "luasip.location"
local auth = require "luasip.auth"

local loc, min_expires
local users, auth_opts -- nil: no authentication

return {
  listen = { "udp:127.0.0.1:5060", "tcp:127.0.0.1:5060" },
  server = { sanity = { supported = registrar.supported } }, -- let Require: path/outbound/gruu through
  options = {
    location = { default = "memory", arg = "URL",
                 help = "location service: memory, sqlite:PATH or redis://HOST:PORT/DB" },
    ["min-expires"] = { default = 60, arg = "SECONDS", help = "shorter registrations get 423" },
    users = { arg = "FILE",
              help = "require digest auth; lines user:password or user:realm:ALGORITHM:HA1-hex" },
    realm = { arg = "REALM", help = "digest realm (default: the REGISTER's domain)" },
    algorithms = { default = "SHA-256,MD5", arg = "LIST", help = "digest algorithms offered, in order" },
    ["nonce-lifetime"] = { default = 300, arg = "SECONDS", help = "how long a nonce is good" },
    userhash = { default = false, help = "the challenge asks for the hashed user name (RFC 7616 userhash)" },
  },
  setup = function(ctx)
    local o = ctx.options
    loc = assert(location.open(o.location))
    min_expires = o["min-expires"]
    users, auth_opts = nil, nil
    if o.users then
      users = assert(auth.load_users(o.users))
      local algs = {}
      for a in o.algorithms:gmatch("[^,%s]+") do
        algs[#algs + 1] = a
      end
      auth_opts = { realm = o.realm, algorithms = algs, lifetime = math.tointeger(o["nonce-lifetime"]),
                    userhash = o.userhash or nil, match = "to" } -- the user may register its own AOR only
    end
  end,
  methods = {
    REGISTER = function(req)
      if users and not auth.authenticate(req, users, auth_opts) then
        return -- answered: 401 (or 403 for another user's AOR)
      end
      registrar.save(req, { location = loc, min_expires = min_expires })
    end,
  },
}
