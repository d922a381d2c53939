-- The user agent (luasip.ua over csrc/dialog): two luasip UAs in one
-- process on 127.0.0.1 (loopback only; T1 = 10 ms; every wait bounded).
-- Calls with BYE from either side, re-INVITE (hold) and UPDATE and INFO
-- within the dialog, the ACK for the 2xx, a rejected call, 481 for a
-- request of no dialog, 500 for a CSeq out of order, and glare (491 and
-- the §14.1 retry).
local here = debug.getinfo(1, "S").source:gsub("^@", ""):match("^(.*)/[^/]*$") or "."
local N = dofile(here .. "/support/net.lua")
local U = dofile(here .. "/support/ua.lua")(N)
local sip = require "luasip"
local ua = require "luasip.ua"
local sdp = require "luasip.sdp"

local OFFER = table.concat({
  "v=0", "o=alice 1 1 IN IP4 127.0.0.1", "s=-", "c=IN IP4 127.0.0.1", "t=0 0",
  "m=audio 40000 RTP/AVP 0 8", "a=rtpmap:0 PCMU/8000", "a=rtpmap:8 PCMA/8000", "a=sendrecv", "",
}, "\r\n")
local CAPS = table.concat({
  "v=0", "o=bob 7 7 IN IP4 127.0.0.1", "s=-", "c=IN IP4 127.0.0.1", "t=0 0",
  "m=audio 50000 RTP/AVP 8", "a=rtpmap:8 PCMA/8000", "a=sendrecv", "",
}, "\r\n")

local server, addr, run = U.server, U.addr, U.run

