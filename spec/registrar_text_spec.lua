-- The registrar's text and the stored binding, by behaviour: each piece
-- exists once, in C (csrc/registrar/, csrc/lua/registrar.c; the qvalue in
-- the Contact parser), and registrar.save is the one §10.3 flow. Checked
-- here through REGISTERs over UDP on 127.0.0.1 and what the store then
-- holds, and through the codec on its own:
--
-- - the AOR (§10.3 step 5): one binding set for every spelling of a To
-- - the binding key (§10.3 step 6, §19.1.4): a Contact written otherwise
--   but equal updates its binding, one that differs adds one
-- - the kept contact parameters, stored and listed in the 200
-- - the qvalue grammar (§25.1): one integer digit, at most three decimals
-- - the codec: every value type written and read back, misuse raises
-- - many Contacts in one REGISTER, many bindings on one AOR
--
-- Each REGISTER case runs twice: with the C fast path on (the default; it
-- takes the common REGISTER with the memory store) and with `fast = false`
-- (registrar.save's Lua flow takes every case). Both must give the
-- behaviour asserted; `registrar.stats()` shows which path ran.
local here = debug.getinfo(1, "S").source:gsub("^@", ""):match("^(.*)/[^/]*$") or "."
local N = dofile(here .. "/support/net.lua")
local registrar = require "luasip.registrar"
local location = require "luasip.location"
local codec = require "luasip.location.codec"

local V4 = N.V4
local run = N.run_task

local store = assert(location.open("memory"))

local mode -- the `fast` option of the cases being run

local function setup(opts)
  opts = opts or {}
  opts.location = opts.location or store
  opts.fast = mode
  local srv = N.server { listen = { "udp:127.0.0.1:0" }, sanity = { supported = registrar.supported } }
  local env = { opts = opts, srv = srv, udp = srv:listener(0) }
  srv:on_request(function(req)
    if req.method == "REGISTER" then
      return registrar.save(req, env.opts)
    end
    req:reply(405)
  end)
  env.peer = N.udp(V4)
  return env
end

local function user()
  return (N.unique("t"):gsub("%.", "x"))
end

-- Send a REGISTER; t: user, to (To value), contacts, expires, call_id, cseq.
local function register(env, t)
  local headers = {}
  for _, c in ipairs(t.contacts or {}) do
    headers[#headers + 1] = "Contact: " .. c
  end
  if t.expires then
    headers[#headers + 1] = "Expires: " .. t.expires
  end
  local aor = "sip:" .. (t.user or "nobody") .. "@example.com"
  local bytes = N.request {
    method = "REGISTER", uri = "sip:example.com", to = t.to or ("<" .. aor .. ">"),
    from = "<" .. aor .. ">;tag=" .. N.unique("f"):gsub("%.", ""),
    call_id = t.call_id, cseq = t.cseq or 1, headers = headers, via_port = env.peer.port,
  }
  env.peer:send(bytes, env.udp.host, env.udp.port)
  return N.parse(assert(env.peer:recv(3), "no answer to the REGISTER"))
end

local function bindings(aor)
  return assert(run(function()
    return store:lookup(aor)
  end))
end

local function contact_params(r)
  local out = {}
  for _, v in ipairs(r:all("Contact")) do
    out[#out + 1] = v
  end
  return out
end

for _, fast in ipairs { true, false } do
describe("registrar text (fast = " .. tostring(fast) .. ")", function()
  local before
  before_each(function()
    mode = fast
  end)
  after_each(function()
    N.cleanup()
  end)

  it("(stats read)", function()
    before = registrar.stats()
  end)

  describe("the AOR", function()
    it("is canonical: scheme and host lower-case, escapes normalized, no port or parameters", function()
      assert.are.equal("sip:alice@example.com", registrar.aor("sip:%61lice@Example.COM:5060;transport=tcp"))
      assert.are.equal("sips:Bob@example.com", registrar.aor("SIPS:Bob@EXAMPLE.com"))
      assert.are.equal("sip:example.com", registrar.aor("sip:example.com"))
      assert.are.equal("sip:a%20b@h", registrar.aor("sip:a%20b@h"))
      assert.are.equal("sip:%C3%A9@h", registrar.aor("sip:%c3%a9@h"))
      assert.are.equal("sip:u@h", registrar.aor("sip:u:pw@h?Subject=x"))
      assert.are.equal("sip:u@h", registrar.aor(assert(require("luasip").uri("sip:u@H:5070"))))
    end)

    it("is refused for another scheme or a malformed URI", function()
      local aor, err = registrar.aor("tel:+15551234")
      assert.is_nil(aor)
      assert.are.equal("not a SIP or SIPS URI", err)
      aor, err = registrar.aor("sip:")
      assert.is_nil(aor)
      assert.is_string(err)
    end)

    it("groups every spelling of a To under one AOR", function()
      local env = setup()
      local u = user()
      local r = register(env, { user = u, to = "<sip:" .. u .. "@EXAMPLE.com:5060;transport=udp>",
        contacts = { "<sip:a@192.0.2.1>" } })
      assert.are.equal(200, r.status)
      local escaped = u:gsub("^t", "%%74")
      r = register(env, { user = u, to = "\"X\" <sip:" .. escaped .. "@example.COM>",
        contacts = { "<sip:b@192.0.2.1>" } })
      assert.are.equal(200, r.status)
      assert.are.equal(2, #contact_params(r))
      assert.are.equal(2, #bindings("sip:" .. u .. "@example.com"))
    end)
  end)

  describe("the binding key", function()
    it("an equal Contact written otherwise updates its binding (§19.1.4)", function()
      local env = setup()
      local u = user()
      local aor = "sip:" .. u .. "@example.com"
      assert.are.equal(200, register(env, { user = u, call_id = "k" .. u, cseq = 1,
        contacts = { "<sip:%61b@Host.Example:5070;Transport=UDP;foo=1>" } }).status)
      local r = register(env, { user = u, call_id = "k" .. u, cseq = 2,
        contacts = { "<SIP:ab@host.example:5070;transport=udp;bar=2>;q=0.5" } })
      assert.are.equal(200, r.status)
      local bs = bindings(aor)
      assert.are.equal(1, #bs)
      assert.are.equal("SIP:ab@host.example:5070;transport=udp;bar=2", bs[1].contact)
      assert.are.equal(0.5, bs[1].q)
    end)

    it("a Contact differing in user, port or a compared parameter adds a binding", function()
      local env = setup()
      local u = user()
      local r = register(env, { user = u, contacts = { "<sip:ab@h.example>", "<sip:Ab@h.example>",
        "<sip:ab@h.example:5060>", "<sip:ab@h.example;transport=tcp>", "<sip:ab@h.example;user=phone>" } })
      assert.are.equal(200, r.status)
      assert.are.equal(5, #bindings("sip:" .. u .. "@example.com"))
    end)

    it("a non-SIP Contact (tel:) has a key too: registered twice, kept once", function()
      local env = setup()
      local u = user()
      assert.are.equal(200, register(env, { user = u, contacts = { "<tel:+1-555-0100>" } }).status)
      assert.are.equal(200, register(env, { user = u, contacts = { "<TEL:+1-555-0100>" } }).status)
      local bs = bindings("sip:" .. u .. "@example.com")
      assert.are.equal(1, #bs)
      assert.are.equal("tel:+1-555-0100", bs[1].key)
    end)
  end)

  describe("the kept contact parameters", function()
    it("are stored without q, expires and the GRUUs, and listed in the 200", function()
      local env = setup()
      local u = user()
      local r = register(env, { user = u,
        contacts = { "<sip:a@192.0.2.1>;expires=600; Q=0.5 ;foo;bar=\"a;b\"; x = y ;pub-gruu=\"g\"" } })
      assert.are.equal(200, r.status)
      local bs = bindings("sip:" .. u .. "@example.com")
      assert.are.equal(';foo;bar="a;b";x = y', bs[1].params)
      local c = contact_params(r)[1]
      assert.truthy(c:find(';foo;bar="a;b";x = y', 1, true), c)
      assert.truthy(c:find(";q=0.5", 1, true), c)
      assert.is_nil(c:find("pub-gruu", 1, true), c)
    end)
  end)

  describe("the qvalue (RFC 3261 §25.1)", function()
    it("0, 0., 0.5, 0.001, 1, 1. and 1.000 are taken", function()
      local env = setup()
      local u = user()
      local r = register(env, { user = u, contacts = { "<sip:a@192.0.2.1>;q=0", "<sip:b@192.0.2.1>;q=0.",
        "<sip:c@192.0.2.1>;q=0.5", "<sip:d@192.0.2.1>;q=0.001", "<sip:e@192.0.2.1>;q=1",
        "<sip:f@192.0.2.1>;q=1.", "<sip:g@192.0.2.1>;q=1.000" } })
      assert.are.equal(200, r.status)
      local q = {}
      for _, b in ipairs(bindings("sip:" .. u .. "@example.com")) do
        q[b.contact] = b.q
      end
      assert.are.same({ ["sip:a@192.0.2.1"] = 0, ["sip:b@192.0.2.1"] = 0, ["sip:c@192.0.2.1"] = 0.5,
        ["sip:d@192.0.2.1"] = 0.001, ["sip:e@192.0.2.1"] = 1, ["sip:f@192.0.2.1"] = 1,
        ["sip:g@192.0.2.1"] = 1 }, q)
    end)

    -- regression: the Lua qvalue reader took "01" (as 1) beside the parser's
    for _, bad in ipairs { "01", "05", "00.5", "0123", "1000", "1.5", "1.001", "0.0001", ".5", "2", "x", "" } do
      it("q=" .. bad .. " gets 400 and stores nothing", function()
        local env = setup()
        local u = user()
        local r = register(env, { user = u, contacts = { "<sip:a@192.0.2.1>;q=" .. bad } })
        assert.are.equal(400, r.status)
        assert.are.equal(0, #bindings("sip:" .. u .. "@example.com"))
      end)
    end
  end)

  describe("many Contacts", function()
    it("16 Contacts per REGISTER, six REGISTERs: 96 bindings on one AOR, all listed", function()
      local env = setup { max_contacts = 100 }
      local u = user()
      local r
      for n = 0, 5 do
        local cs = {}
        for i = 1, 16 do
          cs[i] = string.format("<sip:c%d@192.0.2.%d>;q=0.%d", n * 16 + i, n + 1, i % 10)
        end
        r = register(env, { user = u, call_id = "m" .. u, cseq = n + 1, contacts = cs })
        assert.are.equal(200, r.status)
      end
      assert.are.equal(96, #contact_params(r))
      local bs = bindings("sip:" .. u .. "@example.com")
      assert.are.equal(96, #bs)
      for i = 2, #bs do
        assert.is_true(bs[i - 1].q >= bs[i].q)
      end
    end)
  end)

  it("took the fast path for common REGISTERs only when it is on", function()
    local now = registrar.stats()
    if fast then
      assert.is_true(now.fast - before.fast >= 10, "fast path used " .. (now.fast - before.fast) .. " times")
    else
      assert.are.equal(before.fast, now.fast)
      assert.is_true(now.general - before.general >= 10)
    end
  end)

  describe("the binding codec", function()
    it("writes and reads back every value type", function()
      local b = {
        key = "sip:a@h", contact = "sip:a@h", expires = 1700000000, q = 0.5, cseq = 7,
        conn_id = 1 << 40, neg = -3, flag = true, off = false, path = { "<sip:p1;lr>", "<sip:p2;lr>" },
        empty = {}, params = "", long = string.rep("x", 70000), [string.rep("n", 255)] = "named",
        half = 1700000000.5,
      }
      local s = codec.encode(b, 1699990000.25)
      local back, saved = codec.decode(s)
      assert.are.same(b, back)
      assert.are.equal(1699990000.25, saved)
      assert.are.equal("integer", math.type(back.cseq))
      assert.are.equal("integer", math.type(back.conn_id))
      assert.are.equal("float", math.type(back.q))
      local e, sv = codec.times(s)
      assert.are.equal(1700000000, e)
      assert.are.equal(1699990000.25, sv)
      assert.are.equal("sip:a@h", codec.key(s))
      -- a Contact equal to the key is not stored twice
      local other = codec.encode({ key = "sip:a@h", contact = "sip:b@h", expires = 1 }, 0)
      local same = codec.encode({ key = "sip:a@h", contact = "sip:a@h", expires = 1 }, 0)
      assert.is_true(#same < #other)
      assert.are.equal(1.5, (codec.decode(codec.encode({ key = "k", contact = "c", expires = 1.5 }, 0))).expires)
    end)

    it("raises for what it cannot store and for a corrupt record", function()
      local function enc(b)
        b.key, b.contact, b.expires = b.key or "k", b.contact or "c", b.expires or 1
        return codec.encode(b, 0)
      end
      assert.has_error(function() enc { f = function() end } end)
      assert.has_error(function() enc { path = { "a", 1 } } end)
      assert.has_error(function() enc { [1] = "x" } end)
      assert.has_error(function() enc { [string.rep("n", 256)] = "x" } end)
      assert.has_error(function() enc { key = string.rep("k", 65536) } end)
      assert.has_error(function() codec.encode({ key = "k", contact = "c" }, 0) end)
      local s = enc {}
      assert.has_error(function() codec.decode(s:sub(1, 17)) end)
      assert.has_error(function() codec.decode(s .. "\255") end)
      assert.has_error(function() codec.times("short") end)
    end)
  end)
end)
end
