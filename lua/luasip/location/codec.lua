--- Compact binary encoding of location bindings (private to the backends).
--
-- A binding is a flat table of strings, numbers, booleans and arrays of
-- strings. It is stored as one string:
--
--     expires (double) | saved (double) | key (s2) | fields...
--
-- where each field is a name byte (a code of `SIP_BINDING_FIELDS` in
-- `csrc/registrar/sip_binding.h`, or 0 followed by
-- the name as s1) and a type byte with its value: `s` string (s2), `S`
-- (s4), `i` 32-bit integer, `j` 64-bit integer, `d` double, `t`/`f`
-- booleans, `a` array of strings (count u2, then s2 each), `K` the Contact
-- equal to the key (nothing stored). `expires` and `saved` (when the
-- binding was stored, for the most-recent-first order) come first so a
-- backend can read them without decoding the rest.
-- @module luasip.location.codec
local core = require "luasip.core"

local type, error = type, error
local sort = table.sort

local M = {}

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

--- Encode a binding (in C: `csrc/registrar/binding.c`, the one copy of
-- the format, through `csrc/lua/registrar.c`).
-- @function encode
-- @tparam table b the binding (checked with `check`)
-- @tparam number saved when it is stored (seconds, float)
-- @treturn string
M.encode = core.binding_encode

--- Decode a binding.
-- @function decode
-- @tparam string s
-- @treturn table the binding (a new table); `saved` is not a field of it
-- @treturn number saved
M.decode = core.binding_decode

--- The expiry time and save time of an encoded binding, without decoding it.
-- @function times
-- @tparam string s
-- @treturn number expires
-- @treturn number saved
M.times = core.binding_times

--- The key of an encoded binding.
-- @function key
-- @tparam string s
-- @treturn string
M.key = core.binding_key

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
