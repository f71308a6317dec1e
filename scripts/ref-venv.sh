#!/usr/bin/env bash
# Create (once) the Python venv that runs the reference sentence-transformers pipeline, used by
# scripts/make-parity-fixture.py and scripts/bench-embed.sh. Lives in .venv-ref/ (git-ignored).
# The registry's torch wheel is the CUDA build (~5.8 GB, ~3 min to install); it runs fine on CPU.
# Idempotent: a venv whose stamp file exists is reused (scripts/venv.sh). Prints the venv's
# python path last.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
exec "$root/scripts/venv.sh" "${PROXAL_REF_VENV:-$root/.venv-ref}" ref-ok "sentence-transformers>=3" numpy
