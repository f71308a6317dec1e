//! Subcommand arguments and handlers. Each handler parses nothing itself (clap does) and calls
//! into the library stage it names.
pub mod assets;
pub mod data;
pub mod embed;
pub mod plan;
pub mod project;
pub mod refresh;
pub mod report;
pub mod run;
pub mod select;
