//! Report documents: Markdown, self-contained HTML, CSV and JSON, from [`Metrics`].
use super::metrics::{GroupMetrics, Metrics, Stat, Versus};
use super::plots::Figure;
use crate::cost::Stage;
use base64::Engine;
use serde::Serialize;

/// The metric definitions, stated in every report (docs/METRICS.md).
pub const DEFINITIONS: [(&str, &str); 9] = [
    (
        "Target accuracy a",
        "by default 99% of the best final test accuracy among the compared run groups (mean over seeds); or set with --target-accuracy.",
    ),
    (
        "N_m(a)",
        "labels method m needed to first reach a, interpolated linearly between the two evaluation points around the first crossing of its learning curve (the first point if it already reaches a). A method whose curve never reaches a is reported as \"not reached\", never extrapolated.",
    ),
    ("LE (labelling efficiency vs random)", "N_random(a) / N_m(a); above 1 means fewer labels than random."),
    ("SSR (sample saving ratio vs random)", "1 − N_m(a) / N_random(a); the fraction of random's labels saved."),
    (
        "H_m(a) (compute)",
        "metered wall-clock seconds of every stage on the policy's path (embed, refresh, proxy fit, scoring, selection, indicators, fine-tune, …) up to the point where a is reached, plus training the model that ships at that point (the `ship` stage: svpp's/asvp's final probe or fine-tune and the re-embedding it needs; standard AL's own fine-tune is its shipped model), once, for every policy alike; interpolated like N_m(a). The device is recorded with every ledger record. Shown in wall seconds, CPU seconds and machine-independent work (rows embedded; row-epochs fine-tuned, counted from the optimiser steps actually run). Evaluation (scoring the test split, indicators only logged, and the ship training of earlier evaluation points, which only drew the learning curve) is excluded and shown apart. Work done after a round's evaluation (e.g. selecting the next batch) counts towards the next evaluation point.",
    ),
    (
        "C_m(a) (total cost)",
        "price_label · N_m(a) + Σ over devices of price_hour(device) · H_m(a, device) / 3600, in US dollars.",
    ),
    ("Equivalent-cost saving over standard AL, in labels", "(C_std(a) − C_m(a)) / price_label: how many more labels m could buy for the money it saves."),
    ("Equivalent-cost saving ratio", "1 − C_m(a) / C_std(a)."),
    (
        "Seeds",
        "runs whose configs differ only in name and seed form one group; N, H, C are shown as mean ± sample standard deviation over its runs, only when every run reached a; LE, SSR and savings are computed from the group means.",
    ),
];

enum Block {
    H(u8, String),
    P(String),
    List(Vec<String>),
    Table(Vec<String>, Vec<Vec<String>>),
    Image {
        file: String,
        title: String,
        png: Vec<u8>,
    },
    Defs,
}

fn pct(x: f64) -> String {
    format!("{:.2}%", x * 100.0)
}

/// Plain dollars (the unit is in the column header), two decimals below $100.
fn usd(x: f64) -> String {
    if x.abs() >= 100.0 {
        format!("{x:.0}")
    } else {
        format!("{x:.2}")
    }
}

/// Plain seconds (the unit is in the column header).
fn secs(x: f64) -> String {
    if x.abs() >= 100.0 {
        format!("{x:.0}")
    } else {
        format!("{x:.1}")
    }
}

/// `mean ± std` (sample standard deviation over seeds), both in the column's format.
fn stat_str(s: &Stat, f: &dyn Fn(f64) -> String) -> String {
    match s.std {
        Some(sd) => format!("{} ± {}", f(s.mean), f(sd)),
        None => f(s.mean),
    }
}

fn reach_str(g: &GroupMetrics, s: &Option<Stat>, f: &dyn Fn(f64) -> String) -> String {
    match s {
        Some(s) => stat_str(s, f),
        None if g.reached == 0 => "not reached".into(),
        None => format!("not reached by every seed ({}/{})", g.reached, g.runs.len()),
    }
}

