-- A load balancer in front of N registrars or media servers, as a `luasip
-- run` script: every initial request is relayed to one destination of the
-- set (luasip.dispatcher), record-routed, and failed over to the next on a
-- 408, a 5xx or a transport error; OPTIONS probes take dead destinations
-- out and put them back.
--
--     luasip run examples/balancer.lua --listen udp:127.0.0.1:5060 \
--       --dest sip:10.0.0.1:5060 --dest 'sip:10.0.0.2:5060#weight=2' \
--       [--algorithm round_robin|weighted|hash_callid|hash_from|hash_ruri|priority]
--       [--probe-interval S] [--down-after N] [--up-after N] [--timeout S]
--       [--flood N] [--flood-block S] [--flood-trust CIDR,...]
--       [--metrics 127.0.0.1:9090] [--ctl PATH]
--
-- A destination is a SIP URI, optionally followed by `#weight=N`,
-- `#priority=N` or both (`#weight=2,priority=1`; `#` cannot appear in a
-- SIP URI). Host names are located by RFC 3263.
--
-- Policy:
--   OPTIONS to the balancer itself (no user part) -> 200
--   requests with a To tag (in dialog)           -> loose-routed and relayed
--                                                   (404 without a Route; an
--                                                   ACK for nothing: absorbed)
--   initial requests                             -> Record-Route (except
--                                                   REGISTER), relayed to the set
--   no usable destination                        -> 503
-- Flood protection is on (in the transport, before any parsing or
-- script): a source sending more than --flood N (default 200)
-- INVITE/REGISTER, or 4N other requests, within a second is blocked for
-- --flood-block seconds (60), its first dropped request answered 503 with
-- Retry-After. The destinations (by address: host names resolved, and
-- followed as they re-resolve) and --flood-trust networks are never
-- limited; --flood 0 switches it off. `luasip ctl
-- blocked list` and `unblock ADDR` show and lift blocks.
--
-- `luasip ctl dispatcher list` shows the states; `/metrics` (with
-- --metrics) has luasip_dispatcher_destination_state.
-- `--metrics ADDR:PORT` serves them with the rest of the server's
-- counters (flood drops and blocks, responses by class, relay latency).
local proxy = require "luasip.proxy"
local dispatcher = require "luasip.dispatcher"

local SET = "balancer"
local relay_opts = { timeout = 5 }

-- "sip:host:port#weight=2,priority=1" -> { uri =, weight =, priority = }
local function parse_dest(text)
  local uri, attrs = text:match("^([^#]+)#?(.*)$")
  local d = { uri = uri }
  for k, v in (attrs or ""):gmatch("(%a+)=([^,]+)") do
    if k ~= "weight" and k ~= "priority" then
      error(("--dest %s: unknown attribute %q (weight, priority)"):format(text, k))
    end
    d[k] = tonumber(v) or error(("--dest %s: %s must be a number"):format(text, k))
  end
  return d
end

local function to_self(req)
  return not req.uri:find("@", 1, true)
end

local function request(req)
  local method = req.method
  if method == "ACK" and req:is_initial() then
    return -- an ACK without a To tag acknowledges nothing here
  end
  if not req:is_initial() then
    if req:loose_route() then
      return proxy.relay(req, nil, relay_opts)
    end
    if method ~= "ACK" then
      return req:reply(404, "Not here")
    end
    return
  end
  if method == "OPTIONS" and to_self(req) and req.max_forwards ~= 0 then
    return req:reply(200, nil, { Allow = "INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER" })
  end
  if method ~= "REGISTER" then
    req:record_route()
  end
  dispatcher.relay(req, SET, relay_opts)
end

return {
  listen = { "udp:127.0.0.1:5060", "tcp:127.0.0.1:5060" },
  options = {
    dest = { multiple = true, arg = "URI", help = "a destination, repeatable: sip:HOST:PORT[#weight=N,priority=N]" },
    algorithm = { default = "round_robin", arg = "NAME",
      help = "round_robin, weighted, hash_callid, hash_from, hash_ruri or priority" },
    ["probe-interval"] = { default = 5, arg = "S", help = "seconds between OPTIONS probes (0: no probes)" },
    ["probe-timeout"] = { default = 0, arg = "S", help = "seconds a probe may take (0: the interval, at most 5)" },
    ["down-after"] = { default = 3, help = "failed probes in a row that take a destination out" },
    ["up-after"] = { default = 2, help = "answered probes in a row that put it back" },
    timeout = { default = 5, arg = "S", help = "seconds a destination gets to answer before the next is tried" },
    flood = { default = 200, arg = "N",
      help = "flood protection: at most N INVITE/REGISTER (4N other requests) per source and second; 0: off" },
    ["flood-block"] = { default = 60, arg = "S", help = "seconds a flooding source is blocked" },
    ["flood-trust"] = { arg = "CIDR,...", help = "networks never flood-limited (the destinations always are)" },
  },
  setup = function(ctx)
    local o = ctx.options
    if #o.dest == 0 then
      error("at least one --dest URI is needed")
    end
    local dests = {}
    for i, text in ipairs(o.dest) do
      dests[i] = parse_dest(text)
    end
    -- flood protection first: dispatcher.set trusts the destinations
    local flood = math.tointeger(tonumber(o.flood)) or error("--flood: a whole number expected")
    if ctx.server and flood > 0 then
      local trusted = {}
      for c in (o["flood-trust"] or ""):gmatch("[^,%s]+") do
        trusted[#trusted + 1] = c
      end
      ctx.server:set_flood {
        invite = flood, other = 4 * flood, reply_503 = true, trusted = trusted,
        block = math.floor(tonumber(o["flood-block"]) * 1000),
      }
    elseif ctx.server then
      ctx.server:set_flood(nil)
    end
    local interval = o["probe-interval"]
    local probe = interval > 0 and {
      interval = interval, down_after = o["down-after"], up_after = o["up-after"],
      timeout = o["probe-timeout"] > 0 and o["probe-timeout"] or nil,
    } or nil
    dispatcher.set(SET, dests, {
      algorithm = o.algorithm, server = ctx.server, probe = probe,
      down_after = o["down-after"], up_after = o["up-after"],
    })
    relay_opts.timeout = o.timeout
  end,
  request = request,
  stop = function()
    dispatcher.reset()
  end,
}
