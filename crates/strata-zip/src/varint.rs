//! LEB128 variable-length integers for the container header.

use crate::error::{Result, ZipError};

/// Appends `v` in 7-bit groups, low first.
pub fn put(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

/// A reader over a byte slice that fails with [`ZipError::Truncated`] instead of panicking.
pub struct Reader<'a> {
    /// The bytes read from.
    pub data: &'a [u8],
    /// Offset of the next byte to read.
    pub pos: usize,
}

impl<'a> Reader<'a> {
    /// Reads from the start of `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Reader { data, pos: 0 }
    }

    /// One byte.
    pub fn byte(&mut self, what: &'static str) -> Result<u8> {
        let b = *self.data.get(self.pos).ok_or(ZipError::Truncated(what))?;
        self.pos += 1;
        Ok(b)
    }

    /// `n` bytes.
    pub fn bytes(&mut self, n: usize, what: &'static str) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).ok_or(ZipError::Truncated(what))?;
        let s = self
            .data
            .get(self.pos..end)
            .ok_or(ZipError::Truncated(what))?;
        self.pos = end;
        Ok(s)
    }

    /// A LEB128 integer of at most 64 bits.
    pub fn varint(&mut self, what: &'static str) -> Result<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte(what)?;
            v |= ((b & 0x7f) as u64) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(ZipError::Corrupt(format!(
            "{what}: integer longer than 64 bits"
        )))
    }

    /// What is left.
    pub fn rest(&self) -> &'a [u8] {
        &self.data[self.pos.min(self.data.len())..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_edge_values() {
        for v in [0u64, 1, 127, 128, 300, u32::MAX as u64, u64::MAX] {
            let mut out = Vec::new();
            put(&mut out, v);
            assert_eq!(Reader::new(&out).varint("v").unwrap(), v);
            assert!(Reader::new(&out[..out.len() - 1]).varint("v").is_err());
        }
    }
}
