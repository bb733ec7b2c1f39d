# bench/workloads/ws.sh: `scripts/bench ws`.
#:  ws [--runs N (3)] [--duration S (3)] [--conns N (50)]
#:     [--size B[,B..] (64,4096)] [--subs N (1000)] [--messages M (500)]
#:     [--idle N (5000)] [--settle S (2)] [--warmup S (1); 0 for none]
#
# WebSocket servers: lunet (bench/ws_echo.lua, bench/ws_fanout.lua, on
# lunet's router:websocket) against Go with gorilla/websocket
# (bench/peers/ws-gorilla, GOMAXPROCS=1) and node with ws
# (bench/peers/ws-node.js), each one process on SERVER_CPU, serving the
# same routes. bench/ws_load runs on LOADGEN_CPU. Three scenarios, each on
# a freshly started server:
#   echo    --conns connections, each keeping one masked text message of
#           --size bytes in flight (closed loop): msgs/s, round-trip
#           p50/p99 and server CPU us per message (utime+stime sampled
#           around the whole ws_load run, over its every round trip)
#   fanout  --subs subscribers on /sub, one publisher on /pub sending
#           --messages messages of 64 B as fast as they are delivered (8
#           in flight): deliveries/s, p50/p99 from send to receipt (the
#           time is in the message), server CPU us per delivery
#   idle    --idle connections on /echo, handshake done, held idle:
#           server RSS per connection (RSS delta / connections, after a
#           one-connection echo so the baseline is a server that served)
# lunet's column is for when lunet has a WebSocket server: a lunet that
# does not start, or fails a scenario, is reported ("FAILED: why") and
# the peers are measured all the same, but the benchmark then exits 1.

WS_SCENARIOS="echo fanout idle"
WS_SERVERS="lunet gorilla node"
WS_PEERS="gorilla node"
WS_HOLD_S=60       # ws_load --mode idle lets go by itself after this
WS_FANOUT_SIZE=64
declare -A WS_FAILED=() # "server/scenario" -> why it failed this time

# Go with gorilla/websocket: golang-go and Debian's library, built like
# the HTTP Go peers (GO111MODULE off, offline, caches in build-bench/go).
ws_prepare_gorilla() {
  local src=$ROOT/bench/peers/ws-gorilla log=$TMP_DIR/go-build-ws.log
  WS_GORILLA_BIN=$BUILD_DIR/go/ws-gorilla
  if ! ensure_packages golang-go golang-github-gorilla-websocket-dev; then
    http_skip gorilla "$INSTALL_WHY"
    return
  fi
  GO_BIN=$(command -v go || echo /usr/lib/go/bin/go)
  [[ -x $GO_BIN ]] || { http_skip gorilla "no go binary"; return; }
  if [[ -x $WS_GORILLA_BIN && $WS_GORILLA_BIN -nt $src/main.go ]]; then
    return
  fi
  mkdir -p "$BUILD_DIR/go/cache" "$BUILD_DIR/go/path"
  if ! (cd "$src" && env GOENV=off GOFLAGS= GOPROXY=off \
    GOCACHE="$BUILD_DIR/go/cache" \
    GOPATH="$BUILD_DIR/go/path:/usr/share/gocode" \
    GO111MODULE=off timeout 300 "$GO_BIN" build -o "$WS_GORILLA_BIN" .) \
    >"$log" 2>&1; then
    http_skip gorilla "go build failed: $(tail -1 "$log")"
  fi
}

# node with Debian's node-ws, found through NODE_PATH.
ws_prepare_node() {
  if ! ensure_packages nodejs node-ws; then
    http_skip node "$INSTALL_WHY"
    return
  fi
  NODE_BIN=$(command -v node || command -v nodejs || true)
  [[ -n $NODE_BIN ]] || http_skip node "no node binary after installing"
}

