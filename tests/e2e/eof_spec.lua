-- Bytes that arrived before an EOF are never dropped without a word: a last
-- line without its newline is delivered, a cut length-prefixed message or
-- HTTP request is reported, and a peer that only shut its sending side
-- still gets its answers.
local h = require("helper")

local function read_all(c)
  local data, err, partial = c:receive("*a")
  return data or partial, err
end

for round = 1, 2 do
describe("end of input (round " .. round .. ")", function()
  local server
  setup(function()
    server = h.start(h.SCRIPTS .. "/eof.lua",
      { services = { "lines", "held", "packets", "web" } })
  end)
  teardown(function()
    assert.equal(0, server:stop())
    h.cleanup()
  end)

  it("answers every line of a half-closed peer, the unterminated last one too", function()
    local c = h.connect(server.addr.lines)
    assert(c:send("first\nlast"))
    assert(c:shutdown("send"))
    assert.equal("1:first\n2:last\n", read_all(c))
    c:close()
    server:wait_log('msg=closed conn=%d+ reason=eof service=lines')
  end)

  it("strips a trailing CR from the last line", function()
    local c = h.connect(server.addr.lines)
    assert(c:send("a\r\nb\r"))
    assert(c:shutdown("send"))
    assert.equal("1:a\n2:b\n", read_all(c))
    c:close()
  end)

  it("refuses a last line over max_line at EOF", function()
    local c = h.connect(server.addr.lines)
    assert(c:send(string.rep("x", 17)))
    assert(c:shutdown("send"))
    assert.equal("error: line too long (max 16 bytes)\n", read_all(c))
    c:close()
    server:wait_log('msg=closed conn=%d+ reason=message_too_long service=lines')
  end)

  it("delivers lines kept while paused, then the last one, after the EOF", function()
    local c = h.connect(server.addr.held)
    assert(c:send("pause\nkept\nend"))
    assert(c:shutdown("send"))
    assert.equal("1:pause\n2:kept\n3:end\n", read_all(c))
    c:close()
    server:wait_log('msg=closed conn=%d+ reason=eof service=held')
  end)

  it("reports a length-prefixed message cut by EOF, and delivers none of it", function()
    for _, cut in ipairs({ { bytes = "\0\0", want = 4 },
                           { bytes = string.pack(">I4", 10) .. "abcde", want = 14 } }) do
      local c = h.connect(server.addr.packets)
      assert(c:send(string.pack(">s4", "ok") .. cut.bytes))
      assert(c:shutdown("send"))
      assert.equal(string.pack(">s4", "ko"), read_all(c))
      c:close()
      server:wait_log('msg="message cut by eof" service=packets conn=%d+ peer=%S+ expected='
        .. cut.want .. " received=" .. #cut.bytes)
    end
    server:wait_log('msg=closed conn=%d+ reason=eof_truncated service=packets')
  end)

  it("answers the pipelined HTTP requests of a half-closed client, in order", function()
    local c = h.connect(server.addr.web)
    assert(c:send("GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n"
      .. "GET /c HTTP/1.1\r\nHost: x\r\n\r\n"))
    assert(c:shutdown("send"))
    local all = read_all(c)
    c:close()
    local bodies = {}
    for body in all:gmatch("got (/%a)") do bodies[#bodies + 1] = body end
    assert.same({ "/a", "/b", "/c" }, bodies, all)
  end)

  it("abandons an HTTP request still being answered when its client leaves", function()
    local c = h.connect(server.addr.web)
    assert(c:send("GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /late HTTP/1.1\r\nHost: x\r\n\r\n"))
    assert(c:shutdown("send"))
    local all = read_all(c)
    c:close()
    assert.truthy(all:find("got /a", 1, true), all)
    assert.falsy(all:find("late", 1, true), all)
    server:wait_log("msg=late sent=nil")
  end)

  it("logs an HTTP request cut by EOF", function()
    local c = h.connect(server.addr.web)
    assert(c:send("POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc"))
    assert(c:shutdown("send"))
    assert.equal("", read_all(c))
    c:close()
    server:wait_log('msg="request cut by eof" service=web conn=%d+ peer=%S+ '
      .. "part=body received=3 expected=10")
    local d = h.connect(server.addr.web)
    assert(d:send("GET /x HTTP/1.1\r\nHo"))
    assert(d:shutdown("send"))
    assert.equal("", read_all(d))
    d:close()
    server:wait_log('msg="request cut by eof" service=web conn=%d+ peer=%S+ part=head')
  end)
end)
end

describe("examples/tcp_client.lua", function()
  after_each(h.cleanup)

  -- The server most tutorials start with: read once, answer without a
  -- newline, close.
  local server_py = [[
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 0))
s.listen(1)
s.settimeout(20)
print("port=%d" % s.getsockname()[1], flush=True)
c, _ = s.accept()
c.settimeout(20)
c.recv(1024)
c.sendall(b"Hello from server!")
c.close()
s.close()
]]

  it("prints the reply of a server that closes right after an unterminated answer", function()
    local dir = h.tmpdir()
    h.write_file(dir .. "/server.py", server_py)
    local py = io.popen("exec python3 " .. h.quote(dir .. "/server.py")
      .. " & echo $!; wait", "r")
    local pid, port
    for _ = 1, 2 do -- the shell's "$!" and the server's port, in either order
      local line = py:read("l") or ""
      port = port or tonumber(line:match("^port=(%d+)$"))
      pid = pid or tonumber(line:match("^(%d+)$"))
    end
    assert(pid and port, "python server did not start")
    local ok, code, out, err = pcall(h.run, { "run", h.EXAMPLES .. "/tcp_client.lua",
      "--", "127.0.0.1:" .. tostring(port), "hi" })
    os.execute("kill " .. pid .. " 2>/dev/null")
    py:close()
    assert(ok, code)
    assert.equal(0, code, err)
    assert.equal("Hello from server!\n", out)
  end)
end)
