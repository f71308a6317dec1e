#!/usr/bin/env python3
"""Convert a BERT encoder exported to ONNX by sentence-transformers into the model directory
proxal loads (config.json, tokenizer.json, model.safetensors), with nothing but the standard
library: the ONNX protobuf is read with a small wire-format reader, the weights are copied.

    onnx-bert-to-safetensors.py MODEL.onnx TOKENIZER.json OUT_DIR [--heads 12]

The export keeps BERT names for the embeddings, the biases and the LayerNorms
(`model.0.auto_model.` in front, cut here), but its 6 linear weights per layer are initializers
with generic names (`onnx::MatMul_470`) stored [in, out]. Each is the second input of a MatMul
whose output an Add takes with a named bias (`…query.bias`): the weight is named after that bias
(`…query.weight`) and transposed to torch's [out, in]. Anything that does not fit (a MatMul
weight without a named bias after it, a tensor that is not f32, an unknown layout) is an error.
The tokenizer is copied as given (the export has none; the caller names the vocabulary's).
"""
import json
import os
import shutil
import struct
import sys

PREFIX = "model.0.auto_model."
FLOAT = 1  # TensorProto.DataType FLOAT


def die(msg):
    sys.exit(f"onnx-bert-to-safetensors: error: {msg}")


def varint(b, i):
    r = s = 0
    while True:
        c = b[i]
        i += 1
        r |= (c & 0x7F) << s
        s += 7
        if c < 0x80:
            return r, i


def fields(b):
    """(field number, wire type, value) of a protobuf message, in order."""
    i, n = 0, len(b)
    while i < n:
        key, i = varint(b, i)
        f, t = key >> 3, key & 7
        if t == 0:
            v, i = varint(b, i)
        elif t == 1:
            v, i = b[i:i + 8], i + 8
        elif t == 5:
            v, i = b[i:i + 4], i + 4
        elif t == 2:
            ln, i = varint(b, i)
            v, i = b[i:i + ln], i + ln
        else:
            die(f"unsupported protobuf wire type {t}")
        yield f, t, v


def tensor(msg):
    """TensorProto: name, dims, data type, little-endian bytes."""
    d = {"dims": [], "type": None, "name": None, "raw": None, "floats": b""}
    for f, t, v in fields(msg):
        if f == 1:  # dims (int64, packed or not)
            if t == 0:
                d["dims"].append(v)
            else:
                j = 0
                while j < len(v):
                    x, j = varint(v, j)
                    d["dims"].append(x)
        elif f == 2:
            d["type"] = v
        elif f == 4:  # float_data, packed
            d["floats"] += v
        elif f == 8:
            d["name"] = v.decode()
        elif f == 9:
            d["raw"] = v
        elif f == 14 and v == 1:
            die(f"tensor {d['name']}: external data is not supported")
    if d["type"] != FLOAT:
        die(f"tensor {d['name']}: data type {d['type']}, expected float32")
    d["raw"] = d["raw"] if d["raw"] is not None else d["floats"]
    n = 1
    for x in d["dims"]:
        n *= x
    if len(d["raw"]) != 4 * n:
        die(f"tensor {d['name']}: {len(d['raw'])} bytes for dims {d['dims']}")
    return d


def read_graph(path):
    with open(path, "rb") as f:
        model = f.read()
    graphs = [v for f, t, v in fields(model) if f == 7]
    if len(graphs) != 1:
        die(f"{path}: not an ONNX model (no graph)")
    inits, nodes = {}, []
    for f, t, v in fields(graphs[0]):
        if f == 5:
            x = tensor(v)
            inits[x["name"]] = x
        elif f == 1:
            node = {"in": [], "out": [], "op": None}
            for ff, tt, vv in fields(v):
                if ff == 1:
                    node["in"].append(vv.decode())
                elif ff == 2:
                    node["out"].append(vv.decode())
                elif ff == 4:
                    node["op"] = vv.decode()
            nodes.append(node)
    return inits, nodes


