-- A redirect server (RFC 3261 §8.3) that is also the registrar users
-- register to: a request for a registered user gets 302 with the user's
-- contacts (q and expires), 404 otherwise.
--
--     luasip run examples/redirect.lua [--listen udp:0.0.0.0:5060]...
--                                      [--location memory|sqlite:PATH|redis://HOST:PORT/DB]
local registrar = require "luasip.registrar"
local redirect = require "luasip.redirect"
local location = require "luasip.location"

local loc
return {
  listen = { "udp:127.0.0.1:5060", "tcp:127.0.0.1:5060" },
  server = { sanity = { supported = registrar.supported } },
  options = {
    location = { default = "memory", arg = "URL",
                 help = "location service: memory, sqlite:PATH or redis://HOST:PORT/DB" },
  },
  setup = function(ctx)
    loc = assert(location.open(ctx.options.location))
  end,
  request = function(req)
    if req.method == "ACK" then
      return
    elseif req.method == "REGISTER" then
      return registrar.save(req, { location = loc })
    end
    local contacts, err = registrar.lookup(req.ruri, { location = loc })
    if not contacts then
      return req:reply(500, "Location Service Unavailable (" .. err .. ")", { { "Retry-After", "5" } })
    end
    if #contacts == 0 then
      return req:reply(404)
    end
    redirect.reply(req, contacts, 302)
  end,
}
