//! `proxal init`: import the pool, write the policy, store labels already in the file.
use super::*;

/// What `proxal init` needs.
#[derive(Debug, Clone)]
pub struct InitOptions {
    pub data: PathBuf,
    pub text_col: String,
    pub id_col: Option<String>,
    /// Labels already in the file: labelled pool rows become the first batch; labelled
    /// test/dev rows are held out to measure the model.
    pub label_col: Option<String>,
    pub split_col: Option<String>,
    /// Hold out a stratified, seeded share of the labelled rows to measure the model.
    pub test_split: Option<crate::data::TestSplit>,
    /// The label set (file labels are added after these).
    pub labels: Vec<String>,
    pub policy: PolicyKind,
    pub strategy: String,
    pub batch: usize,
    pub seed: u64,
    pub model_dir: PathBuf,
}

pub(super) fn config_text(name: &str, o: &InitOptions) -> String {
    let model = o.model_dir.display().to_string();
    format!(
        r#"# proxal annotation project, made by `proxal init`. `proxal next` reads this file each time.
name = {name}
dataset = "{DATASET}"
policy = "{policy}"        # random | svpp | asvp | standard
seed = {seed}
initial = {batch}          # size of the first batch (random: nothing is labelled yet)
batch = {batch}            # batch size of `proxal next` (--batch overrides it)
rounds = 0               # unused by projects: label until you stop
strategy = "{strategy}"
proxy = "logreg"
eval_every = 1
eval_model = "linear-probe"  # measured on held-out labelled rows, if the data has any
model_dir = {model}

[asvp]
trigger = "schedule"     # schedule | indicator | auto: auto checks in round 0 and each time the
                         # labels double whether a fine-tune beats the probe on held-out labels,
                         # and aligns only when it does (docs/ALIGNMENT.md)
align_every = 3          # schedule: fine-tune on the labels and refresh the cache every 3 rounds
method = "threshold"     # threshold | validate (LP-FT or full fine-tune, chosen on held-out labels)
ft_threshold = 800       # threshold: LP-FT below this many labels, full fine-tune above
check_from = "cache"     # checks after an alignment continue the model that made the cache

[train]
epochs = 3
batch_size = 16
max_len = 64
"#,
        name = toml::Value::String(name.to_string()),
        policy = o.policy.as_str(),
        seed = o.seed,
        batch = o.batch,
        strategy = o.strategy,
        model = toml::Value::String(model),
    )
}

/// What `init` made.
#[derive(Debug)]
pub struct InitReport {
    pub dir: PathBuf,
    pub pool: usize,
    pub held_out: usize,
    pub seed_labels: usize,
    pub label_set: Vec<String>,
}

/// `proxal init`: import the pool, write the policy, store labels already in the file.
pub fn init(dir: &Path, o: &InitOptions) -> Result<InitReport> {
    if Project::config_path(dir).exists() {
        bail!(
            "{} is already a proxal project (config.toml exists)",
            dir.display()
        );
    }
    if o.batch == 0 {
        bail!("--batch must be at least 1");
    }
    crate::strategy::from_name(&o.strategy)?;
    crate::backbone::ModelFiles::in_dir(&o.model_dir).with_context(|| {
        format!(
            "no backbone in {} (run `proxal assets fetch`, or pass --model-dir)",
            o.model_dir.display()
        )
    })?;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let home = Home::new(dir);
    let mut opts = ImportOptions::new(DATASET, &o.text_col);
    opts.id_col = o.id_col.clone();
    opts.label_col = o.label_col.clone();
    opts.split_col = o.split_col.clone();
    opts.test_split = o.test_split;
    import_file(&home, &o.data, &opts)?;
    let mut ds = Dataset::load(&home, DATASET)?;
    // The label set: the given labels first (their order is the class order), then the file's.
    let mut names: Vec<String> = Vec::new();
    for l in o.labels.iter().map(|l| l.trim()) {
        if l.is_empty() || names.iter().any(|n| n == l) {
            continue;
        }
        if labels::looks_like_formula(l) || l.len() > labels::MAX_FIELD_BYTES {
            bail!("label '{l}' is not allowed (empty, too long, or starts like a spreadsheet formula)");
        }
        names.push(l.to_string());
    }
    for n in &ds.label_map.names {
        if !names.contains(n) {
            names.push(n.clone());
        }
    }
    if names != ds.label_map.names {
        let old = ds.label_map.clone();
        ds.labels = ds
            .labels
            .iter()
            .map(|l| l.map(|i| names.iter().position(|n| n == old.name(i)).unwrap() as u32))
            .collect();
        ds.label_map = LabelMap {
            names: names.clone(),
        };
        ds.save(&Dataset::dir(&home, DATASET), &o.data.display().to_string())?;
    }
    // Labelled pool rows are the first batch.
    let seeds = ds.labelled_rows_of(Split::Pool);
    let name: String = dir
        .canonicalize()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "project".into())
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect();
    let text = config_text(&name, o);
    let cfg: RunConfig = toml::from_str(&text).context("internal error: bad project config")?;
    cfg.validate()?;
    let p = Project {
        dir: dir.to_path_buf(),
        home: home.clone(),
        cfg,
    };
    if !seeds.is_empty() {
        let recs: Vec<LabelRecord> = seeds
            .iter()
            .map(|&r| LabelRecord {
                round: 0,
                row: r,
                id: ds.ids[r].clone(),
                label: ds.label_map.name(ds.labels[r].unwrap()).to_string(),
            })
            .collect();
        p.store_labels(&recs)?;
        p.write_batch(&Batch {
            round: 0,
            created_unix: now_unix(),
            selected_by: format!("labels already in {}", o.data.display()),
            work: None,
            rows: seeds
                .iter()
                .map(|&r| BatchRow {
                    row: r,
                    id: ds.ids[r].clone(),
                    score: 0.0,
                    predicted: None,
                    confidence: None,
                })
                .collect(),
            closed: None,
        })?;
    }
    // The config is written last: a project exists once it does.
    util::atomic_write(&Project::config_path(dir), text.as_bytes())?;
    let held_out = ds.labelled_rows_of(Split::Test).len();
    Ok(InitReport {
        dir: dir.to_path_buf(),
        pool: ds.count(Split::Pool),
        held_out,
        seed_labels: seeds.len(),
        label_set: names,
    })
}
