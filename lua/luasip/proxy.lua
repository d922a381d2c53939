--- A SIP proxy (RFC 3261 §16) driven from a request handler.
--
--     local proxy = require "luasip.proxy"
--     srv:on_request(function(req)
--       if req:is_initial() then req:record_route() end
--       local res = proxy.relay(req, targets, { fork = "serial", timeout = 30 })
--       if res.status == 486 then return proxy.relay(req, voicemail) end
--     end)
--
-- The proxy core is C (csrc/proxy): the script chooses targets, the core
-- validates the request (§16.3: Max-Forwards 0 gets 483, a loop 482, an
-- unsupported Proxy-Require 420 — answered by the core), preprocesses
-- Route (§16.4), forwards one branch per target (§16.6: Request-URI,
-- Max-Forwards decremented, Record-Route with the transport of each side —
-- two values when the request leaves over another listener than the one it
-- came in on —, a Via whose branch carries the §16.6 item 8 loop hash,
-- Route values of a Path), forwards provisional responses and every 2xx at
-- once (§16.7), cancels the other branches after a 2xx or a 6xx, runs
-- Timer C (§16.8, 180 s by default, `srv:set_timer_c(s)`), answers a
-- CANCEL by cancelling the pending branches (§16.10), and keeps the
-- response context: the best final response (§16.7 step 6: a 6xx, else the
-- lowest class, 401/407/415/420/484 preferred in 4xx, 408 when nothing
-- came) is what `relay` returns and what goes upstream when the handler
-- ends without replying itself — with the challenges of every 401/407
-- branch aggregated and a 503 turned into 500.
--
-- In-dialog requests: `req:loose_route()` removes this proxy's Route
-- values (and fixes a strict router's Request-URI); `proxy.relay(req)`
-- then sends the request to its next hop. An ACK is always forwarded
-- statelessly (it has no response).
--
-- Methods the proxy adds to received requests (C):
--
-- - `req:is_initial()`: true when the To header has no tag
-- - `req:record_route([params])`: every branch of this request gets a
--   Record-Route (`<sip:address:port;transport=..;lr` .. params .. `>`)
-- - `req:loose_route()`: §16.4; true when the request carried Route values
-- - `req:forward([target])`: stateless forwarding (§16.11, see
--   `proxy.forward`)
-- - `req:finish()`: send the best response of the context now (done by
--   the server when a handler ends without a final reply)
-- - `srv:add_alias(host)`: a host name this proxy answers to (a Route or
--   Request-URI naming it is "myself"); `srv:set_timer_c(seconds)`
--
-- NAT helpers (nathelper-like): `proxy.force_rport` (a server option),
-- `proxy.received(req)`, `proxy.is_nated(req)`, `proxy.fix_nated_contact(msg)`,
-- `proxy.fix_nated_register(req)`.
-- @module luasip.proxy
local core = require "luasip.core"
local server = require "luasip.server"
local consume_credentials = require("luasip.auth").consume

local co_running, co_yield = coroutine.running, coroutine.yield
local type, tonumber, error, ipairs, tostring = type, tonumber, error, ipairs, tostring
local sip_uri = core.uri

local M = {}

local resume = server.resume

core.set_proxy_resume(function(co, status, res)
  resume(co, status, res)
end)

--- Relay a request statefully and wait for the outcome of this round.
--
-- `targets`: nil (the request's own Request-URI / Route: in-dialog
-- requests), a URI string, a binding table of `luasip.location` (`contact`,
-- `q`, `path`, `received`) or `{ uri =, dest =, route =, q = }`, or a list
-- of those. `dest` / `received` (`"udp:192.0.2.4:5060"`) is where the
-- branch is sent instead of the Request-URI's host (a registration behind
-- NAT); `path` (list) / `route` (string) are pushed as Route values.
--
-- Options: `fork = "parallel"` (default, all targets at once) or
-- `"serial"` (groups of equal q, highest first; the next group starts
-- when every branch of a group ended with a status in `failover`, default
-- any 3xx-5xx); `timeout` (seconds for the whole round: pending branches
-- are cancelled when it passes), `branch_timeout` (seconds a group may
-- ring before it is cancelled and the next one starts), `timer_c`
-- (seconds, §16.8), `recurse` (3xx Contacts become new branches),
-- `on_provisional = function(res, branch, status)` (before a 1xx is
-- forwarded: edit it, or return false to drop it) and
-- `on_response = function(res, branch, status)` (every branch's final
-- response; `res` is nil for a made-up 408/503). Hooks run outside the
-- handler's coroutine and must not wait.
--
-- Returns the best final response of the round (a luasip.Message; a
-- made-up one for 408, 487 and statuses without a response). A 2xx has
-- already been forwarded; anything else goes upstream when the handler
-- ends, unless it replies itself or relays again. Credentials that
-- `auth.check` accepted for this request (our realm) are removed first
-- (`auth.consume`); credentials for other realms are forwarded. When the core answered
-- the request at once (483, 482, 420) the response says so and nothing is
-- left to do. For an ACK, nothing is returned (forwarded statelessly).
-- @tparam Message req a received request
-- @param[opt] targets
-- @tparam[opt] table opts
-- @treturn[1] Message the best response
-- @return[2] nil
-- @treturn[2] string error message
function M.relay(req, targets, opts)
  consume_credentials(req) -- ours (auth.check accepted them) go no further
  local r, err, name = req:_relay(targets, opts)
  if r == true then
    if req.method == "ACK" then
      return
    end
    local _, main = co_running()
    if main then
      error("proxy.relay() must run inside a request handler or sip.spawn()", 2)
    end
    local status, res = co_yield()
    return res or req:response(status)
  elseif r == nil then
    return nil, err, name
  end
  return req:response(r)
