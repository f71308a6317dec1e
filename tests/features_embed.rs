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
        shard: None,
        dtype: proxal::features::Dtype::F32,
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
            .zip(fv.row(i).iter())
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
    let run =
        |home: &Path| -> std::process::Child { embed_cmd(home, &model, &[], &[]).spawn().unwrap() };
    // Clean run in another home.
    let clean_home = tmp.path().join("clean");
    ds.save(&clean_home.join("datasets/toy"), "test").unwrap();
    let out = run(&clean_home).wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let want = snapshot(&clean_home.join("features/toy@model/v0"));

    // Kill -9 once three chunks are durable and the version is not complete, then rerun.
    let n_chunks = 3000usize.div_ceil(64);
    let v0 = home.join("features/toy@model/v0");
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
    common::assert_untouched(&v0, &durable, "the rerun");
    // The result equals the uninterrupted run's, file for file.
    let mut got = snapshot(&v0);
    got.retain(|(n, _)| !n.contains(".tmp-"));
    assert_eq!(got, want);
    let fv = Store::at(home.join("features/toy@model"), "toy")
        .open(0, Verify::Checksums)
        .unwrap();
    assert_eq!(fv.n_rows(), 3000);
}

/// (chunk files listed, complete) of shard record `shards/<name>` of a version.
fn shard_state(version_dir: &Path, name: &str) -> Option<(Vec<String>, bool)> {
    let b = std::fs::read(version_dir.join("shards").join(name)).ok()?;
    let r: serde_json::Value = serde_json::from_slice(&b).ok()?;
    let chunks = r["version"]["chunks"]
        .as_array()?
        .iter()
        .map(|c| c["file"].as_str().unwrap_or_default().to_string())
        .collect();
    Some((chunks, r["version"]["complete"].as_bool()?))
}

/// `proxal embed` in a home holding the toy dataset, with `args` and `env` added.
fn embed_cmd(
    home: &Path,
    model: &Path,
    args: &[&str],
    env: &[(&str, &str)],
) -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_proxal"));
    c.arg("--home")
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
        .arg(model)
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    for k in [
        "SLURM_ARRAY_TASK_ID",
        "SLURM_ARRAY_TASK_COUNT",
        "SLURM_ARRAY_TASK_MIN",
        "JOB_COMPLETION_INDEX",
        "PROXAL_SHARD_COUNT",
    ] {
        c.env_remove(k);
    }
    c.envs(env.iter().copied());
    c
}

#[test]
fn shards_make_the_same_version_as_one_process() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("model");
    model_dir(&model);
    let ds = dataset(1000); // 16 chunks of 64 rows: shards of 5, 5 and 6 chunks
    let (one, sharded) = (tmp.path().join("one"), tmp.path().join("sharded"));
    for h in [&one, &sharded] {
        ds.save(&h.join("datasets/toy"), "test").unwrap();
    }
    let run = |home: &Path, args: &[&str], env: &[(&str, &str)]| {
        let out = embed_cmd(home, &model, args, env).output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, _, err) = run(&one, &[], &[]);
    assert_eq!(code, Some(0), "{err}");
    let want = snapshot(&one.join("features/toy@model/v0"));
    // A shard of a version one process finished has nothing to do and writes nothing.
    let before: Vec<_> = std::fs::read_dir(one.join("features/toy@model/v0"))
        .unwrap()
        .map(|e| common::file_id(&e.unwrap().path()))
        .collect();
    let (code, out, err) = run(&one, &["--shard", "1/3"], &[]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("already complete"), "{out}");
    let after: Vec<_> = std::fs::read_dir(one.join("features/toy@model/v0"))
        .unwrap()
        .map(|e| common::file_id(&e.unwrap().path()))
        .collect();
    assert_eq!(before, after);
    let v0 = sharded.join("features/toy@model/v0");
    let store = Store::at(sharded.join("features/toy@model"), "toy");

    // The last shard first: the version cannot be read, and --status names the missing ones.
    let (code, out, err) = run(&sharded, &["--shard", "2/3"], &[]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("shards still missing: [0, 1]"), "{out}");
    let e = format!("{:#}", store.open(0, Verify::Checksums).err().unwrap());
    assert!(e.contains("being embedded in shards"), "{e}");
    let (_, out, _) = run(&sharded, &["--status"], &[]);
    assert!(
        out.contains("shard 0: not started (missing)") && out.contains("shard 2: done (6 chunks)"),
        "{out}"
    );
    // A one-process job, another shard count, or other options for this version: one-line errors.
    for (args, needle) in [
        (&[][..], "being embedded in shards"),
        (&["--shard", "0/2"][..], "split in 3 shards, not 2"),
        (
            &["--shard", "0/3", "--max-len", "16"][..],
            "embedded differently",
        ),
        (&["--shard", "3/3"][..], "the index must be below the count"),
        (&["--shard", "auto"][..], "no scheduler shard found"),
    ] {
        let (code, _, err) = run(&sharded, args, &[]);
        assert_eq!(code, Some(1), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
    }
    // Shard 0 from a Slurm array numbered from 1, shard 1 from a Kubernetes Indexed Job.
    let slurm = [
        ("SLURM_ARRAY_TASK_ID", "1"),
        ("SLURM_ARRAY_TASK_MIN", "1"),
        ("SLURM_ARRAY_TASK_COUNT", "3"),
    ];
    let (code, out, err) = run(&sharded, &["--shard", "auto"], &slurm);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains("shard 0/3 done; shards still missing: [1]"),
        "{out}"
    );
    let k8s = [("JOB_COMPLETION_INDEX", "1"), ("PROXAL_SHARD_COUNT", "3")];
    let (code, out, err) = run(&sharded, &["--shard", "auto"], &k8s);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("all 3 shards are"), "{out}");
    // The version equals the one-process one, chunk for chunk and in its manifest.
    let mut got = snapshot_without_shards(&v0);
    got.retain(|(n, _)| !n.contains(".tmp-"));
    assert_eq!(got, want);
    assert_eq!(store.open(0, Verify::Checksums).unwrap().n_rows(), 1000);
    // Its cost ledger holds every chunk's record, from the three shards.
    let cost = std::fs::read_to_string(v0.join("cost.jsonl")).unwrap();
    assert_eq!(cost.lines().count(), 16);
    // A finished shard run again does nothing.
    let (code, out, err) = run(&sharded, &["--shard", "1/3"], &[]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("already complete"), "{out}");
}

