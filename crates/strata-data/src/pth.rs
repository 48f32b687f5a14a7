//! PyTorch `.pt`/`.pth` files as `torch.save` writes them (a zip archive holding `data.pkl` and
//! one raw entry per storage), read without Python.
//!
//! `data.pkl` is a pickle: a program for a stack machine. strata runs the small subset of it that
//! `torch.save` emits for tensors, dicts, lists and tuples, under fixed budgets (pickle size,
//! nesting depth, objects built, objects visited) so that a hostile file ends in an error, never in
//! an exponential blow-up, a huge allocation or a stack overflow. Memoized objects are shared
//! (`Rc`), never deep-copied. Anything else the pickle builds (classes, modules, numbers) is kept
//! as an opaque value and skipped when tensors are listed.

use crate::npy::DType;
use crate::{DataError, Result};
use std::collections::HashMap;
use std::io::Read;
use std::path::Path;
use std::rc::Rc;

/// Largest `data.pkl` strata reads (a state dict of 100,000 tensors is a few MiB).
const MAX_PICKLE: u64 = 64 << 20;
/// Deepest nesting of containers the pickle may build.
const MAX_DEPTH: u32 = 64;
/// Objects (container cells, memo entries) the pickle may build in all.
const MAX_CELLS: usize = 1 << 22;
/// Objects visited when listing tensors (bounds walks of shared sub-trees).
const MAX_VISITS: usize = 1 << 20;

/// One tensor found in a `.pt` file.
#[derive(Clone, Debug)]
pub(crate) struct PthTensor {
    /// Dotted key path (empty for a bare tensor).
    pub name: String,
    /// Zip entry holding the tensor's storage.
    pub entry: String,
    /// Byte offset of the tensor's first element inside that entry.
    pub byte_offset: u64,
    /// Element type.
    pub dtype: DType,
    /// Elements are stored big-endian (the archive's `byteorder` says `big`).
    pub big_endian: bool,
    /// Full shape, first axis first.
    pub shape: Vec<usize>,
}

/// True when the zip entry names look like a `torch.save` archive.
pub(crate) fn is_pth_entries<'a>(mut names: impl Iterator<Item = &'a [u8]>) -> bool {
    names.any(|n| n == b"data.pkl" || n.ends_with(b"/data.pkl"))
}

struct StorageRef {
    kind: String,
    key: String,
    numel: i64,
}

struct TensorRef {
    storage: Rc<StorageRef>,
    offset: i64,
    size: Vec<i64>,
    stride: Vec<i64>,
}

#[derive(Clone)]
enum Obj {
    None,
    Int(i64),
    Str(Rc<str>),
    Global(Rc<(String, String)>),
    Tuple(Rc<Vec<Obj>>, u32),
    List(Rc<Vec<Obj>>, u32),
    Dict(Rc<Vec<(Obj, Obj)>>, u32),
    Storage(Rc<StorageRef>),
    Tensor(Rc<TensorRef>),
    /// Anything strata does not need: numbers, bytes, objects of other classes.
    Other,
}

impl Obj {
    fn depth(&self) -> u32 {
        match self {
            Obj::Tuple(_, d) | Obj::List(_, d) | Obj::Dict(_, d) => *d,
            _ => 0,
        }
    }
}

struct Machine<'a> {
    data: &'a [u8],
    pos: usize,
    stack: Vec<Obj>,
    marks: Vec<usize>,
    memo: HashMap<u32, Obj>,
    cells: usize,
}

type VmResult<T> = std::result::Result<T, String>;

