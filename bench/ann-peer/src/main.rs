//! Build an HNSW index (hnsw_rs) over the rows of a proxal feature version and measure its build
//! time and its 10-NN recall against a brute-force scan, for the same seeded queries as
//! `bench_select index` (the query rows are read from that run's JSON). Prints one JSON line.
//!
//! ann-peer VERSION_DIR QUERIES_JSON [M] [EF_CONSTRUCTION] [EF_SEARCH]
use anndists::dist::DistL2;
use hnsw_rs::prelude::*;
use std::time::Instant;

fn read_rows(dir: &std::path::Path) -> (Vec<Vec<f32>>, usize) {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("version directory")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "safetensors"))
        .collect();
    files.sort();
    let mut rows = Vec::new();
    let mut dim = 0;
    for f in files {
        let bytes = std::fs::read(&f).expect("chunk");
        let st = safetensors::SafeTensors::deserialize(&bytes).expect("safetensors chunk");
        let t = st.tensor("features").expect("tensor 'features'");
        dim = t.shape()[1];
        let vals: Vec<f32> = match t.dtype() {
            safetensors::Dtype::F32 => t
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
                .collect(),
            safetensors::Dtype::F16 => t
                .data()
                .chunks_exact(2)
                .map(|b| half::f16::from_le_bytes(b.try_into().unwrap()).to_f32())
                .collect(),
            other => panic!("unexpected dtype {other:?}"),
        };
        rows.extend(vals.chunks_exact(dim).map(|r| r.to_vec()));
    }
    (rows, dim)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let dir = std::path::Path::new(&args[1]);
    let ours: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&args[2]).expect("queries json")).unwrap();
    let m: usize = args.get(3).map_or(16, |v| v.parse().unwrap());
    let ef_c: usize = args.get(4).map_or(200, |v| v.parse().unwrap());
    let ef_s: usize = args.get(5).map_or(64, |v| v.parse().unwrap());
    let k = ours["k"].as_u64().unwrap() as usize;
    let queries: Vec<usize> = ours["query_rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect();
    let (rows, dim) = read_rows(dir);
    let n = rows.len();
    let layers = 16.min((n as f32).ln().trunc() as usize);
    let t = Instant::now();
    let hnsw = Hnsw::<f32, DistL2>::new(m, n, layers, ef_c, DistL2 {});
    let data: Vec<(&Vec<f32>, usize)> = rows.iter().zip(0..n).collect();
    hnsw.parallel_insert(&data);
    let build_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let found: Vec<Vec<usize>> = queries
        .iter()
        .map(|&q| {
            hnsw.search(&rows[q], k + 1, ef_s.max(k + 1))
                .into_iter()
                .map(|nb| nb.d_id)
                .filter(|&r| r != q)
                .take(k)
                .collect()
        })
        .collect();
    let query_s = t.elapsed().as_secs_f64();
    let mut hits = 0;
    for (qi, &q) in queries.iter().enumerate() {
        let mut d: Vec<(f32, usize)> = (0..n)
            .filter(|&r| r != q)
            .map(|r| {
                let s: f32 = rows[r]
                    .iter()
                    .zip(&rows[q])
                    .map(|(a, b)| (a - b) * (a - b))
                    .sum();
                (s, r)
            })
            .collect();
        d.sort_by(|x, y| x.0.total_cmp(&y.0).then(x.1.cmp(&y.1)));
        let best: Vec<usize> = d[..k].iter().map(|p| p.1).collect();
        hits += found[qi].iter().filter(|r| best.contains(r)).count();
    }
    let out = serde_json::json!({
        "index": "hnsw_rs 0.3 (HNSW)",
        "version": dir.display().to_string(),
        "rows": n,
        "dim": dim,
        "m": m,
        "ef_construction": ef_c,
        "ef_search": ef_s,
        "build_seconds": build_s,
        "queries": queries.len(),
        "k": k,
        "query_seconds": query_s,
        "recall": hits as f64 / (queries.len() * k) as f64,
        "threads": std::thread::available_parallelism().map_or(1, |p| p.get()),
    });
    println!("{out}");
}
