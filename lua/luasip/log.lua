--- Logging: levels, text or JSON lines, to standard error.
--
--     local log = require "luasip.log"
--     log.configure{ level = "debug", format = "json" }
--     log.info("listening on %s", spec)
--
-- A line in text format: `2026-11-21T10:00:00Z error message`; in JSON
-- format: `{"ts":"...","level":"error","msg":"..."}`.
--
-- Repeated lines are rate-limited, so that a flood of anything (10,000
-- stray packets that each fail the same way) cannot turn into a log line
-- per packet: lines of one kind (the format string of `log.error(fmt,
-- ...)`, or the first line of the text given to `log.write`) beyond
-- `burst` (10) within `interval` (10 s) are counted instead of written,
-- and one summary line says how many were suppressed once the interval is
-- over (at the next line logged, or `log.flush()`).
-- @module luasip.log
local M = {}

local levels = { error = 1, warn = 2, info = 3, debug = 4 }
local format, gsub, date = string.format, string.gsub, os.date
local stderr = io.stderr
local select, tostring, pairs, next, time = select, tostring, pairs, next, os.time

local threshold = levels.info
local json = false
local sink = function(line)
  stderr:write(line, "\n")
end

local json_escapes = { ['"'] = '\\"', ["\\"] = "\\\\", ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t" }

local function json_string(s)
  return '"' .. gsub(s, '[%c"\\]', function(c)
    return json_escapes[c] or format("\\u%04x", c:byte())
  end) .. '"'
end

local function timestamp()
  return date("!%Y-%m-%dT%H:%M:%SZ")
end

local function emit(level, text)
  if json then
    sink(format('{"ts":%s,"level":%s,"msg":%s}', json_string(timestamp()), json_string(level),
      json_string(text)))
  else
    sink(format("%s %s %s", timestamp(), level, text))
  end
end

------------------------------------------------------------------------------
-- Rate limiting
------------------------------------------------------------------------------

local MAX_KINDS = 1000 -- kinds tracked at once (beyond: summaries, then anew)
local rate = { burst = 10, interval = 10 }
local clock = time
local kinds, nkinds = {}, 0 -- key -> { start, n, suppressed, level, what }
local pending = {}          -- key -> kind, for kinds with lines suppressed
local next_check = 0

local function summary(k)
  emit(k.level, format("suppressed %d more lines like this one in %ds: %s", k.suppressed,
    rate.interval, k.what))
end

-- Summaries of the kinds whose interval is over (every kind when all).
local function sweep(now, all)
  for key, k in pairs(pending) do
    if all or now - k.start >= rate.interval then
      pending[key] = nil
      if kinds[key] == k then
        kinds[key] = nil
        nkinds = nkinds - 1
      end
      summary(k)
    end
  end
end

-- Write text unless its kind is over the limit (then it is counted).
local function first_line(text)
  return text:match("^[^\n]*"):sub(1, 200)
end

-- kind: what makes lines alike (the format string, or the first line)
local function limited(level, kind, text)
  if not rate then
    return emit(level, text)
  end
  local now = clock()
  if now >= next_check and next(pending) ~= nil then
    next_check = now + 1
    sweep(now)
  end
  local key = level .. "\0" .. kind
  local k = kinds[key]
  if k and now - k.start >= rate.interval then
    if pending[key] then
      pending[key] = nil
      summary(k)
    end
    k.start, k.n, k.suppressed, k.what = now, 0, 0, first_line(text)
  elseif not k then
    if nkinds >= MAX_KINDS then
      sweep(now, true)
      kinds, nkinds = {}, 0
    end
    k = { start = now, n = 0, suppressed = 0, level = level, what = first_line(text) }
    kinds[key] = k
    nkinds = nkinds + 1
  end
  k.n = k.n + 1
  if k.n > rate.burst then
    k.suppressed = k.suppressed + 1
    pending[key] = k
    return
  end
  emit(level, text)
end

--- Write the summaries of every line suppressed so far now (the `luasip`
-- command calls it at shutdown).
function M.flush()
  sweep(clock(), true)
end

--- Write one log line at a level (rate-limited by its first line).
-- @tparam string level `"error"`, `"warn"`, `"info"` or `"debug"`
-- @tparam string text the message (already formatted)
function M.write(level, text)
  local n = levels[level]
  if not n then
    error("unknown log level " .. tostring(level), 2)
  end
  if n > threshold then
    return
  end
  text = tostring(text)
  limited(level, first_line(text), text)
end

--- Is a level enabled? Lets a caller skip building an expensive message.
-- @tparam string level
-- @treturn boolean
function M.enabled(level)
  return (levels[level] or 99) <= threshold
end

local function at(level)
  return function(fmt, ...)
    if levels[level] > threshold then
      return
    end
    local text = select("#", ...) > 0 and format(fmt, ...) or tostring(fmt)
    limited(level, select("#", ...) > 0 and tostring(fmt) or first_line(text), text)
  end
end

--- `log.error(fmt, ...)`, `log.warn`, `log.info`, `log.debug`: format and write.
M.error = at("error")
M.warn = at("warn")
M.info = at("info")
M.debug = at("debug")

--- Change settings.
-- @tparam table opts `level` (default `"info"`), `format` (`"text"` or
--   `"json"`), `sink` (function(line); default: standard error), `rate`
--   (`{ burst = 10, interval = 10 }`: lines of one kind written per
--   interval of seconds; `false` turns the limit off, `true` restores the
--   defaults), `clock` (function() -> seconds; default `os.time`)
function M.configure(opts)
  if opts.level then
    threshold = levels[opts.level] or error("unknown log level " .. tostring(opts.level), 2)
  end
  if opts.format then
    if opts.format ~= "text" and opts.format ~= "json" then
      error("log format must be \"text\" or \"json\"", 2)
    end
    json = opts.format == "json"
  end
  if opts.sink then
    sink = opts.sink
  end
  if opts.clock then
    clock = opts.clock
  end
  if opts.rate ~= nil then
    M.flush()
    kinds, nkinds, pending, next_check = {}, 0, {}, 0
    if opts.rate == false then
      rate = false
    elseif opts.rate == true then
      rate = { burst = 10, interval = 10 }
    else
      local r = opts.rate
      if type(r) ~= "table" or type(r.burst or 10) ~= "number" or type(r.interval or 10) ~= "number" then
        error("log rate must be false, true or { burst = n, interval = seconds }", 2)
      end
      rate = { burst = r.burst or 10, interval = r.interval or 10 }
    end
  end
end

return M
