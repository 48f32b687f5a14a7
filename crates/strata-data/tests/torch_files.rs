//! What PyTorch users hand strata: BF16 `.safetensors` and `torch.save` `.pt`/`.pth` files.
//!
//! The `.pt` fixtures under `tests/fixtures/` were written by `fixtures/make_pt.py` (PyTorch);
//! these tests only read them. Element k of every fixture tensor is `k * 0.5 + offset`.
#![allow(clippy::unwrap_used)] // in tests, a failed unwrap is a failed test, with its location

use std::io::Write;
use std::path::{Path, PathBuf};
use strata_data::{open, DataError, Format};

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("strata-torch-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn arange(n: usize, offset: f32) -> Vec<f32> {
    (0..n).map(|k| k as f32 * 0.5 + offset).collect()
}

fn layer(path: &Path, name: &str) -> (Vec<usize>, Vec<f32>) {
    let a = open(path).unwrap();
    let i = a.layer_index(name).unwrap();
    let m = a.read_layer(i).unwrap();
    assert_eq!(m.nrows(), a.n());
    (a.layers()[i].shape.clone(), m.iter().copied().collect())
}

/// A `.safetensors` file by hand: 8-byte header length, JSON header, data.
fn safetensors(tensors: &[(&str, &str, &[usize], Vec<u8>)]) -> Vec<u8> {
    let (mut header, mut data) = (Vec::new(), Vec::new());
    for (name, dtype, shape, bytes) in tensors {
        let start = data.len();
        data.extend_from_slice(bytes);
        header.push(format!(
            "\"{name}\":{{\"dtype\":\"{dtype}\",\"shape\":{shape:?},\"data_offsets\":[{start},{}]}}",
            data.len()
        ));
    }
    let mut h = format!("{{{}}}", header.join(",")).into_bytes();
    while h.len() % 8 != 0 {
        h.push(b' ');
    }
    let mut out = (h.len() as u64).to_le_bytes().to_vec();
    out.extend(h);
    out.extend(data);
    out
}

#[test]
fn bf16_safetensors_read_as_the_f32_values_they_hold() {
    // Values exact in bf16 (8 significant bits), including negatives, a tiny and a large one.
    let want: Vec<f32> = vec![0.0, -1.5, 3.140625, 1e-30_f32, -65280.0, 0.5, 7.0, -0.25];
    let want: Vec<f32> = want
        .iter()
        .map(|v| f32::from_bits(v.to_bits() & 0xffff_0000))
        .collect();
    let bf16: Vec<u8> = want
        .iter()
        .flat_map(|v| ((v.to_bits() >> 16) as u16).to_le_bytes())
        .collect();
    let f32s: Vec<u8> = want.iter().flat_map(|v| v.to_le_bytes()).collect();
    let dir = scratch("bf16");
    let p = dir.join("acts.safetensors");
    std::fs::write(
        &p,
        safetensors(&[("h", "BF16", &[4, 2], bf16), ("ref", "F32", &[4, 2], f32s)]),
    )
    .unwrap();
    let a = open(&p).unwrap();
    assert_eq!(a.format(), Format::Safetensors);
    assert_eq!(a.n(), 4);
    let h = a.read_layer(a.layer_index("h").unwrap()).unwrap();
    let r = a.read_layer(a.layer_index("ref").unwrap()).unwrap();
    assert_eq!(h, r);
    assert_eq!(h.iter().copied().collect::<Vec<_>>(), want);
    // Streaming gives the same rows.
    let mut b = a.batches(&[0, 1], 3).unwrap();
    let first = b.next_batch().unwrap().unwrap();
    assert_eq!(first[0], first[1]);
    assert_eq!(first[0].nrows(), 3);
    let second = b.next_batch().unwrap().unwrap();
    assert_eq!(second[0].nrows(), 1);
    assert!(b.next_batch().unwrap().is_none());

    // A BF16 tensor whose offsets do not fit its shape is refused like an F16 one.
    let short = dir.join("short.safetensors");
    std::fs::write(&short, safetensors(&[("h", "BF16", &[4, 2], vec![0; 14])])).unwrap();
    let e = open(&short).err().unwrap();
    assert!(matches!(e, DataError::Corrupt { .. }), "{e}");

    // Integer tensors are still refused, naming what is read.
    let int = dir.join("int.safetensors");
    std::fs::write(&int, safetensors(&[("i", "I32", &[2, 1], vec![0; 8])])).unwrap();
    let e = open(&int).err().unwrap().to_string();
    assert!(e.contains("F16, BF16, F32 or F64"), "{e}");
}

#[test]
fn single_tensor_is_one_layer_named_after_the_file() {
    let p = fixture("single.pt");
    let a = open(&p).unwrap();
    assert_eq!(a.format(), Format::Pth);
    assert_eq!(a.format().to_string(), "pth");
    assert_eq!(a.n(), 4);
    assert_eq!(a.layers().len(), 1);
    assert_eq!(a.layers()[0].name, "single");
    assert_eq!(layer(&p, "single"), (vec![3], arange(12, 0.0)));
}

