-- Accepts and never answers.
return { silent = { tcp = "127.0.0.1:0" } }
