//! One feature version embedded by several processes (a Slurm job array, a Kubernetes Indexed
//! Job, or shells by hand) on a shared filesystem.
//!
//! ```text
//! features/<dataset>/v<k>/shards/<i>-of-<n>.json        what shard i has written (its chunks)
//! features/<dataset>/v<k>/shards/<i>-of-<n>.cost.jsonl  what each of its chunks cost
//! features/<dataset>/v<k>/chunk-<c>.safetensors         chunk files, named as in one-process versions
//! features/<dataset>/v<k>/manifest.json                 written once every shard is complete
//! ```
//! Shard i of n owns the contiguous chunks `[i·C/n, (i+1)·C/n)` of the version's C chunks and
//! writes them in order, each durable (fsynced, renamed) before its record lists it, so a killed
//! shard resumes at its first missing chunk and a finished one does nothing. Every record carries
//! the version's description (table fingerprint, backbone, options, chunking): a shard that
//! disagrees with the others is an error, never a mixed version. When the last shard completes,
//! the version's `manifest.json` lists all chunks (no copy) and its `cost.jsonl` the shards'
//! costs; until then the version cannot be opened. A chunk's bytes do not depend on which process
//! wrote it (see `embed`), so a sharded version is identical to a one-process one.
use super::store::{
    check_resume, now_utc, read_manifest, valid_prefix, write_chunk_file, ChunkEntry, Manifest,
    Store, VersionSpec, MANIFEST_FILE,
};
use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::ops::Range;
use std::path::{Path, PathBuf};

pub const SHARDS_DIR: &str = "shards";

/// Shard `index` of `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl Shard {
    /// `I/N` (0 ≤ I < N).
    pub fn parse(s: &str) -> Result<Shard> {
        let (i, n) = s
            .split_once('/')
            .ok_or_else(|| anyhow!("--shard {s:?}: expected I/N (e.g. 0/4) or auto"))?;
        let parse = |x: &str| {
            x.trim()
                .parse::<usize>()
                .map_err(|_| anyhow!("--shard {s:?}: expected I/N with whole numbers"))
        };
        Shard::new(parse(i)?, parse(n)?)
    }

    pub fn new(index: usize, count: usize) -> Result<Shard> {
        if count == 0 || index >= count {
            bail!("shard {index} of {count}: the index must be below the count");
        }
        Ok(Shard { index, count })
    }

    /// The shard a scheduler gave this process. Slurm job arrays (submitted as
    /// `--array=0-<N-1>`): the task's position `SLURM_ARRAY_TASK_ID − SLURM_ARRAY_TASK_MIN` of
    /// `SLURM_ARRAY_TASK_COUNT`; or, when `PROXAL_SHARD_COUNT` is set, `SLURM_ARRAY_TASK_ID` of
    /// that count, so that one task can be resubmitted alone (`sbatch --array=2`). Kubernetes
    /// Indexed Jobs: `JOB_COMPLETION_INDEX` of `PROXAL_SHARD_COUNT` (set it to the completions).
    pub fn from_env(var: impl Fn(&str) -> Option<String>) -> Result<Shard> {
        let num = |name: &str| -> Result<Option<usize>> {
            match var(name) {
                None => Ok(None),
                Some(v) => v
                    .trim()
                    .parse()
                    .map(Some)
                    .map_err(|_| anyhow!("{name}={v:?} is not a whole number")),
            }
        };
        let fixed = num("PROXAL_SHARD_COUNT")?;
        if let Some(id) = num("SLURM_ARRAY_TASK_ID")? {
            if let Some(n) = fixed {
                return Shard::new(id, n).context("SLURM_ARRAY_TASK_ID of PROXAL_SHARD_COUNT");
            }
            let n = num("SLURM_ARRAY_TASK_COUNT")?.ok_or_else(|| {
                anyhow!("SLURM_ARRAY_TASK_ID is set but SLURM_ARRAY_TASK_COUNT is not")
            })?;
            let min = num("SLURM_ARRAY_TASK_MIN")?.unwrap_or(0);
            let index = id.checked_sub(min).ok_or_else(|| {
                anyhow!("SLURM_ARRAY_TASK_ID {id} is below SLURM_ARRAY_TASK_MIN {min}")
            })?;
            return Shard::new(index, n).context("the Slurm array");
        }
        if let Some(index) = num("JOB_COMPLETION_INDEX")? {
            let n = fixed.ok_or_else(|| {
                anyhow!("JOB_COMPLETION_INDEX is set but PROXAL_SHARD_COUNT is not: set it to the Job's completions")
            })?;
            return Shard::new(index, n);
        }
        bail!("--shard auto: no scheduler shard found (SLURM_ARRAY_TASK_ID, or JOB_COMPLETION_INDEX with PROXAL_SHARD_COUNT)")
    }

    /// The chunks of `n_chunks` this shard owns.
    pub fn chunks(&self, n_chunks: usize) -> Range<usize> {
        self.index * n_chunks / self.count..(self.index + 1) * n_chunks / self.count
    }

    fn file(&self) -> String {
        format!("{}-of-{}.json", self.index, self.count)
    }

    /// The shard's cost ledger file name (under `shards/`).
    pub fn cost_file(&self) -> String {
        format!("{}-of-{}.cost.jsonl", self.index, self.count)
    }
}

