#!/usr/bin/env python3
"""Write the PLASM experiment's run configs (experiments/configs/plasm/<dataset>/*.toml; issue 17).

Design: MiniLM-L6 (the default backbone, 384 dims) acquires for an all-mpnet-base-v2 successor
(768 dims), on the full pools of banking77 and clinc150 with the full-pool schedule (200 initial
labels + 9 rounds of 200, every round evaluated, 64-token embeddings), seeds 0-2:
- l6-svpp-margin-to-mpnet: svpp + margin on MiniLM-L6's cache; the successor (a linear probe on
  MPNet's pretrained features) ships, the acquisition model's own probe is scored beside it;
- l6-svpp-margin-to-mpnet-pseudo: the same picks, the successor also trained on the acquisition
  probe's pseudo-labels (top probability >= 0.9, weight 0.5, at most 20 per class). These three
  values were fixed before any run, not tuned (on test or otherwise);
- mpnet-svpp-margin: svpp + margin on MPNet's own cache (the successor's own picks);
- mpnet-random: random picks, an MPNet probe (random picks do not depend on the backbone: the
  successor on random picks);
- mpnet-svpp-margin-pseudo and mpnet-random-pseudo: the same two with pseudo-labels (MPNet's own
  probe labels for itself: self-training), so every successor row has a with/without pair.
Selection compute of the first two against the third is the "at 1/5 of the selection compute"
question; their accuracies against the third are the mismatch. Run again after changing the
design; the configs are committed.
"""
import pathlib

from runconfig import head

DATASETS = ["banking77", "clinc150"]
SEEDS = [0, 1, 2]
MPNET = "assets/mpnet"
SUCCESSOR = f'\n[successor]\nmodel_dir = "{MPNET}"\n'
# The successor is the run's own backbone: pseudo-labels from its own probe.
PSEUDO = "pseudo_threshold = 0.9\npseudo_weight = 0.5\npseudo_per_class = 20\n"
# tag: (policy, strategy, run's model_dir or None for MiniLM-L6, tables after the head)
GROUPS = {
    "l6-svpp-margin-to-mpnet": ("svpp", "margin", None, SUCCESSOR),
    "l6-svpp-margin-to-mpnet-pseudo": ("svpp", "margin", None, SUCCESSOR + PSEUDO),
    "mpnet-svpp-margin": ("svpp", "margin", MPNET, ""),
    "mpnet-random": ("random", "random", MPNET, ""),
    "mpnet-svpp-margin-pseudo": ("svpp", "margin", MPNET, SUCCESSOR + PSEUDO),
    "mpnet-random-pseudo": ("random", "random", MPNET, SUCCESSOR + PSEUDO),
}

root = pathlib.Path(__file__).resolve().parent.parent / "experiments" / "configs" / "plasm"
n = 0
for ds in DATASETS:
    (root / ds).mkdir(parents=True, exist_ok=True)
    for tag, (policy, strategy, model_dir, tables) in GROUPS.items():
        for seed in SEEDS:
            comment = f"PLASM experiment (scripts/make-plasm-configs.py): {ds}, {tag}, seed {seed}"
            text = head(comment, f"plasm-{ds}-{tag}-s{seed}", ds, policy, seed, strategy, 200, 9)
            if model_dir:
                text += f'model_dir = "{model_dir}"\n'
            (root / ds / f"{tag}-s{seed}.toml").write_text(text + tables)
            n += 1
print(f"wrote {n} configs under {root}")
