# bench/workloads/udp.sh: `scripts/bench udp`.
#:  udp [--runs N (3)] [--duration S (5)] [--size B (64,1200)]
#:      [--flows N (16)] [--window N (4)]
#
# examples/udp_echo.lua against udp_echo_ceiling (plain libuv, recvmmsg
# and try_send) under udp_loadgen (flows with a window of datagrams in
# flight each): dgrams/s, RTT, loss, CPU per datagram.

UDP_FLOWS=16   # sockets of the load generator: peers the server sees
UDP_WINDOW=4   # datagrams in flight per flow: 64 in all, well inside the
               # server's default receive buffer even at 1200 bytes

# The kernel's UDP counters (all sockets of the host): "RcvbufErrors
# SndbufErrors InErrors", drops the loadgen would see as loss.
udp_snmp() {
  awk '/^Udp:/ { if (!h) { for (i = 2; i <= NF; i++) col[$i] = i; h = 1 }
                 else { print $col["RcvbufErrors"], $col["SndbufErrors"],
                        $col["InErrors"] } }' /proc/net/snmp
}

udp_server_cmd() {
  local addr=127.0.0.1:0
  if [[ $1 == ceiling ]]; then
    UDP_CMD=("$UDP_CEILING_BIN" "$addr")
  else
    UDP_CMD=("$LUNET_BIN" run examples/udp_echo.lua --listen
      "udp_echo=$addr")
  fi
}

# One server, one size, one run: start, load, stop; appends the raw line.
udp_one() {
  local name=$1 size=$2 run=$3 line status=0 out=$TMP_DIR/udp.out
  local log=$TMP_DIR/udp-$name-$size-$run.log limit total t0 t1 wall
  local usr0 sys0 usr1 sys1 rb0 sb0 ie0 rb1 sb1 ie1
  udp_server_cmd "$name"
  start_server udp_echo "$log" "${UDP_CMD[@]}"
  read -r usr0 sys0 <<<"$(cpu_ticks "$SERVER_PID")"
  read -r rb0 sb0 ie0 <<<"$(udp_snmp)"
  limit=$(awk -v d="$OPT_DURATION" -v w="$WARMUP_S" \
    'BEGIN { print int(d + w + 15) }')
  t0=$EPOCHREALTIME
  run_load "$out" "$limit" "$UDP_LOADGEN_BIN" --addr "$SERVER_ADDR" \
    --flows "$OPT_FLOWS" --window "$OPT_WINDOW" --size "$size" \
    --duration "$OPT_DURATION" --warmup "$WARMUP_S" || status=$?
  t1=$EPOCHREALTIME
  alive "$SERVER_PID" || die "$name died under load: $(tail -3 "$log")"
  read -r usr1 sys1 <<<"$(cpu_ticks "$SERVER_PID")"
  read -r rb1 sb1 ie1 <<<"$(udp_snmp)"
  ((status == 0)) || die "udp_loadgen failed (exit $status) against" \
    "$name at $SERVER_ADDR: $(tail -1 "$out.err")"$'\n'"  $(head -1 "$out")"
  stop_server "$name"
  if [[ $name == lunet ]]; then check_lunet_log "$log" "udp size=$size"; fi
  total=$(sed -nE 's/.*total_dgrams=([0-9]+).*/\1/p' "$out.err")
  wall=$(elapsed_s "$t0" "$t1")
  line="bench=udp server=$name size=$size run=$run $(head -1 "$out")"
  line+=" total_dgrams=${total:-0} wall_s=$wall"
  line+=" cpu_ticks=$((usr1 + sys1 - usr0 - sys0))"
  line+=" usr_ticks=$((usr1 - usr0)) sys_ticks=$((sys1 - sys0))"
  line+=" cpu_us_per_dgram=$(us_per $((usr1 + sys1 - usr0 - sys0)) \
    "${total:-0}")"
  line+=" usr_us_per_dgram=$(us_per $((usr1 - usr0)) "${total:-0}")"
  line+=" busy_pct=$(busy_pct $((usr1 + sys1 - usr0 - sys0)) "$wall")"
  line+=" kernel_rcvbuf_errors=$((rb1 - rb0))"
  line+=" kernel_sndbuf_errors=$((sb1 - sb0)) kernel_in_errors=$((ie1 - ie0))"
  echo "$line" >>"$RESULTS"
  echo "  $line" >&2
}

