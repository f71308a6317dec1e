//! `proxal data …` (under construction).
use crate::home::Home;
use anyhow::Result;

#[derive(clap::Subcommand, Debug)]
pub enum DataCmd {}

pub fn run(_home: &Home, _cmd: DataCmd) -> Result<()> {
    Ok(())
}
