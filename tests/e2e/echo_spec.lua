-- TCP echo against examples/echo.lua, over real loopback sockets.
local h = require("helper")

for round = 1, 2 do -- every case twice: leaked state shows the second time
describe("echo (round " .. round .. ")", function()
  local server, addr

  setup(function()
    server = h.start(h.EXAMPLES .. "/echo.lua", {
      listen = { echo = "127.0.0.1:0" }, services = { "echo" } })
    addr = server.addr.echo
  end)

  teardown(function()
    assert.equal(0, server:stop())
    h.cleanup()
  end)

  it("logs the real address it listens on", function()
    assert.matches("^127%.0%.0%.1:%d+$", addr)
    assert.not_equal("127.0.0.1:0", addr)
  end)

  it("echoes one byte", function()
    local c = h.connect(addr)
    assert(c:send("x"))
    assert.equal("x", h.receive(c, 1))
    c:close()
  end)

  it("echoes a 4 MiB payload byte for byte", function()
    local parts = {}
    for i = 1, 4 * 1024 do
      parts[i] = string.format("%07d", i) .. string.rep(string.char(i % 251), 1017)
    end
    local payload = table.concat(parts)
    assert.equal(4 * 1024 * 1024, #payload)
    local c = h.connect(addr, 10)
    -- Send and receive in turns so neither side's socket buffer deadlocks.
    local got, sent, chunk = {}, 0, 64 * 1024
    while sent < #payload do
      assert(c:send(payload, sent + 1, math.min(sent + chunk, #payload)))
      sent = math.min(sent + chunk, #payload)
      got[#got + 1] = h.receive(c, math.min(chunk, #payload - (sent - chunk)))
    end
    local echoed = table.concat(got)
    assert.equal(#payload, #echoed)
    assert.is_true(echoed == payload, "echoed bytes differ from sent bytes")
    c:close()
  end)

  it("serves 200 concurrent clients, each its own data", function()
    local clients = {}
    for i = 1, 200 do clients[i] = h.connect(addr) end
    for i, c in ipairs(clients) do
      assert(c:send(string.format("client %03d says hello\n", i)))
    end
    for i, c in ipairs(clients) do
      local line = string.format("client %03d says hello\n", i)
      assert.equal(line, h.receive(c, #line))
    end
    for _, c in ipairs(clients) do c:close() end
  end)
end)
end

describe("echo over IPv6 loopback", function()
  it("listens on [::1] and echoes", function()
    local server = h.start(h.EXAMPLES .. "/echo.lua", {
      listen = { echo = "[::1]:0" }, services = { "echo" } })
    assert.matches("^%[::1%]:%d+$", server.addr.echo)
    local c = h.connect(server.addr.echo)
    assert(c:send("over v6\n"))
    assert.equal("over v6\n", h.receive(c, 8))
    c:close()
    assert.equal(0, server:stop())
  end)
end)

describe("a handler error", function()
  local server, addr
  setup(function()
    server = h.start(h.SCRIPTS .. "/raise.lua", { services = { "echo" } })
    addr = server.addr.echo
  end)
  teardown(function()
    server:stop()
    h.cleanup()
  end)

  it("closes only the connection that triggered it", function()
    local good, bad = h.connect(addr), h.connect(addr)
    assert(good:send("one\n"))
    assert.equal("one\n", h.receive(good, 4))
    assert(bad:send("boom\n"))
    local data, err = bad:receive(1)
    assert.is_nil(data)
    assert.equal("closed", err)
    assert(good:send("two\n"))
    assert.equal("two\n", h.receive(good, 4))
    local fresh = h.connect(addr)
    assert(fresh:send("three\n"))
    assert.equal("three\n", h.receive(fresh, 6))
    good:close()
    fresh:close()
  end)

  it("is logged with file:line and a traceback", function()
    local line = server:wait_log('msg="handler error"[^\n]*')
    assert.matches("service=echo", line)
    assert.matches("handler=on_data", line)
    assert.matches("raise%.lua:12: boom requested", line)
    assert.matches("stack traceback", line)
  end)

  it("stamps a handler's log records with service, conn and peer", function()
    local c = h.connect(addr)
    assert(c:send("log\n"))
    assert.equal("log\n", h.receive(c, 4))
    local _, port = c:getsockname()
    local line = server:wait_log('msg="handler says"[^\n]*')
    assert.matches("extra=field service=echo conn=%d+ peer=127%.0%.0%.1:" .. port, line)
    c:close()
  end)

  it("calls on_close with a reason for every way a conn ends", function()
    local c = h.connect(addr)
    assert(c:send("close\n"))
    assert.equal("bye\n", h.receive(c, 4))
    assert.is_nil((c:receive(1)))
    c:close()
    local e = h.connect(addr)
    assert(e:send("x"))
    assert.equal("x", h.receive(e, 1))
    e:close()
    server:wait_log("reason=closed")
    server:wait_log("reason=eof")
    server:wait_log("reason=handler_error")
  end)
end)

describe("--log-level debug", function()
  it("tells one client's story: open and closed with service, conn, peer", function()
    local server = h.start(h.EXAMPLES .. "/echo.lua", {
      listen = { echo = "127.0.0.1:0" }, services = { "echo" },
      args = { "--log-level", "debug" } })
    local c = h.connect(server.addr.echo)
    local _, port = c:getsockname()
    c:close()
    local peer = "peer=127%.0%.0%.1:" .. port
    server:wait_log('msg="conn open" service=echo conn=1 ' .. peer)
    server:wait_log('msg="conn closed" service=echo conn=1 ' .. peer .. " reason=eof")
    assert.equal(0, server:stop())
    h.cleanup()
  end)
end)
