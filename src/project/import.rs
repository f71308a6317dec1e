//! `proxal label`: people's answers checked and stored, all or nothing.
use super::*;

/// Options of `proxal label`.
#[derive(Debug, Clone)]
pub struct LabelOptions {
    pub file: PathBuf,
    pub cols: labels::Columns,
    pub allow_new_labels: bool,
    /// Store the valid rows even if some are rejected.
    pub partial: bool,
}

/// What `label` did.
#[derive(Debug)]
pub struct LabelReport {
    /// Whether anything was stored.
    pub applied: bool,
    pub stored: usize,
    pub already: usize,
    pub unanswered: usize,
    pub new_labels: Vec<String>,
    pub rejected: Vec<labels::RowError>,
    /// Full list of rejected rows (CSV), when there are any.
    pub report_file: Option<PathBuf>,
    pub open_round: Option<usize>,
    /// Rows of the batch still without labels after this import.
    pub remaining: usize,
}

/// `proxal label`: check every row of an annotators' file; store all valid rows atomically, or
/// none when any row is rejected (unless `partial`).
pub fn label(dir: &Path, o: &LabelOptions) -> Result<LabelReport> {
    let p = Project::open(dir)?;
    let _lock = p.lock()?;
    let ds = p.dataset()?;
    let batches = p.batches()?;
    let stored_recs = p.labels()?;
    let stored: HashMap<usize, String> = stored_recs
        .iter()
        .map(|l| (l.row, l.label.clone()))
        .collect();
    let labelled: HashSet<usize> = stored.keys().copied().collect();
    let open = open_batch(&batches, &labelled);
    let open_rows: HashSet<usize> = open
        .map(|b| b.rows.iter().map(|r| r.row).collect())
        .unwrap_or_default();
    let rows_by_id: HashMap<String, usize> = ds
        .ids
        .iter()
        .enumerate()
        .map(|(i, id)| (id.clone(), i))
        .collect();
    let read = labels::read_label_file(&o.file, &o.cols)?;
    let n_read = read.rows.len() + read.errors.len();
    let unanswered = read.unanswered;
    let checked = labels::check(
        read,
        &labels::Context {
            rows_by_id: &rows_by_id,
            open: &open_rows,
            open_round: open.map(|b| b.round),
            stored: &stored,
            label_set: &ds.label_map.names,
            allow_new_labels: o.allow_new_labels,
        },
    );
    let report_file = if checked.errors.is_empty() {
        None
    } else {
        let path = p.dir.join("imports").join(format!(
            "rejected-{}-{}.csv",
            now_unix(),
            o.file
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default()
        ));
        let mut w = csv::Writer::from_writer(Vec::new());
        w.write_record(["where", "id", "reason"])?;
        for e in &checked.errors {
            w.write_record([
                e.at.as_str(),
                &safe_cell(e.id.as_deref().unwrap_or("")),
                &e.reason,
            ])?;
        }
        util::atomic_write(
            &path,
            &w.into_inner()
                .map_err(|e| anyhow!("cannot write CSV: {e}"))?,
        )?;
        Some(path)
    };
    let apply = !checked.accept.is_empty() && (checked.errors.is_empty() || o.partial);
    let mut report = LabelReport {
        applied: apply,
        stored: 0,
        already: checked.already,
        unanswered,
        new_labels: vec![],
        rejected: checked.errors,
        report_file,
        open_round: open.map(|b| b.round),
        remaining: 0,
    };
    if n_read == 0 && unanswered == 0 {
        bail!("{}: no rows", o.file.display());
    }
    let mut now_labelled = labelled;
    if apply {
        let round = open
            .map(|b| b.round)
            .context("internal error: rows accepted without an open batch")?;
        if !checked.new_labels.is_empty() {
            let mut map = ds.label_map.clone();
            map.names.extend(checked.new_labels.iter().cloned());
            util::atomic_write(
                &Dataset::dir(&p.home, DATASET).join("labels.json"),
                serde_json::to_string_pretty(&map)?.as_bytes(),
            )?;
            report.new_labels = checked.new_labels.clone();
        }
        let mut all = stored_recs;
        for (row, id, label) in &checked.accept {
            all.push(LabelRecord {
                round,
                row: *row,
                id: id.clone(),
                label: label.clone(),
            });
            now_labelled.insert(*row);
        }
        fault_point("label-before-commit");
        p.store_labels(&all)?;
        report.stored = checked.accept.len();
    }
    report.remaining = open
        .map(|b| {
            b.rows
                .iter()
                .filter(|r| !now_labelled.contains(&r.row))
                .count()
        })
        .unwrap_or(0);
    Ok(report)
}