/// `shards/<i>-of-<n>.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardRecord {
    pub shard: usize,
    pub of: usize,
    /// The version as this shard describes it; `chunks` are this shard's durable chunks, from
    /// `first_chunk` on, and `complete` says whether all of its range is written.
    pub version: Manifest,
    pub first_chunk: usize,
    pub end_chunk: usize,
}

/// Where each shard of a version stands.
#[derive(Debug, Clone, PartialEq)]
pub struct ShardStatus {
    pub count: usize,
    /// Per shard: (chunks written, chunks owned); `None` for a shard that has not started.
    pub shards: Vec<Option<(usize, usize)>>,
    /// The version's manifest is written: every shard finished.
    pub assembled: bool,
}

impl ShardStatus {
    pub fn missing(&self) -> Vec<usize> {
        (0..self.count)
            .filter(|&i| !matches!(self.shards[i], Some((a, b)) if a == b))
            .collect()
    }
}

/// Writes the chunks of one shard, in order.
pub struct ShardWriter {
    dir: PathBuf,
    path: PathBuf,
    record: ShardRecord,
}

impl Store {
    fn shard_records(&self, v: u32) -> Result<Vec<(PathBuf, ShardRecord)>> {
        let dir = self.version_dir(v).join(SHARDS_DIR);
        let mut out = Vec::new();
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return Ok(out);
        };
        for e in entries {
            let path = e?.path();
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            if !name.ends_with(".json") || !name.contains("-of-") {
                continue;
            }
            let bytes =
                std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
            let r: ShardRecord = serde_json::from_slice(&bytes)
                .with_context(|| format!("{}: not a shard record", path.display()))?;
            out.push((path, r));
        }
        out.sort_by_key(|(_, r)| r.shard);
        Ok(out)
    }

    /// True when version `v` is (being) written in shards and has no manifest yet.
    pub fn is_sharded_in_progress(&self, v: u32) -> Result<bool> {
        Ok(
            !self.version_dir(v).join(MANIFEST_FILE).is_file()
                && !self.shard_records(v)?.is_empty(),
        )
    }

    /// Start or resume `shard` of version `v`. Any other shard's record must describe the same
    /// version and the same shard count.
    pub fn shard_writer(&self, v: u32, spec: VersionSpec, shard: Shard) -> Result<ShardWriter> {
        if spec.dim == 0 || spec.chunk_rows == 0 {
            bail!("feature dimension and chunk rows must be positive");
        }
        let dir = self.version_dir(v);
        let mpath = dir.join(MANIFEST_FILE);
        let n_chunks = spec.rows.div_ceil(spec.chunk_rows);
        let range = shard.chunks(n_chunks);
        // A finished version (by one process or by shards) has nothing left for any shard.
        let finished = if mpath.is_file() {
            let m = read_manifest(&mpath)?;
            check_resume(&mpath, &m, &spec)?;
            if !m.complete {
                bail!(
                    "{}: this version was started by one process; finish it without --shard",
                    mpath.display()
                );
            }
            Some(m)
        } else {
            None
        };
        let records = self.shard_records(v)?;
        for (path, r) in &records {
            if r.of != shard.count {
                bail!(
                    "{}: the version is split in {} shards, not {} (keep one count per version)",
                    path.display(),
                    r.of,
                    shard.count
                );
            }
            check_resume(path, &r.version, &spec)
                .context("another shard of this version was embedded differently")?;
        }
        let path = dir.join(SHARDS_DIR).join(shard.file());
        if let Some(m) = finished {
            let mut version = m.clone();
            version.chunks = m.chunks[range.clone()].to_vec();
            return Ok(ShardWriter {
                dir,
                path,
                record: ShardRecord {
                    shard: shard.index,
                    of: shard.count,
                    version,
                    first_chunk: range.start,
                    end_chunk: range.end,
                },
            });
        }
        // This shard's own record, if it started before (read with the others above).
        let own = records.into_iter().find(|(_, r)| r.shard == shard.index);
        let resumed = own.is_some();
        let mut record = match own {
            Some((_, r)) => r,
            None => ShardRecord {
                shard: shard.index,
                of: shard.count,
                version: Manifest::new(&spec, now_utc()),
                first_chunk: range.start,
                end_chunk: range.end,
            },
        };
        std::fs::create_dir_all(dir.join(SHARDS_DIR))
            .with_context(|| format!("cannot create {}", dir.join(SHARDS_DIR).display()))?;
        // Keep the longest valid prefix of the listed chunks.
        let good = valid_prefix(&dir, &record.version.chunks, range.start, &spec);
        let changed = good < record.version.chunks.len() || !resumed;
        record.version.chunks.truncate(good);
        record.version.complete = good == range.len();
        let mut w = ShardWriter { dir, path, record };
        if changed {
            w.save()?;
        }
        Ok(w)
    }

    /// Where the shards of version `v` stand.
    pub fn shard_status(&self, v: u32) -> Result<ShardStatus> {
        self.status_of(v, &self.shard_records(v)?)
    }

    /// [`Store::shard_status`] from records already read.
    fn status_of(&self, v: u32, records: &[(PathBuf, ShardRecord)]) -> Result<ShardStatus> {
        let assembled = self.version_dir(v).join(MANIFEST_FILE).is_file();
        let Some((_, first)) = records.first() else {
            return Ok(ShardStatus {
                count: 0,
                shards: vec![],
                assembled,
            });
        };
        let count = first.of;
        let mut shards = vec![None; count];
        for (path, r) in records {
            if r.of != count || r.shard >= count {
                bail!(
                    "{}: shard {} of {} next to shards of {count}",
                    path.display(),
                    r.shard,
                    r.of
                );
            }
            shards[r.shard] = Some((r.version.chunks.len(), r.end_chunk - r.first_chunk));
        }
        Ok(ShardStatus {
            count,
            shards,
            assembled,
        })
    }

    /// Write version `v`'s manifest (and cost ledger) from its shards' records once every shard
    /// is complete. Returns the status; `assembled` says whether the version can now be opened.
    /// Idempotent: shards finishing at the same time write the same bytes.
    pub fn finish_shards(&self, v: u32) -> Result<ShardStatus> {
        let records = self.shard_records(v)?;
        let mut status = self.status_of(v, &records)?;
        if status.assembled || status.count == 0 || !status.missing().is_empty() {
            return Ok(status);
        }
        let dir = self.version_dir(v);
        let first = &records[0].1.version;
        let mut chunks: Vec<ChunkEntry> = Vec::new();
        let mut cost = Vec::new();
        for (path, r) in &records {
            if r.version.dataset_fingerprint != first.dataset_fingerprint
                || r.version.source != first.source
                || r.version.rows != first.rows
                || r.version.chunk_rows != first.chunk_rows
                || r.version.dim != first.dim
                || r.version.dtype != first.dtype
            {
                bail!(
                    "{}: shard {} describes another version than shard 0",
                    path.display(),
                    r.shard
                );
            }
            if r.first_chunk != chunks.len() {
                bail!(
                    "{}: shard {} starts at chunk {}, expected {}",
                    path.display(),
                    r.shard,
                    r.first_chunk,
                    chunks.len()
                );
            }
            chunks.extend(r.version.chunks.iter().cloned());
            let shard = Shard::new(r.shard, r.of)?;
            if let Ok(bytes) = std::fs::read(dir.join(SHARDS_DIR).join(shard.cost_file())) {
                cost.extend_from_slice(&bytes);
            }
        }
        let mut m = first.clone();
        m.chunks = chunks;
        m.complete = m.rows_written() == m.rows;
        if !m.complete {
            bail!(
                "{}: the shards list {} of {} rows",
                dir.display(),
                m.rows_written(),
                m.rows
            );
        }
        m.updated_at = now_utc();
        crate::util::atomic_write(&dir.join(super::embed::COST_FILE), &cost)?;
        crate::util::atomic_write(&dir.join(MANIFEST_FILE), &serde_json::to_vec_pretty(&m)?)?;
        status.assembled = true;
        Ok(status)
    }
}

