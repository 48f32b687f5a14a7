//! Helpers shared by the end-to-end tests of the `strata` binary (tests/cli.rs, mia.rs, zip.rs).
#![allow(clippy::unwrap_used)] // in tests, a failed unwrap is a failed test, with its location
#![allow(dead_code)] // each test binary uses its own subset

use std::path::PathBuf;
use std::process::{Command, Output};

/// Runs the `strata` binary built for this test run.
pub fn strata(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(args)
        .output()
        .expect("the strata binary runs")
}

/// A fresh, empty folder for one test: `strata-SUITE-PID-NAME` in the temp dir, where SUITE is
/// the test binary (cli, mia, zip), so parallel suites and runs never share files.
pub fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "strata-{}-{}-{name}",
        env!("CARGO_CRATE_NAME"),
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// What the command printed on stdout.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The last line of stdout, parsed as JSON (the `--json` contract).
pub fn last_json(o: &Output) -> serde_json::Value {
    let text = stdout(o);
    let line = text.lines().last().unwrap_or_default().to_string();
    serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {text}"))
}
