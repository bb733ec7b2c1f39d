local greeting = require("greeting")
lunet.log.info("module loaded", { greeting = greeting.text })
return {}
