//! Small shared helpers: atomic file writes, hashing, seeded RNGs.
use anyhow::{bail, Context, Result};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::de::DeserializeOwned;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::Path;

/// Write `bytes` to `path` atomically: write a temp file beside it, fsync, rename, fsync the dir.
/// A reader (or a process killed half-way) sees either the old file or the new one, never a torn one.
/// A full disk is reported as such, naming the file; the temp file is removed.
pub fn atomic_write(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create directory {}", dir.display()))?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let res = (|| -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()
    })();
    if let Err(e) = res {
        let _ = std::fs::remove_file(&tmp);
        if is_disk_full(&e) {
            bail!(
                "disk full: cannot write {} ({} bytes)",
                path.display(),
                bytes.len()
            );
        }
        return Err(e).with_context(|| format!("cannot write {}", path.display()));
    }
    std::fs::rename(&tmp, path)
        .with_context(|| format!("cannot rename {} to {}", tmp.display(), path.display()))?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Whether an I/O error says the disk (or the quota) is full.
pub fn is_disk_full(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::StorageFull
        || e.raw_os_error() == Some(28)
        || e.raw_os_error() == Some(122)
}

/// Hex sha256 of a byte slice.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Hex sha256 of a file, streamed.
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut f =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(hex::encode(h.finalize()))
}

/// The project's one RNG: ChaCha8, portable and reproducible across platforms for a given seed.
pub fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

/// Seconds of CPU time this process has used (user + system), for the cost ledger.
pub fn process_cpu_seconds() -> f64 {
    // /proc/self/stat fields 14 and 15 are utime and stime in clock ticks.
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    let Some(after) = stat.rfind(')') else {
        return 0.0;
    };
    let fields: Vec<&str> = stat[after + 2..].split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|s| s.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

/// Peak resident set size of this process in bytes (VmHWM), or 0 where unknown.
pub fn peak_rss_bytes() -> u64 {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return 0;
    };
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

/// Append records to a JSON Lines file, one line each, and fsync before returning: once this
/// returns, the records survive a `kill -9` or a power cut.
pub fn append_jsonl<T: serde::Serialize>(path: &Path, records: &[T]) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let mut buf = Vec::new();
    for r in records {
        serde_json::to_writer(&mut buf, r)?;
        buf.push(b'\n');
    }
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    f.write_all(&buf)
        .with_context(|| format!("cannot write {} (disk full?)", path.display()))?;
    f.sync_all()
        .with_context(|| format!("cannot fsync {}", path.display()))?;
    Ok(())
}

/// Rewrite a JSON Lines file atomically with exactly `records` (used to drop a torn tail).
pub fn rewrite_jsonl<T: serde::Serialize>(path: &Path, records: &[T]) -> Result<()> {
    let mut buf = Vec::new();
    for r in records {
        serde_json::to_writer(&mut buf, r)?;
        buf.push(b'\n');
    }
    atomic_write(path, &buf)
}

/// What [`read_jsonl_tolerant`] found.
#[derive(Debug, Clone)]
pub struct JsonlRead<T> {
    /// Every complete, well-formed record, in file order.
    pub records: Vec<T>,
    /// The last line, when it could not be parsed: a write torn by a kill. It is ignored.
    pub torn_tail: Option<String>,
}

/// Serialise `record` as one line and append it to `file`, then fsync (data only) so the record
/// survives a kill or a power cut once this returns. One `write_all` per record keeps records
/// whole in practice; a torn last line is still tolerated by [`read_jsonl_tolerant`].
pub fn append_jsonl_line<T: Serialize>(file: &mut std::fs::File, record: &T) -> Result<()> {
    let mut line = serde_json::to_vec(record).context("cannot serialise record")?;
    line.push(b'\n');
    file.write_all(&line)
        .context("cannot append record (disk full?)")?;
    file.sync_data().context("cannot fsync")?;
    Ok(())
}

/// Read a JSON Lines file. Blank lines are skipped. A last line that does not parse (a write
/// torn by `kill -9`, or garbage left by a crash) is dropped and returned in
/// [`JsonlRead::torn_tail`] so the caller can warn; a bad line anywhere else is an error naming
/// the file and the line number. A missing file is an error (the caller decides whether that is
/// fine).
pub fn read_jsonl_tolerant<T: DeserializeOwned>(path: &Path) -> Result<JsonlRead<T>> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let text = String::from_utf8_lossy(&bytes);
    let lines: Vec<(usize, &str)> = text
        .split('\n')
        .enumerate()
        .filter(|(_, l)| !l.trim().trim_matches('\0').is_empty())
        .collect();
    let mut records = Vec::with_capacity(lines.len());
    let mut torn_tail = None;
    for (k, &(i, line)) in lines.iter().enumerate() {
        match serde_json::from_str::<T>(line) {
            Ok(r) => records.push(r),
            Err(_) if k + 1 == lines.len() => {
                let mut s: String = line.chars().take(80).collect();
                if line.chars().count() > 80 {
                    s.push('…');
                }
                torn_tail = Some(s);
            }
            Err(e) => anyhow::bail!("{}: line {}: malformed record: {e}", path.display(), i + 1),
        }
    }
    Ok(JsonlRead { records, torn_tail })
}

/// The 1-, 5- and 15-minute load averages ("unknown" where /proc/loadavg is missing): written
/// next to every timing a benchmark or check commits.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// The current UTC time as `YYYY-MM-DDTHH:MM:SSZ` (from `date -u`; "unknown" without it).
pub fn utc_now() -> String {
    std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%dT%H:%M:%SZ"])
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

/// Tests: a machine-dependent skip, printed and appended to `PROXAL_SKIP_LOG`, which `make test`
/// counts and lists (as tests/common's `skip` does for the integration tests).
#[cfg(test)]
pub(crate) fn skip_for_machine(test: &str, why: &str) {
    let line = format!("SKIPPED: {test}: {why}");
    eprintln!("{line}");
    if let Some(log) = std::env::var_os("PROXAL_SKIP_LOG") {
        use std::io::Write;
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
        {
            // One write of the whole line (see tests/common's `skip`).
            let _ = f.write_all(format!("machine {line}\n").as_bytes());
        }
    }
}

/// The CPU's model name and the vector extensions that matter to the kernels (from
/// `/proc/cpuinfo`; "unknown CPU" elsewhere), e.g. `Intel(R) Xeon(R) Processor (avx512f,
/// avx512_bf16, amx_tile)`: benchmark records name the machine they ran on.
pub fn cpu_description() -> String {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let field = |key: &str| {
        info.lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_string())
    };
    let model = field("model name").unwrap_or_else(|| "unknown CPU".into());
    let flags = field("flags").unwrap_or_default();
    let have: Vec<&str> = [
        "avx2",
        "fma",
        "avx512f",
        "avx512_vnni",
        "avx512_bf16",
        "amx_tile",
    ]
    .into_iter()
    .filter(|f| flags.split_whitespace().any(|x| x == *f))
    .collect();
    format!("{model} ({})", have.join(", "))
}
