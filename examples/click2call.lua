-- Click-to-call, third-party call control (RFC 3725 flow I): luasip, the
-- controller, calls A with no SDP, takes A's offer from its 200, calls B
-- with that offer, and gives B's answer (from B's 200) to A in A's ACK;
-- B's 200 is acknowledged at once. A and B then talk to each other
-- (media flows between them, not through luasip). After --hold-time
-- seconds the controller hangs up both (BYE); when one side hangs up
-- first, the other gets BYE.
--
--     luasip run examples/click2call.lua --listen udp:127.0.0.1:5074 \
--       --a sip:alice@127.0.0.1:5080 --b sip:bob@127.0.0.1:5090 \
--       [--via sip:127.0.0.1:5060] [--hold-time SECONDS] [--timeout SECONDS]
--
-- The outcome is one line on stdout, e.g.
--   "click2call: bridged A 200 B 200; BYE A 200 B 200"
--   "click2call: A failed 486 Busy Here"
--   "click2call: B failed 480 Temporarily Unavailable; BYE A 200"
local sip = require "luasip"
local ua = require "luasip.ua"
local core = require "luasip.core"

local function say(fmt, ...)
  io.stdout:write("click2call: ", string.format(fmt, ...), "\n")
  io.stdout:flush()
end

local u -- the controller's UA: in-dialog requests (BYE from A or B) go to it

local function status(res)
  if type(res) == "string" or res == nil then
    return "error " .. tostring(res)
  end
  return res.status .. " " .. res.reason
end

local function bye(d)
  if d:state() == "terminated" then
    return "ended"
  end
  local res = d:bye()
  return res and tostring(res.status) or "no answer"
end

local function control(o)
  local route = o.via ~= "" and o.via or nil
  local timeout = o.timeout > 0 and o.timeout or nil
  -- 1. INVITE A without an offer; its 200 carries A's offer (no ACK yet)
  local da, ra = u:invite { to = o.a, route = route, timeout = timeout, ack = false }
  if not da then
    return say("A failed %s", status(ra))
  end
  local offer = da.remote_sdp
  if not offer then
    da:ack()
    return say("A answered without an offer; BYE A %s", bye(da))
  end
  -- 2. INVITE B with A's offer; B's 200 has the answer (ACKed by the UA)
  local db, rb = u:invite { to = o.b, route = route, timeout = timeout, sdp = offer }
  if not db then
    da:ack() -- §13.2.2.4 still wants the ACK; then hang up (RFC 3725 §4)
    return say("B failed %s; BYE A %s", status(rb), bye(da))
  end
  -- 3. ACK A with B's answer: A and B now have each other's SDP
  da:ack(db.remote_sdp)
  -- 4. the call: until --hold-time or a BYE from either side
  local deadline = core.now() + math.floor(o["hold-time"] * 1000)
  local ended
  local function watch(d, other, name)
    sip.spawn(function()
      while d:state() ~= "terminated" do
        local ev, why = d:wait()
        if not ev and why ~= "timeout" then
          break
        end
      end
      if not ended then -- the first to hang up: the other leg gets BYE
        ended = name
        if other:state() ~= "terminated" then
          other:bye()
        end
      end
    end)
  end
  watch(da, db, "A")
  watch(db, da, "B")
  while not ended do
    local left = (deadline - core.now()) / 1000
    if left < 0.001 then
      break
    end
    sip.sleep(math.min(left, 0.05))
  end
  if ended then
    sip.sleep(0.1) -- the other leg's BYE
    return say("bridged A %d B %d; ended by %s", ra.status, rb.status, ended)
  end
  ended = "us"
  local ba, bb = bye(da), bye(db)
  say("bridged A %d B %d; BYE A %s B %s", ra.status, rb.status, ba, bb)
end

local srv

return {
  listen = { "udp:127.0.0.1:5074" },
  options = {
    a = { default = "", help = "the first party, called first (a SIP URI)", arg = "URI" },
    b = { default = "", help = "the second party (a SIP URI)", arg = "URI" },
    via = { default = "", help = "an outbound proxy URI", arg = "URI" },
    ["hold-time"] = { default = 5, help = "seconds of call before both get BYE", arg = "SECONDS" },
    timeout = { default = 30, help = "seconds of ringing before CANCEL (0: none)", arg = "SECONDS" },
  },
  setup = function(ctx)
    srv = ctx.server
    local o = ctx.options
    if o.a == "" or o.b == "" then
      error("--a URI and --b URI are required")
    end
    sip.timer(0, function() -- once the listeners are open
      u = ua.new(srv, { from = "sip:click2call@" .. (srv:listeners()[1]:match("^%a+:(.*)$") or "127.0.0.1") })
      local ok, err = pcall(control, o)
      if not ok then
        say("error %s", tostring(err))
      end
      srv:stop()
    end)
  end,
  request = function(req)
    if u and u:handle(req) then
      return
    end
    if req.method == "ACK" then
      return
    end
    req:reply(req.method == "OPTIONS" and 200 or 481)
  end,
}
