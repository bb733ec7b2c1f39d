-- Memory under connection churn and aborted writes: what a closed conn
-- leaves behind must come back while the loop is busy, and N conns
-- writing one shared string must hold it once. netstress (a blocking C
-- client, tests/e2e/netstress.c) makes the connections: lua-socket could
-- not churn them fast enough.
local h = require("helper")
local json = require("cjson")

local NETSTRESS = assert(os.getenv("LUNET_NETSTRESS"),
  "LUNET_NETSTRESS must name the netstress binary")

local MiB = 1024 * 1024

-- Under ASan freed memory stays resident in its quarantine, so RSS says
-- nothing there: the workloads run and every other figure is checked.
local RSS_MAX = os.getenv("LUNET_SANITIZED") and math.huge or 64 * 1000 * 1000
local RSS_GROWTH_MAX = os.getenv("LUNET_SANITIZED") and math.huge or 8 * 1000 * 1000

local function lua_heap(server)
  local code, out = h.run({ "stats", "--json", "--pid", tostring(server.pid) })
  assert.equal(0, code)
  return json.decode(out).lua_memory
end

local function stats(server)
  local code, out = h.run({ "stats", "--json", "--pid", tostring(server.pid) })
  assert.equal(0, code)
  return json.decode(out)
end

-- Resident set of a process in bytes, from /proc.
local function rss(pid)
  local s = h.read_file("/proc/" .. pid .. "/status") or ""
  return assert(tonumber(s:match("VmRSS:%s*(%d+) kB")), "no VmRSS") * 1024
end

local function netstress(...)
  return h.spawn({ ... }, { bin = NETSTRESS })
end

local function finished(client)
  if client:alive() then return false end
  local code = client:wait(1)
  assert(code == 0, "netstress failed (" .. tostring(code) .. "): "
    .. client:log())
  return true
end

