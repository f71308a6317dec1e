//! The cost ledger: appends, metering, torn last lines, truncation on resume; prices.
use proxal::cost::{CostRecord, Ledger, Meter, Prices, PricesConfig, Stage};
use std::io::Write;

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

#[test]
fn records_round_trip_in_order() {
    let d = tmp();
    let path = d.path().join("run/ledger.jsonl");
    let mut l = Ledger::open(&path, "demo").unwrap();
    l.record(0, Stage::Labelling, 0.0, 0.0, 0, 100).unwrap();
    l.set_device("cuda:0");
    l.record(1, Stage::FineTune, 12.5, 3.0, 200, 0).unwrap();
    let recs = Ledger::read(&path).unwrap();
    assert_eq!(recs.len(), 2);
    assert_eq!(recs[0].stage, Stage::Labelling);
    assert_eq!(recs[0].labels_bought, 100);
    assert_eq!(recs[0].run, "demo");
    assert!(recs[0].device.starts_with("cpu:") && recs[0].device.ends_with("-core"));
    assert_eq!(recs[1].device, "cuda:0");
    assert_eq!(recs[1].wall_seconds, 12.5);
    // The JSON field names are part of the format.
    let text = std::fs::read_to_string(&path).unwrap();
    let first = text.lines().next().unwrap();
    for key in [
        "\"run\"",
        "\"round\"",
        "\"stage\":\"labelling\"",
        "\"wall_seconds\"",
        "\"cpu_seconds\"",
        "\"device\"",
        "\"rows\"",
        "\"labels_bought\"",
    ] {
        assert!(first.contains(key), "{first} lacks {key}");
    }
}

#[test]
fn meter_times_the_closure_and_records_failures() {
    let d = tmp();
    let path = d.path().join("ledger.jsonl");
    let mut l = Ledger::open(&path, "demo").unwrap();
    let v = l
        .meter(2, Stage::Scoring, 5000, || {
            // Busy work so both clocks move.
            let mut x = 0u64;
            let t = std::time::Instant::now();
            while t.elapsed().as_millis() < 60 {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
            }
            Ok(x | 1)
        })
        .unwrap();
    assert!(v > 0);
    let err = l
        .meter(2, Stage::Selection, 10, || -> anyhow::Result<()> {
            anyhow::bail!("boom")
        })
        .unwrap_err();
    assert!(format!("{err}").contains("boom"));
    let m = Meter::start(3, Stage::ProxyFit)
        .rows(7)
        .device("cuda:1")
        .note("lr=0.1");
    let rec = m.finish(&mut l).unwrap();
    assert_eq!(rec.device, "cuda:1");

    let recs = l.records().unwrap();
    assert_eq!(recs.len(), 3);
    assert_eq!(recs[0].stage, Stage::Scoring);
    assert_eq!(recs[0].rows, 5000);
    assert!(
        recs[0].wall_seconds >= 0.05,
        "wall {}",
        recs[0].wall_seconds
    );
    assert!(recs[0].cpu_seconds >= 0.0);
    assert_eq!(recs[1].note.as_deref(), Some("failed"));
    assert_eq!(recs[2].rows, 7);
    assert_eq!(recs[2].note.as_deref(), Some("lr=0.1"));
}

