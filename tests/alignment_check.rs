//! Alignment checks (docs/ALIGNMENT.md) where the right answer is known: the same texts (two
//! distinct banking77 intents) with a synthetic v0 cache that is either pure noise (the cache
//! fits the task not at all: a fine-tune must beat the probe, and the run aligns in round 0) or
//! made of the label (the cache fits perfectly: nothing beats the probe, and the run keeps it).
mod common;
#[path = "common/two_intents.rs"]
mod two_intents;

use proxal::al::RunOptions;
use proxal::data::Split;
use proxal::home::Home;
use serde_json::Value;
use two_intents::{label_v0, noise_v0, noise_v0_as, read_jsonl, setup, stage_records};

/// Run an auto-triggered asvp (full fine-tuning as the one candidate) over `two` for `rounds`
/// rounds after round 0 and return its progress and ledger records.
fn run_auto(home: &Home, rounds: usize) -> (Vec<Value>, Vec<Value>) {
    let cfg = auto_config(home, rounds, "");
    ok(home, &["run", cfg.to_str().unwrap(), "--quiet"]);
    let dir = home.runs().join("check");
    (
        read_jsonl(&dir.join("progress.jsonl")),
        read_jsonl(&dir.join("ledger.jsonl")),
    )
}

/// `proxal …` in `home`, which must succeed; its stdout.
fn ok(home: &Home, args: &[&str]) -> String {
    let (code, out, err) = common::proxal(home.root(), args);
    assert_eq!(code, Some(0), "proxal {args:?}:\n{out}\n{err}");
    out
}

/// The one-round config of [`auto_config`] as run `name` with policy `policy` and `asvp` lines.
fn variant_config(home: &Home, name: &str, asvp: &str, policy: &str) -> std::path::PathBuf {
    let text = std::fs::read_to_string(auto_config(home, 1, asvp)).unwrap();
    let path = home.root().join(format!("{name}.toml"));
    std::fs::write(
        &path,
        text.replace("name = \"check\"", &format!("name = \"{name}\""))
            .replace("policy = \"asvp\"", &format!("policy = \"{policy}\"")),
    )
    .unwrap();
    path
}

/// The config of [`run_auto`] (run "check"), with `asvp` lines added to its `[asvp]` table.
fn auto_config(home: &Home, rounds: usize, asvp: &str) -> std::path::PathBuf {
    let cfg = home.root().join("check.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"name = "check"
dataset = "two"
policy = "asvp"
seed = 0
initial = 120
batch = 20
rounds = {rounds}
strategy = "margin"
eval_model = "linear-probe"

[asvp]
trigger = "auto"
ft_threshold = 0
val_fraction = 0.25
{asvp}
[train]
epochs = 3
batch_size = 16
max_len = 32
"#
        ),
    )
    .unwrap();
    cfg
}

