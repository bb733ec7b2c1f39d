-- TLS services, reloads of certificates and lunet.connect over TLS, seen
-- by clients that share no code with lunet's TLS: curl, Python's ssl
-- module (clients/tls_client.py) and the openssl command. Certificates
-- are made at test time by tls_certs.sh; nothing private is committed.
local h = require("helper")
local json = require("cjson")
local prom = require("prom")
local http = require("socket.http")
local socket = require("socket")

local CERTS = h.SOURCE .. "/tests/e2e/tls_certs.sh"
local CLIENT = h.SOURCE .. "/tests/e2e/clients/tls_client.py"

-- Runs a shell command to its end; its output (stdout and stderr) and
-- exit code. Every command given here is bounded by `timeout`.
local function sh(cmd, stderr)
  local p = io.popen(cmd .. (stderr or " 2>&1"), "r")
  local out = p:read("a")
  local _, _, code = p:close()
  return out, code
end

local function quote_all(list)
  local out = {}
  for i, a in ipairs(list or {}) do out[i] = h.quote(a) end
  return table.concat(out, " ")
end

-- Background processes of this spec (clients, openssl s_server), killed by
-- PID in cleanup().
local background, outputs = {}, {}
local function spawn(cmd, out)
  outputs[#outputs + 1] = out
  local p = io.popen(string.format("%s >%s 2>&1 </dev/null & echo $!", cmd,
    h.quote(out)))
  local pid = tonumber(p:read("l"))
  p:close()
  background[#background + 1] = pid
  return pid
end
local function cleanup()
  for _, pid in ipairs(background) do os.execute("kill " .. pid .. " 2>/dev/null") end
  background = {}
  for _, f in ipairs(outputs) do os.remove(f) end
  outputs = {}
  h.cleanup()
end

local function certs()
  local dir = h.tmpdir()
  local out, code = sh("timeout 30 " .. h.quote(CERTS) .. " " .. h.quote(dir))
  assert(code == 0, "tls_certs.sh failed:\n" .. out)
  return dir
end

local function client_cmd(mode, addr, args)
  return string.format("timeout 90 python3 %s %s %s %s", h.quote(CLIENT), mode,
    h.quote(addr), quote_all(args))
end

-- JSON's null as nil, so a field Python had as None reads as absent.
local function no_nulls(v)
  if v == json.null then return nil end
  if type(v) == "table" then
    for k, x in pairs(v) do v[k] = no_nulls(x) end
  end
  return v
end

local function decode_last(out, what)
  local ok, v = pcall(json.decode, out:match("([^\n]*)\n?$"))
  assert(ok and type(v) == "table", what .. " said:\n" .. out)
  return no_nulls(v)
end

-- Several tls_client.py runs ({ MODE, ADDR, ARGS... } each) in one
-- process: their results, in order.
local function py_many(runs)
  local out = sh(string.format("timeout 120 python3 %s batch %s", h.quote(CLIENT),
    h.quote(json.encode(runs))))
  return decode_last(out, "tls_client.py batch " .. json.encode(runs))
end

-- tls_client.py MODE ADDR ARGS...: its last line, decoded.
local function py(mode, addr, args)
  local run = { mode, addr }
  for _, a in ipairs(args or {}) do run[#run + 1] = a end
  return py_many({ run })[1]
end

-- tls_client.py in the background; returns a reader of its output.
local function py_bg(mode, addr, args)
  local out = os.tmpname()
  spawn(client_cmd(mode, addr, args), out)
  local c = { out = out }
  function c.text() return h.read_file(out) or "" end
  function c.wait(pattern, timeout)
    return h.wait_for(function() return c.text():match(pattern) end, timeout or 30,
      function() return "tls_client.py " .. mode .. " to say " .. pattern .. ":\n" .. c.text() end)
  end
  function c.result(timeout)
    local line = c.wait("\n({[^\n]*})\n", timeout)
    return no_nulls(json.decode(line))
  end
  return c
end

local function free_port()
  local s = assert(socket.bind("127.0.0.1", 0))
  local _, port = s:getsockname()
  s:close()
  return port
end

-- openssl s_server on a free port with ARGS; waits for it to accept.
local function s_server(dir, args)
  local port = free_port()
  local out = os.tmpname()
  spawn(string.format("cd %s && exec timeout 120 openssl s_server -accept 127.0.0.1:%d %s",
    h.quote(dir), port, args), out)
  h.wait_for(function() return (h.read_file(out) or ""):match("ACCEPT") end, 10,
    function() return "s_server to listen:\n" .. (h.read_file(out) or "") end)
  return "127.0.0.1:" .. port, out
end

local rss_kb = h.rss_kb

local server_env = h.rss_env

local function metrics(server)
  local body, code = http.request("http://" .. server.addr.metrics .. "/metrics")
  assert.equal(200, code)
  return prom.parse(body)
end

-- lunet_tls_handshakes_total and lunet_tls_resumed_total of a service.
local function tls_counts(server, svc)
  local fam = metrics(server)
  local c = {}
  for _, r in ipairs({ "ok", "failed", "timeout" }) do
    c[r] = prom.value(fam, "lunet_tls_handshakes_total", { service = svc, result = r })
  end
  c.resumed = prom.value(fam, "lunet_tls_resumed_total", { service = svc })
  return c
end

local function delta(before, after)
  local d = {}
  for k, v in pairs(after) do d[k] = v - (before[k] or 0) end
  return d
end

local function count(s, pattern) return select(2, s:gsub(pattern, "")) end

-- curl against an https service on 127.0.0.1, named localhost.
local function curl(server, args)
  local port = server.addr.web:match(":(%d+)$")
  return sh(string.format("timeout 60 curl -sS --resolve localhost:%s:127.0.0.1 %s",
    port, args:gsub("URL", "https://localhost:" .. port)))
end

local SERVICES = { "web", "chat", "mtls", "mtls_opt", "tls13", "plain", "stall",
  "slow", "metrics" }

describe("TLS services", function()
  local dir, server, ca

  setup(function()
    dir = certs()
    ca = dir .. "/ca.pem"
    h.write_file(dir .. "/tls_app.lua", h.read_file(h.SCRIPTS .. "/tls_app.lua"))
    server = h.start(dir .. "/tls_app.lua", { cwd = dir, services = SERVICES,
      env = server_env() })
  end)
  teardown(function()
    local code = server:stop()
    cleanup()
    assert.equal(0, code)
  end)

  it("log each certificate they load", function()
    for _, svc in ipairs({ "web", "chat", "mtls", "stall" }) do
      assert.matches('msg="tls certificate loaded" service=' .. svc
        .. ' subject="/CN=localhost" not_after=%d%d%d%d%-%d%d%-%d%dT[%d:]+Z sha256=%x%x:',
        server:log())
    end
  end)

  it("answer https with req.tls filled, and only to a client that trusts the CA", function()
    local before = tls_counts(server, "web")
    local function timed()
      return prom.value(metrics(server), "lunet_tls_handshake_duration_seconds_count",
        { service = "web" })
    end
    local timed0 = timed()
    local out, code = curl(server, "--cacert " .. h.quote(ca) .. " URL/tls")
    assert.equal(0, code, out)
    local t = json.decode(out)
    assert.same({ true, "TLSv1.3", "localhost", "http/1.1", false },
      { t.has_tls, t.version, t.server_name, t.alpn, t.resumed })
    assert.matches("^TLS_AES_%d+_GCM_SHA%d+$", t.cipher)
    assert.is_nil(t.peer_subject)
    -- Without the test CA, curl refuses the certificate (exit 60).
    local _, refused = curl(server, "URL/tls")
    assert.equal(60, refused)
    assert.same({ ok = 1, failed = 1, timeout = 0, resumed = 0 },
      delta(before, tls_counts(server, "web")))
    assert.equal(1, timed() - timed0) -- the histogram has the handshake that completed
  end)

  it("keep a connection alive for two requests", function()
    local out, code = curl(server, "--cacert " .. h.quote(ca)
      .. " -w ' connects=%{num_connects}\\n' URL/n/1 URL/n/2")
    assert.equal(0, code, out)
    local p1, p2 = out:match("^1:(127%.0%.0%.1:%d+) connects=1\n2:(127%.0%.0%.1:%d+) connects=0\n$")
    assert(p1, out)
    assert.equal(p1, p2) -- the same client port: one connection
  end)

  it("answer three pipelined requests sent in one write, in order", function()
    local r = py("pipeline", server.addr.web, { "--ca", ca })
    assert.same({ 200, 200, 200 }, r.statuses)
    local peer = r.bodies[1]:match("^1:(.+)$")
    assert.same({ "1:" .. peer, "2:" .. peer, "3:" .. peer }, r.bodies)
  end)

  it("carry a 4 MiB body both ways", function()
    local body, back = dir .. "/body", dir .. "/back"
    assert(os.execute("head -c 4194304 /dev/urandom >" .. h.quote(body)))
    local out, code = curl(server, "--cacert " .. h.quote(ca) .. " --data-binary @"
      .. h.quote(body) .. " -o " .. h.quote(back) .. " -w '%{http_code} %{size_upload} %{size_download}' URL/echo")
    assert.equal(0, code, out)
    assert.equal("200 4194304 4194304", out)
    assert(h.read_file(body) == h.read_file(back), "the echoed body differs")
  end)

  it("fill conn.tls on a TLS line service, and leave it nil on a plain one", function()
    local r = py_many({
      { "hello", server.addr.chat, "--ca", ca, "--alpn", "x-other,x-lunet",
        "--send", "hi", "--send", "tls" },
      -- TLS 1.2, no SNI, no ALPN.
      { "hello", server.addr.chat, "--max-version", "TLSv1_2", "--sni", "-", "--send", "tls" },
    })
    local r13, r12 = r[1], r[2]
    assert.is_true(r13.ok, json.encode(r13))
    assert.equal("echo:hi", r13.replies[1])
    local t = json.decode(r13.replies[2])
    -- The server picks the first of its own list that the client offers.
    assert.same({ true, "TLSv1.3", r13.cipher, "localhost", "x-lunet", false },
      { t.has_tls, t.version, t.cipher, t.server_name, t.alpn, t.resumed })
    assert.is_nil(t.peer_subject)
    assert.is_true(r12.ok, json.encode(r12))
    t = json.decode(r12.replies[1])
    assert.same({ "TLSv1.2", r12.cipher, false }, { t.version, t.cipher, t.resumed })
    assert.matches("^ECDHE%-ECDSA%-", t.cipher)
    assert.is_nil(t.server_name)
    assert.is_nil(t.alpn)
    local plain = h.connect(server.addr.plain)
    assert.same({ has_tls = false }, json.decode(h.ask(plain, "tls")))
    plain:close()
  end)

  it("pick the certificate by SNI, the default for other names", function()
    local r = py_many({
      { "hello", server.addr.web, "--ca", ca, "--sni", "other.test" },
      { "hello", server.addr.web, "--ca", ca, "--sni", "localhost" },
      -- A name it has no certificate for gets the default, which then
      -- does not verify for that name.
      { "hello", server.addr.web, "--ca", ca, "--sni", "unknown.test" },
    })
    assert.same({ true, "other.test", "1003" }, { r[1].ok, r[1].subject, r[1].serial })
    assert.same({ true, "localhost", "1001" }, { r[2].ok, r[2].subject, r[2].serial })
    assert.is_false(r[3].ok)
    assert.matches("CERTIFICATE_VERIFY_FAILED.*[Hh]ostname mismatch", r[3].error)
  end)

  it("negotiate ALPN from the server's list", function()
    local offers = { "http/1.1,x-lunet", "h2,http/1.1", "h2" }
    local runs = {}
    for i, offer in ipairs(offers) do
      runs[i] = { "hello", server.addr.web, "--ca", ca, "--alpn", offer }
    end
    local r = py_many(runs)
    for i = 1, #offers do assert.is_true(r[i].ok, json.encode(r[i])) end
    assert.equal("x-lunet", r[1].alpn)
    assert.equal("http/1.1", r[2].alpn)
    assert.is_nil(r[3].alpn) -- nothing in common: no ALPN, still served
  end)

  local function with_cert(addr, name)
    local run = { "hello", addr, "--ca", ca, "--send", "tls" }
    if name then
      for _, a in ipairs({ "--cert", dir .. "/" .. name .. ".pem", "--key",
                           dir .. "/" .. name .. ".key" }) do
        run[#run + 1] = a
      end
    end
    return run
  end

  it("require a client certificate that chains to the CA (verify = require)", function()
    local before = tls_counts(server, "mtls")
    local opens = count(server:log(), 'msg="tls conn open" service=mtls ')
    local r = py_many({ with_cert(server.addr.mtls), with_cert(server.addr.mtls, "rogue"),
      with_cert(server.addr.mtls, "client") })
    local none, rogue, good = r[1], r[2], r[3]
    assert.is_false(none.ok)
    assert.matches("CERTIFICATE_REQUIRED", none.error)
    assert.is_false(rogue.ok)
    assert.matches("UNKNOWN_CA", rogue.error)
    assert.is_true(good.ok, json.encode(good))
    assert.equal("/CN=client", json.decode(good.replies[1]).peer_subject)
    assert.same({ ok = 1, failed = 2, timeout = 0, resumed = 0 },
      delta(before, tls_counts(server, "mtls")))
    -- The refused handshakes never reached Lua.
    server:wait_log('msg="tls conn closed" reason=eof service=mtls ')
    assert.equal(opens + 1, count(server:log(), 'msg="tls conn open" service=mtls '))
  end)

  it("take a client certificate or none (verify = optional)", function()
    local r = py_many({ with_cert(server.addr.mtls_opt), with_cert(server.addr.mtls_opt, "client"),
      with_cert(server.addr.mtls_opt, "rogue") })
    local none, good, rogue = r[1], r[2], r[3]
    assert.is_true(none.ok, json.encode(none))
    assert.is_nil(json.decode(none.replies[1]).peer_subject)
    assert.is_true(good.ok, json.encode(good))
    assert.equal("/CN=client", json.decode(good.replies[1]).peer_subject)
    -- One that is sent must still verify.
    assert.is_false(rogue.ok)
    assert.matches("UNKNOWN_CA", rogue.error)
  end)

  it("refuse TLS 1.0 and 1.1 (and 1.2 under min_version = TLSv1.3)", function()
    local function offer(addr, max)
      return { "hello", addr, "--max-version", max, "--min-version", "TLSv1", "--seclevel0" }
    end
    -- The client can speak them: an s_server that allows them agrees.
    local control = s_server(dir, "-cert server.pem -key server.key -cipher DEFAULT@SECLEVEL=0 -rev")
    local r = py_many({ offer(control, "TLSv1_1"), offer(control, "TLSv1"),
      offer(server.addr.chat, "TLSv1_1"), offer(server.addr.chat, "TLSv1"),
      { "hello", server.addr.tls13, "--max-version", "TLSv1_2" },
      { "hello", server.addr.tls13, "--send", "tls" } })
    assert.equal("TLSv1.1", r[1].version, json.encode(r[1]))
    assert.equal("TLSv1", r[2].version, json.encode(r[2]))
    -- lunet answers with a protocol_version alert.
    for i = 3, 5 do
      assert.is_false(r[i].ok)
      assert.matches("^TLSV1_ALERT_PROTOCOL_VERSION", r[i].error)
    end
    assert.equal("TLSv1.3", json.decode(r[6].replies[1]).version)
  end)

  -- Each resumption gets a fresh ticket: a TLS 1.3 client uses a ticket
  -- once, and without one every other connection was a full handshake.
  it("resume a session from a ticket, again and again with the newest (openssl s_client -sess_in, -sess_out)", function()
    local before = tls_counts(server, "web")
    local function s_client(sess_in, sess_out)
      return sh(string.format(
        "printf 'GET /tls HTTP/1.1\\r\\nHost: localhost\\r\\nConnection: close\\r\\n\\r\\n' | "
        .. "timeout 20 openssl s_client -connect %s -servername localhost -CAfile %s "
        .. "-verify_return_error -ign_eof %s -sess_out %s", server.addr.web, h.quote(ca),
        sess_in and "-sess_in " .. h.quote(sess_in) or "", h.quote(sess_out)))
    end
    local first = s_client(nil, dir .. "/session0")
    assert.matches("\nNew, TLSv1%.3", first)
    assert.matches('"resumed":false', first)
    for i = 1, 3 do
      local again = s_client(dir .. "/session" .. (i - 1), dir .. "/session" .. i)
      assert.matches("\nReused, TLSv1%.3", again, "resumption " .. i)
      assert.matches('"resumed":true', again)
    end
    assert.same({ ok = 4, failed = 0, timeout = 0, resumed = 3 },
      delta(before, tls_counts(server, "web")))
  end)

  it("echo lines through openssl s_client on a TLS line service", function()
    local out, code = sh(string.format(
      "printf 'hello\\nworld\\nquit\\n' | timeout 20 openssl s_client -quiet -connect %s "
      .. "-servername localhost -CAfile %s -verify_return_error -ign_eof 2>/dev/null",
      server.addr.chat, h.quote(ca)), "")
    assert.equal(0, code, out)
    assert.equal("echo:hello\necho:world\nbye\n", out)
  end)

  it("refuse a client's renegotiation (TLS 1.2, openssl s_client's R command)", function()
    local out = sh(string.format("(printf 'one\\n'; sleep 0.5; printf 'R\\n'; sleep 1) | "
      .. "timeout 20 openssl s_client -tls1_2 -connect %s -servername localhost -CAfile %s",
      server.addr.chat, h.quote(ca)))
    assert.matches("\necho:one\n", out)
    assert.matches("\nRENEGOTIATING\n", out)
    assert.matches(":no renegotiation:", out)
    local r = py("hello", server.addr.chat, { "--ca", ca, "--send", "after" })
    assert.same({ "echo:after" }, r.replies)
  end)

  -- Reads until the server closes; what it sent, or fails after 10 s.
  local function read_to_close(c)
    c:settimeout(10)
    local got, err, partial = c:receive("*a")
    assert(got or err == "closed", "not closed: " .. tostring(err))
    return got or partial
  end

  it("close a client that sends garbage, and serve the next one", function()
    local before = tls_counts(server, "chat")
    -- Not a TLS record at all, then a handshake record holding garbage.
    for _, junk in ipairs({ "\0\1\2\3 garbage " .. string.rep("x", 300),
                            "\22\3\1\0\20" .. string.rep("\255", 20) }) do
      local c = h.connect(server.addr.chat)
      assert(c:send(junk))
      local got = read_to_close(c)
      assert.is_nil(got:match("echo"))
      c:close()
    end
    local r = py("hello", server.addr.chat, { "--ca", ca, "--send", "still" })
    assert.same({ "echo:still" }, r.replies)
    assert.same({ ok = 1, failed = 2, timeout = 0, resumed = 0 },
      delta(before, tls_counts(server, "chat")))
  end)

  it("answer plain HTTP on an https port with a plain-text 400, then close", function()
    local c = h.connect(server.addr.web)
    assert(c:send("GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"))
    local got = read_to_close(c)
    c:close()
    assert.matches("^HTTP/1%.1 400 [^\r\n]*\r\n", got)
    assert.matches("\r\n\r\n[^\r\n]*HTTPS", got)
  end)

  it("count a handshake cut after the ClientHello as failed, and never tell Lua", function()
    local before = tls_counts(server, "chat")
    local closes = count(server:log(), 'msg="tls conn closed" [^\n]*service=chat ')
    -- Then the server is still there for the next client.
    local r = py_many({ { "cut", server.addr.chat },
      { "hello", server.addr.chat, "--ca", ca, "--send", "next" } })
    assert.is_true(r[1].ok)
    assert.same({ "echo:next" }, r[2].replies)
    server:wait_log('msg="tls conn closed" reason=eof service=chat ')
    h.wait_for(function()
      return count(server:log(), 'msg="tls conn closed" [^\n]*service=chat ') >= closes + 1
    end, 10, "the next client's close")
    assert.equal(closes + 1, count(server:log(), 'msg="tls conn closed" [^\n]*service=chat '))
    assert.same({ ok = 1, failed = 1, timeout = 0, resumed = 0 },
      delta(before, tls_counts(server, "chat")))
  end)

  it("close 200 clients stalled in the handshake at handshake_timeout, leaking nothing", function()
    -- A server of its own, so RSS at the start is not what the other
    -- tests left in the allocator.
    local srv = h.start(dir .. "/tls_app.lua", { cwd = dir, services = SERVICES,
      env = server_env() })
    local function active()
      return prom.value(metrics(srv), "lunet_connections_active", { service = "stall" })
    end
    local rss0 = rss_kb(srv.pid)
    local before = tls_counts(srv, "stall")
    -- Five rounds of 200 conns that send nothing or half a ClientHello,
    -- each held until the server closes it (at most 20 s), in one client.
    local kinds = { "none", "half", "half", "half", "half" }
    local go = dir .. "/stall_go"
    local c = py_bg("stall", srv.addr.stall, { "200", table.concat(kinds, ","), "20", go })
    local peak, after = {}, {}
    for r = 1, #kinds do
      if r > 1 then h.write_file(go .. "." .. r, "") end
      c.wait("ready " .. r .. "\n")
      h.wait_for(function() return active() == 200 end, 10, "200 stalled conns")
      peak[r] = rss_kb(srv.pid)
      local res = no_nulls(json.decode(c.wait("done " .. r .. " ({[^\n]*})\n", 30)))
      assert.same({ 200, 0 }, { res.closed, res.open })
      -- Not before the timeout (1 s), and by the next once-a-second sweep
      -- after it (a second of slack for a busy machine).
      assert.is_true(res.seconds >= 0.8 and res.seconds < 4,
        "round " .. r .. " closed after " .. res.seconds .. " s")
      h.wait_for(function() return active() == 0 end, 10, "no stalled conns left")
      after[r] = rss_kb(srv.pid)
    end
    assert.same({ ok = 0, failed = 0, timeout = 200 * #kinds, resumed = 0 },
      delta(before, tls_counts(srv, "stall")))
    assert.is_nil(srv:log():match('msg="tls conn open" service=stall '))
    assert.is_nil(srv:log():match('msg="tls conn closed" [^\n]*service=stall '))
    -- The allocator keeps some of what it was given, so RSS after the
    -- first rounds is the baseline; a leak of each stalled conn's state
    -- would add what 200 of them cost (the first half-ClientHello round's
    -- growth) again with every round.
    local warm, final = after[3], after[5]
    local per_round = peak[2] - rss0
    local says = string.format("rss %d KiB at start, %d with 200 stalled, %d after 3 rounds, "
      .. "%d after 5", rss0, peak[2], warm, final)
    assert.is_true(per_round > 0, says)
    assert.is_true(final - warm <= math.max(1024, per_round // 2), says)
    assert.is_true(final - rss0 <= 32 * 1024, says)
    print("\n  stall rounds: " .. says)
    assert.equal(0, srv:stop())
  end)

  it("drop a TLS conn that stops reading as a slow consumer; another keeps echoing", function()
    local go = dir .. "/slow_go"
    local c = py_bg("slow", server.addr.slow, { server.addr.slow, go })
    c.wait("flooding")
    server:wait_log('msg="slow consumer dropped" service=slow ', 30)
    server:wait_log('msg="tls conn closed" reason=slow_consumer service=slow ')
    h.write_file(go, "")
    local r = c.result(30)
    assert.is_true(r.ok, json.encode(r))
    assert.is_true(r.echoed >= 2)
  end)
end)

describe("certificate reload", function()
  after_each(cleanup)

  local APP = [[
return {
  echo = {
    tcp = "127.0.0.1:0",
    framing = "line",
    tls = { cert = "cert.pem", key = "key.pem" },
    on_message = function(conn, line) conn:write("echo:" .. line .. "\n") end,
  },
}
]]

  local function install(dir, cert, key)
    if cert then assert(sh("cp " .. h.quote(dir .. "/" .. cert) .. " " .. h.quote(dir .. "/cert.pem.new")
      .. " && mv " .. h.quote(dir .. "/cert.pem.new") .. " " .. h.quote(dir .. "/cert.pem"))) end
    if key then assert(sh("cp " .. h.quote(dir .. "/" .. key) .. " " .. h.quote(dir .. "/key.pem.new")
      .. " && mv " .. h.quote(dir .. "/key.pem.new") .. " " .. h.quote(dir .. "/key.pem"))) end
  end

  local function start()
    local dir = certs()
    install(dir, "server.pem", "server.key")
    h.write_file(dir .. "/app.lua", APP)
    local server = h.start(dir .. "/app.lua", { cwd = dir, services = { "echo" },
      env = server_env() })
    return dir, server
  end

  local function reload(server, dir)
    return h.run({ "reload", "--pid", tostring(server.pid) }, { cwd = dir })
  end

  -- The serial of the certificate a new handshake gets (verified).
  local function serial(server, dir)
    local out = sh(string.format("timeout 20 openssl s_client -connect %s -servername localhost "
      .. "-CAfile %s -verify_return_error </dev/null 2>/dev/null | openssl x509 -noout -serial",
      server.addr.echo, h.quote(dir .. "/ca.pem")))
    return assert(out:match("^serial=(%x+)\n$"), out)
  end

  it("swaps the certificate under 50 live TLS conns, dropping none", function()
    local dir, server = start()
    local go = dir .. "/go"
    local held = py_bg("hold", server.addr.echo, { "50", go, "--ca", dir .. "/ca.pem" })
    held.wait("ready", 60)
    assert.equal("1001", serial(server, dir))
    install(dir, "server2.pem", "server2.key")
    local code, out, err = reload(server, dir)
    assert.equal(0, code, err)
    assert.matches("^reloaded: version=2 ", out)
    assert.equal("2002", serial(server, dir))
    h.write_file(go, "")
    local r = held.result(60)
    assert.same({ ok = true, echoed = 50, failures = {}, serials = { "1001" } }, r)
    server:wait_log("msg=reloaded")
    assert.equal(2, count(server:log(), 'msg="tls certificate loaded" service=echo '))
    assert.equal(0, server:stop())
  end)

  it("fails with a missing key or a mismatched pair, and the old certificate serves", function()
    local dir, server = start()
    local conn = py_bg("hold", server.addr.echo, { "1", dir .. "/go", "--ca", dir .. "/ca.pem" })
    conn.wait("ready")
    install(dir, "server2.pem", nil)
    assert(os.remove(dir .. "/key.pem"))
    local code, out, err = reload(server, dir)
    assert.equal(1, code, out)
    assert.matches("^reload failed: .*key%.pem: No such file or directory", err)
    assert.equal("1001", serial(server, dir))
    install(dir, nil, "wrong.key")
    code, out, err = reload(server, dir)
    assert.equal(1, code, out)
    assert.matches("^reload failed: .*key%.pem: key does not match the certificate "
      .. ".*cert%.pem", err)
    assert.equal("1001", serial(server, dir))
    install(dir, "expired.pem", "expired.key")
    code, out, err = reload(server, dir)
    assert.equal(1, code, out)
    assert.matches("^reload failed: .*cert%.pem: certificate expired", err)
    assert.equal("1001", serial(server, dir))
    assert.equal(3, count(server:log(), 'msg="reload failed"'))
    -- Fixed, it takes the new pair; the conn held all along still echoes.
    install(dir, "server2.pem", "server2.key")
    assert.equal(0, (reload(server, dir)))
    assert.equal("2002", serial(server, dir))
    h.write_file(dir .. "/go", "")
    assert.same({ ok = true, echoed = 1, failures = {}, serials = { "1001" } }, conn.result())
    assert.equal(0, server:stop())
  end)
end)

describe("lunet check of a tls field", function()
  local dir
  setup(function() dir = certs() end)
  teardown(cleanup)

  local function check(tls)
    h.write_file(dir .. "/app.lua", string.format([[
return { web = { tcp = "127.0.0.1:0", tls = { %s }, on_data = function() end } }
]], tls))
    return h.run({ "check", dir .. "/app.lua" })
  end

  local cases = {
    { "an unknown key", 'cert = "server.pem", key = "server.key", bogus = 1',
      "service 'web': tls: unknown field 'bogus'" },
    { "a missing file", 'cert = "nope.pem", key = "server.key"',
      "service 'web': tls: [^\n]*/nope%.pem: No such file or directory" },
    { "a mismatched key", 'cert = "server.pem", key = "wrong.key"',
      "service 'web': tls: [^\n]*/wrong%.key: key does not match the certificate [^\n]*/server%.pem" },
    { "an expired certificate", 'cert = "expired.pem", key = "expired.key"',
      "service 'web': tls: [^\n]*/expired%.pem: certificate expired %(not_after %d%d%d%d%-" },
  }
  for _, case in ipairs(cases) do
    it("exits 1 naming the reason for " .. case[1], function()
      local code, out, err = check(case[2])
      assert.equal(1, code, out .. err)
      assert.matches("app%.lua: " .. case[3], err)
    end)
  end

  it("passes a good pair", function()
    local code, out, err = check('cert = "server.pem", key = "server.key"')
    assert.equal(0, code, err)
    assert.matches("ok: web", out .. err)
  end)
end)

describe("lunet.connect with tls", function()
  after_each(cleanup)

  it("verifies the server against the CA and its name, and says why it refused", function()
    local dir = certs()
    local addr = s_server(dir, "-cert server.pem -key server.key -rev -alpn x-lunet")
    local mtls, mtls_out = s_server(dir,
      "-cert server.pem -key server.key -rev -Verify 1 -CAfile ca.pem")
    -- Accepts one conn and never answers (the kernel completes the TCP
    -- handshake); killed by cleanup.
    local silent = h.spawn({ "-c", "import socket, time\n"
      .. "s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen()\n"
      .. "print(s.getsockname()[1], flush=True); c = s.accept(); time.sleep(60)" },
      { bin = "python3" })
    local port = h.wait_for(function() return silent:stdout():match("(%d+)\n") end, 10,
      "the silent listener's port")
    local code, _, log = h.run({ "run", h.SCRIPTS .. "/tls_connect.lua", "--", addr, dir, mtls,
      "127.0.0.1:" .. port }, { timeout = 30 })
    assert.equal(0, code, log)
    local line = assert(log:match('msg="tls connect done"[^\n]*'), log)
    local function case(name)
      return assert(line:match(" " .. name .. '="([^"]*)"'), name .. " in " .. line)
    end
    assert.equal("connected=true reply=gnip version=TLSv1.3 alpn=x-lunet reason=closed", case("ok"))
    local refused = "connected=nil reply=nil version=nil alpn=nil reason=tls: certificate verify failed: "
    assert.equal(refused .. "hostname mismatch", case("wrong_name"))
    assert.equal(refused .. "unable to get local issuer certificate", case("unknown_ca"))
    assert.equal(refused .. "unable to get local issuer certificate", case("system_store"))
    assert.equal("connected=true reply=gnip version=TLSv1.3 alpn=nil reason=closed", case("no_verify"))
    assert.equal("connected=true reply=gnip version=TLSv1.3 alpn=nil reason=closed", case("client_cert"))
    assert.equal("connected=nil write=nil,connecting reason=closed", case("handshaking"))
    -- s_server saw and verified the client's certificate.
    assert.matches("depth=0 CN = client\nverify return:1", h.read_file(mtls_out))
  end)
end)
