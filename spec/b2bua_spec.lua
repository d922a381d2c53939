-- luasip.b2bua: four luasip servers in one process on 127.0.0.1 (loopback
-- only; every wait bounded): alice calls through the B2BUA x, which
-- bridges to bob and carol. What the SIPp suite (spec/sipp/b2bua_sipp.sh)
-- does not reach: parallel targets, UPDATE and INFO across, the SDP and
-- header hooks, on_request refusing, max_duration, the outcome, and that
-- a finished bridge is not kept alive by its B calls' transactions.
local here = debug.getinfo(1, "S").source:gsub("^@", ""):match("^(.*)/[^/]*$") or "."
local N = dofile(here .. "/support/net.lua")
local U = dofile(here .. "/support/ua.lua")(N)
local sip = require "luasip"
local ua = require "luasip.ua"
local b2bua = require "luasip.b2bua"

local OFFER = U.sdp("alice", 40000)
local ANSWER = U.sdp("bob", 50000)
local server, addr, run = U.server, U.addr, U.run

-- A callee: `status` (default 200 with ANSWER); its dialogs in .calls, the
-- requests its dialogs received in .got.
local function callee(status)
  local u = U.callee("callee", { contact = false, sdp = ANSWER,
    on_invite = function(c, req)
      c.invites = (c.invites or 0) + 1
      c.last_invite = tostring(req)
    end,
    on_call = function(c, d)
      d.on_request = function(_, r)
        c.got[#c.got + 1] = tostring(r)
      end
    end })
  u.status, u.got = status, {}
  return u
end

-- The B2BUA: bridges every INVITE to `targets` with `opts`; the outcomes
-- in x.outcomes.
local function b2b(targets, opts, sopts)
  local srv = server(sopts)
  local x = ua.new(srv)
  x.outcomes = {}
  srv:on_request(function(req)
    if x:handle(req) then
      return
    end
    local _, _, out = b2bua.bridge(x, req, targets, opts)
    x.outcomes[#x.outcomes + 1] = out
  end)
  x.uri = "sip:bob@" .. addr(srv)
  return x
end

-- The caller: a UA whose server passes every request to it
local function caller()
  return U.ua()
end

describe("luasip.b2bua", function()
  after_each(N.cleanup)

  it("parallel: the 2xx of one target wins, the other gets CANCEL; legs share nothing", function()
    local bob = callee(200)
    local carol = server()
    local carol_cancelled
    carol:on_request(function(req)
      if req.method == "INVITE" then
        req:reply(180)
        sip.sleep(1)
        carol_cancelled = req:is_cancelled()
        if not carol_cancelled then
          req:reply(486)
        end
      else
        req:reply(200)
      end
    end)
    local x = b2b({ bob.uri, "sip:carol@" .. addr(carol) }, { mode = "parallel" })
    local alice = caller()
    local d, res = run(function()
      return alice:invite { to = x.uri, sdp = OFFER }
    end)
    assert.is_truthy(d, "not answered")
    assert.equal(200, res.status)
    assert.equal(ANSWER, res.body)
    -- alice's peer is the B2BUA: its Contact, its own Call-ID and tags
    local a = d:details()
    assert.equal("sip:ua@" .. x.srv:listeners()[1]:match("^udp:(.*)$"), a.remote_target)
    local bd = bob.calls[1]
    assert.is_truthy(bd)
    local b = bd:details()
    assert.are_not.equal(a.call_id, b.call_id)
    assert.are_not.equal(a.local_tag, b.remote_tag)
    assert.are_not.equal(a.remote_tag, b.local_tag)
    assert.is_nil(bob.last_invite:find(a.call_id, 1, true))
    assert.is_truthy(N.pump_until(function() return carol_cancelled ~= nil end, 3))
    assert.is_true(carol_cancelled)
    run(function() return d:bye() end)
    assert.is_truthy(N.pump_until(function() return #x.outcomes == 1 end, 3))
    local out = x.outcomes[1]
    assert.equal(200, out.status)
    assert.equal(bob.uri, out.target)
    assert.equal("a: bye received", out.ended_by)
    assert.is_truthy(N.pump_until(function() return bd:state() == "terminated" end, 3))
    assert.equal(0, x:count())
  end)

  it("relays a reliable 183 with SDP reliably to a caller that does 100rel; the 2xx follows its PRACK", function()
    local bob = server()
    local bu = ua.new(bob)
    bob:on_request(function(req)
      if bu:handle(req) then
        return
      end
      -- waits for the B2BUA's PRACK (its B leg PRACKs by itself)
      assert(bu:progress(req, 183, ANSWER, { reliable = true }))
      bu:answer(req)
    end)
    local x = b2b({ "sip:bob@" .. addr(bob) })
    local alice = caller()
    local early = {}
    local d, res = run(function()
      return alice:invite { to = x.uri, sdp = OFFER, on_provisional = function(r)
        -- (a 100 is hop by hop: the B2BUA's transaction sends one when
        -- the answer takes over 200 ms, as on a loaded machine)
        if r.status > 100 then
          early[#early + 1] = { r.status, r:header("RSeq") ~= nil, r:header("Require"), r.body }
        end
      end }
    end)
    assert.is_truthy(d, "not answered")
    assert.equal(200, res.status)
    assert.same({ { 183, true, "100rel", ANSWER } }, early)
    run(function() return d:bye() end)
    assert.is_truthy(N.pump_until(function() return #x.outcomes == 1 end, 3))
  end)

  it("serial: a 486 passes to the next target, a 603 ends the search", function()
    local busy, bob = callee(486), callee(200)
    local x = b2b({ busy.uri, bob.uri })
    local alice = caller()
    local d = run(function() return alice:invite { to = x.uri, sdp = OFFER } end)
    assert.is_truthy(d)
    assert.equal(1, busy.invites)
    run(function() return d:bye() end)
    assert.is_truthy(N.pump_until(function() return #x.outcomes == 1 end, 3))
    assert.same({ 486, 200 }, { x.outcomes[1].attempts[1].status, x.outcomes[1].attempts[2].status })

    local decline, never = callee(603), callee(200)
    local y = b2b({ decline.uri, never.uri })
    local d2, res = run(function() return alice:invite { to = y.uri, sdp = OFFER } end)
    assert.is_nil(d2)
    assert.equal(603, res.status)
    assert.is_nil(never.invites)
  end)

  it("UPDATE and INFO go across, through the SDP and header hooks; on_request may refuse", function()
    local bob = callee(200)
    local seen = {}
    local x = b2b({ bob.uri }, {
      on_sdp = function(dir, body)
        seen[#seen + 1] = dir
        if dir == "a2b" then
          return (body:gsub("s=%-", "s=rewritten"))
        end
      end,
      on_request = function(dir, req, headers)
        if req.method == "MESSAGE" then
          return 403, "Not Across"
        end
        headers["X-Dir"] = dir
      end,
    })
    local alice = caller()
    local d = run(function() return alice:invite { to = x.uri, sdp = OFFER } end)
    assert.is_truthy(d)
    assert.is_truthy(bob.last_invite:find("s=rewritten", 1, true))
    assert.is_truthy(bob.last_invite:find("X-Dir: a2b", 1, true))
    local held = OFFER:gsub("sendrecv", "sendonly")
    local res = run(function() return d:update(held) end)
    assert.equal(200, res.status)
    assert.equal(ANSWER, res.body) -- bob's answer, back unchanged
    local info = run(function() return d:info("Signal=5\r\n", "application/dtmf-relay") end)
    assert.equal(200, info.status)
    local msg = run(function() return d:request("MESSAGE", { body = "hi", content_type = "text/plain" }) end)
    assert.equal(403, msg.status)
    assert.equal(2, #bob.got)
    assert.is_truthy(bob.got[1]:match("^UPDATE ") and bob.got[1]:find("a=sendonly", 1, true)
      and bob.got[1]:find("s=rewritten", 1, true))
    assert.is_truthy(bob.got[2]:match("^INFO ") and bob.got[2]:find("Signal=5", 1, true)
      and bob.got[2]:find("X-Dir: a2b", 1, true))
    assert.same({ "a2b", "b2a", "a2b", "b2a" }, seen)
    run(function() return d:bye() end)
  end)

  it("max_duration hangs up both legs", function()
    local bob = callee(200)
    local x = b2b({ bob.uri }, { max_duration = 0.2 })
    local alice = caller()
    local d = run(function() return alice:invite { to = x.uri, sdp = OFFER } end)
    assert.is_truthy(d)
    local _, why = run(function()
      local ev, w = d:wait(3)
      if ev then
        ev, w = d:wait(3)
      end
      return ev, w
    end, 4)
    assert.equal("bye received", why)
    assert.is_truthy(N.pump_until(function() return #x.outcomes == 1 end, 3))
    assert.equal("max_duration", x.outcomes[1].ended_by)
    assert.is_truthy(N.pump_until(function() return bob.calls[1]:state() == "terminated" end, 3))
  end)

  -- A B call's client transaction keeps its callbacks for 64*T1 after the
  -- final response (to acknowledge a late 2xx); they held the bridge, its
  -- dialogs' hooks and the 2xx: 16 KB of Lua heap per call for 32 s.
  it("a finished bridge is not kept by its B calls' transactions (default T1: 32 s)", function()
    local bob = callee(200)
    local opts = { mode = "serial" }
    local x = b2b({ bob.uri }, opts, { t1 = 500 })
    local alice = caller()
    local d = run(function() return alice:invite { to = x.uri, sdp = OFFER } end)
    assert.is_truthy(d)
    run(function() return d:bye() end)
    assert.is_truthy(N.pump_until(function() return #x.outcomes == 1 end, 3))
    -- the script's handler is done; only the transactions are left
    local weak = setmetatable({ opts }, { __mode = "v" })
    opts = nil -- luacheck: ignore 311
    x.srv:on_request(function(req) req:reply(500) end)
    collectgarbage()
    collectgarbage()
    assert.is_nil(weak[1], "the bridge is still referenced")
  end)
end)
