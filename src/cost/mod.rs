//! The cost ledger and pricing.
//!
//! Every stage a run executes appends one [`CostRecord`] to the run's `ledger.jsonl`
//! ([`Ledger`]): raw wall-clock and CPU seconds, the device, rows processed and labels bought.
//! Nothing is priced at record time: [`Prices`] turn seconds and labels into money only when a
//! report is made, so prices can be changed afterwards.
//!
//! ```no_run
//! # fn fit() -> anyhow::Result<u32> { Ok(1) }
//! use proxal::cost::{Ledger, Stage};
//! let mut ledger = Ledger::open("experiments/runs/demo/ledger.jsonl".as_ref(), "demo")?;
//! // Time a closure (wall + process CPU seconds) and append one record:
//! let model = ledger.meter(3, Stage::ProxyFit, 1200, || fit())?;
//! // Or record something measured elsewhere (here: 200 labels bought, no compute):
//! ledger.record(3, Stage::Labelling, 0.0, 0.0, 0, 200)?;
//! # anyhow::Ok(())
//! ```
mod ledger;
mod prices;

pub use ledger::{cpu_device, device_of, CostRecord, Ledger, Meter, Stage};
pub use prices::{device_class, Prices, PricesConfig};
