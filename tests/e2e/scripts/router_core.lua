-- Run by `lunet run` (a client script): the C matcher of lunet.router_core
-- must answer every path exactly as router.lua's Lua twin does. Prints
-- "checked N paths, D differ" and exits 1 if D > 0.
local router_mod = require("lunet.router")
local core = require("lunet.router_core")

local r = router_mod.new()
local function h() end
for _, route in ipairs({ "/", "/users", "/users/me", "/users/:id",
  "/users/:id/posts/:post", "/files/*path", "/echo", "/a/b/c", "/a/:x/c",
  "/a/b/:y", "/api/status", "/api/:name" }) do
  r:get(route, h)
end

local paths = { "/", "", "*", "users", "/users", "/users/", "//users",
  "/users/me", "/users/me/", "/users/42", "/users/42/posts/7",
  "/users/42/posts", "/users/42/posts/7/x", "/users//7", "/users/a%20b",
  "/files", "/files/a/b", "/echo", "/echo/x", "/a/b/c", "/a/z/c", "/a/b/z",
  "/a/b", "/api/status", "/api/ann", "/api/", "/nope", "/api/ann/x",
  "http://example.com/users/7", "/users/" .. string.rep("x", 300),
  "/\0/x", "/users/\xff" }

local function same(n1, p1, n2, p2)
  if n1 ~= n2 then return false end
  if (p1 == nil) ~= (p2 == nil) then return false end
  for k, v in pairs(p1 or {}) do if p2[k] ~= v then return false end end
  for k, v in pairs(p2 or {}) do if p1[k] ~= v then return false end end
  return true
end

local differ = 0
for _, path in ipairs(paths) do
  local n1, p1 = core.match_greedy(r.root, path)
  local n2, p2 = router_mod._match_greedy_lua(r.root, path)
  if not same(n1, p1, n2, p2) then
    differ = differ + 1
    print(string.format("differ: %q C=%s Lua=%s", path, tostring(n1), tostring(n2)))
  end
end
print(string.format("checked %d paths, %d differ", #paths, differ))
lunet.exit(differ == 0 and 0 or 1)
return {}
