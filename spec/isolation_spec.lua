-- Script faults that must not take the server down: a handler that loops
-- forever (instruction budget) and one that allocates without bound (the
-- state's memory limit). Real UDP sockets on 127.0.0.1.
local here = debug.getinfo(1, "S").source:gsub("^@", ""):match("^(.*)/[^/]*$") or "."
local N = dofile(here .. "/support/net.lua")
local sip = require "luasip"

describe("isolation", function()
  after_each(function()
    N.cleanup()
    sip.set_limits { instructions = 0 }
  end)

  -- Send one request from a fresh UDP peer and return the answer's status line.
  local function ask(l, method)
    local p = N.udp(N.V4)
    p:send((N.request { method = method or "OPTIONS", via_port = p.port, rport = true }), N.V4, l.port)
    local got = p:recv(3)
    return got and got:match("^[^\r]*")
  end

  it("stops a handler that loops forever: 500, and the server still answers", function()
    sip.set_limits { instructions = 100000 }
    local logged = {}
    require("luasip.log").configure { sink = function(line) logged[#logged + 1] = line end }
    local srv, l = N.server()
    srv:on_request(function(req)
      if req.method == "OPTIONS" then
        return req:reply(200)
      end
      while true do end -- luacheck: ignore 512
    end)
    assert.are.equal("SIP/2.0 500 Server Internal Error", ask(l, "INFO"))
    assert.are.equal("SIP/2.0 200 OK", ask(l, "OPTIONS"))
    local text = table.concat(logged, "\n")
    assert.truthy(text:find("instruction budget exceeded", 1, true))
    require("luasip.log").configure { sink = function(line) io.stderr:write(line, "\n") end }
  end)

  it("turns a memory blow-up in a handler into a 500, and the server still answers", function()
    local used = sip.memory()
    assert(sip.set_limits { memory = used + 8 * 1024 * 1024 })
    local srv, l = N.server()
    srv:on_request(function(req)
      if req.method == "OPTIONS" then
        return req:reply(200)
      end
      local hoard = {}
      for i = 1, math.huge do
        hoard[i] = string.rep("x", 1000) .. i
        hoard.last = hoard[i]
      end
      return hoard
    end)
    local status = ask(l, "INFO")
    collectgarbage()
    assert(sip.set_limits { memory = 0 })
    assert.are.equal("SIP/2.0 500 Server Internal Error", status)
    assert.are.equal("SIP/2.0 200 OK", ask(l, "OPTIONS"))
  end)

  it("refuses a memory limit below what is in use", function()
    local ok, err = sip.set_limits { memory = 1024 }
    assert.is_nil(ok)
    assert.truthy(err:find("in use", 1, true))
  end)
end)
