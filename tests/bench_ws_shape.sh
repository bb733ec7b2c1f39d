#!/usr/bin/env bash
# bench/ws_load, the load generator of `scripts/bench ws`, against servers
# that are not lunet (whose WebSocket server is not there yet): the node
# peer (bench/peers/ws-node.js, Debian's node-ws) and a few lines of
# Python that misbehave on purpose. Checks the output line of each mode
# has its keys and that the counts are right (the echoes ws_load counts
# against those node made; every fan-out message at every subscriber),
# and that a server that closes, answers the handshake wrongly, sends a
# close frame or echoes something else makes ws_load say why and exit 1.
# ctest passes WS_LOAD_BIN. Exit 77 (skipped) without node and node-ws.
set -euo pipefail
cd "$(dirname "$0")/.."
WS_LOAD=${WS_LOAD_BIN:?WS_LOAD_BIN is the ws_load binary under test}
TMP=$(mktemp -d "${TMPDIR:-/tmp}/bench-ws.XXXXXX")
PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$TMP"
}
trap cleanup EXIT

fail() {
  echo "FAIL: $*"
  exit 1
}

if ! command -v node >/dev/null || [[ ! -d /usr/share/nodejs/ws ]]; then
  echo "skipped: needs node and node-ws (apt-get install nodejs node-ws)"
  exit 77
fi

NUM='[0-9]+(\.[0-9]+)?'

