//! The context-mixing predictor: hashed context models, a match model, a run model, a
//! lag-relation model and optionally a recurrent network, mixed by gated logistic mixers and
//! refined by a chain of APMs.
//!
//! Symbols of `width` bits are coded most significant bit first; every model predicts the next
//! bit given the symbols before and the bits of the current symbol so far. Which contexts are
//! hashed depends on the [`Flavor`]: for bytes, orders 0-6 and 8, words (the current word with
//! the previous one, two or the byte before it), sparse byte contexts, the match model's
//! expected byte, and text-layout contexts (the column, the line above, wrapped lines, bytes
//! with line breaks read as spaces); orders in symbols (and inverted repeats for DNA) for small
//! alphabets.
//!
//! Each context gives the mixers its slot's probability three ways (stretched, weighted by
//! confidence, linear) and what its bit history state predicts ([`crate::bithistory`], through
//! two adaptive state maps), and for bytes what its run predicts ([`crate::run`]). Five mixers
//! (six for bytes) with different weight-set selectors (match length, partial symbol, the
//! previous symbols with the bit position, known contexts and column, the two symbols before,
//! and for bytes the text shape) feed a final mixer.

use crate::adaptive::{Apm, Mixer, StateMap};
use crate::logistic::{squash, stretch};
use crate::matcher::Matcher;
use crate::neural::Neural;
use crate::relation::Relation;
use crate::run::RunModel;
use crate::slots::{hash2, SlotTable};

/// Which family of contexts to hash.
#[derive(Clone, Debug, PartialEq)]
pub enum Flavor {
    /// Bytes: orders 0-6 and 8, words, sparse and text-layout contexts.
    Bytes,
    /// Symbols of a small alphabet: contexts of the given orders (in symbols); `dna` adds
    /// inverted-repeat updates (the reverse complement strand, symbols 0..4 = A, C, G, T).
    Symbols {
        /// Context orders, in symbols.
        orders: Vec<usize>,
        /// Also update the reverse-complement contexts (DNA's inverted repeats).
        dna: bool,
    },
}

/// Settings that decide the model; all are recorded in the container so the decoder builds the
/// same one.
#[derive(Clone, Debug, PartialEq)]
pub struct CmConfig {
    /// Bits per symbol, 1-8 (8 for bytes).
    pub width: u32,
    /// Which contexts the model uses.
    pub flavor: Flavor,
    /// log2 of the number of hashed slots.
    pub table_bits: u32,
    /// Count limit of the slots' adaptive rate.
    pub limit: u8,
}

/// The mixing predictor of one stream.
pub struct Cm {
    width: u32,
    group: u32,
    flavor: Flavor,
    table: SlotTable,
    hashes: Vec<u64>,
    bases: Vec<usize>,
    /// Per context: what its slot's bit history state predicts, given the partial symbol
    /// (`by_partial`) and given the previous symbol (`by_prev`).
    by_partial: Vec<StateMap>,
    by_prev: Vec<StateMap>,
    matcher: Matcher,
    run: Option<RunModel>,
    relation: Option<Relation>,
    neural: Option<Neural>,
    mixers: Vec<Mixer>,
    selectors: [usize; 6],
    /// Letters in the current word so far (text mixer selector).
    word_len: usize,
    /// The byte before the current (or last) word and whether the word is capitalized.
    word_start: u64,
    /// The last bytes with line breaks read as spaces (CR dropped): text wrapped at a fixed
    /// width breaks phrases at arbitrary points, and these contexts see through the breaks.
    flat: u64,
    /// Bytes since the last line break.
    col: usize,
    /// Whether the current line has a space yet (so the first word is over).
    line_has_space: bool,
    last_mix: Vec<i32>,
    final_mixer: Mixer,
    apm1: Apm,
    apm2: Apm,
    apm3: Apm,
    apm_cx: [usize; 3],
    hist: Vec<u8>,
    partial: u32,
    done: u32,
    word: [u64; 3],
    /// Positions just after the last two line breaks (text column contexts).
    lines: [usize; 2],
    ir_updates: Vec<(u64, u32)>,
}

const NO_CONTEXT_INPUTS: usize = 4;

