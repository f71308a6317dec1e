#!/usr/bin/env python3
"""Write the long-tail experiment's run configs (experiments/configs/longtail/<dataset>/*.toml).

Design (issue 18, "rare classes"): stackoverflow20 and banking77 pools resampled so that class
sizes fall geometrically (1:50 and 1:20; `data import-builtin --long-tail`, scripts/longtail.sh),
about 3,000 pool rows each, 1,000 random test rows (not resampled: every class counts in the
test); 200 initial labels + 4 rounds of 200, evaluated every round with a linear probe on v0.
Groups: random, svpp + margin, svpp + balanced:margin (the class-balancing wrapper); seeds 0-2.
The records keep accuracy, macro-F1 and the mean recall of the pool's tail classes (its rarest
third). Run it again after changing the design; the configs are committed.
"""
import pathlib

from runconfig import head

DATASETS = ["stackoverflow20", "banking77"]
GROUPS = [("random", "random", "random"), ("svpp-margin", "svpp", "margin"),
          ("svpp-balanced-margin", "svpp", "balanced:margin")]
root = pathlib.Path(__file__).resolve().parent.parent / "experiments" / "configs" / "longtail"
for ds in DATASETS:
    d = root / ds
    d.mkdir(parents=True, exist_ok=True)
    for tag, policy, strategy in GROUPS:
        for seed in (0, 1, 2):
            name = f"longtail-{ds}-{tag}-s{seed}"
            comment = (f"Long-tail experiment (scripts/make-longtail-configs.py): {ds}, {policy}, "
                       f"{strategy}, seed {seed}")
            (d / f"{tag}-s{seed}.toml").write_text(
                head(comment, name, f"{ds}-lt", policy, seed, strategy, 200, 4))