fn versus_str(v: &Versus, f: &dyn Fn(f64) -> String) -> String {
    match v.value {
        Some(x) => f(x),
        None => v.status.clone(),
    }
}

fn count(x: f64) -> String {
    format!("{x:.0}")
}

/// H(a)'s row-epochs, or why they are missing.
fn row_epochs_str(g: &GroupMetrics) -> String {
    match (&g.row_epochs, g.reached == g.runs.len()) {
        (Some(s), _) => stat_str(s, &count),
        (None, true) => "n/a (steps not recorded)".into(),
        (None, false) => reach_str(g, &None, &count),
    }
}

fn ratio(x: f64) -> String {
    format!("{x:.2}×")
}

fn frac_pct(x: f64) -> String {
    format!("{:.1}%", x * 100.0)
}

fn labels_num(x: f64) -> String {
    format!("{x:.0}")
}

fn signed_labels(x: f64) -> String {
    format!("{x:+.0}")
}

/// The report as a sequence of blocks, section by section.
fn blocks(m: &Metrics, figs: &[Figure]) -> Vec<Block> {
    let mut b = Vec::new();
    header(m, &mut b);
    results_at_target(m, &mut b);
    cost_parts(m, &mut b);
    learning_tables(m, &mut b);
    figures_section(figs, &mut b);
    stage_table(m, &mut b);
    runs_table(m, &mut b);
    alignment_checks(m, &mut b);
    definitions(&mut b);
    b
}

/// Title, what the report is made of, the target and the prices.
fn header(m: &Metrics, b: &mut Vec<Block>) {
    b.push(Block::H(1, format!("proxal report — {}", m.dataset)));
    b.push(Block::P(format!(
        "{} run(s) in {} group(s) on dataset {}. Every number below is recomputed from the runs' raw ledgers (ledger.jsonl) and evaluation records (rounds.jsonl).",
        m.runs.len(),
        m.groups.len(),
        m.dataset
    )));
    b.push(Block::P(format!(
        "Target accuracy a = {} — {}.",
        pct(m.target.accuracy),
        m.target.how
    )));
    let mut prices = vec![format!("label: ${} per label", m.prices.price_per_label)];
    for (d, p) in &m.prices.price_per_device_hour {
        prices.push(format!("device {d}: ${p} per hour"));
    }
    b.push(Block::P(format!(
        "Prices (US$; defaults, overridden by the runs' [prices] and the command line): {}.",
        prices.join("; ")
    )));
}

/// N(a), LE, SSR, H(a) (wall, CPU, work), C(a) and savings per group, with the notes a reader needs.
fn results_at_target(m: &Metrics, b: &mut Vec<Block>) {
    b.push(Block::H(2, "Results at the target accuracy".into()));
    let head = [
        "method",
        "runs (reached a)",
        "N(a) (labels)",
        "LE vs random",
        "SSR vs random",
        "H(a) compute (s)",
        "H(a) CPU (s)",
        "H(a) rows embedded",
        "H(a) row-epochs fine-tuned",
        "evaluation (s, apart)",
        "C(a) total (US$)",
        "saving vs standard (labels)",
        "saving vs standard (ratio)",
        "final accuracy",
    ];
    let rows = m
        .groups
        .iter()
        .map(|g| {
            vec![
                g.label.clone(),
                format!("{} ({})", g.runs.len(), g.reached),
                reach_str(g, &g.labels, &labels_num),
                versus_str(&g.le, &ratio),
                versus_str(&g.ssr, &frac_pct),
                reach_str(g, &g.compute_seconds, &secs),
                reach_str(g, &g.cpu_seconds, &secs),
                reach_str(g, &g.rows_embedded, &count),
                row_epochs_str(g),
                reach_str(g, &g.eval_seconds, &secs),
                reach_str(g, &g.total_cost, &usd),
                versus_str(&g.saving_labels, &signed_labels),
                versus_str(&g.saving_ratio, &frac_pct),
                stat_str(&g.final_accuracy, &pct),
            ]
        })
        .collect();
    b.push(Block::Table(
        head.iter().map(|s| s.to_string()).collect(),
        rows,
    ));
    let mut notes: Vec<String> = m.notes.clone();
    if let Some(r) = &m.random_group {
        notes.push(format!("random baseline: {r}"));
    }
    if let Some(s) = &m.standard_group {
        notes.push(format!("standard-AL baseline: {s}"));
    }
    for g in &m.groups {
        if g.reached > 0 && g.reached < g.runs.len() {
            notes.push(format!(
                "{} reached the target in only {} of {} seeds: its N(a), H(a) and C(a) are not averaged (see the runs table)",
                g.label,
                g.reached,
                g.runs.len()
            ));
        }
        if g.reached == 0 {
            notes.push(format!(
                "{} never reached the target: best final accuracy {} at {} labels",
                g.label,
                pct(g.final_accuracy.mean),
                labels_num(g.final_labels.mean)
            ));
        }
    }
    b.push(Block::List(notes));
}

