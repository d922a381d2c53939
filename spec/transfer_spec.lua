-- Call transfer (RFC 3515 REFER, RFC 3891 Replaces; luasip.ua.refer):
-- three luasip UAs in one process on 127.0.0.1 (T1 = 10 ms, every wait
-- bounded). alice transfers bob to carol: blind (with the NOTIFY
-- message/sipfrag progress 100, 180, 200, or the failure), refused,
-- attended (Refer-To with Replaces: carol's call with alice is replaced
-- by bob's); an INVITE with Replaces of no dialog gets 481, early-only on
-- a confirmed one 486; a REFER without Refer-To 400.
local here = debug.getinfo(1, "S").source:gsub("^@", ""):match("^(.*)/[^/]*$") or "."
local N = dofile(here .. "/support/net.lua")
local U = dofile(here .. "/support/ua.lua")(N)
local P = dofile(here .. "/support/proc.lua")
local refer = require "luasip.ua.refer"

local SDP = U.sdp("x", 40000)
local run = U.run

-- A UA named `name`; INVITEs get 180 then u.status
-- (default 200 with SDP); its dialogs in u.calls, the INVITEs in u.invites.
local function new_ua(name)
  local u = U.callee(name, { sdp = SDP, delay = 0.05, on_invite = function(c, req)
    c.invites[#c.invites + 1] = { replaces = req:header("Replaces"), referred_by = req:header("Referred-By") }
  end })
  u.invites = {}
  return u
end

-- alice calls bob: alice's dialog and bob's
local function call(from, to)
  local d = assert(run(function()
    return from:invite { to = to.uri, sdp = SDP }
  end))
  assert.truthy(N.pump_until(function() return #to.calls > 0 and to.calls[#to.calls].acked end, 2))
  return d, to.calls[#to.calls]
end

describe("luasip.ua.refer: syntax", function()
  it("parses Refer-To, Replaces and sipfrag", function()
    local t = refer.parse_refer_to("<sip:carol@h?Replaces=abc%40h%3Bto-tag%3D1%3Bfrom-tag%3D2>")
    assert.equal("sip:carol@h", t.uri)
    assert.equal("abc@h;to-tag=1;from-tag=2", t.replaces)
    assert.same({ call_id = "abc@h", to_tag = "1", from_tag = "2" }, refer.parse_replaces(t.replaces))
    assert.is_true(refer.parse_replaces("a;from-tag=2;to-tag=1;early-only").early_only)
    assert.is_nil(refer.parse_replaces("a;to-tag=1"))
    assert.equal("sip:x@y", refer.parse_refer_to("sip:x@y").uri)
    assert.is_nil(refer.parse_refer_to("<>"))
    assert.is_nil(refer.parse_refer_to("nothing"))
    assert.same({ 180, "Ringing" }, { refer.parse_sipfrag("SIP/2.0 180 Ringing\r\n") })
    assert.is_nil(refer.parse_sipfrag("garbage"))
  end)
end)

describe("luasip.ua.refer: transfer among three luasip UAs (T1 = 10 ms)", function()
  after_each(function()
    N.cleanup()
    P.cleanup()
  end)

  it("blind transfer: bob calls carol; alice sees 100, 180, 200 by NOTIFY sipfrag", function()
    local alice, bob, carol = new_ua("alice"), new_ua("bob"), new_ua("carol")
    local new_call
    bob:on_refer(function(_, _, target)
      return target.uri == carol.uri
    end, { on_call = function(nd) new_call = nd end })
    local d = call(alice, bob)
    local r = run(function()
      return d:refer(carol.uri, { referred_by = "<" .. alice.uri .. ">" })
    end)
    assert.equal(202, r.response.status)
    assert.equal(200, r.status)
    assert.equal("OK", r.reason)
    assert.same({ "SIP/2.0 100 Trying", "SIP/2.0 180 Ringing", "SIP/2.0 200 OK" }, r.frags)
    assert.equal("terminated", r.subscription.state)
    assert.equal("noresource", r.subscription.reason)
    -- carol got bob's INVITE with alice's Referred-By
    assert.equal(1, #carol.invites)
    assert.equal("<" .. alice.uri .. ">", carol.invites[1].referred_by)
    assert.truthy(N.pump_until(function() return new_call end, 2))
    assert.equal("confirmed", new_call:state())
    assert.equal(carol.calls[1]:details().call_id, new_call:details().call_id)
    -- the transferor hangs up; bob and carol stay in their call
    assert.equal(200, run(function() return d:bye() end).status)
    assert.equal(0, alice:count())
    assert.equal(1, bob:count())
    assert.equal(1, carol:count())
  end)

  it("blind transfer that fails: the target's 486 in the last NOTIFY; the call stays", function()
    local alice, bob, carol = new_ua("alice"), new_ua("bob"), new_ua("carol")
    carol.status = 486
    bob:on_refer(function() return true end)
    local d = call(alice, bob)
    local r = run(function() return d:refer(carol.uri) end)
    assert.equal(486, r.status)
    assert.equal("SIP/2.0 486 Busy Here", r.frags[#r.frags])
    assert.equal("confirmed", d:state())
    assert.equal(1, bob:count())
  end)

  it("refer.transfer: a B2BUA-style handler carries out the REFER with its own call", function()
    local alice, bob, carol = new_ua("alice"), new_ua("bob"), new_ua("carol")
    local d, bd = call(alice, bob)
    local targets = {}
    -- bob takes the REFER in its dialog hook and calls through its own function
    bd.on_request = function(dd, req)
      if req.method ~= "REFER" then
        return
      end
      refer.transfer(dd, req, function(target, progress)
        targets[#targets + 1] = target.uri
        if #targets == 1 then
          return nil, 480 -- the first try: no leg could be made
        end
        return bob:invite { to = target.uri, sdp = SDP, on_provisional = progress }
      end)
    end
    local r = run(function() return d:refer(carol.uri) end)
    assert.equal(480, r.status)
    assert.same({ "SIP/2.0 100 Trying", "SIP/2.0 480 Temporarily Unavailable" }, r.frags)
    r = run(function() return d:refer(carol.uri) end)
    assert.equal(200, r.status)
    assert.same({ "SIP/2.0 100 Trying", "SIP/2.0 180 Ringing", "SIP/2.0 200 OK" }, r.frags)
    assert.same({ carol.uri, carol.uri }, targets)
    assert.equal(1, #carol.calls)
  end)

  it("a refused REFER: 603 (or the handler's status), no subscription left", function()
    local alice, bob, carol = new_ua("alice"), new_ua("bob"), new_ua("carol")
    bob:on_refer(function() return false end)
    local d = call(alice, bob)
    local r, res = run(function() return d:refer(carol.uri) end)
    assert.is_nil(r)
    assert.equal(603, res.status)
    assert.is_nil(next(d.subscriptions))
    bob:on_refer(function() return 403 end)
    r, res = run(function() return d:refer(carol.uri) end)
    assert.is_nil(r)
    assert.equal(403, res.status)
    assert.equal(0, #carol.invites)
    -- a REFER without Refer-To: 400
    res = run(function() return d:request("REFER") end)
    assert.equal(400, res.status)
    assert.equal("confirmed", d:state())
  end)

  it("attended transfer: Refer-To with Replaces; carol's call with alice becomes bob's", function()
    local alice, bob, carol = new_ua("alice"), new_ua("bob"), new_ua("carol")
    local replaced, header
    bob:on_refer(function() return true end)
    refer.on_replaces(carol, function(req) header = req:header("Replaces") end,
      { on_call = function(nd, old) replaced = { nd, old } end })
    local d1 = call(alice, bob)     -- alice - bob
    local d2, c2 = call(alice, carol) -- alice - carol (consultation)
    local r = run(function() return d1:refer(carol.uri, { replaces = d2 }) end)
    assert.equal(200, r.status)
    assert.equal("SIP/2.0 200 OK", r.frags[#r.frags])
    -- bob's INVITE carried carol's dialog id, as carol sees it
    local ci = c2:details()
    assert.equal(ci.call_id .. ";to-tag=" .. ci.local_tag .. ";from-tag=" .. ci.remote_tag,
      header)
    assert.truthy(N.pump_until(function() return replaced end, 2))
    assert.equal(c2, replaced[2])
    assert.equal("confirmed", replaced[1]:state())
    -- carol hung up the replaced call: alice's d2 is over
    assert.truthy(N.pump_until(function() return d2:state() == "terminated" end, 2))
    assert.equal(200, run(function() return d1:bye() end).status)
    assert.equal(0, alice:count())
    assert.equal(1, carol:count())
    assert.equal(1, bob:count())
  end)

  it("an INVITE with Replaces: 481 for no dialog, 486 early-only on a confirmed one, 400 malformed", function()
    local alice, carol = new_ua("alice"), new_ua("carol")
    refer.on_replaces(carol)
    local _, c2 = call(alice, carol)
    local ci = c2:details()
    local function invite(replaces)
      local d, res = run(function()
        return alice:invite { to = carol.uri, sdp = SDP, headers = { { "Replaces", replaces } } }
      end)
      assert.is_nil(d)
      return res.status
    end
    assert.equal(481, invite("nosuch;to-tag=1;from-tag=2"))
    assert.equal(481, invite(ci.call_id .. ";to-tag=" .. ci.remote_tag .. ";from-tag=" .. ci.local_tag))
    assert.equal(486, invite(ci.call_id .. ";to-tag=" .. ci.local_tag .. ";from-tag=" .. ci.remote_tag
      .. ";early-only"))
    assert.equal(400, invite("only-a-call-id"))
    assert.equal("confirmed", c2:state())
    assert.equal(1, carol:count())
  end)
  it("examples/transfer.lua runs both demos and prints the outcomes", function()
    local rc, out, err = P.run({ "run", "examples/transfer.lua", "--ctl", "off", "--listen", "udp:127.0.0.1:0",
      "--hold-time", "0.1" })
    assert.equal(0, rc, err)
    assert.matches("transfer: blind: alice%-bob 200; REFER 202; NOTIFY SIP/2.0 100 Trying, SIP/2.0 180 Ringing, "
      .. "SIP/2.0 200 OK; outcome 200; bob%-carol confirmed", out)
    assert.matches("transfer: attended: REFER 202; NOTIFY SIP/2.0 100 Trying, SIP/2.0 200 OK; outcome 200; "
      .. "alice%-carol terminated; bob%-carol confirmed", out)
    assert.not_matches("error", out)
  end)
end)
