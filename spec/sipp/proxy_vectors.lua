-- RFC 4475 vectors at the proxy (run by spec/sipp/proxy_sipp.sh inside its
-- network namespace): each vector is sent to 127.0.0.1:PORT over the
-- transport its Via names and the response status is checked:
--   zeromf      OPTIONS with Max-Forwards 0 to a foreign AOR: 483
--   mismatch02  NEWMETHOD with CSeq INVITE: 400 (or 501)
--   intmeth     unknown method to an unknown AOR: 404 (proxied as any
--               request: nothing to relay it to)
-- Prints "ok NAME" / "FAIL NAME detail" lines.
--     lua5.4 spec/sipp/proxy_vectors.lua PORT VECTOR_DIR
local socket = require "socket"

local port = tonumber(arg[1])
local dir = arg[2]

local function slurp(name)
  local f = assert(io.open(dir .. "/" .. name .. ".dat", "rb"))
  local s = f:read("a")
  f:close()
  return s
end

local function status_of(bytes)
  return bytes and tonumber(bytes:match("^SIP/2%.0 (%d%d%d)"))
end

local function over_udp(msg)
  -- the answer goes to the Via's sent-by port: 5060 (the proxy is not on it)
  local u = assert(socket.udp())
  assert(u:setsockname("127.0.0.1", 5060))
  u:settimeout(0.2)
  local deadline = socket.gettime() + 5
  u:sendto(msg, "127.0.0.1", port)
  while socket.gettime() < deadline do
    local data = u:receivefrom()
    local st = status_of(data)
    if st and st >= 200 then
      u:close()
      return st
    end
  end
  u:close()
  return nil
end

local function over_tcp(msg)
  local t = assert(socket.tcp())
  t:settimeout(5)
  assert(t:connect("127.0.0.1", port))
  assert(t:send(msg))
  local deadline = socket.gettime() + 5
  local buf = ""
  while socket.gettime() < deadline do
    local data, err, part = t:receive(1)
    data = data or part
    if data and #data > 0 then
      buf = buf .. data
      local head = buf:match("^(.-\r\n\r\n)")
      if head then
        local st = status_of(head)
        if st and st >= 200 then
          t:close()
          return st
        end
        buf = buf:sub(#head + 1)
      end
    elseif err == "closed" then
      break
    end
  end
  t:close()
  return nil
end

local cases = {
  { "zeromf", over_udp, { [483] = true } },
  { "mismatch02", over_udp, { [400] = true, [501] = true } },
  { "intmeth", over_tcp, { [404] = true } },
}
for _, c in ipairs(cases) do
  local ok, st = pcall(c[2], slurp(c[1]))
  if ok and st and c[3][st] then
    print("ok " .. c[1] .. " " .. st)
  else
    print("FAIL " .. c[1] .. " got " .. tostring(st))
  end
end
