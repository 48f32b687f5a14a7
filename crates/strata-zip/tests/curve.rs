//! The learning-curve hook ([`strata_zip::compress_with_curve`]) measures without touching the
//! output: the container is byte for byte the one [`strata_zip::compress`] writes, for every
//! alphabet and predictor, and its total matches the size of the coded stream.
#![allow(clippy::unwrap_used)] // in tests, a failed unwrap is a failed test, with its location

use strata_zip::{compress, compress_with_curve, decompress, gen, ModelSpec, Options};

fn opts(model: &str) -> Options {
    Options {
        model: ModelSpec::parse(model).unwrap(),
        ..Options::default()
    }
}

fn text(n: usize) -> Vec<u8> {
    let words = [
        "the ", "whale ", "ship ", "sea, ", "Ahab ", "and ", "white\n",
    ];
    let mut out = Vec::new();
    let mut k = 7usize;
    while out.len() < n {
        k = (k * 31 + 17) % 101;
        out.extend_from_slice(words[k % words.len()].as_bytes());
    }
    out.truncate(n);
    out
}

fn fasta(n: usize) -> Vec<u8> {
    let g = gen::generate(
        &gen::Source::Markov {
            alphabet: 4,
            order: 2,
        },
        n,
        3,
    )
    .unwrap();
    let mut out = b">seq\n".to_vec();
    for (i, s) in g.symbols.iter().enumerate() {
        out.push(b"ACGT"[*s as usize]);
        if i % 60 == 59 {
            out.push(b'\n');
        }
    }
    out
}

#[test]
fn the_container_is_identical_with_and_without_the_curve() {
    let xor = gen::generate(&gen::Source::Xor { k: 12 }, 6000, 1)
        .unwrap()
        .symbols;
    let lfib = gen::generate(
        &gen::Source::LaggedFibonacci {
            j: 3,
            k: 7,
            bits: 8,
        },
        3000,
        2,
    )
    .unwrap()
    .symbols;
    let inputs: Vec<(&str, Vec<u8>)> = vec![
        ("text", text(5000)),
        ("xor", xor),
        ("lfib", lfib),
        ("dna", fasta(4000)),
        ("one byte", vec![7]),
    ];
    for model in ["cm", "lstm:hidden=8", "gru:hidden=8", "cm+lstm:hidden=8"] {
        let o = opts(model);
        for (name, data) in &inputs {
            let plain = compress(data, &o).unwrap();
            let (metered, curve) = compress_with_curve(data, &o, 500).unwrap();
            assert_eq!(plain, metered, "{model} on {name}");
            assert_eq!(&decompress(&metered).unwrap(), data, "{model} on {name}");
            assert_eq!(curve.every, 500);
            // Positions rise by `every`, the last one is the stream's end, costs never fall.
            let n = curve.symbols();
            assert!(n > 0, "{model} on {name}");
            for (k, p) in curve.points.iter().enumerate() {
                let want = if k + 1 == curve.points.len() {
                    n
                } else {
                    500 * (k as u64 + 1)
                };
                assert_eq!(p.symbols, want, "{model} on {name}");
            }
            assert!(curve.points.windows(2).all(|w| w[1].bits >= w[0].bits));
            if data.len() > 100 && plain.len() < data.len() {
                // The ideal length is the coded payload's, within the coder's few bytes of slack
                // (DNA: the curve is the bases'; their side stream and the header come on top).
                let payload = 8.0 * plain.len() as f64;
                assert!(curve.bits() <= payload + 64.0, "{model} {name}");
                if *name != "dna" {
                    let info = strata_zip::info(&plain).unwrap();
                    let code = 8.0 * (plain.len() - info.header_len) as f64;
                    assert!(
                        (curve.bits() - code).abs() <= 48.0,
                        "{model} on {name}: {} vs {code}",
                        curve.bits()
                    );
                }
            }
        }
    }
}

#[test]
fn an_empty_input_has_no_curve() {
    let (c, curve) = compress_with_curve(&[], &opts("cm"), 0).unwrap();
    assert_eq!(c, compress(&[], &opts("cm")).unwrap());
    assert!(curve.points.is_empty());
    assert_eq!(curve.every, 1);
}

#[test]
fn a_predictor_that_learns_spends_less_late_than_early() {
    // XOR-8 is learnable: the last interval costs far less than the first.
    let g = gen::generate(&gen::Source::Xor { k: 8 }, 20_000, 5).unwrap();
    let (_, curve) = compress_with_curve(&g.symbols, &opts("cm"), 2000).unwrap();
    let r = curve.interval_rates();
    assert_eq!(r.len(), 10);
    assert!(r[9].1 < 0.5 * r[0].1, "{r:?}");
}
