//! The AL loop on a tiny random BERT: every policy for 2 rounds, resume after a simulated crash
//! equals an uninterrupted run, and the run directory keeps every label exactly once.
use proxal::al::{self, LabelRecord, RunOptions};
use proxal::backbone::{tiny, BertConfig};
use proxal::data::{import_file, ImportOptions};
use proxal::home::Home;
use std::path::Path;

const WORDS: &[&str] = &[
    "card", "declined", "blocked", "pin", "code", "forgot", "top", "up", "money", "add",
    "transfer", "fee", "charge", "why", "my", "the", "is", "a", "was", "how",
];

/// 3 classes with their own words, 60 pool rows, 9 dev rows, 15 test rows.
fn make_home(dir: &Path) -> Home {
    let home = Home::new(dir);
    let class_words = [
        ["card", "declined", "blocked"],
        ["pin", "code", "forgot"],
        ["top", "up", "add"],
    ];
    let fillers = ["my", "the", "is", "a", "was", "how", "why"];
    let mut csv = String::from("text,label,split\n");
    for i in 0..84usize {
        let c = i % 3;
        let w = class_words[c];
        let text = format!(
            "{} {} {} {}",
            fillers[i % 7],
            w[i % 3],
            fillers[(i / 3) % 7],
            w[(i / 3 + 1) % 3]
        );
        let split = if i < 60 {
            "train"
        } else if i < 69 {
            "dev"
        } else {
            "test"
        };
        csv += &format!("{text},class{c},{split}\n");
    }
    let f = dir.join("toy.csv");
    std::fs::write(&f, csv).unwrap();
    let mut o = ImportOptions::new("toy", "text");
    o.label_col = Some("label".into());
    o.split_col = Some("split".into());
    import_file(&home, &f, &o).unwrap();
    let mut cfg = BertConfig::tiny(0);
    cfg.max_position_embeddings = 64;
    tiny::write_model_dir(&dir.join("model"), WORDS, &cfg, 3).unwrap();
    home
}

fn write_config(dir: &Path, name: &str, policy: &str, strategy: &str) -> std::path::PathBuf {
    let text = format!(
        r#"name = "{name}"
dataset = "toy"
policy = "{policy}"
seed = 4
initial = 6
batch = 6
rounds = 2
strategy = "{strategy}"
model_dir = "{}"
embed_batch = 8
embed_max_len = 32
[asvp]
align_every = 1
ft_threshold = 13
[train]
epochs = 2
batch_size = 4
max_len = 16
"#,
        dir.join("model").display()
    );
    let p = dir.join(format!("{name}.toml"));
    std::fs::write(&p, text).unwrap();
    p
}

/// The one-line error of a run that must fail.
fn run_error(home: &Home, cfg: &Path) -> String {
    format!(
        "{:#}",
        al::run(home, cfg, RunOptions::default()).unwrap_err()
    )
}

fn labels_of(home: &Home, name: &str) -> Vec<LabelRecord> {
    al::RunDir::new(home.runs().join(name))
        .read_labels()
        .unwrap()
}

fn rounds_of(home: &Home, name: &str) -> Vec<proxal::report::RoundRecord> {
    proxal::util::read_jsonl_tolerant(&home.runs().join(name).join("rounds.jsonl"))
        .unwrap()
        .records
}

