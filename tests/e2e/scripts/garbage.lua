-- Echo with about 1 MB of live data, collected clean at load: for the spec
-- on garbage left by a burst (the collector's own threshold is then far
-- above what the burst leaves, so only the quiet-time pass frees it).
local ballast = {}
for i = 1, 20000 do ballast[i] = string.format("item %08d", i) end
collectgarbage()
return {
  echo = {
    tcp = "127.0.0.1:0",
    on_data = function(conn, data)
      if ballast[1] then conn:write(data) end
    end,
  },
}
