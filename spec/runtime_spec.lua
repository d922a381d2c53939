-- The luasip command as a process: check, run, script options, script
-- faults, hot reload (SIGHUP, --watch, under SIPp load), clean shutdown.
local N = require "spec.support.net"
local P = require "spec.support.proc"
local socket = require "socket"

local dir

local function write(path, text)
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
end

-- Replace a file the way editors do: write a new one, rename it over.
local function replace(path, text)
  write(path .. ".new", text)
  assert(os.rename(path .. ".new", path))
end

local function script(name, text)
  local path = dir .. "/" .. name
  write(path, text)
  return path
end

-- A UAS whose replies carry `tag` in their reason phrase; `delay` makes
-- every handler wait that long first (a request in progress).
local function versioned(tag, extra)
  return string.format([[
local sip = require "luasip"
local tag, delay = %q, %s
return {
  listen = { "udp:127.0.0.1:0", "tcp:127.0.0.1:0" },
  options = { delay = { default = 0, help = "seconds before each reply" } },
  setup = function(ctx)
    ctx.state.loads = (ctx.state.loads or 0) + 1
    delay = ctx.options.delay
  end,
  methods = {
    OPTIONS = function(req)
      if delay > 0 then sip.sleep(delay) end
      req:reply(200, tag)
    end,
    INVITE = function(req)
      req:reply(180)
      req:reply(200, tag, { Contact = "<sip:uas@127.0.0.1>" })
    end,
    BYE = function(req) req:reply(200, tag) end,
    ACK = function() end,
  },
  %s
}
]], tag, "0", extra or "")
end

-- Send one request over UDP and return the status line of the final
-- answer (provisional ones skipped), or nil after seconds.
local function ask(port, t, seconds)
  local u = N.udp()
  t = t or {}
  t.rport = true
  t.via_port = u.port
  t.uri = t.uri or ("sip:bob@127.0.0.1:" .. port)
  local bytes = N.request(t)
  u:send(bytes, N.V4, port)
  local deadline = socket.gettime() + (seconds or 3)
  while socket.gettime() < deadline do
    local d = u:recv(math.max(0.01, deadline - socket.gettime()))
    if d then
      local line = d:match("^(SIP/2%.0 %d%d%d[^\r]*)")
      if line and not line:find("^SIP/2%.0 1") then
        u:close()
        return line, d
      end
    end
  end
  u:close()
  return nil
end

