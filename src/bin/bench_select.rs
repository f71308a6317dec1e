//! Benchmark of one active-learning selection round (proxy fit + scoring + selection) on a
//! synthetic Gaussian mixture stored in the feature store. Used by `scripts/bench-select.sh`,
//! which runs every case in its own process so peak RSS is per case.
//!
//! ```text
//! bench_select gen --dir D --pool 100000 --labelled 10000     # writes D/features/synthetic/v0
//! bench_select gen --dir H … --dtype f16                       # the same mixture stored in f16
//! bench_select run --dir D --strategy margin --batch 1000      # one JSON line on stdout
//! bench_select run … --export D/peer                           # + .npy files for the peer check
//! bench_select run --dir H … --twin D                          # + the same round on D: pick overlap
//! ```
use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use proxal::features::{Dtype, FeatureVersion, Provenance, RowBlocks, Store, Verify, VersionSpec};
#[path = "../../tests/common/synth.rs"]
mod synth;
use proxal::proxy::{predict_rows, LogReg, ProxyConfig};
use proxal::strategy::ivf::IvfIndex;
use proxal::strategy::subpool::INDEX_SEED;
use proxal::strategy::{
    self, ClusterConfig, ClusterMargin, Clusters, Round, Strategy, Subpool, SubpoolMode,
};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;
use synth::Mixture;

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Write a synthetic mixture (pool + labelled rows) as feature version v0 under --dir.
    Gen(GenArgs),
    /// One selection round on a generated version; prints one JSON line.
    Run(RunArgs),
    /// Build the IVF index of candidate subpooling over a generated version (not cached) and
    /// measure its 10-NN recall against a brute-force scan; prints one JSON line.
    Index(IndexArgs),
}

#[derive(clap::Args)]
struct IndexArgs {
    /// A generated pool (`gen --dir`), or with --version any feature version directory.
    #[arg(long, required_unless_present = "version")]
    dir: Option<PathBuf>,
    /// A feature version directory (e.g. features/clinc150/v0) instead of --dir's.
    #[arg(long)]
    version: Option<PathBuf>,
    /// Query rows (seeded sample), each searched for its nearest other rows.
    #[arg(long, default_value_t = 200)]
    queries: usize,
    #[arg(long, default_value_t = 10)]
    k: usize,
    /// Cells probed per query.
    #[arg(long, default_value_t = 2)]
    nprobe: usize,
}

#[derive(clap::Args)]
struct RunArgs {
    #[arg(long)]
    dir: PathBuf,
    #[arg(long)]
    strategy: String,
    #[arg(long)]
    batch: usize,
    /// logreg, mlp or lsq
    #[arg(long, default_value = "logreg")]
    proxy: String,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Also write the features' probabilities, candidate rows and picks as .npy/.json here.
    #[arg(long)]
    export: Option<PathBuf>,
    /// Also report the proxy's accuracy and mean confidence on 20,000 unlabelled rows.
    #[arg(long)]
    eval: bool,
    /// Inverse L2 strength of the logistic proxy.
    #[arg(long, default_value_t = 1.0)]
    c: f64,
    /// L-BFGS gradient tolerance.
    #[arg(long, default_value_t = 1e-4)]
    gtol: f64,
    /// Switch off temperature calibration.
    #[arg(long)]
    no_calibrate: bool,
    /// BADGE reference mode: draw centres by inverse CDF on these uniforms (a 1-D f64 .npy).
    #[arg(long)]
    uniforms: Option<PathBuf>,
    /// BADGE: count the origin as an initial centre (scikit-activeml's variant).
    #[arg(long)]
    badge_origin: bool,
    /// With --export, also write every feature row as X.npy.
    #[arg(long)]
    export_features: bool,
    /// The same mixture generated in another dtype: run the same round on it too and report how
    /// many picks the two share and both proxies' accuracy (f16 against f32).
    #[arg(long)]
    twin: Option<PathBuf>,
    /// After the timed round, run the strategy again N times alternating the reference
    /// probability path (ndarray matmul + scalar softmax, as before the AVX-512 kernels) with
    /// the current one, in this process; reports the best time of each, whether the picks are
    /// the same, and the largest probability difference on 20,000 rows (logreg proxy only).
    #[arg(long, default_value_t = 0)]
    compare_reference: usize,
    /// Candidate subpooling: `never` (the exhaustive strategy), `auto` (the strategy as its name
    /// gives it: subpooled above 250,000 candidates), `always`.
    #[arg(long, default_value = "never", value_parser = ["never", "auto", "always"])]
    subpool: String,
    /// With --subpool always: the lowest-margin rows of the whole pool put in the subpool (0:
    /// none, so nothing in the round scans the pool).
    #[arg(long)]
    subpool_uncertain: Option<usize>,
}

