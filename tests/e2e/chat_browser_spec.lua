-- examples/chat.lua's page (examples/chat.html) in headless Chromium: two
-- windows and a line client talk in one room; the pages come back by
-- themselves after the server restarts. Chromium is driven through
-- chromedriver's W3C WebDriver protocol (JSON over HTTP, spoken here with
-- lua-socket), so the page runs exactly as a user's would.
local h = require("helper")
local json = require("cjson")
local http = require("socket.http")
local ltn12 = require("ltn12")

local CHROMIUM = os.getenv("CHROMIUM_BIN") or "/usr/bin/chromium"
local CHROMEDRIVER = os.getenv("CHROMEDRIVER_BIN") or "/usr/bin/chromedriver"
local WAIT = 15 -- seconds for any one thing to show up in a page

-- {==================================================================
-- A WebDriver client, just what this spec uses
-- ===================================================================

local Driver = {}
Driver.__index = Driver

-- body: a table (JSON-encoded) or a string already in JSON.
local function wd_call(base, method, path, body)
  if type(body) == "table" then body = json.encode(body) end
  local out = {}
  local ok, code = http.request({
    url = base .. path, method = method, sink = ltn12.sink.table(out),
    source = body and ltn12.source.string(body) or nil,
    headers = body and { ["Content-Type"] = "application/json",
      ["Content-Length"] = #body } or nil,
  })
  if not ok then error(method .. " " .. path .. ": " .. tostring(code), 3) end
  local reply = json.decode(table.concat(out))
  if code ~= 200 then
    error(string.format("%s %s: %d %s: %s", method, path, code,
      tostring(reply.value.error), tostring(reply.value.message)), 3)
  end
  return reply.value
end

function Driver:call(method, path, body)
  return wd_call(self.base, method, "/session/" .. self.session .. path, body)
end

local function chromium_args(profile)
  return { "--headless=new", "--no-sandbox", "--disable-gpu",
    "--disable-dev-shm-usage", "--no-first-run", "--disable-extensions",
    "--user-data-dir=" .. profile,
    -- Both windows stay as lively as a page in front of a user.
    "--disable-background-timer-throttling", "--disable-renderer-backgrounding",
    "--disable-backgrounding-occluded-windows" }
end

-- Starts chromedriver (in a session of its own, so its Chromium children
-- are killed with it by process group) and one browser.
local function start_browser()
  http.TIMEOUT = 30
  local proc = h.spawn({ CHROMEDRIVER, "--port=0" }, { bin = "setsid" })
  local port = h.wait_for(function()
    if not proc:alive() then error("chromedriver exited:\n" .. proc:log(), 0) end
    return proc:stdout():match("was started successfully on port (%d+)")
  end, WAIT, "chromedriver's port")
  local d = setmetatable({ proc = proc, base = "http://127.0.0.1:" .. port },
    Driver)
  local profile = h.tmpdir()
  d.session = wd_call(d.base, "POST", "/session", { capabilities = {
    alwaysMatch = { browserName = "chrome", ["goog:chromeOptions"] = {
      binary = CHROMIUM, args = chromium_args(profile) } } } }).sessionId
  d.window = d:call("GET", "/window")
  return d
end

-- driver.quit() and more: whatever survives the session's end is killed by
-- process group (the driver's PID leads it), then the driver by PID.
function Driver:quit()
  if self.session then pcall(self.call, self, "DELETE", "") end
  self.session = nil
  os.execute("kill -TERM -" .. self.proc.pid .. " 2>/dev/null")
  self.proc:wait(5)
  os.execute("kill -KILL -" .. self.proc.pid .. " 2>/dev/null")
end

function Driver:new_window()
  return self:call("POST", "/window/new", { type = "window" }).handle
end

function Driver:use(window)
  if self.window == window then return end
  self:call("POST", "/window", { handle = window })
  self.window = window
end

function Driver:go(url) self:call("POST", "/url", { url = url }) end

-- Runs a function body in the page; its arguments are ..., JSON-encoded.
function Driver:run(script, ...)
  local args = {}
  for i, v in ipairs({ ... }) do args[i] = json.encode(v) end
  return self:call("POST", "/execute/sync", string.format(
    '{"script":%s,"args":[%s]}', json.encode(script), table.concat(args, ",")))
end

local ELEMENT = "element-6066-11e4-a52e-4f735466cecf"

function Driver:find(css)
  return self:call("POST", "/element", { using = "css selector",
    value = css })[ELEMENT]
end

-- Types into a field as a user would, key by key; "\u{E007}" is Enter.
function Driver:type(css, text, clear)
  local el = self:find(css)
  if clear then self:call("POST", "/element/" .. el .. "/clear", {}) end
  self:call("POST", "/element/" .. el .. "/value", { text = text })
end

function Driver:click(css)
  self:call("POST", "/element/" .. self:find(css) .. "/click", {})
end

-- }==================================================================

-- {==================================================================
-- The page, as a test sees it
-- ===================================================================

local function page_state(d)
  return d:run([[
    const s = document.getElementById("status");
    return { status: s.dataset.state, me: document.getElementById("me").textContent };
  ]])
end

-- Every chat message in the list, with what the text element holds as
-- HTML (user text must come out as text, never as markup).
local function page_messages(d)
  return d:run([[
    return Array.from(document.querySelectorAll("#messages li.msg"), (li) => {
      const t = li.querySelector(".text");
      return { from: li.dataset.from, room: li.dataset.room || "",
               private: li.classList.contains("private"),
               text: t ? t.textContent : "", elements: t ? t.children.length : -1 };
    });
  ]])
end

local function wait_state(d, status, me)
  local last
  h.wait_for(function()
    last = page_state(d)
    return last.status == status and (me == nil or last.me == me)
  end, WAIT, function()
    return string.format("page %s to be %s%s; it is %s, %q", d.window, status,
      me and (" as " .. me) or "", last.status, last.me)
  end)
end

-- Waits for a message from `from` saying `text` in the current window's
-- list, shown as plain text; kind "private" for a private one.
local function wait_message(d, from, text, kind)
  local seen
  h.wait_for(function()
    seen = page_messages(d)
    for _, m in ipairs(seen) do
      if m.from == from and m.text == text and m.private == (kind == "private") then
        assert.equal(0, m.elements)
        return true
      end
    end
  end, WAIT, function()
    return string.format("%s: %q in the page; it shows %s", from, text,
      json.encode(seen))
  end)
end

-- Waits for a notice (li.event: joins, leaves, /who, /rooms) saying text.
local function wait_event(d, text)
  local seen
  h.wait_for(function()
    seen = d:run([[
      return Array.from(document.querySelectorAll("#messages li.event"),
                        (li) => li.textContent);
    ]])
    for _, t in ipairs(seen) do if t == text then return true end end
  end, WAIT, function()
    return string.format("%q in the page; it shows %s", text, json.encode(seen))
  end)
end

-- Sets nick and room in the current window and waits for the server's word.
local function sign_in(d, url, nick, room)
  d:go(url)
  wait_state(d, "online")
  d:type("#nick", nick, true)
  d:type("#room", room, true)
  d:click("#join")
  wait_state(d, "online", nick .. " in " .. room)
end

local function say(d, text) d:type("#text", text .. "\u{E007}") end

-- }==================================================================

-- {==================================================================
-- A line client
-- ===================================================================

local function line(c)
  local l, err = c:receive("*l")
  if not l then error("expected a line, got " .. err, 2) end
  return l
end

-- Reads lines until `want` (others, such as join notices, pass by).
local function expect_line(c, want)
  local deadline = h.now() + WAIT
  repeat
    c:settimeout(math.max(0.1, deadline - h.now()))
    local l, err = c:receive("*l")
    if l == want then return end
    if not l then error(string.format("expected %q, got %s", want, err), 2) end
  until h.now() > deadline
  error(string.format("expected %q within %d s", want, WAIT), 2)
end

local function line_client(addr, nick, room)
  local c = h.connect(addr)
  assert.matches("^welcome to lunet chat", line(c))
  assert(c:send("/nick " .. nick .. "\n/join " .. room .. "\n"))
  expect_line(c, "* " .. nick .. " joined " .. room)
  return c
end

-- }==================================================================

local function start_chat(web)
  return h.start(h.EXAMPLES .. "/chat.lua", {
    listen = { chat = "127.0.0.1:0", chat_json = "127.0.0.1:0", web = web },
    services = { "chat", "web" } })
end

describe("chat in a browser", function()
  local driver

  after_each(function()
    if driver then driver:quit() end
    driver = nil
    h.cleanup()
  end)

  it("two pages and a line client share a room; the pages survive a restart", function()
    local t0 = h.now()
    local server = start_chat("127.0.0.1:0")
    local url = "http://" .. server.addr.web .. "/"
    local _, code, headers = http.request(url)
    assert.equal(200, code)
    assert.equal("text/html; charset=utf-8", headers["content-type"])
    local liner = line_client(server.addr.chat, "liner", "dev")
    driver = start_browser()
    local ann, bob = driver.window, driver:new_window()

    driver:use(ann)
    sign_in(driver, url, "ann", "dev")
    expect_line(liner, "* ann joined dev")
    driver:use(bob)
    sign_in(driver, url, "bob", "dev")
    expect_line(liner, "* bob joined dev")

    -- Markup typed by a user reaches others as the characters typed.
    local hello = "hello <b>from</b> ann & co"
    driver:use(ann)
    say(driver, hello)
    expect_line(liner, "[dev] ann: " .. hello)
    driver:use(bob)
    wait_message(driver, "ann", hello)

    assert(liner:send("hi from the line\n"))
    wait_message(driver, "liner", "hi from the line")
    say(driver, "bob here")
    expect_line(liner, "[dev] bob: bob here")
    driver:use(ann)
    wait_message(driver, "liner", "hi from the line")
    wait_message(driver, "bob", "bob here")

    -- A reload keeps the pages' sockets, nicks and rooms; a message still
    -- arrives once (the old version's subscriber is gone).
    local code, out = h.run({ "reload", "--pid", tostring(server.pid) })
    assert.equal(0, code, out)
    say(driver, "after the reload")
    expect_line(liner, "[dev] ann: after the reload")
    driver:use(bob)
    wait_message(driver, "ann", "after the reload")
    assert(liner:send("/who\n"))
    expect_line(liner, "dev: ann bob liner")
    local copies = 0
    for _, m in ipairs(page_messages(driver)) do
      if m.text == "after the reload" then copies = copies + 1 end
    end
    assert.equal(1, copies)
    assert.equal("online", page_state(driver).status)
    driver:use(ann)

    -- Private messages, typed as a line client types them.
    say(driver, "/msg liner just between us")
    expect_line(liner, "[private] ann: just between us")
    assert(liner:send("/msg bob psst\n"))
    driver:use(bob)
    wait_message(driver, "liner", "psst", "private")
    say(driver, "/who")
    wait_event(driver, "dev: ann bob liner")

    -- The server goes away: both pages notice, then come back on their
    -- own with their nicks, into their room.
    liner:close()
    assert.equal(0, server:stop())
    wait_state(driver, "offline")
    server = start_chat(server.addr.web)
    liner = line_client(server.addr.chat, "liner", "dev")
    for _, window in ipairs({ ann, bob }) do
      driver:use(window)
      wait_state(driver, "online", (window == ann and "ann" or "bob") .. " in dev")
    end
    driver:use(ann)
    say(driver, "back again")
    expect_line(liner, "[dev] ann: back again")
    driver:use(bob)
    wait_message(driver, "ann", "back again")
    assert.is_true(h.now() - t0 < 60, "took " .. (h.now() - t0) .. " s")
    liner:close()
    assert.equal(0, server:stop())
  end)
end)
