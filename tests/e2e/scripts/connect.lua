-- Client and server in one script: lunet.connect to our own service, with
-- line framing on both sides, then exit. arg[1]: an address that never
-- answers a connect, for the timeout case.
local silent = arg[1]
local results = {}
local function done()
  lunet.log.info("connect done", results)
  lunet.exit(0)
end

local function try_abort(next_step)
  local conn = lunet.connect(silent, {
    on_close = function(_, reason)
      results.abort = reason
      next_step()
    end,
  })
  conn:close() -- before the connect completes
end

local function try_timeout()
  local t0 = lunet.now()
  lunet.connect(silent, {
    connect_timeout = 0.3,
    on_connect = function() results.timeout = "connected?!" end,
    on_close = function(_, reason)
      results.timeout = reason
      results.timeout_ok = tostring(lunet.now() - t0 >= 290 and lunet.now() - t0 < 3000)
      done()
    end,
  })
end

lunet.after(0, function()
  local addr = "127.0.0.1:" .. arg[2]
  local conn = lunet.connect(addr, {
    framing = "line",
    on_connect = function(conn)
      results.state_before = "connected"
      conn:write("ping\n")
    end,
    on_message = function(conn, line)
      results.reply = line
      conn:close()
    end,
    on_close = function(_, reason)
      results.close_reason = reason
      try_abort(try_timeout)
    end,
  })
  local ok, err = conn:write("too early")
  results.early_write = tostring(ok) .. "/" .. tostring(err)
end)

return {
  pong = {
    tcp = "127.0.0.1:" .. arg[2],
    framing = "line",
    on_message = function(conn, line) conn:write("pong:" .. line .. "\n") end,
  },
}
