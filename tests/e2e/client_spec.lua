local h = require("helper")
local socket = require("socket")

describe("publish/subscribe", function()
  it("delivers in subscription order, isolates failures, unsubscribes", function()
    local code, _, log = h.run({ "run", h.SCRIPTS .. "/pubsub.lua" })
    assert.equal(0, code, log)
    local line = assert(log:match('msg="pubsub done"[^\n]*'), log)
    assert.matches('seen="?a=news:1,b=news:1,a=news:2,b=news:2,b=news:3,once=once:first"?', line)
    assert.matches("counts=2,1,1,0", line)
    assert.matches("table_refused=true", line)
    assert.matches("pubsub%.lua:10: subscriber b fails on 2", log)
  end)
end)

-- A listener whose accept queue is full drops further SYNs, so a connect to
-- it hangs: the one way to see a connect time out on loopback.
local function unanswering_listener()
  local srv = assert(socket.bind("127.0.0.1", 0, 1))
  local _, port = srv:getsockname()
  local fillers = {}
  for i = 1, 8 do
    local c = socket.tcp()
    c:settimeout(0)
    c:connect("127.0.0.1", port)
    fillers[i] = c
  end
  socket.sleep(0.1)
  return srv, port, fillers
end

describe("lunet.connect", function()
  after_each(h.cleanup)

  it("connects, frames, closes with a reason, and times out", function()
    local srv, silent_port, fillers = unanswering_listener()
    -- A free port for the script's own server.
    local probe = assert(socket.bind("127.0.0.1", 0))
    local _, port = probe:getsockname()
    probe:close()
    local code, _, log = h.run({ "run", h.SCRIPTS .. "/connect.lua", "--",
      "127.0.0.1:" .. silent_port, tostring(port) }, { timeout = 20 })
    srv:close()
    for _, c in ipairs(fillers) do c:close() end
    assert.equal(0, code, log)
    local line = assert(log:match('msg="connect done"[^\n]*'), log)
    assert.matches("reply=pong:ping", line)
    assert.matches("close_reason=closed", line)
    assert.matches("early_write=nil/connecting", line)
    assert.matches("abort=closed", line)
    assert.matches("timeout=ETIMEDOUT", line)
    assert.matches("timeout_ok=true", line)
  end)
end)
