# bench/workloads/mem.sh: `scripts/bench mem`.
#:  mem [--runs N (3)] [--conns N (5000)] [--settle S (2)]
#
# Server RSS per idle connection by RSS delta at --conns (idle_conns, with
# --request / for HTTP so each keep-alive conn served one request).

MEM_SERVERS="tcp/lunet tcp/ceiling http/lunet http/ceiling http/nginx-lua
  http/go"
MEM_HOLD_S=60   # idle_conns lets go by itself after this (a backstop)

# One echo round trip over a fresh connection (bash's /dev/tcp), so the
# server has served once before its baseline RSS is taken.
mem_echo_probe() {
  local fd got=""
  exec {fd}<>"/dev/tcp/${SERVER_ADDR%:*}/${SERVER_ADDR##*:}" ||
    die "cannot connect to $SERVER_ADDR for the echo probe"
  printf 'ping\n' >&"$fd"
  read -r -t 5 got <&"$fd" || true
  exec {fd}>&-
  [[ $got == ping ]] || die "echo probe: got '$got' from $SERVER_ADDR"
}

# Starts server KIND/NAME and has it serve once (an echo, or GET / with
# the body checked); returns 1 with HTTP_WHY for a peer that fails.
mem_start() {
  local kind=$1 name=$2 log=$TMP_DIR/mem-$1-$2.log
  HTTP_WHY=""
  if [[ $kind == tcp ]]; then
    echo_server_cmd "$name"
    start_server echo "$log" "${ECHO_CMD[@]}"
    mem_echo_probe
    return 0
  fi
  http_start "$name" hello || return 1
  if ! http_check_body "$name" "http://$SERVER_ADDR/" "$HTTP_HELLO_BODY"
  then
    stop_server "$name"
    return 1
  fi
}

