# bench/workloads/echo.sh: `scripts/bench echo`.
#:  echo [--runs N (5)] [--duration S (5)] [--conns N (50)]
#:       [--size B (64); repeat or comma-list, e.g. 64,4096]
#:       [--smoke: as --runs 1 --duration 1 --conns 8 --size 64]
#
# For every size and run starts examples/echo.lua and echo_ceiling in
# turn, the server pinned to CPU 0 and loadgen to CPU 1, and prints
# per-size medians. Server CPU per message is sampled around the whole
# loadgen run, over every round trip of that run (warmup included, as the
# loadgen reports on stderr as total_msgs).

# One server, one run: start, load, stop; appends the raw line to $RESULTS.
echo_one() {
  local name=$1 size=$2 run=$3 line status=0
  local log=$TMP_DIR/$name-$size-$run.log
  echo_server_cmd "$name"
  start_server echo "$log" "${ECHO_CMD[@]}"
  load_server "$SERVER_PID" "$SERVER_ADDR" "$OPT_CONNS" "$size" \
    "$OPT_DURATION" "$TMP_DIR/load.out"
  stop_pid "$SERVER_PID" || status=$?
  forget_pid "$SERVER_PID"
  if ((status != 0)); then
    echo "scripts/bench: $name exited $status after SIGTERM" >&2
  fi
  line="bench=echo server=$name size=$size run=$run $LOAD_LINE"
  line+=" cpu_us_per_msg=$(us_per_msg cpu_ticks "$line")"
  line+=" usr_us_per_msg=$(us_per_msg usr_ticks "$line")"
  echo "$line" >>"$RESULTS"
  echo "  $line" >&2
}

# dominates, and the runtime's own overhead shows most clearly here.
echo_table() {
  local size=$1 name p
  local -A rate cpu usr
  printf '\necho size=%sB conns=%s duration=%ss runs=%s (medians)\n' \
    "$size" "$OPT_CONNS" "$OPT_DURATION" "$OPT_RUNS"
  printf '%-8s %10s %9s %8s %8s %11s %11s\n' server msgs/s MB/s p50_us \
    p99_us cpu_us/msg usr_us/msg
  for name in lunet ceiling; do
    p="bench=echo server=$name size=$size"
    rate[$name]=$(stat_of "$p" msgs_per_s)
    cpu[$name]=$(stat_of "$p" cpu_us_per_msg)
    usr[$name]=$(stat_of "$p" usr_us_per_msg)
    printf '%-8s %10.0f %9.2f %8.1f %8.1f %11.3f %11.3f\n' "$name" \
      "${rate[$name]}" "$(stat_of "$p" mb_per_s)" \
      "$(stat_of "$p" p50_us)" \
      "$(stat_of "$p" p99_us)" "${cpu[$name]}" "${usr[$name]}"
  done
  printf 'lunet/ceiling: msgs/s %s  cpu/msg %s  usr/msg %s\n' \
    "$(ratio "${rate[lunet]}" "${rate[ceiling]}")" \
    "$(ratio "${cpu[lunet]}" "${cpu[ceiling]}")" \
    "$(ratio "${usr[lunet]}" "${usr[ceiling]}")"
}

parse_echo_options() {
  OPT_RUNS=5 OPT_DURATION=5 OPT_CONNS=50 OPT_SIZES=()
  local -a sizes
  while (($# > 0)); do
    if [[ $1 == --smoke ]]; then # what `all --smoke` gives it
      OPT_RUNS=1 OPT_DURATION=1 OPT_CONNS=8 OPT_SIZES+=(64)
      shift
      continue
    fi
    [[ $# -ge 2 ]] || die_usage "$1 needs a value"
    case $1 in
      --runs) OPT_RUNS=$2 ;;
      --duration) OPT_DURATION=$2 ;;
      --conns) OPT_CONNS=$2 ;;
      --size) IFS=, read -ra sizes <<<"$2" && OPT_SIZES+=("${sizes[@]}") ;;
      *) die_usage "unknown option '$1'" ;;
    esac
    shift 2
  done
  ((${#OPT_SIZES[@]} > 0)) || OPT_SIZES=(64)
  local n
  for n in "$OPT_RUNS" "$OPT_CONNS" "${OPT_SIZES[@]}"; do
    [[ $n =~ ^[1-9][0-9]*$ ]] || die_usage "not a positive integer: '$n'"
  done
  [[ $OPT_DURATION =~ ^[0-9]+(\.[0-9]+)?$ ]] ||
    die_usage "not a duration in seconds: '$OPT_DURATION'"
}

# Servers alternate within each run, and swap order between runs, so slow
# drift (thermal, other load) hits both alike.
bench_echo() {
  parse_echo_options "$@"
  build
  check_env
  mkdir -p "$BUILD_DIR/results"
  RESULTS=$BUILD_DIR/results/echo-$(date +%Y%m%d-%H%M%S).txt
  {
    echo "# scripts/bench echo runs=$OPT_RUNS duration=$OPT_DURATION" \
      "conns=$OPT_CONNS sizes=$(IFS=,; echo "${OPT_SIZES[*]}")" \
      "date=$(date -u +%FT%TZ) host=$(uname -n) kernel=$(uname -r)" \
      "rev=$(bench_rev)"
    echo "# lunet=$LUNET_BIN ceiling=$CEILING_BIN loadgen=$LOADGEN_BIN"
  } >"$RESULTS"
  local size run order
  for size in "${OPT_SIZES[@]}"; do
    for ((run = 1; run <= OPT_RUNS; run++)); do
      order="lunet ceiling"
      if ((run % 2 == 0)); then order="ceiling lunet"; fi
      for name in $order; do echo_one "$name" "$size" "$run"; done
    done
  done
  for size in "${OPT_SIZES[@]}"; do echo_table "$size"; done
  printf '\nraw results: %s\n' "$RESULTS"
}
