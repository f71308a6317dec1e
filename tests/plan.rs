//! `proxal plan` from the command line: rates measured now on a sample of an imported dataset,
//! and the one-line errors of a plan it cannot make. (The projection itself is checked against
//! hand-computed schedules in `src/plan.rs`, and against the committed suite runs by
//! `make plan-check`.)
mod common;
#[path = "common/two_intents.rs"]
mod two_intents;

use two_intents::setup;

#[test]
fn a_plan_measures_its_rates_on_the_users_texts() {
    let Some((_tmp, home, _ds)) = setup("a_plan_measures_its_rates_on_the_users_texts") else {
        return;
    };
    let plan = |args: &[&str]| {
        let mut all = vec!["plan", "--pool", "160", "--test", "60", "--batch", "20"];
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
    let cols = |policy: &str| -> Vec<String> {
        let row = out
            .lines()
            .find(|l| l.starts_with(&format!("| {policy} |")))
            .unwrap_or_else(|| panic!("no {policy} row in:\n{out}"));
        row.split('|')
            .skip(2)
            .map(|c| c.trim().to_string())
            .collect()
    };
    let compute = |policy: &str| -> f64 { cols(policy)[0].parse().unwrap() };
    // 20 initial labels + 2 rounds of 20. svpp embeds the 220 rows once and never fine-tunes;
    // asvp also aligns in round 2 (60 labels, a second pass); standard fine-tunes on 20, 40 and
    // 60 labels and re-embeds after each.
    assert_eq!(cols("svpp")[2..4], ["220", "0"], "{out}");
    assert_eq!(cols("asvp")[2..4], ["440", "60"], "{out}");
    assert_eq!(cols("standard")[2..4], ["660", "120"], "{out}");
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
