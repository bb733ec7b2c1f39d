return "echo"
