-- The lunet side of `scripts/bench ws` fanout: every /sub connection
-- subscribes to topic "t" when it opens, and every message a /pub
-- connection sends is published to "t", so each subscriber gets it; the
-- peers (bench/peers/ws-gorilla, bench/peers/ws-node.js) do the same
-- with a hub. The port is $PORT, or 0 for the kernel to pick (the
-- benchmark reads it from the "listening service=web" line).
local router = require("lunet.router").new()

router:websocket("/sub", {
  on_open = function(ws)
    ws:subscribe("t")
  end,
})

router:websocket("/pub", {
  on_message = function(ws, msg)
    lunet.publish("t", msg)
  end,
})

return { web = { http = "127.0.0.1:" .. (os.getenv("PORT") or "0"),
  handler = router } }
