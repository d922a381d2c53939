-- The proxy of spec/netns/wire_load.sh ([wire] 7), served by `luasip run`
-- inside a loopback-only network namespace: an INVITE for bob forks to an
-- unroutable binding (sip:bob@1.1.1.1: ENETUNREACH there) and to the live
-- callee (--callee PORT on 127.0.0.1); every other request is answered 404
-- at once (the flood's). Nothing here may run outside a namespace: it
-- sends to 1.1.1.1.
local proxy = require "luasip.proxy"

local callee
return {
  listen = { "udp:127.0.0.1:5060" },
  options = { callee = { default = 5071, help = "the live callee's UDP port", arg = "PORT" } },
  setup = function(ctx)
    callee = "sip:bob@127.0.0.1:" .. ctx.options.callee
  end,
  request = function(req)
    if req.method == "INVITE" and tostring(req.uri):match("^sip:bob@") then
      proxy.relay(req, { "sip:bob@1.1.1.1", callee }, { timeout = 5 })
    elseif req.method ~= "ACK" then
      req:reply(404)
    end
  end,
}
