--- Digest authentication (RFC 3261 §22, RFC 7616, RFC 8760): MD5, SHA-256
-- and SHA-512-256, server and client side.
--
--     local auth = require "luasip.auth"
--     local lookup = assert(auth.load_users("users.txt"))  -- or your own function
--     -- in a handler:
--     local user = auth.authenticate(req, lookup, { realm = "example.com" })
--     if not user then return end          -- answered: 401 / 407 challenge
--
-- Server side: `auth.challenge` answers 401 (a registrar or UAS) or 407 (a
-- proxy) with one WWW-/Proxy-Authenticate per algorithm; `auth.check`
-- verifies the credentials of a request and returns the user. Nonces are
-- stateless: an HMAC over the time they were made, with a secret this
-- process draws at start (it survives script reloads; `auth.configure`
-- sets a shared one for several servers), valid for `lifetime` seconds. An
-- expired nonce with a valid digest, or a nonce-count already seen, gets a
-- new challenge with `stale=true`; the highest nc of each nonce in use is
-- kept in a fixed-size table (see `auth.configure`). Digests are computed
-- and compared in C (constant time); no credential or HA1 is logged.
--
-- A malformed header, an unknown user and a wrong password all get the same
-- new challenge; `auth.check` tells the script which it was (for its own
-- logs), the network never does. Credentials for another realm are
-- ignored, so the request is challenged for ours. `proxy.relay` removes
-- the credentials `auth.check` accepted (our realm) before forwarding and
-- leaves the others.
--
-- Client side: `srv:send(req, dest, { credentials = fn })` answers a 401
-- or 407 once per realm (see `auth.send`).
-- @module luasip.auth
local core = require "luasip.core"

local type, tostring, tonumber, ipairs, pairs, error = type, tostring, tonumber, ipairs, pairs, error
local setmetatable = setmetatable
local concat, sort = table.concat, table.sort
local byte, char, format = string.byte, string.char, string.format

local M = {}
local Guard, FAILED -- brute-force protection (below)

-- ---------------------------------------------------------------------------
-- Process-wide state: the nonce secret and the nc memory
-- ---------------------------------------------------------------------------

-- Drawn once per process: `require` caches this module, and a script
-- reload does not reload it, so nonces handed out before a reload stay
-- valid after it.
local config = {
  secret = core.random_bytes(32),
  lifetime = 300,
  max_nonces = 65536,
}
local cache -- the luasip.NonceCache, made on first use

local function nonce_cache()
  if not cache then
    cache = assert(core.nonce_cache(config.max_nonces))
  end
  return cache
end

--- Settings shared by every `auth.check` of this process.
--
-- - `secret`: the nonce key (a string of 16 bytes or more; default: 32
--   random bytes drawn at start). Give several servers the same secret to
--   let them accept each other's nonces.
-- - `lifetime`: seconds a nonce is valid (300); a request may override it
--   with `opts.lifetime`.
-- - `max_nonces`: nonces whose highest nc is remembered (65536, 32 bytes
--   each). Past it the oldest are forgotten, and a forgotten nonce (or one
--   made before it) gets a `stale=true` challenge: memory stays bounded and
--   a replay is never accepted.
-- @tparam table t
function M.configure(t)
  if type(t) ~= "table" then
    error("bad argument #1 to 'configure' (table expected, got " .. type(t) .. ")", 2)
  end
  if t.secret ~= nil then
    if type(t.secret) ~= "string" or #t.secret < 16 then
      error("secret: a string of at least 16 bytes expected", 2)
    end
    config.secret = t.secret
  end
  if t.lifetime ~= nil then
    if math.type(t.lifetime) ~= "integer" or t.lifetime < 1 then
      error("lifetime: seconds (integer > 0) expected", 2)
    end
    config.lifetime = t.lifetime
  end
  if t.max_nonces ~= nil then
    if math.type(t.max_nonces) ~= "integer" or t.max_nonces < 1 then
      error("max_nonces: integer > 0 expected", 2)
    end
    config.max_nonces = t.max_nonces
    if cache then
      cache:close()
      cache = nil
    end
  end
end

--- Counters of the nc memory: `{ nonces = n, bytes = b }`.
-- @treturn table
function M.stats()
  local c = nonce_cache()
  return { nonces = c:count(), bytes = c:bytes() }
end

-- ---------------------------------------------------------------------------
-- Helpers
-- ---------------------------------------------------------------------------

local DEFAULT_ALGORITHMS = { "SHA-256", "MD5" }
-- client preference: strongest first (RFC 8760 §3)
local STRENGTH = { ["SHA-512-256"] = 3, ["SHA-256"] = 2, ["MD5"] = 1 }

local function quote(s)
  return '"' .. tostring(s):gsub('[\\"]', "\\%0") .. '"'
end

local function host_of(uri)
  local u = uri and core.uri(uri)
  return u and u.host and u.host:lower() or nil
end

