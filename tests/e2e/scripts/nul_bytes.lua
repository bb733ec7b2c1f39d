-- Lua strings with a NUL handed to the runtime: each command answers one
-- line saying what happened, so the spec sees a NUL either kept as a byte
-- or refused with a clear error, never the string cut at the NUL.
local function outcome(ok, a, b)
  if not ok then return "raised: " .. tostring(a) end
  if a == nil then return "failed: " .. tostring(b) end
  return "ok"
end

local commands = {
  log = function()
    lunet.log.info("m\0sg", { ["k\0ey"] = "v\0after", plain = "p" })
    return "logged"
  end,
  udp_send = function()
    local u = lunet.udp()
    local r = outcome(pcall(u.send, u, "x", "127.0.0.1:9\0junk"))
    u:close()
    return r
  end,
  udp_bind = function()
    return outcome(pcall(lunet.udp, { bind = "127.0.0.1:0\0junk" }))
  end,
  udp_join = function()
    local u = lunet.udp({ bind = "0.0.0.0:0" })
    local r = outcome(pcall(u.join, u, "224.0.0.251\0junk"))
    u:close()
    return r
  end,
  connect = function()
    return outcome(pcall(lunet.connect, "127.0.0.1:9\0junk", {}))
  end,
  subscribe = function()
    return outcome(pcall(lunet.subscribe, "t\0opic", function() end))
  end,
  connections = function()
    return outcome(pcall(lunet.connections, "probe\0junk"))
  end,
  udp_field = function()
    local u = lunet.udp()
    local r = tostring(u["addr\0x"]) .. " " .. type(u.addr)
    u:close()
    return r
  end,
  conn_field = function(conn)
    return tostring(conn["peer\0x"]) .. " " .. type(conn.peer)
  end,
  conn_set = function(conn)
    return outcome(pcall(function() conn["data\0x"] = {} end))
  end,
  state = function()
    -- A state name is a table key: the NUL is a byte like any other.
    local a, b = lunet.state("s\0a"), lunet.state("s\0b")
    return a ~= b and a == lunet.state("s\0a") and "distinct" or "same"
  end,
}

return {
  probe = {
    tcp = "127.0.0.1:0",
    framing = "line",
    on_message = function(conn, cmd)
      if cmd == "raise" then error("before\0after", 0) end
      if cmd:sub(1, 5) == "echo " then return conn:write(cmd .. "\n") end
      conn:write(commands[cmd](conn) .. "\n")
    end,
  },
  udp_echo = {
    udp = "127.0.0.1:0",
    on_message = function(sock, data, peer) sock:send(data, peer) end,
  },
}