describe("memory", function()
  after_each(h.cleanup)

  -- The bound is half the issue's goal for 1,000,000 conns (8 MiB): a
  -- leak of a closed conn's box and conn.data (~150 B each, collected
  -- only once the loop went quiet) passed it after ~20,000 conns, while
  -- the live heap is well under 1 MiB.
  it("keeps the Lua heap flat over 60,000 churned conns", function()
    local server = h.start(h.SCRIPTS .. "/memory_echo.lua", { services = { "echo" } })
    local clients = { netstress("churn", server.addr.echo, "30000"),
                      netstress("churn", server.addr.echo, "30000") }
    local peak, samples, first_rss, peak_rss = 0, 0, nil, 0
    h.wait_for(function()
      local heap = lua_heap(server)
      local r = rss(server.pid)
      first_rss = first_rss or r
      peak, peak_rss, samples = math.max(peak, heap), math.max(peak_rss, r), samples + 1
      assert(heap <= 4 * MiB, string.format("Lua heap %.1f MiB after %d samples",
        heap / MiB, samples))
      return finished(clients[1]) and finished(clients[2])
    end, 120, "60,000 churned connections")
    local s = stats(server)
    assert.equal(60000, s.services[1].accepted)
    assert(samples >= 3, "only " .. samples .. " samples")
    -- RSS stays within 8 MB of its first sample (the issue's goal).
    assert(peak_rss - first_rss <= RSS_GROWTH_MAX, string.format(
      "RSS grew from %.1f to %.1f MB", first_rss / 1e6, peak_rss / 1e6))
    assert.equal(0, (server:stop())) -- under ASan: no leak at exit
    print(string.format("\n  churn: %d samples, peak Lua heap %.2f MiB, RSS %.1f -> %.1f MB",
      samples, peak / MiB, first_rss / 1e6, peak_rss / 1e6))
  end)

  -- Each reset conn had ~4.5 MB of the string queued (what the socket did
  -- not take at once); a burst of accepts held dozens of copies at a time.
  it("keeps RSS under 64 MB over 50 aborted 8 MiB downloads", function()
    local server = h.start(h.SCRIPTS .. "/memory_big.lua", { services = { "big" } })
    local client = netstress("abort", server.addr.big, "50", "1000")
    local peak = 0
    h.wait_for(function()
      peak = math.max(peak, rss(server.pid))
      assert(peak <= RSS_MAX, string.format("RSS %.1f MB", peak / 1e6))
      return finished(client)
    end, 60, "50 aborted downloads")
    h.wait_for(function() return stats(server).services[1].active == 0 end, 10,
      "every aborted conn closed")
    peak = math.max(peak, rss(server.pid))
    assert(peak <= RSS_MAX, string.format("RSS %.1f MB", peak / 1e6))
    assert.equal(0, stats(server).queued_bytes)
    assert.equal(0, (server:stop()))
    print(string.format("\n  aborted downloads: peak RSS %.1f MB", peak / 1e6))
  end)

  -- 100 clients of SCRIPT's SERVICE that each read 1,000 bytes (of the
  -- answer to GET PATH, with a PATH) and then nothing: one 8 MiB string
  -- is written to each, and must be held once.
  local function stalled_readers(script, service, path, what)
    local server = h.start(h.SCRIPTS .. "/" .. script, { services = { service } })
    local client = netstress("stall", server.addr[service], "100", "1000", path)
    h.wait_for(function()
      assert(client:alive(), "netstress stall exited: " .. client:log())
      return client:stdout():match("stalled 100")
    end, 60, "100 stalled " .. what)
    local r = rss(server.pid)
    assert(r <= RSS_MAX, string.format("RSS %.1f MB", r / 1e6))
    local s = stats(server)
    assert.equal(100, s.services[1].active)
    -- Counted per conn, shared or not: the bound holds whatever is shared.
    assert(s.queued_bytes > 100 * MiB, "queued " .. s.queued_bytes)
    client:stop()
    h.wait_for(function() return stats(server).queued_bytes == 0 end, 10,
      "the queues of the closed conns released")
    assert.equal(0, (server:stop()))
    print(string.format("\n  100 stalled %s: RSS %.1f MB", what, r / 1e6))
  end

  it("holds one shared 8 MiB string once for 100 conns that stop reading", function()
    stalled_readers("memory_big.lua", "big", nil, "readers")
  end)

  -- res:send queues a large body as the Lua string itself: it held a copy
  -- per client (100 stalled clients of /big: 474 MB).
  it("holds one 8 MiB response body once for 100 HTTP clients that stop reading", function()
    stalled_readers("memory_web.lua", "web", "/big", "HTTP readers")
  end)

  it("keeps a closed conn held by the script safe across collections", function()
    local server = h.start(h.SCRIPTS .. "/memory_kept.lua", { services = { "keep" } })
    local client = netstress("churn", server.addr.keep, "20", "")
    h.wait_for(function() return finished(client) end, 30, "20 conns")
    server:wait_log("msg=kept of=20 ok=20")
    assert.equal(0, (server:stop()))
  end)

  -- --max-queued bounds every conn's queue together: past it the conns
  -- with the most queued go first, logged and counted.
  it("drops the largest slow consumers past --max-queued", function()
    local server = h.start(h.SCRIPTS .. "/memory_big.lua",
      { services = { "big" }, args = { "--max-queued", "20" } })
    local client = netstress("stall", server.addr.big, "10", "1000")
    h.wait_for(function()
      assert(client:alive(), "netstress stall exited: " .. client:log())
      return client:stdout():match("stalled 10")
    end, 60, "10 stalled conns")
    local s = h.wait_for(function()
      local s = stats(server)
      return s.services[1].active + s.queue_drops == 10 and s
    end, 10, "every conn kept or dropped")
    assert(s.queue_drops >= 1, "nothing dropped")
    assert(s.queued_bytes <= 20 * MiB, "queued " .. s.queued_bytes)
    assert.equal(20 * MiB, s.max_queued)
    assert.equal(s.queue_drops, s.services[1].closed.slow_consumer)
    local _, n = server:log():gsub("slow consumer dropped[^\n]*reason=process_queue_limit", "")
    assert.equal(s.queue_drops, n)
    client:stop()
    assert.equal(0, (server:stop()))
  end)
end)
