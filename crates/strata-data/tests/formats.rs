//! Every activation format strata reads, written here independently (by hand-rolled bytes or
//! the reference writers) and read back; and the ways a file can be wrong.
#![allow(clippy::unwrap_used)] // in tests, a failed unwrap is a failed test, with its location

use ndarray::Array2;
use std::path::{Path, PathBuf};
use strata_data::rng::Rng;
use strata_data::store::{LayerSpec, StoreWriter};
use strata_data::{npy, open, DataError, Format};

mod common;

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("strata-data-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn npy_bytes(shape: &[usize], data: &[f32]) -> Vec<u8> {
    let mut v = Vec::new();
    npy::write_f32(&mut v, shape, data).unwrap();
    v
}

fn write_npz(path: &Path, arrays: &[(&str, Vec<u8>)], deflate: bool) {
    std::fs::write(path, common::npz(arrays, deflate)).unwrap();
}

#[test]
fn npy_f32_f64_rank3_and_fortran_order() {
    let dir = scratch("npy");
    let mut r = Rng::new(1);
    let data: Vec<f32> = (0..5 * 2 * 3).map(|_| r.normal() as f32).collect();
    let p = dir.join("conv1.npy");
    std::fs::write(&p, npy_bytes(&[5, 2, 3], &data)).unwrap();
    let a = open(&p).unwrap();
    assert_eq!(a.format(), Format::Npy);
    assert_eq!(
        (a.n(), a.layers()[0].name.as_str(), a.layers()[0].features),
        (5, "conv1", 6)
    );
    assert_eq!(a.layers()[0].shape, vec![2, 3]);
    let m = a.read_layer(0).unwrap();
    assert_eq!(m.as_slice().unwrap(), &data[..]);

    let d64: Vec<f64> = data.iter().map(|&v| v as f64 * 1.5).collect();
    let p64 = dir.join("f64.npy");
    let mut bytes = Vec::new();
    npy::write_f64(&mut bytes, &[5, 6], &d64).unwrap();
    std::fs::write(&p64, &bytes).unwrap();
    let m = open(&p64).unwrap().read_layer(0).unwrap();
    for (g, w) in m.iter().zip(&d64) {
        assert_eq!(*g, *w as f32);
    }

    // Fortran order: element (i, j, k) of shape (5, 2, 3) sits at i + 5 j + 10 k.
    let mut fortran = vec![0f32; 30];
    for i in 0..5 {
        for j in 0..2 {
            for k in 0..3 {
                fortran[i + 5 * j + 10 * k] = data[i * 6 + j * 3 + k];
            }
        }
    }
    let mut b = npy_bytes(&[5, 2, 3], &fortran);
    let off = npy::parse_header(&b).unwrap().data_offset;
    let text = String::from_utf8(b[10..off].to_vec())
        .unwrap()
        .replace("'fortran_order': False", "'fortran_order': True ");
    b.splice(10..off, text.into_bytes());
    let pf = dir.join("fortran.npy");
    std::fs::write(&pf, &b).unwrap();
    let a = open(&pf).unwrap();
    assert_eq!(a.read_layer(0).unwrap().as_slice().unwrap(), &data[..]);
    let mut br = a.batches(&[0], 2).unwrap();
    let mut rows = Vec::new();
    while let Some(bt) = br.next_batch().unwrap() {
        rows.extend_from_slice(bt[0].as_slice().unwrap());
    }
    assert_eq!(rows, data);
}

#[test]
fn npz_stored_and_deflated_keep_layer_order() {
    let dir = scratch("npz");
    let a: Vec<f32> = (0..12).map(|v| v as f32).collect();
    let b: Vec<f32> = (0..8).map(|v| -(v as f32)).collect();
    for deflate in [false, true] {
        let p = dir.join(format!("acts-{deflate}.npz"));
        write_npz(
            &p,
            &[
                ("z_last_alphabetically", npy_bytes(&[4, 3], &a)),
                ("a_second", npy_bytes(&[4, 2], &b)),
            ],
            deflate,
        );
        let acts = open(&p).unwrap();
        assert_eq!(acts.format(), Format::Npz);
        let names: Vec<&str> = acts.layers().iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, ["z_last_alphabetically", "a_second"]);
        assert_eq!(acts.read_layer(1).unwrap().as_slice().unwrap(), &b[..]);
    }
    let p = dir.join("ragged.npz");
    write_npz(
        &p,
        &[("a", npy_bytes(&[4, 3], &a)), ("b", npy_bytes(&[2, 4], &b))],
        false,
    );
    let e = open(&p).err().unwrap().to_string();
    assert!(e.contains("disagree on the number of examples"), "{e}");
}

