//! `proxal run` killed with SIGKILL in the middle of a fine-tune, and in the middle of a refresh
//! (re-embedding with the fine-tuned backbone into the run's feature store), then resumed with
//! the same command: the run ends exactly as an uninterrupted run of the same config (labels
//! bought, test accuracy per round, ledger rounds/stages/rows/labels, refreshed features), and
//! refresh chunks that were durable at the kill are reused, not embedded again.
//!
//! Real MiniLM on a 400-row banking77 sample (300 pool, 100 test), policy `standard` (fine-tune
//! and refresh every round), 40 labels then 20 more, refreshed features in 50-row chunks
//! (`PROXAL_CHUNK_ROWS`).
mod common;

use proxal::data::{import_builtin_sample, Builtin, Sample};
use proxal::home::Home;
use serde_json::Value;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

const RUN: &str = "kill";
const DATASET: &str = "b77";
const ROWS: usize = 400;
const CHUNK_ROWS: usize = 50;
const INITIAL: usize = 40;

const CONFIG: &str = r#"name = "kill"
dataset = "b77"
policy = "standard"
seed = 3
initial = 40
batch = 20
rounds = 1
strategy = "margin"
embed_batch = 32
embed_max_len = 32
[train]
epochs = 1
batch_size = 8
max_len = 32
"#;

/// A home with the banking77 sample and the run's config; returns the config path.
fn make_home(home: &Path, assets: &Path) -> PathBuf {
    std::env::set_var("PROXAL_ASSETS", assets);
    import_builtin_sample(
        &Home::new(home),
        Builtin::Banking77,
        Some(DATASET),
        Sample {
            pool: Some(300),
            test: Some(100),
            seed: 0,
            long_tail: None,
        },
    )
    .unwrap();
    let cfg = home.join("kill.toml");
    std::fs::write(&cfg, CONFIG).unwrap();
    cfg
}

/// `proxal run` (progress lines on stderr), stderr lines sent to the returned channel and kept
/// in the returned log.
fn spawn_run(
    home: &Path,
    assets: &Path,
) -> (Child, Receiver<String>, std::sync::Arc<Mutex<String>>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_proxal"))
        .arg("--home")
        .arg(home)
        .arg("run")
        .arg(home.join("kill.toml"))
        .env("PROXAL_ASSETS", assets)
        .env("PROXAL_CHUNK_ROWS", CHUNK_ROWS.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let log = std::sync::Arc::new(Mutex::new(String::new()));
    let err = child.stderr.take().unwrap();
    let log2 = log.clone();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(err).lines() {
            let Ok(line) = line else { break };
            log2.lock().unwrap().push_str(&(line.clone() + "\n"));
            let _ = tx.send(line);
        }
    });
    (child, rx, log)
}

/// Run to completion; panics with stderr on failure.
fn run_to_end(home: &Path, assets: &Path) -> String {
    let (mut child, _rx, log) = spawn_run(home, assets);
    let s = child.wait().unwrap();
    // Let the reader thread drain stderr.
    std::thread::sleep(Duration::from_millis(50));
    let log = log.lock().unwrap().clone();
    assert!(s.success(), "proxal run failed ({s}):\n{log}");
    log
}

/// Wait for a stderr line containing `want`; panics at the deadline or if the run ends first.
fn wait_line(rx: &Receiver<String>, want: &str, secs: u64, log: &Mutex<String>) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) if l.contains(want) => return,
            Ok(_) => {}
            Err(RecvTimeoutError::Timeout) => panic!(
                "no stderr line with {want:?} within {secs} s:\n{}",
                log.lock().unwrap()
            ),
            Err(RecvTimeoutError::Disconnected) => panic!(
                "the run ended before a stderr line with {want:?}:\n{}",
                log.lock().unwrap()
            ),
        }
    }
}

fn run_dir(home: &Path) -> PathBuf {
    home.join("experiments/runs").join(RUN)
}

fn refreshed(home: &Path) -> PathBuf {
    run_dir(home).join("features").join("v1")
}

