#!/usr/bin/env bash
# Unit tests of bench/lib/stats.sh, the statistics of scripts/bench, on
# made-up raw lines: the median (an even count is the mean of the middle
# two), the pairing of per-run ratios by run= (not by order or by the
# ratio of medians), the goal comparison and the summary rows as
# bench/RESULTS.md and the text summary print them (and the rows of the
# aborted downloads of `scripts/bench churn`). Needs no build, so
# ctest runs it in every configuration.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BENCH_DIR=$ROOT/bench
usage() { :; }
# shellcheck source=../bench/lib/core.sh
source "$BENCH_DIR/lib/core.sh"
# shellcheck source=../bench/lib/stats.sh
source "$BENCH_DIR/lib/stats.sh"
# shellcheck source=../bench/lib/peers.sh
source "$BENCH_DIR/lib/peers.sh"

TMP_DIR=$(mktemp -d "${TMPDIR:-/tmp}/bench-stats.XXXXXX")
trap 'rm -rf "$TMP_DIR"' EXIT
FAILS=0

# eq NAME GOT WANT
eq() {
  if [[ $2 == "$3" ]]; then
    echo "ok: $1"
  else
    echo "FAIL: $1: got '$2', want '$3'"
    FAILS=$((FAILS + 1))
  fi
}

# --- median
eq "median of an even count" "$(printf '4\n1\n3\n2\n' | median)" 2.5
eq "median of an odd count" "$(printf '5\n1\n3\n' | median)" 3
eq "median sorts numerically" "$(printf '10\n9\n100\n' | median)" 10
eq "median of none" "$(median </dev/null)" 0
eq "median of none, or empty" "$(median_or_empty </dev/null)" ""

# --- medians over raw lines (stat_of, sum_stat)
RESULTS=$TMP_DIR/echo.txt
cat >"$RESULTS" <<'EOF'
# scripts/bench echo runs=3 server=lunet size=64 msgs_per_s=1
bench=echo server=lunet size=64 run=1 msgs_per_s=100 cpu_us_per_msg=4.0
bench=echo server=ceiling size=64 run=2 msgs_per_s=200 cpu_us_per_msg=4.0
bench=echo server=lunet size=64 run=2 msgs_per_s=200 cpu_us_per_msg=4.4
bench=echo server=ceiling size=64 run=3 msgs_per_s=300 cpu_us_per_msg=4.2
bench=echo server=lunet size=64 run=3 msgs_per_s=300 cpu_us_per_msg=4.2
bench=echo server=ceiling size=64 run=1 msgs_per_s=50 cpu_us_per_msg=2.0
bench=echo server=lunet size=4096 run=1 msgs_per_s=7 cpu_us_per_msg=9
bench=echo server=lunet size=64 run=4 msgs_per_s=999 cpu_us_per_msg=1
bench=echo server=ceiling size=64 run=4 msgs_per_s=0 cpu_us_per_msg=0
EOF
L="bench=echo server=lunet size=64" C="bench=echo server=ceiling size=64"
eq "stat_of: median of one server and size" \
  "$(stat_of "$L" msgs_per_s)" 250
eq "stat_of: min" "$(stat_of "$L" msgs_per_s min)" 100
eq "stat_of: max" "$(stat_of "$L" msgs_per_s max)" 999
eq "stat_of: a size is not a prefix of another" \
  "$(stat_of "bench=echo server=lunet size=40" msgs_per_s)" 0
declare -A ALL_RAW=([echo]=$RESULTS)
eq "sum_stat: median of a benchmark's lines" \
  "$(sum_stat echo "$C" msgs_per_s)" 125
eq "sum_stat: empty for a peer with no lines" \
  "$(sum_stat echo "bench=echo server=nginx" msgs_per_s)" ""
eq "sum_stat: empty for a benchmark with no file" \
  "$(sum_stat udp "$L" msgs_per_s)" ""

# --- per-run ratios: paired by run=, whatever the order of the lines
# (the ceiling's are 2, 3, 1, 4); a peer's 0 gives no ratio (run 4), a run
# without the peer none either.
eq "paired_ratios pairs by run" \
  "$(paired_ratios "$RESULTS" "$L" "$C" msgs_per_s | sort -g | tr '\n' ' ')" \
  "1 1 2 "
