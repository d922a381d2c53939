-- Issue [wire] item 3: GRUUs (RFC 5627) are issued and routed. A UA
-- registers with +sip.instance and Supported: gruu through
-- examples/proxy.lua (in this process, over 127.0.0.1), gets a pub-gruu and
-- a temp-gruu, then an in-dialog ACK and BYE whose Request-URI (the remote
-- target) is each GRUU must reach the UA's registered contact, with and
-- without a Route to the proxy, through the example's routing and through
-- a bare `proxy.relay(req)`.
--
-- The proxy sends where messages say: run only by spec/netns/gruu.sh, in a
-- network namespace that has nothing but loopback (the GRUU host is
-- example.invalid, the contacts are 127.0.0.1).
local here = debug.getinfo(1, "S").source:gsub("^@", ""):match("^(.*)/[^/]*$") or "."
local N = dofile(here .. "/../support/net.lua")
local host = dofile(here .. "/../support/script_host.lua")
local proxy = require "luasip.proxy"
local registrar = require "luasip.registrar"

local V4 = N.V4
local DOMAIN = "example.invalid"

-- A 200 to a request parsed by N.parse.
local function ok_for(req)
  local lines = { "SIP/2.0 200 OK" }
  for _, v in ipairs(req:all("Via")) do
    lines[#lines + 1] = "Via: " .. v
  end
  for _, h in ipairs { "From", "To", "Call-ID", "CSeq" } do
    lines[#lines + 1] = h .. ": " .. req:get(h)
  end
  lines[#lines + 1] = "Content-Length: 0"
  return table.concat(lines, "\r\n") .. "\r\n\r\n"
end

-- The next request on a peer (skipping nothing: there is nothing else).
local function next_request(peer)
  local d = peer:recv(3)
  return d and N.parse(d)
end

describe("[wire] item 3: GRUU routing (RFC 5627 §5.5)", function()
  after_each(function()
    N.cleanup()
  end)

  -- The proxy: examples/proxy.lua (opts: script options), or with
  -- bare = true a handler that only loose-routes and relays in-dialog
  -- requests (the REGISTERs still go to the registrar).
  local function start(opts)
    local srv = host.load(here .. "/../../examples/proxy.lua",
      { listen = { "udp:127.0.0.1:0" }, options = opts.options })
    finally(function()
      srv:close()
    end)
    if opts.bare then
      srv:on_request(function(req)
        if req.method == "REGISTER" then
          return registrar.save(req, { domains = { DOMAIN } })
        end
        if not req:is_initial() then
          req:loose_route()
          return proxy.relay(req)
        end
        req:reply(404)
      end)
    end
    return srv, srv:listener(0)
  end

  -- Register ua (a UDP peer) as alice@DOMAIN with an instance; returns
  -- the pub-gruu and temp-gruu of the 200.
  local function register(l, ua, user, instance)
    local aor = "<sip:" .. user .. "@" .. DOMAIN .. ">"
    ua:send(N.request {
      method = "REGISTER", uri = "sip:" .. DOMAIN, to = aor, from = aor .. ";tag=r1",
      via_port = ua.port,
      headers = {
        ("Contact: <sip:%s@127.0.0.1:%d>;+sip.instance=\"<%s>\""):format(user, ua.port, instance),
        "Supported: gruu", "Expires: 300",
      },
    }, l.host, l.port)
    local r = N.parse(assert(ua:recv(3), "no answer to the REGISTER"))
    assert.are.equal(200, r.status, r.start)
    local c = r:get("Contact")
    local pub = c:match('pub%-gruu="([^"]+)"')
    local temp = c:match('temp%-gruu="([^"]+)"')
    assert.is_truthy(pub, c)
    assert.is_truthy(temp, c)
    return pub, temp
  end

  -- An in-dialog request from the caller to target through the proxy.
  local function in_dialog(l, caller, method, target, route, cseq)
    local headers = {}
    if route then
      headers[1] = ("Route: <sip:127.0.0.1:%d;lr>"):format(l.port)
    end
    caller:send(N.request {
      method = method, uri = target, via_port = caller.port, call_id = "dlg" .. target:gsub("[^%w]", ""),
      from = "<sip:bob@127.0.0.1>;tag=caller1", to = "<sip:alice@" .. DOMAIN .. ">;tag=callee1",
      cseq = cseq, cseq_method = method, headers = headers,
    }, l.host, l.port)
  end

  local configs = {
    { name = "examples/proxy.lua --domain " .. DOMAIN, options = { domain = DOMAIN } },
    { name = "examples/proxy.lua (any domain)", options = {} },
    { name = "a bare proxy.relay(req)", options = { domain = DOMAIN }, bare = true },
  }
  for _, cfg in ipairs(configs) do
    for _, route in ipairs { true, false } do
      it(("%s: ACK and BYE to the pub-gruu and the temp-gruu reach the contact (%s Route)")
        :format(cfg.name, route and "with a" or "without"), function()
        local _, l = start(cfg)
        local ua, caller = N.udp(V4), N.udp(V4)
        local user = (N.unique("alice"):gsub("%.", "x"))
        local pub, temp = register(l, ua, user, "urn:uuid:" .. N.unique("i"))
        local contact = ("sip:%s@127.0.0.1:%d"):format(user, ua.port)
        for _, target in ipairs { pub, temp } do
          in_dialog(l, caller, "ACK", target, route, 1)
          local ack = next_request(ua)
          assert.is_truthy(ack, "the ACK to " .. target .. " did not reach the UA")
          assert.are.equal("ACK " .. contact .. " SIP/2.0", ack.start)
          in_dialog(l, caller, "BYE", target, route, 2)
          local bye = next_request(ua)
          assert.is_truthy(bye, "the BYE to " .. target .. " did not reach the UA")
          assert.are.equal("BYE " .. contact .. " SIP/2.0", bye.start)
          assert.is_nil(bye:get("Route"))
          ua:send(ok_for(bye), V4, l.port)
          local res = N.parse(assert(caller:recv(3), "no 200 for the BYE"))
          assert.are.equal(200, res.status)
        end
        assert.are.equal(0, caller:pending())
      end)
    end
  end

  it("a GRUU of the served domain that names nothing: 404 (temp-gruu), 480 (pub-gruu)", function()
    local _, l = start { options = { domain = DOMAIN } }
    local ua, caller = N.udp(V4), N.udp(V4)
    local user = (N.unique("alice"):gsub("%.", "x"))
    register(l, ua, user, "urn:uuid:" .. N.unique("i"))
    in_dialog(l, caller, "BYE", "sip:tgruu.nosuchbase.1@" .. DOMAIN .. ";gr", false, 2)
    assert.are.equal(404, N.parse(assert(caller:recv(3))).status)
    in_dialog(l, caller, "BYE", ("sip:%s@%s;gr=urn:uuid:other"):format(user, DOMAIN), false, 3)
    assert.are.equal(480, N.parse(assert(caller:recv(3))).status)
    in_dialog(l, caller, "ACK", "sip:tgruu.nosuchbase.1@" .. DOMAIN .. ";gr", false, 4)
    N.pump_for(0.05)
    assert.are.equal(0, ua:pending())
    assert.are.equal(0, caller:pending())
  end)
end)
