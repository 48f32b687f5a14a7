//! Seeded mutation fuzzing of every reader in this crate: `.npy`, `.npz`, `.safetensors`, Arrow
//! IPC and Parquet (through `strata_data::open`, reading every layer whole and streamed), and
//! the tabular CSV loader.
//!
//! Each test builds a small valid file, then reads thousands of seeded mutations of it (bit
//! flips, truncations at many lengths, inserted and deleted bytes, size and shape fields
//! overwritten with extreme values) and asserts, for every one:
//!
//! * no panic (a panic anywhere in a reader fails the test, with the case that caused it);
//! * either an error, or data of exactly the declared shape;
//! * bounded memory: the global allocator of this test binary refuses (and records) any single
//!   allocation over 256 MiB, and the test fails if one was asked for, since every input here
//!   is under 100 KB.
//!
//! The mutations come from a local SplitMix64 stream, so every run reads the same files. Set
//! `STRATA_FUZZ_VERBOSE=1` to print each case before it runs (to find one that aborts).
#![allow(clippy::unwrap_used)] // in tests, a failed unwrap is a failed test, with its location

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use strata_data::store::{LayerSpec, StoreWriter};
use strata_data::{npy, open};

mod common;
use common::npz;

/// Largest single allocation any reader may ask for while reading a file of under 100 KB.
const CAP: usize = 256 << 20;

