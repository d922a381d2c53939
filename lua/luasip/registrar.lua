--- A registrar (RFC 3261 §10.3) with Path (RFC 3327), SIP Outbound (RFC
-- 5626) and GRUU (RFC 5627), on a location store (`luasip.location`).
--
--     local registrar = require "luasip.registrar"
--     local loc = require("luasip.location").open("memory")
--     srv:on_request(function(req)
--       if req.method == "REGISTER" then
--         return registrar.save(req, { location = loc, domains = { "example.com" } })
--       end
--       local contacts = registrar.lookup(req.uri, { location = loc })
--       ...
--     end)
--
-- `registrar.save(req, opts)` does every step of §10.3 and answers the
-- request itself. Status codes it chooses:
--
-- - 404 when the Request-URI or the To host is not a served domain
--   (`opts.domains`; §21.4.5: "the domain in the Request-URI does not match
--   any of the domains handled by the recipient"; §10.3 step 5);
--   416 for a Request-URI that is not sip/sips
-- - 420 + Unsupported for a Require tag the registrar does not implement
--   (the C sanity layer answers first for tags missing from the server's
--   `sanity.supported`; the registrar checks again against its own list)
-- - 400 for a To that is not a SIP/SIPS URI, a missing or malformed field
--   it reads (Request-URI, To, Call-ID, CSeq, Via, Path), a Contact longer
--   than `max_contact_size`, a malformed Contact, q or
--   Expires, `*` with other Contacts or with an Expires other than 0, a
--   `reg-id` without `+sip.instance` or on more than one Contact
-- - 403 when `opts.authorize` refuses without answering, or when a
--   Contact is one of our GRUUs
-- - 423 + Min-Expires for an expiry below `min_expires` (not 0)
-- - 439 for an outbound registration whose first hop did not add a Path
--   with `ob` (RFC 5626 §6)
-- - 500 "CSeq Out Of Order" when a binding's Call-ID matches and the CSeq
--   is not higher (§10.3 steps 6-7: "the update MUST be aborted and the
--   request fails"; nothing is changed)
-- - 503 "Too Many Registered Contacts" past `opts.max_contacts` (as
--   Kamailio and OpenSIPS answer)
-- - 500 + Retry-After when the location store fails (logged)
-- - 200 listing every binding with `expires=` (seconds left) and `q`,
--   a Date header, Path (when the UA supports path), Require: outbound
--   (when reg-id was used), pub-gruu/temp-gruu (when the UA supports gruu)
-- @module luasip.registrar
local sip = require "luasip"
local core = require "luasip.core"
local log = require "luasip.log"

local lower = string.lower
local type, tostring, ipairs, pairs, next = type, tostring, ipairs, pairs, next
local time = os.time
local c_aor, c_check, c_contacts = core.registrar_aor, core.registrar_check, core.registrar_contacts
local c_update, c_binding = core.registrar_update, core.registrar_binding
local c_ok_headers, c_contact_value = core.registrar_ok_headers, core.registrar_contact_value
local c_http_date, c_temp_gruu = core.registrar_http_date, core.registrar_temp_gruu
local clock = core.location_clock
local fast_save = core.registrar_save

local M = {}

--- Defaults of `save` options.
-- @table defaults
-- @field default_expires 3600 (no `expires` param, no Expires header)
-- @field min_expires 60 (below: 423 + Min-Expires)
-- @field max_expires 7200 (above: shortened to it)
-- @field max_contacts 10 (bindings per AOR; above: 503)
-- @field retry_after 5 (seconds, in the 500 of a store failure)
-- @field max_contact_size 1024 (bytes of one Contact value, URI and
--   parameters; longer: 400 "Contact too long", as Kamailio's
--   contact_max_size)
M.defaults = {
  default_expires = 3600,
  min_expires = 60,
  max_expires = 7200,
  max_contacts = 10,
  retry_after = 5,
  max_contact_size = 1024,
}

--- Option tags this registrar implements (a Require of anything else gets
-- 420 unless `opts.supported` lists it). Give them to the server's
-- `sanity.supported` so that the C layer lets them through.
M.supported = { "path", "outbound", "gruu" }

-- ---------------------------------------------------------------------------
-- URIs and AORs
-- ---------------------------------------------------------------------------

local function uri_of(u)
  if type(u) == "string" then
    return sip.uri(u)
  end
  return u
end

--- The canonical address-of-record of a URI (§10.3 step 5): scheme (sip or
-- sips), user and host; host lower-case; no port, parameters or headers;
-- escapes normalized (a character is escaped if and only if it must be,
-- with upper-case hex), so `sip:%61lice@Example.COM:5060;transport=tcp` is
-- `sip:alice@example.com` (in C: `csrc/registrar/`).
-- @function aor
-- @tparam string|URI uri
-- @treturn[1] string the AOR
-- @treturn[1] string the URI's host as written
-- @return[2] nil
-- @treturn[2] string why (not a SIP/SIPS URI, no host, malformed)
M.aor = c_aor

-- ---------------------------------------------------------------------------
-- Helpers
-- ---------------------------------------------------------------------------

-- Does opts.domains serve host? (no domains: every host is served)
local function serves(opts, host, req)
  local d = opts.domains
  if d == nil then
    return true
  end
  host = lower(host or "")
  if type(d) == "function" then
    return d(host, req) and true or false
  end
  for _, name in ipairs(d) do
    if lower(name) == host then
      return true
    end
  end
  return false
end

--- The current time as an HTTP date (RFC 1123, GMT), for the Date header
-- (in C: the writer of the 200's Date, `csrc/registrar/plan.c`).
-- @tparam[opt] number t seconds since the epoch (default now)
-- @treturn string e.g. `Sat, 13 Nov 2010 23:29:00 GMT`
function M.http_date(t)
  return c_http_date(t or time())
end

local function store_of(opts)
  local loc = opts.location
  if type(loc) == "table" or type(loc) == "userdata" then
    return loc
  end
  local store, err = require("luasip.location").open(loc)
  if not store then
    error("registrar: location " .. tostring(loc) .. ": " .. tostring(err), 3)
  end
  return store
end

local function opt(opts, name)
  local v = opts[name]
  if v == nil then
    return M.defaults[name]
  end
  return v
end

local function store_failed(req, store, opts, what, err)
  log.error("registrar: location %s: %s failed: %s", tostring(store.url), what, tostring(err))
  req:reply(500, "Server Internal Error (location service unavailable)",
    { { "Retry-After", tostring(opt(opts, "retry_after")) } })
  return 500
end

local function fail(req, code, reason, headers)
  req:reply(code, reason, headers)
  return code, reason
end

-- ---------------------------------------------------------------------------
-- GRUU (RFC 5627)
-- ---------------------------------------------------------------------------

local TGRUU = "tgruu:" -- prefix of the store AOR holding a temp GRUU's target

-- The stores this process's registrar issues GRUUs from, with the save
-- options (their `domains`): RFC 5627 §5.5, a domain that hands out GRUUs
-- routes requests to them (M.resolve_gruu, proxy.relay).
local issuers = setmetatable({}, { __mode = "k" })

-- A temporary GRUU (written and read in C, csrc/registrar/plan.c, with the
-- public one, aor;gr=urn): sip:tgruu.<base>.<n>@host;gr. The base is random and
-- made once per (binding, Call-ID): the store keeps "tgruu:<base>" ->
-- { contact = aor, instance, call_id } with the binding's expiry, so that
-- every temp GRUU handed out during this registration resolves until it
-- ends, and none after the UA registers with a new Call-ID (§5.1 of RFC
-- 5627). n changes on every refresh, so each 200 carries a new one. The
-- AOR cannot be read from it (the base is random), but temp GRUUs of the
-- same registration share the base.

-- ---------------------------------------------------------------------------
-- save
-- ---------------------------------------------------------------------------

-- How many saves each path handled (see M.stats).
local handled = { fast = 0, general = 0 }
-- REGISTERs answered 200 (both paths): registrations, refreshes, removals.
local registered = 0

-- Every step of §10.3, for every store.
local function save(req, opts)
  handled.general = handled.general + 1
  -- 1, 2 and 5 (in C: csrc/registrar/plan.c): the Request-URI's domain,
  -- Require, the fields read below, the address-of-record.
  local aor, code, reason, hname, hvalue = c_check(req, opts, M.defaults)
  if not aor then
    return fail(req, code, reason, hname and { { hname, hvalue } })
  end

  -- 3-4. Authentication and authorization.
  if opts.authorize then
    local ok = opts.authorize(req, aor)
    if ok ~= true then
      if req:handled() then
        return req:answered() or 0, "authorize hook answered"
      end
      return fail(req, 403, "Forbidden")
    end
  end

  -- 6. The Contact header field (in C): the changes asked for, validated
  -- before anything is written.
  local changes, star, used_outbound
  changes, star, used_outbound, hname, hvalue = c_contacts(req, opts, M.defaults)
  if not changes then -- star and used_outbound are the status and reason
    return fail(req, star, used_outbound, hname and { { hname, hvalue } })
  end
  local now = time()

  -- The current bindings.
  local store = store_of(opts)
  local current, lerr = store:lookup(aor)
  if not current then
    return store_failed(req, store, opts, "lookup " .. aor, lerr)
  end
  -- 7 (in C, step C): Call-ID / CSeq ordering, max_contacts, what is
  -- saved, removed and kept.
  local removes, kept, why = c_update(req, changes, current, star, opts, M.defaults)
  if not removes then
    return fail(req, kept, why)
  end
  local by_key = {}
  for _, b in ipairs(current) do
    by_key[b.key] = b
  end
  local saves = {}
  for _, ch in ipairs(changes) do
    -- of a key given twice, the last change decides (step C)
    if ch.expires > 0 and not ch.superseded then
      -- the base of the registration's temp GRUUs: kept while the
      -- Call-ID is (step C's tgruu_n > 1), else a new random one
      local n, base = ch.tgruu_n, nil
      if n then
        base = n > 1 and current[ch.old].tgruu_base or (sip.new_tag() .. sip.new_tag())
      end
      -- the binding as stored (in C: the same record as the fast path's)
      local b = c_binding(req, ch, aor, now, opts, M.defaults, base)
      if opts.on_binding then
        local r, hcode, hreason = opts.on_binding(req, b)
        if r == nil and hcode then
          return fail(req, hcode, hreason)
        elseif type(r) == "table" then
          b = r
        end
      end
      saves[#saves + 1] = b
    end
  end

  -- Write everything, or undo what was written (§10.3 step 7).
  local done = {}
  local function undo()
    for i = #done, 1, -1 do
      local d = done[i]
      if d.old then
        store:save(aor, d.old)
      else
        store:remove(aor, d.key)
      end
    end
  end
  for _, b in ipairs(saves) do
    local ok, err = store:save(aor, b)
    if not ok then
      undo()
      return store_failed(req, store, opts, "save " .. aor, err)
    end
    done[#done + 1] = { key = b.key, old = by_key[b.key] }
    if b.tgruu_base then
      local ok2, err2 = store:save(TGRUU .. b.tgruu_base, {
        key = "target", contact = aor, expires = b.expires, instance = b.instance,
        call_id = b.call_id,
      })
      if not ok2 then
        undo()
        return store_failed(req, store, opts, "save temp-gruu of " .. aor, err2)
      end
    end
  end
  for _, k in ipairs(removes) do
    local ok, err = store:remove(aor, k)
    if not ok then
      undo()
      return store_failed(req, store, opts, "remove from " .. aor, err)
    end
    done[#done + 1] = { key = k, old = by_key[k], removed = true }
  end

  -- 8. The 200: every current binding, sorted by q (in C, step D).
  local list = kept
  for _, b in ipairs(saves) do
    list[#list + 1] = b
  end
  req:reply(200, nil, c_ok_headers(req, list, now, opts, M.defaults, used_outbound))
  local tp = used_outbound and req:transport()
  if tp and tp ~= "UDP" and req.keep_flow then
    -- RFC 5626 §5.2: a registered flow; its connection is evicted last
    -- when the connection slots run short
    req:keep_flow()
  end
  registered = registered + 1
  return 200, list
end

-- After the C fast path: false (not a case it takes), or it stored (into
-- the memory store's C structure) and answered.
local function fast_done(status, list)
  if not status then
    return nil
  end
  handled.fast = handled.fast + 1
  if status == 200 then
    registered = registered + 1
  end
  return status, list
end

--- Process a REGISTER: every step of RFC 3261 §10.3, and answer it.
--
-- Options (all optional):
--
-- - `location`: a store from `luasip.location.open`, or its URL (default
--   `"memory"`)
-- - `domains`: a list of served domains, or `function(host, req)` ->
--   boolean; nil serves every domain
-- - `authorize`: `function(req, aor)` -> true to go on; anything else
--   stops here: the hook answered (e.g. 401), or the registrar answers 403
-- - `on_binding`: `function(req, binding)` called for every binding about
--   to be saved (not for removals; after the CSeq-order and max_contacts
--   checks): return nothing or true to keep it, a table to save instead
--   (with the same key), or `nil, code, reason` to refuse the whole
--   request with that answer
-- - `default_expires` (3600), `min_expires` (60; 0 turns the 423 off),
--   `max_expires` (7200), `max_contacts` (10), `retry_after` (5),
--   `max_contact_size` (1024 bytes; a longer Contact value gets 400)
-- - `supported`: more option tags to accept in Require
-- - `path` (true): store Path (RFC 3327) and return it to UAs that
--   support path; false ignores Path
-- - `outbound` (true): RFC 5626 binding keys and flows; `gruu` (true):
--   RFC 5627 GRUUs
-- - `fast` (true): false turns the C fast path off (below)
--
-- Bindings are keyed by `+sip.instance` and `reg-id` when the UA supports
-- outbound, by `+sip.instance` alone when it gives no reg-id, else by the
-- Contact URI. The lookup-then-write is not atomic across registrar
-- instances: two REGISTERs for one AOR at the same time can overshoot
-- `max_contacts` (RFC 3261 §10.2 has a UA wait for each answer).
--
-- The flow's decisions are made in C, once (`csrc/registrar/plan.c`: the
-- checks, the Contacts, the update against the current bindings, the 200),
-- and so are the text of a binding and its stored form; this function
-- runs the hooks, the store's I/O and the undo between those steps. The
-- fast path: with the memory store and neither `authorize` nor
-- `on_binding`, the same C steps run with no Lua between them
-- (`core.registrar_save`): every error answer, and the 200 of a REGISTER
-- without `+sip.instance` or `reg-id` (Path, `*` and a key given twice
-- too). `opts.fast = false`
-- turns it off.
-- @tparam Message req a received REGISTER
-- @tparam[opt] table opts
-- @treturn integer the status code sent
-- @treturn table|string on 200 the bindings now registered (sorted by q);
--   otherwise the reason
function M.save(req, opts)
  opts = opts or {}
  if req.method ~= "REGISTER" then
    error("registrar.save: a REGISTER expected, got " .. tostring(req.method), 2)
  end
  if opts.gruu ~= false then
    M.issue_gruus(opts)
  end
  if opts.fast ~= false and opts.authorize == nil and opts.on_binding == nil then
    local store = store_of(opts)
    local memstore = store.memstore
    if memstore then
      local status, list = fast_done(fast_save(req, memstore, opts, M.defaults, time(), clock()))
      if status then
        return status, list
      end
    end
  end
  return save(req, opts)
end

--- How many REGISTERs each path of `save` handled in this process, and
-- how many of them were answered 200 (`registered`: new bindings,
-- refreshes and removals; its rate is registrations per second).
-- @treturn table `{ fast = N, general = N, registered = N }`
function M.stats()
  return { fast = handled.fast, general = handled.general, registered = registered }
end

-- ---------------------------------------------------------------------------
-- lookup
-- ---------------------------------------------------------------------------

--- The live bindings for a URI, sorted by q (highest first) then most
-- recent: what a proxy forks to or a redirect server returns.
--
-- A GRUU resolves to its one binding: a public GRUU (`;gr=urn`) to the
-- binding of that instance, a temporary one (`sip:tgruu.*@host;gr`) to the
-- binding whose registration issued it while it keeps the same Call-ID.
-- Each binding has `contact`, `q`, `expires` (absolute), `path` (list or
-- nil), `received` (`"udp:192.0.2.4:5060"`, the REGISTER's source, for
-- NAT), `socket`, `instance`, `reg_id`, ...
-- @tparam string|URI uri a Request-URI or AOR
-- @tparam[opt] table opts `location` (store or URL)
-- @treturn[1] {table,...} the bindings (`{}` when none)
-- @return[2] nil
-- @treturn[2] string error (store failure, not a SIP URI)
function M.lookup(uri, opts)
  opts = opts or {}
  local u, err = uri_of(uri)
  if not u then
    return nil, err
  end
  local aor
  aor, err = M.aor(u)
  if not aor then
    return nil, err
  end
  local store = store_of(opts)
  local gr = u.params and u.params.gr
  if gr == nil then
    return store:lookup(aor)
  end
  local want_instance, want_call_id
  if gr == true then
    local base = c_temp_gruu(u)
    if not base then
      return {}
    end
    local t, terr = store:lookup(TGRUU .. base)
    if not t then
      return nil, terr
    end
    if not t[1] then
      return {}
    end
    aor, want_instance, want_call_id = t[1].contact, t[1].instance, t[1].call_id
  else
    want_instance = "<" .. gr .. ">"
  end
  local all, lerr = store:lookup(aor)
  if not all then
    return nil, lerr
  end
  for _, b in ipairs(all) do
    if b.instance and lower(b.instance) == lower(want_instance)
      and (not want_call_id or b.call_id == want_call_id) then
      return { b }
    end
  end
  return {}
end

--- Declare that GRUUs are issued from a store (and its domains): what
-- `registrar.save` does when GRUU is on, so that `resolve_gruu` (and
-- `proxy.relay`) route them. A proxy that does not run the registrar
-- itself but shares its store (Redis, SQLite) calls it in its setup.
-- @tparam table opts `location` (store or URL), `domains` (as for `save`)
function M.issue_gruus(opts)
  issuers[store_of(opts)] = opts
end

--- Resolve a Request-URI that is one of our GRUUs (RFC 5627 §5.5: the
-- domain that issued a GRUU routes requests to it, in a dialog too).
--
-- A URI with a `gr` parameter is one of ours when a store GRUUs were
-- issued from (see `issue_gruus`) has a binding for it, or when its host is
-- one of that registrar's `domains` (given as a list or function; without
-- `domains` only GRUUs found in the store are claimed, so a GRUU of
-- another domain still goes on to its own).
-- @tparam string|URI uri
-- @tparam[opt] Message req given to a `domains` function
-- @treturn[1] boolean false: not one of our GRUUs
-- @treturn[2] {table,...} the binding it names, or `{}`
-- @treturn[2] integer when `{}`: the status to answer, 404 for a temporary
--   GRUU that does not exist (anymore), 480 for a public one whose instance
--   is not registered now
-- @return[3] nil
-- @treturn[3] string a store failure
function M.resolve_gruu(uri, req)
  local u = uri_of(uri)
  if not u or not u.params or u.params.gr == nil or not next(issuers) then
    return false
  end
  local scheme = lower(u.scheme or "")
  if scheme ~= "sip" and scheme ~= "sips" then
    return false
  end
  local claimed = false
  for store, o in pairs(issuers) do
    local found, err = M.lookup(u, { location = store })
    if not found then
      return nil, err
    end
    if found[1] then
      return found
    end
    if o.domains ~= nil and serves(o, u.host, req) then
      claimed = true
    end
  end
  if claimed then
    return {}, u.params.gr == true and 404 or 480
  end
  return false
end

--- A Contact header value for a binding: `<uri>;expires=N;q=Q` plus the
-- contact parameters it was registered with (N: seconds left, from the
-- absolute `expires`; q only when not 1); used by `luasip.redirect`.
-- @tparam table binding `contact`, `expires` (absolute), `q`, `params`
-- @tparam[opt] number now default `os.time()`
-- @treturn string
function M.contact_value(binding, now)
  return c_contact_value(binding, now or time())
end

return M
