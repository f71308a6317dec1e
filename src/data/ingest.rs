//! Import a user's file (CSV, TSV, JSONL or Parquet) into the canonical table.
//!
//! Every check names the file, and the row or column at fault, in one line; nothing is written
//! unless the whole file passes, so a failed import never damages an earlier one.
use super::table::{Dataset, LabelMap, Meta, Split};
use crate::home::Home;
use anyhow::{anyhow, bail, Context, Result};
use polars::prelude::*;
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

/// File formats proxal reads, chosen by extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Tsv,
    JsonLines,
    Parquet,
}

impl Format {
    pub fn from_path(path: &Path) -> Result<Format> {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or("")
            .to_ascii_lowercase();
        Ok(match ext.as_str() {
            "csv" => Format::Csv,
            "tsv" | "tab" => Format::Tsv,
            "jsonl" | "ndjson" => Format::JsonLines,
            "parquet" | "pq" => Format::Parquet,
            _ => bail!(
                "{}: unknown file type '.{ext}' (expected .csv, .tsv, .jsonl, .ndjson or .parquet)",
                path.display()
            ),
        })
    }
}

/// What to read from the file.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// Name of the dataset to create under `datasets/`.
    pub name: String,
    pub text_col: String,
    /// Column with gold labels; `None` for a pool with no labels at all.
    pub label_col: Option<String>,
    /// Column assigning rows to pool / dev / test (train is taken as pool); `None`: all pool.
    pub split_col: Option<String>,
    /// Column with row ids; `None`: ids are the row numbers.
    pub id_col: Option<String>,
    /// Hold out a share of the labelled rows as the test split (instead of `split_col`).
    pub test_split: Option<TestSplit>,
}

/// A seeded test split drawn from the labelled rows, stratified by label: each class gives
/// `fraction` of its rows (rounded; a class of two or more rows keeps at least one in the pool).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TestSplit {
    pub fraction: f64,
    pub seed: u64,
}

impl ImportOptions {
    pub fn new(name: &str, text_col: &str) -> Self {
        Self {
            name: name.into(),
            text_col: text_col.into(),
            label_col: None,
            split_col: None,
            id_col: None,
            test_split: None,
        }
    }
}

impl TestSplit {
    /// Move the split's share of each class's labelled pool rows to the test split.
    pub(crate) fn apply(&self, ds: &mut Dataset) {
        use rand::seq::SliceRandom;
        let mut rng = crate::util::rng(self.seed);
        let mut by_class: std::collections::BTreeMap<u32, Vec<usize>> = Default::default();
        for i in 0..ds.len() {
            if let (Split::Pool, Some(l)) = (ds.splits[i], ds.labels[i]) {
                by_class.entry(l).or_default().push(i);
            }
        }
        for rows in by_class.values_mut() {
            rows.shuffle(&mut rng);
            let n = rows.len();
            let k = ((n as f64) * self.fraction).round() as usize;
            let k = if n > 1 { k.min(n - 1) } else { k };
            for &r in &rows[..k] {
                ds.splits[r] = Split::Test;
            }
        }
    }
}

/// What an import did.
#[derive(Debug, Clone)]
pub struct ImportReport {
    pub dir: PathBuf,
    /// What was stored (the same record as `datasets/<name>/meta.json`).
    pub meta: Meta,
    /// Non-fatal findings (e.g. a label seen in test but never in the pool).
    pub warnings: Vec<String>,
}

impl std::fmt::Display for ImportReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let m = &self.meta;
        write!(
            f,
            "dataset '{}': {} rows (pool {}, dev {}, test {}), {} labelled, {} labels → {}",
            m.name,
            m.rows,
            m.pool,
            m.dev,
            m.test,
            m.labelled,
            m.n_labels,
            self.dir.display()
        )
    }
}

