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
import pathlib
import re
import sys
import tomllib

ROOT = pathlib.Path(__file__).resolve().parent.parent
RESULTS = ROOT / "experiments" / "results"
CRITERIA = ["stabilizing-predictions", "classification-change", "overall-uncertainty"]
SOURCES = [("stopping-runs", "svpp/margin, 200 + 18 × 100 labels"),
           ("suite-runs", "suite runs with signals (200 + 4 × 200 labels)")]


def load(run_dir):
    """(dataset, group, thresholds, progress lines) of a run with signals, else None. The group
    is the run's name without its dataset prefix and seed suffix (suite-banking77-svpp-margin-s0
    → svpp-margin): runs of different policies never share a row."""
    lines = [json.loads(l) for l in (run_dir / "progress.jsonl").read_text().splitlines() if l.strip()]
    if not any("stop" in p for p in lines):
        return None
    cfg = tomllib.loads((run_dir / "config.toml").read_text())
    ds = cfg["dataset"].removesuffix("-s")
    name = cfg.get("name", run_dir.name)
    group = re.sub(r"-s\d+$", "", name.split(f"-{ds}-", 1)[-1])
    st = cfg.get("stopping", {})
    thresholds = (st.get("window", 3), st.get("kappa", 0.99), st.get("uncertainty", 0.1),
                  st.get("stop_set", 1000))
    return ds, group, thresholds, lines


def first_met(lines, criterion):
    for p in lines:
        if criterion in (p.get("stop") or {}).get("met", []):
            return p
    return None


def within(lines, final, points=0.01):
    """Labels when the test accuracy first came within `points` of the run's end (for reference:
    a criterion that knew the test set would stop here)."""
    if final is None:
        return None
    for p in lines:
        if p.get("test_accuracy") is not None and p["test_accuracy"] >= final - points:
            return p["labels"]
    return None


def mean(xs):
    xs = [x for x in xs if x is not None]
    return sum(xs) / len(xs) if xs else None


def fmt(x, scale=1.0, spec=".1f", sign=False):
    if x is None:
        return "—"
    return format(scale * x, ("+" if sign else "") + spec)


def acc_at(lines, p):
    """Test accuracy of round p, or of the first later evaluated round (an unevaluated round's
    model is known only from the next evaluation)."""
    for q in lines[lines.index(p):]:
        if q.get("test_accuracy") is not None:
            return q["test_accuracy"]
    return None


def main():
    out = {"generated": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%MZ"),
           "sources": {}}
    md = ["# Stopping criteria: where they would have stopped (issue 18)", "",
          f"Written by `scripts/report-stopping.py` ({out['generated']}) from run records with "
          "stopping signals. Signals are taken at the start of a round, on the labels bought so far: "
          "κ compares the proxy fitted before and after the last batch on a fixed stop set of "
          "pool rows; a criterion met there means the user would not buy the next batch, and the "
          "accuracy 'then' is the model shipped on those labels. Accuracy in %, labels saved and "
          "accuracy lost against the run's end; 'never' counts as stopping at the end. "
          "'1 pt of end' is, for reference, the first label count whose test accuracy is within one "
          "point of the end (it needs the test set; no criterion sees it). Thresholds are each run's "
          "(`[stopping]`; listed per row as window / κ / uncertainty / stop-set rows). "
          "Design: docs/STOPPING.md.", ""]
    for src, what in SOURCES:
        d = RESULTS / src
        if not d.is_dir():
            continue
        runs = {}
        for r in sorted(d.iterdir()):
            got = load(r) if (r / "progress.jsonl").exists() else None
            if got:
                ds, group, th, lines = got
                runs.setdefault((ds, group, th), []).append((r.name, lines))
        if not runs:
            continue
        md += [f"## {what} (`experiments/results/{src}/`)", "",
               "| dataset | runs | thresholds | end: labels, acc | 1 pt of end | criterion | met in | stopped at (labels) | acc then | acc lost | labels saved |",
               "|---|---|---|---|---|---|---|---|---|---|---|"]
        sd = out["sources"][src] = {}
        for (ds, group, th), rs in sorted(runs.items()):
            end_l = mean([ls[-1]["labels"] for _, ls in rs])
            end_a = mean([acc_at(ls, ls[-1]) for _, ls in rs])
            ref = mean([within(ls, acc_at(ls, ls[-1])) for _, ls in rs])
            key = f"{ds}/{group}"
            sd[key] = {"runs": [n for n, _ in rs], "thresholds": th, "end_labels": end_l,
                       "end_accuracy": end_a, "within_1pt_labels": ref, "criteria": {}}
            for c in CRITERIA:
                cells, accs, lost, saved, met = [], [], [], [], 0
                for _, ls in rs:
                    p, end = first_met(ls, c), ls[-1]
                    if p is not None:
                        met += 1
                        cells.append(str(p["labels"]))
                    else:
                        p = end
                        cells.append(f"never ({p['labels']})")
                    a, e = acc_at(ls, p), acc_at(ls, end)
                    accs.append(a)
                    lost.append(e - a if a is not None and e is not None else None)
                    saved.append(end["labels"] - p["labels"])
                sd[key]["criteria"][c] = {"met_runs": met, "stop": cells, "accuracy_then": accs,
                                          "accuracy_lost": mean(lost), "labels_saved": mean(saved)}
                md.append(f"| {ds} ({group}) | {len(rs)} | {th[0]} / {th[1]} / {th[2]} / {th[3]} | "
                          f"{fmt(end_l, spec='.0f')}, {fmt(end_a, 100)} | {fmt(ref, spec='.0f')} | "
                          f"{c} | {met} of {len(rs)} | {', '.join(cells)} | {fmt(mean(accs), 100)} | "
                          f"{fmt(mean(lost), 100, sign=True)} | {fmt(mean(saved), spec='.0f')} |")
        md.append("")
    if not out["sources"]:
        md += ["No run records with stopping signals yet: `make stopping`.", ""]
    (RESULTS / "stopping.md").write_text("\n".join(md))
    (RESULTS / "stopping.json").write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {RESULTS / 'stopping.md'}")


if __name__ == "__main__":
    sys.exit(main())