# Like core.sh's start_server, but a server that exits or never prints
# its "listening service=SERVICE" line returns 1 with WS_WHY instead of
# ending the benchmark: lunet without router:websocket exits at load.
ws_start_server() {
  local service=$1 log=$2 line i
  shift 2
  (cd "$ROOT" && exec taskset -c "$SERVER_CPU" "$@" </dev/null >/dev/null \
    2>"$log") &
  SERVER_PID=$!
  SERVER_LOG=$log
  PIDS+=("$SERVER_PID")
  for ((i = 0; i < READY_WAIT_S * 20; i++)); do
    line=$(grep -m1 -E "(^| |=)listening .*service=$service( |$).*addr=" \
      "$log" 2>/dev/null || true)
    if [[ -n $line ]]; then
      SERVER_ADDR=$(sed -E 's/.* addr=("?)([^ "]+).*/\2/' <<<"$line")
      return 0
    fi
    alive "$SERVER_PID" || break
    sleep 0.05
  done
  if alive "$SERVER_PID"; then
    WS_WHY="no 'listening service=$service' line in ${READY_WAIT_S}s"
  else
    WS_WHY="exited before listening (no router:websocket yet?):"
    WS_WHY+=" $(grep -v '^$' "$log" | tail -1 | cut -c1-240)"
  fi
  stop_pid "$SERVER_PID" || true
  forget_pid "$SERVER_PID"
  return 1
}

# Starts server $1 for scenario $2 (lunet's script depends on it; the
# peers serve every route); sets SERVER_PID, SERVER_ADDR and SERVER_LOG,
# or returns 1 with WS_WHY.
ws_start() {
  local name=$1 scenario=$2 log=$TMP_DIR/ws-$1-$2-$3.log script
  WS_WHY=""
  case $name in
    lunet)
      script=bench/ws_echo.lua
      [[ $scenario != fanout ]] || script=bench/ws_fanout.lua
      ws_start_server web "$log" env PORT=0 "$LUNET_BIN" run "$script"
      ;;
    gorilla)
      ws_start_server ws "$log" env GOMAXPROCS=1 "$WS_GORILLA_BIN" \
        -addr 127.0.0.1:0
      ;;
    node)
      ws_start_server ws "$log" env NODE_PATH=/usr/share/nodejs \
        "$NODE_BIN" bench/peers/ws-node.js 127.0.0.1:0
      ;;
  esac
}

# Runs ws_load with "$@" (run_load: pinned, bounded by $2 seconds, output
# in $1) with the server's CPU sampled around it: sets LOAD_TICKS,
# LOAD_USR and LOAD_LINE, or returns 1 with WS_WHY.
ws_load() {
  local out=$1 limit=$2 usr0 sys0 usr1 sys1 status=0
  shift 2
  read -r usr0 sys0 <<<"$(cpu_ticks "$SERVER_PID")"
  run_load "$out" "$limit" "$WS_LOAD_BIN" --addr "$SERVER_ADDR" "$@" ||
    status=$?
  if ! alive "$SERVER_PID"; then
    WS_WHY="died under load: $(tail -2 "$SERVER_LOG" | tr '\n' ' ')"
    return 1
  fi
  read -r usr1 sys1 <<<"$(cpu_ticks "$SERVER_PID")"
  if ((status != 0)); then
    WS_WHY="ws_load exit $status: $(tail -1 "$out.err")"
    return 1
  fi
  LOAD_TICKS=$((usr1 + sys1 - usr0 - sys0)) LOAD_USR=$((usr1 - usr0))
  LOAD_LINE=$(head -1 "$out" | sed -E 's/^mode=[a-z]+ //')
}

