//! Report metrics recomputed from hand-built ledgers and learning curves, checked against values
//! computed by hand; report files; one-line errors.
use proxal::cost::{CostRecord, PricesConfig, Stage};
use proxal::report::{self, MetricOptions, ReportOptions, RoundRecord};
use std::path::{Path, PathBuf};

const CPU: &str = "cpu:2-core";
const GPU: &str = "cuda:0";

struct Rec(usize, Stage, f64, &'static str, usize);

fn write_run(
    root: &Path,
    name: &str,
    policy: &str,
    seed: u64,
    curve: &[(usize, f64)],
    ledger: &[Rec],
) -> PathBuf {
    write_run_on(root, name, policy, "banking77", seed, curve, ledger)
}

fn write_run_on(
    root: &Path,
    name: &str,
    policy: &str,
    dataset: &str,
    seed: u64,
    curve: &[(usize, f64)],
    ledger: &[Rec],
) -> PathBuf {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("config.toml"),
        format!(
            "name = \"{name}\"\ndataset = \"{dataset}\"\npolicy = \"{policy}\"\nseed = {seed}\nstrategy = \"margin\"\nbatch = 100\n"
        ),
    )
    .unwrap();
    let mut rounds = String::new();
    for (round, &(labels, acc)) in curve.iter().enumerate() {
        let r = RoundRecord {
            round,
            labels,
            test_accuracy: acc,
            test_macro_f1: acc - 0.01,
            ..Default::default()
        };
        rounds.push_str(&serde_json::to_string(&r).unwrap());
        rounds.push('\n');
    }
    std::fs::write(dir.join("rounds.jsonl"), rounds).unwrap();
    let mut text = String::new();
    for Rec(round, stage, secs, device, labels) in ledger {
        let r = CostRecord {
            run: name.into(),
            round: *round,
            stage: *stage,
            wall_seconds: *secs,
            cpu_seconds: *secs * 1.5,
            device: device.to_string(),
            rows: 0,
            labels_bought: *labels,
            embedded_rows: None,
            trained_rows: None,
            note: None,
        };
        text.push_str(&serde_json::to_string(&r).unwrap());
        text.push('\n');
    }
    std::fs::write(dir.join("ledger.jsonl"), text).unwrap();
    dir
}

use Stage::*;

/// Random: 100 labels per round; selecting the next batch (1 s, CPU) after each evaluation (2 s).
fn random_run(root: &Path, name: &str, seed: u64, curve: &[(usize, f64)]) -> PathBuf {
    let mut l = Vec::new();
    for r in 0..curve.len() {
        l.push(Rec(r, Labelling, 0.0, CPU, 100));
        l.push(Rec(r, Evaluation, 2.0, CPU, 0));
        if r + 1 < curve.len() {
            l.push(Rec(r, Selection, 1.0, CPU, 0));
        }
    }
    write_run(root, name, "random", seed, curve, &l)
}

