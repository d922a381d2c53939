-- u:invite{ ack = false } and d:ack(sdp) (RFC 3264 §5, RFC 3725 flow I):
-- an INVITE without an offer, the offer in the 2xx, the answer in the
-- ACK. Two luasip UAs in one process on 127.0.0.1 (T1 = 10 ms).
local here = debug.getinfo(1, "S").source:gsub("^@", ""):match("^(.*)/[^/]*$") or "."
local N = dofile(here .. "/support/net.lua")
local U = dofile(here .. "/support/ua.lua")(N)
local ua = require "luasip.ua"

local OFFER = U.sdp("bob", 40000)
local ANSWER = U.sdp("alice", 50000)

-- bob answers every INVITE with OFFER (it had none); the ACKs it gets in bob.acks
local function pair()
  local alice, bob = U.ua(), ua.new(U.server())
  bob.acks = {}
  bob.hooks = { ACK = function(_, req)
    bob.acks[#bob.acks + 1] = { body = req.body, ctype = req:header("Content-Type") }
    return false -- and u:handle goes on with it
  end }
  bob.srv:on_request(function(req)
    if bob:handle(req) then
      return
    end
    bob.call = bob:answer(req, OFFER)
  end)
  return alice, bob, "sip:bob@" .. bob.srv:listeners()[1]:match("^udp:(.*)$")
end

describe("luasip.ua: the answer in the ACK (ack = false, d:ack)", function()
  after_each(N.cleanup)

  it("holds the ACK until d:ack(sdp), which carries the answer; the 2xx retransmissions get no other ACK", function()
    local alice, bob, uri = pair()
    local d, res = N.run_task(function() return alice:invite { to = uri, ack = false } end)
    assert.equal(200, res.status)
    assert.equal(OFFER, d.remote_sdp)
    N.pump_for(0.1) -- bob re-sends its 2xx (T1 10 ms): no empty ACK goes out
    assert.same({}, bob.acks)
    assert.is_nil(bob.call.acked)
    d:ack(ANSWER)
    assert.truthy(N.pump_until(function() return bob.call.acked end, 2))
    assert.same({ { body = ANSWER, ctype = "application/sdp" } }, bob.acks)
    assert.equal(ANSWER, d.local_sdp)
    assert.has_error(function() d:ack(ANSWER) end, "dialog:ack(): no 2xx waits for its ACK")
    assert.equal(200, N.run_task(function() return d:bye() end).status)
  end)

  it("a BYE before d:ack() sends the ACK first", function()
    local alice, bob, uri = pair()
    local d = N.run_task(function() return alice:invite { to = uri, ack = false } end)
    assert.equal(200, N.run_task(function() return d:bye() end).status)
    assert.equal(1, #bob.acks)
    assert.equal("", bob.acks[1].body)
    assert.equal(0, bob:count())
  end)
end)
