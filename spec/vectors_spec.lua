-- The RFC 4475 / RFC 5118 torture messages of spec/vectors, walked from
-- INDEX.tsv: every `valid` message parses, validates and reads back right;
-- every `invalid-parse` message is refused with an error naming the problem
-- (or, only where the INDEX note allows a liberal reading, accepted without
-- reproducing the bad form); every `valid-syntax-but-semantic-error`
-- message parses.
local here = debug.getinfo(1, "S").source:gsub("^@", ""):match("^(.*)/[^/]*$") or "."
local H = dofile(here .. "/support/helpers.lua")
local sip = require "luasip"

local INDEX, BY = H.index()

-- The three RFC 5118 vectors whose Content-Length does not match the CRLF
-- body (INDEX note "CAUTION"): corrected before checking IPv6 handling.
local WRONG_CLEN = {
  ["rfc5118/ipv6-in-sdp.dat"] = true,
  ["rfc5118/mult-ip-in-sdp.dat"] = true,
  ["rfc5118/ipv4-mapped-ipv6.dat"] = true,
}

-- Vectors that are not simply "the whole file is one message".
local NOT_WHOLE = {
  ["rfc4475/dblreq.dat"] = true, -- a second message follows as junk
  ["rfc4475/inv2543.dat"] = true, -- no Content-Length: stream framing differs
}

local function load(file)
  local s = H.vector(file)
  if WRONG_CLEN[file] then
    s = H.fix_clen(s)
  end
  return s
end

local function parse(file)
  local s = load(file)
  local m, err, name = sip.parse(s)
  assert(m, file .. ": " .. tostring(err) .. " (" .. tostring(name) .. ")")
  return m, s
end

local function user(uri_text)
  return assert(sip.uri(uri_text)).user
end

-- Try parse, then validate: returns the message (nil when refused at
-- framing), and the error and its name when refused at either stage.
local function refuse(bytes)
  local m, err, name = sip.parse(bytes)
  if not m then
    return nil, err, name, "parse"
  end
  local ok, verr, vname = m:validate()
  if not ok then
    return m, verr, vname, "validate"
  end
  return m
end

------------------------------------------------------------------------------
-- invalid-parse: how each must be refused. names = acceptable error codes,
-- what = patterns of which one must appear in the message (the place),
-- liberal = (only where the note allows accepting it) a check that the
-- accepted message does not carry the bad form forward.
------------------------------------------------------------------------------

-- the start line an edit makes the serializer write from parts
local function forwarded_start_line(m)
  m.uri = m.uri
  m:set_header("Max-Forwards", "69")
  local out = tostring(m)
  return out:match("^([^\r\n]*)")
end

