//! `manifest.json`: everything needed to know what a report came from and to re-run it: the
//! spec (text and parsed), every model's seed, settings and cache key, the data fingerprints,
//! versions, the git commit, timings and the machine.

use super::cache::sha256_hex;
use super::runner::Outcome;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// The folder holding the spec (git runs there, so a spec in a user's own project records that
/// project's commit).
fn spec_dir(spec: &Path) -> PathBuf {
    match spec.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// `git rev-parse HEAD` of the repository holding the spec, if it is in one.
pub fn git_commit(spec: &Path) -> Option<String> {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(spec_dir(spec))
        .args(["rev-parse", "HEAD"])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// True when that repository has uncommitted changes to tracked files.
fn git_dirty(spec: &Path) -> Option<bool> {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(spec_dir(spec))
        .args(["status", "--porcelain", "--untracked-files=no"])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    out.status.success().then_some(!out.stdout.is_empty())
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// `2026-11-24T10:03:12Z`.
pub fn iso_utc(t: SystemTime) -> String {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let r = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        r / 3600,
        r / 60 % 60,
        r % 60
    )
}

fn first_line_after(text: &str, key: &str) -> Option<String> {
    text.lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
}

/// CPU model, cores, memory, OS and architecture.
pub fn machine() -> Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_kb: Option<u64> = first_line_after(&meminfo, "MemTotal")
        .and_then(|v| v.split_whitespace().next().and_then(|x| x.parse().ok()));
    json!({
        "os": std::env::consts::OS,
        "arch": std::env::consts::ARCH,
        "cpu": first_line_after(&cpuinfo, "model name"),
        "logical_cpus": std::thread::available_parallelism().map(|n| n.get()).ok(),
        "memory_bytes": mem_kb.map(|k| k * 1024),
        "rayon_threads": rayon::current_num_threads(),
    })
}

/// The manifest of a finished run; `files` are the report's files, relative to its folder.
pub fn build(o: &Outcome, files: &[String]) -> Value {
    let a = &o.analysis;
    let models: Vec<Value> = a
        .instances
        .iter()
        .zip(&o.models)
        .map(|(i, m)| {
            json!({
                "name": i.name,
                "family": i.family,
                "architecture": i.architecture,
                "widths": i.widths,
                "precision": i.precision.name(),
                "seed": i.train.seed,
                "train": i.train,
                "data": i.data,
                "key": m.key,
                "model_file": m.path.display().to_string(),
                "activations_file": m.store.display().to_string(),
                "cached": m.cached,
                "activations_cached": m.store_cached,
                "activations_collected_on": m.collector,
                "train_accuracy": m.card.train_accuracy,
                "test_accuracy": m.card.test_accuracy,
                "training_seconds_when_trained": m.card.seconds,
                "training_threads_when_trained": m.card.threads,
                "train_seconds_this_run": m.train_seconds,
                "collect_seconds_this_run": m.collect_seconds,
            })
        })
        .collect();
    let data: serde_json::Map<String, Value> = o
        .data
        .iter()
        .map(|(k, d)| {
            (
                k.clone(),
                json!({
                    "spec": a.data[k],
                    "fingerprint_sha256": d.fingerprint,
                    "train_examples": d.splits.train.len(),
                    "test_examples": d.splits.test.len(),
                    "collect_examples": d.collect.len(),
                    "load_seconds": d.seconds,
                }),
            )
        })
        .collect();
    let comparisons: Vec<Value> = o
        .cka
        .iter()
        .map(|((i, j), r)| {
            json!({
                "a": a.side_name(*i),
                "b": a.side_name(*j),
                "measure": r.measure,
                "n": r.n,
                "seconds": r.seconds,
            })
        })
        .collect();
    let mut m = json!({
        "format": super::ownership::REPORT_FORMAT,
        "analysis": a.name,
        "title": a.title,
        "command": o.args.command,
        "spec_file": o.spec_path.display().to_string(),
        "spec_sha256": sha256_hex(o.spec_text.as_bytes()),
        "spec_text": o.spec_text,
        "spec": a,
        "seeds": a.instances.iter().map(|i| json!({"model": i.name, "seed": i.train.seed})).collect::<Vec<_>>(),
        "versions": {
            "strata": env!("CARGO_PKG_VERSION"),
            "cache_format": super::cache::FORMAT,
        },
        "git_commit": git_commit(&o.spec_path),
        "git_dirty": git_dirty(&o.spec_path),
        "git_note": "commit of the repository that holds the spec file",
        "started_utc": iso_utc(o.started),
        "timings_seconds": {
            "total_before_report": o.seconds,
            "data": o.data.values().map(|d| d.seconds).sum::<f64>(),
            "training": o.models.iter().map(|m| m.train_seconds).sum::<f64>(),
            "collect": o.models.iter().map(|m| m.collect_seconds).sum::<f64>(),
            "cka": o.cka_seconds,
            "robustness": o.robustness.iter().map(|r| r.seconds).sum::<f64>(),
            "compression": o.compression.seconds,
        },
        "jobs": o.args.jobs,
        "force": o.args.force,
        "cache_dir": o.args.cache.display().to_string(),
        "machine": machine(),
        "data": data,
        "models": models,
        "comparisons": comparisons,
        "files": files,
    });
    // Only a spec with `[robustness]` gets the key: the attacked networks and their time.
    if !o.robustness.is_empty() {
        m["robustness"] = o
            .robustness
            .iter()
            .map(|r| {
                json!({
                    "model": a.instances[r.instance].name,
                    "examples": r.examples,
                    "transfer": r.transfer.is_some(),
                    "seconds": r.seconds,
                })
            })
            .collect();
    }
    // Only a spec with `[compression]` gets the key: its sources, rows and time.
    if let Some(c) = super::compression_run::manifest(o) {
        m["compression"] = c;
    }
    // Only a spec with `[[store]]` files gets the key: other manifests keep their shape.
    if !o.stores.is_empty() {
        m["stores"] = stores(o);
    }
    m
}

/// Each `[[store]]`: its name, path as written and as read, size, SHA-256, examples and the
/// layers compared.
fn stores(o: &Outcome) -> Value {
    o.analysis
        .stores
        .iter()
        .zip(&o.stores)
        .map(|(s, f)| {
            json!({
                "name": s.name,
                "path": s.path,
                "file": s.file.display().to_string(),
                "bytes": f.bytes,
                "sha256": f.sha256,
                "examples": f.examples,
                "layers": f.layers,
                "read_seconds": f.seconds,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn iso_dates_match_known_instants() {
        let at = |s: u64| iso_utc(SystemTime::UNIX_EPOCH + Duration::from_secs(s));
        assert_eq!(at(0), "1970-01-01T00:00:00Z");
        // `date -u -d @951782400` = 2000-02-29 00:00:00 (a leap day of a century leap year).
        assert_eq!(at(951_782_400), "2000-02-29T00:00:00Z");
        // `date -u -d @1795000000` = 2026-11-18 11:06:40.
        assert_eq!(at(1_795_000_000), "2026-11-18T11:06:40Z");
    }
}
