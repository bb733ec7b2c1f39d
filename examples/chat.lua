-- Chat: rooms, nicks and private messages, spoken as plain lines on 7001
-- and as JSON lines on 7002, both sharing one set of rooms and nicks.
--   lunet run examples/chat.lua
--   nc 127.0.0.1 7001          (then /nick ann, /join dev, /help)
--   echo '{"type":"nick","nick":"bot"}' | nc 127.0.0.1 7002
--
-- Rooms and nicks live in lunet.state, so a reload (edit, then SIGHUP or
-- `lunet reload`) keeps everyone where they are; room fan-out goes through
-- lunet.publish so it can later cross workers.
local json = require("cjson.safe")

local MAX_LINE = 4096
local NICK_PATTERN = "^[%a_][%w_%-]*$"
local ROOM_PATTERN = "^[%w_%-]+$"

-- nicks[nick] = conn; rooms[room] = { [conn] = true }
local state = lunet.state("chat", function()
  return { nicks = {}, rooms = {} }
end)

-- {==================================================================
-- Output: one event, shaped for each client's protocol
-- ===================================================================

local function line_of(ev)
  if ev.type == "message" then
    return string.format("[%s] %s: %s", ev.room, ev.from, ev.text)
  elseif ev.type == "private" then
    return string.format("[private] %s: %s", ev.from, ev.text)
  elseif ev.type == "join" then
    return string.format("* %s joined %s", ev.nick, ev.room)
  elseif ev.type == "leave" then
    return string.format("* %s left %s%s", ev.nick, ev.room,
      ev.why and (" (" .. ev.why .. ")") or "")
  elseif ev.type == "rename" then
    return string.format("* %s is now known as %s", ev.from, ev.nick)
  elseif ev.type == "error" then
    return "error: " .. ev.error
  end
  return ev.text
end

local function send(conn, ev)
  if conn.data.proto == "json" then
    conn:write(json.encode(ev) .. "\n")
  else
    conn:write(line_of(ev) .. "\n")
  end
end

local function info(conn, text) send(conn, { type = "info", text = text }) end
local function fail(conn, text) send(conn, { type = "error", error = text }) end

-- Room fan-out: every event is published; the subscriber (one per script
-- version) hands it to the members connected here. A slow member never
-- holds up the others: writes queue per connection, and one whose queue
-- passes max_write_queue is dropped.
lunet.subscribe("chat", function(payload)
  local ev = json.decode(payload)
  if ev.to then
    local target = state.nicks[ev.to]
    if target then send(target, ev) end
    return
  end
  for member in pairs(state.rooms[ev.room] or {}) do send(member, ev) end
end)

local function publish(ev)
  ev.time = ev.time or os.time()
  lunet.publish("chat", json.encode(ev))
end

-- }==================================================================

