-- RFC 6455 conformance: our own port of the Autobahn case groups that
-- apply (clients/ws_conformance.py, raw sockets) against lunet's server
-- over ws:// and wss://, and lunet.websocket.connect against scripted
-- raw servers (clients/ws_raw_server.py) that misbehave on purpose.
local h = require("helper")

local PY = "/usr/bin/python3"
local CLIENTS = h.SOURCE .. "/tests/e2e/clients/"
local SCRIPT = h.SOURCE .. "/tests/e2e/scripts/ws_conformance.lua"
local PROBE = h.SOURCE .. "/tests/e2e/scripts/ws_client_probe.lua"

local sh = h.sh

describe("websocket conformance of the server", function()
  local certs, server
  setup(function()
    certs = h.tmpdir()
    local out, code = sh("bash " .. h.quote(h.SOURCE .. "/tests/e2e/tls_certs.sh") .. " " .. h.quote(certs))
    assert(code == 0, "tls_certs.sh failed:\n" .. out)
    server = h.start(SCRIPT, { services = { "web", "wss" }, env = { WS_CONF_CERTS = certs } })
  end)
  teardown(function()
    assert.equal(0, server:stop())
    h.cleanup()
  end)

  it("passes every case over ws://", function()
    local out, code = sh("timeout 170 " .. PY .. " " .. CLIENTS .. "ws_conformance.py --url ws://"
      .. server.addr.web)
    assert(code == 0, out)
    assert.matches("160 passed, 0 failed", out)
  end)

  it("passes every case over wss://", function()
    local out, code = sh("timeout 170 " .. PY .. " " .. CLIENTS .. "ws_conformance.py --url wss://localhost:"
      .. server.addr.wss:match(":(%d+)$") .. " --cafile " .. certs .. "/ca.pem")
    assert(code == 0, out)
    assert.matches("160 passed, 0 failed", out)
  end)
end)

-- One raw server per scenario; the probe's events on stdout, the
-- server's view of the client in its SEEN lines.
local function against(scenario)
  local port_file = os.tmpname()
  local log = os.tmpname()
  local pipe = assert(io.popen(string.format("%s %sws_raw_server.py --port 0 --scenario %s 2>%s & echo $!",
    PY, CLIENTS, scenario, log)))
  local pid = assert(tonumber(pipe:read("l")))
  local port = h.wait_for(function() return pipe:read("l"):match("^PORT (%d+)") end, 10, "PORT line")
  local code, out = h.run({ "run", PROBE, "--", "ws://127.0.0.1:" .. port .. "/x" }, { timeout = 20 })
  os.execute("kill " .. pid .. " 2>/dev/null")
  pipe:close()
  local seen = h.read_file(log) or ""
  os.remove(log)
  os.remove(port_file)
  return out, seen, code
end

describe("websocket conformance of lunet.websocket.connect", function()
  after_each(function() h.cleanup() end)

  it("echoes through a well-behaved server, masking every frame", function()
    local out, seen = against("echo")
    assert.matches("OPEN nil websocket", out)
    assert.matches("MESSAGE text 5 hello", out)
    assert.matches("MESSAGE binary 80000", out)
    assert.matches("CLOSE 1000", out)
    assert.matches("SEEN request GET /x version=13 key_ok=1", seen)
    assert.not_matches("masked=0", seen)
    assert.matches("SEEN frame op=ping fin=1 rsv=0 masked=1", seen)
    assert.matches("SEEN close code=1000", seen)
  end)

  for _, case in ipairs({
    { "masked_frame", "CLOSE 1002", "SEEN close code=1002" },
    { "rsv1", "CLOSE 1002", "SEEN close code=1002" },
    { "bad_utf8", "CLOSE 1007", "SEEN close code=1007" },
    { "close_4001", "CLOSE 4001 server bye", "SEEN close code=4001" },
    { "bad_accept", "CLOSE 1006 websocket handshake: bad Sec%-WebSocket%-Accept", nil },
    { "no_upgrade", "CLOSE 1006 websocket handshake: the server did not answer 101", nil },
    { "silent", "CLOSE 1006 websocket handshake: timed out", nil },
  }) do
    it("handles a server that does " .. case[1], function()
      local out, seen = against(case[1])
      assert.matches(case[2], out)
      if case[3] then assert.matches(case[3], seen) end
    end)
  end

  it("negotiates permessage-deflate with Python's websockets server", function()
    local server = [[
import asyncio, sys, websockets
async def echo(ws):
    async for m in ws:
        await ws.send(m)
async def main():
    async with websockets.serve(echo, "127.0.0.1", 0, compression="deflate") as s:
        print("PORT", s.sockets[0].getsockname()[1], flush=True)
        await asyncio.sleep(30)
asyncio.run(main())
]]
    local pipe = assert(io.popen(PY .. " -c " .. h.quote(server) .. " 2>/dev/null & echo $!"))
    local pid = assert(tonumber(pipe:read("l")))
    local port = h.wait_for(function() return pipe:read("l"):match("^PORT (%d+)") end, 10, "PORT line")
    local code, out = h.run({ "run", PROBE, "--", "ws://127.0.0.1:" .. port .. "/", "-", "compress" },
      { timeout = 20 })
    os.execute("kill " .. pid .. " 2>/dev/null")
    pipe:close()
    assert.equal(0, code, out)
    assert.matches("OPEN nil websocket permessage%-deflate", out)
    assert.matches("MESSAGE text 5 hello", out)
    assert.matches("MESSAGE binary 80000", out)
    assert.matches("CLOSE 1000", out)
  end)

  it("reassembles a fragmented message, answers a ping with its payload, takes 1 MiB", function()
    local out = against("fragmented")
    assert.matches("MESSAGE text 16 fragmented hello", out)
    local _, seen = against("ping")
    assert.matches("SEEN pong match=1", seen)
    out = against("big")
    assert.matches("MESSAGE binary 1048576", out)
  end)
end)