/// Read a file into a DataFrame of string columns, after checking that it is what its extension
/// says, is not empty, and (for text formats) is valid UTF-8.
pub fn read_table(path: &Path) -> Result<DataFrame> {
    let format = Format::from_path(path)?;
    let bytes =
        std::fs::read(path).map_err(|e| anyhow!("{}: cannot read file: {e}", path.display()))?;
    if bytes.is_empty() {
        bail!("{}: file is empty", path.display());
    }
    let is_parquet = bytes.len() >= 8 && bytes.starts_with(b"PAR1") && bytes.ends_with(b"PAR1");
    let df = match format {
        Format::Parquet => {
            if !is_parquet {
                bail!(
                    "{}: not a Parquet file (no PAR1 magic bytes): is the extension right?",
                    path.display()
                );
            }
            ParquetReader::new(std::io::Cursor::new(bytes))
                .finish()
                .map_err(|e| anyhow!("{}: cannot read Parquet: {e}", path.display()))?
        }
        Format::Csv | Format::Tsv | Format::JsonLines => {
            if is_parquet {
                bail!(
                    "{}: this is a Parquet file, not {:?}: rename it to .parquet",
                    path.display(),
                    format
                );
            }
            check_text(path, &bytes)?;
            if format == Format::JsonLines {
                check_json_lines(path, &bytes)?;
                JsonReader::new(std::io::Cursor::new(bytes))
                    .with_json_format(JsonFormat::JsonLines)
                    .finish()
                    .map_err(|e| anyhow!("{}: cannot read JSON Lines: {e}", path.display()))?
            } else {
                let sep = if format == Format::Tsv { b'\t' } else { b',' };
                CsvReadOptions::default()
                    .with_has_header(true)
                    .with_infer_schema_length(Some(0)) // every column as text: ids stay "007"
                    .with_raise_if_empty(true)
                    .map_parse_options(|o| o.with_separator(sep).with_quote_char(Some(b'"')))
                    .into_reader_with_file_handle(std::io::Cursor::new(&bytes))
                    .finish()
                    .map_err(|e| {
                        let why = diagnose_delimited(&bytes, sep).unwrap_or_else(|| {
                            // polars' first line only: the rest is advice for its Python API.
                            let e = e.to_string();
                            format!(
                                "cannot parse as {format:?}: {}",
                                e.lines().next().unwrap_or_default()
                            )
                        });
                        anyhow!("{}: {why}", path.display())
                    })?
            }
        }
    };
    if df.height() == 0 {
        bail!(
            "{}: no data rows (only a header or nothing)",
            path.display()
        );
    }
    Ok(df)
}

