-- Hot reload under live connections (DESIGN.md, "Reload: the guarantees").
local h = require("helper")

-- An echo whose replies name the version: PREFIX:count:line, the count kept
-- in conn.data so a spec can see it survive reloads.
local function echo_script(prefix, extra)
  return string.format([[
local prefix = %q
%s
return {
  echo = {
    tcp = "127.0.0.1:0",
    on_connect = function(conn) conn.data.n = 0 end,
    on_data = function(conn, data)
      conn.data.n = conn.data.n + 1
      conn:write(prefix .. ":" .. conn.data.n .. ":" .. data)
    end,
  },
}
]], prefix, extra or "")
end

local function start(dir, script, opts)
  opts = opts or {}
  h.write_file(dir .. "/app.lua", script)
  local args = {}
  for _, a in ipairs(opts.args or {}) do args[#args + 1] = a end
  return h.start(dir .. "/app.lua", { cwd = dir, services = opts.services
    or { "echo" }, args = args })
end

local function reload_cli(server, dir, extra)
  local args = { "reload" }
  for _, a in ipairs(extra or { "--pid", tostring(server.pid) }) do
    args[#args + 1] = a
  end
  return h.run(args, { cwd = dir })
end

local function count_log(server, pattern)
  return select(2, server:log():gsub(pattern, ""))
end

-- Each trigger must switch the same 50 live connections to v2.
local triggers = {
  SIGHUP = function(server)
    server:signal("HUP")
    server:wait_log("msg=reloaded trigger=SIGHUP version=2")
  end,
  ["lunet reload"] = function(server, dir)
    local code, out, err = reload_cli(server, dir, {})
    assert.equal(0, code, err)
    assert.matches("^reloaded: version=2 services=1 conns=50 duration_ms=", out)
  end,
  ["--watch"] = function(server)
    server:wait_log("msg=reloaded trigger=watch version=2")
  end,
}

for _, name in ipairs({ "SIGHUP", "lunet reload", "--watch" }) do
  describe("reload by " .. name, function()
    after_each(h.cleanup)

    it("switches 50 live connections to the new code, keeping conn.data", function()
      local dir = h.tmpdir()
      local server = start(dir, echo_script("v1"),
        { args = name == "--watch" and { "--watch" } or {} })
      if name == "--watch" then server:wait_log("msg=watching") end
      local conns = {}
      for i = 1, 50 do
        conns[i] = h.connect(server.addr.echo)
        assert.equal("v1:1:a" .. i, h.ask(conns[i], "a" .. i))
      end
      -- Rewritten by rename, as editors save.
      h.write_file(dir .. "/app.lua.tmp", echo_script("v2"))
      assert(os.rename(dir .. "/app.lua.tmp", dir .. "/app.lua"))
      triggers[name](server, dir)
      for i = 1, 50 do
        assert.equal("v2:2:b" .. i, h.ask(conns[i], "b" .. i))
      end
      -- `lunet reload` returns before the log thread has written the line.
      server:wait_log("msg=reloaded")
      assert.equal(1, count_log(server, "msg=reloaded"))
      local fresh = h.connect(server.addr.echo)
      assert.equal("v2:1:c", h.ask(fresh, "c"))
      assert.equal(0, server:stop())
    end)
  end)
end

describe("a broken new version", function()
  after_each(h.cleanup)

  local broken = {
    { "a syntax error", "return {\n  echo = {\n    tcp = \"127.0.0.1:0\"\n  \n",
      "app%.lua:5: '}' expected" },
    { "a runtime error at load", "local t = nil\nreturn t.services\n",
      "app%.lua:2: attempt to index a nil value" },
    { "a non-table", "return 42\n",
      "app%.lua: the script must return a table of services, got number" },
  }
  for _, case in ipairs(broken) do
    it("is rejected (" .. case[1] .. ") and the old version keeps serving", function()
      local dir = h.tmpdir()
      local server = start(dir, echo_script("v1"))
      local old = h.connect(server.addr.echo)
      assert.equal("v1:1:x", h.ask(old, "x"))
      h.write_file(dir .. "/app.lua", case[2])
      local code, out, err = reload_cli(server, dir)
      assert.equal(1, code)
      assert.equal("", out)
      assert.matches("^reload failed: .*" .. case[3], err)
      server:wait_log('msg="reload failed" trigger=control version=1')
      assert.equal("v1:2:y", h.ask(old, "y"))
      local new = h.connect(server.addr.echo)
      assert.equal("v1:1:z", h.ask(new, "z"))
      -- Fixed, it loads as version 2.
      h.write_file(dir .. "/app.lua", echo_script("v2"))
      code = reload_cli(server, dir)
      assert.equal(0, code)
      assert.equal("v2:3:w", h.ask(old, "w"))
      assert.equal(0, server:stop())
    end)
  end
end)

describe("listeners are diffed by service name", function()
  after_each(h.cleanup)

  local function two(extra_service)
    return echo_script("v", "") :gsub("return {\n", "return {\n" .. extra_service, 1)
  end

  it("starts a new service, stops a removed one, keeps live conns", function()
    local dir = h.tmpdir()
    local server = start(dir, echo_script("v1"))
    local echo = h.connect(server.addr.echo)
    assert.equal("v1:1:a", h.ask(echo, "a"))
    h.write_file(dir .. "/app.lua", two([[
  extra = { tcp = "127.0.0.1:0",
    on_data = function(conn, data) conn:write("extra:" .. data) end },
]]))
    assert.equal(0, (reload_cli(server, dir)))
    local extra_addr = server:wait_listening("extra")
    local x = h.connect(extra_addr)
    assert.equal("extra:hi", h.ask(x, "hi"))
    -- Remove "extra": no new connections, the open one finishes under the
    -- handlers it had.
    h.write_file(dir .. "/app.lua", echo_script("v3"))
    assert.equal(0, (reload_cli(server, dir)))
    server:wait_log("msg=\"service removed\" service=extra")
    local probe = require("socket").tcp()
    probe:settimeout(2)
    local host, port = h.split_addr(extra_addr)
    assert.is_nil(probe:connect(host, port))
    probe:close()
    assert.equal("extra:still", h.ask(x, "still"))
    assert.equal("v3:2:b", h.ask(echo, "b"))
    x:close()
    assert.equal(0, server:stop())
  end)

  it("moves a changed address without refusing connections", function()
    local dir = h.tmpdir()
    local script = echo_script("v1")
    local server = start(dir, script)
    local old_addr = server.addr.echo
    local c = h.connect(old_addr)
    assert.equal("v1:1:a", h.ask(c, "a"))
    h.write_file(dir .. "/app.lua", echo_script("v2"):gsub("127%.0%.0%.1:0", "[::1]:0"))
    assert.equal(0, (reload_cli(server, dir)))
    local new_addr = server:wait_log("msg=listening service=echo proto=tcp addr=(%[::1%]:%d+)")
    local n = h.connect(new_addr)
    assert.equal("v2:1:b", h.ask(n, "b"))
    assert.equal("v2:2:c", h.ask(c, "c"))
    local probe = require("socket").tcp()
    probe:settimeout(2)
    local host, port = h.split_addr(old_addr)
    assert.is_nil(probe:connect(host, port))
    assert.equal(0, server:stop())
  end)

  it("rejects a reload whose new address cannot be bound", function()
    local dir = h.tmpdir()
    local server = start(dir, echo_script("v1"))
    local busy = h.start(h.EXAMPLES .. "/echo.lua", {
      listen = { echo = "127.0.0.1:0" }, services = { "echo" } })
    h.write_file(dir .. "/app.lua", echo_script("v2"):gsub("127%.0%.0%.1:0", busy.addr.echo))
    local code, _, err = reload_cli(server, dir)
    assert.equal(1, code)
    assert.matches("cannot listen on " .. busy.addr.echo:gsub("%.", "%%."), err)
    local c = h.connect(server.addr.echo)
    assert.equal("v1:1:a", h.ask(c, "a"))
    assert.equal(0, server:stop())
    assert.equal(0, busy:stop())
  end)
end)

describe("state across reloads", function()
  after_each(h.cleanup)

  it("keeps lunet.state tables, restarts module locals, reloads local modules", function()
    local dir = h.tmpdir()
    local function script(v)
      return string.format([[
local words = require("words")
local shared = lunet.state("counter", { hits = 0 })
local fresh = 0
return {
  echo = {
    tcp = "127.0.0.1:0",
    on_data = function(conn, data)
      shared.hits = shared.hits + 1
      fresh = fresh + 1
      conn:write(string.format("%s %%s hits=%%d fresh=%%d\n", words.greet,
        shared.hits, fresh))
    end,
  },
  on_reload = function(previous)
    lunet.log.info("migrated", { from = previous, hits = shared.hits })
  end,
}
]], v)
    end
    h.write_file(dir .. "/words.lua", 'return { greet = "hello" }\n')
    local server = start(dir, script("v1"))
    local c = h.connect(server.addr.echo)
    assert.equal("v1 hello hits=1 fresh=1", h.ask(c, "x"))
    assert.equal("v1 hello hits=2 fresh=2", h.ask(c, "x"))
    h.write_file(dir .. "/words.lua", 'return { greet = "bonjour" }\n')
    h.write_file(dir .. "/app.lua", script("v2"))
    assert.equal(0, (reload_cli(server, dir)))
    server:wait_log("msg=migrated from=1 hits=2")
    assert.equal("v2 bonjour hits=3 fresh=1", h.ask(c, "x"))
    assert.equal(0, server:stop())
  end)

  it("reads modules new in a reload off the loop, nested ones too", function()
    local dir = h.tmpdir()
    h.write_file(dir .. "/app.lua", echo_script("v1"))
    local server = h.start(dir .. "/app.lua", { cwd = dir, services = { "echo" },
      args = { "--log-level", "debug" } })
    local c = h.connect(server.addr.echo)
    assert.equal("v1:1:x", h.ask(c, "x"))
    -- v2 needs two new files, the second required by the first, in a
    -- subdirectory (init.lua), and asks for an optional one under pcall.
    assert(os.execute("mkdir -p " .. h.quote(dir .. "/lib/deep")))
    h.write_file(dir .. "/lib/deep/init.lua", 'return { word = "deep" }\n')
    h.write_file(dir .. "/lib/words.lua",
      'local deep = require("lib.deep")\nreturn { greet = "hi-" .. deep.word }\n')
    h.write_file(dir .. "/app.lua", echo_script("v2", [[
prefix = require("lib.words").greet
local has_optional = pcall(require, "optional_missing")
assert(not has_optional)
]]))
    local code, out = reload_cli(server, dir)
    assert.equal(0, code, out)
    assert.matches("version=2", out)
    assert.equal("hi-deep:2:y", h.ask(c, "y"))
    -- Round 1 found lib/words.lua, round 2 lib/deep (and the optional
    -- module's candidates, which are absent); the load itself read nothing.
    -- The log is written in order by another thread: once the reload's
    -- own line is there, so are the rounds before it.
    server:wait_log("msg=reloaded ")
    local log = server:log()
    assert.matches('msg="reload reads new module files" files=%d+ round=1', log)
    assert.matches('msg="reload reads new module files" files=%d+ round=2', log)
    assert.equal(1, count_log(server, "msg=reloaded "))
    assert.equal(0, count_log(server, 'msg="reload failed"'))
    assert.equal(0, server:stop())
  end)
end)

describe("timers made at load", function()
  after_each(h.cleanup)

  it("belong to their version: after 10 reloads one periodic job runs", function()
    local dir = h.tmpdir()
    local script = [[
local ticks = lunet.state("ticks", { n = 0 })
lunet.every(50, function() ticks.n = ticks.n + 1 end)
return {
  echo = {
    tcp = "127.0.0.1:0",
    on_data = function(conn, data)
      if data:match("^reset") then ticks.n = 0 end
      conn:write(ticks.n .. "\n")
    end,
  },
}
]]
    local server = start(dir, script)
    local c = h.connect(server.addr.echo)
    for _ = 1, 10 do
      local code = reload_cli(server, dir)
      assert.equal(0, code)
    end
    local t0 = h.now()
    h.ask(c, "reset")
    h.sleep(0.5)
    local ticks = tonumber(h.ask(c, "read"))
    local window = h.now() - t0
    -- One job at 50 ms runs about 10 times in 0.5 s; eleven jobs would
    -- run about 110 times. The server counted between "reset" and "read",
    -- both inside the window measured here, which a busy machine
    -- stretches: one job cannot tick more than once per 50 ms of it.
    local most = math.floor(window / 0.05) + 2
    assert.is_true(ticks >= 5 and ticks <= most,
      "ticks: " .. ticks .. " in " .. window .. " s")
    assert.equal(0, server:stop())
  end)
end)

describe("lunet reload without flags", function()
  after_each(h.cleanup)

  it("finds the one instance started from the current directory", function()
    local dir = h.tmpdir()
    local server = start(dir, echo_script("v1"))
    local code, out = reload_cli(server, dir, {})
    assert.equal(0, code)
    assert.matches("^reloaded: version=2", out)
    assert.equal(0, server:stop())
    local elsewhere = h.tmpdir()
    local code2, _, err = h.run({ "reload" }, { cwd = elsewhere })
    assert.equal(1, code2)
    assert.matches("no running lunet was started from this directory", err)
  end)
end)

describe("reload under load", function()
  after_each(h.cleanup)

  it("loses nothing: 20 busy clients, 50 reloads, every reply whole", function()
    local dir = h.tmpdir()
    local server = start(dir, echo_script("v1"))
    local clients, sent = {}, {}
    for i = 1, 20 do clients[i] = h.connect(server.addr.echo); sent[i] = 0 end
    local replies = 0
    for round = 1, 50 do
      h.write_file(dir .. "/app.lua", echo_script(round % 2 == 0 and "v1" or "v2"))
      for i, c in ipairs(clients) do
        sent[i] = sent[i] + 1
        assert(c:send(string.format("c%d-r%d\n", i, round)))
      end
      -- Requests are in flight while the reload runs. (Not SIGHUP here:
      -- signals sent in a burst coalesce, and we count reloads.)
      assert.equal(0, (reload_cli(server, dir)))
      for i, c in ipairs(clients) do
        local line = assert(c:receive("*l"))
        local version, n, payload = line:match("^(v[12]):(%d+):(.*)$")
        assert.truthy(version, line)
        assert.equal(sent[i], tonumber(n))
        assert.equal(string.format("c%d-r%d", i, round), payload)
        replies = replies + 1
      end
    end
    assert.equal(1000, replies)
    h.wait_for(function() return count_log(server, "msg=reloaded") == 50 end,
      10, "50 reloads")
    assert.equal(0, count_log(server, "reload failed"))
    assert.equal(0, count_log(server, "handler error"))
    assert.equal(0, server:stop())
  end)
end)