thread_local! {
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

fn note(size: usize) {
    let _ = LARGEST.try_with(|c| {
        if size > c.get() {
            c.set(size)
        }
    });
}

/// The system allocator, except that it records the largest request made on each thread and
/// refuses any over [`CAP`] (so a reader that trusts a hostile size fails here, visibly,
/// instead of exhausting the machine).
struct Capped;

unsafe impl GlobalAlloc for Capped {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        note(l.size());
        if l.size() > CAP {
            return std::ptr::null_mut();
        }
        unsafe { System.alloc(l) }
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        note(l.size());
        if l.size() > CAP {
            return std::ptr::null_mut();
        }
        unsafe { System.alloc_zeroed(l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        note(new);
        if new > CAP {
            return std::ptr::null_mut();
        }
        unsafe { System.realloc(p, l, new) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) }
    }
}

#[global_allocator]
static ALLOC: Capped = Capped;

/// SplitMix64: a few lines, and the same stream on every machine.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Values that break size arithmetic.
const EXTREMES: [u64; 10] = [
    u64::MAX,
    u64::MAX - 7,
    1 << 63,
    u32::MAX as u64,
    1 << 32,
    1 << 31,
    (1 << 31) - 1,
    i32::MAX as u64 + 1,
    0,
    1,
];

/// Decimal numbers that break shapes written as text (`.npy` headers, safetensors JSON).
const BIG_TEXT: [&str; 8] = [
    "18446744073709551615",
    "18446744073709551616",
    "9223372036854775808",
    "4294967296",
    "2147483648",
    "973078528",
    "0",
    "99999999999999999999999999",
];

/// One seeded mutation of `base`, and a description of it.
fn mutate(base: &[u8], rng: &mut SplitMix) -> (Vec<u8>, String) {
    let mut b = base.to_vec();
    let len = b.len();
    let kind = rng.below(8);
    let what = match kind {
        0 => {
            let flips = 1 + rng.below(8);
            for _ in 0..flips {
                let at = rng.below(len);
                b[at] ^= 1 << rng.below(8);
            }
            format!("{flips} bit flips")
        }
        1 => {
            let at = rng.below(len);
            b.truncate(at);
            format!("truncated to {at}")
        }
        2 => {
            let at = rng.below(len + 1);
            let k = 1 + rng.below(16);
            let ins: Vec<u8> = (0..k).map(|_| rng.next() as u8).collect();
            b.splice(at..at, ins);
            format!("{k} bytes inserted at {at}")
        }
        3 => {
            let at = rng.below(len);
            let k = (1 + rng.below(64)).min(len - at);
            b.drain(at..at + k);
            format!("{k} bytes deleted at {at}")
        }
        4 | 5 => {
            // An integer field overwritten with an extreme value, at any offset and width.
            let v = EXTREMES[rng.below(EXTREMES.len())];
            let width = [2usize, 4, 8][rng.below(3)];
            let at = rng.below(len.saturating_sub(width).max(1));
            let bytes = v.to_le_bytes();
            let end = (at + width).min(len);
            b[at..end].copy_from_slice(&bytes[..end - at]);
            format!("u{} {v:#x} written at {at}", width * 8)
        }
        6 => {
            // A run of ASCII digits (a shape or offset in a text header) made extreme.
            let starts: Vec<usize> = (0..len)
                .filter(|&i| b[i].is_ascii_digit() && (i == 0 || !b[i - 1].is_ascii_digit()))
                .collect();
            if starts.is_empty() {
                let at = rng.below(len);
                b[at] = b'9';
                format!("byte {at} set to '9'")
            } else {
                let s = starts[rng.below(starts.len())];
                let e = (s..len).find(|&i| !b[i].is_ascii_digit()).unwrap_or(len);
                let t = BIG_TEXT[rng.below(BIG_TEXT.len())];
                b.splice(s..e, t.bytes());
                format!("number at {s} replaced by {t}")
            }
        }
        _ => {
            // A chunk copied over another place (structures pointing at the wrong data).
            let from = rng.below(len);
            let k = (1 + rng.below(32)).min(len - from);
            let to = rng.below(len - k + 1);
            let chunk = b[from..from + k].to_vec();
            b[to..to + k].copy_from_slice(&chunk);
            format!("{k} bytes copied from {from} to {to}")
        }
    };
    (b, what)
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("strata-fuzz-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// What reading a case must satisfy; returns a description of a violation.
type Check = dyn Fn(&Path) -> Result<(), String>;

/// Read every layer of an activation file whole and streamed; data must have the declared
/// shape whenever it comes back.
fn check_activations(path: &Path) -> Result<(), String> {
    let Ok(a) = open(path) else {
        return Ok(());
    };
    let n = a.n();
    if n == 0 || a.layers().is_empty() {
        return Err(format!("opened with n = {n}, {} layers", a.layers().len()));
    }
    for (i, l) in a.layers().iter().enumerate() {
        if l.features != l.shape.iter().product::<usize>() || l.features == 0 {
            return Err(format!(
                "layer {i}: features {} vs shape {:?}",
                l.features, l.shape
            ));
        }
        if let Ok(m) = a.read_layer(i) {
            if m.dim() != (n, l.features) {
                return Err(format!(
                    "layer {i}: read {:?}, declared ({n}, {})",
                    m.dim(),
                    l.features
                ));
            }
        }
    }
    let ids: Vec<usize> = (0..a.layers().len()).collect();
    if let Ok(mut br) = a.batches(&ids, 7) {
        let mut seen = 0;
        while let Ok(Some(b)) = br.next_batch() {
            let rows = b[0].nrows();
            for (m, l) in b.iter().zip(a.layers()) {
                if m.dim() != (rows, l.features) || rows == 0 || rows > 7 {
                    return Err(format!("batch of {:?} for layer '{}'", m.dim(), l.name));
                }
            }
            seen += rows;
            if seen > n {
                return Err(format!("streamed {seen} rows of {n}"));
            }
        }
    }
    Ok(())
}

/// Load a CSV; when it loads, the splits must be consistent.
fn check_csv(path: &Path) -> Result<(), String> {
    let Ok((s, report)) = strata_data::tabular::csv_with_report(path, "label") else {
        return Ok(());
    };
    let k = s.train.classes;
    if k < 2 || k != report.classes.len() || s.test.classes != k {
        return Err(format!("{k} classes, report {:?}", report.classes));
    }
    for d in [&s.train, &s.test] {
        if d.x.nrows() != d.y.len() || d.x.ncols() != report.features.len() {
            return Err(format!(
                "x {:?}, {} labels, {} features",
                d.x.dim(),
                d.y.len(),
                report.features.len()
            ));
        }
        if d.y.iter().any(|&y| y as usize >= k) || d.x.iter().any(|v| !v.is_finite()) {
            return Err("label out of range or non-finite feature".into());
        }
    }
    Ok(())
}

/// Run `cases` seeded mutations of each base (after truncating each at up to 300 lengths) and
/// fail with every violation found.
fn fuzz(name: &str, ext: &str, bases: &[Vec<u8>], cases: usize, seed: u64, check: &Check) {
    let dir = scratch(name);
    let verbose = std::env::var_os("STRATA_FUZZ_VERBOSE").is_some();
    let mut rng = SplitMix(seed);
    let mut failures = Vec::new();
    let mut run = |k: usize, bytes: &[u8], what: &str| {
        let p = dir.join(format!("case.{ext}"));
        std::fs::write(&p, bytes).unwrap();
        if verbose {
            eprintln!("{name} case {k}: {what}");
        }
        LARGEST.with(|c| c.set(0));
        let res = catch_unwind(AssertUnwindSafe(|| check(&p)));
        let largest = LARGEST.with(|c| c.get());
        let problem = match res {
            Err(e) => Some(format!(
                "panicked: {}",
                e.downcast_ref::<String>()
                    .map(String::as_str)
                    .or_else(|| e.downcast_ref::<&str>().copied())
                    .unwrap_or("?")
            )),
            Ok(Err(m)) => Some(m),
            Ok(Ok(())) if largest > CAP => Some(format!("asked for {largest} bytes at once")),
            Ok(Ok(())) => None,
        };
        if let Some(m) = problem {
            failures.push(format!(
                "{name} case {k} ({what}, {} bytes): {m}",
                bytes.len()
            ));
        }
    };
    let mut k = 0;
    for base in bases {
        assert!(base.len() < 100_000);
        // The unmutated file must load, and read cleanly.
        let p = dir.join(format!("base.{ext}"));
        std::fs::write(&p, base).unwrap();
        if ext == "csv" {
            strata_data::tabular::csv(&p, "label").unwrap();
        } else {
            let a = open(&p).unwrap();
            for i in 0..a.layers().len() {
                a.read_layer(i).unwrap();
            }
        }
        check(&p).unwrap();
        let step = base.len().div_ceil(300).max(1);
        for cut in (0..base.len()).step_by(step) {
            run(k, &base[..cut], &format!("truncated to {cut}"));
            k += 1;
        }
        for _ in 0..cases {
            let (bytes, what) = mutate(base, &mut rng);
            run(k, &bytes, &what);
            k += 1;
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        failures.is_empty(),
        "{} of {k} cases failed:\n{}",
        failures.len(),
        failures
            .iter()
            .take(20)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut r = SplitMix(seed);
    (0..n)
        .map(|_| (r.next() >> 40) as f32 / (1u64 << 24) as f32 - 0.5)
        .collect()
}

fn npy_f32(shape: &[usize], seed: u64) -> Vec<u8> {
    let mut v = Vec::new();
    npy::write_f32(&mut v, shape, &values(shape.iter().product(), seed)).unwrap();
    v
}

fn npy_f64_fortran(shape: &[usize]) -> Vec<u8> {
    let data: Vec<f64> = values(shape.iter().product(), 9)
        .iter()
        .map(|&v| v as f64)
        .collect();
    let mut v = Vec::new();
    npy::write_f64(&mut v, shape, &data).unwrap();
    let off = npy::parse_header(&v).unwrap().data_offset;
    let text = String::from_utf8(v[10..off].to_vec())
        .unwrap()
        .replace("'fortran_order': False", "'fortran_order': True ");
    v.splice(10..off, text.into_bytes());
    v
}

#[test]
fn fuzz_npy() {
    let bases = [npy_f32(&[6, 5], 1), npy_f64_fortran(&[4, 3, 2])];
    fuzz("npy", "npy", &bases, 2500, 0x5eed_0001, &check_activations);
}

#[test]
fn fuzz_npz() {
    let members = [
        ("fc1", npy_f32(&[8, 6], 2)),
        ("conv", npy_f64_fortran(&[8, 2, 2])),
    ];
    let bases = [npz(&members, true), npz(&members, false)];
    fuzz("npz", "npz", &bases, 2000, 0x5eed_0002, &check_activations);
}

fn safetensors_file() -> Vec<u8> {
    use safetensors::tensor::{serialize, Dtype, TensorView};
    let a: Vec<u8> = values(12, 3).iter().flat_map(|v| v.to_le_bytes()).collect();
    let b: Vec<u8> = values(8, 4)
        .iter()
        .flat_map(|&v| half::f16::from_f32(v).to_bits().to_le_bytes())
        .collect();
    let views = vec![
        ("fc1", TensorView::new(Dtype::F32, vec![4, 3], &a).unwrap()),
        ("fc2", TensorView::new(Dtype::F16, vec![4, 2], &b).unwrap()),
    ];
    let meta = std::collections::HashMap::from([(
        "strata.layers".to_string(),
        "[\"fc1\", \"fc2\"]".to_string(),
    )]);
    serialize(views, Some(meta)).unwrap()
}

#[test]
fn fuzz_safetensors() {
    fuzz(
        "safetensors",
        "safetensors",
        &[safetensors_file()],
        4000,
        0x5eed_0003,
        &check_activations,
    );
}

fn store_file(ext: &str) -> Vec<u8> {
    let dir = scratch(&format!("base-{ext}"));
    let p = dir.join(format!("acts.{ext}"));
    let specs = [
        LayerSpec::new("conv", &[2, 2, 2]),
        LayerSpec::new("fc", &[3]),
    ];
    let mut w = StoreWriter::create(&p, &specs, &serde_json::json!({"model": "fuzz"})).unwrap();
    for (k, rows) in [5usize, 1, 6].into_iter().enumerate() {
        let a =
            ndarray::Array2::from_shape_vec((rows, 8), values(rows * 8, 10 + k as u64)).unwrap();
        let b =
            ndarray::Array2::from_shape_vec((rows, 3), values(rows * 3, 20 + k as u64)).unwrap();
        w.write_batch(&[a.view(), b.view()]).unwrap();
    }
    w.finish().unwrap();
    let bytes = std::fs::read(&p).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    bytes
}

#[test]
fn fuzz_arrow_ipc() {
    fuzz(
        "arrow",
        "arrow",
        &[store_file("arrow")],
        2500,
        0x5eed_0004,
        &check_activations,
    );
}

#[test]
fn fuzz_parquet() {
    fuzz(
        "parquet",
        "parquet",
        &[store_file("parquet")],
        2500,
        0x5eed_0005,
        &check_activations,
    );
}

#[test]
fn fuzz_csv() {
    let mut text = String::from("\u{feff}age,colour,score,label\n");
    for i in 0..40 {
        let age = if i % 9 == 4 {
            "nan".to_string()
        } else {
            (20 + i).to_string()
        };
        let colour = ["red", "green", "\"blue, dark\"", "?"][i % 4];
        let label = ["yes", "no", "NA"][if i % 13 == 7 { 2 } else { i % 2 }];
        text.push_str(&format!("{age},{colour},{}.5,{label}\n", i % 7));
    }
    fuzz(
        "csv",
        "csv",
        &[text.into_bytes()],
        3000,
        0x5eed_0006,
        &check_csv,
    );
}
