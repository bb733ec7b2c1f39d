# bench/workloads/https.sh: `scripts/bench https`.
#:  https [--runs N (3)] [--duration S (4)] [--conns N (50)]
#:        [--connect-conns N (16)] [--idle N (5000)] [--settle S (2)]
#:        [--warmup S (1); 0 for none]
#
# lunet (bench/https_hello.lua: examples/http_hello.lua over TLS) against
# nginx with lua (bench/peers/nginx-lua-https.conf) serving the same
# route, both one process on SERVER_CPU, TLS 1.3 only, the same ECDSA
# P-256 certificate made here with the openssl command. Five scenarios,
# each on a freshly started server:
#   hello   wrk -t1 over https with keep-alive: req/s and server CPU us
#           per request
#   full    bench/tls_connect: new TLS connections back to back, one GET
#           with Connection: close each, every handshake a full one:
#           conns/s and server CPU us per connection
#   resume  the same, each connection offering the newest session ticket
#           its slot was given, used once as OpenSSL and browsers do; a
#           server that sends no fresh ticket after a resumption has
#           every other connection do a full handshake (resumed_pct)
#   reuse   the same, offering the slot's first ticket every time: what a
#           resumption itself costs the server
#   idle    tls_connect --hold: --idle keep-alive TLS connections, each
#           having served one GET, held idle: server RSS per connection
# The load (wrk, tls_connect) runs on LOADGEN_CPU. TLS handshakes cost
# the client as much as the server, so conns/s may be the client's limit:
# busy_pct (server CPU over the run) says how near its CPU the server
# was, and CPU per connection is the figure that compares the servers.

HTTPS_SCENARIOS="hello full resume reuse idle"
HTTPS_SERVERS="lunet nginx-lua"
HTTPS_HOLD_S=60  # tls_connect --hold lets go by itself after this
HTTPS_CERT_DAYS=365  # lunet warns about a certificate expiring in 14

# The certificate (ECDSA P-256, for localhost and 127.0.0.1) and lunet's
# script next to it in TLS_DIR; curl trusts that certificate.
https_make_cert() {
  TLS_DIR=$TMP_DIR/tls
  mkdir -p "$TLS_DIR"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$TLS_DIR/key.pem" -out "$TLS_DIR/cert.pem" \
    -days "$HTTPS_CERT_DAYS" -subj /CN=localhost \
    -addext subjectAltName=DNS:localhost,IP:127.0.0.1 \
    >"$TMP_DIR/openssl.log" 2>&1 ||
    die "openssl req failed: $(tail -1 "$TMP_DIR/openssl.log")"
  cp "$ROOT/bench/https_hello.lua" "$TLS_DIR/"
  CURL_OPTS=(--cacert "$TLS_DIR/cert.pem")
}

# Starts server $1 for scenario $2 of run $3 and checks its body over
# https; sets SERVER_PID, SERVER_ADDR and SERVER_LOG, or returns 1 with
# HTTP_WHY (nginx only). A log of its own each time: the server's
# redirection truncates it only once it runs, so a reused log could show
# the last server's "listening" line.
https_start() {
  local name=$1 log=$TMP_DIR/https-$1-$2-$3.log
  HTTP_WHY=""
  if [[ $name == lunet ]]; then
    start_server hello "$log" "$LUNET_BIN" run "$TLS_DIR/https_hello.lua"
  else
    start_nginx nginx-lua-https.conf https || return 1
  fi
  if ! http_check_body "$name" "https://$SERVER_ADDR/" "$HTTP_HELLO_BODY"
  then
    stop_server "$name"
    return 1
  fi
}

# Runs "$@" as the load (run_load: pinned, bounded by $2 seconds, output
# in $1) with the server's CPU sampled around it: sets LOAD_TICKS and
# LOAD_USR. Dies if the load fails or the server dies under it.
https_load() {
  local out=$1 limit=$2 what=$3 usr0 sys0 usr1 sys1 status=0
  shift 3
  read -r usr0 sys0 <<<"$(cpu_ticks "$SERVER_PID")"
  run_load "$out" "$limit" "$@" || status=$?
  alive "$SERVER_PID" || die "$what: server died: $(tail -3 "$SERVER_LOG")"
  read -r usr1 sys1 <<<"$(cpu_ticks "$SERVER_PID")"
  ((status == 0)) || die "$what: load failed (exit $status):" \
    "$(tail -2 "$out.err") $(tail -2 "$out")"
  LOAD_TICKS=$((usr1 + sys1 - usr0 - sys0)) LOAD_USR=$((usr1 - usr0))
}