describe("luasip command", function()
  before_each(function()
    dir = N.tmpdir()
  end)

  after_each(function()
    P.cleanup()
    N.cleanup()
    N.rmdir(dir)
  end)

  describe("check", function()
    it("accepts a valid script and names its handlers", function()
      local path = script("ok.lua", versioned("v1"))
      local rc, out = P.run { "check", path }
      assert.equal(0, rc)
      assert.matches("ok %(handlers: ACK, BYE, INVITE, OPTIONS", out)
    end)

    -- each broken script, and what check must say about it (exit 1)
    local broken = {
      { "a compile error, with its line", "bad.lua", "return {\n request = function(req) req:reply(200) \n",
        "bad%.lua:3:" },
      { "an error while the file runs", "raises.lua", "error('no config here')", "raises%.lua:1: no config here" },
      { "a misspelt field", "typo.lua", "return { reqeust = function() end }", "unknown field \"reqeust\"" },
      { "no handler at all", "nohandler.lua", "return { listen = {} }", "defines no handler" },
      { "a value that is not a table", "number.lua", "return 42", "must return a table %(got number%)" },
    }
    for _, case in ipairs(broken) do
      it("reports " .. case[1] .. " (exit 1)", function()
        local rc, _, err = P.run { "check", script(case[2], case[3]) }
        assert.equal(1, rc)
        assert.matches(case[4], err)
      end)
    end

    it("names an unknown option (exit 2) and lists the script's options with --help", function()
      local path = script("ok.lua", versioned("v1"))
      local rc, _, err = P.run { "run", path, "--colour", "red" }
      assert.equal(2, rc)
      assert.matches("unknown option %-%-colour", err)
      local hrc, out = P.run { "run", path, "--help" }
      assert.equal(0, hrc)
      assert.matches("%-%-delay N +seconds before each reply %(default: 0%)", out)
      assert.matches("%-%-listen SPEC", out)
      rc, _, err = P.run { "run", path, "--delay", "soon" }
      assert.equal(2, rc)
      assert.matches("option %-%-delay expects a number", err)
    end)

    it("fails to start on a listener it cannot open", function()
      local u = N.udp()
      local path = script("ok.lua", versioned("v1"))
      local rc, _, err = P.run { "run", path, "--listen", "udp:127.0.0.1:" .. u.port }
      assert.equal(1, rc)
      assert.matches("address already in use", err)
    end)
  end)

  describe("run", function()
    it("serves with script options, --listen and --trace, and stops cleanly on SIGTERM", function()
      local path = script("uas.lua", versioned("v1"))
      local p = P.start { "run", path, "--listen", "udp:127.0.0.1:0", "--trace", "--delay", "0.01" }
      local port = assert(p:port("udp"), p:log())
      assert.is_nil(p:port("tcp")) -- --listen replaced the script's listeners
      assert.equal("SIP/2.0 200 v1", ask(port))
      assert.equal("SIP/2.0 405 Method Not Allowed", ask(port, { method = "SUBSCRIBE" }))
      -- --trace shows both directions with transport and addresses
      local log = p:log()
      assert.matches("UDP 127%.0%.0%.1:" .. port .. " <%- 127%.0%.0%.1:%d+ %(%d+ bytes%)\nOPTIONS sip:", log)
      assert.matches("UDP 127%.0%.0%.1:" .. port .. " %-> 127%.0%.0%.1:%d+ %(%d+ bytes%)\nSIP/2%.0 200 v1", log)
      p:signal("TERM")
      assert.equal(0, p:wait(10))
      assert.matches("SIGTERM: shutting down", p:log())
      assert.matches("info stopped", p:log())
    end)

    it("writes JSON log lines with --log-format json", function()
      local path = script("uas.lua", versioned("v1"))
      local p = P.start { "run", path, "--listen", "udp:127.0.0.1:0", "--log-format", "json" }
      assert(p:port("udp"), p:log())
      local first = p:log():match("^[^\n]+")
      assert.matches('^{"ts":"[^"]+","level":"info","msg":"serving ', first)
    end)

    it("answers 500 for a script error, a runaway loop, a memory hog and a missing reply, and keeps serving", function()
      local path = script("faulty.lua", [[
return {
  listen = { "udp:127.0.0.1:0" },
  methods = {
    OPTIONS = function(req) req:reply(200, "alive") end,
    MESSAGE = function(req) local t = nil; return t.field end,
    INFO = function(req) while true do end end,
    NOTIFY = function(req) local t = {} for i = 1, 1e9 do t[i] = ("x"):rep(1000000) .. i end end,
    PUBLISH = function(req) end,
  },
}
]])
      local p = P.start { "run", path, "--instructions", "1000000", "--memory", "64M" }
      local port = assert(p:port("udp"), p:log())
      assert.equal("SIP/2.0 500 Server Internal Error", ask(port, { method = "MESSAGE" }))
      assert.equal("SIP/2.0 200 alive", ask(port))
      assert.equal("SIP/2.0 500 Server Internal Error", ask(port, { method = "INFO" }))
      assert.equal("SIP/2.0 200 alive", ask(port))
      assert.equal("SIP/2.0 500 Server Internal Error", ask(port, { method = "NOTIFY" }, 10))
      assert.equal("SIP/2.0 200 alive", ask(port))
      assert.equal("SIP/2.0 500 Server Internal Error (no reply from the script)",
        ask(port, { method = "PUBLISH" }))
      assert.equal("SIP/2.0 200 alive", ask(port))
      local log = p:log()
      assert.matches("MESSAGE handler of [^\n]* failed: [^\n]*attempt to index a nil value", log)
      assert.matches("stack traceback:", log)
      assert.matches("INFO handler of [^\n]* failed: [^\n]*instruction budget exceeded", log)
      assert.matches("NOTIFY handler of [^\n]* failed: [^\n]*not enough memory", log)
      assert.matches("PUBLISH handler returned without a final reply", log)
    end)

    it("calls the script's failure hook, which may answer itself", function()
      local path = script("hooked.lua", [[
return {
  listen = { "udp:127.0.0.1:0" },
  request = function(req) error("policy bug") end,
  failure = function(req, err)
    req:reply(503, err:find("policy bug", 1, true) and "hook saw it" or "hook missed it")
  end,
}
]])
      local p = P.start { "run", path }
      local port = assert(p:port("udp"), p:log())
      assert.equal("SIP/2.0 503 hook saw it", ask(port))
    end)

    it("logs a relay hook's error as JSON with --log-format json, and counts it", function()
      local uas = N.udp()
      local path = script("hook.lua", [[
local proxy = require "luasip.proxy"
local uas = %d
return {
  listen = { "udp:127.0.0.1:0" },
  methods = {
    OPTIONS = function(req)
      proxy.relay(req, "sip:uas@127.0.0.1:" .. uas, {
        on_response = function() error("hook bug") end,
      })
    end,
  },
}
]])
      local text = assert(io.open(path)):read("a")
      write(path, text:format(uas.port))
      local p = P.start { "run", path, "--log-format", "json" }
      local port = assert(p:port("udp"), p:log())
      local u = N.udp()
      u:send(N.request { method = "OPTIONS", uri = "sip:bob@127.0.0.1:" .. port, rport = true,
        via_port = u.port }, N.V4, port)
      local fwd = assert(uas:recv(3), "nothing relayed")
      local r = N.parse(fwd)
      local lines = { "SIP/2.0 200 OK" }
      for _, v in ipairs(r:all("Via")) do
        lines[#lines + 1] = "Via: " .. v
      end
      for _, h in ipairs { "From", "Call-ID", "CSeq" } do
        lines[#lines + 1] = h .. ": " .. r:get(h)
      end
      lines[#lines + 1] = "To: " .. r:get("To") .. ";tag=uas1"
      lines[#lines + 1] = "Content-Length: 0"
      uas:send(table.concat(lines, "\r\n") .. "\r\n\r\n", N.V4, p:port("udp"))
      assert(p:wait_log("hook bug", 5), p:log())
      p:signal("TERM")
      assert.equal(0, p:wait(10))
      local log = p:log()
      for line in log:gmatch("[^\n]+") do
        assert.matches('^{"ts":"[^"]+","level":"%a+","msg":".*"}$', line)
      end
      assert.matches('"level":"error","msg":"[^"]*hook bug[^"]*stack traceback:', log)
      assert.matches("stopped %(0 reloads, 0 failed reloads, 1 script errors%)", log)
    end)
    it("with --log-format json: a failing handler, timer, task and failure hook, JSON lines only, each counted",
      function()
      local path = script("faults.lua", [[
local sip = require "luasip"
return {
  listen = { "udp:127.0.0.1:0" },
  setup = function()
    sip.timer(0.05, function() error("timer bug") end)
    sip.spawn(function() sip.sleep(0.05); error("task bug") end)
  end,
  methods = {
    OPTIONS = function(req) error("handler bug") end,
    INFO = function(req) sip.sleep(0.01); error("handler bug after a wait") end,
    MESSAGE = function(req) error("hooked bug") end,
  },
  failure = function(req, err)
    if req.method == "MESSAGE" then error("failure hook bug") end
  end,
}
]])
      local p = P.start { "run", path, "--log-format", "json" }
      local port = assert(p:port("udp"), p:log())
      assert.equal("SIP/2.0 500 Server Internal Error", ask(port))
      assert.equal("SIP/2.0 500 Server Internal Error", ask(port, { method = "INFO" }))
      assert.equal("SIP/2.0 500 Server Internal Error", ask(port, { method = "MESSAGE" }))
      assert(p:wait_log("task bug", 5), p:log())
      assert(p:wait_log("timer bug", 5), p:log())
      p:signal("TERM")
      assert.equal(0, p:wait(10))
      local log = p:log()
      for line in log:gmatch("[^\n]+") do
        assert.matches('^{"ts":"[^"]+","level":"%a+","msg":".*"}$', line)
      end
      for _, bug in ipairs { "handler bug", "handler bug after a wait", "hooked bug", "failure hook bug",
        "timer bug", "task bug" } do
        assert.matches('"level":"error","msg":"[^"]*' .. bug .. '[^"]*stack traceback:', log)
      end
      -- handler, handler after a wait, hooked handler, its failure hook, timer, task
      assert.matches("stopped %(0 reloads, 0 failed reloads, 6 script errors%)", log)
    end)
  end)

  describe("reload", function()
    it("SIGHUP: new requests take the new policy, one in progress finishes under the old one", function()
      local path = script("uas.lua", versioned("v1"))
      local p = P.start { "run", path, "--delay", "0.6" }
      local port = assert(p:port("udp"), p:log())
      -- a request in progress while the script changes
      local slow = N.udp()
      slow:send(N.request { uri = "sip:bob@127.0.0.1:" .. port, rport = true, via_port = slow.port }, N.V4, port)
      socket.sleep(0.1)
      replace(path, versioned("v2"))
      p:signal("HUP")
      assert(p:wait_log("reloaded [^\n]*generation 2", 5), p:log())
      local d = slow:recv(3)
      assert.matches("^SIP/2%.0 200 v1\r\n", d)
      assert.equal("SIP/2.0 200 v2", ask(port))
      assert.matches("reloaded [^\n]*%(SIGHUP%): generation 2", p:log())
    end)

    it("a script that fails to load or to set up keeps the running policy", function()
      local path = script("uas.lua", versioned("v1"))
      local p = P.start { "run", path }
      local port = assert(p:port("udp"), p:log())
      replace(path, "return { request = function(req) req:reply(200, 'broken') end")
      p:signal("HUP")
      assert(p:wait_log("reload of [^\n]* failed, the running policy stays: [^\n]*uas%.lua:1:", 5), p:log())
      assert.equal("SIP/2.0 200 v1", ask(port))
      replace(path, [[
return {
  setup = function() error("setup-time failure") end,
  request = function(req) req:reply(200, "v3") end,
}
]])
      p:signal("HUP")
      assert(p:wait_log("reload of [^\n]* failed[^\n]*setup%-time failure", 5), p:log())
      assert.equal("SIP/2.0 200 v1", ask(port))
      replace(path, versioned("v4"))
      p:signal("HUP")
      assert(p:wait_log("generation 2", 5), p:log())
      assert.equal("SIP/2.0 200 v4", ask(port))
    end)

    it("--watch reloads when the file is replaced", function()
      local path = script("uas.lua", versioned("v1"))
      local p = P.start { "run", path, "--watch" }
      local port = assert(p:port("udp"), p:log())
      assert.equal("SIP/2.0 200 v1", ask(port))
      replace(path, versioned("v2"))
      assert(p:wait_log("reloaded [^\n]*%(file changed%)", 5), p:log())
      assert.equal("SIP/2.0 200 v2", ask(port))
    end)

    it("keeps ctx.state and luasip modules' state across reloads", function()
      local body = [[
local log = require "luasip.log" -- a luasip module: stays loaded across reloads
local st
return {
  listen = { "udp:127.0.0.1:0" },
  setup = function(ctx)
    st = ctx.state
    st.loads = (st.loads or 0) + 1
    log._spec_marker = (log._spec_marker or 0) + 1
  end,
  request = function(req) req:reply(200, "%s " .. st.loads .. "/" .. log._spec_marker) end,
}
]]
      local path = script("state.lua", body:format("v1"))
      local p = P.start { "run", path }
      local port = assert(p:port("udp"), p:log())
      assert.equal("SIP/2.0 200 v1 1/1", ask(port))
      for i = 2, 3 do
        replace(path, body:format("v" .. i))
        p:signal("HUP")
        assert(p:wait_log("generation " .. i, 5), p:log())
      end
      assert.equal("SIP/2.0 200 v3 3/3", ask(port))
    end)

    it("SIPp calls keep succeeding while SIGHUP reloads the script 10 times", function()
      local path = script("uas.lua", versioned("v1"))
      local p = P.start { "run", path }
      local port = assert(p:port("udp"), p:log())
      local sdir = dir .. "/sipp"
      assert(os.execute("mkdir -p " .. sdir))
      local calls = 300
      local cmd = string.format(
        "cd %s && timeout -k 5 60 sipp 127.0.0.1:%d -sf %s/spec/sipp/invite_uac.xml -s uas -i 127.0.0.1 " ..
        "-m %d -r 60 -timeout 50s -nostdin -trace_stat -stf stat.csv -fd 1 >sipp.out 2>&1; echo $? > rc",
        sdir, port, os.getenv("PWD") or ".", calls)
      assert(os.execute("(" .. cmd .. ") >/dev/null 2>&1 &"))
      for i = 1, 10 do
        socket.sleep(0.35)
        replace(path, versioned("v" .. (i + 1)))
        p:signal("HUP")
        assert(p:wait_log("generation " .. (i + 1), 5), p:log())
      end
      local rc
      local deadline = socket.gettime() + 60
      repeat
        socket.sleep(0.1)
        local f = io.open(sdir .. "/rc")
        rc = f and tonumber(f:read("a"))
        if f then
          f:close()
        end
      until rc or socket.gettime() > deadline
      local f = assert(io.open(sdir .. "/stat.csv"))
      local header = f:read("l")
      local last
      for line in f:lines() do
        last = line
      end
      f:close()
      local cols = {}
      for name in header:gmatch("[^;]+") do
        cols[#cols + 1] = name
      end
      local values = {}
      local i = 0
      for v in last:gmatch("([^;]*);") do
        i = i + 1
        values[cols[i]] = v
      end
      assert.equal(calls, tonumber(values["SuccessfulCall(C)"]))
      assert.equal(0, tonumber(values["FailedCall(C)"]))
      assert.equal(0, rc)
      assert.matches("generation 11", p:log())
      assert.not_matches("failed", p:log())
    end)
  end)

  describe("shutdown", function()
    it("SIGTERM lets requests in progress finish, answers new ones 503 and exits 0", function()
      local path = script("uas.lua", versioned("v1"))
      local p = P.start { "run", path, "--delay", "0.8", "--grace", "5" }
      local port = assert(p:port("udp"), p:log())
      local slow = N.udp()
      slow:send(N.request { uri = "sip:bob@127.0.0.1:" .. port, rport = true, via_port = slow.port }, N.V4, port)
      socket.sleep(0.2)
      p:signal("TERM")
      assert(p:wait_log("shutting down %(1 requests in progress", 3), p:log())
      local line, bytes = ask(port, { method = "BYE" })
      assert.equal("SIP/2.0 503 Service Unavailable (shutting down)", line)
      assert.matches("\r\nRetry%-After: 5\r\n", bytes)
      assert.matches("^SIP/2%.0 200 v1\r\n", (slow:recv(3)))
      assert.equal(0, p:wait(5))
    end)

    it("answers 503 to what is still in progress when the grace time ends", function()
      local path = script("uas.lua", versioned("v1"))
      local p = P.start { "run", path, "--delay", "30", "--grace", "0.3" }
      local port = assert(p:port("udp"), p:log())
      local slow = N.udp()
      slow:send(N.request { uri = "sip:bob@127.0.0.1:" .. port, rport = true, via_port = slow.port }, N.V4, port)
      socket.sleep(0.2)
      p:signal("INT")
      assert.matches("^SIP/2%.0 503 Service Unavailable %(shutting down%)\r\n", (slow:recv(3)))
      assert.equal(0, p:wait(5))
      assert.matches("SIGINT: shutting down", p:log())
    end)
  end)
end)
