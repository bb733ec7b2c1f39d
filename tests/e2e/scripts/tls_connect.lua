-- lunet.connect with tls, one case after another, against a TLS server
-- the spec started (openssl s_server -rev, which answers each line
-- reversed). arg[1]: its address; arg[2]: the directory of
-- tests/e2e/tls_certs.sh's files; arg[3]: the address of a second
-- s_server that requires a client certificate; arg[4]: a listener that
-- accepts and never answers, so a handshake stays in progress. Logs one
-- record `tls connect done` with each case's result, then exits.
local server, dir, mtls_server, silent = arg[1], arg[2], arg[3], arg[4]
local results = {}

-- One connect: what on_connect saw and the reply, or on_close's reason.
local function try(name, addr, tls, next_case)
  local seen = {}
  lunet.connect(addr, {
    framing = "line",
    connect_timeout = 10,
    on_connect = function(conn)
      seen.connected = true
      seen.version = conn.tls and conn.tls.version
      seen.alpn = conn.tls and conn.tls.alpn
      conn:write("ping\n")
    end,
    on_message = function(conn, line)
      seen.reply = line
      conn:close()
    end,
    on_close = function(_, reason)
      results[name] = string.format("connected=%s reply=%s version=%s alpn=%s reason=%s",
        tostring(seen.connected), tostring(seen.reply), tostring(seen.version),
        tostring(seen.alpn), tostring(reason))
      next_case()
    end,
  }, { tls = tls })
end

-- Connected over TCP but still in the handshake: a write is refused as
-- for a conn not connected yet (it was taken and lost), and a close
-- aborts the handshake; on_connect never runs.
local function try_handshaking(name, addr, next_case)
  local seen = {}
  local conn = lunet.connect(addr, {
    on_connect = function() seen.connected = true end,
    on_close = function(_, reason)
      results[name] = string.format("connected=%s write=%s,%s reason=%s",
        tostring(seen.connected), tostring(seen.ok), tostring(seen.err),
        tostring(reason))
      next_case()
    end,
  }, { tls = { server_name = "localhost", verify = false } })
  lunet.after(300, function()
    seen.ok, seen.err = conn:write("early\n")
    conn:close()
  end)
end

local cases = {
  { "ok", server, { server_name = "localhost", ca = dir .. "/ca.pem", alpn = { "x-lunet" } } },
  { "wrong_name", server, { server_name = "other.test", ca = dir .. "/ca.pem" } },
  { "unknown_ca", server, { server_name = "localhost", ca = dir .. "/rogue_ca.pem" } },
  { "system_store", server, { server_name = "localhost" } },
  { "no_verify", server, { server_name = "other.test", verify = false } },
  { "client_cert", mtls_server, { server_name = "localhost", ca = dir .. "/ca.pem",
      cert = dir .. "/client.pem", key = dir .. "/client.key" } },
  { "handshaking", silent },
}

local function run(i)
  if i > #cases then
    lunet.log.info("tls connect done", results)
    return lunet.exit(0)
  end
  local c = cases[i]
  local next_case = function() lunet.after(0, function() run(i + 1) end) end
  if c[1] == "handshaking" then return try_handshaking(c[1], c[2], next_case) end
  try(c[1], c[2], c[3], next_case)
end

lunet.after(0, function() run(1) end)
return {}
