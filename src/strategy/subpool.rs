//! Candidate subpooling: run an expensive strategy (BADGE, core-set, Cluster-Margin) on a
//! subpool of candidates instead of the whole unlabelled pool, once the pool is too large for
//! an exhaustive round.
//!
//! The subpool is the union of
//! * **neighbours** (SEALS, Coleman et al. 2022): the `neighbours` nearest unlabelled rows of
//!   each labelled row (a seeded sample of `max_queries` of them beyond that), found through an
//!   IVF index built once per feature version (`ivf.rs`). Recomputed each round from the labelled
//!   set, so a run resumed after a kill builds the same subpool as one that was not stopped; a
//!   query reads `nprobe` cells of about √n rows, so the pass costs min(n, queries · nprobe · √n)
//!   rows;
//! * **class anchors** (AnchorAL, Lesci & Vlachos 2024): each round `anchors` labelled rows of
//!   every class (drawn afresh) and their `anchor_neighbours` nearest unlabelled rows, so the
//!   regions of rare classes are in the subpool too (needs the round's labels);
//! * **uncertain** rows: the `uncertain` lowest-margin rows of the proxy over the whole pool,
//!   for the strategies that use the proxy (BADGE, Cluster-Margin; not core-set, which does not
//!   read the proxy: its subpool holds only what its own criterion sees). The one part whose
//!   cost grows with the pool: it is a margin round (8 s at 10M f16 rows); `uncertain = 0`
//!   leaves it out;
//! * **coverage**: `coverage` seeded random candidates, so diversity-seeking strategies still
//!   see every region of the pool.
//!
//! `Mode::Auto` (what `badge`, `coreset` and `cluster-margin` are by name) keeps the exhaustive
//! strategy while the round has at most `above` candidates; `subpool:<name>` always subpools and
//! `exhaustive:<name>` never does. The strategy itself is built fresh for each subpooled round
//! (Cluster-Margin clusters that round's subpool; a clustering of the whole pool is what
//! subpooling avoids).
use super::ivf::{fingerprint, IvfConfig, IvfIndex};
use super::{select_by_measure, Measure, Pick, Round, Strategy};
use anyhow::Result;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// The index's k-means seed: fixed, so the index depends on the features alone.
pub const INDEX_SEED: u64 = 0;

/// A run's `[subpool]` table (every key optional).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SubpoolConfig {
    /// `Mode::Auto`: exhaustive while the round has at most this many candidates. 250,000:
    /// exhaustive core-set took 12.2 s at 100,000 rows and grows about linearly (58-227 s at
    /// 1M), BADGE 8.0 s at 100,000 (`bench-select.md`), so both stay near a 30 s round up to
    /// here.
    pub above: usize,
    /// Nearest unlabelled rows kept per labelled row (SEALS).
    pub neighbours: usize,
    /// Labelled rows queried per round (a seeded sample of them beyond this).
    pub max_queries: usize,
    /// Class anchors (AnchorAL): labelled rows drawn per class each round …
    pub anchors: usize,
    /// … and the nearest unlabelled rows kept per anchor.
    pub anchor_neighbours: usize,
    /// Cells scanned per query.
    pub nprobe: usize,
    /// Lowest-margin rows of the whole pool added to the subpool (0: no scan of the pool).
    pub uncertain: usize,
    /// Seeded random candidates added to the subpool.
    pub coverage: usize,
    /// The index (`[subpool.ivf]`).
    pub ivf: IvfConfig,
}

