//! Binary arithmetic coder over integer frequencies.
//!
//! Every symbol the models see is a bit, coded with the frequencies `f1 = p` and
//! `f0 = 65536 - p` out of 65536, where `p` is the model's probability of a one in 16 bits.
//! [`clamp_p`] keeps both frequencies at least 1, so no symbol ever has zero probability and any
//! input round-trips, however wrong the model is. The coder is the carry-less 32-bit range
//! coder of the PAQ family: the interval `[low, high]` narrows with each bit, and the leading
//! byte is shifted out as soon as both ends agree on it.

/// Lowest and highest allowed probability of a one, out of 65536.
pub const P_MIN: u32 = 1;
/// See [`P_MIN`].
pub const P_MAX: u32 = 65535;

/// Lowest probability of a one, out of 65536, that any predictor of this crate hands the coder
/// (the context mixer's and the APMs' final clamp, and a network's 12-bit 1..=4095 shifted left
/// by 4). Tighter than [`P_MIN`] on purpose: it bounds how little a coded bit can cost, which is
/// what lets a decoder refuse a header claiming more symbols than its stream could hold
/// ([`max_coded_bits`]).
pub const MODEL_P_MIN: u32 = 16;
/// Highest probability of a one a predictor hands the coder; see [`MODEL_P_MIN`].
pub const MODEL_P_MAX: u32 = 65536 - MODEL_P_MIN;

/// Most bits a code stream holds per bit of its own while every probability lies in
/// `[MODEL_P_MIN, MODEL_P_MAX]`.
///
/// Why: write `W = high - low + 1` for the interval's width. Coding a bit with `p1 <= 65520`
/// as a one leaves `floor((W-1) p1 / 65536) + 1 <= W - ceil((W-1) / 4096)`, and as a zero with
/// `p1 >= 16` leaves `(W-1) - floor((W-1) p1 / 65536) <= W - 1 - floor((W-1) / 4096)`; both are at
/// most `W (1 - 1/4097)` for every `W >= 2`, so every bit costs at least `log2(4097/4096)` bits
/// = 1/2839.8, however sure the model is (the integer rounding included). Shifting a byte out
/// multiplies `W` by 256, so `W / 256^shifts` only ever shrinks by those factors, from `2^32`
/// to at least `2 / 256^shifts` (the interval never closes). Hence `n` bits need
/// `n log2(4097/4096) <= 8 shifts + 31`, and a stream of `len` bytes has `shifts <= len` (the
/// flush only adds bytes): `n <= (8 len + 32) * 2840`.
pub const MAX_BITS_PER_CODE_BIT: u64 = 2840;

/// The most bits (binary decisions) a code stream of `len` bytes can hold under
/// [`MODEL_P_MIN`]..[`MODEL_P_MAX`]; see [`MAX_BITS_PER_CODE_BIT`] for the proof. A header that
/// claims more is corrupt, and refusing it up front bounds a decoder's work and memory by the
/// size of its input.
pub fn max_coded_bits(len: u64) -> u64 {
    len.saturating_mul(8)
        .saturating_add(32)
        .saturating_mul(MAX_BITS_PER_CODE_BIT)
}

/// Keeps a probability from a predictor inside `[MODEL_P_MIN, MODEL_P_MAX]`. The predictors
/// already stay there, so this changes no valid stream; it makes [`max_coded_bits`] hold even if
/// a model ever strayed.
#[inline]
pub fn clamp_model_p(p: u32) -> u32 {
    p.clamp(MODEL_P_MIN, MODEL_P_MAX)
}

/// Keeps a 16-bit probability inside `[P_MIN, P_MAX]`, so neither bit gets a zero frequency.
#[inline]
pub fn clamp_p(p: u32) -> u32 {
    p.clamp(P_MIN, P_MAX)
}

#[inline]
fn split(low: u32, high: u32, p1: u32) -> u32 {
    // The ones take the lower part of the interval, in proportion to p1/65536; the width of
    // that part is at least 0 and the rest at least 1, because high > low after every shift.
    low + (((high - low) as u64 * clamp_p(p1) as u64) >> 16) as u32
}

