--- A back-to-back user agent: `bridge` answers an INVITE (the A leg) by
-- calling targets (the B leg) as a UA of its own and joining the two
-- dialogs (RFC 3261 §6 "back-to-back user agent", RFC 7092 §3.1: a
-- signaling-only B2BUA).
--
--     local ua = require "luasip.ua"
--     local b2bua = require "luasip.b2bua"
--     local u = ua.new(srv)
--     srv:on_request(function(req)
--       if u:handle(req) then return end          -- both legs' in-dialog requests
--       if req.method == "INVITE" then
--         local a, b, out = b2bua.bridge(u, req, { "sip:bob@127.0.0.1:5080" })
--         print(out.status, out.duration)         -- after the call
--       end
--     end)
--
-- Each leg is a `luasip.ua` dialog with its own Call-ID, tags, CSeq and
-- Contact (ours, on the transport of that leg): nothing of one side's
-- Via, Contact, Call-ID, Record-Route or tags is copied to the other.
-- The dialog state and ACKs are `luasip.ua`'s (C, `csrc/dialog`); this
-- module only relays between the two.
-- A REFER in the call is refused, carried out here (blind transfer) or
-- passed on (`opts.refer`); an INVITE with Replaces naming a leg takes
-- its place (attended transfer, `replace`).
-- @module luasip.b2bua

local ua = require "luasip.ua"
local sip = require "luasip"
local core = require "luasip.core"
local server = require "luasip.server"
local proxy = require "luasip.proxy"
local refer = require "luasip.ua.refer"
local event = require "luasip.ua.event"

local co_running, co_yield = coroutine.running, coroutine.yield
local remove, pack, unpack = table.remove, table.pack, table.unpack

local M = {}

-- ---- one UA per transport ------------------------------------------------

-- ua -> { transport -> UA }: the legs' Contacts name the transport of
-- their leg (a TCP callee sends its BYE to a TCP Contact). The UAs of one
-- set share the dialogs table, so `u:handle` serves all of them.
local siblings = setmetatable({}, { __mode = "k" })

local function transport_of_contact(c)
  return (c:match(";[Tt][Rr][Aa][Nn][Ss][Pp][Oo][Rr][Tt]=(%w+)") or "udp"):lower()
end

local function leg_ua(u, transport)
  transport = (transport or "udp"):lower()
  local set = siblings[u]
  if not set then
    set = { [transport_of_contact(u.contact)] = u }
    siblings[u] = set
  end
  local s = set[transport]
  if s then
    return s
  end
  local user = u.contact:match("<sips?:([^@>:;]+)@") or "b2bua"
  for _, l in ipairs(u.srv:listeners()) do
    local tp, hostport = l:match("^(%a+):(.*)$")
    if tp == transport then
      s = ua.new(u.srv, {
        contact = string.format("<sip:%s@%s%s>", user, hostport, tp ~= "udp" and ";transport=" .. tp or ""),
        from = u.from,
      })
      s.dialogs, s.stats = u.dialogs, u.stats
      set[transport] = s
      return s
    end
  end
  set[transport] = u -- no listener of that transport: our usual Contact
  return u
end

-- ---- targets and statuses ------------------------------------------------