def transpose(raw, rows, cols):
    """Row-major [rows, cols] f32 bytes → [cols, rows]."""
    src = memoryview(raw).cast("f")
    out = [0.0] * (rows * cols)
    for r in range(rows):
        base = r * cols
        out[r::rows] = src[base:base + cols]
    return struct.pack(f"<{rows * cols}f", *out)


def bert_weights(inits, nodes):
    named = {}
    for name, x in inits.items():
        if name.startswith(PREFIX):
            named[name[len(PREFIX):]] = (x["dims"], x["raw"])
    consumers = {}
    for n in nodes:
        for i in n["in"]:
            consumers.setdefault(i, []).append(n)
    for n in nodes:
        if n["op"] != "MatMul" or len(n["in"]) != 2 or n["in"][1] not in inits:
            continue
        w = inits[n["in"][1]]
        if w["name"].startswith(PREFIX):
            continue
        adds = [a for a in consumers.get(n["out"][0], []) if a["op"] == "Add"]
        bias = [i for a in adds for i in a["in"] if i.startswith(PREFIX) and i.endswith(".bias")]
        if len(bias) != 1:
            die(f"MatMul weight {w['name']}: no single named bias added after it ({bias})")
        name = bias[0][len(PREFIX):-len(".bias")] + ".weight"
        if len(w["dims"]) != 2:
            die(f"MatMul weight {w['name']}: dims {w['dims']}")
        k, m = w["dims"]
        named[name] = ([m, k], transpose(w["raw"], k, m))
    named.pop("embeddings.position_ids", None)
    return named


def write_safetensors(path, tensors):
    header, offset, blobs = {}, 0, []
    for name in sorted(tensors):
        dims, raw = tensors[name]
        header[name] = {"dtype": "F32", "shape": dims, "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
        blobs.append(raw)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def main():
    args = sys.argv[1:]
    heads = 12
    if "--heads" in args:
        i = args.index("--heads")
        heads = int(args[i + 1])
        del args[i:i + 2]
    if len(args) != 3:
        die("usage: onnx-bert-to-safetensors.py MODEL.onnx TOKENIZER.json OUT_DIR [--heads N]")
    onnx, tok, out = args
    inits, nodes = read_graph(onnx)
    t = bert_weights(inits, nodes)
    layers = sorted({int(k.split(".")[2]) for k in t if k.startswith("encoder.layer.")})
    if not layers or layers != list(range(len(layers))):
        die(f"{onnx}: no encoder layers numbered from 0 ({layers})")
    for i in layers:
        for part in ["attention.self.query", "attention.self.key", "attention.self.value",
                     "attention.output.dense", "intermediate.dense", "output.dense"]:
            if f"encoder.layer.{i}.{part}.weight" not in t:
                die(f"{onnx}: layer {i} has no {part} weight")
    vocab, hidden = t["embeddings.word_embeddings.weight"][0]
    config = {
        "architectures": ["BertModel"], "model_type": "bert",
        "vocab_size": vocab, "hidden_size": hidden, "num_hidden_layers": len(layers),
        "num_attention_heads": heads,
        "intermediate_size": t["encoder.layer.0.intermediate.dense.weight"][0][0],
        "hidden_act": "gelu", "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": t["embeddings.position_embeddings.weight"][0][0],
        "type_vocab_size": t["embeddings.token_type_embeddings.weight"][0][0],
        "initializer_range": 0.02, "layer_norm_eps": 1e-12, "pad_token_id": 0,
        "position_embedding_type": "absolute",
    }
    if hidden % heads:
        die(f"hidden size {hidden} is not a multiple of {heads} heads")
    tmp = out + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    write_safetensors(os.path.join(tmp, "model.safetensors"), t)
    with open(os.path.join(tmp, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    shutil.copyfile(tok, os.path.join(tmp, "tokenizer.json"))
    shutil.rmtree(out, ignore_errors=True)
    os.replace(tmp, out)
    print(f"onnx-bert-to-safetensors: {len(t)} tensors, {len(layers)} layers, hidden {hidden} → {out}")


if __name__ == "__main__":
    main()
