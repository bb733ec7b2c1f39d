-- Test harness for e2e specs: starts `lunet` as a real process on port 0,
-- finds its listeners from the log, talks to it with lua-socket and always
-- cleans up the processes it started (by PID). Every wait is bounded.
local socket = require("socket")

local M = {}

M.LUNET = assert(os.getenv("LUNET_BIN"), "LUNET_BIN must name the lunet binary")
M.SOURCE = os.getenv("LUNET_SOURCE_DIR") or "."
M.SCRIPTS = M.SOURCE .. "/tests/e2e/scripts"
M.EXAMPLES = M.SOURCE .. "/examples"

local running = {}

local function shell_quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end
M.quote = shell_quote

local function read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end
M.read_file = read_file

function M.write_file(path, content)
  local f = assert(io.open(path, "wb"))
  f:write(content)
  f:close()
end

function M.sleep(s) socket.sleep(s) end
function M.now() return socket.gettime() end

-- Polls fn() until it returns a truthy value or `timeout` seconds pass.
-- `what` names the wait in the error; a function is called then, so it can
-- say what the state was at the timeout.
function M.wait_for(fn, timeout, what)
  local deadline = socket.gettime() + (timeout or 10)
  repeat
    local v = fn()
    if v then return v end
    socket.sleep(0.02)
  until socket.gettime() > deadline
  if type(what) == "function" then what = what() end
  error("timed out waiting for " .. (what or "condition"), 2)
end

local Proc = {}
Proc.__index = Proc

