#!/usr/bin/env python3
"""Write the stopping experiment's run configs (experiments/configs/stopping/<dataset>/*.toml).

Design (docs/STOPPING.md): the suite's 3,000-row pools and 1,000-row test samples, svpp with
margin sampling, 200 initial labels then 18 rounds of 100 (2,000 labels: two thirds of the pool),
evaluated every round with a linear probe on v0; seeds 0, 1, 2. The runs never stop on their own
(`stop_on` is empty): every round records every criterion's signals, and
`scripts/report-stopping.py` reads off where each criterion would have stopped. svpp needs no
fine-tune, so the whole experiment costs minutes; the suite's 5-round runs are too short for a
window of 3 rounds to say much.
Run it again after changing the design; the configs are committed.
"""
import pathlib

from runconfig import head

DATASETS = ["banking77", "clinc150", "stackoverflow20", "assistant-source"]
SEEDS = [0, 1, 2]

root = pathlib.Path(__file__).resolve().parent.parent / "experiments" / "configs" / "stopping"
for ds in DATASETS:
    d = root / ds
    d.mkdir(parents=True, exist_ok=True)
    for seed in SEEDS:
        name = f"stopping-{ds}-svpp-margin-s{seed}"
        comment = f"Stopping experiment (scripts/make-stopping-configs.py): {ds}, svpp, margin, seed {seed}"
        (d / f"svpp-margin-s{seed}.toml").write_text(head(comment, name, f"{ds}-s", "svpp", seed, "margin", 100, 18) + """
[stopping]
stop_set = 1000
window = 3
kappa = 0.99
uncertainty = 0.1
stop_on = []
""")
