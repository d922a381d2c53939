-- The transaction layer seen from Lua (RFC 3261 §17, RFC 6026), with time
-- compressed (T1 = 10 ms, T2 = 40 ms, T4 = 50 ms, 100 Trying after 30 ms)
-- against raw luasocket peers on 127.0.0.1: server transactions (100
-- Trying, retransmissions absorbed, Timer G/H, ACK, CANCEL, the RFC 2543
-- fallback) and client transactions through srv:send (Timer A/E/B/F, the
-- ACK for a non-2xx, 2xx handling, transport errors, §18.1.1).
local here = debug.getinfo(1, "S").source:gsub("^@", ""):match("^(.*)/[^/]*$") or "."
local N = dofile(here .. "/support/net.lua")
local H = dofile(here .. "/support/helpers.lua")
local sip = require "luasip"
local socket = require "socket"

local V4 = N.V4
local T1, T2, T4, TRYING = 10, 40, 50, 30
local T64 = 64 * T1 -- Timers B, F, H, J, L

-- Timing tolerances (seconds): a datagram is never seen before its timer is
-- due (minus the clock granularity), and is allowed to be this late.
local EARLY, LATE = 0.004, 0.030

local function server(opts)
  opts = opts or {}
  opts.t1, opts.t2, opts.t4 = T1, T2, T4
  opts.trying_delay = opts.trying_delay or TRYING
  opts.timer_d = opts.timer_d or 1000
  return N.server(opts)
end

------------------------------------------------------------------------------
-- Peer helpers
------------------------------------------------------------------------------

-- Poll a UDP peer and stamp every new datagram with its arrival time.
local function stamp(u)
  u:poll()
  local now = socket.gettime()
  for _, d in ipairs(u.queue) do
    d.t = d.t or now
  end
end

-- The next datagram ({data=, ip=, port=, t=}) within seconds, or nil.
local function recv_timed(u, seconds)
  local ok = N.pump_until(function()
    stamp(u)
    return #u.queue > 0
  end, seconds)
  if not ok then
    return nil
  end
  return table.remove(u.queue, 1)
end

