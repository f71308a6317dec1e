#!/usr/bin/env python3
"""Reclassify the `evaluation` records of run ledgers written before the `ship` stage existed.

Until the ledger had a `ship` stage, training the model a policy ships (svpp's/asvp's final
linear probe or fine-tune, and the re-embedding a probe on a fine-tuned backbone's features needs)
was booked as `evaluation` and left out of compute. docs/METRICS.md now counts it: H_m(a)
includes training the model that ships at a. This script rewrites such ledgers in place, changing
stage names only (seconds, rows and order are kept), so `proxal report` applies the new definition
to runs that cannot be rerun cheaply. It is idempotent: a ledger with a `ship` record is left alone.

Which `evaluation` record was what, from the order in which `proxal run` (src/al/run.rs, before
the change) appended them within a round:
  * round 0, note "one-off embedding of v0": charged as evaluation to random and standard. Random
    ships a model trained on v0 (a linear probe or LP-FT) unless its eval model is a plain
    fine-tune: -> `embed`. Standard selects with and ships its own fine-tuned model: stays.
  * svpp's first evaluation record of each round is LogME, logged only: stays `evaluation`.
  * a record of as many rows as the labelled set plus the test split (eval_model linear-probe):
    the shipped linear probe fitted and the test split scored in one record (the scoring is a few
    ms of it and cannot be separated): -> `ship`.
  * a record of as many rows as the labelled set (eval_model fine-tune / lp-ft / auto): the
    shipped model's fine-tune: -> `ship` (its optimiser steps were not recorded).
  * in the last round, a record of as many rows as the whole dataset after a fine-tune: the
    refresh a linear probe on the fine-tuned backbone needs: -> `ship`; the fine-tune before it
    only made the shipped model (no selection follows): -> `ship` as well.
  * a record of as many rows as the test split: scoring: stays `evaluation`.
Embed and refresh records also get `embedded_rows` (their rows). Anything else is an error.

Usage: migrate-ledgers-ship.py RUN_DIR... [--check]  (--check: print what would change, write
nothing; exit 1 if some ledger needs migrating)
"""
import json
import pathlib
import sys
import tomllib

NOTE = "reclassified by scripts/migrate-ledgers-ship.py"
STEPS = "steps not recorded"


def migrate(run: pathlib.Path):
    cfg = tomllib.loads((run / "config.toml").read_text())
    policy, eval_model = cfg["policy"], cfg.get("eval_model", "auto")
    last_round = cfg["rounds"]
    lines = (run / "ledger.jsonl").read_text().splitlines()
    lines = [x for x in lines if x.strip()]
    recs = [json.loads(x) for x in lines]
    if any(r["stage"] == "ship" for r in recs):
        return None
    labels = {}
    for p in (run / "progress.jsonl").read_text().splitlines():
        if p.strip():
            p = json.loads(p)
            labels[p["round"]] = p["labels"]
    rows_ds = max((r["rows"] for r in recs if r["stage"] in ("embed", "refresh")), default=None)
    seen_eval = set()
    changes = []
    out = []
    for i, r in enumerate(recs):
        r = dict(r)
        st, rnd, rows = r["stage"], r["round"], r["rows"]
        if st in ("embed", "refresh") and "embedded_rows" not in r:
            r["embedded_rows"] = rows
        if st == "evaluation":
            first = rnd not in seen_eval
            seen_eval.add(rnd)
            L = labels.get(rnd)
            note = r.get("note") or ""
            new, why = None, None
            if note.startswith("one-off embedding of v0") or note.startswith("v0 has no cost"):
                r["embedded_rows"] = rows
                if policy == "random" and eval_model != "fine-tune":
                    new, why = "embed", "random's shipped model is trained on v0"
                else:
                    why = "keep"
            elif policy == "svpp" and first:
                why = "keep"  # LogME, logged only
            elif rows_ds is not None and rows == rows_ds and rnd == last_round:
                new, why = "ship", "refresh for the shipped linear probe"
                r["embedded_rows"] = rows
            elif L is not None and rows == L:
                new, why = "ship", f"fine-tune of the shipped model ({STEPS})"
            elif L is not None and rows > L and eval_model == "linear-probe":
                new, why = "ship", "linear probe of the shipped model + scoring the test split (not separable)"
            elif L is not None and rows < L or eval_model != "linear-probe":
                why = "keep"  # scoring the test split
            else:
                raise SystemExit(f"{run}/ledger.jsonl line {i + 1}: cannot classify {r}")
            if new:
                r["stage"] = new
                r["note"] = f"{why}; {NOTE}" if not note else f"{note}; {why}; {NOTE}"
                changes.append((i + 1, st, new, why))
        elif st == "fine_tune" and rnd == last_round:
            # The last round's fine-tune feeds no selection: it only made the shipped model.
            r["stage"] = "ship"
            r["note"] = f"fine-tune of the shipped model in the last round ({STEPS}); {NOTE}"
            changes.append((i + 1, st, "ship", "last-round fine-tune"))
        # Unchanged records keep their original text.
        out.append(lines[i] if r == recs[i] else json.dumps(r, separators=(",", ":")))
    return changes, out


def main():
    args = [a for a in sys.argv[1:] if a != "--check"]
    check = "--check" in sys.argv[1:]
    pending = 0
    for a in args:
        run = pathlib.Path(a)
        res = migrate(run)
        if res is None:
            print(f"{run.name}: already has ship records, left alone")
            continue
        changes, out = res
        pending += 1
        print(f"{run.name}: {len(changes)} records reclassified: "
              + ", ".join(f"line {n} {a}->{b}" for n, a, b, _ in changes))
        if not check:
            text = "".join(line + "\n" for line in out)
            (run / "ledger.jsonl").write_text(text)
    if check and pending:
        sys.exit(1)


if __name__ == "__main__":
    main()
