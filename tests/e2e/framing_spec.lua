local h = require("helper")

local function packet(s) return string.pack(">s4", s) end

local function read_packet(c)
  local len = string.unpack(">I4", h.receive(c, 4))
  return len == 0 and "" or h.receive(c, len)
end

for round = 1, 2 do
describe("framing (round " .. round .. ")", function()
  local server
  setup(function()
    server = h.start(h.SCRIPTS .. "/framing.lua",
      { services = { "lines", "packets" } })
  end)
  teardown(function()
    assert.equal(0, server:stop())
    h.cleanup()
  end)

  it("delivers whole lines, LF or CRLF, however the bytes are split", function()
    local c = h.connect(server.addr.lines)
    local input = "one\ntwo\r\n\nthree\n"
    for i = 1, #input do
      assert(c:send(input:sub(i, i))) -- one byte per segment
      if i % 3 == 0 then h.sleep(0.002) end
    end
    assert.equal("1:one", c:receive("*l"))
    assert.equal("2:two", c:receive("*l"))
    assert.equal("3:", c:receive("*l"))
    assert.equal("4:three", c:receive("*l"))
    -- Many lines in one segment.
    assert(c:send("a\nb\nc\n"))
    assert.equal("5:a", c:receive("*l"))
    assert.equal("6:b", c:receive("*l"))
    assert.equal("7:c", c:receive("*l"))
    c:close()
  end)

  it("keeps buffered lines while paused and delivers them on resume", function()
    local c = h.connect(server.addr.lines)
    local t0 = h.now()
    assert(c:send("hold\nafter1\nafter2\n"))
    assert.equal("1:hold", c:receive("*l"))
    assert.equal("2:after1", c:receive("*l"))
    assert.is_true(h.now() - t0 >= 0.09)
    assert.equal("3:after2", c:receive("*l"))
    c:close()
  end)

  it("closes only a connection whose line is over max_line", function()
    local other = h.connect(server.addr.lines)
    local c = h.connect(server.addr.lines)
    assert(c:send("sixteen-bytes-ok\n"))
    assert.equal("1:sixteen-bytes-ok", c:receive("*l"))
    assert(c:send(string.rep("x", 17) .. "\n"))
    assert.equal("error: line too long (max 16 bytes)", c:receive("*l"))
    assert.is_nil((c:receive("*l")))
    assert(other:send("fine\n"))
    assert.equal("1:fine", other:receive("*l"))
    server:wait_log("reason=message_too_long service=lines")
    -- Without a newline at all: cut off once the limit is passed.
    local d = h.connect(server.addr.lines)
    assert(d:send(string.rep("y", 40)))
    assert.equal("error: line too long (max 16 bytes)", d:receive("*l"))
    other:close()
  end)

  it("delivers length-prefixed messages, split and batched", function()
    local c = h.connect(server.addr.packets)
    local bytes = packet("hello") .. packet("") .. packet(string.rep("z", 1024))
    for i = 1, #bytes, 7 do assert(c:send(bytes:sub(i, i + 6))) end
    assert.equal("olleh", read_packet(c))
    assert.equal("", read_packet(c))
    assert.equal(string.rep("z", 1024), read_packet(c))
    c:close()
  end)

  it("closes a connection announcing a message over max_message", function()
    local c = h.connect(server.addr.packets)
    assert(c:send(string.pack(">I4", 1025)))
    assert.is_nil((c:receive(1)))
    server:wait_log("reason=message_too_long service=packets")
    local ok = h.connect(server.addr.packets)
    assert(ok:send(packet("ok")))
    assert.equal("ko", read_packet(ok))
    ok:close()
  end)
end)
end

describe("framing validation", function()
  it("rejects on_data with framing", function()
    local code, _, err = h.run({ "check", h.SCRIPTS .. "/framing_bad.lua" })
    assert.equal(1, code)
    assert.matches("service 'lines': with framing, messages go to on_message", err)
  end)
end)
