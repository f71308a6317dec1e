#!/usr/bin/env bash
# `make compare-proxies`: the least-squares proxy (proxy = "lsq") against the logistic one on the
# suite's svpp/margin runs, 3 datasets x 3 seeds. For each suite config
# experiments/configs/suite/<ds>/svpp-margin-s<seed>.toml it
#   1. writes experiments/configs/proxy/<ds>/svpp-margin-lsq-s<seed>.toml: the same config with
#      proxy = "lsq" and name proxy-<ds>-svpp-margin-lsq-s<seed>;
#   2. runs it (unless its record is already under experiments/results/proxy-runs/) and keeps its
#      record there (config, labelled, rounds, ledger, progress);
#   3. reruns the logistic suite config in a scratch home sharing only the assets, datasets and v0
#      feature caches, right after, so both proxies' fit times are measured under the same load
#      (and the rerun is checked against the committed suite record); its record is kept under
#      experiments/results/proxy-runs/logreg-rerun/.
# Then, per dataset, examples/proxy_overlap.rs fits both proxies on the same labelled rows (those
# of the committed logistic run before each round) and compares their margin picks
# (experiments/results/proxy-runs/same-labels-overlap.jsonl); examples/logistic_fit_timing.rs
# times a suite-sized logistic fit (proxal's L-BFGS vs linfa-logistic) and the lsq solvers
# (experiments/results/proxy-runs/fit-timing.md; COMPARE_TIMING=0 skips it: ~3 min, mostly the
# per-class linfa-linear solver). Finally scripts/compare-proxies.py writes
# experiments/results/proxy-lsq-vs-logreg.{md,json}.
# COMPARE_DATASETS / COMPARE_SEEDS narrow it; COMPARE_FORCE=1 reruns recorded runs.
# `make compare-proxies` builds target/debug/proxal and the two examples first.
set -uo pipefail
cd "$(dirname "$0")/.."
. scripts/runs-lib.sh
B=$(realpath "${PROXAL_BIN:-target/debug/proxal}")
DATASETS=${COMPARE_DATASETS:-"banking77 clinc150 stackoverflow20"}
SEEDS=${COMPARE_SEEDS:-"0 1 2"}
KEEP=experiments/results/proxy-runs
LOG=experiments/runs/compare-proxies.log
mkdir -p experiments/runs "$KEEP/logreg-rerun"
export COMPARE_DATE=$(date -u +%F) COMPARE_LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg) \
    COMPARE_THREADS=$(nproc) COMPARE_COMMIT=$(git rev-parse --short HEAD)
export COMPARE_DATASETS=$DATASETS COMPARE_SEEDS=$SEEDS
echo "$(date -u +%FT%TZ) start (load $COMPARE_LOAD_START, $COMPARE_THREADS threads, proxal $COMPARE_COMMIT)" | tee -a "$LOG"
for ds in $DATASETS; do
    if [ ! -f "datasets/$ds-s/table.parquet" ]; then
        "$B" data import-builtin "$ds" --name "$ds-s" --sample-pool 3000 --sample-test 1000 --sample-seed 0 || exit 1
    fi
done
failed=0
for seed in $SEEDS; do
    for ds in $DATASETS; do
        base=experiments/configs/suite/$ds/svpp-margin-s$seed.toml
        [ -f "$base" ] || { echo "missing $base" >&2; exit 1; }
        mkdir -p "experiments/configs/proxy/$ds"
        cfg=experiments/configs/proxy/$ds/svpp-margin-lsq-s$seed.toml
        sed -e '1s/.*/# Proxy comparison (scripts\/compare-proxies.sh): the suite config '"$ds\/$(basename "$base")"' with proxy = "lsq"/' \
            -e 's/^name = "suite-\(.*\)-s\([0-9]*\)"/name = "proxy-\1-lsq-s\2"/' \
            -e 's/^proxy = "logreg"/proxy = "lsq"/' "$base" > "$cfg"
        name=$(cfg_name "$cfg")
        if [ "${COMPARE_FORCE:-0}" = 1 ] || ! run_finished "$KEEP/$name"; then
            rm -rf "experiments/runs/$name"
            start=$(date +%s)
            echo "$(date -u +%FT%TZ) start $cfg (load $(cut -d' ' -f1 /proc/loadavg))" | tee -a "$LOG"
            if "$B" run "$cfg" --quiet >> "$LOG" 2>&1; then
                echo "$(date -u +%FT%TZ) done  $cfg in $(( $(date +%s) - start )) s" | tee -a "$LOG"
                keep_record "experiments/runs/$name" "$KEEP/$name"
            else
                echo "$(date -u +%FT%TZ) FAILED $cfg (see $LOG)" | tee -a "$LOG"
                failed=1
                continue
            fi
        fi
        lname=$(cfg_name "$base")
        if [ "${COMPARE_FORCE:-0}" = 1 ] || ! run_finished "$KEEP/logreg-rerun/$lname"; then
            home=$(mktemp -d)
            for d in assets datasets features; do ln -s "$PWD/$d" "$home/$d"; done
            start=$(date +%s)
            echo "$(date -u +%FT%TZ) rerun $base (load $(cut -d' ' -f1 /proc/loadavg))" | tee -a "$LOG"
            if "$B" run "$base" --home "$home" --quiet >> "$LOG" 2>&1; then
                echo "$(date -u +%FT%TZ) done  $base in $(( $(date +%s) - start )) s" | tee -a "$LOG"
                keep_record "$home/experiments/runs/$lname" "$KEEP/logreg-rerun/$lname"
            else
                echo "$(date -u +%FT%TZ) FAILED rerun of $base (see $LOG)" | tee -a "$LOG"
                failed=1
            fi
            rm -rf "$home"
        fi
    done
done
EX=target/debug/examples
: > "$KEEP/same-labels-overlap.jsonl"
for ds in $DATASETS; do
    # shellcheck disable=SC2086
    "$EX/proxy_overlap" "$ds" $SEEDS >> "$KEEP/same-labels-overlap.jsonl" || failed=1
done
if [ "${COMPARE_TIMING:-1}" = 1 ]; then
    echo "$(date -u +%FT%TZ) fit timing (load $(cut -d' ' -f1 /proc/loadavg))" | tee -a "$LOG"
    "$EX/logistic_fit_timing" 3 > "$KEEP/fit-timing.md" || failed=1
fi
export COMPARE_LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)
echo "$(date -u +%FT%TZ) end (load $COMPARE_LOAD_END)" | tee -a "$LOG"
python3 scripts/compare-proxies.py || failed=1
exit $failed
