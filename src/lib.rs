//! proxal: cheap, cost-honest active learning on cached pretrained-model features.
//!
//! The crate is laid out as the pipeline it runs (see `docs/ARCHITECTURE.md`):
//!
//! ```text
//! data::ingest → backbone::embed → features::Store (v0, v1, …)
//!   → proxy::fit → strategy::select → oracle → labelled set
//!   ↺ train::{linear_probe, fine_tune, lp_ft} → backbone::embed (refresh, ASVP)
//! cost::Ledger meters every stage; report turns ledgers and round records into curves and savings.
//! ```
//! `al` drives the rounds from a TOML policy.

pub mod al;
pub mod backbone;
pub mod cli;
pub mod cost;
pub mod data;
pub mod features;
pub mod home;
pub mod numerics;
pub mod oracle;
pub mod project;
pub mod proxy;
pub mod report;
pub mod strategy;
pub mod train;
pub mod util;

pub use anyhow::{Error, Result};
