//! Synthetic sources for compression benchmarks (as in DeepZip, Goyal et al. 2018), each with its
//! entropy rate, so a compressor's bits per symbol can be shown against the bound it cannot beat.
//!
//! Reproducibility: the bytes depend only on (source, n, seed). The PRNG is our own xoshiro256**,
//! and every number that decides a sample is built from `+ - * /` on f64 (correctly rounded on
//! every IEEE platform, and Rust never fuses them into FMAs), plus our own series `log2` in the
//! i.i.d. bisection, so no libm difference can flip a sample. Only the reported HMM estimate uses
//! the platform `log2`; it never feeds back into the bytes. A shorter `n` gives a prefix of a
//! longer one with the same seed.

use std::f64::consts::LOG2_E;

/// Largest Markov transition table, `alphabet^(order+1)` entries of 8 bytes: 16 MiB, at most 2^20
/// contexts, and the power iteration for the stationary distribution takes ~2 s at worst.
pub const MAX_MARKOV_TABLE: u64 = 1 << 21;
/// Most HMM states: the forward algorithm costs `n * states^2`, which beyond 64 would dominate
/// benchmark time.
pub const MAX_HMM_STATES: u32 = 64;
/// Mass spread uniformly over every random row, so each transition is possible: the chains are
/// then irreducible and aperiodic (power iteration converges) and forward sums never reach 0.
const FLOOR: f64 = 1e-3;

/// A synthetic source whose entropy rate is known (or, for the HMM, estimated).
#[derive(Clone, Debug, PartialEq)]
pub enum Source {
    /// i.i.d. symbols with exactly `entropy` bits each, to check that a coder reaches a memoryless
    /// bound. Distribution p_i ∝ r^i, r in [0, 1] found by bisection (for alphabet 2 this is
    /// Bernoulli(p) with h(p) = entropy).
    Iid {
        /// Number of symbol values, 2-256.
        alphabet: u32,
        /// Bits per symbol, 0 to log2(alphabet).
        entropy: f64,
    },
    /// Order-`order` Markov chain with random skewed transitions, to test context modelling.
    Markov {
        /// Number of symbol values, 2-256.
        alphabet: u32,
        /// Symbols of context each transition depends on (alphabet^(order+1) is bounded).
        order: u32,
    },
    /// DeepZip's XOR-k: k random bits then x_n = x_{n-1} XOR x_{n-k}; rate 0 but needs memory k.
    Xor {
        /// The lag, at least 1: the memory a predictor needs.
        k: u32,
    },
    /// Hidden Markov source: sticky hidden states with their own emission distributions, i.e.
    /// unbounded memory; its rate is estimated, not exact.
    Hmm {
        /// Hidden states, at least 1.
        states: u32,
        /// Number of symbol values, 2-256.
        alphabet: u32,
    },
    /// Lagged Fibonacci x_n = (x_{n-j} + x_{n-k}) mod 2^bits: rate 0, with long-range arithmetic
    /// structure that context models cannot see but a learned predictor might.
    LaggedFibonacci {
        /// The short lag, 1 <= j < k.
        j: u32,
        /// The long lag.
        k: u32,
        /// Bits per symbol, 1-8.
        bits: u32,
    },
}

/// A generated sequence with the bound it should be compressed against.
#[derive(Clone, Debug)]
pub struct Generated {
    /// One symbol per byte, values 0..alphabet-1.
    pub symbols: Vec<u8>,
    /// Number of symbol values the source can emit (what a coder's model must cover).
    pub alphabet: u32,
    /// Bits per symbol.
    pub entropy_rate: f64,
    /// True when `entropy_rate` is exact (closed form / stationary computation), false when
    /// estimated (HMM).
    pub exact: bool,
    /// Total information in the sequence in bits: min(n, k) for XOR-k, min(n, k)*bits for lagged
    /// Fibonacci, n*H for i.i.d., H(first `order` symbols) + (n - order)*rate for Markov (started
    /// stationary), -log2 p(x) for the HMM.
    pub total_bits: f64,
}

/// Why a source cannot be generated or parsed; each message says what is allowed.
#[derive(Debug, thiserror::Error)]
pub enum GenError {
    /// A parameter is out of range for the source `kind` ("iid", "markov", ...).
    #[error("invalid {kind} source: {message}")]
    Invalid {
        /// The source kind (`iid`, `markov`, ...).
        kind: &'static str,
        /// What is out of range, and what is allowed.
        message: String,
    },
    /// A command-line spec could not be read.
    #[error("cannot parse source spec {spec:?}: {message}")]
    Parse {
        /// The spec as given.
        spec: String,
        /// What could not be read.
        message: String,
    },
    /// The output buffer of `n` symbols could not be allocated.
    #[error("cannot allocate {n} symbols; ask for fewer")]
    TooLong {
        /// Symbols asked for.
        n: usize,
    },
}

