-- Shared scaffolding of the specs that run luasip user agents
-- (luasip.ua) in one process on 127.0.0.1 (loopback only; T1 = 10 ms;
-- every wait bounded by spec/support/net.lua's pump_until).
--
-- Loaded with the spec's net.lua instance (so that N.cleanup closes the
-- servers made here):
--
--     local N = dofile(here .. "/support/net.lua")
--     local U = dofile(here .. "/support/ua.lua")(N)
local sip = require "luasip"
local ua = require "luasip.ua"

return function(N)
  local U = {}

  --- An SDP body of one PCMU audio stream: origin user `name`, media
  -- port `port`, on 127.0.0.1.
  function U.sdp(name, port)
    return table.concat({
      "v=0", "o=" .. name .. " 1 1 IN IP4 127.0.0.1", "s=-", "c=IN IP4 127.0.0.1", "t=0 0",
      "m=audio " .. port .. " RTP/AVP 0", "a=rtpmap:0 PCMU/8000", "a=sendrecv", "",
    }, "\r\n")
  end

  --- A server on udp:127.0.0.1 (a free port) with `opts` (default: the
  -- short timers T1 = 10 ms, T2 = 40 ms, T4 = 50 ms).
  function U.server(opts)
    opts = opts or { t1 = 10, t2 = 40, t4 = 50 }
    opts.listen = { "udp:127.0.0.1:0" }
    return N.server(opts)
  end

  --- "127.0.0.1:PORT" of a server made by U.server.
  function U.addr(srv)
    return srv:listeners()[1]:match("^udp:(.*)$")
  end

  --- Run fn in a coroutine on the loop until it returns (at most `seconds`,
  -- default 3): its results (N.run_task).
  function U.run(fn, seconds)
    return N.run_task(fn, seconds or 3)
  end

  --- A UA on `srv` (default: a new U.server) with `opts` (ua.new's) that
  -- answers requests with u:handle, 405 to the rest.
  function U.ua(srv, opts)
    local u = ua.new(srv or U.server(), opts)
    u.srv:on_request(function(req)
      if not u:handle(req) then
        req:reply(405)
      end
    end)
    return u
  end

  --- A UA named `name` on a new server, u.uri "sip:NAME@127.0.0.1:PORT"
  -- (its Contact too, unless opts.contact == false), which answers what
  -- u:handle does not take: 405 to all but INVITE; an INVITE gets 180,
  -- then (after opts.delay seconds) u.status when set and not 200, else
  -- 200 with opts.sdp; its dialogs in u.calls. Hooks, each called with
  -- (u, ...): opts.on_request(req) for every request first,
  -- opts.on_invite(req) before the 180, opts.on_call(d) with each dialog.
  function U.callee(name, opts)
    opts = opts or {}
    local srv = U.server()
    local uri = "sip:" .. name .. "@" .. U.addr(srv)
    local u = ua.new(srv, opts.contact ~= false and { contact = "<" .. uri .. ">" } or nil)
    u.uri = uri
    u.calls = {}
    srv:on_request(function(req)
      if opts.on_request then
        opts.on_request(u, req)
      end
      if u:handle(req) then
        return
      end
      if req.method ~= "INVITE" then
        return req:reply(405)
      end
      if opts.on_invite then
        opts.on_invite(u, req)
      end
      req:reply(180)
      if opts.delay then
        sip.sleep(opts.delay)
      end
      if u.status and u.status ~= 200 then
        return req:reply(u.status)
      end
      local d = assert(u:answer(req, opts.sdp))
      if opts.on_call then
        opts.on_call(u, d)
      end
      u.calls[#u.calls + 1] = d
    end)
    return u
  end

  return U
end
