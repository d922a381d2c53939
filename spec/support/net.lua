-- Shared helpers for the specs that drive a luasip server over real sockets
-- on the loopback interface (127.0.0.1 and ::1 only).
--
-- The server runs on the luasip loop, which advances only when
-- `core.step()` is called; the peers are luasocket / LuaSec sockets in
-- non-blocking mode. Every wait is a `pump_until(cond, seconds)`: one loop
-- step, a read of whatever the peers have, a 1 ms sleep, until `cond()`
-- returns a true value or the deadline passes.
local core = require "luasip.core"
local sip = require "luasip"
local socket = require "socket"

local N = {}

N.V4 = "127.0.0.1"
N.V6 = "::1"

-- Peers and servers opened through this module, closed
-- by N.cleanup() (call it from after_each).
local opened = {}
local servers = {}

--- Does this host have IPv6 on the loopback interface?
function N.have_ipv6()
  if N._ipv6 == nil then
    local u = socket.udp6 and socket.udp6()
    N._ipv6 = u ~= nil and u:setsockname(N.V6, 0) == 1
    if u then
      u:close()
    end
  end
  return N._ipv6
end

--- One iteration of the luasip loop.
function N.step()
  core.step()
end

--- Run fn in a coroutine on the luasip loop (so it may wait, as store
-- methods do) until it ends or seconds (default 5) pass; return its
-- results, raising its error or "timed out".
function N.run_task(fn, seconds)
  local done, res
  sip.spawn(function()
    res = table.pack(pcall(fn))
    done = true
  end)
  assert(N.pump_until(function()
    return done
  end, seconds or 5), "timed out")
  assert(res[1], res[2])
  return table.unpack(res, 2, res.n)
end

--- Run the loop until cond() returns a true value (returned) or seconds
-- (default 2) pass (returns nil). cond is checked first, before any step.
function N.pump_until(cond, seconds)
  local deadline = socket.gettime() + (seconds or 2)
  while true do
    local v = cond()
    if v then
      return v
    end
    if socket.gettime() >= deadline then
      return nil
    end
    core.step()
    v = cond()
    if v then
      return v
    end
    socket.sleep(0.001)
  end
end

--- Run the loop for a fixed time (for "nothing happens" checks; keep it
-- short: most tests prove silence with a later message instead).
function N.pump_for(seconds)
  local deadline = socket.gettime() + seconds
  repeat
    core.step()
    socket.sleep(0.001)
  until socket.gettime() >= deadline
end

------------------------------------------------------------------------------
-- Servers
------------------------------------------------------------------------------

