#!/usr/bin/env bash
# The four policies on the real banking77 data (issue: the AL loop end to end):
#   proxal run experiments/configs/banking77-{random,svpp,asvp,standard}.toml
# then this script keeps each finished run's record under experiments/results/banking77-policies/runs/
# and writes the report (report.md, plots, report.json) beside it.
set -euo pipefail
cd "$(dirname "$0")/.."
B=${PROXAL_BIN:-target/debug/proxal}
out=experiments/results/banking77-policies
dirs=()
for p in random svpp asvp standard; do
    d=experiments/runs/banking77-$p
    keep=$out/runs/banking77-$p
    if [ -f "$d/progress.jsonl" ] && [ "$(wc -l < "$d/progress.jsonl")" -ge 6 ]; then
        mkdir -p "$keep"
        for f in config.toml rounds.jsonl progress.jsonl ledger.jsonl labelled.jsonl; do cp "$d/$f" "$keep/$f"; done
    fi
    [ -f "$keep/rounds.jsonl" ] && dirs+=("$keep")
done
$B report "${dirs[@]}" --out "$out"
rm -f "$out/report.html"
