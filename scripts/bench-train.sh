#!/usr/bin/env bash
# make bench-train: MiniLM fine-tuning speed on CPU (src/bin/bench_train.rs). Fetches the assets,
# imports the built-in datasets it reads (banking77, clinc150: `proxal data import-builtin`,
# which rewrites the same table when it is already there, as `make demo` does), then writes
# experiments/results/bench-train{,-padding}.{md,json} with the date, threads and load averages.
# Datasets go where proxal keeps them ($PROXAL_HOME, default: the repository root); the assets
# are the repository's assets/ unless $PROXAL_ASSETS says otherwise. Environment for the
# benchmark itself: BENCH_STEPS, BENCH_BUCKETED_STEPS, BENCH_CANDLE_ADAMW=0,
# BENCH_TRAIN_PADDING_ONLY=1 (see the binary). PyTorch then runs the same batches.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
. scripts/bench-train-lib.sh
bench_train_setup
# PyTorch on the same batches, right after proxal (scripts/bench-train-torch.py), in the
# reference venv (scripts/ref-venv.sh: created once, several GB).
# BENCH_ROUNDS (default 3) alternating rounds, each side's best kept (bench-train-torch.py merge).
py="$(scripts/ref-venv.sh)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
rounds=${BENCH_ROUNDS:-3}
for r in $(seq 1 "$rounds"); do
  mkdir -p "$work/r$r"
  BENCH_BATCHES="$work/r$r/batches.json" BENCH_OUT="$work/r$r" target/debug/bench_train
  BENCH_THREADS="$(nproc)" "$py" scripts/bench-train-torch.py time "$work/r$r/batches.json" "$work/r$r/torch.json"
done
BENCH_THREADS="$(nproc)" "$py" scripts/bench-train-torch.py merge "$work" "$rounds" "${BENCH_OUT:-experiments/results}"
