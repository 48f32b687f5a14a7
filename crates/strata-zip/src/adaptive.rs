//! The adaptive pieces every model is built from, all in integer arithmetic so that encoder and
//! decoder agree bit for bit: probability tables that learn with a count-based rate
//! ([`StateMap`]), a gated linear mixer in the logistic domain ([`Mixer`], Mahoney's PAQ
//! mixing), and secondary estimation ([`Apm`]) that corrects a probability given a small context.

use crate::logistic::{squash, stretch, LOGIT_MAX};
use std::sync::OnceLock;

/// `65536 / (n + 1.5)`: the learning rate after `n` observations, so a probability starts as
/// a frequency count and ends as an exponential moving average once `n` reaches its limit.
pub(crate) fn rate(n: u32) -> u32 {
    static R: OnceLock<Vec<u32>> = OnceLock::new();
    R.get_or_init(|| {
        (0..1024u32)
            .map(|n| (131072 / (2 * n + 3)).max(1))
            .collect()
    })[n.min(1023) as usize]
}

/// Moves a 16-bit probability `p` toward `bit` with rate `r`/65536.
#[inline]
pub(crate) fn learn(p: u32, bit: u32, r: u32) -> u32 {
    let target = if bit != 0 { 65535i64 } else { 0 };
    let p = p as i64;
    (p + (((target - p) * r as i64) >> 16)) as u32
}

/// Adaptive probabilities indexed by a small context: each entry keeps a 16-bit probability
/// and how often it was updated (up to `limit`, which sets how fast it forgets), packed in one
/// word (probability high, count low) so a lookup and its update touch one cache line.
#[derive(Clone)]
pub struct StateMap {
    t: Vec<u32>,
    limit: u32,
    last: usize,
}

impl StateMap {
    /// `size` contexts, all starting at 1/2.
    pub fn new(size: usize, limit: u32) -> Self {
        StateMap {
            t: vec![32768 << 16; size.max(1)],
            limit: limit.min(0xffff),
            last: 0,
        }
    }

    /// Starts context `cx` at the 16-bit probability `p` (a prior; learning overrides it).
    pub fn set(&mut self, cx: usize, p: u16) {
        if let Some(e) = self.t.get_mut(cx) {
            *e = (p as u32) << 16 | (*e & 0xffff);
        }
    }

    /// 12-bit probability of a one in context `cx` (remembered for [`StateMap::update`]).
    #[inline]
    pub fn p(&mut self, cx: usize) -> u32 {
        self.last = cx.min(self.t.len() - 1);
        self.t[self.last] >> 20
    }

    /// Learns the bit that followed the last [`StateMap::p`].
    #[inline]
    pub fn update(&mut self, bit: u32) {
        let e = self.t[self.last];
        let (p, n) = (e >> 16, e & 0xffff);
        let p = learn(p, bit, rate(n));
        self.t[self.last] = p << 16 | (n + (n < self.limit) as u32);
    }
}

/// A set of logistic mixers: `dot(w[s], x)` squashed, one weight vector per selector value `s`,
/// trained online to minimize code length (gradient of log loss is `(bit - p) * x`).
pub struct Mixer {
    inputs: Vec<i32>,
    weights: Vec<i32>,
    n: usize,
    selected: usize,
    lr: i32,
    updates: u64,
    dot: i32,
    pr: u32,
}

impl Mixer {
    /// `n` inputs, `sets` weight vectors, learning rate `lr` in sixteenths (strata uses 14 and
    /// 16, i.e. about 1; larger rates adapt faster and settle noisier).
    pub fn new(n: usize, sets: usize, lr: i32, init: i32) -> Self {
        Mixer {
            inputs: Vec::with_capacity(n),
            weights: vec![init; n * sets.max(1)],
            n,
            selected: 0,
            lr,
            updates: 0,
            dot: 0,
            pr: 2048,
        }
    }

    /// Adds one input, a logit in units of 1/256.
    #[inline]
    pub fn add(&mut self, x: i32) {
        debug_assert!(self.inputs.len() < self.n);
        if self.inputs.len() < self.n {
            self.inputs.push(x.clamp(-LOGIT_MAX, LOGIT_MAX));
        }
    }

