lunet.after("soon", function() end)
return {}
