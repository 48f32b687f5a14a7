//! How the input's bytes become the symbols the models see.
//!
//! * `Bytes`: one 8-bit symbol per byte.
//! * `Bits`: every byte is 8 binary symbols (a packed bit stream, most significant bit first).
//! * `Symbols`: few distinct byte values (at most 16): each maps to its rank among them and is
//!   coded in ceil(log2 k) bits, so a 0/1 file is a binary source and an 8-letter one 3 bits.
//! * `Dna`: A, C, G, T become 2-bit symbols; every other byte (FASTA headers, line breaks, N,
//!   lower case) is kept exactly in a side stream of runs `(gap, length, bytes)`, itself
//!   compressed; line breaks every 80 bases cost almost nothing there.

use crate::error::{Result, ZipError};
use crate::varint::{self, Reader};

/// The alphabet as recorded in the container.
#[derive(Clone, Debug, PartialEq)]
pub enum Alphabet {
    /// Whole bytes, 8 bits per symbol.
    Bytes,
    /// A packed bit stream: every byte is 8 one-bit symbols, most significant bit first.
    Bits,
    /// The distinct byte values, in increasing order (1 to 16 of them).
    Symbols(Vec<u8>),
    /// DNA: A, C, G, T as 2-bit symbols, every other byte kept exactly in a side stream.
    Dna,
}

/// What the user may ask for (`auto` decides from the data).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AlphabetChoice {
    /// Decide from the data: DNA, a small alphabet, else bytes.
    Auto,
    /// Whole bytes.
    Bytes,
    /// Every byte as 8 bits (for packed binary data).
    Bits,
    /// DNA: bases packed, other bytes in a side stream.
    Dna,
}

impl Alphabet {
    /// Bits per symbol.
    pub fn width(&self) -> u32 {
        match self {
            Alphabet::Bytes => 8,
            Alphabet::Bits => 1,
            Alphabet::Dna => 2,
            Alphabet::Symbols(v) => (usize::BITS - (v.len().max(2) - 1).leading_zeros()).max(1),
        }
    }

    /// A short name for tables ("bytes", "bits", "dna", "4 symbols").
    pub fn name(&self) -> String {
        match self {
            Alphabet::Bytes => "bytes".into(),
            Alphabet::Bits => "bits".into(),
            Alphabet::Dna => "dna".into(),
            Alphabet::Symbols(v) => format!("{} symbols", v.len()),
        }
    }

    pub(crate) fn write(&self, out: &mut Vec<u8>) {
        match self {
            Alphabet::Bytes => out.push(0),
            Alphabet::Bits => out.push(1),
            Alphabet::Dna => out.push(3),
            Alphabet::Symbols(v) => {
                out.push(2);
                out.push(v.len() as u8);
                out.extend_from_slice(v);
            }
        }
    }

    pub(crate) fn read(r: &mut Reader) -> Result<Self> {
        Ok(match r.byte("alphabet")? {
            0 => Alphabet::Bytes,
            1 => Alphabet::Bits,
            3 => Alphabet::Dna,
            2 => {
                let k = r.byte("alphabet size")? as usize;
                let v = r.bytes(k, "alphabet values")?.to_vec();
                if k == 0 || k > 16 || v.windows(2).any(|w| w[0] >= w[1]) {
                    return Err(ZipError::Corrupt("bad symbol table".into()));
                }
                Alphabet::Symbols(v)
            }
            t => return Err(ZipError::Corrupt(format!("unknown alphabet tag {t}"))),
        })
    }
}

fn is_base(b: u8) -> bool {
    matches!(b, b'A' | b'C' | b'G' | b'T')
}

fn base_code(b: u8) -> u8 {
    match b {
        b'A' => 0,
        b'C' => 1,
        b'G' => 2,
        _ => 3,
    }
}

const BASES: [u8; 4] = *b"ACGT";

/// Chooses the alphabet for `data`.
pub fn detect(data: &[u8], choice: AlphabetChoice) -> Alphabet {
    match choice {
        AlphabetChoice::Bytes => return Alphabet::Bytes,
        AlphabetChoice::Bits => return Alphabet::Bits,
        AlphabetChoice::Dna => return Alphabet::Dna,
        AlphabetChoice::Auto => {}
    }
    let mut seen = [0u64; 256];
    for &b in data {
        seen[b as usize] += 1;
    }
    let bases: u64 = [b'A', b'C', b'G', b'T']
        .iter()
        .map(|&b| seen[b as usize])
        .sum();
    let distinct: Vec<u8> = (0..=255u8).filter(|&b| seen[b as usize] > 0).collect();
    if data.len() >= 64 && bases * 10 >= data.len() as u64 * 9 && distinct.len() > 4 {
        // Mostly ACGT with something else (line breaks, a header): pack the bases.
        Alphabet::Dna
    } else if !data.is_empty() && distinct.len() <= 16 && distinct.len() < 256 {
        if distinct == [b'A', b'C', b'G', b'T'] {
            Alphabet::Dna
        } else {
            Alphabet::Symbols(distinct)
        }
    } else {
        Alphabet::Bytes
    }
}

