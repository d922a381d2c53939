--- The location service: where the registrar stores bindings (RFC 3261 §10)
-- and where a proxy or a redirect server looks them up.
--
--     local location = require "luasip.location"
--     local store = assert(location.open("sqlite:/var/lib/luasip/loc.db"))
--     -- in a handler coroutine:
--     store:save("sip:alice@example.com", {
--       key = "sip:alice@192.0.2.4:5060", contact = "sip:alice@192.0.2.4:5060",
--       expires = os.time() + 3600, q = 1,
--     })
--     for _, b in ipairs(store:lookup("sip:alice@example.com")) do print(b.contact) end
--
-- URLs (`location.open(url)`):
--
-- - `"memory"` (the default for nil): in this process, nothing to install;
--   lost when luasip stops.
-- - `"sqlite:/path/loc.db"` (also `sqlite:///path`, and `sqlite:rel/path`):
--   a file; bindings survive a restart. Statements run on a libuv worker
--   thread, never on the loop; `save` returns once the row is committed.
--   Options after `?`: `synchronous=full|normal|off` (default `full`: a
--   committed save survives a power loss), `sweep=SECONDS` (how often
--   expired rows are deleted, default 1).
-- - `"redis://HOST[:PORT][/DB]"` (port 6379, db 0 by default): a Redis
--   server shared by several luasip instances; expiry by Redis TTLs.
--   Options after `?`: `connect_timeout=MS` (default 2000),
--   `timeout=MS` per command (default 2000), `prefix=STRING` (key
--   prefix, default `luasip:loc:`).
--
-- `open` is memoized: the same URL gives the same store object, so a
-- script reload keeps its bindings and connections. A bad URL gives
-- `nil, message`; redis and sqlite connect lazily (the first operation)
-- and reconnect by themselves after a failure.
--
-- Store methods (each may yield: call them from a request handler or a
-- `sip.spawn` coroutine; outside a coroutine they raise, the memory store
-- included, so a script behaves the same with every backend):
--
-- - `store:lookup(aor)` -> array of bindings (copies, unexpired only),
--   by q descending, then most recently saved first; `{}` when none.
-- - `store:save(aor, binding)` -> true: insert or replace the binding with
--   the same `key`; durable when it returns (sqlite: committed; redis:
--   acknowledged). A binding whose `expires` has passed is removed.
-- - `store:remove(aor, key)`, `store:remove_all(aor)` -> true
-- - `store:count()` -> number of live bindings (redis: see its module)
-- - `store:on_expire(fn)`: `fn(aor, binding)` runs in its own coroutine
--   for each binding that expires (memory and sqlite, by timer; redis
--   lets Redis TTLs remove them and never calls it)
-- - `store.url`: the URL as given to the first `open`
--
-- Every method returns `nil, "location URL: message"` on a failure (Redis
-- unreachable, a disk error) and raises only for a programmer mistake (a
-- binding without `key`, a call outside a coroutine).
--
-- A binding is a flat table: `key` (string, required), `contact` (string,
-- required), `expires` (number, seconds since the epoch, required), `q`
-- (0..1, default 1) and any other fields whose values are strings,
-- numbers, booleans or arrays of strings (`call_id`, `cseq`, `path`,
-- `received`, `instance`, `reg_id`, `socket`, `user_agent`, `updated`,
-- `pub_gruu`, `temp_gruu`, ...): all kept as given.
-- @module luasip.location
local type, tostring, tonumber, require, pairs = type, tostring, tonumber, require, pairs

local M = {}

-- URL -> store, for the life of the process (survives script reloads:
-- this module stays in package.loaded).
local stores = {}

local function parse_query(q)
  local opts = {}
  if q and q ~= "" then
    for pair in q:gmatch("[^&]+") do
      local k, v = pair:match("^([^=]+)=(.*)$")
      if not k then
        return nil, "bad option " .. pair
      end
      opts[k] = v
    end
  end
  return opts
end

