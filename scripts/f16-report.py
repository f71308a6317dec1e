"""f16 against f32 feature versions on real data: experiments/results/f16.{md,json}.

Reads the paired run records in experiments/results/f16-runs/ (made by scripts/f16-runs.sh: the
same svpp configs on banking77's full pool, once on the f32 v0 and once on an f16 v0 of the same
backbone, one binary, one session) and reports, per strategy and seed, test accuracy at every label
count, the difference, and how many of the acquired labels the two runs share.
Usage: python3 scripts/f16-report.py [RUNS_DIR] [MD] [JSON]
With numpy and safetensors importable (the reference venv: `$(scripts/ref-venv.sh)
scripts/f16-report.py`) and the f16 home at $F16_HOME (default target/f16home), it also checks that
each f16 v0 holds the f32 v0's vectors rounded.
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from runrecords import load_record  # noqa: E402
from collections import defaultdict

runs = sys.argv[1] if len(sys.argv) > 1 else "experiments/results/f16-runs"
md_path = sys.argv[2] if len(sys.argv) > 2 else "experiments/results/f16.md"
json_path = sys.argv[3] if len(sys.argv) > 3 else "experiments/results/f16.json"


def load(name):
    return load_record(os.path.join(runs, name), ("selection", "proxy_fit"))


pairs = []
for name in sorted(os.listdir(runs)) if os.path.isdir(runs) else []:
    if not name.startswith("f32-"):
        continue
    rest = name[4:]
    a, b = load(name), load("f16-" + rest)
    if a is None or b is None:
        continue
    strat, seed = rest.split("-svpp-")[1].rsplit("-s", 1)
    labels = sorted(set(a["accuracy"]) & set(b["accuracy"]))
    if not labels or a["run"].get("feature_dtype", "f32") != "f32" or b["run"].get("feature_dtype") != "f16":
        continue  # an unfinished pair, or records that are not what their names say
    diffs = [100 * (b["accuracy"][n] - a["accuracy"][n]) for n in labels]
    shared = len(set(a["labelled"]) & set(b["labelled"]))
    pairs.append({
        "dataset": rest.split("-svpp-")[0],
        "strategy": strat,
        "seed": int(seed),
        "labels": labels,
        "f32_accuracy": [a["accuracy"][n] for n in labels],
        "f16_accuracy": [b["accuracy"][n] for n in labels],
        "f16_minus_f32_points": diffs,
        "mean_abs_difference_points": sum(abs(x) for x in diffs) / len(diffs),
        "shared_labels": shared,
        "labels_total": len(a["labelled"]),
        "selection_cpu_seconds": {"f32": a["selection_cpu_seconds"], "f16": b["selection_cpu_seconds"]},
        "runs": {"f32": a["run"], "f16": b["run"]},
    })

by_strat = defaultdict(list)
for p in pairs:
    by_strat[(p["dataset"], p["strategy"])].append(p)


def sd(xs):
    m = sum(xs) / len(xs)
    return (sum((x - m) ** 2 for x in xs) / (len(xs) - 1)) ** 0.5 if len(xs) > 1 else None


summary = {}
for (ds, s), ps in sorted(by_strat.items()):
    last = [p["f16_minus_f32_points"][-1] for p in ps]
    allds = [x for p in ps for x in p["f16_minus_f32_points"]]
    seed_sd = sd([100 * p["f32_accuracy"][-1] for p in ps])
    summary[f"{ds}/{s}"] = {
        "dataset": ds,
        "strategy": s,
        "f32_seed_sd_at_last_label_count_points": seed_sd,
        "pairs": len(ps),
        "mean_difference_at_last_label_count_points": sum(last) / len(last),
        "largest_abs_difference_points": max(abs(x) for x in allds),
        "mean_difference_all_label_counts_points": sum(allds) / len(allds),
        "shared_labels_fraction": sum(p["shared_labels"] for p in ps) / sum(p["labels_total"] for p in ps),
    }


def rounding_check():
    """Max |f16 v0 − f32 v0 rounded to f16| per dataset, when numpy and safetensors are there."""
    try:
        import numpy as np
        from safetensors.numpy import load_file
    except ImportError:
        return None
    home = os.environ.get("F16_HOME", "target/f16home")
    out = {}
    for ds in sorted({p["dataset"] for p in pairs}):
        a_dir, b_dir = f"features/{ds}/v0", f"{home}/features/{ds}/v0"
        if not (os.path.isfile(a_dir + "/manifest.json") and os.path.isfile(b_dir + "/manifest.json")):
            continue

        def load(d):
            m = json.load(open(d + "/manifest.json"))
            return np.concatenate([load_file(f"{d}/{c['file']}")["features"] for c in m["chunks"]]).astype(np.float32), m

        (a, ma), (b, mb) = load(a_dir), load(b_dir)
        r = a.astype(np.float16).astype(np.float32)
        d = np.abs(b - r)
        # Distance in f16 steps: the bit patterns of same-signed halves are ordered like the values.
        steps = np.abs(b.astype(np.float16).view(np.int16).astype(np.int32) - a.astype(np.float16).view(np.int16).astype(np.int32))
        out[ds] = {
            "rows": int(a.shape[0]),
            "dtypes": [ma["dtype"], mb["dtype"]],
            "max_abs_f16_minus_rounded_f32": float(d.max()),
            "max_abs_f16_minus_f32": float(np.abs(b - a).max()),
            "rows_exactly_rounded_fraction": float((d.max(1) == 0).mean()),
            "max_f16_steps_from_rounded_f32": int(steps.max()),
        }
    return out


check = rounding_check()
json.dump({"pairs": pairs, "summary": summary, "rounding_check": check}, open(json_path, "w"), indent=1)
open(json_path, "a").write("\n")

L = ["# f16 feature versions on real data: svpp on banking77 and clinc150\n"]
w = L.append
w(
    "Made by `make experiments-f16` (`scripts/f16-runs.sh`, then this report, `scripts/f16-report.py`). The "
    "full-pool svpp configs of `experiments/configs/full/{banking77,clinc150}` (200 initial labels, 9 rounds of "
    "200, logistic proxy, linear-probe evaluation; margin and BADGE; seeds 0-2) were run twice each with one "
    "binary in one session: on the f32 v0 (MiniLM-L6; 128 tokens for banking77, 64 for clinc150) and on an f16 "
    "v0 of the same backbone and settings (`proxal embed --dtype f16`). The only difference is the "
    "stored precision of the features, so the accuracy differences are what f16 storage does to an AL run "
    "(the proxy, the strategy and the probe all read f32 values widened from f16).\n"
)
for p in pairs:
    r = p["runs"]
    w(f"## {p['dataset']}, {p['strategy']}, seed {p['seed']}\n")
    w(f"f32 run started {r['f32']['started']} (load {r['f32']['loadavg_at_start']}), f16 run {r['f16']['started']} (load {r['f16']['loadavg_at_start']}).\n")
    w("| labels | f32 test accuracy | f16 test accuracy | f16 − f32 (points) |")
    w("|---|---|---|---|")
    for n, x, y, d in zip(p["labels"], p["f32_accuracy"], p["f16_accuracy"], p["f16_minus_f32_points"]):
        w(f"| {n:,} | {100 * x:.1f} | {100 * y:.1f} | {d:+.1f} |")
    w("")
    w(f"Labels acquired by both runs: {p['shared_labels']:,} of {p['labels_total']:,}. Selection + proxy fit CPU s: f32 {p['selection_cpu_seconds']['f32']:.1f}, f16 {p['selection_cpu_seconds']['f16']:.1f}.\n")
if summary:
    w("## Summary\n")
    w("| dataset | strategy | pairs | f16 − f32 at the last label count (mean, points) | f32's seed-to-seed SD there (points) | mean over all label counts | largest |difference| | labels shared |")
    w("|---|---|---|---|---|---|---|---|")
    for v in summary.values():
        ssd = v["f32_seed_sd_at_last_label_count_points"]
        w(
            f"| {v['dataset']} | {v['strategy']} | {v['pairs']} | {v['mean_difference_at_last_label_count_points']:+.2f} | "
            f"{'—' if ssd is None else f'{ssd:.2f}'} | "
            f"{v['mean_difference_all_label_counts_points']:+.2f} | {v['largest_abs_difference_points']:.1f} | "
            f"{100 * v['shared_labels_fraction']:.0f}% |"
        )
w("")
if check:
    w("## The f16 v0 is the f32 v0 rounded\n")
    for ds, c in check.items():
        w(
            f"- {ds}: {c['rows']:,} rows; max |f16 − f32 rounded to f16| = {c['max_abs_f16_minus_rounded_f32']:.3g} "
            f"({100 * c['rows_exactly_rounded_fraction']:.1f}% of rows exactly the rounding"
            + ("" if c["rows_exactly_rounded_fraction"] == 1 else f"; the rest differ by at most {c['max_f16_steps_from_rounded_f32']} f16 step(s): the f32 v0 was embedded earlier, by another build")
            + f"), max |f16 − f32| = {c['max_abs_f16_minus_f32']:.3g}."
        )
else:
    w("(The rounding check needs numpy and safetensors: run this script with the reference venv's python.)")
open(md_path, "w").write("\n".join(L) + "\n")
print("\n".join(L))