-- 401 (registrar / UAS) or 407 (proxy)
local function is_proxy(req, opts)
  if opts.proxy ~= nil then
    return opts.proxy and true or false
  end
  if req.method == "REGISTER" then
    return false
  end
  -- a request addressed to this server itself (no user part) is ours to
  -- answer as a UAS; anything else is on its way through a proxy
  local ruri = core.uri(req.uri or "")
  return ruri ~= nil and ruri.user ~= nil
end

local function realm_of(req, opts)
  if opts.realm then
    return opts.realm
  end
  if req.method == "REGISTER" then
    return host_of(req.uri) or "luasip"
  end
  local from = req.from
  return from and host_of(from.uri) or host_of(req.uri) or "luasip"
end

local function list_of(v, default)
  if v == nil then
    return default
  end
  if type(v) == "string" then
    return { v }
  end
  return v
end

local function qops_of(opts)
  if opts.qop == false then
    return {}
  end
  return list_of(opts.qop, { "auth" })
end

-- canonical algorithm names, checked
local function algorithms_of(opts)
  local out = {}
  for i, a in ipairs(list_of(opts.algorithms, DEFAULT_ALGORITHMS)) do
    local name, sess = core.digest_alg(a)
    if not name then
      error(format("unknown digest algorithm '%s'", tostring(a)), 3)
    end
    out[i] = sess and name .. "-sess" or name
  end
  return out
end

-- ---------------------------------------------------------------------------
-- Server side
-- ---------------------------------------------------------------------------

