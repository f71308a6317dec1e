//! `proxal plan` from the command line: rates measured now on a sample of an imported dataset,
//! and the one-line errors of a plan it cannot make. (The projection itself is checked against
//! hand-computed schedules in `src/plan.rs`, and against the committed suite runs by
//! `make plan-check`.)
mod common;
#[path = "common/two_intents.rs"]
mod two_intents;

use two_intents::setup;

/// The cells after the policy's name in its row of a plan's table (compute s, compute $, rows
/// embedded, labels fine-tuned, …).
fn policy_row(out: &str, policy: &str) -> Vec<String> {
    out.lines()
        .find(|l| l.starts_with(&format!("| {policy} |")))
        .unwrap_or_else(|| panic!("no {policy} row in:\n{out}"))
        .split('|')
        .skip(2)
        .map(|c| c.trim().to_string())
        .collect()
}

#[test]
fn a_plan_measures_its_rates_on_the_users_texts() {
    let Some((_tmp, home, _ds)) = setup("a_plan_measures_its_rates_on_the_users_texts") else {
        return;
    };
    let plan = |args: &[&str]| {
        // A projected pool of 1,600 rows: the embedding passes that set the policies apart
        // outweigh asvp's LogME and alignment check, whose share grew as fine-tuning got
        // faster (at 160 rows standard and asvp came within the noise of measured rates).
        let mut all = vec!["plan", "--pool", "1600", "--test", "60", "--batch", "20"];
        all.extend_from_slice(args);
        common::proxal(home.root(), &all)
    };
    let (code, out, err) = plan(&["--labels", "60", "--measure-on", "two", "--sample", "32"]);
    assert_eq!(code, Some(0), "{out}\n{err}");
    assert!(
        out.contains("rates from measured now on 32 texts of dataset 'two'"),
        "{out}"
    );
    // Every policy has a row: compute (s), compute ($), rows embedded, labels fine-tuned, …
    let cols = |policy: &str| policy_row(&out, policy);
    let compute = |policy: &str| -> f64 { cols(policy)[0].parse().unwrap() };
    // 20 initial labels + 2 rounds of 20. svpp embeds the 1,660 rows once and never fine-tunes;
    // asvp also aligns in round 2 (60 labels, a second pass); standard fine-tunes on 20, 40 and
    // 60 labels and re-embeds after each.
    assert_eq!(cols("svpp")[2..4], ["1660", "0"], "{out}");
    assert_eq!(cols("asvp")[2..4], ["3320", "60"], "{out}");
    assert_eq!(cols("standard")[2..4], ["4980", "120"], "{out}");
    assert!(compute("standard") > compute("asvp"), "{out}");
    assert!(compute("asvp") > compute("svpp"), "{out}");
    assert!(compute("random") > 0.0);
    // Errors: one line, naming what to give.
    let (code, _, err) = plan(&["--labels", "60"]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("--rates-from") && err.contains("--measure-on"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    let (code, _, err) = plan(&["--labels", "55", "--measure-on", "two"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("whole batches"), "{err}");
}

/// Plans from the committed suite ledgers (no model needed): the device the rates come from,
/// the model every policy ships, the plot, and `--check` with rates from other runs.
#[test]
fn a_plan_from_ledgers_prices_the_device_the_shipped_model_and_draws_the_savings() {
    let tmp = tempfile::tempdir().unwrap();
    let runs = common::repo_root().join("experiments/results/suite-runs");
    let run = |name: &str| runs.join(name).display().to_string();
    let (asvp, standard) = (
        run("suite-banking77-asvp-margin-s0"),
        run("suite-banking77-standard-margin-s0"),
    );
    let plan = |args: &[&str]| {
        let mut all = vec![
            "plan",
            "--pool",
            "3000",
            "--test",
            "1000",
            "--labels",
            "1000",
            "--rates-from",
        ];
        all.extend_from_slice(&[asvp.as_str(), standard.as_str()]);
        all.extend_from_slice(args);
        common::proxal(tmp.path(), &all)
    };
    let (code, probe, err) = plan(&[]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        probe.contains("(cpu records)") && probe.contains("$0.085/h (cpu)"),
        "{probe}"
    );
    // Shipping a fine-tuned model: svpp and random pay a fine-tune on all 1,000 labels; asvp
    // (aligning in round 4, the last) and standard ship their own.
    let (code, tuned, err) = plan(&["--ship", "fine-tuned"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(policy_row(&probe, "svpp")[3], "0");
    assert_eq!(policy_row(&tuned, "svpp")[3], "1000");
    assert_eq!(policy_row(&tuned, "random")[3], "1000");
    assert_eq!(policy_row(&tuned, "asvp")[3], policy_row(&probe, "asvp")[3]);
    let secs = |out: &str, p: &str| policy_row(out, p)[0].parse::<f64>().unwrap();
    assert!(
        secs(&tuned, "svpp") > secs(&probe, "svpp") + 30.0,
        "{tuned}"
    );
    // A device the ledgers never ran on is a one-line error naming what they ran on.
    let (code, _, err) = plan(&["--device", "cuda"]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("cpu:2-core") && err.contains("--device cpu"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    // The plot: the saving of asvp and svpp at three label prices over pool sizes.
    let svg = tmp.path().join("savings.svg");
    let (code, _, err) = plan(&["--plot", svg.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(
        text.starts_with("<svg") || text.contains("<svg"),
        "not an SVG"
    );
    for label in [
        "asvp, $0.10/label",
        "svpp, $1.00/label",
        "pool rows (log scale)",
    ] {
        assert!(text.contains(label), "no '{label}' in the plot");
    }
    let (code, _, err) = plan(&["--plot", tmp.path().join("savings.txt").to_str().unwrap()]);
    assert_eq!(code, Some(1));
    assert!(err.contains(".svg or .png"), "{err}");
    // --check with rates from other runs: the two runs projected from one another's ledgers.
    let (code, out, err) = common::proxal(
        tmp.path(),
        &["plan", "--check", &asvp, "--rates-from", &standard, &asvp],
    );
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains("| suite-banking77-asvp-margin-s0 | asvp |"),
        "{out}"
    );
    assert!(out.contains("given with --rates-from"), "{out}");
}