/// Learning rates of the first mixer layer and the final mixer, in sixteenths (measured on the
/// five benchmark texts).
const MIXER_LR: i32 = 14;
const FINAL_LR: i32 = 16;

impl Cm {
    /// A fresh predictor; `neural` (if any) is mixed in as two more inputs.
    pub fn new(cfg: &CmConfig, neural: Option<Neural>) -> Self {
        let width = cfg.width.clamp(1, 8);
        let group = width.min(4);
        let nctx = match &cfg.flavor {
            Flavor::Bytes => 20,
            Flavor::Symbols { orders, dna } => orders.len() + 1 + *dna as usize,
        };
        // Runs for text only: in small alphabets the slots' bit histories already see whole
        // symbols.
        let run = match cfg.flavor {
            Flavor::Bytes => Some(RunModel::new(
                nctx,
                cfg.table_bits.saturating_sub(3).clamp(12, 22),
                width,
            )),
            _ => None,
        };
        let inputs = nctx * 5
            + NO_CONTEXT_INPUTS
            + if run.is_some() { nctx } else { 0 }
            + if neural.is_some() { 2 } else { 0 };
        let (match_min, match_bits) = match (&cfg.flavor, width) {
            (Flavor::Bytes, _) => (6, 22),
            (_, 1) => (32, 22),
            (Flavor::Symbols { dna: true, .. }, _) => (24, 22),
            _ => (16, 22),
        };
        let relation = match &cfg.flavor {
            Flavor::Symbols { dna: true, .. } => None,
            _ => Some(Relation::new(width, 64, if width == 1 { 16 } else { 4 })),
        };
        // Bits of the previous-symbol selectors: one symbol for bytes, two for small alphabets
        // (as in `set_selectors`). Each size is the largest selector + 1, so no set goes unused.
        let prev_bits = if width >= 5 { width } else { 2 * width };
        let mut sel_sizes = vec![
            16 * 4 * 4,
            4usize << width,
            32usize << prev_bits,
            32 * 16 * 8,
            4usize << prev_bits,
        ];
        if cfg.flavor == Flavor::Bytes {
            // Text shape: classes of the last three bytes, word length, nearness to the end of
            // a wrapped line, bit position.
            sel_sizes.push(64 * 8 * 4 * 8);
        }
        Cm {
            width,
            group,
            flavor: cfg.flavor.clone(),
            table: SlotTable::new(cfg.table_bits, group, cfg.limit),
            hashes: vec![0; nctx],
            bases: vec![0; nctx],
            by_partial: (0..nctx).map(|_| state_map()).collect(),
            by_prev: (0..nctx).map(|_| state_map()).collect(),
            matcher: Matcher::new(match_min, match_bits, width),
            run,
            relation,
            neural,
            mixers: sel_sizes
                .iter()
                .map(|&s| Mixer::new(inputs, s, MIXER_LR, (1 << 16) / inputs as i32))
                .collect(),
            selectors: [0; 6],
            word_len: 0,
            word_start: 0,
            flat: 0,
            col: 0,
            line_has_space: false,
            last_mix: vec![0; 6],
            // Starts near the plain average of the first layer (the bias input gets the same
            // weight as each mixer).
            final_mixer: Mixer::new(
                sel_sizes.len() + 1,
                4 << width.min(8),
                FINAL_LR,
                (1 << 16) / sel_sizes.len() as i32,
            ),
            apm1: Apm::new(4 << (2 * width), 8),
            apm2: Apm::new(1 << 16, 6),
            apm3: Apm::new(1 << 16, 6),
            apm_cx: [0; 3],
            hist: Vec::new(),
            partial: 1,
            done: 0,
            word: [0; 3],
            lines: [0; 2],
            ir_updates: Vec::new(),
        }
        .started()
    }

    fn started(mut self) -> Self {
        self.compute_contexts();
        if let Some(r) = &mut self.run {
            r.next_symbol(None, &self.hashes);
        }
        self.refresh_buckets();
        self
    }