impl<'a> Machine<'a> {
    fn take(&mut self, k: usize) -> VmResult<&'a [u8]> {
        let end = self
            .pos
            .checked_add(k)
            .filter(|&e| e <= self.data.len())
            .ok_or("data.pkl is truncated")?;
        let s = &self.data[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn u8(&mut self) -> VmResult<u8> {
        Ok(self.take(1)?[0])
    }

    fn le(&mut self, k: usize) -> VmResult<u64> {
        let b = self.take(k)?;
        Ok(b.iter().rev().fold(0u64, |a, &x| (a << 8) | u64::from(x)))
    }

    fn line(&mut self) -> VmResult<String> {
        let rest = &self.data[self.pos..];
        let n = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or("data.pkl is truncated")?;
        let s = String::from_utf8_lossy(&rest[..n]).into_owned();
        self.pos += n + 1;
        Ok(s)
    }

    fn charge(&mut self, k: usize) -> VmResult<()> {
        self.cells = self.cells.saturating_add(k);
        if self.cells > MAX_CELLS {
            return Err(format!(
                "data.pkl builds more than {MAX_CELLS} objects (corrupt or hostile file)"
            ));
        }
        Ok(())
    }

    fn push(&mut self, o: Obj) {
        self.stack.push(o);
    }

    fn pop(&mut self) -> VmResult<Obj> {
        if self.marks.last().is_some_and(|&m| m >= self.stack.len()) {
            return Err("data.pkl pops past a mark (corrupt file)".into());
        }
        self.stack
            .pop()
            .ok_or_else(|| "data.pkl pops an empty stack (corrupt file)".into())
    }

    fn pop_mark(&mut self) -> VmResult<Vec<Obj>> {
        let m = self
            .marks
            .pop()
            .ok_or("data.pkl has no mark to pop to (corrupt file)")?;
        if m > self.stack.len() {
            return Err("data.pkl has a bad mark (corrupt file)".into());
        }
        Ok(self.stack.split_off(m))
    }

    fn container_depth(&self, items: &[Obj]) -> VmResult<u32> {
        let d = items.iter().map(Obj::depth).max().unwrap_or(0) + 1;
        if d > MAX_DEPTH {
            return Err(format!(
                "data.pkl nests containers deeper than {MAX_DEPTH} (corrupt or hostile file)"
            ));
        }
        Ok(d)
    }

    fn tuple(&mut self, items: Vec<Obj>) -> VmResult<Obj> {
        self.charge(items.len())?;
        let d = self.container_depth(&items)?;
        Ok(Obj::Tuple(Rc::new(items), d))
    }

    fn str(&mut self, len: u64) -> VmResult<Obj> {
        let len = usize::try_from(len).map_err(|_| "data.pkl is truncated")?;
        let b = self.take(len)?;
        Ok(Obj::Str(Rc::from(String::from_utf8_lossy(b).as_ref())))
    }

    fn memo_put(&mut self, id: u32) -> VmResult<()> {
        let top = self.stack.last().cloned().ok_or("memo of an empty stack")?;
        self.charge(1)?;
        self.memo.insert(id, top);
        Ok(())
    }

    fn memo_get(&mut self, id: u32) -> VmResult<()> {
        let o = self
            .memo
            .get(&id)
            .cloned()
            .ok_or_else(|| format!("data.pkl refers to a missing memo entry {id}"))?;
        self.charge(1)?;
        self.push(o);
        Ok(())
    }

    /// Append items to the list on top of the stack (copy-on-write when it is shared).
    fn extend_list(&mut self, items: Vec<Obj>) -> VmResult<()> {
        let d = self.container_depth(&items)?;
        let mut top = self.stack.pop().ok_or("append to an empty stack")?;
        if let Obj::List(v, depth) = &mut top {
            let copy = if Rc::strong_count(v) > 1 { v.len() } else { 0 };
            self.charge(copy + items.len())?;
            Rc::make_mut(v).extend(items);
            *depth = (*depth).max(d);
        }
        self.stack.push(top);
        Ok(())
    }

    /// Set items of the dict on top of the stack (copy-on-write when it is shared).
    fn set_items(&mut self, items: Vec<Obj>) -> VmResult<()> {
        if !items.len().is_multiple_of(2) {
            return Err("data.pkl sets an odd number of dict items (corrupt file)".into());
        }
        let d = self.container_depth(&items)?;
        let mut top = self.stack.pop().ok_or("set items on an empty stack")?;
        if let Obj::Dict(v, depth) = &mut top {
            let copy = if Rc::strong_count(v) > 1 { v.len() } else { 0 };
            self.charge(copy + items.len())?;
            let v = Rc::make_mut(v);
            let mut it = items.into_iter();
            while let (Some(k), Some(val)) = (it.next(), it.next()) {
                v.push((k, val));
            }
            *depth = (*depth).max(d);
        }
        self.stack.push(top);
        Ok(())
    }

    fn reduce(&mut self, callable: Obj, args: Obj) -> VmResult<Obj> {
        let Obj::Global(g) = &callable else {
            return Ok(Obj::Other);
        };
        let args = match &args {
            Obj::Tuple(a, _) => a.clone(),
            _ => return Ok(Obj::Other),
        };
        match (g.0.as_str(), g.1.as_str()) {
            ("collections", "OrderedDict") => Ok(Obj::Dict(Rc::new(Vec::new()), 1)),
            ("torch._utils", "_rebuild_tensor_v2") | ("torch._utils", "_rebuild_tensor") => {
                rebuild_tensor(&args)
            }
            // (data, requires_grad, backward_hooks, ...): the tensor is the data.
            ("torch._utils", "_rebuild_parameter")
            | ("torch._utils", "_rebuild_parameter_with_state") => {
                Ok(args.first().cloned().unwrap_or(Obj::Other))
            }
            // (func, new_type, args, state): a tensor subclass rebuilt by func(*args).
            ("torch._tensor", "_rebuild_from_type_v2") => match (args.first(), args.get(2)) {
                (Some(f), Some(a)) => self.reduce(f.clone(), a.clone()),
                _ => Ok(Obj::Other),
            },
            _ => Ok(Obj::Other),
        }
    }

    fn run(mut self) -> VmResult<Obj> {
        loop {
            let op = self.u8()?;
            match op {
                0x80 => {
                    self.u8()?; // PROTO
                }
                0x95 => {
                    self.le(8)?; // FRAME: a hint only
                }
                b'.' => return self.pop(),
                b'(' => self.marks.push(self.stack.len()),
                b'}' => self.push(Obj::Dict(Rc::new(Vec::new()), 1)),
                b']' => self.push(Obj::List(Rc::new(Vec::new()), 1)),
                b')' => self.push(Obj::Tuple(Rc::new(Vec::new()), 1)),
                b't' => {
                    let items = self.pop_mark()?;
                    let t = self.tuple(items)?;
                    self.push(t)
                }
                0x85..=0x87 => {
                    let k = usize::from(op - 0x84);
                    let mut items = Vec::with_capacity(k);
                    for _ in 0..k {
                        items.push(self.pop()?);
                    }
                    items.reverse();
                    let t = self.tuple(items)?;
                    self.push(t)
                }
                b'l' => {
                    let items = self.pop_mark()?;
                    self.charge(items.len())?;
                    let d = self.container_depth(&items)?;
                    self.push(Obj::List(Rc::new(items), d))
                }
                b'd' => {
                    let items = self.pop_mark()?;
                    self.push(Obj::Dict(Rc::new(Vec::new()), 1));
                    self.set_items(items)?
                }
                b'a' => {
                    let v = self.pop()?;
                    self.extend_list(vec![v])?
                }
                b'e' => {
                    let items = self.pop_mark()?;
                    self.extend_list(items)?
                }
                b's' => {
                    let v = self.pop()?;
                    let k = self.pop()?;
                    self.set_items(vec![k, v])?
                }
                b'u' => {
                    let items = self.pop_mark()?;
                    self.set_items(items)?
                }
                b'X' => {
                    let n = self.le(4)?;
                    let s = self.str(n)?;
                    self.push(s)
                }
                0x8c | b'U' => {
                    let n = self.le(1)?;
                    let s = self.str(n)?;
                    self.push(s)
                }
                0x8d | b'T' => {
                    let n = self.le(if op == b'T' { 4 } else { 8 })?;
                    let s = self.str(n)?;
                    self.push(s)
                }
                b'C' | b'B' | 0x8e => {
                    let n = self.le(match op {
                        b'C' => 1,
                        b'B' => 4,
                        _ => 8,
                    })?;
                    self.take(usize::try_from(n).map_err(|_| "data.pkl is truncated")?)?;
                    self.push(Obj::Other)
                }
                b'K' => {
                    let v = self.le(1)?;
                    self.push(Obj::Int(v as i64))
                }
                b'M' => {
                    let v = self.le(2)?;
                    self.push(Obj::Int(v as i64))
                }
                b'J' => {
                    let v = self.le(4)? as u32 as i32;
                    self.push(Obj::Int(i64::from(v)))
                }
                0x8a | 0x8b => {
                    let n = self.le(if op == 0x8a { 1 } else { 4 })?;
                    let n = usize::try_from(n).map_err(|_| "data.pkl is truncated")?;
                    let b = self.take(n)?;
                    if n == 0 {
                        self.push(Obj::Int(0))
                    } else if n <= 8 {
                        // Little-endian two's complement, sign-extended.
                        let mut v: i64 = if b[n - 1] & 0x80 != 0 { -1 } else { 0 };
                        for &x in b.iter().rev() {
                            v = (v << 8) | i64::from(x);
                        }
                        self.push(Obj::Int(v))
                    } else {
                        self.push(Obj::Other)
                    }
                }
                b'G' => {
                    self.take(8)?;
                    self.push(Obj::Other)
                }
                b'N' => self.push(Obj::None),
                0x88 => self.push(Obj::Int(1)),
                0x89 => self.push(Obj::Int(0)),
                b'c' => {
                    let module = self.line()?;
                    let name = self.line()?;
                    self.push(Obj::Global(Rc::new((module, name))))
                }
                0x93 => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    match (module, name) {
                        (Obj::Str(m), Obj::Str(n)) => {
                            self.push(Obj::Global(Rc::new((m.to_string(), n.to_string()))))
                        }
                        _ => return Err("data.pkl: STACK_GLOBAL needs two strings".into()),
                    }
                }
                b'q' => {
                    let id = self.le(1)? as u32;
                    self.memo_put(id)?
                }
                b'r' => {
                    let id = self.le(4)? as u32;
                    self.memo_put(id)?
                }
                0x94 => {
                    let id = u32::try_from(self.memo.len()).map_err(|_| "memo too large")?;
                    self.memo_put(id)?
                }
                b'h' => {
                    let id = self.le(1)? as u32;
                    self.memo_get(id)?
                }
                b'j' => {
                    let id = self.le(4)? as u32;
                    self.memo_get(id)?
                }
                b'Q' => {
                    let pid = self.pop()?;
                    let s = persistent_storage(&pid)?;
                    self.push(s)
                }
                b'R' => {
                    let args = self.pop()?;
                    let callable = self.pop()?;
                    let o = self.reduce(callable, args)?;
                    self.push(o)
                }
                0x81 => {
                    self.pop()?;
                    self.pop()?;
                    self.push(Obj::Other)
                }
                b'b' => {
                    // BUILD sets an object's state (a state dict's `_metadata`): not needed.
                    self.pop()?;
                    if self.stack.is_empty() {
                        return Err("data.pkl: BUILD on an empty stack".into());
                    }
                }
                b'0' => {
                    self.pop()?;
                }
                b'1' => {
                    self.pop_mark()?;
                }
                b'2' => {
                    let top = self.stack.last().cloned().ok_or("DUP of an empty stack")?;
                    self.charge(1)?;
                    self.push(top)
                }
                other => {
                    return Err(format!(
                        "data.pkl uses pickle opcode 0x{other:02x} at byte {}, which strata does \
                         not read (save tensors or a dict of tensors with torch.save)",
                        self.pos - 1
                    ))
                }
            }
        }
    }
}

