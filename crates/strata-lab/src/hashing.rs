//! Content hashes and process liveness, shared by the analysis cache, the membership audit's
//! cache of trained models, and the sweeps of temporary files: kept apart so those modules do
//! not depend on each other.

use sha2::{Digest, Sha256};
use std::path::Path;
use strata_data::dataset::{Dataset, Splits};

/// Lowercase hex of the SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// Size in bytes and lowercase hex SHA-256 of the file at `path`, read in chunks.
pub fn sha256_file(path: &Path) -> std::io::Result<(u64, String)> {
    use std::io::Read;
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let got = f.read(&mut buf)?;
        if got == 0 {
            break;
        }
        h.update(&buf[..got]);
        size += got as u64;
    }
    Ok((size, hex(&h.finalize())))
}

pub(crate) fn hex(b: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(b.len() * 2);
    for &x in b {
        s.push(DIGITS[(x >> 4) as usize] as char);
        s.push(DIGITS[(x & 15) as usize] as char);
    }
    s
}

fn hash_dataset(h: &mut Sha256, d: &Dataset) {
    h.update((d.len() as u64).to_le_bytes());
    h.update((d.classes as u64).to_le_bytes());
    for s in &d.shape {
        h.update((*s as u64).to_le_bytes());
    }
    for v in d.x.iter() {
        h.update(v.to_bits().to_le_bytes());
    }
    for y in &d.y {
        h.update(y.to_le_bytes());
    }
}

/// SHA-256 of a data set's content (both splits, after any train limit): the same examples give
/// the same fingerprint wherever they were read from.
pub fn data_fingerprint(s: &Splits) -> String {
    let mut h = Sha256::new();
    h.update(b"train");
    hash_dataset(&mut h, &s.train);
    h.update(b"test");
    hash_dataset(&mut h, &s.test);
    hex(&h.finalize())
}

/// True while process `pid` exists (Linux `/proc`; elsewhere assume it does, and keep its files).
pub fn process_alive(pid: u32) -> bool {
    if pid == std::process::id() {
        return true;
    }
    if Path::new("/proc/self").exists() {
        Path::new(&format!("/proc/{pid}")).exists()
    } else {
        true
    }
}
