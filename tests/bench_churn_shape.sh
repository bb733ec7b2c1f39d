#!/usr/bin/env bash
# `scripts/bench churn` at a tiny size (200 conns, 5 aborted downloads, one
# run; about a minute): every server of the aborted HTTP downloads (lunet,
# nginx with lua, Go) served GET /big whole and was measured, or was left
# out only because it could not be installed; the raw lines carry start,
# peak and after RSS; the summary has the abort rows with a lunet/peer
# ratio per measured peer; and --markdown replaces a file's "## churn"
# section, keeping what comes before it. No figure is judged. ctest passes
# the binaries under test (BENCH_BUILD=0 and the *_BIN variables).
set -euo pipefail
cd "$(dirname "$0")/.."
TMP=$(mktemp -d "${TMPDIR:-/tmp}/bench-churn.XXXXXX")
trap 'rm -rf "$TMP"' EXIT

fail() {
  echo "FAIL: $*"
  exit 1
}

md=$TMP/results.md
printf '%s\n' "# Benchmark results" "" "kept text" "" "## churn: old" \
  "old figures" >"$md"
scripts/bench churn --runs 1 --conns 200 --aborts 5 --markdown "$md" \
  >"$TMP/out" 2>"$TMP/err" ||
  fail "scripts/bench churn exited $?: $(tail -3 "$TMP/err")"

NUM='[0-9]+(\.[0-9]+)?'
# The raw line of kind $1 and server $2 on stderr, checked: 5 downloads
# and the three RSS figures, numbers.
check_abort_line() {
  local kind=$1 name=$2 line key
  line=$(grep -E "^  bench=churn kind=$kind server=$name run=1 conns=5 " \
    "$TMP/err" || true)
  [[ -n $line ]] || fail "no raw line for $kind/$name: $(tail -3 "$TMP/err")"
  for key in rss_start_kb rss_peak_kb rss_end_kb secs; do
    [[ $line =~ \ $key=$NUM( |$) ]] || fail "no number $key in: $line"
  done
}

check_abort_line abort lunet
check_abort_line abort-http lunet
measured=()
for peer in nginx-lua go; do
  why=$(sed -n "s/^skipped: $peer: //p" "$TMP/out")
  if [[ -n $why ]]; then
    # Only a peer that cannot be installed may be missing; one that runs
    # but does not serve GET /big whole is a defect of the bench.
    [[ $why == *"not installed"* || $why == *"apt-get install"* ]] ||
      fail "$peer skipped: $why"
    echo "note: $peer skipped: $why"
    continue
  fi
  check_abort_line abort-http "$peer"
  measured+=("$peer")
done

for what in "RSS start kB" "RSS peak kB" "RSS after kB"; do
  for peer in "${measured[@]}"; do
    grep -qE "^Aborted HTTP downloads, $what +[0-9]+ $peer [0-9]+ +$NUM " \
      "$TMP/out" || fail "no summary row '$what' against $peer with a ratio"
  done
done
grep -qE '^Aborted TCP downloads, RSS peak kB +[0-9]+ ' "$TMP/out" ||
  fail "no summary row for the raw TCP aborts"

grep -q '^kept text$' "$md" || fail "--markdown lost what came before churn"
! grep -q 'old figures' "$md" || fail "--markdown kept the old churn section"
(($(grep -c '^## churn' "$md") == 1)) || fail "not one churn section in $md"
grep -qE '^\| Aborted HTTP downloads, RSS peak kB \| [0-9]+ \|' "$md" ||
  fail "no abort row in the markdown section"

file=$(sed -n 's/^raw results: //p' "$TMP/out")
[[ -f $file ]] || fail "no raw results file '$file'"
rm -f "$file"
echo "ok: scripts/bench churn measures aborted downloads on every server" \
  "(${measured[*]:-no peers} beside lunet)"
