//! Tabular data for classifiers: UCI Adult and any CSV with a header and a label column.
//!
//! # Encoding
//!
//! A column is **numeric** when every value that is not missing, in every row, parses as a
//! number; otherwise it is **categorical**. Numeric columns are standardized with the training
//! split's mean and standard deviation. Categorical columns are one-hot encoded with the
//! categories seen in the training split, in alphabetical order (a category first seen at test
//! time encodes as all zeros).
//!
//! # Missing values
//!
//! `?`, `NA`, `N/A`, `NaN`, `null`, `#N/A`, `<NA>` and the empty string (trimmed, any case)
//! are missing. They are handled so that one missing value never changes a column's type:
//!
//! * numeric: replaced by the training mean (0 after standardization), and when the column has
//!   a missing value in a training row, a 0/1 column `"NAME missing"` is added right after it so
//!   a classifier can still tell imputed values from real ones;
//! * categorical: their own category, `(missing)`;
//! * label: the row is dropped (there is nothing to learn from or score it against).
//!
//! How many values were missing in each column, and how many rows were dropped, comes back in a
//! [`TabularReport`] (see [`csv_with_report`]), for the CLI to print.
//!
//! # Labels
//!
//! Labels must be classes: a label column with one class, with more than [`MAX_CLASSES`]
//! classes, or with more than [`MAX_NUMERIC_CLASSES`] distinct numbers that are not class codes
//! (integers from 0 or 1 up to about `1.25 k`, gaps allowed) is refused: a regression target
//! such as an age or a price.

use crate::dataset::{Dataset, Splits};
use crate::memory::human_bytes;
use crate::{DataError, Result};
use ndarray::Array2;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Most classes a label column may have. More is almost surely an id or free-text column.
pub const MAX_CLASSES: usize = 1000;

/// Most distinct numeric label values accepted as classes unless they are class codes (integers
/// from 0 or 1, gaps allowed); more distinct numbers than this look like a regression target.
pub const MAX_NUMERIC_CLASSES: usize = 50;

/// The category that missing values of a categorical column fall into.
pub const MISSING_CATEGORY: &str = "(missing)";

/// True when a CSV value means "missing": `?`, `NA`, `N/A`, `NaN`, `null`, `#N/A`, `<NA>` or
/// empty, trimmed and in any case. Shared by every column so that a numeric column with a `nan`
/// stays numeric instead of turning into a one-hot of every distinct value.
pub fn is_missing(v: &str) -> bool {
    let v = v.trim();
    v.is_empty()
        || [
            "?", "na", "n/a", "nan", "-nan", "+nan", "null", "#n/a", "<na>",
        ]
        .iter()
        .any(|m| v.eq_ignore_ascii_case(m))
}

/// How one input column was encoded.
#[derive(Clone, Debug, PartialEq)]
pub enum ColumnKind {
    /// Standardized with the training `mean` and `sd` (population); missing values became the
    /// mean; `indicator` says whether a 0/1 `"NAME missing"` column follows it.
    Numeric {
        /// Mean of the training values.
        mean: f64,
        /// Population standard deviation of the training values.
        sd: f64,
        /// Whether a 0/1 `"NAME missing"` column follows this one.
        indicator: bool,
    },
    /// One-hot over these training categories (alphabetical; [`MISSING_CATEGORY`] among them
    /// when a training row had the value missing).
    Categorical {
        /// The training categories, one input column each, in that order.
        categories: Vec<String>,
    },
}

/// One input column: its name, encoding, and how many of its values were missing.
#[derive(Clone, Debug, PartialEq)]
pub struct ColumnReport {
    /// Column name, as in the file's header.
    pub name: String,
    /// How the column became input features.
    pub kind: ColumnKind,
    /// Missing values among the training rows.
    pub missing_train: usize,
    /// Missing values among the test rows.
    pub missing_test: usize,
}

