--- A redirect server's answer (RFC 3261 §8.3, §21.3): a 3xx listing where
-- to try instead.
--
--     local redirect = require "luasip.redirect"
--     local contacts = registrar.lookup(req.uri, { location = loc })
--     if contacts and #contacts > 0 then
--       return redirect.reply(req, contacts)   -- 302 Moved Temporarily
--     end
--     req:reply(404)
-- @module luasip.redirect
local registrar = require "luasip.registrar"

local type, tostring, ipairs, error = type, tostring, ipairs, error
local format, time = string.format, os.time

local M = {}

--- The 3xx codes `reply` sends: 300 Multiple Choices, 301 Moved
-- Permanently, 302 Moved Temporarily (default), 305 Use Proxy, 380
-- Alternative Service.
M.codes = { [300] = true, [301] = true, [302] = true, [305] = true, [380] = true }

local function value(c, now)
  if type(c) == "string" then
    if c:find("<", 1, true) then
      return c
    end
    return "<" .. c .. ">"
  end
  if type(c) ~= "table" or type(c.contact) ~= "string" then
    error("a contact must be a URI string or a binding with a contact field", 3)
  end
  if c.expires == nil then
    local q = c.q and c.q ~= 1 and format(";q=%g", c.q) or ""
    return "<" .. c.contact .. ">" .. q
  end
  return registrar.contact_value(c, now)
end

--- Answer `req` with a redirection listing `contacts`.
--
-- Each contact is a URI string (written as given, in `<>` unless it has
-- them) or a binding from `registrar.lookup` / a location store (written
-- with its q and the seconds left as `expires`; a table without
-- `expires` gets only q). Contacts are written in the given order (lookup
-- returns them by q). An empty list sends the 3xx without Contact.
-- @tparam Message req a received request
-- @tparam {string|table,...} contacts
-- @tparam[opt] integer code 300, 301, 302 (default), 305 or 380
-- @tparam[opt] table headers more header lines (`{ {name, value}, ... }`)
-- @return what `req:reply` returns
function M.reply(req, contacts, code, headers)
  code = code or 302
  if not M.codes[code] then
    error("redirect.reply: status " .. tostring(code) .. " is not 300, 301, 302, 305 or 380", 2)
  end
  if type(contacts) ~= "table" then
    error("redirect.reply: a list of contacts expected", 2)
  end
  local now = time()
  local h = {}
  for _, c in ipairs(contacts) do
    h[#h + 1] = { "Contact", value(c, now) }
  end
  for _, x in ipairs(headers or {}) do
    h[#h + 1] = x
  end
  return req:reply(code, nil, h)
end

return M
