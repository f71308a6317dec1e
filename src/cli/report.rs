//! `proxal report` (under construction).
use crate::home::Home;
use anyhow::{bail, Result};

#[derive(clap::Args, Debug)]
pub struct Args {}

pub fn run(_home: &Home, _args: Args) -> Result<()> {
    bail!("`proxal report` is not implemented yet")
}