/// Four methods. Prices: $0.50 per label, CPU $3.60/h ($0.001/s), GPU $36/h ($0.01/s).
fn fixture(root: &Path) -> Vec<PathBuf> {
    let random = random_run(
        root,
        "rand-s0",
        0,
        &[
            (100, 0.50),
            (200, 0.60),
            (300, 0.70),
            (400, 0.80),
            (500, 0.85),
        ],
    );
    // Standard: fine-tune 10 s + refresh 5 s + evaluation 3 s on the GPU each round, then 1 s of CPU
    // selection after evaluating.
    let mut l = Vec::new();
    for r in 0..4 {
        l.push(Rec(r, Labelling, 0.0, CPU, 100));
        l.push(Rec(r, FineTune, 10.0, GPU, 0));
        l.push(Rec(r, Refresh, 5.0, GPU, 0));
        l.push(Rec(r, Evaluation, 3.0, GPU, 0));
        if r < 3 {
            l.push(Rec(r, Selection, 1.0, CPU, 0));
        }
    }
    let standard = write_run(
        root,
        "std-s0",
        "standard",
        0,
        &[(100, 0.55), (200, 0.72), (300, 0.78), (400, 0.84)],
        &l,
    );
    // ASVP (CPU): embed v0 20 s; align in round 1 (fine-tune 30 s + refresh 20 s); proxy fit 2 s +
    // selection 1 s after each evaluation (1 s).
    let mut l = vec![
        Rec(0, Labelling, 0.0, CPU, 100),
        Rec(0, Embed, 20.0, CPU, 0),
    ];
    for r in 0..4 {
        if r > 0 {
            l.push(Rec(r, Labelling, 0.0, CPU, 100));
        }
        if r == 1 {
            l.push(Rec(1, FineTune, 30.0, CPU, 0));
            l.push(Rec(1, Refresh, 20.0, CPU, 0));
        }
        l.push(Rec(r, Evaluation, 1.0, CPU, 0));
        if r < 3 {
            l.push(Rec(r, ProxyFit, 2.0, CPU, 0));
            l.push(Rec(r, Selection, 1.0, CPU, 0));
        }
    }
    let asvp = write_run(
        root,
        "asvp-s0",
        "asvp",
        0,
        &[(100, 0.65), (200, 0.85), (300, 0.88), (400, 0.90)],
        &l,
    );
    // SVPp (CPU) never reaches 75%.
    let mut l = vec![
        Rec(0, Labelling, 0.0, CPU, 100),
        Rec(0, Embed, 20.0, CPU, 0),
    ];
    for r in 0..4 {
        if r > 0 {
            l.push(Rec(r, Labelling, 0.0, CPU, 100));
        }
        l.push(Rec(r, Evaluation, 1.0, CPU, 0));
        if r < 3 {
            l.push(Rec(r, ProxyFit, 2.0, CPU, 0));
            l.push(Rec(r, Selection, 1.0, CPU, 0));
        }
    }
    let svpp = write_run(
        root,
        "svpp-s0",
        "svpp",
        0,
        &[(100, 0.60), (200, 0.68), (300, 0.72), (400, 0.74)],
        &l,
    );
    vec![random, standard, svpp, asvp]
}

fn prices() -> PricesConfig {
    PricesConfig {
        price_per_label: Some(0.5),
        price_per_device_hour: [("cpu".to_string(), 3.6), ("cuda".to_string(), 36.0)]
            .into_iter()
            .collect(),
    }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9 * (1.0 + b.abs())
}

macro_rules! assert_close {
    ($a:expr, $b:expr) => {{
        let (a, b) = ($a, $b);
        assert!(close(a, b), "{} = {a}, expected {b}", stringify!($a));
    }};
}

fn compute(dirs: &[PathBuf], target: Option<f64>) -> report::Metrics {
    let runs = report::load_runs(dirs).unwrap();
    let p = report::resolve_prices(&runs, &prices()).unwrap();
    report::metrics::compute(
        &runs,
        &p,
        &MetricOptions {
            target_accuracy: target,
            target_fraction: 0.99,
        },
    )
    .unwrap()
}

fn group<'a>(m: &'a report::Metrics, label: &str) -> &'a report::metrics::GroupMetrics {
    m.groups
        .iter()
        .find(|g| g.label == label)
        .unwrap_or_else(|| panic!("no group {label}"))
}