#[test]
fn a_cache_of_noise_is_aligned_in_round_0() {
    let Some((_tmp, home, ds)) = setup("a_cache_of_noise_is_aligned_in_round_0") else {
        return;
    };
    noise_v0(&home, &ds);
    let (progress, ledger) = run_auto(&home, 1);
    let check = &progress[0]["check"];
    assert_eq!(check["pays"], true, "round 0 check: {check}");
    assert_eq!(check["best"], "fine-tune");
    let (train, val) = (
        check["train_rows"].as_u64().unwrap(),
        check["val_rows"].as_u64().unwrap(),
    );
    assert_eq!(train + val, 120);
    assert!((15..=45).contains(&val), "a quarter held out, got {val}");
    // Noise predicts a two-way label at chance; the fine-tuned model well above it.
    assert!(check["probe_accuracy"].as_f64().unwrap() < 0.8, "{check}");
    assert!(check["gain"].as_f64().unwrap() > 0.15, "{check}");
    assert!(progress[0]["aligned"].as_str().is_some());
    assert_eq!(progress[0]["features"], "run:v1");
    // The refreshed version records the weights it was embedded with: the round-0 checkpoint's.
    let run_dir = home.runs().join("check");
    let manifest: Value = serde_json::from_str(
        &std::fs::read_to_string(run_dir.join("features/v1/manifest.json")).unwrap(),
    )
    .unwrap();
    let checkpoint = run_dir.join("checkpoints/round-000/model.safetensors");
    assert_eq!(
        manifest["source"]["weights_sha256"].as_str().unwrap(),
        proxal::util::sha256_file(&checkpoint).unwrap()
    );
    assert!(manifest["source"]["checkpoint"]
        .as_str()
        .unwrap()
        .ends_with("round-000"));
    // The batch bought after the alignment, against the one svpp buys on the same labels with the
    // same seeds on the cache before it (v0): the recorded overlap is their shared share.
    let svpp = variant_config(&home, "svpp", "", "svpp");
    proxal::al::run(&home, &svpp, RunOptions::default()).unwrap();
    let batch = |run: &str| -> std::collections::HashSet<u64> {
        read_jsonl(&home.runs().join(run).join("labelled.jsonl"))
            .iter()
            .filter(|l| l["round"] == 1)
            .map(|l| l["row"].as_u64().unwrap())
            .collect()
    };
    let (asvp_batch, svpp_batch) = (batch("check"), batch("svpp"));
    assert_eq!((asvp_batch.len(), svpp_batch.len()), (20, 20));
    let shared = asvp_batch.intersection(&svpp_batch).count() as f64 / 20.0;
    assert_eq!(
        progress[0]["pick_overlap"].as_f64(),
        Some(shared),
        "{}",
        progress[0]
    );
    // The overlap is booked as evaluation (its selection scores the 40 unlabelled rows), and only
    // after an alignment that feeds a selection.
    assert!(
        stage_records(&ledger, "evaluation", 0)
            .iter()
            .any(|r| r["rows"] == 40),
        "{ledger:?}"
    );
    assert!(progress[1].get("pick_overlap").is_none(), "{}", progress[1]);
    // The check's fine-tune trained on the non-validation rows only (whole epochs of them), was
    // booked as indicator, and the refresh used it without training again.
    let indicator = stage_records(&ledger, "indicator", 0);
    let trained: Vec<u64> = indicator
        .iter()
        .filter_map(|r| r["trained_rows"].as_u64())
        .filter(|&n| n > 0)
        .collect();
    assert_eq!(trained.len(), 1, "one candidate fine-tune: {indicator:?}");
    assert_eq!(trained[0] % train, 0, "trained on {} rows", trained[0]);
    assert!(stage_records(&ledger, "fine_tune", 0).is_empty());
    assert_eq!(stage_records(&ledger, "refresh", 0).len(), 1);
    // The gain was sure, so auto checks again in the next round, the final one: there the check
    // decides the model that ships, and is booked as `ship`.
    assert!(progress[1]["check"].is_object(), "{}", progress[1]);
    assert!(stage_records(&ledger, "indicator", 1).is_empty());
    assert!(stage_records(&ledger, "ship", 1)
        .iter()
        .any(|r| r["trained_rows"].as_u64().unwrap_or(0) > 0));
}

#[test]
fn a_cache_that_is_the_label_is_kept() {
    let Some((_tmp, home, ds)) = setup("a_cache_that_is_the_label_is_kept") else {
        return;
    };
    label_v0(&home, &ds);
    let (progress, ledger) = run_auto(&home, 1);
    let check = &progress[0]["check"];
    assert_eq!(check["pays"], false, "round 0 check: {check}");
    assert_eq!(check["probe_accuracy"], 1.0, "{check}");
    assert!(check["gain"].as_f64().unwrap() <= 0.0, "{check}");
    assert!(progress[0]["aligned"].is_null());
    assert_eq!(progress[0]["features"], "v0");
    assert!(stage_records(&ledger, "refresh", 0).is_empty());
    assert!(!stage_records(&ledger, "indicator", 0).is_empty());
    // The labels grew only 120 → 140, but the final round checks anyway: that check decides
    // what ships (booked as `ship`), and it keeps the cache too.
    let last = &progress[1]["check"];
    assert_eq!(last["pays"], false, "final check: {last}");
    assert_eq!(progress[1]["features"], "v0");
    assert!(stage_records(&ledger, "indicator", 1).is_empty());
    let ship = stage_records(&ledger, "ship", 1);
    assert!(
        ship.iter().any(|r| r["trained_rows"].as_u64() > Some(0)),
        "{ship:?}"
    );
    assert!(stage_records(&ledger, "refresh", 1).is_empty());
}

