-- A client script (no services): timers only, so the process exits by
-- itself once every timer is done.
local ticks, fired, cancelled_fired = 0, 0, false

local periodic
periodic = lunet.every(10, function(t)
  ticks = ticks + 1
  assert(t == periodic, "a timer callback gets its timer")
  if ticks == 5 then t:stop() end
end)

lunet.after(20, function() fired = fired + 1 end)
local cancelled = lunet.after(30, function() cancelled_fired = true end)
assert(cancelled:stop() == true)
assert(cancelled:stop() == false, "second stop reports it was stopped")

-- An error in a timer is logged and a periodic timer keeps running.
local errors = 0
local failing = lunet.every(10, function(t)
  errors = errors + 1
  if errors == 3 then t:stop() end
  error("timer failure " .. errors)
end)
assert(failing:active())

local started = lunet.now()
lunet.after(200, function()
  lunet.log.info("timers done", { ticks = ticks, fired = fired,
    cancelled_fired = tostring(cancelled_fired), errors = errors,
    elapsed_ok = tostring(lunet.now() - started >= 199),
    periodic_active = tostring(periodic:active()) })
end)

lunet.log.info("a record without fields") -- the fields table is optional
return {}
