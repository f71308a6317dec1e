#!/usr/bin/env python3
"""Class balancing on long-tailed pools: experiments/results/longtail.{md,json} from the records
in experiments/results/longtail-runs/ (`make longtail`; design: scripts/make-longtail-configs.py).
For each dataset and group, the mean over seeds of test accuracy, macro-F1 and the mean recall of
the pool's tail classes at every label count, and the balanced − unbalanced difference paired
over seeds."""
import datetime
import json
import pathlib
import re
import statistics
import sys
import tomllib

ROOT = pathlib.Path(__file__).resolve().parent.parent
RESULTS = ROOT / "experiments" / "results"
GROUPS = ["random", "svpp-margin", "svpp-balanced-margin"]
METRICS = [("test_accuracy", "accuracy"), ("test_macro_f1", "macro-F1"),
           ("test_tail_recall", "tail-class recall")]


def pct(x):
    return "—" if x is None else f"{100 * x:.1f}"


def main():
    runs = {}
    d = RESULTS / "longtail-runs"
    for r in sorted(d.iterdir()) if d.is_dir() else []:
        if not (r / "config.toml").is_file() or not (r / "rounds.jsonl").is_file():
            continue
        cfg = tomllib.loads((r / "config.toml").read_text())
        ds = cfg["dataset"].removesuffix("-lt")
        group = re.sub(r"-s\d+$", "", cfg["name"].split(f"-{ds}-", 1)[-1])
        rounds = [json.loads(l) for l in (r / "rounds.jsonl").read_text().splitlines() if l.strip()]
        runs.setdefault(ds, {}).setdefault(group, {})[cfg["seed"]] = {x["labels"]: x for x in rounds}
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%MZ")
    md = ["# Class balancing on long-tailed pools (issue 18)", "",
          f"Written by `scripts/report-longtail.py` ({now}) from `experiments/results/longtail-runs/` "
          "(`make longtail`). Pools resampled so class sizes fall geometrically (stackoverflow20 1:50, "
          "banking77 1:20; about 3,000 rows each), 1,000 random test rows, 200 + 4 × 200 labels, a "
          "linear probe on the pretrained features as the shipped model. Tail classes: the pool's "
          "rarest third. `balanced:margin` fills the labelled set's smallest classes first, by the "
          "proxy's predicted class of margin's top candidates (src/strategy/balanced.rs). Mean over "
          "seeds (n), in %.", ""]
    out = {"generated": now, "datasets": {}}
    for ds, groups in sorted(runs.items()):
        labels = sorted({n for g in groups.values() for s in g.values() for n in s})
        md += [f"## {ds}", ""]
        od = out["datasets"][ds] = {}
        for key, title in METRICS:
            md += [f"{title} (n: runs with this metric at the last label count):", "",
                   "| group | n | " + " | ".join(map(str, labels)) + " |",
                   "|---|---|" + "---|" * len(labels)]
            for g in GROUPS:
                seeds = groups.get(g, {})
                if not seeds:
                    continue
                vals = []
                for n in labels:
                    xs = [s[n].get(key) for s in seeds.values() if n in s and s[n].get(key) is not None]
                    vals.append(statistics.mean(xs) if xs else None)
                od.setdefault(g, {})[key] = dict(zip(labels, vals))
                n = sum(1 for s in seeds.values() if s.get(labels[-1], {}).get(key) is not None)
                md.append(f"| {g} | {n} | " + " | ".join(pct(v) for v in vals) + " |")
            md.append("")
        bal, mar = groups.get("svpp-balanced-margin", {}), groups.get("svpp-margin", {})
        common = sorted(set(bal) & set(mar))
        if common:
            last = labels[-1]
            md.append(f"balanced − unbalanced margin at {last} labels, paired over {len(common)} seeds:")
            md.append("")
            for key, title in METRICS:
                diffs = [bal[k][last][key] - mar[k][last][key] for k in common
                         if bal[k].get(last, {}).get(key) is not None and mar[k].get(last, {}).get(key) is not None]
                if diffs:
                    sd = statistics.stdev(diffs) if len(diffs) > 1 else None
                    od.setdefault("paired_difference", {})[key] = {"mean": statistics.mean(diffs), "sd": sd}
                    md.append(f"- {title}: {100 * statistics.mean(diffs):+.1f} points"
                              + (f" (sd {100 * sd:.1f})" if sd is not None else "")
                              + f"; per seed " + ", ".join(f"{100 * x:+.1f}" for x in diffs))
            md.append("")
    if not runs:
        md += ["No runs yet: `make longtail`.", ""]
    (RESULTS / "longtail.md").write_text("\n".join(md))
    (RESULTS / "longtail.json").write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {RESULTS / 'longtail.md'}")


if __name__ == "__main__":
    sys.exit(main())
