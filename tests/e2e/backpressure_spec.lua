-- One HTTP client that pipelines without reading costs the server no more
-- than its bounds: reading stops once its answers are not being taken (the
-- client's send blocks), memory stays within max_write_queue, the paused
-- connection costs no CPU, and once it reads it gets every answer it was
-- owed, in order. Other clients are served meanwhile.
local h = require("helper")

local CLIENT = h.SOURCE .. "/tests/e2e/clients/pipeline_flood.py"
local MAX_WRITE_QUEUE = 4 * 1024 * 1024 -- backpressure.lua's
local SLACK_KB = 4 * 1024 -- parser state, buffers, allocator rounding

local rss_kb = h.rss_kb

-- utime + stime of pid, in clock ticks (1/100 s on Linux).
local function cpu_ticks(pid)
  local stat = h.read_file("/proc/" .. pid .. "/stat") or ""
  local fields = {}
  for f in stat:gsub("^.*%) ", ""):gmatch("%S+") do fields[#fields + 1] = f end
  return tonumber(fields[12]) + tonumber(fields[13])
end

local server_env = h.rss_env

-- Starts the flood client; returns its PID and the paths of its output
-- and of the file that lets it start reading.
local function start_flood(addr, kind, seconds)
  local dir = h.tmpdir()
  local out, go = dir .. "/out", dir .. "/go"
  local p = io.popen(string.format("python3 %s %s %s %s %s >%s 2>&1 & echo $!",
    h.quote(CLIENT), h.quote(addr), kind, seconds, h.quote(go), h.quote(out)))
  local pid = tonumber(p:read("l"))
  p:close()
  return { pid = pid, out = out, go = go }
end

local function flood_says(fl, pattern, timeout)
  return h.wait_for(function()
    local text = h.read_file(fl.out) or ""
    if text:match("never_blocked") then error("the client's send never blocked:\n" .. text, 0) end
    return text:match(pattern)
  end, timeout or 60, "flood client line " .. pattern)
end

local function stop_flood(fl)
  os.execute("kill " .. fl.pid .. " 2>/dev/null")
end

for _, kind in ipairs({ "get", "post" }) do
describe("an HTTP client pipelining " .. kind:upper() .. "s without reading", function()
  local server, flood
  setup(function()
    server = h.start(h.SCRIPTS .. "/backpressure.lua",
      { services = { "web" }, env = server_env() })
  end)
  teardown(function()
    if flood then stop_flood(flood) end
    assert.equal(0, server:stop())
    h.cleanup()
  end)

  it("is paused within its bounds and then gets every answer it was owed", function()
    local other = h.connect(server.addr.web)
    local function other_asks(i)
      assert(other:send("GET /n/" .. i .. " HTTP/1.1\r\nHost: x\r\n\r\n"))
      assert.equal("HTTP/1.1 200 OK", other:receive("*l"))
      repeat local l = assert(other:receive("*l")) until l == ""
      assert.equal(i .. ":0", h.receive(other, #(i .. ":0")))
    end
    other_asks(1)
    local rss0 = rss_kb(server.pid)
    -- The client stops once its sends have been stuck for 3.5 s.
    flood = start_flood(server.addr.web, kind, 3.5)
    flood_says(flood, "blocked")
    local t0, ticks0 = h.now(), cpu_ticks(server.pid)
    -- Another client is answered while the flood is paused.
    for i = 2, 11 do other_asks(i) end
    local sent = tonumber(flood_says(flood, "sent=(%d+)"))
    local window, ticks = h.now() - t0, cpu_ticks(server.pid) - ticks0
    local rss1 = rss_kb(server.pid)
    -- Paused, the flood costs no CPU: under 5% of a core (a tick of
    -- rounding allowed; the other client's ten requests are in it too).
    -- The window is the client's stall: 3 s at least, however slow the
    -- machine was to get there.
    assert.is_true(window >= 2, "a stall window of " .. window .. " s")
    assert.is_true(ticks <= window * 100 * 0.05 + 1,
      ticks .. " ticks of CPU in " .. window .. " s")
    assert.is_true(rss1 - rss0 <= MAX_WRITE_QUEUE // 1024 + SLACK_KB,
      "rss grew from " .. rss0 .. " to " .. rss1 .. " KiB")
    h.write_file(flood.go, "")
    local result = flood_says(flood, "\n(%a+ responses=%d+[^\n]*)")
    assert.equal("ok responses=" .. sent, result)
    other:close()
  end)
end)
end

describe("an HTTP client that does not read a response over max_write_queue", function()
  after_each(h.cleanup)

  it("is dropped as a slow consumer, and the log says so", function()
    local server = h.start(h.SCRIPTS .. "/backpressure.lua",
      { services = { "web" }, env = server_env() })
    local flood = start_flood(server.addr.web, "huge", 2)
    server:wait_log('msg="slow consumer dropped" service=web conn=%d+ peer=%S+ queued=%d+', 30)
    h.write_file(flood.go, "")
    flood_says(flood, "\nfail responses=0")
    stop_flood(flood)
    local c = h.connect(server.addr.web)
    assert(c:send("GET /n/7 HTTP/1.1\r\nHost: x\r\n\r\n"))
    assert.equal("HTTP/1.1 200 OK", c:receive("*l"))
    c:close()
    assert.equal(0, server:stop())
  end)
end)