/// C(a) split into labels and compute, and H(a) per device.
fn cost_parts(m: &Metrics, b: &mut Vec<Block>) {
    b.push(Block::H(
        3,
        "Cost at the target, by part (group means)".into(),
    ));
    let devices: Vec<String> = {
        let mut d: Vec<String> = Vec::new();
        for r in &m.runs {
            for x in r
                .reach
                .iter()
                .flat_map(|x| x.spend.compute_seconds_by_device.keys())
            {
                if !d.contains(x) {
                    d.push(x.clone());
                }
            }
        }
        d.sort();
        d
    };
    let mut head = vec![
        "method".to_string(),
        "C(a) (US$)".into(),
        "labels (US$)".into(),
        "compute (US$)".into(),
    ];
    head.extend(devices.iter().map(|d| format!("H(a) on {d} (s)")));
    let rows = m
        .groups
        .iter()
        .map(|g| {
            let mut r = vec![
                g.label.clone(),
                reach_str(g, &g.total_cost, &usd),
                reach_str(g, &g.label_cost, &usd),
                g.compute_cost
                    .map(|s| format!("{:.4}", s.mean))
                    .unwrap_or_else(|| "—".into()),
            ];
            for d in &devices {
                let xs: Vec<f64> = m
                    .runs
                    .iter()
                    .filter(|r| g.runs.contains(&r.name))
                    .filter_map(|r| {
                        r.reach.as_ref().map(|x| {
                            x.spend
                                .compute_seconds_by_device
                                .get(d)
                                .copied()
                                .unwrap_or(0.0)
                        })
                    })
                    .collect();
                r.push(if xs.len() == g.runs.len() {
                    secs(xs.iter().sum::<f64>() / xs.len() as f64)
                } else {
                    "—".into()
                });
            }
            r
        })
        .collect();
    b.push(Block::Table(head, rows));
}

/// The figures, inline.
fn figures_section(figs: &[Figure], b: &mut Vec<Block>) {
    b.push(Block::H(2, "Figures".into()));
    for f in figs {
        b.push(Block::Image {
            file: format!("{}.png", f.stem),
            title: f.title.clone(),
            png: f.png.clone(),
        });
    }
    b.push(Block::P("Each figure is also written as SVG beside the PNG. Crosses mark where a group first reaches the target; shaded bands are ± one standard deviation over seeds.".into()));
}