/// Why a delimited file that the table reader refused is malformed, in terms of its own lines
/// (RFC 4180 quoting): a quoted field with text after its closing quote, a quote that is never
/// closed, a quoted field that runs over several lines, or a record whose field count differs
/// from the header's. None if nothing of the kind is found.
fn diagnose_delimited(bytes: &[u8], sep: u8) -> Option<String> {
    let name = if sep == b'\t' { "tab" } else { "comma" };
    let fix = "if the quote is part of the text, double it (\"\") and quote the whole field, or remove it";
    let (mut line, mut fields, mut width) = (1usize, 1usize, None::<usize>);
    let (mut field_start, mut in_quotes, mut closed, mut content) = (true, false, false, false);
    let mut opened_at = 0usize;
    // A quoted field over several lines is valid CSV: blamed only if nothing else is found.
    let mut multiline: Option<String> = None;
    let width_error = |line: usize, fields: usize, w: usize| {
        format!(
            "line {line}: {fields} fields where the header has {w} (fields are separated by a {name}; a {name} inside a text must be in a quoted field)"
        )
    };
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        i += 1;
        if in_quotes {
            match b {
                b'"' if bytes.get(i) == Some(&b'"') => i += 1,
                b'"' => {
                    in_quotes = false;
                    closed = true;
                }
                b'\n' => line += 1,
                _ => {}
            }
            continue;
        }
        if b == b'\n' || b == sep {
            if closed && line > opened_at && multiline.is_none() {
                multiline = Some(format!(
                    "line {opened_at}: a quote (\") opens a field that runs on to line {line}; {fix}"
                ));
            }
            field_start = true;
            closed = false;
            if b == sep {
                fields += 1;
                content = true;
                continue;
            }
            match width {
                None => width = Some(fields),
                Some(w) if content && fields != w => return Some(width_error(line, fields, w)),
                Some(_) => {}
            }
            fields = 1;
            content = false;
            line += 1;
            continue;
        }
        if b == b'\r' {
            continue;
        }
        content = true;
        if closed {
            return Some(format!(
                "line {line}: field {fields} starts with a quoted part (\"…\") and goes on after its closing quote; {fix}"
            ));
        }
        if b == b'"' {
            if !field_start {
                return Some(format!(
                    "line {line}: field {fields} has a quote (\") inside unquoted text; {fix}"
                ));
            }
            in_quotes = true;
            opened_at = line;
        }
        field_start = false;
    }
    if in_quotes {
        return Some(format!(
            "line {opened_at}: a quote (\") opens a field that is never closed; {fix}"
        ));
    }
    // The last record, when the file does not end with a newline.
    if let Some(w) = width.filter(|&w| content && fields != w) {
        return Some(width_error(line, fields, w));
    }
    multiline
}

/// Text files must be UTF-8 and must not hold NUL bytes (a binary file under a text extension).
fn check_text(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Err(e) = std::str::from_utf8(bytes) {
        let at = e.valid_up_to();
        let line = bytes[..at].iter().filter(|&&b| b == b'\n').count() + 1;
        bail!(
            "{}: line {line} is not valid UTF-8 (byte offset {at}): re-encode the file as UTF-8",
            path.display()
        );
    }
    if let Some(at) = bytes.iter().position(|&b| b == 0) {
        let line = bytes[..at].iter().filter(|&&b| b == b'\n').count() + 1;
        bail!(
            "{}: line {line} holds a NUL byte: this looks like a binary file, not text",
            path.display()
        );
    }
    Ok(())
}

/// Each non-blank line of a JSON Lines file must be one JSON object.
fn check_json_lines(path: &Path, bytes: &[u8]) -> Result<()> {
    let text = std::str::from_utf8(bytes).expect("checked by check_text");
    let mut seen = false;
    for (i, line) in text.lines().enumerate() {
        let l = line.trim();
        if l.is_empty() {
            continue;
        }
        seen = true;
        match serde_json::from_str::<serde_json::Value>(l) {
            Ok(serde_json::Value::Object(_)) => {}
            Ok(_) => bail!("{}: line {}: not a JSON object", path.display(), i + 1),
            Err(e) => bail!("{}: line {}: invalid JSON: {e}", path.display(), i + 1),
        }
    }
    if !seen {
        bail!("{}: no data rows (only blank lines)", path.display());
    }
    Ok(())
}

/// A column as optional strings (any type is cast to text; missing values are `None`).
fn string_column(df: &DataFrame, path: &Path, name: &str) -> Result<Vec<Option<String>>> {
    let col = df.column(name).map_err(|_| {
        let have: Vec<String> = df
            .get_column_names()
            .iter()
            .map(|c| c.to_string())
            .collect();
        anyhow!(
            "{}: no column '{name}' (columns: {})",
            path.display(),
            have.join(", ")
        )
    })?;
    let col = col.cast(&DataType::String).map_err(|e| {
        anyhow!(
            "{}: column '{name}' cannot be read as text: {e}",
            path.display()
        )
    })?;
    let ca = col
        .str()
        .map_err(|e| anyhow!("{}: column '{name}': {e}", path.display()))?;
    Ok(ca.iter().map(|v| v.map(str::to_string)).collect())
}

