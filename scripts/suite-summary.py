#!/usr/bin/env python3
"""experiments/results/summary.json from the per-dataset report.json files of the 3,000-row suite
(experiments/results/<dataset>/) and of the full-pool experiment (experiments/results/full/<dataset>/),
one entry per setting ("suite/banking77", "full/banking77", …) with its pool size (`pool_rows`, read
from the runs' ledgers) and, per dataset and group (policy + strategy): runs, mean/std test accuracy at each evaluation point,
compute seconds (total and per round, measured), LE and SSR vs random, equivalent-cost saving vs
standard, and standard's compute over each asvp variant's (wall and CPU seconds, rows embedded,
fine-tuned row-epochs). LE, SSR and savings are given at two targets: the
report's default (99% of the best final accuracy) and the lowest final accuracy of the random seeds
(from <dataset>/at-random-final/report.json), which random reaches by construction."""
import json
import pathlib
import sys

def work(g, runs):
    """Machine-independent compute of a group (mean over its runs), whole run as the report counts
    it (selection path + the shipped model of the last point): rows embedded, from the report; and
    fine-tuned row-epochs, from the steps actually run where the ledger recorded them
    (`trained_rows`), else an upper bound from the configured epochs (labelled rows × epochs;
    early stopping may have run fewer). Returns (row-epochs, exact?, rows embedded)."""
    ft = emb = 0.0
    exact = True
    for r in runs:
        if r["name"] not in g["runs"]:
            continue
        emb += r["total_rows_embedded"]
        if r["row_epochs_complete"]:
            ft += r["total_row_epochs"]
            continue
        exact = False
        d = pathlib.Path(r["dir"])
        cfg = (d / "config.toml").read_text()
        epochs = int(next((l.split("=")[1] for l in cfg.splitlines() if l.startswith("epochs")), "3"))
        last = r["points"][-1]["round"] if r["points"] else None
        for line in (d / "ledger.jsonl").read_text().splitlines():
            rec = json.loads(line)
            trains = rec["stage"] == "fine_tune" or (
                rec["stage"] == "ship" and rec["round"] == last
                and "steps not recorded" in (rec.get("note") or ""))
            if trains:
                ft += rec["trained_rows"] if "trained_rows" in rec else rec["rows"] * epochs
    n = len(g["runs"])
    return ft / n, exact, emb / n


def pool_rows(runs):
    """The pool's size, from a run's first selection: the rows it chose from (the unlabelled pool)
    plus the labels bought by then. None when no run selected (random's ledger has no scoring)."""
    for r in runs:
        d = pathlib.Path(r["dir"])
        labels = {}
        for line in (d / "rounds.jsonl").read_text().splitlines():
            rec = json.loads(line)
            labels[rec["round"]] = rec["labels"]
        for line in (d / "ledger.jsonl").read_text().splitlines():
            rec = json.loads(line)
            if rec["stage"] == "selection" and rec["round"] in labels:
                return rec["rows"] + labels[rec["round"]]
    return None


results, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
SETTINGS = ([("suite", ds, results / ds)
             for ds in ["banking77", "clinc150", "stackoverflow20", "assistant-source"]]
            + [("full", ds, results / "full" / ds)
               for ds in ["banking77", "clinc150", "stackoverflow20", "bolt-english"]])
