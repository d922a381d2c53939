--- The registration client (RFC 3261 §10.2): register a Contact for an
-- address-of-record, keep it registered, unregister.
--
--     local register = require "luasip.ua.register"
--     local reg = register.register{
--       server = srv, registrar = "sip:example.com", aor = "sip:alice@example.com",
--       expires = 600, credentials = { user = "alice", password = "secret" },
--     }
--     reg:wait("registered", 10)          -- in a coroutine: true, or nil, err
--     print(reg:status().state, reg:status().expires)
--     reg:unregister()                    -- Expires: 0 for our Contact
--
-- Each REGISTER goes through `srv:send` (a client transaction; a 401/407
-- is answered with `credentials`, luasip.auth). One Call-ID for the
-- client's life and a CSeq one higher for every request (§10.2.4). A 2xx
-- gives the granted expiry (the `expires` of our Contact in the 200, else
-- its Expires header, else what we asked); the refresh is sent at 85% of it
-- (at most 5 s before it ends, half of it for short ones). A 423 raises the
-- expiry to its Min-Expires and sends again at once (§10.2.8); any other
-- failure (a 4xx-6xx, a timeout, a transport error, a challenge not
-- answered) makes the state `"failed"` and retries after a back-off that
-- doubles from `retry_base` up to `retry_max` (RFC 5626 §4.5 ranges; a
-- 503's Retry-After when longer).
-- @module luasip.ua.register
local sip = require "luasip"

local M = {}

local Client = {}
Client.__index = Client

local type, tostring, ipairs, error = type, tostring, ipairs, error
local floor, min, max = math.floor, math.min, math.max
local co_running, co_yield = coroutine.running, coroutine.yield

--- Seconds after a 2xx at which the refresh is sent for a granted expiry:
-- 85% of it, but at least 5 s before it ends; never less than half of it.
-- @tparam number expires seconds granted
-- @treturn number seconds
function M.refresh_delay(expires)
  local d = min(expires * 0.85, expires - 5)
  if d < expires / 2 then
    d = expires / 2
  end
  return d
end

--- The back-off before the `n`-th retry after consecutive failures:
-- `base * 2^(n-1)`, at most `cap`.
-- @tparam integer n 1 for the first failure
-- @tparam number base seconds
-- @tparam number cap seconds
-- @treturn number seconds
function M.backoff(n, base, cap)
  return min(cap, base * 2 ^ (n - 1))
end

local credentials_fn = require("luasip.auth").credentials

-- A Contact URI for the server's first listener of the registrar's
-- transport: sip:USER@IP:PORT[;transport=tcp].
local function default_contact(srv, registrar, aor)
  local ruri = sip.uri(registrar)
  local want = ruri and ruri.params and ruri.params.transport
  want = want and want:lower() or (ruri and ruri.scheme == "sips" and "tls") or "udp"
  local user = (sip.uri(aor) or {}).user
  for _, spec in ipairs(srv:listeners()) do
    local transport, hostport = spec:match("^(%a+):(.+)$")
    if transport == want then
      local uri = "sip:" .. (user and user .. "@" or "") .. hostport
      if transport ~= "udp" then
        uri = uri .. ";transport=" .. transport
      end
      return uri
    end
  end
  return nil
end

--- Start registering. Returns at once (the REGISTER goes out from a
-- coroutine of its own); follow it with `client:status()`,
-- `client:wait(state)` or `on_change`.
--
-- Fields of `t`:
--
-- - `server` (required): the `luasip.server` that sends
-- - `registrar` (required): the registrar's URI, the Request-URI
--   (`"sip:example.com"`, `"sip:127.0.0.1:5060;transport=tcp"`)
-- - `aor` (required): the address-of-record, From and To
-- - `contact`: our Contact URI (default: the server's first listener of
--   the registrar's transport, with the AOR's user)
-- - `expires` (600): the expiry asked for, seconds
-- - `credentials`: `function(realm, challenge)` returning `user,
--   password`, or `{ user =, password = [, realm =] }`
-- - `dest`: where to send (`"udp:127.0.0.1:5060"`, an outbound proxy);
--   default the registrar's URI
-- - `headers`: more header lines (as `sip.request`)
-- - `retry_base` (30), `retry_max` (1800): the back-off after failures
-- - `keepalive`: over TCP/TLS (a `dest` of `tcp:`/`tls:`, or a registrar
--   URI with a numeric host naming that transport), the seconds between
--   two RFC 5626 CRLF keep-alives on the connection (`srv:keepalive`;
--   default 96-120 s, random); a connection found closed makes the client
--   register again at once. `false`: none
-- - `on_change = function(client, state, status)`: called on every state
--   change (it must not wait)
-- @tparam table t
-- @treturn Client
function M.register(t)
  if type(t) ~= "table" then
    error("bad argument #1 to 'register' (table expected, got " .. type(t) .. ")", 2)
  end
  if type(t.server) ~= "userdata" then
    error("register: server (a luasip.server) required", 2)
  end
  for _, k in ipairs({ "registrar", "aor" }) do
    if type(t[k]) ~= "string" or not sip.uri(t[k]) then
      error("register: " .. k .. " (a SIP URI) required", 2)
    end
  end
  local expires = t.expires or 600
  if type(expires) ~= "number" or expires < 1 or expires % 1 ~= 0 then
    error("register: expires must be a positive integer", 2)
  end
  local contact = t.contact or default_contact(t.server, t.registrar, t.aor)
  if contact == nil and #t.server:listeners() == 0 then
    contact = false -- listeners not open yet (a script's setup): chosen at the first REGISTER
  elseif type(contact) ~= "string" or not sip.uri((contact:match("^<(.*)>$") or contact)) then
    error("register: contact (a SIP URI) required: the server has no listener for the registrar's transport", 2)
  else
    contact = contact:match("^<(.*)>$") or contact
  end
  local self = setmetatable({
    server = t.server, registrar = t.registrar, aor = t.aor, contact = contact,
    asked = expires, dest = t.dest, headers = t.headers,
    credentials = credentials_fn(t.credentials, 2),
    retry_base = t.retry_base or 30, retry_max = t.retry_max or 1800,
    on_change = t.on_change,
    call_id = sip.new_call_id(), tag = sip.new_tag(), cseq = 0,
    state = "registering", failures = 0, waiters = {}, keepalives = 0,
    keepalive = t.keepalive,
  }, Client)
  self:_schedule(0)
  return self
end

-- Wake the coroutines waiting in client:wait().
function Client:_set_state(state, res, reason)
  local changed = state ~= self.state
  self.state = state
  if res then
    self.last_status, self.last_reason = res.status, res.reason
  end
  self.last_error = reason
  if changed and self.on_change then
    self.on_change(self, state, self.last_status)
  end
  local waiters = self.waiters
  self.waiters = {}
  for _, w in ipairs(waiters) do
    w()
  end
end

function Client:_schedule(seconds)
  if self.timer then
    self.timer:stop()
  end
  self.next_in = seconds
  self.timer = sip.timer(seconds, function()
    self.timer = nil
    self:_attempt()
  end)
end

-- One REGISTER for our Contact with `expires`; the response and the
-- request that got it.
function Client:_send(expires, contact)
  self.cseq = self.cseq + 1
  local req, err = sip.request{
    method = "REGISTER", uri = self.registrar,
    from = "<" .. self.aor .. ">;tag=" .. self.tag, to = "<" .. self.aor .. ">",
    call_id = self.call_id, cseq = self.cseq,
    contact = contact or "<" .. self.contact .. ">",
    headers = self.headers,
  }
  if not req then
    return nil, err
  end
  req:add_header("Expires", tostring(expires))
  self.busy = true
  local res, sent_or_err = self.server:send(req, self.dest,
    self.credentials and { credentials = self.credentials } or nil)
  self.busy = false
  if res and type(sent_or_err) ~= "string" and sent_or_err and sent_or_err.cseq then
    self.cseq = max(self.cseq, sent_or_err.cseq) -- a challenge answered: the next CSeq
  end
  if self.idle_waiter then
    local w = self.idle_waiter
    self.idle_waiter = nil
    w()
  end
  return res, sent_or_err
end

-- The expiry a 2xx granted our Contact (§10.2.4), and that Contact.
local function granted(self, res)
  local mine = sip.uri(self.contact)
  for _, c in ipairs(res.contacts or {}) do
    local u = sip.uri(tostring(c.uri))
    if u and mine and u == mine then
      return c.expires or res.expires, c
    end
  end
  return res.expires, nil
end

-- The flow to keep up (RFC 5626 §4.4.1): "tcp:IP:PORT" / "tls:IP:PORT" of
-- `dest`, else of a registrar URI with a numeric host and a connection
-- transport; nil for UDP or a host name (no keep-alive).
local function flow_of(self)
  local d = self.dest
  if type(d) == "string" then
    return (d:match("^tcp:") or d:match("^tls:")) and d or nil
  end
  local u = sip.uri(self.registrar)
  if not u or not u.host then
    return nil
  end
  local tr = u.params and u.params.transport and u.params.transport:lower()
  if u.scheme == "sips" then
    tr = "tls"
  end
  if (tr ~= "tcp" and tr ~= "tls") or not (u.host:find("^[%d.]+$") or u.host:find(":", 1, true)) then
    return nil
  end
  local host = u.host:find(":", 1, true) and not u.host:find("^%[") and "[" .. u.host .. "]" or u.host
  return string.format("%s:%s:%d", tr, host, u.port or (tr == "tls" and 5061 or 5060))
end

-- Keep the registration's connection up with a double CRLF every
-- `keepalive` seconds; a connection found gone is a failed flow: register
-- again at once (RFC 5626 §4.4.1).
function Client:_keepalive_start()
  self:_keepalive_stop()
  local flow = self.keepalive ~= false and flow_of(self)
  if not flow then
    return
  end
  local period = self.keepalive or (96 + math.random() * 24) -- 80-100% of 120 s
  self.ka_timer = sip.timer(period, function()
    if self.stopped or self.busy then
      return
    end
    local ok, err = self.server:keepalive(flow)
    if ok then
      self.keepalives = self.keepalives + 1
    else
      self:_keepalive_stop()
      self.last_error = err
      self:_schedule(0)
    end
  end, { interval = period, background = true })
end

function Client:_keepalive_stop()
  if self.ka_timer then
    self.ka_timer:stop()
    self.ka_timer = nil
  end
end

function Client:_attempt()
  if self.stopped then
    return
  end
  if not self.contact then
    self.contact = default_contact(self.server, self.registrar, self.aor)
    if not self.contact then
      self.contact = false
      self:_set_state("failed", nil, "no listener for the registrar's transport")
      return self:_retry(nil)
    end
  end
  local expires = self.asked
  local res, err
  for _ = 1, 4 do -- 423 raises the expiry; bounded
    res, err = self:_send(expires)
    if self.stopped then
      return
    end
    if not res or res.status ~= 423 then
      break
    end
    local m = tonumber(res:header("Min-Expires") or "")
    if not m or m <= expires or m % 1 ~= 0 then
      break -- no usable Min-Expires: a failure
    end
    expires = floor(m)
    self.asked = expires -- §10.2.8: and for later refreshes too
  end
  if res and res.status >= 200 and res.status < 300 then
    local got, binding = granted(self, res)
    got = tonumber(got) or expires
    self.failures = 0
    self.expires = got
    self.registered_at = os.time()
    self.binding = binding and tostring(binding) or nil
    self.contacts = {}
    for i, c in ipairs(res.contacts or {}) do
      self.contacts[i] = tostring(c)
    end
    if got <= 0 then -- the registrar removed it
      self:_set_state("failed", res, "binding not kept by the registrar")
      return self:_retry(res)
    end
    self:_set_state("registered", res)
    self:_keepalive_start()
    return self:_schedule(M.refresh_delay(got))
  end
  self:_keepalive_stop()
  self.expires = nil
  self:_set_state("failed", res, res == nil and err or nil)
  return self:_retry(res)
end

function Client:_retry(res)
  self.failures = self.failures + 1
  local delay = M.backoff(self.failures, self.retry_base, self.retry_max)
  local after = res and res.status == 503 and tonumber((res:header("Retry-After") or ""):match("^%s*(%d+)"))
  if after and after > delay then
    delay = min(after, self.retry_max)
  end
  self:_schedule(delay)
end

--- The client's state: a table with `state` (`"registering"`,
-- `"registered"`, `"failed"`, `"unregistering"`, `"unregistered"`),
-- `expires` (the seconds granted by the last 2xx; nil when not
-- registered), `status` and `reason` (of the last final response; a
-- timeout or transport failure shows as 408/503), `error` (why, when no
-- response), `failures` (consecutive), `next_in` (seconds to the next
-- REGISTER when one is planned, as scheduled), `contact` (ours), `binding`
-- (our Contact as the registrar returned it, with its parameters: expires,
-- pub-gruu, ...), `contacts` (every binding of the AOR in the last 2xx),
-- `call_id`, `cseq`, `keepalives` (sent).
-- @treturn table
function Client:status()
  return {
    state = self.state, expires = self.state == "registered" and self.expires or nil,
    status = self.last_status, reason = self.last_reason, error = self.last_error,
    failures = self.failures, next_in = self.timer and self.next_in or nil,
    contact = self.contact, binding = self.binding, contacts = self.contacts,
    call_id = self.call_id, cseq = self.cseq, keepalives = self.keepalives,
  }
end

--- Wait (in a coroutine) until the state is `state` (any state change
-- when nil), at most `seconds` (default: no limit).
-- @tparam[opt] string state
-- @tparam[opt] number seconds
-- @treturn[1] string the state
-- @return[2] nil
-- @treturn[2] string `"TIMEOUT: ..."`
function Client:wait(state, seconds)
  local co, main = co_running()
  if main then
    error("wait() must run inside a request handler or sip.spawn()", 2)
  end
  if state and self.state == state then
    return state
  end
  local done, timer = false, nil
  local resume = require("luasip.server").resume
  local function check()
    if done then
      return
    end
    if state and self.state ~= state then
      self.waiters[#self.waiters + 1] = check
      return
    end
    done = true
    if timer then
      timer:stop()
    end
    resume(co, self.state)
  end
  self.waiters[#self.waiters + 1] = check
  if seconds then
    timer = sip.timer(seconds, function()
      if not done then
        done = true
        resume(co, nil, "TIMEOUT: still " .. self.state .. " after " .. seconds .. " s")
      end
    end)
  end
  return co_yield()
end

--- Stop refreshing and remove our Contact at the registrar (a REGISTER
-- with Expires: 0, §10.2.2), in a coroutine. Waits for a REGISTER in
-- flight first. The state becomes `"unregistered"` (also when the
-- registrar failed: the final response tells).
-- @tparam[opt] table opts `{ all = true }`: `Contact: *` (every binding of
--   the AOR)
-- @treturn[1] Message the final response
-- @return[2] nil
-- @treturn[2] string error message
function Client:unregister(opts)
  local co, main = co_running()
  if main then
    error("unregister() must run inside a request handler or sip.spawn()", 2)
  end
  self.stopped = true
  self:_keepalive_stop()
  if self.timer then
    self.timer:stop()
    self.timer = nil
  end
  if self.busy then -- one REGISTER at a time: CSeq order
    local resume = require("luasip.server").resume
    self.idle_waiter = function()
      resume(co)
    end
    co_yield()
  end
  self:_set_state("unregistering")
  local res, err = self:_send(0, opts and opts.all and "*" or nil)
  self.expires = nil
  self:_set_state("unregistered", res, res == nil and err or nil)
  if not res then
    return nil, err
  end
  return res
end

--- Stop refreshing without sending anything (the binding at the
-- registrar then expires by itself); for a shutdown that cannot wait.
function Client:close()
  self.stopped = true
  self:_keepalive_stop()
  if self.timer then
    self.timer:stop()
    self.timer = nil
  end
end

--- Start again after `unregister` or `close` (a new REGISTER now).
function Client:restart()
  self.stopped = false
  self.failures = 0
  self:_set_state("registering")
  self:_schedule(0)
end

M.Client = Client

return M
