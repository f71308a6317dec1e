//! Ingest: every format, the built-in importers, and every kind of bad input.
mod common;

use polars::prelude::*;
use proxal::data::{import_builtin, import_file, Builtin, Dataset, ImportOptions, Split};
use proxal::home::Home;
use std::path::Path;

fn opts(name: &str, label: bool, split: bool) -> ImportOptions {
    let mut o = ImportOptions::new(name, "text");
    if label {
        o.label_col = Some("label".into());
    }
    if split {
        o.split_col = Some("split".into());
    }
    o
}

const ROWS: [(&str, &str, &str); 5] = [
    ("how do I reset my pin", "pin", "train"),
    ("card not working, \"declined\" twice", "card", "train"),
    ("top up failed", "top_up", "train"),
    ("my pin is blocked", "pin", "test"),
    ("where is my new card", "card", "dev"),
];

fn check_imported(home: &Home, name: &str) {
    let ds = Dataset::load(home, name).unwrap();
    assert_eq!(ds.len(), 5);
    assert_eq!(ds.count(Split::Pool), 3);
    assert_eq!(ds.count(Split::Dev), 1);
    assert_eq!(ds.count(Split::Test), 1);
    assert_eq!(ds.label_map.names, vec!["card", "pin", "top_up"]);
    assert_eq!(ds.texts[1], "card not working, \"declined\" twice");
    for (i, (t, l, _)) in ROWS.iter().enumerate() {
        assert_eq!(&ds.texts[i], t);
        assert_eq!(ds.label_map.name(ds.labels[i].unwrap()), *l);
    }
    assert_eq!(
        ds.fingerprint,
        Dataset::compute_fingerprint(&ds.ids, &ds.texts)
    );
}

#[test]
fn imports_csv_tsv_jsonl_parquet() {
    let dir = tempfile::tempdir().unwrap();
    let home = Home::new(dir.path());
    let csv = dir.path().join("d.csv");
    let mut s = String::from("text,label,split\n");
    for (t, l, sp) in ROWS {
        s += &format!("\"{}\",{l},{sp}\n", t.replace('"', "\"\""));
    }
    std::fs::write(&csv, s).unwrap();
    import_file(&home, &csv, &opts("c", true, true)).unwrap();
    check_imported(&home, "c");

    let tsv = dir.path().join("d.tsv");
    let mut s = String::from("text\tlabel\tsplit\n");
    for (t, l, sp) in ROWS {
        s += &format!("\"{}\"\t{l}\t{sp}\n", t.replace('"', "\"\""));
    }
    std::fs::write(&tsv, s).unwrap();
    import_file(&home, &tsv, &opts("t", true, true)).unwrap();
    check_imported(&home, "t");

    let jsonl = dir.path().join("d.jsonl");
    let s: String = ROWS
        .iter()
        .map(|(t, l, sp)| {
            serde_json::json!({"text": t, "label": l, "split": sp}).to_string() + "\n"
        })
        .collect();
    std::fs::write(&jsonl, s).unwrap();
    import_file(&home, &jsonl, &opts("j", true, true)).unwrap();
    check_imported(&home, "j");

    let pq = dir.path().join("d.parquet");
    let mut df = DataFrame::new_infer_height(vec![
        Column::new("text".into(), ROWS.iter().map(|r| r.0).collect::<Vec<_>>()),
        Column::new("label".into(), ROWS.iter().map(|r| r.1).collect::<Vec<_>>()),
        Column::new("split".into(), ROWS.iter().map(|r| r.2).collect::<Vec<_>>()),
    ])
    .unwrap();
    ParquetWriter::new(std::fs::File::create(&pq).unwrap())
        .finish(&mut df)
        .unwrap();
    import_file(&home, &pq, &opts("p", true, true)).unwrap();
    check_imported(&home, "p");
}

#[test]
fn imports_an_unlabelled_pool_with_ids() {
    let dir = tempfile::tempdir().unwrap();
    let home = Home::new(dir.path());
    let f = dir.path().join("pool.csv");
    std::fs::write(&f, "doc_id,body\n007,first text\n42,second text\n").unwrap();
    let mut o = ImportOptions::new("pool", "body");
    o.id_col = Some("doc_id".into());
    let r = import_file(&home, &f, &o).unwrap();
    assert_eq!(
        (r.meta.rows, r.meta.pool, r.meta.labelled, r.meta.n_labels),
        (2, 2, 0, 0)
    );
    let ds = Dataset::load(&home, "pool").unwrap();
    assert_eq!(
        ds.ids,
        vec!["007", "42"],
        "ids are kept as text, leading zeros included"
    );
    assert!(ds.labels.iter().all(Option::is_none));
    assert!(ds.label_map.is_empty());
}

