-- Transfer through the B2BUA (luasip.b2bua, opts.refer; RFC 3515 REFER,
-- RFC 3891 Replaces): luasip UAs and a B2BUA x in one process on
-- 127.0.0.1 (T1 = 10 ms, every wait bounded). alice calls bob through x;
-- then bob transfers alice to carol:
--   * refer = "handle": x answers the REFER 202, calls carol itself,
--     re-INVITEs alice with carol's SDP, hangs up bob's leg; bob sees the
--     NOTIFY sipfrag 100, 180, 200 (or carol's 486: the call stays up);
--   * refer = "pass": the REFER reaches alice (its Replaces rewritten to
--     name x's leg with carol), alice's INVITE with Replaces to x replaces
--     bob's consultation leg, the NOTIFYs go back to bob;
--   * attended transfer by alice: carol, REFERred to x with Replaces of
--     alice's leg, takes alice's place next to bob; 481 for no leg;
--   * the default: 403.
local here = debug.getinfo(1, "S").source:gsub("^@", ""):match("^(.*)/[^/]*$") or "."
local N = dofile(here .. "/support/net.lua")
local U = dofile(here .. "/support/ua.lua")(N)
local sip = require "luasip"
local ua = require "luasip.ua"
local b2bua = require "luasip.b2bua"

local SDP = { alice = U.sdp("alice", 40000), bob = U.sdp("bob", 42000), carol = U.sdp("carol", 44000) }
local server, addr, run = U.server, U.addr, U.run

-- A UA named `name`: INVITEs get 180, then u.status or 200 with its SDP;
-- its dialogs in u.calls; every request it receives, as text, in u.got.
local function new_ua(name)
  local u
  local function log(_, r)
    u.got[#u.got + 1] = tostring(r)
  end
  u = U.callee(name, { sdp = SDP[name], delay = 0.05, on_request = log })
  u.got, u.log = {}, log
  return u
end

-- The B2BUA: an INVITE to sip:USER@x goes to routes[USER] (one with
-- Replaces to its legs); the bridges' outcomes in x.outcomes.
local function b2b(routes, opts)
  local srv = server()
  local x = ua.new(srv)
  x.outcomes = {}
  srv:on_request(function(req)
    if x:handle(req) then
      return
    end
    if req.method ~= "INVITE" then
      return req:reply(405)
    end
    local _, _, out = b2bua.bridge(x, req, routes[req.ruri.user] or {}, opts)
    x.outcomes[#x.outcomes + 1] = out
  end)
  x.addr = addr(srv)
  return x
end

-- `from` calls sip:USER@x; the caller's dialog (logging its requests)
-- and the callee's
local function call(from, x, user, to)
  local n = #to.calls
  local d = assert(run(function()
    return from:invite { to = "sip:" .. user .. "@" .. x.addr, sdp = SDP[from.uri:match("^sip:(%a+)")] }
  end))
  assert.truthy(N.pump_until(function() return #to.calls > n and to.calls[n + 1].acked end, 2))
  return d, to.calls[n + 1]
end

-- the requests of `u.got` since `i` that match `pattern`
local function got(u, pattern, i)
  local out = {}
  for k = (i or 0) + 1, #u.got do
    if u.got[k]:find(pattern) then
      out[#out + 1] = u.got[k]
    end
  end
  return out
end

-- none of the strings in `list` appears in any request `u` received
local function leaks(u, list)
  for _, text in ipairs(u.got) do
    text = text:gsub("\r\n[FT][ro]o?m?:[^\r\n]*", "") -- From and To: identities, not topology
    for _, s in ipairs(list) do
      if s and text:find(s, 1, true) then
        return s
      end
    end
  end
end

describe("luasip.b2bua: transfer (T1 = 10 ms)", function()
  after_each(N.cleanup)

  it("refer = handle: x calls carol, alice is re-INVITEd to her, bob's leg ends, NOTIFY 100 180 200",
    function()
      local alice, bob, carol = new_ua("alice"), new_ua("bob"), new_ua("carol")
      local x = b2b({ bob = { bob.uri }, carol = { carol.uri } }, { refer = "handle" })
      local d, bd = call(alice, x, "bob", bob)
      local a_info, b_info = d:details(), bd:details()
      local mark = #alice.got
      local r = run(function() return bd:refer(carol.uri) end)
      assert.equal(202, r.response.status)
      assert.equal(200, r.status)
      assert.same({ "SIP/2.0 100 Trying", "SIP/2.0 180 Ringing", "SIP/2.0 200 OK" }, r.frags)
      -- carol got x's INVITE with alice's SDP; alice a re-INVITE with carol's
      assert.equal(1, #carol.calls)
      local cd = carol.calls[1]
      assert.equal(SDP.alice, cd.remote_sdp)
      local reinv = got(alice, "^INVITE ", mark)
      assert.equal(1, #reinv)
      assert.equal(SDP.carol, d.remote_sdp)
      assert.equal("confirmed", d:state())
      -- bob's leg is hung up by x
      assert.truthy(N.pump_until(function() return bd:state() == "terminated" end, 2))
      -- alice and carol talk: alice's INFO reaches carol, then her BYE ends carol's leg
      local mark_c = #carol.got
      assert.equal(200, run(function() return d:info("Signal=1\r\n", "application/dtmf-relay") end).status)
      assert.equal(1, #got(carol, "^INFO ", mark_c))
      assert.equal(200, run(function() return d:bye() end).status)
      assert.truthy(N.pump_until(function() return cd:state() == "terminated" end, 2))
      assert.truthy(N.pump_until(function() return #x.outcomes == 1 end, 2))
      local tr = x.outcomes[1].transfers
      assert.equal(1, #tr)
      assert.same({ "b", carol.uri, 200 }, { tr[1].by, tr[1].target, tr[1].status })
      assert.truthy(N.pump_until(function() return x:count() == 0 end, 2))
      -- no topology crossed: carol saw nothing of alice's or bob's dialogs
      -- or addresses, alice nothing of carol's or bob's
      assert.is_nil(leaks(carol, { a_info.call_id, a_info.local_tag, b_info.call_id, b_info.local_tag,
        alice.uri:match("@(.*)$"), bob.uri:match("@(.*)$") }))
      assert.is_nil(leaks(alice, { b_info.call_id, b_info.local_tag, tr[1].call_id,
        carol.uri:match("@(.*)$"), bob.uri:match("@(.*)$") }))
      assert.is_nil(leaks(bob, { a_info.call_id, a_info.local_tag, alice.uri:match("@(.*)$") }))
    end)

  it("refer = handle, the target busy: NOTIFY 486, alice and bob stay in their call", function()
    local alice, bob, carol = new_ua("alice"), new_ua("bob"), new_ua("carol")
    carol.status = 486
    local x = b2b({ bob = { bob.uri } }, { refer = "handle" })
    local d, bd = call(alice, x, "bob", bob)
    local r = run(function() return bd:refer(carol.uri) end)
    assert.equal(202, r.response.status)
    assert.equal(486, r.status)
    assert.equal("SIP/2.0 100 Trying", r.frags[1])
    assert.equal("SIP/2.0 486 Busy Here", r.frags[#r.frags])
    assert.equal("confirmed", d:state())
    assert.equal("confirmed", bd:state())
    assert.equal(0, #got(alice, "^INVITE "))
    -- still bridged: alice's BYE reaches bob
    assert.equal(200, run(function() return d:bye() end).status)
    assert.truthy(N.pump_until(function() return bd:state() == "terminated" end, 2))
    assert.truthy(N.pump_until(function() return #x.outcomes == 1 end, 2))
    local tr = x.outcomes[1].transfers
    assert.same({ "b", carol.uri, 486 }, { tr[1].by, tr[1].target, tr[1].status })
    assert.equal(486, tr[1].attempts[1].status)
  end)

  it("refer = handle with Replaces naming another call of x: the two calls merge, bob's legs end",
    function()
      local alice, bob, carol = new_ua("alice"), new_ua("bob"), new_ua("carol")
      local x = b2b({ bob = { bob.uri }, carol = { carol.uri } }, { refer = "handle" })
      local d1, b1 = call(alice, x, "bob", bob)   -- alice - x - bob
      local d2, c2 = call(bob, x, "carol", carol) -- bob - x - carol (consultation)
      local r = run(function()
        return b1:refer("sip:carol@" .. x.addr, { replaces = d2 })
      end)
      assert.equal(202, r.response.status)
      assert.equal(200, r.status)
      assert.same({ "SIP/2.0 100 Trying", "SIP/2.0 200 OK" }, r.frags)
      -- no new call: carol re-INVITEd with alice's SDP, alice with carol's
      assert.equal(1, #carol.calls)
      assert.equal(SDP.alice, c2.remote_sdp)
      assert.equal(SDP.carol, d1.remote_sdp)
      -- bob's two legs are hung up by x
      assert.truthy(N.pump_until(function() return b1:state() == "terminated" and d2:state() == "terminated" end, 2))
      assert.equal("confirmed", d1:state())
      assert.equal("confirmed", c2:state())
      -- the consultation bridge ended "transferred"; alice's BYE reaches carol
      assert.truthy(N.pump_until(function() return #x.outcomes == 1 end, 2))
      assert.equal("transferred", x.outcomes[1].ended_by)
      assert.equal(200, run(function() return d1:bye() end).status)
      assert.truthy(N.pump_until(function() return c2:state() == "terminated" end, 2))
      assert.truthy(N.pump_until(function() return #x.outcomes == 2 end, 2))
      local tr = x.outcomes[2].transfers
      assert.same({ "b", true, 200 }, { tr[1].by, tr[1].replaces, tr[1].status })
      assert.truthy(N.pump_until(function() return x:count() == 0 end, 2))
    end)

  it("a REFER without Refer-To, or with two: 400 (handle and pass); the call stays", function()
    for _, mode in ipairs({ "handle", "pass" }) do
      local alice, bob = new_ua("alice"), new_ua("bob")
      local x = b2b({ bob = { bob.uri } }, { refer = mode })
      local d, bd = call(alice, x, "bob", bob)
      assert.equal(400, run(function() return bd:request("REFER") end).status)
      local two = { { "Refer-To", "<sip:a@127.0.0.1>" }, { "Refer-To", "<sip:b@127.0.0.1>" } }
      assert.equal(400, run(function() return bd:request("REFER", { headers = two }) end).status)
      assert.equal(400, run(function()
        return bd:request("REFER", { headers = { { "Refer-To", "<nothing>" } } })
      end).status)
      assert.equal(0, #got(alice, "^REFER "))
      assert.equal("confirmed", d:state())
      assert.equal("confirmed", bd:state())
      N.cleanup()
    end
  end)

  it("the default (refer unset): 403, nothing is called", function()
    local alice, bob, carol = new_ua("alice"), new_ua("bob"), new_ua("carol")
    local x = b2b({ bob = { bob.uri } })
    local d, bd = call(alice, x, "bob", bob)
    local r, res = run(function() return bd:refer(carol.uri) end)
    assert.is_nil(r)
    assert.equal(403, res.status)
    assert.equal(0, #carol.got)
    assert.equal(0, #got(alice, "^REFER "))
    assert.equal("confirmed", d:state())
  end)

  it("refer = pass: the REFER reaches alice, its Replaces names x's leg with carol; alice replaces bob",
    function()
      local alice, bob, carol = new_ua("alice"), new_ua("bob"), new_ua("carol")
      local new_call
      alice:on_refer(function() return true end, { on_call = function(nd) new_call = nd end })
      local x = b2b({ bob = { bob.uri }, carol = { carol.uri } }, { refer = "pass" })
      -- x serves an event package too: its NOTIFY hook lets the legs' NOTIFYs through
      require("luasip.ua.event").on_subscribe(x, "presence")
      local d1, b1 = call(alice, x, "bob", bob)   -- alice - x - bob
      local d2, c2 = call(bob, x, "carol", carol) -- bob - x - carol (consultation)
      local l_call_id = d2:details().call_id
      -- bob's CSeq runs ahead of x's on alice's leg: the two REFERs' ids (their
      -- CSeqs) differ, and the NOTIFYs must be mapped back
      assert.equal(501, run(function() return b1:request("PUBLISH") end).status) -- x answers it
      local r = run(function()
        return d2 and b1:refer("sip:carol@" .. x.addr, { replaces = d2 })
      end)
      assert.equal(202, r.response.status)
      assert.equal(200, r.status)
      assert.equal("SIP/2.0 200 OK", r.frags[#r.frags])
      -- the REFER alice got: Refer-To kept, its Replaces rewritten to x's leg with carol
      local refers = got(alice, "^REFER ")
      assert.equal(1, #refers)
      assert.are_not.equal(r.response.cseq, assert(sip.parse(refers[1])).cseq)
      local ci = c2:details()
      local rt = refers[1]:match("\r\nRefer%-To: ([^\r\n]*)")
      assert.truthy(rt, refers[1])
      assert.truthy(rt:find("sip:carol@" .. x.addr, 1, true))
      assert.truthy(rt:find(ci.call_id, 1, true), rt)
      assert.is_nil(rt:find(l_call_id, 1, true))
      -- alice's INVITE with Replaces took bob's place next to carol
      assert.truthy(N.pump_until(function() return new_call end, 2))
      assert.equal("confirmed", new_call:state())
      assert.equal(SDP.carol, new_call.remote_sdp)
      assert.equal(SDP.alice, c2.remote_sdp) -- carol was re-INVITEd with alice's SDP
      assert.truthy(N.pump_until(function() return d2:state() == "terminated" end, 2))
      assert.equal("confirmed", c2:state())
      -- bob hangs up the first call; alice and carol stay
      assert.equal(200, run(function() return b1:bye() end).status)
      assert.truthy(N.pump_until(function() return d1:state() == "terminated" end, 2))
      assert.equal("confirmed", c2:state())
      assert.equal(200, run(function() return new_call:bye() end).status)
      assert.truthy(N.pump_until(function() return c2:state() == "terminated" end, 2))
      assert.truthy(N.pump_until(function() return x:count() == 0 end, 2))
    end)

  it("attended transfer: carol, REFERred by alice with Replaces of alice's leg at x, replaces alice",
    function()
      local alice, bob, carol = new_ua("alice"), new_ua("bob"), new_ua("carol")
      local new_call
      carol:on_refer(function() return true end, { on_call = function(nd) new_call = nd end })
      local x = b2b({ bob = { bob.uri } })
      local d1, b1 = call(alice, x, "bob", bob)       -- alice - x - bob
      local dc = assert(run(function()              -- alice - carol, direct (consultation)
        return alice:invite { to = carol.uri, sdp = SDP.alice }
      end))
      local mark = #bob.got
      local r = run(function()
        return dc:refer(d1:details().remote_target, { replaces = d1 })
      end)
      assert.equal(200, r.status)
      assert.truthy(N.pump_until(function() return new_call end, 2))
      -- carol is in alice's place: bob re-INVITEd with carol's SDP, carol has bob's
      assert.equal("confirmed", new_call:state())
      assert.equal(SDP.bob, new_call.remote_sdp)
      assert.equal(1, #got(bob, "^INVITE ", mark))
      assert.equal(SDP.carol, b1.remote_sdp)
      -- alice's leg at x got BYE; bob's call goes on, with carol
      assert.truthy(N.pump_until(function() return d1:state() == "terminated" end, 2))
      assert.equal("confirmed", b1:state())
      assert.equal(200, run(function() return b1:bye() end).status)
      assert.truthy(N.pump_until(function() return new_call:state() == "terminated" end, 2))
      assert.truthy(N.pump_until(function() return #x.outcomes == 2 end, 2))
      local tr = x.outcomes[#x.outcomes].transfers or x.outcomes[1].transfers
      assert.same({ "replaces", "a", 200 }, { tr[1].kind, tr[1].replaced, tr[1].status })
      -- an INVITE with Replaces naming no leg of x: 481; malformed: 400
      local function invite(rv)
        local nd, res = run(function()
          return alice:invite { to = "sip:ua@" .. x.addr, sdp = SDP.alice, headers = { { "Replaces", rv } } }
        end)
        assert.is_nil(nd)
        return res.status
      end
      assert.equal(481, invite("nosuch;to-tag=1;from-tag=2"))
      assert.equal(400, invite("only-a-call-id"))
      assert.truthy(N.pump_until(function() return x:count() == 0 end, 2))
    end)
end)

describe("examples/b2bua.lua --refer handle", function()
  local P = dofile(here .. "/support/proc.lua")
  local register = require "luasip.ua.register"
  after_each(function()
    N.cleanup()
    P.cleanup()
  end)

  it("a REFER to a registered AOR is carried out, to an unknown one 404; the CDR tells the transfer", function()
    local x = P.start({ "run", "examples/b2bua.lua", "--ctl", "off", "--listen", "udp:127.0.0.1:0",
      "--domain", "example.com", "--refer", "handle", "--cdr" })
    local via = "udp:127.0.0.1:" .. assert(x:port("udp"), x:log())
    local alice, bob, carol = new_ua("alice"), new_ua("bob"), new_ua("carol")
    for _, u in ipairs({ alice, bob, carol }) do
      local name = u.uri:match("^sip:(%a+)@")
      local reg = register.register { server = u.srv, registrar = "sip:example.com", dest = via,
        aor = "sip:" .. name .. "@example.com", expires = 60, contact = "<" .. u.uri .. ">" }
      assert.equal("registered", run(function() return reg:wait("registered", 3) end), x:log())
    end
    local d = assert(run(function()
      return alice:invite { to = "sip:bob@example.com", from = "<sip:alice@example.com>", sdp = SDP.alice, dest = via }
    end), x:log())
    assert.truthy(N.pump_until(function() return #bob.calls == 1 and bob.calls[1].acked end, 2))
    local bd = bob.calls[1]
    local r, res = run(function() return bd:refer("sip:nobody@example.com") end)
    assert.is_nil(r)
    assert.equal(404, res.status)
    r = run(function() return bd:refer("sip:carol@example.com") end)
    assert.equal(200, r.status, x:log())
    assert.same({ "SIP/2.0 100 Trying", "SIP/2.0 180 Ringing", "SIP/2.0 200 OK" }, r.frags)
    assert.equal(1, #carol.calls)
    assert.truthy(N.pump_until(function() return bd:state() == "terminated" end, 2))
    assert.equal(SDP.carol, d.remote_sdp)
    assert.equal(200, run(function() return d:bye() end).status)
    assert.truthy(N.pump_until(function() return carol.calls[1]:state() == "terminated" end, 2))
    assert.truthy(N.pump_until(function()
      return x:output():find("cdr: status 200 target sip:bob@[^ ]* setup [%d.]+s duration [%d.]+s ended by a: bye "
        .. "received transfers by b to sip:carol@example.com 200\n")
    end, 3), x:output())
  end)
end)
