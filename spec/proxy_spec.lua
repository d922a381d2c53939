-- luasip.proxy over real UDP sockets on 127.0.0.1: the server relays to
-- raw-socket UASes the spec plays, a raw-socket UAC calls through it. Only
-- 127.0.0.1 appears in the messages (the proxy sends where they say).
local here = debug.getinfo(1, "S").source:gsub("^@", ""):match("^(.*)/[^/]*$") or "."
local N = dofile(here .. "/support/net.lua")
local proxy = require "luasip.proxy"

local V4 = N.V4

-- A response to a parsed request: every Via, From, To (+ tag), Call-ID,
-- CSeq, extra header lines.
local function response(req, code, reason, extra, tag)
  local lines = { ("SIP/2.0 %d %s"):format(code, reason or "X") }
  for _, v in ipairs(req:all("Via")) do
    lines[#lines + 1] = "Via: " .. v
  end
  local to = req:get("To")
  if not to:find(";tag=", 1, true) and code > 100 then
    to = to .. ";tag=" .. (tag or "uas1")
  end
  lines[#lines + 1] = "From: " .. req:get("From")
  lines[#lines + 1] = "To: " .. to
  lines[#lines + 1] = "Call-ID: " .. req:get("Call-ID")
  lines[#lines + 1] = "CSeq: " .. req:get("CSeq")
  for _, h in ipairs(extra or {}) do
    lines[#lines + 1] = h
  end
  lines[#lines + 1] = "Content-Length: 0"
  return table.concat(lines, "\r\n") .. "\r\n\r\n"
end

-- The next message on a peer, parsed (nil after seconds).
local function next_msg(peer, seconds)
  local d = peer:recv(seconds or 2)
  return d and N.parse(d)
end

-- The next response with a final status on a peer (skips 1xx).
local function next_final(peer, seconds)
  local deadline = os.time() + (seconds or 3)
  while os.time() <= deadline do
    local m = next_msg(peer, 1)
    if m and m.status and m.status >= 200 then
      return m
    end
  end
  return nil
end

describe("luasip.proxy", function()
  local srv, port, uac, outcome

  local function setup(handler, opts)
    srv, port = nil, nil
    local l
    srv, l = N.server(opts)
    port = l.port
    uac = N.udp(V4)
    outcome = {}
    srv:on_request(function(req)
      return handler(req, outcome)
    end)
  end

  local function invite(t)
    t = t or {}
    t.method = t.method or "INVITE"
    t.uri = t.uri or ("sip:bob@127.0.0.1:" .. port)
    t.via_port = uac.port
    local bytes, call_id, branch = N.request(t)
    uac:send(bytes, V4, port)
    return call_id, branch, bytes
  end

  after_each(function()
    N.cleanup()
  end)

  it("relays an INVITE: Record-Route, Via with the loop hash, Max-Forwards, the 2xx back", function()
    local uas = N.udp(V4)
    setup(function(req, out)
      req:record_route()
      local res = proxy.relay(req, "sip:uas@127.0.0.1:" .. uas.port)
      out.status = res.status
    end)
    invite()
    local r = assert(next_msg(uas))
    assert.equal("INVITE sip:uas@127.0.0.1:" .. uas.port .. " SIP/2.0", r.start)
    local vias = r:all("Via")
    assert.equal(2, #vias)
    assert.truthy(vias[1]:match("^SIP/2%.0/UDP 127%.0%.0%.1:" .. port .. ";branch=z9hG4bK%x+%.[%w_%-]+$"))
    assert.equal("<sip:127.0.0.1:" .. port .. ";lr>", r:get("Record-Route"))
    assert.equal("69", r:get("Max-Forwards"))
    uas:send(response(r, 180, "Ringing"), V4, port)
    local ringing = assert(next_msg(uac))
    assert.equal(180, ringing.status)
    assert.equal(1, #ringing:all("Via"))
    uas:send(response(r, 200, "OK", { "Contact: <sip:uas@127.0.0.1:" .. uas.port .. ">" }), V4, port)
    local ok = assert(next_final(uac))
    assert.equal(200, ok.status)
    assert.equal(1, #ok:all("Via"))
    assert.truthy(N.pump_until(function()
      return outcome.status
    end))
    assert.equal(200, outcome.status)
  end)

  it("hooks see each branch's responses; false drops a provisional", function()
    local uas = N.udp(V4)
    local seen = {}
    setup(function(req)
      proxy.relay(req, "sip:uas@127.0.0.1:" .. uas.port, {
        on_provisional = function(res, branch)
          seen[#seen + 1] = "p" .. res.status .. "/" .. branch
          return false
        end,
        on_response = function(res, branch)
          seen[#seen + 1] = "f" .. res.status .. "/" .. branch
        end,
      })
    end)
    invite()
    local r = assert(next_msg(uas))
    uas:send(response(r, 183, "Progress"), V4, port)
    uas:send(response(r, 200, "OK"), V4, port)
    local first = assert(next_msg(uac))
    assert.equal(200, first.status) -- the 183 was dropped
    assert.same({ "p183/1", "f200/1" }, seen)
  end)

  it("serial forking by q, then a second relay from the handler (voicemail)", function()
    local a, b, vm = N.udp(V4), N.udp(V4), N.udp(V4)
    setup(function(req, out)
      local res = proxy.relay(req, {
        { uri = "sip:a@127.0.0.1:" .. a.port, q = 1.0 },
        { uri = "sip:b@127.0.0.1:" .. b.port, q = 0.5 },
      }, { fork = "serial" })
      out.first = res.status
      if res.status == 486 then
        res = proxy.relay(req, "sip:vm@127.0.0.1:" .. vm.port)
        out.second = res.status
      end
    end)
    invite()
    local ra = assert(next_msg(a))
    assert.is_nil(next_msg(b, 0.2)) -- b waits for a's group
    a:send(response(ra, 486, "Busy Here"), V4, port)
    local rb = assert(next_msg(b))
    b:send(response(rb, 486, "Busy Here"), V4, port)
    local rv = assert(next_msg(vm))
    assert.equal("INVITE sip:vm@127.0.0.1:" .. vm.port .. " SIP/2.0", rv.start)
    vm:send(response(rv, 200, "OK"), V4, port)
    local final = assert(next_final(uac))
    assert.equal(200, final.status) -- never the 486s
    assert.truthy(N.pump_until(function()
      return outcome.second
    end))
    assert.equal(486, outcome.first)
  end)

  it("forwards the best response when the handler ends: a 503 as 500", function()
    local uas = N.udp(V4)
    setup(function(req, out)
      out.status = proxy.relay(req, "sip:uas@127.0.0.1:" .. uas.port).status
    end)
    invite()
    local r = assert(next_msg(uas))
    uas:send(response(r, 503, "Service Unavailable"), V4, port)
    local final = assert(next_final(uac))
    assert.equal(500, final.status)
    assert.equal(503, outcome.status)
  end)

  it("a CANCEL from the caller cancels the pending branch; 487 back", function()
    local uas = N.udp(V4)
    setup(function(req, out)
      out.status = proxy.relay(req, "sip:uas@127.0.0.1:" .. uas.port).status
    end)
    local call_id, branch = invite()
    local r = assert(next_msg(uas))
    uas:send(response(r, 180, "Ringing"), V4, port)
    assert.equal(180, assert(next_msg(uac)).status)
    uac:send(N.request { method = "CANCEL", uri = "sip:bob@127.0.0.1:" .. port, call_id = call_id,
      branch = branch, via_port = uac.port, from = r:get("From"), to = "Bob <sip:bob@127.0.0.1>" }, V4, port)
    local c = assert(next_msg(uas))
    assert.equal("CANCEL", c.start:match("^(%u+)"))
    assert.equal(r:all("Via")[1], c:all("Via")[1]) -- the branch's Via
    uas:send(response(c, 200, "OK"), V4, port)
    uas:send(response(r, 487, "Request Terminated"), V4, port)
    local got = {}
    for _ = 1, 2 do
      local m = next_msg(uac)
      if m then
        got[#got + 1] = m.status .. " " .. m:get("CSeq")
      end
    end
    table.sort(got)
    assert.same({ "200 1 CANCEL", "487 1 INVITE" }, got)
    assert.equal(487, outcome.status)
  end)

  it("timeout: the pending branch is cancelled and the round ends with 408", function()
    local uas = N.udp(V4)
    setup(function(req, out)
      out.status = proxy.relay(req, "sip:uas@127.0.0.1:" .. uas.port, { timeout = 0.3 }).status
    end)
    invite()
    local r = assert(next_msg(uas))
    uas:send(response(r, 180, "Ringing"), V4, port)
    assert.equal(180, assert(next_msg(uac)).status)
    local c = assert(next_msg(uas, 3))
    assert.equal("CANCEL", c.start:match("^(%u+)"))
    local final = assert(next_final(uac))
    assert.equal(408, final.status)
    assert.equal(408, outcome.status)
  end)

  it("loose-routes in-dialog requests and forwards their ACK statelessly", function()
    local uas = N.udp(V4)
    setup(function(req, out)
      out[#out + 1] = req.method .. " " .. tostring(req:loose_route())
      return proxy.relay(req)
    end)
    local route = "Route: <sip:127.0.0.1:%d;lr>, <sip:127.0.0.1:%d;transport=tcp;lr>"
    local headers = { route:format(0, 0) }
    N.request {} -- (warm the unique counter)
    local target = "sip:uas@127.0.0.1:" .. uas.port
    headers[1] = route:format(port, port)
    local call_id = invite { method = "BYE", uri = target, to = "Bob <sip:bob@127.0.0.1>;tag=t1", headers = headers }
    local bye = assert(next_msg(uas))
    assert.equal("BYE " .. target .. " SIP/2.0", bye.start)
    assert.is_nil(bye:get("Route")) -- both of ours removed
    uas:send(response(bye, 200, "OK"), V4, port)
    assert.equal(200, assert(next_final(uac)).status)
    invite { method = "ACK", uri = target, call_id = call_id, to = "Bob <sip:bob@127.0.0.1>;tag=t1",
      headers = { route:format(port, port) } }
    local ack = assert(next_msg(uas))
    assert.equal("ACK " .. target .. " SIP/2.0", ack.start)
    assert.equal(2, #ack:all("Via"))
    assert.same({ "BYE true", "ACK true" }, outcome)
  end)

  it("Max-Forwards 0: relay answers 483 itself", function()
    local uas = N.udp(V4)
    setup(function(req, out)
      out.status = proxy.relay(req, "sip:uas@127.0.0.1:" .. uas.port).status
    end)
    invite { max_forwards = 0 }
    assert.equal(483, assert(next_final(uac)).status)
    assert.equal(483, outcome.status)
    assert.is_nil(next_msg(uas, 0.1))
  end)

  it("proxy.forward: stateless, one branch for a retransmission, the response comes back", function()
    local uas = N.udp(V4)
    setup(function(req)
      assert(proxy.forward(req, "sip:uas@127.0.0.1:" .. uas.port))
    end, { transactions = false })
    local _, _, bytes = invite { method = "OPTIONS" }
    local r1 = assert(next_msg(uas))
    uac:send(bytes, V4, port) -- a retransmission
    local r2 = assert(next_msg(uas))
    assert.equal(r1:all("Via")[1], r2:all("Via")[1])
    assert.equal("69", r1:get("Max-Forwards"))
    uas:send(response(r1, 200, "OK"), V4, port)
    local ok = assert(next_final(uac))
    assert.equal(200, ok.status)
    assert.equal(1, #ok:all("Via"))
  end)

  it("NAT helpers: received, is_private, fix_nated_contact, force_rport", function()
    setup(function(req, out)
      out.received = proxy.received(req)
      out.nated = proxy.is_nated(req)
      out.fixed = proxy.fix_nated_contact(req)
      out.contact = req:header("Contact")
      out.via = tostring(req.via[1])
      req:reply(200)
    end, { force_rport = true })
    invite { method = "OPTIONS", headers = { "Contact: <sip:alice@192.168.1.20:5062;transport=udp>;expires=60" } }
    assert.equal(200, assert(next_final(uac)).status)
    assert.equal("udp:127.0.0.1:" .. uac.port, outcome.received)
    assert.is_true(outcome.nated)
    assert.is_true(outcome.fixed)
    assert.equal("<sip:alice@127.0.0.1:" .. uac.port .. ";transport=udp>;expires=60", outcome.contact)
    assert.truthy(outcome.via:find(";rport=" .. uac.port, 1, true))
    assert.is_true(proxy.is_private("10.1.2.3"))
    assert.is_true(proxy.is_private("172.20.0.1"))
    assert.is_false(proxy.is_private("172.32.0.1"))
    assert.is_false(proxy.is_private("127.0.0.1"))
  end)
  it("is_flow_only: a Contact naming an .invalid host (any case), not a plain one, over UDP", function()
    local seen = {}
    setup(function(req)
      seen[#seen + 1] = proxy.is_flow_only(req)
      req:reply(200)
    end)
    for _, contact in ipairs { "<sip:alice@127.0.0.1:5062>", "<sip:alice@df7jal23ls0d.INVALID;transport=udp>",
      "<sip:alice@127.0.0.1:5062;x=invalid>" } do
      invite { method = "OPTIONS", headers = { "Contact: " .. contact } }
      assert.equal(200, assert(next_final(uac)).status)
    end
    assert.same({ false, true, false }, seen)
  end)
  it("is_flow_only and res:transport() on the responses the relay hooks get", function()
    local uas = N.udp(V4)
    local seen = {}
    local function look(res)
      seen[#seen + 1] = { res:transport(), proxy.is_flow_only(res) }
    end
    setup(function(req)
      req:record_route()
      proxy.relay(req, "sip:uas@127.0.0.1:" .. uas.port, { on_provisional = look, on_response = look })
    end)
    invite()
    local r = assert(next_msg(uas))
    uas:send(response(r, 180, "Ringing", { "Contact: <sip:bob@h7.invalid;transport=udp>" }), V4, port)
    assert.equal(180, assert(next_msg(uac)).status)
    uas:send(response(r, 200, "OK", { "Contact: <sip:bob@127.0.0.1:5062>" }), V4, port)
    assert.equal(200, assert(next_final(uac)).status)
    assert.same({ { "UDP", true }, { "UDP", false } }, seen)
  end)

  it("NAT: the callee's private Contact in its 180 and 200 is fixed in the relay hooks", function()
    local uas = N.udp(V4)
    local sources = {}
    local function fix(res)
      sources[#sources + 1] = proxy.received(res)
      if proxy.is_nated(res) then
        proxy.fix_nated_contact(res)
      end
    end
    setup(function(req)
      req:record_route()
      proxy.relay(req, "sip:uas@127.0.0.1:" .. uas.port, { on_provisional = fix, on_response = fix })
    end)
    invite()
    local r = assert(next_msg(uas))
    uas:send(response(r, 180, "Ringing", { "Contact: <sip:bob@10.0.0.7:5060>" }), V4, port)
    local ringing = assert(next_msg(uac))
    assert.equal(180, ringing.status)
    assert.equal("<sip:bob@127.0.0.1:" .. uas.port .. ">", ringing:get("Contact"))
    uas:send(response(r, 200, "OK", { "Contact: <sip:bob@192.168.0.7:5062;ob>;+sip.instance=\"<urn:x>\"" }), V4, port)
    local ok = assert(next_final(uac))
    assert.equal(200, ok.status)
    assert.equal("<sip:bob@127.0.0.1:" .. uas.port .. ";ob>;+sip.instance=\"<urn:x>\"", ok:get("Contact"))
    -- a response's source is where it came from, as for requests
    assert.same({ "udp:127.0.0.1:" .. uas.port, "udp:127.0.0.1:" .. uas.port }, sources)
  end)

  it("serial: a group that rings past branch_timeout is cancelled and the next starts", function()
    local a, b = N.udp(V4), N.udp(V4)
    setup(function(req, out)
      out.status = proxy.relay(req, {
        { uri = "sip:a@127.0.0.1:" .. a.port, q = 0.9 },
        { uri = "sip:b@127.0.0.1:" .. b.port, q = 0.1 },
      }, { fork = "serial", branch_timeout = 0.3 }).status
    end)
    invite()
    local ra = assert(next_msg(a))
    a:send(response(ra, 180, "Ringing"), V4, port)
    local c = assert(next_msg(a, 3))
    assert.equal("CANCEL", c.start:match("^(%u+)"))
    local rb = assert(next_msg(b))
    b:send(response(rb, 200, "OK"), V4, port)
    local got
    N.pump_until(function()
      local m = next_msg(uac, 0.1)
      if m and m.status and m.status >= 200 then
        got = m
      end
      return got
    end, 3)
    assert.equal(200, got and got.status)
    assert.truthy(N.pump_until(function()
      return outcome.status
    end))
    assert.equal(200, outcome.status)
  end)

  it("recurse: the Contacts of a 3xx become branches", function()
    local a, b = N.udp(V4), N.udp(V4)
    setup(function(req, out)
      out.status = proxy.relay(req, "sip:a@127.0.0.1:" .. a.port, { recurse = true }).status
    end)
    invite()
    local ra = assert(next_msg(a))
    a:send(response(ra, 302, "Moved", { "Contact: <sip:b@127.0.0.1:" .. b.port .. ">" }), V4, port)
    local rb = assert(next_msg(b))
    assert.equal("INVITE sip:b@127.0.0.1:" .. b.port .. " SIP/2.0", rb.start)
    b:send(response(rb, 200, "OK"), V4, port)
    assert.equal(200, assert(next_final(uac)).status)
  end)

  it("every response context is freed once its transactions end", function()
    local uas = N.udp(V4)
    setup(function(req)
      req:record_route()
      return proxy.relay(req, "sip:uas@127.0.0.1:" .. uas.port)
    end, { t1 = 10, t2 = 40, t4 = 50, timer_d = 100 })
    for i = 1, 3 do
      invite { call_id = "free-" .. i }
      local r = assert(next_msg(uas))
      uas:send(response(r, i == 2 and 486 or 200, "X"), V4, port)
      assert(next_final(uac))
    end
    assert.equal(3, srv:stats().proxy_relayed)
    N.pump_until(function()
      return srv:stats().txn_live == 0
    end, 5)
    assert.equal(0, srv:stats().txn_live)
    -- the handlers' requests hold their context until collected
    assert.truthy(N.pump_until(function()
      collectgarbage()
      return srv:stats().proxy_live_ctx == 0
    end, 5))
    assert.equal(0, srv:stats().proxy_ctx_bytes)
  end)
  it("closing the server with a relay in progress", function()
    local uas = N.udp(V4)
    setup(function(req, out)
      out.started = true
      out.res = proxy.relay(req, "sip:uas@127.0.0.1:" .. uas.port)
    end)
    invite()
    local r = assert(next_msg(uas))
    uas:send(response(r, 180, "Ringing"), V4, port)
    assert.equal(180, assert(next_msg(uac)).status)
    srv:close()
    N.pump_for(0.1)
    collectgarbage()
    N.pump_for(0.1)
    assert.is_true(outcome.started)
    assert.is_nil(outcome.res) -- never resumed: the server is gone
    assert.is_true(srv:is_closed())
  end)
end)
