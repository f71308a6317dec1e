#!/usr/bin/env python3
"""Where each stopping criterion would have stopped (docs/STOPPING.md).

Reads the run records that carry stopping signals (progress.jsonl lines with a `stop` field):
the stopping experiment's (experiments/results/stopping-runs/, `make stopping`) and any suite run
made since the signals exist (experiments/results/suite-runs/). For each run and criterion: the
first round whose signals met it (the labels then), the shipped model's test accuracy at that
round, and the accuracy lost and labels saved against the run's end. Writes
experiments/results/stopping.{md,json}.
"""
import datetime
import json
import os
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
RESULTS = ROOT / "experiments" / "results"
CRITERIA = ["stabilizing-predictions", "classification-change", "overall-uncertainty"]
SOURCES = [("stopping-runs", "svpp/margin, 200 + 18 × 100 labels"),
           ("suite-runs", "suite runs with signals (200 + 4 × 200 labels)")]


def load(run_dir):
    lines = [json.loads(l) for l in (run_dir / "progress.jsonl").read_text().splitlines() if l.strip()]
    if not any("stop" in p for p in lines):
        return None
    cfg = (run_dir / "config.toml").read_text()
    ds = next(l.split('"')[1] for l in cfg.splitlines() if l.startswith("dataset ="))
    return ds.removesuffix("-s"), lines


def first_met(lines, criterion):
    for p in lines:
        if criterion in (p.get("stop") or {}).get("met", []):
            return p
    return None


def within(lines, final, points=0.01):
    """Labels when the test accuracy first came within `points` of the run's end (for reference:
    a criterion that knew the test set would stop here)."""
    for p in lines:
        if p.get("test_accuracy") is not None and p["test_accuracy"] >= final - points:
            return p["labels"]
    return None


def mean(xs):
    xs = [x for x in xs if x is not None]
    return sum(xs) / len(xs) if xs else None


def main():
    out = {"generated": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%MZ"),
           "sources": {}}
    md = ["# Stopping criteria: where they would have stopped (issue 18)", "",
          f"Written by `scripts/report-stopping.py` ({out['generated']}) from run records with "
          "stopping signals. Signals are taken at the start of a round, on the labels bought so far: "
          "κ compares the proxy fitted before and after the last batch on a fixed stop set of 1,000 "
          "pool rows; a criterion met there means the user would not buy the next batch, and the "
          "accuracy 'then' is the model shipped on those labels. Accuracy in %, labels saved and "
          "accuracy lost against the run's end; 'never' counts as stopping at the end. "
          "'1 pt of end' is, for reference, the first label count whose test accuracy is within one "
          "point of the end (it needs the test set; no criterion sees it). Thresholds: κ window 3, "
          "mean ≥ 0.99; no prediction changed; mean uncertainty ≤ 0.1. Design: docs/STOPPING.md.", ""]
    for src, what in SOURCES:
        d = RESULTS / src
        if not d.is_dir():
            continue
        runs = {}
        for r in sorted(d.iterdir()):
            got = load(r) if (r / "progress.jsonl").exists() else None
            if got:
                runs.setdefault(got[0], []).append((r.name, got[1]))
        if not runs:
            continue
        md += [f"## {what} (`experiments/results/{src}/`)", "",
               "| dataset | runs | end: labels, acc | 1 pt of end | criterion | met in | stopped at (labels) | acc then | acc lost | labels saved |",
               "|---|---|---|---|---|---|---|---|---|---|"]
        sd = out["sources"][src] = {}
        for ds, rs in sorted(runs.items()):
            ends = [(ls[-1]["labels"], ls[-1].get("test_accuracy")) for _, ls in rs]
            end_l, end_a = mean([e[0] for e in ends]), mean([e[1] for e in ends])
            ref = mean([within(ls, ls[-1]["test_accuracy"]) for _, ls in rs])
            sd[ds] = {"runs": [n for n, _ in rs], "end_labels": end_l, "end_accuracy": end_a,
                      "within_1pt_labels": ref, "criteria": {}}
            for c in CRITERIA:
                stops, accs, lost, saved, met = [], [], [], [], 0
                for _, ls in rs:
                    p = first_met(ls, c)
                    end = ls[-1]
                    if p is not None:
                        met += 1
                    else:
                        p = end
                    stops.append(p["labels"])
                    accs.append(p.get("test_accuracy"))
                    lost.append(end["test_accuracy"] - p["test_accuracy"])
                    saved.append(end["labels"] - p["labels"])
                sd[ds]["criteria"][c] = {"met_runs": met, "stop_labels": stops, "accuracy_then": accs,
                                         "accuracy_lost": mean(lost), "labels_saved": mean(saved)}
                md.append(f"| {ds} | {len(rs)} | {end_l:.0f}, {100 * end_a:.1f} | "
                          f"{ref:.0f} | {c} | {met} of {len(rs)} | "
                          + ", ".join(str(s) if s != e[0] else f"never ({s})" for s, e in zip(stops, ends))
                          + f" | {100 * mean(accs):.1f} | {100 * mean(lost):+.1f} | {mean(saved):.0f} |")
        md.append("")
    if not out["sources"]:
        md += ["No run records with stopping signals yet: `make stopping`.", ""]
    (RESULTS / "stopping.md").write_text("\n".join(md))
    (RESULTS / "stopping.json").write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {RESULTS / 'stopping.md'}")


if __name__ == "__main__":
    sys.exit(main())