/// A JSONL file's records.
fn jsonl(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The ledger without timings, devices and notes: (round, stage, rows, labels bought) per
/// record, in order.
fn ledger(home: &Path) -> Vec<(u64, String, u64, u64)> {
    jsonl(&run_dir(home).join("ledger.jsonl"))
        .iter()
        .map(|r| {
            (
                r["round"].as_u64().unwrap(),
                r["stage"].as_str().unwrap().to_string(),
                r["rows"].as_u64().unwrap(),
                r["labels_bought"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// The run's outcome: labels bought (round, row, id, label, in order), rounds (labels, test
/// accuracy, macro-F1), progress records, the ledger without timings, and the refreshed
/// features' chunk files.
fn outcome(home: &Path) -> Outcome {
    let d = run_dir(home);
    Outcome {
        labelled: jsonl(&d.join("labelled.jsonl")),
        rounds: jsonl(&d.join("rounds.jsonl")),
        progress: jsonl(&d.join("progress.jsonl")),
        ledger: ledger(home),
        chunks: common::chunk_bytes(&refreshed(home)),
    }
}

#[derive(Debug, PartialEq)]
struct Outcome {
    labelled: Vec<Value>,
    rounds: Vec<Value>,
    progress: Vec<Value>,
    ledger: Vec<(u64, String, u64, u64)>,
    chunks: Vec<(String, Vec<u8>)>,
}

fn assert_same(got: &Outcome, want: &Outcome) {
    assert_eq!(
        got.labelled, want.labelled,
        "labels bought differ from the uninterrupted run"
    );
    assert_eq!(got.rounds, want.rounds, "rounds.jsonl differs");
    assert_eq!(got.progress, want.progress, "progress.jsonl differs");
    assert_eq!(
        got.ledger, want.ledger,
        "ledger (round, stage, rows, labels bought) differs"
    );
    assert!(
        got.chunks == want.chunks,
        "refreshed feature chunks differ from the uninterrupted run's"
    );
}

/// The uninterrupted run (shared by both tests, made once per test binary under target/tmp):
/// its home, outcome, and the wall seconds of its round-0 fine-tune.
struct Clean {
    outcome: Outcome,
    fine_tune_seconds: f64,
}

fn clean(assets: &Path) -> &'static Clean {
    static CLEAN: OnceLock<Clean> = OnceLock::new();
    CLEAN.get_or_init(|| {
        let home = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("run-kill-clean");
        let _ = std::fs::remove_dir_all(&home);
        std::fs::create_dir_all(&home).unwrap();
        make_home(&home, assets);
        let t0 = Instant::now();
        let log = run_to_end(&home, assets);
        eprintln!(
            "uninterrupted run: {:.1} s\n{log}",
            t0.elapsed().as_secs_f64()
        );
        let outcome = outcome(&home);
        // The round-0 fine-tune: the first record after round 0's labels that names the
        // checkpoint's training (the stage the run meters `train_model` with); found as the
        // record right after the round-0 labelling, whatever the stage is called.
        let recs = jsonl(&run_dir(&home).join("ledger.jsonl"));
        let fine_tune_seconds = recs
            .iter()
            .skip_while(|r| r["labels_bought"].as_u64() != Some(INITIAL as u64))
            .nth(1)
            .and_then(|r| r["wall_seconds"].as_f64())
            .expect("a record after round 0's labels");
        assert_eq!(
            outcome.chunks.len(),
            ROWS.div_ceil(CHUNK_ROWS),
            "refreshed version of the uninterrupted run"
        );
        // The checkpoints are big and compared nowhere.
        let _ = std::fs::remove_dir_all(run_dir(&home).join("checkpoints"));
        Clean {
            outcome,
            fine_tune_seconds,
        }
    })
}

#[test]
fn run_killed_during_fine_tune_resumes_to_the_same_run() {
    let Some(assets) = common::assets("run_killed_during_fine_tune_resumes_to_the_same_run") else {
        return;
    };
    let t0 = Instant::now();
    let want = clean(&assets);
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path();
    make_home(home, &assets);
    let t1 = Instant::now();
    let (mut child, rx, log) = spawn_run(home, &assets);
    // Round 0 starts with its 40 labels bought; the fine-tune follows at once, and only when it
    // ends is the round's checkpoint written. Kill half-way through the uninterrupted run's
    // fine-tune time after the round begins.
    wait_line(&rx, &format!("round 0: {INITIAL} labels"), 300, &log);
    let ckpt = run_dir(home).join("checkpoints/round-000");
    std::thread::sleep(Duration::from_secs_f64(want.fine_tune_seconds / 2.0));
    assert!(
        !ckpt.exists(),
        "the round-0 fine-tune ended within half the uninterrupted run's fine-tune time: nothing to interrupt"
    );
    common::kill_9(&mut child, "`proxal run` fine-tuning");
    // The kill interrupted the fine-tune: no checkpoint, no refreshed features, no finished
    // round, and the ledger holds only the labels bought before it.
    assert!(!ckpt.exists(), "the fine-tune finished before the kill");
    assert!(!refreshed(home).exists());
    assert!(!run_dir(home).join("progress.jsonl").exists());
    let at_kill = ledger(home);
    assert_eq!(
        at_kill[..],
        want.outcome.ledger[..1],
        "the killed run's ledger should hold only round 0's labels"
    );
    let killed_after = t1.elapsed().as_secs_f64();
    // Resume with the same command.
    let log2 = run_to_end(home, &assets);
    assert!(log2.contains("resuming after round -1"), "{log2}");
    assert_same(&outcome(home), &want.outcome);
    eprintln!(
        "fine-tune kill: killed after {killed_after:.1} s, test {:.1} s in all",
        t0.elapsed().as_secs_f64()
    );
}

#[test]
fn run_killed_during_refresh_resumes_and_reuses_durable_chunks() {
    let Some(assets) =
        common::assets("run_killed_during_refresh_resumes_and_reuses_durable_chunks")
    else {
        return;
    };
    let t0 = Instant::now();
    let want = clean(&assets);
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path();
    make_home(home, &assets);
    let (mut child, _rx, log) = spawn_run(home, &assets);
    let v1 = refreshed(home);
    let n_chunks = ROWS.div_ceil(CHUNK_ROWS);
    // Kill once the refreshed version has a durable chunk and is not complete.
    common::poll(
        600.0,
        "a durable refreshed chunk while v1 is incomplete",
        || {
            if let Some(s) = child.try_wait().unwrap() {
                panic!(
                    "the run ended ({s}) before the refresh had a durable chunk:\n{}",
                    log.lock().unwrap()
                );
            }
            match common::manifest_state(&v1) {
                Some((chunks, false)) if !chunks.is_empty() => Some(()),
                _ => None,
            }
        },
    );
    common::kill_9(&mut child, "`proxal run` refreshing");
    let (listed, complete) = common::manifest_state(&v1).unwrap();
    assert!(
        !complete && listed.len() < n_chunks,
        "refreshed version at the kill: {} of {n_chunks} chunks, complete {complete}",
        listed.len()
    );
    assert!(!run_dir(home).join("progress.jsonl").exists());
    let durable = common::durable_chunks(&v1);
    let cost_at_kill = std::fs::read_to_string(v1.join("cost.jsonl"))
        .unwrap_or_default()
        .lines()
        .count();
    // Resume with the same command: round 0 is redone (its fine-tune again, the same weights),
    // and the refresh continues after the durable chunks.
    let log2 = run_to_end(home, &assets);
    assert!(log2.contains("resuming after round -1"), "{log2}");
    common::assert_chunks_reused(
        &v1,
        &durable,
        cost_at_kill,
        CHUNK_ROWS,
        ROWS,
        "the resumed refresh",
    );
    assert_same(&outcome(home), &want.outcome);
    eprintln!(
        "refresh kill: {} of {n_chunks} chunks durable at the kill, test {:.1} s in all",
        durable.len(),
        t0.elapsed().as_secs_f64()
    );
}
