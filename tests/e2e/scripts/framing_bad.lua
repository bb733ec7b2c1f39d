return {
  lines = {
    tcp = "127.0.0.1:0",
    framing = "line",
    on_data = function() end,
  },
}
