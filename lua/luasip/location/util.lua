--- Helpers shared by the location backends (private).
-- @module luasip.location.util
local core = require "luasip.core"
local server = require "luasip.server"

local co_running, co_yield = coroutine.running, coroutine.yield
local pack, unpack, error, setmetatable = table.pack, table.unpack, error, setmetatable

local M = {}

--- Seconds since the epoch, microsecond precision.
-- @function now
M.now = core.location_clock

local Timer = {}
Timer.__index = Timer

--- (Re)arm: `fn()` runs once after `ms` milliseconds (a pending start is
-- replaced).
function Timer:start(ms)
  if self.h then
    self.h:stop()
  end
  local h = core.timer(math.tointeger(math.ceil(ms > 0 and ms or 0)) or 0, 0, self.fn)
  h:unref()
  self.h = h
end

--- Disarm.
function Timer:stop()
  if self.h then
    self.h:stop()
    self.h = nil
  end
end
Timer.close = Timer.stop

--- A background one-shot timer on `core.timer` (the timers of
-- `sip.timer`): `t:start(ms)`, `t:stop()`, `t:close()`. `fn()` runs on the
-- loop, not in a coroutine, and does not keep the loop alive.
-- @tparam function fn
function M.timer(fn)
  return setmetatable({ fn = fn }, Timer)
end

--- Run `fn(...)` in its own coroutine (errors are logged).
-- @function spawn
M.spawn = server.spawn

--- Set `store.expire_fn` for the backends' `on_expire(fn)` (nil clears it).
-- @tparam table store
-- @tparam function|nil fn
function M.set_on_expire(store, fn)
  if fn ~= nil and type(fn) ~= "function" then
    error("bad argument #1 to 'on_expire' (function expected)", 3)
  end
  store.expire_fn = fn
end

--- Raise unless running inside a coroutine.
-- @tparam string what the method's name, for the message
function M.need_coroutine(what)
  local _, main = co_running()
  if main then
    error("location: " .. what .. "() may wait: call it from a request handler or sip.spawn()", 3)
  end
end

--- Wait for a callback: `start(cb)` begins an operation that calls `cb(...)`
-- once (later, from the loop) and returns true, or returns nil, err when it
-- cannot begin. Returns what `cb` was given.
-- @tparam function start
function M.wait(start)
  local co, main = co_running()
  if main then
    error("location: this operation may wait: call it from a request handler or sip.spawn()", 3)
  end
  local state, early = 0, nil
  local ok, err = start(function(...)
    if state == 1 then
      state = 2
      server.resume(co, ...)
    elseif state == 0 then
      early = pack(...)
    end
  end)
  if not ok then
    state = 3
    return nil, err
  end
  if early then
    return unpack(early, 1, early.n)
  end
  state = 1
  return co_yield()
end

return M
