#!/usr/bin/env bash
# `make longtail`: class balancing (`balanced:<strategy>`, src/strategy/balanced.rs) on long-tailed
# pools (experiments/configs/longtail/, scripts/make-longtail-configs.py), then its report
# (experiments/results/longtail.md). Resumable.
set -uo pipefail
cd "$(dirname "$0")/.."
B=${PROXAL_BIN:-target/debug/proxal}
# Long-tailed pools: class sizes fall geometrically to 1/50 (stackoverflow20: 600 rows a class)
# and 1/20 (banking77: ~117 a class), about 3,000 rows each; the test rows are a random 1,000.
for spec in "stackoverflow20 50" "banking77 20"; do
    set -- $spec
    if [ ! -f "datasets/$1-lt/table.parquet" ]; then
        $B data import-builtin "$1" --name "$1-lt" --long-tail "$2" --sample-pool 3000 --sample-test 1000 --sample-seed 0 || exit 1
    fi
done
scripts/run-configs.sh experiments/configs/longtail experiments/results/longtail-runs experiments/runs/longtail.log
failed=$?
python3 scripts/report-longtail.py || failed=1
exit $failed
