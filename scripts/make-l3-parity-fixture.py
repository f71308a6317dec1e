#!/usr/bin/env python3
"""Reference vectors of paraphrase-MiniLM-L3-v2 from onnxruntime running the ONNX export itself
(the wheel `make assets` fetches), for the texts of tests/fixtures/parity-minilm.json, written to
tests/fixtures/parity-minilm-l3.json. The Rust test `backbone_parity` embeds the same texts with
the converted model (assets/minilm-l3, scripts/onnx-bert-to-safetensors.py) and compares.

The export has no tokenizer; L3 uses the uncased BERT vocabulary, as MiniLM-L6 does. This script
checks that MiniLM-L6's tokenizer.json gives the same ids as a WordPiece tokenizer built from
its vocab.txt (lower-casing, accents stripped), stores the ids, and feeds them to onnxruntime one
text at a time (no padding); the model's own mean pooling gives the vectors.

Run once (the fixture is committed), in any Python with onnxruntime, tokenizers and numpy:
    python3 -m venv /tmp/ort && /tmp/ort/bin/pip install onnxruntime tokenizers numpy
    /tmp/ort/bin/python scripts/make-l3-parity-fixture.py
"""
import hashlib
import json
import os
import sys

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
assets = os.environ.get("PROXAL_ASSETS", os.path.join(root, "assets"))
onnx_path = os.path.join(assets, "minilm-l3-onnx", "paraphrase-MiniLM-L3-v2.onnx")
out_path = os.path.join(root, "tests", "fixtures", "parity-minilm-l3.json")
MAX_LEN = 128


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def main():
    import numpy as np
    import onnxruntime as ort
    import tokenizers
    from tokenizers import BertWordPieceTokenizer, Tokenizer

    texts = json.load(open(os.path.join(root, "tests", "fixtures", "parity-minilm.json")))["texts"]
    tok = Tokenizer.from_file(os.path.join(assets, "minilm", "tokenizer.json"))
    tok.no_padding()
    tok.enable_truncation(MAX_LEN)
    wp = BertWordPieceTokenizer(os.path.join(assets, "minilm", "vocab.txt"), lowercase=True,
                                strip_accents=True)
    wp.enable_truncation(MAX_LEN)
    ids = []
    for t in texts:
        a, b = tok.encode(t).ids, wp.encode(t).ids
        if a != b:
            sys.exit(f"tokenizer.json and vocab.txt disagree on {t!r}: {a} vs {b}")
        ids.append(a)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    sess = ort.InferenceSession(onnx_path, opts, providers=["CPUExecutionProvider"])
    pooled = sess.get_outputs()[3].name  # input_ids, attention_mask, token vectors, mean-pooled
    vecs = []
    for x in ids:
        arr = np.array([x], dtype=np.int64)
        (v,) = sess.run([pooled], {"input_ids": arr, "attention_mask": np.ones_like(arr)})
        vecs.append(v[0])
    fixture = {
        "about": "paraphrase-MiniLM-L3-v2 sentence vectors from onnxruntime on the ONNX export "
        "(mean pooling, not normalised, max 128 tokens), made by scripts/make-l3-parity-fixture.py",
        "onnxruntime": ort.__version__,
        "tokenizers": tokenizers.__version__,
        "onnx_sha256": sha256(onnx_path),
        "vocab_sha256": sha256(os.path.join(assets, "minilm", "vocab.txt")),
        "max_len": MAX_LEN,
        "pooling": "mean",
        "normalize": False,
        "texts": texts,
        "ids": ids,
        "vectors": [[float(f"{v:.8g}") for v in row] for row in np.array(vecs).tolist()],
    }
    with open(out_path, "w", encoding="utf-8") as f:
        json.dump(fixture, f, indent=0)
        f.write("\n")
    print(f"wrote {out_path}: {len(texts)} texts")


if __name__ == "__main__":
    main()
