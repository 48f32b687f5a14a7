//! Lag-relation model: watches whether each symbol equals the sum or the XOR of two earlier
//! symbols at fixed lags, `x[n] = x[n-a] op x[n-b] (mod 2^width)`, and once one relation holds,
//! predicts with it.
//!
//! This is the structure of DeepZip's synthetic sources (XOR-k: a = 1, b = k; lagged Fibonacci:
//! sum) and of linear-feedback generators, and it is invisible to order-k contexts: an XOR-60
//! source's contexts never repeat within 10^7 bits. All counting is in integers, so the choice
//! of relation is the same in the encoder and the decoder.

use crate::adaptive::StateMap;
use crate::logistic::stretch;
use crate::matcher::expected_bit;

/// Scans lag pairs up to `max_lag` on every `stride`-th symbol and predicts with the best.
pub struct Relation {
    width: u32,
    max_lag: usize,
    stride: usize,
    hits: Vec<u32>,
    samples: u32,
    best: Option<(usize, usize, bool)>,
    confidence: usize,
    expected: Option<u32>,
    sm: StateMap,
}

const ROUND: u32 = 128;

impl Relation {
    /// Relations among the last `max_lag` symbols of `width` bits.
    pub fn new(width: u32, max_lag: usize, stride: usize) -> Self {
        let pairs = max_lag * max_lag;
        Relation {
            width,
            max_lag,
            stride: stride.max(1),
            hits: vec![0; pairs * 2],
            samples: 0,
            best: None,
            confidence: 0,
            expected: None,
            sm: StateMap::new(36, 1023),
        }
    }

    #[inline]
    fn apply(&self, x: u8, y: u8, sum: bool) -> u8 {
        let mask = ((1u32 << self.width) - 1) as u8;
        if sum {
            x.wrapping_add(y) & mask
        } else {
            (x ^ y) & mask
        }
    }

    /// After symbol `hist.len() - 1` was appended: count, maybe re-choose, and predict.
    pub fn next_symbol(&mut self, hist: &[u8]) {
        let n = hist.len();
        let l = self.max_lag;
        if n > l && n.is_multiple_of(self.stride) {
            let x = hist[n - 1];
            for a in 1..l {
                let xa = hist[n - 1 - a];
                for b in a + 1..=l {
                    let xb = hist[n - 1 - b];
                    let i = (a * l + b - 1) * 2;
                    self.hits[i] += (self.apply(xa, xb, true) == x) as u32;
                    self.hits[i + 1] += (self.apply(xa, xb, false) == x) as u32;
                }
            }
            self.samples += 1;
            if self.samples == ROUND {
                self.choose();
            }
        }
        self.expected = match self.best {
            Some((a, b, sum)) if n >= b => Some(self.apply(hist[n - a], hist[n - b], sum) as u32),
            _ => None,
        };
    }

    fn choose(&mut self) {
        let l = self.max_lag;
        let mut best = (0u32, None);
        for a in 1..l {
            for b in a + 1..=l {
                for (k, sum) in [(0, true), (1, false)] {
                    let h = self.hits[(a * l + b - 1) * 2 + k];
                    if h > best.0 {
                        best = (h, Some((a, b, sum)));
                    }
                }
            }
        }
        self.best = best.1;
        self.confidence = (best.0 * 16 / ROUND) as usize;
        for h in &mut self.hits {
            *h /= 2;
        }
        self.samples = ROUND / 2;
    }

    /// Logit input for the next bit of the current symbol (`partial` with a leading 1, `done`
    /// bits known), 0 when no relation is chosen or the symbol already departed from it.
    pub fn input(&mut self, partial: u32, done: u32) -> i32 {
        let ctx = match expected_bit(self.expected, self.width, partial, done) {
            Some(bit) => 1 + self.confidence.min(16) * 2 + bit as usize,
            None => 0,
        };
        let p = self.sm.p(ctx);
        if ctx == 0 {
            0
        } else {
            stretch(p)
        }
    }

    /// The expected symbol, as a context for the hashed models.
    pub fn expected(&self) -> Option<u32> {
        self.expected
    }

    /// Learns the bit that came.
    pub fn update(&mut self, bit: u32) {
        self.sm.update(bit);
    }
}
