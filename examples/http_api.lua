-- A small JSON API with the router.
--   lunet run examples/http_api.lua          (0.0.0.0:8081)
--   curl http://127.0.0.1:8081/api/ann                 -> Hello, ann!
--   curl http://127.0.0.1:8081/api/status              -> {"status":"ok",...}
--   curl -d '{"a":1}' http://127.0.0.1:8081/api/echo   -> {"a":1}
local json = require("cjson.safe")
local router = require("lunet.router").new()
local stats = lunet.state("http_api", { requests = 0 })

router:before(function(req)
  stats.requests = stats.requests + 1
end)

router:get("/api/status", function(req, res)
  res:json(200, { status = "ok", requests = stats.requests,
    time = os.time() })
end)

router:get("/api/:name", function(req, res)
  res:send(200, "Hello, " .. req.params.name .. "!")
end)

router:post("/api/echo", function(req, res)
  local value, err = json.decode(req.body)
  if value == nil then
    return res:json(400, { error = "invalid JSON: " .. tostring(err) })
  end
  res:json(200, value)
end)

return { api = { http = "0.0.0.0:8081", handler = router } }
