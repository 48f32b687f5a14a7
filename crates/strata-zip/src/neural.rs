//! A recurrent network as a bit predictor: its distribution over the next symbol, turned into
//! integer frequencies once per symbol, gives the probability of each bit of that symbol.

use crate::rnn::{Rnn, RnnSpec};

/// Wraps an [`Rnn`] so it predicts bits like the other models.
pub struct Neural {
    rnn: Rnn,
    width: u32,
    /// cum[i] = sum of the integer frequencies of symbols 0..i (2^width + 1 entries).
    cum: Vec<u64>,
}

impl Neural {
    /// A fresh network over symbols of `width` bits (the spec's alphabet must be 2^width).
    pub fn new(spec: &RnnSpec, width: u32) -> Self {
        let mut n = Neural {
            rnn: Rnn::new(spec),
            width,
            cum: vec![0; (1 << width) + 1],
        };
        n.refresh();
        n
    }

    fn refresh(&mut self) {
        // Every symbol keeps a frequency of at least 1; f32 -> integer conversion is exact
        // IEEE truncation, so these integers are the same wherever the f32s are.
        let probs = self.rnn.probs();
        let mut acc = 0u64;
        self.cum[0] = 0;
        for i in 0..(1usize << self.width) {
            let p = probs.get(i).copied().unwrap_or(0.0);
            let f = if p.is_finite() && p > 0.0 {
                (p * 1048576.0) as u64
            } else {
                0
            };
            acc += f + 1;
            self.cum[i + 1] = acc;
        }
    }

    /// 12-bit probability that the next bit is a one, given the current symbol's bits so far.
    pub fn p(&self, partial: u32, done: u32) -> u32 {
        let prefix = (partial ^ (1 << done)) as usize;
        let rest = self.width - done;
        let lo = prefix << rest;
        let mid = lo + (1 << (rest - 1));
        let hi = lo + (1 << rest);
        let zero = self.cum[mid] - self.cum[lo];
        let one = self.cum[hi] - self.cum[mid];
        ((one * 4096) / (zero + one)).clamp(1, 4095) as u32
    }

    /// The symbol that came: the network learns it and predicts the next.
    pub fn learn(&mut self, symbol: u32) {
        self.rnn.update(symbol);
        self.refresh();
    }
}
