-- luasip.URI: fields, IPv6, escapes, RFC 3261 §19.1.4 comparison.
local sip = require "luasip"

local function uri(s)
  local u, err, name = sip.uri(s)
  assert(u, tostring(err) .. " (" .. tostring(name) .. ")")
  return u
end

describe("sip.uri fields", function()
  it("reads a SIP URI with an IPv6 host, port and params", function()
    local u = uri("sip:alice@[2001:db8::1]:5070;transport=tcp")
    assert.equal("luasip.URI", getmetatable(u).__name)
    assert.equal("sip", u.scheme)
    assert.equal("sip", u.kind)
    assert.equal("alice", u.user)
    assert.is_nil(u.password)
    assert.equal("[2001:db8::1]", u.host)
    assert.equal("ipv6", u.host_type)
    assert.equal(5070, u.port)
    assert.equal("tcp", u.params.transport)
    assert.equal("tcp", u.transport)
    assert.same({}, u.headers)
    assert.equal("sip:alice@[2001:db8::1]:5070;transport=tcp", tostring(u))
    assert.equal(tostring(u), u.raw)
  end)

  it("reads user, password, host types and well-known params", function()
    local u = uri("SIPS:bob:s3cret@Biloxi.Example.COM;maddr=239.255.255.1;ttl=15;lr;user=phone;method=INVITE")
    assert.equal("SIPS", u.scheme)
    assert.equal("sips", u.kind)
    assert.equal("bob", u.user)
    assert.equal("s3cret", u.password)
    assert.equal("Biloxi.Example.COM", u.host)
    assert.equal("name", u.host_type)
    assert.is_nil(u.port)
    assert.equal("239.255.255.1", u.maddr)
    assert.equal("15", u.ttl)
    assert.equal("phone", u.user_param)
    assert.equal("INVITE", u.method)
    assert.is_true(u.lr)
    assert.is_true(u.params.lr)
    assert.equal("phone", u.params.user)
    assert.equal(";maddr=239.255.255.1;ttl=15;lr;user=phone;method=INVITE", u.params_raw)
    local v = uri("sip:192.0.2.4")
    assert.equal("ipv4", v.host_type)
    assert.is_nil(v.user)
    assert.is_false(v.lr)
  end)

  it("keys params by lower-cased name", function()
    local u = uri("sip:a@example.com;Transport=TCP;NewParam=X")
    assert.equal("TCP", u.params.transport)
    assert.equal("X", u.params.newparam)
    assert.equal(u.params, u.params) -- cached
  end)

  it("decodes escapes exactly once; user_raw keeps them", function()
    local u = uri("sip:%61lice@atlanta.com")
    assert.equal("alice", u.user)
    assert.equal("%61lice", u.user_raw)
    local e = uri("sip:user@example.com;n%61me=v%61lue%25%34%31")
    assert.equal("value%41", e.params.name)
    local z = uri("sip:%00%00@example.com")
    assert.equal("\0\0", z.user)
    assert.equal(2, #z.user)
    local s = uri("sip:sips%3Auser%40example.com@example.net")
    assert.equal("sips:user@example.com", s.user)
    assert.equal("example.net", s.host)
  end)

  it("keeps ';' before '@' in the user part", function()
    local u = uri("sip:user;par=u%40example.net@example.com")
    assert.equal("user;par=u@example.net", u.user)
    assert.equal("example.com", u.host)
    assert.same({}, u.params)
  end)

  it("reads headers", function()
    local u = uri("sip:alice@atlanta.com?subject=project%20x&priority=urgent")
    assert.equal("project x", u.headers.subject)
    assert.equal("urgent", u.headers.priority)
    assert.equal("subject=project%20x&priority=urgent", u.headers_raw)
    local r = uri("sip:user@example.com?Route=%3Csip:example.com%3E")
    assert.equal("<sip:example.com>", r.headers.route)
  end)

  it("reads tel and other schemes", function()
    local t = uri("tel:+1-201-555-0123")
    assert.equal("tel", t.kind)
    assert.equal("tel", t.scheme)
    assert.equal("+1-201-555-0123", t.user)
    local o = uri("nobodyKnowsThisScheme:totallyopaquecontent")
    assert.equal("other", o.kind)
    assert.equal("nobodyKnowsThisScheme", o.scheme)
    assert.equal("totallyopaquecontent", o.opaque)
    local b = uri("soap.beep://192.0.2.103:3002")
    assert.equal("other", b.kind)
    assert.equal("soap.beep", b.scheme)
  end)

  it("IPv6 rules of RFC 5118", function()
    local amb = uri("sip:[2001:db8::10:5070]")
    assert.equal("[2001:db8::10:5070]", amb.host)
    assert.is_nil(amb.port)
    local unamb = uri("sip:[2001:db8::10]:5070")
    assert.equal("[2001:db8::10]", unamb.host)
    assert.equal(5070, unamb.port)
    local three = uri("sip:[2001:db8:::192.0.2.1]")
    assert.equal("ipv6", three.host_type)
    local mapped = uri("sip:[::ffff:192.0.2.10]:19823")
    assert.equal(19823, mapped.port)
    local bad, err, name = sip.uri("sip:2001:db8::10")
    assert.is_nil(bad)
    assert.truthy(err:find("^PARSE: "))
    assert.is_string(name)
  end)

  it("refuses malformed URIs with an error", function()
    for _, s in ipairs { "", "sip:", "sip:user@", "<sip:a@b>", "sip:a@b c", "sip:[2001:db8::1", "nocolon" } do
      local u, err, name = sip.uri(s)
      assert.is_nil(u, s)
      assert.truthy(err:find("^PARSE: "), s)
      assert.is_string(name, s)
    end
    local u, _, name = sip.uri("sip:a@example.com:70000")
    assert.is_nil(u)
    assert.truthy(name == "RANGE" or name == "URI")
    assert.has_error(function() sip.uri(nil) end)
    assert.has_error(function() sip.uri(5060) end)
  end)

  it("close() is safe twice; a closed URI raises", function()
    local u = uri("sip:a@example.com")
    u:close()
    u:close()
    assert.has_error(function() return u.host end)
    do
      local c <close> = uri("sip:b@example.com")
      assert.equal("b", c.user)
    end
  end)
end)

describe("RFC 3261 19.1.4 comparison", function()
  local equal = {
    { "sip:%61lice@atlanta.com;transport=TCP", "sip:alice@AtLanTa.CoM;Transport=tcp" },
    { "sip:carol@chicago.com", "sip:carol@chicago.com;newparam=5" },
    { "sip:carol@chicago.com", "sip:carol@chicago.com;security=on" },
    { "sip:carol@chicago.com;newparam=5", "sip:carol@chicago.com;security=on" },
    { "sip:biloxi.com;transport=tcp;method=REGISTER?to=sip:bob%40biloxi.com",
      "sip:biloxi.com;method=REGISTER;transport=tcp?to=sip:bob%40biloxi.com" },
    { "sip:alice@atlanta.com?subject=project%20x&priority=urgent",
      "sip:alice@atlanta.com?priority=urgent&subject=project%20x" },
  }
  local not_equal = {
    { "SIP:ALICE@AtLanTa.CoM;Transport=udp", "sip:alice@AtLanTa.CoM;Transport=UDP" },
    { "sip:bob@biloxi.com", "sip:bob@biloxi.com:5060" },
    { "sip:bob@biloxi.com", "sip:bob@biloxi.com;transport=udp" },
    { "sip:bob@biloxi.com", "sip:bob@biloxi.com:6000;transport=tcp" },
    { "sip:carol@chicago.com", "sip:carol@chicago.com?Subject=next%20meeting" },
    { "sip:bob@phone21.boxesbybob.com", "sip:bob@192.0.2.4" },
    -- not transitive: both equal plain carol, not each other
    { "sip:carol@chicago.com;security=on", "sip:carol@chicago.com;security=off" },
    { "sip:alice@atlanta.com", "sips:alice@atlanta.com" },
    { "sip:alice:pw@atlanta.com", "sip:alice:PW@atlanta.com" },
  }

  for _, p in ipairs(equal) do
    it("equal: " .. p[1] .. " == " .. p[2], function()
      local a, b = uri(p[1]), uri(p[2])
      assert.is_true(a == b)
      assert.is_true(b == a)
      assert.is_true(a:equal(b))
      assert.is_true(a:equal(p[2]))
    end)
  end

  for _, p in ipairs(not_equal) do
    it("not equal: " .. p[1] .. " ~= " .. p[2], function()
      local a, b = uri(p[1]), uri(p[2])
      assert.is_false(a == b)
      assert.is_false(b == a)
      assert.is_true(a ~= b)
      assert.is_false(a:equal(p[2]))
    end)
  end

  it("a URI is not equal to a string or a malformed URI", function()
    local a = uri("sip:a@example.com")
    assert.is_false(a == "sip:a@example.com")
    assert.is_false(a:equal("not a uri"))
  end)
end)
