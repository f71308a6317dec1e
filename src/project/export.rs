//! A batch as files for people: `batch.csv`, Label Studio tasks and its labelling config.
use super::*;

/// A text cell a spreadsheet would not run as a formula (OWASP: prefix a quote). Only the text
/// column is protected; `proxal label` reads ids and labels, never the text.
pub(super) fn safe_cell(s: &str) -> String {
    if labels::looks_like_formula(s) {
        format!("'{s}")
    } else {
        s.to_string()
    }
}

/// `batch.csv`: one row per request, with an empty `label` column to fill in.
pub(super) fn batch_csv(ds: &Dataset, b: &Batch) -> Result<Vec<u8>> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(["id", "label", "text", "predicted", "confidence", "score"])?;
    for r in &b.rows {
        w.write_record([
            r.id.as_str(),
            "",
            &safe_cell(&ds.texts[r.row]),
            r.predicted.as_deref().unwrap_or(""),
            &r.confidence.map(|c| format!("{c:.4}")).unwrap_or_default(),
            &format!("{:.6}", r.score),
        ])?;
    }
    w.into_inner().map_err(|e| anyhow!("cannot write CSV: {e}"))
}

/// `tasks.json`: Label Studio tasks (text + proxal id), with the model's guess as a prediction.
pub(super) fn label_studio_tasks(ds: &Dataset, b: &Batch) -> Result<Vec<u8>> {
    let tasks: Vec<serde_json::Value> = b
        .rows
        .iter()
        .map(|r| {
            let mut t = serde_json::json!({
                "data": { "text": ds.texts[r.row], "proxal_id": r.id, "proxal_round": b.round },
            });
            if let (Some(p), Some(c)) = (&r.predicted, r.confidence) {
                t["predictions"] = serde_json::json!([{
                    "model_version": format!("proxal round {}", b.round),
                    "score": c,
                    "result": [{
                        "from_name": "label", "to_name": "text", "type": "choices",
                        "value": { "choices": [p] }
                    }]
                }]);
            }
            t
        })
        .collect();
    Ok(serde_json::to_vec_pretty(&tasks)?)
}

pub(super) fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The Label Studio labelling interface for the label set (a text and one choice).
pub(super) fn label_studio_config(names: &[String]) -> String {
    let mut s = String::from(
        "<View>\n  <Text name=\"text\" value=\"$text\"/>\n  <Choices name=\"label\" toName=\"text\" choice=\"single\">\n",
    );
    for n in names {
        s.push_str(&format!("    <Choice value=\"{}\"/>\n", xml_escape(n)));
    }
    s.push_str("  </Choices>\n</View>\n");
    s
}
