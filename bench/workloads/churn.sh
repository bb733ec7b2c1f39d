# bench/workloads/churn.sh: `scripts/bench churn`.
#:  churn [--runs N (1)] [--conns N (1000000)] [--aborts N (200)]
#
# Memory under connection churn: two netstress clients (the e2e tests'
# blocking C client) open, use once and close --conns connections to
# examples/echo.lua and echo_ceiling (one byte echoed), and to
# examples/http_hello.lua, nginx with lua and Go net/http (GET / with
# Connection: close); RSS (and lunet's Lua heap, from `lunet stats`) is
# sampled twice a second, RSS growth counted from the sample after the
# first 20,000. Then --aborts downloads of one shared 8 MiB string written
# in on_connect, each reset after 1,000 bytes (lunet alone: the peers
# speak HTTP only here), with RSS sampled every 20 ms.

CHURN_SERVERS="tcp/lunet tcp/ceiling http/lunet http/nginx-lua http/go"
CHURN_SAMPLE_S=0.5
CHURN_ABORT_SAMPLE_S=0.02
CHURN_FIRST=20000 # RSS growth is counted from the first sample past this

# Lua heap in KiB of the lunet at $1, from `lunet stats --json`.
churn_heap_kb() {
  ("$LUNET_BIN" stats --json --pid "$1" 2>/dev/null || true) |
    sed -nE 's/.*"lua_memory":([0-9]+).*/\1/p' |
    awk '{ printf "%.0f", $1 / 1024 }'
}

# Connections the clients whose outputs are $@ have made ("at N" lines).
churn_progress() {
  local f n total=0
  for f in "$@"; do
    n=$( (grep -E '^(at|done) ' "$f" 2>/dev/null || true) | tail -1 |
      cut -d' ' -f2)
    total=$((total + ${n:-0}))
  done
  echo "$total"
}

churn_start() {
  local kind=$1 name=$2 log=$TMP_DIR/churn-$1-$2.log
  HTTP_WHY=""
  case $kind in
    tcp)
      echo_server_cmd "$name"
      start_server echo "$log" "${ECHO_CMD[@]}"
      ;;
    http) http_start "$name" hello || return 1 ;;
    abort)
      printf '%s\n' 'local big = string.rep("x", 8 << 20)' \
        'return { big = { tcp = "127.0.0.1:0",' \
        '  on_connect = function(conn) conn:write(big) end } }' \
        >"$TMP_DIR/churn_big.lua"
      start_server big "$log" "$LUNET_BIN" run "$TMP_DIR/churn_big.lua"
      ;;
  esac
}

# Samples the server (RSS, and the Lua heap of lunet) every $1 seconds
# while the clients $CHURN_CPIDS run; sets CHURN_* figures.
churn_sample() {
  local every=$1 name=$2 pid n rss heap busy
  shift 2
  CHURN_RSS0=$(rss_kb "$SERVER_PID") CHURN_RSS20=""
  CHURN_RSS_PEAK=$CHURN_RSS0 CHURN_HEAP_PEAK=0
  while :; do
    busy=0
    for pid in "${CHURN_CPIDS[@]}"; do
      if alive "$pid"; then busy=1; fi
    done
    rss=$(rss_kb "$SERVER_PID")
    alive "$SERVER_PID" || die "$name died: $(tail -3 "$SERVER_LOG")"
    n=$(churn_progress "$@")
    if [[ -z $CHURN_RSS20 ]] && ((n >= CHURN_FIRST)); then CHURN_RSS20=$rss; fi
    if ((rss > CHURN_RSS_PEAK)); then CHURN_RSS_PEAK=$rss; fi
    if [[ $name == lunet && $every != "$CHURN_ABORT_SAMPLE_S" ]]; then
      heap=$(churn_heap_kb "$SERVER_PID")
      if ((${heap:-0} > CHURN_HEAP_PEAK)); then CHURN_HEAP_PEAK=$heap; fi
    fi
    ((busy)) || break
    sleep "$every"
  done
  CHURN_RSS20=${CHURN_RSS20:-$CHURN_RSS0}
}

# Waits for the clients; dies with the first one's reason if one failed.
churn_wait_clients() {
  local pid status i=0
  for pid in "${CHURN_CPIDS[@]}"; do
    status=0
    wait "$pid" || status=$?
    forget_pid "$pid"
    ((status == 0)) || die "netstress failed (exit $status):" \
      "$(tail -1 "$TMP_DIR/churn-client-$i.out.err")"
    i=$((i + 1))
  done
}

