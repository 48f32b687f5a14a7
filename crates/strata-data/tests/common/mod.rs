//! Helpers shared by the format tests and the fuzz tests.
#![allow(clippy::unwrap_used)] // in tests, a failed unwrap is a failed test, with its location

use std::io::Write;

/// The bytes of an `.npz` holding each `(name, npy bytes)` as `name.npy`, deflated or stored.
pub fn npz(arrays: &[(&str, Vec<u8>)], deflate: bool) -> Vec<u8> {
    let mut z = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let method = if deflate {
        zip::CompressionMethod::Deflated
    } else {
        zip::CompressionMethod::Stored
    };
    let opts = zip::write::SimpleFileOptions::default().compression_method(method);
    for (name, bytes) in arrays {
        z.start_file(format!("{name}.npy"), opts).unwrap();
        z.write_all(bytes).unwrap();
    }
    z.finish().unwrap().into_inner()
}
