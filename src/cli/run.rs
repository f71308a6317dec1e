//! `proxal run <config.toml>`: run or resume one active-learning run.
use crate::al::{self, RunOptions};
use crate::home::Home;
use anyhow::Result;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The run's TOML config (see experiments/configs/)
    pub config: PathBuf,
    /// No progress output
    #[arg(long)]
    pub quiet: bool,
    /// Print the config with every default filled in, and exit without running
    #[arg(long)]
    pub print_config: bool,
}

pub fn run(home: &Home, args: Args) -> Result<()> {
    if args.print_config {
        print!("{}", al::RunConfig::load(&args.config)?.resolved_toml()?);
        return Ok(());
    }
    let s = al::run(
        home,
        &args.config,
        RunOptions {
            progress: !args.quiet,
            ..Default::default()
        },
    )?;
    println!(
        "run {}: {} rounds, {} labels{}{} → {}",
        s.dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        s.rounds_done,
        s.labels,
        s.last_accuracy
            .map(|a| format!(", last test accuracy {a:.4}"))
            .unwrap_or_default(),
        if s.resumed { " (resumed)" } else { "" },
        s.dir.display()
    );
    Ok(())
}
