local h = require("helper")

describe("lunet check", function()
  it("accepts a good script", function()
    local code, out = h.run({ "check", h.EXAMPLES .. "/echo.lua" })
    assert.equal(0, code)
    assert.matches("echo%.lua: ok: echo %(tcp 0%.0%.0%.0:7000%)", out)
  end)

  local broken = {
    { "broken_syntax.lua", "broken_syntax%.lua:6: '%)' expected %(to close '%(' at line 5%)" },
    { "broken_runtime.lua", "broken_runtime%.lua:2: attempt to index a nil value" },
    { "broken_table.lua", "broken_table%.lua: service 'echo': unknown field 'on_dta'" },
    { "not_a_table.lua", "not_a_table%.lua: the script must return a table of services, got string" },
    { "bad_arg.lua", "bad_arg%.lua:1: bad argument #1 to 'after' %(number expected, got string%)" },
  }
  for _, case in ipairs(broken) do
    it("rejects " .. case[1] .. " with exit 1 and file:line", function()
      local code, out, err = h.run({ "check", h.SCRIPTS .. "/" .. case[1] })
      assert.equal(1, code)
      assert.equal("", out)
      assert.matches(case[2], err)
    end)
  end

  it("fails to run a broken script with exit 1 and the error logged", function()
    local code, _, err = h.run({ "run", h.SCRIPTS .. "/broken_syntax.lua" })
    assert.equal(1, code)
    assert.matches('msg="script load failed"', err)
    assert.matches("broken_syntax%.lua:6:", err)
  end)
end)

describe("command line usage errors exit 2 with one line", function()
  local cases = {
    { {}, "missing command" },
    { { "serve" }, "unknown command 'serve'" },
    { { "run" }, "missing SCRIPT" },
    { { "run", "examples/echo.lua", "--nope" }, "unknown option '%-%-nope'" },
    { { "run", "/nonexistent/x.lua" }, "cannot read '/nonexistent/x.lua'" },
    { { "run", "examples/echo.lua", "--listen", "nosuch=127.0.0.1:0" },
      "no service named 'nosuch'" },
    { { "run", "examples/echo.lua", "--listen", "echo=nowhere" },
      "not an address" },
    { { "run", "examples/echo.lua", "--log-level", "loud" }, "unknown log level" },
    { { "check", "examples/echo.lua", "--listen", "echo=127.0.0.1:0" },
      "check takes no option" },
  }
  for _, case in ipairs(cases) do
    it(table.concat(case[1], " "), function()
      local code, out, err = h.run(case[1], { cwd = h.SOURCE })
      assert.equal(2, code)
      assert.equal("", out)
      local lines = select(2, err:gsub("\n", ""))
      assert.equal(1, lines, err)
      assert.matches("^lunet: .*" .. case[2], err)
    end)
  end

  it("--help and --version print to stdout and exit 0", function()
    local code, out = h.run({ "--help" })
    assert.equal(0, code)
    assert.matches("usage: lunet run SCRIPT", out)
    code, out = h.run({ "--version" })
    assert.equal(0, code)
    assert.matches("^lunet %d+%.%d+%.%d+", out)
  end)
end)

describe("running from another directory", function()
  it("finds the script's own modules and lualib", function()
    local code, _, err = h.run({ "run", h.SCRIPTS .. "/uses_module.lua" },
      { cwd = "/" })
    assert.equal(0, code, err)
    assert.matches("msg=\"module loaded\" greeting=hello", err)
  end)
end)
