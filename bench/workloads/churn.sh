# bench/workloads/churn.sh: `scripts/bench churn`.
#:  churn [--runs N (1)] [--conns N (1000000)] [--aborts N (200)]
#:      [--markdown FILE (none) | --no-markdown]
#
# Memory under connection churn: two netstress clients (the e2e tests'
# blocking C client) open, use once and close --conns connections to
# examples/echo.lua and echo_ceiling (one byte echoed), and to
# examples/http_hello.lua, nginx with lua and Go net/http (GET / with
# Connection: close); RSS (and lunet's Lua heap, from `lunet stats`) is
# sampled twice a second, RSS growth counted from the sample after the
# first 20,000. Then --aborts downloads in a row of one shared 8 MiB
# string, each reset (SO_LINGER 0) after 1,000 bytes, with RSS sampled
# every 20 ms: over HTTP (GET /big) against lunet, nginx with lua and Go,
# and over raw TCP (written in on_connect) against lunet alone, the form
# of issue #30's first figure. The summary rows (bench/lib/stats.sh) give
# each lunet/peer ratio as the median of the per-run ratios; --markdown
# FILE puts them, with the table, in FILE's "## churn" section.

CHURN_SERVERS="tcp/lunet tcp/ceiling http/lunet http/nginx-lua http/go"
CHURN_ABORTS="abort/lunet abort-http/lunet abort-http/nginx-lua abort-http/go"
CHURN_BIG=$((8 << 20)) # bytes of the one download every abort starts
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
      churn_big_script
      start_server big "$log" "$LUNET_BIN" run "$TMP_DIR/churn_big.lua"
      ;;
    abort-http) churn_start_big_http "$name" "$log" || return 1 ;;
  esac
}

# The lunet script of the aborted downloads: one 8 MiB string made at
# load, written whole by a raw TCP service on connect (big) and answered
# to GET /big by an HTTP one (bighttp). A run uses one of the two; the
# other only listens.
churn_big_script() {
  cat >"$TMP_DIR/churn_big.lua" <<EOF
local big = string.rep("x", $CHURN_BIG)
return {
  big = { tcp = "127.0.0.1:0",
    on_connect = function(conn) conn:write(big) end },
  bighttp = { http = "127.0.0.1:0",
    handler = function(req, res)
      if req.path == "/big" then res:send(200, big)
      else res:send(404, "not found") end
    end },
}
EOF
}

# Server $1 for the aborted HTTP downloads, checked to answer GET /big
# with the whole 8 MiB (which also makes the peers' lazily made string,
# so every server starts with its copy in RSS). Returns 1 with HTTP_WHY.
churn_start_big_http() {
  local name=$1 log=$2 got
  case $name in
    lunet)
      churn_big_script
      start_server bighttp "$log" "$LUNET_BIN" run "$TMP_DIR/churn_big.lua"
      ;;
    nginx-lua) start_nginx || return 1 ;;
    go)
      start_server hello "$log" env GOMAXPROCS=1 "$GO_HELLO_BIN" \
        -addr 127.0.0.1:0
      ;;
  esac
  got=$(curl -s -o /dev/null --max-time 10 -w '%{http_code} %{size_download}' \
    "http://$SERVER_ADDR/big" || true)
  [[ $got == "200 $CHURN_BIG" ]] && return 0
  [[ $name != lunet ]] || die "lunet answered GET /big with '$got'," \
    "expected '200 $CHURN_BIG' (log: $(tail -2 "$SERVER_LOG"))"
  HTTP_WHY="answers GET /big with '$got', expected '200 $CHURN_BIG'"
  stop_server "$name"
  return 1
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
  if [[ $name != lunet && -n ${HTTP_SKIP[$name]:-} ]]; then return; fi
  if ! churn_start "$kind" "$name"; then
    http_skip "$name" "$HTTP_WHY"
    return
  fi
  CHURN_CPIDS=()
  t0=$EPOCHREALTIME
  if [[ $kind == abort* ]]; then
    n=$OPT_ABORTS
    outs=("$TMP_DIR/churn-client-0.out")
    mode=$([[ $kind == abort-http ]] && echo httpabort || echo abort)
    taskset -c "$LOADGEN_CPU" "$NETSTRESS_BIN" "$mode" "$SERVER_ADDR" "$n" \
      1000 </dev/null >"${outs[0]}" 2>"${outs[0]}.err" &
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
  if [[ $name == lunet && $kind != abort* ]]; then
    line+=" heap_peak_kb=$CHURN_HEAP_PEAK heap_end_kb=${heap_end:-0}"
  fi
  echo "$line" >>"$RESULTS"
  echo "  $line" >&2
}