#[test]
fn every_policy_runs_two_rounds() {
    let dir = tempfile::tempdir().unwrap();
    let home = make_home(dir.path());
    for (policy, strategy) in [
        ("random", "random"),
        ("svpp", "margin"),
        ("asvp", "entropy"),
        ("standard", "margin"),
    ] {
        let name = format!("toy-{policy}");
        let cfg = write_config(dir.path(), &name, policy, strategy);
        let s = al::run(&home, &cfg, RunOptions::default())
            .unwrap_or_else(|e| panic!("{policy}: {e:#}"));
        assert_eq!(s.rounds_done, 3, "{policy}: rounds 0, 1, 2");
        let labels = labels_of(&home, &name);
        assert_eq!(labels.len(), 18, "{policy}");
        let mut rows: Vec<usize> = labels.iter().map(|l| l.row).collect();
        rows.sort_unstable();
        rows.dedup();
        assert_eq!(rows.len(), 18, "{policy}: no row bought twice");
        assert!(
            rows.iter().all(|&r| r < 60),
            "{policy}: only pool rows are bought"
        );
        let rounds = rounds_of(&home, &name);
        assert_eq!(
            rounds.iter().map(|r| r.labels).collect::<Vec<_>>(),
            vec![6, 12, 18],
            "{policy}"
        );
        assert!(
            rounds
                .iter()
                .all(|r| (0.0..=1.0).contains(&r.test_accuracy)),
            "{policy}"
        );
        let ledger =
            proxal::cost::Ledger::read(&home.runs().join(&name).join("ledger.jsonl")).unwrap();
        let stages: std::collections::HashSet<&str> =
            ledger.iter().map(|r| r.stage.as_str()).collect();
        assert!(stages.contains("evaluation"), "{policy}: {stages:?}");
        if policy == "svpp" {
            assert!(
                ledger
                    .iter()
                    .any(|r| r.stage.as_str() == "embed" && r.round == 0 && r.rows == 84),
                "the one-off v0 embedding is charged to a proxy policy"
            );
        }
        match policy {
            "svpp" => assert!(
                stages.contains("proxy_fit")
                    && stages.contains("selection")
                    && !stages.contains("refresh")
            ),
            "asvp" => assert!(
                stages.contains("refresh") && stages.contains("indicator"),
                "{stages:?}"
            ),
            "standard" => assert!(stages.contains("fine_tune") && stages.contains("refresh")),
            _ => {}
        }
        // Refreshes feed selections: none in the final round (the evaluation here, `auto`,
        // ships the fine-tuned model itself, so no refreshed cache is needed there either).
        let refreshed: Vec<usize> = ledger
            .iter()
            .filter(|r| r.stage.as_str() == "refresh")
            .map(|r| r.round)
            .collect();
        match policy {
            "standard" => assert_eq!(refreshed, vec![0, 1], "{policy}"),
            "asvp" => assert_eq!(refreshed, vec![1], "{policy}"),
            _ => assert!(!stages.contains("fine_tune")),
        }
        // Every policy pays for the model it ships (`auto`: LP-FT below ft_threshold, then a full
        // fine-tune): training it is `ship`, not evaluation, unless the policy's own work this
        // round already trained it; every backbone training records the rows its steps ran on.
        let ships: Vec<usize> = ledger
            .iter()
            .filter(|r| r.stage == proxal::cost::Stage::Ship)
            .map(|r| r.round)
            .collect();
        let want: &[usize] = match policy {
            "random" | "svpp" => &[0, 1, 2],
            // Round 1 aligned (its LP-FT model ships); round 2 aligned in the last round, so that
            // fine-tune only made the shipped model.
            "asvp" => &[0, 2],
            // Its last fine-tune feeds no selection: it only makes the shipped model.
            _ => &[2],
        };
        assert_eq!(ships, want, "{policy}: rounds with a ship record");
        for r in &ledger {
            let trains = matches!(
                r.stage,
                proxal::cost::Stage::FineTune | proxal::cost::Stage::Ship
            );
            assert_eq!(
                r.trained_rows.is_some_and(|n| n > 0),
                trains,
                "{policy}: trained_rows on {r:?}"
            );
        }
        let progress = al::RunDir::new(home.runs().join(&name))
            .read_progress()
            .unwrap();
        if policy == "asvp" {
            assert!(
                progress.iter().all(|p| p.logme.is_some()),
                "LogME is logged every round"
            );
            assert!(
                progress[1].aligned.is_some() && progress[1].features.as_deref() == Some("run:v2")
            );
            assert_eq!(
                progress[1].method.as_deref(),
                Some("lp-ft"),
                "12 labels: below ft_threshold 13"
            );
            assert_eq!(
                progress[2].method.as_deref(),
                Some("fine-tune"),
                "18 labels: at or above ft_threshold"
            );
        }
    }
}

