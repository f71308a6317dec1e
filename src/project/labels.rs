//! Annotators' label files: read them (CSV/TSV, JSON Lines, Label Studio JSON exports) and check
//! every row against the project before anything is stored.
//!
//! File-level faults (unreadable, not UTF-8, truncated JSON, missing columns) are one error for the
//! whole file. Row-level faults (unknown id, id outside the open batch, empty or unknown label,
//! duplicate or conflicting rows, oversized fields) are collected per row, so the annotator gets
//! the whole list at once.
use anyhow::{anyhow, bail, Result};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

/// Longest id or label accepted (bytes). Longer fields are a row error, not an allocation.
pub const MAX_FIELD_BYTES: usize = 1_000;
/// Largest label file read (bytes).
pub const MAX_FILE_BYTES: u64 = 1 << 30;

/// One (id, label) answer read from a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelRow {
    /// Where it came from: "line 12" (CSV/JSONL) or "task 3" (Label Studio), 1-based.
    pub at: String,
    pub id: String,
    pub label: String,
}

/// A row that was rejected, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    pub at: String,
    pub id: Option<String>,
    pub reason: String,
}

impl std::fmt::Display for RowError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.id {
            Some(id) => write!(f, "{} (id '{}'): {}", self.at, clip(id), self.reason),
            None => write!(f, "{}: {}", self.at, self.reason),
        }
    }
}

/// What a file held: answers, rejected rows, and tasks without an answer (Label Studio).
#[derive(Debug, Default)]
pub struct ReadRows {
    pub rows: Vec<LabelRow>,
    pub errors: Vec<RowError>,
    pub unanswered: usize,
}

/// Column (or key) names to read.
#[derive(Debug, Clone)]
pub struct Columns {
    pub id: String,
    pub label: String,
}

impl Default for Columns {
    fn default() -> Self {
        Columns {
            id: "id".into(),
            label: "label".into(),
        }
    }
}

/// Shorten a field for messages (a huge field must not flood the terminal).
fn clip(s: &str) -> String {
    const N: usize = 60;
    if s.chars().count() <= N {
        s.to_string()
    } else {
        format!(
            "{}… ({} bytes)",
            s.chars().take(N).collect::<String>(),
            s.len()
        )
    }
}

/// Read a label file, chosen by extension: `.csv`, `.tsv`, `.jsonl`/`.ndjson`, `.json`
/// (a Label Studio export, full or JSON-MIN).
pub fn read_label_file(path: &Path, cols: &Columns) -> Result<ReadRows> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    let meta = std::fs::metadata(path).map_err(|e| anyhow!("{}: {e}", path.display()))?;
    if meta.len() > MAX_FILE_BYTES {
        bail!(
            "{}: {} bytes is over the {} byte limit for a label file",
            path.display(),
            meta.len(),
            MAX_FILE_BYTES
        );
    }
    let bytes = std::fs::read(path).map_err(|e| anyhow!("{}: cannot read: {e}", path.display()))?;
    let text = decode(&bytes).map_err(|e| anyhow!("{}: {e}", path.display()))?;
    if text.trim().is_empty() {
        bail!("{}: file is empty", path.display());
    }
    let r = match ext.as_str() {
        "csv" => read_delimited(text, b',', cols),
        "tsv" | "tab" => read_delimited(text, b'\t', cols),
        "jsonl" | "ndjson" => Ok(read_jsonl(text, cols)),
        "json" => read_label_studio(text, cols),
        _ => bail!(
            "unknown label file type '.{ext}' (expected .csv, .tsv, .jsonl, .ndjson, or .json from Label Studio)"
        ),
    };
    r.map_err(|e| anyhow!("{}: {e}", path.display()))
}

/// UTF-8 text without a byte-order mark; anything else is refused with where it went wrong.
fn decode(bytes: &[u8]) -> Result<&str> {
    if bytes.starts_with(&[0xFF, 0xFE]) || bytes.starts_with(&[0xFE, 0xFF]) {
        bail!("file is UTF-16 encoded: save it as UTF-8");
    }
    let bytes = bytes.strip_prefix(&[0xEF, 0xBB, 0xBF]).unwrap_or(bytes);
    std::str::from_utf8(bytes).map_err(|e| {
        let at = e.valid_up_to();
        let line = bytes[..at].iter().filter(|&&b| b == b'\n').count() + 1;
        anyhow!(
            "not UTF-8 text (invalid byte 0x{:02X} on line {line}): save it as UTF-8",
            bytes[at]
        )
    })
}

