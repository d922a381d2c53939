-- Shared helpers for the busted specs: locating the repository and the
-- torture vectors, reading files, building CRLF messages.
local H = {}

local src = debug.getinfo(1, "S").source:gsub("^@", "")
H.support_dir = src:match("^(.*)/[^/]*$") or "."
H.spec_dir = H.support_dir:match("^(.*)/[^/]*$") or "."
H.root = H.spec_dir:match("^(.*)/[^/]*$") or "."
if H.spec_dir == "spec" then
  H.root = "."
end

--- The torture vectors: $LUASIP_VECTORS, else the repository's own copy
-- (spec/vectors).
H.vectors_dir = os.getenv("LUASIP_VECTORS") or (H.root .. "/spec/vectors")

function H.read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

function H.exists(path)
  local f = io.open(path, "rb")
  if f then
    f:close()
    return true
  end
  return false
end

function H.vector(name)
  return H.read(H.vectors_dir .. "/" .. name)
end

--- INDEX.tsv as a list of {file=, section=, expected=, note=} plus a map by
-- file name.
function H.index()
  local list, by = {}, {}
  local first = true
  for line in H.read(H.vectors_dir .. "/INDEX.tsv"):gmatch("[^\n]+") do
    if first then
      first = false
    else
      local file, section, expected, note = line:match("^([^\t]*)\t([^\t]*)\t([^\t]*)\t(.*)$")
      if file then
        local e = { file = file, section = section, expected = expected, note = note }
        list[#list + 1] = e
        by[file] = e
      end
    end
  end
  return list, by
end

--- Join lines with CRLF; the last element is the body (use "" for none).
function H.msg(lines)
  return table.concat(lines, "\r\n")
end

--- Position of the end of the header section (index of the first body byte).
function H.body_start(bytes)
  local _, e = bytes:find("\r\n\r\n", 1, true)
  if not e then
    _, e = bytes:find("\n\n", 1, true)
  end
  return e and e + 1
end

--- Rewrite the Content-Length header to the actual body length (the three
-- RFC 5118 vectors whose declared length is wrong for the CRLF body).
function H.fix_clen(bytes)
  local b = H.body_start(bytes)
  local head, body = bytes:sub(1, b - 1), bytes:sub(b)
  local n
  head, n = head:gsub("(\n[Cc]ontent%-[Ll]ength[ \t]*:[ \t]*)%d+", "%1" .. #body, 1)
  assert(n == 1, "no Content-Length to fix")
  return head .. body
end

--- The lines of the header section as received (without their CRLF).
function H.header_lines(bytes)
  local b = H.body_start(bytes)
  local head = bytes:sub(1, b - 1)
  local t = {}
  for l in head:gmatch("([^\r\n]*)\r?\n") do
    t[#t + 1] = l
  end
  return t
end

return H
