# bench/lib/core.sh: what every benchmark of scripts/bench does with
# processes (sourced by scripts/bench, which sets ROOT and BENCH_DIR).
# A server is started pinned to SERVER_CPU and waited for by its
# "listening" line, the load generator runs pinned to LOADGEN_CPU, both in
# the background so a signal to the script is handled at once, and every
# process is stopped by its PID (SIGTERM, then SIGKILL after STOP_WAIT_S).
# Server CPU is utime+stime from /proc/PID/stat, sampled just before and
# after each load run; RSS is VmRSS from /proc/PID/status. Both processes
# saturate their CPU on a 2-CPU box, so a rate is bounded by the load
# generator as much as by the server; CPU per message tells them apart.

BUILD_DIR=$ROOT/build-bench
SERVER_CPU=0
LOADGEN_CPU=1
READY_WAIT_S=10   # for a server's "listening" line
STOP_WAIT_S=5     # between SIGTERM and SIGKILL
WARMUP_S=1
IDLE_READY_S=40   # for idle_conns' "ready" (it gives up by itself after 30 s)

PIDS=()           # everything started in the background, for cleanup
TMP_DIR=""

die() {
  echo "scripts/bench: $*" >&2
  exit 1
}

# Bad command lines exit 2, like the unknown-benchmark case.
die_usage() {
  echo "scripts/bench: $*" >&2
  usage >&2
  exit 2
}

# True while the process runs; a zombie (exited, not yet reaped) is dead.
alive() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  stat=${stat##*) }
  [[ ${stat:0:1} != Z ]]
}

# Stops one process we started: SIGTERM, then SIGKILL after STOP_WAIT_S.
# Returns the process's exit status.
stop_pid() {
  local pid=$1 i status=0
  if alive "$pid"; then
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < STOP_WAIT_S * 10; i++)); do
      alive "$pid" || break
      sleep 0.1
    done
    if alive "$pid"; then
      echo "scripts/bench: pid $pid ignored SIGTERM, killing" >&2
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  wait "$pid" 2>/dev/null || status=$?
  return "$status"
}

cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do
    stop_pid "$pid" || true
  done
  PIDS=()
  if [[ -n $TMP_DIR ]]; then rm -rf "$TMP_DIR"; fi
}

forget_pid() {
  local pid=$1 p kept=()
  for p in "${PIDS[@]}"; do
    if [[ $p != "$pid" ]]; then kept+=("$p"); fi
  done
  PIDS=("${kept[@]+"${kept[@]}"}")
}

