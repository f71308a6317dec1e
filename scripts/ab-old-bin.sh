#!/usr/bin/env bash
# The path of BIN built at revision REV, for the A/B benchmarks (bench-train-ab.sh,
# bench-embed-ab.sh): $OLD_BIN when set (REV's binary, already built), otherwise built in a
# worktree of REV under target/ab with its own target directory (a full build the first time).
#
#   old="$(scripts/ab-old-bin.sh REV BIN)"
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
rev="${1:?usage: scripts/ab-old-bin.sh REV BIN}"
bin="${2:?usage: scripts/ab-old-bin.sh REV BIN}"
die() { echo "ab-old-bin: error: $*" >&2; exit 1; }
old="${OLD_BIN:-}"
if [ -z "$old" ]; then
  sha="$(git rev-parse --short "$rev^{commit}" 2>/dev/null)" || die "$rev is not a commit here"
  wt="$root/target/ab/$sha"
  [ -d "$wt" ] || git worktree add --detach "$wt" "$sha" >/dev/null
  (cd "$wt" && CARGO_TARGET_DIR="$root/target/ab/target" ${CARGO:-cargo} build --bin "$bin" >&2)
  old="$root/target/ab/target/debug/$bin"
fi
[ -x "$old" ] || die "$old is not an executable"
echo "$old"