summary = {"settings": {}}
for suite, ds, where in SETTINGS:
    rep = where / "report.json"
    if not rep.exists():
        continue
    m = json.loads(rep.read_text())
    runs = {r["name"]: r for r in m["runs"]}
    rep2 = where / "at-random-final" / "report.json"
    m2 = json.loads(rep2.read_text()) if rep2.exists() else None
    at2 = {g["label"]: g for g in m2["groups"]} if m2 else {}
    groups = []
    for g in m["groups"]:
        # Per-round compute of each run: differences of the cumulative compute at each point.
        per_round = []
        for name in g["runs"]:
            pts = runs[name]["points"]
            cum = [p["compute_seconds"] for p in pts]
            per_round.append([c - (cum[i - 1] if i else 0.0) for i, c in enumerate(cum)])
        n = min(len(x) for x in per_round)
        mean_round = [sum(x[i] for x in per_round) / len(per_round) for i in range(n)]
        groups.append({
            "group": g["label"],
            "policy": g["policy"],
            "strategy": g["strategy"],
            "runs": g["runs"],
            "curve": [{"labels": p["labels"], "accuracy_mean": p["accuracy"]["mean"],
                       "accuracy_std": p["accuracy"]["std"], "seeds": p["accuracy"]["n"]}
                      for p in g["curve"]],
            "compute_seconds": g["total_compute_seconds"],
            "ship_seconds": g["total_ship_seconds"],
            "cpu_seconds": g["total_cpu_seconds"],
            "rows_embedded": g["total_rows_embedded"],
            "row_epochs": dict(zip(("mean", "exact"), work(g, m["runs"])[:2])),
            "compute_seconds_per_round_mean": mean_round,
            "eval_seconds": g["total_eval_seconds"],
            "le_vs_random": g["le"],
            "ssr_vs_random": g["ssr"],
            "equivalent_cost_saving_vs_standard_labels": g["saving_labels"],
            "equivalent_cost_saving_vs_standard_ratio": g["saving_ratio"],
            "at_random_final": None if g["label"] not in at2 else {
                "labels": at2[g["label"]]["labels"],
                "compute_seconds": at2[g["label"]]["compute_seconds"],
                "le_vs_random": at2[g["label"]]["le"],
                "ssr_vs_random": at2[g["label"]]["ssr"],
                "equivalent_cost_saving_vs_standard_labels": at2[g["label"]]["saving_labels"],
                "equivalent_cost_saving_vs_standard_ratio": at2[g["label"]]["saving_ratio"],
            },
        })
    # By label: the asvp variants (asvp-auto-validate/margin, …) share policy and strategy.
    by = {x["group"]: x for x in groups}
    std_ = by.get("standard/margin")
    variants = {}
    for a in groups:
        if a["policy"] != "asvp" or not std_ or a["compute_seconds"]["mean"] <= 0:
            continue
        variants[a["group"]] = {
            "wall_seconds": std_["compute_seconds"]["mean"] / a["compute_seconds"]["mean"],
            "cpu_seconds": std_["cpu_seconds"]["mean"] / a["cpu_seconds"]["mean"],
            "rows_embedded": std_["rows_embedded"]["mean"] / a["rows_embedded"]["mean"],
            "row_epochs": std_["row_epochs"]["mean"] / a["row_epochs"]["mean"],
            "row_epochs_exact": std_["row_epochs"]["exact"] and a["row_epochs"]["exact"],
        }
    ratios = variants.get("asvp/margin")
    # What compute weighs in standard AL's total cost at the target, at the report's prices.
    sg = next((g for g in m["groups"] if g["label"] == "standard/margin"), None)
    share = None
    if sg and sg["total_cost"] and sg["total_cost"]["mean"]:
        share = sg["compute_cost"]["mean"] / sg["total_cost"]["mean"]
    summary["settings"][f"{suite}/{ds}"] = {
        "suite": suite,
        "dataset": ds,
        "dir": str(where.relative_to(results)),
        "pool_rows": pool_rows(m["runs"]),
        "target": m["target"],
        "target_random_final": m2["target"]["accuracy"] if m2 else None,
        "prices": m["prices"],
        "notes": m["notes"],
        # Standard's compute over asvp's on its schedule (asvp/margin: every 2 rounds, or at label
        # counts), by wall time and by work; every asvp variant in the next key.
        "standard_over_asvp_compute": ratios,
        "standard_over_asvp_by_variant": variants,
        "standard_compute_cost_share": share,
        "groups": groups,
    }
