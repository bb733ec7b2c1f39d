-- For the --workers specs: every connection is told which worker took it,
-- and a line sent is published to every worker's subscriber, which hands
-- it to the connections of that worker.
local GREETING = "hello"

lunet.subscribe("all", function(msg)
  for _, conn in ipairs(lunet.connections("who")) do
    conn:write("heard " .. msg .. " in worker=" .. lunet.worker .. "\n")
  end
end)

return {
  who = {
    tcp = "127.0.0.1:0",
    framing = "line",
    on_connect = function(conn)
      conn:write(string.format("%s worker=%d of=%d\n", GREETING,
        lunet.worker, lunet.workers))
    end,
    on_message = function(conn, line)
      if line == "crash" then os.exit(3) end -- a worker dying mid-serve
      lunet.publish("all", line)
    end,
  },
  who_udp = {
    udp = "127.0.0.1:0",
    on_message = function(sock, data, peer)
      sock:send(data .. " worker=" .. lunet.worker, peer)
    end,
  },
}