/// Writes bits into a growing byte vector.
pub struct Encoder {
    low: u32,
    high: u32,
    out: Vec<u8>,
}

impl Default for Encoder {
    fn default() -> Self {
        Self::new()
    }
}

impl Encoder {
    /// An empty code stream.
    pub fn new() -> Self {
        Encoder {
            low: 0,
            high: u32::MAX,
            out: Vec::new(),
        }
    }

    /// Codes `bit` (0 or 1) with probability `p1`/65536 of a one.
    #[inline]
    pub fn encode(&mut self, bit: u32, p1: u32) {
        let mid = split(self.low, self.high, p1);
        if bit != 0 {
            self.high = mid;
        } else {
            self.low = mid + 1;
        }
        while (self.low ^ self.high) & 0xff00_0000 == 0 {
            self.out.push((self.high >> 24) as u8);
            self.low <<= 8;
            self.high = (self.high << 8) | 0xff;
        }
    }

    /// Bytes written so far (the stream is not decodable until [`Encoder::finish`]).
    pub fn len(&self) -> usize {
        self.out.len()
    }

    /// Whether nothing has been written yet.
    pub fn is_empty(&self) -> bool {
        self.out.is_empty()
    }

    /// Ends the stream with the fewest bytes that pin a value inside the final interval: the
    /// decoder reads zeros past the end, so `low` rounded up at a byte boundary will do.
    pub fn finish(mut self) -> Vec<u8> {
        for bytes in 0..=4u32 {
            let shift = 32 - 8 * bytes;
            let value: u64 = if bytes == 0 {
                0
            } else {
                let keep = (self.low as u64) >> shift;
                let rounded = if (self.low as u64) & ((1u64 << shift) - 1) != 0 {
                    keep + 1
                } else {
                    keep
                };
                rounded << shift
            };
            if value >= self.low as u64 && value <= self.high as u64 {
                for i in 0..bytes {
                    self.out.push((value >> (24 - 8 * i)) as u8);
                }
                return self.out;
            }
        }
        // Unreachable in practice (4 bytes of `low` always lie in the interval), kept total.
        self.out.extend_from_slice(&self.low.to_be_bytes());
        self.out
    }
}

/// Reads bits back from a code stream; past its end it reads zeros, as the encoder assumed.
pub struct Decoder<'a> {
    low: u32,
    high: u32,
    x: u32,
    input: &'a [u8],
    pos: usize,
}

impl<'a> Decoder<'a> {
    /// Starts decoding `input`.
    pub fn new(input: &'a [u8]) -> Self {
        let mut d = Decoder {
            low: 0,
            high: u32::MAX,
            x: 0,
            input,
            pos: 0,
        };
        for _ in 0..4 {
            d.x = (d.x << 8) | d.next_byte();
        }
        d
    }

    #[inline]
    fn next_byte(&mut self) -> u32 {
        let b = self.input.get(self.pos).copied().unwrap_or(0);
        self.pos += 1;
        b as u32
    }

    /// Decodes one bit coded with probability `p1`/65536 of a one.
    #[inline]
    pub fn decode(&mut self, p1: u32) -> u32 {
        let mid = split(self.low, self.high, p1);
        let bit = if self.x <= mid {
            self.high = mid;
            1
        } else {
            self.low = mid + 1;
            0
        };
        while (self.low ^ self.high) & 0xff00_0000 == 0 {
            self.low <<= 8;
            self.high = (self.high << 8) | 0xff;
            self.x = (self.x << 8) | self.next_byte();
        }
        bit
    }

