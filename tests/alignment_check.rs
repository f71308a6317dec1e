//! Alignment checks (docs/ALIGNMENT.md) where the right answer is known: the same texts (two
//! distinct banking77 intents) with a synthetic v0 cache that is either pure noise (the cache
//! fits the task not at all: a fine-tune must beat the probe, and the run aligns in round 0) or
//! made of the label (the cache fits perfectly: nothing beats the probe, and the run keeps it).
mod common;

use proxal::data::{import_builtin, import_file, Builtin, Dataset, ImportOptions, Split};
use proxal::features::{Provenance, Store, VersionSpec};
use proxal::home::Home;
use rand::{Rng, SeedableRng};
use serde_json::Value;
use std::path::Path;

const DIM: usize = 384;

/// 160 pool and 60 test rows of two banking77 intents, imported as dataset `two`.
fn two_intents(home: &Home, src: &Home) -> Dataset {
    import_builtin(src, Builtin::Banking77, None).unwrap();
    let b77 = Dataset::load(src, "banking77").unwrap();
    let path = home.root().join("two.csv");
    let mut w = csv::Writer::from_path(&path).unwrap();
    w.write_record(["id", "text", "label", "split"]).unwrap();
    for intent in ["card_arrival", "exchange_rate"] {
        let id = b77.label_map.id(intent).unwrap();
        let (mut pool, mut test) = (0, 0);
        for i in 0..b77.len() {
            if b77.labels[i] != Some(id) {
                continue;
            }
            let split = match b77.splits[i] {
                Split::Pool if pool < 80 => {
                    pool += 1;
                    "train"
                }
                Split::Test if test < 30 => {
                    test += 1;
                    "test"
                }
                _ => continue,
            };
            let row_id = format!("b77-{}", b77.ids[i]);
            w.write_record([row_id.as_str(), b77.texts[i].as_str(), intent, split])
                .unwrap();
        }
        assert_eq!((pool, test), (80, 30), "banking77 has enough {intent} rows");
    }
    w.flush().unwrap();
    let mut opts = ImportOptions::new("two", "text");
    opts.label_col = Some("label".into());
    opts.split_col = Some("split".into());
    import_file(home, &path, &opts).unwrap();
    Dataset::load(home, "two").unwrap()
}

/// Write v0 of `ds` from `row_vector` (row, label id) instead of embedding it.
fn synthetic_v0(home: &Home, ds: &Dataset, row_vector: impl Fn(usize, u32) -> Vec<f32>) {
    let store = Store::new(home, &ds.name);
    let spec = VersionSpec {
        dataset: ds.name.clone(),
        dataset_fingerprint: ds.fingerprint.clone(),
        rows: ds.len(),
        dim: DIM,
        chunk_rows: 64,
        source: Provenance {
            backbone: "synthetic".into(),
            backbone_dir: "none".into(),
            weights_sha256: String::new(),
            tokenizer_sha256: String::new(),
            checkpoint: None,
            pooling: "mean".into(),
            normalize: true,
            max_len: 32,
        },
    };
    let mut w = store.writer(0, spec).unwrap();
    for c in 0..w.n_chunks() {
        let data: Vec<f32> = w
            .chunk_range(c)
            .flat_map(|r| row_vector(r, ds.labels[r].unwrap()))
            .collect();
        w.write_chunk(c, &data).unwrap();
    }
    assert!(w.is_complete());
}

fn read_jsonl(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Run an auto-triggered asvp (full fine-tuning as the one candidate) over `two` and return its
/// progress and ledger records.
fn run_auto(home: &Home) -> (Vec<Value>, Vec<Value>) {
    let cfg = home.root().join("check.toml");
    std::fs::write(
        &cfg,
        r#"name = "check"
dataset = "two"
policy = "asvp"
seed = 0
initial = 120
batch = 20
rounds = 1
strategy = "margin"
eval_model = "linear-probe"

[asvp]
trigger = "auto"
ft_threshold = 0
val_fraction = 0.25

[train]
epochs = 3
batch_size = 16
max_len = 32
"#,
    )
    .unwrap();
    let (code, out, err) = common::proxal(home.root(), &["run", cfg.to_str().unwrap(), "--quiet"]);
    assert_eq!(code, Some(0), "proxal run failed:\n{out}\n{err}");
    let dir = home.runs().join("check");
    (
        read_jsonl(&dir.join("progress.jsonl")),
        read_jsonl(&dir.join("ledger.jsonl")),
    )
}

fn setup(test: &str) -> Option<(tempfile::TempDir, Home, Dataset)> {
    let assets = common::assets(test)?;
    std::env::set_var("PROXAL_ASSETS", &assets);
    let tmp = tempfile::tempdir().unwrap();
    let home = Home::new(tmp.path().join("home"));
    std::fs::create_dir_all(home.root()).unwrap();
    let src = Home::new(tmp.path().join("src"));
    let ds = two_intents(&home, &src);
    Some((tmp, home, ds))
}

fn stage_records<'a>(ledger: &'a [Value], stage: &str, round: u64) -> Vec<&'a Value> {
    ledger
        .iter()
        .filter(|r| r["stage"] == stage && r["round"] == round)
        .collect()
}

