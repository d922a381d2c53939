--- SDP (RFC 8866) as Lua tables, and the RFC 3264 offer/answer model.
--
-- Parsing and writing are the C core's (csrc/sdp): `parse` checks the
-- grammar and the order of the lines, `serialize` writes a table back, byte
-- for byte for every line whose fields were not changed. This module adds
-- the policy: codec intersection, directions (hold and resume), rejected
-- streams and the o= version.
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
local lower, format = string.lower, string.format

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

-- RFC 3551 static payload types: encoding, clock rate, channels.
local static = {
  [0] = { "PCMU", 8000, 1 }, [3] = { "GSM", 8000, 1 }, [4] = { "G723", 8000, 1 },
  [5] = { "DVI4", 8000, 1 }, [6] = { "DVI4", 16000, 1 }, [7] = { "LPC", 8000, 1 },
  [8] = { "PCMA", 8000, 1 }, [9] = { "G722", 8000, 1 }, [10] = { "L16", 44100, 2 },
  [11] = { "L16", 44100, 1 }, [12] = { "QCELP", 8000, 1 }, [13] = { "CN", 8000, 1 },
  [14] = { "MPA", 90000, 1 }, [15] = { "G728", 8000, 1 }, [16] = { "DVI4", 11025, 1 },
  [17] = { "DVI4", 22050, 1 }, [18] = { "G729", 8000, 1 }, [25] = { "CelB", 90000 },
  [26] = { "JPEG", 90000 }, [28] = { "nv", 90000 }, [31] = { "H261", 90000 },
  [32] = { "MPV", 90000 }, [33] = { "MP2T", 90000 }, [34] = { "H263", 90000 },
}

-- Formats that carry no media of their own: a stream offering only these
-- and nothing else in common is rejected.
local secondary = { ["telephone-event"] = true, cn = true, red = true, rtx = true,
  ulpfec = true, flexfec = true, ["flexfec-03"] = true }

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
        local st = static[tonumber(pt)]
        if st then
          c.name, c.rate, c.channels = st[1], st[2], st[3]
        end
      end
      c.fmtp = fmtps[pt]
    end
    out[i] = c
  end
  return out
end

local function codec_key(c)
  if not c.name then
    return nil
  end
  return format("%s/%d/%d", lower(c.name), c.rate or 0, c.channels or 1)
end

