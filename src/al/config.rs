//! The TOML run configuration: one file says everything a run does, so a policy is data. Only
//! `name`, `dataset` and `policy` are required; every other key has a default
//! (`proxal run --print-config` shows the resolved config).
//!
//! ```toml
//! name = "banking77-asvp"
//! dataset = "banking77"
//! policy = "asvp"            # random | standard | svpp | asvp
//! seed = 0
//! initial = 200              # labels bought before round 1 (cold start)
//! batch = 200                # labels bought per round
//! rounds = 5
//! strategy = "margin"        # random | least-confidence | margin | entropy | badge | coreset | cluster-margin
//! proxy = "logreg"           # logreg | mlp | lsq
//! eval_every = 1             # evaluate the shipped model every k rounds (and always at the end)
//! eval_model = "linear-probe" # what the policy ships: linear-probe | fine-tune | lp-ft | auto
//!
//! [asvp]
//! trigger = "schedule"       # schedule | indicator | auto (docs/ALIGNMENT.md)
//! align_every = 2            # schedule: re-embed with a fine-tuned backbone every k rounds (0: never)
//! align_at_labels = []       # …and when the label count first reaches these
//! logme_drop = 0.05          # …and when LogME on the labelled cache drops by this much (0: off)
//! method = "threshold"       # threshold | validate: how an alignment chooses LP-FT or FT
//! ft_threshold = 1000        # threshold: below, LP-FT; at or above, full fine-tune
//! val_fraction = 0.25        # checks: share of labelled rows kept for validation, never trained on
//! min_gain = 0.02            # checks: align when a fine-tune beats the probe by this much
//! growth = 2.0               # indicator/auto: check again once the labels grew by this factor
//! check_from = "pretrained"  # checks: candidates fine-tune the pretrained backbone | "cache": the one that made the cache
//! val_source = "labels"      # checks: validate on a hash-chosen share of the labels | "random": of the initial set plus a random share of every batch
//!
//! [stopping]                 # stopping criteria on a fixed stop set (docs/STOPPING.md)
//! stop_set = 1000            # pool rows the proxy's predictions are compared on
//! window = 3                 # stabilizing predictions: mean Cohen's κ over this many rounds…
//! kappa = 0.99               # …at least this
//! uncertainty = 0.1          # overall uncertainty: mean (1 − top probability) at most this
//! # max_labels = 2000        # label budget
//! stop_on = []               # e.g. ["stabilizing-predictions"]: a run stops when one is met
//!
//! [train]                    # fine-tuning hyper-parameters
//! epochs = 3
//!
//! [successor]                # PLASM: ship another backbone's model (docs/SUCCESSOR.md)
//! model_dir = "assets/mpnet" # the successor that ships…
//! method = "linear-probe"    # …trained as: linear-probe (on its pretrained features) | fine-tune | lp-ft
//! pseudo_threshold = 0.9     # pseudo-labels from the acquisition model at this confidence (omit: none)
//! pseudo_weight = 0.5        # each pseudo-labelled row's weight in the successor's loss
//! pseudo_per_class = 50      # at most this many per class, the most confident (0: no cap)
//! ```
pub use crate::train::TrainConfig;
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum PolicyKind {
    /// Random batches.
    Random,
    /// Fine-tune + re-embed every round, select with the fine-tuned model (the expensive baseline).
    Standard,
    /// Select with a proxy on the pretrained (v0) features every round.
    Svpp,
    /// SVPp plus feature alignment and the LP-FT → FT switch.
    Asvp,
}

