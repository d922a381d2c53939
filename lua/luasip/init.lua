--- SIP (RFC 3261) messages and URIs for Lua.
--
-- The public module wraps the private C module `luasip.core`: parsing is
-- zero-copy (a message keeps its input string alive and makes Lua strings
-- only for the fields a script reads), edits are recorded and serialized
-- with every untouched header line written back byte for byte.
--
-- Errors follow one convention: an expected failure (malformed input, an
-- incomplete stream) returns `nil, "NAME: message", "CODE"`, for example
-- `nil, "PARSE: start line at byte 0: malformed start line", "STARTLINE"`;
-- misuse (a wrong argument type) raises.
--
--     local sip = require "luasip"
--     local msg, err = sip.parse(bytes)
--     print(msg.method, msg.from.tag, msg.via[1].branch)
--
-- @module luasip
local core = require "luasip.core"

local concat = table.concat
local format, lower = string.format, string.lower
local type, tostring, error, ipairs, pairs = type, tostring, error, ipairs, pairs
local getmetatable = getmetatable
local sort = table.sort

local M = {}

M._VERSION = "luasip 0.1"

--- Methods of `luasip.Message` objects (C methods from `luasip.core` plus
-- the Lua ones defined here). Adding a function here adds a method.
-- @table Message
M.Message = core.Message

--- Methods of `luasip.Request` objects, the requests a `luasip.server`
-- received (C methods from `luasip.core` plus the Lua ones defined here and
-- in `luasip.proxy`): `reply`, `answered`, `drop`, `handled`,
-- `is_cancelled`, `source`, the proxy's. A request also has every
-- `luasip.Message` method; a message from `sip.parse` has none of these.
-- Adding a function here adds a method.
-- @table Request
M.Request = core.Request

--- Methods of `luasip.Response` objects, the responses a `luasip.server`
-- received (relay hooks, `srv:send` results): `source`, and every
-- `luasip.Message` method.
-- @table Response
M.Response = core.Response

--- Methods of `luasip.URI` objects.
-- @table URI
M.URI = core.URI

--- Error codes by name: `sip.E.NEEDMORE`, `sip.E.CSEQ`, ...
-- @table E
M.E = core.E

local Message = core.Message
local Request = core.Request

