-- HTTP/1.1 with independent clients: curl for what browsers and tools do,
-- raw sockets for pipelining, limits and malformed input.
local h = require("helper")

local function curl(args)
  local cmd = "curl -s --max-time 5 " .. args .. " 2>&1"
  local p = assert(io.popen(cmd))
  local out = p:read("a")
  p:close()
  return out
end

-- Reads a response's status and headers (lowercased), not its body.
local function read_head(c)
  local status_line = assert(c:receive("*l"))
  local headers = {}
  while true do
    local l = assert(c:receive("*l"))
    if l == "" then break end
    local k, v = l:match("^([^:]+):%s*(.*)$")
    headers[k:lower()] = v
  end
  return tonumber(status_line:match("^HTTP/1%.1 (%d%d%d) ")), headers
end

-- Reads one response from a raw socket: status, headers (lowercased),
-- body (by Content-Length or chunked).
local function read_response(c)
  local status, headers = read_head(c)
  local body = ""
  if headers["content-length"] then
    local n = tonumber(headers["content-length"])
    body = n > 0 and h.receive(c, n) or ""
  elseif headers["transfer-encoding"] == "chunked" then
    local parts = {}
    while true do
      local size = tonumber(assert(c:receive("*l")), 16)
      if size == 0 then assert(c:receive("*l")); break end
      parts[#parts + 1] = h.receive(c, size)
      assert(c:receive("*l"))
    end
    body = table.concat(parts)
  end
  return status, headers, body
end

-- Bytes the server has read on the service `web`, from `lunet stats`.
local function bytes_in(server)
  local code, out = h.run({ "stats", "--json", "--pid", tostring(server.pid) })
  assert.equal(0, code)
  for _, svc in ipairs(require("cjson").decode(out).services) do
    if svc.name == "web" then return svc.bytes_in end
  end
end

local function closed(c)
  local data, err = c:receive(1)
  return data == nil and err == "closed"
end

describe("http", function()
  local server, base, addr
  setup(function()
    server = h.start(h.SCRIPTS .. "/http_cases.lua", { services = { "web" } })
    addr = server.addr.web
    base = "http://" .. addr
  end)
  teardown(function()
    assert.equal(0, server:stop())
    h.cleanup()
  end)

  describe("with curl", function()
    it("GET, with Date, Server and a correct Content-Length", function()
      local out = curl("-i " .. base .. "/hello")
      assert.matches("^HTTP/1%.1 200 OK\r\n", out)
      assert.matches("\r\nServer: lunet\r\n", out)
      assert.matches("\r\nDate: %a%a%a, %d%d %a%a%a %d%d%d%d %d%d:%d%d:%d%d GMT\r\n", out)
      assert.matches("\r\nContent%-Length: 5\r\n", out)
      assert.matches("\r\n\r\nhello$", out)
    end)

    it("HEAD has the GET's length and no body", function()
      local out = curl("-I " .. base .. "/hello")
      assert.matches("^HTTP/1%.1 200 OK\r\n", out)
      assert.matches("Content%-Length: 5\r\n", out)
      assert.matches("\r\n\r\n$", out)
    end)

    it("POSTs JSON and a chunked upload", function()
      assert.equal('{"a":1}', curl("-d '{\"a\":1}' " .. base .. "/echo"))
      local body = string.rep("z", 700)
      assert.equal(body, curl("-H 'Transfer-Encoding: chunked' --data-binary '"
        .. body .. "' " .. base .. "/echo"))
    end)

    it("reuses one connection for two URLs", function()
      local out = curl("-v " .. base .. "/hello " .. base .. "/hello")
      assert.matches("Re%-using existing connection", out)
      local _, n = out:gsub("< HTTP/1%.1 200 OK", "")
      assert.equal(2, n)
    end)

    it("answers 404, and 405 with Allow", function()
      assert.matches("^HTTP/1%.1 404 Not Found", curl("-i " .. base .. "/nope"))
      local out = curl("-i -X DELETE " .. base .. "/hello")
      assert.matches("^HTTP/1%.1 405 Method Not Allowed", out)
      assert.matches("\r\nAllow: GET, HEAD\r\n", out)
    end)

    it("decodes the query and looks headers up case-insensitively", function()
      assert.equal("a=1&b=x y&c=", curl("'" .. base .. "/query?b=x%20y&a=1&c'"))
      assert.equal("hi|1, 2", curl("-H 'x-test: hi' -H 'X-Multi: 1' -H 'X-Multi: 2' "
        .. base .. "/headers"))
    end)

    it("serves JSON, streams chunked, answers later", function()
      local out = curl("-i " .. base .. "/json")
      assert.matches("Content%-Type: application/json", out)
      assert.matches('{"ok":true,"n":3}$', out:gsub('{"n":3,"ok":true}', '{"ok":true,"n":3}'))
      out = curl("-i " .. base .. "/stream")
      assert.matches("Transfer%-Encoding: chunked", out)
      assert.matches("X%-Stream: yes", out)
      assert.matches("part1,part2" .. string.rep("z", 5000) .. string.rep("y", 40000) .. "$", out)
      assert.equal("late answer", curl(base .. "/later"))
      assert.equal("127.0.0.1", curl(base .. "/peer"):match("^[%d.]+"))
    end)
  end)

  describe("with raw sockets", function()
    it("sends a response with a head of several KiB intact", function()
      local c = h.connect(addr)
      assert(c:send("GET /many HTTP/1.1\r\nHost: x\r\n\r\n"))
      local status, headers, body = read_response(c)
      assert.equal(200, status)
      for i = 1, 40 do assert.equal(string.rep("v", 60), headers["x-many-" .. i]) end
      for i = 1, 20 do assert.equal(string.rep("e", 60), headers["x-extra-" .. i]) end
      assert.equal(string.rep("b", 3000), body)
      c:close()
    end)

    it("answers 10 pipelined requests in order", function()
      local c = h.connect(addr)
      local batch = {}
      for i = 1, 10 do
        batch[i] = "GET /query?i=" .. i .. " HTTP/1.1\r\nHost: x\r\n\r\n"
      end
      assert(c:send(table.concat(batch)))
      for i = 1, 10 do
        local status, _, body = read_response(c)
        assert.equal(200, status)
        assert.equal("i=" .. i, body)
      end
      c:close()
    end)

    it("speaks HTTP/1.0: closes unless asked to keep alive", function()
      local c = h.connect(addr)
      assert(c:send("GET /hello HTTP/1.0\r\n\r\n"))
      local status, headers = read_response(c)
      assert.equal(200, status)
      assert.equal("close", headers.connection)
      assert.is_true(closed(c))
      c = h.connect(addr)
      assert(c:send("GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"))
      status, headers = read_response(c)
      assert.equal("keep-alive", headers.connection)
      assert(c:send("GET /hello HTTP/1.0\r\n\r\n"))
      assert.equal(200, (read_response(c)))
      c:close()
      -- A streamed answer to HTTP/1.0 is delimited by the close.
      c = h.connect(addr)
      assert(c:send("GET /stream HTTP/1.0\r\n\r\n"))
      local all = c:receive("*a")
      assert.matches("^HTTP/1.1 200 OK\r\n", all)
      assert.is_nil(all:match("Transfer%-Encoding"))
      assert.equal("part1,part2" .. string.rep("z", 5000) .. string.rep("y", 40000),
        all:match("\r\n\r\n(.*)$"))
      c:close()
    end)

    it("answers Expect: 100-continue before the body", function()
      local c = h.connect(addr)
      assert(c:send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n"
        .. "Expect: 100-continue\r\n\r\n"))
      assert.equal("HTTP/1.1 100 Continue", c:receive("*l"))
      assert.equal("", c:receive("*l"))
      assert(c:send("ping"))
      local status, _, body = read_response(c)
      assert.equal(200, status)
      assert.equal("ping", body)
      c:close()
    end)

    it("gives a 500 for a handler error and keeps the connection", function()
      local c = h.connect(addr)
      assert(c:send("GET /boom HTTP/1.1\r\nHost: x\r\n\r\n"))
      local status, _, body = read_response(c)
      assert.equal(500, status)
      assert.equal("Internal Server Error\n", body)
      assert(c:send("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"))
      assert.equal(200, (read_response(c)))
      server:wait_log('msg="handler error" service=web handler=handler')
      assert.matches("http_cases%.lua:19: handler exploded", server:log())
      c:close()
    end)

    -- A header value is a Lua string with a length: a NUL (or any control
    -- byte but HTAB) refuses the response; it is never cut short.
    local refused = {
      { "/echo-header?v=a%00b", "X%-Echo", "0x00" },
      { "/bad-header/nul", "X%-Nul", "0x00" },
      { "/bad-header/soh", "X%-Soh", "0x01" },
      { "/bad-header/del", "X%-Del", "0x7f" },
      { "/bad-header/json", "X%-Json", "0x00" },
    }
    it("refuses a NUL, 0x01 or 0x7f in a header value with a 500 naming it", function()
      local c = h.connect(addr)
      for _, case in ipairs(refused) do
        assert(c:send("GET " .. case[1] .. " HTTP/1.1\r\nHost: x\r\n\r\n"))
        local status, headers, body = read_response(c)
        assert.equal(500, status)
        assert.equal("Internal Server Error\n", body)
        assert.is_nil(headers[case[2]:gsub("%%", ""):lower()])
        server:wait_log("invalid value for header '" .. case[2]
          .. "' %(control byte " .. case[3] .. " at offset 1%)")
      end
      -- The same connection goes on, and answers a clean value whole.
      assert(c:send("GET /echo-header?v=a%20b HTTP/1.1\r\nHost: x\r\n\r\n"))
      local status, headers, body = read_response(c)
      assert.equal(200, status)
      assert.equal("a b", headers["x-echo"])
      assert.equal("echoed", body)
      c:close()
    end)

    it("refuses a header name with a NUL, shown escaped", function()
      local c = h.connect(addr)
      assert(c:send("GET /bad-header/name HTTP/1.1\r\nHost: x\r\n\r\n"))
      assert.equal(500, (read_response(c)))
      server:wait_log("invalid header name 'X%-N\\\\x00ame'")
      assert(c:send("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"))
      assert.equal(200, (read_response(c)))
      c:close()
    end)

    it("keeps HTAB and obs-text in a header value and a NUL in a body", function()
      local c = h.connect(addr)
      assert(c:send("GET /tab-header HTTP/1.1\r\nHost: x\r\n\r\n"))
      local status, headers = read_response(c)
      assert.equal(200, status)
      assert.equal("a\tb", headers["x-tab"])
      assert.equal("caf\xc3\xa9 \t end", headers["x-obs"])
      assert(c:send("GET /nul-body HTTP/1.1\r\nHost: x\r\n\r\n"))
      local body
      status, headers, body = read_response(c)
      assert.equal(200, status)
      assert.equal("6", headers["content-length"])
      assert.equal("x\0y\0\0z", body)
      c:close()
    end)

    it("raises on a second answer, returns nil, 'closed' once the client left", function()
      assert.equal("one", curl(base .. "/double"))
      server:wait_log('msg=double err="[^"]*the response was already sent" ok=false')
      local c = h.connect(addr)
      assert(c:send("GET /gone HTTP/1.1\r\nHost: x\r\n\r\n"))
      h.sleep(0.05)
      c:close()
      server:wait_log("msg=gone err=closed ok=nil")
    end)

    it("answers 504 when a handler never answers", function()
      local c = h.connect(addr, 5)
      assert(c:send("GET /never HTTP/1.1\r\nHost: x\r\n\r\n"))
      assert.equal(504, (read_response(c)))
      assert.is_true(closed(c))
    end)

    local bad = {
      { "a malformed request line", "GARBAGE\r\n\r\n", 400 },
      { "conflicting Content-Length and Transfer-Encoding",
        "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400 },
      { "two different Content-Lengths",
        "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", 400 },
      { "a bad chunk size",
        "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n", 400 },
      { "an obs-fold header",
        "GET /hello HTTP/1.1\r\nHost: x\r\nX-Long: a\r\n  b\r\n\r\n", 400 },
      { "a body over max_body",
        "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2000\r\n\r\n", 413 },
      { "a chunked body over max_body",
        "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n400\r\n"
        .. string.rep("a", 1024) .. "\r\n10\r\n" .. string.rep("b", 16) .. "\r\n0\r\n\r\n", 413 },
      { "headers over max_header_size",
        "GET /hello HTTP/1.1\r\nHost: x\r\nX-Big: " .. string.rep("h", 3000) .. "\r\n\r\n", 431 },
      { "a URI over max_url",
        "GET /" .. string.rep("u", 600) .. " HTTP/1.1\r\nHost: x\r\n\r\n", 414 },
    }
    for _, case in ipairs(bad) do
      it("rejects " .. case[1] .. " with " .. case[3] .. " and a close", function()
        local c = h.connect(addr)
        assert(c:send(case[2]))
        local status, headers = read_response(c)
        assert.equal(case[3], status)
        assert.equal("close", headers.connection)
        assert.is_true(closed(c))
      end)
    end

    it("parses a request that arrives one byte at a time", function()
      local c = h.connect(addr)
      c:setoption("tcp-nodelay", true)
      local req = "GET /headers HTTP/1.1\r\nHost: x\r\nX-Test: split\r\n\r\n"
      for i = 1, #req do
        assert(c:send(req:sub(i, i)))
        if i % 4 == 0 then h.sleep(0.001) end
      end
      local status, _, body = read_response(c)
      assert.equal(200, status)
      assert.equal("split|none", body)
      c:close()
    end)

    it("rejects obs-fold even when the continuation comes in a later read", function()
      local c = h.connect(addr)
      c:setoption("tcp-nodelay", true)
      local head = "GET /hello HTTP/1.1\r\nHost: x\r\nX-Long: a\r\n"
      local before = bytes_in(server)
      assert(c:send(head))
      -- A later read for sure: the server has counted the first part.
      h.wait_for(function() return bytes_in(server) >= before + #head end, 10,
        "the server to read the first part")
      assert(c:send(" b\r\n\r\n"))
      local status = read_response(c)
      assert.equal(400, status)
      assert.is_true(closed(c))
    end)

    it("answers a slowloris with 408 and a close", function()
      local c = h.connect(addr, 5)
      local t0 = h.now()
      assert(c:send("GET /hello HTTP/1.1\r\n"))
      for _ = 1, 10 do
        local ok = c:send("X-Slow: y\r\n")
        if not ok then break end
        h.sleep(0.3)
        if h.now() - t0 > 2.6 then break end
      end
      local status = read_response(c)
      assert.equal(408, status)
      assert.is_true(closed(c))
      assert.is_true(h.now() - t0 < 3.5)
    end)
  end)
end)

describe("the request object", function()
  local server, addr
  setup(function()
    server = h.start(h.SCRIPTS .. "/http_request.lua", { services = { "web" } })
    addr = server.addr.web
  end)
  teardown(function()
    assert.equal(0, server:stop())
    h.cleanup()
  end)

  local function get(c, path, extra, body)
    local req = (body and "POST " or "GET ") .. path .. " HTTP/1.1\r\nHost: x\r\n"
      .. (extra or "")
    if body then req = req .. "Content-Length: " .. #body .. "\r\n" end
    assert(c:send(req .. "\r\n" .. (body or "")))
    local status, _, text = read_response(c)
    assert.equal(200, status, text)
    return text
  end

  it("has every field, built when read", function()
    local c = h.connect(addr)
    local out = get(c, "/fields?a=1&b=x%20y", "X-Test: t\r\nCookie: c=1\r\n"
      .. "cookie: d=2\r\n", "the body")
    local f = {}
    for part in (out .. "|"):gmatch("([^|]*)|") do f[#f + 1] = part end
    assert.same({ "POST", "/fields", "/fields?a=1&b=x%20y", "1.1",
      "127.0.0.1:" .. select(2, c:getsockname()), "1", "x y", "t", "c=1; d=2",
      "the body", "nil" }, f)
    assert.equal("GET|/fields|/fields|1.1", get(c, "/fields"):match("^[^|]*|[^|]*|[^|]*|[^|]*"))
    c:close()
  end)

  it("keeps what a script sets, and a replaced path routes", function()
    local c = h.connect(addr)
    assert.equal("ann /new /old", get(c, "/old", "X-User: ann\r\n"))
    assert.equal("nil /new /new", get(c, "/new"))
    -- Route params join what a before hook put in req.params, or are all.
    assert.equal("7 t", get(c, "/item/7", "X-Tag: t\r\n"))
    assert.equal("8 nil", get(c, "/item/8"))
    -- The same where the Lua search routes (something to decode).
    assert.equal("a b t", get(c, "/item/a%20b", "X-Tag: t\r\n"))
    assert.equal("a b nil", get(c, "/item/a%20b"))
    c:close()
  end)

  it("still has its own data when read long after its response", function()
    local a, b = h.connect(addr), h.connect(addr)
    assert.equal("kept", get(a, "/keep/1?n=one", "X-Id: first\r\n", "body one"))
    -- Other requests, with other heads, reuse the parsing state meanwhile.
    for i = 1, 20 do
      local c = i % 2 == 0 and a or b
      get(c, "/fields?a=" .. i, "X-Id: other" .. i .. "\r\nX-Pad: "
        .. string.rep("p", i * 10) .. "\r\n", string.rep("z", i))
    end
    assert.equal("kept", get(b, "/keep/2?n=two", "X-Id: second\r\n", "body two"))
    assert.equal("POST /keep/1 1 first body one one\n"
      .. "POST /keep/2 2 second body two two", get(a, "/kept"))
    a:close()
    b:close()
  end)

  it("walks its fields with pairs, prints itself and rejects a stranger", function()
    local c = h.connect(addr)
    assert.equal("body,extra,headers,method,params,path,peer,query,url,user,version",
      get(c, "/pairs", "X-User: bo\r\n"))
    assert.equal("body,extra,headers,method,params,path,peer,query,url,version",
      get(c, "/pairs"))
    assert.equal("lunet.http.request: GET /misuse|false|"
      .. "bad argument #1 to '?' (lunet.http.request expected, got table)",
      get(c, "/misuse"))
    c:close()
  end)
end)

describe("http_hello and http_api examples", function()
  after_each(h.cleanup)

  it("serve hello, the api routes, JSON and echo", function()
    local hello = h.start(h.EXAMPLES .. "/http_hello.lua", {
      listen = { hello = "127.0.0.1:0" }, services = { "hello" } })
    assert.equal("Hello, World!", curl("http://" .. hello.addr.hello .. "/"))
    local api = h.start(h.EXAMPLES .. "/http_api.lua", {
      listen = { api = "127.0.0.1:0" }, services = { "api" } })
    local base = "http://" .. api.addr.api
    assert.equal("Hello, ann!", curl(base .. "/api/ann"))
    assert.matches('"status":"ok"', curl(base .. "/api/status"))
    assert.equal('{"x":[1,2]}', curl("-d '{\"x\":[1,2]}' " .. base .. "/api/echo"))
    assert.matches("^HTTP/1%.1 400", curl("-i -d 'nope' " .. base .. "/api/echo"))
    assert.equal(0, hello:stop())
    assert.equal(0, api:stop())
  end)
end)

describe("http connection limits", function()
  after_each(h.cleanup)

  it("closes after max_requests and after the keep-alive idle timeout", function()
    local server = h.start(h.SCRIPTS .. "/http_small.lua", { services = { "small" } })
    local c = h.connect(server.addr.small)
    for i = 1, 3 do
      assert(c:send("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
      local status, headers = read_response(c)
      assert.equal(200, status)
      assert.equal(i == 3 and "close" or nil, headers.connection)
    end
    assert.is_true(closed(c))
    local idle = h.connect(server.addr.small, 5)
    -- The server's idle timer starts between our send and our read of the
    -- response; on a busy machine they are far apart. Not closed before a
    -- second since the send, and soon after the second since the reply.
    local sent = h.now()
    assert(idle:send("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
    assert.equal(200, (read_response(idle)))
    local t0 = h.now()
    assert.is_true(closed(idle))
    local since_sent, waited = h.now() - sent, h.now() - t0
    assert.is_true(since_sent >= 0.9 and waited < 3,
      "closed " .. since_sent .. " s after the send, " .. waited .. " s after the reply")
    assert.equal(0, server:stop())
  end)
end)

describe("http reload under load", function()
  after_each(h.cleanup)

  it("swaps routes 20 times under wrk with zero errors", function()
    local dir = h.tmpdir()
    local source = h.read_file(h.EXAMPLES .. "/http_api.lua")
    h.write_file(dir .. "/api.lua", source)
    local server = h.start(dir .. "/api.lua", {
      listen = { api = "127.0.0.1:0" }, services = { "api" } })
    local url = "http://" .. server.addr.api .. "/api/load"
    -- wrk runs until the 20 reloads are done, however long a busy machine
    -- takes over them (a fixed -d4s could end first), then reports on
    -- SIGINT; `timeout` bounds it and passes the signal on.
    local wrk = assert(io.popen("sh -c " .. h.quote("echo $$; exec timeout 90 wrk -t1 -c20 -d90s "
      .. url .. " 2>&1")))
    local wrk_pid = assert(tonumber(wrk:read("l")))
    local ok, err = pcall(function()
      h.wait_for(function()
        local code, out = h.run({ "stats", "--json", "--pid", tostring(server.pid) })
        return code == 0 and require("cjson").decode(out).services[1].messages > 0
      end, 20, "wrk's first requests")
      for i = 1, 20 do
        -- Each version answers with its own greeting.
        h.write_file(dir .. "/api.lua", (source:gsub('"Hello, "', '"Hello v' .. i .. ', "')))
        local code = h.run({ "reload", "--pid", tostring(server.pid) })
        assert.equal(0, code)
        h.sleep(0.1)
      end
    end)
    os.execute("kill -INT " .. wrk_pid)
    local out = wrk:read("a")
    wrk:close()
    assert(ok, err)
    assert.matches("Requests/sec", out)
    assert.is_nil(out:match("Non%-2xx"), out)
    assert.is_nil(out:match("Socket errors"), out)
    -- Another thread writes the log: wait for the 20th line, not longer.
    local function reloads() return select(2, server:log():gsub("msg=reloaded", "")) end
    h.wait_for(function() return reloads() >= 20 end, 10, "20 reload lines")
    assert.equal(20, reloads())
    assert.equal("Hello v20, load!", (require("socket.http").request(url)))
    assert.equal(0, server:stop())
  end)
end)

describe("lunet.router inside lunet", function()
  it("matches every path in C exactly as its Lua twin does", function()
    local code, out = h.run({ "run", h.SCRIPTS .. "/router_core.lua" })
    assert.equal("checked 32 paths, 0 differ\n", out)
    assert.equal(0, code)
  end)

  it("routes a request in C as its Lua twin does, or leaves it to Lua",
    function()
      local server = h.start(h.SCRIPTS .. "/router_resolve.lua",
        { services = { "web" } })
      finally(function() server:stop() end)
      -- method, target, who decides, what a route was found, with params
      local cases = {
        { "GET", "/", "c", "^/ " }, { "GET", "/users", "c", "^/users " },
        { "GET", "/users/", "c", "^/users " },
        { "GET", "/users/me", "c", "^/users/me " },
        { "GET", "/users/42", "c", "{id=42}" },
        { "GET", "/users/42?id=7&x=1", "c", "{id=42}" },
        { "GET", "/users/42/posts/7", "c", "{id=42,post=7}" },
        { "GET", "/a/b/c", "c", "^/a/b/c " }, { "GET", "/a/z/c", "c", "{x=z}" },
        { "GET", "/api/ann", "c", "{name=ann}" },
        { "GET", "/api/status", "c", "^/api/status " },
        { "HEAD", "/users/7", "c", "^/users/:id .*{id=7}" },
        { "POST", "/users/7", "c", "^false " },
        { "POST", "/form/3", "c", "^POST /form .*{id=3}" },
        { "GET", "/form/3", "c", "^false " },
        { "GET", "/a/b/z", "c", "{y=z}" },
        -- left to the Lua search: backtracking, wildcards, decoding, "//"
        { "GET", "/users/me/posts/7", "lua", "{id=me,post=7}" },
        { "GET", "/a/b", "lua", "no route" },
        { "GET", "/files/a/b", "lua", "{path=a/b}" },
        { "GET", "/users/a%20b", "lua", "{id=a b}" },
        { "GET", "//users", "lua", "^/users " },
        { "GET", "/nope", "lua", "no route" },
        { "GET", "/api/ann/x", "lua", "no route" },
        { "GET", "http://example.com/users/7", "lua", "no route" },
        { "OPTIONS", "*", "lua", "no route" },
      }
      local c = h.connect(server.addr.web)
      for _, case in ipairs(cases) do
        local method, target, who, found = case[1], case[2], case[3], case[4]
        assert(c:send(method .. " " .. target .. " HTTP/1.1\r\nHost: x\r\n\r\n"))
        local status, headers = read_head(c)
        assert.equal(200, status)
        if method ~= "HEAD" then
          h.receive(c, tonumber(headers["content-length"]))
        end
        local body = headers["x-resolve"]
        local what = method .. " " .. target .. " -> " .. body
        assert.equal(who .. " same", body:match("^%a+ %a+"), what)
        assert.truthy(body:sub(#who + 7):find(found), what)
      end
      c:close()
      assert.equal(0, server:stop())
    end)
end)