local INVALID = {
  ["rfc4475/badinv01.dat"] = { names = { VIA = 1, PARAM = 1 }, what = { "Via" } },
  ["rfc4475/clerr.dat"] = { names = { SHORTBODY = 1 }, what = { "body" } },
  ["rfc4475/ncl.dat"] = { names = { CLEN = 1 }, what = { "Content%-Length" } },
  ["rfc4475/scalar02.dat"] = { names = { RANGE = 1, CSEQ = 1 }, what = { "CSeq" } },
  ["rfc4475/scalarlg.dat"] = { names = { RANGE = 1, CSEQ = 1 }, what = { "CSeq" } },
  ["rfc4475/quotbal.dat"] = { names = { QUOTE = 1, ADDR = 1 }, what = { "^PARSE: To " } },
  ["rfc4475/ltgtruri.dat"] = {
    names = { STARTLINE = 1, URI = 1 }, what = { "Request%-URI" },
    liberal = function(m)
      assert.is_nil(forwarded_start_line(m):find("[<>]"))
    end,
  },
  ["rfc4475/lwsruri.dat"] = {
    names = { STARTLINE = 1, VERSION = 1, URI = 1 }, what = { "Request%-URI", "version", "start line" },
    liberal = function(m)
      assert.is_nil(m.uri:find(" "))
      assert.truthy(forwarded_start_line(m):find("^INVITE [^ ]+ SIP/2%.0$"))
    end,
  },
  ["rfc4475/lwsstart.dat"] = {
    names = { STARTLINE = 1, VERSION = 1, URI = 1 }, what = { "Request%-URI", "version", "start line" },
    liberal = function(m)
      assert.truthy(forwarded_start_line(m):find("^INVITE [^ ]+ SIP/2%.0$"))
    end,
  },
  ["rfc4475/trws.dat"] = {
    names = { STARTLINE = 1, VERSION = 1 }, what = { "version", "start line" },
    liberal = function(m)
      assert.truthy(forwarded_start_line(m):find("^OPTIONS [^ ]+ SIP/2%.0$"))
    end,
  },
  ["rfc4475/escruri.dat"] = {
    names = { URI = 1 }, what = { "Request%-URI" },
    liberal = function(m)
      assert.is_nil(m.ruri.headers_raw)
      assert.is_nil(forwarded_start_line(m):find("?", 1, true))
    end,
  },
  ["rfc4475/baddate.dat"] = {
    names = { VALUE = 1, HEADER = 1 }, what = { "Date" },
    -- "an element that does not need the Date should just ignore it"
    liberal = function(m)
      assert.equal("Fri, 01 Jan 2010 16:00:00 EST", m:header("Date"))
      assert.equal(1392934, m.cseq)
    end,
  },
  ["rfc4475/regbadct.dat"] = {
    names = { ADDR = 1, URI = 1, PARAM = 1 }, what = { "Contact" },
    -- "could infer the brackets": the header must then belong to the URI
    liberal = function(m)
      local u = assert(sip.uri(m.contacts[1].uri))
      assert.equal("<sip:sip.example.com>", u.headers.route)
    end,
  },
  ["rfc4475/badaspec.dat"] = {
    names = { ADDR = 1, URI = 1 }, what = { "^PARSE: To " },
    liberal = function(m)
      assert.equal("sip:t.watson@example.org", m.to.uri)
    end,
  },
  ["rfc4475/baddn.dat"] = {
    -- as archived the header section never ends (HEADER at framing); see
    -- the dedicated test below for the display names themselves
    names = { HEADER = 1, ADDR = 1 }, what = { "header section", "From", "To" },
  },
  ["rfc4475/bigcode.dat"] = { names = { STARTLINE = 1, RANGE = 1 }, what = { "status" } },
  ["rfc5118/ipv6-bad.dat"] = { names = { URI = 1 }, what = { "Request%-URI" } },
}

------------------------------------------------------------------------------
-- Field checks, by file.
------------------------------------------------------------------------------

local CHECK = {}

