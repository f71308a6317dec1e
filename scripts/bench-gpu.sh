#!/usr/bin/env bash
# make bench-gpu: proxal against PyTorch on the same GPU, in one run (issue 15). Random weights of
# MiniLM-L6's and BERT-base's shapes (speed does not depend on the weights' values): embedding
# rows/s at 16 and 128 tokens (batch 512) and fine-tuning steps/s (16 x 128, AdamW), proxal's
# bench_gpu binary (a `make build-cuda` build) and scripts/bench-gpu-torch.py one after the other
# per shape. Writes OUT/bench-gpu.{json,md} with the GPU's name, the driver and PyTorch's version.
#
#   scripts/bench-gpu.sh [BIN_DIR] [OUT]
#
# BIN_DIR holds bench_gpu (default target/cuda/release) and, for a GPU machine without CUDA 13's
# runtime, lib/libcudart.so.13 (scripts/gpu-carry.sh copies both into target/gpu-carry for the
# device tool's `carry`). cuBLAS and cuRAND are loaded from PyTorch's own nvidia/*/lib.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bin="${1:-$root/target/cuda/release}"
out="${2:-$root/experiments/results}"
py="${PYTHON:-python3}"
die() { echo "bench-gpu: error: $*" >&2; exit 1; }
[ -x "$bin/bench_gpu" ] || die "$bin/bench_gpu not found (make build-cuda builds it)"
command -v nvidia-smi >/dev/null || die "nvidia-smi not found: no NVIDIA driver on this machine"
"$py" -c 'import torch, transformers; assert torch.cuda.is_available()' 2>/dev/null \
  || die "$py has no CUDA-enabled PyTorch with transformers"
# The CUDA libraries PyTorch ships (cuBLAS, cuRAND, the runtime), then ours.
libs="$("$py" "$root/scripts/torch-cuda-libs.py")"
export LD_LIBRARY_PATH="$bin/lib:$libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
for shape in minilm bert-base; do
  echo "bench-gpu: $shape: proxal"
  if ! "$bin/bench_gpu" --device cuda:0 --shape "$shape" > "$work/proxal-$shape.json" 2> "$work/proxal-$shape.err"; then
    tail -n 3 "$work/proxal-$shape.err" >&2
    printf '{"error": %s}\n' "$("$py" -c 'import json,sys; print(json.dumps(open(sys.argv[1]).read()[-2000:]))' "$work/proxal-$shape.err")" > "$work/proxal-$shape.json"
  fi
  echo "bench-gpu: $shape: PyTorch"
  "$py" "$root/scripts/bench-gpu-torch.py" --shape "$shape" > "$work/torch-$shape.json"
done
mkdir -p "$out"
"$py" - "$work" "$out" <<'PYEOF'
import datetime, json, os, sys
work, out = sys.argv[1:]
rows, cases = [], []
for shape in ("minilm", "bert-base"):
    p = json.load(open(os.path.join(work, f"proxal-{shape}.json")))
    t = json.load(open(os.path.join(work, f"torch-{shape}.json")))
    case = {"shape": shape, "proxal": p, "torch": t}
    if "error" not in p:
        te, pe = t["embed_rows_per_second"], p["embed_rows_per_second"]
        case["ratio"] = {
            "embed_f32_16": pe["16"] / te["float32"]["16"],
            "embed_f32_128": pe["128"] / te["float32"]["128"],
            "finetune_vs_bf16_autocast": p["finetune_steps_per_second"] / t["finetune_steps_per_second"]["bf16_autocast"],
            "finetune_vs_f32": p["finetune_steps_per_second"] / t["finetune_steps_per_second"]["f32"],
        }
    cases.append(case)
facts = {k: cases[0]["torch"][k] for k in ("gpu", "driver", "torch", "cuda")}
doc = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"), **facts, "cases": cases}
json.dump(doc, open(os.path.join(out, "bench-gpu.json"), "w"), indent=2)
md = [f"# proxal vs PyTorch on one GPU\n\nMade by `make bench-gpu` on {doc['date']}: {facts['gpu']}, driver {facts['driver']}, "
      f"PyTorch {facts['torch']} (CUDA {facts['cuda']}). Random weights of each shape; embedding batch 512 with mean pooling, "
      f"fine-tuning 16 x 128 tokens with AdamW on every weight; proxal in f32 (half precision is not built), PyTorch in f32, f16 "
      f"(embedding) and bf16 autocast (fine-tuning).\n",
      "| shape | proxal rows/s 16 / 128 (f32) | PyTorch f32 | PyTorch f16 | proxal ÷ PyTorch f32 | proxal steps/s | PyTorch f32 / bf16 autocast | proxal ÷ bf16 |",
      "|---|---|---|---|---|---|---|---|"]
for c in cases:
    p, t = c["proxal"], c["torch"]
    te, tf = t["embed_rows_per_second"], t["finetune_steps_per_second"]
    torch_cells = (f"{te['float32']['16']:.0f} / {te['float32']['128']:.0f}", f"{te['float16']['16']:.0f} / {te['float16']['128']:.0f}")
    if "error" in p:
        md.append(f"| {c['shape']} | failed: {p['error'].strip().splitlines()[-1][:120]} | {torch_cells[0]} | {torch_cells[1]} | – | – | {tf['f32']:.1f} / {tf['bf16_autocast']:.1f} | – |")
        continue
    r = c["ratio"]
    md.append(f"| {c['shape']} | {p['embed_rows_per_second']['16']:.0f} / {p['embed_rows_per_second']['128']:.0f} | {torch_cells[0]} | {torch_cells[1]} "
              f"| {r['embed_f32_16']:.2f}× / {r['embed_f32_128']:.2f}× | {p['finetune_steps_per_second']:.1f} | {tf['f32']:.1f} / {tf['bf16_autocast']:.1f} "
              f"| {r['finetune_vs_bf16_autocast']:.2f}× |")
open(os.path.join(out, "bench-gpu.md"), "w").write("\n".join(md) + "\n")
print("\n".join(md))
PYEOF
