#!/usr/bin/env bash
# make bench-train-phases: where a fine-tuning step's time goes. bench_train's cases (default:
# banking77 and 128-token; BENCH_CASES to choose) with the encoder stack's phases timed
# (PROXAL_STACK_PHASES=1, backbone::stack::phases), written to
# experiments/results/bench-train-phases.md (BENCH_PHASES_OUT to write elsewhere). The steps/s of
# this run are not a record: its bench-train.{md,json} go to a temporary directory, and
# bench-train.md keeps `make bench-train`'s.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
. scripts/bench-train-lib.sh
bench_train_setup
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
PROXAL_STACK_PHASES=1 BENCH_CASES="${BENCH_CASES:-banking77,long}" BENCH_CANDLE_ADAMW=0 \
  BENCH_OUT="$work" BENCH_PHASES_OUT="${BENCH_PHASES_OUT:-$root/experiments/results/bench-train-phases.md}" \
  target/debug/bench_train >/dev/null
echo "bench-train-phases: wrote ${BENCH_PHASES_OUT:-experiments/results/bench-train-phases.md}"
