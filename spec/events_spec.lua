-- Timers, sleep, signals and file watches on the luasip loop.
local sip = require "luasip"
local core = require "luasip.core"
local N = require "spec.support.net"
local socket = require "socket"

local function pid()
  local f = assert(io.open("/proc/self/stat"))
  local n = f:read("n")
  f:close()
  return n
end

describe("loop events", function()
  after_each(function()
    N.cleanup()
  end)

  it("sip.timer runs once after its delay, in a coroutine that may wait", function()
    local t0 = core.now()
    local fired, waited_until
    sip.timer(0.03, function()
      fired = core.now()
      sip.sleep(0.02)
      waited_until = core.now()
    end)
    assert.truthy(N.pump_until(function() return waited_until end, 2))
    assert.is_true(fired - t0 >= 30)
    assert.is_true(waited_until - fired >= 20)
  end)

  it("an interval timer repeats until stopped; active() tells", function()
    local n = 0
    local h = sip.timer(0.005, function() n = n + 1 end, { interval = 0.005 })
    assert.truthy(N.pump_until(function() return n >= 3 end, 2))
    assert.is_true(h:active())
    h:stop()
    assert.is_false(h:active())
    local seen = n
    N.pump_for(0.05)
    assert.equal(seen, n)
    h:stop() -- stopping twice is harmless
  end)

  it("a one-shot timer is inactive once fired; a stopped one never fires", function()
    local fired = false
    local h = sip.timer(0, function() fired = true end)
    local never = sip.timer(0.01, function() error("must not run") end)
    never:stop()
    assert.truthy(N.pump_until(function() return fired end, 2))
    assert.is_false(h:active())
    N.pump_for(0.03)
  end)

  it("a background timer does not keep sip.run() alive; an error in a timer does not stop the loop", function()
    local h = sip.timer(60, function() end, { background = true })
    local after = false
    sip.timer(0.01, function() error("timer fault (expected in this test)") end)
    sip.timer(0.02, function() after = true end)
    local alive = core.run() -- returns once only the background timer is left
    assert.is_false(alive)
    assert.is_true(after)
    h:stop()
  end)

  it("checks its arguments", function()
    assert.has_error(function() sip.timer(-1, function() end) end)
    assert.has_error(function() sip.timer(1, "nope") end)
    assert.has_error(function() sip.sleep(0.1) end, "sleep() must run inside a request handler or sip.spawn()")
    assert.has_error(function() core.signal("SIGKILL", function() end) end)
  end)

  it("core.signal calls back on the loop; stop() gives the signal back", function()
    local got
    local h = assert(core.signal("SIGUSR1", function(name) got = name end))
    os.execute("kill -USR1 " .. pid())
    assert.truthy(N.pump_until(function() return got end, 2))
    assert.equal("SIGUSR1", got)
    h:stop()
    assert.is_false(h:active())
  end)

  it("core.watch reports a change of a file in the watched folder", function()
    local dir = N.tmpdir()
    local seen = {}
    local h = assert(core.watch(dir, function(name, event) seen[#seen + 1] = name .. " " .. event end))
    local f = assert(io.open(dir .. "/policy.lua", "w"))
    f:write("return {}")
    f:close()
    assert.truthy(N.pump_until(function() return #seen > 0 end, 3))
    assert.matches("^policy%.lua ", seen[1])
    h:stop()
    local missing, err = core.watch(dir .. "/does-not-exist", function() end)
    assert.is_nil(missing)
    assert.matches("no such file", err)
    N.rmdir(dir)
    socket.sleep(0)
  end)
end)
