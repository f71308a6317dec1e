#!/usr/bin/env bash
# make build-cuda: build proxal with the `cuda` cargo feature on a machine without a CUDA install
# (no GPU needed to build). CUDA 13's compiler, headers and runtime come from pinned PyPI wheels,
# each checked against its sha256 (scripts/wheel-lib.sh), unpacked into one CUDA root
# (target/cuda-toolkit/cu13: bin/nvcc, nvvm/, include/, lib/); candle's kernels are compiled to PTX
# for one compute capability.
#
#   CUDA_COMPUTE_CAP  90 (H100/H200, default), 80 (A100), 86 (A10/RTX 30), 89 (L4/RTX 40)
#   CARGO_TARGET_DIR  where the build goes (default target/cuda, apart from the CPU build)
#
# The binaries, target/cuda/release/{proxal,bench_gpu}, load at run time the driver (libcuda.so.1)
# and CUDA 13's libcudart.so.13, libnvrtc.so.13, libcurand.so.10, libcublas.so.13 and
# libcublasLt.so.13: a CUDA 13 PyTorch install's nvidia/cu13/lib has them; put it on
# LD_LIBRARY_PATH there (scripts/bench-gpu.sh does). A missing tool or a wrong
# checksum is a one-line error and a non-zero exit.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

die() { echo "build-cuda: error: $*" >&2; exit 1; }

cap="${CUDA_COMPUTE_CAP:-90}"
case "$cap" in
  80|86|89|90) ;;
  *) die "CUDA_COMPUTE_CAP=$cap: give 80, 86, 89 or 90" ;;
esac
toolkit="${PROXAL_CUDA_TOOLKIT:-$root/target/cuda-toolkit}"
wheels="$toolkit/wheels"
WHEEL_TAG=build-cuda
# shellcheck source=scripts/wheel-lib.sh
. "$root/scripts/wheel-lib.sh"

# name | version | sha256 of the manylinux x86_64 wheel. All of CUDA 13's wheels unpack under
# nvidia/cu13/, which is then a CUDA root.
CUDA_WHEELS=(
  "nvidia-cuda-nvcc|13.0.88|56fe502eb77625a12f25172caa3cdddb4e4c8ba2c8c17dba44b164761b380f03"
  "nvidia-nvvm|13.0.88|c5f41ffeb6466944a026dfa5317d7d85355c119bbec279205d22f1869d1054e0"
  "nvidia-cuda-crt|13.0.88|2c8043c7c9e02492716426e9919fc78d2c5b3b2a7a768a88e952676b08aa55a4"
  "nvidia-cuda-runtime|13.0.88|422a38f7c739ecbdd3a4b6ec7ed0a1d74db43d8e9bc26685f3d845638922b178"
  "nvidia-cuda-cccl|13.0.85|e0da7ad981f3a8aff08241b5bfc1af868742a63e2762f53a5171c492ef242649"
)
[ "$(uname -m)" = x86_64 ] || die "the pinned CUDA wheels are for x86_64 Linux, this is $(uname -m)"
command -v c++ >/dev/null || die "no C++ compiler (nvcc needs g++ as its host compiler: apt-get install g++)"

cuda="$toolkit/cu13"
stamp="$cuda/.wheels"
want="$(printf '%s\n' "${CUDA_WHEELS[@]}")"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  tmp="$toolkit/.tmp"
  rm -rf "$tmp" && mkdir -p "$tmp"
  for spec in "${CUDA_WHEELS[@]}"; do
    IFS='|' read -r name version sha <<<"$spec"
    verified_wheel "$name" "$version" "$sha"
    "$PY" -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])' "$WHEEL" "$tmp"
  done
  [ -d "$tmp/nvidia/cu13/bin" ] || die "the wheels did not unpack into nvidia/cu13"
  rm -rf "$cuda" && mv "$tmp/nvidia/cu13" "$cuda" && rm -rf "$tmp"
  # zipfile drops the executable bits; the linker wants an unversioned libcudart.so.
  chmod +x "$cuda"/bin/* "$cuda"/nvvm/bin/*
  ln -sf libcudart.so.13 "$cuda/lib/libcudart.so"
  echo "$want" > "$stamp"
  echo "build-cuda: CUDA root in $cuda (sha256 of ${#CUDA_WHEELS[@]} wheels verified)"
fi
"$cuda/bin/nvcc" --version | tail -n 2 | head -n 1

export PATH="$cuda/bin:$PATH"
export CUDA_ROOT="$cuda" CUDA_PATH="$cuda" CUDA_HOME="$cuda" CUDA_TOOLKIT_ROOT_DIR="$cuda"
export NVCC="$cuda/bin/nvcc" CUDA_COMPUTE_CAP="$cap"
export LIBRARY_PATH="$cuda/lib:$cuda/lib/stubs${LIBRARY_PATH:+:$LIBRARY_PATH}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target/cuda}"
# The library first (no linking): it builds cudarc, whose bindings candle links dynamically
# (-lcuda -lnvrtc -lcurand -lcublas -lcublasLt). No wheel carries the driver, and cuBLAS's is
# ~0.5 GB, so the link gets stubs: for each library, the functions cudarc calls, under the real
# library's SONAME, which the GPU machine's driver and CUDA 13 libraries then provide at run
# time.
${CARGO:-cargo} build --release --features cuda --lib
rlib="$(ls -t "$CARGO_TARGET_DIR"/release/deps/libcudarc-*.rlib 2>/dev/null | head -n 1)"
[ -n "$rlib" ] || die "no cudarc library under $CARGO_TARGET_DIR/release/deps after building proxal"
command -v nm >/dev/null || die "nm not found (apt-get install binutils)"
stubs="$cuda/lib/stubs"
rm -rf "$stubs" && mkdir -p "$stubs"
nm -u "$rlib" 2>/dev/null | awk '{print $2}' | sort -u > "$stubs/symbols"
stub() { # NAME SONAME PATTERN [EXCLUDE]
  local name="$1" soname="$2" pattern="$3" exclude="${4:-^$}"
  grep -E "$pattern" "$stubs/symbols" | grep -vE "$exclude" | sed 's/.*/void &(void) {}/' > "$stubs/$name.c"
  [ -s "$stubs/$name.c" ] || die "cudarc calls nothing from lib$name: its bindings changed"
  cc -shared -fPIC -nostdlib -Wl,-soname,"$soname" -o "$stubs/lib$name.so" "$stubs/$name.c"
}
stub cuda libcuda.so.1 '^cu[A-Z]'
stub nvrtc libnvrtc.so.13 '^nvrtc'
stub curand libcurand.so.10 '^curand'
stub cublas libcublas.so.13 '^cublas' '^cublasLt'
stub cublasLt libcublasLt.so.13 '^cublasLt'
${CARGO:-cargo} build --release --features cuda --bin proxal --bin bench_gpu
# The CUDA-vs-CPU tests (tests/gpu.rs) as one binary, for a GPU machine without Rust.
exe="$(${CARGO:-cargo} test --release --features cuda --test gpu --no-run 2>&1 | tee /dev/stderr \
  | sed -n 's/.*Executable tests\/gpu.rs (\(.*\))/\1/p' | tail -n 1)"
[ -n "$exe" ] && [ -x "$exe" ] || die "cargo did not report the gpu test binary"
cp "$exe" "$CARGO_TARGET_DIR/release/gpu-tests"
echo "build-cuda: $CARGO_TARGET_DIR/release/{proxal,bench_gpu,gpu-tests} (sm_$cap)"