impl PolicyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PolicyKind::Random => "random",
            PolicyKind::Standard => "standard",
            PolicyKind::Svpp => "svpp",
            PolicyKind::Asvp => "asvp",
        }
    }

    // What a policy's round runs, decided here and nowhere else (the work itself is
    // `al::run::policy_work`).

    /// Whether the pretrained (v0) features are needed: to select with (svpp, asvp), or to train
    /// the shipped model on (a linear probe, or LP-FT's probe) for a policy without its own.
    pub fn needs_v0(self, eval: EvalModel) -> bool {
        self != PolicyKind::Standard || eval == EvalModel::LinearProbe
    }

    /// How the one-off v0 embedding is charged: compute (`embed`) when the policy selects with v0
    /// or its shipped model is trained on v0, evaluation when nothing it pays for uses it.
    pub fn v0_stage(self, eval: EvalModel) -> crate::cost::Stage {
        use crate::cost::Stage;
        match (self, eval) {
            (PolicyKind::Svpp | PolicyKind::Asvp, _) => Stage::Embed,
            (PolicyKind::Random, EvalModel::FineTune) | (PolicyKind::Standard, _) => {
                Stage::Evaluation
            }
            (PolicyKind::Random, _) => Stage::Embed,
        }
    }

    /// Whether the fine-tuned model the policy's own work trained this round is the one it ships
    /// (standard every round; asvp in a round it aligned), so no extra training is needed.
    pub fn ships_own_model(self, aligned_now: bool) -> bool {
        self == PolicyKind::Standard || (self == PolicyKind::Asvp && aligned_now)
    }

    /// What selects the next batch.
    pub fn selects_with(self) -> SelectWith {
        match self {
            PolicyKind::Random => SelectWith::Nothing,
            PolicyKind::Standard => SelectWith::FineTunedHead,
            PolicyKind::Svpp | PolicyKind::Asvp => SelectWith::Proxy,
        }
    }
}

/// What a policy selects the next batch with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SelectWith {
    /// Random batches.
    Nothing,
    /// A proxy fitted on the current cached features (v0, or the last refresh).
    Proxy,
    /// The fine-tuned model's head on its own refreshed features.
    FineTunedHead,
}

/// How the model the policy ships is trained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EvalModel {
    /// A linear head on the current cached features.
    LinearProbe,
    /// Backbone + head, fine-tuned.
    FineTune,
    /// Linear probe first, then fine-tune from the probed head.
    LpFt,
    /// A fine-tuned model for every policy, LP-FT or FT by the label count (`ft_threshold`) or
    /// by the alignment check's choice: standard, and asvp in a round it aligned, ship their own
    /// fine-tune; random, svpp and a non-aligning asvp train one on all labels (metered `ship`).
    Auto,
}

/// When asvp aligns (docs/ALIGNMENT.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Trigger {
    /// The fixed rules: every `align_every` rounds, at `align_at_labels`, on a LogME drop.
    Schedule,
    /// An alignment check (fine-tuned candidates against the linear probe on the cache, on
    /// held-out labelled rows) in round 0 and whenever the labels have grown by `growth`; align
    /// when it pays.
    Indicator,
    /// As `indicator`, with the check's standard error setting the pace: a gain surely above
    /// `min_gain` checks again next round; a check after an alignment surely below it ends the
    /// checks (the cache is aligned); anything between waits for `growth`.
    Auto,
}

/// How an alignment chooses its training method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MethodChoice {
    /// LP-FT below `ft_threshold` labels, full fine-tuning at or above.
    Threshold,
    /// At the first check, train LP-FT and full fine-tuning on the non-validation rows and keep
    /// the one that validates best (or neither, when the linear probe on the cache does as
    /// well); later checks train the method that won.
    Validate,
}

/// Where an alignment check's candidates start (docs/ALIGNMENT.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CheckFrom {
    /// The pretrained backbone, every check (LP-FT probes on v0).
    Pretrained,
    /// The fine-tuned backbone that made the cache the policy selects with (the pretrained one
    /// before the first alignment): a candidate continues the last alignment's training on the
    /// labels bought since, and LP-FT probes on the cache itself.
    Cache,
}

