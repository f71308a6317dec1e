//! Rust side of `make bench-embed` (driven by scripts/bench-embed.sh).
//!
//! `bench_embed embed --model-dir D --texts F --out F [--batch 32] [--max-len 128] [--repeat 3]`
//!   embeds the texts of F (one JSON string per line) and prints one JSON line of timings;
//!   the vectors (rows × dim little-endian f32) go to --out.
//! `bench_embed store-rss --dir D [--rows 1000000] [--dim 384]`
//!   writes a synthetic feature version (once), opens it, touches a few slices and prints the
//!   process's resident memory as one JSON line.
use anyhow::{bail, Context, Result};
use candle_core::Device;
use proxal::backbone::{Backbone, EmbedOptions, Pooling};
use proxal::features::{Provenance, RowBlocks, Store, Verify, VersionSpec};
use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

fn args() -> (String, HashMap<String, String>) {
    let mut it = std::env::args().skip(1);
    let cmd = it.next().unwrap_or_default();
    let mut map = HashMap::new();
    let rest: Vec<String> = it.collect();
    let mut i = 0;
    while i < rest.len() {
        let k = rest[i].trim_start_matches("--").to_string();
        let v = rest.get(i + 1).cloned().unwrap_or_default();
        map.insert(k, v);
        i += 2;
    }
    (cmd, map)
}

fn get<T: std::str::FromStr>(m: &HashMap<String, String>, k: &str, default: T) -> Result<T> {
    match m.get(k) {
        None => Ok(default),
        Some(v) => v.parse().ok().with_context(|| format!("bad --{k} {v}")),
    }
}

fn status_kb(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(field))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

fn embed(m: &HashMap<String, String>) -> Result<()> {
    let model_dir = PathBuf::from(m.get("model-dir").context("--model-dir")?);
    let texts_path = m.get("texts").context("--texts")?;
    let out = m.get("out").context("--out")?;
    let repeat: usize = get(m, "repeat", 3)?;
    let opts = EmbedOptions {
        batch: get(m, "batch", 32)?,
        max_len: get(m, "max-len", 128)?,
        pooling: Pooling::Mean,
        normalize: true,
    };
    let texts: Vec<String> = std::fs::read_to_string(texts_path)?
        .lines()
        .filter(|l| !l.is_empty())
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()
        .context("texts file: one JSON string per line")?;
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let bb = Backbone::load(&model_dir, &Device::Cpu, false)?;
    let mut embedder = bb.embedder(opts)?;
    if m.get("reference-path").is_some() {
        embedder = embedder.without_fast_path();
    }
    // Warm-up: page in the weights, spin up the thread pools.
    embedder.embed(&refs[..refs.len().min(64)])?;
    proxal::backbone::fast::profile::reset();
    let mut times = Vec::new();
    let mut tok_times = Vec::new();
    let mut vecs = Vec::new();
    for _ in 0..repeat {
        let t0 = Instant::now();
        let enc = embedder.encode(&refs)?;
        let t1 = Instant::now();
        vecs = embedder.embed_encoded(&enc)?;
        times.push(t0.elapsed().as_secs_f64());
        tok_times.push((t1 - t0).as_secs_f64());
    }
    let profile: serde_json::Map<String, serde_json::Value> =
        proxal::backbone::fast::profile::report()
            .into_iter()
            .map(|(k, v)| (k.to_string(), serde_json::json!(v / repeat as f64)))
            .collect();
    let enc = embedder.encode(&refs)?;
    let tokens: usize = enc.iter().map(|e| e.get_ids().len()).sum();
    let mut f = std::io::BufWriter::new(std::fs::File::create(out)?);
    for v in &vecs {
        f.write_all(&v.to_le_bytes())?;
    }
    f.flush()?;
    let best = times.iter().cloned().fold(f64::MAX, f64::min);
    let tok_best = tok_times.iter().cloned().fold(f64::MAX, f64::min);
    println!(
        "{}",
        serde_json::json!({
            "rows": texts.len(),
            "dim": bb.dim(),
            "tokens": tokens,
            "seconds": times,
            "best_seconds": best,
            "rows_per_s": texts.len() as f64 / best,
            "tokenize_seconds": tok_best,
            "threads": candle_core::utils::get_num_threads(),
            "profile_seconds_per_pass": profile,
        })
    );
    Ok(())
}

