//! Hashed context slots: for every (context, partial symbol) a bit predictor that keeps a
//! count-based probability and a bit history state, packed in 32 bits.
//!
//! Slots are grouped in buckets of `2^group` (group = up to 4 bits of a symbol; 16 slots of 4
//! bytes = one 64-byte cache line), so one context costs one cache miss per nibble rather than
//! one per bit, as in Mahoney's lpaq. Slot 0 of a bucket holds a check value and a use count. A
//! context looks at three neighbouring buckets: one whose check matches is its own; otherwise
//! the least used of the three is reset and claimed, so frequent contexts survive collisions.

/// One bit predictor: `p` (16 bits) learns with rate 1/(n+1.5) up to the table's limit;
/// `state` is the bit history as a [`crate::bithistory`] state.
#[derive(Clone, Copy)]
pub struct Slot {
    /// Probability that the next bit is 1, scaled to 0-65535.
    pub p: u16,
    /// Updates seen, capped at the table's limit; sets the learning rate.
    pub n: u8,
    /// Bit-history state.
    pub state: u8,
}

const FRESH: u32 = (32768 << 16) | crate::bithistory::EMPTY as u32;

/// A table of buckets addressed by 64-bit context hashes.
pub struct SlotTable {
    slots: Vec<u32>,
    group_slots: usize,
    bucket_mask: usize,
    limit: u8,
}

impl SlotTable {
    /// `2^bits` slots in buckets of `2^group`; counts stop at `limit` (low: adapts fast, for
    /// text; high: stationary sources such as DNA).
    pub fn new(bits: u32, group: u32, limit: u8) -> Self {
        let group_slots = 1usize << group;
        let total = (1usize << bits).max(group_slots * 4);
        let mut slots = vec![FRESH; total];
        for b in slots.chunks_mut(group_slots) {
            b[0] = 0;
        }
        SlotTable {
            slots,
            group_slots,
            bucket_mask: total / group_slots - 1,
            limit,
        }
    }

    /// The first slot of the bucket for context hash `h`, claimed for it if none of its three
    /// candidate buckets already is.
    #[inline]
    pub fn bucket(&mut self, h: u64) -> usize {
        let first = (h >> 7) as usize & self.bucket_mask;
        let check = ((h >> 48) as u32) | 1;
        let mut victim = first;
        let mut fewest = u32::MAX;
        for k in 0..3 {
            let b = (first ^ k) & self.bucket_mask;
            let head = self.slots[b * self.group_slots];
            if head >> 16 == check {
                let uses = (head & 0xffff).saturating_add(1).min(0xffff);
                self.slots[b * self.group_slots] = (check << 16) | uses;
                return b * self.group_slots;
            }
            if head & 0xffff < fewest {
                fewest = head & 0xffff;
                victim = b;
            }
        }
        let base = victim * self.group_slots;
        for s in &mut self.slots[base + 1..base + self.group_slots] {
            *s = FRESH;
        }
        self.slots[base] = (check << 16) | 1;
        base
    }

    /// The slot at `index` (a bucket base plus the partial symbol inside the group, >= 1).
    #[inline]
    pub fn get(&self, index: usize) -> Slot {
        let v = self.slots[index];
        Slot {
            p: (v >> 16) as u16,
            n: (v >> 8) as u8,
            state: v as u8,
        }
    }

    /// Learns `bit` in slot `index`.
    #[inline]
    pub fn update(&mut self, index: usize, bit: u32) {
        let s = self.get(index);
        let p = crate::adaptive::learn(s.p as u32, bit, crate::adaptive::rate(s.n as u32));
        let n = if s.n < self.limit { s.n + 1 } else { s.n };
        let state = crate::bithistory::next(s.state, bit) as u32;
        self.slots[index] = (p << 16) | ((n as u32) << 8) | state;
    }
}

/// Mixes two 64-bit values into a well-spread hash (a multiply-xorshift finalizer).
#[inline]
pub fn hash2(a: u64, b: u64) -> u64 {
    let mut z = a ^ b.wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(31);
    z = (z ^ (z >> 29)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 32)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 29)
}
