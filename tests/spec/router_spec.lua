-- lunet.router without a server: fake req/res record what was sent.
local router_mod = require("lunet.router")

local function request(r, method, path)
  local req = { method = method, path = path, params = {}, headers = {} }
  local res = { sent = nil }
  function res:send(status, body, headers)
    self.sent = { status = status, body = body, headers = headers or {} }
  end
  r(req, res) -- a router is callable, as the runtime calls it
  return res.sent, req
end

describe("lunet.router", function()
  local r
  before_each(function()
    r = router_mod.new()
    r:get("/", function(_, res) res:send(200, "root") end)
    r:get("/users", function(_, res) res:send(200, "list") end)
    r:get("/users/me", function(_, res) res:send(200, "me") end)
    r:get("/users/:id", function(req, res) res:send(200, "user " .. req.params.id) end)
    r:put("/users/:id", function(req, res) res:send(204, "") end)
    r:get("/users/:id/posts/:post", function(req, res)
      res:send(200, req.params.id .. "/" .. req.params.post)
    end)
    r:get("/files/*path", function(req, res) res:send(200, "file " .. req.params.path) end)
    r:post("/echo", function(req, res) res:send(200, "posted") end)
  end)

  it("matches static paths, including the root", function()
    assert.equal("root", request(r, "GET", "/").body)
    assert.equal("list", request(r, "GET", "/users").body)
    assert.equal("list", request(r, "GET", "/users/").body)
  end)

  it("fills params, percent-decoded", function()
    local sent, req = request(r, "GET", "/users/42")
    assert.equal("user 42", sent.body)
    assert.equal("42", req.params.id)
    assert.equal("user J\xc3\xb6rg", request(r, "GET", "/users/J%C3%B6rg").body)
    assert.equal("7/99", request(r, "GET", "/users/7/posts/99").body)
  end)

  it("prefers static over param", function()
    assert.equal("me", request(r, "GET", "/users/me").body)
  end)

  it("matches a trailing wildcard with the rest of the path", function()
    assert.equal("file a/b/c.txt", request(r, "GET", "/files/a/b/c.txt").body)
    assert.equal("file ", request(r, "GET", "/files").body)
  end)

  it("treats repeated slashes like one, and decodes only what is encoded", function()
    assert.equal("user 7", request(r, "GET", "/users//7").body)
    assert.equal("7/99", request(r, "GET", "//users/7/posts/99/").body)
    assert.equal("file a/b", request(r, "GET", "/files/a//b/").body)
    assert.equal("user a%b", request(r, "GET", "/users/a%25b").body)
    assert.equal("user a+b", request(r, "GET", "/users/a+b").body)
  end)

  it("matches only origin-form paths", function()
    assert.equal(404, request(r, "OPTIONS", "*").status)
    assert.equal(404, request(r, "GET", "http://example.com/users/7").status)
  end)

  it("answers 404 for unknown paths", function()
    assert.equal(404, request(r, "GET", "/nope").status)
    assert.equal(404, request(r, "GET", "/users/1/comments").status)
  end)

  it("answers 405 with Allow for a known path and another method", function()
    local sent = request(r, "DELETE", "/users/1")
    assert.equal(405, sent.status)
    assert.equal("GET, HEAD, PUT", sent.headers.Allow)
    assert.equal("POST", request(r, "GET", "/echo").headers.Allow)
  end)

  it("runs GET handlers for HEAD", function()
    assert.equal("user 3", request(r, "HEAD", "/users/3").body)
  end)

  it("runs before and after middleware; before may answer", function()
    local log = {}
    r:before(function(req, res)
      log[#log + 1] = "before " .. req.path
      if req.path == "/blocked" then res:send(403, "no"); return true end
    end)
    r:after(function(req) log[#log + 1] = "after " .. req.path end)
    assert.equal("list", request(r, "GET", "/users").body)
    assert.equal(403, request(r, "GET", "/blocked").status)
    assert.same({ "before /users", "after /users", "before /blocked" }, log)
  end)

  it("adds route params to those a before hook put in req.params", function()
    r:get("/items/:id", function(req, res)
      res:send(200, tostring(req.params.id) .. " " .. tostring(req.params.tag))
    end)
    r:before(function(req)
      if req.headers.tag then req.params = { tag = req.headers.tag } end
    end)
    local function get(headers)
      local req = { method = "GET", path = "/items/7", headers = headers }
      local res = {}
      function res:send(_, body) self.body = body end
      r(req, res)
      return res.body
    end
    assert.equal("7 t", get({ tag = "t" }))
    assert.equal("7 nil", get({}))
  end)

  it("rejects conflicting parameter names and misplaced wildcards", function()
    assert.has_error(function() r:get("/users/:name/x", function() end) end)
    assert.has_error(function() r:get("/a/*rest/b", function() end) end)
    assert.has_error(function() r:get("no-slash", function() end) end)
  end)

  it("looks up large route sets without scanning them", function()
    local big = router_mod.new()
    for i = 1, 5000 do
      big:get("/r" .. i .. "/:id", function(req, res) res:send(200, tostring(i)) end)
    end
    assert.equal("4321", request(big, "GET", "/r4321/x").body)
    local node = big:find("/r17/abc")
    assert.truthy(node)
  end)
end)
