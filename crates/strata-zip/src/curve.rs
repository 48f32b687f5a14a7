//! The learning curve of a predictor: the code length it has spent after every `every` symbols,
//! the quantity DeepZip (Goyal et al. 2019) plots against the position in the input to show an
//! adaptive model learning while it codes.
//!
//! The meter only reads the probability each bit is coded with, after the coder has it, so it
//! never changes the compressed output ([`crate::compress_with_curve`] gives the same container
//! as [`crate::compress`]). The cost of a bit is its ideal code length `-log2 p`, with `p` the
//! probability the coder gave the bit that came (the model's, as clamped for the coder); the
//! coder's real output is within a few bytes of the sum. The sum uses the platform's `log2`: it
//! is a report, never an input to the coder, so it cannot make the decoder disagree.

/// One point of a [`CodeLengthCurve`]: after `symbols` symbols, `bits` bits of code so far.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CurvePoint {
    /// Symbols coded so far (counted from the start of the stream).
    pub symbols: u64,
    /// Ideal code length of those symbols, in bits (`sum of -log2 p` over their bits).
    pub bits: f64,
}

/// Cumulative code length of the coded stream at fixed intervals: after every `every` symbols,
/// and once more at the end when the stream's length is not a multiple of `every`.
///
/// The stream is the one the model codes: one symbol per byte for bytes and small alphabets
/// (the source's own symbols), one per bit for `bits`, and the bases for DNA (whose side stream
/// of other bytes is not part of the curve).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CodeLengthCurve {
    /// Symbols between two points.
    pub every: u64,
    /// The points, in order of position; empty for an empty input.
    pub points: Vec<CurvePoint>,
}

impl CodeLengthCurve {
    /// Symbols coded in all.
    pub fn symbols(&self) -> u64 {
        self.points.last().map_or(0, |p| p.symbols)
    }

    /// Ideal code length of the whole stream, in bits.
    pub fn bits(&self) -> f64 {
        self.points.last().map_or(0.0, |p| p.bits)
    }

    /// Bits per symbol within each interval: `(symbols at the interval's end, its rate)`, the
    /// learning curve as plotted (a rate, not a running mean, so late learning shows).
    pub fn interval_rates(&self) -> Vec<(u64, f64)> {
        let mut prev = CurvePoint {
            symbols: 0,
            bits: 0.0,
        };
        let mut out = Vec::with_capacity(self.points.len());
        for p in &self.points {
            let n = p.symbols.saturating_sub(prev.symbols);
            if n > 0 {
                out.push((p.symbols, (p.bits - prev.bits) / n as f64));
            }
            prev = *p;
        }
        out
    }
}

/// Counts the code length of a stream while it is coded.
pub(crate) struct Meter {
    every: u64,
    symbols: u64,
    bits: f64,
    points: Vec<CurvePoint>,
}

impl Meter {
    /// A meter with a point every `every` symbols (at least 1).
    pub(crate) fn new(every: u64) -> Self {
        Meter {
            every: every.max(1),
            symbols: 0,
            bits: 0.0,
            points: Vec::new(),
        }
    }

    /// Adds the cost of `bit` coded with probability `p1` / 65536 of a one.
    #[inline]
    pub(crate) fn bit(&mut self, bit: u32, p1: u32) {
        let p1 = crate::coder::clamp_p(p1);
        let p = if bit != 0 { p1 } else { 65536 - p1 };
        self.bits -= (f64::from(p) / 65536.0).log2();
    }

    /// A whole symbol has been coded.
    #[inline]
    pub(crate) fn symbol(&mut self) {
        self.symbols += 1;
        if self.symbols.is_multiple_of(self.every) {
            self.push();
        }
    }

    fn push(&mut self) {
        self.points.push(CurvePoint {
            symbols: self.symbols,
            bits: self.bits,
        });
    }

    /// The curve, with a last point at the end of the stream.
    pub(crate) fn finish(mut self) -> CodeLengthCurve {
        if !self.symbols.is_multiple_of(self.every) {
            self.push();
        }
        CodeLengthCurve {
            every: self.every,
            points: self.points,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_fall_every_n_symbols_and_at_the_end() {
        let mut m = Meter::new(3);
        for _ in 0..7 {
            // One bit at probability 1/2 each: one bit per symbol.
            m.bit(1, 32768);
            m.symbol();
        }
        let c = m.finish();
        let at: Vec<u64> = c.points.iter().map(|p| p.symbols).collect();
        assert_eq!(at, [3, 6, 7]);
        assert_eq!(c.bits(), 7.0);
        assert_eq!(c.symbols(), 7);
        assert_eq!(c.interval_rates(), vec![(3, 1.0), (6, 1.0), (7, 1.0)]);
    }

    #[test]
    fn a_sure_bit_costs_little_and_a_surprise_much() {
        let mut m = Meter::new(1);
        m.bit(1, 65520);
        m.symbol();
        m.bit(0, 65520);
        m.symbol();
        let r = m.finish().interval_rates();
        assert!(r[0].1 < 0.001, "{r:?}");
        assert!((r[1].1 - 12.0).abs() < 1e-9, "{r:?}");
        // Exact multiples leave no extra point; nothing coded gives no point.
        assert!(Meter::new(5).finish().points.is_empty());
    }
}
