#!/usr/bin/env python3
"""Embedding speed of two builds of proxal side by side on this machine (no PyTorch).

    scripts/bench-embed-ab.py OLD_BIN NEW_BIN OLD_LABEL NEW_LABEL

OLD_BIN and NEW_BIN are two bench_embed binaries (scripts/bench-embed-ab.sh builds them). Both
embed the same texts as `make bench-embed` (banking77's first 2,000 pool texts and 256 texts of
>= 128 tokens), alternated for --rounds rounds of --repeat passes, best pass per side kept, and
the two sides' vectors are compared (the change under test must not change them). Writes
experiments/results/bench-embed-ab.md: for a change to the inference path, the speed-up in one
run on one machine, which the ratio to sentence-transformers in bench-embed.md does not show.
"""
import argparse
import datetime
import importlib.util
import json
import os
import sys

import numpy as np

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
spec = importlib.util.spec_from_file_location("bench_embed", os.path.join(root, "scripts", "bench-embed.py"))
be = importlib.util.module_from_spec(spec)
spec.loader.exec_module(be)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("old_bin")
    ap.add_argument("new_bin")
    ap.add_argument("old_label")
    ap.add_argument("new_label")
    ap.add_argument("--assets", default=os.environ.get("PROXAL_ASSETS", os.path.join(root, "assets")))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--work", default=os.path.join(root, "target", "bench-embed-ab"))
    ap.add_argument("--out", default=os.path.join(root, "experiments", "results", "bench-embed-ab.md"))
    args = ap.parse_args()
    os.makedirs(args.work, exist_ok=True)
    model_dir = os.path.join(args.assets, "minilm")
    sets = [("banking77", be.read_texts(args.assets, "banking", 2000)),
            ("long128", be.long_texts(args.assets, 256))]
    date = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    load_start = os.getloadavg()
    rows = []
    for name, texts in sets:
        path = os.path.join(args.work, f"{name}.jsonl")
        with open(path, "w", encoding="utf-8") as f:
            for t in texts:
                f.write(json.dumps(t) + "\n")
        rates = {"old": [], "new": []}
        vecs = {}
        for r in range(args.rounds):
            for side, binary in (("old", args.old_bin), ("new", args.new_bin)):
                info, v = be.run_ours(binary, model_dir, path, os.path.join(args.work, f"{side}.f32"),
                                      args.threads, args.repeat, 32, 128)
                rates[side].append(len(texts) / info["best_seconds"])
                vecs[side] = v
                print(f"bench-embed-ab: {name} round {r + 1} {side}: {rates[side][-1]:.1f} rows/s", file=sys.stderr)
        diff = float(np.abs(vecs["old"] - vecs["new"]).max())
        rows.append((name, len(texts), max(rates["old"]), max(rates["new"]), rates, diff))
    load_end = os.getloadavg()
    cpu = be.cpu_info()
    fmt = lambda xs: " / ".join(f"{x:.1f}" for x in xs)
    lines = [
        f"# Embedding speed, {args.old_label} against {args.new_label}, one machine, one run\n",
        f"Made by `scripts/bench-embed-ab.sh {args.old_label}` on {date}, {cpu['model']} "
        f"({', '.join(cpu['isa'])}), {args.threads} threads: each build's bench_embed (MiniLM, batch 32, "
        f"max_len 128, tokenising included) on the texts of `make bench-embed`, alternated for {args.rounds} rounds "
        f"of {args.repeat} passes, best pass per side. Load average (1, 5, 15 min) at the start "
        f"{' '.join(f'{x:.2f}' for x in load_start)}, at the end {' '.join(f'{x:.2f}' for x in load_end)}.\n",
        f"| texts | rows | {args.old_label} rows/s | {args.new_label} rows/s | speed-up | {args.old_label} by round "
        f"| {args.new_label} by round | max abs difference of the vectors |",
        "|---|---:|---:|---:|---:|---|---|---:|",
    ]
    for name, n, old, new, rates, diff in rows:
        lines.append(f"| {name} | {n} | {old:.1f} | {new:.1f} | **{new / old:.2f}×** | {fmt(rates['old'])} "
                     f"| {fmt(rates['new'])} | {diff:.1e} |")
    with open(args.out, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    print(f"bench-embed-ab: wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
