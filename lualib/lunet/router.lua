-- lunet.router: HTTP routing for http services.
--
--   local router = require("lunet.router").new()
--   router:get("/api/:name", function(req, res)
--     res:send(200, "Hello, " .. req.params.name .. "!")
--   end)
--   return { api = { http = "0.0.0.0:8081", handler = router } }
--
-- Paths are matched segment by segment in a tree, so lookup costs the
-- number of segments, not the number of routes. A segment is static
-- ("users"), a parameter (":id", into req.params.id, percent-decoded), or,
-- last only, a wildcard ("*rest", the rest of the path). Static beats
-- parameter beats wildcard, with backtracking. A path with no route: 404;
-- a route without the method: 405 with Allow. HEAD runs the GET handler
-- (the runtime sends no body). Middleware: router:before(fn(req, res))
-- runs first and may answer (return true to stop); router:after(fn(req,
-- res)) runs once the handler returned.
local M = {}

local Router = {}
Router.__index = Router

local function new_node()
  return { static = {}, handlers = {} }
end

function M.new()
  return setmetatable({ root = new_node(), befores = {}, afters = {} },
    Router)
end

local function split(path)
  local segments = {}
  for seg in path:gmatch("[^/]+") do segments[#segments + 1] = seg end
  return segments
end

local function child_for(node, seg, is_last, path)
  local kind = seg:sub(1, 1)
  if kind == ":" then
    local name = seg:sub(2)
    assert(name ~= "", "empty parameter name in " .. path)
    if node.param and node.param.name ~= name then
      error(string.format("route %s: parameter :%s conflicts with :%s", path,
        name, node.param.name), 3)
    end
    node.param = node.param or { name = name, node = new_node() }
    return node.param.node
  elseif kind == "*" then
    if not is_last then error("route " .. path .. ": * must be last", 3) end
    node.wildcard = node.wildcard or { name = seg:sub(2), node = new_node() }
    return node.wildcard.node
  end
  node.static[seg] = node.static[seg] or new_node()
  return node.static[seg]
end

-- router:route(method, path, handler); method may be a list.
function Router:route(method, path, handler)
  assert(type(path) == "string" and path:sub(1, 1) == "/",
    "a route path starts with /")
  assert(type(handler) == "function" or getmetatable(handler),
    "a route needs a handler function")
  local node, segments = self.root, split(path)
  for i, seg in ipairs(segments) do
    node = child_for(node, seg, i == #segments, path)
  end
  for _, m in ipairs(type(method) == "table" and method or { method }) do
    node.handlers[m:upper()] = handler
  end
  return self
end

for _, m in ipairs({ "get", "post", "put", "delete", "patch", "options" }) do
  Router[m] = function(self, path, handler)
    return self:route(m:upper(), path, handler)
  end
end

function Router:before(fn) self.befores[#self.befores + 1] = fn; return self end
function Router:after(fn) self.afters[#self.afters + 1] = fn; return self end

local function decode(s)
  return (s:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

-- Depth-first with precedence; params are filled on the way back.
local function match(node, segments, i, params)
  if i > #segments then
    if next(node.handlers) then return node end
    local w = node.wildcard
    if w and next(w.node.handlers) then params[w.name] = ""; return w.node end
    return nil
  end
  local seg = segments[i]
  local static = node.static[seg]
  local found = static and match(static, segments, i + 1, params)
  if found then return found end
  local p = node.param
  if p then
    found = match(p.node, segments, i + 1, params)
    if found then params[p.name] = decode(seg); return found end
  end
  local w = node.wildcard
  if w and next(w.node.handlers) then
    params[w.name] = decode(table.concat(segments, "/", i))
    return w.node
  end
  return nil
end

-- The route for a path, and its params (nil when none matches).
function Router:find(path)
  local params = {}
  local node = match(self.root, split(path), 1, params)
  return node, params
end

local function allow_header(handlers)
  local methods = {}
  for m in pairs(handlers) do methods[#methods + 1] = m end
  if handlers.GET and not handlers.HEAD then methods[#methods + 1] = "HEAD" end
  table.sort(methods)
  return table.concat(methods, ", ")
end

function Router:dispatch(req, res)
  for _, fn in ipairs(self.befores) do
    if fn(req, res) then return end
  end
  local node, params = self:find(req.path)
  if not node then
    res:send(404, "Not Found\n")
  else
    local handler = node.handlers[req.method]
      or (req.method == "HEAD" and node.handlers.GET)
    if not handler then
      res:send(405, "Method Not Allowed\n", { Allow = allow_header(node.handlers) })
    else
      for k, v in pairs(params) do req.params[k] = v end
      handler(req, res)
    end
  end
  for _, fn in ipairs(self.afters) do fn(req, res) end
end

Router.__call = Router.dispatch

return M
