-- A client that sends a line every 10 ms to arg[1] for arg[2] seconds.
local n, stop_at = 0, lunet.now() + (tonumber(arg[2]) or 4) * 1000
lunet.connect(arg[1], {
  framing = "line",
  on_connect = function(conn)
    lunet.every(10, function(t)
      if lunet.now() > stop_at then t:stop(); conn:close(); return end
      n = n + 1
      conn:write("tick " .. n .. "\n")
    end)
  end,
  on_message = function() end,
})
return {}
