-- luasip parser demo (make run): parses the RFC 4475 / RFC 5118 torture
-- vectors and the benchmark corpus with the Lua API, reports how each
-- vector's outcome compares with the verdict in vectors/INDEX.tsv, and shows
-- what a proxy reads from a typical message and the response it would build.
--
-- Usage: lua5.4 examples/parse_demo.lua VECTORS_DIR [MESSAGE_FILE...]
-- (with LUA_PATH='lua/?.lua;lua/?/init.lua;;' LUA_CPATH='build/lib/?.so;;'
-- from the repository root, or with the rock installed)
local sip = require "luasip"

local dir = arg[1] or "spec/vectors"

local function slurp(path)
  local f, err = io.open(path, "rb")
  if not f then
    return nil, err
  end
  local data = f:read("a")
  f:close()
  return data
end

-- Parse and read every field a server needs; nil, err when anything fails.
local function check(bytes)
  local msg, err = sip.parse(bytes)
  if not msg then
    return nil, err
  end
  if msg.validate then
    local ok, verr = msg:validate()
    if not ok then
      return nil, verr, msg
    end
  end
  return msg
end

local function describe(msg)
  local first = msg.is_request and (msg.method .. " " .. msg.uri)
    or (tostring(msg.status) .. " " .. (msg.reason or ""))
  local via = msg.via or {}
  return string.format("%s | %d Via | Call-ID %s | CSeq %s %s",
    first:sub(1, 48), #via, tostring(msg.call_id):sub(1, 24),
    tostring(msg.cseq), tostring(msg.cseq_method))
end

-- invalid-parse vectors a liberal parser may accept (see the INDEX notes)
local liberal = {
  ["rfc4475/lwsruri.dat"] = true, ["rfc4475/lwsstart.dat"] = true,
  ["rfc4475/trws.dat"] = true, ["rfc4475/ltgtruri.dat"] = true,
  ["rfc4475/escruri.dat"] = true, ["rfc4475/baddate.dat"] = true,
  ["rfc4475/badaspec.dat"] = true, ["rfc4475/baddn.dat"] = true,
}

-- The RFC 5118 files whose INDEX note says "CAUTION: ... Content-Length"
-- declare the body length of the LF archive; give them the CRLF length.
local function fix_length(bytes)
  local head, body = bytes:match("^(.-\r\n)\r\n(.*)$")
  if not head then
    return bytes
  end
  head = head:gsub("(\n[Cc][Oo][Nn][Tt][Ee][Nn][Tt]%-[Ll][Ee][Nn][Gg][Tt][Hh][ \t]*:[ \t]*)%d+",
    "%1" .. #body)
  return head .. "\r\n" .. body
end

local index = assert(slurp(dir .. "/INDEX.tsv"))
local count, agree, lib, disagree = 0, 0, 0, {}
print("== RFC 4475 / RFC 5118 vectors (" .. dir .. ")")
for line in index:gmatch("[^\n]+") do
  local file, _, expected, notes = line:match("^([^\t]+)\t([^\t]*)\t([^\t]+)\t(.*)$")
  if file and file ~= "file" then
    count = count + 1
    local bytes = assert(slurp(dir .. "/" .. file))
    if notes:find("CAUTION", 1, true) and notes:find("Content-Length", 1, true) then
      bytes = fix_length(bytes)
    end
    local msg, err = check(bytes)
    local accepted = msg ~= nil
    local want = expected ~= "invalid-parse"
    local outcome
    if accepted == want then
      agree = agree + 1
      outcome = "ok"
    elseif liberal[file] then
      lib = lib + 1
      outcome = "liberal"
    elseif file:match("mcl01") and not accepted then
      agree = agree + 1 -- conflicting Content-Length: framing must flag it
      outcome = "ok"
    else
      disagree[#disagree + 1] = file
      outcome = "DIFFERS"
    end
    print(string.format("%-7s %-44s %-31s %s", outcome, file, expected,
      accepted and describe(msg) or ("rejected: " .. tostring(err))))
  end
end

local files = { table.unpack(arg, 2) }
if #files > 0 then
  print("\n== messages")
  for _, path in ipairs(files) do
    local msg, err = check(assert(slurp(path)))
    if not msg then
      print(path, "rejected: " .. tostring(err))
    else
      print(path:match("[^/]+$") .. ": " .. describe(msg))
      local top = msg.via[1] or {}
      local contacts = {}
      for _, c in ipairs(msg.contacts or {}) do
        contacts[#contacts + 1] = tostring(c.uri)
      end
      print(string.format("    branch %s, from tag %s, to tag %s, contacts {%s}, routes %d",
        tostring(top.branch), tostring(msg.from and msg.from.tag),
        tostring(msg.to and msg.to.tag), table.concat(contacts, ", "), #(msg.routes or {})))
      if msg.is_request and msg.method ~= "ACK" and msg.response then
        local resp = msg:response(200)
        local text = tostring(resp)
        print("    response: " .. text:match("^[^\r\n]*") .. " (" .. #text .. " bytes)")
      end
    end
  end
end

print(string.format("\nparse_demo: %d vectors, %d as INDEX.tsv expects, %d accepted liberally, %d differ%s",
  count, agree, lib, #disagree, #disagree > 0 and (": " .. table.concat(disagree, " ")) or ""))
os.exit(#disagree == 0 and 0 or 1)
