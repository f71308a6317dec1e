#!/usr/bin/env bash
# The four policies on the real banking77 data (issue: the AL loop end to end):
#   proxal run experiments/configs/banking77-{random,svpp,asvp,standard}.toml
# then this script keeps each finished run's record under experiments/results/banking77-policies/runs/
# and writes the report (report.md, plots, report.json) beside it.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/runs-lib.sh
B=${PROXAL_BIN:-target/debug/proxal}
out=experiments/results/banking77-policies
dirs=()
for p in random svpp asvp standard; do
    d=experiments/runs/banking77-$p
    keep=$out/runs/banking77-$p
    if run_finished "$d"; then keep_record "$d" "$keep"; fi
    [ -f "$keep/rounds.jsonl" ] && dirs+=("$keep")
done
$B report "${dirs[@]}" --out "$out"
rm -f "$out/report.html"
