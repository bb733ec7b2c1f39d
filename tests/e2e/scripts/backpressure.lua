-- HTTP under a client that pipelines without reading (backpressure_spec).
--   /n/I  answers "I:<body length>"
--   /huge answers 12 MiB at once, past max_write_queue
return {
  web = {
    http = "127.0.0.1:0",
    max_write_queue = 4 * 1024 * 1024,
    max_requests = 10000000, -- the flood is one long connection
    handler = function(req, res)
      if req.path == "/huge" then
        return res:send(200, string.rep("h", 12 * 1024 * 1024))
      end
      local i = assert(req.path:match("^/n/(%d+)$"), req.path)
      res:send(200, i .. ":" .. #(req.body or ""))
    end,
  },
}
