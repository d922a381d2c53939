-- A census of the Lua heap for the memory benches (csrc/bench/b2bua_mem.lua):
-- walks everything reachable from the registry (tables, closures, threads
-- and their live frames, userdata and their user values; weak parts of
-- tables skipped) and writes one line per kind, the biggest first:
--
--     census: COUNT BYTES KIND
--
-- KIND: "table{k1,k2,...}" (its first string keys sorted, "#" for an array
-- part), "fn SOURCE:LINE", "thread STATUS", "udata TYPE", "string".
-- BYTES is a rough estimate (tables 56 + 32 a slot, closures 40, threads
-- 1000, strings their length + 25; userdata not sized: their counts come
-- first). A kind whose count grows with the calls in flight is what they
-- keep. Slow (a full walk): for benches only.
local M = {}
function M.run(out)
  local seen, counts, bytes = {}, {}, {}
  local getinfo, getupvalue, getlocal = debug.getinfo, debug.getupvalue, debug.getlocal
  local stack = { debug.getregistry() }
  local function add(cat, b)
    counts[cat] = (counts[cat] or 0) + 1
    bytes[cat] = (bytes[cat] or 0) + b
  end
  local function push(v)
    local tv = type(v)
    if (tv == "table" or tv == "function" or tv == "thread" or tv == "userdata" or tv == "string") and not seen[v] then
      seen[v] = true
      stack[#stack + 1] = v
    end
  end
  seen[stack[1]] = true
  seen[seen] = true; seen[stack] = true; seen[counts] = true; seen[bytes] = true
  while #stack > 0 do
    local v = stack[#stack]
    stack[#stack] = nil
    local tv = type(v)
    if tv == "string" then
      add("string", #v + 25)
    elseif tv == "table" then
      local keys, n, na = {}, 0, 0
      local mt = getmetatable(v)
      local weakk, weakv = false, false
      if type(mt) == "table" and type(mt.__mode) == "string" then
        weakk, weakv = mt.__mode:find("k") ~= nil, mt.__mode:find("v") ~= nil
      end
      for k, x in next, v do
        n = n + 1
        if math.type(k) == "integer" then
          na = na + 1
        elseif type(k) == "string" and #keys < 8 then
          keys[#keys + 1] = k
        end
        if not weakk then push(k) end
        if not weakv then push(x) end
      end
      table.sort(keys)
      push(mt)
      add("table{" .. table.concat(keys, ",") .. (na > 0 and ",#" or "") .. "}", 56 + 32 * n)
    elseif tv == "function" then
      local info = getinfo(v, "S")
      add("fn " .. info.short_src .. ":" .. info.linedefined, 40)
      local i = 1
      while true do
        local name, x = getupvalue(v, i)
        if not name then break end
        push(x)
        i = i + 1
      end
    elseif tv == "thread" then
      local st = coroutine.status(v)
      add("thread " .. st, 1000)
      if st ~= "dead" then
        local lvl = 0
        while true do
          local info = debug.getinfo(v, lvl, "f")
          if not info then break end
          push(info.func)
          local i = 1
          while true do
            local name, x = getlocal(v, lvl, i)
            if not name then break end
            push(x)
            i = i + 1
          end
          lvl = lvl + 1
        end
      end
    elseif tv == "userdata" then
      local mt = getmetatable(v)
      local name = type(mt) == "table" and rawget(mt, "__name") or "?"
      add("udata " .. tostring(name), 0)
      push(mt)
      local i = 1
      while true do
        local x, ok = debug.getuservalue(v, i)
        if ok == false or (x == nil and i > 4) then break end
        push(x)
        i = i + 1
      end
    end
  end
  local cats = {}
  for k in pairs(counts) do cats[#cats + 1] = k end
  table.sort(cats, function(a, b) return bytes[a] > bytes[b] end)
  for _, k in ipairs(cats) do
    if k:find("^udata") then out:write(string.format("census: %8d %s\n", counts[k], k)) end
  end
  for i = 1, math.min(#cats, 20) do
    out:write(string.format("census: %8d %10d %s\n", counts[cats[i]], bytes[cats[i]], cats[i]))
  end
  out:flush()
end
return M
