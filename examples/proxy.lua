-- A registrar + stateful proxy for a domain, as a `luasip run` script (the
-- script contract: a table with listen, options, setup, request).
--
--     luasip run examples/proxy.lua --listen udp:127.0.0.1:5060 \
--       [--domain example.com] [--nat] [--timeout 30]
--
-- Until the `luasip` command exists, spec/sipp/proxy_run.lua runs it the
-- same way: `lua5.4 spec/sipp/proxy_run.lua examples/proxy.lua --listen ...`.
--
-- Policy (the benchmark's and Kamailio's routing.lua):
--   OPTIONS to the proxy itself (no user part)  -> 200
--   REGISTER                                    -> bindings saved, 200 with
--                                                  the Contacts (in memory)
--   requests with a To tag (in dialog)          -> loose-routed (this proxy's
--                                                  Route removed), relayed;
--                                                  404 without a Route
--   initial requests with a preloaded Route     -> 403
--   INVITE / SUBSCRIBE                          -> Record-Route
--   initial requests to a registered AOR        -> relayed to its bindings:
--                                                  equal q in parallel, lower
--                                                  q after (serial groups);
--                                                  404 when none
-- CANCEL never reaches the script: the core cancels the branches (§16.10).
--
-- Bindings live in a table of this module (an in-memory location service:
-- AOR "sip:user@host" -> Contact -> binding), expired lazily on lookup;
-- --nat stores each REGISTER's source as the binding's `received`
-- (nathelper's fix_nated_register) and relays there.
local proxy = require "luasip.proxy"

local time = os.time
local tonumber, pairs, ipairs = tonumber, pairs, ipairs
local concat, sort = table.concat, table.sort

local MAX_EXPIRES, MIN_EXPIRES, DEFAULT_EXPIRES = 3600, 10, 3600

local opts = { nat = false, timeout = nil }
local location = {} -- aor -> { [contact] = binding }
local domains = {}

-- "sip:user@host:port;..." -> "sip:user@host", user, host
local function aor_of(uri)
  local user, host = uri:match("^sips?:([^@;?]+)@%[?([^%]:;?>]+)")
  if not user then
    return nil
  end
  host = host:lower()
  return "sip:" .. user .. "@" .. host, user, host
end

local function lookup(aor)
  local set = location[aor]
  if not set then
    return nil
  end
  local now, list = time(), {}
  for k, b in pairs(set) do
    if b.expires <= now then
      set[k] = nil
    else
      list[#list + 1] = b
    end
  end
  if #list == 0 then
    location[aor] = nil
    return nil
  end
  if #list > 1 then
    sort(list, function(a, b)
      return (a.q or 1) > (b.q or 1)
    end)
  end
  return list
end

local function register(req)
  local aor = aor_of(req.to.uri)
  if not aor then
    return req:reply(400, "Bad To")
  end
  local contacts = req.contacts
  local set = location[aor]
  local now = time()
  if contacts and #contacts > 0 then
    local hdr_expires = req.expires
    if contacts.star then
      if hdr_expires ~= 0 then
        return req:reply(400, "Bad Contact *")
      end
      location[aor] = nil
      return req:reply(200)
    end
    set = set or {}
    location[aor] = set
    local received = opts.nat and proxy.fix_nated_register(req) or nil
    local paths = req.paths
    local path
    if paths and #paths > 0 then
      path = {}
      for i, p in ipairs(paths) do
        path[i] = tostring(p)
      end
    end
    for _, c in ipairs(contacts) do
      local exp = c.expires or hdr_expires or DEFAULT_EXPIRES
      local uri = c.uri
      if exp == 0 then
        set[uri] = nil
      else
        if exp > MAX_EXPIRES then
          exp = MAX_EXPIRES
        elseif exp < MIN_EXPIRES then
          return req:reply(423, nil, { ["Min-Expires"] = tostring(MIN_EXPIRES) })
        end
        set[uri] = {
          contact = uri,
          expires = now + exp,
          q = c.q,
          received = received,
          path = path,
          call_id = req.call_id,
          cseq = req.cseq,
        }
      end
    end
  end
  -- 200 with every current binding
  local lines, n = {}, 0
  if set then
    for uri, b in pairs(set) do
      local left = b.expires - now
      if left > 0 then
        n = n + 1
        lines[n] = "<" .. uri .. ">;expires=" .. left
      end
    end
  end
  if n == 0 then
    return req:reply(200)
  end
  return req:reply(200, nil, { Contact = concat(lines, ", ") })
end

local function to_self(req)
  local u = req.uri
  return not u:find("@", 1, true)
end

local relay_opts = { fork = "serial" }

local function request(req)
  local method = req.method
  if method == "REGISTER" then
    return register(req)
  end
  -- §16.3 item 3 before anything else (as Kamailio's maxfwd), except an
  -- OPTIONS to the proxy itself, which it answers as a UAS
  if req.max_forwards == 0 and not (method == "OPTIONS" and to_self(req)) then
    return req:reply(483, "Too Many Hops")
  end
  if not req:is_initial() then
    if req:loose_route() then
      return proxy.relay(req)
    end
    if method == "ACK" then
      return -- an ACK for nothing we know: absorbed
    end
    return req:reply(404, "Not here")
  end
  if method == "OPTIONS" and to_self(req) then
    return req:reply(200, nil, { Allow = "INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER" })
  end
  if req:loose_route() then
    return req:reply(403, "No pre-loaded routes")
  end
  if method == "INVITE" or method == "SUBSCRIBE" then
    req:record_route()
  end
  local aor, _, host = aor_of(req.uri)
  if not aor or (next(domains) and not domains[host]) then
    return req:reply(404, "Not Found")
  end
  local targets = lookup(aor)
  if not targets then
    return req:reply(404, "Not Found")
  end
  return proxy.relay(req, targets, relay_opts)
end

return {
  listen = { "udp:127.0.0.1:5060", "tcp:127.0.0.1:5060" },
  options = {
    domain = { arg = "HOST", help = "a domain this proxy serves (default: any)" },
    nat = { flag = true, help = "relay to the REGISTER's source (fix_nated_register)" },
    timeout = { arg = "SECONDS", help = "overall time for a relayed INVITE" },
  },
  setup = function(ctx)
    local o = ctx.options or {}
    opts.nat = o.nat and true or false
    if o.domain then
      domains[o.domain:lower()] = true
      if ctx.server then
        ctx.server:add_alias(o.domain)
      end
    end
    relay_opts.timeout = tonumber(o.timeout)
  end,
  request = request,
  -- exposed for tests: the bindings table
  location = location,
}