/// Where the validation rows of alignment checks come from (docs/ALIGNMENT.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ValSource {
    /// A fixed share (`val_fraction`) of the labelled rows, chosen by a hash of the row: after
    /// the initial random set, rows the strategy chose as hard.
    Labels,
    /// That share of the initial (random) set, plus `val_fraction` of every later batch drawn
    /// uniformly at random from the unlabelled pool (bought like the rest, first in the batch):
    /// validation rows distributed like the data the shipped model meets.
    Random,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AsvpConfig {
    pub trigger: Trigger,
    pub align_every: usize,
    pub align_at_labels: Vec<usize>,
    pub logme_drop: f64,
    pub method: MethodChoice,
    pub ft_threshold: usize,
    pub val_fraction: f64,
    pub min_gain: f64,
    pub growth: f64,
    pub check_from: CheckFrom,
    pub val_source: ValSource,
}

impl Default for AsvpConfig {
    fn default() -> Self {
        Self {
            trigger: Trigger::Schedule,
            align_every: 2,
            align_at_labels: vec![],
            logme_drop: 0.0,
            method: MethodChoice::Threshold,
            ft_threshold: 1000,
            val_fraction: 0.25,
            min_gain: 0.02,
            growth: 2.0,
            check_from: CheckFrom::Pretrained,
            val_source: ValSource::Labels,
        }
    }
}

impl AsvpConfig {
    /// Do alignments run a validated check (rather than aligning straight away)?
    pub fn checks(&self) -> bool {
        self.trigger != Trigger::Schedule || self.method == MethodChoice::Validate
    }
    /// The method the label-count threshold gives for `labels` labelled rows.
    pub fn threshold_method(&self, labels: usize) -> crate::train::Method {
        if labels < self.ft_threshold {
            crate::train::Method::LpFt
        } else {
            crate::train::Method::FineTune
        }
    }
}

/// PLASM (Tsvigun et al. 2022): the run's backbone is the acquisition model (it selects, on
/// its cached features, as the policy says); what ships is the successor, another backbone's
/// linear probe on its own pretrained features, trained on the acquired labels and, optionally,
/// on rows the acquisition model pseudo-labels with confidence.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SuccessorConfig {
    /// The successor backbone's directory (config.json, tokenizer.json, model.safetensors).
    pub model_dir: PathBuf,
    /// How the successor is trained on the acquired labels at each evaluation point: a linear
    /// probe on its pretrained features, or its backbone fine-tuned (`fine-tune`, `lp-ft`).
    #[serde(default = "linear_probe")]
    pub method: crate::train::Method,
    /// Truncation length of the successor's embedding (default: the run's `embed_max_len`).
    #[serde(default)]
    pub embed_max_len: Option<usize>,
    /// Pseudo-label unlabelled pool rows whose top probability under the acquisition model's
    /// probe is at least this (None: no pseudo-labels).
    #[serde(default)]
    pub pseudo_threshold: Option<f64>,
    /// The weight of a pseudo-labelled row in the successor's loss (a bought label weighs 1).
    #[serde(default = "half")]
    pub pseudo_weight: f64,
    /// At most this many pseudo-labels per class, the most confident first (0: no cap).
    #[serde(default)]
    pub pseudo_per_class: usize,
}

impl SuccessorConfig {
    /// How the successor embeds (its v0, and a fine-tuned successor's test texts): the run's
    /// batch, its own truncation length or the run's, mean pooling, L2-normalised.
    pub fn embed_options(&self, run: &RunConfig) -> crate::backbone::EmbedOptions {
        crate::backbone::EmbedOptions {
            batch: run.embed_batch,
            max_len: self.embed_max_len.unwrap_or(run.embed_max_len),
            ..Default::default()
        }
    }
}