# The PLASM experiment (issue 17), as scripts/plasm-report.py wrote it: per dataset, the accuracy
# table, each group's selection and shipping compute, and the claims with their verdicts.
plasm = out.parent / "plasm.json"
if plasm.exists():
    summary["plasm"] = json.loads(plasm.read_text())
out.write_text(json.dumps(summary, indent=1) + "\n")
print(f"wrote {out} ({len(summary['settings'])} settings)")

# ---- The tables of SUMMARY.md, regenerated between its markers (the prose around them is written
# by hand from these numbers).
PAIRS = [
    ("standard/margin", "svpp/margin"),
    ("asvp/margin", "svpp/margin"),
    ("asvp/margin", "standard/margin"),
    ("asvp-labels/margin", "standard/margin"),
    ("asvp-auto-validate-cache/margin", "standard/margin"),
    ("svpp/margin", "random"),
    ("svpp/entropy", "random"),
    ("svpp/badge", "svpp/margin"),
    ("svpp/coreset", "svpp/margin"),
    ("svpp/cluster-margin", "svpp/margin"),
]


def pm(s, scale=100.0, fmt="{:.1f}"):
    if s is None:
        return "—"
    m = fmt.format(s["mean"] * scale)
    return m if s.get("std") is None else f"{m} ± {fmt.format(s['std'] * scale)}"


def versus(v, fmt):
    return fmt(v["value"]) if v and v["value"] is not None else (v["status"] if v else "—")


def by_seed(runs, group):
    """The runs of `group` (a summary group, or None) by seed."""
    return {r["seed"]: r for r in runs if r["name"] in (group or {}).get("runs", [])}


def final(r):
    return r["final_accuracy"]


def mean_over_points(r):
    return sum(p["accuracy"] for p in r["points"]) / len(r["points"])


def paired(runs, by_group, a, b, of=final):
    """Seed-paired differences of(a) − of(b) in points, {seed: Δ}."""
    ra, rb = by_seed(runs, by_group.get(a)), by_seed(runs, by_group.get(b))
    return {k: (of(ra[k]) - of(rb[k])) * 100 for k in sorted(set(ra) & set(rb))}


def mean_sd(xs):
    """`m ± sd` of a list (sample sd), or `m` alone for one value; signed, one decimal."""
    m = sum(xs) / len(xs)
    if len(xs) < 2:
        return f"{m:+.1f}"
    return f"{m:+.1f} ± {(sum((x - m) ** 2 for x in xs) / (len(xs) - 1)) ** 0.5:.1f}"


def fmt_pairs(d):
    if not d:
        return "no paired seeds"
    return (mean_sd(list(d.values())) + f" (seeds {', '.join(str(k) for k in d)}: "
            + ", ".join(f"{x:+.1f}" for x in d.values()) + ")")


