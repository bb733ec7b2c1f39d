-- A framed echo and a small API, for counting what the metrics say.
local router = require("lunet.router").new()
router:get("/ok", function(req, res) res:send(200, "ok") end)
return {
  lines = {
    tcp = "127.0.0.1:0",
    framing = "line",
    on_message = function(conn, line) conn:write(line .. "\n") end,
  },
  api = { http = "127.0.0.1:0", handler = router },
  metrics = "127.0.0.1:0",
}