/// `('storage', torch.FloatStorage, key, location, numel)`.
fn persistent_storage(pid: &Obj) -> VmResult<Obj> {
    let Obj::Tuple(t, _) = pid else {
        return Ok(Obj::Other);
    };
    match t.as_slice() {
        [Obj::Str(tag), Obj::Global(g), Obj::Str(key), _, Obj::Int(numel), ..]
            if tag.as_ref() == "storage" =>
        {
            Ok(Obj::Storage(Rc::new(StorageRef {
                kind: g.1.clone(),
                key: key.to_string(),
                numel: *numel,
            })))
        }
        _ => Ok(Obj::Other),
    }
}

fn ints(o: &Obj) -> Option<Vec<i64>> {
    match o {
        Obj::Tuple(t, _) => t
            .iter()
            .map(|x| match x {
                Obj::Int(v) => Some(*v),
                _ => None,
            })
            .collect(),
        _ => None,
    }
}

/// `_rebuild_tensor_v2(storage, storage_offset, size, stride, ...)`.
fn rebuild_tensor(args: &[Obj]) -> VmResult<Obj> {
    match args {
        [Obj::Storage(s), Obj::Int(offset), size, stride, ..] => {
            let (Some(size), Some(stride)) = (ints(size), ints(stride)) else {
                return Err("data.pkl: a tensor's size or stride is not a tuple of ints".into());
            };
            Ok(Obj::Tensor(Rc::new(TensorRef {
                storage: s.clone(),
                offset: *offset,
                size,
                stride,
            })))
        }
        _ => Err("data.pkl: a tensor is rebuilt from arguments strata does not know".into()),
    }
}

