-- luasip.redirect and examples/redirect.lua over real sockets (127.0.0.1):
-- 3xx answers with the contacts, their q and expires; 404 for users not
-- registered.
local here = debug.getinfo(1, "S").source:gsub("^@", ""):match("^(.*)/[^/]*$") or "."
local N = dofile(here .. "/support/net.lua")
local host = dofile(here .. "/support/script_host.lua")
local log = require "luasip.log"
local redirect = require "luasip.redirect"

local V4 = N.V4

local function user()
  return (N.unique("r"):gsub("%.", "x"))
end

-- Send a request, return the parsed answer; an INVITE's 3xx-6xx gets its
-- ACK (same branch: §17.1.1.3) so that the answer is not retransmitted.
local function send(peer, l, t)
  t.via_port = peer.port
  t.from = t.from or ("<sip:caller@example.com>;tag=" .. N.unique("t"):gsub("%.", ""))
  local bytes, call_id, branch = N.request(t)
  peer:send(bytes, l.host, l.port)
  local r = N.parse(assert(peer:recv(3), "no answer"))
  if t.method == "INVITE" and r.status >= 300 then
    peer:send((N.request { method = "ACK", uri = t.uri, via_port = peer.port, branch = branch,
      call_id = call_id, from = t.from, to = r:get("To"), cseq = t.cseq or 1 }), l.host, l.port)
  end
  return r
end

local function contacts(r)
  local out = {}
  for _, v in ipairs(r:all("Contact")) do
    for item in v:gmatch("[^,]+") do
      out[#out + 1] = item
    end
  end
  return out
end

describe("examples/redirect.lua", function()
  local srv, l, peer
  before_each(function()
    srv = host.load(here .. "/../examples/redirect.lua", { listen = { "udp:127.0.0.1:0" } })
    l = srv:listener(0)
    peer = N.udp(V4)
  end)
  after_each(function()
    srv:close()
    N.cleanup()
  end)

  it("redirects a call for a registered user to its contacts by q, with q and expires", function()
    local u = user()
    local aor = "sip:" .. u .. "@example.com"
    local r = send(peer, l, { method = "REGISTER", uri = "sip:example.com", to = "<" .. aor .. ">",
      from = "<" .. aor .. ">;tag=1", headers = { "Contact: <sip:" .. u .. "@192.0.2.1>;q=0.3",
        "Contact: <sip:" .. u .. "@192.0.2.2:5080>;q=0.8;expires=600" } })
    assert.are.equal(200, r.status)
    r = send(peer, l, { method = "INVITE", uri = aor, to = "<" .. aor .. ">" })
    assert.are.equal(302, r.status)
    local cs = contacts(r)
    assert.are.equal(2, #cs)
    assert.matches("^<sip:" .. u .. "@192%.0%.2%.2:5080>;expires=%d+;q=0%.8$", cs[1])
    assert.matches("^<sip:" .. u .. "@192%.0%.2%.1>;expires=%d+;q=0%.3$", cs[2])
    local e = tonumber(cs[1]:match("expires=(%d+)"))
    assert.is_true(e <= 600 and e >= 598)
    -- a MESSAGE is redirected the same way
    r = send(peer, l, { method = "MESSAGE", uri = aor })
    assert.are.equal(302, r.status)
  end)

  it("answers 404 for a user not registered", function()
    local r = send(peer, l, { method = "INVITE", uri = "sip:" .. user() .. "@example.com" })
    assert.are.equal(404, r.status)
    assert.are.equal(0, #r:all("Contact"))
  end)
end)

describe("redirect.reply", function()
  after_each(function()
    N.cleanup()
  end)

  local function serve(fn)
    local srv, l = N.server { listen = { "udp:127.0.0.1:0" } }
    srv:on_request(fn)
    return l, N.udp(V4)
  end

  it("sends 301, 302 (default), 380 with URI strings and bindings", function()
    local code
    local l, peer = serve(function(req)
      redirect.reply(req, { "sip:a@192.0.2.1", "<sip:b@192.0.2.2>;q=0.5",
        { contact = "sip:c@192.0.2.3", q = 0.25 },
        { contact = "sip:d@192.0.2.4", q = 1, expires = os.time() + 100 } }, code)
    end)
    for _, c in ipairs { 301, false, 380, 300 } do
      code = c or nil
      local r = send(peer, l, { method = "INVITE", uri = "sip:x@example.com" })
      assert.are.equal(c or 302, r.status)
      local cs = contacts(r)
      assert.are.equal("<sip:a@192.0.2.1>", cs[1])
      assert.are.equal("<sip:b@192.0.2.2>;q=0.5", cs[2])
      assert.are.equal("<sip:c@192.0.2.3>;q=0.25", cs[3])
      assert.matches("^<sip:d@192%.0%.2%.4>;expires=%d+$", cs[4])
    end
  end)

  it("raises for a code that is not a redirection (the handler's 500)", function()
    local lines = {}
    log.configure { sink = function(line)
      lines[#lines + 1] = line
    end }
    finally(function()
      log.configure { sink = function(line)
        io.stderr:write(line, "\n")
      end }
    end)
    local l, peer = serve(function(req)
      redirect.reply(req, { "sip:a@192.0.2.1" }, 404)
    end)
    local r = send(peer, l, { method = "OPTIONS", uri = "sip:x@example.com" })
    assert.are.equal(500, r.status)
    assert.matches("is not 300, 301, 302, 305 or 380", table.concat(lines, "\n"), 1, true)
  end)
end)
