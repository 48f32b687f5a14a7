//! strata-zip: lossless compression with an arithmetic coder driven by learned predictors.
//!
//! DeepZip (Goyal et al. 2018) showed that a recurrent network driving an arithmetic coder
//! finds structure classic compressors cannot see. This crate makes that exact and practical:
//!
//! * [`coder`]: a binary arithmetic coder over integer frequencies (no symbol ever gets zero);
//! * [`cm`]: context mixing (hashed order-k, word, sparse, match and lag-relation models mixed
//!   in the logistic domain), the fast default;
//! * [`rnn`]: LSTM and GRU predictors trained while coding, alone or mixed into the context
//!   mixer, in plain f32 with a fixed operation order and their own `exp`, so the decoder
//!   repeats the encoder's arithmetic bit for bit on any machine (no FMA contraction: Rust never
//!   fuses `a * b + c` by itself; no libm; no run-time choice of kernels; no threads inside);
//! * [`alphabet`]: bytes, bit streams, small alphabets and DNA (2 bits per base, other bytes kept
//!   exactly in a side stream), chosen from the data;
//! * [`curve`]: the learning curve, the code length spent after every N symbols, measured while
//!   coding without changing the output ([`compress_with_curve`]);
//! * [`gen`]: synthetic sources with known entropy rates (i.i.d., Markov-k, XOR-k, HMM, lagged
//!   Fibonacci);
//! * the container: magic, version, the model spec, the original length and its CRC-32, checked
//!   on decoding. Input the model cannot shrink is stored, so nothing grows by more than the
//!   header. Every size a header claims is checked against the bytes that follow it before
//!   anything is allocated or decoded (a coded bit costs at least log2(4097/4096) bits, see
//!   [`coder::max_coded_bits`]), so a forged or damaged file fails at once, and a decoder's work
//!   and memory are bounded by the size of its input.

mod adaptive;
pub mod alphabet;
mod bithistory;
pub mod cm;
pub mod coder;
pub mod curve;
pub mod detmath;
mod error;
pub mod gen;
mod logistic;
mod matcher;
pub mod model;
mod neural;
mod relation;
pub mod rnn;
mod run;
mod slots;
pub mod varint;

pub use alphabet::{Alphabet, AlphabetChoice};
pub use curve::{CodeLengthCurve, CurvePoint};
pub use error::{Result, ZipError};
pub use model::{Kind, ModelSpec, MODEL_HELP};

use cm::{Cm, CmConfig, Flavor};
use coder::{Decoder, Encoder};
use curve::Meter;
use neural::Neural;
use varint::Reader;

/// First bytes of every strata-zip file.
pub const MAGIC: &[u8; 4] = b"STZP";
/// The container version this build writes and reads. Bumped whenever the model's predictions
/// change (2: bit-history states, run model, column contexts), because a file can only be decoded
/// by the exact model that coded it.
pub const VERSION: u8 = 2;

/// How to compress.
#[derive(Clone, Debug)]
pub struct Options {
    /// Which predictor, and its settings; recorded in the container.
    pub model: ModelSpec,
    /// How the data is split into symbols.
    pub alphabet: AlphabetChoice,
    /// Streams coded at once (DNA has two). Never changes the output.
    pub threads: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            model: ModelSpec::default(),
            alphabet: AlphabetChoice::Auto,
            threads: 2,
        }
    }
}

/// What a container says about itself, without decoding it.
#[derive(Clone, Debug)]
pub struct Info {
    /// Length of the uncompressed data, in bytes.
    pub original_len: u64,
    /// CRC-32 of the uncompressed data, checked after decoding.
    pub crc32: u32,
    /// None when the data is stored as is.
    pub alphabet: Option<Alphabet>,
    /// The model that coded the data; None when the data is stored as is.
    pub model: Option<ModelSpec>,
    /// Header bytes before the coded payload.
    pub header_len: usize,
}

/// Compresses `data`.
pub fn compress(data: &[u8], opts: &Options) -> Result<Vec<u8>> {
    compress_with_progress(data, opts, &|_| {})
}

