--- Routing scripts: loading, checking and their command-line options.
--
-- A script is a Lua file that returns a table (the contract is in the
-- README, "Scripts"):
--
--     return {
--       listen = { "udp:127.0.0.1:5060" },       -- default listeners
--       options = { location = { default = "memory", help = "..." } },
--       setup = function(ctx) end,               -- once per (re)load
--       request = function(req) req:reply(404) end,
--       -- or methods = { REGISTER = fn, ... }; response = fn(res);
--       -- failure = fn(req, err); stop = fn(ctx)
--     }
--
-- Each load runs the file in an environment of its own whose reads fall
-- through to the global table, so globals a script sets do not leak into
-- luasip or into the next load.
-- @module luasip.script
local M = {}

local type, pairs, ipairs, tostring, tonumber = type, pairs, ipairs, tostring, tonumber
local format, concat, sort = string.format, table.concat, table.sort

local known_fields = {
  listen = "string or table",
  server = "table",
  limits = "table",
  options = "table",
  setup = "function",
  request = "function",
  methods = "table",
  response = "function",
  failure = "function",
  stop = "function",
}

--- Options of the `luasip` command itself ("flag" or "value"); a script
-- option must not take one of these names.
M.command_options = {
  listen = "value",
  ["log-level"] = "value",
  ["log-format"] = "value",
  trace = "flag",
  watch = "flag",
  grace = "value",
  instructions = "value",
  memory = "value",
  ["handler-memory"] = "value",
  dns = "value",
  ["dns-timeout"] = "value",
  metrics = "value",
  ctl = "value",
  ["tls-cert"] = "value",
  ["tls-key"] = "value",
  ["tls-ca"] = "value",
  help = "flag",
}

