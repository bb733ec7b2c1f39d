local h = require("helper")

describe("examples/heartbeat.lua", function()
  after_each(h.cleanup)

  it("greets, beats every period per client, and says bye", function()
    local server = h.start(h.EXAMPLES .. "/heartbeat.lua", {
      listen = { heartbeat = "127.0.0.1:0" }, services = { "heartbeat" },
      args = { "--", "50" } })
    local a = h.connect(server.addr.heartbeat)
    local greeting = assert(a:receive("*l"))
    assert.matches("^hello 127%.0%.0%.1:%d+, you are connection %d+$", greeting)
    for n = 1, 3 do assert.equal("beat " .. n, a:receive("*l")) end
    local b = h.connect(server.addr.heartbeat)
    assert.matches("^hello ", b:receive("*l"))
    assert.equal("beat 1", b:receive("*l"))
    assert(a:send("quit\n"))
    -- Beats may still be in flight before the bye.
    local line
    repeat line = assert(a:receive("*l")) until line == "bye"
    assert.is_nil((a:receive("*l")))
    server:wait_log('msg="client left" beats=%d+ conn=1 reason=closed')
    -- A half-close: closing a socket with beats still unread sends a
    -- reset, not an EOF, and on a busy machine some always are unread.
    assert(b:shutdown("send"))
    server:wait_log("conn=2 reason=eof")
    b:close()
    assert.equal(0, server:stop())
  end)
end)
