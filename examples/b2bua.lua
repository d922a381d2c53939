-- A registrar + back-to-back user agent for a domain (luasip.b2bua): the
-- users register here, and a call to a registered AOR is answered by us
-- and placed again, from us, to its bindings (highest q first; the next
-- one after 408, 480, 486, 5xx or no answer; --mode parallel: all at once).
-- The callee sees only our Via, Contact, Call-ID and tags, the caller
-- likewise: no topology crosses, whatever the transports of the two legs.
--
--     luasip run examples/b2bua.lua --listen udp:127.0.0.1:5060 \
--       [--listen tcp:127.0.0.1:5060] [--domain example.com] \
--       [--location memory|sqlite:PATH|redis://HOST:PORT/DB] \
--       [--mode serial|parallel] [--timeout SECONDS] [--max-duration SECONDS] \
--       [--users FILE [--algorithms LIST] [--nonce-lifetime SECONDS]] [--cdr]
--       [--refer reject|handle|pass]
--
-- Policy:
--   requests within a dialog of ours        -> luasip.ua (u:handle): relayed
--                                              to the other leg by the bridge
--   REGISTER                                -> luasip.registrar
--   OPTIONS to us (no user part)            -> 200
--   INVITE to a registered AOR              -> b2bua.bridge to its bindings
--   INVITE to an AOR without bindings       -> 404; another domain (--domain): 404
--   INVITE with Replaces (attended transfer) -> b2bua.replace: the leg it names
--                                              is replaced by the new caller (481: none)
--   REFER within a bridged call             -> --refer: reject (403, the default),
--                                              handle (we call the Refer-To AOR's
--                                              bindings and bridge it; NOTIFY sipfrag
--                                              to the referrer), pass (to the other leg)
--   anything else outside a dialog          -> 405 (an ACK: absorbed)
--
-- --users FILE (lines `user:password` or `user:realm:ALGORITHM:HA1-hex`):
-- REGISTER gets 401 (403 for another user's AOR), an INVITE 407 (403 when
-- the From user is not the authenticated one). The credentials stay on
-- the A leg: the B leg is a request of ours.
-- --refer handle calls only AORs of ours (--domain) with bindings: another
-- target gets 403, an AOR without bindings 404 (the REFER's response).
-- --cdr prints one line a call (stdout): status, target, setup time, duration, who
-- ended it.
local registrar = require "luasip.registrar"
local location = require "luasip.location"
local auth = require "luasip.auth"
local ua = require "luasip.ua"
local b2bua = require "luasip.b2bua"
local sip = require "luasip"

local srv, u
local reg_opts = { min_expires = 10, max_expires = 3600 }
local bridge_opts = {}
local domain
local users
local reg_auth = { match = "to" }
local call_auth = { match = "from", proxy = true }

-- one line a call on stdout (not the log: its rate limit would drop some)
local function cdr(out)
  local tr = {}
  for _, t in ipairs(out.transfers or {}) do -- "by b to sip:carol@h 200", "replaces a 200"
    local what = t.kind == "replaces" and ("replaces " .. t.replaced) or ("by " .. t.by .. " to " .. tostring(t.target))
    tr[#tr + 1] = what .. " " .. tostring(t.status)
  end
  io.stdout:write(string.format("cdr: status %s target %s setup %.3fs duration %.3fs ended by %s%s\n",
    tostring(out.status), tostring(out.target), out.setup_time or 0, out.duration or 0, tostring(out.ended_by),
    #tr > 0 and (" transfers " .. table.concat(tr, ", ")) or ""))
  io.stdout:flush()
end

local function invite(req)
  if users and not auth.authenticate(req, users, call_auth) then
    return -- 407 or 403 sent
  end
  if req:header("Replaces") then -- attended transfer: one of our legs is named
    return b2bua.bridge(u, req, {}, bridge_opts)
  end
  local ruri = req.ruri
  if not ruri or (domain and ruri.host:lower() ~= domain) then
    return req:reply(404, "Not Found")
  end
  local bindings, err = registrar.lookup(ruri, reg_opts)
  if not bindings then
    return req:reply(500, "Location Service Failed (" .. tostring(err) .. ")", { ["Retry-After"] = "5" })
  end
  if #bindings == 0 then
    return req:reply(404, "Not Found")
  end
  b2bua.bridge(u, req, bindings, bridge_opts)
end

-- --refer handle: the Refer-To target, an AOR of ours, called at its bindings
local function refer_targets(_, _, target)
  local uri = sip.uri(target.uri)
  if not uri or (domain and (uri.host or ""):lower() ~= domain) then
    return 403, "Forbidden (not a user of ours)"
  end
  local bindings = registrar.lookup(uri, reg_opts)
  if not bindings or #bindings == 0 then
    return 404, "Not Found (the transfer target)"
  end
  return bindings
end

local function request(req)
  u = u or ua.new(srv, { contact = "<sip:b2bua@" .. srv:listeners()[1]:match("^%a+:(.*)$") .. ">" })
  if u:handle(req) then -- in-dialog requests, their ACKs, 481
    return
  end
  local method = req.method
  if method == "REGISTER" then
    if users and not auth.authenticate(req, users, reg_auth) then
      return
    end
    return registrar.save(req, reg_opts)
  elseif method == "INVITE" then
    return invite(req)
  elseif method == "ACK" then
    return -- for nothing we know: absorbed
  elseif method == "OPTIONS" and not req.uri:find("@", 1, true) then
    return req:reply(200, nil, { Allow = "INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER, UPDATE, INFO" })
  end
  req:reply(405, nil, { Allow = "INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER, UPDATE, INFO" })
end

return {
  listen = { "udp:127.0.0.1:5060", "tcp:127.0.0.1:5060" },
  server = { sanity = { supported = registrar.supported } },
  options = {
    location = { default = "memory", arg = "URL",
                 help = "location service: memory, sqlite:PATH or redis://HOST:PORT/DB" },
    domain = { arg = "HOST", help = "the domain served (default: any)" },
    mode = { default = "serial", arg = "MODE", help = "serial (by q) or parallel calls to the bindings" },
    timeout = { arg = "SECONDS", help = "ringing time per binding before it is cancelled" },
    ["max-duration"] = { arg = "SECONDS", help = "calls are hung up after this long" },
    users = { arg = "FILE", help = "require digest auth (401 REGISTER, 407 INVITE);"
              .. " lines user:password or user:realm:ALGORITHM:HA1-hex" },
    algorithms = { default = "SHA-256,MD5", arg = "LIST", help = "digest algorithms offered, in order" },
    ["nonce-lifetime"] = { default = 300, arg = "SECONDS", help = "how long a nonce is good" },
    cdr = { default = false, help = "log a line per call (status, target, times, who hung up)" },
    refer = { default = "reject", arg = "MODE", help = "a REFER in a call: reject (403), handle (we call the"
              .. " target and bridge it) or pass (relayed to the other party)" },
  },
  setup = function(ctx)
    local o = ctx.options or {}
    srv = ctx.server
    reg_opts.location = assert(location.open(o.location or "memory"))
    domain = o.domain and o.domain:lower() or nil
    reg_opts.domains = o.domain and { o.domain } or nil
    if srv and o.domain then
      srv:add_alias(o.domain)
    end
    if o.mode ~= "serial" and o.mode ~= "parallel" then
      error("--mode: serial or parallel, not " .. tostring(o.mode))
    end
    bridge_opts.mode = o.mode
    bridge_opts.timeout = tonumber(o.timeout)
    bridge_opts.max_duration = tonumber(o["max-duration"])
    bridge_opts.on_end = o.cdr and cdr or nil
    if o.refer ~= "reject" and o.refer ~= "handle" and o.refer ~= "pass" then
      error("--refer: reject, handle or pass, not " .. tostring(o.refer))
    end
    bridge_opts.refer = o.refer
    bridge_opts.on_refer = o.refer == "handle" and refer_targets or nil
    users = o.users and assert(auth.load_users(o.users)) or nil
    local algs = {}
    for a in (o.algorithms or "SHA-256,MD5"):gmatch("[^,%s]+") do
      algs[#algs + 1] = a
    end
    for _, t in ipairs({ reg_auth, call_auth }) do
      t.realm, t.algorithms = o.domain, algs
      t.lifetime = math.tointeger(o["nonce-lifetime"] or 300)
    end
  end,
  request = request,
}
