-- examples/chat.lua with independent clients: line clients on one port,
-- JSON clients on the other, sharing rooms and nicks.
local h = require("helper")
local json = require("cjson")

local function start_chat(script)
  return h.start(script or (h.EXAMPLES .. "/chat.lua"), {
    listen = { chat = "127.0.0.1:0", chat_json = "127.0.0.1:0", web = "127.0.0.1:0" },
    services = { "chat", "chat_json" } })
end

local function line(c)
  local l, err = c:receive("*l")
  if not l then error("expected a line, got " .. err, 2) end
  return l
end

local function expect(c, want)
  local got = line(c)
  if got ~= want then error(string.format("expected %q, got %q", want, got), 2) end
end

-- A line client with a nick, in the lobby. Others already in the lobby are
-- told; `others` lists them so their join notice is consumed.
local function chatter(server, nick, others)
  local c = h.connect(server.addr.chat)
  assert.matches("^welcome to lunet chat", line(c))
  assert(c:send("/nick " .. nick .. "\n"))
  expect(c, "you are " .. nick .. "; /join ROOM to change rooms")
  expect(c, "* " .. nick .. " joined lobby")
  for _, o in ipairs(others or {}) do expect(o, "* " .. nick .. " joined lobby") end
  return c
end

local function json_line(c)
  return json.decode(line(c))
end

describe("chat", function()
  local server
  before_each(function() server = start_chat() end)
  after_each(function()
    assert.equal(0, server:stop())
    h.cleanup()
  end)

  it("delivers room messages in order to the room only, privates to their target", function()
    local a = chatter(server, "ann")
    local b = chatter(server, "bob", { a })
    local c = chatter(server, "cyd", { a, b })
    local d = chatter(server, "dee", { a, b, c })
    assert(d:send("/join other\n"))
    for _, x in ipairs({ a, b, c }) do expect(x, "* dee left lobby") end
    expect(d, "* dee joined other")
    for i = 1, 5 do
      assert(a:send("a" .. i .. "\n"))
      assert(b:send("b" .. i .. "\n"))
      assert(c:send("c" .. i .. "\n"))
    end
    for _, x in ipairs({ a, b, c }) do
      local seen = { ann = 0, bob = 0, cyd = 0 }
      for _ = 1, 15 do
        local from, text = line(x):match("^%[lobby%] (%a+): (%w+)$")
        seen[from] = seen[from] + 1
        assert.equal(from:sub(1, 1) .. seen[from], text) -- in order per sender
      end
    end
    assert(a:send("/msg cyd psst\n"))
    expect(c, "[private] ann: psst")
    -- Nobody else got anything: their next line answers their own /who.
    for _, x in ipairs({ a, b }) do
      assert(x:send("/who\n"))
      expect(x, "lobby: ann bob cyd")
    end
    assert(d:send("/who\n"))
    expect(d, "other: dee")
    assert(d:send("/rooms\n"))
    expect(d, "rooms: lobby (3), other (1)")
  end)

  it("refuses taken and invalid nicks and announces leaving", function()
    local a = chatter(server, "ann")
    local b = h.connect(server.addr.chat)
    line(b)
    assert(b:send("hello?\n"))
    expect(b, "error: set a nick first: /nick NAME")
    assert(b:send("/nick ann\n"))
    expect(b, "error: nick ann is taken")
    assert(b:send("/nick 9lives\n"))
    assert.matches("^error: invalid nick", line(b))
    assert(b:send("/nick " .. string.rep("x", 17) .. "\n"))
    assert.matches("^error: invalid nick", line(b))
    assert(b:send("/nick bob\n"))
    line(b); line(b)
    expect(a, "* bob joined lobby")
    assert(b:send("/quit\n"))
    expect(b, "bye")
    expect(a, "* bob left lobby (quit)")
    local c = chatter(server, "cyd", { a })
    c:close()
    expect(a, "* cyd left lobby (disconnected)")
    -- bob's nick is free again.
    local b2 = chatter(server, "bob", { a })
    b2:close()
  end)

  it("joins line and JSON clients in one room; bad JSON gets an error", function()
    local a = chatter(server, "ann")
    local j = h.connect(server.addr.chat_json)
    assert.equal("info", json_line(j).type)
    assert(j:send('{"type":"nick","nick":"bot"}\n'))
    assert.equal("you are bot; /join ROOM to change rooms", json_line(j).text)
    local joined = json_line(j)
    assert.same({ type = "join", nick = "bot", room = "lobby" },
      { type = joined.type, nick = joined.nick, room = joined.room })
    expect(a, "* bot joined lobby")
    assert(j:send('{"type":"say","room":"lobby","text":"hi from json"}\n'))
    expect(a, "[lobby] bot: hi from json")
    local echo = json_line(j)
    assert.equal("bot", echo.from)
    assert.equal("lobby", echo.room)
    assert.equal("hi from json", echo.text)
    assert.is_number(echo.time)
    assert(a:send("hi from a line\n"))
    local m = json_line(j)
    assert.same({ "ann", "lobby", "hi from a line" }, { m.from, m.room, m.text })
    line(a)
    assert(j:send('{"type":"say", oops\n'))
    local e = json_line(j)
    assert.equal("error", e.type)
    assert.matches("invalid JSON", e.error)
    assert(j:send('{"type":"who"}\n'))
    assert.same({ "ann", "bot" }, json_line(j).nicks)
  end)

  it("closes only the connection whose line is over the limit", function()
    local a = chatter(server, "ann")
    local b = chatter(server, "bob", { a })
    assert(b:send(string.rep("x", 5000) .. "\n"))
    expect(b, "error: line too long (max 4096 bytes)")
    assert.is_nil((b:receive("*l")))
    expect(a, "* bob left lobby (message_too_long)")
    assert(a:send("still fine\n"))
    expect(a, "[lobby] ann: still fine")
    server:wait_log('msg="message too long" service=chat')
  end)

  it("drops a client that never reads while the room keeps receiving", function()
    local reader = chatter(server, "ann")
    local slow = chatter(server, "zzz", { reader })
    local talker = chatter(server, "bob", { reader, slow })
    local text = string.rep("m", 3000)
    local got, n = 0, 4000 -- 12 MB through the room: past any socket buffers
    for i = 1, n do
      assert(talker:send(text .. "\n"))
      -- Keep the reader and the talker drained as we go.
      if i % 50 == 0 then
        while got < i do
          local l = line(reader)
          if l:match("^%[lobby%] bob: m+$") then got = got + 1 end
        end
        talker:settimeout(0)
        repeat local l = talker:receive("*l") until not l
        talker:settimeout(5)
      end
    end
    assert.equal(n, got)
    server:wait_log('msg="slow consumer dropped" service=chat')
    slow:close()
  end)
end)