def tables(results, summary, suite):
    out = []
    for d in summary["settings"].values():
        if d["suite"] != suite:
            continue
        ds = d["dataset"]
        rep = json.loads((results / d["dir"] / "report.json").read_text())
        runs = rep["runs"]
        groups = d["groups"]
        seeds = sorted({len(g["runs"]) for g in groups})
        labels = [int(p["labels"]) for p in groups[0]["curve"]]
        n_seeds = str(seeds[0]) if len(seeds) == 1 else f"{seeds[0]}–{seeds[-1]}"
        pool = f"{d['pool_rows']:,}-row pool, " if d["pool_rows"] else ""
        trf = "—" if d["target_random_final"] is None else f"{d['target_random_final'] * 100:.1f}%"
        out.append(f"### {ds} ({pool}{n_seeds} seed{'s' if seeds[-1] > 1 else ''} per group)\n")
        out.append("Test accuracy (%, mean ± std over seeds) at each label count; compute of the whole run "
                   "(selection path + training the shipped model) in wall seconds (mean ± std), CPU "
                   "seconds and, machine-independent, fine-tuned row-epochs and rows embedded; LE and "
                   f"SSR vs random at random's final accuracy ({trf}). "
                   "Row-epochs marked ≤ are an upper bound from the configured epochs: these ledgers "
                   "predate the step count, and early stopping may have run fewer.\n")
        head = ["policy / strategy"] + [str(n) for n in labels] + [
            "mean over points", "compute (s)", "standard ÷ this", "CPU (s)", "standard ÷ this (CPU)",
            "fine-tuned row-epochs", "rows embedded", "LE", "SSR"]
        out.append("| " + " | ".join(head) + " |")
        out.append("|" + "---|" * len(head))
        std_c = next((g["compute_seconds"]["mean"] for g in groups if g["group"] == "standard/margin"), None)
        std_cpu = next((g["cpu_seconds"]["mean"] for g in groups if g["group"] == "standard/margin"), None)
        order = ["random", "svpp/margin", "svpp/entropy", "svpp/badge", "svpp/coreset",
                 "svpp/cluster-margin", "asvp/margin", "asvp-labels/margin",
                 "asvp-auto-validate-cache/margin", "standard/margin"]
        for g in sorted(groups, key=lambda g: order.index(g["group"]) if g["group"] in order else 99):
            cells = [pm({"mean": p["accuracy_mean"], "std": p["accuracy_std"]}) for p in g["curve"]]
            per_run = [sum(r["points"][k]["accuracy"] for k in range(len(labels))) / len(labels)
                       for r in runs if r["name"] in g["runs"]]
            mean_pts = sum(per_run) / len(per_run)
            sd = (sum((x - mean_pts) ** 2 for x in per_run) / (len(per_run) - 1)) ** 0.5 if len(per_run) > 1 else None
            c = g["compute_seconds"]
            arf = g["at_random_final"] or {}
            ft, exact, emb = work(g, runs)
            cpu = g["cpu_seconds"]
            out.append("| " + " | ".join(
                [g["group"]] + cells + [
                    pm({"mean": mean_pts, "std": sd}),
                    pm(c, 1.0, "{:.0f}"),
                    f"{std_c / c['mean']:.2f}×" if std_c and c["mean"] > 0 else "—",
                    pm(cpu, 1.0, "{:.0f}"),
                    f"{std_cpu / cpu['mean']:.2f}×" if std_cpu and cpu["mean"] > 0 else "—",
                    ("" if exact or ft == 0 else "≤ ") + f"{ft:,.0f}", f"{emb:,.0f}",
                    versus(arf.get("le_vs_random"), lambda x: f"{x:.2f}×"),
                    versus(arf.get("ssr_vs_random"), lambda x: f"{x * 100:.0f}%"),
                ]) + " |")
        out.append("")
        # Paired by seed (same seed: same initial labelled set).
        out.append("Paired by seed (a seed fixes the initial labelled set): difference in accuracy "
                   f"points, A − B, at {labels[-1]:,} labels and averaged over all points; in how many "
                   f"seeds A was ahead at {labels[-1]:,} labels.\n")
        out.append("| A | B | Δ at final (points) | Δ mean over points | A ahead at final |")
        out.append("|---|---|---|---|---|")
        by_group = {g["group"]: g for g in groups}
        for a, b in PAIRS:
            if a not in by_group or b not in by_group:
                continue
            fin = list(paired(runs, by_group, a, b).values())
            if not fin:
                continue
            avg = list(paired(runs, by_group, a, b, mean_over_points).values())
            ahead = sum(1 for x in fin if x > 0)
            ties = sum(1 for x in fin if x == 0)
            out.append(f"| {a} | {b} | {mean_sd(fin)} | {mean_sd(avg)} | {ahead} of {len(fin)}"
                       + (f" ({ties} tied)" if ties else "") + " |")
        out.append("")
        for variant, r in d["standard_over_asvp_by_variant"].items():
            per_seed = []
            sa = by_seed(runs, by_group[variant])
            ss = by_seed(runs, by_group["standard/margin"])
            for seed in sorted(set(sa) & set(ss)):
                if sa[seed]["total_compute_seconds"] > 0:
                    per_seed.append(f"seed {seed} {ss[seed]['total_compute_seconds']:.0f} s ÷ "
                                    f"{sa[seed]['total_compute_seconds']:.0f} s = "
                                    f"{ss[seed]['total_compute_seconds'] / sa[seed]['total_compute_seconds']:.2f}×")
            out.append(f"Compute, standard ÷ {variant} (whole run, means over seeds): "
                       f"**{r['wall_seconds']:.2f}×** wall"
                       + (f" (per seed: {'; '.join(per_seed)})" if per_seed else "")
                       + f"; {r['cpu_seconds']:.2f}× CPU seconds; {r['rows_embedded']:.2f}× rows embedded; "
                       + f"{r['row_epochs']:.2f}× fine-tuned row-epochs"
                       + ("" if r["row_epochs_exact"] else " (from configured epochs: an estimate)") + ".\n")
    return "\n".join(out)


