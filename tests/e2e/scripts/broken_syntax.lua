return {
  echo = {
    tcp = "127.0.0.1:0",
    on_data = function(conn, data)
      conn:write(data
    end,
  },
}