# One server, one run: two clients churn --conns connections (or one
# aborts --aborts downloads) while the server is sampled; one raw line.
churn_one() {
  local kind=${1%%/*} name=${1#*/} run=$2 t0 secs line i n mode
  local -a outs=()
  if [[ $kind == http && -n ${HTTP_SKIP[$name]:-} ]]; then return; fi
  if ! churn_start "$kind" "$name"; then
    http_skip "$name" "$HTTP_WHY"
    return
  fi
  CHURN_CPIDS=()
  t0=$EPOCHREALTIME
  if [[ $kind == abort ]]; then
    n=$OPT_ABORTS
    outs=("$TMP_DIR/churn-client-0.out")
    taskset -c "$LOADGEN_CPU" "$NETSTRESS_BIN" abort "$SERVER_ADDR" "$n" 1000 \
      </dev/null >"${outs[0]}" 2>"${outs[0]}.err" &
    CHURN_CPIDS+=($!)
    PIDS+=($!)
    churn_sample "$CHURN_ABORT_SAMPLE_S" "$name" "${outs[@]}"
  else
    n=$((OPT_CONNS / 2 * 2))
    mode=$([[ $kind == http ]] && echo http || echo churn)
    for i in 0 1; do
      outs+=("$TMP_DIR/churn-client-$i.out")
      taskset -c "$LOADGEN_CPU" "$NETSTRESS_BIN" "$mode" "$SERVER_ADDR" \
        $((n / 2)) </dev/null >"${outs[i]}" 2>"${outs[i]}.err" &
      CHURN_CPIDS+=($!)
      PIDS+=($!)
    done
    churn_sample "$CHURN_SAMPLE_S" "$name" "${outs[@]}"
  fi
  churn_wait_clients
  secs=$(elapsed_s "$t0" "$EPOCHREALTIME")
  sleep 1 # what the server gives back once the clients are gone
  local rss_end heap_end=""
  rss_end=$(rss_kb "$SERVER_PID")
  if [[ $name == lunet ]]; then heap_end=$(churn_heap_kb "$SERVER_PID"); fi
  stop_server "$name"
  line="bench=churn kind=$kind server=$name run=$run conns=$n secs=$secs"
  line+=" conns_per_s=$(awk -v n="$n" -v s="$secs" \
    'BEGIN { printf "%.0f", (s > 0 ? n / s : 0) }')"
  line+=" rss_start_kb=$CHURN_RSS0 rss_20k_kb=$CHURN_RSS20"
  line+=" rss_peak_kb=$CHURN_RSS_PEAK rss_growth_kb=$((CHURN_RSS_PEAK - CHURN_RSS20))"
  line+=" rss_end_kb=$rss_end"
  if [[ $name == lunet && $kind != abort ]]; then
    line+=" heap_peak_kb=$CHURN_HEAP_PEAK heap_end_kb=${heap_end:-0}"
  fi
  echo "$line" >>"$RESULTS"
  echo "  $line" >&2
}

churn_table() {
  local entry kind name p n
  printf '\nchurn: %s connections from 2 clients, %s aborted 8 MiB' \
    "$OPT_CONNS" "$OPT_ABORTS"
  printf ' downloads; runs=%s (medians)\n' "$OPT_RUNS"
  printf 'goals (lunet): Lua heap <= 8192 KiB, RSS growth after the first'
  printf ' 20,000 <= 8000 kB; aborted downloads: RSS peak <= 64000 kB\n'
  printf '%-5s %-10s %9s %9s %11s %11s %10s %10s\n' kind server conns/s \
    rss_20k_kb rss_peak_kb rss_growth heap_peak rss_end_kb
  for entry in $CHURN_SERVERS abort/lunet; do
    kind=${entry%%/*} name=${entry#*/}
    p="bench=churn kind=$kind server=$name"
    n=$(grep -cF -- "$p " "$RESULTS" || true)
    if ((n == 0)); then
      printf '%-5s %-10s skipped: %s\n' "$kind" "$name" \
        "${HTTP_SKIP[$name]:-no runs}"
      continue
    fi
    printf '%-5s %-10s %9.0f %9.0f %11.0f %11.0f %10s %10.0f\n' "$kind" \
      "$name" "$(stat_of "$p" conns_per_s)" "$(stat_of "$p" rss_20k_kb)" \
      "$(stat_of "$p" rss_peak_kb)" "$(stat_of "$p" rss_growth_kb)" \
      "$([[ $name == lunet && $kind != abort ]] &&
        stat_of "$p" heap_peak_kb || echo -)" \
      "$(stat_of "$p" rss_end_kb)"
  done
}

parse_churn_options() {
  OPT_RUNS=1 OPT_CONNS=1000000 OPT_ABORTS=200
  while (($# > 0)); do
    [[ $# -ge 2 ]] || die_usage "$1 needs a value"
    case $1 in
      --runs) OPT_RUNS=$2 ;;
      --conns) OPT_CONNS=$2 ;;
      --aborts) OPT_ABORTS=$2 ;;
      *) die_usage "unknown option '$1'" ;;
    esac
    shift 2
  done
  parse_positive "$OPT_RUNS" "$OPT_CONNS" "$OPT_ABORTS"
  ((OPT_CONNS >= 2)) || die_usage "--conns: at least 2"
}

# Lua heap and RSS over --conns churned connections (raw TCP echo and
# HTTP with Connection: close, against echo_ceiling, nginx with lua and
# Go net/http), then RSS over --aborts aborted 8 MiB downloads. Servers
# on SERVER_CPU, both clients on LOADGEN_CPU; the order rotates between
# runs.
bench_churn() {
  parse_churn_options "$@"
  build
  check_env
  NETSTRESS_BIN=${NETSTRESS_BIN:-$BUILD_DIR/tests/netstress}
  check_bins "$NETSTRESS_BIN"
  command -v curl >/dev/null || die "curl not found (scripts/bootstrap)"
  http_prepare_nginx
  http_prepare_go
  mkdir -p "$BUILD_DIR/results"
  RESULTS=$BUILD_DIR/results/churn-$(date +%Y%m%d-%H%M%S).txt
  {
    results_header "churn runs=$OPT_RUNS conns=$OPT_CONNS aborts=$OPT_ABORTS"
    echo "# lunet=$LUNET_BIN ceiling=$CEILING_BIN nginx=${NGINX_BIN:-none}" \
      "go_hello=${GO_HELLO_BIN:-none} netstress=$NETSTRESS_BIN"
  } >"$RESULTS"
  local run entry
  for ((run = 1; run <= OPT_RUNS; run++)); do
    for entry in $(rotate $((run - 1)) $CHURN_SERVERS); do
      churn_one "$entry" "$run"
    done
    churn_one abort/lunet "$run"
  done
  churn_table
  printf '\nraw results: %s\n' "$RESULTS"
}
