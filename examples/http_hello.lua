-- HTTP hello world.
--   lunet run examples/http_hello.lua        (0.0.0.0:8080)
--   curl http://127.0.0.1:8080/
return {
  hello = {
    http = "0.0.0.0:8080",
    handler = function(req, res)
      res:send(200, "Hello, World!")
    end,
  },
}
