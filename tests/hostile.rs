//! The `strata` binary against a hostile but realistic user: folders it must not delete, inputs
//! named as outputs, sizes that would exhaust the machine, and values that would read as
//! results. Each case asserts the exit status, the message's key words, and that nothing outside
//! strata's own folders changed (a hash of the tree before and after).
#![allow(clippy::unwrap_used)] // in tests, a failed unwrap is a failed test, with its location

use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};
use strata_data::npy;

mod common;
use common::{scratch, strata};

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Every path under `root` (sorted) with its bytes and, for files, its permissions.
fn tree_hash(root: &Path) -> String {
    fn walk(dir: &Path, root: &Path, out: &mut Vec<(PathBuf, Vec<u8>)>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir).unwrap().flatten().collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let p = e.path();
            let rel = p.strip_prefix(root).unwrap().to_path_buf();
            let meta = std::fs::symlink_metadata(&p).unwrap();
            if meta.is_dir() {
                out.push((rel, b"<dir>".to_vec()));
                walk(&p, root, out);
            } else if meta.file_type().is_symlink() {
                let t = std::fs::read_link(&p).unwrap();
                out.push((rel, t.to_string_lossy().as_bytes().to_vec()));
            } else {
                out.push((rel, std::fs::read(&p).unwrap()));
            }
        }
    }
    let mut all = Vec::new();
    walk(root, root, &mut all);
    let mut h = Sha256::new();
    for (p, bytes) in all {
        h.update(p.to_string_lossy().as_bytes());
        h.update([0]);
        h.update((bytes.len() as u64).to_le_bytes());
        h.update(&bytes);
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// One error line on stderr, non-zero exit, and the line holds every key word.
fn assert_refused(o: &Output, words: &[&str]) {
    let err = stderr(o);
    assert!(
        !o.status.success(),
        "expected a refusal, got success: {err}"
    );
    assert_eq!(o.status.code(), Some(1), "exit status: {err}");
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(lines.len(), 1, "one error line: {err}");
    for w in words {
        assert!(err.contains(w), "'{w}' missing from: {err}");
    }
    assert!(!err.contains("panicked"), "{err}");
}

fn write_npy(path: &Path, rows: usize, cols: usize, seed: u64) {
    let mut r = strata_data::rng::Rng::new(seed);
    let data: Vec<f32> = (0..rows * cols).map(|_| r.normal() as f32).collect();
    let mut v = Vec::new();
    npy::write_f32(&mut v, &[rows, cols], &data).unwrap();
    std::fs::write(path, v).unwrap();
}

/// Train a one-epoch, 8-unit MLP on the digits into `model` (plus `extra` flags).
fn train_tiny(model: &str, extra: &[&str]) {
    let mut args = vec![
        "train", "--data", "digits", "--widths", "8", "--epochs", "1", "--out", model, "--quiet",
    ];
    args.extend_from_slice(extra);
    let o = strata(&args);
    assert!(o.status.success(), "{}", stderr(&o));
}

/// `strata collect` of `model` on the digits into `out`, with `extra` flags before `--out`.
fn collect_args<'a>(model: &'a str, extra: &[&'a str], out: &'a Path) -> Vec<&'a str> {
    let mut args = vec!["collect", "--model", model, "--data", "digits"];
    args.extend_from_slice(extra);
    args.extend(["--out", out.to_str().unwrap()]);
    args
}

const SPEC: &str = r#"
title = "hostile"
[data.digits]
source = "digits"
collect_split = "train"
collect_limit = 100

[[model]]
name = "mlp"
data = "digits"
widths = [16]
precisions = ["float"]
seeds = [0]
epochs = 1
"#;

/// A scratch folder holding `SPEC` as `file`: (the folder, the spec, its `reports` folder).
fn spec_in(dir: &str, file: &str) -> (PathBuf, PathBuf, PathBuf) {
    let d = scratch(dir);
    let spec = d.join(file);
    std::fs::write(&spec, SPEC).unwrap();
    let reports = d.join("reports");
    (d, spec, reports)
}

fn run_spec(spec: &Path, reports: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "run",
        spec.to_str().unwrap(),
        "--reports",
        reports.to_str().unwrap(),
        "--quiet",
    ];
    args.extend_from_slice(extra);
    strata(&args)
}

