//! What `strata run` may replace. A run swaps a new report into `REPORTS/NAME/`, which deletes
//! whatever was there; so it does that only to a folder strata made (one holding a strata
//! `manifest.json`, or an empty one), and never when the spec being run or the cache it reads
//! lives inside that folder. Checked before any training starts, and again just before the swap.

use crate::setting::{Setting, SettingError};
use anyhow::{bail, Result};
use std::path::{Component, Path, PathBuf};

/// The `format` tag every report manifest carries.
pub const REPORT_FORMAT: &str = "strata-report-1";

/// Refuse a run whose report folder `reports/name` is not strata's to replace, or that holds
/// the spec, a data file the spec reads (`data`), or the cache.
pub fn check_target(
    reports: &Path,
    name: &str,
    spec: &Path,
    data: &[PathBuf],
    cache: &Path,
) -> Result<()> {
    let fin = reports.join(name);
    let fin_abs = absolute(&fin);
    for d in data {
        if absolute(d).starts_with(&fin_abs) {
            return Err(SettingError::within(
                Setting::Reports,
                format!(
                    "the data file {} lies inside the report folder {} that this run would \
                     replace; move it out of it (or pass another ",
                    d.display(),
                    fin.display()
                ),
                ")",
            )
            .into());
        }
    }
    let spec_abs = absolute(spec);
    if spec.exists() && spec_abs.starts_with(&fin_abs) {
        return Err(SettingError::within(
            Setting::Reports,
            format!(
                "the spec {} lies inside the report folder {} that this run would replace; move \
                 the spec out of it (or pass another ",
                spec.display(),
                fin.display()
            ),
            ")",
        )
        .into());
    }
    let cache_abs = absolute(cache);
    if cache_abs.starts_with(&fin_abs) {
        return Err(SettingError::within(
            Setting::Cache,
            format!(
                "the cache {} lies inside the report folder {} that this run would replace; pass \
                 another ",
                cache.display(),
                fin.display()
            ),
            " outside it (the default is .cache in the reports folder)",
        )
        .into());
    }
    if fin_abs.starts_with(&cache_abs) {
        return Err(SettingError::within(
            Setting::Cache,
            format!(
                "the report folder {} lies inside the cache {}; pass another ",
                fin.display(),
                cache.display()
            ),
            " or another reports folder",
        )
        .into());
    }
    check_replaceable(&fin)
}

/// Refuse to replace `fin` unless it is missing, empty, or a report strata wrote.
pub fn check_replaceable(fin: &Path) -> Result<()> {
    let meta = match std::fs::symlink_metadata(fin) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => bail!("cannot inspect {}: {e}", fin.display()),
    };
    if !meta.is_dir() {
        return Err(SettingError::within(
            Setting::Reports,
            format!(
                "{} exists and is not a strata report folder (it is a {}); move it away or pass \
                 another ",
                fin.display(),
                if meta.file_type().is_symlink() {
                    "symbolic link"
                } else {
                    "file"
                }
            ),
            "",
        )
        .into());
    }
    if is_strata_report(fin) {
        return Ok(());
    }
    let empty = std::fs::read_dir(fin)
        .map(|mut rd| rd.next().is_none())
        .unwrap_or(false);
    if empty {
        return Ok(());
    }
    Err(SettingError::within(
        Setting::Reports,
        format!(
            "{} exists and was not written by strata (no strata manifest.json in it), so strata \
             will not replace it; move or rename it, or pass another ",
            fin.display()
        ),
        "",
    )
    .into())
}

/// A folder holding a `manifest.json` whose `format` is strata's report format.
pub fn is_strata_report(dir: &Path) -> bool {
    let Ok(text) = std::fs::read_to_string(dir.join("manifest.json")) else {
        return false;
    };
    serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v.get("format")?.as_str().map(|f| f == REPORT_FORMAT))
        .unwrap_or(false)
}

