-- auth.check cost per request (not part of make test or make bench):
--
--     LUA_PATH='lua/?.lua;lua/?/init.lua;;' LUA_CPATH='build/lib/?.so;;' \
--       lua5.4 csrc/bench/auth_bench.lua [N]
--
-- For MD5, SHA-256 and SHA-512-256: N REGISTERs with valid credentials
-- (one nonce, nc 1..N, qop=auth) are parsed first, then timed through
-- auth.check (CPU time, os.clock): the credentials found and read, the
-- nonce's HMAC checked, the lookup (a password: HA1 computed; or a stored
-- HA1), the request-digest computed and compared, the nc recorded. Also
-- SHA-256 with userhash=true (RFC 7616 §3.4.4: the hashed name turned back
-- into the user through a table of 1,000 users' hashes, opts.unhash) and
-- auth.challenge_headers (a fresh nonce, two headers). Prints microseconds
-- per call.
local sip = require "luasip"
local core = require "luasip.core"
local auth = require "luasip.auth"

local N = tonumber(arg[1]) or 20000
auth.configure({ secret = ("k"):rep(32), max_nonces = 65536 })

local function request(i, alg, nonce, userhash)
  local nc = ("%08x"):format(i)
  local ha1 = core.digest_ha1(alg, "alice", "example.com", "secret")
  local resp = core.digest_response({
    algorithm = alg, ha1 = ha1, nonce = nonce, nc = nc, cnonce = "c0ffee", qop = "auth",
    method = "REGISTER", uri = "sip:example.com",
  })
  return assert(sip.parse(table.concat({
    "REGISTER sip:example.com SIP/2.0",
    "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKb" .. i,
    "Max-Forwards: 70",
    "From: <sip:alice@example.com>;tag=1",
    "To: <sip:alice@example.com>",
    "Call-ID: bench-" .. i,
    "CSeq: " .. i .. " REGISTER",
    "Contact: <sip:alice@127.0.0.1:5070>",
    ('Authorization: Digest username="%s", realm="example.com", nonce="%s", uri="sip:example.com", '
      .. 'response="%s", algorithm=%s, qop=auth, nc=%s, cnonce="c0ffee"%s'):format(
      userhash and auth.userhash("alice", "example.com", alg) or "alice", nonce, resp, alg, nc,
      userhash and ", userhash=true" or ""),
    "Content-Length: 0", "", "",
  }, "\r\n")))
end

local function bench(alg, stored, userhash)
  local nonce = core.nonce_new(("k"):rep(32), "example.com")
  local reqs = {}
  for i = 1, N do
    reqs[i] = request(i, alg, nonce, userhash)
  end
  local ha1s = { [alg] = core.digest_ha1(alg, "alice", "example.com", "secret") }
  local lookup = stored and function()
    return ha1s
  end or function()
    return "secret"
  end
  local opts = { realm = "example.com", algorithms = { alg } }
  if userhash then
    local users = { [auth.userhash("alice", "example.com", alg)] = "alice" }
    for u = 1, 999 do
      users[auth.userhash("user" .. u, "example.com", alg)] = "user" .. u
    end
    opts.unhash = function(h)
      return users[h]
    end
  end
  local t0 = os.clock()
  for i = 1, N do
    if auth.check(reqs[i], lookup, opts) ~= "alice" then
      error("check failed at " .. i)
    end
  end
  local us = (os.clock() - t0) / N * 1e6
  print(("auth-bench: check %-11s (%s%s): %.2f us/request"):format(alg, stored and "stored HA1" or "password",
    userhash and ", userhash" or "", us))
end

for _, alg in ipairs({ "MD5", "SHA-256", "SHA-512-256" }) do
  bench(alg, false)
  bench(alg, true)
end
bench("SHA-256", true, true)
local req = request(1, "MD5", "x")
local t0 = os.clock()
for _ = 1, N do
  auth.challenge_headers(req, { realm = "example.com" })
end
print(("auth-bench: challenge_headers (SHA-256, MD5): %.2f us/request"):format((os.clock() - t0) / N * 1e6))
