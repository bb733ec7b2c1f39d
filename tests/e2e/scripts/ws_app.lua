-- The websocket spec's server (tests/e2e/websocket_spec.lua). VERSION is
-- rewritten by the reload case; everything else is fixed.
local VERSION = "v1"
local router = require("lunet.router").new()

router:websocket("/echo", {
  max_message = 1 << 20,
  on_message = function(ws, msg, binary) ws:send(msg, binary and "binary" or nil) end,
})

router:websocket("/big", {
  max_message = 16 << 20,
  on_message = function(ws, msg, binary) ws:send(msg, binary and "binary" or nil) end,
})

router:websocket("/deflate", {
  compression = true,
  max_message = 16 << 20,
  on_message = function(ws, msg, binary) ws:send(msg, binary and "binary" or nil) end,
})

-- Every message is answered "VERSION n msg": n counts in ws.data, which a
-- reload must keep.
router:websocket("/count", {
  on_open = function(ws) ws.data.n = 0; ws:subscribe("all") end,
  on_message = function(ws, msg)
    ws.data.n = ws.data.n + 1
    ws:send(VERSION .. " " .. ws.data.n .. " " .. msg)
  end,
})

router:websocket("/origins", {
  origins = { "https://good.example" },
  on_open = function(ws) ws:send("welcome") end,
})

router:websocket("/proto", {
  subprotocols = { "chat.v2", "chat.v1" },
  on_open = function(ws) ws:send(ws.protocol or "none") end,
})

router:websocket("/sub/:topic", {
  on_open = function(ws, req)
    ws:subscribe(req.params.topic)
    ws:send("subscribed " .. lunet.topic_count(req.params.topic))
  end,
  on_close = function(ws, code, reason)
    lunet.log.info("sub closed", { path = ws.path, code = tostring(code), reason = reason })
  end,
})

-- Subscribed to "both" itself: each message is published, then answered
-- directly, so the published frame (corked for the turn) must come first.
router:websocket("/both", {
  on_open = function(ws) ws:subscribe("both") end,
  on_message = function(ws, msg)
    lunet.publish("both", "pub " .. msg)
    ws:send("direct " .. msg)
  end,
})

-- Subscribes and says nothing (what arrives is only what is published).
router:websocket("/quiet/:topic", {
  on_open = function(ws, req) ws:subscribe(req.params.topic) end,
})

-- As /sub/:topic, saying which worker holds the socket.
router:websocket("/wsub/:topic", {
  on_open = function(ws, req)
    ws:subscribe(req.params.topic)
    ws:send("worker " .. lunet.worker)
  end,
})

-- "topic message": published; answered with how many took it.
router:websocket("/pub", {
  on_message = function(ws, msg)
    local topic, body = msg:match("^(%S+) (.*)$")
    ws:send("delivered " .. lunet.publish(topic, body))
  end,
})

router:websocket("/fail", {
  on_message = function() error("boom") end,
  on_close = function(ws, code) lunet.log.info("fail closed", { code = tostring(code) }) end,
})

router:websocket("/ping", {
  ping_interval = 1,
  on_close = function(ws, code, reason)
    lunet.log.info("ping closed", { code = tostring(code), reason = reason })
  end,
})

-- "N": sends 64 KiB messages until ws:send says the queue is full
-- (at most N), then "drained" from on_drain.
router:websocket("/flood", {
  on_message = function(ws, msg)
    local chunk = string.rep("f", 65536)
    for i = 1, tonumber(msg) do
      if not ws:send(chunk) then
        ws.data.full_after = i
        lunet.log.info("flood full", { after = tostring(i) })
        return
      end
    end
    ws:send("never full")
  end,
  on_drain = function(ws) ws:send("drained after " .. ws.data.full_after) end,
})

-- Checks auth first: only ?token=yes is upgraded.
router:get("/auth", function(req, res)
  if req.query.token ~= "yes" then return res:send(401, "no\n") end
  res:websocket({ on_open = function(ws) ws:send("hello " .. ws.headers["x-name"]) end })
end)

-- "small" is the same router with a short write queue (the slow
-- consumer case); "web" keeps the default, so 16 MiB echoes fit.
return {
  metrics = "127.0.0.1:0",
  web = { http = "127.0.0.1:0", handler = router },
  small = { http = "127.0.0.1:0", handler = router,
    max_write_queue = 1 << 20, write_high_water = 256 << 10 },
}
