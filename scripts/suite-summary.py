#!/usr/bin/env python3
"""experiments/results/summary.json from the per-dataset report.json files of the suite:
per dataset and group (policy + strategy): runs, mean/std test accuracy at each evaluation point,
compute seconds (total and per round, measured), LE and SSR vs random, equivalent-cost saving vs
standard, and the standard / asvp compute ratio. LE, SSR and savings are given at two targets: the
report's default (99% of the best final accuracy) and the lowest final accuracy of the random seeds
(from <dataset>/at-random-final/report.json), which random reaches by construction."""
import json
import pathlib
import sys

results, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
summary = {"datasets": {}}
for ds in ["banking77", "clinc150", "stackoverflow20"]:
    rep = results / ds / "report.json"
    if not rep.exists():
        continue
    m = json.loads(rep.read_text())
    runs = {r["name"]: r for r in m["runs"]}
    rep2 = results / ds / "at-random-final" / "report.json"
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
    by = {(x["policy"], x["strategy"]): x for x in groups}
    std_ = by.get(("standard", "margin"))
    asvp = by.get(("asvp", "margin"))
    ratio = None
    if std_ and asvp and asvp["compute_seconds"]["mean"] > 0:
        ratio = std_["compute_seconds"]["mean"] / asvp["compute_seconds"]["mean"]
    summary["datasets"][ds] = {
        "target": m["target"],
        "target_random_final": m2["target"]["accuracy"] if m2 else None,
        "prices": m["prices"],
        "notes": m["notes"],
        "standard_over_asvp_compute": ratio,
        "groups": groups,
    }
out.write_text(json.dumps(summary, indent=1) + "\n")
print(f"wrote {out} ({len(summary['datasets'])} datasets)")
