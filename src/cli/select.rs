//! `proxal select`: fit the proxy on the labelled rows, score the unlabelled pool of a feature
//! version, pick a batch with a query strategy and write it (id, text, score, predicted label).
use crate::data::{read_table, Dataset, Split};
use crate::features::{RowBlocks, Store, Verify};
use crate::home::Home;
use crate::numerics::argmax_rows;
use crate::proxy::{LogRegConfig, Proxy, ProxyConfig};
use crate::strategy::{self, Pick, Round, Strategy};
use anyhow::{anyhow, bail, Context, Result};
use polars::prelude::*;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Dataset name (as imported with `proxal data import`).
    #[arg(long)]
    pub data: String,
    /// Feature version to score, e.g. v0.
    #[arg(long, default_value = "v0")]
    pub features: String,
    /// The backbone whose feature store to read (default: assets/minilm; as `proxal embed --model-dir`)
    #[arg(long)]
    pub model_dir: Option<PathBuf>,
    /// Labelled rows so far: a CSV/TSV/JSONL/Parquet file with columns id,label (label names).
    /// Leave out for a cold start (strategies random or typicality).
    #[arg(long)]
    pub labelled: Option<PathBuf>,
    /// random, least-confidence, margin, entropy, badge, coreset, cluster-margin, typicality,
    /// or ups:<one of these> or balanced:<one of these>.
    #[arg(long)]
    pub strategy: String,
    /// Rows to select.
    #[arg(long)]
    pub batch: usize,
    /// Output file (.csv or .parquet); default: CSV on standard output.
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Proxy head: logreg, mlp or lsq.
    #[arg(long, default_value = "logreg")]
    pub proxy: String,
    /// Inverse L2 strength of the logistic proxy (scikit-learn's C).
    #[arg(long, default_value_t = 1.0)]
    pub c: f64,
    /// Check every chunk's sha256 before reading (reads the whole version once).
    #[arg(long)]
    pub verify: bool,
}

/// Parse `v3` or `3`.
pub fn parse_version(s: &str) -> Result<u32> {
    let t = s.trim();
    t.strip_prefix('v')
        .unwrap_or(t)
        .parse::<u32>()
        .map_err(|_| anyhow!("bad feature version '{s}': expected v0, v1, …"))
}

/// Read a labelled file (columns id, label) against the dataset: returns (rows, class ids),
/// sorted by row. Errors name the file, the line and the offending id or label.
pub fn read_labelled(path: &Path, ds: &Dataset) -> Result<(Vec<usize>, Vec<u32>)> {
    let df = read_table(path)?;
    let col = |name: &str| -> Result<Vec<Option<String>>> {
        let c = df.column(name).map_err(|_| {
            anyhow!(
                "{}: no column '{name}' (a labelled file needs columns id,label)",
                path.display()
            )
        })?;
        let c = c.cast(&DataType::String)?;
        Ok(c.str()?.iter().map(|v| v.map(str::to_string)).collect())
    };
    let ids = col("id")?;
    let labels = col("label")?;
    let index: HashMap<&str, usize> = ds
        .ids
        .iter()
        .enumerate()
        .map(|(i, id)| (id.as_str(), i))
        .collect();
    let mut seen: HashMap<usize, u32> = HashMap::new();
    for (k, (id, label)) in ids.iter().zip(&labels).enumerate() {
        let line = k + 2; // 1-based, after the header
        let id = id
            .as_deref()
            .ok_or_else(|| anyhow!("{}: line {line}: empty id", path.display()))?;
        let label = label
            .as_deref()
            .ok_or_else(|| anyhow!("{}: line {line}: id '{id}' has no label", path.display()))?;
        let &row = index.get(id).ok_or_else(|| {
            anyhow!(
                "{}: line {line}: unknown id '{id}' (not in dataset '{}')",
                path.display(),
                ds.name
            )
        })?;
        if ds.splits[row] != Split::Pool {
            bail!(
                "{}: line {line}: id '{id}' is in the {} split; only pool rows can be labelled",
                path.display(),
                ds.splits[row].as_str()
            );
        }
        let class = ds.label_map.id(label).ok_or_else(|| {
            let names = &ds.label_map.names;
            let shown: Vec<&str> = names.iter().take(8).map(String::as_str).collect();
            let more = if names.len() > 8 { ", …" } else { "" };
            anyhow!(
                "{}: line {line}: unknown label '{label}' (dataset '{}' has {} labels: {}{more})",
                path.display(),
                ds.name,
                names.len(),
                shown.join(", ")
            )
        })?;
        if let Some(&prev) = seen.get(&row) {
            if prev != class {
                bail!(
                    "{}: line {line}: id '{id}' is labelled twice, as '{}' and '{label}'",
                    path.display(),
                    ds.label_map.name(prev)
                );
            }
        }
        seen.insert(row, class);
    }
    let mut pairs: Vec<(usize, u32)> = seen.into_iter().collect();
    pairs.sort_unstable();
    Ok(pairs.into_iter().unzip())
}

