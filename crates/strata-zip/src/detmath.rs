//! Bit-reproducible `exp`, `ln`, `sigmoid` and `tanh` for `f32`.
//!
//! The compressor and the decompressor run the same neural predictor and must agree on every
//! probability to the last bit, on any x86-64 or aarch64 machine and for any `target-cpu`. The
//! `f32::exp`/`tanh`/`ln` of `std` call the platform's libm, whose results differ between
//! implementations and versions by an ulp here and there, which would desynchronize the decoder.
//! So everything here is built only from IEEE 754 basic operations (`+ - * /`, comparisons,
//! exact float/integer conversions and bit manipulation), each correctly rounded, evaluated in a
//! fixed order. Rust never contracts `a * b + c` into a fused multiply-add on its own, so the
//! plain expressions below give the same bits everywhere.
//!
//! The polynomials are the single-precision Cephes ones (S. L. Moshier), accurate to about
//! two ulps in their reduced ranges.

/// Largest argument [`exp`] evaluates; larger ones are clamped, so the result stays finite
/// (`exp(88) ≈ 1.65e38 < f32::MAX`) and callers never see an infinity turn into a NaN.
pub const EXP_MAX: f32 = 88.0;

/// Smallest argument [`exp`] evaluates; smaller ones are clamped, so the result stays a normal
/// number (`exp(-87) ≈ 1.6e-38 > f32::MIN_POSITIVE`) and never depends on denormal handling.
pub const EXP_MIN: f32 = -87.0;

/// `log2(e)` rounded to `f32`, to find the power of two nearest to `exp(x)`.
const LOG2E: f32 = std::f32::consts::LOG2_E;

/// High part of `ln 2` with only 9 significant bits (0.693359375 exactly), so `k * LN2_HI` is
/// exact for every exponent `k` reachable here and the range reduction `x - k ln 2` loses
/// nothing.
const LN2_HI: f32 = 355.0 / 512.0;

/// `ln 2 - LN2_HI`, the low part of the two-constant split.
const LN2_LO: f32 = -2.121_944_4e-4;

/// `sqrt(0.5)`: [`ln`] keeps its reduced mantissa in `[sqrt(0.5), sqrt(2))`, where the
/// polynomial for `ln(1 + f)` is accurate.
const SQRT_HALF: f32 = 0.707_106_77;

/// Below this `|x|` [`tanh`] uses an odd polynomial: the exp-based formula would lose relative
/// accuracy to cancellation in `1 - exp(-2|x|)`.
const TANH_POLY_MAX: f32 = 0.625;

