//! CUDA against the CPU (issue 15): embeddings, and one fine-tuning step's loss and gradients, of
//! a tiny random BERT (written here, so the test binary needs nothing else on a GPU machine) and
//! of MiniLM where the assets are. They run in a `cuda` build (`make build-cuda`) where a GPU
//! answers; elsewhere each prints why it skipped (a machine skip: `make test` counts and lists
//! it).
mod common;

use candle_core::{Device, Tensor};
use common::{skip, Skip};
use proxal::backbone::{pooling, tiny, Backbone, BertConfig, EmbedOptions, Pooling};
use std::path::PathBuf;

const TEXTS: &[&str] = &[
    "my card was declined at the shop",
    "how do I top up with a bank transfer?",
    "I want to change my PIN",
    "the exchange rate you gave me was wrong and I would like to know why it differs from \
     the one on the website, because I was charged more than I expected for a transfer \
     to my account in euros last week",
    "where is my new card",
    "cancel the payment",
    "is there a fee for withdrawing cash abroad?",
    "refund not showing up",
];

/// The models to compare: a tiny random BERT over the texts' words (in `keep`), and MiniLM when
/// the assets are here.
fn models(keep: &tempfile::TempDir) -> Vec<PathBuf> {
    let words: Vec<&str> = TEXTS
        .iter()
        .flat_map(|t| t.split(|c: char| !c.is_alphanumeric()))
        .filter(|w| !w.is_empty())
        .collect();
    tiny::write_model_dir(keep.path(), &words, &BertConfig::tiny(0), 7).unwrap();
    let mut out = vec![keep.path().to_path_buf()];
    let minilm = common::assets_dir_unchecked().join("minilm");
    if minilm.join("model.safetensors").exists() {
        out.push(minilm);
    }
    out
}

/// GPU 0, or `None` after skipping `test` (no `cuda` feature in this build, or no device).
fn gpu(test: &str) -> Option<Device> {
    if !cfg!(feature = "cuda") {
        skip(
            test,
            Skip::Machine,
            "built without the cuda feature (make build-cuda)",
        );
        return None;
    }
    match Device::new_cuda(0) {
        Ok(d) => Some(d),
        Err(e) => {
            skip(test, Skip::Machine, &format!("no CUDA device: {e}"));
            None
        }
    }
}

#[test]
fn cuda_embeddings_match_the_cpu() {
    let test = "cuda_embeddings_match_the_cpu";
    let Some(dev) = gpu(test) else { return };
    let keep = tempfile::tempdir().unwrap();
    let opts = EmbedOptions::default();
    for model in models(&keep) {
        let on = |d: &Device| {
            Backbone::load(&model, d, false)
                .unwrap()
                .embed(TEXTS, &opts)
                .unwrap()
        };
        let (cpu, cuda) = (on(&Device::Cpu), on(&dev));
        assert_eq!(cpu.len(), cuda.len());
        let diff = common::max_abs_diff(&cpu, &cuda);
        assert!(
            diff <= 1e-4,
            "{}: CUDA vs CPU embeddings: max |diff| {diff}",
            model.display()
        );
    }
}

/// The loss and every weight's gradient of one step: MiniLM, mean pooling, a fixed head.
fn one_step(minilm: &std::path::Path, dev: &Device) -> (f32, Vec<(String, Vec<f32>)>) {
    let bb = Backbone::load(minilm, dev, true).unwrap();
    let (ids, mask) = bb.tokenize(TEXTS, 64).unwrap();
    let head: Vec<f32> = (0..bb.dim() * 3)
        .map(|i| ((i * 37 % 101) as f32 / 101.0 - 0.5) * 0.2)
        .collect();
    let head = Tensor::from_vec(head, (bb.dim(), 3), dev).unwrap();
    let hidden = bb.model.forward_t(&ids, &mask, None).unwrap();
    let pooled = pooling::pool(&hidden, &mask, Pooling::Mean).unwrap();
    let logits = pooled.matmul(&head).unwrap();
    let labels = Tensor::new(&[0u32, 1, 2, 0, 1, 2, 0, 1], dev).unwrap();
    let loss = candle_nn::loss::cross_entropy(&logits, &labels).unwrap();
    let grads = loss.backward().unwrap();
    let named = bb
        .model
        .named_tensors()
        .into_iter()
        .map(|(name, t)| {
            let g = grads
                .get(&t)
                .unwrap_or_else(|| panic!("{name}: no gradient"));
            (name, g.flatten_all().unwrap().to_vec1::<f32>().unwrap())
        })
        .collect();
    (loss.to_scalar::<f32>().unwrap(), named)
}

