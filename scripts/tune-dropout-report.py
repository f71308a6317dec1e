"""experiments/results/tuning-dropout.{md,json} from the dropout tuning runs
(scripts/tune-finetune.sh dropout).

Usage: tune-dropout-report.py HOME BOLT_DIR PRED_DIR OUT_MD OUT_JSON CONFIG...

The rule, fixed here before the dev scores were looked at: over the seeds, take the paired
difference (dropout on − off) of dev accuracy; dropout becomes the default only if the mean
difference is above zero by more than two standard errors of that mean; otherwise the default
stays as it is (off). Test accuracy is shown for information only.
"""
import json
import math
import sys
from pathlib import Path

home, bolt, pred_dir, out_md, out_json = (Path(a) for a in sys.argv[1:6])
configs = [Path(c) for c in sys.argv[6:]]
sys.path.insert(0, str(Path(__file__).parent))
from tuning_lib import Scorer, tuning_runs  # noqa: E402

rows = []
for _, cfg, name, rec, cond, dev, n_dev, test_p, _ in tuning_runs(home, configs, Scorer(bolt, pred_dir)):
    ft = cond.get("fine_tune") or {}
    rows.append({
        "name": name, "seed": cfg["seed"], "dropout": cfg["train"].get("dropout", False),
        "dev_accuracy": dev, "dev_rows": n_dev, "test_accuracy": rec["test_accuracy"],
        "test_accuracy_by_predict": test_p, "steps_per_second": ft.get("steps_per_second"),
        "conditions": cond,
    })
by = {(r["seed"], r["dropout"]): r for r in rows}
seeds = sorted({r["seed"] for r in rows if (r["seed"], True) in by and (r["seed"], False) in by})
diffs = [by[(s, True)]["dev_accuracy"] - by[(s, False)]["dev_accuracy"] for s in seeds]
mean = sum(diffs) / len(diffs)
sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / (len(diffs) - 1)) if len(diffs) > 1 else float("nan")
se = sd / math.sqrt(len(diffs)) if len(diffs) > 1 else float("nan")
turn_on = len(diffs) > 1 and mean > 2 * se
json.dump({
    "rule": "paired dev-accuracy difference (on - off) over seeds; dropout on by default only if "
            "the mean difference exceeds two standard errors of the mean; test plays no part",
    "seeds": seeds, "dev_differences": diffs, "mean_difference": mean, "standard_error": se,
    "dropout_by_default": turn_on, "runs": rows,
}, open(out_json, "w"), indent=1)
out = []
w = out.append
w("# Fine-tuning with and without dropout (banking77, 1,000 labels)\n")
w("Written by `make tune-dropout` (`scripts/tune-finetune.sh dropout`, `scripts/tune-dropout-report.py`). "
  "Each run buys 1,000 random banking77 labels (its seed), fine-tunes MiniLM once with the default "
  "hyper-parameters (3 epochs, batch 16, max_len 64, early stopping on a tenth of the labels), with "
  "`[train] dropout` off or on (seeded masks at the model's 0.1 on embeddings, attention "
  "probabilities and both residual branches), and is scored on banking77's dev split (`proxal predict`; "
  "no run reads it) and, for information, on the test split.\n")
w("| seed | dropout | dev accuracy | test accuracy | steps/s | date, load at start |\n|---|---|---|---|---|---|")
for r in sorted(rows, key=lambda r: (r["seed"], r["dropout"])):
    c = r["conditions"]
    sps = f"{r['steps_per_second']:.2f}" if r["steps_per_second"] else "–"
    w(f"| {r['seed']} | {'on' if r['dropout'] else 'off'} | {100 * r['dev_accuracy']:.1f} | "
      f"{100 * r['test_accuracy']:.1f} | {sps} | {c['date']}, {c['load_average_start'][0]:.2f} |")
w("")
w(f"Paired dev difference (on − off) by seed: {', '.join(f'{100 * d:+.1f}' for d in diffs)} points; "
  f"mean {100 * mean:+.2f} ± {100 * se:.2f} (standard error).\n")
w("**Rule** (fixed in `scripts/tune-dropout-report.py` before the dev scores were looked at): dropout "
  "becomes the default only if the mean paired dev difference exceeds two standard errors. "
  f"**Result: {'on' if turn_on else 'off'}** — "
  + ("dropout helps on the dev split beyond the seeds' noise." if turn_on else
     "the default stays off; `[train] dropout = true` turns it on.") + "\n")
Path(out_md).write_text("\n".join(out))
print("\n".join(out))
