-- luasip.dispatcher over real UDP sockets on 127.0.0.1: a server relays
-- through dispatcher.relay to raw-socket UASes the spec plays, a raw-socket
-- UAC sends through it. Only 127.0.0.1 appears in the messages.
local here = debug.getinfo(1, "S").source:gsub("^@", ""):match("^(.*)/[^/]*$") or "."
local N = dofile(here .. "/support/net.lua")
local dispatcher = require "luasip.dispatcher"

local V4 = N.V4

-- A response to a parsed request (every Via, From, To + tag, Call-ID, CSeq).
local function response(req, code)
  local lines = { ("SIP/2.0 %d X"):format(code) }
  for _, v in ipairs(req:all("Via")) do
    lines[#lines + 1] = "Via: " .. v
  end
  local to = req:get("To")
  if not to:find(";tag=", 1, true) then
    to = to .. ";tag=uas"
  end
  lines[#lines + 1] = "From: " .. req:get("From")
  lines[#lines + 1] = "To: " .. to
  lines[#lines + 1] = "Call-ID: " .. req:get("Call-ID")
  lines[#lines + 1] = "CSeq: " .. req:get("CSeq")
  lines[#lines + 1] = "Content-Length: 0"
  return table.concat(lines, "\r\n") .. "\r\n\r\n"
end

describe("luasip.dispatcher", function()
  local srv, port, uac, uases, finals

  -- n UASes; uas.status (default 200) answers each request, false: silent.
  -- Requests from the dispatcher's probes (From dispatcher@) are counted
  -- apart.
  local function start(n, set_opts, relay_opts, dests)
    local l
    srv, l = N.server()
    port = l.port
    uac = N.udp(V4)
    uases, finals = {}, {}
    local list = {}
    for i = 1, n do
      local u = N.udp(V4)
      u.status, u.count, u.probes, u.call_ids, u.branches = 200, 0, 0, {}, {}
      uases[i] = u
      list[i] = dests and dests[i] or { uri = "sip:127.0.0.1:" .. u.port }
      if dests then
        list[i].uri = "sip:127.0.0.1:" .. u.port
      end
    end
    set_opts = set_opts or {}
    set_opts.server = srv
    dispatcher.set("s", list, set_opts)
    srv:on_request(function(req)
      dispatcher.relay(req, "s", relay_opts or { timeout = 1 })
    end)
  end

  -- Answer whatever reached the UASes; collect the UAC's final responses.
  local function serve()
    for _, u in ipairs(uases) do
      u:poll()
      while #u.queue > 0 do
        local d = table.remove(u.queue, 1)
        local m = N.parse(d.data)
        if not m.status then
          if (m:get("From") or ""):find("dispatcher@", 1, true) then
            u.probes = u.probes + 1
            if u.probe_status then
              u:send(response(m, u.probe_status), V4, d.port)
            end
          else
            local branch = m:get("Via"):match("branch=([^;,%s]+)")
            if not u.branches[branch] then -- not a retransmission
              u.branches[branch] = true
              u.count = u.count + 1
            end
            u.call_ids[m:get("Call-ID")] = true
            if u.status then
              u:send(response(m, u.status), V4, d.port)
            end
          end
        end
      end
    end
    uac:poll()
    while #uac.queue > 0 do
      local d = table.remove(uac.queue, 1)
      local m = N.parse(d.data)
      if m.status and m.status >= 200 then
        finals[#finals + 1] = m
      end
    end
  end

  local function send(call_id)
    local bytes = N.request { method = "MESSAGE", uri = "sip:bob@127.0.0.1:" .. port, via_port = uac.port,
      call_id = call_id }
    uac:send(bytes, V4, port)
  end

  -- Send count requests one after the other, each waiting for its final.
  local function send_many(count, call_id_of)
    for i = 1, count do
      local want = #finals + 1
      send(call_id_of and call_id_of(i))
      assert(N.pump_until(function()
        serve()
        return #finals >= want
      end, 5), "no final response for request " .. i)
    end
  end

  local function counts()
    local t = {}
    for i, u in ipairs(uases) do
      t[i] = u.count
    end
    return t
  end

  local function state(i)
    return dispatcher.list()[1].dests[i].state
  end

  after_each(function()
    dispatcher.reset()
    N.cleanup()
  end)

  it("round robin spreads requests evenly", function()
    start(3)
    send_many(30)
    assert.same({ 10, 10, 10 }, counts())
    for _, f in ipairs(finals) do
      assert.equal(200, f.status)
    end
  end)

  it("weighted: shares follow the weights exactly over each cycle", function()
    start(3, { algorithm = "weighted" }, nil, { { weight = 3 }, { weight = 1 }, { weight = 1 } })
    send_many(50)
    assert.same({ 30, 10, 10 }, counts())
  end)

  it("hash_callid: one Call-ID always goes to the same destination", function()
    start(3, { algorithm = "hash_callid" })
    send_many(10, function()
      return "sticky-call@127.0.0.1"
    end)
    local c = counts()
    table.sort(c)
    assert.same({ 0, 0, 10 }, c)
    -- different Call-IDs reach more than one destination
    send_many(30, function(i)
      return "call-" .. i .. "@127.0.0.1"
    end)
    local used = 0
    for _, u in ipairs(uases) do
      if next(u.call_ids) and u.count > 0 then
        used = used + 1
      end
    end
    assert.is_true(used >= 2)
  end)

  it("fails over on a 5xx to the next destination", function()
    start(2, { algorithm = "priority" }, nil, { { priority = 0 }, { priority = 1 } })
    uases[1].status = 503
    send_many(3)
    assert.same({ 3, 3 }, counts())
    for _, f in ipairs(finals) do
      assert.equal(200, f.status)
    end
    assert.equal(3, dispatcher.stats().failovers)
    assert.equal("up", state(1)) -- a 5xx means it is alive
  end)

  it("fails over when a destination does not answer, and marks it down", function()
    start(2, { algorithm = "priority", down_after = 2 }, { timeout = 0.3 },
      { { priority = 0 }, { priority = 1 } })
    uases[1].status = false
    send_many(1)
    assert.equal(200, finals[1].status)
    assert.equal("probing", state(1))
    -- probing: tried only when no destination is up
    send_many(2)
    assert.same({ 1, 3 }, counts())
    dispatcher.admin("s", 2, "down")
    send_many(1)
    assert.same({ 2, 3 }, counts())
    assert.equal(408, finals[4].status)
    assert.equal("down", state(1))
    -- down: not tried any more
    send_many(1)
    assert.equal(503, finals[5].status)
    assert.same({ 2, 3 }, counts())
    for i = 1, 3 do
      assert.equal(200, finals[i].status)
    end
  end)

  it("probes: down after N failures, probing, then up after M successes", function()
    start(2, { probe = { interval = 0.1, timeout = 0.2, down_after = 2, up_after = 2 } })
    uases[1].probe_status = 200
    uases[2].probe_status = nil -- silent: times out
    assert(N.pump_until(function()
      serve()
      return state(2) == "down"
    end, 3), "destination 2 never went down")
    assert.equal("up", state(1))
    local l = dispatcher.list()[1]
    assert.equal(1, l.transitions.up_probing)
    assert.equal(1, l.transitions.probing_down)
    -- traffic goes to the live one only
    send_many(4)
    assert.same({ 4, 0 }, counts())
    -- it comes back: an answer that is not 2xx still means alive
    uases[2].probe_status = 404
    assert(N.pump_until(function()
      serve()
      return state(2) == "probing"
    end, 3), "destination 2 never answered")
    assert(N.pump_until(function()
      serve()
      return state(2) == "up"
    end, 3), "destination 2 never came back up")
    assert.equal(1, dispatcher.list()[1].transitions.down_probing)
    assert.equal(1, dispatcher.list()[1].transitions.probing_up)
  end)

  it("a probe answered with a dead code counts as a failure", function()
    start(1, { probe = { interval = 0.1, timeout = 1, down_after = 1, dead = { 503 } } })
    uases[1].probe_status = 503
    assert(N.pump_until(function()
      serve()
      return state(1) == "down"
    end, 3))
  end)

  it("admin down disables a destination (no traffic, no probes) until admin up", function()
    start(2)
    assert(dispatcher.admin("s", "sip:127.0.0.1:" .. uases[1].port, "down"))
    assert.equal("disabled", state(1))
    send_many(4)
    assert.same({ 0, 4 }, counts())
    assert(dispatcher.admin("s", 1, "up"))
    assert.equal("up", state(1))
    send_many(2)
    assert.same({ 1, 5 }, counts())
    assert.is_nil(dispatcher.admin("s", "sip:nobody@127.0.0.1", "down"))
    assert.is_nil(dispatcher.admin("nope", 1, "down"))
  end)

  it("no usable destination: 503", function()
    start(1)
    dispatcher.admin("s", 1, "down")
    send_many(1)
    assert.equal(503, finals[1].status)
    assert.equal(0, uases[1].count)
    assert.equal(1, dispatcher.stats().no_destination)
  end)

  it("declaring a set again keeps the state of the destinations that stay", function()
    start(2)
    dispatcher.admin("s", 2, "down")
    local ds = dispatcher.list()[1].dests
    dispatcher.set("s", { { uri = ds[2].uri }, { uri = "sip:127.0.0.1:9" } })
    local l = dispatcher.list()
    assert.equal(1, #l)
    assert.equal("disabled", l[1].dests[1].state)
    assert.equal("up", l[1].dests[2].state)
  end)

  it("refuses bad sets", function()
    assert.has_error(function()
      dispatcher.set("x", {})
    end)
    assert.has_error(function()
      dispatcher.set("x", { "sip:127.0.0.1" }, { algorithm = "random" })
    end)
    assert.has_error(function()
      dispatcher.set("x", { { uri = "not a uri" } })
    end)
    assert.has_error(function()
      dispatcher.set("x", { { uri = "sip:127.0.0.1", weight = -1 } })
    end)
  end)
end)
