#!/usr/bin/env bash
# Gather what a GPU machine without Rust needs for the GPU checks into target/gpu-carry (name it in
# the device tool's `carry`, 64 MiB at most): the `make build-cuda` binaries bench_gpu and
# gpu-tests (tests/gpu.rs), stripped and gzipped, and CUDA 13's runtime library from the pinned
# wheel (lib/libcudart.so.13). There, `scripts/gpu-checks.sh target/gpu-carry "$OUT"` runs them.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bin="${CARGO_TARGET_DIR:-$root/target/cuda}/release"
cuda="${PROXAL_CUDA_TOOLKIT:-$root/target/cuda-toolkit}/cu13"
die() { echo "gpu-carry: error: $*" >&2; exit 1; }
for b in bench_gpu gpu-tests; do
  [ -x "$bin/$b" ] || die "$bin/$b not found (make build-cuda builds it)"
done
[ -f "$cuda/lib/libcudart.so.13" ] || die "$cuda/lib/libcudart.so.13 not found (make build-cuda unpacks it)"
dest="$root/target/gpu-carry"
rm -rf "$dest" && mkdir -p "$dest/lib"
for b in bench_gpu gpu-tests; do
  cp "$bin/$b" "$dest/$b"
  strip "$dest/$b"
  gzip -9 "$dest/$b"
done
cp "$cuda/lib/libcudart.so.13" "$dest/lib/"
du -sh "$dest"