# hello: an unmeasured wrk, then the measured one.
https_hello() {
  local name=$1 url=https://$SERVER_ADDR/ out=$TMP_DIR/wrk.out fields reqs
  local -a wrk=("$WRK_BIN" -t1 -c"$OPT_CONNS" --latency)
  if ((OPT_WARMUP > 0)); then
    https_load "$out" $((OPT_WARMUP + 15)) "https hello $name (warmup)" \
      "${wrk[@]}" -d"${OPT_WARMUP}s" "$url"
  fi
  https_load "$out" $((OPT_DURATION + 15)) "https hello $name" \
    "${wrk[@]}" -d"${OPT_DURATION}s" "$url"
  fields="conns=$OPT_CONNS $(wrk_fields "$out")"
  reqs=$(field requests "$fields")
  HTTPS_FIELDS="$fields cpu_ticks=$LOAD_TICKS usr_ticks=$LOAD_USR"
  HTTPS_FIELDS+=" cpu_us_per_req=$(us_per "$LOAD_TICKS" "$reqs")"
  HTTPS_FIELDS+=" usr_us_per_req=$(us_per "$LOAD_USR" "$reqs")"
  HTTPS_FIELDS+=" busy_pct=$(busy_pct "$LOAD_TICKS" "$OPT_DURATION")"
  if [[ $(field non2xx "$fields") != 0 ||
    $(field socket_errors "$fields") != 0 ]]; then
    echo "warning: https hello $name: wrk reports" \
      "$(field non2xx "$fields") non-2xx/3xx responses and" \
      "$(field socket_errors "$fields") socket errors" >&2
  fi
}

# full, resume, reuse: tls_connect for the warmup, then measured.
https_connect() {
  local name=$1 scenario=$2 out=$TMP_DIR/tls_connect.out line n secs
  local -a tc=("$TLS_CONNECT_BIN" --addr "$SERVER_ADDR"
    --conns "$OPT_CONNECT_CONNS")
  case $scenario in
    resume) tc+=(--resume) ;;
    reuse) tc+=(--resume-first) ;;
  esac
  if ((OPT_WARMUP > 0)); then
    https_load "$out" $((OPT_WARMUP + 30)) "https $scenario $name (warmup)" \
      "${tc[@]}" --duration "$OPT_WARMUP"
  fi
  https_load "$out" $((OPT_DURATION + 30)) "https $scenario $name" \
    "${tc[@]}" --duration "$OPT_DURATION"
  line=$(head -1 "$out")
  n=$(field done "$line") secs=$(field duration_s "$line")
  [[ -n $n && -n $secs ]] || die "https $scenario $name: tls_connect" \
    "printed '$line'"
  HTTPS_FIELDS="$line resumed_pct=$(awk -v r="$(field resumed "$line")" \
    -v n="$n" 'BEGIN { printf "%.1f", (n > 0 ? 100 * r / n : 0) }')"
  HTTPS_FIELDS+=" cpu_ticks=$LOAD_TICKS usr_ticks=$LOAD_USR"
  HTTPS_FIELDS+=" cpu_us_per_conn=$(us_per "$LOAD_TICKS" "$n")"
  HTTPS_FIELDS+=" busy_pct=$(busy_pct "$LOAD_TICKS" "$secs")"
  https_check_resumed "$name" "$scenario"
}

# A resuming scenario where most handshakes were full ones is a finding
# about the server (or a broken client), not a figure to read as is.
https_check_resumed() {
  local name=$1 scenario=$2 pct
  [[ $scenario != full ]] || return 0
  pct=$(field resumed_pct "$HTTPS_FIELDS")
  if ! goal_met "$pct" ">= 90"; then
    echo "warning: https $scenario $name: only $pct% of the connections" \
      "resumed (the others were full handshakes)" >&2
  fi
}

# idle: settle, RSS; tls_connect holds --idle conns, settle, RSS again.
# A file of its own per run (see mem.sh: a reused one could show the last
# run's "ready").
https_idle() {
  local name=$1 run=$2 out=$TMP_DIR/https-idle-$1-$2.out ipid t0
  local rss0 rss1 status=0
  sleep "$OPT_SETTLE"
  rss0=$(rss_kb "$SERVER_PID")
  timeout -k 2 $((HTTPS_HOLD_S + 90)) taskset -c "$LOADGEN_CPU" \
    "$TLS_CONNECT_BIN" --addr "$SERVER_ADDR" --hold "$OPT_IDLE" \
    --max-seconds "$HTTPS_HOLD_S" </dev/null >"$out" 2>"$out.err" &
  ipid=$!
  PIDS+=("$ipid")
  t0=$SECONDS
  until grep -q '^ready ' "$out"; do
    alive "$ipid" || die "tls_connect --hold failed against $name:" \
      "$(tail -2 "$out.err")"
    ((SECONDS - t0 < 80)) || die "tls_connect --hold not ready after 80 s"
    sleep 0.1
  done
  sleep "$OPT_SETTLE"
  alive "$ipid" || die "tls_connect stopped holding $name's conns:" \
    "$(tail -2 "$out.err")"
  alive "$SERVER_PID" || die "$name died: $(tail -3 "$SERVER_LOG")"
  rss1=$(rss_kb "$SERVER_PID")
  stop_pid "$ipid" || status=$?
  forget_pid "$ipid"
  ((status == 0)) || die "tls_connect --hold against $name exited" \
    "$status: $(tail -2 "$out.err")"
  HTTPS_FIELDS="conns=$OPT_IDLE rss_before_kb=$rss0 rss_held_kb=$rss1"
  HTTPS_FIELDS+=" bytes_per_conn=$(awk -v a="$rss0" -v b="$rss1" \
    -v n="$OPT_IDLE" 'BEGIN { printf "%.0f", (b - a) * 1024 / n }')"
}

