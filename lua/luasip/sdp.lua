--- SDP (RFC 8866) as Lua tables, and the RFC 3264 offer/answer model.
--
-- Parsing and writing are the C core's (csrc/sdp): `parse` checks the
-- grammar and the order of the lines, `serialize` writes a table back, byte
-- for byte for every line whose fields were not changed. The offer/answer
-- negotiation (codec intersection, §6.1 directions, rejected streams) is
-- C too (csrc/sdp/answer.c: `answer_text`, and `answer` on top of it);
-- this module adds tables, hold and resume, and the o= version.
--
--     local sdp = require "luasip.sdp"
--     local offer, err = sdp.parse(req.body)
--     if not offer then return req:reply(488, err) end  -- or 400
--     local answer = sdp.answer(offer, my_caps)
--     req:reply(200, { body = sdp.serialize(answer), content_type = "application/sdp" })
--
-- A session table:
--
--     { version = "0",
--       origin = { username=, sess_id=, sess_version=, nettype=, addrtype=, address= },
--       name = "-", info =, uri =, emails = { ... }, phones = { ... },
--       connection = { nettype=, addrtype=, address= },
--       bandwidths = { { type = "AS", value = 64 } },
--       times = { { start = "0", stop = "0", repeats = { "7d 1h 0 25h" } } },
--       zone =, key =,
--       attributes = { { name = "group", value = "BUNDLE 0 1" }, { name = "recvonly" } },
--       media = { { media = "audio", port = 49170, nports =, proto = "RTP/AVP",
--                   fmts = { "0", "8", "101" }, info =, connections = { ... },
--                   bandwidths = { ... }, key =, attributes = { ... } } },
--       lf = true,            -- only when the lines end in LF instead of CRLF
--       no_final_eol = true } -- only when the last line has no line ending
--
-- sess_id, sess_version and the t= times are strings (they may not fit an
-- integer); port, nports and bandwidth values are integers. An item may hold
-- `_raw`, the text it was parsed from when that text was not in canonical
-- form (extra spaces, leading zeros); `serialize` writes it back while the
-- item's fields still say the same.
-- @module luasip.sdp
local core = require "luasip.core"

local type, ipairs, pairs, tostring, tonumber = type, ipairs, pairs, tostring, tonumber
local lower = string.lower

local M = {}

--- Parse a session description.
-- @tparam string text the body
-- @return the session table, or `nil, "SDP: line N: why", "SDP"` (a UA
-- answers such an offer with 488 or 400)
function M.parse(text)
  if type(text) ~= "string" then
    error("sdp.parse: text must be a string", 2)
  end
  return core.sdp_parse(text)
end

--- Write a session table as text.
-- @tparam table s the session
-- @return the text, or `nil, "SDP: ...", "INVAL"` when a field is missing or
-- would not parse back (a CR or LF in a value, a space in a token, ...)
function M.serialize(s)
  if type(s) ~= "table" then
    error("sdp.serialize: session must be a table", 2)
  end
  return core.sdp_write(s)
end

--- A deep copy of a session (or of any part of one).
function M.copy(t)
  if type(t) ~= "table" then
    return t
  end
  local c = {}
  for k, v in pairs(t) do
    c[k] = M.copy(v)
  end
  return c
end

--- The value of the first attribute `name` of a session or media table:
-- its value, `true` for a property attribute, nil when absent.
function M.attr(t, name)
  for _, a in ipairs(t.attributes or {}) do
    if a.name == name then
      return a.value or true
    end
  end
  return nil
end