/// Whole-run seconds per ledger stage, per group.
fn stage_table(m: &Metrics, b: &mut Vec<Block>) {
    b.push(Block::H(
        2,
        "Metered time by stage (whole run, mean per run)".into(),
    ));
    let stages: Vec<Stage> = Stage::ALL
        .iter()
        .copied()
        .filter(|s| m.groups.iter().any(|g| g.seconds_by_stage.contains_key(s)))
        .collect();
    let mut head = vec!["method".to_string()];
    head.extend(stages.iter().map(|s| format!("{} (s)", s.as_str())));
    head.push("whole-run compute: path + shipped model (s)".into());
    head.push("device(s)".into());
    let rows = m
        .groups
        .iter()
        .map(|g| {
            let mut r = vec![g.label.clone()];
            r.extend(
                stages
                    .iter()
                    .map(|s| format!("{:.1}", g.seconds_by_stage.get(s).copied().unwrap_or(0.0))),
            );
            r.push(secs(g.total_compute_seconds.mean));
            r.push(g.devices.join(", "));
            r
        })
        .collect();
    b.push(Block::Table(head, rows));
}

/// One row per alignment check, for the runs that made any (docs/ALIGNMENT.md).
fn alignment_checks(m: &Metrics, b: &mut Vec<Block>) {
    if m.runs.iter().all(|r| r.checks.is_empty()) {
        return;
    }
    b.push(Block::H(2, "Alignment checks".into()));
    b.push(Block::P(
        "Each check trains the linear probe on the cache the proxy selects with and a fine-tune \
         per candidate method on the same labelled rows, and compares them on the run's fixed \
         validation share of the labels: gain = candidate − probe accuracy on those rows, with its \
         paired standard error (docs/ALIGNMENT.md)."
            .into(),
    ));
    let head = [
        "run",
        "round",
        "labels",
        "trained on / held out",
        "probe",
        "candidates",
        "gain",
        "decision",
    ];
    let mut rows = Vec::new();
    for r in &m.runs {
        for (round, labels, c) in &r.checks {
            let cands: Vec<String> = c
                .candidates
                .iter()
                .map(|(name, acc)| format!("{name} {acc:.3}"))
                .collect();
            rows.push(vec![
                r.name.clone(),
                round.to_string(),
                labels.to_string(),
                format!("{} / {}", c.train_rows, c.val_rows),
                format!("{:.3}", c.probe_accuracy),
                cands.join(", "),
                format!("{:+.3} ± {:.3}", c.gain, c.gain_se),
                if c.pays {
                    format!("align ({})", c.best)
                } else {
                    "keep the cache".into()
                },
            ]);
        }
    }
    b.push(Block::Table(
        head.iter().map(|s| s.to_string()).collect(),
        rows,
    ));
}

/// One row per run.
fn runs_table(m: &Metrics, b: &mut Vec<Block>) {
    b.push(Block::H(2, "Runs".into()));
    let head = [
        "run",
        "group",
        "seed",
        "evaluation points",
        "final labels",
        "final accuracy",
        "final macro-F1",
        "N(a) (labels)",
        "C(a) (US$)",
        "compute, whole run (s)",
        "of which the shipped model (s)",
        "compute CPU (s)",
        "rows embedded",
        "row-epochs fine-tuned",
        "evaluation, whole run (s)",
        "labels bought (ledger)",
    ];
    let rows = m
        .runs
        .iter()
        .map(|r| {
            vec![
                r.name.clone(),
                r.group.clone(),
                r.seed.map(|s| s.to_string()).unwrap_or_else(|| "—".into()),
                r.points.len().to_string(),
                labels_num(r.final_labels),
                pct(r.final_accuracy),
                pct(r.final_macro_f1),
                r.reach
                    .as_ref()
                    .map(|x| format!("{:.1}", x.labels))
                    .unwrap_or_else(|| "not reached".into()),
                r.reach
                    .as_ref()
                    .map(|x| usd(x.spend.total_cost))
                    .unwrap_or_else(|| "not reached".into()),
                secs(r.total_compute_seconds),
                secs(r.total_ship_seconds),
                format!("{:.1}", r.total_cpu_seconds),
                count(r.total_rows_embedded),
                if r.row_epochs_complete {
                    count(r.total_row_epochs)
                } else {
                    "n/a (steps not recorded)".into()
                },
                secs(r.total_eval_seconds),
                r.labels_bought.to_string(),
            ]
        })
        .collect();
    b.push(Block::Table(
        head.iter().map(|s| s.to_string()).collect(),
        rows,
    ));
}

