-- lua5.4 spec/sipp/http_get.lua URL: the body of a GET (exit 1 unless 200);
-- for the suites that read /metrics and the Prometheus HTTP API (loopback).
local http = require "socket.http"
http.TIMEOUT = 5
local url = assert(arg[1], "usage: http_get.lua URL")
assert(url:match("^http://127%.0%.0%.1:%d+/") or url:match("^http://%[::1%]:%d+/"), "loopback only")
local body, code = http.request(url)
if code ~= 200 then
  io.stderr:write("GET ", url, ": ", tostring(code), "\n")
  os.exit(1)
end
io.write(body)
