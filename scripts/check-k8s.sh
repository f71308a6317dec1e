#!/usr/bin/env bash
# `make check-k8s` (part of `make test`): validate deploy/k8s/*.yaml with scripts/check-k8s.py in
# a venv holding the pinned Kubernetes Python client (.venv-k8s/, git-ignored; made once, ~10 s).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="${PROXAL_K8S_VENV:-$root/.venv-k8s}"
stamp="$venv/.proxal-k8s-37.0.2"
if [ ! -f "$stamp" ]; then
  PY="${PYTHON:-$(command -v python3 || true)}"
  [ -n "$PY" ] || { echo "check-k8s: error: python3 not found" >&2; exit 1; }
  rm -rf "$venv"
  "$PY" -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet "kubernetes==37.0.2" "pyyaml>=6" \
    || { echo "check-k8s: error: pip install kubernetes==37.0.2 failed" >&2; exit 1; }
  touch "$stamp"
fi
exec "$venv/bin/python" "$root/scripts/check-k8s.py"
