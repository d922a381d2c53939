-- registrar.save: the C fast path (memory store, common REGISTER) against
-- the general Lua path (`fast = false`), differentially over real UDP
-- sockets on 127.0.0.1.
--
-- Two registrars run in this process, each on its own memory store (two
-- `luasip.location.memory` stores that share nothing): "fast" calls
-- `registrar.save(req, opts)`, "general" the same with `fast = false`. A
-- seeded generator (an LCG: the same sequence on every run) writes a few
-- hundred REGISTERs over a handful of AORs; one client socket sends the
-- identical bytes to both, one after the other, and after each request
-- the two answers (status, reason, Contacts, Min-Expires, Require, Path,
-- Unsupported, Retry-After, Date) and the two stores (every field of every
-- binding of the AOR, the temp-GRUU records, the binding counts) must
-- agree. Only `expires` / `updated` may differ by one second (the requests
-- are not sent in the same instant), the server's local port in `socket`,
-- and the random part of temp GRUUs.
--
-- `registrar.stats()` ({ fast = N, general = N }, read before and after
-- every save) then shows that the fast path handled a real share of the
-- "fast" registrar's requests, and that `fast = false` always took the
-- general path.
local here = debug.getinfo(1, "S").source:gsub("^@", ""):match("^(.*)/[^/]*$") or "."
local N = dofile(here .. "/support/net.lua")
local registrar = require "luasip.registrar"
local memory = require "luasip.location.memory"

local V4 = N.V4
local concat, sort = table.concat, table.sort
local format = string.format
local math_type, abs = math.type, math.abs

-- Share of the "fast" registrar's saves the fast path must have handled.
local FAST_SHARE = 0.4

------------------------------------------------------------------------------
-- Helpers
------------------------------------------------------------------------------

local run = N.run_task

