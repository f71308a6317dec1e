#!/usr/bin/env python3
"""PyTorch side of `make bench-train` (run by scripts/bench-train.sh in the reference venv).

Runs the very batches proxal's bench_train timed (token ids, attention masks and labels, read from
the file BENCH_BATCHES named, warm-up batch first) through the same model and step: MiniLM-L6
from assets/minilm (transformers' BertModel), mean pooling over the mask, L2 normalisation, a
linear head, cross-entropy, backward, and AdamW on every weight (backbone lr 5e-5 with weight
decay 0.01, head 2e-3 without, as proxal's fine_tune), with the same thread count. Times
forward / backward / update per step, then adds PyTorch's figures and proxal's ratio to
experiments/results/bench-train.{md,json} (written by bench_train moments before).
"""
import json
import math
import os
import sys
import time

import torch
from transformers import BertModel

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_average():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def run_case(model, case, threads):
    torch.manual_seed(0)
    n_classes = case["n_classes"]
    head = torch.nn.Linear(model.config.hidden_size, n_classes)
    opt = torch.optim.AdamW(
        [
            {"params": list(model.parameters()), "lr": 5e-5, "weight_decay": 0.01},
            {"params": list(head.parameters()), "lr": 2e-3, "weight_decay": 0.0},
        ]
    )
    model.train()
    # Dropout off, as proxal's bench_train runs forward_t(train = false).
    for m in model.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
    fwd = bwd = upd = 0.0
    batches = case["batches"]
    for s, b in enumerate(batches):
        ids = torch.tensor(b["ids"], dtype=torch.long)
        mask = torch.tensor(b["mask"], dtype=torch.long)
        y = torch.tensor(b["labels"], dtype=torch.long)
        t0 = time.perf_counter()
        hidden = model(input_ids=ids, attention_mask=mask).last_hidden_state
        m = mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)
        f = torch.nn.functional.normalize(pooled, p=2, dim=1)
        loss = torch.nn.functional.cross_entropy(head(f), y)
        loss.item()
        t1 = time.perf_counter()
        loss.backward()
        t2 = time.perf_counter()
        opt.step()
        opt.zero_grad(set_to_none=True)
        t3 = time.perf_counter()
        if s > 0:  # batch 0 is the warm-up step
            fwd += t1 - t0
            bwd += t2 - t1
            upd += t3 - t2
    steps = len(batches) - 1
    per = (fwd + bwd + upd) / steps
    return {
        "steps": steps,
        "steps_per_second": 1.0 / per,
        "forward_seconds_per_step": fwd / steps,
        "backward_seconds_per_step": bwd / steps,
        "update_seconds_per_step": upd / steps,
    }


def main():
    threads = int(os.environ.get("BENCH_THREADS", os.cpu_count() or 1))
    torch.set_num_threads(threads)
    with open(os.environ["BENCH_BATCHES"]) as f:
        cases = json.load(f)
    out = os.environ.get("BENCH_OUT", os.path.join(root, "experiments", "results"))
    res_json = os.path.join(out, "bench-train.json")
    res_md = os.path.join(out, "bench-train.md")
    with open(res_json) as f:
        proxal = json.load(f)
    load_start = load_average()
    model_dir = os.path.join(os.environ.get("PROXAL_ASSETS", os.path.join(root, "assets")), "minilm")
    torch_cases = {}
    for case in cases:
        # A fresh model per case, as bench_train trains each case from the pretrained weights.
        model = BertModel.from_pretrained(model_dir, add_pooling_layer=False, attn_implementation="eager")
        torch_cases[case["texts"]] = run_case(model, case, threads)
        print(f"torch {case['texts']}: {torch_cases[case['texts']]['steps_per_second']:.2f} steps/s", file=sys.stderr)
    rows, ratios = [], []
    for c in proxal["cases"]:
        t = torch_cases.get(c["texts"])
        if t is None:
            continue
        ratio = c["steps_per_second"] / t["steps_per_second"]
        c["torch"] = t
        c["throughput_ratio_vs_torch"] = ratio
        ratios.append(ratio)
        rows.append(
            f"| {c['texts']} | {c['tokens_per_row']:.1f} | {c['steps_per_second']:.2f} | {t['steps_per_second']:.2f} | **{ratio:.2f}×** "
            f"| {c['forward_seconds_per_step']:.3f} / {c['backward_seconds_per_step']:.3f} / {c['update_seconds_per_step']:.3f} "
            f"| {t['forward_seconds_per_step']:.3f} / {t['backward_seconds_per_step']:.3f} / {t['update_seconds_per_step']:.3f} |"
        )
    overall = math.exp(sum(math.log(r) for r in ratios) / len(ratios))
    proxal["throughput_ratio_vs_torch"] = overall
    proxal["torch"] = {
        "version": torch.__version__,
        "threads": threads,
        "attention": "eager",
        "load_average_start": load_start,
        "load_average_end": load_average(),
    }
    with open(res_json, "w") as f:
        json.dump(proxal, f, indent=2)
    md = open(res_md).read()
    md += (
        f"\n## Against PyTorch, same batches, same run\n\n"
        f"PyTorch {torch.__version__} ({threads} threads, transformers' BertModel with eager attention, "
        f"torch.optim.AdamW with the same groups, dropout off as in proxal's steps) ran the very batches above "
        f"(token ids and masks as proxal padded them; the length-bucketed case with proxal's buckets) right after "
        f"proxal, in the same `make bench-train`; tokenising is outside both timings. "
        f"Load average (1, 5, 15 min) at PyTorch's start {load_start}, at its end {load_average()}.\n\n"
        f"| texts | tokens/row | proxal steps/s | PyTorch steps/s | proxal ÷ PyTorch | proxal fwd / bwd / update s | PyTorch fwd / bwd / update s |\n"
        f"|---|---|---|---|---|---|---|\n" + "\n".join(rows) + "\n\n"
        f"Overall (geometric mean of the ratios): **{overall:.2f}×**.\n"
    )
    with open(res_md, "w") as f:
        f.write(md)
    print(md)


if __name__ == "__main__":
    main()
