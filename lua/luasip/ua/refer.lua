--- Call transfer for `luasip.ua`: REFER (RFC 3515) sent and accepted,
-- with the implicit subscription and its NOTIFY message/sipfrag progress,
-- and Replaces (RFC 3891) for attended transfer.
--
--     -- transferor, in a coroutine: blind, then attended
--     local r = d:refer("sip:carol@example.com")             -- waits for the outcome
--     print(r.status, r.reason)                              --> 200  OK
--     d:bye()
--     local r = d1:refer("sip:carol@127.0.0.1:5090", { replaces = d2 })
--     -- transferee: accept REFERs (the UA calls the target, reports by NOTIFY)
--     u:on_refer(function(d, req, target) return true end,
--                { on_call = function(new, old) old:bye() end })
--     -- a B2BUA handling a REFER itself:
--     refer.transfer(d, req, function(target, progress) ... return new_dialog, res end)
--
-- The target of an attended transfer answers the INVITE with Replaces
-- itself (`on_replaces`): the dialog it names is hung up, the new call
-- takes its place.
-- @module luasip.ua.refer

local sip = require "luasip"
local event = require "luasip.ua.event"

local type, tonumber, pairs, ipairs, error = type, tonumber, pairs, ipairs, error

local M = {}

M.EXPIRES = 60 -- the implicit subscription's (RFC 3515 §2.4.4: its choice)

local function need_coroutine(what)
  local _, main = coroutine.running()
  if main then
    error(what .. " must run inside a request handler or sip.spawn()", 3)
  end
end

-- ---- syntax -------------------------------------------------------------

local function escape(s)
  return (s:gsub("[^%w%-_%.!~%*'%(%)]", function(c)
    return string.format("%%%02X", c:byte())
  end))
end

--- The status line of a message/sipfrag body: status, reason (or nil).
-- @tparam string body "SIP/2.0 180 Ringing\r\n..."
-- @treturn integer|nil
-- @treturn string|nil
function M.parse_sipfrag(body)
  local code, reason = (body or ""):match("^SIP/2%.0 (%d%d%d) ?([^\r\n]*)")
  return tonumber(code), reason
end

--- A message/sipfrag body for a status (reason: default the standard
-- phrase).
function M.sipfrag(status, reason)
  return "SIP/2.0 " .. status .. " " .. (reason or sip.reason_phrase(status)) .. "\r\n"
end

--- Parse a Refer-To value (RFC 3515 §2.1): `{ uri =, replaces =,
-- headers = { name = value } }` (the URI without its `?` headers; those
-- decoded by the URI parser, names lower-cased; `replaces` is that of
-- Replaces), or nil.
-- @tparam string v
-- @treturn table|nil
function M.parse_refer_to(v)
  if type(v) ~= "string" then
    return nil
  end
  local text = v:match("^%s*[^<]*<([^>]*)>") or v:match("^%s*([^;%s]+)")
  local u = text and sip.uri(text)
  if not u then
    return nil
  end
  local headers = u.headers or {}
  return { uri = text:match("^[^?]*"), headers = headers, replaces = headers.replaces }
end

--- A Refer-To value (RFC 3515 §2.1) for `target` (a URI, or a name-addr
-- whose URI is taken), with `replaces` (a Replaces value, RFC 3891) as
-- its `?Replaces=` header, escaped.
-- @tparam string target
-- @tparam[opt] string replaces
-- @treturn string "<sip:carol@h?Replaces=...>"
function M.refer_to(target, replaces)
  local uri = target:match("<(.-)>") or target
  if replaces then
    uri = uri .. "?Replaces=" .. escape(replaces)
  end
  return "<" .. uri .. ">"
end

--- Parse a Replaces value (RFC 3891 §6.1): `{ call_id =, to_tag =,
-- from_tag =, early_only = }`, or nil.
function M.parse_replaces(v)
  local cid, ps = event.parse_params(v, "[^;%s]+", "[%w%-]+")
  if not cid then
    return nil
  end
  local t = { call_id = cid }
  for _, p in ipairs(ps) do
    local k, val = p[1], p[2]
    if k == "to-tag" and val ~= "" then
      t.to_tag = val
    elseif k == "from-tag" and val ~= "" then
      t.from_tag = val
    elseif k == "early-only" then
      t.early_only = true
    end
  end
  if not t.to_tag or not t.from_tag then
    return nil
  end
  return t
end

-- ---- transferor: REFER ------------------------------------------------