    /// 16-bit probability that the next bit is a one.
    pub fn predict(&mut self) -> u32 {
        let within = self.partial_in_group();
        let n = self.hashes.len();
        let mut inputs = std::mem::take(&mut self.last_mix);
        inputs.clear();
        let mut known = 0usize;
        let c1 = self.hist.last().copied().unwrap_or(0) as usize;
        for i in 0..n {
            let s = self.table.get(self.bases[i] + within);
            known += (s.n > 0) as usize;
            let direct = if s.n == 0 {
                0
            } else {
                stretch((s.p >> 4) as u32)
            };
            let conf = if s.n == 0 {
                0
            } else {
                (direct * (s.n.min(31) as i32 + 1)) >> 5
            };
            let lin = if s.n == 0 {
                0
            } else {
                ((s.p >> 4) as i32 - 2048) >> 1
            };
            let state = s.state as usize;
            let ind = stretch(self.by_partial[i].p(state | (self.partial as usize) << 8));
            let ind2 = stretch(self.by_prev[i].p(state | c1 << 8));
            for m in &mut self.mixers {
                m.add(direct);
                m.add(conf);
                m.add(ind);
                m.add(ind2);
                m.add(lin);
            }
        }
        if let Some(r) = &mut self.run {
            let mixers = &mut self.mixers;
            r.inputs(self.partial, self.done, |x| {
                for m in mixers.iter_mut() {
                    m.add(x);
                }
            });
        }
        let mi = self.matcher.input(self.partial, self.done);
        let ri = match &mut self.relation {
            Some(r) => r.input(self.partial, self.done),
            None => 0,
        };
        let (ni, nconf) = match &mut self.neural {
            Some(nn) => {
                let p = nn.p(self.partial, self.done);
                let s = stretch(p);
                (Some(s), (s.abs() >> 2).min(2047))
            }
            None => (None, 0),
        };
        for m in &mut self.mixers {
            m.add(256);
            m.add(mi);
            m.add(ri);
            m.add(if mi != 0 { mi / 2 + ri / 2 } else { ri });
            if let Some(s) = ni {
                m.add(s);
                m.add(if s > 0 { nconf } else { -nconf });
            }
        }
        // How many contexts were seen before, and the column (line ends in wrapped text).
        self.selectors[3] =
            (known.min(31) * 16 + (self.col / 5).min(15)) * 8 + (self.done as usize).min(7);
        for (k, m) in self.mixers.iter_mut().enumerate() {
            let x = m.mix(self.selectors[k]);
            inputs.push(x);
        }
        for &x in &inputs {
            self.final_mixer.add(x);
        }
        self.final_mixer.add(256);
        let x = self
            .final_mixer
            .mix(self.partial as usize | line_end(self.col) << self.width);
        self.last_mix = inputs;
        let p0 = squash(x);
        let p1 = self.apm1.p(p0, self.apm_cx[0] | self.partial as usize);
        // A chain: the order-1 APM's estimate, averaged with the mixer's, feeds the order-2
        // and order-3 APMs.
        let q = ((p0 << 4) + p1 + 1) >> 1;
        let p2 = self.apm2.p(q >> 4, self.apm_cx[1]);
        let p3 = self.apm3.p(q >> 4, self.apm_cx[2]);
        // 16 bits for the coder, kept away from 0 and 65536.
        ((2 * q + p2 + p3 + 2) >> 2).clamp(crate::coder::MODEL_P_MIN, crate::coder::MODEL_P_MAX)
    }

    /// Learns the bit that came and moves to the next.
    pub fn update(&mut self, bit: u32) {
        let within = self.partial_in_group();
        for i in 0..self.hashes.len() {
            self.by_partial[i].update(bit);
            self.by_prev[i].update(bit);
            self.table.update(self.bases[i] + within, bit);
        }
        for m in &mut self.mixers {
            m.update(bit);
        }
        self.final_mixer.update(bit);
        self.apm1.update(bit);
        self.apm2.update(bit);
        self.apm3.update(bit);
        self.matcher.update(bit);
        if let Some(r) = &mut self.run {
            r.update(bit);
        }
        if let Some(r) = &mut self.relation {
            r.update(bit);
        }
        self.partial = (self.partial << 1) | bit;
        self.done += 1;
        if self.done == self.width {
            let sym = (self.partial & ((1 << self.width) - 1)) as u8;
            self.hist.push(sym);
            if let Some(nn) = &mut self.neural {
                nn.learn(sym as u32);
            }
            self.partial = 1;
            self.done = 0;
            self.matcher.next_symbol(&self.hist);
            if let Some(r) = &mut self.relation {
                r.next_symbol(&self.hist);
            }
            self.compute_contexts();
            if let Some(r) = &mut self.run {
                r.next_symbol(Some(sym as u32), &self.hashes);
            }
            self.apply_ir_updates();
            self.refresh_buckets();
        } else if self.done.is_multiple_of(self.group) {
            self.refresh_buckets();
        }
        self.set_selectors();
    }

