#!/usr/bin/env bash
# `make experiments`: the whole suite (experiments/configs/suite/), resumable: a finished run is
# skipped in a second, a killed one resumes at its last finished round. Order: seed by seed, and
# within a seed the cheap policies first, so a partial suite still has complete seeds.
# SUITE_DATASETS / SUITE_SEEDS / SUITE_GROUPS narrow it (space-separated). A finished run's record
# (config, rounds, progress, ledger, labels) is copied to experiments/results/suite-runs/<name>/,
# which is committed: reports are made from there, and a run recorded there is not run again.
set -uo pipefail
cd "$(dirname "$0")/.."
. scripts/runs-lib.sh
B=${PROXAL_BIN:-target/debug/proxal}
DATASETS=${SUITE_DATASETS:-"banking77 clinc150 stackoverflow20 assistant-source"}
SEEDS=${SUITE_SEEDS:-"0 1 2"}
SUITE_G=${SUITE_GROUPS:-"random svpp-margin svpp-entropy svpp-badge svpp-coreset svpp-cluster-margin asvp-margin standard-margin asvp-auto-margin asvp-validate-margin asvp-auto-cache-margin asvp-auto-random-margin"}
LOG=experiments/runs/suite.log
mkdir -p experiments/runs
for ds in $DATASETS; do
    if [ ! -f "datasets/$ds-s/table.parquet" ]; then
        $B data import-builtin "$ds" --name "$ds-s" --sample-pool 3000 --sample-test 1000 --sample-seed 0 || exit 1
    fi
done
failed=0
for seed in $SEEDS; do
    for ds in $DATASETS; do
        for g in $SUITE_G; do
            cfg=experiments/configs/suite/$ds/$g-s$seed.toml
            [ -f "$cfg" ] || { echo "missing $cfg" >&2; exit 1; }
            keep=experiments/results/suite-runs/$(cfg_name "$cfg")
            run_and_keep "$B" "$cfg" "$keep" "$LOG" || failed=1
        done
    done
done
exit $failed