eq "sum_paired: median of the per-run ratios" \
  "$(sum_paired echo "$L" "$C" msgs_per_s)" 1
# The ratio of the medians would be 250/125 = 2: the pairing matters.
eq "ratio of two figures" "$(ratio 250 125)" 2.00
eq "ratio over 0 is 0" "$(ratio 5 0)" 0.00
eq "sum_paired: empty when no run has both" \
  "$(sum_paired echo "bench=echo server=lunet size=4096" \
    "bench=echo server=ceiling size=4096" msgs_per_s)" ""

# --- goals
goal() { if goal_met "$1" "$2"; then echo met; else echo not; fi; }
eq "goal >= at the bound" "$(goal 0.90 ">= 0.90")" met
eq "goal >= below" "$(goal 0.89 ">= 0.90")" not
eq "goal <= at the bound" "$(goal 1.15 "<= 1.15")" met
eq "goal <= above" "$(goal 1.16 "<= 1.15")" not
eq "goal on lunet's own figure with a unit" "$(goal 580 "<= 600 B")" met

# --- rows: the ratio is the paired one, the goal on it or on lunet's own
# figure, and the status counted.
OPT_SMOKE=0 SUM_ROWS=() SUM_MET=0 SUM_MISSED=0
sum_cmp "Echo 64 B msgs/s" echo "$L" ceiling "$C" msgs_per_s ">= 0.90"
sum_cmp "Echo 64 B CPU us/msg" echo "$L" ceiling "$C" cpu_us_per_msg \
  "<= 1.00" %.2f
sum_row "Idle TCP conn, B RSS" 700 ceiling 300 "<= 600 B"
sum_row "Chat deliveries/s" 12345.6 "-" "" -
sum_row "UDP 64 B dgrams/s" "" ceiling 10 ">= 0.85"
eq "rows counted met" "$SUM_MET" 1
eq "rows counted not met" "$SUM_MISSED" 2
eq "markdown rows (RESULTS.md)" "$(sum_print md)" \
  "| measurement | lunet | peer | lunet/peer | goal | status |
|---|---:|---:|---:|---|---|
| Echo 64 B msgs/s | 250 | ceiling 125 | 1.00 | ratio >= 0.90 | met |
| Echo 64 B CPU us/msg | 4.10 | ceiling 3.00 | 1.10 | ratio <= 1.00 | NOT met |
| Idle TCP conn, B RSS | 700 | ceiling 300 | 2.33 | lunet <= 600 B | NOT met |
| Chat deliveries/s | 12346 |  - | - | - | - |
| UDP 64 B dgrams/s | n/a | ceiling 10 | - | ratio >= 0.85 | n/a |"
eq "one markdown row" "$(sum_md_row "a|1|p 2|0.50|-|-")" \
  "| a | 1 | p 2 | 0.50 | - | - |"
eq "text summary row" "$(sum_print | sed -n 2p)" \
  "Echo 64 B msgs/s                              250 ceiling 125            1.00 ratio >= 0.90    met"
# --- the https rows: which scenario and key each row reads, the paired
# ratio per row, and the goals (CPU per request <= 0.90, conns/s >= 1.00
# for full and resumed, none for the reused ticket, idle RSS <= 1.00).
HTTPS=$TMP_DIR/https.txt
H="bench=https scenario"
cat >"$HTTPS" <<EOF
$H=hello server=lunet run=1 req_per_s=300 cpu_us_per_req=8
$H=hello server=nginx-lua run=1 req_per_s=200 cpu_us_per_req=10
$H=full server=lunet run=1 conns_per_s=900 cpu_us_per_conn=400
$H=full server=nginx-lua run=1 conns_per_s=1000 cpu_us_per_conn=500
$H=resume server=lunet run=1 conns_per_s=1500 cpu_us_per_conn=300
$H=resume server=nginx-lua run=1 conns_per_s=1000 cpu_us_per_conn=200
$H=reuse server=lunet run=1 conns_per_s=10 cpu_us_per_conn=30
$H=reuse server=nginx-lua run=1 conns_per_s=20 cpu_us_per_conn=60
$H=idle server=lunet run=1 conns=5000 bytes_per_conn=3000
$H=idle server=nginx-lua run=1 conns=5000 bytes_per_conn=4000
EOF
ALL_RAW=([https]=$HTTPS)
OPT_SMOKE=0 SUM_ROWS=() SUM_MET=0 SUM_MISSED=0
sum_https_rows
eq "https rows counted met" "$SUM_MET" 3
eq "https rows counted not met" "$SUM_MISSED" 1
eq "https rows (RESULTS.md)" "$(sum_print md | tail -n +3)" \
  "| HTTPS hello CPU us/req | 8.00 | nginx-lua 10.00 | 0.80 | ratio <= 0.90 | met |
