-- Chat: rooms, nicks and private messages, spoken as plain lines on 7001,
-- as JSON lines on 7002 and as JSON WebSocket messages on 8080 (/ws, with
-- the browser page chat.html at /), all sharing one set of rooms and nicks.
--   lunet run examples/chat.lua
--   nc 127.0.0.1 7001          (then /nick ann, /join dev, /help)
--   echo '{"type":"nick","nick":"bot"}' | nc 127.0.0.1 7002
--   open http://127.0.0.1:8080/
--
-- A client is a conn (line or JSON) or a ws; client.data.proto says which.
-- Rooms and nicks live in lunet.state, so a reload (edit, then SIGHUP or
-- `lunet reload`) keeps everyone where they are; room fan-out goes through
-- lunet.publish so it can later cross workers.
local json = require("cjson.safe")

local MAX_LINE = 4096
local NICK_PATTERN = "^[%a_][%w_%-]*$"
local ROOM_PATTERN = "^[%w_%-]+$"

-- nicks[nick] = client; rooms[room] = { [client] = true }
local state = lunet.state("chat", function()
  return { nicks = {}, rooms = {} }
end)

-- {==================================================================
-- Output: one event, shaped for each client's protocol
-- ===================================================================

-- A JSON or WebSocket client may put a newline in its text: shown to a
-- line client as is, it would start a line that looks like someone else's.
local function flat(text) return (text:gsub("%c", " ")) end

local function line_of(ev)
  if ev.type == "message" then
    return string.format("[%s] %s: %s", ev.room, ev.from, flat(ev.text))
  elseif ev.type == "private" then
    return string.format("[private] %s: %s", ev.from, flat(ev.text))
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

-- Line clients read sentences; JSON and WebSocket clients read events.
local function structured(client) return client.data.proto ~= "line" end

local function send(client, ev)
  local proto = client.data.proto
  if proto == "ws" then
    client:send(json.encode(ev))
  elseif proto == "json" then
    client:write(json.encode(ev) .. "\n")
  else
    client:write(line_of(ev) .. "\n")
  end
end

-- extra: fields a structured client may use (a page shows its own nick).
local function info(client, text, extra)
  local ev = { type = "info", text = text }
  for k, v in pairs(extra or {}) do ev[k] = v end
  send(client, ev)
end
local function fail(client, text) send(client, { type = "error", error = text }) end

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

local function leave(client, why)
  local room = client.data.room
  if not room then return end
  local members = state.rooms[room]
  members[client] = nil
  if next(members) == nil then state.rooms[room] = nil end
  client.data.room = nil
  publish({ type = "leave", nick = client.data.nick, room = room, why = why })
end

local function join(client, room)
  if client.data.room == room then return end
  leave(client)
  state.rooms[room] = state.rooms[room] or {}
  state.rooms[room][client] = true
  client.data.room = room
  publish({ type = "join", nick = client.data.nick, room = room })
end

local function set_nick(client, nick)
  if not nick or #nick > 16 or not nick:match(NICK_PATTERN) then
    return fail(client, "invalid nick (letters, digits, _ or -, at most 16, "
      .. "not starting with a digit)")
  end
  local holder = state.nicks[nick]
  if holder == client then return end
  if holder then return fail(client, "nick " .. nick .. " is taken") end
  local old = client.data.nick
  if old then state.nicks[old] = nil end
  state.nicks[nick] = client
  client.data.nick = nick
  if not old then
    info(client, "you are " .. nick .. "; /join ROOM to change rooms",
      { nick = nick })
    join(client, "lobby")
  elseif client.data.room then
    publish({ type = "rename", from = old, nick = nick, room = client.data.room })
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
-- Commands, shared by every protocol (a reload may add more)
-- ===================================================================

local commands = {}

commands.nick = function(client, nick) set_nick(client, nick) end

commands.join = function(client, room)
  if not room or #room > 32 or not room:match(ROOM_PATTERN) then
    return fail(client, "invalid room name")
  end
  join(client, room)
end

commands.say = function(client, text)
  if not client.data.room then return fail(client, "join a room first") end
  if not text or text == "" then return end
  publish({ type = "message", from = client.data.nick, room = client.data.room,
    text = text })
end

commands.msg = function(client, to, text)
  if not to or not text or text == "" then
    return fail(client, "usage: /msg NICK TEXT")
  end
  if not state.nicks[to] then return fail(client, "no such nick: " .. to) end
  publish({ type = "private", from = client.data.nick, to = to, text = text })
end

commands.who = function(client)
  local room = client.data.room
  if not room then return fail(client, "join a room first") end
  local nicks = sorted_keys(state.rooms[room], function(c) return c.data.nick end)
  if structured(client) then
    return send(client, { type = "who", room = room, nicks = nicks })
  end
  info(client, room .. ": " .. table.concat(nicks, " "))
end

commands.rooms = function(client)
  local rooms = sorted_keys(state.rooms, function(name, members)
    local n = 0
    for _ in pairs(members) do n = n + 1 end
    return name .. " (" .. n .. ")"
  end)
  if structured(client) then
    return send(client, { type = "rooms", rooms = rooms })
  end
  info(client, "rooms: " .. table.concat(rooms, ", "))
end

commands.quit = function(client)
  info(client, "bye")
  leave(client, "quit")
  client:close()
end

commands.help = function(client)
  info(client, "commands: /nick NAME, /join ROOM, /rooms, /who, "
    .. "/msg NICK TEXT, /quit, /help; anything else talks to your room")
end

local function run(client, name, ...)
  local command = commands[name]
  if not command then
    return fail(client, "unknown command /" .. name .. " (try /help)")
  end
  if name ~= "nick" and name ~= "help" and name ~= "quit"
      and not client.data.nick then
    return fail(client, "set a nick first: /nick NAME")
  end
  command(client, ...)
end

-- }==================================================================

