--- The `sqlite` location backend: bindings in an SQLite file
-- (`sqlite:/path/loc.db`); they survive a restart of luasip.
--
-- Statements run on libuv's worker threads (one connection, one job at a
-- time; statements queued meanwhile are committed together in the next
-- job), so the loop never waits for the disk. `save` returns after the
-- COMMIT: with the default `synchronous=full` a saved binding survives a
-- crash or a power loss, with `?synchronous=normal` (WAL) it survives a
-- crash of luasip. The file is in WAL mode; several processes may share it.
--
-- Table `location(aor, key, expires, q, saved, data)`, primary key
-- `(aor, key)`, an index on `expires`; `data` is the binding encoded by
-- `luasip.location.codec`. A background timer deletes expired rows every
-- `sweep` seconds (default 1; `?sweep=0.2`) and calls `on_expire` for each.
-- A failure (a file that cannot be opened or written) gives
-- `nil, "location URL: <why>"`; the file is opened again by the next
-- operation.
-- @module luasip.location.sqlite
local core = require "luasip.core"
local codec = require "luasip.location.codec"
local util = require "luasip.location.util"

local setmetatable, tonumber, tostring, type, error, select = setmetatable, tonumber, tostring, type, error, select
local now, wait = util.now, util.wait

local M = {}

local Store = {}
Store.__index = Store

local SCHEMA = [[
PRAGMA journal_mode=WAL;
PRAGMA synchronous=%s;
CREATE TABLE IF NOT EXISTS location (
  aor TEXT NOT NULL,
  key TEXT NOT NULL,
  expires REAL NOT NULL,
  q REAL NOT NULL,
  saved REAL NOT NULL,
  data BLOB NOT NULL,
  PRIMARY KEY (aor, key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS location_expires ON location (expires);
]]

local SAVE = "INSERT INTO location (aor, key, expires, q, saved, data) VALUES (?, ?, ?, ?, ?, ?) "
  .. "ON CONFLICT (aor, key) DO UPDATE SET expires = excluded.expires, q = excluded.q, "
  .. "saved = excluded.saved, data = excluded.data"
local LOOKUP = "SELECT data FROM location WHERE aor = ? AND expires > ? ORDER BY q DESC, saved DESC"
local REMOVE = "DELETE FROM location WHERE aor = ? AND key = ?"
local REMOVE_ALL = "DELETE FROM location WHERE aor = ?"
local COUNT = "SELECT count(*) FROM location WHERE expires > ?"
local SWEEP = "DELETE FROM location WHERE expires <= ?"
local SWEEP_RETURNING = "DELETE FROM location WHERE expires <= ? RETURNING aor, data"

local SYNC = { full = "FULL", normal = "NORMAL", off = "OFF", extra = "EXTRA" }

local function exec(self, sql, types, ...)
  local db = self.db
  local n = select("#", ...)
  local args = { ... }
  local rows, err = wait(function(cb)
    return db:exec(cb, sql, types, table.unpack(args, 1, n))
  end)
  if not rows then
    return nil, self.fail .. tostring(err)
  end
  return rows, err
end

local function sweep(self)
  local returning = self.expire_fn ~= nil
  local ok = self.db:exec(function(rows)
    if rows and returning and self.expire_fn then
      for i = 1, #rows do
        util.spawn(self.expire_fn, rows[i][1], (codec.decode(rows[i][2])))
      end
    end
    if not self.closed then
      self.timer:start(self.sweep_ms)
    end
  end, returning and SWEEP_RETURNING or SWEEP, "d", now())
  if not ok and not self.closed then
    self.timer:start(self.sweep_ms)
  end
end

--- A new sqlite store (see `luasip.location.open`).
-- @tparam table u the parsed URL
-- @tparam string url the URL as given
function M.new(u, url)
  local sync = SYNC[(u.opts.synchronous or "full"):lower()]
  if not sync then
    return nil, "location " .. url .. ": synchronous must be full, normal, extra or off"
  end
  local sweep_s = tonumber(u.opts.sweep or 1)
  if not sweep_s or sweep_s <= 0 then
    return nil, "location " .. url .. ": bad sweep interval"
  end
  local self = setmetatable({
    url = url, backend = "sqlite", path = u.path, sweep_ms = sweep_s * 1000,
    db = core.sqlite(u.path, SCHEMA:format(sync)),
  }, Store)
  self.fail = "location " .. url .. ": "
  self.timer = util.timer(function()
    sweep(self)
  end)
  self.timer:start(self.sweep_ms)
  return self
end

--- Bindings of an AOR, unexpired, by q then most recent first.
function Store:lookup(aor)
  local rows, err = exec(self, LOOKUP, "td", aor, now())
  if not rows then
    return nil, err
  end
  local out = {}
  for i = 1, #rows do
    out[i] = (codec.decode(rows[i][1]))
  end
  return out
end

--- Insert or replace (by `binding.key`) a binding; true once committed.
function Store:save(aor, b)
  util.need_coroutine("save")
  if type(aor) ~= "string" then
    error("bad argument #1 to 'save' (string expected, got " .. type(aor) .. ")", 2)
  end
  codec.check(b, 2)
  local t = now()
  if b.expires <= t then
    return self:remove(aor, b.key)
  end
  local ok, err = exec(self, SAVE, "ttdddb", aor, b.key, b.expires + 0.0, (b.q or 1) + 0.0, t,
    codec.encode(b, t))
  if not ok then
    return nil, err
  end
  return true
end

--- Remove one binding of an AOR.
function Store:remove(aor, key)
  local ok, err = exec(self, REMOVE, "tt", aor, key)
  if not ok then
    return nil, err
  end
  return true
end

--- Remove every binding of an AOR.
function Store:remove_all(aor)
  local ok, err = exec(self, REMOVE_ALL, "t", aor)
  if not ok then
    return nil, err
  end
  return true
end

--- The number of live bindings.
function Store:count()
  local rows, err = exec(self, COUNT, "d", now())
  if not rows then
    return nil, err
  end
  return rows[1][1]
end

--- `fn(aor, binding)` runs in its own coroutine for each binding the
-- sweep deletes.
function Store:on_expire(fn)
  util.set_on_expire(self, fn)
end

--- Stop the sweep and close the file (operations not yet done are dropped).
function Store:close()
  self.closed = true
  self.timer:close()
  self.db:close()
end

return M
