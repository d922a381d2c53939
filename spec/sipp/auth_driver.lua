-- Driven by spec/sipp/auth_sipp.sh (in its loopback-only namespace):
--   lua5.4 spec/sipp/auth_driver.lua REGISTRAR_PORT PROXY_PORT NONCE_LIFETIME
--                                    REGISTRAR_PID REGISTRAR_LOG
-- against examples/registrar.lua --users (--algorithms MD5,SHA-256) and
-- examples/proxy.lua --users --domain example.com, both on udp 127.0.0.1.
--
-- A. A raw UDP peer computing digests with the C primitives (luasip.core,
--    not luasip.auth's client): 401, 200, the same nc again (challenged,
--    stale=true), a higher nc (200), the nonce after its lifetime (stale),
--    a wrong password (401 without stale), 100 junk Authorization lines and
--    an 8 KB one (401, server still answering); then a script reload
--    (SIGHUP): a nonce handed out before it is still good, and its nc
--    still remembered.
-- B. luasip as the client: srv:send REGISTER to the registrar (SHA-256
--    chosen over MD5), bob registers at the proxy (401), alice's INVITE
--    through the proxy (407, then Proxy-Authorization, 200 from bob, who
--    sees no credentials of the proxy's realm).
-- Prints "ok   NAME" / "FAIL NAME ..." lines; the shell counts them.
local socket = require "socket"
local core = require "luasip.core"
local sip = require "luasip"

local REG, PROXY, LIFETIME = tonumber(arg[1]), tonumber(arg[2]), tonumber(arg[3])
local REG_PID, REG_LOG = tonumber(arg[4]), arg[5]
local H = "127.0.0.1"

local function result(name, ok, detail)
  print((ok and "ok   " or "FAIL ") .. name .. (ok and "" or (" " .. tostring(detail or ""))))
end

------------------------------------------------------------------------------
-- A. raw peer
------------------------------------------------------------------------------
local u = assert(socket.udp())
assert(u:setsockname(H, 0))
u:settimeout(2)
local _, lport = u:getsockname()
local call_id = "auth-driver-" .. os.time() .. "-" .. math.random(1, 1e9)
local cseq = 0

local function register(extra)
  cseq = cseq + 1
  local lines = {
    "REGISTER sip:example.com SIP/2.0",
    ("Via: SIP/2.0/UDP %s:%d;branch=z9hG4bKdrv%d%d;rport"):format(H, lport, cseq, math.random(1, 1e9)),
    "From: <sip:alice@example.com>;tag=drv1",
    "To: <sip:alice@example.com>",
    "Call-ID: " .. call_id,
    ("CSeq: %d REGISTER"):format(cseq),
    ("Contact: <sip:alice@%s:%d>"):format(H, lport),
    "Expires: 60",
    "Max-Forwards: 70",
  }
  for _, l in ipairs(extra or {}) do
    lines[#lines + 1] = l
  end
  lines[#lines + 1] = "Content-Length: 0"
  assert(u:sendto(table.concat(lines, "\r\n") .. "\r\n\r\n", H, REG))
  local deadline = socket.gettime() + 3
  while socket.gettime() < deadline do
    local d = u:receive()
    local m = d and sip.parse(d)
    if m and m.status and m.cseq == cseq and m.status >= 200 then
      return m
    end
  end
  return nil
end

-- the first challenge's nonce and algorithm
local function challenge_of(res)
  local a = res and res:auth("WWW-Authenticate")
  return a and a.params
end

local function authorization(ch, nc, password)
  local ha1 = core.digest_ha1(ch.algorithm, "alice", ch.realm, password or "secret")
  local resp = core.digest_response({
    algorithm = ch.algorithm, ha1 = ha1, nonce = ch.nonce, nc = nc, cnonce = "drvcnonce",
    qop = "auth", method = "REGISTER", uri = "sip:example.com",
  })
  return ('Authorization: Digest username="alice", realm="%s", nonce="%s", uri="sip:example.com", '
    .. 'response="%s", algorithm=%s, qop=auth, nc=%s, cnonce="drvcnonce"'):format(
    ch.realm, ch.nonce, resp, ch.algorithm, nc)
end

local status = function(m)
  return m and m.status
end

local r = register()
local ch = challenge_of(r)
result("raw: 401 with a challenge", status(r) == 401 and ch and ch.algorithm == "MD5", status(r))
if not ch then
  os.exit(1)
end
local good = authorization(ch, "00000001")
r = register({ good })
result("raw: MD5 credentials, nc 1: 200", status(r) == 200, status(r))
r = register({ good })
local c2 = challenge_of(r)
result("raw: the same nc again: 401 stale=true", status(r) == 401 and c2 and c2.stale == "true", status(r))
r = register({ authorization(ch, "00000002") })
result("raw: a higher nc on the same nonce: 200", status(r) == 200, status(r))
socket.sleep(LIFETIME + 1.5)
r = register({ authorization(ch, "00000003") })
c2 = challenge_of(r)
result("raw: the nonce after its lifetime: 401 stale=true, new nonce",
  status(r) == 401 and c2 and c2.stale == "true" and c2.nonce ~= ch.nonce, status(r))
r = register({ authorization(c2, "00000001", "wrong") })
local c3 = challenge_of(r)
result("raw: a wrong password: 401 without stale", status(r) == 401 and c3 and c3.stale == nil, status(r))
local junk = {}
for i = 1, 100 do
  junk[i] = ('Authorization: Digest realm="example.com", username=alice%d, nonce=x%d, uri=sip:x, '
    .. 'response=%d'):format(i, i, i)
end
r = register(junk)
result("raw: 100 junk Authorization lines: 401", status(r) == 401, status(r))
r = register({ 'Authorization: Digest realm="example.com", username="' .. ("a"):rep(8000) .. '"' })
result("raw: an 8 KB Authorization: 401", status(r) == 401, status(r))
r = register({ authorization(c3, "00000001") })
result("raw: the server still answers: 200", status(r) == 200, status(r))

-- reload: the secret and the nc memory live in luasip.auth, which a reload
-- does not reload
local function reloads()
  local f = io.open(REG_LOG)
  local n = 0
  for line in (f and f:lines() or function() end) do
    n = n + (line:find("reloaded", 1, true) and 1 or 0)
  end
  if f then
    f:close()
  end
  return n
end
r = register()
local c4 = challenge_of(r)
r = register({ authorization(c4, "00000001") })
result("reload: a fresh nonce, nc 1: 200", status(r) == 200, status(r))
local before = reloads()
-- never 0 or 1: "kill -HUP 0" would hang up this whole process group
assert(REG_PID and REG_PID > 1, "no registrar PID")
os.execute("kill -HUP " .. REG_PID)
local deadline = socket.gettime() + 3
while reloads() == before and socket.gettime() < deadline do
  socket.sleep(0.05)
end
result("reload: the registrar reloaded its script", reloads() > before)
r = register({ authorization(c4, "00000001") })
result("reload: an nc used before it is still refused", status(r) == 401, status(r))
r = register({ authorization(c4, "00000002") })
result("reload: a nonce handed out before it is still good", status(r) == 200, status(r))

------------------------------------------------------------------------------
-- B. luasip as the client
------------------------------------------------------------------------------
local uac = assert(sip.server({ listen = "udp:127.0.0.1:0" }))
local bob = assert(sip.server({ listen = "udp:127.0.0.1:0" }))
local uac_port, bob_port = uac:listener(0).port, bob:listener(0).port
local at_bob
bob:on_request(function(req)
  at_bob = { method = req.method, pa = req:headers("Proxy-Authorization") }
  req:reply(200, nil, { Contact = ("<sip:bob@127.0.0.1:%d>"):format(bob_port) })
end)

local function creds(user, password, seen)
  return function(realm, challenge)
    seen[#seen + 1] = { realm = realm, algorithm = challenge.algorithm }
    return user, password
  end
end

local done = false
sip.spawn(function()
  local seen = {}
  local req = assert(sip.request({
    method = "REGISTER", uri = "sip:example.com", from = "<sip:alice@example.com>",
    to = "<sip:alice@example.com>", contact = ("<sip:alice@127.0.0.1:%d>"):format(uac_port),
    headers = { { "Expires", "60" } },
  }))
  local res, sent = uac:send(req, "udp:127.0.0.1:" .. REG, { credentials = creds("alice", "secret", seen) })
  local a = sent and sent:header("Authorization") or ""
  result("client: REGISTER to the registrar: 200", res and res.status == 200, res and res.status)
  result("client: SHA-256 chosen over MD5", a:find("algorithm=SHA-256", 1, true) ~= nil
    and #seen == 1 and seen[1].realm == "example.com", a)

  seen = {}
  req = assert(sip.request({
    method = "REGISTER", uri = "sip:example.com", from = "<sip:bob@example.com>",
    to = "<sip:bob@example.com>", contact = ("<sip:bob@127.0.0.1:%d>"):format(bob_port),
    headers = { { "Expires", "60" } },
  }))
  res = uac:send(req, "udp:127.0.0.1:" .. PROXY, { credentials = creds("bob", "bobpw", seen) })
  result("client: bob registers at the proxy (401 answered)", res and res.status == 200 and #seen == 1,
    res and res.status)

  seen = {}
  local first
  req = assert(sip.request({
    method = "INVITE", uri = "sip:bob@example.com", from = "<sip:alice@example.com>",
    to = "<sip:bob@example.com>", contact = ("<sip:alice@127.0.0.1:%d>"):format(uac_port),
  }))
  res, sent = uac:send(req, "udp:127.0.0.1:" .. PROXY, {
    credentials = function(realm, challenge)
      first = first or realm
      return creds("alice", "secret", seen)(realm, challenge)
    end,
  })
  result("client: INVITE through the proxy: 407, then 200", res and res.status == 200 and first == "example.com",
    res and res.status)
  result("client: the INVITE carried Proxy-Authorization", sent and sent:header("Proxy-Authorization") ~= nil
    and sent.cseq == req.cseq + 1)
  result("client: bob got the INVITE without the proxy's credentials",
    at_bob and at_bob.method == "INVITE" and #at_bob.pa == 0)
  done = true
  sip.stop()
end)
if not done then
  local t = sip.timer(20, function()
    result("client: finished in time", false)
    sip.stop()
  end)
  sip.run()
  t:stop()
end
uac:close()
bob:close()