/// The metric definitions and where the numbers are.
fn definitions(b: &mut Vec<Block>) {
    b.push(Block::H(2, "Definitions".into()));
    b.push(Block::Defs);
    b.push(Block::P(format!(
        "Generated by proxal {}. Numbers: report.csv, report.json.",
        env!("CARGO_PKG_VERSION")
    )));
}

/// Label counts of every group's evaluation points (rounded, sorted, deduplicated): the columns of
/// the per-label-count tables.
fn label_columns(m: &Metrics) -> Vec<i64> {
    let mut cols: Vec<i64> = m
        .groups
        .iter()
        .flat_map(|g| g.curve.iter().map(|p| p.labels.round() as i64))
        .collect();
    cols.sort_unstable();
    cols.dedup();
    cols
}

/// Accuracy at each label count and compute per round, mean ± std over seeds, with the whole-run
/// compute of each group relative to the standard-AL baseline.
fn learning_tables(m: &Metrics, b: &mut Vec<Block>) {
    let cols = label_columns(m);
    let at = |g: &GroupMetrics, n: i64| g.curve.iter().position(|p| p.labels.round() as i64 == n);
    b.push(Block::H(
        2,
        "Test accuracy at each label count (mean ± std over seeds)".into(),
    ));
    let mut head = vec!["method".to_string(), "runs".into()];
    head.extend(cols.iter().map(|n| format!("{n} labels")));
    let rows = m
        .groups
        .iter()
        .map(|g| {
            let mut r = vec![g.label.clone(), g.runs.len().to_string()];
            r.extend(cols.iter().map(|&n| match at(g, n) {
                Some(k) => stat_str(&g.curve[k].accuracy, &pct),
                None => "—".into(),
            }));
            r
        })
        .collect();
    b.push(Block::Table(head, rows));

    b.push(Block::H(
        2,
        "Compute per round (s, mean ± std over seeds)".into(),
    ));
    b.push(Block::P("Each label-count column is the compute added between the previous evaluation point and the one at that label count (the difference of H at the two points: the path's work in between, plus this point's shipped model, minus the previous point's); the first column holds everything up to the first evaluation (embedding the pool, a first fine-tune). \"After the last evaluation\" is work no evaluation point follows. The last column divides the standard-AL baseline's whole-run compute by the method's.".into()));
    let std_total = m.standard_group.as_ref().and_then(|s| {
        m.groups
            .iter()
            .find(|g| &g.label == s)
            .map(|g| g.total_compute_seconds.mean)
    });
    let mut head = vec!["method".to_string()];
    head.extend(cols.iter().map(|n| format!("{n} labels")));
    head.push("after the last evaluation".into());
    head.push("whole run".into());
    head.push("standard ÷ this (whole run)".into());
    let rows = m
        .groups
        .iter()
        .map(|g| {
            let mut r = vec![g.label.clone()];
            r.extend(cols.iter().map(|&n| match at(g, n) {
                Some(k) => stat_str(&g.curve[k].round_compute_seconds, &secs),
                None => "—".into(),
            }));
            let last = g
                .curve
                .last()
                .map(|p| p.compute_seconds.mean)
                .unwrap_or(0.0);
            r.push(secs((g.total_compute_seconds.mean - last).max(0.0)));
            r.push(stat_str(&g.total_compute_seconds, &secs));
            r.push(match std_total {
                Some(s) if g.total_compute_seconds.mean > 0.0 => {
                    ratio(s / g.total_compute_seconds.mean)
                }
                Some(_) => "no compute".into(),
                None => "no standard run".into(),
            });
            r
        })
        .collect();
    b.push(Block::Table(head, rows));
    whole_run_table(m, b);
}