# One server, one scenario, one run: start, measure, stop, the raw line.
https_one() {
  local name=$1 scenario=$2 run=$3 line
  if [[ -n ${HTTP_SKIP[$name]:-} ]]; then return; fi
  if ! https_start "$name" "$scenario" "$run"; then
    http_skip "$name" "$HTTP_WHY"
    return
  fi
  case $scenario in
    hello) https_hello "$name" ;;
    idle) https_idle "$name" "$run" ;;
    *) https_connect "$name" "$scenario" ;;
  esac
  stop_server "$name"
  if [[ $name == lunet ]]; then
    check_lunet_log "$SERVER_LOG" "https $scenario"
  fi
  line="bench=https scenario=$scenario server=$name run=$run $HTTPS_FIELDS"
  echo "$line" >>"$RESULTS"
  echo "  $line" >&2
}

# The per-scenario medians of one server; "skipped: why" without runs.
https_table_row() {
  local scenario=$1 name=$2 p="bench=https scenario=$1 server=$2"
  if ! grep -qF -- "$p " "$RESULTS"; then
    printf '%-10s skipped: %s\n' "$name" "${HTTP_SKIP[$name]:-no runs}"
    return
  fi
  case $scenario in
    hello)
      printf '%-10s %10.0f %9.1f %9.1f %11.2f %11.2f %7.0f\n' "$name" \
        "$(stat_of "$p" req_per_s)" "$(stat_of "$p" p50_us)" \
        "$(stat_of "$p" p99_us)" "$(stat_of "$p" cpu_us_per_req)" \
        "$(stat_of "$p" usr_us_per_req)" "$(stat_of "$p" busy_pct)"
      ;;
    idle)
      printf '%-10s %10.0f %14.0f %12.0f\n' "$name" \
        "$(stat_of "$p" bytes_per_conn)" "$(stat_of "$p" rss_before_kb)" \
        "$(stat_of "$p" rss_held_kb)"
      ;;
    *)
      printf '%-10s %10.0f %12.1f %7.0f %11.1f\n' "$name" \
        "$(stat_of "$p" conns_per_s)" "$(stat_of "$p" cpu_us_per_conn)" \
        "$(stat_of "$p" busy_pct)" "$(stat_of "$p" resumed_pct)"
      ;;
  esac
}

# lunet/nginx-lua: the median of the per-run ratios of KEY in a scenario.
https_ratio() {
  local scenario=$1 key=$2 p="bench=https scenario=$1 server"
  paired_ratios "$RESULTS" "$p=lunet" "$p=nginx-lua" "$key" |
    median_or_empty | awk '{ printf "%.2f", $1 }'
}

https_table() {
  local scenario=$1 name
  case $scenario in
    hello)
      printf '\nhttps hello: wrk -t1 -c%s -d%ss --latency over TLS 1.3,' \
        "$OPT_CONNS" "$OPT_DURATION"
      printf ' keep-alive, runs=%s (medians)\n' "$OPT_RUNS"
      printf '%-10s %10s %9s %9s %11s %11s %7s\n' server req/s p50_us \
        p99_us cpu_us/req usr_us/req busy%
      ;;
    idle)
      printf '\nhttps idle: server RSS per idle TLS keep-alive conn, %s' \
        "$OPT_IDLE"
      printf ' conns (one GET each), %ss settle, runs=%s (medians)\n' \
        "$OPT_SETTLE" "$OPT_RUNS"
      printf '%-10s %10s %14s %12s\n' server bytes/conn rss_before_kb \
        rss_held_kb
      ;;
    *)
      printf '\nhttps %s: new TLS conns, one GET each (Connection: close),' \
        "$scenario"
      printf ' %s at once, %ss, runs=%s (medians)\n' "$OPT_CONNECT_CONNS" \
        "$OPT_DURATION" "$OPT_RUNS"
      printf '%-10s %10s %12s %7s %11s\n' server conns/s cpu_us/conn busy% \
        resumed%
      ;;
  esac
  for name in $HTTPS_SERVERS; do https_table_row "$scenario" "$name"; done
  case $scenario in
    hello) echo "lunet/nginx-lua (median of per-run ratios): req/s" \
      "$(https_ratio hello req_per_s)  cpu/req" \
      "$(https_ratio hello cpu_us_per_req)" ;;
    idle) echo "lunet/nginx-lua (median of per-run ratios): bytes/conn" \
      "$(https_ratio idle bytes_per_conn)" ;;
    *) echo "lunet/nginx-lua (median of per-run ratios): conns/s" \
      "$(https_ratio "$scenario" conns_per_s)  cpu/conn" \
      "$(https_ratio "$scenario" cpu_us_per_conn)" ;;
  esac
}