/// Rows read from one or more source files, before validation.
pub(crate) struct RawRows {
    pub ids: Vec<String>,
    pub texts: Vec<Option<String>>,
    pub labels: Vec<Option<String>>,
    pub splits: Vec<Split>,
    /// For error messages: (file, data row number starting at 1) of each row.
    pub origin: Vec<(PathBuf, usize)>,
}

impl RawRows {
    pub fn new() -> Self {
        Self {
            ids: vec![],
            texts: vec![],
            labels: vec![],
            splits: vec![],
            origin: vec![],
        }
    }

    /// Append row `i` of `part` under another id, text, label and split, keeping its origin
    /// (file and row) for error messages.
    pub fn push_from(
        &mut self,
        part: &RawRows,
        i: usize,
        id: String,
        text: Option<String>,
        label: Option<String>,
        split: Split,
    ) {
        self.ids.push(id);
        self.texts.push(text);
        self.labels.push(label);
        self.splits.push(split);
        self.origin.push(part.origin[i].clone());
    }

    /// Append the rows of one file. `fixed_split` overrides any split column.
    pub fn read(
        &mut self,
        path: &Path,
        opts: &ImportOptions,
        fixed_split: Option<Split>,
    ) -> Result<()> {
        let df = read_table(path)?;
        let texts = string_column(&df, path, &opts.text_col)?;
        let labels = match &opts.label_col {
            Some(c) => string_column(&df, path, c)?,
            None => vec![None; df.height()],
        };
        let splits: Vec<Split> = match (fixed_split, &opts.split_col) {
            (Some(s), _) => vec![s; df.height()],
            (None, Some(c)) => string_column(&df, path, c)?
                .into_iter()
                .enumerate()
                .map(|(i, v)| {
                    let v = v.unwrap_or_default();
                    Split::parse(&v).ok_or_else(|| {
                        anyhow!(
                            "{}: row {}: column '{c}': unknown split '{v}' (expected pool/train, dev/validation or test)",
                            path.display(),
                            i + 1
                        )
                    })
                })
                .collect::<Result<_>>()?,
            (None, None) => vec![Split::Pool; df.height()],
        };
        let ids: Vec<String> = match &opts.id_col {
            Some(c) => string_column(&df, path, c)?
                .into_iter()
                .enumerate()
                .map(|(i, v)| match v {
                    Some(v) if !v.trim().is_empty() => Ok(v.trim().to_string()),
                    _ => bail!("{}: row {}: column '{c}': empty id", path.display(), i + 1),
                })
                .collect::<Result<_>>()?,
            None => {
                let prefix = fixed_split
                    .map(|s| format!("{}-", s.as_str()))
                    .unwrap_or_default();
                (0..df.height()).map(|i| format!("{prefix}{i}")).collect()
            }
        };
        for i in 0..df.height() {
            self.origin.push((path.to_path_buf(), i + 1));
        }
        self.ids.extend(ids);
        self.texts.extend(texts);
        self.labels.extend(
            labels
                .into_iter()
                .map(|l| l.map(|s| s.trim().to_string()).filter(|s| !s.is_empty())),
        );
        self.splits.extend(splits);
        Ok(())
    }

