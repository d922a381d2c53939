-- A MESSAGE bot (RFC 3428): answers every MESSAGE with 200 and sends the
-- text back to its sender in a MESSAGE of its own; answers OPTIONS.
--
--     luasip run examples/message_bot.lua [--listen udp:127.0.0.1:5070]...
--       [--register sip:REGISTRAR --aor sip:bot@DOMAIN [--expires 600]
--        [--user USER --password PASSWORD] [--proxy udp:IP:PORT]]
--       [--prefix "echo: "] [--no-reply]
--
-- With --register it registers --aor (its Contact: its first listener of
-- the registrar's transport) and keeps it registered (luasip.ua.register);
-- the replies then go through --proxy (or the registrar's address) with
-- From: --aor. Without --register the reply goes to the sender's From URI.
local message = require "luasip.ua.message"
local register = require "luasip.ua.register"
local log = require "luasip.log"

local opts, srv, reg

return {
  listen = { "udp:127.0.0.1:5070" },
  options = {
    register = { arg = "URI", help = "register at this registrar (its URI)" },
    aor = { arg = "URI", help = "the address-of-record to register (and the From of replies)" },
    expires = { default = 600, arg = "SECONDS", help = "registration expiry asked for" },
    user = { arg = "USER", help = "digest user name (with --password)" },
    password = { arg = "PASSWORD", help = "digest password" },
    proxy = { arg = "DEST", help = "send through this next hop (udp:IP:PORT)" },
    prefix = { default = "echo: ", arg = "TEXT", help = "put before the text sent back" },
    reply = { default = true, help = "send the text back (--no-reply: only 200)" },
  },
  setup = function(ctx)
    opts, srv = ctx.options, ctx.server
    reg = ctx.state.registration -- kept across reloads
    if opts.register and not reg then
      if not opts.aor then
        error("--register needs --aor")
      end
      local credentials = opts.user and { user = opts.user, password = opts.password or "" } or nil
      reg = register.register{
        server = srv, registrar = opts.register, aor = opts.aor, expires = math.tointeger(opts.expires),
        credentials = credentials, dest = opts.proxy,
        on_change = function(_, state, status)
          log.info("registration of %s: %s (%s)", opts.aor, state, tostring(status))
        end,
      }
      ctx.state.registration = reg
    end
  end,
  stop = function()
    if reg then
      reg:close()
    end
  end,
  methods = {
    MESSAGE = message.handler(function(req, body, ctype)
      local from = req.from and req.from.uri
      log.info("MESSAGE from %s (%s): %s", tostring(from), tostring(ctype), body)
      if not opts.reply or not from then
        return 200
      end
      req:reply(200)
      local res, err = message.message{
        server = srv, to = from, from = opts.aor or tostring(req.to.uri), body = opts.prefix .. body,
        content_type = ctype, dest = opts.proxy or (reg and reg.dest),
        credentials = opts.user and { user = opts.user, password = opts.password or "" } or nil,
      }
      log.info("reply to %s: %s", from, res and (res.status .. " " .. res.reason) or tostring(err))
    end),
    OPTIONS = message.options_handler{ allow = { "MESSAGE", "OPTIONS" }, accept = { "text/plain" } },
  },
}
