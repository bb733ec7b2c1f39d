# bench/workloads/http.sh: `scripts/bench http`.
#:  http [--runs N (3)] [--duration S (5)] [--conns N (50)]
#:       [--warmup S (1); 0 for none]
#
# wrk -t1 against examples/http_hello.lua and examples/http_api.lua
# (/api/:name), and in the same run nginx with lua (bench/peers/
# nginx-lua.conf) and Go net/http with GOMAXPROCS=1 (bench/peers/
# go_hello.go), plus the plain-C bench/http_ceiling.c for hello, Go
# httprouter (bench/peers/go_router.go) for /api/:name, and a second hello
# pass at 200 connections for p99. Those peers, and wrk, are installed
# with apt-get when missing (never by scripts/bootstrap; see
# bench/lib/peers.sh); one that cannot be had is skipped with a
# "skipped: PEER: why" line.

HTTP_WARMUP_S=1       # an unmeasured wrk run before each measured one

# The servers of each scenario, in their first run's order: hello (GET /,
# OPT_CONNS connections), route (/api/:name) and c200 (hello again with
# HTTP_WIDE_CONNS connections, for p99 under more concurrency).
http_scenario_servers() {
  case $1 in
    hello) echo "lunet ceiling nginx-lua go" ;;
    route) echo "lunet nginx-lua go-router" ;;
    c200) echo "lunet nginx-lua" ;;
  esac
}

# One server, one scenario, one run: start, check the body, an unmeasured
# wrk, the measured wrk with the server's CPU sampled around it, stop.
http_one() {
  local name=$1 scenario=$2 run=$3 url path want out=$TMP_DIR/wrk.out
  local usr0 sys0 usr1 sys1 status=0 line fields ticks reqs
  if [[ -n ${HTTP_SKIP[$name]:-} ]]; then return; fi
  local conns=$OPT_CONNS start_as=$scenario
  path=/ want=$HTTP_HELLO_BODY
  if [[ $scenario == route ]]; then
    path=$HTTP_ROUTE_PATH want=$HTTP_ROUTE_BODY
  elif [[ $scenario == c200 ]]; then
    conns=$HTTP_WIDE_CONNS start_as=hello
  fi
  if ! http_start "$name" "$start_as"; then
    http_skip "$name" "$HTTP_WHY"
    return
  fi
  url=http://$SERVER_ADDR$path
  if ! http_check_body "$name" "$url" "$want"; then
    stop_server "$name"
    http_skip "$name" "$HTTP_WHY"
    return
  fi
  local -a wrk=("$WRK_BIN" -t1 -c"$conns" --latency)
  if ((OPT_WARMUP > 0)); then
    run_load "$out" $((OPT_WARMUP + 15)) "${wrk[@]}" -d"${OPT_WARMUP}s" \
      "$url" || status=$?
    ((status == 0)) || die "wrk (warmup) failed against $name:" \
      "$(tail -2 "$out.err")"
  fi
  read -r usr0 sys0 <<<"$(cpu_ticks "$SERVER_PID")"
  run_load "$out" $((OPT_DURATION + 15)) "${wrk[@]}" -d"${OPT_DURATION}s" \
    "$url" || status=$?
  alive "$SERVER_PID" || die "$name died under load: $(tail -3 "$SERVER_LOG")"
  read -r usr1 sys1 <<<"$(cpu_ticks "$SERVER_PID")"
  ((status == 0)) || die "wrk failed against $name: $(tail -2 "$out.err")"
  stop_server "$name"
  if [[ $name == lunet ]]; then
    check_lunet_log "$SERVER_LOG" "http $scenario"
  fi
  fields="conns=$conns $(wrk_fields "$out")"
  ticks=$((usr1 + sys1 - usr0 - sys0))
  reqs=$(field requests "$fields")
  line="bench=http scenario=$scenario server=$name run=$run $fields"
  line+=" cpu_ticks=$ticks usr_ticks=$((usr1 - usr0))"
  line+=" cpu_us_per_req=$(us_per "$ticks" "$reqs")"
  line+=" usr_us_per_req=$(us_per $((usr1 - usr0)) "$reqs")"
  echo "$line" >>"$RESULTS"
  echo "  $line" >&2
  if [[ $(field non2xx "$fields") != 0 || $(field socket_errors "$fields") \
    != 0 ]]; then
    echo "warning: $name ($scenario, run $run): wrk reports" \
      "$(field non2xx "$fields") non-2xx/3xx responses and" \
      "$(field socket_errors "$fields") socket errors:" >&2
    grep -E 'Non-2xx|Socket errors' "$out" >&2 || true
  fi
}

