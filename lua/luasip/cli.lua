--- The `luasip` command: run or check a routing script.
--
--     luasip run SCRIPT [--listen SPEC]... [--log-level L] [--trace] [--watch] [script options]
--     luasip check SCRIPT [script options]
--     luasip ctl [--socket PATH] [--json] COMMAND [ARG]...
--
-- `run` serves in the foreground. SIGHUP (and with `--watch`, a change of
-- the file) reloads the script: new requests take the new policy, requests
-- in progress finish under the one they started with, state kept by
-- luasip modules (registrations, ...) stays, and a script that fails to
-- load leaves the running policy in place. SIGINT or SIGTERM stop it: new
-- requests get 503, requests in progress get `--grace` seconds to finish
-- (then 503), the listeners close and the command exits 0.
-- @module luasip.cli
local sip = require "luasip"
local core = require "luasip.core"
local server = require "luasip.server"
local script = require "luasip.script"
local log = require "luasip.log"

local M = {}

local format, concat = string.format, table.concat
local traceback = core.traceback
local type, pairs, ipairs, tostring, tonumber, next = type, pairs, ipairs, tostring, tonumber, next

--- Defaults of `luasip run`.
M.defaults = {
  listen = { "udp:127.0.0.1:5060", "tcp:127.0.0.1:5060" },
  grace = 5,                 -- seconds requests in progress get at shutdown
  instructions = 10000000,   -- Lua instructions a handler may run between two waits
  memory = 1024 * 1024 * 1024, -- bytes the Lua state may use
  handler_memory = 16 * 1024 * 1024, -- bytes a handler may add between two waits
  watch_delay = 0.2,         -- seconds of quiet after a file change before reloading
}

