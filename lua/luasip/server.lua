--- The server object: listeners, request sanity checks, request handlers.
--
--     local sip = require "luasip"
--     local srv = assert(sip.server{ listen = { "udp:127.0.0.1:5060", "tcp:127.0.0.1:5060" } })
--     srv:on_request(function(req) req:reply(200) end)
--     srv:run()
--
-- Before a handler sees a request, the C core applies the checks of RFC
-- 3261 §8.2 and §16.3 (see `sanity` below) and answers failures itself:
-- 505 for another SIP version, 400 for missing, repeated or malformed
-- mandatory headers, a CSeq method that does not match, a Content-Length
-- that does not match the body, 416 for an unsupported Request-URI scheme,
-- 420 with `Unsupported` for unknown extensions in `Require`. A request too
-- broken to parse but with enough headers to answer gets 400 with a reason
-- that names the problem; anything else is dropped. Every answer and drop
-- is counted in `srv:stats()`.
--
-- Each request's handler runs in its own coroutine. An error in it is
-- logged with its traceback and answered with `500`; a handler that ends
-- without a final reply (and without `req:drop()`) gets a `500` too, with
-- a log line saying so. The server keeps serving either way.
-- @module luasip.server
local core = require "luasip.core"
local log = require "luasip.log"

local Server = core.Server
local co_create, co_resume, co_status = coroutine.create, coroutine.resume, coroutine.status
local co_running, co_yield = coroutine.running, coroutine.yield
local sethook = debug.sethook
local script_error, script_failed = core.script_error, core.script_failed
local setmetatable, type, ipairs, pairs, error = setmetatable, type, ipairs, pairs, error
local handler_enter, handler_leave = core.handler_enter, core.handler_leave
local memory_refusals = core.memory_refusals

local M = {}

-- Lua-side state of a server (the C userdata holds no Lua fields).
local state = setmetatable({}, { __mode = "k" })

local function log_sink(level, text)
  log.write(level, text)
end

-- every line the C side logs (script errors caught by its protected call,
-- with their tracebacks) goes through luasip.log: text or JSON
core.set_log_handler(log_sink)

-- The request each handler coroutine serves (nil for sip.spawn ones).
local served = setmetatable({}, { __mode = "k" })

-- Instructions a handler may run between two waits (0: no limit).
local budget = 0

local function over_budget()
  error(string.format("instruction budget exceeded (%d instructions without waiting)", budget), 2)
end

-- Request handlers run in reused coroutines (workers): a new thread per
-- request costs its stack and call frames, about ten allocations, and their
-- collection. A worker runs one handler, then parks: it yields PARKED and
-- starts its next handler only when resumed with RUN. A late resume of a
-- parked worker (a wake-up for a handler that has finished) finds it
-- parked and leaves it so. A worker whose handler raised is dead and not
-- reused.
local PARKED, RUN = {}, {}
local parked, parked_n = {}, 0
local PARKED_MAX = 64

local function worker(fn, req)
  while true do
    fn(req)
    -- a parked worker keeps nothing alive (its stack would hold them)
    fn, req = nil, nil -- luacheck: ignore 311
    local tag
    repeat
      tag, fn, req = co_yield(PARKED)
    until tag == RUN
  end
end

-- Resume a handler coroutine and apply the rules for how it ends: an error
-- goes to core.script_error (traceback, log line, count) and
-- core.script_failed (the 500 decision); a handler that finishes
-- without a final reply or req:drop() gets a 500 too. Between two waits it
-- has the instruction budget and the handler memory budget.
local function resume(co, ...)
  if budget > 0 then
    sethook(co, over_budget, "", budget)
  end
  local refused = memory_refusals()
  local ceiling, slack = handler_enter()
  local ok, err = co_resume(co, ...)
  handler_leave(ceiling, slack)
  local req = served[co]
  local finished = co_status(co) == "dead"
  if ok and err == PARKED then
    finished = true
    if req then -- its handler is done: the worker waits for the next one
      served[co] = nil
      if parked_n < PARKED_MAX then
        parked_n = parked_n + 1
        parked[parked_n] = co
      end
    end
  end
  if not ok then
    -- the C side's one path: traceback, log line, count, then the 500
    err = M.memory_error(err, refused)
    script_error(err, co, req and req.method .. " handler failed" or "task failed (sip.spawn / sip.timer)")
    if req then
      script_failed(req)
    end
  elseif req and finished and req.method ~= "ACK" and not req:handled() then
    -- a relayed request: the best response of its last round goes upstream
    if req:finish() then
      return
    end
    log.warn("%s handler returned without a final reply: answered 500", req.method)
    req:reply(500, "Server Internal Error (no reply from the script)")
  end
