"""Reading the run records the experiment scripts keep (scripts/runs-lib.sh's keep_record plus a
run.json): shared by f16-report.py and subpool-report.py."""
import json
import os


def lines(path):
    """The JSON objects of a JSON Lines file."""
    return [json.loads(l) for l in open(path) if l.strip()]


def load_record(d, selection_stages=("selection",)):
    """A finished record in directory d (None while it has no run.json): test accuracy per label
    count, the labelled rows in order, the CPU seconds of the given ledger stages, and run.json."""
    if not os.path.isfile(os.path.join(d, "run.json")):
        return None
    acc = {r["labels"]: r["test_accuracy"] for r in lines(os.path.join(d, "rounds.jsonl")) if r.get("test_accuracy") is not None}
    labelled = [r["row"] for r in lines(os.path.join(d, "labelled.jsonl"))]
    ledger = lines(os.path.join(d, "ledger.jsonl"))
    sel = sum(r["cpu_seconds"] for r in ledger if r["stage"] in selection_stages)
    return {"accuracy": acc, "labelled": labelled, "selection_cpu_seconds": sel, "run": json.load(open(os.path.join(d, "run.json")))}
