//! End-to-end tests of `[[store]]` in analysis specs: activation files made elsewhere, compared by
//! `strata run` like the spec's own models.
#![allow(clippy::unwrap_used)] // in tests, a failed unwrap is a failed test, with its location

use sha2::{Digest, Sha256};
use std::path::Path;
use std::process::Output;
use strata_data::npy;
use strata_data::rng::Rng;

mod common;
use common::{scratch, strata};

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// An `.npz` of `n` x `p` float layers, random but correlated with one another.
fn write_npz(path: &Path, n: usize, layers: &[(&str, usize)], seed: u64) {
    use std::io::Write;
    let mut r = Rng::new(seed);
    let base: Vec<f32> = (0..n * 8).map(|_| r.normal() as f32).collect();
    let mut z = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    for (name, p) in layers {
        let data: Vec<f32> = (0..n * p)
            .map(|i| base[(i / p) * 8 + i % 8] + 0.7 * r.normal() as f32)
            .collect();
        z.start_file(
            format!("{name}.npy"),
            zip::write::SimpleFileOptions::default(),
        )
        .unwrap();
        let mut v = Vec::new();
        npy::write_f32(&mut v, &[n, *p], &data).unwrap();
        z.write_all(&v).unwrap();
    }
    z.finish().unwrap();
}

fn sha256_file(path: &Path) -> String {
    Sha256::digest(std::fs::read(path).unwrap())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn run_spec(dir: &Path, name: &str, text: &str) -> Output {
    let spec = dir.join(format!("{name}.toml"));
    std::fs::write(&spec, text).unwrap();
    let reports = dir.join("reports");
    strata(&[
        "run",
        spec.to_str().unwrap(),
        "--reports",
        reports.to_str().unwrap(),
    ])
}

const SPEC: &str = r#"
title = "stores"

[[store]]
name = "net-a"
path = "acts/a.npz"

[[store]]
name = "net-b"
path = "acts/b.npz"
layers = ["m3", "m1"]

[[compare]]
a = "net-a"
b = "net-b"
"#;

#[test]
fn run_compares_two_stores_like_models() {
    let d = scratch("two");
    std::fs::create_dir_all(d.join("acts")).unwrap();
    let (a, b) = (d.join("acts/a.npz"), d.join("acts/b.npz"));
    write_npz(&a, 60, &[("l1", 8), ("l2", 5), ("l3", 12)], 1);
    write_npz(&b, 60, &[("m1", 6), ("m2", 4), ("m3", 10)], 2);

    let o = run_spec(&d, "stores", SPEC);
    assert!(o.status.success(), "{}", stderr(&o));

    // The same matrix as `strata cka` on the same files and layers.
    let o = strata(&[
        "cka",
        a.to_str().unwrap(),
        b.to_str().unwrap(),
        "--layers-b",
        "m3,m1",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let want: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&o.stdout).trim()).unwrap();
    assert_eq!(want["layers_b"], serde_json::json!(["m3", "m1"]));

    let r = d.join("reports/stores");
    for f in [
        "index.html",
        "report.md",
        "figures/cka-net-a-vs-net-b.png",
        "figures/cka-net-a-vs-net-b.svg",
        "tables/cka-net-a-vs-net-b.parquet",
    ] {
        assert!(r.join(f).is_file(), "{f} missing");
    }
    let csv = std::fs::read_to_string(r.join("tables/cka-net-a-vs-net-b.csv")).unwrap();
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("layer_a,layer_b,cka"));
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 3 * 2, "{csv}");
    for (k, row) in rows.iter().enumerate() {
        let (i, j) = (k / 2, k % 2);
        assert_eq!(row[0], want["layers_a"][i].as_str().unwrap(), "{csv}");
        assert_eq!(row[1], want["layers_b"][j].as_str().unwrap(), "{csv}");
        let got: f64 = row[2].parse().unwrap();
        let w = want["cka"][i][j].as_f64().unwrap();
        assert!((got - w).abs() < 1e-6, "({i}, {j}): {got} vs {w}");
        assert!(w > 0.05 && w < 1.0, "{w}: the layers share a signal");
    }

    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(r.join("manifest.json")).unwrap()).unwrap();
    let stores = m["stores"].as_array().unwrap();
    assert_eq!(stores.len(), 2);
    for (s, (name, path)) in stores.iter().zip([("net-a", &a), ("net-b", &b)]) {
        assert_eq!(s["name"], name);
        assert_eq!(s["sha256"].as_str().unwrap(), sha256_file(path));
        assert_eq!(s["bytes"], std::fs::metadata(path).unwrap().len());
        assert_eq!(s["examples"], 60);
    }
    assert_eq!(stores[0]["path"], "acts/a.npz");
    assert_eq!(stores[1]["layers"], serde_json::json!(["m3", "m1"]));
    assert_eq!(m["comparisons"][0]["a"], "net-a");
    assert_eq!(m["comparisons"][0]["b"], "net-b");
    assert_eq!(m["models"].as_array().unwrap().len(), 0);
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn bad_store_references_are_one_line_errors() {
    let d = scratch("bad");
    std::fs::create_dir_all(d.join("acts")).unwrap();
    write_npz(&d.join("acts/a.npz"), 20, &[("l1", 4)], 3);
    write_npz(&d.join("acts/b.npz"), 20, &[("m1", 4), ("m3", 3)], 4);

    let o = run_spec(&d, "bad", &SPEC.replace("b = \"net-b\"", "b = \"net-c\""));
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(
        e.contains(
            "bad.toml, line 15: [[compare]] b = 'net-c' is not a [[store]] of this spec (stores: \
             net-a, net-b)"
        ),
        "{e}"
    );
    assert!(!d.join("reports/bad").exists());

    // Example counts that differ between the two sides.
    write_npz(&d.join("acts/b.npz"), 25, &[("m1", 4), ("m3", 3)], 4);
    let o = run_spec(&d, "bad", SPEC);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(
        e.contains("line 15: [[compare]] a = 'net-a' has 20 examples but b = 'net-b' has 25"),
        "{e}"
    );
    let _ = std::fs::remove_dir_all(&d);
}