#[test]
fn dict_of_tensors_in_every_float_dtype() {
    let p = fixture("dict.pt");
    let a = open(&p).unwrap();
    let names: Vec<&str> = a.layers().iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, ["f32", "f16", "bf16", "f64", "block.conv"]);
    assert_eq!(a.n(), 4);
    assert_eq!(layer(&p, "f32"), (vec![3], arange(12, 0.0)));
    assert_eq!(layer(&p, "f16"), (vec![2], arange(8, 1.0)));
    assert_eq!(layer(&p, "bf16"), (vec![5], arange(20, 2.0)));
    assert_eq!(layer(&p, "f64"), (vec![3], arange(12, 3.0)));
    assert_eq!(layer(&p, "block.conv"), (vec![2, 2], arange(16, -1.0)));
    // Batches (read whole, then cut) agree with whole layers.
    let ids: Vec<usize> = (0..a.layers().len()).collect();
    let mut b = a.batches(&ids, 3).unwrap();
    let first = b.next_batch().unwrap().unwrap();
    assert_eq!(first[2].row(1).to_vec(), arange(10, 2.0)[5..].to_vec());
    assert_eq!(b.next_batch().unwrap().unwrap()[0].nrows(), 1);
    assert!(b.next_batch().unwrap().is_none());
}

#[test]
fn four_d_tensor_is_flattened_per_example() {
    let p = fixture("conv4d.pth");
    let a = open(&p).unwrap();
    assert_eq!(a.n(), 2);
    assert_eq!(a.layers()[0].name, "conv4d");
    assert_eq!(a.layers()[0].features, 12);
    let m = a.read_layer(0).unwrap();
    assert_eq!(m.row(1).to_vec(), arange(24, 0.0)[12..].to_vec());
}

#[test]
fn views_of_one_storage_honour_their_offsets() {
    let p = fixture("shared.pt");
    let a = open(&p).unwrap();
    assert_eq!(a.layers().len(), 2);
    assert_eq!(layer(&p, "all"), (vec![6], arange(24, 0.0)));
    assert_eq!(layer(&p, "tail"), (vec![4], arange(24, 0.0)[8..].to_vec()));
}

#[test]
fn integer_tensor_is_refused_naming_its_dtype() {
    let e = open(&fixture("int64.pt")).err().unwrap();
    assert!(matches!(e, DataError::Invalid { .. }), "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains("int64") && msg.contains("tensor.float()"),
        "{msg}"
    );
}

#[test]
fn npz_is_still_npz() {
    let dir = scratch("npz");
    let p = dir.join("a.npz");
    let mut z = zip::ZipWriter::new(std::fs::File::create(&p).unwrap());
    z.start_file("data.npy", zip::write::SimpleFileOptions::default())
        .unwrap();
    let mut npy = Vec::new();
    strata_data::npy::write_f32(&mut npy, &[2, 2], &[1.0, 2.0, 3.0, 4.0]).unwrap();
    z.write_all(&npy).unwrap();
    z.finish().unwrap();
    let a = open(&p).unwrap();
    assert_eq!(a.format(), Format::Npz);
    assert_eq!(a.layers()[0].name, "data");
}

#[test]
fn truncated_and_corrupted_pt_files_are_errors_not_panics() {
    let dir = scratch("cut");
    let bytes = std::fs::read(fixture("dict.pt")).unwrap();
    let p = dir.join("cut.pt");
    let mut errors = 0;
    for len in (0..bytes.len()).step_by(7) {
        std::fs::write(&p, &bytes[..len]).unwrap();
        match open(&p) {
            Err(_) => errors += 1,
            Ok(a) => {
                for i in 0..a.layers().len() {
                    let _ = a.read_layer(i);
                }
            }
        }
    }
    assert!(errors > bytes.len() / 7 / 2, "{errors}");
    // Flipped bytes anywhere (the pickle included): whatever comes out, it is not a panic.
    let mut rng = strata_data::rng::Rng::new(7);
    for _ in 0..400 {
        let mut b = bytes.clone();
        for _ in 0..3 {
            let at = rng.below(b.len() as u64) as usize;
            b[at] ^= 1 << rng.below(8);
        }
        std::fs::write(&p, &b).unwrap();
        if let Ok(a) = open(&p) {
            for i in 0..a.layers().len() {
                let _ = a.read_layer(i);
            }
        }
    }
}

/// A `torch.save`-shaped archive around a hand-written pickle and raw storages.
fn pt(pickle: &[u8], storages: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut z = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    z.start_file("archive/data.pkl", opts).unwrap();
    z.write_all(pickle).unwrap();
    for (key, data) in storages {
        z.start_file(format!("archive/data/{key}"), opts).unwrap();
        z.write_all(data).unwrap();
    }
    z.finish().unwrap().into_inner()
}

fn long(v: i64) -> Vec<u8> {
    let mut b = vec![0x8a, 8];
    b.extend(v.to_le_bytes());
    b
}

