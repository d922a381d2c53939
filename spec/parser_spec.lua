-- luasip message parsing, header access, edits, serialization, responses,
-- request building, stream mode, limits and error strings.
local here = debug.getinfo(1, "S").source:gsub("^@", ""):match("^(.*)/[^/]*$") or "."
local H = dofile(here .. "/support/helpers.lua")
local sip = require "luasip"

local SDP = H.msg {
  "v=0",
  "o=alice 2890844526 2890844526 IN IP4 pc33.atlanta.example.com",
  "s=-",
  "c=IN IP4 pc33.atlanta.example.com",
  "t=0 0",
  "m=audio 49172 RTP/AVP 0",
  "a=rtpmap:0 PCMU/8000",
  "",
}

local INVITE = H.msg {
  "INVITE sip:bob@biloxi.example.com SIP/2.0",
  "Via: SIP/2.0/UDP pc33.atlanta.example.com:5061;branch=z9hG4bK776asdhds;rport",
  "Max-Forwards: 70",
  "To: Bob <sip:bob@biloxi.example.com>",
  'From: "Alice A." <sip:alice@atlanta.example.com>;tag=1928301774',
  "Call-ID: a84b4c76e66710@pc33.atlanta.example.com",
  "CSeq: 314159 INVITE",
  "Contact: <sip:alice@pc33.atlanta.example.com;transport=tcp>;expires=3600;q=0.7",
  "Subject: lunch",
  "Content-Type: application/sdp",
  "Content-Length: " .. #SDP,
  "",
  SDP,
}

local OK = H.msg {
  "SIP/2.0 200 OK",
  "Via: SIP/2.0/TCP proxy.example.com;branch=z9hG4bK2d4790.1;received=192.0.2.1, "
    .. "SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds",
  "Via: SIP/2.0/UDP client.example.com:5070;branch=z9hG4bKnashds8;rport=5071",
  "Record-Route: <sip:p2.example.com;lr>, <sip:p1.example.com;lr>",
  "To: Bob <sip:bob@biloxi.example.com>;tag=a6c85cf",
  "From: Alice <sip:alice@atlanta.example.com>;tag=1928301774",
  "Call-ID: a84b4c76e66710@pc33.atlanta.example.com",
  "CSeq: 314159 INVITE",
  "Contact: <sip:bob@192.0.2.4>",
  "Content-Length: 0",
  "",
  "",
}

local REGISTER = H.msg {
  "REGISTER sip:registrar.biloxi.example.com SIP/2.0",
  "Via: SIP/2.0/UDP bobspc.biloxi.example.com:5060;branch=z9hG4bKnashds7",
  "Max-Forwards: 70",
  "To: Bob <sip:bob@biloxi.example.com>",
  "From: Bob <sip:bob@biloxi.example.com>;tag=456248",
  "Call-ID: 843817637684230@998sdasdh09",
  "CSeq: 1826 REGISTER",
  "Contact: <sip:bob@192.0.2.4>",
  "Expires: 7200",
  'Authorization: Digest username="bob", realm="atlanta.example.com",',
  ' nonce="ea9c8e88df84f1cec4341ae6cbe5a359", opaque="",',
  ' uri="sips:ss2.biloxi.example.com", qop=auth, nc=00000001, cnonce="0a4f113b",',
  ' response="dfe56131d1958046689d83306477ecc"',
  "Content-Length: 0",
  "",
  "",
}

local BYE = H.msg {
  "BYE sip:alice@pc33.atlanta.example.com SIP/2.0",
  "v: SIP/2.0/UDP 192.0.2.4;branch=z9hG4bKnashds10",
  "Max-Forwards: 70",
  "f: Bob <sip:bob@biloxi.example.com>;tag=a6c85cf",
  "t: Alice <sip:alice@atlanta.example.com>;tag=1928301774",
  "i: a84b4c76e66710",
  "CSeq: 231 BYE",
  "l: 0",
  "",
  "",
}

local function parse(s, opts)
  local m, err, name = sip.parse(s, opts)
  assert(m, tostring(err) .. " (" .. tostring(name) .. ")")
  return m
end

-- every header line of the original (start line excluded) except those in
-- `skip` (Lua patterns) appears unchanged in out
local function assert_lines_kept(orig, out, skip)
  local lines = H.header_lines(orig)
  for i = 2, #lines do
    local l = lines[i]
    local skipped = l == ""
    for _, p in ipairs(skip or {}) do
      if l:find(p) then
        skipped = true
      end
    end
    if not skipped then
      assert.is_truthy(out:find("\r\n" .. l .. "\r\n", 1, true), "line lost: " .. l)
    end
  end
