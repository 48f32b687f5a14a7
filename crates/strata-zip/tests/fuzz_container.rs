//! Seeded property test of the `.stz` reader against hostile input: small containers of every
//! kind (text, a binary alphabet, forced bits, DNA with a side stream, a recurrent model, a
//! mixed model, stored data) are mutated a few thousand times (bit flips, truncation at every
//! length, inserted bytes, random header bytes, header fields overwritten with extreme values)
//! and every mutant must
//!
//! * not panic (a panic fails the test),
//! * decode to an error or to exactly the original (the CRC-32 and the length are checked),
//! * claim no more than its stream can code (the header bound, so the work is bounded by the
//!   file's size: never more than 64 MiB for files this small).
//!
//! The random numbers come from a local splitmix64 with fixed seeds, so a failure repeats.
#![allow(clippy::unwrap_used)] // in tests, a failed unwrap is a failed test, with its location

use strata_zip::rnn::SplitMix64;
use strata_zip::varint::put as put_varint;
use strata_zip::{compress, decompress, info, Alphabet, AlphabetChoice, ModelSpec, Options};

/// splitmix64 (Steele, Lea, Flood 2014): the crate's own.
struct Rng(SplitMix64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(SplitMix64(seed))
    }

    fn next(&mut self) -> u64 {
        self.0.next()
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// The most any mutant of these small files may claim.
const MAX_CLAIM: u64 = 64 << 20;

/// Bits a coded stream of `len` bytes can hold at most: (8 len + 32) * 2840, from the coder's
/// probability clamp [16, 65520] / 65536 (each bit costs at least log2(4097/4096) bits).
fn capacity_bits(len: usize) -> u64 {
    (8 * len as u64 + 32) * 2840
}

fn varint_len(c: &[u8], at: usize) -> usize {
    c[at..]
        .iter()
        .position(|b| b & 0x80 == 0)
        .map_or(0, |p| p + 1)
}

/// The header fields of a container, parsed here independently of the crate: each as (name,
/// offset, byte length, whether it is a LEB128 integer).
fn fields(c: &[u8]) -> Vec<(&'static str, usize, usize, bool)> {
    let mut f = vec![
        ("version", 4, 1, false),
        ("method", 5, 1, false),
        ("crc", 6, 4, false),
    ];
    let mut at = 10;
    let n = varint_len(c, at);
    f.push(("length", at, n, true));
    at += n;
    if c[5] != 1 {
        return f;
    }
    let tag = c[at];
    f.push(("alphabet", at, 1, false));
    at += 1;
    if tag == 2 {
        f.push(("alphabet size", at, 1, false));
        at += 1 + c[at] as usize;
    }
    f.push(("model kind", at, 1, false));
    f.push(("model cell", at + 1, 1, false));
    at += 2;
    for name in ["layers", "hidden", "bptt"] {
        let n = varint_len(c, at);
        f.push((name, at, n, true));
        at += n;
    }
    f.push(("lr", at, 4, false));
    at += 4;
    let n = varint_len(c, at);
    f.push(("seed", at, n, true));
    at += n;
    if tag == 3 {
        for name in ["side length", "side code length", "base count"] {
            let n = varint_len(c, at);
            f.push((name, at, n, true));
            at += n;
        }
    }
    f
}

fn opts(model: &str, alphabet: AlphabetChoice) -> Options {
    Options {
        model: ModelSpec::parse(model).unwrap(),
        alphabet,
        threads: 1,
    }
}

/// Decodes a mutant and checks the three properties.
fn check(v: &[u8], original: &[u8], what: &str) {
    if let Ok(i) = info(v) {
        assert!(
            i.original_len <= MAX_CLAIM,
            "{what}: claims {}",
            i.original_len
        );
        if let Some(a) = &i.alphabet {
            if *a != Alphabet::Dna {
                let per_byte = a.width() as u64 * if *a == Alphabet::Bits { 8 } else { 1 };
                assert!(
                    i.original_len * per_byte <= capacity_bits(v.len() - i.header_len),
                    "{what}: {} bytes claimed from {} bytes",
                    i.original_len,
                    v.len()
                );
            }
        }
    }
    if let Ok(out) = decompress(v) {
        assert!(out == original, "{what}: decoded to different data");
    }
}

fn text(n: usize, r: &mut Rng) -> Vec<u8> {
    let words = [
        "the ", "cat ", "sat ", "on ", "a ", "mat.\n", "and ", "slept ",
    ];
    let mut s = Vec::new();
    while s.len() < n {
        s.extend_from_slice(words[r.below(words.len())].as_bytes());
    }
    s.truncate(n);
    s
}

/// The inputs, each with how many random mutations it gets: the model's set-up dominates a
/// decode's cost (tens of MB of tables for bytes), so the costly ones get fewer.
fn inputs() -> Vec<(Vec<u8>, Options, &'static str, usize)> {
    let mut r = Rng::new(7);
    let auto = AlphabetChoice::Auto;
    let mut dna: Vec<u8> = b">seq 1\n".to_vec();
    for i in 0..240 {
        dna.push(b"ACGT"[r.below(4)]);
        if i % 60 == 59 {
            dna.push(b'\n');
        }
    }
    vec![
        (text(160, &mut r), opts("cm", auto), "text, cm", 200),
        (
            (0..200).map(|_| (r.below(7) == 0) as u8).collect(),
            opts("cm", auto),
            "binary alphabet, cm",
            400,
        ),
        (
            (0..24)
                .map(|i| if i % 3 == 0 { 0xf0 } else { 0x0f })
                .collect(),
            opts("cm", AlphabetChoice::Bits),
            "bits, cm",
            400,
        ),
        (dna, opts("cm", auto), "DNA with a header, cm", 80),
        (
            text(60, &mut r),
            opts("lstm:hidden=4", auto),
            "text, lstm",
            1000,
        ),
        (
            text(60, &mut r),
            opts("cm+gru:hidden=4", auto),
            "text, cm+gru",
            150,
        ),
        (
            (0..40).map(|_| r.next() as u8).collect(),
            opts("cm", auto),
            "random bytes (stored)",
            1000,
        ),
    ]
}

/// Extreme values for header integers: zero, one, around the caps the reader enforces (4 layers,
/// 1024 units, 16 letters), powers of two at type boundaries, and the largest.
const EXTREMES: [u64; 20] = [
    0,
    1,
    2,
    5,
    16,
    17,
    127,
    128,
    255,
    256,
    1025,
    65536,
    1 << 31,
    u32::MAX as u64,
    1 << 32,
    1 << 40,
    10_000_000_000,
    1 << 53,
    i64::MAX as u64,
    u64::MAX,
];

/// Sizes and tags get every extreme value; fields whose every value is legal (the checksum, the
/// seed, the learning rate's bits) or that only pick among a few (kind, cell) get a sample.
fn all_extremes(field: &str) -> bool {
    !matches!(field, "crc" | "seed" | "lr" | "model kind" | "model cell")
}

/// Mutates one container in every way; returns how many mutants it checked.
fn fuzz(data: &[u8], o: &Options, name: &str, randoms: usize, seed: u64) -> usize {
    let mut r = Rng::new(seed);
    let mut mutants = 0usize;
    let c = compress(data, o).unwrap();
    assert_eq!(decompress(&c).unwrap(), data, "{name}");
    assert_eq!(
        c[5] == 0,
        name.contains("stored"),
        "{name}: method {}",
        c[5]
    );

    // Truncation at every length.
    for cut in 0..c.len() {
        assert!(decompress(&c[..cut]).is_err(), "{name}: cut at {cut}");
        check(&c[..cut], data, name);
        mutants += 1;
    }
    // Every header field overwritten with extreme values (integers re-encoded, so the rest of
    // the file shifts as a real writer would have laid it out).
    for (field, at, len, is_varint) in fields(&c) {
        for &x in EXTREMES
            .iter()
            .filter(|_| all_extremes(field) || r.below(4) == 0)
        {
            let mut v = c[..at].to_vec();
            if is_varint {
                put_varint(&mut v, x);
            } else {
                v.extend((0..len).map(|k| (x >> (8 * k)) as u8));
            }
            v.extend_from_slice(&c[at + len..]);
            check(&v, data, &format!("{name}: {field} = {x}"));
            mutants += 1;
        }
    }
    // Random: bit flips, insertions, random bytes in the header, random cuts with junk.
    for k in 0..randoms {
        let mut v = c.clone();
        match k % 4 {
            0 => {
                for _ in 0..1 + r.below(3) {
                    let i = r.below(v.len());
                    v[i] ^= 1 << r.below(8);
                }
            }
            1 => {
                for _ in 0..1 + r.below(2) {
                    let i = r.below(v.len() + 1);
                    v.insert(i, r.next() as u8);
                }
            }
            2 => {
                let i = r.below(v.len().min(40));
                v[i] = r.next() as u8;
            }
            _ => {
                v.truncate(r.below(v.len()));
                v.extend((0..r.below(64)).map(|_| r.next() as u8));
            }
        }
        check(&v, data, &format!("{name}: random mutation {k}"));
        mutants += 1;
    }
    mutants
}

#[test]
fn mutated_containers_never_panic_never_lie_and_never_claim_more_than_they_can_code() {
    // One thread per input (the results do not depend on it; a panic in any fails the test).
    let counts: Vec<usize> = std::thread::scope(|s| {
        let handles: Vec<_> = inputs()
            .into_iter()
            .enumerate()
            .map(|(i, (data, o, name, randoms))| {
                s.spawn(move || fuzz(&data, &o, name, randoms, 0x5eed + i as u64))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    });
    let mutants: usize = counts.iter().sum();
    assert!(mutants > 3000, "{mutants} mutants");
}

/// The length field right at the bound is accepted (so real files at the bound decode) and
/// one more is refused; the refusal names the claim, the stream's size and the bound.
#[test]
fn the_length_bound_is_exact_at_its_edge() {
    let data: Vec<u8> = (0..64).map(|i| (i % 5 == 0) as u8).collect();
    let c = compress(&data, &opts("cm", AlphabetChoice::Auto)).unwrap();
    let f = fields(&c);
    let (_, at, len, _) = f.iter().find(|x| x.0 == "length").copied().unwrap();
    let with_len = |x: u64| {
        let mut v = c[..at].to_vec();
        put_varint(&mut v, x);
        v.extend_from_slice(&c[at + len..]);
        v
    };
    let i = info(&c).unwrap();
    assert_eq!(i.alphabet, Some(Alphabet::Symbols(vec![0, 1])));
    // One bit per symbol: the bound in bytes is the capacity in bits of the coded stream, which
    // is everything after the header (and does not move when the length field is rewritten).
    let max = capacity_bits(c.len() - i.header_len);
    let at_edge = with_len(max);
    assert_eq!(info(&at_edge).unwrap().original_len, max);
    let over = with_len(max + 1);
    let e = info(&over).unwrap_err().to_string();
    assert!(
        e.contains(&format!("header claims {} bytes", max + 1))
            && e.contains(&format!("at most {max}")),
        "{e}"
    );
    // Decoding the claim at the edge is bounded work (a few hundred thousand binary symbols) and
    // ends in an error, not in data.
    assert!(decompress(&at_edge).is_err());
}