/// [`snapshot`] without the `shards/` directory of a sharded version.
fn snapshot_without_shards(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let tmp = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_file() {
            std::fs::copy(e.path(), tmp.path().join(e.file_name())).unwrap();
        }
    }
    snapshot(tmp.path())
}

#[test]
fn a_shard_killed_mid_way_resumes_and_keeps_its_chunks() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("model");
    model_dir(&model);
    let ds = dataset(3000);
    let (one, home) = (tmp.path().join("one"), tmp.path().join("home"));
    for h in [&one, &home] {
        ds.save(&h.join("datasets/toy"), "test").unwrap();
    }
    let out = embed_cmd(&one, &model, &[], &[]).output().unwrap();
    assert!(out.status.success());
    let v0 = home.join("features/toy@model/v0");
    // Shard 0 of 2 owns chunks 0..23 (47 chunks of 64 rows); kill it once 3 are durable.
    let mut child = embed_cmd(&home, &model, &["--shard", "0/2"], &[])
        .spawn()
        .unwrap();
    common::poll(60.0, "3 durable chunks of shard 0", || {
        if let Some(s) = child.try_wait().unwrap() {
            panic!("the shard ended ({s}) before 3 chunks were durable");
        }
        match shard_state(&v0, "0-of-2.json") {
            Some((chunks, false)) if chunks.len() >= 3 => Some(()),
            _ => None,
        }
    });
    common::kill_9(&mut child, "`proxal embed --shard 0/2`");
    let (listed, complete) = shard_state(&v0, "0-of-2.json").unwrap();
    assert!(!complete && listed.len() < 23, "at the kill: {listed:?}");
    let durable: Vec<_> = listed
        .iter()
        .map(|c| common::file_id(&v0.join(c)))
        .collect();
    // Resumed, it embeds only the rest of its range and leaves the durable chunks as they were.
    let out = embed_cmd(&home, &model, &["--shard", "0/2"], &[])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let done = durable.len() * 64;
    assert!(
        stdout.contains(&format!("({} embedded in", 23 * 64 - done))
            && stdout.contains(&format!("resumed after {done} rows")),
        "{stdout}"
    );
    common::assert_untouched(&v0, &durable, "the resumed shard");
    let out = embed_cmd(&home, &model, &["--shard", "1/2"], &[])
        .output()
        .unwrap();
    assert!(out.status.success());
    let mut got = snapshot_without_shards(&v0);
    got.retain(|(n, _)| !n.contains(".tmp-"));
    assert_eq!(got, snapshot(&one.join("features/toy@model/v0")));
}

#[test]
fn cli_embed_dtype_f16_stores_the_f32_vectors_rounded() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("model");
    model_dir(&model);
    let ds = dataset(150);
    let home = tmp.path().join("home");
    ds.save(&home.join("datasets/toy"), "test").unwrap();
    let run = |args: &[&str]| {
        let out = embed_cmd(&home, &model, args, &[]).output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, err) = run(&[]);
    assert_eq!(code, Some(0), "{err}");
    let (code, err) = run(&["--version", "1", "--dtype", "f16"]);
    assert_eq!(code, Some(0), "{err}");
    let store = Store::at(home.join("features/toy@model"), "toy");
    let (f32v, f16v) = (
        store.open_for(0, &ds, Verify::Checksums).unwrap(),
        store.open_for(1, &ds, Verify::Checksums).unwrap(),
    );
    assert_eq!(f16v.manifest().dtype, proxal::features::Dtype::F16);
    let all: Vec<usize> = (0..150).collect();
    let want = f32v.gather(&all).mapv(|v| half::f16::from_f32(v).to_f32());
    assert_eq!(f16v.gather(&all), want);
    // Finishing a version in another dtype than it was started in is refused, naming the file.
    let (code, err) = run(&["--version", "1", "--dtype", "f32"]);
    assert_ne!(code, Some(0));
    assert!(
        err.contains("v1/manifest.json") && err.contains("stores f16 values, not f32"),
        "{err}"
    );
    let (code, err) = run(&["--version", "2", "--dtype", "f8"]);
    assert_eq!(code, Some(2), "clap's usage error: {err}");
    assert!(err.contains("unknown feature dtype 'f8'"), "{err}");
}