#[test]
fn metrics_match_hand_computed_values() {
    let d = tempfile::tempdir().unwrap();
    let dirs = fixture(d.path());
    let m = compute(&dirs, Some(0.75));
    assert_eq!(m.random_group.as_deref(), Some("random"));
    assert_eq!(m.standard_group.as_deref(), Some("standard/margin"));

    // Random: 0.70 @300 → 0.80 @400: t = 0.5, N = 350. Compute: one 1 s selection after each
    // evaluation, counted at the next point: 2 s at round 2, 3 s at round 3 → H = 2.5 s.
    // Evaluation 6 s → 8 s: 7 s. C = 0.5·350 + 0.001·2.5.
    let r = group(&m, "random");
    assert_close!(r.labels.unwrap().mean, 350.0);
    assert_close!(r.compute_seconds.unwrap().mean, 2.5);
    assert_close!(r.eval_seconds.unwrap().mean, 7.0);
    assert_close!(r.total_cost.unwrap().mean, 175.0025);
    assert_close!(r.le.value.unwrap(), 1.0);
    assert_close!(r.ssr.value.unwrap(), 0.0);

    // Standard: 0.72 @200 → 0.78 @300: t = 0.5, N = 250. GPU 15 s per round: 30 → 45: 37.5 s;
    // CPU selection 1 → 2: 1.5 s. C = 125 + 0.375 + 0.0015.
    let s = group(&m, "standard/margin");
    assert_close!(s.labels.unwrap().mean, 250.0);
    assert_close!(s.compute_seconds.unwrap().mean, 39.0);
    assert_close!(s.eval_seconds.unwrap().mean, 7.5);
    assert_close!(s.total_cost.unwrap().mean, 125.3765);
    assert_close!(s.le.value.unwrap(), 350.0 / 250.0);
    assert_close!(s.ssr.value.unwrap(), 1.0 - 250.0 / 350.0);
    assert_close!(s.saving_labels.value.unwrap(), 0.0);
    assert_close!(s.saving_ratio.value.unwrap(), 0.0);
    let run = m.runs.iter().find(|r| r.name == "std-s0").unwrap();
    let reach = run.reach.as_ref().unwrap();
    assert_close!(reach.spend.compute_seconds_by_device["cuda:0"], 37.5);
    assert_close!(reach.spend.compute_seconds_by_device["cpu:2-core"], 1.5);

    // ASVP: 0.65 @100 → 0.85 @200: t = 0.5, N = 150. Compute at round 0: embed 20 s; at round 1:
    // + proxy fit 2 + selection 1 (after round 0's evaluation) + fine-tune 30 + refresh 20 = 73 s
    // → H = 46.5 s. C = 75 + 0.0465.
    let a = group(&m, "asvp/margin");
    assert_close!(a.labels.unwrap().mean, 150.0);
    assert_close!(a.compute_seconds.unwrap().mean, 46.5);
    assert_close!(a.eval_seconds.unwrap().mean, 1.5);
    assert_close!(a.total_cost.unwrap().mean, 75.0465);
    assert_close!(a.le.value.unwrap(), 350.0 / 150.0);
    assert_close!(a.ssr.value.unwrap(), 1.0 - 150.0 / 350.0);
    // Equivalent-cost saving over standard: (125.3765 − 75.0465) / 0.5 labels; 1 − C/C_std.
    assert_close!(a.saving_labels.value.unwrap(), 100.66);
    assert_close!(a.saving_ratio.value.unwrap(), 1.0 - 75.0465 / 125.3765);
    assert_close!(
        group(&m, "random").saving_labels.value.unwrap(),
        (125.3765 - 175.0025) / 0.5
    );

    // SVPp never reaches 75%: nothing is invented.
    let v = group(&m, "svpp/margin");
    assert_eq!(v.reached, 0);
    assert!(v.labels.is_none() && v.total_cost.is_none() && v.compute_seconds.is_none());
    assert_eq!(v.le.value, None);
    assert_eq!(v.le.status, "not reached");
    assert_eq!(v.saving_ratio.status, "not reached");
    assert!(m
        .runs
        .iter()
        .find(|r| r.name == "svpp-s0")
        .unwrap()
        .reach
        .is_none());

    // Cost curve: ASVP at round 1 = 200 labels · 0.5 + 73 s · $0.001.
    let run = m.runs.iter().find(|r| r.name == "asvp-s0").unwrap();
    assert_close!(run.points[1].spend.total_cost, 100.073);
    assert_close!(run.total_compute_seconds, 20.0 + 50.0 + 3.0 * 3.0);
    assert_close!(run.total_eval_seconds, 4.0);
    assert_eq!(run.labels_bought, 400);
}

