-- A helper module next to the script that requires it.
return { text = "hello" }