/// Whole-run compute in wall seconds, CPU seconds and machine-independent work, each with the
/// standard-AL baseline ÷ the method.
fn whole_run_table(m: &Metrics, b: &mut Vec<Block>) {
    b.push(Block::H(
        2,
        "Whole-run compute: wall, CPU and work (mean ± std over seeds)".into(),
    ));
    b.push(Block::P("Every selection-path stage of the run plus training the model it ships at its last evaluation point. Wall seconds are what a rented machine bills; CPU seconds are the process's user + system time on all threads; rows embedded and row-epochs fine-tuned (from the optimiser steps actually run) do not depend on the machine or its load. \"standard ÷\" divides the standard-AL baseline's mean by the method's.".into()));
    let std = m
        .standard_group
        .as_ref()
        .and_then(|s| m.groups.iter().find(|g| &g.label == s));
    let div = |s: Option<f64>, x: f64| match s {
        Some(s) if x > 0.0 => ratio(s / x),
        Some(_) => "—".into(),
        None => "no standard run".into(),
    };
    let head = [
        "method",
        "wall (s)",
        "of which shipped model (s)",
        "CPU (s)",
        "rows embedded",
        "row-epochs fine-tuned",
        "standard ÷ this: wall",
        "CPU",
        "rows embedded",
        "row-epochs",
    ];
    let rows = m
        .groups
        .iter()
        .map(|g| {
            let re = g.total_row_epochs.as_ref();
            vec![
                g.label.clone(),
                stat_str(&g.total_compute_seconds, &secs),
                stat_str(&g.total_ship_seconds, &secs),
                stat_str(&g.total_cpu_seconds, &secs),
                stat_str(&g.total_rows_embedded, &count),
                re.map(|s| stat_str(s, &count))
                    .unwrap_or_else(|| "n/a (steps not recorded)".into()),
                div(
                    std.map(|s| s.total_compute_seconds.mean),
                    g.total_compute_seconds.mean,
                ),
                div(
                    std.map(|s| s.total_cpu_seconds.mean),
                    g.total_cpu_seconds.mean,
                ),
                div(
                    std.map(|s| s.total_rows_embedded.mean),
                    g.total_rows_embedded.mean,
                ),
                match (std.and_then(|s| s.total_row_epochs.as_ref()), re) {
                    (Some(s), Some(x)) => div(Some(s.mean), x.mean),
                    (None, _) if std.is_none() => "no standard run".into(),
                    _ => "n/a".into(),
                },
            ]
        })
        .collect();
    b.push(Block::Table(
        head.iter().map(|s| s.to_string()).collect(),
        rows,
    ));
}

