#!/usr/bin/env python3
"""The PLASM experiment's report (issue 17): experiments/results/plasm.{md,json} from the records in
experiments/results/plasm-runs/ (scripts/make-plasm-configs.py has the design).

Per dataset and label count (mean ± sd over the seeds present in every group):
- acquisition: MiniLM-L6's own probe on its svpp/margin picks (`acquisition_accuracy`);
- successor on the acquisition model's picks, without and with pseudo-labels;
- successor on its own picks (svpp/margin on MPNet's cache) and on random picks.
Compute per group from the ledgers, in CPU seconds (the claims) and wall seconds: selection = the acquisition backbone's v0
embedding + proxy fits + selection; shipping = the successor's v0 embedding (random's own v0:
it selects with nothing) + `ship`; evaluation is left out. PLASM_RUNS / PLASM_OUT override the
directories. The claims' verdicts are computed here, at the last label count, seed-paired: held when the mean
meets a claim and so do most seeds, mixed when only part of it holds.
"""
import json
import os
import pathlib
import statistics as st
import sys
import tomllib

ROOT = pathlib.Path(__file__).resolve().parent.parent
RUNS = pathlib.Path(os.environ.get("PLASM_RUNS", ROOT / "experiments" / "results" / "plasm-runs"))
OUT = pathlib.Path(os.environ.get("PLASM_OUT", ROOT / "experiments" / "results"))
GROUPS = {
    "l6-svpp-margin-to-mpnet": "successor on L6's picks",
    "l6-svpp-margin-to-mpnet-pseudo": "successor on L6's picks + pseudo-labels",
    "mpnet-svpp-margin": "successor on its own picks (svpp/margin on MPNet)",
    "mpnet-random": "successor on random picks",
    "mpnet-svpp-margin-pseudo": "successor on its own picks + pseudo-labels",
    "mpnet-random-pseudo": "successor on random picks + pseudo-labels",
}
SELECTION = {"proxy_fit", "selection", "indicator", "scoring"}


def jsonl(path):
    return [json.loads(l) for l in path.read_text().splitlines() if l.strip()]


def load(run):
    cfg = tomllib.loads((run / "config.toml").read_text())
    succ = cfg.get("successor", {}).get("model_dir")
    succ_store = f"@{pathlib.Path(succ).name}/" if succ else None
    sel, ship = [0.0, 0.0], [0.0, 0.0]  # (wall, CPU) seconds
    for r in jsonl(run / "ledger.jsonl"):
        s, w = r["stage"], (r["wall_seconds"], r["cpu_seconds"])
        if s == "embed":
            # Random selects with nothing: its v0 embedding only serves the probe that ships.
            # A successor that is the run's own backbone shares its store: that embedding is the
            # acquisition's (charged once by the ledger's note, whichever stage books it).
            own = succ and pathlib.Path(succ) == pathlib.Path(cfg.get("model_dir", ""))
            if cfg["policy"] == "random" or (succ_store and not own and succ_store in (r.get("note") or "")):
                ship = [a + b for a, b in zip(ship, w)]
            else:
                sel = [a + b for a, b in zip(sel, w)]
        elif s in SELECTION:
            sel = [a + b for a, b in zip(sel, w)]
        elif s == "ship":
            ship = [a + b for a, b in zip(ship, w)]
    rounds = {r["labels"]: r for r in jsonl(run / "rounds.jsonl")}
    return cfg, rounds, sel, ship


def ms(xs):
    xs = [x for x in xs if x is not None]
    if not xs:
        return None
    return (st.mean(xs), st.stdev(xs) if len(xs) > 1 else 0.0, len(xs))


def fmt(v, pct=True):
    if v is None:
        return "—"
    m, s, _ = v
    return f"{100*m:.1f} ± {100*s:.1f}" if pct else f"{m:.0f} ± {s:.0f}"


