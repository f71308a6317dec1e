//! The `proxal` command line: parsing only; each subcommand calls one library function.
use clap::{Parser, Subcommand};
use proxal::cli;

#[derive(Parser)]
#[command(
    name = "proxal",
    version,
    about = "Cheap, cost-honest active learning on cached pretrained-model features"
)]
struct Cli {
    /// Home directory holding assets/, datasets/, features/ and experiments/ (default: $PROXAL_HOME or .)
    #[arg(long, global = true)]
    home: Option<std::path::PathBuf>,
    /// Device that embeds and fine-tunes, given before the command: cpu or cuda[:N] (default: a
    /// run's or project's `device`, else $PROXAL_DEVICE, else cpu; CUDA needs a `make build-cuda`
    /// binary). Not `plan --device`, the device class a plan prices.
    #[arg(long)]
    device: Option<String>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Fetch the backbone and built-in datasets into the user's cache, or say where they are
    #[command(subcommand)]
    Assets(cli::assets::AssetsCmd),
    /// Import datasets into the canonical table
    #[command(subcommand)]
    Data(cli::data::DataCmd),
    /// Embed a dataset once with the backbone into a feature-store version
    Embed(cli::embed::Args),
    /// Re-embed a dataset with a fine-tuned checkpoint into a new feature version (alignment)
    Refresh(cli::refresh::Args),
    /// Fit the proxy on labelled rows and select the next batch with a query strategy
    Select(cli::select::Args),
    /// Run (or resume) an active-learning experiment from a TOML config
    Run(cli::run::Args),
    /// Report learning curves, costs and savings for a set of runs
    Report(cli::report::Args),
    /// Project each policy's compute and cost before buying labels (rates from earlier runs)
    Plan(cli::plan::Args),
    /// Start an annotation project on your own unlabelled file
    Init(cli::project::InitArgs),
    /// Do the policy's due work and export the next batch to annotate (CSV + Label Studio tasks)
    Next(cli::project::NextArgs),
    /// Import annotators' labels (CSV, JSONL or a Label Studio export), all rows checked
    Label(cli::project::LabelArgs),
    /// Labels, per-class counts, model quality, cost so far, and what `next` will do
    Status(cli::project::StatusArgs),
    /// Write the project's current model (backbone + head) to a directory
    ExportModel(cli::project::ExportArgs),
    /// Label a file with an exported model
    Predict(cli::project::PredictArgs),
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("PROXAL_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Cli::parse();
    let home = args
        .home
        .map(proxal::home::Home::new)
        .unwrap_or_else(proxal::home::Home::from_env);
    let chosen = match &args.device {
        Some(spec) => proxal::device::set(spec),
        None => Ok(()),
    };
    let result = chosen.and_then(|()| match args.cmd {
        Cmd::Assets(c) => cli::assets::run(&home, c),
        Cmd::Data(c) => cli::data::run(&home, c),
        Cmd::Embed(a) => cli::embed::run(&home, a),
        Cmd::Refresh(a) => cli::refresh::run(&home, a),
        Cmd::Select(a) => cli::select::run(&home, a),
        Cmd::Run(a) => cli::run::run(&home, a),
        Cmd::Report(a) => cli::report::run(&home, a),
        Cmd::Plan(a) => cli::plan::run(&home, a),
        Cmd::Init(a) => cli::project::init(&home, a),
        Cmd::Next(a) => cli::project::next(a),
        Cmd::Label(a) => cli::project::label(a),
        Cmd::Status(a) => cli::project::status(a),
        Cmd::ExportModel(a) => cli::project::export_model(a),
        Cmd::Predict(a) => cli::project::predict(a),
    });
    if let Err(e) = result {
        // One line: the chain of contexts, outermost first.
        let msg = format!("{e:#}").replace('\n', " ");
        eprintln!("proxal: error: {msg}");
        std::process::exit(1);
    }
}
