--- Logging: levels, text or JSON lines, to standard error.
--
--     local log = require "luasip.log"
--     log.configure{ level = "debug", format = "json" }
--     log.info("listening on %s", spec)
--
-- A line in text format: `2026-11-21T10:00:00Z error message`; in JSON
-- format: `{"ts":"...","level":"error","msg":"..."}`.
-- @module luasip.log
local M = {}

local levels = { error = 1, warn = 2, info = 3, debug = 4 }
local format, gsub, date = string.format, string.gsub, os.date
local stderr = io.stderr
local select, tostring = select, tostring

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

--- Write one log line at a level.
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
  if json then
    sink(format('{"ts":%s,"level":%s,"msg":%s}', json_string(timestamp()), json_string(level),
      json_string(text)))
  else
    sink(format("%s %s %s", timestamp(), level, text))
  end
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
    M.write(level, select("#", ...) > 0 and format(fmt, ...) or tostring(fmt))
  end
end

--- `log.error(fmt, ...)`, `log.warn`, `log.info`, `log.debug`: format and write.
M.error = at("error")
M.warn = at("warn")
M.info = at("info")
M.debug = at("debug")

--- Change settings.
-- @tparam table opts `level` (default `"info"`), `format` (`"text"` or
--   `"json"`), `sink` (function(line); default: standard error)
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
end

return M