-- {==================================================================
-- The protocols
-- ===================================================================

local function on_line(client, line)
  local name, rest = line:match("^/(%a+)%s*(.*)$")
  if not name then return run(client, "say", line) end
  if name == "msg" then
    local to, text = rest:match("^(%S+)%s+(.+)$")
    return run(client, "msg", to, text)
  end
  run(client, name, rest ~= "" and rest or nil)
end

-- {"type":"say","text":"hi"} and friends; fields by command.
local json_args = {
  nick = { "nick" }, join = { "room" }, say = { "text" },
  msg = { "to", "text" },
}

local function on_json(client, line)
  local req, err = json.decode(line)
  if type(req) ~= "table" or type(req.type) ~= "string" then
    return fail(client, "invalid JSON request: " .. (err or "expected an "
      .. "object with a \"type\""))
  end
  if req.type == "say" and req.room and req.room ~= client.data.room then
    return fail(client, "not in room " .. tostring(req.room))
  end
  local args = {}
  for i, field in ipairs(json_args[req.type] or {}) do
    local v = req[field]
    args[i] = type(v) == "string" and v or nil
  end
  run(client, req.type, table.unpack(args, 1, #(json_args[req.type] or {})))
end

local function greet(client)
  info(client, "welcome to lunet chat; set your nick with /nick NAME (/help)")
end

local function gone(client, reason)
  leave(client, reason == "eof" and "disconnected" or reason)
  local nick = client.data.nick
  if nick and state.nicks[nick] == client then state.nicks[nick] = nil end
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
  s.on_connect = function(client)
    client.data.proto = proto
    greet(client)
  end
  return s
end

-- A WebSocket message is one JSON request (max_message bounds it like a
-- JSON line, closing with 1009 past it).
local function on_ws_message(ws, msg, is_binary)
  if is_binary then return fail(ws, "send JSON text, not binary") end
  on_json(ws, msg)
end

-- Read when the server starts, before any client waits on the loop; a
-- reload keeps it (a read then would block the loop serving everyone), so
-- a changed page needs a restart. Without the file the chat still runs.
local page = lunet.state("chat_page", function()
  local path = ((arg and arg[0] or ""):match("^(.*)/") or ".") .. "/chat.html"
  local f, err = io.open(path, "rb")
  if not f then
    lunet.log.warn("chat page not found, GET / answers 404", { error = err })
    return {}
  end
  local html = f:read("a")
  f:close()
  return { html = html }
end)

local router = require("lunet.router").new()

router:get("/", function(req, res)
  if not page.html then return res:send(404, "no chat.html next to chat.lua\n") end
  res:send(200, page.html, { ["Content-Type"] = "text/html; charset=utf-8",
    ["Cache-Control"] = "no-cache" })
end)

router:websocket("/ws", {
  max_message = MAX_LINE,
  on_open = function(ws)
    ws.data.proto = "ws"
    greet(ws)
  end,
  on_message = on_ws_message,
  on_close = function(ws) gone(ws, "disconnected") end,
})

return {
  chat = service("0.0.0.0:7001", "line", on_line),
  chat_json = service("0.0.0.0:7002", "json", on_json),
  web = { http = "0.0.0.0:8080", handler = router,
    max_write_queue = common.max_write_queue },
}
