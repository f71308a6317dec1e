#!/usr/bin/env python3
"""experiments/results/alignment-triggers.{md,json}: when asvp aligns and how it trains (issue 21,
docs/ALIGNMENT.md), from the suite's finished runs.

Reads the per-dataset reports that `make report-experiments` writes
(experiments/results/<dataset>/report.json: accuracy and compute at every evaluation point, computed
from the raw ledgers by `proxal report`) and the runs' progress records
(experiments/results/suite-runs/<run>/progress.jsonl: when each run aligned, and each alignment
check). Compares the fixed schedule (asvp), the auto trigger with the method chosen by validation
(asvp-auto-validate; asvp-auto-validate-cache when its checks continue the cache's backbone), the
schedule with the method chosen by validation (asvp-validate), standard AL and svpp, and checks the
issue's targets for each auto variant. Every number is a mean over the seeds that finished.
"""
import datetime
import json
import os
import pathlib
import statistics
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
RESULTS = ROOT / "experiments" / "results"
DATASETS = ["assistant-source", "banking77", "clinc150", "stackoverflow20"]
MISALIGNED = "assistant-source"
GROUPS = [
    ("svpp/margin", "svpp (never aligns)"),
    ("asvp/margin", "asvp, schedule + threshold"),
    ("asvp-validate/margin", "asvp, schedule + validate"),
    ("asvp-auto-validate/margin", "asvp, auto + validate"),
    ("asvp-auto-validate-cache/margin", "asvp, auto + validate, checks from the cache"),
    ("asvp-auto-validate-cache-random/margin", "… and validated on random picks"),
    ("standard/margin", "standard AL"),
]
# The auto variants whose checks and targets are reported: group, short name.
AUTOS = [
    ("asvp-auto-validate/margin", "auto"),
    ("asvp-auto-validate-cache/margin", "auto-cache"),
    ("asvp-auto-validate-cache-random/margin", "auto-random"),
]
SCHEDULE, VALIDATE, STANDARD, SVPP = (
    "asvp/margin",
    "asvp-validate/margin",
    "standard/margin",
    "svpp/margin",
)
TOLERANCE = 0.01  # "reaches standard's accuracy": within one point


def mean(xs):
    return statistics.mean(xs) if xs else None


def sd(xs):
    return statistics.stdev(xs) if len(xs) > 1 else None


def fmt(x, nd=3, pct=False, sign=False):
    if x is None:
        return "—"
    if pct:
        return f"{100 * x:+.1f}" if sign else f"{100 * x:.1f}"
    return f"{x:+.{nd}f}" if sign else f"{x:.{nd}f}"


def load(ds):
    path = RESULTS / ds / "report.json"
    if not path.exists():
        return None
    rep = json.loads(path.read_text())
    runs = {}
    for r in rep["runs"]:
        prog_path = ROOT / r["dir"] / "progress.jsonl"
        progress = [json.loads(l) for l in prog_path.read_text().splitlines()] if prog_path.exists() else []
        runs.setdefault(r["group"], {})[r["seed"]] = {
            "acc": {int(p["labels"]): p["accuracy"] for p in r["points"]},
            "final_compute": r["points"][-1]["compute_seconds"] if r["points"] else None,
            "final_cpu": r["points"][-1]["cpu_seconds"] if r["points"] else None,
            # Records made before fine-tunes recorded their trained rows have no row-epochs.
            "row_epochs": r["points"][-1].get("row_epochs")
            if r["points"] and r.get("row_epochs_complete") else None,
            "rows_embedded": r["points"][-1].get("rows_embedded") if r["points"] else None,
            "final": r["final_accuracy"],
            "aligned": [p["round"] for p in progress if p.get("aligned")],
            "checks": [(p["round"], p["labels"], p["check"]) for p in progress if p.get("check")],
            "overlap": {p["round"]: p["pick_overlap"] for p in progress
                        if p.get("pick_overlap") is not None},
        }
    return runs