describe("chat across a reload", function()
  after_each(h.cleanup)

  it("keeps everyone, their nicks and rooms; new commands work on old conns", function()
    local dir = h.tmpdir()
    local source = h.read_file(h.EXAMPLES .. "/chat.lua")
    h.write_file(dir .. "/chat.lua", source)
    local server = start_chat(dir .. "/chat.lua")
    local a = chatter(server, "ann")
    local b = chatter(server, "bob", { a })
    assert(b:send("/join dev\n"))
    expect(a, "* bob left lobby")
    expect(b, "* bob joined dev")
    local v2 = source:gsub("\nlocal function run%(", [[

commands.ping = function(conn) info(conn, "pong v2") end

local function run(]], 1)
    h.write_file(dir .. "/chat.lua", v2)
    local code, out = h.run({ "reload", "--pid", tostring(server.pid) })
    assert.equal(0, code)
    assert.matches("conns=2", out)
    assert(a:send("/ping\n"))
    expect(a, "pong v2")
    assert(b:send("/who\n"))
    expect(b, "dev: bob")
    assert(a:send("/nick bob\n"))
    expect(a, "error: nick bob is taken")
    assert(b:send("hello dev\n"))
    expect(b, "[dev] bob: hello dev")
    -- The subscription of v1 ended with it: a message arrives once.
    assert(b:send("/who\n"))
    expect(b, "dev: bob")
    assert.equal(0, server:stop())
  end)
end)

describe("examples/tcp_client.lua", function()
  after_each(h.cleanup)

  it("prints the echo and exits 0", function()
    local echo = h.start(h.EXAMPLES .. "/echo.lua", {
      listen = { echo = "127.0.0.1:0" }, services = { "echo" } })
    local code, out = h.run({ "run", h.EXAMPLES .. "/tcp_client.lua", "--",
      echo.addr.echo, "hello there" })
    assert.equal(0, code)
    assert.equal("hello there\n", out)
    -- A name resolved through getaddrinfo (from /etc/hosts).
    local port = echo.addr.echo:match(":(%d+)$")
    code, out = h.run({ "run", h.EXAMPLES .. "/tcp_client.lua", "--",
      "localhost:" .. port, "by name" })
    assert.equal(0, code)
    assert.equal("by name\n", out)
    assert.equal(0, echo:stop())
  end)

  it("exits non-zero when the port is closed", function()
    local echo = h.start(h.EXAMPLES .. "/echo.lua", {
      listen = { echo = "127.0.0.1:0" }, services = { "echo" } })
    local addr = echo.addr.echo
    assert.equal(0, echo:stop())
    local t0 = h.now()
    local code, out, err = h.run({ "run", h.EXAMPLES .. "/tcp_client.lua", "--",
      addr, "anyone?", "2" })
    assert.equal(1, code)
    assert.equal("", out)
    assert.matches("cannot talk to " .. addr:gsub("%.", "%%.") .. ": ECONNREFUSED", err)
    assert.is_true(h.now() - t0 < 5)
  end)

  it("exits non-zero when the server stays silent", function()
    local silent = h.start(h.SCRIPTS .. "/silent.lua", { services = { "silent" } })
    local code, _, err = h.run({ "run", h.EXAMPLES .. "/tcp_client.lua", "--",
      silent.addr.silent, "hello?", "0.5" })
    assert.equal(1, code)
    assert.matches("no reply from .* within 0%.5 s", err)
    assert.equal(0, silent:stop())
  end)
end)
