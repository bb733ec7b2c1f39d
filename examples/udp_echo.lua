-- UDP echo: every datagram goes back to the peer that sent it.
--   lunet run examples/udp_echo.lua                 (0.0.0.0:7003)
--   lunet run examples/udp_client.lua -- 127.0.0.1:7003 hello
return {
  udp_echo = {
    udp = "0.0.0.0:7003",
    -- peer is "ip:port": a string that can be kept and sent to later.
    on_message = function(sock, data, peer)
      sock:send(data, peer)
    end,
  },
}