--- Send REFER in dialog `d` (RFC 3515) and follow the transfer by its
-- NOTIFYs (message/sipfrag) until the final status. In a coroutine.
-- @tparam Dialog d
-- @tparam string target a URI ("sip:carol@example.com")
-- @tparam[opt] table opts `replaces` (a Dialog of ours with the target:
--   attended transfer, Refer-To gets `?Replaces=`), `referred_by` (a
--   Referred-By value, RFC 3892), `headers`, `wait = false` (return at
--   the 202), `timeout` (seconds to wait for the outcome, default 32),
--   `on_notify = function(status, reason, n)` for each NOTIFY
-- @treturn[1] table `{ status =, reason =, frags = { "SIP/2.0 100 Trying",
--   ... }, response = the 202, subscription = }` (`status` nil when the
--   outcome never came; with `wait = false`, only the 202 and the
--   subscription)
-- @return[2] nil, the REFER's failure response (or nil, err, code)
function M.refer(d, target, opts)
  need_coroutine("dialog:refer()")
  opts = opts or {}
  if type(target) ~= "string" then
    error("refer: a target URI expected", 3)
  end
  local h = { { "Refer-To", M.refer_to(target, opts.replaces and opts.replaces:replaces()) } }
  if opts.referred_by then
    h[#h + 1] = { "Referred-By", opts.referred_by }
  end
  event.add_headers(h, opts.headers)
  local result = { frags = {} }
  local sub = event.implicit_subscription(d.ua, d, "refer", {
    notify_timeout = opts.timeout,
    on_notify = function(_, n)
      local code, reason = M.parse_sipfrag(n.body)
      if code then
        result.frags[#result.frags + 1] = n.body:match("^[^\r\n]*")
        if code >= 200 and not result.status then
          result.status, result.reason = code, reason
        end
      end
      if opts.on_notify then
        opts.on_notify(code, reason, n)
      end
    end,
  })
  result.subscription = sub
  local res, err, code = d:request("REFER", { headers = h })
  if not res or res.status < 200 or res.status >= 300 then
    event.rejected(sub, "rejected")
    return nil, res or err, not res and code or nil
  end
  result.response = res
  event.rekey(sub, "refer;id=" .. res.cseq)
  event.accepted(sub, M.EXPIRES)
  if opts.wait == false then
    return result
  end
  while not result.status do
    local n = sub:wait_notify(opts.timeout or 32)
    if not n then
      break
    end
  end
  return result
end

-- ---- transferee: accepting a REFER -----------------------------------

--- Accept the REFER `req` of dialog `d` and carry it out with
-- `call_target` (for a UA: an INVITE to the target; for a B2BUA: its own
-- leg to the target, then bridging): 202, a NOTIFY "100 Trying", one per
-- provisional response, then the final status in a NOTIFY terminated.
-- `call_target(target, progress)` gets the parsed Refer-To (`uri`,
-- `replaces`, `headers`) and a function `progress(res)` for each 1xx; it
-- returns a Dialog (success) or nil and the failure response (or a
-- status number). Runs in the caller's coroutine; returns what
-- `call_target` returned.
-- @tparam Dialog d
-- @tparam Request req the REFER
-- @tparam function call_target
-- @treturn Dialog|nil and the response
function M.transfer(d, req, call_target)
  need_coroutine("refer.transfer()")
  local target = M.parse_refer_to(req:header("Refer-To"))
  if not target then
    req:reply(400, "Bad Request (Refer-To)")
    return nil
  end
  if not req:handled() then
    req:reply(202)
  end
  local n = event.implicit_notifier(d.ua, d, "refer;id=" .. req.cseq, M.EXPIRES)
  n:notify { state = "active", body = M.sipfrag(100, "Trying"), type = "message/sipfrag;version=2.0" }
  local function progress(res)
    if res.status > 100 and res.status < 200 and n.state ~= "terminated" then
      sip.spawn(function()
        n:notify { body = M.sipfrag(res.status, res.reason), type = "message/sipfrag;version=2.0" }
      end)
    end
  end
  local ok, nd, res = pcall(call_target, target, progress)
  if not ok then
    n:notify { state = "terminated", reason = "noresource", body = M.sipfrag(500, "Server Internal Error"),
      type = "message/sipfrag;version=2.0" }
    error(nd, 0)
  end
  local status, reason = 200, "OK"
  if not nd then
    if type(res) == "number" then
      status, reason = res, nil
    elseif type(res) == "userdata" or type(res) == "table" then
      status, reason = res.status or 500, res.reason
    else
      status, reason = 503, "Service Unavailable"
    end
  elseif type(res) ~= "nil" and type(res) ~= "number" and res.status then
    status, reason = res.status, res.reason
  end
  n:notify { state = "terminated", reason = "noresource", body = M.sipfrag(status, reason),
    type = "message/sipfrag;version=2.0" }
  return nd, res
end

-- u.hooks.REFER
local function on_refer_request(u, req, where, d)
  if where ~= "inside" or not d then
    return false -- outside a dialog: the script's; no dialog: 481
  end
  local target = M.parse_refer_to(req:header("Refer-To"))
  if not target or #req:headers("Refer-To") ~= 1 then
    req:reply(400, "Bad Request (Refer-To)") -- §2.4.1: exactly one
    return true
  end
  local policy = u.refer_policy
  local verdict = policy.fn and policy.fn(d, req, target) or false
  if verdict == false or type(verdict) == "number" then
    req:reply(type(verdict) == "number" and verdict or 603)
    return true
  end
  local o = type(verdict) == "table" and verdict or {}
  req:reply(202)
  sip.spawn(function()
    local nd, res = M.transfer(d, req, function(t, progress)
      local headers = {}
      if t.replaces then
        headers[#headers + 1] = { "Replaces", t.replaces }
      end
      local rb = req:header("Referred-By")
      if rb then
        headers[#headers + 1] = { "Referred-By", rb }
      end
      local sdp = o.sdp or policy.sdp
      if type(sdp) == "function" then
        sdp = sdp(d, t)
      end
      return u:invite { to = t.uri, sdp = sdp or d.local_sdp, headers = headers,
        dest = o.dest or policy.dest, route = o.route or policy.route, on_provisional = progress }
    end)
    if policy.on_call then
      policy.on_call(nd, d, res)
    end
  end)
  return true
end

--- The Dialog of `u` that `r` (a parsed Replaces) names: to-tag is our
-- local tag, from-tag the remote one (RFC 3891 §3); and its `info()`.
-- @tparam UA u
-- @tparam table r `parse_replaces`
-- @treturn Dialog|nil
function M.find_replaced(u, r)
  for _, d in pairs(u.dialogs) do
    local i = d.dlg:info()
    if i.call_id == r.call_id and i.local_tag == r.to_tag and i.remote_tag == r.from_tag then
      return d, i
    end
  end
end

-- u.hooks.INVITE: an INVITE with Replaces (RFC 3891 §3).
local function on_replaces_request(u, req, where)
  local rv = req:header("Replaces")
  if where ~= "outside" or not rv then
    return false
  end
  local r = M.parse_replaces(rv)
  if not r or #req:headers("Replaces") ~= 1 then
    req:reply(400, "Bad Request (Replaces)")
    return true
  end
  local old, info = M.find_replaced(u, r)
  if not old then
    req:reply(481) -- no such dialog
    return true
  end
  local st = old:state()
  if st == "terminated" then
    req:reply(603)
    return true
  end
  if st == "confirmed" and r.early_only then
    req:reply(486)
    return true
  end
  if st == "early" and info.role == "uas" then
    req:reply(481) -- an early dialog we did not start
    return true
  end
  local policy = u.replaces_policy or {}
  if policy.fn and policy.fn(req, old) == false then
    req:reply(603)
    return true
  end
  local sdp = policy.sdp
  if type(sdp) == "function" then
    sdp = sdp(req, old)
  end
  local nd = u:answer(req, sdp or old.local_sdp)
  if nd and old:state() ~= "terminated" then
    old:bye()
  end
  if policy.on_call then
    policy.on_call(nd, old)
  end
  return true
end

--- Take INVITEs with Replaces (RFC 3891 §3): 481 when no dialog matches
-- (or it is an early one we did not start), 486 for `early-only` on a
-- confirmed one, 603 when it is over or `fn(req, old)` returns false;
-- otherwise the INVITE is answered 200 (SDP: `opts.sdp`, a string or
-- `function(req, old)`, default the replaced dialog's), the old dialog
-- hung up (BYE) and `opts.on_call(new, old)` called.
-- @tparam UA u
-- @tparam[opt] function fn
-- @tparam[opt] table opts `sdp`, `on_call`
function M.on_replaces(u, fn, opts)
  opts = opts or {}
  u.replaces_policy = { fn = fn, sdp = opts.sdp, on_call = opts.on_call }
  u.hooks = u.hooks or {}
  u.hooks.INVITE = on_replaces_request
end

--- Accept or refuse REFERs within dialogs (outside any dialog they stay
-- the script's): `fn(d, req, target)` returns `true` (or a table of
-- `u:invite` fields: `sdp`, `dest`, `route`) to accept, `false` (603) or
-- a status to refuse. An accepted REFER gets 202; the UA calls
-- `target.uri` (with the Replaces of the Refer-To, and Referred-By) and
-- reports by NOTIFY sipfrag (`transfer`); then `opts.on_call(new, d,
-- res)`. Also takes INVITEs with Replaces (`on_replaces`, same `opts`).
-- Refer-To missing or repeated: 400.
-- @tparam UA u
-- @tparam function fn
-- @tparam[opt] table opts `sdp` (default the dialog's), `dest`, `route`,
--   `on_call`
function M.on_refer(u, fn, opts)
  opts = opts or {}
  u.refer_policy = { fn = fn, sdp = opts.sdp, dest = opts.dest, route = opts.route, on_call = opts.on_call }
  u.hooks = u.hooks or {}
  u.hooks.REFER = on_refer_request
  if not u.replaces_policy then
    M.on_replaces(u, nil, { on_call = opts.on_replaced })
  end
end

return M
