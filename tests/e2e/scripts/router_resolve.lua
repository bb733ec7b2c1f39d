-- Every request is routed twice: by lunet.router_core's resolve, in C on
-- the request object itself, and by router.lua's Lua resolution of its
-- method and path. The answer says which decided ("c", or "lua" when C
-- left it) and whether the two agree: "c same", or "lua differ: ...",
-- in the X-Resolve header (a HEAD request gets no body) and the body.
local router_mod = require("lunet.router")
local core = require("lunet.router_core")

local r = router_mod.new()
local names = {} -- handler -> its route, to say which one was found
for _, route in ipairs({ "/", "/users", "/users/me", "/users/:id",
  "/users/:id/posts/:post", "/files/*path", "/echo", "/a/b/c", "/a/:x/c",
  "/a/b/:y", "/api/status", "/api/:name" }) do
  local function handler() end
  names[handler] = route
  r:get(route, handler)
end
local function post_only() end
names[post_only] = "POST /form"
r:post("/form/:id", post_only)

local function params_text(p)
  local keys = {}
  for k, v in pairs(p or {}) do keys[#keys + 1] = k .. "=" .. v end
  table.sort(keys)
  return table.concat(keys, ",")
end

local function describe(handler, node, params)
  if handler == nil then return "no route" end
  return string.format("%s %s {%s}", tostring(handler and names[handler]),
    tostring(node), params_text(params))
end

local function handler(req, res)
  local h1, n1 = core.resolve(r.root, req)
  local decided = h1 ~= nil and "c" or "lua"
  local h2, n2, p2 = router_mod._resolve_lua(r, req.method, req.path)
  local seen_c = describe(h1, n1, h1 and req.params or nil)
  local seen_lua = describe(h2, n2, h2 and (p2 or {}) or nil)
  local text = decided .. " same " .. seen_lua
  if h1 ~= nil and seen_c ~= seen_lua then
    text = decided .. " differ: C " .. seen_c .. ", Lua " .. seen_lua
  end
  res:send(200, text, { ["X-Resolve"] = text })
end

return { web = { http = "127.0.0.1:0", handler = handler } }
