//! The feature store: chunked writes, manifest, mapped zero-copy reads, versions, and the
//! errors it must raise (corrupt/truncated chunk, dimension and dataset mismatch, incomplete).
mod common;

use ndarray::Array2;
use proxal::features::store::DEFAULT_CHUNK_ROWS;
use proxal::features::{Block, Dtype, Provenance, RowBlocks, Store, Verify, VersionSpec};
use proxal::util::atomic_write as write_durable;

fn provenance() -> Provenance {
    Provenance {
        backbone: "tiny".into(),
        backbone_dir: "/x/tiny".into(),
        weights_sha256: "ab".repeat(32),
        tokenizer_sha256: "cd".repeat(32),
        checkpoint: None,
        pooling: "mean".into(),
        normalize: true,
        max_len: 128,
    }
}

fn spec(rows: usize, dim: usize, chunk_rows: usize) -> VersionSpec {
    VersionSpec {
        dataset: "toy".into(),
        dataset_fingerprint: "f".repeat(64),
        rows,
        dim,
        dtype: Dtype::F32,
        chunk_rows,
        source: provenance(),
    }
}

fn data(rows: usize, dim: usize) -> Array2<f32> {
    Array2::from_shape_fn((rows, dim), |(i, j)| (i * 1000 + j) as f32 * 0.5 - 3.0)
}

fn write_all(store: &Store, v: u32, x: &Array2<f32>, chunk_rows: usize) {
    write_as(store, v, x, chunk_rows, Dtype::F32)
}

fn write_as(store: &Store, v: u32, x: &Array2<f32>, chunk_rows: usize, dtype: Dtype) {
    let spec = VersionSpec {
        dtype,
        ..spec(x.nrows(), x.ncols(), chunk_rows)
    };
    let mut w = store.writer(v, spec).unwrap();
    for c in w.next_chunk()..w.n_chunks() {
        let r = w.chunk_range(c);
        let block = x.slice(ndarray::s![r, ..]).to_owned();
        w.write_chunk(c, block.as_slice().unwrap()).unwrap();
    }
    assert!(w.is_complete());
}

