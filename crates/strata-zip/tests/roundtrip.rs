//! Round trips for every alphabet and model, the container's guarantees (no growth beyond the
//! header, corrupt input rejected without panicking), and determinism across thread counts.
#![allow(clippy::unwrap_used)] // in tests, a failed unwrap is a failed test, with its location

use strata_zip::{
    compress, decompress, decompress_with_progress, AlphabetChoice, ModelSpec, Options, ZipError,
};

fn rng(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn fresh_seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1)
        ^ std::process::id() as u64
}

fn opts(model: &str) -> Options {
    Options {
        model: ModelSpec::parse(model).unwrap(),
        ..Options::default()
    }
}

fn round_trip(data: &[u8], o: &Options) -> Vec<u8> {
    let c = compress(data, o).unwrap();
    assert_eq!(decompress(&c).unwrap(), data, "model {}", o.model.name());
    c
}

fn text(n: usize, s: &mut u64) -> Vec<u8> {
    let words = [
        "the ", "whale ", "ship ", "sea, ", "Ahab ", "and ", "of ", "a ", "white\n",
    ];
    let mut out = Vec::new();
    while out.len() < n {
        out.extend_from_slice(words[(rng(s) % words.len() as u64) as usize].as_bytes());
    }
    out.truncate(n);
    out
}

fn fasta(n: usize, s: &mut u64) -> Vec<u8> {
    let mut out = b">seq1 test genome\n".to_vec();
    let mut line = 0;
    for i in 0..n {
        // A repeat every so often, and its reverse complement, so the match and IR models work.
        let b = if i > 500 && i % 700 < 100 {
            out[out.len() - 300]
        } else {
            b"ACGT"[(rng(s) % 4) as usize]
        };
        out.push(b);
        line += 1;
        if line == 60 {
            out.push(b'\n');
            line = 0;
        }
    }
    out.extend_from_slice(b"NNNNacgt\n");
    out
}

#[test]
fn empty_and_one_byte_inputs_round_trip_for_every_model() {
    for m in [
        "cm",
        "lstm:hidden=4",
        "gru:hidden=4",
        "cm+lstm:hidden=4",
        "cm+gru:hidden=4",
    ] {
        let o = opts(m);
        round_trip(b"", &o);
        for b in [0u8, 1, b'A', 255] {
            round_trip(&[b], &o);
        }
        round_trip(b"ACGT", &o);
        round_trip(&[0, 1, 1, 0, 1], &o);
    }
}

#[test]
fn text_dna_binary_and_small_alphabets_round_trip_and_shrink() {
    let mut s = fresh_seed();
    let t = text(20_000, &mut s);
    let c = round_trip(&t, &opts("cm"));
    assert!(c.len() * 4 < t.len(), "text {} -> {}", t.len(), c.len());

    let f = fasta(30_000, &mut s);
    let c = round_trip(&f, &opts("cm"));
    let info = strata_zip::info(&c).unwrap();
    assert_eq!(info.alphabet, Some(strata_zip::Alphabet::Dna));
    // Random bases cost ~2 bits; the repeats and line breaks must bring it below that.
    assert!((c.len() as f64) * 8.0 < 2.0 * 30_000.0, "dna {}", c.len());

    // A binary source (0/1 bytes): coded one bit per symbol.
    let bits: Vec<u8> = (0..20_000)
        .map(|_| rng(&mut s).is_multiple_of(8) as u8)
        .collect();
    let c = round_trip(&bits, &opts("cm"));
    // Entropy h(1/8) = 0.544 bits/symbol; allow the model's learning cost.
    assert!((c.len() as f64) * 8.0 < 0.6 * 20_000.0, "bits {}", c.len());

    // An alphabet of 5 letters: 3 bits per symbol, some skew.
    let five: Vec<u8> = (0..10_000)
        .map(|_| b"vwxyz"[(rng(&mut s) % 5) as usize])
        .collect();
    let c = round_trip(&five, &opts("cm"));
    assert!((c.len() as f64) * 8.0 < 2.4 * 10_000.0, "five {}", c.len());

    // Packed bits, chosen by hand.
    let o = Options {
        alphabet: AlphabetChoice::Bits,
        ..opts("cm")
    };
    round_trip(&t[..3000], &o);
}

#[test]
fn recurrent_models_round_trip_and_learn() {
    let mut s = fresh_seed();
    let t = text(3000, &mut s);
    for m in [
        "lstm:hidden=16",
        "gru:hidden=16,layers=2",
        "cm+lstm:hidden=8",
    ] {
        let c = round_trip(&t, &opts(m));
        assert!(c.len() * 2 < t.len(), "{m}: {} -> {}", t.len(), c.len());
    }
}