fn store_rss(m: &HashMap<String, String>) -> Result<()> {
    let dir = PathBuf::from(m.get("dir").context("--dir")?);
    let rows: usize = get(m, "rows", 1_000_000)?;
    let dim: usize = get(m, "dim", 384)?;
    let store = Store::at(&dir, "synthetic");
    let spec = VersionSpec {
        dataset: "synthetic".into(),
        dataset_fingerprint: format!("synthetic-{rows}x{dim}"),
        rows,
        dim,
        dtype: proxal::features::Dtype::F32,
        chunk_rows: proxal::features::store::DEFAULT_CHUNK_ROWS,
        source: Provenance::synthetic(),
    };
    let t0 = Instant::now();
    let mut w = store.writer(0, spec)?;
    let mut buf = Vec::new();
    for c in w.next_chunk()..w.n_chunks() {
        let r = w.chunk_range(c);
        buf.clear();
        buf.extend((r.start * dim..r.end * dim).map(|k| ((k % 9973) as f32) * 1e-3));
        w.write_chunk(c, &buf)?;
    }
    drop(buf);
    let write_s = t0.elapsed().as_secs_f64();
    let bytes: u64 = w.manifest().chunks.iter().map(|c| c.bytes).sum();
    drop(w);
    let rss_before = status_kb("VmRSS:");
    let t1 = Instant::now();
    let fv = store.open(0, Verify::Sizes)?;
    let open_s = t1.elapsed().as_secs_f64();
    let rss_open = status_kb("VmRSS:");
    // Touch (a) 20 slices of 1,000 rows spread over the file, then (b) 1,000 single rows
    // scattered over every chunk.
    let t2 = Instant::now();
    let mut sum = 0f64;
    for k in 0..20 {
        let start = (k * (rows / 20)).min(rows.saturating_sub(1000));
        let start = start - start % proxal::features::store::DEFAULT_CHUNK_ROWS;
        let s = fv
            .slice(start..start + 1000.min(rows - start))
            .context("slice")?;
        sum += s.iter().map(|&v| v as f64).sum::<f64>();
    }
    let touch_s = t2.elapsed().as_secs_f64();
    let rss_slices = [
        status_kb("VmRSS:"),
        status_kb("RssAnon:"),
        status_kb("RssFile:"),
    ];
    for k in 0..1000 {
        let i = (k * 7919 * 131) % rows;
        sum += fv.row(i).iter().map(|&v| v as f64).sum::<f64>();
    }
    let rss_touched = status_kb("VmRSS:");
    let rss_anon_touched = status_kb("RssAnon:");
    let rss_file_touched = status_kb("RssFile:");
    if sum.is_nan() {
        bail!("nan");
    }
    let t3 = Instant::now();
    fv.verify()?;
    let verify_s = t3.elapsed().as_secs_f64();
    let rss_verified = status_kb("VmRSS:");
    println!(
        "{}",
        serde_json::json!({
            "rows": rows, "dim": dim, "bytes": bytes, "chunks": fv.n_chunks(),
            "write_seconds": write_s, "open_seconds": open_s, "touch_seconds": touch_s,
            "verify_sha256_seconds": verify_s,
            "rss_kb_before_open": rss_before, "rss_kb_after_open": rss_open,
            "rss_kb_after_touch": rss_touched, "rss_kb_after_verify": rss_verified,
            "rss_anon_kb_after_touch": rss_anon_touched, "rss_file_kb_after_touch": rss_file_touched,
            "rss_kb_after_slices": rss_slices[0], "rss_anon_kb_after_slices": rss_slices[1],
            "rss_file_kb_after_slices": rss_slices[2], "slice_rows": 20 * 1000, "scattered_rows": 1000,
            "touched_rows": 20 * 1000 + 1000,
            "page_cache": if m.contains_key("cold") { "dropped before opening" } else { "warm (just written)" },
        })
    );
    Ok(())
}

/// Matmul throughput of the shapes the encoder runs (diagnostics).
fn matmul(m: &HashMap<String, String>) -> Result<()> {
    let rows: usize = get(m, "rows", 512)?;
    for (k, n) in [(384, 1152), (384, 1536), (1536, 384)] {
        let a = candle_core::Tensor::randn(0f32, 1.0, (rows, k), &Device::Cpu)?;
        let b = candle_core::Tensor::randn(0f32, 1.0, (k, n), &Device::Cpu)?;
        for _ in 0..3 {
            a.matmul(&b)?;
        }
        let t = Instant::now();
        let r = 20;
        for _ in 0..r {
            a.matmul(&b)?;
        }
        let dt = t.elapsed().as_secs_f64() / r as f64;
        println!(
            "candle {rows}x{k}x{n}: {:.1} GFLOP/s",
            2.0 * (rows * k * n) as f64 / dt / 1e9
        );
        let pw = proxal::numerics::gemm::PackedWeight::new(&b)?;
        let av = a.flatten_all()?.to_vec1::<f32>()?;
        let want = a.matmul(&b)?.flatten_all()?.to_vec1::<f32>()?;
        let got = pw.matmul(&av, rows)?;
        let err = want
            .iter()
            .zip(&got)
            .map(|(x, y)| (x - y).abs())
            .fold(0f32, f32::max);
        let t = Instant::now();
        for _ in 0..r {
            pw.matmul(&av, rows)?;
        }
        let dt = t.elapsed().as_secs_f64() / r as f64;
        println!(
            "packed {rows}x{k}x{n}: {:.1} GFLOP/s (max |diff| vs candle {err:.1e})",
            2.0 * (rows * k * n) as f64 / dt / 1e9
        );
    }
    Ok(())
}

fn main() -> Result<()> {
    let (cmd, m) = args();
    match cmd.as_str() {
        "embed" => embed(&m),
        "store-rss" => store_rss(&m),
        "matmul" => matmul(&m),
        _ => bail!("usage: bench_embed embed|store-rss [--options]"),
    }
}