#[test]
fn round_trip_zero_copy_views_and_row_blocks() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::at(tmp.path().join("toy"), "toy");
    let x = data(30, 5);
    write_all(&store, 0, &x, 7);
    let fv = store.open(0, Verify::Checksums).unwrap();
    let m = fv.manifest();
    assert_eq!(
        (m.rows, m.dim, m.chunks.len(), m.complete),
        (30, 5, 5, true)
    );
    assert_eq!(
        m.chunks.iter().map(|c| c.rows).collect::<Vec<_>>(),
        vec![7, 7, 7, 7, 2]
    );
    assert_eq!(m.chunks[0].file, "chunk-00000.safetensors");
    assert_eq!((fv.n_rows(), RowBlocks::dim(&fv)), (30, 5));
    let blocks = fv.blocks();
    assert_eq!(
        blocks.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
        vec![0, 7, 14, 21, 28]
    );
    for (start, b) in &blocks {
        let Block::F32(b) = b else {
            panic!("an f32 version serves f32 blocks")
        };
        assert_eq!(b, &x.slice(ndarray::s![*start..*start + b.nrows(), ..]));
    }
    for i in 0..30 {
        assert!(
            matches!(fv.row(i), std::borrow::Cow::Borrowed(_)),
            "zero-copy row"
        );
        assert_eq!(fv.row(i).as_ref(), x.row(i).as_slice().unwrap());
    }
    assert_eq!(
        fv.gather(&[29, 0, 8]),
        ndarray::stack![ndarray::Axis(0), x.row(29), x.row(0), x.row(8)]
    );
    assert_eq!(fv.slice(8..13).unwrap(), x.slice(ndarray::s![8..13, ..]));
    assert!(fv.slice(6..8).is_none(), "crosses a chunk boundary");
    // The view points into the mapped file (no copy): its address is inside the mapping of
    // chunk 0, not a fresh allocation; two calls give the same address.
    let ptr = |b: Block| match b {
        Block::F32(v) => v.as_ptr() as usize,
        Block::F16(v) => v.as_ptr() as usize,
    };
    assert_eq!(ptr(fv.chunk(0)), ptr(fv.chunk(0)));
    // Safetensors as written can be read by the stock reader too.
    let bytes = std::fs::read(store.version_dir(0).join("chunk-00001.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    assert_eq!(st.tensor("features").unwrap().shape(), &[7, 5]);
    assert_eq!(DEFAULT_CHUNK_ROWS, 4096);
}

#[test]
fn versions_next_free_and_latest_complete() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::at(tmp.path().join("toy"), "toy");
    assert_eq!(store.versions().unwrap(), Vec::<u32>::new());
    assert_eq!(store.next_version().unwrap(), 0);
    assert_eq!(store.latest_complete().unwrap(), None);
    let x = data(10, 3);
    write_all(&store, 0, &x, 4);
    let mut w = store.writer(1, spec(10, 3, 4)).unwrap();
    w.write_chunk(
        0,
        x.slice(ndarray::s![0..4, ..])
            .to_owned()
            .as_slice()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(store.versions().unwrap(), vec![0, 1]);
    assert_eq!(store.next_version().unwrap(), 2);
    assert_eq!(store.latest_complete().unwrap(), Some(0));
    let e = format!("{:#}", store.open(1, Verify::Sizes).err().unwrap());
    assert!(
        e.contains("incomplete") && e.contains("manifest.json"),
        "{e}"
    );
}

#[test]
fn resume_keeps_durable_chunks_and_cuts_at_the_first_bad_one() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::at(tmp.path().join("toy"), "toy");
    let x = data(20, 4);
    write_all(&store, 0, &x, 5);
    // Truncate chunk 2: a resumed writer keeps chunks 0 and 1 only.
    let c2 = store.version_dir(0).join("chunk-00002.safetensors");
    let len = std::fs::metadata(&c2).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&c2)
        .unwrap()
        .set_len(len - 3)
        .unwrap();
    let w = store.writer(0, spec(20, 4, 5)).unwrap();
    assert_eq!(
        (w.next_chunk(), w.rows_done(), w.is_complete()),
        (2, 10, false)
    );
    drop(w);
    write_all(&store, 0, &x, 5);
    let fv = store.open(0, Verify::Checksums).unwrap();
    assert_eq!(fv.gather(&(0..20).collect::<Vec<_>>()), x);
}

#[test]
fn corrupt_and_truncated_chunks_are_errors_naming_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::at(tmp.path().join("toy"), "toy");
    write_all(&store, 0, &data(12, 4), 6);
    let c1 = store.version_dir(0).join("chunk-00001.safetensors");
    let mut bytes = std::fs::read(&c1).unwrap();
    let n = bytes.len();
    bytes[n - 5] ^= 0x40;
    std::fs::write(&c1, &bytes).unwrap();
    let e = format!("{:#}", store.open(0, Verify::Checksums).err().unwrap());
    assert!(
        e.contains("chunk-00001.safetensors") && e.contains("corrupt") && !e.contains('\n'),
        "{e}"
    );
    // Size-only open succeeds; the explicit check catches it.
    let fv = store.open(0, Verify::Sizes).unwrap();
    let e = format!("{:#}", fv.verify().err().unwrap());
    assert!(e.contains("chunk-00001.safetensors"), "{e}");
    drop(fv);
    std::fs::write(&c1, &bytes[..n - 10]).unwrap();
    for verify in [Verify::Sizes, Verify::Checksums] {
        let e = format!("{:#}", store.open(0, verify).err().unwrap());
        assert!(
            e.contains("chunk-00001.safetensors") && e.contains("truncated"),
            "{e}"
        );
    }
    std::fs::remove_file(&c1).unwrap();
    let e = format!("{:#}", store.open(0, Verify::Sizes).err().unwrap());
    assert!(
        e.contains("chunk-00001.safetensors") && e.contains("missing"),
        "{e}"
    );
}