parse_https_options() {
  OPT_RUNS=3 OPT_DURATION=4 OPT_CONNS=50 OPT_CONNECT_CONNS=16
  OPT_IDLE=5000 OPT_SETTLE=2 OPT_WARMUP=1
  while (($# > 0)); do
    [[ $# -ge 2 ]] || die_usage "$1 needs a value"
    case $1 in
      --runs) OPT_RUNS=$2 ;;
      --duration) OPT_DURATION=$2 ;;
      --conns) OPT_CONNS=$2 ;;
      --connect-conns) OPT_CONNECT_CONNS=$2 ;;
      --idle) OPT_IDLE=$2 ;;
      --settle) OPT_SETTLE=$2 ;;
      --warmup) OPT_WARMUP=$2 ;;
      *) die_usage "unknown option '$1'" ;;
    esac
    shift 2
  done
  parse_positive "$OPT_RUNS" "$OPT_DURATION" "$OPT_CONNS" \
    "$OPT_CONNECT_CONNS" "$OPT_IDLE"
  ((OPT_DURATION <= 120)) || die_usage "--duration: whole seconds, <= 120"
  ((OPT_CONNECT_CONNS <= 1024)) || die_usage "--connect-conns: at most 1024"
  ((OPT_IDLE <= 15000)) || die_usage "--idle: at most 15000"
  parse_seconds "$OPT_SETTLE"
  [[ $OPT_WARMUP =~ ^[0-9]+$ ]] && ((OPT_WARMUP <= 60)) ||
    die_usage "--warmup: whole seconds 0..60"
}

# Every scenario of HTTPS_SCENARIOS for lunet and nginx with lua, each on
# a fresh server, the order of the servers rotating between runs. nginx
# that cannot be installed or started is skipped with the reason; lunet
# never is.
bench_https() {
  parse_https_options "$@"
  build
  check_base_env
  TLS_CONNECT_BIN=${TLS_CONNECT_BIN:-$BUILD_DIR/bench/tls_connect}
  check_bins "$TLS_CONNECT_BIN"
  command -v curl >/dev/null || die "curl not found (scripts/bootstrap)"
  command -v openssl >/dev/null || die "openssl not found (scripts/bootstrap)"
  if ! command -v wrk >/dev/null; then
    ensure_packages wrk || die "wrk: $INSTALL_WHY"
  fi
  WRK_BIN=$(command -v wrk)
  raise_nofile $((OPT_IDLE + 256)) "$OPT_IDLE conns"
  https_make_cert
  http_prepare_nginx
  mkdir -p "$BUILD_DIR/results"
  RESULTS=$BUILD_DIR/results/https-$(date +%Y%m%d-%H%M%S).txt
  {
    results_header "https runs=$OPT_RUNS duration=$OPT_DURATION" \
      "conns=$OPT_CONNS connect_conns=$OPT_CONNECT_CONNS idle=$OPT_IDLE" \
      "settle=$OPT_SETTLE warmup=$OPT_WARMUP"
    echo "# lunet=$LUNET_BIN wrk=$WRK_BIN tls_connect=$TLS_CONNECT_BIN" \
      "nginx=${NGINX_BIN:-none} openssl=$(openssl version | tr ' ' _)" \
      "cert=ecdsa-p256"
  } >"$RESULTS"
  local run scenario name
  for ((run = 1; run <= OPT_RUNS; run++)); do
    for scenario in $HTTPS_SCENARIOS; do
      for name in $(rotate $((run - 1)) $HTTPS_SERVERS); do
        https_one "$name" "$scenario" "$run"
      done
    done
  done
  for scenario in $HTTPS_SCENARIOS; do https_table "$scenario"; done
  printf '\nraw results: %s\n' "$RESULTS"
}
