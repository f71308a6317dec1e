//! `proxal report`: learning curves, costs and savings for a set of runs on one dataset.
use crate::cost::{Prices, PricesConfig};
use crate::home::Home;
use crate::report::{self, MetricOptions, ReportOptions};
use anyhow::{bail, Context, Result};
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Run directories, or run names under <home>/experiments/runs (default: every run there)
    pub runs: Vec<PathBuf>,
    /// Output directory (default: <home>/experiments/reports/<dataset>)
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Target accuracy, as a fraction (0.85) or a percentage (85); default: --target-fraction of
    /// the best final accuracy among the runs
    #[arg(long, value_name = "A")]
    pub target_accuracy: Option<f64>,
    /// Default target as a fraction of the best final accuracy
    #[arg(long, value_name = "F", default_value_t = 0.99)]
    pub target_fraction: f64,
    /// Price of one label in US dollars (default 0.10, or the runs' [prices])
    #[arg(long, value_name = "USD")]
    pub price_per_label: Option<f64>,
    /// Price of one hour of a device, e.g. cpu=0.085 or cuda=2.50 (repeatable)
    #[arg(long = "price-per-hour", value_name = "DEVICE=USD")]
    pub price_per_hour: Vec<String>,
}

fn run_dirs(home: &Home, args: &Args) -> Result<Vec<PathBuf>> {
    if args.runs.is_empty() {
        let root = home.runs();
        let rd = std::fs::read_dir(&root).with_context(|| {
            format!(
                "no runs given and cannot list {} (pass run directories)",
                root.display()
            )
        })?;
        let mut dirs: Vec<PathBuf> = rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.join(report::CONFIG_FILE).is_file())
            .collect();
        dirs.sort();
        if dirs.is_empty() {
            bail!("no runs given and none found in {}", root.display());
        }
        return Ok(dirs);
    }
    Ok(args
        .runs
        .iter()
        .map(|p| {
            // A bare name that is not a directory here: look under the home's runs directory.
            let under_home = home.runs().join(p);
            if !p.exists() && p.components().count() == 1 && under_home.is_dir() {
                under_home
            } else {
                p.clone()
            }
        })
        .collect())
}

fn options(args: &Args) -> Result<ReportOptions> {
    let target_accuracy = match args.target_accuracy {
        None => None,
        Some(a) if a > 0.0 && a <= 1.0 => Some(a),
        Some(a) if a > 1.0 && a <= 100.0 => Some(a / 100.0),
        Some(a) => {
            bail!("--target-accuracy {a}: expects a fraction in (0, 1] or a percentage in (1, 100]")
        }
    };
    if !(args.target_fraction > 0.0 && args.target_fraction <= 1.0) {
        bail!(
            "--target-fraction {}: expects a fraction in (0, 1]",
            args.target_fraction
        );
    }
    let mut prices = PricesConfig::default();
    if let Some(p) = args.price_per_label {
        if !(p.is_finite() && p > 0.0) {
            bail!("--price-per-label {p}: expects a positive number of dollars");
        }
        prices.price_per_label = Some(p);
    }
    for s in &args.price_per_hour {
        let (d, p) = Prices::parse_hour_override(s)?;
        prices.price_per_device_hour.insert(d, p);
    }
    Ok(ReportOptions {
        metrics: MetricOptions {
            target_accuracy,
            target_fraction: args.target_fraction,
        },
        prices,
    })
}

pub fn run(home: &Home, args: Args) -> Result<()> {
    let opts = options(&args)?;
    let dirs = run_dirs(home, &args)?;
    let runs = report::load_runs(&dirs)?;
    let out = args.out.clone().unwrap_or_else(|| {
        home.root()
            .join("experiments")
            .join("reports")
            .join(&runs[0].meta.dataset)
    });
    let (m, files) = report::write_report(&runs, &opts, &out)?;
    println!(
        "{} run(s), {} group(s) on {}; target accuracy {:.2}% ({})",
        m.runs.len(),
        m.groups.len(),
        m.dataset,
        m.target.accuracy * 100.0,
        m.target.how
    );
    for g in &m.groups {
        let n = match (&g.labels, g.reached) {
            (Some(s), _) => format!(
                "N(a) = {:.0} labels, C(a) = ${:.2}",
                s.mean,
                g.total_cost.map(|c| c.mean).unwrap_or(0.0)
            ),
            (None, 0) => "target not reached".to_string(),
            (None, k) => format!("target reached by {k}/{} seeds only", g.runs.len()),
        };
        println!("  {:<28} {n}", g.label);
    }
    for note in &m.notes {
        println!("  note: {note}");
    }
    println!("report: {}", files.markdown.display());
    println!("        {}", files.html.display());
    println!("numbers: {}, {}", files.csv.display(), files.json.display());
    Ok(())
}