--- Parse a location URL.
-- @tparam string url
-- @treturn[1] table `{ backend = "memory"|"sqlite"|"redis", path =, host =,
--   port =, db =, opts = {...}, canonical = string }`
-- @return[2] nil
-- @treturn[2] string error message
function M.parse_url(url)
  if url == nil or url == "memory" or url == "memory:" then
    return { backend = "memory", opts = {}, canonical = "memory" }
  end
  if type(url) ~= "string" then
    return nil, "location URL must be a string, got " .. type(url)
  end
  local rest, query = url:match("^([^?]*)%??(.*)$")
  local opts, qerr = parse_query(query)
  if not opts then
    return nil, "location " .. url .. ": " .. qerr
  end
  local scheme, body = rest:match("^(%a[%w+.-]*):(.*)$")
  scheme = scheme and scheme:lower()
  if scheme == "sqlite" or scheme == "sqlite3" then
    local path = body:match("^//(/.*)$") or body
    if path:sub(1, 2) == "//" or path == "" then
      return nil, "location " .. url .. ": expected sqlite:/path/to/file.db"
    end
    return { backend = "sqlite", path = path, opts = opts,
             canonical = "sqlite:" .. path .. (query ~= "" and "?" .. query or "") }
  elseif scheme == "redis" then
    local auth = body:match("^//(.*)$")
    if not auth then
      return nil, "location " .. url .. ": expected redis://HOST[:PORT][/DB]"
    end
    local hostport, db = auth:match("^([^/]*)/?(.*)$")
    local host, port
    if hostport:sub(1, 1) == "[" then
      host, port = hostport:match("^%[([^%]]+)%]:?(%d*)$")
    else
      host, port = hostport:match("^([^:]*):?(%d*)$")
    end
    if not host or host == "" then
      return nil, "location " .. url .. ": missing host"
    end
    port = port ~= "" and tonumber(port) or 6379
    if port < 1 or port > 65535 then
      return nil, "location " .. url .. ": bad port"
    end
    if db == "" then
      db = 0
    else
      db = tonumber(db:match("^%d+$"))
      if not db then
        return nil, "location " .. url .. ": the database must be a number"
      end
    end
    local canon = ("redis://%s:%d/%d"):format(host:find(":", 1, true) and "[" .. host .. "]" or host, port, db)
    return { backend = "redis", host = host, port = port, db = db, opts = opts,
             canonical = canon .. (query ~= "" and "?" .. query or "") }
  end
  return nil, "location " .. tostring(url) .. ": unknown backend (memory, sqlite:PATH, redis://HOST:PORT/DB)"
end

--- Open (or find) the store of a URL.
-- @tparam[opt] string url `"memory"` (default), `"sqlite:/path"`, `"redis://host:port/db"`
-- @treturn[1] table the store
-- @return[2] nil
-- @treturn[2] string error message
function M.open(url)
  local key = url or "memory"
  local s = stores[key]
  if s then
    return s
  end
  local u, err = M.parse_url(url)
  if not u then
    return nil, err
  end
  s = stores[u.canonical]
  if not s then
    local backend = require("luasip.location." .. u.backend)
    local serr
    s, serr = backend.new(u, url or "memory")
    if not s then
      return nil, serr
    end
    stores[u.canonical] = s
  end
  stores[key] = s
  return s
end

--- The stores opened so far, one entry per store: a list of `{ url =,
-- store = }` sorted by URL (for `luasip ctl location` and the metrics).
-- @treturn table
function M.opened()
  local seen, out = {}, {}
  for k, s in pairs(stores) do
    if not seen[s] then
      seen[s] = true
      out[#out + 1] = { url = s.url or k, store = s }
    end
  end
  table.sort(out, function(a, b)
    return a.url < b.url
  end)
  return out
end

--- Forget a memoized store (closes it when the backend has a `close`).
-- For tests and tools; scripts keep their stores.
-- @tparam string url
function M.close(url)
  local key = url or "memory"
  local s = stores[key]
  if not s then
    return
  end
  for k, v in pairs(stores) do
    if v == s then
      stores[k] = nil
    end
  end
  if s.close then
    s:close()
  end
end

return M
