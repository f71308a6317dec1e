#!/usr/bin/env bash
# On a GPU machine without Rust (the device tool's machine): the GPU tests and `make bench-gpu`
# from what scripts/gpu-carry.sh gathered. Writes OUT/gpu-tests.txt and OUT/bench-gpu.{json,md}.
#
#   scripts/gpu-checks.sh CARRY OUT
set -uo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
carry="${1:?usage: scripts/gpu-checks.sh CARRY OUT}"
out="${2:?usage: scripts/gpu-checks.sh CARRY OUT}"
mkdir -p "$out"
bin="$(mktemp -d)"
mkdir -p "$bin/lib" && cp "$carry"/lib/* "$bin/lib/"
for b in bench_gpu gpu-tests; do gunzip -c "$carry/$b.gz" > "$bin/$b" && chmod +x "$bin/$b"; done
nvidia-smi > "$out/nvidia-smi.txt" 2>&1
libs="$(python3 "$root/scripts/torch-cuda-libs.py")"
# The tests append to PROXAL_SKIP_LOG when they skip: here, a sign the binary saw no GPU.
PROXAL_SKIP_LOG="$out/gpu-skips.txt" LD_LIBRARY_PATH="$bin/lib:$libs" \
  "$bin/gpu-tests" --test-threads 1 cuda_embeddings_match_the_cpu a_fine_tuning_step_on_cuda_matches_the_cpu \
  > "$out/gpu-tests.txt" 2>&1
echo "gpu-tests: exit $? (skips: $(cat "$out/gpu-skips.txt" 2>/dev/null | wc -l))" | tee -a "$out/gpu-tests.txt"
"$root/scripts/bench-gpu.sh" "$bin" "$out"
