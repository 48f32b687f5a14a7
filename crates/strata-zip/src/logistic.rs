//! The logistic domain the models mix in: `stretch(p) = ln(p / (1 - p))` and its inverse
//! `squash`, on 12-bit probabilities and logits in units of 1/256.
//!
//! Both are lookup tables built once from integer arithmetic and an exp written with basic
//! f64 operations only ([`exp_f64`]), so they are the same on every machine: libm's `exp` may
//! differ in the last bit between platforms, and one different table entry would make a decoder
//! elsewhere diverge.

use std::sync::OnceLock;

/// Largest logit magnitude, in units of 1/256 (so ±8 in natural units).
pub const LOGIT_MAX: i32 = 2047;

struct Tables {
    squash: Vec<u16>,
    stretch: Vec<i16>,
}

fn tables() -> &'static Tables {
    static T: OnceLock<Tables> = OnceLock::new();
    T.get_or_init(|| {
        let squash: Vec<u16> = (-LOGIT_MAX..=LOGIT_MAX)
            .map(|x| {
                let p = 4096.0 / (1.0 + exp_f64(-(x as f64) / 256.0));
                (p as i64).clamp(1, 4095) as u16
            })
            .collect();
        // stretch(p) = the smallest logit whose squash reaches p: an exact inverse on the table.
        let mut stretch = vec![0i16; 4096];
        let mut x = -LOGIT_MAX;
        for (p, s) in stretch.iter_mut().enumerate() {
            while x < LOGIT_MAX && (squash[(x + LOGIT_MAX) as usize] as usize) < p {
                x += 1;
            }
            *s = x as i16;
        }
        Tables { squash, stretch }
    })
}

/// 12-bit probability of a one (1..=4095) for a logit `x`/256, clamped to ±[`LOGIT_MAX`].
#[inline]
pub fn squash(x: i32) -> u32 {
    tables().squash[(x.clamp(-LOGIT_MAX, LOGIT_MAX) + LOGIT_MAX) as usize] as u32
}

/// Logit (units of 1/256) of a 12-bit probability `p` (0..=4095).
#[inline]
pub fn stretch(p: u32) -> i32 {
    tables().stretch[p.min(4095) as usize] as i32
}

/// `e^x` from + - * / only: range reduction by ln 2 and a Taylor series, exact to ~1 ulp on
/// the logit range and identical on every IEEE-754 machine.
pub fn exp_f64(x: f64) -> f64 {
    if x.is_nan() {
        return x;
    }
    let x = x.clamp(-700.0, 700.0);
    const LN2: f64 = std::f64::consts::LN_2;
    let k = (x / LN2 + if x < 0.0 { -0.5 } else { 0.5 }) as i64;
    let r = x - k as f64 * LN2;
    let mut term = 1.0;
    let mut sum = 1.0;
    for i in 1..24 {
        term = term * r / i as f64;
        sum += term;
    }
    // 2^k as the bit pattern of a double (k stays inside the normal range after the clamp).
    sum * f64::from_bits(((k + 1023) as u64) << 52)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn squash_matches_the_logistic_function_and_stretch_inverts_it() {
        for x in -LOGIT_MAX..=LOGIT_MAX {
            let want = 4096.0 / (1.0 + (-(x as f64) / 256.0).exp());
            assert!((squash(x) as f64 - want).abs() <= 1.0, "x={x}");
        }
        for p in 1..4096u32 {
            let x = stretch(p);
            assert!(squash(x) >= p || x == LOGIT_MAX, "p={p}");
            if x > -LOGIT_MAX {
                assert!(squash(x - 1) < p, "p={p}");
            }
        }
        assert!(stretch(2048).abs() <= 1);
        assert_eq!(squash(100_000), squash(LOGIT_MAX));
    }

    #[test]
    fn exp_agrees_with_libm_to_rounding() {
        for i in -2000..2000 {
            let x = i as f64 * 0.0173;
            let rel = (exp_f64(x) - x.exp()).abs() / x.exp();
            assert!(rel < 1e-14, "x={x} rel={rel}");
        }
    }
}
