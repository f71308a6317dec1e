#!/usr/bin/env bash
# make bench-embed: proxal's embedding vs sentence-transformers (PyTorch, CPU) on 2,000 pool
# texts of banking77 and clinc150 (+ 256 texts of 128 tokens), same threads, same run; parity
# (cosine per row) and the feature store's RSS on a 1,000,000 x 384 version. Writes
# experiments/results/bench-embed.{md,json}. Extra arguments go to scripts/bench-embed.py.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
scripts/fetch-assets.sh >/dev/null
PY="$(scripts/ref-venv.sh)"
cargo build --bin bench_embed
exec "$PY" scripts/bench-embed.py "$@"