/// `_rebuild_tensor_v2(('storage', FloatStorage, '0', 'cpu', numel), offset, size, stride, ...)`.
fn tensor_pickle(numel: i64, offset: i64, size: &[i64], stride: &[i64]) -> Vec<u8> {
    let s = |t: &str| {
        let mut b = vec![b'X'];
        b.extend((t.len() as u32).to_le_bytes());
        b.extend(t.as_bytes());
        b
    };
    let mut p = b"\x80\x02ctorch._utils\n_rebuild_tensor_v2\n((".to_vec();
    p.extend(s("storage"));
    p.extend(b"ctorch\nFloatStorage\n");
    p.extend(s("0"));
    p.extend(s("cpu"));
    p.extend(long(numel));
    p.extend(b"tQ");
    p.extend(long(offset));
    for dims in [size, stride] {
        p.push(b'(');
        for &d in dims {
            p.extend(long(d));
        }
        p.push(b't');
    }
    p.extend(b"\x89ccollections\nOrderedDict\n)Rt");
    p.extend(b"R.");
    p
}

#[test]
fn hand_written_pickle_reads_and_its_lies_are_caught_before_allocating() {
    let dir = scratch("lies");
    let p = dir.join("t.pt");
    let data: Vec<u8> = arange(6, 0.0)
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    std::fs::write(
        &p,
        pt(
            &tensor_pickle(6, 0, &[3, 2], &[2, 1]),
            &[("0", data.clone())],
        ),
    )
    .unwrap();
    assert_eq!(layer(&p, "t"), (vec![2], arange(6, 0.0)));

    let cases: [(&str, Vec<u8>, Vec<u8>, &str); 5] = [
        // A shape far beyond its storage.
        (
            "outside",
            tensor_pickle(6, 0, &[1 << 40, 1 << 20], &[1 << 20, 1]),
            data.clone(),
            "outside its storage",
        ),
        // A storage claiming more than its entry holds.
        (
            "storage",
            tensor_pickle(1 << 40, 0, &[3, 2], &[2, 1]),
            data.clone(),
            "zip entry holds",
        ),
        // Strides that are not C order.
        (
            "strided",
            tensor_pickle(6, 0, &[3, 2], &[1, 3]),
            data.clone(),
            "not contiguous",
        ),
        // A shape whose element count overflows.
        (
            "overflow",
            tensor_pickle(6, 0, &[1 << 62, 1 << 62], &[1 << 62, 1]),
            data.clone(),
            "too large",
        ),
        // A negative dimension.
        (
            "negative",
            tensor_pickle(6, 0, &[-3, 2], &[2, 1]),
            data.clone(),
            "bad size",
        ),
    ];
    for (name, pickle, data, why) in cases {
        std::fs::write(&p, pt(&pickle, &[("0", data)])).unwrap();
        let e = open(&p).err().unwrap().to_string();
        assert!(e.contains(why), "{name}: {e}");
    }
}

#[test]
fn hostile_pickles_end_in_errors_quickly() {
    let dir = scratch("hostile");
    let p = dir.join("h.pt");
    let mut bombs: Vec<(&str, Vec<u8>, &str)> = Vec::new();
    // Memo doubling: t = (t, t) two hundred times would be 2^200 objects if copied.
    let mut b = b"\x80\x02]q\x00".to_vec();
    for _ in 0..200 {
        b.extend(b"h\x00h\x00\x86q\x00");
    }
    b.push(b'.');
    bombs.push(("doubling", b, "deeper than"));
    // A million nested lists (a stack overflow when dropped, if allowed).
    let mut b = b"\x80\x02".to_vec();
    b.extend(std::iter::repeat_n(b']', 1_000_000));
    b.extend(std::iter::repeat_n(b'a', 999_999));
    b.push(b'.');
    bombs.push(("deep", b, "deeper than"));
    // A string claiming 4 GiB.
    bombs.push((
        "string",
        b"\x80\x02X\xff\xff\xff\xff.".to_vec(),
        "truncated",
    ));
    // Opcodes strata does not run, marks that are not there, an empty stack.
    bombs.push(("opcode", b"\x80\x02\xff.".to_vec(), "opcode 0xff"));
    bombs.push(("mark", b"\x80\x02t.".to_vec(), "mark"));
    bombs.push(("empty", b"\x80\x02.".to_vec(), "empty stack"));
    bombs.push(("nothing", b"\x80\x02".to_vec(), "truncated"));
    for (name, pickle, why) in bombs {
        std::fs::write(&p, pt(&pickle, &[])).unwrap();
        let t = std::time::Instant::now();
        let e = open(&p).err().unwrap().to_string();
        assert!(e.contains(why), "{name}: {e}");
        assert!(t.elapsed().as_secs() < 5, "{name} took {:?}", t.elapsed());
    }
}

#[test]
fn legacy_torch_save_gets_a_hint() {
    let dir = scratch("legacy");
    let p = dir.join("old.pt");
    std::fs::write(&p, b"\x80\x02\x8a\x0alZ\xfc\x9cF\xf9 j\xa8P\x19.").unwrap();
    let e = open(&p).err().unwrap().to_string();
    assert!(e.contains("legacy"), "{e}");
}