# echo: an unmeasured warmup inside the run, then --duration measured.
ws_echo() {
  local size=$1 out=$TMP_DIR/ws-load.out total secs
  ws_load "$out" $((OPT_DURATION + OPT_WARMUP + 90)) --mode echo \
    --conns "$OPT_CONNS" --size "$size" --duration "$OPT_DURATION" \
    --warmup "$OPT_WARMUP" || return 1
  total=$(field total_msgs "$LOAD_LINE") secs=$(field secs "$LOAD_LINE")
  LOAD_LINE=$(sed -E 's/ size=[0-9]+//' <<<"$LOAD_LINE") # in the prefix
  WS_FIELDS="$LOAD_LINE cpu_ticks=$LOAD_TICKS usr_ticks=$LOAD_USR"
  WS_FIELDS+=" cpu_us_per_msg=$(us_per "$LOAD_TICKS" "$total")"
  WS_FIELDS+=" usr_us_per_msg=$(us_per "$LOAD_USR" "$total")"
  WS_FIELDS+=" busy_pct=$(busy_pct "$LOAD_TICKS" \
    "$(awk -v s="$secs" -v w="$OPT_WARMUP" 'BEGIN { print s + w }')")"
}

# fanout: the whole run is measured; CPU over it, per delivery.
ws_fanout() {
  local out=$TMP_DIR/ws-load.out n
  # ws_load's own bound (connects, sync, 2,000 deliveries/s) and some.
  ws_load "$out" $((120 + OPT_SUBS * OPT_MESSAGES / 2000)) --mode fanout \
    --conns "$OPT_SUBS" --size "$WS_FANOUT_SIZE" --messages "$OPT_MESSAGES" ||
    return 1
  n=$(field delivered "$LOAD_LINE")
  WS_FIELDS="$LOAD_LINE cpu_ticks=$LOAD_TICKS usr_ticks=$LOAD_USR"
  WS_FIELDS+=" cpu_us_per_delivery=$(us_per "$LOAD_TICKS" "$n")"
}

# idle: one echo so the server has served, settle, RSS; ws_load holds
# --idle connections, settle, RSS again. A file of its own per run (see
# mem.sh: a reused one could show the last run's "ready").
ws_idle() {
  local name=$1 run=$2 out=$TMP_DIR/ws-idle-$1-$2.out ipid t0
  local rss0 rss1 status=0
  ws_load "$TMP_DIR/ws-probe.out" 30 --mode echo --conns 1 --size 64 \
    --duration 0.2 --warmup 0 || return 1
  sleep "$OPT_SETTLE"
  rss0=$(rss_kb "$SERVER_PID")
  timeout -k 2 $((WS_HOLD_S + 90)) taskset -c "$LOADGEN_CPU" \
    "$WS_LOAD_BIN" --addr "$SERVER_ADDR" --mode idle --conns "$OPT_IDLE" \
    --max-seconds "$WS_HOLD_S" </dev/null >"$out" 2>"$out.err" &
  ipid=$!
  PIDS+=("$ipid")
  t0=$SECONDS
  until grep -q '^ready ' "$out"; do
    if ! alive "$ipid" || ((SECONDS - t0 >= 80)); then
      stop_pid "$ipid" || true
      forget_pid "$ipid"
      WS_WHY="ws_load --mode idle not ready: $(tail -1 "$out.err")"
      return 1
    fi
    sleep 0.1
  done
  sleep "$OPT_SETTLE"
  if ! alive "$SERVER_PID"; then
    stop_pid "$ipid" || true
    forget_pid "$ipid"
    WS_WHY="died holding $OPT_IDLE conns: $(tail -1 "$SERVER_LOG")"
    return 1
  fi
  rss1=$(rss_kb "$SERVER_PID")
  stop_pid "$ipid" || status=$?
  forget_pid "$ipid"
  if ((status != 0)); then
    WS_WHY="ws_load --mode idle exit $status: $(tail -1 "$out.err")"
    return 1
  fi
  WS_FIELDS="conns=$OPT_IDLE rss_before_kb=$rss0 rss_held_kb=$rss1"
  WS_FIELDS+=" bytes_per_conn=$(awk -v a="$rss0" -v b="$rss1" \
    -v n="$OPT_IDLE" 'BEGIN { printf "%.0f", (b - a) * 1024 / n }')"
}

