--- Requests outside dialogs for user agents: MESSAGE (RFC 3428) sent and
-- received, OPTIONS as a ping (RFC 3261 §11) and its default answer.
--
--     local message = require "luasip.ua.message"
--     -- in a coroutine (a handler, sip.spawn):
--     local res = message.message{ server = srv, to = "sip:bob@example.com",
--                                  from = "sip:alice@example.com", body = "hi" }
--     local res, err = message.ping("sip:bob@127.0.0.1:5070", { server = srv, timeout = 2 })
--     -- a script's methods:
--     methods = {
--       MESSAGE = message.handler(function(req, body, ctype) print(body) end),
--       OPTIONS = message.options_handler{ allow = { "INVITE", "MESSAGE" } },
--     }
-- @module luasip.ua.message
local sip = require "luasip"

local M = {}

local type, tostring, ipairs, pairs, error = type, tostring, ipairs, pairs, error
local concat, sort = table.concat, table.sort

local credentials_fn = require("luasip.auth").credentials

local function check_server(srv, what, lvl)
  if type(srv) ~= "userdata" then
    error(what .. ": server (a luasip.server) required", lvl + 1)
  end
  return srv
end

-- Send `req` over `srv`: the final response, or nil, err when no
-- transaction could start or (with `timeout` seconds) none came in time.
-- The transaction itself runs on (its Timer F ends it).
local function send(srv, req, opts)
  local sopts = nil
  if opts.credentials then
    sopts = { credentials = credentials_fn(opts.credentials, 3) }
  end
  if not opts.timeout then
    return srv:send(req, opts.dest, sopts)
  end
  local co = coroutine.running()
  local resume = require("luasip.server").resume
  local done = false
  local timer = sip.timer(opts.timeout, function()
    if not done then
      done = true
      resume(co, nil, "TIMEOUT: no final response within " .. opts.timeout .. " s", "TIMEOUT")
    end
  end)
  sip.spawn(function()
    local res, err, name = srv:send(req, opts.dest, sopts)
    if not done then
      done = true
      timer:stop()
      resume(co, res, err, name)
    end
  end)
  return coroutine.yield()
end

local function in_coroutine(what)
  local _, main = coroutine.running()
  if main then
    error(what .. "() must run inside a request handler or sip.spawn()", 3)
  end
end

