//! Stopping criteria (docs/STOPPING.md) in a run, where the answer is known: svpp on the
//! two-intent fixture with a v0 cache made of the label. Every proxy predicts the stop set
//! perfectly from the first labels on, so κ is 1 in every round with earlier labels, the window
//! of 3 is full in round 3, and a run that stops on stabilizing predictions stops there: it
//! scores the shipped model, buys no further batch, and a second `proxal run` does nothing more.
mod common;
#[path = "common/two_intents.rs"]
mod two_intents;

use two_intents::{label_v0, read_jsonl, setup, stage_records};

#[test]
fn a_run_stops_when_its_predictions_stabilize() {
    let Some((_tmp, home, ds)) = setup("a_run_stops_when_its_predictions_stabilize") else {
        return;
    };
    label_v0(&home, &ds);
    let cfg = home.root().join("stop.toml");
    std::fs::write(
        &cfg,
        r#"name = "stop"
dataset = "two"
policy = "svpp"
initial = 20
batch = 10
rounds = 10
strategy = "margin"
eval_model = "linear-probe"
eval_every = 2

[stopping]
stop_set = 100
stop_on = ["stabilizing-predictions"]
"#,
    )
    .unwrap();
    let args = ["run", cfg.to_str().unwrap(), "--quiet"];
    let (code, out, err) = common::proxal(home.root(), &args);
    assert_eq!(code, Some(0), "proxal run failed:\n{out}\n{err}");
    let dir = home.runs().join("stop");
    let progress = read_jsonl(&dir.join("progress.jsonl"));
    assert_eq!(progress.len(), 4, "stopped after round 3: {progress:?}");
    let stop = |r: usize| &progress[r]["stop"];
    assert!(stop(0)["kappa"].is_null(), "{}", stop(0));
    for r in 1..=3 {
        assert_eq!(stop(r)["kappa"], 1.0, "round {r}: {}", stop(r));
        assert_eq!(stop(r)["changed"], 0);
        assert_eq!(stop(r)["stop_rows"], 100);
        assert_eq!(stop(r)["features"], "v0");
    }
    // Round 1 and 2: the window of 3 is not full; but no prediction changed, which meets
    // classification change (not a criterion this run stops on).
    assert!(stop(2)["window_kappa"].is_null());
    assert_eq!(stop(2)["met"][0], "classification-change");
    assert_eq!(stop(2)["stopped"], false);
    assert_eq!(stop(3)["window_kappa"], 1.0);
    assert!(stop(3)["met"]
        .as_array()
        .unwrap()
        .contains(&"stabilizing-predictions".into()));
    assert_eq!(stop(3)["stopped"], true);
    // The last round scored the shipped model on 50 labels (evaluating every second round, only
    // because it was the last) and bought nothing after it.
    let rounds = read_jsonl(&dir.join("rounds.jsonl"));
    let evaluated: Vec<u64> = rounds
        .iter()
        .map(|r| r["round"].as_u64().unwrap())
        .collect();
    assert_eq!(evaluated, [0, 2, 3]);
    assert_eq!(rounds.last().unwrap()["labels"], 50);
    assert_eq!(read_jsonl(&dir.join("labelled.jsonl")).len(), 50);
    // The signals' two proxy fits are one `indicator` record (the run stops on them).
    let ledger = read_jsonl(&dir.join("ledger.jsonl"));
    assert_eq!(stage_records(&ledger, "indicator", 3).len(), 1);
    assert!(stage_records(&ledger, "labelling", 4).is_empty());
    // A stopped run is finished: running it again changes nothing.
    let (code, out, err) = common::proxal(home.root(), &args);
    assert_eq!(code, Some(0), "{out}\n{err}");
    assert_eq!(read_jsonl(&dir.join("progress.jsonl")).len(), 4);
    assert_eq!(read_jsonl(&dir.join("labelled.jsonl")).len(), 50);
}
