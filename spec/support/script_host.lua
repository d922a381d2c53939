-- A minimal host for scripts written to the `luasip run` contract (a file
-- returning { listen, server, options, setup, request | methods }), for
-- the specs and the SIPp runners until the luasip command is on main.
--
-- As a module: host.load(path, { listen = {...}, options = {...} }) -> srv,
-- script (setup already run). As a program:
--     lua5.4 spec/support/script_host.lua SCRIPT [--listen SPEC]... [--NAME VALUE]...
-- prints "listening on SPEC" per listener, then serves until killed.
local sip = require "luasip"

local M = {}

local function dispatch(script)
  if script.request then
    return script.request
  end
  local methods = script.methods or {}
  local allow = {}
  for name in pairs(methods) do
    allow[#allow + 1] = name
  end
  table.sort(allow)
  return function(req)
    local fn = methods[req.method]
    if fn then
      return fn(req)
    end
    if req.method ~= "ACK" then
      req:reply(405, nil, { { "Allow", table.concat(allow, ", ") } })
    end
  end
end

function M.load(path, args)
  args = args or {}
  local script = assert(dofile(path))
  local options = {}
  for name, o in pairs(script.options or {}) do
    options[name] = o.default
  end
  for k, v in pairs(args.options or {}) do
    options[k] = v
  end
  local sopts = {}
  for k, v in pairs(script.server or {}) do
    sopts[k] = v
  end
  sopts.listen = args.listen or script.listen
  local srv = assert(sip.server(sopts))
  if script.setup then
    local done, err
    sip.spawn(function()
      local ok, e = pcall(script.setup, { options = options, server = srv, state = {} })
      done, err = true, not ok and e
    end)
    while not done do
      sip.step()
    end
    assert(not err, err)
  end
  srv:on_request(dispatch(script))
  return srv, script
end

if arg and arg[0] and arg[0]:match("script_host%.lua$") then
  local path = assert(arg[1], "usage: script_host.lua SCRIPT [--listen SPEC]... [--NAME VALUE]...")
  local listen, options = {}, {}
  local i = 2
  while i <= #arg do
    local name, value = arg[i]:match("^%-%-(.+)$"), arg[i + 1]
    assert(name and value, "bad argument " .. tostring(arg[i]))
    if name == "listen" then
      listen[#listen + 1] = value
    else
      options[name] = value
    end
    i = i + 2
  end
  local srv = M.load(path, { listen = #listen > 0 and listen or nil, options = options })
  local id = 0
  while true do
    local l = srv:listener(id)
    if not l then
      break
    end
    print(string.format("listening on %s:%s:%d", l.transport or "?", l.host, l.port))
    id = id + 1
  end
  io.stdout:flush()
  srv:run()
end

return M