/// Write the batch as CSV (stdout or a file) or Parquet.
fn write_batch(out: Option<&Path>, df: &mut DataFrame) -> Result<()> {
    match out {
        None => {
            let stdout = std::io::stdout();
            CsvWriter::new(stdout.lock())
                .include_header(true)
                .finish(df)
                .map_err(|e| anyhow!("cannot write the batch: {e}"))?;
        }
        Some(p) => {
            let ext = p
                .extension()
                .and_then(|e| e.to_str())
                .unwrap_or("")
                .to_ascii_lowercase();
            let mut bytes = Vec::new();
            match ext.as_str() {
                "csv" => CsvWriter::new(&mut bytes)
                    .include_header(true)
                    .finish(df)
                    .map_err(|e| anyhow!("cannot encode the batch as CSV: {e}"))?,
                "parquet" | "pq" => {
                    ParquetWriter::new(&mut bytes)
                        .finish(df)
                        .map_err(|e| anyhow!("cannot encode the batch as Parquet: {e}"))?;
                }
                _ => bail!("{}: output must end in .csv or .parquet", p.display()),
            }
            crate::util::atomic_write(p, &bytes)?;
        }
    }
    Ok(())
}

pub fn run(home: &Home, args: Args) -> Result<()> {
    if args.batch == 0 {
        bail!("--batch must be at least 1");
    }
    if let Some(p) = &args.out {
        let ext = p
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or("")
            .to_ascii_lowercase();
        if !matches!(ext.as_str(), "csv" | "parquet" | "pq") {
            bail!("{}: output must end in .csv or .parquet", p.display());
        }
    }
    let mut strat: Box<dyn Strategy> = strategy::from_name(&args.strategy)?;
    let version = parse_version(&args.features)?;
    let ds = Dataset::load(home, &args.data)?;
    let model_dir = home.model_dir_or_default(args.model_dir.as_deref());
    let store = Store::for_model(home, &args.data, &model_dir);
    let verify = if args.verify {
        Verify::Checksums
    } else {
        Verify::Sizes
    };
    let fv = store
        .open_for(version, &ds, verify)
        .with_context(|| format!("features of '{}' v{version}", args.data))?;
    if fv.n_rows() != ds.len() {
        bail!(
            "dimension mismatch: the feature version has {} rows, the dataset {}",
            fv.n_rows(),
            ds.len()
        );
    }
    let (labelled, y) = match &args.labelled {
        Some(p) => read_labelled(p, &ds)?,
        None => (Vec::new(), Vec::new()),
    };
    let pool = ds.rows_of(Split::Pool);

    let t_fit = Instant::now();
    let proxy: Option<Box<dyn Proxy>> = if strat.needs_proxy() {
        if labelled.is_empty() {
            bail!(
                "strategy '{}' needs labelled rows to fit the proxy (--labelled); for a first batch use --strategy random or typicality",
                args.strategy
            );
        }
        let cfg = match ProxyConfig::from_name(&args.proxy)? {
            ProxyConfig::Logreg(_) => ProxyConfig::Logreg(LogRegConfig {
                c: args.c,
                ..Default::default()
            }),
            other => other,
        };
        Some(cfg.fit_rows(&fv, &labelled, &y, ds.n_classes(), args.seed)?)
    } else {
        None
    };
    let fit_s = t_fit.elapsed().as_secs_f64();

    let cache = fv.dir().join("cache");
    let round = Round::new(&fv, &pool, &labelled, proxy.as_deref(), args.seed)?
        .with_cache_dir(&cache)
        .with_labelled_classes(&labelled, &y, ds.n_classes())?;
    let t_sel = Instant::now();
    let picks: Vec<Pick> = strat.select(&round, args.batch)?;
    let sel_s = t_sel.elapsed().as_secs_f64();

    let rows: Vec<usize> = picks.iter().map(|p| p.row).collect();
    let predicted: Vec<Option<String>> = match proxy.as_deref() {
        Some(p) if !rows.is_empty() => {
            let x = fv.gather(&rows);
            argmax_rows(p.predict_proba(x.view()).view())
                .into_iter()
                .map(|(c, _)| ds.label_map.names.get(c as usize).cloned())
                .collect()
        }
        _ => vec![None; rows.len()],
    };
    let ids: Vec<&str> = rows.iter().map(|&r| ds.ids[r].as_str()).collect();
    let texts: Vec<&str> = rows.iter().map(|&r| ds.texts[r].as_str()).collect();
    let scores: Vec<f32> = picks.iter().map(|p| p.score).collect();
    let mut df = DataFrame::new_infer_height(vec![
        Column::new("id".into(), ids),
        Column::new("text".into(), texts),
        Column::new("score".into(), scores),
        Column::new("predicted_label".into(), predicted),
    ])?;
    write_batch(args.out.as_deref(), &mut df)?;
    eprintln!(
        "proxal select: {} rows by {} from {} unlabelled ({} labelled) in {:.2} s (proxy fit {:.2} s, score + select {:.2} s){}",
        rows.len(),
        strat.name(),
        round.unlabelled.len(),
        labelled.len(),
        fit_s + sel_s,
        fit_s,
        sel_s,
        args.out.as_ref().map(|p| format!(" → {}", p.display())).unwrap_or_default()
    );
    Ok(())
}
