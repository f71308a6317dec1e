#!/usr/bin/env bash
# make bench-select: one selection round (proxy fit + score + select) per strategy on synthetic
# Gaussian mixtures of 100K and 1M pool rows × 384 dims, 10K labelled, 150 classes, stored in
# the feature store format and read through the memory map. Every case runs in its own process
# (honest peak RSS). The peer (scikit-activeml, .venv-peer/ from scripts/peer-check.sh) runs on
# the same features and the same probabilities where it can; its memory is capped with ulimit so
# an O(n·C·d) allocation fails cleanly instead of taking the shared machine down.
#
# Writes experiments/results/bench-select.{md,json}; raw lines in target/bench-select/*.jsonl.
# Every case records when it ran (UTC), the load averages before and after it and the threads.
# BENCH_SIZES="100000 1000000" (default) selects the pool sizes; BENCH_STRATEGIES="margin …"
# runs only those strategies (ours and the peer's; default: all); BENCH_REPEAT=n runs each of our
# cases n times (the report keeps the fastest and lists all). The cases of this run replace the
# same cases (strategy, pool, batch) in the committed bench-select.json and the others are kept
# with their own dates, so a subset run updates the full report; BENCH_FRESH=1 drops the others.
# BENCH_DTYPES="f32 f16" also stores each pool in f16 (the same rows, rounded) and runs the cases
# on it; where the f32 pool of that size exists, margin, badge and coreset on f16 also run the
# same round on the f32 twin and record how many picks the two share. Pools over 1M rows (e.g.
# BENCH_SIZES=10000000 BENCH_DTYPES=f16) run the uncertainty strategies only: exhaustive BADGE
# and core-set grow with the pool (108 s and 227 s at 1M); BENCH_EXHAUSTIVE_LARGE=1 runs them
# there too (on f16 pools), to show what a round costs without subpooling. Those pools also run
# the subpooled rounds (below; BENCH_SUBPOOL=1: at every size).
set -uo pipefail
cd "$(dirname "$0")/.."
VENV=.venv-peer
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c "import skactiveml" 2>/dev/null; then
    python3 -m venv "$VENV" && "$VENV/bin/pip" install --quiet "scikit-activeml==1.0.1"
fi
cargo build --quiet --bin bench_select || exit 1
B=target/debug/bench_select
OUT=target/bench-select
mkdir -p "$OUT"
OURS=$OUT/ours.jsonl
PEER=$OUT/peer.jsonl
if [ -z "${BENCH_KEEP:-}" ]; then  # BENCH_KEEP=1 appends to the previous run's lines
    : > "$OURS"
    : > "$PEER"
fi
SIZES=${BENCH_SIZES:-"100000 1000000"}
PEER_MEM_KB=${PEER_MEM_KB:-8000000}   # 8 GB address space for the peer
PEER_TIMEOUT=${PEER_TIMEOUT:-600}
OUR_TIMEOUT=${OUR_TIMEOUT:-600}

STRATS=${BENCH_STRATEGIES:-}
want() { [ -z "$STRATS" ] || [[ " $STRATS " == *" $1 "* ]]; }
REPEAT=${BENCH_REPEAT:-1}

. scripts/bench-lib.sh

run_ours() { # dir strategy batch [extra…]
    local d=$1 s=$2 k=$3; shift 3
    want "$s" || return 0
    local line rc r before
    for r in $(seq "$REPEAT"); do
        before=$(loadavg)
        line=$(timeout "$OUR_TIMEOUT" $B run --dir "$d" --strategy "$s" --batch "$k" "$@" 2>/dev/null)
        rc=$?
        if [ $rc -ne 0 ] || [ -z "$line" ]; then
            line="{\"strategy\":\"$s\",\"batch\":$k,\"dir\":\"$d\",\"error\":\"exit $rc (124 = over ${OUR_TIMEOUT} s)\"}"
        fi
        stamp "$line" "$before" | tee -a "$OURS"
    done
}