fn md_cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// The Markdown report (figures referenced as PNG files beside it).
pub fn markdown(m: &Metrics, figs: &[Figure]) -> String {
    let mut out = String::new();
    for block in blocks(m, figs) {
        match block {
            Block::H(l, t) => out.push_str(&format!("{} {t}\n\n", "#".repeat(l as usize))),
            Block::P(t) => out.push_str(&format!("{t}\n\n")),
            Block::List(items) => {
                if items.is_empty() {
                    continue;
                }
                for i in items {
                    out.push_str(&format!("- {i}\n"));
                }
                out.push('\n');
            }
            Block::Table(head, rows) => {
                out.push_str(&format!(
                    "| {} |\n",
                    head.iter()
                        .map(|h| md_cell(h))
                        .collect::<Vec<_>>()
                        .join(" | ")
                ));
                out.push_str(&format!("|{}\n", "---|".repeat(head.len())));
                for r in rows {
                    out.push_str(&format!(
                        "| {} |\n",
                        r.iter().map(|c| md_cell(c)).collect::<Vec<_>>().join(" | ")
                    ));
                }
                out.push('\n');
            }
            Block::Image { file, title, .. } => out.push_str(&format!("![{title}]({file})\n\n")),
            Block::Defs => {
                for (k, v) in DEFINITIONS {
                    out.push_str(&format!("- **{k}**: {v}\n"));
                }
                out.push('\n');
            }
        }
    }
    out
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The self-contained HTML report (figures inlined as base64 PNG).
pub fn html(m: &Metrics, figs: &[Figure]) -> String {
    let mut body = String::new();
    for block in blocks(m, figs) {
        match block {
            Block::H(l, t) => body.push_str(&format!("<h{l}>{}</h{l}>\n", esc(&t))),
            Block::P(t) => body.push_str(&format!("<p>{}</p>\n", esc(&t))),
            Block::List(items) => {
                if items.is_empty() {
                    continue;
                }
                body.push_str("<ul>\n");
                for i in items {
                    body.push_str(&format!("<li>{}</li>\n", esc(&i)));
                }
                body.push_str("</ul>\n");
            }
            Block::Table(head, rows) => {
                body.push_str("<div class=\"scroll\"><table>\n<thead><tr>");
                for h in head {
                    body.push_str(&format!("<th>{}</th>", esc(&h)));
                }
                body.push_str("</tr></thead>\n<tbody>\n");
                for r in rows {
                    body.push_str("<tr>");
                    for (i, c) in r.iter().enumerate() {
                        let class = if i > 0
                            && c.starts_with(|ch: char| {
                                ch.is_ascii_digit() || ch == '$' || ch == '+' || ch == '-'
                            }) {
                            " class=\"num\""
                        } else {
                            ""
                        };
                        body.push_str(&format!("<td{class}>{}</td>", esc(c)));
                    }
                    body.push_str("</tr>\n");
                }
                body.push_str("</tbody></table></div>\n");
            }
            Block::Image { file, title, png } => {
                let b64 = base64::engine::general_purpose::STANDARD.encode(&png);
                body.push_str(&format!(
                    "<figure><img src=\"data:image/png;base64,{b64}\" alt=\"{}\" width=\"{}\" height=\"{}\"><figcaption>{} ({})</figcaption></figure>\n",
                    esc(&title),
                    super::plots::WIDTH,
                    super::plots::HEIGHT,
                    esc(&title),
                    esc(&file)
                ));
            }
            Block::Defs => {
                body.push_str("<dl>\n");
                for (k, v) in DEFINITIONS {
                    body.push_str(&format!("<dt>{}</dt><dd>{}</dd>\n", esc(k), esc(v)));
                }
                body.push_str("</dl>\n");
            }
        }
    }
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>proxal report — {}</title>\n<style>\n{CSS}</style>\n</head>\n<body>\n<main>\n{body}</main>\n</body>\n</html>\n",
        esc(&m.dataset)
    )
}

