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

local find, sub, char, tonumber = string.find, string.sub, string.char, tonumber

local Router = {}
Router.__index = Router

local function new_node()
  return { static = {}, handlers = {} }
end

function M.new()
  -- exact: routes without parameters by their path, looked up first
  return setmetatable({ root = new_node(), exact = {}, befores = {},
    afters = {} }, Router)
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
  if not find(path, "[:*]") then
    self.exact["/" .. table.concat(segments, "/")] = node
  end
  node.routed = true -- has handlers: tested without a call to next()
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

local function hex_char(h) return char(tonumber(h, 16)) end

local function decode(s)
  if not find(s, "%", 1, true) then return s end
  return (s:gsub("%%(%x%x)", hex_char))
end

-- The rest of a path from a wildcard on, as its segments joined by "/".
local function rest_of(path, from)
  local rest = sub(path, from)
  if find(rest, "//", 1, true) or sub(rest, -1) == "/" then
    rest = rest:gsub("/+", "/"):gsub("/$", "")
  end
  return decode(rest)
end

-- The next segment of path at or after pos: its first and last index.
local function segment(path, pos)
  return find(path, "[^/]+", pos)
end

-- The common case in one loop: static where there is one, else the
-- parameter. When that walk ends on a route it is the route the full
-- search below would find first (it tries the same branches in the same
-- order); when it does not, the full search runs. Only for origin-form
-- paths with nothing to decode (it sorts between "/" and "0": its first
-- byte is "/", tested without a call). Inside lunet the same function in
-- C runs instead (runtime/http/route.c): calls into C cost more than the rest
-- of a segment's work, and that one makes one call, not two a segment.
local function match_greedy(node, path)
  if not (path >= "/" and path < "0") or find(path, "%", 1, true) then
    return nil
  end
  local pos, last, params = 2, #path, nil
  while pos <= last do
    local slash = find(path, "/", pos, true) -- a plain find: half the cost
    local e = slash and slash - 1 or last
    if e < pos then return nil end -- "//": left to the full search
    local seg = sub(path, pos, e)
    local nxt = node.static[seg]
    if not nxt then
      local p = node.param
      if not p then return nil end
      if params then params[p.name] = seg else params = { [p.name] = seg } end
      nxt = p.node
    end
    node, pos = nxt, e + 2
  end
  if node.routed then return node, params end
  return nil
end

local core_ok, core = pcall(require, "lunet.router_core")
local greedy = core_ok and core.match_greedy or match_greedy
M._match_greedy_lua = match_greedy -- for the test that compares the two

-- Depth-first with precedence, reading the segments of `path` from `pos`
-- without splitting it into a table. Returns the node and the params,
-- made on the way back by the first parameter that matched (nil if none).
local function match(node, path, pos)
  local s, e = segment(path, pos)
  if not s then
    if node.routed then return node end
    local w = node.wildcard
    if w and w.node.routed then return w.node, { [w.name] = "" } end
    return nil
  end
  local seg = sub(path, s, e)
  local static = node.static[seg]
  if static then
    local found, params = match(static, path, e + 1)
    if found then return found, params end
  end
  local p = node.param
  if p then
    local found, params = match(p.node, path, e + 1)
    if found then
      params = params or {}
      params[p.name] = decode(seg)
      return found, params
    end
  end
  local w = node.wildcard
  if w and w.node.routed then
    return w.node, { [w.name] = rest_of(path, s) }
  end
  return nil
end

-- The route for a path and its params (nil when it has none).
local function route_of(self, path)
  local exact = self.exact[path]
  if exact then return exact end
  local node, params = greedy(self.root, path)
  if not node then node, params = match(self.root, path, 1) end
  return node, params
end

-- The route for a path, and its params (nil when no route matches; an
-- empty table when the route has none).
function Router:find(path)
  local node, params = route_of(self, path)
  return node, node and (params or {})
end

local function allow_header(handlers)
  local methods = {}
  for m in pairs(handlers) do methods[#methods + 1] = m end
  if handlers.GET and not handlers.HEAD then methods[#methods + 1] = "HEAD" end
  table.sort(methods)
  return table.concat(methods, ", ")
end

-- req.params may already exist (a before hook set it, or a lunet request
-- made it when it was read): add to it. (Inside lunet, router_core's
-- set_params does the same in one call.)
local function set_params_lua(req, params)
  local have = req.params
  if type(have) ~= "table" then
    req.params = params
  else
    for k, v in pairs(params) do have[k] = v end
  end
end
local set_params = core_ok and core.set_params or set_params_lua

-- The handler for a method and path, its route and the route's params:
-- handler false when the route lacks the method, all nil when no route.
local function resolve_lua(self, method, path)
  local node, params = route_of(self, path)
  if not node then return nil end
  local handler = node.handlers[method]
    or (method == "HEAD" and node.handlers.GET)
  return handler or false, node, params
end
M._resolve_lua = resolve_lua -- for the test that compares it with C's

-- Inside lunet, router_core's resolve routes a lunet request in one call
-- (params set), or leaves it to resolve_lua by returning nothing.
local resolve_c = core_ok and core.resolve or function() end

function Router:dispatch(req, res)
  local befores = self.befores
  for i = 1, #befores do
    if befores[i](req, res) then return end
  end
  local handler, node = resolve_c(self.root, req)
  if handler == nil then
    local params
    handler, node, params = resolve_lua(self, req.method, req.path)
    -- With no before hook nothing can have made req.params yet.
    if handler and params then
      if #befores == 0 then req.params = params else set_params(req, params) end
    end
  end
  if handler then
    handler(req, res)
  elseif node then
    res:send(405, "Method Not Allowed\n", { Allow = allow_header(node.handlers) })
  else
    res:send(404, "Not Found\n")
  end
  local afters = self.afters
  for i = 1, #afters do afters[i](req, res) end
end

-- router:websocket(path, handlers): a GET of path upgrades to a
-- websocket with these handlers (on_open, on_message, on_close, on_drain
-- and the limits: see README). After a reload, open sockets take the
-- handlers the new router has for their path (websocket_handlers).
function Router:websocket(path, handlers)
  assert(type(handlers) == "table", "router:websocket needs a handlers table")
  self:route("GET", path, function(_, res) res:websocket(handlers) end)
  local node = self:find(path)
  node.websocket = handlers
  return self
end

-- The websocket handlers of the route for path, or nil.
function Router:websocket_handlers(path)
  local node = route_of(self, path)
  return node and node.websocket
end

Router.__call = Router.dispatch

return M
