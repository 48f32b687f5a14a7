//! `[compression]`: lossless compression experiments in the manner of DeepZip (Goyal et al.
//! 2019): every source (files, and synthetic sources with known entropy rates) compressed by
//! every predictor `strata zip` offers (context mixing, LSTM/GRU trained while coding, their
//! mixes) and by the classic compressors, each output decoded and compared before it counts.
//!
//! Sources and predictors are lists whose items are strings or inline tables; every item is
//! checked here, with the line it is on, and reuses strata-zip's own names and checks: a
//! predictor is what `strata zip compress --model` accepts ([`ModelSpec::parse`]), a generator is
//! what `strata zip gen` accepts ([`gen::parse_source`]).

use super::{Ctx, SpecError};
use serde::{Deserialize, Serialize};
use std::ops::Range;
use std::path::{Path, PathBuf};
use strata_zip::{gen, ModelSpec};
use toml::Spanned;

/// Most symbols one synthetic source may have (100 MB, one symbol per byte).
pub const MAX_LENGTH: u64 = 100_000_000;
/// Largest file (or `limit`) one source may compress: 1 GiB.
pub const MAX_FILE_BYTES: u64 = 1 << 30;
/// Most sources, and most predictors, in one section.
pub const MAX_ITEMS: usize = 64;
/// Most points of a learning curve.
pub const MAX_CURVE_POINTS: usize = 1000;
/// Points of a learning curve when `curve_points` is not given.
pub const DEFAULT_CURVE_POINTS: usize = 50;

/// The compressors `[compression] baselines` runs when it is not given: the classic four. It may
/// also name the neural tools `strata zip bench` runs ([`crate::zip::bench::baseline_names`]:
/// lstm-compress, cmix, nncp), each run as that command runs it.
pub const BASELINES: [&str; 4] = ["gzip", "bzip2", "xz", "zstd"];

/// Generators by their spec name, and the name `strata zip gen` knows them by, with the
/// parameters each takes.
const GENERATORS: [(&str, &str, &[&str]); 6] = [
    ("xor", "xor", &["k"]),
    ("markov", "markov", &["alphabet", "order"]),
    ("hmm", "hmm", &["states", "alphabet"]),
    ("fibonacci", "lfib", &["j", "k", "bits"]),
    ("lfib", "lfib", &["j", "k", "bits"]),
    ("iid", "iid", &["alphabet", "entropy"]),
];

/// The parameters of a network, in the order `strata zip` writes them.
const NET_KEYS: [&str; 5] = ["layers", "hidden", "bptt", "lr", "seed"];

/// `[compression]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompressionSpec {
    /// What to compress: file paths (strings, relative to the spec), `{ file = PATH, limit = N,
    /// name = NAME }`, or generators `{ generator = "xor", k = 20, length = 100000, seed = 1 }`.
    pub sources: Option<Spanned<Vec<Spanned<toml::Value>>>>,
    /// Predictors: `strata zip --model` strings (`"cm"`, `"lstm:hidden=64,bptt=32"`,
    /// `"cm+lstm"`) or `{ model = "lstm", layers = 1, hidden = 32, bptt = 16, lr = 0.01, seed =
    /// 0, name = NAME }` (default `["cm"]`).
    pub predictors: Option<Spanned<Vec<Spanned<toml::Value>>>>,
    /// Compressors to compare with: any of gzip, bzip2, xz, zstd, lstm-compress, cmix, nncp
    /// (default the first four; those not installed are noted in the report).
    pub baselines: Option<Spanned<Vec<Spanned<String>>>>,
    /// Default seed of the generators and of the networks' initial weights (default 0).
    pub seed: Option<Spanned<i64>>,
    /// Points of each learning curve (default 50).
    pub curve_points: Option<Spanned<i64>>,
}

/// A checked `[compression]` section.
#[derive(Clone, Debug, Serialize)]
pub struct CompressionPlan {
    /// The sources, in spec order, with unique names.
    pub sources: Vec<CompressionSource>,
    /// The predictors, in spec order, with unique names.
    pub predictors: Vec<Predictor>,
    /// Compressors by program name (`gzip`, `bzip2`, `xz`, `zstd`, `lstm-compress`, `cmix`,
    /// `nncp`), in spec order.
    pub baselines: Vec<String>,
    /// The section's seed (the default of every generator and network).
    pub seed: u64,
    /// Points of each learning curve.
    pub curve_points: usize,
    /// Line of the section's header, for errors found while running.
    #[serde(skip)]
    pub line: usize,
}

