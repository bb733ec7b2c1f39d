-- TLS services for tls_spec.lua. The spec copies this file into the
-- directory tests/e2e/tls_certs.sh filled, so the relative certificate
-- paths below are resolved against the script's directory.
local cjson = require("cjson")

local CERT = { cert = "server.pem", key = "server.key" }

-- conn.tls / req.tls as a JSON object (absent fields stay absent), and
-- whether the table is there at all.
local function tls_json(t, extra)
  local out = { has_tls = t ~= nil }
  if t then
    for _, k in ipairs({ "version", "cipher", "server_name", "alpn",
                         "resumed", "peer_subject" }) do
      out[k] = t[k]
    end
  end
  for k, v in pairs(extra or {}) do out[k] = v end
  return cjson.encode(out)
end

local function tls_opts(extra)
  local t = { cert = CERT.cert, key = CERT.key }
  for k, v in pairs(extra or {}) do t[k] = v end
  return t
end

-- A line echo that also answers "tls" (the fields) and "quit" (bye, then
-- a close), and logs when Lua sees a conn open or close.
local function line_service(tls, extra)
  local svc = {
    tcp = "127.0.0.1:0",
    framing = "line",
    tls = tls,
    on_connect = function(conn)
      lunet.log.info("tls conn open", { service = conn.service })
    end,
    on_message = function(conn, line)
      if line == "tls" then
        conn:write(tls_json(conn.tls) .. "\n")
      elseif line == "quit" then
        conn:write("bye\n")
        conn:close()
      else
        conn:write("echo:" .. line .. "\n")
      end
    end,
    on_close = function(conn, reason)
      lunet.log.info("tls conn closed", { service = conn.service, reason = reason })
    end,
  }
  for k, v in pairs(extra or {}) do svc[k] = v end
  return svc
end

local function web(req, res)
  if req.path == "/tls" then
    return res:send(200, tls_json(req.tls, { peer = req.peer }),
      { ["Content-Type"] = "application/json" })
  elseif req.path == "/echo" then
    return res:send(200, req.body)
  end
  local n = req.path:match("^/n/(%d+)$")
  if n then return res:send(200, n .. ":" .. req.peer) end
  res:send(404, "no such path")
end

-- 1 MiB/s, in 20 writes a second, to a conn that asked with "flood".
local CHUNK = string.rep("z", 52428) .. "\n"
local function flood(conn)
  conn.data.flood = lunet.every(50, function(timer)
    -- Past write_high_water it writes on: the queue must hit its bound.
    if conn:write(CHUNK) == nil then timer:stop() end
  end)
end

return {
  web = {
    http = "127.0.0.1:0",
    max_body = 8 * 1024 * 1024,
    tls = tls_opts({
      sni = { ["other.test"] = { cert = "other.pem", key = "other.key" } },
      alpn = { "x-lunet", "http/1.1" },
    }),
    handler = web,
  },
  chat = line_service(tls_opts({ alpn = { "x-lunet", "x-other" } })),
  mtls = line_service(tls_opts({ ca = "ca.pem", verify = "require" })),
  mtls_opt = line_service(tls_opts({ ca = "ca.pem", verify = "optional" })),
  tls13 = line_service(tls_opts({ min_version = "TLSv1.3" })),
  plain = line_service(nil),
  stall = line_service(tls_opts({ handshake_timeout = 1 })),
  slow = line_service(tls_opts(), {
    max_write_queue = 256 * 1024,
    write_high_water = 64 * 1024,
    on_message = function(conn, line)
      if line == "flood" then flood(conn) else conn:write("echo:" .. line .. "\n") end
    end,
    on_close = function(conn, reason)
      if conn.data.flood then conn.data.flood:stop() end
      lunet.log.info("tls conn closed", { service = conn.service, reason = reason })
    end,
  }),
  metrics = "127.0.0.1:0",
}