#[test]
fn default_target_is_99_percent_of_the_best_final_accuracy() {
    let d = tempfile::tempdir().unwrap();
    let dirs = fixture(d.path());
    let m = compute(&dirs, None);
    assert_close!(m.target.accuracy, 0.99 * 0.90);
    // Only ASVP reaches 0.891: 0.88 @300 → 0.90 @400, t = 0.55 → N = 355.
    let a = group(&m, "asvp/margin");
    assert_close!(a.labels.unwrap().mean, 355.0);
    // Neither baseline reaches it: the comparisons say so.
    assert_eq!(a.le.value, None);
    assert_eq!(a.le.status, "random not reached");
    assert_eq!(a.saving_labels.status, "standard not reached");
    assert_eq!(group(&m, "random").le.status, "not reached");
}

#[test]
fn missing_baselines_are_reported_not_invented() {
    let d = tempfile::tempdir().unwrap();
    let dirs = fixture(d.path());
    let m = compute(&dirs[2..], Some(0.70)); // svpp and asvp only
    let a = group(&m, "asvp/margin");
    assert!(a.labels.is_some());
    assert_eq!(a.le.status, "no random run");
    assert_eq!(a.ssr.value, None);
    assert_eq!(a.saving_labels.status, "no standard run");
    assert!(m.notes.iter().any(|n| n.contains("no random run")));
    assert!(m.notes.iter().any(|n| n.contains("no standard-AL run")));
    // svpp: 0.68 @200 → 0.72 @300 reaches 0.70 at t = 0.5.
    assert_close!(group(&m, "svpp/margin").labels.unwrap().mean, 250.0);
}

#[test]
fn seeds_are_averaged_with_a_standard_deviation() {
    let d = tempfile::tempdir().unwrap();
    let mut dirs = fixture(d.path());
    // A second random seed: 0.60 @200 → 0.80 @300 crosses 0.75 at t = 0.75: N = 275.
    dirs.push(random_run(
        d.path(),
        "rand-s1",
        1,
        &[
            (100, 0.50),
            (200, 0.60),
            (300, 0.80),
            (400, 0.82),
            (500, 0.86),
        ],
    ));
    let m = compute(&dirs, Some(0.75));
    assert_eq!(m.groups.len(), 4, "the two random seeds form one group");
    let r = group(&m, "random");
    assert_eq!(r.runs.len(), 2);
    let n = r.labels.unwrap();
    assert_close!(n.mean, 312.5);
    assert_close!(n.std.unwrap(), (2.0f64 * 37.5 * 37.5).sqrt());
    // LE from group means: 312.5 / 150.
    assert_close!(group(&m, "asvp/margin").le.value.unwrap(), 312.5 / 150.0);
    // Mean curve over the seeds.
    assert_close!(r.curve[2].accuracy.mean, 0.75);
    assert_close!(
        r.curve[2].accuracy.std.unwrap(),
        (2.0f64 * 0.05 * 0.05).sqrt()
    );
}