/// One source to compress.
#[derive(Clone, Debug, Serialize)]
pub struct CompressionSource {
    /// Its name in tables and figures.
    pub name: String,
    /// Where its bytes come from.
    pub input: SourceInput,
    /// Line of the item in the spec.
    #[serde(skip)]
    pub line: usize,
}

/// Where a source's bytes come from.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "lowercase", tag = "kind")]
pub enum SourceInput {
    /// A file, whole or its first `limit` bytes.
    File {
        /// The path as written.
        path: String,
        /// The path resolved against the spec's folder.
        file: PathBuf,
        /// Only the first `limit` bytes.
        limit: Option<u64>,
    },
    /// A synthetic source of strata-zip's [`gen`], one symbol per byte.
    Generator {
        /// The source as `strata zip gen` names it (`xor:k=20`), which
        /// [`gen::parse_source`] reads back.
        source: String,
        /// The source.
        #[serde(skip)]
        spec: gen::Source,
        /// Symbols generated.
        length: u64,
        /// Seed of the generator.
        seed: u64,
    },
}

/// One predictor: a name and the strata-zip model it stands for.
#[derive(Clone, Debug, Serialize)]
pub struct Predictor {
    /// Its name in tables and figures (as written, or `name`).
    pub name: String,
    /// The model's canonical name ([`ModelSpec::name`]).
    pub model: String,
    /// The model.
    #[serde(skip)]
    pub spec: ModelSpec,
}

/// Check the `[compression]` table; `spec_dir` is the folder file paths are relative to.
pub(super) fn check(
    cx: &Ctx,
    c: &Spanned<CompressionSpec>,
    spec_dir: &Path,
) -> Result<CompressionPlan, SpecError> {
    let span = c.span();
    let c = c.get_ref();
    let seed = match &c.seed {
        None => 0,
        Some(s) => u64::try_from(*s.get_ref()).map_err(|_| {
            cx.err(
                s.span(),
                format!(
                    "[compression] seed: a whole number >= 0 (got {})",
                    s.get_ref()
                ),
            )
        })?,
    };
    let curve_points = match &c.curve_points {
        None => DEFAULT_CURVE_POINTS,
        Some(p) => usize::try_from(*p.get_ref())
            .ok()
            .filter(|n| (1..=MAX_CURVE_POINTS).contains(n))
            .ok_or_else(|| {
                cx.err(
                    p.span(),
                    format!(
                        "[compression] curve_points: 1 to {MAX_CURVE_POINTS} points (got {})",
                        p.get_ref()
                    ),
                )
            })?,
    };
    let Some(raw) = &c.sources else {
        return Err(cx.err(
            span,
            "[compression] sources: list what to compress, e.g. sources = [\"book.txt\", \
             { generator = \"xor\", k = 20, length = 100000 }]"
                .into(),
        ));
    };
    let sources = sources(cx, raw, seed, spec_dir)?;
    let predictors = match &c.predictors {
        None => vec![Predictor {
            name: "cm".into(),
            model: ModelSpec::default().name(),
            spec: ModelSpec::default(),
        }],
        Some(p) => predictors(cx, p, seed)?,
    };
    let baselines = match &c.baselines {
        None => BASELINES.iter().map(|s| s.to_string()).collect(),
        Some(b) => baselines(cx, b)?,
    };
    Ok(CompressionPlan {
        sources,
        predictors,
        baselines,
        seed,
        curve_points,
        line: cx.line(span.start),
    })
}

/// An item of a list: its line, and whether it is an inline table (whose keys share its line).
struct Item<'a> {
    cx: &'a Ctx<'a>,
    span: Range<usize>,
    /// `sources` or `predictors`.
    list: &'static str,
}

impl Item<'_> {
    /// The line of `key` in this item: the item's own line for an inline table, else the key's
    /// line in the table (`[[compression.sources]]`).
    fn line(&self, key: &str) -> usize {
        let inline = self
            .cx
            .text
            .get(self.span.start..)
            .is_some_and(|t| t.starts_with('{'));
        if inline {
            self.cx.line(self.span.start)
        } else {
            self.cx.key_line(&self.span, key)
        }
    }

    /// An error about `key` of this item.
    fn err(&self, key: &str, msg: String) -> SpecError {
        self.cx.err_at(
            self.line(key),
            format!("[compression] {}: {msg}", self.list),
        )
    }
}