fn invalid(kind: &'static str, message: String) -> Result<(), GenError> {
    Err(GenError::Invalid { kind, message })
}

fn check_alphabet(kind: &'static str, alphabet: u32) -> Result<(), GenError> {
    // Alphabet 1 is rejected rather than treated as a constant source: it has nothing to
    // compress and is far more likely a typo than a benchmark.
    if !(2..=256).contains(&alphabet) {
        invalid(
            kind,
            format!("alphabet must be 2..=256 (one symbol per byte), got {alphabet}"),
        )?;
    }
    Ok(())
}

impl Source {
    /// A short canonical name like "xor:k=20" for tables and file names; `parse_source` reads it
    /// back to the same source (f64 `Display` is the shortest string that round-trips).
    pub fn name(&self) -> String {
        match self {
            Source::Iid {
                alphabet: a,
                entropy: e,
            } => format!("iid:alphabet={a},entropy={e}"),
            Source::Markov {
                alphabet: a,
                order: o,
            } => format!("markov:alphabet={a},order={o}"),
            Source::Xor { k } => format!("xor:k={k}"),
            Source::Hmm { states, alphabet } => format!("hmm:states={states},alphabet={alphabet}"),
            Source::LaggedFibonacci { j, k, bits } => format!("lfib:j={j},k={k},bits={bits}"),
        }
    }

    /// Checks the parameters, so that bad input is an error message, never a panic or an
    /// allocation too large to make. `generate` and `parse_source` call it.
    pub fn validate(&self) -> Result<(), GenError> {
        match *self {
            Source::Iid { alphabet, entropy } => {
                check_alphabet("iid", alphabet)?;
                let max = log2(f64::from(alphabet));
                if !(0.0..=max + 1e-9).contains(&entropy) {
                    let m = format!("entropy must be 0..={max} bits for alphabet {alphabet}");
                    invalid("iid", format!("{m}, got {entropy}"))?;
                }
            }
            Source::Markov { alphabet, order } => {
                check_alphabet("markov", alphabet)?;
                let size = order
                    .checked_add(1)
                    .and_then(|e| u64::from(alphabet).checked_pow(e));
                if size.is_none_or(|s| s > MAX_MARKOV_TABLE) {
                    let m = format!("alphabet^(order+1) must be at most {MAX_MARKOV_TABLE}");
                    invalid("markov", format!("{m}, got {alphabet}^({order}+1)"))?;
                }
            }
            Source::Xor { k: 0 } => invalid("xor", "k must be at least 1, got 0".into())?,
            Source::Xor { .. } => {}
            Source::Hmm { states, alphabet } => {
                check_alphabet("hmm", alphabet)?;
                if !(1..=MAX_HMM_STATES).contains(&states) {
                    invalid(
                        "hmm",
                        format!("states must be 1..={MAX_HMM_STATES}, got {states}"),
                    )?;
                }
            }
            Source::LaggedFibonacci { j, k, bits } => {
                if j == 0 || j >= k {
                    invalid("lfib", format!("need 1 <= j < k, got j={j} k={k}"))?;
                }
                if !(1..=8).contains(&bits) {
                    invalid("lfib", format!("bits must be 1..=8, got {bits}"))?;
                }
            }
        }
        Ok(())
    }
}

/// Parse a source spec from the command line, e.g. "iid:alphabet=4,entropy=1.5",
/// "markov:alphabet=4,order=3", "xor:k=20", "hmm:states=4,alphabet=8", "lfib:j=24,k=55,bits=8".
/// Missing keys take defaults: iid alphabet=2 entropy=0.5; markov alphabet=4 order=2; xor k=20;
/// hmm states=4 alphabet=4; lfib j=24 k=55 bits=8 (a bare kind like "xor" is all defaults).
/// Unknown kinds or keys, repeated keys and bad values give an error naming what is accepted.
pub fn parse_source(spec: &str) -> Result<Source, GenError> {
    let err = |message: String| GenError::Parse {
        spec: spec.to_string(),
        message,
    };
    let (kind, rest) = spec.split_once(':').unwrap_or((spec, ""));
    let kind = kind.trim();
    let keys: &[&str] = match kind {
        "iid" => &["alphabet", "entropy"],
        "markov" => &["alphabet", "order"],
        "xor" => &["k"],
        "hmm" => &["states", "alphabet"],
        "lfib" => &["j", "k", "bits"],
        _ => {
            return Err(err(format!(
                "unknown kind {kind:?}; accepted: iid, markov, xor, hmm, lfib"
            )))
        }
    };
    let mut vals: Vec<Option<&str>> = vec![None; keys.len()];
    for item in rest.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (key, val) = item.split_once('=').unwrap_or((item, ""));
        let key = key.trim();
        let Some(i) = keys.iter().position(|k| *k == key) else {
            return Err(err(format!(
                "unknown key {key:?} for {kind}; accepted: {}",
                keys.join(", ")
            )));
        };
        if vals[i].replace(val.trim()).is_some() {
            return Err(err(format!("key {key:?} given twice")));
        }
    }
    let get = |i: usize, default: u32| {
        vals[i].map_or(Ok(default), |v| {
            let m = format!(
                "{} must be a whole number 0..=4294967295, got {v:?}",
                keys[i]
            );
            v.parse::<u32>().map_err(|_| err(m))
        })
    };
    let source = match kind {
        "iid" => Source::Iid {
            alphabet: get(0, 2)?,
            entropy: vals[1].map_or(Ok(0.5), |v| {
                let m = format!("entropy must be a number of bits, got {v:?}");
                v.parse::<f64>().map_err(|_| err(m))
            })?,
        },
        "markov" => Source::Markov {
            alphabet: get(0, 4)?,
            order: get(1, 2)?,
        },
        "xor" => Source::Xor { k: get(0, 20)? },
        "hmm" => Source::Hmm {
            states: get(0, 4)?,
            alphabet: get(1, 4)?,
        },
        _ => Source::LaggedFibonacci {
            j: get(0, 24)?,
            k: get(1, 55)?,
            bits: get(2, 8)?,
        },
    };
    source.validate()?;
    Ok(source)
}