/// What a tabular loader did to the file: the label's classes, how each column was encoded,
/// and what was missing. Returned beside the data so the CLI can tell the user, since missing
/// values are imputed silently otherwise.
#[derive(Clone, Debug, PartialEq)]
pub struct TabularReport {
    /// The label column's name.
    pub label: String,
    /// Class names, in class-index order.
    pub classes: Vec<String>,
    /// Input columns (the label excluded), in file order.
    pub columns: Vec<ColumnReport>,
    /// Names of the encoded feature columns, in the order of the data matrices' columns
    /// (`age`, `age missing`, `colour=red`, ...).
    pub features: Vec<String>,
    /// Rows dropped because their label was missing.
    pub dropped_unlabelled: usize,
}

impl TabularReport {
    /// Missing feature values in all columns, training and test rows together.
    pub fn missing_total(&self) -> usize {
        self.columns
            .iter()
            .map(|c| c.missing_train + c.missing_test)
            .sum()
    }

    /// One line per column that had missing values, and one for dropped rows: what was missing
    /// and what was done with it. Empty when nothing was missing.
    pub fn notes(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.dropped_unlabelled > 0 {
            out.push(format!(
                "dropped {} row(s) whose label '{}' is missing",
                self.dropped_unlabelled, self.label
            ));
        }
        for c in &self.columns {
            let total = c.missing_train + c.missing_test;
            if total == 0 {
                continue;
            }
            let counts = format!(
                "column '{}': {total} missing value(s) ({} in training rows, {} in test rows)",
                c.name, c.missing_train, c.missing_test
            );
            out.push(match &c.kind {
                ColumnKind::Numeric {
                    mean,
                    indicator: true,
                    ..
                } => format!(
                    "{counts} replaced by the training mean {mean:.6}, with a 0/1 '{} missing' \
                     column added",
                    c.name
                ),
                ColumnKind::Numeric { mean, .. } => {
                    format!("{counts} replaced by the training mean {mean:.6}")
                }
                ColumnKind::Categorical { categories }
                    if categories.iter().any(|k| k == MISSING_CATEGORY) =>
                {
                    format!("{counts} encoded as their own category '{MISSING_CATEGORY}'")
                }
                ColumnKind::Categorical { .. } => {
                    format!("{counts} encoded as all zeros (no training row had it missing)")
                }
            });
        }
        out
    }
}

/// Read a text file, gunzipping it if it starts with the gzip magic, and dropping a UTF-8
/// byte-order mark (Excel writes one; it would otherwise become part of the first column's
/// name).
fn read_text(path: &Path) -> Result<String> {
    let raw = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    let bytes = if raw.starts_with(&[0x1f, 0x8b]) {
        use std::io::Read;
        // A small .gz can inflate enormously: stop at a quarter of the memory still available.
        let budget = crate::memory::available_bytes()
            .map(|a| a / 4)
            .unwrap_or(u64::MAX);
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&raw[..])
            .take(budget.saturating_add(1))
            .read_to_end(&mut out)
            .map_err(|e| DataError::corrupt(path, format!("bad gzip stream: {e}")))?;
        if out.len() as u64 > budget {
            return Err(DataError::invalid(
                path,
                format!(
                    "decompresses to more than {}, a quarter of the memory available; \
                     free memory or use a smaller file",
                    human_bytes(budget)
                ),
            ));
        }
        out
    } else {
        raw
    };
    let text = String::from_utf8(bytes)
        .map_err(|_| DataError::corrupt(path, "not UTF-8 text (save it as UTF-8 CSV)"))?;
    Ok(match text.strip_prefix('\u{feff}') {
        Some(rest) => rest.to_string(),
        None => text,
    })
}

/// Split a CSV line on commas, honouring double quotes.
fn fields(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            '"' => quoted = !quoted,
            ',' if !quoted => out.push(std::mem::take(&mut cur).trim().to_string()),
            _ => cur.push(c),
        }
    }
    out.push(cur.trim().to_string());
    out
}

/// A value as a number, if it is one (missing values are not).
fn number(v: &str) -> Option<f64> {
    if is_missing(v) {
        return None;
    }
    v.trim().parse::<f64>().ok().filter(|x| !x.is_nan())
}

enum Col {
    Num { mean: f64, sd: f64, indicator: bool },
    Cat { cats: BTreeMap<String, usize> },
}

