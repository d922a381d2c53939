--- `luasip run` as a child process for specs: started in the background,
-- its log in a file, stopped by its PID only.
local socket = require "socket"

local P = {}

local Proc = {}
Proc.__index = Proc

local started = {}

local function quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

-- The build folder the specs run against (build, or build-asan under
-- make test-asan), from the cpath busted was given.
local function build_dir()
  return package.cpath:match("([%w%-_]+)/lib/%?%.so") or "build"
end

local function slurp(path)
  local f = io.open(path)
  if not f then
    return ""
  end
  local s = f:read("a")
  f:close()
  return s
end

--- Start `luasip <args...>` (e.g. "run", script, "--listen", ...). Returns
-- a Proc; its log (stderr) and output (stdout) go to files in a temporary
-- folder; its exit status is written when it ends. `env`: extra
-- environment variables, `{ NAME = "value" }`.
function P.start(args, dir, env)
  local self = setmetatable({ dir = dir or os.tmpname() .. ".d" }, Proc)
  assert(os.execute("mkdir -p " .. quote(self.dir)))
  self.log_path = self.dir .. "/stderr"
  self.out_path = self.dir .. "/stdout"
  self.rc_path = self.dir .. "/rc"
  self.pid_path = self.dir .. "/pid"
  local words = {}
  for i, a in ipairs(args) do
    words[i] = quote(a)
  end
  local vars = {}
  for k, v in pairs(env or {}) do
    vars[#vars + 1] = k .. "=" .. quote(v)
  end
  local cmd = string.format(
    "(%s LUASIP_BUILD=%s lua5.4 bin/luasip %s >%s 2>%s </dev/null & echo $! >%s; wait $!; echo $? >%s)"
      .. " >/dev/null 2>&1 &",
    table.concat(vars, " "), quote(build_dir()), table.concat(words, " "), quote(self.out_path), quote(self.log_path),
    quote(self.pid_path), quote(self.rc_path))
  assert(os.execute(cmd))
  local deadline = socket.gettime() + 5
  repeat
    self.pid = tonumber(slurp(self.pid_path):match("%d+"))
    if not self.pid then
      socket.sleep(0.01)
    end
  until self.pid or socket.gettime() > deadline
  assert(self.pid, "luasip did not start")
  started[#started + 1] = self
  return self
end

--- Run `luasip <args...>` to its end: exit status, stdout, stderr.
function P.run(args)
  local p = P.start(args)
  local rc = p:wait(20)
  return rc, slurp(p.out_path), slurp(p.log_path)
end

function Proc:log()
  return slurp(self.log_path)
end

function Proc:output()
  return slurp(self.out_path)
end

--- Wait until the log matches pattern (returns the captures) or seconds
-- pass (nil).
function Proc:wait_log(pattern, seconds)
  local deadline = socket.gettime() + (seconds or 5)
  repeat
    local caps = { self:log():match(pattern) }
    if #caps > 0 then
      return table.unpack(caps)
    end
    if self:exited() then
      return nil
    end
    socket.sleep(0.01)
  until socket.gettime() > deadline
  return nil
end

--- The port of the first listener of a transport ("udp", "tcp") once it
-- serves; nil when it did not start (see :log()).
function Proc:port(transport)
  local list = self:wait_log("serving %S+ on ([^\n]*) %(pid", 10)
  if not list then
    return nil
  end
  return tonumber(list:match((transport or "udp") .. ":[^ ]-:(%d+)"))
end

function Proc:exited()
  return slurp(self.rc_path):match("%d+") ~= nil
end

--- Wait for the process to end: its exit status, or nil after seconds.
function Proc:wait(seconds)
  local deadline = socket.gettime() + (seconds or 10)
  repeat
    local rc = tonumber(slurp(self.rc_path):match("%d+"))
    if rc then
      return rc
    end
    socket.sleep(0.01)
  until socket.gettime() > deadline
  return nil
end

function Proc:signal(name)
  if not self:exited() then
    os.execute(string.format("kill -%s %d 2>/dev/null", name, self.pid))
  end
end

--- Stop it if it still runs (TERM, then KILL after 5 s) and remove its files.
function Proc:stop()
  if not self:exited() then
    self:signal("TERM")
    if not self:wait(5) then
      self:signal("KILL")
      self:wait(5)
    end
  end
  if self.dir:match("^/tmp/") then
    os.execute("rm -rf " .. quote(self.dir))
  end
end

--- Stop every process started here.
function P.cleanup()
  for i = #started, 1, -1 do
    started[i]:stop()
    started[i] = nil
  end
end

return P
