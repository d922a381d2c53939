-- dnsmasq for the DNS specs: started as a plain child process (no daemon)
-- on 127.0.0.1:PORT with a generated configuration, stopped, paused and
-- resumed by its PID only. Run inside the tests' loopback-only network
-- namespace (spec/dns/run.sh).
local socket = require "socket"

local D = {}
D.__index = D

local function quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
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

-- A DNS query for "a.test" A (RFC 1035 §4.1), for the readiness probe.
local PROBE = "\18\52\1\0\0\1\0\0\0\0\0\0\1a\4test\0\0\1\0\1"

local function answers(port)
  local u = socket.udp()
  u:settimeout(0.1)
  u:sendto(PROBE, "127.0.0.1", port)
  local r = u:receive()
  u:close()
  return r ~= nil
end

--- Start dnsmasq with these configuration lines on 127.0.0.1:port; waits
-- (5 s at most) until it answers. Returns the handle or raises.
function D.start(lines, port)
  local self = setmetatable({ port = port or 5353, dir = os.tmpname() .. ".d" }, D)
  assert(os.execute("mkdir -p " .. quote(self.dir)))
  local conf = self.dir .. "/dnsmasq.conf"
  local f = assert(io.open(conf, "w"))
  f:write(table.concat(lines, "\n"), "\n")
  f:close()
  local cmd = string.format(
    "(env -u LD_PRELOAD dnsmasq --no-daemon --port=%d --listen-address=127.0.0.1 --bind-interfaces --no-resolv"
      .. " --no-hosts --pid-file= --conf-file=%s >%s 2>&1 </dev/null & echo $! >%s) >/dev/null 2>&1",
    self.port, quote(conf), quote(self.dir .. "/log"), quote(self.dir .. "/pid"))
  assert(os.execute(cmd))
  local deadline = socket.gettime() + 5
  repeat
    self.pid = self.pid or tonumber(slurp(self.dir .. "/pid"):match("%d+"))
    if self.pid and answers(self.port) then
      return self
    end
    socket.sleep(0.02)
  until socket.gettime() > deadline
  local log = slurp(self.dir .. "/log")
  self:stop()
  error("dnsmasq did not start: " .. log)
end

function D:signal(sig)
  if self.pid then
    os.execute(string.format("kill -%s %d 2>/dev/null", sig, self.pid))
  end
end

--- SIGSTOP: it stays bound but answers nothing (a slow server).
function D:pause()
  self:signal("STOP")
end

function D:resume()
  self:signal("CONT")
end

--- Stop it (SIGCONT, SIGTERM, then SIGKILL) and remove its files.
function D:stop()
  if self.pid then
    self:signal("CONT")
    self:signal("TERM")
    for _ = 1, 50 do
      if not os.execute(string.format("kill -0 %d 2>/dev/null", self.pid)) then
        break
      end
      socket.sleep(0.02)
    end
    self:signal("KILL")
    self.pid = nil
  end
  os.execute("rm -rf " .. quote(self.dir))
end

return D
