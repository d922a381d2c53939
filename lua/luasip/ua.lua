--- A user agent on a `luasip.server`: calls and dialogs (RFC 3261 §12-§15)
-- as straight-line coroutine code.
--
--     local ua = require "luasip.ua"
--     local u = ua.new(srv, { contact = "<sip:bot@127.0.0.1:5070>" })
--     srv:on_request(function(req)
--       if u:handle(req) then return end          -- in-dialog, ACK, 481
--       if req.method == "INVITE" then
--         local d = u:answer(req, my_sdp)         -- 200 with the SDP
--         local ev = d:wait(30)                   -- BYE, re-INVITE, INFO ...
--         if d:state() ~= "terminated" then d:bye() end
--       end
--     end)
--     -- elsewhere, in a handler or sip.spawn:
--     local d, res = u:invite{ to = "sip:bob@127.0.0.1:5080", sdp = offer }
--
-- The dialog state (route set, remote target, CSeq, tags) and the ACK for
-- a 2xx live in C (`csrc/dialog`, bound in `csrc/lua/dialog.c`); this
-- module is the policy around them: waiting, defaults for in-dialog
-- requests, glare back-off.
-- @module luasip.ua

local sip = require "luasip"
local core = require "luasip.core"
local server = require "luasip.server"

local co_running, co_yield = coroutine.running, coroutine.yield
local random, floor = math.random, math.floor
local concat, remove = table.concat, table.remove

local M = {}

--- Option tags this UA implements (RFC 3262 100rel, RFC 4028 timer): give them to the
-- server's `sanity.supported` so that an INVITE that requires them passes
-- the C checks (`server = { sanity = { supported = ua.supported } }` in a
-- script).
M.supported = { "100rel", "timer" }

-- RFC 3262 §3: a reliable 1xx is re-sent for 64*T1 (T1 = 0.5 s), then the
-- INVITE fails (500, sent by the transaction layer)
local PRACK_WAIT = 32

local UA = {}
UA.__index = UA

local Dialog = {}
Dialog.__index = Dialog

local function need_coroutine(what)
  local _, main = co_running()
  if main then
    error(what .. " must run inside a request handler or sip.spawn()", 3)
  end
end

--- The Route header value of an outbound proxy given as `opts.route`
-- (of `u:invite`, `u:call`, `u:subscribe`): a bare URI is bracketed and
-- made a loose route (";lr" added unless present); a value with "<" is
-- kept as written.
-- @tparam string r "sip:proxy.example.com" or "<sip:p;lr>"
-- @treturn string "<sip:proxy.example.com;lr>"
function M.route_value(r)
  if not r:find("<", 1, true) then
    r = "<" .. r .. (r:find(";lr", 1, true) and "" or ";lr") .. ">"
  end
  return r
end

