--- SIP-specific event notification (RFC 6665) for `luasip.ua`: SUBSCRIBE
-- and NOTIFY as subscriber and as notifier, as coroutine code.
--
--     local ua = require "luasip.ua"
--     local u = ua.new(srv)
--     srv:on_request(function(req) if not u:handle(req) then req:reply(405) end end)
--     -- subscriber (in a handler or sip.spawn):
--     local sub, res = u:subscribe{ to = "sip:bob@127.0.0.1:5080", event = "presence",
--                                   expires = 600, accept = "application/pidf+xml" }
--     local n = sub:wait_notify(5)     -- { state =, reason =, expires =, body =, type = }
--     sub:unsubscribe()
--     -- notifier:
--     local pkg = u:on_subscribe("presence", function(sub, req)
--       sub:notify{ state = "active", body = status, type = "text/plain" }
--     end, { max_expires = 3600 })
--     pkg:notify_all{ state = "active", body = new_status, type = "text/plain" }
--
-- A SUBSCRIBE accepted (2xx) creates a dialog (or lives in the dialog it
-- came in); the subscription ends by Expires: 0, a NOTIFY with
-- `Subscription-State: terminated`, its expiry, or when no NOTIFY comes
-- within `notify_timeout` (64*T1, §4.1.2.4). The dialog of a subscription
-- ends with its last subscription (RFC 5057), one made by INVITE does
-- not. The implicit subscription of a REFER (RFC 3515) is one of these
-- (`luasip.ua.refer`).
-- @module luasip.ua.event

local sip = require "luasip"
local server = require "luasip.server"
local core = require "luasip.core"

local co_running, co_yield = coroutine.running, coroutine.yield
local floor, max, min = math.floor, math.max, math.min
local pairs, ipairs, next, tonumber, tostring, type, error = pairs, ipairs, next, tonumber, tostring, type, error

local M = {}

M.DEFAULT_EXPIRES = 3600
M.NOTIFY_TIMEOUT = 32 -- 64*T1 (§4.1.2.4, Timer N)
M.QUEUE_MAX = 32 -- NOTIFYs kept for wait_notify

local function need_coroutine(what)
  local _, main = co_running()
  if main then
    error(what .. " must run inside a request handler or sip.spawn()", 3)
  end
end

-- ---- header syntax ------------------------------------------------------

local TOKEN = "[%w%-%.!%%%*_%+`'~]+" -- RFC 3261 §25.1 token

