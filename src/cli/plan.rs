//! `proxal plan`: project each policy's compute and money before the first label
//! (docs/PLAN.md), and `proxal plan --check` against finished runs.
use crate::plan::{check, project, Rates, Schedule};
use anyhow::{bail, Result};
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Pool rows active learning selects from
    #[arg(long, required_unless_present = "check")]
    pub pool: Option<usize>,
    /// Labels to buy in all
    #[arg(long, required_unless_present = "check")]
    pub labels: Option<usize>,
    /// Labels per batch
    #[arg(long, default_value_t = 200)]
    pub batch: usize,
    /// Initial random labels (default: one batch)
    #[arg(long)]
    pub initial: Option<usize>,
    /// Held-out rows embedded and scored besides the pool
    #[arg(long, default_value_t = 0)]
    pub test: usize,
    /// asvp: align every this many rounds
    #[arg(long, default_value_t = 2)]
    pub align_every: usize,
    /// Run directories whose cost ledgers give this machine's rates on this data
    #[arg(long = "rates-from", num_args = 1.., conflicts_with = "measure_on")]
    pub rates_from: Vec<PathBuf>,
    /// Measure the rates on this machine on a sample of this imported dataset's pool texts
    #[arg(long)]
    pub measure_on: Option<String>,
    /// Texts in the --measure-on sample
    #[arg(long, default_value_t = 256)]
    pub sample: usize,
    /// Backbone for --measure-on (default: the fetched all-MiniLM-L6-v2)
    #[arg(long)]
    pub model_dir: Option<PathBuf>,
    /// US dollars per label
    #[arg(long, default_value_t = 0.10)]
    pub price_per_label: f64,
    /// US dollars per compute hour
    #[arg(long, default_value_t = 0.085)]
    pub price_per_hour: f64,
    /// US dollars per hour an annotator waits for the next batch (0: waiting is free)
    #[arg(long, default_value_t = 0.0)]
    pub price_per_annotator_hour: f64,
    /// Instead of planning: project these finished runs from the others' ledgers and compare
    #[arg(long, num_args = 1.., conflicts_with_all = ["pool", "labels", "rates_from"])]
    pub check: Vec<PathBuf>,
    /// Write the --check table (markdown) here too
    #[arg(long, requires = "check")]
    pub out: Option<PathBuf>,
}

pub fn run(home: &crate::home::Home, a: Args) -> Result<()> {
    if !a.check.is_empty() {
        return run_check(&a.check, a.out.as_deref());
    }
    let (Some(pool), Some(labels)) = (a.pool, a.labels) else {
        bail!("--pool and --labels are required");
    };
    if a.rates_from.is_empty() && a.measure_on.is_none() {
        bail!("no rates: give --rates-from <run directories> (earlier runs on this machine and data) or --measure-on <dataset> (measured now on a sample of its texts)");
    }
    let initial = a.initial.unwrap_or(a.batch);
    if labels < initial
        || a.batch == 0
        || labels > pool
        || !(labels - initial).is_multiple_of(a.batch)
    {
        bail!(
            "--labels must be --initial ({initial}) plus whole batches of --batch ({}), at most --pool ({pool})",
            a.batch
        );
    }
    let (rates, source) = match &a.measure_on {
        Some(name) => measured(home, name, &a)?,
        None => {
            let runs = load_each(&a.rates_from)?;
            let rates = Rates::from_ledgers(runs.iter().map(|r| r.ledger.as_slice()))?;
            (rates, format!("the ledgers of {} earlier runs", runs.len()))
        }
    };
    let schedule = Schedule {
        embed_rows: pool + a.test,
        pool,
        test: a.test,
        initial,
        batch: a.batch,
        rounds: (labels - initial) / a.batch,
        align_every: a.align_every,
    };
    println!("{}", render_plan(&schedule, &rates, &source, &a)?);
    Ok(())
}

/// Rates measured now on a seeded sample of `name`'s pool texts (docs/PLAN.md).
fn measured(home: &crate::home::Home, name: &str, a: &Args) -> Result<(Rates, String)> {
    use rand::seq::SliceRandom;
    let ds = crate::data::Dataset::load(home, name)?;
    let mut rows = ds.rows_of(crate::data::Split::Pool);
    rows.shuffle(&mut crate::util::rng(0));
    rows.truncate(a.sample);
    let texts: Vec<&str> = rows.iter().map(|&r| ds.texts[r].as_str()).collect();
    let labels: Option<Vec<u32>> = rows.iter().map(|&r| ds.labels[r]).collect();
    let model_dir = a
        .model_dir
        .clone()
        .unwrap_or_else(|| home.default_model_dir());
    eprintln!(
        "proxal plan: measuring on {} texts of '{name}' (an embedding pass, fine-tuning epochs on two sample sizes, proxy fits)…",
        texts.len()
    );
    let train = crate::train::TrainConfig::default();
    let rates = crate::plan::measure(
        &model_dir,
        &texts,
        labels.as_deref(),
        ds.n_classes(),
        &train,
        64,
    )?;
    Ok((
        rates,
        format!(
            "measured now on {} texts of dataset '{name}' ({} epochs of fine-tuning, max_len {})",
            texts.len(),
            train.epochs,
            train.max_len
        ),
    ))
}

