-- The routes tests/e2e/clients/ws_conformance.py checks (see its header).
-- With WS_CONF_CERTS set (a directory holding cert.pem and key.pem) the
-- same router is served over TLS too, as service "wss".
local router = require("lunet.router").new()

local MIB = 1024 * 1024

local function echo(ws, msg, is_binary)
  ws:send(msg, is_binary and "binary" or nil)
end

router:websocket("/echo", { on_message = echo, max_message = MIB })
router:websocket("/big", { on_message = echo, max_message = 16 * MIB })
router:websocket("/origins", {
  origins = { "https://good.example" }, on_message = echo, max_message = MIB,
})
router:websocket("/proto", {
  subprotocols = { "chat.v2", "chat.v1" },
  on_open = function(ws) ws:send(ws.protocol or "none") end,
  on_message = echo,
})
router:websocket("/close", { on_open = function(ws) ws:close(4000, "bye") end })

local services = { web = { http = "127.0.0.1:0", handler = router } }
local certs = os.getenv("WS_CONF_CERTS")
if certs then
  services.wss = {
    http = "127.0.0.1:0",
    tls = { cert = certs .. "/cert.pem", key = certs .. "/key.pem" },
    handler = router,
  }
end
return services
