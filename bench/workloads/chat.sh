# bench/workloads/chat.sh: `scripts/bench chat`.
#:  chat [--clients N (1000)] [--duration S (5)] [--runs N (3)]
#:       [--senders N (1)] [--rate MSGS_PER_S (0: max)] [--window N (8)]
#:       [--size B (32)]
#
# chatload logs --clients into examples/chat.lua's lobby and counts the
# fan-out of --senders' messages: deliveries/s, completeness, and lunet's
# VmRSS per connected client.

# One run: a fresh lunet (so its RSS before connecting is the idle
# server's), chatload with --server-pid, stop; appends the raw line.
chat_one() {
  local run=$1 status=0 out=$TMP_DIR/chat.out line limit
  local log=$TMP_DIR/chat-$run.log
  local -a pace=(--window "$OPT_WINDOW")
  if [[ $OPT_RATE != 0 ]]; then pace=(--rate "$OPT_RATE"); fi
  start_server chat "$log" "$LUNET_BIN" run examples/chat.lua \
    --listen chat=127.0.0.1:0 --listen chat_json=127.0.0.1:0 --listen web=127.0.0.1:0
  limit=$(awk -v d="$OPT_DURATION" -v w="$WARMUP_S" \
    'BEGIN { print int(d + w + 100) }')
  run_load "$out" "$limit" "$CHATLOAD_BIN" --addr "$SERVER_ADDR" \
    --clients "$OPT_CLIENTS" --senders "$OPT_SENDERS" "${pace[@]}" \
    --size "$OPT_SIZE" --duration "$OPT_DURATION" --warmup "$WARMUP_S" \
    --server-pid "$SERVER_PID" || status=$?
  alive "$SERVER_PID" || die "lunet died under load: $(tail -3 "$log")"
  if ((status != 0)); then
    echo "  $(head -1 "$out")" >&2
    echo "  lunet log: $log (last lines below)" >&2
    tail -5 "$log" >&2
    die "chatload failed (exit $status): $(tail -1 "$out.err")"
  fi
  stop_server lunet
  check_lunet_log "$log" "chat run $run"
  line="bench=chat run=$run $(head -1 "$out")"
  echo "$line" >>"$RESULTS"
  echo "  $line" >&2
}

chat_table() {
  local p="bench=chat"
  printf '\nchat clients=%s senders=%s %s size=%sB duration=%ss runs=%s' \
    "$OPT_CLIENTS" "$OPT_SENDERS" \
    "$(if [[ $OPT_RATE == 0 ]]; then echo "window=$OPT_WINDOW (max rate)"
       else echo "rate=$OPT_RATE msgs/s"; fi)" \
    "$OPT_SIZE" "$OPT_DURATION" "$OPT_RUNS"
  printf ' (medians)\n'
  printf '%12s %9s %8s %9s %14s %9s %8s %8s %10s\n' delivered/s sent/s \
    p50_us p99_us cpu_us/deliv complete missing join_s KB/client
  printf '%12.0f %9.1f %8.1f %9.1f %14.4f %9.6f %8.0f %8.3f %10.2f\n' \
    "$(stat_of "$p" delivered_per_s)" "$(stat_of "$p" sent_per_s)" \
    "$(stat_of "$p" p50_us)" "$(stat_of "$p" p99_us)" \
    "$(stat_of "$p" cpu_us_per_delivery)" "$(stat_of "$p" complete)" \
    "$(stat_of "$p" missing)" "$(stat_of "$p" join_s)" \
    "$(stat_of "$p" kb_per_client)"
  printf 'lunet RSS (KB, medians): idle %.0f, %s clients joined %.0f,' \
    "$(stat_of "$p" rss_before_kb)" "$OPT_CLIENTS" \
    "$(stat_of "$p" rss_joined_kb)"
  printf ' after the run %.0f\n' "$(stat_of "$p" rss_end_kb)"
  printf 'complete = deliveries / (sent x clients) over the whole run after'
  printf ' the drain; in flight when the window closed: %.0f\n' \
    "$(stat_of "$p" in_flight)"
}

parse_chat_options() {
  OPT_RUNS=3 OPT_DURATION=5 OPT_CLIENTS=1000 OPT_SENDERS=1 OPT_RATE=0
  OPT_WINDOW=8 OPT_SIZE=32
  while (($# > 0)); do
    [[ $# -ge 2 ]] || die_usage "$1 needs a value"
    case $1 in
      --runs) OPT_RUNS=$2 ;;
      --duration) OPT_DURATION=$2 ;;
      --clients) OPT_CLIENTS=$2 ;;
      --senders) OPT_SENDERS=$2 ;;
      --rate) OPT_RATE=$2 ;;
      --window) OPT_WINDOW=$2 ;;
      --size) OPT_SIZE=$2 ;;
      *) die_usage "unknown option '$1'" ;;
    esac
    shift 2
  done
  parse_positive "$OPT_RUNS" "$OPT_CLIENTS" "$OPT_SENDERS" "$OPT_WINDOW" \
    "$OPT_SIZE"
  [[ $OPT_RATE =~ ^[0-9]+$ ]] || die_usage "--rate: messages/s, 0 for max"
  ((OPT_SENDERS <= OPT_CLIENTS)) || die_usage "--senders > --clients"
  ((OPT_CLIENTS <= 60000)) || die_usage "--clients: at most 60000"
  ((OPT_SIZE >= 16 && OPT_SIZE <= 1024)) || die_usage "--size: 16..1024"
  parse_seconds "$OPT_DURATION"
}

# Fan-out through examples/chat.lua: --clients in the lobby, --senders of
# them talking, every client counting what it receives (chatload). No
# peer: the figures are lunet's own (deliveries/s, latency from send to
# receipt, completeness, CPU per delivery, memory per client).
bench_chat() {
  parse_chat_options "$@"
  build
  check_base_env
  CHATLOAD_BIN=${CHATLOAD_BIN:-$BUILD_DIR/bench/chatload}
  check_bins "$CHATLOAD_BIN"
  raise_nofile $((OPT_CLIENTS + 256)) "$OPT_CLIENTS clients"
  mkdir -p "$BUILD_DIR/results"
  RESULTS=$BUILD_DIR/results/chat-$(date +%Y%m%d-%H%M%S).txt
  {
    results_header "chat runs=$OPT_RUNS duration=$OPT_DURATION" \
      "clients=$OPT_CLIENTS senders=$OPT_SENDERS rate=$OPT_RATE" \
      "window=$OPT_WINDOW size=$OPT_SIZE"
    echo "# lunet=$LUNET_BIN chatload=$CHATLOAD_BIN"
  } >"$RESULTS"
  local run
  for ((run = 1; run <= OPT_RUNS; run++)); do chat_one "$run"; done
  chat_table
  printf '\nraw results: %s\n' "$RESULTS"
}
