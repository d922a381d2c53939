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
-- statelessly (it has no response). A Request-URI that is one of the GRUUs
-- this domain's registrar issued (RFC 5627 §5.5; a UA's Contact, so the
-- remote target of its dialogs) is resolved by `proxy.relay(req)` to the
-- registered contact, in a dialog or not (`proxy.resolve_gruu`).
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
local type, tonumber, error, ipairs, pairs, tostring = type, tonumber, error, ipairs, pairs, tostring
local next_hop = core.dns_next_hop
local sip_uri = core.uri

local M = {}

local resume = server.resume

core.set_proxy_resume(function(co, status, res)
  resume(co, status, res)
end)

-- A branch moved to its target's next RFC 3263 destination: the one that
-- failed is avoided for a while (a 503's Retry-After), and counted.
core.set_proxy_failover(function(dest, status, res)
  local dns = require "luasip.dns"
  dns.failed_dest(dest, status == 503 and res or nil)
  dns.count_failover()
end)

-- RFC 3263 for the proxy: targets whose next hop is a host name are
-- located before the C core sees them (it sends to numeric addresses).

-- The next hop of a target (nil: the request's own), its host, numeric?
local function hop_of(req, t)
  if t == nil then
    return next_hop(req)
  elseif type(t) == "string" then
    return next_hop(req, t)
  elseif type(t) ~= "table" or t.dest or t.received then
    return nil, nil, true
  end
  return next_hop(req, t.uri or t.contact, t.route or (t.path and t.path[1]))
end

-- A copy of target t that goes to dest; the other RFC 3263 targets of
-- found (if any) become its `alt` destinations: the proxy core moves the
-- branch to the next one on a transport error, a timeout or a 503 (§4.3).
local function with_dest(req, t, dest, found)
  local c = {}
  if type(t) == "table" then
    for k, v in pairs(t) do
      c[k] = v
    end
  elseif type(t) == "string" then
    c.uri = t
  end
  c.uri = c.uri or c.contact or req.uri
  c.dest = dest
  if found and found[2] then
    local alt = {}
    for i = 2, #found do
      alt[i - 1] = found[i].dest
    end
    c.alt = table.concat(alt, " ")
  end
  return c
end

local function is_single(targets)
  return type(targets) ~= "table" or targets.uri ~= nil or targets.contact ~= nil
end

-- The request cannot be routed: NXDOMAIN / no SIP service is a 404, a DNS
-- failure a 500 (a proxy does not send 503 upstream, §16.7 step 6).
local function dns_failed(req, err, name)
  local status = name == "EAI_NONAME" and 404 or 500
  if req.method ~= "ACK" and not req:handled() then
    req:reply(status, (status == 404 and "Not Found" or "Server Internal Error") .. " (DNS: " .. err .. ")")
  end
  return req:response(status), err, name
end

local function relay_once(req, targets, opts)
  local r, err, name = req:_relay(targets, opts)
  if r == true then
    if req.method == "ACK" then
      return
    end
    local _, main = co_running()
    if main then
      error("proxy.relay() must run inside a request handler or sip.spawn()", 3)
    end
    local status, res = co_yield()
    return res or req:response(status), res == nil
  elseif r == nil then
    return nil, err, name
  end
  return req:response(r)
end

-- The body of M.relay (below, with its documentation).
local function relay(req, targets, opts)
  consume_credentials(req) -- ours (auth.check accepted them) go no further
  if targets == nil then
    local found, code = M.resolve_gruu(req)
    if found == nil then
      return nil, code
    elseif found then
      if not found[1] then
        if req.method == "ACK" then
          return
        end
        req:reply(code)
        return req:response(code)
      end
      targets = found
    end
  end
  local single = is_single(targets)
  local list, last_err, last_name = {}, nil, nil
  local dns
  for i = 1, single and 1 or math.min(#targets, 65) do
    local t = targets
    if not single then
      t = targets[i]
    end
    local hop, _, numeric = hop_of(req, t)
    if hop and not numeric then
      dns = dns or require "luasip.dns"
      local found, err, name = dns.resolve(hop)
      if found then
        list[#list + 1] = with_dest(req, t, found[1].dest, found)
        list[#list].tls_name = found[1].tls_name
      else
        last_err, last_name = err, name
      end
    else
      list[#list + 1] = t
    end
  end
  if #list == 0 and last_err then
    return dns_failed(req, last_err, last_name)
  end
  if single then
    return relay_once(req, list[1], opts)
  end
  return relay_once(req, list, opts)
end

-- Observers of every relay's outcome (luasip.metrics).
local observers = {}
local now = core.now

--- Add an observer of the outcome of every `proxy.relay` (the dispatcher's
-- too): `fn(status, seconds)`, the status of the best response (made-up
-- ones included: a 408 for no answer) and the time from the call to it.
-- Not called for an ACK or an error. It must not wait.
-- @tparam function fn
function M.observe(fn)
  observers[#observers + 1] = fn
end

--- Relay a request statefully and wait for the outcome of this round.
--
-- `targets`: nil (the request's own Request-URI / Route: in-dialog
-- requests), a URI string, a binding table of `luasip.location` (`contact`,
-- `q`, `path`, `received`) or `{ uri =, dest =, route =, q = }`, or a list
-- of those. `dest` / `received` (`"udp:192.0.2.4:5060"`) is where the
-- branch is sent instead of the Request-URI's host (a registration behind
-- NAT); `path` (list) / `route` (string) are pushed as Route values.
--
-- A next hop whose host is a name is located by RFC 3263 (`luasip.dns`)
-- first. Each such target (alone or in a list: every branch of a fork)
-- goes to its first DNS target; when that branch ends in a transport
-- error, a timeout or a 503, the proxy core moves it to the next DNS
-- target in a new branch (new transaction and Via branch; §4.3), within
-- the same round, so forking, CANCEL and the best-response choice see one
-- branch per target (the failed attempts do not compete). A failed target
-- is tried last for a while (`dns.configure{ avoid = }`, or a 503's
-- Retry-After). A target none of whose names resolve is dropped; when no
-- target is left, a name that does not exist (or has no SIP service) is
-- answered 404, a DNS failure 500 (the returned response says so).
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
-- Without targets, a Request-URI that is one of our GRUUs goes to the
-- binding it names (`proxy.resolve_gruu`; 404 / 480 answered when it names
-- none).
-- @tparam Message req a received request
-- @param[opt] targets
-- @tparam[opt] table opts
-- @treturn[1] Message the best response
-- @return[2] nil
-- @treturn[2] string error message
function M.relay(req, targets, opts)
  if not observers[1] then
    return relay(req, targets, opts)
  end
  local t0 = now()
  local res, a, b = relay(req, targets, opts)
  if res then
    local seconds = (now() - t0) / 1000
    for _, fn in ipairs(observers) do
      fn(res.status, seconds)
    end
  end
  return res, a, b
end

--- The registered contact of a request sent to one of our GRUUs (RFC 5627
-- §5.5: a domain that issues GRUUs routes them, in a dialog too, where the
-- GRUU is the remote target). Applies `req:loose_route()` first; a request
-- that still has a Route to follow is not resolved. `proxy.relay(req)`
-- without targets calls it; a script calls it to choose targets itself.
-- See `luasip.registrar.resolve_gruu` for which GRUUs are ours.
-- @tparam Message req a received request
-- @treturn[1] boolean false: the Request-URI is not one of our GRUUs
-- @treturn[2] {table,...} the binding (a relay target), or `{}`
-- @treturn[2] integer when `{}`: the status to answer (404, 480)
-- @return[3] nil
-- @treturn[3] string a store failure
function M.resolve_gruu(req)
  -- runs for every in-dialog request: the Request-URI's text is searched
  -- before it is parsed, as almost none has a gr parameter
  local text = req.uri
  if not (text and text:find(";[gG][rR]")) then
    return false
  end
  local u = req.ruri
  if not (u and u.params and u.params.gr ~= nil) then
    return false
  end
  req:loose_route()
  if req:header("Route") then
    return false
  end
  return require("luasip.registrar").resolve_gruu(req.ruri, req)
end

--- Forward a request statelessly (RFC 3261 §16.11): Max-Forwards
-- decremented, this proxy's Route values removed, a Via whose branch is a
-- hash of the incoming one (a retransmission, the CANCEL and the ACK of a
-- non-2xx get the same branch), Record-Route when `req:record_route()` was
-- called; responses come back through the server and are forwarded along
-- their next Via by the core. The request is not answered (a stateful
-- server drops its transaction: use `transactions = false` for a purely
-- stateless proxy, so retransmissions are forwarded too). A next hop whose
-- host is a name goes to its first RFC 3263 target (a TLS one verified
-- against the URI's domain); a stateless proxy keeps no state to fail
-- over with, and since SRV targets of one priority are drawn in weighted
-- random order per resolution, a retransmission may reach another target
-- of that priority than the original did (RFC 3263 §4.4 asks for the same
-- one: use names with one target per priority, or `proxy.relay`). A name
-- that cannot be resolved: nil, err.
-- @tparam Message req
-- @param[opt] target a URI string or `{ uri =, dest =, route = }`
-- @treturn[1] boolean true
-- @return[2] nil
-- @treturn[2] string error message
function M.forward(req, target)
  local hop, _, numeric = hop_of(req, target)
  if hop and not numeric then
    local found, err, name = require("luasip.dns").resolve(hop)
    if not found then
      return nil, err, name
    end
    target = with_dest(req, target, found[1].dest)
    target.tls_name = found[1].tls_name
  end
  return req:forward(target)
end

-- ---------------------------------------------------------------------------
-- NAT helpers
-- ---------------------------------------------------------------------------

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

-- an `.invalid` host (RFC 7118 §5.2: a WebSocket client's Contact and
-- Via), reachable only over the connection it came on
local function invalid_host(u)
  return u ~= nil and tostring(u.host):lower():find("%.invalid%.?$") ~= nil
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
-- NAT: its first Contact names a private address or an `.invalid` host
-- (a WebSocket client, RFC 7118), or (a request) the top
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
  if invalid_host(u) then
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

local FLOW_TRANSPORTS = { WS = true, WSS = true }

--- Whether a message's sender is reachable only over the connection it
-- came on: it came over a WebSocket (a WebSocket client accepts no
-- connection, RFC 7118 §5), or its first Contact names an `.invalid`
-- host (Kamailio's `nat_uac_test(64)`). Its Contact then needs
-- `proxy.fix_nated_contact` whatever the NAT policy, so that requests in
-- the dialog reach it over that connection.
-- @tparam Message msg a received request, or a response in a relay hook
-- @treturn boolean
function M.is_flow_only(msg)
  local transport = msg:transport()
  if not transport then
    return false
  end
  if FLOW_TRANSPORTS[transport] then
    return true
  end
  -- runs on every relayed message: the Contact's text is searched before
  -- anything is parsed, as almost no Contact names an .invalid host
  local text = msg:header("Contact")
  if not (text and text:find("%.[iI][nN][vV][aA][lL][iI][dD]")) then
    return false
  end
  local c = msg.contacts and msg.contacts[1]
  return invalid_host(c and c.uri and sip_uri(c.uri))
end

--- The flow a location binding must be reached over, or nil: its
-- `received` (the REGISTER's source, `"ws:127.0.0.1:50674"`) when the
-- registration was an outbound one (a `reg_id`: RFC 5626 §5.3, requests
-- go over the flow it registered on), came over a WebSocket (RFC 7118
-- §5: the client accepts no connection) or names an `.invalid` host.
-- Without NAT handling a proxy keeps `received` only for these bindings
-- (`examples/proxy.lua`); `proxy.relay` sends to it.
-- @tparam table b a binding of `luasip.location` / `registrar.lookup`
-- @treturn string|nil
function M.flow_of(b)
  local received = type(b) == "table" and b.received
  if type(received) ~= "string" then
    return nil
  end
  local tp = received:match("^(%a+):")
  if b.reg_id or (tp and FLOW_TRANSPORTS[tp:upper()])
      or (type(b.contact) == "string"
        and invalid_host(sip_uri(b.contact:match("^%s*<(.*)>%s*$") or b.contact))) then
    return received
  end
  return nil
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
