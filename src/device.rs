//! The device that embeds and fine-tunes: `cpu` (the default) or `cuda[:N]`.
//!
//! Chosen once per process, before any backbone loads: `proxal --device cuda:0 <command> …`,
//! else a run's `device = "…"` (`proxal run`), else `$PROXAL_DEVICE`, else the CPU. Everything
//! that loads a backbone asks [`current`]; a ledger opened after the choice attributes its records
//! to that device ([`crate::cost::device_of`]), so reports price the run at the device's hourly
//! rate (on a GPU instance the whole run, CPU work included, is paid at the instance's rate).
//!
//! A CUDA device needs a build with the `cuda` feature (`make build-cuda`); asking for one in a
//! CPU build is a one-line error. Off the CPU the backbone runs candle's composed ops (the fused
//! and packed kernels of `backbone::ops`, `backbone::stack` and `backbone::fast` are CPU code
//! and step aside, see `ops::fused`) and fine-tuning uses `candle_nn::AdamW`
//! ([`crate::train::optim::Optimiser`]).
use anyhow::{bail, Context, Result};
use candle_core::Device;
use std::sync::OnceLock;

static CHOSEN: OnceLock<(String, Device)> = OnceLock::new();

/// The candle device `spec` names: `cpu`, `cuda` (GPU 0) or `cuda:N`.
pub fn parse(spec: &str) -> Result<Device> {
    let spec = spec.trim();
    let gpu = match spec {
        "cpu" => return Ok(Device::Cpu),
        "cuda" => 0,
        s => match s.strip_prefix("cuda:").map(str::parse::<usize>) {
            Some(Ok(n)) => n,
            _ => bail!("device {spec:?}: expected cpu, cuda or cuda:N"),
        },
    };
    if !cfg!(feature = "cuda") {
        bail!(
            "device {spec}: this proxal was built without CUDA support (`make build-cuda` builds one)"
        );
    }
    Device::new_cuda(gpu).with_context(|| format!("device {spec}: cannot open GPU {gpu}"))
}

/// Choose the process's device from `spec` (see [`parse`]). Choosing again is fine when it names
/// the same device; another one is an error (backbones and ledgers may already use the first).
pub fn set(spec: &str) -> Result<()> {
    let device = parse(spec)?;
    let canon = canonical(&device);
    let (held, _) = CHOSEN.get_or_init(|| (canon.clone(), device));
    if *held != canon {
        bail!("device {spec}: this process already runs on {held}");
    }
    Ok(())
}

/// A run's or project's `device` (read from `file`), chosen unless the process already chose
/// one (`proxal --device`, which wins); a bad one is an error naming the file.
pub fn from_config(spec: Option<&str>, file: &std::path::Path) -> Result<()> {
    match spec {
        Some(spec) if !chosen() => set(spec).with_context(|| format!("{}: device", file.display())),
        _ => Ok(()),
    }
}

/// Whether a device was chosen (by [`set`]) in this process.
pub fn chosen() -> bool {
    CHOSEN.get().is_some()
}

/// The process's device: the one [`set`] chose, else `$PROXAL_DEVICE`'s, else the CPU. A bad
/// `$PROXAL_DEVICE` is an error here, where it is first needed.
pub fn current() -> Result<Device> {
    if let Some((_, d)) = CHOSEN.get() {
        return Ok(d.clone());
    }
    match std::env::var("PROXAL_DEVICE") {
        Ok(spec) if !spec.trim().is_empty() => {
            set(&spec).context("PROXAL_DEVICE")?;
            Ok(CHOSEN.get().expect("set above").1.clone())
        }
        _ => Ok(Device::Cpu),
    }
}

/// `cpu` or `cuda:N`.
fn canonical(device: &Device) -> String {
    match device.location() {
        candle_core::DeviceLocation::Cpu => "cpu".into(),
        candle_core::DeviceLocation::Cuda { gpu_id } => format!("cuda:{gpu_id}"),
        candle_core::DeviceLocation::Metal { gpu_id } => format!("metal:{gpu_id}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_or_fail_in_one_line() {
        assert!(parse("cpu").unwrap().is_cpu());
        for bad in ["gpu", "cuda:x", "cuda:", "CPU0"] {
            let e = format!("{:#}", parse(bad).unwrap_err());
            assert!(e.contains("expected cpu, cuda or cuda:N"), "{bad}: {e}");
            assert!(!e.contains('\n'), "{bad}: not one line: {e}");
        }
        if !cfg!(feature = "cuda") {
            let e = format!("{:#}", parse("cuda:1").unwrap_err());
            assert!(e.contains("built without CUDA support"), "{e}");
        }
    }

    #[test]
    fn the_cpu_is_the_default_and_a_second_choice_must_agree() {
        // This test binary's process: nothing chose a device unless PROXAL_DEVICE says so.
        if std::env::var_os("PROXAL_DEVICE").is_none() && !chosen() {
            assert!(current().unwrap().is_cpu());
        }
        set("cpu").unwrap();
        set("cpu").unwrap();
        assert!(current().unwrap().is_cpu());
        if cfg!(feature = "cuda") {
            return;
        }
        // Another device after the choice: refused (in a CPU build, already by parse).
        assert!(set("cuda:0").is_err());
    }
}
