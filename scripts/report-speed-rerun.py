#!/usr/bin/env python3
"""experiments/results/speed-rerun.md: the banking77 asvp and standard suite runs (seed 0) made
again after the faster training path (issue 14; configs in experiments/configs/speed/, records in
experiments/results/speed-runs/), their wall and CPU seconds by stage beside the suite's records,
and the accuracy of both (the same seed, so the same picks up to floating-point differences).
Usage: scripts/report-speed-rerun.py (after scripts/run-configs.sh experiments/configs/speed ...)."""
import json
import os

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
res = os.path.join(root, "experiments", "results")


def ledger(path):
    with open(os.path.join(path, "ledger.jsonl")) as f:
        return [json.loads(l) for l in f if l.strip()]


def rounds(path):
    with open(os.path.join(path, "rounds.jsonl")) as f:
        return [json.loads(l) for l in f if l.strip()]


def by_stage(recs):
    out = {}
    for r in recs:
        if r["stage"] == "labelling":
            continue
        w, c = out.get(r["stage"], (0.0, 0.0))
        out[r["stage"]] = (w + r["wall_seconds"], c + r["cpu_seconds"])
    return out


def main():
    md = ["# Speed rerun: banking77 asvp and standard, seed 0, before and after the faster training path\n",
          "The suite's `suite-banking77-{asvp,standard}-margin-s0` (made 2026-11-29/30 with the earlier "
          "training path) and the same configs run again as `speed-banking77-…` (`scripts/run-configs.sh "
          "experiments/configs/speed experiments/results/speed-runs experiments/runs/speed.log`, then this "
          "script). Seconds are the ledgers' sums by stage (labelling excluded; the v0 embedding record is "
          "the dataset's one-off embedding, copied into both). Both ran alone on the 2-core machine; loads "
          "are in each run's `progress.jsonl` and the speed log.\n\n"
          "Rows `embed` (asvp) and `evaluation` (standard, which does not pay for it) are that v0 record: "
          "the feature store's, made once per dataset at another time (the store's v0 of banking77-s was "
          "embedded again between the two runs, at 15.8 CPU s as before but a busier wall clock), not work "
          "of either run's training path. `fine_tune` and `ship` are the fine-tunes (the training path of "
          "this change); `refresh` re-embeds the pool with the inference path.\n"]
    for policy in ["asvp", "standard"]:
        old = os.path.join(res, "suite-runs", f"suite-banking77-{policy}-margin-s0")
        new = os.path.join(res, "speed-runs", f"speed-banking77-{policy}-margin-s0")
        if not os.path.isdir(new):
            md.append(f"\n{policy}: not run yet.\n")
            continue
        a, b = by_stage(ledger(old)), by_stage(ledger(new))
        md.append(f"\n## {policy}\n\n| stage | wall s before | wall s after | CPU s before | CPU s after | wall after ÷ before |\n|---|---|---|---|---|---|\n")
        tw = [0.0, 0.0, 0.0, 0.0]
        for st in sorted(set(a) | set(b)):
            wa, ca = a.get(st, (0.0, 0.0))
            wb, cb = b.get(st, (0.0, 0.0))
            tw = [tw[0] + wa, tw[1] + wb, tw[2] + ca, tw[3] + cb]
            ratio = f"{wb / wa:.2f}" if wa > 0 else "–"
            md.append(f"| {st} | {wa:.1f} | {wb:.1f} | {ca:.1f} | {cb:.1f} | {ratio} |\n")
        md.append(f"| **all** | {tw[0]:.1f} | {tw[1]:.1f} | {tw[2]:.1f} | {tw[3]:.1f} | {tw[1] / tw[0]:.2f} |\n")
        ra, rb = rounds(old), rounds(new)
        acc = lambda rs: ", ".join(f"{r['labels']}: {100 * r['test_accuracy']:.1f}" for r in rs if r.get("test_accuracy") is not None)
        md.append(f"\nTest accuracy by labels, before: {acc(ra)}\n\nafter: {acc(rb)}\n")
    with open(os.path.join(res, "speed-rerun.md"), "w") as f:
        f.write("".join(md))
    print("".join(md))


if __name__ == "__main__":
    main()
