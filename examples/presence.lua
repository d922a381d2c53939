-- A presence notifier for a toy status (RFC 6665 with the "presence"
-- package of RFC 3856): SUBSCRIBE for event "presence" gets 200 and a
-- NOTIFY with the status: a PIDF document (RFC 3863) when the
-- subscriber's Accept names application/pidf+xml, else text/plain. A
-- MESSAGE sets the status (its body: "open", "closed" or any note) and
-- every subscriber gets a NOTIFY; --cycle SECONDS toggles open/closed on
-- a timer. Refresh, Expires: 0 and expiry are luasip.ua.event's.
--
--     luasip run examples/presence.lua --listen udp:127.0.0.1:5076 \
--       [--status open] [--cycle SECONDS] [--max-expires SECONDS]
--
-- Each change is logged: "presence: open (2 subscribers)".
local sip = require "luasip"
local ua = require "luasip.ua"
local log = require "luasip.log"

local srv, opts, u, pkg
local status = "open"

local function xml_escape(s)
  return (s:gsub("[<>&\"']", { ["<"] = "&lt;", [">"] = "&gt;", ["&"] = "&amp;", ['"'] = "&quot;",
    ["'"] = "&apos;" }))
end

-- The body for subscription n: PIDF or plain text, per its Accept.
local function document(n)
  local accept = n.request and n.request:header("Accept") or ""
  if not accept:lower():find("application/pidf+xml", 1, true) then
    return status, "text/plain"
  end
  local basic = status == "closed" and "closed" or "open"
  local entity = n.request and tostring(n.request.to.uri) or "sip:presence@127.0.0.1"
  return table.concat({
    '<?xml version="1.0" encoding="UTF-8"?>',
    '<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="' .. xml_escape(entity) .. '">',
    '  <tuple id="t1"><status><basic>' .. basic .. '</basic></status>',
    '    <note>' .. xml_escape(status) .. '</note></tuple>',
    '</presence>', "",
  }, "\r\n"), "application/pidf+xml"
end

local function set_status(s)
  status = s
  local subs = pkg:each()
  for _, n in ipairs(subs) do
    sip.spawn(function()
      local body, ctype = document(n)
      n:notify { body = body, type = ctype }
    end)
  end
  log.info("presence: %s (%d subscribers)", status, #subs)
end

local function start()
  if u then
    return
  end
  u = ua.new(srv) -- here the listeners are open: our Contact
  pkg = u:on_subscribe("presence", function(n)
    local body, ctype = document(n)
    n:notify { state = "active", body = body, type = ctype }
  end, { max_expires = opts["max-expires"], min_expires = 1 })
  if opts.cycle > 0 then
    sip.timer(opts.cycle, function()
      set_status(status == "open" and "closed" or "open")
    end, { interval = opts.cycle })
  end
end

return {
  listen = { "udp:127.0.0.1:5076" },
  options = {
    status = { default = "open", help = "the first status", arg = "TEXT" },
    cycle = { default = 0, help = "toggle open/closed every SECONDS (0: never)", arg = "SECONDS" },
    ["max-expires"] = { default = 3600, help = "longest subscription granted", arg = "SECONDS" },
  },
  setup = function(ctx)
    srv, opts = ctx.server, ctx.options
    status = opts.status
    sip.timer(0, start)
  end,
  request = function(req)
    start()
    if u:handle(req) then -- SUBSCRIBE (489 for other packages), its refreshes
      return
    end
    if req.method == "MESSAGE" then
      local s = req.body:gsub("^%s+", ""):gsub("%s+$", "")
      if s == "" or #s > 200 then
        return req:reply(400, "Bad Request (a status of 1-200 bytes)")
      end
      req:reply(200)
      return set_status(s)
    elseif req.method == "OPTIONS" then
      return req:reply(200, nil, { Allow = "SUBSCRIBE, NOTIFY, MESSAGE, OPTIONS", ["Allow-Events"] = "presence" })
    end
    req:reply(405, nil, { Allow = "SUBSCRIBE, NOTIFY, MESSAGE, OPTIONS" })
  end,
}