#[test]
fn resume_after_a_crash_equals_an_uninterrupted_run() {
    let dir = tempfile::tempdir().unwrap();
    let home = make_home(dir.path());
    for policy in ["svpp", "asvp"] {
        let a = write_config(dir.path(), &format!("whole-{policy}"), policy, "margin");
        al::run(&home, &a, RunOptions::default()).unwrap();

        let b = write_config(dir.path(), &format!("crashed-{policy}"), policy, "margin");
        // Stop after round 0, then simulate a kill -9 in the middle of the next append.
        al::run(
            &home,
            &b,
            RunOptions {
                stop_after_rounds: Some(1),
                ..Default::default()
            },
        )
        .unwrap();
        let run_dir = home.runs().join(format!("crashed-{policy}"));
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(run_dir.join("labelled.jsonl"))
            .unwrap();
        std::io::Write::write_all(&mut f, b"{\"round\": 2, \"row\": 1").unwrap();
        let s = al::run(&home, &b, RunOptions::default()).unwrap();
        assert!(s.resumed);
        let strip = |v: Vec<LabelRecord>| {
            v.into_iter()
                .map(|l| (l.round, l.row, l.label))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            strip(labels_of(&home, &format!("whole-{policy}"))),
            strip(labels_of(&home, &format!("crashed-{policy}"))),
            "{policy}: same selections"
        );
        let ra = rounds_of(&home, &format!("whole-{policy}"));
        let rb = rounds_of(&home, &format!("crashed-{policy}"));
        assert_eq!(ra.len(), rb.len());
        for (x, y) in ra.iter().zip(&rb) {
            assert_eq!(x.labels, y.labels);
            assert!(
                (x.test_accuracy - y.test_accuracy).abs() < 1e-9,
                "{policy}: {x:?} vs {y:?}"
            );
        }
        // The ledger counts every label once, per round, as the uninterrupted run's does (the
        // labels bought for round 1 before the stop are not bought again, but still counted).
        let bought = |name: &str| {
            let mut per_round = std::collections::BTreeMap::<usize, usize>::new();
            let recs =
                proxal::cost::Ledger::read(&home.runs().join(name).join("ledger.jsonl")).unwrap();
            for r in recs {
                *per_round.entry(r.round).or_default() += r.labels_bought;
            }
            per_round
        };
        let (wa, wb) = (
            bought(&format!("whole-{policy}")),
            bought(&format!("crashed-{policy}")),
        );
        assert_eq!(wa, wb, "{policy}: labels bought per round");
        assert_eq!(
            wb.values().sum::<usize>(),
            labels_of(&home, &format!("crashed-{policy}")).len()
        );
        // A third invocation has nothing left to do and buys nothing.
        let before = labels_of(&home, &format!("crashed-{policy}")).len();
        al::run(&home, &b, RunOptions::default()).unwrap();
        assert_eq!(labels_of(&home, &format!("crashed-{policy}")).len(), before);
    }
}

#[test]
fn a_kill_after_the_evaluation_record_leaves_one_record_per_round() {
    let dir = tempfile::tempdir().unwrap();
    let home = make_home(dir.path());
    let a = write_config(dir.path(), "whole", "svpp", "margin");
    al::run(&home, &a, RunOptions::default()).unwrap();
    let b = write_config(dir.path(), "killed", "svpp", "margin");
    al::run(
        &home,
        &b,
        RunOptions {
            stop_after_rounds: Some(2),
            ..Default::default()
        },
    )
    .unwrap();
    // The state a kill leaves between round 1's evaluation record (and its next batch) and
    // its progress record: progress has round 0 only, rounds.jsonl has rounds 0 and 1.
    let run_dir = home.runs().join("killed");
    let progress = std::fs::read_to_string(run_dir.join("progress.jsonl")).unwrap();
    let first = progress.lines().next().unwrap();
    std::fs::write(run_dir.join("progress.jsonl"), format!("{first}\n")).unwrap();
    assert_eq!(rounds_of(&home, "killed").len(), 2, "round 1 was evaluated");
    let s = al::run(&home, &b, RunOptions::default()).unwrap();
    assert!(s.resumed);
    let (whole, killed) = (rounds_of(&home, "whole"), rounds_of(&home, "killed"));
    let key = |v: &[proxal::report::RoundRecord]| {
        v.iter().map(|r| (r.round, r.labels)).collect::<Vec<_>>()
    };
    assert_eq!(key(&killed), key(&whole), "one evaluation record per round");
}

