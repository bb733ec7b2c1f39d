-- Exercises the conn API through a line-ish command protocol:
--   "fill N"   write 64 KiB blocks until write() returns false (max N),
--              then report how many went out and the queued state
--   "flood N"  write N blocks of 64 KiB ignoring backpressure
--   "pause"    stop reading for 200 ms, then resume
--   "count"    number of open conns of this service
--   "info"     id, peer, service
--   "closed?"  close, then try to write: report what write returned
--   anything else: echo back with a per-connection message counter
local block = string.rep("x", 65536)

local function report(conn, fields)
  lunet.log.info("report", fields)
end

return {
  api = {
    tcp = "127.0.0.1:0",
    write_high_water = 256 * 1024,
    max_write_queue = 8 * 1024 * 1024,
    on_connect = function(conn)
      conn.data.n = 0
    end,
    on_data = function(conn, data)
      conn.data.n = conn.data.n + 1
      local cmd, n = data:match("^(%S+)%s*(%d*)")
      if cmd == "fill" then
        local sent, ok = 0, true
        while ok and sent < tonumber(n) do
          ok = conn:write(block)
          sent = sent + 1
        end
        report(conn, { cmd = "fill", sent = sent, last = tostring(ok) })
      elseif cmd == "flood" then
        for _ = 1, tonumber(n) do
          if not conn:write(block) and conn:write("") == nil then break end
        end
      elseif cmd == "pause" then
        conn:pause()
        local t0 = lunet.now()
        lunet.after(200, function()
          conn:write(string.format("resumed after %d ms\n",
            math.floor(lunet.now() - t0)))
          conn:resume()
        end)
      elseif cmd == "count" then
        conn:write(#lunet.connections("api") .. "\n")
      elseif cmd == "info" then
        conn:write(string.format("%d %s %s\n", conn.id, conn.peer, conn.service))
      elseif cmd == "closed?" then
        conn:close()
        local ok, err = conn:write("late")
        report(conn, { cmd = "closed?", ok = tostring(ok), err = err })
      else
        conn:write(conn.data.n .. ":" .. data)
      end
    end,
    on_drain = function(conn)
      report(conn, { cmd = "drain", id = conn.id })
    end,
    on_close = function(conn, reason)
      report(conn, { cmd = "close", id = conn.id, reason = reason,
        n = conn.data.n })
    end,
  },
}