-- A target: a URI string, or { uri =, to =, dest =, transport = } (a
-- registrar binding's `contact` and `received` are taken too).
local function target_of(t)
  if type(t) == "string" then
    t = { uri = t }
  elseif type(t) == "table" and not t.uri and t.contact then
    -- a binding reachable over its flow alone (outbound, WebSocket,
    -- an .invalid Contact) is called over it, as the proxy does
    t = { uri = (t.contact:match("^%s*<(.-)>") or t.contact), dest = t.dest or proxy.flow_of(t) }
  end
  if type(t) ~= "table" or type(t.uri) ~= "string" then
    error("bad target (a URI string or a table with uri expected)", 3)
  end
  local tp = t.transport
  if not tp and type(t.dest) == "string" then
    tp = t.dest:match("^(%a+):")
  end
  tp = tp or transport_of_contact(t.uri)
  return { uri = t.uri, to = t.to, dest = t.dest, transport = tp:lower() }
end

--- The statuses after which the next target is tried (serial mode) by
-- default: 408, 480, 486 and 5xx; a target that gives no response (a
-- transport error, a timeout) is passed over too. A 6xx ends the search
-- (§16.7: global failure).
M.failover = { [408] = true, [480] = true, [486] = true }

local function fails_over(opts, status)
  local f = opts.failover
  if type(f) == "function" then
    return f(status) and true or false
  end
  f = f or M.failover
  return f[status] or (status >= 500 and status < 600) or false
end

--- How a final failure of the B leg is answered on the A leg (default
-- mapping; `opts.map_status` overrides): a challenge of the callee (401,
-- 407) is not A's to answer (500), a 3xx would hand out the callee's
-- Contacts (480), our own 503 would tell A to avoid this server (500);
-- the rest is relayed as it came.
function M.map_status(status)
  if status == 401 or status == 407 or status == 503 then
    return 500
  elseif status >= 300 and status < 400 then
    return 480
  end
  return status
end

-- The best of several final failures (parallel mode, §16.7 in short): a
-- 6xx first, else the lowest class, the lowest code in it.
local function better(a, b)
  if not a then
    return true
  end
  if (b >= 600) ~= (a >= 600) then
    return b >= 600
  end
  return b < a
end

local function is_sdp(ctype)
  return ctype == nil or ctype:lower():find("application/sdp", 1, true) ~= nil
end

local function from_of(req)
  local raw = req.from and req.from.raw
  if not raw then
    return nil
  end
  local head, params = raw:match("^(.*>)(.*)$")
  if not head then
    head, params = raw:match("^([^;]*)(.*)$")
  end
  return head .. params:gsub(";%s*[Tt][Aa][Gg]%s*=%s*[^;]*", "")
end

local REVERSE = { a2b = "b2a", b2a = "a2b" }

--- In-dialog methods relayed to the other leg as they are, besides
-- INVITE and UPDATE (the offer across, the answer back), BYE (the other
-- leg ends) and ACK (each leg has its own); others get 501. A script may
-- add to it.
M.relayed = { INFO = true, MESSAGE = true, OPTIONS = true, NOTIFY = true }

-- ---- the bridge ----------------------------------------------------------

local Bridge = {}
Bridge.__index = Bridge

function Bridge:sdp(dir, body, msg)
  local f = self.opts.on_sdp
  if f and body then
    return f(dir, body, msg) or body
  end
  return body
end

-- Wait for an event of this bridge (a B call's result, the A CANCEL, the
-- end): only the bridge's own coroutine waits here.
function Bridge:next()
  while #self.queue == 0 do
    self.waiting = true
    co_yield()
  end
  return remove(self.queue, 1)
end

function Bridge:notify(...)
  self.queue[#self.queue + 1] = pack(...)
  if self.waiting then
    self.waiting = false
    server.resume(self.co)
  end
end

-- A provisional response of the B leg, relayed to A (with its SDP: an
-- early offer answer, RFC 3960) under our Contact.
function Bridge:provisional(res)
  if self.progress then -- a transfer's call: the referrer hears of it by NOTIFY
    return self.progress(res)
  end
  local req, st = self.req, res.status
  if st <= 100 or st >= 200 or self.final or req:is_cancelled() then
    return
  end
  local h = { Contact = self.ua_a.contact }
  local body = res.body ~= "" and res.body or nil
  if body then
    local ctype = res:header("Content-Type")
    if is_sdp(ctype) then
      body = self:sdp("b2a", body, res)
    end
    h["Content-Type"] = ctype or "application/sdp"
  end
  if res:header("RSeq") and self.ua_a:supports(req, "100rel") then
    -- B's 1xx was reliable (RFC 3262) and A does 100rel: so is ours, and
    -- connect's 2xx waits for A's PRACKs (§3: a 2xx may not overtake an
    -- unacknowledged reliable 1xx with a session description)
    self.reliable_pending = (self.reliable_pending or 0) + 1
    sip.spawn(function()
      local d = self.ua_a:progress(req, st, body, { reliable = true, headers = h })
      if not d and not self.final and not req:is_cancelled() then
        req:reply(st, nil, h, body)
      end
      self.reliable_pending = self.reliable_pending - 1
      local co = self.prack_wait
      if self.reliable_pending == 0 and co then
        self.prack_wait = nil
        server.resume(co)
      end
    end)
  else
    req:reply(st, nil, h, body)
  end
  self.out.ringing = self.out.ringing or (core.now() - self.t0) / 1000
end

function Bridge:start(i)
  local tg = self.targets[i]
  local link = self.link
  local lu = leg_ua(self.ua, tg.transport)
  local c = lu:call {
    to = tg.to or self.to, uri = tg.uri, from = self.from, sdp = self.offer, dest = tg.dest,
    headers = self.headers, timeout = self.opts.timeout, credentials = self.opts.credentials,
    on_provisional = function(res)
      local br = link.bridge
      if br then
        br:provisional(res)
      end
    end,
  }
  self.pending[i] = c
  sip.spawn(function()
    local r = pack(c:wait())
    -- the client transaction keeps its callbacks (and so the call) for
    -- 64*T1 after the final response, to acknowledge late 2xx: let them
    -- hold neither the bridge nor the response
    c.result = nil
    self:notify("call", i, unpack(r, 1, r.n))
  end)
end

function Bridge:cancel_pending(except)
  for i, c in pairs(self.pending) do
    if i ~= except then
      c:cancel()
    end
  end
end

-- An in-dialog request on leg `d` (dir "a2b": from A), relayed to the
-- other leg; its response relayed back.
function Bridge:relay(d, r, dir)
  local m = r.method
  if m == "BYE" or m == "ACK" or m == "CANCEL" then
    return -- the dialog ends (on_end) / each leg acknowledges its own
  end
  d.events = {} -- nobody waits on a bridged leg's events
  local other = d.peer
  if not other or other.ended then
    return r:reply(481)
  end
  local opts = self.opts
  local h = {}
  if opts.on_request then
    local st, reason = opts.on_request(dir, r, h)
    if st then
      return r:reply(st, reason)
    end
  end
  local body = r.body ~= "" and r.body or nil
  local ctype = r:header("Content-Type")
  local res
  if m == "INVITE" or m == "UPDATE" then
    if self.offering then -- an offer of ours is pending on a leg: §14.1 glare
      return r:reply(491)
    end
    if body and is_sdp(ctype) then
      body = self:sdp(dir, body, r)
    end
    self.offering = true
    if m == "INVITE" then
      res = other:reinvite(body, { headers = h, retry = false })
    else
      res = other:update(body, { headers = h, retry = false })
    end
    self.offering = false
  elseif m == "REFER" then
    local mode = opts.refer or M.refer
    if mode == "handle" then
      return self:transfer(d, r, dir)
    elseif mode ~= "pass" then
      return r:reply(403, "Forbidden (no transfer through this B2BUA)")
    end
    local rt = r:headers("Refer-To")
    local t = #rt == 1 and refer.parse_refer_to(rt[1])
    if not t then
      return r:reply(400, "Bad Request (Refer-To)") -- RFC 3515 §2.4.1: exactly one
    end
    h["Refer-To"] = self:refer_to_across(t, rt[1])
    res = other:request("REFER", { headers = h })
    if res and res.status >= 200 and res.status < 300 then
      -- the NOTIFYs of that leg's subscription (id: the CSeq of our
      -- REFER there) go back under the id of the referrer's (§2.4.6)
      other.refer_ids = other.refer_ids or {}
      other.refer_ids[tostring(res.cseq)] = tostring(r.cseq)
    end
  elseif M.relayed[m] then
    if m == "NOTIFY" then -- its subscription's headers go with it
      local ev = r:header("Event")
      local typ, id = event.parse_event(ev)
      local mapped = typ == "refer" and id and d.refer_ids and d.refer_ids[id]
      h["Event"] = mapped and ("refer;id=" .. mapped) or ev
      h["Subscription-State"] = r:header("Subscription-State")
    end
    res = other:request(m, { headers = h, body = body, content_type = body and ctype })
  else
    return r:reply(501)
  end
  if not res then
    return r:reply(500, "Server Internal Error (the other leg is gone)")
  end
  local st = res.status
  if st >= 200 and st < 300 then
    local rh = { Contact = d.ua.contact }
    local rbody = res.body ~= "" and res.body or nil
    if rbody then
      local rct = res:header("Content-Type")
      if is_sdp(rct) then
        rbody = self:sdp(REVERSE[dir], rbody, res)
      end
      rh["Content-Type"] = rct or "application/sdp"
    end
    if m == "INVITE" or m == "UPDATE" then
      d.remote_sdp, d.local_sdp = body or d.remote_sdp, rbody or d.local_sdp
    end
    return r:reply(st, nil, rh, rbody)
  end
  return r:reply((opts.map_status or M.map_status)(st))
end

-- A leg ended (BYE either way, 481, 408, our BYE): the other one goes
-- too, and the call is over.
function Bridge:leg_end(d, why)
  local out = self.out
  if not out.ended_by then
    out.ended_by = (d == self.a and "a" or "b") .. ": " .. tostring(why)
  end
  local other = d.peer
  if other and not other.ended then
    sip.spawn(function()
      other:bye()
    end)
  end
  if (not self.a or self.a.ended) and (not self.b or self.b.ended) then
    self:finish()
  end
end

function Bridge:finish()
  if self.done then
    return
  end
  self.done = true
  if self.limit then
    self.limit:stop()
    self.limit = nil
  end
  for _, d in ipairs({ self.a, self.b }) do -- the dialogs outlive us a little (above)
    d.on_request, d.on_end, d.peer, d.bridge = nil, nil, nil, nil
  end
  local out, now = self.out, core.now()
  out.duration = self.answered and (now - self.answered) / 1000 or 0
  out.total = (now - self.t0) / 1000
  if self.opts.on_end then
    self.opts.on_end(out, self.a, self.b)
  end
  self:notify("end")
end

-- Leg `d` of the bridge, joined to `other`: its requests relayed (`dir`:
-- "a2b" for the A side), its end ends the other.
function Bridge:join(d, other, dir)
  d.peer, d.bridge = other, self
  d.on_request = function(dd, r)
    self:relay(dd, r, dir)
  end
  d.on_end = function(dd, why)
    self:leg_end(dd, why)
  end
end

-- The B leg answered (res, dialog b): answer A with its SDP, link them.
function Bridge:connect(b, res)
  local req, out = self.req, self.out
  local body = res.body ~= "" and res.body or nil
  if body and is_sdp(res:header("Content-Type")) then
    body = self:sdp("b2a", body, res)
  end
  while (self.reliable_pending or 0) > 0 and not req:is_cancelled() do
    self.prack_wait = co_running()
    co_yield()
  end
  local a = not req:is_cancelled() and self.ua_a:answer(req, body)
  self.final = true
  if not a then -- A cancelled meanwhile, or its INVITE was bad
    out.status, out.reason = 487, "cancelled by the caller"
    b:bye()
    return nil
  end
  self.answered = core.now()
  out.status, out.reason = res.status, res.reason
  out.setup_time = (self.answered - self.t0) / 1000
  out.a_call_id, out.b_call_id = req.call_id, b:details().call_id
  self.a, self.b = a, b
  self:join(a, b, "a2b")
  self:join(b, a, "b2a")
  local max = self.opts.max_duration
  if max and max > 0 then
    self.limit = assert(core.timer(math.floor(max * 1000 + 0.5), 0, function()
      self.limit = nil
      self.out.ended_by = self.out.ended_by or "max_duration"
      sip.spawn(function()
        if not self.a.ended then -- the A leg of now (a transfer may have replaced it)
          self.a:bye()
        end
      end)
    end))
  end
  if self.opts.on_answer then
    self.opts.on_answer(a, b, out)
  end
  return a
end

-- Call the targets until one answers, A cancels, or they are exhausted.
-- Returns the B dialog and its 2xx, or nil.
function Bridge:ring()
  local targets, opts, out = self.targets, self.opts, self.out
  local parallel = opts.mode == "parallel"
  local req = self.req
  -- §9.2: the core answers A's CANCEL (200, then 487 to the INVITE);
  -- we learn it here and cancel the B calls
  self.watch = req and assert(core.timer(20, 20, function()
    if req:is_cancelled() and not self.cancelled then
      self.cancelled = true
      self:notify("cancel")
    end
  end))
  local n, best = #targets, nil
  local live, nxt
  if parallel then
    for i = 1, n do
      self:start(i)
    end
    live, nxt = n, n + 1
  else
    self:start(1)
    live, nxt = 1, 2
  end
  local b, bres
  while live > 0 do
    local ev = self:next()
    if ev[1] == "cancel" then
      self:cancel_pending()
      out.status, out.reason = 487, "cancelled by the caller"
      break
    end
    local i, d, res, why = ev[2], ev[3], ev[4], ev[5]
    self.pending[i] = nil
    live = live - 1
    local status = type(res) == "userdata" and res.status or nil
    if why == "timeout" then
      status = 408
    end
    out.attempts[#out.attempts + 1] = { target = targets[i].uri, status = status or 0,
      reason = type(res) == "userdata" and res.reason or tostring(why or res) }
    if d then
      b, bres, out.target = d, res, targets[i].uri
      self:cancel_pending()
      break
    end
    if status and better(best, status) then
      best = status
    end
    if not parallel and nxt <= n and (status == nil or fails_over(opts, status)) and not self.cancelled then
      self:start(nxt)
      nxt, live = nxt + 1, live + 1
    end
  end
  if self.watch then
    self.watch:stop()
    self.watch = nil
  end
  self.link.bridge = nil
  if b then
    return b, bres
  end
  if not out.status then
    local st = best and (opts.map_status or M.map_status)(best) or 480
    out.status, out.reason = best or 480, "no target answered"
    self.final = true
    if req and not req:is_cancelled() then
      req:reply(st)
    end
  end
  return nil
end

-- ---- transfer (RFC 3515 REFER, RFC 3891 Replaces) --------------------------

--- How a REFER within a bridged call is taken when `opts.refer` is not
-- set: "reject" (403). "handle": the B2BUA carries the transfer out
-- itself; "pass": the REFER goes to the other leg (see `bridge`).
M.refer = "reject"

-- Leg `old` of the bridge gives its place to `new` (a transfer's leg):
-- `old` is let go (no relay, its end no longer ends the other leg).
function Bridge:swap(old, new)
  local other = old.peer
  local dir = old == self.a and "a2b" or "b2a"
  if old == self.a then
    self.a = new
  else
    self.b = new
  end
  old.on_request, old.on_end, old.peer, old.bridge = nil, nil, nil, nil
  self:join(new, other, dir)
  other.peer = new
end

-- The Refer-To of a REFER passed to the other leg: a Replaces naming a
-- leg of ours (as its far end, the referrer, knows it) is rewritten to
-- name that leg's partner as the partner's far end knows it (the Call-IDs
-- and tags of the two legs differ); anything else is kept.
function Bridge:refer_to_across(t, raw)
  local rp = t.replaces and refer.parse_replaces(t.replaces)
  local leg = rp and refer.find_replaced(self.ua, rp)
  if leg and leg.peer and not leg.peer.ended then
    return refer.refer_to(t.uri, leg.peer:replaces())
  end
  return raw
end

-- The bridged leg a parsed Replaces names, to be replaced, and its
-- partner, kept: named as we know the leg (RFC 3891 §3: to-tag ours), or
-- as the leg's far end knows it (a Replaces rewritten by a passed REFER:
-- then its partner goes).
local function named_leg(u, r)
  local old = refer.find_replaced(u, r)
  if old and old.bridge and old.peer then
    return old, old.peer
  end
  for _, d in pairs(u.dialogs) do
    local i = d.bridge and d.peer and d.dlg:info()
    if i and i.call_id == r.call_id and i.remote_tag == r.to_tag and i.local_tag == r.from_tag then
      return d.peer, d
    end
  end
end

local function targets_of(v)
  if type(v) == "string" or (type(v) == "table" and (v.uri or v.contact)) then
    v = { v }
  end
  local list = {}
  for i, t in ipairs(v) do
    list[i] = target_of(t)
  end
  return list
end

-- The transfer's new call (the Refer-To target, in place of the referrer
-- `d`): the bridge's own calling (serial targets, failover, hooks), the
-- remaining party's SDP as the offer; on its 2xx, the remaining party
-- re-INVITEd with the new SDP (when it differs) and the legs swapped.
function Bridge:transfer_call(d, r, dir, t, list, progress)
  local remaining, opts = d.peer, self.opts
  local h = {}
  for k, v in pairs(opts.headers or {}) do
    h[k] = v
  end
  if t.replaces then -- the referrer's own dialog with the target (attended)
    h["Replaces"] = t.replaces
  end
  local offer = remaining.remote_sdp and self:sdp(REVERSE[dir], remaining.remote_sdp, r)
  local child = setmetatable({
    ua = self.ua, opts = opts, targets = list, co = co_running(), queue = {}, pending = {},
    t0 = core.now(), headers = h, offer = offer, progress = progress, out = { attempts = {} },
    from = remaining == self.a and self.from or ("<" .. remaining:details().remote_uri .. ">"),
    to = "<" .. t.uri .. ">",
  }, Bridge)
  child.link = { bridge = child }
  local nb, res = child:ring()
  self.transferring.attempts = child.out.attempts
  if not nb then
    return nil, child.out.status
  end
  if remaining.ended or self.done then
    sip.spawn(function()
      nb:bye()
    end)
    return nil, 487
  end
  local body = res.body ~= "" and res.body or nil
  if body and is_sdp(res:header("Content-Type")) then
    body = self:sdp(dir, body, res)
  end
  if body and body ~= remaining.local_sdp then
    self.offering = true
    local rr = remaining:reinvite(body, { retry = false })
    self.offering = false
    if not rr or rr.status >= 300 then
      sip.spawn(function()
        nb:bye()
      end)
      return nil, rr and rr.status or 500
    end
  end
  self:swap(d, nb)
  return nb, res
