-- Every conn is sent the same 8 MiB string as soon as it connects.
local big = string.rep("lunet memory test ", 466034):sub(1, 8 << 20)
return {
  big = {
    tcp = "127.0.0.1:0",
    on_connect = function(conn) conn:write(big) end,
  },
}