/// A value as an error message quotes it.
fn show(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => format!("{s:?}"),
        toml::Value::Integer(i) => i.to_string(),
        toml::Value::Float(f) => f.to_string(),
        toml::Value::Boolean(b) => b.to_string(),
        toml::Value::Datetime(d) => d.to_string(),
        toml::Value::Array(_) => "a list".into(),
        toml::Value::Table(_) => "a table".into(),
    }
}

/// A whole number in `lo..=hi` at `key` of table `t`, if there.
fn int(
    item: &Item,
    t: &toml::Table,
    key: &str,
    lo: i64,
    hi: i64,
    what: &str,
) -> Result<Option<i64>, SpecError> {
    let Some(v) = t.get(key) else {
        return Ok(None);
    };
    match v.as_integer() {
        Some(n) if (lo..=hi).contains(&n) => Ok(Some(n)),
        Some(n) => Err(item.err(key, format!("{key} = {n}: {what}"))),
        None => Err(item.err(key, format!("{key} = {}: {what}", show(v)))),
    }
}

/// A string at `key` of table `t`, if there.
fn string<'t>(item: &Item, t: &'t toml::Table, key: &str) -> Result<Option<&'t str>, SpecError> {
    match t.get(key) {
        None => Ok(None),
        Some(toml::Value::String(s)) => Ok(Some(s)),
        Some(v) => Err(item.err(key, format!("{key} = {}: must be a string", show(v)))),
    }
}

/// A name as given in `name`: one line, at most 64 characters.
fn name_key(item: &Item, t: &toml::Table) -> Result<Option<String>, SpecError> {
    let Some(n) = string(item, t, "name")? else {
        return Ok(None);
    };
    let n = n.trim();
    if n.is_empty() || n.chars().count() > 64 || n.chars().any(char::is_control) {
        return Err(item.err(
            "name",
            format!("name {n:?}: 1 to 64 characters on one line"),
        ));
    }
    Ok(Some(n.to_string()))
}

/// The first key of `t` not in `allowed`.
fn unknown_key<'t>(t: &'t toml::Table, allowed: &[&str]) -> Option<&'t str> {
    t.keys().map(String::as_str).find(|k| !allowed.contains(k))
}

fn sources(
    cx: &Ctx,
    raw: &Spanned<Vec<Spanned<toml::Value>>>,
    seed: u64,
    spec_dir: &Path,
) -> Result<Vec<CompressionSource>, SpecError> {
    let list = raw.get_ref();
    if list.is_empty() {
        return Err(cx.err(
            raw.span(),
            "[compression] sources: list at least one source".into(),
        ));
    }
    if list.len() > MAX_ITEMS {
        return Err(cx.err(
            raw.span(),
            format!(
                "[compression] sources: at most {MAX_ITEMS} sources (got {})",
                list.len()
            ),
        ));
    }
    let mut out: Vec<CompressionSource> = Vec::new();
    for v in list {
        let item = Item {
            cx,
            span: v.span(),
            list: "sources",
        };
        let s = match v.get_ref() {
            toml::Value::String(path) => file_source(&item, path, None, None, spec_dir)?,
            toml::Value::Table(t) => table_source(&item, t, seed, spec_dir)?,
            other => {
                return Err(item.err(
                    "",
                    format!(
                        "{} is neither a file path (a string) nor a table such as \
                         {{ generator = \"xor\", k = 20, length = 100000 }}",
                        show(other)
                    ),
                ))
            }
        };
        if out.iter().any(|o| o.name == s.name) {
            return Err(item.err(
                "name",
                format!(
                    "two sources are named '{}'; give one a name = \"...\"",
                    s.name
                ),
            ));
        }
        out.push(s);
    }
    Ok(out)
}

fn table_source(
    item: &Item,
    t: &toml::Table,
    seed: u64,
    spec_dir: &Path,
) -> Result<CompressionSource, SpecError> {
    let name = name_key(item, t)?;
    match (string(item, t, "file")?, string(item, t, "generator")?) {
        (Some(_), Some(_)) => Err(item.err(
            "generator",
            "a source is a file or a generator, not both".into(),
        )),
        (None, None) => Err(item.err(
            "",
            "a source table needs file = PATH or generator = KIND (xor, markov, hmm, fibonacci, \
             iid)"
                .into(),
        )),
        (Some(path), None) => {
            if let Some(k) = unknown_key(t, &["file", "name", "limit"]) {
                return Err(item.err(
                    k,
                    format!("unknown key '{k}' in a file source; use file, limit, name"),
                ));
            }
            let limit = int(
                item,
                t,
                "limit",
                1,
                MAX_FILE_BYTES as i64,
                &format!("the first 1 to {MAX_FILE_BYTES} bytes"),
            )?;
            file_source(item, path, limit.map(|n| n as u64), name, spec_dir)
        }
        (None, Some(kind)) => generator_source(item, t, kind, name, seed),
    }
}

