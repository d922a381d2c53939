--- Locating SIP servers (RFC 3263) from Lua: the C resolver (csrc/dns,
-- c-ares on the luasip loop) behind a function that waits in the calling
-- coroutine.
--
--     local dns = require "luasip.dns"
--     dns.configure{ servers = "127.0.0.1:5353", timeout = 2 }
--     local targets, err = dns.resolve("sip:bob@example.com")
--     -- { { transport = "tcp", host = "sip1.example.com", port = 5060,
--     --     addr = "192.0.2.10", dest = "tcp:192.0.2.10:5060" }, ... }
--
-- `srv:send`, `proxy.relay` and `proxy.forward` resolve every next hop that
-- is a host name with it, and fail over (§4.3) to the next target on a
-- transport error, a timeout or a 503 (see `send`).
-- @module luasip.dns
local core = require "luasip.core"
local server = require "luasip.server"

local co_running, co_yield = coroutine.running, coroutine.yield
local type, error, tonumber, tostring, ipairs = type, error, tonumber, tostring, ipairs
local resolve_c = core.dns_resolve

local M = {}

-- seconds a failed target is tried last (RFC 3263 §4.3)
local avoid_seconds = 30

--- Configure the resolver (a new one replaces the old: its pending
-- resolutions fail with ECANCELED).
--
-- Options: `servers` (`"127.0.0.1:5353"`, a comma-separated string or a
-- list; default: the servers of /etc/resolv.conf), `timeout` (seconds for
-- a whole resolution, default 5), `tries` (sends of one query per server,
-- 2), `cache_size` (answers kept, 4096; 0 caches nothing), `max_ttl`
-- (seconds a positive answer is kept at most, 86400), `neg_ttl` (the same
-- for NXDOMAIN / NODATA, 900; RFC 2308), `ipv6` (query AAAA: true, false;
-- default when this host has IPv6), `avoid` (seconds a target that failed
-- is tried last, 30).
-- @tparam table opts
-- @treturn[1] boolean true
-- @return[2] nil
-- @treturn[2] string error message
-- @treturn[2] string error code name
function M.configure(opts)
  if type(opts) ~= "table" then
    error("bad argument #1 to 'configure' (table expected, got " .. type(opts) .. ")", 2)
  end
  if opts.avoid ~= nil then
    if type(opts.avoid) ~= "number" or opts.avoid < 0 then
      error("avoid: seconds >= 0 expected", 2)
    end
    avoid_seconds = opts.avoid
  end
  return core.dns_config(opts)
end

--- Resolve a SIP URI (or a Via sent-by: `{ host =, port =, transport =,
-- secure = }`) into the ordered targets of RFC 3263 §4: NAPTR, SRV (by
-- priority, weighted random within one), A/AAAA; a numeric host, an
-- explicit port or transport skip the steps §4 says they skip; `sips:`
-- means TLS. Targets that failed recently come last. Waits (inside a
-- request handler or `sip.spawn`) unless the answer is at hand (a numeric
-- host, the cache).
-- @param uri a URI string or `luasip.URI`, or a sent-by table
-- A TLS target of a host name has `tls_name`, the URI's host: the name its
-- certificate must carry (RFC 5922 §4), used by `srv:send` and the proxy.
-- @treturn[1] table `{ { transport =, host =, port =, addr =, dest =,
--   tls_name = }, ... }`
-- @return[2] nil
-- @treturn[2] string error message (`"EAI_NONAME: ..."` no such domain,
--   `"ETIMEDOUT: ..."`, `"EAI_AGAIN: ..."` the servers failed)
-- @treturn[2] string error code name
function M.resolve(uri)
  local r, err, name = M._resolve(uri)
  if r then
    -- RFC 5922 §4: a TLS target is verified against the domain of the URI
    -- (DNS answers are not secured, so not against an SRV target's name)
    local host = type(uri) == "table" and uri.host
    if not host then
      local u = core.uri(tostring(uri))
      host = u and u.host
    end
    host = host and tostring(host)
    if host and not M.is_numeric(host) then
      for _, t in ipairs(r) do
        if t.transport == "tls" then
          t.tls_name = host
        end
      end
    end
  end
  return r, err, name
end

-- resolve without the TLS names
function M._resolve(uri)
  local co, main = co_running()
  local waiting = false
  local early
  local r, err, name = resolve_c(type(uri) == "table" and uri or tostring(uri), function(t, e, n)
    if waiting then
      server.resume(co, t, e, n)
    else
      early = { t, e, n }
    end
  end)
  if r ~= true then
    return r, err, name
  end
  if early then
    return early[1], early[2], early[3]
  end
  if main then
    error("sip.resolve() must run inside a request handler or sip.spawn()", 3)
  end
  waiting = true
  return co_yield()
end

--- The resolver's counters: `lookups`, `numeric`, `cache_hits`,
-- `cache_misses`, `negative_hits`, `failures`, `timeouts`, `failovers`,
-- `avoided`, `cache_entries`, `evictions`, `pending`.
-- @treturn table
M.stats = core.dns_stats

--- Forget every cached answer.
-- @function flush
M.flush = core.dns_flush

--- Try a target last for `seconds` (default: the `avoid` option).
-- @tparam table target an entry of `resolve`'s list
-- @tparam[opt] number seconds
function M.avoid(target, seconds)
  core.dns_avoid(target.transport, target.addr, target.port, seconds or avoid_seconds)
end

--- Is a host numeric (IPv4, IPv6 with or without brackets)?
-- @tparam string host
-- @treturn boolean
local function is_numeric(host)
  if type(host) ~= "string" then
    return false
  end
  return host:find("^%d+%.%d+%.%d+%.%d+$") ~= nil or host:find(":", 1, true) ~= nil
end
M.is_numeric = is_numeric

-- Seconds of a Retry-After header (RFC 3261 §20.33), or nil.
local function retry_after(res)
  local v = res and res.header and res:header("Retry-After")
  return v and tonumber(v:match("^%s*(%d+)"))
end

--- Does this final response call for the next target (RFC 3263 §4.3)?
-- A transport error or a timeout (a 503 or 408 made up by the transaction
-- layer: `made_up`), or a 503 from the target.
-- @tparam Message res
-- @tparam boolean made_up
-- @treturn boolean
function M.should_failover(res, made_up)
  return core.dns_should_failover(res.status, made_up) -- the proxy core's rule
end

--- After a failure on `target`: avoid it (a 503's Retry-After, else the
-- configured time) and count a failover.
-- @tparam table target
-- @tparam[opt] Message res the response that failed it
function M.failed(target, res)
  M.avoid(target, res and res.status == 503 and retry_after(res) or nil)
end

--- After a failure on a destination spec (`"udp:192.0.2.1:5060"`,
-- `"tcp:[2001:db8::1]:5060"`, a target's `dest`): as `failed`.
-- @tparam string dest
-- @tparam[opt] Message res the response that failed it
function M.failed_dest(dest, res)
  local transport, rest = tostring(dest):match("^(%a+):(.*)$")
  local addr, port = (rest or ""):match("^%[(.*)%]:(%d+)$")
  if not addr then
    addr, port = (rest or ""):match("^(.*):(%d+)$")
  end
  if addr and addr ~= "" then
    M.failed({ transport = transport:lower(), addr = addr, port = tonumber(port) }, res)
  end
end

--- Count one failover (a request moved to its next target).
-- @function count_failover
M.count_failover = core.dns_failover

return M
