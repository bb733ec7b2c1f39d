-- TCP echo: every byte a client sends comes back to it.
--   lunet run examples/echo.lua          (listens on 0.0.0.0:7000)
--   nc 127.0.0.1 7000
return {
  echo = {
    tcp = "0.0.0.0:7000",
    on_data = function(conn, data)
      -- write() queues what the socket cannot take at once; past the
      -- service's high-water mark lunet pauses reading from this client
      -- until its queue drains, so a client that sends without reading
      -- cannot make the server buffer without bound.
      conn:write(data)
    end,
  },
}