end

-- A REFER on leg `d`, carried out by the B2BUA (opts.refer = "handle").
function Bridge:transfer(d, r, dir)
  local opts = self.opts
  local t = #r:headers("Refer-To") == 1 and refer.parse_refer_to(r:header("Refer-To"))
  if not t then
    return r:reply(400, "Bad Request (Refer-To)")
  end
  if self.transferring or self.offering then
    return r:reply(500, "Server Internal Error (a transfer is under way)", { ["Retry-After"] = "1" })
  end
  local rp = t.replaces and refer.parse_replaces(t.replaces)
  local old, keep
  if rp then
    old, keep = named_leg(self.ua, rp)
    if old and (old.bridge == self or old.ended or keep.ended) then
      old, keep = nil, nil -- not another call of ours: the target's own dialog
    end
  end
  local targets = t.uri
  if opts.on_refer then
    local v, reason = opts.on_refer(dir, r, t)
    if v == false or type(v) == "number" then
      return r:reply(v or 403, reason)
    end
    targets = v or targets
  end
  local list = old and {} or targets_of(targets)
  if #list == 0 and not old then
    return r:reply(404, "Not Found (the transfer target)")
  end
  local rec = { by = d == self.a and "a" or "b", target = t.uri, replaces = old and true or nil }
  local out = self.out
  out.transfers = out.transfers or {}
  out.transfers[#out.transfers + 1] = rec
  self.transferring = rec
  local ok, nd, res = pcall(refer.transfer, d, r, function(_, progress)
    if old then
      return self:merge(d, r, dir, old, keep)
    end
    return self:transfer_call(d, r, dir, t, list, progress)
  end)
  self.transferring = nil
  if not ok then
    rec.status = 500
    error(nd, 0)
  end
  if nd then
    rec.status, rec.call_id = type(res) == "number" and res or res.status, nd:details().call_id
    sip.spawn(function() -- after the NOTIFY 200: the referrer's leg is over
      if not d.ended then
        d:bye()
      end
    end)
  else
    rec.status = type(res) == "number" and res or (res and res.status) or 500
  end
end

-- An INVITE with Replaces naming `old`, a leg of this bridge: the new
-- caller takes its place next to `remaining` (re-INVITE with the new
-- offer), `old` gets BYE.
function Bridge:replace(old, remaining, req)
  local dir = old == self.a and "a2b" or "b2a"
  local rec = { kind = "replaces", replaced = dir:sub(1, 1), call_id = req.call_id }
  local out = self.out
  out.transfers = out.transfers or {}
  out.transfers[#out.transfers + 1] = rec
  local offer = req.body ~= "" and req.body or nil
  if not offer or not is_sdp(req:header("Content-Type")) then
    rec.status = 488
    req:reply(488, "Not Acceptable Here (an SDP offer is needed)")
    return nil
  end
  if self.offering or self.transferring then
    rec.status = 491
    req:reply(491)
    return nil
  end
  self.offering = true
  local res = remaining:reinvite(self:sdp(dir, offer, req), { retry = false })
  self.offering = false
  if not res or res.status >= 300 or remaining.ended then
    rec.status = res and (self.opts.map_status or M.map_status)(res.status) or 500
    req:reply(rec.status)
    return nil
  end
  local body = res.body ~= "" and res.body or remaining.remote_sdp
  if body then
    body = self:sdp(REVERSE[dir], body, res)
  end
  local src = req:source()
  local nd = not req:is_cancelled() and leg_ua(self.ua, src and src.transport):answer(req, body)
  if not nd then
    rec.status = 487
    return nil
  end
  rec.status = 200
  self:swap(old, nd)
  sip.spawn(function()
    if not old.ended then
      old:bye()
    end
  end)
  return nd
end

-- Attended transfer carried out here (refer = "handle"): the REFER on `d`
-- names, by its Replaces, `old`, a leg of another bridge whose partner
-- `keep` is the target. `keep` is re-INVITEd with the remaining party's
-- SDP, the remaining party with the answer (when it differs); the other
-- bridge ends ("transferred"), `keep` takes `d`'s place, `old` gets BYE.
function Bridge:merge(d, r, dir, old, keep)
  local remaining, other = d.peer, old.bridge
  local offer = remaining.remote_sdp and self:sdp(REVERSE[dir], remaining.remote_sdp, r)
  self.offering, other.offering = true, true
  local res = keep:reinvite(offer, { retry = false })
  local ok = res and res.status >= 200 and res.status < 300
  local body = ok and (res.body ~= "" and res.body or keep.remote_sdp)
  if body then
    body = self:sdp(dir, body, res)
  end
  if ok and body and body ~= remaining.local_sdp then
    res = remaining:reinvite(body, { retry = false })
    ok = res and res.status >= 200 and res.status < 300
  end
  self.offering, other.offering = false, false
  if not ok or remaining.ended or keep.ended or old.ended then
    return nil, res and res.status < 300 and 487 or (res and res.status) or 500
  end
  other.out.ended_by = other.out.ended_by or "transferred"
  other:finish() -- lets go of both its legs
  self:swap(d, keep)
  sip.spawn(function()
    if not old.ended then
      old:bye()
    end
  end)
  return keep, res or 200
end

--- Take an INVITE with Replaces (RFC 3891) that names a leg of a bridge
-- of `u` (`bridge` calls it for such an INVITE): as the B2BUA knows the
-- leg (its Call-ID, to-tag ours, from-tag the peer's), the new caller
-- replaces that leg; as the leg's far end knows it (a Replaces rewritten
-- by a passed REFER), it replaces that leg's partner. The remaining party
-- gets a re-INVITE with the new caller's offer, whose answer answers the
-- new caller; the replaced leg gets BYE; the bridge's outcome records it
-- in `transfers`. 481 when no live leg matches, 486 for early-only (a
-- bridged leg is confirmed), 400 when malformed, 488 without an SDP offer.
-- @tparam UA u
-- @tparam Request req the INVITE (outside any dialog)
-- @treturn Dialog|nil the new caller's leg
-- @treturn table the record `{ kind = "replaces", replaced = "a"|"b",
--   call_id =, status = }` (also in that bridge's outcome)
function M.replace(u, req)
  local rv = req:headers("Replaces")
  local r = #rv == 1 and refer.parse_replaces(rv[1])
  if not r then
    req:reply(400, "Bad Request (Replaces)")
    return nil, { kind = "replaces", status = 400 }
  end
  local old, remaining = named_leg(u, r)
  if not old or not old.bridge or old.ended or remaining.ended then
    req:reply(481)
    return nil, { kind = "replaces", status = 481 }
  end
  if r.early_only then
    req:reply(486)
    return nil, { kind = "replaces", status = 486 }
  end
  local br = old.bridge
  local nd = br:replace(old, remaining, req)
  return nd, br.out.transfers[#br.out.transfers]
end

--- Bridge an INVITE (the A leg, outside any dialog) to `targets` (the B
-- leg): a call of ours to each target in turn (or all at once), its
-- provisional responses relayed to A (18x with their SDP), its 2xx
-- answered to A with the SDP, a failure answered to A once no target is
-- left (`map_status`); a CANCEL from A cancels the B calls. Once
-- connected, a BYE on either leg ends the other; re-INVITE and UPDATE
-- carry the offer across and the answer back (a 491 when an offer is
-- already pending); INFO, MESSAGE, OPTIONS, NOTIFY are relayed; a REFER
-- as `opts.refer` says; other methods get 501. An INVITE with Replaces
-- naming one of our legs is an attended transfer (`b2bua.replace`; the
-- targets are not used). Each leg has its own Call-ID, tags and Contact, on the
-- transport of that leg.
--
-- Must run in the INVITE's handler (it waits). The script passes every
-- request to `u:handle(req)` first, so that both legs' in-dialog requests
-- reach their dialogs.
-- @tparam UA u a `luasip.ua` (its Contact and listeners give the legs'
--   Contacts)
-- @tparam Request req the A leg's INVITE
-- @tparam {string|table,...} targets Request-URIs (`"sip:bob@10.0.0.2"`),
--   or tables `{ uri =, to =, dest =, transport = }`; a registrar binding
--   (`contact`, `received`) is taken as it is
-- @tparam[opt] table opts
--   `mode` ("serial" default, or "parallel": all at once, the first 2xx
--   wins, the others are cancelled);
--   `failover` (a set of statuses or `function(status)`; default
--   `b2bua.failover` plus 5xx; no response is always passed over);
--   `timeout` (seconds of ringing per target, then CANCEL, counted 408);
--   `max_duration` (seconds after the answer: BYE on both legs);
--   `from` (the B leg's From, default A's without its tag), `to` (default
--   A's To URI);
--   `headers` (extra headers of the B INVITE, a table);
--   `credentials` (digest for the B leg, as `srv:send`);
--   `on_sdp = function(dir, sdp, msg)` returns the SDP to pass on (nil:
--   unchanged), `dir` "a2b" or "b2a", for the offer, 18x, 2xx, re-INVITE and
--   UPDATE bodies (it must not wait);
--   `on_request = function(dir, req, headers)` for the INVITE ("a2b") and
--   each relayed in-dialog request: add to `headers` (sent on the other
--   leg), or return a status (and reason) to answer it instead;
--   `map_status = function(status)` (see `b2bua.map_status`);
--   `on_answer = function(a, b, outcome)`, `on_end = function(outcome, a, b)`;
--   `wait = false`: return once answered (the bridge goes on; `on_end`
--   tells the end);
--   `refer` (default `b2bua.refer`, "reject"): a REFER within the call is
--   answered 403 ("reject"), carried out by us ("handle": 202, our call
--   to the target with NOTIFY sipfrag progress to the referrer, the
--   remaining party re-INVITEd to the new leg, the referrer's leg hung
--   up; on failure the call stays; a Replaces in the Refer-To naming a
--   leg of another call of ours merges the two calls) or relayed to the
--   other leg ("pass":
--   its Replaces rewritten, its NOTIFYs relayed back);
--   `on_refer = function(dir, req, target)` ("handle"): the targets to
--   call for the parsed Refer-To `target` (default `target.uri`), or
--   `false` / a status (and reason) to refuse the REFER
-- @treturn Dialog|nil the A leg (nil when the call was not connected)
-- @treturn Dialog|nil the B leg
-- @treturn table the outcome: `status`, `reason` (the B leg's final
--   status, 487 when A cancelled), `target` (the URI that answered),
--   `attempts` (`{ target =, status =, reason = }` each; status 0: no
--   response), `ringing` (seconds to the first 18x), `setup_time` (to the
--   answer), `duration` (answer to end), `total`, `ended_by` ("a: bye
--   received", "b: bye received", "max_duration", ...), `a_call_id`,
--   `b_call_id`, `transfers` (`{ by = "a"|"b", target =, status =,
--   call_id =, attempts =, replaces = (merged) }` for a REFER, `{ kind =
--   "replaces", replaced =
--   "a"|"b", status = }` for an INVITE with Replaces)
function M.bridge(u, req, targets, opts)
  local co, main = co_running()
  if main then
    error("b2bua.bridge() must run inside a request handler or sip.spawn()", 2)
  end
  if type(u) ~= "table" or not u.srv then
    error("bad argument #1 to 'bridge' (a luasip.ua expected)", 2)
  end
  if type(targets) == "string" or (type(targets) == "table" and (targets.uri or targets.contact)) then
    targets = { targets }
  end
  if type(targets) ~= "table" then
    error("bad argument #3 to 'bridge' (a list of targets expected)", 2)
  end
  if req:header("Replaces") then -- attended transfer to one of our legs
    local nd, rec = M.replace(u, req)
    return nd, nil, rec
  end
  opts = opts or {}
  local list = {}
  for i, t in ipairs(targets) do
    list[i] = target_of(t)
  end
  local src = req:source()
  local self = setmetatable({
    ua = u, req = req, opts = opts, targets = list, co = co, queue = {}, pending = {},
    t0 = core.now(), ua_a = leg_ua(u, src and src.transport),
    from = opts.from or from_of(req), to = opts.to or ("<" .. req.to.uri .. ">"),
    out = { attempts = {} },
  }, Bridge)
  self.link = { bridge = self } -- what the B calls' callbacks hold
  local h = {}
  for k, v in pairs(opts.headers or {}) do
    h[k] = v
  end
  if opts.on_request then
    local st, reason = opts.on_request("a2b", req, h)
    if st then
      self.out.status, self.out.reason = st, reason or "refused by on_request"
      req:reply(st, reason)
      return nil, nil, self.out
    end
  end
  self.headers = h
  local offer = req.body ~= "" and req.body or nil
  if offer and is_sdp(req:header("Content-Type")) then
    offer = self:sdp("a2b", offer, req)
  end
  self.offer = offer
  if #list == 0 then
    self.out.status, self.out.reason = 480, "no target"
    req:reply(480)
    return nil, nil, self.out
  end
  local b, res = self:ring()
  local a = b and self:connect(b, res)
  if not a then
    self.out.total = (core.now() - self.t0) / 1000
    self.out.duration = 0
    if opts.on_end then
      opts.on_end(self.out)
    end
    return nil, nil, self.out
  end
  if opts.wait ~= false then
    while not self.done do
      local ev = self:next()
      if ev[1] == "end" then
        break
      end
    end
  end
  return a, b, self.out
end

return M