/// Collect tensors under `o`, naming them by dotted key paths.
fn collect(o: &Obj, prefix: &str, out: &mut Vec<(String, Rc<TensorRef>)>, visits: &mut usize) {
    *visits += 1;
    if *visits > MAX_VISITS {
        return;
    }
    let join = |k: &str| {
        if prefix.is_empty() {
            k.to_string()
        } else {
            format!("{prefix}.{k}")
        }
    };
    match o {
        Obj::Tensor(t) => out.push((prefix.to_string(), t.clone())),
        Obj::Dict(items, _) => {
            for (k, v) in items.iter() {
                let key = match k {
                    Obj::Str(s) => s.to_string(),
                    Obj::Int(i) => i.to_string(),
                    _ => continue,
                };
                collect(v, &join(&key), out, visits);
            }
        }
        Obj::List(items, _) | Obj::Tuple(items, _) => {
            for (i, v) in items.iter().enumerate() {
                collect(v, &join(&i.to_string()), out, visits);
            }
        }
        _ => {}
    }
}

fn storage_dtype(kind: &str) -> std::result::Result<DType, String> {
    Ok(match kind {
        "FloatStorage" => DType::F32,
        "DoubleStorage" => DType::F64,
        "HalfStorage" => DType::F16,
        "BFloat16Storage" => DType::BF16,
        other => {
            let torch = match other {
                "LongStorage" => "int64",
                "IntStorage" => "int32",
                "ShortStorage" => "int16",
                "CharStorage" => "int8",
                "ByteStorage" => "uint8",
                "BoolStorage" => "bool",
                "ComplexFloatStorage" => "complex64",
                "ComplexDoubleStorage" => "complex128",
                _ => other,
            };
            return Err(torch.to_string());
        }
    })
}