/// Deterministic `e^x`, relative error below about 2e-7 on `[EXP_MIN, EXP_MAX]`.
///
/// Arguments outside that range are clamped to it (so `exp(1000)` is `exp(88)` and
/// `exp(-1000)` is `exp(-87)`): the predictor only needs finite, positive results. NaN gives NaN.
#[inline]
pub fn exp(x: f32) -> f32 {
    // `clamp` is two comparisons and lets a NaN through unchanged.
    let x = x.clamp(EXP_MIN, EXP_MAX);
    // x = k ln2 + r with |r| <= ln2 / 2. Rounding half away from zero through a truncating
    // conversion, which Rust defines exactly (NaN converts to 0).
    let t = x * LOG2E;
    let k = (t + if t >= 0.0 { 0.5 } else { -0.5 }) as i32;
    let kf = k as f32;
    let r = (x - kf * LN2_HI) - kf * LN2_LO;
    let r2 = r * r;
    let p = (((((1.987_569_1e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2)
        * r
        + 1.666_666_5e-1)
        * r
        + 5e-1)
        * r2
        + r
        + 1.0;
    // 2^k built from its bits; the clamp above keeps k in [-126, 127], a normal exponent.
    let scale = f32::from_bits(((k + 127) as u32) << 23);
    p * scale
}

/// Deterministic natural logarithm, relative error below about 2e-7.
///
/// `ln(0) = -inf`, `ln(inf) = inf`, negative numbers and NaN give NaN, denormals are handled.
/// The compressor uses it for code lengths (`-ln p`), which must agree between machines when
/// they steer decisions such as model selection.
#[inline]
pub fn ln(x: f32) -> f32 {
    if x == 0.0 {
        return f32::NEG_INFINITY;
    }
    if x < 0.0 || x.is_nan() {
        return f32::NAN;
    }
    if x == f32::INFINITY {
        return x;
    }
    let mut bits = x.to_bits();
    let mut e: i32 = 0;
    if bits < 0x0080_0000 {
        // Denormal: scale by 2^23 (exact) to get a normal number to take apart.
        bits = (x * 8_388_608.0).to_bits();
        e = -23;
    }
    // x = m * 2^e with m in [0.5, 1).
    e += ((bits >> 23) as i32) - 126;
    let m = f32::from_bits((bits & 0x007f_ffff) | 0x3f00_0000);
    // Move m into [sqrt(0.5), sqrt(2)) and write it as 1 + f; both steps are exact.
    let (e, f) = if m < SQRT_HALF {
        (e - 1, m + m - 1.0)
    } else {
        (e, m - 1.0)
    };
    let z = f * f;
    let mut y = ((((((((7.037_683_6e-2 * f - 1.151_461e-1) * f + 1.167_699_9e-1) * f
        - 1.242_014_1e-1)
        * f
        + 1.424_932_3e-1)
        * f
        - 1.666_805_8e-1)
        * f
        + 2.000_071_4e-1)
        * f
        - 2.499_999_4e-1)
        * f
        + 3.333_333e-1)
        * f
        * z;
    let ef = e as f32;
    y += LN2_LO * ef;
    y += -0.5 * z;
    let mut r = f + y;
    r += LN2_HI * ef;
    r
}

/// Deterministic logistic function `1 / (1 + e^-x)`, relative error below about 5e-7.
///
/// Evaluated through `e^-|x|`, which never overflows, so large `|x|` saturate cleanly to 1 or
/// to a tiny positive value instead of producing `inf / inf`.
#[inline]
pub fn sigmoid(x: f32) -> f32 {
    let neg = x < 0.0;
    let e = exp(if neg { x } else { -x });
    // For x < 0 the answer is e / (1 + e): writing it as 1 - 1/(1 + e) would cancel to 0.
    let num = if neg { e } else { 1.0 };
    num / (1.0 + e)
}

/// Deterministic hyperbolic tangent, relative error below about 5e-7.
///
/// Odd polynomial for `|x| < 0.625` (keeps relative accuracy near 0), otherwise
/// `(1 - e^-2|x|) / (1 + e^-2|x|)`, which saturates to ±1 without overflow.
#[inline]
pub fn tanh(x: f32) -> f32 {
    let a = if x < 0.0 { -x } else { x };
    if a < TANH_POLY_MAX {
        let z = x * x;
        return ((((-5.704_988_7e-3 * z + 2.063_909e-2) * z - 5.373_973e-2) * z + 1.333_144_2e-1)
            * z
            - 3.333_328e-1)
            * z
            * x
            + x;
    }
    let t = exp(-2.0 * a);
    let r = (1.0 - t) / (1.0 + t);
    // NaN is not < 0.0, so it takes this branch and stays NaN.
    if x < 0.0 {
        -r
    } else {
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Evenly spaced points plus a pseudo-random spray, so both smooth regions and the
    /// branch boundaries (0, ±0.625, the reduction thresholds) get covered.
    fn points(lo: f32, hi: f32, n: usize) -> Vec<f32> {
        let mut v: Vec<f32> = (0..=n)
            .map(|i| lo + (hi - lo) * (i as f32 / n as f32))
            .collect();
        let mut s: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..n {
            s = s
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let u = (s >> 40) as f32 / (1u64 << 24) as f32;
            v.push(lo + (hi - lo) * u);
        }
        v
    }

    fn rel_err(got: f32, want: f64) -> f64 {
        let d = (got as f64 - want).abs();
        if want == 0.0 {
            d
        } else {
            d / want.abs()
        }
    }

    #[test]
    fn exp_matches_f64() {
        let mut worst = 0.0f64;
        for x in points(EXP_MIN, EXP_MAX, 200_000) {
            worst = worst.max(rel_err(exp(x), (x as f64).exp()));
        }
        assert!(worst < 3e-7, "exp worst relative error {worst:e}");
        assert_eq!(exp(0.0), 1.0);
    }

    #[test]
    fn exp_clamps_and_propagates_nan() {
        assert_eq!(exp(1e4), exp(EXP_MAX));
        assert_eq!(exp(f32::INFINITY), exp(EXP_MAX));
        assert_eq!(exp(-1e4), exp(EXP_MIN));
        assert!(exp(f32::NEG_INFINITY) > 0.0);
        assert!(exp(EXP_MAX).is_finite());
        assert!(exp(EXP_MIN) >= f32::MIN_POSITIVE);
        assert!(exp(f32::NAN).is_nan());
    }

    #[test]
    fn ln_matches_f64() {
        let mut worst = 0.0f64;
        let mut xs = points(1e-3, 10.0, 100_000);
        xs.extend(points(0.9, 1.1, 50_000));
        xs.extend([
            f32::MIN_POSITIVE,
            1e-40,
            1e-45,
            f32::MAX,
            1.0 + f32::EPSILON,
            0.5,
        ]);
        for i in -126..128 {
            xs.push(2f32.powi(i) * 1.2345);
        }
        for x in xs {
            let want = (x as f64).ln();
            let got = ln(x);
            let err = (got as f64 - want).abs() / want.abs().max(1e-30);
            // Denormal inputs carry fewer mantissa bits, but ln of them is ~ -100, so the
            // relative error stays small regardless.
            worst = worst.max(err);
        }
        assert!(worst < 3e-7, "ln worst relative error {worst:e}");
        assert_eq!(ln(1.0), 0.0);
        assert_eq!(ln(0.0), f32::NEG_INFINITY);
        assert_eq!(ln(f32::INFINITY), f32::INFINITY);
        assert!(ln(-1.0).is_nan());
        assert!(ln(f32::NAN).is_nan());
    }

    #[test]
    fn sigmoid_matches_f64() {
        let mut worst = 0.0f64;
        for x in points(-80.0, 80.0, 200_000) {
            let want = 1.0 / (1.0 + (-(x as f64)).exp());
            worst = worst.max(rel_err(sigmoid(x), want));
        }
        assert!(worst < 6e-7, "sigmoid worst relative error {worst:e}");
        assert_eq!(sigmoid(1e6), 1.0);
        assert!(sigmoid(-1e6) > 0.0 && sigmoid(-1e6) < 1e-37);
        assert_eq!(sigmoid(0.0), 0.5);
    }

    #[test]
    fn tanh_matches_f64() {
        let mut worst = 0.0f64;
        let mut xs = points(-20.0, 20.0, 200_000);
        xs.extend(points(-1.0, 1.0, 100_000));
        xs.extend([1e-30, -1e-30, 1e-6, 0.624_999_9, 0.625, -0.625]);
        for x in xs {
            worst = worst.max(rel_err(tanh(x), (x as f64).tanh()));
        }
        assert!(worst < 6e-7, "tanh worst relative error {worst:e}");
        assert_eq!(tanh(0.0), 0.0);
        assert_eq!(tanh(1e6), 1.0);
        assert_eq!(tanh(-1e6), -1.0);
        assert_eq!(tanh(f32::INFINITY), 1.0);
        assert!(tanh(f32::NAN).is_nan());
    }

    /// Known bit patterns: if a refactor (or a compiler) changes the operation order, this
    /// fails on the machine where it happens instead of in a decoder on another machine.
    #[test]
    fn golden_bits() {
        let got = [
            exp(1.0).to_bits(),
            exp(-3.7).to_bits(),
            ln(3.0).to_bits(),
            sigmoid(0.3).to_bits(),
            tanh(0.3).to_bits(),
            tanh(-2.5).to_bits(),
        ];
        println!("{got:#x?}");
        assert_eq!(got, GOLDEN);
    }

    const GOLDEN: [u32; 6] = [
        0x402d_f854,
        0x3cca_88fe,
        0x3f8c_9f54,
        0x3f13_0eaa,
        0x3e95_26ee,
        0xbf7c_92c1,
    ];
}