--- A parsed SIP message (`luasip.Message` userdata).
--
-- Fields (read lazily; a Lua string or table is made only when read, tables
-- are cached until the next edit; a malformed field reads as nil, and
-- `msg:get(name)` returns `nil, err, code` for it):
--
-- - `is_request` (boolean), `version` (`"SIP/2.0"` as written),
--   `start_line`
-- - requests: `method`, `uri` (Request-URI text), `ruri` (a `luasip.URI`,
--   independent of the message's lifetime)
-- - responses: `status` (integer), `reason` (may be `""`)
-- - `call_id`, `cseq` (integer), `cseq_method`, `max_forwards`, `expires`
--   (integers)
-- - `from`, `to`: `{display=, display_raw=, uri=, tag=, params=, raw=,
--   params_raw=}` (`display` is unquoted with quoted-pairs resolved;
--   `params` keyed by lower-cased name, `true` for a bare name)
-- - `via`: list, top first, of `{protocol=, version=, transport=, host=,
--   port=, branch=, received=, rport=, maddr=, ttl=, params=, raw=}`
--   (`rport` is an integer, or `true` without a value); `{}` when absent
-- - `contacts`, `routes`, `record_routes`, `paths`: lists of `{display=,
--   uri=, params=, q=, expires=, tag=, raw=}`; `contacts.star == true` for
--   `Contact: *`; `{}` when absent
-- - `content_type` (`"type/subtype"`), `ctype` (`{type=, subtype=,
--   params=, boundary=}`), `body` (string), `has_content_length`
--
-- Assignable: `msg.uri = text` (Request-URI), `msg.body = bytes`
-- (Content-Length follows).
--
-- Methods implemented in C: `header(name)` (first line's value, folds
-- unfolded; long or compact name, any case), `headers(name[, split])`
-- (all values; list headers split at top-level commas unless `split` is
-- false), `count(name)`, `header_names()`, `set_header(name, value)`
-- (first instance replaced, others removed, appended when absent),
-- `add_header(name, value[, "first"|"last"])`, `remove_header(name)`
-- (returns the count), `push_via(value)`, `pop_via()` (returns the removed
-- value), `set_status(code[, reason])`, `auth([name[, n]])` (`{scheme=,
-- params=}`), `parts()` (`{content_type=, headers=, body=}` list),
-- `get(field)`, `size()`, `close()`, `is_closed()`. `tostring(msg)` gives
-- the wire bytes: the input itself while unchanged. `__close` and `__gc`
-- free the message (safe twice); a closed message raises when used.
-- @type Message

-- ---------------------------------------------------------------------------
-- Parsing
-- ---------------------------------------------------------------------------

--- Parse one SIP message.
--
-- Datagram mode (the default): `bytes` is one UDP datagram; octets after the
-- body are ignored (RFC 3261 §18.3) and a message without Content-Length has
-- the rest of the datagram as body.
--
-- Stream mode (`opts.stream = true`): `bytes` is what a TCP/TLS connection
-- has delivered; returns the message and the number of bytes it used (the
-- rest belongs to the next message), or `nil, "NEEDMORE: ...", "NEEDMORE"`
-- while incomplete. `opts.pos` (1-based, default 1) starts parsing inside
-- the buffer without copying it.
--
-- Limits: `opts.max_size` (whole message, default 65535),
-- `opts.max_headers` (header lines, default 256), `opts.max_line` (one line
-- including folds, default 16384).
--
-- Only the framing is checked here (start line, header boundaries,
-- Content-Length, body); header grammars are parsed lazily. Use
-- `msg:validate()` to check every field a server relies on.
--
-- @tparam string bytes the message
-- @tparam[opt] table opts `stream`, `pos`, `max_size`, `max_headers`, `max_line`
-- @treturn[1] Message the message
-- @treturn[1] integer bytes consumed (stream mode only)
-- @return[2] nil
-- @treturn[2] string `"PARSE: <what> at byte N: <why>"` or `"NEEDMORE: ..."`
-- @treturn[2] string the error code name (`"STARTLINE"`, `"CLEN"`, ...)
-- @function parse
M.parse = core.parse -- no wrapper: this is the hot path of every server

--- Parse a URI.
--
-- The result is a `luasip.URI` with fields `scheme`, `user` (decoded: `%HH`
-- escapes resolved once, may contain NUL), `user_raw` (as written),
-- `password`, `password_raw`, `host` (IPv6 keeps its brackets), `port`
-- (integer or nil), `params` (lower-cased name -> decoded value, `true`
-- for a parameter without value), `headers` (same for `?h=v`),
-- `transport`, `maddr`, `user_param`, `method`, `ttl`, `lr` (boolean),
-- `kind` (`"sip"`, `"sips"`, `"tel"`, `"other"`), `host_type` (`"name"`,
-- `"ipv4"`, `"ipv6"`), `opaque` (other schemes), `raw`.
-- `u1 == u2` compares per RFC 3261 §19.1.4; `tostring(u)` is the raw text.
--
-- @tparam string text the URI, exactly (no angle brackets, no LWS)
-- @treturn[1] URI
-- @return[2] nil
-- @treturn[2] string error message
-- @treturn[2] string error code name (`"URI"`, `"RANGE"`)
function M.uri(text)
  if type(text) ~= "string" then
    error("bad argument #1 to 'uri' (string expected, got " .. type(text) .. ")", 2)
  end
  return core.uri(text)
end

--- The name of an error code (`"NEEDMORE"`, ...; `"UNKNOWN"` otherwise).
-- @tparam integer code a negative error code
-- @treturn string
-- @function errname
M.errname = core.errname

--- The message of an error code.
-- @tparam integer code a negative error code
-- @treturn string
-- @function strerror
M.strerror = core.strerror

--- The canonical spelling of a header name (`"v"` -> `"Via"`), nil when the
-- parser does not know the header.
-- @tparam string name long or compact form, any case
-- @treturn string|nil
-- @function header_name
M.header_name = core.header_name

--- Whether a header is a comma-separated list (RFC 3261 §7.3.1).
-- @tparam string name
-- @treturn boolean
function M.is_list_header(name)
  return core.header_flags(name) & core.HF_LIST ~= 0
end

--- Split a header value at top-level commas (outside quotes and `<>`).
-- @tparam string value
-- @treturn[1] {string,...} the items, LWS-trimmed, empty ones dropped
-- @return[2] nil
-- @treturn[2] string error message
-- @treturn[2] string error code name
function M.split(value)
  return core.split(value)
end

-- ---------------------------------------------------------------------------
-- Identifiers
-- ---------------------------------------------------------------------------

-- Seeded from the operating system's random source, unlike math.random.
local function rand_hex(nbytes)
  return core.random_hex(2 * nbytes)
end

--- A new random tag (RFC 3261 §19.3: at least 32 bits of randomness), in
-- the one format of every tag luasip makes (the C layers' too).
-- @function new_tag
-- @treturn string 16 hex digits (64 random bits)
M.new_tag = core.new_tag

--- A new branch with the RFC 3261 magic cookie `z9hG4bK` (§8.1.1.7).
-- @treturn string
function M.new_branch()
  return "z9hG4bK" .. rand_hex(10)
end

--- A new Call-ID (§8.1.1.4).
-- @tparam[opt] string host appended after `@` when given
-- @treturn string
function M.new_call_id(host)
  local id = rand_hex(16)
  if host then
    return id .. "@" .. host
  end
  return id
end

-- ---------------------------------------------------------------------------
-- Reason phrases (RFC 3261 §21 and common extensions)
-- ---------------------------------------------------------------------------

--- The reason phrase for a status code: RFC 3261 §21 and the codes of
-- later RFCs in common use; for another code of 100..699 the phrase of its
-- class (`"Client Error"` for 499).
-- @tparam integer code 100..699
-- @treturn string
-- @function reason_phrase
M.reason_phrase = core.reason_phrase

-- ---------------------------------------------------------------------------
-- Lua-side Message methods
-- ---------------------------------------------------------------------------

-- The fields validate() reads, in order: what a server must read before
-- acting on a message.
local request_fields = {
  "ruri", "via", "from", "to", "call_id", "cseq", "max_forwards",
  "contacts", "expires",
}
local response_fields = {
  "via", "from", "to", "call_id", "cseq", "contacts", "expires",
}

--- Parse every field a server must read (Request-URI, Via, From, To,
-- Call-ID, CSeq, Max-Forwards, Contact, Expires) and report the first
-- malformed one. Absent headers are not an error here (that is a semantic
-- check: see RFC 3261 §8.2).
-- @function Message:validate
-- @treturn[1] boolean true
-- @return[2] nil
-- @treturn[2] string `"PARSE: CSeq at byte N: value out of range"`
-- @treturn[2] string the error code name
function Message.validate(self)
  local fields = self.is_request and request_fields or response_fields
  for _, f in ipairs(fields) do
    local v, err, name = self:get(f)
    if v == nil and err then
      return nil, err, name
    end
  end
  return true
end

--- A copy of the message as it would be serialized now (a new parse).
-- @function Message:copy
-- @treturn Message
function Message.copy(self)
  return core.parse(tostring(self))
end

local function check_code(code, lvl)
  if type(code) ~= "number" or code ~= code // 1 or code < 100 or code > 699 then
    error("bad status code " .. tostring(code) .. " (100..699 expected)", lvl + 1)
  end
end

local function check_line(v, what, lvl)
  if type(v) ~= "string" then
    error(what .. " must be a string, got " .. type(v), lvl + 1)
  end
  if v:find("[\r\n]") then
    error(what .. " contains a line break", lvl + 1)
  end
  return v
end

--- Build a response to this request (RFC 3261 §8.2.6).
--
-- Copies every Via line (same values, same order), From, To, Call-ID and
-- CSeq; adds a random To tag when the request's To has none and
-- `code > 100`; copies Timestamp into a 100 (§8.2.6.1); ends with
-- `Content-Length: 0`. Headers are written with their canonical names.
-- @function Message:response
-- @tparam integer code 100..699
-- @tparam[opt] string reason default `sip.reason_phrase(code)`
-- @treturn[1] Message the response
-- @return[2] nil
-- @treturn[2] string error message when the request's headers do not form
--   a parsable response
-- @treturn[2] string error code name
function Message.response(self, code, reason)
  if not self.is_request then
    error("response() needs a request", 2)
  end
  check_code(code, 2)
  reason = check_line(reason or M.reason_phrase(code), "reason", 2)
  -- built in C (sip_reply.c), as every response luasip makes
  local text, err, name = core.response_text(self, code, reason)
  if not text then
    return nil, err, name
  end
  return core.parse(text)
end

-- ---------------------------------------------------------------------------
-- Building requests
-- ---------------------------------------------------------------------------

-- "Alice <sip:a@x>" stays; a bare URI is put in <> so that parameters we
-- add (tag) are header parameters, never URI parameters.
local function addr(v, what)
  if type(v) ~= "string" then
    v = tostring(v)
  end
  check_line(v, what, 3)
  if not v:find("<", 1, true) then
    v = "<" .. v .. ">"
  end
  return v
end

local function has_param(v, name)
  local after = v:match(">([^>]*)$") or v
  return lower(after):find(";%s*" .. name .. "%s*=") ~= nil
end

local function list(v)
  if type(v) == "table" and getmetatable(v) == nil then
    return v
  end
  return { v }
end

-- Header lines from a list of `{name, value}` pairs (kept in order) or a
-- map name -> value or list of values (written in name order).
local function add_header_lines(out, h, lvl)
  lvl = lvl + 1
  if #h > 0 then
    for _, pair in ipairs(h) do
      out[#out + 1] = check_line(pair[1], "header name", lvl) .. ": "
        .. check_line(pair[2], "header value", lvl)
    end
    return out
  end
  local names = {}
  for k in pairs(h) do
    names[#names + 1] = k
  end
  sort(names)
  for _, k in ipairs(names) do
    for _, v in ipairs(list(h[k])) do
      out[#out + 1] = check_line(k, "header name", lvl) .. ": "
        .. check_line(tostring(v), "header value", lvl)
    end
  end
  return out
end

--- Build a request and parse it.
--
-- Fields of `t`: `method` and `uri` (required); `from`, `to` (name-addr or
-- URI; a bare URI is wrapped in `<>`; `to` defaults to `uri`); `call_id`
-- (generated when absent); `cseq` (default 1); `via` (a value or a list;
-- each gets a generated `branch` with the `z9hG4bK` cookie when it has
-- none; no Via header when absent: the transport adds it); `contact` (a
-- value or a list); `max_forwards` (default 70); `headers` (a list of
-- `{name, value}` pairs in order, or a map name -> value or list of
-- values, written in name order); `content_type`; `body`.
-- A From tag is generated when `from` has none.
-- @tparam table t
-- @treturn[1] Message the request
-- @return[2] nil
-- @treturn[2] string error message
-- @treturn[2] string error code name
function M.request(t)
  if type(t) ~= "table" then
    error("bad argument #1 to 'request' (table expected, got " .. type(t) .. ")", 2)
  end
  local method = check_line(t.method, "method", 2)
  if not method:find("^[%w%-%.!%%%*_%+`'~]+$") then
    error("bad method " .. format("%q", method), 2)
  end
  local uri = t.uri
  if type(uri) ~= "string" then
    uri = tostring(uri)
  end
  check_line(uri, "uri", 2)
  local out = { method .. " " .. uri .. " SIP/2.0" }
  if t.via then
    for _, v in ipairs(list(t.via)) do
      check_line(v, "via", 2)
      if not has_param(v, "branch") then
        v = v .. ";branch=" .. M.new_branch()
      end
      out[#out + 1] = "Via: " .. v
    end
  end
  out[#out + 1] = "Max-Forwards: " .. tostring(t.max_forwards or 70)
  if t.from then
    local from = addr(t.from, "from")
    if not has_param(from, "tag") then
      from = from .. ";tag=" .. M.new_tag()
    end
    out[#out + 1] = "From: " .. from
  end
  out[#out + 1] = "To: " .. addr(t.to or uri, "to")
  out[#out + 1] = "Call-ID: " .. check_line(t.call_id or M.new_call_id(), "call_id", 2)
  out[#out + 1] = format("CSeq: %d %s", t.cseq or 1, method)
  if t.contact then
    for _, c in ipairs(list(t.contact)) do
      out[#out + 1] = "Contact: " .. (c == "*" and c or addr(c, "contact"))
    end
  end
  if t.headers then
    add_header_lines(out, t.headers, 2)
  end
  local body = t.body or ""
  if type(body) ~= "string" then
    error("body must be a string", 2)
  end
  if t.content_type then
    out[#out + 1] = "Content-Type: " .. check_line(t.content_type, "content_type", 2)
  end
  out[#out + 1] = "Content-Length: " .. #body
  out[#out + 1] = ""
  out[#out + 1] = body
  return core.parse(concat(out, "\r\n"))
end

-- ---------------------------------------------------------------------------
-- Received requests and the server
-- ---------------------------------------------------------------------------

local reply_c = Request.reply

--- Answer a received request (stateless at the transport level).
--
-- Builds the response of §8.2.6 in C (every Via, From, To with a To tag
-- that stays the same for every reply to this request, Call-ID, CSeq, the
-- given headers, Content-Length) and sends it where §18.2.2 and RFC 3581
-- say: the same connection for TCP/TLS, the received/rport address for UDP.
-- One final response per request: a second final reply raises. An ACK is
-- never answered: a reply to one sends nothing and returns nil, err
-- (counted in `srv:stats().ack_replies`). Only for requests a
-- `luasip.server` delivered.
-- @function Request:reply
-- @tparam integer code 100..699
-- @tparam[opt] string reason default phrase of the code
-- @tparam[opt] table|string headers `{ {name, value}, ... }` in order, or
--   `{ name = value or {values} }`, or complete header lines, each ending
--   with CRLF (as the registrar's C steps write them)
-- @tparam[opt] string body (give its Content-Type in `headers`)
-- @treturn[1] boolean true once handed to the transport
-- @return[2] nil
-- @treturn[2] string error message (the server is closed, ...)
-- @treturn[2] string error code name
function Request.reply(self, code, reason, headers, body)
  if type(headers) == "string" then
    return reply_c(self, code, reason, headers, body)
  end
  if headers ~= nil then
    if type(headers) ~= "table" then
      error("bad argument #3 to 'reply' (table or string expected, got " .. type(headers) .. ")", 2)
    end
    local lines = add_header_lines({}, headers, 1)
    lines[#lines + 1] = ""
    return reply_c(self, code, reason, concat(lines, "\r\n"), body)
  end
  return reply_c(self, code, reason, nil, body)
end

--- Create a server: listeners, sanity checks and a request handler.
-- See `luasip.server` for the options.
-- @function server
function M.server(opts)
  return require("luasip.server").new(opts)
end

--- Run `fn(...)` in its own coroutine, so it can wait (`srv:send`) without
-- blocking the loop. See `luasip.server.spawn`.
-- @function spawn
function M.spawn(fn, ...)
  return require("luasip.server").spawn(fn, ...)
end

--- Limits for scripts: `{ instructions = n, memory = bytes }`. See
-- `luasip.server.set_limits`.
-- @function set_limits
function M.set_limits(t)
  return require("luasip.server").set_limits(t)
end

--- Run `fn` in its own coroutine after `seconds`; `opts.interval`
-- repeats it. See `luasip.server.timer`.
-- @function timer
function M.timer(seconds, fn, opts)
  return require("luasip.server").timer(seconds, fn, opts)
end

--- Wait `seconds` inside a handler or `spawn` coroutine.
-- @function sleep
function M.sleep(seconds)
  return require("luasip.server").sleep(seconds)
end

--- Resolve a SIP URI into its ordered targets (RFC 3263): `{ { transport =,
-- host =, port =, addr =, dest = }, ... }` or `nil, err, name`. Waits inside
-- a handler or `spawn` coroutine. See `luasip.dns.resolve`.
-- @function resolve
function M.resolve(uri)
  return require("luasip.dns").resolve(uri)
end

--- Configure the resolver: `{ servers = "127.0.0.1:5353", timeout = s, ... }`.
-- See `luasip.dns.configure`.
-- @function dns
function M.dns(opts)
  return require("luasip.dns").configure(opts)
end

--- Bytes the Lua state uses and its limit (0: none).
-- @function memory
M.memory = core.memory

--- Run the luasip loop until `sip.stop()` or until nothing is left to do.
-- @function run
M.run = core.run

--- One iteration of the loop that does not wait (for a host's own loop).
-- @function step
M.step = core.step

--- Make the running `sip.run()` return.
-- @function stop
M.stop = core.stop

return M
