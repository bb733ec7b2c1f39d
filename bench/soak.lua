-- The soak target: every kind of service in one process, so one RSS
-- figure covers them all (scripts/soak).
local router = require("lunet.router").new()
router:get("/api/:name", function(req, res)
  res:send(200, "Hello, " .. req.params.name .. "!")
end)
router:post("/api/echo", function(req, res) res:send(200, req.body) end)

return {
  echo = {
    tcp = "127.0.0.1:0",
    on_data = function(conn, data) conn:write(data) end,
  },
  web = { http = "127.0.0.1:0", handler = router },
}
