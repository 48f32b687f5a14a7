//! The NumPy `.npy` format (versions 1-3), read and written without NumPy.
//!
//! strata parses the header itself rather than going through a generic array crate so that every
//! way a file can be wrong (truncated, integer dtype, object arrays, a shape that disagrees with
//! the byte count) becomes one precise error line instead of a panic or a vague type mismatch.

use half::f16;
use std::io::Write;

/// Element types strata accepts as activations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DType {
    /// IEEE half precision (`f2`).
    F16,
    /// bfloat16 (PyTorch's `torch.bfloat16`; no NumPy code): the top half of an f32.
    BF16,
    /// IEEE single precision (`f4`).
    F32,
    /// IEEE double precision (`f8`).
    F64,
}

impl DType {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            DType::F16 | DType::BF16 => 2,
            DType::F32 => 4,
            DType::F64 => 8,
        }
    }
}

/// A parsed `.npy` header.
#[derive(Clone, Debug, PartialEq)]
pub struct NpyHeader {
    /// Element type (`descr`).
    pub dtype: DType,
    /// Elements stored big-endian (`>` in `descr`); strata converts them when reading.
    pub big_endian: bool,
    /// Column-major (Fortran) element order rather than row-major (C) order.
    pub fortran_order: bool,
    /// Array shape, first axis first.
    pub shape: Vec<usize>,
    /// Offset of the first data byte from the start of the file.
    pub data_offset: usize,
}

impl NpyHeader {
    /// Number of elements the shape describes.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// True when the shape holds no element.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes of data the header promises.
    pub fn data_len(&self) -> usize {
        self.len() * self.dtype.size()
    }
}

const MAGIC: &[u8] = b"\x93NUMPY";

/// True if `bytes` start like a `.npy` file.
pub fn is_npy(bytes: &[u8]) -> bool {
    bytes.starts_with(MAGIC)
}

/// The fields of a `.npy` header before its dtype is interpreted: shared by the float reader
/// ([`parse_header`]) and the integer one ([`read_ints`]).
struct RawHeader<'a> {
    /// `descr` as written (`<f4`, `|b1`, ...), for messages.
    descr: &'a str,
    /// `descr` without its byte-order character (`f4`, `b1`, ...).
    kind: &'a str,
    big_endian: bool,
    fortran_order: bool,
    shape: Vec<usize>,
    data_offset: usize,
}

/// Check the magic and version and parse the header dict at the start of `bytes`.
fn raw_header(bytes: &[u8]) -> Result<RawHeader<'_>, String> {
    if !is_npy(bytes) {
        return Err("not a .npy file (bad magic)".into());
    }
    if bytes.len() < 10 {
        return Err("truncated .npy header".into());
    }
    let major = bytes[6];
    let (len_size, header_len) = match major {
        1 => (2, u16::from_le_bytes([bytes[8], bytes[9]]) as usize),
        2 | 3 => {
            if bytes.len() < 12 {
                return Err("truncated .npy header".into());
            }
            (
                4,
                u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            )
        }
        v => return Err(format!("unsupported .npy format version {v}")),
    };
    let start: usize = 8 + len_size;
    let end = start
        .checked_add(header_len)
        .ok_or("corrupt .npy header length")?;
    if bytes.len() < end {
        return Err("truncated .npy header".into());
    }
    let text = std::str::from_utf8(&bytes[start..end]).map_err(|_| "non-UTF-8 .npy header")?;
    let descr = dict_value(text, "descr").ok_or("header has no 'descr'")?;
    let descr = descr.trim().trim_matches(|c| c == '\'' || c == '"');
    let fortran = dict_value(text, "fortran_order").ok_or("header has no 'fortran_order'")?;
    let fortran_order = match fortran.trim() {
        "True" => true,
        "False" => false,
        other => return Err(format!("bad fortran_order '{other}'")),
    };
    let shape_text = dict_value(text, "shape").ok_or("header has no 'shape'")?;
    let shape = parse_shape(shape_text)?;
    let (big_endian, kind) = match descr.as_bytes().first() {
        Some(b'<') | Some(b'|') | Some(b'=') => (false, &descr[1..]),
        Some(b'>') => (true, &descr[1..]),
        _ => (false, descr),
    };
    Ok(RawHeader {
        descr,
        kind,
        big_endian,
        fortran_order,
        shape,
        data_offset: end,
    })
}