# A failure of lunet is kept (the benchmark exits 1 at the end) and the
# peers go on; a failing peer is skipped for the scenario, with the why.
ws_fail() {
  local name=$1 key=$2 why=$3
  WS_FAILED[$name/$key]=$why
  if [[ $name == lunet ]]; then
    echo "lunet FAILED in ws $key: $why"
  else
    echo "skipped: $name in ws $key: $why"
  fi
}

# core.sh's check_lunet_log without dying: errors in lunet's log fail the
# scenario (WS_WHY) so the peers still run; warnings are shown.
ws_check_lunet_log() {
  local log=$1 key=$2 bad n
  bad=$(grep -m1 -E 'level=error|handler error' "$log" || true)
  if [[ -n $bad ]]; then
    WS_WHY="logged errors ($log): $(cut -c1-200 <<<"$bad")"
    return 1
  fi
  n=$(grep -c 'level=warn' "$log" || true)
  if ((n > 0)); then
    echo "scripts/bench: lunet logged $n warnings during ws $key, first:" \
      "$(grep -m1 'level=warn' "$log")" >&2
  fi
}

# One server, one scenario (echo: one size), one run.
ws_one() {
  local name=$1 scenario=$2 size=$3 run=$4 key=$2 line prefix
  [[ $scenario != echo ]] || key=echo-$size
  if [[ -n ${HTTP_SKIP[$name]:-} || -n ${WS_FAILED[$name/$key]:-} ]]; then
    return
  fi
  if ! ws_start "$name" "$scenario" "$run"; then
    ws_fail "$name" "$key" "$WS_WHY"
    return
  fi
  local ok=0
  case $scenario in
    echo) ws_echo "$size" && ok=1 ;;
    fanout) ws_fanout && ok=1 ;;
    idle) ws_idle "$name" "$run" && ok=1 ;;
  esac
  stop_server "$name"
  if ((!ok)); then
    ws_fail "$name" "$key" "$WS_WHY"
    return
  fi
  if [[ $name == lunet ]] && ! ws_check_lunet_log "$SERVER_LOG" "$key"; then
    ws_fail lunet "$key" "$WS_WHY"
    return
  fi
  prefix="bench=ws scenario=$scenario"
  [[ $scenario != echo ]] || prefix+=" size=$size"
  line="$prefix server=$name run=$run $WS_FIELDS"
  echo "$line" >>"$RESULTS"
  echo "  $line" >&2
}

# lunet/PEER: the median of the per-run ratios of KEY ("-" for none).
ws_ratio() {
  local p=$1 peer=$2 key=$3 r
  r=$(paired_ratios "$RESULTS" "$p server=lunet" "$p server=$peer" "$key" |
    median_or_empty)
  if [[ -z $r ]]; then echo -; else awk -v r="$r" 'BEGIN { printf "%.2f", r }'; fi
}