#[test]
fn runs_that_did_the_same_group_together_however_their_configs_were_written() {
    let d = tempfile::tempdir().unwrap();
    let mut dirs = fixture(d.path());
    let curve = [(100, 0.5), (200, 0.6), (300, 0.7), (400, 0.8), (500, 0.85)];
    // Three more random seeds whose files differ only in keys random never reads, or in
    // defaults written out: they join the fixture's random run (no strategy line, a strategy
    // line, an unused proxy and asvp table, an explicit default).
    let configs = [
        ("x-random", 1, ""),
        ("x-random-random-s2", 2, "strategy = \"random\"\n"),
        (
            "x-random-random-s3",
            3,
            "proxy = \"mlp\"\neval_every = 1\n[asvp]\nalign_every = 5\n",
        ),
    ];
    for (name, seed, extra) in configs {
        let dir = random_run(d.path(), name, seed, &curve);
        std::fs::write(
            dir.join("config.toml"),
            format!(
                "name = \"{name}\"\ndataset = \"banking77\"\npolicy = \"random\"\nseed = {seed}\nbatch = 100\n{extra}"
            ),
        )
        .unwrap();
        dirs.push(dir);
    }
    let m = compute(&dirs, Some(0.75));
    assert_eq!(
        m.groups.len(),
        4,
        "{:?}",
        m.groups.iter().map(|g| &g.label).collect::<Vec<_>>()
    );
    assert_eq!(group(&m, "random").runs.len(), 4);
    // A different batch size is a different method.
    let odd = random_run(d.path(), "x-random-b50", 4, &curve);
    std::fs::write(
        odd.join("config.toml"),
        "name = \"x-random-b50\"\ndataset = \"banking77\"\npolicy = \"random\"\nseed = 4\nbatch = 50\n",
    )
    .unwrap();
    dirs.push(odd);
    assert_eq!(compute(&dirs, Some(0.75)).groups.len(), 5);
}