end

--- Forward a request statelessly (RFC 3261 §16.11): Max-Forwards
-- decremented, this proxy's Route values removed, a Via whose branch is a
-- hash of the incoming one (a retransmission, the CANCEL and the ACK of a
-- non-2xx get the same branch), Record-Route when `req:record_route()` was
-- called; responses come back through the server and are forwarded along
-- their next Via by the core. The request is not answered (a stateful
-- server drops its transaction: use `transactions = false` for a purely
-- stateless proxy, so retransmissions are forwarded too).
-- @tparam Message req
-- @param[opt] target a URI string or `{ uri =, dest =, route = }`
-- @treturn[1] boolean true
-- @return[2] nil
-- @treturn[2] string error message
function M.forward(req, target)
  return req:forward(target)
end

------------------------------------------------------------------------------
-- NAT helpers
------------------------------------------------------------------------------

--- Force RFC 3581 rport: create the server with `force_rport = true` and
-- every UDP request's top Via gets `received` and `rport` with its source
-- address before the transaction layer sees it, so every response goes
-- back to where the request came from (Kamailio's force_rport()). Kept
-- here for discoverability.
M.force_rport = "server option force_rport = true"

local function is_private(host)
  if type(host) ~= "string" then
    return false
  end
  local a, b = host:match("^(%d+)%.(%d+)%.%d+%.%d+$")
  a, b = tonumber(a), tonumber(b)
  if not a then
    local h = host:lower():gsub("^%[", ""):gsub("%]$", "")
    return h:find("^f[cd]") ~= nil or h:find("^fe80:") ~= nil
  end
  return a == 10 or (a == 172 and b >= 16 and b <= 31) or (a == 192 and b == 168)
    or (a == 100 and b >= 64 and b <= 127) or a == 169 and b == 254
end

--- Is a host an RFC 1918 / RFC 6598 / link-local / ULA address?
-- @tparam string host
-- @treturn boolean
M.is_private = is_private

--- The source of a request as a destination spec: `"udp:192.0.2.4:5060"`
-- (the `received` of a location binding).
-- @tparam Message req
-- @treturn string
function M.received(req)
  local src = req:source()
  if not src then
    return nil
  end
  local host = src.host:find(":", 1, true) and "[" .. src.host .. "]" or src.host
  return src.transport:lower() .. ":" .. host .. ":" .. src.port
end

--- nat_uac_test-like: true when the message seems to come from behind a
-- NAT: its first Contact names a private address, or (a request) the top
-- Via's sent-by is not its source address and port. For the responses the
-- relay hooks get (`on_provisional`, `on_response`), the Contact test
-- alone.
-- @tparam Message req a received request, or a response in a relay hook
-- @treturn boolean
function M.is_nated(req)
  local src = req:source()
  if not src then
    return false
  end
  local c = req.contacts and req.contacts[1]
  local u = c and c.uri and sip_uri(c.uri)
  if u and is_private(u.host) then
    return true
  end
  if req.status then
    return false -- the top Via of a response is this proxy's own
  end
  local v = req.via and req.via[1]
  if v then
    local vh = tostring(v.host):gsub("^%[", ""):gsub("%]$", "")
    return vh ~= src.host or (v.port or 5060) ~= src.port
  end
  return false
end

-- "<sip:user@host:port;params>" with host:port replaced by the source
local function contact_at(c, host, port, transport)
  local u = sip_uri(c.uri)
  if not u then
    return nil
  end
  local h = host:find(":", 1, true) and "[" .. host .. "]" or host
  local raw = c.uri
  local scheme, rest = raw:match("^(%a+):(.*)$")
  local userinfo = rest:match("^([^@]*@)") or ""
  local after = rest:sub(#userinfo + 1)
  -- host[:port] then ;params / ?headers
  local params = after:match("^%[[^%]]*%][^;?]*(.*)$") or after:match("^[^;?]*(.*)$") or ""
  if transport and transport ~= "udp" and not params:lower():find(";transport=", 1, true) then
    params = ";transport=" .. transport .. params
  end
  local uri = scheme .. ":" .. userinfo .. h .. ":" .. port .. params
  local hp = c.params and c.raw:match("^%s*<[^>]*>(.*)$") or ""
  return "<" .. uri .. ">" .. hp
end

--- fix_nated_contact: the first Contact of a message gets the address
-- and port it came from (the address its NAT exposes), so the other side
-- reaches it (Kamailio nathelper's fix_nated_contact()). For a request
-- (the caller behind NAT) in the handler; for a response (the callee's
-- 18x / 2xx) in the relay hooks `on_provisional` / `on_response`, which run
-- before it is forwarded.
-- @tparam Message req a received request, or a response in a relay hook
-- @treturn boolean true when the Contact was rewritten
function M.fix_nated_contact(req)
  local src = req:source()
  local c = req.contacts and req.contacts[1]
  if not src or not c or req.contacts.star then
    return false
  end
  local v = contact_at(c, src.host, src.port, src.transport:lower())
  if not v then
    return false
  end
  local all = req:headers("Contact")
  all[1] = v
  req:remove_header("Contact")
  for _, value in ipairs(all) do
    req:add_header("Contact", value)
  end
  return true
end

--- fix_nated_register: for a REGISTER, the binding's `received` (the
-- source as `"udp:IP:PORT"`) so that requests to it go where its NAT
-- listens, while the Contact stays as registered (Kamailio's
-- fix_nated_register() with the `received` AVP). Give the result to the
-- registrar as `binding.received`; `proxy.relay` sends to it.
-- @tparam Message req
-- @treturn string|nil
function M.fix_nated_register(req)
  return M.received(req)
end

return M