/// Generates `n` symbols of `source` from `seed`, with the entropy rate to compare against.
/// Same arguments give the same bytes on every machine (see the module docs).
pub fn generate(source: &Source, n: usize, seed: u64) -> Result<Generated, GenError> {
    source.validate()?;
    let mut out = Vec::new();
    out.try_reserve_exact(n)
        .map_err(|_| GenError::TooLong { n })?;
    let mut rng = Rng::new(seed);
    Ok(match *source {
        Source::Iid { alphabet, entropy } => {
            let cdf = iid_cdf(alphabet as usize, entropy);
            out.extend((0..n).map(|_| sample(&cdf, rng.unit()) as u8));
            let h = entropy_of(cdf_probs(&cdf));
            done(out, alphabet, h, true, h * n as f64)
        }
        Source::Markov { alphabet, order } => markov(alphabet, order, n, &mut rng, out),
        // XOR is addition mod 2, so XOR-k is the lagged recurrence with j = 1 (k = 1 gives zeros).
        Source::Xor { k } => lagged(1, k, 1, n, &mut rng, out),
        Source::Hmm { states, alphabet } => hmm(states as usize, alphabet, n, &mut rng, out),
        Source::LaggedFibonacci { j, k, bits } => lagged(j, k, bits, n, &mut rng, out),
    })
}

fn done(symbols: Vec<u8>, alphabet: u32, rate: f64, exact: bool, total: f64) -> Generated {
    Generated {
        symbols,
        alphabet,
        entropy_rate: rate,
        exact,
        total_bits: total,
    }
}

/// x_n = (x_{n-j} + x_{n-k}) mod 2^bits after k random symbols: the sequence is a bijective
/// function of those k symbols, so it holds exactly min(n, k) * bits bits.
fn lagged(j: u32, k: u32, bits: u32, n: usize, rng: &mut Rng, mut out: Vec<u8>) -> Generated {
    let (j, k, mask) = (j as usize, k as usize, ((1u16 << bits) - 1) as u8);
    for i in 0..n {
        let x = if i < k {
            (rng.next_u64() >> (64 - bits)) as u8
        } else {
            out[i - j].wrapping_add(out[i - k]) & mask
        };
        out.push(x);
    }
    done(out, 1 << bits, 0.0, true, n.min(k) as f64 * f64::from(bits))
}

/// xoshiro256** seeded by splitmix64: fast, well tested, and fully specified, so the stream is
/// the same on every platform and Rust version (unlike `rand`'s unspecified `StdRng`).
struct Rng([u64; 4]);

impl Rng {
    fn new(mut x: u64) -> Rng {
        let mut next = || {
            x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let z = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            let z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        };
        // splitmix64 outputs are distinct, so the state is never all zero.
        Rng([next(), next(), next(), next()])
    }

