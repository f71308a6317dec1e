#!/usr/bin/env bash
# Create (once) the Python venv that runs the reference sentence-transformers pipeline, used by
# scripts/make-parity-fixture.py and scripts/bench-embed.sh. Lives in .venv-ref/ (git-ignored).
# The registry's torch wheel is the CUDA build (~5.8 GB, ~3 min to install); it runs fine on CPU.
# Idempotent: a venv whose stamp file exists is reused. Prints the venv's python path last.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="${PROXAL_REF_VENV:-$root/.venv-ref}"
stamp="$venv/.proxal-ref-ok"
if [ ! -f "$stamp" ]; then
  PY="${PYTHON:-$(command -v python3 || true)}"
  [ -n "$PY" ] || { echo "ref-venv: error: python3 not found" >&2; exit 1; }
  echo "ref-venv: creating $venv (sentence-transformers + torch; several GB, minutes)" >&2
  "$PY" -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --upgrade pip >&2
  nice -n 10 "$venv/bin/python" -m pip install --quiet "sentence-transformers>=3" numpy >&2
  "$venv/bin/python" -c "import sentence_transformers, torch; print('ref-venv: sentence-transformers', sentence_transformers.__version__, 'torch', torch.__version__)" >&2
  touch "$stamp"
fi
echo "$venv/bin/python"
