--- The `memory` location backend: bindings in this process's Lua state.
--
-- Layout (kept small: a million bindings is the target):
--
-- - `aors[aor]` is the one encoded binding of the AOR (a string, see
--   `luasip.location.codec`), or an array of them when it has several.
-- - expiry: `buckets[second]` lists the AORs that have a binding expiring
--   in that second (a refresh adds the AOR again; stale entries cost a
--   check when their second comes), and `heap` is a binary min-heap of
--   those seconds. One background timer is armed for the earliest second;
--   when it fires, the AORs of the due buckets drop their expired bindings
--   (at most `BATCH` AORs per run, then the timer re-arms at once so the
--   loop keeps serving), `on_expire` callbacks run in their own coroutines.
--
-- Lookups also skip bindings whose time has passed, so a binding is never
-- returned after its expiry even while the timer catches up.
-- @module luasip.location.memory
local codec = require "luasip.location.codec"
local util = require "luasip.location.util"

local encode, decode, times, keyof = codec.encode, codec.decode, codec.times, codec.key
local ceil, type, setmetatable, select = math.ceil, type, setmetatable, select
local now, need_coroutine = util.now, util.need_coroutine

local BATCH = 20000

local Store = {}
Store.__index = Store

local M = {}

local function heap_push(h, v)
  local i = #h + 1
  h[i] = v
  while i > 1 do
    local p = i // 2
    local pv = h[p]
    if pv <= v then
      break
    end
    h[i] = pv
    i = p
  end
  h[i] = v
end

local function heap_pop(h)
  local n = #h
  local top = h[1]
  local last = h[n]
  h[n] = nil
  n = n - 1
  if n > 0 then
    local i = 1
    while true do
      local c = 2 * i
      if c > n then
        break
      end
      if c < n and h[c + 1] < h[c] then
        c = c + 1
      end
      if h[c] >= last then
        break
      end
      h[i] = h[c]
      i = c
    end
    h[i] = last
  end
  return top
end

local function arm(self)
  local first = self.heap[1]
  if first then
    local ms = (first - now()) * 1000
    self.timer:start(ms > 0 and ms or 0)
  else
    self.timer:stop()
  end
end

local function schedule(self, aor, expires)
  local sec = ceil(expires)
  local bucket = self.buckets[sec]
  if bucket then
    bucket[#bucket + 1] = aor
    return
  end
  self.buckets[sec] = { aor }
  heap_push(self.heap, sec)
  if self.heap[1] == sec then
    arm(self)
  end
end

-- Drop the expired bindings of one AOR; returns the number dropped.
local function purge(self, aor, t, fn)
  local cur = self.aors[aor]
  if cur == nil then
    return 0
  end
  if type(cur) == "string" then
    if times(cur) <= t then
      self.aors[aor] = nil
      self.n = self.n - 1
      if fn then
        util.spawn(fn, aor, (decode(cur)))
      end
      return 1
    end
    return 0
  end
  local dropped, j = 0, 0
  for i = 1, #cur do
    local s = cur[i]
    if times(s) <= t then
      dropped = dropped + 1
      if fn then
        util.spawn(fn, aor, (decode(s)))
      end
    else
      j = j + 1
      cur[j] = s
    end
  end
  for i = #cur, j + 1, -1 do
    cur[i] = nil
  end
  if j == 0 then
    self.aors[aor] = nil
  elseif j == 1 then
    self.aors[aor] = cur[1]
  end
  self.n = self.n - dropped
  return dropped
end

local function expire(self)
  local t = now()
  local heap, buckets = self.heap, self.buckets
  local budget = BATCH
  while heap[1] and heap[1] <= t do
    local sec = heap[1]
    local bucket = buckets[sec]
    local n = #bucket
    while n > 0 and budget > 0 do
      local aor = bucket[n]
      bucket[n] = nil
      n = n - 1
      budget = budget - 1
      purge(self, aor, t, self.expire_fn)
    end
    if n > 0 then -- more to do: let the loop breathe, come back at once
      self.timer:start(0)
      return
    end
    buckets[sec] = nil
    heap_pop(heap)
  end
  arm(self)
end

--- A new memory store (see `luasip.location.open`).
-- @tparam table u the parsed URL
-- @tparam string url the URL as given
function M.new(u, url)
  local self = setmetatable({
    url = url, backend = u.backend, aors = {}, n = 0, buckets = {}, heap = {},
  }, Store)
  self.timer = util.timer(function()
    expire(self)
  end)
  return self
end

--- Bindings of an AOR, unexpired, by q then most recent first.
function Store:lookup(aor)
  need_coroutine("lookup")
  local cur = self.aors[aor]
  if cur == nil then
    return {}
  end
  local t = now()
  if type(cur) == "string" then
    if times(cur) > t then
      return { (decode(cur)) }
    end
    return {}
  end
  local list = {}
  for i = 1, #cur do
    local s = cur[i]
    if times(s) > t then
      local b, saved = decode(s)
      list[#list + 1] = { b, saved }
    end
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
  local blob = encode(b, t)
  local key = b.key
  local cur = self.aors[aor]
  if cur == nil then
    self.aors[aor] = blob
    self.n = self.n + 1
  elseif type(cur) == "string" then
    if keyof(cur) == key then
      self.aors[aor] = blob
    else
      self.aors[aor] = { cur, blob }
      self.n = self.n + 1
    end
  else
    local m = #cur
    local found = false
    for i = 1, m do
      if keyof(cur[i]) == key then
        cur[i] = blob
        found = true
        break
      end
    end
    if not found then
      cur[m + 1] = blob
      self.n = self.n + 1
    end
  end
  schedule(self, aor, b.expires)
  return true
end

--- Account for what the registrar's C fast path wrote into `self.aors`
-- (`luasip.registrar.save`): `added` bindings more (negative for fewer),
-- and an expiry time for each binding it saved.
-- @tparam string aor
-- @tparam integer added
-- @param ... expiry times (seconds since the epoch)
function Store:fast_saved(aor, added, ...)
  self.n = self.n + added
  for i = 1, select("#", ...) do
    schedule(self, aor, (select(i, ...)))
  end
end

--- Remove one binding (by key) of an AOR; true even when it was not there.
function Store:remove(aor, key)
  need_coroutine("remove")
  local cur = self.aors[aor]
  if cur == nil then
    return true
  end
  if type(cur) == "string" then
    if keyof(cur) == key then
      self.aors[aor] = nil
      self.n = self.n - 1
    end
    return true
  end
  for i = 1, #cur do
    if keyof(cur[i]) == key then
      table.remove(cur, i)
      self.n = self.n - 1
      break
    end
  end
  if #cur == 1 then
    self.aors[aor] = cur[1]
  elseif #cur == 0 then
    self.aors[aor] = nil
  end
  return true
end

--- Remove every binding of an AOR.
function Store:remove_all(aor)
  need_coroutine("remove_all")
  local cur = self.aors[aor]
  if cur ~= nil then
    self.n = self.n - (type(cur) == "string" and 1 or #cur)
    self.aors[aor] = nil
  end
  return true
end

--- The number of bindings (expired ones leave on their timer).
function Store:count()
  need_coroutine("count")
  return self.n
end

--- `fn(aor, binding)` runs in its own coroutine when a binding expires.
function Store:on_expire(fn)
  util.set_on_expire(self, fn)
end

--- Drop every binding and stop the timer.
function Store:close()
  self.timer:close()
  self.aors, self.n, self.buckets, self.heap = {}, 0, {}, {}
end

return M
