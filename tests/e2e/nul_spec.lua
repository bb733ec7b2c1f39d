-- A NUL inside a Lua string that crosses into C is kept as a byte or
-- refused with a clear error: it never silently ends the string there.
-- (Response headers are covered in http_spec.)
local h = require("helper")

describe("a NUL byte from Lua", function()
  local server, addr
  setup(function()
    server = h.start(h.SCRIPTS .. "/nul_bytes.lua", { services = { "probe", "udp_echo" } })
    addr = server.addr.probe
  end)
  teardown(function()
    assert.equal(0, server:stop())
    h.cleanup()
  end)

  local cases = {
    { "udp_send", "^failed: EINVAL: invalid address '127%.0%.0%.1:9' %(a NUL "
      .. "byte at offset 11%)$" },
    { "udp_bind", "^raised: .*bind: not an address" },
    { "udp_join", "^failed: EINVAL: an address holds a NUL byte$" },
    { "connect", "^raised: bad argument #1 to 'lunet%.connect' %(expected" },
    { "subscribe", "^raised: bad argument #1 to 'lunet%.subscribe' %(topic "
      .. "contains a NUL byte%)$" },
    { "connections", "^raised: bad argument #1 to 'lunet%.connections' %(no "
      .. "such service%)$" },
    { "state", "^distinct$" },
    { "udp_field", "^nil string$" },
    { "conn_field", "^nil string$" },
    { "conn_set", "^raised: .*cannot set field 'data\\0x' of lunet%.conn$" },
  }
  for _, case in ipairs(cases) do
    it("in " .. case[1] .. " is refused or kept, never cut", function()
      local c = h.connect(addr)
      assert.matches(case[2], h.ask(c, case[1]))
      c:close()
    end)
  end

  it("in a framed message and in conn:write is a byte", function()
    local c = h.connect(addr)
    assert.equal("echo a\0b\0", h.ask(c, "echo a\0b\0"))
    c:close()
  end)

  it("in a datagram both ways is a byte", function()
    local u = h.udp(server.addr.udp_echo)
    assert(u:send("x\0y\0"))
    assert.equal("x\0y\0", (u:receive()))
    u:close()
  end)

  it("in a log message, key or value is logged escaped", function()
    local c = h.connect(addr)
    assert.equal("logged", h.ask(c, "log"))
    c:close()
    server:wait_log('msg="m\\u0000sg" k_ey="v\\u0000after" plain=p')
  end)

  it("in a handler error is logged whole", function()
    local c = h.connect(addr)
    assert(c:send("raise\n"))
    assert.is_nil((c:receive("*l")))
    c:close()
    server:wait_log('error="before\\u0000after\\nstack traceback:')
  end)
end)

describe("a NUL byte in a script's service table", function()
  local scripts = {
    { "a service name", 'return { ["web\\0x"] = { tcp = "127.0.0.1:0", '
      .. "on_data = function() end } }", "a service name holds a NUL byte" },
    { "an address", 'return { web = { tcp = "127.0.0.1:0\\0x", '
      .. "on_data = function() end } }", "'tcp' must be an address" },
    { "a field name", 'return { web = { tcp = "127.0.0.1:0", '
      .. '["on_data\\0"] = function() end } }',
      "field names must be strings %(without a NUL%)" },
    { "the metrics address", 'return { metrics = "127.0.0.1:0\\0x", web = '
      .. '{ tcp = "127.0.0.1:0", on_data = function() end } }',
      "'metrics' must be an address %(it holds a NUL byte%)" },
    { "a hook's name", 'return { ["on_reload\\0"] = function() end, web = '
      .. '{ tcp = "127.0.0.1:0", on_data = function() end } }',
      "a service name holds a NUL byte" },
    { "a module name", 'require("mod\\0x")\nreturn { web = { tcp = '
      .. '"127.0.0.1:0", on_data = function() end } }',
      "module 'mod': the name holds a NUL byte", "return {}" },
  }
  teardown(h.cleanup)
  for _, case in ipairs(scripts) do
    it("fails the check when it is in " .. case[1], function()
      local dir = h.tmpdir()
      local path = dir .. "/nul.lua"
      h.write_file(path, case[2])
      if case[4] then h.write_file(dir .. "/mod.lua", case[4]) end
      local code, out, err = h.run({ "check", path })
      assert.equal(1, code)
      assert.matches(case[3], out .. err)
    end)
  end
end)