#[test]
fn builtin_importers_have_the_published_sizes() {
    let Some(assets) = common::assets("builtin_importers_have_the_published_sizes") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    std::env::set_var("PROXAL_ASSETS", &assets);
    let home = Home::new(dir.path());
    let r = import_builtin(&home, Builtin::Banking77, None).unwrap();
    assert_eq!(
        (r.meta.pool, r.meta.dev, r.meta.test, r.meta.n_labels),
        (9003, 1000, 3080, 77)
    );
    let ds = Dataset::load(&home, "banking77").unwrap();
    assert!(ds
        .texts
        .iter()
        .any(|t| t == "What do I do with my \"decline\" message on a transfer?"));
    assert!(ds.labels.iter().all(Option::is_some));
    let r = import_builtin(&home, Builtin::Clinc150, None).unwrap();
    assert_eq!(
        (r.meta.pool, r.meta.dev, r.meta.test, r.meta.n_labels),
        (18000, 2250, 2250, 150)
    );
    let r = import_builtin(&home, Builtin::Stackoverflow20, None).unwrap();
    assert_eq!((r.meta.pool, r.meta.n_labels), (11996, 20));
    // The misaligned set: CLINC150's 26 home-assistant intents (120 training requests each)
    // against HWU64's matching ones, labelled by corpus.
    let r = import_builtin(&home, Builtin::AssistantSource, None).unwrap();
    assert_eq!(
        (r.meta.pool, r.meta.dev, r.meta.test, r.meta.n_labels),
        (6888, 847, 894, 2)
    );
    let ds = Dataset::load(&home, "assistant-source").unwrap();
    assert_eq!(ds.label_map.names, ["clinc150", "hwu64"]);
    let clinc = ds.label_map.id("clinc150").unwrap();
    let pool_clinc = (0..ds.len())
        .filter(|&i| ds.splits[i] == Split::Pool && ds.labels[i] == Some(clinc))
        .count();
    assert_eq!(pool_clinc, 3120);
    assert!(ds
        .ids
        .iter()
        .all(|id| id.starts_with("clinc150-") || id.starts_with("hwu64-")));
    // The pool-size stress set: ten English sets, labels namespaced, 5% of each class as test.
    let r = import_builtin(&home, Builtin::BoltEnglish, None).unwrap();
    assert_eq!((r.meta.rows, r.meta.dev, r.meta.n_labels), (111402, 0, 672));
    assert!(r.meta.pool > 105_000 && r.meta.test > 5_000, "{}", r);
    let ds = Dataset::load(&home, "bolt-english").unwrap();
    assert!(ds.label_map.id("clinc150/transfer").is_some());
    assert!(ds.label_map.id("20ng/sci.space").is_some());
    assert!(ds.label_map.names.iter().all(|l| l.contains('/')));
    // No 20NG text still names its newsgroup in a header.
    assert!(!ds.texts.iter().any(|t| t.starts_with("Newsgroup:")));
    // Every class keeps most of its rows in the pool.
    let transfer = ds.label_map.id("clinc150/transfer").unwrap();
    let (pool, test) = (0..ds.len())
        .filter(|&i| ds.labels[i] == Some(transfer))
        .fold((0, 0), |(p, t), i| match ds.splits[i] {
            Split::Pool => (p + 1, t),
            _ => (p, t + 1),
        });
    assert_eq!((pool, test), (142, 8));
}

/// Import `content` written to a file named `file`, expecting an error containing every needle.
fn expect_error(file: &str, content: &[u8], o: ImportOptions, needles: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let home = Home::new(dir.path());
    let path = dir.path().join(file);
    std::fs::write(&path, content).unwrap();
    let err = format!("{:#}", import_file(&home, &path, &o).unwrap_err());
    for n in needles {
        assert!(err.contains(n), "error {err:?} should contain {n:?}");
    }
    assert!(!err.contains('\n'), "error must be one line: {err:?}");
    assert!(
        !dir.path().join("datasets").join(&o.name).exists(),
        "nothing may be stored on error"
    );
}

