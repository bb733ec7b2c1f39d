-- Echo whose conns each carry a little state in conn.data, as most
-- services' do: under churn, what a closed conn leaves in the Lua heap
-- must be collected while the loop is busy, not only once it is idle.
return {
  echo = {
    tcp = "127.0.0.1:0",
    on_connect = function(conn)
      conn.data.peer, conn.data.opened, conn.data.bytes = conn.peer, lunet.now(), 0
    end,
    on_data = function(conn, data)
      conn.data.bytes = conn.data.bytes + #data
      conn:write(data)
    end,
  },
}
