-- luasip.sdp: parse/serialize round-trips (csrc/sdp through csrc/lua/sdp.c)
-- and the RFC 3264 offer/answer helper.
local sdp = require "luasip.sdp"

local function fixture(name)
  local f = assert(io.open("spec/fixtures/sdp/" .. name, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

local function crlf(s)
  return (s:gsub("\n", "\r\n"))
end

-- the value of each a=<name> of a media table, in order
local function attr_list(m)
  local out = {}
  for _, a in ipairs(m.attributes or {}) do
    out[#out + 1] = a.value and (a.name .. ":" .. a.value) or a.name
  end
  return out
end

describe("sdp.parse / sdp.serialize", function()
  for _, name in ipairs { "sipp_uac.sdp", "baresip.sdp", "chrome_webrtc.sdp", "rfc8866_lf.sdp", "repeat_noeol.sdp" } do
    it("round-trips " .. name .. " byte for byte", function()
      local text = fixture(name)
      local s = assert(sdp.parse(text))
      assert.equal(text, sdp.serialize(s))
      -- and a deep copy (no shared state in the parsed tables)
      assert.equal(text, sdp.serialize(sdp.copy(s)))
    end)
  end

  it("writes back a number with leading zeros (b= value, m= port) as it was", function()
    -- regression: such a line counted as canonical, so the parsed integer
    -- (7) was written instead of its text (007)
    local text = "v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nb=CT:007\r\nt=0 0\r\nm=audio 09/2 RTP/AVP 0\r\n"
    local s = assert(sdp.parse(text))
    assert.equal(7, s.bandwidths[1].value)
    assert.equal(9, s.media[1].port)
    assert.equal(text, sdp.serialize(s))
    s.bandwidths[1].value = 8
    s.media[1].port = 10
    local out = sdp.serialize(s)
    assert.truthy(out:find("b=CT:8\r\n", 1, true))
    assert.truthy(out:find("m=audio 10/2 RTP/AVP 0\r\n", 1, true))
  end)

  it("gives the fields as tables", function()
    local s = assert(sdp.parse(fixture("baresip.sdp")))
    assert.equal("0", s.version)
    assert.same({ username = "-", sess_id = "1198522425", sess_version = "3384418549",
      nettype = "IN", addrtype = "IP4", address = "192.168.1.10" }, s.origin)
    assert.equal("-", s.name)
    assert.same({ nettype = "IN", addrtype = "IP4", address = "192.168.1.10" }, s.connection)
    assert.same({ { start = "0", stop = "0" } }, s.times)
    assert.equal(2, #s.media)
    local a = s.media[1]
    assert.equal("audio", a.media)
    assert.equal(10102, a.port)
    assert.equal("RTP/AVP", a.proto)
    assert.same({ "96", "97", "9", "0", "8", "101" }, a.fmts)
    assert.same({ { type = "AS", value = 64 } }, a.bandwidths)
    assert.equal("sendrecv", sdp.direction(s, a))
    assert.equal("10103", sdp.attr(a, "rtcp"))
    assert.is_true(sdp.attr(a, "rtcp-rsize"))
    assert.is_nil(s.lf)
    assert.is_nil(s.no_final_eol)
    local c = sdp.codecs(a)
    assert.same({ pt = "96", name = "opus", rate = 48000, channels = 2, rtpmap = "opus/48000/2",
      fmtp = "stereo=1;sprop-stereo=1" }, c[1])
    assert.same({ pt = "0", name = "PCMU", rate = 8000, rtpmap = "PCMU/8000" }, c[4])
  end)

  it("keeps the session parts of RFC 8866 (i u e p r z k, multicast c, nports)", function()
    local text = fixture("repeat_noeol.sdp")
    local s = assert(sdp.parse(text))
    assert.is_true(s.no_final_eol)
    assert.same({ "7d 1h 0 25h", "604800 3600 0 90000" }, s.times[1].repeats)
    assert.equal("2882844526 -1h 2898848070 0", s.zone)
    assert.equal("prompt", s.key)
    assert.equal("233.252.0.1/127/2", s.connection.address)
    assert.equal(2, s.media[1].nports)
    assert.equal("voice", s.media[1].info)
    assert.equal("clear:secret", s.media[1].key)
    assert.same({ "*" }, s.media[2].fmts)
    assert.equal("recvonly", sdp.direction(s, s.media[1]))
    local lf = assert(sdp.parse(fixture("rfc8866_lf.sdp")))
    assert.is_true(lf.lf)
    assert.same({ "Jane Doe <jane@jdoe.example.com>" }, lf.emails)
    assert.same({ "+1 617 555-6011" }, lf.phones)
    assert.equal("IP6", lf.media[3].connections[1].addrtype)
  end)

  it("writes a changed line in canonical form and leaves the rest as it was", function()
    local text = "v=0\r\no=-  0123 1 IN IP4 h \r\ns=-\r\nt=0  0\r\nm=audio 04000 RTP/AVP  0   8 \r\na=x: y \r\n"
    local s = assert(sdp.parse(text))
    assert.equal(4000, s.media[1].port)
    assert.same({ "0", "8" }, s.media[1].fmts)
    assert.equal(text, sdp.serialize(s))
    s.media[1].port = 5000
    s.origin.sess_version = "2"
    assert.equal("v=0\r\no=- 0123 2 IN IP4 h\r\ns=-\r\nt=0  0\r\nm=audio 5000 RTP/AVP 0 8\r\na=x: y \r\n",
      sdp.serialize(s))
  end)

  it("builds a description from plain tables", function()
    local s = {
      origin = { username = "-", sess_id = 1, sess_version = 1, nettype = "IN", addrtype = "IP4",
        address = "127.0.0.1" },
      name = "-",
      times = { { start = 0, stop = 0 } },
      media = { { media = "audio", port = 4000, proto = "RTP/AVP", fmts = { "0" },
        attributes = { { name = "rtpmap", value = "0 PCMU/8000" }, { name = "ptime", value = 20 } } } },
    }
    assert.equal(crlf("v=0\no=- 1 1 IN IP4 127.0.0.1\ns=-\nt=0 0\nm=audio 4000 RTP/AVP 0\n"
      .. "a=rtpmap:0 PCMU/8000\na=ptime:20\n"), sdp.serialize(s))
  end)

  it("refuses to write what would not parse back as the same lines", function()
    local s = assert(sdp.parse(fixture("sipp_uac.sdp")))
    s.media[1].attributes[1].value = "0 PCMU/8000\r\nm=video 1 RTP/AVP 31"
    local text, err, name = sdp.serialize(s)
    assert.is_nil(text)
    assert.equal("INVAL", name)
    assert.matches("line 7 %(a=%)", err)
    s = assert(sdp.parse(fixture("sipp_uac.sdp")))
    s.origin.address = "a b"
    assert.is_nil(sdp.serialize(s))
    s = assert(sdp.parse(fixture("sipp_uac.sdp")))
    s.media[1].port = -1
    text, err = sdp.serialize(s)
    assert.is_nil(text)
    assert.matches("media%[1%]: bad or missing port", err)
    s = assert(sdp.parse(fixture("sipp_uac.sdp")))
    s.origin = nil
    text, err = sdp.serialize(s)
    assert.is_nil(text)
    assert.matches("missing origin", err)
    assert.has_error(function()
      sdp.serialize("v=0")
    end)
  end)

  describe("malformed input", function()
    local cases = {
      { "", "line 1: empty description" },
      { "v=0\r\n", "no o= or s= line" },
      { "hello", "line 1: not <type>=<value>" },
      { "v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nm=audio port RTP/AVP 0\r\n", "line 4: m= line: port is not a number" },
      { "v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nm=audio 99999 RTP/AVP 0\r\n", "line 4: m= line: port out of range" },
      { "v=0\r\no=- 1 1 IN IP4\r\ns=-\r\n", "line 2: o= line: fewer than 6 fields" },
      { "v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nq=1\r\n", "line 4: unknown type letter" },
      { "v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nt=0 0\r\nc=IN IP4 h\r\n", "line 5: line out of order" },
      { "v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\n\r\n", "line 4: empty line" },
      { "v=0\r\no=- 1 1 IN IP4 h\ns=-\r\n", "line 2: mixed CRLF and LF" },
      { "v=0\r\no=- 1 1 IN IP4 h\r\ns=\0\r\n", "line 3: control character" },
      { "INVITE sip:a@b SIP/2.0\r\n", "line 1: not <type>=<value>" },
    }
    for _, c in ipairs(cases) do
      it(("%q"):format(c[1]:sub(1, 40)), function()
        local s, err, name = sdp.parse(c[1])
        assert.is_nil(s)
        assert.equal("SDP", name)
        assert.matches(c[2], err, 1, true)
        assert.matches("^SDP: ", err)
      end)
    end

    it("never raises on arbitrary bytes", function()
      local seed = fixture("chrome_webrtc.sdp")
      local rnd = 12345
      local function rand(n)
        rnd = (rnd * 1103515245 + 12345) % 2147483648
        return rnd % n
      end
      for _ = 1, 2000 do
        local t = {}
        local pos, len = rand(#seed) + 1, rand(80)
        t[1] = seed:sub(1, pos)
        for k = 1, rand(4) do
          t[#t + 1] = string.char(rand(256))
          t[#t + 1] = tostring(k)
        end
        t[#t + 1] = seed:sub(pos + len)
        local text = table.concat(t)
        local ok, s = pcall(sdp.parse, text)
        assert.is_true(ok)
        if s then
          assert.equal(text, sdp.serialize(s)) -- whatever parses round-trips
        end
      end
    end)
  end)
end)

describe("sdp.answer", function()
  local caps = assert(sdp.parse(crlf [[
v=0
o=luasip 100 1 IN IP4 127.0.0.2
s=luasip
c=IN IP4 127.0.0.2
t=0 0
m=audio 7000 RTP/AVP 8 0 96 101
a=rtpmap:96 OPUS/48000/2
a=fmtp:96 useinbandfec=1
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
a=rtcp-fb:96 nack
a=ptime:20
m=video 7002 RTP/AVP 100
a=rtpmap:100 VP8/90000
a=rtcp-fb:100 nack pli
a=rtcp-fb:* ccm fir
]]))

  local function offer_of(body)
    return assert(sdp.parse(crlf(body)))
  end

  -- the answer's rows: port, formats and attributes per stream
  local function rows(ans)
    local out = {}
    for i, m in ipairs(ans.media) do
      out[i] = { m.media, m.port, table.concat(m.fmts, " "), attr_list(m) }
    end
    return out
  end

  local cases = {
    {
      name = "a static codec subset, in the offer's order, with the offerer's numbers",
      offer = [[
v=0
o=- 1 1 IN IP4 127.0.0.1
s=-
c=IN IP4 127.0.0.1
t=0 0
m=audio 6000 RTP/AVP 18 0 8 4
]],
      want = { { "audio", 7000, "0 8", { "ptime:20", "sendrecv" } } },
    },
    {
      name = "dynamic payload types matched by encoding, rate and channels, renumbered to the offer's",
      offer = [[
v=0
o=- 1 1 IN IP4 127.0.0.1
s=-
c=IN IP4 127.0.0.1
t=0 0
m=audio 6000 RTP/AVP 111 110 126 0
a=rtpmap:111 opus/48000/2
a=fmtp:111 minptime=10
a=rtpmap:110 telephone-event/48000
a=rtpmap:126 telephone-event/8000
a=fmtp:126 0-16
]],
      want = { { "audio", 7000, "111 126 0", { "rtpmap:111 OPUS/48000/2", "fmtp:111 useinbandfec=1",
        "rtpmap:126 telephone-event/8000", "fmtp:126 0-15", "rtcp-fb:111 nack", "ptime:20", "sendrecv" } } },
    },
    {
      name = "the offer's fmtp when caps has none for the codec",
      offer = [[
v=0
o=- 1 1 IN IP4 127.0.0.1
s=-
t=0 0
m=video 6002 RTP/AVP 120
a=rtpmap:120 vp8/90000
a=fmtp:120 max-fr=30
]],
      want = { { "video", 7002, "120", { "rtpmap:120 VP8/90000", "fmtp:120 max-fr=30", "rtcp-fb:120 nack pli",
        "rtcp-fb:* ccm fir", "sendrecv" } } },
    },
    {
      name = "rejected streams: no common codec, only telephone-event, port 0, unknown media",
      offer = [[
v=0
o=- 1 1 IN IP4 127.0.0.1
s=-
c=IN IP4 127.0.0.1
t=0 0
m=audio 6000 RTP/AVP 18 3
m=audio 6002 RTP/AVP 101
a=rtpmap:101 telephone-event/8000
m=audio 0 RTP/AVP 0
m=application 6004 UDP/BFCP *
m=video 6006 RTP/SAVP 100
a=rtpmap:100 VP8/90000
m=audio 6008 RTP/AVP 8
]],
      want = {
        { "audio", 0, "18 3", {} },
        { "audio", 0, "101", {} },
        { "audio", 0, "0", {} },
        { "application", 0, "*", {} },
        { "video", 0, "100", {} }, -- RTP/SAVP is not caps' RTP/AVP
        { "audio", 7000, "8", { "ptime:20", "sendrecv" } },
      },
    },
    {
      name = "each caps stream answers one offered stream",
      offer = [[
v=0
o=- 1 1 IN IP4 127.0.0.1
s=-
c=IN IP4 127.0.0.1
t=0 0
m=audio 6000 RTP/AVP 0
m=audio 6002 RTP/AVP 0
]],
      want = { { "audio", 7000, "0", { "ptime:20", "sendrecv" } }, { "audio", 0, "0", {} } },
    },
  }
  for _, c in ipairs(cases) do
    it(c.name, function()
      local offer = offer_of(c.offer)
      local ans = assert(sdp.answer(offer, caps))
      assert.same(c.want, rows(ans))
      assert.equal(#offer.media, #ans.media) -- §6: one m= line per offered one
      -- the answer is valid SDP that parses back to itself
      local text = assert(sdp.serialize(ans))
      assert.equal(text, sdp.serialize(assert(sdp.parse(text))))
      assert.same(caps.origin, ans.origin)
      assert.same(caps.connection, ans.connection)
    end)
  end

  it("prefers caps' order when asked", function()
    local ans = sdp.answer(offer_of "v=0\no=- 1 1 IN IP4 h\ns=-\nt=0 0\nm=audio 1 RTP/AVP 0 8\n", caps,
      { prefer = "local" })
    assert.same({ "8", "0" }, ans.media[1].fmts)
  end)

  it("answers text and reports an offer that does not parse", function()
    local ans = assert(sdp.answer(fixture("sipp_uac.sdp"), caps))
    assert.same({ "0" }, ans.media[1].fmts)
    local s, err, name = sdp.answer("v=0\r\nm=audio\r\n", caps)
    assert.is_nil(s)
    assert.equal("SDP", name)
    assert.matches("^SDP: line 2", err)
  end)

  it("answers Chrome's WebRTC offer by its codecs (SAVPF needs a SAVPF stream)", function()
    local offer = assert(sdp.parse(fixture("chrome_webrtc.sdp")))
    local rtc = sdp.copy(caps)
    rtc.media[1].proto = "UDP/TLS/RTP/SAVPF"
    local ans = sdp.answer(offer, rtc)
    assert.same({ "111", "0", "8", "126" }, ans.media[1].fmts)
    assert.equal(0, ans.media[2].port) -- caps' video is RTP/AVP
  end)

  describe("directions (RFC 3264 §6.1)", function()
    local table_ = {
      -- offered,  wanted,     answer
      { "sendrecv", "sendrecv", "sendrecv" },
      { "sendonly", "sendrecv", "recvonly" },
      { "recvonly", "sendrecv", "sendonly" },
      { "inactive", "sendrecv", "inactive" },
      { "sendrecv", "recvonly", "recvonly" },
      { "sendrecv", "sendonly", "sendonly" },
      { "sendrecv", "inactive", "inactive" },
      { "sendonly", "sendonly", "inactive" },
      { "recvonly", "recvonly", "inactive" },
      { "sendonly", "recvonly", "recvonly" },
    }
    for _, row in ipairs(table_) do
      it(("offer %s, want %s -> %s"):format(row[1], row[2], row[3]), function()
        local offer = offer_of("v=0\no=- 1 1 IN IP4 h\ns=-\nt=0 0\nm=audio 1 RTP/AVP 0\na=" .. row[1] .. "\n")
        local ans = sdp.answer(offer, caps, { direction = row[2] })
        assert.equal(row[3], sdp.direction(ans, ans.media[1]))
        assert.equal(1, #sdp.attrs(ans.media[1], row[3])) -- exactly one, explicit
      end)
    end

    it("takes a session-level direction when the stream has none", function()
      local offer = offer_of "v=0\no=- 1 1 IN IP4 h\ns=-\nt=0 0\na=sendonly\nm=audio 1 RTP/AVP 0\n"
      local ans = sdp.answer(offer, caps)
      assert.equal("recvonly", sdp.direction(ans, ans.media[1]))
    end)
  end)

  describe("o= versions and hold", function()
    local offer = offer_of "v=0\no=- 1 1 IN IP4 h\ns=-\nc=IN IP4 h\nt=0 0\nm=audio 1 RTP/AVP 0 8\n"

    it("keeps the version for an unchanged answer and increments it on change (§8)", function()
      local first = sdp.answer(offer, caps)
      assert.equal("1", first.origin.sess_version)
      local same = sdp.answer(offer, caps, { previous = first })
      assert.equal("1", same.origin.sess_version)
      assert.equal(sdp.serialize(first), sdp.serialize(same))
      local held = offer_of "v=0\no=- 1 2 IN IP4 h\ns=-\nc=IN IP4 h\nt=0 0\nm=audio 1 RTP/AVP 0 8\na=sendonly\n"
      local second = sdp.answer(held, caps, { previous = first })
      assert.equal("2", second.origin.sess_version)
      assert.equal("recvonly", sdp.direction(second, second.media[1]))
      assert.equal(first.origin.sess_id, second.origin.sess_id)
    end)

    it("holds and resumes our own description", function()
      local mine = sdp.answer(offer, caps)
      local held = sdp.hold(mine)
      assert.equal("sendonly", sdp.direction(held, held.media[1]))
      assert.equal("2", held.origin.sess_version)
      assert.equal("sendrecv", sdp.direction(mine, mine.media[1])) -- a copy
      assert.equal("2", sdp.hold(held).origin.sess_version) -- already held: unchanged
      local back = sdp.resume(held)
      assert.equal("sendrecv", sdp.direction(back, back.media[1]))
      assert.equal("3", back.origin.sess_version)
      local r = sdp.copy(mine)
      sdp.set_direction(r.media[1], "recvonly")
      assert.equal("inactive", sdp.direction(sdp.hold(r), sdp.hold(r).media[1]))
      -- a rejected stream stays as it is
      local two = sdp.answer(offer_of "v=0\no=- 1 1 IN IP4 h\ns=-\nt=0 0\nm=audio 1 RTP/AVP 0\nm=audio 2 RTP/AVP 18\n",
        caps)
      assert.same({}, attr_list(sdp.hold(two).media[2]))
    end)

    it("increments versions of any length", function()
      assert.equal("1", sdp.increment("0"))
      assert.equal("10", sdp.increment("9"))
      assert.equal("18446744073709551616", sdp.increment("18446744073709551615"))
      assert.equal("4611731400430051337", sdp.increment("4611731400430051336"))
    end)
  end)


  it("answers as text without tables (answer_text), the same answer", function()
    local offer = "v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nt=0 0\r\nm=audio 1 RTP/AVP 0 8\r\nm=audio 2 RTP/AVP 18\r\n"
    local text, streams = sdp.answer_text(offer, sdp.serialize(caps))
    assert.equal(1, streams)
    assert.equal(sdp.serialize(sdp.answer(offer, caps)), text)
    local _, none = sdp.answer_text("v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nt=0 0\r\nm=audio 1 RTP/AVP 18\r\n", caps)
    assert.equal(0, none)
    local s, err, name = sdp.answer_text(offer, "v=0\r\n")
    assert.is_nil(s)
    assert.equal("SDP", name)
    assert.matches("^SDP:", err)
    assert.has_error(function()
      sdp.answer_text(offer, caps, { direction = "hold" })
    end)
  end)
  it("reports what an answer settled", function()
    local offer = offer_of "v=0\no=- 1 1 IN IP4 h\ns=-\nt=0 0\nm=audio 1 RTP/AVP 0\nm=audio 2 RTP/AVP 18\n"
    local ans = sdp.answer(offer, caps)
    local n = sdp.negotiated(ans)
    assert.equal(2, n.n)
    assert.equal("PCMU", n[1].codecs[1].name)
    assert.equal("sendrecv", n[1].direction)
    assert.is_nil(n[2])
  end)
end)
