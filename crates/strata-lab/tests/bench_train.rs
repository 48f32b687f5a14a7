//! `strata bench train` end to end on tiny settings: the library function's rows, and the
//! PyTorch script's command line.
//!
//! The Python checks use `python3`, or the interpreter named by `STRATA_TEST_PYTHON`. They are
//! skipped (with a notice) only where that interpreter is absent (`--help`) or cannot import
//! torch (the PyTorch run); any other failure fails the test.
#![allow(clippy::unwrap_used)] // in tests, a failed unwrap is a failed test, with its location

use std::path::PathBuf;
use std::process::Command;
use strata_lab::bench_train::{run, BenchTrainArgs};
use strata_lab::progress::Silent;
use strata_nn::net::Architecture;
use strata_nn::Precision;

fn python() -> String {
    std::env::var("STRATA_TEST_PYTHON").unwrap_or_else(|_| "python3".into())
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../benches/train_torch.py")
}

fn tiny(python: Option<String>) -> BenchTrainArgs {
    BenchTrainArgs {
        architectures: vec![Architecture::Mlp],
        precisions: vec![Precision::Float],
        widths: vec![32],
        epochs: 1,
        images: Some(250),
        train_repeat: 1,
        infer_repeat: 2,
        python,
    }
}

#[test]
fn strata_side_alone_gives_a_train_and_an_inference_row() {
    let r = run(&tiny(None), &Silent).unwrap();
    assert_eq!(r.images, 250);
    assert_eq!(r.rows.len(), 2);
    let (train, infer) = (&r.rows[0], &r.rows[1]);
    assert_eq!(
        (train.architecture.as_str(), train.precision.as_str()),
        ("mlp", "float")
    );
    assert_eq!(
        (train.mode.as_str(), infer.mode.as_str()),
        ("train", "inference")
    );
    // 250 images in batches of 100: 100 + 100 + 50, none dropped.
    assert_eq!(train.images, 250);
    assert_eq!(infer.images, 250);
    for row in &r.rows {
        assert!(row.seconds > 0.0 && row.images_per_second.is_finite());
        assert!(
            (row.images_per_second - row.images as f64 / row.seconds).abs()
                < 1e-6 * row.images_per_second
        );
        assert!(row.torch_images_per_second.is_none() && row.ratio.is_none());
    }
    // A freshly trained 10-class network's mean cross-entropy is near ln 10, not NaN or 0.
    let loss = train.loss.unwrap();
    assert!(loss > 0.5 && loss < 10.0, "loss {loss}");
    assert!(r.torch.is_none());
    assert!(r.torch_note.as_deref().unwrap().contains("not asked for"));
    let md = r.to_markdown();
    assert!(md.contains("| mlp | float | train |"), "{md}");
    assert!(md.contains("PyTorch not run"), "{md}");
    let json: serde_json::Value = serde_json::from_str(&r.to_json().unwrap()).unwrap();
    assert_eq!(json["rows"].as_array().unwrap().len(), 2);
}

#[test]
fn bad_settings_are_refused() {
    let mut a = tiny(None);
    a.precisions = vec![Precision::W2A2];
    assert!(run(&a, &Silent).is_err());
    let mut a = tiny(None);
    a.images = Some(1);
    assert!(run(&a, &Silent).is_err());
    let mut a = tiny(None);
    a.epochs = 0;
    assert!(run(&a, &Silent).is_err());
}

#[test]
fn a_missing_interpreter_leaves_the_torch_columns_empty_with_the_reason() {
    let r = run(
        &tiny(Some("/nonexistent/strata-test-python".into())),
        &Silent,
    )
    .unwrap();
    assert!(r.rows.iter().all(|x| x.torch_images_per_second.is_none()));
    assert!(r.torch_note.unwrap().contains("could not be run"));
}

#[test]
fn torch_script_help_runs_standalone() {
    let py = python();
    if Command::new(&py).arg("--version").output().is_err() {
        eprintln!("SKIPPED: {py} not found (set STRATA_TEST_PYTHON to check the PyTorch script)");
        return;
    }
    let out = Command::new(&py)
        .arg(script())
        .arg("--help")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in ["--data", "--threads", "--epochs", "--repeat", "--check"] {
        assert!(help.contains(flag), "{flag} missing from:\n{help}");
    }
}

#[test]
fn torch_side_fills_the_columns_when_torch_imports() {
    let py = python();
    let has_torch = Command::new(&py)
        .args(["-c", "import torch"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_torch {
        eprintln!(
            "SKIPPED: {py} cannot import torch (set STRATA_TEST_PYTHON to a Python with torch)"
        );
        return;
    }
    let mut a = tiny(Some(py));
    a.precisions = vec![Precision::Float, Precision::W1A1];
    a.infer_repeat = 1;
    let r = run(&a, &Silent).unwrap();
    assert!(r.torch.is_some() && r.torch_note.is_none());
    assert_eq!(r.torch_threads, Some(r.threads));
    assert_eq!(r.rows.len(), 4);
    for row in &r.rows {
        let t = row.torch_images_per_second.unwrap();
        assert!(t > 0.0 && t.is_finite());
        assert!((row.ratio.unwrap() - row.images_per_second / t).abs() < 1e-9 * row.ratio.unwrap());
        if row.mode == "train" {
            // Both sides trained the same kind of network from scratch for one epoch.
            let l = row.torch_loss.unwrap();
            assert!(l > 0.5 && l < 10.0, "PyTorch loss {l}");
        }
    }
}
