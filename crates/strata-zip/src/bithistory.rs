//! Bit histories as one-byte states (the nonstationary counters of Mahoney's PAQ and lpaq,
//! rebuilt here from their description): a state stands for a pair of bit counts `(n0, n1)`
//! plus the last bit, and an adaptive table learns what each state predicts in each context.
//!
//! Why a state besides a probability: a probability alone cannot tell "seen once" from "seen a
//! hundred times, evenly split", nor a context that has just switched from zeros to ones. The
//! counts say how much evidence there is, and the rule that halves the opposite count on every
//! bit favours recent history, which is what text's nonstationary contexts want. What a state
//! really predicts is not assumed but learned (a [`crate::adaptive::StateMap`] indexed by it).
//!
//! The pairs kept are those with `max(n0, n1) <= LIMIT[min(n0, n1)]`: long runs are counted far
//! (up to 40), mixed histories only a little. With one count zero the last bit is implied; all
//! other pairs exist once per last bit. That is 243 states, so a state fits in a byte.

use std::sync::OnceLock;

/// Largest count allowed for the larger of `(n0, n1)`, by the smaller one (index); pairs with
/// both counts above 5 are not kept.
const LIMIT: [u8; 6] = [40, 24, 12, 7, 5, 5];

/// The state of a history with no bits seen.
pub const EMPTY: u8 = 0;

struct Table {
    /// `(n0, n1, last bit)` of every state.
    counts: Vec<(u8, u8, u8)>,
    /// Next state after a 0 and after a 1.
    next: Vec<[u8; 2]>,
}

fn allowed(n0: u8, n1: u8) -> bool {
    let (lo, hi) = (n0.min(n1), n0.max(n1));
    (lo as usize) < LIMIT.len() && hi <= LIMIT[lo as usize]
}

/// The counts after `bit` follows `(n0, n1)`: the bit's count grows, the other one is discounted
/// (halved, keeping at least 2) so that old evidence fades, and the pair is brought back into
/// the allowed set by lowering the larger count (so the bit's count never falls below its old
/// value, and the other count may drop further: (1, 24) then a 0 gives (2, 12)).
fn step(n0: u8, n1: u8, bit: u8) -> (u8, u8) {
    let (mut mine, mut other) = if bit == 0 { (n0, n1) } else { (n1, n0) };
    mine += 1;
    if other > 2 {
        other = other / 2 + 1;
    }
    while !allowed(mine, other) {
        if mine > other {
            mine -= 1;
        } else {
            other -= 1;
        }
    }
    if bit == 0 {
        (mine, other)
    } else {
        (other, mine)
    }
}

fn table() -> &'static Table {
    static T: OnceLock<Table> = OnceLock::new();
    T.get_or_init(|| {
        // Enumerate in a fixed order: by total count, then n1, then last bit.
        let mut counts = Vec::new();
        for total in 0..=80u8 {
            for n1 in 0..=total {
                let n0 = total - n1;
                if !allowed(n0, n1) {
                    continue;
                }
                if n0 == 0 || n1 == 0 {
                    // Last bit implied (or no bits at all).
                    counts.push((n0, n1, (n1 > 0) as u8));
                } else {
                    counts.push((n0, n1, 0));
                    counts.push((n0, n1, 1));
                }
            }
        }
        let find = |c: (u8, u8, u8)| -> u8 {
            counts
                .iter()
                .position(|&x| x == c)
                .expect("the step rule stays inside the state set") as u8
        };
        let next = counts
            .iter()
            .map(|&(n0, n1, _)| {
                let go = |bit: u8| {
                    let (a, b) = step(n0, n1, bit);
                    find((a, b, bit))
                };
                [go(0), go(1)]
            })
            .collect();
        Table { counts, next }
    })
}

/// The state after `bit` follows `state`.
#[inline]
pub fn next(state: u8, bit: u32) -> u8 {
    table().next[state as usize][(bit & 1) as usize]
}

/// `(n0, n1, last bit)` of a state.
pub fn counts(state: u8) -> (u8, u8, u8) {
    table().counts[state as usize]
}

/// A prior 16-bit probability of a one for a state, `(n1 + 1/2) / (n0 + n1 + 1)`: where the
/// adaptive map indexed by states starts before it has learned.
pub fn prior(state: u8) -> u16 {
    let (n0, n1, _) = counts(state);
    ((2 * n1 as u32 + 1) * 65536 / (2 * (n0 as u32 + n1 as u32) + 2)).min(65535) as u16
}

/// How many states there are.
pub fn states() -> usize {
    table().counts.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_fit_in_a_byte_and_start_empty() {
        assert!(states() <= 256, "{}", states());
        assert_eq!(counts(EMPTY), (0, 0, 0));
    }

    #[test]
    fn transitions_stay_in_range_and_count_the_bit() {
        for s in 0..states() as u8 {
            let (n0, n1, _) = counts(s);
            for bit in 0..2u32 {
                let t = next(s, bit);
                assert!((t as usize) < states());
                let (m0, m1, last) = counts(t);
                assert_eq!(last as u32, bit);
                // The observed bit's count never falls; the other never grows.
                if bit == 0 {
                    assert!(m0 >= n0 && m0 >= 1 && m1 <= n1);
                } else {
                    assert!(m1 >= n1 && m1 >= 1 && m0 <= n0);
                }
            }
        }
    }

    #[test]
    fn runs_count_up_and_a_change_discounts_the_past() {
        let mut s = EMPTY;
        for k in 1..=50u8 {
            s = next(s, 1);
            assert_eq!(counts(s), (0, k.min(40), 1));
        }
        s = next(s, 0);
        assert_eq!(counts(s), (1, 21, 0));
    }

    #[test]
    fn every_state_is_reachable_from_empty() {
        let mut seen = vec![false; states()];
        let mut todo = vec![EMPTY];
        seen[EMPTY as usize] = true;
        while let Some(s) = todo.pop() {
            for bit in 0..2 {
                let t = next(s, bit);
                if !seen[t as usize] {
                    seen[t as usize] = true;
                    todo.push(t);
                }
            }
        }
        let unreachable = seen.iter().filter(|&&x| !x).count();
        assert!(unreachable * 10 < states(), "{unreachable} unreachable");
    }
}