/// `path` made absolute with symbolic links resolved as far as it exists, and `..`/`.` folded
/// in the part that does not exist yet, so two spellings of one place compare equal.
pub fn absolute(path: &Path) -> PathBuf {
    let base = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .unwrap_or_else(|_| PathBuf::from("/"))
            .join(path)
    };
    let mut existing = base.clone();
    let mut rest: Vec<std::ffi::OsString> = Vec::new();
    loop {
        if let Ok(c) = existing.canonicalize() {
            let mut out = c;
            for part in rest.iter().rev() {
                let p = Path::new(part);
                match p.components().next() {
                    Some(Component::ParentDir) => {
                        out.pop();
                    }
                    Some(Component::CurDir) => {}
                    _ => out.push(p),
                }
            }
            return out;
        }
        match (existing.file_name(), existing.parent()) {
            (Some(f), Some(parent)) => {
                rest.push(f.to_os_string());
                existing = parent.to_path_buf();
            }
            _ => {
                // `..` at the end of a missing path has no file name: fold it literally.
                let Some(parent) = existing.parent() else {
                    return base;
                };
                rest.push(existing.components().next_back().map_or_else(
                    || std::ffi::OsString::from("."),
                    |c| c.as_os_str().to_os_string(),
                ));
                existing = parent.to_path_buf();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("strata-own-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn only_strata_reports_or_empty_folders_are_replaceable() {
        let d = scratch("repl");
        assert!(check_replaceable(&d.join("missing")).is_ok());
        std::fs::create_dir(d.join("empty")).unwrap();
        assert!(check_replaceable(&d.join("empty")).is_ok());
        let user = d.join("user");
        std::fs::create_dir(&user).unwrap();
        std::fs::write(user.join("thesis.tex"), "x").unwrap();
        let e = check_replaceable(&user).unwrap_err().to_string();
        assert!(e.contains("not written by strata"), "{e}");
        // A manifest.json that is not strata's does not make a folder strata's.
        std::fs::write(user.join("manifest.json"), r#"{"format":"npm"}"#).unwrap();
        assert!(check_replaceable(&user).is_err());
        std::fs::write(
            user.join("manifest.json"),
            format!(r#"{{"format":"{REPORT_FORMAT}"}}"#),
        )
        .unwrap();
        assert!(check_replaceable(&user).is_ok());
        std::fs::write(d.join("file"), "x").unwrap();
        assert!(check_replaceable(&d.join("file")).is_err());
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn spec_or_cache_inside_the_report_is_refused() {
        let d = scratch("inside");
        let fin = d.join("reports").join("a");
        std::fs::create_dir_all(&fin).unwrap();
        std::fs::write(
            fin.join("manifest.json"),
            format!(r#"{{"format":"{REPORT_FORMAT}"}}"#),
        )
        .unwrap();
        let spec = fin.join("a.toml");
        std::fs::write(&spec, "x").unwrap();
        let reports = d.join("reports");
        let cache = reports.join(".cache");
        let e = check_target(&reports, "a", &spec, &[], &cache)
            .unwrap_err()
            .to_string();
        assert!(e.contains("spec") && e.contains("inside"), "{e}");
        let outside = d.join("a.toml");
        std::fs::write(&outside, "x").unwrap();
        assert!(check_target(&reports, "a", &outside, &[], &cache).is_ok());
        // The same place spelled with `..`, and a cache that does not exist yet.
        let sneaky = reports.join("x").join("..").join("a").join("cache");
        let e = check_target(&reports, "a", &outside, &[], &sneaky)
            .unwrap_err()
            .to_string();
        assert!(e.contains("cache") && e.contains("inside"), "{e}");
        let e = check_target(&reports, "a", &outside, &[], &reports)
            .unwrap_err()
            .to_string();
        assert!(e.contains("inside the cache"), "{e}");
        let csv = fin.join("x.csv");
        let e = check_target(&reports, "a", &outside, &[csv], &cache)
            .unwrap_err()
            .to_string();
        assert!(e.contains("data file") && e.contains("inside"), "{e}");
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn absolute_folds_missing_parts() {
        let d = scratch("abs");
        let a = absolute(&d.join("no").join("..").join("yes"));
        assert_eq!(a, d.canonicalize().unwrap().join("yes"));
        let _ = std::fs::remove_dir_all(&d);
    }
}