#[test]
fn run_never_replaces_a_folder_strata_did_not_make() {
    let (d, spec, reports) = spec_in("userfolder", "thesis.toml");
    std::fs::create_dir_all(reports.join("thesis").join("chapters")).unwrap();
    std::fs::write(reports.join("thesis").join("chapters/one.tex"), "my work").unwrap();
    let before = tree_hash(&d);
    let o = run_spec(&spec, &reports, &[]);
    assert_refused(&o, &["thesis", "not written by strata", "--reports"]);
    assert_eq!(tree_hash(&d), before, "nothing changed");

    // A plain file at the report's name is refused too.
    let (d2, spec2, reports2) = spec_in("userfile", "notes.toml");
    std::fs::create_dir_all(&reports2).unwrap();
    std::fs::write(reports2.join("notes"), "a file").unwrap();
    let before = tree_hash(&d2);
    let o = run_spec(&spec2, &reports2, &[]);
    assert_refused(&o, &["not a strata report folder"]);
    assert_eq!(tree_hash(&d2), before);
    let _ = std::fs::remove_dir_all(&d);
    let _ = std::fs::remove_dir_all(&d2);
}

#[test]
fn run_replaces_its_own_report_but_not_a_spec_or_cache_inside_it() {
    let (d, spec, reports) = spec_in("own", "own.toml");
    let o = run_spec(&spec, &reports, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let fin = reports.join("own");
    assert!(fin.join("manifest.json").is_file());
    // Its own report is strata's: a second run replaces it.
    let o = run_spec(&spec, &reports, &[]);
    assert!(o.status.success(), "{}", stderr(&o));

    // The spec stored inside its own report folder.
    let inner = fin.join("own.toml");
    std::fs::write(&inner, SPEC).unwrap();
    let before = tree_hash(&d);
    let o = run_spec(&inner, &reports, &[]);
    assert_refused(&o, &["spec", "inside the report folder"]);
    assert_eq!(tree_hash(&d), before);

    // A cache inside the report folder.
    let cache = fin.join("cache");
    let o = run_spec(&spec, &reports, &["--cache", cache.to_str().unwrap()]);
    assert_refused(&o, &["cache", "inside the report folder", "--cache"]);
    assert_eq!(tree_hash(&d), before);
    assert!(!cache.exists());
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn outputs_never_replace_inputs() {
    let d = scratch("sameio");
    let out = d.join("out");
    std::fs::create_dir_all(&out).unwrap();
    // strata detects formats by their bytes: an .npy named cka.parquet is a valid input.
    let x = out.join("cka.parquet");
    write_npy(&x, 40, 6, 1);
    std::fs::hard_link(&x, d.join("alias.npy")).unwrap();
    let before = tree_hash(&d);
    let xs = x.to_str().unwrap();
    let outs = out.to_str().unwrap();
    let o = strata(&["cka", xs, xs, "--out", outs]);
    assert_refused(&o, &["is the input", "cka.parquet"]);
    // The same file through a hard link, and through another spelling of the folder.
    let alias = d.join("alias.npy");
    let dotted = format!("{}/./", outs);
    let o = strata(&[
        "cka",
        alias.to_str().unwrap(),
        alias.to_str().unwrap(),
        "--out",
        &dotted,
    ]);
    assert_refused(&o, &["is the input"]);
    // Baseline measures write MEASURE.* and may take their input from there too.
    let y = out.join("cca.csv");
    write_npy(&y, 40, 6, 2);
    let before_y = tree_hash(&d);
    let o = strata(&[
        "cka",
        y.to_str().unwrap(),
        alias.to_str().unwrap(),
        "--measure",
        "cca",
        "--out",
        outs,
    ]);
    assert_refused(&o, &["is the input", "cca.csv"]);
    assert_eq!(tree_hash(&d), before_y);
    let _ = before;
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn cka_out_is_written_as_a_set_beside_the_users_files() {
    let d = scratch("outset");
    let (a, b) = (d.join("a.npy"), d.join("b.npy"));
    write_npy(&a, 50, 8, 3);
    write_npy(&b, 50, 5, 4);
    let out = d.join("out");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("notes.md"), "mine").unwrap();
    let o = strata(&[
        "cka",
        a.to_str().unwrap(),
        b.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let mut names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "cka.csv",
            "cka.json",
            "cka.parquet",
            "heatmap.png",
            "heatmap.svg",
            "notes.md"
        ]
    );
    assert_eq!(
        std::fs::read_to_string(out.join("notes.md")).unwrap(),
        "mine"
    );
    let _ = std::fs::remove_dir_all(&d);
}

/// Run `strata ARGS` under an address-space limit of `mib` MiB, killed after `secs` seconds.
fn strata_limited(mib: u64, secs: u64, args: &[&str]) -> (Output, Duration) {
    let t = Instant::now();
    let mut child = Command::new("bash")
        .arg("-c")
        .arg(format!("ulimit -v {}; exec \"$0\" \"$@\"", mib * 1024))
        .arg(env!("CARGO_BIN_EXE_strata"))
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if t.elapsed() > Duration::from_secs(secs) {
            let _ = child.kill();
            let o = child.wait_with_output().unwrap();
            panic!(
                "strata {args:?} still running after {secs} s under a {mib} MiB limit: {}",
                stderr(&o)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    (child.wait_with_output().unwrap(), t.elapsed())
}

#[test]
fn sizes_that_would_exhaust_the_machine_are_refused_up_front() {
    let d = scratch("bombs");
    let m = d.join("m");
    let ms = m.to_str().unwrap();
    let train = |flag, value| vec!["train", "--data", "digits", flag, value, "--out", ms];
    let audit = |extra: &[&'static str]| [&["mia", "audit", "--data", "digits"], extra].concat();
    let cases: Vec<(Vec<&str>, Vec<&str>)> = vec![
        (train("--widths", "100000000"), vec!["--widths"]),
        (train("--widths", "60000,60000"), vec!["memory"]),
        (train("--epochs", "1000000000"), vec!["--epochs", "100000"]),
        (
            audit(&["--bootstrap", "1000000000000"]),
            vec!["--bootstrap", "100000"],
        ),
        (
            audit(&["--bootstrap", "0"]),
            vec!["--bootstrap", "between 2"],
        ),
        (
            audit(&["--references", "100000000"]),
            vec!["--references", "1024"],
        ),
        (
            audit(&["--references", "4", "--shadows", "9"]),
            vec!["--shadows"],
        ),
        (
            vec!["bench", "binary-gemm", "--square", "10000000"],
            vec!["--square", "memory"],
        ),
        (
            vec!["bench", "cka", "--n", "10000000", "--no-numpy"],
            vec!["--n 10000000", "memory"],
        ),
        (
            vec!["bench", "mlp", "--rows", "100000000000", "--device", "cpu"],
            vec!["--rows", "memory"],
        ),
    ];
    let before = tree_hash(&d);
    for (args, words) in cases {
        let (o, _) = strata_limited(2048, 120, &args);
        assert_refused(&o, &words);
        assert_eq!(tree_hash(&d), before, "{args:?} wrote something");
    }
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn privacy_limits_hold_in_specs_and_name_spec_keys() {
    let d = scratch("privspec");
    for (body, words) in [
        (
            "bootstrap = 1000000000000",
            vec!["[privacy] bootstrap", "100000"],
        ),
        ("bootstrap = 1", vec!["[privacy] bootstrap", "between 2"]),
        ("references = 100000000", vec!["[privacy] references"]),
        ("pool = 5", vec!["[privacy] pool"]),
    ] {
        let text = format!("{SPEC}\n[privacy]\nmodels = [\"mlp\"]\n{body}\n");
        let spec = d.join("p.toml");
        std::fs::write(&spec, text).unwrap();
        let o = run_spec(&spec, &d.join("reports"), &[]);
        assert_refused(&o, &words);
        assert!(!stderr(&o).contains("--"), "{body}: {}", stderr(&o));
    }
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn limits_and_values_that_would_read_as_results() {
    let d = scratch("values");
    let model = d.join("m");
    let ms = model.to_str().unwrap();
    train_tiny(ms, &["--limit", "200"]);
    let store = d.join("s.arrow");
    let o = strata(&collect_args(ms, &["--limit", "0"], &store));
    assert_refused(&o, &["--limit", "at least 1"]);
    assert!(!store.exists());
    // The store may not be the model file itself.
    let st = d.join("m.safetensors");
    let before = std::fs::read(&st).unwrap();
    let o = strata(&collect_args(ms, &[], &st));
    assert_refused(&o, &["is the input"]);
    assert_eq!(std::fs::read(&st).unwrap(), before);

    // An RBF bandwidth so wide every kernel value rounds to 1 is named as such.
    let a = d.join("a.npy");
    write_npy(&a, 30, 4, 9);
    let o = strata(&[
        "cka",
        a.to_str().unwrap(),
        a.to_str().unwrap(),
        "--kernel",
        "rbf",
        "--rbf-threshold",
        "1e308",
    ]);
    assert_refused(&o, &["bandwidth so wide"]);
    assert!(
        !stderr(&o).contains("constant representation"),
        "{}",
        stderr(&o)
    );
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn a_truncated_cached_model_is_retrained() {
    let (d, spec, reports) = spec_in("trunc", "t.toml");
    let o = run_spec(&spec, &reports, &["--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let models = reports.join(".cache").join("models");
    let entry = std::fs::read_dir(&models)
        .unwrap()
        .flatten()
        .next()
        .unwrap()
        .path();
    let weights = entry.join("model.safetensors");
    let bytes = std::fs::read(&weights).unwrap();
    std::fs::write(&weights, &bytes[..bytes.len() / 3]).unwrap();
    let o = run_spec(&spec, &reports, &["--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v = common::last_json(&o);
    assert_eq!(v["trained"], 1, "the truncated model is retrained: {v}");
    assert_eq!(
        std::fs::read(&weights).unwrap().len(),
        bytes.len(),
        "rebuilt whole"
    );
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn an_allocation_failure_is_one_error_line_not_an_abort() {
    let d = scratch("oom");
    let input = d.join("r.bin");
    let mut r = strata_data::rng::Rng::new(5);
    let bytes: Vec<u8> = (0..20_000_000).map(|_| r.next_u64() as u8).collect();
    std::fs::write(&input, &bytes).unwrap();
    let out = d.join("r.stz");
    // 60 MiB of address space cannot hold the 20 MB input next to the compressor's tables.
    let (o, _) = strata_limited(
        60,
        120,
        &[
            "zip",
            "compress",
            input.to_str().unwrap(),
            out.to_str().unwrap(),
        ],
    );
    assert_refused(&o, &["memory"]);
    assert!(!out.exists(), "nothing half-written");
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn tabular_data_that_would_give_silent_wrong_answers() {
    let d = scratch("csv");
    let csv = d.join("t.csv");
    // A byte-order mark, a numeric column with one `nan` and one `?`, and a two-class label.
    let mut text = String::from("\u{feff}age,city,y\n");
    for i in 0..120 {
        let age = match i {
            7 => "nan".to_string(),
            9 => "?".to_string(),
            _ => format!("{}", 20 + i % 37),
        };
        let city = ["a", "b", "c"][i % 3];
        text.push_str(&format!("{age},{city},{}\n", i % 2));
    }
    std::fs::write(&csv, &text).unwrap();
    let data = format!("csv:{}", csv.display());
    let model = d.join("m");
    let o = strata(&[
        "train",
        "--data",
        &data,
        "--label",
        "y",
        "--widths",
        "8",
        "--epochs",
        "1",
        "--out",
        model.to_str().unwrap(),
        "--quiet",
    ]);
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("age") && err.contains("missing"),
        "says how: {err}"
    );
    let card: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("m.json")).unwrap()).unwrap();
    // age (1) + its missing indicator (1) + city one-hot (3): not one column per distinct age.
    let shape = card["config"]["input_shape"].to_string();
    assert_eq!(shape, "[1,1,5]", "{card}");

    // A label with one class, and a float label with many distinct values, are refused.
    for (col, words) in [("one", vec!["single class"]), ("score", vec!["regression"])] {
        let mut t = String::from("x,one,score\n");
        for i in 0..200 {
            t.push_str(&format!("{},{},{}\n", i % 5, "k", (i as f64) * 0.37));
        }
        std::fs::write(&csv, &t).unwrap();
        let before = tree_hash(&d);
        let o = strata(&[
            "mia", "audit", "--data", &data, "--label", col, "--epochs", "1",
        ]);
        assert_refused(&o, &words);
        assert_eq!(tree_hash(&d), before);
    }
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn a_model_card_claiming_a_huge_input_is_refused_before_building() {
    let d = scratch("card");
    let model = d.join("m");
    let ms = model.to_str().unwrap();
    train_tiny(ms, &[]);
    let card_path = d.join("m.json");
    let mut card: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&card_path).unwrap()).unwrap();
    card["config"]["input_shape"] = serde_json::json!([1, 100000, 100000]);
    std::fs::write(&card_path, card.to_string()).unwrap();
    let before = tree_hash(&d);
    let store = d.join("s.arrow");
    for args in [
        collect_args(ms, &[], &store),
        vec!["eval", "--model", ms, "--data", "digits"],
    ] {
        let (o, _) = strata_limited(2048, 60, &args);
        assert_refused(&o, &["input shape", "m.json"]);
        assert_eq!(tree_hash(&d), before);
    }
    // Weights and card are written with the same permissions.
    train_tiny(ms, &[]);
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode();
    assert_eq!(mode(&d.join("m.safetensors")), mode(&card_path));
    let _ = std::fs::remove_dir_all(&d);
}
