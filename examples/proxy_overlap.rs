//! Same labels, two proxies: for each committed suite svpp/margin run and each selection round,
//! fit the logistic and the least-squares proxy on exactly the rows that run had labelled before
//! that round (in its labelled.jsonl order, as the AL loop fits them), pick a batch with margin
//! from the same unlabelled pool, and report |lsq picks ∩ logreg picks| / batch. The logistic
//! picks are checked against the batch the run actually bought (they must be identical), so the
//! overlap isolates the proxy: unlike comparing two runs round by round, both proxies see the
//! same labelled set every round.
//!
//! Run: `cargo run --example proxy_overlap -- <dataset> <seed>...` (datasets imported as <name>-s
//! with v0 embedded, as `make compare-proxies` leaves them); one JSON object per line on stdout.
use anyhow::{bail, Context, Result};
use proxal::data::{Dataset, Split};
use proxal::features::{RowBlocks, Store, Verify};
use proxal::home::Home;
use proxal::proxy::ProxyConfig;
use proxal::strategy::{Measure, Round, Strategy, Uncertainty};
use std::collections::HashSet;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((ds_name, seeds)) = args.split_first() else {
        bail!("usage: proxy_overlap <dataset> <seed>...");
    };
    let home = Home::from_env();
    let table = Dataset::load(&home, &format!("{ds_name}-s"))?;
    let fv = Store::new(&home, &table.name).open_for(0, &table, Verify::Sizes)?;
    let pool = table.rows_of(Split::Pool);
    let n_classes = table.n_classes();
    for seed in seeds {
        let run = home.root().join(format!(
            "experiments/results/suite-runs/suite-{ds_name}-svpp-margin-s{seed}/labelled.jsonl"
        ));
        let text = std::fs::read_to_string(&run).with_context(|| run.display().to_string())?;
        let mut records = Vec::new();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let v: serde_json::Value = serde_json::from_str(line)?;
            let round = v["round"].as_u64().context("round")? as usize;
            let row = v["row"].as_u64().context("row")? as usize;
            let label = table
                .label_map
                .id(v["label"].as_str().context("label")?)
                .context("a label of this dataset")?;
            records.push((round, row, label));
        }
        let last = records.iter().map(|r| r.0).max().unwrap_or(0);
        for round in 1..=last {
            let before: Vec<&(usize, usize, u32)> =
                records.iter().filter(|r| r.0 < round).collect();
            let rows: Vec<usize> = before.iter().map(|r| r.1).collect();
            let ys: Vec<u32> = before.iter().map(|r| r.2).collect();
            let bought: HashSet<usize> = records
                .iter()
                .filter(|r| r.0 == round)
                .map(|r| r.1)
                .collect();
            let taken: HashSet<usize> = rows.iter().copied().collect();
            let unlabelled: Vec<usize> = pool
                .iter()
                .copied()
                .filter(|r| !taken.contains(r))
                .collect();
            let x = fv.gather(&rows);
            let mut picks = Vec::new();
            for name in ["logreg", "lsq"] {
                let proxy = ProxyConfig::from_name(name)?.fit(x.view(), &ys, n_classes, 0)?;
                let r = Round::new(&fv, &unlabelled, &rows, Some(proxy.as_ref()), 0)?;
                let chosen: HashSet<usize> = Uncertainty(Measure::Margin)
                    .select(&r, bought.len())?
                    .iter()
                    .map(|p| p.row)
                    .collect();
                picks.push(chosen);
            }
            let same = picks[0].intersection(&picks[1]).count();
            println!(
                "{}",
                serde_json::json!({
                    "dataset": ds_name,
                    "seed": seed.parse::<u64>()?,
                    "round": round,
                    "labelled": rows.len(),
                    "batch": bought.len(),
                    "logreg_reproduces_run": picks[0] == bought,
                    "overlap": same as f64 / bought.len() as f64,
                })
            );
        }
    }
    Ok(())
}