/// With `check_from = "cache"`, the check after an alignment fine-tunes the checkpoint that made
/// the cache, not the pretrained backbone: it cannot run without that checkpoint, and its record
/// names the version it continued from.
#[test]
fn a_check_from_the_cache_continues_the_checkpoint_that_made_it() {
    let Some((_tmp, home, ds)) =
        setup("a_check_from_the_cache_continues_the_checkpoint_that_made_it")
    else {
        return;
    };
    noise_v0(&home, &ds);
    let cfg = auto_config(&home, 1, "check_from = \"cache\"\n");
    let stop_after = |n| RunOptions {
        stop_after_rounds: n,
        ..Default::default()
    };
    proxal::al::run(&home, &cfg, stop_after(Some(1))).unwrap();
    let dir = home.runs().join("check");
    let progress = read_jsonl(&dir.join("progress.jsonl"));
    // Round 0 checks from the pretrained backbone (there is no fine-tuned one yet) and aligns.
    assert_eq!(progress[0]["check"]["pays"], true, "{}", progress[0]);
    assert!(
        progress[0]["check"].get("from").is_none(),
        "{}",
        progress[0]
    );
    assert_eq!(progress[0]["features"], "run:v1");
    // Take the round-0 checkpoint (which embedded run:v1) away: the next check cannot start.
    let weights = dir.join("checkpoints/round-000/model.safetensors");
    let aside = dir.join("aside.safetensors");
    std::fs::rename(&weights, &aside).unwrap();
    let err = proxal::al::run(&home, &cfg, stop_after(None)).unwrap_err();
    assert!(format!("{err:#}").contains("round-000"), "{err:#}");
    std::fs::rename(&aside, &weights).unwrap();
    let s = proxal::al::run(&home, &cfg, stop_after(None)).unwrap();
    assert!(s.resumed);
    let progress = read_jsonl(&dir.join("progress.jsonl"));
    assert_eq!(progress.len(), 2, "{progress:?}");
    let check = &progress[1]["check"];
    assert_eq!(check["from"], "run:v1", "{check}");
    assert!(
        check["candidates"].as_array().unwrap().len() == 1,
        "{check}"
    );
}

/// When the one check of a run is in its final round and pays, the winning method is trained
/// again on every label (no later check needs the validation rows kept out) and ships.
#[test]
fn a_final_check_that_pays_ships_a_model_trained_on_every_label() {
    let Some((_tmp, home, ds)) =
        setup("a_final_check_that_pays_ships_a_model_trained_on_every_label")
    else {
        return;
    };
    noise_v0(&home, &ds);
    let (progress, ledger) = run_auto(&home, 0);
    assert_eq!(progress.len(), 1);
    let check = &progress[0]["check"];
    assert_eq!(check["pays"], true, "{check}");
    let aligned = progress[0]["aligned"].as_str().unwrap();
    assert!(
        aligned.contains("trained again on all 120 labels"),
        "{aligned}"
    );
    assert_eq!(progress[0]["features"], "run:v1");
    // All of it is the shipped model's cost: the check's fine-tune on the non-validation rows,
    // the second one on all 120 labels (its own 10% early-stopping share held out, as every
    // fine-tune without a check's rows), and the refresh the shipped probe reads.
    assert!(stage_records(&ledger, "indicator", 0).is_empty());
    assert!(stage_records(&ledger, "refresh", 0).is_empty());
    let ship = stage_records(&ledger, "ship", 0);
    let tuned: Vec<u64> = ship
        .iter()
        .filter_map(|r| r["trained_rows"].as_u64())
        .filter(|&n| n > 0)
        .collect();
    let train = check["train_rows"].as_u64().unwrap();
    assert_eq!(tuned.len(), 2, "{ship:?}");
    assert_eq!(tuned[0] % train, 0, "check trained on {} rows", tuned[0]);
    assert_eq!(tuned[1] % 108, 0, "ship trained on {} rows", tuned[1]);
    assert!(
        ship.iter()
            .any(|r| r["embedded_rows"].as_u64() == Some(ds.len() as u64)),
        "a refresh booked as ship: {ship:?}"
    );
    assert!(
        progress[0]["test_accuracy"].as_f64().unwrap() > 0.8,
        "{}",
        progress[0]
    );
}