/// The category key of a categorical value.
fn category(v: &str) -> &str {
    if is_missing(v) {
        MISSING_CATEGORY
    } else {
        v
    }
}

/// Encoded train and test matrices, the column reports and the feature names.
type Encoded = (Array2<f32>, Array2<f32>, Vec<ColumnReport>, Vec<String>);

/// Encode string rows (features only) into matrices, fitting the encoding on `train`. Column
/// types are decided on all rows (a type is a property of the column, not a statistic).
fn encode(
    path: &Path,
    names: &[String],
    train: &[Vec<String>],
    test: &[Vec<String>],
) -> Result<Encoded> {
    let ncol = names.len();
    let all = || train.iter().chain(test);
    let mut cols = Vec::with_capacity(ncol);
    let mut reports = Vec::with_capacity(ncol);
    let mut features = Vec::new();
    for (j, name) in names.iter().enumerate() {
        let missing_train = train.iter().filter(|r| is_missing(&r[j])).count();
        let missing_test = test.iter().filter(|r| is_missing(&r[j])).count();
        let numeric = all().all(|r| is_missing(&r[j]) || number(&r[j]).is_some());
        let kind = if numeric {
            if let Some(r) = all().find(|r| number(&r[j]).is_some_and(|x| x.is_infinite())) {
                return Err(DataError::invalid(
                    path,
                    format!(
                        "column '{name}' holds the infinite value '{}'; replace it with a \
                         number or mark it missing (NA)",
                        r[j]
                    ),
                ));
            }
            let vals: Vec<f64> = train.iter().filter_map(|r| number(&r[j])).collect();
            let n = vals.len().max(1) as f64;
            let mean = vals.iter().sum::<f64>() / n;
            let sd = (vals.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n).sqrt();
            if !(mean.is_finite() && sd.is_finite()) {
                return Err(DataError::invalid(
                    path,
                    format!(
                        "column '{name}' holds numbers too large to standardize (beyond about \
                         1e150, whose squares overflow); rescale the column"
                    ),
                ));
            }
            let indicator = missing_train > 0;
            features.push(name.clone());
            if indicator {
                features.push(format!("{name} missing"));
            }
            cols.push(Col::Num {
                mean,
                sd,
                indicator,
            });
            ColumnKind::Numeric {
                mean,
                sd,
                indicator,
            }
        } else {
            // Alphabetical order, for a stable and readable layout.
            let set: BTreeSet<&str> = train.iter().map(|r| category(&r[j])).collect();
            let cats: BTreeMap<String, usize> = set
                .into_iter()
                .enumerate()
                .map(|(i, c)| (c.to_string(), i))
                .collect();
            let categories: Vec<String> = cats.keys().cloned().collect();
            features.extend(categories.iter().map(|c| format!("{name}={c}")));
            cols.push(Col::Cat { cats });
            ColumnKind::Categorical { categories }
        };
        reports.push(ColumnReport {
            name: name.clone(),
            kind,
            missing_train,
            missing_test,
        });
    }
    let width = features.len();
    let rows = (train.len() + test.len()) as u64;
    let widest = reports
        .iter()
        .filter_map(|r| match &r.kind {
            ColumnKind::Categorical { categories } => Some((categories.len(), &r.name)),
            _ => None,
        })
        .max();
    let hint = match widest {
        Some((k, name)) if k > 100 => format!(
            "column '{name}' alone has {k} categories: drop it (an id or free text?) or bin it"
        ),
        _ => "use fewer rows or columns".to_string(),
    };
    DataError::check_fits(
        path,
        rows.saturating_mul(width as u64).saturating_mul(4),
        format!("encoding {rows} rows x {width} features"),
        &hint,
    )?;
    let run = |rows: &[Vec<String>]| {
        let mut m = Array2::<f32>::zeros((rows.len(), width));
        for (i, r) in rows.iter().enumerate() {
            let mut at = 0;
            for (j, c) in cols.iter().enumerate() {
                match c {
                    Col::Num {
                        mean,
                        sd,
                        indicator,
                    } => {
                        let v = number(&r[j]);
                        let x = v.unwrap_or(*mean);
                        m[[i, at]] = if *sd > 0.0 {
                            ((x - mean) / sd) as f32
                        } else {
                            0.0
                        };
                        at += 1;
                        if *indicator {
                            m[[i, at]] = if v.is_none() { 1.0 } else { 0.0 };
                            at += 1;
                        }
                    }
                    Col::Cat { cats } => {
                        if let Some(&k) = cats.get(category(&r[j])) {
                            m[[i, at + k]] = 1.0;
                        }
                        at += cats.len();
                    }
                }
            }
        }
        m
    };
    Ok((run(train), run(test), reports, features))
}