#[test]
fn a_changed_config_is_refused_and_nothing_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let home = make_home(dir.path());
    let p = write_config(dir.path(), "fixed", "random", "random");
    al::run(
        &home,
        &p,
        RunOptions {
            stop_after_rounds: Some(1),
            ..Default::default()
        },
    )
    .unwrap();
    let before = labels_of(&home, "fixed");
    let text = std::fs::read_to_string(&p)
        .unwrap()
        .replace("batch = 6", "batch = 7");
    std::fs::write(&p, text).unwrap();
    let err = run_error(&home, &p);
    assert!(err.contains("different config"), "{err}");
    assert_eq!(labels_of(&home, "fixed"), before);
}

#[test]
fn refresh_writes_the_next_version_from_a_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let home = make_home(dir.path());
    let bin = env!("CARGO_BIN_EXE_proxal");
    let model = dir.path().join("model");
    let run = |args: &[&str]| {
        let out = std::process::Command::new(bin)
            .arg("--home")
            .arg(dir.path())
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let m = model.to_str().unwrap();
    let (code, err) = run(&[
        "embed",
        "--data",
        "toy",
        "--model-dir",
        m,
        "--max-len",
        "32",
        "--quiet",
    ]);
    assert_eq!(code, Some(0), "{err}");
    let (code, err) = run(&[
        "refresh",
        "--data",
        "toy",
        "--from-checkpoint",
        m,
        "--model-dir",
        m,
        "--quiet",
    ]);
    assert_eq!(code, Some(0), "{err}");
    // Another backbone than the default: its own store, features/toy@model.
    let store = proxal::features::Store::for_model(&home, "toy", &model);
    assert_eq!(
        store.version_dir(0),
        dir.path().join("features/toy@model/v0")
    );
    let m1 = store.manifest(1).unwrap();
    assert!(m1.complete);
    assert_eq!(m1.source.checkpoint.as_deref(), Some(m));
    assert_eq!(
        m1.source.max_len, 32,
        "refresh embeds the way v0 was embedded"
    );
    // Same weights as v0: the refreshed version must hold the same vectors, bit for bit.
    use proxal::features::{RowBlocks, Verify};
    let v0 = store.open(0, Verify::Checksums).unwrap();
    let v1 = store.open(1, Verify::Checksums).unwrap();
    for r in 0..v0.n_rows() {
        assert_eq!(v0.row(r), v1.row(r), "row {r}");
    }
    // A checkpoint directory that is not a model is a one-line error.
    let (code, err) = run(&[
        "refresh",
        "--data",
        "toy",
        "--from-checkpoint",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(code, Some(1), "exit code of a failed command: {err}");
    assert!(
        err.contains("missing config.json") || err.contains("config.json"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}

/// A linear probe (the shipped model's fit) on `rows` of `fv`, scored on the test rows of `ds`.
fn probe_accuracy(
    fv: &proxal::features::FeatureVersion,
    ds: &proxal::data::Dataset,
    rows: &[usize],
) -> (f64, proxal::proxy::LogReg) {
    use proxal::features::RowBlocks;
    let ys: Vec<u32> = rows.iter().map(|&r| ds.labels[r].unwrap()).collect();
    let cfg = proxal::proxy::LogRegConfig::default();
    let m = proxal::proxy::LogReg::fit(&cfg, fv.gather(rows).view(), &ys, 3, None).unwrap();
    let test = ds.labelled_rows_of(proxal::data::Split::Test);
    let p = proxal::proxy::Proxy::predict_proba(&m, fv.gather(&test).view());
    let right = proxal::numerics::argmax_rows(p.view())
        .iter()
        .zip(&test)
        .filter(|((c, _), &r)| ds.labels[r] == Some(*c))
        .count();
    (right as f64 / test.len() as f64, m)
}

#[test]
fn a_successor_ships_while_the_acquisition_model_selects() {
    use proxal::features::{RowBlocks, Store, Verify};
    let dir = tempfile::tempdir().unwrap();
    let home = make_home(dir.path());
    // The successor: another architecture of another width (a tiny MPNet, 48 dims).
    let mut sc = BertConfig::tiny_mpnet(0);
    sc.hidden_size = 48;
    sc.intermediate_size = 96;
    tiny::write_model_dir(&dir.path().join("succ"), WORDS, &sc, 9).unwrap();
    let with = |name: &str, successor: &str| {
        let p = write_config(dir.path(), name, "svpp", "margin");
        let text = std::fs::read_to_string(&p).unwrap().replace(
            "embed_batch = 8",
            "eval_model = \"linear-probe\"\nembed_batch = 8",
        );
        std::fs::write(&p, text + successor).unwrap();
        p
    };
    let succ_dir = dir.path().join("succ");
    let plain = with("plain", "");
    let shipped = with(
        "succ",
        &format!("[successor]\nmodel_dir = \"{}\"\n", succ_dir.display()),
    );
    let pseudo = with(
        "pseudo",
        &format!(
            "[successor]\nmodel_dir = \"{}\"\npseudo_threshold = 0.34\npseudo_weight = 0.5\npseudo_per_class = 4\n",
            succ_dir.display()
        ),
    );
    for p in [&plain, &shipped, &pseudo] {
        al::run(&home, p, RunOptions::default()).unwrap();
    }
    // Selection is the acquisition model's: the successor changes no pick.
    let rows =
        |name: &str| -> Vec<usize> { labels_of(&home, name).iter().map(|l| l.row).collect() };
    assert_eq!(rows("succ"), rows("plain"));
    assert_eq!(rows("pseudo"), rows("plain"));
    // Each backbone has its own store; the successor's records its own weights.
    let ds = proxal::data::Dataset::load(&home, "toy").unwrap();
    let acq = Store::at(home.features().join("toy@model"), "toy")
        .open_for(0, &ds, Verify::Sizes)
        .unwrap();
    let succ = Store::at(home.features().join("toy@succ"), "toy")
        .open_for(0, &ds, Verify::Sizes)
        .unwrap();
    assert_eq!((acq.dim(), succ.dim()), (32, 48));
    assert_eq!(succ.manifest().source.backbone, "succ");
    // What the records say is what the two probes score: the successor's accuracy is the test
    // accuracy (it ships), the acquisition model's is kept beside it; the plain run's test
    // accuracy is the acquisition probe's.
    let labels = labels_of(&home, "succ");
    let plain_rounds = rounds_of(&home, "plain");
    for (i, r) in rounds_of(&home, "succ").iter().enumerate() {
        let bought: Vec<usize> = labels
            .iter()
            .filter(|l| l.round <= r.round)
            .map(|l| l.row)
            .collect();
        let (want_succ, _) = probe_accuracy(&succ, &ds, &bought);
        let (want_acq, _) = probe_accuracy(&acq, &ds, &bought);
        assert!(
            (r.test_accuracy - want_succ).abs() < 1e-9,
            "round {}",
            r.round
        );
        assert_eq!(r.acquisition_accuracy, Some(want_acq), "round {}", r.round);
        assert_eq!(plain_rounds[i].test_accuracy, want_acq);
        assert_eq!(plain_rounds[i].acquisition_accuracy, None);
        assert_eq!(r.pseudo_labels, None);
    }
    // Pseudo-labels: the unlabelled pool rows the acquisition probe labels at ≥ 0.34, at most 4
    // per class, the most confident first.
    for r in rounds_of(&home, "pseudo") {
        let bought: Vec<usize> = labels
            .iter()
            .filter(|l| l.round <= r.round)
            .map(|l| l.row)
            .collect();
        let (_, m) = probe_accuracy(&acq, &ds, &bought);
        let unl: Vec<usize> = ds
            .rows_of(proxal::data::Split::Pool)
            .into_iter()
            .filter(|x| !bought.contains(x))
            .collect();
        let p = proxal::proxy::Proxy::predict_proba(&m, acq.gather(&unl).view());
        let mut per_class = [0usize; 3];
        for (c, top) in proxal::numerics::argmax_rows(p.view()) {
            if top as f64 >= 0.34 {
                per_class[c as usize] += 1;
            }
        }
        let want: usize = per_class.iter().map(|&n| n.min(4)).sum();
        assert!(want > 0, "round {}: the test needs pseudo-labels", r.round);
        assert_eq!(r.pseudo_labels, Some(want), "round {}", r.round);
        assert!(r
            .pseudo_label_accuracy
            .is_some_and(|a| (0.0..=1.0).contains(&a)));
    }
    // The successor's one-off embedding is the policy's compute (`embed`, round 0), once.
    let ledger = std::fs::read_to_string(home.runs().join("succ").join("ledger.jsonl")).unwrap();
    let embeds: Vec<&str> = ledger
        .lines()
        .filter(|l| l.contains("\"stage\":\"embed\"") && l.contains("one-off embedding of v0"))
        .collect();
    assert_eq!(embeds.len(), 2, "{ledger}");
    assert!(embeds.iter().any(|l| l.contains("toy@succ")), "{ledger}");
    // Self-training: the run's own backbone as the successor, pseudo-labelling for itself; one
    // store, so its v0 embedding is charged once.
    let own = with(
        "self",
        &format!(
            "[successor]\nmodel_dir = \"{}\"\npseudo_threshold = 0.34\npseudo_per_class = 4\n",
            dir.path().join("model").display()
        ),
    );
    al::run(&home, &own, RunOptions::default()).unwrap();
    assert_eq!(rows("self"), rows("plain"));
    let ledger = std::fs::read_to_string(home.runs().join("self").join("ledger.jsonl")).unwrap();
    let embeds = ledger
        .lines()
        .filter(|l| l.contains("one-off embedding of v0"))
        .count();
    assert_eq!(embeds, 1, "{ledger}");
    assert!(rounds_of(&home, "self")
        .iter()
        .all(|r| r.pseudo_labels.is_some()));
    // A fine-tuned successor: the same picks, the acquisition model's probe as before, and the
    // successor's training (its backbone's, metered as `ship` with the rows it trained on) in
    // every evaluation round; no checkpoint is left behind.
    let ft = with(
        "succ-ft",
        &format!(
            "[successor]\nmodel_dir = \"{}\"\nmethod = \"fine-tune\"\n",
            succ_dir.display()
        ),
    );
    al::run(&home, &ft, RunOptions::default()).unwrap();
    assert_eq!(rows("succ-ft"), rows("plain"));
    let ft_rounds = rounds_of(&home, "succ-ft");
    assert_eq!(ft_rounds.len(), plain_rounds.len());
    for (r, p) in ft_rounds.iter().zip(&plain_rounds) {
        assert_eq!(r.acquisition_accuracy, Some(p.test_accuracy));
        assert!((0.0..=1.0).contains(&r.test_accuracy));
    }
    let ledger = std::fs::read_to_string(home.runs().join("succ-ft").join("ledger.jsonl")).unwrap();
    let trained: Vec<serde_json::Value> = ledger
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|r| r["stage"] == "ship" && r["trained_rows"].as_u64().is_some_and(|n| n > 0))
        .collect();
    assert_eq!(trained.len(), ft_rounds.len(), "{ledger}");
    let ckpt = home.runs().join("succ-ft").join("checkpoints");
    assert!(
        !ckpt.exists() || std::fs::read_dir(&ckpt).unwrap().next().is_none(),
        "a successor's fine-tune leaves no checkpoint"
    );
    // Pseudo-labels train a linear-probe successor only.
    let bad = with(
        "bad-ft",
        &format!(
            "[successor]\nmodel_dir = \"{}\"\nmethod = \"lp-ft\"\npseudo_threshold = 0.9\n",
            succ_dir.display()
        ),
    );
    let e = run_error(&home, &bad);
    assert!(e.contains("bad-ft.toml") && e.contains("pseudo"), "{e}");
    // A successor ships a linear probe: another eval_model is refused, naming the file.
    let bad = with(
        "bad",
        &format!("[successor]\nmodel_dir = \"{}\"\n", succ_dir.display()),
    );
    let text = std::fs::read_to_string(&bad)
        .unwrap()
        .replace("linear-probe", "auto");
    std::fs::write(&bad, text).unwrap();
    let e = run_error(&home, &bad);
    assert!(e.contains("bad.toml") && e.contains("eval_model"), "{e}");
}
