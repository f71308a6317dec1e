#!/usr/bin/env bash
# Fine-tuning speed of two revisions of proxal side by side on this machine: bench_train built at
# REV (scripts/ab-old-bin.sh) and the working tree's, alternated for BENCH_ROUNDS rounds
# (default 3), each side's best round per case kept. Writes experiments/results/bench-train-ab.md
# (AB_OUT=name.md: experiments/results/name.md instead, keeping an earlier record). For a change to the training path,
# the speed-up measured in one run on one machine, which PyTorch's ratio in bench-train.md (a
# different reference on every machine) does not show.
#
#   scripts/bench-train-ab.sh REV            e.g. scripts/bench-train-ab.sh b812bb0
#   OLD_BIN=path/to/bench_train scripts/bench-train-ab.sh REV   (REV's binary, already built)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
rev="${1:?usage: scripts/bench-train-ab.sh REV}"
die() { echo "bench-train-ab: error: $*" >&2; exit 1; }
sha="$(git rev-parse --short "$rev^{commit}" 2>/dev/null)" || die "$rev is not a commit here"
. scripts/bench-train-lib.sh
bench_train_setup
old="$(scripts/ab-old-bin.sh "$sha" bench_train)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
rounds="${BENCH_ROUNDS:-3}"
for r in $(seq 1 "$rounds"); do
  for side in old new; do
    bin="$old"; [ "$side" = new ] && bin="target/debug/bench_train"
    mkdir -p "$work/$side-$r"
    BENCH_STEPS="${BENCH_STEPS:-8}" BENCH_BUCKETED_STEPS="${BENCH_BUCKETED_STEPS:-8}" BENCH_CANDLE_ADAMW=0 \
      BENCH_OUT="$work/$side-$r" "$bin" >/dev/null 2>"$work/$side-$r.log" \
      || { tail -n 3 "$work/$side-$r.log" >&2; die "$side round $r failed"; }
  done
done
new_sha="$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src || echo '+changes')"
python3 - "$work" "$rounds" "$sha" "$new_sha" "$root/experiments/results/${AB_OUT:-bench-train-ab.md}" <<'PYEOF'
import json, os, sys
work, rounds, old_sha, new_sha, out = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
runs = {s: [json.load(open(os.path.join(work, f"{s}-{r}", "bench-train.json"))) for r in range(1, rounds + 1)] for s in ("old", "new")}
first = runs["new"][0]["conditions"]
lines = [
    f"# Fine-tuning speed, {old_sha} against {new_sha}, one machine, one run\n",
    f"Made by `scripts/bench-train-ab.sh {old_sha}` on {first['date']}, {first.get('cpu', 'CPU not recorded')}: "
    f"each revision's bench_train (MiniLM, batch 16, AdamW on every weight, {first['threads']} threads), alternated for "
    f"{rounds} rounds, best round per case. Load average at the start of the first round {first['load_average_start']}.\n",
    f"| texts | tokens/row | {old_sha} steps/s | {new_sha} steps/s | speed-up | {old_sha} fwd / bwd s | {new_sha} fwd / bwd s |",
    "|---|---|---|---|---|---|---|",
]
names = [c["texts"] for c in runs["old"][0]["cases"]]
for name in names:
    best = {}
    for s in ("old", "new"):
        cs = [c for run in runs[s] for c in run["cases"] if c["texts"] == name]
        best[s] = max(cs, key=lambda c: c["steps_per_second"]) if cs else None
    if not best["new"]:
        continue
    o, n = best["old"], best["new"]
    lines.append(f"| {name} | {n['tokens_per_row']:.1f} | {o['steps_per_second']:.2f} | {n['steps_per_second']:.2f} | "
                 f"**{n['steps_per_second'] / o['steps_per_second']:.2f}×** | {o['forward_seconds_per_step']:.3f} / {o['backward_seconds_per_step']:.3f} | "
                 f"{n['forward_seconds_per_step']:.3f} / {n['backward_seconds_per_step']:.3f} |")
open(out, "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PYEOF