fn half() -> f64 {
    0.5
}
fn linear_probe() -> crate::train::Method {
    crate::train::Method::LinearProbe
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    pub name: String,
    pub dataset: String,
    pub policy: PolicyKind,
    #[serde(default)]
    pub seed: u64,
    /// Labels bought before round 1 (a random sample); default 200.
    #[serde(default = "two_hundred")]
    pub initial: usize,
    /// Labels bought per round; default 200.
    #[serde(default = "two_hundred")]
    pub batch: usize,
    /// Rounds after the initial set; default 4 (200 + 4 × 200 = 1,000 labels).
    #[serde(default = "four")]
    pub rounds: usize,
    #[serde(default = "default_strategy")]
    pub strategy: String,
    #[serde(default = "default_proxy")]
    pub proxy: String,
    #[serde(default = "one")]
    pub eval_every: usize,
    #[serde(default = "default_eval_model")]
    pub eval_model: EvalModel,
    /// Backbone directory (default: the fetched all-MiniLM-L6-v2).
    #[serde(default)]
    pub model_dir: Option<PathBuf>,
    /// The device that embeds and fine-tunes: `cpu` or `cuda[:N]` (needs a `make build-cuda`
    /// binary); `proxal --device` overrides it. Unset: `$PROXAL_DEVICE`, else the CPU (see
    /// `crate::device`).
    #[serde(default)]
    pub device: Option<String>,
    /// Embedding batch size.
    #[serde(default = "default_embed_batch")]
    pub embed_batch: usize,
    /// Truncation length when the run embeds (v0 if missing; refreshed versions follow v0's).
    #[serde(default = "default_embed_max_len")]
    pub embed_max_len: usize,
    #[serde(default)]
    pub asvp: AsvpConfig,
    #[serde(default)]
    pub train: TrainConfig,
    #[serde(default)]
    pub stopping: crate::al::stopping::StoppingConfig,
    /// Candidate subpooling of BADGE, core-set and Cluster-Margin on large pools, and of any
    /// `subpool:<strategy>` (`strategy::SubpoolConfig`).
    #[serde(default)]
    pub subpool: crate::strategy::SubpoolConfig,
    /// Ship another backbone's model, trained on the labels this run's backbone acquires
    /// (PLASM); None: the run's backbone ships.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub successor: Option<SuccessorConfig>,
    /// Prices for the report (see `cost::Prices`); kept verbatim.
    #[serde(default)]
    pub prices: Option<toml::Value>,
}

fn default_strategy() -> String {
    "margin".into()
}
fn default_proxy() -> String {
    "logreg".into()
}
fn one() -> usize {
    1
}
fn two_hundred() -> usize {
    200
}
fn four() -> usize {
    4
}
fn default_eval_model() -> EvalModel {
    EvalModel::Auto
}
fn default_embed_batch() -> usize {
    32
}
fn default_embed_max_len() -> usize {
    128
}