churn_table() {
  local entry kind name p n
  printf '\nchurn: %s connections from 2 clients, %s aborted 8 MiB' \
    "$OPT_CONNS" "$OPT_ABORTS"
  printf ' downloads in a row; runs=%s (medians)\n' "$OPT_RUNS"
  printf 'goals (lunet): Lua heap <= 8192 KiB, RSS growth after the first'
  printf ' 20,000 <= 8000 kB; aborted downloads: RSS peak <= 64000 kB\n'
  printf '%-10s %-10s %9s %10s %10s %11s %10s %9s %10s\n' kind server \
    conns/s rss_start rss_20k_kb rss_peak_kb rss_growth heap_peak rss_end_kb
  for entry in $CHURN_SERVERS $CHURN_ABORTS; do
    kind=${entry%%/*} name=${entry#*/}
    p="bench=churn kind=$kind server=$name"
    n=$(grep -cF -- "$p " "$RESULTS" || true)
    if ((n == 0)); then
      printf '%-10s %-10s skipped: %s\n' "$kind" "$name" \
        "${HTTP_SKIP[$name]:-no runs}"
      continue
    fi
    printf '%-10s %-10s %9.0f %10.0f %10.0f %11.0f %10.0f %9s %10.0f\n' \
      "$kind" "$name" "$(stat_of "$p" conns_per_s)" \
      "$(stat_of "$p" rss_start_kb)" "$(stat_of "$p" rss_20k_kb)" \
      "$(stat_of "$p" rss_peak_kb)" "$(stat_of "$p" rss_growth_kb)" \
      "$([[ $name == lunet && $kind != abort* ]] &&
        stat_of "$p" heap_peak_kb || echo -)" \
      "$(stat_of "$p" rss_end_kb)"
  done
}

parse_churn_options() {
  OPT_RUNS=1 OPT_CONNS=1000000 OPT_ABORTS=200 OPT_MARKDOWN=""
  while (($# > 0)); do
    case $1 in
      --no-markdown) OPT_MARKDOWN=""; shift; continue ;;
    esac
    [[ $# -ge 2 ]] || die_usage "$1 needs a value"
    case $1 in
      --runs) OPT_RUNS=$2 ;;
      --conns) OPT_CONNS=$2 ;;
      --aborts) OPT_ABORTS=$2 ;;
      --markdown) OPT_MARKDOWN=$2 ;;
      *) die_usage "unknown option '$1'" ;;
    esac
    shift 2
  done
  parse_positive "$OPT_RUNS" "$OPT_CONNS" "$OPT_ABORTS"
  ((OPT_CONNS >= 2)) || die_usage "--conns: at least 2"
}

# Replaces the "## churn" section of markdown file $1 (the last one, which
# `scripts/bench all` carries over when it rewrites the rest) with this
# run's summary and table, from the files $2 (table) and $3 (summary).
churn_markdown() {
  local file=$1 table=$2 summary=$3 kept=""
  if [[ -f $file ]]; then kept=$(sed '/^## churn/,$d' "$file"); fi
  {
    if [[ -n $kept ]]; then printf '%s\n\n' "$kept"; fi
    echo "## churn: \`scripts/bench churn --runs $OPT_RUNS --conns" \
      "$OPT_CONNS --aborts $OPT_ABORTS\`"
    echo
    echo "Run on $(date -u '+%Y-%m-%d %H:%M UTC'), git revision" \
      "$(bench_rev); not part of \`all\`, which keeps this section."
    echo "RSS in kB (VmRSS), Lua heap in KiB; figures are medians over the"
    echo "runs, a ratio the median of the per-run ratios of lunet to the peer"
    echo "measured beside it. An HTTP abort's start RSS is taken after one"
    echo "whole GET /big (the check that the server sends all 8 MiB, which"
    echo "also makes the peers' string); the raw TCP form's before any"
    echo "connection. After: 1 s after the last client."
    echo
    cat "$summary"
    echo
    echo '```'
    sed '/./,$!d' "$table"
    echo '```'
  } >"$file.tmp"
  mv "$file.tmp" "$file"
}

# Lua heap and RSS over --conns churned connections (raw TCP echo and
# HTTP with Connection: close, against echo_ceiling, nginx with lua and
# Go net/http), then RSS over --aborts aborted 8 MiB downloads (HTTP
# against the same peers, and raw TCP). Servers on SERVER_CPU, the
# clients on LOADGEN_CPU; the order rotates between runs. Ends with the
# summary rows of bench/lib/stats.sh (sum_churn_rows).
bench_churn() {
  parse_churn_options "$@"
  BENCH_REV=${BENCH_REV:-$(bench_rev)} # before the markdown file changes
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
    for entry in $(rotate $((run - 1)) $CHURN_ABORTS); do
      churn_one "$entry" "$run"
    done
  done
  churn_table | tee "$TMP_DIR/churn-table.txt"
  declare -gA ALL_RAW=([churn]=$RESULTS)
  OPT_SMOKE=0 SUM_ROWS=() SUM_MET=0 SUM_MISSED=0
  sum_churn_rows
  printf '\nsummary (medians of %s runs; ratio: median of per-run ratios):\n' \
    "$OPT_RUNS"
  sum_print
  printf 'goals met: %s, not met: %s\n' "$SUM_MET" "$SUM_MISSED"
  if [[ -n $OPT_MARKDOWN ]]; then
    sum_print md >"$TMP_DIR/churn-summary.md"
    churn_markdown "$OPT_MARKDOWN" "$TMP_DIR/churn-table.txt" \
      "$TMP_DIR/churn-summary.md"
    echo "written: $OPT_MARKDOWN (section churn)"
  fi
  printf '\nraw results: %s\n' "$RESULTS"
}