# The subpooled rounds (pools over 1M rows, or any size with BENCH_SUBPOOL=1): BADGE, core-set and
# Cluster-Margin on a candidate subpool (the first builds the IVF index, the others load it), and
# BADGE once more without the margin scan of the whole pool; each also times the next round (its
# picks labelled: only they are queried for neighbours).
subpooled() { # dir pool
    [ "$2" -gt 1000000 ] || [ -n "${BENCH_SUBPOOL:-}" ] || return 0
    want badge || want coreset || want cluster-margin || return 0
    rm -rf "$1"/features/synthetic/v0/cache   # the first case builds the index (and times it)
    for s in badge coreset cluster-margin; do
        run_ours "$1" "$s" 1000 --subpool always
    done
    run_ours "$1" badge 1000 --subpool always --subpool-uncertain 0
}

DTYPES=${BENCH_DTYPES:-f32}
for n in $SIZES; do
  for dt in $DTYPES; do
    d=$OUT/p$n
    [ "$dt" = f32 ] || d=$OUT/p$n-$dt
    if [ ! -f "$d/setup.json" ]; then
        rm -rf "$d"
        $B gen --dir "$d" --pool "$n" --labelled 10000 --dim 384 --classes 150 --noise 6 --seed 1 --dtype "$dt" || exit 1
    fi
    # Warm the page cache once so every case reads the same way.
    cat "$d"/features/synthetic/v0/*.safetensors > /dev/null
    ex=$d/export
    mkdir -p "$ex"
    if [ "$dt" != f32 ]; then
        twin=()
        [ -f "$OUT/p$n/setup.json" ] && [ "$n" -le 1000000 ] && twin=(--twin "$OUT/p$n")
        run_ours "$d" margin 1000 --eval "${twin[@]}"
        run_ours "$d" least-confidence 1000
        if [ "$n" -le 1000000 ] || [ -n "${BENCH_EXHAUSTIVE_LARGE:-}" ]; then
            run_ours "$d" badge 1000 "${twin[@]}"
            run_ours "$d" coreset 1000 "${twin[@]}"
        fi
        subpooled "$d" "$n"
        continue  # the peer runs on the f32 pools only
    fi
    if [ "$n" -gt 1000000 ]; then
        run_ours "$d" margin 1000 --eval
        run_ours "$d" least-confidence 1000
        subpooled "$d" "$n"
        continue
    elif [ "$n" -le 200000 ]; then
        run_ours "$d" margin 1000 --eval --export "$ex" --export-features
        for s in random least-confidence entropy badge coreset cluster-margin ups:margin typicality; do
            run_ours "$d" "$s" 1000
        done
    else
        run_ours "$d" margin 1000 --eval --export "$ex"
        for s in random least-confidence entropy ups:margin badge coreset; do
            run_ours "$d" "$s" 1000
        done
        run_ours "$d" cluster-margin 1000
        run_ours "$d" cluster-margin 100000
    fi
    # The peer, on the same features (X.npy) and probabilities (proba.npy).
    for s in proxy-fit least-confidence margin entropy coreset badge; do
        if [ "$s" = proxy-fit ]; then want margin || want least-confidence || want entropy || continue
        else want "$s" || continue; fi
        cap=$PEER_MEM_KB
        if [ "$n" -gt 200000 ]; then
            # At 1M only margin: the peer's batch selection allocates a batch × n float64 utility
            # matrix (7.5 GiB at 1K × 1M), so each uncertainty case needs ~9.5 GB; one is enough.
            [ "$s" != margin ] && continue
            cap=${PEER_MEM_KB_1M:-12500000}
        fi
        before=$(loadavg)
        line=$( (ulimit -v "$cap"; timeout "$PEER_TIMEOUT" "$VENV/bin/python" scripts/bench-select-peer.py "$ex" "$s" 1000 "$n") 2>"$OUT/peer-$n-$s.err")
        rc=$?
        if [ $rc -ne 0 ] || [ -z "$line" ]; then
            why="exit $rc"
            [ $rc -eq 124 ] && why="timeout after ${PEER_TIMEOUT} s"
            grep -q MemoryError "$OUT/peer-$n-$s.err" && why="out of memory (MemoryError under a ${cap} kB address-space cap)"
            line="{\"strategy\":\"$s\",\"pool_rows\":$n,\"peer_seconds\":null,\"reason\":\"$why\"}"
        fi
        stamp "$line" "$before" | tee -a "$PEER"
    done
  done
done
python3 scripts/bench-select-report.py "$OURS" "$PEER" experiments/results/bench-select.md experiments/results/bench-select.json
cat experiments/results/bench-select.md
