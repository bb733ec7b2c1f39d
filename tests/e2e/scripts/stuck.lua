-- For liveness_spec: handlers that keep a worker's loop busy or stuck.
--   "busy MS"  spins for MS milliseconds of wall time (in Lua, so the
--              budget could stop it), then answers "done worker=N";
--   "sleep"    blocks in C: os.execute of a shell that writes its pid to
--              the file named by the script's first argument, then
--              becomes `sleep 30` (the spec kills it by that pid).
local socket = require("socket")
local pidfile = arg[1]

return {
  stuck = {
    tcp = "127.0.0.1:0",
    framing = "line",
    on_connect = function(conn)
      conn:write("hello worker=" .. lunet.worker .. "\n")
    end,
    on_message = function(conn, line)
      local ms = line:match("^busy (%d+)$")
      if ms then
        local deadline = socket.gettime() + tonumber(ms) / 1000
        while socket.gettime() < deadline do end
        conn:write("done worker=" .. lunet.worker .. "\n")
      elseif line == "sleep" then
        os.execute("echo $$ > '" .. pidfile .. "'; exec sleep 30")
        conn:write("woke worker=" .. lunet.worker .. "\n")
      end
    end,
  },
}