/// Compresses `data`, calling `progress` with the number of symbols coded so far (summed over
/// streams) every 64 Ki symbols.
pub fn compress_with_progress(
    data: &[u8],
    opts: &Options,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<Vec<u8>> {
    compress_metered(data, opts, progress, None).map(|(c, _)| c)
}

/// Compresses `data` as [`compress`] does (the container is the same, byte for byte) and
/// measures the learning curve: the code length spent after every `every` symbols of the coded
/// stream (see [`CodeLengthCurve`]; `every` is at least 1). The curve describes the model's code
/// even when the data ends up stored because the model could not shrink it.
pub fn compress_with_curve(
    data: &[u8],
    opts: &Options,
    every: u64,
) -> Result<(Vec<u8>, CodeLengthCurve)> {
    let (c, curve) = compress_metered(data, opts, &|_| {}, Some(Meter::new(every)))?;
    Ok((
        c,
        curve.unwrap_or_else(|| CodeLengthCurve {
            every: every.max(1),
            points: Vec::new(),
        }),
    ))
}

/// [`compress_with_progress`], with the learning curve of the main stream (DNA: the bases) when
/// `meter` is given.
fn compress_metered(
    data: &[u8],
    opts: &Options,
    progress: &(dyn Fn(u64) + Sync),
    mut meter: Option<Meter>,
) -> Result<(Vec<u8>, Option<CodeLengthCurve>)> {
    opts.model.validate()?;
    let crc = crc32fast::hash(data);
    let stored = stored_container(data, crc);
    if data.is_empty() {
        return Ok((stored, None));
    }
    let alphabet = alphabet::detect(data, opts.alphabet);
    let mut out = header(VERSION, 1, crc, data.len() as u64);
    alphabet.write(&mut out);
    opts.model.write(&mut out);
    match &alphabet {
        Alphabet::Dna => {
            let (bases, side) = alphabet::split_dna(data);
            let (side_code, base_code) = run_two(
                opts.threads,
                || {
                    encode_stream(
                        &side,
                        8,
                        predictor(&opts.model, 8, bytes_flavor(), side.len()),
                        progress,
                        None,
                    )
                },
                || {
                    encode_stream(
                        &bases,
                        2,
                        predictor(&opts.model, 2, dna_flavor(), bases.len()),
                        progress,
                        meter.as_mut(),
                    )
                },
            );
            varint::put(&mut out, side.len() as u64);
            varint::put(&mut out, side_code.len() as u64);
            varint::put(&mut out, bases.len() as u64);
            out.extend_from_slice(&side_code);
            out.extend_from_slice(&base_code);
        }
        a => {
            let symbols = alphabet::to_symbols(data, a);
            let w = a.width();
            let p = predictor(&opts.model, w, flavor_for(a), symbols.len());
            out.extend_from_slice(&encode_stream(&symbols, w, p, progress, meter.as_mut()));
        }
    }
    let curve = meter.map(Meter::finish);
    Ok((
        if out.len() < stored.len() {
            out
        } else {
            stored
        },
        curve,
    ))
}

/// Decompresses a container, verifying its length and checksum.
pub fn decompress(container: &[u8]) -> Result<Vec<u8>> {
    decompress_with_progress(container, 2, &|_| {})
}

/// [`decompress`] with `threads` streams decoded at once and progress in symbols.
pub fn decompress_with_progress(
    container: &[u8],
    threads: usize,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<Vec<u8>> {
    let (info, layout) = read_header(container)?;
    let data = match layout {
        Layout::Stored(rest) => rest.to_vec(),
        Layout::Dna {
            model,
            side_code,
            side_len,
            base_code,
            nbases,
        } => {
            let (side, bases) = run_two(
                threads,
                || {
                    decode_stream(
                        side_code,
                        side_len,
                        8,
                        predictor(&model, 8, bytes_flavor(), side_len as usize),
                        progress,
                    )
                },
                || {
                    decode_stream(
                        base_code,
                        nbases,
                        2,
                        predictor(&model, 2, dna_flavor(), nbases as usize),
                        progress,
                    )
                },
            );
            let (side, bases) = (side?, bases?);
            if alphabet::dna_side_bytes(&side)?.checked_add(nbases) != Some(info.original_len) {
                return Err(ZipError::Corrupt(
                    "DNA streams do not add up to the original length".into(),
                ));
            }
            alphabet::merge_dna(&bases, &side)?
        }
        Layout::Coded {
            model,
            alphabet: a,
            code,
            symbols: n,
        } => {
            let w = a.width();
            let symbols = decode_stream(
                code,
                n,
                w,
                predictor(&model, w, flavor_for(&a), n as usize),
                progress,
            )?;
            alphabet::from_symbols(&symbols, &a)?
        }
    };
    if data.len() as u64 != info.original_len {
        return Err(ZipError::Corrupt(
            "decoded length differs from the header".into(),
        ));
    }
    let got = crc32fast::hash(&data);
    if got != info.crc32 {
        return Err(ZipError::Checksum {
            want: info.crc32,
            got,
        });
    }
    Ok(data)
}

/// Reads a container's header only. It checks every size the header claims against the file's
/// length (see [`coder::max_coded_bits`]), so a container that [`decompress`] would refuse as
/// too long for its stream is refused here already, before any decoding.
pub fn info(container: &[u8]) -> Result<Info> {
    read_header(container).map(|(i, _)| i)
}

/// Where a container's payload lies and how many symbols each coded stream must give; built
/// only after every claimed size was checked against the bytes that are there.
enum Layout<'a> {
    /// The data as is (its length already matches the header).
    Stored(&'a [u8]),
    /// One coded stream of `symbols` symbols of the alphabet's width.
    Coded {
        model: ModelSpec,
        alphabet: Alphabet,
        code: &'a [u8],
        symbols: u64,
    },
    /// DNA: the side stream (`side_len` bytes) and the 2-bit bases (`nbases`).
    Dna {
        model: ModelSpec,
        side_code: &'a [u8],
        side_len: u64,
        base_code: &'a [u8],
        nbases: u64,
    },
}

fn header(version: u8, method: u8, crc: u32, len: u64) -> Vec<u8> {
    let mut out = MAGIC.to_vec();
    out.push(version);
    out.push(method);
    out.extend_from_slice(&crc.to_le_bytes());
    varint::put(&mut out, len);
    out
}

fn stored_container(data: &[u8], crc: u32) -> Vec<u8> {
    let mut out = header(VERSION, 0, crc, data.len() as u64);
    out.extend_from_slice(data);
    out
}

fn read_header(container: &[u8]) -> Result<(Info, Layout<'_>)> {
    if container.len() < 4 || &container[..4] != MAGIC {
        return Err(ZipError::NotAContainer);
    }
    let mut r = Reader::new(container);
    r.pos = 4;
    let version = r.byte("version")?;
    if version != VERSION {
        return Err(ZipError::UnsupportedVersion(version));
    }
    let method = r.byte("method")?;
    let crc = u32::from_le_bytes(
        r.bytes(4, "checksum")?
            .try_into()
            .map_err(|_| ZipError::Truncated("checksum"))?,
    );
    let original_len = r.varint("original length")?;
    let (alphabet, model) = match method {
        0 => (None, None),
        1 => (
            Some(Alphabet::read(&mut r)?),
            Some(ModelSpec::read(&mut r)?),
        ),
        m => return Err(ZipError::Corrupt(format!("unknown method {m}"))),
    };
    let header_len = r.pos;
    let layout = match (&alphabet, &model) {
        (Some(Alphabet::Dna), Some(model)) => {
            let side_len = r.varint("DNA side stream length")?;
            let side_code_len = r.varint("DNA side stream code length")?;
            let nbases = r.varint("DNA base count")?;
            // The side stream's code must lie inside the file (checked before slicing).
            let side_code = usize::try_from(side_code_len)
                .ok()
                .filter(|&n| n <= r.rest().len())
                .and_then(|n| r.bytes(n, "DNA side stream").ok())
                .ok_or(ZipError::Truncated(
                    "the DNA side stream is longer than the file",
                ))?;
            let base_code = r.rest();
            check_capacity(side_len, "bytes", 8, "DNA side stream", side_code.len())?;
            check_capacity(nbases, "bases", 2, "DNA base stream", base_code.len())?;
            // The side stream holds its bytes plus their run records, so the original has at
            // least the bases and at most the bases plus the whole side stream.
            if original_len < nbases
                || nbases
                    .checked_add(side_len)
                    .is_none_or(|m| original_len > m)
            {
                return Err(ZipError::Corrupt(format!(
                    "header claims {original_len} bytes but its DNA streams hold {nbases} bases \
                     and {side_len} side bytes"
                )));
            }
            Layout::Dna {
                model: model.clone(),
                side_code,
                side_len,
                base_code,
                nbases,
            }
        }
        (Some(a), Some(model)) => {
            let code = r.rest();
            // Bits per original byte: the alphabet's width, times 8 symbols a byte for bits.
            let per_byte = a.width() as u64 * if *a == Alphabet::Bits { 8 } else { 1 };
            check_capacity(original_len, "bytes", per_byte, "stream", code.len())?;
            Layout::Coded {
                model: model.clone(),
                alphabet: a.clone(),
                code,
                symbols: alphabet::symbol_count(original_len, a),
            }
        }
        _ => {
            let rest = r.rest();
            match (rest.len() as u64).cmp(&original_len) {
                std::cmp::Ordering::Less => {
                    return Err(ZipError::Truncated(
                        "stored data is shorter than the header says",
                    ))
                }
                std::cmp::Ordering::Greater => {
                    return Err(ZipError::Corrupt(format!(
                        "header claims {original_len} stored bytes but {} follow it",
                        rest.len()
                    )))
                }
                std::cmp::Ordering::Equal => {}
            }
            Layout::Stored(rest)
        }
    };
    let info = Info {
        original_len,
        crc32: crc,
        alphabet,
        model,
        header_len,
    };
    Ok((info, layout))
}

/// Refuses a header that claims more than its coded stream can hold. Every coded bit costs at
/// least log2(4097/4096) bits of code whatever the model predicts ([`coder::max_coded_bits`]),
/// so `code_len` bytes hold at most about 22,700 bits; a claim beyond that is corruption, and
/// without this check a few hundred KB of zeros behind a header claiming 10^10 bytes would be
/// decoded for hours before the checksum failed. `bits_per_unit` converts the claimed units
/// (bytes, bases) into coded bits.
fn check_capacity(
    claimed: u64,
    unit: &'static str,
    bits_per_unit: u64,
    stream: &'static str,
    code_len: usize,
) -> Result<()> {
    let max = coder::max_coded_bits(code_len as u64) / bits_per_unit.max(1);
    if claimed > max {
        return Err(ZipError::Oversized {
            claimed,
            unit,
            stream,
            stream_len: code_len as u64,
            max,
        });
    }
    Ok(())
}

fn bytes_flavor() -> Flavor {
    Flavor::Bytes
}

fn dna_flavor() -> Flavor {
    Flavor::Symbols {
        orders: vec![1, 2, 3, 4, 6, 8, 10, 11, 12, 13, 14, 16, 18, 20, 22, 24],
        dna: true,
    }
}

fn flavor_for(a: &Alphabet) -> Flavor {
    match (a, a.width()) {
        (Alphabet::Bytes, _) => Flavor::Bytes,
        (Alphabet::Dna, _) => dna_flavor(),
        (_, 1) => Flavor::Symbols {
            orders: vec![1, 2, 3, 4, 6, 8, 12, 16, 20, 24, 32],
            dna: false,
        },
        (_, 2) => Flavor::Symbols {
            orders: vec![1, 2, 3, 4, 6, 8, 11, 12, 16, 20, 24],
            dna: false,
        },
        _ => Flavor::Symbols {
            orders: vec![1, 2, 3, 4, 5, 6, 8, 12, 16],
            dna: false,
        },
    }
}

/// The predictor of one stream; everything it depends on is in the container.
enum Predictor {
    Cm(Box<Cm>),
    Rnn(Box<Neural>),
}

impl Predictor {
    #[inline]
    fn p(&mut self, partial: u32, done: u32) -> u32 {
        // Both predictors already stay in the clamp's range (so valid streams are unchanged);
        // the clamp is what guarantees the capacity bound the header check relies on.
        coder::clamp_model_p(match self {
            Predictor::Cm(c) => c.predict(),
            Predictor::Rnn(n) => n.p(partial, done) << 4,
        })
    }

    #[inline]
    fn update(&mut self, bit: u32, partial: u32, done: u32, width: u32) {
        match self {
            Predictor::Cm(c) => c.update(bit),
            Predictor::Rnn(n) => {
                if done + 1 == width {
                    n.learn(((partial << 1) | bit) & ((1 << width) - 1));
                }
            }
        }
    }
}

fn ceil_log2(n: usize) -> u32 {
    usize::BITS - n.max(1).saturating_sub(1).leading_zeros()
}

fn predictor(spec: &ModelSpec, width: u32, flavor: Flavor, symbols: usize) -> Predictor {
    // Bytes: 128-256 slots per input byte (text of a few hundred KB still gains from room),
    // at most 2^26 slots = 256 MB.
    let table_bits = match flavor {
        Flavor::Bytes => ceil_log2(symbols) + 7,
        _ => ceil_log2(symbols.saturating_mul(width as usize)) + 3,
    }
    .clamp(16, 26);
    // Slot counts run up to 255 (nearly stationary probabilities): the slots' bit history
    // states carry the recent, nonstationary side.
    let limit = 255;
    let neural = spec
        .rnn_spec(1 << width)
        .map(|s| Box::new(Neural::new(&s, width)));
    match (spec.kind, neural) {
        (Kind::Rnn(_), Some(n)) => Predictor::Rnn(n),
        (_, n) => Predictor::Cm(Box::new(Cm::new(
            &CmConfig {
                width,
                flavor,
                table_bits,
                limit,
            },
            n.map(|b| *b),
        ))),
    }
}

const PROGRESS_EVERY: usize = 1 << 16;

fn encode_stream(
    symbols: &[u8],
    width: u32,
    mut p: Predictor,
    progress: &(dyn Fn(u64) + Sync),
    mut meter: Option<&mut Meter>,
) -> Vec<u8> {
    let mut e = Encoder::new();
    for (i, &s) in symbols.iter().enumerate() {
        let mut partial = 1u32;
        for done in 0..width {
            let bit = ((s as u32) >> (width - 1 - done)) & 1;
            let p1 = p.p(partial, done);
            e.encode(bit, p1);
            if let Some(m) = meter.as_deref_mut() {
                m.bit(bit, p1);
            }
            p.update(bit, partial, done, width);
            partial = (partial << 1) | bit;
        }
        if let Some(m) = meter.as_deref_mut() {
            m.symbol();
        }
        if (i + 1) % PROGRESS_EVERY == 0 {
            progress(PROGRESS_EVERY as u64);
        }
    }
    progress((symbols.len() % PROGRESS_EVERY) as u64);
    e.finish()
}

fn decode_stream(
    code: &[u8],
    count: u64,
    width: u32,
    mut p: Predictor,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<Vec<u8>> {
    let mut d = Decoder::new(code);
    // A header may claim far more than the stream turns out to hold: grow as symbols arrive.
    let mut out =
        Vec::with_capacity(count.min(code.len() as u64 * 64 + 4096).min(1 << 30) as usize);
    for i in 0..count {
        let mut partial = 1u32;
        for done in 0..width {
            let bit = d.decode(p.p(partial, done));
            p.update(bit, partial, done, width);
            partial = (partial << 1) | bit;
        }
        out.push((partial & ((1 << width) - 1)) as u8);
        if (i + 1) % PROGRESS_EVERY as u64 == 0 {
            if d.overran() {
                return Err(ZipError::Truncated("the coded data ends early"));
            }
            progress(PROGRESS_EVERY as u64);
        }
    }
    if d.overran() {
        return Err(ZipError::Truncated("the coded data ends early"));
    }
    progress(count % PROGRESS_EVERY as u64);
    Ok(out)
}

/// Runs two jobs, on two threads when allowed; the results never depend on which.
fn run_two<A: Send, B: Send>(
    threads: usize,
    a: impl FnOnce() -> A + Send,
    b: impl FnOnce() -> B + Send,
) -> (A, B) {
    if threads >= 2 {
        std::thread::scope(|s| {
            let hb = s.spawn(b);
            let ra = a();
            let rb = match hb.join() {
                Ok(v) => v,
                Err(e) => std::panic::resume_unwind(e),
            };
            (ra, rb)
        })
    } else {
        (a(), b())
    }
}