CHECK["rfc4475/wsinv.dat"] = function(m)
  assert.equal("INVITE", m.method)
  assert.equal("sip:vivekg@chair-dnrc.example.com;unknownparam", m.uri)
  assert.is_true(m.ruri.params.unknownparam)
  assert.equal("sip:vivekg@chair-dnrc.example.com", m.to.uri)
  assert.equal("1918181833n", m.to.tag)
  assert.equal('J Rosenberg \\"', m.from.display)
  assert.equal('"J Rosenberg \\\\\\""', m.from.display_raw)
  assert.equal("sip:jdrosen@example.com", m.from.uri)
  assert.equal("98asjd8", m.from.tag)
  assert.equal(68, m.max_forwards)
  assert.equal("0068", m:header("max-forwards"))
  assert.equal("wsinv.ndaksdj@192.0.2.1", m.call_id)
  assert.equal(9, m.cseq)
  assert.equal("INVITE", m.cseq_method)
  assert.equal(3, #m.via)
  assert.equal("UDP", m.via[1].transport)
  assert.equal("192.0.2.2", m.via[1].host)
  assert.equal("390skdjuw", m.via[1].branch)
  -- the v: line holds two values
  local lines = m:headers("Via", false)
  assert.equal(2, #lines)
  assert.equal(3, #m:headers("Via"))
  assert.equal("TCP", m.via[2].transport)
  assert.equal("spindle.example.com", m.via[2].host)
  assert.equal("z9hG4bK9ikj8", m.via[2].branch)
  assert.equal("UDP", m.via[3].transport)
  assert.equal("192.168.255.111", m.via[3].host)
  assert.equal("z9hG4bK30239", m.via[3].branch)
  assert.equal("", m:header("Subject"))
  assert.equal("newfangled value continued newfangled value", m:header("NewFangledHeader"))
  assert.equal(";;,,;;,;", m:header("UnknownHeaderWithUnusualValue"))
  assert.same({ ";;,,;;,;" }, m:headers("UnknownHeaderWithUnusualValue"))
  assert.equal(1, #m.routes)
  assert.equal("sip:services.example.com;lr;unknownwith=value;unknown-no-value", m.routes[1].uri)
  assert.equal(1, #m.contacts)
  local c = m.contacts[1]
  assert.equal('Quoted string ""', c.display)
  assert.equal("sip:jdrosen@example.com", c.uri)
  assert.equal("newvalue", c.params.newparam)
  assert.is_true(c.params.secondparam)
  assert.near(0.33, c.q, 1e-9)
  assert.equal("application/sdp", m.content_type)
  assert.equal(150, #m.body)
end

CHECK["rfc4475/intmeth.dat"] = function(m, s)
  local method = "!interesting-Method0123456789_*+`.%indeed'~"
  assert.equal(method, m.method)
  assert.equal(method, m.cseq_method)
  assert.equal(139122385, m.cseq)
  assert.equal(255, m.max_forwards)
  assert.equal(s:match("^[^ ]+ ([^ ]+) SIP/2%.0\r\n"), m.uri)
  assert.equal("example.com", m.ruri.host)
  assert.equal("z9hG4bK-.!%66*_+`'~", m.via[1].branch)
  assert.equal("BEL:\7 NUL:\0 DEL:\127", m.to.display)
  assert.equal("token1~` token2'+_ token3*%!.-", m.from.display)
  assert.equal("_token~1'+`*%!-.", m.from.tag)
  assert.equal("intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{", m.call_id)
  local ext = m:header("extensionHeader-!.%*+_`'~")
  assert.equal("\239\187\191", ext:sub(1, 3))
end

CHECK["rfc4475/esc01.dat"] = function(m)
  assert.equal("sips:user@example.com", m.ruri.user)
  assert.equal("sips%3Auser%40example.com", m.ruri.user_raw)
  assert.equal("example.net", m.ruri.host)
  assert.equal("user", user(m.to.uri))
  assert.is_true(sip.uri(m.to.uri) == sip.uri("sip:user@example.com"))
  assert.equal("I have spaces", user(m.from.uri))
  assert.equal("938", m.from.tag)
  assert.equal("esc01.239409asdfakjkn23onasd0-3234", m.call_id)
  assert.equal("application/sdp", m.content_type)
  local cu = assert(sip.uri(m.contacts[1].uri))
  assert.equal("caller", cu.user)
  assert.is_true(cu.params.lr)
  assert.equal("value%41", cu.params.name) -- decoded once only
end

CHECK["rfc4475/escnull.dat"] = function(m)
  local to = user(m.to.uri)
  assert.equal("null-\0-null", to)
  assert.equal(11, #to)
  assert.equal("null-\0-null", user(m.from.uri))
  assert.equal(2, #m.contacts)
  local a, b = sip.uri(m.contacts[1].uri), sip.uri(m.contacts[2].uri)
  assert.equal("\0", a.user)
  assert.equal("\0\0", b.user)
  assert.is_false(a == b)
  assert.are_not.equal(m.contacts[1].uri, m.contacts[2].uri)
end

CHECK["rfc4475/esc02.dat"] = function(m)
  assert.equal("RE%47IST%45R", m.method)
  assert.equal("RE%47IST%45R", m.cseq_method)
  assert.equal("%Z%45", m.from.display)
  assert.equal("%Z%45", m.to.display)
  assert.equal("z9hG4bK209%fzsnel234", m.via[1].branch)
  assert.equal(2, #m.contacts)
  assert.equal("sip:alias1@host1.example.com", m.contacts[1].uri)
  assert.equal("sip:alias3@host3.example.com", m.contacts[2].uri)
  assert.equal("<sip:alias2@host2.example.com>", m:header("C%6Fntact"))
end

CHECK["rfc4475/lwsdisp.dat"] = function(m)
  assert.equal("caller", m.from.display)
  assert.equal("sip:caller@example.com", m.from.uri)
  assert.equal("323", m.from.tag)
end

CHECK["rfc4475/longreq.dat"] = function(m, s)
  assert.equal(34, #m.via)
  assert.equal(34, #m:headers("Via"))
  assert.equal(34, m:count("v"))
  assert.equal("sip33.example.com", m.via[1].host)
  assert.equal("sip22.example.com", m.via[12].host)
  assert.equal("sip1.example.com", m.via[33].host)
  assert.equal("host.example.com", m.via[34].host)
  assert.equal("192.0.2.5", m.via[34].received)
  assert.equal(s:match(";branch=(verylong[^\r\n;]*)"), m.via[34].branch)
  assert.equal(s:match('\nTo: "([^"]*)"'), m.to.display)
  assert.equal(s:match("\nF: [^;]*;tag=([^\r\n;]*)"), m.from.tag)
  assert.equal(s:match("\nCall%-ID: ([^\r\n]*)"), m.call_id)
  local uname, uval = s:match("\n(Unknown%-Long[^:]*): ([^\r\n]*)")
  assert.equal(uval, m:header(uname))
  assert.equal(3882340, m.cseq)
  assert.equal(150, #m.body)
end

CHECK["rfc4475/dblreq.dat"] = function(m, s)
  assert.equal("REGISTER", m.method)
  assert.equal("", m.body)
  assert.equal(0, #m.body)
  assert.equal("0", m:header("Content-Length"))
  assert.equal("dblreq.0ha0isndaksdj99sdfafnl3lk233412", m.call_id)
  assert.equal(1, m:count("Call-ID"))
  assert.equal(8, m.max_forwards)
  local out = tostring(m)
  assert.is_true(#out < #s)
  assert.equal(s:sub(1, #out), out)
  assert.is_nil(out:find("INVITE", 1, true))
  -- forwarding (an edit) never carries the junk along
  m:push_via("SIP/2.0/UDP proxy.example.com;branch=z9hG4bKfwd")
  assert.is_nil(tostring(m):find("INVITE", 1, true))
end

CHECK["rfc4475/semiuri.dat"] = function(m)
  assert.equal("user;par=u@example.net", m.ruri.user)
  assert.equal("example.com", m.ruri.host)
  assert.same({}, m.ruri.params)
  assert.equal("application/sdp, application/pkcs7-mime, multipart/mixed, multipart/signed, "
    .. "message/sip, message/sipfrag", m:header("Accept"))
  assert.equal(6, #m:headers("Accept"))
end

CHECK["rfc4475/transports.dat"] = function(m)
  local t = {}
  for i, v in ipairs(m.via) do
    t[i] = v.transport
  end
  assert.same({ "UDP", "SCTP", "TLS", "UNKNOWN", "TCP" }, t)
  assert.equal("t4.example.com", m.via[4].host)
end

CHECK["rfc4475/mpart01.dat"] = function(m, s)
  assert.equal("MESSAGE", m.method)
  assert.equal("multipart/mixed", m.content_type)
  assert.equal("7a9cbec02ceef655", m.ctype.boundary)
  assert.equal(553, #m.body)
  assert.equal(s:sub(H.body_start(s)), m.body)
  local parts = assert(m:parts())
  assert.equal(2, #parts)
  assert.equal("text/plain", parts[1].content_type)
  assert.equal("Hello", parts[1].body)
  assert.equal("application/octet-stream", parts[2].content_type)
  -- the second part's length found independently: from the empty line after
  -- its headers to the CRLF before the closing delimiter
  local body = m.body
  local p2 = select(2, body:find("Content-Type: application/octet-stream\r\n"
    .. "Content-Transfer-Encoding: binary\r\n\r\n", 1, true)) + 1
  local close = body:find("\r\n--7a9cbec02ceef655--", 1, true)
  assert.equal(close - p2, #parts[2].body)
  assert.equal(body:sub(p2, close - 1), parts[2].body)
  assert.truthy(parts[2].body:find("\0", 1, true))
  assert.truthy(parts[2].body:find("[^\r]\n"))
end

CHECK["rfc4475/unreason.dat"] = function(m, s)
  assert.equal(200, m.status)
  assert.equal(s:match("^SIP/2%.0 200 ([^\r\n]*)"), m.reason)
  assert.truthy(m.reason:find("\208", 1, true)) -- UTF-8 Cyrillic
end

CHECK["rfc4475/noreason.dat"] = function(m)
  assert.equal(100, m.status)
  assert.equal("", m.reason)
end

CHECK["rfc4475/zeromf.dat"] = function(m)
  assert.equal(0, m.max_forwards)
end

CHECK["rfc4475/cparam01.dat"] = function(m)
  local c = m.contacts[1]
  assert.equal("sip:+19725552222@gw1.example.net", c.uri)
  assert.is_true(c.params.unknownparam) -- a Contact parameter
  assert.is_nil(sip.uri(c.uri).params.unknownparam)
end

CHECK["rfc4475/cparam02.dat"] = function(m)
  local c = m.contacts[1]
  assert.equal("sip:+19725552222@gw1.example.net;unknownparam", c.uri)
  assert.is_nil(c.params.unknownparam)
  assert.is_true(sip.uri(c.uri).params.unknownparam) -- a URI parameter
end

CHECK["rfc4475/regescrt.dat"] = function(m)
  assert.equal(1, #m.contacts)
  local u = sip.uri(m.contacts[1].uri)
  assert.equal("<sip:sip.example.com>", u.headers.route)
  assert.equal("Route=%3Csip:sip.example.com%3E", u.headers_raw)
end

CHECK["rfc4475/inv2543.dat"] = function(m, s)
  assert.is_false(m.has_content_length)
  assert.equal(s:sub(H.body_start(s)), m.body) -- the rest of the datagram
  assert.truthy(#m.body > 0)
  assert.is_nil(m.via[1].branch)
  assert.is_nil(m.from.tag)
  assert.is_nil(m.max_forwards)
  assert.equal("sip:UserB@example.com;maddr=ss1.example.com", m.record_routes[1].uri)
  -- an addr-spec without <>: ";user=phone" is a header parameter
  assert.equal("sip:+16505552222@ss1.example.net", m.to.uri)
  assert.equal("phone", m.to.params.user)
  assert.equal("phone", sip.uri(m.from.uri).user_param)
  -- on a stream, no Content-Length means an empty body
  local sm, n = sip.parse(s, { stream = true })
  assert.equal("", sm.body)
  assert.equal(H.body_start(s) - 1, n)
end

CHECK["rfc5118/ipv6-good.dat"] = function(m)
  assert.equal("[2001:db8::10]", m.ruri.host)
  assert.equal("ipv6", m.ruri.host_type)
  assert.is_nil(m.ruri.port)
  assert.equal("[2001:db8::9:1]", m.via[1].host)
  assert.equal("Caller", m.contacts[1].display)
  assert.equal("[2001:db8::1]", sip.uri(m.contacts[1].uri).host)
end

CHECK["rfc5118/port-unambiguous.dat"] = function(m)
  assert.equal("[2001:db8::10]", m.ruri.host)
  assert.equal(5070, m.ruri.port)
end

CHECK["rfc5118/via-received-param-with-delim.dat"] = function(m)
  assert.equal("[2001:db8::9:1]", m.via[1].host)
  assert.equal("[2001:db8::9:255]", m.via[1].received)
  assert.equal("z9hG4bKas3-111", m.via[1].branch)
end

CHECK["rfc5118/via-received-param-no-delim.dat"] = function(m)
  assert.equal("2001:db8::9:255", m.via[1].received)
  assert.equal("z9hG4bKas3", m.via[1].branch)
end

CHECK["rfc5118/ipv6-in-sdp.dat"] = function(m, s)
  assert.equal("[2001:db8::10]", m.ruri.host)
  assert.equal("[2001:db8::20]", m.via[1].host)
  assert.equal("[2001:db8::20]", sip.uri(m.contacts[1].uri).host)
  assert.equal(#s - H.body_start(s) + 1, #m.body)
  assert.truthy(m.body:find("c=IN IP6 2001:db8::20", 1, true))
end

CHECK["rfc5118/mult-ip-in-header.dat"] = function(m)
  assert.equal(3, #m.via)
  assert.equal("[2001:db8::9:1]", m.via[1].host)
  assert.equal(6050, m.via[1].port)
  assert.equal("192.0.2.1", m.via[2].host)
  assert.is_nil(m.via[2].port)
  assert.equal("TCP", m.via[3].transport)
  assert.equal("[2001:db8::9:255]", m.via[3].host)
  assert.equal("192.0.2.200", m.via[3].received)
end

CHECK["rfc5118/mult-ip-in-sdp.dat"] = function(m, s)
  assert.equal("[2001:db8::9:1]", m.via[1].host)
  assert.equal(#s - H.body_start(s) + 1, #m.body)
  assert.truthy(m.body:find("c=IN IP6 2001:db8::", 1, true))
  assert.truthy(m.body:find("c=IN IP4 ", 1, true))
end

CHECK["rfc5118/ipv4-mapped-ipv6.dat"] = function(m, s)
  assert.equal("[::ffff:192.0.2.10]", m.via[1].host)
  assert.equal(19823, m.via[1].port)
  assert.equal("[::ffff:192.0.2.2]", m.via[2].host)
  assert.is_nil(m.via[2].port)
  assert.equal("T. desk phone", m.contacts[1].display)
  assert.equal("[::ffff:192.0.2.2]", sip.uri(m.contacts[1].uri).host)
  assert.equal(#s - H.body_start(s) + 1, #m.body)
end

CHECK["rfc5118/ipv6-bug-abnf-3-colons.dat"] = function(m)
  assert.equal("[2001:db8:::192.0.2.1]", m.ruri.host)
  assert.equal("ipv6", m.ruri.host_type)
  assert.equal("[2001:db8:::192.0.2.1]", sip.uri(m.to.uri).host)
end

CHECK["rfc5118/ipv6-correct-abnf-2-colons.dat"] = function(m)
  assert.equal("[2001:db8::192.0.2.1]", m.ruri.host)
  assert.equal("ipv6", m.ruri.host_type)
end

-- valid-syntax-but-semantic-error: the facts the element acts on

CHECK["rfc4475/badvers.dat"] = function(m)
  assert.equal("SIP/7.0", m.version)
  assert.equal("7.0", m.via[1].version)
end

CHECK["rfc4475/mismatch01.dat"] = function(m)
  assert.equal("OPTIONS", m.method)
  assert.equal("INVITE", m.cseq_method)
end

CHECK["rfc4475/mismatch02.dat"] = function(m)
  assert.equal("NEWMETHOD", m.method)
  assert.equal("INVITE", m.cseq_method)
end

CHECK["rfc4475/badbranch.dat"] = function(m)
  assert.equal("z9hG4bK", m.via[1].branch)
end

CHECK["rfc4475/insuf.dat"] = function(m)
  assert.is_nil(m.from)
  assert.is_nil(m.to)
  assert.is_nil(m.call_id)
  assert.is_nil(m.max_forwards)
  assert.equal(193942, m.cseq)
  assert.equal(152, #m.body)
end

CHECK["rfc4475/unkscm.dat"] = function(m)
  assert.equal("other", m.ruri.kind)
  assert.equal("nobodyKnowsThisScheme", m.ruri.scheme)
  assert.equal("totallyopaquecontent", m.ruri.opaque)
end

CHECK["rfc4475/novelsc.dat"] = function(m)
  assert.equal("other", m.ruri.kind)
  assert.equal("soap.beep", m.ruri.scheme)
end

CHECK["rfc4475/unksm2.dat"] = function(m)
  assert.equal("isbn:2983792873", m.to.uri)
  assert.equal("other", sip.uri(m.to.uri).kind)
  assert.equal("http://www.example.com", m.from.uri)
  assert.equal("3234233", m.from.tag)
  assert.equal("name:John_Smith", m.contacts[1].uri)
end

CHECK["rfc4475/bext01.dat"] = function(m)
  assert.same({ "nothingSupportsThis", "nothingSupportsThisEither" }, m:headers("Require"))
  assert.same({ "noProxiesSupportThis", "norDoAnyProxiesSupportThis" }, m:headers("Proxy-Require"))
end

CHECK["rfc4475/invut.dat"] = function(m)
  assert.equal("application/unknownformat", m.content_type)
  assert.equal(40, #m.body)
end

CHECK["rfc4475/regaut01.dat"] = function(m)
  local a = assert(m:auth())
  assert.equal("NoOneKnowsThisScheme", a.scheme)
  assert.equal("here", a.params["opaque-data"])
end

CHECK["rfc4475/multi01.dat"] = function(m)
  for _, h in ipairs { "Call-ID", "CSeq", "To", "From", "Max-Forwards" } do
    assert.equal(2, m:count(h), h)
  end
  assert.equal(2, #m.contacts)
  assert.equal(5, m.cseq) -- the first instance
  assert.equal("multi01.98asdh@192.0.2.1", m.call_id)
end

CHECK["rfc4475/bcast.dat"] = function(m)
  assert.equal(200, m.status)
  assert.equal("255.255.255.255", m.via[2].host)
end

CHECK["rfc4475/sdp01.dat"] = function(m)
  assert.equal("text/nobodyKnowsThis", m:header("Accept"))
  assert.equal("application/sdp", m.content_type)
end

CHECK["rfc5118/port-ambiguous.dat"] = function(m)
  assert.equal("[2001:db8::10:5070]", m.ruri.host)
  assert.is_nil(m.ruri.port)
end

------------------------------------------------------------------------------

describe("vectors INDEX.tsv", function()
  it("lists every published message and every file exists", function()
    assert.equal(61, #INDEX)
    local counts = {}
    for _, e in ipairs(INDEX) do
      counts[e.expected] = (counts[e.expected] or 0) + 1
      assert.is_true(H.exists(H.vectors_dir .. "/" .. e.file), e.file)
    end
    assert.same({ ["valid"] = 28, ["invalid-parse"] = 17, ["valid-syntax-but-semantic-error"] = 16 }, counts)
  end)

  it("every invalid-parse vector has an expectation and vice versa", function()
    for _, e in ipairs(INDEX) do
      if e.expected == "invalid-parse" then
        assert.is_table(INVALID[e.file], e.file)
      end
    end
    for f in pairs(INVALID) do
      assert.equal("invalid-parse", BY[f] and BY[f].expected, f)
    end
  end)

  it("every field check names an indexed vector", function()
    for f in pairs(CHECK) do
      assert.is_table(BY[f], f)
    end
  end)
end)

for _, e in ipairs(INDEX) do
  local file = e.file

  if e.expected == "valid" then
    describe("valid " .. file, function()
      it("parses and validates", function()
        local m = parse(file)
        local ok, err = m:validate()
        assert.is_true(ok, err)
      end)

      it("re-serializes unchanged messages byte for byte", function()
        local m, s = parse(file)
        local _, _, _, _, _ = m.via, m.from, m.to, m.contacts, m.cseq -- reads change nothing
        local out = tostring(m)
        if file == "rfc4475/dblreq.dat" then
          assert.equal(s:sub(1, #out), out)
        else
          assert.equal(s, out)
        end
      end)

      it("survives a proxy's edits", function()
        local m = parse(file)
        local nvia = #m.via
        local tag, call_id, cseq = m.from.tag, m.call_id, m.cseq
        m:push_via("SIP/2.0/UDP proxy.example.com;branch=z9hG4bKproxy1")
        if m.is_request and (m.max_forwards or 70) > 0 then -- 0: 483, not forwarded
          m:set_header("Max-Forwards", tostring((m.max_forwards or 70) - 1))
        end
        local m2 = assert(sip.parse(tostring(m)))
        assert.is_true(m2:validate())
        assert.equal(nvia + 1, #m2.via)
        assert.equal("z9hG4bKproxy1", m2.via[1].branch)
        assert.equal(tag, m2.from.tag)
        assert.equal(call_id, m2.call_id)
        assert.equal(cseq, m2.cseq)
        assert.equal(m.body, m2.body)
        assert.equal("SIP/2.0/UDP proxy.example.com;branch=z9hG4bKproxy1", m2:pop_via())
      end)

      if not NOT_WHOLE[file] then
        it("frames the same in stream mode", function()
          local s = load(file)
          local m, n = sip.parse(s, { stream = true })
          assert.is_truthy(m, n)
          assert.equal(#s, n)
          local _, _, name = sip.parse(s:sub(1, -2), { stream = true })
          assert.equal("NEEDMORE", name)
        end)
      end

      if CHECK[file] then
        it("reads back the right fields", function()
          local m, s = parse(file)
          CHECK[file](m, s)
        end)
      end
    end)
  elseif e.expected == "invalid-parse" then
    describe("invalid " .. file, function()
      it("is refused with an error naming the problem", function()
        local x = assert(INVALID[file], "no expectation for " .. file)
        local m, err, name = refuse(H.vector(file))
        if not err and x.liberal then
          -- accepted: only allowed where the note says so, and then the bad
          -- form must not be carried forward
          x.liberal(m)
          return
        end
        assert.is_string(err, file .. " was accepted")
        assert.truthy(err:find("^PARSE: "), err)
        assert.is_truthy(x.names[name], file .. ": unexpected error " .. tostring(name) .. ": " .. err)
        local named = false
        for _, p in ipairs(x.what) do
          named = named or err:find(p) ~= nil
        end
        assert.is_true(named, file .. ": error does not name the place: " .. err)
      end)
    end)
  else
    describe("semantic " .. file, function()
      if file == "rfc4475/mcl01.dat" then
        -- two different Content-Lengths: framing cannot be determined, the
        -- framing layer itself refuses it (datagram and stream alike)
        it("is refused at framing", function()
          local s = H.vector(file)
          local m, err, name = sip.parse(s)
          assert.is_nil(m)
          assert.equal("CLEN", name)
          assert.truthy(err:find("Content%-Length"))
          local sm, _, sname = sip.parse(s, { stream = true })
          assert.is_nil(sm)
          assert.equal("CLEN", sname)
        end)
        return
      end
      it("parses, validates and re-serializes unchanged", function()
        local m, s = parse(file)
        local ok, err = m:validate()
        assert.is_true(ok, err)
        assert.equal(s, tostring(m))
      end)
      if CHECK[file] then
        it("reads back the right fields", function()
          local m, s = parse(file)
          CHECK[file](m, s)
        end)
      end
    end)
  end
end

describe("vectors in detail", function()
  it("scalar02: CSeq fails first; Max-Forwards, Expires, Contact expires out of range too", function()
    local m = assert(sip.parse(H.vector("rfc4475/scalar02.dat")))
    local ok, err, name = m:validate()
    assert.is_nil(ok)
    assert.equal("RANGE", name)
    assert.truthy(err:find("^PARSE: CSeq at byte %d+"))
    assert.is_nil(m.cseq)
    local v, _, n = m:get("max_forwards")
    assert.is_nil(v)
    assert.equal("RANGE", n)
    v, _, n = m:get("expires")
    assert.is_nil(v)
    assert.equal("RANGE", n)
    v, _, n = m:get("contacts")
    assert.is_nil(v)
    assert.equal("RANGE", n)
    -- the rest still reads
    assert.equal("239232jh3", m.from.tag)
    assert.equal("z9hG4bK342sdfoi3", m.via[1].branch)
  end)

  it("clerr: short body in a datagram, NEEDMORE on a stream", function()
    local s = H.vector("rfc4475/clerr.dat")
    local _, err, name = sip.parse(s)
    assert.equal("SHORTBODY", name)
    assert.truthy(err:find("^PARSE: "))
    local _, _, sname = sip.parse(s, { stream = true })
    assert.equal("NEEDMORE", sname)
  end)

  it("ncl: a negative Content-Length is refused in both modes", function()
    local s = H.vector("rfc4475/ncl.dat")
    local _, _, name = sip.parse(s)
    assert.equal("CLEN", name)
    local _, _, sname = sip.parse(s, { stream = true })
    assert.equal("CLEN", sname)
  end)

  it("baddn: with its header section terminated, the display names are refused", function()
    local s = H.vector("rfc4475/baddn.dat")
    assert.equal(331, #s)
    local _, _, sname = sip.parse(s, { stream = true })
    assert.equal("NEEDMORE", sname) -- a stream waits for the empty line
    local m, err, name = refuse(s .. "\r\n")
    if err then
      assert.equal("ADDR", name)
      assert.truthy(err:find("^PARSE: From at byte %d+"), err)
    else -- quote inference
      assert.equal("Bell, Alexander", m.from.display)
    end
  end)

  it("RFC 5118 vectors with a wrong Content-Length, uncorrected", function()
    for f in pairs(WRONG_CLEN) do
      local s = H.vector(f)
      local declared = tonumber(s:match("\nContent%-Length: (%d+)"))
      local actual = #s - H.body_start(s) + 1
      assert.are_not.equal(declared, actual)
      local m, err, name = sip.parse(s)
      if declared > actual then
        assert.is_nil(m, f)
        assert.equal("SHORTBODY", name, f)
        assert.truthy(err:find("^PARSE: "))
      else -- honouring the header cuts the body
        assert.is_truthy(m, f)
        assert.equal(declared, #m.body, f)
        assert.equal(s:sub(H.body_start(s), H.body_start(s) + declared - 1), m.body)
      end
    end
  end)

  it("the archive-exact (bare LF) RFC 5118 copies parse with their declared lengths", function()
    local dir = H.vectors_dir .. "/rfc5118/archive-exact/"
    local f = dir .. "ipv4-mapped-ipv6.dat"
    if not H.exists(f) then
      f = dir .. "ipv4-mapped-ipv6"
    end
    assert.is_true(H.exists(f), f)
    local s = H.read(f)
    local m = assert(sip.parse(s))
    assert.equal(236, #m.body)
    assert.equal("[::ffff:192.0.2.10]", m.via[1].host)
  end)
end)
