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
    /// US dollars per compute hour (default: the device's price, docs/METRICS.md)
    #[arg(long)]
    pub price_per_hour: Option<f64>,
    /// The device the runs will use: rates come from ledger records made on it
    #[arg(long, value_enum, default_value_t = DeviceClass::Cpu)]
    pub device: DeviceClass,
    /// The model every policy ships: a linear probe on its features, or a fine-tuned model
    /// (a run's eval_model = "auto")
    #[arg(long, value_enum, default_value_t = ShipKind::Probe)]
    pub ship: ShipKind,
    /// Draw the saving over standard against the pool size to this file (.svg or .png)
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// US dollars per hour an annotator waits for the next batch (0: waiting is free)
    #[arg(long, default_value_t = 0.0)]
    pub price_per_annotator_hour: f64,
    /// Instead of planning: project these finished runs (from the others' ledgers on the same
    /// dataset, or from --rates-from when given) and compare with what they measured
    #[arg(long, num_args = 1.., conflicts_with_all = ["pool", "labels", "measure_on", "plot"])]
    pub check: Vec<PathBuf>,
    /// Write the --check table (markdown) here too
    #[arg(long, requires = "check")]
    pub out: Option<PathBuf>,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceClass {
    Cpu,
    Cuda,
}

impl DeviceClass {
    fn name(self) -> &'static str {
        match self {
            DeviceClass::Cpu => "cpu",
            DeviceClass::Cuda => "cuda",
        }
    }
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShipKind {
    Probe,
    FineTuned,
}

pub fn run(home: &crate::home::Home, a: Args) -> Result<()> {
    if !a.check.is_empty() {
        return run_check(&a.check, &a.rates_from, a.out.as_deref());
    }
    let device = a.device.name();
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
        Some(_) if a.device != DeviceClass::Cpu => bail!(
            "--measure-on measures on this machine's CPU; proxal does not run on {device} yet: give --rates-from runs made on {device}"
        ),
        Some(name) => measured(home, name, &a)?,
        None => {
            let runs = load_each(&a.rates_from)?;
            let on_device: Vec<Vec<crate::cost::CostRecord>> = runs
                .iter()
                .map(|r| {
                    r.ledger
                        .iter()
                        .filter(|c| crate::cost::device_class(&c.device) == device)
                        .cloned()
                        .collect()
                })
                .collect();
            if on_device.iter().all(Vec::is_empty) {
                let mut seen: Vec<&str> = runs
                    .iter()
                    .flat_map(|r| r.ledger.iter().map(|c| c.device.as_str()))
                    .collect();
                seen.sort_unstable();
                seen.dedup();
                bail!(
                    "none of the {} runs' ledgers has a record made on {device} (they ran on {}): give runs made on {device}, or plan for --device {}",
                    runs.len(),
                    seen.join(", "),
                    seen.first().map_or("cpu", |d| crate::cost::device_class(d))
                );
            }
            let rates = Rates::from_ledgers(on_device.iter().map(Vec::as_slice))?;
            (
                rates,
                format!("the ledgers of {} earlier runs ({device} records)", runs.len()),
            )
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
        ship_fine_tuned: a.ship == ShipKind::FineTuned,
    };
    println!("{}", render_plan(&schedule, &rates, &source, &a)?);
    if let Some(path) = &a.plot {
        plot(path, &schedule, &rates, &a)?;
        eprintln!("proxal plan: wrote {}", path.display());
    }
    Ok(())
}

/// Pool sizes of the saving-by-pool-size table and plot: the planned pool times these.
const POOL_SCALES: [f64; 7] = [0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0];
/// Label prices of the table and plot (US dollars).
const LABEL_PRICES: [f64; 3] = [0.01, 0.10, 1.00];

/// The schedule with the pool scaled (the held-out rows stay).
fn scaled(s: &Schedule, scale: f64) -> Schedule {
    let pool = ((s.pool as f64 * scale).round() as usize).max(s.initial + s.rounds * s.batch);
    Schedule {
        pool,
        embed_rows: pool + s.test,
        ..s.clone()
    }
}

/// Dollars per compute hour: `--price-per-hour`, else the device's default price.
fn per_hour(a: &Args) -> f64 {
    a.price_per_hour
        .or_else(|| crate::cost::Prices::default().per_hour(a.device.name()))
        .unwrap_or(0.0)
}

/// Total money of a projection: compute, labels, annotators' waiting.
fn money(p: &crate::plan::Projection, s: &Schedule, a: &Args, price_label: f64) -> f64 {
    let labels = s.initial + s.rounds * s.batch;
    let wait: f64 = p.wait_seconds.iter().sum();
    p.compute_seconds / 3600.0 * per_hour(a)
        + labels as f64 * price_label
        + wait / 3600.0 * a.price_per_annotator_hour
}

