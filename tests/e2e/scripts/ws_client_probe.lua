-- lunet.websocket.connect against ws_conformance_spec's scripted servers:
-- prints every event on stdout, one line each, and exits after on_close.
--   lunet run ws_client_probe.lua -- URL [CAFILE|-] [compress]
local url, cafile, compress = arg[1], arg[2] ~= "-" and arg[2] or nil, arg[3] == "compress"
local function say(...) io.stdout:write(table.concat({ ... }, " "), "\n"); io.stdout:flush() end
lunet.websocket.connect(url, {
  on_open = function(ws)
    say("OPEN", tostring(ws.protocol), ws.headers["upgrade"] or "-",
      ws.headers["sec-websocket-extensions"] or "-")
    ws:send("hello")
    ws:send(string.rep("\1\2", 40000), "binary")
  end,
  on_message = function(ws, msg, binary)
    say("MESSAGE", binary and "binary" or "text", #msg, msg:sub(1, 20))
    if msg == "hello" then ws:ping("probe") end
    if #msg == 80000 then ws:close(1000, "probe done") end
  end,
  on_close = function(ws, code, reason)
    say("CLOSE", code, reason)
    lunet.exit(0)
  end,
}, { protocols = { "chat.v1" }, handshake_timeout = 1, compression = compress,
     tls = cafile and { ca = cafile, server_name = "localhost" } or nil })
return {}
