--- The `memory` location backend: bindings in this process, in C memory.
--
-- The structure lives in C (`csrc/registrar/memstore.c`, through
-- `core.memstore_new`), outside the Lua heap, so the collector never
-- traverses it: a hash table of AORs, each with its encoded bindings (the
-- strings of `luasip.location.codec`), one min-heap of expiry times and
-- one background timer armed for the earliest. When it fires, the due
-- AORs drop their expired bindings (at most 20000 AORs per run, then the
-- timer re-arms at once so the loop keeps serving); `on_expire` callbacks
-- run in their own coroutines. This module holds no per-binding state: it
-- encodes, decodes and orders. The registrar's C fast path
-- (`luasip.registrar.save`) writes into the same C store (`store.memstore`).
--
-- Lookups also skip bindings whose time has passed, so a binding is never
-- returned after its expiry even while the timer catches up.
-- @module luasip.location.memory
local core = require "luasip.core"
local codec = require "luasip.location.codec"
local util = require "luasip.location.util"

local encode, decode = codec.encode, codec.decode
local type, setmetatable, error = type, setmetatable, error
local now, need_coroutine, spawn = util.now, util.need_coroutine, util.spawn
local memstore_new = core.memstore_new

local Store = {}
Store.__index = Store

local M = {}

-- The C store's expiry callback for fn (nil: none).
local function expiry(fn)
  if fn == nil then
    return nil
  end
  return function(aor, s)
    spawn(fn, aor, (decode(s)))
  end
end

--- A new memory store (see `luasip.location.open`).
-- @tparam table u the parsed URL
-- @tparam string url the URL as given
function M.new(u, url)
  return setmetatable({ url = url, backend = u.backend, memstore = memstore_new() }, Store)
end

--- Bindings of an AOR, unexpired, by q then most recent first.
function Store:lookup(aor)
  need_coroutine("lookup")
  if type(aor) ~= "string" then
    return {}
  end
  local found = self.memstore:lookup(aor)
  local n = #found
  if n <= 1 then
    return n == 1 and { (decode(found[1])) } or found
  end
  local list = {}
  for i = 1, n do
    local b, saved = decode(found[i])
    list[i] = { b, saved }
  end
  return codec.ordered(list)
end

--- Insert or replace (by `binding.key`) a binding of an AOR.
function Store:save(aor, b)
  need_coroutine("save")
  if type(aor) ~= "string" then
    error("bad argument #1 to 'save' (string expected, got " .. type(aor) .. ")", 2)
  end
  codec.check(b, 2)
  local t = now()
  if b.expires <= t then
    return self:remove(aor, b.key)
  end
  return self.memstore:save(aor, encode(b, t))
end

--- Remove one binding (by key) of an AOR; true even when it was not there.
function Store:remove(aor, key)
  need_coroutine("remove")
  if type(aor) ~= "string" or type(key) ~= "string" then
    return true
  end
  return self.memstore:remove(aor, key)
end

--- Remove every binding of an AOR.
function Store:remove_all(aor)
  need_coroutine("remove_all")
  if type(aor) ~= "string" then
    return true
  end
  return self.memstore:remove_all(aor)
end

--- The number of bindings (expired ones leave on their timer).
function Store:count()
  need_coroutine("count")
  return self.memstore:count()
end

--- `fn(aor, binding)` runs in its own coroutine when a binding expires.
function Store:on_expire(fn)
  util.set_on_expire(self, fn)
  self.memstore:on_expire(expiry(fn))
end

--- Drop every binding and stop the timer (the store stays usable, empty).
function Store:close()
  self.memstore:close()
  self.memstore = memstore_new()
  self.memstore:on_expire(expiry(self.expire_fn))
end

return M
