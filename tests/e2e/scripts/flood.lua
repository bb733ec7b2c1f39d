-- On connect, queues `arg[1]` MiB for a client that does not read yet, so
-- a spec can check a SIGTERM waits for the queue to flush.
local mib = tonumber(arg[1]) or 8
local block = string.rep("0123456789abcdef", 4096) -- 64 KiB

return {
  flood = {
    tcp = "127.0.0.1:0",
    max_write_queue = 64 * 1024 * 1024,
    on_connect = function(conn)
      for _ = 1, mib * 16 do conn:write(block) end
      lunet.log.info("queued", { bytes = mib * 1024 * 1024 })
    end,
    on_close = function(conn, reason)
      lunet.log.info("conn closed", { id = conn.id, reason = reason })
    end,
  },
}