# "utime stime" of a process, in clock ticks. The command name in field 2
# may contain spaces, so fields are counted from after its closing ')'.
cpu_ticks() {
  local stat rest
  stat=$(<"/proc/$1/stat") || die "cannot read /proc/$1/stat"
  rest=${stat##*) }
  local -a f
  read -ra f <<<"$rest"
  echo "${f[11]} ${f[12]}"   # fields 14 and 15 of the full line
}

build() {
  if [[ ${BENCH_BUILD:-1} == 0 ]]; then return; fi
  (cd "$ROOT" &&
    cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release >/dev/null &&
    cmake --build build-bench -j2 >/dev/null) ||
    die "build failed (run the cmake commands by hand to see why)"
}

check_env() {
  command -v taskset >/dev/null || die "taskset not found (util-linux)"
  local ncpu
  ncpu=$(nproc)
  ((ncpu >= 2)) || die "need 2 CPUs to pin server and loadgen apart"
  LUNET_BIN=${LUNET_BIN:-$BUILD_DIR/lunet}
  LOADGEN_BIN=${LOADGEN_BIN:-$BUILD_DIR/bench/loadgen}
  CEILING_BIN=${CEILING_BIN:-$BUILD_DIR/bench/echo_ceiling}
  local bin
  for bin in "$LUNET_BIN" "$LOADGEN_BIN" "$CEILING_BIN"; do
    [[ -x $bin ]] || die "not executable: $bin"
  done
  CLK_TCK=$(getconf CLK_TCK)
}

# Starts "$@" pinned to SERVER_CPU with stderr in $log and waits for its
# "listening service=NAME ... addr=HOST:PORT" line. Sets SERVER_PID and
# SERVER_ADDR (globals, because $(...) would start it in a subshell).
start_server() {
  local service=$1 log=$2 line i
  shift 2
  (cd "$ROOT" && exec taskset -c "$SERVER_CPU" "$@" </dev/null >/dev/null \
    2>"$log") &
  SERVER_PID=$!
  SERVER_LOG=$log
  PIDS+=("$SERVER_PID")
  SERVER_ADDR=""
  for ((i = 0; i < READY_WAIT_S * 20; i++)); do
    line=$(grep -m1 -E "(^| |=)listening .*service=$service( |$).*addr=" \
      "$log" 2>/dev/null || true)
    if [[ -n $line ]]; then
      SERVER_ADDR=$(sed -E 's/.* addr=("?)([^ "]+).*/\2/' <<<"$line")
      return 0
    fi
    if ! alive "$SERVER_PID"; then
      die "server exited before listening: $* (log: $(tail -3 "$log"))"
    fi
    sleep 0.05
  done
  die "no 'listening service=$service' line within ${READY_WAIT_S}s: $*"
}

# Runs the loadgen against one server and sets LOAD_LINE to its stdout line
# plus the server's cpu ticks over the run and the loadgen's total_msgs, or
# dies with the loadgen's reason. The loadgen runs in the background so a
# signal to this script is handled at once rather than after the run.
load_server() {
  local pid=$1 addr=$2 conns=$3 size=$4 duration=$5 out=$6
  local status=0 limit total lpid ticks usr0 sys0 usr1 sys1
  ticks=$(cpu_ticks "$pid")
  read -r usr0 sys0 <<<"$ticks"
  limit=$(awk -v d="$duration" -v w="$WARMUP_S" 'BEGIN { print int(d+w+15) }')
  timeout -k 2 "$limit" taskset -c "$LOADGEN_CPU" "$LOADGEN_BIN" \
    --addr "$addr" --conns "$conns" --size "$size" \
    --duration "$duration" --warmup "$WARMUP_S" \
    </dev/null >"$out" 2>"$out.err" &
  lpid=$!
  PIDS+=("$lpid")
  wait "$lpid" || status=$?
  forget_pid "$lpid"
  alive "$pid" || die "server died under load: $(tail -3 "$SERVER_LOG")"
  ticks=$(cpu_ticks "$pid")
  read -r usr1 sys1 <<<"$ticks"
  if ((status != 0)); then
    die "loadgen failed (exit $status) against $addr: $(tail -1 "$out.err")"
  fi
  total=$(sed -nE 's/.*total_msgs=([0-9]+).*/\1/p' "$out.err")
  LOAD_LINE="$(head -1 "$out") total_msgs=${total:-0}"
  LOAD_LINE+=" cpu_ticks=$((usr1 + sys1 - usr0 - sys0))"
  LOAD_LINE+=" usr_ticks=$((usr1 - usr0)) sys_ticks=$((sys1 - sys0))"
}

# Pulls key=value out of a line.
field() {
  sed -nE "s/^(.* )?$1=([^ ]+).*/\\2/p" <<<"$2"
}

# Server CPU per round trip in microseconds, from the TICKS key of a raw
# line (cpu_ticks or usr_ticks). The CPU was sampled around the whole
# loadgen run, warmup included, so it is divided by the round trips of the
# whole run rather than by the measured ones.
us_per_msg() {
  local key=$1 line=$2 ticks msgs
  ticks=$(field "$key" "$line")
  msgs=$(field total_msgs "$line")
  if [[ ${msgs:-0} == 0 ]]; then msgs=$(field msgs "$line"); fi
  awk -v t="$ticks" -v m="$msgs" -v hz="$CLK_TCK" \
    'BEGIN { printf "%.3f", (m > 0 ? t * 1e6 / hz / m : 0) }'
}

check_base_env() {
  command -v taskset >/dev/null || die "taskset not found (util-linux)"
  (($(nproc) >= 2)) || die "need 2 CPUs to pin server and load apart"
  LUNET_BIN=${LUNET_BIN:-$BUILD_DIR/lunet}
  [[ -x $LUNET_BIN ]] || die "not executable: $LUNET_BIN"
  CLK_TCK=$(getconf CLK_TCK)
}

# Every tool in $@ must be executable.
check_bins() {
  local bin
  for bin in "$@"; do
    [[ -x $bin ]] || die "not executable: $bin"
  done
}

# Runs "$@" pinned to LOADGEN_CPU in the background, bounded by $2 seconds,
# stdout to $1 and stderr to $1.err; returns its exit status. In the
# background so a signal to this script is handled at once.
run_load() {
  local out=$1 limit=$2 lpid status=0
  shift 2
  timeout -k 2 "$limit" taskset -c "$LOADGEN_CPU" "$@" \
    </dev/null >"$out" 2>"$out.err" &
  lpid=$!
  PIDS+=("$lpid")
  wait "$lpid" || status=$?
  forget_pid "$lpid"
  return "$status"
}

# Stops the server started last and forgets it; a non-zero exit after
# SIGTERM is reported, not fatal (the figures are already taken).
stop_server() {
  local name=$1 status=0
  stop_pid "$SERVER_PID" || status=$?
  forget_pid "$SERVER_PID"
  if ((status != 0)); then
    echo "scripts/bench: $name exited $status after SIGTERM" \
      "(log: $SERVER_LOG)" >&2
  fi
}

# Dies, showing the lines, if lunet's log has errors or handler errors;
# shows warnings (a dropped slow consumer, a failed UDP send) and goes on.
check_lunet_log() {
  local log=$1 what=$2 bad n
  bad=$(grep -m3 -E 'level=error|handler error' "$log" || true)
  [[ -z $bad ]] || die "lunet logged errors during $what ($log):"$'\n'"$bad"
  n=$(grep -c 'level=warn' "$log" || true)
  if ((n > 0)); then
    echo "scripts/bench: lunet logged $n warnings during $what, first:" \
      "$(grep -m1 'level=warn' "$log")" >&2
  fi
}

# Wall-clock seconds between two $EPOCHREALTIME values.
elapsed_s() {
  awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'
}

# Microseconds of CPU per unit: ticks * 1e6 / CLK_TCK / count.
us_per() {
  awk -v t="$1" -v n="$2" -v hz="$CLK_TCK" \
    'BEGIN { printf "%.3f", (n > 0 ? t * 1e6 / hz / n : 0) }'
}

# Share of one CPU the server used over a wall time: ticks / hz / secs.
busy_pct() {
  awk -v t="$1" -v s="$2" -v hz="$CLK_TCK" \
    'BEGIN { printf "%.1f", (s > 0 ? 100 * t / hz / s : 0) }'
}

# The words after $1 rotated left $1 times: "rotate 1 a b c" is "b c a".
rotate() {
  local k=$1
  shift
  local -a w=("$@")
  ((${#w[@]} > 0)) || return 0
  k=$((k % ${#w[@]}))
  echo "${w[@]:k}" "${w[@]:0:k}"
}

# The git revision measured: BENCH_REV when set (binaries built from
# another checkout, say), else HEAD of the tree this script is in, with
# "+dirty" when tracked files differ from it.
bench_rev() {
  if [[ -n ${BENCH_REV:-} ]]; then
    echo "$BENCH_REV"
    return
  fi
  local rev
  rev=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null) || {
    echo none
    return
  }
  git -C "$ROOT" diff --quiet HEAD 2>/dev/null || rev+="+dirty"
  echo "$rev"
}

# Common header of a results file: $1 is the command line's summary.
results_header() {
  echo "# scripts/bench $1" \
    "date=$(date -u +%FT%TZ) host=$(uname -n) kernel=$(uname -r)" \
    "rev=$(bench_rev)"
}

parse_positive() {
  local n
  for n in "$@"; do
    [[ $n =~ ^[1-9][0-9]*$ ]] || die_usage "not a positive integer: '$n'"
  done
}

parse_seconds() {
  if [[ ! $1 =~ ^[0-9]+(\.[0-9]+)?$ || $1 =~ ^0+(\.0+)?$ ]]; then
    die_usage "not a duration in seconds: '$1'"
  fi
}

# Raises the open-file limit to the hard one for everything started from
# here, dying unless it allows NEED descriptors ($1; WHAT, $2, says for
# what: each connection is a descriptor in the server and in its client).
raise_nofile() {
  local need=$1 what=$2 hard
  hard=$(ulimit -Hn)
  if [[ $hard != unlimited ]] && ((hard < need)); then
    die "open-file hard limit $hard < $need needed for $what"
  fi
  ulimit -n "$hard" || die "cannot raise the open-file limit to $hard"
}

# VmRSS of a process in KiB.
rss_kb() {
  awk '$1 == "VmRSS:" { print $2 }' "/proc/$1/status" 2>/dev/null
}

# wrk's latency ("440.00us", "1.23ms", "1.00s") in microseconds.
wrk_us() {
  awk -v v="$1" 'BEGIN {
    n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
    if (u == "ms") n *= 1000; else if (u == "s") n *= 1e6
    else if (u == "m") n *= 6e7
    printf "%.1f", n }'
}

# key=value fields from wrk --latency output in file $1 (http, https).
wrk_fields() {
  local file=$1 reqs rps p50 p99 non2xx sockerr
  reqs=$(sed -nE 's/^ *([0-9]+) requests in .*/\1/p' "$file")
  rps=$(sed -nE 's/^Requests\/sec: *([0-9.]+).*/\1/p' "$file")
  p50=$(awk '$1 == "50%" { print $2 }' "$file")
  p99=$(awk '$1 == "99%" { print $2 }' "$file")
  non2xx=$(sed -nE 's/.*Non-2xx or 3xx responses: *([0-9]+).*/\1/p' "$file")
  sockerr=$(sed -nE 's/.*Socket errors: connect ([0-9]+), read ([0-9]+), write ([0-9]+), timeout ([0-9]+).*/\1+\2+\3+\4/p' "$file")
  echo "requests=${reqs:-0} req_per_s=${rps:-0}" \
    "p50_us=$(wrk_us "${p50:-0}") p99_us=$(wrk_us "${p99:-0}")" \
    "non2xx=${non2xx:-0} socket_errors=$((${sockerr:-0}))"
}