const CSS: &str = "body { font-family: system-ui, -apple-system, 'Segoe UI', 'DejaVu Sans', Arial, sans-serif; color: #222; background: #fff; margin: 0; }
main { max-width: 1280px; margin: 0 auto; padding: 24px 32px 48px; }
h1 { font-size: 1.8em; margin-bottom: 0.3em; }
h2 { font-size: 1.35em; margin-top: 1.6em; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; font-size: 0.92em; margin: 8px 0 12px; }
th, td { border: 1px solid #ccc; padding: 5px 9px; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tbody tr:nth-child(even) { background: #fafafa; }
figure { margin: 16px 0 24px; }
figure img { max-width: 100%; height: auto; border: 1px solid #ddd; }
figcaption { color: #555; font-size: 0.9em; margin-top: 4px; }
dt { font-weight: 600; margin-top: 8px; }
dd { margin-left: 1.5em; }
";

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn opt(x: Option<f64>) -> String {
    x.map(|v| format!("{v}")).unwrap_or_default()
}

/// One row per group; empty cells where a value does not exist (see the `status` column).
pub fn csv(m: &Metrics) -> String {
    let head = [
        "dataset",
        "group",
        "policy",
        "strategy",
        "runs",
        "reached",
        "target_accuracy",
        "labels_mean",
        "labels_std",
        "le_vs_random",
        "ssr_vs_random",
        "compute_seconds_mean",
        "compute_seconds_std",
        "cpu_seconds_mean",
        "rows_embedded_mean",
        "row_epochs_mean",
        "eval_seconds_mean",
        "total_cost_usd_mean",
        "total_cost_usd_std",
        "label_cost_usd_mean",
        "compute_cost_usd_mean",
        "saving_vs_standard_labels",
        "saving_vs_standard_ratio",
        "final_labels_mean",
        "final_accuracy_mean",
        "final_accuracy_std",
        "final_macro_f1_mean",
        "total_compute_seconds_mean",
        "total_ship_seconds_mean",
        "total_cpu_seconds_mean",
        "total_rows_embedded_mean",
        "total_row_epochs_mean",
        "total_eval_seconds_mean",
        "price_per_label_usd",
        "status",
    ];
    let mut out = head.join(",") + "\n";
    for g in &m.groups {
        let status = if g.reached == g.runs.len() {
            "reached".to_string()
        } else if g.reached == 0 {
            "not reached".to_string()
        } else {
            format!("not reached by every seed ({}/{})", g.reached, g.runs.len())
        };
        let cells = [
            m.dataset.clone(),
            g.label.clone(),
            g.policy.clone(),
            g.strategy.clone().unwrap_or_default(),
            g.runs.len().to_string(),
            g.reached.to_string(),
            format!("{}", m.target.accuracy),
            opt(g.labels.map(|s| s.mean)),
            opt(g.labels.and_then(|s| s.std)),
            opt(g.le.value),
            opt(g.ssr.value),
            opt(g.compute_seconds.map(|s| s.mean)),
            opt(g.compute_seconds.and_then(|s| s.std)),
            opt(g.cpu_seconds.map(|s| s.mean)),
            opt(g.rows_embedded.map(|s| s.mean)),
            opt(g.row_epochs.map(|s| s.mean)),
            opt(g.eval_seconds.map(|s| s.mean)),
            opt(g.total_cost.map(|s| s.mean)),
            opt(g.total_cost.and_then(|s| s.std)),
            opt(g.label_cost.map(|s| s.mean)),
            opt(g.compute_cost.map(|s| s.mean)),
            opt(g.saving_labels.value),
            opt(g.saving_ratio.value),
            format!("{}", g.final_labels.mean),
            format!("{}", g.final_accuracy.mean),
            opt(g.final_accuracy.std),
            format!("{}", g.final_macro_f1.mean),
            format!("{}", g.total_compute_seconds.mean),
            format!("{}", g.total_ship_seconds.mean),
            format!("{}", g.total_cpu_seconds.mean),
            format!("{}", g.total_rows_embedded.mean),
            opt(g.total_row_epochs.map(|s| s.mean)),
            format!("{}", g.total_eval_seconds.mean),
            format!("{}", m.prices.price_per_label),
            status,
        ];
        out.push_str(
            &cells
                .iter()
                .map(|c| csv_field(c))
                .collect::<Vec<_>>()
                .join(","),
        );
        out.push('\n');
    }
    out
}

#[derive(Serialize)]
struct JsonReport<'a> {
    proxal_version: &'static str,
    definitions: std::collections::BTreeMap<&'static str, &'static str>,
    #[serde(flatten)]
    metrics: &'a Metrics,
}

/// Everything, machine-readable: target, prices, per-run curves and reaches, per-group metrics.
pub fn json(m: &Metrics) -> anyhow::Result<String> {
    let r = JsonReport {
        proxal_version: env!("CARGO_PKG_VERSION"),
        definitions: DEFINITIONS.iter().copied().collect(),
        metrics: m,
    };
    Ok(serde_json::to_string_pretty(&r)? + "\n")
}
