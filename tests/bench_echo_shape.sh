#!/usr/bin/env bash
# `scripts/bench echo --smoke` still prints what readers and scripts parse:
# the per-run raw lines (on stderr and in the raw results file) with the
# same key=value keys in the same order, the medians table and the
# lunet/ceiling line on stdout, and the "raw results: FILE" line. The
# shapes are those of the single-file scripts/bench before it was split
# into bench/. ctest passes the binaries under test (BENCH_BUILD=0 and the
# *_BIN variables), as for bench_smoke.
set -euo pipefail
cd "$(dirname "$0")/.."
TMP=$(mktemp -d "${TMPDIR:-/tmp}/bench-shape.XXXXXX")
trap 'rm -rf "$TMP"' EXIT

fail() {
  echo "FAIL: $*"
  exit 1
}

scripts/bench echo --smoke >"$TMP/out" 2>"$TMP/err" ||
  fail "scripts/bench echo --smoke exited $?: $(tail -3 "$TMP/err")"

KEYS="bench server size run msgs secs msgs_per_s mb_per_s p50_us p99_us"
KEYS+=" errors total_msgs cpu_ticks usr_ticks sys_ticks cpu_us_per_msg"
KEYS+=" usr_us_per_msg"
NUM='[0-9]+(\.[0-9]+)?'

# A raw line: the keys in order, the fixed values, numbers elsewhere.
check_raw() {
  local line=$1 keys="" kv k v
  for kv in $line; do
    k=${kv%%=*} v=${kv#*=}
    keys+=" $k"
    case $k in
      bench) [[ $v == echo ]] || fail "bench=$v in: $line" ;;
      server) [[ $v == lunet || $v == ceiling ]] || fail "server=$v" ;;
      *) [[ $v =~ ^$NUM$ ]] || fail "$k=$v is not a number in: $line" ;;
    esac
  done
  [[ ${keys# } == "$KEYS" ]] || fail "keys '${keys# }', want '$KEYS'"
}

mapfile -t raw < <(sed -n 's/^  \(bench=echo .*\)/\1/p' "$TMP/err")
((${#raw[@]} == 2)) || fail "${#raw[@]} raw lines on stderr, want 2"
for line in "${raw[@]}"; do check_raw "$line"; done
[[ ${raw[0]} == "bench=echo server=lunet size=64 run=1 "* &&
  ${raw[1]} == "bench=echo server=ceiling size=64 run=1 "* ]] ||
  fail "run 1 is not lunet then ceiling: ${raw[*]}"

mapfile -t out <"$TMP/out"
want=(""
  "echo size=64B conns=8 duration=1s runs=1 (medians)"
  "server       msgs/s      MB/s   p50_us   p99_us  cpu_us/msg  usr_us/msg")
for i in 0 1 2; do
  [[ ${out[i]} == "${want[i]}" ]] ||
    fail "stdout line $((i + 1)): '${out[i]}', want '${want[i]}'"
done
row="^(lunet  |ceiling) +[0-9]+ +$NUM +$NUM +$NUM +$NUM +$NUM$"
[[ ${out[3]} =~ $row && ${out[3]} == lunet* ]] || fail "row: '${out[3]}'"
[[ ${out[4]} =~ $row && ${out[4]} == ceiling* ]] || fail "row: '${out[4]}'"
ratios="^lunet/ceiling: msgs/s $NUM  cpu/msg $NUM  usr/msg $NUM$"
[[ ${out[5]} =~ $ratios ]] || fail "ratios line: '${out[5]}'"
[[ ${out[6]} == "" && ${out[7]} == "raw results: "* ]] ||
  fail "no 'raw results:' line after a blank: '${out[6]}' '${out[7]}'"
((${#out[@]} == 8)) || fail "${#out[@]} stdout lines, want 8"

file=${out[7]#raw results: }
[[ -f $file ]] || fail "no raw results file $file"
mapfile -t lines <"$file"
((${#lines[@]} == 4)) || fail "${#lines[@]} lines in $file, want 4"
[[ ${lines[0]} =~ ^"# scripts/bench echo runs=1 duration=1 conns=8 sizes=64 date=".*" host=".*" kernel=".*" rev=" ]] ||
  fail "header 1 of $file: '${lines[0]}'"
[[ ${lines[1]} =~ ^"# lunet=".*" ceiling=".*" loadgen=" ]] ||
  fail "header 2 of $file: '${lines[1]}'"
[[ ${lines[2]} == "${raw[0]}" && ${lines[3]} == "${raw[1]}" ]] ||
  fail "$file's raw lines differ from stderr's"
rm -f "$file"
echo "ok: scripts/bench echo --smoke output has its shape"