def auto_sections(ds, runs, group, short, md, d):
    """The check table of one auto variant (appended to md) and its target verdicts."""
    auto = runs.get(group, {})
    verdicts = []
    if not auto:
        return verdicts
    md += [f"Alignment checks of {group.split('/')[0]} (validation accuracy of the probe on the "
           "cache and of the best fine-tuned candidate, gain ± one standard error):", "",
           "| seed | round | labels | probe | candidates | gain | decision | next batch shared with the old cache's |",
           "|---|---|---|---|---|---|---|---|"]
    for k, s in sorted(auto.items()):
        for rnd, labels, c in s["checks"]:
            cands = ", ".join(f"{m} {a:.3f}" for m, a in c["candidates"])
            if c.get("from"):
                cands += f" (from {c['from']})"
            md.append(f"| {k} | {rnd} | {labels} | {c['probe_accuracy']:.3f} | {cands} | "
                      f"{c['gain']:+.3f} ± {c['gain_se']:.3f} | {'align' if c['pays'] else 'keep'} | "
                      + (f"{100 * s['overlap'][rnd]:.0f}%" if rnd in s["overlap"] else "—") + " |")
    md.append("")
    common = lambda b: sorted(set(auto) & set(runs.get(b, {})))
    if ds == MISALIGNED and runs.get(STANDARD):
        for k in common(STANDARD):
            a, s = auto[k], runs[STANDARD][k]
            first = min(a["aligned"]) if a["aligned"] else None
            gaps = {n: a["acc"][n] - s["acc"][n] for n in sorted(a["acc"])
                    if first is not None and n >= 200 * (first + 1) and n in s["acc"]}
            ok_round = first is not None and first <= 1
            ok_acc = bool(gaps) and all(g >= -TOLERANCE for g in gaps.values())
            verdicts.append(
                f"- {ds} seed {k}, {short}: first alignment in round "
                f"{first if first is not None else '—'} "
                f"({'met' if ok_round else 'missed'}: round 0 or 1); {short} − standard from then on: "
                + ", ".join(f"{n}: {100 * g:+.1f}" for n, g in gaps.items())
                + f" points ({'met' if ok_acc else 'missed'}: within {100 * TOLERANCE:.0f} point)")
    elif runs.get(SCHEDULE):
        ks = common(SCHEDULE)
        if ks:
            ratio = mean([auto[k]["final_compute"] / runs[SCHEDULE][k]["final_compute"] for k in ks])
            cpu = mean([auto[k]["final_cpu"] / runs[SCHEDULE][k]["final_cpu"] for k in ks])
            epochs = mean([auto[k]["row_epochs"] / runs[SCHEDULE][k]["row_epochs"] for k in ks
                           if auto[k]["row_epochs"] and runs[SCHEDULE][k]["row_epochs"]])
            diff = [auto[k]["final"] - runs[SCHEDULE][k]["final"] for k in ks]
            d.setdefault("targets", {})[short] = {"compute_over_schedule": ratio,
                                                 "cpu_over_schedule": cpu,
                                                 "row_epochs_over_schedule": epochs,
                                                 "final_minus_schedule": mean(diff)}
            verdicts.append(
                f"- {ds} ({len(ks)} seed(s)), {short}: ÷ schedule compute {ratio:.2f}× wall, "
                f"{cpu:.2f}× CPU, "
                + (f"{epochs:.2f}× row-epochs fine-tuned " if epochs is not None
                   else "row-epochs: the schedule's records predate them ")
                + f"({'met' if ratio <= 1.0 else 'missed'}: ≤ 1 in wall time), final accuracy "
                f"− schedule {100 * mean(diff):+.1f} points "
                f"({'met' if mean(diff) >= -0.005 else 'missed'}: ≥ −0.5)")
    if runs.get(STANDARD) and runs.get(SVPP):
        ks = sorted(set(auto) & set(runs[STANDARD]) & set(runs[SVPP]))
        first = [c for k in ks for (rnd, _, c) in auto[k]["checks"] if rnd == 0]
        if first and group == AUTOS[0][0]:
            real = mean([runs[STANDARD][k]["acc"][200] - runs[SVPP][k]["acc"][200] for k in ks])
            d["indicator_round0"] = {"check_gain": mean([c["gain"] for c in first]),
                                     "test_gain_standard_over_svpp": real}
            verdicts.append(
                f"- {ds}: round-0 check gain {100 * mean([c['gain'] for c in first]):+.1f} points "
                f"(validation) vs the test-set gain of standard's first fine-tune over svpp's "
                f"probe at 200 labels {100 * real:+.1f} points")
    return verdicts


