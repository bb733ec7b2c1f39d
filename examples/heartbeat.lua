-- Greets each client and sends every client a heartbeat line each period.
--   lunet run examples/heartbeat.lua             (0.0.0.0:7010, 1 s period)
--   lunet run examples/heartbeat.lua -- 250      (250 ms period)
--   nc 127.0.0.1 7010        (type "quit" to leave)
local period_ms = tonumber(arg[1]) or 1000

-- One timer for all clients, made while the script loads: it belongs to
-- this version of the script.
lunet.every(period_ms, function()
  for _, conn in ipairs(lunet.connections("heartbeat")) do
    conn.data.beats = conn.data.beats + 1
    conn:write(string.format("beat %d\n", conn.data.beats))
  end
end)

return {
  heartbeat = {
    tcp = "0.0.0.0:7010",
    on_connect = function(conn)
      conn.data.beats = 0
      conn:write(string.format("hello %s, you are connection %d\n",
        conn.peer, conn.id))
    end,
    on_data = function(conn, data)
      if data:match("^quit") then
        conn:write("bye\n")
        conn:close()
      end
    end,
    on_close = function(conn, reason)
      lunet.log.info("client left", { conn = conn.id, reason = reason,
        beats = conn.data.beats })
    end,
  },
}
