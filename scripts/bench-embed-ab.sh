#!/usr/bin/env bash
# Embedding speed of two revisions of proxal side by side on this machine: bench_embed built at
# REV (scripts/ab-old-bin.sh) and the working tree's, alternated (scripts/bench-embed-ab.py).
# Writes experiments/results/bench-embed-ab.md.
#
#   scripts/bench-embed-ab.sh REV                                e.g. scripts/bench-embed-ab.sh a00f60c
#   OLD_BIN=path/to/bench_embed scripts/bench-embed-ab.sh REV    (REV's binary, already built)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
sha="$(git rev-parse --short "${1:?usage: scripts/bench-embed-ab.sh REV}^{commit}")"
scripts/fetch-assets.sh >/dev/null
${CARGO:-cargo} build --bin bench_embed
old="$(scripts/ab-old-bin.sh "$sha" bench_embed)"
new_sha="$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src || echo '+changes')"
PY="$(scripts/ref-venv.sh)"
exec "$PY" scripts/bench-embed-ab.py "$old" target/debug/bench_embed "$sha" "$new_sha" "${@:2}"
