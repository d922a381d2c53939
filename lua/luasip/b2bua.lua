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
-- @module luasip.b2bua

local ua = require "luasip.ua"
local sip = require "luasip"
local core = require "luasip.core"
local server = require "luasip.server"
local proxy = require "luasip.proxy"

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
  req:reply(st, nil, h, body)
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
  elseif M.relayed[m] then
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
    d.on_request, d.on_end, d.peer = nil, nil, nil
  end
  local out, now = self.out, core.now()
  out.duration = self.answered and (now - self.answered) / 1000 or 0
  out.total = (now - self.t0) / 1000
  if self.opts.on_end then
    self.opts.on_end(out, self.a, self.b)
  end
  self:notify("end")
end

-- The B leg answered (res, dialog b): answer A with its SDP, link them.
function Bridge:connect(b, res)
  local req, out = self.req, self.out
  local body = res.body ~= "" and res.body or nil
  if body and is_sdp(res:header("Content-Type")) then
    body = self:sdp("b2a", body, res)
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
  a.peer, b.peer = b, a
  a.on_request = function(d, r)
    self:relay(d, r, "a2b")
  end
  b.on_request = function(d, r)
    self:relay(d, r, "b2a")
  end
  a.on_end = function(d, why)
    self:leg_end(d, why)
  end
  b.on_end = a.on_end
  local max = self.opts.max_duration
  if max and max > 0 then
    self.limit = assert(core.timer(math.floor(max * 1000 + 0.5), 0, function()
      self.limit = nil
      self.out.ended_by = self.out.ended_by or "max_duration"
      sip.spawn(function()
        if not a.ended then
          a:bye()
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
  self.watch = assert(core.timer(20, 20, function()
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
  self.watch:stop()
  self.watch = nil
  self.link.bridge = nil
  if b then
    return b, bres
  end
  if not out.status then
    local st = best and (opts.map_status or M.map_status)(best) or 480
    out.status, out.reason = best or 480, "no target answered"
    self.final = true
    if not req:is_cancelled() then
      req:reply(st)
    end
  end
  return nil
end

--- Bridge an INVITE (the A leg, outside any dialog) to `targets` (the B
-- leg): a call of ours to each target in turn (or all at once), its
-- provisional responses relayed to A (18x with their SDP), its 2xx
-- answered to A with the SDP, a failure answered to A once no target is
-- left (`map_status`); a CANCEL from A cancels the B calls. Once
-- connected, a BYE on either leg ends the other; re-INVITE and UPDATE
-- carry the offer across and the answer back (a 491 when an offer is
-- already pending); INFO, MESSAGE, OPTIONS, NOTIFY are relayed; other
-- methods get 501. Each leg has its own Call-ID, tags and Contact, on the
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
--   tells the end)
-- @treturn Dialog|nil the A leg (nil when the call was not connected)
-- @treturn Dialog|nil the B leg
-- @treturn table the outcome: `status`, `reason` (the B leg's final
--   status, 487 when A cancelled), `target` (the URI that answered),
--   `attempts` (`{ target =, status =, reason = }` each; status 0: no
--   response), `ringing` (seconds to the first 18x), `setup_time` (to the
--   answer), `duration` (answer to end), `total`, `ended_by` ("a: bye
--   received", "b: bye received", "max_duration", ...), `a_call_id`,
--   `b_call_id`
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
