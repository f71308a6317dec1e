#!/usr/bin/env bash
# Cross-check proxal's query strategies (and its logistic proxy) against scikit-activeml, a peer
# library nobody here wrote, on the same features and the same probabilities.
#
#   scripts/peer-check.sh            # writes experiments/results/peer-check.md
#
# Creates a git-ignored venv .venv-peer/ with scikit-activeml (pinned; numpy/scipy/sklearn, no
# torch), generates a small synthetic mixture in the feature store format (target/peer-check/),
# runs `bench_select` to fit the proxy and select with each strategy (exporting features,
# probabilities and picks as .npy), then runs the peer on the same arrays and compares.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.venv-peer
PEER_VERSION=1.0.1
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c "import skactiveml" 2>/dev/null; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet "scikit-activeml==$PEER_VERSION"
fi
cargo build --quiet --bin bench_select
B=target/debug/bench_select
D=target/peer-check
EX=$D/export
rm -rf "$D"
mkdir -p "$EX"
# 3,000 pool + 300 labelled rows, 32 dims, 6 overlapping classes.
$B gen --dir "$D" --pool 3000 --labelled 300 --dim 32 --classes 6 --separation 1.0 --noise 2.0 --seed 5 >/dev/null
K=40
SEED=7
# The peer's RNG stream for BADGE: its query reseeds a RandomState from the given seed and the
# number of unlabelled rows + 1 (skactiveml.utils.check_random_state), then
# RandomState.choice(p=…) consumes one uniform per centre after the first.
"$VENV/bin/python" -c "import numpy as np; from skactiveml.utils import check_random_state; np.save('$EX/uniforms.npy', check_random_state($SEED, 3000 + 1).random_sample($K))"
# Tight, uncalibrated fit so the proxy can be compared with scikit-learn's on the same objective.
FIT=(--gtol 1e-7 --no-calibrate)
for s in least-confidence margin entropy coreset; do
    $B run --dir "$D" --strategy $s --batch $K --seed $SEED "${FIT[@]}" --export "$EX" --export-features >/dev/null
done
# BADGE: scikit-activeml counts the origin as an initial centre (the original BADGE code does
# not; proxal's default follows the original), so the comparison runs proxal with --badge-origin.
$B run --dir "$D" --strategy badge --batch $K --seed $SEED "${FIT[@]}" --uniforms "$EX/uniforms.npy" --badge-origin --export "$EX" >/dev/null
mv "$EX/picks-badge.npy" "$EX/picks-badge-reference.npy"
for s in $(seq 0 19); do
    $B run --dir "$D" --strategy badge --batch $K --seed $s "${FIT[@]}" --badge-origin --export "$EX" >/dev/null
    mv "$EX/picks-badge.npy" "$EX/picks-badge-fast-$s.npy"
done
"$VENV/bin/python" scripts/peer-check.py "$EX" "$K" "$SEED" "$PEER_VERSION" > experiments/results/peer-check.md
cat experiments/results/peer-check.md
