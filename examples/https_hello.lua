-- HTTPS hello world, with no files: lunet makes a self-signed certificate
-- for localhost in memory at start (its SHA-256 fingerprint is logged).
--   lunet run examples/https_hello.lua       (0.0.0.0:8443)
--   curl -k https://localhost:8443/
-- For a real deployment, name the files instead:
--   tls = { cert = "cert.pem", key = "key.pem" }
return {
  hello = {
    http = "0.0.0.0:8443",
    tls = { self_signed = true },
    handler = function(req, res)
      res:send(200, "Hello, " .. req.tls.version .. " World!")
    end,
  },
}
