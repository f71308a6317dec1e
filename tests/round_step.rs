//! One round step, two drivers: a simulated run (`proxal run`, gold labels bought from the
//! simulated oracle) and an annotation project (`proxal next` / `proxal label`, a scripted
//! annotator giving the same gold labels) over the same texts, config and seed pick the same rows
//! in every round.
mod common;

use proxal::data::{import_builtin, Builtin, Dataset, Split};
use proxal::home::Home;
use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

fn ok(home: &Path, args: &[&str]) -> String {
    let o = Command::new(env!("CARGO_BIN_EXE_proxal"))
        .env_remove("PROXAL_FAULT")
        .arg("--home")
        .arg(home)
        .args(args)
        .output()
        .unwrap();
    let (out, err) = (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    );
    assert!(o.status.success(), "proxal {args:?} failed:\n{out}\n{err}");
    out
}

#[test]
fn simulated_run_and_annotation_project_pick_the_same_rows() {
    let Some(assets) = common::assets("simulated_run_and_annotation_project_pick_the_same_rows")
    else {
        return;
    };
    std::env::set_var("PROXAL_ASSETS", &assets);
    let tmp = tempfile::tempdir().unwrap();
    let src = Home::new(tmp.path().join("src"));
    import_builtin(&src, Builtin::Banking77, None).unwrap();
    let ds = Dataset::load(&src, "banking77").unwrap();
    // 240 pool texts and 120 labelled test texts, in table order. The run's file has every
    // label; the project's only the test rows' (its pool labels come from the annotator).
    let mut sim = csv::Writer::from_path(tmp.path().join("sim.csv")).unwrap();
    let mut proj_csv = csv::Writer::from_path(tmp.path().join("proj.csv")).unwrap();
    for w in [&mut sim, &mut proj_csv] {
        w.write_record(["id", "text", "label", "split"]).unwrap();
    }
    let mut gold: HashMap<String, String> = HashMap::new();
    let (mut n_pool, mut n_test) = (0, 0);
    for i in 0..ds.len() {
        let label = ds.label_map.name(ds.labels[i].unwrap()).to_string();
        let id = format!("b77-{}", ds.ids[i]);
        let split = match ds.splits[i] {
            Split::Pool if n_pool < 240 => {
                n_pool += 1;
                "train"
            }
            Split::Test if n_test < 120 => {
                n_test += 1;
                "test"
            }
            _ => continue,
        };
        sim.write_record([id.as_str(), &ds.texts[i], &label, split])
            .unwrap();
        let shown = if split == "test" { label.as_str() } else { "" };
        proj_csv
            .write_record([id.as_str(), &ds.texts[i], shown, split])
            .unwrap();
        gold.insert(id, label);
    }
    sim.flush().unwrap();
    proj_csv.flush().unwrap();
    drop((sim, proj_csv));

    // The simulated run: svpp, margin, 40 + 2 × 40 labels.
    let home = tmp.path().join("home");
    let h = home.as_path();
    ok(
        h,
        &[
            "data",
            "import",
            tmp.path().join("sim.csv").to_str().unwrap(),
            "--name",
            "sim",
            "--text-col",
            "text",
            "--label-col",
            "label",
            "--split-col",
            "split",
            "--id-col",
            "id",
        ],
    );
    let sim_ds = Dataset::load(&Home::new(&home), "sim").unwrap();
    let cfg = tmp.path().join("run.toml");
    std::fs::write(
        &cfg,
        "name = \"sim-svpp\"\ndataset = \"sim\"\npolicy = \"svpp\"\nseed = 0\ninitial = 40\nbatch = 40\nrounds = 2\nstrategy = \"margin\"\nproxy = \"logreg\"\neval_every = 1\neval_model = \"linear-probe\"\n",
    )
    .unwrap();
    ok(h, &["run", cfg.to_str().unwrap()]);
    let mut run_picks: Vec<Vec<String>> = vec![Vec::new(); 3];
    for line in std::fs::read_to_string(Home::new(&home).runs().join("sim-svpp/labelled.jsonl"))
        .unwrap()
        .lines()
    {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        run_picks[v["round"].as_u64().unwrap() as usize].push(v["id"].as_str().unwrap().into());
    }

    // The annotation project: the same policy, strategy, batch and seed, labelled by a script.
    let proj = tmp.path().join("proj");
    let p = proj.to_str().unwrap();
    let labels_arg = sim_ds.label_map.names.join(",");
    ok(
        h,
        &[
            "init",
            p,
            "--data",
            tmp.path().join("proj.csv").to_str().unwrap(),
            "--id-col",
            "id",
            "--label-col",
            "label",
            "--split-col",
            "split",
            "--labels",
            &labels_arg,
            "--policy",
            "svpp",
            "--strategy",
            "margin",
            "--batch",
            "40",
            "--seed",
            "0",
        ],
    );
    let mut proj_picks: Vec<Vec<String>> = Vec::new();
    for round in 0..3 {
        ok(h, &["next", "--project", p, "--quiet"]);
        let batch = proj.join(format!("batches/round-{round:03}/batch.csv"));
        let ids: Vec<String> = csv::Reader::from_path(&batch)
            .unwrap()
            .records()
            .map(|r| r.unwrap()[0].to_string())
            .collect();
        // Answer in reverse order: the round step sees the labels in pick order regardless.
        let answers = tmp.path().join(format!("answers-{round}.csv"));
        let mut w = csv::Writer::from_path(&answers).unwrap();
        w.write_record(["id", "label"]).unwrap();
        for id in ids.iter().rev() {
            w.write_record([id.as_str(), gold[id].as_str()]).unwrap();
        }
        w.flush().unwrap();
        ok(h, &["label", answers.to_str().unwrap(), "--project", p]);
        proj_picks.push(ids);
    }
    assert_eq!(run_picks.iter().map(Vec::len).collect::<Vec<_>>(), [40; 3]);
    for round in 0..3 {
        assert_eq!(
            proj_picks[round], run_picks[round],
            "round {round}: the project and the simulated run picked different rows"
        );
    }
}