--- Split a header value of the form `head *(;name[=value])` (the
-- generic-param list of RFC 3261 §25.1), shared by `parse_event`,
-- `parse_state` and `luasip.ua.refer.parse_replaces`.
-- @tparam string v the header value
-- @tparam string head Lua pattern (no captures) of the leading item
-- @tparam string name Lua pattern (no captures) of a parameter's name
-- @treturn[1] string the leading item (as written)
-- @treturn[1] table an array of `{ name, value }` in order, names
-- lower-cased, the value "" when absent
-- @return[2] nil (not a string, or malformed)
function M.parse_params(v, head, name)
  if type(v) ~= "string" then
    return nil
  end
  local h, rest = v:match("^%s*(" .. head .. ")%s*(.*)$")
  if not h then
    return nil
  end
  local ps, pat = {}, "^;%s*(" .. name .. ")%s*=?%s*([^;%s]*)%s*(.*)$"
  while rest ~= "" do
    local n, val, tail = rest:match(pat)
    if not n then
      return nil
    end
    ps[#ps + 1] = { n:lower(), val }
    rest = tail
  end
  return h, ps
end

--- Parse an Event value (RFC 6665 §8.2.1): "presence;id=7" -> "presence",
-- "7". The package name is lower-cased (tokens compare case-sensitively
-- by the RFC, but packages are registered lower-case).
-- @tparam string v
-- @treturn[1] string the package, and the id or nil
-- @return[2] nil (not an Event value)
function M.parse_event(v)
  local typ, ps = M.parse_params(v, TOKEN, TOKEN)
  if not typ then
    return nil
  end
  local id
  for _, p in ipairs(ps) do
    if p[1] == "id" then
      if p[2] == "" then
        return nil
      end
      id = p[2]
    end
  end
  return typ:lower(), id
end

--- Parse a Subscription-State value (§8.2.3): a table `{ state =,
-- reason =, expires =, retry_after = }` (state lower-cased), or nil.
-- @tparam string v
-- @treturn table|nil
function M.parse_state(v)
  local state, ps = M.parse_params(v, "[%w%-]+", "[%w%-]+")
  if not state then
    return nil
  end
  local t = { state = state:lower() }
  for _, p in ipairs(ps) do
    local name, val = p[1], p[2]
    if name == "expires" or name == "retry-after" then
      local n = val:match("^%d+$") and tonumber(val)
      if not n then
        return nil
      end
      t[name == "expires" and "expires" or "retry_after"] = n
    elseif name == "reason" then
      t.reason = val:lower()
    end
  end
  return t
end

-- The Expires of a message (the parser's): nil (absent), false
-- (malformed or out of range), or seconds.
local function expires_of(m)
  local v, err = m:get("expires")
  if v == nil and err then
    return false
  end
  return v
end

--- Append `extra` (opts.headers: `{ {name, value}, ... }` lines and/or
-- `{ [name] = value }` pairs; nil: none) to the header list `h` (an
-- array of `{ name, value }`), in place.
-- @tparam table h
-- @tparam[opt] table extra
function M.add_headers(h, extra)
  for k, v in pairs(extra or {}) do
    if type(k) == "number" then
      h[#h + 1] = v
    else
      h[#h + 1] = { k, v }
    end
  end
end

local function key_of(typ, id)
  return typ .. ";" .. (id or "")
end

local function media_type(ct)
  return ct and (ct:match("^%s*([^;%s]+)") or ""):lower() or nil
end

-- ---- per-UA state -------------------------------------------------------

-- The event state of a UA: packages (notifier), pending subscribers
-- (waiting for the 2xx), installed hooks.
local function state_of(u)
  local st = u.event_state
  if not st then
    st = { packages = {}, pending = {} }
    u.event_state = st
    u.hooks = u.hooks or {}
    u.hooks.SUBSCRIBE = M._on_subscribe_request
    u.hooks.NOTIFY = M._on_notify_request
  end
  return st
end

-- The subscriptions living in a Dialog: d.subscriptions[key] = sub.
local function attach(d, sub)
  d.subscriptions = d.subscriptions or {}
  d.subscriptions[sub.key] = sub
  sub.d = d
end

-- Is dialog d still usable? (Not over, and its server not closed: a
-- timer may fire after that.)
local function alive(d)
  local ok, st = pcall(d.state, d)
  return ok and st ~= "terminated"
end

-- A subscription left dialog d; a dialog that only subscriptions made
-- ends with the last one.
local function detach(sub)
  local d = sub.d
  if not d or not d.subscriptions then
    return
  end
  if d.subscriptions[sub.key] == sub then
    d.subscriptions[sub.key] = nil
  end
  if d.sub_only and next(d.subscriptions) == nil and alive(d) then
    d:terminate("subscription ended")
  end
end

local function stop(t)
  if t then
    t:stop()
  end
end

-- ---- subscriber -------------------------------------------------------

local Subscription = {}
Subscription.__index = Subscription
M.Subscription = Subscription

local function wake_all(sub, ...)
  local ws = sub.waiters
  sub.waiters = {}
  for _, co in ipairs(ws) do
    server.resume(co, ...)
  end
end

-- The subscription is over (why: the reason of the terminated state, or
-- "timeout", "rejected" ...).
local function sub_finish(sub, why)
  if sub.state == "terminated" then
    return
  end
  sub.state, sub.reason = "terminated", why
  stop(sub.refresh_timer)
  stop(sub.expiry_timer)
  stop(sub.notify_timer)
  sub.refresh_timer, sub.expiry_timer, sub.notify_timer = nil, nil, nil
  detach(sub)
  if sub.on_end then
    sub.on_end(sub, why)
  end
  if #sub.queue == 0 then
    wake_all(sub, nil, "terminated", why)
  end
end

-- Refresh before expiry (at half the time left, at most 32 s before it),
-- and end at expiry (after a grace time).
local function sub_schedule(sub, expires)
  stop(sub.refresh_timer)
  stop(sub.expiry_timer)
  sub.refresh_timer, sub.expiry_timer = nil, nil
  if sub.state == "terminated" or not expires then
    return
  end
  sub.expires = expires
  if expires == 0 then
    return
  end
  local ahead = min(32, expires / 2)
  if sub.auto_refresh ~= false then
    sub.refresh_timer = sip.timer(max(0.001, expires - ahead), function()
      sub.refresh_timer = nil
      if sub.state ~= "terminated" then
        sub:refresh()
      end
    end)
  end
  -- the notifier's own NOTIFY terminated (its timer started first) has
  -- a grace time to come before we end it here
  sub.expiry_timer = sip.timer(expires + min(32, max(0.5, expires / 10)), function()
    sub.expiry_timer = nil
    sub_finish(sub, "timeout")
  end)
end

-- A NOTIFY for sub: answered, its state taken, given to wait_notify.
local function sub_notify(sub, req)
  local ss = M.parse_state(req:header("Subscription-State"))
  if not ss or (ss.state ~= "active" and ss.state ~= "pending" and ss.state ~= "terminated") then
    if not ss then
      return req:reply(400, "Bad Request (Subscription-State)")
    end
    ss.state = "active" -- §8.2.3: an unknown state is treated as active
  end
  req:reply(200)
  stop(sub.notify_timer)
  sub.notify_timer = nil
  sub.notified = true
  local n = {
    state = ss.state, reason = ss.reason, expires = ss.expires, retry_after = ss.retry_after,
    body = req.body, type = media_type(req:header("Content-Type")), request = req,
  }
  sub.last = n
  sub.queue[#sub.queue + 1] = n
  if #sub.queue > M.QUEUE_MAX then -- nobody waits (on_notify only): keep the last ones
    table.remove(sub.queue, 1)
  end
  if sub.on_notify then
    sub.on_notify(sub, n)
  end
  if ss.state == "terminated" then
    sub_finish(sub, ss.reason or "terminated")
  else
    sub.state = ss.state
    if ss.expires and (not sub.expires or ss.expires < sub.expires) then
      sub_schedule(sub, ss.expires) -- §4.1.2.3: the notifier may shorten it
    end
  end
  if #sub.waiters > 0 then
    local co = table.remove(sub.waiters, 1)
    server.resume(co, table.remove(sub.queue, 1))
    if sub.state == "terminated" and #sub.queue == 0 then
      wake_all(sub, nil, "terminated", sub.reason) -- the other waiters: the end
    end
  end
end

local function start_timer_n(sub)
  if sub.notified or sub.state == "terminated" then
    return
  end
  sub.notify_timer = sip.timer(sub.notify_timeout, function()
    sub.notify_timer = nil
    if not sub.notified then
      sub_finish(sub, "timeout")
    end
  end)
end

--- Wait for the next NOTIFY of the subscription (already answered 200).
-- @tparam[opt] number timeout seconds
-- @treturn[1] table `{ state =, reason =, expires =, retry_after =, body =,
--   type =, request = }`
-- @return[2] nil, "timeout" | nil, "terminated", reason
function Subscription:wait_notify(timeout)
  need_coroutine("sub:wait_notify()")
  if #self.queue > 0 then
    return table.remove(self.queue, 1)
  end
  if self.state == "terminated" then
    return nil, "terminated", self.reason
  end
  local co = co_running()
  self.waiters[#self.waiters + 1] = co
  local timer
  if timeout then
    timer = sip.timer(timeout, function()
      for i, w in ipairs(self.waiters) do
        if w == co then
          table.remove(self.waiters, i)
          server.resume(co, nil, "timeout")
          return
        end
      end
    end)
  end
  local r = table.pack(co_yield())
  stop(timer)
  return table.unpack(r, 1, r.n)
end

-- SUBSCRIBE within the dialog (refresh or unsubscribe).
local function resubscribe(self, expires)
  local d = self.d
  if not d or not alive(d) then
    sub_finish(self, "dialog ended")
    return nil, "subscription: its dialog is over", "TERMINATED"
  end
  local h = { { "Event", self.event }, { "Expires", tostring(expires) } }
  if self.accept then
    h[#h + 1] = { "Accept", self.accept }
  end
  local res, err, code = d:request("SUBSCRIBE", { headers = h, credentials = self.credentials })
  if not res then
    sub_finish(self, "dialog ended")
    return nil, err, code
  end
  if res.status >= 200 and res.status < 300 then
    if expires > 0 then
      local granted = expires_of(res)
      sub_schedule(self, granted or expires)
    end
  elseif res.status == 481 or res.status == 408 or not alive(d) then
    sub_finish(self, "rejected")
  end
  return res
end

--- Refresh the subscription (SUBSCRIBE in its dialog; done by itself
-- before expiry unless `auto_refresh = false`). A 481 ends it.
-- @tparam[opt] integer expires seconds (default: the last asked)
-- @treturn Message the final response (or nil, err, code)
function Subscription:refresh(expires)
  need_coroutine("sub:refresh()")
  if self.state == "terminated" then
    return nil, "subscription: terminated", "TERMINATED"
  end
  self.asked = expires or self.asked
  return resubscribe(self, self.asked)
end

--- End the subscription: SUBSCRIBE with Expires: 0, then wait (at most
-- `timeout` seconds, default 5) for the notifier's last NOTIFY.
-- @tparam[opt] number timeout
-- @treturn table|nil that NOTIFY (as `wait_notify`), or nil
function Subscription:unsubscribe(timeout)
  need_coroutine("sub:unsubscribe()")
  if self.state == "terminated" then
    return nil, "terminated", self.reason
  end
  stop(self.refresh_timer)
  self.refresh_timer = nil
  local res = resubscribe(self, 0)
  if not res or res.status >= 300 then
    sub_finish(self, "unsubscribed")
    return nil, res
  end
  local last
  while self.state ~= "terminated" do
    local n = self:wait_notify(timeout or 5)
    if not n then
      break
    end
    last = n
  end
  self.queue = {}
  sub_finish(self, "unsubscribed")
  return last
end

--- Subscribe (RFC 6665 §4.1) and wait for the answer, in a coroutine.
-- Fields of `t`: `to` (required unless `dialog`), `event` (required, e.g.
-- "presence" or "dialog;id=1"), `dialog` (a Dialog: subscribe within it,
-- e.g. a call's; the subscription's end leaves the dialog up),
-- `expires` (default 3600), `accept` (an Accept value), `from`, `headers`, `body`, `content_type`, `dest`, `route`,
-- `credentials`, `notify_timeout` (seconds without a NOTIFY after the
-- 2xx before the subscription ends: default 32, 64*T1), `auto_refresh`
-- (false: no refresh before expiry), `on_notify = function(sub, n)`,
-- `on_end = function(sub, why)`.
-- @tparam UA u
-- @tparam table t
-- @treturn[1] Subscription and the 2xx
-- @return[2] nil, the failure response (or nil, err, code)
function M.subscribe(u, t)
  if type(t) ~= "table" or (type(t.to) ~= "string" and not t.dialog) or type(t.event) ~= "string" then
    error("subscribe: { to = URI or dialog = Dialog, event = PACKAGE } required", 3)
  end
  need_coroutine("ua:subscribe()")
  local typ, id = M.parse_event(t.event)
  if not typ then
    error("subscribe: bad event " .. string.format("%q", t.event), 3)
  end
  local st = state_of(u)
  local expires = t.expires or M.DEFAULT_EXPIRES
  local h = { { "Event", t.event }, { "Expires", tostring(expires) } }
  if t.accept then
    h[#h + 1] = { "Accept", t.accept }
  end
  M.add_headers(h, t.headers)
  local sub = setmetatable({
    ua = u, event = t.event, typ = typ, id = id, key = key_of(typ, id), state = "init",
    asked = expires, accept = t.accept, credentials = t.credentials, queue = {}, waiters = {},
    notify_timeout = t.notify_timeout or M.NOTIFY_TIMEOUT, auto_refresh = t.auto_refresh,
    on_notify = t.on_notify, on_end = t.on_end, early = {},
  }, Subscription)
  if t.dialog then -- a subscription in an existing dialog (RFC 6665 §4.5.2)
    local d = t.dialog
    attach(d, sub) -- its NOTIFY may come before the 2xx
    local res, err, code = d:request("SUBSCRIBE", { headers = h, body = t.body,
      content_type = t.body and (t.content_type or "text/plain"), credentials = t.credentials })
    if not res or res.status < 200 or res.status >= 300 then
      sub_finish(sub, "rejected")
      return nil, res or err, not res and code or nil
    end
    if sub.state == "init" then
      sub.state = "pending"
    end
    sub_schedule(sub, expires_of(res) or expires)
    start_timer_n(sub)
    return sub, res
  end
  if t.route then
    h[#h + 1] = { "Route", require("luasip.ua").route_value(t.route) }
  end
  local req, err, code = sip.request {
    method = "SUBSCRIBE", uri = t.to:match("<(.-)>") or t.to, to = t.to, from = t.from or u.from,
    contact = u.contact, headers = h, body = t.body, content_type = t.body and (t.content_type or "text/plain"),
  }
  if not req then
    return nil, err, code
  end
  -- NOTIFYs that come before the 2xx (§4.1.2.4) wait for it
  local pkey = req.call_id .. ";" .. req.from.tag
  st.pending[pkey] = sub
  local res, sent, name = u.srv:send(req, t.dest, { credentials = t.credentials })
  st.pending[pkey] = nil
  if res and sent then
    req = sent
  end
  if not res or res.status < 200 or res.status >= 300 then
    sub.state, sub.reason = "terminated", "rejected"
    for _, co in ipairs(sub.early) do
      server.resume(co, false)
    end
    if res then
      return nil, res
    end
    return nil, sent, name
  end
  local dlg, e2, c2 = u.srv:dialog_uac(req, res)
  if not dlg then
    sub.state = "terminated"
    for _, co in ipairs(sub.early) do
      server.resume(co, false)
    end
    return nil, e2, c2
  end
  local d = u:adopt(dlg, "uac")
  d.dest = t.dest
  if d.sub_only == nil then
    d.sub_only = true
  end
  attach(d, sub)
  sub.state = "pending" -- until a NOTIFY says otherwise (§4.1.2.2)
  local granted = expires_of(res)
  sub_schedule(sub, granted or expires)
  start_timer_n(sub)
  for _, co in ipairs(sub.early) do
    server.resume(co, true)
  end
  sub.early = {}
  return sub, res
end

-- ---- notifier -----------------------------------------------------------

local Notifier = {}
Notifier.__index = Notifier
M.Notifier = Notifier

local Package = {}
Package.__index = Package

local function notifier_end(n, why)
  if n.state == "terminated" then
    return
  end
  n.state = "terminated"
  n.reason = why
  stop(n.timer)
  n.timer = nil
  if n.pkg then
    n.pkg.subs[n] = nil
  end
  detach(n)
  if n.on_end then
    n.on_end(n, why)
  end
end

-- (Re)start the expiry of notifier n: at its end, NOTIFY terminated;
-- reason=timeout (§4.2.2).
local function notifier_expiry(n, expires)
  stop(n.timer)
  n.expires = expires
  n.started = core.now()
  n.timer = sip.timer(max(expires, 0.001), function()
    n.timer = nil
    if n.state ~= "terminated" then
      n:notify { state = "terminated", reason = "timeout" }
    end
  end)
end

--- Seconds left of the subscription.
-- @treturn integer
function Notifier:remaining()
  if self.state == "terminated" or not self.started then
    return 0
  end
  local left = self.expires - (core.now() - self.started) / 1000
  return max(0, floor(left + 0.5))
end

--- Send a NOTIFY (§4.2.2) and wait for its answer. Fields of `t`:
-- `state` ("active", "pending" or "terminated"; default the last),
-- `body` and `type` (default the last ones: a NOTIFY carries the full
-- state), `reason` and `retry_after` (for "terminated"), `headers`.
-- A "terminated" NOTIFY ends the subscription, and so does a 481 or
-- 408 answer, or a failure of the dialog.
-- @tparam[opt] table t
-- @treturn Message the final response (or nil, err, code)
function Notifier:notify(t)
  need_coroutine("sub:notify()")
  t = t or {}
  if self.state == "terminated" or self.closing then
    return nil, "subscription: terminated", "TERMINATED"
  end
  if not alive(self.d) then
    notifier_end(self, "dialog ended")
    return nil, "subscription: its dialog is over", "TERMINATED"
  end
  if not self.accepted then
    self:accept()
  end
  local state = t.state or self.state
  if t.body ~= nil then
    self.body, self.type = t.body, t.type or self.type or "text/plain"
  end
  local ss = state
  if state == "terminated" then
    ss = ss .. (t.reason and ";reason=" .. t.reason or "")
      .. (t.retry_after and ";retry-after=" .. floor(t.retry_after) or "")
    self.closing = true -- no other NOTIFY after this one
    if self.pkg then
      self.pkg.subs[self] = nil
    end
    stop(self.timer)
    self.timer = nil
  else
    self.state = state
    ss = ss .. ";expires=" .. self:remaining()
  end
  local h = { { "Event", self.event }, { "Subscription-State", ss } }
  M.add_headers(h, t.headers)
  self.sent = (self.sent or 0) + 1
  local res, err, code = self.d:request("NOTIFY", { headers = h, body = self.body,
    content_type = self.body and self.type })
  if not res then
    notifier_end(self, "dialog ended")
    return nil, err, code
  end
  if state == "terminated" then
    notifier_end(self, t.reason or "terminated")
  elseif res.status == 481 or res.status == 408 or not alive(self.d) then
    notifier_end(self, "rejected")
  end
  return res
end

--- End the subscription: NOTIFY terminated with `reason` (default
-- "noresource"), carrying the last body.
function Notifier:terminate(reason, retry_after)
  return self:notify { state = "terminated", reason = reason or "noresource", retry_after = retry_after }
end

--- Answer the SUBSCRIBE (done by the first `notify`, or after the handler
-- returns): `status` 200 (default) or 202 (the state will be pending).
function Notifier:accept(status)
  if self.accepted then
    return
  end
  self.accepted = true
  local req = self.request
  if req and not req:handled() then
    local h = { Contact = self.ua.contact, Expires = tostring(self.expires) }
    local rr = req:headers("Record-Route") -- §12.1.1: in the 2xx, in order
    if rr and #rr > 0 then
      h["Record-Route"] = rr
    end
    req:reply(status or 200, nil, h)
  end
  if status == 202 and not self.sent then
    self.state = "pending" -- §4.2.1.1: not authorized yet
  end
end

-- A new subscription of package pkg from req (in dialog d, or a new one).
local function new_subscription(u, pkg, req, d, typ, id, expires)
  local n = setmetatable({ ua = u, pkg = pkg, request = req, event = req:header("Event"), typ = typ, id = id,
    key = key_of(typ, id), state = "active", accepted = false }, Notifier)
  if not d then
    local dlg, err = u.srv:dialog_uas(req, u.contact)
    if not dlg then
      req:reply(400, "Bad Request (" .. tostring(err) .. ")")
      return
    end
    d = u:adopt(dlg, "uas")
    d.sub_only = true
  end
  attach(d, n)
  notifier_expiry(n, expires)
  pkg.subs[n] = true
  local ok, status, reason = true, nil, nil
  if pkg.fn then
    local done
    done, status, reason = xpcall(pkg.fn, debug.traceback, n, req)
    if not done then -- the script's error: no subscription left; 500 and the log
      n.accepted = true
      notifier_end(n, "error")
      error(status, 0)
    end
    if status == false then
      ok, status = false, 403
    elseif type(status) == "number" and status >= 300 then
      ok = false
    end
  end
  if not ok then
    n.accepted = true
    if not req:handled() then
      req:reply(status, reason)
    end
    notifier_end(n, "rejected")
    return
  end
  if not n.accepted then
    n:accept(type(status) == "number" and status or nil)
  end
  if not n.sent and n.state ~= "terminated" then
    n:notify {} -- §4.2.1.2: a NOTIFY at once
  end
  if expires == 0 and n.state ~= "terminated" then
    n:notify { state = "terminated", reason = "timeout" } -- a fetch (§4.4.3)
  end
end

-- Check a SUBSCRIBE's Event and Expires against the packages: the
-- package, type, id and granted expires, or nil after an error reply.
local function check_subscribe(st, req)
  local ev = req:header("Event")
  if not ev then
    req:reply(489, "Bad Event", { ["Allow-Events"] = M.allow_events(st) })
    return nil
  end
  local typ, id = M.parse_event(ev)
  if not typ then
    req:reply(400, "Bad Request (Event)")
    return nil
  end
  local pkg = st.packages[typ]
  if not pkg then
    req:reply(489, "Bad Event", { ["Allow-Events"] = M.allow_events(st) })
    return nil
  end
  local e = expires_of(req)
  if e == false then
    req:reply(400, "Bad Request (Expires)")
    return nil
  end
  e = e or pkg.default_expires
  if e > 0 and e < pkg.min_expires then
    req:reply(423, nil, { ["Min-Expires"] = tostring(pkg.min_expires) })
    return nil
  end
  return pkg, typ, id, min(e, pkg.max_expires)
end

--- The Allow-Events value of the packages this UA is a notifier of.
function M.allow_events(st)
  local names = {}
  for k in pairs(st.packages) do
    names[#names + 1] = k
  end
  table.sort(names)
  return table.concat(names, ", ")
end

-- u.hooks.SUBSCRIBE
function M._on_subscribe_request(u, req, where, d)
  local st = state_of(u)
  if where == "481" or next(st.packages) == nil then
    return false -- a subscriber only: SUBSCRIBEs stay the script's
  end
  if where == "inside" and not d then
    return false
  end
  local pkg, typ, id, expires = check_subscribe(st, req)
  if not pkg then
    return true
  end
  local n = d and d.subscriptions and d.subscriptions[key_of(typ, id)]
  if n and getmetatable(n) == Notifier then -- a refresh, or Expires: 0
    n.request = req
    req:reply(200, nil, { Contact = u.contact, Expires = tostring(expires) })
    if expires == 0 then
      n:notify { state = "terminated", reason = "timeout" }
    else
      notifier_expiry(n, expires)
      n:notify {} -- §4.2.1.2: a refresh gets a NOTIFY too
    end
    return true
  end
  if where == "inside" and (not d or d:state() == "terminated") then
    req:reply(481)
    return true
  end
  new_subscription(u, pkg, req, d, typ, id, expires)
  return true
end

-- The subscription of dialog d a NOTIFY names (the refer package of
-- RFC 3515 may leave the id out when the dialog has a single REFER).
local function find_sub(d, typ, id)
  local subs = d and d.subscriptions
  if not subs then
    return nil
  end
  local s = subs[key_of(typ, id)]
  if not s then -- a NOTIFY without id, or one before the REFER's 2xx
    for _, x in pairs(subs) do
      if x.typ == typ and getmetatable(x) == Subscription and (not id or not x.id) then
        s = x
        break
      end
    end
  end
  if s and getmetatable(s) == Subscription then
    return s
  end
end

-- u.hooks.NOTIFY
function M._on_notify_request(u, req, where, d)
  local st = state_of(u)
  local ev = req:header("Event")
  local typ, id = M.parse_event(ev)
  if ev and not typ then
    req:reply(400, "Bad Request (Event)")
    return true
  end
  if not typ then
    req:reply(489, "Bad Event")
    return true
  end
  if where == "481" and req.to.tag then
    -- before the 2xx of our SUBSCRIBE (§4.1.2.4): wait for it
    local sub = st.pending[req.call_id .. ";" .. req.to.tag]
    if sub and sub.typ == typ then
      sub.early[#sub.early + 1] = co_running()
      local ok = co_yield()
      if ok and sub.d and sub.state ~= "terminated" then
        sub_notify(sub, req)
      else
        req:reply(481)
      end
      return true
    end
    return false
  end
  local sub = where == "inside" and find_sub(d, typ, id)
  if not sub and d and d.peer then
    return false -- a bridged leg (luasip.b2bua): relayed to the other leg
  end
  if not sub then
    req:reply(481) -- §4.1.3: a NOTIFY of no subscription
    return true
  end
  sub_notify(sub, req)
  return true
end

--- Be the notifier of event package `event` (§4.2): a SUBSCRIBE for it
-- is checked (Event; Expires malformed → 400, under `min_expires` → 423),
-- then `fn(sub, req)` decides: it returns nothing (or 200 / 202) to
-- accept, `false` or a status ≥ 300 (and a reason) to refuse. A SUBSCRIBE
-- for a package without a notifier gets 489 with Allow-Events. Once
-- accepted, the 2xx carries the granted Expires and a NOTIFY follows at
-- once (the handler's `sub:notify{...}`, or one with the last state);
-- a refresh gets 200 and a NOTIFY, Expires: 0 and the expiry a NOTIFY
-- terminated (reason "timeout").
-- @tparam UA u
-- @tparam string event the package ("presence", "message-summary", ...)
-- @tparam[opt] function fn `fn(sub, req)`
-- @tparam[opt] table opts `default_expires` (3600), `min_expires` (1),
--   `max_expires` (86400)
-- @treturn Package `pkg:each()` (the active subscriptions),
--   `pkg:notify_all(t)` (a NOTIFY to each, in its own coroutine)
function M.on_subscribe(u, event, fn, opts)
  if type(event) ~= "string" or not M.parse_event(event) then
    error("on_subscribe: an event package name expected", 3)
  end
  opts = opts or {}
  local st = state_of(u)
  local pkg = setmetatable({ name = event:lower(), fn = fn, subs = {},
    default_expires = opts.default_expires or M.DEFAULT_EXPIRES,
    min_expires = opts.min_expires or 1, max_expires = opts.max_expires or 86400 }, Package)
  st.packages[pkg.name] = pkg
  return pkg
end

--- The package's live subscriptions (a list).
function Package:each()
  local out = {}
  for n in pairs(self.subs) do
    if n.state ~= "terminated" then
      out[#out + 1] = n
    end
  end
  return out
end

--- A NOTIFY to each live subscription (each in its own coroutine; does
-- not wait). `t` as `sub:notify`.
-- @treturn integer how many
function Package:notify_all(t)
  local list = self:each()
  for _, n in ipairs(list) do
    sip.spawn(function()
      n:notify(t)
    end)
  end
  return #list
end

--- A subscriber's subscription in dialog `d` made by another request
-- (the implicit subscription of a REFER, RFC 3515 §2.4.4): NOTIFYs of
-- `event` in `d` go to it. Not started until `start_timer_n` when the
-- request is accepted.
-- @tparam UA u
-- @tparam Dialog d
-- @tparam string event e.g. "refer;id=93809824"
-- @tparam[opt] table opts `notify_timeout`, `on_notify`, `on_end`
-- @treturn Subscription
function M.implicit_subscription(u, d, event, opts)
  opts = opts or {}
  state_of(u)
  local typ, id = M.parse_event(event)
  local sub = setmetatable({ ua = u, event = event, typ = typ, id = id, key = key_of(typ, id),
    state = "pending", queue = {}, waiters = {}, early = {}, auto_refresh = false,
    notify_timeout = opts.notify_timeout or M.NOTIFY_TIMEOUT, on_notify = opts.on_notify,
    on_end = opts.on_end }, Subscription)
  attach(d, sub)
  return sub
end

--- Give `sub` another Event (the id of a REFER's subscription, known
-- from the REFER's CSeq).
function M.rekey(sub, ev)
  local typ, id = M.parse_event(ev)
  local subs = sub.d and sub.d.subscriptions
  if subs and subs[sub.key] == sub then
    subs[sub.key] = nil
  end
  sub.event, sub.typ, sub.id, sub.key = ev, typ, id, key_of(typ, id)
  if subs and sub.state ~= "terminated" then
    subs[sub.key] = sub
  end
end

--- The request that made `sub` was accepted: start waiting for its first
-- NOTIFY (Timer N) and its expiry.
function M.accepted(sub, expires)
  sub_schedule(sub, expires)
  start_timer_n(sub)
end

--- The request that made `sub` failed: it is over.
function M.rejected(sub, why)
  sub_finish(sub, why or "rejected")
end

--- A notifier's subscription in dialog `d` made by another request (the
-- REFER a UA accepted): `sub:notify{...}` sends its NOTIFYs.
-- @tparam UA u
-- @tparam Dialog d
-- @tparam string event e.g. "refer;id=93809824"
-- @tparam integer expires seconds
-- @treturn Notifier
function M.implicit_notifier(u, d, event, expires)
  state_of(u)
  local typ, id = M.parse_event(event)
  local n = setmetatable({ ua = u, event = event, typ = typ, id = id, key = key_of(typ, id),
    state = "active", accepted = true }, Notifier)
  attach(d, n)
  notifier_expiry(n, expires)
  return n
end

return M
