//! The header's claims are checked against what the file can hold before any decoding: a forged
//! length is refused at once (not after hours of decoding and a failed checksum), while the most
//! compressible real inputs, which come closest to the bound, still round-trip.
#![allow(clippy::unwrap_used)] // in tests, a failed unwrap is a failed test, with its location

use strata_zip::varint::put as put_varint;
use strata_zip::{
    compress, decompress, info, Alphabet, AlphabetChoice, ModelSpec, Options, ZipError, MAGIC,
    VERSION,
};

/// A container header written by hand (format: magic, version, method 1, CRC-32, LEB128
/// length, alphabet, model spec), for the default `cm` model.
fn header(len: u64, alphabet: &[u8]) -> Vec<u8> {
    let mut h = MAGIC.to_vec();
    h.push(VERSION);
    h.push(1);
    h.extend_from_slice(&0xdead_beef_u32.to_le_bytes());
    put_varint(&mut h, len);
    h.extend_from_slice(alphabet);
    h.extend_from_slice(&[0, 0]); // cm, (no cell)
    for v in [1, 32, 16] {
        put_varint(&mut h, v);
    }
    h.extend_from_slice(&0.005f32.to_bits().to_le_bytes());
    put_varint(&mut h, 0);
    h
}

fn opts(alphabet: AlphabetChoice) -> Options {
    Options {
        model: ModelSpec::parse("cm").unwrap(),
        alphabet,
        threads: 2,
    }
}

#[test]
fn a_forged_huge_length_is_refused_from_the_header() {
    // 440 KB of zeros behind a header claiming 10^10 bytes: a binary alphabet (1 bit per byte,
    // the cheapest claim there is), bits (8 per byte) and bytes. Each bit costs at least
    // log2(4097/4096) bits of code, so 440,000 bytes hold at most (8 * 440,000 + 32) * 2840
    // bits, just under 10^10.
    let payload = vec![0u8; 440_000];
    for (alphabet, per_byte) in [(&[2u8, 2, 0, 1][..], 1u64), (&[1], 8), (&[0], 8)] {
        let mut c = header(10_000_000_000, alphabet);
        c.extend_from_slice(&payload);
        let max = (8 * payload.len() as u64 + 32) * 2840 / per_byte;
        assert!(max < 10_000_000_000);
        for e in [info(&c).unwrap_err(), decompress(&c).unwrap_err()] {
            match &e {
                ZipError::Oversized {
                    claimed,
                    stream_len,
                    max: m,
                    ..
                } => {
                    assert_eq!(*claimed, 10_000_000_000);
                    assert_eq!(*stream_len, payload.len() as u64);
                    assert_eq!(*m, max);
                }
                other => panic!("{alphabet:?}: {other}"),
            }
            let msg = e.to_string();
            assert_eq!(msg.lines().count(), 1);
            assert!(
                msg.contains(
                    "header claims 10000000000 bytes but the 440000-byte stream can code at most"
                ),
                "{msg}"
            );
        }
    }
    // Absurd lengths in every field size, on an almost empty file.
    for len in [1u64 << 20, 1 << 40, u64::MAX] {
        let c = header(len, &[0]);
        assert!(matches!(info(&c), Err(ZipError::Oversized { .. })), "{len}");
    }
}

#[test]
fn forged_dna_streams_are_refused_from_the_header() {
    let dna = |side_len: u64, side_code: u64, nbases: u64, total: u64, payload: usize| {
        let mut c = header(total, &[3]);
        put_varint(&mut c, side_len);
        put_varint(&mut c, side_code);
        put_varint(&mut c, nbases);
        c.extend(std::iter::repeat_n(0u8, payload));
        c
    };
    // Too many bases for the base stream; too many side bytes for the side stream; a side
    // stream that runs past the end; lengths that cannot add up.
    let e = info(&dna(0, 0, 1 << 40, 1 << 40, 1000)).unwrap_err();
    assert!(
        matches!(e, ZipError::Oversized { unit: "bases", .. }),
        "{e}"
    );
    let e = info(&dna(1 << 30, 10, 0, 1 << 30, 1000)).unwrap_err();
    assert!(
        matches!(e, ZipError::Oversized { unit: "bytes", .. }),
        "{e}"
    );
    let e = info(&dna(5, 1 << 20, 10, 15, 1000)).unwrap_err();
    assert!(matches!(e, ZipError::Truncated(_)), "{e}");
    let e = info(&dna(5, u64::MAX, 10, 15, 1000)).unwrap_err();
    assert!(matches!(e, ZipError::Truncated(_)), "{e}");
    let e = info(&dna(5, 10, 100, 1 << 40, 1000)).unwrap_err();
    assert!(matches!(e, ZipError::Corrupt(_)), "{e}");
    let e = info(&dna(5, 10, 100, 99, 1000)).unwrap_err();
    assert!(matches!(e, ZipError::Corrupt(_)), "{e}");
    assert!(info(&dna(5, 10, 100, 102, 1000)).is_ok());
}

/// Long runs of one byte are the inputs the bound is tightest for: every bit is the likely one
/// at the model's clamp. They must still round-trip, under every alphabet that can hold them,
/// and their streams must come within a small factor of the bound (so the bound is real, not
/// slack that would let forged headers through).
#[test]
fn long_runs_of_one_byte_round_trip_near_the_bound() {
    for (data, alphabet, bits_per_byte) in [
        (vec![b'x'; 1 << 20], AlphabetChoice::Auto, 1u64),
        (vec![0u8; 1 << 15], AlphabetChoice::Bits, 8),
        (vec![0u8; 1 << 14], AlphabetChoice::Bytes, 8),
    ] {
        let c = compress(&data, &opts(alphabet)).unwrap();
        let i = info(&c).unwrap();
        assert!(i.alphabet.is_some(), "{alphabet:?}: stored");
        if alphabet == AlphabetChoice::Auto {
            assert_eq!(i.alphabet, Some(Alphabet::Symbols(vec![b'x'])));
        }
        let code = (c.len() - i.header_len) as u64;
        let bits = data.len() as u64 * bits_per_byte;
        assert!(bits <= (8 * code + 32) * 2840, "{alphabet:?}: {code} bytes");
        assert!(
            bits * 8 > (8 * code) * 2840,
            "{alphabet:?}: {bits} bits took {code} bytes, far from the bound"
        );
        assert_eq!(decompress(&c).unwrap(), data, "{alphabet:?}");
    }
}

/// A DNA side stream can be longer than the data (runs of single non-bases cost a gap, a length
/// and the byte each); such files decode.
#[test]
fn dna_whose_side_stream_outgrows_the_data_round_trips() {
    let data: Vec<u8> = b"NA".iter().copied().cycle().take(4000).collect();
    let c = compress(&data, &opts(AlphabetChoice::Dna)).unwrap();
    assert_eq!(info(&c).unwrap().alphabet, Some(Alphabet::Dna));
    assert_eq!(decompress(&c).unwrap(), data);
}
