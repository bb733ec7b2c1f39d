-- Handlers that misbehave on purpose, by line:
--   spin   loops forever
--   pspin  loops forever, catching the budget error with pcall
--   cowrap, coresume  loop forever in a coroutine
--   bomb   allocates 256 MiB (16 times the cap) and echoes, unless stopped
--   else   echoes
local function bomb()
  local t = {}
  while #t < 256 do t[#t + 1] = string.rep("x", 1024 * 1024) .. #t end
end

return {
  abuse = {
    tcp = "127.0.0.1:0",
    framing = "line",
    on_message = function(conn, line)
      if line == "spin" then while true do end end
      if line == "pspin" then
        while true do pcall(function() while true do end end) end
      end
      if line == "bomb" then bomb() end
      if line == "cowrap" then coroutine.wrap(function() while true do end end)() end
      if line == "coresume" then
        coroutine.resume(coroutine.create(function() while true do end end))
      end
      conn:write(line .. "\n")
    end,
  },
  web = {
    http = "127.0.0.1:0",
    handler = function(req, res)
      if req.path == "/spin" then while true do end end
      if req.path == "/bomb" then bomb() end
      res:send(200, "fine")
    end,
  },
}