-- Two UAs: alice calls, bob answers with an SDP answer from CAPS (or what
-- bob.policy(req) does); bob's dialogs go to bob.calls.
local function pair()
  local sb = server()
  local alice = U.ua()
  local bob = ua.new(sb)
  bob.calls = {}
  sb:on_request(function(req)
    if bob:handle(req) then
      return
    end
    if req.method ~= "INVITE" then
      return req:reply(405)
    end
    if bob.policy then
      return bob.policy(req)
    end
    req:reply(180)
    local answer = sdp.serialize(assert(sdp.answer(req.body, CAPS)))
    local d = assert(bob:answer(req, answer))
    bob.calls[#bob.calls + 1] = d
  end)
  return alice, bob, "sip:bob@" .. addr(sb)
end

describe("luasip.ua: calls between two luasip UAs (T1 = 10 ms)", function()
  after_each(N.cleanup)

  it("places a call, exchanges SDP, ACKs the 2xx, and ends with the caller's BYE", function()
    local alice, bob, uri = pair()
    local d, res = run(function()
      return alice:invite { to = uri, sdp = OFFER }
    end)
    assert.is_truthy(d, "no dialog")
    assert.equal(200, res.status)
    assert.equal("confirmed", d:state())
    local info = d:details()
    assert.equal("uac", info.role)
    assert.equal(res.to.tag, info.remote_tag)
    assert.equal("sip:ua@" .. addr(bob.srv), info.remote_target)
    -- the answer: PCMA only, our port
    local ans = assert(sdp.parse(d.remote_sdp))
    assert.equal(50000, ans.media[1].port)
    assert.equal(1, #bob.calls)
    local bd = bob.calls[1]
    -- the ACK reaches bob (the UAC core sent it; bob's 2xx stops)
    assert.is_truthy(N.pump_until(function() return bd.acked end, 2), "no ACK at the UAS")
    assert.equal("uas", bd:details().role)
    assert.equal(info.call_id, bd:details().call_id)
    -- bob waits; alice hangs up
    local got, why
    sip.spawn(function()
      got = bd:wait(3)
      local _, w = bd:wait(3)
      why = w
    end)
    local bye = run(function() return d:bye() end)
    assert.equal(200, bye.status)
    assert.is_truthy(N.pump_until(function() return why end, 2))
    assert.equal("BYE", got.method)
    assert.equal("bye received", why)
    assert.equal("terminated", d:state())
    assert.equal("terminated", bd:state())
    assert.equal(0, alice:count())
    assert.equal(0, bob:count())
  end)

  it("ends with the callee's BYE, which the caller's wait sees", function()
    local alice, bob, uri = pair()
    local d = assert(run(function() return alice:invite { to = uri, sdp = OFFER } end))
    local got, why
    sip.spawn(function()
      got = d:wait(3)
      local _, w = d:wait(3)
      why = w
    end)
    local bye = run(function() return bob.calls[1]:bye() end)
    assert.equal(200, bye.status)
    -- the BYE came along bob's dialog state: CSeq 1 (bob's first)
    assert.equal("BYE", got.method)
    assert.equal(1, got.cseq)
    assert.is_truthy(N.pump_until(function() return why end, 2))
    assert.equal("bye received", why)
    assert.equal(0, alice:count())
  end)

  it("re-INVITEs (hold), UPDATEs and INFOs within the dialog, each seen by the other side", function()
    local alice, bob, uri = pair()
    local d = assert(run(function() return alice:invite { to = uri, sdp = OFFER } end))
    local bd = bob.calls[1]
    local seen = {}
    sip.spawn(function()
      while true do
        local r = bd:wait(3)
        if not r then
          break
        end
        seen[#seen + 1] = r.method .. " " .. r.cseq
      end
    end)
    local held = sdp.serialize(sdp.hold(assert(sdp.parse(OFFER))))
    local res = run(function() return d:reinvite(held) end)
    assert.equal(200, res.status)
    assert.equal(CAPS, res.body) -- bob's default: its last SDP again
    res = run(function() return d:update(OFFER) end)
    assert.equal(200, res.status)
    res = run(function() return d:info("Signal=5\r\nDuration=160\r\n", "application/dtmf-relay") end)
    assert.equal(200, res.status)
    assert.is_truthy(N.pump_until(function() return #seen == 3 end, 2))
    assert.same({ "INVITE 2", "UPDATE 3", "INFO 4" }, seen)
    assert.equal(OFFER, bd.remote_sdp) -- the UPDATE's offer, the last one
    -- the re-INVITE's ACK (CSeq 2) reached bob
    assert.equal(4, d:details().local_cseq)
    assert.equal(4, bd:details().remote_cseq)
    run(function() return d:bye() end)
  end)

  it("returns the failure of a rejected call, with no dialog left", function()
    local alice, bob, uri = pair()
    bob.policy = function(req)
      req:reply(180)
      req:reply(486)
    end
    local d, res = run(function() return alice:invite { to = uri, sdp = OFFER } end)
    assert.is_nil(d)
    assert.equal(486, res.status)
    assert.equal(0, alice:count())
    assert.equal(1, alice.stats.failed)
  end)

  it("answers 481 to a request with a To tag of no dialog, and 500 to a CSeq out of order", function()
    local alice, bob, uri = pair()
    local stray = assert(sip.request {
      method = "INFO", uri = uri, from = "<sip:alice@127.0.0.1>", to = "<" .. uri .. ">;tag=nosuch",
    })
    local res = run(function() return alice.srv:send(stray) end)
    assert.equal(481, res.status)
    local d = assert(run(function() return alice:invite { to = uri, sdp = OFFER } end))
    res = run(function() return d:request("INFO") end) -- CSeq 2
    assert.equal(200, res.status)
    -- CSeq 1 again, from the dialog state: lower than bob's remote CSeq
    local old = assert(sip.parse(d.dlg:request("INFO", nil, nil, 1)))
    res = run(function() return alice.srv:send(old) end)
    assert.equal(500, res.status)
    assert.equal(1, #bob.calls)
    assert.equal("confirmed", bob.calls[1]:state())
    -- a dialog that ended: its requests get 481, which ends the other side too
    local bd = bob.calls[1]
    bd.dlg:terminate()
    res = run(function() return d:request("INFO") end)
    assert.equal(481, res.status)
    assert.equal("terminated", d:state())
  end)

  it("resolves glare: both re-INVITE at once, both get 491, both succeed after the back-off", function()
    local alice, bob, uri = pair()
    local d = assert(run(function() return alice:invite { to = uri, sdp = OFFER } end))
    local bd = bob.calls[1]
    local ra, rb
    sip.spawn(function() ra = d:reinvite(OFFER, { glare_delay = 0.05 }) end)
    sip.spawn(function() rb = bd:reinvite(CAPS, { glare_delay = 0.3 }) end)
    assert.is_truthy(N.pump_until(function() return ra and rb end, 3), "the re-INVITEs did not finish")
    assert.equal(200, ra.status)
    assert.equal(200, rb.status)
    -- two tries each: CSeq 2 and 3 (alice), 1 and 2 (bob)
    assert.equal(3, d:details().local_cseq)
    assert.equal(2, bd:details().local_cseq)
    run(function() return d:bye() end)
  end)

  it("cancels a ringing call from another coroutine: CANCEL, 487, no dialog", function()
    local alice, bob, uri = pair()
    local inv
    bob.policy = function(req)
      inv = req
      req:reply(180)
      sip.sleep(2) -- rings; the CANCEL ends it (the core answers 487)
    end
    local c = alice:call { to = uri, sdp = OFFER }
    assert.is_truthy(N.pump_until(function() return c.provisional end, 2), "no 180")
    assert.is_true(c:cancel())
    local d, res, why = run(function() return c:wait() end)
    assert.is_nil(d)
    assert.equal(487, res.status)
    assert.equal("cancelled", why)
    assert.is_true(inv:is_cancelled())
    assert.equal(0, alice:count())
  end)

  it("cancels a call that rings past its timeout", function()
    local alice, bob, uri = pair()
    bob.policy = function(req)
      req:reply(180)
      sip.sleep(2)
    end
    local d, res, why = run(function() return alice:invite { to = uri, sdp = OFFER, timeout = 0.1 } end)
    assert.is_nil(d)
    assert.equal(487, res.status)
    assert.equal("timeout", why)
  end)

  it("loses the CANCEL/200 race gracefully: ACK for the 2xx, then BYE", function()
    local alice, bob, uri = pair()
    bob.policy = function(req)
      req:reply(180)
      local d = assert(bob:answer(req, CAPS)) -- the 200 leaves before the CANCEL comes
      bob.calls[#bob.calls + 1] = d
    end
    local c
    c = alice:call { to = uri, sdp = OFFER, on_provisional = function() c:cancel() end }
    local d, res, why = run(function() return c:wait() end)
    assert.is_nil(d)
    assert.equal(200, res.status)
    assert.equal("cancelled", why)
    local bd = bob.calls[1]
    assert.is_truthy(N.pump_until(function() return bd:state() == "terminated" end, 2),
      "the callee's dialog did not end")
    assert.is_true(bd.acked)
    assert.equal("bye received", bd.ended)
    assert.equal(0, alice:count())
  end)

  it("copies the INVITE's Record-Route into its 2xx (§12.1.1): the caller's route set", function()
    local alice, bob, uri = pair()
    local rr = "<sip:" .. addr(bob.srv) .. ";lr;x=rr>"
    local d = assert(run(function()
      return alice:invite { to = uri, sdp = OFFER, headers = { ["Record-Route"] = rr } }
    end))
    assert.same({ rr }, d:details().routes)
    assert.same({ rr }, bob.calls[1]:details().routes)
    local res = run(function() return d:bye() end)
    assert.equal(200, res.status)
    assert.equal("terminated", bob.calls[1]:state())
  end)
end)

describe("luasip.ua: reliable provisional responses (RFC 3262, T1 = 10 ms)", function()
  after_each(N.cleanup)

  it("sends the SDP answer in a reliable 183, PRACKed once; the 2xx carries no SDP again", function()
    local alice, bob, uri = pair()
    local pracks, got183 = {}, {}
    bob.policy = function(req)
      local answer = sdp.serialize(assert(sdp.answer(req.body, CAPS)))
      local d, prack = bob:progress(req, 183, answer, { reliable = true })
      assert.is_truthy(d, prack)
      pracks[#pracks + 1] = prack
      bob.calls[#bob.calls + 1] = assert(bob:answer(req))
    end
    local d, res = run(function()
      return alice:invite { to = uri, sdp = OFFER, on_provisional = function(r)
        got183[#got183 + 1] = r
      end }
    end)
    assert.is_truthy(d, "no dialog")
    assert.equal(200, res.status)
    assert.equal("", res.body)
    -- the answer came in the 183 (§5): the dialog has it
    assert.equal(50000, assert(sdp.parse(d.remote_sdp)).media[1].port)
    assert.is_true(#got183 >= 1)
    local r1 = got183[1]
    assert.equal(183, r1.status)
    assert.matches("100rel", r1:header("Require"))
    local rseq = tonumber(r1:header("RSeq"))
    assert.is_truthy(rseq and rseq >= 1 and rseq < 2 ^ 31, "RSeq")
    -- one PRACK with the RAck of that 183
    assert.equal(1, #pracks)
    assert.equal("PRACK", pracks[1].method)
    assert.equal(rseq .. " " .. res.cseq .. " INVITE", pracks[1]:header("RAck"))
    assert.equal(r1.to.tag, pracks[1].to.tag)
    assert.equal("confirmed", bob.calls[1]:state())
    assert.equal(200, run(function() return d:bye() end).status)
  end)

  it("sends a second reliable 1xx only once the first was PRACKed (RSeq + 1); the layer refuses it before", function()
    local alice, bob, uri = pair()
    local pracks, rels, early_err = {}, {}, nil
    bob.policy = function(req)
      local answer = sdp.serialize(assert(sdp.answer(req.body, CAPS)))
      sip.spawn(function()
        local _, p = bob:progress(req, 180, nil, { reliable = true })
        pracks[#pracks + 1] = p
      end)
      -- the same early dialog, straight from C: busy until the PRACK
      local _, err, code = bob.early[req].dlg:reliable(req, 181)
      early_err = { err, code }
      local _, p = bob:progress(req, 183, answer, { reliable = true }) -- waits its turn
      pracks[#pracks + 1] = p
      bob.calls[#bob.calls + 1] = assert(bob:answer(req))
    end
    local d = run(function()
      return alice:invite { to = uri, sdp = OFFER, on_provisional = function(r)
        if r:header("RSeq") then
          rels[#rels + 1] = r
        end
      end }
    end)
    assert.is_truthy(d)
    assert.equal("EBUSY", early_err[2])
    assert.equal(2, #pracks)
    local r1, r2
    for _, r in ipairs(rels) do -- retransmissions aside
      if r.status == 180 then r1 = r1 or r end
      if r.status == 183 then r2 = r2 or r end
    end
    assert.is_truthy(r1 and r2)
    assert.equal(tonumber(r1:header("RSeq")) + 1, tonumber(r2:header("RSeq")))
    assert.equal(r2:header("RSeq") .. " " .. r2.cseq .. " INVITE", pracks[2]:header("RAck"))
    assert.equal(200, run(function() return d:bye() end).status)
  end)

  it("re-sends the reliable 1xx until 64*T1, then the INVITE fails with 500 (no PRACK)", function()
    local sa, sb = server(), server()
    local bob = ua.new(sb)
    local outcome
    sb:on_request(function(req)
      if bob:handle(req) then
        return
      end
      outcome = table.pack(bob:progress(req, 180, nil, { reliable = true, prack_timeout = 2 }))
    end)
    local rels = 0
    local res = run(function()
      local req = assert(sip.request { method = "INVITE", uri = "sip:bob@" .. addr(sb),
        to = "sip:bob@" .. addr(sb), from = "sip:alice@127.0.0.1",
        contact = "<sip:alice@" .. addr(sa) .. ">", headers = { { "Supported", "100rel" } } })
      return sa:send(req, nil, { on_provisional = function(r)
        if r:header("RSeq") then
          rels = rels + 1
        end
      end })
    end, 4)
    assert.equal(500, res.status)
    assert.equal("No PRACK", res.reason)
    assert.is_true(rels >= 4, "re-sent " .. rels .. " times") -- T1, 2T1, 4T1 ... 32T1
    assert.is_truthy(N.pump_until(function() return outcome end, 3))
    assert.is_nil(outcome[1])
    assert.equal("no PRACK", outcome[2])
    assert.equal(0, bob:count())
  end)

  it("sends the 1xx unreliably to an INVITE without 100rel", function()
    local alice, bob, uri = pair()
    local seen
    bob.policy = function(req)
      local d, how = bob:progress(req, 180, nil, { reliable = true })
      seen = how
      assert.is_truthy(d)
      bob.calls[#bob.calls + 1] = assert(bob:answer(req, sdp.serialize(assert(sdp.answer(req.body, CAPS)))))
    end
    local prov
    local d = assert(run(function()
      return alice:invite { to = uri, sdp = OFFER, ["100rel"] = false, on_provisional = function(r)
        prov = r
      end }
    end))
    assert.is_true(seen)
    assert.is_nil(prov:header("RSeq"))
    assert.is_nil(prov:header("Require"))
    assert.equal(200, run(function() return d:bye() end).status)
  end)

  it("answers a PRACK that matches no reliable 1xx with 481", function()
    local alice, bob, uri = pair()
    local d = assert(run(function() return alice:invite { to = uri, sdp = OFFER } end))
    local res = run(function() return d:request("PRACK", { headers = { RAck = "1 1 INVITE" } }) end)
    assert.equal(481, res.status)
    local _ = bob
  end)
end)

describe("luasip.ua: malformed SDP within a dialog", function()
  after_each(N.cleanup)

  it("answers a re-INVITE or UPDATE whose SDP does not parse with 488 and the reason; the call goes on", function()
    local alice, bob, uri = pair()
    local d = assert(run(function() return alice:invite { to = uri, sdp = OFFER } end))
    local bd = bob.calls[1]
    local before = bd.remote_sdp
    for _, case in ipairs {
      { "INVITE", "garbage" },
      { "UPDATE", "v=0\r\no=a 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio x RTP/AVP 0\r\n" },
      { "INVITE", "v=0\r\nthis is not SDP\r\n" },
    } do
      local res = run(function()
        return d:request(case[1], { body = case[2], content_type = "application/sdp" })
      end)
      assert.equal(488, res.status, case[1])
      assert.matches("SDP", res.reason)
    end
    -- nothing changed: the old offer stands, the dialog is up
    assert.equal(before, bd.remote_sdp)
    assert.equal("confirmed", bd:state())
    local res = run(function() return d:reinvite(OFFER) end)
    assert.equal(200, res.status)
    assert.equal(200, run(function() return d:bye() end).status)
  end)
end)

describe("luasip.ua: session timers (RFC 4028)", function()
  after_each(N.cleanup)

  it("the caller refreshes at half the interval; the 2xx carries Session-Expires and Require: timer", function()
    local alice, bob, uri = pair()
    alice.min_se, bob.min_se = 1, 1
    local refreshes = 0
    local d, res = run(function() return alice:invite { to = uri, sdp = OFFER, session_expires = 2 } end)
    assert.is_truthy(d, tostring(res))
    assert.equal("2;refresher=uac", res:header("Session-Expires"))
    assert.matches("timer", res:header("Require"))
    local bd = bob.calls[1]
    bd.on_request = function(_, req)
      if req.method == "INVITE" and req:header("Session-Expires") then
        refreshes = refreshes + 1
      end
    end
    N.pump_until(function() return refreshes >= 2 end, 3)
    assert.is_true(refreshes >= 2, "refreshes: " .. refreshes) -- at 1 s and 2 s
    assert.equal("confirmed", d:state())
    assert.equal("confirmed", bd:state()) -- its BYE (at 2 s - 0) kept off
    assert.equal(200, run(function() return d:bye() end).status)
  end)

  it("the callee hangs up (BYE) when the refresher sends no refresh before the interval ends", function()
    local alice, bob, uri = pair()
    alice.min_se, bob.min_se = 1, 1
    local d = assert(run(function() return alice:invite { to = uri, sdp = OFFER, session_expires = 3 } end))
    d.se_timer:stop() -- a caller that does not refresh
    d.se_timer = nil
    local ev, why = run(function() return d:wait(5) end, 6)
    assert.equal("BYE", ev and ev.method)
    assert.matches("session expired", ev:header("Reason"))
    local _, ended = run(function() return d:wait(1) end)
    assert.equal("bye received", ended or why)
    assert.equal(1, bob.stats.session_expired)
  end)

  it("answers 422 with Min-SE below its minimum; the caller retries with that interval", function()
    local alice, bob, uri = pair()
    alice.min_se, bob.min_se = 1, 5
    local d, res = run(function() return alice:invite { to = uri, sdp = OFFER, session_expires = 2 } end)
    assert.is_truthy(d, tostring(res))
    assert.equal(200, res.status)
    assert.equal("5;refresher=uac", res:header("Session-Expires"))
    assert.equal(200, run(function() return d:bye() end).status)
  end)
end)

describe("luasip.ua: a reliable 1xx re-sent before its PRACK arrived (RFC 3262 §4)", function()
  after_each(N.cleanup)

  it("is PRACKed once and reaches on_provisional once", function()
    local alice = ua.new(server())
    local peer = N.udp()
    local seen = {}
    alice:call { to = "sip:bob@127.0.0.1:" .. peer.port, sdp = OFFER, timeout = 2,
      on_provisional = function(r) seen[#seen + 1] = r.status .. " " .. tostring(r:header("RSeq")) end }
    local inv = assert(peer:recv(2), "no INVITE")
    local function hdr(name)
      return assert(inv:match("\r\n(" .. name .. ":[^\r\n]*)"), name)
    end
    local progress = table.concat({ "SIP/2.0 183 Session Progress", hdr("Via"), hdr("From"),
      hdr("To") .. ";tag=peer1", hdr("Call%-ID"), hdr("CSeq"), "Contact: <sip:bob@127.0.0.1:" .. peer.port .. ">",
      "Require: 100rel", "RSeq: 7", "Content-Length: 0", "", "" }, "\r\n")
    local port = tonumber(inv:match("Via: SIP/2.0/UDP [%d.]+:(%d+)"))
    -- the UAS's first 183 and its retransmission (T1 later, the PRACK
    -- still on its way)
    peer:send(progress, "127.0.0.1", port)
    peer:send(progress, "127.0.0.1", port)
    N.pump_for(0.3)
    -- the CSeqs of the PRACKs (the unanswered PRACK's own retransmissions
    -- share one)
    local pracks, seen_cseq = {}, {}
    peer:poll()
    for _, d in ipairs(peer.queue) do
      if d.data:match("^PRACK ") then
        assert.matches("\r\nRAck: 7 %d+ INVITE\r\n", d.data)
        local cseq = assert(d.data:match("\r\nCSeq: (%d+) PRACK\r\n"))
        if not seen_cseq[cseq] then
          seen_cseq[cseq] = true
          pracks[#pracks + 1] = cseq
        end
      end
    end
    assert.equal(1, #pracks)
    assert.same({ "183 7" }, seen)
  end)
end)

describe("luasip.ua: a CANCEL that gets no final response (§9.1)", function()
  after_each(N.cleanup)

  it("ends the INVITE with 408 64*T1 after the CANCEL when the callee never answers it", function()
    local sa = server()
    local alice = ua.new(sa)
    local peer = N.udp()
    local call = alice:call { to = "sip:bob@127.0.0.1:" .. peer.port, timeout = 0.05 }
    local inv = assert(peer:recv(2), "no INVITE")
    -- 180 with a To tag, then silence: the CANCEL is never answered
    local function hdr(name)
      return assert(inv:match("\r\n(" .. name .. ":[^\r\n]*)"), name)
    end
    local ringing = table.concat({ "SIP/2.0 180 Ringing", hdr("Via"), hdr("From"), hdr("To") .. ";tag=peer1",
      hdr("Call%-ID"), hdr("CSeq"), "Content-Length: 0", "", "" }, "\r\n")
    peer:send(ringing, "127.0.0.1", tonumber(inv:match("Via: SIP/2.0/UDP [%d.]+:(%d+)")))
    local got
    sip.spawn(function() got = table.pack(call:wait()) end)
    assert.is_truthy(N.pump_until(function() return got end, 3), "the call never ended")
    assert.is_nil(got[1])
    assert.equal(408, got[2].status)
    assert.equal("timeout", got[3])
    local cancels = 0
    peer:poll()
    for _, d in ipairs(peer.queue) do
      if d.data:match("^CANCEL ") then
        cancels = cancels + 1
      end
    end
    assert.is_true(cancels >= 1, "no CANCEL")
  end)
end)

describe("luasip.ua: a 2xx after the call is up (§13.2.2.4)", function()
  after_each(N.cleanup)

  it("ACKs a retransmitted 2xx again and a fork's 2xx with ACK then BYE; the hook keeps no parsed INVITE", function()
    local sa = server()
    local alice = U.ua(sa)
    local peer = N.udp()
    -- the on_2xx hook the transaction keeps (64*T1): caught on its way in
    local methods = getmetatable(sa).__index
    local send, hook = methods.send, nil
    methods.send = function(srv, req, dest, opts)
      hook = opts and opts.on_2xx or hook
      return send(srv, req, dest, opts)
    end
    local call = alice:call { to = "sip:bob@127.0.0.1:" .. peer.port, sdp = OFFER }
    methods.send = send
    local inv, ip, port = peer:recv(2)
    assert.is_truthy(inv, "no INVITE")
    local function hdr(name)
      return assert(inv:match("\r\n(" .. name .. ":[^\r\n]*)"), name)
    end
    local function ok(tag)
      return table.concat({ "SIP/2.0 200 OK", hdr("Via"), hdr("From"), hdr("To") .. ";tag=" .. tag,
        hdr("Call%-ID"), hdr("CSeq"), "Contact: <sip:bob@127.0.0.1:" .. peer.port .. ">",
        "Content-Type: application/sdp", "Content-Length: " .. #CAPS, "", CAPS }, "\r\n")
    end
    -- the next request of method m to the peer (skipping others), or nil
    local function next_request(m)
      while true do
        local got = peer:recv(1)
        if not got then
          return nil
        end
        if got:match("^" .. m .. " ") then
          return got
        end
      end
    end
    peer:send(ok("peer1"), ip, port)
    local d = run(function()
      return call:wait()
    end)
    assert.is_truthy(d, "no dialog")
    assert.is_truthy(next_request("ACK"), "no ACK for the 2xx")
    collectgarbage()
    local i, kept = 1, {}
    while debug.getupvalue(hook, i) do
      local name, v = debug.getupvalue(hook, i)
      local mt = type(v) == "userdata" and getmetatable(v)
      if mt and mt.__name and mt.__name:find("Message", 1, true) then
        kept[#kept + 1] = name
      end
      i = i + 1
    end
    assert.are.same({}, kept)
    peer:send(ok("peer1"), ip, port) -- the 2xx again: the same ACK again
    local ack = next_request("ACK")
    assert.is_truthy(ack, "no ACK for the retransmitted 2xx")
    assert.is_truthy(ack:find("tag=peer1", 1, true))
    peer:send(ok("peer2"), ip, port) -- another fork's 2xx: ACK, then BYE
    local ack2 = next_request("ACK")
    assert.is_truthy(ack2 and ack2:find("tag=peer2", 1, true), "no ACK for the fork's 2xx")
    local bye = next_request("BYE")
    assert.is_truthy(bye and bye:find("tag=peer2", 1, true), "no BYE for the fork's dialog")
    assert.equal("confirmed", d:state())
  end)
end)

describe("luasip.ua: the non-dialog half", function()
  it("is reachable from luasip.ua (register, message)", function()
    assert.equal(require("luasip.ua.register").register, ua.register)
    assert.equal(require "luasip.ua.message", ua.message)
    assert.is_nil(ua.no_such_thing)
  end)
end)
