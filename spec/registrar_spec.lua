-- luasip.registrar over real sockets (127.0.0.1, UDP and TCP): every step
-- of RFC 3261 §10.3, Path (RFC 3327), Outbound (RFC 5626), GRUU (RFC 5627),
-- the hooks, store failures, registrar.lookup, and the RFC 4475 vectors
-- that concern registrars. Every case runs twice: with the C fast path
-- of registrar.save on (the default) and off (`fast = false`: the Lua flow
-- takes every REGISTER); both must show the behaviour.
local here = debug.getinfo(1, "S").source:gsub("^@", ""):match("^(.*)/[^/]*$") or "."
local N = dofile(here .. "/support/net.lua")
local H = dofile(here .. "/support/helpers.lua")
local log = require "luasip.log"
local sip = require "luasip"
local registrar = require "luasip.registrar"
local location = require "luasip.location"


local V4 = N.V4
local pack, unpack = table.pack, table.unpack

local run = N.run_task

-- The memory store is memoized by URL: every test uses its own AORs. The
-- spec reads it through `S` (each call in a coroutine).
local store = assert(location.open("memory"))
local S = setmetatable({}, { __index = function(_, name)
  return function(_, ...)
    local args = pack(...)
    return run(function()
      return store[name](store, unpack(args, 1, args.n))
    end)
  end
end })
local function lookup(uri, opts)
  return run(function()
    return registrar.lookup(uri, opts)
  end)
end

-- A store whose every call fails, as redis down does.
local broken = {
  url = "broken://",
  lookup = function()
    return nil, "location broken://: connection refused"
  end,
  save = function()
    return nil, "location broken://: connection refused"
  end,
  remove = function()
    return nil, "location broken://: connection refused"
  end,
  remove_all = function()
    return nil, "location broken://: connection refused"
  end,
}

