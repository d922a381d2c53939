-- examples/balancer.lua with flood protection on (issue [edge]): a source
-- over --flood is blocked (503 once, then dropped), `luasip ctl blocked
-- list` shows it and `unblock` lifts it, a destination of the set is
-- trusted (never limited), and /metrics carries the flood counters.
-- Loopback only: the flooder is a socket bound to 127.0.0.2, the
-- destination 127.0.0.3; nothing is relayed (OPTIONS to the balancer
-- itself are answered by it).
local P = dofile("spec/support/proc.lua")
local N = require "spec.support.net"
local socket = require "socket"

-- A UDP socket bound to src, sending to 127.0.0.1:port.
local function udp_from(src, port)
  local s = assert(socket.udp())
  assert(s:setsockname(src, 0))
  s:settimeout(0)
  local _, lport = s:getsockname()
  local self = { got = {} }
  function self.options(n)
    for _ = 1, n do
      assert(s:sendto(N.request { uri = "sip:127.0.0.1:" .. port, via_host = src, via_port = lport }, "127.0.0.1",
        port))
    end
  end
  -- every answer that came within seconds: status -> count
  function self.answers(seconds)
    local deadline = socket.gettime() + seconds
    local by = {}
    while socket.gettime() < deadline do
      local d = s:receivefrom()
      if d then
        local st = N.parse(d).status
        by[st] = (by[st] or 0) + 1
      else
        socket.sleep(0.01)
      end
    end
    return by
  end
  function self.close()
    s:close()
  end
  return self
end

local function metrics_text(port)
  local c = assert(socket.connect("127.0.0.1", port))
  c:settimeout(5)
  c:send("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
  local res = c:receive("*a")
  c:close()
  return res
end

describe("examples/balancer.lua: flood protection, ctl blocked, metrics", function()
  local dir, sock, proc, port, mport

  setup(function()
    dir = os.tmpname() .. ".bal"
    assert(os.execute("mkdir -p " .. dir))
    sock = dir .. "/ctl.sock"
    proc = P.start({ "run", "examples/balancer.lua", "--listen", "udp:127.0.0.1:0", "--dest", "sip:127.0.0.3:5099",
      "--probe-interval", "0", "--flood", "2", "--flood-block", "30", "--ctl", sock, "--metrics", "127.0.0.1:0" })
    port = assert(proc:port("udp"), proc:log())
    mport = tonumber(proc:wait_log("metrics at http://127%.0%.0%.1:(%d+)/metrics"))
  end)

  teardown(function()
    P.cleanup()
    os.execute("rm -rf " .. dir)
  end)

  local function ctl(...)
    return P.run({ "ctl", "--socket", sock, ... })
  end

  it("blocks a flooding source: 503 once, then nothing; ctl lists and unblocks it", function()
    local rc, out = ctl("blocked", "list")
    assert.equal(0, rc)
    assert.matches("no blocked sources", out)
    local flooder = udp_from("127.0.0.2", port)
    flooder.options(30) -- over 4 x 2 other requests in a second
    local by = flooder.answers(1)
    assert.equal(1, by[503], "one 503 for the block")
    assert.is_true((by[200] or 0) <= 8, "answered past the threshold: " .. tostring(by[200]))
    rc, out = ctl("blocked", "list")
    assert.equal(0, rc)
    assert.matches("addr=127%.0%.0%.2", out)
    rc, out = ctl("--json", "blocked", "list")
    assert.equal(0, rc)
    assert.matches('"addr":"127.0.0.2"', out, 1, true)
    local m = metrics_text(mport)
    assert.matches("\nluasip_flood_blocks_total 1\n", m, 1, true)
    assert.is_truthy(tonumber(m:match("\nluasip_flood_dropped_total (%d+)\n")) > 0)
    rc, out = ctl("unblock", "127.0.0.2")
    assert.equal(0, rc)
    assert.matches("unblocked 127.0.0.2", out, 1, true)
    out = select(2, ctl("blocked", "list"))
    assert.matches("no blocked sources", out)
    flooder.options(1)
    assert.equal(1, flooder.answers(0.5)[200], "the unblocked source is served again")
    flooder.close()
  end)

  it("never limits a destination of the set", function()
    local dest = udp_from("127.0.0.3", port)
    dest.options(30)
    local by = dest.answers(1)
    assert.equal(30, by[200])
    assert.is_nil(by[503])
    local _, out = ctl("blocked", "list")
    assert.matches("no blocked sources", out)
    local m = metrics_text(mport)
    assert.is_true(tonumber(m:match("\nluasip_flood_trusted_total (%d+)\n")) >= 30)
    dest.close()
  end)
end)