#[test]
fn versions_refuse_other_dimensions_datasets_and_settings() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::at(tmp.path().join("toy"), "toy");
    write_all(&store, 0, &data(8, 4), 4);
    // Another version of the same dataset with another dimension.
    let e = format!("{:#}", store.writer(1, spec(8, 6, 4)).err().unwrap());
    assert!(e.contains("dimension mismatch") && e.contains("v0"), "{e}");
    // Resuming v0 with another dimension, table or options.
    let e = format!("{:#}", store.writer(0, spec(8, 6, 4)).err().unwrap());
    assert!(
        e.contains("dimension mismatch") && e.contains("manifest.json"),
        "{e}"
    );
    let mut s = spec(8, 4, 4);
    s.dataset_fingerprint = "0".repeat(64);
    let e = format!("{:#}", store.writer(0, s).err().unwrap());
    assert!(e.contains("fingerprint mismatch"), "{e}");
    let mut s = spec(8, 4, 4);
    s.source.pooling = "cls".into();
    let e = format!("{:#}", store.writer(0, s).err().unwrap());
    assert!(e.contains("pooling=mean") && e.contains("--version"), "{e}");
    // Reading against another table.
    let fv = store.open(0, Verify::Sizes).unwrap();
    fv.check_dataset(&"f".repeat(64), 8).unwrap();
    let e = format!("{:#}", fv.check_dataset(&"e".repeat(64), 8).err().unwrap());
    assert!(
        e.contains("fingerprint mismatch") && e.contains("manifest.json"),
        "{e}"
    );
}

#[test]
fn out_of_order_and_wrong_sized_chunks_are_rejected() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::at(tmp.path().join("toy"), "toy");
    let mut w = store.writer(0, spec(8, 2, 4)).unwrap();
    assert!(w.write_chunk(1, &[0.0; 8]).is_err());
    assert!(w.write_chunk(0, &[0.0; 7]).is_err());
    w.write_chunk(0, &[0.0; 8]).unwrap();
}

#[test]
fn disk_full_is_reported_as_such() {
    // A tiny tmpfs gives a real ENOSPC; skip where mounting is not allowed.
    let tmp = tempfile::tempdir().unwrap();
    let mnt = tmp.path().join("small");
    std::fs::create_dir(&mnt).unwrap();
    let ok = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=64k", "tmpfs"])
        .arg(&mnt)
        .stderr(std::process::Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        common::skip(
            "disk_full_is_reported_as_such",
            common::Skip::Machine,
            "cannot mount a small tmpfs here (needs privilege)",
        );
        return;
    }
    let res = write_durable(&mnt.join("chunk-00000.safetensors"), &vec![1u8; 1 << 20]);
    let _ = std::process::Command::new("umount").arg(&mnt).status();
    let e = format!("{:#}", res.err().unwrap());
    assert!(
        e.contains("disk full") && e.contains("chunk-00000.safetensors"),
        "{e}"
    );
}

/// Values as an f16 version stores them: each rounded to the nearest f16, widened back.
fn rounded(x: &Array2<f32>) -> Array2<f32> {
    x.mapv(|v| half::f16::from_f32(v).to_f32())
}

