#!/usr/bin/env bash
# `make report-experiments`: one report per dataset over the suite's finished runs (their records
# under experiments/results/suite-runs/), copied to
# experiments/results/<dataset>.md (+ plots under experiments/results/<dataset>/), and
# experiments/results/summary.json built from the reports' JSON.
set -euo pipefail
cd "$(dirname "$0")/.."
B=${PROXAL_BIN:-target/debug/proxal}
for ds in banking77 clinc150 stackoverflow20; do
    runs=$(ls -d experiments/results/suite-runs/suite-$ds-* 2>/dev/null | while read -r d; do
        want=$(( $(sed -n "s/^rounds = //p" "$d/config.toml") + 1 )); [ -f "$d/progress.jsonl" ] && [ "$(wc -l < "$d/progress.jsonl")" -ge "$want" ] && echo "$d"; done || true)
    if [ -z "$runs" ]; then echo "$ds: no finished runs yet"; continue; fi
    out=experiments/results/$ds
    # shellcheck disable=SC2086
    $B report $runs --out "$out"
    sed -e "s#](\([a-z_]*\.\(png\|svg\)\))#]($ds/\1)#g" "$out/report.md" > "experiments/results/$ds.md"
    rm -f "$out/report.html"   # the .md and the plots are what is committed
done
python3 scripts/suite-summary.py experiments/results experiments/results/summary.json