/// Class names and indices of `labels` (none missing). Numeric labels are ordered by value,
/// others alphabetically. Refuses what cannot be classes (see the module docs).
fn classes_of(path: &Path, label: &str, labels: &[String]) -> Result<(Vec<String>, Vec<u32>)> {
    let numeric: Option<Vec<f64>> = labels
        .iter()
        .map(|v| number(v).filter(|x| x.is_finite()).map(|x| x + 0.0))
        .collect();
    let (names, index): (Vec<String>, Box<dyn Fn(usize) -> usize>) = match numeric {
        Some(vals) => {
            // Keyed by value, so `1` and `1.0` are one class; named by the first spelling seen.
            let mut first: BTreeMap<u64, (f64, usize)> = BTreeMap::new();
            for (i, v) in vals.iter().enumerate() {
                first.entry(v.to_bits()).or_insert((*v, i));
            }
            let mut order: Vec<(f64, usize)> = first.values().copied().collect();
            order.sort_by(|a, b| a.0.total_cmp(&b.0));
            let k = order.len();
            let codes = |from: f64| {
                order
                    .iter()
                    .enumerate()
                    .all(|(i, &(v, _))| v == from + i as f64)
            };
            // Integer codes from 0 or 1 count as classes even with gaps (a class absent from
            // this file), as long as most codes up to the largest are used.
            let sparse_codes = order.iter().all(|&(v, _)| v >= 0.0 && v.fract() == 0.0)
                && order.first().is_some_and(|&(v, _)| v <= 1.0)
                && order
                    .last()
                    .is_some_and(|&(v, _)| v < 1.25 * k as f64 + 1.0);
            if k > MAX_NUMERIC_CLASSES && !codes(0.0) && !codes(1.0) && !sparse_codes {
                return Err(DataError::invalid(
                    path,
                    format!(
                        "label column '{label}' has {k} distinct numeric values: it looks like \
                         a regression target, not classes; pick a categorical column"
                    ),
                ));
            }
            let rank: BTreeMap<u64, usize> = order
                .iter()
                .enumerate()
                .map(|(c, &(v, _))| (v.to_bits(), c))
                .collect();
            let names = order.iter().map(|&(_, i)| labels[i].clone()).collect();
            let idx: Vec<usize> = vals
                .iter()
                .map(|v| rank.get(&v.to_bits()).copied().unwrap_or(0))
                .collect();
            (names, Box::new(move |i| idx[i]))
        }
        None => {
            let set: BTreeSet<&str> = labels.iter().map(|s| s.as_str()).collect();
            let rank: BTreeMap<&str, usize> =
                set.iter().enumerate().map(|(c, &v)| (v, c)).collect();
            let idx: Vec<usize> = labels
                .iter()
                .map(|v| rank.get(v.as_str()).copied().unwrap_or(0))
                .collect();
            (
                set.into_iter().map(str::to_string).collect(),
                Box::new(move |i| idx[i]),
            )
        }
    };
    match names.len() {
        0 => {
            return Err(DataError::invalid(
                path,
                format!("label column '{label}' has no values (every label is missing)"),
            ))
        }
        1 => {
            return Err(DataError::invalid(
                path,
                format!(
                    "label column '{label}' holds a single class ('{}'); a classifier needs at \
                     least two: pick another label column",
                    names[0]
                ),
            ))
        }
        k if k > MAX_CLASSES => {
            return Err(DataError::invalid(
                path,
                format!(
                    "label column '{label}' has {k} distinct values, more than the \
                     {MAX_CLASSES} classes strata accepts (an id or free-text column?); pick a \
                     categorical column"
                ),
            ))
        }
        _ => {}
    }
    let y = (0..labels.len()).map(|i| index(i) as u32).collect();
    Ok((names, y))
}