fn render_plan(s: &Schedule, rates: &Rates, source: &str, a: &Args) -> Result<String> {
    let labels = s.initial + s.rounds * s.batch;
    let money = |p: &crate::plan::Projection, price_label: f64| {
        let wait: f64 = p.wait_seconds.iter().sum();
        p.compute_seconds / 3600.0 * a.price_per_hour
            + labels as f64 * price_label
            + wait / 3600.0 * a.price_per_annotator_hour
    };
    let policies = ["random", "svpp", "asvp", "standard"];
    let projections: Vec<_> = policies
        .iter()
        .map(|p| project(p, s, rates))
        .collect::<Result<_>>()?;
    let standard = money(&projections[3], a.price_per_label);
    let mut out = format!(
        "plan: {} pool rows (+{} held out), {} labels: {} initial + {} rounds of {}; asvp aligns every {} rounds (made {}, load average {})\n\n",
        s.pool,
        s.test,
        labels,
        s.initial,
        s.rounds,
        s.batch,
        s.align_every,
        crate::util::utc_now(),
        crate::util::load_average()
    );
    out.push_str("| policy | compute (s) | compute ($) | rows embedded | labels fine-tuned | wait per round (s, mean / max) | total ($) | saving vs standard |\n|---|---|---|---|---|---|---|---|\n");
    for p in &projections {
        let mean = p.mean_wait();
        let max = p.wait_seconds.iter().copied().fold(0.0, f64::max);
        let total = money(p, a.price_per_label);
        out.push_str(&format!(
            "| {} | {:.0} | {:.4} | {} | {} | {mean:.1} / {max:.1} | {total:.2} | {:.2}% |\n",
            p.policy,
            p.compute_seconds,
            p.compute_seconds / 3600.0 * a.price_per_hour,
            p.rows_embedded,
            p.labels_fine_tuned,
            100.0 * (standard - total) / standard
        ));
    }
    out.push_str("\nsaving of asvp over standard at equal labels, by pool size and label price, and the mean wait per round:\n\n| pool rows |");
    let prices = [0.01, 0.10, 1.00];
    for p in prices {
        out.push_str(&format!(" ${p:.2}/label |"));
    }
    out.push_str(" wait, asvp / standard (s) |\n|---|---|---|---|---|\n");
    for scale in [1usize, 10, 100] {
        let big = Schedule {
            pool: s.pool * scale,
            embed_rows: s.pool * scale + s.test,
            ..s.clone()
        };
        let (asvp, std) = (
            project("asvp", &big, rates)?,
            project("standard", &big, rates)?,
        );
        out.push_str(&format!("| {} |", big.pool));
        for p in prices {
            let (x, y) = (money(&asvp, p), money(&std, p));
            out.push_str(&format!(" {:.2}% |", 100.0 * (y - x) / y));
        }
        out.push_str(&format!(
            " {:.0} / {:.0} |\n",
            asvp.mean_wait(),
            std.mean_wait()
        ));
    }
    out.push_str(&format!(
        "\nassumptions: rates from {source} (s per row: v0 embed {:.4}, refresh {:.4}, fine-tune {:.4} per label at their epochs, proxy fit {:.5} per label, selection {:.6} per pool row, shipped probe {:.6}, LogME {:.5} per label); compute at ${}/h, labels at ${}, annotator waiting at ${}/h; the same accuracy for every policy (savings at equal labels); every policy ships a linear probe; selection priced as margin sampling.",
        rates.embed_per_row,
        rates.refresh_per_row,
        rates.finetune_per_label,
        rates.proxy_per_label,
        rates.select_per_row,
        rates.probe_per_row,
        rates.indicator_per_label,
        a.price_per_hour,
        a.price_per_label,
        a.price_per_annotator_hour
    ));
    Ok(out)
}

/// Each run directory, loaded on its own (unlike `report::load_runs`, runs on different
/// datasets are welcome).
fn load_each(dirs: &[PathBuf]) -> Result<Vec<crate::report::RunInput>> {
    dirs.iter().map(|d| crate::report::load_run(d)).collect()
}

fn run_check(dirs: &[PathBuf], out: Option<&std::path::Path>) -> Result<()> {
    let runs = load_each(dirs)?;
    let rows = check(&runs)?;
    if rows.is_empty() {
        bail!("none of the {} runs is one `proxal plan` models (random, svpp/asvp/standard with margin, asvp on its schedule)", runs.len());
    }
    let mut md = format!(
        "# `proxal plan` against finished runs\n\nWritten by `proxal plan --check` (the command below) on {} (load average {} at the end). Each run's compute (wall seconds of the selection path plus the shipped model, as the reports count it) is projected from its config and row counts, with rates (the median over the other runs on its dataset of each run's seconds per row of each kind of work) from those runs' ledgers, and compared with what its own ledger measured. The runs ran one at a time on 2 shared cores; identical configs measured up to 2.9× apart there (clinc150 standard: 1,020 s for seed 0, 348–378 s for seeds 1–2), so a projection cannot be closer than the machine is to itself.\n\n`proxal plan --check {}`\n\n| run | policy | projected (s) | measured (s) | projected ÷ measured |\n|---|---|---|---|---|\n",
        crate::util::utc_now(),
        crate::util::load_average(),
        dirs.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(" ")
    );
    let mut within = 0;
    for r in &rows {
        let ratio = r.projected_seconds / r.measured_seconds;
        within += (0.75..=1.25).contains(&ratio) as usize;
        md.push_str(&format!(
            "| {} | {} | {:.1} | {:.1} | {:.2} |\n",
            r.run, r.policy, r.projected_seconds, r.measured_seconds, ratio
        ));
    }
    md.push_str(&format!(
        "\n{within} of {} runs within ±25% (each projected with rates from the other runs on its dataset)\n",
        rows.len()
    ));
    print!("{md}");
    if let Some(p) = out {
        crate::util::atomic_write(p, md.as_bytes())?;
    }
    Ok(())
}