# One server, one run: start it, serve once, settle, RSS; then idle_conns
# holds --conns connections (for HTTP each has completed one keep-alive
# request), settle, RSS again; stop both. Appends the raw line.
mem_one() {
  local kind=${1%%/*} name=${1#*/} run=$2
  # A file of its own: the background job's redirection truncates it only
  # once the job runs, so a reused file could show the last run's "ready".
  local out=$TMP_DIR/mem-idle-${1//\//-}-$2.out
  local ipid i rss0 rss1 line status=0
  local -a req=()
  if [[ $kind == http && -n ${HTTP_SKIP[$name]:-} ]]; then return; fi
  if ! mem_start "$kind" "$name"; then
    http_skip "$name" "$HTTP_WHY"
    return
  fi
  sleep "$OPT_SETTLE"
  rss0=$(rss_kb "$SERVER_PID")
  if [[ $kind == http ]]; then req=(--request /); fi
  timeout -k 2 $((IDLE_READY_S + MEM_HOLD_S)) taskset -c "$LOADGEN_CPU" \
    "$IDLE_BIN" --addr "$SERVER_ADDR" --conns "$OPT_CONNS" "${req[@]}" \
    --max-seconds "$MEM_HOLD_S" </dev/null >"$out" 2>"$out.err" &
  ipid=$!
  PIDS+=("$ipid")
  local t0=$SECONDS
  while ((SECONDS - t0 < IDLE_READY_S)); do
    if grep -q '^ready ' "$out"; then break; fi
    alive "$ipid" || die "idle_conns failed against $kind/$name:" \
      "$(tail -2 "$out.err")"
    sleep 0.1
  done
  grep -q '^ready ' "$out" || die "idle_conns not ready after" \
    "$((SECONDS - t0))s against $kind/$name (out: '$(head -c 200 "$out")'" \
    "err: '$(tail -2 "$out.err")')"
  sleep "$OPT_SETTLE"
  alive "$ipid" || die "idle_conns stopped holding $kind/$name's" \
    "connections: $(tail -2 "$out.err")"
  alive "$SERVER_PID" || die "$kind/$name died: $(tail -3 "$SERVER_LOG")"
  rss1=$(rss_kb "$SERVER_PID")
  stop_pid "$ipid" || status=$?
  forget_pid "$ipid"
  ((status == 0)) || die "idle_conns against $kind/$name exited $status:" \
    "$(tail -2 "$out.err")"
  stop_server "$name"
  if [[ $name == lunet ]]; then check_lunet_log "$SERVER_LOG" "mem $kind"; fi
  line="bench=mem kind=$kind server=$name run=$run conns=$OPT_CONNS"
  line+=" $(head -1 "$out" | sed -E 's/^ready conns=[0-9]+ ?//')"
  line+=" rss_before_kb=$rss0"
  line+=" rss_held_kb=$rss1 bytes_per_conn=$(awk -v a="$rss0" -v b="$rss1" \
    -v n="$OPT_CONNS" 'BEGIN { printf "%.0f", (b - a) * 1024 / n }')"
  echo "$line" >>"$RESULTS"
  echo "  $line" >&2
}

mem_table() {
  local entry kind name p n
  printf '\nmem: server RSS per idle connection, %s connections, runs=%s' \
    "$OPT_CONNS" "$OPT_RUNS"
  printf ' (medians; RSS delta / connections, %ss settle)\n' "$OPT_SETTLE"
  printf 'tcp: examples/echo.lua vs echo_ceiling, connections opened only;'
  printf ' http: GET / answered once on each, then idle keep-alive\n'
  printf '%-5s %-10s %10s %14s %12s %8s\n' kind server bytes/conn \
    rss_before_kb rss_held_kb goal
  for entry in $MEM_SERVERS; do
    kind=${entry%%/*} name=${entry#*/}
    p="bench=mem kind=$kind server=$name"
    n=$(grep -cF -- "$p " "$RESULTS" || true)
    if ((n == 0)); then
      printf '%-5s %-10s skipped: %s\n' "$kind" "$name" \
        "${HTTP_SKIP[$name]:-no runs}"
      continue
    fi
    local goal=""
    if [[ $name == lunet ]]; then
      goal=$([[ $kind == tcp ]] && echo "$GOAL_MEM_TCP" ||
        echo "$GOAL_MEM_HTTP")
    fi
    printf '%-5s %-10s %10.0f %14.0f %12.0f %8s\n' "$kind" "$name" \
      "$(stat_of "$p" bytes_per_conn)" "$(stat_of "$p" rss_before_kb)" \
      "$(stat_of "$p" rss_held_kb)" "$goal"
  done
}

parse_mem_options() {
  OPT_RUNS=3 OPT_CONNS=5000 OPT_SETTLE=2
  while (($# > 0)); do
    [[ $# -ge 2 ]] || die_usage "$1 needs a value"
    case $1 in
      --runs) OPT_RUNS=$2 ;;
      --conns) OPT_CONNS=$2 ;;
      --settle) OPT_SETTLE=$2 ;;
      *) die_usage "unknown option '$1'" ;;
    esac
    shift 2
  done
  parse_positive "$OPT_RUNS" "$OPT_CONNS"
  ((OPT_CONNS <= 60000)) || die_usage "--conns: at most 60000"
  parse_seconds "$OPT_SETTLE"
}

# Server RSS per idle connection, by RSS delta: lunet's examples/echo.lua
# and echo_ceiling with connections that only opened; lunet's
# examples/http_hello.lua, http_ceiling, nginx with lua and Go net/http
# with keep-alive connections that each completed one GET / and sit idle
# (idle_conns --request /). Servers on SERVER_CPU, idle_conns on
# LOADGEN_CPU; the order rotates between runs. The settle time lets a
# server's once-a-second idle sweep (lunet frees an idle conn's parser)
# run before RSS is read; it must stay under lunet's and nginx's 15 s
# keep-alive timeout.
bench_mem() {
  parse_mem_options "$@"
  build
  check_env
  IDLE_BIN=${IDLE_BIN:-$BUILD_DIR/bench/idle_conns}
  check_bins "$IDLE_BIN"
  command -v curl >/dev/null || die "curl not found (scripts/bootstrap)"
  raise_nofile $((OPT_CONNS + 256)) "$OPT_CONNS conns"
  http_prepare_ceiling
  http_prepare_nginx
  http_prepare_go
  mkdir -p "$BUILD_DIR/results"
  RESULTS=$BUILD_DIR/results/mem-$(date +%Y%m%d-%H%M%S).txt
  {
    results_header "mem runs=$OPT_RUNS conns=$OPT_CONNS settle=$OPT_SETTLE"
    echo "# lunet=$LUNET_BIN ceiling=$CEILING_BIN" \
      "http_ceiling=$HTTP_CEILING_BIN nginx=${NGINX_BIN:-none}" \
      "go_hello=${GO_HELLO_BIN:-none} idle_conns=$IDLE_BIN"
  } >"$RESULTS"
  local run entry
  for ((run = 1; run <= OPT_RUNS; run++)); do
    for entry in $(rotate $((run - 1)) $MEM_SERVERS); do
      mem_one "$entry" "$run"
    done
  done
  mem_table
  printf '\nraw results: %s\n' "$RESULTS"
}
