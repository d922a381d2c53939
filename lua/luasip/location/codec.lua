--- Compact binary encoding of location bindings (private to the backends).
--
-- A binding is a flat table of strings, numbers, booleans and arrays of
-- strings. It is stored as one string:
--
--     expires (double) | saved (double) | key (s2) | fields...
--
-- where each field is a name byte (an index into `NAMES`, or 0 followed by
-- the name as s1) and a type byte with its value: `s` string (s2), `S`
-- (s4), `i` 32-bit integer, `j` 64-bit integer, `d` double, `t`/`f`
-- booleans, `a` array of strings (count u2, then s2 each), `K` the Contact
-- equal to the key (nothing stored). `expires` and `saved` (when the
-- binding was stored, for the most-recent-first order) come first so a
-- backend can read them without decoding the rest.
-- @module luasip.location.codec
local core = require "luasip.core"

local pack, unpack = string.pack, string.unpack
local concat = table.concat
local type, pairs, math_type, error, tostring = type, pairs, math.type, error, tostring
local sort = table.sort

local M = {}

local NAMES = {
  "contact", "q", "call_id", "cseq", "path", "received", "instance", "reg_id",
  "socket", "user_agent", "updated", "params", "pub_gruu", "temp_gruu", "flags",
  "methods",
}
-- the name byte of each known field, ready to write
local PREFIX = {}
for i, n in ipairs(NAMES) do
  PREFIX[n] = string.char(i)
end

local HEADER = "<dds2" -- expires, saved, key

--- Check a binding as the interface asks (raises for a programmer mistake).
-- @tparam table b
-- @tparam integer lvl error level
function M.check(b, lvl)
  lvl = (lvl or 1) + 1
  if type(b) ~= "table" then
    error("binding must be a table, got " .. type(b), lvl)
  end
  if type(b.key) ~= "string" or b.key == "" then
    error("binding.key must be a non-empty string", lvl)
  end
  if type(b.contact) ~= "string" then
    error("binding.contact must be a string", lvl)
  end
  if type(b.expires) ~= "number" then
    error("binding.expires must be a number (seconds since the epoch)", lvl)
  end
  if b.q ~= nil and (type(b.q) ~= "number" or b.q < 0 or b.q > 1) then
    error("binding.q must be a number in 0..1", lvl)
  end
end

local function put(out, n, name, v)
  n = n + 1
  out[n] = PREFIX[name] or pack("Bs1", 0, name)
  local t = type(v)
  n = n + 1
  if t == "string" then
    if #v < 65536 then
      out[n] = pack("<c1s2", "s", v)
    else
      out[n] = pack("<c1s4", "S", v)
    end
  elseif t == "number" then
    if math_type(v) == "integer" then
      if v >= -2147483648 and v <= 2147483647 then
        out[n] = pack("<c1i4", "i", v)
      else
        out[n] = pack("<c1j", "j", v)
      end
    else
      out[n] = pack("<c1d", "d", v)
    end
  elseif t == "boolean" then
    out[n] = v and "t" or "f"
  elseif t == "table" then
    local m = #v
    out[n] = pack("<c1I2", "a", m)
    for i = 1, m do
      local s = v[i]
      if type(s) ~= "string" then
        error("binding." .. name .. " must be an array of strings", 4)
      end
      n = n + 1
      out[n] = pack("<s2", s)
    end
  else
    error("binding." .. name .. ": unsupported value type " .. t, 4)
  end
  return n
end

--- Encode a binding.
-- @tparam table b the binding (checked with `check`)
-- @tparam number saved when it is stored (seconds, float)
-- @treturn string
function M.encode(b, saved)
  local key = b.key
  local out = { pack(HEADER, b.expires, saved, key) }
  local n = 1
  for name, v in pairs(b) do
    if name ~= "key" and name ~= "expires" then
      if type(name) ~= "string" or #name > 255 then
        error("binding field names must be strings of at most 255 bytes, got " .. tostring(name), 3)
      end
      if name == "contact" and v == key then
        n = n + 1
        out[n] = "\1K"
      else
        n = put(out, n, name, v)
      end
    end
  end
  return concat(out, "", 1, n)
end

--- Decode a binding (in C: csrc/lua/registrar.c, which the registrar's
-- fast path shares).
-- @function decode
-- @tparam string s
-- @treturn table the binding (a new table); `saved` is not a field of it
-- @treturn number saved
M.decode = core.binding_decode

--- The expiry time and save time of an encoded binding, without decoding it.
-- @tparam string s
-- @treturn number expires
-- @treturn number saved
function M.times(s)
  local e, sv = unpack("<dd", s)
  return e, sv
end

--- The key of an encoded binding.
-- @tparam string s
-- @treturn string
function M.key(s)
  return (unpack("<s2", s, 17))
end

local function before(a, b)
  local qa, qb = a[1].q or 1, b[1].q or 1
  if qa ~= qb then
    return qa > qb
  end
  return a[2] > b[2]
end

--- Sort decoded bindings by q (descending) then most recently saved first.
-- @tparam table list array of `{binding, saved}` pairs
-- @treturn table array of bindings
function M.ordered(list)
  sort(list, before)
  local out = {}
  for i = 1, #list do
    out[i] = list[i][1]
  end
  return out
end

return M
