//! Annotation projects: init → next → label → … on real banking77 texts with the real MiniLM
//! (scripted annotator), with kills during `label` and `next`; and malformed label files.
mod common;

use proxal::backbone::{tiny, BertConfig};
use proxal::data::{import_builtin, Builtin, Dataset, Split};
use proxal::home::Home;
use proxal::project::{self, labels::Columns, LabelOptions};
use rand::{Rng, SeedableRng};
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};

/// Rows per feature chunk in these tests: the 1,600-row banking77 project embeds in 4 chunks,
/// so a `next` killed while embedding leaves durable chunks to reuse.
const CHUNK_ROWS: usize = 400;

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_proxal"));
    c.env_remove("PROXAL_FAULT");
    c.env("PROXAL_CHUNK_ROWS", CHUNK_ROWS.to_string());
    c
}

/// Run proxal; (exit status, stdout, stderr).
fn px(args: &[&str], fault: Option<&str>) -> (ExitStatus, String, String) {
    let mut c = bin();
    c.args(args);
    if let Some(f) = fault {
        c.env("PROXAL_FAULT", f);
    }
    let o = c.output().unwrap();
    (
        o.status,
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn ok(args: &[&str]) -> String {
    let (s, out, err) = px(args, None);
    assert!(s.success(), "proxal {args:?} failed ({s}):\n{out}\n{err}");
    out
}

/// A command that failed the documented way: exit code 1 and a last stderr line
/// `proxal: error: …`.
fn assert_error_exit(s: ExitStatus, err: &str) {
    assert_eq!(s.code(), Some(common::ERROR_EXIT), "{s}: {err}");
    let last = err.lines().last().unwrap_or("");
    assert!(last.starts_with("proxal: error:"), "{err}");
}

/// A command aborted at a `PROXAL_FAULT` point: killed by SIGABRT, having said so.
fn assert_fault_abort(s: ExitStatus, err: &str) {
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(s.signal(), Some(6), "{s}: {err}");
    assert!(err.contains("PROXAL_FAULT"), "{err}");
}

/// `cp -a src dst`.
fn copy_dir(src: &Path, dst: &Path) {
    let s = Command::new("cp")
        .arg("-a")
        .arg(src)
        .arg(dst)
        .status()
        .unwrap();
    assert!(s.success(), "cp -a {} {}", src.display(), dst.display());
}

/// A committed batch's manifest without its creation time.
fn batch_manifest(proj: &Path, round: usize) -> Value {
    let p = proj.join(format!("batches/round-{round:03}/manifest.json"));
    let mut m: Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
    m.as_object_mut().unwrap().remove("created_unix");
    m
}

/// The stored labels: (row, label) in order.
fn stored(proj: &Path) -> Vec<(usize, String)> {
    let p = proj.join("labelled.jsonl");
    if !p.exists() {
        return vec![];
    }
    std::fs::read_to_string(p)
        .unwrap()
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).expect("labelled.jsonl line is whole JSON");
            (
                v["row"].as_u64().unwrap() as usize,
                v["label"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Ids of a batch, read from its CSV export.
fn batch_ids(proj: &Path, round: usize) -> Vec<String> {
    let p = proj.join(format!("batches/round-{round:03}/batch.csv"));
    let mut r = csv::Reader::from_path(&p).unwrap();
    r.records().map(|r| r.unwrap()[0].to_string()).collect()
}

/// Every label belongs to a committed batch, no row is labelled twice, every committed batch row
/// is a pool row.
fn assert_consistent(proj: &Path) {
    let labels = stored(proj);
    let rows: HashSet<usize> = labels.iter().map(|l| l.0).collect();
    assert_eq!(rows.len(), labels.len(), "a row was labelled twice");
    let p = project::Project::open(proj).unwrap();
    let batches = p.batches().unwrap();
    // A row is requested again only after a batch that held it was closed unlabelled.
    let mut in_batches: HashSet<usize> = HashSet::new();
    for b in &batches {
        for r in &b.rows {
            let again = !in_batches.insert(r.row);
            assert!(
                !again || !rows.contains(&r.row) || b.closed.is_some(),
                "row {} requested twice",
                r.row
            );
        }
    }
    for w in batches.windows(2) {
        let earlier: HashSet<usize> = w[0].rows.iter().map(|r| r.row).collect();
        for r in &w[1].rows {
            assert!(
                !earlier.contains(&r.row) || w[0].closed.is_some(),
                "row {} requested again while its batch was not closed",
                r.row
            );
        }
    }
    assert!(rows.is_subset(&in_batches), "a label outside every batch");
    let ds = p.dataset().unwrap();
    assert!(in_batches.iter().all(|&r| ds.splits[r] == Split::Pool));
}

#[test]
fn annotation_loop_on_banking77_with_kills() {
    let Some(assets) = common::assets("annotation_loop_on_banking77_with_kills") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    // A user's file: 1,200 unlabelled banking77 training texts and 400 labelled test texts.
    std::env::set_var("PROXAL_ASSETS", &assets);
    let src = Home::new(tmp.path().join("src"));
    import_builtin(&src, Builtin::Banking77, None).unwrap();
    let ds = Dataset::load(&src, "banking77").unwrap();
    let mut w = csv::Writer::from_path(tmp.path().join("pool.csv")).unwrap();
    w.write_record(["id", "text", "label", "split"]).unwrap();
    let mut gold: HashMap<String, String> = HashMap::new();
    let (mut n_pool, mut n_test) = (0, 0);
    let mut test_rows = Vec::new();
    for i in 0..ds.len() {
        let label = ds.label_map.name(ds.labels[i].unwrap()).to_string();
        let id = format!("b77-{}", ds.ids[i]);
        match ds.splits[i] {
            Split::Pool if n_pool < 1200 => {
                n_pool += 1;
                gold.insert(id.clone(), label);
                w.write_record([id.as_str(), &ds.texts[i], "", "train"])
                    .unwrap();
            }
            Split::Test if n_test < 400 => {
                n_test += 1;
                test_rows.push((id.clone(), ds.texts[i].clone(), label.clone()));
                w.write_record([id.as_str(), &ds.texts[i], &label, "test"])
                    .unwrap();
            }
            _ => {}
        }
    }
    w.flush().unwrap();
    drop(w);
    let proj = tmp.path().join("proj");
    let p = proj.to_str().unwrap();
    let labels_arg = ds.label_map.names.join(",");
    let out = ok(&[
        "--home",
        tmp.path().to_str().unwrap(),
        "init",
        p,
        "--data",
        tmp.path().join("pool.csv").to_str().unwrap(),
        "--id-col",
        "id",
        "--label-col",
        "label",
        "--split-col",
        "split",
        "--labels",
        &labels_arg,
        "--batch",
        "80",
    ]);
    assert!(out.contains("1200 pool rows, 400 held-out"), "{out}");
    // Smaller training for the test's sake (users edit the same file).
    let cfg = std::fs::read_to_string(proj.join("config.toml")).unwrap();
    let cfg = cfg
        .replace("align_every = 3", "align_every = 2")
        .replace("epochs = 3", "epochs = 1")
        .replace("max_len = 64", "max_len = 32")
        + "embed_max_len = 64\n";
    // embed_max_len must be a top-level key: put it before the first table.
    let cfg = {
        let (top, rest) = cfg.split_once("\n[asvp]").unwrap();
        let rest = rest.replace("embed_max_len = 64\n", "");
        format!("{top}\nembed_max_len = 64\n\n[asvp]{rest}")
    };
    std::fs::write(proj.join("config.toml"), cfg).unwrap();

    let answer_csv = |round: usize, path: &Path| {
        let mut w = csv::Writer::from_path(path).unwrap();
        w.write_record(["id", "label"]).unwrap();
        for id in batch_ids(&proj, round) {
            w.write_record([id.as_str(), gold[&id].as_str()]).unwrap();
        }
        w.flush().unwrap();
    };

    // Round 0: a random first batch, answered as CSV.
    let out = ok(&["next", "--project", p, "--quiet"]);
    assert!(out.contains("batch 0: 80 rows"), "{out}");
    let a0 = tmp.path().join("answers-0.csv");
    answer_csv(0, &a0);
    let out = ok(&["label", a0.to_str().unwrap(), "--project", p]);
    assert!(
        out.contains("stored 80 labels") && out.contains("complete"),
        "{out}"
    );
    // The same file again: nothing new, nothing duplicated.
    let out = ok(&["label", a0.to_str().unwrap(), "--project", p]);
    assert!(out.contains("stored 0 labels, 80 already stored"), "{out}");
    assert_eq!(stored(&proj).len(), 80);

    // Round 1: `next` embeds the pool first (v0: 1,600 rows in 4 chunks). A copy of the project
    // runs it uninterrupted; the project itself is killed with SIGKILL once v0 has a durable
    // chunk but is not complete, then `next` is rerun.
    let clean = tmp.path().join("proj-clean");
    copy_dir(&proj, &clean);
    let v0 = proj.join("features/pool/v0");
    let n_chunks = 1600usize.div_ceil(CHUNK_ROWS);
    let mut child = bin()
        .args(["next", "--project", p, "--quiet"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    common::poll(600.0, "a durable v0 chunk while v0 is incomplete", || {
        if let Some(s) = child.try_wait().unwrap() {
            panic!("`next` ended ({s}) before v0 had a durable chunk");
        }
        match common::manifest_state(&v0) {
            Some((chunks, false)) if !chunks.is_empty() => Some(()),
            _ => None,
        }
    });
    common::kill_9(&mut child, "`next` embedding v0");
    // The kill interrupted the embedding: v0 incomplete, no batch committed.
    let (listed, complete) = common::manifest_state(&v0).unwrap();
    assert!(
        !complete && !listed.is_empty() && listed.len() < n_chunks,
        "v0 at the kill: {} of {n_chunks} chunks, complete {complete}",
        listed.len()
    );
    assert!(
        !proj.join("batches/round-001/manifest.json").exists(),
        "a `next` killed while embedding committed a batch"
    );
    assert_consistent(&proj);
    let durable = common::durable_chunks(&v0);
    eprintln!(
        "`next` killed with {} of {n_chunks} v0 chunks durable",
        durable.len()
    );
    let cost_lines_at_kill = std::fs::read_to_string(v0.join("cost.jsonl"))
        .unwrap_or_default()
        .lines()
        .count();
    let out = ok(&["next", "--project", p, "--quiet"]);
    assert!(
        out.contains("batch 1: 80 rows") && out.contains("margin"),
        "{out}"
    );
    assert!(out.contains("held-out accuracy"), "{out}");
    // The chunks durable at the kill were reused, not embedded again: same files (inode, mtime,
    // bytes), and the rerun's cost records cover only the chunks that were missing.
    common::assert_chunks_reused(
        &v0,
        &durable,
        cost_lines_at_kill,
        CHUNK_ROWS,
        1600,
        "the rerun",
    );
    // The uninterrupted copy: the same v0, bit for bit, and the same batch.
    let out_clean = ok(&["next", "--project", clean.to_str().unwrap(), "--quiet"]);
    assert!(out_clean.contains("batch 1: 80 rows"), "{out_clean}");
    assert!(
        common::chunk_bytes(&v0) == common::chunk_bytes(&clean.join("features/pool/v0")),
        "v0 after kill + rerun differs from an uninterrupted embedding"
    );
    assert_eq!(
        batch_manifest(&proj, 1),
        batch_manifest(&clean, 1),
        "batch 1 after kill + rerun differs from an uninterrupted `next`"
    );
    // The predictions ride along as Label Studio pre-annotations; answer through a Label
    // Studio export built from the tasks file.
    let tasks: Vec<Value> = serde_json::from_str(
        &std::fs::read_to_string(proj.join("batches/round-001/tasks.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(tasks.len(), 80);
    assert!(tasks[0]["predictions"][0]["result"][0]["value"]["choices"][0].is_string());
    let export: Vec<Value> = tasks
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let id = t["data"]["proxal_id"].as_str().unwrap();
            serde_json::json!({
                "id": i + 1,
                "data": t["data"],
                "annotations": [{"was_cancelled": false, "result": [{
                    "from_name": "label", "to_name": "text", "type": "choices",
                    "value": {"choices": [gold[id]]}}]}],
                "predictions": t["predictions"],
            })
        })
        .collect();
    let a1 = tmp.path().join("export-1.json");
    std::fs::write(&a1, serde_json::to_vec(&export).unwrap()).unwrap();

    // Kill during `label`, just before its commit: nothing stored; the rerun stores all.
    let (s, _, err) = px(
        &["label", a1.to_str().unwrap(), "--project", p],
        Some("label-before-commit"),
    );
    assert_fault_abort(s, &err);
    assert_eq!(stored(&proj).len(), 80, "a killed import stored something");
    assert_consistent(&proj);
    let out = ok(&["label", a1.to_str().unwrap(), "--project", p]);
    assert!(out.contains("stored 80 labels"), "{out}");

    // Round 2: another batch, half answered, then the rest.
    let out = ok(&["next", "--project", p, "--quiet"]);
    assert!(out.contains("batch 2: 80 rows"), "{out}");
    // `next` refuses while the batch is open.
    let (s, _, err) = px(&["next", "--project", p, "--quiet"], None);
    assert_error_exit(s, &err);
    assert!(err.contains("still has 80 of 80 rows"), "{err}");
    let ids = batch_ids(&proj, 2);
    let half = tmp.path().join("answers-2a.jsonl");
    let lines: Vec<String> = ids[..40]
        .iter()
        .map(|id| serde_json::json!({"id": id, "label": gold[id]}).to_string())
        .collect();
    std::fs::write(&half, lines.join("\n")).unwrap();
    let out = ok(&["label", half.to_str().unwrap(), "--project", p]);
    assert!(out.contains("40 rows still to label"), "{out}");
    let a2 = tmp.path().join("answers-2.csv");
    answer_csv(2, &a2);
    let out = ok(&["label", a2.to_str().unwrap(), "--project", p]);
    assert!(out.contains("stored 40 labels, 40 already stored"), "{out}");
    assert_eq!(stored(&proj).len(), 240);

    // Round 3: alignment is due (every 2 rounds). Kill `next` after the fine-tune and refresh,
    // before the batch is committed; the rerun commits a batch and charges the work once.
    let st = ok(&["status", "--project", p]);
    assert!(st.contains("fine-tune on the labels and refresh"), "{st}");
    let (s, _, err) = px(
        &["next", "--project", p, "--quiet"],
        Some("next-before-commit"),
    );
    assert_fault_abort(s, &err);
    assert!(!proj.join("batches/round-003/manifest.json").exists());
    assert_consistent(&proj);
    let out = ok(&["next", "--project", p, "--quiet"]);
    assert!(
        out.contains("aligned") && out.contains("batch 3: 80 rows"),
        "{out}"
    );
    assert!(out.contains("run:v3"), "{out}");
    let ledger = std::fs::read_to_string(proj.join("ledger.jsonl")).unwrap();
    let fine_tunes = ledger
        .lines()
        .filter(|l| l.contains("\"stage\":\"fine_tune\"") && l.contains("\"round\":2,"))
        .count();
    assert_eq!(fine_tunes, 1, "{ledger}");
    assert_consistent(&proj);
    assert_eq!(stored(&proj).len(), 240);

    let st = ok(&["status", "--project", p]);
    assert!(st.contains("labels: 240 of 1200"), "{st}");
    assert!(st.contains("open batch: 3 (0 of 80 labelled)"), "{st}");
    assert!(st.contains("features: run:v3"), "{st}");
    assert!(st.contains("held-out accuracy"), "{st}");

    // The current model, applied to the held-out texts.
    let out = ok(&["export-model", "--project", p]);
    assert!(out.contains("240 labels, features run:v3"), "{out}");
    let test_file = tmp.path().join("test.csv");
    let mut w = csv::Writer::from_path(&test_file).unwrap();
    w.write_record(["id", "text"]).unwrap();
    for (id, t, _) in &test_rows {
        w.write_record([id, t]).unwrap();
    }
    w.flush().unwrap();
    let pred = tmp.path().join("pred.csv");
    ok(&[
        "predict",
        "--model",
        proj.join("model").to_str().unwrap(),
        "--data",
        test_file.to_str().unwrap(),
        "--out",
        pred.to_str().unwrap(),
        "--id-col",
        "id",
    ]);
    let mut r = csv::Reader::from_path(&pred).unwrap();
    let right = r
        .records()
        .map(|r| r.unwrap())
        .zip(&test_rows)
        .filter(|(rec, (id, _, label))| &rec[0] == id && &rec[2] == label)
        .count();
    let acc = right as f64 / test_rows.len() as f64;
    // 240 labels over 77 intents: chance is 1.3%.
    assert!(acc > 0.3, "exported model accuracy {acc}");
}

const WORDS: &[&str] = &[
    "alpha", "beta", "gamma", "delta", "card", "loan", "stolen", "fee", "refund", "pin", "app",
    "the", "my", "is", "a", "was",
];

/// A tiny project: random tiny BERT, 60 pool rows, labels a/b/c.
fn tiny_project(root: &Path) -> PathBuf {
    let mut csv = String::from("id,text\n");
    for i in 0..60 {
        csv += &format!(
            "r{i},{} {} {}\n",
            WORDS[i % 16],
            WORDS[(i / 3) % 16],
            WORDS[(i * 7) % 16]
        );
    }
    std::fs::write(root.join("pool.csv"), csv).unwrap();
    let mut cfg = BertConfig::tiny(0);
    cfg.max_position_embeddings = 64;
    tiny::write_model_dir(&root.join("model"), WORDS, &cfg, 3).unwrap();
    let proj = root.join("proj");
    ok(&[
        "init",
        proj.to_str().unwrap(),
        "--data",
        root.join("pool.csv").to_str().unwrap(),
        "--id-col",
        "id",
        "--labels",
        "a,b,c",
        "--batch",
        "10",
        "--model-dir",
        root.join("model").to_str().unwrap(),
    ]);
    let out = ok(&["next", "--project", proj.to_str().unwrap(), "--quiet"]);
    assert!(out.contains("batch 0: 10 rows"), "{out}");
    proj
}

fn label_lib(
    proj: &Path,
    file: &Path,
    allow: bool,
    partial: bool,
) -> anyhow::Result<project::LabelReport> {
    project::label(
        proj,
        &LabelOptions {
            file: file.to_path_buf(),
            cols: Columns::default(),
            allow_new_labels: allow,
            partial,
        },
    )
}

#[test]
fn malformed_label_files_get_clean_errors_and_store_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let proj = tiny_project(tmp.path());
    let p = proj.to_str().unwrap();
    let ids = batch_ids(&proj, 0);
    let f = |name: &str, bytes: &[u8]| {
        let path = tmp.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    };
    // Each bad file: non-zero exit, one "proxal: error:" line, nothing stored.
    let mut latin1 = b"id,label\n".to_vec();
    latin1.extend_from_slice(format!("{},caf", ids[0]).as_bytes());
    latin1.push(0xE9);
    let cases: Vec<(PathBuf, &str)> = vec![
        (f("latin1.csv", &latin1), "not UTF-8"),
        (
            f(
                "trunc.json",
                format!(
                    r#"[{{"data": {{"proxal_id": "{}"}}, "annotations": [{{"result": [{{"#,
                    ids[0]
                )
                .as_bytes(),
            ),
            "truncated",
        ),
        (
            f("nocol.csv", b"identifier,answer\nr1,a\n"),
            "no 'id' column",
        ),
        (
            f("obj.json", br#"{"id": "r1", "label": "a"}"#),
            "expected a JSON array",
        ),
        (f("empty.jsonl", b"\n\n"), "empty"),
        (f("x.xlsx", b"PK\x03\x04"), "unknown label file type"),
    ];
    for (path, want) in &cases {
        let (s, _, err) = px(&["label", path.to_str().unwrap(), "--project", p], None);
        assert!(!s.success(), "{} was accepted", path.display());
        assert_error_exit(s, &err);
        let last = err.lines().last().unwrap_or("");
        assert!(
            last.starts_with("proxal: error:") && last.contains(want),
            "{}: {err}",
            path.display()
        );
        assert!(stored(&proj).is_empty());
    }
    // Row-level problems: listed per row; nothing stored without --partial.
    let huge = "z".repeat(3_000_000);
    let rows = format!(
        "id,label\n{i0},a\n{i1},{huge}\n{i2},\"=HYPERLINK(\"\"http://x\"\",\"\"a\"\")\"\n{i3}.0,b\n9999,a\n{i4},\n{i5},a\n{i5},b\n",
        i0 = ids[0],
        i1 = ids[1],
        i2 = ids[2],
        i3 = ids[3].trim_start_matches('r'),
        i4 = ids[4],
        i5 = ids[5],
    );
    let bad = f("rows.csv", rows.as_bytes());
    let (s, _, err) = px(&["label", bad.to_str().unwrap(), "--project", p], None);
    assert_error_exit(s, &err);
    assert!(err.len() < 5_000, "the error report echoed a huge field");
    for want in [
        "line 3",
        "bytes (at most 1000)",
        "not in the label set",
        "unknown id",
        "empty label",
        "conflicting labels",
        "nothing stored",
    ] {
        assert!(err.contains(want), "missing '{want}' in:\n{err}");
    }
    assert!(stored(&proj).is_empty());
    // The formula is refused even when new labels are allowed.
    let r = label_lib(&proj, &bad, true, false).unwrap();
    assert!(!r.applied);
    assert!(r.rejected.iter().any(|e| e.reason.contains("formula")));
    // --partial stores exactly the valid row.
    let out = ok(&["label", bad.to_str().unwrap(), "--project", p, "--partial"]);
    assert!(out.contains("stored 1 labels"), "{out}");
    assert_eq!(stored(&proj).len(), 1);
    // Ids as floats in JSON.
    let fl = f(
        "floats.jsonl",
        b"{\"id\": 3.5, \"label\": \"a\"}\n{\"id\": 2.0, \"label\": \"a\"}\n",
    );
    let r = label_lib(&proj, &fl, false, false).unwrap();
    assert_eq!(r.rejected.len(), 2);
    assert!(r.rejected.iter().all(|e| e.reason.contains("fractional")));
    assert_eq!(stored(&proj).len(), 1);
}

#[test]
fn fuzzed_label_files_never_panic_or_corrupt_the_store() {
    let tmp = tempfile::tempdir().unwrap();
    let proj = tiny_project(tmp.path());
    let ids = batch_ids(&proj, 0);
    let labels = ["a", "b", "c"];
    let mut good = String::from("id,label,text\n");
    for (i, id) in ids.iter().enumerate() {
        good += &format!("{id},{},\"some, text\"\n", labels[i % 3]);
    }
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
    let mut applied = 0;
    for k in 0..300 {
        let mut b = good.clone().into_bytes();
        for _ in 0..rng.random_range(1..6) {
            let at = rng.random_range(0..b.len());
            match rng.random_range(0..6) {
                0 => b.truncate(at),
                1 => b[at] = rng.random(),
                2 => b.insert(at, b'"'),
                3 => b.insert(at, b'\n'),
                4 => b.insert(at, b','),
                _ => {
                    let chunk: Vec<u8> = b[at..].iter().take(20).copied().collect();
                    b.splice(at..at, chunk);
                }
            }
            if b.is_empty() {
                break;
            }
        }
        let ext = ["csv", "jsonl", "json", "tsv"][k % 4];
        let path = tmp.path().join(format!("fuzz-{k}.{ext}"));
        std::fs::write(&path, &b).unwrap();
        let before = stored(&proj);
        let r = std::panic::catch_unwind(|| label_lib(&proj, &path, k % 5 == 0, k % 3 == 0));
        let r = r.unwrap_or_else(|_| panic!("label panicked on fuzz-{k}.{ext}"));
        let after = stored(&proj);
        match r {
            Err(e) => {
                assert!(!e.to_string().contains('\n') || e.to_string().len() < 2000);
                assert_eq!(before, after, "a failed import changed the store");
            }
            Ok(rep) if !rep.applied => assert_eq!(before, after),
            Ok(rep) => {
                applied += 1;
                assert_eq!(after.len(), before.len() + rep.stored);
                assert_eq!(&after[..before.len()], &before[..], "stored labels changed");
            }
        }
        assert_consistent(&proj);
    }
    assert!(
        applied > 0,
        "no fuzzed file was ever applied: the fuzzer tests nothing"
    );
}

#[test]
fn tiny_project_runs_every_command() {
    let tmp = tempfile::tempdir().unwrap();
    let proj = tiny_project(tmp.path());
    let p = proj.to_str().unwrap();
    let cfg = std::fs::read_to_string(proj.join("config.toml"))
        .unwrap()
        .replace("align_every = 3", "align_every = 1")
        .replace("epochs = 3", "epochs = 1");
    std::fs::write(proj.join("config.toml"), cfg).unwrap();
    let labels = ["a", "b", "c"];
    for round in 0..3 {
        let ids = batch_ids(&proj, round);
        let lines: Vec<String> = ids
            .iter()
            .map(|id| {
                let n: usize = id[1..].parse().unwrap();
                serde_json::json!({"id": id, "label": labels[n % 3]}).to_string()
            })
            .collect();
        let f = tmp.path().join(format!("a{round}.jsonl"));
        std::fs::write(&f, lines.join("\n")).unwrap();
        ok(&["label", f.to_str().unwrap(), "--project", p]);
        let out = ok(&["next", "--project", p, "--quiet"]);
        assert!(
            out.contains(&format!("batch {}: 10 rows", round + 1)),
            "{out}"
        );
        if round >= 1 {
            assert!(out.contains("aligned"), "{out}");
        }
    }
    // Skip the rest of an open batch: its rows go back to the pool.
    let out = ok(&[
        "next",
        "--project",
        p,
        "--quiet",
        "--skip-rest",
        "--batch",
        "5",
    ]);
    assert!(out.contains("batch 4: 5 rows"), "{out}");
    assert_consistent(&proj);
    let st = ok(&["status", "--project", p]);
    assert!(st.contains("labels: 30 of 60"), "{st}");
    let mut counts = HashMap::new();
    for (_, l) in stored(&proj) {
        *counts.entry(l).or_insert(0) += 1;
    }
    let want = format!(
        "per class: a {}, b {}, c {}",
        counts["a"], counts["b"], counts["c"]
    );
    assert!(st.contains(&want), "{st}\nwant {want}");
    // No held-out rows: quality is estimated by cross-validating the proxy on the 30 labels.
    let q = st
        .lines()
        .find_map(|l| l.strip_prefix("quality: about "))
        .unwrap_or_else(|| panic!("no estimated quality in:\n{st}"));
    assert!(
        q.contains("by 5-fold cross-validation of the proxy on the 30 labelled rows"),
        "{q}"
    );
    let acc: f64 = q.split_whitespace().next().unwrap().parse().unwrap();
    assert!((0.0..=1.0).contains(&acc), "{q}");
    ok(&["export-model", "--project", p]);
    let out = tmp.path().join("pred.jsonl");
    ok(&[
        "predict",
        "--model",
        proj.join("model").to_str().unwrap(),
        "--data",
        tmp.path().join("pool.csv").to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(std::fs::read_to_string(&out).unwrap().lines().count(), 60);
    // Not a project / a second init.
    let (s, _, err) = px(&["status", "--project", tmp.path().to_str().unwrap()], None);
    assert_error_exit(s, &err);
    assert!(err.contains("not a proxal project"), "{err}");
    let (s, _, err) = px(
        &[
            "init",
            p,
            "--data",
            tmp.path().join("pool.csv").to_str().unwrap(),
        ],
        None,
    );
    assert_error_exit(s, &err);
    assert!(err.contains("already a proxal project"), "{err}");
}