-- {==================================================================
-- Membership
-- ===================================================================

local function leave(conn, why)
  local room = conn.data.room
  if not room then return end
  local members = state.rooms[room]
  members[conn] = nil
  if next(members) == nil then state.rooms[room] = nil end
  conn.data.room = nil
  publish({ type = "leave", nick = conn.data.nick, room = room, why = why })
end

local function join(conn, room)
  if conn.data.room == room then return end
  leave(conn)
  state.rooms[room] = state.rooms[room] or {}
  state.rooms[room][conn] = true
  conn.data.room = room
  publish({ type = "join", nick = conn.data.nick, room = room })
end

local function set_nick(conn, nick)
  if not nick or #nick > 16 or not nick:match(NICK_PATTERN) then
    return fail(conn, "invalid nick (letters, digits, _ or -, at most 16, "
      .. "not starting with a digit)")
  end
  local holder = state.nicks[nick]
  if holder == conn then return end
  if holder then return fail(conn, "nick " .. nick .. " is taken") end
  local old = conn.data.nick
  if old then state.nicks[old] = nil end
  state.nicks[nick] = conn
  conn.data.nick = nick
  if not old then
    info(conn, "you are " .. nick .. "; /join ROOM to change rooms")
    join(conn, "lobby")
  elseif conn.data.room then
    publish({ type = "rename", from = old, nick = nick, room = conn.data.room })
  end
end

local function sorted_keys(t, f)
  local out = {}
  for k, v in pairs(t) do out[#out + 1] = f and f(k, v) or k end
  table.sort(out)
  return out
end

-- }==================================================================

-- {==================================================================
-- Commands, shared by both protocols (a reload may add more)
-- ===================================================================

local commands = {}

commands.nick = function(conn, nick) set_nick(conn, nick) end

commands.join = function(conn, room)
  if not room or #room > 32 or not room:match(ROOM_PATTERN) then
    return fail(conn, "invalid room name")
  end
  join(conn, room)
end

commands.say = function(conn, text)
  if not conn.data.room then return fail(conn, "join a room first") end
  if not text or text == "" then return end
  publish({ type = "message", from = conn.data.nick, room = conn.data.room,
    text = text })
end

commands.msg = function(conn, to, text)
  if not to or not text or text == "" then
    return fail(conn, "usage: /msg NICK TEXT")
  end
  if not state.nicks[to] then return fail(conn, "no such nick: " .. to) end
  publish({ type = "private", from = conn.data.nick, to = to, text = text })
end

commands.who = function(conn)
  local room = conn.data.room
  if not room then return fail(conn, "join a room first") end
  local nicks = sorted_keys(state.rooms[room], function(c) return c.data.nick end)
  if conn.data.proto == "json" then
    return send(conn, { type = "who", room = room, nicks = nicks })
  end
  info(conn, room .. ": " .. table.concat(nicks, " "))
end

commands.rooms = function(conn)
  local rooms = sorted_keys(state.rooms, function(name, members)
    local n = 0
    for _ in pairs(members) do n = n + 1 end
    return name .. " (" .. n .. ")"
  end)
  if conn.data.proto == "json" then
    return send(conn, { type = "rooms", rooms = rooms })
  end
  info(conn, "rooms: " .. table.concat(rooms, ", "))
end

commands.quit = function(conn)
  info(conn, "bye")
  leave(conn, "quit")
  conn:close()
end

commands.help = function(conn)
  info(conn, "commands: /nick NAME, /join ROOM, /rooms, /who, "
    .. "/msg NICK TEXT, /quit, /help; anything else talks to your room")
end

local function run(conn, name, ...)
  local command = commands[name]
  if not command then return fail(conn, "unknown command /" .. name .. " (try /help)") end
  if name ~= "nick" and name ~= "help" and name ~= "quit"
      and not conn.data.nick then
    return fail(conn, "set a nick first: /nick NAME")
  end
  command(conn, ...)
end

-- }==================================================================

-- {==================================================================
-- The two protocols
-- ===================================================================

local function on_line(conn, line)
  local name, rest = line:match("^/(%a+)%s*(.*)$")
  if not name then return run(conn, "say", line) end
  if name == "msg" then
    local to, text = rest:match("^(%S+)%s+(.+)$")
    return run(conn, "msg", to, text)
  end
  run(conn, name, rest ~= "" and rest or nil)
end

-- {"type":"say","text":"hi"} and friends; fields by command.
local json_args = {
  nick = { "nick" }, join = { "room" }, say = { "text" },
  msg = { "to", "text" },
}

local function on_json(conn, line)
  local req, err = json.decode(line)
  if type(req) ~= "table" or type(req.type) ~= "string" then
    return fail(conn, "invalid JSON request: " .. (err or "expected an "
      .. "object with a \"type\""))
  end
  if req.type == "say" and req.room and req.room ~= conn.data.room then
    return fail(conn, "not in room " .. tostring(req.room))
  end
  local args = {}
  for i, field in ipairs(json_args[req.type] or {}) do
    local v = req[field]
    args[i] = type(v) == "string" and v or nil
  end
  run(conn, req.type, table.unpack(args, 1, #(json_args[req.type] or {})))
end

local function greet(conn)
  info(conn, "welcome to lunet chat; set your nick with /nick NAME (/help)")
end

local function gone(conn, reason)
  leave(conn, reason == "eof" and "disconnected" or reason)
  local nick = conn.data.nick
  if nick and state.nicks[nick] == conn then state.nicks[nick] = nil end
end

local common = {
  framing = "line",
  max_line = MAX_LINE,
  max_write_queue = 1024 * 1024, -- a client this far behind is dropped
  on_close = gone,
}

local function service(addr, proto, on_message)
  local s = { tcp = addr, on_message = on_message }
  for k, v in pairs(common) do s[k] = v end
  s.on_connect = function(conn)
    conn.data.proto = proto
    greet(conn)
  end
  return s
end

return {
  chat = service("0.0.0.0:7001", "line", on_line),
  chat_json = service("0.0.0.0:7002", "json", on_json),
}
