--- Load balancing over destination sets, with failover and health probes
-- (what Kamailio's dispatcher does), on top of `proxy.relay` and
-- `srv:send`.
--
--     local dispatcher = require "luasip.dispatcher"
--     dispatcher.set("media", {
--       { uri = "sip:10.0.0.1:5060", weight = 2 },
--       { uri = "sip:10.0.0.2:5060", priority = 1, attrs = { zone = "b" } },
--     }, { algorithm = "weighted", server = srv,
--          probe = { interval = 10, down_after = 3, up_after = 2 } })
--     -- in a request handler
--     local res = dispatcher.relay(req, "media", { timeout = 5 })
--
-- Algorithms: `round_robin`, `weighted` (smooth weighted round robin:
-- exact shares over every sum-of-weights requests), `hash_callid`,
-- `hash_from` (From user), `hash_ruri` (Request-URI user) (a key always
-- picks the same destination while it is usable; the next ones in the
-- ring otherwise) and `priority` (lowest `priority` first, listing order
-- within one; the others are the failover).
--
-- States of a destination: `up` (takes traffic), `probing` (a probe or a
-- relay failed, fewer than `down_after` times in a row; or it was down and
-- answered, fewer than `up_after` times: takes traffic only when no
-- destination is up), `down` (no traffic; still probed), `disabled` (set
-- by the admin: no traffic, no probes). Every transition is logged and
-- counted.
-- @module luasip.dispatcher
local sip = require "luasip"
local core = require "luasip.core"
local proxy = require "luasip.proxy"
local log = require "luasip.log"
local dns = require "luasip.dns"

local type, pairs, ipairs, tostring, tonumber, error = type, pairs, ipairs, tostring, tonumber, error
local format, byte = string.format, string.byte
local floor = math.floor

local M = {}

--- The algorithms by name.
M.algorithms = {
  round_robin = true, weighted = true, hash_callid = true, hash_from = true,
  hash_ruri = true, priority = true,
}

--- The states a destination can be in.
M.states = { "up", "probing", "down", "disabled" }

-- Sets by name; module state, so a script reload keeps them (and their
-- destinations' states, for URIs that stay).
local sets = {}
local order = {}

local counters = {
  selected = 0, failovers = 0, no_destination = 0, probes_sent = 0, probe_failures = 0,
  probe_timeouts = 0, transitions = 0, relays = 0, trust_refreshes = 0,
}

-- Observers of relay outcomes (luasip.metrics): fn(set, dest, status, seconds).
local observers = {}

--- Add an observer of every relay attempt: `fn(set_name, dest_uri, status,
-- seconds)` (it must not wait).
-- @tparam function fn
function M.observe(fn)
  observers[#observers + 1] = fn
end

local function now_ms()
  return core.now()
end

local function set_state(set, d, state, why)
  if d.state == state then
    return
  end
  local old = d.state
  d.state = state
  d.since = os.time()
  counters.transitions = counters.transitions + 1
  local key = old .. "_" .. state
  set.transitions[key] = (set.transitions[key] or 0) + 1
  local logf = (state == "down") and log.warn or log.info
  logf("dispatcher %s: %s %s -> %s (%s)", set.name, d.uri, old, state, why)
end

-- A failure (probe or relay) of destination d.
local function failed(set, d, why)
  if d.state == "disabled" then
    return
  end
  d.successes = 0
  d.failures = d.failures + 1
  if d.recovering or d.failures >= set.down_after then
    d.recovering = true
    set_state(set, d, "down", why)
  elseif d.state == "up" then
    set_state(set, d, "probing", why)
  end
end

-- A success (probe answered with a status that counts as alive).
local function succeeded(set, d, why)
  if d.state == "disabled" then
    return
  end
  d.failures = 0
  if d.state == "up" then
    return
  end
  d.successes = d.successes + 1
  if not d.recovering or d.successes >= set.up_after then
    d.successes, d.recovering = 0, false
    set_state(set, d, "up", why)
  elseif d.state == "down" then
    set_state(set, d, "probing", why)
  end
end

local function check_dest(i, t)
  if type(t) == "string" then
    t = { uri = t }
  end
  if type(t) ~= "table" or type(t.uri) ~= "string" then
    error(format("destination %d: a URI string or { uri =, weight =, priority =, attrs = } expected", i), 3)
  end
  if not sip.uri(t.uri) then
    error(format("destination %d: bad URI %q", i, t.uri), 3)
  end
  local w = t.weight == nil and 1 or tonumber(t.weight)
  if not w or w < 0 or w ~= floor(w) then
    error(format("destination %d: weight must be an integer >= 0", i), 3)
  end
  local p = t.priority == nil and 0 or tonumber(t.priority)
  if not p then
    error(format("destination %d: priority must be a number", i), 3)
  end
  return {
    uri = t.uri, dest = t.dest, weight = w, priority = p, attrs = t.attrs or {},
    state = "up", failures = 0, successes = 0, recovering = false, current = 0,
    selected = 0, probes = 0, last_status = nil, since = os.time(),
  }
end

local function stop_probes(set)
  if set.timer then
    set.timer:stop()
    set.timer = nil
  end
end

-- ---------------------------------------------------------------------------
-- The flood protection's trusted list
-- ---------------------------------------------------------------------------

-- An IP address (no brackets), or nil for a name.
local function numeric(host)
  host = host and host:gsub("^%[(.*)%]$", "%1")
  if host and (host:match("^%d+%.%d+%.%d+%.%d+$") or host:find(":", 1, true)) then
    return host
  end
end

-- Make set.trusted (address -> true: the references the set holds in its
-- server's trusted list) the addresses of want: trust the new ones first,
-- then let go of the old ones (an address held by another set, or by the
-- flood configuration, stays trusted: the list counts references).
local function hold_trust(set, want)
  local srv, held = set.server, set.trusted
  if srv:is_closed() then -- its list went with it
    set.trusted = {}
    return
  end
  for addr in pairs(want) do
    if not held[addr] then
      local ok, err, code = srv:flood_trust(addr)
      if ok then
        held[addr] = true
      elseif code ~= "EINVAL" and not set.trust_warned then -- EINVAL: flood protection is off
        set.trust_warned = true
        log.warn(format("dispatcher %s: %s not trusted: %s", set.name, addr, tostring(err)))
      end
    end
  end
  for addr in pairs(held) do
    if not want[addr] then
      held[addr] = nil
      srv:flood_untrust(addr)
    end
  end
end

-- The addresses the set's destinations are at now: numeric hosts as they
-- are, names resolved (RFC 3263: every target's address; the DNS cache
-- answers within the TTL). A name whose lookup fails for a while (a
-- timeout, SERVFAIL) keeps its last addresses; one that no longer exists
-- (EAI_NONAME) has none.
local function refresh_trust(set)
  local want = {}
  for host in pairs(set.trust_numeric) do
    want[host] = true
  end
  for _, uri in ipairs(set.trust_names) do
    local targets, _, code = dns.resolve(uri)
    if sets[set.name] ~= set then
      return -- replaced while waiting
    end
    local addrs = set.name_addrs[uri]
    if targets then
      addrs = {}
      for _, t in ipairs(targets) do
        if t.addr then
          addrs[(t.addr:gsub("^%[(.*)%]$", "%1"))] = true
        end
      end
    elseif code == "EAI_NONAME" then
      addrs = {}
    end
    set.name_addrs[uri] = addrs
    for addr in pairs(addrs or {}) do
      want[addr] = true
    end
  end
  counters.trust_refreshes = counters.trust_refreshes + 1
  hold_trust(set, want)
end

-- Let go of every trusted address of a set and stop its refreshes.
local function release_trust(set)
  if set.trust_timer then
    set.trust_timer:stop()
    set.trust_timer = nil
  end
  if set.trusted and set.server then
    hold_trust(set, {})
  end
end

local probe_all

--- Declare (or replace) a destination set.
--
-- `dests`: a list of URI strings or `{ uri =, dest =, weight = 1,
-- priority = 0, attrs = {} }` (`dest`, `"udp:IP:PORT"`, sends there
-- instead of where the URI leads; a URI whose host is a name is located
-- by RFC 3263). Declaring a set again (a script reload) keeps the state
-- of the destinations whose URI stays.
--
-- Options: `algorithm` (default `round_robin`), `server` (needed for
-- probes), `probe = { interval = s, method = "OPTIONS", timeout = s,
-- down_after = 3, up_after = 2, alive = function(status) }` or false
-- (no probes, the default); any 2xx-6xx reply to a probe counts as alive
-- except the codes of `probe.dead` (a list, default `{ 408 }`), `failover`
-- (statuses that move a relay to the next destination: default 408 and
-- 5xx), `mark` (statuses of a relay that count as a failure of the
-- destination: default `{ 408 }`; a transport error is a made-up 503/408),
-- `trust` (default true: with `server` and its flood protection on, the
-- addresses of the destinations join its trusted list, so their requests
-- (a BYE from a callee, say) are never limited; switch flood protection on
-- before declaring the set): numeric hosts (and the host of `dest`) as
-- they are, host names resolved by RFC 3263 (`luasip.dns`: every target's
-- address) now and every `trust_refresh` seconds (default 60; the DNS
-- cache answers within the TTL), so an address a name no longer has stops
-- being trusted and a new one starts. A name whose lookup fails (timeout,
-- SERVFAIL) keeps its last addresses; a name that no longer exists has
-- none. Declaring the set again or `dispatcher.reset()` lets go of them
-- (an address trusted by another set or by the flood configuration stays
-- trusted: the server's list counts references).
-- @tparam string name
-- @tparam table dests
-- @tparam[opt] table opts
-- @treturn table the set
function M.set(name, dests, opts)
  if type(name) ~= "string" or name == "" then
    error("bad argument #1 to 'set' (a name expected)", 2)
  end
  if type(dests) ~= "table" or #dests == 0 then
    error("bad argument #2 to 'set' (a list of destinations expected)", 2)
  end
  opts = opts or {}
  local algorithm = opts.algorithm or "round_robin"
  if not M.algorithms[algorithm] then
    error(format("unknown algorithm %q (round_robin, weighted, hash_callid, hash_from, hash_ruri, priority)",
      tostring(algorithm)), 2)
  end
  local probe = opts.probe
  if probe ~= nil and probe ~= false and type(probe) ~= "table" then
    error("probe: a table or false expected", 2)
  end
  local old = sets[name]
  local set = {
    name = name, algorithm = algorithm, dests = {}, rr = 0, server = opts.server,
    probe = probe or nil, down_after = (probe and probe.down_after) or opts.down_after or 3,
    up_after = (probe and probe.up_after) or opts.up_after or 2,
    failover = opts.failover, mark = {}, transitions = old and old.transitions or {},
  }
  for _, code in ipairs(opts.mark or { 408 }) do
    set.mark[code] = true
  end
  set.dead = {}
  for _, code in ipairs(probe and probe.dead or { 408 }) do
    set.dead[code] = true
  end
  local kept = {}
  if old then
    for _, d in ipairs(old.dests) do
      kept[d.uri] = d
    end
    stop_probes(old)
  else
    order[#order + 1] = name
  end
  if old and old.trust_timer then
    old.trust_timer:stop()
    old.trust_timer = nil
  end
  for i, t in ipairs(dests) do
    local d = check_dest(i, t)
    local k = kept[d.uri]
    if k then
      d.state, d.failures, d.successes, d.since = k.state, k.failures, k.successes, k.since
      d.recovering = k.recovering
      d.selected, d.probes, d.last_status = k.selected, k.probes, k.last_status
    end
    set.dests[i] = d
  end
  local trust_refresh = opts.trust_refresh or 60
  if type(trust_refresh) ~= "number" or trust_refresh <= 0 then
    error("trust_refresh: seconds > 0 expected", 2)
  end
  sets[name] = set
  if set.server and opts.trust ~= false and set.server.flood_trust then
    -- trusted by address: numeric hosts now, names once resolved
    set.trusted, set.trust_numeric, set.trust_names, set.name_addrs = {}, {}, {}, {}
    local seen_names = {}
    for _, d in ipairs(set.dests) do
      local host = numeric(sip.uri(d.uri).host)
      if host then
        set.trust_numeric[host] = true
      elseif not seen_names[d.uri] then
        seen_names[d.uri] = true
        set.trust_names[#set.trust_names + 1] = d.uri
      end
      local dhost = type(d.dest) == "string" and d.dest:match("^%a+:(.*):%d+$")
      dhost = numeric(dhost)
      if dhost then
        set.trust_numeric[dhost] = true
      end
    end
    if old and old.name_addrs then -- a reload: names keep their addresses meanwhile
      for _, uri in ipairs(set.trust_names) do
        set.name_addrs[uri] = old.name_addrs[uri]
      end
    end
    local want = {}
    for host in pairs(set.trust_numeric) do
      want[host] = true
    end
    for _, addrs in pairs(set.name_addrs) do
      for addr in pairs(addrs) do
        want[addr] = true
      end
    end
    hold_trust(set, want) -- nothing is held when flood protection is off
    if #set.trust_names > 0 then
      sip.spawn(refresh_trust, set)
      set.trust_timer = sip.timer(trust_refresh, function()
        if sets[set.name] == set then
          refresh_trust(set)
        end
      end, { interval = trust_refresh, background = true })
    end
  end
  if old then
    release_trust(old) -- after the new set holds its addresses: no gap
  end
  if probe then
    if not set.server then
      error("probe: needs opts.server", 2)
    end
    local interval = probe.interval or 10
    set.timer = sip.timer(interval, function()
      probe_all(set)
    end, { interval = interval, background = true })
  end
  return set
end

--- The set named `name` (nil when there is none).
-- @tparam string name
-- @treturn table|nil
function M.get(name)
  return sets[name]
end

--- Remove every set and stop their probes (tests, a script's stop hook).
function M.reset()
  for _, set in pairs(sets) do
    stop_probes(set)
    release_trust(set)
  end
  sets, order = {}, {}
  for k in pairs(counters) do
    counters[k] = 0
  end
end

-- ---------------------------------------------------------------------------
-- Selection
-- ---------------------------------------------------------------------------

-- FNV-1a, 32 bits.
local function hash(s)
  local h = 2166136261
  for i = 1, #s do
    h = ((h ~ byte(s, i)) * 16777619) & 0xffffffff
  end
  return h
end

local function usable(d, pass)
  if pass == 1 then
    return d.state == "up"
  end
  return d.state == "probing"
end

local function hash_key(req, algorithm)
  if algorithm == "hash_callid" then
    return req.call_id
  elseif algorithm == "hash_from" then
    local f = req.from
    local u = f and sip.uri(f.uri)
    return u and u.user
  end
  local u = req.uri and sip.uri(tostring(req.uri))
  return u and u.user
end

-- The destinations of set to try for req, first choice first: the up ones
-- in the algorithm's order, then the probing ones.
local function candidates(set, req)
  local out = {}
  local ds = set.dests
  local n = #ds
  local algorithm = set.algorithm
  for pass = 1, 2 do
    if algorithm == "priority" then
      local list = {}
      for i, d in ipairs(ds) do
        if usable(d, pass) then
          list[#list + 1] = { d = d, i = i }
        end
      end
      table.sort(list, function(a, b)
        if a.d.priority ~= b.d.priority then
          return a.d.priority < b.d.priority
        end
        return a.i < b.i
      end)
      for _, e in ipairs(list) do
        out[#out + 1] = e.d
      end
    elseif algorithm == "weighted" then
      -- smooth weighted round robin (nginx): each usable destination gains
      -- its weight, the largest is chosen and loses the total
      local total, best = 0, nil
      for _, d in ipairs(ds) do
        if usable(d, pass) and d.weight > 0 then
          d.current = d.current + d.weight
          total = total + d.weight
          if not best or d.current > best.current then
            best = d
          end
        end
      end
      if best then
        best.current = best.current - total
        out[#out + 1] = best
        local rest = {}
        for i, d in ipairs(ds) do
          if d ~= best and usable(d, pass) and d.weight > 0 then
            rest[#rest + 1] = { d = d, i = i }
          end
        end
        table.sort(rest, function(a, b)
          if a.d.weight ~= b.d.weight then
            return a.d.weight > b.d.weight
          end
          return a.i < b.i
        end)
        for _, e in ipairs(rest) do
          out[#out + 1] = e.d
        end
      end
    else
      local start
      if algorithm == "round_robin" then
        if pass == 1 then
          set.rr = set.rr % n + 1
        end
        start = set.rr
      else
        local key = hash_key(req, algorithm)
        start = key and (hash(key) % n + 1) or 1
      end
      for k = 0, n - 1 do
        local d = ds[(start - 1 + k) % n + 1]
        if usable(d, pass) then
          out[#out + 1] = d
        end
      end
    end
  end
  return out
end

--- The destinations `dispatcher.relay` would try for `req`, in order (the
-- algorithm's choice first). Advances round robin / weighted state.
-- @tparam string name the set
-- @tparam[opt] Message req (needed by the hash algorithms)
-- @treturn[1] {table,...} destinations (`uri`, `state`, `weight`, ...)
-- @return[2] nil
-- @treturn[2] string error
function M.select(name, req)
  local set = sets[name]
  if not set then
    return nil, "dispatcher: no set " .. tostring(name)
  end
  return candidates(set, req)
end

local function default_failover(status)
  return status == 408 or (status >= 500 and status < 600)
end

--- Relay `req` to the destinations of set `name`: the algorithm's choice
-- first, the next one when the previous ended in a failover status (408,
-- 5xx, a transport error), while the request is not answered or
-- cancelled. A relay that ends in a `mark` status (408) counts as a
-- failure of that destination (`down_after` of them in a row mark it
-- down). No usable destination: 503 (`opts.status` to change it).
--
-- Options are `proxy.relay`'s (`timeout` is per destination: a dead one
-- costs that long) plus `attempts` (most destinations tried, all by
-- default) and `target = function(dest, req)` returning the relay target
-- (default: `{ uri = dest.uri, dest = dest.dest }`, the Request-URI
-- replaced by the destination; return `{ uri = req.uri, dest = ... }` to
-- keep it).
-- @tparam Message req
-- @tparam string name
-- @tparam[opt] table opts
-- @treturn[1] Message the final response (the last destination's)
-- @treturn[1] table the destination that gave it
-- @return[2] nil
-- @treturn[2] string error
function M.relay(req, name, opts)
  local set = sets[name]
  if not set then
    return nil, "dispatcher: no set " .. tostring(name)
  end
  opts = opts or {}
  local list = candidates(set, req)
  counters.relays = counters.relays + 1
  if #list == 0 then
    counters.no_destination = counters.no_destination + 1
    local status = opts.status or 503
    if req.method ~= "ACK" and not req:handled() then
      req:reply(status, status == 503 and "Service Unavailable (no destination)" or nil)
    end
    return req:response(status)
  end
  local failover = set.failover or default_failover
  local attempts = opts.attempts or #list
  local res, used
  for i, d in ipairs(list) do
    if i > attempts then
      break
    end
    if i > 1 then
      counters.failovers = counters.failovers + 1
    else
      counters.selected = counters.selected + 1
    end
    d.selected = d.selected + 1
    local target = opts.target and opts.target(d, req) or { uri = d.uri, dest = d.dest }
    local t0 = now_ms()
    local err
    res, err = proxy.relay(req, target, opts)
    used = d
    if req.method == "ACK" then
      return nil
    end
    if not res then
      return nil, err
    end
    local status = res.status
    for _, fn in ipairs(observers) do
      fn(set.name, d.uri, status, (now_ms() - t0) / 1000)
    end
    if set.mark[status] then
      failed(set, d, format("relay got %d", status))
    end
    if not failover(status) or req:is_cancelled() or req:is_closed() or
      (req.method == "INVITE" and req:handled()) then
      break
    end
  end
  return res, used
end

-- ---------------------------------------------------------------------------
-- Probes
-- ---------------------------------------------------------------------------

local function host_of(srv)
  local l = srv:listener(0)
  return l and l.host or "127.0.0.1"
end

-- One probe of d (in its own coroutine); a probe without an answer within
-- probe.timeout is a failure, and a late answer is ignored. No new probe
-- of d starts while one is pending.
local function probe_one(set, d)
  local p = set.probe
  local srv = set.server
  d.probe_seq = (d.probe_seq or 0) + 1
  local seq = d.probe_seq
  local done = false
  d.probe_pending = true
  counters.probes_sent = counters.probes_sent + 1
  d.probes = d.probes + 1
  local timeout = p.timeout or math.min(p.interval or 10, 5)
  local timer = core.timer(floor(timeout * 1000), 0, function()
    if not done and d.probe_seq == seq then
      done = true
      d.probe_pending = false
      counters.probe_timeouts = counters.probe_timeouts + 1
      counters.probe_failures = counters.probe_failures + 1
      d.last_status = 408
      failed(set, d, "probe timed out")
    end
  end)
  sip.spawn(function()
    local req = assert(sip.request {
      method = p.method or "OPTIONS", uri = d.uri,
      from = "<sip:dispatcher@" .. host_of(srv) .. ">",
      to = "<" .. d.uri .. ">", max_forwards = 70,
    })
    local res = srv:send(req, d.dest)
    if done or d.probe_seq ~= seq then
      return
    end
    done = true
    d.probe_pending = false
    timer:stop()
    local status = res and res.status or 503
    d.last_status = status
    local alive
    if p.alive then
      alive = p.alive(status)
    else
      alive = status >= 200 and status < 700 and not set.dead[status]
    end
    if alive then
      succeeded(set, d, format("probe got %d", status))
    else
      counters.probe_failures = counters.probe_failures + 1
      failed(set, d, format("probe got %d", status))
    end
  end)
end

probe_all = function(set)
  if sets[set.name] ~= set then
    return stop_probes(set)
  end
  for _, d in ipairs(set.dests) do
    if d.state ~= "disabled" and not d.probe_pending then
      probe_one(set, d)
    end
  end
end

--- Probe every destination of a set now (besides the interval).
-- @tparam string name
function M.probe(name)
  local set = sets[name]
  if set and set.probe then
    probe_all(set)
  end
end

-- ---------------------------------------------------------------------------
-- Admin and inspection
-- ---------------------------------------------------------------------------

local function find(set, which)
  local idx = tonumber(which)
  if idx and set.dests[idx] then
    return set.dests[idx]
  end
  for _, d in ipairs(set.dests) do
    if d.uri == which then
      return d
    end
  end
  return nil
end

--- Set a destination's state by hand: `"down"` disables it (no traffic,
-- no probes) until `"up"`, which puts it back in service at once.
-- @tparam string name the set
-- @tparam string|integer which the destination's URI or index
-- @tparam string state `"up"` or `"down"`
-- @treturn[1] table the destination
-- @return[2] nil
-- @treturn[2] string error
function M.admin(name, which, state)
  local set = sets[name]
  if not set then
    return nil, "no set " .. tostring(name)
  end
  local d = find(set, which)
  if not d then
    return nil, format("set %s has no destination %s", name, tostring(which))
  end
  if state == "down" or state == "disabled" then
    set_state(set, d, "disabled", "admin")
  elseif state == "up" then
    d.failures, d.successes, d.recovering = 0, 0, false
    set_state(set, d, "up", "admin")
  else
    return nil, "state must be up or down"
  end
  return d
end

--- Every set with its destinations: a list of `{ name =, algorithm =,
-- dests = { { uri =, state =, weight =, priority =, attrs =, selected =,
-- probes =, failures =, last_status =, since = }, ... }, transitions = {
-- ["up_down"] = n, ... } }` (copies).
-- @treturn table
function M.list()
  local out = {}
  for _, name in ipairs(order) do
    local set = sets[name]
    local ds = {}
    for i, d in ipairs(set.dests) do
      ds[i] = {
        uri = d.uri, state = d.state, weight = d.weight, priority = d.priority, attrs = d.attrs,
        selected = d.selected, probes = d.probes, failures = d.failures, last_status = d.last_status,
        since = d.since,
      }
    end
    local tr = {}
    for k, v in pairs(set.transitions) do
      tr[k] = v
    end
    out[#out + 1] = { name = name, algorithm = set.algorithm, dests = ds, transitions = tr }
  end
  return out
end

--- Counters: `selected`, `failovers`, `no_destination`, `relays`,
-- `probes_sent`, `probe_failures`, `probe_timeouts`, `transitions`.
-- @treturn table
function M.stats()
  local t = {}
  for k, v in pairs(counters) do
    t[k] = v
  end
  return t
end

return M
