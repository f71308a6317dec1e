//! proxal: cheap, cost-honest active learning on cached pretrained-model features.
//!
//! The crate is laid out as the pipeline it runs (see `docs/ARCHITECTURE.md`):
//!
//! ```text
//! data::import_file → features::embed::embed_dataset → features::Store (v0, v1, …)
//!   → proxy::ProxyConfig::fit → strategy::Strategy::select → oracle::Oracle → labelled set
//!   ↺ train::fine_tune (full, or LP-FT from a probe) → embed_dataset again (refresh, ASVP)
//! cost::Ledger meters every stage; report turns ledgers and round records into curves and savings.
//! ```
//! `al::run::round_step` is one round (policy work, evaluation, next batch); `al` drives it from a
//! TOML policy with simulated labels (`proxal run`), `project` with people's (`proxal next` /
//! `proxal label`). `numerics` holds the hand-written numerics.

pub mod al;
pub mod backbone;
pub mod cli;
pub mod cost;
pub mod data;
pub mod device;
pub mod features;
pub mod home;
pub mod numerics;
pub mod oracle;
pub mod plan;
pub mod project;
pub mod proxy;
pub mod report;
pub mod strategy;
pub mod train;
pub mod util;

pub use anyhow::{Error, Result};
