//! JSON Lines helpers for append-only logs that must survive `kill -9`.
use anyhow::{Context, Result};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::io::Write;
use std::path::Path;

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