#[test]
fn safetensors_in_file_or_declared_order() {
    use safetensors::tensor::{serialize, Dtype, TensorView};
    let dir = scratch("st");
    let a: Vec<f32> = (0..6).map(|v| v as f32 * 0.5).collect();
    let b: Vec<u16> = [1.0f32, 2.0, -3.0, 0.25]
        .iter()
        .map(|&v| half::f16::from_f32(v).to_bits())
        .collect();
    let ab: Vec<u8> = a.iter().flat_map(|v| v.to_le_bytes()).collect();
    let bb: Vec<u8> = b.iter().flat_map(|v| v.to_le_bytes()).collect();
    let views = vec![
        (
            "layer2",
            TensorView::new(Dtype::F16, vec![2, 2], &bb).unwrap(),
        ),
        (
            "layer1",
            TensorView::new(Dtype::F32, vec![2, 3], &ab).unwrap(),
        ),
    ];
    let meta = std::collections::HashMap::from([(
        "strata.layers".to_string(),
        "[\"layer1\", \"layer2\"]".to_string(),
    )]);
    let bytes = serialize(views, Some(meta)).unwrap();
    let p = dir.join("acts.safetensors");
    std::fs::write(&p, &bytes).unwrap();
    let acts = open(&p).unwrap();
    assert_eq!(acts.format(), Format::Safetensors);
    let names: Vec<&str> = acts.layers().iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, ["layer1", "layer2"]);
    assert_eq!(acts.read_layer(0).unwrap().as_slice().unwrap(), &a[..]);
    assert_eq!(
        acts.read_layer(1).unwrap().as_slice().unwrap(),
        &[1.0, 2.0, -3.0, 0.25]
    );
    // Truncated: one clear error, no panic.
    let cut = dir.join("cut.safetensors");
    std::fs::write(&cut, &bytes[..bytes.len() - 5]).unwrap();
    assert!(open(&cut).is_err());
}

fn roundtrip_store(ext: &str) {
    let dir = scratch(ext);
    let p = dir.join(format!("acts.{ext}"));
    let specs = [
        LayerSpec::new("conv", &[2, 3, 3]),
        LayerSpec::new("fc", &[5]),
    ];
    let mut w = StoreWriter::create(&p, &specs, &serde_json::json!({"model": "test"})).unwrap();
    let mut r = Rng::new(3);
    let mut full: Vec<Array2<f32>> = vec![Array2::zeros((0, 18)), Array2::zeros((0, 5))];
    for rows in [7, 1, 12] {
        let batch = [r.normal_matrix(rows, 18), r.normal_matrix(rows, 5)];
        w.write_batch(&[batch[0].view(), batch[1].view()]).unwrap();
        for (f, b) in full.iter_mut().zip(&batch) {
            f.append(ndarray::Axis(0), b.view()).unwrap();
        }
        // Nothing appears under the final name until finish.
        assert!(!p.exists());
    }
    assert_eq!(w.finish().unwrap(), 20);
    let acts = open(&p).unwrap();
    assert_eq!(acts.n(), 20);
    assert_eq!(acts.layers()[0].shape, vec![2, 3, 3]);
    assert_eq!(acts.read_layer(1).unwrap(), full[1]);
    assert_eq!(acts.read_layer(0).unwrap(), full[0]);
    // Streaming re-chunks to the requested batch size whatever the record batches were.
    for bs in [1, 4, 6, 100] {
        let mut br = acts.batches(&[1, 0], bs).unwrap();
        let mut seen = 0;
        while let Some(b) = br.next_batch().unwrap() {
            let rows = b[0].nrows();
            assert!(rows == bs || seen + rows == 20);
            assert_eq!(b[0], full[1].slice(ndarray::s![seen..seen + rows, ..]));
            assert_eq!(b[1], full[0].slice(ndarray::s![seen..seen + rows, ..]));
            seen += rows;
        }
        assert_eq!(seen, 20);
    }
    // A writer dropped before finish leaves nothing behind.
    let q = dir.join(format!("aborted.{ext}"));
    let mut w = StoreWriter::create(&q, &specs, &serde_json::Value::Null).unwrap();
    w.write_batch(&[full[0].view(), full[1].view()]).unwrap();
    drop(w);
    assert_eq!(
        std::fs::read_dir(&dir).unwrap().count(),
        1,
        "only the finished store remains"
    );
    // Truncation is detected.
    let bytes = std::fs::read(&p).unwrap();
    let t = dir.join(format!("trunc.{ext}"));
    std::fs::write(&t, &bytes[..bytes.len() * 2 / 3]).unwrap();
    let e = open(&t).err().expect("truncated store must not open");
    assert!(matches!(e, DataError::Corrupt { .. }), "{e}");
}

#[test]
fn arrow_ipc_store_round_trip() {
    roundtrip_store("arrow");
}

#[test]
fn parquet_store_round_trip() {
    roundtrip_store("parquet");
}

#[test]
fn bad_inputs_give_one_clear_error() {
    let dir = scratch("bad");
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("empty.npy", vec![], "empty"),
        (
            "text.npy",
            b"hello world, not an array".to_vec(),
            "unknown format",
        ),
        ("rank1.npy", npy_bytes(&[4], &[1.0; 4]), "rank >= 2"),
        ("zero.npy", npy_bytes(&[0, 3], &[]), "no examples"),
        ("nofeat.npy", npy_bytes(&[3, 0], &[]), "no features"),
        (
            "trunc.npy",
            npy_bytes(&[10, 10], &[1.0; 100])[..200].to_vec(),
            "truncated",
        ),
    ];
    for (name, bytes, want) in cases {
        let p = dir.join(name);
        std::fs::write(&p, bytes).unwrap();
        let e = open(&p)
            .err()
            .unwrap_or_else(|| panic!("{name} opened"))
            .to_string();
        assert!(e.contains(want), "{name}: {e}");
        assert!(!e.contains('\n'), "{name}: one line please: {e}");
    }
    let mut data = vec![1.0f32; 12];
    data[7] = f32::INFINITY;
    let p = dir.join("inf.npy");
    std::fs::write(&p, npy_bytes(&[4, 3], &data)).unwrap();
    let e = open(&p).unwrap().read_layer(0).unwrap_err().to_string();
    assert!(
        e.contains("non-finite") && e.contains("example 2, feature 1"),
        "{e}"
    );
    assert!(open(&dir.join("missing.npy")).is_err());
}