-- A 64-bit LCG (Knuth's MMIX constants; Lua integers wrap): rnd(n) is
-- 1..n, rnd:chance(p) is true p percent of the time.
local function lcg(seed)
  local s = seed
  local r = {}
  local function rnd(n)
    s = s * 6364136223846793005 + 1442695040888963407
    return ((s >> 33) % n) + 1
  end
  r.int = rnd
  function r.chance(p)
    return rnd(100) <= p
  end
  function r.pick(list)
    return list[rnd(#list)]
  end
  return r
end

-- Split a header value on commas outside quotes and angle brackets.
local function split_commas(v)
  local out, cur, inq, ina = {}, {}, false, false
  local i, n = 1, #v
  while i <= n do
    local c = v:sub(i, i)
    if inq then
      if c == "\\" then
        cur[#cur + 1] = v:sub(i, i + 1)
        i = i + 1
      else
        if c == '"' then
          inq = false
        end
        cur[#cur + 1] = c
      end
    elseif c == '"' then
      inq = true
      cur[#cur + 1] = c
    elseif c == "<" then
      ina = true
      cur[#cur + 1] = c
    elseif c == ">" then
      ina = false
      cur[#cur + 1] = c
    elseif c == "," and not ina then
      out[#out + 1] = concat(cur):match("^%s*(.-)%s*$")
      cur = {}
    else
      cur[#cur + 1] = c
    end
    i = i + 1
  end
  out[#out + 1] = concat(cur):match("^%s*(.-)%s*$")
  return out
end

-- A string with the parts that may differ between the two servers masked
-- (anything else as it is).
local function masking(pattern, mask)
  return function(s)
    if type(s) ~= "string" then
      return s
    end
    return (s:gsub(pattern, mask))
  end
end
local norm_tgruu = masking("tgruu%.[%w]+%.", "tgruu.*.") -- the random part
local norm_socket = masking(":%d+$", ":*") -- the server's port

-- A value for failure messages (numbers show their Lua subtype).
local function show(v)
  if type(v) == "string" then
    return format("%q", v)
  elseif type(v) == "number" then
    return tostring(v) .. "(" .. math_type(v) .. ")"
  elseif type(v) == "table" then
    local keys = {}
    for k in pairs(v) do
      keys[#keys + 1] = k
    end
    sort(keys, function(a, b)
      return tostring(a) < tostring(b)
    end)
    local t = {}
    for _, k in ipairs(keys) do
      t[#t + 1] = tostring(k) .. "=" .. show(v[k])
    end
    return "{" .. concat(t, ", ") .. "}"
  end
  return tostring(v)
end

-- Exact equality, numbers of the same subtype, tables deeply.
local function same(x, y)
  if type(x) ~= type(y) then
    return false
  end
  if type(x) == "number" then
    return x == y and math_type(x) == math_type(y)
  end
  if type(x) ~= "table" then
    return x == y
  end
  for k, v in pairs(x) do
    if not same(v, y[k]) then
      return false
    end
  end
  for k in pairs(y) do
    if x[k] == nil then
      return false
    end
  end
  return true
end

-- Why two bindings differ (nil when they agree).
local function binding_diff(a, b)
  local names = {}
  for k in pairs(a) do
    names[k] = true
  end
  for k in pairs(b) do
    names[k] = true
  end
  for k in pairs(names) do
    local x, y = a[k], b[k]
    local ok
    if k == "expires" or k == "updated" then
      ok = type(x) == "number" and type(y) == "number" and abs(x - y) <= 1
    elseif k == "socket" then
      ok = same(norm_socket(x), norm_socket(y))
    elseif k == "temp_gruu" then
      ok = same(norm_tgruu(x), norm_tgruu(y))
    elseif k == "tgruu_base" then -- random, made per registration
      ok = type(x) == type(y)
    else
      ok = same(x, y)
    end
    if not ok then
      return format("field %s: fast %s, general %s", tostring(k), show(x), show(y))
    end
  end
  return nil
end

local function by_key(list)
  local t = {}
  for i, b in ipairs(list) do
    t[i] = b
  end
  sort(t, function(x, y)
    return x.key < y.key
  end)
  return t
end

-- Why two lookups differ (nil when they agree).
local function bindings_diff(la, lb)
  la, lb = by_key(la), by_key(lb)
  if #la ~= #lb then
    return format("%d bindings in the fast store, %d in the general one", #la, #lb)
  end
  for i = 1, #la do
    local d = binding_diff(la[i], lb[i])
    if d then
      return format("binding %s: %s", la[i].key, d)
    end
  end
  return nil
end

-- What is compared of an answer: status, reason, Contacts as a sorted
-- multiset (expires= and the temp GRUU's random part apart), the other
-- headers as lists.
local function answer_view(r)
  local contacts = {}
  for _, v in ipairs(r:all("Contact")) do
    for _, item in ipairs(split_commas(v)) do
      local e = tonumber(item:match(";%s*expires=(%d+)"))
      contacts[#contacts + 1] = { s = norm_tgruu((item:gsub(";%s*expires=%d+", ";expires=#"))), e = e }
    end
  end
  sort(contacts, function(x, y)
    if x.s ~= y.s then
      return x.s < y.s
    end
    return (x.e or -1) < (y.e or -1)
  end)
  local function list(name)
    return concat(r:all(name), "\n")
  end
  return {
    status = r.status, reason = r.reason, contacts = contacts,
    ["Min-Expires"] = list("Min-Expires"), Require = list("Require"), Path = list("Path"),
    Unsupported = list("Unsupported"), ["Retry-After"] = list("Retry-After"),
    Date = r:get("Date") ~= nil,
  }
end

-- Why two answers differ (nil when they agree).
local function answer_diff(ra, rb)
  local a, b = answer_view(ra), answer_view(rb)
  for _, k in ipairs { "status", "reason", "Min-Expires", "Require", "Path", "Unsupported",
    "Retry-After", "Date" } do
    if a[k] ~= b[k] then
      return format("%s: fast %s, general %s", k, show(a[k]), show(b[k]))
    end
  end
  if #a.contacts ~= #b.contacts then
    return format("%d Contacts from fast, %d from general", #a.contacts, #b.contacts)
  end
  for i, ca in ipairs(a.contacts) do
    local cb = b.contacts[i]
    if ca.s ~= cb.s or (ca.e == nil) ~= (cb.e == nil) or (ca.e and abs(ca.e - cb.e) > 1) then
      return format("Contact %d: fast %q (expires %s), general %q (expires %s)", i, ca.s,
        tostring(ca.e), cb.s, tostring(cb.e))
    end
  end
  return nil
end

------------------------------------------------------------------------------
-- The generator
------------------------------------------------------------------------------

-- AORs: the To header forms of each (escapes, case, ports, parameters,
-- display names), the Request-URIs its UA uses, how often it is drawn
-- (weight: plain AORs more, so that the fast path sees enough). Each entry is one UA (one
-- current Call-ID): most of its To forms name one AOR, a few another one
-- (sip:h%3Cf%20g@example.com), so a Call-ID spans two AORs. other.example
-- is not served in the group with `domains`. Only the UAs marked
-- `outbound` register an instance (the fast path leaves an AOR with an
-- instance binding to the general path).
local AORS = {
  { to = { "<sip:alice@example.com>", '"Alice" <sip:alice@EXAMPLE.COM>',
      "<sip:%61lice@example.com:5060;user=phone>;x=y", "sip:alice@Example.com" },
    ruri = { "sip:example.com", "sip:EXAMPLE.COM", "sip:example.com:5060" }, weight = 4 },
  { to = { "<sip:bob@reg.test>", "<sip:bob@REG.TEST;transport=udp>", "Bob <sip:b%6Fb@Reg.Test:5070>" },
    ruri = { "sip:reg.test", "sip:Reg.Test", "sip:REG.TEST:5060;transport=udp" }, weight = 4 },
  { to = { "<sips:carol@example.com>", "<SIPS:carol@Example.Com>" },
    ruri = { "sips:example.com", "sip:example.com" }, outbound = true },
  { to = { "<sip:d;x@example.com>", "<sip:d%3bx@example.com>", "<sip:d%3Bx@EXAMPLE.com>" },
    ruri = { "sip:example.com" }, weight = 2 },
  { to = { "<sip:+15551234@reg.test;user=phone>", "<sip:+1555%31234@reg.test>" },
    ruri = { "sip:reg.test", "sip:Reg.Test" }, weight = 2 },
  { to = { "<sip:f%20g@example.com>", '"F G" <sip:f%20g@Example.com>', "<sip:f%20%67@example.com;lr>",
      "<sip:h%3cf%20g@example.com>" },
    ruri = { "sip:example.com" }, weight = 2 },
  { to = { "<sip:h%3ci@reg.test>", "<sip:h%3Ci@reg.test>", "<sip:%68%3ci@REG.test:5090>" },
    ruri = { "sip:reg.test" }, outbound = true },
  { to = { "<sip:eve@other.example>", "Eve <sip:Eve@Other.Example>" },
    ruri = { "sip:other.example", "sip:example.com" } },
}
-- AOR indexes, each as many times as its weight (default 1)
local AOR_DRAW = {}
for i, a in ipairs(AORS) do
  for _ = 1, a.weight or 1 do
    AOR_DRAW[#AOR_DRAW + 1] = i
  end
end
local ALL_RURIS = { "sip:example.com", "sip:Reg.Test", "sip:other.example", "sips:example.com",
  "sip:alice@example.com", "sip:EXAMPLE.COM:5060" }

-- Contact URIs of an AOR's UAs (%d: the AOR's index): escaped and
-- unescaped users (some pairs equal under §19.1.4), `;` and `?` in the
-- user, upper-case scheme and host, ports, URI parameters and headers.
local CORE_URIS = {
  "sip:u%d@192.0.2.%d",
  "sip:u%d@192.0.2.%d:5062",
  "SIP:U%d@Host%d.Example:5070;transport=TCP",
}
local MORE_URIS = {
  "sip:U%d@host%d.example:5070;transport=tcp",
  "sip:%%41lice%d@host%d.example;transport=tcp",
  "sip:Alice%d@HOST%d.example;transport=TCP",
  "sip:a%%2ab%d@192.0.2.%d;maddr=192.0.2.200;ttl=5",
  "sip:a*b%d@192.0.2.%d;ttl=5;maddr=192.0.2.200",
  "sip:sp%%20ace%d@192.0.2.%d",
  "sip:lt%%3cgt%d@192.0.2.%d",
  "sip:lt%%3Cgt%d@192.0.2.%d",
  "sip:lt%%3c%%67t%d@192.0.2.%d",
  "sip:x;y%d@192.0.2.%d",
  "sip:q?r%d@192.0.2.%d",
  "sip:+1555%d@gw%d.example;user=phone;method=INVITE",
  "sip:bob%d@192.0.2.%d;lr;foo=bar",
  "sip:bob%d@192.0.2.%d?x=y",
  "sip:bob%d@192.0.2.%d;transport=udp?subject=a%%20b&x=y",
  "sips:u%d@secure%d.example:5061",
  "sip:u%d@[2001:db8::%d]:5060",
}

local function uri_for(template, i)
  return format(template, i, i)
end

local DISPLAYS = { '"Desk %d"', "Office", '"A \\"quoted\\" name"', "Mobile" }
local QS = { "0", "0.5", "1", "1.0", "0.123", "0.5", "0.8", "1", "0", "0.25" }
local BAD_QS = { "1.5", "abc" }
local EXPIRES = { "0", "30", "3600", "99999", "600", "7200", "60", "1800", "3600", "120", "900", "300" }
local CUSTOM = { ";foo", ';bar="a;b"', " ; spaced = x", ";Foo=Bar", ";+sip.audio", ';methods="INVITE,BYE"' }
local HEADER_EXPIRES = { "3600", "0", "30", "abc", "99999", "4294967296", "600", " 900", "120" }
local UAS = { "luasip-diff/1.0", "Phone (model X) 2.1", "  padded ua  " }

local function sep(rnd)
  return rnd.pick { ";", ";", ";", " ; ", "; " }
end

-- One Contact value with its header parameters.
local function contact_value(rnd, uri, i, p)
  p = p or {}
  local v
  local form = rnd.int(10)
  -- a bare URI with `;` or `?` in its user part is not a Contact: rarely
  if form <= 6 or p.bracket or (uri:find("^[^@]*[;?]") and rnd.chance(80)) then
    v = "<" .. uri .. ">"
  elseif form <= 8 then
    v = format(rnd.pick(DISPLAYS), i) .. " <" .. uri .. ">"
  else
    v = uri
  end
  local params = {}
  if p.instance then
    params[#params + 1] = sep(rnd) .. p.instance
  end
  if p.reg_id then
    params[#params + 1] = sep(rnd) .. "reg-id=" .. p.reg_id
  end
  if rnd.chance(35) then
    params[#params + 1] = sep(rnd) .. "q=" .. (rnd.chance(6) and rnd.pick(BAD_QS) or rnd.pick(QS))
  end
  if p.expires then
    params[#params + 1] = sep(rnd) .. "expires=" .. p.expires
  elseif rnd.chance(40) then
    -- beyond 2^32-1: the C layer answers 400 (the registrar never runs)
    params[#params + 1] = sep(rnd) .. "expires=" .. (rnd.chance(4) and "4294967296" or rnd.pick(EXPIRES))
  end
  if rnd.chance(20) then
    params[#params + 1] = rnd.pick(CUSTOM)
  end
  -- shuffle the parameters
  for k = #params, 2, -1 do
    local j = rnd.int(k)
    params[k], params[j] = params[j], params[k]
  end
  return v .. concat(params) .. (rnd.chance(10) and "  " or "")
end

-- Contact header lines for a list of values: one per line, one comma
-- list, or a mix.
local function contact_lines(rnd, values)
  if #values == 0 then
    return {}
  end
  local how = rnd.int(3)
  if how == 1 or #values == 1 then
    local t = {}
    for k, v in ipairs(values) do
      t[k] = "Contact: " .. v
    end
    return t
  elseif how == 2 then
    return { "Contact: " .. concat(values, rnd.pick { ",", ", ", " ,  " }) }
  end
  return { "Contact: " .. values[1], "Contact: " .. concat(values, ", ", 2) }
end

-- A generated request: `headers` (lines after CSeq), ruri, to, aor_uri
-- (the To URI, for the lookups), call_id, cseq, second_via.
local function generate(rnd, state, step, tag)
  local ai = rnd.pick(AOR_DRAW)
  local a = AORS[ai]
  local st = state[ai]
  local req = { headers = {} }
  local h = req.headers
  req.to = rnd.pick(a.to)
  req.aor_uri = req.to:match("<([^>]*)>") or req.to
  req.ruri = rnd.chance(88) and rnd.pick(a.ruri) or rnd.pick(ALL_RURIS)
  req.from = (req.to:match("<[^>]*>") or ("<" .. req.to .. ">")) .. ";tag=" .. tag .. "f" .. step

  -- Call-ID and CSeq: mostly the UA's current registration with CSeq + 1,
  -- sometimes the same or a lower CSeq, sometimes a new Call-ID.
  local roll = rnd.int(100)
  if not st.call_id or roll <= 14 then
    st.n = (st.n or 0) + 1
    st.call_id = format("%s-%d-%d@client.example", tag, ai, st.n)
    st.cseq = rnd.int(200)
  elseif roll <= 19 then -- the same CSeq again
    st.cseq = st.cseq
  elseif roll <= 23 then
    st.cseq = st.cseq > 1 and st.cseq - rnd.int(st.cseq - 1) or 1
  else
    st.cseq = st.cseq + 1
  end
  req.call_id, req.cseq = st.call_id, st.cseq

  local supported = {}
  local values = {}
  local kind = rnd.int(100)
  if kind <= 5 then
    -- a query: no Contact
    if rnd.chance(30) then
      h[#h + 1] = "Expires: " .. rnd.pick(HEADER_EXPIRES)
    end
  elseif kind <= 10 then
    -- Contact: *, with Expires: 0 (mostly)
    local r2 = rnd.int(8)
    if r2 <= 6 then
      h[#h + 1] = "Contact: *"
      h[#h + 1] = "Expires: 0"
    elseif r2 == 7 then
      h[#h + 1] = "Contact: *"
      h[#h + 1] = "Expires: 3600"
    else
      h[#h + 1] = "Contact: *, <" .. uri_for(CORE_URIS[1], ai) .. ">"
      h[#h + 1] = "Expires: 0"
    end
  elseif kind <= 22 then
    -- unregister one or two of the UA's contacts
    local n = rnd.int(2)
    local by_header = rnd.chance(40)
    for _ = 1, n do
      local uri = uri_for(rnd.chance(60) and rnd.pick(CORE_URIS) or rnd.pick(MORE_URIS), ai)
      values[#values + 1] = contact_value(rnd, uri, ai, { expires = not by_header and "0" or nil })
    end
    for _, l in ipairs(contact_lines(rnd, values)) do
      h[#h + 1] = l
    end
    if by_header then
      h[#h + 1] = "Expires: 0"
    end
  else
    -- register or refresh one to three contacts
    local c = rnd.int(100)
    local n = c <= 62 and 1 or c <= 90 and 2 or 3
    local p1 = {}
    if a.outbound and rnd.chance(30) then
      -- RFC 5626 / 5627: an instance, maybe a reg-id, maybe through an edge proxy
      p1.instance = format('+sip.instance="<urn:uuid:00000000-0000-1000-8000-%012d>"', ai * 10 + rnd.int(2))
      p1.bracket = true
      if rnd.chance(60) then
        p1.reg_id = tostring(rnd.int(2))
      end
      if rnd.chance(60) then
        supported[#supported + 1] = "outbound"
      end
      if rnd.chance(40) then
        supported[#supported + 1] = "gruu"
      end
      if rnd.chance(30) then
        req.second_via = true
        if rnd.chance(50) then
          h[#h + 1] = "Path: <sip:edge.example.net;lr;ob>"
        end
      end
    end
    for k = 1, n do
      local uri = uri_for(rnd.chance(90) and rnd.pick(CORE_URIS) or rnd.pick(MORE_URIS), ai)
      values[#values + 1] = contact_value(rnd, uri, ai, k == 1 and p1 or nil)
    end
    for _, l in ipairs(contact_lines(rnd, values)) do
      h[#h + 1] = l
    end
    if rnd.chance(25) then
      h[#h + 1] = "Expires: " .. rnd.pick(HEADER_EXPIRES)
    end
  end

  if rnd.chance(6) then
    h[#h + 1] = "Path: <sip:p1.example.net;lr>"
    if rnd.chance(40) then
      h[#h + 1] = "Path: <sip:p2.example.net:5070;lr;transport=tcp>, <sip:p3.example.net;lr>"
    end
    if rnd.chance(50) then
      supported[#supported + 1] = "path"
    end
  end
  if rnd.chance(3) then
    h[#h + 1] = "Require: path"
  elseif rnd.chance(2) then
    h[#h + 1] = "Require: foo"
  end
  if #supported > 0 then
    h[#h + 1] = "Supported: " .. concat(supported, ", ")
  end
  if rnd.chance(50) then
    h[#h + 1] = "User-Agent: " .. rnd.pick(UAS)
  end
  -- the header lines in another order now and then
  if rnd.chance(20) and #h > 1 then
    local j = rnd.int(#h)
    h[1], h[j] = h[j], h[1]
  end
  return req
end

-- The bytes of a generated request, sent from the client at cport.
local function bytes_of(req, cport, branch)
  local via = format("SIP/2.0/UDP %s:%d;branch=%s;rport", V4, cport, branch)
  if req.second_via then
    via = via .. ",SIP/2.0/UDP 192.0.2.50:5060;branch=z9hG4bKua" .. branch:sub(8)
  end
  local lines = {
    "REGISTER " .. req.ruri .. " SIP/2.0",
    "Via: " .. via,
    "Max-Forwards: 70",
    "From: " .. req.from,
    "To: " .. req.to,
    "Call-ID: " .. req.call_id,
    format("CSeq: %d REGISTER", req.cseq),
  }
  for _, l in ipairs(req.headers) do
    lines[#lines + 1] = l
  end
  lines[#lines + 1] = "Content-Length: 0"
  lines[#lines + 1] = ""
  lines[#lines + 1] = ""
  return concat(lines, "\r\n")
end

------------------------------------------------------------------------------
-- Playing a group of cases
------------------------------------------------------------------------------

local function stats_now()
  local f = registrar.stats
  if type(f) ~= "function" then
    return nil
  end
  return f()
end

-- A registrar on udp:127.0.0.1:0 with its own store; counts its saves and
-- the registrar.stats() deltas of each.
local function registrar_on(store, opts)
  local env = { store = store, opts = opts, saves = 0, fast = 0, general = 0, stats = true }
  opts.location = store
  env.srv, env.udp = N.server { listen = { "udp:127.0.0.1:0" }, sanity = { supported = registrar.supported } }
  env.srv:on_request(function(req)
    if req.method ~= "REGISTER" then
      return req:reply(405)
    end
    local before = stats_now()
    registrar.save(req, env.opts)
    local after = stats_now()
    env.saves = env.saves + 1
    if before and after then
      env.fast = env.fast + (after.fast - before.fast)
      env.general = env.general + (after.general - before.general)
    else
      env.stats = false
    end
  end)
  return env
end

-- Send bytes to a registrar and return its final answer (parsed), or nil
-- and why.
local function exchange(peer, bytes, env)
  peer:send(bytes, env.udp.host, env.udp.port)
  while true do
    local d, _, port = peer:recv(3)
    if not d then
      return nil, "no answer"
    end
    if port ~= env.udp.port then
      return nil, "a datagram from port " .. tostring(port) .. ": " .. d
    end
    local r = N.parse(d)
    if r.status and r.status >= 200 then
      return r
    end
  end
end

local function copy(t)
  local c = {}
  for k, v in pairs(t) do
    c[k] = v
  end
  return c
end

-- Compare both stores for one AOR, and the temp-GRUU records their
-- bindings point to, and the binding counts: why they differ (nil when
-- they agree), and the AOR's bindings in each store (for the messages).
local function stores_diff(fast, general, aor)
  local la, lb, na, nb = run(function()
    local x = assert(fast:lookup(aor))
    local y = assert(general:lookup(aor))
    return x, y, fast:count(), general:count()
  end)
  local d = bindings_diff(la, lb)
  if d then
    return "store, AOR " .. aor .. ": " .. d, la, lb
  end
  la, lb = by_key(la), by_key(lb)
  for i, ba in ipairs(la) do
    local bb = lb[i]
    if ba.tgruu_base then
      local ta, tb = run(function()
        return assert(fast:lookup("tgruu:" .. ba.tgruu_base)), assert(general:lookup("tgruu:" .. bb.tgruu_base))
      end)
      d = bindings_diff(ta, tb)
      if d then
        return "temp-GRUU record of " .. aor .. " " .. ba.key .. ": " .. d .. "\n    fast record "
          .. show(ta[1]) .. "\n    general record " .. show(tb[1]), la, lb
      end
    end
  end
  if na ~= nb then
    return format("store counts: fast %d, general %d", na, nb), la, lb
  end
  return nil, la, lb
end

local function dump_bindings(list)
  local t = {}
  for _, b in ipairs(by_key(list or {})) do
    t[#t + 1] = "    " .. show(b)
  end
  return #t > 0 and concat(t, "\n") or "    (none)"
end

-- Play a group: returns { steps, mismatch (first difference, a message
-- with the request and both answers), fast = env, general = env }.
local function play(group)
  local rnd = lcg(group.seed)
  local fast_store = memory.new({ backend = "memory" }, "memory:fast")
  local general_store = memory.new({ backend = "memory" }, "memory:general")
  local general_opts = copy(group.opts)
  general_opts.fast = false
  local fast = registrar_on(fast_store, copy(group.opts))
  local general = registrar_on(general_store, general_opts)
  local peer = N.udp(V4)
  local out = { steps = 0, fast = fast, general = general }
  local state = {}
  for i = 1, #AORS do
    state[i] = {}
  end
  local aors = {}
  local ok, err = pcall(function()
    for step = 1, group.count do
      local req = generate(rnd, state, step, group.tag)
      local bytes = bytes_of(req, peer.port, format("z9hG4bK%s%d", group.tag, step))
      peer:poll()
      peer.queue = {}
      local ra, ea = exchange(peer, bytes, fast)
      local rb, eb = exchange(peer, bytes, general)
      out.steps = step
      local why = (not ra and "fast registrar: " .. ea) or (not rb and "general registrar: " .. eb)
        or answer_diff(ra, rb)
      local aor = registrar.aor(req.aor_uri)
      local la, lb
      if aor then
        aors[aor] = true
        local swhy
        swhy, la, lb = stores_diff(fast_store, general_store, aor)
        why = why or swhy
      end
      if why then
        out.mismatch = format("group %q, step %d: %s\n--- request\n%s--- fast answer\n%s--- general answer\n%s"
          .. "--- fast store, %s\n%s\n--- general store, %s\n%s", group.name, step, why, bytes,
          ra and ra.raw or tostring(ea), rb and rb.raw or tostring(eb), tostring(aor), dump_bindings(la),
          tostring(aor), dump_bindings(lb))
        return
      end
    end
    -- every AOR once more at the end
    for aor in pairs(aors) do
      local why, la, lb = stores_diff(fast_store, general_store, aor)
      if why then
        out.mismatch = format("group %q, at the end: %s\n--- fast store, %s\n%s\n--- general store, %s\n%s",
          group.name, why, aor, dump_bindings(la), aor, dump_bindings(lb))
        return
      end
    end
  end)
  fast_store:close()
  general_store:close()
  N.cleanup()
  assert(ok, err)
  return out
end

local GROUPS = {
  { name = "served domains", tag = "d", seed = 20240611, count = 300,
    opts = { min_expires = 60, max_expires = 7200, max_contacts = 5, domains = { "example.com", "Reg.Test" } } },
  { name = "every domain", tag = "a", seed = 77031, count = 300,
    opts = { min_expires = 60, max_expires = 7200, max_contacts = 5 } },
}

local played = {}
local function outcome(group)
  if not played[group] then
    played[group] = play(group)
  end
  return played[group]
end

-- Many bindings on one AOR: 16 Contacts per REGISTER (the most the fast
-- path takes in one request) while the AOR holds up to 64 (the most it
-- takes stored), then once more: the general path takes over, with the
-- same result.
local function play_many()
  local fast_store = memory.new({ backend = "memory" }, "memory:fast-many")
  local general_store = memory.new({ backend = "memory" }, "memory:general-many")
  local opts = { min_expires = 60, max_expires = 7200, max_contacts = 96 }
  local general_opts = copy(opts)
  general_opts.fast = false
  local fast = registrar_on(fast_store, opts)
  local general = registrar_on(general_store, general_opts)
  local peer = N.udp(V4)
  local out = { fast_by_step = {} }
  local ok, err = pcall(function()
    for step = 1, 6 do
      local headers = {}
      for i = 1, 16 do
        headers[i] = format("Contact: <sip:dev%d-%d@192.0.2.%d:%d;transport=tcp>;q=0.%d;expires=%d",
          step, i, i, 5000 + step, i % 10, 600 + i)
      end
      local req = {
        ruri = "sip:example.com", from = "<sip:many@example.com>;tag=m" .. step,
        to = "<sip:many@example.com>", call_id = "many-" .. step .. "@192.0.2.1", cseq = step,
        headers = headers,
      }
      local bytes = bytes_of(req, peer.port, format("z9hG4bKmany%d", step))
      local before = fast.fast
      local ra, ea = exchange(peer, bytes, fast)
      local rb, eb = exchange(peer, bytes, general)
      out.fast_by_step[step] = fast.fast - before
      local why = (not ra and "fast registrar: " .. ea) or (not rb and "general registrar: " .. eb)
        or answer_diff(ra, rb) or stores_diff(fast_store, general_store, "sip:many@example.com")
      if why then
        out.mismatch = format("step %d: %s\n--- request\n%s", step, why, bytes)
        return
      end
      out.contacts = #ra:all("Contact")
    end
  end)
  fast_store:close()
  general_store:close()
  N.cleanup()
  assert(ok, err)
  return out
end

describe("registrar.save fast path vs general path (fast = false)", function()
  it("16 Contacts per REGISTER up to 96 bindings on one AOR: the same answers and bindings", function()
    local r = play_many()
    assert(r.mismatch == nil, r.mismatch)
    assert.are.equal(96, r.contacts)
    -- steps 1-5 (up to 64 stored) in C, step 6 (80 stored) in Lua
    assert.are.same({ 1, 1, 1, 1, 1, 0 }, r.fast_by_step)
  end)

  for _, group in ipairs(GROUPS) do
    describe(group.name .. " (" .. group.count .. " REGISTERs, seed " .. group.seed .. ")", function()
      it("the answers and the stored bindings are the same after every request", function()
        local r = outcome(group)
        assert(r.mismatch == nil, r.mismatch)
        assert.are.equal(group.count, r.steps)
        -- the registrars were really reached (the C layer answers some alone)
        assert.is_true(r.fast.saves > group.count / 2)
        assert.are.equal(r.fast.saves, r.general.saves)
      end)

      it("the fast path handled a real share of the default calls, none of fast = false", function()
        local r = outcome(group)
        assert.is_function(registrar.stats, "registrar.stats() is missing")
        assert.is_true(r.fast.stats and r.general.stats, "registrar.stats() gave no counts")
        local f, g = r.fast, r.general
        assert.are.equal(f.saves, f.fast + f.general,
          format("default calls: %d saves, stats moved fast %d + general %d", f.saves, f.fast, f.general))
        assert.is_true(f.fast >= FAST_SHARE * f.saves,
          format("the fast path handled %d of %d saves (< %d%%)", f.fast, f.saves, FAST_SHARE * 100))
        assert.are.equal(0, g.fast, "fast = false: stats.fast moved")
        assert.are.equal(g.saves, g.general, "fast = false: stats.general did not count every save")
      end)
    end)
  end
end)