/// Read the tensor list of a `torch.save` archive. `file_len` bounds every entry's size.
pub(crate) fn describe(
    path: &Path,
    zip: &mut zip::ZipArchive<std::fs::File>,
    file_len: u64,
) -> Result<Vec<PthTensor>> {
    let names: Vec<String> = zip
        .file_names_raw()
        .map(|n| String::from_utf8_lossy(n).into_owned())
        .collect();
    let pkl = names
        .iter()
        .find(|n| n.as_str() == "data.pkl" || n.ends_with("/data.pkl"))
        .cloned()
        .ok_or_else(|| DataError::corrupt(path, "no data.pkl in the archive"))?;
    let prefix = pkl.strip_suffix("data.pkl").unwrap_or("").to_string();
    let bytes = read_small(path, zip, &pkl, MAX_PICKLE, file_len)?;
    let big_endian = if names.contains(&format!("{prefix}byteorder")) {
        let b = read_small(path, zip, &format!("{prefix}byteorder"), 16, file_len)?;
        match b.as_slice() {
            b"little" => false,
            b"big" => true,
            _ => return Err(DataError::corrupt(path, "bad byteorder entry")),
        }
    } else {
        cfg!(target_endian = "big")
    };
    let machine = Machine {
        data: &bytes,
        pos: 0,
        stack: Vec::new(),
        marks: Vec::new(),
        memo: HashMap::new(),
        cells: 0,
    };
    let root = machine
        .run()
        .map_err(|m| DataError::corrupt(path, format!("not a readable torch.save file: {m}")))?;
    let mut found = Vec::new();
    let mut visits = 0;
    collect(&root, "", &mut found, &mut visits);
    if visits > MAX_VISITS {
        return Err(DataError::corrupt(
            path,
            format!("data.pkl holds more than {MAX_VISITS} objects to list (hostile file?)"),
        ));
    }
    let mut out = Vec::with_capacity(found.len());
    for (name, t) in found {
        out.push(check_tensor(
            path, zip, &prefix, name, &t, big_endian, file_len,
        )?);
    }
    Ok(out)
}