    fn partial_in_group(&self) -> usize {
        // The bits of the current group with a leading 1: 1..2^group - 1.
        slot_in_group(self.partial, self.done, self.group)
    }

    fn refresh_buckets(&mut self) {
        let prefix = self.partial as u64;
        for (b, &h) in self.bases.iter_mut().zip(&self.hashes) {
            *b = self.table.bucket(hash2(h, prefix));
        }
    }

    fn set_selectors(&mut self) {
        let w = self.width;
        let c1 = self.hist.last().copied().unwrap_or(0) as usize;
        let c2 = if self.hist.len() >= 2 {
            self.hist[self.hist.len() - 2] as usize
        } else {
            0
        };
        let rel = self
            .relation
            .as_ref()
            .map(|r| r.expected().is_some() as usize)
            .unwrap_or(0);
        // Byte classes refine the selectors of text.
        let text = self.flavor == Flavor::Bytes;
        let cls = |c: usize| if text { byte_class(c) } else { 0 };
        self.selectors[0] =
            (self.matcher.bucket() * 4 + rel * 2 + (self.done == 0) as usize) * 4 + cls(c1);
        // The partial symbol is below 2^w.
        self.selectors[1] = self.partial as usize | cls(c1) << w;
        self.selectors[2] =
            ((if w >= 5 { c1 } else { (c2 << w) | c1 }) * 8 + self.done.min(7) as usize) * 4
                + cls(c2);
        let c3 = if self.hist.len() >= 3 {
            self.hist[self.hist.len() - 3] as usize
        } else {
            0
        };
        self.selectors[4] = (if w >= 5 { c2 } else { (c3 << w) | c2 }) * 4 + cls(c1);
        let line_end = line_end(self.col);
        self.selectors[5] = ((((byte_class(c1) * 4 + byte_class(c2)) * 4 + byte_class(c3)) * 8
            + self.word_len.min(7))
            * 4
            + line_end)
            * 8
            + self.done.min(7) as usize;
        self.apm_cx[0] = (cls(c2) << (2 * w)) | c1.min(255) << w;
        self.apm_cx[2] = (hash2(
            self.hashes.get(2).copied().unwrap_or(0),
            self.partial as u64,
        ) & 0xffff) as usize;
        self.apm_cx[1] = match self.flavor {
            Flavor::Bytes => {
                (hash2(c1 as u64 | (c2 as u64) << 8, self.partial as u64) & 0xffff) as usize
            }
            _ => {
                let k = (16 / w as usize).max(1);
                let mut cx = 0usize;
                for &s in self.hist.iter().rev().take(k.saturating_sub(1).max(1)) {
                    cx = (cx << w) | s as usize;
                }
                ((cx << (w + 1)) | self.partial as usize) & 0xffff
            }
        };
    }