local usage = [[
usage: luasip run SCRIPT [options] [script options]
       luasip check SCRIPT [script options]
       luasip run SCRIPT --help     (lists the script's own options)
       luasip ctl [--socket PATH] [--json] COMMAND [ARG]...   (luasip ctl help)
       luasip version

options of run:
  --listen SPEC        listen on SPEC (repeatable; replaces the script's
                       `listen`): udp:127.0.0.1:5060, tcp:[::1]:5060,
                       tls:0.0.0.0:5061, ws:127.0.0.1:8080 (SIP over
                       WebSocket, RFC 7118), wss:127.0.0.1:8443 (default:
                       the script's, else udp and tcp on 127.0.0.1:5060)
  --tls-cert FILE      PEM certificate (chain) of tls: and wss: listeners
                       (replaces the script's server.tls.cert)
  --tls-key FILE       its PEM private key (server.tls.key)
  --tls-ca FILE        PEM CA bundle to verify peers with (server.tls.ca)
  --log-level LEVEL    error, warn, info (default) or debug
  --log-format FORMAT  text (default) or json (one JSON object a line)
  --trace              print every SIP message in and out (stderr)
  --watch              reload the script when its file changes
  --grace SECONDS      at SIGINT/SIGTERM, time requests in progress get to
                       finish before they are answered 503 (default 5)
  --instructions N     Lua instructions a handler may run between two
                       waits before it is stopped with a 500 (default
                       10000000; 0: no limit)
  --memory SIZE        memory limit of the Lua state, bytes or with a K, M
                       or G suffix (default 1G; 0: no limit)
  --handler-memory SIZE  bytes a handler may add to the state between two
                       waits before it is stopped with a 500 (default 16M;
                       0: no limit)
  --dns SERVERS        DNS servers for RFC 3263 (host names in next hops):
                       127.0.0.1:5353 or a comma-separated list (default:
                       those of /etc/resolv.conf)
  --dns-timeout S      seconds a DNS resolution may take (default 5)
  --metrics ADDR:PORT  serve Prometheus metrics at http://ADDR:PORT/metrics
                       (e.g. 127.0.0.1:9090)
  --ctl PATH           the control socket of `luasip ctl` (default
                       /run/luasip/luasip.ctl as root; `off`: none)
]]

local own_options = script.command_options

local function parse_size(text)
  local n, unit = tostring(text):match("^(%d+)([KkMmGg]?)$")
  if not n then
    return nil
  end
  local mult = ({ [""] = 1, k = 1024, m = 1024 ^ 2, g = 1024 ^ 3 })[unit:lower()]
  return math.tointeger(tonumber(n) * mult)
end

-- Split the words after the command into luasip's options, the script
-- path and the rest (the script's options, parsed once it is loaded).
local function parse_args(words)
  local g = { listen = {} }
  local rest = {}
  local i = 1
  while i <= #words do
    local word = words[i]
    local name, inline = script.option_word(word)
    local kind = name and own_options[name]
    if kind == "flag" then
      local err = script.flag_value_error(name, inline)
      if err then
        return nil, err
      end
      g[name] = true
      i = i + 1
    elseif kind == "value" then
      local value, next_i = script.option_value(words, i, name, inline)
      if not value then
        return nil, next_i
      end
      if name == "listen" then
        g.listen[#g.listen + 1] = value
      else
        g[name] = value
      end
      i = next_i
    else
      if word == "-h" then
        g.help = true
      elseif not name and not g.script then
        g.script = word
      else
        rest[#rest + 1] = word
      end
      i = i + 1
    end
  end
  if g["log-level"] and not ({ error = 1, warn = 1, info = 1, debug = 1 })[g["log-level"]] then
    return nil, format("--log-level must be error, warn, info or debug (got %q)", g["log-level"])
  end
  if g["log-format"] and g["log-format"] ~= "text" and g["log-format"] ~= "json" then
    return nil, format("--log-format must be text or json (got %q)", g["log-format"])
  end
  if g["dns-timeout"] then
    local s = tonumber(g["dns-timeout"])
    if not s or s <= 0 then
      return nil, format("--dns-timeout must be a number of seconds (got %q)", g["dns-timeout"])
    end
    g["dns-timeout"] = s
  end
  if g.grace then
    local s = tonumber(g.grace)
    if not s or s < 0 then
      return nil, format("--grace must be a number of seconds (got %q)", g.grace)
    end
    g.grace = s
  end
  if g.instructions then
    local n = math.tointeger(tonumber(g.instructions))
    if not n or n < 0 then
      return nil, format("--instructions must be a non-negative integer (got %q)", g.instructions)
    end
    g.instructions = n
  end
  for _, name in ipairs { "memory", "handler-memory" } do
    if g[name] then
      local n = parse_size(g[name])
      if not n then
        return nil, format("--%s must be bytes, or a number with K, M or G (got %q)", name, g[name])
      end
      g[name] = n
    end
  end
  return g, rest
end

local function say(out, text)
  out:write(text, text:sub(-1) == "\n" and "" or "\n")
end

-- Load and check a script and its options; returns spec, options or nil,
-- message, exit code.
local function prepare(g, rest)
  local spec, err = script.load(g.script)
  if not spec then
    return nil, err, 1
  end
  local opts, oerr = script.parse_options(spec, rest)
  if not opts then
    return nil, g.script .. ": " .. oerr, 2
  end
  return spec, opts
end

local function script_help(g, spec)
  return format("%s\noptions of %s:\n%s\n", usage, g.script, script.options_help(spec))
end

-- Run fn(ctx) (a script's setup) in a coroutine; done(ok, err) when it ends.
local function call_setup(spec, ctx, done)
  if not spec.setup then
    return done(true)
  end
  server.spawn(function()
    local ok, err = xpcall(spec.setup, traceback, ctx)
    done(ok, err)
  end)
end

-- Modules a script loaded itself (not luasip's, not the standard ones):
-- dropped from package.loaded before a reload so that it sees their new
-- code too.
local function loaded_names()
  local out = {}
  for name in pairs(package.loaded) do
    out[name] = true
  end
  return out
end

local function forget_script_modules(rt)
  for name in pairs(rt.script_modules) do
    if not name:match("^luasip") then
      package.loaded[name] = nil
    end
  end
  rt.script_modules = {}
end

local function note_script_modules(rt, before)
  for name in pairs(package.loaded) do
    if not before[name] then
      rt.script_modules[name] = true
    end
  end
end

local function same_list(a, b)
  if #a ~= #b then
    return false
  end
  for i = 1, #a do
    if a[i] ~= b[i] then
      return false
    end
  end
  return true
end

local function as_list(v)
  if type(v) == "string" then
    return { v }
  end
  return v
end

-- The request handler of the server: the policy current when the request
-- arrives serves it to the end, whatever reloads happen meanwhile.
local function dispatcher(rt)
  return function(req)
    local policy = rt.current
    local method = req.method
    if rt.draining then
      if method ~= "ACK" then
        req:reply(503, "Service Unavailable (shutting down)", { ["Retry-After"] = "5" })
      end
      return
    end
    local spec = policy.spec
    local handler = script.handler(spec, method)
    if not handler then
      if method ~= "ACK" then
        req:reply(405, nil, { Allow = script.allow(spec) })
      end
      return
    end
    local count = rt.count_request
    if count then
      count(method)
    end
    rt.inflight[req] = true
    local refused = server.memory_refusals()
    local ok, err = xpcall(handler, core.traceback, req)
    rt.inflight[req] = nil
    if not ok then
      -- the C side's one path: log line and count, then the 500 decision
      err = server.memory_error(err, refused)
      rt.errors = rt.errors + 1 -- handler errors, for the metrics
      core.script_error(err, nil, method .. " handler of " .. rt.path .. " failed")
      if spec.failure then
        local fok, ferr = xpcall(spec.failure, core.traceback, req, err)
        if not fok then
          core.script_error(ferr, nil, "failure hook of " .. rt.path .. " failed")
        end
      end
      core.script_failed(req)
    end
  end
end

local function reload(rt, why)
  if rt.draining then
    return
  end
  if rt.reloading then
    rt.reload_again = why
    return
  end
  rt.reloading = true
  local before = loaded_names()
  local saved = rt.script_modules
  forget_script_modules(rt)
  local function finish(ok, err, spec, ctx)
    rt.reloading = false
    if ok then
      note_script_modules(rt, before)
      rt.generation = rt.generation + 1
      ctx.generation = rt.generation
      rt.current = { spec = spec, ctx = ctx }
      rt.reloads = rt.reloads + 1
      log.info("reloaded %s (%s): generation %d", rt.path, why, rt.generation)
    else
      rt.script_modules = saved
      rt.failed_reloads = rt.failed_reloads + 1
      log.error("reload of %s (%s) failed, the running policy stays: %s", rt.path, why, tostring(err))
    end
    local again = rt.reload_again
    rt.reload_again = nil
    if again then
      reload(rt, again)
    end
  end
  local spec, err = script.load(rt.path)
  if not spec then
    return finish(false, err)
  end
  local opts, oerr = script.parse_options(spec, rt.rest)
  if not opts then
    return finish(false, oerr)
  end
  if #rt.cli_listen == 0 and spec.listen and not same_list(as_list(spec.listen), rt.listen) then
    log.warn("%s: a new `listen` takes effect at the next start, not on reload", rt.path)
  end
  local ctx = { options = opts, server = rt.server, state = rt.state, script = rt.path, log = log }
  call_setup(spec, ctx, function(ok, serr)
    finish(ok, serr, spec, ctx)
  end)
end

local function finish_shutdown(rt)
  if rt.stopped then
    return
  end
  rt.stopped = true
  local spec = rt.current.spec
  if spec.stop then
    local ok, err = xpcall(spec.stop, traceback, rt.current.ctx)
    if not ok then
      log.error("stop hook of %s failed: %s", rt.path, tostring(err))
    end
  end
  for _, h in ipairs(rt.handles) do
    h:stop()
  end
  rt.server:stop()
  core.stop()
end

local function shutdown(rt, signame)
  if rt.draining then
    log.warn("%s again: stopping now", signame)
    return finish_shutdown(rt)
  end
  rt.draining = true
  local waiting = 0
  for _ in pairs(rt.inflight) do
    waiting = waiting + 1
  end
  log.info("%s: shutting down (%d requests in progress, up to %gs)", signame, waiting, rt.grace)
  local deadline = core.now() + rt.grace * 1000
  local poll
  poll = core.timer(0, 20, function()
    if next(rt.inflight) ~= nil and core.now() < deadline then
      return
    end
    poll:stop()
    for req in pairs(rt.inflight) do
      if not req:is_closed() and not req:handled() and req.method ~= "ACK" then
        req:reply(503, "Service Unavailable (shutting down)")
      end
    end
    finish_shutdown(rt)
  end)
end

local function basename(path)
  return path:match("([^/]+)$") or path
end

local function dirname(path)
  return path:match("^(.*)/[^/]*$") or "."
end

-- --watch: the directory is watched, not the file, since editors replace
-- a file by renaming a new one over it.
local function watch(rt)
  local name = basename(rt.path)
  local pending
  local h, err = core.watch(dirname(rt.path), function(file)
    if file ~= name then
      return
    end
    if pending then
      pending:stop()
    end
    pending = core.timer(math.floor(M.defaults.watch_delay * 1000), 0, function()
      pending = nil
      reload(rt, "file changed")
    end)
  end)
  if not h then
    return nil, err
  end
  rt.handles[#rt.handles + 1] = h
  return true
end

-- --metrics and the control socket (--ctl, on by default: a default path
-- in use by another server is left to it).
local function start_operations(rt, g)
  local runtime = function()
    return { reloads = rt.reloads, failed_reloads = rt.failed_reloads, errors = rt.errors,
      generation = rt.generation }
  end
  if g.metrics then
    local metrics = require "luasip.metrics"
    metrics.set_runtime(runtime)
    rt.count_request = metrics.count_request
    local h, err = metrics.serve(g.metrics, rt.server)
    if not h then
      return nil, "--metrics " .. g.metrics .. ": " .. tostring(err)
    end
    rt.handles[#rt.handles + 1] = { stop = function() h:close() end }
    log.info("metrics at http://%s:%d/metrics", g.metrics:match("^(.*):%d+$"), h:port())
  end
  if g.ctl ~= "off" and g.ctl ~= "none" then
    local ctl = require "luasip.ctl"
    local path = g.ctl or ctl.default_path()
    local h, err = ctl.serve(path, {
      server = rt.server, runtime = runtime,
      reload = function(why)
        reload(rt, why)
        return rt.generation
      end,
    })
    if not h then
      if g.ctl then
        return nil, "--ctl " .. path .. ": " .. tostring(err)
      end
      log.debug("no control socket (%s); --ctl PATH names another", tostring(err))
    else
      rt.handles[#rt.handles + 1] = { stop = function() h:close() end }
      log.debug("control socket %s", path)
    end
  end
  return true
end

local function run(g, rest)
  log.configure { level = g["log-level"] or "info", format = g["log-format"] or "text" }
  local before = loaded_names()
  local spec, opts, code = prepare(g, rest)
  if not spec then
    say(io.stderr, "luasip: " .. opts)
    return code
  end
  if g.help then
    say(io.stdout, script_help(g, spec))
    return 0
  end
  local limits = spec.limits or {}
  local ok, lerr = sip.set_limits {
    instructions = g.instructions or limits.instructions or M.defaults.instructions,
    memory = g.memory or limits.memory or M.defaults.memory,
    handler_memory = g["handler-memory"] or limits.handler_memory or M.defaults.handler_memory,
  }
  if not ok then
    log.error("limits: %s", lerr)
    return 1
  end
  if g.dns or g["dns-timeout"] then
    local dok, derr = sip.dns { servers = g.dns, timeout = g["dns-timeout"] }
    if not dok then
      log.error("--dns: %s", derr)
      return 1
    end
  end
  local listen = #g.listen > 0 and g.listen or as_list(spec.listen) or M.defaults.listen
  local sopts = {}
  for k, v in pairs(spec.server or {}) do
    sopts[k] = v
  end
  sopts.listen, sopts.start = listen, false
  if g["tls-cert"] or g["tls-key"] or g["tls-ca"] then
    local tls = {}
    for k, v in pairs(sopts.tls or {}) do
      tls[k] = v
    end
    tls.cert = g["tls-cert"] or tls.cert
    tls.key = g["tls-key"] or tls.key
    tls.ca = g["tls-ca"] or tls.ca
    sopts.tls = tls
  end
  local srv, serr = sip.server(sopts)
  if not srv then
    log.error("%s: server: %s", g.script, serr)
    return 1
  end
  if g.trace then
    srv:set_trace(true)
  end
  local rt = {
    path = g.script, rest = rest, server = srv, state = {}, inflight = {}, handles = {},
    cli_listen = g.listen, listen = listen, grace = g.grace or M.defaults.grace,
    generation = 1, reloads = 0, failed_reloads = 0, errors = 0, script_modules = {},
  }
  local ctx = { options = opts, server = srv, state = rt.state, script = g.script, log = log, generation = 1 }
  -- a setup that waits (a database to connect) runs on the loop; the
  -- loop is stopped only if it runs, as a stop left pending would end the
  -- next run at once
  local setup_done, setup_ok, setup_err, waiting = false, nil, nil, false
  call_setup(spec, ctx, function(sok, err)
    setup_done, setup_ok, setup_err = true, sok, err
    if waiting then
      core.stop()
    end
  end)
  if not setup_done then
    waiting = true
    core.run()
    waiting = false
  end
  if not setup_ok then
    log.error("%s: setup failed: %s", g.script, tostring(setup_err or "it never finished"))
    srv:close()
    return 1
  end
  note_script_modules(rt, before)
  rt.current = { spec = spec, ctx = ctx }
  srv:on_request(dispatcher(rt))
  srv:on_response(function(res)
    local on_response = rt.current.spec.response
    if on_response then
      server.spawn(on_response, res)
    end
  end)
  local started, err = srv:start()
  if not started then
    log.error("%s: %s", g.script, err)
    srv:close()
    return 1
  end
  for _, signame in ipairs { "SIGINT", "SIGTERM" } do
    rt.handles[#rt.handles + 1] = assert(core.signal(signame, function(name)
      shutdown(rt, name)
    end))
  end
  rt.handles[#rt.handles + 1] = assert(core.signal("SIGHUP", function()
    reload(rt, "SIGHUP")
  end))
  if g.watch then
    local wok, werr = watch(rt)
    if not wok then
      log.error("--watch %s: %s", g.script, werr)
      srv:close()
      return 1
    end
  end
  local mok, merr = start_operations(rt, g)
  if not mok then
    log.error("%s: %s", g.script, merr)
    srv:close()
    return 1
  end
  log.info("serving %s on %s (pid %d)", g.script, concat(srv:listeners(), " "), M.pid())
  srv:run()
  log.flush()
  log.info("stopped (%d reloads, %d failed reloads, %d script errors)", rt.reloads, rt.failed_reloads,
    core.script_errors())
  return 0
end

local function check(g, rest)
  local spec, opts, code = prepare(g, rest)
  if not spec then
    say(io.stderr, "luasip: " .. opts)
    return code == 2 and 2 or 1
  end
  local listen = #g.listen > 0 and g.listen or as_list(spec.listen) or M.defaults.listen
  for _, l in ipairs(listen) do
    if not l:match("^%a+:.+:%d+$") then
      say(io.stderr, format("luasip: %s: listen %q is not transport:address:port", g.script, l))
      return 1
    end
  end
  local handlers = spec.request and { "request" } or {}
  for m in pairs(spec.methods or {}) do
    handlers[#handlers + 1] = m
  end
  table.sort(handlers)
  say(io.stdout, format("%s: ok (handlers: %s; listen: %s)", g.script, concat(handlers, ", "),
    concat(listen, " ")))
  return 0
end

--- The process id (for log lines and tests).
-- @treturn integer
function M.pid()
  local f = io.open("/proc/self/stat")
  local pid = f and f:read("n")
  if f then
    f:close()
  end
  return pid or 0
end

--- Run the command.
-- @tparam table argv the words after `luasip` (`arg` of the script)
-- @treturn integer the exit status
function M.main(argv)
  local command = argv[1]
  local words = table.move(argv, 2, #argv, 1, {})
  if command == nil or command == "help" or command == "--help" or command == "-h" then
    say(command and io.stdout or io.stderr, usage)
    return command and 0 or 2
  end
  if command == "version" or command == "--version" then
    say(io.stdout, sip._VERSION)
    return 0
  end
  if command == "ctl" then
    return require("luasip.ctl").main(words)
  end
  if command ~= "run" and command ~= "check" then
    say(io.stderr, format("luasip: unknown command %q\n%s", command, usage))
    return 2
  end
  local g, rest = parse_args(words)
  if not g then
    say(io.stderr, "luasip: " .. rest)
    return 2
  end
  if not g.script then
    if g.help then
      say(io.stdout, usage)
      return 0
    end
    say(io.stderr, format("luasip: %s needs a SCRIPT\n%s", command, usage))
    return 2
  end
  if command == "check" then
    if g.help then
      local spec, err = script.load(g.script)
      if not spec then
        say(io.stderr, "luasip: " .. err)
        return 1
      end
      say(io.stdout, script_help(g, spec))
      return 0
    end
    return check(g, rest)
  end
  return run(g, rest)
end

return M
