--- Prometheus metrics: the text exposition format (version 0.0.4) of the
-- server's counters, served over HTTP by `luasip run --metrics ADDR:PORT`
-- at `/metrics`, and counters, gauges and histograms of the script's own.
--
--     local metrics = require "luasip.metrics"
--     local calls = metrics.counter("myapp_calls_total", "Calls routed", { "route" })
--     calls:inc(1, { route = "pstn" })
--     metrics.gauge("myapp_queue_length", "Calls waiting"):set(3)
--
-- Every counter of `srv:stats()` is exported: `luasip_<name>_total` for a
-- counter, `luasip_<name>` for a gauge (connections, live transactions,
-- cache entries, bytes in use, blocked sources, ...). Besides them:
-- `luasip_responses_sent_total{class}` and `luasip_responses_received_total{class}`
-- (the transport's, `1xx`..`6xx`), `luasip_open_connections{transport}`
-- (`udp` .. `wss`; connections, not listeners: `udp` is always 0),
-- `luasip_handled_requests_total{method}` (requests that reached the
-- script), `luasip_relay_responses_total{class}` and
-- `luasip_relay_duration_seconds` (a histogram: every `proxy.relay`),
-- `luasip_registrations_total` (REGISTERs answered 200; use rate()),
-- `luasip_location_bindings{store}`, `luasip_registrar_requests_total{path}`
-- (REGISTERs handled: fast or general path), `luasip_script_reloads_total`,
-- `luasip_script_reload_failures_total`, `luasip_handler_errors_total`,
-- `luasip_dispatcher_destination_state{set,destination,state}` (1 for the
-- current state, 0 for the others),
-- `luasip_dispatcher_destination_relays_total{set,destination}`, `luasip_dispatcher_*_total`,
-- `luasip_lua_heap_bytes`, `luasip_uptime_seconds`,
-- `luasip_start_time_seconds`.
-- @module luasip.metrics
local core = require "luasip.core"
local sip = require "luasip"

local type, pairs, ipairs, tostring, tonumber, error = type, pairs, ipairs, tostring, tonumber, error
local format, concat, sort = string.format, table.concat, table.sort
local math_type = math.type

local M = {}

local start_time = os.time()
local start_ms = core.now()

-- Metric families of scripts and modules, by name, in creation order.
local families, family_order = {}, {}

-- Requests by method, counted by the command's request dispatcher.
local by_method = {}

-- The runtime of `luasip run` (reloads, handler errors): a function
-- returning { reloads =, failed_reloads =, errors = }.
local runtime

local function check_name(name, lvl)
  if type(name) ~= "string" or not name:match("^[%a_:][%w_:]*$") then
    error(format("bad metric name %q", tostring(name)), lvl + 1)
  end
end

local function escape(v)
  return (tostring(v):gsub("[\\\"\n]", { ["\\"] = "\\\\", ['"'] = '\\"', ["\n"] = "\\n" }))
end

local function number(v)
  if math_type(v) == "integer" then
    return tostring(v)
  elseif v ~= v then
    return "NaN"
  elseif v == math.huge then
    return "+Inf"
  elseif v == -math.huge then
    return "-Inf"
  end
  for p = 1, 17 do -- the shortest form that reads back the same
    local s = format("%." .. p .. "g", v)
    if tonumber(s) == v then
      return s
    end
  end
  return format("%.17g", v)
end

-- The label part of a sample: {a="x",b="y"} in the family's label order.
local function labels_text(names, values)
  if not names or #names == 0 then
    return ""
  end
  local parts = {}
  for i, n in ipairs(names) do
    parts[i] = format('%s="%s"', n, escape(values and values[n] or ""))
  end
  return "{" .. concat(parts, ",") .. "}"
end

local Family = {}
Family.__index = Family

local function key_of(names, values)
  if not names or #names == 0 then
    return ""
  end
  local parts = {}
  for i, n in ipairs(names) do
    parts[i] = tostring(values and values[n] or "")
  end
  return concat(parts, "\0")
end

local function series(self, values)
  local k = key_of(self.labels, values)
  local s = self.series[k]
  if not s then
    s = { labels = values, value = 0 }
    if self.kind == "histogram" then
      s.counts, s.sum, s.count = {}, 0, 0
      for i = 1, #self.buckets do
        s.counts[i] = 0
      end
    end
    self.series[k] = s
    self.keys[#self.keys + 1] = k
  end
  return s
end

--- Add `n` (default 1, >= 0) to a counter, or to a gauge.
-- @tparam[opt] number n
-- @tparam[opt] table labels label name -> value
function Family:inc(n, labels)
  n = n or 1
  if self.kind == "counter" and n < 0 then
    error("a counter only goes up", 2)
  end
  local s = series(self, labels)
  s.value = s.value + n
end

--- Subtract `n` (default 1) from a gauge.
-- @tparam[opt] number n
-- @tparam[opt] table labels
function Family:dec(n, labels)
  if self.kind ~= "gauge" then
    error("dec: not a gauge", 2)
  end
  local s = series(self, labels)
  s.value = s.value - (n or 1)
end

--- Set a gauge.
-- @tparam number v
-- @tparam[opt] table labels
function Family:set(v, labels)
  if self.kind ~= "gauge" then
    error("set: not a gauge", 2)
  end
  series(self, labels).value = v
end

--- Record one value in a histogram.
-- @tparam number v
-- @tparam[opt] table labels
function Family:observe(v, labels)
  if self.kind ~= "histogram" then
    error("observe: not a histogram", 2)
  end
  local s = series(self, labels)
  for i, b in ipairs(self.buckets) do
    if v <= b then
      s.counts[i] = s.counts[i] + 1
    end
  end
  s.sum = s.sum + v
  s.count = s.count + 1
end

local function new_family(kind, name, help, labels, buckets)
  check_name(name, 3)
  if kind == "counter" and not name:match("_total$") then
    error(format("counter %q: the name must end in _total", name), 3)
  end
  local old = families[name]
  if old then
    if old.kind ~= kind then
      error(format("metric %q is already a %s", name, old.kind), 3)
    end
    return old -- a script reload declares it again: keep its values
  end
  for _, l in ipairs(labels or {}) do
    if type(l) ~= "string" or not l:match("^[%a_][%w_]*$") or l:match("^__") then
      error(format("metric %q: bad label name %q", name, tostring(l)), 3)
    end
  end
  local f = setmetatable({
    kind = kind, name = name, help = help or name, labels = labels or {}, buckets = buckets,
    series = {}, keys = {},
  }, Family)
  families[name] = f
  family_order[#family_order + 1] = name
  return f
end

--- A counter (its name ends in `_total`). Declaring one again (a script
-- reload) returns the same one, values kept.
-- @tparam string name
-- @tparam[opt] string help
-- @tparam[opt] {string,...} labels label names
-- @return the counter: `c:inc([n[, labels]])`
function M.counter(name, help, labels)
  return new_family("counter", name, help, labels)
end

--- A gauge.
-- @tparam string name
-- @tparam[opt] string help
-- @tparam[opt] {string,...} labels
-- @return the gauge: `g:set(v[, labels])`, `g:inc`, `g:dec`
function M.gauge(name, help, labels)
  return new_family("gauge", name, help, labels)
end

-- The default buckets of a histogram (seconds), `metrics.default_buckets`.
M.default_buckets = { 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10 }

--- A histogram.
-- @tparam string name (base unit: `_seconds`, `_bytes`)
-- @tparam[opt] string help
-- @tparam[opt] {string,...} labels
-- @tparam[opt] {number,...} buckets upper bounds, increasing (default
--   `metrics.default_buckets`: 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,
--   2.5, 5 and 10 seconds)
-- @return the histogram: `h:observe(v[, labels])`
function M.histogram(name, help, labels, buckets)
  buckets = buckets or M.default_buckets
  for i = 2, #buckets do
    if buckets[i] <= buckets[i - 1] then
      error("histogram buckets must increase", 2)
    end
  end
  return new_family("histogram", name, help, labels, buckets)
end

--- Forget every metric a script declared (tests).
function M.reset()
  families, family_order, by_method = {}, {}, {}
end

--- Count a request that reached the script (the command's dispatcher
-- calls it for every request).
-- @tparam string method
function M.count_request(method)
  by_method[method] = (by_method[method] or 0) + 1
end

--- Tell the metrics where the runtime counters of `luasip run` are.
-- @tparam function fn returns `{ reloads =, failed_reloads =, errors = }`
function M.set_runtime(fn)
  runtime = fn
end

-- Counters of srv:stats() that are gauges (a level, not a count of events).
local gauge_stats = {
  connections = true, txn_mem_bytes = true, proxy_live_ctx = true, proxy_ctx_bytes = true,
  dns_cache_entries = true, dns_pending = true, unacked_2xx = true,
}

local function is_gauge_stat(name)
  return gauge_stats[name] or name:match("_live") ~= nil or name:match("_entries$") ~= nil
    or name:match("_pending$") ~= nil or name:match("_open$") ~= nil or name:match("^blocked") ~= nil
    or name:match("_blocked$") ~= nil or name:match("_slots") ~= nil
    or (name:match("_bytes$") ~= nil and name ~= "rx_bytes" and name ~= "tx_bytes")
end

-- The outcomes of every proxy.relay (the dispatcher's too).
local relay_classes = {}
local relay_hist

local function on_relay(status, seconds)
  local class = format("%dxx", status // 100)
  relay_classes[class] = (relay_classes[class] or 0) + 1
  relay_hist:observe(seconds)
end

do
  relay_hist = setmetatable({
    kind = "histogram", name = "luasip_relay_duration_seconds",
    help = "Time from proxy.relay to its best final response",
    labels = {}, buckets = M.default_buckets, series = {}, keys = {},
  }, Family)
  require("luasip.proxy").observe(on_relay)
end

-- Output: a list of lines.
local function header(out, name, kind, help)
  out[#out + 1] = format("# HELP %s %s", name, (help:gsub("\\", "\\\\"):gsub("\n", "\\n")))
  out[#out + 1] = format("# TYPE %s %s", name, kind)
end

local function sample(out, name, labels, value)
  out[#out + 1] = name .. labels .. " " .. number(value)
end

local function render_family(out, f)
  header(out, f.name, f.kind, f.help)
  local keys = f.keys
  for _, k in ipairs(keys) do
    local s = f.series[k]
    if f.kind == "histogram" then
      local base = {}
      for i, n in ipairs(f.labels) do
        base[i] = format('%s="%s"', n, escape(s.labels and s.labels[n] or ""))
      end
      for i, b in ipairs(f.buckets) do
        local l = { table.unpack(base) }
        l[#l + 1] = format('le="%s"', number(b + 0.0))
        sample(out, f.name .. "_bucket", "{" .. concat(l, ",") .. "}", s.counts[i])
      end
      local l = { table.unpack(base) }
      l[#l + 1] = 'le="+Inf"'
      sample(out, f.name .. "_bucket", "{" .. concat(l, ",") .. "}", s.count)
      local lt = #base > 0 and ("{" .. concat(base, ",") .. "}") or ""
      sample(out, f.name .. "_sum", lt, s.sum)
      sample(out, f.name .. "_count", lt, s.count)
    else
      sample(out, f.name, labels_text(f.labels, s.labels), s.value)
    end
  end
end

local function sorted(t)
  local keys = {}
  for k in pairs(t) do
    keys[#keys + 1] = k
  end
  sort(keys)
  return keys
end

local function labelled(out, name, kind, help, label, t)
  header(out, name, kind, help)
  for _, k in ipairs(sorted(t)) do
    sample(out, name, format('{%s="%s"}', label, escape(k)), t[k])
  end
end

-- Counters of srv:stats() exported as one labelled family each:
-- key pattern -> family name, type, help, label.
local stat_families = {
  { "^responses_sent_(%dxx)$", "luasip_responses_sent_total", "counter",
    "Responses handed to the transport, by class (retransmissions included)", "class" },
  { "^responses_received_(%dxx)$", "luasip_responses_received_total", "counter",
    "Responses received and parsed, by class", "class" },
  { "^connections_(%a+)$", "luasip_open_connections", "gauge",
    "Open connections, by transport", "transport" },
}

-- The family of a srv:stats() key, and its label value.
local function stat_family(k)
  for _, f in ipairs(stat_families) do
    local v = k:match(f[1])
    if v then
      return f, v
    end
  end
end

--- The exposition text: the server's counters, the runtime's, the
-- dispatcher's, the location stores' and every metric declared with
-- `counter` / `gauge` / `histogram`. It may wait (a store's count), so
-- call it in a coroutine.
-- @tparam[opt] Server srv
-- @treturn string
function M.render(srv)
  local out = {}
  if srv then
    local st = srv:stats()
    local grouped = {}
    for _, k in ipairs(sorted(st)) do
      local v = st[k]
      local f, lv = stat_family(k)
      if f and type(v) == "number" then
        grouped[f] = grouped[f] or {}
        grouped[f][lv] = v
      elseif type(v) == "number" then
        if is_gauge_stat(k) then
          local name = "luasip_" .. k
          header(out, name, "gauge", "srv:stats() " .. k)
          sample(out, name, "", v)
        else
          local name = "luasip_" .. k .. "_total"
          header(out, name, "counter", "srv:stats() " .. k)
          sample(out, name, "", v)
        end
      end
    end
    for _, f in ipairs(stat_families) do
      if grouped[f] then
        labelled(out, f[2], f[3], f[4], f[5], grouped[f])
      end
    end
  end
  labelled(out, "luasip_handled_requests_total", "counter", "Requests that reached the script, by method",
    "method", by_method)
  labelled(out, "luasip_relay_responses_total", "counter",
    "Best final responses of proxy.relay, by class (made-up 408s included)", "class", relay_classes)
  render_family(out, relay_hist)
  local rt = runtime and runtime()
  if rt then
    header(out, "luasip_script_reloads_total", "counter", "Script reloads that succeeded")
    sample(out, "luasip_script_reloads_total", "", rt.reloads or 0)
    header(out, "luasip_script_reload_failures_total", "counter", "Script reloads that failed")
    sample(out, "luasip_script_reload_failures_total", "", rt.failed_reloads or 0)
    header(out, "luasip_handler_errors_total", "counter", "Request handlers that raised an error")
    sample(out, "luasip_handler_errors_total", "", rt.errors or 0)
  end
  local rok, registrar = pcall(require, "luasip.registrar")
  if rok and registrar.stats then
    local rs = registrar.stats()
    labelled(out, "luasip_registrar_requests_total", "counter",
      "REGISTERs handled by registrar.save, by path (fast: in C)", "path",
      { fast = rs.fast, general = rs.general })
    header(out, "luasip_registrations_total", "counter",
      "REGISTERs answered 200 by registrar.save (rate(): registrations per second)")
    sample(out, "luasip_registrations_total", "", rs.registered or 0)
  end
  local lok, location = pcall(require, "luasip.location")
  if lok and location.opened then
    local counts = {}
    for _, e in ipairs(location.opened()) do
      local ok, n = pcall(e.store.count, e.store)
      if ok and type(n) == "number" then
        counts[e.url] = n
      end
    end
    labelled(out, "luasip_location_bindings", "gauge", "Bindings in a location store", "store", counts)
  end
  local dok, dispatcher = pcall(require, "luasip.dispatcher")
  if dok then
    local dst = dispatcher.stats()
    for _, k in ipairs(sorted(dst)) do
      local name = "luasip_dispatcher_" .. k .. "_total"
      header(out, name, "counter", "dispatcher " .. k)
      sample(out, name, "", dst[k])
    end
    header(out, "luasip_dispatcher_destination_state", "gauge",
      "Dispatcher destination states (1: the current one)")
    local sets = dispatcher.list()
    for _, set in ipairs(sets) do
      for _, d in ipairs(set.dests) do
        for _, state in ipairs(dispatcher.states) do
          sample(out, "luasip_dispatcher_destination_state",
            format('{set="%s",destination="%s",state="%s"}', escape(set.name), escape(d.uri), state),
            d.state == state and 1 or 0)
        end
      end
    end
    header(out, "luasip_dispatcher_destination_relays_total", "counter",
      "Relays sent to a dispatcher destination")
    for _, set in ipairs(sets) do
      for _, d in ipairs(set.dests) do
        sample(out, "luasip_dispatcher_destination_relays_total",
          format('{set="%s",destination="%s"}', escape(set.name), escape(d.uri)), d.selected)
      end
    end
  end
  header(out, "luasip_lua_heap_bytes", "gauge", "Bytes in use by the Lua state")
  sample(out, "luasip_lua_heap_bytes", "", math.floor(collectgarbage("count") * 1024))
  header(out, "luasip_uptime_seconds", "gauge", "Seconds since the process started")
  sample(out, "luasip_uptime_seconds", "", (core.now() - start_ms) / 1000)
  header(out, "luasip_start_time_seconds", "gauge", "Start time of the process since the epoch")
  sample(out, "luasip_start_time_seconds", "", start_time)
  for _, name in ipairs(family_order) do
    render_family(out, families[name])
  end
  out[#out + 1] = ""
  return concat(out, "\n")
end

local function http(status, reason, ctype, body)
  return format("HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s",
    status, reason, ctype, #body, body)
end

--- Answer one HTTP request (the text up to the blank line): GET or HEAD
-- of `/metrics` gets the exposition, anything else 404, 405 or 400.
-- @tparam string request
-- @tparam[opt] Server srv
-- @treturn string the whole HTTP response
function M.http_response(request, srv)
  local method, target = request:match("^(%u+) (%S+) HTTP/1%.[01]\r?\n")
  if not method then
    return http(400, "Bad Request", "text/plain", "bad request\n")
  end
  local path = target:match("^[^?]*")
  if path ~= "/metrics" then
    return http(404, "Not Found", "text/plain", "only /metrics here\n")
  end
  if method ~= "GET" and method ~= "HEAD" then
    return http(405, "Method Not Allowed", "text/plain", "GET only\n")
  end
  local ok, body = pcall(M.render, srv)
  if not ok then
    return http(500, "Internal Server Error", "text/plain", tostring(body) .. "\n")
  end
  local res = http(200, "OK", "text/plain; version=0.0.4; charset=utf-8", body)
  if method == "HEAD" then
    res = res:sub(1, #res - #body)
  end
  return res
end

--- Serve `/metrics` over HTTP/1.1 on `addr` (`"127.0.0.1:9090"`,
-- `"[::1]:9090"`; port 0 picks one): one request per connection, at most
-- 8 KiB of request header, 5 s per connection, 32 connections at once.
-- @tparam string addr
-- @tparam[opt] Server srv whose counters are exported
-- @return[1] the listener (`h:port()`, `h:close()`, `h:stats()`)
-- @return[2] nil
-- @treturn[2] string error
function M.serve(addr, srv)
  if type(addr) ~= "string" or not addr:match(":%d+$") then
    error("bad argument #1 to 'serve' (ADDRESS:PORT expected)", 2)
  end
  local h
  local err, name
  h, err, name = core.text_server("tcp:" .. addr, {
    terminator = "\r\n\r\n", max_request = 8192, timeout = 5000, max_conns = 32,
    too_large = "HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
  }, function(id, request)
    sip.spawn(function()
      h:reply(id, M.http_response(request, srv))
    end)
  end)
  if not h then
    return nil, err, name
  end
  return h
end

return M