-- What the answer for one stream lists: the offered formats the answerer
-- supports, with the offerer's payload type numbers (RFC 3264 §6.1).
local function intersect(om, lm, prefer_local)
  local ocs, lcs = M.codecs(om), M.codecs(lm)
  local rtp = is_rtp(om.proto)
  local pairs_, taken = {}, {}
  for oi, oc in ipairs(ocs) do
    for li, lc in ipairs(lcs) do
      if not taken[li] then
        local same
        if rtp then
          local k = codec_key(oc)
          same = k and k == codec_key(lc)
        else
          same = oc.pt == lc.pt
        end
        if same then
          taken[li] = true
          pairs_[#pairs_ + 1] = { o = oc, l = lc, oi = oi, li = li }
          break
        end
      end
    end
  end
  if prefer_local then
    table.sort(pairs_, function(a, b)
      return a.li < b.li
    end)
  end
  return pairs_
end

local pt_attrs = { rtpmap = true, fmtp = true, ["rtcp-fb"] = true }

local function answer_direction(offered, wanted)
  local o_send = offered == "sendrecv" or offered == "sendonly"
  local o_recv = offered == "sendrecv" or offered == "recvonly"
  local l_send = wanted == "sendrecv" or wanted == "sendonly"
  local l_recv = wanted == "sendrecv" or wanted == "recvonly"
  local send, recv = o_recv and l_send, o_send and l_recv
  if send and recv then
    return "sendrecv"
  elseif send then
    return "sendonly"
  elseif recv then
    return "recvonly"
  end
  return "inactive"
end
M.answer_direction = answer_direction

local function media_answer(om, lm, offer, caps, opts)
  local found = intersect(om, lm, opts.prefer == "local")
  local primary = false
  for _, p in ipairs(found) do
    if not (p.o.name and secondary[lower(p.o.name)]) then
      primary = true
    end
  end
  if not primary then
    return nil
  end
  local am = {
    media = om.media,
    port = lm.port,
    nports = lm.nports,
    proto = om.proto,
    fmts = {},
    connections = M.copy(lm.connections),
    bandwidths = M.copy(lm.bandwidths),
    attributes = {},
  }
  local rtp, attrs = is_rtp(om.proto), am.attributes
  local lpt_of = {} -- local payload type -> the offerer's
  for _, p in ipairs(found) do
    am.fmts[#am.fmts + 1] = p.o.pt
    lpt_of[p.l.pt] = p.o.pt
    if rtp then
      local map = p.l.rtpmap or p.o.rtpmap
      if map or (tonumber(p.o.pt) or 0) >= 96 then
        map = map or format("%s/%d%s", p.o.name, p.o.rate, p.o.channels and "/" .. p.o.channels or "")
        attrs[#attrs + 1] = { name = "rtpmap", value = p.o.pt .. " " .. map }
      end
      local fmtp = p.l.fmtp or p.o.fmtp
      if fmtp then
        attrs[#attrs + 1] = { name = "fmtp", value = p.o.pt .. " " .. fmtp }
      end
    end
  end
  for _, a in ipairs(lm.attributes or {}) do
    if a.name == "rtcp-fb" and a.value then
      local pt, rest = a.value:match("^(%S+)%s+(.*)$")
      local opt = pt == "*" and "*" or lpt_of[pt]
      if opt then
        attrs[#attrs + 1] = { name = "rtcp-fb", value = opt .. " " .. rest }
      end
    elseif not pt_attrs[a.name] and not (directions[a.name] and not a.value) then
      attrs[#attrs + 1] = { name = a.name, value = a.value }
    end
  end
  local wanted = opts.direction or M.direction(caps, lm)
  attrs[#attrs + 1] = { name = answer_direction(M.direction(offer, om), wanted) }
  return am
end

local function same_proto(a, b)
  return lower(a or "") == lower(b or "")
end

--- Answer an offer (RFC 3264 §6).
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
-- @tparam table offer the offer (a session table, or text)
-- @tparam table caps our capabilities: a session table (or text) whose
--   origin, connection and streams (ports, formats, attributes) we answer
--   with
-- @tparam[opt] table opts `direction` (what we want for every stream,
--   default each caps stream's), `prefer` ("offer" or "local"), `previous`
--   (the last description we sent in this session: the answer keeps its
--   origin, and its version is incremented only when the answer differs)
-- @return the answer table, or nil, err, name when offer or caps does not
--   parse
function M.answer(offer, caps, opts)
  opts = opts or {}
  local err, name
  if type(offer) == "string" then
    offer, err, name = M.parse(offer)
    if not offer then
      return nil, err, name
    end
  end
  if type(caps) == "string" then
    caps, err, name = M.parse(caps)
    if not caps then
      return nil, err, name
    end
  end
  local ans = {
    version = "0",
    origin = M.copy(caps.origin),
    name = caps.name or "-",
    connection = M.copy(caps.connection),
    times = { { start = "0", stop = "0" } },
    attributes = {},
    media = {},
    lf = caps.lf,
  }
  for _, a in ipairs(caps.attributes or {}) do
    if not (directions[a.name] and not a.value) then
      ans.attributes[#ans.attributes + 1] = { name = a.name, value = a.value }
    end
  end
  local used = {}
  for i, om in ipairs(offer.media or {}) do
    local am
    if om.port ~= 0 then
      for j, lm in ipairs(caps.media or {}) do
        if not used[j] and lm.port ~= 0 and lm.media == om.media and same_proto(lm.proto, om.proto) then
          am = media_answer(om, lm, offer, caps, opts)
          if am then
            used[j] = true
            break
          end
        end
      end
    end
    ans.media[i] = am or { media = om.media, port = 0, proto = om.proto, fmts = M.copy(om.fmts) }
  end
  if opts.previous then
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