/// An annotation project with the auto trigger: `status` says the first `next` after labels
/// arrive will check whether aligning pays, and then shows what the check found.
#[test]
fn a_project_shows_its_alignment_check() {
    let Some((tmp, home, ds)) = setup("a_project_shows_its_alignment_check") else {
        return;
    };
    let (proj, gold) = auto_project(&tmp, &home, &ds);
    let p = proj.to_str().unwrap();
    let run = |args: &[&str]| ok(&home, args);
    let answer = |round: usize| {
        let answers = tmp.path().join(format!("answers-{round}.csv"));
        let mut w = csv::Writer::from_path(&answers).unwrap();
        w.write_record(["id", "label"]).unwrap();
        let batch = proj.join(format!("batches/round-{round:03}/batch.csv"));
        for r in csv::Reader::from_path(&batch).unwrap().records() {
            let id = r.unwrap()[0].to_string();
            w.write_record([id.as_str(), gold[&id].as_str()]).unwrap();
        }
        w.flush().unwrap();
        run(&["label", answers.to_str().unwrap(), "--project", p]);
    };
    run(&["next", "--project", p, "--quiet"]);
    answer(0);
    let before = run(&["status", "--project", p]);
    assert!(
        before.contains("check whether aligning pays (first alignment check)"),
        "{before}"
    );
    assert!(!before.contains("alignment check (round"), "{before}");
    run(&["next", "--project", p, "--quiet"]);
    let after = run(&["status", "--project", p]);
    let line = after
        .lines()
        .find(|l| l.starts_with("alignment check (round 0): probe "))
        .unwrap_or_else(|| panic!("no check line in:\n{after}"));
    assert!(line.contains("held-out labels"), "{line}");
    // The stopping signals of that round: no earlier labels to compare with yet.
    assert!(
        after.contains("stopping (round 0): κ —; no earlier predictions; uncertainty "),
        "{after}"
    );
    // With the next batch labelled (50 → 100 labels), what `next` will check follows from what
    // the check found: a gain surely above 0.02 means check again; anything else, the labels
    // doubled, check again (auto settles only after an alignment, and this was the first check).
    answer(1);
    let status = run(&["status", "--project", p]);
    let (gain, se) = {
        let inner = line.rsplit_once('(').unwrap().1;
        let (g, rest) = inner.split_once(" ± ").unwrap();
        let se = rest.split_once(')').unwrap().0;
        (g.parse::<f64>().unwrap(), se.parse::<f64>().unwrap())
    };
    let why = if gain - se >= 0.02 && gain > 0.0 {
        "the last check, at 50 labels, gained surely more than 0.02"
    } else {
        "labels grew 2.0× since the last check (50 → 100)"
    };
    assert!(
        status.contains(&format!("check whether aligning pays ({why}")),
        "{line}\n{status}"
    );
}

