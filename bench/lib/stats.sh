# bench/lib/stats.sh: the statistics of scripts/bench, in one place: the
# median, the median of KEY over raw result lines, ratios, the per-run
# ratio pairing of the summary, the goals (which figure is compared with
# which peer and bound) and the summary rows with their text and markdown
# writers. tests/bench_stats.sh tests them on made-up raw lines.
#
# Raw lines are "bench=NAME key=value ..." in a results file, one per run
# of one server; a figure is the median over runs.

# The goals a per-benchmark table prints as well as the summary; the
# summary's other goals are in its rows below. A goal is "OP X": OP is
# >= or <=, X the bound on a ratio (lunet/peer) or on lunet's own figure.
GOAL_UDP_DGRAMS=">= 0.85"  # UDP dgrams/s, lunet/udp_echo_ceiling
GOAL_MEM_TCP="<= 600"      # B RSS per idle TCP conn, lunet's own
GOAL_MEM_HTTP="<= 700"     # B RSS per idle HTTP keep-alive conn, lunet's

SUM_ROWS=()  # the summary: "measurement|lunet|peer|ratio|goal|status"
SUM_MET=0 SUM_MISSED=0

# Median of the numbers on stdin; 0 for none. An even count gives the
# mean of the middle two.
median() {
  sort -g | awk '{ v[NR] = $1 }
    END { if (NR == 0) print 0;
          else if (NR % 2) print v[(NR + 1) / 2];
          else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# The values of KEY in the lines of FILE holding PREFIX followed by a
# space (a raw line's leading key=value pairs, so "server=lunet" does not
# match "server=lunet2").
values_of() {
  local file=$1 prefix=$2 key=$3
  grep -F -- "$prefix " "$file" | sed -nE "s/.* $key=([^ ]+).*/\\1/p"
}

# Median (or, with $3, min or max) of KEY over the raw lines in RESULTS
# that hold PREFIX: the figure of a per-benchmark table.
stat_of() {
  local prefix=$1 key=$2 how=${3:-median}
  values_of "$RESULTS" "$prefix" "$key" |
    case $how in
      median) median ;;
      min) sort -g | head -1 ;;
      max) sort -g | tail -1 ;;
    esac
}

# A over B with two decimals; 0 when B is not positive.
ratio() {
  awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }'
}

# True when VALUE ($1) meets GOAL ($2, "OP X").
goal_met() {
  local v=$1 op x
  read -r op x _ <<<"$2"
  awk -v v="$v" -v x="$x" -v op="$op" \
    'BEGIN { exit !(op == "<=" ? v <= x : v >= x) }'
}

# Median of KEY over the lines of benchmark $1's raw results that start
# with PREFIX; empty when there are none (a skipped peer, a failed run).
sum_stat() {
  local file=${ALL_RAW[$1]:-} prefix=$2 key=$3
  [[ -n $file && -f $file ]] || return 0
  grep -qF -- "$prefix " "$file" || return 0
  values_of "$file" "$prefix" "$key" | median
}

# One line per run that has both: that run's ratio of KEY, lunet's line
# (starting with LPREFIX) over the peer's (PPREFIX) in FILE. Runs pair by
# their run= field; a peer's figure of 0 gives no ratio.
paired_ratios() {
  local file=$1 lprefix=$2 pprefix=$3 key=$4
  awk -v lp="$lprefix " -v pp="$pprefix " -v key="$key" '
    function field(name,   i, kv) {
      for (i = 1; i <= NF; i++) {
        split($i, kv, "=")
        if (kv[1] == name) return kv[2]
      }
      return ""
    }
    index($0, lp) == 1 { l[field("run")] = field(key) }
    index($0, pp) == 1 { p[field("run")] = field(key) }
    END {
      for (r in l) if ((r in p) && p[r] > 0) print l[r] / p[r]
    }' "$file"
}

# Median over runs of each run's ratio of KEY, lunet (LPREFIX) to the peer
# (PPREFIX) measured beside it in benchmark $1: drift between runs on the
# shared machine (the same binary moves by 10-20%) cancels within a run.
# Empty when no run has both.
sum_paired() {
  local file=${ALL_RAW[$1]:-} lprefix=$2 pprefix=$3 key=$4
  [[ -n $file && -f $file ]] || return 0
  paired_ratios "$file" "$lprefix" "$pprefix" "$key" | median_or_empty
}