#[test]
fn torn_last_line_is_ignored_and_repaired() {
    let d = tmp();
    let path = d.path().join("ledger.jsonl");
    {
        let mut l = Ledger::open(&path, "demo").unwrap();
        l.record(0, Stage::Embed, 30.0, 55.0, 9003, 0).unwrap();
        l.record(0, Stage::Labelling, 0.0, 0.0, 0, 100).unwrap();
    }
    // A kill -9 in the middle of an append.
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    f.write_all(br#"{"run":"demo","round":1,"stage":"fine_tu"#)
        .unwrap();
    drop(f);

    let recs = Ledger::read(&path).unwrap();
    assert_eq!(recs.len(), 2, "the torn line is ignored");

    // Reopening drops the fragment so the next record starts on its own line.
    let mut l = Ledger::open(&path, "demo").unwrap();
    l.record(1, Stage::FineTune, 10.0, 19.0, 200, 0).unwrap();
    let recs = Ledger::read(&path).unwrap();
    assert_eq!(recs.len(), 3);
    assert_eq!(recs[2].stage, Stage::FineTune);
    assert!(std::fs::read_to_string(&path).unwrap().ends_with("}\n"));
}

#[test]
fn a_bad_line_in_the_middle_is_an_error_naming_it() {
    let d = tmp();
    let path = d.path().join("ledger.jsonl");
    let good = serde_json::to_string(&CostRecord {
        run: "demo".into(),
        round: 0,
        stage: Stage::Embed,
        wall_seconds: 1.0,
        cpu_seconds: 1.0,
        device: "cpu:2-core".into(),
        rows: 1,
        labels_bought: 0,
        embedded_rows: None,
        trained_rows: None,
        note: None,
    })
    .unwrap();
    std::fs::write(&path, format!("{good}\nnot json\n{good}\n")).unwrap();
    let err = format!("{:#}", Ledger::read(&path).unwrap_err());
    assert!(err.contains("line 2"), "{err}");
    assert!(err.contains("ledger.jsonl"), "{err}");
}

#[test]
fn unknown_stages_read_as_other() {
    let d = tmp();
    let path = d.path().join("ledger.jsonl");
    std::fs::write(
        &path,
        r#"{"run":"x","round":0,"stage":"pseudo_label","wall_seconds":1,"cpu_seconds":1,"device":"cpu:2-core","rows":0,"labels_bought":0}
"#,
    )
    .unwrap();
    assert_eq!(Ledger::read(&path).unwrap()[0].stage, Stage::Other);
}

#[test]
fn truncate_after_round_drops_an_interrupted_round() {
    let d = tmp();
    let path = d.path().join("ledger.jsonl");
    let mut l = Ledger::open(&path, "demo").unwrap();
    for r in 0..4 {
        l.record(r, Stage::ProxyFit, 1.0, 1.0, 10, 0).unwrap();
    }
    l.truncate_after_round(1).unwrap();
    l.record(2, Stage::ProxyFit, 2.0, 2.0, 10, 0).unwrap();
    let rounds: Vec<usize> = l.records().unwrap().iter().map(|r| r.round).collect();
    assert_eq!(rounds, vec![0, 1, 2]);
    l.truncate_after_round(-1).unwrap();
    assert!(l.records().unwrap().is_empty());
}

#[test]
fn prices_defaults_overrides_and_lookup() {
    let p = Prices::default();
    assert_eq!(p.price_per_label, 0.10);
    assert_eq!(p.per_hour("cpu:2-core"), Some(0.085));
    assert_eq!(p.per_hour("cuda:0"), Some(1.006));
    assert_eq!(p.per_hour("tpu:0"), None);
    let err = format!("{}", p.compute_cost("tpu:0", 10.0).unwrap_err());
    assert!(err.contains("--price-per-hour tpu=USD"), "{err}");

    let v: toml::Value =
        toml::from_str("price_per_label = 0.5\n[price_per_device_hour]\n\"cpu:2-core\" = 3.6\n")
            .unwrap();
    let cfg = PricesConfig::from_toml(&v).unwrap();
    let mut p = Prices::default();
    p.apply(&cfg);
    assert_eq!(p.price_per_label, 0.5);
    assert!((p.compute_cost("cpu:2-core", 10.0).unwrap() - 0.01).abs() < 1e-12);
    assert_eq!(
        p.per_hour("cpu:16-core"),
        Some(0.085),
        "other CPUs fall back to the class"
    );

    let bad: toml::Value = toml::from_str("price_per_lable = 0.5\n").unwrap();
    assert!(PricesConfig::from_toml(&bad).is_err(), "typos are rejected");
    assert_eq!(
        Prices::parse_hour_override("cuda=2.5").unwrap(),
        ("cuda".to_string(), 2.5)
    );
    assert!(Prices::parse_hour_override("cuda").is_err());
    assert!(Prices::parse_hour_override("cuda=abc").is_err());

    let d = tmp();
    let f = d.path().join("prices.toml");
    std::fs::write(&f, "[prices]\nprice_per_label = 0.2\n").unwrap();
    assert_eq!(Prices::load(&f).unwrap().price_per_label, 0.2);
}