    /// Mixes the inputs with weight set `set`; returns the logit and remembers the probability.
    pub fn mix(&mut self, set: usize) -> i32 {
        while self.inputs.len() < self.n {
            self.inputs.push(0);
        }
        let sets = self.weights.len() / self.n;
        self.selected = (set % sets) * self.n;
        let w = &self.weights[self.selected..self.selected + self.n];
        let mut sum: i64 = 0;
        for (&x, &w) in self.inputs.iter().zip(w) {
            sum += x as i64 * w as i64;
        }
        self.dot = ((sum >> 16) as i32).clamp(-LOGIT_MAX, LOGIT_MAX);
        self.pr = squash(self.dot);
        self.dot
    }

    /// Trains the weight set used by the last [`Mixer::mix`] on `bit`, and clears the inputs.
    pub fn update(&mut self, bit: u32) {
        // A larger rate while the weights are far from trained, falling to `lr`: the first
        // thousands of bits then cost less without making the settled mixer noisy.
        const K: u64 = 1 << 16;
        self.updates += 1;
        let boost = (self.lr as u64 * 3 * K / (K + self.updates)) as i32;
        let err = ((((bit as i32) << 12) - self.pr as i32) * (self.lr + boost)) >> 4;
        let w = &mut self.weights[self.selected..self.selected + self.n];
        for (&x, w) in self.inputs.iter().zip(w.iter_mut()) {
            *w += (x * err + (1 << 13)) >> 14;
        }
        self.inputs.clear();
    }
}

/// Adaptive probability map (secondary symbol estimation): refines a probability given a
/// context by interpolating between 33 learned points on the logit axis.
pub struct Apm {
    t: Vec<u16>,
    index: usize,
    weight: u32,
    rate: u32,
}

impl Apm {
    /// `contexts` contexts; each starts as the identity map.
    pub fn new(contexts: usize, rate: u32) -> Self {
        // Every context starts as the same 33-point squash curve: computed once, then copied.
        let row: Vec<u16> = (0..33)
            .map(|j| (squash((j - 16) * 128) * 16) as u16)
            .collect();
        let mut t = Vec::with_capacity(contexts.max(1) * 33);
        for _ in 0..contexts.max(1) {
            t.extend_from_slice(&row);
        }
        Apm {
            t,
            index: 0,
            weight: 0,
            rate,
        }
    }

    /// Refined probability of `p` (12 bits) in context `cx`, in 16 bits: the finer output keeps
    /// the cost of well-predicted bits below the 12-bit floor of 1/4096.
    pub fn p(&mut self, p: u32, cx: usize) -> u32 {
        let s = stretch(p) + 2048;
        let lo = (s >> 7) as usize;
        let w = (s & 127) as u32;
        let contexts = self.t.len() / 33;
        let base = (cx % contexts) * 33;
        self.index = base + lo;
        self.weight = w;
        let a = self.t[base + lo] as u32;
        let b = self.t[base + (lo + 1).min(32)] as u32;
        ((a * (128 - w) + b * w) >> 7).clamp(16, 65520)
    }

    /// Trains the two points around the last query on `bit`.
    pub fn update(&mut self, bit: u32) {
        let g = if bit != 0 { 65535u32 } else { 0 };
        // Both neighbours learn, each in proportion to its share of the interpolation.
        let i = self.index;
        let j = (i + 1).min(self.t.len() - 1);
        let (a, b) = (self.t[i] as i64, self.t[j] as i64);
        let w = self.weight as i64;
        self.t[i] = (a + (((g as i64 - a) * (128 - w)) >> (self.rate + 6))) as u16;
        self.t[j] = (b + (((g as i64 - b) * w) >> (self.rate + 6))) as u16;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_map_converges_to_the_frequency() {
        let mut m = StateMap::new(1, 1023);
        let mut s = 7u64;
        for _ in 0..20000 {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let bit = ((s >> 33) % 10 < 3) as u32;
            m.p(0);
            m.update(bit);
        }
        let p = m.p(0) as f64 / 4096.0;
        assert!((p - 0.3).abs() < 0.02, "{p}");
    }

    #[test]
    fn a_mixer_learns_to_trust_the_informative_input() {
        let mut m = Mixer::new(2, 1, 6 * 16, 0);
        let mut s = 3u64;
        for _ in 0..5000 {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let bit = ((s >> 40) & 1) as u32;
            m.add(if bit == 1 { 500 } else { -500 });
            m.add(((s >> 20) & 1) as i32 * 1000 - 500);
            m.mix(0);
            m.update(bit);
        }
        m.add(500);
        m.add(-500);
        let x = m.mix(0);
        assert!(x > 1000, "{x}");
    }
}
