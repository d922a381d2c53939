-- SDP parse + serialize per description (luasip.sdp: csrc/sdp through the
-- binding), and the answer to each (sdp.answer against a fixed caps).
--
-- Usage: lua5.4 csrc/bench/sdp_bench.lua [SECONDS] [FILE...]
--   (default: 1 s each over spec/fixtures/sdp/*.sdp)
-- Prints per file: parse+serialize: N us/SDP, answer: N us/SDP
local sdp = require "luasip.sdp"

local secs = tonumber(arg[1]) or 1
local files = {}
for i = 2, #arg do
  files[#files + 1] = arg[i]
end
if #files == 0 then
  for _, n in ipairs { "sipp_uac", "baresip", "chrome_webrtc", "rfc8866_lf", "repeat_noeol" } do
    files[#files + 1] = "spec/fixtures/sdp/" .. n .. ".sdp"
  end
end

local caps = assert(sdp.parse(table.concat({
  "v=0", "o=luasip 1 1 IN IP4 127.0.0.1", "s=-", "c=IN IP4 127.0.0.1", "t=0 0",
  "m=audio 7000 RTP/AVP 0 8 96 101", "a=rtpmap:96 opus/48000/2", "a=rtpmap:101 telephone-event/8000",
  "a=fmtp:101 0-15", "",
}, "\r\n")))

local clock = os.clock

-- runs fn until secs have passed; microseconds per call
local function per_call(fn)
  local n, t0 = 0, clock()
  local deadline = t0 + secs
  repeat
    for _ = 1, 100 do
      fn()
    end
    n = n + 100
  until clock() >= deadline
  return (clock() - t0) / n * 1e6
end

for _, path in ipairs(files) do
  local f = assert(io.open(path, "rb"))
  local text = f:read("a")
  f:close()
  local parsed = assert(sdp.parse(text))
  assert(sdp.serialize(parsed) == text, path .. " does not round-trip")
  local rt = per_call(function()
    sdp.serialize(sdp.parse(text))
  end)
  local an = per_call(function()
    sdp.serialize(sdp.answer(parsed, caps))
  end)
  print(("sdp-bench %-22s %5d bytes  parse+serialize: %7.2f us/SDP  answer+serialize: %7.2f us/SDP")
    :format(path:match("[^/]+$"), #text, rt, an))
end
