"""Merge bench_select and peer JSON lines into experiments/results/bench-select.{md,json}."""
import json
import os
import platform
import sys

ours_path, peer_path, md_path, json_path = sys.argv[1:5]
ours = [json.loads(l) for l in open(ours_path) if l.strip()]
peer = [json.loads(l) for l in open(peer_path) if l.strip()]


def pool_of(r):
    if "pool_rows" in r:
        return int(r["pool_rows"])
    d = r.get("dir", "")
    return int(d.rsplit("/p", 1)[-1]) if "/p" in d else None


def size_key(n):
    # ours reports unlabelled rows (pool); the peer is keyed by the generated pool size
    return n


peer_by = {(p["strategy"], int(p["pool_rows"])): p for p in peer}
peer_fit = {int(p["pool_rows"]): p.get("peer_seconds") for p in peer if p["strategy"] == "proxy-fit"}
rows = []
for r in ours:
    n = pool_of(r)
    s = r["strategy"]
    p = peer_by.get((s, n))
    obj = {
        "strategy": s,
        "pool_rows": n,
        "labelled": r.get("labelled"),
        "classes": r.get("classes"),
        "dim": r.get("dim"),
        "batch": r.get("batch"),
        "seconds": r.get("seconds"),
        "fit_seconds": r.get("fit_seconds"),
        "select_seconds": r.get("select_seconds"),
        "cluster_seconds": r.get("cluster_seconds"),
        "peak_rss_bytes": r.get("peak_rss_bytes"),
        "rss_anon_bytes": r.get("rss_anon_bytes"),
        "proxy_quality": r.get("proxy_quality"),
        "error": r.get("error"),
    }
    if p is not None:
        obj["peer_seconds"] = p.get("peer_seconds")
        obj["peer_reason"] = p.get("reason")
        obj["peer_peak_rss_bytes"] = p.get("peer_peak_rss_bytes")
        if "same_rows_as_proxal" in p:
            obj["peer_same_rows"] = p["same_rows_as_proxal"]
        if p.get("note"):
            obj["peer_note"] = p["note"]
        if p.get("peer_seconds") and r.get("select_seconds"):
            obj["speedup_select_vs_peer"] = p["peer_seconds"] / r["select_seconds"]
    else:
        obj["peer_seconds"] = None
        obj["peer_reason"] = (
            "not run: the peer has no such strategy" if s in ("cluster-margin", "ups:margin", "typicality", "random")
            else "not run at this size (the peer is only run where it can finish: uncertainty strategies at 1M)"
        )
    obj["peer_proxy_fit_seconds"] = peer_fit.get(n)
    rows.append(obj)

load = os.getloadavg()
with open(json_path, "w") as f:
    json.dump({"machine": f"{os.cpu_count()} cores, {platform.machine()}", "load_average_at_end": load, "cases": rows}, f, indent=1)


def fmt_s(v):
    return "—" if v is None else (f"{v:.2f}" if v < 100 else f"{v:.0f}")


def fmt_b(v):
    return "—" if not v else f"{v / 2**20:.0f} MiB"


L = []
w = L.append
w("# Selection benchmark: proxy fit + score + select, 384-dim features, 150 classes, 10K labelled\n")
w(
    "Synthetic Gaussian mixture (150 class centres ~ N(0, I/384), per-row noise N(0, 36/384 · I)), written "
    "to the feature store (safetensors chunks of 4,096 rows) and read through the memory map; the page "
    "cache was warm. One process per case (peak RSS = VmHWM, which includes the mapped feature pages "
    "the case touched; RSS anon = private memory at the end). Dev profile with opt-level 3 (the only "
    f"profile here); {os.cpu_count()} cores shared with other engineers' builds (load average at the end "
    f"{load[0]:.1f}), so times are pessimistic and noisy.\n"
)
w("Regenerate: `make bench-select` (sizes: `BENCH_SIZES=\"100000 1000000\"`).\n")
if os.environ.get("BENCH_NOTE"):
    w(os.environ["BENCH_NOTE"] + "\n")
