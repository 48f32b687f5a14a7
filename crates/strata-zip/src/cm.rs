//! The context-mixing predictor: hashed context models, a match model, a lag-relation model and
//! optionally a recurrent network, mixed by gated logistic mixers and refined by two APMs.
//!
//! Symbols of `width` bits are coded most significant bit first; every model predicts the next
//! bit given the symbols before and the bits of the current symbol so far. Which contexts are
//! hashed depends on the [`Flavor`]: words and sparse byte contexts for text and other bytes;
//! orders in symbols (and inverted repeats for DNA) for small alphabets.

use crate::adaptive::{Apm, Mixer};
use crate::logistic::{squash, stretch};
use crate::matcher::Matcher;
use crate::neural::Neural;
use crate::relation::Relation;
use crate::slots::{hash2, SlotTable};

/// Which family of contexts to hash.
#[derive(Clone, Debug, PartialEq)]
pub enum Flavor {
    /// Bytes: orders 1-7, words, sparse contexts.
    Bytes,
    /// Symbols of a small alphabet: contexts of the given orders (in symbols); `dna` adds
    /// inverted-repeat updates (the reverse complement strand, symbols 0..4 = A, C, G, T).
    Symbols { orders: Vec<usize>, dna: bool },
}

/// Settings that decide the model; all are recorded in the container so the decoder builds the
/// same one.
#[derive(Clone, Debug, PartialEq)]
pub struct CmConfig {
    pub width: u32,
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
    indirect: Vec<crate::adaptive::StateMap>,
    matcher: Matcher,
    relation: Option<Relation>,
    neural: Option<Neural>,
    mixers: Vec<Mixer>,
    selectors: [usize; 5],
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

/// Mixer learning rate (measured best of 1-16 on the five benchmark texts).
const MIXER_LR: i32 = 2;

impl Cm {
    /// A fresh predictor; `neural` (if any) is mixed in as two more inputs.
    pub fn new(cfg: &CmConfig, neural: Option<Neural>) -> Self {
        let width = cfg.width.clamp(1, 8);
        let group = width.min(4);
        let nctx = match &cfg.flavor {
            Flavor::Bytes => 14,
            Flavor::Symbols { orders, dna } => orders.len() + 1 + *dna as usize,
        };
        let inputs = nctx * 4 + NO_CONTEXT_INPUTS + if neural.is_some() { 2 } else { 0 };
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
        let sel_sizes = [
            16 * 4,
            1usize << (width + 1).min(9),
            1usize << (2 * width).min(10),
            32 * 8,
            1usize << (2 * width).min(10),
        ];
        Cm {
            width,
            group,
            flavor: cfg.flavor.clone(),
            table: SlotTable::new(cfg.table_bits, group, cfg.limit),
            hashes: vec![0; nctx],
            bases: vec![0; nctx],
            indirect: (0..nctx)
                .map(|_| crate::adaptive::StateMap::new(1024, 1023))
                .collect(),
            matcher: Matcher::new(match_min, match_bits, width),
            relation,
            neural,
            mixers: sel_sizes
                .iter()
                .map(|&s| Mixer::new(inputs, s, MIXER_LR, (1 << 16) / inputs as i32))
                .collect(),
            selectors: [0; 5],
            last_mix: vec![0; 5],
            final_mixer: Mixer::new(6, 1 << width.min(8), 2, 1 << 14),
            apm1: Apm::new(1 << (2 * width + 1), 7),
            apm2: Apm::new(1 << 16, 7),
            apm3: Apm::new(1 << 16, 7),
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
                (direct * (s.n.min(15) as i32 + 1)) >> 4
            };
            let lin = if s.n == 0 {
                0
            } else {
                ((s.p >> 4) as i32 - 2048) >> 1
            };
            let nb = match s.n {
                0..=3 => 0,
                4..=11 => 1,
                12..=40 => 2,
                _ => 3,
            };
            let ind = stretch(self.indirect[i].p(s.hist as usize | nb << 8));
            for m in &mut self.mixers {
                m.add(direct);
                m.add(conf);
                m.add(ind);
                m.add(lin);
            }
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
        self.selectors[3] = known.min(31) * 8 + (self.done as usize).min(7);
        for (k, m) in self.mixers.iter_mut().enumerate() {
            let x = m.mix(self.selectors[k]);
            inputs.push(x);
        }
        for &x in &inputs {
            self.final_mixer.add(x);
        }
        self.final_mixer.add(256);
        let x = self.final_mixer.mix(self.partial as usize);
        self.last_mix = inputs;
        let p0 = squash(x);
        let p1 = self.apm1.p(p0, self.apm_cx[0] | self.partial as usize);
        let p2 = self.apm2.p(p0, self.apm_cx[1]);
        let p3 = self.apm3.p(p0, self.apm_cx[2]);
        let p = (p0 + p1 + p2 + p3 + 2) >> 2;
        // 12-bit to 16-bit for the coder, kept away from 0 and 65536.
        (p << 4).clamp(16, 65520)
    }

    /// Learns the bit that came and moves to the next.
    pub fn update(&mut self, bit: u32) {
        let within = self.partial_in_group();
        for i in 0..self.hashes.len() {
            self.indirect[i].update(bit);
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
        self.selectors[0] = self.matcher.bucket() * 4 + rel * 2 + (self.done == 0) as usize;
        self.selectors[1] = self.partial as usize;
        self.selectors[2] = if w >= 5 { c1 } else { (c2 << w) | c1 };
        let c3 = if self.hist.len() >= 3 {
            self.hist[self.hist.len() - 3] as usize
        } else {
            0
        };
        self.selectors[4] = if w >= 5 { c2 } else { (c3 << w) | c2 };
        self.apm_cx[0] = c1.min(255) << (w + 1).min(9);
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
                    let lc = (c as char).to_ascii_lowercase();
                    if lc.is_ascii_alphabetic() {
                        self.word[0] = hash2(self.word[0], lc as u64);
                    } else if self.word[0] != 0 {
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
                let above = if self.lines[1] + col < self.lines[0] {
                    hist[self.lines[1] + col] as u64
                } else {
                    0
                };
                self.hashes[13] = hash2(above | (c1 << 8) | ((col.min(255) as u64) << 16), 107);

                self.hashes[7] = hash2(hash2(self.word[0], 101), c1);
                self.hashes[8] = hash2(hash2(self.word[0], self.word[1]), 102);
                self.hashes[9] = hash2(at(1), 103);
                self.hashes[10] = hash2(at(1) | (at(2) << 8), 104);
                self.hashes[11] = hash2(at(2) | (at(3) << 8), 105);
                self.hashes[12] = hash2(hash2(self.word[1], self.word[2]), 106 + (c1 << 8));
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

/// The slot of a bucket for the next bit: the bits of the current group coded so far (`done`
/// bits of the symbol, `partial` with a leading 1), with a leading 1: 1..2^group - 1.
#[inline]
fn slot_in_group(partial: u32, done: u32, group: u32) -> usize {
    let in_group = done % group;
    ((1u32 << in_group) | (partial & ((1 << in_group) - 1))) as usize
}
