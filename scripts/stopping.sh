#!/usr/bin/env bash
# `make stopping`: the stopping experiment (experiments/configs/stopping/, docs/STOPPING.md), then
# its report. Resumable like the suite: a run whose record is in experiments/results/stopping-runs/
# is skipped, a killed one resumes at its last finished round. Order: seed by seed.
set -uo pipefail
cd "$(dirname "$0")/.."
. scripts/runs-lib.sh
B=${PROXAL_BIN:-target/debug/proxal}
LOG=experiments/runs/stopping.log
mkdir -p experiments/runs
failed=0
for seed in 0 1 2; do
    for cfg in experiments/configs/stopping/*/svpp-margin-s$seed.toml; do
        ds=$(basename "$(dirname "$cfg")")
        if [ ! -f "datasets/$ds-s/table.parquet" ]; then
            $B data import-builtin "$ds" --name "$ds-s" --sample-pool 3000 --sample-test 1000 --sample-seed 0 || exit 1
        fi
        name=$(cfg_name "$cfg")
        keep=experiments/results/stopping-runs/$name
        run_finished "$keep" && continue
        start=$(date +%s)
        echo "$(date -u +%FT%TZ) start $cfg (load $(cut -d' ' -f1 /proc/loadavg))" | tee -a "$LOG"
        if $B run "$cfg" --quiet >> "$LOG" 2>&1; then
            echo "$(date -u +%FT%TZ) done  $cfg in $(( $(date +%s) - start )) s" | tee -a "$LOG"
            keep_record "experiments/runs/$name" "$keep"
        else
            echo "$(date -u +%FT%TZ) FAILED $cfg (see $LOG)" | tee -a "$LOG"
            failed=1
        fi
    done
done
python3 scripts/report-stopping.py || failed=1
exit $failed