ws_ratios() {
  local p=$1 peer line
  shift
  for peer in $WS_PEERS; do
    line="lunet/$peer (median of per-run ratios):"
    local k
    for k in "$@"; do line+=" ${k%%:*} $(ws_ratio "$p" "$peer" "${k#*:}")"; done
    echo "$line"
  done
}

# A server without a line for this scenario: why.
ws_missing_row() {
  local name=$1 key=$2
  if [[ -n ${WS_FAILED[$name/$key]:-} ]]; then
    printf '%-8s %s: %s\n' "$name" \
      "$([[ $name == lunet ]] && echo FAILED || echo skipped)" \
      "${WS_FAILED[$name/$key]}"
  else
    printf '%-8s skipped: %s\n' "$name" "${HTTP_SKIP[$name]:-no runs}"
  fi
}

ws_table_echo() {
  local size=$1 name p="bench=ws scenario=echo size=$1"
  printf '\nws echo: %s conns, one %s B text message in flight each, %ss,' \
    "$OPT_CONNS" "$size" "$OPT_DURATION"
  printf ' runs=%s (medians)\n' "$OPT_RUNS"
  printf '%-8s %10s %9s %9s %11s %11s %7s\n' server msgs/s p50_us p99_us \
    cpu_us/msg usr_us/msg busy%
  for name in $WS_SERVERS; do
    if ! grep -qF -- "$p server=$name " "$RESULTS"; then
      ws_missing_row "$name" "echo-$size"
      continue
    fi
    printf '%-8s %10.0f %9.1f %9.1f %11.2f %11.2f %7.0f\n' "$name" \
      "$(stat_of "$p server=$name" msgs_per_s)" \
      "$(stat_of "$p server=$name" p50_us)" \
      "$(stat_of "$p server=$name" p99_us)" \
      "$(stat_of "$p server=$name" cpu_us_per_msg)" \
      "$(stat_of "$p server=$name" usr_us_per_msg)" \
      "$(stat_of "$p server=$name" busy_pct)"
  done
  ws_ratios "$p" msgs/s:msgs_per_s cpu/msg:cpu_us_per_msg
}

ws_table_fanout() {
  local name p="bench=ws scenario=fanout"
  printf '\nws fanout: %s subscribers, %s messages of %s B from one' \
    "$OPT_SUBS" "$OPT_MESSAGES" "$WS_FANOUT_SIZE"
  printf ' publisher, 8 in flight, runs=%s (medians)\n' "$OPT_RUNS"
  printf '%-8s %12s %9s %10s %10s %14s\n' server deliveries/s sent/s \
    p50_us p99_us cpu_us/deliv
  for name in $WS_SERVERS; do
    if ! grep -qF -- "$p server=$name " "$RESULTS"; then
      ws_missing_row "$name" fanout
      continue
    fi
    printf '%-8s %12.0f %9.1f %10.1f %10.1f %14.3f\n' "$name" \
      "$(stat_of "$p server=$name" deliveries_per_s)" \
      "$(stat_of "$p server=$name" sent_per_s)" \
      "$(stat_of "$p server=$name" p50_us)" \
      "$(stat_of "$p server=$name" p99_us)" \
      "$(stat_of "$p server=$name" cpu_us_per_delivery)"
  done
  ws_ratios "$p" deliveries/s:deliveries_per_s p99:p99_us \
    cpu/deliv:cpu_us_per_delivery
}

ws_table_idle() {
  local name p="bench=ws scenario=idle"
  printf '\nws idle: server RSS per idle WebSocket, %s conns (handshake' \
    "$OPT_IDLE"
  printf ' done), %ss settle, runs=%s (medians)\n' "$OPT_SETTLE" "$OPT_RUNS"
  printf '%-8s %10s %14s %12s\n' server bytes/conn rss_before_kb rss_held_kb
  for name in $WS_SERVERS; do
    if ! grep -qF -- "$p server=$name " "$RESULTS"; then
      ws_missing_row "$name" idle
      continue
    fi
    printf '%-8s %10.0f %14.0f %12.0f\n' "$name" \
      "$(stat_of "$p server=$name" bytes_per_conn)" \
      "$(stat_of "$p server=$name" rss_before_kb)" \
      "$(stat_of "$p server=$name" rss_held_kb)"
  done
  ws_ratios "$p" bytes/conn:bytes_per_conn
}

parse_ws_options() {
  OPT_RUNS=3 OPT_DURATION=3 OPT_CONNS=50 OPT_SUBS=1000 OPT_MESSAGES=500
  OPT_IDLE=5000 OPT_SETTLE=2 OPT_WARMUP=1 OPT_SIZES=(64 4096)
  local -a sizes
  while (($# > 0)); do
    [[ $# -ge 2 ]] || die_usage "$1 needs a value"
    case $1 in
      --runs) OPT_RUNS=$2 ;;
      --duration) OPT_DURATION=$2 ;;
      --conns) OPT_CONNS=$2 ;;
      --size) IFS=, read -ra sizes <<<"$2"; OPT_SIZES=("${sizes[@]}") ;;
      --subs) OPT_SUBS=$2 ;;
      --messages) OPT_MESSAGES=$2 ;;
      --idle) OPT_IDLE=$2 ;;
      --settle) OPT_SETTLE=$2 ;;
      --warmup) OPT_WARMUP=$2 ;;
      *) die_usage "unknown option '$1'" ;;
    esac
    shift 2
  done
  parse_positive "$OPT_RUNS" "$OPT_DURATION" "$OPT_CONNS" "$OPT_SUBS" \
    "$OPT_MESSAGES" "$OPT_IDLE" "${OPT_SIZES[@]}"
  ((OPT_DURATION <= 120)) || die_usage "--duration: whole seconds, <= 120"
  ((OPT_CONNS <= 10000)) || die_usage "--conns: at most 10000"
  ((OPT_SUBS <= 15000)) || die_usage "--subs: at most 15000"
  ((OPT_IDLE <= 15000)) || die_usage "--idle: at most 15000"
  ((OPT_MESSAGES <= 100000)) || die_usage "--messages: at most 100000"
  local s
  for s in "${OPT_SIZES[@]}"; do
    ((s <= 1048576)) || die_usage "--size: at most 1048576"
  done
  parse_seconds "$OPT_SETTLE"
  [[ $OPT_WARMUP =~ ^[0-9]+$ ]] && ((OPT_WARMUP <= 60)) ||
    die_usage "--warmup: whole seconds 0..60"
}