    fn compute_contexts(&mut self) {
        let hist = &self.hist;
        let n = hist.len();
        let at = |i: usize| -> u64 {
            if i < n {
                hist[n - 1 - i] as u64
            } else {
                0
            }
        };
        match &self.flavor {
            Flavor::Bytes => {
                if let Some(&c) = hist.last() {
                    if c != b'\r' {
                        let f = if c == b'\n' { b' ' } else { c };
                        self.flat = (self.flat << 8) | f as u64;
                    }
                    let lc = (c as char).to_ascii_lowercase();
                    if lc.is_ascii_alphabetic() {
                        if self.word_len == 0 {
                            let before = if n >= 2 { hist[n - 2] as u64 } else { 0 };
                            self.word_start = before | (c.is_ascii_uppercase() as u64) << 8;
                        }
                        self.word_len += 1;
                        self.word[0] = hash2(self.word[0], lc as u64);
                    } else if self.word[0] != 0 {
                        self.word_len = 0;
                        self.word[2] = self.word[1];
                        self.word[1] = self.word[0];
                        self.word[0] = 0;
                    }
                }
                let mut h = 0u64;
                let mut k = 0;
                for (slot, order) in [1usize, 2, 3, 4, 5, 6, 8].iter().enumerate() {
                    while k < *order {
                        h = hash2(h, at(k) + 1);
                        k += 1;
                    }
                    self.hashes[slot] = hash2(h, slot as u64);
                }
                let c1 = at(0);
                if c1 == b'\n' as u64 {
                    self.lines = [n, self.lines[0]];
                }
                let col = n - self.lines[0];
                self.col = col;
                let above = if self.lines[1] + col < self.lines[0] {
                    hist[self.lines[1] + col] as u64
                } else {
                    0
                };
                self.hashes[13] = hash2(above | (c1 << 8) | ((col.min(255) as u64) << 16), 107);

                self.hashes[7] = hash2(hash2(self.word[0], 101), self.flat & 0xff);
                self.hashes[8] = hash2(hash2(self.word[0], self.word[1]), 102);
                // Order 0 (a sparse skip-one context was here: worth less than order 0).
                self.hashes[9] = hash2(0, 103);
                self.hashes[10] = hash2(at(1) | (at(2) << 8), 104);
                self.hashes[11] = hash2(at(2) | (at(3) << 8), 105);
                self.hashes[12] =
                    hash2(hash2(hash2(self.word[0], self.word[1]), self.word[2]), 106);
                // The byte the match model expects, as a context of its own.
                let m = self
                    .matcher
                    .expected()
                    .map(|(e, l)| (e as u64 + 1) | ((l.min(15) as u64) << 9));
                self.hashes[14] = hash2(m.unwrap_or(0), 108 + (c1 << 8));
                self.hashes[15] = hash2(hash2(self.word[0], self.word[2]), 109);
                self.hashes[16] = hash2(hash2(self.word[0], self.word_start), 110);
                self.hashes[17] = hash2(self.flat & 0xff_ffff_ffff, 111);
                // The column with the last two bytes: where wrapped lines end.
                self.hashes[18] = hash2(col.min(255) as u64 | (self.flat & 0xffff) << 8, 112);
                // Wrapped text: the first word of a line did not fit at the end of the line
                // before, so the previous line's length plus this word's length is large; while
                // in that word, their sum says whether it can end yet.
                if c1 == b'\n' as u64 {
                    self.line_has_space = false;
                } else if c1 == b' ' as u64 {
                    self.line_has_space = true;
                }
                let first_word = !self.line_has_space;
                self.hashes[19] = if first_word {
                    let prev_len = (self.lines[0] - self.lines[1]) as u64;
                    hash2((prev_len + col as u64).min(1023) | c1 << 10, 114)
                } else {
                    hash2(hash2(self.word[0], col.min(255) as u64), 113)
                };
            }
            Flavor::Symbols { orders, dna } => {
                let mut h = 0u64;
                let mut k = 0;
                for (slot, &order) in orders.iter().enumerate() {
                    while k < order {
                        h = hash2(h, at(k) + 1);
                        k += 1;
                    }
                    self.hashes[slot] = hash2(h, slot as u64 + 1);
                }
                let m = orders.len();
                let e = self.relation.as_ref().and_then(|r| r.expected());
                self.hashes[m] = hash2(e.map(|e| e as u64 + 1).unwrap_or(0), 200 + at(0));
                if *dna {
                    self.hashes[m + 1] = hash2(hash2(at(0), at(1)), 300 + (n as u64 % 3));
                    self.ir_updates.clear();
                    // Inverted repeats (GeCo's IR): the reverse strand read backwards gives
                    // context revcomp(x[n-k+1..n]) followed by complement(x[n-k]); learn it
                    // too, so a gene's reverse complement later is predicted.
                    for (slot, &order) in orders.iter().enumerate() {
                        if n > order {
                            let mut h = 0u64;
                            for i in 0..order {
                                // revcomp of the last `order` symbols, nearest first as at(k).
                                let s = 3 - hist[n - order + i] as u64;
                                h = hash2(h, s + 1);
                            }
                            let sym = 3 - hist[n - 1 - order] as u32;
                            self.ir_updates.push((hash2(h, slot as u64 + 1), sym));
                        }
                    }
                }
            }
        }
    }