#[test]
fn a_cache_of_noise_is_aligned_in_round_0() {
    let Some((_tmp, home, ds)) = setup("a_cache_of_noise_is_aligned_in_round_0") else {
        return;
    };
    synthetic_v0(&home, &ds, |r, _| {
        let mut rng = rand::rngs::StdRng::seed_from_u64(r as u64);
        (0..DIM).map(|_| rng.random_range(-1.0f32..1.0)).collect()
    });
    let (progress, ledger) = run_auto(&home);
    let check = &progress[0]["check"];
    assert_eq!(check["pays"], true, "round 0 check: {check}");
    assert_eq!(check["best"], "fine-tune");
    let (train, val) = (
        check["train_rows"].as_u64().unwrap(),
        check["val_rows"].as_u64().unwrap(),
    );
    assert_eq!(train + val, 120);
    assert!((15..=45).contains(&val), "a quarter held out, got {val}");
    // Noise predicts a two-way label at chance; the fine-tuned model well above it.
    assert!(check["probe_accuracy"].as_f64().unwrap() < 0.8, "{check}");
    assert!(check["gain"].as_f64().unwrap() > 0.15, "{check}");
    assert!(progress[0]["aligned"].as_str().is_some());
    assert_eq!(progress[0]["features"], "run:v1");
    // The check's fine-tune trained on the non-validation rows only (whole epochs of them), was
    // booked as indicator, and the refresh used it without training again.
    let indicator = stage_records(&ledger, "indicator", 0);
    let trained: Vec<u64> = indicator
        .iter()
        .filter_map(|r| r["trained_rows"].as_u64())
        .filter(|&n| n > 0)
        .collect();
    assert_eq!(trained.len(), 1, "one candidate fine-tune: {indicator:?}");
    assert_eq!(trained[0] % train, 0, "trained on {} rows", trained[0]);
    assert!(stage_records(&ledger, "fine_tune", 0).is_empty());
    assert_eq!(stage_records(&ledger, "refresh", 0).len(), 1);
    // The gain was sure, so auto checks again in the next round, the final one: there the check
    // decides the model that ships, and is booked as `ship`.
    assert!(progress[1]["check"].is_object(), "{}", progress[1]);
    assert!(stage_records(&ledger, "indicator", 1).is_empty());
    assert!(stage_records(&ledger, "ship", 1)
        .iter()
        .any(|r| r["trained_rows"].as_u64().unwrap_or(0) > 0));
}

#[test]
fn a_cache_that_is_the_label_is_kept() {
    let Some((_tmp, home, ds)) = setup("a_cache_that_is_the_label_is_kept") else {
        return;
    };
    // Each class a random ±1 centre in every dimension, each row its centre plus a little
    // noise: every dimension carries the label.
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let centres: Vec<Vec<f32>> = (0..2)
        .map(|_| {
            (0..DIM)
                .map(|_| if rng.random_bool(0.5) { 1.0 } else { -1.0 })
                .collect()
        })
        .collect();
    synthetic_v0(&home, &ds, |r, label| {
        let mut rng = rand::rngs::StdRng::seed_from_u64(r as u64);
        centres[label as usize]
            .iter()
            .map(|c| c + rng.random_range(-0.1f32..0.1))
            .collect()
    });
    let (progress, ledger) = run_auto(&home);
    let check = &progress[0]["check"];
    assert_eq!(check["pays"], false, "round 0 check: {check}");
    assert_eq!(check["probe_accuracy"], 1.0, "{check}");
    assert!(check["gain"].as_f64().unwrap() <= 0.0, "{check}");
    assert!(progress[0]["aligned"].is_null());
    assert_eq!(progress[0]["features"], "v0");
    assert!(stage_records(&ledger, "refresh", 0).is_empty());
    assert!(!stage_records(&ledger, "indicator", 0).is_empty());
    // Sure that aligning does not pay, auto settles: no check in the final round.
    assert!(progress[1].get("check").is_none());
}