# Every scenario for lunet, gorilla and node, each on a fresh server, the
# order of the servers rotating between runs; then one table per scenario
# and, if lunet failed anywhere, exit 1 after them.
bench_ws() {
  parse_ws_options "$@"
  build
  check_base_env
  WS_LOAD_BIN=${WS_LOAD_BIN:-$BUILD_DIR/bench/ws_load}
  check_bins "$WS_LOAD_BIN"
  local most=$OPT_IDLE
  ((OPT_SUBS <= most)) || most=$OPT_SUBS
  raise_nofile $((most + 256)) "$most conns"
  ws_prepare_gorilla
  ws_prepare_node
  mkdir -p "$BUILD_DIR/results"
  RESULTS=$BUILD_DIR/results/ws-$(date +%Y%m%d-%H%M%S).txt
  {
    results_header "ws runs=$OPT_RUNS duration=$OPT_DURATION" \
      "conns=$OPT_CONNS sizes=$(IFS=,; echo "${OPT_SIZES[*]}")" \
      "subs=$OPT_SUBS messages=$OPT_MESSAGES idle=$OPT_IDLE" \
      "settle=$OPT_SETTLE warmup=$OPT_WARMUP"
    echo "# lunet=$LUNET_BIN ws_load=$WS_LOAD_BIN" \
      "gorilla=${WS_GORILLA_BIN:-none} node=${NODE_BIN:-none}" \
      "node_version=$("${NODE_BIN:-true}" --version 2>/dev/null || echo none)"
  } >"$RESULTS"
  local run scenario name size
  for ((run = 1; run <= OPT_RUNS; run++)); do
    for scenario in $WS_SCENARIOS; do
      local -a sizes=(-)
      [[ $scenario != echo ]] || sizes=("${OPT_SIZES[@]}")
      for size in "${sizes[@]}"; do
        for name in $(rotate $((run - 1)) $WS_SERVERS); do
          ws_one "$name" "$scenario" "$size" "$run"
        done
      done
    done
  done
  for size in "${OPT_SIZES[@]}"; do ws_table_echo "$size"; done
  ws_table_fanout
  ws_table_idle
  printf '\nraw results: %s\n' "$RESULTS"
  local key failed=""
  for key in "${!WS_FAILED[@]}"; do
    [[ $key != lunet/* ]] || failed+=" ${key#lunet/}"
  done
  [[ -z $failed ]] || die "lunet failed in ws:$failed (see the FAILED rows)"
}
