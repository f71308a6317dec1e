#!/usr/bin/env bash
# make bench-ann: proxal's IVF index (candidate subpooling) against hnsw_rs, a maintained HNSW
# crate, on the same rows: the bench-select mixture (384 dims, 150 classes) at BENCH_ANN_SIZES
# rows (default 100000), build time and 10-NN recall against a brute-force scan for the same 200
# seeded queries, one after the other on this machine. hnsw_rs lives in its own package
# (bench/ann-peer, built in release mode into target/ann-peer), so proxal does not depend on it.
# Writes experiments/results/bench-ann.{md,json}; raw lines in target/bench-ann/*.jsonl.
set -uo pipefail
cd "$(dirname "$0")/.."
cargo build --quiet --bin bench_select || exit 1
CARGO_TARGET_DIR=target/ann-peer cargo build --quiet --release --manifest-path bench/ann-peer/Cargo.toml || exit 1
B=target/debug/bench_select
P=target/ann-peer/release/ann-peer
OUT=target/bench-ann
mkdir -p $OUT
: > $OUT/lines.jsonl
. scripts/bench-lib.sh
# one VERSION_DIR LABEL: both indexes over one feature version.
one() {
    local v=$1 label=$2 nprobe line before
    cat $v/*.safetensors > /dev/null
    for nprobe in 2 8; do
        before=$(loadavg)
        line=$($B index --version $v --nprobe $nprobe) || exit 1
        echo "$line" > $OUT/ours-$label.json
        stamp "$line" "$before" | tee -a $OUT/lines.jsonl
    done
    before=$(loadavg)
    line=$(timeout ${PEER_TIMEOUT:-600} $P $v $OUT/ours-$label.json) || line="{\"index\":\"hnsw_rs 0.3 (HNSW)\",\"version\":\"$v\",\"error\":\"exit $? (124 = over ${PEER_TIMEOUT:-600} s)\"}"
    stamp "$line" "$before" | tee -a $OUT/lines.jsonl
}
# Real embeddings first: clinc150's MiniLM v0 (22,500 rows), where `make experiments-subpool`
# (or any embed of clinc150) left one.
[ -f features/clinc150/v0/manifest.json ] && one features/clinc150/v0 clinc150
for n in ${BENCH_ANN_SIZES:-100000}; do
    d=$OUT/p$n
    [ -f $d/setup.json ] || $B gen --dir $d --pool $n --labelled 1000 --dim 384 --classes 150 --noise 6 --seed 1 || exit 1
    one $d/features/synthetic/v0 p$n
done
python3 scripts/bench-ann-report.py $OUT/lines.jsonl experiments/results/bench-ann.md experiments/results/bench-ann.json