/// An annotation project (asvp, auto trigger, batches of 50) over the two-intent texts: the pool
/// without labels, the test rows with them. Returns its directory and the pool's gold labels by
/// id.
fn auto_project(
    tmp: &tempfile::TempDir,
    home: &Home,
    ds: &proxal::data::Dataset,
) -> (
    std::path::PathBuf,
    std::collections::HashMap<String, String>,
) {
    let data = tmp.path().join("pool.csv");
    let mut w = csv::Writer::from_path(&data).unwrap();
    w.write_record(["id", "text", "label", "split"]).unwrap();
    let mut gold = std::collections::HashMap::new();
    for i in 0..ds.len() {
        let label = ds.label_map.name(ds.labels[i].unwrap());
        let (label, split) = match ds.splits[i] {
            Split::Test => (label, "test"),
            _ => {
                gold.insert(ds.ids[i].clone(), label.to_string());
                ("", "train")
            }
        };
        w.write_record([ds.ids[i].as_str(), ds.texts[i].as_str(), label, split])
            .unwrap();
    }
    w.flush().unwrap();
    let proj = tmp.path().join("proj");
    let args = [
        "init",
        proj.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--id-col",
        "id",
        "--label-col",
        "label",
        "--split-col",
        "split",
        "--labels",
        "card_arrival,exchange_rate",
        "--policy",
        "asvp",
        "--batch",
        "50",
    ];
    ok(home, &args);
    let cfg = std::fs::read_to_string(proj.join("config.toml")).unwrap();
    let cfg = cfg
        .replace("trigger = \"schedule\"", "trigger = \"auto\"")
        .replace("ft_threshold = 800", "ft_threshold = 0")
        .replace("max_len = 64", "max_len = 32");
    std::fs::write(proj.join("config.toml"), cfg).unwrap();
    (proj, gold)
}

/// With one class labelled, `next` can fit no model: it picks at random and checks nothing, and
/// `status` says so instead of announcing an alignment check.
#[test]
fn a_project_with_one_class_labelled_announces_a_random_batch() {
    let Some((tmp, home, ds)) = setup("a_project_with_one_class_labelled_announces_a_random_batch")
    else {
        return;
    };
    let (proj, _) = auto_project(&tmp, &home, &ds);
    let p = proj.to_str().unwrap();
    let run = |args: &[&str]| ok(&home, args);
    run(&["next", "--project", p, "--quiet"]);
    // Every row of the first batch labelled with the same intent.
    let answers = tmp.path().join("answers.csv");
    let mut w = csv::Writer::from_path(&answers).unwrap();
    w.write_record(["id", "label"]).unwrap();
    for r in csv::Reader::from_path(proj.join("batches/round-000/batch.csv"))
        .unwrap()
        .records()
    {
        w.write_record([&r.unwrap()[0], "card_arrival"]).unwrap();
    }
    w.flush().unwrap();
    run(&["label", answers.to_str().unwrap(), "--project", p]);
    let status = run(&["status", "--project", p]);
    assert!(
        status.contains("random sampling (1 class labelled so far: a model needs two)"),
        "{status}"
    );
    assert!(!status.contains("check whether aligning pays"), "{status}");
    run(&["next", "--project", p, "--quiet"]);
    let batch = std::fs::read_to_string(proj.join("batches/round-001/manifest.json")).unwrap();
    assert!(
        batch.contains("random sample (1 class labelled so far"),
        "{batch}"
    );
}

