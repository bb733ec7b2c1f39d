-- `lunet run --workers N`: a supervisor and N worker processes sharing the
-- listeners, replaced when they crash, reached by reload and shutdown, and
-- joined by pub/sub.
local h = require("helper")
local prom = require("prom")
local socket = require("socket")
local http = require("socket.http")

local SCRIPT = h.SCRIPTS .. "/workers.lua"

local function start(script, extra)
  local args = { "--workers", "2", "--log-level", "debug" }
  for _, a in ipairs(extra or {}) do args[#args + 1] = a end
  local p = h.start(script or SCRIPT, { listen = { who = "127.0.0.1:0" },
    services = { "who" }, args = args })
  p:wait_log('msg="workers ready" count=2')
  return p
end

local worker_pids = h.worker_pids

local function alive(pid)
  return os.execute("kill -0 " .. pid .. " 2>/dev/null") == true
end

-- Opens a connection and reads its greeting: conn, worker id, greeting.
local function visit(p)
  local c = h.connect(p.addr.who)
  local line = assert(c:receive("*l"))
  return c, tonumber(line:match("worker=(%d+)")), line
end

-- Connects until a connection to each worker is open (bounded tries).
local function one_per_worker(p)
  local conns, extra = {}, {}
  for _ = 1, 60 do
    local c, id = visit(p)
    if conns[id] then extra[#extra + 1] = c else conns[id] = c end
    if conns[1] and conns[2] then break end
  end
  for _, c in ipairs(extra) do c:close() end
  assert(conns[1] and conns[2], "60 connections all landed on one worker")
  return conns
end

describe("--workers", function()
  after_each(h.cleanup)

  it("spreads connections over both workers, each its own process", function()
    local p = start()
    local conns = one_per_worker(p)
    for _, c in pairs(conns) do c:close() end
    local pids = worker_pids(p)
    assert.is_true(pids[1] ~= pids[2] and pids[1] ~= p.pid and pids[2] ~= p.pid)
    assert.is_true(alive(pids[1]) and alive(pids[2]))
    assert.equal(0, (p:stop()))
  end)

  it("keeps serving when a worker is killed, and replaces it", function()
    local p = start()
    local before = worker_pids(p)
    os.execute("kill -KILL " .. before[2])
    -- Once the kernel has closed the dead worker's sockets (it has when
    -- its exit is reported), every connection is served: by worker 1
    -- until the replacement listens, then by either. (Connections queued
    -- on the dying socket itself are reset: see README, --workers.)
    p:wait_log('msg="worker exited" id=2 pid=' .. before[2] .. ' status="signal Killed"')
    for _ = 1, 20 do
      local c, id = visit(p)
      assert.is_true(id == 1 or id == 2)
      c:close()
    end
    h.wait_for(function()
      local now = worker_pids(p)[2]
      return now ~= before[2] and alive(now)
    end, 10, "a replacement for worker 2")
    assert.equal(before[1], worker_pids(p)[1])
    local conns = one_per_worker(p)
    for _, c in pairs(conns) do c:close() end
    -- The replacement is counted as a crash (liveness_spec has the
    -- unresponsive ones).
    local code, out = h.run({ "stats", "--json", "--pid", tostring(p.pid) })
    assert.equal(0, code)
    local s = require("cjson").decode(out).supervisor
    assert.same({ crashed = 1, unresponsive = 0 }, s.restarts_by_reason)
    assert.equal(1, s.restarts)
    assert.equal(0, (p:stop()))
  end)

  it("backs off when a worker keeps crashing", function()
    local p = start()
    for round = 1, 3 do
      local pid = worker_pids(p)[2]
      os.execute("kill -KILL " .. pid)
      p:wait_log('msg="worker exited" id=2 pid=' .. pid)
      h.wait_for(function()
        local now = worker_pids(p)[2]
        return now ~= pid and alive(now)
      end, 10, "replacement " .. round)
    end
    local delays = {}
    for ms in p:log():gmatch('msg="restarting worker" id=2 in_ms=(%d+)') do
      delays[#delays + 1] = tonumber(ms)
    end
    assert.same({ 100, 200, 400 }, delays)
    assert.equal(0, (p:stop()))
  end)

  it("replaces a worker whose script code exits it", function()
    local p = start()
    local conns = one_per_worker(p)
    local old = worker_pids(p)[1]
    conns[1]:send("crash\n")
    p:wait_log('msg="worker exited" id=1 pid=' .. old .. ' status="code 3"')
    h.wait_for(function()
      local now = worker_pids(p)[1]
      return now ~= old and alive(now)
    end, 10, "a replacement for worker 1")
    -- The other worker's connection never noticed.
    assert(conns[2]:send("still here\n"))
    assert.equal("heard still here in worker=2", conns[2]:receive("*l"))
    assert.equal(0, (p:stop()))
  end)

  it("reloads every worker and reports each outcome", function()
    local dir = h.tmpdir()
    local source = h.read_file(SCRIPT)
    h.write_file(dir .. "/app.lua", source)
    local p = start(dir .. "/app.lua")
    local conns = one_per_worker(p)

    h.write_file(dir .. "/app.lua", source:gsub('"hello"', '"bonjour"'))
    local code, out = h.run({ "reload", "--pid", tostring(p.pid) })
    assert.equal(0, code)
    assert.matches("^reloaded: worker 1: version=2 .*; worker 2: version=2 ", out)
    local greeted = {}
    for _ = 1, 60 do
      local c, id, line = visit(p)
      c:close()
      assert.matches("^bonjour ", line)
      greeted[id] = true
      if greeted[1] and greeted[2] then break end
    end
    assert.is_true(greeted[1] and greeted[2])

    -- SIGHUP to the supervisor reaches both workers as well.
    h.write_file(dir .. "/app.lua", source:gsub('"hello"', '"hola"'))
    p:signal("HUP")
    p:wait_log('msg=reloaded outcome="worker 1: version=3 [^"]*; worker 2: version=3 ')
    for _ = 1, 60 do
      local c, id, line = visit(p)
      c:close()
      assert.matches("^hola ", line)
      greeted[id] = "hola"
      if greeted[1] == "hola" and greeted[2] == "hola" then break end
    end
    assert.is_true(greeted[1] == "hola" and greeted[2] == "hola")

    h.write_file(dir .. "/app.lua", "return {")
    local code2, _, err = h.run({ "reload", "--pid", tostring(p.pid) })
    assert.equal(1, code2)
    assert.matches("worker 1 failed: .*app.lua.*worker 2 failed: .*app.lua", err)
    -- Connections opened before the reloads still work, on version 3;
    -- what one says reaches both workers.
    for from = 1, 2 do
      assert(conns[from]:send("after " .. from .. "\n"))
      for id = 1, 2 do
        assert.equal("heard after " .. from .. " in worker=" .. id,
          conns[id]:receive("*l"))
      end
    end
    assert.equal(0, (p:stop()))
  end)

  it("shares udp sockets: flows from different ports reach both workers", function()
    local p = start()
    local addr = p:wait_log("msg=listening service=who_udp proto=udp addr=(%S+) worker=2")
    local seen = {}
    for i = 1, 60 do
      local u = h.udp(addr)
      assert(u:send("ping" .. i))
      local reply = assert(u:receive())
      u:close()
      assert.matches("^ping" .. i .. " worker=%d$", reply)
      seen[tonumber(reply:match("worker=(%d)$"))] = true
      if seen[1] and seen[2] then break end
    end
    assert.is_true(seen[1] and seen[2])
    assert.equal(0, (p:stop()))
  end)

  it("carries pub/sub between workers", function()
    local p = start()
    local conns = one_per_worker(p)
    assert(conns[1]:send("from one\n"))
    for id = 1, 2 do
      assert.equal("heard from one in worker=" .. id, conns[id]:receive("*l"))
    end
    assert(conns[2]:send("from two\n"))
    for id = 1, 2 do
      assert.equal("heard from two in worker=" .. id, conns[id]:receive("*l"))
    end
    assert.equal(0, (p:stop()))
  end)

  it("runs the chat example unchanged across workers", function()
    local p = h.start(h.EXAMPLES .. "/chat.lua", {
      listen = { chat = "127.0.0.1:0", chat_json = "127.0.0.1:0", web = "127.0.0.1:0" },
      services = { "chat" }, args = { "--workers", "2", "--log-level", "debug" } })
    p:wait_log('msg="workers ready" count=2')
    -- Which worker took a client: the debug "conn open" record names its
    -- peer (our local port) and the worker.
    local function worker_of(c)
      local _, port = c:getsockname()
      return tonumber(p:wait_log('msg="conn open" service=chat conn=%d+ peer=127%.0%.0%.1:'
        .. port .. ' reason="" worker=(%d)'))
    end
    local by_worker = {}
    for i = 1, 60 do
      local c = h.connect(p.addr.chat)
      assert.matches("^welcome", c:receive("*l"))
      local id = worker_of(c)
      if by_worker[id] then
        c:close()
      else
        by_worker[id] = c
        assert(c:send("/nick n" .. id .. "\n"))
        assert.matches("^you are n" .. id, c:receive("*l"))
        assert.equal("* n" .. id .. " joined lobby", c:receive("*l"))
      end
      if by_worker[1] and by_worker[2] then break end
    end
    local a, b = by_worker[1], by_worker[2]
    assert(a and b, "no chat client on each worker")
    -- a may have heard b join (if a joined first); skip join notices.
    local function next_message(c)
      repeat
        local l = assert(c:receive("*l"))
        if not l:match("^%* ") then return l end
      until false
    end
    assert(a:send("hi from one\n"))
    assert.equal("[lobby] n1: hi from one", next_message(b))
    assert.equal("[lobby] n1: hi from one", next_message(a))
    assert(b:send("hi from two\n"))
    assert.equal("[lobby] n2: hi from two", next_message(a))
    local code = p:stop()
    assert.equal(0, code, p:log())
  end)

  it("answers stats and /metrics for every worker", function()
    local p = start(nil, { "--metrics", "127.0.0.1:0" })
    local maddr = p:wait_log("msg=listening service=metrics proto=http addr=(%S+)")
    local conns = one_per_worker(p)
    for _, c in pairs(conns) do c:close() end

    local code, out = h.run({ "stats", "--json", "--pid", tostring(p.pid) })
    assert.equal(0, code)
    local s = require("cjson").decode(out)
    assert.equal(2, s.supervisor.workers)
    assert.equal(2, #s.workers)
    local pids = worker_pids(p)
    for i = 1, 2 do
      assert.equal(i, s.workers[i].worker)
      assert.equal(pids[i], s.workers[i].pid)
      assert.equal(pids[i], s.workers[i].stats.pid)
    end

    local body, status = http.request("http://" .. maddr .. "/metrics")
    assert.equal(200, status)
    local fam = prom.parse(body) -- strict: each family once, contiguous
    assert.equal(2, prom.value(fam, "lunet_workers"))
    local accepted = 0
    for i = 1, 2 do
      assert.equal(1, prom.value(fam, "lunet_script_version", { worker = tostring(i) }))
      accepted = accepted + prom.value(fam, "lunet_connections_accepted_total",
        { worker = tostring(i), service = "who" })
    end
    assert.is_true(accepted >= 2)
    local _, missing = http.request("http://" .. maddr .. "/nope")
    assert.equal(404, missing)
    assert.equal(0, (p:stop()))
  end)

  it("stops every worker on SIGTERM and exits 0", function()
    local p = start()
    local pids = worker_pids(p)
    local conns = one_per_worker(p)
    assert.equal(0, (p:stop()))
    for i = 1, 2 do assert.is_false(alive(pids[i])) end
    for _, c in pairs(conns) do
      assert.equal(nil, (c:receive("*l"))) -- closed by the shutdown
    end
  end)

  it("workers stop by themselves when the supervisor is killed", function()
    local p = start()
    local pids = worker_pids(p)
    p:signal("KILL")
    p:wait()
    h.wait_for(function() return not alive(pids[1]) and not alive(pids[2]) end,
      15, "workers to leave after their supervisor")
  end)

  it("exits 1 at once when the script cannot start", function()
    local t0 = socket.gettime()
    local code, _, err = h.run({ "run", h.SCRIPTS .. "/broken_syntax.lua",
      "--workers", "2" })
    assert.equal(1, code)
    assert.matches("broken_syntax.lua:%d+", err)
    assert.not_matches("restarting worker", err)
    assert.is_true(socket.gettime() - t0 < 10)
  end)

  it("rejects a bad --workers value", function()
    for _, v in ipairs({ "0", "-1", "x", "257" }) do
      local code, _, err = h.run({ "run", SCRIPT, "--workers", v })
      assert.equal(2, code)
      assert.matches("--workers expects 1 to 256 or auto", err, 1, true)
    end
  end)
end)
