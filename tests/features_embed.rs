//! `proxal embed` end to end on a tiny random BERT: every row embedded in table order, and a
//! job killed part-way (simulated, and a real kill -9 of the binary) resumes to a store that is
//! bit-identical to an uninterrupted run.
mod common;

use candle_core::Device;
use proxal::backbone::{tiny, Backbone, BertConfig, EmbedOptions};
use proxal::data::{Dataset, LabelMap, Split};
use proxal::features::embed::{embed_dataset, EmbedJob};
use proxal::features::{RowBlocks, Store, Verify};
use std::path::Path;

const WORDS: &[&str] = &[
    "card", "declined", "pin", "top", "up", "account", "transfer", "failed", "fee", "exchange",
    "rate", "cash", "refund", "atm", "my", "the", "is", "why", "how", "do", "i", "a", "new",
];

fn dataset(n: usize) -> Dataset {
    // Deterministic texts of varied length (1 … 40 words).
    let mut texts = Vec::with_capacity(n);
    let mut s: u64 = 12345;
    for _ in 0..n {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let len = 1 + (s >> 33) as usize % 40;
        let words: Vec<&str> = (0..len)
            .map(|k| WORDS[((s >> 20) as usize + k * 7) % WORDS.len()])
            .collect();
        texts.push(words.join(" "));
    }
    let ids: Vec<String> = (0..n).map(|i| format!("r{i}")).collect();
    let splits = (0..n)
        .map(|i| {
            if i % 10 == 0 {
                Split::Test
            } else if i % 10 == 1 {
                Split::Dev
            } else {
                Split::Pool
            }
        })
        .collect();
    let fingerprint = Dataset::compute_fingerprint(&ids, &texts);
    Dataset {
        name: "toy".into(),
        ids,
        texts,
        labels: vec![None; n],
        splits,
        label_map: LabelMap::default(),
        fingerprint,
    }
}

fn model_dir(dir: &Path) {
    let mut cfg = BertConfig::tiny(0);
    cfg.max_position_embeddings = 128;
    tiny::write_model_dir(dir, WORDS, &cfg, 3).unwrap();
}

fn job(chunk_rows: usize) -> EmbedJob {
    EmbedJob {
        version: 0,
        options: EmbedOptions {
            batch: 8,
            ..Default::default()
        },
        chunk_rows,
        checkpoint: None,
        progress: false,
    }
}

/// Every file of a version directory except the manifest's timestamps and the cost ledger:
/// (name, bytes).
fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().to_string_lossy().into_owned();
        if name == proxal::features::embed::COST_FILE {
            continue; // metered seconds, not features
        }
        if name == "manifest.json" {
            let mut m: serde_json::Value =
                serde_json::from_slice(&std::fs::read(e.path()).unwrap()).unwrap();
            for k in ["created_at", "updated_at"] {
                m.as_object_mut().unwrap().remove(k);
            }
            out.push((name, m.to_string().into_bytes()));
        } else {
            out.push((name, std::fs::read(e.path()).unwrap()));
        }
    }
    out.sort();
    out
}

#[test]
fn embeds_every_row_in_table_order() {
    let tmp = tempfile::tempdir().unwrap();
    model_dir(&tmp.path().join("model"));
    let bb = Backbone::load(&tmp.path().join("model"), &Device::Cpu, false).unwrap();
    let ds = dataset(37);
    let store = Store::at(tmp.path().join("features/toy"), "toy");
    let r = embed_dataset(&bb, &ds, &store, &job(10)).unwrap();
    assert_eq!((r.rows, r.embedded_rows, r.resumed_rows), (37, 37, 0));
    let fv = store.open_for(0, &ds, Verify::Checksums).unwrap();
    assert_eq!(fv.manifest().chunks.len(), 4);
    assert_eq!(fv.manifest().source.max_len, 128);
    for i in [0usize, 9, 10, 36] {
        let one = bb
            .embed(&[ds.texts[i].as_str()], &EmbedOptions::default())
            .unwrap();
        let d = one
            .iter()
            .zip(fv.row(i))
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(d < 1e-5, "row {i} differs by {d}");
    }
    // A second run finds the version complete and does nothing.
    let r = embed_dataset(&bb, &ds, &store, &job(10)).unwrap();
    assert_eq!((r.embedded_rows, r.resumed_rows), (0, 37));
}