local function sorted_keys(t)
  local out = {}
  for k in pairs(t) do
    out[#out + 1] = tostring(k)
  end
  sort(out)
  return out
end

local function check_option(name, o)
  if type(name) ~= "string" or not name:match("^[%a][%w-]*$") then
    return format("option name %q: letters, digits and '-' only", tostring(name))
  end
  if M.command_options[name] then
    return format("option --%s is one of luasip's own options", name)
  end
  if type(o) ~= "table" then
    return format("option --%s: a table { default =, help =, arg = } expected", name)
  end
  local d = o.default
  if d ~= nil and type(d) ~= "string" and type(d) ~= "number" and type(d) ~= "boolean" then
    return format("option --%s: default must be a string, number or boolean", name)
  end
  if o.multiple ~= nil and (type(o.multiple) ~= "boolean" or type(d) == "boolean") then
    return format("option --%s: multiple must be a boolean, for a string or number option", name)
  end
  if o.help ~= nil and type(o.help) ~= "string" then
    return format("option --%s: help must be a string", name)
  end
  return nil
end

--- Check a script's returned value against the contract.
-- @param spec what the file returned
-- @treturn[1] table spec
-- @return[2] nil
-- @treturn[2] string what is wrong
function M.validate(spec)
  if type(spec) ~= "table" then
    return nil, "the script must return a table (got " .. type(spec) .. "): see the README, Scripts"
  end
  for k, v in pairs(spec) do
    local want = known_fields[k]
    if not want then
      return nil, format("unknown field %q in the script's table (known: %s)", tostring(k),
        concat(sorted_keys(known_fields), ", "))
    end
    if not want:find(type(v), 1, true) then
      return nil, format("field %q must be a %s (got %s)", k, want, type(v))
    end
  end
  if not spec.request and not spec.methods then
    return nil, "the script defines no handler: give it a `request` function or a `methods` table"
  end
  for method, fn in pairs(spec.methods or {}) do
    if type(method) ~= "string" or not method:match("^[%w%.!%%*_+`'~-]+$") then
      return nil, format("methods: %q is not a method name", tostring(method))
    end
    if type(fn) ~= "function" then
      return nil, format("methods.%s must be a function (got %s)", method, type(fn))
    end
  end
  local listen = spec.listen
  if type(listen) == "table" then
    for i, l in ipairs(listen) do
      if type(l) ~= "string" then
        return nil, format("listen[%d] must be a string like \"udp:127.0.0.1:5060\"", i)
      end
    end
  end
  for name, o in pairs(spec.options or {}) do
    local err = check_option(name, o)
    if err then
      return nil, err
    end
  end
  return spec
end

--- Load a script file: compile it, run it in its own environment and
-- check what it returns.
-- @tparam string path
-- @treturn[1] table spec
-- @return[2] nil
-- @treturn[2] string why (compile error, runtime error with traceback,
--   contract violation), naming the file
function M.load(path)
  local env = setmetatable({}, { __index = _G })
  local chunk, err = loadfile(path, "t", env)
  if not chunk then
    return nil, err
  end
  local ok, spec = xpcall(chunk, debug.traceback)
  if not ok then
    return nil, path .. ": " .. tostring(spec)
  end
  local checked, verr = M.validate(spec)
  if not checked then
    return nil, path .. ": " .. verr
  end
  return checked
end

local function convert(name, o, value)
  local d = o.default
  if type(d) == "number" then
    local n = tonumber(value)
    if not n then
      return nil, format("option --%s expects a number (got %q)", name, value)
    end
    return n
  end
  return value
end

--- Split a command-line word `--name=value` or `--name`: name, and the
-- value when given inline (nil for a word that is not an option).
-- @tparam string word
-- @treturn string|nil name
-- @treturn string|nil inline value
function M.option_word(word)
  local name, value = word:match("^%-%-([^=]+)=(.*)$")
  return name or word:match("^%-%-(.+)$"), value
end

--- The value of option `name` at `words[i]`: the inline one, else the
-- next word. Returns the value and the index of the word after it, or
-- nil and a message.
-- @tparam table words
-- @tparam integer i
-- @tparam string name
-- @tparam string|nil inline
function M.option_value(words, i, name, inline)
  if inline then
    return inline, i + 1
  end
  local value = words[i + 1]
  if not value then
    return nil, format("option --%s needs a value", name)
  end
  return value, i + 2
end

--- Refuse a value given to a flag.
-- @treturn string|nil the message
function M.flag_value_error(name, inline, hint)
  if inline then
    return format("option --%s takes no value%s", name, hint or "")
  end
end

--- Parse a script's options from `--name value`, `--name=value`, and for
-- boolean options `--name` / `--no-name`. Options not given take their
-- defaults.
-- @tparam table spec a loaded script
-- @tparam table args the words left after luasip's own options
-- @treturn[1] table name -> value
-- @return[2] nil
-- @treturn[2] string the first unknown or malformed option, named
function M.parse_options(spec, args)
  local defs = spec.options or {}
  local out = {}
  local given = {}
  for name, o in pairs(defs) do
    out[name] = o.default
  end
  local i = 1
  while i <= #args do
    local word = args[i]
    local name, inline = M.option_word(word)
    if not name then
      return nil, format("unexpected argument %q", word)
    end
    local o = defs[name]
    local negated = not o and name:sub(1, 3) == "no-" and defs[name:sub(4)]
    if negated and type(negated.default) == "boolean" then
      local err = M.flag_value_error(name, inline)
      if err then
        return nil, err
      end
      out[name:sub(4)] = false
      i = i + 1
    elseif not o then
      return nil, format("unknown option --%s (see --help)", name)
    elseif type(o.default) == "boolean" then
      local err = M.flag_value_error(name, inline, format(" (use --no-%s to turn it off)", name))
      if err then
        return nil, err
      end
      out[name] = true
      i = i + 1
    else
      local value, next_i = M.option_value(args, i, name, inline)
      if not value then
        return nil, next_i
      end
      local v, err = convert(name, o, value)
      if v == nil then
        return nil, err
      end
      if o.multiple then -- repeatable: a list of the values given
        if not given[name] then
          out[name] = {}
        end
        out[name][#out[name] + 1] = v
      else
        out[name] = v
      end
      given[name] = true
      i = next_i
    end
  end
  for name, o in pairs(defs) do
    if o.multiple and not given[name] then
      out[name] = { o.default } -- {} without a default
    end
  end
  return out
end

--- The help text of a script's options, one option a line.
-- @tparam table spec
-- @treturn string
function M.options_help(spec)
  local defs = spec.options or {}
  local lines = {}
  for _, name in ipairs(sorted_keys(defs)) do
    local o = defs[name]
    local left
    if type(o.default) == "boolean" then
      left = "--" .. name .. ", --no-" .. name
    else
      left = "--" .. name .. " " .. (o.arg or (type(o.default) == "number" and "N" or "VALUE"))
      if o.multiple then
        left = left .. "..."
      end
    end
    local default = o.default ~= nil and format(" (default: %s)", tostring(o.default)) or ""
    lines[#lines + 1] = format("  %-28s %s%s", left, o.help or "", default)
  end
  if #lines == 0 then
    return "  (none)"
  end
  return concat(lines, "\n")
end

--- The handler for a method: `methods[method]`, else `request`; nil when
-- the script has neither for it.
-- @tparam table spec
-- @tparam string method
-- @treturn function|nil
function M.handler(spec, method)
  local methods = spec.methods
  return methods and methods[method] or spec.request
end

--- The `Allow` value for a script with per-method handlers only.
-- @tparam table spec
-- @treturn string
function M.allow(spec)
  local names = sorted_keys(spec.methods or {})
  return concat(names, ", ")
end

return M
