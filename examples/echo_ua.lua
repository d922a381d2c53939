-- An auto-answer UA: every INVITE gets 180, then 200 with an SDP answer
-- (luasip.sdp.answer_text against our PCMU/PCMA/telephone-event capabilities;
-- a caller that supports 100rel gets the answer in a reliable 183 instead,
-- PRACKed before the 200 (RFC 3262);
-- 488 for an offer without a common codec or a body that is not SDP, an
-- INVITE without an offer gets our capabilities as the offer); the call
-- is hung up (BYE) after --hold-time seconds, or ends when the caller sends
-- BYE. In-dialog requests (re-INVITE, UPDATE, INFO, BYE), their ACKs and
-- 481s are luasip.ua's (u:handle). OPTIONS gets 200; anything else 405.
--
--     luasip run examples/echo_ua.lua --listen udp:127.0.0.1:5070 \
--       [--hold-time SECONDS] [--ring SECONDS] [--session-expires SECONDS]
--       [--min-se SECONDS]
--
-- --hold-time 0 never hangs up (the caller must). --session-expires runs a
-- session timer (RFC 4028) with callers that support it; --min-se (90)
-- answers 422 below it. No media: the answer
-- names a port nobody listens on.
local sip = require "luasip"
local ua = require "luasip.ua"
local sdp = require "luasip.sdp"
local core = require "luasip.core"

local srv, u, opts

-- Our capabilities, on the address the call came to (made once per
-- address: calls and dialogs share the string; the answer is negotiated
-- in C from the two texts, without Lua tables).
local caps_of = {}
local function caps(host)
  if caps_of[host] then
    return caps_of[host]
  end
  caps_of[host] = table.concat({
    "v=0", "o=echo " .. os.time() .. " 1 IN IP4 " .. host, "s=echo", "c=IN IP4 " .. host, "t=0 0",
    "m=audio 40000 RTP/AVP 0 8 101", "a=rtpmap:0 PCMU/8000", "a=rtpmap:8 PCMA/8000",
    "a=rtpmap:101 telephone-event/8000", "a=fmtp:101 0-16", "a=sendrecv", "",
  }, "\r\n")
  assert(sdp.parse(caps_of[host]))
  return caps_of[host]
end

-- Answers are few (one per set of common codecs and direction): each text
-- is kept once and the dialogs holding it (d.local_sdp) share it; at most
-- 64 are kept.
local answers, nanswers = {}, 0
local function shared(text)
  local s = answers[text]
  if s then
    return s
  end
  if nanswers >= 64 then
    answers, nanswers = {}, 0
  end
  answers[text], nanswers = text, nanswers + 1
  return text
end

-- A re-INVITE or UPDATE with an offer is answered from our capabilities
-- (d.caps: those of the address the call came to).
local function answer_sdp(d, offer)
  return (sdp.answer_text(offer, d.caps))
end

local function invite(req)
  local src = req:source()
  local host = src and src.local_host or "127.0.0.1"
  local ours = caps(host:find(":", 1, true) and "127.0.0.1" or host)
  local answer = ours
  if req.body ~= "" then
    local a, streams = sdp.answer_text(req.body, ours)
    if not a or streams == 0 then
      return req:reply(488, "Not Acceptable Here")
    end
    answer = shared(a)
  end
  local d
  if u:supports(req, "100rel") then -- the answer in a reliable 183
    d = u:progress(req, 183, answer, { reliable = true })
    if not d then -- no PRACK: the INVITE failed (500)
      return
    end
    answer = nil -- given: the 200 carries none
  else
    req:reply(180)
  end
  if opts.ring > 0 then
    sip.sleep(opts.ring)
    if req:is_cancelled() then
      return u:abandon(req)
    end
  end
  d = u:answer(req, answer)
  if not d then
    return
  end
  d.caps, d.answer_sdp = ours, answer_sdp
  local hold = opts["hold-time"]
  if hold <= 0 then -- the dialog lives on in u (u:handle); no coroutine kept
    return
  end
  local deadline = core.now() + math.floor(hold * 1000) -- ms
  while true do
    local left = (deadline - core.now()) / 1000
    if left < 0.001 then -- (a 0 ms timer would not move the loop's clock)
      d:bye()
      return
    end
    local ev = d:wait(left)
    if not ev and d:state() == "terminated" then
      return
    end
  end
end

return {
  listen = { "udp:127.0.0.1:5070" },
  server = { sanity = { supported = ua.supported } }, -- Require: 100rel passes
  options = {
    ["hold-time"] = { default = 10, help = "seconds before we hang up (0: never)", arg = "SECONDS" },
    ring = { default = 0, help = "seconds of ringing before the answer", arg = "SECONDS" },
    ["session-expires"] = { default = 0, help = "session interval we ask for (RFC 4028; 0: none)", arg = "SECONDS" },
    ["min-se"] = { default = 90, help = "smallest session interval accepted (422 below)", arg = "SECONDS" },
  },
  setup = function(ctx)
    opts, srv = ctx.options, ctx.server
  end,
  request = function(req)
    -- here the listeners are open: our Contact
    u = u or ua.new(srv, { session_expires = opts["session-expires"] > 0 and opts["session-expires"] or nil,
      min_se = opts["min-se"] })
    if u:handle(req) then
      return
    end
    if req.method == "INVITE" then
      return invite(req)
    elseif req.method == "OPTIONS" then
      return req:reply(200)
    end
    req:reply(405)
  end,
}
