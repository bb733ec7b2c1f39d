-- Counters after a known workload, through `lunet stats --json` and
-- through GET /metrics read by a strict Prometheus text parser; `lunet top`
-- under a pseudo-terminal.
local h = require("helper")
local json = require("cjson")
local prom = require("prom")
local http = require("socket.http")

local function stats(server)
  local code, out = h.run({ "stats", "--json", "--pid", tostring(server.pid) })
  assert.equal(0, code)
  return json.decode(out)
end

local function service(s, name)
  for _, svc in ipairs(s.services) do if svc.name == name then return svc end end
end

describe("metrics", function()
  after_each(h.cleanup)

  it("count exactly a known workload, in stats --json and in /metrics", function()
    local dir = h.tmpdir()
    local source = h.read_file(h.SCRIPTS .. "/metrics_app.lua")
    h.write_file(dir .. "/app.lua", source)
    local server = h.start(dir .. "/app.lua",
      { services = { "lines", "api", "metrics" } })
    -- 25 lines of 6 bytes over 2 connections.
    for conn = 1, 2 do
      local c = h.connect(server.addr.lines)
      for i = 10, conn == 1 and 21 or 22 do
        assert(c:send("msg" .. i .. "\n"))
        assert.equal("msg" .. i, c:receive("*l"))
      end
      c:close()
    end
    -- 7 HTTP requests, 3 of them to paths that do not exist.
    local api = "http://" .. server.addr.api
    for _ = 1, 4 do assert.equal("ok", (http.request(api .. "/ok"))) end
    for i = 1, 3 do http.request(api .. "/missing" .. i) end
    -- One failed reload, then a good one.
    h.write_file(dir .. "/app.lua", "return {")
    assert.equal(1, (h.run({ "reload", "--pid", tostring(server.pid) })))
    h.write_file(dir .. "/app.lua", source)
    assert.equal(0, (h.run({ "reload", "--pid", tostring(server.pid) })))

    local s = h.wait_for(function()
      local s = stats(server)
      return service(s, "lines").closed.eof == 2 and s
    end, 5, "both line connections closed")
    local lines, api_stats = service(s, "lines"), service(s, "api")
    assert.same({ 2, 0, 25, 150, 150 }, { lines.accepted, lines.active,
      lines.messages, lines.bytes_in, lines.bytes_out })
    assert.same({ 7, 4, 3, 0, 7 }, { api_stats.messages, api_stats.responses["2xx"],
      api_stats.responses["4xx"], api_stats.responses["5xx"], api_stats.latency.count })
    assert.same({ 1, 1, 2 }, { s.reloads_ok, s.reloads_failed, s.script_version })
    assert.matches("^ok at ", s.last_reload)

    local body, code = http.request("http://" .. server.addr.metrics .. "/metrics")
    assert.equal(200, code)
    local fam = prom.parse(body)
    assert.equal("counter", fam.lunet_messages_total.type)
    assert.equal(25, prom.value(fam, "lunet_messages_total", { service = "lines" }))
    assert.equal(150, prom.value(fam, "lunet_bytes_received_total", { service = "lines" }))
    assert.equal(2, prom.value(fam, "lunet_connections_closed_total",
      { service = "lines", reason = "eof" }))
    assert.equal(3, prom.value(fam, "lunet_http_responses_total",
      { service = "api", class = "4xx" }))
    assert.equal("histogram", fam.lunet_http_request_duration_seconds.type)
    assert.equal(7, prom.value(fam, "lunet_http_request_duration_seconds_count",
      { service = "api" }))
    assert.equal(7, prom.value(fam, "lunet_http_request_duration_seconds_bucket",
      { service = "api", le = "+Inf" }))
    assert.equal(1, prom.value(fam, "lunet_reloads_total", { result = "failed" }))
    assert.equal(1, prom.value(fam, "lunet_reloads_total", { result = "ok" }))
    assert.equal(2, prom.value(fam, "lunet_script_version"))
    assert.equal(0, server:stop())
  end)

  it("the strict parser rejects broken expositions", function()
    assert.has_error(function() prom.parse("x 1\n") end) -- no TYPE
    assert.has_error(function() prom.parse("# TYPE x counter\nx{a=\"1} 1\n") end)
    assert.has_error(function() prom.parse("# TYPE h histogram\n"
      .. "h_bucket{le=\"1\"} 3\nh_bucket{le=\"+Inf\"} 2\nh_count 2\n") end)
  end)
end)

describe("lunet top", function()
  after_each(h.cleanup)

  it("redraws services and rates in a terminal, and quits on q", function()
    local server = h.start(h.SCRIPTS .. "/metrics_app.lua",
      { services = { "lines", "api", "metrics" } })
    local load = h.spawn({ "run", h.SCRIPTS .. "/chatter.lua", "--",
      server.addr.lines, "5" })
    -- The keys come through a FIFO, so q is pressed once the screen shows
    -- what we look for, not after a fixed time a busy machine may need.
    local dir = h.tmpdir()
    local out, keys_path = dir .. "/screen", dir .. "/keys"
    assert(os.execute("mkfifo " .. h.quote(keys_path)))
    local top = assert(io.popen(string.format(
      "timeout 30 script -qfec %s /dev/null <%s >%s; echo $?",
      h.quote(h.quote(h.LUNET) .. " top --pid " .. server.pid),
      h.quote(keys_path), h.quote(out))))
    local keys = assert(io.open(keys_path, "w"))
    local function screen() return h.read_file(out) or "" end
    -- MSG/S of the service `lines` in each redraw so far.
    local function rates()
      local r = {}
      for rate in screen():gmatch("\nlines +tcp +%S+ +%d+ +%d+ +([%d.]+)") do
        r[#r + 1] = tonumber(rate)
      end
      table.sort(r)
      return r
    end
    local waited = pcall(h.wait_for, function()
      local r = rates()
      return #r >= 2 and r[#r] > 0
    end, 20)
    keys:write("q")
    keys:close()
    local status = top:read("a")
    top:close()
    assert.equal("0\n", status, screen())
    assert.is_true(waited, screen())
    assert.matches("SERVICE", screen())
    assert.matches("\nlines +tcp ", screen())
    assert.matches("\napi +http ", screen())
    assert.matches("%(q to quit%)", screen())
    -- Some redraw showed the chatter's lines arriving: a non-zero MSG/S.
    local r = rates()
    assert.is_true(#r >= 2 and r[#r] > 0, screen())
    load:wait(10)
    assert.equal(0, server:stop())
  end)
end)
