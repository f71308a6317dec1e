#!/usr/bin/env bash
# Render a proxal report in headless Chromium and save a screenshot, to check by eye that the
# HTML report opens and shows its plots.
#
#   scripts/screenshot-report.sh [REPORT_DIR] [OUT.png]
#
# With no REPORT_DIR, synthetic runs (random, standard, svpp, asvp; two seeds each, one method
# that never reaches the target) are written to a temporary directory and reported first with
# `cargo run -- report` (dev profile). The screenshot goes to OUT.png (default:
# REPORT_DIR/screenshot.png). Chromium is installed with apt-get when missing.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
die() { echo "screenshot-report: error: $*" >&2; exit 1; }

report_dir="${1:-}"
if [ -z "$report_dir" ]; then
  work="$(mktemp -d -t proxal-report-XXXXXX)"
  command -v python3 >/dev/null || die "python3 not found (needed to write the synthetic runs)"
  python3 - "$work/runs" <<'PYEOF'
import json, math, os, random, sys

out = sys.argv[1]
# Learning curves: accuracy(labels) = top - (top - start) * exp(-labels / scale).
methods = {
    "random":   dict(top=0.95, start=0.55, scale=600, embed=0, ft=0, refresh=0, fit=0.0, sel=0.05, dev="cpu:2-core"),
    "standard": dict(top=0.92, start=0.55, scale=420, embed=0, ft=95, refresh=60, fit=0.0, sel=1.5, dev="cuda:0"),
    "svpp":     dict(top=0.86, start=0.58, scale=500, embed=420, ft=0, refresh=0, fit=1.2, sel=0.9, dev="cpu:2-core"),
    "asvp":     dict(top=0.925, start=0.60, scale=360, embed=420, ft=240, refresh=430, fit=1.2, sel=0.9, dev="cpu:2-core"),
}
initial, batch, rounds = 100, 100, 12
for policy, p in methods.items():
    for seed in (0, 1):
        rng = random.Random(hash((policy, seed)) & 0xffff)
        name = f"banking77-{policy}-s{seed}"
        d = os.path.join(out, name)
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "config.toml"), "w") as f:
            f.write(f'name = "{name}"\ndataset = "banking77"\npolicy = "{policy}"\nseed = {seed}\n'
                    f'strategy = "{"random" if policy == "random" else "margin"}"\n'
                    f'initial = {initial}\nbatch = {batch}\nrounds = {rounds}\n')
        led, rr = [], []
        def rec(r, stage, secs, dev="cpu:2-core", labels=0, rows=0):
            led.append(dict(run=name, round=r, stage=stage, wall_seconds=round(secs, 3),
                            cpu_seconds=round(secs * 1.8, 3), device=dev, rows=rows, labels_bought=labels))
        for r in range(rounds + 1):
            labels = initial + batch * r
            rec(r, "labelling", 0.0, labels=initial if r == 0 else batch, rows=0)
            if r == 0 and p["embed"]:
                rec(0, "embed", p["embed"] * rng.uniform(0.95, 1.05), rows=13083)
            if p["ft"] and (policy == "standard" or r in (3, 7)):
                grow = labels / 500
                rec(r, "fine_tune", p["ft"] * grow * rng.uniform(0.9, 1.1), dev=p["dev"], rows=labels)
                rec(r, "refresh", p["refresh"] * rng.uniform(0.95, 1.05), dev=p["dev"], rows=13083)
            if policy in ("svpp", "asvp"):
                rec(r, "indicator", 0.3, rows=labels)
            rec(r, "evaluation", (4.0 if p["dev"] == "cuda:0" else 8.0) * rng.uniform(0.9, 1.1), dev=p["dev"], rows=3080)
            acc = p["top"] - (p["top"] - p["start"]) * math.exp(-labels / p["scale"]) + rng.gauss(0, 0.006)
            rr.append(dict(round=r, labels=labels, test_accuracy=round(min(acc, 0.99), 4),
                           test_macro_f1=round(min(acc, 0.99) - 0.012, 4)))
            if r < rounds:
                if p["fit"]:
                    rec(r, "proxy_fit", p["fit"], rows=labels)
                rec(r, "scoring", p["sel"] * 0.7, dev=p["dev"], rows=9003 - labels)
                rec(r, "selection", p["sel"] * 0.3, rows=9003 - labels)
        with open(os.path.join(d, "ledger.jsonl"), "w") as f:
            f.writelines(json.dumps(x) + "\n" for x in led)
        with open(os.path.join(d, "rounds.jsonl"), "w") as f:
            f.writelines(json.dumps(x) + "\n" for x in rr)
PYEOF
  report_dir="$work/report"
  (cd "$root" && cargo run --quiet -- report "$work"/runs/* --out "$report_dir" --price-per-hour cuda=2.50) \
    || die "proxal report failed"
fi

html="$report_dir/report.html"
[ -f "$html" ] || die "no report.html in $report_dir"
shot="${2:-$report_dir/screenshot.png}"

browser="$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)"
if [ -z "$browser" ]; then
  echo "screenshot-report: installing chromium with apt-get" >&2
  { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; } || die "cannot install chromium"
  browser="$(command -v chromium)" || die "chromium not found after install"
fi

profile="$(mktemp -d -t proxal-chromium-XXXXXX)"
trap 'rm -rf "$profile"' EXIT
"$browser" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync \
  --user-data-dir="$profile" --hide-scrollbars --window-size=1400,3400 \
  --screenshot="$shot" "file://$(cd "$(dirname "$html")" && pwd)/report.html" >/dev/null 2>&1 \
  || die "chromium failed to render $html"
[ -s "$shot" ] || die "chromium wrote no screenshot"
echo "screenshot-report: report $html"
echo "screenshot-report: screenshot $shot"
