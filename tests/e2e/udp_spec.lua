local h = require("helper")
local socket = require("socket")

describe("udp echo example", function()
  after_each(h.cleanup)

  for _, family in ipairs({ "127.0.0.1:0", "[::1]:0" }) do
    it("round-trips over " .. family, function()
      local server = h.start(h.EXAMPLES .. "/udp_echo.lua", {
        listen = { udp_echo = family }, services = { "udp_echo" } })
      local u = h.udp(server.addr.udp_echo)
      assert(u:send("ping"))
      assert.equal("ping", u:receive())
      u:close()
      assert.equal(0, server:stop())
    end)
  end

  it("answers 10,000 datagrams from 4 clients, each to its sender", function()
    local server = h.start(h.EXAMPLES .. "/udp_echo.lua", {
      listen = { udp_echo = "127.0.0.1:0" }, services = { "udp_echo" } })
    local clients, got = {}, {}
    for i = 1, 4 do clients[i] = h.udp(server.addr.udp_echo); got[i] = 0 end
    local per_client, window = 2500, 50
    for start = 1, per_client, window do
      for i, u in ipairs(clients) do
        for n = start, math.min(start + window - 1, per_client) do
          assert(u:send(string.format("c%d-%d", i, n)))
        end
      end
      for i, u in ipairs(clients) do
        for n = start, math.min(start + window - 1, per_client) do
          local d = assert(u:receive())
          -- Each reply is this client's own datagram, in order on loopback.
          assert.equal(string.format("c%d-%d", i, n), d)
          got[i] = got[i] + 1
        end
      end
    end
    assert.same({ 2500, 2500, 2500, 2500 }, got)
    assert.equal(0, server:stop())
  end)

  it("udp_client.lua prints the reply, or exits 1 on timeout", function()
    local server = h.start(h.EXAMPLES .. "/udp_echo.lua", {
      listen = { udp_echo = "127.0.0.1:0" }, services = { "udp_echo" } })
    local code, out = h.run({ "run", h.EXAMPLES .. "/udp_client.lua", "--",
      server.addr.udp_echo, "hello udp" })
    assert.equal(0, code)
    assert.equal("hello udp\n", out)
    local addr = server.addr.udp_echo
    assert.equal(0, server:stop())
    local t0 = h.now()
    local code2, out2, err = h.run({ "run", h.EXAMPLES .. "/udp_client.lua",
      "--", addr, "anyone?", "0.5" })
    assert.equal(1, code2)
    assert.equal("", out2)
    assert.matches("no reply from .* within 0%.5 s %(timeout%)", err)
    assert.is_true(h.now() - t0 < 4)
  end)
end)

describe("udp services", function()
  local server, u
  before_each(function()
    server = h.start(h.SCRIPTS .. "/udp_api.lua", { services = { "u", "limited" } })
    u = h.udp(server.addr.u)
  end)
  after_each(function()
    u:close()
    server:stop()
    h.cleanup()
  end)

  it("round-trips the largest datagram and refuses a larger one", function()
    assert(u:send("max"))
    local d = assert(u:receive(65536))
    assert.equal(65507, #d)
    assert.equal(string.rep("m", 65507), d)
    local big = string.rep("b", 65507)
    assert(u:send(big))
    assert.equal(big, u:receive(65536))
    assert(u:send("oversize"))
    assert.matches("^nil EMSGSIZE EMSGSIZE: datagram of 65508 bytes is too large %(max 65507%)$",
      u:receive())
  end)

  it("reports a bad destination as an error, not a crash", function()
    assert(u:send("badpeer"))
    assert.equal("nil EINVAL: invalid address 'nowhere'", u:receive())
    assert(u:send("still"))
    assert.equal("still", u:receive())
  end)

  it("logs a handler error and serves the next datagram", function()
    assert(u:send("boom"))
    server:wait_log('msg="handler error" service=u handler=on_message')
    assert.matches("udp_api%.lua:12: udp boom", server:log())
    assert(u:send("next"))
    assert.equal("next", u:receive())
  end)

  it("rate-limits a peer that sends too fast", function()
    local l = h.udp(server.addr.limited, 1)
    local t0 = h.now()
    for i = 1, 30 do assert(l:send("m" .. i)) end
    local answered, last = 0, t0
    while l:receive() do answered, last = answered + 1, h.now() end
    -- The burst of 5, plus what refilled at 5/s while the server answered:
    -- it did so between our first send and our last reply, a window a
    -- busy machine stretches, so the bound is measured, not fixed.
    local most = 5 + math.floor(5 * (last - t0)) + 1
    assert.is_true(answered >= 5 and answered <= most,
      "answered " .. answered .. " in " .. (last - t0) .. " s")
    server:wait_log('msg="rate limited" service=limited')
    -- The bucket refills at 5/s.
    h.sleep(0.5)
    assert(l:send("again"))
    assert.equal("again", l:receive())
    l:close()
  end)
end)

describe("udp reload", function()
  after_each(h.cleanup)

  it("switches the handler without rebinding", function()
    local dir = h.tmpdir()
    local v1 = h.read_file(h.SCRIPTS .. "/udp_api.lua")
    h.write_file(dir .. "/app.lua", v1)
    local server = h.start(dir .. "/app.lua", { services = { "u", "limited" } })
    local u = h.udp(server.addr.u)
    assert(u:send("version"))
    assert.equal("v1", u:receive())
    h.write_file(dir .. "/app.lua", (v1:gsub('"v1"', '"v2"')))
    local code, out = h.run({ "reload", "--pid", tostring(server.pid) })
    assert.equal(0, code)
    assert.matches("^reloaded: version=2", out)
    assert(u:send("version"))
    assert.equal("v2", u:receive())
    -- One bind for the whole run: the port never changed.
    local _, binds = server:log():gsub("msg=listening service=u ", "")
    assert.equal(1, binds)
    u:close()
    assert.equal(0, server:stop())
  end)
end)

describe("examples/udp_seq.lua", function()
  after_each(h.cleanup)

  it("reports exact delivered/lost/duplicate counts through the reorder helper", function()
    local receiver = h.start(h.EXAMPLES .. "/udp_seq.lua", {
      args = { "--", "receive", "127.0.0.1:0" }, services = { "seq" } })
    local code, out = h.run({ "run", h.EXAMPLES .. "/udp_seq.lua", "--", "send",
      receiver.addr.seq, "1000", "10", "7", "swap" })
    assert.equal(0, code)
    assert.equal("sent=1028 dropped=100 duplicated=128\n", out)
    assert.equal(0, receiver:wait(10))
    assert.equal("delivered=900 lost=100 duplicates=128 late=0\n", receiver:stdout())
  end)
end)