local function quiet_log()
  local lines = {}
  log.configure { sink = function(line)
    lines[#lines + 1] = line
  end }
  finally(function()
    log.configure { sink = function(line)
      io.stderr:write(line, "\n")
    end }
  end)
  return lines
end

-- A registrar on udp and tcp 127.0.0.1:0; opts (a table the test may
-- change later) are given to registrar.save.
local fast_mode -- the `fast` option of the cases being run

local function setup(opts, server_opts)
  opts = opts or {}
  if opts.fast == nil then
    opts.fast = fast_mode
  end
  if opts.location == nil then
    opts.location = store
  end
  server_opts = server_opts or {}
  server_opts.listen = { "udp:127.0.0.1:0", "tcp:127.0.0.1:0" }
  server_opts.sanity = server_opts.sanity or { supported = registrar.supported }
  local srv = N.server(server_opts)
  local env = { opts = opts, srv = srv, udp = srv:listener(0), tcp = srv:listener(1), results = {} }
  srv:on_request(function(req)
    if req.method == "REGISTER" then
      local code, info = registrar.save(req, env.opts)
      env.results[#env.results + 1] = { code = code, info = info }
      return
    end
    req:reply(405)
  end)
  env.peer = N.udp(V4)
  return env
end

local function user()
  return (N.unique("u"):gsub("%.", "x"))
end

-- Send a REGISTER (UDP unless t.stream is a TCP peer) and return the parsed
-- answer. t: user (AOR user@example.com), to, uri, contacts (list of
-- Contact values), expires (Expires header), call_id, cseq, headers
-- (more lines), via (whole Via value).
local function register(env, t)
  local headers = {}
  for _, c in ipairs(t.contacts or {}) do
    headers[#headers + 1] = "Contact: " .. c
  end
  if t.expires then
    headers[#headers + 1] = "Expires: " .. t.expires
  end
  for _, h in ipairs(t.headers or {}) do
    headers[#headers + 1] = h
  end
  local aor = "sip:" .. (t.user or "nobody") .. "@example.com"
  local peer = t.stream or env.peer
  local bytes = N.request {
    method = "REGISTER", uri = t.uri or "sip:example.com",
    to = t.to or ("<" .. aor .. ">"), from = "<" .. aor .. ">;tag=" .. N.unique("f"):gsub("%.", ""),
    call_id = t.call_id, cseq = t.cseq or 1, headers = headers,
    via_port = not t.stream and peer.port or nil, transport = t.stream and "TCP" or "UDP",
    via = t.via,
  }
  if t.stream then
    peer:send(bytes)
    local d = assert(peer:read_message(3))
    return N.parse(d)
  end
  peer:send(bytes, env.udp.host, env.udp.port)
  local d = assert(peer:recv(3), "no answer to the REGISTER")
  return N.parse(d)
end

-- The Contact values of a 200 as { uri = , expires = n, q = n, raw = }.
local function contacts_of(r)
  local out = {}
  for _, v in ipairs(r:all("Contact")) do
    for item in v:gmatch("[^,]+") do
      local uri, params = item:match("^%s*<([^>]*)>(.*)$")
      out[#out + 1] = {
        uri = uri, raw = item, params = params,
        expires = tonumber(params:match(";expires=(%d+)")),
        q = tonumber(params:match(";q=([%d%.]+)") or "1"),
      }
    end
  end
  return out
end

local function bindings(u)
  return assert(S:lookup("sip:" .. u .. "@example.com"))
end

for _, fast in ipairs { true, false } do
describe("registrar (fast = " .. tostring(fast) .. ")", function()
  before_each(function()
    fast_mode = fast
  end)

  after_each(function()
    N.cleanup()
  end)

  describe("§10.3 step 1: the Request-URI domain", function()
    it("answers 404 for a domain not served, 200 for a served one (list)", function()
      local env = setup { domains = { "example.com", "Other.example" } }
      local u = user()
      local r = register(env, { user = u, uri = "sip:foreign.example", contacts = { "<sip:a@192.0.2.1>" } })
      assert.are.equal(404, r.status)
      assert.are.equal(0, #bindings(u))
      r = register(env, { user = u, uri = "sip:EXAMPLE.com", contacts = { "<sip:a@192.0.2.1>" } })
      assert.are.equal(200, r.status)
      assert.are.equal(1, #bindings(u))
    end)

    it("takes a function deciding on the host", function()
      local seen
      local env = setup { domains = function(host)
        seen = host
        return host == "example.com"
      end }
      local r = register(env, { user = user(), uri = "sip:nope.example", contacts = { "<sip:a@192.0.2.1>" } })
      assert.are.equal(404, r.status)
      assert.are.equal("nope.example", seen)
    end)

    -- The C steps call a domains function in a protected call and raise
    -- its error again: the handler's error (500), nothing stored, and the
    -- server goes on.
    it("a domains function that raises: 500, nothing stored", function()
      local env = setup { domains = function(host)
        if host == "example.com" then
          error("domains broke")
        end
        return true
      end }
      local u = user()
      local r = register(env, { user = u, contacts = { "<sip:a@192.0.2.1>" } })
      assert.are.equal(500, r.status)
      assert.are.equal(0, #bindings(u))
      r = register(env, { user = u, uri = "sip:other.example", to = "<sip:" .. u .. "@other.example>",
        contacts = { "<sip:a@192.0.2.1>" } })
      assert.are.equal(200, r.status)
    end)

    it("answers 416 for a tel: Request-URI", function()
      local env = setup()
      local r = register(env, { user = user(), uri = "tel:+15551234", contacts = { "<sip:a@192.0.2.1>" } })
      assert.are.equal(416, r.status)
    end)
  end)

  describe("§10.3 step 2: Require", function()
    it("the C layer answers 420 for a tag the server does not list; the registrar never runs", function()
      local env = setup()
      local r = register(env, { user = user(), contacts = { "<sip:a@192.0.2.1>" }, headers = { "Require: foo" } })
      assert.are.equal(420, r.status)
      assert.are.equal("foo", r:get("Unsupported"))
      assert.are.equal(0, #env.results)
    end)

    it("with the C check off, the registrar answers 420 itself, once", function()
      local env = setup(nil, { sanity = { require = false } })
      local r = register(env, { user = user(), contacts = { "<sip:a@192.0.2.1>" },
        headers = { "Require: path, bar" } })
      assert.are.equal(420, r.status)
      assert.are.equal("bar", r:get("Unsupported"))
      assert.are.equal(420, env.results[1].code)
      assert.are.equal(0, env.peer:pending())
    end)

    it("accepts path, outbound, gruu and the tags in opts.supported", function()
      local env = setup({ supported = { "bar" } }, { sanity = { require = false } })
      local r = register(env, { user = user(), contacts = { "<sip:a@192.0.2.1>" },
        headers = { "Require: path, outbound, gruu, bar" } })
      assert.are.equal(200, r.status)
    end)
  end)

  describe("§10.3 steps 3-4: the authorize hook", function()
    it("gets the canonical AOR; true goes on, false gives 403, its own reply stands", function()
      local verdict, got
      local env = setup { authorize = function(req, aor)
        got = aor
        if verdict == "401" then
          req:reply(401, nil, { { "WWW-Authenticate", 'Digest realm="example.com", nonce="x"' } })
          return false
        end
        return verdict
      end }
      local u = user()
      verdict = true
      local r = register(env, { user = u, contacts = { "<sip:a@192.0.2.1>" } })
      assert.are.equal(200, r.status)
      assert.are.equal("sip:" .. u .. "@example.com", got)
      verdict = false
      r = register(env, { user = u, contacts = { "<sip:b@192.0.2.1>" } })
      assert.are.equal(403, r.status)
      verdict = "401"
      r = register(env, { user = u, contacts = { "<sip:c@192.0.2.1>" } })
      assert.are.equal(401, r.status)
      assert.truthy(r:get("WWW-Authenticate"))
      assert.are.equal(1, #bindings(u))
      assert.are.equal(0, env.peer:pending())
    end)
  end)

  describe("§10.3 step 5: the address-of-record", function()
    it("canonicalizes the To URI: escapes, host case, port and parameters dropped", function()
      local env = setup()
      local u = user()
      local escaped = u:gsub("^u", "%%75")
      local r = register(env, { user = u, to = "Bob <sip:" .. escaped .. "@EXAMPLE.Com:5060;transport=udp>",
        contacts = { "<sip:a@192.0.2.1>" } })
      assert.are.equal(200, r.status)
      assert.are.equal(1, #bindings(u))
      assert.are.equal("sip:alice@example.com", registrar.aor("sip:%61lice@Example.COM:5060;transport=tcp?h=v"))
      assert.are.equal("sips:a%20b@example.com", registrar.aor("sips:a%20b@example.com"))
      assert.is_nil(registrar.aor("tel:+1555"))
    end)

    it("answers 404 when the To domain is not served", function()
      local env = setup { domains = { "example.com" } }
      local r = register(env, { user = user(), to = "<sip:x@elsewhere.example>", contacts = { "<sip:a@192.0.2.1>" } })
      assert.are.equal(404, r.status)
    end)
  end)

  describe("§10.3 step 6: Contact", function()
    it("without Contact, answers 200 listing the bindings (a query)", function()
      local env = setup()
      local u = user()
      register(env, { user = u, contacts = { "<sip:a@192.0.2.1>;q=0.2", "<sip:b@192.0.2.1>" } })
      local r = register(env, { user = u, call_id = "query-" .. u })
      assert.are.equal(200, r.status)
      local cs = contacts_of(r)
      assert.are.equal(2, #cs)
      assert.are.equal("sip:b@192.0.2.1", cs[1].uri)
      assert.are.equal(0.2, cs[2].q)
    end)

    it("* with Expires: 0 removes every binding", function()
      local env = setup()
      local u = user()
      register(env, { user = u, contacts = { "<sip:a@192.0.2.1>", "<sip:b@192.0.2.1>" } })
      assert.are.equal(2, #bindings(u))
      local r = register(env, { user = u, contacts = { "*" }, expires = 0, call_id = "star-" .. u })
      assert.are.equal(200, r.status)
      assert.are.equal(0, #r:all("Contact"))
      assert.are.equal(0, #bindings(u))
    end)

    -- Regression: the writes took every change of a key given twice (a
    -- removal of any of them removed the binding, each save was listed),
    -- while step C counted only the last one. §10.3 step 7 processes the
    -- Contacts in order: the last change of a key decides.
    it("a key given twice: its last Contact decides what is stored and listed", function()
      local env = setup()
      local u = user()
      -- bound, then removed and bound again in one request: bound
      register(env, { user = u, contacts = { "<sip:a@192.0.2.1>" } })
      local r = register(env, { user = u, call_id = "dup1-" .. u,
        contacts = { "<sip:a@192.0.2.1>;expires=0", "<sip:a@192.0.2.1>;expires=300" } })
      assert.are.equal(200, r.status)
      local cs = contacts_of(r)
      assert.are.equal(1, #cs)
      assert.are.equal(300, cs[1].expires)
      assert.are.equal(1, #bindings(u))
      -- bound then removed in one request: not bound, not listed
      u = user()
      r = register(env, { user = u, contacts = { "<sip:a@192.0.2.1>", "<sip:a@192.0.2.1>;expires=0" } })
      assert.are.equal(200, r.status)
      assert.are.equal(0, #r:all("Contact"))
      assert.are.equal(0, #bindings(u))
      -- saved twice: listed once, with the last expiry
      r = register(env, { user = u, call_id = "dup3-" .. u,
        contacts = { "<sip:a@192.0.2.1>;expires=100", "<sip:a@192.0.2.1>;expires=300", "<sip:b@192.0.2.2>" } })
      assert.are.equal(200, r.status)
      cs = contacts_of(r)
      assert.are.equal(2, #cs)
      for _, c in ipairs(cs) do
        assert.are.equal(c.uri == "sip:a@192.0.2.1" and 300 or 3600, c.expires)
      end
      assert.are.equal(2, #bindings(u))
    end)

    it("* without Expires, with Expires other than 0, or with other Contacts: 400", function()
      local env = setup()
      local u = user()
      register(env, { user = u, contacts = { "<sip:a@192.0.2.1>" } })
      local r = register(env, { user = u, contacts = { "*" }, call_id = "s1" .. u })
      assert.are.equal(400, r.status)
      assert.matches("Expires: 0", r.reason, 1, true)
      r = register(env, { user = u, contacts = { "*" }, expires = 60, call_id = "s2" .. u })
      assert.are.equal(400, r.status)
      r = register(env, { user = u, contacts = { "*", "<sip:b@192.0.2.1>" }, expires = 0, call_id = "s3" .. u })
      assert.are.equal(400, r.status)
      assert.matches("only Contact", r.reason, 1, true)
      r = register(env, { user = u, contacts = { "*", "*" }, expires = 0, call_id = "s4" .. u })
      assert.are.equal(400, r.status)
      assert.are.equal(1, #bindings(u))
    end)

    it("expiry: the contact's expires, else the Expires header, else 3600", function()
      local env = setup()
      local u = user()
      local r = register(env, { user = u, expires = 300,
        contacts = { "<sip:a@192.0.2.1>;expires=120", "<sip:b@192.0.2.1>" } })
      assert.are.equal(200, r.status)
      local by = {}
      for _, c in ipairs(contacts_of(r)) do
        by[c.uri] = c.expires
      end
      assert.is_true(by["sip:a@192.0.2.1"] <= 120 and by["sip:a@192.0.2.1"] >= 118)
      assert.is_true(by["sip:b@192.0.2.1"] <= 300 and by["sip:b@192.0.2.1"] >= 298)
      local u2 = user()
      r = register(env, { user = u2, contacts = { "<sip:c@192.0.2.1>" } })
      local e = contacts_of(r)[1].expires
      assert.is_true(e <= 3600 and e >= 3598)
    end)

    it("below min_expires: 423 with Min-Expires, nothing stored; 0 still removes", function()
      local env = setup()
      local u = user()
      local r = register(env, { user = u, contacts = { "<sip:a@192.0.2.1>;expires=30" } })
      assert.are.equal(423, r.status)
      assert.are.equal("Interval Too Brief", r.reason)
      assert.are.equal("60", r:get("Min-Expires"))
      assert.are.equal(0, #bindings(u))
      env.opts.min_expires = 10
      r = register(env, { user = u, contacts = { "<sip:a@192.0.2.1>;expires=30" }, cseq = 2 })
      assert.are.equal(200, r.status)
      r = register(env, { user = u, contacts = { "<sip:a@192.0.2.1>" }, expires = 0, cseq = 3 })
      assert.are.equal(200, r.status)
      assert.are.equal(0, #bindings(u))
    end)

    it("above max_expires: shortened to it", function()
      local env = setup()
      local u = user()
      local r = register(env, { user = u, expires = 100000, contacts = { "<sip:a@192.0.2.1>" } })
      local e = contacts_of(r)[1].expires
      assert.is_true(e <= 7200 and e >= 7198)
      env.opts.max_expires = 600
      r = register(env, { user = u, contacts = { "<sip:a@192.0.2.1>;expires=5000" }, cseq = 2 })
      e = contacts_of(r)[1].expires
      assert.is_true(e <= 600 and e >= 598)
    end)

    it("a malformed Expires or Contact: 400", function()
      local env = setup()
      local u = user()
      local r = register(env, { user = u, expires = "soon", contacts = { "<sip:a@192.0.2.1>" } })
      assert.are.equal(400, r.status)
      r = register(env, { user = u, contacts = { "<sip:a@192.0.2.1>;expires=x" } })
      assert.are.equal(400, r.status)
      r = register(env, { user = u, contacts = { "<sip:a@192.0.2.1" } })
      assert.are.equal(400, r.status)
      assert.are.equal(0, #bindings(u))
    end)

    it("q: 0 to 1 kept and listed, the 200 sorted by q; 1.5 or 0.0001: 400", function()
      local env = setup()
      local u = user()
      local r = register(env, { user = u, contacts = { "<sip:a@192.0.2.1>;q=0.1", "<sip:b@192.0.2.1>;q=0.9",
        "<sip:c@192.0.2.1>;q=0" } })
      local cs = contacts_of(r)
      assert.are.same({ "sip:b@192.0.2.1", "sip:a@192.0.2.1", "sip:c@192.0.2.1" }, { cs[1].uri, cs[2].uri, cs[3].uri })
      assert.are.same({ 0.9, 0.1, 0 }, { cs[1].q, cs[2].q, cs[3].q })
      for _, bad in ipairs { "1.5", "0.0001", "x" } do
        r = register(env, { user = user(), contacts = { "<sip:a@192.0.2.1>;q=" .. bad } })
        assert.are.equal(400, r.status)
      end
    end)

    it("max_contacts: past it 503 Too Many Registered Contacts; refreshes and removals still work", function()
      local env = setup { max_contacts = 2 }
      local u = user()
      local cid = "mc-" .. u
      local r = register(env, { user = u, call_id = cid, cseq = 1,
        contacts = { "<sip:a@192.0.2.1>", "<sip:b@192.0.2.1>" } })
      assert.are.equal(200, r.status)
      r = register(env, { user = u, call_id = cid, cseq = 2, contacts = { "<sip:c@192.0.2.1>" } })
      assert.are.equal(503, r.status)
      assert.are.equal("Too Many Registered Contacts", r.reason)
      r = register(env, { user = u, call_id = cid, cseq = 3, contacts = { "<sip:a@192.0.2.1>" } })
      assert.are.equal(200, r.status)
      r = register(env, { user = u, call_id = cid, cseq = 4,
        contacts = { "<sip:a@192.0.2.1>;expires=0", "<sip:c@192.0.2.1>" } })
      assert.are.equal(200, r.status)
      assert.are.equal(2, #bindings(u))
    end)

    it("the 200 has a Date header (RFC 1123, GMT)", function()
      local env = setup()
      local r = register(env, { user = user(), contacts = { "<sip:a@192.0.2.1>" } })
      assert.matches("^%a%a%a, %d%d %a%a%a %d%d%d%d %d%d:%d%d:%d%d GMT$", r:get("Date"))
    end)
  end)

  describe("§10.3 step 7: Call-ID and CSeq per binding", function()
    it("same Call-ID, CSeq not higher: 500 and nothing changes; another Call-ID replaces", function()
      local env = setup()
      local u = user()
      local r = register(env, { user = u, call_id = "A" .. u, cseq = 10, contacts = { "<sip:a@192.0.2.1>;q=0.5" } })
      assert.are.equal(200, r.status)
      r = register(env, { user = u, call_id = "A" .. u, cseq = 10, contacts = { "<sip:a@192.0.2.1>;q=0.7" } })
      assert.are.equal(500, r.status)
      r = register(env, { user = u, call_id = "A" .. u, cseq = 9, contacts = { "<sip:a@192.0.2.1>" },
        expires = 0 })
      assert.are.equal(500, r.status)
      r = register(env, { user = u, call_id = "A" .. u, cseq = 3, contacts = { "*" }, expires = 0 })
      assert.are.equal(500, r.status)
      local b = bindings(u)
      assert.are.equal(1, #b)
      assert.are.equal(0.5, b[1].q)
      assert.are.equal(10, b[1].cseq)
      r = register(env, { user = u, call_id = "B" .. u, cseq = 1, contacts = { "<sip:a@192.0.2.1>;q=0.7" } })
      assert.are.equal(200, r.status)
      b = bindings(u)
      assert.are.equal(1, #b)
      assert.are.equal(0.7, b[1].q)
      assert.are.equal("B" .. u, b[1].call_id)
    end)

    it("the binding key is the Contact URI as §19.1.4 compares it", function()
      local env = setup()
      local u = user()
      register(env, { user = u, call_id = "k" .. u, cseq = 1, contacts = { "<sip:a@192.0.2.1;transport=udp>" } })
      register(env, { user = u, call_id = "k" .. u, cseq = 2, contacts = { "<SIP:a@192.0.2.1;Transport=UDP;x=1>" } })
      assert.are.equal(1, #bindings(u))
      register(env, { user = u, call_id = "k" .. u, cseq = 3, contacts = { "<sip:A@192.0.2.1;transport=udp>" } })
      assert.are.equal(2, #bindings(u))
    end)
  end)

  describe("what a binding holds", function()
    it("received, socket, Call-ID, CSeq, User-Agent; over TCP the connection", function()
      local env = setup()
      local u = user()
      register(env, { user = u, call_id = "r" .. u, cseq = 7, contacts = { "<sip:a@10.0.0.1:5062>" },
        headers = { "User-Agent: spec/1" } })
      local b = bindings(u)[1]
      assert.are.equal("udp:127.0.0.1:" .. env.peer.port, b.received)
      assert.are.equal("udp:127.0.0.1:" .. env.udp.port, b.socket)
      assert.are.equal("r" .. u, b.call_id)
      assert.are.equal(7, b.cseq)
      assert.are.equal("spec/1", b.user_agent)
      assert.are.equal("sip:a@10.0.0.1:5062", b.contact)
      local t = assert(N.tcp(V4, env.tcp.port))
      local u2 = user()
      local r = register(env, { user = u2, stream = t, contacts = { "<sip:b@10.0.0.1;transport=tcp>" } })
      assert.are.equal(200, r.status)
      b = bindings(u2)[1]
      assert.are.equal("tcp:127.0.0.1:" .. t.port, b.received)
      assert.is_number(b.conn_id)
    end)
  end)

  describe("Path (RFC 3327)", function()
    it("is stored, returned when the UA supports path, not otherwise", function()
      local env = setup()
      local u = user()
      local r = register(env, { user = u, contacts = { "<sip:a@192.0.2.1>" }, headers = {
        "Path: <sip:edge1.example.net;lr>", "Path: <sip:edge2.example.net;lr>", "Supported: path" } })
      assert.are.equal(200, r.status)
      assert.are.same({ "<sip:edge1.example.net;lr>", "<sip:edge2.example.net;lr>" }, r:all("Path"))
      assert.are.same({ "<sip:edge1.example.net;lr>", "<sip:edge2.example.net;lr>" }, bindings(u)[1].path)
      local u2 = user()
      r = register(env, { user = u2, contacts = { "<sip:a@192.0.2.1>" }, headers = { "Path: <sip:e.example.net;lr>" } })
      assert.are.equal(200, r.status)
      assert.are.same({}, r:all("Path"))
      assert.are.same({ "<sip:e.example.net;lr>" }, bindings(u2)[1].path)
    end)
  end)

  describe("SIP Outbound (RFC 5626)", function()
    local inst = '+sip.instance="<urn:uuid:00000000-0000-1000-8000-000A95A0E128>"'

    it("keys a binding by instance and reg-id; Require: outbound in the 200", function()
      local env = setup()
      local u = user()
      local r = register(env, { user = u, call_id = "o1" .. u, headers = { "Supported: outbound, path" },
        contacts = { "<sip:a@192.0.2.1;ob>;" .. inst .. ";reg-id=1" } })
      assert.are.equal(200, r.status)
      assert.are.equal("outbound", r:get("Require"))
      -- the same flow after a reboot: another URI, another Call-ID, replaces it
      r = register(env, { user = u, call_id = "o2" .. u, headers = { "Supported: outbound, path" },
        contacts = { "<sip:a@192.0.2.99;ob>;" .. inst .. ";reg-id=1" } })
      assert.are.equal(200, r.status)
      -- a second flow of the same instance is another binding
      r = register(env, { user = u, call_id = "o3" .. u, headers = { "Supported: outbound" },
        contacts = { "<sip:a@192.0.2.99;ob>;" .. inst .. ";reg-id=2" } })
      local b = bindings(u)
      assert.are.equal(2, #b)
      local keys = { b[1].key, b[2].key }
      table.sort(keys)
      assert.are.same({ "<urn:uuid:00000000-0000-1000-8000-000A95A0E128>;1",
        "<urn:uuid:00000000-0000-1000-8000-000A95A0E128>;2" }, keys)
      assert.are.equal("udp:127.0.0.1:" .. env.peer.port, b[1].received)
      assert.matches('+sip.instance="<urn:uuid:', contacts_of(r)[1].raw, 1, true)
    end)

    it("reg-id without +sip.instance, or on two Contacts: 400", function()
      local env = setup()
      local r = register(env, { user = user(), headers = { "Supported: outbound" },
        contacts = { "<sip:a@192.0.2.1>;reg-id=1" } })
      assert.are.equal(400, r.status)
      r = register(env, { user = user(), headers = { "Supported: outbound" },
        contacts = { "<sip:a@192.0.2.1>;" .. inst .. ";reg-id=1", "<sip:b@192.0.2.1>;" .. inst .. ";reg-id=2" } })
      assert.are.equal(400, r.status)
    end)

    -- Regression: the Lua flow read reg-id with tonumber, so 0x10, 1e1 and
    -- 1.0 were taken (keys "...;16", "...;10.0"); RFC 5626 §13: reg-id is
    -- 1*10DIGIT.
    it("a reg-id that is not decimal digits: 400, nothing stored", function()
      local env = setup()
      for _, bad in ipairs { "0x10", "1e1", "1.0", "+1", "00000000001" } do
        local u = user()
        local r = register(env, { user = u, headers = { "Supported: outbound" },
          contacts = { "<sip:a@192.0.2.1;ob>;" .. inst .. ";reg-id=" .. bad } })
        assert.are.equal(400, r.status, "reg-id=" .. bad)
        assert.matches("reg-id", r.reason, 1, true)
        assert.are.equal(0, #bindings(u), "reg-id=" .. bad)
      end
    end)

    it("through an edge proxy that added no Path with ob: 439", function()
      local env = setup()
      local two_vias = "SIP/2.0/UDP 127.0.0.1:" .. env.peer.port .. ";branch=z9hG4bK" .. user()
        .. ",SIP/2.0/UDP 192.0.2.7:5060;branch=z9hG4bKua1"
      local r = register(env, { user = user(), via = two_vias, headers = { "Supported: outbound" },
        contacts = { "<sip:a@192.0.2.1;ob>;" .. inst .. ";reg-id=1" } })
      assert.are.equal(439, r.status)
      local u = user()
      two_vias = two_vias:gsub("branch=z9hG4bKu[^,]*", "branch=z9hG4bK" .. user())
      r = register(env, { user = u, via = two_vias,
        headers = { "Supported: outbound, path", "Path: <sip:edge.example.net;lr;ob>" },
        contacts = { "<sip:a@192.0.2.1;ob>;" .. inst .. ";reg-id=1" } })
      assert.are.equal(200, r.status)
      assert.are.same({ "<sip:edge.example.net;lr;ob>" }, r:all("Path"))
    end)

    it("without Supported: outbound, reg-id is ignored and the instance keys the binding", function()
      local env = setup()
      local u = user()
      local r = register(env, { user = u, contacts = { "<sip:a@192.0.2.1>;" .. inst .. ";reg-id=1" } })
      assert.are.equal(200, r.status)
      assert.is_nil(r:get("Require"))
      assert.are.equal("<urn:uuid:00000000-0000-1000-8000-000A95A0E128>", bindings(u)[1].key)
    end)
  end)

  describe("GRUU (RFC 5627)", function()
    local inst = '+sip.instance="<urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6>"'

    it("gives pub-gruu and a temp-gruu that changes on each refresh; both resolve", function()
      local env = setup()
      local u = user()
      local aor = "sip:" .. u .. "@example.com"
      local cid = "g" .. u
      local r = register(env, { user = u, call_id = cid, cseq = 1, headers = { "Supported: gruu" },
        contacts = { "<sip:a@192.0.2.1>;" .. inst } })
      assert.are.equal(200, r.status)
      local c = contacts_of(r)[1]
      local pub = c.params:match(';pub%-gruu="([^"]+)"')
      local t1 = c.params:match(';temp%-gruu="([^"]+)"')
      assert.are.equal(aor .. ";gr=urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6", pub)
      assert.truthy(t1)
      assert.is_nil(t1:find(u, 1, true))
      r = register(env, { user = u, call_id = cid, cseq = 2, headers = { "Supported: gruu" },
        contacts = { "<sip:a@192.0.2.1>;" .. inst } })
      local t2 = contacts_of(r)[1].params:match(';temp%-gruu="([^"]+)"')
      assert.truthy(t2)
      assert.are_not.equal(t1, t2)
      for _, g in ipairs { pub, t1, t2 } do
        local b = assert(lookup(g, { location = store }))
        assert.are.equal(1, #b)
        assert.are.equal("sip:a@192.0.2.1", b[1].contact)
      end
      -- a new Call-ID (the UA restarted): the old temp GRUUs are gone
      r = register(env, { user = u, call_id = cid .. "-2", cseq = 1, headers = { "Supported: gruu" },
        contacts = { "<sip:a@192.0.2.1>;" .. inst } })
      local t3 = contacts_of(r)[1].params:match(';temp%-gruu="([^"]+)"')
      assert.are.same({}, lookup(t1, { location = store }))
      assert.are.same({}, lookup(t2, { location = store }))
      assert.are.equal(1, #lookup(t3, { location = store }))
      assert.are.equal(1, #lookup(pub, { location = store }))
    end)

    it("lookup reads a temp GRUU as its writer wrote it (in C), and nothing else", function()
      local env = setup()
      local u = user()
      local r = register(env, { user = u, headers = { "Supported: gruu" },
        contacts = { "<sip:a@192.0.2.1>;" .. inst } })
      local t = contacts_of(r)[1].params:match(';temp%-gruu="([^"]+)"')
      local base, n = t:match("^sip:tgruu%.(%w+)%.(%d+)@example%.com;gr$")
      assert.truthy(base)
      local function found(g)
        return #assert(lookup(g, { location = store }))
      end
      assert.are.equal(1, found(t))
      assert.are.equal(1, found(sip.uri(t)))
      -- escaped, another number, another host: the base decides
      assert.are.equal(1, found("sip:tgruu%2e" .. base .. "." .. n .. "@example.com;gr"))
      assert.are.equal(1, found("sip:tgruu." .. base .. ".99@other.example;gr"))
      for _, g in ipairs {
        "sip:tgruu." .. base .. "x." .. n .. "@example.com;gr",
        "sip:tgruu." .. base .. ".@example.com;gr",
        "sip:tgruu." .. base .. "@example.com;gr",
        "sip:tgruu." .. base .. ".1x@example.com;gr",
        "sip:TGRUU." .. base .. "." .. n .. "@example.com;gr",
        "sip:tgruu.-" .. base .. "." .. n .. "@example.com;gr",
      } do
        assert.are.equal(0, found(g), g)
      end
    end)

    it("no GRUU without Supported: gruu; a Contact that is our GRUU: 403", function()
      local env = setup()
      local u = user()
      local r = register(env, { user = u, contacts = { "<sip:a@192.0.2.1>;" .. inst } })
      assert.is_nil(r:get("Contact"):find("gruu", 1, true))
      r = register(env, { user = user(), headers = { "Supported: gruu" },
        contacts = { "<sip:" .. u .. "@example.com;gr=urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6>" } })
      assert.are.equal(403, r.status)
    end)
  end)

  describe("hooks", function()
    it("on_binding may refuse, rewrite or enrich a binding", function()
      local env = setup { on_binding = function(_, b)
        if b.contact:find("bad", 1, true) then
          return nil, 403, "Contact Not Allowed"
        end
        b.tenant = "t1"
        if b.contact:find("rewrite", 1, true) then
          local nb = {}
          for k, v in pairs(b) do
            nb[k] = v
          end
          nb.contact = "sip:rewritten@192.0.2.5"
          return nb
        end
      end }
      local u = user()
      local r = register(env, { user = u, contacts = { "<sip:ok@192.0.2.1>", "<sip:bad@192.0.2.1>" } })
      assert.are.equal(403, r.status)
      assert.are.equal("Contact Not Allowed", r.reason)
      assert.are.equal(0, #bindings(u))
      r = register(env, { user = u, contacts = { "<sip:ok@192.0.2.1>", "<sip:rewrite@192.0.2.1>" } })
      assert.are.equal(200, r.status)
      local got = {}
      for _, b in ipairs(bindings(u)) do
        got[#got + 1] = b.contact
        assert.are.equal("t1", b.tenant)
      end
      table.sort(got)
      assert.are.same({ "sip:ok@192.0.2.1", "sip:rewritten@192.0.2.5" }, got)
    end)
  end)

  describe("store failures", function()
    it("answer 500 with Retry-After and log a line", function()
      local lines = quiet_log()
      local env = setup { location = broken }
      local r = register(env, { user = user(), contacts = { "<sip:a@192.0.2.1>" } })
      assert.are.equal(500, r.status)
      assert.are.equal("5", r:get("Retry-After"))
      assert.matches("connection refused", table.concat(lines, "\n"), 1, true)
      env.opts.retry_after = 30
      r = register(env, { user = user(), contacts = { "<sip:a@192.0.2.1>" } })
      assert.are.equal("30", r:get("Retry-After"))
    end)

    it("a failed write undoes the writes before it", function()
      quiet_log()
      local saves = 0
      local flaky = setmetatable({ url = "flaky://", save = function(self, aor, b)
        saves = saves + 1
        if saves == 2 then
          return nil, "disk full"
        end
        return store.save(self.inner, aor, b)
      end }, { __index = function(t, k)
        local f = store[k]
        if type(f) == "function" then
          return function(_, ...)
            return f(t.inner, ...)
          end
        end
      end })
      flaky.inner = store
      local env = setup { location = flaky }
      local u = user()
      local r = register(env, { user = u, contacts = { "<sip:a@192.0.2.1>", "<sip:b@192.0.2.1>" } })
      assert.are.equal(500, r.status)
      assert.are.equal(0, #bindings(u))
    end)
  end)

  describe("registrar.lookup", function()
    it("returns the live bindings by q with path and received; {} for an unknown AOR", function()
      local env = setup()
      local u = user()
      register(env, { user = u, headers = { "Path: <sip:edge.example.net;lr>" },
        contacts = { "<sip:a@192.0.2.1>;q=0.3", "<sip:b@192.0.2.1>;q=0.8" } })
      local b = assert(lookup("sip:" .. u .. "@EXAMPLE.com;user=phone", { location = store }))
      assert.are.equal(2, #b)
      assert.are.equal("sip:b@192.0.2.1", b[1].contact)
      assert.are.same({ "<sip:edge.example.net;lr>" }, b[1].path)
      assert.are.equal("udp:127.0.0.1:" .. env.peer.port, b[1].received)
      assert.are.same({}, lookup("sip:nobody-here@example.com", { location = store }))
      local none, err = lookup("sip:x@example.com", { location = broken })
      assert.is_nil(none)
      assert.matches("refused", err)
    end)

    it("expired bindings are gone", function()
      local env = setup { min_expires = 1 }
      local u = user()
      register(env, { user = u, contacts = { "<sip:a@192.0.2.1>;expires=1", "<sip:b@192.0.2.1>;expires=60" } })
      assert.are.equal(2, #bindings(u))
      N.pump_until(function()
        return #bindings(u) == 1
      end, 4)
      local b = bindings(u)
      assert.are.equal(1, #b)
      assert.are.equal("sip:b@192.0.2.1", b[1].contact)
    end)
  end)

  describe("RFC 4475 vectors", function()
    -- The vector with its Via pointing at the test's socket (the vectors
    -- name foreign hosts; the answer must come back here).
    local function send_vector(env, name, edit)
      local bytes = H.vector("rfc4475/" .. name .. ".dat")
      local via = "Via: SIP/2.0/UDP 127.0.0.1:" .. env.peer.port .. ";branch=z9hG4bK" .. user()
      bytes = bytes:gsub("\r\nVia:[^\r]*", "\r\n" .. via, 1)
      if edit then
        bytes = edit(bytes)
      end
      env.peer:send(bytes, env.udp.host, env.udp.port)
      return N.parse(assert(env.peer:recv(3)))
    end

    local function clear(aor)
      assert(S:remove_all(aor))
    end

    it("unksm2: To is not a SIP URI: 400", function()
      local env = setup()
      local r = send_vector(env, "unksm2")
      assert.are.equal(400, r.status)
      assert.are.equal(400, env.results[1].code)
    end)

    -- the vector sent to a fresh registrar for aor: its 200 and the bindings stored
    local function stored_by_vector(name, aor)
      clear(aor)
      local r = send_vector(setup(), name)
      assert.are.equal(200, r.status)
      return r, assert(S:lookup(aor))
    end

    it("cparam01: ;unknownparam is a contact parameter, not in the stored URI", function()
      local r, b = stored_by_vector("cparam01", "sip:watson@example.com")
      assert.are.equal(1, #b)
      assert.are.equal("sip:+19725552222@gw1.example.net", b[1].contact)
      assert.are.equal(";unknownparam", b[1].params)
      assert.matches("^<sip:%+19725552222@gw1%.example%.net>;expires=%d+;unknownparam$", r:get("Contact"))
    end)

    it("cparam02: ;unknownparam inside <> stays in the URI", function()
      local r, b = stored_by_vector("cparam02", "sip:watson@example.com")
      assert.are.equal(1, #b)
      assert.are.equal("sip:+19725552222@gw1.example.net;unknownparam", b[1].contact)
      assert.matches("<sip:+19725552222@gw1.example.net;unknownparam>;expires=", r:get("Contact"), 1, true)
    end)

    it("regescrt: the escaped Route header stays in the binding", function()
      local r, b = stored_by_vector("regescrt", "sip:user@example.com")
      assert.are.equal(1, #b)
      assert.are.equal("sip:user@example.com?Route=%3Csip:sip.example.com%3E", b[1].contact)
      assert.matches("<sip:user@example.com?Route=%3Csip:sip.example.com%3E>", r:get("Contact"), 1, true)
    end)

    it("escnull: %00 and %00%00 are two bindings of sip:null-%00-null@example.com", function()
      local r, b = stored_by_vector("escnull", "sip:null-%00-null@example.com")
      assert.are.equal(2, #b)
      local got = { b[1].contact, b[2].contact }
      table.sort(got)
      assert.are.same({ "sip:%00%00@host5.example.com", "sip:%00@host5.example.com" }, got)
      assert.are.equal(2, #contacts_of(r))
    end)

    it("scalar02: CSeq beyond 2^32-1 gets 400 before the registrar; huge expiries mean max_expires", function()
      clear("sip:user@example.com")
      local env = setup()
      local r = send_vector(env, "scalar02")
      assert.are.equal(400, r.status)
      assert.are.equal(0, #env.results)
      assert.are.equal(0, #S:lookup("sip:user@example.com"))
      -- the same with a CSeq in range: the Contact's ;expires beyond 2^32-1
      -- makes the Contact malformed for the parser: 400 from the C layer
      r = send_vector(env, "scalar02", function(bytes)
        return (bytes:gsub("CSeq: %d+", "CSeq: 7"):gsub("Max%-Forwards: 300", "Max-Forwards: 70"))
      end)
      assert.are.equal(400, r.status)
      assert.matches("Contact", r.reason, 1, true)
      assert.are.equal(0, #env.results)
      -- Expires alone beyond range (digits, well-formed): the largest
      -- value, shortened to max_expires
      r = send_vector(env, "scalar02", function(bytes)
        return (bytes:gsub("CSeq: %d+", "CSeq: 8"):gsub("Max%-Forwards: 300", "Max-Forwards: 70")
          :gsub("\r\n  ;expires=%d+", ""))
      end)
      assert.are.equal(200, r.status)
      local c = contacts_of(r)
      assert.is_true(c[1].expires <= 7200 and c[1].expires >= 7198)
    end)
  end)
end)
end

describe("registrar: the C fast path and the memory store", function()
  after_each(function()
    N.cleanup()
  end)

  it("stores into the C store: count, lookup, removal and expiry see what it wrote", function()
    fast_mode = true
    -- a store of its own: nothing else saves into it or expires from it
    local own = require("luasip.location.memory").new({ backend = "memory" }, "memory")
    local expired = {}
    own:on_expire(function(aor, b)
      expired[#expired + 1] = aor .. " " .. b.key
    end)
    finally(function()
      own:close()
    end)
    local function on_own(name, ...)
      local args = pack(...)
      return run(function()
        return own[name](own, unpack(args, 1, args.n))
      end)
    end
    local env = setup { location = own, min_expires = 0 }
    local u = user()
    local aor = "sip:" .. u .. "@example.com"
    local fast0 = registrar.stats().fast
    local r = register(env, { user = u, contacts = { "<sip:a@192.0.2.1>;expires=1", "<sip:b@192.0.2.2>;q=0.5" } })
    assert.are.equal(200, r.status)
    assert.are.equal(fast0 + 1, registrar.stats().fast)
    assert.are.equal(2, on_own("count"))
    local b = on_own("lookup", aor)
    assert.are.equal(2, #b)
    assert.are.equal("sip:a@192.0.2.1", b[1].contact)
    assert.are.equal("sip:b@192.0.2.2", b[2].contact)
    -- a removal, on the fast path too
    r = register(env, { user = u, cseq = 2, contacts = { "<sip:b@192.0.2.2>;expires=0" } })
    assert.are.equal(200, r.status)
    assert.are.equal(fast0 + 2, registrar.stats().fast)
    assert.are.equal(1, on_own("count"))
    -- the store's timer expires the other one after a second
    assert.is_true(N.pump_until(function() return #expired == 1 end, 5))
    assert.are.same({ aor .. " sip:a@192.0.2.1" }, expired)
    assert.are.equal(0, on_own("count"))
    assert.are.equal(0, #on_own("lookup", aor))
  end)

  it("takes `*` and a key given twice too (was: left to the Lua flow)", function()
    fast_mode = true
    local env = setup()
    local u = user()
    local fast0, general0 = registrar.stats().fast, registrar.stats().general
    local r = register(env, { user = u, call_id = "ft-" .. u, cseq = 1,
      contacts = { "<sip:a@192.0.2.1>;expires=100", "<sip:a@192.0.2.1>", "<sip:b@192.0.2.2>" } })
    assert.are.equal(200, r.status)
    assert.are.equal(2, #contacts_of(r))
    assert.are.equal(2, #bindings(u))
    r = register(env, { user = u, call_id = "ft-" .. u, cseq = 2, contacts = { "*" }, expires = 0 })
    assert.are.equal(200, r.status)
    assert.are.equal(0, #r:all("Contact"))
    assert.are.equal(0, #bindings(u))
    assert.are.equal(fast0 + 2, registrar.stats().fast)
    assert.are.equal(general0, registrar.stats().general)
  end)
end)

describe("registrar.http_date (the writer of the 200's Date, in C)", function()
  it("writes RFC 1123 in GMT, English names", function()
    assert.are.equal("Thu, 01 Jan 1970 00:00:00 GMT", registrar.http_date(0))
    assert.are.equal("Sat, 13 Nov 2010 23:29:00 GMT", registrar.http_date(1289690940))
    assert.are.equal("Tue, 29 Feb 2000 00:00:00 GMT", registrar.http_date(951782400))
    assert.are.equal("Sat, 13 Nov 2010 23:29:00 GMT", registrar.http_date(1289690940.0))
  end)

  it("defaults to now; the same text as the 200's Date", function()
    local t0 = os.time()
    local s = registrar.http_date()
    local t1 = os.time()
    assert.is_true(s == registrar.http_date(t0) or s == registrar.http_date(t1))
    assert.are.equal(os.date("!%a, %d %b %Y %H:%M:%S GMT", t0), registrar.http_date(t0))
    for _, t in ipairs { -30610224001, -30610224000, 253402300799, 253402300800, 4102444800, -1 } do
      assert.are.equal(os.date("!%a, %d %b %Y %H:%M:%S GMT", t), registrar.http_date(t))
    end
  end)

  it("raises for a time that is not an integer or out of range, as os.date", function()
    assert.has_error(function() registrar.http_date(1.5) end)
    assert.has_error(function() registrar.http_date(math.maxinteger) end)
    assert.has_error(function() registrar.http_date("x") end)
  end)
end)