    /// Whether the decoder has read more than 4 bytes past the end of its input: a stream that
    /// ran out this far was truncated or is not a stream of this coder.
    pub fn overran(&self) -> bool {
        self.pos > self.input.len() + 4
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rng(state: &mut u64) -> u64 {
        *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = *state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    #[test]
    fn round_trips_random_bits_under_random_and_adversarial_probabilities() {
        let mut s = 0x1234 ^ std::process::id() as u64;
        for case in 0..200 {
            let n = (rng(&mut s) % 3000) as usize;
            let bits: Vec<u32> = (0..n).map(|_| (rng(&mut s) & 1) as u32).collect();
            // Case 0 mod 3: probabilities that are confidently wrong half the time.
            let probs: Vec<u32> = (0..n)
                .map(|i| match case % 3 {
                    0 => {
                        if rng(&mut s) & 1 == 0 {
                            P_MIN
                        } else {
                            P_MAX
                        }
                    }
                    1 => (rng(&mut s) % 70000) as u32,
                    _ => {
                        if bits[i] == 1 {
                            60000
                        } else {
                            5000
                        }
                    }
                })
                .collect();
            let mut e = Encoder::new();
            for (&b, &p) in bits.iter().zip(&probs) {
                e.encode(b, p);
            }
            let code = e.finish();
            let mut d = Decoder::new(&code);
            for (i, (&b, &p)) in bits.iter().zip(&probs).enumerate() {
                assert_eq!(d.decode(p), b, "case {case} bit {i}");
            }
        }
    }

    #[test]
    fn code_length_is_close_to_the_information_content() {
        // 100,000 bits of a Bernoulli(0.1) source coded with the true probability: the stream
        // must be within a few bytes of n * h(0.1) bits.
        let mut s = 99u64;
        let n = 100_000;
        let p1 = (0.1f64 * 65536.0) as u32;
        let mut e = Encoder::new();
        let mut info = 0.0f64;
        for _ in 0..n {
            let bit = ((rng(&mut s) % 1000) < 100) as u32;
            let p = p1 as f64 / 65536.0;
            info -= if bit == 1 { p.log2() } else { (1.0 - p).log2() };
            e.encode(bit, p1);
        }
        let bytes = e.finish().len() as f64;
        assert!(
            (bytes * 8.0 - info).abs() < 64.0,
            "{bytes} bytes vs {info} bits"
        );
    }

    #[test]
    fn the_capacity_bound_holds_and_is_tight() {
        // The per-bit floor: 1 / log2(4097/4096) must not exceed the constant.
        assert!(1.0 / (4097f64 / 4096.0).log2() < MAX_BITS_PER_CODE_BIT as f64);
        // Brute force of the interval argument: for every width W the rounding can produce
        // (small ones exhaustively, large ones sampled), each bit at the model's extremes leaves
        // at most W (1 - 1/4097).
        let mut s = 5u64;
        let widths =
            (2u64..200_000).chain((0..200_000).map(|_| 2 + rng(&mut s) % (u32::MAX as u64)));
        for w in widths {
            let (low, high) = (0u32, (w - 1) as u32);
            for p in [MODEL_P_MIN, MODEL_P_MAX] {
                let mid = split(low, high, p) as u64;
                let one = mid - low as u64 + 1;
                let zero = high as u64 - mid;
                assert!(
                    one * 4097 <= w * 4096 && zero * 4097 <= w * 4096,
                    "W={w} p={p}"
                );
            }
        }
        // The most compressible streams there are (every bit the likelier one, at the clamp)
        // stay inside the bound and come close to it, for either bit.
        for (bit, p) in [(1, MODEL_P_MAX), (0, MODEL_P_MIN)] {
            for n in [1u64, 100, 10_000, 3_000_000] {
                let mut e = Encoder::new();
                for _ in 0..n {
                    e.encode(bit, p);
                }
                let len = e.finish().len() as u64;
                assert!(n <= max_coded_bits(len), "{n} bits in {len} bytes");
                if n == 3_000_000 {
                    assert!(
                        n * 11 / 10 > max_coded_bits(len) - 32 * 2840,
                        "{n} bits, {len} bytes"
                    );
                }
            }
        }
    }

    #[test]
    fn empty_and_certain_streams_are_short() {
        assert!(Encoder::new().finish().is_empty());
        let mut e = Encoder::new();
        for _ in 0..1000 {
            e.encode(1, P_MAX);
        }
        let code = e.finish();
        assert!(code.len() <= 4, "{}", code.len());
        let mut d = Decoder::new(&code);
        for _ in 0..1000 {
            assert_eq!(d.decode(P_MAX), 1);
        }
    }
}
