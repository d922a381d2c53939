-- A calling script: sends an INVITE with an SDP offer, waits for the
-- answer, stays in the call for --hold-time seconds (or until the callee
-- hangs up), sends BYE, prints the outcome and stops.
--
--     luasip run examples/call.lua --listen udp:127.0.0.1:5072 \
--       --to sip:echo@127.0.0.1:5070 [--via sip:127.0.0.1:5060] \
--       [--from sip:me@127.0.0.1] [--user NAME --password SECRET] \
--       [--hold-time SECONDS] [--timeout SECONDS] [--reinvite] [--update]
--       [--info] [--session-expires SECONDS]
--
-- --via sends the INVITE through that proxy (a preloaded Route; the
-- dialog then follows the proxy's Record-Route). --user/--password answer
-- a 401/407 (luasip.auth). --reinvite puts the call on hold and back
-- (two re-INVITEs) before hanging up; --update sends an UPDATE with the
-- offer again (RFC 3311), --info an INFO with a DTMF digit (RFC 6086);
-- --session-expires asks for a session timer (RFC 4028) that we refresh.
-- The outcome is one line on stdout:
--   "call: answered 200; BYE 200" / "call: ended by the callee" /
--   "call: failed 486 Busy Here" / "call: error <message>"
local sip = require "luasip"
local ua = require "luasip.ua"
local sdp = require "luasip.sdp"
local core = require "luasip.core"

local function offer()
  return table.concat({
    "v=0", "o=call " .. os.time() .. " 1 IN IP4 127.0.0.1", "s=call", "c=IN IP4 127.0.0.1", "t=0 0",
    "m=audio 42000 RTP/AVP 0 8 101", "a=rtpmap:0 PCMU/8000", "a=rtpmap:8 PCMA/8000",
    "a=rtpmap:101 telephone-event/8000", "a=sendrecv", "",
  }, "\r\n")
end

local function say(fmt, ...)
  io.stdout:write("call: ", string.format(fmt, ...), "\n")
  io.stdout:flush()
end

local call_ua -- the UA of the call: in-dialog requests go to it

local function place(srv, o)
  local se = o["session-expires"] > 0 and o["session-expires"] or nil
  local u = ua.new(srv, { from = o.from ~= "" and o.from or nil, min_se = se and math.min(90, se) })
  call_ua = u
  local credentials
  if o.user ~= "" then
    credentials = function()
      return o.user, o.password
    end
  end
  local mine = offer()
  local d, res, why = u:invite { to = o.to, sdp = mine, route = o.via ~= "" and o.via or nil,
    credentials = credentials, timeout = o.timeout > 0 and o.timeout or nil, session_expires = se }
  if not d then
    if type(res) == "string" or res == nil then
      say("error %s", tostring(res))
    else
      say("failed %d %s%s", res.status, res.reason, why and " (" .. why .. ")" or "")
    end
    return
  end
  if o.reinvite then
    local held = sdp.serialize(sdp.hold(assert(sdp.parse(mine))))
    local r1 = d:reinvite(held)
    local r2 = d:reinvite(mine)
    say("re-INVITE hold %d, resume %d", r1 and r1.status or 0, r2 and r2.status or 0)
  end
  if o.update or o.info then
    local out = {}
    if o.update then
      local r = d:update(mine)
      out[#out + 1] = "UPDATE " .. (r and r.status or 0)
    end
    if o.info then
      local r = d:info("Signal=5\r\nDuration=160\r\n", "application/dtmf-relay")
      out[#out + 1] = "INFO " .. (r and r.status or 0)
    end
    say("%s", table.concat(out, ", "))
  end
  local deadline = core.now() + math.floor(o["hold-time"] * 1000) -- ms
  while d:state() ~= "terminated" do
    local left = (deadline - core.now()) / 1000
    if left < 0.001 then -- (a 0 ms timer would not move the loop's clock)
      break
    end
    local ev, ended = d:wait(left)
    if not ev and ended ~= "timeout" then
      break
    end
  end
  if d:state() == "terminated" then
    say("answered %d; ended by the callee", res.status)
  else
    local bye = d:bye()
    say("answered %d; BYE %s", res.status, bye and tostring(bye.status) or "no answer")
  end
end

local srv

return {
  listen = { "udp:127.0.0.1:5072" },
  options = {
    to = { default = "", help = "the callee (a SIP URI)", arg = "URI" },
    from = { default = "", help = "our From URI", arg = "URI" },
    via = { default = "", help = "an outbound proxy URI", arg = "URI" },
    user = { default = "", help = "digest user name", arg = "NAME" },
    password = { default = "", help = "digest password", arg = "SECRET" },
    ["hold-time"] = { default = 2, help = "seconds in the call before BYE", arg = "SECONDS" },
    timeout = { default = 30, help = "seconds of ringing before CANCEL (0: none)", arg = "SECONDS" },
    reinvite = { default = false, help = "hold and resume with two re-INVITEs" },
    update = { default = false, help = "send an UPDATE with the offer once answered" },
    info = { default = false, help = "send an INFO (a DTMF digit) once answered" },
    ["session-expires"] = { default = 0, help = "a session timer we refresh (RFC 4028; 0: none)", arg = "SECONDS" },
  },
  setup = function(ctx)
    srv = ctx.server
    local o = ctx.options
    if o.to == "" then
      error("--to URI is required")
    end
    -- once the listeners are open
    sip.timer(0, function()
      local ok, err = pcall(place, srv, o)
      if not ok then
        say("error %s", tostring(err))
      end
      srv:stop()
    end)
  end,
  request = function(req)
    if call_ua and call_ua:handle(req) then
      return
    end
    if req.method == "ACK" then
      return
    end
    req:reply(req.method == "OPTIONS" and 200 or 481)
  end,
}
