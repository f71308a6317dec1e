#!/usr/bin/env bash
# make bench-ann: proxal's IVF index (candidate subpooling) against hnsw_rs, a maintained HNSW
# crate, on the same rows: the bench-select mixture (384 dims, 150 classes) at BENCH_ANN_SIZES
# rows (default 200000), build time and 10-NN recall against a brute-force scan for the same 200
# seeded queries, one after the other on this machine. hnsw_rs lives in its own package
# (bench/ann-peer, built in release mode into target/ann-peer), so proxal does not depend on it.
# Writes experiments/results/bench-ann.{md,json}; raw lines in target/bench-ann/*.jsonl.
set -uo pipefail
cd "$(dirname "$0")/.."
cargo build --quiet --bin bench_select || exit 1
CARGO_TARGET_DIR=target/ann-peer cargo build --quiet --release --manifest-path bench/ann-peer/Cargo.toml || exit 1
B=target/debug/bench_select
P=target/ann-peer/release/ann-peer
OUT=target/bench-ann
mkdir -p $OUT
: > $OUT/lines.jsonl
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }
stamp() { # LINE LOAD_BEFORE
    python3 -c '
import datetime, json, os, sys
d = json.loads(sys.argv[1])
d["date"] = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
d["load_average_before"] = [float(x) for x in sys.argv[2].split()]
d["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
d["cpu"] = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "")
print(json.dumps(d))' "$1" "$2"
}
for n in ${BENCH_ANN_SIZES:-200000}; do
    d=$OUT/p$n
    [ -f $d/setup.json ] || $B gen --dir $d --pool $n --labelled 1000 --dim 384 --classes 150 --noise 6 --seed 1 || exit 1
    cat $d/features/synthetic/v0/*.safetensors > /dev/null
    for nprobe in 2 8; do
        before=$(loadavg)
        line=$($B index --dir $d --nprobe $nprobe) || exit 1
        echo "$line" > $OUT/ours-$n.json
        stamp "$line" "$before" | tee -a $OUT/lines.jsonl
    done
    before=$(loadavg)
    line=$(timeout ${PEER_TIMEOUT:-1800} $P $d/features/synthetic/v0 $OUT/ours-$n.json) || line="{\"index\":\"hnsw_rs 0.3 (HNSW)\",\"rows\":$((n + 1000)),\"error\":\"exit $? (124 = over ${PEER_TIMEOUT:-1800} s)\"}"
    stamp "$line" "$before" | tee -a $OUT/lines.jsonl
done
python3 - "$OUT/lines.jsonl" experiments/results/bench-ann.md experiments/results/bench-ann.json <<'PY'
import datetime, json, os, sys
lines = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
for l in lines:
    l.pop("query_rows", None)
written = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
json.dump({"written": written, "cores": os.cpu_count(), "cases": lines}, open(sys.argv[3], "w"), indent=1)
md = ["# IVF index (proxal) against HNSW (hnsw_rs)", "",
      "Written by `make bench-ann` (`scripts/bench-ann.sh`) on " + written + f", {os.cpu_count()} cores. The bench-select "
      "mixture (384 dims, 150 classes, stored f32 in the feature store); each index is built over every row, then "
      "answers 200 seeded queries (rows of the pool) one at a time for their 10 nearest other rows; *recall* is "
      "against a brute-force scan. proxal's IVF: k-means cells (√n), 2 or 8 probed per query. hnsw_rs: M = 16, "
      "ef_construction = 200, ef_search = 64, `parallel_insert` on all cores. Run one after the other on the same "
      "machine; each line says when and under what load.", "",
      "| rows | index | build s | recall@10 | 200 queries s | run |", "|---|---|---|---|---|---|"]
for l in lines:
    what = l["index"] + (f", {l['cells']:,} cells, nprobe {l['nprobe']}" if "cells" in l else "")
    if l.get("error"):
        md.append(f"| {l['rows']:,} | {what} | {l['error']} | — | — | {l['date']}, load {l['load_average_before'][0]} |")
        continue
    md.append(f"| {l['rows']:,} | {what} | {l['build_seconds']:.1f} | {l['recall']:.3f} | {l['query_seconds']:.2f} | "
              f"{l['date']}, load {l['load_average_before'][0]} → {l['load_average_after'][0]}, {l.get('cpu', '')} |")
ours = [l for l in lines if "cells" in l and not l.get("error")]
peer = [l for l in lines if "cells" not in l and not l.get("error")]
if ours and peer:
    md += ["", f"Build: HNSW took {peer[0]['build_seconds'] / ours[0]['build_seconds']:.0f}× as long as the IVF index on "
           f"{ours[0]['rows']:,} rows."]
open(sys.argv[2], "w").write("\n".join(md) + "\n")
print("\n".join(md))
PY
