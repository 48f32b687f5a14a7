//! End-to-end tests of `strata mia audit`: real networks trained on the embedded digits, the
//! JSON contract, the report folder, determinism, and one-line errors.
#![allow(clippy::unwrap_used)] // in tests, a failed unwrap is a failed test, with its location

mod common;
use common::{last_json, scratch, strata};

/// A small pool trained to memorize: about 100 members, 100 non-members, 100 epochs.
#[rustfmt::skip]
const MEMORIZE: &[&str] = &[
    "mia", "audit", "--data", "digits", "--pool", "200", "--references", "4", "--widths", "256",
    "--epochs", "100", "--bootstrap", "50", "--json",
];

#[test]
fn a_memorizing_model_leaks_and_the_json_says_so() {
    let dir = scratch("memorize");
    let out = dir.join("report");
    let mut args = MEMORIZE.to_vec();
    let out_s = out.to_str().unwrap();
    args.extend(["--out", out_s]);
    let o = strata(&args);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v = last_json(&o);
    let train = v["train_accuracy"].as_f64().unwrap();
    let test = v["test_accuracy"].as_f64().unwrap();
    assert!(train > 0.99, "train accuracy {train}");
    assert!(test < train, "test {test} train {train}");
    for name in strata_privacy::ATTACK_NAMES {
        let a = &v["attacks"][name];
        for key in ["auc", "tpr_at_0.1pct_fpr", "tpr_at_1pct_fpr", "advantage"] {
            let x = a[key]
                .as_f64()
                .unwrap_or_else(|| panic!("{name}.{key} missing: {a}"));
            assert!((0.0..=1.0).contains(&x), "{name}.{key} = {x}");
        }
        let ci = a["auc_ci"].as_array().unwrap();
        assert!(ci[0].as_f64().unwrap() <= a["auc"].as_f64().unwrap());
    }
    // 100 members vs 100 non-members: the AUC's standard error under no leakage is about 0.041,
    // so a loss-threshold AUC above 0.65 is memorization, not noise (seeds 0 and 1 give 0.77
    // and 0.81).
    let loss = v["attacks"]["loss"]["auc"].as_f64().unwrap();
    assert!(loss > 0.65, "loss AUC {loss}");
    assert_eq!(v["attacks"]["loss"]["false_positives_at_0.1pct_fpr"], 0);
    for f in [
        "index.html",
        "report.md",
        "results.json",
        "design.json",
        "members.npy",
        "members/model-004.txt",
        "labels.npy",
        "logits/float-none/model-000.npy",
        "logits/float-none/model-004.npy",
        "figures/roc-float-none.png",
        "figures/roc-float-none.svg",
        "tables/attacks.csv",
        "tables/attacks.parquet",
        "tables/per_class.csv",
    ] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    let design: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("design.json")).unwrap()).unwrap();
    assert_eq!(design["format"], "strata.mia.design");
    assert_eq!(design["pool"], 200);
    assert_eq!(design["models"], 5);
    assert_eq!(design["source"]["indices"].as_array().unwrap().len(), 200);
    let members = design["members"].as_array().unwrap();
    assert_eq!(members.len(), 5);
    // Balanced: with 5 models every example is in 2 or 3 of them.
    let mut count = vec![0; 200];
    for m in members {
        for i in m.as_array().unwrap() {
            count[i.as_u64().unwrap() as usize] += 1;
        }
    }
    assert!(count.iter().all(|&c| c == 2 || c == 3), "{count:?}");
    assert_eq!(
        v["target_members"].as_u64().unwrap() as usize,
        members[0].as_array().unwrap().len()
    );
    let csv = std::fs::read_to_string(out.join("tables/attacks.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + strata_privacy::ATTACK_NAMES.len());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn same_seed_same_numbers_and_the_cache_trains_nothing() {
    let dir = scratch("seeded");
    let cache = dir.join("cache");
    let base = [
        "mia",
        "audit",
        "--data",
        "digits",
        "--pool",
        "200",
        "--references",
        "2",
        "--widths",
        "32",
        "--epochs",
        "3",
        "--attacks",
        "loss,lira-offline,shokri",
        "--defenses",
        "none,top1,round1",
        "--bootstrap",
        "10",
        "--json",
        "--cache",
        cache.to_str().unwrap(),
    ];
    let a = last_json(&strata(&base));
    let b = last_json(&strata(&base));
    assert_eq!(a["models_trained"], 3);
    assert_eq!(b["models_trained"], 0);
    assert_eq!(b["models_cached"], 3);
    assert_eq!(a["settings"], b["settings"]);
    assert_eq!(a["settings"].as_array().unwrap().len(), 3);
    let mut other = base.to_vec();
    other.extend(["--seed", "1"]);
    let c = last_json(&strata(&other));
    assert_eq!(c["models_trained"], 3);
    assert_ne!(a["attacks"], c["attacks"]);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_settings_fail_with_one_line() {
    let cases: &[(&[&str], &str)] = &[
        (&["--attacks", "nope"], "unknown attack 'nope'"),
        (&["--defenses", "blur"], "defense 'blur'"),
        (&["--pool", "99999"], "--pool 99999"),
        (
            &["--references", "1", "--attacks", "lira"],
            "needs at least 2 reference models",
        ),
        (
            &["--references", "2", "--shadows", "3", "--attacks", "shokri"],
            "--shadows must be between 1 and the number of reference models (2)",
        ),
        (&["--data", "csv:/nonexistent.csv"], "nonexistent.csv"),
    ];
    for (extra, want) in cases {
        let mut args = vec!["mia", "audit", "--epochs", "1"];
        if !extra.contains(&"--data") {
            args.extend(["--data", "digits"]);
        }
        args.extend_from_slice(extra);
        let o = strata(&args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{extra:?} succeeded");
        assert!(err.contains(want), "{extra:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{extra:?}: {err}");
        assert!(o.stdout.is_empty());
    }
}

#[test]
fn an_analysis_spec_runs_a_privacy_audit_into_its_report() {
    let dir = scratch("spec");
    let spec = dir.join("priv.toml");
    std::fs::write(
        &spec,
        r#"
title = "privacy in a spec"
[data.d]
source = "digits"
collect_limit = 100

[[model]]
name = "mlp"
data = "d"
widths = [32]
precisions = ["float", "w1a1"]
epochs = 3
lr_quantized = 1e-2

[privacy]
models = ["mlp"]
pool = 200
references = 2
attacks = ["loss", "lira", "shokri"]
defenses = ["none", "top1"]
bootstrap = 10
"#,
    )
    .unwrap();
    let reports = dir.join("reports");
    let o = strata(&[
        "run",
        spec.to_str().unwrap(),
        "--reports",
        reports.to_str().unwrap(),
        "--cache",
        dir.join("cache").to_str().unwrap(),
        "--json",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v = last_json(&o);
    let p = &v["privacy"][0];
    assert_eq!(p["family"], "mlp");
    // float and w1a1, each without and with top-1 release.
    let settings = p["settings"].as_array().unwrap();
    let names: Vec<(String, String)> = settings
        .iter()
        .map(|s| {
            (
                s["precision"].as_str().unwrap().into(),
                s["defense"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        names,
        [
            ("float", "none"),
            ("float", "top1"),
            ("w1a1", "none"),
            ("w1a1", "top1")
        ]
        .map(|(a, b)| (a.to_string(), b.to_string()))
    );
    assert!(p["attacks"]["lira"]["auc"].as_f64().is_some());
    let report = reports.join("priv");
    let md = std::fs::read_to_string(report.join("report.md")).unwrap();
    assert!(md.contains("Membership inference: mlp"), "{md}");
    assert!(report.join("figures/privacy-mlp.png").is_file());
    assert!(report.join("privacy/mlp/index.html").is_file());
    assert!(report.join("privacy/mlp/tables/attacks.csv").is_file());
    let manifest = std::fs::read_to_string(report.join("manifest.json")).unwrap();
    assert!(manifest.contains("privacy/mlp/results.json"));
    let _ = std::fs::remove_dir_all(&dir);
}