/// The logistic proxy through its reference (pre-AVX-512) probability path.
struct ReferenceLogReg(LogReg);

impl proxal::proxy::Proxy for ReferenceLogReg {
    fn kind(&self) -> &'static str {
        "logreg"
    }
    fn dim(&self) -> usize {
        self.0.dim()
    }
    fn n_classes(&self) -> usize {
        self.0.n_classes()
    }
    fn predict_proba(&self, x: ndarray::ArrayView2<f32>) -> ndarray::Array2<f32> {
        self.0.predict_proba_reference(x)
    }
}

/// Read a 1-D little-endian f64 .npy file.
fn read_npy_f64(path: &Path) -> Result<Vec<f64>> {
    let b = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    if !b.starts_with(b"\x93NUMPY") || b.len() < 10 {
        bail!("{}: not a .npy file", path.display());
    }
    let (hlen, start) = if b[6] == 1 {
        (u16::from_le_bytes([b[8], b[9]]) as usize, 10)
    } else {
        (u32::from_le_bytes([b[8], b[9], b[10], b[11]]) as usize, 12)
    };
    let header = String::from_utf8_lossy(&b[start..start + hlen]);
    if !header.contains("'<f8'") || header.contains("True") {
        bail!(
            "{}: expected a C-ordered little-endian f64 array",
            path.display()
        );
    }
    Ok(b[start + hlen..]
        .chunks_exact(8)
        .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")))
        .collect())
}

#[derive(clap::Args)]
struct GenArgs {
    #[arg(long)]
    dir: PathBuf,
    #[arg(long)]
    pool: usize,
    #[arg(long, default_value_t = 10_000)]
    labelled: usize,
    #[arg(long, default_value_t = 384)]
    dim: usize,
    #[arg(long, default_value_t = 150)]
    classes: usize,
    #[arg(long, default_value_t = 1.0)]
    separation: f32,
    #[arg(long, default_value_t = 1.2)]
    noise: f32,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Store the rows as f32 or f16 (the same f32 values, rounded).
    #[arg(long, default_value = "f32")]
    dtype: Dtype,
}

#[derive(Serialize, Deserialize)]
struct Setup {
    pool: usize,
    labelled_rows: Vec<usize>,
    labels: Vec<u32>,
    classes: usize,
    dim: usize,
    separation: f32,
    noise: f32,
    seed: u64,
}

impl Setup {
    /// The mixture the pool was generated from (its classes are the rows' labels).
    fn mixture(&self) -> Mixture {
        Mixture::new(
            self.dim,
            self.classes,
            self.separation,
            self.noise,
            self.seed,
        )
    }
}

fn store_dir(dir: &Path) -> PathBuf {
    dir.join("features").join("synthetic")
}

