-- Tight connection limits for the e2e spec.
return {
  small = {
    http = "127.0.0.1:0",
    max_requests = 3,
    keepalive_timeout = 1,
    handler = function(req, res) res:send(200, "ok") end,
  },
}
