local h = require("helper")

for round = 1, 2 do
describe("timers (round " .. round .. ")", function()
  it("fire the right number of times, stop, and let a client exit", function()
    local code, _, log = h.run({ "run", h.SCRIPTS .. "/timers.lua" })
    assert.equal(0, code, log)
    local line = assert(log:match("msg=\"timers done\"[^\n]*"), log)
    assert.matches("ticks=5", line)
    assert.matches("fired=1", line)
    assert.matches("cancelled_fired=false", line)
    assert.matches("errors=3", line)
    assert.matches("elapsed_ok=true", line)
    assert.matches("periodic_active=false", line)
    local _, failures = log:gsub("timers%.lua:22: timer failure", "")
    assert.equal(3, failures)
  end)
end)
end