--- Send a MESSAGE (RFC 3428 §4) outside any dialog and wait for its final
-- response (in a coroutine).
--
-- Fields of `t`: `server` (required), `to` (required: the recipient, also
-- the Request-URI unless `uri` is given), `from` (required), `body`
-- (required, a string; RFC 3428 limits a MESSAGE to 1300 bytes outside a
-- congestion-controlled transport: a larger one goes over TCP, §18.1.1),
-- `content_type` (`"text/plain"`), `uri`, `dest` (where to send, e.g. an
-- outbound proxy `"udp:127.0.0.1:5060"`; default the Request-URI),
-- `headers` (as `sip.request`), `credentials` (`function(realm,
-- challenge)` or `{ user =, password = }`: a 401/407 is answered),
-- `timeout` (seconds: stop waiting earlier than the transaction's 32 s).
-- @tparam table t
-- @treturn[1] Message the final response (a 2xx: accepted; 408 / 503 made
--   up on a transaction timeout or a transport error)
-- @return[2] nil
-- @treturn[2] string error message
-- @treturn[2] string error code name
function M.message(t)
  if type(t) ~= "table" then
    error("bad argument #1 to 'message' (table expected, got " .. type(t) .. ")", 2)
  end
  check_server(t.server, "message", 2)
  for _, k in ipairs({ "to", "from", "body" }) do
    if type(t[k]) ~= "string" then
      error("message: " .. k .. " (a string) required", 2)
    end
  end
  in_coroutine("message")
  local req, err, name = sip.request{
    method = "MESSAGE", uri = t.uri or (t.to:match("<(.-)>") or t.to), to = t.to, from = t.from,
    headers = t.headers, content_type = t.content_type or "text/plain", body = t.body,
  }
  if not req then
    return nil, err, name
  end
  return send(t.server, req, t)
end

-- "text/plain; charset=UTF-8" -> "text/plain"
local function media_type(ct)
  return ct and (ct:match("^%s*([^;%s]+)") or ""):lower() or nil
end

--- A MESSAGE handler for a script's `methods` (or `srv:on_request`):
-- `fn(req, body, content_type)` is called for each MESSAGE (it may wait)
-- and answers by returning a status code (`nil`: 200), a reason and
-- headers, or by replying itself. Before it: a MESSAGE whose media type
-- is not in `opts.accept` gets 415 with `Accept` (RFC 3428 §7; default:
-- any type).
-- @tparam function fn
-- @tparam[opt] table opts `{ accept = { "text/plain", ... } }`
-- @treturn function `function(req)`
function M.handler(fn, opts)
  if type(fn) ~= "function" then
    error("bad argument #1 to 'handler' (function expected, got " .. type(fn) .. ")", 2)
  end
  local accept = opts and opts.accept
  local accepted
  if accept then
    accepted = {}
    for _, a in ipairs(accept) do
      accepted[a:lower()] = true
    end
  end
  return function(req)
    if req.method ~= "MESSAGE" then
      return req:reply(405, nil, { Allow = "MESSAGE" })
    end
    local ctype = req:header("Content-Type")
    local body = req.body or ""
    if accepted and #body > 0 and not accepted[media_type(ctype) or ""] then
      return req:reply(415, nil, { Accept = concat(accept, ", ") })
    end
    local code, reason, headers = fn(req, body, ctype)
    if req:handled() then
      return
    end
    req:reply(code or 200, reason, headers)
  end
end

--- The default answer to OPTIONS (RFC 3261 §11.2): 200 with `Allow`,
-- `Accept`, `Accept-Encoding`, `Accept-Language` and `Supported`.
--
-- `opts.allow`: a list of methods, or a script's `methods` table (its
-- keys); `OPTIONS` is always listed (default: `ACK, BYE, CANCEL, INVITE,
-- MESSAGE, OPTIONS`). `opts.accept` (`{ "application/sdp", "text/plain"
-- }`), `opts.supported` (none).
-- @tparam Request req
-- @tparam[opt] table opts
-- @return what `req:reply` returns
function M.answer_options(req, opts)
  opts = opts or {}
  local allow = opts.allow
  local names = {}
  if allow == nil then
    names = { "ACK", "BYE", "CANCEL", "INVITE", "MESSAGE", "OPTIONS" }
  else
    local seen = {}
    local function add(m)
      m = tostring(m):upper()
      if not seen[m] then
        seen[m] = true
        names[#names + 1] = m
      end
    end
    if #allow > 0 then
      for _, m in ipairs(allow) do
        add(m)
      end
    else
      for m in pairs(allow) do
        add(m)
      end
    end
    add("OPTIONS")
    sort(names)
  end
  local headers = {
    { "Allow", concat(names, ", ") },
    { "Accept", concat(opts.accept or { "application/sdp", "text/plain" }, ", ") },
    { "Accept-Encoding", "identity" },
    { "Accept-Language", "en" },
  }
  if opts.supported and #opts.supported > 0 then
    headers[#headers + 1] = { "Supported", concat(opts.supported, ", ") }
  end
  return req:reply(200, nil, headers)
end

--- `M.answer_options` as a handler for a script's `methods.OPTIONS`.
-- @tparam[opt] table opts as `answer_options`
-- @treturn function `function(req)`
function M.options_handler(opts)
  return function(req)
    return M.answer_options(req, opts)
  end
end

--- Ping a SIP URI with OPTIONS (in a coroutine): the final response, any
-- status (a response at all says the peer is up), or nil when none came.
--
-- `opts`: `server` (required), `from` (default `sip:ping@invalid`),
-- `dest`, `headers`, `credentials`, `timeout` (seconds; default the
-- transaction's 32 s).
-- @tparam string uri
-- @tparam table opts
-- @treturn[1] Message the response
-- @return[2] nil
-- @treturn[2] string `"TIMEOUT: ..."`, or why no response came (a
--   transaction timeout, a transport error)
-- @treturn[2] string error code name
function M.ping(uri, opts)
  if type(uri) ~= "string" then
    error("bad argument #1 to 'ping' (string expected, got " .. type(uri) .. ")", 2)
  end
  if type(opts) ~= "table" then
    error("bad argument #2 to 'ping' (table with server= expected)", 2)
  end
  check_server(opts.server, "ping", 2)
  in_coroutine("ping")
  local req, err, name = sip.request{
    method = "OPTIONS", uri = uri, from = opts.from or "sip:ping@invalid", to = uri,
    headers = opts.headers or { Accept = "application/sdp" },
  }
  if not req then
    return nil, err, name
  end
  local res
  res, err, name = send(opts.server, req, opts)
  if not res then
    return nil, err, name
  end
  if type(res.source) ~= "function" then -- made up here: no response came
    return nil, string.format("NORESPONSE: %d %s", res.status, res.reason), "NORESPONSE"
  end
  return res
end

return M