median_or_empty() {
  local values
  values=$(cat)
  [[ -n $values ]] || return 0
  median <<<"$values"
}

# Adds a row. $1 measurement, $2 lunet's figure, $3 the peer's name, $4 its
# figure, $5 the goal as "OP X" on the ratio (lunet/peer), or "OP X B" on
# lunet's own figure, or "-" for none; $6 printf format of the figures;
# $7 the ratio when not lunet's figure over the peer's (sum_paired's).
sum_row() {
  local what=$1 lv=$2 pname=$3 pv=$4 goal=$5 fmt=${6:-%.0f} paired=${7:-}
  local r="-" status="-" lt="n/a" pt="n/a" op x unit=""
  [[ -n $lv ]] && printf -v lt "$fmt" "$lv"
  [[ -n $pv ]] && printf -v pt "$fmt" "$pv"
  [[ $pname == - ]] && pname="" pt="-"
  [[ -n $lv && -n $pv ]] && r=$(ratio "$lv" "$pv")
  [[ -n $paired ]] && r=$(ratio "$paired" 1)
  if [[ $goal != - ]]; then
    read -r op x unit <<<"$goal"
    local v=$r
    [[ -n $unit ]] && v=${lv:--}
    if [[ $v == - ]]; then
      status="n/a"
    elif ((OPT_SMOKE)); then
      status="(smoke)"
    elif goal_met "$v" "$op $x"; then
      status=met SUM_MET=$((SUM_MET + 1))
    else
      status="NOT met" SUM_MISSED=$((SUM_MISSED + 1))
    fi
    [[ -n $unit ]] && goal="lunet $op $x $unit" || goal="ratio $op $x"
  fi
  SUM_ROWS+=("$what|$lt|$pname $pt|$r|$goal|$status")
}

# A row comparing lunet with a peer of the same benchmark: $1 measurement,
# $2 benchmark, $3 lunet's raw-line prefix, $4 the peer's name, $5 its
# prefix, $6 the key, $7 the goal and $8 the format as for sum_row. The
# figures are medians; the ratio is the median of the per-run ratios.
sum_cmp() {
  local what=$1 bench=$2 lprefix=$3 pname=$4 pprefix=$5 key=$6 goal=$7
  sum_row "$what" "$(sum_stat "$bench" "$lprefix" "$key")" "$pname" \
    "$(sum_stat "$bench" "$pprefix" "$key")" "$goal" "${8:-%.0f}" \
    "$(sum_paired "$bench" "$lprefix" "$pprefix" "$key")"
}

sum_http_rows() {
  local h="bench=http scenario=hello server" w="bench=http scenario=c200 server"
  local r="bench=http scenario=route server"
  sum_cmp "HTTP hello req/s" http "$h=lunet" nginx-lua "$h=nginx-lua" \
    req_per_s ">= 1.00"
  sum_cmp "HTTP hello CPU us/req" http "$h=lunet" nginx-lua "$h=nginx-lua" \
    cpu_us_per_req "<= 0.80" %.2f
  sum_cmp "HTTP hello CPU us/req" http "$h=lunet" ceiling "$h=ceiling" \
    cpu_us_per_req "<= 1.15" %.2f
  sum_cmp "HTTP hello req/s" http "$h=lunet" ceiling "$h=ceiling" req_per_s -
  sum_cmp "HTTP hello CPU us/req" http "$h=lunet" go "$h=go" \
    cpu_us_per_req - %.2f
  sum_cmp "HTTP /api/:name CPU us/req" http "$r=lunet" go-router \
    "$r=go-router" cpu_us_per_req "<= 0.50" %.2f
  sum_cmp "HTTP /api/:name req/s" http "$r=lunet" go-router "$r=go-router" \
    req_per_s -
  sum_cmp "HTTP hello p99 us, $HTTP_WIDE_CONNS conns" http "$w=lunet" \
    nginx-lua "$w=nginx-lua" p99_us "<= 1.00"
}

