//! The two-intent fixture of the alignment and stopping tests: 160 pool and 60 test rows of two
//! banking77 intents, with a synthetic v0 cache whose fit to the label is known. Included by path
//! (`#[path = "common/two_intents.rs"] mod two_intents;`) next to `mod common;`.
#![allow(dead_code)]
use crate::common;
use proxal::data::{import_builtin, import_file, Builtin, Dataset, ImportOptions, Split};
use proxal::features::{Dtype, Provenance, Store, VersionSpec};
use proxal::home::Home;
use rand::{Rng, SeedableRng};
use serde_json::Value;
use std::path::Path;

pub const DIM: usize = 384;

/// 160 pool and 60 test rows of two banking77 intents, imported as dataset `two`.
pub fn two_intents(home: &Home, src: &Home) -> Dataset {
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
pub fn synthetic_v0(home: &Home, ds: &Dataset, row_vector: impl Fn(usize, u32) -> Vec<f32>) {
    synthetic_v0_as(home, ds, Dtype::F32, row_vector)
}

/// [`synthetic_v0`], stored as `dtype`.
pub fn synthetic_v0_as(
    home: &Home,
    ds: &Dataset,
    dtype: Dtype,
    row_vector: impl Fn(usize, u32) -> Vec<f32>,
) {
    let store = Store::new(home, &ds.name);
    let spec = VersionSpec {
        dataset: ds.name.clone(),
        dataset_fingerprint: ds.fingerprint.clone(),
        rows: ds.len(),
        dim: DIM,
        dtype,
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

pub fn read_jsonl(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

pub fn setup(test: &str) -> Option<(tempfile::TempDir, Home, Dataset)> {
    let assets = common::assets(test)?;
    std::env::set_var("PROXAL_ASSETS", &assets);
    let tmp = tempfile::tempdir().unwrap();
    let home = Home::new(tmp.path().join("home"));
    std::fs::create_dir_all(home.root()).unwrap();
    let src = Home::new(tmp.path().join("src"));
    let ds = two_intents(&home, &src);
    Some((tmp, home, ds))
}

pub fn stage_records<'a>(ledger: &'a [Value], stage: &str, round: u64) -> Vec<&'a Value> {
    ledger
        .iter()
        .filter(|r| r["stage"] == stage && r["round"] == round)
        .collect()
}

/// A v0 cache of noise: row r is a seeded random vector.
pub fn noise_v0(home: &Home, ds: &Dataset) {
    noise_v0_as(home, ds, Dtype::F32)
}

/// [`noise_v0`], stored as `dtype`.
pub fn noise_v0_as(home: &Home, ds: &Dataset, dtype: Dtype) {
    synthetic_v0_as(home, ds, dtype, |r, _| {
        let mut rng = rand::rngs::StdRng::seed_from_u64(r as u64);
        (0..DIM).map(|_| rng.random_range(-1.0f32..1.0)).collect()
    });
}

/// A v0 cache made of the label: each class a random ±1 centre in every dimension, each row its
/// centre plus a little noise (every dimension carries the label).
pub fn label_v0(home: &Home, ds: &Dataset) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let centres: Vec<Vec<f32>> = (0..2)
        .map(|_| {
            (0..DIM)
                .map(|_| if rng.random_bool(0.5) { 1.0 } else { -1.0 })
                .collect()
        })
        .collect();
    synthetic_v0(home, ds, |r, label| {
        let mut rng = rand::rngs::StdRng::seed_from_u64(r as u64);
        centres[label as usize]
            .iter()
            .map(|c| c + rng.random_range(-0.1f32..0.1))
            .collect()
    });
}