#[test]
fn incompressible_input_grows_by_at_most_the_header() {
    let mut s = fresh_seed();
    for n in [1usize, 10, 1000, 10_000] {
        let data: Vec<u8> = (0..n).map(|_| rng(&mut s) as u8).collect();
        let c = round_trip(&data, &opts("cm"));
        let header = strata_zip::info(&c).unwrap().header_len;
        assert!(
            c.len() <= n + header,
            "{n} -> {} (header {header})",
            c.len()
        );
        assert!(header <= 16);
    }
    let real = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/datasets/binary/random_org_10k.bin");
    match std::fs::read(&real) {
        Ok(data) => {
            let c = round_trip(&data, &opts("cm"));
            let header = strata_zip::info(&c).unwrap().header_len;
            assert!(c.len() <= data.len() + header);
        }
        Err(_) => eprintln!("skip: {} not found", real.display()),
    }
}

#[test]
fn compression_is_deterministic_and_independent_of_threads() {
    let mut s = fresh_seed();
    let f = fasta(20_000, &mut s);
    let one = compress(
        &f,
        &Options {
            threads: 1,
            ..opts("cm")
        },
    )
    .unwrap();
    let two = compress(
        &f,
        &Options {
            threads: 2,
            ..opts("cm")
        },
    )
    .unwrap();
    assert_eq!(one, two);
    let back1 = decompress_with_progress(&two, 1, &|_| {}).unwrap();
    let back2 = decompress_with_progress(&one, 2, &|_| {}).unwrap();
    assert_eq!(back1, f);
    assert_eq!(back2, f);
    let t = text(2000, &mut s);
    assert_eq!(
        compress(&t, &opts("cm+gru:hidden=8")).unwrap(),
        compress(&t, &opts("cm+gru:hidden=8")).unwrap()
    );
    assert_ne!(
        compress(&t, &opts("lstm:hidden=8,seed=1")).unwrap(),
        compress(&t, &opts("lstm:hidden=8,seed=2")).unwrap()
    );
}

#[test]
fn foreign_and_damaged_containers_give_errors() {
    assert!(matches!(decompress(b""), Err(ZipError::NotAContainer)));
    assert!(matches!(
        decompress(b"PK\x03\x04 not ours"),
        Err(ZipError::NotAContainer)
    ));
    let c = compress(b"hello hello hello hello", &opts("cm")).unwrap();
    let mut v = c.clone();
    v[4] = 9;
    assert!(matches!(
        decompress(&v),
        Err(ZipError::UnsupportedVersion(9))
    ));
    let mut v = c.clone();
    v[6] ^= 1; // the stored CRC
    assert!(matches!(decompress(&v), Err(ZipError::Checksum { .. })));
    for cut in 0..c.len() {
        assert!(decompress(&c[..cut]).is_err(), "cut at {cut}");
    }
}

/// Property test: random corruption (flips, truncation, insertion, junk length fields) of
/// containers of every kind never panics, and anything decoded without error is the original.
#[test]
fn random_corruption_never_panics_and_never_returns_wrong_data() {
    let mut s = fresh_seed();
    let inputs: Vec<(Vec<u8>, &str)> = vec![
        (text(3000, &mut s), "cm"),
        (fasta(3000, &mut s), "cm"),
        ((0..2000).map(|_| (rng(&mut s) % 2) as u8).collect(), "cm"),
        ((0..500).map(|_| rng(&mut s) as u8).collect(), "cm"),
        (text(400, &mut s), "lstm:hidden=4"),
    ];
    for (data, model) in &inputs {
        let c = compress(data, &opts(model)).unwrap();
        for _ in 0..150 {
            let mut v = c.clone();
            match rng(&mut s) % 4 {
                0 => {
                    for _ in 0..1 + rng(&mut s) % 3 {
                        let i = (rng(&mut s) % v.len() as u64) as usize;
                        v[i] ^= 1 << (rng(&mut s) % 8);
                    }
                }
                1 => v.truncate((rng(&mut s) % v.len() as u64) as usize),
                2 => {
                    let i = (rng(&mut s) % v.len() as u64) as usize;
                    v.insert(i, rng(&mut s) as u8);
                }
                _ => {
                    // Overwrite a header byte (where the lengths and the model live).
                    let i = 4 + (rng(&mut s) % 20) as usize;
                    if i < v.len() {
                        v[i] = rng(&mut s) as u8;
                    }
                }
            }
            if let Ok(out) = decompress(&v) {
                assert_eq!(&out, data, "corrupt container decoded to different data");
            }
        }
    }
}
