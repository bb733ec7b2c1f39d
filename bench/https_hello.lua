-- examples/http_hello.lua over TLS, for `scripts/bench https`: the
-- benchmark copies this file next to the certificate it made (ECDSA
-- P-256, the one nginx serves too), so the paths below are that
-- directory's. TLS 1.3 only, and keep-alive for 60 s (so that 5,000
-- handshakes on a slow machine are all still up when `https idle` reads
-- the RSS), like the nginx peer; everything else is lunet's default.
return {
  hello = {
    http = "127.0.0.1:0",
    tls = { cert = "cert.pem", key = "key.pem", min_version = "TLSv1.3" },
    keepalive_timeout = 60,
    handler = function(req, res)
      res:send(200, "Hello, World!")
    end,
  },
}