# The https benchmark against nginx with lua: CPU per keep-alive request,
# new connections per second (full handshakes; resumed with the newest
# ticket as a browser does; resumed with one ticket reused, no goal) with
# the server CPU per connection beside them, since a handshake costs the
# client about as much and conns/s may be its limit; RSS per idle TLS
# conn.
sum_https_rows() {
  local p="bench=https scenario" n=nginx-lua s what goal
  sum_cmp "HTTPS hello CPU us/req" https "$p=hello server=lunet" $n \
    "$p=hello server=$n" cpu_us_per_req "<= 0.90" %.2f
  sum_cmp "HTTPS hello req/s" https "$p=hello server=lunet" $n \
    "$p=hello server=$n" req_per_s -
  for s in full resume reuse; do
    case $s in
      full) what="full handshake" goal=">= 1.00" ;;
      resume) what="resumed" goal=">= 1.00" ;;
      reuse) what="reused ticket" goal=- ;;
    esac
    sum_cmp "TLS conns/s, $what" https "$p=$s server=lunet" $n \
      "$p=$s server=$n" conns_per_s "$goal"
    sum_cmp "TLS CPU us/conn, $what" https "$p=$s server=lunet" $n \
      "$p=$s server=$n" cpu_us_per_conn -
  done
  sum_cmp "Idle TLS keep-alive conn, B RSS" https "$p=idle server=lunet" $n \
    "$p=idle server=$n" bytes_per_conn "<= 1.00"
}

sum_echo_rows() {
  local size l p
  for size in 64 4096; do
    l="bench=echo server=lunet size=$size" p="bench=echo server=ceiling size=$size"
    sum_cmp "Echo ${size} B msgs/s" echo "$l" ceiling "$p" msgs_per_s ">= 0.90"
    sum_cmp "Echo ${size} B CPU us/msg" echo "$l" ceiling "$p" \
      cpu_us_per_msg "<= 1.15" %.2f
  done
}

sum_mem_rows() {
  local t="bench=mem kind=tcp server" h="bench=mem kind=http server" peer
  local goal
  sum_cmp "Idle TCP conn, B RSS" mem "$t=lunet" ceiling "$t=ceiling" \
    bytes_per_conn "$GOAL_MEM_TCP B"
  for peer in ceiling nginx-lua go; do
    goal=- # lunet's own figure, bounded once
    [[ $peer != ceiling ]] || goal="$GOAL_MEM_HTTP B"
    sum_cmp "Idle HTTP keep-alive conn, B RSS" mem "$h=lunet" "$peer" \
      "$h=$peer" bytes_per_conn "$goal"
  done
}

sum_other_rows() {
  local size l p q="bench=reload mode"
  for size in 64 1200; do
    l="bench=udp server=lunet size=$size" p="bench=udp server=ceiling size=$size"
    sum_cmp "UDP ${size} B dgrams/s" udp "$l" ceiling "$p" dgrams_per_s \
      "$GOAL_UDP_DGRAMS"
  done
  sum_row "Reload, server ms (idle conns open)" \
    "$(sum_stat reload "$q=idle" duration_ms)" "-" "" - %.3f
  sum_row "Echo p99 us, SIGHUP reload every 0.1 s" \
    "$(sum_stat reload "$q=sighup" p99_us)" quiet \
    "$(sum_stat reload "$q=quiet" p99_us)" -
  sum_row "Chat deliveries/s" "$(sum_stat chat "bench=chat" \
    delivered_per_s)" "-" "" -
}

# The ws benchmark against gorilla/websocket and node ws, with issue #19's
# goals: CPU per message at most 0.6x gorilla's and 0.4x node's, fan-out
# at least 2x gorilla's deliveries/s, an idle websocket in at most 1 KiB.
sum_ws_rows() {
  local e="bench=ws scenario=echo size" f="bench=ws scenario=fanout server"
  local i="bench=ws scenario=idle server" size peer cpu fan
  for peer in gorilla node; do
    [[ $peer == gorilla ]] && cpu="<= 0.60" fan=">= 2.00" || cpu="<= 0.40" fan=-
    for size in 64 4096; do
      sum_cmp "WS echo ${size} B msgs/s" ws "$e=$size server=lunet" "$peer" \
        "$e=$size server=$peer" msgs_per_s -
      sum_cmp "WS echo ${size} B CPU us/msg" ws "$e=$size server=lunet" \
        "$peer" "$e=$size server=$peer" cpu_us_per_msg "$cpu" %.2f
    done
    sum_cmp "WS fan-out deliveries/s" ws "$f=lunet" "$peer" "$f=$peer" \
      deliveries_per_s "$fan"
    sum_cmp "WS fan-out p99 us" ws "$f=lunet" "$peer" "$f=$peer" p99_us -
    sum_cmp "Idle WebSocket, B RSS" ws "$i=lunet" "$peer" "$i=$peer" \
      bytes_per_conn "<= 1024 B"
  done
}