/// Bytes from the file's start to the end of the data `shape` promises in `size`-byte
/// elements after `offset`, or an error when that does not fit a `usize`.
fn data_end(shape: &[usize], size: usize, offset: usize) -> Result<usize, String> {
    shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .and_then(|n| n.checked_mul(size))
        .and_then(|bytes| bytes.checked_add(offset))
        .ok_or_else(|| "shape too large".to_string())
}

/// Parse the header at the start of `bytes`. Errors are plain messages; callers add the path.
pub fn parse_header(bytes: &[u8]) -> Result<NpyHeader, String> {
    let raw = raw_header(bytes)?;
    let dtype = match raw.kind {
        "f2" => DType::F16,
        "f4" => DType::F32,
        "f8" => DType::F64,
        _ => {
            return Err(format!(
                "dtype '{}' is not a float array; strata reads float16, float32 and float64 \
                 (convert with arr.astype(np.float32))",
                raw.descr
            ))
        }
    };
    data_end(&raw.shape, dtype.size(), raw.data_offset)?;
    Ok(NpyHeader {
        dtype,
        big_endian: raw.big_endian,
        fortran_order: raw.fortran_order,
        shape: raw.shape,
        data_offset: raw.data_offset,
    })
}

/// The text of a value in NumPy's header dict, up to the next top-level comma or the closing
/// brace. Tuples are kept whole.
fn dict_value<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    let pos = text
        .find(&format!("'{key}'"))
        .or_else(|| text.find(&format!("\"{key}\"")))?;
    let rest = &text[pos + key.len() + 2..];
    let rest = rest.trim_start().strip_prefix(':')?;
    let mut depth = 0i32;
    for (i, c) in rest.char_indices() {
        match c {
            '(' | '[' => depth += 1,
            ')' | ']' => depth -= 1,
            ',' | '}' if depth == 0 => return Some(&rest[..i]),
            _ => {}
        }
    }
    Some(rest)
}

fn parse_shape(text: &str) -> Result<Vec<usize>, String> {
    let inner = text
        .trim()
        .strip_prefix('(')
        .and_then(|t| t.strip_suffix(')'))
        .ok_or_else(|| format!("bad shape '{}'", text.trim()))?;
    inner
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<usize>()
                .map_err(|_| format!("bad shape '{}'", text.trim()))
        })
        .collect()
}

/// Convert raw little- or big-endian float bytes to f32. `bytes.len()` must be a multiple of the
/// element size.
pub fn to_f32(bytes: &[u8], dtype: DType, big_endian: bool) -> Vec<f32> {
    let mut out = Vec::with_capacity(bytes.len() / dtype.size());
    extend_f32(&mut out, bytes, dtype, big_endian);
    out
}

/// Append raw float bytes to `out` as f32, so that a stream can be converted chunk by chunk into
/// one preallocated buffer (no second copy of the raw bytes). A trailing partial element is
/// ignored: callers pass whole elements.
pub fn extend_f32(out: &mut Vec<f32>, bytes: &[u8], dtype: DType, big_endian: bool) {
    match (dtype, big_endian) {
        (DType::F32, false) => out.extend(
            bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
        ),
        (DType::F32, true) => out.extend(
            bytes
                .chunks_exact(4)
                .map(|c| f32::from_be_bytes([c[0], c[1], c[2], c[3]])),
        ),
        (DType::F64, be) => out.extend(bytes.chunks_exact(8).map(|c| {
            let a: [u8; 8] = [c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]];
            (if be {
                f64::from_be_bytes(a)
            } else {
                f64::from_le_bytes(a)
            }) as f32
        })),
        (DType::F16, be) => out.extend(bytes.chunks_exact(2).map(|c| {
            let bits = if be {
                u16::from_be_bytes([c[0], c[1]])
            } else {
                u16::from_le_bytes([c[0], c[1]])
            };
            f16::from_bits(bits).to_f32()
        })),
        // bf16 -> f32 is exact: the bf16 bits are the f32's upper 16 bits.
        (DType::BF16, be) => out.extend(bytes.chunks_exact(2).map(|c| {
            let bits = if be {
                u16::from_be_bytes([c[0], c[1]])
            } else {
                u16::from_le_bytes([c[0], c[1]])
            };
            f32::from_bits(u32::from(bits) << 16)
        })),
    }
}

/// Serialize a C-order f32 array as a version-1 `.npy` file into `out`.
pub fn write_f32(mut out: impl Write, shape: &[usize], data: &[f32]) -> std::io::Result<()> {
    write_header(&mut out, "<f4", shape)?;
    for v in data {
        out.write_all(&v.to_le_bytes())?;
    }
    Ok(())
}