fn file_source(
    item: &Item,
    path: &str,
    limit: Option<u64>,
    name: Option<String>,
    spec_dir: &Path,
) -> Result<CompressionSource, SpecError> {
    if path.trim().is_empty() {
        return Err(item.err("file", "a file source needs a path".into()));
    }
    let file = spec_dir.join(path);
    let meta = std::fs::metadata(&file).map_err(|e| {
        let why = if e.kind() == std::io::ErrorKind::NotFound {
            "not found".to_string()
        } else {
            e.to_string()
        };
        item.err(
            "file",
            format!("file '{path}': {why} (looked for {})", file.display()),
        )
    })?;
    if !meta.is_file() {
        return Err(item.err(
            "file",
            format!("'{path}' is not a file ({})", file.display()),
        ));
    }
    let len = meta.len();
    if len == 0 {
        return Err(item.err(
            "file",
            format!("file '{path}' is empty: nothing to compress"),
        ));
    }
    if limit.unwrap_or(len).min(len) > MAX_FILE_BYTES {
        return Err(item.err(
            "file",
            format!(
                "file '{path}' has {len} bytes, more than {MAX_FILE_BYTES}; compress its first \
                 bytes with {{ file = \"{path}\", limit = N }}"
            ),
        ));
    }
    let base = Path::new(path)
        .file_name()
        .map_or_else(|| path.to_string(), |n| n.to_string_lossy().into_owned());
    let name = name.unwrap_or_else(|| match limit {
        Some(n) if n < len => format!("{base} (first {n} bytes)"),
        _ => base,
    });
    Ok(CompressionSource {
        name,
        input: SourceInput::File {
            path: path.to_string(),
            file,
            limit,
        },
        line: item.line("file"),
    })
}

fn generator_source(
    item: &Item,
    t: &toml::Table,
    kind: &str,
    name: Option<String>,
    seed: u64,
) -> Result<CompressionSource, SpecError> {
    let Some(&(_, gen_name, params)) = GENERATORS.iter().find(|g| g.0 == kind) else {
        return Err(item.err(
            "generator",
            format!("unknown generator '{kind}'; use xor, markov, hmm, fibonacci or iid"),
        ));
    };
    let mut allowed = vec!["generator", "name", "length", "seed"];
    allowed.extend_from_slice(params);
    if let Some(k) = unknown_key(t, &allowed) {
        return Err(item.err(
            k,
            format!(
                "unknown key '{k}' for generator '{kind}'; use {}",
                allowed.join(", ")
            ),
        ));
    }
    let Some(length) = int(
        item,
        t,
        "length",
        1,
        MAX_LENGTH as i64,
        &format!("1 to {MAX_LENGTH} symbols"),
    )?
    else {
        return Err(item.err(
            "generator",
            format!("generator '{kind}' needs length = N (symbols to generate)"),
        ));
    };
    let seed = int(item, t, "seed", 0, i64::MAX, "a whole number >= 0")?.map_or(seed, |s| s as u64);
    let mut given: Vec<String> = Vec::new();
    for &p in params {
        let Some(v) = t.get(p) else { continue };
        let text = match (p, v) {
            ("entropy", toml::Value::Float(f)) if f.is_finite() => f.to_string(),
            ("entropy", toml::Value::Integer(i)) => i.to_string(),
            ("entropy", _) => {
                return Err(item.err(
                    p,
                    format!("entropy = {}: a number of bits per symbol", show(v)),
                ))
            }
            _ => int(item, t, p, 0, i64::from(u32::MAX), "a whole number >= 0")?
                .unwrap_or_default()
                .to_string(),
        };
        given.push(format!("{p}={text}"));
    }
    let text = format!("{gen_name}:{}", given.join(","));
    let spec = gen::parse_source(&text).map_err(|e| {
        let msg = match e {
            gen::GenError::Invalid { message, .. } => message,
            other => other.to_string(),
        };
        item.err("generator", format!("generator '{kind}': {msg}"))
    })?;
    let source = spec.name();
    Ok(CompressionSource {
        name: name.unwrap_or_else(|| source.clone()),
        input: SourceInput::Generator {
            source,
            spec,
            length: length as u64,
            seed,
        },
        line: item.line("generator"),
    })
}