#[test]
fn a_fine_tuning_step_on_cuda_matches_the_cpu() {
    let test = "a_fine_tuning_step_on_cuda_matches_the_cpu";
    let Some(dev) = gpu(test) else { return };
    let keep = tempfile::tempdir().unwrap();
    for model in models(&keep) {
        same_step(&model, &dev);
    }
}

fn same_step(model: &std::path::Path, dev: &Device) {
    let (loss_cpu, g_cpu) = one_step(model, &Device::Cpu);
    let (loss_gpu, g_gpu) = one_step(model, dev);
    assert!(
        (loss_cpu - loss_gpu).abs() <= 1e-3 * loss_cpu.abs(),
        "loss: CPU {loss_cpu}, CUDA {loss_gpu}"
    );
    for ((name, a), (_, b)) in g_cpu.iter().zip(&g_gpu) {
        let norm = a.iter().map(|v| v * v).sum::<f32>().sqrt();
        let diff = a
            .iter()
            .zip(b)
            .map(|(x, y)| (x - y) * (x - y))
            .sum::<f32>()
            .sqrt();
        // The key bias's gradient is zero but for rounding (softmax shift invariance).
        assert!(
            diff <= 1e-3 * norm + 1e-6,
            "{name}: CUDA gradient off by {diff} (norm {norm})"
        );
    }
}

/// The device is chosen on the command line or in a run's config; in a CPU build a CUDA device is
/// a one-line error before any work, and `cpu` is accepted everywhere.
#[test]
fn the_device_is_chosen_up_front_with_one_line_errors() {
    let home = tempfile::tempdir().unwrap();
    let one_line = |err: &str| err.trim().lines().count() == 1;
    let (code, out, _) = common::proxal(home.path(), &["--device", "cpu", "assets", "where"]);
    assert_eq!(code, Some(0), "--device cpu: {out}");
    let (code, _, err) = common::proxal(home.path(), &["--device", "tpu:0", "assets", "where"]);
    assert_eq!(code, Some(common::ERROR_EXIT));
    assert!(
        err.contains("expected cpu, cuda or cuda:N") && one_line(&err),
        "{err}"
    );
    // A run's config names its device; a bad one fails naming the file, and no run starts.
    let cfg = home.path().join("gpu-run.toml");
    let write = |device: &str| {
        std::fs::write(
            &cfg,
            format!("name = \"gpu-run\"\ndataset = \"banking77\"\npolicy = \"svpp\"\ndevice = \"{device}\"\n"),
        )
        .unwrap()
    };
    write("tpu");
    let (code, _, err) = common::proxal(home.path(), &["run", cfg.to_str().unwrap()]);
    assert_eq!(code, Some(common::ERROR_EXIT));
    assert!(
        err.contains("gpu-run.toml") && err.contains("expected cpu") && one_line(&err),
        "{err}"
    );
    assert!(!home.path().join("experiments").exists(), "a run started");
    if !cfg!(feature = "cuda") {
        write("cuda:0");
        let (code, _, err) = common::proxal(home.path(), &["run", cfg.to_str().unwrap()]);
        assert_eq!(code, Some(common::ERROR_EXIT));
        assert!(
            err.contains("built without CUDA support") && one_line(&err),
            "{err}"
        );
        let (code, _, err) = common::proxal(
            home.path(),
            &["--device", "cuda", "run", cfg.to_str().unwrap()],
        );
        assert_eq!(code, Some(common::ERROR_EXIT));
        assert!(
            err.contains("built without CUDA support") && one_line(&err),
            "{err}"
        );
    }
}

/// `make bench-gpu`'s binary runs its whole protocol (here on the CPU, one pass each) and prints
/// the JSON the merge reads.
#[test]
fn the_gpu_benchmark_runs_its_protocol_on_any_device() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_bench_gpu"))
        .args([
            "--device",
            "cpu",
            "--reps",
            "1",
            "--steps",
            "1",
            "--embed-batch",
            "16",
        ])
        .output()
        .expect("run bench_gpu");
    let (code, stdout, stderr) = common::outcome(out);
    assert_eq!(code, Some(0), "{stderr}");
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).expect("one JSON object");
    for len in ["16", "128"] {
        let r = v["embed_rows_per_second"][len].as_f64().unwrap();
        assert!(r > 0.0 && r.is_finite(), "{len}: {r}");
    }
    let s = v["finetune_steps_per_second"].as_f64().unwrap();
    assert!(s > 0.0 && s.is_finite(), "{s}");
    assert_eq!(v["device"], "cpu");
}
