-- Echo that raises on "boom" (on_data) so a spec can check the error costs
-- only that connection; "close" closes from the handler.
return {
  echo = {
    tcp = "127.0.0.1:0",
    on_connect = function(conn)
      conn.data.n = 0
    end,
    on_data = function(conn, data)
      conn.data.n = conn.data.n + 1
      if data:find("boom", 1, true) then
        error("boom requested")
      end
      if data:find("log", 1, true) then
        lunet.log.info("handler says", { extra = "field" })
      end
      if data:find("close", 1, true) then
        conn:write("bye\n")
        conn:close()
        return
      end
      conn:write(data)
    end,
    on_close = function(conn, reason)
      lunet.log.info("conn closed", { id = conn.id, reason = reason,
        messages = conn.data.n })
    end,
  },
}
