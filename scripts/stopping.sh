#!/usr/bin/env bash
# `make stopping`: the stopping experiment (experiments/configs/stopping/, docs/STOPPING.md) on the
# suite's samples, then its report (experiments/results/stopping.md). Resumable.
set -uo pipefail
cd "$(dirname "$0")/.."
B=${PROXAL_BIN:-target/debug/proxal}
for ds in banking77 clinc150 stackoverflow20 assistant-source; do
    if [ ! -f "datasets/$ds-s/table.parquet" ]; then
        $B data import-builtin "$ds" --name "$ds-s" --sample-pool 3000 --sample-test 1000 --sample-seed 0 || exit 1
    fi
done
scripts/run-configs.sh experiments/configs/stopping experiments/results/stopping-runs experiments/runs/stopping.log
failed=$?
python3 scripts/report-stopping.py || failed=1
exit $failed