def pool_size_table(summary):
    """Standard ÷ asvp against pool size, one row per (setting, asvp variant)."""
    out = ["| setting | pool rows | labels | asvp variant | seeds (asvp, standard) | standard ÷ asvp, wall | CPU | "
           "rows embedded | row-epochs | saving vs standard at the target (ratio) | compute share of "
           "standard's cost at the target |",
           "|---|---|---|---|---|---|---|---|---|---|---|"]
    for key, d in summary["settings"].items():
        by = {g["group"]: g for g in d["groups"]}
        std_ = by.get("standard/margin")
        for variant, r in d["standard_over_asvp_by_variant"].items():
            # In the 3,000-row suite only the schedule ran with the binary standard ran with (the
            # alignment-check variants came after the faster fine-tune: not comparable in seconds).
            if d["suite"] == "suite" and variant != "asvp/margin":
                continue
            g = by[variant]
            sv = g["equivalent_cost_saving_vs_standard_ratio"]
            saving = f"{sv['value'] * 100:+.1f}%" if sv["value"] is not None else sv["status"]
            cs = d["standard_compute_cost_share"]
            share = "—" if cs is None else f"{cs * 100:.3f}%"
            labels = int(g["curve"][-1]["labels"])
            out.append(f"| {key} | {d['pool_rows']:,} | {labels:,} | {variant} | {len(g['runs'])}, {len(std_['runs'])} | "
                       f"{r['wall_seconds']:.2f}× | {r['cpu_seconds']:.2f}× | {r['rows_embedded']:.2f}× | "
                       f"{r['row_epochs']:.2f}× | {saving} | {share} |")
    return "\n".join(out)


def full_claims(results, summary):
    """Issue 20's claims on the full pools, each with a verdict computed from the records."""
    out = ["| claim | setting | numbers | verdict |", "|---|---|---|---|"]
    for key, d in summary["settings"].items():
        if d["suite"] != "full":
            continue
        runs = json.loads((results / d["dir"] / "report.json").read_text())["runs"]
        by = {g["group"]: g for g in d["groups"]}
        last = int(by["standard/margin"]["curve"][-1]["labels"]) if "standard/margin" in by else None
        for variant, r in d["standard_over_asvp_by_variant"].items():
            gap = paired(runs, by, variant, "standard/margin")
            gmean = sum(gap.values()) / len(gap) if gap else None
            work = min(r["rows_embedded"], r["row_epochs"])
            if gmean is None:
                verdict = "not measured"
            elif gmean < -1 or (r["wall_seconds"] < 3 and max(r["rows_embedded"], r["row_epochs"]) < 3):
                verdict = "did not hold"
            elif gmean >= -1 and r["wall_seconds"] >= 3 and work >= 3:
                verdict = "held"
            else:
                verdict = "mixed"
            out.append(f"| asvp's compute ≤ 1/3 of standard's, within 1 point at {last:,} labels | {key}, {variant} | "
                       f"accuracy − standard {fmt_pairs(gap)} points; standard ÷ asvp {r['wall_seconds']:.2f}× wall, "
                       f"{r['rows_embedded']:.2f}× rows embedded, {r['row_epochs']:.2f}× row-epochs | {verdict} |")
        d1 = paired(runs, by, "standard/margin", "svpp/margin")
        if d1:
            xs = list(d1.values())
            m = sum(xs) / len(xs)
            v = ("held" if m > 0 and all(x > 0 for x in xs) else "did not hold" if m <= 0 else "mixed")
            out.append(f"| svpp loses labelling efficiency to standard (standard ahead at {last:,} labels) | {key} | "
                       f"standard − svpp/margin {fmt_pairs(d1)} points | {v} |")
        d2 = paired(runs, by, "asvp/margin", "svpp/margin")
        d3 = paired(runs, by, "asvp/margin", "standard/margin")
        if d2 and d3:
            a, b = list(d2.values()), list(d3.values())
            ma, mb = sum(a) / len(a), sum(b) / len(b)
            v = ("held" if all(x > 0 for x in a) and abs(mb) <= 1 else
                 "did not hold" if ma <= 0 else "mixed")
            out.append(f"| asvp recovers svpp's loss (ahead of svpp, within 1 point of standard) | {key} | "
                       f"asvp − svpp {fmt_pairs(d2)}; asvp − standard {fmt_pairs(d3)} points | {v} |")
    return "\n".join(out)


