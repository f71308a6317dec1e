"""make bench-ann's report: experiments/results/bench-ann.{md,json} from the JSON lines of
scripts/bench-ann.sh (proxal's IVF index and hnsw_rs on the same feature versions).
Usage: python3 scripts/bench-ann-report.py LINES MD JSON
"""
import datetime, json, os, sys
lines = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
for l in lines:
    l.pop("query_rows", None)
    l["data"] = "clinc150 MiniLM embeddings" if "clinc150" in l.get("version", "") else "bench-select mixture"
written = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
json.dump({"written": written, "cores": os.cpu_count(), "cases": lines}, open(sys.argv[3], "w"), indent=1)
md = ["# IVF index (proxal) against HNSW (hnsw_rs)", "",
      "Written by `make bench-ann` (`scripts/bench-ann.sh`) on " + written + f", {os.cpu_count()} cores. The bench-select "
      "mixture (384 dims, 150 classes, stored f32 in the feature store: near-isotropic noise, where nearest "
      "neighbours hardly differ from random rows, so every index's recall is low) and, first, clinc150's MiniLM "
      "embeddings (real, 22,500 rows); each index is built over every row, then "
      "answers 200 seeded queries (rows of the pool) one at a time for their 10 nearest other rows; *recall* is "
      "against a brute-force scan. proxal's IVF: k-means cells (√n), 2 or 8 probed per query. hnsw_rs: M = 16, "
      "ef_construction = 200, ef_search = 64, `parallel_insert` on all cores. Run one after the other on the same "
      "machine; each line says when and under what load.", "",
      "| data | rows | index | build s | recall@10 | 200 queries s | run |", "|---|---|---|---|---|---|---|"]
for l in lines:
    what = l["index"] + (f", {l['cells']:,} cells, nprobe {l['nprobe']}" if "cells" in l else "")
    if l.get("error"):
        md.append(f"| {l['data']} | — | {what} | {l['error']} | — | — | {l['date']}, load {l['load_average_before'][0]} |")
        continue
    md.append(f"| {l['data']} | {l['rows']:,} | {what} | {l['build_seconds']:.2f} | {l['recall']:.3f} | {l['query_seconds']:.2f} | "
              f"{l['date']}, load {l['load_average_before'][0]} → {l['load_average_after'][0]}, {l.get('cpu', '')} |")
md.append("")
for data in dict.fromkeys(l["data"] for l in lines):
    ours = [l for l in lines if l["data"] == data and "cells" in l and not l.get("error")]
    peer = [l for l in lines if l["data"] == data and "cells" not in l and not l.get("error")]
    if ours and peer:
        ivf = ", ".join(f"{o['recall']:.3f} (IVF, nprobe {o['nprobe']})" for o in ours)
        md.append(f"- {data}, {ours[0]['rows']:,} rows: building the HNSW index took "
                  f"{peer[0]['build_seconds'] / ours[0]['build_seconds']:.0f}× as long as the IVF index; recall@10 "
                  f"{peer[0]['recall']:.3f} (HNSW) against {ivf}.")
open(sys.argv[2], "w").write("\n".join(md) + "\n")
print("\n".join(md))
