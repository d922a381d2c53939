--- The `redis` location backend: bindings in a Redis server that several
-- luasip instances share (`redis://HOST[:PORT][/DB]`).
--
-- Schema: one hash per AOR, key `PREFIX .. aor` (PREFIX defaults to
-- `luasip:loc:`), field = the binding key, value = the binding encoded by
-- `luasip.location.codec` (it starts with the expiry time as a
-- little-endian double). A save runs one script (atomic on the server)
-- that sets the field, deletes the AOR's expired fields and sets the
-- hash's `EXPIREAT` to its latest expiry: Redis deletes an AOR when its
-- last binding expires, with no timer in luasip. A binding that expires
-- while others of its AOR live on stays in the hash until the next save
-- of that AOR, and lookups never return it (they compare the expiry with
-- the local clock). `on_expire` is never called: Redis does the removal.
--
-- `count()` scans the keys (`SCAN MATCH PREFIX*`) and counts the live
-- fields: exact when nothing changes meanwhile, approximate under
-- concurrent writes; meant for tests and monitoring, not per request.
--
-- Failures: no connection, a connection refused, a connect or a command
-- without answer past its timeout (`connect_timeout`, `timeout` in ms,
-- default 2000) give `nil, "location URL: <why>"`; the next operation
-- connects again, so a Redis that comes back is used with no restart.
-- @module luasip.location.redis
local core = require "luasip.core"
local codec = require "luasip.location.codec"
local util = require "luasip.location.util"

local setmetatable, tonumber, tostring, type, error = setmetatable, tonumber, tostring, type, error
local select = select
local now, wait = util.now, util.wait
local decode, times = codec.decode, codec.times

local M = {}

local Store = {}
Store.__index = Store

-- KEYS[1] = the AOR's hash; ARGV = key, value, now
local SAVE = [[
local h = KEYS[1]
local now = tonumber(ARGV[3])
redis.call('HSET', h, ARGV[1], ARGV[2])
local all = redis.call('HGETALL', h)
local max = 0
for i = 1, #all, 2 do
  local e = struct.unpack('<d', all[i + 1])
  if e <= now then
    redis.call('HDEL', h, all[i])
  elseif e > max then
    max = e
  end
end
if max > 0 then
  redis.call('EXPIREAT', h, math.ceil(max))
end
return 1
]]

-- KEYS = hashes; ARGV[1] = now -> live fields in them
local COUNT = [[
local now = tonumber(ARGV[1])
local n = 0
for _, h in ipairs(KEYS) do
  local vals = redis.call('HVALS', h)
  for i = 1, #vals do
    if struct.unpack('<d', vals[i]) > now then n = n + 1 end
  end
end
return n
]]

--- A new redis store (see `luasip.location.open`).
-- @tparam table u the parsed URL
-- @tparam string url the URL as given
function M.new(u, url)
  local o = u.opts
  local cto = tonumber(o.connect_timeout or 2000)
  local to = tonumber(o.timeout or 2000)
  if not cto or cto <= 0 or not to or to <= 0 then
    return nil, "location " .. url .. ": bad timeout"
  end
  local self = setmetatable({
    url = url, backend = "redis", prefix = o.prefix or "luasip:loc:",
    rd = core.redis(u.host, u.port, u.db, cto // 1, to // 1),
  }, Store)
  self.fail = "location " .. url .. ": "
  return self
end

-- One command; waits for its reply.
local function call(self, ...)
  local rd = self.rd
  local n = select("#", ...)
  local args = { ... }
  local reply, err = wait(function(cb)
    return rd:command(cb, table.unpack(args, 1, n))
  end)
  if reply == nil then
    return nil, self.fail .. tostring(err)
  end
  return reply
end

--- Bindings of an AOR, unexpired, by q then most recent first.
function Store:lookup(aor)
  local all, err = call(self, "HGETALL", self.prefix .. aor)
  if not all then
    return nil, err
  end
  local t = now()
  local list = {}
  for i = 2, #all, 2 do
    local v = all[i]
    if times(v) > t then
      local b, saved = decode(v)
      list[#list + 1] = { b, saved }
    end
  end
  return codec.ordered(list)
end

--- Insert or replace (by `binding.key`) a binding; true once Redis
-- acknowledged it.
function Store:save(aor, b)
  util.need_coroutine("save")
  if type(aor) ~= "string" then
    error("bad argument #1 to 'save' (string expected, got " .. type(aor) .. ")", 2)
  end
  codec.check(b, 2)
  local t = now()
  local ok, err = call(self, "EVAL", SAVE, 1, self.prefix .. aor, b.key, codec.encode(b, t),
    ("%.6f"):format(t))
  if not ok then
    return nil, err
  end
  return true
end

--- Remove one binding of an AOR.
function Store:remove(aor, key)
  local ok, err = call(self, "HDEL", self.prefix .. aor, key)
  if not ok then
    return nil, err
  end
  return true
end

--- Remove every binding of an AOR.
function Store:remove_all(aor)
  local ok, err = call(self, "DEL", self.prefix .. aor)
  if not ok then
    return nil, err
  end
  return true
end

--- Live bindings under this store's prefix (see the module's notes).
function Store:count()
  local cursor, total = "0", 0
  local pattern = self.prefix:gsub("[%*%?%[%]\\]", "\\%0") .. "*"
  repeat
    local r, err = call(self, "SCAN", cursor, "MATCH", pattern, "COUNT", 1000)
    if not r then
      return nil, err
    end
    cursor = r[1]
    local keys = r[2]
    if #keys > 0 then
      keys[#keys + 1] = ("%.6f"):format(now())
      local n, cerr = call(self, "EVAL", COUNT, #keys - 1, table.unpack(keys))
      if not n then
        return nil, cerr
      end
      total = total + n
    end
  until cursor == "0"
  return total
end

--- Kept for the interface: Redis TTLs remove expired bindings, this
-- backend never calls `fn`.
function Store:on_expire(fn)
  util.set_on_expire(self, fn)
end

--- Close the connection (pending operations fail with "closed").
function Store:close()
  self.rd:close()
end

return M