def main():
    runs = {}
    for d in sorted(RUNS.glob("plasm-*")) if RUNS.is_dir() else []:
        if (d / "rounds.jsonl").exists():
            cfg, rounds, sel, ship = load(d)
            ds = cfg["dataset"]
            g = d.name[len(f"plasm-{ds}-"):].rsplit("-s", 1)[0]
            runs.setdefault(ds, {}).setdefault(g, {})[cfg["seed"]] = (rounds, sel, ship)
    if not runs:
        sys.exit(f"plasm-report: no records under {RUNS}")
    md = ["# PLASM: MiniLM-L6 acquires, all-mpnet-base-v2 ships (issue 17)", "",
          "Made by `scripts/plasm-report.py` from `experiments/results/plasm-runs/` "
          "(design: `scripts/make-plasm-configs.py`; how a successor works: `docs/SUCCESSOR.md`). "
          "Accuracy on the full test split, mean ± sd over seeds, in %. Compute in CPU seconds, "
          "which the claims use, and wall seconds, on the machine each run's `run.json` names: the "
          "one-off v0 embeddings are shared by the runs of a backbone and may have run beside other "
          "work, which stretches wall time but not CPU time.", ""]
    out = {}
    for ds, groups in sorted(runs.items()):
        seeds = sorted(set.intersection(*(set(v) for v in groups.values())))
        present = [g for g in GROUPS if g in groups]
        md += [f"## {ds} (seeds {', '.join(map(str, seeds))}; groups: {len(present)} of {len(GROUPS)})", ""]
        labels = sorted(set.intersection(*(set(groups[g][s][0]) for g in present for s in seeds)))
        head = ["labels", "acquisition (L6 probe)"] + [GROUPS[g] for g in present]
        md += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        table = []
        acq_group = next((g for g in present if g.startswith("l6-")), None)
        for n in labels:
            acq = ms([groups[acq_group][s][0][n].get("acquisition_accuracy") for s in seeds]) if acq_group else None
            row = {"labels": n, "acquisition": acq}
            cells = [str(n), fmt(acq)]
            for g in present:
                v = ms([groups[g][s][0][n]["test_accuracy"] for s in seeds])
                row[g] = v
                cells.append(fmt(v))
            table.append(row)
            md.append("| " + " | ".join(cells) + " |")
        md += ["", "| group | selection, CPU s | selection, wall s | shipping, CPU s | shipping, wall s | pseudo-labels at the end (n, agree with gold) |",
               "|---|---|---|---|---|---|"]
        comp = {}
        for g in present:
            sel = ms([groups[g][s][1][1] for s in seeds])
            ship = ms([groups[g][s][2][1] for s in seeds])
            sel_w = ms([groups[g][s][1][0] for s in seeds])
            ship_w = ms([groups[g][s][2][0] for s in seeds])
            last = [groups[g][s][0][labels[-1]] for s in seeds]
            pl = ms([r.get("pseudo_labels") for r in last])
            pa = ms([r.get("pseudo_label_accuracy") for r in last])
            comp[g] = {"selection_cpu_s": sel, "shipping_cpu_s": ship, "selection_wall_s": sel_w,
                       "shipping_wall_s": ship_w}
            p = f"{pl[0]:.0f}, {100*pa[0]:.1f}%" if pl else "—"
            md.append(f"| {g} | {fmt(sel, False)} | {fmt(sel_w, False)} | {fmt(ship, False)} | {fmt(ship_w, False)} | {p} |")
        # The claims, seed-paired at the last label count.
        claims = []
        own, acq_s, pseudo = "mpnet-svpp-margin", "l6-svpp-margin-to-mpnet", "l6-svpp-margin-to-mpnet-pseudo"
        n = labels[-1]
        acc = lambda g, s: groups[g][s][0][n]["test_accuracy"]
        if own in groups and acq_s in groups:
            loss = [acc(own, s) - acc(acq_s, s) for s in seeds]
            ratio = [groups[acq_s][s][1][1] / groups[own][s][1][1] for s in seeds]
            l, r = st.mean(loss), st.mean(ratio)
            # Held: the mean meets both parts and so do most seeds; mixed: one part, or the mean
            # but not most seeds.
            most = 2 * sum(x <= 0.01 for x in loss) > len(loss)
            if l <= 0.01 and r <= 0.2 and most:
                verdict = "held"
            elif l <= 0.01 or r <= 0.2:
                verdict = "mixed"
            else:
                verdict = "did not hold"
            claims.append((f"the successor on L6's picks loses ≤ 1 point against its own picks at ≤ 1/5 of the selection compute ({n} labels)",
                           verdict, f"loss {100*l:+.2f} pt (per seed {', '.join(f'{100*x:+.2f}' for x in loss)}); selection CPU time {r:.2f}× the own picks'"))
            if pseudo in groups:
                rec = [acc(pseudo, s) - acc(acq_s, s) for s in seeds]
                rm = st.mean(rec)
                if l <= 0:
                    verdict, what = "not tested", f"no loss to recover (loss {100*l:+.1f} pt); pseudo-labels changed accuracy by {100*rm:+.1f} pt"
                else:
                    verdict = "held" if rm >= l / 2 else "did not hold"
                    what = f"recovered {100*rm:+.2f} of {100*l:.2f} pt (per seed {', '.join(f'{100*x:+.2f}' for x in rec)})"
                claims.append(("pseudo-labels recover at least half of the remaining loss", verdict, what))
        if claims:
            md += ["", "| claim | verdict | numbers |", "|---|---|---|"]
            md += [f"| {c} | **{v}** | {w} |" for c, v, w in claims]
        md.append("")
        out[ds] = {"seeds": seeds, "table": table, "compute": comp,
                   "claims": [{"claim": c, "verdict": v, "numbers": w} for c, v, w in claims]}
    (OUT / "plasm.md").write_text("\n".join(md))
    (OUT / "plasm.json").write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {OUT / 'plasm.md'} and plasm.json")


if __name__ == "__main__":
    main()