w(
    "| pool | strategy | batch | proxy fit s | score+select s | total s | peak RSS | RSS anon | peer query s | peer fit s | select speed-up | notes |"
)
w("|---|---|---|---|---|---|---|---|---|---|---|---|")
for o in rows:
    notes = []
    if o.get("error"):
        notes.append(o["error"])
    if o.get("cluster_seconds"):
        notes.append(f"clustering (cached per version) {o['cluster_seconds']:.1f} s")
    if o.get("peer_reason") and o.get("peer_seconds") is None:
        notes.append("peer: " + o["peer_reason"])
    if o.get("peer_note"):
        notes.append("peer: " + o["peer_note"])
    elif o.get("peer_same_rows") is not None:
        notes.append("peer picked the same rows" if o["peer_same_rows"] else "peer picked DIFFERENT rows")
    q = o.get("proxy_quality")
    if q:
        notes.append(f"proxy accuracy {q['accuracy']:.3f}, mean confidence {q['mean_confidence']:.3f}")
    sp = o.get("speedup_select_vs_peer")
    w(
        f"| {o['pool_rows']:,} | {o['strategy']} | {o['batch']:,} | {fmt_s(o['fit_seconds'])} | {fmt_s(o['select_seconds'])} | "
        f"{fmt_s(o['seconds'])} | {fmt_b(o['peak_rss_bytes'])} | {fmt_b(o['rss_anon_bytes'])} | {fmt_s(o.get('peer_seconds'))} | "
        f"{fmt_s(o.get('peer_proxy_fit_seconds'))} | {'' if not sp else f'{sp:.0f}×'} | {'; '.join(notes)} |"
    )
w("")
w(
    "Columns: *proxy fit* = gather the labelled rows + L-BFGS logistic regression with temperature calibration "
    "(two fits: held-out 80% then full, warm-started); *score+select* = probabilities for every unlabelled row "
    "streamed from the map + the strategy; *total* = both. The peer (scikit-activeml 1.0.1) gets proxal's "
    "features and probabilities; *peer query s* times its `query` call only, *peer fit s* scikit-learn's "
    "LogisticRegression on the same standardised labelled rows (one fit, no calibration). *select speed-up* = "
    "peer query ÷ proxal score+select."
)


def find(strategy, n, batch=1000):
    for o in rows:
        if o["strategy"] == strategy and o["pool_rows"] == n and o["batch"] == batch:
            return o
    return None


w("")
w("## Against the targets")
m = find("margin", 1_000_000)
if m and m.get("seconds"):
    ok = m["seconds"] <= 3.0
    w(
        f"- Margin round on 1M rows ≤ 3 s end to end: **{'met' if ok else 'not met'}** here — "
        f"{m['seconds']:.1f} s (proxy fit {m['fit_seconds']:.1f} s + score/select {m['select_seconds']:.1f} s) "
        "on 2 cores shared with other builds. Scoring is one 1M × 384 · 384 × 150 f32 matmul (57.6 GFMA) "
        "plus a softmax; the matmul alone needs ~2.3 s at the ~25 GFMA/s this machine gave, so the target "
        "needs an idle machine and a faster kernel (AVX-512), or fewer rows scored (UPS after the first round)."
    )
for strat in ("badge", "coreset"):
    o = find(strat, 100_000)
    if not o:
        continue
    if o.get("peer_seconds"):
        sp = o["peer_seconds"] / o["seconds"]
        w(
            f"- {strat} at 100K, batch 1K, ≥ 10× faster than the peer: **{'met' if sp >= 10 else 'not met'}** — "
            f"{o['seconds']:.1f} s vs {o['peer_seconds']:.0f} s ({sp:.0f}×), peak RSS {fmt_b(o['peak_rss_bytes'])} "
            f"(peer {fmt_b(o.get('peer_peak_rss_bytes'))})."
        )
    else:
        w(
            f"- {strat} at 100K, batch 1K: proxal {o['seconds']:.1f} s end to end, peak RSS {fmt_b(o['peak_rss_bytes'])}; "
            f"the peer could not run it ({o.get('peer_reason')}), so no ratio exists. Memory: proxal's is "
            "O(n·(d + C)), the peer's O(n·C·d)."
        )
open(md_path, "w").write("\n".join(L) + "\n")