def main():
    out = {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%MZ"),
           "datasets": {}}
    md = [
        "# When asvp aligns and how it trains: schedule vs alignment checks (issue 21)",
        "",
        f"Written by `scripts/report-alignment.py` ({out['date']}) from the suite's finished runs "
        "(`make experiments`, then `make report-experiments`, which calls it). Design: "
        "`docs/ALIGNMENT.md`. Every policy on the same 3,000-row pools and 1,000 (assistant-source: "
        "894) test rows, 200 initial labels + 4 rounds of 200, margin sampling, a linear probe on "
        "the policy's features as the shipped model. Accuracy in %, mean over the seeds that "
        "finished (n); compute = wall seconds of the selection path plus the shipped model at "
        "1,000 labels (docs/METRICS.md), with the machine-independent work beside it (row-epochs "
        "fine-tuned as run, rows embedded), on 2 shared cores (load at each run's start in "
        "experiments/runs/suite.log).",
        "",
    ]
    verdicts = []
    for ds in DATASETS:
        runs = load(ds)
        if runs is None:
            md += [f"## {ds}", "", "no report yet", ""]
            continue
        d = out["datasets"][ds] = {}
        md += [f"## {ds}" + (" (misaligned)" if ds == MISALIGNED else ""), ""]
        md += ["| method | n | 200 | 400 | 600 | 800 | 1000 | compute (s) | CPU (s) | row-epochs | rows embedded | aligned in rounds |",
               "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for g, name in GROUPS:
            seeds = runs.get(g, {})
            if not seeds:
                continue
            accs = [mean([s["acc"].get(n) for s in seeds.values() if n in s["acc"]])
                    for n in (200, 400, 600, 800, 1000)]
            comp = mean([s["final_compute"] for s in seeds.values()])
            cpu = mean([s["final_cpu"] for s in seeds.values()])
            work = [mean([s[k] for s in seeds.values() if s[k] is not None])
                    for k in ("row_epochs", "rows_embedded")]
            aligned = "; ".join(
                f"s{k}: {','.join(map(str, s['aligned'])) or '—'}" for k, s in sorted(seeds.items())
            ) if g != SVPP and g != STANDARD else ("every round" if g == STANDARD else "never")
            md.append(f"| {name} | {len(seeds)} | " + " | ".join(fmt(a, pct=True) for a in accs)
                      + f" | {fmt(comp, 0)} | {fmt(cpu, 0)} | {fmt(work[0], 0)} | {fmt(work[1], 0)}"
                      + f" | {aligned} |")
            d[g] = {"seeds": sorted(seeds), "accuracy": dict(zip((200, 400, 600, 800, 1000), accs)),
                    "compute_seconds": comp, "cpu_seconds": cpu,
                    "row_epochs": work[0], "rows_embedded": work[1],
                    "aligned_rounds": {k: s["aligned"] for k, s in seeds.items()}}
        md.append("")
        for auto_group, short in AUTOS:
            verdicts += auto_sections(ds, runs, auto_group, short, md, d)
        if runs.get(VALIDATE) and runs.get(SCHEDULE):
            ks = sorted(set(runs[VALIDATE]) & set(runs[SCHEDULE]))
            if ks:
                diff = [runs[VALIDATE][k]["final"] - runs[SCHEDULE][k]["final"] for k in ks]
                s_ = sd(diff)
                verdicts.append(
                    f"- {ds} ({len(ks)} seed(s)): method by validation − by threshold, final accuracy "
                    f"{100 * mean(diff):+.1f}" + (f" ± {100 * s_:.1f}" if s_ is not None else "")
                    + " points (paired over seeds)")
    md += ["## Targets (issue 21)", ""] + (verdicts or ["- no runs yet"]) + [""]
    out["verdicts"] = verdicts
    (RESULTS / "alignment-triggers.md").write_text("\n".join(md))
    (RESULTS / "alignment-triggers.json").write_text(json.dumps(out, indent=1, default=str) + "\n")
    print(f"wrote {RESULTS / 'alignment-triggers.md'}")


if __name__ == "__main__":
    sys.exit(main())