end

describe("sip.parse", function()
  it("reads the fields of an INVITE", function()
    local m = parse(INVITE)
    assert.is_true(m.is_request)
    assert.equal("INVITE", m.method)
    assert.equal("sip:bob@biloxi.example.com", m.uri)
    assert.equal("SIP/2.0", m.version)
    assert.is_nil(m.status)
    assert.is_nil(m.reason)
    assert.equal("a84b4c76e66710@pc33.atlanta.example.com", m.call_id)
    assert.equal(314159, m.cseq)
    assert.equal("INVITE", m.cseq_method)
    assert.equal(70, m.max_forwards)
    assert.is_nil(m.expires)
    assert.equal("application/sdp", m.content_type)
    assert.equal(SDP, m.body)
    assert.is_true(m.has_content_length)

    assert.equal("Alice A.", m.from.display)
    assert.equal('"Alice A."', m.from.display_raw)
    assert.equal("sip:alice@atlanta.example.com", m.from.uri)
    assert.equal("1928301774", m.from.tag)
    assert.equal("1928301774", m.from.params.tag)
    assert.equal("Bob", m.to.display)
    assert.is_nil(m.to.tag)

    assert.equal(1, #m.via)
    local v = m.via[1]
    assert.equal("SIP", v.protocol)
    assert.equal("2.0", v.version)
    assert.equal("UDP", v.transport)
    assert.equal("pc33.atlanta.example.com", v.host)
    assert.equal(5061, v.port)
    assert.equal("z9hG4bK776asdhds", v.branch)
    assert.is_true(v.rport)
    assert.is_nil(v.received)

    assert.equal(1, #m.contacts)
    local c = m.contacts[1]
    assert.equal("sip:alice@pc33.atlanta.example.com;transport=tcp", c.uri)
    assert.equal(3600, c.expires)
    assert.near(0.7, c.q, 1e-9)
    assert.is_nil(c.params.transport) -- a URI param, not a contact param
    assert.is_nil(m.contacts.star)
    assert.same({}, m.routes)
    assert.same({}, m.record_routes)

    local u = m.ruri
    assert.equal("luasip.URI", getmetatable(u).__name)
    assert.equal("bob", u.user)
    assert.equal("biloxi.example.com", u.host)
  end)

  it("reads a 200 OK with Via lists and Record-Route", function()
    local m = parse(OK)
    assert.is_false(m.is_request)
    assert.equal(200, m.status)
    assert.equal("OK", m.reason)
    assert.is_nil(m.method)
    assert.is_nil(m.uri)
    assert.is_nil(m.ruri)
    assert.equal(3, #m.via)
    assert.equal("TCP", m.via[1].transport)
    assert.equal("192.0.2.1", m.via[1].received)
    assert.equal("z9hG4bK776asdhds", m.via[2].branch)
    assert.equal(5070, m.via[3].port)
    assert.equal(5071, m.via[3].rport)
    assert.equal(2, #m.record_routes)
    assert.equal("sip:p2.example.com;lr", m.record_routes[1].uri)
    assert.equal("a6c85cf", m.to.tag)
    assert.equal("", m.body)
  end)

  it("reads a REGISTER with Authorization", function()
    local m = parse(REGISTER)
    assert.equal("REGISTER", m.method)
    assert.equal(7200, m.expires)
    local a = m:auth()
    assert.equal("Digest", a.scheme)
    assert.equal("bob", a.params.username)
    assert.equal("atlanta.example.com", a.params.realm)
    assert.equal("ea9c8e88df84f1cec4341ae6cbe5a359", a.params.nonce)
    assert.equal("", a.params.opaque)
    assert.equal("sips:ss2.biloxi.example.com", a.params.uri)
    assert.equal("auth", a.params.qop)
    assert.equal("00000001", a.params.nc)
    assert.equal("dfe56131d1958046689d83306477ecc", a.params.response)
    assert.same(a, m:auth("authorization", 1))
    assert.is_nil(m:auth("Authorization", 2))
    assert.is_nil(m:auth("WWW-Authenticate"))
    assert.has_error(function() m:auth("Via") end)
  end)

  -- regression: m:auth(name, 0) read the header line before the first one
  -- (index -1); a malformed line that an edit set said "at byte -1"
  it("auth: n below 1 is misuse; an edited line's error names no byte", function()
    local m = parse(REGISTER)
    assert.has_error(function() m:auth("Authorization", 0) end)
    assert.has_error(function() m:auth("Authorization", -1) end)
    m:set_header("Authorization", ",")
    local a, err, name = m:auth()
    assert.is_nil(a)
    assert.equal("VALUE", name)
    assert.equal("PARSE: Authorization: malformed header value", err)
    local m2 = parse((REGISTER:gsub("Authorization: Digest", "Authorization: ,")))
    local _, err2 = m2:auth()
    assert.truthy(err2:find("^PARSE: Authorization at byte %d+: "), err2)
  end)

  it("reads a compact-form BYE", function()
    local m = parse(BYE)
    assert.equal("BYE", m.method)
    assert.equal("a84b4c76e66710", m.call_id)
    assert.equal("a6c85cf", m.from.tag)
    assert.equal("1928301774", m.to.tag)
    assert.equal("z9hG4bKnashds10", m.via[1].branch)
    assert.equal(231, m.cseq)
    assert.equal("BYE", m.cseq_method)
    assert.equal("", m.body)
  end)

  it("caches derived tables until an edit", function()
    local m = parse(INVITE)
    assert.equal(m.from, m.from)
    assert.equal(m.via, m.via)
    assert.equal(m.contacts, m.contacts)
    assert.equal(m.ruri, m.ruri)
    local via = m.via
    m:push_via("SIP/2.0/UDP p.example.com;branch=z9hG4bKx")
    assert.are_not.equal(via, m.via)
    assert.equal(1, #via) -- the old table is still a valid snapshot
    assert.equal(2, #m.via)
  end)

  it("returns nil for unknown fields and raises on bad assignments", function()
    local m = parse(INVITE)
    assert.is_nil(m.no_such_field)
    assert.has_error(function() m.method = "BYE" end)
    assert.has_error(function() m.uri = 42 end)
  end)
end)

describe("header access", function()
  it("header() is case-insensitive and knows compact forms", function()
    local m = parse(BYE)
    assert.equal("SIP/2.0/UDP 192.0.2.4;branch=z9hG4bKnashds10", m:header("Via"))
    assert.equal(m:header("Via"), m:header("v"))
    assert.equal(m:header("Via"), m:header("VIA"))
    assert.equal("a84b4c76e66710", m:header("Call-ID"))
    assert.equal("a84b4c76e66710", m:header("call-id"))
    assert.equal("0", m:header("Content-Length"))
    assert.equal("231 BYE", m:header("cseq"))
    assert.is_nil(m:header("Contact"))
    assert.is_nil(m:header("X-Nothing"))
    local m2 = parse(INVITE)
    assert.equal("lunch", m2:header("s"))
    assert.equal("lunch", m2:header("SUBJECT"))
    assert.has_error(function() m:header("") end)
    assert.has_error(function() m:header() end)
  end)

  it("header() unfolds continuation lines", function()
    local m = parse(REGISTER)
    local a = m:header("Authorization")
    assert.is_nil(a:find("[\r\n]"))
    assert.truthy(a:find('opaque="", uri=', 1, true))
  end)

  it("headers() splits comma lists of list headers across lines", function()
    local m = parse(OK)
    local vias = m:headers("Via")
    assert.equal(3, #vias)
    assert.equal("SIP/2.0/TCP proxy.example.com;branch=z9hG4bK2d4790.1;received=192.0.2.1", vias[1])
    assert.equal("SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds", vias[2])
    assert.equal("SIP/2.0/UDP client.example.com:5070;branch=z9hG4bKnashds8;rport=5071", vias[3])
    assert.same(vias, m:headers("v"))
    assert.equal(2, #m:headers("Via", false)) -- one entry per line
    assert.same({ "<sip:p2.example.com;lr>", "<sip:p1.example.com;lr>" }, m:headers("Record-Route"))
    assert.same({}, m:headers("Route"))
    assert.equal(2, m:count("Via"))
    assert.equal(0, m:count("Route"))
  end)

  it("headers() keeps quoted commas and does not split non-list headers", function()
    local s = H.msg {
      "OPTIONS sip:x@example.com SIP/2.0",
      "Via: SIP/2.0/UDP h.example.com;branch=z9hG4bK1",
      'Contact: "Doe, John" <sip:j@example.com>, <sip:k@example.com>',
      "Subject: a, b",
      "X-List: 1, 2",
      "Content-Length: 0", "", "",
    }
    local m = parse(s)
    assert.same({ '"Doe, John" <sip:j@example.com>', "<sip:k@example.com>" }, m:headers("m"))
    assert.same({ "a, b" }, m:headers("Subject"))
    assert.same({ "1, 2" }, m:headers("x-list"))
    assert.equal(2, #m.contacts)
    assert.equal("Doe, John", m.contacts[1].display)
  end)

  it("header_names() lists names as written", function()
    local m = parse(BYE)
    assert.same({ "v", "Max-Forwards", "f", "t", "i", "CSeq", "l" }, m:header_names())
  end)

  it("reads Contact: *", function()
    local m = parse(H.msg {
      "REGISTER sip:example.com SIP/2.0",
      "Via: SIP/2.0/UDP h.example.com;branch=z9hG4bK1",
      "Contact: *",
      "Expires: 0",
      "Content-Length: 0", "", "",
    })
    assert.is_true(m.contacts.star)
    assert.equal(0, #m.contacts)
    assert.equal(0, m.expires)
  end)
end)

describe("serialization and edits", function()
  it("reproduces an unchanged message byte for byte", function()
    for _, s in ipairs { INVITE, OK, REGISTER, BYE } do
      local m = parse(s)
      local _, _, _, _ = m.from, m.via, m.contacts, m:header("Via") -- reads do not dirty
      assert.equal(s, tostring(m))
      assert.equal(#s, m:size())
    end
  end)

  it("changes the Request-URI and keeps every header line", function()
    local m = parse(INVITE)
    m.uri = "sip:bob@192.0.2.4:5080"
    assert.equal("sip:bob@192.0.2.4:5080", m.uri)
    assert.equal(5080, m.ruri.port)
    assert.equal("INVITE sip:bob@192.0.2.4:5080 SIP/2.0", m.start_line)
    assert.has_error(function() parse(OK).uri = "sip:x@example.com" end)
    local out = tostring(m)
    assert.equal("INVITE sip:bob@192.0.2.4:5080 SIP/2.0\r\n", out:sub(1, #"INVITE sip:bob@192.0.2.4:5080 SIP/2.0\r\n"))
    assert_lines_kept(INVITE, out)
    assert.equal(SDP, out:sub(-#SDP))
    local m2 = parse(out)
    assert.equal("sip:bob@192.0.2.4:5080", m2.uri)
    assert.equal(SDP, m2.body)
  end)

  it("replaces a header and keeps the others' bytes", function()
    local m = parse(INVITE)
    m:set_header("Max-Forwards", "69")
    assert.equal(69, m.max_forwards)
    local out = tostring(m)
    assert.truthy(out:find("\r\nMax-Forwards: 69\r\n", 1, true))
    assert.falsy(out:find("Max-Forwards: 70", 1, true))
    assert_lines_kept(INVITE, out, { "^Max%-Forwards" })
    assert.equal(69, parse(out).max_forwards)
  end)

  it("set_header() leaves one instance; add_header() and remove_header()", function()
    local m = parse(OK)
    m:set_header("Via", "SIP/2.0/UDP only.example.com;branch=z9hG4bKonly")
    assert.equal(1, m:count("Via"))
    assert.equal(1, #m.via)
    assert.equal("only.example.com", m.via[1].host)
    m:add_header("X-Test", "one")
    m:add_header("X-Test", "zero", "first")
    assert.same({ "zero", "one" }, m:headers("X-Test"))
    m:set_header("Subject", "new")
    assert.equal("new", m:header("Subject"))
    assert.equal(2, m:remove_header("x-test"))
    assert.equal(0, m:remove_header("x-test"))
    assert.is_nil(m:header("X-Test"))
    local out = tostring(m)
    local m2 = parse(out)
    assert.equal(1, #m2.via)
    assert.equal("new", m2:header("Subject"))
    assert.equal("a6c85cf", m2.to.tag)
    assert.has_error(function() m:set_header("X-Bad", "a\r\nInjected: yes") end)
    assert.has_error(function() m:add_header("X", "v", "middle") end)
  end)

  it("changes the body and Content-Length follows", function()
    local m = parse(INVITE)
    m.body = "hello"
    assert.equal("hello", m.body)
    local out = tostring(m)
    assert.truthy(out:find("\r\nContent-Length: 5\r\n", 1, true))
    assert.equal("\r\n\r\nhello", out:sub(-9))
    assert_lines_kept(INVITE, out, { "^Content%-Length" })
    local m2 = parse(out)
    assert.equal("hello", m2.body)
    m2.body = ""
    local m3 = parse(tostring(m2))
    assert.equal("", m3.body)
    assert.equal("0", m3:header("Content-Length"))
  end)

  it("push_via() prepends and pop_via() removes the top value", function()
    local m = parse(OK)
    m:push_via("SIP/2.0/UDP new.example.com;branch=z9hG4bKnew")
    assert.equal(4, #m.via)
    assert.equal("new.example.com", m.via[1].host)
    local out = tostring(m)
    assert.truthy(out:find("^SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP new.example.com;branch=z9hG4bKnew\r\n"))
    assert_lines_kept(OK, out)

    assert.equal("SIP/2.0/UDP new.example.com;branch=z9hG4bKnew", m:pop_via())
    assert.equal(OK, tostring(parse(tostring(m))))
    -- the top line has two values: rewritten without the first
    assert.equal("SIP/2.0/TCP proxy.example.com;branch=z9hG4bK2d4790.1;received=192.0.2.1", m:pop_via())
    assert.equal(2, #m.via)
    assert.equal("pc33.atlanta.example.com", m.via[1].host)
    out = tostring(m)
    assert.truthy(out:find("\r\nVia: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds\r\n", 1, true))
    assert_lines_kept(OK, out, { "^Via" })
    assert.equal(2, #parse(out).via)
    m:pop_via()
    m:pop_via()
    assert.is_nil(m:pop_via())
    assert.same({}, m.via)
    assert.equal(0, parse(tostring(m)):count("Via"))
  end)

  it("push_via() works on a message without Via", function()
    local m = parse(H.msg {
      "OPTIONS sip:x@example.com SIP/2.0", "Content-Length: 0", "", "",
    })
    m:push_via("SIP/2.0/TCP a.example.com;branch=z9hG4bKa")
    assert.equal("a.example.com", parse(tostring(m)).via[1].host)
  end)

  it("changes the status of a response", function()
    local m = parse(OK)
    m:set_status(486, "Busy Here")
    local out = tostring(m)
    assert.equal("SIP/2.0 486 Busy Here\r\n", out:sub(1, 23))
    assert.equal(486, parse(out).status)
    assert.has_error(function() parse(INVITE):set_status(200, "OK") end)
  end)

  it("copy() parses the current serialization", function()
    local m = parse(INVITE)
    m:set_header("Subject", "dinner")
    local c = m:copy()
    assert.equal("dinner", c:header("Subject"))
    assert.equal(tostring(m), tostring(c))
  end)
end)

describe("msg:response()", function()
  it("follows RFC 3261 8.2.6", function()
    local req = parse(INVITE)
    local r = assert(req:response(180))
    assert.is_false(r.is_request)
    assert.equal(180, r.status)
    assert.equal("Ringing", r.reason)
    assert.same(req:headers("Via"), r:headers("Via"))
    assert.equal(req:header("From"), r:header("From"))
    assert.equal(req.from.tag, r.from.tag)
    assert.equal(req.call_id, r.call_id)
    assert.equal(req.cseq, r.cseq)
    assert.equal("INVITE", r.cseq_method)
    assert.is_string(r.to.tag)
    assert.is_true(#r.to.tag >= 8)
    assert.equal(req.to.uri, r.to.uri)
    assert.equal("0", r:header("Content-Length"))
    assert.equal("", r.body)
    assert.is_nil(r:header("Contact"))
    assert.is_nil(r:header("Subject"))
    assert.is_true(r:validate())
  end)

  it("keeps Via lines and order, an existing To tag, and adds no tag to 100", function()
    local req = parse(H.msg {
      "BYE sip:x@example.com SIP/2.0",
      "Via: SIP/2.0/UDP a.example.com;branch=z9hG4bK1, SIP/2.0/UDP b.example.com;branch=z9hG4bK2",
      "Via: SIP/2.0/UDP c.example.com;branch=z9hG4bK3",
      "From: <sip:a@example.com>;tag=f1",
      "To: <sip:x@example.com>;tag=t1",
      "Call-ID: c1",
      "CSeq: 7 BYE",
      "Timestamp: 54",
      "Content-Length: 0", "", "",
    })
    local r = req:response(200, "Fine")
    assert.equal("Fine", r.reason)
    assert.equal(2, r:count("Via"))
    assert.same({ "a.example.com", "b.example.com", "c.example.com" },
      { r.via[1].host, r.via[2].host, r.via[3].host })
    assert.equal("t1", r.to.tag)
    local t = req:response(100)
    assert.equal("Trying", t.reason)
    local notag = parse(INVITE):response(100)
    assert.is_nil(notag.to.tag)
    assert.equal("54", t:header("Timestamp"))
    assert.is_nil(r:header("Timestamp"))
  end)

  it("refuses misuse", function()
    assert.has_error(function() parse(OK):response(200) end)
    assert.has_error(function() parse(INVITE):response(99) end)
    assert.has_error(function() parse(INVITE):response(700) end)
    assert.has_error(function() parse(INVITE):response(200, "a\r\nb") end)
  end)
end)

describe("sip.request", function()
  it("builds a request and generates Call-ID, tag and branch", function()
    local m = assert(sip.request {
      method = "INVITE",
      uri = "sip:bob@biloxi.example.com",
      from = "Alice <sip:alice@atlanta.example.com>",
      to = "sip:bob@biloxi.example.com",
      via = "SIP/2.0/UDP pc33.atlanta.example.com",
      contact = "sip:alice@pc33.atlanta.example.com",
      headers = { { "Subject", "lunch" }, { "X-A", "1" } },
      content_type = "application/sdp",
      body = SDP,
    })
    assert.equal("INVITE", m.method)
    assert.equal("sip:bob@biloxi.example.com", m.uri)
    assert.equal(70, m.max_forwards)
    assert.equal("Alice", m.from.display)
    assert.is_string(m.from.tag)
    assert.is_nil(m.to.tag)
    assert.equal("sip:bob@biloxi.example.com", m.to.uri)
    assert.is_string(m.call_id)
    assert.is_true(#m.call_id >= 16)
    assert.equal(1, m.cseq)
    assert.equal("INVITE", m.cseq_method)
    assert.equal(1, #m.via)
    assert.truthy(m.via[1].branch:find("^z9hG4bK."))
    assert.equal("sip:alice@pc33.atlanta.example.com", m.contacts[1].uri)
    assert.equal("lunch", m:header("Subject"))
    assert.equal("application/sdp", m.content_type)
    assert.equal(SDP, m.body)
    assert.equal(tostring(#SDP), m:header("Content-Length"))
    assert.is_true(m:validate())
  end)

  it("keeps given identifiers and a map of headers", function()
    local m = assert(sip.request {
      method = "OPTIONS",
      uri = sip.uri("sip:x@example.com"),
      from = "<sip:a@example.com>;tag=mytag",
      to = "<sip:x@example.com>",
      call_id = "abc@h",
      cseq = 42,
      via = { "SIP/2.0/UDP a.example.com;branch=z9hG4bKgiven", "SIP/2.0/UDP b.example.com" },
      max_forwards = 10,
      headers = { Accept = "application/sdp", Supported = { "timer", "path" } },
    })
    assert.equal("mytag", m.from.tag)
    assert.equal("abc@h", m.call_id)
    assert.equal(42, m.cseq)
    assert.equal(10, m.max_forwards)
    assert.equal("z9hG4bKgiven", m.via[1].branch)
    assert.truthy(m.via[2].branch:find("^z9hG4bK"))
    assert.same({ "timer", "path" }, m:headers("Supported"))
    assert.equal("", m.body)
    assert.equal("0", m:header("Content-Length"))
  end)

  it("generates distinct identifiers", function()
    local a = sip.request { method = "OPTIONS", uri = "sip:x@example.com", from = "sip:a@example.com" }
    local b = sip.request { method = "OPTIONS", uri = "sip:x@example.com", from = "sip:a@example.com" }
    assert.are_not.equal(a.call_id, b.call_id)
    assert.are_not.equal(a.from.tag, b.from.tag)
    assert.are_not.equal(sip.new_branch(), sip.new_branch())
  end)

  it("raises on misuse", function()
    assert.has_error(function() sip.request() end)
    assert.has_error(function() sip.request { uri = "sip:x@example.com" } end)
    assert.has_error(function() sip.request { method = "IN VITE", uri = "sip:x@example.com" } end)
    assert.has_error(function() sip.request { method = "INVITE", uri = "sip:x\r\n" } end)
  end)

  it("returns the parse error for an unusable Request-URI", function()
    local m, err, name = sip.request { method = "OPTIONS", uri = "" }
    assert.is_nil(m)
    assert.truthy(err:find("^PARSE: "))
    assert.is_string(name)
  end)
end)

describe("stream mode", function()
  it("asks for more bytes until the message is complete", function()
    for _, cut in ipairs { 1, 10, #INVITE - #SDP - 2, #INVITE - 1 } do
      local m, err, name = sip.parse(INVITE:sub(1, cut), { stream = true })
      assert.is_nil(m)
      assert.equal("NEEDMORE", name)
      assert.truthy(err:find("^NEEDMORE"))
    end
    local m, n = sip.parse(INVITE, { stream = true })
    assert.is_truthy(m)
    assert.equal(#INVITE, n)
    assert.equal(SDP, m.body)
  end)

  it("reports the bytes consumed with two messages in one buffer", function()
    local buf = INVITE .. BYE .. "INVITE sip:partial"
    local m1, n1 = sip.parse(buf, { stream = true })
    assert.equal(#INVITE, n1)
    assert.equal("INVITE", m1.method)
    assert.equal(INVITE, tostring(m1))
    local m2, n2 = sip.parse(buf, { stream = true, pos = n1 + 1 })
    assert.equal(#BYE, n2)
    assert.equal("BYE", m2.method)
    assert.equal(BYE, tostring(m2))
    local m3, _, name = sip.parse(buf, { stream = true, pos = n1 + n2 + 1 })
    assert.is_nil(m3)
    assert.equal("NEEDMORE", name)
    local m4, n4 = sip.parse(buf:sub(n1 + 1), { stream = true })
    assert.equal(#BYE, n4)
    assert.equal(231, m4.cseq)
  end)

  it("gives an empty body without Content-Length, datagram mode the rest", function()
    local s = H.msg {
      "OPTIONS sip:x@example.com SIP/2.0",
      "Via: SIP/2.0/TCP h.example.com;branch=z9hG4bK1",
      "", "trailing",
    }
    local m, n = sip.parse(s, { stream = true })
    assert.equal("", m.body)
    assert.equal(#s - #"trailing", n)
    assert.is_false(m.has_content_length)
    assert.equal("trailing", parse(s).body)
  end)

  it("datagram mode ignores bytes after the body", function()
    local m = parse(BYE .. "junk junk")
    assert.equal("", m.body)
    assert.equal(BYE, tostring(m))
  end)

  it("rejects a bad pos", function()
    assert.has_error(function() sip.parse(BYE, { pos = 0 }) end)
    assert.has_error(function() sip.parse(BYE, { pos = #BYE + 2 }) end)
  end)
end)

describe("limits", function()
  it("max_size", function()
    local m, err, name = sip.parse(INVITE, { max_size = 100 })
    assert.is_nil(m)
    assert.equal("TOOBIG", name)
    assert.truthy(err:find("^PARSE: "))
    assert.truthy(sip.parse(INVITE, { max_size = #INVITE }))
  end)

  it("max_headers", function()
    local m, err, name = sip.parse(INVITE, { max_headers = 5 })
    assert.is_nil(m)
    assert.equal("TOOMANY", name)
    assert.truthy(err:find("^PARSE: "))
    assert.truthy(sip.parse(INVITE, { max_headers = 11 }))
  end)

  it("max_line", function()
    local long = H.msg {
      "OPTIONS sip:x@example.com SIP/2.0",
      "X-Long: " .. ("a"):rep(300),
      "Content-Length: 0", "", "",
    }
    local m, err, name = sip.parse(long, { max_line = 100 })
    assert.is_nil(m)
    assert.equal("LINELEN", name)
    assert.truthy(err:find("^PARSE: "))
    assert.truthy(sip.parse(long, { max_line = 400 }))
  end)

  it("stream mode: limits end the wait for bytes that never complete a message", function()
    local head = "OPTIONS sip:x@example.com SIP/2.0\r\n"
    local _, _, name = sip.parse(head .. ("X-A: b\r\n"):rep(300), { stream = true })
    assert.equal("TOOMANY", name)
    _, _, name = sip.parse(head .. ("X-A: b\r\n"):rep(30), { stream = true, max_size = 200 })
    assert.equal("TOOBIG", name)
    _, _, name = sip.parse(head .. "X: " .. ("a"):rep(20000), { stream = true })
    assert.equal("LINELEN", name)
    _, _, name = sip.parse(head .. "Content-Length: 70000\r\n\r\nabc", { stream = true })
    assert.equal("TOOBIG", name)
  end)

  it("rejects bad limit values", function()
    assert.has_error(function() sip.parse(BYE, { max_size = 0 }) end)
    assert.has_error(function() sip.parse(BYE, { max_line = "x" }) end)
    assert.has_error(function() sip.parse(BYE, 5) end)
    assert.has_error(function() sip.parse(nil) end)
  end)
end)

describe("errors", function()
  it("names a malformed start line", function()
    local m, err, name = sip.parse("HELLO\r\n\r\n")
    assert.is_nil(m)
    assert.equal("STARTLINE", name)
    assert.truthy(err:find("^PARSE: .*at byte %d+"))
    assert.truthy(err:find("start line"))
  end)

  it("names a bad Content-Length and a short body", function()
    local _, _, name = sip.parse((BYE:gsub("l: 0", "l: x")))
    assert.equal("CLEN", name)
    local _, err2, name2 = sip.parse((BYE:gsub("l: 0", "l: 50")))
    assert.equal("SHORTBODY", name2)
    assert.truthy(err2:find("^PARSE: "))
  end)

  it("lazy fields: nil on read, the error from get() and validate()", function()
    local m = parse((BYE:gsub("CSeq: 231 BYE", "CSeq: x BYE")))
    assert.is_nil(m.cseq)
    local v, err, name = m:get("cseq")
    assert.is_nil(v)
    assert.equal("CSEQ", name)
    assert.truthy(err:find("^PARSE: CSeq at byte %d+: "))
    local ok, err2, name2 = m:validate()
    assert.is_nil(ok)
    assert.equal(err, err2)
    assert.equal(name, name2)
    assert.equal(231, parse(BYE):get("cseq"))
    assert.is_nil(parse(BYE):get("contacts")[1])
    assert.has_error(function() m:get("nonsense") end)
  end)

  it("error names and messages", function()
    assert.equal("NEEDMORE", sip.errname(sip.E.NEEDMORE))
    assert.equal("CSEQ", sip.errname(sip.E.CSEQ))
    assert.equal("UNKNOWN", sip.errname(1))
    assert.equal("malformed CSeq", sip.strerror(sip.E.CSEQ))
    assert.equal("Via", sip.header_name("v"))
    assert.equal("Call-ID", sip.header_name("CALL-ID"))
    assert.is_nil(sip.header_name("X-Foo"))
    assert.is_true(sip.is_list_header("Contact"))
    assert.is_false(sip.is_list_header("CSeq"))
    assert.equal("Not Found", sip.reason_phrase(404))
    assert.equal("Client Error", sip.reason_phrase(499))
  end)
end)

describe("lifetime", function()
  it("__close and close() are safe twice; a closed message raises", function()
    local m = parse(INVITE)
    do
      local c <close> = parse(BYE)
      assert.equal("BYE", c.method)
    end
    m:close()
    m:close()
    assert.is_true(m:is_closed())
    assert.has_error(function() return m.method end)
    assert.has_error(function() return tostring(m) end)
  end)

  it("keeps working after the input string is dropped", function()
    local m = parse(table.concat { INVITE:sub(1, 10), INVITE:sub(11) })
    collectgarbage()
    collectgarbage()
    assert.equal(INVITE, tostring(m))
    assert.equal("1928301774", m.from.tag)
  end)

  it("the R-URI object outlives its message", function()
    local m = parse(INVITE)
    local u = m.ruri
    m:close()
    assert.equal("biloxi.example.com", u.host)
  end)
end)

describe("address and Via views", function()
  it("read fields on demand and print as the value was written", function()
    local m = parse(INVITE)
    local from = m.from
    assert.equal(from.raw, tostring(from))
    assert.equal(m.via[1].raw, tostring(m.via[1]))
    assert.equal(from.params, from.params) -- built once, then cached
    assert.equal(from.tag, from.params.tag)
    assert.is_nil(from.no_such_field)
  end)

  it("refuse to read after the message is closed", function()
    local m = parse(INVITE)
    local from, via = m.from, m.via[1]
    m:close()
    assert.has_error(function() return from.tag end)
    assert.has_error(function() return via.branch end)
  end)

  it("keep the value read before an edit; the message gives the new one", function()
    local m = parse(INVITE)
    local old = m.from
    m:set_header("From", "<sip:carol@chicago.example.com>;tag=new1")
    assert.equal("new1", m.from.tag)
    assert.is_not.equal("new1", old.tag)
    assert.equal("sip:carol@chicago.example.com", m.from.uri)
  end)
end)