    fn apply_ir_updates(&mut self) {
        let updates = std::mem::take(&mut self.ir_updates);
        for &(h, sym) in &updates {
            let mut partial = 1u32;
            let mut base = self.table.bucket(hash2(h, partial as u64));
            for d in 0..self.width {
                if d > 0 && d % self.group == 0 {
                    base = self.table.bucket(hash2(h, partial as u64));
                }
                let bit = (sym >> (self.width - 1 - d)) & 1;
                let within = slot_in_group(partial, d, self.group);
                self.table.update(base + within, bit);
                partial = (partial << 1) | bit;
            }
        }
        self.ir_updates = updates;
    }
}

/// An adaptive map from (bit history state, a byte of context) to a probability, started at
/// the states' count-based priors. The limit of 255 lets it follow drifting statistics.
///
/// Every stream needs two per context (40 for bytes), so the primed table is built once and
/// copied: filling it entry by entry cost more than decoding a small file.
fn state_map() -> StateMap {
    static PRIMED: std::sync::OnceLock<StateMap> = std::sync::OnceLock::new();
    PRIMED
        .get_or_init(|| {
            let mut m = StateMap::new(1 << 16, 255);
            for s in 0..crate::bithistory::states() {
                for cx in 0..256 {
                    m.set(s | cx << 8, crate::bithistory::prior(s as u8));
                }
            }
            m
        })
        .clone()
}

/// A byte's class in text: lower case, upper case, white space, other.
fn byte_class(c: usize) -> usize {
    match c as u8 {
        b'a'..=b'z' => 0,
        b'A'..=b'Z' => 1,
        b' ' | b'\n' | b'\r' | b'\t' => 2,
        _ => 3,
    }
}

/// How near a typical wrapped line's end the column is: below 50, in the 50s, 60s, beyond.
fn line_end(col: usize) -> usize {
    match col {
        0..=49 => 0,
        50..=59 => 1,
        60..=69 => 2,
        _ => 3,
    }
}

/// The slot of a bucket for the next bit: the bits of the current group coded so far (`done`
/// bits of the symbol, `partial` with a leading 1), with a leading 1: 1..2^group - 1.
#[inline]
fn slot_in_group(partial: u32, done: u32, group: u32) -> usize {
    let in_group = done % group;
    ((1u32 << in_group) | (partial & ((1 << in_group) - 1))) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probabilities(data: &[u8]) -> Vec<u32> {
        let cfg = CmConfig {
            width: 8,
            flavor: Flavor::Bytes,
            table_bits: 18,
            limit: 255,
        };
        let mut cm = Cm::new(&cfg, None);
        let mut out = Vec::new();
        for &b in data {
            for d in (0..8).rev() {
                out.push(cm.predict());
                cm.update((b as u32 >> d) & 1);
            }
        }
        out
    }

    #[test]
    fn predictions_are_reproducible_and_learn_wrapped_text() {
        let line = b"the quick brown fox jumps over the lazy dog and runs\r\n";
        let text: Vec<u8> = line.iter().cycle().take(line.len() * 40).copied().collect();
        let a = probabilities(&text);
        assert_eq!(a, probabilities(&text), "same input, same predictions");
        // Cost of the last line in bits: a repeated line should be nearly free.
        let mut bits = 0.0;
        for (i, &p) in a[a.len() - line.len() * 8..].iter().enumerate() {
            let bit = (line[i / 8] >> (7 - i % 8)) & 1;
            let q = p as f64 / 65536.0;
            bits -= if bit == 1 { q.log2() } else { (1.0 - q).log2() };
        }
        assert!(bits < 0.05 * line.len() as f64 * 8.0, "{bits} bits");
    }
}
