-- `luasip ctl` against a running `luasip run` (a child process): every
-- command, text and --json, the socket's permissions and a refused
-- connection from another user; --metrics of the same process.
local P = dofile("spec/support/proc.lua")
local core = require "luasip.core"
local socket = require "socket"

local function write(path, text)
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
end

local script = [[
local dispatcher = require "luasip.dispatcher"
local location = require "luasip.location"
return {
  listen = { "udp:127.0.0.1:0" },
  setup = function(ctx)
    local store = assert(location.open("memory"))
    assert(store:save("sip:alice@example.com", { key = "k1", contact = "sip:alice@127.0.0.1:5099",
      expires = os.time() + 600, q = 0.5, received = "udp:127.0.0.1:5099" }))
    dispatcher.set("media", { "sip:127.0.0.1:9", "sip:127.0.0.1:11" }, { server = ctx.server })
  end,
  request = function(req) req:reply(200) end,
}
]]

describe("luasip ctl", function()
  local dir, sock, proc, mport

  setup(function()
    dir = os.tmpname() .. ".ctl"
    assert(os.execute("mkdir -p " .. dir))
    write(dir .. "/s.lua", script)
    sock = dir .. "/run/ctl.sock"
    proc = P.start({ "run", dir .. "/s.lua", "--ctl", sock, "--metrics", "127.0.0.1:0" })
    assert(proc:port("udp"), proc:log())
    mport = tonumber(proc:wait_log("metrics at http://127%.0%.0%.1:(%d+)/metrics"))
  end)

  teardown(function()
    P.cleanup()
    os.execute("rm -rf " .. dir)
  end)

  local function ctl(...)
    return P.run({ "ctl", "--socket", sock, ... })
  end

  it("stats: the server's counters, as text and as JSON", function()
    local rc, out = ctl("stats")
    assert.equal(0, rc)
    assert.matches("\nrequests 0\n", out)
    assert.matches("\ndispatcher_relays 0\n", out)
    assert.matches("\nscript_reloads 0\n", out)
    rc, out = ctl("--json", "stats")
    assert.equal(0, rc)
    assert.matches('^{.*"requests":0,', out)
    assert.matches('"txn_live":0', out)
  end)

  it("location show and remove", function()
    local rc, out = ctl("location", "show", "sip:alice@EXAMPLE.com")
    assert.equal(0, rc)
    assert.matches("memory sip:alice@127.0.0.1:5099 expires=%d+ q=0.5 received=udp:127.0.0.1:5099", out)
    rc, out = ctl("--json", "location", "show", "sip:alice@example.com")
    assert.equal(0, rc)
    assert.matches('"contact":"sip:alice@127.0.0.1:5099"', out)
    rc, out = ctl("location", "remove", "sip:alice@example.com")
    assert.equal(0, rc)
    assert.matches("removed 1 bindings of sip:alice@example.com", out)
    rc, out = ctl("location", "show", "sip:alice@example.com")
    assert.equal(0, rc)
    assert.matches("no bindings", out)
    local err
    rc, out, err = ctl("location", "list")
    assert.equal("", out)
    assert.equal(1, rc)
    assert.matches("usage: location show AOR", err)
  end)

  it("dispatcher list and set; the states in /metrics", function()
    local rc, out = ctl("dispatcher", "list")
    assert.equal(0, rc)
    assert.matches("set media %(round_robin%)\n  1 sip:127.0.0.1:9 up ", out)
    rc, out = ctl("dispatcher", "set", "media", "sip:127.0.0.1:11", "down")
    assert.equal(0, rc)
    assert.matches("disabled", out)
    rc, out = ctl("--json", "dispatcher", "list")
    assert.equal(0, rc)
    assert.matches('"state":"disabled","uri":"sip:127.0.0.1:11"', out)
    local body = assert(socket.connect("127.0.0.1", mport))
    body:send("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
    local res = body:receive("*a")
    body:close()
    assert.matches('luasip_dispatcher_destination_state{set="media",destination="sip:127.0.0.1:11",state="disabled"} 1',
      res, 1, true)
    rc = ctl("dispatcher", "set", "media", "2", "up")
    assert.equal(0, rc)
    local err
    rc, out, err = ctl("dispatcher", "set", "media", "sip:127.0.0.1:12", "up")
    assert.equal("", out)
    assert.equal(1, rc)
    assert.matches("no destination", err)
    rc, out, err = ctl("dispatcher", "set", "media", "1", "sideways")
    assert.equal("", out)
    assert.equal(1, rc)
    assert.matches("usage", err)
  end)

  it("reload, blocked, unblock, unknown commands", function()
    local rc = ctl("reload")
    assert.equal(0, rc)
    assert(proc:wait_log("reloaded %S+ %(ctl%): generation 2"))
    local _, out = ctl("stats")
    assert.matches("\nscript_reloads 1\n", out)
    local err
    rc, out = ctl("blocked", "list")
    assert.equal(0, rc)
    assert.matches("no blocked sources", out)
    rc, _, err = ctl("unblock", "127.0.0.9")
    assert.equal(1, rc)
    assert.matches("not blocked: 127.0.0.9", err)
    rc, _, err = ctl("unblock", "not-an-address")
    assert.equal(1, rc)
    assert.matches("not a numeric IP address", err)
    rc, _, err = ctl("frobnicate")
    assert.equal(1, rc)
    assert.matches('unknown command "frobnicate"', err)
    rc = P.run({ "ctl", "--socket", dir .. "/nothing.sock", "stats" })
    assert.equal(1, rc)
    rc = P.run({ "ctl" })
    assert.equal(2, rc)
  end)

  it("the socket is the owner's only; another user is refused even when the file lets it in", function()
    local mode = io.popen("stat -c %a " .. sock):read("l")
    assert.equal("600", mode)
    assert.equal("ok", core.ctl_call(sock, "stats\n"):match("^[^\n]*"))
    local as_nobody = "setpriv --reuid=65534 --regid=65534 --clear-groups lua5.4 -e '" ..
      "local u = require(\"socket.unix\")() local ok, err = u:connect(\"" .. sock .. "\") " ..
      "if not ok then print(\"connect: \" .. err) os.exit(0) end u:send(\"stats\\n\") " ..
      "local a, _, p = u:receive(\"*a\") io.write(a or p)' 2>&1"
    local out = io.popen(as_nobody):read("a")
    assert.matches("connect: .*[Pp]ermission denied", out)
    -- the file made world-writable: the server's own check refuses
    assert(os.execute("chmod 777 " .. dir .. " " .. dir .. "/run && chmod 666 " .. sock))
    out = io.popen(as_nobody):read("a")
    assert.equal("error: permission denied\n", out)
    assert.matches("^ok\n", core.ctl_call(sock, "stats\n"))
  end)
end)
