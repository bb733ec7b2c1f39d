-- The lunet side of `scripts/bench ws` echo and idle: /echo sends every
-- message back as it came, text as text, binary as binary, like the
-- peers (bench/peers/ws-gorilla, bench/peers/ws-node.js). The port is
-- $PORT, or 0 for the kernel to pick (the benchmark reads it from the
-- "listening service=web" line); everything else is lunet's default.
local router = require("lunet.router").new()

router:websocket("/echo", {
  on_message = function(ws, msg, is_binary)
    ws:send(msg, is_binary and "binary" or nil)
  end,
})

return { web = { http = "127.0.0.1:" .. (os.getenv("PORT") or "0"),
  handler = router } }
