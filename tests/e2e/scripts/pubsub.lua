-- A client script exercising publish/subscribe; logs what it saw.
local seen = {}
local function record(tag) return function(msg, topic)
  seen[#seen + 1] = tag .. "=" .. topic .. ":" .. msg
end end

local a = lunet.subscribe("news", record("a"))
local b = lunet.subscribe("news", function(msg, topic)
  record("b")(msg, topic)
  if msg == "2" then error("subscriber b fails on 2") end
end)
lunet.subscribe("other", record("o"))

local n1 = lunet.publish("news", "1")
local n2 = lunet.publish("news", "2") -- b raises: logged, a still served
assert(a:unsubscribe() == true and a:unsubscribe() == false)
local n3 = lunet.publish("news", "3")
assert(not a:active() and b:active())
local n0 = lunet.publish("nobody", "x")

-- A subscriber that unsubscribes itself while being delivered to.
local once
once = lunet.subscribe("once", function(msg) record("once")(msg, "once"); once:unsubscribe() end)
lunet.publish("once", "first")
lunet.publish("once", "second")

local ok = pcall(lunet.publish, "news", {})
lunet.log.info("pubsub done", { seen = table.concat(seen, ","),
  counts = table.concat({ n1, n2, n3, n0 }, ","), table_refused = tostring(not ok) })
return {}
