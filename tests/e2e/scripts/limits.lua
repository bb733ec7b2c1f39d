-- Connection limits and timeouts, small enough to hit in a test.
local slow = lunet.state("slow", { started = 0 })
return {
  capped = {
    tcp = "127.0.0.1:0",
    max_connections = 5,
    max_connections_per_ip = 3,
    on_data = function(conn, data) conn:write(data) end,
    on_close = function(conn, reason)
      lunet.log.info("capped closed", { reason = reason })
    end,
  },
  web = {
    http = "127.0.0.1:0",
    max_connections = 2,
    handler = function(req, res)
      if req.path == "/slow" then
        slow.started = slow.started + 1
        lunet.log.info("slow started", { n = slow.started })
        return lunet.after(500, function() res:send(200, "slow done") end)
      end
      res:send(200, "ok")
    end,
  },
  slowweb = {
    http = "127.0.0.1:0",
    handler = function(req, res)
      lunet.log.info("slowweb request", {})
      lunet.after(400, function() res:send(200, "finished") end)
    end,
  },
  chatty = {
    tcp = "127.0.0.1:0",
    framing = "line",
    rate_limit = { rate = 5, burst = 5 },
    on_message = function(conn, line) conn:write(line .. "\n") end,
    on_close = function(conn, reason)
      lunet.log.info("chatty closed", { reason = reason })
    end,
  },
  throttled = {
    http = "127.0.0.1:0",
    rate_limit = { rate = 5, burst = 5 },
    handler = function(req, res) res:send(200, "ok") end,
  },
  idle = {
    tcp = "127.0.0.1:0",
    idle_timeout = 0.5,
    on_data = function(conn, data) conn:write(data) end,
  },
  firehose = {
    tcp = "127.0.0.1:0",
    write_timeout = 1,
    max_write_queue = 64 * 1024 * 1024,
    on_connect = function(conn)
      local block = string.rep("f", 65536)
      for _ = 1, 256 do conn:write(block) end -- 16 MiB nobody reads
    end,
    on_close = function(conn, reason)
      lunet.log.info("firehose closed", { reason = reason })
    end,
  },
}