# Waits for "listening ... addr=IP:PORT" (node) or "port N" (python) in
# $1; sets ADDR.
wait_addr() {
  local log=$1 pid=$2 i
  for ((i = 0; i < 200; i++)); do
    # The file appears only once the background job has opened it.
    ADDR=$(sed -nE 's/.*listening .*addr=([^ ]+).*/\1/p
      s/^port ([0-9]+)$/127.0.0.1:\1/p' "$log" 2>/dev/null | head -1 || true)
    [[ -z $ADDR ]] || return 0
    kill -0 "$pid" 2>/dev/null || fail "server exited: $(cat "$log")"
    sleep 0.05
  done
  fail "no listening line in $log: $(cat "$log")"
}

# The keys of a line, in order, each with a number (mode= aside).
check_keys() {
  local line=$1 want=$2 keys="" kv
  for kv in $line; do
    keys+=" ${kv%%=*}"
    [[ ${kv%%=*} == mode || ${kv#*=} =~ ^$NUM$ ]] ||
      fail "${kv%%=*} is not a number in: $line"
  done
  [[ ${keys# } == "$want" ]] || fail "keys '${keys# }', want '$want'"
}

field() { sed -nE "s/^(.* )?$1=([^ ]+).*/\\2/p" <<<"$2"; }

# {== against the node peer
NODE_PATH=/usr/share/nodejs node bench/peers/ws-node.js 127.0.0.1:0 \
  2>"$TMP/node.log" &
NODE_PID=$!
PIDS+=("$NODE_PID")
wait_addr "$TMP/node.log" "$NODE_PID"

timeout 30 "$WS_LOAD" --addr "$ADDR" --conns 4 --size 100 --duration 1 \
  --warmup 0.2 >"$TMP/echo.out" 2>"$TMP/echo.err" ||
  fail "echo against node exited $?: $(cat "$TMP/echo.err")"
line=$(cat "$TMP/echo.out")
check_keys "$line" "mode conns size msgs secs msgs_per_s mb_per_s p50_us p99_us total_msgs errors"
[[ $line == "mode=echo conns=4 size=100 "* ]] || fail "echo line: $line"
msgs=$(field msgs "$line") total=$(field total_msgs "$line")
((msgs > 0 && total >= msgs)) || fail "msgs=$msgs total_msgs=$total"
[[ $(field errors "$line") == 0 ]] || fail "errors in: $line"

timeout 30 "$WS_LOAD" --addr "$ADDR" --mode echo --conns 2 --size 70000 \
  --duration 0.5 --warmup 0 >"$TMP/big.out" 2>"$TMP/big.err" ||
  fail "70000 B echo (64-bit length) exited $?: $(cat "$TMP/big.err")"
total=$((total + $(field total_msgs "$(cat "$TMP/big.out")")))

timeout 60 "$WS_LOAD" --addr "$ADDR" --mode fanout --conns 20 \
  --messages 300 >"$TMP/fan.out" 2>"$TMP/fan.err" ||
  fail "fanout against node exited $?: $(cat "$TMP/fan.err")"
line=$(cat "$TMP/fan.out")
check_keys "$line" "mode subs size sent delivered secs deliveries_per_s sent_per_s p50_us p99_us missing errors"
[[ $(field sent "$line") == 300 && $(field delivered "$line") == 6000 &&
  $(field missing "$line") == 0 ]] ||
  fail "fanout: want 300 sent, 6000 delivered: $line"

timeout 30 "$WS_LOAD" --addr "$ADDR" --mode idle --conns 50 \
  >"$TMP/idle.out" 2>"$TMP/idle.err" &
IDLE_PID=$!
PIDS+=("$IDLE_PID")
for ((i = 0; i < 200; i++)); do
  grep -q '^ready ' "$TMP/idle.out" && break
  kill -0 "$IDLE_PID" 2>/dev/null || fail "idle exited: $(cat "$TMP/idle.err")"
  sleep 0.05
done
[[ $(head -1 "$TMP/idle.out") == "ready conns=50" ]] ||
  fail "idle: '$(head -1 "$TMP/idle.out")', want 'ready conns=50'"
kill -TERM "$IDLE_PID"
status=0
wait "$IDLE_PID" || status=$?
((status == 0)) || fail "idle exited $status after SIGTERM: $(cat "$TMP/idle.err")"
held="^held conns=50 held_s=$NUM errors=0\$"
[[ $(sed -n 2p "$TMP/idle.out") =~ $held ]] ||
  fail "idle's last line: '$(sed -n 2p "$TMP/idle.out")'"

# Every echo ws_load counted, node made; node may have made one more per
# connection (in flight when the run stopped), no more.
kill -TERM "$NODE_PID"
wait "$NODE_PID" || fail "node exited $? after SIGTERM"
echoed=$(sed -nE 's/^ws-node: echoed=([0-9]+).*/\1/p' "$TMP/node.log")
((echoed >= total && echoed <= total + 6)) ||
  fail "ws_load counted $total echoes, node made ${echoed:-none}"
# }==

# {== against servers that misbehave: MODE is close (after the request),
# accept (a wrong Sec-WebSocket-Accept), bye (a close frame, 1001, after
# the handshake), corrupt (echoes with one byte changed), mute (reads,
# never answers), frag (echoes in fragments, a ping among them: not a
# failure) or drop (a /pub to /sub hub that loses every message
# from m3 on).
cat >"$TMP/bad.py" <<'EOF'
import base64, hashlib, socket, sys, threading
mode = sys.argv[1]
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
subs = []

def recv_frame(s):
    h = s.recv(2, socket.MSG_WAITALL)
    n = h[1] & 127
    if n == 126: n = int.from_bytes(s.recv(2, socket.MSG_WAITALL), "big")
    elif n == 127: n = int.from_bytes(s.recv(8, socket.MSG_WAITALL), "big")
    mask = s.recv(4, socket.MSG_WAITALL)
    data = s.recv(n, socket.MSG_WAITALL) if n else b""
    return h[0] & 15, bytes(b ^ mask[i % 4] for i, b in enumerate(data))

def frame(op, data, fin=0x80):
    n = len(data)
    head = bytes([fin | op, n]) if n < 126 else \
        bytes([fin | op, 126]) + n.to_bytes(2, "big")
    return head + data

def fragmented(op, data):
    # three pieces with a ping between them: a client must join them and
    # may answer the ping in the middle
    a, b = len(data) // 3, 2 * len(data) // 3
    return (frame(op, data[:a], 0) + frame(0, data[a:b], 0) +
            frame(9, b"hi") + frame(0, data[b:]))

def serve(s):
    req = b""
    while b"\r\n\r\n" not in req:
        chunk = s.recv(4096)
        if not chunk: return
        req += chunk
    if mode == "close":
        s.close(); return
    key = [l.split(b":", 1)[1].strip() for l in req.split(b"\r\n")
           if l.lower().startswith(b"sec-websocket-key:")][0]
    accept = base64.b64encode(hashlib.sha1(key + GUID).digest())
    if mode == "accept": accept = base64.b64encode(b"x" * 20)
    s.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
              b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept +
              b"\r\n\r\n")
    if mode == "bye":
        s.sendall(frame(8, (1001).to_bytes(2, "big") + b"going away"))
    if mode == "drop" and req.startswith(b"GET /sub "):
        subs.append(s)
        return
    while True:
        op, data = recv_frame(s)
        if mode == "corrupt":
            data = data[:-1] + b"?"
        if mode == "drop":
            if data[:1] != b"m" or int(data[1:].split(b" ")[0]) < 3:
                for sub in list(subs): sub.sendall(frame(op, data))
        elif mode == "frag" and op != 10:
            s.sendall(fragmented(op, data))
        elif mode not in ("mute", "frag"):
            s.sendall(frame(op, data))

ls = socket.socket()
ls.bind(("127.0.0.1", 0))
ls.listen(64)
print("port", ls.getsockname()[1], flush=True)
while True:
    c, _ = ls.accept()
    threading.Thread(target=lambda c=c: (serve(c), None), daemon=True).start()
EOF

# Fragmented echoes with pings inside them are echoes all the same.
python3 "$TMP/bad.py" frag >"$TMP/frag.log" 2>&1 &
FRAG_PID=$!
PIDS+=("$FRAG_PID")
wait_addr "$TMP/frag.log" "$FRAG_PID"
timeout 30 "$WS_LOAD" --addr "$ADDR" --conns 2 --size 1000 --duration 0.5 \
  --warmup 0 >"$TMP/frag.out" 2>"$TMP/frag.err" ||
  fail "fragmented echo exited $?: $(cat "$TMP/frag.err")"
(($(field msgs "$(cat "$TMP/frag.out")") > 0)) ||
  fail "no fragmented echo counted: $(cat "$TMP/frag.out")"
kill "$FRAG_PID"

# ws_load (echo, or the mode in $3) must exit 1 with "ws_load: ...WANT..."
# on stderr.
expect_failure() {
  local mode=$1 want=$2 load=${3:-echo} pid status=0
  python3 "$TMP/bad.py" "$mode" >"$TMP/bad-$mode.log" 2>&1 &
  pid=$!
  PIDS+=("$pid")
  wait_addr "$TMP/bad-$mode.log" "$pid"
  timeout 30 "$WS_LOAD" --addr "$ADDR" --mode "$load" --conns 3 \
    --duration 1 --warmup 0 --messages 100 \
    >"$TMP/bad-$mode.out" 2>"$TMP/bad-$mode.err" || status=$?
  kill "$pid"
  ((status == 1)) || fail "$mode: ws_load exited $status, want 1" \
    "($(cat "$TMP/bad-$mode.err"))"
  grep -q "^ws_load: .*$want" "$TMP/bad-$mode.err" ||
    fail "$mode: stderr '$(cat "$TMP/bad-$mode.err")' lacks '$want'"
  [[ $(cat "$TMP/bad-$mode.out") =~ " errors="[1-9] ]] ||
    fail "$mode: no errors counted in '$(cat "$TMP/bad-$mode.out")'"
}

expect_failure close "server closed the connection"
expect_failure accept "wrong Sec-WebSocket-Accept"
expect_failure bye "server sent close (code 1001: going away)"
expect_failure corrupt "echo of message 1 differs"
expect_failure mute "no echo came back in the 1.000 s measured"
expect_failure drop "stalled: no delivery for 5000 ms, 6 of 300 delivered" \
  fanout
# }==

echo "ok: ws_load's output has its shape and its counts, against node" \
  "and against servers that fail"