impl ShardWriter {
    pub fn dir(&self) -> &Path {
        &self.dir
    }
    /// The chunks this shard owns.
    pub fn range(&self) -> Range<usize> {
        self.record.first_chunk..self.record.end_chunk
    }
    /// Its first chunk not yet durable (== `range().end` when complete).
    pub fn next_chunk(&self) -> usize {
        self.record.first_chunk + self.record.version.chunks.len()
    }
    pub fn is_complete(&self) -> bool {
        self.record.version.complete
    }
    /// Rows of its range already durable.
    pub fn rows_done(&self) -> usize {
        self.record.version.rows_written()
    }
    /// Rows of its whole range.
    pub fn rows_owned(&self) -> usize {
        let r = self.range();
        self.chunk_range(r.end).start - self.chunk_range(r.start).start
    }

    /// Dataset rows chunk `c` holds.
    pub fn chunk_range(&self, c: usize) -> Range<usize> {
        self.record.version.chunk_range(c)
    }

    /// Write chunk `c` (must be `next_chunk()`, inside the shard's range).
    pub fn write_chunk(&mut self, c: usize, data: &[f32]) -> Result<()> {
        if c != self.next_chunk() || c >= self.record.end_chunk {
            bail!(
                "shard {}/{} writes chunks {:?} in order: expected chunk {}, got {c}",
                self.record.shard,
                self.record.of,
                self.range(),
                self.next_chunk()
            );
        }
        let entry = write_chunk_file(
            &self.dir,
            c,
            self.chunk_range(c).len(),
            self.record.version.dim,
            self.record.version.dtype,
            data,
        )?;
        self.record.version.chunks.push(entry);
        self.record.version.complete = self.next_chunk() == self.record.end_chunk;
        self.save()
    }