/// Serialize a C-order f64 array as a version-1 `.npy` file into `out`.
pub fn write_f64(mut out: impl Write, shape: &[usize], data: &[f64]) -> std::io::Result<()> {
    write_header(&mut out, "<f8", shape)?;
    for v in data {
        out.write_all(&v.to_le_bytes())?;
    }
    Ok(())
}

/// Serialize a C-order i64 array (labels, indices) as a version-1 `.npy` file into `out`.
pub fn write_i64(mut out: impl Write, shape: &[usize], data: &[i64]) -> std::io::Result<()> {
    write_header(&mut out, "<i8", shape)?;
    for v in data {
        out.write_all(&v.to_le_bytes())?;
    }
    Ok(())
}

/// Serialize a C-order boolean array (membership masks) as a version-1 `.npy` file into `out`.
pub fn write_bool(mut out: impl Write, shape: &[usize], data: &[bool]) -> std::io::Result<()> {
    write_header(&mut out, "|b1", shape)?;
    let bytes: Vec<u8> = data.iter().map(|&b| u8::from(b)).collect();
    out.write_all(&bytes)
}

/// An integer or boolean `.npy` array (labels, masks) read whole: its shape (C order) and its
/// values as i64. Accepts `b1`, `i1`-`i8` and `u1`-`u8` of either byte order; a `u8` value
/// above `i64::MAX`, a float dtype or a truncated file is an error naming what was found.
pub fn read_ints(bytes: &[u8]) -> Result<(Vec<usize>, Vec<i64>), String> {
    let raw = raw_header(bytes)?;
    // (element size, signed, boolean)
    let (size, signed, boolean) = match raw.kind {
        "b1" | "?" => (1, false, true),
        "i1" => (1, true, false),
        "i2" => (2, true, false),
        "i4" => (4, true, false),
        "i8" => (8, true, false),
        "u1" => (1, false, false),
        "u2" => (2, false, false),
        "u4" => (4, false, false),
        "u8" => (8, false, false),
        "f2" | "f4" | "f8" => {
            return Err("holds floats; integer labels are needed (arr.astype(np.int64))".into())
        }
        _ => {
            return Err(format!(
                "dtype '{}' is not an integer or boolean array",
                raw.descr
            ))
        }
    };
    let offset = raw.data_offset;
    let need = data_end(&raw.shape, size, offset)?;
    if bytes.len() < need {
        return Err(format!(
            "truncated: the header promises {} data bytes, the file has {}",
            need - offset,
            bytes.len().saturating_sub(offset)
        ));
    }
    if raw.fortran_order && raw.shape.len() > 1 {
        return Err(
            "Fortran-ordered integer arrays are not supported (np.ascontiguousarray)".into(),
        );
    }
    let mut out = Vec::with_capacity((need - offset) / size);
    for c in bytes[offset..need].chunks_exact(size) {
        let mut b = [0u8; 8];
        if raw.big_endian {
            b[8 - size..].copy_from_slice(c);
            b.reverse();
        } else {
            b[..size].copy_from_slice(c);
        }
        let u = u64::from_le_bytes(b);
        let v = if boolean {
            i64::from(u != 0)
        } else if signed {
            // Sign-extend from `size` bytes.
            let shift = 64 - 8 * size as u32;
            ((u << shift) as i64) >> shift
        } else {
            i64::try_from(u)
                .map_err(|_| format!("value {u} does not fit a signed 64-bit integer"))?
        };
        out.push(v);
    }
    Ok((raw.shape, out))
}

