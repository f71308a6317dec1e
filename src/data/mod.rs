//! Stage 0: ingest. Any CSV/TSV/JSONL/Parquet file becomes the canonical table
//! `(id, text, label?, split)` stored as Parquet under `datasets/<name>/`, with a label map.
//!
//! Row order in the table is the row order of every feature version built from it: feature row
//! `i` is the embedding of `Dataset::texts[i]`.

mod builtin;
mod ingest;
pub mod table;

pub use builtin::{import_builtin, import_builtin_sample, Builtin, Sample};
pub use ingest::{import_file, read_table, Format, ImportOptions, ImportReport, TestSplit};
pub use table::{Dataset, LabelMap, Meta, Split};