-- Starts `lunet ARGS...`; stderr goes to a log file we can read (or to
-- opts.stderr, a path such as a FIFO).
function M.spawn(args, opts)
  opts = opts or {}
  local log, out, rc = os.tmpname(), os.tmpname(), os.tmpname()
  os.remove(rc)
  local words = {}
  for i, a in ipairs(args) do words[i] = shell_quote(a) end
  local env = {}
  for k, v in pairs(opts.env or {}) do env[#env + 1] = k .. "=" .. shell_quote(v) end
  local cmd = string.format(
    "%s%s%s %s >%s 2>%s </dev/null & echo $!; wait $!; echo $? >%s",
    opts.cwd and ("cd " .. shell_quote(opts.cwd) .. " && ") or "",
    #env > 0 and ("env " .. table.concat(env, " ") .. " ") or "",
    shell_quote(opts.bin or M.LUNET), table.concat(words, " "),
    shell_quote(out), shell_quote(opts.stderr or log), shell_quote(rc))
  local pipe = assert(io.popen("sh -c " .. shell_quote(cmd), "r"))
  local pid = tonumber(pipe:read("l"))
  assert(pid, "could not start lunet")
  local p = setmetatable({ pid = pid, pipe = pipe, log_path = log,
    out_path = out, rc_path = rc }, Proc)
  running[p] = true
  return p
end

-- Starts `lunet run SCRIPT` with every service on 127.0.0.1:0 unless
-- opts.listen says otherwise, and waits for its listening lines.
function M.start(script, opts)
  opts = opts or {}
  local args = { "run", script }
  for name, addr in pairs(opts.listen or {}) do
    args[#args + 1] = "--listen"
    args[#args + 1] = name .. "=" .. addr
  end
  for _, a in ipairs(opts.args or {}) do args[#args + 1] = a end
  local p = M.spawn(args, opts)
  p.addr = {}
  for _, name in ipairs(opts.services or {}) do
    p.addr[name] = p:wait_listening(name)
  end
  return p
end

function Proc:log() return read_file(self.log_path) or "" end
function Proc:stdout() return read_file(self.out_path) or "" end

function Proc:exit_code()
  local s = read_file(self.rc_path)
  return s and tonumber(s:match("%d+"))
end

function Proc:alive() return self:exit_code() == nil end

function Proc:wait_log(pattern, timeout)
  return M.wait_for(function()
    local found = self:log():match(pattern)
    if found then return found end
    if not self:alive() then
      error("lunet exited (" .. tostring(self:exit_code()) .. ") before "
        .. pattern .. ":\n" .. self:log(), 0)
    end
  end, timeout or 10, function() return "log line " .. pattern .. "\n" .. self:log() end)
end

function Proc:wait_listening(name)
  return self:wait_log("msg=listening service=" .. name
    .. " proto=%a+ addr=(%S+)")
end

function Proc:signal(sig)
  os.execute(string.format("kill -%s %d 2>/dev/null", sig, self.pid))
end

-- Waits for the exit and returns its code; kills after `timeout` seconds.
function Proc:wait(timeout)
  local ok = pcall(M.wait_for, function() return not self:alive() end,
    timeout or 15)
  if not ok then
    self:signal("KILL")
    M.wait_for(function() return not self:alive() end, 5, "SIGKILL exit")
  end
  if self.pipe then self.pipe:close(); self.pipe = nil end
  running[self] = nil
  return self:exit_code(), ok
end

function Proc:stop(timeout)
  if self:alive() then self:signal("TERM") end
  return self:wait(timeout)
end

-- The pid serving in each worker slot of a --workers server now, from the
-- supervisor's log (a replaced worker's later line wins).
function M.worker_pids(p)
  local pids = {}
  for id, pid in p:log():gmatch('msg="worker ready" id=(%d+) pid=(%d+)') do
    pids[tonumber(id)] = tonumber(pid)
  end
  return pids
end

-- Kills whatever a spec left running.
function M.cleanup()
  for p in pairs(running) do p:stop(5) end
end

-- Runs a shell command to completion: its output (stderr too) and exit
-- code.
function M.sh(cmd)
  local p = assert(io.popen(cmd .. " 2>&1"))
  local out = p:read("a")
  local ok, _, code = p:close()
  return out, ok and 0 or code
end

-- Runs `lunet ARGS...` to completion; returns exit code, stdout, stderr.
function M.run(args, opts)
  local p = M.spawn(args, opts)
  local code = p:wait(opts and opts.timeout or 15)
  return code, p:stdout(), p:log()
end

-- A fresh directory for scripts a spec rewrites; removed by cleanup().
local tmpdirs = {}
function M.tmpdir()
  local d = os.tmpname()
  os.remove(d)
  assert(os.execute("mkdir -p " .. shell_quote(d)))
  tmpdirs[#tmpdirs + 1] = d
  return d
end

local cleanup_procs = M.cleanup
function M.cleanup()
  cleanup_procs()
  for _, d in ipairs(tmpdirs) do os.execute("rm -rf " .. shell_quote(d)) end
  tmpdirs = {}
end

-- Sends `line` and reads one reply line.
function M.ask(c, line)
  assert(c:send(line .. "\n"))
  local reply, err = c:receive("*l")
  if not reply then error("no reply to " .. line .. ": " .. err, 2) end
  return reply
end

local function split_addr(addr)
  local host, port = addr:match("^%[(.+)%]:(%d+)$")
  if not host then host, port = addr:match("^(.+):(%d+)$") end
  return host, tonumber(port)
end
M.split_addr = split_addr

-- A UDP socket for talking to addr (IPv4 or IPv6 by its form).
function M.udp(addr, timeout)
  local host, port = split_addr(addr)
  local u = host:find(":") and socket.udp6() or socket.udp()
  u:settimeout(timeout or 5)
  assert(u:setpeername(host, port))
  return u
end

function M.connect(addr, timeout)
  local host, port = split_addr(addr)
  local c = host:find(":") and socket.tcp6() or socket.tcp()
  c:settimeout(timeout or 5)
  assert(c:connect(host, port))
  return c
end

-- Receives exactly n bytes or fails with what arrived.
function M.receive(c, n)
  local data, err, partial = c:receive(n)
  if not data then
    error(string.format("receive %d bytes: %s after %d bytes", n, err,
      #(partial or "")), 2)
  end
  return data
end

-- Resident memory of a process, KiB (from procfs).
function M.rss_kb(pid)
  local s = read_file("/proc/" .. pid .. "/status") or ""
  return tonumber(s:match("VmRSS:%s*(%d+)"))
end

-- The environment for a server whose RSS a test bounds: ASan keeps freed
-- memory in a quarantine (256 MB by default) that would hide the server's
-- own use, so a small one keeps RSS the server's. nil outside ASan.
function M.rss_env()
  local asan = os.getenv("ASAN_OPTIONS")
  if not asan then return nil end
  return { ASAN_OPTIONS = asan .. ":quarantine_size_mb=1" }
end

return M