fn predictors(
    cx: &Ctx,
    raw: &Spanned<Vec<Spanned<toml::Value>>>,
    seed: u64,
) -> Result<Vec<Predictor>, SpecError> {
    let list = raw.get_ref();
    if list.is_empty() {
        return Err(cx.err(
            raw.span(),
            "[compression] predictors: list at least one, e.g. [\"cm\", \"lstm\", \"cm+lstm\"]"
                .into(),
        ));
    }
    if list.len() > MAX_ITEMS {
        return Err(cx.err(
            raw.span(),
            format!(
                "[compression] predictors: at most {MAX_ITEMS} (got {})",
                list.len()
            ),
        ));
    }
    let mut out: Vec<Predictor> = Vec::new();
    for v in list {
        let item = Item {
            cx,
            span: v.span(),
            list: "predictors",
        };
        let p = match v.get_ref() {
            toml::Value::String(s) => model_string(&item, s, None, seed)?,
            toml::Value::Table(t) => model_table(&item, t, seed)?,
            other => {
                return Err(item.err(
                    "",
                    format!(
                        "{} is neither a model (\"cm\", \"lstm:hidden=64\") nor a table such \
                         as {{ model = \"lstm\", hidden = 64 }}",
                        show(other)
                    ),
                ))
            }
        };
        if let Some(o) = out.iter().find(|o| o.name == p.name || o.spec == p.spec) {
            return Err(item.err(
                "model",
                format!(
                    "'{}' repeats predictor '{}' ({}); give each predictor once",
                    p.name, o.name, o.model
                ),
            ));
        }
        out.push(p);
    }
    Ok(out)
}

/// A `strata zip --model` string; the section's seed unless it sets its own.
fn model_string(
    item: &Item,
    s: &str,
    name: Option<String>,
    seed: u64,
) -> Result<Predictor, SpecError> {
    let mut spec = ModelSpec::parse(s).map_err(|e| {
        let msg = match e {
            strata_zip::ZipError::InvalidModel(m) => m,
            other => other.to_string(),
        };
        item.err("model", format!("'{}': {msg}", s.trim()))
    })?;
    let own_seed = s.split_once(':').is_some_and(|(_, params)| {
        params
            .split(',')
            .any(|kv| kv.split_once('=').is_some_and(|(k, _)| k.trim() == "seed"))
    });
    // Only a network has initial weights to seed (a `cm` container stays the one `strata zip`
    // writes for it).
    if !own_seed && spec.cell().is_some() {
        spec.seed = seed;
    }
    Ok(Predictor {
        name: name.unwrap_or_else(|| s.trim().to_string()),
        model: spec.name(),
        spec,
    })
}

/// `{ model = "lstm", layers = 1, hidden = 32, bptt = 16, lr = 0.01, seed = 0, name = NAME }`.
fn model_table(item: &Item, t: &toml::Table, seed: u64) -> Result<Predictor, SpecError> {
    let mut allowed = vec!["model", "name"];
    allowed.extend_from_slice(&NET_KEYS);
    if let Some(k) = unknown_key(t, &allowed) {
        let hint = match k {
            "width" | "units" | "hidden_size" => " (the width of a layer is hidden)",
            "learning_rate" | "lr_rate" => " (the learning rate is lr)",
            _ => "",
        };
        return Err(item.err(
            k,
            format!(
                "unknown key '{k}' in a predictor{hint}; use {}",
                allowed.join(", ")
            ),
        ));
    }
    let Some(model) = string(item, t, "model")? else {
        return Err(item.err(
            "model",
            "a predictor table needs model = \"cm\" | \"lstm\" | \"gru\" | \"cm+lstm\" | \
             \"cm+gru\""
                .into(),
        ));
    };
    if model.contains(':') {
        return Err(item.err(
            "model",
            format!("model = '{model}': give the settings as keys of the table (hidden = 64)"),
        ));
    }
    let mut given: Vec<String> = Vec::new();
    for k in NET_KEYS {
        let Some(v) = t.get(k) else { continue };
        let text = match (k, v) {
            ("lr", toml::Value::Float(f)) if f.is_finite() => f.to_string(),
            ("lr", toml::Value::Integer(i)) => i.to_string(),
            ("lr", _) => return Err(item.err(k, format!("lr = {}: a number in (0, 1]", show(v)))),
            ("seed", _) => int(item, t, k, 0, i64::MAX, "a whole number >= 0")?
                .unwrap_or_default()
                .to_string(),
            _ => int(item, t, k, 0, i64::from(u32::MAX), "a whole number >= 1")?
                .unwrap_or_default()
                .to_string(),
        };
        given.push(format!("{k}={text}"));
    }
    if model.trim() == "cm" && !given.is_empty() {
        return Err(item.err(
            "model",
            "model = 'cm' has no network: layers, hidden, bptt, lr and seed apply to lstm, gru, \
             cm+lstm and cm+gru"
                .into(),
        ));
    }
    let text = if given.is_empty() {
        model.trim().to_string()
    } else {
        format!("{}:{}", model.trim(), given.join(","))
    };
    model_string(item, &text, name_key(item, t)?, seed)
}