| HTTPS hello req/s | 300 | nginx-lua 200 | 1.50 | - | - |
| TLS conns/s, full handshake | 900 | nginx-lua 1000 | 0.90 | ratio >= 1.00 | NOT met |
| TLS CPU us/conn, full handshake | 400 | nginx-lua 500 | 0.80 | - | - |
| TLS conns/s, resumed | 1500 | nginx-lua 1000 | 1.50 | ratio >= 1.00 | met |
| TLS CPU us/conn, resumed | 300 | nginx-lua 200 | 1.50 | - | - |
| TLS conns/s, reused ticket | 10 | nginx-lua 20 | 0.50 | - | - |
| TLS CPU us/conn, reused ticket | 30 | nginx-lua 60 | 0.50 | - | - |
| Idle TLS keep-alive conn, B RSS | 3000 | nginx-lua 4000 | 0.75 | ratio <= 1.00 | met |"

OPT_SMOKE=1 SUM_ROWS=()
sum_row "Echo 64 B msgs/s" 1 ceiling 2 ">= 0.90"
eq "smoke rows are not judged" "$(sum_print md | tail -1)" \
  "| Echo 64 B msgs/s | 1 | ceiling 2 | 0.50 | ratio >= 0.90 | (smoke) |"

# --- churn rows: aborted downloads compared with each peer run by run,
# the RSS peak goal on lunet's own figure, the raw TCP form (kind=abort)
# not mistaken for the HTTP one (kind=abort-http).
RESULTS=$TMP_DIR/churn.txt
A="bench=churn kind=abort-http server"
cat >"$RESULTS" <<EOF
$A=lunet run=1 conns=200 rss_start_kb=20000 rss_peak_kb=40000 rss_end_kb=30000
$A=nginx-lua run=1 conns=200 rss_start_kb=10000 rss_peak_kb=20000 rss_end_kb=15000
$A=go run=1 conns=200 rss_start_kb=20000 rss_peak_kb=40000 rss_end_kb=30000
$A=lunet run=2 conns=200 rss_start_kb=20000 rss_peak_kb=90000 rss_end_kb=30000
$A=nginx-lua run=2 conns=200 rss_start_kb=20000 rss_peak_kb=30000 rss_end_kb=30000
bench=churn kind=abort server=lunet run=1 conns=200 rss_start_kb=1 rss_peak_kb=70000 rss_end_kb=2
EOF
ALL_RAW=([churn]=$RESULTS)
OPT_SMOKE=0 SUM_ROWS=() SUM_MET=0 SUM_MISSED=0
sum_abort_rows
row() { sum_print md | grep -F "| Aborted $1 |"; }
eq "abort start vs nginx: median of per-run ratios 2 and 1" \
  "$(row "HTTP downloads, RSS start kB" | head -1)" \
  "| Aborted HTTP downloads, RSS start kB | 20000 | nginx-lua 15000 | 1.50 | - | - |"
eq "abort peak: goal on lunet's median (65000 kB), ratios 2 and 3" \
  "$(row "HTTP downloads, RSS peak kB" | head -1)" \
  "| Aborted HTTP downloads, RSS peak kB | 65000 | nginx-lua 25000 | 2.50 | lunet <= 64000 kB | NOT met |"
eq "abort peak vs go: one run paired" \
  "$(row "HTTP downloads, RSS peak kB" | tail -1)" \
  "| Aborted HTTP downloads, RSS peak kB | 65000 | go 40000 | 1.00 | - | - |"
eq "raw TCP aborts are their own row" \
  "$(row "TCP downloads, RSS peak kB")" \
  "| Aborted TCP downloads, RSS peak kB | 70000 |  - | - | lunet <= 64000 kB | NOT met |"
eq "abort rows: 2 goals, both missed" "$SUM_MET $SUM_MISSED" "0 2"

if ((FAILS > 0)); then
  echo "$FAILS failed"
  exit 1
fi
echo "all passed"