end

--- A count to give `memory_error` later: allocations refused by handler
-- memory budgets so far.
-- @function memory_refusals
M.memory_refusals = memory_refusals

--- `err`, naming the handler memory budget when it is Lua's memory error
-- and a budget refused an allocation since `mark` (a `memory_refusals()`
-- value); other errors unchanged.
-- @param err an error value
-- @tparam integer mark
-- @return err
function M.memory_error(err, mark)
  if type(err) == "string" and err:find("^not enough memory") and memory_refusals() ~= mark then
    local _, _, budget_bytes = core.memory()
    return (err:gsub("^not enough memory", string.format(
      "not enough memory (the handler memory budget: %d bytes between two waits)", budget_bytes), 1))
  end
  return err
end

--- Create a server.
--
-- Options (all optional):
--
-- - `listen`: a spec or a list of specs: `"udp:127.0.0.1:5060"`,
--   `"tcp:[::1]:5060"`, `"tls:0.0.0.0:5061"`, `"ws:127.0.0.1:8080"`,
--   `"wss:127.0.0.1:8443"` (numeric addresses; port 0
--   picks a free port, see `srv:listener(id)`)
-- - `tls = { cert =, key =, ca =, verify_peer = true, verify_client =
--   false }`: PEM files; a `tls:` listener needs `cert` and `key`
-- - limits: `max_size` (65535 bytes), `max_headers` (256), `max_line`
--   (16384), `max_connections` (1024), `max_conn_buffer`,
--   `max_write_queue` (4 MiB), `udp_rcvbuf` (4 MiB)
-- - timeouts in milliseconds: `idle_timeout` (120000), `partial_timeout`
--   (10000: a peer that sends half a message and stops),
--   `connect_timeout` (10000)
-- - `tcp_accept_aliases` (false): honour `;alias` (RFC 5923) in Via over
--   TCP too; over TLS an alias is taken only from a client whose verified
--   certificate names the Via's sent-by host (`tls.verify_client`)
-- - `sanity`: `false` turns every check off; a table switches single
--   checks (`version`, `required`, `cseq`, `content_length`, `scheme`,
--   `require`, `proxy_require`, `max_forwards`, `fields`: booleans; all on
--   except `proxy_require`) and sets `supported` (option tags this server
--   supports, for Require) and `schemes` (default `{"sip", "sips", "tel"}`)
-- - `server_header` (`"luasip/<version>"`): the Server header of every
--   response luasip makes itself (replies, sanity rejects, 100 Trying, the
--   proxy's own 408/483/..., the registrar's answers); `false` leaves it
--   out (to hide the software). Responses relayed from elsewhere are not
--   touched.
-- - `user_agent` (`"luasip/<version>"`): the User-Agent header of the
--   requests `srv:send` originates, unless they have their own; `false`
--   leaves it out
-- - WebSocket (`ws:` and `wss:` listeners, RFC 7118; `wss:` needs
--   `tls.cert` and `tls.key`): `ws_origins` (a list, or a string of
--   origins separated by spaces: the `Origin` values accepted, others get
--   403; default: any), `http_root` (a folder: a GET without Upgrade on a
--   WebSocket port serves its files, GET only, nothing outside it;
--   default: 404), `ws_ping_interval` (30000 ms: a WebSocket with nothing
--   received for that long gets a ping; 0: none). The handshake must come
--   within `connect_timeout`; frames and messages are limited to `max_size`
-- - `start = false`: do not open the listeners yet (see `srv:start()`)
-- @tparam[opt] table opts
-- @treturn[1] Server
-- @return[2] nil
-- @treturn[2] string error message (`"listen udp:...: address already in use"`)
-- @treturn[2] string error code name
function M.new(opts)
  opts = opts or {}
  if type(opts) ~= "table" then
    error("bad argument #1 to 'server' (table expected, got " .. type(opts) .. ")", 2)
  end
  local listen = opts.listen or {}
  if type(listen) == "string" then
    listen = { listen }
  end
  if opts.server_header == nil or opts.server_header == true or opts.user_agent == nil
    or opts.user_agent == true then
    local copy = {}
    for k, v in pairs(opts) do
      copy[k] = v
    end
    local product = M.product()
    if copy.server_header == nil or copy.server_header == true then
      copy.server_header = product
    end
    if copy.user_agent == nil or copy.user_agent == true then
      copy.user_agent = product
    end
    opts = copy
  end
  if type(opts.ws_origins) == "table" then
    local copy = {}
    for k, v in pairs(opts) do
      copy[k] = v
    end
    copy.ws_origins = table.concat(opts.ws_origins, " ")
    opts = copy
  end
  local srv, err, name = core.server(opts)
  if not srv then
    return nil, err, name
  end
  srv:set_log_handler(log_sink)
  state[srv] = { listen = listen, ids = {} }
  if opts.start ~= false then
    local ok, lerr, lname = srv:start()
    if not ok then
      srv:close()
      return nil, lerr, lname
    end
  end
  return srv
