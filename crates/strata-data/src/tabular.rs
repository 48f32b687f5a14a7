//! Tabular data for classifiers: UCI Adult and any CSV with a header and a label column.
//!
//! Numeric columns are standardized with the training split's mean and standard deviation;
//! other columns are one-hot encoded with the categories seen in the training split (a category
//! first seen at test time encodes as all zeros). Missing values (`?` or empty) are their own
//! category in categorical columns and the training mean in numeric ones.

use crate::dataset::{Dataset, Splits};
use crate::{DataError, Result};
use ndarray::Array2;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn read_text(path: &Path) -> Result<String> {
    let raw = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    let bytes = if raw.starts_with(&[0x1f, 0x8b]) {
        use std::io::Read;
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .map_err(|e| DataError::corrupt(path, format!("bad gzip stream: {e}")))?;
        out
    } else {
        raw
    };
    String::from_utf8(bytes).map_err(|_| DataError::corrupt(path, "not UTF-8 text"))
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

fn missing(v: &str) -> bool {
    v.is_empty() || v == "?"
}

/// Encode string rows (features only) into a matrix, fitting the encoding on `train`.
fn encode(train: &[Vec<String>], test: &[Vec<String>]) -> (Array2<f32>, Array2<f32>) {
    let ncol = train.first().map_or(0, |r| r.len());
    enum Col {
        Num { mean: f64, sd: f64 },
        Cat { cats: BTreeMap<String, usize> },
    }
    let mut cols = Vec::new();
    for j in 0..ncol {
        let numeric = train
            .iter()
            .all(|r| missing(&r[j]) || r[j].parse::<f64>().is_ok_and(f64::is_finite));
        if numeric {
            let vals: Vec<f64> = train.iter().filter_map(|r| r[j].parse().ok()).collect();
            let n = vals.len().max(1) as f64;
            let mean = vals.iter().sum::<f64>() / n;
            let sd = (vals.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n).sqrt();
            cols.push(Col::Num { mean, sd });
        } else {
            let mut cats = BTreeMap::new();
            for r in train {
                let k = cats.len();
                cats.entry(r[j].clone()).or_insert(k);
            }
            // Stable, readable order: alphabetical.
            for (i, v) in cats.values_mut().enumerate() {
                *v = i;
            }
            cols.push(Col::Cat { cats });
        }
    }
    let width: usize = cols
        .iter()
        .map(|c| match c {
            Col::Num { .. } => 1,
            Col::Cat { cats } => cats.len(),
        })
        .sum();
    let run = |rows: &[Vec<String>]| {
        let mut m = Array2::<f32>::zeros((rows.len(), width));
        for (i, r) in rows.iter().enumerate() {
            let mut at = 0;
            for (j, c) in cols.iter().enumerate() {
                match c {
                    Col::Num { mean, sd } => {
                        let v = r[j]
                            .parse::<f64>()
                            .ok()
                            .filter(|v| v.is_finite())
                            .unwrap_or(*mean);
                        m[[i, at]] = if *sd > 0.0 {
                            ((v - mean) / sd) as f32
                        } else {
                            0.0
                        };
                        at += 1;
                    }
                    Col::Cat { cats } => {
                        if let Some(&k) = cats.get(&r[j]) {
                            m[[i, at + k]] = 1.0;
                        }
                        at += cats.len();
                    }
                }
            }
        }
        m
    };
    (run(train), run(test))
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

/// UCI Adult (`adult.data[.gz]` and `adult.test[.gz]` in `dir`): 14 features (6 numeric,
/// 8 categorical, one-hot), label 1 for income `>50K`.
pub fn adult(dir: &Path) -> Result<Splits> {
    let find = |stem: &str| -> Result<PathBuf> {
        [format!("{stem}.gz"), stem.to_string()]
            .into_iter()
            .map(|n| dir.join(n))
            .find(|p| p.exists())
            .ok_or_else(|| DataError::invalid(dir, format!("no {stem}[.gz] here")))
    };
    let parse = |path: &Path| -> Result<(Vec<Vec<String>>, Vec<u32>)> {
        let text = read_text(path)?;
        let (mut rows, mut labels) = (Vec::new(), Vec::new());
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
            labels.push(u32::from(label.trim_end_matches('.') == ">50K"));
            rows.push(f);
        }
        Ok((rows, labels))
    };
    let (tr, ytr) = parse(&find("adult.data")?)?;
    let (te, yte) = parse(&find("adult.test")?)?;
    let (xtr, xte) = encode(&tr, &te);
    Ok(Splits {
        name: "adult".into(),
        train: dataset(xtr, ytr, 2),
        test: dataset(xte, yte, 2),
    })
}

/// Any CSV with a header row: `label` names the class column (its distinct values, sorted,
/// become classes 0..k-1); the rest are features. Split 80/20 by a fixed shuffle.
pub fn csv(path: &Path, label: &str) -> Result<Splits> {
    let text = read_text(path)?;
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let header = fields(
        lines
            .next()
            .ok_or_else(|| DataError::invalid(path, "empty CSV"))?,
    );
    let li = header.iter().position(|h| h == label).ok_or_else(|| {
        DataError::invalid(
            path,
            format!(
                "no column named '{label}' (columns: {}); pass --label NAME",
                header.join(", ")
            ),
        )
    })?;
    let (mut rows, mut raw_labels) = (Vec::new(), Vec::new());
    for (i, line) in lines.enumerate() {
        let mut f = fields(line);
        if f.len() != header.len() {
            return Err(DataError::corrupt(
                path,
                format!(
                    "row {}: {} fields, the header has {}",
                    i + 2,
                    f.len(),
                    header.len()
                ),
            ));
        }
        raw_labels.push(f.remove(li));
        rows.push(f);
    }
    if rows.len() < 2 {
        return Err(DataError::invalid(path, "needs at least 2 data rows"));
    }
    let classes: BTreeMap<String, u32> = raw_labels
        .iter()
        .cloned()
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .enumerate()
        .map(|(i, v)| (v, i as u32))
        .collect();
    let y: Vec<u32> = raw_labels.iter().map(|v| classes[v]).collect();
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
    let (xtr, xte) = encode(&tr, &te);
    let k = classes.len();
    Ok(Splits {
        name: format!("csv:{}", path.display()),
        train: dataset(xtr, ytr, k),
        test: dataset(xte, yte, k),
    })
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

    #[test]
    fn adult_has_its_documented_size_when_present() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/datasets/adult");
        if !dir.is_dir() {
            eprintln!("note: UCI Adult not found at {}; skipped", dir.display());
            return;
        }
        let s = adult(&dir).unwrap();
        assert_eq!((s.train.len(), s.test.len()), (32_561, 16_281));
        // About 24% of the training rows earn >50K.
        let pos = s.train.y.iter().filter(|&&y| y == 1).count() as f64 / s.train.len() as f64;
        assert!((0.23..0.25).contains(&pos), "{pos}");
        assert_eq!(s.train.x.ncols(), s.test.x.ncols());
    }
}
