return {
  echo = {
    tcp = "127.0.0.1:0",
    on_dta = function() end, -- a typo the runtime must catch
  },
}
