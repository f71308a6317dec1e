//! The active-learning loop: rounds driven by a TOML policy ([`RunConfig`]).
//!
//! Every round, in order:
//! 1. **labels in** — the batch chosen at the end of the previous round (round 0: the cold-start
//!    set) is labelled by the [`Oracle`](crate::oracle::Oracle) and appended, fsynced, to the run's
//!    `labelled.jsonl`;
//! 2. **policy work** — `standard` fine-tunes the backbone on all labels and re-embeds the pool;
//!    `asvp` logs LogME of the labelled cache and, when its trigger says so (a schedule, or an
//!    alignment check that a fine-tune beats the probe on held-out labelled rows:
//!    docs/ALIGNMENT.md), fine-tunes (LP-FT or full fine-tune, by a label-count threshold or by
//!    validation) and refreshes the cache into a new feature version; `svpp` and `random` do
//!    nothing here;
//! 3. **evaluation** (at evaluation points) — the model the policy would ship is trained and
//!    scored on the test split (accuracy, macro-F1);
//! 4. **select** — the next batch: the policy's selection model (proxy on v0 for svpp, on the
//!    current version for asvp, the fine-tuned head on its own features for standard, nothing for
//!    random) scores the unlabelled pool and the strategy picks;
//! 5. the round is marked finished in `progress.jsonl`.
//!
//! A rerun resumes after the last finished round; a batch already labelled is reused, never
//! selected or bought again. The same seed gives the same selections.
pub mod config;
pub mod logme;
pub mod run;
pub mod state;
pub mod stopping;

pub use config::{
    AsvpConfig, CheckFrom, EvalModel, MethodChoice, PolicyKind, RunConfig, SelectWith, TrainConfig,
    Trigger, ValSource,
};
pub use logme::logme;
pub use run::{run, RunOptions, RunSummary};
pub use state::{AlignCheck, LabelRecord, ProgressRecord, RunDir};
