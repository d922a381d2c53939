-- Call transfer, a demo (RFC 3515 REFER, RFC 3891 Replaces): three luasip
-- UAs in one process, alice (the script's listener), bob and carol (the
-- next two ports). Blind: alice calls bob, REFERs him to carol, follows
-- the transfer by NOTIFY message/sipfrag, hangs up; bob and carol talk.
-- Attended: alice calls bob, then carol (consultation), REFERs bob to
-- carol with Replaces naming her call with carol; carol takes bob's call
-- in its place and hangs up alice's. Prints each step and stops.
--
--     luasip run examples/transfer.lua --listen udp:127.0.0.1:5080 \
--       [--mode blind|attended|both] [--hold-time SECONDS]
--
-- Output, e.g.
--   transfer: blind: alice-bob 200; REFER 202; NOTIFY SIP/2.0 100 Trying,
--     SIP/2.0 180 Ringing, SIP/2.0 200 OK; bob-carol confirmed
--   transfer: attended: ... carol replaced alice's call: bob-carol confirmed
local sip = require "luasip"
local ua = require "luasip.ua"
local refer = require "luasip.ua.refer"

local SDP = table.concat({
  "v=0", "o=demo 1 1 IN IP4 127.0.0.1", "s=-", "c=IN IP4 127.0.0.1", "t=0 0",
  "m=audio 40000 RTP/AVP 0", "a=rtpmap:0 PCMU/8000", "a=sendrecv", "",
}, "\r\n")

local function say(fmt, ...)
  io.stdout:write("transfer: ", string.format(fmt, ...), "\n")
  io.stdout:flush()
end

local srv, opts
local uas = {} -- name -> UA
local servers = {}

-- A UA on srv named name: answers INVITEs (180, 200 with SDP), takes
-- REFERs and INVITEs with Replaces; its calls in u.calls.
local function make_ua(name, s, script)
  local hostport = s:listeners()[1]:match("^%a+:(.*)$")
  local u = ua.new(s, { contact = "<sip:" .. name .. "@" .. hostport .. ">" })
  u.name, u.uri, u.calls = name, "sip:" .. name .. "@" .. hostport, {}
  u:on_refer(function(_, req, target)
    say("  %s: REFER to %s%s from %s", name, target.uri, target.replaces and " (with Replaces)" or "",
      tostring(req.from.uri))
    return true
  end, { on_call = function(nd, _, res)
    if nd then
      u.calls[#u.calls + 1] = nd
    end
    say("  %s: the transfer call: %s", name, res and res.status and tostring(res.status) or "failed")
  end })
  refer.on_replaces(u, nil, { on_call = function(nd, old)
    u.calls[#u.calls + 1] = nd
    u.replaced = old
    say("  %s: INVITE with Replaces: the old call hung up, the new one %s", name, nd and nd:state() or "failed")
  end })
  local function handler(req)
    if u:handle(req) then
      return
    end
    if req.method ~= "INVITE" then
      return req:reply(405)
    end
    req:reply(180)
    sip.sleep(0.05)
    u.calls[#u.calls + 1] = u:answer(req, SDP)
  end
  if script then -- the script's own server: its request function
    u.handler = handler
  else
    s:on_request(handler)
  end
  uas[name] = u
  return u
end

local function frags(r)
  return table.concat(r.frags, ", ")
end

local function hangup_all()
  for _, u in pairs(uas) do
    for _, d in ipairs(u.calls) do
      if d:state() ~= "terminated" then
        d:bye()
      end
    end
    u.calls = {}
  end
end

local function blind()
  local alice, bob, carol = uas.alice, uas.bob, uas.carol
  local d, res = alice:invite { to = bob.uri, sdp = SDP }
  if not d then
    return say("blind: alice-bob failed %s", tostring(res and res.status))
  end
  local r, fail = d:refer(carol.uri, { referred_by = "<" .. alice.uri .. ">" })
  if not r then
    return say("blind: REFER refused %s", tostring(fail and fail.status))
  end
  d:bye()
  sip.sleep(0.1)
  local bc = bob.calls[#bob.calls]
  say("blind: alice-bob %d; REFER %d; NOTIFY %s; outcome %s; bob-carol %s", res.status, r.response.status,
    frags(r), tostring(r.status), bc and bc:state() or "none")
  sip.sleep(opts["hold-time"])
  hangup_all()
end

local function attended()
  local alice, bob, carol = uas.alice, uas.bob, uas.carol
  local d1 = alice:invite { to = bob.uri, sdp = SDP }
  local d2 = alice:invite { to = carol.uri, sdp = SDP }
  if not d1 or not d2 then
    return say("attended: a call failed")
  end
  local r, fail = d1:refer(carol.uri, { replaces = d2 })
  if not r then
    return say("attended: REFER refused %s", tostring(fail and fail.status))
  end
  sip.sleep(0.1)
  d1:bye()
  local bc = bob.calls[#bob.calls]
  say("attended: REFER %d; NOTIFY %s; outcome %s; alice-carol %s; bob-carol %s", r.response.status, frags(r),
    tostring(r.status), d2:state(), bc and bc:state() or "none")
  sip.sleep(opts["hold-time"])
  hangup_all()
end

local function demo()
  local transport, host, port = srv:listeners()[1]:match("^(%a+):(.*):(%d+)$")
  make_ua("alice", srv, true)
  for i, name in ipairs({ "bob", "carol" }) do
    local p = tonumber(port) == 0 and 0 or tonumber(port) + i
    local s = assert(sip.server { listen = { transport .. ":" .. host .. ":" .. p } })
    servers[#servers + 1] = s
    make_ua(name, s)
  end
  if opts.mode == "blind" or opts.mode == "both" then
    blind()
  end
  if opts.mode == "attended" or opts.mode == "both" then
    attended()
  end
end

return {
  listen = { "udp:127.0.0.1:5080" },
  options = {
    mode = { default = "both", help = "blind, attended or both", arg = "MODE" },
    ["hold-time"] = { default = 0.2, help = "seconds of the transferred call", arg = "SECONDS" },
  },
  setup = function(ctx)
    srv, opts = ctx.server, ctx.options
    sip.timer(0, function()
      local ok, err = pcall(demo)
      if not ok then
        say("error %s", tostring(err))
      end
      sip.sleep(0.2)
      for _, s in ipairs(servers) do
        s:close()
      end
      srv:stop()
    end)
  end,
  request = function(req)
    if uas.alice then
      return uas.alice.handler(req)
    end
    req:reply(503)
  end,
}