fn baselines(cx: &Ctx, raw: &Spanned<Vec<Spanned<String>>>) -> Result<Vec<String>, SpecError> {
    let mut out: Vec<String> = Vec::new();
    for b in raw.get_ref() {
        let name = b.get_ref().trim();
        if !crate::zip::bench::is_baseline(name) {
            return Err(cx.err(
                b.span(),
                format!(
                    "[compression] baselines: unknown compressor '{name}'; use {}",
                    crate::zip::bench::baseline_names().join(", ")
                ),
            ));
        }
        if out.iter().any(|o| o == name) {
            return Err(cx.err(
                b.span(),
                format!("[compression] baselines: '{name}' is named twice"),
            ));
        }
        out.push(name.to_string());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::super::{parse, SpecError};
    use super::*;

    /// A spec of `[compression]` alone, in a folder holding `book.txt`.
    /// Written once per process: tests run in parallel, and rewriting the files while another
    /// test reads them would show it an empty book.
    fn dir() -> PathBuf {
        static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
        DIR.get_or_init(|| {
            let d = std::env::temp_dir().join(format!("strata-cspec-{}", std::process::id()));
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("book.txt"), b"call me Ishmael. ").unwrap();
            std::fs::write(d.join("empty.txt"), b"").unwrap();
            d
        })
        .clone()
    }

    fn spec_file() -> String {
        dir().join("c.toml").display().to_string()
    }

    /// Line of `[compression]`'s first key.
    const FIRST: usize = 2;

    fn plan(body: &str) -> CompressionPlan {
        parse(&format!("[compression]\n{body}\n"), &spec_file(), "c")
            .unwrap()
            .compression
            .unwrap()
    }

    fn err(body: &str) -> SpecError {
        parse(&format!("[compression]\n{body}\n"), &spec_file(), "c").expect_err(body)
    }

    #[test]
    fn a_section_alone_makes_a_spec_and_defaults_fill_in() {
        let p = plan("sources = [\"book.txt\"]");
        assert_eq!(p.sources.len(), 1);
        assert_eq!(p.sources[0].name, "book.txt");
        assert!(
            matches!(&p.sources[0].input, SourceInput::File { file, limit: None, .. } if file.is_file())
        );
        assert_eq!(p.predictors.len(), 1);
        assert_eq!(p.predictors[0].spec, ModelSpec::default());
        assert_eq!(p.baselines, BASELINES);
        assert_eq!((p.seed, p.curve_points), (0, DEFAULT_CURVE_POINTS));
        assert_eq!(p.line, 1);
        // No section, no plan, and a spec with no models still needs one.
        let e = parse("title = \"t\"\n", "x.toml", "x").expect_err("no models");
        assert!(e.msg.contains("no [[model]]"), "{e}");
    }

    #[test]
    fn baselines_may_name_the_neural_tools() {
        let p = plan(
            "sources = [\"book.txt\"]\nbaselines = [\"lstm-compress\", \"xz\", \"cmix\", \"nncp\"]",
        );
        assert_eq!(p.baselines, ["lstm-compress", "xz", "cmix", "nncp"]);
        let e = err("sources = [\"book.txt\"]\nbaselines = [\"paq8\"]");
        assert!(e.msg.contains("unknown compressor 'paq8'"), "{e}");
        assert!(e.msg.contains("lstm-compress, cmix, nncp"), "{e}");
    }

    #[test]
    fn every_key_is_read() {
        let p = plan(
            "seed = 7\ncurve_points = 20\nbaselines = [\"xz\", \"gzip\"]\nsources = [\n  \
             { file = \"book.txt\", limit = 5, name = \"head\" },\n  \
             { generator = \"xor\", k = 40, length = 1000 },\n  \
             { generator = \"markov\", alphabet = 4, order = 3, length = 500, seed = 2 },\n  \
             { generator = \"hmm\", states = 4, alphabet = 4, length = 50 },\n  \
             { generator = \"fibonacci\", j = 24, k = 55, bits = 8, length = 60 },\n  \
             { generator = \"iid\", alphabet = 2, entropy = 0.5, length = 70 },\n]\n\
             predictors = [\"cm\", \"lstm:hidden=16,seed=3\", { model = \"cm+gru\", layers = 2, \
             hidden = 8, bptt = 32, lr = 0.02, name = \"mix\" }]",
        );
        assert_eq!((p.seed, p.curve_points), (7, 20));
        assert_eq!(p.baselines, ["xz", "gzip"]);
        let names: Vec<&str> = p.sources.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "head",
                "xor:k=40",
                "markov:alphabet=4,order=3",
                "hmm:states=4,alphabet=4",
                "lfib:j=24,k=55,bits=8",
                "iid:alphabet=2,entropy=0.5"
            ]
        );
        let lines: Vec<usize> = p.sources.iter().map(|s| s.line).collect();
        assert_eq!(lines, [6, 7, 8, 9, 10, 11]);
        match &p.sources[2].input {
            SourceInput::Generator {
                spec, length, seed, ..
            } => {
                assert_eq!(
                    *spec,
                    gen::Source::Markov {
                        alphabet: 4,
                        order: 3
                    }
                );
                assert_eq!((*length, *seed), (500, 2));
            }
            other => panic!("{other:?}"),
        }
        // The section's seed where a source has none.
        assert!(matches!(
            p.sources[1].input,
            SourceInput::Generator { seed: 7, .. }
        ));
        assert!(matches!(
            p.sources[0].input,
            SourceInput::File { limit: Some(5), .. }
        ));
        let names: Vec<&str> = p.predictors.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["cm", "lstm:hidden=16,seed=3", "mix"]);
        let lstm = &p.predictors[1].spec;
        assert_eq!((lstm.hidden, lstm.seed, lstm.lr), (16, 3, 0.01));
        let mix = &p.predictors[2].spec;
        assert_eq!(
            mix.kind,
            strata_zip::Kind::CmRnn(strata_zip::rnn::Cell::Gru)
        );
        assert_eq!((mix.layers, mix.hidden, mix.bptt, mix.lr), (2, 8, 32, 0.02));
        // The section's seed where a network has none.
        assert_eq!(mix.seed, 7);
        assert_eq!(p.predictors[2].model, mix.name());
    }

    #[test]
    fn tables_of_sources_work_too() {
        let p = plan(
            "predictors = [\"cm\"]\n\n[[compression.sources]]\ngenerator = \"xor\"\nk = 3\n\
             length = 10\n\n[[compression.sources]]\nfile = \"book.txt\"\n",
        );
        assert_eq!(p.sources.len(), 2);
        let e = err("predictors = [\"cm\"]\n\n[[compression.sources]]\ngenerator = \"xor\"\nk = 0\nlength = 10\n");
        assert!(e.msg.contains("k must be at least 1"), "{e}");
        assert_eq!(e.line, 5, "{e}");
    }

    #[test]
    fn refusals_name_the_key_and_its_line() {
        let book = "sources = [\"book.txt\"]";
        let cases: Vec<(String, &str, usize)> = vec![
            ("seed = 1".into(), "sources: list what to compress", 1),
            ("sources = []".into(), "list at least one source", FIRST),
            (
                "sources = [\"missing.txt\"]".into(),
                "file 'missing.txt': not found",
                FIRST,
            ),
            (
                "sources = [\"empty.txt\"]".into(),
                "is empty: nothing to compress",
                FIRST,
            ),
            ("sources = [\".\"]".into(), "is not a file", FIRST),
            ("sources = [3]".into(), "neither a file path", FIRST),
            (
                "sources = [\n  \"book.txt\",\n  { generator = \"xor\", k = 20 },\n]".into(),
                "needs length = N",
                FIRST + 2,
            ),
            (
                "sources = [{ generator = \"xor\", k = 20, length = 1000000000 }]".into(),
                "1 to 100000000 symbols",
                FIRST,
            ),
            (
                "sources = [{ generator = \"xor\", k = 20, length = 0 }]".into(),
                "1 to 100000000 symbols",
                FIRST,
            ),
            (
                "sources = [{ generator = \"xor\", k = 0, length = 10 }]".into(),
                "k must be at least 1",
                FIRST,
            ),
            (
                "sources = [{ generator = \"xor\", order = 2, length = 10 }]".into(),
                "unknown key 'order' for generator 'xor'",
                FIRST,
            ),
            (
                "sources = [{ generator = \"markov\", alphabet = 256, order = 4, length = 10 }]"
                    .into(),
                "alphabet^(order+1) must be at most",
                FIRST,
            ),
            (
                "sources = [{ generator = \"iid\", entropy = 3, length = 10 }]".into(),
                "entropy must be",
                FIRST,
            ),
            (
                "sources = [{ generator = \"hmm\", states = 1000, length = 10 }]".into(),
                "states must be",
                FIRST,
            ),
            (
                "sources = [{ generator = \"fibonacci\", j = 55, k = 24, length = 10 }]".into(),
                "need 1 <= j < k",
                FIRST,
            ),
            (
                "sources = [{ generator = \"lorenz\", length = 10 }]".into(),
                "unknown generator 'lorenz'",
                FIRST,
            ),
            (
                "sources = [{ generator = \"xor\", k = -1, length = 10 }]".into(),
                "k = -1",
                FIRST,
            ),
            (
                "sources = [{ generator = \"xor\", k = \"twenty\", length = 10 }]".into(),
                "k = \"twenty\"",
                FIRST,
            ),
            (
                "sources = [{ file = \"book.txt\", generator = \"xor\" }]".into(),
                "not both",
                FIRST,
            ),
            (
                "sources = [{ name = \"x\" }]".into(),
                "needs file = PATH or generator = KIND",
                FIRST,
            ),
            (
                "sources = [{ file = \"book.txt\", limit = 0 }]".into(),
                "limit = 0",
                FIRST,
            ),
            (
                "sources = [{ file = \"book.txt\", length = 3 }]".into(),
                "unknown key 'length' in a file source",
                FIRST,
            ),
            (
                "sources = [\"book.txt\", \"./book.txt\"]".into(),
                "two sources are named 'book.txt'",
                FIRST,
            ),
            (
                format!("{book}\npredictors = [\"lstm:hidden=4096\"]"),
                "hidden must be 1-1024",
                FIRST + 1,
            ),
            (
                format!("{book}\npredictors = [\"transformer\"]"),
                "unknown model \"transformer\"",
                FIRST + 1,
            ),
            (
                format!("{book}\npredictors = []"),
                "list at least one",
                FIRST + 1,
            ),
            (
                format!(
                    "{book}\npredictors = [\n  \"cm\",\n  {{ model = \"lstm\", width = 64 }},\n]"
                ),
                "unknown key 'width' in a predictor (the width of a layer is hidden)",
                FIRST + 3,
            ),
            (
                format!("{book}\npredictors = [{{ model = \"lstm\", bptt = 0 }}]"),
                "bptt must be 1-256",
                FIRST + 1,
            ),
            (
                format!("{book}\npredictors = [{{ model = \"gru\", lr = 2.0 }}]"),
                "lr must be in (0, 1]",
                FIRST + 1,
            ),
            (
                format!("{book}\npredictors = [{{ model = \"cm\", hidden = 8 }}]"),
                "has no network",
                FIRST + 1,
            ),
            (
                format!("{book}\npredictors = [{{ hidden = 8 }}]"),
                "needs model =",
                FIRST + 1,
            ),
            (
                format!("{book}\npredictors = [\"lstm\", {{ model = \"lstm\" }}]"),
                "repeats predictor 'lstm'",
                FIRST + 1,
            ),
            (
                format!("{book}\nbaselines = [\"xz\", \"rar\"]"),
                "unknown compressor 'rar'",
                FIRST + 1,
            ),
            (
                format!("{book}\nbaselines = [\"xz\", \"xz\"]"),
                "'xz' is named twice",
                FIRST + 1,
            ),
            (
                format!("{book}\ncurve_points = 0"),
                "curve_points: 1 to 1000",
                FIRST + 1,
            ),
            (
                format!("{book}\nseed = -3"),
                "seed: a whole number",
                FIRST + 1,
            ),
            (
                format!("{book}\nlevel = 9"),
                "unknown field `level`",
                FIRST + 1,
            ),
        ];
        for (body, want, line) in &cases {
            let e = err(body);
            assert!(e.msg.contains(want), "{body}: {e}");
            assert_eq!(e.line, *line, "{body}: {e}");
            assert!(!e.msg.contains('\n'), "{body}: {e}");
        }
    }
}
