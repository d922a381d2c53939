--- The control socket of `luasip run` and the `luasip ctl` client.
--
-- A request is one line, `[json ]COMMAND [ARG]...\n`; the reply is `ok`
-- or `error: why` on its first line, then the output (text for people,
-- or one JSON value after `json`), and the server closes the connection.
-- The socket file is mode 0600 and the server also checks the peer's
-- credentials: only root and the server's own user get in.
--
-- Commands: `stats`, `reload`, `location show AOR`, `location remove AOR`,
-- `dispatcher list`, `dispatcher set NAME DEST up|down`, `blocked list`,
-- `unblock ADDR`, `help`.
-- @module luasip.ctl
local core = require "luasip.core"
local sip = require "luasip"

local type, pairs, ipairs, tostring, tonumber = type, pairs, ipairs, tostring, tonumber
local format, concat, sort = string.format, table.concat, table.sort

local M = {}

--- The default socket path: `/run/luasip/luasip.ctl` for root, else
-- `$XDG_RUNTIME_DIR/luasip.ctl` (or `/tmp/luasip-$USER.ctl`).
-- @treturn string
function M.default_path()
  local f = io.open("/proc/self/status")
  local uid = f and tonumber(f:read("a"):match("\nUid:%s+(%d+)"))
  if f then
    f:close()
  end
  if uid == 0 then
    return "/run/luasip/luasip.ctl"
  end
  local xdg = os.getenv("XDG_RUNTIME_DIR")
  if xdg and xdg ~= "" then
    return xdg .. "/luasip.ctl"
  end
  return "/tmp/luasip-" .. tostring(uid or os.getenv("USER") or "user") .. ".ctl"
end

------------------------------------------------------------------------------
-- JSON (output only)
------------------------------------------------------------------------------

local escapes = { ['"'] = '\\"', ["\\"] = "\\\\", ["\b"] = "\\b", ["\f"] = "\\f", ["\n"] = "\\n",
  ["\r"] = "\\r", ["\t"] = "\\t" }

