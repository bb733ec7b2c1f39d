#!/usr/bin/env bash
# The benchmarks in smoke mode (`scripts/bench all --smoke`: about a second
# per peer, one run, no timing checked), so scripts/bench, its tools and its
# peers cannot rot unnoticed. Peers missing from the machine are installed
# as in a real run; one that cannot be had is skipped with a
# "skipped: PEER: why" line rather than failing. ctest passes the binaries
# of the build under test (BENCH_BUILD=0 and the *_BIN variables).
set -euo pipefail
cd "$(dirname "$0")/.."
exec scripts/bench all --smoke