end

--- The default Server / User-Agent value: `"luasip/<version>"`.
-- @treturn string
function M.product()
  local v = require("luasip")._VERSION
  return "luasip/" .. (v:match("(%S+)$") or v)
end

--- Open the listeners given at creation (when created with `start =
-- false`); the server is then served whenever the luasip loop runs:
-- `srv:run()`, `sip.run()`, or `sip.step()` from a host's own loop.
-- @treturn[1] Server self
-- @return[2] nil
-- @treturn[2] string error message
-- @treturn[2] string error code name
function Server:start()
  local st = state[self]
  for i, spec in ipairs(st.listen) do
    if not st.ids[i] then
      local id, err, name = self:listen(spec)
      if not id then
        return nil, err, name
      end
      st.ids[i] = id
    end
  end
  return self
end

--- The open listeners as specs with their actual ports:
-- `{ "udp:127.0.0.1:5060", "tcp:[::1]:40312" }` (a port 0 given to
-- `listen` shows as the port the system chose).
-- @treturn table
function Server:listeners()
  local out = {}
  for _, id in ipairs(state[self].ids) do
    local l = self:listener(id)
    if l then
      local host = l.host:find(":", 1, true) and "[" .. l.host .. "]" or l.host
      out[#out + 1] = string.format("%s:%s:%d", l.transport:lower(), host, l.port)
    end
  end
  return out
end

--- Close the listeners and connections. Inside `srv:run()`, makes it return.
function Server:stop()
  local st = state[self]
  self:close()
  if st and st.running then
    core.stop()
  end
end

--- Serve until `srv:stop()` (or `sip.stop()`).
-- @treturn Server self
function Server:run()
  local st = state[self]
  st.running = true
  local ok, err = pcall(core.run)
  st.running = false
  if not ok then
    error(err, 2)
  end
  return self
end

--- Set the request handler: `fn(req)` runs in its own coroutine for every
-- request that passed the sanity checks, and may yield (to wait for a
-- response, a timer, a database).
-- @tparam function fn
-- @treturn Server self
function Server:on_request(fn)
  if type(fn) ~= "function" then
    error("bad argument #1 to 'on_request' (function expected, got " .. type(fn) .. ")", 2)
  end
  self:set_request_handler(function(req)
    if parked_n > 0 then
      local co = parked[parked_n]
      parked[parked_n] = nil
      parked_n = parked_n - 1
      served[co] = req
      resume(co, RUN, fn, req)
    else
      local co = co_create(worker)
      served[co] = req
      resume(co, fn, req)
    end
  end)
  return self
end

-- One client transaction to `dest`: the final response and whether the
-- transaction made it up (a timeout or a transport error), or nil, err,
-- name when it could not start.
local function send_one(self, co, req, dest, opts, tls_name)
  local on_provisional = opts and opts.on_provisional
  local on_2xx = opts and opts.on_2xx
  local waiter, sent = co, req
  -- the transaction keeps this callback until it ends (an INVITE's 64*T1
  -- after a 2xx, for on_2xx): once the final response is in, it lets go
  -- of the waiting coroutine, the request and the 1xx hook (and what they
  -- hold: a caller's per-call state)
  local branch, err, name = self:request(req, dest, function(status, res)
    if status < 200 then
      if on_provisional then
        on_provisional(res)
      end
    elseif waiter then
      local w, r = waiter, sent
      waiter, sent, on_provisional = nil, nil, nil
      resume(w, res or r:response(status), res == nil)
    elseif on_2xx and status < 300 then
      on_2xx(res)
    end
  end, tls_name)
  if not branch then
    return nil, err, name
  end
  if opts and opts.on_start then
    opts.on_start(branch, req)
  end
  return co_yield()
end

-- A next hop that is a host name: its targets (RFC 3263 §4), tried in
-- order; a transport error, a timeout or a 503 moves the request to the
-- next one with a new branch (§4.3), and the failed target is avoided for
-- a while. No target: a 404 (no such domain / no SIP service) or a 503
-- (the DNS servers failed or did not answer), made up.
local function send_resolved(self, co, req, hop, opts)
  local dns = require "luasip.dns"
  local targets, err, name = dns.resolve(hop)
  if not targets then
    if name == "EAI_NONAME" then
      return req:response(404, "Not Found (DNS: " .. err .. ")")
    end
    return req:response(503, "Service Unavailable (DNS: " .. err .. ")")
  end
  local last, serr, sname
  for i, t in ipairs(targets) do
    if i > 1 then
      dns.count_failover()
    end
    local res, made_up, name2 = send_one(self, co, req, t.dest, opts, t.tls_name)
    if res then
      if not dns.should_failover(res, made_up) then
        return res
      end
      last = res
      dns.failed(t, res)
    else
      serr, sname = made_up, name2 -- this target cannot be used here
      dns.failed(t)
    end
  end
  if last then
    return last
  end
  return nil, serr, sname
end

--- Send a request and wait for its final response (a client transaction,
-- RFC 3261 §17.1). Call it from a request handler or a `sip.spawn`
-- coroutine: it yields until the final response, and the loop keeps
-- serving meanwhile.
--
-- The request goes to `dest` (`"udp:127.0.0.1:5070"`), or when `dest` is
-- nil to the next hop (the first Route if it has `lr`, else the
-- Request-URI), over the transport the URI names (§18.1.1: a UDP request
-- over 1300 bytes goes over TCP). A next hop whose host is a name is
-- located by RFC 3263 (`luasip.dns`): its targets are tried in order, and
-- a transport error, a timeout or a 503 moves the request to the next
-- target with a new branch (§4.3; the failed target is tried last for a
-- while, a 503's Retry-After long). A name that does not exist (or has no
-- SIP service) gives a made-up 404, a DNS failure a 503.
-- The transaction adds a top Via with a new branch; `req` itself is not
-- changed, so it can be sent again. Retransmissions and timeouts are the
-- transaction's: Timer B/F expiry gives a 408, a transport failure a 503
-- (made-up responses built from the request).
-- @tparam Message req a request (not ACK)
-- @tparam[opt] string dest
-- @tparam[opt] table opts `on_provisional = function(res)` for 1xx;
--   `on_2xx = function(res)` for further 2xx of an INVITE (forks and
--   retransmissions: the caller sends the ACK for each);
--   `on_start = function(branch, req)` once the client transaction started
--   (`srv:cancel(req, branch)` cancels an INVITE);
--   `credentials = function(realm, challenge)` returning `user, password`:
--   a 401/407 is answered once per realm (`luasip.auth.send`; the
--   request that got the final response is then the second result)
-- @treturn[1] Message the final response
-- @return[2] nil
-- @treturn[2] string error message (no route, no listener, ...)
-- @treturn[2] string error code name
function Server:send(req, dest, opts)
  local co, main = co_running()
  if main then
    error("srv:send() must run inside a request handler or sip.spawn()", 2)
  end
  if opts and opts.credentials then -- digest: answer 401/407 (luasip.auth)
    return require("luasip.auth").send(self, req, dest, opts)
  end
  if dest == nil then
    local hop, _, numeric = core.dns_next_hop(req)
    if hop and not numeric then
      return send_resolved(self, co, req, hop, opts)
    end
  end
  local res, err, name = send_one(self, co, req, dest, opts)
  if res then
    return res
  end
  return nil, err, name
end

--- Resume a coroutine that waits in a waiting function (a store, a
-- database) with the values it returns, under the same rules as a request
-- handler: the instruction budget applies, an error is logged with its
-- traceback and the request answered 500, a handler that ends without a
-- final reply gets 500. Modules that wait on events of their own (a
-- database reply, a DNS answer) resume their callers with it.
-- @tparam thread co
-- @function resume
M.resume = resume

--- Run `fn(...)` in a new coroutine now (it may call `srv:send` and other
-- waiting functions); errors are logged with their traceback.
-- @tparam function fn
-- @return the coroutine
function M.spawn(fn, ...)
  if type(fn) ~= "function" then
    error("bad argument #1 to 'spawn' (function expected, got " .. type(fn) .. ")", 2)
  end
  local co = co_create(fn)
  resume(co, ...)
  return co
end

local function milliseconds(seconds, what, lvl)
  if type(seconds) ~= "number" or seconds < 0 or seconds ~= seconds then
    error(string.format("bad %s (seconds >= 0 expected, got %s)", what, tostring(seconds)), lvl + 1)
  end
  return math.floor(seconds * 1000 + 0.5)
end

--- Run `fn()` in its own coroutine after `seconds` (like `spawn`: it may
-- wait, and an error is logged with its traceback).
--
-- Options: `interval` (seconds) repeats it at that period; `background =
-- true` keeps the timer from holding `sip.run()` open on its own (for
-- housekeeping such as expiry sweeps).
-- @tparam number seconds
-- @tparam function fn
-- @tparam[opt] table opts `{ interval = s, background = true }`
-- @return a handle: `h:stop()`, `h:active()`
function M.timer(seconds, fn, opts)
  local delay = milliseconds(seconds, "delay", 2)
  if type(fn) ~= "function" then
    error("bad argument #2 to 'timer' (function expected, got " .. type(fn) .. ")", 2)
  end
  local interval = opts and opts.interval and milliseconds(opts.interval, "interval", 2) or 0
  local h = assert(core.timer(delay, interval, function()
    M.spawn(fn)
  end))
  if opts and opts.background then
    h:unref()
  end
  return h
end

--- Wait `seconds` (inside a request handler or a `spawn` coroutine); the
-- loop serves other requests meanwhile.
-- @tparam number seconds
function M.sleep(seconds)
  local ms = milliseconds(seconds, "delay", 2)
  local co, main = co_running()
  if main then
    error("sleep() must run inside a request handler or sip.spawn()", 2)
  end
  assert(core.timer(ms, 0, function()
    resume(co)
  end))
  co_yield()
end

local c_stats = Server.stats

--- Counters of the server (transport, sanity, transactions, proxy; see
-- the README) and of the resolver: `dns_lookups`, `dns_cache_hits`,
-- `dns_cache_misses`, `dns_failures`, `dns_timeouts`, `dns_failovers`,
-- `dns_avoided`, `dns_cache_entries`, ... (`luasip.dns.stats`, shared by
-- the servers of the Lua state).
-- @treturn table
function Server:stats()
  local t = c_stats(self)
  for k, v in pairs(core.dns_stats()) do
    t["dns_" .. k] = v
  end
  return t
end

--- Set the handler of responses that reach the server: `fn(res)`.
-- Without one, they are dropped and counted (`responses_dropped`).
-- @tparam function fn
-- @treturn Server self
function Server:on_response(fn)
  self:set_response_handler(fn)
  return self
end

--- Limits that keep one script from taking the server down.
--
-- `instructions`: Lua instructions a handler may run between two waits
-- (`srv:send`, ...) before it is stopped with an error (logged, answered
-- 500); 0 turns it off. `memory`: bytes the whole Lua state may use;
-- beyond it the allocation that crosses it fails with "not enough memory"
-- in the script that made it (a 500 for that request), never a crash; 0
-- turns it off. `handler_memory`: bytes a handler (or a `spawn`/`timer`
-- task) may add to the state between two waits, counted from where it was
-- resumed, after garbage is collected; the allocation that crosses it
-- fails the same way. It stops a runaway handler within milliseconds,
-- long before the state's limit; 0 turns it off. (`luasip run` sets
-- 10,000,000 instructions, 1 GiB and 16 MiB unless told otherwise.)
-- @tparam table t `{ instructions = n, memory = bytes, handler_memory = bytes }`
-- @treturn[1] boolean true
-- @return[2] nil
-- @treturn[2] string error message (a memory limit below what is in use)
function M.set_limits(t)
  if t.instructions ~= nil then
    if type(t.instructions) ~= "number" or t.instructions < 0 or t.instructions % 1 ~= 0 then
      error("instructions must be a non-negative integer", 2)
    end
    budget = t.instructions
  end
  if t.memory ~= nil then
    local ok, err, name = core.set_memory_limit(t.memory)
    if not ok then
      return nil, err, name
    end
  end
  if t.handler_memory ~= nil then
    if type(t.handler_memory) ~= "number" or t.handler_memory < 0 or t.handler_memory % 1 ~= 0 then
      error("handler_memory must be a non-negative integer", 2)
    end
    local ok, err, name = core.set_handler_memory(t.handler_memory)
    if not ok then
      return nil, err, name
    end
  end
  return true
end

--- Run the luasip loop until `sip.stop()` or until nothing is left.
-- @function run
M.run = core.run

--- One non-blocking iteration of the loop (for hosts with their own loop).
-- @function step
M.step = core.step

--- Make the running `run()` return.
-- @function stop
M.stop = core.stop

return M
