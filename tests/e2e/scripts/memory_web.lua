-- Every GET /big is answered with the same 8 MiB string (memory_spec).
local big = string.rep("lunet memory test ", 466034):sub(1, 8 << 20)
return {
  web = {
    http = "127.0.0.1:0",
    max_write_queue = 16 * 1024 * 1024,
    handler = function(req, res) res:send(200, big) end,
  },
}
