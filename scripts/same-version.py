"""Exit 0 when two feature-version directories hold the same chunk files byte for byte and the
same manifest (timestamps aside); else say what differs and exit 1.
Usage: python3 scripts/same-version.py DIR_A DIR_B  (used by test-slurm.sh and bench-shards.sh)
"""
import json
import pathlib
import sys

a, b = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])


def manifest(d):
    m = json.loads((d / "manifest.json").read_text())
    for k in ("created_at", "updated_at"):
        m.pop(k)
    return m


chunks = sorted(p.name for p in a.glob("chunk-*.safetensors"))
problems = []
if chunks != sorted(p.name for p in b.glob("chunk-*.safetensors")):
    problems.append("chunk files differ")
else:
    problems += [f"{c} differs" for c in chunks if (a / c).read_bytes() != (b / c).read_bytes()]
if manifest(a) != manifest(b):
    problems.append("manifests differ")
if problems:
    print(f"{a} vs {b}: " + "; ".join(problems), file=sys.stderr)
    sys.exit(1)
print(f"{len(chunks)} chunk files and the manifest are identical")
