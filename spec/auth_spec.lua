-- luasip.auth: digest authentication. Known answers (spec/fixtures/
-- digest_kat.txt, computed with Python's hashlib), auth.check on parsed
-- requests (every failure, replay, stale, username*, hostile headers),
-- credential stripping, the users file, trace redaction, then a server and
-- a client on 127.0.0.1 (srv:send answering 401 and 407).
local here = debug.getinfo(1, "S").source:gsub("^@", ""):match("^(.*)/[^/]*$") or "."
local N = dofile(here .. "/support/net.lua")
local core = require "luasip.core"
local sip = require "luasip"
local auth = require "luasip.auth"

local V4 = N.V4
local SECRET = "0123456789abcdef0123456789abcdef"

local function fixtures()
  local rows = {}
  for line in io.lines(here .. "/fixtures/digest_kat.txt") do
    if not line:find("^#") then
      local f = {}
      for x in (line .. "|"):gmatch("([^|]*)|") do
        f[#f + 1] = x
      end
      rows[#rows + 1] = {
        name = f[1], algorithm = f[2], user = f[3], realm = f[4], password = f[5],
        method = f[6], uri = f[7], nonce = f[8], nc = f[9] ~= "" and f[9] or nil,
        cnonce = f[10] ~= "" and f[10] or nil, qop = f[11] ~= "-" and f[11] or nil,
        body = (f[12]:gsub("%x%x", function(h) return string.char(tonumber(h, 16)) end)),
        ha1 = f[13], response = f[14],
      }
    end
  end
  return rows
end

-- A REGISTER (or another request) as a parsed message, with extra header
-- lines.
local function request(t)
  t = t or {}
  local bytes = N.request({
    method = t.method or "REGISTER", uri = t.uri or "sip:example.com",
    from = "<sip:alice@example.com>;tag=1", to = "<sip:alice@example.com>",
    headers = t.headers, body = t.body, content_type = t.body and "application/sdp" or nil,
    cseq = t.cseq,
  })
  return assert(sip.parse(bytes))
end

-- Authorization value for the given fields (computed with the C primitive
-- directly, not with luasip.auth's client code).
local function credentials(t)
  local alg = t.algorithm or "SHA-256"
  local base = alg:gsub("%-sess$", "")
  local ha1 = core.digest_ha1(base, t.user or "alice", t.realm or "example.com", t.password or "secret")
  local qop = t.qop
  if qop == nil then
    qop = "auth"
  end
  local resp = t.response or core.digest_response({
    algorithm = alg, ha1 = ha1, nonce = t.nonce, nc = qop and (t.nc or "00000001") or nil,
    cnonce = qop and "abc123" or nil, qop = qop or nil, method = t.method or "REGISTER",
    uri = t.uri or "sip:example.com", body = t.body,
  })
  local v = { "Digest " }
  if t.userhash then
    v[#v + 1] = ('username="%s", userhash=true'):format(t.userhash == true
      and core.digest_userhash(base, t.user or "alice", t.realm or "example.com") or t.userhash)
  elseif t.username_star then
    v[#v + 1] = "username*=" .. t.username_star
  else
    v[#v + 1] = ('username="%s"'):format(t.user or "alice")
  end
  v[#v + 1] = (', realm="%s", nonce="%s", uri="%s", response="%s", algorithm=%s'):format(
    t.realm or "example.com", t.nonce, t.uri or "sip:example.com", resp, alg)
  if qop then
    v[#v + 1] = (", qop=%s, nc=%s, cnonce=\"abc123\""):format(qop, t.nc or "00000001")
  end
  return table.concat(v)
end

local function lookup(user)
  if user == "alice" then
    return "secret"
  elseif user == "J\195\164s\195\184n Doe" then
    return "Secret, or not?"
  elseif user == "ha1user" then
    return { ["SHA-256"] = core.digest_ha1("SHA-256", "ha1user", "example.com", "pw") }
  end
  return nil
end

local function fresh_nonce(realm, when_us)
  return core.nonce_new(SECRET, realm or "example.com", when_us)
end

describe("luasip.auth", function()
  setup(function()
    auth.configure({ secret = SECRET })
  end)

  describe("known answers (hashlib fixtures, RFC 7616 §3.9.1, RFC 2617 §3.5)", function()
    local rows = fixtures()

    it("has the RFC cases and the computed ones", function()
      assert.is_true(#rows >= 17)
      local names = {}
      for _, r in ipairs(rows) do
        names[r.name] = r.response
      end
      assert.equal("8ca523f5e9506fed4657c9700eebdbec", names["rfc7616-md5"])
      assert.equal("753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1",
        names["rfc7616-sha256"])
      assert.equal("6629fae49393a05397450978507c4ef1", names["rfc2617-md5"])
    end)

    for _, r in ipairs(fixtures()) do
      it(r.name, function()
        local base = r.algorithm:gsub("%-sess$", "")
        assert.equal(r.ha1, core.digest_ha1(base, r.user, r.realm, r.password))
        local t = {
          algorithm = r.algorithm, ha1 = r.ha1, nonce = r.nonce, nc = r.nc, cnonce = r.cnonce,
          qop = r.qop, method = r.method, uri = r.uri, body = r.body,
        }
        assert.equal(r.response, core.digest_response(t))
        assert.is_true(core.digest_verify(t, r.response))
        assert.is_true(core.digest_verify(t, r.response:upper()))
        assert.is_false(core.digest_verify(t, r.response:sub(1, -2) .. "x"))
      end)
    end
  end)

  it("userhash: H(user \":\" realm) (RFC 7616 §3.9.2; computed with openssl dgst)", function()
    -- the RFC prints 488869477bf2... for this one: erratum 4897, it is not
    -- H("Jäsøn Doe:api@example.org")
    assert.equal("793263caabb707a56211940d90411ea4a575adeccb7e360aeb624ed06ece9b0b",
      core.digest_userhash("SHA-512-256", "J\195\164s\195\184n Doe", "api@example.org"))
    assert.equal("a947aad205e80e429958a387394944c6b496301e79f89d35a4cc23b6ee12b5b6",
      auth.userhash("Mufasa", "http-auth@example.org"))
    assert.equal("4238f3a16167373febb9bc4d43db9cc4", auth.userhash("Mufasa", "http-auth@example.org", "MD5"))
    assert.has_error(function()
      auth.userhash("a", "b", "SHA-1")
    end)
  end)

  describe("challenge", function()
    it("one header per algorithm in the order given, one nonce, 401 for REGISTER", function()
      local code, h = auth.challenge_headers(request(), { realm = "example.com" })
      assert.equal(401, code)
      assert.equal(2, #h)
      assert.equal("WWW-Authenticate", h[1][1])
      assert.matches('^Digest realm="example.com", nonce="%x+", algorithm=SHA%-256, qop="auth"$', h[1][2])
      assert.matches("algorithm=MD5", h[2][2])
      assert.equal(h[1][2]:match('nonce="(%x+)"'), h[2][2]:match('nonce="(%x+)"'))
    end)

    it("407 for a proxy (inferred or given), stale, opaque, qop list, SHA-512-256", function()
      local invite = request({ method = "INVITE", uri = "sip:bob@example.com" })
      local code, h = auth.challenge_headers(invite, {
        algorithms = { "SHA-512-256" }, qop = { "auth", "auth-int" }, stale = true, opaque = "o\"p",
      })
      assert.equal(407, code)
      assert.equal("Proxy-Authenticate", h[1][1])
      assert.matches('realm="example.com"', h[1][2], 1, true)
      assert.matches('algorithm=SHA-512-256, qop="auth,auth-int", opaque="o\\"p", stale=true', h[1][2], 1, true)
      assert.equal(401, (auth.challenge_headers(invite, { proxy = false })))
      local options = request({ method = "OPTIONS", uri = "sip:example.com" })
      assert.equal(401, (auth.challenge_headers(options)))
    end)

    it("says userhash=true when configured", function()
      local _, h = auth.challenge_headers(request(), { realm = "example.com", userhash = true })
      for _, x in ipairs(h) do
        assert.matches(", userhash=true$", x[2])
      end
      _, h = auth.challenge_headers(request(), { realm = "example.com" })
      assert.not_matches("userhash", h[1][2])
    end)

    it("refuses an unknown algorithm (a script error)", function()
      assert.has_error(function()
        auth.challenge_headers(request(), { algorithms = { "SHA-1" } })
      end)
    end)
  end)

  describe("check", function()
    local function check(t, opts)
      t.nonce = t.nonce or fresh_nonce(t.realm)
      local req = request({
        method = t.method, uri = t.req_uri, body = t.body,
        headers = { (t.header or "Authorization") .. ": " .. credentials(t) },
      })
      return auth.check(req, lookup, opts or { realm = "example.com" })
    end

    it("accepts SHA-256, MD5 and (offered) SHA-512-256, and -sess", function()
      assert.equal("alice", check({ algorithm = "SHA-256" }))
      assert.equal("alice", check({ algorithm = "MD5" }))
      assert.equal("alice", check({ algorithm = "SHA-512-256" },
        { realm = "example.com", algorithms = { "SHA-512-256" } }))
      assert.equal("alice", check({ algorithm = "MD5-sess" },
        { realm = "example.com", algorithms = { "MD5-sess" } }))
      assert.same({ nil, "algorithm not offered" }, { check({ algorithm = "SHA-512-256" }) })
    end)

    it("accepts qop=auth-int over the body, and refuses a changed body", function()
      local opts = { realm = "example.com", qop = { "auth", "auth-int" } }
      local sdp = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\n"
      assert.equal("alice", check({ qop = "auth-int", body = sdp }, opts))
      local nonce = fresh_nonce()
      local req = request({ body = sdp .. "x", headers = {
        "Authorization: " .. credentials({ qop = "auth-int", body = sdp, nonce = nonce }),
      } })
      assert.same({ nil, "wrong password" }, { auth.check(req, lookup, opts) })
      assert.same({ nil, "qop not offered" }, { check({ qop = "auth-int", body = sdp }) })
    end)

    it("accepts no qop (RFC 2069) only when configured, and only once per nonce", function()
      assert.same({ nil, "qop missing" }, { check({ qop = false }) })
      local nonce = fresh_nonce()
      local opts = { realm = "example.com", allow_no_qop = true }
      assert.equal("alice", check({ qop = false, nonce = nonce }, opts))
      assert.same({ nil, "nonce count replayed", true }, { check({ qop = false, nonce = nonce }, opts) })
    end)

    it("refuses a replayed nc (stale=true), accepts a higher one", function()
      local nonce = fresh_nonce()
      assert.equal("alice", check({ nonce = nonce, nc = "00000001" }))
      assert.same({ nil, "nonce count replayed", true }, { check({ nonce = nonce, nc = "00000001" }) })
      assert.equal("alice", check({ nonce = nonce, nc = "00000003" }))
      assert.same({ nil, "nonce count replayed", true }, { check({ nonce = nonce, nc = "00000002" }) })
    end)

    it("gives stale for an expired nonce with a good digest, not with a bad one", function()
      local old = fresh_nonce("example.com", (os.time() - 3600) * 1000000)
      assert.same({ nil, "stale nonce", true }, { check({ nonce = old }) })
      assert.same({ nil, "wrong password" }, { check({ nonce = old, password = "nope" }) })
      local opts = { realm = "example.com", lifetime = 7200 }
      assert.equal("alice", check({ nonce = fresh_nonce("example.com", (os.time() - 3600) * 1000000) }, opts))
    end)

    it("wrong password, unknown user, another realm, a forged or foreign nonce, another URI", function()
      assert.same({ nil, "wrong password" }, { check({ password = "wrong" }) })
      assert.same({ nil, "unknown user" }, { check({ user = "mallory" }) })
      assert.same({ nil, "no credentials" }, { check({ realm = "other.org" }) })
      assert.same({ nil, "invalid nonce" }, { check({ nonce = ("0"):rep(64) }) })
      assert.same({ nil, "invalid nonce" }, { check({ nonce = core.nonce_new("another secret!!", "example.com") }) })
      assert.same({ nil, "invalid nonce" }, { check({ nonce = fresh_nonce("other.org") }) })
      assert.same({ nil, "uri mismatch" }, { check({ uri = "sip:other.example.com" }) })
      -- the URI compared as §19.1.4 says
      assert.equal("alice", check({ uri = "sip:EXAMPLE.com" }))
      assert.same({ nil, "no credentials" }, { auth.check(request(), lookup, { realm = "example.com" }) })
      -- a proxy reads Proxy-Authorization
      assert.equal("alice", check({ header = "Proxy-Authorization" }, { realm = "example.com", proxy = true }))
      assert.same({ nil, "no credentials" }, { check({}, { realm = "example.com", proxy = true }) })
    end)

    it("takes HA1s from lookup, and username* (RFC 7616 §3.4.4)", function()
      assert.equal("ha1user", check({ user = "ha1user", password = "pw" }))
      assert.same({ nil, "unknown user" }, { check({ user = "ha1user", password = "pw", algorithm = "MD5" }) })
      local jason = "J\195\164s\195\184n Doe"
      assert.equal(jason, check({ user = jason, password = "Secret, or not?",
        username_star = "UTF-8''J%C3%A4s%C3%B8n%20Doe" }))
      assert.same({ nil, "malformed credentials" }, { check({ username_star = "latin1''x" }) })
      assert.same({ nil, "malformed credentials" }, { check({ username_star = "UTF-8''bad%zz" }) })
      local nonce = fresh_nonce()
      local req = request({ headers = { "Authorization: " .. credentials({ nonce = nonce })
        .. ", username*=UTF-8''alice" } })
      assert.same({ nil, "malformed credentials" }, { auth.check(req, lookup, { realm = "example.com" }) })
    end)

    it("accepts userhash=true (RFC 7616 §3.4.4): opts.unhash, or a users file's lookup", function()
      -- no way to turn the hash back into a user: unknown
      assert.same({ nil, "unknown user" }, { check({ userhash = true }) })
      local seen_args
      local opts = { realm = "example.com", userhash = true, unhash = function(h, realm, alg)
        seen_args = { h, realm, alg }
        return h == auth.userhash("alice", "example.com") and "alice" or nil
      end }
      assert.equal("alice", check({ userhash = true }, opts))
      assert.same({ auth.userhash("alice", "example.com"), "example.com", "SHA-256" }, seen_args)
      -- hex in upper case is the same hash
      assert.equal("alice", check({ userhash = auth.userhash("alice", "example.com"):upper() }, opts))
      assert.same({ nil, "wrong password" }, { check({ userhash = true, password = "nope" }, opts) })
      assert.same({ nil, "unknown user" }, { check({ userhash = true, user = "mallory" }, opts) })
      -- the hash of another algorithm or realm is not the user
      assert.same({ nil, "unknown user" },
        { check({ userhash = auth.userhash("alice", "example.com", "MD5") }, opts) })
      -- userhash with username* is malformed
      local nonce = fresh_nonce()
      local req = request({ headers = { "Authorization: " .. credentials({ nonce = nonce, userhash = true })
        .. ", username*=UTF-8''alice" } })
      assert.same({ nil, "malformed credentials" }, { auth.check(req, lookup, opts) })
      -- a users file knows its users by their hashes (password and HA1 lines)
      local path = os.tmpname()
      local f = assert(io.open(path, "w"))
      f:write("alice:secret\nbob:example.com:MD5:" .. core.digest_ha1("MD5", "bob", "example.com", "bobpw") .. "\n")
      f:close()
      local look = assert(auth.load_users(path))
      os.remove(path)
      local o2 = { realm = "example.com" }
      local function check_file(t)
        t.nonce = fresh_nonce()
        local r = request({ headers = { "Authorization: " .. credentials(t) } })
        return auth.check(r, look, o2)
      end
      assert.equal("alice", check_file({ userhash = true }))
      assert.equal("alice", check_file({ userhash = true, algorithm = "MD5" }))
      assert.equal("bob", check_file({ userhash = true, user = "bob", password = "bobpw", algorithm = "MD5" }))
      assert.same({ nil, "unknown user" }, { check_file({ userhash = true, user = "carol" }) })
    end)

    it("lookup may wait", function()
      local nonce = fresh_nonce()
      local req = request({ headers = { "Authorization: " .. credentials({ nonce = nonce }) } })
      local user = N.run_task(function()
        return auth.check(req, function(u, realm)
          sip.sleep(0.01)
          return lookup(u, realm)
        end, { realm = "example.com" })
      end)
      assert.equal("alice", user)
    end)

    it("survives hostile headers: junk, unquoted and oversized values, 100 lines", function()
      local opts = { realm = "example.com" }
      local hostile = {
        "Digest", "Digest ,,,,", "Digest realm", 'Digest realm="example.com', "Digest realm=example.com",
        'Digest realm="example.com", username=alice, nonce=x, uri=sip:example.com, response=1',
        'Digest realm="example.com", username="alice", nonce="' .. ("n"):rep(10000) ..
          '", uri="sip:example.com", response="' .. ("f"):rep(5000) .. '", qop=auth, nc=1, cnonce=x',
        'Digest realm="example.com", username="alice", nonce="' .. fresh_nonce() ..
          '", uri="sip:example.com", response="00", qop=auth, nc=zzzzzzzz, cnonce="c"',
        'Digest realm="example.com", username="alice", nonce="' .. fresh_nonce() ..
          '", uri="sip:example.com", response="00", qop=auth, nc=00000001',
        'Digest realm="example.com", username="alice", nonce="' .. fresh_nonce() ..
          '", uri="sip:example.com", response="00", algorithm=SHA-1, qop=auth, nc=00000001, cnonce="c"',
        "Basic YWxpY2U6c2VjcmV0", "\1\2\3", "Digest realm=\"example.com\", \"\"=\"\"",
      }
      for _, v in ipairs(hostile) do
        local ok, req = pcall(request, { headers = { "Authorization: " .. v } })
        if ok then
          local user, why = auth.check(req, lookup, opts)
          assert.is_nil(user)
          assert.is_string(why)
        end
      end
      -- 100 Authorization lines, for other realms, then ours
      local lines = {}
      for i = 1, 100 do
        lines[i] = ('Authorization: Digest realm="r%d.example", username="alice", nonce="x", '
          .. 'uri="sip:example.com", response="0"'):format(i)
      end
      assert.same({ nil, "no credentials" }, { auth.check(request({ headers = lines }), lookup, opts) })
      lines[101] = "Authorization: " .. credentials({ nonce = fresh_nonce() })
      assert.equal("alice", auth.check(request({ headers = lines }), lookup, opts))
    end)

    it("consume removes the accepted credentials (our realm) and keeps the others", function()
      local nonce = fresh_nonce()
      local req = request({ method = "INVITE", uri = "sip:bob@example.com", headers = {
        'Proxy-Authorization: Digest realm="upstream.org", username="a", nonce="n", '
          .. 'uri="sip:bob@example.com", response="0"',
        "Proxy-Authorization: " .. credentials({ nonce = nonce, method = "INVITE", uri = "sip:bob@example.com" }),
        'Authorization: Digest realm="example.com", username="alice", nonce="n", '
          .. 'uri="sip:bob@example.com", response="1"',
      } })
      assert.equal(0, auth.consume(req)) -- nothing accepted yet
      assert.equal("alice", auth.check(req, lookup, { realm = "example.com" }))
      assert.equal(1, auth.consume(req))
      local left = req:headers("Proxy-Authorization")
      assert.equal(1, #left)
      assert.matches('realm="upstream.org"', left[1], 1, true)
      assert.equal(1, #req:headers("Authorization")) -- end-to-end credentials stay
      assert.equal(0, auth.consume(req))
    end)

    it("the nc memory is bounded", function()
      local st = auth.stats()
      assert.is_true(st.bytes <= 65536 * 32)
      assert.is_true(st.nonces >= 1)
    end)
  end)

  describe("users file", function()
    local path = os.tmpname()
    after_each(function()
      os.remove(path)
    end)

    local function write(text)
      local f = assert(io.open(path, "w"))
      f:write(text)
      f:close()
    end

    it("reads passwords and HA1s per realm and algorithm", function()
      local h = core.digest_ha1("SHA-256", "bob", "example.com", "bobpw")
      local m = core.digest_ha1("MD5", "bob", "example.com", "bobpw")
      write("# users\nalice:secret:with:colons\n\nbob:example.com:SHA-256:" .. h
        .. "\nbob:example.com:MD5:" .. m .. "\n")
      local look, n = assert(auth.load_users(path))
      assert.equal(2, n)
      assert.equal("secret:with:colons", look("alice", "any.realm"))
      assert.same({ ["SHA-256"] = h, MD5 = m }, look("bob", "example.com"))
      assert.is_nil(look("bob", "other.realm"))
      assert.is_nil(look("carol", "example.com"))
    end)

    it("names the bad line", function()
      write("alice:pw\nbob:example.com:SHA-1:" .. ("a"):rep(40) .. "\n")
      local look, err = auth.load_users(path)
      assert.is_nil(look)
      assert.matches(":2: unknown algorithm SHA%-1", err)
      write("bob:example.com:MD5:abcd\n")
      assert.matches(":1: HA1 of the wrong length", select(2, auth.load_users(path)))
      write("nocolon\n")
      assert.matches(":1: expected", select(2, auth.load_users(path)))
      assert.is_nil((auth.load_users(path .. ".missing")))
    end)
  end)

  it("redacts credentials for traces", function()
    local req = request({ headers = { "Authorization: " .. credentials({ nonce = fresh_nonce() }),
      "Proxy-Authorization: Basic c2VjcmV0" } })
    local out = core.auth_redact(tostring(req))
    assert.not_matches('response="%x+"', out)
    assert.not_matches("c2VjcmV0", out)
    assert.not_matches("abc123", out) -- cnonce
    assert.matches('username="alice"', out, 1, true)
    local plain = "OPTIONS sip:x SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1\r\n\r\n"
    assert.equal(plain, core.auth_redact(plain))
  end)

  describe("over the network (127.0.0.1)", function()
    local uas, uas_port, uac
    local seen

    before_each(function()
      seen = {}
      local l
      uas, l = N.server()
      uas_port = l.port
      uac = N.server()
    end)

    after_each(function()
      N.cleanup()
    end)

    local function outgoing(method, uri)
      return assert(sip.request({
        method = method, uri = uri or ("sip:example.com:" .. uas_port),
        from = "<sip:alice@example.com>;tag=c1", to = "<sip:alice@example.com>",
        contact = "<sip:alice@127.0.0.1:5999>", cseq = 7,
      }))
    end

    local function send(req, creds)
      return N.run_task(function()
        return uac:send(req, "udp:" .. V4 .. ":" .. uas_port, { credentials = creds })
      end)
    end

    it("srv:send answers a 401 with SHA-256 (new CSeq, new branch), and gives up on a wrong password", function()
      uas:on_request(function(req)
        seen[#seen + 1] = { cseq = req.cseq, branch = req.via[1].branch, auth = req:header("Authorization") }
        local user = auth.authenticate(req, lookup, { realm = "example.com" })
        if user then
          req:reply(200)
        end
      end)
      local res, sent = send(outgoing("REGISTER"), function(realm, ch)
        assert.equal("example.com", realm)
        assert.equal("SHA-256", ch.algorithm)
        return "alice", "secret"
      end)
      assert.equal(200, res.status)
      assert.equal(2, #seen)
      assert.is_nil(seen[1].auth)
      assert.equal(7, seen[1].cseq)
      assert.equal(8, seen[2].cseq)
      assert.equal(8, sent.cseq)
      assert.are_not.equal(seen[1].branch, seen[2].branch)
      assert.matches("algorithm=SHA%-256", seen[2].auth)
      assert.matches("qop=auth, nc=00000001", seen[2].auth, 1, true)

      seen = {}
      res = send(outgoing("REGISTER"), function()
        return "alice", "wrong"
      end)
      assert.equal(401, res.status)
      assert.equal(2, #seen) -- once more, then the second 401 comes back
      -- no credentials: the 401 itself
      seen = {}
      res = send(outgoing("REGISTER"), function()
        return nil
      end)
      assert.equal(401, res.status)
      assert.equal(1, #seen)
    end)

    it("reuses the nonce with nc 2, 3, ... and a fresh cnonce until stale=true, which resets", function()
      local force_stale = false
      uas:on_request(function(req)
        local a = req:header("Authorization")
        seen[#seen + 1] = a and {
          nonce = a:match('nonce="([^"]+)"'), nc = a:match("nc=(%x+)"), cnonce = a:match('cnonce="([^"]+)"'),
        } or {}
        local user, why, stale = auth.check(req, lookup, { realm = "example.com" })
        if user and force_stale then
          force_stale, user, stale = false, nil, true
        end
        if user then
          return req:reply(200)
        end
        seen[#seen].why = why
        auth.challenge(req, { realm = "example.com", stale = stale })
      end)
      local function register()
        return send(outgoing("REGISTER"), function()
          return "alice", "secret"
        end).status
      end
      assert.equal(200, register()) -- 401, then nc=00000001
      assert.equal(2, #seen)
      assert.is_nil(seen[1].nonce)
      assert.equal("00000001", seen[2].nc)
      local nonce = seen[2].nonce
      -- the next requests carry the same nonce at once, with the next nc
      assert.equal(200, register())
      assert.equal(200, register())
      assert.equal(4, #seen)
      assert.same({ nonce, "00000002" }, { seen[3].nonce, seen[3].nc })
      assert.same({ nonce, "00000003" }, { seen[4].nonce, seen[4].nc })
      assert.are_not.equal(seen[2].cnonce, seen[3].cnonce)
      assert.are_not.equal(seen[3].cnonce, seen[4].cnonce)
      -- stale=true: a new nonce, nc from 00000001 again, then 00000002
      force_stale = true
      assert.equal(200, register())
      assert.equal(6, #seen)
      assert.same({ nonce, "00000004" }, { seen[5].nonce, seen[5].nc })
      assert.are_not.equal(nonce, seen[6].nonce)
      assert.equal("00000001", seen[6].nc)
      assert.equal(200, register())
      assert.equal(7, #seen)
      assert.same({ seen[6].nonce, "00000002" }, { seen[7].nonce, seen[7].nc })
      -- another method to the same target starts without credentials
      assert.equal(200, send(outgoing("MESSAGE"), function()
        return "alice", "secret"
      end).status)
      assert.equal(9, #seen)
      assert.is_nil(seen[8].nonce)
      assert.equal("00000001", seen[9].nc)
      -- another target (dest) starts without credentials
      local other, l = N.server()
      local first
      other:on_request(function(req)
        if first == nil then
          first = req:header("Authorization") or false
        end
        req:reply(200)
      end)
      local res = N.run_task(function()
        return uac:send(outgoing("REGISTER"), "udp:" .. V4 .. ":" .. l.port,
          { credentials = function() return "alice", "secret" end })
      end)
      assert.equal(200, res.status)
      assert.is_false(first)
    end)

    it("the server refuses a replayed nc of a reused nonce (stale=true), over the network", function()
      local results = {}
      uas:on_request(function(req)
        local user, why, stale = auth.check(req, lookup, { realm = "example.com" })
        results[#results + 1] = user or why
        if user then
          return req:reply(200)
        end
        auth.challenge(req, { realm = "example.com", stale = stale })
      end)
      local creds = function()
        return "alice", "secret"
      end
      local _, sent = send(outgoing("REGISTER"), creds)
      local _, sent2 = send(outgoing("REGISTER"), creds) -- nc=00000002
      assert.matches("nc=00000002", sent2:header("Authorization"), 1, true)
      -- the same credentials again, in a new transaction: a replay
      local replay = assert(sip.parse(tostring(sent2)))
      replay:set_header("CSeq", (sent2.cseq + 1) .. " REGISTER")
      local res = N.run_task(function()
        return uac:send(replay, "udp:" .. V4 .. ":" .. uas_port)
      end)
      assert.equal(401, res.status)
      assert.matches("stale=true", res:header("WWW-Authenticate"), 1, true)
      assert.same({ "no credentials", "alice", "alice", "nonce count replayed" }, results)
      assert.is_not_nil(sent)
    end)

    it("hashes the user name when the challenge says userhash=true", function()
      local opts = { realm = "example.com", userhash = true, unhash = function(h)
        return h == auth.userhash("alice", "example.com") and "alice" or nil
      end }
      uas:on_request(function(req)
        seen[#seen + 1] = req:header("Authorization") or false
        if auth.authenticate(req, lookup, opts) then
          req:reply(200)
        end
      end)
      local res = send(outgoing("REGISTER"), function()
        return "alice", "secret"
      end)
      assert.equal(200, res.status)
      assert.equal(2, #seen)
      assert.matches('username="' .. auth.userhash("alice", "example.com") .. '"', seen[2], 1, true)
      assert.matches("userhash=true", seen[2], 1, true)
      assert.not_matches("alice", seen[2], 1, true)
    end)

    it("examples/registrar.lua --users --userhash: the client sends the hashed name, and registers", function()
      local P = dofile(here .. "/support/proc.lua")
      local dir = N.tmpdir()
      local f = assert(io.open(dir .. "/users", "w"))
      f:write("alice:secret\n")
      f:close()
      local proc = P.start({ "run", "examples/registrar.lua", "--listen", "udp:127.0.0.1:0",
                             "--users", dir .. "/users", "--realm", "example.com", "--userhash" })
      local port = assert(proc:port("udp"), proc:log())
      local req = assert(sip.request({
        method = "REGISTER", uri = "sip:example.com", from = "<sip:alice@example.com>;tag=u1",
        to = "<sip:alice@example.com>", contact = "<sip:alice@127.0.0.1:5999>", cseq = 1,
      }))
      local challenge
      local res, sent = N.run_task(function()
        return uac:send(req, "udp:" .. V4 .. ":" .. port, { credentials = function(_, ch)
          challenge = ch
          return "alice", "secret"
        end })
      end)
      assert.equal("true", challenge.userhash)
      assert.equal(200, res.status, proc:log())
      local a = sent:header("Authorization")
      assert.matches('username="' .. auth.userhash("alice", "example.com") .. '"', a, 1, true)
      assert.matches("userhash=true", a, 1, true)
      proc:stop()
      N.rmdir(dir)
    end)

    it("answers a stale=true challenge once more; auth-int when it is the only qop; username*", function()
      local jason = "J\195\164s\195\184n Doe"
      local opts = { realm = "example.com", qop = "auth-int", proxy = false } -- a UAS: 401
      uas:on_request(function(req)
        seen[#seen + 1] = req:header("Authorization") or false
        local user = auth.check(req, lookup, opts)
        if user and #seen == 2 then -- right, but say the nonce went stale
          return auth.challenge(req, { realm = "example.com", qop = "auth-int", stale = true, proxy = false })
        elseif user == jason then
          return req:reply(200)
        end
        auth.challenge(req, opts)
      end)
      local req = outgoing("MESSAGE", "sip:bob@127.0.0.1:" .. uas_port)
      local res = send(req, function()
        return jason, "Secret, or not?"
      end)
      assert.equal(200, res.status)
      assert.equal(3, #seen)
      assert.matches("qop=auth-int", seen[3], 1, true)
      assert.matches("username*=UTF-8''J%C3%A4s%C3%B8n%20Doe", seen[3], 1, true)
    end)

    it("answers a 407 with Proxy-Authorization, and several realms together", function()
      uas:on_request(function(req)
        seen[#seen + 1] = req:headers("Proxy-Authorization")
        local a = auth.check(req, lookup, { realm = "example.com", proxy = true })
        local b = auth.check(req, lookup, { realm = "b.example", proxy = true, algorithms = { "MD5" },
          qop = false, allow_no_qop = true })
        if a and b then
          return req:reply(200)
        end
        local _, h1 = auth.challenge_headers(req, { realm = "example.com", proxy = true })
        local _, h2 = auth.challenge_headers(req, { realm = "b.example", proxy = true,
          algorithms = { "MD5" }, qop = false })
        for _, h in ipairs(h2) do
          h1[#h1 + 1] = h
        end
        req:reply(407, nil, h1)
      end)
      local realms = {}
      local res = send(outgoing("MESSAGE", "sip:bob@127.0.0.1:" .. uas_port), function(realm)
        realms[#realms + 1] = realm
        return "alice", "secret"
      end)
      assert.equal(2, #seen)
      assert.equal(0, #seen[1])
      assert.equal(2, #seen[2])
      table.sort(realms)
      assert.same({ "b.example", "example.com" }, realms)
      assert.equal(200, res.status)
      -- b.example offered no qop: the RFC 2069 form
      local b
      for _, v in ipairs(seen[2]) do
        if v:find('realm="b.example"', 1, true) then
          b = v
        end
      end
      assert.matches("algorithm=MD5", b)
      assert.not_matches("qop=", b)
    end)

    it("proxy.relay strips the credentials of our realm and forwards the others", function()
      local proxy = require "luasip.proxy"
      local far, l = N.server()
      local far_port = l.port
      local got
      far:on_request(function(req)
        got = req:headers("Proxy-Authorization")
        req:reply(200)
      end)
      uas:on_request(function(req)
        local user = auth.authenticate(req, lookup, { realm = "example.com", proxy = true })
        if user then
          proxy.relay(req, "sip:bob@127.0.0.1:" .. far_port)
        end
      end)
      local req = outgoing("MESSAGE", "sip:bob@example.com")
      req:add_header("Proxy-Authorization",
        'Digest username="a", realm="upstream.org", nonce="n", uri="sip:bob@example.com", response="0"')
      local res = send(req, function(realm)
        assert.equal("example.com", realm)
        return "alice", "secret"
      end)
      assert.equal(200, res.status)
      assert.equal(1, #got)
      assert.matches('realm="upstream.org"', got[1], 1, true)
    end)
  end)
end)