impl Default for SubpoolConfig {
    fn default() -> Self {
        SubpoolConfig {
            above: 250_000,
            neighbours: 10,
            max_queries: 2_000,
            anchors: 2,
            anchor_neighbours: 20,
            nprobe: 2,
            uncertain: 20_000,
            coverage: 10_000,
            ivf: IvfConfig::default(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Subpool only above `SubpoolConfig::above` candidates.
    Auto,
    /// Always subpool.
    Always,
}

/// What the last round did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct SubpoolStats {
    /// The round ran the exhaustive strategy (no subpool).
    pub exhaustive: bool,
    pub candidates: usize,
    pub subpool: usize,
    pub neighbours: usize,
    /// Class anchors queried this round, and the rows their neighbours added (before overlaps).
    pub anchors: usize,
    pub anchored: usize,
    pub uncertain: usize,
    pub coverage: usize,
    pub queries: usize,
    /// Seconds building (or loading) the index this round (0 when it was in memory).
    pub index_seconds: f64,
    pub cells: usize,
    /// Seconds assembling the subpool (neighbour queries, margin scan, sampling).
    pub subpool_seconds: f64,
    /// Seconds the strategy took on the subpool.
    pub inner_seconds: f64,
}

pub struct Subpool {
    /// The wrapped strategy's name (a fresh one is built for every subpooled round).
    name: String,
    mode: Mode,
    pub config: SubpoolConfig,
    /// The strategy of exhaustive rounds (kept across rounds, as without the wrapper).
    inner: Box<dyn Strategy>,
    index: Option<Arc<IvfIndex>>,
    pub last: Option<SubpoolStats>,
    /// The last subpooled round's candidates (sorted).
    pub last_pool: Vec<usize>,
}

impl Subpool {
    /// Wrap the strategy called `name` (checked by building it), with the default settings.
    pub fn new(name: &str, mode: Mode) -> Result<Subpool> {
        Subpool::new_with(name, mode, &SubpoolConfig::default())
    }

    /// [`Subpool::new`] with these settings.
    pub fn new_with(name: &str, mode: Mode, config: &SubpoolConfig) -> Result<Subpool> {
        Ok(Subpool {
            inner: super::base_from_name(name, config)?,
            name: name.to_string(),
            mode,
            config: config.clone(),
            index: None,
            last: None,
            last_pool: Vec::new(),
        })
    }

    /// Use this index (built elsewhere) while the features it was built on are the round's.
    pub fn with_index(mut self, index: Arc<IvfIndex>) -> Subpool {
        self.index = Some(index);
        self
    }

    /// The index over the round's features: this wrapper's, else the last one built or loaded
    /// in this process (a fresh wrapper, e.g. the alignment check's, need not build it again),
    /// else the cached one in the round's cache directory, else a new one. Its seed is fixed, so
    /// every round, seed and resumed run gets the same index for the same features.
    fn ensure_index(&mut self, round: &Round) -> Result<(Arc<IvfIndex>, f64)> {
        static LAST: Mutex<Option<(IvfConfig, Arc<IvfIndex>)>> = Mutex::new(None);
        let fp = fingerprint(round.features);
        if let Some(ix) = self.index.as_ref().filter(|ix| ix.fingerprint == fp) {
            return Ok((ix.clone(), 0.0));
        }
        let mut last = LAST.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, ix)) = last
            .as_ref()
            .filter(|(cfg, ix)| ix.fingerprint == fp && *cfg == self.config.ivf)
        {
            self.index = Some(ix.clone());
            return Ok((ix.clone(), 0.0));
        }
        let t = Instant::now();
        let ix = Arc::new(match round.cache_dir {
            Some(dir) => IvfIndex::cached(round.features, &self.config.ivf, INDEX_SEED, dir)?,
            None => IvfIndex::build(round.features, &self.config.ivf, INDEX_SEED)?,
        });
        *last = Some((self.config.ivf.clone(), ix.clone()));
        self.index = Some(ix.clone());
        Ok((ix, t.elapsed().as_secs_f64()))
    }