fn dataset(x: Array2<f32>, y: Vec<u32>, classes: usize) -> Dataset {
    let f = x.ncols();
    Dataset {
        x,
        y,
        shape: vec![1, 1, f],
        classes,
    }
}

/// Where UCI Adult is looked for: `$STRATA_ADULT`, `../shared/datasets/adult`, `data/adult`.
pub fn adult_dirs() -> Vec<PathBuf> {
    let mut v = Vec::new();
    if let Some(d) = std::env::var_os("STRATA_ADULT") {
        v.push(PathBuf::from(d));
    }
    v.push(PathBuf::from("../shared/datasets/adult"));
    v.push(PathBuf::from("data/adult"));
    v
}

/// Column names of UCI Adult (`adult.names`), label last.
const ADULT_COLUMNS: [&str; 15] = [
    "age",
    "workclass",
    "fnlwgt",
    "education",
    "education-num",
    "marital-status",
    "occupation",
    "relationship",
    "race",
    "sex",
    "capital-gain",
    "capital-loss",
    "hours-per-week",
    "native-country",
    "income",
];

/// UCI Adult (`adult.data[.gz]` and `adult.test[.gz]` in `dir`): 14 features (6 numeric,
/// 8 categorical, one-hot), label 1 for income `>50K`.
pub fn adult(dir: &Path) -> Result<Splits> {
    adult_with_report(dir).map(|x| x.0)
}

/// [`adult`], with what was missing and how each column was encoded.
pub fn adult_with_report(dir: &Path) -> Result<(Splits, TabularReport)> {
    let find = |stem: &str| -> Result<PathBuf> {
        [format!("{stem}.gz"), stem.to_string()]
            .into_iter()
            .map(|n| dir.join(n))
            .find(|p| p.exists())
            .ok_or_else(|| DataError::invalid(dir, format!("no {stem}[.gz] here")))
    };
    let parse = |path: &Path| -> Result<(Vec<Vec<String>>, Vec<u32>, usize)> {
        let text = read_text(path)?;
        let (mut rows, mut labels, mut dropped) = (Vec::new(), Vec::new(), 0);
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() || line.starts_with('|') {
                continue;
            }
            let mut f = fields(line);
            if f.len() != 15 {
                return Err(DataError::corrupt(
                    path,
                    format!("line {}: {} fields, expected 15", i + 1, f.len()),
                ));
            }
            let label = f.pop().unwrap_or_default();
            if is_missing(&label) {
                dropped += 1;
                continue;
            }
            labels.push(u32::from(label.trim_end_matches('.') == ">50K"));
            rows.push(f);
        }
        Ok((rows, labels, dropped))
    };
    let train_path = find("adult.data")?;
    let (tr, ytr, d1) = parse(&train_path)?;
    let (te, yte, d2) = parse(&find("adult.test")?)?;
    let names: Vec<String> = ADULT_COLUMNS[..14].iter().map(|s| s.to_string()).collect();
    let (xtr, xte, columns, features) = encode(&train_path, &names, &tr, &te)?;
    let report = TabularReport {
        label: ADULT_COLUMNS[14].into(),
        classes: vec!["<=50K".into(), ">50K".into()],
        columns,
        features,
        dropped_unlabelled: d1 + d2,
    };
    Ok((
        Splits {
            name: "adult".into(),
            train: dataset(xtr, ytr, 2),
            test: dataset(xte, yte, 2),
        },
        report,
    ))
}

/// Any CSV with a header row: `label` names the class column (its distinct values, sorted,
/// become classes 0..k-1: by value when they are numbers, alphabetically otherwise); the rest
/// are features. Split 80/20 by a fixed shuffle. See the module docs for missing values.
pub fn csv(path: &Path, label: &str) -> Result<Splits> {
    csv_with_report(path, label).map(|x| x.0)
}

