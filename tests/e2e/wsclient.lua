-- A small blocking WebSocket client for specs (luasocket): the opening
-- handshake, masked frames out, frames in. Independent of lunet's own
-- code: it shares nothing with runtime/http/ws_*.c.
local socket = require("socket")
local h = require("helper")

local M = {}
local Ws = {}
Ws.__index = Ws

local function b64(s)
  local alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
  return ((s:gsub(".", function(x)
    local r, b = "", x:byte()
    for i = 8, 1, -1 do r = r .. (b % 2 ^ i - b % 2 ^ (i - 1) > 0 and "1" or "0") end
    return r
  end) .. "0000"):gsub("%d%d%d?%d?%d?%d?", function(x)
    if #x < 6 then return "" end
    local c = 0
    for i = 1, 6 do c = c + (x:sub(i, i) == "1" and 2 ^ (6 - i) or 0) end
    return alphabet:sub(c + 1, c + 1)
  end) .. ({ "", "==", "=" })[#s % 3 + 1])
end

-- The upgrade request's answer: status and headers (lower-cased names).
local function read_head(c)
  local status_line = assert(c:receive("*l"))
  local status = tonumber(status_line:match("^HTTP/1%.1 (%d%d%d)"))
  local headers = {}
  while true do
    local l = assert(c:receive("*l"))
    if l == "" then break end
    local k, v = l:match("^([^:]+):%s*(.-)%s*$")
    headers[k:lower()] = v
  end
  return status, headers
end

-- ws, or nil, status, headers when the server refused the upgrade.
-- opts: headers (extra request lines), timeout.
function M.connect(addr, path, opts)
  opts = opts or {}
  local c = h.connect(addr, opts.timeout or 10)
  local key = b64(string.char(math.random(0, 255), math.random(0, 255),
    math.random(0, 255), math.random(0, 255)) .. ("0123456789ab"))
  local lines = { "GET " .. (path or "/") .. " HTTP/1.1", "Host: " .. addr,
    "Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Key: " .. key,
    "Sec-WebSocket-Version: 13" }
  for _, l in ipairs(opts.headers or {}) do lines[#lines + 1] = l end
  assert(c:send(table.concat(lines, "\r\n") .. "\r\n\r\n"))
  local status, headers = read_head(c)
  if status ~= 101 then c:close(); return nil, status, headers end
  return setmetatable({ sock = c, headers = headers }, Ws)
end

function M.frame(op, payload, opts)
  opts = opts or {}
  local n = #payload
  local b1 = (opts.fin == false and 0 or 0x80) | op
  local parts = { string.char(b1) }
  if n < 126 then
    parts[2] = string.char(0x80 | n)
  elseif n < 65536 then
    parts[2] = string.char(0x80 | 126) .. string.pack(">I2", n)
  else
    parts[2] = string.char(0x80 | 127) .. string.pack(">I8", n)
  end
  local key = { math.random(0, 255), math.random(0, 255), math.random(0, 255),
    math.random(0, 255) }
  parts[3] = string.char(key[1], key[2], key[3], key[4])
  local out, chunk = {}, {}
  for i = 1, n do
    chunk[#chunk + 1] = string.char(payload:byte(i) ~ key[(i - 1) % 4 + 1])
    if #chunk == 4096 then out[#out + 1] = table.concat(chunk); chunk = {} end
  end
  out[#out + 1] = table.concat(chunk)
  parts[4] = table.concat(out)
  return table.concat(parts)
end

function Ws:send(payload, op)
  return self.sock:send(M.frame(op or 1, payload))
end

function Ws:send_raw(bytes) return self.sock:send(bytes) end

-- op, payload of the next frame (unmasked, as a server sends); nil, err.
function Ws:recv()
  local head, err = self.sock:receive(2)
  if not head then return nil, err end
  local b1, b2 = head:byte(1, 2)
  assert(b2 & 0x80 == 0, "a server frame must not be masked")
  local n = b2 & 0x7f
  if n == 126 then n = string.unpack(">I2", assert(self.sock:receive(2)))
  elseif n == 127 then n = string.unpack(">I8", assert(self.sock:receive(8))) end
  local payload = n > 0 and assert(self.sock:receive(n)) or ""
  return b1 & 0x0f, payload, b1 & 0x80 ~= 0
end

-- The next data message (pings answered, pongs skipped).
function Ws:message()
  while true do
    local op, payload = self:recv()
    if not op then return nil, payload end
    if op == 9 then self.sock:send(M.frame(10, payload))
    elseif op ~= 10 then return payload, op end
  end
end

-- Sends a close, returns the code and reason of the server's answer.
function Ws:close(code)
  self.sock:send(M.frame(8, code and string.pack(">I2", code) or ""))
  local op, payload
  repeat op, payload = self:recv() until op == nil or op == 8
  self.sock:close()
  if not op then return nil end
  if #payload < 2 then return 1005, "" end
  return string.unpack(">I2", payload), payload:sub(3)
end

-- The close frame the server sends on its own: code, reason.
function Ws:expect_close()
  local op, payload
  repeat op, payload = self:recv() until op == nil or op == 8
  if not op then return nil, payload end
  if #payload < 2 then return 1005, "" end
  return string.unpack(">I2", payload), payload:sub(3)
end

function Ws:settimeout(t) self.sock:settimeout(t) end

return M