--- The status and challenge headers `auth.challenge` would send.
-- @tparam Message req
-- @tparam[opt] table opts as `auth.challenge`
-- @treturn integer 401 or 407
-- @treturn table header list `{ {name, value}, ... }`
function M.challenge_headers(req, opts)
  opts = opts or {}
  local proxy = is_proxy(req, opts)
  local realm = realm_of(req, opts)
  local nonce = core.nonce_new(opts.secret or config.secret, realm)
  local qops = qops_of(opts)
  local name = proxy and "Proxy-Authenticate" or "WWW-Authenticate"
  local headers = {}
  for _, alg in ipairs(algorithms_of(opts)) do
    local v = { "Digest realm=", quote(realm), ", nonce=\"", nonce, "\", algorithm=", alg }
    if #qops > 0 then
      v[#v + 1] = ", qop=" .. quote(concat(qops, ","))
    end
    if opts.opaque then
      v[#v + 1] = ", opaque=" .. quote(opts.opaque)
    end
    if opts.stale then
      v[#v + 1] = ", stale=true"
    end
    if opts.userhash then
      v[#v + 1] = ", userhash=true"
    end
    headers[#headers + 1] = { name, concat(v) }
  end
  return proxy and 407 or 401, headers
end

--- Answer a request with a digest challenge.
--
-- 401 with WWW-Authenticate, or 407 with Proxy-Authenticate for a proxy
-- (`opts.proxy`; when not given: REGISTER and a Request-URI without a user
-- part get 401, anything else 407). One header per algorithm, in the
-- order given, with one fresh nonce.
--
-- Options: `realm` (default: the Request-URI host of a REGISTER, the From
-- host otherwise), `algorithms` (list, default `{ "SHA-256", "MD5" }`;
-- also "SHA-512-256" and the "-sess" forms), `qop` ("auth", "auth-int", a
-- list of them, or false for none; default "auth"), `opaque`, `stale`,
-- `proxy`, `secret`, `userhash` (true: the challenge says `userhash=true`,
-- RFC 7616 §3.4.4, and clients send H(user ":" realm) as the user name).
-- @tparam Message req a received request
-- @tparam[opt] table opts
-- @treturn integer the status sent
function M.challenge(req, opts)
  local code, headers = M.challenge_headers(req, opts)
  req:reply(code, nil, headers)
  return code
end

-- RFC 7616 §3.4.4: username*=UTF-8''percent-encoded
local function decode_ext(v)
  local charset, rest = v:match("^([%w%-]+)'[^']*'(.*)$")
  if not charset or charset:lower() ~= "utf-8" then
    return nil
  end
  if rest:find("%%[^%x]") or rest:find("%%%x?$") then
    return nil
  end
  return (rest:gsub("%%(%x%x)", function(h)
    return char(tonumber(h, 16))
  end))
end

local function encode_ext(s)
  return "UTF-8''" .. s:gsub("[^%w!#$&+%-%.^_`|~]", function(c)
    return format("%%%02X", byte(c))
  end)
end

-- requests whose credentials auth.check accepted: req -> { name, realm }
local verified = setmetatable({}, { __mode = "k" })

local DUMMY_HA1 = string.rep("0", 64)

local function uri_matches(a, b)
  if a == b then
    return true
  end
  local ua, ub = core.uri(a), core.uri(b)
  return ua ~= nil and ub ~= nil and ua == ub
end

-- The first Digest credentials for realm among the request's header lines
-- called name; nil, "malformed credentials" when some line could not be
-- read and none was for realm.
local function find_credentials(req, name, realm)
  local broken = false
  for i = 1, req:count(name) do
    local a, err = req:auth(name, i)
    if a then
      if a.scheme:lower() == "digest" and a.params.realm == realm then
        return a.params
      end
    elseif err then
      broken = true
    end
  end
  return nil, broken and "malformed credentials" or "no credentials"
end

-- The user named in credentials p (username, or username* decoded);
-- false when both forms are present, nil when neither is usable. With
-- userhash=true, the hash (lower-case hex) and true.
local function claimed_user(p)
  local user, ext = p.username, p["username*"]
  local hashed = type(p.userhash) == "string" and p.userhash:lower() == "true"
  if ext then
    if user or hashed then
      return false
    end
    user = type(ext) == "string" and decode_ext(ext) or nil
  end
  if hashed and type(user) == "string" then
    return user:lower(), true
  end
  return user
end

-- lookup functions made by auth.load_users -> their unhash function
local unhashers = setmetatable({}, { __mode = "k" })

--- Verify the credentials of a request.
--
-- Reads Authorization (or Proxy-Authorization for a proxy, as
-- `auth.challenge` decides) for our realm, checks the nonce (ours, not
-- expired), the algorithm and qop (those offered; no qop only with
-- `opts.allow_no_qop`, RFC 2069), that the URI is the Request-URI, the
-- nonce-count (above every one seen for the nonce; without qop a nonce is
-- good for one request), and the digest.
--
-- `lookup(user, realm)` may wait (a database). It returns the password, or
-- a table of HA1s by algorithm (`{ ["SHA-256"] = hex, MD5 = hex }`), or
-- nil for an unknown user. `username*` (RFC 7616 §3.4.4) is decoded, so
-- `lookup` gets the UTF-8 name. A hashed user name (`userhash=true`, RFC
-- 7616 §3.4.4) is turned back into the user by `opts.unhash(hash, realm,
-- algorithm)` (hash: lower-case hex of H(user ":" realm), see
-- `auth.userhash`; it may wait, and returns the user or nil), or, for a
-- `lookup` made by `auth.load_users`, by the users file itself.
--
-- Options: those of `auth.challenge` (`realm`, `algorithms`, `qop`,
-- `proxy`, `secret`, `userhash`), `lifetime` (seconds, default
-- `auth.configure`'s 300), `allow_no_qop` (false), `unhash`.
-- @tparam Message req
-- @tparam function lookup
-- @tparam[opt] table opts
-- @treturn[1] string the user
-- @return[2] nil
-- @treturn[2] string why (for the script's logs: "no credentials",
--   "malformed credentials", "unknown user", "wrong password", "stale
--   nonce", "nonce count replayed", ...)
-- @treturn[2] boolean true when the challenge should say `stale=true`
function M.check(req, lookup, opts)
  opts = opts or {}
  local realm = realm_of(req, opts)
  local hname = is_proxy(req, opts) and "Proxy-Authorization" or "Authorization"
  local p, why = find_credentials(req, hname, realm)
  if not p then
    return nil, why
  end
  -- the fields every request-digest needs
  local user, hashed = claimed_user(p)
  if user == false then
    return nil, "malformed credentials" -- both forms (RFC 7616 §3.4.4)
  end
  local nonce, uri, response = p.nonce, p.uri, p.response
  if type(user) ~= "string" or type(nonce) ~= "string" or type(uri) ~= "string"
      or type(response) ~= "string" then
    return nil, "malformed credentials"
  end
  local alg = p.algorithm or "MD5"
  local offered = false
  for _, a in ipairs(algorithms_of(opts)) do
    if type(alg) == "string" and a:lower() == alg:lower() then
      offered, alg = true, a
      break
    end
  end
  if not offered then
    return nil, "algorithm not offered"
  end
  local qop, nc, cnonce = p.qop, p.nc, p.cnonce
  local count
  if qop ~= nil then
    local ok = false
    for _, q in ipairs(qops_of(opts)) do
      ok = ok or q == qop
    end
    if not ok then
      return nil, "qop not offered"
    end
    if type(nc) ~= "string" or not nc:find("^%x%x%x%x%x%x%x%x$") or type(cnonce) ~= "string" then
      return nil, "malformed credentials"
    end
    count = tonumber(nc, 16)
  elseif opts.allow_no_qop then
    count, nc, cnonce = 1, nil, nil
  else
    return nil, "qop missing"
  end
  if not uri_matches(uri, req.uri) then
    return nil, "uri mismatch"
  end
  local secret = opts.secret or config.secret
  local lifetime = opts.lifetime or config.lifetime
  local issued, key, ncode = core.nonce_check(secret, realm, nonce, lifetime)
  if not issued and ncode ~= "STALE" then
    return nil, "invalid nonce"
  end
  local base = alg:gsub("%-sess$", "")
  if hashed then -- RFC 7616 §3.4.4: username is H(user ":" realm)
    local unhash = opts.unhash or unhashers[lookup]
    user = unhash and unhash(user, realm, base) or nil
    if type(user) ~= "string" then
      user = nil
    end
  end
  -- the secret: may wait
  local secret_of = user and lookup(user, realm)
  local ha1
  if type(secret_of) == "string" then
    ha1 = core.digest_ha1(base, user, realm, secret_of)
  elseif type(secret_of) == "table" then
    ha1 = secret_of[base] or secret_of[base:lower()]
  end
  local known = type(ha1) == "string"
  -- the same work for an unknown user as for a wrong password
  local good = core.digest_verify({
    algorithm = alg, ha1 = known and ha1 or DUMMY_HA1, nonce = nonce, nc = nc,
    cnonce = cnonce, qop = qop, method = req.method, uri = uri,
    body = qop == "auth-int" and (req.body or "") or nil,
  }, response)
  if not known then
    return nil, "unknown user"
  end
  if not good then
    return nil, "wrong password"
  end
  if not issued then
    return nil, "stale nonce", true
  end
  local ok, _, code = nonce_cache():use(key, issued, count, lifetime)
  if not ok then
    if code == "REPLAY" then
      return nil, "nonce count replayed", true
    end
    return nil, "stale nonce", true
  end
  verified[req] = { name = hname, realm = realm }
  return user
end

-- ---------------------------------------------------------------------------
-- Brute-force protection
-- ---------------------------------------------------------------------------

local FORBIDDEN_BLOCKED = "Forbidden (too many failed attempts)"

-- The outcomes of auth.check that are a failed attempt: credentials for
-- our realm were sent and did not prove the user (not "no credentials",
-- not a stale nonce: a first request and a lost race are no attack).
FAILED = {
  ["wrong password"] = true, ["unknown user"] = true, ["malformed credentials"] = true,
  ["invalid nonce"] = true, ["uri mismatch"] = true, ["algorithm not offered"] = true,
  ["qop not offered"] = true, ["qop missing"] = true,
}

Guard = {}
Guard.__index = Guard

local function positive(t, k, default)
  local v = t[k]
  if v == nil then
    return default
  end
  if math.type(v) ~= "integer" or v < 1 then
    error(k .. ": an integer > 0 expected", 3)
  end
  return v
end

--- A brute-force guard for `auth.authenticate` (`opts.guard`): after
-- `failures` failed attempts (a wrong password, an unknown user, bad
-- credentials for our realm; not a missing credential or a stale nonce)
-- from one source address, or for one user name, within `window`
-- seconds, that source or user is answered 403 ("Forbidden (too many
-- failed attempts)") for `block` seconds without a digest being checked.
-- Memory is bounded: at most `max_entries` sources and users are
-- remembered (two generations of `max_entries / 2`: past it the ones not
-- seen for the longest are forgotten first).
--
--     local guard = auth.guard { failures = 5, window = 60, block = 300 }
--     auth.authenticate(req, lookup, { realm = "example.com", guard = guard })
--
-- @tparam[opt] table t `failures` (5), `window` (60 s), `block` (300 s),
--   `max_entries` (10000)
-- @treturn Guard
function M.guard(t)
  t = t or {}
  if type(t) ~= "table" then
    error("bad argument #1 to 'guard' (table expected, got " .. type(t) .. ")", 2)
  end
  local max = positive(t, "max_entries", 10000)
  return setmetatable({
    failures = positive(t, "failures", 5),
    window_ms = positive(t, "window", 60) * 1000,
    block_ms = positive(t, "block", 300) * 1000,
    half = max // 2 > 0 and max // 2 or 1,
    cur = {}, old = {}, n = 0,
    blocks = 0, refused = 0, forgotten = 0,
  }, Guard)
end

-- The entry of key ({ failures, window start, blocked until }), moved to
-- the current generation; created when create is set.
local function entry(g, key, create)
  local e = g.cur[key]
  if e then
    return e
  end
  e = g.old[key]
  if e then
    g.old[key] = nil
  elseif not create then
    return nil
  else
    e = { 0, 0, 0 }
  end
  if g.n >= g.half then
    for _ in pairs(g.old) do
      g.forgotten = g.forgotten + 1
    end
    g.old, g.cur, g.n = g.cur, {}, 0
  end
  g.cur[key] = e
  g.n = g.n + 1
  return e
end

--- Milliseconds left of the block of a source address or a user, or nil.
-- @tparam string kind `"source"` or `"user"`
-- @tparam string name
-- @treturn ?integer
function Guard:blocked(kind, name)
  local e = entry(self, kind .. " " .. name, false)
  local left = e and e[3] - core.now()
  return left and left > 0 and left or nil
end

--- Count a failed attempt; returns true when it starts a block.
-- @tparam string kind `"source"` or `"user"`
-- @tparam string name
-- @treturn boolean
function Guard:fail(kind, name)
  local e, now = entry(self, kind .. " " .. name, true), core.now()
  if now - e[2] >= self.window_ms or e[3] > 0 and e[3] <= now then
    e[1], e[2], e[3] = 0, now, 0
  end
  e[1] = e[1] + 1
  if e[1] >= self.failures and e[3] == 0 then
    e[3] = now + self.block_ms
    self.blocks = self.blocks + 1
    return true
  end
  return false
end

--- Lift the block (and forget the failures) of a source or a user.
-- @tparam string kind `"source"` or `"user"`
-- @tparam string name
-- @treturn boolean whether it was blocked
function Guard:unblock(kind, name)
  local key = kind .. " " .. name
  local was = self:blocked(kind, name) ~= nil
  self.cur[key], self.old[key] = nil, nil
  return was
end

--- The blocked sources and users: a list of `{ kind =, name =, remaining =
-- ms }`.
-- @treturn table
function Guard:list()
  local out, now = {}, core.now()
  for _, gen in ipairs({ self.cur, self.old }) do
    for key, e in pairs(gen) do
      if e[3] > now then
        local kind, name = key:match("^(%S+) (.*)$")
        out[#out + 1] = { kind = kind, name = name, remaining = e[3] - now }
      end
    end
  end
  return out
end

--- Counters: `entries` (remembered), `blocked` (now), `blocks` (started),
-- `refused` (403 answers), `forgotten` (entries dropped to stay bounded).
-- @treturn table
function Guard:stats()
  local n = 0
  for _ in pairs(self.old) do
    n = n + 1
  end
  return { entries = self.n + n, blocked = #self:list(), blocks = self.blocks,
    refused = self.refused, forgotten = self.forgotten }
end

--- `auth.check`, and on failure `auth.challenge` (with `stale=true` when
-- check says so).
--
-- `opts.match = "to"` (a registrar: the AOR) or `"from"` (a proxy: the
-- caller) also requires the user part of that URI to be the authenticated
-- user, and answers 403 otherwise.
-- @tparam Message req
-- @tparam function lookup
-- With `opts.guard` (an `auth.guard`), a blocked source or user gets 403
-- at once (why: "blocked"), and the failure that reaches the limit is
-- answered 403 instead of a new challenge.
-- @tparam[opt] table opts as `auth.check` and `auth.challenge`, `match`
--   and `guard`
-- @treturn[1] string the user
-- @return[2] nil (the request was answered)
-- @treturn[2] string why (as `auth.check`)
function M.authenticate(req, lookup, opts)
  opts = opts or {}
  local guard, ip, claimed = opts.guard, nil, nil
  if guard then
    if getmetatable(guard) ~= Guard then
      error("opts.guard: an auth.guard expected", 2)
    end
    local src = req.source and req:source()
    ip = src and src.host
    local p = find_credentials(req, is_proxy(req, opts) and "Proxy-Authorization" or "Authorization",
      realm_of(req, opts))
    claimed = p and claimed_user(p) or nil
    if (ip and guard:blocked("source", ip)) or (claimed and guard:blocked("user", claimed)) then
      guard.refused = guard.refused + 1
      req:reply(403, FORBIDDEN_BLOCKED)
      return nil, "blocked"
    end
  end
  local user, why, stale = M.check(req, lookup, opts)
  if guard and not user and not stale and FAILED[why] then
    local b1 = ip and guard:fail("source", ip)
    local b2 = claimed and guard:fail("user", claimed)
    if b1 or b2 then
      guard.refused = guard.refused + 1
      req:reply(403, FORBIDDEN_BLOCKED)
      return nil, why
    end
  end
  if user then
    if opts.match then
      local addr = opts.match == "from" and req.from or req.to
      local u = addr and core.uri(addr.uri)
      if not u or u.user ~= user then
        req:reply(403, "Forbidden (credentials of another user)")
        return nil, "identity mismatch"
      end
    end
    return user
  end
  if stale then
    local o = setmetatable({ stale = true }, { __index = opts })
    M.challenge(req, o)
  else
    M.challenge(req, opts)
  end
  return nil, why
end

--- Remove the credentials `auth.check` accepted for this request (the
-- header lines for our realm; credentials for other realms stay), before
-- it is forwarded. `proxy.relay` calls it.
-- @tparam Message req
-- @treturn integer header lines removed
function M.consume(req)
  local v = verified[req]
  if not v then
    return 0
  end
  verified[req] = nil
  local values = req:headers(v.name)
  local keep = {}
  for i, value in ipairs(values) do
    local a = req:auth(v.name, i)
    if not (a and a.scheme:lower() == "digest" and a.params.realm == v.realm) then
      keep[#keep + 1] = value
    end
  end
  if #keep == #values then
    return 0
  end
  req:remove_header(v.name)
  for _, value in ipairs(keep) do
    req:add_header(v.name, value)
  end
  return #values - #keep
end

--- The hashed user name of RFC 7616 §3.4.4: H(user ":" realm) in
-- lower-case hex, for a user database that indexes its users by it (the
-- `opts.unhash` of `auth.check`).
-- @tparam string user
-- @tparam string realm
-- @tparam[opt] string algorithm "MD5", "SHA-256" (default) or "SHA-512-256"
-- @treturn string
function M.userhash(user, realm, algorithm)
  return core.digest_userhash(algorithm or "SHA-256", user, realm)
end

-- Realms x algorithms whose user-hash index a users file keeps at most
-- (realm comes from the request when no `opts.realm` is set: bounded).
local MAX_HASH_INDEXES = 16

--- A lookup function from a users file: lines `user:password`, or
-- `user:realm:ALGORITHM:HA1-hex` (one line per algorithm; ALGORITHM is
-- MD5, SHA-256 or SHA-512-256); `#` comments and blank lines are skipped.
-- A password line is good for every realm, an HA1 line for its realm.
-- The function also knows its users by their hashed names (`userhash=true`
-- credentials, RFC 7616 §3.4.4).
-- @tparam string path
-- @treturn[1] function `lookup(user, realm)` for `auth.check`
-- @treturn[1] integer the number of users
-- @return[2] nil
-- @treturn[2] string error message (`"users.txt:3: ..."`)
function M.load_users(path)
  local f, err = io.open(path, "r")
  if not f then
    return nil, err
  end
  local users, n, lineno = {}, 0, 0
  for line in f:lines() do
    lineno = lineno + 1
    line = line:gsub("\r$", "")
    if not line:find("^%s*$") and not line:find("^%s*#") then
      local user, realm, alg, ha1 = line:match("^([^:]+):([^:]*):([%w%-]+):(%x+)$")
      local e
      if user then
        local name = core.digest_alg(alg)
        if not name or alg:find("%-sess$") then
          e = "unknown algorithm " .. alg
        elseif #ha1 ~= (name == "MD5" and 32 or 64) then
          e = "HA1 of the wrong length for " .. name
        else
          e = users[user] or { ha1 = {} }
          if not e.ha1 then
            f:close()
            return nil, format("%s:%d: user %s has a password already", path, lineno, user)
          end
          e.ha1[realm] = e.ha1[realm] or {}
          e.ha1[realm][name] = ha1:lower()
          if not users[user] then
            n = n + 1
          end
          users[user], e = e, nil
        end
      else
        local u, pw = line:match("^([^:]+):(.*)$")
        if not u then
          e = "expected user:password or user:realm:ALGORITHM:HA1"
        elseif users[u] then
          e = "user " .. u .. " given twice"
        else
          users[u] = { password = pw }
          n = n + 1
        end
      end
      if e then
        f:close()
        return nil, format("%s:%d: %s", path, lineno, e)
      end
    end
  end
  f:close()
  local function lookup(user, realm)
    local e = users[user]
    if not e then
      return nil
    end
    return e.password or e.ha1[realm]
  end
  -- userhash=true: H(user ":" realm) -> user, one index per realm and
  -- algorithm, made on first use
  local indexes, nindexes = {}, 0
  unhashers[lookup] = function(hash, realm, algorithm)
    local key = algorithm .. " " .. realm
    local index = indexes[key]
    if not index then
      if nindexes >= MAX_HASH_INDEXES then
        indexes, nindexes = {}, 0
      end
      index = {}
      for user, e in pairs(users) do
        if e.password or e.ha1[realm] then
          index[core.digest_userhash(algorithm, user, realm)] = user
        end
      end
      indexes[key], nindexes = index, nindexes + 1
    end
    return index[hash]
  end
  return lookup, n
end

-- ---------------------------------------------------------------------------
-- Client side
-- ---------------------------------------------------------------------------

local function hex(s)
  return (s:gsub(".", function(c)
    return format("%02x", byte(c))
  end))
end

local function needs_ext(user)
  return user:find('[%c"\\\128-\255]') ~= nil
end

-- The challenges of a 401/407 (both header kinds: a proxy aggregates the
-- challenges of every forked branch into one response): realm -> the
-- strongest Digest challenge we support.
local function challenges_of(res)
  local by_realm, order = {}, {}
  for _, hname in ipairs({ "Proxy-Authenticate", "WWW-Authenticate" }) do
    for i = 1, res:count(hname) do
      local a = res:auth(hname, i)
      local p = a and a.scheme:lower() == "digest" and a.params
      local realm = p and type(p.realm) == "string" and p.realm
      local alg = p and (type(p.algorithm) == "string" and p.algorithm or "MD5")
      local name, sess = nil, false
      if alg then
        name, sess = core.digest_alg(alg)
      end
      if realm and name and type(p.nonce) == "string" then
        local rank = STRENGTH[name] * 2 + (sess and 0 or 1)
        local cur = by_realm[realm]
        if not cur then
          order[#order + 1] = realm
        end
        if not cur or rank > cur.rank then
          by_realm[realm] = {
            rank = rank, params = p, realm = realm,
            algorithm = sess and name .. "-sess" or name,
            header = hname == "Proxy-Authenticate" and "Proxy-Authorization" or "Authorization",
          }
        end
      end
    end
  end
  local out = {}
  for i, realm in ipairs(order) do
    out[i] = by_realm[realm]
  end
  return out
end

-- The qop the client answers challenge parameters p with: "auth" when
-- offered, else "auth-int"; nil without qop (RFC 2069); false when only
-- qops we do not know are offered.
local function client_qop(p)
  if type(p.qop) ~= "string" then
    return nil
  end
  local offered = {}
  for q in p.qop:gmatch("[^%s,]+") do
    offered[q:lower()] = true
  end
  return offered.auth and "auth" or offered["auth-int"] and "auth-int" or false
end

-- The credentials value answering challenge c for req, with nonce-count
-- count (1 for a fresh challenge; RFC 7616 §3.4: the nc of a reused nonce
-- goes up by one per request, with a new cnonce each time).
local function credentials_value(req, c, user, password, body, count)
  local p = c.params
  local qop = client_qop(p)
  if qop == false then
    return nil -- only qops we do not know
  end
  local base = c.algorithm:gsub("%-sess$", "")
  local ha1 = core.digest_ha1(base, user, c.realm, password)
  local cnonce = qop and hex(core.random_bytes(12)) or nil
  local nc = qop and format("%08x", count) or nil
  local response = core.digest_response({
    algorithm = c.algorithm, ha1 = ha1, nonce = p.nonce, nc = nc, cnonce = cnonce,
    qop = qop, method = req.method, uri = req.uri,
    body = qop == "auth-int" and (body or "") or nil,
  })
  local v = { "Digest " }
  local hashed = type(p.userhash) == "string" and p.userhash:lower() == "true"
  if hashed then -- RFC 7616 §3.4.4
    v[#v + 1] = "username=\"" .. core.digest_userhash(base, user, c.realm) .. "\""
  elseif needs_ext(user) then
    v[#v + 1] = "username*=" .. encode_ext(user)
  else
    v[#v + 1] = "username=" .. quote(user)
  end
  v[#v + 1] = ", realm=" .. quote(c.realm) .. ", nonce=" .. quote(p.nonce)
    .. ", uri=" .. quote(req.uri) .. ", response=\"" .. response .. "\""
    .. ", algorithm=" .. c.algorithm
  if qop then
    v[#v + 1] = ", qop=" .. qop .. ", nc=" .. nc .. ", cnonce=\"" .. cnonce .. "\""
  end
  if type(p.opaque) == "string" then
    v[#v + 1] = ", opaque=" .. quote(p.opaque)
  end
  if hashed then
    v[#v + 1] = ", userhash=true"
  end
  return concat(v)
end

-- The nonces answered before, kept to answer the next requests to the same
-- target without a new challenge: srv -> { n = targets, t = { target ->
-- { realm -> challenge c with c.nc, the last nonce-count used } } }. Bounded:
-- past MAX_TARGETS targets of one server, they are all forgotten (the next
-- request to each is challenged again, as a first one).
local sessions = setmetatable({}, { __mode = "k" })
local MAX_TARGETS = 256

-- The nonce store of requests of req's method from srv to dest (or,
-- without dest, to the Request-URI's host and port). Per method: a
-- registrar's 401 to REGISTER is reused by the refreshes, a proxy's 407 to
-- INVITE by the next INVITEs; credentials meant for one are never sent
-- (and forwarded) with the other.
local function nonce_store(srv, req, dest)
  local target = dest
  if not target then
    local u = core.uri(req.uri or "")
    target = u and u.host and (u.host:lower() .. ":" .. tostring(u.port or "")) or ""
  end
  target = target .. " " .. tostring(req.method)
  local s = sessions[srv]
  if not s or s.n >= MAX_TARGETS and not s.t[target] then
    s = { n = 0, t = {} }
    sessions[srv] = s
  end
  local store = s.t[target]
  if not store then
    store = {}
    s.t[target], s.n = store, s.n + 1
  end
  return store
end

-- A copy of req with the next CSeq (unless same_cseq) and, per challenge,
-- new credentials in place of earlier ones for the same realm.
local function next_request(req, answers, same_cseq)
  local copy = assert(core.parse(tostring(req)))
  if not same_cseq then
    copy:set_header("CSeq", (req.cseq + 1) .. " " .. req.cseq_method)
  end
  local by_header = {}
  for _, a in ipairs(answers) do
    by_header[a.header] = by_header[a.header] or {}
    by_header[a.header][a.realm] = a.value
  end
  for hname, realms in pairs(by_header) do
    local keep = {}
    for i, value in ipairs(copy:headers(hname)) do
      local a = copy:auth(hname, i)
      if not (a and type(a.params.realm) == "string" and realms[a.params.realm]) then
        keep[#keep + 1] = value
      end
    end
    copy:remove_header(hname)
    for _, value in ipairs(keep) do
      copy:add_header(hname, value)
    end
    local names = {}
    for realm in pairs(realms) do
      names[#names + 1] = realm
    end
    sort(names)
    for _, realm in ipairs(names) do
      copy:add_header(hname, realms[realm])
    end
  end
  return copy
end


--- The `credentials` option of a UAC request as the function `srv:send`
-- calls: a function(realm, challenge) is kept, a table `{ user =,
-- password = [, realm =] }` (`username` for `user`) becomes one that
-- answers its realm (any realm when it names none); nil stays nil.
-- @param c a function, a table or nil
-- @tparam[opt=1] integer lvl the error level for a bad `c`, as `error`'s
-- @treturn function|nil
function M.credentials(c, lvl)
  if c == nil or type(c) == "function" then
    return c
  end
  if type(c) ~= "table" or type(c.user or c.username) ~= "string" or type(c.password) ~= "string" then
    error("credentials: function(realm, challenge) or { user =, password = } expected", (lvl or 1) + 1)
  end
  local user = c.user or c.username
  return function(realm)
    if c.realm and c.realm ~= realm then
      return nil
    end
    return user, c.password
  end
end

--- Send a request and answer digest challenges (what `srv:send` does when
-- `opts.credentials` is given).
--
-- A 401 or 407 is answered by sending the request once more, with the
-- next CSeq (the transaction gives it a new branch) and, for every realm
-- challenged, Authorization (for WWW-Authenticate) or Proxy-Authorization
-- (for Proxy-Authenticate) — all the challenges of a response together,
-- as a proxy aggregates those of its forks. For each realm the strongest
-- algorithm offered is used (SHA-512-256, SHA-256, MD5), with qop=auth, a
-- cnonce and nc=00000001 when offered (auth-int when it is the only one; the
-- RFC 2069 form when the challenge has no qop).
--
-- The nonce is then reused (RFC 7616 §3.4): the next requests of this
-- server with the same method to the same `dest` (or, without one, to the
-- same Request-URI host and port) carry credentials for every realm
-- answered before, at once, with the same nonce, the next nc (00000002,
-- 00000003, ...) and a fresh cnonce. A challenge to such a request (the nonce went stale, or the
-- server forgot it) is answered with its new nonce and nc=00000001, as a
-- first one. A challenge without qop (RFC 2069: one request per nonce) is
-- not reused. A challenge with `userhash=true` is answered with the user
-- name hashed, H(user ":" realm), and `userhash=true` (RFC 7616 §3.4.4).
--
-- `opts.credentials(realm, challenge)` gives `user, password` (challenge:
-- the challenge's parameters, e.g. `challenge.algorithm`); nil stops and
-- the 401/407 is returned. A second challenge for a realm already answered
-- is returned too (a wrong password), unless it says `stale=true`, which
-- is answered once more.
-- @tparam Server srv
-- @tparam Message req
-- @tparam[opt] string dest
-- @tparam table opts `credentials` and the options of `srv:send`
-- @treturn[1] Message the final response
-- @treturn[1] Message the request that got it (a copy with credentials and
--   the CSeq to acknowledge, when credentials were sent)
-- @return[2] nil
-- @treturn[2] string error message
-- @treturn[2] string error code name
function M.send(srv, req, dest, opts)
  local credentials = opts.credentials
  if type(credentials) ~= "function" then
    error("credentials: function(realm, challenge) expected", 2)
  end
  local plain = {}
  for k, v in pairs(opts) do
    if k ~= "credentials" then
      plain[k] = v
    end
  end
  local store = nonce_store(srv, req, dest)
  local answered, stale_retried = {}, {}
  local cur = req
  -- the nonces of earlier challenges, with the next nc
  if req.method ~= "ACK" and req.method ~= "CANCEL" then
    local realms, answers = {}, {}
    for realm in pairs(store) do
      realms[#realms + 1] = realm
    end
    sort(realms)
    for _, realm in ipairs(realms) do
      local c = store[realm]
      local user, password = credentials(realm, c.params)
      if type(user) == "string" and type(password) == "string" then
        c.nc = c.nc + 1
        local value = credentials_value(req, c, user, password, req.body, c.nc)
        if value then
          answers[#answers + 1] = { header = c.header, realm = realm, value = value }
        end
      end
    end
    if #answers > 0 then
      cur = next_request(req, answers, true)
    end
  end
  local res, err, name = srv:send(cur, dest, plain)
  for _ = 1, 8 do -- bounded: realms answered once, stale once more
    if not res or (res.status ~= 401 and res.status ~= 407) or req.method == "ACK"
        or req.method == "CANCEL" then
      break
    end
    local answers = {}
    for _, c in ipairs(challenges_of(res)) do
      store[c.realm] = nil -- its nonce, if we had one, was refused
      local again = answered[c.realm]
      if again then
        if c.params.stale ~= "true" and c.params.stale ~= "TRUE" or stale_retried[c.realm] then
          return res -- a second challenge for this realm: credentials refused
        end
        stale_retried[c.realm] = true
      end
      local user, password = credentials(c.realm, c.params)
      if type(user) ~= "string" or type(password) ~= "string" then
        return res
      end
      local value = credentials_value(cur, c, user, password, cur.body, 1)
      if not value then
        return res
      end
      answered[c.realm] = true
      answers[#answers + 1] = { header = c.header, realm = c.realm, value = value }
      if client_qop(c.params) then -- with qop the nonce serves again, nc 2, 3, ...
        c.nc = 1
        store[c.realm] = c
      end
    end
    if #answers == 0 then
      break
    end
    cur = next_request(cur, answers)
    res, err, name = srv:send(cur, dest, plain)
  end
  if not res then
    return nil, err, name
  end
  return res, cur
end

return M