/// The policies whose saving over standard the table and the plot show.
const SAVERS: [&str; 2] = ["asvp", "svpp"];

/// At schedule `s`: the projections of [`SAVERS`] and of standard, and each saver's saving (%)
/// over standard at each of [`LABEL_PRICES`].
#[allow(clippy::type_complexity)]
fn savings(
    s: &Schedule,
    rates: &Rates,
    a: &Args,
) -> Result<(
    Vec<crate::plan::Projection>,
    crate::plan::Projection,
    Vec<[f64; 3]>,
)> {
    let std = project("standard", s, rates)?;
    let savers: Vec<_> = SAVERS
        .iter()
        .map(|p| project(p, s, rates))
        .collect::<Result<_>>()?;
    let pct = savers
        .iter()
        .map(|p| {
            LABEL_PRICES.map(|price| {
                let (x, y) = (money(p, s, a, price), money(&std, s, a, price));
                100.0 * (y - x) / y
            })
        })
        .collect();
    Ok((savers, std, pct))
}

fn plot(path: &std::path::Path, s: &Schedule, rates: &Rates, a: &Args) -> Result<()> {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    if !matches!(ext, "svg" | "png") {
        bail!("--plot {}: name an .svg or .png file", path.display());
    }
    // One series per saver and label price, in that order.
    let mut series: Vec<(String, Vec<(usize, f64)>)> = SAVERS
        .iter()
        .flat_map(|p| LABEL_PRICES.map(|price| (format!("{p}, ${price:.2}/label"), Vec::new())))
        .collect();
    for scale in POOL_SCALES {
        let big = scaled(s, scale);
        let (_, _, pct) = savings(&big, rates, a)?;
        for (points, &v) in series.iter_mut().zip(pct.iter().flatten()) {
            points.1.push((big.pool, v));
        }
    }
    let labels = s.initial + s.rounds * s.batch;
    let fig = crate::report::plots::plan_savings(
        format!("Projected saving over standard AL, {labels} labels"),
        format!(
            "pool rows (log scale); {} + {}×{} labels, compute at ${}/h on {}",
            s.initial,
            s.rounds,
            s.batch,
            per_hour(a),
            a.device.name()
        ),
        &series,
    )?;
    let bytes = if ext == "svg" {
        fig.svg.into_bytes()
    } else {
        fig.png
    };
    crate::util::atomic_write(path, &bytes)
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
    let model_dir = home.model_dir_or_default(a.model_dir.as_deref());
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
    let per_hour = per_hour(a);
    let policies = ["random", "svpp", "asvp", "standard"];
    let projections: Vec<_> = policies
        .iter()
        .map(|p| project(p, s, rates))
        .collect::<Result<_>>()?;
    let standard = money(&projections[3], s, a, a.price_per_label);
    let mut out = format!(
        "plan: {} pool rows (+{} held out), {} labels: {} initial + {} rounds of {}; asvp aligns every {} rounds; every policy ships {}; on {} (made {}, load average {})\n\n",
        s.pool,
        s.test,
        labels,
        s.initial,
        s.rounds,
        s.batch,
        s.align_every,
        if s.ship_fine_tuned { "a fine-tuned model" } else { "a linear probe" },
        a.device.name(),
        crate::util::utc_now(),
        crate::util::load_average()
    );
    out.push_str("| policy | compute (s) | compute ($) | rows embedded | labels fine-tuned | wait per round (s, mean / max) | total ($) | saving vs standard |\n|---|---|---|---|---|---|---|---|\n");
    for p in &projections {
        let mean = p.mean_wait();
        let max = p.wait_seconds.iter().copied().fold(0.0, f64::max);
        let total = money(p, s, a, a.price_per_label);
        out.push_str(&format!(
            "| {} | {:.1} | {:.4} | {} | {} | {mean:.1} / {max:.1} | {total:.2} | {:.2}% |\n",
            p.policy,
            p.compute_seconds,
            p.compute_seconds / 3600.0 * per_hour,
            p.rows_embedded,
            p.labels_fine_tuned,
            100.0 * (standard - total) / standard
        ));
    }
    out.push_str("\nsaving over standard at equal labels, by pool size and label price, and the mean wait per round:\n\n| pool rows |");
    for policy in SAVERS {
        for p in LABEL_PRICES {
            out.push_str(&format!(" {policy} ${p:.2}/label |"));
        }
    }
    out.push_str(" wait, asvp / standard (s) |\n|---|---|---|---|---|---|---|---|\n");
    for scale in POOL_SCALES.into_iter().filter(|&x| x >= 1.0) {
        let big = scaled(s, scale);
        out.push_str(&format!("| {} |", big.pool));
        let (savers, std, pct) = savings(&big, rates, a)?;
        for v in pct.iter().flatten() {
            out.push_str(&format!(" {v:.2}% |"));
        }
        out.push_str(&format!(
            " {:.0} / {:.0} |\n",
            savers[0].mean_wait(),
            std.mean_wait()
        ));
    }
    out.push_str(&format!(
        "\nassumptions: rates from {source} (s per row: v0 embed {:.4}, refresh {:.4}, fine-tune {:.4} per label at their epochs, proxy fit {:.5} per label, selection {:.6} per pool row, shipped probe {:.6}, LogME {:.5} per label); compute at ${}/h ({}), labels at ${}, annotator waiting at ${}/h; the same accuracy for every policy (savings at equal labels); selection priced as margin sampling.",
        rates.embed_per_row,
        rates.refresh_per_row,
        rates.finetune_per_label,
        rates.proxy_per_label,
        rates.select_per_row,
        rates.probe_per_row,
        rates.indicator_per_label,
        per_hour,
        a.device.name(),
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

fn run_check(
    dirs: &[PathBuf],
    rates_from: &[PathBuf],
    out: Option<&std::path::Path>,
) -> Result<()> {
    let runs = load_each(dirs)?;
    let given = if rates_from.is_empty() {
        None
    } else {
        Some(load_each(rates_from)?)
    };
    let rows = check(&runs, given.as_deref())?;
    if rows.is_empty() {
        bail!("none of the {} runs is one `proxal plan` models (random, svpp/asvp/standard with margin, asvp on its schedule)", runs.len());
    }
    let join = |d: &[PathBuf]| {
        d.iter()
            .map(|d| d.display().to_string())
            .collect::<Vec<_>>()
            .join(" ")
    };
    let (whence, command) = if rates_from.is_empty() {
        (
            "the median over the other runs on its dataset of each run's seconds per row of each kind of work, from their ledgers".to_string(),
            format!("proxal plan --check {}", join(dirs)),
        )
    } else {
        (
            format!("the median over the {} runs given with --rates-from of each run's seconds per row of each kind of work, from their ledgers", rates_from.len()),
            format!("proxal plan --check {} --rates-from {}", join(dirs), join(rates_from)),
        )
    };
    // How far apart the machine measured runs of the same dataset and policy: the floor under
    // any projection's error.
    let mut spread: std::collections::BTreeMap<(&str, &str), (f64, f64)> = Default::default();
    for r in &rows {
        let e = spread
            .entry((r.dataset.as_str(), r.policy.as_str()))
            .or_insert((f64::INFINITY, 0.0));
        e.0 = e.0.min(r.measured_seconds);
        e.1 = e.1.max(r.measured_seconds);
    }
    let worst = spread
        .iter()
        .filter(|(_, (lo, _))| *lo > 0.0)
        .max_by(|a, b| (a.1 .1 / a.1 .0).total_cmp(&(b.1 .1 / b.1 .0)));
    let noise = match worst {
        Some(((d, p), (lo, hi))) if hi > lo => format!(
            " Runs of the same dataset and policy measured up to {:.1}× apart here ({d} {p}: {lo:.0}–{hi:.0} s), so a projection from rates cannot be closer than the machine is to itself.",
            hi / lo
        ),
        _ => String::new(),
    };
    let mut md = format!(
        "# `proxal plan` against finished runs\n\nWritten by `proxal plan --check` (the command below) on {} (load average {} at the end). Each run's compute (wall seconds of the selection path plus the shipped model, as the reports count it) is projected from its config and row counts, with rates ({whence}), and compared with what its own ledger measured.{noise}\n\n`{command}`\n\nWall seconds are what a run waits and a cloud bills; CPU seconds (all threads of the process, from the same records and rates) are what the work needed, and a busy shared machine inflates them much less.\n\n| run | policy | projected (s) | measured (s) | projected ÷ measured | projected CPU s | measured CPU s | projected ÷ measured, CPU |\n|---|---|---|---|---|---|---|---|\n",
        crate::util::utc_now(),
        crate::util::load_average(),
    );
    let (mut within, mut within_cpu) = (0, 0);
    for r in &rows {
        let ratio = r.projected_seconds / r.measured_seconds;
        let cpu = r.projected_cpu_seconds / r.measured_cpu_seconds;
        within += (0.75..=1.25).contains(&ratio) as usize;
        within_cpu += (0.75..=1.25).contains(&cpu) as usize;
        md.push_str(&format!(
            "| {} | {} | {:.1} | {:.1} | {ratio:.2} | {:.1} | {:.1} | {cpu:.2} |\n",
            r.run,
            r.policy,
            r.projected_seconds,
            r.measured_seconds,
            r.projected_cpu_seconds,
            r.measured_cpu_seconds
        ));
    }
    md.push_str(&format!(
        "\n{within} of {n} runs within ±25% in wall seconds; {within_cpu} of {n} in CPU seconds\n",
        n = rows.len()
    ));
    print!("{md}");
    if let Some(p) = out {
        crate::util::atomic_write(p, md.as_bytes())?;
    }
    Ok(())
}
