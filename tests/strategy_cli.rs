//! `proxal select` end to end on a small dataset with synthetic features in the store.
mod common;

use proxal::data::{Dataset, LabelMap, Split};
use proxal::features::{Provenance, Store, VersionSpec};
use proxal::home::Home;
#[path = "common/synth.rs"]
mod synth;
use std::path::Path;
use std::process::Command;
use synth::Mixture;

const N: usize = 400;

fn setup(home: &Path) -> Dataset {
    let mix = Mixture::new(16, 4, 3.0, 1.5, 3);
    let (x, y) = mix.sample(N);
    let ids: Vec<String> = (0..N).map(|i| format!("r{i:03}")).collect();
    let texts: Vec<String> = (0..N)
        .map(|i| format!("text number {i}, with a comma"))
        .collect();
    let label_map = LabelMap {
        names: vec![
            "alpha".into(),
            "beta".into(),
            "gamma".into(),
            "delta".into(),
        ],
    };
    let splits: Vec<Split> = (0..N)
        .map(|i| if i < 300 { Split::Pool } else { Split::Test })
        .collect();
    let fingerprint = Dataset::compute_fingerprint(&ids, &texts);
    let ds = Dataset {
        name: "toy".into(),
        ids,
        texts,
        labels: y.iter().map(|&l| Some(l)).collect(),
        splits,
        label_map,
        fingerprint,
    };
    let h = Home::new(home);
    ds.save(&Dataset::dir(&h, "toy"), "test").unwrap();
    let store = Store::new(&h, "toy");
    let spec = VersionSpec {
        dataset: "toy".into(),
        dataset_fingerprint: ds.fingerprint.clone(),
        rows: N,
        dim: 16,
        dtype: proxal::features::Dtype::F32,
        chunk_rows: 128,
        source: Provenance::synthetic(),
    };
    let mut w = store.writer(0, spec).unwrap();
    for c in 0..w.n_chunks() {
        let r = w.chunk_range(c);
        let data: Vec<f32> = x
            .slice(ndarray::s![r.start..r.end, ..])
            .iter()
            .copied()
            .collect();
        w.write_chunk(c, &data).unwrap();
    }
    ds
}

/// Run `proxal select`; (exit code, stdout, stderr).
fn select(home: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    common::outcome(
        Command::new(env!("CARGO_BIN_EXE_proxal"))
            .arg("--home")
            .arg(home)
            .arg("select")
            .args(args)
            .output()
            .unwrap(),
    )
}

#[test]
fn select_writes_a_batch_and_reports_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path();
    let ds = setup(home);
    let lab = home.join("labelled.csv");
    let mut csv = String::from("id,label\n");
    for i in 0..40 {
        csv.push_str(&format!(
            "{},{}\n",
            ds.ids[i],
            ds.label_map.name(ds.labels[i].unwrap())
        ));
    }
    std::fs::write(&lab, &csv).unwrap();
    let labp = lab.to_str().unwrap();

    for strategy in [
        "margin",
        "badge",
        "coreset",
        "cluster-margin",
        "ups:entropy",
    ] {
        let (code, out, err) = select(
            home,
            &[
                "--data",
                "toy",
                "--features",
                "v0",
                "--labelled",
                labp,
                "--strategy",
                strategy,
                "--batch",
                "7",
            ],
        );
        assert_eq!(code, Some(0), "{strategy}: {err}");
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], "id,text,score,predicted_label", "{strategy}");
        assert_eq!(lines.len(), 8, "{strategy}: {out}");
        for l in &lines[1..] {
            let id = l.split(',').next().unwrap();
            let row: usize = id[1..].parse().unwrap();
            assert!(
                (40..300).contains(&row),
                "{strategy} picked {id}: labelled or not in the pool"
            );
            assert!(l.contains("\"text number"), "text is quoted: {l}");
        }
    }
    // Parquet output; cold start without labels.
    let out_pq = home.join("batch.parquet");
    let (code, _, err) = select(
        home,
        &[
            "--data",
            "toy",
            "--strategy",
            "typicality",
            "--batch",
            "5",
            "--out",
            out_pq.to_str().unwrap(),
        ],
    );
    assert_eq!(code, Some(0), "{err}");
    assert!(std::fs::read(&out_pq).unwrap().starts_with(b"PAR1"));

    // One-line errors.
    let bad = home.join("bad.csv");
    std::fs::write(&bad, "id,label\nr001,alpha\nnope,beta\n").unwrap();
    let (code, _, err) = select(
        home,
        &[
            "--data",
            "toy",
            "--labelled",
            bad.to_str().unwrap(),
            "--strategy",
            "margin",
            "--batch",
            "3",
        ],
    );
    assert_eq!(code, Some(common::ERROR_EXIT), "{err}");
    assert!(err.contains("line 3: unknown id 'nope'"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    std::fs::write(&bad, "id,label\nr001,omega\n").unwrap();
    let (code, _, err) = select(
        home,
        &[
            "--data",
            "toy",
            "--labelled",
            bad.to_str().unwrap(),
            "--strategy",
            "margin",
            "--batch",
            "3",
        ],
    );
    assert_eq!(code, Some(common::ERROR_EXIT), "{err}");
    assert!(err.contains("unknown label 'omega'"), "{err}");
    std::fs::write(&bad, "id,label\nr350,alpha\n").unwrap();
    let (code, _, err) = select(
        home,
        &[
            "--data",
            "toy",
            "--labelled",
            bad.to_str().unwrap(),
            "--strategy",
            "margin",
            "--batch",
            "3",
        ],
    );
    assert_eq!(code, Some(common::ERROR_EXIT), "{err}");
    assert!(err.contains("test split"), "{err}");
    let (code, _, err) = select(
        home,
        &["--data", "toy", "--strategy", "margin", "--batch", "3"],
    );
    assert_eq!(code, Some(common::ERROR_EXIT), "{err}");
    assert!(err.contains("needs labelled rows"), "{err}");
    let (code, _, err) = select(
        home,
        &[
            "--data",
            "toy",
            "--features",
            "v9",
            "--strategy",
            "random",
            "--batch",
            "3",
        ],
    );
    assert_eq!(code, Some(common::ERROR_EXIT), "{err}");
    assert!(
        err.contains("v9") || err.contains("no feature version"),
        "{err}"
    );
    let (code, _, err) = select(
        home,
        &["--data", "toy", "--strategy", "magic", "--batch", "3"],
    );
    assert_eq!(code, Some(common::ERROR_EXIT), "{err}");
    assert!(err.contains("unknown strategy 'magic'"), "{err}");
}