# busy% is the server's CPU over the loadgen's whole run (startup and
# warmup included): near 100 means the server is what limits dgrams/s.
udp_table() {
  local size=$1 name p
  local -A rate cpu usr
  printf '\nudp size=%sB flows=%s window=%s duration=%ss runs=%s (medians)\n' \
    "$size" "$OPT_FLOWS" "$OPT_WINDOW" "$OPT_DURATION" "$OPT_RUNS"
  printf '%-8s %10s %9s %8s %8s %8s %12s %12s %6s\n' server dgrams/s MB/s \
    p50_us p99_us loss_% cpu_us/dgram usr_us/dgram busy%
  for name in lunet ceiling; do
    p="bench=udp server=$name size=$size"
    rate[$name]=$(stat_of "$p" dgrams_per_s)
    cpu[$name]=$(stat_of "$p" cpu_us_per_dgram)
    usr[$name]=$(stat_of "$p" usr_us_per_dgram)
    printf '%-8s %10.0f %9.2f %8.1f %8.1f %8.4f %12.3f %12.3f %6.1f\n' \
      "$name" "${rate[$name]}" "$(stat_of "$p" mb_per_s)" \
      "$(stat_of "$p" p50_us)" "$(stat_of "$p" p99_us)" \
      "$(stat_of "$p" loss_pct)" "${cpu[$name]}" "${usr[$name]}" \
      "$(stat_of "$p" busy_pct)"
  done
  local r
  r=$(ratio "${rate[lunet]}" "${rate[ceiling]}")
  printf 'lunet/ceiling: dgrams/s %s  cpu/dgram %s  usr/dgram %s\n' "$r" \
    "$(ratio "${cpu[lunet]}" "${cpu[ceiling]}")" \
    "$(ratio "${usr[lunet]}" "${usr[ceiling]}")"
  printf 'goal lunet %s of the ceiling (dgrams/s): %s\n' "$GOAL_UDP_DGRAMS" \
    "$(goal_met "$r" "$GOAL_UDP_DGRAMS" && echo met || echo "not met")"
}

parse_udp_options() {
  OPT_RUNS=3 OPT_DURATION=5 OPT_SIZES=() OPT_FLOWS=$UDP_FLOWS
  OPT_WINDOW=$UDP_WINDOW
  local -a sizes
  while (($# > 0)); do
    [[ $# -ge 2 ]] || die_usage "$1 needs a value"
    case $1 in
      --runs) OPT_RUNS=$2 ;;
      --duration) OPT_DURATION=$2 ;;
      --size) IFS=, read -ra sizes <<<"$2" && OPT_SIZES+=("${sizes[@]}") ;;
      --flows) OPT_FLOWS=$2 ;;
      --window) OPT_WINDOW=$2 ;;
      *) die_usage "unknown option '$1'" ;;
    esac
    shift 2
  done
  ((${#OPT_SIZES[@]} > 0)) || OPT_SIZES=(64 1200)
  parse_positive "$OPT_RUNS" "$OPT_FLOWS" "$OPT_WINDOW" "${OPT_SIZES[@]}"
  local n
  for n in "${OPT_SIZES[@]}"; do
    ((n >= 16 && n <= 65507)) || die_usage "--size: 16..65507, not $n"
  done
  parse_seconds "$OPT_DURATION"
}

# lunet's examples/udp_echo.lua and udp_echo_ceiling, alternating within a
# run and swapping order between runs, under the same udp_loadgen: dgrams/s,
# round-trip latency, loss (echoes not back within the loadgen's loss
# timeout; the kernel's receive-buffer drops over the run are in the raw
# lines), and server CPU per datagram.
bench_udp() {
  parse_udp_options "$@"
  build
  check_base_env
  UDP_LOADGEN_BIN=${UDP_LOADGEN_BIN:-$BUILD_DIR/bench/udp_loadgen}
  UDP_CEILING_BIN=${UDP_CEILING_BIN:-$BUILD_DIR/bench/udp_echo_ceiling}
  check_bins "$UDP_LOADGEN_BIN" "$UDP_CEILING_BIN"
  mkdir -p "$BUILD_DIR/results"
  RESULTS=$BUILD_DIR/results/udp-$(date +%Y%m%d-%H%M%S).txt
  {
    results_header "udp runs=$OPT_RUNS duration=$OPT_DURATION" \
      "sizes=$(IFS=,; echo "${OPT_SIZES[*]}") flows=$OPT_FLOWS" \
      "window=$OPT_WINDOW"
    echo "# lunet=$LUNET_BIN ceiling=$UDP_CEILING_BIN" \
      "loadgen=$UDP_LOADGEN_BIN"
  } >"$RESULTS"
  local size run name order
  for size in "${OPT_SIZES[@]}"; do
    for ((run = 1; run <= OPT_RUNS; run++)); do
      order="lunet ceiling"
      if ((run % 2 == 0)); then order="ceiling lunet"; fi
      for name in $order; do udp_one "$name" "$size" "$run"; done
    done
  done
  for size in "${OPT_SIZES[@]}"; do udp_table "$size"; done
  printf '\nraw results: %s\n' "$RESULTS"
}