def budget_table(results, summary):
    """Machine time the full-pool runs took: the wall seconds of every ledger record (compute,
    shipped model and evaluation), per setting and group. The v0 embedding is made once per
    dataset but copied into every run's ledger (each run is charged it): it is counted once here,
    on its own row."""
    out = ["| setting | group | runs | hours | per run (min, mean) |", "|---|---|---|---|---|"]
    total = 0.0
    for key, d in summary["settings"].items():
        if d["suite"] != "full":
            continue
        runs = {r["name"]: r for r in json.loads((results / d["dir"] / "report.json").read_text())["runs"]}
        v0 = 0.0
        for g in d["groups"]:
            secs = []
            for name in g["runs"]:
                recs = [json.loads(l) for l in
                        (pathlib.Path(runs[name]["dir"]) / "ledger.jsonl").read_text().splitlines()]
                shared = [r["wall_seconds"] for r in recs if "one-off embedding of v0" in (r.get("note") or "")]
                v0 = max([v0] + shared)
                secs.append(sum(r["wall_seconds"] for r in recs) - sum(shared))
            total += sum(secs)
            out.append(f"| {key} | {g['group']} | {len(secs)} | {sum(secs) / 3600:.2f} | {sum(secs) / len(secs) / 60:.1f} |")
        total += v0
        out.append(f"| {key} | v0 embedding (once) | | {v0 / 3600:.2f} | |")
    out.append(f"| all | | | {total / 3600:.2f} | |")
    return "\n".join(out)


summary_md = results / "SUMMARY.md"
if summary_md.exists():
    text = summary_md.read_text()
    for b, e, make in [
        ("<!-- tables:begin (scripts/suite-summary.py) -->", "<!-- tables:end -->",
         lambda: tables(results, summary, "suite")),
        ("<!-- full-tables:begin (scripts/suite-summary.py) -->", "<!-- full-tables:end -->",
         lambda: tables(results, summary, "full")),
        ("<!-- pool-size:begin (scripts/suite-summary.py) -->", "<!-- pool-size:end -->",
         lambda: pool_size_table(summary)),
        ("<!-- full-claims:begin (scripts/suite-summary.py) -->", "<!-- full-claims:end -->",
         lambda: full_claims(results, summary)),
        ("<!-- budget:begin (scripts/suite-summary.py) -->", "<!-- budget:end -->",
         lambda: budget_table(results, summary)),
    ]:
        if b in text and e in text:
            head, rest = text.split(b, 1)
            _, tail = rest.split(e, 1)
            text = head + b + "\n" + make() + "\n" + e + tail
    summary_md.write_text(text)
    print(f"rewrote the tables of {summary_md}")