#[test]
fn alignment_checks_are_reported_per_run() {
    let d = tempfile::tempdir().unwrap();
    let dirs = fixture(d.path());
    let out = d.path().join("plain");
    let md = std::fs::read_to_string(generate_at_75(&dirs, &out).markdown).unwrap();
    assert!(!md.contains("## Alignment checks"), "no run made a check");
    // One run's progress records hold two checks: one that aligned, one that did not.
    let check = |round: usize, labels: usize, gain: f64, pays: bool| {
        serde_json::json!({
            "round": round, "labels": labels, "features": "v0", "logme": null,
            "aligned": if pays { serde_json::json!("first alignment check") } else { serde_json::Value::Null },
            "method": null, "test_accuracy": null,
            "check": {
                "train_rows": labels * 3 / 4, "val_rows": labels / 4, "probe_accuracy": 0.6,
                "candidates": [["fine-tune", 0.6 + gain], ["lp-ft", 0.55]], "best": "fine-tune",
                "gain": gain, "gain_se": 0.05, "pays": pays
            }
        })
        .to_string()
    };
    let progress = [check(0, 100, 0.12, true), check(2, 300, -0.01, false)].join("\n");
    let asvp = dirs
        .iter()
        .find(|d| d.to_string_lossy().contains("asvp"))
        .unwrap();
    std::fs::write(asvp.join("progress.jsonl"), progress + "\n").unwrap();
    let files = generate_at_75(&dirs, &d.path().join("checks"));
    let md = std::fs::read_to_string(&files.markdown).unwrap();
    assert!(md.contains("## Alignment checks"), "{md}");
    assert!(md.contains("| 75 / 25 | 0.600 | fine-tune 0.720, lp-ft 0.550 | +0.120 ± 0.050 | align (fine-tune) |"), "{md}");
    assert!(
        md.contains(
            "| 225 / 75 | 0.600 | fine-tune 0.590, lp-ft 0.550 | -0.010 ± 0.050 | keep the cache |"
        ),
        "{md}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&files.json).unwrap()).unwrap();
    let checks: usize = json["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["checks"].as_array().unwrap().len())
        .sum();
    assert_eq!(checks, 2);
}

/// The report files of `dirs` at a 75% target, written under `out`.
fn generate_at_75(dirs: &[PathBuf], out: &Path) -> report::ReportFiles {
    let opts = ReportOptions {
        metrics: MetricOptions {
            target_accuracy: Some(0.75),
            target_fraction: 0.99,
        },
        prices: prices(),
    };
    report::generate(dirs, &opts, out).unwrap().1
}

#[test]
fn report_files_are_written() {
    let d = tempfile::tempdir().unwrap();
    let dirs = fixture(d.path());
    let out = d.path().join("out");
    let files = generate_at_75(&dirs, &out);
    for name in [
        "report.md",
        "report.html",
        "report.csv",
        "report.json",
        "accuracy_vs_labels.png",
        "accuracy_vs_labels.svg",
        "accuracy_vs_cost.png",
        "accuracy_vs_cost.svg",
        "compute_by_stage.png",
        "compute_by_stage.svg",
    ] {
        let p = out.join(name);
        assert!(
            p.is_file() && std::fs::metadata(&p).unwrap().len() > 100,
            "{name} missing or empty"
        );
    }
    let png = std::fs::read(out.join("accuracy_vs_labels.png")).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    let md = std::fs::read_to_string(&files.markdown).unwrap();
    assert!(md.contains("## Definitions"));
    assert!(md.contains("LE (labelling efficiency vs random)"));
    assert!(md.contains("not reached"));
    assert!(md.contains("![Test accuracy vs labels bought"));
    assert!(md.contains("| asvp/margin | 1 (1) | 150 |"), "{md}");
    let html = std::fs::read_to_string(&files.html).unwrap();
    assert!(html.contains("data:image/png;base64,"));
    assert_eq!(html.matches("<img ").count(), 3);
    assert!(!html.contains("src=\"accuracy"), "images are inlined");
    let csv = std::fs::read_to_string(&files.csv).unwrap();
    assert_eq!(csv.lines().count(), 5);
    assert!(csv
        .lines()
        .any(|l| l.contains("svpp/margin") && l.ends_with(",not reached")));
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&files.json).unwrap()).unwrap();
    assert_eq!(json["target"]["accuracy"], 0.75);
    let svpp = json["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["label"] == "svpp/margin")
        .unwrap();
    assert!(svpp["labels"].is_null());
    assert_eq!(svpp["le"]["status"], "not reached");
    let svg = std::fs::read_to_string(out.join("accuracy_vs_cost.svg")).unwrap();
    assert!(svg.contains("<svg") && svg.contains("total cost"));
}

#[test]
fn per_round_compute_and_accuracy_tables() {
    let d = tempfile::tempdir().unwrap();
    let dirs = fixture(d.path());
    let m = compute(&dirs, Some(0.75));
    // Standard: 15 s of GPU work per round, plus 1 s of selection after each of the first three
    // evaluations, which counts towards the next point.
    let per_round = |label: &str| -> Vec<f64> {
        group(&m, label)
            .curve
            .iter()
            .map(|p| p.round_compute_seconds.mean)
            .collect()
    };
    assert_eq!(per_round("standard/margin"), vec![15.0, 16.0, 16.0, 16.0]);
    // ASVP: the 20 s embedding before the first point, the alignment (50 s) plus a proxy fit and a
    // selection (3 s) before the second, 3 s before each of the others.
    assert_eq!(per_round("asvp/margin"), vec![20.0, 53.0, 3.0, 3.0]);
    assert_close!(group(&m, "asvp/margin").curve[3].compute_seconds.mean, 79.0);

    let out = d.path().join("out");
    let files = generate_at_75(&dirs, &out);
    let md = std::fs::read_to_string(&files.markdown).unwrap();
    assert!(
        md.contains(
            "| method | runs | 100 labels | 200 labels | 300 labels | 400 labels | 500 labels |"
        ),
        "{md}"
    );
    assert!(
        md.contains("| random | 1 | 50.00% | 60.00% | 70.00% | 80.00% | 85.00% |"),
        "{md}"
    );
    assert!(
        md.contains("| svpp/margin | 1 | 60.00% | 68.00% | 72.00% | 74.00% | — |"),
        "{md}"
    );
    // Whole run: standard 63 s, asvp 79 s, svpp 29 s; the last column is standard ÷ this.
    assert!(
        md.contains("| standard/margin | 15.0 | 16.0 | 16.0 | 16.0 | — | 0.0 | 63.0 | 1.00× |"),
        "{md}"
    );
    assert!(
        md.contains("| asvp/margin | 20.0 | 53.0 | 3.0 | 3.0 | — | 0.0 | 79.0 | 0.80× |"),
        "{md}"
    );
    assert!(
        md.contains("| svpp/margin | 20.0 | 3.0 | 3.0 | 3.0 | — | 0.0 | 29.0 | 2.17× |"),
        "{md}"
    );
}

fn err_of(dirs: &[PathBuf]) -> String {
    let d = tempfile::tempdir().unwrap();
    let e = report::generate(dirs, &ReportOptions::default(), d.path()).unwrap_err();
    format!("{e:#}")
}

#[test]
fn clear_errors() {
    let d = tempfile::tempdir().unwrap();
    let dirs = fixture(d.path());

    let e = err_of(&[d.path().join("nope")]);
    assert!(
        e.contains("run directory") && e.contains("does not exist"),
        "{e}"
    );

    let other = write_run_on(
        d.path(),
        "clinc-rand",
        "random",
        "clinc",
        0,
        &[(100, 0.5)],
        &[],
    );
    let e = err_of(&[dirs[0].clone(), other]);
    assert!(
        e.contains("different datasets") && e.contains("clinc") && e.contains("banking77"),
        "{e}"
    );

    std::fs::remove_file(dirs[1].join("ledger.jsonl")).unwrap();
    let e = err_of(&[dirs[1].clone()]);
    assert!(e.contains("no ledger.jsonl"), "{e}");

    std::fs::write(dirs[2].join("ledger.jsonl"), "{\"run\":1}\n{}\n").unwrap();
    let e = err_of(&[dirs[2].clone()]);
    assert!(e.contains("ledger.jsonl: line 1"), "{e}");

    // A torn last line is fine.
    let mut text = std::fs::read_to_string(dirs[3].join("ledger.jsonl")).unwrap();
    text.push_str("{\"run\":\"asvp-s0\",\"rou");
    std::fs::write(dirs[3].join("ledger.jsonl"), text).unwrap();
    assert!(report::load_run(&dirs[3]).is_ok());

    // Unpriced device.
    let g = write_run(
        d.path(),
        "tpu",
        "random",
        0,
        &[(100, 0.5)],
        &[Rec(0, Embed, 1.0, "tpu:0", 0)],
    );
    let e = err_of(&[g]);
    assert!(e.contains("tpu") && e.contains("--price-per-hour"), "{e}");
}

/// The shipped model is compute (docs/METRICS.md): at each evaluation point H counts the path
/// so far plus the `ship` records of that point only; earlier points' ship training only drew the
/// curve and is evaluation there. Whole-run compute = path + the last point's ship. CPU seconds
/// and machine-independent work follow the same rule.
#[test]
fn shipped_model_counts_at_its_own_point_only() {
    let d = tempfile::tempdir().unwrap();
    // SVPp (CPU): embed 20 s (1,000 rows); per round: ship 4 s (a probe; the last round a
    // fine-tune of 50 s that trained 900 rows), scoring 1 s, then proxy fit 2 s + selection 1 s.
    let mut recs: Vec<CostRecord> = Vec::new();
    let rec = |round: usize, stage: Stage, wall: f64| CostRecord {
        run: "svpp-ship".into(),
        round,
        stage,
        wall_seconds: wall,
        cpu_seconds: wall * 2.0,
        device: CPU.into(),
        rows: 0,
        labels_bought: 0,
        embedded_rows: None,
        trained_rows: None,
        note: None,
    };
    recs.push(CostRecord {
        embedded_rows: Some(1000),
        ..rec(0, Embed, 20.0)
    });
    for r in 0..3 {
        recs.push(CostRecord {
            labels_bought: 100,
            ..rec(r, Labelling, 0.0)
        });
        if r == 2 {
            recs.push(CostRecord {
                trained_rows: Some(900),
                ..rec(r, Ship, 50.0)
            });
        } else {
            recs.push(rec(r, Ship, 4.0));
        }
        recs.push(rec(r, Evaluation, 1.0));
        if r < 2 {
            recs.push(rec(r, ProxyFit, 2.0));
            recs.push(rec(r, Selection, 1.0));
        }
    }
    let dir = write_run(
        d.path(),
        "svpp-ship",
        "svpp",
        0,
        &[(100, 0.60), (200, 0.70), (300, 0.80)],
        &[],
    );
    let text: String = recs
        .iter()
        .map(|r| serde_json::to_string(r).unwrap() + "\n")
        .collect();
    std::fs::write(dir.join("ledger.jsonl"), text).unwrap();

    let m = compute(&[dir], Some(0.75));
    let run = &m.runs[0];
    // Point 0: embed 20 + ship 4 = 24 s; point 1: path 20 + 3 + ship 4 = 27 s; point 2: path
    // 20 + 3 + 3 + ship 50 = 76 s. Evaluation: scoring 1, 2, 3 s plus earlier ships 0, 4, 8 s.
    let h: Vec<f64> = run.points.iter().map(|p| p.spend.compute_seconds).collect();
    assert_eq!(h, vec![24.0, 27.0, 76.0]);
    let ship: Vec<f64> = run.points.iter().map(|p| p.spend.ship_seconds).collect();
    assert_eq!(ship, vec![4.0, 4.0, 50.0]);
    let ev: Vec<f64> = run.points.iter().map(|p| p.spend.eval_seconds).collect();
    assert_eq!(ev, vec![1.0, 6.0, 11.0]);
    let cpu: Vec<f64> = run.points.iter().map(|p| p.spend.cpu_seconds).collect();
    assert_eq!(cpu, vec![48.0, 54.0, 152.0]);
    assert!(run.points.iter().all(|p| p.spend.rows_embedded == 1000.0));
    let re: Vec<f64> = run.points.iter().map(|p| p.spend.row_epochs).collect();
    assert_eq!(re, vec![0.0, 0.0, 900.0]);
    assert!(run.points.iter().all(|p| p.spend.row_epochs_complete));
    // Whole run: path 26 s + the last ship 50 s; evaluation 3 s scoring + 8 s of earlier ships.
    assert_close!(run.total_compute_seconds, 76.0);
    assert_close!(run.total_ship_seconds, 50.0);
    assert_close!(run.total_eval_seconds, 11.0);
    assert_close!(run.total_cpu_seconds, 152.0);
    assert_close!(run.total_row_epochs, 900.0);
    // Reached between 200 (0.70) and 300 (0.80) labels: t = 0.5, H = (27 + 76) / 2.
    let reach = run.reach.as_ref().unwrap();
    assert_close!(reach.labels, 250.0);
    assert_close!(reach.spend.compute_seconds, 51.5);
    assert_close!(reach.spend.cpu_seconds, 103.0);
    assert_close!(reach.spend.row_epochs, 450.0);

    // A fine-tune record without its step count (an older ledger) makes row-epochs unknown, not 0.
    let mut old = recs.clone();
    old.insert(1, rec(0, FineTune, 10.0));
    let dir2 = d.path().join("svpp-ship");
    let text: String = old
        .iter()
        .map(|r| serde_json::to_string(r).unwrap() + "\n")
        .collect();
    std::fs::write(dir2.join("ledger.jsonl"), text).unwrap();
    let m = compute(&[dir2], Some(0.75));
    assert!(!m.runs[0].row_epochs_complete);
    assert!(m.groups[0].total_row_epochs.is_none());
    assert!(m.groups[0].row_epochs.is_none());
}