-- Every datagram that arrives within seconds (or until stop() is true).
local function gather(u, seconds, stop)
  local out = {}
  N.pump_until(function()
    stamp(u)
    while #u.queue > 0 do
      out[#out + 1] = table.remove(u.queue, 1)
    end
    return stop and stop(out)
  end, seconds)
  return out
end

-- Check that the datagrams of list arrived at the offsets (ms, relative to
-- t0 in seconds) of want, within the tolerances.
local function assert_schedule(list, t0, want, what)
  assert.are.equal(#want, #list, what .. ": number of copies")
  for i, off in ipairs(want) do
    local got = list[i].t - t0
    local lo, hi = off / 1000 - EARLY, off / 1000 + LATE
    assert.is_true(got >= lo and got <= hi,
      string.format("%s: copy %d at %.1f ms, want %d ms (-%d/+%d)", what, i, got * 1000, off, EARLY * 1000,
        LATE * 1000))
  end
end

-- Offsets (ms) at which a timer that starts at t1, doubles up to cap (nil:
-- no cap) sends, before deadline (ms): the first send at 0 included.
local function schedule(t1, cap, deadline)
  local out, at, iv = { 0 }, 0, t1
  while at + iv < deadline do
    at = at + iv
    out[#out + 1] = at
    iv = cap and math.min(2 * iv, cap) or 2 * iv
  end
  return out
end

-- A response to the request bytes req (as a peer UA would build it).
local function respond(req, status, reason, tag, body)
  local r = N.parse(req)
  local lines = { string.format("SIP/2.0 %d %s", status, reason) }
  for _, v in ipairs(r:all("Via")) do
    lines[#lines + 1] = "Via: " .. v
  end
  lines[#lines + 1] = "From: " .. r:get("From")
  local to = r:get("To")
  if tag and not to:find(";%s*tag=") then
    to = to .. ";tag=" .. tag
  end
  lines[#lines + 1] = "To: " .. to
  lines[#lines + 1] = "Call-ID: " .. r:get("Call-ID")
  lines[#lines + 1] = "CSeq: " .. r:get("CSeq")
  body = body or ""
  lines[#lines + 1] = "Content-Length: " .. #body
  lines[#lines + 1] = ""
  lines[#lines + 1] = body
  return table.concat(lines, "\r\n")
end

-- The request line's method and URI.
local function request_line(p)
  return p.start:match("^(%S+) (%S+) SIP/2%.0$")
end

-- An INVITE from peer u (Via with rport and u's port) plus what an ACK or
-- a CANCEL for it needs.
local function invite(u, t)
  t = t or {}
  local d = {
    method = t.method or "INVITE", rport = true, via_host = V4, via_port = u.port,
    branch = t.branch or ("z9hG4bK" .. N.unique("i"):gsub("%.", "")),
    call_id = t.call_id or N.unique("cid"),
    from = "<sip:alice@127.0.0.1>;tag=" .. N.unique("f"):gsub("%.", ""),
    cseq = t.cseq or 1,
  }
  d.bytes = N.request(d)
  return d
end

-- The ACK (for a non-2xx: same branch) or CANCEL of the request inv.
local function follow(inv, method, t)
  t = t or {}
  return (N.request {
    method = method, rport = true, via_host = V4, via_port = inv.via_port,
    branch = t.branch or inv.branch, call_id = inv.call_id, from = inv.from,
    to = t.to, cseq = inv.cseq,
  })
end

-- A handler that keeps each request and waits (yields forever): the test
-- answers later with req:reply.
local function keeper()
  local got = {}
  return got, function(req)
    got[#got + 1] = req
    coroutine.yield()
  end
end

------------------------------------------------------------------------------
-- Server transactions
------------------------------------------------------------------------------

describe("server transactions (T1 = 10 ms)", function()
  after_each(N.cleanup)

  it("sends 100 Trying after trying_delay to an INVITE the handler has not answered", function()
    local srv, l = server()
    local got, handler = keeper()
    srv:on_request(handler)
    local u = N.udp()
    local inv = invite(u)
    local t0 = socket.gettime()
    u:send(inv.bytes, l.host, l.port)
    local d = assert(recv_timed(u, 1), "no 100 Trying")
    local waited = d.t - t0
    assert.is_true(waited >= TRYING / 1000 - EARLY and waited <= TRYING / 1000 + LATE,
      string.format("100 Trying after %.1f ms, want %d ms", waited * 1000, TRYING))
    local r = N.parse(d.data)
    assert.are.equal("SIP/2.0 100 Trying", r.start)
    assert.are.equal(inv.call_id, r:get("Call-ID"))
    assert.are.equal("1 INVITE", r:get("CSeq"))
    assert.is_nil(r:to_tag(), "a 100 Trying has no To tag")
    assert.is_truthy(r:get("Via"):find("branch=" .. inv.branch, 1, true))
    assert.are.equal(1, #got)
    local st = srv:stats()
    assert.are.equal(1, st.txn_trying_sent)
    assert.are.equal(1, st.txn_live_ist)
    -- exactly one 100: the answer that follows is the next datagram
    assert.is_true(got[1]:reply(486))
    r = N.parse(assert(recv_timed(u, 1)).data)
    assert.are.equal("SIP/2.0 486 Busy Here", r.start)
  end)

  it("sends no 100 Trying when the handler answers at once", function()
    local srv, l = server()
    srv:on_request(function(req)
      req:reply(200)
    end)
    local u = N.udp()
    local inv = invite(u)
    u:send(inv.bytes, l.host, l.port)
    local all = gather(u, (TRYING + 60) / 1000)
    assert.is_true(#all >= 1, "no response")
    for _, d in ipairs(all) do -- the 200 and its retransmissions (§13.3.1.4)
      assert.are.equal("SIP/2.0 200 OK", N.parse(d.data).start)
    end
    assert.are.equal(0, srv:stats().txn_trying_sent)
  end)

  it("sends no 100 Trying when the handler sends a provisional at once", function()
    local srv, l = server()
    local got = {}
    srv:on_request(function(req)
      got[#got + 1] = req
      req:reply(183)
      coroutine.yield()
    end)
    local u = N.udp()
    u:send(invite(u).bytes, l.host, l.port)
    local all = gather(u, (TRYING + 60) / 1000)
    assert.are.equal(1, #all, "one response only")
    assert.are.equal("SIP/2.0 183 Session Progress", N.parse(all[1].data).start)
    assert.are.equal(0, srv:stats().txn_trying_sent)
    got[1]:reply(200)
  end)

  it("absorbs a retransmitted INVITE (handler called once) and re-sends the last provisional", function()
    local srv, l = server()
    local got = {}
    srv:on_request(function(req)
      got[#got + 1] = req
      req:reply(180)
      coroutine.yield()
    end)
    local u = N.udp()
    local inv = invite(u)
    u:send(inv.bytes, l.host, l.port)
    local first = assert(recv_timed(u, 1), "no 180").data
    assert.are.equal("SIP/2.0 180 Ringing", N.parse(first).start)
    u:send(inv.bytes, l.host, l.port)
    local again = assert(recv_timed(u, 1), "no 180 for the retransmission").data
    assert.are.equal(first, again, "the same 180, byte for byte")
    u:send(inv.bytes, l.host, l.port)
    assert.are.equal(first, assert(recv_timed(u, 1)).data)
    assert.are.equal(1, #got, "handler called once")
    local st = srv:stats()
    assert.are.equal(2, st.txn_absorbed)
    assert.are.equal(2, st.txn_retransmissions)
    assert.are.equal(1, st.txn_created)
    assert.are.equal(0, st.txn_trying_sent)
    -- the final carries the 180's To tag
    got[1]:reply(200)
    local ok = N.parse(assert(recv_timed(u, 1)).data)
    assert.are.equal(N.parse(first):to_tag(), ok:to_tag())
    assert.are.equal(1, #got)
  end)

  it("answers a retransmitted INVITE with 100 Trying at once when nothing was sent yet", function()
    local srv, l = server { trying_delay = 300 }
    local got, handler = keeper()
    srv:on_request(handler)
    local u = N.udp()
    local inv = invite(u)
    u:send(inv.bytes, l.host, l.port)
    N.pump_for(0.02)
    assert.are.equal(0, u:pending())
    local t0 = socket.gettime()
    u:send(inv.bytes, l.host, l.port)
    local d = assert(recv_timed(u, 1), "no 100")
    assert.is_true(d.t - t0 < 0.1, "100 Trying at once, not after trying_delay")
    assert.are.equal("SIP/2.0 100 Trying", N.parse(d.data).start)
    assert.are.equal(1, #got)
    -- and only once: the timer of the automatic 100 is gone
    local later = gather(u, 0.35)
    assert.are.equal(0, #later, "a second 100 Trying")
    assert.are.equal(1, srv:stats().txn_trying_sent)
    got[1]:reply(603)
  end)

  it("absorbs a retransmitted non-INVITE before the final without answering it", function()
    local srv, l = server()
    local got, handler = keeper()
    srv:on_request(handler)
    local u = N.udp()
    local bytes, cid = N.request { method = "MESSAGE", rport = true, via_port = u.port }
    u:send(bytes, l.host, l.port)
    N.pump_for(0.02)
    u:send(bytes, l.host, l.port)
    local all = gather(u, 0.08)
    assert.are.equal(0, #all, "no 100 Trying for a non-INVITE, nothing for the retransmission")
    assert.are.equal(1, #got)
    assert.are.equal(1, srv:stats().txn_absorbed)
    got[1]:reply(202)
    local r = N.parse(assert(recv_timed(u, 1)).data)
    assert.are.equal("SIP/2.0 202 Accepted", r.start)
    assert.are.equal(cid, r:get("Call-ID"))
  end)

  it("answers a retransmitted non-INVITE after the final with the same final (same To tag)", function()
    local srv, l = server()
    local calls = 0
    srv:on_request(function(req)
      calls = calls + 1
      req:reply(200, nil, { { "X-Call", tostring(calls) } })
    end)
    local u = N.udp()
    local bytes = N.request { rport = true, via_port = u.port }
    u:send(bytes, l.host, l.port)
    local d = assert(recv_timed(u, 1))
    local first, t_final = d.data, d.t
    local tag = N.parse(first):to_tag()
    assert.is_truthy(tag)
    for _ = 1, 3 do
      u:send(bytes, l.host, l.port)
      local again = assert(recv_timed(u, 1), "no answer to the retransmission").data
      assert.are.equal(first, again)
    end
    assert.are.equal(1, calls)
    local st = srv:stats()
    assert.are.equal(3, st.txn_absorbed)
    assert.are.equal(3, st.txn_retransmissions)
    assert.are.equal(1, st.txn_live_nist, "Completed until Timer J")
    -- Timer J (64*T1 on UDP) ends it
    N.pump_until(function()
      return srv:stats().txn_live == 0
    end, 2)
    local took = socket.gettime() - t_final
    assert.are.equal(0, srv:stats().txn_live)
    assert.is_true(took >= T64 / 1000 - EARLY and took <= T64 / 1000 + 2 * LATE,
      string.format("Timer J after %.0f ms, want %d", took * 1000, T64))
  end)

  it("retransmits a non-2xx final to an INVITE with Timer G until the ACK, which the handler never sees", function()
    local srv, l = server()
    local methods = {}
    srv:on_request(function(req)
      methods[#methods + 1] = req.method
      if req.method == "INVITE" then
        req:reply(486)
      end
    end)
    local u = N.udp()
    local inv = invite(u)
    u:send(inv.bytes, l.host, l.port)
    -- the final at 0, then T1, 2T1, 4T1, T2: 0, 10, 30, 70, 110 ms
    local want = { 0, 10, 30, 70, 110 }
    local copies = gather(u, 1, function(out)
      return #out >= #want
    end)
    assert.are.equal(#want, #copies)
    assert_schedule(copies, copies[1].t, want, "Timer G")
    local r = N.parse(copies[1].data)
    assert.are.equal("SIP/2.0 486 Busy Here", r.start)
    for i = 2, #copies do
      assert.are.equal(copies[1].data, copies[i].data, "copy " .. i .. " is the same response")
    end
    -- the ACK (same branch, the 486's To tag) stops it; a retransmitted
    -- ACK is absorbed too (Confirmed, Timer I = T4)
    local before = srv:stats()
    local ack = follow(inv, "ACK", { to = r:get("To") })
    u:send(ack, l.host, l.port)
    N.pump_for(0.005)
    u:send(ack, l.host, l.port)
    N.pump_for(0.005)
    local st = srv:stats()
    assert.are.equal(before.txn_absorbed + 2, st.txn_absorbed)
    assert.are.equal(1, st.txn_live_ist, "Confirmed until Timer I")
    local late = gather(u, 0.15)
    -- one copy may have crossed the ACK
    assert.is_true(#late <= 1, #late .. " copies after the ACK")
    assert.are.same({ "INVITE" }, methods, "the ACK reached the handler")
    st = srv:stats()
    assert.are.equal(0, st.txn_timeouts)
    assert.are.equal(0, st.txn_stray_acks)
    assert.are.equal(0, st.txn_live, "Timer I (T4) ended it")
  end)

  it("stops Timer G at Timer H (64*T1) when no ACK comes, and counts the timeout", function()
    local srv, l = server()
    srv:on_request(function(req)
      req:reply(500, "Try Later")
    end)
    local u = N.udp()
    u:send(invite(u).bytes, l.host, l.port)
    local copies = gather(u, (T64 + 300) / 1000)
    local want = schedule(T1, T2, T64)
    assert.are.equal(18, #want) -- 0, 10, 30, 70, 110, ... 630
    assert_schedule(copies, copies[1].t, want, "Timer G until H")
    local st = srv:stats()
    assert.are.equal(1, st.txn_timeouts)
    assert.are.equal(0, st.txn_live)
    assert.are.equal(17, st.txn_retransmissions)
  end)

  it("passes the ACK for a 2xx (a new branch) to the handler as an ACK request", function()
    local srv, l = server()
    local seen = {}
    srv:on_request(function(req)
      seen[#seen + 1] = { method = req.method, branch = req.via[1].branch, cseq = req.cseq }
      if req.method == "INVITE" then
        req:reply(200)
      end
    end)
    local u = N.udp()
    local inv = invite(u)
    u:send(inv.bytes, l.host, l.port)
    local r = N.parse(assert(recv_timed(u, 1)).data)
    assert.are.equal(200, r.status)
    local ack_branch = "z9hG4bK" .. N.unique("ack"):gsub("%.", "")
    u:send(follow(inv, "ACK", { to = r:get("To"), branch = ack_branch }), l.host, l.port)
    N.pump_until(function()
      return #seen >= 2
    end, 1)
    assert.are.same({
      { method = "INVITE", branch = inv.branch, cseq = 1 },
      { method = "ACK", branch = ack_branch, cseq = 1 },
    }, seen)
    N.pump_for(0.03)
    assert.are.equal(0, u:pending(), "nothing answers an ACK")
    local st = srv:stats()
    assert.are.equal(1, st.txn_stray_acks)
    assert.are.equal(1, st.txn_created, "no transaction for the ACK")
  end)

  it("re-sends a 2xx to an INVITE at T1, 2T1, 4T1 until its ACK (§13.3.1.4); INVITE retransmissions absorbed",
  function()
    local srv, l = server()
    local calls = 0
    srv:on_request(function(req)
      if req.method == "INVITE" then -- the ACK comes here too
        calls = calls + 1
        req:reply(200)
      end
    end)
    local u = N.udp()
    local inv = invite(u)
    u:send(inv.bytes, l.host, l.port)
    local first = assert(recv_timed(u, 1))
    local r = N.parse(first.data)
    assert.are.equal(200, r.status)
    -- the UAS core re-sends the 2xx (the transaction does not: RFC 6026):
    -- copies at 10, 30, 70 ms within 100 ms, byte for byte the same
    local copies = gather(u, 0.1)
    assert.are.equal(3, #copies, "2xx retransmissions in 100 ms with T1 = 10 ms")
    for _, c in ipairs(copies) do
      assert.are.equal(first.data, c.data)
    end
    u:send(inv.bytes, l.host, l.port)
    -- the ACK (its own branch) stops them
    u:send(follow(inv, "ACK", { to = r:get("To"), branch = "z9hG4bK" .. N.unique("a"):gsub("%.", "") }),
      l.host, l.port)
    N.pump_for(0.01)
    u:pending()
    u.queue = {}
    assert.are.equal(0, #gather(u, 0.1), "2xx re-sent after its ACK")
    assert.are.equal(1, calls)
    local st = srv:stats()
    assert.is_true(st.txn_absorbed >= 1, "the INVITE retransmission absorbed")
    assert.are.equal(3, st.retx_2xx)
    assert.are.equal(0, st.unacked_2xx)
    assert.are.equal(1, st.txn_live_ist, "Accepted until Timer L")
    N.pump_until(function()
      return srv:stats().txn_live == 0
    end, 2)
    assert.are.equal(0, srv:stats().txn_live, "Timer L ended it")
  end)

  it("answers a CANCEL 200 and its pending INVITE 487; req:reply then returns nil and an error", function()
    local srv, l = server()
    local got, handler = keeper()
    srv:on_request(handler)
    local u = N.udp()
    local inv = invite(u)
    u:send(inv.bytes, l.host, l.port)
    N.pump_until(function()
      return #got == 1
    end, 1)
    assert.are.equal(1, #got)
    assert.is_false(got[1]:is_cancelled())
    u:send(follow(inv, "CANCEL"), l.host, l.port)
    local r1 = N.parse(assert(recv_timed(u, 1), "no answer to the CANCEL").data)
    local r2 = N.parse(assert(recv_timed(u, 1), "no 487").data)
    assert.are.equal("SIP/2.0 200 OK", r1.start)
    assert.are.equal("1 CANCEL", r1:get("CSeq"))
    assert.are.equal(inv.call_id, r1:get("Call-ID"))
    assert.are.equal("SIP/2.0 487 Request Terminated", r2.start)
    assert.are.equal("1 INVITE", r2:get("CSeq"))
    assert.is_truthy(r2:to_tag())
    assert.are.equal(1, #got, "the CANCEL does not reach the handler")
    assert.is_true(got[1]:is_cancelled())
    assert.are.equal(487, got[1]:answered())
    local ok, err = got[1]:reply(200)
    assert.is_nil(ok)
    assert.is_truthy(tostring(err):find("cancelled", 1, true), tostring(err))
    -- the 487 is a non-2xx final: Timer G until the ACK
    local again = N.parse(assert(recv_timed(u, 1), "no 487 retransmission").data)
    assert.are.equal(r2.raw, again.raw)
    u:send(follow(inv, "ACK", { to = r2:get("To") }), l.host, l.port)
    gather(u, 0.02)
    assert.are.equal(0, #gather(u, 0.1), "487 after the ACK")
    local st = srv:stats()
    assert.are.equal(2, st.txn_created)
  end)

  it("answers a CANCEL that matches nothing with 481", function()
    local srv, l = server()
    local got, handler = keeper()
    srv:on_request(handler)
    local u = N.udp()
    local inv = invite(u)
    u:send(follow(inv, "CANCEL"), l.host, l.port)
    local r = N.parse(assert(recv_timed(u, 1)).data)
    assert.are.equal("SIP/2.0 481 Call/Transaction Does Not Exist", r.start)
    assert.are.equal("1 CANCEL", r:get("CSeq"))
    assert.are.equal(0, #got)
    -- a CANCEL for an INVITE already answered has no effect (§9.2) but is
    -- answered 200 while the INVITE transaction lives (Accepted)
    inv = invite(u)
    u:send(inv.bytes, l.host, l.port)
    N.pump_until(function()
      return #got == 1
    end, 1)
    got[1]:reply(200)
    assert.are.equal(200, N.parse(assert(recv_timed(u, 1)).data).status)
    u:send(follow(inv, "CANCEL"), l.host, l.port)
    r = N.parse(assert(recv_timed(u, 1)).data)
    assert.are.equal("1 CANCEL", r:get("CSeq"))
    assert.are.equal(200, r.status)
    assert.is_false(got[1]:is_cancelled())
    for _, d in ipairs(gather(u, 0.05)) do -- only the 2xx re-sent, no 487
      assert.are.equal(200, N.parse(d.data).status, "no 487 after a 200")
    end
    assert.are.equal(0, srv:stats().rejected)
  end)

  it("matches an RFC 2543 INVITE (no branch) and absorbs its retransmission", function()
    local vec = H.vector("rfc4475/inv2543.dat")
    local srv, l = server()
    local got = {}
    srv:on_request(function(req)
      got[#got + 1] = req
      req:reply(180)
      coroutine.yield()
    end)
    -- the Via's sent-by is iftgw.example.com (no port, no rport): the
    -- response goes to the source address and port 5060 (§18.2.2)
    local ok, listener = pcall(N.udp, V4, 5060)
    local u = ok and listener or N.udp()
    u:send(vec, l.host, l.port)
    N.pump_until(function()
      return #got == 1
    end, 1)
    assert.are.equal(1, #got)
    assert.is_nil(got[1].via[1].branch)
    u:send(vec, l.host, l.port)
    N.pump_for(0.03)
    assert.are.equal(1, #got, "the retransmission reached the handler")
    local st = srv:stats()
    assert.are.equal(1, st.txn_created)
    assert.are.equal(1, st.txn_absorbed)
    assert.are.equal(1, st.txn_retransmissions, "the 180 re-sent")
    if ok then
      local a = assert(recv_timed(u, 1), "no 180 at port 5060").data
      local b = assert(recv_timed(u, 1), "no second 180 at port 5060").data
      assert.are.equal("SIP/2.0 180 Ringing", N.parse(a).start)
      assert.are.equal(a, b)
      assert.are.equal("SIP/2.0/UDP iftgw.example.com;received=127.0.0.1", N.parse(a):get("Via"))
    else
      io.stderr:write("txn_spec: 127.0.0.1:5060 is busy: the 180s and the ACK are not checked\n")
    end
    -- a non-2xx final, then the RFC 2543 ACK (To tag of the final)
    got[1]:reply(486)
    if ok then
      local r = N.parse(assert(recv_timed(u, 1)).data)
      assert.are.equal(486, r.status)
      local ack = table.concat({
        "ACK sip:UserB@example.com SIP/2.0",
        "Via: SIP/2.0/UDP iftgw.example.com",
        "From: <sip:+13035551111@ift.client.example.net;user=phone>",
        "To: " .. r:get("To"),
        "Call-ID: inv2543.1717@ift.client.example.com",
        "CSeq: 56 ACK",
        "Content-Length: 0",
        "", "",
      }, "\r\n")
      u:send(ack, l.host, l.port)
      gather(u, 0.03)
      assert.are.equal(0, #gather(u, 0.1), "486 retransmitted after the ACK")
      assert.are.equal(0, srv:stats().txn_stray_acks)
      assert.are.equal(1, #got, "the ACK reached the handler")
    end
  end)

  it("counts live transactions and their memory, and gives it back when they end", function()
    local srv, l = server { trying_delay = -1 }
    local got, handler = keeper()
    srv:on_request(handler)
    local u = N.udp()
    local base = srv:stats()
    assert.are.equal(0, base.txn_live)
    for _ = 1, 50 do
      u:send(invite(u).bytes, l.host, l.port)
    end
    N.pump_until(function()
      return #got == 50
    end, 2)
    assert.are.equal(50, #got)
    local st = srv:stats()
    assert.are.equal(50, st.txn_live)
    assert.are.equal(50, st.txn_live_ist)
    assert.are.equal(50, st.txn_created)
    assert.is_true(st.txn_mem_bytes > base.txn_mem_bytes, "memory of 50 transactions")
    local per = (st.txn_mem_bytes - base.txn_mem_bytes) / 50
    assert.is_true(per > 100 and per < 8192, per .. " bytes per INVITE transaction")
    for i = 1, 50 do
      got[i]:reply(200)
      got[i] = nil
    end
    assert.are.equal(50, srv:stats().txn_live, "Accepted until Timer L")
    collectgarbage()
    collectgarbage()
    N.pump_until(function()
      local now = srv:stats()
      return now.txn_live == 0 and now.unacked_2xx == 50
    end, 2)
    st = srv:stats()
    assert.are.equal(0, st.txn_live)
    assert.are.equal(50, st.unacked_2xx, "no ACKs came: each 2xx re-sent until 64*T1")
    assert.are.equal(0, st.txn_trying_sent, "trying_delay = -1: no 100 Trying")
    N.pump_for(0.01)
    -- what stays: the timer heap's array (256 slots) and table growth
    local left = srv:stats().txn_mem_bytes - base.txn_mem_bytes
    assert.is_true(left <= 4096, left .. " bytes not given back")
  end)

  it("sends 100 Trying while the handler waits on srv:send, then its answer; a CANCEL meanwhile wins", function()
    local srv, l = server()
    local silent = N.udp()
    local outcome = {}
    srv:on_request(function(req)
      local res = srv:send(assert(sip.request {
        method = "OPTIONS", uri = "sip:down@127.0.0.1:" .. silent.port, from = "<sip:b2b@127.0.0.1>",
      }), "udp:127.0.0.1:" .. silent.port)
      outcome[#outcome + 1] = { res.status, req:reply(res.status == 408 and 504 or 500) }
    end)
    local u = N.udp()
    local inv = invite(u)
    local t0 = socket.gettime()
    u:send(inv.bytes, l.host, l.port)
    local d = assert(recv_timed(u, 1), "no 100")
    assert.are.equal("SIP/2.0 100 Trying", N.parse(d.data).start)
    assert.is_true(d.t - t0 < (TRYING / 1000 + LATE), "100 Trying late")
    d = assert(recv_timed(u, 2), "no final")
    local took = d.t - t0
    assert.are.equal("SIP/2.0 504 Server Time-out", N.parse(d.data).start)
    assert.is_true(took >= T64 / 1000 - EARLY and took <= T64 / 1000 + 2 * LATE,
      string.format("504 after %.0f ms", took * 1000))
    assert.are.same({ { 408, true } }, outcome)
    assert.is_true(silent:pending() > 5, "the downstream request was retransmitted")
    u:send(follow(inv, "ACK", { to = N.parse(d.data):get("To") }), l.host, l.port)

    -- the same, cancelled while the handler waits: 487 now, and the late
    -- reply returns nil + error inside the handler
    inv = invite(u)
    u:send(inv.bytes, l.host, l.port)
    assert.are.equal(100, N.parse(assert(recv_timed(u, 1)).data).status)
    u:send(follow(inv, "CANCEL"), l.host, l.port)
    local seen = {}
    for _ = 1, 2 do
      local r = N.parse(assert(recv_timed(u, 1)).data)
      seen[#seen + 1] = r.status .. " " .. r:get("CSeq")
      if r.status == 487 then
        u:send(follow(inv, "ACK", { to = r:get("To") }), l.host, l.port)
      end
    end
    assert.are.same({ "200 1 CANCEL", "487 1 INVITE" }, seen)
    N.pump_until(function()
      return #outcome == 2
    end, 2)
    assert.are.equal(408, outcome[2][1])
    assert.is_nil(outcome[2][2], "a reply after the 487 must return nil")
    assert.are.equal(0, #gather(u, 0.05), "anything after the 487")
    assert.are.equal(0, srv:stats().script_errors)
  end)

  it("answers 503 beyond max_transactions", function()
    local srv, l = server { max_transactions = 1 }
    local got, handler = keeper()
    srv:on_request(handler)
    local u = N.udp()
    u:send(invite(u).bytes, l.host, l.port)
    N.pump_until(function()
      return #got == 1
    end, 1)
    u:send((N.request { rport = true, via_port = u.port }), l.host, l.port)
    local r
    repeat
      r = N.parse(assert(recv_timed(u, 1)).data)
    until r.status ~= 100
    assert.are.equal(503, r.status)
    assert.are.equal("1 OPTIONS", r:get("CSeq"))
    assert.are.equal(1, #got)
    local st = srv:stats()
    assert.are.equal(1, st.txn_rejected)
    assert.are.equal(1, st.txn_live)
  end)
end)

------------------------------------------------------------------------------
-- Requests the script gives up on
------------------------------------------------------------------------------

-- A request the script drops, or whose object is collected unanswered, can
-- never be answered: its server transaction (NIST Trying, IST Proceeding:
-- states without a timer) must not stay live for ever and count toward
-- max_transactions. Retransmissions may be absorbed for a while (64*T1
-- is the lifetime of a transaction elsewhere); then it must end. ENDED is
-- the slack allowed after 64*T1: the assertion is "it ends", not "on
-- time", and a collection of the whole busted process's heap (about 850
-- tests' worth) can stall the loop for a few hundred milliseconds.
local ENDED = 2000
describe("server transactions of requests the script gives up on", function()
  after_each(N.cleanup)

  it("end after a req:drop() instead of holding a max_transactions slot for ever", function()
    local srv, l = server { max_transactions = 1 }
    local dropped = 0
    srv:on_request(function(req)
      if req.method == "MESSAGE" then
        dropped = dropped + 1
        return req:drop()
      end
      req:reply(200)
    end)
    local u = N.udp()
    u:send((N.request { method = "MESSAGE", rport = true, via_port = u.port }), l.host, l.port)
    N.pump_until(function()
      return dropped == 1
    end, 1)
    N.pump_until(function()
      return srv:stats().txn_live == 0
    end, (T64 + ENDED) / 1000)
    assert.are.equal(0, srv:stats().txn_live, "the dropped request's transaction is still live")
    u:send((N.request { rport = true, via_port = u.port }), l.host, l.port)
    local r = N.parse(assert(recv_timed(u, 1)).data)
    assert.are.equal(200, r.status, "a later request was refused: " .. r.start)
  end)

  it("end when the request object is collected unanswered", function()
    local srv, l = server { trying_delay = -1 }
    local n = 0
    local alive = setmetatable({}, { __mode = "k" })
    srv:on_request(function(req)
      n = n + 1
      alive[req] = true
      coroutine.yield() -- never resumed: the coroutine and the request become garbage
    end)
    local u = N.udp()
    u:send(invite(u).bytes, l.host, l.port)
    u:send((N.request { method = "MESSAGE", rport = true, via_port = u.port }), l.host, l.port)
    N.pump_until(function()
      return n == 2
    end, 1)
    collectgarbage()
    collectgarbage()
    assert.is_nil(next(alive), "the request objects were not collected")
    N.pump_until(function()
      return srv:stats().txn_live == 0
    end, (T64 + ENDED) / 1000)
    local st = srv:stats()
    assert.are.equal(0, st.txn_live, string.format("still live: %d IST, %d NIST", st.txn_live_ist, st.txn_live_nist))
  end)
end)

------------------------------------------------------------------------------
-- Client transactions
------------------------------------------------------------------------------

describe("client transactions through srv:send (T1 = 10 ms)", function()
  after_each(N.cleanup)

  local function options(uri, t)
    t = t or {}
    t.method = t.method or "OPTIONS"
    t.uri = uri
    t.from = t.from or "<sip:alice@127.0.0.1>"
    return assert(sip.request(t))
  end

  -- Run fn in a coroutine and pump until it returns; its results.
  local function run(fn, seconds)
    return N.run_task(fn, seconds or 2)
  end

  it("gives 408 after 64*T1 from a silent UDP peer, which saw Timer E retransmissions", function()
    local srv = server()
    local u = N.udp()
    local req = options("sip:bob@127.0.0.1:" .. u.port)
    local t0 = socket.gettime()
    local res, done_at
    sip.spawn(function()
      res = srv:send(req, "udp:127.0.0.1:" .. u.port)
      done_at = socket.gettime()
    end)
    local copies = gather(u, 2, function()
      return res
    end)
    assert.is_not_nil(res, "no final response")
    assert.are.equal(408, res.status)
    local took = done_at - t0
    assert.is_true(took >= T64 / 1000 - EARLY and took <= T64 / 1000 + 2 * LATE,
      string.format("408 after %.1f ms, want %d", took * 1000, T64))
    -- E: 0, T1, 2T1, 4T1, then T2: 0, 10, 30, 70, 110, ..., 630
    local want = schedule(T1, T2, T64)
    assert.are.same({ 0, 10, 30, 70, 110, 150 }, { table.unpack(want, 1, 6) })
    assert_schedule(copies, copies[1].t, want, "Timer E")
    local r = N.parse(copies[1].data)
    assert.are.equal("OPTIONS sip:bob@127.0.0.1:" .. u.port .. " SIP/2.0", r.start)
    local via = r:get("Via")
    assert.is_truthy(via:match("^SIP/2%.0/UDP 127%.0%.0%.1:%d+;branch=z9hG4bK[%w%-_]+;rport$"), via)
    for i = 2, #copies do
      assert.are.equal(copies[1].data, copies[i].data)
    end
    local st = srv:stats()
    assert.are.equal(1, st.txn_timeouts)
    assert.are.equal(#want - 1, st.txn_retransmissions)
    assert.are.equal(0, st.txn_live)
  end)

  it("gives 408 after 64*T1 to an INVITE, retransmitted with Timer A (doubling, no cap)", function()
    local srv = server()
    local u = N.udp()
    local req = options("sip:bob@127.0.0.1:" .. u.port, { method = "INVITE" })
    local res
    sip.spawn(function()
      res = srv:send(req, "udp:127.0.0.1:" .. u.port)
    end)
    local copies = gather(u, 2, function()
      return res
    end)
    assert.are.equal(408, res and res.status)
    assert_schedule(copies, copies[1].t, { 0, 10, 30, 70, 150, 310, 630 }, "Timer A")
    assert.are.equal(6, srv:stats().txn_retransmissions)
  end)

  it("retransmits a non-INVITE at T2 once a provisional came (Proceeding)", function()
    local srv = server()
    local u = N.udp()
    local req = options("sip:bob@127.0.0.1:" .. u.port, { method = "REGISTER" })
    local res
    local prov = {}
    sip.spawn(function()
      res = srv:send(req, "udp:127.0.0.1:" .. u.port, { on_provisional = function(r)
        prov[#prov + 1] = r.status
      end })
    end)
    local first = assert(recv_timed(u, 1))
    u:send(respond(first.data, 100, "Trying"), first.ip, first.port)
    local copies = gather(u, 0.2)
    assert.are.same({ 100 }, prov)
    -- T1 after the first send (the 100 came before), then every T2
    assert.is_true(#copies >= 4 and #copies <= 6, #copies .. " copies in 200 ms")
    assert_schedule({ copies[1], copies[2], copies[3] }, first.t, { 10, 50, 90 }, "Timer E in Proceeding")
    u:send(respond(first.data, 200, "OK", "t1"), first.ip, first.port)
    N.pump_until(function()
      return res
    end, 1)
    assert.are.equal(200, res.status)
  end)

  it("reports a 180 to on_provisional, returns the 486 and sends the ACK for it itself", function()
    local srv = server()
    local u = N.udp()
    local uri = "sip:bob@127.0.0.1:" .. u.port .. ";x=1"
    local req = options(uri, { method = "INVITE", cseq = 42, from = "Alice <sip:alice@127.0.0.1>;tag=abc" })
    local prov, extra = {}, {}
    local res
    sip.spawn(function()
      res = srv:send(req, "udp:127.0.0.1:" .. u.port, {
        on_provisional = function(r)
          prov[#prov + 1] = { status = r.status, tag = r.to.tag }
        end,
        on_2xx = function(r)
          extra[#extra + 1] = r.status
        end,
      })
    end)
    local got = assert(recv_timed(u, 1), "no INVITE")
    local inv = N.parse(got.data)
    u:send(respond(got.data, 180, "Ringing", "tt99"), got.ip, got.port)
    N.pump_until(function()
      return #prov > 0
    end, 1)
    assert.are.same({ { status = 180, tag = "tt99" } }, prov)
    assert.is_nil(res)
    local busy = respond(got.data, 486, "Busy Here", "tt99")
    u:send(busy, got.ip, got.port)
    N.pump_until(function()
      return res
    end, 1)
    assert.are.equal(486, res and res.status)
    assert.are.equal("tt99", res.to.tag)
    -- the ACK: skip INVITE retransmissions that crossed the 180
    local ack
    for _, d in ipairs(gather(u, 0.1)) do
      local p = N.parse(d.data)
      if request_line(p) == "ACK" then
        assert.is_nil(ack, "two ACKs for one 486")
        ack = p
      end
    end
    assert.is_not_nil(ack, "no ACK for the 486")
    assert.are.equal("ACK " .. uri .. " SIP/2.0", ack.start)
    assert.are.same(inv:all("Via"), ack:all("Via"), "the INVITE's top Via, same branch")
    assert.are.equal(inv:get("Call-ID"), ack:get("Call-ID"))
    assert.are.equal(inv:get("From"), ack:get("From"))
    assert.are.equal(N.parse(busy):get("To"), ack:get("To"))
    assert.are.equal("42 ACK", ack:get("CSeq"))
    assert.are.equal("70", ack:get("Max-Forwards"))
    assert.are.equal("0", ack:get("Content-Length"))
    assert.are.equal("", ack.body)
    -- a retransmitted 486 is absorbed: the ACK again, nothing for the script
    local st = srv:stats()
    u:send(busy, got.ip, got.port)
    local again = assert(recv_timed(u, 1), "no ACK for the retransmitted 486")
    assert.are.equal(ack.raw, again.data)
    assert.are.same({}, extra)
    local st2 = srv:stats()
    assert.are.equal(st.txn_absorbed + 1, st2.txn_absorbed)
    assert.are.equal(st.txn_retransmissions + 1, st2.txn_retransmissions)
  end)

  it("sends no ACK for a 200 to an INVITE, and gives retransmitted 200s to on_2xx", function()
    local srv = server()
    local u = N.udp()
    local req = options("sip:bob@127.0.0.1:" .. u.port, { method = "INVITE" })
    local res
    local extra = {}
    sip.spawn(function()
      res = srv:send(req, "udp:127.0.0.1:" .. u.port, { on_2xx = function(r)
        extra[#extra + 1] = { status = r.status, tag = r.to.tag }
      end })
    end)
    local got = assert(recv_timed(u, 1), "no INVITE")
    local ok = respond(got.data, 200, "OK", "x200")
    u:send(ok, got.ip, got.port)
    N.pump_until(function()
      return res
    end, 1)
    assert.are.equal(200, res and res.status)
    -- nothing more comes: no ACK (the TU's job), no INVITE retransmission
    gather(u, 0.005)
    local after = gather(u, 0.1)
    for _, d in ipairs(after) do
      assert.are_not.equal("ACK", request_line(N.parse(d.data)), "the transaction sent an ACK for a 2xx")
    end
    assert.are.equal(0, #after)
    u:send(ok, got.ip, got.port)
    N.pump_until(function()
      return #extra > 0
    end, 1)
    assert.are.same({ { status = 200, tag = "x200" } }, extra)
    assert.are.equal(0, #gather(u, 0.03))
  end)

  it("holds neither the request, its coroutine nor on_provisional once a 2xx is in, only on_2xx", function()
    -- the transaction keeps its callback 64*T1 after a 2xx (for on_2xx):
    -- what a caller's coroutine and 1xx hook hold (a B2BUA's call) must
    -- not live that long
    local srv = server()
    local u = N.udp()
    local held = setmetatable({}, { __mode = "k" })
    local res
    local extra = {}
    do
      local req = options("sip:bob@127.0.0.1:" .. u.port, { method = "INVITE" })
      local function prov() end
      local co = sip.spawn(function()
        res = srv:send(req, "udp:127.0.0.1:" .. u.port, { on_provisional = prov, on_2xx = function(r)
          extra[#extra + 1] = r.status
        end })
      end)
      held[req], held[co], held[prov] = "request", "coroutine", "on_provisional"
    end
    local got = assert(recv_timed(u, 1), "no INVITE")
    local ok = respond(got.data, 200, "OK", "x200")
    u:send(ok, got.ip, got.port)
    N.pump_until(function()
      return res
    end, 1)
    assert.are.equal(200, res and res.status)
    collectgarbage()
    collectgarbage()
    assert.are.equal(1, srv:stats().txn_live_ict, "the transaction waits out 64*T1")
    local left = {}
    for _, what in pairs(held) do
      left[#left + 1] = what
    end
    table.sort(left)
    assert.are.same({}, left)
    u:send(ok, got.ip, got.port) -- on_2xx still comes
    N.pump_until(function()
      return #extra > 0
    end, 1)
    assert.are.same({ 200 }, extra)
  end)

  it("gives 503 promptly for TCP to a closed port", function()
    local srv = server { listen = { "udp:127.0.0.1:0", "tcp:127.0.0.1:0" } }
    local probe = assert(socket.bind(V4, 0))
    local _, port = probe:getsockname()
    probe:close()
    local t0 = socket.gettime()
    local res = run(function()
      return srv:send(options("sip:bob@127.0.0.1:" .. port .. ";transport=tcp"), "tcp:127.0.0.1:" .. port)
    end)
    local took = socket.gettime() - t0
    assert.are.equal(503, res.status)
    assert.is_true(took < 0.3, string.format("503 after %.0f ms", took * 1000))
    assert.are.equal(0, srv:stats().txn_timeouts)
  end)

  -- A TCP listener peer: accept one connection and read one message.
  local function tcp_peer()
    local ls = assert(socket.bind(V4, 0))
    ls:settimeout(0)
    local _, port = ls:getsockname()
    local peer = { port = tonumber(port), buf = "" }
    function peer.read(seconds)
      local msg
      N.pump_until(function()
        if not peer.c then
          peer.c = ls:accept()
          if peer.c then
            peer.c:settimeout(0)
          end
        end
        if peer.c then
          local d, _, partial = peer.c:receive(65536)
          peer.buf = peer.buf .. (d or partial or "")
          local m, rest = N.take_message(peer.buf)
          if m then
            msg, peer.buf = m, rest
            return true
          end
        end
      end, seconds)
      return msg
    end
    function peer.close()
      if peer.c then
        peer.c:close()
      end
      ls:close()
    end
    return peer
  end

  it("sends a request over 1300 bytes to a udp URI without transport over TCP (§18.1.1)", function()
    local srv = server { listen = { "udp:127.0.0.1:0", "tcp:127.0.0.1:0" } }
    local peer = tcp_peer()
    finally(peer.close)
    local body = string.rep("x", 1400)
    local req = options("sip:bob@127.0.0.1:" .. peer.port, { method = "MESSAGE", body = body,
      content_type = "text/plain" })
    local res
    sip.spawn(function()
      res = srv:send(req)
    end)
    local m = assert(peer.read(2), "no request over TCP")
    local p = N.parse(m)
    assert.are.equal("MESSAGE sip:bob@127.0.0.1:" .. peer.port .. " SIP/2.0", p.start)
    assert.is_truthy(p:get("Via"):match("^SIP/2%.0/TCP 127%.0%.0%.1:%d+;branch=z9hG4bK"), p:get("Via"))
    assert.are.equal(body, p.body)
    assert(peer.c:send(respond(m, 200, "OK", "tcp1")))
    N.pump_until(function()
      return res
    end, 1)
    assert.are.equal(200, res and res.status)
    assert.are.equal("tcp1", res.to.tag)
  end)

  it("sends a small request to the same URI over UDP", function()
    local srv = server { listen = { "udp:127.0.0.1:0", "tcp:127.0.0.1:0" } }
    local u = N.udp()
    local res
    sip.spawn(function()
      res = srv:send(options("sip:bob@127.0.0.1:" .. u.port, { method = "MESSAGE", body = "hi" }))
    end)
    local got = assert(recv_timed(u, 1), "no request over UDP")
    assert.is_truthy(N.parse(got.data):get("Via"):find("^SIP/2%.0/UDP "))
    u:send(respond(got.data, 200, "OK", "u1"), got.ip, got.port)
    N.pump_until(function()
      return res
    end, 1)
    assert.are.equal(200, res and res.status)
  end)

  it("sends to a \"tcp:127.0.0.1:PORT\" destination over TCP", function()
    local srv = server { listen = { "udp:127.0.0.1:0", "tcp:127.0.0.1:0" } }
    local peer = tcp_peer()
    finally(peer.close)
    local res
    sip.spawn(function()
      res = srv:send(options("sip:bob@example.invalid"), "tcp:127.0.0.1:" .. peer.port)
    end)
    local m = assert(peer.read(2), "no request over TCP")
    local p = N.parse(m)
    assert.are.equal("OPTIONS sip:bob@example.invalid SIP/2.0", p.start)
    assert.is_truthy(p:get("Via"):match("^SIP/2%.0/TCP "), p:get("Via"))
    assert.is_nil(p:get("Via"):find("rport", 1, true), "rport is for UDP")
    -- reliable: no retransmission over TCP
    N.pump_for(0.05)
    assert.is_nil(peer.read(0.01))
    assert(peer.c:send(respond(m, 404, "Not Found", "t404")))
    N.pump_until(function()
      return res
    end, 1)
    assert.are.equal(404, res and res.status)
    assert.are.equal(0, srv:stats().txn_retransmissions)
  end)

  it("gives 408 after 64*T1 from a silent TCP peer, with the request sent once (Timer F, no E)", function()
    local srv = server { listen = { "udp:127.0.0.1:0", "tcp:127.0.0.1:0" } }
    local peer = tcp_peer()
    finally(peer.close)
    local res, done_at
    local t0 = socket.gettime()
    sip.spawn(function()
      res = srv:send(options("sip:bob@127.0.0.1:" .. peer.port .. ";transport=tcp"))
      done_at = socket.gettime()
    end)
    assert.is_not_nil(peer.read(1), "no request over TCP")
    N.pump_until(function()
      return res
    end, 2)
    assert.are.equal(408, res and res.status)
    local took = done_at - t0
    assert.is_true(took >= T64 / 1000 - EARLY and took <= T64 / 1000 + 2 * LATE,
      string.format("408 after %.0f ms, want %d", took * 1000, T64))
    assert.is_nil(peer.read(0.01), "a retransmission over TCP")
    local st = srv:stats()
    assert.are.equal(0, st.txn_retransmissions)
    assert.are.equal(1, st.txn_timeouts)
  end)

  it("raises when srv:send is called outside a coroutine", function()
    local srv = server()
    assert.error_matches(function()
      srv:send(options("sip:bob@127.0.0.1:9"), "udp:127.0.0.1:9")
    end, "must run inside a request handler or sip.spawn", 1, true)
    assert.are.equal(0, srv:stats().txn_created)
  end)

  it("locates a host name in the Request-URI by DNS: a failed lookup is a made-up 503, no transaction", function()
    -- a resolver on loopback only (a closed port: the lookup fails at
    -- once); it stays for the rest of the run, so no spec asks a real DNS
    assert(sip.dns { servers = "127.0.0.1:9", timeout = 1 })
    local srv = server()
    local res = run(function()
      return srv:send(options("sip:bob@example.invalid"))
    end)
    assert.are.equal(503, res.status)
    assert.is_truthy(res.reason:find("DNS", 1, true), res.reason)
    assert.are.equal(0, srv:stats().txn_created)
    assert.is_true(srv:stats().dns_failures >= 1)
  end)
end)

describe("srv:send and close", function()
  after_each(N.cleanup)

  it("gives a waiting srv:send a 503 when its server is closed", function()
    local srv = N.server { t1 = 10, t2 = 40, t4 = 50 }
    local silent = N.udp()
    local res
    sip.spawn(function()
      res = srv:send(sip.request { method = "OPTIONS", uri = "sip:x@127.0.0.1:" .. silent.port,
        from = "sip:a@127.0.0.1" })
    end)
    N.pump_for(0.03)
    assert.is_nil(res)
    srv:close()
    assert.is_truthy(res, "srv:send still waiting after close")
    assert.are.equal(503, res.status)
  end)
end)
