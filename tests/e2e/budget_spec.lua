-- A handler stuck in a loop or eating memory is stopped without stopping
-- the server (--budget, --memory-limit).
local h = require("helper")

local function rss_kb(pid)
  local s = h.read_file("/proc/" .. pid .. "/status") or ""
  return tonumber(s:match("VmRSS:%s*(%d+)"))
end

describe("script budgets", function()
  local server
  setup(function()
    server = h.start(h.SCRIPTS .. "/abuse.lua", { services = { "abuse", "web" },
      args = { "--budget", "200", "--memory-limit", "16" } })
  end)
  teardown(function()
    assert.equal(0, server:stop())
    h.cleanup()
  end)

  -- The line each case is stopped at in abuse.lua: its loop, or for
  -- coresume (resume catches the coroutine's error) the handler's next line.
  for case, line in pairs({ spin = 17, pspin = 19, cowrap = 22, coresume = 26 }) do
    it("stops `" .. case .. "` at the time budget; others are served", function()
      local other = h.connect(server.addr.abuse)
      local c = h.connect(server.addr.abuse)
      local t0 = h.now()
      assert(c:send(case .. "\n"))
      assert.is_nil((c:receive("*l"))) -- that connection is closed
      assert.is_true(h.now() - t0 < 2)
      assert(other:send("still\n"))
      assert.equal("still", other:receive("*l"))
      -- This case's own line: the log is written by another thread, and
      -- an earlier case's line is already there.
      server:wait_log("abuse%.lua:" .. line .. ": handler exceeded its 200 ms budget")
      assert.matches("abuse%.lua:" .. line .. ": handler exceeded its 200 ms budget",
        server:log())
      other:close()
    end)
  end


  it("answers 500 for HTTP handlers that spin or bomb, and goes on", function()
    local c = h.connect(server.addr.web, 10)
    for _, path in ipairs({ "/spin", "/bomb", "/ok" }) do
      assert(c:send("GET " .. path .. " HTTP/1.1\r\nHost: x\r\n\r\n"))
      local status = c:receive("*l")
      local want = path == "/ok" and "HTTP/1.1 200 OK" or "HTTP/1.1 500 Internal Server Error"
      assert.equal(want, status)
      repeat local l = c:receive("*l") until l == ""
      local body = c:receive(path == "/ok" and 4 or 22)
      assert.truthy(body)
    end
    c:close()
  end)
end)

describe("the memory cap", function()
  -- A server of its own whose time budget cannot run out first: how long
  -- the bomb takes to fill 16 MiB depends on the machine (ASan on a busy
  -- one took more than 200 ms), what stops it must not.
  local server
  setup(function()
    server = h.start(h.SCRIPTS .. "/abuse.lua", { services = { "abuse" },
      args = { "--budget", "60000", "--memory-limit", "16" } })
  end)
  teardown(function()
    assert.equal(0, server:stop())
    h.cleanup()
  end)

  it("stops an allocation bomb at the memory limit", function()
    local c = h.connect(server.addr.abuse, 30)
    assert(c:send("bomb\n"))
    assert.is_nil((c:receive("*l")))
    server:wait_log("not enough memory")
    assert.is_nil(server:log():match("exceeded its"), server:log())
    local fresh = h.connect(server.addr.abuse)
    assert(fresh:send("after\n"))
    assert.equal("after", fresh:receive("*l"))
    -- The heap came back: well under the bomb's reach.
    assert.is_true(rss_kb(server.pid) < 200 * 1024, "rss " .. rss_kb(server.pid))
    fresh:close()
  end)
end)

describe("a script that loops while loading", function()
  it("is rejected by the budget instead of hanging", function()
    local dir = h.tmpdir()
    h.write_file(dir .. "/loop.lua", "while true do end\nreturn {}\n")
    local code, _, err = h.run({ "check", dir .. "/loop.lua" })
    assert.equal(1, code)
    assert.matches("loop%.lua:1: handler exceeded its 1000 ms budget", err)
    h.cleanup()
  end)
end)