http_table() {
  local scenario=$1 name p n
  local -A rate cpu
  case $scenario in
    hello) printf '\nhttp hello: GET / -> %s' "'$HTTP_HELLO_BODY'" ;;
    route) printf '\nhttp route: GET %s -> %s (lunet.router /api/:name;' \
             "$HTTP_ROUTE_PATH" "'$HTTP_ROUTE_BODY'"
           printf ' Go: httprouter; nginx: a regex location)'
           ;;
    c200) printf '\nhttp hello at %s connections (p99)' "$HTTP_WIDE_CONNS" ;;
  esac
  local conns=$OPT_CONNS
  if [[ $scenario == c200 ]]; then conns=$HTTP_WIDE_CONNS; fi
  printf '\nwrk -t1 -c%s -d%ss --latency, runs=%s (medians)\n' "$conns" \
    "$OPT_DURATION" "$OPT_RUNS"
  printf '%-10s %10s %9s %9s %11s %11s %8s %8s\n' server req/s p50_us \
    p99_us cpu_us/req usr_us/req non2xx sockerr
  local -A p99
  for name in $(http_scenario_servers "$scenario"); do
    p="bench=http scenario=$scenario server=$name"
    n=$(grep -cF -- "$p " "$RESULTS" || true)
    if ((n == 0)); then
      printf '%-10s skipped: %s\n' "$name" "${HTTP_SKIP[$name]:-no runs}"
      continue
    fi
    rate[$name]=$(stat_of "$p" req_per_s)
    cpu[$name]=$(stat_of "$p" cpu_us_per_req)
    p99[$name]=$(stat_of "$p" p99_us)
    printf '%-10s %10.0f %9.1f %9.1f %11.3f %11.3f %8.0f %8.0f\n' "$name" \
      "${rate[$name]}" "$(stat_of "$p" p50_us)" "${p99[$name]}" \
      "${cpu[$name]}" "$(stat_of "$p" usr_us_per_req)" \
      "$(grep -F -- "$p " "$RESULTS" | sed -nE 's/.* non2xx=([0-9]+).*/\1/p' |
        awk '{ s += $1 } END { print s + 0 }')" \
      "$(grep -F -- "$p " "$RESULTS" |
        sed -nE 's/.* socket_errors=([0-9]+).*/\1/p' |
        awk '{ s += $1 } END { print s + 0 }')"
  done
  [[ -n ${rate[lunet]:-} ]] || return 0
  for name in $(http_scenario_servers "$scenario"); do
    [[ $name != lunet && -n ${rate[$name]:-} ]] || continue
    printf 'lunet/%s: req/s %s  cpu/req %s  p99 %s\n' "$name" \
      "$(ratio "${rate[lunet]}" "${rate[$name]}")" \
      "$(ratio "${cpu[lunet]}" "${cpu[$name]}")" \
      "$(ratio "${p99[lunet]}" "${p99[$name]}")"
  done
}

parse_http_options() {
  OPT_RUNS=3 OPT_DURATION=5 OPT_CONNS=50 OPT_WARMUP=$HTTP_WARMUP_S
  while (($# > 0)); do
    [[ $# -ge 2 ]] || die_usage "$1 needs a value"
    case $1 in
      --runs) OPT_RUNS=$2 ;;
      --duration) OPT_DURATION=$2 ;;
      --conns) OPT_CONNS=$2 ;;
      --warmup) OPT_WARMUP=$2 ;;
      *) die_usage "unknown option '$1'" ;;
    esac
    shift 2
  done
  parse_positive "$OPT_RUNS" "$OPT_DURATION" "$OPT_CONNS"
  ((OPT_DURATION <= 120)) || die_usage "--duration: whole seconds, <= 120"
  [[ $OPT_WARMUP =~ ^[0-9]+$ ]] && ((OPT_WARMUP <= 60)) ||
    die_usage "--warmup: whole seconds 0..60"
}

# wrk against lunet's examples/http_hello.lua, the plain-C http_ceiling,
# nginx with lua and Go net/http (GOMAXPROCS=1); then examples/http_api.lua's
# /api/:name against nginx and Go httprouter; then hello again at
# HTTP_WIDE_CONNS connections (lunet and nginx, for p99). Servers on
# SERVER_CPU, wrk -t1 on LOADGEN_CPU; the order of the servers rotates
# between runs. A peer that cannot be installed, built or started is
# skipped with the reason, the others go on.
bench_http() {
  parse_http_options "$@"
  build
  check_base_env
  command -v curl >/dev/null || die "curl not found (scripts/bootstrap)"
  if ! command -v wrk >/dev/null; then
    ensure_packages wrk || die "wrk: $INSTALL_WHY"
  fi
  WRK_BIN=$(command -v wrk)
  http_prepare_ceiling
  http_prepare_nginx
  http_prepare_go
  mkdir -p "$BUILD_DIR/results"
  RESULTS=$BUILD_DIR/results/http-$(date +%Y%m%d-%H%M%S).txt
  {
    results_header "http runs=$OPT_RUNS duration=$OPT_DURATION" \
      "conns=$OPT_CONNS wide_conns=$HTTP_WIDE_CONNS warmup=$OPT_WARMUP"
    echo "# lunet=$LUNET_BIN wrk=$WRK_BIN ceiling=$HTTP_CEILING_BIN" \
      "nginx=${NGINX_BIN:-none} go_hello=${GO_HELLO_BIN:-none}" \
      "go_router=${GO_ROUTER_BIN:-none}" \
      "skipped=$(for s in "${!HTTP_SKIP[@]}"; do printf '%s,' "$s"; done)"
  } >"$RESULTS"
  local run scenario name
  for ((run = 1; run <= OPT_RUNS; run++)); do
    for scenario in hello route c200; do
      # rotate: each server leads a run
      for name in $(rotate $((run - 1)) \
        $(http_scenario_servers "$scenario")); do
        http_one "$name" "$scenario" "$run"
      done
    done
  done
  http_table hello
  http_table route
  http_table c200
  printf '\nraw results: %s\n' "$RESULTS"
}