#[test]
fn bad_inputs_get_clear_errors() {
    // Missing file.
    let dir = tempfile::tempdir().unwrap();
    let err = import_file(
        &Home::new(dir.path()),
        &dir.path().join("nope.csv"),
        &opts("x", false, false),
    )
    .unwrap_err();
    assert!(format!("{err:#}").contains("nope.csv"), "{err:#}");
    // Empty file, header only.
    expect_error("e.csv", b"", opts("x", false, false), &["e.csv", "empty"]);
    expect_error(
        "h.csv",
        b"text,label\n",
        opts("x", true, false),
        &["h.csv", "no data rows"],
    );
    // Malformed delimited files: the line and what is wrong with it, not the table reader's
    // advice for its Python API.
    expect_error(
        "q.tsv",
        b"text\tlabel\nfine row\ta\n\"Hi\" she said, my card\tb\nanother\ta\nmore\tb\n",
        opts("x", true, false),
        &["q.tsv", "line 3", "quote", "double it"],
    );
    expect_error(
        "m.tsv",
        b"text\tlabel\nfine row\ta\nthis card?\" arrived\tb\nanother\ta\n\"x\"\tb\n",
        opts("x", true, false),
        &["m.tsv", "line 3", "field 1 has a quote", "double it"],
    );
    // CRLF line ends and a blank line are fine; the last record, without a newline, is not.
    expect_error(
        "g.csv",
        b"text,label\r\nfine,a\r\n\r\nok,b\r\nx,y,z",
        opts("x", true, false),
        &["g.csv", "line 5", "3 fields where the header has 2"],
    );
    expect_error(
        "f.csv",
        b"text,label\nfine,a\nhello, world,b\nok,a\n",
        opts("x", true, false),
        &[
            "f.csv",
            "line 3",
            "3 fields where the header has 2",
            "quoted field",
        ],
    );
    // Missing column, naming the columns there are.
    expect_error(
        "m.csv",
        b"txt,label\nhello,a\n",
        opts("x", true, false),
        &["m.csv", "no column 'text'", "txt, label"],
    );
    expect_error(
        "m.csv",
        b"text,lbl\nhello,a\n",
        opts("x", true, false),
        &["no column 'label'"],
    );
    // Empty text, naming the row.
    expect_error(
        "t.csv",
        b"text,label\nhello,a\n  ,b\n",
        opts("x", true, false),
        &["t.csv", "row 2", "'text' is empty"],
    );
    // Non-UTF-8.
    expect_error(
        "u.csv",
        b"text\nok\ncaf\xe9\n",
        opts("x", false, false),
        &["u.csv", "line 3", "UTF-8"],
    );
    // Duplicate ids.
    let mut o = opts("x", false, false);
    o.id_col = Some("id".into());
    expect_error(
        "d.csv",
        b"id,text\n1,a\n2,b\n1,c\n",
        o,
        &["d.csv", "row 3", "duplicate id '1'", "row 1"],
    );
    // A file that is not what its extension says.
    expect_error(
        "p.parquet",
        b"text\nhello\n",
        opts("x", false, false),
        &["p.parquet", "not a Parquet file"],
    );
    let mut pq = Vec::new();
    let mut df = DataFrame::new_infer_height(vec![Column::new("text".into(), ["a"])]).unwrap();
    ParquetWriter::new(&mut pq).finish(&mut df).unwrap();
    expect_error(
        "q.csv",
        &pq,
        opts("x", false, false),
        &["q.csv", "Parquet file"],
    );
    expect_error(
        "j.jsonl",
        b"{\"text\": \"a\"}\ntext,label\n",
        opts("x", false, false),
        &["j.jsonl", "line 2", "invalid JSON"],
    );
    expect_error(
        "b.csv",
        b"text\n\x00\x01\x02",
        opts("x", false, false),
        &["b.csv", "NUL"],
    );
    // Unknown extension and unknown split.
    expect_error(
        "x.xlsx",
        b"whatever",
        opts("x", false, false),
        &["x.xlsx", "unknown file type"],
    );
    expect_error(
        "s.csv",
        b"text,split\na,train\nb,holdout\n",
        opts("x", false, true),
        &["s.csv", "row 2", "unknown split 'holdout'"],
    );
}

#[test]
fn label_only_in_test_is_a_warning_not_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let home = Home::new(dir.path());
    let f = dir.path().join("w.csv");
    std::fs::write(&f, "text,label,split\na,x,train\nb,y,train\nc,z,test\n").unwrap();
    let r = import_file(&home, &f, &opts("w", true, true)).unwrap();
    assert_eq!(r.warnings.len(), 1);
    assert!(
        r.warnings[0].contains('z') && r.warnings[0].contains("never in the pool"),
        "{:?}",
        r.warnings
    );
    assert_eq!(r.meta.n_labels, 3);
}

