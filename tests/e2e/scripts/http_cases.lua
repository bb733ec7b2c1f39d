-- HTTP behaviours for the e2e spec, with small limits.
local router = require("lunet.router").new()

router:get("/hello", function(req, res) res:send(200, "hello") end)
router:post("/echo", function(req, res)
  res:send(200, req.body, { ["Content-Type"] = "application/octet-stream",
    ["X-Length"] = tostring(#req.body) })
end)
router:get("/query", function(req, res)
  local keys = {}
  for k, v in pairs(req.query) do keys[#keys + 1] = k .. "=" .. v end
  table.sort(keys)
  res:send(200, table.concat(keys, "&"))
end)
router:get("/headers", function(req, res)
  res:send(200, (req.headers["X-Test"] or "none") .. "|" ..
    (req.headers["x-multi"] or "none"))
end)
router:get("/boom", function() error("handler exploded") end)
router:get("/json", function(req, res) res:json(200, { ok = true, n = 3 }) end)
router:get("/stream", function(req, res)
  res:header("X-Stream", "yes")
  res:write("part1,")
  lunet.after(20, function()
    res:write("part2")
    res:write(string.rep("z", 5000)) -- a chunk larger than the stack buffer
    res:write(string.rep("y", 40000)) -- one queued as the string itself
    res:finish()
  end)
end)
router:get("/later", function(req, res)
  lunet.after(50, function() res:send(200, "late answer") end)
end)
router:get("/never", function() end)
router:get("/double", function(req, res)
  res:send(200, "one")
  local ok, err = pcall(res.send, res, 200, "two")
  lunet.log.info("double", { ok = tostring(ok), err = tostring(err) })
end)
router:get("/gone", function(req, res)
  lunet.after(300, function()
    local ok, err = res:send(200, "too late")
    lunet.log.info("gone", { ok = tostring(ok), err = tostring(err) })
  end)
end)
router:get("/peer", function(req, res) res:send(200, req.peer) end)
router:get("/many", function(req, res)
  -- A head of several KiB: the response buffer grows while headers go in.
  for i = 1, 40 do res:header("X-Many-" .. i, string.rep("v", 60)) end
  local extra = {}
  for i = 1, 20 do extra["X-Extra-" .. i] = string.rep("e", 60) end
  res:send(200, string.rep("b", 3000), extra)
end)
-- Header values are Lua strings with a length: a control byte other than
-- HTAB is refused (a 500 whose logged error names the header), never cut.
router:get("/echo-header", function(req, res)
  res:header("X-Echo", req.query.v)
  res:send(200, "echoed")
end)
router:get("/bad-header/:how", function(req, res)
  local how = req.params.how
  if how == "nul" then
    res:send(200, "x", { ["X-Nul"] = "p\0q" })
  elseif how == "soh" then
    res:header("X-Soh", "p\1q")
    res:send(200, "x")
  elseif how == "del" then
    res:header("X-Del", "p\127q")
    res:write("streamed")
    res:finish()
  elseif how == "name" then
    res:send(200, "x", { ["X-N\0ame"] = "v" })
  elseif how == "json" then
    res:json(200, { ok = true }, { ["X-Json"] = "a\0" })
  end
end)
router:get("/tab-header", function(req, res)
  res:header("X-Tab", "a\tb")
  res:send(200, "x", { ["X-Obs"] = "caf\xc3\xa9 \t end" })
end)
router:get("/nul-body", function(req, res)
  res:send(200, "x\0y\0\0z", { ["X-A"] = "plain" })
end)

return {
  web = {
    http = "127.0.0.1:0",
    handler = router,
    max_header_size = 2048,
    max_url = 512,
    max_body = 1024,
    header_timeout = 1,
    handler_timeout = 1,
    keepalive_timeout = 3,
  },
}