fn check_tensor(
    path: &Path,
    zip: &mut zip::ZipArchive<std::fs::File>,
    prefix: &str,
    name: String,
    t: &TensorRef,
    big_endian: bool,
    file_len: u64,
) -> Result<PthTensor> {
    let shown = if name.is_empty() { "tensor" } else { &name };
    let bad = |m: String| DataError::corrupt(path, format!("tensor '{shown}': {m}"));
    let dtype = storage_dtype(&t.storage.kind).map_err(|d| {
        DataError::invalid(
            path,
            format!(
                "tensor '{shown}' has dtype {d}; strata reads activations stored as float16, \
                 bfloat16, float32 or float64 (convert with tensor.float())"
            ),
        )
    })?;
    let to_usize =
        |v: &[i64]| -> Option<Vec<usize>> { v.iter().map(|&x| usize::try_from(x).ok()).collect() };
    let shape = to_usize(&t.size).ok_or_else(|| bad(format!("bad size {:?}", t.size)))?;
    let stride = to_usize(&t.stride).ok_or_else(|| bad(format!("bad stride {:?}", t.stride)))?;
    let offset = usize::try_from(t.offset).map_err(|_| bad("negative offset".into()))?;
    let numel_storage =
        usize::try_from(t.storage.numel).map_err(|_| bad("negative storage size".into()))?;
    let numel = shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| bad(format!("shape {shape:?} is too large")))?;
    if stride.len() != shape.len() {
        return Err(bad("size and stride differ in rank".into()));
    }
    // Only C-contiguous tensors (dims of size 1 may carry any stride).
    let mut want = 1usize;
    for (&d, &s) in shape.iter().zip(&stride).rev() {
        if d != 1 && s != want && numel != 0 {
            return Err(DataError::invalid(
                path,
                format!(
                    "tensor '{shown}' is not contiguous (size {shape:?}, stride {stride:?}); \
                     save tensor.contiguous()"
                ),
            ));
        }
        want = want.saturating_mul(d);
    }
    let size = dtype.size();
    offset
        .checked_add(numel)
        .filter(|&e| e <= numel_storage)
        .ok_or_else(|| bad("lies outside its storage".into()))?;
    let storage_bytes = numel_storage
        .checked_mul(size)
        .ok_or_else(|| bad("storage is too large".into()))?;
    let entry = format!("{prefix}data/{}", t.storage.key);
    let f = zip
        .by_name(&entry)
        .map_err(|e| bad(format!("storage entry '{entry}': {e}")))?;
    let (declared, compressed) = (f.size(), f.compressed_size());
    if declared != storage_bytes as u64 {
        return Err(bad(format!(
            "its storage needs {storage_bytes} bytes but the zip entry holds {declared} \
             (truncated or corrupt file)"
        )));
    }
    if compressed > file_len {
        return Err(bad(format!(
            "its zip entry claims {compressed} bytes, more than the file's {file_len} \
             (truncated or corrupt file)"
        )));
    }
    crate::source::check_ratio(path, shown, f.compression(), declared, compressed)?;
    Ok(PthTensor {
        name,
        entry,
        byte_offset: (offset as u64).saturating_mul(size as u64),
        dtype,
        big_endian,
        shape,
    })
}

/// Read a small zip entry whole, checking its declared size first.
fn read_small(
    path: &Path,
    zip: &mut zip::ZipArchive<std::fs::File>,
    name: &str,
    cap: u64,
    file_len: u64,
) -> Result<Vec<u8>> {
    let f = zip
        .by_name(name)
        .map_err(|e| DataError::corrupt(path, format!("zip entry '{name}': {e}")))?;
    let (declared, compressed) = (f.size(), f.compressed_size());
    if declared > cap || compressed > file_len {
        return Err(DataError::corrupt(
            path,
            format!("zip entry '{name}' claims {declared} bytes (at most {cap} are read)"),
        ));
    }
    crate::source::check_ratio(path, name, f.compression(), declared, compressed)?;
    let mut out = Vec::with_capacity(declared as usize);
    f.take(declared)
        .read_to_end(&mut out)
        .map_err(|e| DataError::corrupt(path, format!("zip entry '{name}': {e}")))?;
    if out.len() as u64 != declared {
        return Err(DataError::corrupt(
            path,
            format!("zip entry '{name}' is truncated"),
        ));
    }
    Ok(out)
}