    /// Validate and build the canonical dataset. Errors name the file and row.
    pub fn into_dataset(self, name: &str, text_col: &str) -> Result<(Dataset, Vec<String>)> {
        let mut warnings = Vec::new();
        let mut texts = Vec::with_capacity(self.texts.len());
        for (i, t) in self.texts.into_iter().enumerate() {
            let t = t.map(|t| t.trim().to_string()).unwrap_or_default();
            if t.is_empty() {
                let (f, r) = &self.origin[i];
                bail!("{}: row {r}: column '{text_col}' is empty", f.display());
            }
            texts.push(t);
        }
        let mut first: HashMap<&str, usize> = HashMap::with_capacity(self.ids.len());
        for (i, id) in self.ids.iter().enumerate() {
            if let Some(&j) = first.get(id.as_str()) {
                let (fi, ri) = &self.origin[i];
                let (fj, rj) = &self.origin[j];
                bail!(
                    "{}: row {ri}: duplicate id '{id}' (first seen at {} row {rj})",
                    fi.display(),
                    fj.display()
                );
            }
            first.insert(id, i);
        }
        let names: BTreeSet<&str> = self.labels.iter().flatten().map(String::as_str).collect();
        let label_map = LabelMap {
            names: names.iter().map(|s| s.to_string()).collect(),
        };
        let pool_labels: BTreeSet<&str> = self
            .labels
            .iter()
            .zip(&self.splits)
            .filter(|(_, &s)| s == Split::Pool)
            .filter_map(|(l, _)| l.as_deref())
            .collect();
        if !pool_labels.is_empty() {
            let mut unseen: BTreeSet<&str> = BTreeSet::new();
            for (l, s) in self.labels.iter().zip(&self.splits) {
                if let (Some(l), Split::Dev | Split::Test) = (l.as_deref(), s) {
                    if !pool_labels.contains(l) {
                        unseen.insert(l);
                    }
                }
            }
            if !unseen.is_empty() {
                let list: Vec<&str> = unseen.into_iter().collect();
                warnings.push(format!(
                    "{} label(s) appear in dev/test but never in the pool: {}",
                    list.len(),
                    list.join(", ")
                ));
            }
        }
        let labels = self
            .labels
            .iter()
            .map(|l| l.as_deref().and_then(|n| label_map.id(n)))
            .collect();
        let fingerprint = Dataset::compute_fingerprint(&self.ids, &texts);
        Ok((
            Dataset {
                name: name.to_string(),
                ids: self.ids,
                texts,
                labels,
                splits: self.splits,
                label_map,
                fingerprint,
            },
            warnings,
        ))
    }
}

/// Check a dataset name: it becomes a directory name.
pub(crate) fn check_name(name: &str) -> Result<()> {
    if name.is_empty()
        || name.len() > 100
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
        || name.starts_with('.')
    {
        bail!("invalid dataset name '{name}': use letters, digits, '-', '_' or '.'");
    }
    Ok(())
}

/// Store a validated dataset and describe it.
pub(crate) fn store(
    home: &Home,
    ds: &Dataset,
    source: &str,
    warnings: Vec<String>,
) -> Result<ImportReport> {
    let dir = Dataset::dir(home, &ds.name);
    ds.save(&dir, source)
        .with_context(|| format!("cannot store dataset '{}'", ds.name))?;
    Ok(ImportReport {
        dir,
        meta: ds.meta(source),
        warnings,
    })
}

/// `proxal data import`: read `path`, validate it, store it as `datasets/<name>/`.
pub fn import_file(home: &Home, path: &Path, opts: &ImportOptions) -> Result<ImportReport> {
    check_name(&opts.name)?;
    let mut source = path.display().to_string();
    if let Some(t) = opts.test_split {
        if !(t.fraction > 0.0 && t.fraction < 1.0) {
            bail!(
                "--test-fraction must be between 0 and 1, got {}",
                t.fraction
            );
        }
        if opts.split_col.is_some() {
            bail!("give either --split-col or --test-fraction, not both");
        }
        if opts.label_col.is_none() {
            bail!(
                "--test-fraction holds out labelled rows: name the label column with --label-col"
            );
        }
        source.push_str(&format!(
            " (test split: {} of each label's rows, seed {})",
            t.fraction, t.seed
        ));
    }
    let mut raw = RawRows::new();
    raw.read(path, opts, None)?;
    let (mut ds, warnings) = raw.into_dataset(&opts.name, &opts.text_col)?;
    if let Some(t) = opts.test_split {
        t.apply(&mut ds);
    }
    store(home, &ds, &source, warnings)
}
