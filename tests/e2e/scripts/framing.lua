-- Line and length framing with small limits.
--   lines:   replies "<n>:<line>\n" (n counts messages on this conn);
--            "hold" pauses reading 100 ms with messages already buffered
--   packets: replies with the payload reversed, length-prefixed
return {
  lines = {
    tcp = "127.0.0.1:0",
    framing = "line",
    max_line = 16,
    on_connect = function(conn) conn.data.n = 0 end,
    on_message = function(conn, msg)
      conn.data.n = conn.data.n + 1
      conn:write(conn.data.n .. ":" .. msg .. "\n")
      if msg == "hold" then
        conn:pause()
        lunet.after(100, function() conn:resume() end)
      end
    end,
    on_close = function(conn, reason)
      lunet.log.info("closed", { service = "lines", reason = reason })
    end,
  },
  packets = {
    tcp = "127.0.0.1:0",
    framing = "length",
    max_message = 1024,
    on_message = function(conn, msg)
      conn:write(string.pack(">s4", msg:reverse()))
    end,
    on_close = function(conn, reason)
      lunet.log.info("closed", { service = "packets", reason = reason })
    end,
  },
}
