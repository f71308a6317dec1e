#!/usr/bin/env bash
# `make report-experiments`: one report per dataset over the finished runs of the 3,000-row suite
# (records under experiments/results/suite-runs/) and of the full-pool experiment
# (experiments/results/full-runs/), copied to experiments/results/<dataset>.md and
# experiments/results/full/<dataset>.md (+ plots beside them), and
# experiments/results/summary.json built from the reports' JSON.
#
# Each dataset gets two targets. The report's default (99% of the best final accuracy) is the
# paper-style target for savings over standard AL, but random rarely reaches it, so LE and SSR vs
# random come out "random not reached". A second report at the lowest final accuracy of the random
# seeds (a target every random seed reached) gives LE, SSR and savings that exist; its table is
# spliced into <dataset>.md and its JSON feeds summary.json.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/runs-lib.sh
B=${PROXAL_BIN:-target/debug/proxal}
# report_dataset SUITE DATASET OUT_DIR MD
report_dataset() {
    local suite=$1 ds=$2 out=$3 dst=$4 runs rand pol
    runs=$(for d in experiments/results/$suite-runs/$suite-$ds-*; do
        if run_finished "$d"; then echo "$d"; fi; done)
    if [ -z "$runs" ]; then echo "$suite/$ds: no finished runs yet"; return 0; fi
    # shellcheck disable=SC2086
    $B report $runs --out "$out"
    rand=$(python3 -c 'import json,sys
m = json.load(open(sys.argv[1]))
a = [r["final_accuracy"] for r in m["runs"] if r["policy"] == "random"]
print(min(a) if a else "")' "$out/report.json")
    if [ -n "$rand" ]; then
        # shellcheck disable=SC2086
        $B report $runs --out "$out/at-random-final" --target-accuracy "$rand"
        rm -f "$out/at-random-final/"*.png "$out/at-random-final/"*.svg "$out/at-random-final/report.html"
    fi
    # The four policies alone (margin for the three that select), for a readable figure.
    pol=$(echo "$runs" | grep -E -- "-(random|svpp-margin|asvp-margin|standard-margin)-s[0-9]+$" || true)
    if [ -n "$pol" ]; then
        # shellcheck disable=SC2086
        $B report $pol --out "$out/policies" > /dev/null
        rm -f "$out/policies/report."*
    fi
    python3 - "$out" "$dst" "$ds" <<'PY'
import pathlib, re, sys
out, dst, ds = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]), sys.argv[3]
md = (out / "report.md").read_text()
md = re.sub(r"\]\(([a-z_]+\.(?:png|svg))\)", rf"]({out.name}/\1)", md)
second = out / "at-random-final" / "report.md"
if second.exists():
    s = second.read_text()
    target = re.search(r"^Target accuracy a = .*$", s, re.M).group(0)
    table = s.split("## Results at the target accuracy\n", 1)[1].split("\n### ", 1)[0]
    section = ("## At random's final accuracy: LE, SSR and savings that exist\n\n"
               "The target above is rarely reached by random sampling, so LE and SSR against it do "
               "not exist. Here the target is the lowest final accuracy among the random seeds, "
               "which every random seed reached (`at-random-final/report.json`).\n\n"
               + target.replace("set with --target-accuracy", "the lowest final accuracy of the random seeds")
               + "\n" + table.rstrip() + "\n\n")
    marker = "## Test accuracy at each label count"
    if marker not in md:
        sys.exit(f"{out}/report.md has no '{marker}' section: a proxal older than this script?")
    md = md.replace(marker, section + marker, 1)
if (out / "policies" / "accuracy_vs_labels.png").exists():
    fig = "Each figure is also written as SVG"
    if fig not in md:
        sys.exit(f"{out}/report.md has no '{fig}' paragraph")
    md = md.replace(fig, f"![Test accuracy vs labels bought, the four policies alone (margin for svpp, asvp and "
                         f"standard) — {ds}]({out.name}/policies/accuracy_vs_labels.png)\n\n" + fig, 1)
dst.write_text(md)
PY
    rm -f "$out/report.html"   # the .md and the plots are what is committed
}
for ds in banking77 clinc150 stackoverflow20 assistant-source; do
    report_dataset suite "$ds" "experiments/results/$ds" "experiments/results/$ds.md"
done
for ds in banking77 clinc150 stackoverflow20 bolt-english; do
    report_dataset full "$ds" "experiments/results/full/$ds" "experiments/results/full/$ds.md"
done
python3 scripts/suite-summary.py experiments/results experiments/results/summary.json
python3 scripts/report-alignment.py
python3 scripts/report-stopping.py