fn write_header(out: &mut impl Write, descr: &str, shape: &[usize]) -> std::io::Result<()> {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let shape_text = match dims.len() {
        1 => format!("({},)", dims[0]),
        _ => format!("({})", dims.join(", ")),
    };
    let mut header =
        format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape_text}, }}");
    // NumPy pads the header with spaces so that the data starts on a 64-byte boundary.
    let total = 10 + header.len() + 1;
    header.push_str(&" ".repeat((64 - total % 64) % 64));
    header.push('\n');
    out.write_all(MAGIC)?;
    out.write_all(&[1, 0])?;
    out.write_all(&(header.len() as u16).to_le_bytes())?;
    out.write_all(header.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trip_and_alignment() {
        let mut buf = Vec::new();
        write_f32(&mut buf, &[3, 2, 2], &[0.0; 12]).unwrap();
        let h = parse_header(&buf).unwrap();
        assert_eq!(h.shape, vec![3, 2, 2]);
        assert_eq!(h.dtype, DType::F32);
        assert!(!h.fortran_order);
        assert_eq!(h.data_offset % 64, 0);
        assert_eq!(buf.len(), h.data_offset + 48);
    }

    #[test]
    fn numpy_style_headers() {
        let mk = |dict: &str| {
            let mut v = MAGIC.to_vec();
            v.extend_from_slice(&[1, 0]);
            v.extend_from_slice(&(dict.len() as u16).to_le_bytes());
            v.extend_from_slice(dict.as_bytes());
            v
        };
        let h = parse_header(&mk(
            "{'descr': '>f8', 'fortran_order': True, 'shape': (5, 7), }\n",
        ))
        .unwrap();
        assert_eq!(
            (h.dtype, h.big_endian, h.fortran_order, h.shape),
            (DType::F64, true, true, vec![5, 7])
        );
        let h = parse_header(&mk(
            "{'descr': '<f2', 'fortran_order': False, 'shape': (4,), }",
        ))
        .unwrap();
        assert_eq!(h.shape, vec![4]);
        let e = parse_header(&mk(
            "{'descr': '<i8', 'fortran_order': False, 'shape': (4, 2), }",
        ))
        .unwrap_err();
        assert!(e.contains("not a float array"), "{e}");
        assert!(parse_header(&mk(
            "{'descr': '<f4', 'fortran_order': False, 'shape': (4, x), }"
        ))
        .is_err());
        assert!(parse_header(&MAGIC[..5]).is_err());
        assert!(parse_header(
            &mk("{'descr': '<f4', 'fortran_order': False, 'shape': (4, 2), }")[..15]
        )
        .is_err());
    }

    #[test]
    fn conversions_match_direct_casts() {
        let vals = [1.5f64, -2.25, 1e-3, 65504.0];
        let le: Vec<u8> = vals.iter().flat_map(|v| v.to_le_bytes()).collect();
        let be: Vec<u8> = vals.iter().flat_map(|v| v.to_be_bytes()).collect();
        let want: Vec<f32> = vals.iter().map(|&v| v as f32).collect();
        assert_eq!(to_f32(&le, DType::F64, false), want);
        assert_eq!(to_f32(&be, DType::F64, true), want);
        let h: Vec<u8> = vals
            .iter()
            .flat_map(|&v| f16::from_f64(v).to_bits().to_le_bytes())
            .collect();
        let got = to_f32(&h, DType::F16, false);
        for (g, w) in got.iter().zip(&want) {
            assert!((g - w).abs() <= w.abs() * 1e-3, "{g} vs {w}");
        }
    }

    #[test]
    fn integer_arrays_read_back() {
        let mut buf = Vec::new();
        let v = [0i64, -3, 7, i64::MAX, i64::MIN];
        write_i64(&mut buf, &[5], &v).unwrap();
        assert_eq!(read_ints(&buf).unwrap(), (vec![5], v.to_vec()));
        let mut buf = Vec::new();
        write_bool(&mut buf, &[2, 2], &[true, false, false, true]).unwrap();
        assert_eq!(read_ints(&buf).unwrap(), (vec![2, 2], vec![1, 0, 0, 1]));
        // Hand-made headers: big-endian i4 and unsigned bytes.
        let mk = |descr: &str, data: &[u8]| {
            let dict = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': (2,), }}");
            let mut b = MAGIC.to_vec();
            b.extend_from_slice(&[1, 0]);
            b.extend_from_slice(&(dict.len() as u16).to_le_bytes());
            b.extend_from_slice(dict.as_bytes());
            b.extend_from_slice(data);
            b
        };
        let be = mk(">i4", &[0xff, 0xff, 0xff, 0xfe, 0, 0, 1, 0]);
        assert_eq!(read_ints(&be).unwrap().1, vec![-2, 256]);
        assert_eq!(read_ints(&mk("|u1", &[200, 9])).unwrap().1, vec![200, 9]);
        assert!(read_ints(&mk("<i8", &[1, 2, 3]))
            .unwrap_err()
            .contains("truncated"));
        assert!(read_ints(&mk("<u8", &[0xff; 16]))
            .unwrap_err()
            .contains("does not fit"));
        let mut f = Vec::new();
        write_f32(&mut f, &[2], &[1.0, 2.0]).unwrap();
        assert!(read_ints(&f).unwrap_err().contains("floats"));
        assert!(read_ints(b"not npy").is_err());
    }
}