fn gen(a: &GenArgs) -> Result<()> {
    let GenArgs {
        dir,
        pool,
        labelled,
        dim,
        classes,
        separation: sep,
        noise,
        seed,
        dtype,
    } = a;
    let (dir, pool, labelled, dim, classes, sep, noise, seed) = (
        dir.as_path(),
        *pool,
        *labelled,
        *dim,
        *classes,
        *sep,
        *noise,
        *seed,
    );
    let t = Instant::now();
    let rows = pool + labelled;
    let mix = Mixture::new(dim, classes, sep, noise, seed);
    let store = Store::at(store_dir(dir), "synthetic");
    let chunk_rows = 4096;
    let spec = VersionSpec {
        dataset: "synthetic".into(),
        dataset_fingerprint: format!("mixture-{rows}-{dim}-{classes}-{sep}-{noise}-{seed}"),
        rows,
        dim,
        dtype: *dtype,
        chunk_rows,
        source: Provenance {
            backbone: "synthetic-gaussian-mixture".into(),
            backbone_dir: String::new(),
            weights_sha256: String::new(),
            tokenizer_sha256: String::new(),
            checkpoint: None,
            pooling: "none".into(),
            normalize: false,
            max_len: 0,
        },
    };
    let mut w = store.writer(0, spec)?;
    let centres = mix.centres();
    let mut buf = vec![0.0f32; chunk_rows * dim];
    for c in w.next_chunk()..w.n_chunks() {
        let r = w.chunk_range(c);
        let data = &mut buf[..r.len() * dim];
        mix.fill_rows(&centres, r.start, data);
        w.write_chunk(c, data)?;
    }
    let mut rng = proxal::util::rng(seed ^ 0x1abe1);
    let mut lab = rand::seq::index::sample(&mut rng, rows, labelled).into_vec();
    lab.sort_unstable();
    let labels = lab.iter().map(|&i| mix.label(i)).collect();
    let setup = Setup {
        pool,
        labelled_rows: lab,
        labels,
        classes,
        dim,
        separation: sep,
        noise,
        seed,
    };
    proxal::util::atomic_write(&dir.join("setup.json"), &serde_json::to_vec(&setup)?)?;
    eprintln!(
        "generated {rows} × {dim} rows in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    Ok(())
}

fn write_npy(path: &Path, descr: &str, shape: &[usize], bytes: &[u8]) -> Result<()> {
    let shape_s = match shape {
        [n] => format!("({n},)"),
        _ => format!(
            "({})",
            shape
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let mut header =
        format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape_s}, }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut f = std::io::BufWriter::new(
        std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?,
    );
    f.write_all(b"\x93NUMPY\x01\x00")?;
    f.write_all(&(header.len() as u16).to_le_bytes())?;
    f.write_all(header.as_bytes())?;
    f.write_all(bytes)?;
    f.flush()?;
    Ok(())
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn i64_bytes(v: &[usize]) -> Vec<u8> {
    v.iter().flat_map(|&x| (x as i64).to_le_bytes()).collect()
}

fn rss_anon_bytes() -> u64 {
    let Ok(s) = std::fs::read_to_string("/proc/self/status") else {
        return 0;
    };
    s.lines()
        .find_map(|l| l.strip_prefix("RssAnon:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

fn run(a: &RunArgs) -> Result<()> {
    let (dir, name, batch, proxy_name, seed, export, eval) = (
        a.dir.as_path(),
        a.strategy.as_str(),
        a.batch,
        a.proxy.as_str(),
        a.seed,
        a.export.as_deref(),
        a.eval,
    );
    let t_open = Instant::now();
    let setup: Setup =
        serde_json::from_slice(&std::fs::read(dir.join("setup.json")).context("run `gen` first")?)?;
    let fv = FeatureVersion::open(&store_dir(dir).join("v0"), Verify::Sizes)?;
    let open_s = t_open.elapsed().as_secs_f64();
    let all: Vec<usize> = (0..fv.n_rows()).collect();
    let needs_proxy = strategy::from_name(name)?.needs_proxy();

    let t_fit = Instant::now();
    let Fitted {
        proxy,
        logreg: fitted_logreg,
        gather_s,
        iters: proxy_iters,
    } = fit_proxy(a, &fv, &setup, needs_proxy)?;
    let fit_s = t_fit.elapsed().as_secs_f64();

    let round = Round::new(&fv, &all, &setup.labelled_rows, proxy.as_deref(), seed)?
        .with_labelled_classes(&setup.labelled_rows, &setup.labels, setup.classes)?;
    let (picks, select_s, cluster_s, subpool) = if a.subpool == "always" {
        let (picks, select_s, info) = run_subpooled(a, &fv, &round, &setup)?;
        (picks, select_s, 0.0, info)
    } else {
        let (mut strat, cluster_s) = make_strategy(a, &fv, &all)?;
        let t_sel = Instant::now();
        let picks = strat.select(&round, batch)?;
        (
            picks,
            t_sel.elapsed().as_secs_f64(),
            cluster_s,
            serde_json::Value::Null,
        )
    };
    if picks.len() != batch.min(round.unlabelled.len()) {
        bail!("{name} returned {} picks, expected {batch}", picks.len());
    }
    let fitted_logreg = fitted_logreg.filter(|_| a.compare_reference > 0);
    let mut comparison = serde_json::Value::Null;
    if let (Some(lr), Some(p)) = (fitted_logreg, proxy.as_deref()) {
        let reference = ReferenceLogReg(lr);
        let rr = Round::new(&fv, &all, &setup.labelled_rows, Some(&reference), seed)?;
        let (mut best_ref, mut best_new) = (f64::INFINITY, f64::INFINITY);
        let mut ref_picks = Vec::new();
        let mut new_picks = Vec::new();
        for _ in 0..a.compare_reference {
            for (r, best, out) in [
                (&rr, &mut best_ref, &mut ref_picks),
                (&round, &mut best_new, &mut new_picks),
            ] {
                let mut s = strategy::from_name(name)?;
                let t = Instant::now();
                *out = s.select(r, batch)?;
                *best = best.min(t.elapsed().as_secs_f64());
            }
        }
        let rows = |v: &[strategy::Pick]| v.iter().map(|p| p.row).collect::<Vec<_>>();
        let (rp, np) = (rows(&ref_picks), rows(&new_picks));
        let common = shared(&new_picks, &ref_picks);
        let sample: Vec<usize> = round
            .unlabelled
            .iter()
            .copied()
            .step_by((round.unlabelled.len() / 20_000).max(1))
            .collect();
        let pn = predict_rows(p, &fv, &sample);
        let pr = predict_rows(&reference, &fv, &sample);
        let max_diff = pn
            .iter()
            .zip(pr.iter())
            .map(|(x, y)| (x - y).abs())
            .fold(0.0f32, f32::max);
        let max_rel = pn
            .iter()
            .zip(pr.iter())
            .filter(|(_, y)| **y > 1e-30)
            .map(|(x, y)| ((x - y) / y).abs())
            .fold(0.0f32, f32::max);
        let only = |a: &[strategy::Pick], b: &[usize]| {
            a.iter()
                .filter(|p| !b.contains(&p.row))
                .map(|p| (p.row, p.score))
                .collect::<Vec<_>>()
        };
        comparison = serde_json::json!({
            "only_reference": only(&ref_picks, &np),
            "only_new": only(&new_picks, &rp),
            "last_score_reference": ref_picks.last().map(|p| p.score),
            "last_score_new": new_picks.last().map(|p| p.score),
            "repeats": a.compare_reference,
            "reference_select_seconds": best_ref,
            "select_seconds": best_new,
            "speed_up": best_ref / best_new,
            "same_picks_in_order": rp == np,
            "common_picks": common,
            "first_timed_picks_match": rows(&picks) == np,
            "max_abs_proba_diff": max_diff,
            "max_rel_proba_diff": max_rel,
            "rows_compared": sample.len(),
        });
    }
    let mut quality = serde_json::Value::Null;
    if let (true, Some(p)) = (eval, proxy.as_deref()) {
        quality = proxy_quality(p, &fv, &setup, &round.unlabelled);
    }
    let mut twin = serde_json::Value::Null;
    if let Some(tdir) = &a.twin {
        twin = run_twin(
            a,
            tdir,
            &setup,
            &round.unlabelled,
            &picks,
            proxy.as_deref(),
            &fv,
        )?;
    }
    let out = serde_json::json!({
        "proxy_quality": quality,
        "strategy": match (a.subpool.as_str(), a.subpool_uncertain) {
            ("always", Some(0)) => format!("subpool:{name} (no scan)"),
            ("always", _) => format!("subpool:{name}"),
            _ => name.to_string(),
        },
        "proxy": if needs_proxy { proxy_name } else { "none" },
        "pool_rows": round.unlabelled.len(),
        "labelled": round.labelled.len(),
        "classes": setup.classes,
        "dim": fv.dim(),
        "dtype": fv.dtype().name(),
        "feature_bytes": fv.manifest().chunks.iter().map(|c| c.bytes).sum::<u64>(),
        "batch": batch,
        "open_seconds": open_s,
        "fit_seconds": fit_s,
        "gather_seconds": gather_s,
        "proxy_fit": proxy_iters,
        "cluster_seconds": cluster_s,
        "select_seconds": select_s,
        "seconds": fit_s + select_s,
        "threads": rayon::current_num_threads(),
        "peak_rss_bytes": proxal::util::peak_rss_bytes(),
        "rss_anon_bytes": rss_anon_bytes(),
        "features": "feature store (mmapped safetensors chunks)",
        "compare_reference": comparison,
        "twin": twin,
        "subpool_mode": a.subpool,
        "subpool": subpool,
    });
    println!("{out}");
    if let Some(ex) = export {
        std::fs::create_dir_all(ex)?;
        let picks_rows: Vec<usize> = picks.iter().map(|p| p.row).collect();
        write_npy(
            &ex.join("candidates.npy"),
            "<i8",
            &[round.unlabelled.len()],
            &i64_bytes(&round.unlabelled),
        )?;
        write_npy(
            &ex.join("labelled.npy"),
            "<i8",
            &[round.labelled.len()],
            &i64_bytes(&round.labelled),
        )?;
        let lab: Vec<usize> = setup.labels.iter().map(|&l| l as usize).collect();
        write_npy(
            &ex.join("labels.npy"),
            "<i8",
            &[lab.len()],
            &i64_bytes(&lab),
        )?;
        write_npy(
            &ex.join(format!("picks-{name}.npy")),
            "<i8",
            &[picks_rows.len()],
            &i64_bytes(&picks_rows),
        )?;
        if a.export_features {
            let x = fv.gather(&all);
            write_npy(
                &ex.join("X.npy"),
                "<f4",
                &[x.nrows(), x.ncols()],
                &f32_bytes(x.as_slice().expect("standard layout")),
            )?;
        }
        if let Some(p) = proxy.as_deref() {
            let probs = predict_rows(p, &fv, &round.unlabelled);
            write_npy(
                &ex.join("proba.npy"),
                "<f4",
                &[probs.nrows(), probs.ncols()],
                &f32_bytes(probs.as_slice().expect("standard layout")),
            )?;
        }
    }
    Ok(())
}

/// A fitted proxy (none for strategies without one) and what its fit reported.
struct Fitted {
    proxy: Option<Box<dyn proxal::proxy::Proxy>>,
    logreg: Option<LogReg>,
    gather_s: f64,
    iters: Option<serde_json::Value>,
}

/// The round's proxy on the labelled rows of `fv`, as `a` configures it.
fn fit_proxy(a: &RunArgs, fv: &FeatureVersion, setup: &Setup, needs: bool) -> Result<Fitted> {
    let mut out = Fitted {
        proxy: None,
        logreg: None,
        gather_s: 0.0,
        iters: None,
    };
    if !needs {
        return Ok(out);
    }
    let t = Instant::now();
    let cfg = ProxyConfig::from_name(&a.proxy)?;
    if let ProxyConfig::Logreg(lc) = &cfg {
        let lc = proxal::proxy::LogRegConfig {
            c: a.c,
            gtol: a.gtol,
            calibrate: !a.no_calibrate,
            ..lc.clone()
        };
        let x = fv.gather(&setup.labelled_rows);
        out.gather_s = t.elapsed().as_secs_f64();
        let m = LogReg::fit(&lc, x.view(), &setup.labels, setup.classes, None)?;
        out.iters = Some(
            serde_json::json!({"iterations": m.iterations, "evaluations": m.evaluations, "converged": m.converged, "grad_max": m.grad_max, "loss": m.loss}),
        );
        out.logreg = Some(m.clone());
        out.proxy = Some(Box::new(m));
    } else {
        out.proxy = Some(cfg.fit_rows(
            fv,
            &setup.labelled_rows,
            &setup.labels,
            setup.classes,
            a.seed,
        )?);
    }
    Ok(out)
}

/// The strategy `a` names (Cluster-Margin with its clusters computed on `fv`: their seconds).
/// One subpooled round: the IVF index built (or loaded from the version's cache) and timed on
/// its own, then the round; reports how the subpool was made and how many of exhaustive
/// margin's 1,000 lowest-margin candidates it holds.
fn run_subpooled(
    a: &RunArgs,
    fv: &FeatureVersion,
    round: &Round,
    setup: &Setup,
) -> Result<(Vec<strategy::Pick>, f64, serde_json::Value)> {
    let mut sp = Subpool::new(&a.strategy, SubpoolMode::Always)?;
    if let Some(u) = a.subpool_uncertain {
        sp.config.uncertain = u;
    }
    let t = Instant::now();
    let ix = IvfIndex::cached(fv, &sp.config.ivf, INDEX_SEED, &fv.dir().join("cache"))?;
    let index_s = t.elapsed().as_secs_f64();
    let built = ix.build_seconds > 0.0;
    let cells = ix.cells();
    sp = sp.with_index(Arc::new(ix));
    let t_sel = Instant::now();
    let picks = sp.select(round, a.batch)?;
    let select_s = t_sel.elapsed().as_secs_f64();
    let contained = match round.proxy {
        Some(_) => {
            let top = strategy::from_name("margin")?.select(round, 1000)?;
            let n = top
                .iter()
                .filter(|p| sp.last_pool.binary_search(&p.row).is_ok())
                .count();
            serde_json::json!(n)
        }
        None => serde_json::Value::Null,
    };
    let first = sp.last.clone();
    // The next round, as a run would have it: the picks labelled (with the mixture's classes),
    // the same proxy (refitting it is a proxy fit's cost, timed above).
    let mix = setup.mixture();
    let mut labelled = setup.labelled_rows.clone();
    labelled.extend(picks.iter().map(|p| p.row));
    let ys: Vec<u32> = labelled.iter().map(|&r| mix.label(r)).collect();
    let all: Vec<usize> = (0..fv.n_rows()).collect();
    let next = Round::new(fv, &all, &labelled, round.proxy, a.seed + 1)?.with_labelled_classes(
        &labelled,
        &ys,
        setup.classes,
    )?;
    let t_next = Instant::now();
    let next_picks = sp.select(&next, a.batch)?;
    let next_s = t_next.elapsed().as_secs_f64();
    if next_picks.len() != a.batch {
        bail!("the second round returned {} picks", next_picks.len());
    }
    let info = serde_json::json!({
        "index_seconds": index_s,
        "index_built": built,
        "cells": cells,
        "config": format!("{:?}", sp.config),
        "round": first,
        "margin_top1000_in_subpool": contained,
        "next_round_select_seconds": next_s,
        "next_round": sp.last,
    });
    Ok((picks, select_s, info))
}

fn index(a: &IndexArgs) -> Result<()> {
    let dir = match (&a.version, &a.dir) {
        (Some(v), _) => v.clone(),
        (None, Some(d)) => store_dir(d).join("v0"),
        (None, None) => bail!("give --dir or --version"),
    };
    let fv = FeatureVersion::open(&dir, Verify::Sizes)?;
    let cfg = proxal::strategy::ivf::IvfConfig::default();
    let t = Instant::now();
    let ix = IvfIndex::build(&fv, &cfg, INDEX_SEED)?;
    let build_s = t.elapsed().as_secs_f64();
    let n = fv.n_rows();
    let mut rng = proxal::util::rng(7);
    let mut queries = rand::seq::index::sample(&mut rng, n, a.queries.min(n)).into_vec();
    queries.sort_unstable();
    let t = Instant::now();
    let mut found = Vec::new();
    for &q in &queries {
        // One query at a time, as an HNSW search answers it.
        let r = ix.knn(&fv, &[q], a.k, a.nprobe, &|r| r != q);
        found.push(r.into_iter().next().unwrap_or_default());
    }
    let query_s = t.elapsed().as_secs_f64();
    // Brute force: the exact k nearest other rows of each query.
    let all: Vec<usize> = (0..n).collect();
    let qx = fv.gather(&queries);
    let exact: Vec<Vec<Vec<(f32, usize)>>> = proxal::features::map_rows(&fv, &all, |rows, x| {
        queries
            .iter()
            .enumerate()
            .map(|(qi, &q)| {
                let mut d: Vec<(f32, usize)> = rows
                    .iter()
                    .zip(x.rows())
                    .filter(|(&r, _)| r != q)
                    .map(|(&r, xr)| {
                        let s: f32 = xr
                            .iter()
                            .zip(qx.row(qi).iter())
                            .map(|(a, b)| (a - b) * (a - b))
                            .sum();
                        (s, r)
                    })
                    .collect();
                d.sort_by(|x, y| x.0.total_cmp(&y.0).then(x.1.cmp(&y.1)));
                d.truncate(a.k);
                d
            })
            .collect()
    });
    let mut hits = 0usize;
    for (qi, got) in found.iter().enumerate() {
        let mut best: Vec<(f32, usize)> = exact.iter().flat_map(|c| c[qi].clone()).collect();
        best.sort_by(|x, y| x.0.total_cmp(&y.0).then(x.1.cmp(&y.1)));
        best.truncate(a.k);
        hits += got
            .iter()
            .filter(|g| best.iter().any(|b| b.1 == g.1))
            .count();
    }
    let out = serde_json::json!({
        "index": "proxal IVF (src/strategy/ivf.rs)",
        "version": dir.display().to_string(),
        "rows": n,
        "dim": fv.dim(),
        "dtype": fv.dtype().name(),
        "cells": ix.cells(),
        "nprobe": a.nprobe,
        "build_seconds": build_s,
        "queries": queries.len(),
        "k": a.k,
        "query_seconds": query_s,
        "recall": hits as f64 / (queries.len() * a.k) as f64,
        "query_rows": queries,
        "threads": rayon::current_num_threads(),
        "peak_rss_bytes": proxal::util::peak_rss_bytes(),
    });
    println!("{out}");
    Ok(())
}

fn make_strategy(
    a: &RunArgs,
    fv: &FeatureVersion,
    all: &[usize],
) -> Result<(Box<dyn strategy::Strategy>, f64)> {
    if a.subpool == "auto" {
        return Ok((strategy::from_name(&a.strategy)?, 0.0));
    }
    Ok(match a.strategy.as_str() {
        "cluster-margin" => {
            let t = Instant::now();
            let c = Clusters::compute(fv, all, &ClusterConfig::default(), a.seed)?;
            let s = t.elapsed().as_secs_f64();
            (Box::new(ClusterMargin::with_clusters(Arc::new(c))), s)
        }
        "badge" => {
            let uniforms = match &a.uniforms {
                Some(u) => Some(read_npy_f64(u)?),
                None => None,
            };
            let b = proxal::strategy::Badge {
                uniforms,
                origin_centre: a.badge_origin,
                ..Default::default()
            };
            (Box::new(b), 0.0)
        }
        name => (strategy::from_name(&format!("exhaustive:{name}"))?, 0.0),
    })
}

/// The proxy's accuracy and mean confidence on (up to) 20,000 of the `unlabelled` rows, against
/// the mixture's true classes.
fn proxy_quality(
    p: &dyn proxal::proxy::Proxy,
    fv: &FeatureVersion,
    setup: &Setup,
    unlabelled: &[usize],
) -> serde_json::Value {
    let mix = setup.mixture();
    let rows: Vec<usize> = unlabelled
        .iter()
        .copied()
        .step_by((unlabelled.len() / 20_000).max(1))
        .collect();
    let probs = predict_rows(p, fv, &rows);
    let am = proxal::numerics::argmax_rows(probs.view());
    let acc = rows
        .iter()
        .zip(&am)
        .filter(|(&r, &(c, _))| mix.label(r) == c)
        .count() as f64
        / rows.len() as f64;
    let conf = am.iter().map(|&(_, v)| v as f64).sum::<f64>() / rows.len() as f64;
    serde_json::json!({"accuracy": acc, "mean_confidence": conf, "rows": rows.len()})
}

/// How many of `a`'s picked rows `b` picked too.
fn shared(a: &[strategy::Pick], b: &[strategy::Pick]) -> usize {
    let b: std::collections::HashSet<usize> = b.iter().map(|p| p.row).collect();
    a.iter().filter(|p| b.contains(&p.row)).count()
}

/// The same round on `dir`, the same mixture stored in another dtype: how many of `picks` it
/// shares, and both proxies' quality.
fn run_twin(
    a: &RunArgs,
    dir: &Path,
    setup: &Setup,
    unlabelled: &[usize],
    picks: &[strategy::Pick],
    proxy: Option<&dyn proxal::proxy::Proxy>,
    fv: &FeatureVersion,
) -> Result<serde_json::Value> {
    let other: Setup = serde_json::from_slice(
        &std::fs::read(dir.join("setup.json")).context("twin: run `gen` first")?,
    )?;
    let tv = FeatureVersion::open(&store_dir(dir).join("v0"), Verify::Sizes)?;
    // The fingerprint names the mixture (rows, dim, classes, separation, noise, seed), not the
    // dtype.
    if other.labelled_rows != setup.labelled_rows
        || tv.manifest().dataset_fingerprint != fv.manifest().dataset_fingerprint
    {
        bail!("{}: the twin is another mixture", dir.display());
    }
    let all: Vec<usize> = (0..tv.n_rows()).collect();
    let needs = strategy::from_name(&a.strategy)?.needs_proxy();
    let fitted = fit_proxy(a, &tv, setup, needs)?;
    let round = Round::new(
        &tv,
        &all,
        &setup.labelled_rows,
        fitted.proxy.as_deref(),
        a.seed,
    )?;
    let (mut strat, _) = make_strategy(a, &tv, &all)?;
    let t = Instant::now();
    let twin_picks = strat.select(&round, a.batch)?;
    let select_s = t.elapsed().as_secs_f64();
    let common = shared(&twin_picks, picks);
    let quality = |p: Option<&dyn proxal::proxy::Proxy>, f: &FeatureVersion| {
        p.map_or(serde_json::Value::Null, |p| {
            proxy_quality(p, f, setup, unlabelled)
        })
    };
    // Uncertainty strategies: how uncertain the f32 model finds our picks (the same measure,
    // recomputed for both pick sets with the twin's proxy on the twin's rows), and how many of
    // them lie within the twin's top 2 × batch.
    use strategy::Measure;
    let measure = [Measure::Margin, Measure::LeastConfidence, Measure::Entropy]
        .into_iter()
        .find(|m| m.name() == a.strategy);
    let mut by_twin = serde_json::Value::Null;
    if let (Some(m), Some(tp)) = (measure, fitted.proxy.as_deref()) {
        let mean_score = |picks: &[strategy::Pick]| {
            let mut rows: Vec<usize> = picks.iter().map(|p| p.row).collect();
            rows.sort_unstable();
            let p = predict_rows(tp, &tv, &rows);
            (0..rows.len())
                .map(|i| m.score(p.row(i)) as f64)
                .sum::<f64>()
                / rows.len() as f64
        };
        let (mut wide_strat, _) = make_strategy(a, &tv, &all)?;
        let wide = wide_strat.select(&round, 2 * a.batch)?;
        by_twin = serde_json::json!({
            "measure": m.name(),
            "mean_twin_score_of_picks": mean_score(picks),
            "mean_twin_score_of_twin_picks": mean_score(&twin_picks),
            "picks_in_twin_top_2x": shared(picks, &wide),
        });
    }
    // BADGE samples its centres: for scale, how many picks two f32 rounds share whose only
    // difference is the sampling seed.
    let mut reseeded = serde_json::Value::Null;
    if a.strategy == "badge" {
        let r2 = Round::new(
            &tv,
            &all,
            &setup.labelled_rows,
            fitted.proxy.as_deref(),
            a.seed + 1,
        )?;
        let (mut s2, _) = make_strategy(a, &tv, &all)?;
        reseeded = serde_json::json!(shared(&s2.select(&r2, a.batch)?, &twin_picks));
    }
    Ok(serde_json::json!({
        "dtype": tv.dtype().name(),
        "scored_by_twin": by_twin,
        "twin_reseeded_common_picks": reseeded,
        "common_picks": common,
        "picks": picks.len(),
        "select_seconds": select_s,
        "proxy_quality": quality(proxy, fv),
        "twin_proxy_quality": quality(fitted.proxy.as_deref(), &tv),
    }))
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Gen(a) => gen(&a),
        Cmd::Run(a) => run(&a),
        Cmd::Index(a) => index(&a),
    }
}
