-- WebSocket server (router:websocket, res:websocket, topics) over real
-- sockets, with a client of the spec's own (wsclient.lua) for exact
-- frames, and Python's websockets and node's ws as independent clients.
local h = require("helper")
local wsc = require("wsclient")

local APP = h.SOURCE .. "/tests/e2e/scripts/ws_app.lua"
local PY = "/usr/bin/python3" -- Debian's, which has python3-websockets

local function start(opts)
  opts = opts or {}
  opts.services = { "web", "small", "metrics" }
  return h.start(opts.script or APP, opts)
end

local sh = h.sh

describe("websocket server", function()
  local server
  before_each(function() server = start() end)
  after_each(function()
    local rc = server:stop()
    assert.equal(0, rc, server:log())
    h.cleanup()
  end)

  it("echoes text and binary messages of every length class", function()
    local ws = assert(wsc.connect(server.addr.web, "/echo"))
    for _, n in ipairs({ 0, 1, 125, 126, 65535, 65536, 1 << 20 }) do
      local text = string.rep("a", n)
      assert(ws:send(text))
      local got, op = ws:message()
      assert.equal(1, op)
      assert.equal(n, #got)
      assert.equal(text, got)
      local bin = string.rep("\0\255", n // 2)
      assert(ws:send(bin, 2))
      got, op = ws:message()
      assert.equal(2, op)
      assert.equal(bin, got)
    end
    assert.same({ 1000 }, { (ws:close(1000)) })
  end)

  it("reassembles fragments and answers a ping between them", function()
    local ws = assert(wsc.connect(server.addr.web, "/echo"))
    ws:send_raw(wsc.frame(1, "frag", { fin = false }) .. wsc.frame(9, "p!")
      .. wsc.frame(0, "men", { fin = false }) .. wsc.frame(0, "ted"))
    local op, payload = ws:recv()
    assert.same({ 10, "p!" }, { op, payload })
    assert.equal("fragmented", (ws:message()))
    ws:close()
  end)

  it("refuses bad upgrades with 400, 403 and 426", function()
    local ok, status, hdrs = wsc.connect(server.addr.web, "/echo",
      { headers = { "Sec-WebSocket-Version: 8" } })
    assert.is_nil(ok)
    -- the header list sends 13 first, then 8: a repeated header is joined
    assert.equal(426, status)
    assert.equal("13", hdrs["sec-websocket-version"])
    local out = sh("curl -s -o /dev/null -w '%{http_code}' http://" .. server.addr.web .. "/echo")
    assert.equal("426", out)
    out = sh("curl -s -o /dev/null -w '%{http_code}' -H 'Upgrade: websocket' "
      .. "-H 'Connection: Upgrade' -H 'Sec-WebSocket-Version: 13' http://"
      .. server.addr.web .. "/echo")
    assert.equal("400", out) -- no key
    out = sh("curl -s -o /dev/null -w '%{http_code}' -H 'Upgrade: websocket' "
      .. "-H 'Connection: Upgrade' -H 'Sec-WebSocket-Version: 13' "
      .. "-H 'Sec-WebSocket-Key: c2hvcnQ=' http://" .. server.addr.web .. "/echo")
    assert.equal("400", out) -- a key of 5 bytes, not 16
    ok, status = wsc.connect(server.addr.web, "/origins",
      { headers = { "Origin: https://evil.example" } })
    assert.is_nil(ok)
    assert.equal(403, status)
    local ws = assert(wsc.connect(server.addr.web, "/origins",
      { headers = { "Origin: https://good.example" } }))
    assert.equal("welcome", (ws:message()))
    ws:close()
    ok, status = wsc.connect(server.addr.web, "/auth")
    assert.equal(401, status)
    ws = assert(wsc.connect(server.addr.web, "/auth?token=yes", { headers = { "X-Name: ann" } }))
    assert.equal("hello ann", (ws:message()))
    ws:close()
    server:wait_log('msg="websocket upgrade refused" service=web status=403 reason="Origin not allowed"')
  end)

  it("picks the first of its subprotocols the client offers", function()
    local ws = assert(wsc.connect(server.addr.web, "/proto",
      { headers = { "Sec-WebSocket-Protocol: chat.v1, chat.v2" } }))
    assert.equal("chat.v2", ws.headers["sec-websocket-protocol"])
    assert.equal("chat.v2", (ws:message()))
    ws:close()
    ws = assert(wsc.connect(server.addr.web, "/proto",
      { headers = { "Sec-WebSocket-Protocol: other" } }))
    assert.is_nil(ws.headers["sec-websocket-protocol"])
    assert.equal("none", (ws:message()))
    ws:close()
  end)

  it("closes on protocol errors with the RFC's codes and logs why", function()
    local cases = {
      { "unmasked", string.char(0x81, 0x02) .. "hi", 1002 },
      { "1 GiB header", string.char(0x82, 0xff) .. string.pack(">I8", 1 << 30)
        .. "\0\0\0\0", 1009 },
      { "bad UTF-8", wsc.frame(1, "ok\xc3\x28"), 1007 },
      { "reserved bit", string.char(0xc1) .. wsc.frame(1, "x"):sub(2), 1002 },
      { "unknown opcode", wsc.frame(3, ""), 1002 },
      { "long ping", wsc.frame(9, string.rep("p", 126)), 1002 },
      { "bad close code", wsc.frame(8, string.pack(">I2", 1005)), 1002 },
    }
    for _, case in ipairs(cases) do
      local ws = assert(wsc.connect(server.addr.web, "/echo"))
      ws:send_raw(case[2])
      local code = ws:expect_close()
      assert.equal(case[3], code, case[1])
      assert.is_nil(ws.sock:receive(1), case[1]) -- and TCP closes
    end
    server:wait_log('msg="websocket protocol error" service=web .* code=1009')
  end)

  it("echoes the peer's close code and runs on_close", function()
    local ws = assert(wsc.connect(server.addr.web, "/sub/room"))
    assert.equal("subscribed 1", (ws:message()))
    assert.same({ 4001, "" }, { ws:close(4001) })
    server:wait_log('msg="sub closed" code=4001 path=/sub/room')
  end)

  it("closes a socket whose handler fails with 1011, and only that one", function()
    local other = assert(wsc.connect(server.addr.web, "/echo"))
    local ws = assert(wsc.connect(server.addr.web, "/fail"))
    ws:send("x")
    assert.equal(1011, (ws:expect_close()))
    server:wait_log('msg="fail closed" code=1011')
    other:send("still here")
    assert.equal("still here", (other:message()))
    other:close()
  end)

  it("fans a publish out to every subscriber in order, counted by topic", function()
    local subs = {}
    for i = 1, 20 do
      subs[i] = assert(wsc.connect(server.addr.web, "/sub/news"))
      assert.equal("subscribed " .. i, (subs[i]:message()))
    end
    local pub = assert(wsc.connect(server.addr.web, "/pub"))
    for i = 1, 50 do pub:send("news m" .. i) end
    for i = 1, 50 do assert.equal("delivered 20", (pub:message())) end
    for _, s in ipairs(subs) do
      for i = 1, 50 do assert.equal("m" .. i, (s:message())) end
    end
    -- binary stays binary, so a browser never sees a bad text frame
    pub:send("news \255\0", 2)
    assert.equal("delivered 20", (pub:message()))
    local got, op = subs[1]:message()
    assert.same({ "\255\0", 2 }, { got, op })
    for i = 1, 10 do subs[i]:close() end
    server:wait_log(string.rep('msg="sub closed".-', 10))
    pub:send("news after")
    assert.equal("delivered 10", (pub:message()))
    pub:close()
  end)

  it("keeps a socket's published and direct messages in the order they were made", function()
    local a = assert(wsc.connect(server.addr.web, "/both"))
    local b = assert(wsc.connect(server.addr.web, "/both"))
    for i = 1, 20 do a:send("a" .. i) end
    for i = 1, 20 do
      assert.equal("pub a" .. i, (a:message()))
      assert.equal("direct a" .. i, (a:message()))
      assert.equal("pub a" .. i, (b:message()))
    end
    a:close()
    b:close()
  end)

  it("gets every message of a publisher to 1,000 Python subscribers, in order", function()
    local out_path = os.tmpname()
    local pipe = assert(io.popen("timeout 90 " .. PY .. " " .. h.SOURCE
      .. "/tests/e2e/clients/ws_python_client.py subscribers ws://" .. server.addr.web
      .. "/quiet/many 1000 200 --timeout 60 >" .. out_path .. " 2>&1; echo rc=$?"))
    h.wait_for(function() return (h.read_file(out_path) or ""):match("READY") end, 60,
      function() return "READY from the subscribers: " .. (h.read_file(out_path) or "") end)
    local pub = assert(wsc.connect(server.addr.web, "/pub"))
    for i = 1, 200 do pub:send("many " .. i) end
    for _ = 1, 200 do assert.equal("delivered 1000", (pub:message())) end
    local rc = pipe:read("a")
    pipe:close()
    local out = h.read_file(out_path)
    os.remove(out_path)
    assert.matches("rc=0", rc, out)
    assert.matches("ok 1000 subscribers got 200 messages in order", out)
    pub:close()
  end)

  it("drops a subscriber that stops reading with 1008, the others keep up", function()
    local slow = assert(wsc.connect(server.addr.small, "/sub/flood"))
    assert.equal("subscribed 1", (slow:message()))
    local fast = assert(wsc.connect(server.addr.small, "/sub/flood"))
    assert.equal("subscribed 2", (fast:message()))
    local pub = assert(wsc.connect(server.addr.small, "/pub"))
    local body = string.rep("z", 60000)
    -- 200 x 60 kB = 12 MB against a 1 MiB max_write_queue: the socket
    -- buffers of the slow one fill, then its queue
    for i = 1, 200 do
      pub:send("flood " .. i .. " " .. body)
      assert.matches("^delivered [12]$", (pub:message()))
      assert.equal(i .. " " .. body, (fast:message()))
    end
    server:wait_log('msg="websocket slow consumer dropped" service=small')
    server:wait_log('msg="sub closed" code=1008 path=/sub/flood reason="slow consumer"')
    pub:close()
    fast:close()
  end)

  it("says false past write_high_water, then runs on_drain once the peer reads", function()
    local ws = assert(wsc.connect(server.addr.small, "/flood"))
    ws:send("1000")
    -- not reading until the server's queue is full: 64 MB would need
    -- more than any socket buffer holds
    server:wait_log('msg="flood full"')
    ws.sock:settimeout(10)
    local n, last = 0, nil
    repeat
      last = assert(ws:message())
      n = n + 1
    until last:sub(1, 7) == "drained" or last == "never full"
    local full_after = tonumber(last:match("^drained after (%d+)$"))
    assert.is_not_nil(full_after, last)
    -- 256 KiB of high water, plus what the socket buffers took at once
    assert.is_true(full_after > 3 and full_after < 1000, last)
    assert.equal(full_after + 1, n)
    ws:close()
  end)

  it("counts websockets, messages, closes and fan-out in /metrics", function()
    local http = require("socket.http")
    local a = assert(wsc.connect(server.addr.web, "/sub/m"))
    assert.equal("subscribed 1", (a:message()))
    local pub = assert(wsc.connect(server.addr.web, "/pub"))
    for i = 1, 3 do pub:send("m x" .. i) end
    for _ = 1, 3 do assert.equal("delivered 1", (pub:message())) end
    assert.same({ 4001, "" }, { a:close(4001) })
    server:wait_log('msg="sub closed" code=4001')
    local body = assert(http.request("http://" .. server.addr.metrics .. "/metrics"))
    local function metric(pattern)
      return tonumber(body:match(pattern:gsub("[{}]", "%%%0") .. " (%d+)"))
    end
    assert.equal(1, metric('lunet_websockets_open{service="web"}'), body)
    assert.equal(3, metric('lunet_websocket_messages_total{service="web",direction="in"}'))
    assert.equal(4, metric('lunet_websocket_messages_total{service="web",direction="out"}'))
    assert.equal(1, metric('lunet_websocket_closes_total{service="web",code="other"}'))
    assert.equal(3, metric('lunet_websocket_fanout_total{service="web"}'))
    assert.equal(0, metric('lunet_websocket_slow_drops_total{service="web"}'))
    pub:close()
  end)

  it("closes a peer that answers no ping (1006 to on_close, logged)", function()
    local ws = assert(wsc.connect(server.addr.web, "/ping"))
    local op = ws:recv()
    assert.equal(9, op) -- a ping, unanswered; and the next
    server:wait_log('msg="websocket ping timeout" service=web', 10)
    server:wait_log('msg="ping closed" code=1006 reason="ping timeout"')
  end)

  it("compresses with permessage-deflate when the route asks and the client offers", function()
    local ws = assert(wsc.connect(server.addr.web, "/deflate",
      { headers = { "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits" } }))
    assert.equal("permessage-deflate; server_no_context_takeover; client_no_context_takeover",
      ws.headers["sec-websocket-extensions"])
    ws:send(string.rep("compress me ", 10000))
    local op, payload, fin, rsv1 = ws:recv()
    assert.same({ 1, true, true }, { op, fin, rsv1 })
    assert.is_true(#payload < 2000, "120,000 bytes of a repeated phrase as " .. #payload)
    ws:close()
    -- a route without compression declines the offer
    ws = assert(wsc.connect(server.addr.web, "/echo",
      { headers = { "Sec-WebSocket-Extensions: permessage-deflate" } }))
    assert.is_nil(ws.headers["sec-websocket-extensions"])
    ws:close()
    local out, code = sh("timeout 60 " .. PY .. " -c " .. h.quote([[
import asyncio, sys, websockets
async def main():
    async with websockets.connect(sys.argv[1], max_size=None) as ws:
        assert "permessage-deflate" in ws.response_headers["Sec-WebSocket-Extensions"]
        for m in ["x" * (8 << 20), "héllo " * 1000, bytes(range(256)) * 400]:
            await ws.send(m)
            assert await ws.recv() == m
    print("deflate ok")
asyncio.run(main())
]]) .. " ws://" .. server.addr.web .. "/deflate")
    assert.equal(0, code, out)
    assert.matches("deflate ok", out)
  end)

  it("talks to Python's websockets and node's ws from 0 B to 16 MiB", function()
    local url = "ws://" .. server.addr.web .. "/big"
    local out, code = sh("timeout 60 " .. PY .. " " .. h.SOURCE
      .. "/tests/e2e/clients/ws_python_client.py echo_sizes " .. url)
    assert.equal(0, code, out)
    out, code = sh("cd " .. h.SOURCE .. " && NODE_PATH=/usr/share/nodejs timeout 60 node "
      .. "tests/e2e/clients/ws_node_client.js " .. url .. " echo_sizes")
    assert.equal(0, code, out)
  end)
end)

describe("websocket reload", function()
  after_each(function() h.cleanup() end)

  it("keeps 200 open websockets, their data and topics, and runs the new handlers", function()
    local dir = h.tmpdir()
    local src = h.read_file(APP)
    h.write_file(dir .. "/app.lua", src)
    local server = start({ script = dir .. "/app.lua" })
    local socks = {}
    for i = 1, 200 do
      socks[i] = assert(wsc.connect(server.addr.web, "/count"))
      socks[i]:send("a")
    end
    for i = 1, 200 do assert.equal("v1 1 a", (socks[i]:message())) end
    h.write_file(dir .. "/app.lua", (src:gsub('VERSION = "v1"', 'VERSION = "v2"')))
    server:signal("HUP")
    server:wait_log("msg=reloaded trigger=SIGHUP version=2")
    for i = 1, 200 do socks[i]:send("b") end
    for i = 1, 200 do assert.equal("v2 2 b", (socks[i]:message())) end
    local pub = assert(wsc.connect(server.addr.web, "/pub"))
    pub:send("all after-reload")
    assert.equal("delivered 200", (pub:message()))
    for i = 1, 200 do assert.equal("after-reload", (socks[i]:message())) end
    for i = 1, 200 do socks[i]:close() end
    pub:close()
    local rc = server:stop()
    assert.equal(0, rc, server:log())
  end)

  it("keeps a route's sockets under their last handlers when a reload removes it", function()
    local dir = h.tmpdir()
    local src = h.read_file(APP)
    h.write_file(dir .. "/app.lua", src)
    local server = start({ script = dir .. "/app.lua" })
    local ws = assert(wsc.connect(server.addr.web, "/count"))
    ws:send("a")
    assert.equal("v1 1 a", (ws:message()))
    h.write_file(dir .. "/app.lua", (src:gsub('router:websocket%("/count"', 'router:websocket("/gone"')
      :gsub('VERSION = "v1"', 'VERSION = "v2"')))
    server:signal("HUP")
    server:wait_log("msg=reloaded trigger=SIGHUP version=2")
    ws:send("b")
    assert.equal("v1 2 b", (ws:message()))
    assert.is_nil((wsc.connect(server.addr.web, "/count")))
    ws:close()
    local rc = server:stop()
    assert.equal(0, rc, server:log())
  end)
end)

describe("websocket topics across workers", function()
  after_each(function() h.cleanup() end)

  it("reaches subscribers of every worker", function()
    local server = start({ args = { "--workers", "2" } })
    server:wait_log('msg="worker ready" id=2')
    local subs, workers = {}, {}
    for i = 1, 16 do subs[i] = assert(wsc.connect(server.addr.web, "/wsub/w")) end
    for i = 1, 16 do workers[assert((subs[i]:message()))] = true end
    -- SO_REUSEPORT spreads 16 connections over both (all on one: 2^-15)
    assert.same({ ["worker 1"] = true, ["worker 2"] = true }, workers)
    local pub = assert(wsc.connect(server.addr.web, "/pub"))
    pub:send("w across")
    assert.matches("^delivered %d+$", (pub:message()))
    for i = 1, 16 do assert.equal("across", (subs[i]:message())) end
    local rc = server:stop()
    assert.equal(0, rc, server:log())
  end)
end)
