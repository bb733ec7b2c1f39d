-- What a connection gets when its peer stops sending (EOF or a half-close).
--   lines:   replies "<n>:<line>\n" to each line
--   held:    like lines, but "pause" stops reading for 100 ms with lines
--            still buffered (they, and the last one, come after the resume)
--   packets: replies with the payload reversed, length-prefixed
--   web:     answers "got <path>" at once; /late answers 200 ms later
--            from a timer (its request is in flight when the EOF comes)
local function closed(service)
  return function(conn, reason)
    lunet.log.info("closed", { service = service, conn = conn.id,
      reason = reason })
  end
end

local function numbered(conn, msg)
  conn.data.n = (conn.data.n or 0) + 1
  conn:write(conn.data.n .. ":" .. msg .. "\n")
end

return {
  lines = {
    tcp = "127.0.0.1:0",
    framing = "line",
    max_line = 16,
    on_message = numbered,
    on_close = closed("lines"),
  },
  held = {
    tcp = "127.0.0.1:0",
    framing = "line",
    on_message = function(conn, msg)
      numbered(conn, msg)
      if msg == "pause" then
        conn:pause()
        lunet.after(100, function() conn:resume() end)
      end
    end,
    on_close = closed("held"),
  },
  packets = {
    tcp = "127.0.0.1:0",
    framing = "length",
    max_message = 1024,
    on_message = function(conn, msg)
      conn:write(string.pack(">s4", msg:reverse()))
    end,
    on_close = closed("packets"),
  },
  web = {
    http = "127.0.0.1:0",
    handler = function(req, res)
      if req.path ~= "/late" then return res:send(200, "got " .. req.path) end
      lunet.after(200, function()
        lunet.log.info("late", { sent = tostring(res:send(200, "late")) })
      end)
    end,
  },
}
