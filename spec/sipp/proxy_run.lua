-- Runs a script written to the `luasip run` contract (a table with listen,
-- server, options, setup, request / methods) in the foreground, for the
-- proxy tests and the benchmark until the `luasip` command is on this
-- branch:
--
--     lua5.4 spec/sipp/proxy_run.lua SCRIPT [--listen SPEC]... [--OPTION [VALUE]]...
--
-- Prints "listening on SPEC" per listener, then serves until killed
-- (SIGTERM). An OPTIONS to user "stats" gets srv:stats() as its body
-- ("name value" lines) when the script does not handle it first.
local sip = require "luasip"

local path = arg[1]
if not path then
  io.stderr:write("usage: proxy_run.lua SCRIPT [--listen SPEC]... [--OPTION [VALUE]]...\n")
  os.exit(2)
end
local script = assert(dofile(path))
local listen, options = {}, {}
local defs = script.options or {}
local i = 2
while i <= #arg do
  local a = arg[i]
  local name = a:match("^%-%-(.+)$")
  if a == "--listen" and arg[i + 1] then
    listen[#listen + 1] = arg[i + 1]
    i = i + 2
  elseif name and defs[name] and defs[name].flag then
    options[name] = true
    i = i + 1
  elseif name and defs[name] and arg[i + 1] then
    options[name] = arg[i + 1]
    i = i + 2
  else
    io.stderr:write("proxy_run.lua: unknown argument " .. a .. "\n")
    os.exit(2)
  end
end
for k, d in pairs(defs) do
  if options[k] == nil and d.default ~= nil then
    options[k] = d.default
  end
end
if #listen == 0 then
  listen = script.listen or { "udp:127.0.0.1:5060" }
end

local sopts = {}
for k, v in pairs(script.server or {}) do
  sopts[k] = v
end
sopts.listen = listen
local srv = assert(sip.server(sopts))
for id = 0, 15 do
  local l = srv:listener(id)
  if l then
    local host = l.host:find(":", 1, true) and "[" .. l.host .. "]" or l.host
    print(("listening on %s:%s:%d"):format(l.transport:lower(), host, l.port))
  end
end
io.stdout:flush()

local function stats_body()
  local st = srv:stats()
  local names = {}
  for k in pairs(st) do
    names[#names + 1] = k
  end
  table.sort(names)
  local lines = {}
  for _, k in ipairs(names) do
    lines[#lines + 1] = k .. " " .. tostring(st[k])
  end
  return table.concat(lines, "\n") .. "\n"
end

local handler = script.request
if not handler and script.methods then
  local methods = script.methods
  local allow = {}
  for m in pairs(methods) do
    allow[#allow + 1] = m
  end
  table.sort(allow)
  local allow_s = table.concat(allow, ", ")
  handler = function(req)
    local fn = methods[req.method]
    if fn then
      return fn(req)
    end
    if req.method ~= "ACK" then
      return req:reply(405, nil, { Allow = allow_s })
    end
  end
end
local request = handler
srv:on_request(function(req)
  if req.method == "OPTIONS" and req.uri:find("^sip:stats@") then
    return req:reply(200, nil, { ["Content-Type"] = "text/plain" }, stats_body())
  end
  return request(req)
end)
if script.response then
  srv:on_response(script.response)
end
if script.setup then
  sip.spawn(function()
    script.setup({ options = options, server = srv, state = {} })
  end)
end
srv:run()
