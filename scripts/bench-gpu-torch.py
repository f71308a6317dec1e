#!/usr/bin/env python3
"""PyTorch's side of `make bench-gpu` (scripts/bench-gpu.sh): the same measurements as proxal's
bench_gpu binary on the same GPU, with random weights of the same shape (transformers'
BertModel): embedding rows/s at 16 and 128 tokens (batch 512, mean pooling) in f32 and in f16,
and fine-tuning steps/s at 16 x 128 tokens (AdamW on every weight, f32, and bf16 autocast).

    bench-gpu-torch.py --shape minilm|bert-base [--reps N] [--steps N]

prints one JSON object (with the GPU's name, the driver and PyTorch's version).
"""
import argparse
import json
import subprocess
import time

import torch
from transformers import BertConfig, BertModel

SHAPES = {"minilm": (384, 6, 12, 1536), "bert-base": (768, 12, 12, 3072)}


def model(shape, device):
    hidden, layers, heads, ffn = SHAPES[shape]
    cfg = BertConfig(vocab_size=30522, hidden_size=hidden, num_hidden_layers=layers,
                     num_attention_heads=heads, intermediate_size=ffn,
                     max_position_embeddings=512, hidden_dropout_prob=0.0,
                     attention_probs_dropout_prob=0.0, attn_implementation="eager")
    return BertModel(cfg, add_pooling_layer=False).to(device)


def batch(rows, length, device):
    ids = (1000 + (torch.arange(rows * length, dtype=torch.int64) * 2654435761) % 29000)
    return ids.view(rows, length).to(device), torch.ones(rows, length, dtype=torch.int64, device=device)


def per_second(f, n):
    """Calls of f per second over n calls, after one warm-up call, the GPU synchronised around."""
    f()
    torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(n):
        f()
    torch.cuda.synchronize()
    return n / (time.perf_counter() - t)


def mean_pool(h, mask):
    w = mask.unsqueeze(-1).to(h.dtype)
    return (h * w).sum(1) / w.sum(1)


def embed_rows_per_second(m, length, reps, dtype, device):
    ids, mask = batch(512, length, device)
    m = m.to(dtype).eval()

    def run():
        with torch.no_grad():
            return mean_pool(m(input_ids=ids, attention_mask=mask).last_hidden_state, mask)

    return 512 * per_second(run, reps)


def finetune_steps_per_second(m, steps, autocast, device):
    m = m.float().train()
    ids, mask = batch(16, 128, device)
    head = torch.nn.Linear(m.config.hidden_size, 4).to(device)
    y = torch.arange(16, device=device) % 4
    opt = torch.optim.AdamW([
        {"params": list(m.parameters()), "lr": 5e-5, "weight_decay": 0.01},
        {"params": list(head.parameters()), "lr": 2e-3, "weight_decay": 0.0},
    ])

    def step():
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=autocast):
            f = mean_pool(m(input_ids=ids, attention_mask=mask).last_hidden_state, mask)
            loss = torch.nn.functional.cross_entropy(head(f).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return per_second(step, steps)


def gpu_facts():
    out = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"],
                         capture_output=True, text=True, check=False).stdout.strip().splitlines()
    name, driver = (out[0].split(", ") + ["?"])[:2] if out else ("?", "?")
    return {"gpu": name, "driver": driver, "torch": torch.__version__, "cuda": torch.version.cuda}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--shape", default="minilm", choices=sorted(SHAPES))
    p.add_argument("--reps", type=int, default=20)
    p.add_argument("--steps", type=int, default=20)
    a = p.parse_args()
    device = torch.device("cuda:0")
    torch.manual_seed(0)
    m = model(a.shape, device)
    out = {"shape": a.shape, **gpu_facts(), "embed_batch": 512, "finetune_batch": [16, 128]}
    out["embed_rows_per_second"] = {
        dt: {str(n): embed_rows_per_second(m, n, a.reps, getattr(torch, dt), device) for n in (16, 128)}
        for dt in ("float32", "float16")
    }
    out["finetune_steps_per_second"] = {
        "f32": finetune_steps_per_second(m, a.steps, False, device),
        "bf16_autocast": finetune_steps_per_second(m, a.steps, True, device),
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
