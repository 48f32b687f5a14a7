//! End-to-end tests of the `strata` binary: what a user types, what they get back.
#![allow(clippy::unwrap_used)] // in tests, a failed unwrap is a failed test, with its location
#![allow(clippy::needless_range_loop)] // reference code indexes like the formulas it transcribes

use std::path::{Path, PathBuf};
use std::process::Output;
use strata_data::npy;
use strata_data::rng::Rng;

mod common;
use common::{last_json, scratch, stdout, strata};

fn write_npy(path: &Path, rows: usize, cols: usize, data: &[f32]) {
    let mut v = Vec::new();
    npy::write_f32(&mut v, &[rows, cols], data).unwrap();
    std::fs::write(path, v).unwrap();
}

fn write_npz(path: &Path, arrays: &[(&str, usize, usize, Vec<f32>)]) {
    use std::io::Write;
    let mut z = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    for (name, r, c, data) in arrays {
        z.start_file(
            format!("{name}.npy"),
            zip::write::SimpleFileOptions::default(),
        )
        .unwrap();
        let mut v = Vec::new();
        npy::write_f32(&mut v, &[*r, *c], data).unwrap();
        z.write_all(&v).unwrap();
    }
    z.finish().unwrap();
}

/// Linear CKA, biased, from the definition in f64 (feature space, explicit centering).
fn reference_linear_cka(x: &[f32], y: &[f32], n: usize) -> f64 {
    let center = |m: &[f32]| -> Vec<Vec<f64>> {
        let p = m.len() / n;
        let rows: Vec<Vec<f64>> = (0..n)
            .map(|i| (0..p).map(|j| m[i * p + j] as f64).collect())
            .collect();
        let means: Vec<f64> = (0..p)
            .map(|j| rows.iter().map(|r| r[j]).sum::<f64>() / n as f64)
            .collect();
        rows.into_iter()
            .map(|r| r.iter().zip(&means).map(|(v, mu)| v - mu).collect())
            .collect()
    };
    let (x, y) = (center(x), center(y));
    let cross = |a: &Vec<Vec<f64>>, b: &Vec<Vec<f64>>| -> f64 {
        let (pa, pb) = (a[0].len(), b[0].len());
        let mut s = 0.0;
        for i in 0..pa {
            for j in 0..pb {
                let d: f64 = (0..n).map(|k| a[k][i] * b[k][j]).sum();
                s += d * d;
            }
        }
        s
    };
    cross(&x, &y) / (cross(&x, &x) * cross(&y, &y)).sqrt()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn single_pair_prints_the_value_and_json() {
    let d = scratch("single");
    let mut r = Rng::new(5);
    let (n, px, py) = (64, 9, 13);
    let x: Vec<f32> = (0..n * px).map(|_| r.normal() as f32).collect();
    let y: Vec<f32> = (0..n * py)
        .map(|i| x[(i / py) * px + i % px.min(py)] + r.normal() as f32)
        .collect();
    write_npy(&d.join("x.npy"), n, px, &x);
    write_npy(&d.join("y.npy"), n, py, &y);
    let want = reference_linear_cka(&x, &y, n);
    let o = strata(&[
        "cka",
        d.join("x.npy").to_str().unwrap(),
        d.join("y.npy").to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let got: f64 = stdout(&o)
        .trim()
        .parse()
        .expect("stdout is the value alone");
    assert!((got - want).abs() < 1e-5, "{got} vs {want}");

    let o = strata(&[
        "cka",
        d.join("x.npy").to_str().unwrap(),
        d.join("y.npy").to_str().unwrap(),
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert!((v["cka"].as_f64().unwrap() - want).abs() < 1e-5);
    assert_eq!(v["n"], 64);
    assert_eq!(v["kernel"], "linear");
    assert_eq!(v["estimator"], "biased");
}

/// `value` without its timing, so two runs can be compared whole.
fn untimed(mut v: serde_json::Value) -> serde_json::Value {
    if let Some(o) = v.as_object_mut() {
        o.remove("seconds");
    }
    v
}

#[test]
fn permutations_and_bootstrap_add_p_values_and_intervals() {
    let d = scratch("significance");
    let mut r = Rng::new(9);
    let n = 40;
    let x: Vec<f32> = (0..n * 6).map(|_| r.normal() as f32).collect();
    // Y shares X's first four features (plus noise); Z is unrelated.
    let y: Vec<f32> = (0..n * 4)
        .map(|i| x[(i / 4) * 6 + i % 4] + 0.5 * r.normal() as f32)
        .collect();
    let z: Vec<f32> = (0..n * 5).map(|_| r.normal() as f32).collect();
    let (px, py) = (d.join("x.npy"), d.join("y.npy"));
    write_npy(&px, n, 6, &x);
    write_npy(&py, n, 4, &y);
    let (sx, sy) = (px.to_str().unwrap(), py.to_str().unwrap());
    let run = |extra: &[&str]| {
        let mut args = vec!["cka", sx, sy, "--json"];
        args.extend_from_slice(extra);
        let o = strata(&args);
        assert!(o.status.success(), "{}", stderr(&o));
        last_json(&o)
    };
    let flags = ["--permutations", "49", "--bootstrap", "60", "--seed", "5"];
    let v = run(&flags);
    let p = v["p_value"].as_f64().expect("p_value");
    assert!(p > 0.0 && p <= 1.0, "{p}");
    assert_eq!(p, 0.02, "dependent layers: p is its floor 1/(49+1)");
    for k in [
        "null_mean",
        "null_q95",
        "z",
        "null_sd",
        "ci_low",
        "ci_high",
        "boot_sd",
    ] {
        assert!(v[k].as_f64().is_some_and(f64::is_finite), "{k}: {v}");
    }
    let cka = v["cka"].as_f64().unwrap();
    assert!(v["null_mean"].as_f64().unwrap() < cka && v["null_q95"].as_f64().unwrap() < cka);
    assert!(v["ci_low"].as_f64().unwrap() <= v["ci_high"].as_f64().unwrap());
    assert_eq!(
        (v["permutations"].clone(), v["seed"].clone()),
        (49.into(), 5.into())
    );
    // Same seed, same numbers; another seed, another null.
    assert_eq!(untimed(run(&flags)), untimed(v.clone()));
    let other = run(&["--permutations", "49", "--seed", "6"]);
    assert_ne!(other["null_mean"], v["null_mean"]);
    assert_eq!(other["cka"], v["cka"]);

    // A matrix: every cell gets its own p-value; unrelated layers are not significant.
    let (pa, pb) = (d.join("a.npz"), d.join("b.npz"));
    write_npz(&pa, &[("x", n, 6, x.clone()), ("z", n, 5, z.clone())]);
    write_npz(&pb, &[("y", n, 4, y.clone())]);
    let out = d.join("out");
    let o = strata(&[
        "cka",
        pa.to_str().unwrap(),
        pb.to_str().unwrap(),
        "--permutations",
        "49",
        "--json",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let m = last_json(&o);
    let pv = m["p_value"].as_array().unwrap();
    assert_eq!(pv.len(), 2);
    for row in pv {
        let q = row[0].as_f64().unwrap();
        assert!(q > 0.0 && q <= 1.0, "{q}");
    }
    assert_eq!(pv[0][0].as_f64(), Some(0.02));
    assert!(m["ci_low"].is_null(), "no --bootstrap, no interval");
    let csv = std::fs::read_to_string(out.join("significance.csv")).unwrap();
    assert!(
        csv.starts_with("layer_a,layer_b,cka,p_value,null_mean,null_q95,z,corrected\nx,y,"),
        "{csv}"
    );
    // The null-corrected values: the JSON column is the value minus the chance level, and a
    // heatmap of them on [-1, 1] joins the raw one.
    let (c, cv, nm) = (&m["corrected"], &m["cka"], &m["null_mean"]);
    for i in 0..2 {
        let (c, v, n) = (
            c[i][0].as_f64().unwrap(),
            cv[i][0].as_f64().unwrap(),
            nm[i][0].as_f64().unwrap(),
        );
        assert!((c - (v - n)).abs() < 1e-9, "{c} vs {v} - {n}");
    }
    let svg = std::fs::read_to_string(out.join("heatmap-corrected.svg")).unwrap();
    assert!(
        svg.contains("minus chance") && svg.contains("-1.00"),
        "corrected heatmap"
    );
    assert!(out.join("heatmap-corrected.png").is_file());
    // The terminal shows one line per pair.
    let o = strata(&["cka", sx, sy, "--permutations", "49", "-q"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("p = 0.0200 (49 permutations"),
        "{}",
        stdout(&o)
    );
    // A baseline measure gets the generic null (a distance: small is extreme).
    let o = strata(&[
        "cka",
        sx,
        sy,
        "--measure",
        "procrustes",
        "--permutations",
        "19",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(last_json(&o)["p_value"].as_f64(), Some(0.05));

    // Combinations that make no sense: one error line, nothing on stdout.
    for (bad, says) in [
        (
            vec!["--permutations", "9", "--batch-size", "8"],
            "--batch-size",
        ),
        (vec!["--permutations", "0"], "at least 1 permutation"),
        (vec!["--bootstrap", "0"], "--bootstrap must be at least 1"),
        (
            vec!["--bootstrap", "9", "--confidence", "1.5"],
            "between 0 and 1",
        ),
        (vec!["--confidence", "0.9"], "add --bootstrap"),
        (vec!["--seed", "3"], "--seed"),
        // More draws than memory could keep: refused before any draw runs.
        (
            vec!["--permutations", "4000000000000"],
            "use fewer examples or draws",
        ),
        (
            vec!["--bootstrap", "4000000000000", "--measure", "linreg"],
            "use fewer examples or draws",
        ),
    ] {
        let mut args = vec!["cka", sx, sy];
        args.extend(bad.iter());
        let o = strata(&args);
        let e = stderr(&o);
        assert!(!o.status.success() && stdout(&o).is_empty(), "{bad:?}");
        assert_eq!(e.trim().lines().count(), 1, "{bad:?}: {e}");
        assert!(e.starts_with("error: ") && e.contains(says), "{bad:?}: {e}");
    }
}

#[test]
fn matrix_json_out_dir_and_inputs_untouched() {
    let d = scratch("matrix");
    let mut r = Rng::new(6);
    let n = 40;
    let mk = |r: &mut Rng, p: usize| (0..n * p).map(|_| r.normal() as f32).collect::<Vec<f32>>();
    let a = [
        ("conv1", n, 5, mk(&mut r, 5)),
        ("fc", n, 50, mk(&mut r, 50)),
        ("logits", n, 3, mk(&mut r, 3)),
    ];
    let b = [("h1", n, 7, mk(&mut r, 7)), ("h2", n, 4, mk(&mut r, 4))];
    write_npz(&d.join("a.npz"), &a);
    write_npz(&d.join("b.npz"), &b);
    let before = std::fs::read(d.join("a.npz")).unwrap();
    let out = d.join("out");
    let o = strata(&[
        "cka",
        d.join("a.npz").to_str().unwrap(),
        d.join("b.npz").to_str().unwrap(),
        "--json",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(v["layers_a"], serde_json::json!(["conv1", "fc", "logits"]));
    assert_eq!(v["layers_b"], serde_json::json!(["h1", "h2"]));
    let m = v["cka"].as_array().unwrap();
    assert_eq!(m.len(), 3);
    for (i, row) in m.iter().enumerate() {
        for (j, c) in row.as_array().unwrap().iter().enumerate() {
            let want = reference_linear_cka(&a[i].3, &b[j].3, n);
            assert!((c.as_f64().unwrap() - want).abs() < 1e-5, "({i},{j})");
        }
    }
    for f in [
        "cka.csv",
        "cka.parquet",
        "cka.json",
        "heatmap.png",
        "heatmap.svg",
    ] {
        let len = std::fs::metadata(out.join(f)).map(|m| m.len()).unwrap_or(0);
        assert!(len > 100, "{f} missing or tiny");
    }
    assert!(std::fs::read(out.join("heatmap.png"))
        .unwrap()
        .starts_with(b"\x89PNG"));
    let svg = std::fs::read_to_string(out.join("heatmap.svg")).unwrap();
    assert!(svg.contains("<svg") && svg.contains("conv1") && svg.contains("h2"));
    let csv = std::fs::read_to_string(out.join("cka.csv")).unwrap();
    assert!(csv.starts_with("layer,h1,h2\nconv1,"), "{csv}");
    assert_eq!(
        std::fs::read(d.join("a.npz")).unwrap(),
        before,
        "input modified"
    );
    // No temporary files left behind.
    assert!(std::fs::read_dir(&out).unwrap().all(|e| !e
        .unwrap()
        .file_name()
        .to_string_lossy()
        .starts_with('.')));
}

/// A small analysis on the embedded digits: two families' worth of models in a few seconds.
const TINY_SPEC: &str = r#"
title = "tiny"
[data.digits]
source = "digits"
collect_split = "train"

[[model]]
name = "mlp"
data = "digits"
widths = [32, 16]
precisions = ["float", "w1a1"]
seeds = [0, 1]
epochs = 2
lr = 0.01

[[compare]]
a = "mlp-float-s0"
b = "mlp-w1a1-s1"

[twins]
"#;

fn run_spec(dir: &Path, name: &str, text: &str, extra: &[&str]) -> Output {
    let spec = dir.join(format!("{name}.toml"));
    std::fs::write(&spec, text).unwrap();
    let reports = dir.join("reports");
    let mut args = vec![
        "run",
        spec.to_str().unwrap(),
        "--reports",
        reports.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    strata(&args)
}

#[test]
fn run_writes_the_report_and_reuses_the_cache() {
    let d = scratch("run");
    let o = run_spec(&d, "tiny", TINY_SPEC, &["--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v = last_json(&o);
    assert_eq!(
        (v["trained"].as_u64(), v["cached"].as_u64()),
        (Some(4), Some(0))
    );
    let r = d.join("reports/tiny");
    for f in [
        "index.html",
        "report.md",
        "manifest.json",
        "tables/accuracy.csv",
        "tables/accuracy.parquet",
        "tables/models.csv",
        "tables/history.csv",
        "tables/twin_cka.csv",
        "tables/twin_cka_summary.parquet",
        "tables/cka-mlp-float-s0-vs-mlp-w1a1-s1.csv",
        "figures/accuracy-vs-precision.png",
        "figures/accuracy-vs-precision.svg",
        "figures/twin-cka-mlp.png",
        "figures/training-loss-mlp.svg",
        "figures/test-accuracy-mlp.png",
        "figures/cka-mlp-float-s0-vs-mlp-w1a1-s1.png",
        "figures/cka-mlp-float-s0-vs-mlp-w1a1-s0.png",
    ] {
        assert!(r.join(f).is_file(), "{f} missing");
    }
    // The HTML page stands alone: figures inline, nothing fetched from elsewhere.
    let html = std::fs::read_to_string(r.join("index.html")).unwrap();
    assert!(html.contains("data:image/png;base64,"));
    assert!(
        !html.contains("src=\"http"),
        "external resource in index.html"
    );
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(r.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(m["models"].as_array().unwrap().len(), 4);
    assert_eq!(m["seeds"][1]["seed"], 1);
    assert!(m["spec_text"].as_str().unwrap().contains("[twins]"));
    assert!(m["machine"]["logical_cpus"].as_u64().unwrap() >= 1);
    // Accuracy table: one row per precision; CSV matches the per-model figures.
    let acc = std::fs::read_to_string(r.join("tables/accuracy.csv")).unwrap();
    assert_eq!(acc.lines().count(), 3, "{acc}");
    assert!(
        acc.starts_with("family,precision,seeds,test_accuracy_mean"),
        "{acc}"
    );
    let tests: Vec<f64> = m["models"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| x["precision"] == "float")
        .map(|x| x["test_accuracy"].as_f64().unwrap())
        .collect();
    let mean = (tests[0] + tests[1]) / 2.0;
    let row: Vec<&str> = acc.lines().nth(1).unwrap().split(',').collect();
    assert_eq!(row[1], "float");
    assert!(
        (row[3].parse::<f64>().unwrap() - mean).abs() < 1e-12,
        "{acc}"
    );

    // Re-run: everything from the cache.
    let o = run_spec(&d, "tiny", TINY_SPEC, &["--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let again = last_json(&o);
    assert_eq!(
        (again["trained"].as_u64(), again["cached"].as_u64()),
        (Some(0), Some(4))
    );
    // Same seeds, same models: the cached accuracies are the ones trained above.
    for (x, y) in again["models"]
        .as_array()
        .unwrap()
        .iter()
        .zip(v["models"].as_array().unwrap())
    {
        assert_eq!(x["cached"], true);
        for k in ["name", "key", "test_accuracy", "train_accuracy"] {
            assert_eq!(x[k], y[k], "{k}");
        }
    }

    // --force retrains everything; two at a time gives the same models as one at a time.
    let o = run_spec(&d, "tiny", TINY_SPEC, &["--json", "--force", "--jobs", "2"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let forced = last_json(&o);
    assert_eq!(forced["trained"].as_u64(), Some(4));
    for (x, y) in forced["models"]
        .as_array()
        .unwrap()
        .iter()
        .zip(v["models"].as_array().unwrap())
    {
        for k in ["key", "test_accuracy", "train_accuracy"] {
            assert_eq!(x[k], y[k], "{k} of {}", x["name"]);
        }
    }

    // A deleted model (as after an interrupted run) is retrained, and only it.
    let key = &v["models"][3]["key"].as_str().unwrap()[..16];
    std::fs::remove_dir_all(d.join("reports/.cache/models").join(key)).unwrap();
    let o = run_spec(&d, "tiny", TINY_SPEC, &["--json"]);
    assert_eq!(last_json(&o)["trained"].as_u64(), Some(1), "{}", stderr(&o));

    // Changing one seed retrains that seed's models only (float and w1a1).
    let changed = TINY_SPEC
        .replace("seeds = [0, 1]", "seeds = [0, 2]")
        .replace("w1a1-s1", "w1a1-s2");
    let o = run_spec(&d, "tiny", &changed, &["--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(last_json(&o)["trained"].as_u64(), Some(2));

    // A failing run leaves the previous report as it was.
    let before = std::fs::read(r.join("manifest.json")).unwrap();
    let broken = changed.replace("source = \"digits\"", "source = \"csv:/nonexistent/x.csv\"");
    let o = run_spec(&d, "tiny", &broken, &[]);
    assert!(!o.status.success());
    assert_eq!(stderr(&o).trim().lines().count(), 1, "{}", stderr(&o));
    assert_eq!(std::fs::read(r.join("manifest.json")).unwrap(), before);
    let leftovers: Vec<_> = std::fs::read_dir(d.join("reports"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("partial") || n.contains(".old-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // A run killed between moving the old report aside and moving the new one in: the next
    // run puts the old one back, even if it fails itself.
    let aside = d.join("reports/.tiny.old-9999999");
    std::fs::rename(&r, &aside).unwrap();
    let o = run_spec(&d, "tiny", &broken, &[]);
    assert!(!o.status.success());
    assert_eq!(std::fs::read(r.join("manifest.json")).unwrap(), before);
    assert!(!aside.exists());
}

#[test]
fn bad_specs_name_the_key_and_line_and_run_nothing() {
    let d = scratch("badspec");
    let cases = [
        (
            TINY_SPEC.replace("epochs = 2", "epochs = 2\nlearning_rate = 0.1"),
            "learning_rate",
            14,
        ),
        (TINY_SPEC.replace("\"w1a1\"]", "\"w3a3\"]"), "w3a3", 11),
        (
            TINY_SPEC.replace("b = \"mlp-w1a1-s1\"", "b = \"mlp-w1a1-s9\""),
            "mlp-w1a1-s9",
            18,
        ),
        (
            TINY_SPEC.replace("source = \"digits\"", "source = \"imagenet\""),
            "imagenet",
            4,
        ),
        (
            format!("{TINY_SPEC}\n[privacy]\nattacks = [\"lira\"]\n"),
            "privacy",
            22,
        ),
    ];
    // An architecture that cannot read the data fails before anything trains.
    let cnn = TINY_SPEC.replace(
        "[[compare]]",
        "[[model]]\nname = \"cnn\"\ndata = \"digits\"\narchitecture = \"cnn\"\n\n[[compare]]",
    );
    let cases = cases.into_iter().chain([(cnn, "'cnn' architecture", 16)]);
    for (text, key, line) in cases {
        let o = run_spec(&d, "bad", &text, &["--quiet"]);
        let err = stderr(&o);
        assert!(!o.status.success(), "{key}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(err.contains(key), "{key}: {err}");
        assert!(
            err.contains(&format!("line {line}:")),
            "{key} (line {line}): {err}"
        );
        assert!(!d.join("reports/bad").exists() && !d.join("reports/.cache").exists());
    }
}

#[test]
fn minibatch_with_one_batch_equals_full_debiased() {
    let d = scratch("mb");
    let o = run_spec(&d, "tiny", TINY_SPEC, &["--quiet"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let m: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(d.join("reports/tiny/manifest.json")).unwrap(),
    )
    .unwrap();
    let store = |i: usize| {
        m["models"][i]["activations_file"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let (a, b) = (PathBuf::from(store(0)), PathBuf::from(store(3)));
    let run = |extra: &[&str]| -> serde_json::Value {
        let mut args = vec!["cka", a.to_str().unwrap(), b.to_str().unwrap(), "--json"];
        args.extend_from_slice(extra);
        let o = strata(&args);
        assert!(o.status.success(), "{}", stderr(&o));
        serde_json::from_str(stdout(&o).trim()).unwrap()
    };
    let full = run(&["--estimator", "debiased"]);
    let one = run(&["--batch-size", "5000"]);
    let many = run(&["--batch-size", "300"]);
    assert_eq!(one["estimator"], "debiased");
    // 1,438 training digits: four batches of 300 and one of 238.
    assert_eq!(many["batches"], 5);
    for i in 0..3 {
        for j in 0..3 {
            let f = full["cka"][i][j].as_f64().unwrap();
            let o = one["cka"][i][j].as_f64().unwrap();
            assert!((f - o).abs() < 1e-9, "({i},{j}): {f} vs {o}");
            // Six batches of 300 estimate the same population quantity.
            assert!((f - many["cka"][i][j].as_f64().unwrap()).abs() < 0.1);
        }
    }
    let bad = strata(&[
        "cka",
        a.to_str().unwrap(),
        b.to_str().unwrap(),
        "--batch-size",
        "100",
        "--estimator",
        "biased",
    ]);
    assert!(!bad.status.success());
    assert!(stderr(&bad).contains("unbiased"));
}

#[test]
fn bad_inputs_fail_with_one_line_and_no_output() {
    let d = scratch("bad");
    let mut r = Rng::new(8);
    let x: Vec<f32> = (0..30 * 4).map(|_| r.normal() as f32).collect();
    write_npy(&d.join("n30.npy"), 30, 4, &x);
    write_npy(&d.join("n29.npy"), 29, 4, &x[..29 * 4]);
    let mut nan = x.clone();
    nan[13] = f32::NAN;
    write_npy(&d.join("nan.npy"), 30, 4, &nan);
    write_npy(&d.join("const.npy"), 30, 4, &[2.5; 120]);
    write_npy(&d.join("n3.npy"), 3, 4, &x[..12]);
    std::fs::write(d.join("empty.npy"), b"").unwrap();
    std::fs::write(d.join("notes.txt"), b"these are not activations").unwrap();
    let p = |f: &str| d.join(f).to_str().unwrap().to_string();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (vec![p("n30.npy"), p("n29.npy")], "examples"),
        (vec![p("n30.npy"), p("nan.npy")], "non-finite"),
        (vec![p("n30.npy"), p("const.npy")], "undefined"),
        (
            vec![
                p("n3.npy"),
                p("n3.npy"),
                "--estimator".into(),
                "debiased".into(),
            ],
            "at least 4",
        ),
        (vec![p("n30.npy"), p("empty.npy")], "empty"),
        (vec![p("n30.npy"), p("notes.txt")], "unknown format"),
        (vec![p("n30.npy"), p("missing.npy")], "missing.npy"),
        (
            vec![
                p("n30.npy"),
                p("n30.npy"),
                "--layers-a".into(),
                "nope".into(),
            ],
            "no layer named",
        ),
        (
            vec![
                p("n30.npy"),
                p("n30.npy"),
                "--kernel".into(),
                "rbf".into(),
                "--rbf-threshold".into(),
                "-1".into(),
            ],
            "positive",
        ),
    ];
    let out = d.join("out");
    for (args, want) in cases {
        let mut full = vec!["cka".to_string()];
        full.extend(args.clone());
        full.extend(["--out".to_string(), out.to_str().unwrap().to_string()]);
        let refs: Vec<&str> = full.iter().map(|s| s.as_str()).collect();
        let o = strata(&refs);
        let err = stderr(&o);
        assert!(!o.status.success(), "{args:?} succeeded");
        assert!(err.contains(want), "{args:?}: {err}");
        assert_eq!(
            err.lines().filter(|l| l.starts_with("error:")).count(),
            1,
            "{args:?}: {err}"
        );
        assert!(
            !o.stderr.windows(9).any(|w| w == b"panicked"),
            "{args:?}: {err}"
        );
        assert!(!out.exists(), "{args:?} wrote output");
    }
}

#[test]
fn train_eval_collect_and_compare_float_with_binary() {
    let d = scratch("train");
    let m = |p: &str| d.join(p).to_str().unwrap().to_string();
    let mut stores = Vec::new();
    for precision in ["float", "w1a1"] {
        let model = m(&format!("mlp-{precision}"));
        let o = strata(&[
            "train",
            "--data",
            "mnist-small",
            "--precision",
            precision,
            "--widths",
            "96,80",
            "--epochs",
            "1",
            "--lr",
            "0.01",
            "--limit",
            "2000",
            "--out",
            &model,
            "--json",
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        let last = stdout(&o).lines().last().unwrap_or("").to_string();
        let v: serde_json::Value = serde_json::from_str(&last).expect("last line is JSON");
        let (tr, te) = (
            v["train_accuracy"].as_f64().unwrap(),
            v["test_accuracy"].as_f64().unwrap(),
        );
        assert!(te > 0.5 && tr > 0.5, "{precision}: train {tr} test {te}");
        assert!(d.join(format!("mlp-{precision}.safetensors")).exists());

        let o = strata(&["eval", "--model", &model, "--data", "mnist-small", "--json"]);
        assert!(o.status.success(), "{}", stderr(&o));
        let e: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
        assert!(
            (e["accuracy"].as_f64().unwrap() - te).abs() < 1e-12,
            "eval agrees with training"
        );
        if precision == "w1a1" {
            let o = strata(&[
                "eval",
                "--model",
                &model,
                "--data",
                "mnist-small",
                "--engine",
                "packed",
                "--json",
            ]);
            assert!(o.status.success(), "{}", stderr(&o));
            let p: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
            assert_eq!(
                p["accuracy"], e["accuracy"],
                "packed and float simulation agree"
            );
        } else {
            let o = strata(&["eval", "--model", &model, "--engine", "packed"]);
            assert!(!o.status.success() && stderr(&o).contains("w1a1"));
        }
        let store = m(&format!("acts-{precision}.arrow"));
        let o = strata(&[
            "collect",
            "--model",
            &model,
            "--data",
            "mnist-small",
            "--split",
            "test",
            "--limit",
            "300",
            "--out",
            &store,
            "--quiet",
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        stores.push(store);
    }
    let out = d.join("heat");
    let o = strata(&[
        "cka",
        &stores[0],
        &stores[1],
        "--out",
        out.to_str().unwrap(),
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(v["layers_a"], serde_json::json!(["fc1", "fc2", "logits"]));
    assert_eq!(v["n"], 300);
    assert!(out.join("heatmap.png").exists());
    // Attack the binary network, white-box and by transfer from the float one.
    let att = d.join("attack");
    let o = strata(&[
        "attack",
        "--model",
        &m("mlp-w1a1"),
        "--transfer-from",
        &m("mlp-float"),
        "--limit",
        "100",
        "--eps",
        "0,0.1,0.3",
        "--steps",
        "5",
        "--out",
        att.to_str().unwrap(),
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let a = last_json(&o);
    let pts = a["points"].as_array().unwrap();
    assert_eq!(pts.len(), 3);
    let clean = strata(&[
        "eval",
        "--model",
        &m("mlp-w1a1"),
        "--limit",
        "100",
        "--json",
    ]);
    let clean = last_json(&clean)["accuracy"].as_f64().unwrap();
    assert_eq!(
        pts[0]["accuracy"].as_f64().unwrap(),
        clean,
        "eps 0 is the clean accuracy"
    );
    for (k, p) in pts.iter().enumerate() {
        let (wb, tr) = (
            a["white_box"][k]["accuracy"].as_f64().unwrap(),
            a["transfer"][k]["accuracy"].as_f64().unwrap(),
        );
        assert_eq!(p["accuracy"].as_f64().unwrap(), wb.min(tr));
        assert!(p["mean_norm"].as_f64().unwrap() <= p["eps"].as_f64().unwrap() + 1e-6);
    }
    for f in [
        "attack.json",
        "attack.csv",
        "attack.md",
        "layers.csv",
        "adversarial.arrow",
    ] {
        assert!(att.join(f).exists(), "{f}");
    }
    let o = strata(&["layers", att.join("adversarial.arrow").to_str().unwrap()]);
    assert!(
        o.status.success() && stdout(&o).contains("eps_0.3"),
        "{}",
        stdout(&o)
    );
    // The same seed gives the same numbers.
    let again = strata(&[
        "attack",
        "--model",
        &m("mlp-w1a1"),
        "--transfer-from",
        &m("mlp-float"),
        "--limit",
        "100",
        "--eps",
        "0,0.1,0.3",
        "--steps",
        "5",
        "--json",
    ]);
    assert_eq!(last_json(&again)["points"], a["points"]);
    for args in [
        vec!["attack", "--model", &m("mlp-w1a1"), "--eps", "-1"],
        vec!["attack", "--model", &m("mlp-w1a1"), "--steps", "0"],
        vec![
            "attack",
            "--model",
            &m("mlp-w1a1"),
            "--transfer-from",
            "/nonexistent/m",
        ],
        vec!["attack", "--model", &m("mlp-w1a1"), "--data", "digits"],
    ] {
        let o = strata(&args);
        assert!(!o.status.success(), "{args:?}");
        let e = stderr(&o);
        assert!(
            !e.contains("panicked") && e.trim().lines().count() == 1,
            "{args:?}: {e}"
        );
    }
    // Bad flags and files: one line, non-zero.
    for args in [
        vec!["train", "--precision", "w3a3", "--out", "x"],
        vec!["eval", "--model", "/nonexistent/model"],
        vec!["train", "--data", "nosuch", "--out", "x"],
    ] {
        let o = strata(&args);
        assert!(!o.status.success(), "{args:?}");
        assert!(!stderr(&o).contains("panicked"), "{args:?}");
    }
}

#[test]
fn train_on_any_csv_with_a_label_column() {
    let d = scratch("csv");
    let mut r = Rng::new(9);
    let mut text = String::from("height,colour,species\n");
    for _ in 0..400 {
        let big = r.below(2) == 1;
        let h = if big { 3.0 } else { 1.0 } + r.normal() * 0.3;
        let c = if big { "red" } else { "blue" };
        text.push_str(&format!(
            "{h:.3},{c},{}\n",
            if big { "oak" } else { "fern" }
        ));
    }
    let csv = d.join("plants.csv");
    std::fs::write(&csv, text).unwrap();
    let data = format!("csv:{}", csv.display());
    let out = d.join("m");
    let o = strata(&[
        "train",
        "--data",
        &data,
        "--label",
        "species",
        "--widths",
        "16",
        "--epochs",
        "5",
        "--lr",
        "0.01",
        "--out",
        out.to_str().unwrap(),
        "--json",
        "-q",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(stdout(&o).lines().last().unwrap()).unwrap();
    assert!(v["test_accuracy"].as_f64().unwrap() > 0.9, "{v}");
    let o = strata(&["train", "--data", &data, "--out", out.to_str().unwrap()]);
    assert!(
        !o.status.success() && stderr(&o).contains("no column named 'label'"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn baseline_measures_from_the_command_line() {
    let d = scratch("measure");
    let mut r = Rng::new(11);
    let n = 200;
    let x: Vec<f32> = (0..n * 6).map(|_| r.normal() as f32).collect();
    let y: Vec<f32> = (0..n * 4).map(|_| r.normal() as f32).collect();
    let (a, b) = (d.join("a.npy"), d.join("b.npy"));
    write_npy(&a, n, 6, &x);
    write_npy(&b, n, 4, &y);
    let value = |args: &[&str]| -> f64 {
        let o = strata(args);
        assert!(o.status.success(), "{}", stderr(&o));
        stdout(&o).trim().parse().unwrap()
    };
    let (sa, sb) = (a.to_str().unwrap(), b.to_str().unwrap());
    // cka_linear through the bases equals the CKA engine.
    let engine = value(&["cka", sa, sb]);
    let baseline = value(&["cka", sa, sb, "--measure", "cka_linear"]);
    assert!((engine - baseline).abs() < 1e-5, "{engine} vs {baseline}");
    // Symmetric measures do not care about the order; regression does.
    let ab = value(&["cka", sa, sb, "--measure", "cca_rho"]);
    let ba = value(&["cka", sb, sa, "--measure", "cca_rho"]);
    assert!((ab - ba).abs() < 1e-12, "{ab} vs {ba}");
    let ab = value(&["cka", sa, sb, "--measure", "linreg"]);
    let ba = value(&["cka", sb, sa, "--measure", "linreg"]);
    assert!((ab - ba).abs() > 1e-6);
    // A layer against itself: Procrustes distance 0, mean canonical correlation 1.
    assert!(value(&["cka", sa, sa, "--measure", "procrustes"]).abs() < 1e-9);
    assert!((value(&["cka", sa, sa, "--measure", "cca_rho"]) - 1.0).abs() < 1e-9);
    let o = strata(&["cka", sa, sb, "--measure", "ccca"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("unknown measure 'ccca'"),
        "{}",
        stderr(&o)
    );
    let o = strata(&[
        "cka",
        sa,
        sb,
        "--measure",
        "hsic",
        "--json",
        "--out",
        d.join("o").to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(v["measure"], "hsic");
    assert!(d.join("o/hsic.csv").is_file() && d.join("o/hsic.parquet").is_file());
}

#[test]
fn identification_test_in_an_analysis() {
    let d = scratch("identify");
    let spec = r#"
[data.digits]
source = "digits"
collect_split = "train"
collect_limit = 300

[[model]]
name = "mlp"
data = "digits"
widths = [32, 16]
seeds = [0, 1, 2]
epochs = 2
lr = 0.01

[identify]
models = ["mlp"]
measures = ["cka_linear", "cka_rbf_0.4", "cca_rho", "pwcca", "linreg", "procrustes", "hsic"]
"#;
    let o = run_spec(&d, "ident", spec, &["--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v = last_json(&o);
    let rows = v["identification"].as_array().unwrap();
    assert_eq!(rows.len(), 7);
    for r in rows {
        let acc = r["accuracy"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&acc), "{r}");
        assert_eq!(r["networks"], 3);
        // Accuracy is a count over 3 x 2 ordered pairs x 3 layers = 18 cases.
        assert!(((acc * 18.0) - (acc * 18.0).round()).abs() < 1e-9, "{r}");
    }
    let table = std::fs::read_to_string(d.join("reports/ident/tables/identification.csv")).unwrap();
    assert_eq!(table.lines().count(), 8, "{table}");
    assert!(
        table.contains("cka_linear") && table.contains("0.993"),
        "{table}"
    );
    // Too few seeds for the test: refused at parse time, naming the line.
    let o = run_spec(
        &d,
        "ident",
        &spec.replace("seeds = [0, 1, 2]", "seeds = [0]"),
        &["--quiet"],
    );
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("line 16") && stderr(&o).contains("at least 2 seeds"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn reports_with_a_baseline_measure() {
    let d = scratch("measure-report");
    for (measure, heatmap) in [("pwcca", true), ("procrustes", false)] {
        let spec = format!("{TINY_SPEC}\n[cka]\nmeasure = \"{measure}\"\n");
        let o = run_spec(&d, measure, &spec, &["--quiet"]);
        assert!(o.status.success(), "{}", stderr(&o));
        let r = d.join("reports").join(measure);
        let fig = r.join("figures/cka-mlp-float-s0-vs-mlp-w1a1-s1.png");
        assert_eq!(fig.is_file(), heatmap, "{measure}");
        let csv = std::fs::read_to_string(r.join("tables/twin_cka.csv")).unwrap();
        for line in csv.lines().skip(1) {
            let v: f64 = line.rsplit(',').next().unwrap().parse().unwrap();
            assert!((0.0..=2.0).contains(&v), "{measure}: {line}");
        }
        let md = std::fs::read_to_string(r.join("report.md")).unwrap();
        assert!(md.contains(measure), "{measure}");
    }
    let o = run_spec(
        &d,
        "bad",
        &format!("{TINY_SPEC}\n[cka]\nmeasure = \"cca\"\n"),
        &["--quiet"],
    );
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("line 23") && stderr(&o).contains("unknown measure 'cca'"),
        "{}",
        stderr(&o)
    );
}

/// `strata gpu info` exits 0 on any machine; `--device cuda` without a GPU is one clear error
/// line; `auto` gives the CPU's answer where there is no GPU.
#[test]
fn gpu_info_and_device_choice_behave_on_any_machine() {
    let info = strata(&["gpu", "info", "--json"]);
    assert!(info.status.success(), "{}", stderr(&info));
    let v = last_json(&info);
    let status = v["status"].as_str().expect("status");
    assert!(["no_driver", "devices", "error"].contains(&status), "{v}");
    let check = strata(&["gpu", "check", "--seed", "3"]);
    if status != "devices" {
        assert!(check.status.success(), "{}", stderr(&check));
        assert!(stdout(&check).starts_with("skipped:"), "{}", stdout(&check));
    }
    let dir = scratch("gpu-device");
    let (a, b) = (dir.join("a.npy"), dir.join("b.npy"));
    let mut r = strata_data::rng::Rng::new(5);
    let x: Vec<f32> = (0..40 * 6).map(|_| r.normal() as f32).collect();
    let y: Vec<f32> = (0..40 * 9).map(|_| r.normal() as f32).collect();
    write_npy(&a, 40, 6, &x);
    write_npy(&b, 40, 9, &y);
    let (sa, sb) = (a.to_str().unwrap(), b.to_str().unwrap());
    let cpu = strata(&["cka", sa, sb, "--device", "cpu", "--json"]);
    let auto = strata(&["cka", sa, sb, "--device", "auto", "--json"]);
    assert!(cpu.status.success() && auto.status.success());
    let (vc, va) = (last_json(&cpu), last_json(&auto));
    let (c, g) = (vc["cka"].as_f64(), va["cka"].as_f64());
    let (c, g) = (c.expect("cka value"), g.expect("cka value"));
    assert!((c - g).abs() <= 1e-5 * c.abs(), "cpu {c} vs auto {g}");
    if status == "no_driver" {
        let cuda = strata(&["cka", sa, sb, "--device", "cuda"]);
        assert!(!cuda.status.success());
        let e = stderr(&cuda);
        assert_eq!(e.lines().count(), 1, "{e}");
        assert!(
            e.contains("--device cuda: no CUDA driver found") && e.contains("use cpu or auto"),
            "{e}"
        );
        let rbf = strata(&["cka", sa, sb, "--kernel", "rbf", "--device", "cuda"]);
        assert!(!rbf.status.success());
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bench_mlp_times_every_engine_and_they_agree() {
    let o = strata(&[
        "bench", "mlp", "--rows", "300", "--widths", "70,33", "--batch", "128", "--repeat", "1",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v = last_json(&o);
    assert_eq!(v["shape"], "784-70-33-10", "{v}");
    let rows = v["results"].as_array().expect("results");
    let find = |device: &str, network: &str, engine: &str| {
        rows.iter()
            .find(|r| r["device"] == device && r["network"] == network && r["engine"] == engine)
            .unwrap_or_else(|| panic!("no {device} {network} {engine} row in {v}"))
    };
    for (network, engine) in [("float", "float"), ("w1a1", "float"), ("w1a1", "packed")] {
        let r = find("cpu", network, engine);
        assert!(r["images_per_second"].as_f64().unwrap() > 0.0, "{r}");
    }
    assert_eq!(find("cpu", "float", "float")["vs_float"], 1.0);
    // The packed engine reproduces the float simulation of the same w1a1 network exactly,
    // and on a GPU every w1a1 engine does.
    for r in rows.iter().filter(|r| r["network"] == "w1a1") {
        assert_eq!(r["agreement"], 1.0, "{r}");
    }
    for bad in [
        vec!["bench", "mlp", "--rows", "0"],
        vec!["bench", "mlp", "--widths", "0"],
    ] {
        let o = strata(&bad);
        assert!(!o.status.success(), "{bad:?}");
        assert_eq!(stderr(&o).lines().count(), 1, "{}", stderr(&o));
    }
    if last_json(&strata(&["gpu", "info", "--json"]))["status"] == "no_driver" {
        let o = strata(&["bench", "mlp", "--device", "cuda", "--rows", "10"]);
        assert!(!o.status.success());
        assert!(
            stderr(&o).contains("no CUDA driver found"),
            "{}",
            stderr(&o)
        );
    }
}

#[test]
fn null_moments_gives_a_p_value_close_to_the_draws() {
    let d = scratch("null-moments");
    let mut r = Rng::new(11);
    let n = 40;
    let x: Vec<f32> = (0..n * 6).map(|_| r.normal() as f32).collect();
    // Y shares X's first four features, with noise.
    let y: Vec<f32> = (0..n * 4)
        .map(|i| x[(i / 4) * 6 + i % 4] + 1.5 * r.normal() as f32)
        .collect();
    let (px, py) = (d.join("x.npy"), d.join("y.npy"));
    write_npy(&px, n, 6, &x);
    write_npy(&py, n, 4, &y);
    let (sx, sy) = (px.to_str().unwrap(), py.to_str().unwrap());
    let run = |extra: &[&str]| {
        let mut args = vec!["cka", sx, sy, "--json"];
        args.extend_from_slice(extra);
        let o = strata(&args);
        assert!(o.status.success(), "{}", stderr(&o));
        last_json(&o)
    };
    let m = run(&["--null", "moments"]);
    let dr = run(&["--permutations", "999", "--seed", "3"]);
    let f = |v: &serde_json::Value, k: &str| v[k].as_f64().unwrap_or_else(|| panic!("{k}: {v}"));
    assert_eq!(m["null"], "moments");
    assert!(m["permutations"].is_null());
    assert_eq!(f(&m, "cka"), f(&dr, "cka"));
    let (pm, pd) = (f(&m, "p_value"), f(&dr, "p_value"));
    assert!(
        pm > 0.0 && pm < 0.01 && pd < 0.01,
        "moments p {pm}, draws p {pd}"
    );
    let rel = |k: &str| (f(&m, k) - f(&dr, k)).abs() / f(&dr, k).abs();
    assert!(rel("null_mean") < 0.05, "null_mean: {m} vs {dr}");
    assert!(rel("null_sd") < 0.15, "null_sd: {m} vs {dr}");
    assert!(rel("null_q95") < 0.05, "null_q95: {m} vs {dr}");
    assert!(m["null_skewness"].as_f64().is_some());
    // The terminal names the method.
    let o = strata(&["cka", sx, sy, "--null", "moments", "-q"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("moments null"), "{}", stdout(&o));
    // What the moments null does not cover: one error line each.
    for (bad, says) in [
        (
            vec!["--null", "moments", "--permutations", "9"],
            "drop --permutations",
        ),
        (vec!["--null", "moments", "--kernel", "rbf"], "linear CKA"),
        (
            vec!["--null", "moments", "--estimator", "debiased"],
            "linear CKA",
        ),
        (
            vec!["--null", "moments", "--measure", "procrustes"],
            "--null moments",
        ),
        (vec!["--null", "draws"], "--permutations"),
    ] {
        let mut args = vec!["cka", sx, sy];
        args.extend(bad.iter());
        let o = strata(&args);
        let e = stderr(&o);
        assert!(!o.status.success() && stdout(&o).is_empty(), "{bad:?}");
        assert_eq!(e.trim().lines().count(), 1, "{bad:?}: {e}");
        assert!(e.starts_with("error: ") && e.contains(says), "{bad:?}: {e}");
    }
}