local function json(v, out)
  local t = type(v)
  if t == "string" then
    out[#out + 1] = '"' .. v:gsub('[%c"\\]', function(c)
      return escapes[c] or format("\\u%04x", c:byte())
    end) .. '"'
  elseif t == "number" then
    if v ~= v or v == math.huge or v == -math.huge then
      out[#out + 1] = "null"
    elseif math.type(v) == "integer" then
      out[#out + 1] = tostring(v)
    else
      out[#out + 1] = format("%.17g", v)
    end
  elseif t == "boolean" then
    out[#out + 1] = tostring(v)
  elseif t == "table" then
    if #v > 0 or next(v) == nil and v.__array then
      out[#out + 1] = "["
      for i, e in ipairs(v) do
        if i > 1 then
          out[#out + 1] = ","
        end
        json(e, out)
      end
      out[#out + 1] = "]"
    else
      local keys = {}
      for k in pairs(v) do
        if k ~= "__array" then
          keys[#keys + 1] = tostring(k)
        end
      end
      sort(keys)
      out[#out + 1] = "{"
      for i, k in ipairs(keys) do
        if i > 1 then
          out[#out + 1] = ","
        end
        json(k, out)
        out[#out + 1] = ":"
        json(v[k], out)
      end
      out[#out + 1] = "}"
    end
  else
    out[#out + 1] = "null"
  end
end

--- Encode a value as JSON (keys sorted; an empty table is `{}` unless it
-- has `__array = true`).
-- @param v
-- @treturn string
function M.json(v)
  local out = {}
  json(v, out)
  return concat(out)
end

------------------------------------------------------------------------------
-- Commands (server side)
------------------------------------------------------------------------------

local function sorted_keys(t)
  local keys = {}
  for k in pairs(t) do
    keys[#keys + 1] = k
  end
  sort(keys)
  return keys
end

local function kv_text(t)
  local lines = {}
  for _, k in ipairs(sorted_keys(t)) do
    lines[#lines + 1] = format("%s %s", k, tostring(t[k]))
  end
  return concat(lines, "\n")
end

local function stats(env)
  local t = env.server and env.server:stats() or {}
  for k, v in pairs(require("luasip.dispatcher").stats()) do
    t["dispatcher_" .. k] = v
  end
  local rt = env.runtime and env.runtime()
  if rt then
    t.script_reloads, t.script_reload_failures, t.handler_errors = rt.reloads, rt.failed_reloads, rt.errors
    t.generation = rt.generation
  end
  t.lua_heap_bytes = math.floor(collectgarbage("count") * 1024)
  return t, kv_text(t)
end

local function stores()
  return require("luasip.location").opened()
end

local function location(_, args)
  local op, aor = args[2], args[3]
  if (op ~= "show" and op ~= "remove") or not aor then
    return nil, "usage: location show AOR | location remove AOR"
  end
  local registrar = require "luasip.registrar"
  local canon = registrar.aor(aor) or aor
  local list = stores()
  if #list == 0 then
    return nil, "no location store is open"
  end
  local out, lines = { aor = canon, stores = {} }, {}
  local now = os.time()
  for _, e in ipairs(list) do
    local s = e.store
    if op == "show" then
      local bindings, err = s:lookup(canon)
      if not bindings then
        return nil, e.url .. ": " .. tostring(err)
      end
      local bs = { __array = true }
      for _, b in ipairs(bindings) do
        bs[#bs + 1] = { contact = b.contact, expires = b.expires - now, q = b.q, received = b.received,
          user_agent = b.user_agent, key = b.key }
        lines[#lines + 1] = format("%s %s expires=%d q=%s%s", e.url, b.contact, b.expires - now,
          tostring(b.q or 1), b.received and (" received=" .. b.received) or "")
      end
      out.stores[e.url] = bs
    else
      local before = s:lookup(canon) or {}
      local ok, err = s:remove_all(canon)
      if ok == nil and err then
        return nil, e.url .. ": " .. tostring(err)
      end
      out.stores[e.url] = #before
      lines[#lines + 1] = format("%s: removed %d bindings of %s", e.url, #before, canon)
    end
  end
  if op == "show" and #lines == 0 then
    lines[1] = "no bindings for " .. canon
  end
  return out, concat(lines, "\n")
end

local function dispatcher_cmd(_, args)
  local dispatcher = require "luasip.dispatcher"
  if args[2] == "list" then
    local sets = dispatcher.list()
    local lines = {}
    for _, set in ipairs(sets) do
      lines[#lines + 1] = format("set %s (%s)", set.name, set.algorithm)
      for i, d in ipairs(set.dests) do
        lines[#lines + 1] = format("  %d %s %s weight=%d priority=%s relays=%d probes=%d last=%s", i, d.uri,
          d.state, d.weight, tostring(d.priority), d.selected, d.probes, tostring(d.last_status or "-"))
      end
    end
    sets.__array = true
    return sets, #lines > 0 and concat(lines, "\n") or "no destination sets"
  elseif args[2] == "set" and args[3] and args[4] and (args[5] == "up" or args[5] == "down") then
    local d, err = dispatcher.admin(args[3], args[4], args[5])
    if not d then
      return nil, err
    end
    return { set = args[3], destination = d.uri, state = d.state },
      format("%s %s: %s", args[3], d.uri, d.state)
  end
  return nil, "usage: dispatcher list | dispatcher set NAME DEST up|down"
end

local function flood_server(env)
  local srv = env.server
  if not srv or type(srv.flood_blocked) ~= "function" then
    return nil, "flood protection is not available in this server (no srv:flood_blocked())"
  end
  return srv
end

local function blocked(env, args)
  if args[2] ~= "list" then
    return nil, "usage: blocked list"
  end
  local srv, err = flood_server(env)
  if not srv then
    return nil, err
  end
  local list = srv:flood_blocked() or {}
  local lines = {}
  for _, b in ipairs(list) do
    local parts = {}
    for _, k in ipairs(sorted_keys(b)) do
      parts[#parts + 1] = k .. "=" .. tostring(b[k])
    end
    lines[#lines + 1] = concat(parts, " ")
  end
  list.__array = true
  return list, #lines > 0 and concat(lines, "\n") or "no blocked sources"
end

local function unblock(env, args)
  if not args[2] then
    return nil, "usage: unblock ADDR"
  end
  local srv, err = flood_server(env)
  if not srv then
    return nil, err
  end
  local ok, n = pcall(srv.flood_unblock, srv, args[2])
  if not ok then
    return nil, "not a numeric IP address: " .. args[2]
  elseif n == 0 then
    return nil, "not blocked: " .. args[2]
  end
  return { unblocked = args[2], entries = n }, format("unblocked %s (%d entries)", args[2], n)
end

local function reload(env)
  if not env.reload then
    return nil, "reload is not available"
  end
  local gen = env.reload("ctl")
  return { reloading = true, generation = gen }, "reload started (see the log)"
end

M.help = [[
stats                           counters of the server, dispatcher and runtime
reload                          reload the script (as SIGHUP)
location show AOR               the bindings of AOR in every open store
location remove AOR             remove every binding of AOR
dispatcher list                 destination sets and the state of each destination
dispatcher set NAME DEST up|down   put a destination in service, or take it out
blocked list                    sources blocked by flood protection
unblock ADDR                    unblock a source]]

local commands = {
  stats = stats, reload = reload, location = location, dispatcher = dispatcher_cmd,
  blocked = blocked, unblock = unblock,
  help = function()
    return { help = M.help }, M.help
  end,
}

--- Run one control request line in the environment `env` (`server`,
-- `runtime`, `reload`); may wait (store lookups): call it in a coroutine.
-- @tparam string line
-- @tparam table env
-- @treturn string the reply (`ok\n...` or `error: ...\n`)
function M.execute(line, env)
  local args = {}
  for w in line:gmatch("%S+") do
    args[#args + 1] = w
  end
  local as_json = false
  if args[1] == "json" then
    as_json = true
    table.remove(args, 1)
  end
  local fn = commands[args[1] or ""]
  if not fn then
    return format("error: unknown command %q (try help)\n", tostring(args[1] or ""))
  end
  local ok, data, text = pcall(fn, env, args)
  if not ok then
    return "error: " .. tostring(data):gsub("\n", " ") .. "\n"
  end
  if data == nil then
    return "error: " .. tostring(text) .. "\n"
  end
  local body = as_json and M.json(data) or text
  return "ok\n" .. body .. (body:sub(-1) == "\n" and "" or "\n")
end

--- Serve the control socket at `path` (its folder is created 0755 when
-- missing). `env`: `server`, `runtime` (a function returning the run's
-- counters), `reload` (a function starting a reload). A socket file in
-- use by a live server is not taken over.
-- @tparam string path
-- @tparam table env
-- @tparam[opt] table opts `timeout` (ms a connection may live, 30000),
-- `mode` (the socket file's permission bits, 0600) and `allow_uid` (a
-- further user id allowed to connect besides root and the server's own)
-- @return[1] the listener (`h:close()`, `h:stats()`)
-- @return[2] nil
-- @treturn[2] string error
-- @treturn[2] string error code name
function M.serve(path, env, opts)
  local dir = path:match("^(.*)/[^/]+$")
  if dir and dir ~= "" then
    os.execute("mkdir -p -m 755 '" .. dir:gsub("'", "'\\''") .. "' 2>/dev/null")
  end
  local h
  local err, name
  h, err, name = core.text_server("unix:" .. path, {
    terminator = "\n", max_request = 4096, timeout = (opts and opts.timeout) or 30000, max_conns = 8,
    mode = (opts and opts.mode) or 384, allow_uid = opts and opts.allow_uid,
    too_large = "error: request too long\n",
  }, function(id, request)
    sip.spawn(function()
      local ok, reply = pcall(M.execute, request, env)
      h:reply(id, ok and reply or ("error: " .. tostring(reply) .. "\n"))
    end)
  end)
  if not h then
    return nil, err, name
  end
  return h
end

------------------------------------------------------------------------------
-- The client: luasip ctl
------------------------------------------------------------------------------

M.usage = [[
usage: luasip ctl [--socket PATH] [--json] [--timeout S] COMMAND [ARG]...

talks to a running `luasip run` over its control socket (default: ]] .. "%s" .. [[;
`luasip run --ctl PATH` sets it). Commands:
]]

--- `luasip ctl ...`: returns the exit status (0 ok, 1 error, 2 usage).
-- @tparam {string,...} words the words after `ctl`
-- @tparam[opt] file out
-- @tparam[opt] file errout
-- @treturn integer
function M.main(words, out, errout)
  out, errout = out or io.stdout, errout or io.stderr
  local path, as_json, timeout = nil, false, 10
  local rest = {}
  local i = 1
  while i <= #words do
    local w = words[i]
    if w == "--socket" or w == "--ctl" then
      path = words[i + 1]
      i = i + 2
    elseif w:match("^%-%-socket=") then
      path = w:match("=(.*)$")
      i = i + 1
    elseif w == "--json" then
      as_json = true
      i = i + 1
    elseif w == "--timeout" then
      timeout = tonumber(words[i + 1])
      i = i + 2
    elseif w == "-h" or w == "--help" or w == "help" and #rest == 0 then
      out:write(format(M.usage, M.default_path()), M.help, "\n")
      return 0
    else
      rest[#rest + 1] = w
      i = i + 1
    end
  end
  if #rest == 0 or not timeout or path == "" then
    errout:write(format(M.usage, M.default_path()), M.help, "\n")
    return 2
  end
  for _, w in ipairs(rest) do
    if w:find("[%c]") then
      errout:write("luasip ctl: control characters in an argument\n")
      return 2
    end
  end
  path = path or M.default_path()
  local line = (as_json and "json " or "") .. concat(rest, " ") .. "\n"
  local reply, err = core.ctl_call(path, line, math.floor(timeout * 1000))
  if not reply then
    errout:write("luasip ctl: ", err, "\n")
    return 1
  end
  local status, body = reply:match("^([^\n]*)\n?(.*)$")
  if status == "ok" then
    out:write(body)
    return 0
  end
  errout:write("luasip ctl: ", (status ~= "" and status or "no reply"), "\n")
  return 1
end

return M