fn read_delimited(text: &str, delim: u8, cols: &Columns) -> Result<ReadRows> {
    let mut rdr = csv::ReaderBuilder::new()
        .delimiter(delim)
        .flexible(true)
        .from_reader(text.as_bytes());
    let header = rdr
        .headers()
        .map_err(|e| anyhow!("cannot read the header line: {e}"))?
        .clone();
    let find = |name: &str| header.iter().position(|h| h.trim() == name);
    let names = || {
        header
            .iter()
            .map(|h| format!("'{}'", clip(h)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let id_at = find(&cols.id).ok_or_else(|| {
        anyhow!(
            "no '{}' column (columns: {}); name it with --id-col",
            cols.id,
            names()
        )
    })?;
    let label_at = find(&cols.label).ok_or_else(|| {
        anyhow!(
            "no '{}' column (columns: {}); name it with --label-col",
            cols.label,
            names()
        )
    })?;
    // Physical line of a record from its byte offset (the reader's own line count skips blank
    // lines, and a record's offset may point at the blank lines before it).
    let line_at = |byte: u64| {
        let b = text.as_bytes();
        let mut at = (byte as usize).min(b.len());
        while at < b.len() && (b[at] == b'\n' || b[at] == b'\r') {
            at += 1;
        }
        b[..at].iter().filter(|&&c| c == b'\n').count() + 1
    };
    let mut out = ReadRows::default();
    for record in rdr.records() {
        match record {
            Err(e) => {
                let line = e.position().map(|p| line_at(p.byte())).unwrap_or(0);
                out.errors.push(RowError {
                    at: format!("line {line}"),
                    id: None,
                    reason: format!("unreadable CSV record: {e}"),
                });
            }
            Ok(r) => {
                let line = r.position().map(|p| line_at(p.byte())).unwrap_or(0);
                let at = format!("line {line}");
                if r.iter().all(|f| f.trim().is_empty()) {
                    continue; // blank line
                }
                if r.len() != header.len() {
                    out.errors.push(RowError {
                        at,
                        id: r.get(id_at).map(|s| s.trim().to_string()),
                        reason: format!("{} fields, the header has {}", r.len(), header.len()),
                    });
                    continue;
                }
                let id = r.get(id_at).unwrap_or("").trim().to_string();
                let label = r.get(label_at).unwrap_or("").trim().to_string();
                out.rows.push(LabelRow { at, id, label });
            }
        }
    }
    Ok(out)
}

/// An id from JSON: a string, or an integer written as a number. Fractions are refused.
fn json_id(v: &Value) -> std::result::Result<String, String> {
    match v {
        Value::String(s) => Ok(s.trim().to_string()),
        Value::Number(n) if n.is_u64() || n.is_i64() => Ok(n.to_string()),
        Value::Number(n) => Err(format!(
            "id {n} is a fractional number: ids are text (was an id like '{}' turned into a float?)",
            n.as_f64().map(|f| f.trunc() as i64).unwrap_or(0)
        )),
        Value::Null => Err("id is null".into()),
        other => Err(format!("id must be a string, not {}", kind(other))),
    }
}

/// A label from JSON: a string (integers are taken as their decimal text).
fn json_label(v: &Value) -> std::result::Result<String, String> {
    match v {
        Value::String(s) => Ok(s.trim().to_string()),
        Value::Number(n) if n.is_u64() || n.is_i64() => Ok(n.to_string()),
        Value::Null => Ok(String::new()),
        other => Err(format!("label must be a string, not {}", kind(other))),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

fn read_jsonl(text: &str, cols: &Columns) -> ReadRows {
    let mut out = ReadRows::default();
    for (i, line) in text.lines().enumerate() {
        let at = format!("line {}", i + 1);
        if line.trim().is_empty() {
            continue;
        }
        let v: Value = match serde_json::from_str(line) {
            Ok(v) => v,
            Err(e) => {
                out.errors.push(RowError {
                    at,
                    id: None,
                    reason: format!("invalid JSON ({e})"),
                });
                continue;
            }
        };
        let Some(obj) = v.as_object() else {
            out.errors.push(RowError {
                at,
                id: None,
                reason: format!("expected a JSON object, found {}", kind(&v)),
            });
            continue;
        };
        let id = match obj.get(&cols.id).map(json_id) {
            None => Err(format!("no '{}' key", cols.id)),
            Some(r) => r,
        };
        let label = match obj.get(&cols.label).map(json_label) {
            None => Err(format!("no '{}' key", cols.label)),
            Some(r) => r,
        };
        match (id, label) {
            (Ok(id), Ok(label)) => out.rows.push(LabelRow { at, id, label }),
            (id, label) => out.errors.push(RowError {
                at,
                id: id.as_ref().ok().cloned(),
                reason: [id.err(), label.err()]
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>()
                    .join("; "),
            }),
        }
    }
    out
}

/// A Label Studio export: a JSON array of tasks, either the full format (`data` + `annotations`
/// with `choices` results) or JSON-MIN (flat objects with the data fields and one key per
/// control). The id is `data.proxal_id` (written by `proxal next`) or the `--id-col` field.
fn read_label_studio(text: &str, cols: &Columns) -> Result<ReadRows> {
    let v: Value = serde_json::from_str(text).map_err(|e| {
        let hint = if e.is_eof() { " (truncated file?)" } else { "" };
        anyhow!(
            "invalid JSON at line {} column {}: {e}{hint}",
            e.line(),
            e.column()
        )
    })?;
    let Value::Array(tasks) = v else {
        bail!(
            "not a Label Studio export: expected a JSON array of tasks, found {}",
            kind(&v)
        );
    };
    let mut out = ReadRows::default();
    for (i, task) in tasks.iter().enumerate() {
        let at = format!("task {}", i + 1);
        let Some(obj) = task.as_object() else {
            out.errors.push(RowError {
                at,
                id: None,
                reason: format!("expected a task object, found {}", kind(task)),
            });
            continue;
        };
        let data = obj.get("data").and_then(Value::as_object).unwrap_or(obj);
        let id_v = data
            .get("proxal_id")
            .or_else(|| data.get(&cols.id))
            .or_else(|| obj.get("proxal_id"));
        let id = match id_v.map(json_id) {
            Some(Ok(id)) => id,
            Some(Err(e)) => {
                out.errors.push(RowError {
                    at,
                    id: None,
                    reason: e,
                });
                continue;
            }
            None => {
                out.errors.push(RowError {
                    at,
                    id: None,
                    reason: format!("no 'proxal_id' or '{}' field in the task data", cols.id),
                });
                continue;
            }
        };
        let answer = if let Some(anns) = obj.get("annotations") {
            task_answer(anns, &cols.label)
        } else {
            // JSON-MIN: the control's value sits beside the data fields.
            match obj.get(&cols.label) {
                None => Ok(None),
                Some(Value::Object(o)) if o.contains_key("choices") => {
                    single_choice(o.get("choices").unwrap()).map(Some)
                }
                Some(v) => json_label(v).map(Some),
            }
        };
        match answer {
            Ok(Some(label)) => out.rows.push(LabelRow { at, id, label }),
            Ok(None) => out.unanswered += 1,
            Err(reason) => out.errors.push(RowError {
                at,
                id: Some(id),
                reason,
            }),
        }
    }
    Ok(out)
}

/// The label of a task from its annotations: every non-cancelled annotation must agree.
fn task_answer(anns: &Value, control: &str) -> std::result::Result<Option<String>, String> {
    let Value::Array(anns) = anns else {
        return Err("'annotations' is not a list".into());
    };
    let mut labels: Vec<String> = Vec::new();
    for a in anns {
        if a.get("was_cancelled").and_then(Value::as_bool) == Some(true) {
            continue;
        }
        let Some(Value::Array(result)) = a.get("result") else {
            return Err("an annotation has no 'result' list".into());
        };
        let mut picked: Vec<String> = Vec::new();
        for r in result {
            let from = r.get("from_name").and_then(Value::as_str);
            let ty = r.get("type").and_then(Value::as_str);
            if ty != Some("choices") || from.is_some_and(|f| f != control && f != "label") {
                continue;
            }
            let choices = r
                .get("value")
                .and_then(|v| v.get("choices"))
                .ok_or_else(|| "a choices result has no value.choices".to_string())?;
            picked.push(single_choice(choices)?);
        }
        match picked.len() {
            0 => {}
            1 => labels.push(picked.pop().unwrap()),
            n => return Err(format!("one annotation gives {n} choices results")),
        }
    }
    labels.dedup();
    let distinct: HashSet<&String> = labels.iter().collect();
    match distinct.len() {
        0 => Ok(None),
        1 => Ok(labels.pop()),
        _ => Err(format!(
            "annotators disagree: {}",
            labels
                .iter()
                .map(|l| format!("'{}'", clip(l)))
                .collect::<Vec<_>>()
                .join(" vs ")
        )),
    }
}

fn single_choice(v: &Value) -> std::result::Result<String, String> {
    match v {
        Value::Array(c) if c.len() == 1 => json_label(&c[0]),
        Value::Array(c) if c.is_empty() => Ok(String::new()),
        Value::Array(c) => Err(format!("{} choices selected; pick exactly one", c.len())),
        other => json_label(other),
    }
}

/// What the project knows when checking an import.
pub struct Context<'a> {
    /// Dataset ids → table row.
    pub rows_by_id: &'a HashMap<String, usize>,
    /// Rows of the open batch (the only ones that may receive new labels) and its number.
    pub open: &'a HashSet<usize>,
    pub open_round: Option<usize>,
    /// Labels already stored, by row.
    pub stored: &'a HashMap<usize, String>,
    /// The project's label set.
    pub label_set: &'a [String],
    pub allow_new_labels: bool,
}

/// The outcome of checking: rows to store, rows already stored with the same label (no-ops),
/// labels new to the label set (only with `allow_new_labels`), and rejected rows.
#[derive(Debug, Default)]
pub struct Checked {
    pub accept: Vec<(usize, String, String)>,
    pub already: usize,
    pub new_labels: Vec<String>,
    pub errors: Vec<RowError>,
}

/// Check every row; a row is accepted only if nothing is wrong with it *and* no other row of the
/// file names the same id.
pub fn check(read: ReadRows, context: &Context) -> Checked {
    let mut out = Checked {
        errors: read.errors,
        ..Default::default()
    };
    // Group by id (file order kept) to find duplicates and conflicts first.
    let mut by_id: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    let mut first_seen: HashMap<&str, usize> = HashMap::new();
    for (i, r) in read.rows.iter().enumerate() {
        let key = *first_seen.entry(r.id.as_str()).or_insert(i);
        by_id.entry(key).or_default().push(i);
    }
    let known: HashSet<&str> = context.label_set.iter().map(String::as_str).collect();
    let mut new_labels: Vec<String> = Vec::new();
    for (_, group) in by_id {
        let first = &read.rows[group[0]];
        if group.len() > 1 {
            let labels: HashSet<&str> =
                group.iter().map(|&i| read.rows[i].label.as_str()).collect();
            let places: Vec<&str> = group.iter().map(|&i| read.rows[i].at.as_str()).collect();
            let reason = if labels.len() > 1 {
                format!(
                    "conflicting labels for one id ({}): {}",
                    places.join(", "),
                    group
                        .iter()
                        .map(|&i| format!("'{}'", clip(&read.rows[i].label)))
                        .collect::<Vec<_>>()
                        .join(" vs ")
                )
            } else {
                format!("duplicate rows for one id ({})", places.join(", "))
            };
            for &i in &group {
                out.errors.push(RowError {
                    at: read.rows[i].at.clone(),
                    id: Some(read.rows[i].id.clone()),
                    reason: reason.clone(),
                });
            }
            continue;
        }
        let err = |reason: String| RowError {
            at: first.at.clone(),
            id: Some(first.id.clone()),
            reason,
        };
        if let Some(reason) = field_problem("id", &first.id) {
            out.errors.push(err(reason));
            continue;
        }
        let Some(&row) = context.rows_by_id.get(&first.id) else {
            out.errors
                .push(err(unknown_id(&first.id, context.rows_by_id)));
            continue;
        };
        if let Some(reason) = field_problem("label", &first.label) {
            out.errors.push(err(reason));
            continue;
        }
        if let Some(old) = context.stored.get(&row) {
            if *old == first.label {
                out.already += 1;
            } else {
                out.errors.push(err(format!(
                    "already labelled '{}'; stored labels are never overwritten",
                    clip(old)
                )));
            }
            continue;
        }
        if !context.open.contains(&row) {
            out.errors.push(err(match context.open_round {
                Some(b) => format!("not in the requested batch {b}"),
                None => "no batch is open: run `proxal next` first".into(),
            }));
            continue;
        }
        if !known.contains(first.label.as_str()) {
            if !context.allow_new_labels {
                out.errors.push(err(format!(
                    "label '{}' is not in the label set ({}); pass --allow-new-labels to add it",
                    clip(&first.label),
                    label_list(context.label_set)
                )));
                continue;
            }
            if looks_like_formula(&first.label) {
                out.errors.push(err(format!(
                    "new label '{}' starts like a spreadsheet formula; refusing to add it",
                    clip(&first.label)
                )));
                continue;
            }
            if !new_labels.contains(&first.label) {
                new_labels.push(first.label.clone());
            }
        }
        out.accept
            .push((row, first.id.clone(), first.label.clone()));
    }
    out.new_labels = new_labels;
    // Report in file order.
    out.errors.sort_by_key(|e| position(&e.at));
    out
}

fn position(at: &str) -> (usize, String) {
    let n = at
        .rsplit(' ')
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (n, at.to_string())
}

fn label_list(set: &[String]) -> String {
    if set.is_empty() {
        return "empty: give it with `proxal init --labels`".into();
    }
    let shown: Vec<String> = set.iter().take(8).map(|l| clip(l)).collect();
    if set.len() > 8 {
        format!("{}, … {} in all", shown.join(", "), set.len())
    } else {
        shown.join(", ")
    }
}

/// Empty, oversized or control-character fields.
fn field_problem(what: &str, s: &str) -> Option<String> {
    if s.is_empty() {
        return Some(format!("empty {what}"));
    }
    if s.len() > MAX_FIELD_BYTES {
        return Some(format!(
            "{what} is {} bytes (at most {MAX_FIELD_BYTES})",
            s.len()
        ));
    }
    if s.chars().any(|c| c.is_control()) {
        return Some(format!("{what} contains control characters"));
    }
    None
}

/// A field a spreadsheet would run as a formula.
pub fn looks_like_formula(s: &str) -> bool {
    s.starts_with(['=', '+', '-', '@', '\t', '\r'])
}

fn unknown_id(id: &str, rows: &HashMap<String, usize>) -> String {
    // A spreadsheet may have turned "12" into "12.0" or "1.2E+4".
    if let Ok(f) = id.parse::<f64>() {
        if f.fract() == 0.0 && f.abs() < 1e15 {
            let int = format!("{}", f as i64);
            if int != id && rows.contains_key(&int) {
                return format!(
                    "unknown id '{}': did a spreadsheet turn id '{int}' into a number? (ids are matched as text)",
                    clip(id)
                );
            }
        }
    }
    format!("unknown id '{}'", clip(id))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str, body: &[u8]) -> (tempfile::TempDir, std::path::PathBuf) {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join(name);
        std::fs::write(&p, body).unwrap();
        (d, p)
    }

    #[test]
    fn csv_rows_and_positions() {
        let (_d, p) = tmp(
            "a.csv",
            b"id,text,label\n1,\"hi, there\",pos\n\n2,x,neg\n3,y\n",
        );
        let r = read_label_file(&p, &Columns::default()).unwrap();
        assert_eq!(r.rows.len(), 2);
        assert_eq!(r.rows[1].id, "2");
        assert_eq!(r.rows[1].at, "line 4");
        assert_eq!(r.errors.len(), 1, "{:?}", r.errors);
        assert!(r.errors[0].reason.contains("2 fields"));
    }

    #[test]
    fn encoding_and_truncation_are_file_errors() {
        let (_d, p) = tmp("a.csv", b"id,label\n1,caf\xe9\n");
        let e = read_label_file(&p, &Columns::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("not UTF-8") && e.contains("line 2"), "{e}");
        let (_d, p) = tmp(
            "a.json",
            br#"[{"data": {"proxal_id": "1"}, "annotations": [{"res"#,
        );
        let e = read_label_file(&p, &Columns::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("truncated"), "{e}");
        let (_d, p) = tmp("a.csv", &[0xFF, 0xFE, b'i', 0]);
        let e = read_label_file(&p, &Columns::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("UTF-16"), "{e}");
    }

    #[test]
    fn label_studio_full_and_min() {
        let full = br#"[
          {"id": 7, "data": {"text": "a", "proxal_id": "r1"},
           "annotations": [{"was_cancelled": false, "result": [
             {"from_name": "label", "to_name": "text", "type": "choices", "value": {"choices": ["pos"]}}]}]},
          {"id": 8, "data": {"text": "b", "proxal_id": "r2"}, "annotations": []},
          {"id": 9, "data": {"text": "c", "proxal_id": "r3"},
           "annotations": [
             {"result": [{"from_name": "label", "type": "choices", "value": {"choices": ["pos"]}}]},
             {"result": [{"from_name": "label", "type": "choices", "value": {"choices": ["neg"]}}]}]},
          {"id": 10, "data": {"text": "d", "proxal_id": 12.5}, "annotations": []}
        ]"#;
        let (_d, p) = tmp("ls.json", full);
        let r = read_label_file(&p, &Columns::default()).unwrap();
        assert_eq!(
            r.rows,
            vec![LabelRow {
                at: "task 1".into(),
                id: "r1".into(),
                label: "pos".into()
            }]
        );
        assert_eq!(r.unanswered, 1);
        assert_eq!(r.errors.len(), 2);
        assert!(r.errors[0].reason.contains("disagree"));
        assert!(r.errors[1].reason.contains("fractional"));
        let (_d, p) = tmp(
            "min.json",
            br#"[{"proxal_id": "r1", "text": "a", "label": "neg"}]"#,
        );
        let r = read_label_file(&p, &Columns::default()).unwrap();
        assert_eq!(r.rows[0].label, "neg");
    }

    fn cx_check(rows: Vec<LabelRow>, allow: bool) -> Checked {
        let rows_by_id: HashMap<String, usize> = (0..5).map(|i| (format!("{i}"), i)).collect();
        let open: HashSet<usize> = [1, 2, 3].into();
        let stored: HashMap<usize, String> = [(0, "pos".to_string())].into();
        let set = vec!["pos".to_string(), "neg".to_string()];
        check(
            ReadRows {
                rows,
                ..Default::default()
            },
            &Context {
                rows_by_id: &rows_by_id,
                open: &open,
                open_round: Some(2),
                stored: &stored,
                label_set: &set,
                allow_new_labels: allow,
            },
        )
    }

    fn row(at: usize, id: &str, label: &str) -> LabelRow {
        LabelRow {
            at: format!("line {at}"),
            id: id.into(),
            label: label.into(),
        }
    }

    #[test]
    fn every_rule_rejects_its_row_only() {
        let c = cx_check(
            vec![
                row(2, "1", "pos"),   // ok
                row(3, "0", "pos"),   // already stored, same: no-op
                row(4, "0", "neg"),   // conflicts with stored → but also duplicate id in file
                row(5, "4", "pos"),   // not in batch
                row(6, "9", "pos"),   // unknown id
                row(7, "2", ""),      // empty label
                row(8, "3", "maybe"), // unknown label
                row(9, "2.0", "pos"), // float id
            ],
            false,
        );
        assert_eq!(c.accept, vec![(1, "1".to_string(), "pos".to_string())]);
        assert_eq!(c.already, 0);
        let reasons: Vec<String> = c.errors.iter().map(|e| e.to_string()).collect();
        assert_eq!(reasons.len(), 7, "{reasons:#?}");
        assert!(reasons[0].starts_with("line 3") && reasons[0].contains("conflicting"));
        assert!(reasons[2].contains("not in the requested batch 2"));
        assert!(reasons[3].contains("unknown id '9'"));
        assert!(reasons[4].contains("empty label"));
        assert!(reasons[5].contains("--allow-new-labels"));
        assert!(reasons[6].contains("spreadsheet"), "{}", reasons[6]);
    }

    #[test]
    fn new_labels_only_when_allowed_and_not_formulas() {
        let c = cx_check(
            vec![row(2, "1", "maybe"), row(3, "2", "=cmd|' /C calc'!A0")],
            true,
        );
        assert_eq!(c.new_labels, vec!["maybe".to_string()]);
        assert_eq!(c.accept.len(), 1);
        assert!(c.errors[0].reason.contains("formula"));
        let c = cx_check(vec![row(2, "0", "pos")], false);
        assert_eq!((c.accept.len(), c.already, c.errors.len()), (0, 1, 0));
    }

    #[test]
    fn huge_fields_are_row_errors() {
        let big = "x".repeat(5_000_000);
        let c = cx_check(vec![row(2, "1", &big), row(3, &big, "pos")], true);
        assert_eq!(c.errors.len(), 2);
        assert!(c.errors.iter().all(|e| e.to_string().len() < 300));
    }
}