    /// The subpool of this round (sorted candidate rows) and how it was made.
    pub fn subpool(&mut self, round: &Round, k: usize) -> Result<(Vec<usize>, SubpoolStats)> {
        let (ix, index_seconds) = self.ensure_index(round)?;
        let t = Instant::now();
        let cfg = self.config.clone();
        let n_rows = round.features.n_rows();
        let mut is_cand = vec![false; n_rows];
        round.unlabelled.iter().for_each(|&r| is_cand[r] = true);
        let mut rng = crate::util::rng(round.seed ^ 0x5eab5);

        // Neighbours of the labelled rows (a seeded sample beyond `max_queries`). Recomputed every
        // round from the labelled set alone, so a resumed run makes the same subpool.
        let mut queries: Vec<usize> = round.labelled.clone();
        if queries.len() > cfg.max_queries {
            let mut s =
                rand::seq::index::sample(&mut rng, queries.len(), cfg.max_queries).into_vec();
            s.sort_unstable();
            queries = s.into_iter().map(|i| round.labelled[i]).collect();
        }
        // Class anchors: a few labelled rows of every class, drawn afresh each round, so every
        // class's region is in the subpool.
        let mut anchors = Vec::new();
        if let (Some(labels), true) = (&round.labels, cfg.anchors > 0 && cfg.anchor_neighbours > 0)
        {
            let n_classes = labels.iter().map(|&c| c as usize + 1).max().unwrap_or(0);
            let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); n_classes];
            for (&r, &c) in round.labelled.iter().zip(labels) {
                by_class[c as usize].push(r);
            }
            for rows in by_class.iter().filter(|v| !v.is_empty()) {
                let take = cfg.anchors.min(rows.len());
                anchors.extend(
                    rand::seq::index::sample(&mut rng, rows.len(), take)
                        .into_iter()
                        .map(|i| rows[i]),
                );
            }
            anchors.sort_unstable();
        }
        // One pass over the probed cells answers both kinds of query (a cell is read once).
        let all: Vec<usize> = queries.iter().chain(&anchors).copied().collect();
        let per_query = if anchors.is_empty() {
            cfg.neighbours
        } else {
            cfg.neighbours.max(cfg.anchor_neighbours)
        };
        let mut found = ix.knn(round.features, &all, per_query, cfg.nprobe, &|r| is_cand[r]);
        let by_anchor = found.split_off(queries.len());
        let mut pool: Vec<usize> = found
            .into_iter()
            .flat_map(|v| v.into_iter().take(cfg.neighbours))
            .map(|(_, r)| r)
            .collect();
        let n_neighbours = pool.len();
        pool.extend(
            by_anchor
                .into_iter()
                .flat_map(|v| v.into_iter().take(cfg.anchor_neighbours))
                .map(|(_, r)| r),
        );
        let (n_anchors, anchored) = (anchors.len(), pool.len() - n_neighbours);

        // The lowest-margin rows of the whole pool, for the strategies that read the proxy
        // (core-set's subpool stays what core-set itself looks at: neighbours and coverage).
        let mut uncertain = 0;
        if round.proxy.is_some() && cfg.uncertain > 0 && self.inner.needs_proxy() {
            let top = select_by_measure(round, cfg.uncertain, Measure::Margin, "subpool")?;
            uncertain = top.len();
            pool.extend(top.into_iter().map(|p| p.row));
        }

        // Seeded random candidates; then, past overlaps, never fewer than the batch needs.
        let n = round.unlabelled.len();
        let coverage = cfg.coverage.min(n);
        pool.extend(
            rand::seq::index::sample(&mut rng, n, coverage)
                .into_iter()
                .map(|i| round.unlabelled[i]),
        );
        pool.sort_unstable();
        pool.dedup();
        let target = k.min(n);
        while pool.len() < target {
            let need = target - pool.len();
            let mut more: Vec<usize> = rand::seq::index::sample(&mut rng, n, need.min(n))
                .into_iter()
                .map(|i| round.unlabelled[i])
                .filter(|r| pool.binary_search(r).is_err())
                .collect();
            more.sort_unstable();
            more.dedup();
            pool.extend(more);
            pool.sort_unstable();
        }
        let stats = SubpoolStats {
            exhaustive: false,
            candidates: n,
            subpool: pool.len(),
            neighbours: n_neighbours,
            anchors: n_anchors,
            anchored,
            uncertain,
            coverage,
            queries: queries.len(),
            index_seconds,
            cells: ix.cells(),
            subpool_seconds: t.elapsed().as_secs_f64(),
            inner_seconds: 0.0,
        };
        Ok((pool, stats))
    }
}

impl Strategy for Subpool {
    fn name(&self) -> &'static str {
        self.inner.name()
    }
    fn needs_proxy(&self) -> bool {
        self.inner.needs_proxy()
    }
    fn select(&mut self, round: &Round, k: usize) -> Result<Vec<Pick>> {
        if self.mode == Mode::Auto && round.unlabelled.len() <= self.config.above {
            self.last = Some(SubpoolStats {
                exhaustive: true,
                candidates: round.unlabelled.len(),
                subpool: round.unlabelled.len(),
                ..Default::default()
            });
            return self.inner.select(round, k);
        }
        let (pool, mut stats) = self.subpool(round, k)?;
        let mut sub = round.with_candidates(pool);
        self.last_pool.clone_from(&sub.unlabelled);
        // Per-pool caches (Cluster-Margin's clustering) would be written anew every round.
        sub.cache_dir = None;
        let t = Instant::now();
        let picks = super::base_from_name(&self.name, &self.config)?.select(&sub, k)?;
        stats.inner_seconds = t.elapsed().as_secs_f64();
        tracing::info!(
            "subpool: {} of {} candidates ({} neighbours, {} by {} anchors, {} uncertain, {} random), {} in {:.1} s",
            stats.subpool,
            stats.candidates,
            stats.neighbours,
            stats.anchored,
            stats.anchors,
            stats.uncertain,
            stats.coverage,
            self.name,
            stats.inner_seconds
        );
        self.last = Some(stats);
        Ok(picks)
    }
}
