#!/usr/bin/env bash
# `make check-k8s` (part of `make test`): validate deploy/k8s/*.yaml with scripts/check-k8s.py in
# a venv holding the pinned Kubernetes Python client (.venv-k8s/, git-ignored; made once, ~10 s).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
py=$("$root/scripts/venv.sh" "${PROXAL_K8S_VENV:-$root/.venv-k8s}" k8s-37.0.2 "kubernetes==37.0.2" "pyyaml>=6")
exec "$py" "$root/scripts/check-k8s.py"