impl RunConfig {
    pub fn load(path: &Path) -> Result<RunConfig> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config {}", path.display()))?;
        let cfg: RunConfig = toml::from_str(&text)
            .map_err(|e| anyhow::anyhow!("{}: {}", path.display(), e.message()))?;
        cfg.validate()
            .with_context(|| format!("{}", path.display()))?;
        Ok(cfg)
    }

    pub fn validate(&self) -> Result<()> {
        if self.name.is_empty()
            || !self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            bail!(
                "name '{}' must be letters, digits, '-', '_' or '.'",
                self.name
            );
        }
        if self.initial == 0 {
            bail!("initial must be at least 1");
        }
        if self.batch == 0 {
            bail!("batch must be at least 1");
        }
        if self.eval_every == 0 {
            bail!("eval_every must be at least 1");
        }
        if !(0.0..0.9).contains(&self.train.val_fraction) {
            bail!("train.val_fraction must be in [0, 0.9)");
        }
        let a = &self.asvp;
        if a.val_fraction.is_nan() || a.val_fraction <= 0.0 || a.val_fraction > 0.5 {
            bail!("asvp.val_fraction must be in (0, 0.5]");
        }
        if a.growth.is_nan() || a.growth <= 1.0 {
            bail!("asvp.growth must be above 1");
        }
        if !(0.0..1.0).contains(&a.min_gain) {
            bail!("asvp.min_gain must be in [0, 1)");
        }
        if let Some(sc) = &self.successor {
            if self.eval_model != EvalModel::LinearProbe {
                bail!("successor: the acquisition model is measured by its linear probe; set eval_model = \"linear-probe\" (the successor's own training is successor.method)");
            }
            if sc.pseudo_threshold.is_some() && sc.method != crate::train::Method::LinearProbe {
                bail!("successor: pseudo-labels train a linear-probe successor (successor.method = \"linear-probe\"); weighted fine-tuning is not built");
            }
            if let Some(t) = sc.pseudo_threshold {
                if t.is_nan() || t <= 0.0 || t > 1.0 {
                    bail!("successor.pseudo_threshold must be in (0, 1]");
                }
            }
            if sc.pseudo_weight.is_nan() || sc.pseudo_weight <= 0.0 || sc.pseudo_weight > 1.0 {
                bail!("successor.pseudo_weight must be in (0, 1]");
            }
            if sc.embed_max_len.is_some_and(|m| m < 2) {
                bail!("successor.embed_max_len must be at least 2");
            }
        }
        self.stopping.validate()
    }

    /// The config with every default filled in, as TOML (`proxal run --print-config`).
    pub fn resolved_toml(&self) -> Result<String> {
        Ok(toml::to_string(self)?)
    }

    /// Total labels at the end of round `r` (round 0 = the initial set).
    pub fn labels_after(&self, round: usize) -> usize {
        self.initial + round * self.batch
    }

    /// Of a batch of `k` picks, how many are drawn at random to validate alignment checks
    /// (asvp with checks and `val_source = "random"`; 0 otherwise).
    pub fn validation_picks(&self, k: usize) -> usize {
        if self.policy == PolicyKind::Asvp
            && self.asvp.checks()
            && self.asvp.val_source == ValSource::Random
        {
            ((k as f64) * self.asvp.val_fraction).round() as usize
        } else {
            0
        }
    }

    /// Is round `r` an evaluation point?
    pub fn is_eval_round(&self, round: usize) -> bool {
        round == self.rounds || round.is_multiple_of(self.eval_every)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_dataset_and_policy_are_enough_and_the_resolved_config_round_trips() {
        let cfg: RunConfig =
            toml::from_str("name = \"x\"\ndataset = \"d\"\npolicy = \"svpp\"\n").unwrap();
        cfg.validate().unwrap();
        assert_eq!((cfg.initial, cfg.batch, cfg.rounds), (200, 200, 4));
        assert_eq!(cfg.labels_after(cfg.rounds), 1000);
        let text = cfg.resolved_toml().unwrap();
        for key in [
            "initial = 200",
            "strategy = \"margin\"",
            "[asvp]",
            "trigger = \"schedule\"",
        ] {
            assert!(text.contains(key), "{key} missing from\n{text}");
        }
        let again: RunConfig = toml::from_str(&text).unwrap();
        assert_eq!(again.resolved_toml().unwrap(), text);
    }

    #[test]
    fn a_subpool_table_sets_some_keys_and_rejects_unknown_ones() {
        let base = "name = \"x\"\ndataset = \"d\"\npolicy = \"svpp\"\n";
        let cfg: RunConfig = toml::from_str(&format!(
            "{base}[subpool]\nuncertain = 0\n[subpool.ivf]\ncells = 64\n"
        ))
        .unwrap();
        let d = crate::strategy::SubpoolConfig::default();
        assert_eq!(cfg.subpool.uncertain, 0);
        assert_eq!(cfg.subpool.ivf.cells, 64);
        assert_eq!(cfg.subpool.neighbours, d.neighbours);
        assert_eq!(cfg.subpool.above, d.above);
        let bad = toml::from_str::<RunConfig>(&format!("{base}[subpool]\nneighbors = 3\n"));
        assert!(bad.unwrap_err().to_string().contains("neighbors"));
    }
}
