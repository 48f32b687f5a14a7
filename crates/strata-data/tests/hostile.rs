//! Crafted hostile files: archives that claim far more data than they hold, headers that point
//! outside the file, and the one-line errors each must give, before anything large is
//! allocated.
#![allow(clippy::unwrap_used)] // in tests, a failed unwrap is a failed test, with its location

use std::io::Write;
use std::path::{Path, PathBuf};
use strata_data::{npy, open, DataError};

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("strata-hostile-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A `.npy` header claiming `shape` (float32), followed by `data` bytes of payload.
fn npy_claiming(shape: &[usize], data: usize) -> Vec<u8> {
    let mut v = Vec::new();
    npy::write_f32(&mut v, shape, &[]).unwrap();
    v.extend(std::iter::repeat_n(0u8, data));
    v
}

fn crc32(data: &[u8]) -> u32 {
    let mut c = flate2::Crc::new();
    c.update(data);
    c.sum()
}

fn deflate(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// A one-entry zip written by hand, so the sizes it declares can be anything.
fn raw_zip(name: &str, method: u16, data: &[u8], crc: u32, declared: u32) -> Vec<u8> {
    let mut o = Vec::new();
    let put16 = |o: &mut Vec<u8>, v: u16| o.extend_from_slice(&v.to_le_bytes());
    let put32 = |o: &mut Vec<u8>, v: u32| o.extend_from_slice(&v.to_le_bytes());
    put32(&mut o, 0x0403_4b50);
    for v in [20, 0, method, 0, 0] {
        put16(&mut o, v);
    }
    put32(&mut o, crc);
    put32(&mut o, data.len() as u32);
    put32(&mut o, declared);
    put16(&mut o, name.len() as u16);
    put16(&mut o, 0);
    o.extend_from_slice(name.as_bytes());
    o.extend_from_slice(data);
    let cd = o.len();
    put32(&mut o, 0x0201_4b50);
    for v in [20, 20, 0, method, 0, 0] {
        put16(&mut o, v);
    }
    put32(&mut o, crc);
    put32(&mut o, data.len() as u32);
    put32(&mut o, declared);
    put16(&mut o, name.len() as u16);
    for v in [0, 0, 0, 0] {
        put16(&mut o, v);
    }
    put32(&mut o, 0);
    put32(&mut o, 0);
    o.extend_from_slice(name.as_bytes());
    let cd_len = o.len() - cd;
    put32(&mut o, 0x0605_4b50);
    for v in [0, 0, 1, 1] {
        put16(&mut o, v);
    }
    put32(&mut o, cd_len as u32);
    put32(&mut o, cd as u32);
    put16(&mut o, 0);
    o
}

fn one_line(e: &DataError, file: &str) -> String {
    let m = e.to_string();
    assert!(!m.contains('\n'), "one line please: {m}");
    assert!(m.contains(file), "names the file: {m}");
    m
}

/// A bomb as found in the wild: 973,078,528 float32 (3.9 GB) behind a few kilobytes.
const CLAIM: usize = 973_078_528;

#[test]
fn npz_member_whose_shape_disagrees_with_its_entry_is_refused() {
    let dir = scratch("npz-shape");
    let p = dir.join("bomb.npz");
    let mut z = zip::ZipWriter::new(std::fs::File::create(&p).unwrap());
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    z.start_file("acts.npy", opts).unwrap();
    z.write_all(&npy_claiming(&[CLAIM, 1], 4096)).unwrap();
    z.finish().unwrap();
    let e = open(&p).err().expect("must not open");
    assert!(matches!(e, DataError::Corrupt { .. }), "{e}");
    let m = one_line(&e, "bomb.npz");
    assert!(
        m.contains("array 'acts'") && m.contains("needs 3892314240 bytes but the zip entry holds"),
        "{m}"
    );
}

#[test]
fn npz_claiming_more_than_deflate_can_reach_is_refused_before_inflating() {
    let dir = scratch("npz-ratio");
    let header = npy_claiming(&[CLAIM, 1], 0);
    let declared = header.len() + CLAIM * 4;
    let data = deflate(&header);
    let p = dir.join("bomb.npz");
    std::fs::write(
        &p,
        raw_zip("acts.npy", 8, &data, crc32(&header), declared as u32),
    )
    .unwrap();
    let e = open(&p).err().expect("must not open");
    assert!(matches!(e, DataError::Corrupt { .. }), "{e}");
    let m = one_line(&e, "bomb.npz");
    assert!(m.contains("beyond the 1032:1"), "{m}");
    // A stored (uncompressed) entry cannot hold more than it occupies either.
    std::fs::write(
        &p,
        raw_zip("acts.npy", 0, &header, crc32(&header), declared as u32),
    )
    .unwrap();
    let m = open(&p).err().expect("must not open").to_string();
    assert!(m.contains("occupies"), "{m}");
}

/// A plausible-ratio bomb: 3.9 GB claimed behind 3.8 MB of compressed bytes. Written once per
/// test run; it opens (its sizes agree) but reading it must be refused by the memory check,
/// which a child process with a 2.4 GB address-space limit demonstrates.
fn plausible_bomb(dir: &Path) -> PathBuf {
    let header = npy_claiming(&[CLAIM, 1], 0);
    let declared = (header.len() + CLAIM * 4) as u64;
    let mut data = deflate(&header);
    data.resize((declared / 1000) as usize, 0);
    let p = dir.join("plausible.npz");
    std::fs::write(
        &p,
        raw_zip("acts.npy", 8, &data, crc32(&header), declared as u32),
    )
    .unwrap();
    p
}

#[test]
fn npz_bomb_that_fits_its_ratio_is_refused_by_the_memory_check() {
    let dir = scratch("npz-mem");
    let p = plausible_bomb(&dir);
    let a = open(&p).expect("sizes agree, so it opens");
    assert_eq!((a.n(), a.layers()[0].features), (CLAIM, 1));
    // Read it in a child whose address space is limited, so that the check (not the machine's
    // size) decides; never here, where the machine might have the memory.
    let exe = std::env::current_exe().unwrap();
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg("ulimit -v 2400000 && exec \"$0\" \"$@\"")
        .arg(&exe)
        .args([
            "--exact",
            "child_reads_plausible_bomb",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env("STRATA_HOSTILE_CHILD", &p)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "child failed:\n{text}");
    assert!(text.contains("CHILD-REFUSED"), "child did not run:\n{text}");
}

/// Runs only inside the child started above.
#[test]
fn child_reads_plausible_bomb() {
    let Some(p) = std::env::var_os("STRATA_HOSTILE_CHILD") else {
        return;
    };
    let a = open(Path::new(&p)).unwrap();
    let e = a.read_layer(0).expect_err("must be refused");
    assert!(matches!(e, DataError::TooLarge { .. }), "{e}");
    let m = one_line(&e, "plausible.npz");
    assert!(
        m.contains("reading layer 'acts' (973078528 x 1 float32) needs 3.6 GiB"),
        "{m}"
    );
    println!("CHILD-REFUSED: {m}");
}

#[test]
fn npy_shape_beyond_the_file_is_refused() {
    let dir = scratch("npy");
    let p = dir.join("big.npy");
    std::fs::write(&p, npy_claiming(&[CLAIM, 1], 4096)).unwrap();
    let e = open(&p).err().expect("must not open");
    assert!(matches!(e, DataError::Corrupt { .. }), "{e}");
    assert!(one_line(&e, "big.npy").contains("truncated"), "{e}");
    // A shape whose byte count overflows.
    std::fs::write(&p, npy_claiming(&[usize::MAX / 2, 3], 64)).unwrap();
    let e = open(&p).err().expect("must not open");
    assert!(one_line(&e, "big.npy").contains("shape too large"), "{e}");
}

/// A safetensors file from a header written by hand and `data` bytes.
fn st(header: &str, data: usize) -> Vec<u8> {
    let mut v = (header.len() as u64).to_le_bytes().to_vec();
    v.extend_from_slice(header.as_bytes());
    v.extend(std::iter::repeat_n(0u8, data));
    v
}

const INTERNAL_NAMES: [&str; 9] = [
    "TensorInvalidInfo",
    "InvalidOffset",
    "InvalidHeaderLength",
    "MetadataIncompleteBuffer",
    "ValidationOverflow",
    "HeaderTooLarge",
    "HeaderTooSmall",
    "InvalidHeaderDeserialization",
    "SafeTensorError",
];

#[test]
fn safetensors_faults_read_as_plain_english() {
    let dir = scratch("st");
    let p = dir.join("model.safetensors");
    let fc1 = r#""fc1":{"dtype":"F32","shape":[4,3],"data_offsets":[0,48]}"#;
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (
            st(&format!("{{{fc1}}}"), 40),
            "data should end at byte 115 but the file has only 107 bytes (truncated file)",
        ),
        (
            st(&format!("{{{fc1}}}"), 60),
            "data ends at byte 115 but the file has 127 bytes",
        ),
        (
            st(
                &format!(
                    r#"{{{fc1},"fc2":{{"dtype":"F16","shape":[4,2],"data_offsets":[48,60]}}}}"#
                ),
                60,
            ),
            "tensor 'fc2': a F16 tensor of shape [4, 2] needs 16 bytes but its data offsets \
             [48, 60] span 12",
        ),
        (
            st(
                &format!(
                    r#"{{{fc1},"fc2":{{"dtype":"F16","shape":[4,2],"data_offsets":[50,66]}}}}"#
                ),
                66,
            ),
            "tensor 'fc2': its data offsets do not start where the previous tensor's data ends",
        ),
        (
            st(
                r#"{"fc1":{"dtype":"F32","shape":[18446744073709551615,2],"data_offsets":[0,8]}}"#,
                8,
            ),
            "tensor 'fc1': its shape [18446744073709551615, 2] is too large to address",
        ),
        (
            st(
                r#"{"fc1":{"dtype":"F32","shape":[4,3],"data_offsets":[0,48]"#,
                48,
            ),
            "its JSON header is malformed",
        ),
    ];
    for (bytes, want) in cases {
        std::fs::write(&p, &bytes).unwrap();
        let e = open(&p).err().expect("must not open");
        let m = one_line(&e, "model.safetensors");
        assert!(m.contains(want), "want '{want}' in: {m}");
        for name in INTERNAL_NAMES {
            assert!(!m.contains(name), "leaks '{name}': {m}");
        }
    }
    // A length prefix that runs past the end of the file.
    let mut bytes = st(&format!("{{{fc1}}}"), 48);
    let claimed = bytes.len() as u64 + 1000;
    bytes[..8].copy_from_slice(&claimed.to_le_bytes());
    std::fs::write(&p, &bytes).unwrap();
    let m = one_line(&open(&p).err().unwrap(), "model.safetensors");
    assert!(
        m.contains(&format!("its header claims {claimed} bytes but only")),
        "{m}"
    );
}

#[test]
fn safetensors_message_is_public_for_other_loaders() {
    let bytes = st(
        r#"{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#,
        4,
    );
    let err = safetensors::SafeTensors::deserialize(&bytes).err().unwrap();
    let bare = strata_data::safetensors_error_message(&err);
    let named = strata_data::safetensors_error_message_in(&err, &bytes);
    for m in [&bare, &named] {
        assert!(
            !m.contains('\n') && !m.contains("MetadataIncompleteBuffer"),
            "{m}"
        );
        assert!(m.contains("truncated"), "{m}");
    }
    assert!(named.contains("byte 70"), "{named}");
}