/// [`csv`], with what was missing and how each column was encoded, for the CLI to print
/// ([`TabularReport::notes`]).
pub fn csv_with_report(path: &Path, label: &str) -> Result<(Splits, TabularReport)> {
    let text = read_text(path)?;
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    let header = fields(
        lines
            .next()
            .ok_or_else(|| DataError::invalid(path, "empty CSV"))?
            .1,
    );
    let li = header.iter().position(|h| h == label).ok_or_else(|| {
        DataError::invalid(
            path,
            format!(
                "no column named '{label}' (columns: {}); name one of these as the label",
                header.join(", ")
            ),
        )
    })?;
    let (mut rows, mut raw_labels, mut dropped) = (Vec::new(), Vec::new(), 0usize);
    for (i, line) in lines {
        let mut f = fields(line);
        if f.len() != header.len() {
            return Err(DataError::corrupt(
                path,
                format!(
                    "line {}: {} fields, the header has {} (quote values that hold commas)",
                    i + 1,
                    f.len(),
                    header.len()
                ),
            ));
        }
        let y = f.remove(li);
        if is_missing(&y) {
            dropped += 1;
            continue;
        }
        raw_labels.push(y);
        rows.push(f);
    }
    if rows.len() < 2 {
        return Err(DataError::invalid(
            path,
            format!(
                "needs at least 2 data rows with a label, has {} ({dropped} dropped for a \
                 missing label)",
                rows.len()
            ),
        ));
    }
    let (classes, y) = classes_of(path, label, &raw_labels)?;
    let n = rows.len();
    let mut idx: Vec<usize> = (0..n).collect();
    let mut rng = crate::rng::Rng::new(n as u64);
    for i in (1..n).rev() {
        idx.swap(i, rng.below(i as u64 + 1) as usize);
    }
    let cut = (n * 4 / 5).max(1);
    let pick = |ids: &[usize]| -> (Vec<Vec<String>>, Vec<u32>) {
        (
            ids.iter().map(|&i| rows[i].clone()).collect(),
            ids.iter().map(|&i| y[i]).collect(),
        )
    };
    let (tr, ytr) = pick(&idx[..cut]);
    let (te, yte) = pick(&idx[cut..]);
    let mut names = header;
    names.remove(li);
    let (xtr, xte, columns, features) = encode(path, &names, &tr, &te)?;
    let k = classes.len();
    let report = TabularReport {
        label: label.to_string(),
        classes,
        columns,
        features,
        dropped_unlabelled: dropped,
    };
    Ok((
        Splits {
            name: format!("csv:{}", path.display()),
            train: dataset(xtr, ytr, k),
            test: dataset(xte, yte, k),
        },
        report,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_encodes_numeric_and_categorical_columns() {
        let dir = std::env::temp_dir().join(format!("strata-csv-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("t.csv");
        let mut text = String::from("x,colour,label\n");
        for i in 0..50 {
            let c = ["red", "green", "\"blue, dark\""][i % 3];
            text.push_str(&format!(
                "{},{c},{}\n",
                i as f64 * 0.5,
                if i % 2 == 0 { "yes" } else { "no" }
            ));
        }
        std::fs::write(&p, text).unwrap();
        let s = csv(&p, "label").unwrap();
        assert_eq!(s.train.len() + s.test.len(), 50);
        assert_eq!(s.train.classes, 2);
        // 1 numeric + 3 one-hot columns.
        assert_eq!(s.train.x.ncols(), 4);
        let mean: f32 = s.train.x.column(0).iter().sum::<f32>() / s.train.len() as f32;
        assert!(mean.abs() < 1e-5);
        for r in s.train.x.rows() {
            assert_eq!(r.iter().skip(1).filter(|&&v| v == 1.0).count(), 1);
        }
        let e = csv(&p, "nope").err().unwrap().to_string();
        assert!(e.contains("no column named 'nope'"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn write(name: &str, text: &str) -> (PathBuf, PathBuf) {
        let dir = std::env::temp_dir().join(format!("strata-tab-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join(format!("{name}.csv"));
        std::fs::write(&p, text).unwrap();
        (dir, p)
    }

    #[test]
    fn missing_tokens_keep_a_numeric_column_numeric() {
        // 160 distinct numbers and every spelling of missing: one column plus its indicator,
        // not a one-hot of 161 values.
        let tokens = ["nan", "NaN", "NA", "n/a", "?", "", " N/A ", "null"];
        let mut text = String::from("x,colour,label\n");
        let mut missing_x = 0;
        for i in 0..200 {
            let x = if i % 25 == 3 {
                missing_x += 1;
                tokens[(i / 25) % tokens.len()].to_string()
            } else {
                format!("{}", (i % 160) as f64 * 0.25)
            };
            let colour = if i % 10 == 0 {
                "?"
            } else {
                ["red", "blue"][i % 2]
            };
            text.push_str(&format!("{x},{colour},{}\n", ["a", "b"][i % 2]));
        }
        let (dir, p) = write("missing", &text);
        let (s, r) = csv_with_report(&p, "label").unwrap();
        assert_eq!(r.features[..2], ["x".to_string(), "x missing".to_string()]);
        assert_eq!(s.train.x.ncols(), r.features.len());
        assert_eq!(s.train.x.ncols(), 2 + 3, "x, indicator, blue/red/(missing)");
        let xr = &r.columns[0];
        assert!(matches!(
            xr.kind,
            ColumnKind::Numeric {
                indicator: true,
                ..
            }
        ));
        assert_eq!(xr.missing_train + xr.missing_test, missing_x);
        assert_eq!(r.columns[1].missing_train + r.columns[1].missing_test, 20);
        assert_eq!(r.missing_total(), missing_x + 20);
        assert!(r.notes().iter().any(|n| n.contains("column 'x'")));
        // Reference, independently: over training rows the indicator is 1 exactly where x is
        // imputed (standardized 0); the real values standardize to mean 0 and variance 1.
        let mut real = Vec::new();
        let mut flagged = 0;
        for row in s.train.x.rows() {
            if row[1] == 1.0 {
                assert_eq!(row[0], 0.0);
                flagged += 1;
            } else {
                assert_eq!(row[1], 0.0);
                real.push(row[0] as f64);
            }
        }
        assert_eq!(flagged, xr.missing_train);
        let m = real.iter().sum::<f64>() / real.len() as f64;
        let v = real.iter().map(|x| (x - m).powi(2)).sum::<f64>() / real.len() as f64;
        assert!(m.abs() < 1e-5 && (v - 1.0).abs() < 1e-4, "{m} {v}");
        let cats = match &r.columns[1].kind {
            ColumnKind::Categorical { categories } => categories.clone(),
            k => panic!("{k:?}"),
        };
        assert_eq!(cats, [MISSING_CATEGORY, "blue", "red"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn byte_order_mark_is_not_part_of_the_first_name() {
        let mut text = String::from("\u{feff}label,x\n");
        for i in 0..10 {
            text.push_str(&format!("{},{i}\n", ["p", "q"][i % 2]));
        }
        let (dir, p) = write("bom", &text);
        let (s, r) = csv_with_report(&p, "label").unwrap();
        assert_eq!(r.label, "label");
        assert_eq!(r.classes, ["p", "q"]);
        assert_eq!(r.features, ["x"]);
        assert_eq!(s.train.len() + s.test.len(), 10);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn labels_must_be_classes() {
        let table = |labels: &dyn Fn(usize) -> String, n: usize| {
            let mut t = String::from("f,target\n");
            for i in 0..n {
                t.push_str(&format!("{},{}\n", i % 5, labels(i)));
            }
            t
        };
        let err = |name: &str, text: String| {
            let (dir, p) = write(name, &text);
            let e = csv(&p, "target").expect_err("must be refused").to_string();
            std::fs::remove_dir_all(&dir).unwrap();
            assert!(
                !e.contains('\n') && e.contains(&format!("{name}.csv")),
                "{e}"
            );
            e
        };
        let e = err("one", table(&|_| "yes".into(), 20));
        assert!(
            e.contains("label column 'target' holds a single class ('yes')"),
            "{e}"
        );
        // Ages 17..89: 73 distinct numbers that are not class codes.
        let e = err("age", table(&|i| (17 + i % 73).to_string(), 300));
        assert!(
            e.contains(
                "label column 'target' has 73 distinct numeric values: it looks like a \
                 regression target, not classes; pick a categorical column"
            ),
            "{e}"
        );
        let e = err("float", table(&|i| format!("{}", i as f64 * 0.37), 300));
        assert!(e.contains("regression target"), "{e}");
        let e = err("ids", table(&|i| format!("id{i}"), 1200));
        assert!(
            e.contains("1200 distinct values, more than the 1000 classes"),
            "{e}"
        );
        let e = err("nolabel", table(&|_| "NA".into(), 5));
        assert!(e.contains("needs at least 2 data rows with a label"), "{e}");

        // Codes 0..69 with every seventh missing (60 classes) are classes too.
        let (dir, p) = write(
            "gaps",
            &table(&|i| ((i % 60) + (i % 60) / 6).to_string(), 240),
        );
        assert_eq!(csv_with_report(&p, "target").unwrap().0.train.classes, 60);
        std::fs::remove_dir_all(&dir).unwrap();

        // Class codes 0..59 are classes, ordered by value (so "10" after "9").
        let (dir, p) = write("codes", &table(&|i| (i % 60).to_string(), 240));
        let (s, r) = csv_with_report(&p, "target").unwrap();
        assert_eq!(s.train.classes, 60);
        assert_eq!(
            r.classes[..11],
            ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10"]
        );
        std::fs::remove_dir_all(&dir).unwrap();

        // Rows with a missing label are dropped and counted.
        let (dir, p) = write(
            "drop",
            &table(
                &|i| {
                    if i % 7 == 0 {
                        "?".into()
                    } else {
                        ["x", "y"][i % 2].into()
                    }
                },
                70,
            ),
        );
        let (s, r) = csv_with_report(&p, "target").unwrap();
        assert_eq!(r.dropped_unlabelled, 10);
        assert_eq!(s.train.len() + s.test.len(), 60);
        assert!(r.notes()[0].contains("dropped 10 row(s) whose label 'target' is missing"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn infinite_numbers_are_refused_by_name() {
        let mut text = String::from("x,label\n");
        for i in 0..10 {
            let x = if i == 4 {
                "inf".to_string()
            } else {
                i.to_string()
            };
            text.push_str(&format!("{x},{}\n", i % 2));
        }
        let (dir, p) = write("inf", &text);
        let e = csv(&p, "label").err().unwrap().to_string();
        assert!(
            e.contains("column 'x' holds the infinite value 'inf'"),
            "{e}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn adult_has_its_documented_size_when_present() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/datasets/adult");
        if !dir.is_dir() {
            eprintln!("note: UCI Adult not found at {}; skipped", dir.display());
            return;
        }
        let (s, r) = adult_with_report(&dir).unwrap();
        assert_eq!((s.train.len(), s.test.len()), (32_561, 16_281));
        // UCI documents 6 numeric columns without missing values; workclass, occupation and
        // native-country have '?'s, which become their own category.
        let numeric = r
            .columns
            .iter()
            .filter(|c| {
                matches!(
                    c.kind,
                    ColumnKind::Numeric {
                        indicator: false,
                        ..
                    }
                )
            })
            .count();
        assert_eq!(numeric, 6);
        assert_eq!(r.dropped_unlabelled, 0);
        let work = &r.columns[1];
        assert_eq!(work.name, "workclass");
        assert!(work.missing_train > 1000, "{work:?}");
        assert_eq!(r.features.len(), s.train.x.ncols());
        // About 24% of the training rows earn >50K.
        let pos = s.train.y.iter().filter(|&&y| y == 1).count() as f64 / s.train.len() as f64;
        assert!((0.23..0.25).contains(&pos), "{pos}");
        assert_eq!(s.train.x.ncols(), s.test.x.ncols());
    }
}
