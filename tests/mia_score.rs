//! End-to-end tests of `strata mia design` and `strata mia score`: the files a training script
//! follows, one path with `mia audit` (its exported logits re-scored give identical results),
//! every model as the target, and one-line errors that write nothing.
#![allow(clippy::unwrap_used)] // in tests, a failed unwrap is a failed test, with its location

mod common;
use common::{last_json, scratch, strata};
use std::path::{Path, PathBuf};
use strata_data::rng::Rng;

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Write a row-major f32 array as `.npy`.
fn npy(path: &Path, shape: &[usize], data: &[f32]) {
    let mut b = Vec::new();
    strata_data::npy::write_f32(&mut b, shape, data).unwrap();
    std::fs::write(path, b).unwrap();
}

fn labels_npy(path: &Path, labels: &[i64]) {
    let mut b = Vec::new();
    strata_data::npy::write_i64(&mut b, &[labels.len()], labels).unwrap();
    std::fs::write(path, b).unwrap();
}

/// A design of `k` models over `n` examples, written by `mia design` into `dir`.
fn design(dir: &Path, n: usize, k: usize) -> serde_json::Value {
    let n = n.to_string();
    let k = k.to_string();
    let o = strata(&[
        "mia",
        "design",
        "--pool",
        &n,
        "--models",
        &k,
        "--seed",
        "3",
        "--out",
        s(dir),
        "--json",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&std::fs::read(dir.join("design.json")).unwrap()).unwrap()
}

/// Logits of `k` models that leak: a member's true class gets `gap` more logit.
fn leaky_logits(dir: &Path, d: &serde_json::Value, classes: usize, gap: f32) -> Vec<PathBuf> {
    let n = d["pool"].as_u64().unwrap() as usize;
    let mut rng = Rng::new(11);
    let labels: Vec<i64> = (0..n).map(|i| (i % classes) as i64).collect();
    labels_npy(&dir.join("labels.npy"), &labels);
    let mut files = Vec::new();
    for (m, members) in d["members"].as_array().unwrap().iter().enumerate() {
        let mut mask = vec![false; n];
        for i in members.as_array().unwrap() {
            mask[i.as_u64().unwrap() as usize] = true;
        }
        let mut z = vec![0f32; n * classes];
        for i in 0..n {
            for c in 0..classes {
                z[i * classes + c] = rng.normal() as f32;
            }
            let y = labels[i] as usize;
            z[i * classes + y] += 1.0 + (i % 7) as f32 * 0.3 + if mask[i] { gap } else { 0.0 };
        }
        let p = dir.join(format!("model-{m:03}.npy"));
        npy(&p, &[n, classes], &z);
        files.push(p);
    }
    files
}

#[test]
fn design_files_agree_and_are_balanced() {
    let dir = scratch("design");
    let d = design(&dir, 1000, 7);
    assert_eq!(d["format"], "strata.mia.design");
    assert_eq!(d["pool"], 1000);
    assert_eq!(d["models"], 7);
    let members = d["members"].as_array().unwrap();
    let mut count = vec![0; 1000];
    for (m, list) in members.iter().enumerate() {
        let idx: Vec<u64> = list
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap())
            .collect();
        assert!(
            idx.windows(2).all(|w| w[0] < w[1]),
            "model {m} not ascending"
        );
        let txt = std::fs::read_to_string(dir.join(format!("members/model-{m:03}.txt"))).unwrap();
        let from_txt: Vec<u64> = txt.lines().map(|l| l.parse().unwrap()).collect();
        assert_eq!(from_txt, idx);
        for &i in &idx {
            count[i as usize] += 1;
        }
    }
    assert!(count.iter().all(|&c| c == 3 || c == 4));
    // members.npy: a 7 x 1000 boolean array with the same masks.
    let (shape, flat) =
        strata_data::npy::read_ints(&std::fs::read(dir.join("members.npy")).unwrap()).unwrap();
    assert_eq!(shape, vec![7, 1000]);
    for (m, list) in members.iter().enumerate() {
        for i in list.as_array().unwrap() {
            assert_eq!(flat[m * 1000 + i.as_u64().unwrap() as usize], 1);
        }
    }
    assert_eq!(
        flat.iter().sum::<i64>() as usize,
        count.iter().sum::<usize>()
    );
    // The same seed gives the same design; a data-set pool records its indices and labels.
    let again = scratch("design-again");
    assert_eq!(design(&again, 1000, 7)["members"], d["members"]);
    let data = scratch("design-data");
    let o = strata(&[
        "mia",
        "design",
        "--pool",
        "digits:300",
        "--models",
        "4",
        "--out",
        s(&data),
        "--json",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let j: serde_json::Value =
        serde_json::from_slice(&std::fs::read(data.join("design.json")).unwrap()).unwrap();
    assert_eq!(j["source"]["data"], "digits");
    assert_eq!(j["source"]["indices"].as_array().unwrap().len(), 300);
    let (shape, _) =
        strata_data::npy::read_ints(&std::fs::read(data.join("labels.npy")).unwrap()).unwrap();
    assert_eq!(shape, vec![300]);
    for d in [dir, again, data] {
        let _ = std::fs::remove_dir_all(d);
    }
}

#[test]
fn an_audit_rescored_from_its_exported_logits_gives_identical_results() {
    let dir = scratch("rescore");
    let aud = dir.join("audit");
    let o = strata(&[
        "mia",
        "audit",
        "--data",
        "digits",
        "--pool",
        "300",
        "--references",
        "4",
        "--widths",
        "64",
        "--epochs",
        "20",
        "--bootstrap",
        "30",
        "--defenses",
        "none,top1",
        "--out",
        s(&aud),
        "--json",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let logits: Vec<String> = (0..5)
        .map(|m| s(&aud.join(format!("logits/float-none/model-{m:03}.npy"))).to_string())
        .collect();
    let sc = dir.join("score");
    let mut args = vec![
        "mia",
        "score",
        "--design",
        s(&aud.join("design.json")).to_string().leak(),
        "--labels",
        s(&aud.join("labels.npy")).to_string().leak(),
        "--bootstrap",
        "30",
        "--defenses",
        "none,top1",
        "--out",
        s(&sc).to_string().leak(),
        "--json",
        "--logits",
    ];
    args.extend(logits.iter().map(|x| x.as_str()));
    let o = strata(&args);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let read = |p: &Path| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(p.join("results.json")).unwrap()).unwrap()
    };
    let (a, b) = (read(&aud), read(&sc));
    let (sa, sb) = (
        a["settings"].as_array().unwrap(),
        b["settings"].as_array().unwrap(),
    );
    assert_eq!(sa.len(), 2);
    assert_eq!(sb.len(), 2);
    for (x, y) in sa.iter().zip(sb) {
        assert_eq!(x["defense"], y["defense"]);
        assert_eq!(x["attacks"], y["attacks"], "defense {}", x["defense"]);
        // The target's accuracy on its members is computed from the same logits.
        assert!(
            (x["train_accuracy"].as_f64().unwrap() - y["train_accuracy"].as_f64().unwrap()).abs()
                < 1e-12
        );
    }
    assert_eq!(
        sa[0]["attacks"].as_array().unwrap().len(),
        strata_privacy::ATTACK_NAMES.len()
    );
    // Labels default to the design's data set.
    let mut no_labels: Vec<&str> = args.clone();
    let at = no_labels.iter().position(|a| *a == "--labels").unwrap();
    no_labels.drain(at..at + 2);
    let at = no_labels.iter().position(|a| *a == "--out").unwrap();
    no_labels.drain(at..at + 2);
    let v = last_json(&strata(&no_labels));
    assert_eq!(v["attacks"], last_json(&o)["attacks"]);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn every_model_as_target_reports_the_spread_and_a_leak_is_found() {
    let dir = scratch("all-targets");
    let d = design(&dir, 400, 6);
    let files = leaky_logits(&dir, &d, 5, 3.0);
    let out = dir.join("report");
    let mut args = vec![
        "mia",
        "score",
        "--design",
        s(&dir.join("design.json")).to_string().leak(),
        "--labels",
        s(&dir.join("labels.npy")).to_string().leak(),
        "--all-targets",
        "--bootstrap",
        "20",
        "--attacks",
        "lira-global,rmia,loss",
        "--out",
        s(&out).to_string().leak(),
        "--json",
        "--logits",
    ];
    args.extend(files.iter().map(|p| s(p)));
    let o = strata(&args);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v = last_json(&o);
    assert_eq!(v["targets"].as_array().unwrap().len(), 6);
    for name in ["lira-global", "rmia", "loss"] {
        let t = &v["attacks"][name]["across_targets"];
        assert_eq!(t["targets"], 6, "{name}: {t}");
        let mean = t["auc"]["mean"].as_f64().unwrap();
        assert!(mean > 0.8, "{name} mean AUC {mean}");
        assert!(t["auc"]["min"].as_f64().unwrap() <= mean);
        assert!(t["auc"]["max"].as_f64().unwrap() >= mean);
    }
    let csv = std::fs::read_to_string(out.join("tables/targets.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + 3 * 6);
    // The same outputs as one stacked 6 x 400 x 5 array give the same figures.
    let mut stacked = Vec::new();
    for f in &files {
        let b = std::fs::read(f).unwrap();
        let h = strata_data::npy::parse_header(&b).unwrap();
        stacked.extend(strata_data::npy::to_f32(
            &b[h.data_offset..],
            h.dtype,
            false,
        ));
    }
    let all = dir.join("all.npy");
    npy(&all, &[6, 400, 5], &stacked);
    let at = args.iter().position(|a| *a == "--logits").unwrap();
    args.truncate(at + 1);
    args.push(s(&all));
    let at = args.iter().position(|a| *a == "--out").unwrap();
    args.drain(at..at + 2);
    let w = last_json(&strata(&args));
    assert_eq!(w["attacks"], v["attacks"]);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_input_fails_with_one_line_and_writes_nothing() {
    let dir = scratch("bad");
    let d = design(&dir, 200, 4);
    let files = leaky_logits(&dir, &d, 3, 1.0);
    let f: Vec<&str> = files.iter().map(|p| s(p)).collect();
    let design_path = dir.join("design.json");
    let labels = dir.join("labels.npy");
    // Bad variants of the inputs.
    let nan = dir.join("nan.npy");
    let mut z = vec![0.5f32; 200 * 3];
    z[7] = f32::NAN;
    npy(&nan, &[200, 3], &z);
    let short = dir.join("short.npy");
    npy(&short, &[150, 3], &vec![0.0; 450]);
    let wide = dir.join("wide.npy");
    npy(&wide, &[200, 4], &vec![0.0; 800]);
    let bad_labels = dir.join("bad-labels.npy");
    labels_npy(
        &bad_labels,
        &(0..200)
            .map(|i| if i == 9 { 3 } else { 0 })
            .collect::<Vec<_>>(),
    );
    let neg_labels = dir.join("neg-labels.npy");
    labels_npy(
        &neg_labels,
        &(0..200)
            .map(|i| if i == 4 { -1 } else { 0 })
            .collect::<Vec<_>>(),
    );
    let text = std::fs::read_to_string(&design_path).unwrap();
    let mut j: serde_json::Value = serde_json::from_str(&text).unwrap();
    // Model 0 also trains on example 0 or gives it up: example 0 is then in 1 or 3 models of 4.
    let m0 = j["members"][0].as_array_mut().unwrap();
    if m0.first() == Some(&serde_json::json!(0)) {
        m0.remove(0);
    } else {
        m0.insert(0, serde_json::json!(0));
    }
    let unbalanced = dir.join("unbalanced.json");
    std::fs::write(&unbalanced, j.to_string()).unwrap();
    let mut one: serde_json::Value = serde_json::from_str(&text).unwrap();
    one["models"] = serde_json::json!(1);
    one["members"] = serde_json::json!([one["members"][0]]);
    let single = dir.join("single.json");
    std::fs::write(&single, one.to_string()).unwrap();
    // A tampered pool size would ask for 4 x 10^13 bytes of masks: refused before allocating.
    let mut huge: serde_json::Value = serde_json::from_str(&text).unwrap();
    huge["pool"] = serde_json::json!(10_000_000_000_000u64);
    let huge_path = dir.join("huge.json");
    std::fs::write(&huge_path, huge.to_string()).unwrap();
    let (d_s, l_s) = (s(&design_path), s(&labels));
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec![d_s, l_s, f[0], f[1], f[2]],
            "the outputs of model 3 are missing",
        ),
        (vec![d_s, l_s, f[0], f[1], f[2], s(&nan)], "non-finite"),
        (
            vec![d_s, l_s, f[0], f[1], f[2], s(&short)],
            "design's pool has 200",
        ),
        (
            vec![d_s, l_s, f[0], f[1], f[2], s(&wide)],
            "every model must score the same classes",
        ),
        (
            vec![d_s, s(&bad_labels), f[0], f[1], f[2], f[3]],
            "label 3 at example 9",
        ),
        (
            vec![d_s, s(&neg_labels), f[0], f[1], f[2], f[3]],
            "label -1 at example 4",
        ),
        (
            vec![s(&unbalanced), l_s, f[0], f[1], f[2], f[3]],
            "not balanced: pool example 0",
        ),
        (vec![s(&single), l_s, f[0]], "at least 2"),
        (
            vec![s(&huge_path), l_s, f[0], f[1], f[2], f[3]],
            "of memory",
        ),
    ];
    for (i, (inputs, want)) in cases.iter().enumerate() {
        let out = dir.join(format!("out-{i}"));
        let mut args = vec!["mia", "score", "--design", inputs[0], "--labels", inputs[1]];
        args.extend(["--bootstrap", "10", "-q", "--out", s(&out), "--logits"]);
        args.extend(&inputs[2..]);
        let o = strata(&args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "case {i} succeeded");
        assert!(err.contains(want), "case {i}: want '{want}' in: {err}");
        assert_eq!(err.trim().lines().count(), 1, "case {i}: {err}");
        assert!(!out.exists(), "case {i} wrote {}", out.display());
    }
    let o = strata(&[
        "mia",
        "design",
        "--pool",
        "100",
        "--models",
        "1",
        "--out",
        s(&dir.join("d1")),
    ]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("between 2 and"));
    assert!(!dir.join("d1").exists());
    let o = strata(&[
        "mia",
        "design",
        "--pool",
        "10000000000000",
        "--models",
        "4",
        "--out",
        s(&dir.join("d2")),
    ]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("of memory") && err.trim().lines().count() == 1,
        "{err}"
    );
    assert!(!dir.join("d2").exists());
    let _ = std::fs::remove_dir_all(&dir);
}