/// The symbols of `data` under a non-DNA alphabet.
pub fn to_symbols(data: &[u8], a: &Alphabet) -> Vec<u8> {
    match a {
        Alphabet::Bytes | Alphabet::Dna => data.to_vec(),
        Alphabet::Bits => data
            .iter()
            .flat_map(|&b| (0..8).rev().map(move |i| (b >> i) & 1))
            .collect(),
        Alphabet::Symbols(v) => {
            let mut rank = [0u8; 256];
            for (i, &b) in v.iter().enumerate() {
                rank[b as usize] = i as u8;
            }
            data.iter().map(|&b| rank[b as usize]).collect()
        }
    }
}

/// The inverse of [`to_symbols`]; a symbol outside the table is corruption.
pub fn from_symbols(symbols: &[u8], a: &Alphabet) -> Result<Vec<u8>> {
    Ok(match a {
        Alphabet::Bytes | Alphabet::Dna => symbols.to_vec(),
        Alphabet::Bits => symbols
            .chunks(8)
            .map(|c| c.iter().fold(0u8, |acc, &b| (acc << 1) | (b & 1)))
            .collect(),
        Alphabet::Symbols(v) => symbols
            .iter()
            .map(|&s| {
                v.get(s as usize)
                    .copied()
                    .ok_or_else(|| ZipError::Corrupt("symbol outside the alphabet".into()))
            })
            .collect::<Result<_>>()?,
    })
}

/// Number of symbols that `len` original bytes make under alphabet `a` (not for DNA).
pub fn symbol_count(len: u64, a: &Alphabet) -> u64 {
    match a {
        Alphabet::Bits => len.saturating_mul(8),
        _ => len,
    }
}

/// DNA split: the 2-bit bases, and the runs of other bytes as `(gap, length, bytes)` records.
pub fn split_dna(data: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let mut bases = Vec::with_capacity(data.len());
    let mut side = Vec::new();
    let mut gap = 0u64;
    let mut i = 0;
    while i < data.len() {
        if is_base(data[i]) {
            bases.push(base_code(data[i]));
            gap += 1;
            i += 1;
        } else {
            let start = i;
            while i < data.len() && !is_base(data[i]) {
                i += 1;
            }
            varint::put(&mut side, gap);
            varint::put(&mut side, (i - start) as u64);
            side.extend_from_slice(&data[start..i]);
            gap = 0;
        }
    }
    (bases, side)
}

/// Number of bytes the side stream's runs hold (so the decoder knows how many bases follow).
pub fn dna_side_bytes(side: &[u8]) -> Result<u64> {
    let mut r = Reader::new(side);
    let mut total = 0u64;
    while !r.rest().is_empty() {
        r.varint("DNA side stream gap")?;
        let len = r.varint("DNA side stream run")?;
        r.bytes(len as usize, "DNA side stream bytes")?;
        total += len;
    }
    Ok(total)
}

/// DNA merge: the inverse of [`split_dna`].
pub fn merge_dna(bases: &[u8], side: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(bases.len() + side.len());
    let mut r = Reader::new(side);
    let mut b = 0usize;
    let bad = || ZipError::Corrupt("DNA side stream does not fit the bases".into());
    while !r.rest().is_empty() {
        let gap = r.varint("DNA side stream gap")? as usize;
        let len = r.varint("DNA side stream run")? as usize;
        let end = b
            .checked_add(gap)
            .filter(|&e| e <= bases.len())
            .ok_or_else(bad)?;
        out.extend(bases[b..end].iter().map(|&s| BASES[(s & 3) as usize]));
        b = end;
        out.extend_from_slice(r.bytes(len, "DNA side stream bytes")?);
    }
    out.extend(bases[b..].iter().map(|&s| BASES[(s & 3) as usize]));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dna_split_and_merge_round_trip_with_headers_and_odd_letters() {
        let fasta = b">chr1 test\nACGTNNacgtACGT\nGATTACA\n\n>x\nTTTT";
        let (bases, side) = split_dna(fasta);
        assert!(bases.iter().all(|&b| b < 4));
        assert_eq!(
            dna_side_bytes(&side).unwrap() as usize + bases.len(),
            fasta.len()
        );
        assert_eq!(merge_dna(&bases, &side).unwrap(), fasta);
        let (b2, s2) = split_dna(b"");
        assert_eq!(merge_dna(&b2, &s2).unwrap(), b"");
    }

    #[test]
    fn detection() {
        assert_eq!(
            detect(&[0, 1, 1, 0], AlphabetChoice::Auto),
            Alphabet::Symbols(vec![0, 1])
        );
        assert_eq!(detect(b"ACGTACGTAC", AlphabetChoice::Auto), Alphabet::Dna);
        let text: Vec<u8> = (0..=255u8).collect();
        assert_eq!(detect(&text, AlphabetChoice::Auto), Alphabet::Bytes);
        assert_eq!(Alphabet::Symbols(vec![1, 2, 3]).width(), 2);
        assert_eq!(Alphabet::Symbols(vec![7]).width(), 1);
        assert_eq!(Alphabet::Symbols((0..16).collect()).width(), 4);
        let bits = to_symbols(&[0xa5, 0x01], &Alphabet::Bits);
        assert_eq!(
            from_symbols(&bits, &Alphabet::Bits).unwrap(),
            vec![0xa5, 0x01]
        );
    }
}
