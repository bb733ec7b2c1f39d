-- Sends one datagram, prints the reply, exits 0; exits 1 when no reply
-- comes within the timeout (UDP may lose either datagram).
--   lunet run examples/udp_client.lua -- 127.0.0.1:7003 hello [TIMEOUT_S]
local addr, message = arg[1], arg[2]
local timeout = tonumber(arg[3]) or 2

if not addr or not message then
  io.stderr:write("usage: lunet run examples/udp_client.lua -- HOST:PORT "
    .. "MESSAGE [TIMEOUT_S]\n")
  lunet.exit(2)
  return {}
end

local sock = lunet.udp()
local ok, err = sock:request(message, addr, timeout * 1000, function(reply, why)
  if reply then
    print(reply)
    lunet.exit(0)
  else
    io.stderr:write(string.format("no reply from %s within %g s (%s)\n",
      addr, timeout, why))
    lunet.exit(1)
  end
  sock:close()
end)
if not ok then
  io.stderr:write("cannot send to " .. addr .. ": " .. err .. "\n")
  sock:close()
  lunet.exit(1)
end

return {}