#[test]
fn failed_import_keeps_the_earlier_dataset() {
    let dir = tempfile::tempdir().unwrap();
    let home = Home::new(dir.path());
    let good = dir.path().join("g.csv");
    std::fs::write(&good, "text\nhello\nworld\n").unwrap();
    import_file(&home, &good, &opts("keep", false, false)).unwrap();
    let bad = dir.path().join("b.csv");
    std::fs::write(&bad, "text\nhello\n\"\"\n").unwrap();
    assert!(import_file(&home, &bad, &opts("keep", false, false)).is_err());
    assert_eq!(
        Dataset::load(&home, "keep").unwrap().texts,
        vec!["hello", "world"]
    );
}

#[test]
fn cli_errors_are_one_line_with_nonzero_exit() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("m.csv");
    std::fs::write(&f, "body\nhello\n").unwrap();
    let (code, _, err) = common::proxal(
        dir.path(),
        &["data", "import", f.to_str().unwrap(), "--name", "m"],
    );
    assert_eq!(code, Some(common::ERROR_EXIT), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains("no column 'text'") && err.contains("m.csv"),
        "{err}"
    );
    let (code, out, err) = common::proxal(
        dir.path(),
        &[
            "data",
            "import",
            f.to_str().unwrap(),
            "--name",
            "m",
            "--text-col",
            "body",
        ],
    );
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("1 rows"), "{out}");
    assert!(Path::new(&dir.path().join("datasets/m/table.parquet")).exists());
}

#[test]
fn test_fraction_holds_out_a_stratified_seeded_share() {
    let dir = tempfile::tempdir().unwrap();
    let home = Home::new(dir.path());
    let path = dir.path().join("l.csv");
    // Classes of 50, 30 and 20 labelled rows, and 10 unlabelled rows.
    let mut text = String::from("text,label\n");
    for (label, n) in [("a", 50), ("b", 30), ("c", 20)] {
        for i in 0..n {
            text.push_str(&format!("{label} text {i},{label}\n"));
        }
    }
    for i in 0..10 {
        text.push_str(&format!("unlabelled {i},\n"));
    }
    std::fs::write(&path, text).unwrap();
    let import = |name: &str, seed: u64| {
        let mut o = opts(name, true, false);
        o.test_split = Some(proxal::data::TestSplit {
            fraction: 0.2,
            seed,
        });
        let r = import_file(&home, &path, &o).unwrap();
        assert!(r
            .meta
            .source
            .contains("test split: 0.2 of each label's rows, seed"));
        Dataset::load(&home, name).unwrap()
    };
    let ds = import("s0", 0);
    let test_rows = |ds: &Dataset| -> Vec<usize> {
        (0..ds.len())
            .filter(|&i| ds.splits[i] == Split::Test)
            .collect()
    };
    let per_class = |ds: &Dataset| -> Vec<usize> {
        (0..3u32)
            .map(|c| {
                test_rows(ds)
                    .iter()
                    .filter(|&&i| ds.labels[i] == Some(c))
                    .count()
            })
            .collect()
    };
    assert_eq!(per_class(&ds), [10, 6, 4]);
    // Unlabelled rows stay in the pool.
    assert!(test_rows(&ds).iter().all(|&i| ds.labels[i].is_some()));
    assert_eq!(ds.count(Split::Pool), 110 - 20);
    // The same seed draws the same rows, another seed others (with the same proportions).
    assert_eq!(test_rows(&import("again", 0)), test_rows(&ds));
    let other = import("s1", 1);
    assert_eq!(per_class(&other), [10, 6, 4]);
    assert_ne!(test_rows(&other), test_rows(&ds));
    // It needs labels, and excludes a split column.
    let mut o = opts("bad", false, false);
    o.test_split = Some(proxal::data::TestSplit {
        fraction: 0.2,
        seed: 0,
    });
    let err = format!("{:#}", import_file(&home, &path, &o).unwrap_err());
    assert!(err.contains("--label-col"), "{err}");
    let mut o = opts("bad", true, true);
    o.test_split = Some(proxal::data::TestSplit {
        fraction: 0.2,
        seed: 0,
    });
    let err = format!("{:#}", import_file(&home, &path, &o).unwrap_err());
    assert!(err.contains("--split-col or --test-fraction"), "{err}");
}
