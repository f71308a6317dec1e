//! Prices that turn ledger seconds and bought labels into money, at report time.
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What a label and an hour of each device cost, in US dollars.
///
/// Defaults (order-of-magnitude list prices; change them in a run's `[prices]` or with
/// `proxal report --price-per-label X --price-per-hour DEVICE=X`):
///
/// - **`price_per_label` = $0.10** — one crowd label for a short-text intent item. AWS SageMaker
///   Ground Truth lists $0.012 per worker per text-classification object on Mechanical Turk, with
///   3–5 workers per object by default for consensus, plus a per-object Ground Truth fee: roughly
///   $0.05–0.12 for one consolidated label.
/// - **`cpu` = $0.085/h** — a 2-vCPU on-demand cloud instance like this development machine
///   (AWS us-east-1 Linux on-demand: c6i.large $0.085/h; m7g.large $0.0816/h).
/// - **`cuda` = $1.006/h** — one GPU: AWS g5.xlarge (1 × NVIDIA A10G, 4 vCPU) on-demand in
///   us-east-1. An H100 rents for about $2–4 per GPU-hour at GPU clouds: override `cuda=…`.
///
/// Device prices are looked up by the ledger's device name (`cpu:2-core`, `cuda:0`) first, then by
/// its class, the part before `:` ([`device_class`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prices {
    /// US dollars per label bought.
    pub price_per_label: f64,
    /// US dollars per hour of wall-clock time, by device name or class.
    pub price_per_device_hour: BTreeMap<String, f64>,
}

impl Default for Prices {
    fn default() -> Self {
        Self {
            price_per_label: 0.10,
            price_per_device_hour: BTreeMap::from([
                ("cpu".to_string(), 0.085),
                ("cuda".to_string(), 1.006),
            ]),
        }
    }
}

/// The class of a device name: `cpu:2-core` → `cpu`, `cuda:0` → `cuda`.
pub fn device_class(device: &str) -> &str {
    device.split(':').next().unwrap_or(device)
}

/// A partial price table, as written in a run's `config.toml`:
///
/// ```toml
/// [prices]
/// price_per_label = 0.08
/// [prices.price_per_device_hour]
/// cpu = 0.10
/// "cuda:0" = 2.50
/// ```
///
/// Missing entries keep the defaults of [`Prices`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PricesConfig {
    #[serde(default)]
    pub price_per_label: Option<f64>,
    #[serde(default)]
    pub price_per_device_hour: BTreeMap<String, f64>,
}

impl PricesConfig {
    /// Parse a `[prices]` table (as a TOML value).
    pub fn from_toml(value: &toml::Value) -> Result<Self> {
        let cfg: Self = value.clone().try_into().context("invalid [prices] table")?;
        cfg.validate()?;
        Ok(cfg)
    }

    fn validate(&self) -> Result<()> {
        if let Some(p) = self.price_per_label {
            if !(p.is_finite() && p > 0.0) {
                bail!("price_per_label must be a positive number of dollars, got {p}");
            }
        }
        for (d, p) in &self.price_per_device_hour {
            if !(p.is_finite() && *p >= 0.0) {
                bail!("price per hour of {d:?} must be a non-negative number of dollars, got {p}");
            }
        }
        Ok(())
    }
}

impl Prices {
    /// Load a TOML file holding either a `[prices]` table or the price keys at top level.
    pub fn load(path: &std::path::Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let v: toml::Value =
            toml::from_str(&text).with_context(|| format!("{}: invalid TOML", path.display()))?;
        let table = v.get("prices").cloned().unwrap_or(v);
        let cfg = PricesConfig::from_toml(&table).with_context(|| path.display().to_string())?;
        let mut p = Prices::default();
        p.apply(&cfg);
        Ok(p)
    }

    /// Overlay a partial table on these prices.
    pub fn apply(&mut self, cfg: &PricesConfig) {
        if let Some(p) = cfg.price_per_label {
            self.price_per_label = p;
        }
        for (d, p) in &cfg.price_per_device_hour {
            self.price_per_device_hour.insert(d.clone(), *p);
        }
    }

    /// Dollars per hour of `device`: by its exact name, else by its class; None if unpriced.
    pub fn per_hour(&self, device: &str) -> Option<f64> {
        self.price_per_device_hour
            .get(device)
            .or_else(|| self.price_per_device_hour.get(device_class(device)))
            .copied()
    }

    /// Dollars for `seconds` of wall time on `device`; an error naming the device if unpriced.
    pub fn compute_cost(&self, device: &str, seconds: f64) -> Result<f64> {
        match self.per_hour(device) {
            Some(p) => Ok(p * seconds / 3600.0),
            None => bail!(
                "no price per hour for device {device:?}: add it to [prices.price_per_device_hour] or pass --price-per-hour {}=USD",
                device_class(device)
            ),
        }
    }

    /// Parse a `DEVICE=USD` command-line override.
    pub fn parse_hour_override(s: &str) -> Result<(String, f64)> {
        let (d, p) = s.split_once('=').with_context(|| {
            format!("--price-per-hour expects DEVICE=USD (e.g. cpu=0.085), got {s:?}")
        })?;
        let p: f64 = p
            .trim()
            .parse()
            .with_context(|| format!("--price-per-hour {s:?}: {p:?} is not a number"))?;
        if !(p.is_finite() && p >= 0.0) || d.trim().is_empty() {
            bail!("--price-per-hour {s:?}: expects a device name and a non-negative price");
        }
        Ok((d.trim().to_string(), p))
    }
}