--- sip.server(opts) that N.cleanup() closes (listen defaults to
-- "udp:127.0.0.1:0"). Returns srv and listener 0.
function N.server(opts)
  opts = opts or {}
  if opts.listen == nil then
    opts.listen = { "udp:127.0.0.1:0" }
  end
  local srv = assert(sip.server(opts))
  servers[#servers + 1] = srv
  return srv, srv:listener(0)
end

--- Pump until srv:stats()[name] reaches at least value; returns the stats.
function N.wait_stat(srv, name, value, seconds)
  local st
  N.pump_until(function()
    st = srv:stats()
    return st[name] >= value
  end, seconds)
  return st
end

------------------------------------------------------------------------------
-- Messages
------------------------------------------------------------------------------

local seq = 0
local function unique(prefix)
  seq = seq + 1
  return string.format("%s%d.%d", prefix, seq, math.random(1, 1e9))
end
N.unique = unique

--- A request as bytes, plus its Call-ID and branch. Fields of t (all
-- optional): method ("OPTIONS"), uri ("sip:bob@127.0.0.1"), version
-- ("SIP/2.0"), transport ("UDP"), via_host ("127.0.0.1"), via_port (none),
-- rport (false: no rport parameter), branch, via (a whole Via value instead
-- of the parts), from, to, call_id, cseq (1), cseq_method (method),
-- max_forwards (70), headers (list of extra header lines, written after
-- CSeq), after (header lines written after Content-Length), omit (set of
-- header names to leave out: "Via", "From", "To", "Call-ID", "CSeq",
-- "Max-Forwards", "Content-Length"), body (""),
-- content_type, content_length (a number or string written instead of the
-- body length).
function N.request(t)
  t = t or {}
  local method = t.method or "OPTIONS"
  local omit = t.omit or {}
  local call_id = t.call_id or unique("cid")
  local branch = t.branch or ("z9hG4bK" .. unique("b"):gsub("%.", ""))
  local body = t.body or ""
  local via = t.via
  if not via then
    local host = t.via_host or N.V4
    if host:find(":", 1, true) and not host:find("^%[") then
      host = "[" .. host .. "]"
    end
    via = string.format("SIP/2.0/%s %s%s;branch=%s%s", t.transport or "UDP", host,
      t.via_port and (":" .. t.via_port) or "", branch, t.rport and ";rport" or "")
  end
  local lines = { string.format("%s %s %s", method, t.uri or "sip:bob@127.0.0.1", t.version or "SIP/2.0") }
  local function add(name, value)
    if not omit[name] then
      lines[#lines + 1] = name .. ": " .. value
    end
  end
  add("Via", via)
  add("Max-Forwards", tostring(t.max_forwards or 70))
  add("From", t.from or ("\"Alice\" <sip:alice@127.0.0.1>;tag=" .. unique("ft"):gsub("%.", "")))
  add("To", t.to or "Bob <sip:bob@127.0.0.1>")
  add("Call-ID", call_id)
  add("CSeq", string.format("%d %s", t.cseq or 1, t.cseq_method or method))
  for _, h in ipairs(t.headers or {}) do
    lines[#lines + 1] = h
  end
  if t.content_type then
    lines[#lines + 1] = "Content-Type: " .. t.content_type
  end
  add("Content-Length", tostring(t.content_length or #body))
  for _, h in ipairs(t.after or {}) do
    lines[#lines + 1] = h
  end
  lines[#lines + 1] = ""
  lines[#lines + 1] = body
  return table.concat(lines, "\r\n"), call_id, branch
end

--- Split bytes of a stream: the first complete SIP message (header section
-- plus Content-Length bytes of body) and the rest; nil while incomplete.
function N.take_message(buf)
  local e = buf:find("\r\n\r\n", 1, true)
  if not e then
    return nil
  end
  local head = buf:sub(1, e + 3)
  local clen = head:match("\r\n[Cc]ontent%-[Ll]ength[ \t]*:[ \t]*(%d+)")
    or head:match("\r\n[Ll][ \t]*:[ \t]*(%d+)") or "0"
  local total = e + 3 + tonumber(clen)
  if #buf < total then
    return nil
  end
  return buf:sub(1, total), buf:sub(total + 1)
end

--- A response (or request) parsed independently of luasip: start line,
-- header lines in order, body. r:get(name) is the first value of a header
-- (case-insensitive name), r:all(name) every value.
local Parsed = {}
Parsed.__index = Parsed

function Parsed:get(name)
  name = name:lower()
  for _, h in ipairs(self.headers) do
    if h[1]:lower() == name then
      return h[2]
    end
  end
  return nil
end

function Parsed:all(name)
  name = name:lower()
  local t = {}
  for _, h in ipairs(self.headers) do
    if h[1]:lower() == name then
      t[#t + 1] = h[2]
    end
  end
  return t
end

--- The To tag of a parsed message.
function Parsed:to_tag()
  local to = self:get("To")
  return to and to:match(";%s*tag=([^;%s]+)")
end

function N.parse(bytes)
  local e = assert(bytes:find("\r\n\r\n", 1, true), "no end of header section")
  local head, body = bytes:sub(1, e + 1), bytes:sub(e + 4)
  local r = setmetatable({ raw = bytes, body = body, headers = {} }, Parsed)
  local first = true
  for line in head:gmatch("(.-)\r\n") do
    if first then
      r.start = line
      r.version, r.status, r.reason = line:match("^(SIP/%d+%.%d+) (%d%d%d) (.*)$")
      r.status = tonumber(r.status)
      first = false
    else
      local name, value = line:match("^([^:]+):[ \t]*(.-)[ \t]*$")
      r.headers[#r.headers + 1] = { assert(name, "bad header line " .. line), value }
    end
  end
  return r
end

------------------------------------------------------------------------------
-- UDP peer
------------------------------------------------------------------------------

local Udp = {}
Udp.__index = Udp

--- A UDP socket bound to host (127.0.0.1 or ::1) at port (default 0).
function N.udp(host, port)
  host = host or N.V4
  local s = host:find(":", 1, true) and assert(socket.udp6()) or assert(socket.udp())
  assert(s:setsockname(host, port or 0))
  s:settimeout(0)
  local self = setmetatable({ s = s, host = host, queue = {} }, Udp)
  local _, p = s:getsockname()
  self.port = tonumber(p)
  opened[#opened + 1] = self
  return self
end

function Udp:send(bytes, host, port)
  assert(host == N.V4 or host == N.V6, "loopback only")
  assert(self.s:sendto(bytes, host, port))
end

-- Move every waiting datagram into the queue.
function Udp:poll()
  while true do
    local d, ip, port = self.s:receivefrom()
    if not d then
      return
    end
    self.queue[#self.queue + 1] = { data = d, ip = ip, port = tonumber(port) }
  end
end

--- The next datagram (bytes, from ip, from port) within seconds, or nil.
function Udp:recv(seconds)
  local got = N.pump_until(function()
    self:poll()
    return #self.queue > 0
  end, seconds)
  if not got then
    return nil
  end
  local d = table.remove(self.queue, 1)
  return d.data, d.ip, d.port
end

--- Datagrams received so far and not yet taken by recv().
function Udp:pending()
  self:poll()
  return #self.queue
end

function Udp:close()
  self.s:close()
end

------------------------------------------------------------------------------
-- TCP and TLS peers
------------------------------------------------------------------------------

local Stream = {}
Stream.__index = Stream

local function soft(err)
  return err == "timeout" or err == "wantread" or err == "wantwrite"
end

--- Connect a TCP socket to host:port, pumping the loop meanwhile. Returns
-- the peer, or nil and the error.
function N.tcp(host, port, seconds)
  assert(host == N.V4 or host == N.V6, "loopback only")
  local s = host:find(":", 1, true) and assert(socket.tcp6()) or assert(socket.tcp())
  s:settimeout(0)
  local ok, err = s:connect(host, port)
  if not ok and err ~= "timeout" and err ~= "Operation already in progress" then
    s:close()
    return nil, err
  end
  if not ok then
    local w = N.pump_until(function()
      local _, wr = socket.select(nil, { s }, 0)
      return wr and #wr > 0
    end, seconds)
    if not w then
      s:close()
      return nil, "connect timeout"
    end
  end
  local self = setmetatable({ s = s, buf = "", closed = false, host = host }, Stream)
  local _, p = s:getsockname()
  self.port = tonumber(p)
  opened[#opened + 1] = self
  return self
end

--- Wrap a connected TCP peer in TLS (LuaSec) and do the handshake with the
-- socket non-blocking, pumping the loop between attempts. params: LuaSec
-- context parameters (mode = "client" is added). Returns the peer, or nil
-- and the handshake error.
function N.tls_wrap(peer, params, seconds)
  local ssl = require "ssl"
  local p = { mode = "client" }
  for k, v in pairs(params) do
    p[k] = v
  end
  local c, err = ssl.wrap(peer.s, p)
  if not c then
    return nil, err
  end
  c:settimeout(0)
  peer.s = c
  peer.tls = true
  local herr
  local done = N.pump_until(function()
    local ok, e = c:dohandshake()
    if ok then
      return true
    end
    if not soft(e) then
      herr = e
      return true
    end
    return false
  end, seconds)
  if not done then
    return nil, "handshake timeout"
  end
  if herr then
    return nil, herr
  end
  return peer
end

--- Read what is available into the buffer; notes a close.
function Stream:poll()
  while not self.closed do
    local d, err, partial = self.s:receive(65536)
    local got = d or partial
    if got and #got > 0 then
      self.buf = self.buf .. got
    end
    if not d then -- d: a full 64 KiB, there may be more
      if err and not soft(err) then
        self.closed = err
      end
      return
    end
  end
end

--- Send all bytes (pumping while the socket would block).
function Stream:send(bytes)
  local i = 1
  local ok = N.pump_until(function()
    local last, err, partial_last = self.s:send(bytes, i)
    if last then
      i = last + 1
      return true
    end
    if not soft(err) then
      error("send: " .. tostring(err))
    end
    i = partial_last + 1
    return false
  end, 5)
  assert(ok, "send timed out")
end

--- Send bytes in pieces that end at the given offsets (a list of
-- increasing positions inside bytes), with loop steps after each piece.
function Stream:send_split(bytes, cuts)
  local from = 1
  for _, c in ipairs(cuts) do
    if c >= from then
      self:send(bytes:sub(from, c))
      core.step()
      from = c + 1
    end
  end
  if from <= #bytes then
    self:send(bytes:sub(from))
    core.step()
  end
end

--- The next complete SIP message from the stream within seconds: bytes, or
-- nil and why ("timeout" or the close error).
function Stream:read_message(seconds)
  local m
  N.pump_until(function()
    self:poll()
    local msg, rest = N.take_message(self.buf)
    if msg then
      m = msg
      self.buf = rest
      return true
    end
    return self.closed
  end, seconds)
  if m then
    return m
  end
  return nil, self.closed or "timeout"
end

--- Pump until at least n bytes are buffered; returns them (removed).
function Stream:read_bytes(n, seconds)
  N.pump_until(function()
    self:poll()
    return #self.buf >= n or self.closed
  end, seconds)
  if #self.buf < n then
    return nil, self.closed or "timeout"
  end
  local d = self.buf:sub(1, n)
  self.buf = self.buf:sub(n + 1)
  return d
end

--- Pump until the server closes the connection; returns the close error
-- ("closed", or a reset) or nil after seconds.
function Stream:wait_closed(seconds)
  N.pump_until(function()
    self:poll()
    return self.closed
  end, seconds)
  return self.closed or nil
end

function Stream:setoption(name, value)
  return self.s:setoption(name, value)
end

function Stream:close()
  self.s:close()
end

------------------------------------------------------------------------------
-- Files
------------------------------------------------------------------------------

--- A fresh temporary directory (removed by N.rmdir).
function N.tmpdir()
  local name = os.tmpname()
  os.remove(name)
  assert(os.execute("mkdir -m 700 '" .. name .. "'"))
  return name
end

function N.rmdir(dir)
  if dir and dir:match("^/tmp/") then
    os.execute("rm -rf '" .. dir .. "'")
  end
end

--- Run a shell command quietly; error with its output when it fails.
function N.sh(cmd)
  local f = assert(io.popen(cmd .. " 2>&1", "r"))
  local out = f:read("a")
  local ok, _, code = f:close()
  if not ok then
    error(string.format("command failed (%s): %s\n%s", tostring(code), cmd, out), 2)
  end
  return out
end

------------------------------------------------------------------------------
-- Cleanup
------------------------------------------------------------------------------

--- Close every peer and server opened through this module and let the loop
-- finish the closes.
function N.cleanup()
  for i = #opened, 1, -1 do
    pcall(opened[i].close, opened[i])
    opened[i] = nil
  end
  for i = #servers, 1, -1 do
    servers[i]:close()
    servers[i] = nil
  end
  for _ = 1, 5 do
    core.step()
  end
end

return N
