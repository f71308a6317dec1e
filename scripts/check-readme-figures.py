"""make check-figures: every number in the README's Benchmarks table (what was measured and the
figure) must appear verbatim in one of the files its row cites (under experiments/results/).
Prints each row's numbers and where they were found; exits 1 if any is in none of the row's files.
"""
import re
import sys
from pathlib import Path

root = Path(__file__).resolve().parent.parent
readme = (root / "README.md").read_text(encoding="utf-8")
section = readme.split("### Benchmarks", 1)[1].split("\n### ", 1)[0]
rows = [l for l in section.splitlines() if l.startswith("| ") and not l.startswith("| what") and not l.startswith("|---")]
# Dates whole, then numbers (with thousands separators and decimals).
number = re.compile(r"\d{4}-\d{2}-\d{2}|\d[\d,]*(?:\.\d+)?")
bad = 0
for row in rows:
    cells = [c.strip() for c in row.strip("|").split("|")]
    what, figure, files = cells[0], cells[1], cells[2]
    paths = [root / "experiments" / "results" / f for f in re.findall(r"`([^`]+)`", files)]
    missing_files = [p for p in paths if not p.exists()]
    if missing_files or not paths:
        print(f"MISSING FILE  {what}: {', '.join(str(p) for p in missing_files) or 'no file cited'}")
        bad += 1
        continue
    texts = {str(p.relative_to(root / "experiments" / "results")): p.read_text(encoding="utf-8") for p in paths}
    for n in number.findall(what) + number.findall(figure):
        n = n.rstrip(",")
        where = [name for name, t in texts.items() if n in t]
        if where:
            print(f"ok            {what}: {n} in {', '.join(where)}")
        else:
            print(f"NOT FOUND     {what}: {n} in none of {', '.join(texts)}")
            bad += 1
sys.exit(1 if bad else 0)
