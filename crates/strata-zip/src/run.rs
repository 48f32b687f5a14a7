//! Run model (PAQ's "run" information, rebuilt from its description): for each hashed context,
//! the last symbol that followed it and how many times in a row it did.
//!
//! The bit predictors of the slot table see a context's history one bit at a time, and lose it
//! when the bucket is evicted. A whole symbol with a run length is a different, compact piece of
//! evidence: "in this order-5 context the next byte was 'e', 4 times out of 4" says more about
//! all eight bits than eight separate counters warmed up from scratch. What a run of a given
//! length is worth in a given context is learned, not assumed (one [`StateMap`] per context).

use crate::adaptive::StateMap;
use crate::logistic::stretch;
use crate::matcher::expected_bit;

/// Last symbol and run length per context hash, in a table of packed entries
/// (16-bit check, symbol, run length).
pub struct RunModel {
    table: Vec<u32>,
    mask: usize,
    width: u32,
    /// Per context: the entry it owns now, and its (symbol, run) when the check matched.
    at: Vec<usize>,
    expected: Vec<Option<(u32, u32)>>,
    maps: Vec<StateMap>,
}

impl RunModel {
    /// `contexts` contexts in a table of `2^bits` entries, symbols of `width` bits.
    pub fn new(contexts: usize, bits: u32, width: u32) -> Self {
        RunModel {
            table: vec![0; 1 << bits],
            mask: (1 << bits) - 1,
            width,
            at: vec![0; contexts],
            expected: vec![None; contexts],
            maps: (0..contexts)
                .map(|_| StateMap::new(16 * 2 + 1, 1023))
                .collect(),
        }
    }

    /// At a symbol boundary: records `sym` (the symbol just completed) for the contexts it
    /// followed, then looks up the new contexts `hashes`.
    pub fn next_symbol(&mut self, sym: Option<u32>, hashes: &[u64]) {
        if let Some(sym) = sym {
            for (i, &at) in self.at.iter().enumerate() {
                let e = self.table[at];
                let check = e >> 16;
                let entry = match self.expected[i] {
                    Some((s, run)) if s == sym => (check << 16) | (s << 8) | (run + 1).min(255),
                    Some(_) => (check << 16) | (sym << 8) | 1,
                    None => e & 0xffff_0000 | (sym << 8) | 1,
                };
                self.table[at] = entry;
            }
        }
        for (i, &h) in hashes.iter().enumerate() {
            // Two candidate entries: the context's own if either holds its check, otherwise
            // the one with the shorter run is given up (long runs are the valuable ones).
            let first = (h >> 20) as usize & self.mask;
            let check = ((h >> 48) as u32) | 1;
            let second = first ^ 1;
            let (e1, e2) = (self.table[first], self.table[second]);
            let at = if e1 >> 16 == check {
                first
            } else if e2 >> 16 == check {
                second
            } else {
                let at = if e2 & 0xff < e1 & 0xff { second } else { first };
                // Claim the entry; the run starts when the symbol is known.
                self.table[at] = check << 16;
                at
            };
            let e = self.table[at];
            self.expected[i] = if e & 0xff > 0 {
                Some(((e >> 8) & 0xff, e & 0xff))
            } else {
                None
            };
            self.at[i] = at;
        }
    }

    /// One logit input per context for the next bit (`partial` with a leading 1, `done` bits of
    /// the symbol known): 0 where the context has no run or the symbol already departed from it.
    pub fn inputs(&mut self, partial: u32, done: u32, mut add: impl FnMut(i32)) {
        for (m, e) in self.maps.iter_mut().zip(&self.expected) {
            let bit = expected_bit(e.map(|(s, _)| s), self.width, partial, done);
            match (bit, e) {
                (Some(bit), Some((_, run))) if *run > 0 => {
                    let r = match run {
                        1..=7 => *run as usize,
                        8..=15 => 8,
                        16..=31 => 9,
                        _ => 10,
                    };
                    let p = stretch(m.p(1 + r * 2 + bit as usize));
                    add(p);
                }
                _ => {
                    m.p(0);
                    add(0);
                }
            }
        }
    }

    /// Learns the bit that came.
    pub fn update(&mut self, bit: u32) {
        for m in &mut self.maps {
            m.update(bit);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeated_symbol_becomes_a_confident_prediction() {
        let mut r = RunModel::new(1, 10, 8);
        r.next_symbol(None, &[12345 << 20 | 1 << 50]);
        let mut last = 0;
        for _ in 0..50 {
            // Code the symbol 0x41 bit by bit.
            let mut partial = 1u32;
            for d in 0..8 {
                let bit = (0x41 >> (7 - d)) & 1;
                let mut x = 0;
                r.inputs(partial, d, |v| x = v);
                if d == 1 {
                    last = x;
                }
                r.update(bit);
                partial = partial << 1 | bit;
            }
            r.next_symbol(Some(0x41), &[12345 << 20 | 1 << 50]);
        }
        // Bit 1 of 0x41 is a one: the run says so, strongly.
        assert!(last > 1000, "{last}");
    }
}
