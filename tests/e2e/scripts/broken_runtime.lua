local config = nil
local port = config.port -- fails while loading, at line 2
return { echo = { tcp = "127.0.0.1:" .. port } }