# The rows of `scripts/bench churn` (not part of `all`): issue #30's goals
# are on lunet's own figures (Lua heap, RSS growth after the first 20,000
# conns, RSS peak over aborted downloads); the peers give the ratios.
GOAL_CHURN_HEAP="<= 8192 KiB"
GOAL_CHURN_GROWTH="<= 8000 kB"
GOAL_ABORT_RSS="<= 64000 kB"

sum_churn_rows() {
  local c="bench=churn kind" peer
  sum_cmp "Churn TCP conns/s" churn "$c=tcp server=lunet" ceiling \
    "$c=tcp server=ceiling" conns_per_s -
  sum_cmp "Churn TCP RSS peak kB" churn "$c=tcp server=lunet" ceiling \
    "$c=tcp server=ceiling" rss_peak_kb -
  sum_row "Churn TCP RSS growth kB" "$(sum_stat churn "$c=tcp server=lunet" \
    rss_growth_kb)" "-" "" "$GOAL_CHURN_GROWTH"
  sum_row "Churn TCP Lua heap peak KiB" "$(sum_stat churn \
    "$c=tcp server=lunet" heap_peak_kb)" "-" "" "$GOAL_CHURN_HEAP"
  for peer in nginx-lua go; do
    sum_cmp "Churn HTTP conns/s" churn "$c=http server=lunet" "$peer" \
      "$c=http server=$peer" conns_per_s -
    sum_cmp "Churn HTTP RSS peak kB" churn "$c=http server=lunet" "$peer" \
      "$c=http server=$peer" rss_peak_kb -
  done
  sum_row "Churn HTTP RSS growth kB" "$(sum_stat churn \
    "$c=http server=lunet" rss_growth_kb)" "-" "" "$GOAL_CHURN_GROWTH"
  sum_row "Churn HTTP Lua heap peak KiB" "$(sum_stat churn \
    "$c=http server=lunet" heap_peak_kb)" "-" "" "$GOAL_CHURN_HEAP"
  sum_abort_rows
}

# Aborted 8 MiB downloads: RSS before, at the peak and 1 s after, over
# HTTP against each peer (the peak's goal once, on lunet's own figure)
# and over raw TCP, lunet alone.
sum_abort_rows() {
  local a="bench=churn kind=abort-http server" t="bench=churn kind=abort"
  local peer key goal
  for key in rss_start_kb rss_peak_kb rss_end_kb; do
    for peer in nginx-lua go; do
      goal=-
      [[ $key != rss_peak_kb || $peer != nginx-lua ]] || goal=$GOAL_ABORT_RSS
      sum_cmp "Aborted HTTP downloads, $(sum_abort_label "$key")" churn \
        "$a=lunet" "$peer" "$a=$peer" "$key" "$goal"
    done
  done
  sum_row "Aborted TCP downloads, RSS peak kB" "$(sum_stat churn \
    "$t server=lunet" rss_peak_kb)" "-" "" "$GOAL_ABORT_RSS"
  sum_row "Aborted TCP downloads, RSS after kB" "$(sum_stat churn \
    "$t server=lunet" rss_end_kb)" "-" "" -
}

sum_abort_label() {
  case $1 in
    rss_start_kb) echo "RSS start kB" ;;
    rss_peak_kb) echo "RSS peak kB" ;;
    rss_end_kb) echo "RSS after kB" ;;
  esac
}

# One row ("a|b|..." as sum_row keeps it) as a markdown table row.
sum_md_row() {
  echo "| ${1//|/ | } |"
}

# The summary as a text table (stdout) or, with $1 = md, a markdown one.
sum_print() {
  local row
  if [[ ${1:-} == md ]]; then
    echo "| measurement | lunet | peer | lunet/peer | goal | status |"
    echo "|---|---:|---:|---:|---|---|"
    for row in "${SUM_ROWS[@]}"; do sum_md_row "$row"; done
    return
  fi
  printf '%-38s %10s %-20s %6s %-16s %s\n' measurement lunet peer ratio \
    goal status
  for row in "${SUM_ROWS[@]}"; do
    IFS='|' read -r a b c d e f <<<"$row"
    printf '%-38s %10s %-20s %6s %-16s %s\n' "$a" "$b" "$c" "$d" "$e" "$f"
  done
}

# One line per tool version, for the markdown file.
