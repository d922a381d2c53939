-- A registrar + stateful proxy for a domain, as a `luasip run` script (the
-- script contract: a table with listen, options, setup, request).
--
--     luasip run examples/proxy.lua --listen udp:127.0.0.1:5060 \
--       [--domain example.com] [--nat] [--timeout 30]
--       [--location memory|sqlite:PATH|redis://HOST:PORT/DB]
--       [--users FILE [--algorithms LIST] [--nonce-lifetime SECONDS] [--userhash]
--        [--auth-failures N] [--auth-window SECONDS] [--auth-block SECONDS]]
--       [--flood N [--flood-block SECONDS] [--flood-trust CIDR,...]]
--
-- Policy (the benchmark's and Kamailio's routing.lua):
--   OPTIONS to the proxy itself (no user part)  -> 200
--   REGISTER                                    -> luasip.registrar
--   requests with a To tag (in dialog)          -> loose-routed (this proxy's
--                                                  Route removed), relayed;
--                                                  to the registered contact
--                                                  when the target is one of
--                                                  our GRUUs (RFC 5627 §5.5);
--                                                  404 without a Route
--   initial requests with a preloaded Route     -> 403
--   INVITE / SUBSCRIBE                          -> Record-Route
--   initial requests for another domain (with  -> relayed to that domain's servers
--   --domain)                                      (RFC 3263: NAPTR, SRV, A;
--                                                  failover); 404 if it has none
--   initial requests to a registered AOR        -> relayed to its bindings:
--                                                  equal q in parallel, lower
--                                                  q after (serial groups);
--                                                  404 when none
--   an ACK without a To tag (stray)             -> absorbed, never answered
-- CANCEL never reaches the script: the core cancels the branches (§16.10).
--
-- --users FILE (lines `user:password` or `user:realm:ALGORITHM:HA1-hex`):
-- digest authentication (luasip.auth), realm --domain (default: the
-- request's domain): REGISTER gets 401 (and 403 for another user's AOR);
-- initial INVITE, MESSAGE and SUBSCRIBE from a user of the domain get 407
-- (and 403 when the From user is not the authenticated one); proxy.relay
-- removes the accepted credentials before forwarding. --userhash: the
-- challenges say userhash=true (RFC 7616 §3.4.4: clients send
-- H(user ":" realm) as the user name; the users file knows its users by
-- it). Brute force
-- (auth.guard): --auth-failures failed attempts (5) from one source or for
-- one user within --auth-window seconds (60) get 403 for --auth-block
-- seconds (300); the guard survives script reloads.
--
-- --flood N: flood protection in the transport (srv:set_flood), before any
-- parsing or script: a source sending more than N INVITE/REGISTER, or 4N
-- other requests, within a second is dropped for --flood-block seconds
-- (60), its first dropped request answered 503 with Retry-After;
-- --flood-trust lists networks never limited (a dispatcher's
-- destinations, a trunk).
--
-- Bindings: luasip.registrar (every §10.3 step, Path, Outbound, GRUU) over
-- luasip.location (--location memory | sqlite:PATH | redis://HOST:PORT/DB);
-- each binding keeps the REGISTER's source as `received`, and --nat relays
-- to it instead of the Contact's address (nathelper's fix_nated_register)
-- and rewrites a private Contact of a request or of the callee's response
-- to the address it came from (fix_nated_contact). Without --nat, a
-- binding reachable over its flow alone (RFC 5626 outbound with reg-id, a
-- WebSocket client, an .invalid Contact: proxy.flow_of) is still relayed
-- to over its flow, and a WebSocket client's Contact is still rewritten
-- (proxy.is_flow_only), so that requests in its dialogs reach it.
local proxy = require "luasip.proxy"
local registrar = require "luasip.registrar"
local location = require "luasip.location"
local auth = require "luasip.auth"
local sip = require "luasip"

local tonumber = tonumber

local loc
local opts = { nat = false }
local reg_opts = { min_expires = 10, max_expires = 3600 }
local domains -- nil: any

-- bindings -> relay targets (the binding tables themselves), and whether
-- one of them is reached over its flow. With --nat each goes to its
-- received address; without, only a binding reachable over its flow alone
-- does (outbound, WebSocket, an .invalid Contact: proxy.flow_of), the
-- others to their Contact.
local function targets_of(bindings)
  if opts.nat then
    return bindings, true
  end
  local flow = false
  for _, b in ipairs(bindings) do
    b.received = proxy.flow_of(b)
    flow = flow or b.received ~= nil
  end
  return bindings, flow
end

local function to_self(req)
  local u = req.uri
  return not u:find("@", 1, true)
end

-- --users: digest authentication ------------------------------------------
local users -- the lookup of the users file; nil: no authentication
local reg_auth = { match = "to" }
local call_auth = { match = "from", proxy = true }
local CHALLENGED = { INVITE = true, MESSAGE = true, SUBSCRIBE = true }

-- true to go on; false when the request was answered (401/407/403)
local function authorized(req, method)
  if method == "REGISTER" then
    return auth.authenticate(req, users, reg_auth) ~= nil
  end
  if not CHALLENGED[method] then
    return true
  end
  local from = req.from and sip.uri(req.from.uri)
  if not from or (domains and not domains[tostring(from.host):lower()]) then
    return true -- not from a user of the domain
  end
  return auth.authenticate(req, users, call_auth) ~= nil
end
-- ---------------------------------------------------------------------------

-- Initial requests: the callee's responses go through fix_nated (the
-- relay hooks) when it can need it: with --nat, or when a target is
-- reached over its flow (a WebSocket or .invalid callee answers with a
-- Contact only that flow reaches); a callee registered with a reachable
-- Contact is left alone, and its responses never enter the script.
local relay_opts = { fork = "serial" }
local relay_flow_opts = { fork = "serial" }
local dialog_opts = {}