#[test]
fn resumed_store_is_bit_identical_to_a_clean_run() {
    let tmp = tempfile::tempdir().unwrap();
    model_dir(&tmp.path().join("model"));
    let bb = Backbone::load(&tmp.path().join("model"), &Device::Cpu, false).unwrap();
    let ds = dataset(50);
    let clean = Store::at(tmp.path().join("clean/toy"), "toy");
    embed_dataset(&bb, &ds, &clean, &job(8)).unwrap();
    let want = snapshot(&clean.version_dir(0));
    assert_eq!(want.len(), 7 + 1);

    let store = Store::at(tmp.path().join("resumed/toy"), "toy");
    embed_dataset(&bb, &ds, &store, &job(8)).unwrap();
    let v0 = store.version_dir(0);
    let last = v0.join("chunk-00006.safetensors");

    // 1. The last chunk truncated.
    let len = std::fs::metadata(&last).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&last)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    let r = embed_dataset(&bb, &ds, &store, &job(8)).unwrap();
    assert_eq!((r.resumed_rows, r.embedded_rows), (48, 2));
    assert_eq!(snapshot(&v0), want);

    // 2. The last chunk removed.
    std::fs::remove_file(&last).unwrap();
    let r = embed_dataset(&bb, &ds, &store, &job(8)).unwrap();
    assert_eq!((r.resumed_rows, r.embedded_rows), (48, 2));
    assert_eq!(snapshot(&v0), want);

    // 3. Killed after chunk 2 became durable, while chunk 3 was half written: the manifest
    //    lists three chunks, a stray temp file and a stale later chunk lie around.
    let mpath = v0.join("manifest.json");
    let mut m: serde_json::Value = serde_json::from_slice(&std::fs::read(&mpath).unwrap()).unwrap();
    m["chunks"].as_array_mut().unwrap().truncate(3);
    m["complete"] = false.into();
    std::fs::write(&mpath, serde_json::to_vec_pretty(&m).unwrap()).unwrap();
    std::fs::write(v0.join(".chunk-00003.safetensors.tmp-999"), b"half").unwrap();
    std::fs::write(v0.join("chunk-00004.safetensors"), b"stale").unwrap();
    for c in [3, 5, 6] {
        let _ = std::fs::remove_file(v0.join(format!("chunk-{c:05}.safetensors")));
    }
    let r = embed_dataset(&bb, &ds, &store, &job(8)).unwrap();
    assert_eq!((r.resumed_rows, r.embedded_rows), (24, 26));
    std::fs::remove_file(v0.join(".chunk-00003.safetensors.tmp-999")).unwrap();
    assert_eq!(snapshot(&v0), want);
}

#[test]
fn cli_embed_survives_kill_9() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    let model = tmp.path().join("model");
    model_dir(&model);
    let ds = dataset(3000);
    ds.save(&home.join("datasets/toy"), "test").unwrap();
    let run = |home: &Path| -> std::process::Child {
        std::process::Command::new(env!("CARGO_BIN_EXE_proxal"))
            .arg("--home")
            .arg(home)
            .args([
                "embed",
                "--data",
                "toy",
                "--quiet",
                "--chunk-rows",
                "64",
                "--model-dir",
            ])
            .arg(&model)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    // Clean run in another home.
    let clean_home = tmp.path().join("clean");
    ds.save(&clean_home.join("datasets/toy"), "test").unwrap();
    let out = run(&clean_home).wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let want = snapshot(&clean_home.join("features/toy/v0"));

    // Kill -9 once three chunks are durable and the version is not complete, then rerun.
    let n_chunks = 3000usize.div_ceil(64);
    let v0 = home.join("features/toy/v0");
    let mut child = run(&home);
    common::poll(60.0, "3 durable chunks while v0 is incomplete", || {
        if let Some(s) = child.try_wait().unwrap() {
            panic!("`embed` ended ({s}) before 3 chunks were durable");
        }
        match common::manifest_state(&v0) {
            Some((chunks, false)) if chunks.len() >= 3 => Some(()),
            _ => None,
        }
    });
    common::kill_9(&mut child, "`proxal embed`");
    // The kill interrupted the job: the version is incomplete.
    let (listed, complete) = common::manifest_state(&v0).unwrap();
    assert!(
        !complete && listed.len() < n_chunks,
        "at the kill: {} of {n_chunks} chunks, complete {complete}",
        listed.len()
    );
    let durable = common::durable_chunks(&v0);
    let out = run(&home).wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    // The rerun resumed after the durable chunks and embedded only the rest …
    let done = durable.len() * 64;
    assert!(
        stdout.contains(&format!("3000 rows × 32 ({} embedded in", 3000 - done))
            && stdout.contains(&format!("resumed after {done} rows")),
        "{stdout}"
    );
    // … leaving the chunks durable at the kill untouched (same inode, mtime, bytes).
    for f in &durable {
        assert_eq!(
            &common::file_id(&v0.join(&f.name)),
            f,
            "{} was rewritten by the rerun",
            f.name
        );
    }
    // The result equals the uninterrupted run's, file for file.
    let mut got = snapshot(&v0);
    got.retain(|(n, _)| !n.contains(".tmp-"));
    assert_eq!(got, want);
    let fv = Store::at(home.join("features/toy"), "toy")
        .open(0, Verify::Checksums)
        .unwrap();
    assert_eq!(fv.n_rows(), 3000);
}
