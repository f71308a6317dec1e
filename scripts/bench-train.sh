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
scripts/fetch-assets.sh >/dev/null
export PROXAL_ASSETS="${PROXAL_ASSETS:-$root/assets}"
${CARGO:-cargo} build --bin proxal --bin bench_train
for d in banking77 clinc150; do
  target/debug/proxal data import-builtin "$d"
done
# PyTorch on the same batches, right after proxal (scripts/bench-train-torch.py), in the
# reference venv (scripts/ref-venv.sh: created once, several GB).
py="$(scripts/ref-venv.sh)"
batches="$(mktemp)"
trap 'rm -f "$batches"' EXIT
BENCH_BATCHES="$batches" target/debug/bench_train
BENCH_BATCHES="$batches" BENCH_THREADS="$(nproc)" "$py" scripts/bench-train-torch.py
