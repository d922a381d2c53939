-- examples/registrar.lua with the SQLite and Redis location backends, run
-- as separate processes (spec/support/script_host.lua, or bin/luasip when
-- it exists) on 127.0.0.1, with a real redis-server started here on a free
-- loopback port: bindings survive a restart (sqlite), two instances share
-- one Redis, Redis down gives 500 + Retry-After and a running server,
-- Redis back gives 200 again.
local here = debug.getinfo(1, "S").source:gsub("^@", ""):match("^(.*)/[^/]*$") or "."
local N = dofile(here .. "/support/net.lua")
local socket = require "socket"

local V4 = N.V4
local root = here .. "/.."
local LUA = os.getenv("LUA") or "lua5.4"

-- A port free for both UDP and TCP on 127.0.0.1 right now.
local function free_port()
  for _ = 1, 50 do
    local t = assert(socket.tcp())
    assert(t:setsockname(V4, 0))
    local _, port = t:getsockname()
    local u = assert(socket.udp())
    local ok = u:setsockname(V4, tonumber(port))
    t:close()
    u:close()
    if ok then
      return tonumber(port)
    end
  end
  error("no free port")
end

local started = {}

-- Start a command in the background, output to a file; returns its PID.
local function spawn(cmd, logfile)
  local f = assert(io.popen(cmd .. " >'" .. logfile .. "' 2>&1 & echo $!"))
  local pid = tonumber(f:read("l"))
  f:close()
  started[#started + 1] = pid
  return pid
end

local function alive(pid)
  return os.execute("kill -0 " .. pid .. " 2>/dev/null") == true
end

local function stop(pid)
  os.execute("kill " .. pid .. " 2>/dev/null")
  for _ = 1, 100 do
    if not alive(pid) then
      break
    end
    socket.sleep(0.02)
  end
  os.execute("kill -9 " .. pid .. " 2>/dev/null")
  for i, p in ipairs(started) do
    if p == pid then
      table.remove(started, i)
      break
    end
  end
end

local function wait_for(file, pattern, seconds)
  local deadline = socket.gettime() + (seconds or 10)
  repeat
    local f = io.open(file)
    if f then
      local s = f:read("a")
      f:close()
      for _, p in ipairs(type(pattern) == "table" and pattern or { pattern }) do
        if s:find(p) then
          return true
        end
      end
    end
    socket.sleep(0.05)
  until socket.gettime() > deadline
  return false
end

local function read(file)
  local f = io.open(file)
  if not f then
    return ""
  end
  local s = f:read("a")
  f:close()
  return s
end

-- examples/registrar.lua on udp+tcp 127.0.0.1:port with --location url.
local function start_registrar(dir, port, url, name)
  local log = dir .. "/" .. name .. ".log"
  local runner
  local f = io.open(root .. "/bin/luasip")
  if f then
    f:close()
    runner = root .. "/bin/luasip run"
  else
    runner = string.format("env LUA_PATH='%s' LUA_CPATH='%s' %s %s/spec/support/script_host.lua",
      package.path, package.cpath, LUA, root)
  end
  local cmd = string.format("exec %s %s/examples/registrar.lua --listen udp:127.0.0.1:%d --listen tcp:127.0.0.1:%d"
    .. " --location '%s'", runner, root, port, port, url)
  local pid = spawn(cmd, log)
  -- ready: "listening on TCP:..." (script_host) or "serving ... tcp:..." (luasip run)
  assert(wait_for(log, { "[Ll]istening on [^\n]*[Tt][Cc][Pp]", "serving [^\n]*tcp:" }, 10),
    "registrar did not start:\n" .. read(log))
  return pid, log
end

local function start_redis(dir, port)
  local log = dir .. "/redis-" .. port .. ".log"
  local pid = spawn(string.format("exec redis-server --port %d --bind 127.0.0.1 --save '' --appendonly no"
    .. " --dir '%s'", port, dir), log)
  assert(wait_for(log, "Ready to accept connections", 10), "redis-server did not start:\n" .. read(log))
  return pid
end

-- Send a REGISTER over UDP to 127.0.0.1:port and return the parsed answer.
local function register(port, t)
  local peer = N.udp(V4)
  local headers = {}
  for _, c in ipairs(t.contacts or {}) do
    headers[#headers + 1] = "Contact: " .. c
  end
  local aor = "sip:" .. t.user .. "@example.com"
  local bytes = N.request { method = "REGISTER", uri = "sip:example.com", to = "<" .. aor .. ">",
    from = "<" .. aor .. ">;tag=1", headers = headers, via_port = peer.port, cseq = t.cseq or 1 }
  peer:send(bytes, V4, port)
  local d = peer:recv(t.wait or 5)
  peer:close()
  return d and N.parse(d)
end

describe("registrar with persistent and shared location backends", function()
  local dir
  before_each(function()
    dir = N.tmpdir()
  end)
  after_each(function()
    for i = #started, 1, -1 do
      stop(started[i])
    end
    N.cleanup()
    N.rmdir(dir)
  end)

  it("sqlite: a binding survives a restart of the registrar", function()
    local port = free_port()
    local url = "sqlite:" .. dir .. "/loc.db"
    local pid = start_registrar(dir, port, url, "a")
    local r = assert(register(port, { user = "carol", contacts = { "<sip:carol@192.0.2.10:5060>;expires=600" } }))
    assert.are.equal(200, r.status)
    stop(pid)
    assert.is_false(alive(pid))
    start_registrar(dir, port, url, "b")
    r = assert(register(port, { user = "carol" }))
    assert.are.equal(200, r.status)
    local c = r:get("Contact")
    assert.matches("^<sip:carol@192%.0%.2%.10:5060>;expires=%d+$", c)
    local e = tonumber(c:match("expires=(%d+)"))
    assert.is_true(e <= 600 and e >= 590)
  end)

  it("redis: two registrars share bindings; Redis down: 500 + Retry-After; Redis back: 200", function()
    local rport, p1, p2 = free_port(), free_port(), free_port()
    local url = "redis://127.0.0.1:" .. rport .. "/0?timeout=500&connect_timeout=500"
    local redis = start_redis(dir, rport)
    local a, alog = start_registrar(dir, p1, url, "a")
    local b = start_registrar(dir, p2, url, "b")
    local r = assert(register(p1, { user = "dave", contacts = { "<sip:dave@192.0.2.20>" } }))
    assert.are.equal(200, r.status)
    r = assert(register(p2, { user = "dave", contacts = { "<sip:dave@192.0.2.21>;q=0.5" } }))
    assert.are.equal(200, r.status)
    assert.are.equal(2, #r:all("Contact"))
    r = assert(register(p1, { user = "dave" }))
    assert.are.same({ "sip:dave@192.0.2.20", "sip:dave@192.0.2.21" }, {
      r:all("Contact")[1]:match("^<([^>]+)>"), r:all("Contact")[2]:match("^<([^>]+)>") })

    stop(redis)
    r = assert(register(p1, { user = "erin", contacts = { "<sip:erin@192.0.2.30>" } }))
    assert.are.equal(500, r.status)
    assert.are.equal("5", r:get("Retry-After"))
    assert.is_true(alive(a) and alive(b))
    assert.matches("registrar: location", read(alog), 1, true)

    start_redis(dir, rport)
    -- the registrars reconnect by themselves on their next operation
    local status
    for i = 1, 20 do
      r = register(p1, { user = "erin", cseq = 1 + i, contacts = { "<sip:erin@192.0.2.30>" } })
      status = r and r.status
      if status == 200 then
        break
      end
      socket.sleep(0.1)
    end
    assert.are.equal(200, status)
    r = assert(register(p2, { user = "erin" }))
    assert.are.equal(200, r.status)
    assert.matches("^<sip:erin@192%.0%.2%.30>", r:get("Contact"))
  end)
end)