    fn next_u64(&mut self) -> u64 {
        let s = &mut self.0;
        let result = s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// Uniform in [0, 1) from 53 bits: exact in f64, so comparisons with a cdf are reproducible.
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// u^power with u uniform in (0, 1): normalized, such weights behave like a Dirichlet draw
    /// with concentration below 1 (a few likely symbols), and need only multiplications.
    fn skewed(&mut self, power: u32) -> f64 {
        let u = ((self.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
        (0..power).fold(1.0, |w, _| w * u)
    }
}

/// log2 of a positive finite x from its exponent bits and an atanh series, using only + - * /:
/// the same result on every machine, so the i.i.d. bisection (which decides the bytes) is too.
fn log2(x: f64) -> f64 {
    let (x, e0) = if x < f64::MIN_POSITIVE {
        (x * (1u64 << 54) as f64, -54)
    } else {
        (x, 0)
    };
    let bits = x.to_bits();
    let mut e = ((bits >> 52) & 0x7ff) as i64 - 1023 + e0;
    let mut m = f64::from_bits((bits & ((1 << 52) - 1)) | (1023 << 52));
    if m > std::f64::consts::SQRT_2 {
        m *= 0.5;
        e += 1;
    }
    // ln m = 2 atanh(s) with |s| <= 0.172: 13 terms take the error below 1e-19.
    let (s, mut series) = ((m - 1.0) / (m + 1.0), 0.0);
    for k in (0..13).rev() {
        series = series * s * s + 1.0 / (2 * k + 1) as f64;
    }
    e as f64 + 2.0 * s * series * LOG2_E
}

/// Entropy in bits of probabilities (zeros skipped).
fn entropy_of(probs: impl Iterator<Item = f64>) -> f64 {
    probs.filter(|&p| p > 0.0).map(|p| -p * log2(p)).sum()
}

/// Cumulative table from nonnegative weights; the last entry is exactly 1.0 so a draw in [0, 1)
/// always lands inside, and entries are clamped so rounding never makes them decrease.
fn fill_cdf(weights: &[f64], cdf: &mut [f64]) {
    let (total, mut acc): (f64, f64) = (weights.iter().sum(), 0.0);
    for (c, w) in cdf.iter_mut().zip(weights) {
        acc += w / total;
        *c = acc.min(1.0);
    }
    if let Some(last) = cdf.last_mut() {
        *last = 1.0;
    }
}

/// Index of the symbol whose cdf interval holds `u`; zero-width intervals are never chosen.
fn sample(cdf: &[f64], u: f64) -> usize {
    cdf.partition_point(|&c| c <= u).min(cdf.len() - 1)
}

/// One draw from unnormalized weights (used once per sequence, for the starting state).
fn draw(weights: &[f64], rng: &mut Rng) -> usize {
    let mut cdf = vec![0.0; weights.len()];
    fill_cdf(weights, &mut cdf);
    sample(&cdf, rng.unit())
}

/// Probabilities exactly as the sampler realizes them: differences of the cdf.
fn cdf_probs(cdf: &[f64]) -> impl Iterator<Item = f64> + '_ {
    cdf.iter()
        .scan(0.0, |prev, &c| Some(c - std::mem::replace(prev, c)))
}

/// Random skewed distribution (weights u^power) with the uniform floor mixed in, as a cdf.
fn random_cdf(rng: &mut Rng, power: u32, w: &mut [f64], cdf: &mut [f64]) {
    w.iter_mut().for_each(|x| *x = rng.skewed(power));
    let (total, floor): (f64, f64) = (w.iter().sum(), FLOOR / w.len() as f64);
    w.iter_mut()
        .for_each(|x| *x = (1.0 - FLOOR) * *x / total + floor);
    fill_cdf(w, cdf);
}

/// The cdf of p_i ∝ r^i whose entropy is `entropy`: the entropy rises monotonically with r from
/// 0 (all mass on symbol 0) to log2(alphabet) at r = 1, so bisection on r finds it.
fn iid_cdf(alphabet: usize, entropy: f64) -> Vec<f64> {
    let (mut w, mut cdf) = (vec![0.0; alphabet], vec![0.0; alphabet]);
    let mut build = |r: f64, cdf: &mut [f64]| {
        w.iter_mut().fold(1.0, |x, wi| {
            *wi = x;
            x * r
        });
        fill_cdf(&w, cdf);
        entropy_of(cdf_probs(cdf))
    };
    let (mut lo, mut hi) = (0.0, 1.0);
    if entropy >= log2(alphabet as f64) {
        lo = 1.0;
    } else if entropy > 0.0 {
        for _ in 0..64 {
            let mid = 0.5 * (lo + hi);
            *(if build(mid, &mut cdf) < entropy {
                &mut lo
            } else {
                &mut hi
            }) = mid;
        }
    }
    build(lo, &mut cdf);
    cdf
}

/// Stationary distribution by power iteration; `step(pi, next)` adds pi·P into `next`. Stops at
/// an L1 change below 1e-13 (rate error far below what any test or table can show), or after
/// ~2^32 operations (`work` per step) in case of a slowly mixing chain.
fn stationary(size: usize, work: usize, mut step: impl FnMut(&[f64], &mut [f64])) -> Vec<f64> {
    let (mut pi, mut next) = (vec![1.0 / size as f64; size], vec![0.0; size]);
    for _ in 0..((1u64 << 32) / work as u64).clamp(200, 100_000) {
        next.iter_mut().for_each(|x| *x = 0.0);
        step(&pi, &mut next);
        let (total, mut change): (f64, f64) = (next.iter().sum(), 0.0);
        for (p, q) in pi.iter_mut().zip(&next) {
            change += (q / total - *p).abs();
            *p = q / total;
        }
        if change < 1e-13 {
            break;
        }
    }
    pi
}

/// A random order-k chain over `a` letters: `cdf[ctx * a..][..a]` is the next-symbol cdf after
/// context `ctx` (the last k symbols in base a, newest least significant) and `pi` the stationary
/// distribution of contexts.
struct MarkovChain {
    cdf: Vec<f64>,
    pi: Vec<f64>,
}

fn markov_chain(a: usize, k: usize, rng: &mut Rng) -> MarkovChain {
    let contexts = a.pow(k as u32); // validated: a^(k+1) <= MAX_MARKOV_TABLE
    let (mut cdf, mut w) = (vec![0.0; contexts * a], vec![0.0; a]);
    for row in cdf.chunks_exact_mut(a) {
        random_cdf(rng, 3, &mut w, row);
    }
    // Context s followed by x goes to (s * a) % contexts + x: the base walks in steps of a and
    // wraps.
    let pi = if k == 0 {
        vec![1.0]
    } else {
        stationary(contexts, contexts * a, |pi, next| {
            let mut base = 0;
            for (row, &mass) in cdf.chunks_exact(a).zip(pi) {
                let targets = next[base..base + a].iter_mut();
                targets
                    .zip(cdf_probs(row))
                    .for_each(|(q, p)| *q += mass * p);
                base = if base + a == contexts { 0 } else { base + a };
            }
        })
    };
    MarkovChain { cdf, pi }
}

fn markov(alphabet: u32, order: u32, n: usize, rng: &mut Rng, mut out: Vec<u8>) -> Generated {
    let (a, k) = (alphabet as usize, order as usize);
    let contexts = a.pow(order);
    let MarkovChain { cdf, pi } = markov_chain(a, k, rng);
    let rows = cdf.chunks_exact(a).zip(&pi);
    let rate: f64 = rows.map(|(row, p)| p * entropy_of(cdf_probs(row))).sum();
    // Start in the stationary distribution, so the whole sequence is stationary and its total
    // information is H(first min(n, k) symbols) + (n - k) * rate exactly.
    let mut ctx = draw(&pi, rng);
    let m = n.min(k);
    let span = a.pow((k - m) as u32); // contexts sharing their first m symbols
    let head = pi.chunks_exact(span).map(|c| c.iter().sum::<f64>());
    let total_bits = entropy_of(head) + (n - m) as f64 * rate;
    out.extend((0..m).map(|i| (ctx / a.pow((k - 1 - i) as u32) % a) as u8));
    for _ in m..n {
        let x = sample(&cdf[ctx * a..ctx * a + a], rng.unit());
        out.push(x as u8);
        ctx = (ctx * a + x) % contexts;
    }
    done(out, alphabet, rate, true, total_bits)
}

fn hmm(h: usize, alphabet: u32, n: usize, rng: &mut Rng, mut out: Vec<u8>) -> Generated {
    let a = alphabet as usize;
    let (mut trans, mut emit, mut w) = (vec![0.0; h * h], vec![0.0; h * a], vec![0.0; h.max(a)]);
    for (i, row) in trans.chunks_exact_mut(h).enumerate() {
        // Sticky: stay with probability 0.75..0.95, so the hidden state persists and there is
        // long-range structure to learn; the rest goes to random (floored) states.
        random_cdf(rng, 3, &mut w[..h], row);
        let stay = 0.75 + 0.2 * rng.unit();
        let mut probs: Vec<f64> = cdf_probs(row).map(|p| p * (1.0 - stay)).collect();
        probs[i] += stay;
        fill_cdf(&probs, row);
    }
    for row in emit.chunks_exact_mut(a) {
        // More skewed than Markov rows, so that the states are told apart by what they emit.
        random_cdf(rng, 6, &mut w[..a], row);
    }
    let tp: Vec<f64> = trans.chunks_exact(h).flat_map(cdf_probs).collect();
    let ep: Vec<f64> = emit.chunks_exact(a).flat_map(cdf_probs).collect();
    let pi = stationary(h, h * h, |pi, next| {
        for (row, &mass) in tp.chunks_exact(h).zip(pi) {
            next.iter_mut().zip(row).for_each(|(q, t)| *q += mass * t);
        }
    });
    let mut state = draw(&pi, rng);
    for _ in 0..n {
        out.push(sample(&emit[state * a..state * a + a], rng.unit()) as u8);
        state = sample(&trans[state * h..state * h + h], rng.unit());
    }
    // Forward algorithm, scaled each step: -log2 p(x_1..x_n) = -sum log2 p(x_t | x_<t), where
    // alpha holds p(state_t | x_<t). The floors keep every factor positive.
    let (mut alpha, mut next, mut bits) = (pi, vec![0.0; h], 0.0);
    for &x in &out {
        alpha
            .iter_mut()
            .zip(ep[x as usize..].iter().step_by(a))
            .for_each(|(al, e)| *al *= e);
        let c: f64 = alpha.iter().sum();
        bits -= c.log2();
        next.iter_mut().for_each(|q| *q = 0.0);
        for (&al, row) in alpha.iter().zip(tp.chunks_exact(h)) {
            next.iter_mut().zip(row).for_each(|(q, t)| *q += al / c * t);
        }
        std::mem::swap(&mut alpha, &mut next);
    }
    let rate = if n == 0 { 0.0 } else { bits / n as f64 };
    done(out, alphabet, rate, false, bits)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::{BuildHasher, Hasher};

    /// A fresh seed per run (statistical checks should hold for any seed), printed on failure.
    fn fresh_seed() -> u64 {
        std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish()
    }

    fn gen(spec: &str, n: usize, seed: u64) -> Generated {
        generate(&parse_source(spec).unwrap(), n, seed).unwrap()
    }

    /// Plug-in H(X_t | previous k symbols) in bits, over positions t >= k.
    fn cond_entropy(x: &[u8], a: usize, k: usize) -> f64 {
        let contexts = a.pow(k as u32);
        let (mut counts, mut ctx) = (vec![0u64; contexts * a], 0);
        for (t, &s) in x.iter().enumerate() {
            if t >= k {
                counts[ctx * a + s as usize] += 1;
            }
            ctx = (ctx * a + s as usize) % contexts;
        }
        let total = (x.len() - k) as f64;
        let rows = counts
            .chunks_exact(a)
            .map(|row| (row, row.iter().sum::<u64>() as f64));
        let cells = rows.flat_map(|(row, rn)| row.iter().map(move |&c| (c as f64, rn)));
        cells
            .filter(|c| c.0 > 0.0)
            .map(|(c, rn)| -c / total * (c / rn).log2())
            .sum()
    }

    #[test]
    fn iid_plugin_entropy_matches() {
        for (a, h) in [
            (2, 0.3),
            (2, 0.97),
            (2, 1.0),
            (16, 2.7),
            (16, 0.5),
            (16, 4.0),
            (16, 0.0),
        ] {
            let seed = fresh_seed();
            let g = gen(&format!("iid:alphabet={a},entropy={h}"), 1_000_000, seed);
            let est = cond_entropy(&g.symbols, a, 0);
            assert!(
                (g.entropy_rate - h).abs() < 1e-9,
                "a={a} h={h}: rate {}",
                g.entropy_rate
            );
            assert!(
                (est - h).abs() < 0.01,
                "a={a} h={h} seed={seed}: plug-in {est}"
            );
            assert!(g.exact && g.symbols.iter().all(|&s| usize::from(s) < a));
        }
    }

    #[test]
    fn markov_rate_matches_empirical() {
        for (a, k, n) in [
            (4, 3, 1_000_000),
            (2, 8, 1_000_000),
            (16, 1, 2_000_000),
            (8, 0, 100_000),
        ] {
            let seed = fresh_seed();
            let g = gen(&format!("markov:alphabet={a},order={k}"), n, seed);
            // The same chain, rebuilt from the same seed (generate draws the chain first).
            let chain = markov_chain(a, k, &mut Rng::new(seed));
            let contexts = a.pow(k as u32);
            let probs = |c: usize| {
                let row = &chain.cdf[c * a..c * a + a];
                (0..a).map(|x| row[x] - if x == 0 { 0.0 } else { row[x - 1] })
            };
            let h =
                |c: usize| -> f64 { probs(c).filter(|&p| p > 0.0).map(|p| -p * p.log2()).sum() };
            // pi is stationary: moving every context's mass one step gives pi back.
            let mut moved = vec![0.0; contexts];
            for (c, &mass) in chain.pi.iter().enumerate() {
                for (x, p) in probs(c).enumerate() {
                    moved[(c * a + x) % contexts] += mass * p;
                }
            }
            let drift: f64 = moved
                .iter()
                .zip(&chain.pi)
                .map(|(m, p)| (m - p).abs())
                .sum();
            assert!(drift < 1e-9, "a={a} k={k} seed={seed}: pi moves by {drift}");
            let rate: f64 = (0..contexts).map(|c| chain.pi[c] * h(c)).sum();
            assert!(
                (g.entropy_rate - rate).abs() < 1e-12,
                "{} vs {rate}",
                g.entropy_rate
            );
            // Over the sample: the true model's code length per symbol, and the plug-in
            // (maximum-likelihood) conditional entropy.
            let (mut visits, mut code, mut code2, mut ctx) = (vec![0u64; contexts], 0.0, 0.0, 0);
            for (t, &s) in g.symbols.iter().enumerate() {
                if t >= k {
                    visits[ctx] += 1;
                    let len = -probs(ctx).nth(s as usize).unwrap().log2();
                    (code, code2) = (code + len, code2 + len * len);
                }
                ctx = (ctx * a + s as usize) % contexts;
            }
            let total = (n - k) as f64;
            let (code, sd) = (
                code / total,
                ((code2 / total - (code / total).powi(2)) / total).sqrt(),
            );
            // Given the contexts visited, the code length's mean is their conditional entropies
            // weighted by visits (its deviations form a martingale: 5 standard errors). Compared
            // with the rate itself a slowly mixing chain would fail now and then: 10^6 steps
            // visit its contexts in proportions away from pi, which says nothing about the rate.
            let expected: f64 = (0..contexts).map(|c| visits[c] as f64 / total * h(c)).sum();
            assert!(
                (code - expected).abs() < 5.0 * sd + 1e-9,
                "a={a} k={k} seed={seed}: code length {code} vs {expected} +- {sd}"
            );
            // The plug-in maximizes the likelihood, so it lies below the true code length, by
            // about a chi-square with contexts*(a-1) degrees of freedom over 2 n ln 2.
            let dof = (contexts * (a - 1)) as f64;
            let gap = code - cond_entropy(&g.symbols, a, k);
            let most = (dof + 6.0 * (2.0 * dof).sqrt()) / (2.0 * total * 2f64.ln());
            assert!(
                (-1e-9..most).contains(&gap),
                "a={a} k={k} seed={seed}: plug-in {gap} below the code length (at most {most})"
            );
            assert!(
                rate > 0.0 && rate < log2(a as f64) - 0.05,
                "not skewed: {rate}"
            );
            // total = H(first k) + (n - k) rate, and H(first k) <= k log2 a.
            let tail = (n - k) as f64 * rate;
            let slack = 1e-9 * g.total_bits;
            assert!(
                g.total_bits >= tail - slack
                    && g.total_bits <= tail + k as f64 * log2(a as f64) + slack,
                "a={a} k={k} seed={seed}: total {} vs tail {tail}",
                g.total_bits
            );
        }
    }

    #[test]
    fn xor_and_lfib_satisfy_recurrences() {
        for k in [1, 2, 20, 60] {
            let g = gen(&format!("xor:k={k}"), 20_000, fresh_seed());
            let x = &g.symbols;
            assert!(x.iter().all(|&b| b < 2) && g.total_bits == k as f64 && g.entropy_rate == 0.0);
            assert!((k..x.len()).all(|i| x[i] == x[i - 1] ^ x[i - k]));
        }
        assert_eq!(gen("xor:k=60", 7, 1).total_bits, 7.0);
        for (j, k, bits) in [(24, 55, 8), (1, 2, 1), (5, 17, 3)] {
            let g = gen(
                &format!("lfib:j={j},k={k},bits={bits}"),
                20_000,
                fresh_seed(),
            );
            let (x, m) = (&g.symbols, 1u32 << bits);
            assert_eq!((g.alphabet, g.total_bits), (m, (k * bits) as f64));
            assert!(x.iter().all(|&s| u32::from(s) < m));
            let sum = |i: usize| (u32::from(x[i - j]) + u32::from(x[i - k])) % m;
            assert!((k..x.len()).all(|i| u32::from(x[i]) == sum(i)));
        }
    }

    #[test]
    fn hmm_estimate_is_plausible() {
        for (h, a) in [(4, 8), (3, 2), (8, 4)] {
            let seed = fresh_seed();
            let g = gen(&format!("hmm:states={h},alphabet={a}"), 1_000_000, seed);
            let rate = g.entropy_rate;
            let (h0, h3) = (
                cond_entropy(&g.symbols, a, 0),
                cond_entropy(&g.symbols, a, 3),
            );
            assert!(
                !g.exact && rate > 0.0 && rate <= log2(a as f64),
                "seed={seed}: {rate}"
            );
            // Conditioning on less cannot lower entropy: H(X_t | 3 previous) >= rate, and the
            // order-0 entropy too, up to plug-in bias and noise. A sticky HMM's order-3 entropy
            // is already close to its rate.
            assert!(
                rate <= h3 + 0.01 && rate <= h0 + 0.005,
                "seed={seed}: {rate} {h3} {h0}"
            );
            assert!(
                h3 - rate < 0.2,
                "seed={seed}: rate {rate} far below h3 {h3}"
            );
        }
        // One hidden state is an i.i.d. source: the estimate must match the plug-in entropy.
        let g = gen("hmm:states=1,alphabet=16", 1_000_000, fresh_seed());
        assert!((g.entropy_rate - cond_entropy(&g.symbols, 16, 0)).abs() < 0.005);
    }

    #[test]
    fn names_round_trip_and_defaults() {
        for s in [
            Source::Iid {
                alphabet: 7,
                entropy: 1.234_567_890_123,
            },
            Source::Iid {
                alphabet: 2,
                entropy: 1e-7,
            },
            Source::Markov {
                alphabet: 256,
                order: 1,
            },
            Source::Xor { k: 60 },
            Source::Hmm {
                states: 64,
                alphabet: 3,
            },
            Source::LaggedFibonacci {
                j: 5,
                k: 17,
                bits: 1,
            },
        ] {
            assert_eq!(parse_source(&s.name()).unwrap(), s, "{}", s.name());
        }
        let defaults = [
            "iid:alphabet=2,entropy=0.5",
            "markov:alphabet=4,order=2",
            "xor:k=20",
        ];
        for (spec, name) in ["iid", "markov:", "xor"].iter().zip(defaults) {
            assert_eq!(parse_source(spec).unwrap().name(), name);
        }
        assert_eq!(
            parse_source("hmm:alphabet=8").unwrap().name(),
            "hmm:states=4,alphabet=8"
        );
        assert_eq!(
            parse_source(" lfib: k = 60 ").unwrap().name(),
            "lfib:j=24,k=60,bits=8"
        );
    }

    #[test]
    fn same_seed_same_bytes_and_prefixes() {
        let specs = [
            "iid:alphabet=5,entropy=1.9",
            "markov:alphabet=3,order=4",
            "xor:k=9",
        ];
        for spec in specs
            .iter()
            .chain(&["hmm:states=5,alphabet=6", "lfib:j=3,k=7,bits=5"])
        {
            let seed = fresh_seed();
            let g = gen(spec, 5000, seed);
            assert_eq!(g.symbols, gen(spec, 5000, seed).symbols, "{spec}");
            assert_eq!(g.symbols[..1000], gen(spec, 1000, seed).symbols, "{spec}");
            assert_ne!(g.symbols, gen(spec, 5000, seed ^ 1).symbols, "{spec}");
        }
        // Pinned streams: a change here means old benchmark files can no longer be regenerated.
        let mut hash = 0xcbf2_9ce4_8422_2325u64;
        for spec in [
            "iid:alphabet=5,entropy=1.9",
            "markov:alphabet=4,order=2",
            "hmm",
            "xor",
            "lfib",
        ] {
            for &b in &gen(spec, 1000, 42).symbols {
                hash = (hash ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
            }
        }
        assert_eq!(hash, 15_196_783_009_666_030_017);
    }

    #[test]
    fn bad_parameters_are_errors() {
        // Out-of-range parameters, then malformed specs (the empty spec among them).
        let bad = "iid:alphabet=1,entropy=0;iid:alphabet=257;iid:alphabet=4,entropy=2.1;\
            iid:alphabet=4,entropy=-0.1;iid:entropy=NaN;iid:entropy=inf;\
            markov:alphabet=4,order=10;markov:alphabet=256,order=4294967295;markov:alphabet=0;\
            xor:k=0;hmm:states=0;hmm:states=65;hmm:alphabet=300;\
            lfib:j=0;lfib:j=5,k=5;lfib:bits=0;lfib:bits=9;\
            ;zip:k=1;xor:k;xor:k=-1;xor:n=3;xor:k=3,k=4;iid:entropy=x";
        for spec in bad.split(';') {
            let e = parse_source(spec).expect_err(spec);
            assert!(e.to_string().len() > 20, "{e}");
        }
        let s = Source::LaggedFibonacci {
            j: 3,
            k: 2,
            bits: 8,
        };
        assert!(generate(&s, 10, 1).is_err() && generate(&Source::Xor { k: 0 }, 10, 1).is_err());
        let big = [
            "markov:alphabet=2,order=12",
            "xor:k=4000000000",
            "lfib:j=1,k=4000000000",
        ];
        for spec in big.iter().chain(&["iid", "hmm"]) {
            for n in [0, 1, 3] {
                let g = gen(spec, n, 7);
                assert!(
                    g.symbols.len() == n && g.total_bits.is_finite(),
                    "{spec} {n}"
                );
            }
        }
    }

    #[test]
    fn own_log2_matches_std() {
        for x in [
            1e-310, 1e-300, 0.1, 0.5, 0.75, 1.0, 1.45, 1.5, 3.0, 1000.0, 1e300,
        ] {
            assert!(
                (log2(x) - x.log2()).abs() <= 1e-13 * x.log2().abs().max(1.0),
                "{x}"
            );
        }
        assert_eq!(log2(256.0), 8.0);
    }
}