-- --nat: a Contact from behind a NAT gets the address the message came
-- from (nathelper's fix_nated_contact), in requests and in the callee's
-- responses (the relay hooks run before a response is forwarded)
-- A sender reachable over its connection alone (a WebSocket client, an
-- .invalid Contact) gets the same fix whatever --nat says, so that the
-- requests of its dialogs reach it (proxy.is_flow_only).
local function fix_nated(msg)
  if msg and (opts.nat and proxy.is_nated(msg) or proxy.is_flow_only(msg)) then
    proxy.fix_nated_contact(msg)
  end
end

local function request(req)
  local method = req.method
  if method == "REGISTER" then
    if users and not authorized(req, method) then
      return
    end
    return registrar.save(req, reg_opts)
  end
  if method == "ACK" and req:is_initial() then
    return -- an ACK without a To tag acknowledges nothing here: absorbed
  end
  -- §16.3 item 3 before anything else (as Kamailio's maxfwd), except an
  -- OPTIONS to the proxy itself, which it answers as a UAS
  if req.max_forwards == 0 and not (method == "OPTIONS" and to_self(req)) then
    return req:reply(483, "Too Many Hops")
  end
  fix_nated(req)
  if not req:is_initial() then
    local routed = req:loose_route()
    -- a GRUU of ours as the remote target (RFC 5627 §5.5)
    local gruu, code = proxy.resolve_gruu(req)
    if gruu == nil then
      return req:reply(500, "Location Service Failed (" .. tostring(code) .. ")", { ["Retry-After"] = "5" })
    elseif gruu then
      if gruu[1] then
        return proxy.relay(req, (targets_of(gruu)), dialog_opts)
      end
      if method ~= "ACK" then
        return req:reply(code)
      end
      return
    end
    if routed then
      return proxy.relay(req, nil, dialog_opts)
    end
    if method == "ACK" then
      return -- an ACK for nothing we know: absorbed
    end
    return req:reply(404, "Not here")
  end
  if method == "OPTIONS" and to_self(req) then
    return req:reply(200, nil, { Allow = "INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER" })
  end
  if req:loose_route() then
    return req:reply(403, "No pre-loaded routes")
  end
  if users and not authorized(req, method) then
    return
  end
  if method == "INVITE" or method == "SUBSCRIBE" then
    req:record_route()
  end
  local ruri = req.ruri
  if domains and not (ruri and domains[ruri.host:lower()]) then
    -- another domain: its servers are located by DNS (RFC 3263) and the
    -- request relayed there (NXDOMAIN: 404)
    return proxy.relay(req, nil, opts.nat and relay_flow_opts or relay_opts)
  end
  local bindings, err = registrar.lookup(ruri, reg_opts)
  if not bindings then
    return req:reply(500, "Location Service Failed (" .. tostring(err) .. ")", { ["Retry-After"] = "5" })
  end
  if #bindings == 0 then
    return req:reply(404, "Not Found")
  end
  local targets, flow = targets_of(bindings)
  return proxy.relay(req, targets, flow and relay_flow_opts or relay_opts)
end

return {
  listen = { "udp:127.0.0.1:5060", "tcp:127.0.0.1:5060" },
  server = { sanity = { supported = registrar.supported } },
  options = {
    location = { default = "memory", arg = "URL",
                 help = "location service: memory, sqlite:PATH or redis://HOST:PORT/DB" },
    domain = { arg = "HOST", help = "the domain this proxy serves (default: any)" },
    nat = { default = false,
            help = "relay to the REGISTER's source address (fix_nated_register); private Contacts of"
              .. " requests and responses get the address they came from (fix_nated_contact)" },
    timeout = { arg = "SECONDS", help = "overall time for a relayed request" },
    users = { arg = "FILE", help = "require digest auth (401 REGISTER, 407 INVITE/MESSAGE/SUBSCRIBE);"
              .. " lines user:password or user:realm:ALGORITHM:HA1-hex" },
    algorithms = { default = "SHA-256,MD5", arg = "LIST", help = "digest algorithms offered, in order" },
    ["nonce-lifetime"] = { default = 300, arg = "SECONDS", help = "how long a nonce is good" },
    userhash = { default = false, help = "challenges ask for the hashed user name (RFC 7616 userhash)" },
    ["auth-failures"] = { default = 5, arg = "N", help = "failed digest attempts before 403 (per source or user)" },
    ["auth-window"] = { default = 60, arg = "SECONDS", help = "the window those failures are counted in" },
    ["auth-block"] = { default = 300, arg = "SECONDS", help = "how long 403 is answered after them" },
    flood = { arg = "N", help = "flood protection: at most N INVITE/REGISTER (4N other requests) per source"
              .. " and second, else the source is blocked" },
    ["flood-block"] = { default = 60, arg = "SECONDS", help = "how long a flooding source is blocked" },
    ["flood-trust"] = { arg = "CIDR,...", help = "networks never flood-limited" },
  },
  setup = function(ctx)
    local o = ctx.options or {}
    loc = assert(location.open(o.location or "memory"))
    reg_opts.location = loc
    opts.nat = o.nat and true or false
    relay_flow_opts.on_provisional, relay_flow_opts.on_response = fix_nated, fix_nated
    dialog_opts.on_provisional, dialog_opts.on_response = fix_nated, fix_nated
    domains = nil
    if o.domain then
      domains = { [o.domain:lower()] = true }
      reg_opts.domains = { o.domain }
      if ctx.server then
        ctx.server:add_alias(o.domain)
      end
    end
    relay_opts.timeout = tonumber(o.timeout)
    relay_flow_opts.timeout = relay_opts.timeout
    users = o.users and assert(auth.load_users(o.users)) or nil
    local algs = {}
    for a in (o.algorithms or "SHA-256,MD5"):gmatch("[^,%s]+") do
      algs[#algs + 1] = a
    end
    -- one guard for the process: its blocks survive a script reload
    local st = ctx.state or {}
    st.auth_guard = st.auth_guard or auth.guard {
      failures = math.tointeger(tonumber(o["auth-failures"] or 5)),
      window = math.tointeger(tonumber(o["auth-window"] or 60)),
      block = math.tointeger(tonumber(o["auth-block"] or 300)),
    }
    for _, t in ipairs({ reg_auth, call_auth }) do
      t.realm, t.algorithms = o.domain, algs
      t.lifetime = math.tointeger(o["nonce-lifetime"] or 300)
      t.userhash = o.userhash or nil
      t.guard = st.auth_guard
    end
    local flood = math.tointeger(tonumber(o.flood))
    if ctx.server and flood then
      local trusted = {}
      for c in (o["flood-trust"] or ""):gmatch("[^,%s]+") do
        trusted[#trusted + 1] = c
      end
      ctx.server:set_flood {
        invite = flood, other = 4 * flood, reply_503 = true, trusted = trusted,
        block = math.tointeger(tonumber(o["flood-block"] or 60)) * 1000,
      }
    end
  end,
  request = request,
}