--- The values of every attribute `name` (a list, maybe empty).
function M.attrs(t, name)
  local out = {}
  for _, a in ipairs(t.attributes or {}) do
    if a.name == name then
      out[#out + 1] = a.value or true
    end
  end
  return out
end

local directions = { sendrecv = true, sendonly = true, recvonly = true, inactive = true }

--- The direction of stream `m` of session `s` (RFC 3264 §5.1): its own
-- direction attribute, else the session's, else "sendrecv".
function M.direction(s, m)
  for _, t in ipairs { m, s } do
    for _, a in ipairs(t.attributes or {}) do
      if directions[a.name] and not a.value then
        return a.name
      end
    end
  end
  return "sendrecv"
end

--- Set the direction attribute of media table `m` (replacing any it has, in
-- place of the first one).
function M.set_direction(m, dir)
  if not directions[dir] then
    error("sdp.set_direction: not a direction: " .. tostring(dir), 2)
  end
  local attrs, out, placed = m.attributes or {}, {}, false
  for _, a in ipairs(attrs) do
    if directions[a.name] and not a.value then
      if not placed then
        out[#out + 1] = { name = dir }
        placed = true
      end
    else
      out[#out + 1] = a
    end
  end
  if not placed then
    out[#out + 1] = { name = dir }
  end
  m.attributes = out
end

local function is_rtp(proto)
  return lower(proto or ""):find("rtp/", 1, true) ~= nil
end

--- The formats of media table `m`, in order: a list of
-- `{ pt=, name=, rate=, channels=, rtpmap=, fmtp= }`. For RTP, name/rate/
-- channels come from a=rtpmap (`rtpmap` is its text after the payload type)
-- or from the static table of RFC 3551; `fmtp` is the a=fmtp text after the
-- payload type. For other protocols only `pt` (the format) is set.
function M.codecs(m)
  local maps, fmtps = {}, {}
  for _, a in ipairs(m.attributes or {}) do
    if a.value and (a.name == "rtpmap" or a.name == "fmtp") then
      local pt, rest = a.value:match("^(%S+)%s+(.*)$")
      if pt then
        local t = a.name == "rtpmap" and maps or fmtps
        if not t[pt] then
          t[pt] = rest
        end
      end
    end
  end
  local out, rtp = {}, is_rtp(m.proto)
  for i, pt in ipairs(m.fmts or {}) do
    local c = { pt = pt }
    if rtp then
      local map = maps[pt]
      if map then
        local name, rate, ch = map:match("^([^/]+)/(%d+)/?(%d*)")
        c.name, c.rate, c.channels = name, tonumber(rate), tonumber(ch)
        c.rtpmap = map
      else
        local n = tonumber(pt)
        if n and n >= 0 and n <= 1000 and n == n // 1 then
          c.name, c.rate, c.channels = core.sdp_static(n // 1)
        end
      end
      c.fmtp = fmtps[pt]
    end
    out[i] = c
  end
  return out
end

-- offer, caps as text (a table is serialized)
local function text_of(x)
  if type(x) == "table" then
    return M.serialize(x)
  end
  return x
end

--- Answer an offer (RFC 3264 §6), as text: the negotiation is the C
-- core's (csrc/sdp/answer.c, `sip_sdp_answer`), which parses both
-- descriptions and writes the answer without making Lua tables.
--
-- Each offered stream is answered, in order, from the first unused stream
-- of `caps` with the same media and transport protocol: the answer lists the
-- offered formats that `caps` also has (RTP: static payload types by number
-- and the RFC 3551 table, dynamic ones by encoding name, clock rate and
-- channels), under the offerer's payload type numbers, in the offer's order
-- (`opts.prefer = "local"`: in caps' order), with caps' rtpmap and fmtp
-- (the offer's when caps has none), caps' rtcp-fb for those formats and
-- caps' other media attributes. The direction follows §6.1: the answer
-- sends only if the offer receives and we want to send, and receives only
-- if the offer sends and we want to receive. A stream with port 0, without
-- a matching caps stream, or with no format in common (telephone-event, CN,
-- red, rtx and FEC alone do not count) is rejected: port 0, the offered
-- formats, no attributes.
--
-- @tparam string offer the offer (text, or a session table)
-- @tparam string caps our capabilities (text, or a session table) whose
--   origin, connection and streams (ports, formats, attributes) we answer
--   with
-- @tparam[opt] table opts `direction` (what we want for every stream:
--   sendrecv, sendonly, recvonly or inactive; default each caps stream's),
--   `prefer` ("offer" or "local")
-- @return the answer text and the number of streams not rejected (0: no
--   codec in common, a UA answers 488), or nil, err, name when offer or
--   caps does not parse
function M.answer_text(offer, caps, opts)
  local err, name
  offer, err, name = text_of(offer)
  if not offer then
    return nil, err, name
  end
  caps, err, name = text_of(caps)
  if not caps then
    return nil, err, name
  end
  if type(offer) ~= "string" or type(caps) ~= "string" then
    error("sdp.answer: offer and caps must be text or session tables", 3)
  end
  if opts then
    return core.sdp_answer(offer, caps, opts.direction, opts.prefer == "local")
  end
  return core.sdp_answer(offer, caps)
end

--- Answer an offer (RFC 3264 §6), as a session table: `answer_text`'s
-- answer, parsed.
-- @tparam table offer the offer (a session table, or text)
-- @tparam table caps our capabilities (a session table, or text)
-- @tparam[opt] table opts as `answer_text`'s, and `previous` (the last
--   description we sent in this session: the answer keeps its origin, and
--   its version is incremented only when the answer differs)
-- @return the answer table, or nil, err, name when offer or caps does not
--   parse
function M.answer(offer, caps, opts)
  local text, err, name = M.answer_text(offer, caps, opts)
  if not text then
    return nil, err, name
  end
  local ans = assert(M.parse(text))
  if opts and opts.previous then
    M.next_version(opts.previous, ans)
  end
  return ans
end

-- "41" -> "42", for digit strings of any length.
local function incr(v)
  local s = tostring(v)
  local digits, i = { s:byte(1, -1) }, #s
  while i >= 1 do
    if digits[i] == 57 then -- "9"
      digits[i] = 48
      i = i - 1
    else
      digits[i] = digits[i] + 1
      return string.char(table.unpack(digits))
    end
  end
  return "1" .. string.char(table.unpack(digits))
end
M.increment = incr

--- The o= of `new`, the next description sent in a session after
-- `previous` (RFC 3264 §8): `previous`' origin, with sess_version + 1 when
-- anything else in `new` differs from `previous`, unchanged otherwise.
-- @return new (changed in place)
function M.next_version(previous, new)
  local o = M.copy(previous.origin)
  o._raw = nil
  new.origin = o
  local p = M.copy(previous)
  p.origin = o
  local a = M.serialize(p)
  local b = M.serialize(new)
  if a ~= b then
    o.sess_version = incr(previous.origin.sess_version)
  end
  return new
end

local function redirect(s, map)
  local c = M.copy(s)
  for _, m in ipairs(c.media or {}) do
    if m.port ~= 0 then
      local d = M.direction(s, m)
      M.set_direction(m, map[d] or d)
    end
  end
  -- the streams now say it themselves
  local keep = {}
  for _, a in ipairs(c.attributes or {}) do
    if not (directions[a.name] and not a.value) then
      keep[#keep + 1] = a
    end
  end
  c.attributes = keep
  return M.next_version(s, c)
end

--- Put a call on hold (RFC 3264 §8.4, RFC 6337 §5.3): a copy of `s` (the
-- last description we sent) where every active stream that was sendrecv is
-- sendonly and every recvonly one inactive, with the o= version
-- incremented when that changed anything.
function M.hold(s)
  return redirect(s, { sendrecv = "sendonly", recvonly = "inactive" })
end

--- Take a call off hold: the reverse of `hold` (sendonly -> sendrecv,
-- inactive -> recvonly), version incremented when that changed anything.
function M.resume(s)
  return redirect(s, { sendonly = "sendrecv", inactive = "recvonly" })
end

--- Whether stream `m` is rejected or disabled (port 0).
function M.rejected(m)
  return m.port == 0
end

--- What an answer settled for each stream of an offer: a list with, per
-- m= line, nil for a rejected stream, else `{ codecs = M.codecs(answer
-- stream), direction = answer's direction }`.
function M.negotiated(answer)
  local out = {}
  for i, m in ipairs(answer.media or {}) do
    if m.port ~= 0 then
      out[i] = { codecs = M.codecs(m), direction = M.direction(answer, m) }
    end
  end
  out.n = #(answer.media or {})
  return out
end

return M