/// An annotation project with the auto trigger: `status` says the first `next` after labels
/// arrive will check whether aligning pays, and then shows what the check found.
#[test]
fn a_project_shows_its_alignment_check() {
    let Some((tmp, home, ds)) = setup("a_project_shows_its_alignment_check") else {
        return;
    };
    // The user's file: the pool without labels, the test rows with them.
    let data = tmp.path().join("pool.csv");
    let mut w = csv::Writer::from_path(&data).unwrap();
    w.write_record(["id", "text", "label", "split"]).unwrap();
    let mut gold = std::collections::HashMap::new();
    for i in 0..ds.len() {
        let label = ds.label_map.name(ds.labels[i].unwrap());
        let (label, split) = match ds.splits[i] {
            Split::Test => (label, "test"),
            _ => {
                gold.insert(ds.ids[i].clone(), label.to_string());
                ("", "train")
            }
        };
        w.write_record([ds.ids[i].as_str(), ds.texts[i].as_str(), label, split])
            .unwrap();
    }
    w.flush().unwrap();
    let proj = tmp.path().join("proj");
    let p = proj.to_str().unwrap();
    let run = |args: &[&str]| {
        let (code, out, err) = common::proxal(home.root(), args);
        assert_eq!(code, Some(0), "proxal {args:?}:\n{out}\n{err}");
        out
    };
    run(&[
        "init",
        p,
        "--data",
        data.to_str().unwrap(),
        "--id-col",
        "id",
        "--label-col",
        "label",
        "--split-col",
        "split",
        "--labels",
        "card_arrival,exchange_rate",
        "--policy",
        "asvp",
        "--batch",
        "50",
    ]);
    let cfg = std::fs::read_to_string(proj.join("config.toml")).unwrap();
    let cfg = cfg
        .replace("trigger = \"schedule\"", "trigger = \"auto\"")
        .replace("ft_threshold = 800", "ft_threshold = 0")
        .replace("max_len = 64", "max_len = 32");
    std::fs::write(proj.join("config.toml"), cfg).unwrap();
    let answer = |round: usize| {
        let answers = tmp.path().join(format!("answers-{round}.csv"));
        let mut w = csv::Writer::from_path(&answers).unwrap();
        w.write_record(["id", "label"]).unwrap();
        let batch = proj.join(format!("batches/round-{round:03}/batch.csv"));
        for r in csv::Reader::from_path(&batch).unwrap().records() {
            let id = r.unwrap()[0].to_string();
            w.write_record([id.as_str(), gold[&id].as_str()]).unwrap();
        }
        w.flush().unwrap();
        run(&["label", answers.to_str().unwrap(), "--project", p]);
    };
    run(&["next", "--project", p, "--quiet"]);
    answer(0);
    let before = run(&["status", "--project", p]);
    assert!(
        before.contains("check whether aligning pays (first alignment check)"),
        "{before}"
    );
    assert!(!before.contains("alignment check (round"), "{before}");
    run(&["next", "--project", p, "--quiet"]);
    let after = run(&["status", "--project", p]);
    let line = after
        .lines()
        .find(|l| l.starts_with("alignment check (round 0): probe "))
        .unwrap_or_else(|| panic!("no check line in:\n{after}"));
    assert!(line.contains("held-out labels"), "{line}");
    // With the next batch labelled (50 → 100 labels), what `next` will check follows from what
    // the check found: a gain surely above 0.02 means check again; anything else, the labels
    // doubled, check again (auto settles only after an alignment, and this was the first check).
    answer(1);
    let status = run(&["status", "--project", p]);
    let (gain, se) = {
        let inner = line.rsplit_once('(').unwrap().1;
        let (g, rest) = inner.split_once(" ± ").unwrap();
        let se = rest.split_once(')').unwrap().0;
        (g.parse::<f64>().unwrap(), se.parse::<f64>().unwrap())
    };
    let why = if gain - se >= 0.02 && gain > 0.0 {
        "the last check, at 50 labels, gained surely more than 0.02"
    } else {
        "labels grew 2.0× since the last check (50 → 100)"
    };
    assert!(
        status.contains(&format!("check whether aligning pays ({why}")),
        "{line}\n{status}"
    );
}
