-- UDP service API cases, by datagram:
--   "boom"      the handler raises (logged; the next datagram is served)
--   "oversize"  tries a 65508-byte reply and reports the error it got
--   "badpeer"   tries to send to an invalid address and reports the error
--   "max"       replies with a 65507-byte datagram
--   "version"   replies "v1"
--   else        echoes
return {
  u = {
    udp = "127.0.0.1:0",
    on_message = function(sock, data, peer)
      if data == "boom" then error("udp boom") end
      if data == "oversize" then
        local ok, err, code = sock:send(string.rep("x", 65508), peer)
        return sock:send(string.format("%s %s %s", ok, code, err), peer)
      end
      if data == "badpeer" then
        local ok, err = sock:send("x", "nowhere")
        return sock:send(string.format("%s %s", ok, err), peer)
      end
      if data == "max" then return sock:send(string.rep("m", 65507), peer) end
      if data == "version" then return sock:send("v1", peer) end
      sock:send(data, peer)
    end,
  },
  limited = {
    udp = "127.0.0.1:0",
    rate_limit = { rate = 5, burst = 5 },
    on_message = function(sock, data, peer) sock:send(data, peer) end,
  },
}
