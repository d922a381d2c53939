-- SUBSCRIBE/NOTIFY (RFC 6665, luasip.ua.event): two luasip UAs in one
-- process on 127.0.0.1 (T1 = 10 ms, every wait bounded), directly and
-- through `luasip run examples/proxy.lua`: subscribe and the first
-- NOTIFY, a state change, refresh, termination by either side, expiry,
-- no NOTIFY (Timer N), 489 / 400 / 423 / 481 for bad requests.
local here = debug.getinfo(1, "S").source:gsub("^@", ""):match("^(.*)/[^/]*$") or "."
local N = dofile(here .. "/support/net.lua")
local U = dofile(here .. "/support/ua.lua")(N)
local P = dofile(here .. "/support/proc.lua")
local sip = require "luasip"
local event = require "luasip.ua.event"

local server, addr, run = U.server, U.addr, U.run
local new_ua = U.ua -- a UA answering requests with u:handle (405 for the rest)

-- alice subscribes to bob's "presence" (status in bob.status)
local function pair(opts)
  local alice, bob = new_ua(), new_ua()
  bob.status = "open"
  bob.seen = {}
  bob.pkg = bob:on_subscribe("presence", function(sub, req)
    bob.seen[#bob.seen + 1] = sub
    if opts and opts.policy then
      return opts.policy(sub, req)
    end
    sub:notify { state = "active", body = bob.status, type = "text/plain" }
  end, opts and opts.package)
  return alice, bob, "sip:bob@" .. addr(bob.srv)
end

-- A raw request from a plain server to uri: its final response.
local function raw(method, uri, headers)
  local srv = server()
  return run(function()
    local req = assert(sip.request { method = method, uri = uri, to = uri, from = "sip:x@127.0.0.1",
      contact = "<sip:x@" .. addr(srv) .. ">", headers = headers })
    return srv:send(req)
  end)
end

describe("luasip.ua.event: header syntax", function()
  it("parses Event and Subscription-State", function()
    assert.same({ "presence" }, { event.parse_event("Presence") })
    assert.same({ "refer", "93809824" }, { event.parse_event("refer;id=93809824") })
    assert.same({ "dialog", "a" }, { event.parse_event(" dialog ; foo ; id=a") })
    assert.is_nil(event.parse_event("pres ence"))
    assert.is_nil(event.parse_event(";id=1"))
    assert.is_nil(event.parse_event("refer;id="))
    assert.same({ state = "active", expires = 60 }, event.parse_state("active;expires=60"))
    assert.same({ state = "terminated", reason = "timeout", retry_after = 5 },
      event.parse_state("Terminated; reason=Timeout; retry-after=5"))
    assert.is_nil(event.parse_state("active;expires=soon"))
    assert.is_nil(event.parse_state(""))
  end)
end)

describe("luasip.ua.event: SUBSCRIBE/NOTIFY between two luasip UAs (T1 = 10 ms)", function()
  after_each(function()
    N.cleanup()
    P.cleanup()
  end)

  it("subscribes, gets the first NOTIFY, a change, and ends by unsubscribing", function()
    local alice, bob, uri = pair()
    local sub, res = run(function()
      return alice:subscribe { to = uri, event = "presence", expires = 60, accept = "text/plain" }
    end)
    assert.is_truthy(sub, res and tostring(res))
    assert.equal(200, res.status)
    assert.equal("60", res:header("Expires"))
    local n = run(function() return sub:wait_notify(2) end)
    assert.equal("active", n.state)
    assert.equal("open", n.body)
    assert.equal("text/plain", n.type)
    assert.is_true(n.expires > 55 and n.expires <= 60)
    assert.equal("active", sub.state)
    assert.equal(1, alice:count())
    assert.equal(1, bob:count())
    -- a change of state, to every subscriber
    assert.equal(1, bob.pkg:notify_all { body = "away" })
    n = run(function() return sub:wait_notify(2) end)
    assert.equal("away", n.body)
    assert.equal("active", n.state)
    -- unsubscribe: Expires: 0, the last NOTIFY (terminated), both dialogs gone
    n = run(function() return sub:unsubscribe(2) end)
    assert.equal("terminated", n.state)
    assert.equal("timeout", n.reason)
    assert.equal("away", n.body)
    assert.equal("terminated", sub.state)
    assert.truthy(N.pump_until(function() return bob:count() == 0 end, 2))
    assert.equal(0, alice:count())
    assert.equal(0, #bob.pkg:each())
  end)

  it("works over TCP: subscribe, NOTIFY over the notifier's connection, unsubscribe", function()
    local function tcp_ua()
      local srv = N.server { t1 = 10, t2 = 40, t4 = 50, listen = { "tcp:127.0.0.1:0" } }
      return new_ua(srv)
    end
    local alice, bob = tcp_ua(), tcp_ua()
    bob:on_subscribe("presence", function(sub)
      sub:notify { state = "active", body = "tcp", type = "text/plain" }
    end)
    local uri = "sip:bob@" .. bob.srv:listeners()[1]:match("^tcp:(.*)$") .. ";transport=tcp"
    local sub = assert(run(function()
      return alice:subscribe { to = uri, event = "presence", expires = 60 }
    end))
    assert.equal("tcp", run(function() return sub:wait_notify(2) end).body)
    assert.equal("terminated", run(function() return sub:unsubscribe(2) end).state)
  end)

  it("keeps the last 32 NOTIFYs for wait_notify when only on_notify reads them; two waiters see the end", function()
    local alice, bob, uri = pair()
    local seen = 0
    local sub = assert(run(function()
      return alice:subscribe { to = uri, event = "presence", expires = 60, on_notify = function() seen = seen + 1 end }
    end))
    run(function()
      for i = 1, 40 do
        assert.equal(200, bob.seen[1]:notify { body = tostring(i) }.status)
      end
    end, 5)
    assert.equal(41, seen)
    assert.equal(32, #sub.queue)
    assert.equal("40", sub.last.body)
    sub.queue = {}
    local ends = {}
    for i = 1, 2 do
      require("luasip").spawn(function()
        local n, why = sub:wait_notify(3)
        ends[i] = n and n.state or why
      end)
    end
    run(function() return bob.seen[1]:terminate() end)
    assert.truthy(N.pump_until(function() return ends[1] and ends[2] end, 2))
    assert.same({ "terminated", "terminated" }, ends)
  end)

  it("refreshes before expiry; the notifier answers each refresh with a NOTIFY", function()
    local alice, bob, uri = pair()
    local sub = assert(run(function()
      return alice:subscribe { to = uri, event = "presence", expires = 1 }
    end))
    assert.equal("open", run(function() return sub:wait_notify(2) end).body)
    -- the refresh at 0.5 s: bob sends a NOTIFY for it; past the first
    -- expiry (1 s) the subscription lives on
    local n = run(function() return sub:wait_notify(2) end)
    assert.equal("active", n.state)
    assert.equal("open", n.body)
    N.pump_for(0.7)
    assert.equal("active", sub.state)
    assert.equal(1, #bob.pkg:each())
    run(function() return sub:unsubscribe(2) end)
    assert.equal(0, #bob.pkg:each())
  end)

  it("ends at expiry when not refreshed: the notifier's NOTIFY terminated;reason=timeout", function()
    local alice, bob, uri = pair()
    local sub = assert(run(function()
      return alice:subscribe { to = uri, event = "presence", expires = 1, auto_refresh = false }
    end))
    assert.equal("active", run(function() return sub:wait_notify(2) end).state)
    local n = run(function() return sub:wait_notify(3) end)
    assert.equal("terminated", n.state)
    assert.equal("timeout", n.reason)
    assert.equal("terminated", sub.state)
    assert.truthy(N.pump_until(function() return bob:count() == 0 and alice:count() == 0 end, 2))
  end)

  it("ends by the notifier: NOTIFY terminated with a reason; the subscriber's wait sees it", function()
    local alice, bob, uri = pair()
    local ended
    local sub = assert(run(function()
      return alice:subscribe { to = uri, event = "presence", expires = 60,
        on_end = function(_, why) ended = why end }
    end))
    run(function() return sub:wait_notify(2) end)
    local res = run(function() return bob.seen[1]:terminate("rejected") end)
    assert.equal(200, res.status)
    local n = run(function() return sub:wait_notify(2) end)
    assert.equal("terminated", n.state)
    assert.equal("rejected", n.reason)
    assert.same({ nil, "terminated", "rejected" }, { run(function() return sub:wait_notify(1) end) })
    assert.equal("rejected", ended)
    assert.equal(0, alice:count())
    assert.equal(0, bob:count())
  end)

  it("malformed requests within a subscription: 400, and the subscription goes on", function()
    local alice, bob, uri = pair()
    local sub = assert(run(function()
      return alice:subscribe { to = uri, event = "presence", expires = 60 }
    end))
    run(function() return sub:wait_notify(2) end)
    local n = bob.seen[1]
    -- a NOTIFY without Subscription-State, or with a bad one
    local res = run(function() return n.d:request("NOTIFY", { headers = { { "Event", "presence" } } }) end)
    assert.equal(400, res.status)
    res = run(function()
      return n.d:request("NOTIFY", { headers = { { "Event", "presence" }, { "Subscription-State", ";;" } } })
    end)
    assert.equal(400, res.status)
    -- a NOTIFY with a bad Event: 400
    res = run(function()
      return n.d:request("NOTIFY", { headers = { { "Event", "a b" }, { "Subscription-State", "active" } } })
    end)
    assert.equal(400, res.status)
    -- a refresh with a bad Expires
    res = run(function()
      return sub.d:request("SUBSCRIBE", { headers = { { "Event", "presence" }, { "Expires", "-1" } } })
    end)
    assert.equal(400, res.status)
    assert.equal("active", sub.state)
    assert.equal(1, #bob.pkg:each())
    bob.pkg:notify_all { body = "still" }
    assert.equal("still", run(function() return sub:wait_notify(2) end).body)
    -- a NOTIFY of another package in the dialog: 481 (which ends the
    -- dialog at the sender, §12.2.1.2: its subscription with it)
    res = run(function()
      return n.d:request("NOTIFY", { headers = { { "Event", "dialog" }, { "Subscription-State", "active" } } })
    end)
    assert.equal(481, res.status)
    assert.is_nil(run(function() return n:notify { body = "gone" } end))
    assert.equal("terminated", n.state)
    assert.equal(0, #bob.pkg:each())
  end)

  it("a subscription whose server closed ends quietly at its next refresh or NOTIFY", function()
    local alice, bob, uri = pair()
    local sub = assert(run(function()
      return alice:subscribe { to = uri, event = "presence", expires = 60 }
    end))
    run(function() return sub:wait_notify(2) end)
    local n = bob.seen[1]
    alice.srv:close()
    bob.srv:close()
    local a, b, c = run(function() return sub:refresh() end)
    assert.same({ nil, "subscription: its dialog is over", "TERMINATED" }, { a, b, c })
    assert.equal("terminated", sub.state)
    assert.is_nil(run(function() return n:notify { body = "x" } end))
    assert.equal("terminated", n.state)
  end)

  it("subscribes within a call's dialog; its end leaves the call up", function()
    local alice, bob, uri = pair()
    bob.srv:on_request(function(req)
      if bob:handle(req) then
        return
      end
      bob.call = bob:answer(req)
    end)
    local d = assert(run(function() return alice:invite { to = uri } end))
    local sub, res = run(function()
      return alice:subscribe { dialog = d, event = "presence", expires = 60 }
    end)
    assert.is_truthy(sub, res and tostring(res))
    assert.equal(200, res.status)
    assert.equal("open", run(function() return sub:wait_notify(2) end).body)
    assert.equal(d, sub.d)
    assert.equal("terminated", run(function() return sub:unsubscribe(2) end).state)
    assert.equal("confirmed", d:state())
    assert.equal("confirmed", bob.call:state())
    assert.equal(0, #bob.pkg:each())
    assert.equal(200, run(function() return d:bye() end).status)
  end)

  it("a 202 and a pending state, then active", function()
    local alice, bob, uri = pair { policy = function(sub)
      sub:accept(202)
    end }
    local sub, res = run(function()
      return alice:subscribe { to = uri, event = "presence", expires = 60 }
    end)
    assert.equal(202, res.status)
    local n = run(function() return sub:wait_notify(2) end)
    assert.equal("pending", n.state)
    assert.equal("pending", sub.state)
    run(function() return bob.seen[1]:notify { state = "active", body = "open" } end)
    n = run(function() return sub:wait_notify(2) end)
    assert.equal("active", n.state)
    assert.equal("open", n.body)
  end)

  it("a refused subscription: the handler's status, no dialog left", function()
    local alice, bob, uri = pair { policy = function() return 403, "Not Allowed" end }
    local sub, res = run(function()
      return alice:subscribe { to = uri, event = "presence" }
    end)
    assert.is_nil(sub)
    assert.equal(403, res.status)
    assert.equal(0, alice:count())
    assert.equal(0, bob:count())
  end)

  it("a notifier handler's error: 500, no subscription or dialog left", function()
    local alice, bob, uri = pair { policy = function() error("boom") end }
    local sub, res = run(function()
      return alice:subscribe { to = uri, event = "presence" }
    end)
    assert.is_nil(sub)
    assert.equal(500, res.status)
    assert.equal(0, bob:count())
    assert.equal(0, #bob.pkg:each())
    assert.equal(0, alice:count())
  end)

  it("ends when no NOTIFY comes after the 2xx (Timer N)", function()
    local alice = new_ua()
    -- a notifier that answers 200 and never notifies
    local mute = server()
    mute:on_request(function(req)
      req:reply(200, nil, { Contact = "<sip:mute@" .. addr(mute) .. ">", Expires = "60" })
    end)
    local sub = assert(run(function()
      return alice:subscribe { to = "sip:mute@" .. addr(mute), event = "presence", notify_timeout = 0.3 }
    end))
    local a, b, c = run(function() return sub:wait_notify(2) end)
    assert.same({ nil, "terminated", "timeout" }, { a, b, c })
    assert.equal(0, alice:count())
  end)

  it("takes a NOTIFY that comes before the SUBSCRIBE's 2xx", function()
    local alice = new_ua()
    local slow = server()
    local us = "<sip:slow@" .. addr(slow) .. ">"
    slow:on_request(function(req)
      -- NOTIFY first (its own client transaction), then the 2xx
      local dlg = assert(slow:dialog_uas(req, us))
      local notify = assert(sip.parse(dlg:request("NOTIFY", "Event: presence\r\n"
        .. "Subscription-State: active;expires=60\r\nContent-Type: text/plain\r\n", "early")))
      sip.spawn(function() slow:send(notify) end)
      sip.sleep(0.1)
      req:reply(200, nil, { Contact = us, Expires = "60" })
      dlg:close()
    end)
    local sub = assert(run(function()
      return alice:subscribe { to = "sip:slow@" .. addr(slow), event = "presence" }
    end))
    local n = run(function() return sub:wait_notify(2) end)
    assert.equal("early", n.body)
    assert.equal("active", sub.state)
  end)

  it("answers bad requests: 489 unknown package or no Event, 400 bad Event or Expires, 423, 481", function()
    local _, bob, uri = pair { package = { min_expires = 30 } }
    local res = raw("SUBSCRIBE", uri, { { "Event", "dialog" } })
    assert.equal(489, res.status)
    assert.equal("presence", res:header("Allow-Events"))
    assert.equal(489, raw("SUBSCRIBE", uri, {}).status)
    res = raw("SUBSCRIBE", uri, { { "Event", "pres ence;;" } })
    assert.equal(400, res.status)
    assert.matches("Event", res.reason)
    res = raw("SUBSCRIBE", uri, { { "Event", "presence" }, { "Expires", "soon" } })
    assert.equal(400, res.status)
    assert.matches("Expires", res.reason)
    res = raw("SUBSCRIBE", uri, { { "Event", "presence" }, { "Expires", "99999999999999999999" } })
    assert.equal(400, res.status)
    res = raw("SUBSCRIBE", uri, { { "Event", "presence" }, { "Expires", "5" } })
    assert.equal(423, res.status)
    assert.equal("30", res:header("Min-Expires"))
    -- a NOTIFY of no subscription: 481, with or without a To tag
    assert.equal(481, raw("NOTIFY", uri, { { "Event", "presence" },
      { "Subscription-State", "active" } }).status)
    local srv = server()
    res = run(function()
      local req = assert(sip.request { method = "NOTIFY", uri = uri, to = uri .. ";tag=nosuch",
        from = "sip:x@127.0.0.1", contact = "<sip:x@" .. addr(srv) .. ">",
        headers = { { "Event", "presence" }, { "Subscription-State", "active" } } })
      return srv:send(req)
    end)
    assert.equal(481, res.status)
    assert.equal(0, bob:count())
    -- bob still serves a good SUBSCRIBE
    assert.equal(200, raw("SUBSCRIBE", uri, { { "Event", "presence" }, { "Expires", "0" } }).status)
  end)

  it("subscribes through examples/proxy.lua: subscribe, notify, refresh, terminate", function()
    local proxy = P.start({ "run", "examples/proxy.lua", "--listen", "udp:127.0.0.1:0", "--domain", "example.com" })
    local pport = assert(proxy:port("udp"), proxy:log())
    local via = "udp:127.0.0.1:" .. pport
    local alice, bob = pair()
    -- bob registers its contact with the proxy's registrar
    local register = require "luasip.ua.register"
    local reg = register.register { server = bob.srv, registrar = "sip:example.com", dest = via,
      aor = "sip:bob@example.com", contact = bob.contact, expires = 60 }
    assert.equal("registered", run(function() return reg:wait("registered", 3) end))
    local sub, res = run(function()
      return alice:subscribe { to = "sip:bob@example.com", event = "presence", expires = 60, dest = via }
    end)
    assert.is_truthy(sub, res and tostring(res))
    -- the proxy record-routed: the dialog's requests go through it
    local info = sub.d:details()
    assert.equal(1, #info.routes)
    assert.matches(tostring(pport), info.routes[1])
    assert.equal("open", run(function() return sub:wait_notify(2) end).body)
    res = run(function() return sub:refresh(60) end)
    assert.equal(200, res.status)
    assert.equal("open", run(function() return sub:wait_notify(2) end).body)
    bob.pkg:notify_all { body = "busy" }
    assert.equal("busy", run(function() return sub:wait_notify(2) end).body)
    local n = run(function() return sub:unsubscribe(2) end)
    assert.equal("terminated", n.state)
    assert.truthy(N.pump_until(function() return bob:count() == 0 end, 2))
    -- expiry through the proxy: the notifier's NOTIFY terminated;reason=timeout
    local short = assert(run(function()
      return alice:subscribe { to = "sip:bob@example.com", event = "presence", expires = 1, dest = via,
        auto_refresh = false }
    end))
    assert.equal("open", run(function() return short:wait_notify(2) end).body)
    n = run(function() return short:wait_notify(3) end)
    assert.equal("terminated", n.state)
    assert.equal("timeout", n.reason)
    assert.truthy(N.pump_until(function() return bob:count() == 0 and alice:count() == 0 end, 2))
    run(function() return reg:unregister() end)
  end)
  it("examples/presence.lua: PIDF or text per Accept, a MESSAGE changes the status for every subscriber", function()
    local pres = P.start({ "run", "examples/presence.lua", "--listen", "udp:127.0.0.1:0", "--status", "open" })
    local port = assert(pres:port("udp"), pres:log())
    local uri = "sip:alice@127.0.0.1:" .. port
    local u = new_ua()
    local pidf = assert(run(function()
      return u:subscribe { to = uri, event = "presence", expires = 60, accept = "application/pidf+xml" }
    end))
    local n = run(function() return pidf:wait_notify(2) end)
    assert.equal("application/pidf+xml", n.type)
    assert.matches("<basic>open</basic>", n.body, 1, true)
    local text = assert(run(function() return u:subscribe { to = uri, event = "presence", expires = 60 } end))
    assert.equal("open", run(function() return text:wait_notify(2) end).body)
    -- a MESSAGE sets the status: both get a NOTIFY
    local message = require "luasip.ua.message"
    local res = run(function()
      return message.message { server = u.srv, to = uri, from = "sip:admin@127.0.0.1", body = "closed" }
    end)
    assert.equal(200, res.status)
    n = run(function() return pidf:wait_notify(2) end)
    assert.matches("<basic>closed</basic>", n.body, 1, true)
    assert.equal("closed", run(function() return text:wait_notify(2) end).body)
    assert.truthy(pres:wait_log("presence: closed %(2 subscribers%)", 2), pres:log())
    -- another package: 489
    local sub, r = run(function() return u:subscribe { to = uri, event = "dialog" } end)
    assert.is_nil(sub)
    assert.equal(489, r.status)
    assert.equal("terminated", run(function() return text:unsubscribe(2) end).state)
    assert.equal("terminated", run(function() return pidf:unsubscribe(2) end).state)
  end)
end)
