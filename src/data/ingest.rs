//! Import of user files — under construction.
#[derive(Debug, Default)]
pub struct ImportOptions {}
#[derive(Debug)]
pub struct ImportReport {}
pub fn import_file() {}
