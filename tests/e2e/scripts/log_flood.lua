-- Echo that logs a flood of records per message: for the spec that holds
-- stderr unread, where the records must be dropped, not the server stalled.
local filler = string.rep("x", 200)
return {
  echo = {
    tcp = "127.0.0.1:0",
    on_data = function(conn, data)
      for i = 1, 3000 do lunet.log.info("flood", { i = i, filler = filler }) end
      conn:write(data)
    end,
  },
}
