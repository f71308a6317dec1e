#!/usr/bin/env bash
# scripts/venv.sh DIR TAG PACKAGE...: create (once) a Python venv in DIR holding PACKAGE...
# (pip requirement specifiers), marked done by the stamp file DIR/.proxal-TAG; a venv without
# that stamp (another TAG, or a creation that was cut short) is made again. Prints the venv's
# python path last (stdout); progress and errors go to stderr, errors in one line naming TAG.
# Used by ref-venv.sh (sentence-transformers + torch) and check-k8s.sh (the Kubernetes client).
set -euo pipefail
[ $# -ge 3 ] || { echo "usage: $0 DIR TAG PACKAGE..." >&2; exit 2; }
venv=$1 tag=$2
shift 2
stamp="$venv/.proxal-$tag"
if [ ! -f "$stamp" ]; then
  PY="${PYTHON:-$(command -v python3 || true)}"
  [ -n "$PY" ] || { echo "venv $tag: error: python3 not found" >&2; exit 1; }
  echo "venv $tag: creating $venv ($*)" >&2
  rm -rf "$venv"
  "$PY" -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --upgrade pip >&2
  nice -n 10 "$venv/bin/python" -m pip install --quiet "$@" >&2 \
    || { echo "venv $tag: error: pip install $* failed" >&2; exit 1; }
  touch "$stamp"
fi
echo "$venv/bin/python"
