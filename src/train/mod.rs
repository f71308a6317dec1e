//! Training the model a policy ships, and the fine-tuned backbones that alignment re-embeds with.
//!
//! * [`Method::LinearProbe`] — a linear head on cached features (the proxy's logistic
//!   regression); the backbone stays frozen.
//! * [`Method::FineTune`] — backbone + head trained together with AdamW (backbone learning rate
//!   ≪ head learning rate), linear warm-up then linear decay, dropout on, early stopping on a
//!   validation split carved from the labelled set (never the test set).
//! * [`Method::LpFt`] — linear probe first on the frozen backbone's features, then fine-tune from
//!   the probed head (Kumar et al. 2022): keeps the pretrained features from being distorted by a
//!   random head early on.
//!
//! The head reads the same vector the feature store caches (pooled, L2-normalised), so a
//! fine-tuned model's head applies directly to features refreshed with its backbone.
pub mod eval;
mod finetune;
pub mod optim;

pub use eval::{accuracy, macro_f1, share_correct, Scores};
pub use finetune::{
    fine_tune, length_bucketed_batches, FineTuneOptions, FineTuned, Head, TrainConfig,
};
pub use optim::{AdamWConfig, FusedAdamW, ParamGroup};

use serde::{Deserialize, Serialize};

/// How a model is trained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    LinearProbe,
    FineTune,
    LpFt,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::LinearProbe => "linear-probe",
            Method::FineTune => "fine-tune",
            Method::LpFt => "lp-ft",
        }
    }

    /// The method named `name` (as [`Method::as_str`] writes it), e.g. in a progress record.
    pub fn from_name(name: &str) -> anyhow::Result<Method> {
        [Method::LinearProbe, Method::FineTune, Method::LpFt]
            .into_iter()
            .find(|m| m.as_str() == name)
            .ok_or_else(|| anyhow::anyhow!("unknown training method '{name}'"))
    }
}