/// With `val_source = "random"`, every batch after the initial set opens with a random share
/// (`val_fraction`) that joins the checks' validation rows, and the strategy picks the rest:
/// exactly the rows it ranks highest outside that share.
#[test]
fn random_validation_picks_open_every_batch_and_validate_the_checks() {
    let Some((_tmp, home, ds)) =
        setup("random_validation_picks_open_every_batch_and_validate_the_checks")
    else {
        return;
    };
    noise_v0(&home, &ds);
    // The same run with the validation rows from the labels ("check") and at random ("random").
    let (labels_progress, _) = run_auto(&home, 1);
    let cfg = variant_config(&home, "random", "val_source = \"random\"\n", "asvp");
    proxal::al::run(&home, &cfg, RunOptions::default()).unwrap();
    let dir = home.runs().join("random");
    let progress = read_jsonl(&dir.join("progress.jsonl"));
    // Round 0 validates on the same hash-chosen share of the initial set either way.
    let (first, last) = (&progress[0]["check"], &progress[1]["check"]);
    assert_eq!(first, &labels_progress[0]["check"]);
    // Batch 1 (20 rows) opens with round(20 × 0.25) = 5 random validation picks.
    let val = |c: &Value| c["val_rows"].as_u64().unwrap();
    assert_eq!(val(last), val(first) + 5, "{first}\n{last}");
    assert_eq!(last["train_rows"].as_u64().unwrap() + val(last), 140);
    let batch = |run: &str| -> Vec<u64> {
        read_jsonl(&home.runs().join(run).join("labelled.jsonl"))
            .iter()
            .filter(|l| l["round"] == 1)
            .map(|l| l["row"].as_u64().unwrap())
            .collect()
    };
    let (margin_only, with_random) = (batch("check"), batch("random"));
    assert_eq!((margin_only.len(), with_random.len()), (20, 20));
    // The strategy's 15 are the top of its ranking once the 5 random rows are out: a subset of
    // the 20 it picks when it picks them all.
    let strategy_part = &with_random[5..];
    assert!(
        strategy_part.iter().all(|r| margin_only.contains(r)),
        "{strategy_part:?} not within {margin_only:?}"
    );
    // The overlap after the round-0 alignment leaves the random picks out of the comparison.
    let overlap = progress[0]["pick_overlap"].as_f64().unwrap();
    assert!(
        (overlap * 15.0 - (overlap * 15.0).round()).abs() < 1e-9,
        "{overlap}"
    );
}

#[test]
fn a_run_on_an_f16_cache_refreshes_it_in_f16() {
    let Some((_tmp, home, ds)) = setup("a_run_on_an_f16_cache_refreshes_it_in_f16") else {
        return;
    };
    noise_v0_as(&home, &ds, proxal::features::Dtype::F16);
    let (progress, _) = run_auto(&home, 1);
    // The noise cache is aligned in round 0 (as in the f32 test above) and round 1 selects on
    // the refreshed version, which keeps v0's dtype.
    assert_eq!(progress[0]["features"], "run:v1", "{}", progress[0]);
    assert_eq!(progress.len(), 2);
    let manifest: Value = serde_json::from_str(
        &std::fs::read_to_string(home.runs().join("check/features/v1/manifest.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(manifest["dtype"], "f16");
    assert_eq!(manifest["complete"], true);
}

#[test]
fn a_run_finishes_a_half_written_f16_v0_in_f16() {
    let Some((_tmp, home, _ds)) = setup("a_run_finishes_a_half_written_f16_v0_in_f16") else {
        return;
    };
    // `proxal embed --dtype f16`, then its manifest cut back to no durable chunk, as a kill
    // before the first chunk leaves it.
    ok(
        &home,
        &["embed", "--data", "two", "--dtype", "f16", "--quiet"],
    );
    let mpath = home.features().join("two/v0/manifest.json");
    let mut m: Value = serde_json::from_str(&std::fs::read_to_string(&mpath).unwrap()).unwrap();
    m["chunks"] = Value::Array(vec![]);
    m["complete"] = Value::Bool(false);
    std::fs::write(&mpath, serde_json::to_vec_pretty(&m).unwrap()).unwrap();
    let cfg = variant_config(&home, "svpp16", "", "svpp");
    ok(&home, &["run", cfg.to_str().unwrap(), "--quiet"]);
    let m: Value = serde_json::from_str(&std::fs::read_to_string(&mpath).unwrap()).unwrap();
    assert_eq!(
        (m["dtype"].as_str(), m["complete"].as_bool()),
        (Some("f16"), Some(true))
    );
}