#[test]
fn f16_versions_store_half_the_bytes_and_serve_the_rounded_values_as_f32() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::at(tmp.path().join("toy"), "toy");
    // Values that f16 cannot hold exactly, so rounding is visible.
    let x = Array2::from_shape_fn((30, 6), |(i, j)| ((i * 7 + j) as f32 * 0.377).sin() * 3.1);
    let r = rounded(&x);
    assert_ne!(r, x, "the test data must lose precision in f16");
    write_as(&store, 0, &x, 7, Dtype::F16);
    write_all(&store, 1, &x, 7);
    let (h, f) = (
        store.open(0, Verify::Checksums).unwrap(),
        store.open(1, Verify::Checksums).unwrap(),
    );
    assert_eq!((h.dtype(), f.dtype()), (Dtype::F16, Dtype::F32));
    assert_eq!(h.manifest().dtype, Dtype::F16);
    // Two bytes a value, as a stock safetensors reader sees the chunk.
    for (c, e) in h.manifest().chunks.iter().enumerate() {
        let bytes = std::fs::read(store.version_dir(0).join(&e.file)).unwrap();
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let t = st.tensor("features").unwrap();
        assert_eq!(t.dtype(), safetensors::Dtype::F16, "chunk {c}");
        assert_eq!(t.data().len(), e.rows * 6 * 2, "chunk {c}");
    }
    // Every reader serves the rounded values in f32.
    for (start, b) in h.blocks() {
        let Block::F16(v) = b else {
            panic!("an f16 version serves f16 blocks")
        };
        assert_eq!(v.ncols(), 6, "the mapped f16 rows");
        let want = r.slice(ndarray::s![start..start + b.nrows(), ..]);
        assert_eq!(b.rows(0..b.nrows()), want);
        assert_eq!(
            b.select(&[b.nrows() - 1, 0]),
            ndarray::stack![ndarray::Axis(0), want.row(b.nrows() - 1), want.row(0)]
        );
    }
    for i in 0..30 {
        assert_eq!(h.row(i).as_ref(), r.row(i).as_slice().unwrap());
    }
    assert_eq!(
        h.gather(&[29, 0, 8]),
        ndarray::stack![ndarray::Axis(0), r.row(29), r.row(0), r.row(8)]
    );
    assert_eq!(h.slice(8..13).unwrap(), r.slice(ndarray::s![8..13, ..]));
    // The streaming readers see exactly the rounded f32 rows, contiguous or scattered.
    let rows: Vec<usize> = vec![0, 1, 2, 3, 9, 15, 16, 17, 29];
    // (Row, values) pairs: the store streams chunk by chunk, the matrix in one block.
    let stream = |f: &dyn RowBlocks| {
        proxal::features::map_rows(f, &rows, |rs, x| {
            rs.iter()
                .zip(x.rows())
                .map(|(&r, v)| (r, v.to_vec()))
                .collect::<Vec<_>>()
        })
        .concat()
    };
    let got = stream(&h);
    assert_eq!(got.len(), rows.len());
    assert_eq!(got, stream(&r));
    // f16 halves precision, not range: the rounding error is within f16's half-ulp.
    for (a, b) in r.iter().zip(x.iter()) {
        assert!(
            (a - b).abs() <= b.abs() * 2f32.powi(-11) + 1e-7,
            "{a} vs {b}"
        );
    }
    // A resumed writer must keep the version's dtype.
    let err = store
        .writer(
            0,
            VersionSpec {
                dtype: Dtype::F32,
                ..spec(30, 6, 7)
            },
        )
        .err()
        .expect("a dtype change is refused")
        .to_string();
    assert!(err.contains("stores f16 values, not f32"), "{err}");
}

#[test]
fn values_beyond_f16_range_are_refused_not_stored_as_infinity() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::at(tmp.path().join("toy"), "toy");
    let spec = VersionSpec {
        dtype: Dtype::F16,
        ..spec(4, 3, 4)
    };
    let mut w = store.writer(0, spec).unwrap();
    let mut data = vec![0.5f32; 12];
    data[7] = 70_000.0;
    let err = w.write_chunk(0, &data).err().unwrap().to_string();
    assert!(
        err.contains("chunk-00000.safetensors: row 2 of the chunk holds 70000 (column 1)")
            && err.contains("store this version as f32"),
        "{err}"
    );
    assert_eq!(w.next_chunk(), 0, "nothing was written");
    data[7] = 65_504.0; // the largest f16 is fine
    w.write_chunk(0, &data).unwrap();
    assert!(w.is_complete());
}

#[test]
fn an_f16_manifest_over_f32_chunks_is_a_corrupt_chunk_error() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::at(tmp.path().join("toy"), "toy");
    write_all(&store, 0, &data(10, 4), 5);
    let mpath = store.version_dir(0).join("manifest.json");
    let text = std::fs::read_to_string(&mpath).unwrap();
    write_durable(&mpath, text.replace("\"f32\"", "\"f16\"").as_bytes()).unwrap();
    let err = store.open(0, Verify::Sizes).err().unwrap().to_string();
    assert!(
        err.contains("chunk-00000.safetensors: corrupt chunk: tensor is F32"),
        "{err}"
    );
    assert!(err.contains("expected F16"), "{err}");
    write_durable(&mpath, text.replace("\"f32\"", "\"bf16\"").as_bytes()).unwrap();
    let err = format!("{:#}", store.open(0, Verify::Sizes).err().unwrap());
    assert!(
        err.contains("manifest.json") && err.contains("unknown feature dtype 'bf16'"),
        "{err}"
    );
}
