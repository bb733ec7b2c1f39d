-- A TCP client: connect, send one line, print the first line that comes
-- back, exit 0; exit 1 with a message when the server is down or silent.
--   lunet run examples/tcp_client.lua -- 127.0.0.1:7000 hello [TIMEOUT_S]
-- A script's command-line arguments (after --) are in `arg`.
local addr, message = arg[1], arg[2]
local timeout = tonumber(arg[3]) or 5

local finished = false
local function finish(code, text, out)
  if finished then return end
  finished = true
  out:write(text, "\n")
  lunet.exit(code)
end

if not addr or not message then
  finish(2, "usage: lunet run examples/tcp_client.lua -- HOST:PORT MESSAGE "
    .. "[TIMEOUT_S]", io.stderr)
  return {}
end

local deadline
lunet.connect(addr, {
  connect_timeout = timeout,
  framing = "line",
  on_connect = function(conn)
    conn:write(message .. "\n")
    deadline = lunet.after(timeout * 1000, function()
      finish(1, string.format("no reply from %s within %g s", addr, timeout),
        io.stderr)
      conn:close()
    end)
  end,
  on_message = function(conn, line)
    deadline:stop()
    finish(0, line, io.stdout)
    conn:close()
  end,
  on_close = function(_, reason)
    if deadline then deadline:stop() end
    finish(1, string.format("cannot talk to %s: %s", addr, reason), io.stderr)
  end,
})

return {}
