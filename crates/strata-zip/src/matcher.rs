//! Match model: finds the last place the recent symbols occurred and predicts that what followed
//! them then follows them now. It carries long repeats (a repeated paragraph, a duplicated gene)
//! that hashed contexts of bounded order cannot.

use crate::adaptive::StateMap;
use crate::logistic::stretch;
use crate::slots::hash2;

/// Predicts the next symbol as the one that followed the longest recent match.
pub struct Matcher {
    min_len: usize,
    table: Vec<u32>,
    mask: usize,
    ptr: usize,
    len: usize,
    width: u32,
    sm: StateMap,
    expected: Option<u32>,
}

impl Matcher {
    /// Matches of at least `min_len` symbols of `width` bits, found through `2^bits` entries.
    pub fn new(min_len: usize, bits: u32, width: u32) -> Self {
        Matcher {
            min_len: min_len.max(1),
            table: vec![0; 1 << bits],
            mask: (1 << bits) - 1,
            ptr: 0,
            len: 0,
            width,
            sm: StateMap::new(64 * 2, 1023),
            expected: None,
        }
    }

    /// Length of the current match in symbols, in 16 buckets (a mixer selector).
    pub fn bucket(&self) -> usize {
        match self.len {
            0 => 0,
            l if l < 16 => 1 + l / 4,
            l if l < 32 => 5 + (l - 16) / 4,
            l => (9 + (l - 32) / 32).min(15),
        }
    }

    /// The symbol that followed the match, with the match length, when there is a match.
    pub fn expected(&self) -> Option<(u32, usize)> {
        self.expected.map(|e| (e, self.len))
    }

    /// After symbol `hist.len() - 1` was appended: extend or look up the match.
    pub fn next_symbol(&mut self, hist: &[u8]) {
        let n = hist.len();
        if self.len > 0 && self.ptr < n && hist[self.ptr] == hist[n - 1] {
            self.len += 1;
            self.ptr += 1;
        } else {
            self.len = 0;
        }
        if n >= self.min_len {
            let mut h = 0u64;
            for &s in &hist[n - self.min_len..] {
                h = hash2(h, s as u64);
            }
            let slot = (h as usize) & self.mask;
            if self.len == 0 {
                let cand = self.table[slot] as usize;
                if cand > 0 && cand < n {
                    // Verify: a hash hit is only a candidate; count the real common length.
                    let mut l = 0;
                    while l < cand && l < 65535 && hist[cand - 1 - l] == hist[n - 1 - l] {
                        l += 1;
                    }
                    if l >= self.min_len {
                        self.len = l;
                        self.ptr = cand;
                    }
                }
            }
            self.table[slot] = n as u32;
        }
        self.expected = if self.len > 0 && self.ptr < n {
            Some(hist[self.ptr] as u32)
        } else {
            None
        };
    }

    /// Logit input for the next bit, given the bits of the current symbol so far (`partial`
    /// with a leading 1, `done` bits of it), or 0 when there is no match or it was contradicted.
    pub fn input(&mut self, partial: u32, done: u32) -> i32 {
        let ctx = match expected_bit(self.expected, self.width, partial, done) {
            Some(bit) => (self.len.min(63) * 2 + bit as usize).max(2),
            None => 0,
        };
        if ctx == 0 {
            self.sm.p(0);
            return 0;
        }
        stretch(self.sm.p(ctx))
    }

    /// Learns the bit that came.
    pub fn update(&mut self, bit: u32) {
        self.sm.update(bit);
    }
}

/// The next bit of the symbol `expected` (of `width` bits), or None when there is no expected
/// symbol or the current symbol's bits so far (`partial` with a leading 1, `done` bits of it)
/// already departed from it.
#[inline]
pub(crate) fn expected_bit(
    expected: Option<u32>,
    width: u32,
    partial: u32,
    done: u32,
) -> Option<u32> {
    let e = expected?;
    ((e | (1 << width)) >> (width - done) == partial).then(|| (e >> (width - 1 - done)) & 1)
}