-- Header lines ("Name: value\r\n"...) of a table or string.
local function header_lines(h)
  if h == nil then
    return ""
  end
  if type(h) == "string" then
    return h
  end
  local out = {}
  if h[1] then
    for _, kv in ipairs(h) do
      out[#out + 1] = kv[1] .. ": " .. kv[2] .. "\r\n"
    end
  else
    local names = {}
    for k in pairs(h) do
      names[#names + 1] = k
    end
    table.sort(names)
    for _, k in ipairs(names) do
      out[#out + 1] = k .. ": " .. h[k] .. "\r\n"
    end
  end
  return concat(out)
end

--- A user agent over `srv`.
-- @tparam Server srv a `luasip.server`
-- @tparam[opt] table opts `contact` (our Contact, a name-addr; default
--   `<sip:ua@HOST:PORT>` of the first listener), `from` (default From URI),
--   `session_expires` (RFC 4028: the session interval this UAS asks of a
--   caller that supports timers and asks none; default none), `min_se`
--   (the smallest interval accepted: a smaller one gets 422; default 90),
--   `on_invite = function(u, req)` (an INVITE outside any dialog, when
--   `u:handle` is used for every request)
-- @treturn UA
function M.new(srv, opts)
  opts = opts or {}
  local contact = opts.contact
  if not contact then
    local l = srv:listeners()[1] or "udp:127.0.0.1:5060"
    local transport, hostport = l:match("^(%a+):(.*)$")
    contact = string.format("<sip:ua@%s%s>", hostport,
      transport ~= "udp" and ";transport=" .. transport or "")
  end
  local self = setmetatable({
    srv = srv,
    contact = contact,
    from = opts.from or contact:match("<(.-)>") or contact,
    on_invite = opts.on_invite,
    session_expires = opts.session_expires, -- RFC 4028, when asked for none
    min_se = opts.min_se or 90,
    dialogs = {}, -- C dialog -> Dialog
    early = setmetatable({}, { __mode = "k" }), -- INVITE -> its early Dialog (UAS)
    stats = { calls_out = 0, calls_in = 0, failed = 0, rejected = 0 },
  }, UA)
  return self
end

-- ---- Dialog ------------------------------------------------------------

-- §13.2.2.4: the ACK for the 2xx to the INVITE of CSeq cseq in dlg (C
-- builds, sends and keeps it). A next hop that is a host name is located
-- by RFC 3263 as srv:send does (its first target; waits, so inside a
-- coroutine).
local NO_OPTS = {} -- read only: no table per call when none is given

local function send_ack(dlg, cseq, dest)
  local ok, err, code = dlg:ack(cseq, nil, nil, dest)
  if ok or dest or code ~= "EAI_NONAME" then
    return ok, err, code
  end
  local hop = core.dns_next_hop(assert(sip.parse(dlg:request("ACK", nil, nil, cseq))))
  local targets
  if hop then
    targets, err, code = require("luasip.dns").resolve(hop)
  end
  if not targets then
    return nil, err, code
  end
  if dlg:state() == "terminated" then -- it ended while we waited
    return nil, "dialog: terminated", "TERMINATED"
  end
  return dlg:ack(cseq, nil, nil, targets[1].dest)
end

-- Header lines ("Name: value\r\n"...) into table h.
local function lines_into(h, lines)
  if lines == "" then -- the common case: no iterator made
    return h
  end
  for name, value in lines:gmatch("([^:\r\n]+): ([^\r\n]*)\r\n") do
    h[name] = value
  end
  return h
end

local session_arm

-- RFC 4028 §10: the session timer fired: the refresher re-INVITEs (with
-- the same SDP; a failure ends the call with BYE), the other side hangs
-- up (no refresh came).
local function session_fire(d)
  d.se_timer = nil
  if d.ended then
    return
  end
  sip.spawn(function()
    if d.se_refresh then
      local res = d:reinvite(d.local_sdp)
      if not d.ended and (not res or res.status >= 300) then
        d:bye()
      end
    else
      d.ua.stats.session_expired = (d.ua.stats.session_expired or 0) + 1
      d:bye { headers = { Reason = 'SIP;cause=408;text="session expired"' } }
    end
  end)
end

-- (Re)arm d's session timer: `expires` seconds, we refresh or not; nil
-- stops it.
session_arm = function(d, expires, we_refresh)
  if d.se_timer then
    d.se_timer:stop()
    d.se_timer = nil
  end
  d.se_expires, d.se_refresh = expires, we_refresh
  if expires and not d.ended then
    d.se_timer = assert(core.timer(d.ua.srv:session_due(expires, we_refresh), 0, function()
      session_fire(d)
    end))
  end
end

-- The session timer headers of a refresh request we send (§7.1, §7.4).
local function session_headers(d, h)
  if d.se_expires then
    h[#h + 1] = { "Session-Expires", d.se_expires .. ";refresher=uac" }
    h[#h + 1] = { "Supported", "timer" }
  end
  return h
end

-- §7.2: a 2xx to a session refresh request we sent (re)arms the timer.
local function session_from_2xx(d, res)
  local expires, who = d.ua.srv:session_uac(res)
  if expires then
    session_arm(d, expires, who == "uac")
  elseif d.se_expires then
    session_arm(d, nil) -- the answer turned it off
  end
end

local function wrap(u, dlg, role)
  local d = u.dialogs[dlg]
  if d then
    return d
  end
  d = setmetatable({ ua = u, dlg = dlg, role = role }, Dialog) -- events: made on first use
  u.dialogs[dlg] = d
  return d
end

-- Resume the coroutine waiting in d[wkey] with ..., its timeout d[tkey]
-- stopped first.
local function resume_waiter(d, wkey, tkey, ...)
  local co = d[wkey]
  if co then
    d[wkey] = nil
    if d[tkey] then
      d[tkey]:stop()
      d[tkey] = nil
    end
    server.resume(co, ...)
  end
end

local function wake(d, ...)
  resume_waiter(d, "waiter", "timer", ...)
end

-- The dialog is over: forget it (its C state is freed), wake a waiter.
local function ended(d, why)
  if d.ended then
    return
  end
  d.ended = why or "ended"
  if d.se_timer then
    d.se_timer:stop()
    d.se_timer = nil
  end
  d.ua.dialogs[d.dlg] = nil
  d.dlg:terminate()
  d.dlg:close()
  if d.on_end then -- a bridge (luasip.b2bua) ends the other leg
    d.on_end(d, d.ended)
  end
  if d.events and #d.events > 0 then -- the BYE first, the end at the next wait
    wake(d, remove(d.events, 1))
  else
    wake(d, nil, d.ended)
  end
end

--- The dialog's state: "early", "confirmed" or "terminated".
-- @treturn string
function Dialog:state()
  if self.ended then
    return "terminated"
  end
  return self.dlg:state()
end

--- Call-ID, tags, URIs, remote target, route set and CSeq numbers.
-- @treturn table
function Dialog:details()
  if self.ended then
    return { state = "terminated", ended = self.ended }
  end
  return self.dlg:info()
end

--- Send a request within the dialog and wait for its final response
-- (§12.2.1.1: Request-URI, Route, tags and CSeq from the dialog state).
-- A 2xx to an INVITE is acknowledged (§13.2.2.4); a 481 or 408 ends the
-- dialog (§12.2.1.2).
-- @tparam string method
-- @tparam[opt] table opts `headers` (lines or a table), `body`,
--   `content_type`, `credentials`, `dest`
-- @treturn[1] Message the final response
-- @return[2] nil, err, code (the request could not be sent)
function Dialog:request(method, opts)
  need_coroutine("dialog:request()")
  opts = opts or {}
  if self.ended then
    return nil, "dialog: terminated (" .. self.ended .. ")", "TERMINATED"
  end
  local extra = header_lines(opts.headers)
  if opts.body and opts.content_type then
    extra = extra .. "Content-Type: " .. opts.content_type .. "\r\n"
  end
  local bytes = self.dlg:request(method, extra ~= "" and extra or nil, opts.body)
  local req = assert(sip.parse(bytes))
  local res, sent = self.ua.srv:send(req, opts.dest or self.dest, { credentials = opts.credentials })
  if not res then
    return nil, sent
  end
  sent = sent or req
  if self.ended then
    return res
  end
  self.dlg:response(res)
  if method == "INVITE" and res.status >= 200 and res.status < 300 then
    send_ack(self.dlg, sent.cseq, opts.dest or self.dest)
  end
  if self.dlg:state() == "terminated" then
    ended(self, tostring(res.status))
  end
  return res
end

--- End the dialog here without a request (its last usage, e.g. a
-- subscription, is over: RFC 5057 §5); a waiter sees `nil, why`.
-- @tparam[opt] string why
function Dialog:terminate(why)
  ended(self, why or "terminated")
end

--- Send REFER within the dialog (RFC 3515): see `luasip.ua.refer.refer`.
function Dialog:refer(target, opts)
  return require("luasip.ua.refer").refer(self, target, opts)
end

--- The `Replaces` value (RFC 3891) that names this dialog at its peer:
-- `call-id;to-tag=PEER'S;from-tag=OURS`.
-- @treturn string
function Dialog:replaces()
  local i = self.dlg:info()
  return i.call_id .. ";to-tag=" .. i.remote_tag .. ";from-tag=" .. i.local_tag
end

--- The ACK of a call made with `ack = false` (`u:invite`), carrying the
-- SDP answer to the offer of the 2xx (RFC 3264 §5; RFC 3725 flow I).
-- @tparam[opt] string sdp
function Dialog:ack(sdp)
  local cseq = self.ack_cseq
  if not cseq then
    error("dialog:ack(): no 2xx waits for its ACK", 2)
  end
  self.ack_cseq = nil
  self.local_sdp = sdp or self.local_sdp
  return self.dlg:ack(cseq, sdp and "Content-Type: application/sdp\r\n" or nil, sdp, self.dest)
end

--- Hang up: BYE, and the dialog is over whatever the answer.
-- @treturn Message|nil the BYE's response
function Dialog:bye(opts)
  if self.ack_cseq and not self.ended then
    self:ack() -- (ack = false and no d:ack yet) the 2xx still gets its ACK first
  end
  local res, err = self:request("BYE", opts)
  ended(self, "bye sent")
  return res, err
end

-- §14.1: after a 491, the owner of the Call-ID (the UAC of the dialog)
-- waits 2.1-4 s, the other side 0-2 s, in 10 ms units.
local function glare_delay(role)
  if role == "uac" then
    return 2.1 + random(0, 190) / 100
  end
  return random(0, 200) / 100
end

-- A re-INVITE or UPDATE with an offer; a 491 is retried once after the
-- §14.1 back-off.
local function offer(self, method, sdp, opts)
  opts = opts or {}
  local h = {}
  for k, v in pairs(opts.headers or {}) do
    h[#h + 1] = type(k) == "number" and v or { k, v }
  end
  local o = { headers = session_headers(self, h), body = sdp, content_type = sdp and "application/sdp",
    credentials = opts.credentials }
  self.offering = true
  local res, err = self:request(method, o)
  if res and res.status == 491 and not self.ended and opts.retry ~= false then
    self.offering = false
    sip.sleep(opts.glare_delay or glare_delay(self.role))
    self.offering = true
    res, err = self:request(method, o)
  end
  self.offering = false
  if res and res.status >= 200 and res.status < 300 then
    self.local_sdp = sdp or self.local_sdp
    self.remote_sdp = res.body ~= "" and res.body or self.remote_sdp
    if not self.ended then
      session_from_2xx(self, res)
    end
  end
  return res, err
end

--- Re-INVITE with a new offer (hold, resume, a codec change).
-- @tparam[opt] string sdp
-- @tparam[opt] table opts `headers`, `glare_delay` (seconds; default §14.1),
--   `retry = false` (no retry after 491)
-- @treturn Message the final response
function Dialog:reinvite(sdp, opts)
  return offer(self, "INVITE", sdp, opts)
end

--- UPDATE (RFC 3311) with a new offer.
function Dialog:update(sdp, opts)
  return offer(self, "UPDATE", sdp, opts)
end

--- INFO (RFC 6086) with a body of `ctype`.
function Dialog:info(body, ctype, opts)
  opts = opts or {}
  return self:request("INFO", { body = body, content_type = ctype or "application/octet-stream",
    headers = opts.headers })
end

--- Wait for the next request within the dialog (already answered with
-- the default answer unless `on_request` answered it), or its end.
-- @tparam[opt] number timeout seconds
-- @treturn[1] Request the request
-- @return[2] nil, "timeout" | why it ended ("bye received", ...)
function Dialog:wait(timeout)
  need_coroutine("dialog:wait()")
  if self.events and #self.events > 0 then
    return remove(self.events, 1)
  end
  if self.ended then
    return nil, self.ended
  end
  local co = co_running()
  self.waiter = co
  if timeout then
    self.timer = assert(core.timer(math.max(1, floor(timeout * 1000 + 0.5)), 0, function()
      self.timer = nil
      if self.waiter == co then
        self.waiter = nil
        server.resume(co, nil, "timeout")
      end
    end))
  end
  return co_yield()
end

-- Does the body parse as SDP? true, or nil and the parser's message.
local function sdp_ok(body)
  local s, err = require("luasip.sdp").parse(body)
  if s then
    return true
  end
  return nil, err
end

-- A request within the dialog (not ACK): the default answer, then the
-- waiter sees it.
local function in_dialog(d, req)
  local m = req.method
  if m == "PRACK" then -- RFC 3262 §3: stops the reliable 1xx (C), 200
    local ok, _, code = d.dlg:prack(req)
    if not ok then
      req:reply(code == "NOTFOUND" and 481 or 400, code ~= "NOTFOUND" and "Bad Request (RAck)" or nil)
      return
    end
    if req.body ~= "" then
      d.remote_sdp = req.body
    end
    req:reply(200)
    resume_waiter(d, "prack_waiter", "prack_timer", d, req)
    return
  end
  if d.on_request then
    d.on_request(d, req)
  end
  if not req:handled() then
    if (m == "INVITE" or m == "UPDATE") and d.offering then
      req:reply(491) -- §14.1: our own offer is pending (glare)
    elseif m == "BYE" then
      req:reply(200)
    elseif (m == "INVITE" or m == "UPDATE") and req.body ~= "" and not sdp_ok(req.body) then
      -- an offer that does not parse: 488 with the reason, nothing changes
      local _, err = sdp_ok(req.body)
      req:reply(488, "Not Acceptable Here (" .. tostring(err):gsub("[%c]", " ") .. ")")
      return
    elseif m == "INVITE" or m == "UPDATE" then
      -- RFC 4028 §9: a session refresh: 422 below our Min-SE, else the
      -- timer's headers in the 200 and the timer re-armed
      local st, lines, expires, who = d.ua.srv:session_uas(req, d.ua.min_se, d.se_expires or 0)
      if not st then
        req:reply(400, "Bad Request (Session-Expires or Min-SE)")
        return
      elseif st == 422 then
        req:reply(422, nil, lines_into({}, lines))
        return
      end
      local h = lines_into({ Contact = d.ua.contact }, lines)
      local body
      if req.body ~= "" then
        if d.answer_sdp then
          body = d.answer_sdp(d, req.body)
          if not body then
            req:reply(488)
            return
          end
        else
          body = d.local_sdp
        end
        d.remote_sdp = req.body
      end
      if body then
        h["Content-Type"] = "application/sdp"
      end
      req:reply(200, nil, h, body)
      if st == 200 then
        session_arm(d, expires, who == "uas")
      elseif d.se_expires then
        session_arm(d, nil) -- a refresh without a timer turns it off
      end
    else
      req:reply(200)
    end
  end
  if m == "BYE" then
    d.events = d.events or {}
    d.events[#d.events + 1] = req
    ended(d, "bye received")
    return
  end
  if d.waiter then
    d.events = d.events or {}
    d.events[#d.events + 1] = req
    wake(d, remove(d.events, 1))
  end
end

-- ---- UA ---------------------------------------------------------------

--- Take the requests that belong to dialogs: an in-dialog request is
-- answered and given to its dialog's `wait`, an ACK is absorbed, a
-- request with a To tag of no dialog gets 481, one out of order 500
-- (§12.2.2). An INVITE outside any dialog goes to `on_invite` when set.
-- @tparam Request req
-- @treturn boolean true when handled (the caller does nothing more)
function UA:handle(req)
  local where, dlg = self.srv:dialog_match(req)
  -- SUBSCRIBE, NOTIFY, REFER, an INVITE with Replaces: luasip.ua.event
  -- and luasip.ua.refer, once used, take them first
  local hook = self.hooks and self.hooks[req.method]
  if hook and where ~= "500" and hook(self, req, where, dlg and self.dialogs[dlg]) then
    return true
  end
  if where == "outside" then
    if req.method == "INVITE" and self.on_invite then
      self.on_invite(self, req)
      return true
    end
    return false
  end
  if req.method == "ACK" then
    local d = dlg and self.dialogs[dlg]
    if d then
      d.acked = true
    end
    return true
  end
  if where == "481" then
    req:reply(481)
  elseif where == "500" then
    req:reply(500, nil, { ["Retry-After"] = tostring(random(0, 10)) })
  elseif where == "inside" then
    local d = self.dialogs[dlg]
    if not d then
      req:reply(481)
    else
      in_dialog(d, req)
    end
  else
    return false
  end
  return true
end

-- The headers of a response that makes the UAS's dialog: our Contact,
-- and (§12.1.1) the Record-Route of the request, in its order.
local function uas_headers(self, req, sdp, extra)
  local h = { Contact = self.contact }
  if sdp then
    h["Content-Type"] = "application/sdp"
  end
  local rr = req:headers("Record-Route")
  if rr and #rr > 0 then
    h["Record-Route"] = rr
  end
  for k, v in pairs(extra or {}) do
    h[k] = v
  end
  return h
end

-- Header lines of a table of name = value or list of values.
local function lines_of(h)
  local names, out = {}, {}
  for k in pairs(h) do
    names[#names + 1] = k
  end
  table.sort(names)
  for _, k in ipairs(names) do
    local v = h[k]
    for _, x in ipairs(type(v) == "table" and v or { v }) do
      out[#out + 1] = k .. ": " .. x .. "\r\n"
    end
  end
  return concat(out)
end

--- Does `msg` support (Supported or Require) the option tag `tag`
-- ("100rel", "timer")?
-- @tparam Message msg
-- @tparam string tag
-- @treturn boolean
function UA:supports(msg, tag)
  return self.srv:has_option(msg, tag) or self.srv:has_option(msg, tag, true)
end

--- Send a provisional response (101-199) to an INVITE outside any dialog.
-- With `opts.reliable` and an INVITE that supports (or requires) 100rel,
-- it is sent reliably (RFC 3262 §3): an early dialog, `Require: 100rel` and
-- an RSeq, re-sent by the transaction layer until the PRACK, and this call
-- waits for the PRACK (answered 200 by `u:handle`). Without 100rel support
-- the response goes unreliably. An SDP in it is the answer to the INVITE's
-- offer (§5); `u:answer` then needs no SDP again. A second reliable 1xx
-- waits until the first was PRACKed (§3).
-- @tparam Request req the INVITE
-- @tparam[opt=180] integer status
-- @tparam[opt] string sdp
-- @tparam[opt] table opts `reliable`, `headers`, `wait = false` (return at
--   once, do not wait for the PRACK), `prack_timeout` (seconds)
-- @treturn[1] Dialog the early dialog, and the PRACK (reliable) or true
-- @return[2] nil, err, code ("no PRACK": none came within 64*T1; the
--   INVITE was answered 500)
function UA:progress(req, status, sdp, opts)
  opts = opts or {}
  status = status or 180
  local h = uas_headers(self, req, sdp, opts.headers)
  local d = self.early[req]
  if not d then
    local dlg, err, code = self.srv:dialog_uas(req, self.contact, true)
    if not dlg then
      return nil, err, code
    end
    d = wrap(self, dlg, "uas")
    d.remote_sdp = req.body ~= "" and req.body or nil
    self.early[req] = d
  end
  if sdp then
    d.local_sdp = sdp
  end
  if not opts.reliable then
    local ok, err, code = req:reply(status, nil, h, sdp)
    if not ok then
      return nil, err, code
    end
    return d, true
  end
  while d.prack_waiter do -- §3: one reliable 1xx at a time
    local co = co_running()
    d.queue = d.queue or {}
    d.queue[#d.queue + 1] = co
    co_yield()
  end
  local rseq, err, code = d.dlg:reliable(req, status, nil, lines_of(h), sdp)
  if not rseq and code == "NOTFOUND" then -- the INVITE does not do 100rel
    local ok
    ok, err, code = req:reply(status, nil, h, sdp)
    if not ok then
      return nil, err, code
    end
    return d, true
  elseif not rseq then
    return nil, err, code
  end
  if opts.wait == false then
    return d, true
  end
  need_coroutine("ua:progress()")
  local co = co_running()
  d.prack_waiter = co
  d.prack_timer = assert(core.timer(floor((opts.prack_timeout or PRACK_WAIT) * 1000 + 0.5), 0, function()
    d.prack_timer = nil
    if d.prack_waiter == co then
      d.prack_waiter = nil
      self.early[req] = nil
      ended(d, "no PRACK")
      server.resume(co, nil, "no PRACK")
    end
  end))
  local r1, r2 = co_yield()
  local q = d.queue and remove(d.queue, 1)
  if q then
    server.resume(q)
  end
  return r1, r2
end

--- Answer an INVITE (outside any dialog) with 200 and `sdp`: the UAS's
-- dialog, confirmed (the early one of `u:progress`, if any); the 2xx is
-- re-sent until the ACK (§13.3.1.4).
-- @tparam Request req
-- @tparam[opt] string sdp our answer
-- @tparam[opt] table opts `headers`, `status` (default 200)
-- @treturn Dialog
function UA:answer(req, sdp, opts)
  opts = opts or NO_OPTS
  -- RFC 4028 §9: 422 when the session interval is below our Min-SE
  local st, lines, expires, who = self.srv:session_uas(req, self.min_se, self.session_expires or 0)
  if not st or st == 422 then
    if st then
      req:reply(422, nil, lines_into({}, lines))
    else
      req:reply(400, "Bad Request (Session-Expires or Min-SE)")
    end
    self:abandon(req)
    return nil, st and "session interval too small" or lines, st and "422" or expires
  end
  local d = self.early[req]
  if d then
    self.early[req] = nil
    if d.ended then
      return nil, "dialog: terminated (" .. d.ended .. ")", "TERMINATED"
    end
    d.dlg:confirm()
  else
    local dlg, err, code = self.srv:dialog_uas(req, self.contact)
    if not dlg then
      req:reply(400, "Bad Request (" .. err .. ")")
      return nil, err, code
    end
    d = wrap(self, dlg, "uas")
    d.remote_sdp = req.body ~= "" and req.body or nil
  end
  d.local_sdp = sdp or d.local_sdp
  local h = lines_into(uas_headers(self, req, sdp, opts.headers), lines)
  local ok, err, code = req:reply(opts.status or 200, nil, h, sdp)
  if not ok then
    ended(d, "answer failed")
    return nil, err, code
  end
  if st == 200 then
    session_arm(d, expires, who == "uas")
  end
  self.stats.calls_in = self.stats.calls_in + 1
  return d
end

--- Forget the early dialog `u:progress` made for an INVITE that gets no
-- 2xx (cancelled, rejected, failed). `u:reject` does it too.
-- @tparam Request req the INVITE
function UA:abandon(req)
  local d = self.early[req]
  if d then
    self.early[req] = nil
    ended(d, req:is_cancelled() and "cancelled" or "no answer")
  end
end

--- Reject an INVITE (`status` 300-699, default 486; a 3xx redirects to
-- `contact`). Counted in `stats.rejected`.
function UA:reject(req, status, contact)
  self.stats.rejected = self.stats.rejected + 1
  self:abandon(req)
  return req:reply(status or 486, nil, contact and { Contact = contact } or nil)
end

-- RFC 3262 §4: the PRACK for a reliable 1xx (rack: its RAck line), in
-- the early dialog dlg.
local function send_prack(u, dlg, rack, dest)
  local req = assert(sip.parse(dlg:request("PRACK", rack)))
  return u.srv:send(req, dest)
end

-- The INVITE of `u:invite` / `u:call`; c: the call's handle (branch,
-- request, cancel flags).
local function do_invite(self, t, c)
  local headers = {}
  if t["100rel"] ~= false or t.session_expires then
    headers[1] = { "Supported", t["100rel"] ~= false and (t.session_expires and "100rel, timer" or "100rel")
      or "timer" }
  end
  if t.session_expires then -- RFC 4028 §7.1: we refresh
    headers[#headers + 1] = { "Session-Expires", t.session_expires .. ";refresher=uac" }
    headers[#headers + 1] = { "Min-SE", tostring(t.min_se or math.min(self.min_se, t.session_expires)) }
  end
  if t.route then
    headers[#headers + 1] = { "Route", M.route_value(t.route) }
  end
  if t.headers then
    if t.headers[1] then
      for _, kv in ipairs(t.headers) do
        headers[#headers + 1] = kv
      end
    else
      for k, v in pairs(t.headers) do
        headers[#headers + 1] = { k, v }
      end
    end
  end
  local req, err, code = sip.request {
    method = "INVITE", uri = t.uri or t.to, to = t.to, from = t.from or self.from,
    contact = self.contact, headers = headers,
    content_type = t.sdp and "application/sdp" or nil, body = t.sdp,
  }
  if not req then
    return nil, err, code
  end
  self.stats.calls_out = self.stats.calls_out + 1
  local srv, dest = self.srv, t.dest
  local early = {}
  local confirmed
  local function on_start(branch, sent)
    c.branch, c.req, c.provisional = branch, sent, false
  end
  local function on_provisional(res)
    c.provisional = true
    if c.cancelled and not c.cancel_sent then
      c.cancel_sent = true
      srv:cancel(c.req, c.branch)
    end
    if res.status > 100 and res.to.tag then
      local dlg = srv:dialog_uac(req, res)
      if dlg then
        early[dlg] = true
        local rack = dlg:rack(res) -- a reliable 1xx in sequence: PRACK it
        if rack then
          if res.body ~= "" then -- §5: the answer to our offer
            c.early_sdp = res.body
          end
          sip.spawn(send_prack, self, dlg, rack, dest)
        elseif res:header("RSeq") and srv:has_option(res, "100rel", true) then
          -- RFC 3262 §4: a reliable 1xx already acknowledged (re-sent
          -- before our PRACK reached the UAS) or out of order is
          -- discarded, not handed to the caller again
          return
        end
      end
    end
    if t.on_provisional then
      t.on_provisional(res)
    end
  end
  -- a further 2xx: the same one again (ACK again), or another fork's
  -- (ACK, then BYE: one call is enough). The transaction keeps this hook
  -- 64*T1 after the 2xx: once the call is settled it holds the INVITE as
  -- its text (raw), parsed again for such a 2xx, not as a parsed message
  -- (about 6 KB a call in flight).
  local raw
  local function on_2xx(res)
    local dlg, new = srv:dialog_uac(req or assert(sip.parse(raw)), res)
    if not dlg then
      return
    end
    if not new and dlg:ack_again(res.cseq) then
      return
    end
    local cd = dlg == confirmed and self.dialogs[dlg]
    if cd and cd.ack_cseq then -- t.ack == false: the ACK waits for d:ack()
      return
    end
    local other = dlg ~= confirmed and wrap(self, dlg, "uac")
    if other then
      early[dlg] = nil
      other.dest = dest
    end
    sip.spawn(function()
      send_ack(dlg, res.cseq, dest)
      if other then
        other:bye()
      end
    end)
  end
  local timer
  if t.timeout then
    timer = assert(core.timer(floor(t.timeout * 1000 + 0.5), 0, function()
      timer = nil
      c.timed_out = true
      c:cancel()
    end))
  end
  local res, sent, name = srv:send(req, dest, { on_provisional = on_provisional, on_2xx = on_2xx,
    on_start = on_start, credentials = t.credentials })
  if timer then
    timer:stop()
  end
  if res and sent then
    req = sent
  end
  local d
  if res and res.status >= 200 and res.status < 300 then
    local dlg
    dlg, err, code = srv:dialog_uac(req, res)
    if dlg then
      confirmed = dlg
      early[dlg] = nil
      d = wrap(self, dlg, "uac")
      if t.ack == false and not c.cancelled then
        d.ack_cseq = res.cseq -- RFC 3725: the answer goes in a later ACK
      else
        send_ack(dlg, res.cseq, dest)
      end
      d.dest, d.local_sdp = dest, t.sdp
      d.remote_sdp = res.body ~= "" and res.body or c.early_sdp
      session_from_2xx(d, res)
    end
  end
  for dlg in pairs(early) do -- the other early dialogs end with the INVITE
    if not self.dialogs[dlg] then
      dlg:close()
    end
  end
  raw, req = tostring(req), nil -- for on_2xx (above)
  if d and c.cancelled then
    -- the CANCEL/200 race: the 2xx won; ACK sent, now BYE
    d:bye()
    self.stats.failed = self.stats.failed + 1
    return nil, res, c.timed_out and "timeout" or "cancelled"
  end
  if d then
    return d, res
  end
  if res and res.status == 422 and t.session_expires and not t.retried_422 then
    -- RFC 4028 §7.4: again with the interval the 422's Min-SE asks
    local min = srv:min_se(res)
    if min and min > t.session_expires then
      local t2 = setmetatable({ session_expires = min, min_se = min, retried_422 = true }, { __index = t })
      return do_invite(self, t2, c)
    end
  end
  self.stats.failed = self.stats.failed + 1
  if res then
    return nil, res, c.cancelled and (c.timed_out and "timeout" or "cancelled") or nil
  end
  return nil, sent or err, name or code
end

local Call = {}
Call.__index = Call

--- Cancel the call (§9.1): the CANCEL goes once a provisional response
-- came; a 2xx that crosses it is acknowledged and hung up (BYE).
-- @treturn boolean true
function Call:cancel()
  self.cancelled = true
  if self.provisional and self.branch and not self.cancel_sent and not self.done then
    self.cancel_sent = true
    local ok, err, code = self.ua.srv:cancel(self.req, self.branch)
    if not ok then
      return nil, err, code
    end
  end
  return true
end

--- Wait for the call's outcome: what `u:invite` returns.
function Call:wait()
  need_coroutine("call:wait()")
  if self.done then
    return table.unpack(self.result, 1, self.result.n)
  end
  self.waiters[#self.waiters + 1] = co_running()
  return co_yield()
end

--- Call: send an INVITE and wait for its final answer.
-- Fields of `t`: `to` (required), `uri` (the Request-URI, default `to`), `from`, `sdp`, `headers`, `credentials`,
-- `dest` (`"udp:127.0.0.1:5080"`; default the next hop of `to` or of a
-- `route`), `route` (a proxy URI to send through: a preloaded Route),
-- `timeout` (seconds of ringing before the call is cancelled),
-- `on_provisional = function(res)`, `ack = false` (the 2xx is not
-- acknowledged until `d:ack(sdp)`: an INVITE without offer answered later),
-- `100rel = false` (no Supported: 100rel), `session_expires` (RFC 4028: a
-- session interval in seconds; we refresh at half of it, a 422 is retried
-- once with its Min-SE), `min_se`.
-- A 2xx is acknowledged (§13.2.2.4), and so is every retransmission of it;
-- a 2xx from another fork is acknowledged and hung up.
-- @tparam table t
-- @treturn[1] Dialog the confirmed dialog, and the 2xx
-- @return[2] nil, the failure response (or nil, err, code); a third value
--   "cancelled" or "timeout" when the call was cancelled
function UA:invite(t)
  need_coroutine("ua:invite()")
  return do_invite(self, t, setmetatable({ ua = self, waiters = {} }, Call))
end

--- Start a call in its own coroutine: a handle with `call:wait()` (the
-- results of `u:invite`) and `call:cancel()`, usable from other coroutines.
-- @tparam table t as for `u:invite`
-- @treturn Call
function UA:call(t)
  local c = setmetatable({ ua = self, waiters = {} }, Call)
  sip.spawn(function()
    c.result = table.pack(do_invite(self, t, c))
    c.done = true
    for _, co in ipairs(c.waiters) do
      server.resume(co, table.unpack(c.result, 1, c.result.n))
    end
  end)
  return c
end

--- The `Dialog` of a C dialog of this UA's server (made on first use):
-- for modules that create dialogs by other requests (SUBSCRIBE, REFER).
-- @param dlg a `luasip.Dialog` userdata (`srv:dialog_uac` / `dialog_uas`)
-- @tparam string role "uac" or "uas"
-- @treturn Dialog
function UA:adopt(dlg, role)
  return wrap(self, dlg, role)
end

--- Subscribe (RFC 6665): see `luasip.ua.event.subscribe`.
function UA:subscribe(t)
  return require("luasip.ua.event").subscribe(self, t)
end

--- Be the notifier of an event package: see `luasip.ua.event.on_subscribe`.
function UA:on_subscribe(event, fn, opts)
  return require("luasip.ua.event").on_subscribe(self, event, fn, opts)
end

--- Accept or refuse REFERs (RFC 3515) and INVITEs with Replaces (RFC
-- 3891): see `luasip.ua.refer.on_refer`.
function UA:on_refer(fn, opts)
  return require("luasip.ua.refer").on_refer(self, fn, opts)
end

--- Dialogs of this UA that are not over.
-- @treturn integer
function UA:count()
  local n = 0
  for _ in pairs(self.dialogs) do
    n = n + 1
  end
  return n
end

M.UA = UA
M.Dialog = Dialog

--- The non-dialog half of a UA, here too: `ua.register{...}` is
-- `luasip.ua.register`'s registration client, and `ua.message` is
-- `luasip.ua.message` (MESSAGE, OPTIONS ping and answers). Loaded on first
-- use.
-- @field register
-- @field message
setmetatable(M, {
  __index = function(_, k)
    if k == "register" then
      return require("luasip.ua.register").register
    elseif k == "message" then
      return require "luasip.ua.message"
    end
  end,
})

return M
