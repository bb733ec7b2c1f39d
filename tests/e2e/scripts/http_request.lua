-- The request object: every field, fields a script sets or replaces, and
-- a request kept after its response still holding its own data.
local router = require("lunet.router").new()

local kept = {} -- requests kept by /keep, read later by /kept

router:before(function(req)
  req.user = req.headers["x-user"]
  if req.path == "/old" then req.path = "/new" end
  -- A before hook that adds to params: the route's params join them.
  if req.headers["x-tag"] then req.params.tag = req.headers["x-tag"] end
end)

router:get("/item/:id", function(req, res)
  res:send(200, tostring(req.params.id) .. " " .. tostring(req.params.tag))
end)

router:route({ "GET", "POST" }, "/fields", function(req, res)
  local h = req.headers
  local fields = { req.method, req.path, req.url, req.version, req.peer,
    req.query.a, req.query.b, h["X-TEST"], h.cookie, req.body,
    next(req.params) }
  for i = 1, 11 do fields[i] = tostring(fields[i]) end
  res:send(200, table.concat(fields, "|"))
end)

router:get("/new", function(req, res)
  res:send(200, tostring(req.user) .. " " .. req.path .. " " .. req.url)
end)

router:post("/keep/:id", function(req, res)
  kept[#kept + 1] = req -- nothing read yet: all of it is read later
  res:send(200, "kept")
end)

router:get("/kept", function(req, res)
  local out = {}
  for i, k in ipairs(kept) do
    out[i] = table.concat({ k.method, k.path, k.params.id, k.headers["x-id"],
      k.body, k.query.n }, " ")
  end
  res:send(200, table.concat(out, "\n"))
end)

router:get("/pairs", function(req, res)
  req.extra = 1
  local keys = {}
  for k in pairs(req) do keys[#keys + 1] = k end
  table.sort(keys)
  res:send(200, table.concat(keys, ","))
end)

router:get("/misuse", function(req, res)
  local index = debug.getmetatable(req).__index
  local ok, err = pcall(index, {}, "path")
  res:send(200, tostring(req) .. "|" .. tostring(ok) .. "|" .. tostring(err))
end)

return { web = { http = "127.0.0.1:0", handler = router } }
