#!/usr/bin/env bash
# The benchmarks in smoke mode (a second or so each, no timing checked), so
# scripts/bench and its tools cannot rot unnoticed. ctest passes the binaries
# of the build under test (BENCH_BUILD=0 and the *_BIN variables).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bench echo --runs 1 --duration 1 --conns 8
scripts/bench udp --runs 1 --duration 1 --size 64
scripts/bench chat --runs 1 --duration 1 --clients 50
scripts/bench reload --runs 1 --duration 1 --idle 200 --reloads 2
