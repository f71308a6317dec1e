#!/usr/bin/env bash
# `make experiments` (SUITE=suite), `make experiments-full` (SUITE=full) and `make experiments-plasm`
# (SUITE=plasm, issue 17: MiniLM-L6 acquiring for an MPNet successor): every config under
# experiments/configs/$SUITE/, resumable: a finished run is skipped in a second, a killed one
# resumes at its last finished round. Order: seed by seed, and within a seed the cheap policies
# first, so a partial suite still has complete seeds. SUITE_DATASETS / SUITE_SEEDS / SUITE_GROUPS
# narrow it (space-separated). The full suite's bolt-english (the 105K-row stress pool) has
# seeds 1-2 only for random and svpp. A finished run's record (config, rounds, progress, ledger, labels)
# is copied to experiments/results/$SUITE-runs/<name>/, which is committed: reports are made from
# there, and a run recorded there is not run again.
set -uo pipefail
cd "$(dirname "$0")/.."
. scripts/runs-lib.sh
B=${PROXAL_BIN:-target/debug/proxal}
SUITE=${SUITE:-suite}
case $SUITE in
suite)
    DATASETS=${SUITE_DATASETS:-"banking77 clinc150 stackoverflow20 assistant-source"}
    SUITE_G=${SUITE_GROUPS:-"random svpp-margin svpp-entropy svpp-badge svpp-coreset svpp-cluster-margin asvp-margin standard-margin asvp-auto-margin asvp-validate-margin asvp-auto-cache-margin asvp-auto-random-margin"}
    ;;
full)
    DATASETS=${SUITE_DATASETS:-"banking77 clinc150 stackoverflow20 bolt-english"}
    SUITE_G=${SUITE_GROUPS:-"random svpp-margin svpp-badge asvp-auto-margin asvp-margin asvp-labels-margin standard-margin"}
    ;;
plasm)
    DATASETS=${SUITE_DATASETS:-"banking77 clinc150"}
    SUITE_G=${SUITE_GROUPS:-"l6-svpp-margin-to-mpnet l6-svpp-margin-to-mpnet-pseudo mpnet-svpp-margin mpnet-random mpnet-svpp-margin-pseudo mpnet-random-pseudo"}
    ;;
*) echo "unknown SUITE '$SUITE' (suite | full | plasm)" >&2; exit 1 ;;
esac
SEEDS=${SUITE_SEEDS:-"0 1 2"}
LOG=experiments/runs/$SUITE.log
mkdir -p experiments/runs
for ds in $DATASETS; do
    if [ "$SUITE" = suite ] && [ ! -f "datasets/$ds-s/table.parquet" ]; then
        $B data import-builtin "$ds" --name "$ds-s" --sample-pool 3000 --sample-test 1000 --sample-seed 0 || exit 1
    elif [ "$SUITE" != suite ] && [ ! -f "datasets/$ds/table.parquet" ]; then
        $B data import-builtin "$ds" || exit 1
    fi
done
failed=0
for seed in $SEEDS; do
    for ds in $DATASETS; do
        for g in $SUITE_G; do
            cfg=experiments/configs/$SUITE/$ds/$g-s$seed.toml
            if [ ! -f "$cfg" ]; then
                # bolt-english has seeds 1-2 for random and svpp only (make-full-configs.py).
                if [ "$ds" = bolt-english ] && [ "$seed" != 0 ]; then
                    echo "no $cfg in the design: skipped" >&2; continue
                fi
                echo "missing $cfg" >&2; exit 1
            fi
            keep=experiments/results/$SUITE-runs/$(cfg_name "$cfg")
            run_and_keep "$B" "$cfg" "$keep" "$LOG" || failed=1
        done
    done
done
exit $failed