    fn save(&mut self) -> Result<()> {
        self.record.version.updated_at = now_utc();
        let bytes = serde_json::to_vec_pretty(&self.record)?;
        crate::util::atomic_write(&self.path, &bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn shards_split_the_chunks_contiguously_and_cover_them() {
        for (n_chunks, count) in [(16, 3), (5, 5), (3, 4), (47, 2)] {
            let mut next = 0;
            for i in 0..count {
                let r = Shard::new(i, count).unwrap().chunks(n_chunks);
                assert_eq!(r.start, next);
                assert!(r.len() <= n_chunks.div_ceil(count));
                next = r.end;
            }
            assert_eq!(next, n_chunks);
        }
        assert_eq!(Shard::parse("2/3").unwrap(), Shard { index: 2, count: 3 });
        for bad in ["3/3", "1", "a/2", "0/0"] {
            assert!(Shard::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_scheduler_names_the_shard() {
        let s = |v: &[(&str, &str)]| Shard::from_env(env(v));
        let slurm = [
            ("SLURM_ARRAY_TASK_ID", "5"),
            ("SLURM_ARRAY_TASK_MIN", "4"),
            ("SLURM_ARRAY_TASK_COUNT", "3"),
        ];
        assert_eq!(s(&slurm).unwrap(), Shard { index: 1, count: 3 });
        // A task resubmitted alone keeps its index with PROXAL_SHARD_COUNT.
        let again = [
            ("SLURM_ARRAY_TASK_ID", "2"),
            ("SLURM_ARRAY_TASK_MIN", "2"),
            ("SLURM_ARRAY_TASK_COUNT", "1"),
            ("PROXAL_SHARD_COUNT", "4"),
        ];
        assert_eq!(s(&again).unwrap(), Shard { index: 2, count: 4 });
        let k8s = [("JOB_COMPLETION_INDEX", "3"), ("PROXAL_SHARD_COUNT", "4")];
        assert_eq!(s(&k8s).unwrap(), Shard { index: 3, count: 4 });
        assert!(s(&[("JOB_COMPLETION_INDEX", "3")]).is_err());
        assert!(s(&[]).is_err());
        assert!(s(&[
            ("SLURM_ARRAY_TASK_ID", "x"),
            ("SLURM_ARRAY_TASK_COUNT", "2")
        ])
        .is_err());
    }
}
